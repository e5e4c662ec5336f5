//! Tests of the station simulator (tests/common/station) itself: golden
//! vectors (tests/vectors, copied from shared/vectors) and the spec's worked examples, plus
//! small in-test HTTP/TLS servers that exercise the session logic.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::station::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");

fn vector(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{VECTORS}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn readme() -> serde_json::Value {
    serde_json::from_slice(&vector("cups-creds/README.json")).unwrap()
}

fn hexnum(v: &serde_json::Value) -> u32 {
    u32::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn station() -> (tempfile::TempDir, Station) {
    let dir = tempfile::tempdir().unwrap();
    let st = Station::new(dir.path().to_path_buf(), 0xB827_EBFF_FE61_51A8);
    (dir, st)
}

// ---- §2.1 ID6 ------------------------------------------------------------

#[test]
fn id6_formats() {
    let cases: &[(u64, &str)] = &[
        (0, "::0"),
        (1, "::1"),
        (0xabcd, "::abcd"),
        (0x0000_0000_0001_0002, "::1:2"),
        (0x0000_0000_00ab_0000, "::ab:0"),
        (0x0001_0000_0000_0000, "1::"),
        (0x0001_0002_0000_0000, "1:2::"),
        (0x0000_0001_0000_0000, "0:1::"),
        (0x0001_0000_0000_0002, "1::2"),
        (0x0000_0001_0000_0002, "0:1:0:2"),
        (0x0001_0000_0002_0000, "1:0:2:0"),
        (0x0001_0000_0002_0003, "1:0:2:3"),
        (0xB827_EBFF_FE61_51A8, "b827:ebff:fe61:51a8"),
        (0x00AB_0C0D_000E_F000, "ab:c0d:e:f000"),
        (u64::MAX, "ffff:ffff:ffff:ffff"),
    ];
    for &(eui, text) in cases {
        assert_eq!(id6(eui), text, "EUI {eui:016X}");
    }
}

// ---- §2 / §8.1 request ----------------------------------------------------

/// CRC32 register step F(x) = table[x & 0xff] ^ (x >> 8) and its inverse,
/// used to forge file contents that give the spec's illustrative CRC.
fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    for (i, e) in t.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *e = c;
    }
    t
}

fn crc_unstep(t: &[u32; 256], y: u32) -> u32 {
    let idx = t.iter().position(|&e| e >> 24 == y >> 24).unwrap() as u32;
    ((y ^ t[idx as usize]) << 8) | idx
}

/// Four bytes that, appended to `prefix`, make the running CRC over
/// `prefix ‖ X ‖ suffix` equal `target`.
fn forge_crc(prefix: &[u8], suffix: &[u8], target: u32) -> [u8; 4] {
    let t = crc_table();
    let mut r = !target;
    for &b in suffix.iter().rev() {
        r = crc_unstep(&t, r) ^ u32::from(b);
    }
    for _ in 0..4 {
        r = crc_unstep(&t, r);
    }
    (r ^ !crc32(prefix)).to_le_bytes()
}

/// Home directory matching §8.1: token in cups.key, no cups.crt, no tc.*.
fn spec_8_1_station() -> (tempfile::TempDir, Station) {
    let (dir, st) = station();
    let st = st
        .with_station_version("2.0.6(rpi/std) 2022-01-21 10:00:00")
        .with_model("rpi");
    st.write_file("cups.uri", "https://cups.example.com:443\n");
    let key = b"Authorization: Bearer NNSXS.example\n";
    let mut suffix = vec![0u8; 4];
    suffix.extend_from_slice(key);
    let mut trust = b"not really a certificate".to_vec();
    trust.extend_from_slice(&forge_crc(&trust, &suffix, 3_526_472_290));
    st.write_file("cups.trust", &trust);
    st.write_file("cups.key", key);
    st.write_file("version.txt", "1.0.0\n");
    st.write_file("sig-0.key", vector("station-test4/sig-0.key"));
    (dir, st)
}

const SPEC_8_1_BODY: &str = r#"{"router":"b827:ebff:fe61:51a8","cupsUri":"https://cups.example.com:443","tcUri":null,"cupsCredCrc":3526472290,"tcCredCrc":2077607535,"station":"2.0.6(rpi/std) 2022-01-21 10:00:00","model":"rpi","package":"1.0.0","keys":[488546068]}"#;

#[test]
fn request_body_matches_spec_8_1() {
    let (_d, st) = spec_8_1_station();
    assert_eq!(st.cred_crc(CredSet::Reg, Category::Cups), 3_526_472_290);
    let body = st.request_body();
    assert_eq!(body, SPEC_8_1_BODY);
    assert_eq!(body.len(), 232);
}

