#!/usr/bin/python3
"""Listens on the system bus for the drop log's Logged signals for a while, as whoever runs it,
the way an eavesdropper would: a plain match rule, and an eavesdropping one (which the bus
refuses to ordinary users). Prints "ready" once both are asked for, then after SECONDS the
number of Logged signals it received: {"received": N, "eavesdrop": "allowed" | "<error>"}.

  signal_watch.py SECONDS

Uses python3-dbus with the GLib main loop (Debian's python3-dbus and python3-gi).
DBUS_SYSTEM_BUS_ADDRESS selects the bus.
"""
import json
import sys

import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

INTERFACE = "io.palisade.Helper1.Log"


def main():
    seconds = float(sys.argv[1])
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    received = [0]

    def count(*_args, **_kwargs):
        received[0] += 1

    bus.add_signal_receiver(count, dbus_interface=INTERFACE, signal_name="Logged")
    try:
        bus.add_match_string(f"eavesdrop=true,type='signal',interface='{INTERFACE}'")
        eavesdrop = "allowed"
    except dbus.exceptions.DBusException as e:
        eavesdrop = e.get_dbus_name() or str(e)
    print("ready", flush=True)
    loop = GLib.MainLoop()
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()
    print(json.dumps({"received": received[0], "eavesdrop": eavesdrop}), flush=True)


if __name__ == "__main__":
    main()
