#!/usr/bin/python3
"""Does an action (by default "click") on one control of a running GTK application over AT-SPI,
the way an assistive technology would: no synthetic mouse events, no coordinates.

Usage: atspi_action.py APP_NAME ROLE NAME [ACTION]

The control is the one whose role is ROLE (e.g. "push button", "toggle button") and whose
accessible name is exactly NAME. If several match (a view switcher exists once in the header
bar and once at the bottom), the one really on screen is taken (see atspi_common.py for what
"on screen" means). ACTION is the name of one of its actions ("click" for GTK buttons).

Exit status: 0 when the action was done; 3 when no such application or control is there (yet);
4 when the control is there but not on screen or not enabled; 1 on any other error (the reason
on stderr). Needs Debian's python3-gi and gir1.2-atspi-2.0.
"""

import os
import sys

# atspi_common.py lies beside this file (also with PYTHONSAFEPATH set); importing it must not
# leave a __pycache__ in the checkout.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from atspi_common import MAX_DEPTH, MAX_NODES, children, find_app, shown, windows  # noqa: E402
from gi.repository import Atspi, GLib  # noqa: E402


def matches(node, role, name):
    try:
        return node.get_role_name() == role and node.get_name() == name
    except GLib.Error:
        return False


def find(node, role, name, depth, out, budget):
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        return
    if matches(node, role, name):
        out.append(node)
    for child in children(node):
        find(child, role, name, depth + 1, out, budget)


def enabled(node):
    try:
        states = node.get_state_set()
    except GLib.Error:
        return False
    return states.contains(Atspi.StateType.ENABLED) or states.contains(Atspi.StateType.SENSITIVE)


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    wanted, role, name = sys.argv[1:4]
    action = sys.argv[4] if len(sys.argv) == 5 else "click"
    app = find_app(wanted)
    if app is None:
        print(f"atspi_action: no application {wanted!r} on the accessibility bus", file=sys.stderr)
        return 3
    candidates = []  # (node, window)
    for frame in windows(app):
        found = []
        find(frame, role, name, 0, found, [MAX_NODES])
        candidates.extend((node, frame) for node in found)
    if not candidates:
        print(f"atspi_action: no {role} named {name!r}", file=sys.stderr)
        return 3
    on_screen = [node for node, frame in candidates if shown(node, frame)]
    if not on_screen:
        print(f"atspi_action: the {role} named {name!r} is not on screen", file=sys.stderr)
        return 4
    node = on_screen[0]
    if not enabled(node):
        print(f"atspi_action: the {role} named {name!r} is not enabled", file=sys.stderr)
        return 4
    names = [Atspi.Action.get_action_name(node, i) for i in range(Atspi.Action.get_n_actions(node))]
    if action not in names:
        print(f"atspi_action: the {role} named {name!r} has no action {action!r} ({names})",
              file=sys.stderr)
        return 1
    if not Atspi.Action.do_action(node, names.index(action)):
        print(f"atspi_action: {action!r} on {name!r} was refused", file=sys.stderr)
        return 1
    print(f"{action} {role} {name!r}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - any failure is reported, the caller retries
        print(f"atspi_action: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
