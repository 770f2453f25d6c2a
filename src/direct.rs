//! An event stream served without hyper, on a connection whose first request
//! was for a stream path.
//!
//! The whole connection is one small future: it writes the response head,
//! then each batch the stream yields as one vectored write of
//! `[chunk size, event, event, …, CRLF]` straight from the shared event
//! buffers, and watches the socket for the client going away. It keeps no
//! read buffer and no write buffer of its own beyond the batch being written,
//! which is what makes an idle stream cheap.

use crate::chunks::Chunks;
use crate::connection::ConnState;
use crate::stream::EventStream;
use bytes::{Buf, Bytes};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

/// How a direct stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Ended by the server (close, disconnect) after the terminating chunk.
    Ended,
    /// The client went away, or the socket failed.
    Gone,
    /// Dropped as too slow.
    Evicted,
}

/// The response head of a stream served without hyper, as bytes, and
/// whether its body is chunked (HTTP/1.1; an HTTP/1.0 client gets the raw
/// stream, ended by closing the connection).
pub(crate) fn response_head(
    mut response: http::Response<crate::body::ResponseBody>,
    version: http::Version,
) -> (bytes::Bytes, bool) {
    let chunked = version == http::Version::HTTP_11;
    if chunked {
        response.headers_mut().insert(
            http::header::TRANSFER_ENCODING,
            http::HeaderValue::from_static("chunked"),
        );
    }
    let mut head = crate::http1::encode_head(&response, version);
    head.extend_from_slice(b"\r\n");
    (head.freeze(), chunked)
}

/// The future that serves one direct stream.
pub struct DirectStream {
    socket: TcpStream,
    stream: EventStream,
    conn: Arc<ConnState>,
    /// What is being written now. Boxed: an idle stream, the common case,
    /// then carries one pointer instead of a whole frame.
    out: Option<Box<Chunks>>,
    chunked: bool,
    ending: bool,
}

const TERMINATOR: &[u8] = b"0\r\n\r\n";
const CRLF: &[u8] = b"\r\n";

impl DirectStream {
    /// Serves `stream` on `socket`, starting with the response `head`.
    /// `chunked` is false for HTTP/1.0 clients, which get the raw stream and
    /// a close at the end.
    pub fn new(
        socket: TcpStream,
        head: Bytes,
        stream: EventStream,
        conn: Arc<ConnState>,
        chunked: bool,
    ) -> Self {
        DirectStream {
            socket,
            stream,
            conn,
            out: Some(Box::new(Chunks::one(head))),
            chunked,
            ending: false,
        }
    }

    fn frame(&self, data: Chunks) -> Chunks {
        if !self.chunked {
            return data;
        }
        let size = Bytes::from(format!("{:X}\r\n", data.remaining()));
        data.wrap(size, Bytes::from_static(CRLF))
    }

    /// Notices the client closing its side; anything it sends is discarded.
    fn poll_client_gone(&self, cx: &mut Context<'_>) -> bool {
        loop {
            match self.socket.poll_read_ready(cx) {
                Poll::Pending => return false,
                Poll::Ready(Err(_)) => return true,
                Poll::Ready(Ok(())) => {
                    let mut sink = [0u8; 256];
                    match self.socket.try_read(&mut sink) {
                        Ok(0) => return true,
                        Ok(_) => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(_) => return true,
                    }
                }
            }
        }
    }
}

impl Future for DirectStream {
    type Output = Finished;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Finished> {
        let this = &mut *self;
        if this.poll_client_gone(cx) {
            return Poll::Ready(Finished::Gone);
        }
        let progress = Arc::clone(&this.conn.progress);
        loop {
            if this.stream.client().must_drop() {
                return Poll::Ready(Finished::Evicted);
            }
            if let Some(out) = this.out.as_mut() {
                if out.is_empty() {
                    this.out = None;
                    if this.ending {
                        let _ = crate::io::shutdown_write(&this.socket);
                        return Poll::Ready(Finished::Ended);
                    }
                    continue;
                }
                if this.socket.poll_write_ready(cx).is_pending() {
                    // The socket is full: the client is not keeping up. Stay
                    // wakeable by publishes so eviction can still happen.
                    progress.blocked.store(true, Ordering::Relaxed);
                    this.stream.client().register(cx.waker());
                    return Poll::Pending;
                }
                // A whole batch (up to 256 events, plus framing) in one writev.
                let mut slices = [IoSlice::new(&[]); 260];
                let n = out.chunks_vectored(&mut slices);
                match this.socket.try_write_vectored(&slices[..n]) {
                    Ok(written) => {
                        progress
                            .written
                            .fetch_add(written as u64, Ordering::Relaxed);
                        progress.blocked.store(false, Ordering::Relaxed);
                        out.advance(written);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return Poll::Ready(Finished::Gone),
                }
                continue;
            }
            if this.ending {
                return Poll::Ready(Finished::Ended);
            }
            match this.stream.poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.out = Some(Box::new(this.frame(data)));
                    }
                }
                Poll::Ready(None) => {
                    this.ending = true;
                    if this.chunked {
                        this.out = Some(Box::new(Chunks::one(Bytes::from_static(TERMINATOR))));
                    }
                }
                Poll::Ready(Some(Err(_))) => return Poll::Ready(Finished::Evicted),
            }
        }
    }
}
