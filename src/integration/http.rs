//! The HTTP integration (end-devices.md §10.2): each event is POSTed as JSON to every
//! configured endpoint as `{url}?event={name}`, with the configured extra headers.
//! Each endpoint has its own bounded queue and task, so one that is slow or down
//! only loses its own events (dropped and counted); a failed POST is counted and
//! logged (rate-limited), never retried, as ChirpStack does. `https://` goes through
//! hyper-rustls on our rustls/ring.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Counters, LogLimiter, LOG_EVERY};
use crate::config::HttpIntegrationConfig;

/// Checks one endpoint URL: `http://host[:port][/path][?query]`.
pub fn endpoint(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| {
        format!(
            "{:?} is not a URL ({e}); write http://host:port/path",
            shown(url)
        )
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!(
            "{:?}: the scheme must be http:// or https://",
            shown(url)
        ));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!(
            "{:?}: put credentials in integration.http.headers (Authorization), not in the URL",
            shown(url.split('@').next_back().unwrap_or(""))
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{:?} has no host", shown(url)));
    }
    Ok(uri)
}

/// An endpoint as logs show it: without its query, which may carry a token.
fn shown(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The extra headers, checked; errors name the header, never its value.
pub fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))?;
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of {name:?} has characters a header cannot carry"))?;
        v.set_sensitive(true);
        map.insert(n, v);
    }
    Ok(map)
}

/// `url` with `event=<name>` added to its query.
fn event_uri(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}event={name}")
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One pooled client for all endpoints: plain TCP for `http://`, rustls for
/// `https://` (trusting `ca_cert`, else the system's roots, which are only read when
/// an endpoint needs them).
fn client(cfg: &HttpIntegrationConfig, urls: &[String]) -> Result<HttpClient, String> {
    let tls = if urls.iter().any(|u| u.starts_with("https:")) {
        crate::tls::client_config(cfg.ca_cert.as_deref())
            .map_err(|e| format!("integration.http.ca_cert: {e}"))?
    } else {
        crate::tls::client_config_without_roots()
    };
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(Arc::unwrap_or_clone(tls))
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// The handle `Integrations::publish` uses: one queue per endpoint.
#[derive(Clone)]
pub(super) struct HttpPublisher {
    queues: Vec<mpsc::Sender<(&'static str, Bytes)>>,
    counters: Arc<Counters>,
    drops_log: Arc<LogLimiter>,
}

impl HttpPublisher {
    /// Spawns one task per endpoint; they end on `shutdown`.
    pub fn start(
        cfg: &HttpIntegrationConfig,
        urls: &[String],
        counters: Arc<Counters>,
        shutdown: CancellationToken,
    ) -> Result<HttpPublisher, String> {
        let client = client(cfg, urls)?;
        let headers = Arc::new(
            header_map(&cfg.headers).map_err(|e| format!("integration.http.headers: {e}"))?,
        );
        let queues = urls
            .iter()
            .map(|url| {
                let (tx, rx) = mpsc::channel(cfg.queue);
                let poster = Poster {
                    client: client.clone(),
                    url: url.clone(),
                    headers: headers.clone(),
                    timeout: Duration::from_secs(cfg.timeout_secs),
                    counters: counters.clone(),
                    failure_log: LogLimiter::new(LOG_EVERY),
                };
                tokio::spawn(poster.run(rx, shutdown.clone()));
                tx
            })
            .collect();
        Ok(HttpPublisher {
            queues,
            counters,
            drops_log: Arc::new(LogLimiter::new(LOG_EVERY)),
        })
    }

    /// Queues the event for every endpoint; a full queue drops it for that endpoint.
    pub fn publish(&self, name: &'static str, body: Bytes) {
        for q in &self.queues {
            if q.try_send((name, body.clone())).is_err() {
                Counters::add(&self.counters.dropped, 1);
                if let Some(skipped) = self.drops_log.allow() {
                    tracing::warn!(
                        event = name,
                        skipped,
                        "http: event dropped: the endpoint's queue is full (endpoint slow or down; integration.http.queue)"
                    );
                }
            }
        }
    }
}

/// POSTs one endpoint's events in order.
struct Poster {
    client: HttpClient,
    url: String,
    headers: Arc<HeaderMap>,
    timeout: Duration,
    counters: Arc<Counters>,
    failure_log: LogLimiter,
}

impl Poster {
    async fn run(self, mut rx: mpsc::Receiver<(&'static str, Bytes)>, shutdown: CancellationToken) {
        loop {
            let (name, body) = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = rx.recv() => match m { Some(m) => m, None => return },
            };
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = tokio::time::timeout(self.timeout, self.post(name, body)) => r,
            };
            let failure = match outcome {
                Ok(Ok(())) => {
                    Counters::add(&self.counters.published, 1);
                    continue;
                }
                Ok(Err(e)) => e,
                Err(_) => format!(
                    "no answer within {}s (integration.http.timeout_secs)",
                    self.timeout.as_secs()
                ),
            };
            Counters::add(&self.counters.failed, 1);
            if let Some(skipped) = self.failure_log.allow() {
                tracing::warn!(endpoint = %shown(&self.url), event = name, skipped, "http: POST failed, not retried: {failure}");
            }
        }
    }

    async fn post(&self, name: &'static str, body: Bytes) -> Result<(), String> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(event_uri(&self.url, name))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        for (n, v) in self.headers.iter() {
            req.headers_mut().insert(n, v.clone());
        }
        let resp = self.client.request(req).await.map_err(|e| {
            // hyper-util's error says "client error (Connect)"; its source says why.
            match std::error::Error::source(&e) {
                Some(s) => format!("{e}: {s}"),
                None => e.to_string(),
            }
        })?;
        let status = resp.status();
        // Read the (small) answer so the connection goes back to the pool.
        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_headers() {
        assert!(endpoint("http://127.0.0.1:8090/events").is_ok());
        assert!(endpoint("https://x/").is_ok());
        assert!(endpoint("ftp://x/").unwrap_err().contains("scheme"));
        let e = endpoint("http://u:secret@x/").unwrap_err();
        assert!(e.contains("headers") && !e.contains("secret"), "{e}");
        assert_eq!(shown("http://h/e?token=secret"), "http://h/e");
        assert_eq!(event_uri("http://h/e", "up"), "http://h/e?event=up");
        assert_eq!(event_uri("http://h/e?k=1", "up"), "http://h/e?k=1&event=up");
        let ok = BTreeMap::from([("Authorization".to_string(), "Bearer x".to_string())]);
        assert_eq!(header_map(&ok).unwrap().len(), 1);
        let bad = BTreeMap::from([("Authorization".to_string(), "a\nsecret".to_string())]);
        let e = header_map(&bad).unwrap_err();
        assert!(e.contains("Authorization") && !e.contains("secret"), "{e}");
        let bad = BTreeMap::from([("bad name".to_string(), "v".to_string())]);
        assert!(header_map(&bad).is_err());
    }
}
