#!/usr/bin/python3
"""Drives a running GTK application with the keyboard alone, the way someone without a pointer
does: Tab until the wanted control has the focus, then a key or some typing. The keys are real
X key events (XTest, sent by Debian's xdotool to the X server of DISPLAY); AT-SPI is only read,
to learn which control has the focus, never used to act.

Usage: atspi_keys.py APP_NAME ROLE NAME key KEYSYM [MAX_TABS]
       atspi_keys.py APP_NAME ROLE NAME type TEXT [MAX_TABS]

The control is the one whose role is ROLE and whose accessible name is exactly NAME; the focus
counts as on it when the focused accessible is that control or lies at most three levels below
it. ROLE and NAME both "-" mean wherever the focus is now, without any Tab: GTK 4.8 reports no
focus on an AdwEntryRow whose text has it, so a test reaches an entry row by pressing Tab on the
control before it and then types "-" "-" (and checks where the text went). Up to MAX_TABS (default 80) Tab presses
are made; then KEYSYM is pressed (an X keysym as xdotool names it: "space", "Return") or TEXT
typed, character by character.

Xvfb runs without a window manager, which is what would give a newly opened window the focus.
This tool does the window manager's part: before it starts, it gives the X input focus to the
application's topmost window (xdotool windowfocus, a focus request, not a pointer event).

Exit status: 0 when done; 3 when the application is not there (yet) or the control was not
reached within MAX_TABS (the controls the focus went through are on stderr); 1 on any other
error. Needs Debian's python3-gi, gir1.2-atspi-2.0 and xdotool.
"""

import os
import subprocess
import sys
import time

# atspi_common.py lies beside this file (also with PYTHONSAFEPATH set); importing it must not
# leave a __pycache__ in the checkout.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from atspi_common import App  # noqa: E402
from gi.repository import Atspi, GLib  # noqa: E402

# How long GTK may take to move the focus and tell the accessibility bus after a key.
SETTLE = 0.25


def xdotool(*args):
    out = subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise RuntimeError(f"xdotool {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def focus_topmost_window(app_name):
    """Gives the X input focus to the application's topmost mapped window, as a window manager
    gives it to a window that opens, and returns that window's title. Toplevels are children of
    the root window here (no window manager reparents them), which lists them bottom to top."""
    ids = xdotool("search", "--onlyvisible", "--classname", f"^{app_name}$").split()
    if not ids:
        raise LookupError(f"no window of {app_name!r} is mapped")
    xdotool("windowfocus", ids[-1])
    time.sleep(SETTLE)
    return xdotool("getwindowname", ids[-1]).strip()


def topmost_frame(frames, title):
    """The window titled `title` of `frames` (the application's windows); else the last one (GTK
    lists a window that opened last)."""
    for frame in frames:
        if frame.name == title:
            return frame
    return frames[-1] if frames else None


def focused(frame):
    """The accessible in `frame` that has the keyboard focus, or None. GTK 4.8 keeps the focus
    state on the focus widget of every window, active or not (and without a window manager no
    window is "active"), so only the window that has the X input focus is asked. An AdwEntryRow
    reports no focus while its text has it (its GtkText is not in the accessible tree): there
    the answer is None."""
    if frame is None:
        return None
    for node in frame.descendants():
        if node.has_state(Atspi.StateType.FOCUSED):
            return node
    return None


def describe(node):
    return f"{node.role} {node.name!r}"


def is_on(node, role, name):
    """Whether `node` is the control, or within three levels below it."""
    current = node
    for _ in range(4):
        if current is None:
            return False
        if current.role == role and current.name == name:
            return True
        current = current.parent
    return False


def act(how, what):
    if how == "key":
        xdotool("key", "--clearmodifiers", what)
    else:
        xdotool("type", "--delay", "40", what)
    time.sleep(SETTLE)


def main():
    if len(sys.argv) not in (6, 7) or sys.argv[4] not in ("key", "type"):
        print(__doc__, file=sys.stderr)
        return 2
    wanted, role, name, how, what = sys.argv[1:6]
    max_tabs = int(sys.argv[6]) if len(sys.argv) == 7 else 80
    app = App.find(wanted)
    if app is None:
        print(f"atspi_keys: no application {wanted!r} on the accessibility bus", file=sys.stderr)
        return 3
    title = focus_topmost_window(wanted)
    if role == "-" and name == "-":
        # Where the focus is now: an entry row the previous key moved it to, which reports
        # no focus of its own (see `focused`).
        act(how, what)
        print(f"{how} {what!r} where the focus was, in the window {title!r}")
        return 0
    seen = []
    for _ in range(max_tabs + 1):
        # A fresh snapshot each time: the focus moves, and a window may open or close.
        node = focused(topmost_frame(app.windows(), title))
        if node is not None and is_on(node, role, name):
            act(how, what)
            print(f"{how} {what!r} on {role} {name!r} after {len(seen)} Tab presses")
            return 0
        seen.append(describe(node) if node is not None else "(nothing)")
        xdotool("key", "Tab")
        time.sleep(SETTLE)
    print(
        f"atspi_keys: Tab did not reach the {role} {name!r}; the focus went through:\n  "
        + "\n  ".join(seen)
        + f"\nin the window {title!r}",
        file=sys.stderr,
    )
    return 3


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (LookupError, RuntimeError, subprocess.TimeoutExpired, GLib.Error) as e:
        print(f"atspi_keys: {e}", file=sys.stderr)
        sys.exit(3 if isinstance(e, LookupError) else 1)
