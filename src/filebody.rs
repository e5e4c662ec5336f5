//! A streaming HTTP body: some head bytes, then a file, read in 64 KiB chunks so
//! memory stays flat whatever the file's size. It declares its exact length (so
//! hyper writes `Content-Length`, never chunked), counts what it handed over, and
//! reports once, when it ends or is dropped, how many bytes went out and whether
//! that was all of them. The CUPS face streams `update.bin` with it; the CLI
//! streams uploads with it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, Take};
use tokio_util::io::ReaderStream;

const CHUNK: usize = 64 * 1024;

type Done = Box<dyn FnOnce(u64, bool) + Send + Sync>;
type Progress = Box<dyn FnMut(u64) + Send + Sync>;

pub struct FileBody {
    head: Option<Bytes>,
    file: ReaderStream<Take<File>>,
    total: u64,
    sent: u64,
    on_done: Option<Done>,
    on_progress: Option<Progress>,
}

impl FileBody {
    /// `head` then the first `len` bytes of `file`.
    pub fn new(head: Bytes, file: File, len: u64) -> FileBody {
        FileBody {
            total: head.len() as u64 + len,
            head: (!head.is_empty()).then_some(head),
            file: ReaderStream::with_capacity(file.take(len), CHUNK),
            sent: 0,
            on_done: None,
            on_progress: None,
        }
    }

    /// Called once with (bytes handed to the connection, whether that was all).
    pub fn on_done(mut self, f: impl FnOnce(u64, bool) + Send + Sync + 'static) -> FileBody {
        self.on_done = Some(Box::new(f));
        self
    }

    /// Called after every chunk with the bytes sent so far.
    pub fn on_progress(mut self, f: impl FnMut(u64) + Send + Sync + 'static) -> FileBody {
        self.on_progress = Some(Box::new(f));
        self
    }

    fn advance(&mut self, n: usize) {
        self.sent += n as u64;
        if let Some(p) = self.on_progress.as_mut() {
            p(self.sent);
        }
        if self.sent == self.total {
            self.finish(true);
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(done) = self.on_done.take() {
            done(self.sent, complete);
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(head) = self.head.take() {
            self.advance(head.len());
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        match Pin::new(&mut self.file).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                self.advance(chunk.len());
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if self.sent < self.total => {
                // The file shrank under us: failing is better than a short body
                // that the gateway would read as "Unexpected end of data".
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("file ended after {} of {} bytes", self.sent, self.total),
                ))))
            }
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.total
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total - self.sent)
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        self.finish(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn streams_head_then_file_and_reports_completion() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let seen = Arc::new(Mutex::new(None));
        let s2 = seen.clone();
        let body = FileBody::new(
            Bytes::from_static(b"HEAD"),
            File::open(&p).await.unwrap(),
            200_000,
        )
        .on_done(move |n, complete| *s2.lock().unwrap() = Some((n, complete)));
        assert_eq!(body.size_hint().exact(), Some(200_004));
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..4], b"HEAD");
        assert_eq!(&out[4..], &data[..]);
        assert_eq!(*seen.lock().unwrap(), Some((200_004, true)));
    }

    #[tokio::test]
    async fn dropping_early_reports_an_incomplete_transfer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 300_000]).unwrap();
        let seen = Arc::new(Mutex::new(None));
        let s2 = seen.clone();
        let mut body = FileBody::new(
            Bytes::from_static(b"H"),
            File::open(&p).await.unwrap(),
            300_000,
        )
        .on_done(move |n, complete| *s2.lock().unwrap() = Some((n, complete)));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap().len(), 1);
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert_eq!(*seen.lock().unwrap(), Some((1 + CHUNK as u64, false)));
    }

    #[tokio::test]
    async fn a_short_file_is_an_error_not_a_short_body() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let body = FileBody::new(Bytes::new(), File::open(&p).await.unwrap(), 10);
        assert!(body.collect().await.is_err());
    }
}
