//! End to end over real TLS: the real server on 127.0.0.1:0 and the station
//! simulator (tests/common/station, written from the spec, sharing no code with the
//! server) driving registration, URI redirect, credential rotation and fallback.

mod common;

use common::server::{install_files, sample, TestServer, LNS_URI};
use common::station::{Category, CredResult, CredSet, StationError};
use hyper::Method;
use serde_json::json;
use stationkeeper::config::UnknownGateways;

const EUI: u64 = 0xb827_ebff_fe61_51a8;
const OTHER: u64 = 0x0016_c001_ff10_0001;

/// Asserts the poll succeeded and returns its parsed answer.
macro_rules! ok {
    ($outcome:expr) => {{
        let o = $outcome;
        assert!(
            o.is_success(),
            "poll failed: {:?} status {:?}",
            o.error,
            o.status
        );
        o
    }};
}

#[tokio::test]
async fn mtls_gateway_gets_tc_uri_and_der_credentials_then_nothing_to_do() {
    let srv = TestServer::start().await;
    let id = srv.create_gateway(EUI).await;
    let issued = srv.issue(&id, "CUPS", "ClientCertificate").await;
    let mut st = srv.station(EUI, &issued);

    // First contact: cups.uri already right; PEM files get replaced by the DER blob;
    // an LNS token is issued and delivered with the tcUri.
    let o = ok!(st.poll(srv.cups()).await);
    let resp = o.response.as_ref().unwrap();
    assert_eq!(
        resp.tls_version.as_deref(),
        Some("TLSv1_2"),
        "station speaks TLS 1.2"
    );
    assert!(resp.header("content-length").is_some());
    assert!(resp.header("transfer-encoding").is_none());
    let a = o.answer.as_ref().unwrap();
    assert_eq!(a.cups_uri, None);
    assert_eq!(a.tc_uri.as_deref(), Some(LNS_URI.as_bytes()));
    assert!(matches!(o.cups_cred, Some(CredResult::Installed(_))));
    assert!(matches!(o.tc_cred, Some(CredResult::Installed(_))));
    let tc_key = String::from_utf8(st.read_file("tc.key").unwrap()).unwrap();
    assert!(tc_key.starts_with("Authorization: Bearer ") && tc_key.ends_with("\r\n"));
    assert_eq!(
        st.read_file("tc.crt").unwrap(),
        b"",
        "token mode writes an empty tc.crt"
    );
    assert!(
        st.exists("cups-bak.done"),
        "first success makes the one-time backup"
    );

    // Second contact with the installed DER files: 200 and 14 zero bytes.
    let o = ok!(st.poll(srv.cups()).await);
    assert_eq!(o.body, vec![0u8; 14]);
    let creds = srv.credentials(&id).await;
    assert_eq!(creds["CUPS"]["Confirmed"], json!(true), "{creds}");
    assert_eq!(creds["LNS"]["Confirmed"], json!(true), "{creds}");

    // What it reported is recorded and visible.
    let fw = srv
        .get(&format!("/wireless-gateways/{id}/firmware-information"))
        .await;
    assert_eq!(fw["LoRaWAN"]["CurrentVersion"]["PackageVersion"], "1.0.0");
    assert_eq!(
        fw["LoRaWAN"]["CurrentVersion"]["Station"],
        st.station_version.as_str()
    );
    assert_eq!(fw["LoRaWAN"]["CurrentVersion"]["Model"], "linux");
}

#[tokio::test]
async fn token_gateway_is_authenticated_by_its_header_line() {
    let srv = TestServer::start().await;
    let id = srv.create_gateway(EUI).await;
    let issued = srv.issue(&id, "CUPS", "Token").await;
    let key = issued["Files"]["cups.key"].as_str().unwrap();
    assert!(key.starts_with("Authorization: Bearer ") && key.ends_with("\r\n"));
    assert!(issued["Files"].get("cups.crt").is_none());
    let mut st = srv.station(EUI, &issued);
    let o = ok!(st.poll(srv.cups()).await);
    assert!(String::from_utf8_lossy(&o.request).contains("\r\nAuthorization: Bearer "));
    let o = ok!(st.poll(srv.cups()).await);
    assert_eq!(o.body, vec![0u8; 14]);
}

