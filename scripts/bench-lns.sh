#!/usr/bin/env bash
# LNS load benchmark: N simulated Basics Station connections held open against
# stationkeeper (RSS per connection, time to accept them all), then one class C
# downlink fanned out to every gateway through the server's real downlink path
# (Lns::send) until every dntxed is back. See benches/lns_load.rs.
#
#   bash scripts/bench-lns.sh            # N=10000
#   N=200 HOLD=0 bash scripts/bench-lns.sh
#
# Two processes of target/release/lns-load: `server` (stationkeeper started in
# process, so its RSS is the server's own) and `clients` (the stations). Only
# talks to 127.0.0.1; everything lives in a temp dir removed on exit (KEEP=1 keeps
# it: register.log, server.log, server.out, clients.out, clients.log). Gateways are
# registered through the operator API by a first server process; a fresh one on
# the same state dir is measured (as after a restart). Knobs (env):
#   N=10000              connections (gateways registered and connected)
#   CONCURRENCY=100      connections being set up at once by the clients
#   FANOUTS=3            class C fan-outs to run
#   HOLD=40              seconds to hold all connections after the fan-outs (longer
#                        than the 30 s ping interval: checks keepalive; 0 skips)
#   SETTLE=5             seconds after the last connection before reading RSS
#   KX=default           ECDHE groups the clients offer: default | station
#   TX_DELAY_MS=0        clients wait this long before answering dnmsg with dntxed
#   LNS_PORT=28887 API_PORT=27001
#   SK_LOG=info          RUST_LOG for the server (what operators run)
#   SKIP_BUILD=1         use the existing target/release/lns-load
set -euo pipefail

N=${N:-10000}
CONCURRENCY=${CONCURRENCY:-100}
FANOUTS=${FANOUTS:-3}
HOLD=${HOLD:-40}
SETTLE=${SETTLE:-5}
KX=${KX:-default}
TX_DELAY_MS=${TX_DELAY_MS:-0}
LNS_PORT=${LNS_PORT:-28887}
API_PORT=${API_PORT:-27001}
SK_LOG=${SK_LOG:-info}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d /tmp/bench-lns.XXXXXX)
SRV_PID=
CLI_PID=

