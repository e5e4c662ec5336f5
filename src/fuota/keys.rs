//! TS005 multicast keys and the multicast LoRaWAN downlink frame (spec/fuota.md §5, §8):
//! McRootKey / McKEKey derivation, the encrypted McKey of McGroupSetupReq, McAppSKey /
//! McNwkSKey from McKey and McAddr, and an unconfirmed-data-down PHYPayload with FRMPayload
//! encrypted under McAppSKey and the MIC under McNwkSKey. All crypto is lrwn's
//! (`applayer::multicastsetup::v1` and `PhyPayload`). Keys are plain 16-byte arrays in the
//! usual display order; McAddr is the 32-bit display value (`0x01020304` goes on air as
//! `04 03 02 01`).

use lrwn::applayer::multicastsetup::v1 as ts005;
use lrwn::{
    AES128Key, DevAddr, FCtrl, FRMPayload, FType, MACCommandSet, MACPayload, MACVersion, Major,
    Payload, PhyPayload, FHDR, MHDR,
};

/// An AES-128 key, bytes in display order.
pub type Key = [u8; 16];

/// Which LoRaWAN version the device's McRootKey derivation follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKeySource {
    /// LoRaWAN 1.0.x device: McRootKey = aes128_encrypt(GenAppKey, 00 ‖ pad16).
    GenAppKey10(Key),
    /// LoRaWAN 1.1 device: McRootKey = aes128_encrypt(AppKey, 20 ‖ pad16).
    AppKey11(Key),
}

fn key(k: &Key) -> AES128Key {
    AES128Key::from_bytes(*k)
}

fn dev_addr(mc_addr: u32) -> DevAddr {
    DevAddr::from_be_bytes(mc_addr.to_be_bytes())
}

// lrwn's key helpers return Result only because of a 16-byte slice conversion that cannot fail.
const INFALLIBLE: &str = "AES-128 of a 16-byte block is 16 bytes";

/// McRootKey of a device.
pub fn mc_root_key(source: RootKeySource) -> Key {
    match source {
        RootKeySource::GenAppKey10(k) => ts005::get_mc_root_key_for_gen_app_key(key(&k)),
        RootKeySource::AppKey11(k) => ts005::get_mc_root_key_for_app_key(key(&k)),
    }
    .expect(INFALLIBLE)
    .to_bytes()
}

/// McKEKey = aes128_encrypt(McRootKey, 00 ‖ pad16).
pub fn mc_ke_key(mc_root_key: &Key) -> Key {
    ts005::get_mc_ke_key(key(mc_root_key))
        .expect(INFALLIBLE)
        .to_bytes()
}

/// McKey_encrypted for McGroupSetupReq = aes128_decrypt(McKEKey, McKey).
pub fn encrypt_mc_key(mc_ke_key: &Key, mc_key: &Key) -> Key {
    ts005::encrypt_mc_key(key(mc_ke_key), key(mc_key))
}

/// McKey_encrypted for one device, straight from its root-key source.
pub fn mc_key_encrypted_for(source: RootKeySource, mc_key: &Key) -> Key {
    encrypt_mc_key(&mc_ke_key(&mc_root_key(source)), mc_key)
}

/// The session keys of a multicast group.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct McSessionKeys {
    /// Encrypts FRMPayload (FPort > 0).
    pub mc_app_s_key: Key,
    /// Computes the MIC.
    pub mc_nwk_s_key: Key,
}

impl std::fmt::Debug for McSessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("McSessionKeys { .. }")
    }
}

/// McAppSKey = aes128_encrypt(McKey, 01 ‖ McAddr LE ‖ pad16), McNwkSKey likewise with 02.
pub fn mc_session_keys(mc_key: &Key, mc_addr: u32) -> McSessionKeys {
    McSessionKeys {
        mc_app_s_key: ts005::get_mc_app_s_key(key(mc_key), dev_addr(mc_addr))
            .expect(INFALLIBLE)
            .to_bytes(),
        mc_nwk_s_key: ts005::get_mc_net_s_key(key(mc_key), dev_addr(mc_addr))
            .expect(INFALLIBLE)
            .to_bytes(),
    }
}

