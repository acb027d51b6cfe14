#!/usr/bin/python3
"""Calls every method of every io.palisade.* interface of the helper once, with harmless
arguments built from the introspected signature, and reads every property; prints one JSON
line per call (properties carry "property" instead of "method"):
{"interface": ..., "method": ..., "error": "<D-Bus error name or null>", "seconds": ...}.
Run as the user whose refusal is being tested; DBUS_SYSTEM_BUS_ADDRESS selects the bus.
Uses python3-dbus, which (unlike dbus-send) can pass file descriptors and booleans.
"""
import json
import os
import sys
import time
import xml.etree.ElementTree as ET

import dbus

BUS_NAME = "io.palisade.Helper1"
PATH = "/io/palisade/Helper1"


def value(sig):
    if sig == "ay":
        return dbus.ByteArray(b"\0")
    if sig.startswith("a"):
        # An empty array of any element type (Vms.CreateBridged's port forwards, "a(sqq)").
        return dbus.Array([], signature=sig[1:])
    if sig == "h":
        return dbus.types.UnixFd(os.open("/dev/null", os.O_RDONLY))
    simple = {"s": dbus.String("x"), "t": dbus.UInt64(1), "u": dbus.UInt32(1), "b": dbus.Boolean(False),
              "q": dbus.UInt16(1), "y": dbus.Byte(1), "i": dbus.Int32(1), "x": dbus.Int64(1)}
    if sig in simple:
        return simple[sig]
    sys.exit(f"call_all.py: no value for D-Bus type {sig}")


def main():
    bus = dbus.SystemBus()
    obj = bus.get_object(BUS_NAME, PATH, introspect=False)
    xml = obj.Introspect(dbus_interface="org.freedesktop.DBus.Introspectable")
    for iface in ET.fromstring(xml).findall("interface"):
        name = iface.get("name")
        if not name.startswith("io.palisade."):
            continue
        for method in iface.findall("method"):
            args = [value(a.get("type")) for a in method.findall("arg") if a.get("direction", "in") == "in"]
            started = time.monotonic()
            error = None
            try:
                obj.get_dbus_method(method.get("name"), dbus_interface=name)(*args, timeout=30)
            except dbus.exceptions.DBusException as e:
                error = e.get_dbus_name()
            print(json.dumps({"interface": name, "method": method.get("name"), "error": error,
                              "seconds": round(time.monotonic() - started, 3)}), flush=True)
        for prop in iface.findall("property"):
            started = time.monotonic()
            error = None
            try:
                obj.Get(name, prop.get("name"), dbus_interface="org.freedesktop.DBus.Properties", timeout=30)
            except dbus.exceptions.DBusException as e:
                error = e.get_dbus_name()
            print(json.dumps({"interface": name, "property": prop.get("name"), "error": error,
                              "seconds": round(time.monotonic() - started, 3)}), flush=True)


if __name__ == "__main__":
    main()
