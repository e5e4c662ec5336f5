//! The test-side device's app-layer packages (tests/common/lorawan_device/applayer) against the
//! spec examples and vectors: TS005 keys and D1/U2 (end-devices.md §6.2, data_frames.json),
//! McClassCSessionReq/Ans (fuota.md §4.1), TS003 AppTimeReq/Ans (fuota.md §3), TS004
//! FragSessionSetupReq and vector A of fec_v1.json over multicast frames, TS006 (ts006.json),
//! and the configurable faults. No server here: these check the device the scenario tests
//! (fuota_devices.rs) rely on.

mod common;

use std::collections::HashSet;

use common::lorawan_device::applayer::{
    mc_ke_key, mc_root_key_10x, AppLayer, Corrupt, Faults, Loss, McRx, PORT_CLOCK, PORT_FIRMWARE,
    PORT_FRAG, PORT_MULTICAST,
};
use common::lorawan_device::crypto::{data_mic, frm_crypt};
use common::lorawan_device::{Device, Dir, MacVersion, Region};
use serde_json::Value;

const GEN_APP_KEY: &str = "00112233445566778899aabbccddeeff";
const MC_APP_S_KEY: &str = "95cb4518ee375606735bbacbdce837fa";
const MC_NWK_S_KEY: &str = "c3f6b388bad6c000b23291ad52c11c7b";
const MC_ADDR: u32 = 0x0102_0304;
/// The spec's McGroupSetupReq (D1's FRMPayload).
const MC_GROUP_SETUP: &str = "02000403020119bb8fa40338fc062708aabe7ba4919c00000000ffffffff";
/// McClassCSessionReq group 0, SessionTime 1400000000, TimeOut 9, 869.525 MHz, DR5.
const MC_CLASS_C: &str = "0400004e725309d2ad8405";
const T0: f64 = 1_400_000_000.0;

fn key(h: &str) -> [u8; 16] {
    hex::decode(h).unwrap().try_into().unwrap()
}

