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

from atspi_common import MAX_DEPTH, MAX_NODES, children, find_app, shown, windows  # noqa: E402
from gi.repository import GLib  # noqa: E402

SHOWN_ROLES = {"label", "list item"}


class Walker:
    def __init__(self):
        self.count = 0

    def walk(self, node, frame, depth):
        self.count += 1
        if self.count > MAX_NODES:
            raise RuntimeError(f"more than {MAX_NODES} accessible objects")
        try:
            role = node.get_role_name()
            name = node.get_name()
        except GLib.Error as e:
            # The widget went away while we looked (the window is refreshing).
            return {"role": "defunct", "name": str(e), "shown": None, "children": []}
        out = {"role": role, "name": name, "shown": None, "children": []}
        if role in SHOWN_ROLES:
            out["shown"] = shown(node, frame)
        if depth >= MAX_DEPTH:
            return out
        for child in children(node):
            out["children"].append(self.walk(child, frame, depth + 1))
        return out


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    wanted = sys.argv[1]
    app = find_app(wanted)
    if app is None:
        print(f"atspi_dump: no application {wanted!r} on the accessibility bus", file=sys.stderr)
        return 3
    walker = Walker()
    tree = [walker.walk(frame, frame, 0) for frame in windows(app)]
    json.dump({"windows": tree}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - any failure is reported, the caller retries
        print(f"atspi_dump: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
