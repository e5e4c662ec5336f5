#!/usr/bin/env bash
# Device-face benchmark (issue 14's figures): N_GW simulated Basics Station
# gateways (US915, SubBands [2]) and DEVICES simulated OTAA devices behind them.
# Every device joins once through one gateway; then confirmed uplinks at RATE per
# second in total, each heard by COPIES gateways (the same updf on COPIES
# connections), each answered by a class A dnmsg (ACK). Reports uplinks per second
# processed end to end, latency from the last copy written to its dnmsg read (with
# and without the server's dedup window), server RSS per device session and server
# CPU per join and per uplink. See benches/lns_load_devices.rs.
#
#   N_GW=100 DEVICES=10000 RATE=2000 DURATION=30 bash scripts/bench-devices.sh
#   N_GW=10 DEVICES=200 RATE=100 DURATION=10 bash scripts/bench-devices.sh   # smoke
#
# Processes of target/release/lns-load: a first `server --register` registers the
# gateways and creates the device profile and the devices through the operator API,
# then exits; the measured `server` starts fresh on that state dir (as after a
# restart); `clients --devices` holds the gateway connections and simulates the
# devices. Server and clients share the machine's CPUs. US915 has no duty cycle,
# so the gateways' downlink budget only refuses a frame whose air time overlaps
# another on the same gateway and frequency (uplinks rotate over the 8 channels of
# sub-band 2; at UP_DR=3 an RX1 answer is ~9 ms on air).
# Knobs (env):
#   N_GW=100 DEVICES=10000 COPIES=3 RATE=2000 DURATION=30
#   JOIN_RATE=500        join-requests per second in the join phase
#   UP_DR=3              uplink DR (US915 DR0..3; RX1 is DR+10)
#   MAC_VERSION=1.0.3    device profile MacVersion
#   RUNS=1               uplink runs (each RATE for DURATION), reported one by one
#   MSG_RATE=auto        the measured server's [lns] max_messages_per_sec; auto is
#                        2 x (COPIES + 1) x RATE / N_GW, at least the default 50 (each
#                        gateway gets COPIES x RATE / N_GW updf and RATE / N_GW dntxed)
#   PERF=0               1: perf record -g the server during the (last) run; report in perf.txt
#   CONCURRENCY=100 SETTLE=3 LNS_PORT=28897 API_PORT=27011 SK_LOG=info SKIP_BUILD=1 KEEP=1
set -euo pipefail

N_GW=${N_GW:-100}
DEVICES=${DEVICES:-10000}
COPIES=${COPIES:-3}
RATE=${RATE:-2000}
DURATION=${DURATION:-30}
JOIN_RATE=${JOIN_RATE:-500}
UP_DR=${UP_DR:-3}
MAC_VERSION=${MAC_VERSION:-1.0.3}
RUNS=${RUNS:-1}
CONCURRENCY=${CONCURRENCY:-100}
SETTLE=${SETTLE:-3}
LNS_PORT=${LNS_PORT:-28897}
API_PORT=${API_PORT:-27011}
SK_LOG=${SK_LOG:-info}
MSG_RATE=${MSG_RATE:-$(( 2 * (COPIES + 1) * RATE / N_GW > 50 ? 2 * (COPIES + 1) * RATE / N_GW : 50 ))}
PERF=${PERF:-0}
N=$N_GW

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=bench-devices
# shellcheck source=scripts/lns-load-common.sh
. "$REPO/scripts/lns-load-common.sh"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
lns_load_setup

# ---------------------------------------------------------------- set-up (own process)
printf 'devices %s US915 %s\n' "$DEVICES" "$MAC_VERSION" >"$TMP/register.in"
REGISTER_IN="$TMP/register.in" lns_load_register --gw-lorawan '{"RfRegion":"US915","SubBands":[2]}'
DEVS=$(grep '^DEVICES ' "$TMP/register.out") || die "no DEVICES line in register.out"
[ "$(field "$DEVS" ok)" = 1 ] || die "device creation: $DEVS"
log "devices: $DEVS"

lns_load_server --max-messages-per-sec "$MSG_RATE"
sleep 2
RSS0=$(srv rss '^RSS ' 10)
lns_load_clients --concurrency "$CONCURRENCY" --devices "$DEVICES" --copies "$COPIES" --up-dr "$UP_DR"
srv "wait $N 30" '^WAITED ' 40 >/dev/null
sleep "$SETTLE"
RSS1=$(srv rss '^RSS ' 10)
ST1=$(srv devstats '^DEVSTATS ' 10)
log "gateways connected: $RSS1"

# ---------------------------------------------------------------- joins
log "joining $DEVICES devices at $JOIN_RATE/s"
JOINED=$(cli "join $JOIN_RATE" '^JOINED ' $((DEVICES * 4 / JOIN_RATE + 60)))
log "$JOINED"
sleep "$SETTLE"
RSS2=$(srv rss '^RSS ' 10)
ST2=$(srv devstats '^DEVSTATS ' 10)

