#!/usr/bin/python3
"""Runs atspi_dump.py and atspi_action.py for one caller over a pipe, in one process: a test
reads the window again and again while it waits for it to change, and each run of a tool paid
for starting Python, loading GObject introspection and connecting to the accessibility bus
again (a third of a read of Palisade's window).

Usage: atspi_serve.py

Each line on stdin is a JSON array: a tool's file name ("atspi_dump.py" or "atspi_action.py")
and its arguments. For each, one line on stdout: {"status": N, "stdout": "...", "stderr": "..."},
what running that tool with those arguments prints and exits with. Ends at the end of stdin.
Nothing is kept from one request to the next but the tools' modules and the connection to the
accessibility bus. Needs what the tools need.
"""

import contextlib
import io
import json
import os
import sys

# The tools lie beside this file (also with PYTHONSAFEPATH set); importing them must not leave
# a __pycache__ in the checkout.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import atspi_action  # noqa: E402
import atspi_dump  # noqa: E402

TOOLS = {"atspi_dump.py": atspi_dump.main, "atspi_action.py": atspi_action.main}


def run(request):
    """One request: its reply, as the tool run on its own would have given it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if (
            not isinstance(request, list)
            or not request
            or not all(isinstance(arg, str) for arg in request)
            or request[0] not in TOOLS
        ):
            print(f"atspi_serve: not a request: {request!r}", file=sys.stderr)
            status = 2
        else:
            try:
                status = TOOLS[request[0]](request)
            except Exception as e:  # noqa: BLE001 - as the tool itself reports it
                print(f"{request[0]}: {type(e).__name__}: {e}", file=sys.stderr)
                status = 1
    return {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main():
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            request = None
        sys.stdout.write(json.dumps(run(request)) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
