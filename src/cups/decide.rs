//! The heart of the CUPS face: given what a gateway reported and what the server
//! wants it to have, decide the answer and what the poll proves. Pure logic over
//! plain data: no I/O, no clock, no database handle, so every case is a unit test.

use super::answer::{AnswerHead, Signature};
use super::request::UpdateInfo;
use crate::identity::Service;

/// The generation the server wants a gateway to hold for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub generation: u32,
    pub blob: Vec<u8>,
    pub crc: u32,
}

/// What the server wants this gateway to have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub cups_uri: String,
    /// `None`: the server manages no LNS for this gateway; tc.* is left alone.
    pub tc_uri: Option<String>,
    pub cups_cred: Option<Target>,
    pub tc_cred: Option<Target>,
}

/// A signed update to send in this answer (the bytes themselves are streamed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSection {
    pub key_crc: u32,
    pub signature: Vec<u8>,
    pub len: u32,
}

/// The answer to send and the facts the poll established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub head: AnswerHead,
    /// Generations whose CRC the gateway reported, i.e. that it now holds.
    pub confirmed: Vec<(Service, u32)>,
}

/// Decides the answer. `update` is what the firmware task plan chose to deliver.
/// URIs and credentials ride in the same answer; station commits them before it
/// runs the update (cups-protocol.md §4), so the update runs with them in place.
pub fn decide(report: &UpdateInfo, wanted: &Wanted, update: Option<&UpdateSection>) -> Decision {
    let mut head = AnswerHead::nothing();
    if let Some(u) = update {
        head.signature = Some(Signature {
            key_crc: u.key_crc,
            der: u.signature.clone(),
        });
        head.update_len = u.len;
    }
    let mut confirmed = Vec::new();
    if report.cups_uri.as_deref() != Some(wanted.cups_uri.as_str()) {
        head.cups_uri = Some(wanted.cups_uri.clone());
    }
    if let Some(tc) = &wanted.tc_uri {
        if report.tc_uri.as_deref() != Some(tc.as_str()) {
            head.tc_uri = Some(tc.clone());
        }
    }
    for (service, target, reported, slot) in [
        (
            Service::Cups,
            &wanted.cups_cred,
            report.cups_cred_crc,
            &mut head.cups_cred,
        ),
        (
            Service::Lns,
            &wanted.tc_cred,
            report.tc_cred_crc,
            &mut head.tc_cred,
        ),
    ] {
        if let Some(t) = target {
            if t.crc == reported {
                confirmed.push((service, t.generation));
            } else {
                *slot = Some(t.blob.clone());
            }
        }
    }
    Decision { head, confirmed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eui::Eui;

    fn report(
        cups_uri: Option<&str>,
        tc_uri: Option<&str>,
        cups_crc: u32,
        tc_crc: u32,
    ) -> UpdateInfo {
        UpdateInfo {
            router: Eui(1),
            cups_uri: cups_uri.map(String::from),
            tc_uri: tc_uri.map(String::from),
            cups_cred_crc: cups_crc,
            tc_cred_crc: tc_crc,
            station: "2.0.6(rpi/std) 2022-01-21 10:00:00".into(),
            model: "rpi".into(),
            package: Some("1.0.0".into()),
            keys: vec![],
        }
    }

    fn target(generation: u32, blob: &[u8]) -> Target {
        Target {
            generation,
            blob: blob.to_vec(),
            crc: crc32fast::hash(blob),
        }
    }

    fn wanted() -> Wanted {
        Wanted {
            cups_uri: "https://cups.example.net:8443".into(),
            tc_uri: Some("wss://lns.example.net:8887".into()),
            cups_cred: Some(target(2, b"cups-blob")),
            tc_cred: Some(target(1, b"tc-blob")),
        }
    }

    #[test]
    fn an_up_to_date_gateway_gets_nothing_and_confirms_both() {
        let w = wanted();
        let r = report(
            Some("https://cups.example.net:8443"),
            Some("wss://lns.example.net:8887"),
            crc32fast::hash(b"cups-blob"),
            crc32fast::hash(b"tc-blob"),
        );
        let d = decide(&r, &w, None);
        assert_eq!(d.head, AnswerHead::nothing());
        assert_eq!(d.confirmed, vec![(Service::Cups, 2), (Service::Lns, 1)]);
    }

    #[test]
    fn a_fresh_gateway_gets_uris_and_both_blobs() {
        let d = decide(
            &report(None, None, 0x7BD5_C66F, 0x7BD5_C66F),
            &wanted(),
            None,
        );
        assert_eq!(
            d.head.cups_uri.as_deref(),
            Some("https://cups.example.net:8443")
        );
        assert_eq!(d.head.tc_uri.as_deref(), Some("wss://lns.example.net:8887"));
        assert_eq!(d.head.cups_cred.as_deref(), Some(&b"cups-blob"[..]));
        assert_eq!(d.head.tc_cred.as_deref(), Some(&b"tc-blob"[..]));
        assert!(d.confirmed.is_empty());
    }

    #[test]
    fn only_what_differs_is_sent() {
        let r = report(
            Some("https://old.example.net:443"),
            Some("wss://lns.example.net:8887"),
            crc32fast::hash(b"cups-blob"),
            12345,
        );
        let d = decide(&r, &wanted(), None);
        assert_eq!(
            d.head.cups_uri.as_deref(),
            Some("https://cups.example.net:8443")
        );
        assert_eq!(d.head.tc_uri, None);
        assert_eq!(d.head.cups_cred, None);
        assert_eq!(d.head.tc_cred.as_deref(), Some(&b"tc-blob"[..]));
        assert_eq!(d.confirmed, vec![(Service::Cups, 2)]);
    }

    #[test]
    fn an_update_adds_signature_and_length() {
        let w = wanted();
        let r = report(
            Some(&w.cups_uri),
            w.tc_uri.as_deref(),
            crc32fast::hash(b"cups-blob"),
            crc32fast::hash(b"tc-blob"),
        );
        let u = UpdateSection {
            key_crc: 0x1D1E_9F14,
            signature: vec![0x30; 72],
            len: 136,
        };
        let d = decide(&r, &w, Some(&u));
        assert_eq!(d.head.update_len, 136);
        assert_eq!(d.head.signature.as_ref().unwrap().key_crc, 0x1D1E_9F14);
        assert_eq!(d.head.content_length(), 14 + 4 + 72 + 136);
    }

    #[test]
    fn without_an_lns_the_tc_side_is_left_alone() {
        let w = Wanted {
            tc_uri: None,
            tc_cred: None,
            ..wanted()
        };
        let r = report(
            Some(&w.cups_uri),
            Some("wss://other-lns.example.org:8887"),
            crc32fast::hash(b"cups-blob"),
            1,
        );
        assert_eq!(decide(&r, &w, None).head, AnswerHead::nothing());
    }

    #[test]
    fn no_target_generation_sends_no_blob() {
        let w = Wanted {
            cups_cred: None,
            tc_cred: None,
            ..wanted()
        };
        let d = decide(
            &report(Some(&w.cups_uri), w.tc_uri.as_deref(), 1, 2),
            &w,
            None,
        );
        assert_eq!(d.head, AnswerHead::nothing());
        assert!(d.confirmed.is_empty());
    }
}
