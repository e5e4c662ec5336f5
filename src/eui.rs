//! EUI-64 identifiers: the `Eui` newtype, parsing exactly the forms
//! cups-protocol.md §2.1 lists (ID6, dashed, colon bytes, plain hex, a JSON
//! integer, and a `router-`/`muxs-` prefix before an ID6) and nothing looser (no
//! `+` signs, no surrounding whitespace, no other prefixes), and formatting as ID6
//! (what station sends) or 16 lowercase hex digits (what the operator API shows).
//! Pure: no I/O. Ids are compared as `u64`, never as text. An error quotes the
//! input escaped and clipped, because it comes from the network. One addition
//! holds for the operator API only (its JSON bodies and path identifiers, never
//! the network faces): AWS's GatewayEui pattern also allows bytes separated by
//! single whitespace (`b8 27 eb ff fe 61 51 a8`), see `Eui::parse_api`.

use std::fmt;
use std::str::FromStr;

use crate::logguard::clip;

/// A 64-bit extended unique identifier (gateway router id, DevEUI, JoinEUI).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Eui(pub u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid EUI {input}: {reason}; expected 16 hex digits (b827ebfffe6151a8), dashed bytes (B8-27-EB-FF-FE-61-51-A8) or ID6 (b827:ebff:fe61:51a8)")]
pub struct EuiError {
    /// The input, already clipped and escaped (`logguard::clip`).
    input: String,
    reason: &'static str,
}

impl Eui {
    /// ID6 text as station writes it (uj.c `encId6`): four 16-bit groups, lowercase,
    /// no leading zeros, with the `::` forms checked in station's order.
    pub fn to_id6(self) -> String {
        let g = [
            (self.0 >> 48) as u16,
            (self.0 >> 32) as u16,
            (self.0 >> 16) as u16,
            self.0 as u16,
        ];
        match g {
            [0, 0, 0, d] => format!("::{d:x}"),
            [0, 0, c, d] => format!("::{c:x}:{d:x}"),
            [a, 0, 0, 0] => format!("{a:x}::"),
            [a, b, 0, 0] => format!("{a:x}:{b:x}::"),
            [a, 0, 0, d] => format!("{a:x}::{d:x}"),
            [a, b, c, d] => format!("{a:x}:{b:x}:{c:x}:{d:x}"),
        }
    }

    /// Parses a JSON value that holds a router id: a string in any accepted form, or
    /// a non-negative integer (which station never sends, but TTN accepts).
    pub fn from_json(v: &serde_json::Value) -> Result<Eui, EuiError> {
        match v {
            serde_json::Value::String(s) => s.parse(),
            serde_json::Value::Number(n) => n.as_u64().map(Eui).ok_or_else(|| EuiError {
                input: clip(&n.to_string()),
                reason: "a numeric id must be an unsigned 64-bit integer",
            }),
            other => Err(EuiError {
                input: clip(&other.to_string()),
                reason: "must be a string or an integer",
            }),
        }
    }
}

impl fmt::Display for Eui {
    /// 16 lowercase hex digits, the operator API's form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Eui {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Eui({self})")
    }
}

impl FromStr for Eui {
    type Err = EuiError;

