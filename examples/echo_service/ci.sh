#!/usr/bin/env bash
# CI snippet: start the service, capture one client session with sockinspect
# (no tcpdump needed; as root or inside `unshare -rn`), then check the rules.
# Exit status: 0 when every rule holds, 1 when one fails.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
SOCKINSPECT=${SOCKINSPECT:-sockinspect}
out=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$out"' EXIT

"$PYTHON" echo_service.py serve --port 0 > "$out/server.log" &
server=$!
for _ in $(seq 50); do grep -q '^listening' "$out/server.log" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/^listening/ {print $4}' "$out/server.log")

"$SOCKINSPECT" capture -o "$out/session.pcap" --port "$port" -- \
    "$PYTHON" echo_service.py client --port "$port" one two three four five six > /dev/null
"$SOCKINSPECT" check "$out/session.pcap" rules.toml
