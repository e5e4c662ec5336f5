#!/usr/bin/env bash
# Builds a signed update.bin for Raspberry Pi gateways running LoRa Basics Station.
#
# The result is one self-contained bash script: station writes it to /tmp/update.bin,
# checks its signature against sig-N.key, and runs it. When run it unpacks the
# payload folder into the station's install folder, writes the new version.txt
# (the `package` station reports to CUPS, which is how Stationkeeper sees the update
# succeed), removes /tmp/update.bin and restarts station.
#
#   scripts/make-update.sh --payload DIR --version 1.0.1 --key signing-key.pem \
#       [--station-home /opt/basicstation] [--restart "systemctl restart basicstation"] \
#       [--out update.bin]
#
# It prints the UpdateSignature and SigKeyCrc that a task definition needs (from
# `stationkeeper sign`; set STATIONKEEPER=path/to/stationkeeper if it is not on PATH).
set -euo pipefail

payload="" version="" key="" out="update.bin"
home="/opt/basicstation"
restart="systemctl restart basicstation"
while [ $# -gt 0 ]; do
    case "$1" in
        --payload) payload="$2"; shift 2 ;;
        --version) version="$2"; shift 2 ;;
        --key) key="$2"; shift 2 ;;
        --station-home) home="$2"; shift 2 ;;
        --restart) restart="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "make-update.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$payload" ] && [ -d "$payload" ] || { echo "make-update.sh: --payload must name a folder" >&2; exit 2; }
[ -n "$version" ] || { echo "make-update.sh: --version is required (it becomes version.txt)" >&2; exit 2; }
case "$version" in *[!A-Za-z0-9._+-]*) echo "make-update.sh: --version may use only A-Z a-z 0-9 . _ + -" >&2; exit 2 ;; esac
[ -n "$key" ] || { echo "make-update.sh: --key is required (a key from 'stationkeeper keys generate')" >&2; exit 2; }

tmp="$(mktemp "${out}.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
{
    cat <<SCRIPT
#!/bin/bash
# Stationkeeper update to version ${version}, built $(date -u +%Y-%m-%dT%H:%M:%SZ).
set -eu
STATION_HOME="\${STATION_HOME:-${home}}"
UPDATE_FILE="\${UPDATE_FILE:-/tmp/update.bin}"
RESTART_CMD="\${RESTART_CMD:-${restart}}"
self="\${BASH_SOURCE[0]}"
line=\$(awk '/^__PAYLOAD_BELOW__\$/ { print NR + 1; exit 0 }' "\$self")
staging="\$(mktemp -d)"
trap 'rm -rf "\$staging"' EXIT
tail -n +"\$line" "\$self" | base64 -d | tar -xzf - -C "\$staging"
mkdir -p "\$STATION_HOME"
# --remove-destination unlinks each target first, so a running binary (station
# itself) can be replaced instead of failing with "Text file busy".
cp -a --remove-destination "\$staging/." "\$STATION_HOME/"
printf '%s\n' '${version}' > "\$STATION_HOME/version.txt.new"
sync
mv "\$STATION_HOME/version.txt.new" "\$STATION_HOME/version.txt"
rm -f "\$UPDATE_FILE"
logger -t stationkeeper-update "installed ${version} into \$STATION_HOME" 2>/dev/null || true
\$RESTART_CMD
exit 0
__PAYLOAD_BELOW__
SCRIPT
    tar -czf - -C "$payload" . | base64
} > "$tmp"
chmod 0755 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "built $out ($(wc -c < "$out") bytes) installing version $version into $home" >&2
"${STATIONKEEPER:-stationkeeper}" sign --key "$key" --file "$out"
