//! Retiring the backup CUPS generation (issue 9): the generation that
//! authenticated a gateway's first poll is accepted for ever, because station
//! copies it to cups-bak.*, until the operator deletes it with
//! `DELETE /wireless-gateways/{Id}/credentials/{Generation}`.

mod common;

use common::server::TestServer;
use hyper::Method;

const EUI: u64 = 0xb827_ebff_fe61_51a8;

// Multi-threaded: the CLI runs as a blocking child process while this runtime
// also serves the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_generation_works_until_the_operator_deletes_it() {
    let srv = TestServer::start().await;
    let id = srv.create_gateway(EUI).await;
    let gen1 = srv.issue(&id, "CUPS", "Token").await;
    let mut st = srv.station(EUI, &gen1);
    for _ in 0..2 {
        assert!(st.poll(srv.cups()).await.is_success());
    }
    // Rotate: the station installs and confirms generation 2; generation 1 is
    // retired but stays accepted as the backup (station's cups-bak.* set).
    srv.issue(&id, "CUPS", "Token").await;
    for _ in 0..2 {
        assert!(st.poll(srv.cups()).await.is_success());
    }
    let creds = srv.credentials(&id).await;
    assert_eq!(creds["CUPS"]["Generation"], 2);
    assert_eq!(creds["CUPS"]["Confirmed"], true);
    let g = &creds["Generations"][0];
    assert_eq!(
        (&g["Generation"], &g["State"], &g["AcceptedAsBackup"]),
        (&1.into(), &"Retired".into(), &true.into())
    );
    let backup_poll = || async {
        let mut bak = srv.station(EUI, &gen1);
        bak.poll(srv.cups()).await.status
    };
    assert_eq!(backup_poll().await, Some(200));

    let path = |g: &str| format!("/wireless-gateways/{id}/credentials/{g}");
    // Not the current generation, not a bad number, not one that is missing.
    let e = srv
        .call(Method::DELETE, &path("2"), None)
        .await
        .unwrap_err();
    assert!(e.starts_with("409") && e.contains("current"), "{e}");
    let e = srv
        .call(Method::DELETE, &path("x%0A1"), None)
        .await
        .unwrap_err();
    assert!(e.starts_with("400") && e.contains(r#""x\n1""#), "{e}");
    let e = srv
        .call(Method::DELETE, &path("9"), None)
        .await
        .unwrap_err();
    assert!(e.starts_with("404"), "{e}");

    // The operator retires it with the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stationkeeper"))
        .args(["gateways", "retire-credential", &format!("{EUI:016x}"), "1"])
        .args(["--api", &format!("http://{}", srv.running.api_addr)])
        .args(["--token", common::server::TOKEN])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("CUPS generation 1"));
    assert_eq!(backup_poll().await, Some(403), "the backup set is refused");
    let creds = srv.credentials(&id).await;
    let cups_generations = creds["Generations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["Service"] == "CUPS")
        .count();
    assert_eq!(cups_generations, 1, "{creds}");
    assert!(
        st.poll(srv.cups()).await.is_success(),
        "the regular set works"
    );

    // While the gateway has not confirmed its current generation, an older one
    // may be all it holds: deleting it is refused.
    srv.issue(&id, "CUPS", "Token").await;
    let e = srv
        .call(Method::DELETE, &path("2"), None)
        .await
        .unwrap_err();
    assert!(e.starts_with("409") && e.contains("not confirmed"), "{e}");
}
