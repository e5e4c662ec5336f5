//! How a TLS connection ends when the peer closes first. Station reads the CUPS
//! answer, sends its close_notify and closes the socket at once (cups.c
//! `http_close`); a close_notify of ours after that is a write to a socket
//! nobody reads, and it draws a TCP reset. So, as nginx does (it sets its
//! `no_send_shutdown` once the peer's close_notify has arrived), a connection
//! whose peer has ended its side is closed without a close_notify of our own:
//! `QuietClose` makes the shutdown a no-op and the socket closes when dropped.
//! A connection the server ends first (`Connection: close`, a timeout, a
//! shutdown) still sends its close_notify. TLS 1.2 (RFC 5246 §7.2.1) asks the
//! receiver of a close_notify to answer with its own; station has closed its
//! socket by then, so that answer could never be read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct QuietClose<S> {
    inner: S,
    /// A read has returned end-of-stream: the peer ended its side.
    peer_closed: bool,
}

impl<S> QuietClose<S> {
    pub fn new(inner: S) -> QuietClose<S> {
        QuietClose {
            inner,
            peer_closed: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for QuietClose<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
            self.peer_closed = true;
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for QuietClose<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.peer_closed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
