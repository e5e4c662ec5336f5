#!/usr/bin/env bash
# CUPS poll cost of a running campaign, and GET /fleet, at N gateways (issue 10):
#   1. register N gateways (open registration, cups-load's warm-up) and measure the
#      CUPS poll rate against nginx, alternating in the same run (baseline);
#   2. create a campaign over all N gateways (waves 1 %, 10 %, 100 %; MaxInProgress
#      1000) whose definition takes 1.0.0 to 1.0.0, so its tasks complete at the
#      next poll with the same 14-byte answer: the load checker stays valid while
#      the campaign opens waves, creates tasks and settles them under the load;
#   3. time GET /fleet; measure again with the campaign running.
# Ratios are against nginx in the same run (the machine may be busy).
#
#   bash scripts/bench-campaign.sh        (N=100000 DURATION=10 ROUNDS=3 SKIP_BUILD=1 KEEP=1)
#
# Only talks to 127.0.0.1. Needs nginx and curl. SETTLE_MAX=30 RETRY_NOISY=3 as in
# bench-cups.sh (0 and 0 on a machine that is never quiet).
set -euo pipefail

N=${N:-100000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-64}
CUPS_PORT=${CUPS_PORT:-18443}
API_PORT=${API_PORT:-17000}
LNS_PORT=${LNS_PORT:-18887}
NGINX_PORT=${NGINX_PORT:-19443}
TOKEN=bench-api-token
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d /tmp/bench-campaign.XXXXXX)
SK_PID=
NGX_PID=
log() { printf '[bench-campaign %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
cleanup() {
    local rc=$?
    [ -n "$SK_PID" ] && kill "$SK_PID" 2>/dev/null || true
    [ -n "$NGX_PID" ] && kill -QUIT "$NGX_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$REPO" && cargo build --release --bin stationkeeper --bin cups-load) >&2
fi
SK="$REPO/target/release/stationkeeper"
LOAD="$REPO/target/release/cups-load"
VEC="$REPO/tests/vectors/station-test4"

mkdir -p "$TMP/state"
cat >"$TMP/sk.toml" <<TOML
state_dir = "$TMP/state"
[cups]
listen = "127.0.0.1:$CUPS_PORT"
public_uri = "https://localhost:$CUPS_PORT"
[lns]
listen = "127.0.0.1:$LNS_PORT"
public_uri = "wss://localhost:$LNS_PORT"
[api]
listen = "127.0.0.1:$API_PORT"
tokens = ["$TOKEN"]
[gateways]
unknown = "register"
register_per_source_per_min = 4000000000
register_per_min = 4000000000
max_unconfirmed = 4000000000
[limits]
max_connections = 16384
TOML
RUST_LOG=info "$SK" serve --config "$TMP/sk.toml" >"$TMP/server.log" 2>&1 &
SK_PID=$!
for i in $(seq 300); do grep -q ready "$TMP/server.log" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$TMP/server.log" || die "stationkeeper did not start"
CA="$TMP/state/pki/ca.crt"

NG="$TMP/nginx"; mkdir -p "$NG/www" "$NG/tmp" "$NG/logs"
head -c 14 /dev/zero >"$NG/www/update-info"
chmod 755 "$TMP" "$NG" "$NG/www"; chmod 644 "$NG/www/update-info"
cat >"$NG/nginx.conf" <<CONF
daemon off; worker_processes 2; pid $NG/nginx.pid; error_log $NG/logs/error.log warn;
events { worker_connections 16384; }
http { access_log off; client_body_temp_path $NG/tmp/body; proxy_temp_path $NG/tmp/proxy;
  fastcgi_temp_path $NG/tmp/fastcgi; uwsgi_temp_path $NG/tmp/uwsgi; scgi_temp_path $NG/tmp/scgi;
  server { listen 127.0.0.1:$NGINX_PORT ssl; server_name localhost;
    ssl_certificate $TMP/state/pki/server.crt; ssl_certificate_key $TMP/state/pki/server.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_prefer_server_ciphers on; ssl_ecdh_curve X25519:prime256v1:secp384r1;
    root $NG/www; location = /update-info { default_type application/octet-stream; error_page 405 =200 \$uri; } } }
CONF
"$(command -v nginx)" -c "$NG/nginx.conf" -p "$NG" >"$NG/logs/stdout" 2>&1 &
NGX_PID=$!
sleep 1
NGX_WORKERS=$(pgrep -P "$NGX_PID" | paste -sd, -)

KEY_CRC=488546068   # tests/vectors/station-test4/sig-0.key
api() { curl -sS -H "Authorization: Bearer $TOKEN" "$@"; }
fleet_ms() { for i in 1 2 3 4 5; do api -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$API_PORT/fleet"; done | sort -n | sed -n 3p | awk '{printf "%.1f", $1 * 1000}'; }
export TOKEN API_PORT KEY_CRC VEC TMP N

# Run by cups-load between its two phases (N-1 then N gateways: it measures each
# count once): the campaign over all N gateways.
cat >"$TMP/create.sh" <<'SH'
set -euo pipefail
api() { curl -sS -H "Authorization: Bearer $TOKEN" "$@"; }
fleet_ms() { for i in 1 2 3 4 5; do api -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$API_PORT/fleet"; done | sort -n | sed -n 3p | awk '{printf "%.1f", $1 * 1000}'; }
fleet_ms >"$TMP/fleet0"
BLOB=$(api --data-binary "@$VEC/v1.bin" "http://127.0.0.1:$API_PORT/blobs" | sed 's/.*"Id":"\([^"]*\)".*/\1/')
api -H 'Content-Type: application/json' -d "{\"Name\":\"k\",\"PublicKey\":\"$(base64 -w0 "$VEC/sig-0.key")\"}" \
    "http://127.0.0.1:$API_PORT/signing-keys" >/dev/null
V='{"Station":"2.0.6(rpi/std) 2022-01-21 10:00:00","PackageVersion":"1.0.0","Model":"rpi"}'
DEF=$(api -H 'Content-Type: application/json' -d "{\"AutoCreateTasks\":false,\"Update\":{\"UpdateDataSource\":\"$BLOB\",\"LoRaWAN\":{\"SigKeyCrc\":$KEY_CRC,\"UpdateSignature\":\"$(base64 -w0 "$VEC/v1.bin.sig-0")\",\"CurrentVersion\":$V,\"UpdateVersion\":$V}}}" \
    "http://127.0.0.1:$API_PORT/wireless-gateway-task-definitions" | sed 's/.*"Id":"\([^"]*\)".*/\1/')
api -o /dev/null -w '%{time_total}\n' -H 'Content-Type: application/json' -d "{\"Definitions\":[\"$DEF\"],\"Target\":{\"Models\":[\"rpi\"]},\"Waves\":[{\"Percent\":1},{\"Percent\":10},{\"Percent\":100}],\"Gate\":{\"SuccessPercent\":100,\"WithinMinutes\":600,\"OnFailure\":\"Pause\"},\"MaxInProgress\":1000}" \
    "http://127.0.0.1:$API_PORT/campaigns" >"$TMP/create_s"
api "http://127.0.0.1:$API_PORT/campaigns?maxResults=1" | sed 's/.*"Id":"\([^"]*\)".*/\1/' >"$TMP/cid"
sleep 3
fleet_ms >"$TMP/fleet1"
SH

log "register $N gateways, measure (baseline); create a campaign over all of them; measure again"
"$LOAD" --ca "$CA" --sni localhost --host "localhost:$CUPS_PORT" --tls 1.2 --kx station \
    -c "$CONCURRENCY" -t "$DURATION" --rounds "$ROUNDS" --settle-max "${SETTLE_MAX:-30}" \
    --retry-noisy "${RETRY_NOISY:-3}" --noisy-pct 10 --warmup-concurrency 128 --keys "$KEY_CRC" \
    --addr "127.0.0.1:$CUPS_PORT" --target stationkeeper --server-pid "$SK_PID" --label stationkeeper \
    --compare-addr "127.0.0.1:$NGINX_PORT" --compare-pid "$NGX_PID,$NGX_WORKERS" --compare-label nginx \
    --phases "$((N - 1)),$N" --between-phases "bash $TMP/create.sh" >"$TMP/run.txt" || log "cups-load exited $? (see $TMP/run.txt)"
BASE=$(grep '^COMPARE' "$TMP/run.txt" | sed -n 1p)
WITH=$(grep '^COMPARE' "$TMP/run.txt" | sed -n 2p)
CID=$(cat "$TMP/cid")
STATE=$(api "http://127.0.0.1:$API_PORT/campaigns/$CID" | grep -o '"Counts":{[^}]*}' | tail -1)
FLEET0=$(cat "$TMP/fleet0"); FLEET1=$(cat "$TMP/fleet1"); FLEET2=$(fleet_ms)
CREATE_S=$(cat "$TMP/create_s")

echo
echo "== campaign overhead on CUPS polls, $N gateways, $(date -u +'%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "baseline (no campaign):   $BASE"
echo "campaign running:         $WITH"
echo "campaign created (POST /campaigns, eligibility over $N gateways) in ${CREATE_S} s; its gateways after phase 2: $STATE"
echo "GET /fleet median of 5: ${FLEET0} ms before, ${FLEET1} ms with the campaign, ${FLEET2} ms after phase 2"
