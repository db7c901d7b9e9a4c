#!/usr/bin/env bash
# roost demo: the console with the broker enabled and diagnostics on, plus simulated sensors
# publishing every second, so that the Status dashboard and the Diagnostics log move at once.
#
#   demo/run.sh            # port 1883
#   DEMO_PORT=18830 demo/run.sh
#
# The sensors use Python paho-mqtt when it is installed, else mosquitto_pub in loops.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
port="${DEMO_PORT:-1883}"
work="$(mktemp -d -t roost-demo.XXXXXX)"

roost="${ROOST_BIN:-}"
if [[ -z "$roost" ]]; then
    cargo build --quiet --manifest-path "$root/Cargo.toml"
    target="${CARGO_TARGET_DIR:-$root/target}"
    roost="$target/debug/roost"
fi

# The demo config with the chosen port, in a scratch directory (the log goes there too).
sed "s/port: 1883/port: $port/" "$here/roost-demo.ron" > "$work/roost.ron"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

start_sensors() {
    if python3 -c 'import paho.mqtt' 2>/dev/null; then
        python3 "$here/sensors.py" 127.0.0.1 "$port" >"$work/sensors.log" 2>&1 &
        pids+=($!)
    elif command -v mosquitto_pub >/dev/null; then
        mosquitto_sub -h 127.0.0.1 -p "$port" -i demo-dashboard -t 'home/#' >/dev/null 2>&1 &
        pids+=($!)
        for room in kitchen garage garden; do
            (
                i=0
                while true; do
                    mosquitto_pub -h 127.0.0.1 -p "$port" -i "sensor-$room" -r \
                        -t "home/$room/temperature" -m "{\"value\": $((18 + RANDOM % 8)), \"seq\": $i}" \
                        2>/dev/null || true
                    i=$((i + 1))
                    sleep 1
                done
            ) &
            pids+=($!)
        done
    else
        echo "demo: install paho-mqtt (pip install paho-mqtt) or mosquitto-clients for the sensors" >&2
    fi
}

start_sensors
# The console owns the terminal until you press q.
"$roost" --config "$work/roost.ron" ${ROOST_THEME:+--theme "$ROOST_THEME"}
