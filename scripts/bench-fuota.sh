#!/usr/bin/env bash
# FUOTA memory benchmark: the server's RSS while a 1 MiB FUOTA session runs to
# 100 gateways. N simulated PPS Basics Stations (GPS time, so the server puts
# them all in one common slot) hold LNS connections open; a task started through
# the operator API sends its fragments to all of them through Lns::send; RSS and
# progress are read every EVERY s for DURATION s. See benches/lns_load.rs
# (`fuota`, `progress`, `waitsync`, `clients --pps`) and benches/README.md.
#
#   bash scripts/bench-fuota.sh                    # N=100, 1 MiB, 120 s
#   N=10 DURATION=30 bash scripts/bench-fuota.sh   # quick check
#
# Two processes of target/release/lns-load (release build): `server`
# (stationkeeper in process, so its RSS is the server's own) and `clients` (the
# stations). Only talks to 127.0.0.1; everything lives in a temp dir removed on
# exit (KEEP=1 keeps it: register.log, server.log, server.out, clients.out,
# clients.log). Gateways (EU868) are registered through the operator API by a
# first server process; a fresh one on the same state dir is measured. Knobs (env):
#   N=100                gateways registered and connected (all --pps)
#   BYTES=1048576        image size ([fuota] max_image_bytes is 1 MiB)
#   DURATION=120 EVERY=10  seconds of sending observed, and the sampling period
#   SETTLE=5             seconds after every gateway is synced, before the baseline
#   QUIET_MAX=900        wait up to this long (checking every 20 s) until no rustc
#                        or `cargo test` of others runs; 0 skips the wait
#   LNS_PORT=28888 API_PORT=27002
#   SK_LOG=info          RUST_LOG for the server
#   SKIP_BUILD=1         use the existing target/release/lns-load
set -euo pipefail

N=${N:-100}
BYTES=${BYTES:-1048576}
DURATION=${DURATION:-120}
EVERY=${EVERY:-10}
SETTLE=${SETTLE:-5}
QUIET_MAX=${QUIET_MAX:-900}
LNS_PORT=${LNS_PORT:-28888}
API_PORT=${API_PORT:-27002}
SK_LOG=${SK_LOG:-info}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=bench-fuota
# shellcheck source=scripts/lns-load-common.sh
. "$REPO/scripts/lns-load-common.sh"
lns_load_setup

# ---------------------------------------------------------------- quiet machine
# Compilers and test runs of others on the same 2 CPUs skew CPU and timing (not
# so much the RSS): wait until none has been seen for a moment.
busy() { pgrep -x rustc >/dev/null || pgrep -f 'cargo test' >/dev/null; }
QUIET_WAITED=0
QUIET=yes
if [ "$QUIET_MAX" -gt 0 ]; then
    while :; do
        if ! busy; then sleep 5; busy || break; fi
        if [ "$QUIET_WAITED" -ge "$QUIET_MAX" ]; then QUIET="no (others still compiling/testing after ${QUIET_MAX} s)"; break; fi
        log "others are compiling or testing (rustc / cargo test); checking again in 20 s"
        sleep 20
        QUIET_WAITED=$((QUIET_WAITED + 20))
    done
fi
log "machine quiet: $QUIET (waited $QUIET_WAITED s); load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- register, server
lns_load_register
lns_load_server
sleep 2
RSS0=$(srv rss '^RSS ' 10)
log "before connections: $RSS0"

# ---------------------------------------------------------------- connect
log "connecting $N PPS stations"
lns_load_clients --pps
WAITED=$(srv "wait $N 30" '^WAITED ' 40)
[ "$(field "$WAITED" sessions)" = "$N" ] || die "sessions: $WAITED"
# getxtime goes out 3 s after router_config; GPS time comes with the timesync.
SYNCED=$(srv "waitsync $N 30" '^SYNCED ' 40)
log "$SYNCED"
[ "$(field "$SYNCED" gps_and_anchored)" = "$N" ] || log "WARNING: not every gateway has GPS time and an anchor: $SYNCED"
sleep "$SETTLE"
RSS1=$(srv rss '^RSS ' 10)
log "baseline ($N idle sessions): $RSS1"
CST1=$(cli stats '^CLIENTS ' 10)

# ---------------------------------------------------------------- FUOTA
log "fuota $BYTES (group, session from now + 5 s, upload, task, associate, start)"
FU=$(srv "fuota $BYTES" '^FUOTA ' 120)
log "$FU"
FU_OK=$(field "$FU" ok)
SAMPLES=()
BUSY_TICKS=0
T0=$(date +%s)
for i in $(seq $((DURATION / EVERY))); do
    sleep $((T0 + i * EVERY - $(date +%s))) 2>/dev/null || true
    busy && BUSY_TICKS=$((BUSY_TICKS + 1))
    r=$(srv rss '^RSS ' 10)
    p=$(srv progress '^FUOTA_PROGRESS ' 10)
    SAMPLES+=("$((i * EVERY)) $r | $p")
    log "t=$((i * EVERY))s rss_kib=$(field "$r" rss_kib) sent=$(field "$p" sent) confirmed=$(field "$p" confirmed) failed=$(field "$p" failed) status=$(field "$p" status)"
done
CST2=$(cli stats '^CLIENTS ' 10)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- stop
CFIN=$(cli quit '^CLIENTS final ' 30)
for i in $(seq 300); do kill -0 "$CLI_PID" 2>/dev/null || break; sleep 0.1; done
CLI_PID=
WAITED0=$(srv "wait 0 30" '^WAITED ' 40)
RSS9=$(srv rss '^RSS ' 10)
echo quit >&3
for i in $(seq 200); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
SRV_WARN=$(grep -cE '\b(WARN|ERROR)\b' "$TMP/server.log" || true)

