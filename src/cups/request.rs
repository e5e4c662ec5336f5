//! The `POST /update-info` request body (cups-protocol.md §2), parsed once into
//! `UpdateInfo`. Station always sends all nine keys; `cupsUri`, `tcUri` and
//! `package` may be `null`, CRCs are unsigned 32-bit, and extra keys are tolerated
//! because other station versions add some. Errors quote client input only
//! escaped and capped (`logguard`). Pure: no I/O.

use crate::eui::Eui;
use serde::Deserialize;

/// What a gateway reports about itself on every poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateInfo {
    pub router: Eui,
    pub cups_uri: Option<String>,
    pub tc_uri: Option<String>,
    pub cups_cred_crc: u32,
    pub tc_cred_crc: u32,
    pub station: String,
    pub model: String,
    pub package: Option<String>,
    pub keys: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("body is not the JSON object station sends: {0}")]
    Json(String),
    #[error("field `router`: {0}")]
    Router(String),
}

/// The raw shape. `Option<Option<T>>` distinguishes a missing key (an error) from
/// an explicit `null` (allowed where the spec says station writes it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    router: serde_json::Value,
    #[serde(deserialize_with = "present")]
    cups_uri: Option<Option<String>>,
    #[serde(deserialize_with = "present")]
    tc_uri: Option<Option<String>>,
    cups_cred_crc: u32,
    tc_cred_crc: u32,
    station: String,
    model: String,
    #[serde(deserialize_with = "present")]
    package: Option<Option<String>>,
    keys: Vec<u32>,
}

fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl UpdateInfo {
    pub fn parse(body: &[u8]) -> Result<UpdateInfo, RequestError> {
        // serde's messages quote what they choke on: escape and cap them.
        let raw: Raw = serde_json::from_slice(body)
            .map_err(|e| RequestError::Json(crate::logguard::escaped(&e.to_string())))?;
        let missing = |name: &str| RequestError::Json(format!("missing field `{name}`"));
        Ok(UpdateInfo {
            router: Eui::from_json(&raw.router).map_err(|e| RequestError::Router(e.to_string()))?,
            cups_uri: raw.cups_uri.ok_or_else(|| missing("cupsUri"))?,
            tc_uri: raw.tc_uri.ok_or_else(|| missing("tcUri"))?,
            cups_cred_crc: raw.cups_cred_crc,
            tc_cred_crc: raw.tc_cred_crc,
            station: raw.station,
            model: raw.model,
            package: raw.package.ok_or_else(|| missing("package"))?,
            keys: raw.keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"{"router":"b827:ebff:fe61:51a8","cupsUri":"https://cups.example.com:443","tcUri":null,"cupsCredCrc":3526472290,"tcCredCrc":2077607535,"station":"2.0.6(rpi/std) 2022-01-21 10:00:00","model":"rpi","package":"1.0.0","keys":[488546068]}"#;

    #[test]
    fn parses_the_spec_example() {
        assert_eq!(SPEC_EXAMPLE.len(), 232);
        let info = UpdateInfo::parse(SPEC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(info.router, Eui(0xb827_ebff_fe61_51a8));
        assert_eq!(
            info.cups_uri.as_deref(),
            Some("https://cups.example.com:443")
        );
        assert_eq!(info.tc_uri, None);
        assert_eq!(info.cups_cred_crc, 3_526_472_290);
        assert_eq!(info.tc_cred_crc, 0x7BD5_C66F);
        assert_eq!(info.package.as_deref(), Some("1.0.0"));
        assert_eq!(info.keys, vec![488_546_068]);
    }

    #[test]
    fn tolerates_nulls_and_extra_keys() {
        let body = r#"{"router":"::1","cupsUri":null,"tcUri":null,"cupsCredCrc":0,"tcCredCrc":4294967295,"station":"s","model":"m","package":null,"keys":[],"os":"linux"}"#;
        let info = UpdateInfo::parse(body.as_bytes()).unwrap();
        assert_eq!(info.router, Eui(1));
        assert_eq!(info.package, None);
        assert_eq!(info.tc_cred_crc, u32::MAX);
    }

    #[test]
    fn rejects_missing_mistyped_and_malformed() {
        let cases = [
            ("not json", "not the JSON"),
            ("[]", "not the JSON"),
            (r#"{"router":"::1"}"#, "missing field"),
            (
                &SPEC_EXAMPLE.replace(r#""tcUri":null,"#, ""),
                "missing field `tcUri`",
            ),
            (&SPEC_EXAMPLE.replace("3526472290", "-1"), "invalid value"),
            (
                &SPEC_EXAMPLE.replace("3526472290", "4294967296"),
                "invalid value",
            ),
            (
                &SPEC_EXAMPLE.replace(r#""model":"rpi""#, r#""model":7"#),
                "invalid type",
            ),
            (
                &SPEC_EXAMPLE.replace("b827:ebff:fe61:51a8", "xyz"),
                "field `router`",
            ),
        ];
        for (body, want) in cases {
            let err = UpdateInfo::parse(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
    }
}
