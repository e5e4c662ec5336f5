//! Rollout campaigns through the real server with the station simulator polling:
//! waves behind a gate, a failure threshold that pauses, retry-failed, rate
//! limits from the recorded task creation times, a maintenance window on the
//! campaign clock (moved by the test, never slept on), cancel, restart, and every
//! refused body.

mod common;

use common::campaign::*;
use common::server::TestServer;
use hyper::Method;
use serde_json::{json, Value};

async fn server() -> TestServer {
    TestServer::start_with(|c| c.campaigns.tick_ms = 20).await
}

fn body(def: &str, waves: Value, gate: Value) -> Value {
    json!({"Name": "rollout", "Definitions": [def], "Target": {"Tags": [{"Key": "fleet", "Value": "a"}]},
           "Waves": waves, "Gate": gate})
}

#[tokio::test]
async fn fifty_gateways_in_three_waves_open_each_wave_only_through_the_gate() {
    let srv = server().await;
    let mut gws = fleet(&srv, "a", 0x1000, 50, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let canary = format!("{:016x}", gws[7].eui);
    let id = create(
        &srv,
        body(
            &def,
            json!([{"Count": 5, "Canaries": [canary]}, {"Percent": 40}, {"Percent": 100}]),
            json!({"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"}),
        ),
    )
    .await;
    let c = wait_campaign(&srv, &id, "wave 0 started", |c| count(c, "InProgress") == 5).await;
    assert_eq!(c["Waves"][0]["Size"], 5);
    assert_eq!(c["Waves"][1]["Size"], 20);
    assert_eq!(c["Waves"][2]["Size"], 25);
    assert_eq!(c["State"], "Running");

    let mut done = 0;
    for (wave, size) in [(0, 5), (1, 20), (2, 25)] {
        wait_campaign(&srv, &id, "wave started", |c| {
            c["OpenWave"] == wave && count(c, "InProgress") == size as u64
        })
        .await;
        let got = poll_all(&srv, &mut gws).await;
        assert_eq!(
            got.len(),
            size,
            "wave {wave}: only its gateways get the update"
        );
        if wave == 0 {
            assert!(got.contains(&gws[7].eui), "the canary is in the first wave");
        }
        // Before they report the new version, the next wave stays shut.
        let c = campaign(&srv, &id).await;
        assert_eq!(c["OpenWave"], wave, "{c}");
        for m in gws.iter_mut().filter(|m| got.contains(&m.eui)) {
            run_update(&srv, m, "1.1.0").await;
        }
        done += size;
        wait_campaign(&srv, &id, "wave succeeded", |c| {
            count(c, "Succeeded") == done as u64
        })
        .await;
    }
    let c = wait_campaign(&srv, &id, "completed", |c| c["State"] == "Completed").await;
    assert_eq!(count(&c, "Succeeded"), 50);
    assert!(
        c["StateReason"].as_str().unwrap().contains("50 succeeded"),
        "{c}"
    );
    assert!(poll_all(&srv, &mut gws).await.is_empty());
}

#[tokio::test]
async fn a_failure_threshold_pauses_and_retry_failed_finishes_the_rest() {
    let srv = server().await;
    let mut gws = fleet(&srv, "a", 0x2000, 6, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let id = create(
        &srv,
        body(
            &def,
            json!([{"Count": 6}]),
            json!({"SuccessPercent": 100, "WithinMinutes": 60, "MaxFailures": 1, "OnFailure": "Pause"}),
        ),
    )
    .await;
    wait_campaign(&srv, &id, "started", |c| count(c, "InProgress") == 6).await;
    assert_eq!(poll_all(&srv, &mut gws).await.len(), 6);
    // Two gateways come back on a version nobody asked for: their tasks fail.
    for m in gws[..2].iter_mut() {
        run_update(&srv, m, "0.9.9").await;
    }
    for m in gws[2..].iter_mut() {
        run_update(&srv, m, "1.1.0").await;
    }
    let c = wait_campaign(&srv, &id, "paused", |c| c["State"] == "Paused").await;
    assert!(
        c["StateReason"]
            .as_str()
            .unwrap()
            .contains("2 of 6 gateways failed, over Gate.MaxFailures 1"),
        "{c}"
    );
    assert_eq!(c["TopFailureReasons"][0]["Count"], 2, "{c}");
    assert!(
        c["TopFailureReasons"][0]["Reason"]
            .as_str()
            .unwrap()
            .contains("unexpected version"),
        "{c}"
    );
    let failed = srv
        .get(&format!("/campaigns/{id}/gateways?status=FAILED"))
        .await;
    assert_eq!(failed["Gateways"].as_array().unwrap().len(), 2);
    assert_eq!(failed["Gateways"][0]["Attempts"], 1);

    // The operator fixes the cause (the gateways are back on 1.0.0) and retries.
    for m in gws[..2].iter_mut() {
        run_update(&srv, m, "1.0.0").await;
    }
    let (status, v) = send(
        &srv,
        Method::POST,
        &format!("/campaigns/{id}/retry-failed"),
        None,
    )
    .await;
    // The spec's answer: 201 with the new wave's number (from 1; the campaign
    // had one wave) and its size.
    assert_eq!(status, 201, "{v}");
    assert_eq!(v, json!({"Wave": 2, "Gateways": 2}));
    wait_campaign(&srv, &id, "retry wave started", |c| {
        count(c, "InProgress") == 2
    })
    .await;
    let got = poll_all(&srv, &mut gws).await;
    assert_eq!(got, vec![gws[0].eui, gws[1].eui]);
    for m in gws[..2].iter_mut() {
        run_update(&srv, m, "1.1.0").await;
    }
    let c = wait_campaign(&srv, &id, "completed", |c| c["State"] == "Completed").await;
    assert_eq!(count(&c, "Succeeded"), 6);
    let retried = srv
        .get(&format!("/campaigns/{id}/gateways?status=Succeeded"))
        .await;
    let attempts: Vec<u64> = retried["Gateways"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["Attempts"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts.iter().filter(|&&a| a == 2).count(), 2, "{retried}");
}

/// The campaign clock of the running server.
fn clock(srv: &TestServer) -> &stationkeeper::campaign::Campaigns {
    &srv.running.app.campaigns
}

fn us(t: &str) -> i64 {
    stationkeeper::app::parse_time(t).unwrap()
}

async fn task_created_at(srv: &TestServer, gw: &str) -> Option<i64> {
    let (status, t) = send(
        srv,
        Method::GET,
        &format!("/wireless-gateways/{gw}/tasks"),
        None,
    )
    .await;
    (status == 200).then(|| us(t["TaskCreatedAt"].as_str().unwrap()))
}

#[tokio::test]
async fn max_in_progress_and_max_starts_per_minute_hold() {
    let srv = server().await;
    let mut gws = fleet(&srv, "a", 0x3000, 10, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    clock(&srv).set_clock(us("2026-12-07T10:00:00Z"));
    let mut b = body(
        &def,
        json!([{"Percent": 100}]),
        json!({"SuccessPercent": 100, "WithinMinutes": 600, "OnFailure": "Pause"}),
    );
    b["MaxInProgress"] = json!(4);
    b["MaxStartsPerMinute"] = json!(3);
    let id = create(&srv, b).await;
    let c = wait_campaign(&srv, &id, "first starts", |c| {
        c["StateReason"]
            .as_str()
            .unwrap()
            .contains("MaxStartsPerMinute 3")
    })
    .await;
    assert_eq!(count(&c, "InProgress"), 3, "{c}");
    // Within the same campaign minute nothing more starts, however often the job looks.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(count(&campaign(&srv, &id).await, "InProgress"), 3);
    clock(&srv).advance_clock(61_000_000);
    let c = wait_campaign(&srv, &id, "MaxInProgress", |c| {
        c["StateReason"]
            .as_str()
            .unwrap()
            .contains("MaxInProgress 4")
    })
    .await;
    assert_eq!(count(&c, "InProgress"), 4, "{c}");
    clock(&srv).advance_clock(61_000_000);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        count(&campaign(&srv, &id).await, "InProgress"),
        4,
        "MaxInProgress holds"
    );
    // Work the fleet through, moving the clock a minute at a time.
    for _ in 0..20 {
        for m in gws.iter_mut() {
            let o = m.st.poll(srv.cups()).await;
            if o.update_verified() {
                run_update(&srv, m, "1.1.0").await;
            }
        }
        clock(&srv).advance_clock(61_000_000);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if campaign(&srv, &id).await["State"] == "Completed" {
            break;
        }
    }
    assert_eq!(campaign(&srv, &id).await["State"], "Completed");
    // From the recorded task creation times: never more than 3 in one minute.
    let mut times = Vec::new();
    for m in &gws {
        times.push(task_created_at(&srv, &m.id).await.unwrap());
    }
    times.sort();
    for (i, t) in times.iter().enumerate() {
        let in_minute = times[i..]
            .iter()
            .take_while(|&&u| u - t < 60_000_000)
            .count();
        assert!(
            in_minute <= 3,
            "{in_minute} tasks created within a minute from {t}: {times:?}"
        );
    }
}

#[tokio::test]
async fn a_maintenance_window_keeps_tasks_and_deliveries_back_until_it_opens() {
    let srv = server().await;
    let mut gws = fleet(&srv, "a", 0x4000, 3, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    // Monday 2026-12-07, 00:30 in Berlin (23:30 UTC on Sunday); the window is 01:00–03:00 Berlin.
    clock(&srv).set_clock(us("2026-12-06T23:30:00Z"));
    let mut b = body(
        &def,
        json!([{"Percent": 100}]),
        json!({"SuccessPercent": 100, "WithinMinutes": 600, "OnFailure": "Pause"}),
    );
    b["MaintenanceWindows"] = json!({"TimeZone": "Europe/Berlin", "Windows": [{"Days": ["Mon"], "Start": "01:00", "End": "03:00"}]});
    let id = create(&srv, b).await;
    let c = wait_campaign(&srv, &id, "outside the window", |c| {
        c["StateReason"]
            .as_str()
            .unwrap()
            .contains("outside the maintenance windows")
    })
    .await;
    assert!(
        c["StateReason"]
            .as_str()
            .unwrap()
            .contains("2026-12-07T00:00:00.000Z"),
        "{c}"
    );
    assert_eq!(count(&c, "InProgress"), 0);
    assert!(poll_all(&srv, &mut gws).await.is_empty());

    clock(&srv).advance_clock(31 * 60_000_000);
    wait_campaign(&srv, &id, "window open", |c| count(c, "InProgress") == 3).await;
    // The window closes before the gateways poll: the update waits, with its reason.
    clock(&srv).advance_clock(3 * 3_600_000_000);
    assert!(
        poll_all(&srv, &mut gws).await.is_empty(),
        "no delivery outside the window"
    );
    let t = srv
        .get(&format!("/wireless-gateways/{}/tasks", gws[0].id))
        .await;
    assert_eq!(t["Status"], "PENDING");
    assert!(
        t["StatusReason"]
            .as_str()
            .unwrap()
            .contains("outside its maintenance windows"),
        "{t}"
    );
    // Next Monday 01:00 Berlin.
    clock(&srv).set_clock(us("2026-12-14T00:10:00Z"));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(poll_all(&srv, &mut gws).await.len(), 3);
}

#[tokio::test]
async fn cancel_deletes_open_tasks_and_sends_nothing_more() {
    let srv = server().await;
    let mut gws = fleet(&srv, "a", 0x5000, 4, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let id = create(
        &srv,
        body(
            &def,
            json!([{"Count": 2}, {"Percent": 100}]),
            json!({"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"}),
        ),
    )
    .await;
    wait_campaign(&srv, &id, "started", |c| count(c, "InProgress") == 2).await;
    let (status, v) = send(&srv, Method::POST, &format!("/campaigns/{id}/cancel"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["TasksDeleted"], 2);
    assert_eq!(v["State"], "Cancelled");
    assert_eq!(count(&v, "Cancelled"), 4);
    assert!(poll_all(&srv, &mut gws).await.is_empty());
    // Controls in the wrong state are refused with 409, naming the state.
    for control in ["resume", "pause", "cancel", "retry-failed"] {
        let (status, v) = send(
            &srv,
            Method::POST,
            &format!("/campaigns/{id}/{control}"),
            None,
        )
        .await;
        assert_eq!(status, 409, "{control}: {v}");
        assert!(
            v["Message"].as_str().unwrap().contains("is Cancelled"),
            "{v}"
        );
    }
    // The definition is free again for a new campaign.
    let (status, v) = send(
        &srv,
        Method::POST,
        "/campaigns",
        Some(body(
            &def,
            json!([{"Percent": 100}]),
            json!({"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"}),
        )),
    )
    .await;
    assert_eq!(status, 201, "{v}");
}

#[tokio::test]
async fn a_restart_mid_campaign_resumes_without_opening_a_wave_twice() {
    let srv = server().await;
    let mut gws = fleet(&srv, "a", 0x6000, 6, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let id = create(
        &srv,
        body(
            &def,
            json!([{"Count": 2}, {"Count": 2}, {"Percent": 100}]),
            json!({"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"}),
        ),
    )
    .await;
    wait_campaign(&srv, &id, "started", |c| count(c, "InProgress") == 2).await;
    let got = poll_all(&srv, &mut gws).await;
    assert_eq!(got.len(), 2);
    let srv = srv.restart().await;
    // After the restart the same two are in progress; wave 1 is still shut.
    let c = wait_campaign(&srv, &id, "resumed", |c| c["State"] == "Running").await;
    assert_eq!(c["OpenWave"], 0);
    assert_eq!(count(&c, "InProgress"), 2);
    for m in gws.iter_mut().filter(|m| got.contains(&m.eui)) {
        run_update(&srv, m, "1.1.0").await;
    }
    let c = wait_campaign(&srv, &id, "wave 1", |c| {
        count(c, "InProgress") == 2 && c["OpenWave"] == 1
    })
    .await;
    assert_eq!(count(&c, "Succeeded"), 2);
    assert_eq!(c["Waves"][1]["Counts"]["InProgress"], 2, "{c}");
    assert_eq!(c["Waves"][2]["Counts"]["Waiting"], 2, "{c}");
}

#[tokio::test]
async fn bad_campaign_bodies_are_refused_naming_the_field() {
    let srv = server().await;
    let gws = fleet(&srv, "a", 0x7000, 4, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let hop2 = definition(&srv, &gws[0].st, "1.1.0", "1.2.0").await;
    let gap = definition(&srv, &gws[0].st, "1.5.0", "1.6.0").await;
    let gate = json!({"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"});
    let good = body(&def, json!([{"Percent": 100}]), gate.clone());
    let auto = {
        let mut d = srv
            .get(&format!("/wireless-gateway-task-definitions/{def}"))
            .await;
        d.as_object_mut()
            .unwrap()
            .retain(|k, _| ["Name", "Update"].contains(&k.as_str()));
        d["AutoCreateTasks"] = json!(true);
        d["Update"]["LoRaWAN"]["CurrentVersion"]["PackageVersion"] = json!("7.0.0");
        srv.create_definition(d).await
    };
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (with(&|b| b["Target"] = json!({})), 400, "Target is empty"),
        (
            with(&|b| b["Target"] = json!({"Tags": [{"Key": "fleet", "Value": "nobody"}]})),
            400,
            "Target: no gateway is eligible",
        ),
        (
            with(&|b| b["Waves"] = json!([{"Count": 1}, {"Count": 1}])),
            400,
            "the other 2 would never be updated",
        ),
        (
            with(&|b| b["Waves"] = json!([{"Count": 4}, {"Percent": 10}])),
            400,
            "Waves[1] would be empty",
        ),
        (
            with(&|b| b["Waves"] = json!([{"Percent": 150}])),
            400,
            "Waves[0].Percent is 150",
        ),
        (
            with(&|b| b["Waves"] = json!([{"Percent": 50, "Count": 2}])),
            400,
            "Waves[0] needs exactly one of Count and Percent",
        ),
        (
            with(&|b| b["Gate"]["SuccessPercent"] = json!(101)),
            400,
            "Gate.SuccessPercent is 101",
        ),
        (
            with(&|b| b["Gate"]["WithinMinutes"] = json!(0)),
            400,
            "Gate.WithinMinutes is 0",
        ),
        (
            with(
                &|b| b["MaintenanceWindows"] = json!({"TimeZone": "UTC", "Windows": [{"Days": ["Mon"], "Start": "02:00", "End": "02:00"}]}),
            ),
            400,
            "MaintenanceWindows.Windows[0] has no hours",
        ),
        (
            with(
                &|b| b["MaintenanceWindows"] = json!({"TimeZone": "Europe/Atlantis", "Windows": [{"Days": ["Mon"], "Start": "02:00", "End": "03:00"}]}),
            ),
            400,
            "MaintenanceWindows.TimeZone",
        ),
        (
            with(&|b| b["Definitions"] = json!([def, gap])),
            400,
            "Definitions[1] does not connect to Definitions[0]",
        ),
        (
            with(&|b| b["Definitions"] = json!([auto])),
            400,
            "Definitions[0]: task definition",
        ),
        (
            with(&|b| b["Definitions"] = json!(["nope"])),
            400,
            "Definitions[0]: no task definition",
        ),
        (
            with(&|b| b["Waves"][0]["Canaries"] = json!(["ffffffffffffffff"])),
            400,
            "Waves[0].Canaries[0]: no gateway",
        ),
        (
            with(&|b| b["MaxInProgress"] = json!(0)),
            400,
            "MaxInProgress is 0",
        ),
        (
            with(&|b| b["StartTime"] = json!("tomorrow")),
            400,
            "StartTime",
        ),
        (
            with(&|b| b["Target"]["PackageVersionRange"] = json!(">=1.0.0, <1..0")),
            400,
            "Target.PackageVersionRange",
        ),
    ];
    for (b, want_status, want) in cases {
        // Preview answers an empty eligible set (Eligible 0, with the reasons).
        let paths: &[&str] = if want.contains("no gateway is eligible") {
            &["/campaigns"]
        } else {
            &["/campaigns/preview", "/campaigns"]
        };
        for path in paths {
            let (status, v) = send(&srv, Method::POST, path, Some(b.clone())).await;
            let msg = v["Message"].as_str().unwrap_or_default();
            assert_eq!(status, want_status, "{path} {want}: {v}");
            assert!(msg.contains(want), "{path}: wanted {want:?} in {msg:?}");
        }
    }
    // A chain that connects is fine; a definition in two running campaigns is not.
    let (status, p) = send(
        &srv,
        Method::POST,
        "/campaigns/preview",
        Some(with(&|b| b["Definitions"] = json!([def, hop2]))),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["Eligible"], 4);
    assert_eq!(p["WaveSizes"], json!([4]));
    create(&srv, good.clone()).await;
    let (status, v) = send(&srv, Method::POST, "/campaigns", Some(good.clone())).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("Definitions: task definition"),
        "{v}"
    );
    let (status, v) = send(
        &srv,
        Method::GET,
        "/campaigns/x/gateways?status=Sideways",
        None,
    )
    .await;
    assert_eq!(status, 404, "{v}");
}

#[tokio::test]
async fn preview_groups_the_gateways_that_are_not_eligible() {
    let srv = server().await;
    let gws = fleet(&srv, "a", 0x8000, 3, "1.0.0").await;
    fleet(&srv, "a", 0x8100, 2, "0.9.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    // One gateway without the key: remove it and poll so the report says so.
    let mut lacking = fleet(&srv, "a", 0x8200, 1, "1.0.0").await;
    lacking[0].st.remove_file("sig-0.key");
    assert!(lacking[0].st.poll(srv.cups()).await.is_success());
    let (status, p) = send(
        &srv,
        Method::POST,
        "/campaigns/preview",
        Some(body(
            &def,
            json!([{"Percent": 100}]),
            json!({"SuccessPercent": 90, "WithinMinutes": 60, "OnFailure": "Abort"}),
        )),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["Targeted"], 6);
    assert_eq!(p["Eligible"], 3);
    let reasons: Vec<(String, u64)> = p["NotEligible"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["Reason"].as_str().unwrap().to_string(),
                r["Count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(r, n)| r.starts_with("other version") && *n == 2),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(r, n)| r.starts_with("lacks the signing key") && *n == 1),
        "{reasons:?}"
    );
    assert!(
        p["EstimatedDurationMinutes"].as_u64().unwrap() >= 24 * 60,
        "{p}"
    );
}

#[tokio::test]
async fn a_gateway_carrying_a_fuota_session_waits_with_its_reason() {
    let srv = server().await;
    let mut gws = fleet(&srv, "a", 0xa000, 2, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let group = srv.create_group("ClassC").await;
    srv.set_session(&group, json!({})).await.unwrap();
    srv.call(
        Method::PUT,
        &format!("/multicast-groups/{group}/gateways"),
        Some(json!({"WirelessGatewayIds": [gws[0].id]})),
    )
    .await
    .unwrap();
    let fuota = srv.create_fuota_task(&[7u8; 200], json!({})).await.unwrap();
    srv.associate(&fuota, &group).await.unwrap();
    srv.start_fuota(&fuota, json!({})).await.unwrap();

    let b = body(
        &def,
        json!([{"Percent": 100}]),
        json!({"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"}),
    );
    let (status, p) = send(&srv, Method::POST, "/campaigns/preview", Some(b.clone())).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p["WillWait"][0]["WirelessGatewayId"],
        gws[0].id.as_str(),
        "{p}"
    );
    let id = create(&srv, b).await;
    wait_campaign(&srv, &id, "the free one started", |c| {
        count(c, "InProgress") == 1
    })
    .await;
    let queued = srv
        .get(&format!("/campaigns/{id}/gateways?status=Queued"))
        .await;
    let q = &queued["Gateways"][0];
    assert_eq!(q["WirelessGatewayId"], gws[0].id.as_str());
    assert!(
        q["Reason"]
            .as_str()
            .unwrap()
            .contains(&format!("carries FUOTA task {fuota}")),
        "{q}"
    );
    assert_eq!(
        poll_all(&srv, &mut gws).await,
        vec![gws[1].eui],
        "nothing goes to the FUOTA gateway"
    );
    run_update(&srv, &mut gws[1], "1.1.0").await;

    // The FUOTA task ends (deleted here): the gateway's turn comes.
    srv.call(Method::DELETE, &format!("/fuota-tasks/{fuota}"), None)
        .await
        .unwrap();
    wait_campaign(&srv, &id, "the other started", |c| count(c, "Queued") == 0).await;
    assert_eq!(poll_all(&srv, &mut gws).await, vec![gws[0].eui]);
}

#[tokio::test]
async fn a_version_the_lns_disagrees_with_is_shown_and_not_completed() {
    use common::lns_station::{Auth, LnsStation};
    let srv = server().await;
    let mut gws = fleet(&srv, "a", 0xb000, 1, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let files = srv.issue(&gws[0].id, "LNS", "Token").await["Files"].clone();
    let mut lns = LnsStation::new(gws[0].eui);
    lns.trust = Some(files["tc.trust"].as_str().unwrap().as_bytes().to_vec());
    lns.auth = Auth::Token(files["tc.key"].as_str().unwrap().as_bytes().to_vec());
    lns.resolve = Some(srv.running.lns_addr);
    lns.station = gws[0]
        .st
        .station_version
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    lns.model = gws[0].st.model.clone();
    lns.package = Some("1.0.0".into());
    let (_, mut s) = lns
        .discover_and_connect(common::server::LNS_URI)
        .await
        .unwrap();
    s.recv_router_config(std::time::Duration::from_secs(5))
        .await
        .unwrap();

    let id = create(
        &srv,
        body(
            &def,
            json!([{"Percent": 100}]),
            json!({"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"}),
        ),
    )
    .await;
    wait_campaign(&srv, &id, "started", |c| count(c, "InProgress") == 1).await;
    assert_eq!(poll_all(&srv, &mut gws).await.len(), 1);
    run_update(&srv, &mut gws[0], "1.1.0").await;
    // CUPS says 1.1.0, the LNS link (still the old session) says 1.0.0.
    let c = wait_campaign(&srv, &id, "mismatch", |c| count(c, "Mismatch") == 1).await;
    assert_eq!(c["State"], "Running", "not silently completed");
    let m = srv
        .get(&format!("/campaigns/{id}/gateways?status=Mismatch"))
        .await;
    assert!(
        m["Gateways"][0]["Reason"]
            .as_str()
            .unwrap()
            .contains("LNS version message differs in PackageVersion"),
        "{m}"
    );
    // Station restarts after the update and reconnects with the new version.
    drop(s);
    lns.package = Some("1.1.0".into());
    let (_, mut s) = lns
        .discover_and_connect(common::server::LNS_URI)
        .await
        .unwrap();
    s.recv_router_config(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let c = wait_campaign(&srv, &id, "completed", |c| c["State"] == "Completed").await;
    assert_eq!(count(&c, "Succeeded"), 1);
    let ok = srv
        .get(&format!("/campaigns/{id}/gateways?status=Succeeded"))
        .await;
    assert!(
        ok["Gateways"][0]["Reason"]
            .as_str()
            .unwrap()
            .contains("CUPS and the LNS both report"),
        "{ok}"
    );
}

#[tokio::test]
async fn the_nudge_makes_a_connected_station_run_cups_now() {
    use common::lns_station::{Auth, LnsError, LnsStation};
    use common::server::LNS_URI;
    let srv = server().await;
    let mut gws = fleet(&srv, "a", 0xc000, 1, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let files = srv.issue(&gws[0].id, "LNS", "Token").await["Files"].clone();
    let mut lns = LnsStation::new(gws[0].eui);
    lns.trust = Some(files["tc.trust"].as_str().unwrap().as_bytes().to_vec());
    lns.auth = Auth::Token(files["tc.key"].as_str().unwrap().as_bytes().to_vec());
    lns.resolve = Some(srv.running.lns_addr);
    let t = std::time::Duration::from_secs(5);
    let (found, mut s) = lns.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(t).await.unwrap();

    let mut b = body(
        &def,
        json!([{"Percent": 100}]),
        json!({"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"}),
    );
    b["Nudge"] = json!(true);
    let started = std::time::Instant::now();
    create(&srv, b).await;
    // 1. The server closes the traffic socket.
    let closed = loop {
        match s.next_message(t).await {
            Err(LnsError::Closed { reason, .. }) => break reason,
            Err(e) => panic!("{e}"),
            Ok(_) => continue,
        }
    };
    let closed_after = started.elapsed();
    assert!(closed.contains("nudged"), "{closed}");
    // 2. Station's direct reconnects to the traffic URI are refused.
    match lns.connect(&found.uri).await {
        Err(LnsError::Http(503)) => {}
        other => panic!("direct reconnect: {:?}", other.map(|_| ())),
    }
    // 3. Discovery answers with an error: station stops TC and runs CUPS.
    match lns.discover(LNS_URI).await {
        Err(LnsError::Rejected(why)) => assert!(why.contains("run a CUPS session now"), "{why}"),
        other => panic!("discovery: {:?}", other.map(|a| a.raw)),
    }
    let refused_after = started.elapsed();
    // 4. The CUPS poll gets the update; afterwards the LNS takes the station back.
    assert_eq!(poll_all(&srv, &mut gws).await, vec![gws[0].eui]);
    let (_, mut s) = lns.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(t).await.unwrap();
    eprintln!("nudge: session closed {closed_after:?} after the campaign was created, discovery refused at {refused_after:?}");
}

#[tokio::test]
async fn the_fleet_at_a_glance() {
    let srv = server().await;
    let mut gws = fleet(&srv, "a", 0xd000, 3, "1.0.0").await;
    fleet(&srv, "b", 0xd100, 2, "0.9.0").await;
    srv.create_gateway(0xd200).await; // never polls
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let id = create(&srv, body(&def, json!([{"Count": 1}, {"Percent": 100}]), json!({"SuccessPercent": 100, "WithinMinutes": 60, "MaxFailures": 5, "OnFailure": "Pause"}))).await;
    wait_campaign(&srv, &id, "started", |c| count(c, "InProgress") == 1).await;
    let got = poll_all(&srv, &mut gws).await;
    let m = gws.iter_mut().find(|m| got.contains(&m.eui)).unwrap();
    run_update(&srv, m, "0.0.1").await; // an unexpected version: the task fails

    let f = srv.get("/fleet").await;
    assert_eq!(f["Gateways"], 6);
    assert_eq!(f["NeverPolledCups"], 1);
    assert_eq!(f["OnlineByCups"], 5);
    let v: Vec<(String, u64)> = f["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["PackageVersion"].as_str().unwrap().to_string(),
                v["Gateways"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        v,
        vec![
            ("0.9.0".to_string(), 2),
            ("1.0.0".to_string(), 2),
            ("0.0.1".to_string(), 1)
        ]
    );
    assert_eq!(f["Campaigns"][0]["Id"], id.as_str());
    assert_eq!(f["NeedsAttentionCounts"]["TaskFailed"], 1, "{f}");
    assert_eq!(f["NeedsAttention"][0]["Kind"], "TaskFailed");
    assert!(
        f["NeedsAttention"][0]["Detail"]
            .as_str()
            .unwrap()
            .contains("unexpected version"),
        "{f}"
    );
}

/// The spec's controls: `PUT /campaigns/{Id}/state` answers 204 or 409, and
/// `DELETE /campaigns/{Id}` refuses a Running or Paused campaign.
#[tokio::test]
async fn state_changes_and_delete_as_the_spec_has_them() {
    let srv = server().await;
    let gws = fleet(&srv, "a", 0x6000, 2, "1.0.0").await;
    let def = definition(&srv, &gws[0].st, "1.0.0", "1.1.0").await;
    let id = create(
        &srv,
        body(
            &def,
            json!([{"Count": 1}, {"Percent": 100}]),
            json!({"SuccessPercent": 100, "WithinMinutes": 60, "OnFailure": "Pause"}),
        ),
    )
    .await;
    let path = format!("/campaigns/{id}");
    let state_path = format!("{path}/state");
    let put = |state: &str| json!({ "State": state });

    let (status, v) = send(&srv, Method::PUT, &state_path, Some(put("Paused"))).await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(campaign(&srv, &id).await["State"], "Paused");
    let (status, v) = send(&srv, Method::DELETE, &path, None).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["Message"].as_str().unwrap().contains("cancel it first"),
        "{v}"
    );

    let (status, v) = send(&srv, Method::PUT, &state_path, Some(put("Running"))).await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(campaign(&srv, &id).await["State"], "Running");
    let (status, v) = send(&srv, Method::PUT, &state_path, Some(put("Running"))).await;
    assert_eq!(status, 409, "resume a running campaign: {v}");
    let (status, v) = send(&srv, Method::PUT, &state_path, Some(put("Done"))).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["Message"].as_str().unwrap().contains("\"Cancelled\""),
        "{v}"
    );
    let (status, v) = send(
        &srv,
        Method::PUT,
        &state_path,
        Some(json!({"state": "Paused"})),
    )
    .await;
    assert_eq!(status, 400, "a lower-case key: {v}");

    let (status, v) = send(&srv, Method::PUT, &state_path, Some(put("Cancelled"))).await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(campaign(&srv, &id).await["State"], "Cancelled");
    let (status, v) = send(&srv, Method::PUT, &state_path, Some(put("Paused"))).await;
    assert_eq!(status, 409, "{v}");

    let (status, v) = send(&srv, Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{v}");
    let (status, v) = send(&srv, Method::GET, &path, None).await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = send(&srv, Method::DELETE, &path, None).await;
    assert_eq!(status, 404, "{v}");
}
