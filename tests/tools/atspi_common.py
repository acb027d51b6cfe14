"""What the AT-SPI tools share: one application's accessibility tree, read in one snapshot over
the AT-SPI bus, and the test of whether an accessible is really on screen.

The tree is read from the toolkit's cache (org.a11y.atspi.Cache.GetItems: every accessible with
its parent, index, child count, name, role and states, in one call) instead of one accessible at a
time through libatspi, which costs a round trip into the application per property and per child:
some 2,000 per read of Palisade's window, seconds on a busy machine, and the tests read the window
over and over while they wait for it to change. GTK makes an accessible only when someone first
asks for it, so the cache lacks what nobody asked for yet: the snapshot asks each parent whose
children it lacks for them (GetChildren, which makes them), round after round, until every
accessible reachable from the windows has exactly its child count of children, indexed 0..n-1 —
the tree a walk with GetChildAtIndex finds, less GtkStack's page objects (see `App.kids`). The
on-screen test asks the application at the
accessible's centre, two round trips per accessible asked about.

Not a program; the tools import it from the folder they lie in. Needs Debian's python3-gi (Gio)
and gir1.2-atspi-2.0 (only for the names of roles).
"""

import gi

gi.require_version("Atspi", "2.0")
from gi.repository import Atspi, Gio, GLib  # noqa: E402

# Limits, so a broken tree cannot make a tool run for ever.
MAX_DEPTH = 60
MAX_NODES = 20000
# One D-Bus call, at most.
CALL_TIMEOUT_MS = 10000

ACCESSIBLE = "org.a11y.atspi.Accessible"
ACTION = "org.a11y.atspi.Action"
COMPONENT = "org.a11y.atspi.Component"
EDITABLE_TEXT = "org.a11y.atspi.EditableText"
TEXT = "org.a11y.atspi.Text"
PROPERTIES = "org.freedesktop.DBus.Properties"
ROOT_PATH = "/org/a11y/atspi/accessible/root"
NULL_PATH = "/org/a11y/atspi/null"
CACHE_PATH = "/org/a11y/atspi/cache"
# AT-SPI's coordinate type "relative to the window".
WINDOW_COORDS = 1


_bus = None


def accessibility_bus():
    """A connection to the AT-SPI bus, whose address the session bus's org.a11y.Bus gives; made
    once per process (atspi_serve.py answers many requests), again when it was closed."""
    global _bus
    if _bus is not None and not _bus.is_closed():
        return _bus
    session = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    reply = session.call_sync(
        "org.a11y.Bus",
        "/org/a11y/bus",
        "org.a11y.Bus",
        "GetAddress",
        None,
        GLib.VariantType("(s)"),
        Gio.DBusCallFlags.NONE,
        CALL_TIMEOUT_MS,
        None,
    )
    flags = (
        Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
        | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION
    )
    _bus = Gio.DBusConnection.new_for_address_sync(reply.unpack()[0], flags, None, None)
    return _bus


def call_arguments(dest, path, interface, method, args, reply):
    """What Gio's call_sync and call take first for one call: the message, the reply's type
    (`reply`, a type string, or None), the flags, the timeout and no cancellable."""
    reply_type = GLib.VariantType(reply) if reply else None
    return (dest, path, interface, method, args, reply_type, Gio.DBusCallFlags.NONE,
            CALL_TIMEOUT_MS, None)


def call_raw(bus, dest, path, interface, method, args=None, reply=None):
    """One D-Bus call; its reply as a GLib.Variant (None when it has none). Raises GLib.Error."""
    return bus.call_sync(*call_arguments(dest, path, interface, method, args, reply))


def call(bus, dest, path, interface, method, args=None, reply=None):
    """One D-Bus call; its reply's values as a tuple. Raises GLib.Error."""
    out = call_raw(bus, dest, path, interface, method, args, reply)
    return out.unpack() if out is not None else ()


def call_all(bus, dest, requests):
    """Sends every (path, interface, method, args, reply) at once and then waits for the
    answers: the application answers them in turn without waiting for a round trip each (the
    on-screen test asks two questions per label, a few hundred per read of the window). Returns
    each reply's values as a tuple, or None where the call failed."""
    answers = [None] * len(requests)
    pending = [len(requests)]

    def answered(source, result, i):
        try:
            out = source.call_finish(result)
            answers[i] = out.unpack() if out is not None else ()
        except GLib.Error:
            answers[i] = None
        pending[0] -= 1

    context = GLib.MainContext.default()
    for i, (path, interface, method, args, reply) in enumerate(requests):
        bus.call(*call_arguments(dest, path, interface, method, args, reply), answered, i)
    while pending[0]:
        context.iteration(True)
    return answers


def role_name(role):
    """AT-SPI's name of a role number, as libatspi's get_role_name gives it ("push button")."""
    try:
        return Atspi.role_get_name(Atspi.Role(role)) or f"role {role}"
    except ValueError:
        return f"role {role}"