#[tokio::test]
async fn unknown_router_is_refused_and_station_falls_back() {
    let srv = TestServer::start().await;
    // A gateway holding valid-looking files for an EUI the server never registered.
    let id = srv.create_gateway(OTHER).await;
    let issued = srv.issue(&id, "CUPS", "Token").await;
    let mut st = srv.station(EUI, &issued);
    let o = st.poll(srv.cups()).await;
    assert_eq!(o.status, Some(403));
    assert!(matches!(o.error, Some(StationError::Rejected(403))));
    assert_eq!(
        st.cred_set(),
        CredSet::Bak,
        "non-200 moves station to its backup set"
    );
}

#[tokio::test]
async fn register_mode_enrolls_an_unknown_gateway_on_first_use() {
    let srv = TestServer::start_with(|c| c.gateways.unknown = UnknownGateways::Register).await;
    // Server-auth only: the trust and URI, nothing else.
    let mut st = srv.fresh_station("fresh", EUI).await;
    let o = ok!(st.poll(srv.cups()).await);
    assert!(
        matches!(o.cups_cred, Some(CredResult::Installed(_))),
        "gets a CUPS token"
    );
    let gw = srv
        .get(&format!(
            "/wireless-gateways/{EUI:016x}?identifierType=GatewayEui"
        ))
        .await;
    assert_eq!(gw["LoRaWAN"]["GatewayEui"], format!("{EUI:016x}"));
    // From now on it authenticates with the token it was given.
    let o = ok!(st.poll(srv.cups()).await);
    assert_eq!(o.body, vec![0u8; 14]);
    assert!(String::from_utf8_lossy(&o.request).contains("Authorization: Bearer "));
    // Once confirmed, a poll for that EUI without the token is refused.
    let mut impostor = srv.fresh_station("impostor", EUI).await;
    assert_eq!(impostor.poll(srv.cups()).await.status, Some(403));
}

#[tokio::test]
async fn another_gateways_certificate_or_token_gets_nothing() {
    let srv = TestServer::start().await;
    let mine = srv.create_gateway(EUI).await;
    let theirs = srv.create_gateway(OTHER).await;
    srv.issue(&mine, "CUPS", "ClientCertificate").await;
    for kind in ["ClientCertificate", "Token"] {
        let stolen = srv.issue(&theirs, "CUPS", kind).await;
        // Claims to be EUI while holding OTHER's credentials.
        let mut st = srv.station(EUI, &stolen);
        let o = st.poll(srv.cups()).await;
        assert_eq!(o.status, Some(403), "{kind}");
        assert!(
            o.body.iter().all(|b| b.is_ascii()),
            "no binary answer leaks"
        );
    }
    // And LNS credentials do not open CUPS.
    let lns = srv.issue(&mine, "LNS", "Token").await;
    let st = srv.station(EUI, &srv.issue(&mine, "CUPS", "Token").await);
    let token = lns["Files"]["tc.key"].as_str().unwrap();
    st.write_file("cups.key", token);
    let mut st = st;
    assert_eq!(st.poll(srv.cups()).await.status, Some(403));
}

#[tokio::test]
async fn cups_config_redirects_the_gateway() {
    let srv = TestServer::start().await;
    let (id, mut st) = srv.settled_station(EUI, "Token").await;
    srv.call(
        Method::PUT,
        &format!("/wireless-gateways/{id}/cups-config"),
        Some(json!({"CupsUri": "https://cups2.example.net:443", "TcUri": "wss://lns2.example.net:8887"})),
    )
    .await
    .unwrap();
    let o = ok!(st.poll(srv.cups()).await);
    let a = o.answer.as_ref().unwrap();
    assert_eq!(
        a.cups_uri.as_deref(),
        Some(&b"https://cups2.example.net:443"[..])
    );
    assert_eq!(
        a.tc_uri.as_deref(),
        Some(&b"wss://lns2.example.net:8887"[..])
    );
    assert_eq!(
        st.read_uri(CredSet::Reg, Category::Cups).as_deref(),
        Some("https://cups2.example.net:443")
    );
    // A URI station cannot use is refused by the API.
    let e = srv
        .call(
            Method::PUT,
            &format!("/wireless-gateways/{id}/cups-config"),
            Some(json!({"CupsUri": "https://cups.example.net/path"})),
        )
        .await
        .unwrap_err();
    assert!(e.contains("400") && e.contains("CupsUri"), "{e}");
}