#[test]
fn request_bytes_match_spec_8_1() {
    let (_d, st) = spec_8_1_station();
    let token = normalize_token(&st.read_file("cups.key").unwrap()).unwrap();
    assert_eq!(token, b"Authorization: Bearer NNSXS.example\r\n");
    let req = st.request_bytes("cups.example.com:443", Some(&token));
    let expected = format!(
        "POST /update-info HTTP/1.1\r\nHost: cups.example.com:443\r\n\
         Content-Type: application/json\r\nContent-Length:   232\r\n\
         Authorization: Bearer NNSXS.example\r\n\r\n{SPEC_8_1_BODY}"
    );
    assert_eq!(String::from_utf8(req).unwrap(), expected);
    let plain = String::from_utf8(st.request_bytes("h:1", None)).unwrap();
    assert!(plain.starts_with(
        "POST /update-info HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/json\r\n\
         Content-Length:   232\r\n\r\n{"
    ));
}

#[test]
fn request_body_null_and_limits() {
    let (_d, st) = station();
    assert_eq!(
        st.request_body(),
        "{\"router\":\"b827:ebff:fe61:51a8\",\"cupsUri\":null,\"tcUri\":null,\
         \"cupsCredCrc\":2077607535,\"tcCredCrc\":2077607535,\
         \"station\":\"2.0.6(linux/std) 2022-01-21 10:00:00\",\"model\":\"linux\",\
         \"package\":null,\"keys\":[]}"
    );
    // Trailing whitespace trimmed; 127 chars kept, 128 chars → null.
    st.write_file("tc.uri", "wss://lns.example.com:8887 \r\n\t");
    assert_eq!(
        st.request_info().tc_uri.as_deref(),
        Some("wss://lns.example.com:8887")
    );
    let base = "https://h:1";
    st.write_file(
        "cups.uri",
        format!("{base}{}", "1".repeat(127 - base.len())),
    );
    assert!(st.request_info().cups_uri.is_some());
    st.write_file(
        "cups.uri",
        format!("{base}{}", "1".repeat(128 - base.len())),
    );
    assert_eq!(st.request_info().cups_uri, None);
    // keys stop at the first gap; every file is listed whatever its size.
    st.write_file("sig-0.key", [1u8; 64]);
    st.write_file("sig-1.key", b"short");
    st.write_file("sig-3.key", [3u8; 64]);
    assert_eq!(
        st.request_info().keys,
        vec![crc32(&[1u8; 64]), crc32(b"short")]
    );
}

#[test]
fn crc_of_no_files() {
    let (_d, st) = station();
    assert_eq!(st.cred_crc(CredSet::Reg, Category::Cups), 0x7BD5_C66F);
    assert_eq!(cred_crc([None, None, None]), 0x7BD5_C66F);
    assert_eq!(cred_crc([Some(b""), Some(b""), Some(b"")]), 0x7BD5_C66F);
    assert_eq!(
        hexnum(&readme()["station_crc_check"]["no-files"]),
        0x7BD5_C66F
    );
}

#[test]
fn token_normalisation() {
    assert_eq!(
        normalize_token(b"Authorization: x\n\n\r\n").unwrap(),
        b"Authorization: x\r\n"
    );
    assert_eq!(
        normalize_token(b"A-b_1: x\r\nB: y").unwrap(),
        b"A-b_1: x\r\nB: y\r\n"
    );
    assert!(normalize_token(b"").is_err());
    assert!(normalize_token(b"Bad Name: x\n").is_err());
    assert!(normalize_token(b"NoSpace:x\n").is_err());
    assert!(normalize_token(b"A: x\n\nB: y\n").is_err());
}

// ---- §6 credential blobs ----------------------------------------------------

fn install_crc(parts: &CredParts) -> u32 {
    cred_crc([Some(&parts.trust), Some(&parts.cert), Some(&parts.key)])
}

#[test]
fn golden_blobs_split_and_crc() {
    let rd = readme();
    let p = &rd["parts"];
    for (file, key) in [
        ("mtls.bin", "mtls"),
        ("token.bin", "token"),
        ("server-only.bin", "server-only"),
    ] {
        let blob = vector(&format!("cups-creds/{file}"));
        assert_eq!(blob.len() as u64, rd[file]["len"].as_u64().unwrap());
        assert_eq!(crc32(&blob), hexnum(&rd[file]["crc32"]), "{file}");
        let parts = split_cred(&blob).unwrap();
        assert_eq!(parts.trust.len() as u64, p["trust_len"].as_u64().unwrap());
        assert_eq!(
            hex::encode(&parts.trust[..4]),
            p["trust_hdr"].as_str().unwrap()
        );
        match key {
            "mtls" => {
                assert_eq!(parts.cert.len() as u64, p["cert_len"].as_u64().unwrap());
                assert_eq!(parts.key.len() as u64, p["key_sec1_len"].as_u64().unwrap());
                assert_eq!(
                    hex::encode(&parts.key[..2]),
                    p["key_sec1_hdr"].as_str().unwrap()
                );
            }
            "token" => {
                assert!(parts.cert.is_empty());
                assert_eq!(parts.key, p["token"].as_str().unwrap().as_bytes());
            }
            _ => {
                assert!(parts.cert.is_empty());
                assert!(parts.key.is_empty());
            }
        }
        let station_crc = install_crc(&parts);
        assert_eq!(station_crc, crc32(&blob), "{file}");
        assert_eq!(station_crc, hexnum(&rd["station_crc_check"][key]), "{file}");
    }
}

