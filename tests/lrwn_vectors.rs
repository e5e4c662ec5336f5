//! The server's LoRaWAN library, `lrwn` 4.13.0 (features `crypto`, `applayer`), against
//! `tests/vectors/lorawan/`: join-request parse + MIC and rebuild, join-accept build +
//! "encrypt" (and open again), session keys, NetID → DevAddr prefix, every data frame
//! (MIC with the full FCnt, FRMPayload decryption, FOpts / FPort 0 MAC decoding,
//! byte-identical rebuild) and every MAC command encoding. The device simulator
//! (`lorawan_vectors.rs`) stays free of lrwn; this file is the "check lrwn" half.

use std::str::FromStr;

use lrwn::{
    keys, AES128Key, CFList, DLSettings, DevAddr, FRMPayload, FType, JoinAcceptPayload,
    JoinRequestPayload, JoinType, MACCommand, MACCommandSet, MACVersion, Major, NetID, Payload,
    PhyPayload, EUI64, MHDR,
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

fn aes_key(v: &Value) -> AES128Key {
    AES128Key::from_str(v.as_str().unwrap()).unwrap()
}

fn eui(v: &Value) -> EUI64 {
    EUI64::from_str(v.as_str().unwrap()).unwrap()
}

fn int(v: &Value) -> u64 {
    v.as_u64().expect("unsigned integer")
}

fn join_cases() -> Vec<Value> {
    vectors("join.json")["cases"].as_array().unwrap().clone()
}

#[test]
fn lrwn_parses_checks_and_rebuilds_the_join_requests() {
    for c in join_cases() {
        let name = c["device"].as_str().unwrap();
        let raw = bytes(&c["join_request"]["phy_payload"]);
        let phy = PhyPayload::from_slice(&raw).unwrap();
        assert!(
            phy.validate_join_request_mic(&aes_key(&c["app_key"]))
                .unwrap(),
            "{name}"
        );
        assert!(
            !phy.validate_join_request_mic(&AES128Key::null()).unwrap(),
            "{name}"
        );
        let want = JoinRequestPayload {
            join_eui: eui(&c["join_eui"]),
            dev_eui: eui(&c["dev_eui"]),
            dev_nonce: int(&c["dev_nonce"]) as u16,
        };
        assert_eq!(phy.payload, Payload::JoinRequest(want), "{name}");

        let mut built = PhyPayload {
            mhdr: MHDR {
                f_type: FType::JoinRequest,
                major: Major::LoRaWANR1,
            },
            payload: Payload::JoinRequest(want),
            mic: None,
        };
        built.set_join_request_mic(&aes_key(&c["app_key"])).unwrap();
        assert_eq!(built.to_vec().unwrap(), raw, "{name}");
    }
}

/// The join-accept of case `c` as the server would build it, before the MIC.
fn join_accept_of(c: &Value) -> PhyPayload {
    let dl = &c["dl_settings"];
    let cflist = bytes(&c["cflist"]);
    PhyPayload {
        mhdr: MHDR {
            f_type: FType::JoinAccept,
            major: Major::LoRaWANR1,
        },
        payload: Payload::JoinAccept(JoinAcceptPayload {
            join_nonce: int(&c["join_nonce"]) as u32,
            home_netid: NetID::from_str(c["net_id"].as_str().unwrap()).unwrap(),
            devaddr: DevAddr::from_str(c["dev_addr"].as_str().unwrap()).unwrap(),
            dl_settings: DLSettings {
                opt_neg: false,
                rx2_dr: int(&dl["rx2_data_rate"]) as u8,
                rx1_dr_offset: int(&dl["rx1_dr_offset"]) as u8,
            },
            rx_delay: int(&c["rx_delay"]) as u8,
            cflist: (!cflist.is_empty())
                .then(|| CFList::from_bytes(cflist.try_into().unwrap()).unwrap()),
        }),
        mic: None,
    }
}

#[test]
fn lrwn_builds_and_encrypts_the_join_accepts_and_opens_them_again() {
    for c in join_cases() {
        let name = c["device"].as_str().unwrap();
        let ja = &c["join_accept"];
        let (app_key, join_eui) = (aes_key(&c["app_key"]), eui(&c["join_eui"]));
        let dev_nonce = int(&c["dev_nonce"]) as u16;

        let mut phy = join_accept_of(&c);
        phy.set_join_accept_mic(JoinType::Join, &join_eui, dev_nonce, &app_key)
            .unwrap();
        assert_eq!(phy.mic.unwrap().to_vec(), bytes(&ja["mic"]), "{name}");
        let Payload::JoinAccept(pl) = &phy.payload else {
            unreachable!()
        };
        let plain = [pl.to_vec().unwrap(), phy.mic.unwrap().to_vec()].concat();
        assert_eq!(plain, bytes(&ja["plaintext_after_mhdr"]), "{name}");
        let clear = phy.clone();
        phy.encrypt_join_accept_payload(&app_key).unwrap();
        assert_eq!(phy.to_vec().unwrap(), bytes(&ja["phy_payload"]), "{name}");

        let mut opened = PhyPayload::from_slice(&bytes(&ja["phy_payload"])).unwrap();
        opened.decrypt_join_accept_payload(&app_key).unwrap();
        assert!(opened
            .validate_join_accept_mic(JoinType::Join, &join_eui, dev_nonce, &app_key)
            .unwrap());
        assert_eq!(opened, clear, "{name}");
    }
}

#[test]
fn lrwn_derives_the_session_keys_and_the_dev_addr_prefix() {
    for c in join_cases() {
        let name = c["device"].as_str().unwrap();
        let net_id = NetID::from_str(c["net_id"].as_str().unwrap()).unwrap();
        let args = (
            aes_key(&c["app_key"]),
            eui(&c["join_eui"]),
            int(&c["join_nonce"]) as u32,
            int(&c["dev_nonce"]) as u16,
        );
        let nwk =
            keys::get_f_nwk_s_int_key(false, &args.0, &net_id, &args.1, args.2, args.3).unwrap();
        let app = keys::get_app_s_key(false, &args.0, &net_id, &args.1, args.2, args.3).unwrap();
        assert_eq!(nwk, aes_key(&c["nwk_s_key"]), "{name}");
        assert_eq!(app, aes_key(&c["app_s_key"]), "{name}");

        assert_eq!(
            u64::from(net_id.netid_type()),
            int(&c["net_id_type"]),
            "{name}"
        );
        assert_eq!(
            net_id.dev_addr_prefix().to_string(),
            c["dev_addr_prefix"],
            "{name}"
        );
        let addr = DevAddr::from_str(c["dev_addr"].as_str().unwrap()).unwrap();
        assert!(addr.is_net_id(net_id), "{name}");
    }
}

fn session() -> (AES128Key, AES128Key) {
    let s = &vectors("data_frames.json")["device_b_session"];
    (aes_key(&s["nwk_s_key"]), aes_key(&s["app_s_key"]))
}

/// The MAC commands of a frame as lrwn decodes them (FOpts, or FPort 0 FRMPayload).
fn mac_commands(pl: &lrwn::MACPayload) -> Vec<MACCommand> {
    match &pl.frm_payload {
        Some(FRMPayload::MACCommandSet(set)) => set.iter().cloned().collect(),
        _ => pl.fhdr.f_opts.iter().cloned().collect(),
    }
}

#[test]
fn lrwn_checks_decrypts_decodes_and_rebuilds_every_data_frame() {
    let (nwk, app) = session();
    for f in vectors("data_frames.json")["frames"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let raw = bytes(&f["phy_payload"]);
        let uplink = f["direction"] == "uplink";
        let fcnt = int(&f["fcnt_full"]) as u32;
        let fport = f["fport"].as_u64().map(|p| p as u8);

        let mut phy = PhyPayload::from_slice(&raw).unwrap();
        let Payload::MACPayload(pl) = &mut phy.payload else {
            panic!("{name}")
        };
        pl.fhdr.f_cnt = fcnt;
        let mic_ok = |phy: &mut PhyPayload| {
            if uplink {
                phy.validate_uplink_data_mic(MACVersion::LoRaWAN1_0, 0, 0, 0, &nwk, &nwk)
                    .unwrap()
            } else {
                phy.validate_downlink_data_mic(MACVersion::LoRaWAN1_0, 0, &nwk)
                    .unwrap()
            }
        };
        assert!(mic_ok(&mut phy), "{name}: MIC with the full FCnt");
        let encrypted = phy.clone();
        phy.decode_f_opts_to_mac_commands().unwrap();
        phy.decrypt_frm_payload(if fport == Some(0) { &nwk } else { &app })
            .unwrap();
        let Payload::MACPayload(pl) = &phy.payload else {
            unreachable!()
        };
        assert_eq!(pl.f_port, fport, "{name}");
        assert_eq!(
            pl.fhdr.f_ctrl.to_le_bytes().unwrap().to_vec(),
            bytes(&f["fctrl"]["byte"]),
            "{name}"
        );

        let cmds = mac_commands(pl);
        assert!(
            cmds.iter().all(|c| !matches!(c, MACCommand::Raw(_))),
            "{name}: {cmds:?}"
        );
        let n_cmds = f["fopts_decoded"].as_array().unwrap().len()
            + if fport == Some(0) {
                f["frm_payload_plain_decoded"].as_array().unwrap().len()
            } else {
                0
            };
        assert_eq!(cmds.len(), n_cmds, "{name}: {cmds:?}");
        let cmd_bytes = MACCommandSet::new(cmds).to_vec().unwrap();
        match (&pl.frm_payload, fport) {
            (Some(FRMPayload::MACCommandSet(_)), Some(0)) => {
                assert_eq!(cmd_bytes, bytes(&f["frm_payload_plain"]), "{name}")
            }
            (Some(FRMPayload::Raw(p)), _) => {
                assert_eq!(*p, bytes(&f["frm_payload_plain"]), "{name}");
                assert_eq!(cmd_bytes, bytes(&f["fopts"]), "{name}");
            }
            (None, None) => assert_eq!(cmd_bytes, bytes(&f["fopts"]), "{name}"),
            other => panic!("{name}: {other:?}"),
        }

        // Rebuild from the decoded frame: encrypt, set the MIC, same bytes.
        let mut again = phy.clone();
        again
            .encrypt_frm_payload(if fport == Some(0) { &nwk } else { &app })
            .unwrap();
        if uplink {
            again
                .set_uplink_data_mic(MACVersion::LoRaWAN1_0, 0, 0, 0, &nwk, &nwk)
                .unwrap();
        } else {
            again
                .set_downlink_data_mic(MACVersion::LoRaWAN1_0, 0, &nwk)
                .unwrap();
        }
        assert_eq!(again.to_vec().unwrap(), raw, "{name}");

        // With only the 16 on-air bits the MIC fails once the counter passed 2^16.
        if fcnt > 0xffff {
            let mut short = encrypted.clone();
            let Payload::MACPayload(pl) = &mut short.payload else {
                unreachable!()
            };
            pl.fhdr.f_cnt = fcnt & 0xffff;
            assert!(!mic_ok(&mut short), "{name}");
        }
    }
}

/// lrwn's view of a command under the vector's field names.
fn lrwn_fields(c: &MACCommand) -> Value {
    let b = u8::from;
    match c {
        MACCommand::LinkCheckAns(p) => json!({"Margin": p.margin, "GwCnt": p.gw_cnt}),
        MACCommand::LinkADRReq(p) => json!({
            "DataRate": p.dr, "TXPower": p.tx_power,
            "ChMask": hex::encode(u16::from_le_bytes(p.ch_mask.to_bytes()).to_be_bytes()),
            "ChMaskCntl": p.redundancy.ch_mask_cntl, "NbTrans": p.redundancy.nb_rep,
        }),
        MACCommand::LinkADRAns(p) => json!({
            "PowerACK": b(p.tx_power_ack), "DataRateACK": b(p.dr_ack), "ChannelMaskACK": b(p.ch_mask_ack)
        }),
        MACCommand::DutyCycleReq(p) => json!({"MaxDCycle": p.max_duty_cycle}),
        MACCommand::RxParamSetupReq(p) => json!({
            "RX1DROffset": p.dl_settings.rx1_dr_offset, "RX2DataRate": p.dl_settings.rx2_dr,
            "Frequency_hz": p.frequency,
        }),
        MACCommand::RxParamSetupAns(p) => json!({
            "RX1DROffsetACK": b(p.rx1_dr_offset_ack), "RX2DataRateACK": b(p.rx2_dr_ack),
            "ChannelACK": b(p.channel_ack),
        }),
        MACCommand::DevStatusAns(p) => json!({"Battery": p.battery, "Margin": p.margin}),
        MACCommand::NewChannelReq(p) => json!({
            "ChIndex": p.ch_index, "Freq_hz": p.freq, "MaxDR": p.max_dr, "MinDR": p.min_dr
        }),
        MACCommand::NewChannelAns(p) => json!({
            "DataRateRangeOK": b(p.dr_range_ok), "ChannelFrequencyOK": b(p.channel_freq_ok)
        }),
        MACCommand::RxTimingSetupReq(p) => json!({"Del": p.delay}),
        MACCommand::DeviceTimeAns(p) => json!({
            "Seconds": p.time_since_gps_epoch.as_secs(),
            "Fraction_1_256": p.time_since_gps_epoch.subsec_nanos() / 3_906_250,
        }),
        _ => json!(null),
    }
}

#[test]
fn lrwn_decodes_and_reencodes_every_mac_command() {
    for c in vectors("mac_commands.json")["commands"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let raw = bytes(&c["hex"]);
        let mut set = MACCommandSet::from_slice(&raw);
        set.decode_from_raw(c["dir"] == "up").unwrap();
        assert_eq!(set.len(), 1, "{name}: {set:?}");
        assert!(!matches!(set[0], MACCommand::Raw(_)), "{name}: {set:?}");
        assert_eq!(set.to_vec().unwrap(), raw, "{name}");
        let mut want = c.get("fields").cloned().unwrap_or(json!(null));
        if let Some(m) = want.as_object_mut() {
            m.retain(|k, _| !["aggregated_duty_cycle", "margin_bits"].contains(&k.as_str()));
        }
        assert_eq!(lrwn_fields(&set[0]), want, "{name}");
    }
}