#[tokio::test]
async fn rotation_overlaps_then_retires_and_backup_still_gets_in() {
    let srv = TestServer::start().await;
    let id = srv.create_gateway(EUI).await;
    let gen1 = srv.issue(&id, "CUPS", "ClientCertificate").await;
    let mut st = srv.station(EUI, &gen1);
    ok!(st.poll(srv.cups()).await); // installs gen1 as DER, backs up the PEM gen1 files
    ok!(st.poll(srv.cups()).await); // confirms gen1

    // Rotate: the gateway still presents gen1 and receives gen2.
    let gen2 = srv.issue(&id, "CUPS", "ClientCertificate").await;
    assert_eq!(gen2["Generation"], 2);
    let o = ok!(st.poll(srv.cups()).await);
    assert!(matches!(o.cups_cred, Some(CredResult::Installed(_))));
    let c = srv.credentials(&id).await;
    assert_eq!(c["CUPS"]["Generation"], 2);
    assert_eq!(c["CUPS"]["Confirmed"], false);
    // Next poll presents gen2 and reports its CRC: confirmed.
    let o = ok!(st.poll(srv.cups()).await);
    assert_eq!(o.body, vec![0u8; 14]);
    assert_eq!(srv.credentials(&id).await["CUPS"]["Confirmed"], true);
    let gen2_files = (
        st.read_file("cups.crt").unwrap(),
        st.read_file("cups.key").unwrap(),
    );

    // Rotate again and confirm gen3: gen2 is retired and refused.
    srv.issue(&id, "CUPS", "ClientCertificate").await;
    ok!(st.poll(srv.cups()).await);
    ok!(st.poll(srv.cups()).await);
    let c = srv.credentials(&id).await;
    assert_eq!(c["CUPS"]["Generation"], 3);
    assert_eq!(c["CUPS"]["Confirmed"], true);
    let states: Vec<_> = c["Generations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["Service"] == "CUPS")
        .map(|g| {
            (
                g["Generation"].as_u64().unwrap(),
                g["State"].as_str().unwrap().to_string(),
                g["AcceptedAsBackup"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (1, "Retired".to_string(), true),
            (2, "Retired".to_string(), false),
            (3, "Current".to_string(), false)
        ]
    );

    // Put the retired gen2 back into the regular set: refused, station falls back to
    // cups-bak (gen1, copied once at the first success), which still gets in and is
    // handed gen3 again.
    st.write_file("cups.crt", &gen2_files.0);
    st.write_file("cups.key", &gen2_files.1);
    let o = st.poll(srv.cups()).await;
    assert_eq!(o.status, Some(403));
    assert_eq!(st.cred_set(), CredSet::Bak);
    let o = ok!(st.poll(srv.cups()).await);
    assert_eq!(o.set, CredSet::Bak);
    assert!(matches!(o.cups_cred, Some(CredResult::Installed(_))));
    let o = ok!(st.poll(srv.cups()).await);
    assert_eq!(o.set, CredSet::Reg);
    assert_eq!(o.body, vec![0u8; 14]);
}

#[tokio::test]
async fn lns_rotation_is_delivered_and_confirmed() {
    let srv = TestServer::start().await;
    let (id, mut st) = srv.settled_station(EUI, "Token").await;
    let before = st.read_file("tc.key").unwrap();
    let lns = srv.issue(&id, "LNS", "ClientCertificate").await;
    assert!(lns["Files"]["tc.crt"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let o = ok!(st.poll(srv.cups()).await);
    assert!(matches!(o.tc_cred, Some(CredResult::Installed(_))));
    assert_ne!(st.read_file("tc.key").unwrap(), before);
    assert_eq!(
        &st.read_file("tc.key").unwrap()[..2],
        &[0x30, 0x77],
        "SEC1 DER key"
    );
    ok!(st.poll(srv.cups()).await);
    assert_eq!(srv.credentials(&id).await["LNS"]["Confirmed"], true);
}

#[tokio::test]
async fn restart_keeps_gateways_credentials_and_confirmations() {
    let srv = TestServer::start().await;
    let (id, mut st) = srv.settled_station(EUI, "ClientCertificate").await;
    let srv = srv.restart().await;
    let o = ok!(st.poll(srv.cups()).await);
    assert_eq!(
        o.body,
        vec![0u8; 14],
        "same CA, same URIs, same credentials after restart"
    );
    assert_eq!(srv.credentials(&id).await["CUPS"]["Confirmed"], true);
}

#[tokio::test]
async fn installed_files_match_what_the_api_handed_out() {
    // The operator's files (PEM) and the CUPS blob (DER) carry the same identity:
    // after the first poll, the gateway's cert is the DER of the PEM it started with.
    let srv = TestServer::start().await;
    let id = srv.create_gateway(EUI).await;
    let issued = srv.issue(&id, "CUPS", "ClientCertificate").await;
    let mut st = srv.station(EUI, &issued);
    install_files(&st, &issued);
    ok!(st.poll(srv.cups()).await);
    let der = st.read_file("cups.crt").unwrap();
    let pem = issued["Files"]["cups.crt"].as_str().unwrap();
    let from_pem = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(der, from_pem.to_vec());
}

#[tokio::test]
async fn without_an_lns_configured_the_gateways_tc_files_are_left_alone() {
    let srv = TestServer::start_with(|c| c.lns.public_uri = None).await;
    let id = srv.create_gateway(EUI).await;
    let mut st = srv.station(EUI, &srv.issue(&id, "CUPS", "Token").await);
    st.write_file("tc.uri", "wss://their-lns.example.org:8887");
    st.write_file("tc.key", "Authorization: their-key\r\n");
    let o = ok!(st.poll(srv.cups()).await);
    let a = o.answer.as_ref().unwrap();
    assert_eq!((a.tc_uri.is_none(), a.tc_cred.is_none()), (true, true));
    let o = ok!(st.poll(srv.cups()).await);
    assert_eq!(o.body, vec![0u8; 14]);
    assert_eq!(
        st.read_file("tc.uri").unwrap(),
        b"wss://their-lns.example.org:8887"
    );
    let e = srv
        .call(Method::GET, "/service-endpoint?serviceType=LNS", None)
        .await
        .unwrap_err();
    assert!(
        e.starts_with("404") && e.contains("[lns] public_uri"),
        "{e}"
    );
}

#[tokio::test]
async fn open_registration_never_exposes_a_gateway_the_operator_created() {
    let srv = TestServer::start_with(|c| c.gateways.unknown = UnknownGateways::Register).await;
    let id = srv.create_gateway(EUI).await;
    srv.issue(&id, "CUPS", "ClientCertificate").await;
    // Someone claiming that EUI with no credentials gets nothing.
    let home = srv.dir.path().join("claimant");
    std::fs::create_dir_all(&home).unwrap();
    let mut st = common::station::Station::new(home, EUI);
    let ca = std::fs::read(srv.state_dir().join("pki/ca.crt")).unwrap();
    st.write_set(
        CredSet::Reg,
        Category::Cups,
        Some(&srv.cups_uri()),
        Some(&ca),
        None,
        None,
    );
    let o = st.poll(srv.cups()).await;
    assert_eq!(o.status, Some(403));
}

#[tokio::test]
async fn a_deleted_gateways_certificate_does_not_open_its_successor() {
    let srv = TestServer::start().await;
    let id = srv.create_gateway(EUI).await;
    let old = srv.issue(&id, "CUPS", "ClientCertificate").await;
    srv.call(Method::DELETE, &format!("/wireless-gateways/{id}"), None)
        .await
        .unwrap();
    let id2 = srv.create_gateway(EUI).await;
    srv.issue(&id2, "CUPS", "ClientCertificate").await;
    let mut st = srv.station(EUI, &old);
    let o = st.poll(srv.cups()).await;
    assert_eq!(
        o.status,
        Some(403),
        "a certificate of the deleted gateway is revoked"
    );
}

#[tokio::test]
async fn a_foreign_client_ca_binds_certificates_by_cn_and_tokens_still_work() {
    use stationkeeper::pki::Ca;
    let dir = tempfile::tempdir().unwrap();
    let foreign = Ca::generate("Operator's own gateway CA").unwrap();
    let ca_path = dir.path().join("gateway-ca.crt");
    std::fs::write(&ca_path, &foreign.cert_pem).unwrap();
    let srv = TestServer::start_with(|c| c.tls.client_ca = Some(ca_path.clone())).await;
    let id = srv.create_gateway(EUI).await;

    // We cannot issue certificates for a CA whose key we do not hold.
    let e = srv
        .call(
            Method::POST,
            &format!("/wireless-gateways/{id}/credentials"),
            Some(json!({"Service": "CUPS", "Kind": "ClientCertificate"})),
        )
        .await
        .unwrap_err();
    assert!(e.starts_with("400") && e.contains("client_ca"), "{e}");

    // A certificate from the operator's CA with CN = the EUI gets in.
    let token_files = srv.issue(&id, "CUPS", "Token").await;
    let mut st = srv.station(EUI, &token_files);
    let cert = foreign.issue_gateway(stationkeeper::eui::Eui(EUI)).unwrap();
    st.write_file("cups.crt", &cert.cert_pem);
    st.write_file("cups.key", &cert.key_sec1_pem);
    let o = ok!(st.poll(srv.cups()).await);
    assert!(o.response.as_ref().unwrap().client_cert_configured);
    // One for another EUI does not.
    let mut other = srv.station(EUI, &token_files);
    let cert = foreign
        .issue_gateway(stationkeeper::eui::Eui(OTHER))
        .unwrap();
    other.write_file("cups.crt", &cert.cert_pem);
    other.write_file("cups.key", &cert.key_sec1_pem);
    assert_eq!(other.poll(srv.cups()).await.status, Some(403));
}

#[tokio::test]
async fn a_settled_gateways_last_contact_is_written_behind_and_survives_a_restart() {
    let srv = TestServer::start().await;
    let (id, mut st) = srv.settled_station(EUI, "Token").await;
    let stats = |s: serde_json::Value| s["LastCupsContact"]["At"].as_str().unwrap().to_string();
    let path = format!("/wireless-gateways/{id}/gateway-statistics");
    let before = stats(srv.get(&path).await);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Settled: nothing to do, so the contact is written behind, not per poll.
    let o = ok!(st.poll(srv.cups()).await);
    assert_eq!(o.body, vec![0u8; 14]);
    // A clean shutdown flushes it.
    let srv = srv.restart().await;
    let after = stats(srv.get(&path).await);
    assert!(after > before, "{after} > {before}");
}

/// How many polls `cups::memo` answered, from `GET /metrics`.
async fn answered_from_memory(srv: &TestServer) -> f64 {
    sample(
        &srv.scrape().await,
        "stationkeeper_cups_polls_from_memory_total",
        &[],
    )
    .expect("the counter is exported")
}

/// Polls until one is answered from memory (at most six polls).
async fn settle_into_memory(srv: &TestServer, st: &mut common::station::Station) {
    let before = answered_from_memory(srv).await;
    for _ in 0..6 {
        let o = ok!(st.poll(srv.cups()).await);
        if answered_from_memory(srv).await > before {
            assert_eq!(o.body, vec![0u8; 14]);
            return;
        }
    }
    panic!("six polls of a settled gateway and none answered from memory");
}

/// A settled gateway's polls are answered from memory, and whatever its answer
/// depends on reaches the very next poll: new URIs, a new credential
/// generation, a token that does not prove it, its deletion.
#[tokio::test]
async fn polls_answered_from_memory_see_every_change_at_once() {
    let srv = TestServer::start().await;
    let (id, mut st) = srv.settled_station(EUI, "Token").await;

    settle_into_memory(&srv, &mut st).await;
    // The same host on another port: the certificate still covers it.
    let port = format!(":{}", srv.cups().port());
    let moved = srv.cups_uri().replace(&port, ":8443");
    assert_ne!(moved, srv.cups_uri());
    srv.call(
        Method::PUT,
        &format!("/wireless-gateways/{id}/cups-config"),
        Some(json!({ "CupsUri": moved })),
    )
    .await
    .unwrap();
    let o = ok!(st.poll(srv.cups()).await);
    let a = o.answer.as_ref().unwrap();
    assert_eq!(a.cups_uri.as_deref(), Some(moved.as_bytes()));

    settle_into_memory(&srv, &mut st).await;
    srv.issue(&id, "CUPS", "Token").await;
    let o = ok!(st.poll(srv.cups()).await);
    assert!(matches!(o.cups_cred, Some(CredResult::Installed(_))));

    settle_into_memory(&srv, &mut st).await;
    let token = st.read_file("cups.key").unwrap();
    st.write_file("cups.key", "Authorization: Bearer not-the-token\r\n");
    let o = st.poll(srv.cups()).await;
    assert_eq!(
        o.status,
        Some(403),
        "same body, a token that proves nothing"
    );
    st.write_file("cups.key", token);

    settle_into_memory(&srv, &mut st).await;
    srv.call(Method::DELETE, &format!("/wireless-gateways/{id}"), None)
        .await
        .unwrap();
    let o = st.poll(srv.cups()).await;
    assert_eq!(o.status, Some(403), "the gateway is gone");
}