# ---------------------------------------------------------------- uplinks
RUN_LINES=()
ST_LINES=("$ST2")
RSS_LINES=("$RSS2")
for r in $(seq "$RUNS"); do
    log "run $r: $RATE confirmed uplinks/s for $DURATION s, $COPIES copies each"
    if [ "$PERF" = 1 ] && [ "$r" = "$RUNS" ]; then
        # System-wide (the server's threads come and go); the report keeps the server's pid.
        SRV_REAL=$(pgrep -P "$SRV_PID" | head -1) # $SRV_PID is timeout(1)
        perf record -a -e cpu-clock -F 999 -o "$TMP/perf.data" -- sleep "$DURATION" >"$TMP/perf.log" 2>&1 &
        PERF_PID=$!
    fi
    line=$(cli "run $RATE $DURATION" '^RUN ' $((DURATION + 120)))
    log "$line"
    RUN_LINES+=("$line")
    ST_LINES+=("$(srv devstats '^DEVSTATS ' 10)")
    RSS_LINES+=("$(srv rss '^RSS ' 10)")
done
RSS3=${RSS_LINES[-1]}
if [ "$PERF" = 1 ]; then
    wait "$PERF_PID" 2>/dev/null || true
    timeout 300 perf report -i "$TMP/perf.data" --pid "$SRV_REAL" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' >"$TMP/perf.txt" || true
    timeout 300 perf report -i "$TMP/perf.data" --no-children --sort comm,pid --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -12 >"$TMP/perf-procs.txt" || true
    # Self time by kind: SQLite, JSON, TLS/crypto, allocator, tokio, kernel, other.
    PERF_KINDS=$(awk '{ p = $1 + 0; s = $0
        k = "other"
        if (s ~ /\[k\]/) k = "kernel"
        else if (s ~ /sqlite3|pcache|btree|Btree|Vdbe|vdbe|walIndex|pager/) k = "sqlite"
        else if (s ~ /serde_json|serde::|ryu|itoa/) k = "json"
        else if (s ~ /ring_core|ring::|rustls|aes|gcm|chacha|poly1305|sha|cmac|lrwn/) k = "tls_crypto"
        else if (s ~ /malloc|free|realloc|memcpy|memmove|memset|_int_|calloc|cfree/) k = "alloc_mem"
        else if (s ~ /tokio|futex|parking|Condvar|pthread/) k = "tokio_sync"
        t[k] += p } END { for (k in t) printf "%s=%.1f%% ", k, t[k] }' "$TMP/perf.txt")
fi

CFIN=$(cli quit '^CLIENTS final ' 30)
for i in $(seq 300); do kill -0 "$CLI_PID" 2>/dev/null || break; sleep 0.1; done
CLI_PID=
echo quit >&3
for i in $(seq 200); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
SRV_WARN=$(grep -cE '\b(WARN|ERROR)\b' "$TMP/server.log" || true)