fn vectors(path: &str) -> Value {
    let p = format!("{}/tests/vectors/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn dev() -> AppLayer {
    AppLayer::new(Region::Eu868, key(GEN_APP_KEY), 0x0102_0000, 0x1a01, 0.0)
}

/// The next uplink as (port, hex).
fn up(d: &mut AppLayer, now: f64) -> Option<(u8, String)> {
    d.next_uplink(now).map(|(p, b)| (p, hex::encode(b)))
}

fn down(d: &mut AppLayer, port: u8, h: &str, now: f64) {
    d.downlink(port, &hex::decode(h).unwrap(), now).unwrap();
}

/// A device past its first AppTimeReq (which it sends at start).
fn synced() -> AppLayer {
    let mut d = dev();
    assert_eq!(up(&mut d, T0).unwrap().0, PORT_CLOCK);
    d
}

/// A multicast frame as a network builds it (fuota.md §8), with the device's own crypto.
fn mc_frame(fcnt: u32, fport: u8, plain: &[u8]) -> Vec<u8> {
    let enc = frm_crypt(&key(MC_APP_S_KEY), Dir::Down, MC_ADDR, fcnt, plain);
    let mut b = vec![0x60];
    b.extend(MC_ADDR.to_le_bytes());
    b.push(0);
    b.extend(&fcnt.to_le_bytes()[..2]);
    b.push(fport);
    b.extend(enc);
    let mic = data_mic(&key(MC_NWK_S_KEY), Dir::Down, MC_ADDR, fcnt, &b);
    b.extend(mic);
    b
}

#[test]
fn multicast_keys_follow_the_worked_example() {
    let v = vectors("fuota/multicast_crypto.json");
    let k = &v["keys"];
    let root = mc_root_key_10x(&key(k["gen_app_key_lorawan_1_0_x"].as_str().unwrap()));
    assert_eq!(hex::encode(root), k["mc_root_key_1_0"]);
    assert_eq!(hex::encode(mc_ke_key(&root)), k["mc_ke_key_1_0"]);
    // The frame builder above reproduces the spec's frame.
    let f = &v["frames"][0];
    assert_eq!(
        hex::encode(mc_frame(
            5,
            201,
            &hex::decode("0801000001020304050607").unwrap()
        )),
        f["phy_payload_hex"]
    );
}

#[test]
fn d1_sets_up_group_0_and_u2_answers_it() {
    let v = vectors("lorawan/data_frames.json");
    let frames = v["frames"].as_array().unwrap();
    let frame = |n: &str| frames.iter().find(|f| f["name"] == n).unwrap().clone();
    let s = &v["device_b_session"];
    // Device B receives D1 (class A): FPort 200 carries the McGroupSetupReq.
    let addr = u32::from_str_radix(s["dev_addr"].as_str().unwrap(), 16).unwrap();
    let mut b = Device::abp(
        Region::Us915,
        MacVersion::V1_0_3,
        1,
        addr,
        key(s["nwk_s_key"].as_str().unwrap()),
        key(s["app_s_key"].as_str().unwrap()),
    );
    let d1 = frame("D1");
    let rx = b
        .downlink(&hex::decode(d1["phy_payload"].as_str().unwrap()).unwrap())
        .unwrap();
    assert_eq!(rx.frame.fport, Some(200));
    assert_eq!(hex::encode(&rx.frame.payload), MC_GROUP_SETUP);
    let mut d = AppLayer::new(
        Region::Us915,
        key(s["gen_app_key"].as_str().unwrap()),
        1,
        1,
        0.0,
    );
    d.resync_left = 0;
    d.downlink(200, &rx.frame.payload, T0).unwrap();
    let g = d.groups[0].as_ref().expect("group 0 set up");
    assert_eq!(g.mc_addr, MC_ADDR);
    assert_eq!(hex::encode(g.mc_key), "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(hex::encode(g.app_s_key), MC_APP_S_KEY);
    assert_eq!(hex::encode(g.nwk_s_key), MC_NWK_S_KEY);
    assert_eq!((g.min_fcnt, g.max_fcnt), (0, u32::MAX));
    let u2 = frame("U2");
    assert_eq!(
        up(&mut d, T0),
        Some((200, u2["frm_payload_plain"].as_str().unwrap().to_string()))
    );
    assert_eq!(up(&mut d, T0), None, "nothing else queued");
}

#[test]
fn app_time_req_and_ans_follow_the_spec_example() {
    // Device clock 1400037632 at true time 1400037632 + 3 (3 s behind); token 3.
    let mut d = AppLayer::new(Region::Eu868, key(GEN_APP_KEY), 1, 1, -3.0);
    d.token = 3;
    let now = 1_400_037_635.2;
    assert_eq!(up(&mut d, now), Some((202, "0100e1725313".into())));
    assert_eq!(up(&mut d, now), None, "one AppTimeReq at start");
    // A wrong token is ignored; the right one corrects the clock by +3 s.
    down(&mut d, 202, "010300000002", now);
    assert_eq!(d.clock_offset, -3.0);
    down(&mut d, 202, "010300000003", now);
    assert_eq!((d.clock_offset, d.token), (0.0, 4));
    // The spec's AppTimeAns (−3, token 3) no longer matches the token.
    down(&mut d, 202, "01fdffffff03", now);
    assert_eq!(d.clock_offset, 0.0);
    // ForceDeviceResyncReq NbTransmissions 2: two AppTimeReq, token 4.
    down(&mut d, 202, "0302", now);
    assert_eq!(up(&mut d, now).unwrap(), (202, "0103e1725314".into()));
    assert_eq!(up(&mut d, now).unwrap().0, 202);
    assert_eq!(up(&mut d, now), None);
}

#[test]
fn a_device_that_never_asks_sends_app_time_req_only_when_forced() {
    let mut d = dev().with_faults(Faults {
        no_app_time_req: true,
        ..Faults::default()
    });
    assert_eq!(up(&mut d, T0), None);
    down(&mut d, 202, "0301", T0);
    assert_eq!(up(&mut d, T0).unwrap().0, 202);
}

#[test]
fn class_c_session_answers_time_to_start_and_checks_dr_frequency_and_group() {
    let mut d = synced();
    // No group yet: McGroup undefined (0x10), no TimeToStart.
    down(&mut d, 200, MC_CLASS_C, T0 - 10.0);
    assert_eq!(up(&mut d, T0 - 10.0), Some((200, "0410".into())));
    down(&mut d, 200, MC_GROUP_SETUP, T0 - 10.0);
    down(&mut d, 200, MC_CLASS_C, T0 - 10.0);
    // Both answers in one FRMPayload; the spec's McClassCSessionAns `04 00 0a 00 00`.
    assert_eq!(
        up(&mut d, T0 - 10.0),
        Some((200, "02000400 0a0000".replace(' ', "")))
    );
    let s = d.session.clone().unwrap();
    assert_eq!(
        (s.start, s.timeout, s.freq, s.dr),
        (1_400_000_000, 9, 869_525_000, 5)
    );
    assert!(
        !d.listening(869_525_000, 5, T0 - 1.0),
        "not before SessionTime"
    );
    assert!(d.listening(869_525_000, 5, T0 + 511.0));
    assert!(
        !d.listening(869_525_000, 5, T0 + 512.0),
        "2^9 s later: class A again"
    );
    assert!(
        !d.listening(869_525_000, 4, T0 + 1.0),
        "only on the session's DR"
    );
    // A US915 DR (DR error 0x04) at an EU868 device, an out-of-band frequency (0x08), a
    // SessionTime already past (0x10).
    down(&mut d, 200, "0400004e725309d2ad840d", T0 - 10.0);
    down(&mut d, 200, "0400004e72530960e38c05", T0 - 10.0);
    down(&mut d, 200, MC_CLASS_C, T0 + 1.0);
    assert_eq!(
        up(&mut d, T0 - 10.0),
        Some((200, "0404".to_string() + "0408" + "0410"))
    );
    // Group 3 on a device with one slot: IDerror.
    let mut d = dev().with_faults(Faults {
        mc_group_slots: 1,
        ..Faults::default()
    });
    d.resync_left = 0;
    down(&mut d, 200, &MC_GROUP_SETUP.replacen("0200", "0203", 1), T0);
    assert_eq!(up(&mut d, T0), Some((200, "0207".into())));
}

/// A device with group 0, a class C session at T0 (DR5, 869.525 MHz) and the spec's
/// FragSessionSetupReq (M 10, FragSize 8, Padding 5): vector A's session.
fn in_session(faults: Faults) -> AppLayer {
    let mut d = dev().with_faults(faults);
    d.resync_left = 0;
    down(&mut d, 200, MC_GROUP_SETUP, T0 - 10.0);
    down(&mut d, 200, MC_CLASS_C, T0 - 10.0);
    down(&mut d, 201, "02010a0008010501020304", T0 - 10.0);
    d
}

/// Vector A's 20 fragments as DataFragment commands.
fn vector_a() -> (Vec<u8>, Vec<Vec<u8>>) {
    let v = vectors("fuota/fec_v1.json");
    let a = &v["cases"][0];
    let data = hex::decode(a["data_hex"].as_str().unwrap()).unwrap();
    let cmds = a["fragments_hex"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut c = vec![0x08];
            c.extend((i as u16 + 1).to_le_bytes());
            c.extend(hex::decode(f.as_str().unwrap()).unwrap());
            c
        })
        .collect();
    (data, cmds)
}

/// Sends the fragments by multicast from T0 + 1, one a second, FCnt from 1.
fn send_fragments(d: &mut AppLayer, cmds: &[Vec<u8>]) -> Vec<McRx> {
    cmds.iter()
        .enumerate()
        .map(|(i, c)| {
            let phy = mc_frame(i as u32 + 1, 201, c);
            d.multicast(&phy, 869_525_000, 5, T0 + 1.0 + i as f64)
        })
        .collect()
}

#[test]
fn fragments_by_multicast_rebuild_vector_a_and_the_status_tells_the_truth() {
    let mut d = in_session(Faults {
        loss: Loss::Set(HashSet::from([3, 7])),
        ..Faults::default()
    });
    // The setup answers: McGroupSetupAns + McClassCSessionAns on 200, then FragSessionSetupAns.
    assert_eq!(up(&mut d, T0 - 10.0).unwrap().0, 200);
    assert_eq!(up(&mut d, T0 - 10.0), Some((201, "0200".into())));
    let (data, cmds) = vector_a();
    // Before SessionTime the radio is not on the multicast channel.
    let early = mc_frame(99, 201, &cmds[0]);
    assert_eq!(
        d.multicast(&early, 869_525_000, 5, T0 - 1.0),
        McRx::NotListening
    );
    let rx = send_fragments(&mut d, &cmds);
    assert_eq!(rx[2], McRx::Lost(3));
    assert_eq!(
        rx[0],
        McRx::Accepted {
            fport: 201,
            fcnt: 1
        }
    );
    // A replayed frame is refused.
    let again = d.multicast(&mc_frame(1, 201, &cmds[0]), 869_525_000, 5, T0 + 30.0);
    assert!(matches!(again, McRx::Refused(_)), "{again:?}");
    // The same frame twice (a second gateway) is a duplicate.
    let last = mc_frame(20, 201, &cmds[19]);
    assert_eq!(
        d.multicast(&last, 869_525_000, 5, T0 + 31.0),
        McRx::Duplicate
    );
    assert_eq!(
        d.firmware.stored.map(|s| s.0),
        Some(u32::from_le_bytes([0, 1, 2, 3])),
        "image rebuilt; its version is its first four octets: {:?}",
        d.log
    );
    assert_eq!(
        d.frag[0].as_ref().unwrap().image.as_deref(),
        Some(&data[..75]),
        "padding 5 stripped"
    );
    // FragSessionStatusReq (Participants 1, FragIndex 0): 18 received, 0 missing.
    down(&mut d, 201, "0101", T0 + 600.0);
    assert_eq!(up(&mut d, T0 + 600.0), Some((201, "0112000000".into())));

    // Losing everything from the 5th fragment heard: 6 uncoded missing.
    let mut d = in_session(Faults {
        loss: Loss::From(5),
        ..Faults::default()
    });
    d.next_uplink(T0);
    d.next_uplink(T0);
    send_fragments(&mut d, &cmds[..]);
    assert!(d.firmware.stored.is_none());
    down(&mut d, 201, "0101", T0 + 600.0);
    assert_eq!(up(&mut d, T0 + 600.0), Some((201, "0104000600".into())));
    // Participants 0: a device missing fragments still answers; a complete one does not.
    down(&mut d, 201, "0100", T0 + 600.0);
    assert!(d.next_uplink(T0 + 600.0).is_some());
}

#[test]
fn frag_session_setup_refusals() {
    // Not_enough_memory by fault, FragAlgo 1, too much memory asked.
    let mut d = in_session(Faults {
        frag_setup_status: 0x02,
        ..Faults::default()
    });
    d.next_uplink(T0);
    assert_eq!(up(&mut d, T0), Some((201, "0202".into())));
    assert!(d.frag[0].is_none(), "no session after a refusal");
    down(&mut d, 201, "02110a0008090501020304", T0);
    down(&mut d, 201, "0221ffffff010501020304", T0);
    // The fault's bit stays in every answer: FragIndex 1 FragAlgo 1 → 0x43, FragIndex 2
    // with 65535 × 255 octets → 0x82.
    assert_eq!(up(&mut d, T0), Some((201, "0243".to_string() + "0282")));
}

#[test]
fn ts006_answers_match_the_vectors() {
    let v = vectors("lorawan/ts006.json");
    let hex_of = |name: &str| {
        v["commands"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))["hex"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut d = AppLayer::new(Region::Eu868, key(GEN_APP_KEY), 0x0201_0000, 0x1a01, 0.0);
    d.resync_left = 0;
    let at = 1_400_000_010.0;
    let ask = |d: &mut AppLayer, req: &str| {
        down(d, PORT_FIRMWARE, &hex_of(req), at);
        up(d, at).map(|(p, h)| {
            assert_eq!(p, 203);
            h
        })
    };
    assert_eq!(
        ask(&mut d, "PackageVersionReq"),
        Some(hex_of("PackageVersionAns"))
    );
    assert_eq!(ask(&mut d, "DevVersionReq"), Some(hex_of("DevVersionAns")));
    assert_eq!(
        ask(&mut d, "DevRebootTimeReq (at GPS 1400003600)"),
        Some(hex_of("DevRebootTimeAns (reboot in 3590 s)"))
    );
    assert_eq!(
        ask(&mut d, "DevRebootTimeReq (cancel)"),
        Some("02ffffffff".into())
    );
    assert_eq!(
        ask(&mut d, "DevRebootCountdownReq (in 600 s)"),
        Some(hex_of("DevRebootCountdownAns (600 s)"))
    );
    assert_eq!(
        ask(&mut d, "DevUpgradeImageReq"),
        Some(hex_of("DevUpgradeImageAns (no image)"))
    );
    assert_eq!(
        ask(&mut d, "DevDeleteImageReq (version 0x02010000)"),
        Some(hex_of("DevDeleteImageAns (ErrorNoValidImage)"))
    );
    // The answer says the seconds left when it goes out, 3 s after the request here.
    down(&mut d, PORT_FIRMWARE, "030a0000", at);
    assert_eq!(up(&mut d, at + 3.0), Some((203, "03070000".into())));
    // A reboot that comes before the next uplink takes the unsent answer with it.
    down(&mut d, PORT_FIRMWARE, "03050000", at);
    assert_eq!(up(&mut d, at + 6.0), None);
    assert_eq!(d.firmware.reboots, 1);
    // A reboot in the past cannot be programmed.
    down(&mut d, PORT_FIRMWARE, "02105c7253", 1_400_004_000.0);
    assert_eq!(
        up(&mut d, 1_400_004_000.0),
        Some((203, "0200000000".into()))
    );
}

#[test]
fn a_rebuilt_image_is_installed_at_the_reboot_unless_the_install_fails() {
    for keeps_old in [false, true] {
        let mut d = in_session(Faults {
            reboot_keeps_old_version: keeps_old,
            unsolicited_version_after_reboot: true,
            ..Faults::default()
        });
        d.next_uplink(T0);
        d.next_uplink(T0);
        let (_, cmds) = vector_a();
        send_fragments(&mut d, &cmds);
        let at = T0 + 600.0;
        down(&mut d, PORT_FIRMWARE, "04", at);
        assert_eq!(up(&mut d, at), Some((203, "040300010203".into())));
        down(&mut d, PORT_FIRMWARE, "030a0000", at);
        assert_eq!(up(&mut d, at), Some((203, "030a0000".into())));
        assert_eq!(d.firmware.reboots, 0);
        // 10 s later it reboots; the unsolicited DevVersionAns goes out.
        let want = if keeps_old {
            0x0102_0000u32
        } else {
            0x0302_0100
        };
        let ans = format!("01{}011a0000", hex::encode(want.to_le_bytes()));
        assert_eq!(up(&mut d, at + 10.0), Some((203, ans.clone())));
        assert_eq!(d.firmware.reboots, 1);
        assert!(d.session.is_none() && d.frag[0].is_none(), "RAM state lost");
        down(&mut d, PORT_FIRMWARE, "01", at + 20.0);
        assert_eq!(up(&mut d, at + 20.0), Some((203, ans)));
        down(&mut d, PORT_FIRMWARE, "04", at + 20.0);
        assert_eq!(
            up(&mut d, at + 20.0),
            Some((203, "0400".into())),
            "installed or gone"
        );
    }
}

#[test]
fn ignored_requests_and_spoiled_answers() {
    let mut d = in_session(Faults {
        ignore: HashSet::from([(PORT_MULTICAST, 0x04)]),
        ..Faults::default()
    });
    assert_eq!(
        up(&mut d, T0 - 10.0),
        Some((200, "0200".into())),
        "no McClassCSessionAns"
    );
    assert!(d.session.is_none());

    let spoiled = |how: Corrupt, port: u8, cid: u8| {
        let mut d = in_session(Faults {
            corrupt: Some((port, cid, how)),
            ..Faults::default()
        });
        let a = up(&mut d, T0 - 10.0).unwrap();
        let b = up(&mut d, T0 - 10.0).unwrap();
        (a, b)
    };
    assert_eq!(
        spoiled(Corrupt::WrongCid(0x07), 201, 0x02).1,
        (201, "0700".into())
    );
    assert_eq!(
        spoiled(Corrupt::Truncate(1), 200, 0x04).0,
        (200, "0200".to_string() + "04000a00")
    );
    assert_eq!(
        spoiled(Corrupt::Oversize(2), 201, 0x02).1,
        (201, "0200eeee".into())
    );
    assert_eq!(
        spoiled(Corrupt::Duplicate, 200, 0x02).0,
        (200, "0200".to_string() + "0200" + "04000a0000")
    );
    assert_eq!(
        spoiled(Corrupt::OtherIndex, 201, 0x02).1,
        (201, "0240".into())
    );
    assert_eq!(
        spoiled(Corrupt::OtherIndex, 200, 0x02).0,
        (200, "0201".to_string() + "04000a0000")
    );
    // Only once: the next answer of that kind is right.
    let mut d = in_session(Faults {
        corrupt: Some((201, 0x02, Corrupt::WrongCid(0x07))),
        ..Faults::default()
    });
    d.next_uplink(T0);
    d.next_uplink(T0);
    down(&mut d, 201, "02010a0008010501020304", T0);
    assert_eq!(up(&mut d, T0), Some((201, "0200".into())));
    // An unknown CID stops the parse; the commands before it are answered.
    down(&mut d, 203, "01ff04", T0);
    assert_eq!(up(&mut d, T0).unwrap().1.len(), 18, "only DevVersionAns");
    // A truncated request is dropped.
    down(&mut d, PORT_FRAG, "020100", T0);
    assert_eq!(up(&mut d, T0), None);
}
