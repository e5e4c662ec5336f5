//! The test-side LoRaWAN end-device simulator (`common::lorawan_device`, written from
//! end-devices.md, no server code, no `lrwn`) against every device-side vector in
//! `tests/vectors/lorawan/`: join-requests and their station `jreq` form, join-accepts
//! (open, MIC, keys, CFList), data frames both ways with their A/B0 blocks and station `updf`
//! form, the device's own flow through device B's session, MAC command encodings and how the
//! device answers them, device-side FCntDown, RX1/RX2 tables, GPS time, and the class A
//! `dnmsg` check on the spec's examples. (`ts006.json` is the server's FUOTA business; the
//! device simulator does not speak TS006.)

mod common;

use common::lorawan_device::{
    crypto, fcnt_down_full, frame, mac, region, station_fields, to_jreq, to_updf, DataFrame,
    Device, Dir, DownCmd, MacVersion, Region, UpCmd, Uplink, UplinkMeta,
};
use serde_json::{json, Value};

fn vectors(name: &str) -> Value {
    let path = format!(
        "{}/tests/vectors/lorawan/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read vector file"))
        .expect("parse vector file")
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

fn key(v: &Value) -> [u8; 16] {
    bytes(v).try_into().expect("16-octet key")
}

/// A display-form (MSB first) hex number: EUI, DevAddr, NetID.
fn num(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("hex string"), 16).expect("hex number")
}

fn int(v: &Value) -> u64 {
    v.as_u64().expect("unsigned integer")
}

fn version(v: &Value) -> MacVersion {
    match v.as_str() {
        Some("1.0.2") => MacVersion::V1_0_2,
        Some("1.0.3") => MacVersion::V1_0_3,
        Some("1.0.4") => MacVersion::V1_0_4,
        other => panic!("mac_version {other:?}"),
    }
}

fn region_of(v: &Value) -> Region {
    let s = v.as_str().expect("region");
    if s.starts_with("EU868") {
        Region::Eu868
    } else {
        Region::Us915
    }
}

/// Device `c` of join.json after its join-request.
fn device_of(c: &Value) -> (Device, Vec<u8>) {
    let mut d = Device::otaa(
        region_of(&c["region"]),
        version(&c["mac_version"]),
        num(&c["dev_eui"]),
        num(&c["join_eui"]),
        key(&c["app_key"]),
    );
    let jr = d.join_request_with_nonce(int(&c["dev_nonce"]) as u16);
    (d, jr)
}

