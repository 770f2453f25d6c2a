//! Streams for requests that another HTTP server accepted: Node's `http`,
//! `https` or `http2` server (through `handle()`), or a fetch-style handler
//! (through `fetch()`).
//!
//! The request goes through the same admission, placement and start as one
//! `listen()` accepted (see [`crate::routes`]); what differs is who carries
//! the bytes afterwards:
//!
//! - **native**: the engine was given the connection's socket and serves the
//!   stream on it exactly as `listen()`'s direct path does ([`DirectStream`]);
//! - **bridged**: the other server keeps the connection (TLS, HTTP/2, a
//!   runtime whose sockets cannot be taken) and the engine hands it each
//!   batch through an [`Outlet`], one call per batch, waiting while the
//!   outlet is full; a client whose outlet stays full is evicted like any
//!   slow client.
//!
//! Every stream started here is tracked, so `close()` ends and waits for
//! them as it does for its own connections.

use crate::body::ResponseBody;
use crate::connection::ConnState;
use crate::direct::{response_head, DirectStream, Finished};
use crate::hooks::ClientInfo;
use crate::hub::Client;
use crate::routes::{stream_request, Handing, Outcome, Started};
use crate::shared::Shared;
use crate::stream::{chunk_overhead, EventStream};
use bytes::{Buf, Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, Response, StatusCode, Version};
use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;

/// A request another server accepted, as the engine needs it.
pub struct Handoff {
    /// Method, target, version and headers, as that server parsed them.
    pub parts: Parts,
    /// The client's address (`0.0.0.0:0` when the other server does not
    /// tell: then no per-address limit applies).
    pub peer: SocketAddr,
    /// The channels its application chose; `None` lets the query and
    /// `onConnect` decide, as for `listen()`.
    pub channels: Option<Vec<String>>,
    /// Set by the other server when the client goes away before the stream
    /// starts (while `onConnect` decides): it is then never counted as
    /// connected.
    pub left: Arc<AtomicBool>,
}

/// What the engine made of a [`Handoff`].
pub enum Handled {
    /// Answered without a stream (denied, a limit, CORS, HEAD, 405, …): the
    /// other server writes this answer.
    Reply(Answer),
    /// A stream, ready to be served natively or bridged (boxed: it is large,
    /// and this is moved across threads once).
    Stream(Box<Opened>),
}

/// A whole answer: status, headers and body.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The headers (repeated names appear once per value).
    pub headers: HeaderMap,
    /// The body (empty for HEAD, 204, 304).
    pub body: Bytes,
}

impl Answer {
    /// `503` with `Retry-After`: the server cannot take streams now (it is
    /// closing, or its backplane is unreachable); `why` is the body.
    pub fn unavailable(why: &str) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("5"),
        );
        headers.insert(http::header::CONTENT_LENGTH, why.len().into());
        Answer {
            status: StatusCode::SERVICE_UNAVAILABLE,
            headers,
            body: Bytes::copy_from_slice(why.as_bytes()),
        }
    }
}

/// A started stream that nothing carries yet.
pub struct Opened {
    head: Response<ResponseBody>,
    stream: EventStream,
    conn: Arc<ConnState>,
    client: Arc<ClientInfo>,
    version: Version,
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
}

impl Opened {
    /// The client, as `handle()` resolves with it.
    pub fn client(&self) -> &Arc<ClientInfo> {
        &self.client
    }

    /// The response head's status and headers, for a bridged stream.
    pub fn head(&self) -> (StatusCode, &HeaderMap) {
        (self.head.status(), self.head.headers())
    }

    /// Serves the stream on `socket`, the connection the other server
    /// accepted (its request head already read), as `listen()`'s direct path
    /// does. The response head is written before this returns when the
    /// socket takes it at once (it nearly always does); the rest follows on
    /// the engine's own tasks.
    pub fn serve_native(self: Box<Self>, socket: std::net::TcpStream) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        let _ = socket.set_nodelay(true);
        let (head, chunked) = response_head(self.head, self.version);
        let rest = write_now(&socket, head)?;
        let socket = tokio::net::TcpStream::from_std(socket)?;
        let direct = DirectStream::new(socket, rest, self.stream, self.conn, chunked);
        self.tracker.spawn(&self.shared, async move {
            let _: Finished = direct.await;
        });
        Ok(())
    }

    /// Serves the stream through `outlet`, which owns the connection.
    pub fn serve_bridged<O: Outlet>(self: Box<Self>, outlet: O) {
        let bridge = Bridge {
            stream: self.stream,
            conn: self.conn,
        };
        self.tracker.spawn(&self.shared, bridge.run(outlet));
    }
}

