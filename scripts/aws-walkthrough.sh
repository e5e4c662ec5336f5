#!/bin/bash
# AWS's walkthrough "Update gateway firmware using the CUPS service" with the real
# aws CLI, only --endpoint-url changed (plus the access key it is configured with).
set -e
# Needs the aws CLI (pip install awscli) and a built stationkeeper (cargo build).
SK=${STATIONKEEPER:-$(pwd)/target/debug/stationkeeper}
WORK=$(mktemp -d)
cd "$WORK"
cat > sk.toml <<T
state_dir = "state"
[cups]
listen = "127.0.0.1:18443"
[lns]
listen = "127.0.0.1:18887"
[api]
listen = "127.0.0.1:17000"
tokens = ["walkthrough-token"]
T
$SK serve --config sk.toml > serve.out 2> serve.err &
SERVER=$!
trap "kill $SERVER; rm -rf $WORK" EXIT
sleep 3
API=http://127.0.0.1:17000
C="--config sk.toml"
GW=$($SK gateways create $C --eui 0016c001ff10a235 --region EU868 --out gw-files | python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])' 2>/dev/null || true)
echo "gateway: $GW"
KEYS=$($SK access-keys create $C --name walkthrough)
export AWS_ACCESS_KEY_ID=$(echo "$KEYS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["AccessKeyId"])')
export AWS_SECRET_ACCESS_KEY=$(echo "$KEYS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["SecretAccessKey"])')
export AWS_DEFAULT_REGION=us-east-1
$SK keys generate --out keys > /dev/null
$SK keys register $C --name fw --file keys/sig-0.key > /dev/null
printf '#!/bin/sh\necho updated\n' > update.bin
SIG=$($SK sign --key keys/signing-key.pem --file update.bin)
USIG=$(echo "$SIG" | awk '/UpdateSignature/ {print $2}')
CRC=$(echo "$SIG" | awk '/SigKeyCrc/ {print $2}')
echo "== list-wireless-gateways"; aws iotwireless list-wireless-gateways --endpoint-url $API
GW=$(aws iotwireless list-wireless-gateways --endpoint-url $API --query "WirelessGatewayList[0].Id" --output text)
echo "== get-wireless-gateway-firmware-information"; aws iotwireless get-wireless-gateway-firmware-information --id "$GW" --endpoint-url $API
echo "== s3 mb / cp / ls"
aws s3 mb s3://iotwirelessfwupdate --endpoint-url $API
aws s3 cp update.bin s3://iotwirelessfwupdate/update.bin --endpoint-url $API
aws s3 ls s3://iotwirelessfwupdate --endpoint-url $API
cat > input.json <<J
{"AutoCreateTasks": true, "Name": "FirmwareUpdate",
 "Update": {"UpdateDataSource": "s3://iotwirelessfwupdate/update.bin",
   "UpdateDataRole": "arn:aws:iam::123456789012:role/IoTWirelessFwUpdateRole",
   "LoRaWAN": {"SigKeyCrc": $CRC, "UpdateSignature": "$USIG",
     "CurrentVersion": {"PackageVersion": "1.0.0", "Model": "rpi", "Station": "2.0.6(rpi/std) 2022-01-21 10:00:00"},
     "UpdateVersion":  {"PackageVersion": "1.0.1", "Model": "rpi", "Station": "2.0.6(rpi/std) 2022-01-21 10:00:00"}}}}
J
echo "== create-wireless-gateway-task-definition"
DEF=$(aws iotwireless create-wireless-gateway-task-definition --cli-input-json file://input.json --endpoint-url $API --query Id --output text)
echo "definition: $DEF"
echo "== get-wireless-gateway-task-definition"; aws iotwireless get-wireless-gateway-task-definition --id "$DEF" --endpoint-url $API
echo "== list-wireless-gateway-task-definitions"; aws iotwireless list-wireless-gateway-task-definitions --endpoint-url $API
echo "== get-wireless-gateway-task (none yet: the gateway has not polled)"; aws iotwireless get-wireless-gateway-task --id "$GW" --endpoint-url $API || true
echo "== get-wireless-gateway-statistics"; aws iotwireless get-wireless-gateway-statistics --wireless-gateway-id "$GW" --endpoint-url $API
echo "== create-multicast-group"; aws iotwireless create-multicast-group --lorawan RfRegion=EU868,DlClass=ClassC --endpoint-url $API
echo "== bad key"; AWS_SECRET_ACCESS_KEY=wrong aws iotwireless list-wireless-gateways --endpoint-url $API || true