log() { printf '[bench-lns %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

stop_pid() { # pid: TERM, wait up to 10 s, then KILL
    local pid=$1 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    exec 3>&- 4>&- 2>/dev/null || true
    stop_pid "$CLI_PID"
    stop_pid "$SRV_PID"
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
        log "kept $TMP (server.log, server.out, clients.out, clients.log)"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_line FILE REGEX SECS PID: the last line of FILE matching REGEX, within SECS
# (fails early if PID exits)
wait_line() {
    local file=$1 re=$2 secs=$3 pid=$4 i
    for i in $(seq $((secs * 10))); do
        if grep -qE "$re" "$file" 2>/dev/null; then grep -E "$re" "$file" | tail -1; return 0; fi
        kill -0 "$pid" 2>/dev/null || { sleep 0.2; grep -E "$re" "$file" 2>/dev/null | tail -1 && return 0; die "process $pid exited while waiting for /$re/ in $(basename "$file")"; }
        sleep 0.1
    done
    die "no /$re/ in $(basename "$file") within $secs s"
}
# field LINE KEY: the value of KEY=value in LINE
field() { printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2; exit }'; }

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
for p in "$LNS_PORT" "$API_PORT"; do port_free "$p" || die "port $p is in use (set LNS_PORT/API_PORT)"; done

# 10k sockets per process plus the database and logs
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((N + 1000)) ] || die "ulimit -n is $(ulimit -n); need more than N+1000"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building target/release/lns-load"
    (cd "$REPO" && cargo build --release --bin lns-load) >&2
fi
BIN="$REPO/target/release/lns-load"
[ -x "$BIN" ] || die "missing $BIN"

# ---------------------------------------------------------------- register
# In a process of its own: the measured server below starts fresh on the same
# state dir (as after a restart), so no registration garbage sits in its RSS.
log "registering $N gateways through the operator API"
RUST_LOG=warn timeout $((300 + N / 10)) "$BIN" server --register --state "$TMP/state" \
    --lns "127.0.0.1:$LNS_PORT" --api "127.0.0.1:$API_PORT" --n "$N" --tokens-out "$TMP/tokens.txt" \
    </dev/null >"$TMP/register.out" 2>"$TMP/register.log" || { cat "$TMP/register.log" >&2; die "registration failed"; }
REG=$(grep '^READY ' "$TMP/register.out") || die "registration: no READY line"
[ "$(field "$REG" gateways)" = "$N" ] || die "registration: $REG"
log "registered: $REG"

# ---------------------------------------------------------------- server
mkfifo "$TMP/server.in" "$TMP/clients.in"
log "starting the measured server (stationkeeper in process, fresh)"
RUST_LOG=$SK_LOG timeout 3600 "$BIN" server --state "$TMP/state" \
    --lns "127.0.0.1:$LNS_PORT" --api "127.0.0.1:$API_PORT" --n "$N" \
    <"$TMP/server.in" >"$TMP/server.out" 2>"$TMP/server.log" &
SRV_PID=$!
exec 3>"$TMP/server.in"
READY=$(wait_line "$TMP/server.out" '^READY ' 60 "$SRV_PID")
[ "$(field "$READY" gateways)" = "$N" ] || die "server: $READY"
srv() { # command regex secs: send a command, return the newest matching line
    local before
    before=$(grep -cE "$2" "$TMP/server.out" || true)
    echo "$1" >&3
    local i
    for i in $(seq $(($3 * 10))); do
        [ "$(grep -cE "$2" "$TMP/server.out" || true)" -gt "$before" ] && { grep -E "$2" "$TMP/server.out" | tail -1; return 0; }
        kill -0 "$SRV_PID" 2>/dev/null || die "server exited (see server.log)"
        sleep 0.1
    done
    die "server gave no /$2/ within $3 s after '$1'"
}
cli() {
    local before
    before=$(grep -cE "$2" "$TMP/clients.out" || true)
    echo "$1" >&4
    local i
    for i in $(seq $(($3 * 10))); do
        [ "$(grep -cE "$2" "$TMP/clients.out" || true)" -gt "$before" ] && { grep -E "$2" "$TMP/clients.out" | tail -1; return 0; }
        kill -0 "$CLI_PID" 2>/dev/null || die "clients exited (see clients.log)"
        sleep 0.1
    done
    die "clients gave no /$2/ within $3 s after '$1'"
}
sleep 2
RSS0=$(srv rss '^RSS ' 10)
log "before connections: $RSS0"

# ---------------------------------------------------------------- connect
log "connecting $N stations ($CONCURRENCY at a time)"
timeout 3600 "$BIN" clients --file "$TMP/tokens.txt" --addr "127.0.0.1:$LNS_PORT" --sni localhost \
    --ca "$TMP/state/pki/ca.crt" --n "$N" --concurrency "$CONCURRENCY" --kx "$KX" --tx-delay-ms "$TX_DELAY_MS" \
    <"$TMP/clients.in" >"$TMP/clients.out" 2>"$TMP/clients.log" &
CLI_PID=$!
exec 4>"$TMP/clients.in"
CONN=$(wait_line "$TMP/clients.out" '^CONNECTED ' $((120 + N / 10)) "$CLI_PID")
log "clients: $CONN"
WAITED=$(srv "wait $N 30" '^WAITED ' 40)
sleep "$SETTLE"
RSS1=$(srv rss '^RSS ' 10)
log "with sessions: $RSS1"
CST1=$(cli stats '^CLIENTS ' 10)

# ---------------------------------------------------------------- fan-out
FAN=()
for r in $(seq "$FANOUTS"); do
    line=$(srv fanout "^FANOUT round=$r " 120)
    log "$line"
    FAN+=("$line")
    sleep 2
done
RSS2=$(srv rss '^RSS ' 10)
CST2=$(cli stats '^CLIENTS ' 10)

# ---------------------------------------------------------------- keepalive
if [ "$HOLD" -gt 0 ]; then
    log "holding $N connections for $HOLD s (server pings every 30 s)"
    sleep "$HOLD"
fi
RSS3=$(srv rss '^RSS ' 10)
CST3=$(cli stats '^CLIENTS ' 10)
log "after hold: server $RSS3"
log "after hold: clients $CST3"

# ---------------------------------------------------------------- disconnect
CFIN=$(cli quit '^CLIENTS final ' 30)
for i in $(seq 300); do kill -0 "$CLI_PID" 2>/dev/null || break; sleep 0.1; done
CLI_PID=
WAITED0=$(srv "wait 0 30" '^WAITED ' 40)
sleep 2
RSS4=$(srv rss '^RSS ' 10)
echo quit >&3
for i in $(seq 200); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
SRV_WARN=$(grep -cE '\b(WARN|ERROR)\b' "$TMP/server.log" || true)

# ---------------------------------------------------------------- summary
kib() { field "$1" rss_kib; }
per_conn() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "na" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
OK=$(field "$CONN" ok)
echo
echo "== LNS load, $(date -u +'%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
echo "   stationkeeper $(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo '?'); server and clients share the CPUs; TLS 1.2 (kx $KX), token auth, EU868"
printf '%-44s %s\n' "gateways registered (API, 2 calls each)" "$(field "$REG" gateways) in $(field "$REG" register_secs) s (separate process)"
printf '%-44s %s\n' "connections set up / failed" "$OK / $(field "$CONN" failed)   (server sessions: $(field "$WAITED" sessions))"
printf '%-44s %s\n' "time to accept all (TLS+upgrade+router_config)" "$(field "$CONN" secs) s at $CONCURRENCY concurrent = $(field "$CONN" rate)/s; per connection p50 $(field "$CONN" setup_p50_ms) ms, p99 $(field "$CONN" setup_p99_ms) ms, max $(field "$CONN" setup_max_ms) ms"
printf '%-44s %s\n' "server RSS before / with sessions" "$(mib "$(kib "$RSS0")") MiB / $(mib "$(kib "$RSS1")") MiB (RssAnon $(mib "$(field "$RSS1" anon_kib)") MiB, $(field "$RSS1" threads) threads)"
printf '%-44s %s\n' "server RSS per connection" "$(per_conn "$(kib "$RSS1")" "$(kib "$RSS0")" "$OK") KiB   (target <= 32 KiB)"
printf '%-44s %s\n' "  after fan-outs / after ${HOLD} s hold" "$(per_conn "$(kib "$RSS2")" "$(kib "$RSS0")" "$OK") KiB / $(per_conn "$(kib "$RSS3")" "$(kib "$RSS0")" "$OK") KiB per connection (VmHWM $(mib "$(field "$RSS3" hwm_kib)") MiB)"
printf '%-44s %s\n' "  after all clients left" "$(mib "$(kib "$RSS4")") MiB RSS, $(field "$RSS4" sessions) sessions"
printf '%-44s %s\n' "server CPU: accept phase" "$(( $(field "$RSS1" cpu_ms) - $(field "$RSS0" cpu_ms) )) ms ($(awk -v a="$(field "$RSS1" cpu_ms)" -v b="$(field "$RSS0" cpu_ms)" -v n="$OK" 'BEGIN { if (n > 0) printf "%.2f", (a - b) / n; else print "na" }') ms per connection)"
echo
echo "class C fan-out (ClassCNow DR0 869.525 MHz, 20-byte PDU, Lns::send per gateway, all at once); latency = fan-out start -> that gateway's dntxed processed"
printf '%-6s %9s %11s %13s %7s %7s %9s %9s %9s %13s %9s\n' round gateways transmitted not_confirmed gone errors p50_ms p99_ms max_ms all_outcomes cpu_ms
for line in "${FAN[@]}"; do
    printf '%-6s %9s %11s %13s %7s %7s %9s %9s %9s %13s %9s\n' "$(field "$line" round)" "$(field "$line" gateways)" \
        "$(field "$line" transmitted)" "$(field "$line" not_confirmed)" "$(field "$line" gateway_gone)" \
        "$(field "$line" errors)" "$(field "$line" p50_ms)" "$(field "$line" p99_ms)" "$(field "$line" max_ms)" \
        "$(field "$line" all_outcomes_ms)" "$(field "$line" cpu_ms)"
done
echo
echo "clients after the hold: $(printf '%s\n' "$CST3" | sed 's/^CLIENTS //; s/ rss_kib=.*//')"
echo "clients at the end:     $(printf '%s\n' "$CFIN" | sed 's/^CLIENTS final //; s/ rss_kib=.*//')   (client RSS $(mib "$(kib "$CFIN")") MiB)"
if [ "$(field "$CFIN" dropped)" != 0 ]; then
    echo "established connections that ended early:"; grep 'established connection ended' "$TMP/clients.log" | sed 's/^/  /'
fi
if [ "$(field "$CONN" failed)" != 0 ]; then
    echo "set-up failures:"; grep 'set-up failed' "$TMP/clients.log" | sed 's/^/  /'
fi
[ "$SRV_WARN" = 0 ] || { echo "server log: $SRV_WARN WARN/ERROR lines, e.g.:"; grep -E '\b(WARN|ERROR)\b' "$TMP/server.log" | head -5 | sed 's/^/  /'; }
