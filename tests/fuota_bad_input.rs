//! Bad input to the FUOTA and multicast-group API: every refusal carries its
//! status and a message naming the problem or its fix. Images over the cap,
//! fragments too big for the data rate or too many of them, fields out of range,
//! malformed keys and addresses, sessions a device cannot be told, starts that
//! cannot work, and changes to tasks and groups that are in use. Each test ends
//! with the corrected input being accepted, so the refusals are about the input.

mod common;

use std::time::{Duration, Instant};

use common::fuota::{in_secs, MC_ADDR, MC_APP_S_KEY, MC_KEY, MC_NWK_S_KEY};
use common::server::TestServer;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

/// Asserts that `r` failed with `status` (e.g. 400) and a message containing
/// `want`; returns the message.
#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, String>, status: u16, want: &str) -> String {
    let e = match r {
        Ok(v) => panic!("expected {status} ({want}), got success: {v:?}"),
        Err(e) => e,
    };
    let code = StatusCode::from_u16(status).unwrap();
    assert!(
        e.starts_with(&format!("{code}: ")),
        "expected {code} ({want}), got: {e}"
    );
    assert!(e.contains(want), "message should say {want:?}: {e}");
    e
}

/// A deterministic image of `len` bytes (distinct per `seed`).
fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn blob(srv: &TestServer, bytes: &[u8]) -> String {
    srv.upload(bytes).await["Id"].as_str().unwrap().to_string()
}

/// A valid CreateFuotaTask body on `blob`.
fn task_body(blob: &str) -> Value {
    json!({"Name": "fw", "LoRaWAN": {"RfRegion": "EU868"},
        "FirmwareUpdateImage": blob, "RedundancyPercent": 30,
        "FragmentSizeBytes": 16, "FragmentIntervalMS": 0, "Descriptor": "AQIDBA=="})
}

async fn post_task(srv: &TestServer, body: Value) -> Result<String, String> {
    srv.call(Method::POST, "/fuota-tasks", Some(body))
        .await
        .map(|v| v["Id"].as_str().unwrap().to_string())
}

async fn patch_task(srv: &TestServer, task: &str, body: Value) -> Result<Value, String> {
    srv.call(Method::PATCH, &format!("/fuota-tasks/{task}"), Some(body))
        .await
}

