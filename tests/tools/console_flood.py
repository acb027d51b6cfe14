#!/usr/bin/python3
"""Asks the helper for console tickets many times in a row, as whoever runs it, and prints one
JSON line: how many calls got a ticket, were rate-limited, or failed otherwise (by error name),
the median time of the calls that got a ticket, and how long the whole flood took.

  console_flood.py NAME COUNT
"""
import json
import statistics
import sys
import time

import dbus

name, count = sys.argv[1], int(sys.argv[2])
consoles = dbus.Interface(dbus.SystemBus().get_object("io.palisade.Helper1", "/io/palisade/Helper1", introspect=False),
                          "io.palisade.Helper1.Consoles")
result = {"ok": 0, "rate_limited": 0, "other": {}}
granted = []
flood_started = time.monotonic()
for _ in range(count):
    started = time.monotonic()
    try:
        consoles.Open(name, timeout=10)
        granted.append(time.monotonic() - started)
        result["ok"] += 1
    except dbus.exceptions.DBusException as e:
        if e.get_dbus_name() == "io.palisade.Error.RateLimited":
            result["rate_limited"] += 1
        else:
            result["other"][e.get_dbus_name()] = result["other"].get(e.get_dbus_name(), 0) + 1
result["seconds"] = round(time.monotonic() - flood_started, 3)
result["median_ms"] = round(statistics.median(granted) * 1000, 2) if granted else None
print(json.dumps(result), flush=True)
