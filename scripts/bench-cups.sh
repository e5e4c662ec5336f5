#!/usr/bin/env bash
# CUPS load benchmark: stationkeeper at 1,000 and 100,000 registered gateways
# against nginx serving the same 14-byte answer over TLS with the same certificate,
# measured alternately in the same run by benches/cups_load.rs (a fresh TCP+TLS
# connection per poll, like station).
#
#   bash scripts/bench-cups.sh
#
# Only talks to 127.0.0.1. Everything lives in a temp dir that is removed on exit
# (KEEP=1 keeps it, with the server log and the raw output run.txt). Knobs (env):
#   N1=1000 N2=100000        gateway counts measured
#   DURATION=10              seconds per measured run
#   ROUNDS=3                 runs per side and phase (stationkeeper and nginx alternate)
#   SETTLE_MAX=30            before each run, wait up to this long for other processes
#                            to use < 5% of the machine (0: don't wait)
#   RETRY_NOISY=3 NOISY_PCT=10  repeat a run (up to 3 times) if other processes used
#                            more than 10% of the machine during it
#   CONCURRENCY=64           concurrent pollers in measured phases
#   WARMUP_CONCURRENCY=128   concurrent gateways during registration
#   TLS=1.2                  1.2 | 1.3 | default (what cups-load offers)
#   KX=station               ECDHE groups offered: station (station 2.0.6's captured order
#                            restricted to ring's groups: P-384, P-256, X25519) | default
#                            (rustls: X25519 first) | x25519 | p256 | p384
#   CHAIN_CHECK=once         the generator verifies each distinct certificate chain once per
#                            run and the handshake signature every time | every (the chain
#                            too, as station does; a second ECDSA verify per poll on the
#                            CPUs the servers share)
#   NGINX_CURVES=X25519:prime256v1:secp384r1   nginx's ssl_ecdh_curve, with
#                            ssl_prefer_server_ciphers on: nginx at its best for
#                            station's hello (it picks X25519 whatever the client's order)
#   CUPS_PORT=18443 API_PORT=17000 LNS_PORT=18887 NGINX_PORT=19443
#   SK_LOG=info              RUST_LOG for the server (default: what operators run)
#   SKIP_BUILD=1             use the existing target/release binaries
#   SK_BIN=PATH              measure this stationkeeper binary (e.g. built from an older commit)
#   LOAD_LIMIT=1800          seconds after which the load generator is stopped
set -euo pipefail

N1=${N1:-1000}
N2=${N2:-100000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
SETTLE_MAX=${SETTLE_MAX:-30}
RETRY_NOISY=${RETRY_NOISY:-3}
NOISY_PCT=${NOISY_PCT:-10}
CONCURRENCY=${CONCURRENCY:-64}
WARMUP_CONCURRENCY=${WARMUP_CONCURRENCY:-128}
TLS=${TLS:-1.2}
KX=${KX:-station}
CHAIN_CHECK=${CHAIN_CHECK:-once}
NGINX_CURVES=${NGINX_CURVES:-X25519:prime256v1:secp384r1}
CUPS_PORT=${CUPS_PORT:-18443}
API_PORT=${API_PORT:-17000}
LNS_PORT=${LNS_PORT:-18887}
NGINX_PORT=${NGINX_PORT:-19443}
SK_LOG=${SK_LOG:-info}
LOAD_LIMIT=${LOAD_LIMIT:-1800}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d /tmp/bench-cups.XXXXXX)
SK_PID=
NGX_PID=
LOAD_PID=

