//! Plain HTTP requests to the API listener as a browser's page loads and form
//! posts make them: an optional session cookie, an optional urlencoded form, and
//! the answer's status, `location`, `set-cookie` and body.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::server::TestServer;

pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub cookie: Option<String>,
    pub body: String,
}

/// One plain HTTP request to the API listener, with an optional cookie and form.
pub async fn http(
    srv: &TestServer,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", srv.running.api_addr));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if form.is_some() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let req = req
        .body(Full::new(Bytes::from(form.unwrap_or_default().to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (status, location, cookie) = (resp.status(), header("location"), header("set-cookie"));
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    Answer {
        status,
        location,
        cookie,
        body,
    }
}
