//! The direct transport: event streams served on a socket without hyper.
//! A `listen()` connection whose first request is for a stream path gets one
//! ([`crate::accept`]), and so does a socket another server handed over
//! ([`crate::handoff`], native).
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
    /// Ended by the server (close, disconnect) after the terminating chunk
    /// (HTTP/1.0: after its last event; the close ends the body).
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
    /// Serves `stream` on `socket`, starting with `head`: the response head,
    /// or what of it the socket did not take at once (a handed-over socket).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::ResponseBody;
    use crate::event::Event;
    use crate::event::Payload;
    use crate::hub::{Client, Eviction, Hub, Retention, Subscription};
    use crate::io::tests::{pair, read_exactly, read_to_close, SOON};
    use crate::stats::Stats;
    use std::time::Duration;
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    fn stream_response() -> http::Response<ResponseBody> {
        http::Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(ResponseBody::Empty)
            .unwrap()
    }

    /// A hub without ids (so the bytes are predictable), its fan-out running.
    fn hub(budget: u64) -> Arc<Hub> {
        let hub = Hub::new(Retention {
            history: 0,
            max_buffered_bytes: budget,
            stall_timeout: None,
        });
        tokio::spawn(Arc::clone(&hub).run_fanout());
        hub
    }

    fn event(data: &str) -> Payload {
        Payload::Event(Event::message(data))
    }

    /// A direct stream of a new client of `hub` on `socket`, not started.
    fn direct(
        hub: &Arc<Hub>,
        socket: TcpStream,
        version: http::Version,
        preamble: Option<&'static [u8]>,
    ) -> (DirectStream, Arc<ConnState>) {
        let conn = Arc::new(ConnState::default());
        let progress = Arc::clone(&conn.progress);
        let (subscriber, _) =
            hub.subscribe(Subscription::new(hub.next_client_id(), &[], None, progress));
        let stream = EventStream::new(
            subscriber,
            preamble.map(Bytes::from_static),
            None,
            Arc::new(Stats::default()),
            None,
            None,
            Arc::clone(&conn),
        );
        let (head, chunked) = response_head(stream_response(), version);
        let direct = DirectStream::new(socket, head, stream, Arc::clone(&conn), chunked);
        (direct, conn)
    }

    /// Reads exactly as many bytes as `expected` has, and compares.
    async fn expect(client: &mut TcpStream, expected: &[u8]) {
        let got = read_exactly(client, expected.len()).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    type Served = JoinHandle<(Finished, DirectStream)>;

    /// Runs `direct` on a task of its own. The task's result keeps the
    /// finished stream, and so its socket, open: what the client reads
    /// before [`finished`] is what the stream wrote, not what closing the
    /// socket did.
    fn run(direct: DirectStream) -> Served {
        tokio::spawn(async move {
            let mut direct = direct;
            let end = (&mut direct).await;
            (end, direct)
        })
    }

    /// How the stream ended; its socket closes now.
    async fn finished(served: Served) -> Finished {
        let (end, _closed) = timeout(SOON, served)
            .await
            .expect("the stream ended")
            .unwrap();
        end
    }

    const HEAD_11: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
    const HEAD_10: &[u8] =
        b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";

    #[test]
    fn an_http_1_1_head_announces_chunked_framing() {
        let (head, chunked) = response_head(stream_response(), http::Version::HTTP_11);
        assert_eq!(&head[..], HEAD_11);
        assert!(chunked);
    }

    #[test]
    fn an_http_1_0_head_has_no_framing_the_close_ends_the_body() {
        let (head, chunked) = response_head(stream_response(), http::Version::HTTP_10);
        assert_eq!(&head[..], HEAD_10);
        assert!(!chunked);
    }

    #[tokio::test]
    async fn a_stream_writes_its_head_each_batch_as_one_chunk_and_the_terminator_at_close() {
        let hub = hub(1 << 20);
        let (server, mut client) = pair(false).await;
        let (direct, conn) = direct(
            &hub,
            server,
            http::Version::HTTP_11,
            Some(b"retry: 1000\n\n"),
        );
        // Published before the stream runs: one batch, one chunk.
        hub.publish(&[], &event("a"));
        hub.publish(&[], &event("b"));
        let served = run(direct);
        let parts: [&[u8]; 5] = [
            HEAD_11,
            b"D\r\nretry: 1000\n\n\r\n",
            b"12\r\ndata: a\n\ndata: b\n\n\r\n",
            b"9\r\ndata: c\n\n\r\n",
            TERMINATOR,
        ];
        for part in &parts[..3] {
            expect(&mut client, part).await;
        }
        hub.publish(&[], &event("c"));
        expect(&mut client, parts[3]).await;
        hub.close();
        assert_eq!(read_to_close(&mut client).await, parts[4]);
        assert_eq!(finished(served).await, Finished::Ended);
        let total: usize = parts.iter().map(|p| p.len()).sum();
        assert_eq!(conn.progress.written.load(Ordering::Relaxed), total as u64);
        assert!(!conn.progress.blocked.load(Ordering::Relaxed));
    }

    /// A new client of a fresh hub, its stream running on loopback, the
    /// response head already read: (hub, client's end, its hub client, task).
    async fn started(version: http::Version) -> (Arc<Hub>, TcpStream, Arc<Client>, Served) {
        let hub = hub(1 << 20);
        let (server, mut client) = pair(false).await;
        let (direct, _) = direct(&hub, server, version, None);
        let subscribed = Arc::clone(direct.stream.client());
        let served = run(direct);
        let head = if version == http::Version::HTTP_10 {
            HEAD_10
        } else {
            HEAD_11
        };
        expect(&mut client, head).await;
        (hub, client, subscribed, served)
    }

    #[tokio::test]
    async fn an_http_1_0_stream_writes_raw_events_and_ends_by_closing() {
        let (hub, mut client, _, served) = started(http::Version::HTTP_10).await;
        hub.publish(&[], &event("a"));
        expect(&mut client, b"data: a\n\n").await;
        hub.close();
        assert_eq!(finished(served).await, Finished::Ended);
        assert_eq!(read_to_close(&mut client).await, b"");
    }

    #[tokio::test]
    async fn a_client_that_goes_away_ends_its_stream() {
        let (_hub, client, _, served) = started(http::Version::HTTP_11).await;
        drop(client);
        assert_eq!(finished(served).await, Finished::Gone);
    }

    #[tokio::test]
    async fn an_evicted_client_is_dropped_without_a_terminator() {
        let (_hub, mut client, evicted, served) = started(http::Version::HTTP_11).await;
        evicted.evict(Eviction::Stall);
        assert_eq!(finished(served).await, Finished::Evicted);
        assert_eq!(read_to_close(&mut client).await, b"");
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_marked_blocked_and_dropped_over_its_budget() {
        let budget = 256 * 1024;
        let hub = hub(budget);
        let (server, _client) = pair(true).await;
        let (direct, conn) = direct(&hub, server, http::Version::HTTP_11, None);
        let slow = Arc::clone(direct.stream.client());
        let served = run(direct);
        let big = event(&"x".repeat(16 * 1024));
        // At most 32 MiB: far more than the socket buffers and the budget.
        for _ in 0..2048 {
            if served.is_finished() {
                break;
            }
            hub.publish(&[], &big);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(finished(served).await, Finished::Evicted);
        assert_eq!(slow.eviction(), Some(Eviction::Budget));
        assert!(conn.progress.blocked.load(Ordering::Relaxed));
        let written = conn.progress.written.load(Ordering::Relaxed);
        assert!(written > 0 && written < budget, "{written}");
    }
}
