#!/usr/bin/python3
"""Prints what a running GTK application shows, read over AT-SPI, as JSON on stdout.

Usage: atspi_dump.py APP_NAME

APP_NAME is the application's name on the accessibility bus (its program name, e.g. "palisade").
The session bus (DBUS_SESSION_BUS_ADDRESS) must be the one the application uses; the AT-SPI bus
is found through it.

Output: {"windows": [NODE, ...]} where NODE is
  {"role": "label", "name": "...", "shown": true|false|null, "children": [NODE, ...]}
"shown" tells whether the node is really on screen: GTK 4.8 marks every present widget
"visible", also the pages of a GtkStack that are not showing, so this asks the window which
accessible is at the centre of the node's extents (GTK answers with gtk_widget_pick, which only
finds what is drawn) and checks that it is the node or one of its descendants (see
atspi_common.py). It is computed for labels and list items, and null for everything else.
A GtkStack's pages (GtkStackPage objects, not widgets) are left out: their widgets are the
stack's children (see atspi_common.py for why).

Exit status: 0 with the JSON printed; 3 when no application of that name is on the bus (yet);
1 on any other error (the reason on stderr). Needs Debian's python3-gi and gir1.2-atspi-2.0.
"""

import json
import os
import sys

# atspi_common.py lies beside this file (also with PYTHONSAFEPATH set); importing it must not
# leave a __pycache__ in the checkout.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from atspi_common import App  # noqa: E402

SHOWN_ROLES = {"label", "list item"}


def tree(app, node):
    """`node` and everything below it as the output's NODE (iteratively: the depth is bounded
    by the snapshot, not by Python's stack)."""
    asked = [n for n in node.descendants() if n.role in SHOWN_ROLES]
    shown = dict(zip((id(n) for n in asked), app.shown_all(asked)))
    out = {"role": node.role, "name": node.name, "shown": None, "children": []}
    stack = [(node, out)]
    while stack:
        current, written = stack.pop()
        written["shown"] = shown.get(id(current))
        for child in current.children:
            entry = {"role": child.role, "name": child.name, "shown": None, "children": []}
            written["children"].append(entry)
            stack.append((child, entry))
    return out


def main(argv=None):
    """The tool run with `argv` (its own name first; default: the command line)."""
    argv = sys.argv if argv is None else argv
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    wanted = argv[1]
    app = App.find(wanted)
    if app is None:
        print(f"atspi_dump: no application {wanted!r} on the accessibility bus", file=sys.stderr)
        return 3
    # json.dumps, not json.dump: only the one-shot form uses the C encoder (a third of a read's
    # time went to the pure-Python one).
    print(json.dumps({"windows": [tree(app, frame) for frame in app.windows()]}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - any failure is reported, the caller retries
        print(f"atspi_dump: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