#[test]
fn trust_with_only_four_zero_bytes() {
    let rd = readme();
    let full = vector("cups-creds/server-only.bin");
    let blob = &full[..full.len() - 4];
    // What the server sent has this CRC (README.json lists it as 0xB742F73E) ...
    assert_eq!(
        crc32(blob),
        hexnum(&rd["station_crc_check"]["server-only-with-only-4-zero-bytes-blob"])
    );
    assert_eq!(crc32(blob), 0xB742_F73E);
    // ... but it installs as trust + empty crt + empty key, so station then
    // reports crc(trust ‖ 8 zero bytes) (§6.4, README.md).
    let parts = split_cred(blob).unwrap();
    assert!(parts.cert.is_empty() && parts.key.is_empty());
    assert_eq!(install_crc(&parts), 0x1671_3E73);
    assert_ne!(install_crc(&parts), crc32(blob));
}

fn pkcs8_from_sec1(sec1: &[u8]) -> Vec<u8> {
    use p256::pkcs8::EncodePrivateKey;
    let sk = p256::SecretKey::from_sec1_der(sec1).unwrap();
    sk.to_pkcs8_der().unwrap().as_bytes().to_vec()
}

#[test]
fn misparsed_0x81_length_forms_are_rejected() {
    let mtls = vector("cups-creds/mtls.bin");
    let parts = split_cred(&mtls).unwrap();
    let pkcs8 = pkcs8_from_sec1(&parts.key);
    assert_eq!(pkcs8.len(), 138);
    assert_eq!(&pkcs8[..3], &[0x30, 0x81, 0x87]);
    // PKCS#8 key part: key_len read as 0x8702 + 4 = 34566 → rejected.
    let blob = [&parts.trust[..], &parts.cert, &pkcs8].concat();
    let err = split_cred(&blob).unwrap_err();
    assert!(err.contains("34566"), "{err}");
    assert!(
        err.contains(&format!("segment_len={}", blob.len())),
        "{err}"
    );
    // 0x81 cert part pushes the key offset past the end.
    let fake_cert = [&[0x30, 0x81, 0x80][..], &[0u8; 128]].concat();
    let blob = [&parts.trust[..], &fake_cert, &parts.key].concat();
    assert!(split_cred(&blob)
        .unwrap_err()
        .contains("expecting more data"));
    // 0x81 trust part: cert offset far past the end.
    let blob = [&fake_cert[..], &[0u8; 8]].concat();
    assert!(split_cred(&blob).is_err());
    // Other rejections.
    assert!(split_cred(b"").is_err());
    assert!(split_cred(&[0x31, 0x00]).is_err());
    let blob = [&parts.trust[..], &[0x05, 0, 0, 0], &[0u8; 4]].concat();
    assert!(split_cred(&blob).is_err());
    // Trailing bytes after a DER key are dropped.
    let blob = [&mtls[..], b"xyz"].concat();
    assert_eq!(split_cred(&blob).unwrap(), parts);
}

// ---- §3 answers ---------------------------------------------------------------

#[test]
fn parse_signed_update_vector() {
    let body = vector("station-test4/cups-response-sig-update.bin");
    let a = parse_answer(&body).unwrap();
    assert_eq!(a.cups_uri, None);
    assert_eq!(a.tc_uri, None);
    assert_eq!(a.cups_cred, None);
    assert_eq!(a.tc_cred, None);
    assert_eq!(a.key_crc, Some(0x1D1E_9F14));
    let sig = a.signature.clone().unwrap();
    assert_eq!(sig.len(), 72);
    assert_eq!(sig, vector("station-test4/v1.bin.sig-0"));
    let upd = a.update.clone().unwrap();
    assert_eq!(upd.len(), 136);
    assert_eq!(upd, vector("station-test4/v1.bin"));
    assert_eq!(a.consumed, 226);
    let key = vector("station-test4/sig-0.key");
    assert_eq!(crc32(&key), 0x1D1E_9F14);
    assert!(verify_update(&upd, &sig, &key));
    let mut tampered = upd.clone();
    tampered[20] ^= 1;
    assert!(!verify_update(&tampered, &sig, &key));
    assert!(!verify_update(&upd, &sig, &key[..63]));
    let mut other_key = key.clone();
    other_key[63] ^= 1;
    assert!(!verify_update(&upd, &sig, &other_key));
}

