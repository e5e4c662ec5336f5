//! Request side of a CUPS session: ID6 router text (spec §2.1), credential and
//! signing-key CRCs (§6.4, §7), token normalisation (§6.3), the JSON body (§2)
//! and the HTTP request bytes (§1).

/// Formats a 64-bit EUI the way station writes `router` (§2.1, uj.c `encId6`).
pub fn id6(eui: u64) -> String {
    let g = [
        (eui >> 48) as u16,
        (eui >> 32) as u16,
        (eui >> 16) as u16,
        eui as u16,
    ];
    match g {
        [0, 0, 0, g3] => format!("::{g3:x}"),
        [0, 0, g2, g3] => format!("::{g2:x}:{g3:x}"),
        [g0, 0, 0, 0] => format!("{g0:x}::"),
        [g0, g1, 0, 0] => format!("{g0:x}:{g1:x}::"),
        [g0, 0, 0, g3] => format!("{g0:x}::{g3:x}"),
        [g0, g1, g2, g3] => format!("{g0:x}:{g1:x}:{g2:x}:{g3:x}"),
    }
}

/// Station's running CRC32 over the trust, crt and key file contents of one
/// credential set (§6.4). `None` or an empty slice stands for a missing/empty
/// file and contributes 4 zero bytes.
pub fn cred_crc(parts: [Option<&[u8]>; 3]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for part in parts {
        match part {
            Some(bytes) if !bytes.is_empty() => h.update(bytes),
            _ => h.update(&[0u8; 4]),
        }
    }
    h.finalize()
}

/// Plain IEEE CRC32 (the `keys` entries and the wire keyCRC).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Validates and normalises token file contents as station does before
/// appending them to the request (§6.3): each line must be `Name: value` with
/// a name of `[A-Za-z0-9_-]+`; `\n` and `\r\n` endings both become `\r\n`;
/// trailing empty lines are removed. Returns the header lines, each ending in
/// `\r\n`. A malformed token is an error (station: the TLS setup fails).
pub fn normalize_token(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut lines: Vec<&[u8]> = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        return Err("token file holds no header line".into());
    }
    let mut out = Vec::with_capacity(raw.len() + 2);
    for line in lines {
        let name_len = line
            .iter()
            .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            .count();
        if name_len == 0 || !line[name_len..].starts_with(b": ") {
            return Err(format!(
                "malformed token line {:?}",
                String::from_utf8_lossy(line)
            ));
        }
        if line.contains(&b'\r') {
            return Err("bare CR inside a token line".into());
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// The values station reports in its request (§2). All of them come from the
/// REGULAR credential sets, whatever set the session runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub router: u64,
    pub cups_uri: Option<String>,
    pub tc_uri: Option<String>,
    pub cups_cred_crc: u32,
    pub tc_cred_crc: u32,
    pub station: String,
    pub model: String,
    pub package: Option<String>,
    pub keys: Vec<u32>,
}

fn json_str(s: Option<&str>) -> String {
    match s {
        Some(s) => serde_json::to_string(s).expect("string encodes"),
        None => "null".to_string(),
    }
}

impl RequestInfo {
    /// The exact JSON body: fixed key order, no whitespace.
    pub fn to_json(&self) -> String {
        let keys: Vec<String> = self.keys.iter().map(u32::to_string).collect();
        format!(
            "{{\"router\":{},\"cupsUri\":{},\"tcUri\":{},\"cupsCredCrc\":{},\"tcCredCrc\":{},\
             \"station\":{},\"model\":{},\"package\":{},\"keys\":[{}]}}",
            json_str(Some(&id6(self.router))),
            json_str(self.cups_uri.as_deref()),
            json_str(self.tc_uri.as_deref()),
            self.cups_cred_crc,
            self.tc_cred_crc,
            json_str(Some(&self.station)),
            json_str(Some(&self.model)),
            json_str(self.package.as_deref()),
            keys.join(","),
        )
    }
}

/// The exact HTTP request bytes station sends (§1): request line, `Host`,
/// `Content-Type`, `Content-Length` left-padded to 5 characters, then the
/// token header lines verbatim (already normalised, each ending in `\r\n`),
/// the blank line and the body.
pub fn build_request(host_port: &str, token_lines: Option<&[u8]>, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /update-info HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\n\
         Content-Length: {:>5}\r\n",
        body.len()
    )
    .into_bytes();
    if let Some(lines) = token_lines {
        req.extend_from_slice(lines);
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    req
}
