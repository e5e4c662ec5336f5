//! The real Rust AWS SDK (`aws-sdk-iotwireless`, `aws-sdk-s3`) against the server,
//! configured with nothing but an endpoint URL and an access key the test creates:
//! the walkthrough "Update gateway firmware using the CUPS service" with the
//! station simulator, multicast and FUOTA operations, error classes,
//! idempotency and paging. The SDK parses every answer with AWS's model, so a
//! shape it cannot read fails here.

mod common;

use aws_sdk_iotwireless as iot;
use aws_sdk_s3 as s3;
use common::aws::AwsClient;
use common::firmware::vector;
use common::server::TestServer;
use hyper::Method;
use iot::types::{
    DlClass, LoRaWanFuotaTask, LoRaWanGateway, LoRaWanGatewayVersion, LoRaWanMulticast,
    LoRaWanUpdateGatewayTaskCreate, ParticipatingGatewaysMulticast, SupportedRfRegion,
    UpdateWirelessGatewayTaskCreate, WirelessGatewayIdType, WirelessGatewayTaskStatus,
};

const EUI: u64 = 0xb827_ebff_fe61_51a8;

fn iot_client(srv: &TestServer, key: &AwsClient) -> iot::Client {
    let creds = iot::config::Credentials::new(&key.key_id, &key.secret, None, None, "test");
    let conf = iot::Config::builder()
        .behavior_version(iot::config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{}", srv.running.api_addr))
        .region(iot::config::Region::new("eu-west-1"))
        .credentials_provider(creds)
        .build();
    iot::Client::from_conf(conf)
}

fn s3_client(srv: &TestServer, key: &AwsClient) -> s3::Client {
    let creds = s3::config::Credentials::new(&key.key_id, &key.secret, None, None, "test");
    let conf = s3::Config::builder()
        .behavior_version(s3::config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{}", srv.running.api_addr))
        .region(s3::config::Region::new("eu-west-1"))
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    s3::Client::from_conf(conf)
}

async fn create_gateway(c: &iot::Client, eui: u64) -> String {
    c.create_wireless_gateway()
        .name(format!("gw-{eui:x}"))
        .lo_ra_wan(
            LoRaWanGateway::builder()
                .gateway_eui(format!("{eui:016x}"))
                .rf_region("EU868")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .id
        .unwrap()
}

#[tokio::test]
async fn cups_walkthrough_with_the_sdk() {
    let srv = TestServer::start().await;
    let key = AwsClient::create(&srv, "sdk").await;
    let c = iot_client(&srv, &key);
    let s3c = s3_client(&srv, &key);

    // The gateway, and the station's first polls.
    let id = create_gateway(&c, EUI).await;
    let mut st = srv.station(EUI, &srv.issue(&id, "CUPS", "Token").await);
    st.write_file("sig-0.key", vector("sig-0.key"));
    st.apply_update_version("v0");
    assert!(st.poll(srv.cups()).await.is_success());
    assert!(st.poll(srv.cups()).await.is_success());

    // 1. The firmware the gateway runs.
    let fw = c
        .get_wireless_gateway_firmware_information()
        .id(&id)
        .send()
        .await
        .unwrap();
    let cur = fw.lo_ra_wan.unwrap().current_version.unwrap();
    assert_eq!(cur.package_version(), Some("v0"));

    // 2. The update file to S3 (as `aws s3 cp`).
    s3c.create_bucket()
        .bucket("iotwirelessfwupdate")
        .send()
        .await
        .unwrap();
    s3c.put_object()
        .bucket("iotwirelessfwupdate")
        .key("update.bin")
        .body(vector("v1.bin").into())
        .send()
        .await
        .unwrap();
    let head = s3c
        .head_object()
        .bucket("iotwirelessfwupdate")
        .key("update.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(vector("v1.bin").len() as i64));

    // 3. The task definition naming the s3 URI.
    srv.register_key(&vector("sig-0.key")).await;
    let to = LoRaWanGatewayVersion::builder()
        .package_version("v1")
        .model(cur.model().unwrap())
        .station(cur.station().unwrap())
        .build();
    let def = c
        .create_wireless_gateway_task_definition()
        .auto_create_tasks(true)
        .name("FirmwareUpdate")
        .update(
            UpdateWirelessGatewayTaskCreate::builder()
                .update_data_source("s3://iotwirelessfwupdate/update.bin")
                .update_data_role("arn:aws:iam::123456789012:role/IoTWirelessFwUpdateRole")
                .lo_ra_wan(
                    LoRaWanUpdateGatewayTaskCreate::builder()
                        .sig_key_crc(488_546_068)
                        .update_signature(common::firmware::b64(&vector("v1.bin.sig-0")))
                        .current_version(cur.clone())
                        .update_version(to)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(def.arn().unwrap().ends_with(def.id().unwrap()));

    // 4. The gateway takes the update; the task goes IN_PROGRESS, then COMPLETED.
    let o = st.poll(srv.cups()).await;
    assert!(o.update_verified());
    srv.settled_task(&id).await;
    let t = c.get_wireless_gateway_task().id(&id).send().await.unwrap();
    assert_eq!(t.status(), Some(&WirelessGatewayTaskStatus::InProgress));
    st.apply_update_version("v1");
    st.poll(srv.cups()).await;
    let t = c.get_wireless_gateway_task().id(&id).send().await.unwrap();
    assert_eq!(t.status(), Some(&WirelessGatewayTaskStatus::Completed));
    assert_eq!(t.wireless_gateway_task_definition_id(), def.id());

    let stats = c
        .get_wireless_gateway_statistics()
        .wireless_gateway_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.wireless_gateway_id(), Some(id.as_str()));
    let ep = c.get_service_endpoint().send().await.unwrap();
    assert!(ep.service_endpoint().unwrap().starts_with("https://"));
}

#[tokio::test]
async fn multicast_fuota_paging_errors_and_idempotency_with_the_sdk() {
    let srv = TestServer::start().await;
    let key = AwsClient::create(&srv, "sdk").await;
    let c = iot_client(&srv, &key);

    // Paging: three gateways, two per page.
    let mut gws = Vec::new();
    for i in 0..3 {
        gws.push(create_gateway(&c, EUI + i).await);
    }
    let p1 = c
        .list_wireless_gateways()
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(p1.wireless_gateway_list().len(), 2);
    let p2 = c
        .list_wireless_gateways()
        .max_results(2)
        .next_token(p1.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(p2.wireless_gateway_list().len(), 1);
    assert!(p2.next_token().is_none());
    let bad = c
        .list_wireless_gateways()
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err();
    assert!(bad.into_service_error().is_validation_exception());

    // Multicast group in AWS's shape: no McAddr, ParticipatingGateways.
    let lw = LoRaWanMulticast::builder()
        .rf_region(SupportedRfRegion::Eu868)
        .dl_class(DlClass::ClassC)
        .participating_gateways(
            ParticipatingGatewaysMulticast::builder()
                .gateway_list(&gws[0])
                .gateway_list(&gws[1])
                .build(),
        )
        .build();
    let g1 = c
        .create_multicast_group()
        .name("grp")
        .lo_ra_wan(lw.clone())
        .client_request_token("tok-grp")
        .send()
        .await
        .unwrap();
    let g2 = c
        .create_multicast_group()
        .name("grp")
        .lo_ra_wan(lw.clone())
        .client_request_token("tok-grp")
        .send()
        .await
        .unwrap();
    assert_eq!(g1.id(), g2.id(), "same token and body: the first answer");
    let conflict = c
        .create_multicast_group()
        .name("other")
        .lo_ra_wan(lw)
        .client_request_token("tok-grp")
        .send()
        .await
        .unwrap_err();
    assert!(conflict.into_service_error().is_conflict_exception());
    let g = c
        .get_multicast_group()
        .id(g1.id().unwrap())
        .send()
        .await
        .unwrap();
    let glw = g.lo_ra_wan().unwrap();
    assert_eq!(glw.dl_class(), Some(&DlClass::ClassC));
    assert_eq!(
        glw.participating_gateways().unwrap().gateway_list().len(),
        2
    );
    assert!(g.created_at().is_some());
    let groups = c.list_multicast_groups().send().await.unwrap();
    assert_eq!(groups.multicast_group_list().len(), 1);

    // Tags: on create, then TagResource / UntagResource / ListTagsForResource.
    let tag = |k: &str, v: &str| iot::types::Tag::builder().key(k).value(v).build().unwrap();
    let tagged = c
        .create_multicast_group()
        .lo_ra_wan(
            LoRaWanMulticast::builder()
                .rf_region(SupportedRfRegion::Eu868)
                .dl_class(DlClass::ClassB)
                .build(),
        )
        .tags(tag("site", "north"))
        .send()
        .await
        .unwrap();
    let arn = tagged.arn().unwrap();
    let keys = |t: &iot::operation::list_tags_for_resource::ListTagsForResourceOutput| {
        t.tags()
            .iter()
            .map(|t| t.key().to_string())
            .collect::<Vec<_>>()
    };
    let t = c
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(keys(&t), ["site"]);
    c.tag_resource()
        .resource_arn(arn)
        .tags(tag("ring", "1"))
        .send()
        .await
        .unwrap();
    c.untag_resource()
        .resource_arn(arn)
        .tag_keys("site")
        .send()
        .await
        .unwrap();
    let t = c
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(keys(&t), ["ring"]);

    // FUOTA task with an s3 image, associated with the group.
    let s3c = s3_client(&srv, &key);
    s3c.create_bucket()
        .bucket("fw-images")
        .send()
        .await
        .unwrap();
    s3c.put_object()
        .bucket("fw-images")
        .key("image.bin")
        .body(vec![7u8; 500].into())
        .send()
        .await
        .unwrap();
    let f = c
        .create_fuota_task()
        .name("fw1")
        .firmware_update_image("s3://fw-images/image.bin")
        .firmware_update_role("arn:aws:iam::123456789012:role/x")
        .lo_ra_wan(
            LoRaWanFuotaTask::builder()
                .rf_region(SupportedRfRegion::Eu868)
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.associate_multicast_group_with_fuota_task()
        .id(f.id().unwrap())
        .multicast_group_id(g1.id().unwrap())
        .send()
        .await
        .unwrap();
    let ft = c.get_fuota_task().id(f.id().unwrap()).send().await.unwrap();
    assert_eq!(ft.name(), Some("fw1"));
    assert!(ft.firmware_update_image().unwrap().starts_with("sha256:"));
    assert!(ft.created_at().is_some());
    let tags = c
        .list_tags_for_resource()
        .resource_arn(f.arn().unwrap())
        .send()
        .await
        .unwrap();
    assert!(tags.tags().is_empty());

    // Error classes.
    let e = c
        .get_wireless_gateway()
        .identifier("00000000-0000-4000-8000-000000000000")
        .identifier_type(WirelessGatewayIdType::WirelessGatewayId)
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_resource_not_found_exception());
    let dup = c
        .create_wireless_gateway()
        .lo_ra_wan(
            LoRaWanGateway::builder()
                .gateway_eui(format!("{EUI:016x}"))
                .rf_region("EU868")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(dup.into_service_error().is_conflict_exception());
    let invalid = c
        .create_wireless_gateway()
        .lo_ra_wan(
            LoRaWanGateway::builder()
                .gateway_eui("0102030405060709")
                .rf_region("XX999")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(invalid.into_service_error().is_validation_exception());
    srv.call(
        Method::PATCH,
        &format!("/access-keys/{}", key.key_id),
        Some(serde_json::json!({"Status": "Inactive"})),
    )
    .await
    .unwrap();
    let denied = c.list_wireless_gateways().send().await.unwrap_err();
    assert!(denied.into_service_error().is_access_denied_exception());
}
