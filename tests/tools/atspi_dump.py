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
    out = {"role": node.role, "name": node.name, "shown": None, "children": []}
    stack = [(node, out)]
    while stack:
        current, written = stack.pop()
        if current.role in SHOWN_ROLES:
            written["shown"] = app.shown(current)
        for child in current.children:
            entry = {"role": child.role, "name": child.name, "shown": None, "children": []}
            written["children"].append(entry)
            stack.append((child, entry))
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    wanted = sys.argv[1]
    app = App.find(wanted)
    if app is None:
        print(f"atspi_dump: no application {wanted!r} on the accessibility bus", file=sys.stderr)
        return 3
    json.dump({"windows": [tree(app, frame) for frame in app.windows()]}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - any failure is reported, the caller retries
        print(f"atspi_dump: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
