#!/usr/bin/env bash
# Quit the real app with Ctrl+Q through an X server, DELAY seconds after a fresh first launch,
# and print how long the window took to leave the screen and the process to exit.
# Needs Debian's xvfb, xdotool and imagemagick, and Xvfb running on $DISPLAY (default :99):
#   Xvfb :99 -screen 0 1400x900x24 &  benchmarks/quit_through_x.sh /tmp/quit-at-8 8
set -euo pipefail
cd "$(dirname "$0")/.."
export DISPLAY=${DISPLAY:-:99}
DIR=$1 DELAY=$2
rm -rf "$DIR" && mkdir -p "$DIR"
XDG_CACHE_HOME=$DIR/cache XDG_DATA_HOME=$DIR/data XDG_CONFIG_HOME=$DIR/config \
    QT_QPA_PLATFORM=xcb setsid .venv/bin/python -m fewshot_gui >"$DIR/app.log" 2>&1 &
APP=$!
sleep "$DELAY"
WINDOW=$(xdotool search --name "FewShot Labeler" | head -1)
import -window root "$DIR/before-quit.png"
xdotool windowfocus "$WINDOW"
sleep 0.2
xdotool key ctrl+q
t0=$(date +%s.%N)
for _ in $(seq 1 250); do
    xdotool search --onlyvisible --name "FewShot Labeler" >/dev/null 2>&1 || break
    sleep 0.02
done
t1=$(date +%s.%N)
for _ in $(seq 1 500); do
    kill -0 "$APP" 2>/dev/null || break
    sleep 0.02
done
t2=$(date +%s.%N)
echo "load $(cut -d' ' -f1 /proc/loadavg): window hidden after $(echo "$t1 - $t0" | bc) s," \
    "process gone after $(echo "$t2 - $t0" | bc) s"
sleep 1
echo "engine-measuring children left: $(pgrep -fc spawn_main || true)"