log() { printf '[bench-cups %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

stop_pid() { # pid, signal: signal, wait up to 10 s, then SIGKILL
    local pid=$1 sig=$2 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$LOAD_PID" TERM
    stop_pid "$SK_PID" TERM
    stop_pid "$NGX_PID" QUIT
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
        log "kept $TMP (server.log, run.txt, nginx/)"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
for p in "$CUPS_PORT" "$API_PORT" "$NGINX_PORT"; do
    port_free "$p" || die "port $p is in use (set CUPS_PORT/API_PORT/NGINX_PORT)"
done

# ---------------------------------------------------------------- build, nginx
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building release binaries"
    (cd "$REPO" && cargo build --release --bin stationkeeper --bin cups-load) >&2
fi
SK=${SK_BIN:-$REPO/target/release/stationkeeper}
LOAD="$REPO/target/release/cups-load"
[ -x "$SK" ] && [ -x "$LOAD" ] || die "missing $SK or $LOAD"

if ! command -v nginx >/dev/null; then
    log "installing nginx"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nginx >&2
fi
NGINX=$(command -v nginx)

# ---------------------------------------------------------------- stationkeeper
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
# The warm-up registers every gateway through open registration from one address.
register_per_source_per_min = 4000000000
register_per_min = 4000000000
max_unconfirmed = 4000000000

[limits]
max_connections = 16384
EOF

log "starting stationkeeper (state in $TMP/state)"
RUST_LOG=$SK_LOG "$SK" serve --config "$TMP/stationkeeper.toml" >"$TMP/server.log" 2>&1 &
SK_PID=$!
for i in $(seq 300); do
    grep -q 'ready' "$TMP/server.log" 2>/dev/null && break
    kill -0 "$SK_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "stationkeeper exited"; }
    sleep 0.1
done
grep -q 'ready' "$TMP/server.log" || die "no ready line within 30 s"
CA="$TMP/state/pki/ca.crt"
[ -f "$CA" ] || die "no $CA"
log "stationkeeper ready (pid $SK_PID)"

# ---------------------------------------------------------------- nginx
NG="$TMP/nginx"
mkdir -p "$NG/www" "$NG/tmp" "$NG/logs"
head -c 14 /dev/zero >"$NG/www/update-info"
# nginx workers run as an unprivileged user when started as root: let them read
# the answer file (mktemp -d makes $TMP 0700; the keys in state/pki stay 0600)
chmod 755 "$TMP" "$NG" "$NG/www"
chmod 644 "$NG/www/update-info"
cat >"$NG/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $NG/nginx.pid;
error_log $NG/logs/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        server_name localhost;
        ssl_certificate $TMP/state/pki/server.crt;
        ssl_certificate_key $TMP/state/pki/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        # nginx at its best for station's hello: the server's group order, X25519 first
        ssl_prefer_server_ciphers on;
        ssl_ecdh_curve $NGINX_CURVES;
        root $NG/www;
        # a static file answers POST with 405; turn that into the file with 200
        location = /update-info {
            default_type application/octet-stream;
            error_page 405 =200 \$uri;
        }
    }
}
EOF
log "starting nginx ($NGINX, 2 workers) on 127.0.0.1:$NGINX_PORT"
"$NGINX" -c "$NG/nginx.conf" -p "$NG" >"$NG/logs/stdout" 2>&1 &
NGX_PID=$!
for i in $(seq 100); do port_free "$NGINX_PORT" || break; sleep 0.1; done
port_free "$NGINX_PORT" && { cat "$NG/logs/error.log" "$NG/logs/stdout" >&2; die "nginx did not start"; }
NGX_WORKERS=$(pgrep -P "$NGX_PID" | paste -sd, -)

CHECK=$(curl -sS --cacert "$CA" --resolve "localhost:$NGINX_PORT:127.0.0.1" -X POST \
    -H 'Content-Type: application/json' --data '{"router":"::1"}' \
    -o "$NG/answer.bin" -w '%{http_code} %{size_download}' "https://localhost:$NGINX_PORT/update-info" || true)
[ "$CHECK" = "200 14" ] && cmp -s "$NG/answer.bin" "$NG/www/update-info" \
    || die "nginx check: got '$CHECK' (want '200 14' and 14 zero bytes)"
