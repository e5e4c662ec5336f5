# Shared by scripts/bench-lns.sh and scripts/bench-fuota.sh (sourced, not run):
# logging, process clean-up, reading `key=value` lines, building lns-load, the
# registration run, the measured server, and the stdin command helpers `srv` and
# `cli`. The sourcing script sets BENCH (its name), N, LNS_PORT, API_PORT, SK_LOG
# and REPO first, and then calls, in order: lns_load_setup, lns_load_register,
# lns_load_server, lns_load_clients ARGS...

TMP=$(mktemp -d "/tmp/$BENCH.XXXXXX")
SRV_PID=
CLI_PID=

log() { printf '[%s %s] %s\n' "$BENCH" "$(date +%H:%M:%S)" "$*" >&2; }
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
# rest LINE KEY: everything after " KEY=" (free text is the last field of a line)
rest() { printf '%s\n' "$1" | sed -n "s/.* $2=//p"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

# Free ports, enough file descriptors, and target/release/lns-load in $BIN.
lns_load_setup() {
    local p
    for p in "$LNS_PORT" "$API_PORT"; do port_free "$p" || die "port $p is in use (set LNS_PORT/API_PORT)"; done
    # 10k sockets per process plus the database and logs
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    [ "$(ulimit -n)" -gt $((N + 1000)) ] || die "ulimit -n is $(ulimit -n); need more than N+1000"
    if [ "${SKIP_BUILD:-0}" != 1 ] && [ -z "${LNS_LOAD_BIN:-}" ]; then
        log "building target/release/lns-load"
        (cd "$REPO" && cargo build --release --bin lns-load) >&2
    fi
    BIN=${LNS_LOAD_BIN:-$REPO/target/release/lns-load}
    [ -x "$BIN" ] || die "missing $BIN"
}

# Registers N gateways (EU868 unless extra `server` arguments say otherwise) in a
# process of its own: the measured server starts fresh on the same state dir (as
# after a restart), so no registration garbage sits in its RSS. REGISTER_IN names
# a file of server commands to run after registering (default none).
lns_load_register() {
    log "registering $N gateways through the operator API"
    RUST_LOG=warn timeout $((300 + N / 10)) "$BIN" server --register --state "$TMP/state" \
        --lns "127.0.0.1:$LNS_PORT" --api "127.0.0.1:$API_PORT" --n "$N" --tokens-out "$TMP/tokens.txt" "$@" \
        <"${REGISTER_IN:-/dev/null}" >"$TMP/register.out" 2>"$TMP/register.log" || { cat "$TMP/register.log" >&2; die "registration failed"; }
    REG=$(grep '^READY ' "$TMP/register.out") || die "registration: no READY line"
    [ "$(field "$REG" gateways)" = "$N" ] || die "registration: $REG"
    log "registered: $REG"
}

# The measured server (extra `server` arguments given), reading commands from fd 3.
lns_load_server() {
    mkfifo "$TMP/server.in" "$TMP/clients.in"
    log "starting the measured server (stationkeeper in process, fresh)"
    RUST_LOG=$SK_LOG timeout 3600 "$BIN" server --state "$TMP/state" \
        --lns "127.0.0.1:$LNS_PORT" --api "127.0.0.1:$API_PORT" --n "$N" "$@" \
        <"$TMP/server.in" >"$TMP/server.out" 2>"$TMP/server.log" &
    SRV_PID=$!
    exec 3>"$TMP/server.in"
    READY=$(wait_line "$TMP/server.out" '^READY ' 60 "$SRV_PID")
    [ "$(field "$READY" gateways)" = "$N" ] || die "server: $READY"
}

# The N stations (extra `clients` arguments given), reading commands from fd 4.
lns_load_clients() {
    timeout 3600 "$BIN" clients --file "$TMP/tokens.txt" --addr "127.0.0.1:$LNS_PORT" --sni localhost \
        --ca "$TMP/state/pki/ca.crt" --n "$N" "$@" \
        <"$TMP/clients.in" >"$TMP/clients.out" 2>"$TMP/clients.log" &
    CLI_PID=$!
    exec 4>"$TMP/clients.in"
    CONN=$(wait_line "$TMP/clients.out" '^CONNECTED ' $((120 + N / 10)) "$CLI_PID")
    log "clients: $CONN"
}

# ask FD OUT PID WHO COMMAND REGEX SECS: send COMMAND, return the newest matching line
ask() {
    local fd=$1 out=$2 pid=$3 who=$4 cmd=$5 re=$6 secs=$7 before i
    before=$(grep -cE "$re" "$out" || true)
    echo "$cmd" >&"$fd"
    for i in $(seq $((secs * 10))); do
        [ "$(grep -cE "$re" "$out" || true)" -gt "$before" ] && { grep -E "$re" "$out" | tail -1; return 0; }
        kill -0 "$pid" 2>/dev/null || die "$who exited (see $who.log)"
        sleep 0.1
    done
    die "$who gave no /$re/ within $secs s after '$cmd'"
}
srv() { ask 3 "$TMP/server.out" "$SRV_PID" server "$@"; } # command regex secs
cli() { ask 4 "$TMP/clients.out" "$CLI_PID" clients "$@"; }
