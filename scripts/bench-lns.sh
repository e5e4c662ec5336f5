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
#   KX=station           ECDHE groups the clients offer: station (station 2.0.6's order
#                        restricted to ring's groups: P-384, P-256, X25519) | default
#   TX_DELAY_MS=0        clients wait this long before answering dnmsg with dntxed
#   LNS_PORT=28887 API_PORT=27001
#   SK_LOG=info          RUST_LOG for the server (what operators run)
#   SKIP_BUILD=1         use the existing target/release/lns-load
#   LNS_LOAD_BIN=PATH    use this lns-load binary instead (e.g. one built from an older commit)
set -euo pipefail

N=${N:-10000}
CONCURRENCY=${CONCURRENCY:-100}
FANOUTS=${FANOUTS:-3}
HOLD=${HOLD:-40}
SETTLE=${SETTLE:-5}
KX=${KX:-station}
TX_DELAY_MS=${TX_DELAY_MS:-0}
LNS_PORT=${LNS_PORT:-28887}
API_PORT=${API_PORT:-27001}
SK_LOG=${SK_LOG:-info}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=bench-lns
# shellcheck source=scripts/lns-load-common.sh
. "$REPO/scripts/lns-load-common.sh"
lns_load_setup
lns_load_register
lns_load_server
sleep 2
RSS0=$(srv rss '^RSS ' 10)
log "before connections: $RSS0"

# ---------------------------------------------------------------- connect
log "connecting $N stations ($CONCURRENCY at a time)"
lns_load_clients --concurrency "$CONCURRENCY" --kx "$KX" --tx-delay-ms "$TX_DELAY_MS"
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
OK=$(field "$CONN" ok)
echo
echo "== LNS load, $(date -u +'%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
echo "   stationkeeper $(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo '?'); server and clients share the CPUs; TLS 1.2 (kx $KX), token auth, EU868"
printf '%-44s %s\n' "gateways registered (API, 2 calls each)" "$(field "$REG" gateways) in $(field "$REG" register_secs) s (separate process)"
printf '%-44s %s\n' "connections set up / failed" "$OK / $(field "$CONN" failed)   (server sessions: $(field "$WAITED" sessions))"
printf '%-44s %s\n' "key-exchange groups negotiated" "$(field "$CONN" kx)"
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
