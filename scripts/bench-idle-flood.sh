#!/usr/bin/env bash
# Idle-flood check (issue 9 item 4): FLOOD bare TCP connections from 127.0.0.2, none
# sending a byte, opened at RATE per second against the CUPS port, while a settled
# gateway polls from 127.0.0.1 one poll at a time. Prints the legit polls' p50/p99/max
# without the flood and during it (target: under 2 s during it). The server runs
# with its default [limits], as an operator would run it.
#
#   bash scripts/bench-idle-flood.sh
#   SK_BIN=/path/to/older/stationkeeper bash scripts/bench-idle-flood.sh   # before
#
# Only talks to 127.0.0.0/8; everything lives in a temp dir removed on exit (KEEP=1
# keeps it). Knobs (env): FLOOD=12000 RATE=600 POLLS=100 GATEWAYS=100
# CUPS_PORT=18543 API_PORT=17100 LNS_PORT=18987 SK_LOG=info SKIP_BUILD=1
# SK_BIN=PATH (stationkeeper binary to measure).
set -euo pipefail

FLOOD=${FLOOD:-12000}
RATE=${RATE:-600}
POLLS=${POLLS:-100}
GATEWAYS=${GATEWAYS:-100}
CUPS_PORT=${CUPS_PORT:-18543}
API_PORT=${API_PORT:-17100}
LNS_PORT=${LNS_PORT:-18987}
SK_LOG=${SK_LOG:-info}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d /tmp/bench-idle-flood.XXXXXX)
SK_PID=

log() { printf '[bench-idle-flood %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$SK_PID" ] && kill -0 "$SK_PID" 2>/dev/null; then
        kill -TERM "$SK_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$SK_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SK_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the flooder holds every connection open: one descriptor each, plus the polls
ulimit -n "$((FLOOD + 2000))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt "$((FLOOD + 500))" ] || die "ulimit -n is $(ulimit -n); need more than FLOOD+500"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building release binaries"
    (cd "$REPO" && cargo build --release --bin stationkeeper --bin cups-load) >&2
fi
SK=${SK_BIN:-$REPO/target/release/stationkeeper}
LOAD="$REPO/target/release/cups-load"
[ -x "$SK" ] && [ -x "$LOAD" ] || die "missing $SK or $LOAD"

mkdir -p "$TMP/state"
cat >"$TMP/stationkeeper.toml" <<EOF
state_dir = "$TMP/state"

[cups]
listen = "127.0.0.1:$CUPS_PORT"
public_uri = "https://localhost:$CUPS_PORT"

[lns]
listen = "127.0.0.1:$LNS_PORT"
public_uri = "wss://localhost:$LNS_PORT"

[api]
listen = "127.0.0.1:$API_PORT"
tokens = ["bench-api-token"]

[gateways]
unknown = "register"
EOF
RUST_LOG=$SK_LOG "$SK" serve --config "$TMP/stationkeeper.toml" >"$TMP/server.log" 2>&1 &
SK_PID=$!
for _ in $(seq 300); do grep -q 'ready' "$TMP/server.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'ready' "$TMP/server.log" || die "no ready line within 30 s"
log "stationkeeper $SK ready (pid $SK_PID); $FLOOD bare connections at $RATE/s from 127.0.0.2, $POLLS polls from 127.0.0.1"

OVF0=$(nstat -az TcpExtListenOverflows 2>/dev/null | awk '/ListenOverflows/ {print $2}')
"$LOAD" --ca "$TMP/state/pki/ca.crt" --addr "127.0.0.1:$CUPS_PORT" --host "localhost:$CUPS_PORT" \
    --phases "$GATEWAYS" --idle-flood "$FLOOD" --flood-rate "$RATE" --flood-from 127.0.0.2 \
    --legit-polls "$POLLS" --timeout 30 | tee "$TMP/run.txt" | grep -E '^(FLOOD|WARMUP)|problems|: [0-9]+$' || true
OVF1=$(nstat -az TcpExtListenOverflows 2>/dev/null | awk '/ListenOverflows/ {print $2}')
echo "listen queue overflows during the run (whole machine): $(( ${OVF1:-0} - ${OVF0:-0} ))"
echo "server log: $(grep -c 'handshake_per_source' "$TMP/server.log" || true) refusal summary lines, $(wc -c <"$TMP/server.log") bytes"
