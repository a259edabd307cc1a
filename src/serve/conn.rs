//! The server's connections: a listener whose sockets give up on a client that stops
//! reading. A response waits at most `stream_idle_secs` for the socket to take more bytes;
//! then the write fails, the connection closes, and what fed the response (an answer's
//! stream) sees its reader gone. Without it a client that never reads would hold its
//! connection, and the answer behind it, for ever.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// A TCP listener handing out [`StallGuard`]ed sockets.
pub struct GuardedListener {
    inner: TcpListener,
    stall: Duration,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, stall: Duration) -> GuardedListener {
        GuardedListener { inner, stall }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = StallGuard<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, address) = axum::serve::Listener::accept(&mut self.inner).await;
        (StallGuard::new(io, self.stall), address)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A socket whose writes fail with `TimedOut` once they have waited `stall` without the
/// peer taking a byte. Reads are untouched.
pub struct StallGuard<T> {
    inner: T,
    stall: Duration,
    /// Running while a write is blocked; cleared by any progress.
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    pub fn new(inner: T, stall: Duration) -> StallGuard<T> {
        StallGuard {
            inner,
            stall,
            waiting: None,
        }
    }

    /// Passes on a ready write (resetting the clock), or turns a blocked one into an error
    /// once it has been blocked too long.
    fn guard<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(result) => {
                self.waiting = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let stall = self.stall;
                let timer = self
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client took nothing for {} s", stall.as_secs()),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.guard(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.guard(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.guard(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A peer that reads nothing: writes fill its window, then fail after the stall time
    /// instead of waiting for ever. A peer that reads keeps the connection.
    #[tokio::test]
    async fn writes_to_a_peer_that_does_not_read_fail_after_the_stall_time() {
        let (reader, writer) = tokio::io::duplex(1024);
        let mut guarded = StallGuard::new(writer, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let mut written = 0usize;
        let error = loop {
            match guarded.write(&[b'x'; 256]).await {
                Ok(n) => written += n,
                Err(e) => break e,
            }
            assert!(written <= 1024, "the pipe holds 1024 bytes");
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(written, 1024);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
            "{waited:?}"
        );

        // Reading in time resets the clock: 2 KiB through a 1 KiB pipe, slowly read.
        let (mut reader2, writer2) = tokio::io::duplex(1024);
        let mut guarded = StallGuard::new(writer2, Duration::from_millis(300));
        let drain = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut total = 0;
            let mut buf = [0u8; 512];
            while total < 2048 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                total += reader2.read(&mut buf).await.expect("read");
            }
            total
        });
        guarded
            .write_all(&[b'y'; 2048])
            .await
            .expect("a reading peer");
        assert_eq!(drain.await.expect("drain"), 2048);
        drop(reader);
    }
}