/// Writes what a nonblocking socket takes now; returns what is left.
fn write_now(mut socket: &std::net::TcpStream, mut bytes: Bytes) -> io::Result<Bytes> {
    while !bytes.is_empty() {
        match socket.write(&bytes) {
            Ok(n) => bytes.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(bytes)
}

/// Turns a handed-over request into an answer or a stream.
pub(crate) async fn take(
    shared: &Arc<Shared>,
    tracker: &Arc<Tracker>,
    handoff: Handoff,
) -> Handled {
    let conn = Arc::new(ConnState::default());
    let version = handoff.parts.version;
    let head_only = handoff.parts.method == http::Method::HEAD;
    let outcome = stream_request(
        &handoff.parts,
        shared,
        &conn,
        handoff.peer,
        Some(Handing {
            channels: handoff.channels,
            left: handoff.left,
        }),
    )
    .await;
    match outcome {
        Outcome::Reply(response) => Handled::Reply(answer(response, head_only).await),
        Outcome::Stream(Started {
            response,
            stream,
            client,
        }) => Handled::Stream(Box::new(Opened {
            head: response,
            client: client.expect("open_stream describes every handed-over stream's client"),
            stream,
            conn,
            version,
            shared: Arc::clone(shared),
            tracker: Arc::clone(tracker),
        })),
    }
}

/// A whole answer from a response without a stream.
async fn answer(response: Response<ResponseBody>, head_only: bool) -> Answer {
    use http_body_util::BodyExt;
    let (parts, body) = response.into_parts();
    let mut bytes = BytesMut::new();
    if !head_only {
        if let Ok(collected) = body.collect().await {
            bytes.extend_from_slice(&collected.to_bytes());
        }
    }
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: bytes.freeze(),
    }
}

// ---------------------------------------------------------------------------
// The bridged transport.

/// What the other server said when handed a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrote {
    /// Taken; it wants more.
    Taken,
    /// Taken, but its buffer is full: wait for [`Outlet::drained`].
    Full,
    /// The response is gone (the client left).
    Gone,
}

/// A future an [`Outlet`] returns.
pub type OutletFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The other server's side of a bridged stream: where batches go.
pub trait Outlet: Send + 'static {
    /// Hands over one batch (one write on the other side).
    fn write(&mut self, batch: Bytes) -> OutletFuture<Wrote>;
    /// Resolves once a full outlet takes more; false when it is gone instead.
    fn drained(&mut self) -> OutletFuture<bool>;
    /// Resolves when the response is gone (the client left).
    fn gone(&mut self) -> OutletFuture<()>;
    /// Ends the response: cleanly (the server closed the stream) or not
    /// (the client was evicted: the other side should drop the connection).
    fn end(self: Box<Self>, clean: bool);
}

/// A bridged stream: the stream's batches, handed to an outlet.
struct Bridge {
    stream: EventStream,
    conn: Arc<ConnState>,
}

/// What the bridge does next.
enum Step {
    Batch(Bytes),
    End,
    Evicted,
}

impl Bridge {
    async fn run<O: Outlet>(mut self, outlet: O) {
        let mut outlet = Box::new(outlet);
        let mut gone = outlet.gone();
        loop {
            let step = tokio::select! {
                step = std::future::poll_fn(|cx| self.poll_step(cx)) => step,
                _ = &mut gone => return,
            };
            let batch = match step {
                Step::Batch(batch) => batch,
                Step::End => return outlet.end(true),
                Step::Evicted => return outlet.end(false),
            };
            let len = batch.len();
            match watching(self.client(), outlet.write(batch)).await {
                Some(Wrote::Taken) => {}
                Some(Wrote::Full) => {
                    self.conn.progress.blocked.store(true, Ordering::Relaxed);
                    match watching(self.client(), outlet.drained()).await {
                        Some(true) => {}
                        Some(false) => return,
                        None => return outlet.end(false),
                    }
                }
                Some(Wrote::Gone) => return,
                None => return outlet.end(false),
            }
            // What the stream counted as handed, framing included.
            let progress = &self.conn.progress;
            progress
                .written
                .fetch_add(len as u64 + chunk_overhead(len), Ordering::Relaxed);
            progress.blocked.store(false, Ordering::Relaxed);
        }
    }

