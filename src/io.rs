//! The socket under every transport, and what it reports: [`Progress`]
//! counts the bytes that really left the process and notes when the socket
//! is full, which is what a client's byte budget is measured against.
//!
//! A connection served by hyper owns its socket through [`CountingIo`],
//! behind [`Prefixed`] (the bytes read while looking at the first request
//! head come first); a direct stream owns its socket and reports to its
//! [`Progress`] itself ([`crate::direct`]). [`shutdown_write`] ends either
//! with a FIN.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What a client's connection reports back about its socket: bytes written,
/// and whether the last write found the socket full. Only a client whose
/// socket is full can be "slow": one that is merely waiting for its turn on a
/// busy machine is still draining.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes written to the socket so far.
    pub written: AtomicU64,
    /// The socket refused more data at the last attempt (the client is not reading fast enough).
    pub blocked: AtomicBool,
    /// The socket carries several clients' streams (HTTP/2): what it
    /// accepts says nothing about one of them.
    pub multiplexed: AtomicBool,
}

/// A TCP stream as hyper sees it, reporting to [`Progress`].
pub struct CountingIo {
    stream: TcpStream,
    progress: Arc<Progress>,
}

impl CountingIo {
    /// Wraps `stream`, reporting writes to `progress`.
    pub fn new(stream: TcpStream, progress: Arc<Progress>) -> Self {
        CountingIo { stream, progress }
    }

    fn wrote(&self, n: usize) {
        self.progress.written.fetch_add(n as u64, Ordering::Relaxed);
        self.progress.blocked.store(false, Ordering::Relaxed);
    }

    /// Writes with `write` once the socket takes data, counting what it took.
    fn write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_writable(cx))?;
            match write(&self.stream) {
                Ok(n) => {
                    self.wrote(n);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Waits for the socket to take more data, noting when it is full.
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let ready = self.stream.poll_write_ready(cx);
        if ready.is_pending() {
            self.progress.blocked.store(true, Ordering::Relaxed);
        }
        ready
    }
}

impl AsyncRead for CountingIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read_buf(buf) {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_with(cx, |s| s.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write_with(cx, |s| s.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shutdown_write(&self.stream))
    }
}

