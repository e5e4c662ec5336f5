//! The fuzz harness for every parser that takes bytes from the network: the CUPS
//! `update-info` body (`UpdateInfo::parse`), the LNS messages (`lns::msg::parse`),
//! router ids (`Eui` from text and JSON) and the LoRaWAN PHYPayload
//! (`lrwn::PhyPayload::from_slice`, the parser the server's uplink path uses).
//!
//! The project builds on stable, and the coverage-guided fuzzers for Rust
//! (cargo-fuzz with libFuzzer, AFL via cargo-afl) need nightly's `-Zsanitizer` or
//! their own compiler wrapper, so this is a property-based generator that
//! `cargo test` runs on stable:
//! each parser gets a mix of well-formed input, well-formed input with
//! mutations (cut, byte replaced, bytes inserted), near-miss text from the parser's
//! own alphabet, and plain random bytes. Every input must return without a panic;
//! where a parser has an inverse, the round trip must hold.
//!
//! Generating a structured input costs far more than parsing it, so each generated
//! input is also fed to the parser in `VARIANTS` further mutated forms (cheap
//! byte-level cuts, replacements, insertions and duplications from a seeded
//! generator): a generated case is `1 + VARIANTS` parser inputs.
//!
//! `cargo test` runs a few thousand inputs per parser. The long run is by hand:
//! `FUZZ_INPUTS=10000000 cargo test --release --test fuzz_parsers -- --nocapture`
//! (`FUZZ_ROUND_TRIPS=N` sets the round-trip cases).

use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};

use stationkeeper::cups::request::UpdateInfo;
use stationkeeper::eui::Eui;
use stationkeeper::lns::msg::{self, Frame, Incoming};

/// Mutated forms each generated input is also parsed in.
const VARIANTS: u32 = 31;

fn env(key: &str, short: u32) -> u32 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(short)
}

/// Generated cases for `FUZZ_INPUTS` parser inputs (`short` by default).
fn cases(short: u32) -> u32 {
    (env("FUZZ_INPUTS", short) / (1 + VARIANTS)).max(1)
}

/// Round-trip cases: `FUZZ_ROUND_TRIPS`, or `short`.
fn round_trips(short: u32) -> u32 {
    env("FUZZ_ROUND_TRIPS", short)
}

/// Runs `check` on `n` cases from `strategy`, each `per_case` parser inputs;
/// fails with the (shrunk) case.
fn run<S: Strategy>(
    name: &str,
    n: u32,
    per_case: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    let t = Instant::now();
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{name}: {e}");
    }
    eprintln!(
        "fuzz {name}: {} inputs ({n} generated) in {:.1} s, no panic",
        u64::from(n) * u64::from(per_case),
        t.elapsed().as_secs_f64()
    );
}

/// A no-panic run: each case is a generated input and its `variants`.
fn fuzz<S: Strategy>(
    name: &str,
    n: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    run(name, n, 1 + VARIANTS, strategy, check)
}

/// A round-trip run: one input per case.
fn round_trip<S: Strategy>(
    name: &str,
    n: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    run(name, n, 1, strategy, check)
}

/// `base`, then `VARIANTS` byte-level mutations of it drawn from `seed`.
fn variants(base: Vec<u8>, seed: u64) -> impl Iterator<Item = Vec<u8>> {
    // xorshift64: cheap, and its seed comes from proptest, so a failure shrinks
    // and replays.
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const SPECIAL: &[u8] = b"\"\\{}[]:,\n-0\xff";
    let first = base.clone();
    std::iter::once(first).chain((0..VARIANTS).map(move |_| {
        let mut b = base.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() as usize) % (b.len() + 1);
            match next() % 5 {
                0 => b.truncate(at),
                1 if at < b.len() => b[at] = next() as u8,
                2 => b.insert(at, next() as u8),
                3 => {
                    let end = (at + (next() as usize) % 16).min(b.len());
                    let piece = b[at..end].to_vec();
                    b.splice(at..at, piece);
                }
                _ => b.insert(at, SPECIAL[(next() as usize) % SPECIAL.len()]),
            }
        }
        b
    }))
}

