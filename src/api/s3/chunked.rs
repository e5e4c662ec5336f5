//! `Content-Encoding: aws-chunked` with `x-amz-content-sha256:
//! STREAMING-UNSIGNED-PAYLOAD-TRAILER`, what current AWS SDKs and the aws CLI send
//! for a PutObject: `hex-size\r\n data \r\n` chunks, a zero chunk, then trailer
//! lines (a checksum such as `x-amz-checksum-crc32:BASE64`) and an empty line.
//! `decode` turns such a body into the plain bytes, checking a CRC32 trailer;
//! a malformed body is an error, so nothing is stored.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

pub const UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// The decoded body, fed by a task that reads the raw one.
pub struct Decoded {
    rx: mpsc::Receiver<Result<Bytes, String>>,
}

impl http_body::Body for Decoded {
    type Data = Bytes;
    type Error = String;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, String>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// Decodes `raw`; `trailer` is the `x-amz-trailer` header (lower case).
pub fn decode(raw: Body, trailer: Option<String>, idle: Duration) -> Decoded {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = run(raw, trailer, idle, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Decoded { rx }
}

struct Reader {
    raw: Body,
    buf: BytesMut,
    idle: Duration,
}

impl Reader {
    /// Reads more raw bytes; false at the end of the body.
    async fn fill(&mut self) -> Result<bool, String> {
        loop {
            match tokio::time::timeout(self.idle, self.raw.frame()).await {
                Err(_) => return Err(format!("no data for {} s", self.idle.as_secs())),
                Ok(None) => return Ok(false),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                        return Ok(true);
                    }
                }
            }
        }
    }

    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(i);
                self.buf.advance(2);
                return String::from_utf8(line.to_vec())
                    .map_err(|_| "aws-chunked line is not text".to_string());
            }
            if self.buf.len() > MAX_LINE {
                return Err("aws-chunked line too long".into());
            }
            if !self.fill().await? {
                return Err("aws-chunked body ended early".into());
            }
        }
    }
}

async fn run(
    raw: Body,
    trailer: Option<String>,
    idle: Duration,
    tx: &mpsc::Sender<Result<Bytes, String>>,
) -> Result<(), String> {
    let mut r = Reader {
        raw,
        buf: BytesMut::new(),
        idle,
    };
    let mut crc = crc32fast::Hasher::new();
    loop {
        let line = r.line().await?;
        let size_hex = line.split(';').next().unwrap_or("");
        let mut left = usize::from_str_radix(size_hex.trim(), 16)
            .map_err(|_| "aws-chunked chunk size is not hex".to_string())?;
        if left == 0 {
            break;
        }
        while left > 0 {
            if r.buf.is_empty() && !r.fill().await? {
                return Err("aws-chunked body ended inside a chunk".into());
            }
            let take = left.min(r.buf.len());
            let data = r.buf.split_to(take).freeze();
            crc.update(&data);
            left -= take;
            if tx.send(Ok(data)).await.is_err() {
                return Ok(());
            }
        }
        if !r.line().await?.is_empty() {
            return Err("aws-chunked chunk is longer than its size".into());
        }
    }
    let crc = crc.finalize();
    loop {
        let line = r.line().await?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or("aws-chunked trailer line has no ':'")?;
        let name = name.trim().to_ascii_lowercase();
        if name == "x-amz-checksum-crc32" {
            use base64::Engine;
            let want = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
            if value.trim() != want {
                return Err("the x-amz-checksum-crc32 trailer does not match the data".into());
            }
        } else if trailer.as_deref() == Some(name.as_str()) {
            // Another checksum kind: the body is kept without checking it (the
            // blob Id is its SHA-256, which the operator can compare).
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(raw: &'static [u8]) -> Result<Vec<u8>, String> {
        let body = decode(
            Body::from(raw),
            Some("x-amz-checksum-crc32".into()),
            Duration::from_secs(5),
        );
        body.collect().await.map(|c| c.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn decodes_chunks_and_checks_crc() {
        // crc32("hello world") = 0x0d4a1185 -> DUoRhQ==
        let ok = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        assert_eq!(collect(ok).await.unwrap(), b"hello world");
        let bad = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        assert!(collect(bad).await.is_err());
        assert!(collect(b"5\r\nhel").await.is_err());
        assert!(collect(b"zz\r\nhello\r\n").await.is_err());
    }
}
