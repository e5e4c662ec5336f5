//! Property test: whatever answer the server's encoder writes, station's reading
//! of it (the simulator's independent parser) gives back every section as it went
//! in, consumes exactly Content-Length bytes, and truncation is always detected.

mod common;

use common::station::answer::parse_answer;
use proptest::prelude::*;
use stationkeeper::cups::answer::{AnswerHead, Signature};

fn opt_bytes(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 1..max))
}

fn opt_uri() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[a-z]{1,8}://[a-z0-9.]{1,100}:[0-9]{1,5}")
}

fn head_and_update() -> impl Strategy<Value = (AnswerHead, Vec<u8>)> {
    (
        opt_uri(),
        opt_uri(),
        opt_bytes(3000),
        opt_bytes(3000),
        prop::option::of((any::<u32>(), prop::collection::vec(any::<u8>(), 4..=128))),
        prop::collection::vec(any::<u8>(), 0..4000),
    )
        .prop_map(|(cu, tu, cc, tc, sig, update)| {
            let head = AnswerHead {
                cups_uri: cu,
                tc_uri: tu,
                cups_cred: cc,
                tc_cred: tc,
                signature: sig.map(|(key_crc, der)| Signature { key_crc, der }),
                update_len: update.len() as u32,
            };
            (head, update)
        })
}

proptest! {
    #[test]
    fn every_encoded_answer_parses_back_section_by_section((head, update) in head_and_update()) {
        prop_assert!(head.validate().is_ok());
        let mut body = head.encode();
        body.extend_from_slice(&update);
        prop_assert_eq!(body.len() as u64, head.content_length());

        let a = parse_answer(&body).expect("station parses what we encode");
        prop_assert_eq!(a.consumed, body.len());
        prop_assert_eq!(a.cups_uri, head.cups_uri.clone().map(String::into_bytes));
        prop_assert_eq!(a.tc_uri, head.tc_uri.clone().map(String::into_bytes));
        prop_assert_eq!(a.cups_cred, head.cups_cred.clone());
        prop_assert_eq!(a.tc_cred, head.tc_cred.clone());
        prop_assert_eq!(a.key_crc, head.signature.as_ref().map(|s| s.key_crc));
        prop_assert_eq!(a.signature, head.signature.as_ref().map(|s| s.der.clone()));
        prop_assert_eq!(a.update, (!update.is_empty()).then_some(update));

        // Any truncation is an error for station, never a silently shorter answer.
        if body.len() > 1 {
            let cut = body.len() / 2;
            prop_assert!(parse_answer(&body[..cut]).is_err());
        }
    }
}