#[test]
fn nothing_to_do_answer() {
    let p = parse_prefix(&[0u8; 14]);
    assert_eq!(p.state, ParseState::Complete);
    assert!(p.committed);
    assert_eq!(
        p.answer,
        Answer {
            consumed: 14,
            ..Answer::default()
        }
    );
    // Bytes after the last section are ignored.
    let a = parse_answer(&[0u8; 20]).unwrap();
    assert_eq!(a.consumed, 14);
}

#[test]
fn spec_8_2_tc_uri_answer() {
    let mut body = vec![0x00, 0x1a];
    body.extend_from_slice(b"wss://lns.example.com:8887");
    body.extend_from_slice(&[0u8; 12]);
    assert_eq!(body.len(), 40);
    let a = parse_answer(&body).unwrap();
    assert_eq!(
        a.tc_uri.as_deref(),
        Some(&b"wss://lns.example.com:8887"[..])
    );
    assert_eq!(a.update, None);
}

#[test]
fn truncated_and_invalid_answers() {
    let body = vector("station-test4/cups-response-sig-update.bin");
    for n in 0..body.len() {
        let p = parse_prefix(&body[..n]);
        assert!(
            matches!(p.state, ParseState::NeedMore(_)),
            "prefix {n}: {:?}",
            p.state
        );
        // Commit point: updLen (offset 0x56..0x5A) read and > 0.
        assert_eq!(p.committed, n >= 0x5A, "prefix {n}");
        assert!(parse_answer(&body[..n]).is_err());
    }
    for n in 0..14 {
        assert!(parse_answer(&[0u8; 14][..n]).is_err());
    }
    let mk = |sig_len: u32, upd_len: u32| {
        let mut b = vec![0u8; 6];
        b.extend_from_slice(&sig_len.to_le_bytes());
        b.extend_from_slice(&vec![0u8; sig_len as usize]);
        b.extend_from_slice(&upd_len.to_le_bytes());
        b
    };
    for bad in [1, 4, 7, 133, 200] {
        let p = parse_prefix(&mk(bad, 0));
        assert!(matches!(p.state, ParseState::Invalid(_)), "sigLen {bad}");
        assert!(!p.committed);
    }
    for good in [8, 76, 132] {
        let a = parse_answer(&mk(good, 0)).unwrap();
        assert_eq!(a.signature.unwrap().len(), good as usize - 4);
        assert_eq!(a.key_crc, Some(0));
    }
    let p = parse_prefix(&mk(0, 0x8000_0000));
    assert!(matches!(p.state, ParseState::Invalid(_)));
    assert!(!p.committed);
}

// ---- TLS credential loading -----------------------------------------------------

#[test]
fn key_and_cert_loading_forms() {
    let parts = split_cred(&vector("cups-creds/mtls.bin")).unwrap();
    assert!(matches!(
        load_key(&parts.key).unwrap(),
        rustls::pki_types::PrivateKeyDer::Sec1(_)
    ));
    let pkcs8 = pkcs8_from_sec1(&parts.key);
    assert!(matches!(
        load_key(&pkcs8).unwrap(),
        rustls::pki_types::PrivateKeyDer::Pkcs8(_)
    ));
    let pem = pem_block("EC PRIVATE KEY", &parts.key);
    assert!(matches!(
        load_key(pem.as_bytes()).unwrap(),
        rustls::pki_types::PrivateKeyDer::Sec1(_)
    ));
    assert!(load_key(b"Authorization: x\r\n").is_err());
    let two = format!(
        "{}{}",
        pem_block("CERTIFICATE", &parts.trust),
        pem_block("CERTIFICATE", &parts.cert)
    );
    assert_eq!(load_certs(two.as_bytes()).unwrap().len(), 2);
    assert_eq!(load_certs(&parts.trust).unwrap().len(), 1);
    // Client config builds for each key form.
    for key in [&parts.key[..], &pkcs8[..], pem.as_bytes()] {
        client_config(&parts.trust, Some((&parts.cert, key)), true).unwrap();
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

#[test]
fn cups_uri_parsing() {
    let u = parse_cups_uri("https://cups.example.com:443").unwrap();
    assert!(u.tls);
    assert_eq!(u.host, "cups.example.com");
    assert_eq!(u.host_port, "cups.example.com:443");
    let u = parse_cups_uri("http://[::1]:80").unwrap();
    assert_eq!((u.host.as_str(), u.port.as_str()), ("[::1]", "80"));
    for bad in [
        "https://h",
        "https://h:443/",
        "ftp://h:1",
        "https://:1",
        "wss://h:1",
        "https://h:x",
    ] {
        assert!(parse_cups_uri(bad).is_err(), "{bad}");
    }
}

// ---- sessions against in-test servers ------------------------------------------

/// Reads one HTTP request (header + Content-Length body) from `s`.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(p) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&req[..p]).to_ascii_lowercase();
            let cl: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if req.len() >= p + 4 + cl {
                return req;
            }
        }
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            return req;
        }
        req.extend_from_slice(&buf[..n]);
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, response: &[u8]) -> Vec<u8> {
    let req = read_request(&mut s).await;
    let _ = s.write_all(response).await;
    let _ = s.shutdown().await;
    req
}

