#!/usr/bin/env python3
"""Attack figures for issue 9 items 2 and 7, against a stationkeeper binary.

    python3 scripts/bench-attacks.py --bin target/release/stationkeeper

Starts the binary on 127.0.0.1 (temp state dir, open registration, its own
ports), and measures:

  * baseline: p50/p99 of 100 CUPS polls by a settled token gateway, one every
    100 ms (a fresh TCP + TLS 1.2 connection per poll, as station does);
  * deliveries: rounds of 50 simultaneous polls by one gateway with a PENDING
    update task (16 MiB); the largest number of update deliveries one task got
    (answers carrying the update, and attempt rows), any non-200, and the legit
    gateway's latency meanwhile;
  * register: one client polling with a fresh EUI per request for 10 s
    (16 concurrent); gateways created, statuses, and the legit latency meanwhile.

Only the standard library; no figures are asserted. The server runs with its
defaults except `[gateways] unknown = "register"` and
`[firmware] allow_unverified = true` (the update's signature is never checked
by this client).
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

TOKEN = "bench-attack-token"
STATION = "2.0.6(rpi/std) 2022-01-21 10:00:00"
NO_CRED_CRC = 0x7BD5C66F
KEY_CRC = 0x12345678


def api(base, method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def request(host, gw, package="1.0.0", keys=()):
    body = json.dumps({
        "router": "%x:%x:%x:%x" % ((gw["eui"] >> 48) & 0xffff, (gw["eui"] >> 32) & 0xffff,
                                    (gw["eui"] >> 16) & 0xffff, gw["eui"] & 0xffff),
        "cupsUri": gw.get("cups_uri"), "tcUri": None,
        "cupsCredCrc": gw.get("cups_crc", NO_CRED_CRC), "tcCredCrc": NO_CRED_CRC,
        "station": STATION, "model": "rpi", "package": package, "keys": list(keys),
    }, separators=(",", ":")).encode()
    head = ("POST /update-info HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n%s\r\n" % (host, len(body), gw.get("token", "")))
    return head.encode() + body


def parse_answer(b):
    """(cupsUri, cupsCred, updLen) of a CUPS answer (the update itself skipped)."""
    i = 0
    n = b[i]; i += 1; cups_uri = b[i:i + n].decode(); i += n
    n = b[i]; i += 1; i += n
    n = struct.unpack_from("<H", b, i)[0]; i += 2; cups_cred = b[i:i + n]; i += n
    n = struct.unpack_from("<H", b, i)[0]; i += 2; i += n
    n = struct.unpack_from("<I", b, i)[0]; i += 4; i += n
    upd = struct.unpack_from("<I", b, i)[0]
    return cups_uri, cups_cred, upd


class Cups:
    def __init__(self, port, ca):
        self.port = port
        self.host = "localhost:%d" % port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    async def poll(self, req, keep_body=True):
        """One poll on a fresh connection: (status, body or its length)."""
        r, w = await asyncio.open_connection("127.0.0.1", self.port, ssl=self.ctx,
                                             server_hostname="localhost")
        try:
            w.write(req)
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.decode().split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":")[1])
            if keep_body:
                body = await r.readexactly(length)
            else:
                left = length
                first = b""
                while left:
                    chunk = await r.read(min(left, 1 << 20))
                    if not chunk:
                        raise EOFError("short body")
                    if len(first) < 64:
                        first += chunk[:64]
                    left -= len(chunk)
                body = (first, length)
            return status, body
        finally:
            w.close()


async def settle(cups, gw):
    """Poll until the gateway gets 14 zero bytes, installing what it is sent."""
    for _ in range(4):
        status, body = await cups.poll(request(cups.host, gw))
        if status != 200:
            raise RuntimeError("settle: status %d %r" % (status, body[:200]))
        if body == bytes(14):
            return gw
        uri, cred, _ = parse_answer(body)
        if uri:
            gw["cups_uri"] = uri
        if cred:
            gw["cups_crc"] = zlib.crc32(cred)
    raise RuntimeError("gateway never settled")


def token_gateway(base, eui):
    s, gw = api(base, "POST", "/wireless-gateways",
                {"LoRaWAN": {"GatewayEui": "%016x" % eui, "RfRegion": "EU868"}})
    assert s == 201, (s, gw)
    s, cred = api(base, "POST", "/wireless-gateways/%s/credentials" % gw["Id"],
                  {"Service": "CUPS", "Kind": "Token"})
    assert s == 201, (s, cred)
    token = cred["Files"]["cups.key"].strip() + "\r\n"
    return gw["Id"], {"eui": eui, "token": token, "cups_uri": None}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def legit_latency(cups, gw, n=100, every=0.1):
    """n polls of a settled gateway, one every `every` s; latencies in ms."""
    req = request(cups.host, gw)
    out, bad = [], 0

    async def one():
        nonlocal bad
        t = time.perf_counter()
        try:
            status, body = await asyncio.wait_for(cups.poll(req), 30)
            if status != 200 or body != bytes(14):
                bad += 1
        except Exception:
            bad += 1
        out.append((time.perf_counter() - t) * 1000)

    tasks = []
    for _ in range(n):
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(every)
    await asyncio.gather(*tasks)
    return "p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d polls, %d not answered 'nothing')" % (
        pct(out, 50), pct(out, 99), max(out), n, bad)


async def delivery_rounds(base, cups, legit):
    eui = 0xA77AC4000001
    gw_id, gw = token_gateway(base, eui)
    await settle(cups, gw)
    # Pre-settle with the attack's report (package v0, the key): a first poll.
    data = os.urandom(16 * 1024 * 1024)
    s, blob = api(base, "POST", "/blobs", raw=data)
    assert s == 201, (s, blob)
    sig = bytes([0x30, 0x44, 0x02, 0x20, 0x01]) + os.urandom(31) + bytes([0x02, 0x20, 0x01]) + os.urandom(31)
    import base64
    s, d = api(base, "POST", "/wireless-gateway-task-definitions", {
        "AutoCreateTasks": False, "Name": "attack",
        "Update": {"UpdateDataSource": blob["Id"], "UpdateDataRole": "arn:aws:iam::1:role/x",
                   "LoRaWAN": {"SigKeyCrc": KEY_CRC, "UpdateSignature": base64.b64encode(sig).decode(),
                               "CurrentVersion": {"Station": STATION, "PackageVersion": "v0", "Model": "rpi"},
                               "UpdateVersion": {"Station": STATION, "PackageVersion": "v1", "Model": "rpi"}}}})
    assert s == 201, (s, d)
    req = request(cups.host, gw, package="v0", keys=[KEY_CRC])
    # The report changes to v0: one poll to settle that before the rounds.
    await cups.poll(req, keep_body=False)
    stop = asyncio.Event()
    rounds = []

    async def attack():
        while not stop.is_set():
            s, t = await asyncio.to_thread(api, base, "POST", "/wireless-gateways/%s/tasks" % gw_id,
                                           {"WirelessGatewayTaskDefinitionId": d["Id"]})
            assert s == 201, (s, t)
            results = await asyncio.gather(*[cups.poll(req, keep_body=False) for _ in range(50)],
                                           return_exceptions=True)
            statuses = {}
            updates = 0
            for r in results:
                if isinstance(r, Exception):
                    statuses["error"] = statuses.get("error", 0) + 1
                    continue
                statuses[r[0]] = statuses.get(r[0], 0) + 1
                if r[0] == 200 and r[1][1] > 14:
                    updates += 1
            await asyncio.sleep(0.3)  # let attempt rows settle
            s, t = await asyncio.to_thread(api, base, "GET", "/wireless-gateways/%s/tasks" % gw_id)
            rounds.append((updates, len(t.get("Attempts", [])), t.get("Status"), statuses))
            await asyncio.to_thread(api, base, "DELETE", "/wireless-gateways/%s/tasks" % gw_id)

    a = asyncio.create_task(attack())
    lat = await legit_latency(cups, legit)
    stop.set()
    await a
    worst = max(rounds, key=lambda r: r[0])
    print("deliveries: %d rounds of 50 simultaneous polls; most update answers in one round: %d "
          "(attempt rows %d, status %s); statuses over all rounds: %s"
          % (len(rounds), worst[0], worst[1], worst[2],
             {k: sum(r[3].get(k, 0) for r in rounds) for k in set().union(*[r[3] for r in rounds])}))
    print("  legit poll during it: " + lat)


async def register_flood(base, cups, legit, secs=10.0, conc=16):
    statuses = {}
    next_eui = [0xF100D0000000]
    deadline = time.monotonic() + secs

    async def worker():
        while time.monotonic() < deadline:
            next_eui[0] += 1
            gw = {"eui": next_eui[0], "cups_uri": None}
            try:
                s, _ = await asyncio.wait_for(cups.poll(request(cups.host, gw)), 30)
            except Exception as e:
                s = "error " + type(e).__name__
            statuses[s] = statuses.get(s, 0) + 1

    flood = [asyncio.create_task(worker()) for _ in range(conc)]
    lat = await legit_latency(cups, legit, n=100, every=secs / 100)
    await asyncio.gather(*flood)
    n, token = 0, None
    while True:
        q = "/wireless-gateways?maxResults=250" + ("&nextToken=" + token if token else "")
        s, page = api(base, "GET", q)
        n += len(page["WirelessGatewayList"])
        token = page.get("NextToken")
        if not token:
            break
    print("register: %.0f s, %d concurrent, one source: %d polls, statuses %s; gateways now %d "
          "(2 of them the operator's)" % (secs, conc, sum(statuses.values()), statuses, n))
    print("  legit poll during it: " + lat)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--port-base", type=int, default=21000)
    ap.add_argument("--mode", default="all", choices=["all", "deliveries", "register"])
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-attacks.")
    cups_port, api_port, lns_port = a.port_base, a.port_base + 1, a.port_base + 2
    with open(os.path.join(tmp, "sk.toml"), "w") as f:
        f.write('state_dir = "state"\n[cups]\nlisten = "127.0.0.1:%d"\npublic_uri = "https://localhost:%d"\n'
                '[lns]\nlisten = "127.0.0.1:%d"\n[api]\nlisten = "127.0.0.1:%d"\ntokens = ["%s"]\n'
                '[gateways]\nunknown = "register"\n[firmware]\nallow_unverified = true\n'
                % (cups_port, cups_port, lns_port, api_port, TOKEN))
    log = open(os.path.join(tmp, "server.log"), "w")
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
    srv = subprocess.Popen([a.bin, "serve", "--config", os.path.join(tmp, "sk.toml")],
                           stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(300):
            time.sleep(0.1)
            if "ready" in open(os.path.join(tmp, "server.log")).read():
                break
        base = "http://127.0.0.1:%d" % api_port
        cups = Cups(cups_port, os.path.join(tmp, "state/pki/ca.crt"))
        _, legit = token_gateway(base, 0x1E617000001)
        await settle(cups, legit)
        print("binary: %s" % a.bin)
        print("baseline legit poll: " + await legit_latency(cups, legit))
        if a.mode in ("all", "deliveries"):
            await delivery_rounds(base, cups, legit)
        if a.mode in ("all", "register"):
            await register_flood(base, cups, legit)
        print("server log: %d bytes" % os.path.getsize(os.path.join(tmp, "server.log")))
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=60)
        if a.keep:
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