fn join_case(name: &str) -> Value {
    vectors("join.json")["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["device"] == name)
        .expect("join case")
        .clone()
}

#[test]
fn join_requests_and_their_station_jreq() {
    for c in vectors("join.json")["cases"].as_array().unwrap() {
        let (_, jr) = device_of(c);
        let v = &c["join_request"];
        assert_eq!(jr[..19], bytes(&v["cmac_input"])[..], "{}", c["device"]);
        assert_eq!(jr[19..], bytes(&v["mic"])[..], "{}", c["device"]);
        assert_eq!(jr, bytes(&v["phy_payload"]), "{}", c["device"]);
        assert_eq!(
            station_fields(&jr).unwrap(),
            v["station_jreq"],
            "{}",
            c["device"]
        );
        let j = to_jreq(&jr).unwrap();
        assert_eq!(
            (j.join_eui, j.dev_eui),
            (num(&c["join_eui"]), num(&c["dev_eui"]))
        );
    }
}

#[test]
fn a_1_0_4_device_counts_its_dev_nonce_and_earlier_ones_do_not_repeat() {
    let c = join_case("A");
    let mut d = Device::otaa(Region::Eu868, MacVersion::V1_0_4, 1, 2, key(&c["app_key"]));
    let nonces: Vec<u16> = (0..3)
        .map(|_| to_jreq(&d.join_request()).unwrap().dev_nonce)
        .collect();
    assert_eq!(nonces, [0, 1, 2]);
    d.join_request_with_nonce(16);
    assert_eq!(to_jreq(&d.join_request()).unwrap().dev_nonce, 17);

    let mut d = Device::otaa(Region::Us915, MacVersion::V1_0_3, 1, 2, key(&c["app_key"]));
    let nonces: std::collections::HashSet<u16> = (0..200)
        .map(|_| to_jreq(&d.join_request()).unwrap().dev_nonce)
        .collect();
    assert_eq!(
        nonces.len(),
        200,
        "random DevNonces never repeat on one device"
    );
}

#[test]
fn join_accepts_open_check_and_give_the_session_keys() {
    for c in vectors("join.json")["cases"].as_array().unwrap() {
        let name = c["device"].as_str().unwrap();
        let (mut d, _) = device_of(c);
        let ja_v = &c["join_accept"];
        let phy = bytes(&ja_v["phy_payload"]);
        assert_eq!(phy.len() as u64, int(&ja_v["length"]), "{name}");

        let ja = d.accept_join(&phy).unwrap();
        assert_eq!(ja.plaintext, bytes(&ja_v["plaintext_after_mhdr"]), "{name}");
        let fields = &ja.plaintext[..ja.plaintext.len() - 4];
        assert_eq!(
            [&[0x20][..], fields].concat(),
            bytes(&ja_v["cmac_input"]),
            "{name}"
        );
        assert_eq!(
            ja.plaintext[ja.plaintext.len() - 4..],
            bytes(&ja_v["mic"])[..],
            "{name}"
        );
        assert_eq!(u64::from(ja.join_nonce), int(&c["join_nonce"]), "{name}");
        assert_eq!(u64::from(ja.net_id), num(&c["net_id"]), "{name}");
        assert_eq!(u64::from(ja.dev_addr), num(&c["dev_addr"]), "{name}");
        let dl = &c["dl_settings"];
        assert_eq!(
            u64::from(ja.rx1_dr_offset),
            int(&dl["rx1_dr_offset"]),
            "{name}"
        );
        assert_eq!(u64::from(ja.rx2_dr), int(&dl["rx2_data_rate"]), "{name}");
        assert_eq!(vec![ja.dl_settings], bytes(&dl["byte"]), "{name}");
        assert_eq!(u64::from(ja.rx_delay), int(&c["rx_delay"]), "{name}");
        assert_eq!(
            ja.cflist.map(Vec::from).unwrap_or_default(),
            bytes(&c["cflist"]),
            "{name}"
        );

        let dev_nonce = int(&c["dev_nonce"]) as u16;
        for (tag, input) in [(1, "nwk_s_key_input"), (2, "app_s_key_input")] {
            let block = crypto::session_key_input(tag, ja.join_nonce, ja.net_id, dev_nonce);
            assert_eq!(block.to_vec(), bytes(&c[input]), "{name} {input}");
        }
        let s = d.session().unwrap();
        assert_eq!(s.nwk_s_key, key(&c["nwk_s_key"]), "{name}");
        assert_eq!(s.app_s_key, key(&c["app_s_key"]), "{name}");
        assert_eq!((s.fcnt_up, s.last_fcnt_down), (0, None), "{name}");
        assert_eq!(s.mac.rx1_dr_offset, ja.rx1_dr_offset, "{name}");
        assert_eq!(s.mac.rx2_dr, ja.rx2_dr, "{name}");
        assert_eq!(s.mac.rx_delay, 1, "{name}");
    }
}

#[test]
fn the_cflist_sets_the_channel_plan() {
    let (mut a, _) = device_of(&join_case("A"));
    a.accept_join(&bytes(&join_case("A")["join_accept"]["phy_payload"]))
        .unwrap();
    let ch = &a.session().unwrap().mac.channels;
    let on: Vec<u32> = ch.enabled_indices().iter().map(|&i| ch.freq[i]).collect();
    assert_eq!(
        on,
        [
            868_100_000,
            868_300_000,
            868_500_000,
            867_100_000,
            867_300_000,
            867_500_000,
            867_700_000,
            867_900_000
        ]
    );

    let (mut b, _) = device_of(&join_case("B"));
    b.accept_join(&bytes(&join_case("B")["join_accept"]["phy_payload"]))
        .unwrap();
    let sb2: Vec<u64> = vectors("rx_windows.json")["sub_band_2"]["uplink_channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(int)
        .collect();
    let on: Vec<u64> = b
        .session()
        .unwrap()
        .mac
        .channels
        .enabled_indices()
        .iter()
        .map(|&i| i as u64)
        .collect();
    assert_eq!(on, sb2);

    let hops: Vec<u32> = (0..10).map(|k| b.hop_freq(k)).collect();
    assert_eq!(hops[..2], [903_900_000, 904_100_000]);
    assert_eq!(hops[8..], [904_600_000, 903_900_000]);

    // 1.0.2 device C: no CFList, all 72 channels stay on until a LinkADRReq.
    let (mut c, _) = device_of(&join_case("C"));
    c.accept_join(&bytes(&join_case("C")["join_accept"]["phy_payload"]))
        .unwrap();
    assert_eq!(
        c.session().unwrap().mac.channels.enabled_indices().len(),
        72
    );
}

#[test]
fn a_join_accept_with_a_bad_mic_wrong_key_or_no_request_is_refused() {
    let c = join_case("A");
    let good = bytes(&c["join_accept"]["phy_payload"]);
    let (mut d, _) = device_of(&c);
    let mut bad = good.clone();
    bad[5] ^= 1;
    assert!(d.accept_join(&bad).unwrap_err().contains("MIC"));
    assert!(d
        .accept_join(&good[..20])
        .unwrap_err()
        .contains("16 (no CFList) or 32"));
    let mut other = Device::otaa(Region::Eu868, MacVersion::V1_0_4, 1, 2, [7; 16]);
    other.join_request();
    assert!(other.accept_join(&good).unwrap_err().contains("MIC"));
    let mut idle = Device::otaa(Region::Eu868, MacVersion::V1_0_4, 1, 2, key(&c["app_key"]));
    assert!(idle
        .accept_join(&good)
        .unwrap_err()
        .contains("no join-request"));

    // 1.0.4: the same JoinNonce again (a replayed join-accept) is refused.
    d.accept_join(&good).unwrap();
    d.join_request();
    assert!(d
        .accept_join(&good)
        .unwrap_err()
        .contains("JoinNonce 42 not greater"));
}

fn frame_vectors() -> (Value, Vec<Value>) {
    let v = vectors("data_frames.json");
    (
        v["device_b_session"].clone(),
        v["frames"].as_array().unwrap().clone(),
    )
}

fn frame_named(name: &str) -> Value {
    frame_vectors()
        .1
        .into_iter()
        .find(|f| f["name"] == name)
        .expect("frame")
}

#[test]
fn data_frames_build_and_parse_with_their_blocks_and_mic() {
    let (s, frames) = frame_vectors();
    let (nwk, app) = (key(&s["nwk_s_key"]), key(&s["app_s_key"]));
    let addr = num(&s["dev_addr"]) as u32;
    for f in &frames {
        let name = f["name"].as_str().unwrap();
        let fcnt = int(&f["fcnt_full"]) as u32;
        let dir = if f["direction"] == "uplink" {
            Dir::Up
        } else {
            Dir::Down
        };
        let plain = bytes(&f["frm_payload_plain"]);
        let fport = f["fport"].as_u64().map(|p| p as u8);
        let k = if fport == Some(0) { &nwk } else { &app };

        for (i, a) in f["a_blocks"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                crypto::a_block(dir, addr, fcnt, i as u8 + 1).to_vec(),
                bytes(a),
                "{name}"
            );
        }
        assert_eq!(
            crypto::keystream(k, dir, addr, fcnt, plain.len()),
            bytes(&f["keystream"]),
            "{name}"
        );
        assert_eq!(
            crypto::frm_crypt(k, dir, addr, fcnt, &plain),
            bytes(&f["frm_payload_encrypted"]),
            "{name}"
        );
        let msg = bytes(&f["mic_input_msg"]);
        assert_eq!(
            crypto::b0_block(dir, addr, fcnt, msg.len()).to_vec(),
            bytes(&f["b0"]),
            "{name}"
        );
        assert_eq!(
            crypto::data_mic(&nwk, dir, addr, fcnt, &msg).to_vec(),
            bytes(&f["mic"]),
            "{name}"
        );

        let want = DataFrame {
            mhdr: bytes(&f["mhdr"])[0],
            dev_addr: addr,
            fctrl: bytes(&f["fctrl"]["byte"])[0],
            fcnt,
            fopts: bytes(&f["fopts"]),
            fport,
            payload: plain,
        };
        let phy = bytes(&f["phy_payload"]);
        assert_eq!(want.encode(&nwk, &app).unwrap(), phy, "{name}");
        assert_eq!(
            DataFrame::decode(&phy, fcnt, &nwk, &app).unwrap(),
            want,
            "{name}"
        );
        assert_eq!(
            u64::from(frame::DataHeader::parse(&phy).unwrap().fcnt16),
            int(&f["fcnt_on_air"])
        );
        if dir == Dir::Up {
            assert_eq!(station_fields(&phy).unwrap(), f["station_updf"], "{name}");
            assert_eq!(
                to_updf(&phy).unwrap().fcnt,
                int(&f["fcnt_on_air"]) as u16,
                "{name}"
            );
        }
        // The MIC covers the full counter: the 16 on-air bits alone fail above 2^16.
        if fcnt > 0xffff {
            assert!(
                DataFrame::decode(&phy, fcnt & 0xffff, &nwk, &app).is_err(),
                "{name}"
            );
        }
        let mut bad = phy.clone();
        *bad.last_mut().unwrap() ^= 0x80;
        assert!(
            DataFrame::decode(&bad, fcnt, &nwk, &app)
                .unwrap_err()
                .contains("MIC"),
            "{name}"
        );
    }
}

/// Device B as data_frames.json finds it: joined (join case B), about to send FCnt 65534,
/// one downlink (FCnt 1) already accepted.
fn device_b() -> Device {
    let (mut d, _) = device_of(&join_case("B"));
    d.accept_join(&bytes(&join_case("B")["join_accept"]["phy_payload"]))
        .unwrap();
    d.set_fcnt_up(65534).unwrap();
    d.session.as_mut().unwrap().last_fcnt_down = Some(1);
    d.battery = 254;
    d.snr_margin = 7;
    d
}

#[test]
fn device_b_runs_its_session_frame_by_frame() {
    let mut d = device_b();
    let adr = |u: Uplink| Uplink { adr: true, ..u };

    // U1: FOpts LinkCheckReq + DeviceTimeReq, FPort 202 AppTimeReq.
    let u1 = frame_named("U1");
    let up = adr(Uplink::unconfirmed(202, &bytes(&u1["frm_payload_plain"])))
        .with_mac(vec![UpCmd::LinkCheckReq, UpCmd::DeviceTimeReq]);
    assert_eq!(d.uplink(&up).unwrap(), bytes(&u1["phy_payload"]));
    let before_d1 = d.clone();

    // D1: LinkADRReq (sub-band 2, ChMaskCntl 5) + DeviceTimeAns + LinkCheckAns, FPort 200.
    let d1 = frame_named("D1");
    let rx = d.downlink(&bytes(&d1["phy_payload"])).unwrap();
    assert_eq!((rx.frame.fcnt, rx.frame.fport), (2, Some(200)));
    assert_eq!(rx.frame.payload, bytes(&d1["frm_payload_plain"]));
    assert!(!rx.confirmed && !rx.ack && !rx.fpending && rx.adr);
    assert_eq!(
        rx.commands,
        [
            DownCmd::LinkAdrReq {
                dr: 3,
                tx_power: 0,
                ch_mask: 0x0002,
                ch_mask_cntl: 5,
                nb_trans: 1
            },
            DownCmd::DeviceTimeAns {
                gps_seconds: 1_400_000_003,
                fraction: 128
            },
            DownCmd::LinkCheckAns {
                margin: 20,
                gw_cnt: 1
            },
        ]
    );
    assert_eq!(d.last_link_check, Some((20, 1)));
    assert_eq!(d.last_device_time, Some((1_400_000_003, 128)));
    let mac = &d.session().unwrap().mac;
    assert_eq!((mac.dr, mac.tx_power, mac.nb_trans), (3, 0, 1));
    let sb2: Vec<usize> = (8..16).chain([65]).collect();
    assert_eq!(mac.channels.enabled_indices(), sb2);
    let ok = UpCmd::LinkAdrAns {
        power: true,
        dr: true,
        ch_mask: true,
    };
    assert_eq!(d.queued_answers(), std::slice::from_ref(&ok));
    // The same frame again is a duplicate FCntDown.
    assert!(d
        .downlink(&bytes(&d1["phy_payload"]))
        .unwrap_err()
        .contains("duplicate"));

    // D1b (the alternative to D1): the 1.0.2 two-command block on FPort 0, FPending.
    let mut alt = before_d1.clone();
    let d1b = frame_named("D1b");
    let rx = alt.downlink(&bytes(&d1b["phy_payload"])).unwrap();
    assert_eq!((rx.frame.fport, rx.fpending), (Some(0), true));
    assert_eq!(rx.commands.len(), 3);
    assert_eq!(alt.session().unwrap().mac.channels.enabled_indices(), sb2);
    assert_eq!(alt.queued_answers(), [ok.clone(), ok.clone()]);

    // U2: confirmed, FCnt 65537 (65535 and 65536 lost), LinkADRAns + DevStatusAns.
    let u2 = frame_named("U2");
    d.set_fcnt_up(65537).unwrap();
    let up = adr(Uplink::confirmed(200, &bytes(&u2["frm_payload_plain"]))).with_mac(vec![
        UpCmd::DevStatusAns {
            battery: 254,
            margin: 7,
        },
    ]);
    assert_eq!(d.uplink(&up).unwrap(), bytes(&u2["phy_payload"]));
    assert!(d.awaiting_ack && d.queued_answers().is_empty());
    assert_eq!(d.retransmit().unwrap(), bytes(&u2["phy_payload"]));

    // D2: the ACK.
    let rx = d
        .downlink(&bytes(&frame_named("D2")["phy_payload"]))
        .unwrap();
    assert!(rx.ack && rx.frame.fport.is_none() && rx.commands.is_empty());
    assert!(!d.awaiting_ack);

    // D3: confirmed, FragSessionStatusReq on 201; U3 carries the ACK.
    let d3 = frame_named("D3");
    let rx = d.downlink(&bytes(&d3["phy_payload"])).unwrap();
    assert!(rx.confirmed);
    assert_eq!(
        (rx.frame.fport, rx.frame.payload.clone()),
        (Some(201), bytes(&d3["frm_payload_plain"]))
    );

    // U3: FPort 0 with the two LinkADRAns of D1b's block, ACK set by the device itself.
    let up = Uplink {
        fport: Some(0),
        adr: true,
        mac: vec![ok.clone(), ok],
        ..Uplink::default()
    };
    assert_eq!(
        d.uplink(&up).unwrap(),
        bytes(&frame_named("U3")["phy_payload"])
    );
    assert_eq!(d.session().unwrap().fcnt_up, 65539);
}

#[test]
fn downlinks_for_others_forged_or_replayed_are_refused_and_change_nothing() {
    let mut d = device_b();
    let d1 = bytes(&frame_named("D1")["phy_payload"]);
    let before = d.session().unwrap().clone();
    let mut forged = d1.clone();
    forged[12] ^= 1;
    assert!(d.downlink(&forged).unwrap_err().contains("MIC"));
    let mut other = d1.clone();
    other[1] ^= 1;
    assert!(d.downlink(&other).unwrap_err().contains("DevAddr"));
    let u1 = bytes(&frame_named("U1")["phy_payload"]);
    assert!(d.downlink(&u1).unwrap_err().contains("uplink"));
    assert_eq!(d.session().unwrap(), &before);
    // After D3 (FCnt 5), D1 (FCnt 2) is older: its 16 bits read as 65538 and the MIC fails.
    d.downlink(&bytes(&frame_named("D3")["phy_payload"]))
        .unwrap();
    assert!(d.downlink(&d1).unwrap_err().contains("MIC"));
}

#[test]
fn fcnt_down_device_side_cases() {
    for c in vectors("fcnt.json")["downlink_cases_device_side"]
        .as_array()
        .unwrap()
    {
        let last = c["last_accepted_fcnt_down"].as_u64().map(|l| l as u32);
        let got = fcnt_down_full(last, int(&c["received_16"]) as u16);
        match c["kind"].as_str().unwrap() {
            "new" => assert_eq!(u64::from(got.unwrap()), int(&c["full_fcnt"]), "{c}"),
            "duplicate" => assert!(got.unwrap_err().contains("duplicate"), "{c}"),
            k => panic!("kind {k}"),
        }
    }
    assert!(fcnt_down_full(Some(u32::MAX - 1), 0)
        .unwrap_err()
        .contains("used up"));
    assert_eq!(fcnt_down_full(Some(u32::MAX - 1), 0xffff), Ok(u32::MAX));
}

/// A decoded command's fields under the vector's names.
fn down_fields(c: &DownCmd) -> Value {
    match *c {
        DownCmd::LinkCheckAns { margin, gw_cnt } => json!({"Margin": margin, "GwCnt": gw_cnt}),
        DownCmd::LinkAdrReq {
            dr,
            tx_power,
            ch_mask,
            ch_mask_cntl,
            nb_trans,
        } => json!({
            "DataRate": dr, "TXPower": tx_power, "ChMask": format!("{ch_mask:04x}"),
            "ChMaskCntl": ch_mask_cntl, "NbTrans": nb_trans,
        }),
        DownCmd::DutyCycleReq { max_dcycle } => json!({"MaxDCycle": max_dcycle}),
        DownCmd::RxParamSetupReq {
            rx1_dr_offset,
            rx2_dr,
            freq,
        } => {
            json!({"RX1DROffset": rx1_dr_offset, "RX2DataRate": rx2_dr, "Frequency_hz": freq})
        }
        DownCmd::NewChannelReq {
            ch_index,
            freq,
            max_dr,
            min_dr,
        } => {
            json!({"ChIndex": ch_index, "Freq_hz": freq, "MaxDR": max_dr, "MinDR": min_dr})
        }
        DownCmd::RxTimingSetupReq { del } => json!({"Del": del}),
        DownCmd::DeviceTimeAns {
            gps_seconds,
            fraction,
        } => {
            json!({"Seconds": gps_seconds, "Fraction_1_256": fraction})
        }
        DownCmd::DevStatusReq => json!(null),
    }
}

fn up_fields(c: &UpCmd) -> Value {
    let b = u8::from;
    match *c {
        UpCmd::LinkAdrAns { power, dr, ch_mask } => {
            json!({"PowerACK": b(power), "DataRateACK": b(dr), "ChannelMaskACK": b(ch_mask)})
        }
        UpCmd::RxParamSetupAns {
            rx1_dr_offset,
            rx2_dr,
            channel,
        } => json!({
            "RX1DROffsetACK": b(rx1_dr_offset), "RX2DataRateACK": b(rx2_dr), "ChannelACK": b(channel)
        }),
        UpCmd::DevStatusAns { battery, margin } => json!({"Battery": battery, "Margin": margin}),
        UpCmd::NewChannelAns { dr_range, freq } => {
            json!({"DataRateRangeOK": b(dr_range), "ChannelFrequencyOK": b(freq)})
        }
        _ => json!(null),
    }
}

/// The vector's fields without its prose-only keys.
fn numeric_fields(v: &Value) -> Value {
    match v.get("fields") {
        None => json!(null),
        Some(Value::Object(m)) => Value::Object(
            m.iter()
                .filter(|(k, _)| !["aggregated_duty_cycle", "margin_bits"].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Some(other) => panic!("fields {other}"),
    }
}

#[test]
fn mac_command_encodings() {
    for c in vectors("mac_commands.json")["commands"].as_array().unwrap() {
        let raw = bytes(&c["hex"]);
        let name = c["name"].as_str().unwrap();
        if c["dir"] == "up" {
            let cmds = UpCmd::decode_all(&raw).unwrap();
            assert_eq!(cmds.len(), 1, "{name}");
            assert_eq!(cmds[0].encode(), raw, "{name}");
            assert_eq!(up_fields(&cmds[0]), numeric_fields(c), "{name}");
        } else {
            let cmds = DownCmd::decode_all(&raw).unwrap();
            assert_eq!(cmds.len(), 1, "{name}");
            assert_eq!(cmds[0].encode(), raw, "{name}");
            assert_eq!(down_fields(&cmds[0]), numeric_fields(c), "{name}");
        }
    }
    assert!(DownCmd::decode_all(&[0x02, 0x14])
        .unwrap_err()
        .contains("truncated"));
    assert!(DownCmd::decode_all(&[0x0b]).unwrap_err().contains("0x0b"));
}

/// Device A (EU868, CFList channels 3–7) answers the EU868 commands of mac_commands.json;
/// the answers are the vector's encodings, sticky ones repeat until a downlink arrives.
#[test]
fn device_a_answers_mac_commands_and_repeats_sticky_answers() {
    let c = join_case("A");
    let (mut d, _) = device_of(&c);
    d.accept_join(&bytes(&c["join_accept"]["phy_payload"]))
        .unwrap();
    d.battery = 254;
    d.snr_margin = -6;
    let cmds: Vec<(String, Vec<u8>)> = vectors("mac_commands.json")["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), bytes(&c["hex"])))
        .collect();
    let hex_of = |prefix: &str| {
        cmds.iter()
            .find(|(n, _)| n.starts_with(prefix))
            .unwrap()
            .1
            .clone()
    };
    let s = d.session().unwrap().clone();
    let mut fcnt_down = 0;
    // MAC commands in FOpts, or as an FPort 0 payload when they exceed 15 octets.
    let mut send_down = |d: &mut Device, cmds: Vec<u8>| {
        let port0 = cmds.len() > 15;
        let f = DataFrame {
            mhdr: frame::MHDR_UNCONFIRMED_DOWN,
            dev_addr: s.dev_addr,
            fctrl: 0,
            fcnt: fcnt_down,
            fopts: if port0 { vec![] } else { cmds.clone() },
            fport: port0.then_some(0),
            payload: if port0 { cmds } else { vec![] },
        };
        fcnt_down += 1;
        d.downlink(&f.encode(&s.nwk_s_key, &s.app_s_key).unwrap())
            .unwrap()
    };
    let fopts_of = |phy: &[u8]| to_updf(phy).unwrap().fopts;

    let down = [
        hex_of("LinkADRReq (EU868"),
        hex_of("DutyCycleReq"),
        hex_of("RXParamSetupReq"),
        hex_of("DevStatusReq"),
        hex_of("NewChannelReq"),
    ]
    .concat();
    assert!(down.len() > 15, "sent on FPort 0");
    send_down(&mut d, down);
    let m = &d.session().unwrap().mac;
    assert_eq!((m.dr, m.tx_power, m.nb_trans, m.max_dcycle), (5, 1, 1, 5));
    assert_eq!((m.rx1_dr_offset, m.rx2_dr, m.rx2_freq), (1, 3, 869_525_000));
    assert_eq!(m.channels.enabled_indices(), (0..8).collect::<Vec<_>>());
    let up = d.uplink(&Uplink::empty()).unwrap();
    let want = [
        hex_of("LinkADRAns"),
        hex_of("DutyCycleAns"),
        hex_of("DevStatusAns"),
        hex_of("NewChannelAns"),
        hex_of("RXParamSetupAns"),
    ]
    .concat();
    assert_eq!(fopts_of(&up), want);
    // RXParamSetupAns is sticky: again in the next uplink, until a downlink arrives.
    let up = d.uplink(&Uplink::unconfirmed(1, b"x")).unwrap();
    assert_eq!(fopts_of(&up), hex_of("RXParamSetupAns"));
    send_down(&mut d, hex_of("RXTimingSetupReq"));
    assert_eq!(d.session().unwrap().mac.rx_delay, 5);
    assert_eq!(
        fopts_of(&d.uplink(&Uplink::empty()).unwrap()),
        hex_of("RXTimingSetupAns")
    );
    assert_eq!(
        fopts_of(&d.uplink(&Uplink::empty()).unwrap()),
        hex_of("RXTimingSetupAns")
    );
    send_down(&mut d, vec![]);
    assert!(fopts_of(&d.uplink(&Uplink::empty()).unwrap()).is_empty());

    // Refusals: an RX2 frequency outside the band, a ChMask with an undefined channel,
    // DR 8 in EU868, a change to fixed channel 0.
    send_down(
        &mut d,
        [
            DownCmd::RxParamSetupReq {
                rx1_dr_offset: 1,
                rx2_dr: 3,
                freq: 915_000_000,
            }
            .encode(),
            DownCmd::LinkAdrReq {
                dr: 5,
                tx_power: 1,
                ch_mask: 0x01ff,
                ch_mask_cntl: 0,
                nb_trans: 1,
            }
            .encode(),
            DownCmd::NewChannelReq {
                ch_index: 0,
                freq: 868_100_000,
                max_dr: 5,
                min_dr: 0,
            }
            .encode(),
        ]
        .concat(),
    );
    let ans = UpCmd::decode_all(&fopts_of(&d.uplink(&Uplink::empty()).unwrap())).unwrap();
    assert_eq!(
        ans,
        [
            UpCmd::LinkAdrAns {
                power: true,
                dr: true,
                ch_mask: false
            },
            UpCmd::NewChannelAns {
                dr_range: false,
                freq: false
            },
            UpCmd::RxParamSetupAns {
                rx1_dr_offset: true,
                rx2_dr: true,
                channel: false
            },
        ]
    );
    assert_eq!(
        d.session().unwrap().mac.rx2_freq,
        869_525_000,
        "a refused request changes nothing"
    );
    assert_eq!(d.session().unwrap().mac.channels.enabled_indices().len(), 8);
}

#[test]
fn answers_too_long_for_fopts_go_on_fport_0() {
    let mut d = device_b();
    let many = vec![
        UpCmd::DevStatusAns {
            battery: 1,
            margin: 2
        };
        6
    ]; // 18 octets
    let phy = d.uplink(&Uplink::empty().with_mac(many.clone())).unwrap();
    let s = d.session().unwrap();
    let f = DataFrame::decode(&phy, 65534, &s.nwk_s_key, &s.app_s_key).unwrap();
    assert_eq!((f.fport, f.fopts.len()), (Some(0), 0));
    assert_eq!(UpCmd::decode_all(&f.payload).unwrap(), many);
    let err = d
        .uplink(&Uplink::unconfirmed(1, b"x").with_mac(many))
        .unwrap_err();
    assert!(err.contains("do not fit FOpts"), "{err}");
}

#[test]
fn rx1_and_rx2_tables() {
    let v = vectors("rx_windows.json");
    for (region, table) in [
        (Region::Eu868, "eu868_rx1_dr"),
        (Region::Us915, "us915_rx1_dr"),
    ] {
        for row in v[table].as_array().unwrap() {
            let r: Vec<u8> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|x| int(x) as u8)
                .collect();
            assert_eq!(region.rx1_dr(r[0], r[1]).unwrap(), r[2], "{table} {row}");
        }
    }
    assert!(Region::Us915.rx1_dr(5, 0).is_err() && Region::Eu868.rx1_dr(5, 6).is_err());
    for row in v["us915_rx1_freq"].as_array().unwrap() {
        let up = int(&row[0]) as u32;
        assert_eq!(
            u64::from(Region::Us915.rx1_freq(up).unwrap()),
            int(&row[1]),
            "{row}"
        );
        assert_eq!(
            region::us915_uplink_channel(up).map(|c| c as u64),
            Some(int(&row[2]))
        );
        assert_eq!(Region::Eu868.rx1_freq(up).unwrap(), up);
    }
    assert_eq!(v["us915_rx1_freq"].as_array().unwrap().len(), 72);
    assert!(Region::Us915.rx1_freq(868_100_000).is_err());
    for (region, name) in [(Region::Eu868, "eu868"), (Region::Us915, "us915")] {
        let d = &v["defaults"][name];
        let (dr, freq) = region.rx2_default();
        assert_eq!(
            (u64::from(dr), u64::from(freq)),
            (int(&d["rx2_dr"]), int(&d["rx2_freq"]))
        );
        assert_eq!(u64::from(region::RECEIVE_DELAY1), int(&d["receive_delay1"]));
        assert_eq!(
            u64::from(region::JOIN_ACCEPT_DELAY1),
            int(&d["join_accept_delay1"])
        );
    }
    let sb2 = &v["sub_band_2"];
    for (up, rx1) in sb2["uplink_hz"]
        .as_array()
        .unwrap()
        .iter()
        .zip(sb2["rx1_hz"].as_array().unwrap())
    {
        assert_eq!(
            u64::from(Region::Us915.rx1_freq(int(up) as u32).unwrap()),
            int(rx1)
        );
    }
}

#[test]
fn gps_time() {
    for c in vectors("gps_time.json")["cases"].as_array().unwrap() {
        let unix = int(&c["unix"]);
        assert_eq!(
            region::leap_seconds_at(unix),
            int(&c["leap_seconds"]),
            "{c}"
        );
        assert_eq!(region::gps_from_unix(unix), int(&c["gps_seconds"]), "{c}");
        assert_eq!(region::unix_from_gps(int(&c["gps_seconds"])), unix, "{c}");
        if let Some(h) = c.get("device_time_ans_hex") {
            let ans = DownCmd::DeviceTimeAns {
                gps_seconds: int(&c["gps_seconds"]) as u32,
                fraction: 0x40,
            };
            assert_eq!(ans.encode(), bytes(h));
        }
    }
}

/// The spec's US915 join-accept `dnmsg` (§3.4) for device B, and what breaks it.
#[test]
fn class_a_dnmsg_check_for_a_join_accept() {
    let (d, _) = device_of(&join_case("B"));
    let up = UplinkMeta {
        dr: 0,
        freq: 904_100_000,
        xtime: 6_473_924_464_549_164,
        rctx: 0,
    };
    let good = json!({"msgtype":"dnmsg","DevEui":"00-80-E1-15-00-00-56-78","dC":0,"diid":4713,
        "pdu":"203a01659f220812e0071100086a1679978232abcd03d359766f5eade994658ab9","RxDelay":5,
        "RX1DR":10,"RX1Freq":923900000,"RX2DR":8,"RX2Freq":923300000,"xtime":6_473_924_464_549_164_i64,"rctx":0});
    d.check_class_a_dnmsg(&up, &good).unwrap();
    for (k, v) in [
        ("RxDelay", json!(1)),
        ("RX1DR", json!(9)),
        ("RX1Freq", json!(904_100_000)),
        ("RX2DR", json!(10)),
        ("RX2Freq", json!(923_900_000)),
        ("xtime", json!(6_473_924_464_549_165_i64)),
        ("rctx", json!(1)),
        ("dC", json!(2)),
        ("DevEui", json!("00-80-E1-15-00-00-12-34")),
        ("pdu", json!("602c1b0a00a00400700e82e2")),
    ] {
        let mut bad = good.clone();
        bad[k] = v;
        let e = d.check_class_a_dnmsg(&up, &bad).unwrap_err();
        assert!(e.contains(k) || k == "pdu", "{k}: {e}");
    }
    let mut no_rx1 = good.clone();
    no_rx1.as_object_mut().unwrap().remove("RX1DR");
    assert!(d.check_class_a_dnmsg(&up, &no_rx1).is_err());
}

/// Device A after its join (RX1DROffset 1, RX2 DR3): an EU868 data answer.
#[test]
fn class_a_dnmsg_check_for_data_uses_the_session_windows() {
    let c = join_case("A");
    let (mut d, _) = device_of(&c);
    d.accept_join(&bytes(&c["join_accept"]["phy_payload"]))
        .unwrap();
    d.uplink(&Uplink::unconfirmed(1, b"hi")).unwrap();
    let s = d.session().unwrap().clone();
    let pdu = DataFrame {
        mhdr: frame::MHDR_UNCONFIRMED_DOWN,
        dev_addr: s.dev_addr,
        fctrl: frame::FCTRL_ACK,
        fcnt: 0,
        fopts: vec![],
        fport: None,
        payload: vec![],
    }
    .encode(&s.nwk_s_key, &s.app_s_key)
    .unwrap();
    let sent = json!({"msgtype":"updf","DR":5,"Freq":868100000,
        "upinfo":{"rctx":3,"xtime":42_000_000,"gpstime":0}});
    let up = UplinkMeta::from_json(&sent.to_string()).unwrap();
    let good = json!({"msgtype":"dnmsg","DevEui":"00-80-E1-15-00-00-12-34","dC":0,"diid":1,
        "pdu":hex::encode(&pdu),"RxDelay":1,"RX1DR":4,"RX1Freq":868100000,"RX2DR":3,
        "RX2Freq":869525000,"xtime":42000000,"rctx":3});
    d.check_class_a_dnmsg(&up, &good).unwrap();
    let mut regional_default = good.clone();
    regional_default["RX2DR"] = json!(0);
    assert!(d
        .check_class_a_dnmsg(&up, &regional_default)
        .unwrap_err()
        .contains("RX2DR"));
    let mut join_timing = good.clone();
    join_timing["RxDelay"] = json!(5);
    assert!(d
        .check_class_a_dnmsg(&up, &join_timing)
        .unwrap_err()
        .contains("RxDelay"));
    let mut to_other = good.clone();
    to_other["pdu"] = json!("602c1b0a00a00400700e82e2");
    assert!(d
        .check_class_a_dnmsg(&up, &to_other)
        .unwrap_err()
        .contains("DevAddr"));
    assert_eq!(mac::encode_down(&[]), Vec::<u8>::new());
}

/// What the LNS station simulator sends for the device's frames (`Session::send_phy`, the
/// path the end-to-end tests use) is exactly the vectors' station forms, and the metadata a
/// class A answer must echo is read back from it. Needs a real server only to connect to.
#[tokio::test]
async fn the_lns_station_simulator_sends_the_vectors_station_forms() {
    use common::lns_station::RadioMeta;
    use common::server::{TestServer, LNS_URI};
    const T: std::time::Duration = std::time::Duration::from_secs(10);

    let srv = TestServer::start().await;
    let region = json!({"RfRegion": "US915", "SubBands": [2]});
    let (_, st) = srv.lns_gateway(0xb827_ebff_fe61_51a8, region).await;
    let (_, mut s) = st.discover_and_connect(LNS_URI).await.unwrap();
    s.recv_router_config(T).await.unwrap();
    let meta = RadioMeta {
        dr: 0,
        freq: 904_100_000,
        ..RadioMeta::default()
    };

    let (_, jr) = device_of(&join_case("B"));
    let mut forms = vec![(jr, join_case("B")["join_request"]["station_jreq"].clone())];
    for f in frame_vectors()
        .1
        .iter()
        .filter(|f| f["direction"] == "uplink")
    {
        forms.push((bytes(&f["phy_payload"]), f["station_updf"].clone()));
    }
    for (phy, want) in forms {
        let sent = s.send_phy(&phy, &meta).await.unwrap();
        let got: Value = serde_json::from_str(&sent.json).unwrap();
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&got[k], v, "{k} in {}", sent.json);
        }
        let up = UplinkMeta::from_sent(&sent);
        assert_eq!(
            (up.dr, up.freq, up.xtime, up.rctx),
            (0, 904_100_000, sent.xtime, 0)
        );
    }
}