/// One change to well-formed bytes, as a broken or hostile client makes it.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Cut(usize),
    Replace(usize, u8),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::None),
        1 => any::<usize>().prop_map(Mutation::Cut),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match m {
        Mutation::None => {}
        Mutation::Cut(i) => bytes.truncate(at(*i, bytes.len())),
        Mutation::Replace(i, b) if !bytes.is_empty() => {
            let i = i % bytes.len();
            bytes[i] = *b;
        }
        Mutation::Replace(..) => {}
        Mutation::Insert(i, b) => {
            let i = at(*i, bytes.len());
            bytes.splice(i..i, b.iter().copied());
        }
    }
    bytes
}

fn dashed(v: u64) -> String {
    msg::eui_dashed(v)
}

/// Router id text: every accepted form, near misses, and anything at all.
fn router_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|v| Eui(v).to_id6()),
        any::<u64>().prop_map(|v| format!("{v:016X}")),
        any::<u64>().prop_map(dashed),
        any::<u64>().prop_map(|v| format!("router-{}", Eui(v).to_id6())),
        "(router-|muxs-|zz-|-|)[0-9a-fA-F:+ -]{0,24}",
        "[0-9a-f]{0,5}(:[0-9a-f]{0,5}){0,8}",
        "\\PC{0,40}",
        any::<String>(),
    ]
}

/// A JSON scalar of any type, including the awkward ones.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u32..=u32::MAX).prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
    ]
}

/// A JSON value: scalars, and arrays and objects of them, two levels deep.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with some of `keys`, each well-typed (`good`) or anything, and
/// maybe an extra key.
fn object(
    keys: &'static [&'static str],
    good: fn(&str) -> BoxedStrategy<Value>,
) -> impl Strategy<Value = Map<String, Value>> {
    let fields: Vec<_> = keys
        .iter()
        .map(|&k| {
            prop_oneof![
                6 => good(k).prop_map(Some),
                1 => value().prop_map(Some),
                1 => Just(None),
            ]
            .prop_map(move |v| (k, v))
        })
        .collect();
    (fields, prop::option::of(("[a-zA-Z]{1,8}", value()))).prop_map(|(fields, extra)| {
        let mut m = Map::new();
        for (k, v) in fields {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        }
        if let Some((k, v)) = extra {
            m.insert(k, v);
        }
        m
    })
}

const CUPS_KEYS: &[&str] = &[
    "router",
    "cupsUri",
    "tcUri",
    "cupsCredCrc",
    "tcCredCrc",
    "station",
    "model",
    "package",
    "keys",
];

fn cups_field(k: &str) -> BoxedStrategy<Value> {
    match k {
        "router" => router_text().prop_map(Value::from).boxed(),
        "cupsUri" | "tcUri" | "package" => prop::option::of("\\PC{0,40}")
            .prop_map(|s| s.map_or(Value::Null, Value::from))
            .boxed(),
        "cupsCredCrc" | "tcCredCrc" => any::<u32>().prop_map(Value::from).boxed(),
        "keys" => prop::collection::vec(any::<u32>(), 0..4)
            .prop_map(Value::from)
            .boxed(),
        _ => "\\PC{0,40}".prop_map(Value::from).boxed(),
    }
}

/// Bodies for `POST /update-info`: structured, mutated, or random bytes.
fn cups_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (object(CUPS_KEYS, cups_field), mutation())
            .prop_map(|(m, mu)| apply(Value::Object(m).to_string().into_bytes(), &mu)),
        1 => value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..400),
    ]
}

#[test]
fn cups_update_info_never_panics() {
    let input = (cups_body(), any::<u64>());
    fuzz(
        "cups UpdateInfo::parse",
        cases(64_000),
        input,
        |(body, seed)| {
            for body in variants(body, seed) {
                if let Ok(info) = UpdateInfo::parse(&body) {
                    // Whatever parses has a router id that prints and parses back.
                    prop_assert_eq!(info.router.to_id6().parse::<Eui>().ok(), Some(info.router));
                }
            }
            Ok(())
        },
    );
}