fn http_200(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Plain HTTP server answering each connection with the next canned response;
/// returns the received requests.
async fn plain_server(
    responses: Vec<Vec<u8>>,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let mut reqs = Vec::new();
        for r in responses {
            let (s, _) = l.accept().await.unwrap();
            reqs.push(answer(s, &r).await);
        }
        reqs
    });
    (addr, h)
}

fn tc_uri_body() -> Vec<u8> {
    let mut body = vec![0x00, 0x1a];
    body.extend_from_slice(b"wss://lns.example.com:8887");
    body.extend_from_slice(&[0u8; 12]);
    body
}

#[tokio::test]
async fn plain_session_commits_and_backs_up_once() {
    let (_d, mut st) = station();
    st.write_file("cups.uri", "http://cups.test:80");
    st.write_file("version.txt", "v0");
    let (addr, h) = plain_server(vec![http_200(&tc_uri_body()), http_200(&[0u8; 14])]).await;
    let out = st.poll(addr).await;
    out.expect_ok();
    assert_eq!(out.set, CredSet::Reg);
    assert_eq!(out.auth, Some(AuthMode::Plain));
    assert_eq!(out.status, Some(200));
    assert!(out.committed);
    assert_eq!(out.written, vec!["tc.uri"]);
    assert_eq!(out.backed_up, vec!["cups-bak.uri"]);
    assert_eq!(
        st.read_file("tc.uri").unwrap(),
        b"wss://lns.example.com:8887"
    );
    assert!(st.exists("cups-bak.done"));
    // Second session: the request reports the new tcUri; no new backup.
    st.write_file("cups.uri", "http://cups2.test:80");
    let out = st.poll(addr).await;
    out.expect_ok();
    assert!(out.backed_up.is_empty());
    assert_eq!(
        st.read_file("cups-bak.uri").unwrap(),
        b"http://cups.test:80"
    );
    let reqs = h.await.unwrap();
    let first = String::from_utf8(reqs[0].clone()).unwrap();
    assert!(first.starts_with("POST /update-info HTTP/1.1\r\nHost: cups.test:80\r\n"));
    assert!(first.contains("\"tcUri\":null"));
    let second = String::from_utf8(reqs[1].clone()).unwrap();
    assert!(second.contains("Host: cups2.test:80\r\n"));
    assert!(second.contains("\"tcUri\":\"wss://lns.example.com:8887\""));
    assert!(second.contains("\"package\":\"v0\""));
}

#[tokio::test]
async fn rotation_reg_bak_boot() {
    let (_d, mut st) = station();
    st.write_file("cups.uri", "http://reg.test:1");
    st.write_file("cups-boot.uri", "http://boot.test:2");
    let (reg, hr) = plain_server(vec![
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec()
    ])
    .await;
    let (boot, hb) = plain_server(vec![http_200(&[0u8; 14])]).await;
    let o1 = st.poll(reg).await;
    assert_eq!(o1.error, Some(StationError::Rejected(403)));
    assert_eq!((o1.set, o1.next_set), (CredSet::Reg, CredSet::Bak));
    assert!(!st.exists("cups-bak.done"));
    let o2 = st.poll(reg).await;
    assert_eq!(o2.error, Some(StationError::NoUri(CredSet::Bak)));
    assert_eq!(o2.next_set, CredSet::Boot);
    let o3 = st.poll(boot).await;
    o3.expect_ok();
    assert_eq!((o3.set, o3.next_set), (CredSet::Boot, CredSet::Reg));
    assert!(o3.backed_up.is_empty());
    assert!(!st.exists("cups-bak.done"));
    assert_eq!(st.fail_count(), 0);
    hr.await.unwrap();
    let boot_req = String::from_utf8(hb.await.unwrap().remove(0)).unwrap();
    assert!(boot_req.contains("Host: boot.test:2\r\n"));
    assert!(boot_req.contains("\"cupsUri\":\"http://reg.test:1\""));
}

#[tokio::test]
async fn seven_failures_rotate() {
    let (_d, mut st) = station();
    st.write_file("cups.uri", "http://reg.test:1");
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    for i in 1..=7 {
        let o = st.poll(dead).await;
        assert!(matches!(o.error, Some(StationError::Connect(_))), "{o:?}");
        assert_eq!(o.set, CredSet::Reg);
        let expect = if i <= FAIL_CNT_THRES {
            CredSet::Reg
        } else {
            CredSet::Bak
        };
        assert_eq!(o.next_set, expect, "after failure {i}");
    }
}

