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

from atspi_common import (  # noqa: E402
    ACTION,
    EDITABLE_TEXT,
    TEXT,
    App,
)
from gi.repository import Atspi, GLib  # noqa: E402


def editable(node):
    """`node` or its first descendant that implements EditableText, or None."""
    for candidate in node.descendants():
        if candidate.implements(EDITABLE_TEXT):
            return candidate
    return None


def set_text(app, node, role, name, text):
    target = editable(node)
    if target is None:
        print(f"atspi_action: the {role} named {name!r} holds no editable text", file=sys.stderr)
        return 1
    (done,) = app.call(
        target.path, EDITABLE_TEXT, "SetTextContents", GLib.Variant("(s)", (text,)), "(b)"
    )
    if not done:
        print(f"atspi_action: setting the text of {name!r} was refused", file=sys.stderr)
        return 1
    count = app.property(target.path, TEXT, "CharacterCount")
    (now,) = app.call(target.path, TEXT, "GetText", GLib.Variant("(ii)", (0, count)), "(s)")
    if now != text:
        print(f"atspi_action: {name!r} reads {now!r} after setting {text!r}", file=sys.stderr)
        return 1
    print(f"set-text {role} {name!r}")
    return 0


def enabled(node):
    return node.has_state(Atspi.StateType.ENABLED) or node.has_state(Atspi.StateType.SENSITIVE)


def do_action(app, node, role, name, action):
    count = app.property(node.path, ACTION, "NActions")
    names = [app.call(node.path, ACTION, "GetName", GLib.Variant("(i)", (i,)), "(s)")[0]
             for i in range(count)]
    if action not in names:
        print(f"atspi_action: the {role} named {name!r} has no action {action!r} ({names})",
              file=sys.stderr)
        return 1
    (done,) = app.call(
        node.path, ACTION, "DoAction", GLib.Variant("(i)", (names.index(action),)), "(b)"
    )
    if not done:
        print(f"atspi_action: {action!r} on {name!r} was refused", file=sys.stderr)
        return 1
    print(f"{action} {role} {name!r}")
    return 0


def main(argv=None):
    """The tool run with `argv` (its own name first; default: the command line)."""
    argv = sys.argv if argv is None else argv
    action = argv[4] if len(argv) >= 5 else "click"
    if len(argv) not in (4, 5, 6) or (len(argv) == 6) != (action == "set-text"):
        print(__doc__, file=sys.stderr)
        return 2
    wanted, role, name = argv[1:4]
    app = App.find(wanted)
    if app is None:
        print(f"atspi_action: no application {wanted!r} on the accessibility bus", file=sys.stderr)
        return 3
    candidates = [
        node
        for frame in app.windows()
        for node in frame.descendants()
        if node.role == role and node.name == name
    ]
    if not candidates:
        print(f"atspi_action: no {role} named {name!r}", file=sys.stderr)
        return 3
    # An entry row's text cannot be picked (see atspi_common.App.shown); one that is not known
    # to be off screen will do for typing, as the control must still be enabled.
    wanted_shown = (True, None) if action == "set-text" else (True,)
    on_screen = [
        node for node, shown in zip(candidates, app.shown_all(candidates)) if shown in wanted_shown
    ]
    if not on_screen:
        print(f"atspi_action: the {role} named {name!r} is not on screen", file=sys.stderr)
        return 4
    node = on_screen[0]
    if not enabled(node):
        print(f"atspi_action: the {role} named {name!r} is not enabled", file=sys.stderr)
        return 4
    if action == "set-text":
        return set_text(app, node, role, name, argv[5])
    return do_action(app, node, role, name, action)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - any failure is reported, the caller retries
        print(f"atspi_action: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