/// PHYPayload of one multicast downlink: MHDR 0x60 (unconfirmed data down), DevAddr = McAddr,
/// FCtrl 0 (no FOpts), the low 16 bits of `f_cnt` on air (all 32 bits in the A and B0
/// blocks), `f_port` (201 for FUOTA fragments; must be > 0, as the payload is encrypted
/// with McAppSKey), FRMPayload = `plaintext` encrypted, MIC. The frame is identical for
/// LoRaWAN 1.0.x and 1.1 devices (ConfFCnt is 0 in multicast).
///
/// # Panics
/// If `f_port` is 0 (multicast carries no MAC commands).
pub fn multicast_data_frame(
    keys: &McSessionKeys,
    mc_addr: u32,
    f_cnt: u32,
    f_port: u8,
    plaintext: &[u8],
) -> Vec<u8> {
    assert!(f_port > 0, "multicast FPort must be > 0");
    let mut phy = PhyPayload {
        mhdr: MHDR {
            f_type: FType::UnconfirmedDataDown,
            major: Major::LoRaWANR1,
        },
        payload: Payload::MACPayload(MACPayload {
            fhdr: FHDR {
                devaddr: dev_addr(mc_addr),
                f_ctrl: FCtrl::default(),
                f_cnt,
                f_opts: MACCommandSet::new(Vec::new()),
            },
            f_port: Some(f_port),
            frm_payload: Some(FRMPayload::Raw(plaintext.to_vec())),
        }),
        mic: None,
    };
    phy.encrypt_frm_payload(&key(&keys.mc_app_s_key))
        .expect("a MACPayload with a raw FRMPayload");
    phy.set_downlink_data_mic(MACVersion::LoRaWAN1_0, 0, &key(&keys.mc_nwk_s_key))
        .expect("a MACPayload");
    phy.to_vec().expect("a raw FRMPayload and no FOpts encode")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/fuota/multicast_crypto.json"
    ));

    fn doc() -> Value {
        serde_json::from_str(VECTORS).unwrap()
    }

    fn k(v: &Value) -> Key {
        hex::decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    }

    #[test]
    fn multicast_crypto_vectors_keys() {
        let d = doc();
        let ks = &d["keys"];
        let mc_addr = u32::from_str_radix(ks["mc_addr"].as_str().unwrap(), 16).unwrap();
        assert_eq!(hex::encode(mc_addr.to_le_bytes()), ks["mc_addr_on_air_le"]);
        let mc_key = k(&ks["mc_key"]);
        for (source, sfx) in [
            (
                RootKeySource::GenAppKey10(k(&ks["gen_app_key_lorawan_1_0_x"])),
                "1_0",
            ),
            (
                RootKeySource::AppKey11(k(&ks["app_key_lorawan_1_1"])),
                "1_1",
            ),
        ] {
            let root = mc_root_key(source);
            assert_eq!(hex::encode(root), ks[format!("mc_root_key_{sfx}")], "{sfx}");
            let ke = mc_ke_key(&root);
            assert_eq!(hex::encode(ke), ks[format!("mc_ke_key_{sfx}")], "{sfx}");
            let enc = encrypt_mc_key(&ke, &mc_key);
            assert_eq!(
                hex::encode(enc),
                ks[format!("mc_key_encrypted_{sfx}")],
                "{sfx}"
            );
            assert_eq!(mc_key_encrypted_for(source, &mc_key), enc);
        }
        let sk = mc_session_keys(&mc_key, mc_addr);
        assert_eq!(hex::encode(sk.mc_app_s_key), ks["mc_app_s_key"]);
        assert_eq!(hex::encode(sk.mc_nwk_s_key), ks["mc_nwk_s_key"]);
        assert_eq!(format!("{sk:?}"), "McSessionKeys { .. }");
    }

    #[test]
    fn multicast_crypto_vectors_frames() {
        let d = doc();
        let ks = &d["keys"];
        let mc_addr = u32::from_str_radix(ks["mc_addr"].as_str().unwrap(), 16).unwrap();
        let sk = mc_session_keys(&k(&ks["mc_key"]), mc_addr);
        let frames = d["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 2);
        for f in frames {
            let f_cnt = f["f_cnt"].as_u64().unwrap() as u32;
            let f_port = f["f_port"].as_u64().unwrap() as u8;
            let plain = hex::decode(f["plaintext_hex"].as_str().unwrap()).unwrap();
            let phy = multicast_data_frame(&sk, mc_addr, f_cnt, f_port, &plain);
            assert_eq!(hex::encode(&phy), f["phy_payload_hex"], "FCnt {f_cnt}");
            let n = plain.len();
            assert_eq!(hex::encode(&phy[9..9 + n]), f["frm_payload_encrypted_hex"]);
            assert_eq!(hex::encode(&phy[9 + n..]), f["mic_hex"]);
            // B0 as the spec writes it (§8), for the record
            let mut b0 = [0u8; 16];
            b0[0] = 0x49;
            b0[5] = 0x01;
            b0[6..10].copy_from_slice(&mc_addr.to_le_bytes());
            b0[10..14].copy_from_slice(&f_cnt.to_le_bytes());
            b0[15] = (phy.len() - 4) as u8;
            assert_eq!(hex::encode(b0), f["b0_hex"]);
            // lrwn decodes, verifies the MIC and decrypts it back
            let mut back = PhyPayload::from_slice(&phy).unwrap();
            if let Payload::MACPayload(pl) = &mut back.payload {
                pl.fhdr.f_cnt = f_cnt; // restore the upper 16 bits, as a device does
            }
            assert!(back
                .validate_downlink_data_mic(MACVersion::LoRaWAN1_0, 0, &key(&sk.mc_nwk_s_key))
                .unwrap());
            back.decrypt_frm_payload(&key(&sk.mc_app_s_key)).unwrap();
            match back.payload {
                Payload::MACPayload(MACPayload {
                    frm_payload: Some(FRMPayload::Raw(b)),
                    ..
                }) => assert_eq!(b, plain),
                other => panic!("{other:?}"),
            }
        }
    }
}