# ---------------------------------------------------------------- summary
kib() { field "$1" rss_kib; }
cpu() { field "$1" cpu_ms; }
d() { echo $(( $(field "$2" "$3") - $(field "$1" "$3") )); } # d LINE0 LINE1 KEY
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b > 0) printf f, a / b; else print "na" }'; }
WINDOW=$(field "$ST1" dedup_window_ms)
JOINS=$(d "$ST1" "$ST2" joins_accepted)
JOINED_N=$(field "$JOINED" joined)
echo
echo "== Devices, $(date -u +'%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
echo "   stationkeeper $(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo '?'); server and simulator share the CPUs (load average before: $LOAD0); US915 SubBands [2], MacVersion $MAC_VERSION,"
echo "   uplink DR$UP_DR on the 8 channels of sub-band 2; [lns] max_messages_per_sec $MSG_RATE; [lorawan] workers $(field "$ST1" workers)"
printf '%-46s %s\n' "gateways / devices created (API)" "$(field "$REG" gateways) / $(field "$DEVS" created) devices in $(field "$DEVS" secs) s = $(field "$DEVS" rate)/s (separate process)"
printf '%-46s %s\n' "joins" "$JOINED_N of $DEVICES joined, $(field "$JOINED" attempts) join-requests, $(field "$JOINED" secs) s at $JOIN_RATE/s; server joins_accepted +$JOINS, refused +$(d "$ST1" "$ST2" joins_refused)"
printf '%-46s %s\n' "  join-request -> join-accept dnmsg" "p50 $(field "$JOINED" lat_p50_ms) ms, p99 $(field "$JOINED" lat_p99_ms) ms, max $(field "$JOINED" lat_max_ms) ms (dedup window $WINDOW ms included)"
printf '%-46s %s\n' "  server CPU per join" "$(div "$(( $(cpu "$RSS2") - $(cpu "$RSS1") ))" "$JOINS" %.3f) ms ($(( $(cpu "$RSS2") - $(cpu "$RSS1") )) ms for $JOINS joins, TLS and JSON of the gateways included)"
printf '%-46s %s\n' "server RSS: before gateways / with gateways" "$(mib "$(kib "$RSS0")") / $(mib "$(kib "$RSS1")") MiB"
printf '%-46s %s\n' "  after joins / after the uplink run(s)" "$(mib "$(kib "$RSS2")") / $(mib "$(kib "$RSS3")") MiB (VmHWM $(mib "$(field "$RSS3" hwm_kib)") MiB)"
printf '%-46s %s\n' "  above the gateways' own, per 10,000 sessions" "after joins $(awk -v a="$(kib "$RSS2")" -v b="$(kib "$RSS1")" -v n="$JOINED_N" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / 1024 * 10000 / n; else print "na" }') MiB, after the run $(awk -v a="$(kib "$RSS3")" -v b="$(kib "$RSS1")" -v n="$JOINED_N" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / 1024 * 10000 / n; else print "na" }') MiB   (target <= 20 MiB)"
echo
echo "uplink runs: confirmed, $COPIES copies each; latency = last copy written -> its dnmsg read (client side, loopback TLS both ways); '-win' subtracts the ${WINDOW} ms dedup window"
printf '%-4s %7s %7s %8s %8s %7s %5s %9s %9s %9s %9s %9s %9s %9s %8s %8s\n' run sent/s ans/s srv_up/s srv_dn/s missed bad p50_ms p99_ms max_ms p50-win p99-win skipped cpu/up_ms srv_cpu% cli_cpu%
for i in $(seq "$RUNS"); do
    R=${RUN_LINES[$((i - 1))]}; S0=${ST_LINES[$((i - 1))]}; S1=${ST_LINES[$i]}
    M0=${RSS_LINES[$((i - 1))]}; M1=${RSS_LINES[$i]}
    SECS=$(field "$R" send_secs)
    UPS=$(d "$S0" "$S1" uplinks); DNS=$(d "$S0" "$S1" downlinks_sent)
    CPU=$(( $(cpu "$M1") - $(cpu "$M0") ))
    WALL=$(awk -v s="$SECS" -v g=0 'BEGIN { print s }')
    printf '%-4s %7s %7s %8s %8s %7s %5s %9s %9s %9s %9s %9s %9s %9s %8s %8s\n' "$i" \
        "$(field "$R" sent_per_s)" "$(field "$R" answered_per_s)" "$(div "$UPS" "$SECS" %.0f)" "$(div "$DNS" "$SECS" %.0f)" \
        "$(field "$R" missed)" "$(field "$R" bad)" "$(field "$R" lat_p50_ms)" "$(field "$R" lat_p99_ms)" "$(field "$R" lat_max_ms)" \
        "$(awk -v a="$(field "$R" lat_p50_ms)" -v w="$WINDOW" 'BEGIN { printf "%.1f", a - w }')" \
        "$(awk -v a="$(field "$R" lat_p99_ms)" -v w="$WINDOW" 'BEGIN { printf "%.1f", a - w }')" \
        "$(d "$S0" "$S1" downlinks_skipped)" "$(div "$CPU" "$UPS" %.3f)" \
        "$(div "$((CPU / 10))" "$WALL" %.0f)" "$(div "$(( $(field "$R" client_cpu_ms) / 10 ))" "$WALL" %.0f)"
done
echo "   (srv_up/s: the device face's deduplicated uplinks; srv_dn/s: class A answers confirmed by dntxed; cpu/up_ms: server CPU"
echo "    per deduplicated uplink over the whole run window incl. the grace period; srv/cli_cpu%: of one core, over the sending time)"
echo "server counters over the run(s): $(for k in copies_merged dedup_refused replayed mic_failed unknown_device bad_channel gap_too_large downlinks_failed downlinks_skipped malformed; do printf '%s=+%s ' "$k" "$(d "${ST_LINES[0]}" "${ST_LINES[-1]}" "$k")"; done)"
echo "copy spread (first -> last copy written), last run: p50 $(field "${RUN_LINES[-1]}" spread_p50_ms) ms, p99 $(field "${RUN_LINES[-1]}" spread_p99_ms) ms"
echo "clients at the end: $(printf '%s\n' "$CFIN" | sed 's/^CLIENTS final //; s/ rss_kib=.*//')"
if [ "$PERF" = 1 ]; then
    echo "perf, whole machine during the run, by process (perf-procs.txt):"; head -6 "$TMP/perf-procs.txt" | sed 's/^/  /'
    echo "perf, server only, self time by kind (percent of the server's samples; all in perf.txt): $PERF_KINDS"
    head -15 "$TMP/perf.txt" | sed 's/^/  /'
fi
[ "$SRV_WARN" = 0 ] || { echo "server log: $SRV_WARN WARN/ERROR lines, e.g.:"; grep -E '\b(WARN|ERROR)\b' "$TMP/server.log" | head -5 | sed 's/^/  /'; }
