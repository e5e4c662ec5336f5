//! A LoRa Basics Station 2.0.6 CUPS *client simulator* for integration tests.
//!
//! It models a station "home directory" on disk (`cups.uri`, `cups.trust`,
//! `cups-bak.*`, `tc.*`, `sig-N.key`, `version.txt`, ...) and runs CUPS
//! sessions against a server the way station does: it builds the exact
//! request (JSON body and HTTP bytes), picks the credential set (REG → BAK →
//! BOOT rotation), does TLS 1.2 with the set's trust/cert/key or token, reads
//! and parses the binary answer, commits URIs and credentials with station's
//! own (quirky) blob splitting, and checks update signatures. Nothing is ever
//! executed: an update is only reported; tests call
//! [`Station::apply_update_version`] to pretend it ran.
//!
//! It is written from `/work/shared/spec/cups-protocol.md` alone,
//! independently of the `stationkeeper` server code, so that it can check
//! the server. Section numbers (§) in comments refer to that document.

pub mod answer;
pub mod net;
pub mod request;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

// Re-exports: not every test crate uses all of them.
#[allow(unused_imports)]
pub use answer::{
    parse_answer, parse_prefix, split_cred, verify_update, Answer, CredParts, ParseState, Parsed,
};
#[allow(unused_imports)]
pub use net::{
    client_config, exchange, load_certs, load_key, raw_exchange, server_name, AuthMode,
    RawResponse, ReadOptions, Transport, CUPS_BUFSZ,
};
#[allow(unused_imports)]
pub use request::{build_request, crc32, cred_crc, id6, normalize_token, RequestInfo};

/// More failures in a row than this move to the next credential set (§5.1).
pub const FAIL_CNT_THRES: u32 = 6;
/// Station refuses stored URIs of this length or more (§4.1).
pub const MAX_URI_LEN: usize = 128;

/// Credential category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Cups,
    Tc,
}

/// Credential set (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredSet {
    Reg,
    Bak,
    Boot,
}

impl CredSet {
    /// Rotation order REG → BAK → BOOT → REG.
    pub fn next(self) -> CredSet {
        match self {
            CredSet::Reg => CredSet::Bak,
            CredSet::Bak => CredSet::Boot,
            CredSet::Boot => CredSet::Reg,
        }
    }

    /// File name stem, e.g. `cups-bak` or `tc`.
    pub fn stem(self, cat: Category) -> String {
        let c = match cat {
            Category::Cups => "cups",
            Category::Tc => "tc",
        };
        match self {
            CredSet::Reg => c.to_string(),
            CredSet::Bak => format!("{c}-bak"),
            CredSet::Boot => format!("{c}-boot"),
        }
    }
}

/// Why a session failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StationError {
    /// The chosen set has no usable URI file (`CUPS_ERR_NOURI`).
    NoUri(CredSet),
    /// The URI is not `http(s)://host:port` (shows up as a failed connection).
    BadUri(String),
    /// TCP connect failed.
    Connect(String),
    /// TLS setup or handshake failed (also: missing trust, bad token).
    Tls(String),
    /// No data for `ReadOptions::timeout` (`CUPS_CONN_TIMEOUT`).
    Timeout,
    /// Socket error while sending or reading.
    Io(String),
    /// Unusable HTTP response head (status line, header syntax).
    Http(String),
    /// Status other than 200 (`CUPS_ERR_REJECTED`).
    Rejected(u16),
    /// Answer body violates the CUPS rules (missing Content-Length, chunked,
    /// extra data, bad length field, unexpected end of data).
    Protocol(String),
    /// The connection ended before the answer was complete (peer closed, or
    /// the simulator dropped it after `ReadOptions::max_body_bytes`).
    Interrupted(String),
}

impl fmt::Display for StationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for StationError {}

/// What station did with a credential blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredResult {
    /// Split and written as `<cat>.trust/.crt/.key`.
    Installed(CredParts),
    /// Split failed; nothing written, old files kept (session still succeeds).
    Rejected(String),
}

/// An update that arrived completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateResult {
    pub data: Vec<u8>,
    /// A signature section came with it.
    pub signed: bool,
    /// Index N of the `sig-N.key` that verified the signature.
    pub verified_key: Option<usize>,
    /// Station would run it (verified, or unsigned with no `sig-0.key`).
    pub would_run: bool,
}

