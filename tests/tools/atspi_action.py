#!/usr/bin/python3
"""Does an action (by default "click") on one control of a running GTK application over AT-SPI,
the way an assistive technology would: no synthetic mouse events, no coordinates.

Usage: atspi_action.py APP_NAME ROLE NAME [ACTION]
       atspi_action.py APP_NAME ROLE NAME set-text TEXT

The control is the one whose role is ROLE (e.g. "push button", "toggle button") and whose
accessible name is exactly NAME. If several match (a view switcher exists once in the header
bar and once at the bottom), the one really on screen is taken (see atspi_common.py for what
"on screen" means). ACTION is the name of one of its actions ("click" for GTK buttons).

"set-text" replaces the text of the control, or of the first editable text inside it (an
AdwEntryRow holds its GtkText), through the AT-SPI EditableText interface, as a screen reader's
user typing would: the widget's "changed" handlers run. It then reads the text back and fails
if it differs.

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


def editable(node, depth=0):
    """`node` or its first descendant that implements EditableText, or None."""
    if depth > MAX_DEPTH:
        return None
    try:
        if "EditableText" in node.get_interfaces():
            return node
    except GLib.Error:
        return None
    for child in children(node):
        found = editable(child, depth + 1)
        if found is not None:
            return found
    return None


def set_text(node, role, name, text):
    target = editable(node)
    if target is None:
        print(f"atspi_action: the {role} named {name!r} holds no editable text", file=sys.stderr)
        return 1
    if not Atspi.EditableText.set_text_contents(target, text):
        print(f"atspi_action: setting the text of {name!r} was refused", file=sys.stderr)
        return 1
    count = Atspi.Text.get_character_count(target)
    now = Atspi.Text.get_text(target, 0, count)
    if now != text:
        print(f"atspi_action: {name!r} reads {now!r} after setting {text!r}", file=sys.stderr)
        return 1
    print(f"set-text {role} {name!r}")
    return 0


def enabled(node):
    try:
        states = node.get_state_set()
    except GLib.Error:
        return False
    return states.contains(Atspi.StateType.ENABLED) or states.contains(Atspi.StateType.SENSITIVE)


def main():
    action = sys.argv[4] if len(sys.argv) >= 5 else "click"
    if len(sys.argv) not in (4, 5, 6) or (len(sys.argv) == 6) != (action == "set-text"):
        print(__doc__, file=sys.stderr)
        return 2
    wanted, role, name = sys.argv[1:4]
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
    # An entry row's text cannot be picked (see atspi_common.shown); one that is not known to be
    # off screen will do for typing, as the control must still be enabled.
    wanted_shown = (True, None) if action == "set-text" else (True,)
    on_screen = [node for node, frame in candidates if shown(node, frame) in wanted_shown]
    if not on_screen:
        print(f"atspi_action: the {role} named {name!r} is not on screen", file=sys.stderr)
        return 4
    node = on_screen[0]
    if not enabled(node):
        print(f"atspi_action: the {role} named {name!r} is not enabled", file=sys.stderr)
        return 4
    if action == "set-text":
        return set_text(node, role, name, sys.argv[5])
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
