#!/usr/bin/env bash
# Console and metrics render times with a large fleet (issue 11's figures): seeds
# N gateways (90% with a CUPS report, in 6 versions) straight into a fresh
# database, starts the release server, signs in, and times LOADS loads each of the
# Fleet page, a Gateways list page, a Gateways search, /metrics and the API's
# GET /fleet (issue 10's figure) with curl (p50/p95/max of time_total, milliseconds). Only talks to 127.0.0.1; everything
# lives in a temp dir removed on exit (KEEP=1 keeps it).
#
#   bash scripts/bench-console.sh            # N=100000 LOADS=100
#   SKIP_BUILD=1 API_PORT=17100 bash scripts/bench-console.sh
set -euo pipefail

N=${N:-100000}
LOADS=${LOADS:-100}
API_PORT=${API_PORT:-17100}
CUPS_PORT=${CUPS_PORT:-18543}
LNS_PORT=${LNS_PORT:-18987}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d /tmp/bench-console.XXXXXX)
SK_PID=
cleanup() {
    [ -n "$SK_PID" ] && kill "$SK_PID" 2>/dev/null && wait "$SK_PID" 2>/dev/null
    [ "${KEEP:-0}" = 1 ] && echo "kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT

[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --bin stationkeeper >&2
BIN=${SK_BIN:-$REPO/target/release/stationkeeper}
TOKEN=bench-console-token
cat > "$TMP/sk.toml" <<TOML
state_dir = "$TMP/state"
[cups]
listen = "127.0.0.1:$CUPS_PORT"
[lns]
listen = "127.0.0.1:$LNS_PORT"
[api]
listen = "127.0.0.1:$API_PORT"
tokens = ["$TOKEN"]
TOML

start() {
    RUST_LOG=warn "$BIN" serve --config "$TMP/sk.toml" 2>>"$TMP/server.log" &
    SK_PID=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$API_PORT/healthz" >/dev/null && return
        sleep 0.1
    done
    echo "server did not start; see $TMP/server.log" >&2; exit 1
}
stop() { kill "$SK_PID"; wait "$SK_PID" 2>/dev/null || true; SK_PID=; }

# The schema comes from the server itself; the rows from SQL (registering 100,000
# gateways through the API is the CUPS benchmark's business, not this one's).
start; stop
sqlite3 "$TMP/state/stationkeeper.db" <<SQL
PRAGMA foreign_keys = ON;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO gateways (id, eui, name, rf_region, origin, created_at)
SELECT printf('%08x-0000-4000-8000-%012x', i, i), 0x0016c00100000000 + i, 'gw-' || i,
       'EU868', 'operator', '2026-12-01T00:00:00.000Z' FROM n;
INSERT INTO cups_reports (gateway_id, eui, station, model, package, keys,
                          cups_uri, tc_uri, cups_cred_crc, tc_cred_crc)
SELECT id, eui, '2.0.6(rpi/std) 2022-01-21', 'rpi',
       printf('1.%d.0', eui % 6), '[]', NULL, NULL, 0, 0
  FROM gateways WHERE eui % 10 != 0;
INSERT INTO cups_contacts (eui, at, peer, auth)
SELECT eui, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d minutes', (eui % 2880))),
       '192.0.2.1:4000', 'token'
  FROM cups_reports;
SQL
start

COOKIE=$(curl -s -o /dev/null -D - -X POST --data "token=$TOKEN" \
    "http://127.0.0.1:$API_PORT/console/sign-in" | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')
[ -n "$COOKIE" ] || { echo "sign-in failed" >&2; exit 1; }

measure() { # name, then curl arguments
    local name=$1; shift
    for _ in $(seq "$LOADS"); do
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$@"
    done > "$TMP/$name.txt"
    python3 - "$name" "$TMP/$name.txt" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[2])]
bad = [c for c, _ in rows if c != "200"]
t = sorted(float(s) * 1000 for _, s in rows)
pick = lambda q: t[min(len(t) - 1, int(q * len(t)))]
print(f"{sys.argv[1]:<22} n={len(t)} p50={pick(0.5):.1f} ms p95={pick(0.95):.1f} ms max={t[-1]:.1f} ms" + (f" NON-200: {len(bad)}" if bad else ""))
PY
}
echo "gateways: $N; loads per page: $LOADS; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
B="http://127.0.0.1:$API_PORT"
measure fleet -b "$COOKIE" "$B/console/"
measure gateways-list -b "$COOKIE" "$B/console/wireless-gateways?after=00010000"
measure gateways-search -b "$COOKIE" "$B/console/wireless-gateways?q=gw-9999"
measure metrics -H "Authorization: Bearer $TOKEN" "$B/metrics"
measure fleet-api -H "Authorization: Bearer $TOKEN" "$B/fleet"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
