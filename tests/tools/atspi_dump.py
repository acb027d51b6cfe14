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
finds what is drawn) and checks that it is the node or one of its descendants. It is computed
for labels and list items with a non-empty area, and null for everything else.

Exit status: 0 with the JSON printed; 3 when no application of that name is on the bus (yet);
1 on any other error (the reason on stderr). Needs Debian's python3-gi and gir1.2-atspi-2.0.
"""

import json
import sys

import gi

gi.require_version("Atspi", "2.0")
from gi.repository import Atspi, GLib  # noqa: E402

# Limits, so a broken tree cannot make this run for ever.
MAX_DEPTH = 60
MAX_NODES = 20000
SHOWN_ROLES = {"label", "list item"}


def same(a, b):
    """Whether two AT-SPI references denote the same object."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    try:
        return a.get_bus_name() == b.get_bus_name() and a.path == b.path
    except (AttributeError, GLib.Error):
        return False


def is_within(hit, node, frame):
    """Whether `hit` is `node` or below it; stops at the window."""
    current = hit
    for _ in range(MAX_DEPTH):
        if current is None:
            return False
        if same(current, node):
            return True
        if same(current, frame):
            return False
        current = current.get_parent()
    return False


def shown(node, frame):
    try:
        ext = Atspi.Component.get_extents(node, Atspi.CoordType.WINDOW)
    except GLib.Error:
        return None
    if ext.width <= 0 or ext.height <= 0:
        return False
    x = ext.x + ext.width // 2
    y = ext.y + ext.height // 2
    try:
        hit = Atspi.Component.get_accessible_at_point(frame, x, y, Atspi.CoordType.WINDOW)
    except GLib.Error:
        return None
    return is_within(hit, node, frame)


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
        try:
            count = node.get_child_count()
        except GLib.Error:
            count = 0
        for i in range(count):
            try:
                child = node.get_child_at_index(i)
            except GLib.Error:
                child = None
            if child is not None:
                out["children"].append(self.walk(child, frame, depth + 1))
        return out


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    wanted = sys.argv[1]
    desktop = Atspi.get_desktop(0)
    app = None
    for i in range(desktop.get_child_count()):
        candidate = desktop.get_child_at_index(i)
        try:
            if candidate is not None and candidate.get_name() == wanted:
                app = candidate
        except GLib.Error:
            continue
    if app is None:
        print(f"atspi_dump: no application {wanted!r} on the accessibility bus", file=sys.stderr)
        return 3
    walker = Walker()
    windows = []
    for i in range(app.get_child_count()):
        frame = app.get_child_at_index(i)
        if frame is not None:
            windows.append(walker.walk(frame, frame, 0))
    json.dump({"windows": windows}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - any failure is reported, the caller retries
        print(f"atspi_dump: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