#[tokio::test]
async fn http_framing_errors_commit_nothing() {
    let body = tc_uri_body();
    let mut no_cl = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    no_cl.extend_from_slice(&body);
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n".to_vec();
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut extra = http_200(&body);
    extra.extend_from_slice(b"XXXX");
    let mut short = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        body.len() - 4
    )
    .into_bytes();
    short.extend_from_slice(&body[..body.len() - 4]);
    let mut early_close =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    early_close.extend_from_slice(&body[..30]);
    let bad_status = b"HTTP/2 200 OK\r\nContent-Length: 14\r\n\r\n".to_vec();
    let cases = vec![no_cl, chunked, extra, short, early_close, bad_status];
    let n = cases.len();
    let (addr, h) = plain_server(cases).await;
    let (_d, mut st) = station();
    st.write_file("cups.uri", "http://cups.test:80");
    let mut errors = Vec::new();
    for _ in 0..n {
        st.set_cred_set(CredSet::Reg);
        let o = st.poll(addr).await;
        assert!(!o.committed, "{o:?}");
        assert!(o.written.is_empty());
        assert!(!st.exists("tc.uri"));
        errors.push(o.error.unwrap());
    }
    h.await.unwrap();
    assert!(matches!(&errors[0], StationError::Protocol(e) if e.contains("extra bytes")));
    assert!(matches!(&errors[1], StationError::Protocol(e) if e.contains("chunked")));
    assert!(matches!(&errors[2], StationError::Protocol(e) if e.contains("more data")));
    assert!(matches!(&errors[3], StationError::Protocol(e) if e.contains("Unexpected end")));
    assert!(matches!(&errors[4], StationError::Interrupted(_)));
    assert!(matches!(&errors[5], StationError::Http(_)));
}

fn update_answer(tc_uri: &[u8], sig: Option<(&[u8], u32)>, update: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8, tc_uri.len() as u8];
    b.extend_from_slice(tc_uri);
    b.extend_from_slice(&[0u8; 4]);
    match sig {
        Some((s, crc)) => {
            b.extend_from_slice(&(s.len() as u32 + 4).to_le_bytes());
            b.extend_from_slice(&crc.to_le_bytes());
            b.extend_from_slice(s);
        }
        None => b.extend_from_slice(&[0u8; 4]),
    }
    b.extend_from_slice(&(update.len() as u32).to_le_bytes());
    b.extend_from_slice(update);
    b
}

#[tokio::test]
async fn interrupted_download_and_commit_point() {
    let upd = vector("station-test4/v1.bin");
    let body = update_answer(b"ws://lns.test:1", None, &upd);
    let upd_start = body.len() - upd.len();
    let (addr, h) = plain_server(vec![http_200(&body); 3]).await;
    let (_d, mut st) = station();
    st.write_file("cups.uri", "http://cups.test:80");
    // Dropped before the updLen field: nothing committed.
    st.set_abort_after_body_bytes(Some(upd_start - 1));
    let o = st.poll(addr).await;
    assert!(
        matches!(o.error, Some(StationError::Interrupted(_))),
        "{o:?}"
    );
    assert!(!o.committed && !st.exists("tc.uri"));
    assert_eq!(o.body.len(), upd_start - 1);
    // Dropped inside the update: URIs committed, no update.
    st.set_abort_after_body_bytes(Some(upd_start + 10));
    let o = st.poll(addr).await;
    assert!(matches!(o.error, Some(StationError::Interrupted(_))));
    assert!(o.committed);
    assert_eq!(o.update, None);
    assert_eq!(st.read_file("tc.uri").unwrap(), b"ws://lns.test:1");
    // Complete: unsigned update runs since there is no sig-0.key.
    st.set_abort_after_body_bytes(None);
    let o = st.poll(addr).await;
    o.expect_ok();
    let u = o.update.unwrap();
    assert!(!u.signed && u.would_run && u.data == upd);
    h.await.unwrap();
}

#[tokio::test]
async fn signed_and_unsigned_update_decisions() {
    let upd = vector("station-test4/v1.bin");
    let sig = vector("station-test4/v1.bin.sig-0");
    let key = vector("station-test4/sig-0.key");
    let signed = vector("station-test4/cups-response-sig-update.bin");
    let unsigned = update_answer(b"", None, &upd);
    let (addr, h) = plain_server(vec![
        http_200(&signed),
        http_200(&unsigned),
        http_200(&signed),
    ])
    .await;
    let (_d, mut st) = station();
    st.write_file("cups.uri", "http://cups.test:80");
    st.write_file("version.txt", "v0");
    st.write_file("sig-0.key", [7u8; 64]); // wrong key first
    st.write_file("sig-1.key", &key);
    let o = st.poll(addr).await;
    o.expect_ok();
    assert!(o.update_verified());
    let u = o.update.clone().unwrap();
    assert_eq!(
        (u.signed, u.verified_key, u.would_run),
        (true, Some(1), true)
    );
    st.apply_update_version("v1");
    assert_eq!(st.package().as_deref(), Some("v1"));
    // Unsigned while sig-0.key exists: aborted.
    let o = st.poll(addr).await;
    let u = o.update.unwrap();
    assert!(!u.signed && !u.would_run);
    // Signed but no key verifies: aborted.
    st.remove_file("sig-1.key");
    let o = st.poll(addr).await;
    let u = o.update.unwrap();
    assert!(u.signed && u.verified_key.is_none() && !u.would_run);
    assert!(!verify_update(&upd, &sig, &[7u8; 64]));
    let reqs = h.await.unwrap();
    assert!(String::from_utf8_lossy(&reqs[1]).contains("\"package\":\"v1\""));
}