class Node:
    """One accessible of the snapshot."""

    __slots__ = (
        "path",
        "parent_path",
        "index",
        "count",
        "interfaces",
        "name",
        "role",
        "states",
        "children",
        "parent",
        "surface",
    )

    def __init__(self, item):
        """`item`: one entry of the cache's GetItems, a GLib.Variant of type
        ((so)(so)(so)iiassusau) — self, application, parent, index in parent, child count,
        interfaces, name, role, description, states. Read field by field: unpacking the whole
        reply took twice as long as the call itself (pygobject unpacks in Python, a wrapper per
        value), and the tests read the window over and over."""
        field = item.get_child_value
        self.path = field(0).get_child_value(1).get_string()
        self.parent_path = field(2).get_child_value(1).get_string()
        self.index = field(3).get_int32()
        self.count = field(4).get_int32()
        self.interfaces = field(5).get_strv()
        self.name = field(6).get_string()
        self.role = role_name(field(7).get_uint32())
        self.states = field(9).unpack()
        self.children = []
        # Set when the snapshot reaches the node from a window: its parent there, and the
        # surface it is drawn on (see `App.shown`).
        self.parent = None
        self.surface = None

    def has_state(self, state):
        bit = int(state)
        words = self.states
        return bit // 32 < len(words) and bool((words[bit // 32] >> (bit % 32)) & 1)

    def implements(self, interface):
        return interface in self.interfaces

    def descendants(self):
        """The node and everything below it, depth first in document order."""
        out = []
        stack = [self]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out


def is_stack_page(node):
    return node.role == "panel" and node.name == "GtkStackPage"


