//! Who is calling: a bearer token (`require_token` in `mod.rs`) or an access key
//! whose SigV4 signature checks out (`front`, here). Either way the request gets a
//! `Caller` extension naming the credential, for handlers and the audit log.
//!
//! `front` runs before routing. A SigV4 request is verified here; one signed for
//! the service `s3` then goes to the S3 router (`api::s3`) and never reaches the
//! API's routes, so an S3 path like `/wireless-gateways/x` cannot shadow them and
//! API paths cannot shadow buckets. Failed signatures are rate-limited per source
//! (`[api] auth_failures_per_source_per_min`). Every answer gets an
//! `x-amzn-RequestId`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::sigv4::{self, AuthHeader, SigError};
use super::ApiError;
use crate::app::App;
use crate::store::StoreError;

pub use super::caller::Caller;

/// The service a SigV4 request was signed for, and the payload hash it claimed
/// (`x-amz-content-sha256`), which a streamed S3 upload checks at its end.
#[derive(Debug, Clone)]
pub struct Signed {
    pub service: String,
    pub payload_hash: Option<String>,
}

pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Per-source budget of failed signature checks: a token bucket refilled at
/// `per_min`, holding a minute's worth. At most `MAX_SOURCES` are tracked; past
/// that, buckets that have refilled are dropped, and if none has, new sources
/// share one bucket.
pub struct FailureThrottle {
    per_min: u32,
    state: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

const MAX_SOURCES: usize = 10_000;
const SHARED: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

impl FailureThrottle {
    pub fn new(per_min: u32) -> FailureThrottle {
        FailureThrottle {
            per_min,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            },
            v4 => v4,
        }
    }

    fn level(&self, entry: (f64, Instant), now: Instant) -> f64 {
        let per_sec = f64::from(self.per_min) / 60.0;
        let refilled = now.saturating_duration_since(entry.1).as_secs_f64() * per_sec;
        (entry.0 + refilled).min(f64::from(self.per_min))
    }

    /// Has `ip` used up its failures?
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key(ip);
        let entry = st
            .get(&key)
            .or_else(|| st.get(&SHARED).filter(|_| st.len() >= MAX_SOURCES));
        entry.is_some_and(|e| self.level(*e, now) < 1.0)
    }

    /// Charges one failure to `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = Self::key(ip);
        if !st.contains_key(&key) && st.len() >= MAX_SOURCES {
            let full = f64::from(self.per_min);
            st.retain(|_, e| {
                let per_sec = full / 60.0;
                e.0 + now.saturating_duration_since(e.1).as_secs_f64() * per_sec < full
            });
            if st.len() >= MAX_SOURCES {
                key = SHARED;
            }
        }
        let full = (f64::from(self.per_min), now);
        let e = *st.get(&key).unwrap_or(&full);
        let level = self.level(e, now);
        st.insert(key, ((level - 1.0).max(0.0), now));
    }
}

/// The front of the API: request id, SigV4 verification, and the S3 dispatch.
pub async fn front(
    State((app, s3)): State<(App, Router)>,
    mut req: Request,
    next: Next,
) -> Response {
    let request_id = crate::app::new_id();
    let sigv4 = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sigv4::is_sigv4(v))
        .map(str::to_string);
    let mut resp = match sigv4 {
        None => next.run(req).await,
        Some(auth) => match authenticate(&app, &auth, req).await {
            Err(refused) => refused,
            Ok((signed, r)) => {
                req = r;
                if signed.service == "s3" {
                    req.extensions_mut().insert(signed);
                    match s3.oneshot(req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    }
                } else {
                    req.extensions_mut().insert(signed);
                    next.run(req).await
                }
            }
        },
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v.clone());
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    resp
}

fn peer(req: &Request) -> IpAddr {
    req.extensions()
        .get::<crate::server::ConnInfo>()
        .map_or_else(|| [0, 0, 0, 0].into(), |c| c.remote.ip())
}

/// A refusal of a SigV4 request, in AWS's words (S3's own codes for `s3`).
struct Refusal {
    status: StatusCode,
    code: &'static str,
    s3_code: &'static str,
    message: String,
}

impl Refusal {
    fn from_sig(e: SigError) -> Refusal {
        let (status, code, s3_code) = match &e {
            SigError::Malformed(_) => (
                StatusCode::BAD_REQUEST,
                "IncompleteSignatureException",
                "AuthorizationHeaderMalformed",
            ),
            SigError::Expired(_) => (
                StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                "RequestTimeTooSkewed",
            ),
            SigError::Mismatch => (
                StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                "SignatureDoesNotMatch",
            ),
            SigError::PayloadHash => (
                StatusCode::BAD_REQUEST,
                "InvalidSignatureException",
                "XAmzContentSHA256Mismatch",
            ),
        };
        Refusal {
            status,
            code,
            s3_code,
            message: e.to_string(),
        }
    }

    fn response(self, service: &str) -> Response {
        if service == "s3" {
            super::s3::error(self.status, self.s3_code, &self.message)
        } else {
            ApiError::aws(self.status, self.code, self.message).into_response()
        }
    }
}