// ---- TLS sessions -------------------------------------------------------------------

struct Pki {
    ca_der: Vec<u8>,
    ca_pem: String,
    server_der: Vec<u8>,
    server_key_pkcs8: Vec<u8>,
    client_der: Vec<u8>,
    client_key_sec1: Vec<u8>,
}

fn make_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "station simulator test CA");
    dn.push(DnType::OrganizationName, "stationkeeper integration tests");
    ca_params.distinguished_name = dn;
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let srv_key = KeyPair::generate().unwrap();
    let srv = CertificateParams::new(vec!["cups.test".to_string()])
        .unwrap()
        .signed_by(&srv_key, &ca, &ca_key)
        .unwrap();
    let cli_key = KeyPair::generate().unwrap();
    let cli = CertificateParams::new(vec!["station.test".to_string()])
        .unwrap()
        .signed_by(&cli_key, &ca, &ca_key)
        .unwrap();
    let sec1 = p256::SecretKey::from_pkcs8_der(&cli_key.serialize_der())
        .unwrap()
        .to_sec1_der()
        .unwrap()
        .to_vec();
    Pki {
        ca_der: ca.der().to_vec(),
        ca_pem: ca.pem(),
        server_der: srv.der().to_vec(),
        server_key_pkcs8: srv_key.serialize_der(),
        client_der: cli.der().to_vec(),
        client_key_sec1: sec1,
    }
}

use p256::pkcs8::DecodePrivateKey;

/// What the TLS server saw on one connection.
#[derive(Debug)]
struct Seen {
    request: Vec<u8>,
    client_cert: bool,
    version: Option<rustls::ProtocolVersion>,
}

async fn tls_server(
    pki: &Pki,
    responses: Vec<Vec<u8>>,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<Seen>>) {
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(pki.ca_der.clone())).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(pki.server_der.clone())],
            PrivatePkcs8KeyDer::from(pki.server_key_pkcs8.clone()).into(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let mut seen = Vec::new();
        for r in responses {
            let (s, _) = l.accept().await.unwrap();
            let Ok(tls) = acceptor.accept(s).await else {
                seen.push(Seen {
                    request: Vec::new(),
                    client_cert: false,
                    version: None,
                });
                continue;
            };
            let (_, conn) = tls.get_ref();
            let client_cert = conn.peer_certificates().is_some_and(|c| !c.is_empty());
            let version = conn.protocol_version();
            let request = answer(tls, &r).await;
            seen.push(Seen {
                request,
                client_cert,
                version,
            });
        }
        seen
    });
    (addr, h)
}