/// Half-closes the write side (a FIN after the last answer) at once, through
/// a shared reference and without an async context, so the client sees a
/// clean end even while the socket stays open. A socket that is no longer
/// connected (the peer reset it) has nothing left to close: no error.
pub fn shutdown_write(stream: &TcpStream) -> io::Result<()> {
    match socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// An I/O object that first yields `prefix` (bytes already read from the
/// socket while looking at the first request head), then reads from `inner`.
pub struct Prefixed<T> {
    prefix: bytes::Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    /// `inner`, with `prefix` to be read first.
    pub fn new(prefix: bytes::Bytes, inner: T) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
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
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpSocket};
    use tokio::time::timeout;

    /// Long enough for anything that should happen at once, even on a
    /// loaded machine; short enough that a hung test fails quickly.
    pub(crate) const SOON: Duration = Duration::from_secs(5);

    /// A loopback connection: (the server's end, the client's end). With
    /// `small`, both ends get small kernel buffers, so a peer that does not
    /// read fills them quickly.
    pub(crate) async fn pair(small: bool) -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        if small {
            socket.set_recv_buffer_size(4096).unwrap();
        }
        let client = socket
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        if small {
            socket2::SockRef::from(&server)
                .set_send_buffer_size(4096)
                .unwrap();
        }
        (server, client)
    }

    /// The next `n` bytes from `peer` (panics after [`SOON`]).
    pub(crate) async fn read_exactly(peer: &mut (impl AsyncRead + Unpin), n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        timeout(SOON, peer.read_exact(&mut got))
            .await
            .expect("the bytes came in time")
            .unwrap();
        got
    }

    /// Everything `peer` has until it closes (panics after [`SOON`]).
    pub(crate) async fn read_to_close(peer: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
        let mut got = Vec::new();
        timeout(SOON, peer.read_to_end(&mut got))
            .await
            .expect("the peer closed in time")
            .unwrap();
        got
    }

    fn counted(progress: &Progress) -> (u64, bool) {
        (
            progress.written.load(Ordering::Relaxed),
            progress.blocked.load(Ordering::Relaxed),
        )
    }

    #[tokio::test]
    async fn counting_io_counts_every_byte_the_socket_took() {
        let (server, mut client) = pair(false).await;
        let progress = Arc::new(Progress::default());
        let mut io = CountingIo::new(server, Arc::clone(&progress));
        io.write_all(b"hello").await.unwrap();
        assert_eq!(counted(&progress), (5, false));
        let parts = [io::IoSlice::new(b"ab"), io::IoSlice::new(b"cd")];
        assert_eq!(io.write_vectored(&parts).await.unwrap(), 4);
        assert_eq!(counted(&progress), (9, false));
        assert_eq!(read_exactly(&mut client, 9).await, b"helloabcd");
    }

    #[tokio::test]
    async fn a_full_socket_marks_the_connection_blocked_until_it_takes_data_again() {
        let (server, mut client) = pair(true).await;
        let progress = Arc::new(Progress::default());
        let mut io = CountingIo::new(server, Arc::clone(&progress));
        let block = vec![b'x'; 64 * 1024];
        let mut taken = 0;
        // The peer reads nothing: the kernel's buffers fill within a few MiB.
        for _ in 0..1024 {
            let poll =
                std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut io).poll_write(cx, &block)))
                    .await;
            match poll {
                Poll::Ready(written) => taken += written.unwrap(),
                Poll::Pending => break,
            }
        }
        assert_eq!(counted(&progress), (taken as u64, true));
        assert_eq!(read_exactly(&mut client, taken).await.len(), taken);
        io.write_all(b"!").await.unwrap();
        assert_eq!(counted(&progress), (taken as u64 + 1, false));
        assert_eq!(read_exactly(&mut client, 1).await, b"!");
    }

    #[tokio::test]
    async fn prefixed_yields_the_prefix_first_then_the_inner_reader() {
        let mut io = Prefixed::new(bytes::Bytes::from_static(b"abc"), &b"def"[..]);
        let mut reads = Vec::new();
        loop {
            let mut buf = [0; 2];
            let n = io.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            reads.push(buf[..n].to_vec());
        }
        // The prefix is never joined with the inner reader's bytes in one read.
        let expected: [&[u8]; 4] = [b"ab", b"c", b"de", b"f"];
        assert_eq!(reads, expected);
    }

    #[tokio::test]
    async fn prefixed_writes_and_shuts_down_through_to_the_inner_stream() {
        let (inner, mut peer) = tokio::io::duplex(64);
        let mut io = Prefixed::new(bytes::Bytes::from_static(b"head"), inner);
        io.write_all(b"answer").await.unwrap();
        io.shutdown().await.unwrap();
        assert_eq!(read_to_close(&mut peer).await, b"answer");
    }

    #[tokio::test]
    async fn shutdown_write_sends_a_fin_and_the_socket_still_reads() {
        let (server, mut client) = pair(false).await;
        shutdown_write(&server).unwrap();
        assert_eq!(read_to_close(&mut client).await, b"");
        client.write_all(b"late").await.unwrap();
        let mut server = server;
        assert_eq!(read_exactly(&mut server, 4).await, b"late");
    }

    #[tokio::test]
    async fn shutdown_write_on_a_socket_that_is_not_connected_is_no_error() {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_nonblocking(true).unwrap();
        let stream = TcpStream::from_std(socket.into()).unwrap();
        let raw = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
        assert_eq!(raw.unwrap_err().kind(), io::ErrorKind::NotConnected);
        shutdown_write(&stream).unwrap();
    }
}