async fn status(srv: &TestServer, task: &str) -> String {
    srv.get(&format!("/fuota-tasks/{task}")).await["Status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A valid CreateMulticastGroup LoRaWAN object with the spec's McKey.
fn group_lorawan() -> Value {
    json!({"RfRegion": "EU868", "DlClass": "ClassC",
        "McAddr": format!("{MC_ADDR:08x}"), "McKey": MC_KEY})
}

/// POST /multicast-groups with `lorawan`: the status and the answer.
async fn post_group(srv: &TestServer, lorawan: Value) -> (StatusCode, Value) {
    let body = json!({"Name": "fleet", "LoRaWAN": lorawan});
    let (s, b) = srv
        .api()
        .send(
            Method::POST,
            "/multicast-groups",
            Some(body.to_string().into_bytes()),
        )
        .await
        .unwrap();
    (s, serde_json::from_slice(&b).unwrap())
}

/// POST /multicast-groups as `srv.call` reports it.
async fn create_group_with(srv: &TestServer, lorawan: Value) -> Result<String, String> {
    srv.call(
        Method::POST,
        "/multicast-groups",
        Some(json!({"Name": "fleet", "LoRaWAN": lorawan})),
    )
    .await
    .map(|v| v["Id"].as_str().unwrap().to_string())
}

async fn create_gateway_in(srv: &TestServer, eui: u64, region: &str) -> String {
    srv.call(
        Method::POST,
        "/wireless-gateways",
        Some(json!({"LoRaWAN": {"GatewayEui": format!("{eui:016x}"), "RfRegion": region}})),
    )
    .await
    .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An EU868 gateway (not connected), a class C group with a session (`session` merged into the
/// defaults: DR5, 869.525 MHz, from now + 2 s, 3600 s), and a task on a 200-byte
/// image associated with it: (group, task).
async fn ready_task(srv: &TestServer, session: Value, seed: u8) -> (String, String) {
    srv.create_gateway(0xfeed_0000 + u64::from(seed)).await;
    let group = srv.create_group("ClassC").await;
    srv.set_session(&group, session).await.unwrap();
    let task = srv
        .create_fuota_task(&image(200, seed), json!({}))
        .await
        .unwrap();
    srv.associate(&task, &group).await.unwrap();
    (group, task)
}

/// Polls the task until `done` holds for its GET answer (or its 404), or panics.
async fn wait_task(
    srv: &TestServer,
    task: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&Result<Value, String>) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let r = srv
            .call(Method::GET, &format!("/fuota-tasks/{task}"), None)
            .await;
        if done(&r) {
            return;
        }
        assert!(Instant::now() < deadline, "task never {what}: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn choose_gateways(srv: &TestServer, group: &str, ids: Value) -> Result<Value, String> {
    srv.call(
        Method::PUT,
        &format!("/multicast-groups/{group}/gateways"),
        Some(json!({"WirelessGatewayIds": ids})),
    )
    .await
}

#[tokio::test]
async fn an_image_over_the_configured_cap_is_refused() {
    let srv = TestServer::start_with(|c| c.fuota.max_image_bytes = 1000).await;
    let e = refused(
        srv.create_fuota_task(&image(1001, 1), json!({})).await,
        400,
        "[fuota] max_image_bytes",
    );
    assert!(
        e.contains("1001 bytes") && e.contains("at most 1000"),
        "{e}"
    );

    // Exactly the cap is fine; PATCHing the task onto the big image is not.
    let task = srv
        .create_fuota_task(&image(1000, 1), json!({}))
        .await
        .unwrap();
    let big = blob(&srv, &image(1001, 2)).await;
    refused(
        patch_task(&srv, &task, json!({"FirmwareUpdateImage": big})).await,
        400,
        "[fuota] max_image_bytes",
    );
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_ne!(
        t["FirmwareUpdateImage"],
        json!(big),
        "the PATCH changed nothing"
    );
}

#[tokio::test]
async fn task_fields_out_of_range_are_refused_at_create() {
    let srv = TestServer::start().await;
    let img = blob(&srv, &image(1000, 1)).await;
    let empty = blob(&srv, b"").await;
    let with = |k: &str, v: Value| {
        let mut b = task_body(&img);
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = task_body(&img);
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases = [
        (
            with("FragmentSizeBytes", json!(240)),
            "FragmentSizeBytes 240 is more than any data rate carries; at most 239",
        ),
        (
            with("RedundancyPercent", json!(101)),
            "RedundancyPercent 101 is out of range 0..=100",
        ),
        // base64 of 3 bytes.
        (
            with("Descriptor", json!("AQID")),
            "Descriptor is 3 bytes; TS004 carries exactly 4",
        ),
        (
            with("Descriptor", json!("not base64!")),
            "Descriptor must be base64 of 4 bytes",
        ),
        (
            with("FragmentIntervalMS", json!(3_600_001)),
            "FragmentIntervalMS 3600001 is out of range 0..=3600000",
        ),
        (with("Colour", json!("red")), "unknown field `Colour`"),
        (
            with("LoRaWAN", json!({"RfRegion": "EU868", "DlClass": "ClassC"})),
            "unknown field `DlClass`",
        ),
        (
            with("LoRaWAN", json!({"RfRegion": "EU999"})),
            "LoRaWAN.RfRegion \"EU999\" is not one of",
        ),
        (without("LoRaWAN"), "LoRaWAN.RfRegion is required"),
        (
            with("LoRaWAN", json!({"RfRegion": "AU915"})),
            "LoRaWAN.RfRegion AU915: FUOTA needs the region's downlink payload limits",
        ),
        (
            with(
                "FirmwareUpdateImage",
                json!(format!("sha256:{}", "0".repeat(64))),
            ),
            "names no uploaded blob; upload the file first (POST /blobs)",
        ),
        (
            with("FirmwareUpdateImage", json!("firmware.bin")),
            "is not a blob Id",
        ),
        (
            without("FirmwareUpdateImage"),
            "FirmwareUpdateImage is required: the Id of an uploaded blob",
        ),
        (
            with("FirmwareUpdateImage", json!(empty.clone())),
            "is empty (0 bytes)",
        ),
        (with("RedundancyPercent", json!(-1)), "invalid request body"),
    ];
    for (body, want) in cases {
        refused(post_task(&srv, body).await, 400, want);
    }
    // An empty image is refused even when the fragment size is left to the DR.
    let mut auto = task_body(&empty);
    auto.as_object_mut().unwrap().remove("FragmentSizeBytes");
    refused(post_task(&srv, auto).await, 400, "is empty (0 bytes)");

    let list = srv.get("/fuota-tasks").await;
    assert_eq!(list["FuotaTaskList"], json!([]), "nothing was created");

    // The limits themselves, and AWS's fields without meaning here, are accepted.
    let mut ok = task_body(&img);
    ok["FragmentSizeBytes"] = json!(239);
    ok["RedundancyPercent"] = json!(100);
    ok["FragmentIntervalMS"] = json!(3_600_000);
    ok["FirmwareUpdateRole"] = json!("arn:aws:iam::1:role/x");
    ok["ClientRequestToken"] = json!("t1");
    ok["Tags"] = json!([]);
    let task = post_task(&srv, ok).await.unwrap();
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(t["Status"], "Pending");
    assert_eq!(t["Descriptor"], "AQIDBA==");
}

#[tokio::test]
async fn too_many_fragments_are_refused_at_create_and_patch() {
    let srv = TestServer::start().await;
    // 600 000 bytes in 16-byte fragments: 37 500 uncoded fragments alone.
    let img = blob(&srv, &image(600_000, 3)).await;
    let e = refused(
        post_task(&srv, task_body(&img)).await,
        400,
        "exceed the 14-bit N limit of 16383",
    );
    assert!(e.contains("use bigger fragments or less redundancy"), "{e}");

    let mut ok = task_body(&img);
    ok["FragmentSizeBytes"] = json!(239);
    let task = post_task(&srv, ok).await.unwrap();
    refused(
        patch_task(&srv, &task, json!({"FragmentSizeBytes": 16})).await,
        400,
        "exceed the 14-bit N limit of 16383",
    );
    // 12 500 uncoded fragments fit; doubling them with 100 % redundancy does not.
    refused(
        patch_task(
            &srv,
            &task,
            json!({"FragmentSizeBytes": 48, "RedundancyPercent": 100}),
        )
        .await,
        400,
        "25000 fragments (uncoded + coded) exceed",
    );
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(
        t["FragmentSizeBytes"], 239,
        "the refused PATCHes changed nothing"
    );
    assert_eq!(t["RedundancyPercent"], 30);
    patch_task(&srv, &task, json!({"FragmentSizeBytes": 48}))
        .await
        .unwrap();
}

#[tokio::test]
async fn fragments_too_big_for_the_sessions_dr_are_refused_at_start() {
    let srv = TestServer::start().await;
    srv.create_gateway(0xd0).await;
    let group = srv.create_group("ClassC").await;
    srv.set_session(&group, json!({"DlDr": 0})).await.unwrap();
    // 100 bytes is under the 239 any DR allows, so creating is fine...
    let task = srv
        .create_fuota_task(&image(1000, 4), json!({"FragmentSizeBytes": 100}))
        .await
        .unwrap();
    srv.associate(&task, &group).await.unwrap();
    // ...but DR0 carries 51 bytes: the plan says so, and so does the start.
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(t["Plan"], Value::Null);
    let problem = t["PlanProblem"].as_str().unwrap();
    assert!(problem.contains("at most 48"), "{problem}");
    let e = refused(srv.start_fuota(&task, json!({})).await, 400, "at most 48");
    assert!(
        e.contains("FragmentSizeBytes 100 does not fit EU868 DR0"),
        "{e}"
    );
    assert_eq!(status(&srv, &task).await, "Pending");

    // 0 means "the largest the session's DR carries".
    patch_task(&srv, &task, json!({"FragmentSizeBytes": 0}))
        .await
        .unwrap();
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(t["Plan"]["FragmentSizeBytes"], 48, "{t}");
    srv.start_fuota(&task, json!({})).await.unwrap();
    assert_eq!(status(&srv, &task).await, "FuotaSession_Waiting");
}

#[tokio::test]
async fn multicast_groups_with_bad_fields_are_refused() {
    let srv = TestServer::start().await;
    let with = |k: &str, v: Value| {
        let mut l = group_lorawan();
        l[k] = v;
        l
    };
    let without = |k: &str| {
        let mut l = group_lorawan();
        l.as_object_mut().unwrap().remove(k);
        l
    };
    let cases = [
        (
            with("McKey", json!("00".repeat(15))),
            "LoRaWAN.McKey is 15 bytes; it must be 16 (32 hex digits)",
        ),
        (
            with("McKey", json!("zz".repeat(16))),
            "LoRaWAN.McKey must be 32 hex digits",
        ),
        (
            with("McAddr", json!("0102030")),
            "LoRaWAN.McAddr \"0102030\" must be 8 hex digits",
        ),
        (
            with("McAddr", json!("0102030g")),
            "LoRaWAN.McAddr \"0102030g\" must be 8 hex digits",
        ),
        (
            with("McAddr", json!("+1020304")),
            "LoRaWAN.McAddr \"+1020304\" must be 8 hex digits",
        ),
        (
            with("McAppSKey", json!(MC_APP_S_KEY)),
            "give either LoRaWAN.McKey (session keys are derived from it) or both McAppSKey and McNwkSKey, not both",
        ),
        (
            {
                let mut l = without("McKey");
                l["McAppSKey"] = json!(MC_APP_S_KEY);
                l
            },
            "McAppSKey and McNwkSKey go together",
        ),
        (
            {
                let mut l = without("McKey");
                l["McAppSKey"] = json!(MC_APP_S_KEY);
                l["McNwkSKey"] = json!("00".repeat(15));
                l
            },
            "LoRaWAN.McNwkSKey is 15 bytes",
        ),
        (
            with("DlClass", json!("ClassA")),
            "LoRaWAN.DlClass \"ClassA\" is not ClassB or ClassC",
        ),
        (
            with("RfRegion", json!("EU869")),
            "LoRaWAN.RfRegion \"EU869\" is not a region this server runs",
        ),
        (
            with("RfRegion", json!("CN470")),
            "LoRaWAN.RfRegion \"CN470\" is not a region this server runs",
        ),
        // No McAddr is no error: AWS's body has none, and one is generated
        // (tests/aws.rs, aws_paths_and_shapes).
        (with("McKeys", json!(MC_KEY)), "unknown field `McKeys`"),
    ];
    for (lorawan, want) in cases {
        refused(create_group_with(&srv, lorawan).await, 400, want);
    }
    let list = srv.get("/multicast-groups").await;
    assert_eq!(list["MulticastGroupList"], json!([]), "nothing was created");
    create_group_with(&srv, group_lorawan()).await.unwrap();
}

#[tokio::test]
async fn a_generated_mc_key_is_shown_once_and_keys_never_again() {
    let srv = TestServer::start().await;
    let mut generated = group_lorawan();
    generated.as_object_mut().unwrap().remove("McKey");
    let (s, v) = post_group(&srv, generated).await;
    assert_eq!(s, 201, "{v}");
    let mc_key = v["LoRaWAN"]["McKey"].as_str().unwrap().to_string();
    assert_eq!(mc_key.len(), 32, "{mc_key}");
    assert!(
        mc_key
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{mc_key}"
    );
    let g1 = v["Id"].as_str().unwrap().to_string();

    // A key the operator gave is not echoed.
    let (s, v) = post_group(&srv, group_lorawan()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v.get("LoRaWAN"), None, "{v}");
    let g2 = v["Id"].as_str().unwrap().to_string();
    let mut explicit = group_lorawan();
    explicit.as_object_mut().unwrap().remove("McKey");
    explicit["McAppSKey"] = json!(MC_APP_S_KEY);
    explicit["McNwkSKey"] = json!(MC_NWK_S_KEY);
    let (s, v) = post_group(&srv, explicit).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v.get("LoRaWAN"), None, "{v}");
    let g3 = v["Id"].as_str().unwrap().to_string();

    let mut shown = vec![srv.get("/multicast-groups").await];
    for g in [&g1, &g2, &g3] {
        srv.set_session(g, json!({})).await.unwrap();
        shown.push(srv.get(&format!("/multicast-groups/{g}")).await);
        shown.push(srv.get(&format!("/multicast-groups/{g}/gateways")).await);
    }
    for v in shown {
        let text = v.to_string().to_ascii_lowercase();
        for secret in ["mckey", "mcappskey", "mcnwkskey"] {
            assert!(!text.contains(secret), "{secret} shown: {v}");
        }
        for k in [mc_key.as_str(), MC_KEY, MC_APP_S_KEY, MC_NWK_S_KEY] {
            assert!(!text.contains(k), "a key is shown: {v}");
        }
    }
    let g = srv.get(&format!("/multicast-groups/{g2}")).await;
    assert_eq!(g["LoRaWAN"]["McAddr"], format!("{MC_ADDR:08x}"));
}

#[tokio::test]
async fn sessions_a_device_cannot_be_told_are_refused() {
    let srv = TestServer::start().await;
    let c = srv.create_group("ClassC").await;
    let cases = [
        (
            json!({"DlDr": 15}),
            "LoRaWAN.DlDr 15 is not a data rate of EU868",
        ),
        (
            json!({"DlDr": 8}),
            "LoRaWAN.DlDr 8 is not a data rate of EU868",
        ),
        (
            json!({"DlFreq": 915_000_000}),
            "LoRaWAN.DlFreq 915000000 Hz is outside EU868's band",
        ),
        (json!({"DlFreq": 869}), "it is in Hz, e.g. 869525000"),
        (
            json!({"SessionStartTime": in_secs(-3600)}),
            "LoRaWAN.SessionStartTime is in the past",
        ),
        (
            json!({"SessionStartTime": in_secs(31 * 86_400)}),
            "LoRaWAN.SessionStartTime is more than 30 days ahead",
        ),
        (
            json!({"SessionStartTime": "tomorrow"}),
            "LoRaWAN.SessionStartTime \"tomorrow\" is not an RFC 3339 time",
        ),
        (
            json!({"SessionTimeout": 59}),
            "LoRaWAN.SessionTimeout 59 s is out of range 60..=172800",
        ),
        (
            json!({"SessionTimeout": 172_801}),
            "LoRaWAN.SessionTimeout 172801 s is out of range 60..=172800",
        ),
        (
            json!({"SessionTimeout": 32_769}),
            "longer than a class C device can be told (2^15 = 32768 s); use at most 32768",
        ),
        (
            json!({"PingSlotPeriod": 128}),
            "LoRaWAN.PingSlotPeriod is for ClassB groups only",
        ),
        (json!({"DlDatarate": 5}), "unknown field `DlDatarate`"),
    ];
    for (extra, want) in cases {
        refused(srv.set_session(&c, extra).await, 400, want);
    }
    assert_eq!(
        srv.get(&format!("/multicast-groups/{c}")).await["Session"],
        Value::Null,
        "no refused session was stored"
    );

    let b = srv.create_group("ClassB").await;
    refused(
        srv.set_session(&b, json!({})).await,
        400,
        "ClassB groups need LoRaWAN.PingSlotPeriod",
    );
    refused(
        srv.set_session(&b, json!({"PingSlotPeriod": 100})).await,
        400,
        "LoRaWAN.PingSlotPeriod 100 must be one of 32, 64, 128, 256, 512, 1024, 2048, 4096",
    );
    refused(
        srv.call(
            Method::PUT,
            "/multicast-groups/no-such-group/session",
            Some(json!({"LoRaWAN": {"DlDr": 5, "DlFreq": 869_525_000,
                "SessionStartTime": in_secs(60), "SessionTimeout": 600}})),
        )
        .await,
        404,
        "multicast group no-such-group not found",
    );

    // The limits themselves are accepted.
    srv.set_session(&c, json!({"SessionTimeout": 32_768}))
        .await
        .unwrap();
    let s = &srv.get(&format!("/multicast-groups/{c}")).await["Session"];
    assert_eq!(s["TimeOut"], 15, "{s}");
    srv.set_session(
        &b,
        json!({"PingSlotPeriod": 128, "SessionTimeout": 172_800}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_start_needs_a_group_a_session_and_gateways() {
    let srv = TestServer::start().await;
    let task = srv
        .create_fuota_task(&image(200, 5), json!({}))
        .await
        .unwrap();
    refused(
        srv.start_fuota(&task, json!({})).await,
        400,
        &format!(
            "FUOTA task {task} has no multicast group; PUT /fuota-tasks/{task}/multicast-group"
        ),
    );

    let group = srv.create_group("ClassC").await;
    srv.associate(&task, &group).await.unwrap();
    refused(
        srv.start_fuota(&task, json!({})).await,
        400,
        &format!(
            "multicast group {group} has no session yet; PUT /multicast-groups/{group}/session"
        ),
    );

    srv.set_session(&group, json!({"SessionStartTime": in_secs(600)}))
        .await
        .unwrap();
    refused(
        srv.start_fuota(&task, json!({})).await,
        400,
        &format!("multicast group {group} has no gateways: register gateways in EU868"),
    );
    // A gateway of another region does not carry an EU868 group, and cannot be chosen.
    let us = create_gateway_in(&srv, 0x915, "US915").await;
    refused(
        srv.start_fuota(&task, json!({})).await,
        400,
        "has no gateways",
    );
    refused(
        choose_gateways(&srv, &group, json!([us])).await,
        400,
        &format!("wireless gateway {us} is in region US915, the group in EU868"),
    );
    refused(
        choose_gateways(&srv, &group, json!(["no-such-gateway"])).await,
        400,
        "wireless gateway no-such-gateway does not exist",
    );
    assert_eq!(status(&srv, &task).await, "Pending");

    let eu = srv.create_gateway(0x868).await;
    choose_gateways(&srv, &group, json!([eu])).await.unwrap();
    srv.start_fuota(&task, json!({})).await.unwrap();
    assert_eq!(status(&srv, &task).await, "FuotaSession_Waiting");
}

#[tokio::test]
async fn start_times_that_cannot_work_are_refused() {
    let srv = TestServer::start().await;
    let (_, task) = ready_task(&srv, json!({"SessionStartTime": in_secs(600)}), 6).await;
    let at = |t: String| json!({"StartTime": t});
    let cases = [
        (
            at(in_secs(-60)),
            "LoRaWAN.StartTime is in the past; give a time in the future, or leave it out",
        ),
        (
            at(in_secs(60)),
            "LoRaWAN.StartTime is before the multicast session starts",
        ),
        (
            at(in_secs(31 * 86_400)),
            "LoRaWAN.StartTime is more than 30 days ahead",
        ),
        (
            at("soon".into()),
            "LoRaWAN.StartTime \"soon\" is not an RFC 3339 time",
        ),
        // After the 3600 s (TimeOut 12: 4096 s) session has ended.
        (at(in_secs(600 + 5000)), "the session cannot fit"),
        (json!({"StartAt": in_secs(700)}), "unknown field `StartAt`"),
    ];
    for (start, want) in cases {
        refused(srv.start_fuota(&task, start).await, 400, want);
    }
    assert_eq!(status(&srv, &task).await, "Pending");
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(t["LoRaWAN"]["StartTime"], Value::Null, "{t}");

    srv.start_fuota(&task, at(in_secs(700))).await.unwrap();
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(t["Status"], "FuotaSession_Waiting");
    assert!(t["LoRaWAN"]["StartTime"].is_string(), "{t}");
}

#[tokio::test]
async fn a_session_too_short_for_the_plan_is_refused() {
    let srv = TestServer::start().await;
    srv.create_gateway(0xc0).await;
    let group = srv.create_group("ClassC").await;
    // 60 s (TimeOut 6: 64 s) on 869.525 MHz, where station allows 10 % duty cycle.
    srv.set_session(&group, json!({"SessionTimeout": 60}))
        .await
        .unwrap();
    // 4000 bytes in 16-byte fragments at 30 %: 325 frames of ~72 ms, ~0.72 s apart.
    let task = srv
        .create_fuota_task(&image(4000, 7), json!({}))
        .await
        .unwrap();
    srv.associate(&task, &group).await.unwrap();
    let plan = &srv.get(&format!("/fuota-tasks/{task}")).await["Plan"];
    assert_eq!(plan["TotalFragments"], 325, "{plan}");
    assert_eq!(plan["DutyCyclePercent"], 10.0, "{plan}");
    assert_eq!(plan["FitsSession"], false, "{plan}");
    let e = refused(
        srv.start_fuota(&task, json!({})).await,
        400,
        "the session cannot fit",
    );
    assert!(
        e.contains("raise the group's SessionTimeout to at least"),
        "{e}"
    );
    assert_eq!(status(&srv, &task).await, "Pending");

    srv.set_session(&group, json!({"SessionTimeout": 600}))
        .await
        .unwrap();
    srv.start_fuota(&task, json!({})).await.unwrap();
}

#[tokio::test]
async fn a_group_of_another_region_cannot_carry_the_task() {
    let srv = TestServer::start().await;
    let mut l = group_lorawan();
    l["RfRegion"] = json!("US915");
    let us_group = create_group_with(&srv, l).await.unwrap();
    let eu_group = srv.create_group("ClassC").await;
    let task = srv
        .create_fuota_task(&image(200, 8), json!({}))
        .await
        .unwrap();
    refused(
        srv.associate(&task, &us_group).await,
        400,
        &format!("multicast group {us_group} is in US915, the task in EU868; use a group of the task's region"),
    );
    refused(
        srv.associate(&task, "no-such-group").await,
        404,
        "multicast group no-such-group not found",
    );
    refused(
        srv.call(
            Method::PUT,
            &format!("/fuota-tasks/{task}/multicast-group"),
            Some(json!({"MulticastGroup": eu_group})),
        )
        .await,
        400,
        "unknown field `MulticastGroup`",
    );
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(t["MulticastGroupId"], Value::Null, "{t}");

    srv.associate(&task, &eu_group).await.unwrap();
    // Moving the associated task to another region is refused the same way.
    refused(
        patch_task(&srv, &task, json!({"LoRaWAN": {"RfRegion": "US915"}})).await,
        400,
        "use a group of the task's region",
    );
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(t["LoRaWAN"]["RfRegion"], "EU868");
    assert_eq!(t["MulticastGroupId"], json!(eu_group));
}

#[tokio::test]
async fn a_busy_group_and_a_started_task_refuse_changes() {
    let srv = TestServer::start().await;
    // The session starts in an hour, so the started task waits all through the test.
    let (group, a) = ready_task(&srv, json!({"SessionStartTime": in_secs(3600)}), 9).await;
    let b = srv
        .create_fuota_task(&image(200, 10), json!({}))
        .await
        .unwrap();
    srv.associate(&b, &group).await.unwrap();
    // A group is in use as soon as a task refers to it.
    refused(
        srv.call(Method::DELETE, &format!("/multicast-groups/{group}"), None)
            .await,
        409,
        "delete that task first",
    );

    srv.start_fuota(&a, json!({})).await.unwrap();
    assert_eq!(status(&srv, &a).await, "FuotaSession_Waiting");
    refused(
        srv.start_fuota(&a, json!({})).await,
        409,
        "FUOTA task is FuotaSession_Waiting; it has already been started",
    );
    refused(
        patch_task(&srv, &a, json!({"RedundancyPercent": 20})).await,
        409,
        &format!("FUOTA task {a} is FuotaSession_Waiting; only Pending tasks can be changed"),
    );
    refused(
        srv.associate(&a, &group).await,
        409,
        "only Pending tasks can be changed",
    );
    refused(
        srv.start_fuota(&b, json!({})).await,
        409,
        &format!(
            "multicast group {group} is already carrying FUOTA task {a} (FuotaSession_Waiting)"
        ),
    );
    refused(
        srv.set_session(&group, json!({})).await,
        409,
        "its session cannot change until that task is done or deleted",
    );
    refused(
        srv.call(Method::DELETE, &format!("/multicast-groups/{group}"), None)
            .await,
        409,
        "delete that task first",
    );
    assert_eq!(status(&srv, &b).await, "Pending");
    let t = srv.get(&format!("/fuota-tasks/{a}")).await;
    assert_eq!(t["RedundancyPercent"], 30);

    // Once the first task is gone, the second one may use the group.
    srv.call(Method::DELETE, &format!("/fuota-tasks/{a}"), None)
        .await
        .unwrap();
    wait_task(&srv, &a, Duration::from_secs(10), "removed", |r| {
        r.as_ref().is_err_and(|e| e.starts_with("404"))
    })
    .await;
    srv.start_fuota(&b, json!({})).await.unwrap();
}

#[tokio::test]
async fn deleting_a_running_task_stops_it_and_frees_its_group() {
    let srv = TestServer::start().await;
    let (group, task) = ready_task(&srv, json!({}), 11).await;
    srv.start_fuota(&task, json!({})).await.unwrap();
    // The session starts 2 s after it was set; no gateway is connected, so the
    // task stays in its session, waiting for one.
    wait_task(
        &srv,
        &task,
        Duration::from_secs(10),
        "In_FuotaSession",
        |r| r.as_ref().is_ok_and(|v| v["Status"] == "In_FuotaSession"),
    )
    .await;

    let (s, body) = srv
        .api()
        .send(Method::DELETE, &format!("/fuota-tasks/{task}"), None)
        .await
        .unwrap();
    assert_eq!(s, 204, "{}", String::from_utf8_lossy(&body));
    match srv
        .call(Method::GET, &format!("/fuota-tasks/{task}"), None)
        .await
    {
        Ok(v) => assert_eq!(v["Status"], "Delete_Waiting", "{v}"),
        Err(e) => assert!(e.starts_with("404"), "{e}"),
    }
    wait_task(&srv, &task, Duration::from_secs(5), "removed", |r| {
        r.as_ref().is_err_and(|e| e.starts_with("404"))
    })
    .await;
    refused(
        srv.call(Method::DELETE, &format!("/fuota-tasks/{task}"), None)
            .await,
        404,
        &format!("FUOTA task {task} not found"),
    );
    // Nothing refers to the group any more.
    srv.call(Method::DELETE, &format!("/multicast-groups/{group}"), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_start_with_no_body_reads_as_an_empty_one() {
    let srv = TestServer::start().await;
    let task = srv
        .create_fuota_task(&image(100, 9), json!({}))
        .await
        .unwrap();
    // AWS's StartFuotaTask body is optional: no body is `{}`, so the refusal is
    // about what is missing, not about the JSON.
    let (status, body) = srv
        .api()
        .send(Method::PUT, &format!("/fuota-tasks/{task}"), None)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("has no multicast group"), "{text}");
}

#[tokio::test]
async fn chosen_gateways_stay_chosen_when_deleted() {
    let srv = TestServer::start().await;
    let first = srv.create_gateway(0xc1).await;
    let second = srv.create_gateway(0xc2).await;
    let group = srv.create_group("ClassC").await;
    let path = format!("/multicast-groups/{group}/gateways");
    // Chosen by EUI, as gateways are named anywhere in the API.
    srv.call(
        Method::PUT,
        &path,
        Some(json!({"WirelessGatewayIds": ["00000000000000c1"]})),
    )
    .await
    .unwrap();
    let g = srv.get(&path).await;
    assert_eq!(g["Selection"], "Explicit", "{g}");
    assert_eq!(g["WirelessGateways"][0]["Id"], first.as_str());
    srv.call(Method::DELETE, &format!("/wireless-gateways/{first}"), None)
        .await
        .unwrap();
    // The choice stays: the group does not fall back to every gateway of EU868.
    let g = srv.get(&path).await;
    assert_eq!(g["Selection"], "Explicit", "{g}");
    assert_eq!(g["WirelessGateways"], json!([]));
    srv.set_session(&group, json!({"SessionStartTime": in_secs(60)}))
        .await
        .unwrap();
    let task = srv
        .create_fuota_task(&image(100, 10), json!({}))
        .await
        .unwrap();
    srv.associate(&task, &group).await.unwrap();
    let t = srv.get(&format!("/fuota-tasks/{task}")).await;
    assert!(
        t["PlanProblem"]
            .as_str()
            .unwrap()
            .contains("has no gateways"),
        "{t}"
    );
    refused(
        srv.start_fuota(&task, json!({})).await,
        400,
        "has no gateways",
    );
    // An empty list goes back to every gateway of the region.
    srv.call(Method::PUT, &path, Some(json!({"WirelessGatewayIds": []})))
        .await
        .unwrap();
    let g = srv.get(&path).await;
    assert_eq!(g["Selection"], "AllInRegion");
    assert_eq!(g["WirelessGateways"][0]["Id"], second.as_str());
}
