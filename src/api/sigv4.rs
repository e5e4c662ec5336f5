//! AWS Signature Version 4, the server's side: parse the `Authorization` header,
//! then re-sign the request as the client saw it (its method, path, query and the
//! headers it listed as signed) with the stored secret, using the `aws-sigv4`
//! crate, and compare the two signatures in constant time. Only the header form
//! (`Authorization: AWS4-HMAC-SHA256 ...` with `x-amz-date`) is accepted; that is
//! what botocore, the aws CLI and the Rust SDK send. No I/O here.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use axum::http::HeaderMap;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=hex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    pub key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Why a signature was refused, mapped to AWS's error codes by `auth`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
    #[error("{0}")]
    Expired(String),
    #[error("the request signature we calculated does not match the signature you provided; check your AWS secret access key and signing method")]
    Mismatch,
    #[error("the x-amz-content-sha256 header does not match the body's SHA-256")]
    PayloadHash,
}

/// Is this header value a SigV4 one (rather than a bearer token)?
pub fn is_sigv4(authorization: &str) -> bool {
    authorization.starts_with(ALGORITHM)
}

pub fn parse_authorization(v: &str) -> Result<AuthHeader, SigError> {
    let rest = v
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| SigError::Malformed(format!("it must start with {ALGORITHM}")))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, val) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| SigError::Malformed("expected key=value parts".into()))?;
        match k {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed = Some(val),
            "Signature" => signature = Some(val),
            _ => {}
        }
    }
    let missing = |what: &str| SigError::Malformed(format!("no {what}="));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(SigError::Malformed(
            "Credential must be AKID/YYYYMMDD/region/service/aws4_request".into(),
        ));
    };
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigError::Malformed(
            "the Credential date is not YYYYMMDD".into(),
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SigError::Malformed("Signature is not 64 hex digits".into()));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Malformed(
            "SignedHeaders must include host".into(),
        ));
    }
    Ok(AuthHeader {
        key_id: key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// Parses `x-amz-date` (`20150830T123600Z`) and checks it is within `max_skew`
/// of `now` and on the Credential's date.
pub fn check_date(
    amz_date: Option<&str>,
    scope_date: &str,
    now: SystemTime,
    max_skew: Duration,
) -> Result<SystemTime, SigError> {
    let s = amz_date.ok_or_else(|| {
        SigError::Malformed("the x-amz-date header is missing (the signature's time)".into())
    })?;
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(s, &fmt)
        .map_err(|_| SigError::Malformed("x-amz-date is not YYYYMMDDTHHMMSSZ".into()))?
        .assume_utc();
    if !s.starts_with(scope_date) {
        return Err(SigError::Malformed(
            "the Credential date is not the day of x-amz-date".into(),
        ));
    }
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().max(0) as u64);
    let skew = match now.duration_since(at) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > max_skew {
        return Err(SigError::Expired(format!(
            "Signature expired: x-amz-date {s} is {}s from the server's time (at most {}s allowed); check the client's clock",
            skew.as_secs(),
            max_skew.as_secs()
        )));
    }
    Ok(at)
}

/// What the signature covers besides the header: method, path and query as sent.
pub struct Signed<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    /// The payload hash the client used: `x-amz-content-sha256` when it sent one
    /// (hex, `UNSIGNED-PAYLOAD`, ...), else the body's SHA-256 in hex.
    pub payload_hash: &'a str,
    pub time: SystemTime,
}

/// Re-signs the request with `secret` and compares with the client's signature.
pub fn verify(h: &AuthHeader, secret: &str, req: &Signed) -> Result<(), SigError> {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for name in &h.signed_headers {
        // The signer writes x-amz-date itself from `time` (parsed from the header).
        if name == "x-amz-date" {
            continue;
        }
        let values = req.headers.get_all(name.as_str());
        let mut any = false;
        for v in values {
            let v = v.to_str().map_err(|_| SigError::Mismatch)?;
            headers.push((name.as_str(), v));
            any = true;
        }
        if !any {
            return Err(SigError::Malformed(format!(
                "signed header {:?} is not in the request",
                crate::logguard::Clipped(name)
            )));
        }
    }
    let identity = Credentials::new(&h.key_id, secret, None, None, "stationkeeper").into();
    let mut settings = SigningSettings::default();
    // Headers are exactly those the client listed; none is ours to drop.
    settings.excluded_headers = Some(Vec::new());
    if h.service == "s3" {
        // S3 signs the path as sent: encoded once, not normalised.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&h.region)
        .name(&h.service)
        .time(req.time)
        .settings(settings)
        .build()
        .map_err(|e| SigError::Malformed(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        req.method,
        req.path_and_query,
        headers.into_iter(),
        SignableBody::Precomputed(req.payload_hash.to_string()),
    )
    .map_err(|e| SigError::Malformed(e.to_string()))?;
    let (_, expected) = sign(signable, &params)
        .map_err(|e| SigError::Malformed(e.to_string()))?
        .into_parts();
    if crate::api::same(expected.as_bytes(), h.signature.as_bytes()) {
        Ok(())
    } else {
        Err(SigError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// AWS's documented example (sigv4 test suite "get-vanilla").
    #[test]
    fn verifies_aws_get_vanilla() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let h = parse_authorization(auth).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        let time = check_date(
            Some("20150830T123600Z"),
            &h.date,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1440938160),
            Duration::from_secs(300),
        )
        .unwrap();
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let req = Signed {
            method: "GET",
            path_and_query: "/",
            headers: &headers,
            payload_hash: empty,
            time,
        };
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(verify(&h, secret, &req), Ok(()));
        assert_eq!(verify(&h, "wrong", &req), Err(SigError::Mismatch));
        let other = Signed {
            method: "POST",
            ..req
        };
        assert_eq!(verify(&h, secret, &other), Err(SigError::Mismatch));
    }

    #[test]
    fn refuses_old_dates_and_bad_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1440938160 + 301);
        let e = check_date(
            Some("20150830T123600Z"),
            "20150830",
            now,
            Duration::from_secs(300),
        );
        assert!(matches!(e, Err(SigError::Expired(_))));
        assert!(parse_authorization("AWS4-HMAC-SHA256 Credential=a/b").is_err());
        assert!(parse_authorization("Bearer x").is_err());
        let no_host = "AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request, SignedHeaders=x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        assert!(parse_authorization(no_host).is_err());
    }
}
