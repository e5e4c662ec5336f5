//! The web console through the real server. Over plain HTTP: signed-out
//! requests are redirected, sign-in sets an HttpOnly SameSite=Strict cookie, a
//! form with the wrong CSRF token is refused and changes nothing, a control goes
//! through the API and into the audit log under the session's name. In a real
//! browser (Debian's chromium and chromedriver over WebDriver; skipped with a note
//! when they are missing, a failure under `CI=true`): sign in, open every page
//! with seeded data (and the API reference), check what it shows, delete a FUOTA
//! task with its form, and
//! save a screenshot of each page under `target/console-screenshots/`.

mod common;

use std::time::Duration;

use common::form::http;
use common::server::{TestServer, TOKEN};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

const EUI: u64 = 0x0016_c001_ff10_c001;

/// Signs in over HTTP; the `name=value` cookie pair.
async fn sign_in(srv: &TestServer) -> String {
    let a = http(
        srv,
        Method::POST,
        "/console/sign-in",
        None,
        Some(&format!("token={TOKEN}")),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let cookie = a.cookie.unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    cookie.split(';').next().unwrap().to_string()
}

fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn sessions_csrf_and_audited_controls_over_http() {
    let srv = TestServer::start().await;
    let task = srv
        .create_fuota_task(&[7u8; 300], json!({"Name": "fw-http"}))
        .await
        .unwrap();

    // Signed out: every page and control redirects to sign-in.
    for (m, p) in [
        (Method::GET, "/console/"),
        (Method::GET, "/console/wireless-gateways"),
        (Method::POST, "/console/fuota-tasks/x/delete"),
    ] {
        let a = http(&srv, m, p, None, Some("csrf=x")).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{p}");
        assert_eq!(a.location.as_deref(), Some("/console/sign-in"));
    }
    let a = http(
        &srv,
        Method::GET,
        "/console/",
        Some("sk_session=made-up"),
        None,
    )
    .await;
    assert_eq!(a.location.as_deref(), Some("/console/sign-in"));
    let wrong = http(
        &srv,
        Method::POST,
        "/console/sign-in",
        None,
        Some("token=not-the-token"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.cookie.is_none());

    let cookie = sign_in(&srv).await;
    let fleet = http(&srv, Method::GET, "/console/", Some(&cookie), None).await;
    assert_eq!(fleet.status, StatusCode::OK);
    assert!(
        fleet.body.contains("<svg"),
        "the versions chart is inline SVG"
    );
    let csrf = csrf_of(&fleet.body);

    // A wrong CSRF token is refused and the task stays.
    let before = srv.get("/audit-log").await["Entries"]
        .as_array()
        .unwrap()
        .len();
    let path = format!("/console/fuota-tasks/{task}/delete");
    let refused = http(
        &srv,
        Method::POST,
        &path,
        Some(&cookie),
        Some("csrf=forged"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("CSRF"));
    let missing = http(&srv, Method::POST, &path, Some(&cookie), Some("")).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    srv.get(&format!("/fuota-tasks/{task}")).await;
    assert_eq!(
        srv.get("/audit-log").await["Entries"]
            .as_array()
            .unwrap()
            .len(),
        before
    );

    // The right one deletes it through the API, audited under the session.
    let done = http(
        &srv,
        Method::POST,
        &path,
        Some(&cookie),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(srv
        .call(Method::GET, &format!("/fuota-tasks/{task}"), None)
        .await
        .is_err());
    let e = &srv.get("/audit-log?maxResults=1").await["Entries"][0];
    assert_eq!(e["Actor"], "console:api-token");
    assert_eq!(
        (e["Method"].as_str(), e["Path"].as_str()),
        (
            Some("DELETE"),
            Some(format!("/fuota-tasks/{task}").as_str())
        )
    );
    assert_eq!(e["Resource"], "fuota-tasks");

    // Signing out ends the session.
    let out = http(
        &srv,
        Method::POST,
        "/console/sign-out",
        Some(&cookie),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = http(&srv, Method::GET, "/console/", Some(&cookie), None).await;
    assert_eq!(after.location.as_deref(), Some("/console/sign-in"));
}

#[tokio::test]
async fn max_sessions_ends_the_oldest() {
    // (Expiry by [console] session_minutes is in console::session's unit tests.)
    let srv = TestServer::start_with(|c| c.console.max_sessions = 1).await;
    let first = sign_in(&srv).await;
    let _second = sign_in(&srv).await;
    let a = http(&srv, Method::GET, "/console/", Some(&first), None).await;
    assert_eq!(
        a.location.as_deref(),
        Some("/console/sign-in"),
        "[console] max_sessions ended the oldest"
    );
}

// ---- the browser ----

struct Driver {
    child: std::process::Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver on a free port, or says why not.
async fn chromedriver() -> Result<Driver, String> {
    for tool in ["chromium", "chromedriver"] {
        let found = std::process::Command::new(tool).arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            return Err(format!(
                "{tool} is not installed (apt-get install chromium chromium-driver)"
            ));
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("chromedriver: {e}"))?;
    let driver = Driver { child, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(driver);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("chromedriver did not start listening".into())
}

fn screenshots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_in_a_real_browser() {
    let driver = match chromedriver().await {
        Ok(d) => d,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("under CI=true the browser test must run: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED the console browser test: {why}");
            return;
        }
    };
    let srv = TestServer::start().await;
    // Seed: a settled gateway (a version to chart), a refused impostor, a FUOTA
    // task, a device.
    let (gw, _st) = srv.settled_station(EUI, "Token").await;
    let other = srv.create_gateway(EUI + 1).await;
    let files = srv.issue(&other, "CUPS", "Token").await;
    for _ in 0..2 {
        let mut impostor = srv.station(EUI, &files);
        assert!(!impostor.poll(srv.cups()).await.is_success());
    }
    let task = srv
        .create_fuota_task(&[9u8; 500], json!({"Name": "fw-browser"}))
        .await
        .unwrap();
    let profile = srv
        .call(Method::POST, "/device-profiles", Some(json!({"Name": "p", "LoRaWAN": {"MacVersion": "1.0.3", "RfRegion": "EU868", "SupportsJoin": true}})))
        .await
        .unwrap();
    let device = srv
        .call(Method::POST, "/wireless-devices", Some(json!({
            "Type": "LoRaWAN", "DestinationName": "app1", "Name": "soil-sensor",
            "LoRaWAN": {"DevEui": "70b3d57ed0001001", "DeviceProfileId": profile["Id"],
                "OtaaV1_0_x": {"AppKey": "8f3a1c2b4d5e6f708192a3b4c5d6e7f8", "JoinEui": "70b3d57ed0001234"}}})))
        .await
        .unwrap();
    let device = device["Id"].as_str().unwrap().to_string();

    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "goog:chromeOptions": {"binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100"]}
    }))
    .unwrap();
    let c =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a chromium session");
    let base = format!("http://{}", srv.running.api_addr);
    let shots = screenshots();
    let shot = |name: &'static str| {
        let (c, shots) = (c.clone(), shots.clone());
        async move {
            std::fs::write(
                shots.join(format!("{name}.png")),
                c.screenshot().await.unwrap(),
            )
            .unwrap()
        }
    };
    use fantoccini::Locator;

    // Signed out: redirected to sign-in.
    c.goto(&format!("{base}/console/wireless-gateways"))
        .await
        .unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/sign-in"));
    shot("sign-in").await;
    c.find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The form's navigation may still be under way when click() returns (a busy
    // machine): wait for the signed-in page rather than read the URL at once.
    for _ in 0..100 {
        if c.current_url().await.unwrap().path() != "/console/sign-in" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A navigation between finding <main> and reading it (a form's answer
    // arriving) makes the element stale: read it again.
    let text = |c: &fantoccini::Client| {
        let c = c.clone();
        async move {
            for _ in 0..50 {
                if let Ok(main) = c.find(Locator::Css("main")).await {
                    if let Ok(t) = main.text().await {
                        return t;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no readable <main> on {}", c.current_url().await.unwrap())
        }
    };
    // Fleet.
    assert_eq!(c.current_url().await.unwrap().path(), "/console/");
    let fleet = text(&c).await;
    assert!(
        fleet.contains("2\ngateways") || fleet.contains("2 gateways") || fleet.contains("gateways"),
        "{fleet}"
    );
    assert!(
        fleet.contains("2.0.6"),
        "the chart names the version: {fleet}"
    );
    assert!(
        fleet.contains("recent CUPS refusals"),
        "needs attention: {fleet}"
    );
    assert!(c.find(Locator::Css("svg rect")).await.is_ok());
    shot("fleet").await;

    // Gateways: list, search, the gateway's page.
    c.goto(&format!("{base}/console/wireless-gateways"))
        .await
        .unwrap();
    let list = text(&c).await;
    assert!(
        list.contains(&format!("{EUI:016x}")) && list.contains(&format!("{:016x}", EUI + 1)),
        "{list}"
    );
    shot("gateways").await;
    c.goto(&format!(
        "{base}/console/wireless-gateways?q={:016x}",
        EUI + 1
    ))
    .await
    .unwrap();
    let found = text(&c).await;
    assert!(
        found.contains(&format!("{:016x}", EUI + 1)) && !found.contains(&format!("{EUI:016x}")),
        "{found}"
    );
    c.goto(&format!("{base}/console/wireless-gateways/{gw}"))
        .await
        .unwrap();
    let page = text(&c).await;
    for want in [
        "Last CUPS report",
        "2.0.6",
        "Credential generations",
        "not_authenticated",
        "LNS connection",
    ] {
        assert!(page.contains(want), "gateway page lacks {want:?}: {page}");
    }
    shot("gateway").await;

    // Devices.
    c.goto(&format!("{base}/console/wireless-devices"))
        .await
        .unwrap();
    assert!(text(&c).await.contains("soil-sensor"));
    shot("devices").await;
    c.goto(&format!("{base}/console/wireless-devices/{device}"))
        .await
        .unwrap();
    assert!(text(&c).await.contains("70b3d57ed0001001"));
    shot("device").await;

    // FUOTA: the task, then its Delete form.
    c.goto(&format!("{base}/console/fuota-tasks"))
        .await
        .unwrap();
    assert!(text(&c).await.contains("fw-browser"));
    shot("fuota-tasks").await;
    c.goto(&format!("{base}/console/fuota-tasks/{task}"))
        .await
        .unwrap();
    assert!(text(&c).await.contains("Pending"));
    shot("fuota-task").await;
    // A forged CSRF token first: refused, the task stays.
    c.execute(
        "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged')",
        vec![],
    )
    .await
    .unwrap();
    c.find(Locator::XPath("//button[text()='Delete']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let mut refused = String::new();
    for _ in 0..100 {
        refused = text(&c).await;
        if refused.contains("CSRF") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused.contains("CSRF"), "{refused}");
    srv.get(&format!("/fuota-tasks/{task}")).await;
    c.goto(&format!("{base}/console/fuota-tasks/{task}"))
        .await
        .unwrap();
    c.find(Locator::XPath("//button[text()='Delete']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..100 {
        if c.current_url().await.unwrap().path() == "/console/fuota-tasks" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/console/fuota-tasks"
    );
    assert!(!text(&c).await.contains("fw-browser"));
    assert!(srv
        .call(Method::GET, &format!("/fuota-tasks/{task}"), None)
        .await
        .is_err());

    // The API reference: the served OpenAPI document, rendered.
    c.goto(&format!("{base}/console/api")).await.unwrap();
    let reference = text(&c).await;
    for want in [
        "POST /wireless-gateways",
        "CreateWirelessGateway",
        "GatewayEui",
        "Schemas",
    ] {
        assert!(reference.contains(want), "{want} missing from /console/api");
    }
    shot("api").await;

    // The audit log shows it, by the console session.
    c.goto(&format!("{base}/console/audit-log?resource=fuota-tasks"))
        .await
        .unwrap();
    let log = text(&c).await;
    assert!(
        log.contains("console:api-token") && log.contains(&format!("/fuota-tasks/{task}")),
        "{log}"
    );
    shot("audit-log").await;

    // Sign out: back to sign-in, and the pages are closed again.
    c.find(Locator::XPath("//button[starts-with(text(), 'Sign out')]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..100 {
        if c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/sign-in")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    c.goto(&format!("{base}/console/")).await.unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/sign-in"));
    c.close().await.unwrap();
}