    fn from_str(input: &str) -> Result<Eui, EuiError> {
        let err = |reason| EuiError {
            input: clip(input),
            reason,
        };
        if input.is_empty() {
            return Err(err("empty"));
        }
        // Every form is hex digits and separators (and a label); checking that
        // first keeps out signs, spaces and look-alike Unicode.
        if !input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'-')
        {
            return Err(err("only hex digits, ':' and '-' are allowed"));
        }
        // A `router-`/`muxs-` label before an ID6 (router-::1, muxs-::0) is not
        // part of the id.
        let s = match LABELS.iter().find_map(|l| input.strip_prefix(l)) {
            Some(rest) if matches!(rest.bytes().filter(|&b| b == b':').count(), 2 | 3) => rest,
            Some(_) => return Err(err("a router-/muxs- label only goes before an ID6")),
            None => input,
        };
        let colons = s.bytes().filter(|&b| b == b':').count();
        let dashes = s.bytes().filter(|&b| b == b'-').count();
        if colons > 0 && dashes > 0 {
            return Err(err("mixes dashes and colons"));
        }
        if colons + dashes > 7 {
            return Err(err("more than 7 separators"));
        }
        if colons == 2 || colons == 3 {
            return parse_id6(s).ok_or_else(|| err("malformed ID6"));
        }
        if colons == 7 || dashes == 7 {
            let sep = if colons == 7 { ':' } else { '-' };
            let mut v = 0u64;
            for part in s.split(sep) {
                if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(err("each byte must be 1 or 2 hex digits"));
                }
                let b = u8::from_str_radix(part, 16).map_err(|_| err("not hex"))?;
                v = (v << 8) | u64::from(b);
            }
            return Ok(Eui(v));
        }
        if colons == 0 && dashes == 0 {
            if s.len() > 16 {
                return Err(err("more than 16 hex digits"));
            }
            if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err("not hex"));
            }
            return u64::from_str_radix(s, 16)
                .map(Eui)
                .map_err(|_| err("not hex"));
        }
        Err(err("unrecognised separator layout"))
    }
}

/// The labels station's ecosystem writes before an ID6 (glossary, TTN).
const LABELS: [&str; 2] = ["router-", "muxs-"];

/// ID6: four 16-bit groups with at most one `::` standing for zero groups.
fn parse_id6(s: &str) -> Option<Eui> {
    let group = |g: &str| -> Option<u64> {
        if g.is_empty() || g.len() > 4 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u16::from_str_radix(g, 16).ok().map(u64::from)
    };
    let groups: Vec<u64> = match s.split_once("::") {
        Some((head, tail)) => {
            if tail.contains("::") {
                return None;
            }
            let head: Vec<u64> = if head.is_empty() {
                vec![]
            } else {
                head.split(':').map(group).collect::<Option<_>>()?
            };
            let tail: Vec<u64> = if tail.is_empty() {
                vec![]
            } else {
                tail.split(':').map(group).collect::<Option<_>>()?
            };
            if head.len() + tail.len() > 3 {
                return None;
            }
            let zeros = 4 - head.len() - tail.len();
            head.into_iter()
                .chain(std::iter::repeat_n(0, zeros))
                .chain(tail)
                .collect()
        }
        None => s.split(':').map(group).collect::<Option<_>>()?,
    };
    if groups.len() != 4 {
        return None;
    }
    Some(Eui(groups.iter().fold(0, |acc, g| (acc << 16) | g)))
}

impl serde::Serialize for Eui {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Eui {
    /// An EUI from the operator API: any `FromStr` form, or AWS's eight
    /// whitespace-separated bytes.
    pub fn parse_api(s: &str) -> Result<Eui, EuiError> {
        let parts: Vec<&str> = s.split(char::is_whitespace).collect();
        let aws_spaced = parts.len() == 8
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        if aws_spaced {
            return parts.concat().parse();
        }
        s.parse()
    }
}

/// Deserialization is the operator API's (JSON bodies): `parse_api` for strings.
/// The CUPS and LNS faces parse with `from_json` and `FromStr`.
impl<'de> serde::Deserialize<'de> for Eui {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Eui, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            serde_json::Value::String(s) => Eui::parse_api(s),
            other => Eui::from_json(other),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id6_formatting_follows_station_order() {
        let cases = [
            (0u64, "::0"),
            (1, "::1"),
            (0x0000_0000_0001_0002, "::1:2"),
            (0x0001_0000_0000_0000, "1::"),
            (0x0001_0002_0000_0000, "1:2::"),
            (0x0001_0000_0000_0002, "1::2"),
            (0xb827_ebff_fe61_51a8, "b827:ebff:fe61:51a8"),
            (0x0001_0002_0000_0003, "1:2:0:3"),
            (0x0001_0000_0002_0003, "1:0:2:3"),
        ];
        for (v, text) in cases {
            assert_eq!(Eui(v).to_id6(), text, "{v:#x}");
            assert_eq!(text.parse::<Eui>(), Ok(Eui(v)), "{text}");
        }
    }

