#!/usr/bin/python3
"""Times, for `make bench`, the app's Apply: from pressing **Apply the changes** (its AT-SPI
"click" action) until the keep-or-revert dialog is a window of the application on the
accessibility bus; then presses **Keep** and waits for the dialog to go.

Usage: bench_apply.py APP_NAME CHANGE_BUTTON DIALOG_TITLE KEEP_BUTTON

The editor must be open (its rules are waited for). CHANGE_BUTTON (e.g. "Turn off rule 1 of work") makes the change that
is applied; it and "Apply the changes" are looked up once, before the clock starts (the tree of a
1,000-rule editor takes a long time to walk, which is not what is measured). The dialog is
recognised by its window's accessible name DIALOG_TITLE. Prints the milliseconds on stdout.

Exit status: 0 with the time printed; 3 when a control or the dialog was not found; 1 on any
other error. Needs Debian's python3-gi and gir1.2-atspi-2.0.
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from atspi_common import MAX_DEPTH, children, find_app, windows  # noqa: E402
from gi.repository import Atspi, GLib  # noqa: E402

# How long the editor's rules, then the dialog, may take to appear, and the dialog to go after
# Keep.
LIMIT = 300.0


def find_all(frame, wanted):
    """{name: node} for the push buttons named in `wanted`, walking until all are found."""
    found = {}

    def walk(node, depth):
        if node is None or depth > MAX_DEPTH or len(found) == len(wanted):
            return
        try:
            if node.get_role_name() == "push button" and node.get_name() in wanted:
                found.setdefault(node.get_name(), node)
        except GLib.Error:
            return
        for child in children(node):
            walk(child, depth + 1)

    walk(frame, 0)
    return found


def click(node):
    for i in range(Atspi.Action.get_n_actions(node)):
        if Atspi.Action.get_action_name(node, i) == "click":
            Atspi.Action.do_action(node, i)
            return
    raise LookupError(f"{node.get_name()!r} has no click action")


def dialog(app, title):
    """The application's window named `title`, asked afresh (not from AT-SPI's cache)."""
    app.clear_cache()
    for frame in windows(app):
        try:
            if frame.get_name() == title:
                return frame
        except GLib.Error:
            continue
    return None


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    wanted, change, title, keep = sys.argv[1:5]
    apply_name = "Apply the changes"
    # The editor may still be drawing its rules (and be too busy to answer the accessibility
    # bus): look again until the application and both buttons are there.
    deadline = time.monotonic() + 2 * LIMIT
    app = find_app(wanted)
    while app is None:
        if time.monotonic() > deadline:
            print(f"bench_apply: no application {wanted!r}", file=sys.stderr)
            return 3
        time.sleep(1)
        app = find_app(wanted)
    while True:
        main_window = next(iter(windows(app)), None)
        buttons = find_all(main_window, {change, apply_name}) if main_window is not None else {}
        if len(buttons) == 2:
            break
        if time.monotonic() > deadline:
            print(f"bench_apply: found only {sorted(buttons)}", file=sys.stderr)
            return 3
        time.sleep(1)
    click(buttons[change])
    # The change re-renders the editor; give it time and look Apply up again (the old button
    # may be gone), outside the measurement.
    time.sleep(3)
    while True:
        found = find_all(next(iter(windows(app)), None), {apply_name})
        if apply_name in found:
            break
        if time.monotonic() > deadline:
            print(f"bench_apply: no {apply_name!r} after the change", file=sys.stderr)
            return 3
        time.sleep(1)
    started = time.monotonic()
    click(found[apply_name])
    while dialog(app, title) is None:
        if time.monotonic() - started > LIMIT:
            print(f"bench_apply: no window {title!r} within {LIMIT} s", file=sys.stderr)
            return 3
        time.sleep(0.005)
    elapsed = time.monotonic() - started
    shown = dialog(app, title)
    found = find_all(shown, {keep})
    if keep not in found:
        print(f"bench_apply: no {keep!r} in the dialog", file=sys.stderr)
        return 3
    click(found[keep])
    deadline = time.monotonic() + LIMIT
    while dialog(app, title) is not None:
        if time.monotonic() > deadline:
            print(f"bench_apply: the dialog stayed after {keep!r}", file=sys.stderr)
            return 3
        time.sleep(0.05)
    print(f"{elapsed * 1000:.1f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (LookupError, GLib.Error) as e:
        print(f"bench_apply: {e}", file=sys.stderr)
        sys.exit(3 if isinstance(e, LookupError) else 1)