log "nginx answers POST /update-info with 200 and 14 zero bytes"

# ---------------------------------------------------------------- measure
log "measuring: register $N1, measure; register up to $N2, measure; nginx alternates with stationkeeper ($ROUNDS rounds of ${DURATION} s each per phase)"
rc=0
# in the background so that a signal reaches the trap at once (timeout --foreground
# stays in our process group and passes a TERM on to cups-load)
timeout --foreground "$LOAD_LIMIT" "$LOAD" --ca "$CA" --sni localhost --host "localhost:$CUPS_PORT" --tls "$TLS" --kx "$KX" --chain-check "$CHAIN_CHECK" \
    -c "$CONCURRENCY" -t "$DURATION" --rounds "$ROUNDS" --settle-max "$SETTLE_MAX" \
    --retry-noisy "$RETRY_NOISY" --noisy-pct "$NOISY_PCT" --warmup-concurrency "$WARMUP_CONCURRENCY" \
    --addr "127.0.0.1:$CUPS_PORT" --target stationkeeper --server-pid "$SK_PID" --label stationkeeper \
    --compare-addr "127.0.0.1:$NGINX_PORT" --compare-pid "$NGX_PID,$NGX_WORKERS" --compare-label nginx \
    --phases "$N1,$N2" >"$TMP/run.txt" &