/// Verifies a SigV4 request. On success the request comes back (its body
/// buffered when the signature covers it) with its `Caller`.
async fn authenticate(app: &App, auth: &str, req: Request) -> Result<(Signed, Request), Response> {
    let ip = peer(&req);
    let parsed = sigv4::parse_authorization(auth);
    let service = parsed
        .as_ref()
        .map_or("iotwireless", |h| h.service.as_str())
        .to_string();
    if app.auth_failures.blocked(ip) {
        return Err(Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "ThrottlingException",
            s3_code: "SlowDown",
            message: "too many failed signatures from this address; wait a minute ([api] auth_failures_per_source_per_min)".into(),
        }
        .response(&service));
    }
    match check(app, parsed, req).await {
        Ok(ok) => Ok(ok),
        Err((refusal, method, path)) => {
            app.auth_failures.failed(ip);
            if let Some(suppressed) = app.refusals.note(crate::logguard::Reason::ApiToken, ip) {
                tracing::warn!(peer = %ip, %method, path = %crate::logguard::Clipped(&path), code = refusal.code, "API request refused: {}{suppressed}", crate::logguard::escaped(&refusal.message));
            }
            Err(refusal.response(&service))
        }
    }
}

type Failed = (Refusal, String, String);

async fn check(
    app: &App,
    parsed: Result<AuthHeader, SigError>,
    req: Request,
) -> Result<(Signed, Request), Failed> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let fail = |r: Refusal| (r, method.clone(), path.clone());
    let h = parsed.map_err(|e| fail(Refusal::from_sig(e)))?;
    if !matches!(h.service.as_str(), "iotwireless" | "s3") {
        return Err(fail(Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "IncompleteSignatureException",
            s3_code: "AuthorizationHeaderMalformed",
            message: format!(
                "the signature's service {:?} is not iotwireless or s3",
                crate::logguard::Clipped(&h.service)
            ),
        }));
    }
    let key = match app.store.access_key(h.key_id.clone()).await {
        Ok(k) if k.id == h.key_id => k,
        Ok(_) | Err(StoreError::NotFound) => {
            return Err(fail(Refusal {
                status: StatusCode::FORBIDDEN,
                code: "UnrecognizedClientException",
                s3_code: "InvalidAccessKeyId",
                message: "the access key Id is not known to this server; create one with `stationkeeper access-keys create --name NAME`".into(),
            }))
        }
        Err(e) => {
            let (status, message) = (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
            tracing::error!("loading an access key: {message}");
            return Err(fail(Refusal {
                status,
                code: "InternalServerException",
                s3_code: "InternalError",
                message: "internal error; see the server log".into(),
            }));
        }
    };
    let max_skew = Duration::from_secs(app.config.api.signature_max_skew_secs);
    let amz_date = req
        .headers()
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok());
    let time = sigv4::check_date(amz_date, &h.date, SystemTime::now(), max_skew)
        .map_err(|e| fail(Refusal::from_sig(e)))?;
    let claimed = req
        .headers()
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // S3 bodies stream (the upload checks a claimed hash at its end); the API's
    // are small, so they are read here and hashed.
    let (req, payload_hash) = if h.service == "s3" {
        let hash = claimed.clone().ok_or_else(|| {
            fail(Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "IncompleteSignatureException",
                s3_code: "InvalidRequest",
                message: "S3 requests need the x-amz-content-sha256 header".into(),
            })
        })?;
        (req, hash)
    } else {
        let (req, digest) = buffer(app, req).await.map_err(fail)?;
        match &claimed {
            Some(c) if c != UNSIGNED_PAYLOAD && !c.eq_ignore_ascii_case(&digest) => {
                return Err(fail(Refusal::from_sig(SigError::PayloadHash)))
            }
            Some(c) => (req, c.clone()),
            None => (req, digest),
        }
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let signed = sigv4::Signed {
        method: req.method().as_str(),
        path_and_query: &path_and_query,
        headers: req.headers(),
        payload_hash: &payload_hash,
        time,
    };
    sigv4::verify(&h, &key.secret, &signed).map_err(|e| fail(Refusal::from_sig(e)))?;
    if !key.enabled {
        return Err(fail(Refusal {
            status: StatusCode::FORBIDDEN,
            code: "AccessDeniedException",
            s3_code: "AccessDenied",
            message: format!(
                "access key {} is disabled; enable it or use another key",
                key.id
            ),
        }));
    }
    let _ = app
        .store
        .touch_access_key(key.id.clone(), crate::app::now())
        .await;
    let mut req = req;
    req.extensions_mut().insert(Caller {
        name: key.name,
        access_key_id: Some(key.id),
    });
    Ok((
        Signed {
            service: h.service,
            payload_hash: claimed,
        },
        req,
    ))
}

/// Reads the body (at most `[limits] api_body_bytes`) and puts it back; returns
/// its SHA-256 in hex.
async fn buffer(app: &App, req: Request) -> Result<(Request, String), Refusal> {
    let limit = app.config.limits.api_body_bytes;
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Refusal {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "PayloadTooLarge",
                s3_code: "EntityTooLarge",
                message: format!("request body is over {limit} bytes ([limits] api_body_bytes); upload files through S3 (PUT /BUCKET/KEY signed for s3)"),
            })
        }
        Err(e) => {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "ValidationException",
                s3_code: "IncompleteBody",
                message: format!("reading body: {e}"),
            })
        }
    };
    let digest = hex::encode(Sha256::digest(&bytes));
    Ok((Request::from_parts(parts, Body::from(bytes)), digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_a_source_then_refill() {
        let t = FailureThrottle::new(2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(!t.blocked(ip));
        t.failed(ip);
        assert!(!t.blocked(ip));
        t.failed(ip);
        assert!(t.blocked(ip));
        assert!(!t.blocked([10, 0, 0, 2].into()));
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        t.failed(v6a);
        t.failed(v6a);
        assert!(t.blocked(v6b), "a /64 counts as one source");
    }
}
