#!/usr/bin/env bash
# Refusal flood (issue 9, item 1): log bytes per second written by the server while
# 4 kept-alive TLS connections send refused CUPS requests for 10 s, and a settled
# gateway's poll latency meanwhile, measured by benches/refusal_flood.rs.
#
#   bash scripts/bench-refusal-flood.sh
#
# Only talks to 127.0.0.1; everything lives in a temp dir removed on exit (KEEP=1
# keeps it). Knobs (env):
#   SERVER=target/release/stationkeeper   the server binary (e.g. an older build)
#   MODES="none bad-router no-creds"      flood modes, one run each
#   SECS=10 CONNS=4 POLLS=100
#   CUPS_PORT=18443 API_PORT=17000 LNS_PORT=18887
#   SKIP_BUILD=1                          use the existing target/release binaries
set -euo pipefail

SERVER=${SERVER:-target/release/stationkeeper}
MODES=${MODES:-none bad-router no-creds}
SECS=${SECS:-10}
CONNS=${CONNS:-4}
POLLS=${POLLS:-100}
CUPS_PORT=${CUPS_PORT:-18443}
API_PORT=${API_PORT:-17000}
LNS_PORT=${LNS_PORT:-18887}

cd "$(dirname "$0")/.."
if [[ -z "${SKIP_BUILD:-}" ]]; then
    cargo build --release --bin stationkeeper --bin refusal-flood
fi
SERVER=$(realpath "$SERVER")
dir=$(mktemp -d)
pid=
cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    if [[ -n "${KEEP:-}" ]]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

cat > "$dir/sk.toml" <<TOML
state_dir = "state"
[cups]
listen = "127.0.0.1:$CUPS_PORT"
public_uri = "https://localhost:$CUPS_PORT"
[lns]
listen = "127.0.0.1:$LNS_PORT"
[api]
listen = "127.0.0.1:$API_PORT"
tokens = ["bench-refusal-flood"]
TOML
"$SERVER" serve --config "$dir/sk.toml" > "$dir/stdout.txt" 2> "$dir/server.log" &
pid=$!
for _ in $(seq 100); do grep -q ready "$dir/server.log" 2>/dev/null && break; sleep 0.1; done

for mode in $MODES; do
    target/release/refusal-flood --cups "127.0.0.1:$CUPS_PORT" --api "http://127.0.0.1:$API_PORT" \
        --api-token bench-refusal-flood --ca "$dir/state/pki/ca.crt" --log "$dir/server.log" \
        --mode "$mode" --secs "$SECS" --conns "$CONNS" --polls "$POLLS"
done