# ---------------------------------------------------------------- summary
B=$(field "$RSS1" rss_kib)
PEAK=$B
PEAK_AT=-
LAST_P=
for s in "${SAMPLES[@]}"; do
    r=${s%%|*}
    k=$(field "$r" rss_kib)
    if [ "$k" -gt "$PEAK" ]; then PEAK=$k; PEAK_AT=${s%% *}; fi
    LAST_P=${s#*| }
done
FU_RSS=$(field "$FU" rss_kib)
[ "$FU_OK" = 1 ] && [ "$FU_RSS" -gt "$PEAK" ] && { PEAK=$FU_RSS; PEAK_AT=0; }
echo
echo "== FUOTA memory, $(date -u +'%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
echo "   stationkeeper $(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo '?'); release build; server and clients share the CPUs"
echo "   machine quiet before measuring: $QUIET (waited $QUIET_WAITED s); samples with others' rustc/cargo test running: $BUSY_TICKS of ${#SAMPLES[@]}; load average at the end $LOAD"
printf '%-40s %s\n' "gateways (EU868, --pps)" "$N registered, $(field "$CONN" ok) connected, $(field "$SYNCED" gps_and_anchored) with GPS time and a time anchor"
printf '%-40s %s\n' "server RSS before connections" "$(mib "$(field "$RSS0" rss_kib)") MiB"
printf '%-40s %s\n' "baseline RSS ($N idle sessions)" "$(mib "$B") MiB ($B KiB; RssAnon $(field "$RSS1" anon_kib) KiB, $(field "$RSS1" threads) threads)"
if [ "$FU_OK" != 1 ]; then
    echo "FUOTA NOT STARTED at step $(field "$FU" step): $(rest "$FU" error)"
    echo "  plan before the start: gateways=$(field "$FU" gateways) total_fragments=$(field "$FU" total_fragments) slots_per_round=$(field "$FU" slots_per_round) wall_time_s=$(field "$FU" wall_time_s) fits_session=$(field "$FU" fits_session)"
fi
printf '%-40s %s\n' "plan" "$BYTES bytes: $(field "$FU" total_fragments) fragments ($(field "$FU" uncoded) + $(field "$FU" coded) coded) of $(field "$FU" bytes_per_frame) B frames, $(field "$FU" time_on_air_ms) ms on air, one every $(field "$FU" frame_spacing_ms) ms; $(field "$FU" slots_per_round) slot(s) per round; wall time $(field "$FU" wall_time_s) s, finish $(field "$FU" estimated_finish), fits session: $(field "$FU" fits_session)"
printf '%-40s %s\n' "RSS right after the start" "$(mib "$FU_RSS") MiB (after the upload: $(mib "$(field "$FU" rss_after_upload_kib)") MiB; set-up $(field "$FU" setup_ms) ms)"
printf '%-40s %s\n' "peak RSS while sending (samples)" "$(mib "$PEAK") MiB ($PEAK KiB, at t=${PEAK_AT} s)"
printf '%-40s %s\n' "peak - baseline" "$((PEAK - B)) KiB ($(mib $((PEAK - B))) MiB)"
printf '%-40s %s\n' "VmHWM at the end" "$(mib "$(field "${SAMPLES[-1]%%|*}" hwm_kib)") MiB"
printf '%-40s %s\n' "after ${DURATION} s: fragments" "sent $(field "$LAST_P" sent), confirmed $(field "$LAST_P" confirmed), failed $(field "$LAST_P" failed); gateways at fragment $(field "$LAST_P" next_fragment_min)..$(field "$LAST_P" next_fragment_max) of $(field "$LAST_P" fragments_per_gateway); status $(field "$LAST_P" status)"
printf '%-40s %s\n' "after every client left" "$(mib "$(field "$RSS9" rss_kib)") MiB RSS, $(field "$WAITED0" sessions) sessions (the task is still running)"
printf '%-40s %s\n' "clients saw" "$(printf '%s\n' "$CST2" | sed 's/^CLIENTS //; s/ rss_kib=.*//')"
echo
echo "samples (t = seconds after the fuota command; sent/confirmed/failed summed over gateways)"
printf '%6s %10s %10s %10s %8s %10s %8s %8s %8s %7s %s\n' t_s rss_kib d_rss_kib anon_kib threads cpu_ms sent confirm failed slots status
for s in "${SAMPLES[@]}"; do
    r=${s%%|*}; p=${s#*| }
    printf '%6s %10s %10s %10s %8s %10s %8s %8s %8s %7s %s\n' "${s%% *}" "$(field "$r" rss_kib)" "$(( $(field "$r" rss_kib) - B ))" \
        "$(field "$r" anon_kib)" "$(field "$r" threads)" "$(field "$r" cpu_ms)" "$(field "$p" sent)" "$(field "$p" confirmed)" \
        "$(field "$p" failed)" "$(field "$p" slots_per_round)" "$(field "$p" status)"
done
reason=$(rest "$LAST_P" reason)
[ -z "$reason" ] || echo "status reason: $reason"
if [ "$(field "$CFIN" dropped)" != 0 ]; then
    echo "established connections that ended early:"; grep 'established connection ended' "$TMP/clients.log" | sed 's/^/  /'
fi
[ "$SRV_WARN" = 0 ] || { echo "server log: $SRV_WARN WARN/ERROR lines, e.g.:"; grep -E '\b(WARN|ERROR)\b' "$TMP/server.log" | head -5 | sed 's/^/  /'; }
[ "$FU_OK" = 1 ] || exit 1