#[tokio::test]
async fn tls_server_only_then_mtls_then_token() {
    let pki = make_pki();
    // Server-only → install an mTLS blob (trust ‖ cert ‖ SEC1 key).
    let mtls_blob = [&pki.ca_der[..], &pki.client_der, &pki.client_key_sec1].concat();
    assert_eq!(pki.ca_der[1], 0x82, "CA DER must use the 0x82 length form");
    let token = b"Authorization: Bearer sim-token\r\n";
    let token_blob = [&pki.ca_der[..], &[0u8; 4], token].concat();
    let mut a1 = vec![0u8, 0];
    a1.extend_from_slice(&(mtls_blob.len() as u16).to_le_bytes());
    a1.extend_from_slice(&mtls_blob);
    a1.extend_from_slice(&[0u8; 10]);
    let mut a2 = vec![0u8, 0];
    a2.extend_from_slice(&(token_blob.len() as u16).to_le_bytes());
    a2.extend_from_slice(&token_blob);
    a2.extend_from_slice(&[0u8; 10]);
    let (addr, h) = tls_server(
        &pki,
        vec![http_200(&a1), http_200(&a2), http_200(&[0u8; 14])],
    )
    .await;

    let (_d, mut st) = station();
    st.write_file("cups.uri", "https://cups.test:443\n");
    st.write_file("cups.trust", &pki.ca_pem);
    let o = st.poll(addr).await;
    o.expect_ok();
    assert_eq!(o.auth, Some(AuthMode::ServerOnly));
    assert_eq!(
        o.response.as_ref().unwrap().tls_version.as_deref(),
        Some("TLSv1_2")
    );
    assert!(matches!(o.cups_cred, Some(CredResult::Installed(_))));
    assert_eq!(o.written, vec!["cups.trust", "cups.crt", "cups.key"]);
    assert_eq!(st.cred_crc(CredSet::Reg, Category::Cups), crc32(&mtls_blob));
    // Backup holds the original PEM trust.
    assert_eq!(
        st.read_file("cups-bak.trust").unwrap(),
        pki.ca_pem.as_bytes()
    );

    let o = st.poll(addr).await;
    o.expect_ok();
    assert_eq!(o.auth, Some(AuthMode::ClientCert));
    assert_eq!(
        st.cred_crc(CredSet::Reg, Category::Cups),
        crc32(&token_blob)
    );
    assert!(st.read_file("cups.crt").unwrap().is_empty());

    let o = st.poll(addr).await;
    o.expect_ok();
    assert_eq!(o.auth, Some(AuthMode::Token));

    let seen = h.await.unwrap();
    assert!(!seen[0].client_cert);
    assert!(seen[1].client_cert);
    assert!(!seen[2].client_cert);
    assert!(seen
        .iter()
        .all(|s| s.version == Some(rustls::ProtocolVersion::TLSv1_2)));
    let r0 = String::from_utf8(seen[0].request.clone()).unwrap();
    assert!(r0.contains("Host: cups.test:443\r\n"));
    assert!(!r0.contains("Authorization"));
    let r2 = String::from_utf8(seen[2].request.clone()).unwrap();
    assert!(r2.contains("Content-Length:   "));
    assert!(r2.contains("\r\nAuthorization: Bearer sim-token\r\n\r\n{\"router\":"));
    assert!(r2.contains(&format!("\"cupsCredCrc\":{}", crc32(&token_blob))));
}

#[tokio::test]
async fn tls_rejected_pkcs8_blob_keeps_old_files_and_checks_hostname() {
    let pki = make_pki();
    let pkcs8 = pkcs8_from_sec1(&pki.client_key_sec1);
    let bad_blob = [&pki.ca_der[..], &pki.client_der, &pkcs8].concat();
    let mut a = vec![0u8, 0, 0, 0];
    a.extend_from_slice(&(bad_blob.len() as u16).to_le_bytes());
    a.extend_from_slice(&bad_blob);
    a.extend_from_slice(&[0u8; 8]);
    let (addr, h) = tls_server(&pki, vec![http_200(&a), Vec::new()]).await;
    let (_d, mut st) = station();
    st.write_file("cups.uri", "https://cups.test:443");
    st.write_file("cups.trust", &pki.ca_der);
    st.write_file("tc.trust", b"old");
    let o = st.poll(addr).await;
    o.expect_ok();
    assert!(
        matches!(&o.tc_cred, Some(CredResult::Rejected(e)) if e.contains("Lengths do not align"))
    );
    assert!(o.written.is_empty());
    assert_eq!(st.read_file("tc.trust").unwrap(), b"old");
    // Wrong host name: certificate check fails.
    st.write_file("cups.uri", "https://other.test:443");
    let o = st.poll(addr).await;
    assert!(matches!(o.error, Some(StationError::Tls(_))), "{o:?}");
    h.await.unwrap();
    // IP host refused by default, https without trust refused.
    st.write_file("cups.uri", "https://127.0.0.1:443");
    st.set_cred_set(CredSet::Reg);
    let o = st.poll(addr).await;
    assert!(matches!(&o.error, Some(StationError::Tls(e)) if e.contains("IP")));
    st.write_file("cups.uri", "https://cups.test:443");
    st.remove_file("cups.trust");
    st.set_cred_set(CredSet::Reg);
    let o = st.poll(addr).await;
    assert!(matches!(&o.error, Some(StationError::Tls(e)) if e.contains("trust")));
}

#[tokio::test]
async fn raw_exchange_and_tls13_option() {
    let pki = make_pki();
    let (addr, h) = tls_server(&pki, vec![http_200(&[0u8; 14]), http_200(&[0u8; 14])]).await;
    let config = client_config(&pki.ca_der, None, false).unwrap();
    let transport = Transport::Tls {
        config,
        server_name: "cups.test".into(),
    };
    let req = build_request("cups.test:443", None, b"{}");
    let r = raw_exchange(addr, &transport, &req, &ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length, Some(14));
    assert_eq!(r.body, vec![0u8; 14]);
    assert_eq!(r.tls_version.as_deref(), Some("TLSv1_3"));
    let opts = ReadOptions {
        timeout: Duration::from_secs(5),
        max_body_bytes: Some(3),
    };
    let r = raw_exchange(addr, &transport, &req, &opts).await.unwrap();
    assert_eq!(r.body.len(), 3);
    let seen = h.await.unwrap();
    assert_eq!(seen[0].request, req);
}