#[test]
fn cups_update_info_round_trips() {
    let fields = (
        any::<u64>(),
        prop::option::of("\\PC{0,40}"),
        prop::option::of("\\PC{0,40}"),
        any::<u32>(),
        any::<u32>(),
        "\\PC{0,40}",
        "\\PC{0,40}",
        prop::option::of("\\PC{0,40}"),
        prop::collection::vec(any::<u32>(), 0..4),
    );
    round_trip("cups round trip", round_trips(1000), fields, |f| {
        let body = json!({"router": Eui(f.0).to_id6(), "cupsUri": f.1, "tcUri": f.2,
            "cupsCredCrc": f.3, "tcCredCrc": f.4, "station": f.5, "model": f.6,
            "package": f.7, "keys": f.8});
        let info = UpdateInfo::parse(body.to_string().as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{body}: {e}")))?;
        prop_assert_eq!(
            (info.router, info.cups_uri, info.tc_uri, info.cups_cred_crc),
            (Eui(f.0), f.1, f.2, f.3)
        );
        prop_assert_eq!(
            (
                info.tc_cred_crc,
                info.station,
                info.model,
                info.package,
                info.keys
            ),
            (f.4, f.5, f.6, f.7, f.8)
        );
        Ok(())
    });
}

const LNS_KEYS: &[&str] = &[
    "msgtype",
    "MHdr",
    "DevAddr",
    "FCtrl",
    "FCnt",
    "FOpts",
    "FPort",
    "FRMPayload",
    "MIC",
    "JoinEui",
    "DevEui",
    "DevNonce",
    "DR",
    "Freq",
    "RefTime",
    "upinfo",
    "diid",
    "txtime",
    "xtimes",
    "station",
    "features",
];

fn lns_field(k: &str) -> BoxedStrategy<Value> {
    match k {
        "msgtype" => prop_oneof![
            8 => prop::sample::select(vec![
                "version", "updf", "jreq", "rejoin", "propdf", "dntxed", "timesync", "getxtime",
            ])
            .prop_map(Value::from),
            1 => "\\PC{0,16}".prop_map(Value::from),
        ]
        .boxed(),
        "FOpts" | "FRMPayload" => prop_oneof![
            prop::collection::vec(any::<u8>(), 0..32).prop_map(|b| Value::from(hex::encode(b))),
            "[0-9a-fA-Fx]{0,9}".prop_map(Value::from),
        ]
        .boxed(),
        "JoinEui" | "DevEui" => router_text().prop_map(Value::from).boxed(),
        "upinfo" => (any::<i64>(), any::<i64>(), -140i32..0, -20i32..15)
            .prop_map(|(rctx, xtime, rssi, snr)| {
                json!({"rctx": rctx, "xtime": xtime, "gpstime": 0, "fts": -1, "rssi": rssi, "snr": snr})
            })
            .boxed(),
        "xtimes" => prop::collection::vec(any::<i64>(), 0..3)
            .prop_map(Value::from)
            .boxed(),
        "station" | "features" => "\\PC{0,24}".prop_map(Value::from).boxed(),
        _ => prop_oneof![
            any::<u8>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1i32..=256).prop_map(Value::from),
        ]
        .boxed(),
    }
}

/// LNS text frames: structured messages (mutated or not) and random text.
fn lns_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (object(LNS_KEYS, lns_field), mutation()).prop_map(|(m, mu)| {
            String::from_utf8_lossy(&apply(Value::Object(m).to_string().into_bytes(), &mu))
                .into_owned()
        }),
        1 => value().prop_map(|v| v.to_string()),
        1 => "\\PC{0,200}",
    ]
}

#[test]
fn lns_messages_never_panic() {
    let input = (lns_text(), any::<u64>());
    fuzz("lns msg::parse", cases(64_000), input, |(text, seed)| {
        for bytes in variants(text.into_bytes(), seed) {
            // Websocket text frames are UTF-8; the parser takes `&str`.
            let text = String::from_utf8_lossy(&bytes);
            match msg::parse(&text) {
                // An error's text is safe to log as it is: one line, capped.
                Err(e) => {
                    let e = e.to_string();
                    prop_assert!(!e.contains('\n') && !e.contains('\r'), "{}", e);
                    prop_assert!(e.len() < 1000, "{} bytes", e.len());
                }
                Ok(Incoming::Unknown(t)) => {
                    prop_assert!(text.contains("msgtype") || t.is_empty())
                }
                Ok(_) => {}
            }
        }
        Ok(())
    });
}

