//! Version ranges (an addition to AWS's task definition shape): a definition's
//! `LoRaWAN.CurrentVersionRange` gives a semver range for `PackageVersion` and an
//! exact name or a glob for `Station` and `Model`, so one update.bin serves every
//! version in the range. Pure: parsing and matching only. A range that does not
//! parse is refused with the field and the byte position of the error.

use std::fmt;

use super::task::Version;

/// A parsed `CurrentVersionRange`. Equal when the texts are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange {
    package: String,
    req: semver::VersionReq,
    pub station: Glob,
    pub model: Glob,
}

/// An exact name, or a glob (`*`, `?`, `[…]`) when it holds one of those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    pattern: Option<glob::Pattern>,
}

/// Why a range was refused: the field, the byte position in its text and what
/// is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {text:?}: at position {position}: {message}")]
pub struct RangeError {
    pub field: String,
    pub text: String,
    pub position: usize,
    pub message: String,
}

impl Glob {
    pub fn parse(field: &str, text: &str) -> Result<Glob, RangeError> {
        if text.is_empty() {
            return Err(RangeError {
                field: field.into(),
                text: text.into(),
                position: 0,
                message: "empty; give an exact name or a glob such as \"2.0.*\"".into(),
            });
        }
        let pattern = if text.contains(['*', '?', '[']) {
            Some(glob::Pattern::new(text).map_err(|e| RangeError {
                field: field.into(),
                text: text.into(),
                position: e.pos,
                message: e.msg.into(),
            })?)
        } else {
            None
        };
        Ok(Glob {
            text: text.into(),
            pattern,
        })
    }

    pub fn matches(&self, s: &str) -> bool {
        match &self.pattern {
            Some(p) => p.matches(s),
            None => self.text == s,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl VersionRange {
    /// Parses the three fields; `field_prefix` names them in errors (for example
    /// `LoRaWAN.CurrentVersionRange`).
    pub fn parse(
        field_prefix: &str,
        package: &str,
        station: &str,
        model: &str,
    ) -> Result<VersionRange, RangeError> {
        Ok(VersionRange {
            package: package.into(),
            req: parse_req(&format!("{field_prefix}.PackageVersion"), package)?,
            station: Glob::parse(&format!("{field_prefix}.Station"), station)?,
            model: Glob::parse(&format!("{field_prefix}.Model"), model)?,
        })
    }

    pub fn package(&self) -> &str {
        &self.package
    }

    /// Whether a reported version lies in the range. A PackageVersion that is not
    /// semver ("1.0" is read as "1.0.0") or is missing is never in a range.
    pub fn matches(&self, v: &Version) -> bool {
        self.station.matches(&v.station)
            && self.model.matches(&v.model)
            && v.package
                .as_deref()
                .and_then(lenient_semver)
                .is_some_and(|p| self.req.matches(&p))
    }

    /// Whether an exact version (a previous hop's UpdateVersion) lies in the range.
    pub fn contains(&self, v: &Version) -> bool {
        self.matches(v)
    }
}

/// A semver range, comparator by comparator so an error names where it is.
pub fn parse_req(field: &str, text: &str) -> Result<semver::VersionReq, RangeError> {
    let err = |position: usize, message: String| RangeError {
        field: field.into(),
        text: text.into(),
        position,
        message,
    };
    if text.trim().is_empty() {
        return Err(err(
            0,
            "empty; give a semver range such as \">=1.0.0, <1.2.0\"".into(),
        ));
    }
    let mut at = 0;
    for part in text.split(',') {
        let lead = part.len() - part.trim_start().len();
        if let Err(e) = semver::Comparator::parse(part.trim()) {
            return Err(err(at + lead, format!("{e}")));
        }
        at += part.len() + 1;
    }
    semver::VersionReq::parse(text).map_err(|e| err(0, e.to_string()))
}

/// Station's package versions are often "1.0" or "2": read them as semver with
/// the missing parts zero.
pub fn lenient_semver(s: &str) -> Option<semver::Version> {
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() < 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        let mut padded = parts.join(".");
        for _ in parts.len()..3 {
            padded.push_str(".0");
        }
        return semver::Version::parse(&padded).ok();
    }
    None
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Station {:?}, PackageVersion in {:?}, Model {:?}",
            self.station.text, self.package, self.model.text
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(station: &str, package: &str, model: &str) -> Version {
        Version {
            station: station.into(),
            package: Some(package.into()),
            model: model.into(),
        }
    }

    #[test]
    fn a_range_matches_versions_inside_it_only() {
        let r = VersionRange::parse("r", ">=1.0.0, <1.2.0", "2.0.*", "linux").unwrap();
        assert!(r.matches(&v("2.0.6", "1.0.0", "linux")));
        assert!(r.matches(&v("2.0.5", "1.1.9", "linux")));
        assert!(r.matches(&v("2.0.6", "1.1", "linux")));
        assert!(!r.matches(&v("2.0.6", "1.2.0", "linux")));
        assert!(!r.matches(&v("2.1.0", "1.0.0", "linux")));
        assert!(!r.matches(&v("2.0.6", "1.0.0", "rpi")));
        assert!(!r.matches(&v("2.0.6", "one", "linux")));
        assert!(!r.matches(&Version {
            package: None,
            ..v("2.0.6", "1.0.0", "linux")
        }));
    }

    #[test]
    fn errors_name_the_field_and_the_position() {
        let e = parse_req("PackageVersion", ">=1.0.0, <1.x.y.z").unwrap_err();
        assert_eq!(e.field, "PackageVersion");
        assert_eq!(e.position, 9, "{e}");
        let e = parse_req("PackageVersion", "").unwrap_err();
        assert_eq!(e.position, 0);
        let e =
            VersionRange::parse("LoRaWAN.CurrentVersionRange", "1.0.0", "2.0.[", "m").unwrap_err();
        assert_eq!(e.field, "LoRaWAN.CurrentVersionRange.Station");
        assert_eq!(e.position, 4, "{e}");
    }
}