class App:
    """One application on the accessibility bus."""

    def __init__(self, bus, dest):
        self.bus = bus
        self.dest = dest
        # The last snapshot: its nodes by path, and by the parent the cache names.
        self.nodes = {}
        self.listed = {}

    @staticmethod
    def find(wanted):
        """The application named `wanted` on the accessibility bus (the last one if several), or
        None."""
        bus = accessibility_bus()
        apps = call(
            bus,
            "org.a11y.atspi.Registry",
            ROOT_PATH,
            ACCESSIBLE,
            "GetChildren",
            None,
            "(a(so))",
        )[0]
        found = None
        for dest, path in apps:
            candidate = App(bus, dest)
            try:
                name = candidate.property(path, ACCESSIBLE, "Name")
            except GLib.Error:
                continue
            if name == wanted:
                found = candidate
        return found

    def call(self, path, interface, method, args=None, reply=None):
        return call(self.bus, self.dest, path, interface, method, args, reply)

    def property(self, path, interface, name):
        return self.call(path, PROPERTIES, "Get", GLib.Variant("(ss)", (interface, name)), "(v)")[0]

    def children_of(self, path):
        """The paths of `path`'s children, asked of the application (which makes their
        accessibles, and so puts them in its cache); none if it went away meanwhile."""
        try:
            listed = self.call(path, ACCESSIBLE, "GetChildren", None, "(a(so))")[0]
        except GLib.Error:
            return []
        return [p for _, p in listed]

    def windows(self):
        """The application's windows, each the root of a complete snapshot of what it holds.
        Raises RuntimeError when the tree would not hold still long enough to be read."""
        asked = {ROOT_PATH: self.children_of(ROOT_PATH)}
        for _ in range(MAX_DEPTH + 2):
            reply = call_raw(self.bus, self.dest, CACHE_PATH, "org.a11y.atspi.Cache", "GetItems")
            items = reply.get_child_value(0)
            if items.n_children() > MAX_NODES:
                raise RuntimeError(f"more than {MAX_NODES} accessible objects")
            self.nodes = {}
            self.listed = {}
            for i in range(items.n_children()):
                node = Node(items.get_child_value(i))
                self.nodes[node.path] = node
                self.listed.setdefault(node.parent_path, []).append(node)
            frames, missing = self.link(asked)
            if not missing:
                return frames
            self.ask_below(missing, asked)
        raise RuntimeError("the accessibility tree kept changing while it was read")

    def ask_below(self, paths, asked):
        """Asks `paths` for their children, and those children for theirs, level by level down
        to what the snapshot already holds, recording the answers in `asked`: a window that
        just changed (a dialog opened, a page shown) lacks whole subtrees, and a snapshot per
        level of them took seconds (a quarter second per snapshot). The questions of one level
        are sent together (`call_all`)."""
        frontier = list(paths)
        for _ in range(MAX_DEPTH):
            if not frontier or len(asked) > MAX_NODES:
                return
            answers = call_all(
                self.bus,
                self.dest,
                [(path, ACCESSIBLE, "GetChildren", None, "(a(so))") for path in frontier],
            )
            below = []
            for path, answer in zip(frontier, answers):
                kids = [p for _, p in answer[0]] if answer is not None else []
                asked[path] = kids
                below.extend(k for k in kids if k not in self.nodes and k not in asked)
            frontier = below

    def link(self, asked):
        """Links the snapshot's nodes into the tree below the windows: the windows and their
        nodes, and the paths whose children the snapshot lacks (to be asked for)."""
        missing = []
        frames = self.kids(ROOT_PATH, asked, missing) or []
        stack = [(frame, frame, 0) for frame in frames]
        count = 0
        while stack:
            node, surface, depth = stack.pop()
            count += 1
            if count > MAX_NODES:
                raise RuntimeError(f"more than {MAX_NODES} accessible objects")
            node.surface = surface
            kids = self.kids(node.path, asked, missing) if depth < MAX_DEPTH else []
            node.children = kids or []
            for kid in node.children:
                kid.parent = node
                inner = kid if kid.name == "GtkPopover" else surface
                stack.append((kid, inner, depth + 1))
        return frames, missing

    def kids(self, path, asked, missing):
        """The children of `path` in the snapshot, or None (with `path` added to `missing`) when
        the snapshot lacks some. A GtkStack's pages (GtkStackPage, not widgets) are left out,
        their widgets taking their places: GTK 4.8 makes a page's accessible only when someone
        asks the stack for its children one by one, and until then gives the widget the stack
        as its parent, so a tree with them would depend on who asked what before."""
        node = self.nodes.get(path)
        if path in asked:
            kids = [self.nodes.get(p) for p in asked[path]]
            complete = None not in kids
        else:
            kids = sorted(self.listed.get(path, []), key=lambda n: n.index)
            if node is None:
                complete = False
            elif is_stack_page(node):
                # Its widget keeps its index in the stack.
                complete = len(kids) == node.count
            else:
                complete = [k.index for k in kids] == list(range(node.count))
        if not complete:
            missing.append(path)
            return None
        out = []
        for kid in kids:
            if is_stack_page(kid):
                inner = self.kids(kid.path, asked, missing)
                if inner is None:
                    return None
                out.extend(inner)
            else:
                out.append(kid)
        return out

    def parent_path(self, path):
        node = self.nodes.get(path)
        if node is not None:
            return node.parent_path
        try:
            return self.property(path, ACCESSIBLE, "Parent")[1]
        except GLib.Error:
            return None

    def is_within(self, hit, node, surface):
        """Whether the accessible at path `hit` is `node` or below it; stops at `surface`."""
        current = hit
        for _ in range(MAX_DEPTH):
            if current is None or current == NULL_PATH:
                return False
            if current == node.path:
                return True
            if current == surface.path:
                return False
            current = self.parent_path(current)
        return False

    def shown(self, node):
        """Whether `node` is really on screen (None when that cannot be told): GTK 4.8 marks
        every present widget "visible", also the pages of a GtkStack that are not showing, so
        this asks the surface the node is drawn on (its window, or the GtkPopover it lies in: a
        popover is a surface of its own, whose widgets' coordinates are the popover's) which
        accessible is at the centre of the node's extents (GTK answers with gtk_widget_pick,
        which only finds what is drawn) and checks that it is the node or one of its
        descendants. None when it cannot be told: the extents or the point cannot be asked, or
        what is drawn there has no accessible."""
        return self.shown_all([node])[0]

    def shown_all(self, nodes):
        """`shown` of each of `nodes`, asked of the application all at once per question."""
        extents = call_all(
            self.bus,
            self.dest,
            [
                (n.path, COMPONENT, "GetExtents", GLib.Variant("(u)", (WINDOW_COORDS,)), "((iiii))")
                for n in nodes
            ],
        )
        answers = [None] * len(nodes)
        asked = []
        for i, (node, reply) in enumerate(zip(nodes, extents)):
            if reply is None:
                continue
            x, y, width, height = reply[0]
            if width <= 0 or height <= 0:
                answers[i] = False
                continue
            asked.append((i, (x + width // 2, y + height // 2)))
        hits = call_all(
            self.bus,
            self.dest,
            [
                (
                    (nodes[i].surface or nodes[i]).path,
                    COMPONENT,
                    "GetAccessibleAtPoint",
                    GLib.Variant("(iiu)", (cx, cy, WINDOW_COORDS)),
                    "((so))",
                )
                for i, (cx, cy) in asked
            ],
        )
        for (i, _), reply in zip(asked, hits):
            if reply is None:
                continue
            hit = reply[0][1]
            if hit == NULL_PATH:
                # GTK found a widget there that has no accessible of its own (the GtkText inside
                # an AdwEntryRow): nothing to compare with.
                continue
            answers[i] = self.is_within(hit, nodes[i], nodes[i].surface or nodes[i])
        return answers
