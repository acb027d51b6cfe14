#!/usr/bin/env bash
# GUI smoke test: runs the Palisade app under Xvfb, takes a screenshot and checks that the app
# is still running (did not crash) after a few seconds.
#
# Usage: gui-smoke.sh PALISADE_BINARY SCREENSHOT.png
#
# Environment:
#   DBUS_SYSTEM_BUS_ADDRESS  the system bus the app talks to (the helper may or may not run there)
#   GUI_SMOKE_WAIT           seconds to let the app run before the screenshot (default 5)
#   GUI_SMOKE_SIZE           screen size WxH (default 1024x900)
#   LANGUAGE, LANG, PALISADE_LOCALEDIR   passed through to the app, to check a translation
#
# Needs the Debian packages xvfb, imagemagick (import) and dbus (dbus-run-session).
# Exit status: 0 when the app was still running and the screenshot was written, 1 otherwise.
# The app's output is kept next to the screenshot, as SCREENSHOT.log.

set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 PALISADE_BINARY SCREENSHOT.png" >&2
    exit 2
fi
app=$1
out=$2
log=${out%.png}.log
wait_s=${GUI_SMOKE_WAIT:-5}
size=${GUI_SMOKE_SIZE:-1024x900}

for tool in Xvfb import dbus-run-session; do
    if ! command -v "$tool" >/dev/null; then
        echo "gui-smoke: $tool is missing (apt-get install xvfb imagemagick dbus)" >&2
        exit 1
    fi
done
if [[ ! -x $app ]]; then
    echo "gui-smoke: $app is not an executable" >&2
    exit 1
fi
if [[ -z ${DBUS_SYSTEM_BUS_ADDRESS:-} ]]; then
    echo "gui-smoke: warning: DBUS_SYSTEM_BUS_ADDRESS is not set, the app uses the real system bus" >&2
fi

# A display number nobody uses.
display=
for n in $(seq 90 140); do
    if [[ ! -e /tmp/.X$n-lock && ! -e /tmp/.X11-unix/X$n ]]; then
        display=:$n
        break
    fi
done
if [[ -z $display ]]; then
    echo "gui-smoke: no free X display between :90 and :140" >&2
    exit 1
fi

xvfb_pid=
app_pid=
cleanup() {
    if [[ -n $app_pid ]] && kill -0 "$app_pid" 2>/dev/null; then
        kill "$app_pid" 2>/dev/null || true
        wait "$app_pid" 2>/dev/null || true
    fi
    if [[ -n $xvfb_pid ]] && kill -0 "$xvfb_pid" 2>/dev/null; then
        kill "$xvfb_pid" 2>/dev/null || true
        wait "$xvfb_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

Xvfb "$display" -screen 0 "${size}x24" -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
for _ in $(seq 50); do
    [[ -e /tmp/.X11-unix/X${display#:} ]] && break
    kill -0 "$xvfb_pid" 2>/dev/null || { echo "gui-smoke: Xvfb did not start" >&2; exit 1; }
    sleep 0.1
done

# The app gets its own session bus (GtkApplication registers its id there) and software
# rendering (Xvfb has no GPU). The session bus also starts the AT-SPI registry on demand.
DISPLAY=$display GDK_BACKEND=x11 GSK_RENDERER=cairo \
    dbus-run-session -- "$app" >"$log" 2>&1 &
app_pid=$!

sleep "$wait_s"

status=0
if ! kill -0 "$app_pid" 2>/dev/null; then
    wait "$app_pid" && code=0 || code=$?
    app_pid=
    echo "gui-smoke: the app exited (status $code) within ${wait_s}s" >&2
    status=1
fi
if grep -q "panicked" "$log"; then
    echo "gui-smoke: the app panicked" >&2
    status=1
fi
if ! import -display "$display" -window root "$out"; then
    echo "gui-smoke: could not take a screenshot" >&2
    status=1
fi
if [[ $status -ne 0 ]]; then
    echo "--- app output ($log) ---" >&2
    cat "$log" >&2
    exit 1
fi
echo "gui-smoke: ok, the app is running; screenshot in $out"