LOAD_PID=$!
tail -n +1 -f --pid="$LOAD_PID" "$TMP/run.txt" &
wait "$LOAD_PID" || rc=$?
LOAD_PID=
[ "$rc" != 124 ] || log "cups-load stopped after LOAD_LIMIT=$LOAD_LIMIT s"
kill -0 "$SK_PID" 2>/dev/null || die "stationkeeper died during the run (see $TMP/server.log)"
SK_HWM=$(awk '/^VmHWM:/ {print $2}' "/proc/$SK_PID/status")
SK_RSS=$(awk '/^VmRSS:/ {print $2}' "/proc/$SK_PID/status")
SK_MEM=$(awk '/^(RssAnon|RssFile|Threads):/ {printf "%s %s ", $1, $2}' "/proc/$SK_PID/status")
NGX_HWM=0
for p in $NGX_PID ${NGX_WORKERS//,/ }; do
    NGX_HWM=$((NGX_HWM + $(awk '/^VmHWM:/ {print $2}' "/proc/$p/status")))
done
DB_SIZE=$(du -sk "$TMP/state" | cut -f1)
SK_WARN=$(grep -cE '\b(WARN|ERROR)\b' "$TMP/server.log" || true)
log "stationkeeper VmHWM ${SK_HWM} KiB, VmRSS ${SK_RSS} KiB ($SK_MEM), state dir ${DB_SIZE} KiB, ${SK_WARN} WARN/ERROR log lines"
stop_pid "$SK_PID" TERM
SK_PID=
stop_pid "$NGX_PID" QUIT
NGX_PID=

# ---------------------------------------------------------------- summary
cmp_field() { # gateways key  (from the COMPARE line of that phase)
    awk -v g="$1" -v k="$2" '
        $1 == "COMPARE" { delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                          if (f["gateways"] == g) v = f[k] }
        END { print (v == "" ? "na" : v) }' "$TMP/run.txt"
}
warm_field() { # gateways key
    awk -v g="$1" -v k="$2" '
        $1 == "WARMUP" { delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                         if (f["gateways"] == g) v = f[k] }
        END { print (v == "" ? "na" : v) }' "$TMP/run.txt"
}
errors_of() { # label gateways: sum of errors over its rounds
    awk -v l="$1" -v g="$2" '
        $1 == "RESULT" { delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                         if (f["label"] == l && f["gateways"] == g) e += f["errors"] }
        END { print e + 0 }' "$TMP/run.txt"
}
kx_of() { # label gateways: the groups negotiated in its kept runs
    awk -v l="$1" -v g="$2" '
        $1 == "RESULT" { delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                         if (f["label"] == l && f["gateways"] == g && !seen[f["kx"]]++) k = k (k == "" ? "" : " ") f["kx"] }
        END { print (k == "" ? "na" : k) }' "$TMP/run.txt"
}
row() { # name gateways label
    printf '%-16s %9s %10s %8s %8s %12s %7s %s\n' "$1" "$2" \
        "$(cmp_field "$2" "$3_rate")" "$(cmp_field "$2" "$3_p50_ms")" "$(cmp_field "$2" "$3_p99_ms")" \
        "$(cmp_field "$2" "$3_srv_cpu_ms_per_poll")" "$(errors_of "$3" "$2")" "$(kx_of "$3" "$2")"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "na" || b == "na" || b == 0) print "na"; else printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

echo
echo "== CUPS load, $(date -u +'%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r), $("$NGINX" -v 2>&1 | sed 's/.*: //')"
echo "   stationkeeper $(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo 'unknown commit') (binary built $(date -u -r "$SK" +'%Y-%m-%d %H:%M UTC'))"
echo "   fresh TCP+TLS $TLS (kx $KX, chain check $CHAIN_CHECK; nginx ssl_ecdh_curve $NGINX_CURVES, server preference) connection per poll, $CONCURRENCY pollers, median of $ROUNDS rounds of ${DURATION} s;"
echo "   server and load generator share the CPUs"
printf '%-16s %9s %10s %8s %8s %12s %7s %s\n' target gateways polls/s p50_ms p99_ms srv_ms/poll errors kx
row stationkeeper "$N1" stationkeeper
row nginx "$N1" nginx
row stationkeeper "$N2" stationkeeper
row nginx "$N2" nginx
echo "polls/s stationkeeper/nginx (median of per-round ratios): $N1 gw $(cmp_field "$N1" rate_ratio), $N2 gw $(cmp_field "$N2" rate_ratio)   (target >= 1.2)"
echo "server CPU per poll nginx/stationkeeper: $N1 gw $(cmp_field "$N1" cpu_ratio), $N2 gw $(cmp_field "$N2" cpu_ratio)"
echo "stationkeeper p99 at $N2 / at $N1 gateways: $(ratio "$(cmp_field "$N2" stationkeeper_p99_ms)" "$(cmp_field "$N1" stationkeeper_p99_ms)")   (target ~1.0)"
echo "stationkeeper peak RSS (VmHWM): $(mib "$SK_HWM")   (target <= 50 MiB); most threads in a measured run: $(awk '$1 == "RESULT" && /label=stationkeeper/ { for (i = 2; i <= NF; i++) if ($i ~ /^srv_threads_max=/) { split($i, kv, "="); if (kv[2] + 0 > m) m = kv[2] + 0 } } END { print m + 0 }' "$TMP/run.txt"); nginx master+workers VmHWM: $(mib "$NGX_HWM"); state dir: $(mib "$DB_SIZE")"
echo "other processes' CPU during measured runs (noise; rates are comparable only if ~0): max $(cmp_field "$N1" background_cpu_pct_max)% / $(cmp_field "$N2" background_cpu_pct_max)% of the machine"
echo "measured runs discarded as noisy and repeated: $(grep -c '^NOISY ' "$TMP/run.txt" || true)"
echo "registration (warm-up, 2 polls per gateway): $N1 gw at $(warm_field "$N1" rate)/s, up to $N2 gw at $(warm_field "$N2" rate)/s ($(warm_field "$N2" secs) s), failures: $(warm_field "$N1" failed) + $(warm_field "$N2" failed)"
[ "$SK_WARN" = 0 ] || echo "server log: $SK_WARN WARN/ERROR lines (KEEP=1 keeps $TMP/server.log)"
[ "$rc" = 0 ] || { echo "cups-load reported errors or mismatches (exit $rc): see above"; exit 1; }