    #[test]
    fn every_accepted_form_maps_to_the_same_id() {
        let want = Eui(0xb827_ebff_fe61_51a8);
        for text in [
            "b827:ebff:fe61:51a8",
            "B827:EBFF:FE61:51A8",
            "B8-27-EB-FF-FE-61-51-A8",
            "b8:27:eb:ff:fe:61:51:a8",
            "B827EBFFFE6151A8",
            "router-b827:ebff:fe61:51a8",
            "muxs-b827:ebff:fe61:51a8",
        ] {
            assert_eq!(text.parse::<Eui>(), Ok(want), "{text}");
        }
        assert_eq!("router-::1".parse::<Eui>(), Ok(Eui(1)));
        assert_eq!("muxs-::0".parse::<Eui>(), Ok(Eui(0)));
        assert_eq!("a:b::d".parse::<Eui>(), Ok(Eui(0x000a_000b_0000_000d)));
        assert_eq!("a::c:d".parse::<Eui>(), Ok(Eui(0x000a_0000_000c_000d)));
        assert_eq!("1F".parse::<Eui>(), Ok(Eui(0x1f)));
        // AWS's spaced bytes: the API only.
        assert!("b8 27 eb ff fe 61 51 a8".parse::<Eui>().is_err());
        let want = Ok(Eui(0xb827_ebff_fe61_51a8));
        assert_eq!(Eui::parse_api("b8 27 eb ff fe 61 51 a8"), want);
        let json: Eui = serde_json::from_str("\"B8 27 EB FF FE 61 51 A8\"").unwrap();
        assert_eq!(Ok(json), want);
        assert!(Eui::parse_api("b8 27 eb ff fe 61 51").is_err());
        assert!(Eui::parse_api("b8  27 eb ff fe 61 51 a8").is_err());
        assert_eq!(
            Eui::from_json(&serde_json::json!(13270475163425034664u64)),
            Ok(Eui(13270475163425034664))
        );
    }

    #[test]
    fn malformed_ids_are_rejected_with_a_reason() {
        for bad in [
            "",
            "b827-ebff:fe61:51a8",
            "1:2:3:4:5:6:7:8:9",
            "12345678901234567",
            "zz27ebfffe6151a8",
            "1::2::3",
            "12345:1::",
            ":::",
            "1:2:3:4:5",
            // Only the forms cups-protocol.md §2.1 lists (issue 9).
            "::+a01",
            "+1::",
            "b8-27-eb-ff-fe-61-51-+a",
            "\u{a0}::a01",
            "::a01\u{a0}",
            " b827ebfffe6151a8 ",
            "zz-::a01",
            "Router-::1",
            "router-b827ebfffe6151a8",
            "router-",
            "::\u{ff11}",
        ] {
            let e = bad.parse::<Eui>().unwrap_err();
            assert!(e.to_string().contains("invalid EUI"), "{bad:?}: {e}");
        }
        assert!(Eui::from_json(&serde_json::json!(-1)).is_err());
        assert!(Eui::from_json(&serde_json::json!(true)).is_err());
    }

    #[test]
    fn errors_quote_the_input_escaped_and_clipped() {
        let e = "a\nforged".parse::<Eui>().unwrap_err().to_string();
        assert!(e.contains(r#""a\nforged""#), "{e}");
        let e = "x".repeat(100_000).parse::<Eui>().unwrap_err().to_string();
        assert!(e.len() < 400, "{}", e.len());
        assert!(e.contains("(100000 bytes)"), "{e}");
    }
}
