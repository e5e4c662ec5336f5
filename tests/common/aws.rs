//! An AWS-style client for the tests: requests signed with SigV4 by the
//! `aws-sigv4` crate (the signer the Rust SDK uses), as an AWS client would send
//! them, over plain HTTP to the operator listener.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::server::TestServer;

#[derive(Clone)]
pub struct AwsClient {
    pub host: String,
    pub key_id: String,
    pub secret: String,
    /// Signing time; `None` is now.
    pub time: Option<SystemTime>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `x-amzn-ErrorType`, as botocore reads the error code.
    pub fn error_type(&self) -> String {
        self.headers
            .get("x-amzn-ErrorType")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

impl AwsClient {
    /// Creates an access key through the bearer-token API and returns a client
    /// signing with it.
    pub async fn create(srv: &TestServer, name: &str) -> AwsClient {
        let v = srv
            .call(
                Method::POST,
                "/access-keys",
                Some(serde_json::json!({"Name": name})),
            )
            .await
            .unwrap();
        AwsClient {
            host: srv.running.api_addr.to_string(),
            key_id: v["AccessKeyId"].as_str().unwrap().into(),
            secret: v["SecretAccessKey"].as_str().unwrap().into(),
            time: None,
        }
    }

    /// Sends a request signed for `service`; `extra` headers are signed too.
    pub async fn send(
        &self,
        service: &str,
        method: Method,
        path: &str,
        extra: &[(&str, &str)],
        body: Vec<u8>,
        payload: Option<&str>,
    ) -> Answer {
        let mut headers: Vec<(String, String)> = vec![("host".into(), self.host.clone())];
        if service == "iotwireless" && !body.is_empty() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        for (k, v) in extra {
            headers.push((k.to_string(), v.to_string()));
        }
        let identity = Credentials::new(&self.key_id, &self.secret, None, None, "test").into();
        let mut settings = SigningSettings::default();
        if service == "s3" {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(self.time.unwrap_or_else(SystemTime::now))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let url = format!("http://{}{path}", self.host);
        let signable_body = match payload {
            Some(p) => SignableBody::Precomputed(p.to_string()),
            None => SignableBody::Bytes(&body),
        };
        let signable = SignableRequest::new(
            method.as_str(),
            url.clone(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            signable_body,
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut req = Request::builder().method(method).uri(&url);
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k, v);
            }
        }
        let mut req = req.body(Full::new(Bytes::from(body))).unwrap();
        instructions.apply_to_request_http1x(&mut req);
        self.raw(req).await
    }

    pub async fn raw(&self, req: Request<Full<Bytes>>) -> Answer {
        let client = Client::builder(TokioExecutor::new()).build_http();
        let resp = client.request(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// An iotwireless call with a JSON body (or none).
    pub async fn iot(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send("iotwireless", method, path, &[], bytes, None)
            .await
    }

    pub async fn s3(&self, method: Method, path: &str, body: Vec<u8>) -> Answer {
        self.send("s3", method, path, &[], body, None).await
    }
}