/// Everything observable about one CUPS session.
#[derive(Debug, Clone)]
pub struct PollOutcome {
    /// Credential set this session used.
    pub set: CredSet,
    /// Set the next session will use.
    pub next_set: CredSet,
    /// URI from `<set>.uri`.
    pub uri: Option<String>,
    pub auth: Option<AuthMode>,
    /// Exact request bytes sent.
    pub request: Vec<u8>,
    pub status: Option<u16>,
    pub response: Option<RawResponse>,
    /// Raw body bytes received.
    pub body: Vec<u8>,
    /// Sections parsed (possibly partial when `error` is set).
    pub answer: Option<Answer>,
    /// URIs/credentials were committed (commit point reached).
    pub committed: bool,
    /// Files copied to `cups-bak.*` (first 200 via REG only).
    pub backed_up: Vec<String>,
    /// Files written by the commit, in order.
    pub written: Vec<String>,
    pub cups_cred: Option<CredResult>,
    pub tc_cred: Option<CredResult>,
    pub update: Option<UpdateResult>,
    pub error: Option<StationError>,
}

impl PollOutcome {
    fn new(set: CredSet) -> Self {
        PollOutcome {
            set,
            next_set: set,
            uri: None,
            auth: None,
            request: Vec::new(),
            status: None,
            response: None,
            body: Vec::new(),
            answer: None,
            committed: false,
            backed_up: Vec::new(),
            written: Vec::new(),
            cups_cred: None,
            tc_cred: None,
            update: None,
            error: None,
        }
    }

    /// The session succeeded (station: `CUPS_DONE`).
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    pub fn update_arrived(&self) -> bool {
        self.update.is_some()
    }

    pub fn update_verified(&self) -> bool {
        self.update
            .as_ref()
            .is_some_and(|u| u.verified_key.is_some())
    }

    /// Panics with the error if the session failed; returns the answer.
    pub fn expect_ok(&self) -> &Answer {
        if let Some(e) = &self.error {
            panic!("CUPS session failed: {e} (status {:?})", self.status);
        }
        self.answer
            .as_ref()
            .expect("successful session has an answer")
    }
}

/// Parsed `cups.uri`: `http(s)://host:port`, no path (§4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CupsUri {
    pub tls: bool,
    /// Host as written (IPv6 keeps its brackets).
    pub host: String,
    pub port: String,
    /// `host:port` exactly as written, for the `Host` header.
    pub host_port: String,
}

pub fn parse_cups_uri(uri: &str) -> Result<CupsUri, String> {
    let (tls, rest) = if let Some(r) = uri.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = uri.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{uri:?}: scheme must be http or https"));
    };
    if rest.contains('/') {
        return Err(format!("{uri:?}: no path allowed"));
    }
    let (host, port) = if rest.starts_with('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("{uri:?}: unclosed ["))?;
        let port = rest[end + 1..]
            .strip_prefix(':')
            .ok_or_else(|| format!("{uri:?}: port required"))?;
        (&rest[..=end], port)
    } else {
        rest.split_once(':')
            .ok_or_else(|| format!("{uri:?}: port required"))?
    };
    if host.is_empty() || host.len() > 127 {
        return Err(format!("{uri:?}: bad host length"));
    }
    if port.is_empty() || port.len() > 15 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{uri:?}: bad port"));
    }
    Ok(CupsUri {
        tls,
        host: host.to_string(),
        port: port.to_string(),
        host_port: rest.to_string(),
    })
}

/// A simulated station and its home directory.
pub struct Station {
    pub home: PathBuf,
    pub router_eui: u64,
    /// `station` field: version, platform/variant and build date.
    pub station_version: String,
    /// `model` field.
    pub model: String,
    /// Offer only TLS 1.2, like mbedTLS 2.28 (default true).
    pub tls12_only: bool,
    /// Accept an IP address as URI host (default false: the spec assumes
    /// mbedTLS 2.28 cannot match IP SANs, so station would fail).
    pub allow_ip_host: bool,
    /// Read timeout and the interrupted-download option.
    pub read: ReadOptions,
    cred_set: CredSet,
    fail_count: u32,
}

