//! The device's LoRaWAN 1.0.x cryptography, written from end-devices.md §1.4, §1.5, §2.1,
//! §2.3 and §2.4: AES-128 (encrypt direction only, as a device has) and AES-CMAC from the
//! `aes`/`cmac` crates, and the A / B0 / key-derivation blocks built here by hand.

use aes::cipher::{BlockEncrypt, KeyInit};
use cmac::Mac;

pub type Key = [u8; 16];

/// Frame direction, the `Dir` octet of the A and B0 blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Up = 0,
    Down = 1,
}

/// AES-128 encrypt of one block.
pub fn aes_encrypt(key: &Key, block: [u8; 16]) -> [u8; 16] {
    let c = aes::Aes128::new(key.into());
    let mut b = block.into();
    c.encrypt_block(&mut b);
    b.into()
}

/// The first four octets of AES-CMAC(key, parts…), in wire order.
pub fn mic(key: &Key, parts: &[&[u8]]) -> [u8; 4] {
    let mut m = <cmac::Cmac<aes::Aes128> as Mac>::new_from_slice(key).expect("16-byte key");
    for p in parts {
        m.update(p);
    }
    let full = m.finalize().into_bytes();
    [full[0], full[1], full[2], full[3]]
}

/// `tag | 00 00 00 00 | Dir | DevAddr LE | FCnt LE | 00 | last`: the shape shared by A_i (tag
/// 01, last = i) and B0 (tag 49, last = message length).
fn frame_block(tag: u8, dir: Dir, dev_addr: u32, fcnt: u32, last: u8) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = tag;
    b[5] = dir as u8;
    b[6..10].copy_from_slice(&dev_addr.to_le_bytes());
    b[10..14].copy_from_slice(&fcnt.to_le_bytes());
    b[15] = last;
    b
}

/// A_i of the FRMPayload keystream (§1.4), i from 1.
pub fn a_block(dir: Dir, dev_addr: u32, fcnt: u32, i: u8) -> [u8; 16] {
    frame_block(0x01, dir, dev_addr, fcnt, i)
}

/// B0 of the data-frame MIC (§1.5). The 1.0.x B0 ignores the ACK bit.
pub fn b0_block(dir: Dir, dev_addr: u32, fcnt: u32, msg_len: usize) -> [u8; 16] {
    let len = u8::try_from(msg_len).expect("a LoRaWAN message is under 256 octets");
    frame_block(0x49, dir, dev_addr, fcnt, len)
}

/// The keystream S = AES(K, A_1) | AES(K, A_2) | …, `len` octets.
pub fn keystream(key: &Key, dir: Dir, dev_addr: u32, fcnt: u32, len: usize) -> Vec<u8> {
    (1..=len.div_ceil(16))
        .flat_map(|i| aes_encrypt(key, a_block(dir, dev_addr, fcnt, i as u8)))
        .take(len)
        .collect()
}

/// FRMPayload encryption; the same XOR decrypts.
pub fn frm_crypt(key: &Key, dir: Dir, dev_addr: u32, fcnt: u32, data: &[u8]) -> Vec<u8> {
    let s = keystream(key, dir, dev_addr, fcnt, data.len());
    data.iter().zip(s).map(|(d, k)| d ^ k).collect()
}

/// MIC of a data frame: CMAC(NwkSKey, B0 | msg), msg = MHDR … FRMPayload (encrypted).
pub fn data_mic(nwk_s_key: &Key, dir: Dir, dev_addr: u32, fcnt: u32, msg: &[u8]) -> [u8; 4] {
    mic(nwk_s_key, &[&b0_block(dir, dev_addr, fcnt, msg.len()), msg])
}

/// A join-accept as the device turns it back into plaintext: the network "encrypted" it with
/// AES decrypt, so the device applies AES **encrypt** to each 16-octet block (§2.3).
pub fn join_accept_open(app_key: &Key, encrypted: &[u8]) -> Result<Vec<u8>, String> {
    if encrypted.len() != 16 && encrypted.len() != 32 {
        return Err(format!(
            "join-accept body of {} octets; it is 16 (no CFList) or 32",
            encrypted.len()
        ));
    }
    Ok(encrypted
        .chunks(16)
        .flat_map(|c| aes_encrypt(app_key, c.try_into().expect("16-octet chunk")))
        .collect())
}

/// The AES input block of a session key: `tag | JoinNonce(3) | NetID(3) | DevNonce(2) | pad`.
pub fn session_key_input(tag: u8, join_nonce: u32, net_id: u32, dev_nonce: u16) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = tag;
    b[1..4].copy_from_slice(&join_nonce.to_le_bytes()[..3]);
    b[4..7].copy_from_slice(&net_id.to_le_bytes()[..3]);
    b[7..9].copy_from_slice(&dev_nonce.to_le_bytes());
    b
}

/// (NwkSKey, AppSKey) of a 1.0.x join (§2.4).
pub fn session_keys(app_key: &Key, join_nonce: u32, net_id: u32, dev_nonce: u16) -> (Key, Key) {
    (
        aes_encrypt(
            app_key,
            session_key_input(0x01, join_nonce, net_id, dev_nonce),
        ),
        aes_encrypt(
            app_key,
            session_key_input(0x02, join_nonce, net_id, dev_nonce),
        ),
    )
}
