"""What atspi_dump.py and atspi_action.py share: finding the application on the accessibility
bus, walking its tree, and telling whether an accessible is really on screen.

Not a program; the two tools import it from the folder they lie in. Needs Debian's python3-gi
and gir1.2-atspi-2.0.
"""

import gi

gi.require_version("Atspi", "2.0")
from gi.repository import Atspi, GLib  # noqa: E402

# Limits, so a broken tree cannot make a tool run for ever.
MAX_DEPTH = 60
MAX_NODES = 20000


def find_app(wanted):
    """The application named `wanted` on the accessibility bus (the last one if several), or
    None."""
    desktop = Atspi.get_desktop(0)
    app = None
    for i in range(desktop.get_child_count()):
        candidate = desktop.get_child_at_index(i)
        try:
            if candidate is not None and candidate.get_name() == wanted:
                app = candidate
        except GLib.Error:
            continue
    return app


def windows(app):
    """The windows of the application `app`. Unlike `children`, an error here is the caller's
    failure: a tool must not answer as if the application had no windows."""
    for i in range(app.get_child_count()):
        frame = app.get_child_at_index(i)
        if frame is not None:
            yield frame


def children(node):
    """The children of `node` that can still be had; a widget may go away while we look (the
    window is refreshing)."""
    try:
        count = node.get_child_count()
    except GLib.Error:
        return
    for i in range(count):
        try:
            child = node.get_child_at_index(i)
        except GLib.Error:
            child = None
        if child is not None:
            yield child


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


def popover_of(node, frame):
    """The GtkPopover `node` lies in (itself included), or None; stops at the window."""
    current = node
    for _ in range(MAX_DEPTH):
        if current is None or same(current, frame):
            return None
        try:
            if current.get_name() == "GtkPopover":
                return current
            current = current.get_parent()
        except GLib.Error:
            return None
    return None


def shown(node, frame):
    """Whether `node` is really on screen in the window `frame` (None when that cannot be told):
    GTK 4.8 marks every present widget "visible", also the pages of a GtkStack that are not
    showing, so this asks the window which accessible is at the centre of the node's extents
    (GTK answers with gtk_widget_pick, which only finds what is drawn) and checks that it is the
    node or one of its descendants. None when it cannot be told: the extents or the point
    cannot be asked, or what is drawn there has no accessible."""
    # A popover is a surface of its own: its widgets' window coordinates are the popover's, and
    # only the popover can say what is drawn at them.
    frame = popover_of(node, frame) or frame
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
    if hit is None:
        # GTK found a widget there that has no accessible of its own (the GtkText inside an
        # AdwEntryRow): nothing to compare with.
        return None
    return is_within(hit, node, frame)