impl Station {
    pub fn new(home: PathBuf, router_eui: u64) -> Self {
        Station {
            home,
            router_eui,
            station_version: "2.0.6(linux/std) 2022-01-21 10:00:00".to_string(),
            model: "linux".to_string(),
            tls12_only: true,
            allow_ip_host: false,
            read: ReadOptions::default(),
            cred_set: CredSet::Reg,
            fail_count: 0,
        }
    }

    pub fn with_station_version(mut self, v: &str) -> Self {
        self.station_version = v.to_string();
        self
    }

    pub fn with_model(mut self, m: &str) -> Self {
        self.model = m.to_string();
        self
    }

    pub fn with_tls12_only(mut self, on: bool) -> Self {
        self.tls12_only = on;
        self
    }

    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.read.timeout = t;
        self
    }

    /// Drop the connection after `n` body bytes on every following poll.
    pub fn set_abort_after_body_bytes(&mut self, n: Option<usize>) {
        self.read.max_body_bytes = n;
    }

    pub fn cred_set(&self) -> CredSet {
        self.cred_set
    }

    pub fn set_cred_set(&mut self, set: CredSet) {
        self.cred_set = set;
    }

    pub fn fail_count(&self) -> u32 {
        self.fail_count
    }

    // ---- home directory files -------------------------------------------

    pub fn path(&self, name: &str) -> PathBuf {
        self.home.join(name)
    }

    pub fn write_file(&self, name: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), bytes).expect("write station file");
    }

    pub fn read_file(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(name)).ok()
    }

    pub fn remove_file(&self, name: &str) {
        let _ = std::fs::remove_file(self.path(name));
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// Contents of a credential file, `None` when missing or empty (§1.1).
    fn cred_file(&self, name: &str) -> Option<Vec<u8>> {
        self.read_file(name).filter(|b| !b.is_empty())
    }

    /// Writes (or with `None` removes) `<stem>.uri/.trust/.crt/.key`.
    pub fn write_set(
        &self,
        set: CredSet,
        cat: Category,
        uri: Option<&str>,
        trust: Option<&[u8]>,
        crt: Option<&[u8]>,
        key: Option<&[u8]>,
    ) {
        let stem = set.stem(cat);
        for (ext, v) in [
            ("uri", uri.map(str::as_bytes)),
            ("trust", trust),
            ("crt", crt),
            ("key", key),
        ] {
            let name = format!("{stem}.{ext}");
            match v {
                Some(b) => self.write_file(&name, b),
                None => self.remove_file(&name),
            }
        }
    }

    /// URI of a set as station reads it (`sys_uri`): trailing whitespace
    /// trimmed; missing, empty or ≥ 128 characters → `None`.
    pub fn read_uri(&self, set: CredSet, cat: Category) -> Option<String> {
        let raw = self.read_file(&format!("{}.uri", set.stem(cat)))?;
        let s = String::from_utf8_lossy(&raw).trim_end().to_string();
        (!s.is_empty() && s.len() < MAX_URI_LEN).then_some(s)
    }

    /// Station CRC of a set's trust/crt/key files (§6.4).
    pub fn cred_crc(&self, set: CredSet, cat: Category) -> u32 {
        let stem = set.stem(cat);
        let t = self.read_file(&format!("{stem}.trust"));
        let c = self.read_file(&format!("{stem}.crt"));
        let k = self.read_file(&format!("{stem}.key"));
        cred_crc([t.as_deref(), c.as_deref(), k.as_deref()])
    }

    /// `sig-0.key`, `sig-1.key`, ... up to the first missing file.
    pub fn sig_keys(&self) -> Vec<Vec<u8>> {
        (0..)
            .map_while(|n| self.read_file(&format!("sig-{n}.key")))
            .collect()
    }

    /// `package`: `version.txt` trimmed, `None` when missing.
    pub fn package(&self) -> Option<String> {
        self.read_file("version.txt")
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
    }

    /// Pretend the update ran: rewrite `version.txt`.
    pub fn apply_update_version(&self, new: &str) {
        self.write_file("version.txt", new);
    }

    // ---- request ---------------------------------------------------------

    /// Request values, always from the REGULAR sets (§5.1).
    pub fn request_info(&self) -> RequestInfo {
        RequestInfo {
            router: self.router_eui,
            cups_uri: self.read_uri(CredSet::Reg, Category::Cups),
            tc_uri: self.read_uri(CredSet::Reg, Category::Tc),
            cups_cred_crc: self.cred_crc(CredSet::Reg, Category::Cups),
            tc_cred_crc: self.cred_crc(CredSet::Reg, Category::Tc),
            station: self.station_version.clone(),
            model: self.model.clone(),
            package: self.package(),
            keys: self.sig_keys().iter().map(|k| crc32(k)).collect(),
        }
    }

    /// The exact JSON body station would send now.
    pub fn request_body(&self) -> String {
        self.request_info().to_json()
    }

    /// The exact HTTP request bytes; `token_lines` are appended verbatim.
    pub fn request_bytes(&self, host_port: &str, token_lines: Option<&[u8]>) -> Vec<u8> {
        build_request(host_port, token_lines, self.request_body().as_bytes())
    }

    // ---- session ---------------------------------------------------------

    /// One CUPS session, connecting to `resolve` (the URI host is only used
    /// for `Host`, SNI and the certificate check). Updates the rotation state.
    pub async fn poll(&mut self, resolve: SocketAddr) -> PollOutcome {
        let set = self.cred_set;
        let mut out = PollOutcome::new(set);
        match self.session(set, resolve, &mut out).await {
            Ok(()) => {
                self.cred_set = CredSet::Reg;
                self.fail_count = 0;
            }
            Err(e) => {
                self.fail_count += 1;
                if matches!(e, StationError::Rejected(_) | StationError::NoUri(_))
                    || self.fail_count > FAIL_CNT_THRES
                {
                    self.cred_set = set.next();
                }
                out.error = Some(e);
            }
        }
        out.next_set = self.cred_set;
        out
    }

    /// TLS client config and token lines for a set (§1.1).
    fn transport_for(
        &self,
        set: CredSet,
        uri: &CupsUri,
    ) -> Result<(Transport, AuthMode, Option<Vec<u8>>), StationError> {
        if !uri.tls {
            return Ok((Transport::Plain, AuthMode::Plain, None));
        }
        let stem = set.stem(Category::Cups);
        let trust = self
            .cred_file(&format!("{stem}.trust"))
            .ok_or_else(|| StationError::Tls(format!("{stem}.trust missing: https unusable")))?;
        let crt = self.cred_file(&format!("{stem}.crt"));
        let key = self.cred_file(&format!("{stem}.key"));
        let (auth, client, token) = match (&crt, &key) {
            (Some(c), Some(k)) => (AuthMode::ClientCert, Some((&c[..], &k[..])), None),
            (None, Some(k)) => {
                let t = normalize_token(k).map_err(StationError::Tls)?;
                (AuthMode::Token, None, Some(t))
            }
            _ => (AuthMode::ServerOnly, None, None),
        };
        let sn = server_name(&uri.host).map_err(StationError::Tls)?;
        if matches!(sn, rustls::pki_types::ServerName::IpAddress(_)) && !self.allow_ip_host {
            return Err(StationError::Tls(format!(
                "URI host {} is an IP address; mbedTLS 2.28 is assumed unable to match IP SANs \
                 (set allow_ip_host to try anyway)",
                uri.host
            )));
        }
        let config = client_config(&trust, client, self.tls12_only).map_err(StationError::Tls)?;
        let transport = Transport::Tls {
            config,
            server_name: uri.host.clone(),
        };
        Ok((transport, auth, token))
    }

    async fn session(
        &mut self,
        set: CredSet,
        resolve: SocketAddr,
        out: &mut PollOutcome,
    ) -> Result<(), StationError> {
        let uri_text = self
            .read_uri(set, Category::Cups)
            .ok_or(StationError::NoUri(set))?;
        out.uri = Some(uri_text.clone());
        let uri = parse_cups_uri(&uri_text).map_err(StationError::BadUri)?;
        let (transport, auth, token) = self.transport_for(set, &uri)?;
        out.auth = Some(auth);
        out.request = self.request_bytes(&uri.host_port, token.as_deref());

        let mut done = |b: &[u8]| !matches!(parse_prefix(b).state, ParseState::NeedMore(_));
        let resp = exchange(resolve, &transport, &out.request, &self.read, &mut done).await?;
        out.status = Some(resp.status);
        out.body = resp.body.clone();
        out.response = Some(resp.clone());
        if resp.status != 200 {
            return Err(StationError::Rejected(resp.status));
        }
        if set == CredSet::Reg {
            self.backup_once(out);
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            return Err(StationError::Protocol(
                "chunked transfer-encoding is not understood".into(),
            ));
        }
        let Some(cl) = resp.content_length else {
            return Err(StationError::Protocol(format!(
                "no Content-Length: Received more data than expected HTTP content size: {} extra bytes",
                resp.body.len()
            )));
        };
        let parsed = parse_prefix(&resp.body[..resp.accepted_len]);
        out.answer = Some(parsed.answer.clone());
        if parsed.committed {
            self.commit(&parsed.answer, out);
        }
        if resp.overrun {
            return Err(StationError::Protocol(format!(
                "Received more data than expected HTTP content size: {} extra bytes",
                resp.body.len() - cl
            )));
        }
        match parsed.state {
            ParseState::Complete => {
                self.check_update(&parsed.answer, out);
                Ok(())
            }
            ParseState::Invalid(e) => Err(StationError::Protocol(e)),
            ParseState::NeedMore(e) => {
                if let Some(err) = resp.read_error {
                    Err(err)
                } else if resp.early_eof {
                    Err(StationError::Interrupted(format!(
                        "peer closed after {} of {cl} body bytes ({e})",
                        resp.body.len()
                    )))
                } else if self
                    .read
                    .max_body_bytes
                    .is_some_and(|m| resp.body.len() >= m && resp.body.len() < cl)
                {
                    Err(StationError::Interrupted(format!(
                        "simulator dropped the connection after {} body bytes",
                        resp.body.len()
                    )))
                } else {
                    Err(StationError::Protocol(e))
                }
            }
        }
    }

    /// §4 step 1: first 200 via REG copies `cups.{trust,crt,key,uri}` to
    /// `cups-bak.*` once, marked by `cups-bak.done`.
    fn backup_once(&self, out: &mut PollOutcome) {
        if self.exists("cups-bak.done") {
            return;
        }
        for ext in ["trust", "crt", "key", "uri"] {
            if let Some(b) = self.read_file(&format!("cups.{ext}")) {
                let name = format!("cups-bak.{ext}");
                self.write_file(&name, b);
                out.backed_up.push(name);
            }
        }
        self.write_file("cups-bak.done", b"");
    }

    /// §4 steps 2–6: write URIs and split credentials into the REG sets.
    fn commit(&self, a: &Answer, out: &mut PollOutcome) {
        out.committed = true;
        let write = |name: &str, b: &[u8], written: &mut Vec<String>| {
            self.write_file(name, b);
            written.push(name.to_string());
        };
        if let Some(u) = &a.cups_uri {
            write("cups.uri", u, &mut out.written);
        }
        if let Some(u) = &a.tc_uri {
            write("tc.uri", u, &mut out.written);
        }
        for (cat, blob) in [(Category::Cups, &a.cups_cred), (Category::Tc, &a.tc_cred)] {
            let Some(blob) = blob else { continue };
            let result = match split_cred(blob) {
                Ok(parts) => {
                    let stem = CredSet::Reg.stem(cat);
                    write(&format!("{stem}.trust"), &parts.trust, &mut out.written);
                    write(&format!("{stem}.crt"), &parts.cert, &mut out.written);
                    write(&format!("{stem}.key"), &parts.key, &mut out.written);
                    CredResult::Installed(parts)
                }
                Err(e) => CredResult::Rejected(e),
            };
            match cat {
                Category::Cups => out.cups_cred = Some(result),
                Category::Tc => out.tc_cred = Some(result),
            }
        }
    }

    /// §4 step 9 / §7: decide whether station would run the update.
    fn check_update(&self, a: &Answer, out: &mut PollOutcome) {
        let Some(data) = &a.update else { return };
        let (verified_key, would_run) = match &a.signature {
            Some(sig) => {
                let k = self
                    .sig_keys()
                    .iter()
                    .position(|key| verify_update(data, sig, key));
                (k, k.is_some())
            }
            None => (None, !self.exists("sig-0.key")),
        };
        out.update = Some(UpdateResult {
            data: data.clone(),
            signed: a.signature.is_some(),
            verified_key,
            would_run,
        });
    }
}