#[test]
fn lns_uplinks_round_trip() {
    let fields = (
        any::<u8>(),
        any::<i32>(),
        any::<u8>(),
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..15),
        -1i32..=255,
        prop::collection::vec(any::<u8>(), 0..64),
        any::<i32>(),
        (any::<u8>(), any::<u32>()),
    );
    round_trip("lns updf round trip", round_trips(2000), fields, |f| {
        let (mhdr, dev_addr, fctrl, fcnt, fopts, fport, payload, mic, (dr, freq)) = f;
        let text = json!({"msgtype": "updf", "MHdr": mhdr, "DevAddr": dev_addr, "FCtrl": fctrl,
            "FCnt": fcnt, "FOpts": hex::encode(&fopts), "FPort": fport,
            "FRMPayload": hex::encode(&payload), "MIC": mic, "RefTime": 0.0, "DR": dr,
            "Freq": freq, "upinfo": {"rctx": 0, "xtime": 1, "rssi": -50, "snr": 9}})
        .to_string();
        let Ok(Incoming::Uplink(u)) = msg::parse(&text) else {
            return Err(TestCaseError::fail(format!(
                "{text} did not parse as an uplink"
            )));
        };
        let want = Frame::Data {
            mhdr,
            dev_addr: dev_addr as u32,
            fctrl,
            fcnt,
            fopts,
            fport: u8::try_from(fport).ok(),
            payload,
            mic: mic as u32,
        };
        prop_assert_eq!(&u.frame, &want);
        prop_assert_eq!((u.radio.dr, u.radio.freq), (dr, freq));
        Ok(())
    });
}

#[test]
fn router_ids_never_panic() {
    let input = (
        prop_oneof![
            6 => router_text().prop_map(Value::from),
            1 => scalar(),
        ],
        any::<u64>(),
    );
    fuzz("eui parse", cases(64_000), input, |(v, seed)| {
        let from_json = Eui::from_json(&v);
        let Value::String(s) = v else {
            prop_assert!(from_json.is_err() || v.is_u64());
            return Ok(());
        };
        for bytes in variants(s.into_bytes(), seed) {
            let s = String::from_utf8_lossy(&bytes).into_owned();
            let parsed = s.parse::<Eui>();
            prop_assert_eq!(&parsed, &Eui::from_json(&Value::String(s.clone())));
            match parsed {
                // What parses is made of the listed forms' characters only.
                Ok(_) => prop_assert!(s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'-')),
                // An error quotes the input escaped and capped.
                Err(e) => {
                    let e = e.to_string();
                    prop_assert!(!e.contains('\n') && e.len() < 400, "{}", e);
                }
            }
        }
        Ok(())
    });
}

#[test]
fn router_ids_round_trip_in_every_form() {
    round_trip("eui round trip", round_trips(4000), any::<u64>(), |v| {
        let eui = Eui(v);
        let b = v.to_be_bytes();
        let colons = b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>();
        for text in [
            eui.to_id6(),
            eui.to_id6().to_uppercase(),
            eui.to_string(),
            format!("{v:X}"),
            dashed(v),
            colons.join(":"),
            format!("router-{}", eui.to_id6()),
            format!("muxs-{}", eui.to_id6()),
        ] {
            prop_assert_eq!(text.parse::<Eui>(), Ok(eui), "{}", text);
        }
        prop_assert_eq!(Eui::from_json(&json!(v)), Ok(eui));
        Ok(())
    });
}

/// PHYPayloads: the frame types station forwards, built from fields, mutated,
/// and random bytes.
fn phy_bytes() -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        prop::sample::select(vec![0x00u8, 0x20, 0x40, 0x60, 0x80, 0xa0, 0xc0, 0xe0]),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(mhdr, rest)| {
            let mut b = vec![mhdr];
            b.extend(rest);
            b
        });
    prop_oneof![
        4 => (frame, mutation()).prop_map(|(b, m)| apply(b, &m)),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ]
}

#[test]
fn phy_payloads_never_panic() {
    let input = (phy_bytes(), any::<u64>());
    fuzz(
        "lrwn PhyPayload::from_slice",
        cases(64_000),
        input,
        |(b, seed)| {
            for b in variants(b, seed) {
                if let Ok(p) = lrwn::PhyPayload::from_slice(&b) {
                    // What parses encodes again, and that encoding parses to the same.
                    if let Ok(again) = p.to_vec() {
                        let p2 = lrwn::PhyPayload::from_slice(&again).map_err(|e| {
                            TestCaseError::fail(format!("re-encoded {again:02x?}: {e}"))
                        })?;
                        prop_assert_eq!(p, p2);
                    }
                }
            }
            Ok(())
        },
    );
}
