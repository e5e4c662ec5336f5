//! A small client of the operator API for the CLI: one HTTP/1.1 request per
//! connection (plain on loopback, or HTTPS trusting the server's CA), JSON in and
//! out, and errors turned into the API's own message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::ApiOpts;
use crate::config::Config;

pub struct ApiClient {
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: String,
}

impl ApiClient {
    /// Resolves URL, token and CA from the flags and the server's config.
    pub fn from_opts(o: &ApiOpts) -> Result<ApiClient, String> {
        let cfg = Config::load(o.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
        let url = o.api.clone().unwrap_or_else(|| {
            let mut addr = cfg.api.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip([127, 0, 0, 1].into());
            }
            format!("{}://{addr}", if cfg.api.tls { "https" } else { "http" })
        });
        let token = match (&o.token, &o.token_file, &cfg.api.tokens) {
            (Some(t), _, _) => t.clone(),
            (None, Some(f), _) => read_token(f)?,
            (None, None, Some(t)) => t[0].clone(),
            (None, None, None) => read_token(&cfg.state_dir.join("api-token"))?,
        };
        let ca =
            o.ca.clone()
                .unwrap_or_else(|| cfg.state_dir.join("pki/ca.crt"));
        ApiClient::new(&url, token, Some(&ca))
    }

    pub fn new(url: &str, token: String, ca: Option<&Path>) -> Result<ApiClient, String> {
        let (scheme, rest) = url
            .trim_end_matches('/')
            .split_once("://")
            .ok_or_else(|| format!("API URL {url:?} needs http:// or https://"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)))
            .ok_or_else(|| format!("API URL {url:?} needs host:port"))?;
        let tls = match scheme {
            "http" => None,
            "https" => {
                let ca = ca.ok_or("HTTPS API needs --ca")?;
                let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                    roots
                        .add(c.map_err(|e| e.to_string())?)
                        .map_err(|e| e.to_string())?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let cfg = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(Arc::new(cfg))
            }
            other => return Err(format!("API URL scheme {other:?} must be http or https")),
        };
        Ok(ApiClient {
            host,
            port,
            tls,
            token,
        })
    }

    /// Every page of a list (`?maxResults`/`nextToken`), as one answer
    /// `{key: [...]}` without `NextToken`.
    pub async fn list_all(&self, path: &str, key: &str) -> Result<Value, String> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        // The path may carry filters of its own (`?fuotaTaskId=…`).
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let url = match &token {
                None => format!("{path}{sep}maxResults=250"),
                Some(t) => format!("{path}{sep}maxResults=250&nextToken={}", query_value(t)),
            };
            let page = self.call(Method::GET, &url, None).await?;
            items.extend(page[key].as_array().cloned().unwrap_or_default());
            match page["NextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        Ok(serde_json::json!({ key: items }))
    }

    /// Sends one request; a non-2xx answer becomes `Err` with the API's message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let (status, bytes) = self
            .send(method, path, body.map(|b| b.to_string().into_bytes()))
            .await?;
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        if status.is_success() {
            Ok(json)
        } else {
            let msg = json
                .get("Message")
                .and_then(Value::as_str)
                .map_or_else(|| json.to_string(), String::from);
            Err(format!("{status}: {msg}"))
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), String> {
        self.send_body(
            method,
            path,
            "application/json",
            Full::new(Bytes::from(body.unwrap_or_default())),
        )
        .await
    }

    /// Streams a file as the request body, calling `progress` with bytes sent.
    pub async fn upload(
        &self,
        path: &str,
        file: &Path,
        progress: impl FnMut(u64) + Send + Sync + 'static,
    ) -> Result<Value, String> {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let len = f.metadata().await.map_err(|e| e.to_string())?.len();
        let body = crate::filebody::FileBody::new(Bytes::new(), f, len).on_progress(progress);
        let (status, bytes) = self
            .send_body(Method::POST, path, "application/octet-stream", body)
            .await?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(json)
        } else {
            Err(format!(
                "{status}: {}",
                json.get("Message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            ))
        }
    }

    async fn send_body<B>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: B,
    ) -> Result<(StatusCode, Bytes), String>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect(&addr).await.map_err(|e| {
            format!(
                "cannot reach the operator API at {addr}: {e} (is `stationkeeper serve` running?)"
            )
        })?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &addr)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .body(body)
            .map_err(|e| e.to_string())?;
        match &self.tls {
            None => exchange(tcp, req).await,
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| e.to_string())?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS to the API: {e}"))?;
                exchange(tls, req).await
            }
        }
    }
}

async fn exchange<S, B>(io: S, req: Request<B>) -> Result<(StatusCode, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

fn read_token(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| {
            format!(
                "cannot read the API token from {}: {e} (pass --token or --config)",
                path.display()
            )
        })
}

/// Percent-encodes a query value.
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(super::query_value("a b/c"), "a%20b%2Fc");
        assert_eq!(super::query_value("sha256:ab-_.~"), "sha256%3Aab-_.~");
    }
}