    /// The stream's next batch, with the eviction check every transport makes.
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        loop {
            if self.stream.client().must_drop() {
                return Poll::Ready(Step::Evicted);
            }
            return match self.stream.poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(mut data) => Poll::Ready(Step::Batch(data.copy_to_bytes(data.remaining()))),
                    Err(_) => continue,
                },
                Poll::Ready(None) => Poll::Ready(Step::End),
                Poll::Ready(Some(Err(_))) => Poll::Ready(Step::Evicted),
            };
        }
    }

    fn client(&self) -> Arc<Client> {
        Arc::clone(self.stream.client())
    }
}

/// Awaits `f`, unless `client` is evicted first (`None`): a client whose
/// outlet stays full is judged by the stall watchdog and its byte budget
/// like any other.
async fn watching<T>(client: Arc<Client>, f: OutletFuture<T>) -> Option<T> {
    let evicted = std::future::poll_fn(move |cx| {
        client.register_watcher(cx.waker());
        if client.must_drop() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    tokio::select! {
        v = f => Some(v),
        _ = evicted => None,
    }
}

// ---------------------------------------------------------------------------
// Tracking, for close().

/// The streams started from handed-over requests, so `close()` can wait for
/// them: it ends them (through the hub) and waits until none is left, for at
/// most the grace period, then aborts the rest.
///
/// Each task is known by its abort handle, removed by the task itself when
/// it ends. (A shared "stop" future raced against every stream would cost a
/// lock on every wake-up: tokio's `Notified` locks its `Notify` when polled.)
#[derive(Default)]
pub(crate) struct Tracker {
    tasks: std::sync::Mutex<Tasks>,
    idle: Notify,
}

#[derive(Default)]
struct Tasks {
    next: u64,
    running: std::collections::HashMap<u64, tokio::task::AbortHandle>,
    /// Tasks that ended before their handle was stored (rare: a stream
    /// that fails at once), so that it is not stored afterwards.
    ended_early: std::collections::HashSet<u64>,
}

/// Forgets its task when dropped: the task ended, or was aborted.
struct Untrack {
    tracker: Arc<Tracker>,
    id: u64,
}

impl Drop for Untrack {
    fn drop(&mut self) {
        let mut tasks = self.tracker.lock();
        if tasks.running.remove(&self.id).is_none() {
            tasks.ended_early.insert(self.id);
        }
        if tasks.running.is_empty() {
            self.tracker.idle.notify_waiters();
        }
    }
}

impl Tracker {
    /// Runs `task` on the engine, counted until it finishes. The hub's
    /// background tasks are started first if `listen()` never ran.
    fn spawn(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        shared.start_background();
        let id = {
            let mut tasks = self.lock();
            tasks.next += 1;
            tasks.next
        };
        let untrack = Untrack {
            tracker: Arc::clone(self),
            id,
        };
        // Not under the lock: a runtime shutting down drops the task at
        // once, and its `Untrack` takes the lock.
        let handle = tokio::spawn(async move {
            let _untrack = untrack;
            task.await
        });
        let mut tasks = self.lock();
        if !tasks.ended_early.remove(&id) {
            tasks.running.insert(id, handle.abort_handle());
        }
    }

    /// Waits for every tracked stream to finish, then (after `grace`) aborts
    /// the ones that did not.
    pub(crate) async fn wait(&self, grace: Duration) {
        let drained = async {
            loop {
                let idle = self.idle.notified();
                if self.open() == 0 {
                    return;
                }
                idle.await;
            }
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            for task in self.lock().running.values() {
                task.abort();
            }
        }
    }

    /// How many handed-over streams are being carried now.
    pub(crate) fn open(&self) -> usize {
        self.lock().running.len()
    }

    /// The task table; a panic elsewhere while it was held leaves it usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Tasks> {
        crate::sync::lock(&self.tasks)
    }
}
