//! The HTTP side: binding, the accept loop, routing each request to an event
//! stream, a static file or an error, and shutting everything down cleanly.
//!
//! Lifecycle: a [`Server`] is created idle (events sent before `listen` go to
//! the history), [`Server::listen`] binds and starts the accept loop, and
//! [`Server::close`] stops accepting, ends every stream with its terminating
//! chunk, waits for connections to finish (bounded by a grace period, after
//! which the stragglers are dropped) and only then resolves.

use crate::backplane::{Backplane, BackplaneStats, PublishError, RedisOptions, Reporter};
use crate::connection::{ConnState, Ended, Shutdown, Supervised};
use crate::cors::Cors;
use crate::direct::DirectStream;
use crate::event::{retry_hint, Event};
use crate::handoff::{take, Answer, Handled, Handoff, Tracker};
use crate::hooks::Hooks;
use crate::http1::{encode_final, encode_head, error_answer, read_head, Opening};
use crate::hub::{ChannelStats, Hub, Payload, Retention};
use crate::io::{shutdown_write, CountingIo, Prefixed};
use crate::limits::Limits;
use crate::routes::{is_stream_path, refuse_malformed, route, stream_request, Outcome};
use crate::static_files::StaticRoot;
use crate::stats::{Stats, StatsSnapshot};
use crate::tls::{Tls, TlsError, TlsPem};
use http::HeaderMap;
use hyper::server::conn::http1;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// Everything that shapes the server's behaviour, fixed at creation.
#[derive(Debug, Clone)]
pub struct Config {
    /// Request paths that open an event stream (exact match, query ignored).
    pub paths: Vec<String>,
    /// Where other GET/HEAD requests are served from; `None` answers 404.
    pub static_root: Option<StaticRoot>,
    /// Heartbeat interval for idle streams; `None` disables heartbeats.
    pub keep_alive: Option<Duration>,
    /// Reconnection delay hint sent as the first block of every stream.
    pub retry: Option<u64>,
    /// Extra response headers for event streams (already validated).
    pub headers: HeaderMap,
    /// How much history the hub keeps and how far a client may lag.
    pub retention: Retention,
    /// How long `close` waits for connections to finish before dropping them.
    pub shutdown_grace: Duration,
    /// Pending-connection queue length passed to `listen(2)`.
    pub backlog: u32,
    /// A comment written first on every stream (e.g. `ok`), after the retry hint.
    pub first_comment: Option<String>,
    /// Whether `?channel=a&channel=b` chooses a stream's channels.
    pub channels_from_query: bool,
    /// The application's hooks.
    pub hooks: Hooks,
    /// Cross-origin policy; `None` adds no CORS headers.
    pub cors: Option<Cors>,
    /// Most streams open at once (503 beyond).
    pub max_connections: Option<u64>,
    /// Most streams open at once from one address (429 beyond).
    pub max_connections_per_ip: Option<u64>,
    /// How long a client may take to send its first request head (408 after).
    pub header_timeout: Option<Duration>,
    /// Largest request head accepted (431 beyond); at least 8192.
    pub max_header_bytes: usize,
    /// Largest request body read for `on_request` (413 beyond).
    pub max_body_bytes: usize,
    /// How long a request waits for a hook that answers (`on_connect`,
    /// `on_request`, a CORS origin predicate); then it is answered without it
    /// (503 for a stream, 504 for a route). `None` waits as long as it takes.
    pub hook_timeout: Option<Duration>,
    /// HTTPS: certificates, with ALPN offering `h2` and `http/1.1`.
    pub tls: Option<Arc<Tls>>,
    /// Accept HTTP/2 with prior knowledge (h2c) on a plaintext server.
    pub http2: bool,
    /// Act as one with other instances through Redis (see [`crate::backplane`]).
    pub redis: Option<RedisOptions>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            paths: vec!["/events".to_owned()],
            static_root: None,
            keep_alive: Some(Duration::from_secs(15)),
            retry: None,
            headers: HeaderMap::new(),
            retention: Retention::default(),
            shutdown_grace: Duration::from_secs(5),
            backlog: 4096,
            first_comment: None,
            channels_from_query: false,
            hooks: Hooks::default(),
            cors: None,
            max_connections: None,
            max_connections_per_ip: None,
            header_timeout: Some(Duration::from_secs(10)),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            hook_timeout: Some(Duration::from_secs(10)),
            tls: None,
            http2: false,
            redis: None,
        }
    }
}

/// Header names a stream's extra headers may not set: they would break the
/// event stream's framing or its content type.
pub const RESERVED_STREAM_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "trailer",
];

/// What a failed `listen` reports, in the shape Node's own errors have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenError {
    /// Node's error code: `EADDRINUSE`, `EACCES`, `ENOTFOUND`, …
    pub code: &'static str,
    /// The failing call: `listen` or `getaddrinfo`.
    pub syscall: &'static str,
    /// The errno as Node reports it (negative), when there is one.
    pub errno: Option<i32>,
    /// The host that was asked for.
    pub address: String,
    /// The port that was asked for.
    pub port: u16,
    /// A message in Node's words: `listen EADDRINUSE: address already in use 127.0.0.1:3000`.
    pub message: String,
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ListenError {}

impl ListenError {
    fn from_io(err: &io::Error, syscall: &'static str, address: &str, port: u16) -> Self {
        let (code, text) = match err.raw_os_error() {
            Some(98) => ("EADDRINUSE", "address already in use"),
            Some(13) => ("EACCES", "permission denied"),
            Some(1) => ("EPERM", "operation not permitted"),
            Some(99) => ("EADDRNOTAVAIL", "address not available"),
            Some(97) => ("EAFNOSUPPORT", "address family not supported"),
            Some(22) => ("EINVAL", "invalid argument"),
            Some(24) => ("EMFILE", "too many open files"),
            _ => match err.kind() {
                io::ErrorKind::AddrInUse => ("EADDRINUSE", "address already in use"),
                io::ErrorKind::PermissionDenied => ("EACCES", "permission denied"),
                io::ErrorKind::AddrNotAvailable => ("EADDRNOTAVAIL", "address not available"),
                _ => ("ELISTEN", "could not listen"),
            },
        };
        ListenError {
            code,
            syscall,
            errno: err.raw_os_error().map(|e| -e),
            address: address.to_owned(),
            port,
            message: format!("{syscall} {code}: {text} {address}:{port}"),
        }
    }

    fn not_found(address: &str, port: u16) -> Self {
        ListenError {
            code: "ENOTFOUND",
            syscall: "getaddrinfo",
            errno: None,
            address: address.to_owned(),
            port,
            message: format!("getaddrinfo ENOTFOUND {address}"),
        }
    }

    fn state(code: &'static str, message: &str, address: &str, port: u16) -> Self {
        ListenError {
            code,
            syscall: "listen",
            errno: None,
            address: address.to_owned(),
            port,
            message: message.to_owned(),
        }
    }
}

/// Why `send`/`comment` refused to accept anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// `close` was called: nothing more can be delivered.
    Closed,
    /// The Redis backplane is unreachable and its queue of waiting sends is full.
    Unavailable(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Closed => f.write_str("the server is closed; nothing more can be sent"),
            SendError::Unavailable(why) => f.write_str(why),
        }
    }
}

impl From<PublishError> for SendError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Closed => SendError::Closed,
            full => SendError::Unavailable(full.to_string()),
        }
    }
}

impl std::error::Error for SendError {}

/// Why certificates could not be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetTlsError {
    /// The server was created without `tls`.
    NotTls,
    /// The new certificate or key is refused; the old one stays.
    Invalid(TlsError),
}

/// State shared by the accept loop, every connection and the API.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) hub: Arc<Hub>,
    /// Set when `redis` is configured: sends go through it, and replays it
    /// can do that the local logs cannot.
    pub(crate) backplane: Option<Backplane>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) limits: Arc<Limits>,
    /// The retry hint block, encoded once.
    pub(crate) preamble: Option<crate::event::Encoded>,
    /// Whether the hub's fan-out and stall watchdog run yet: started by
    /// `listen()`, or by the first handed-over stream.
    background: std::sync::Once,
}

impl Shared {
    /// Starts the hub's background tasks once (on the current runtime).
    pub(crate) fn start_background(&self) {
        self.background.call_once(|| {
            tokio::spawn(Arc::clone(&self.hub).run_fanout());
            tokio::spawn(Arc::clone(&self.hub).run_watchdog());
        });
    }
}

enum State {
    Idle,
    Binding,
    Listening {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        accept_loop: JoinHandle<()>,
    },
    Closed,
}

/// A Server-Sent Events server: one hub, one listener, many streams.
pub struct Server {
    shared: Arc<Shared>,
    /// Streams for requests other servers accepted ([`Server::take`]).
    handed: Arc<Tracker>,
    state: Mutex<State>,
    /// Set as soon as `close` is called, so `send` refuses without a lock.
    closing: std::sync::atomic::AtomicBool,
}

impl Server {
    /// An idle server with `config`; nothing is bound until [`Server::listen`].
    pub fn new(config: Config) -> Self {
        let (hub, backplane) = match &config.redis {
            None => (Hub::new(config.retention), None),
            Some(options) => {
                let hub = Hub::new_remote(config.retention);
                let on_error = config.hooks.on_error.clone();
                let report: Reporter = Arc::new(move |error| match &on_error {
                    Some(on_error) => on_error("redis", error),
                    None => eprintln!("hyper-sse: {error}"),
                });
                let backplane =
                    Backplane::new(options, Arc::clone(&hub), config.retention.history, report);
                (hub, Some(backplane))
            }
        };
        Server {
            shared: Arc::new(Shared {
                backplane,
                preamble: config.retry.map(retry_hint),
                limits: Limits::new(config.max_connections, config.max_connections_per_ip),
                config,
                hub,
                stats: Arc::new(Stats::default()),
                background: std::sync::Once::new(),
            }),
            handed: Arc::default(),
            state: Mutex::new(State::Idle),
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Publishes `event` to `channels` (the default channel when empty). It is
    /// encoded once; the cost does not depend on the number of clients.
    /// Returns the event's global sequence number.
    /// With a backplane the event is queued for Redis instead, and the number
    /// is 0 (Redis numbers it).
    pub fn send(&self, event: Event, channels: &[&str]) -> Result<u64, SendError> {
        self.publish(channels, Payload::Event(event))
    }

    fn publish(&self, channels: &[&str], payload: Payload) -> Result<u64, SendError> {
        self.check_open()?;
        let gseq = match &self.shared.backplane {
            Some(backplane) => {
                backplane.publish(channels, &payload)?;
                0
            }
            None => self.shared.hub.publish(channels, &payload),
        };
        match payload {
            Payload::Event(_) => self.shared.stats.event_accepted(),
            Payload::Comment(_) => self.shared.stats.comment_accepted(),
        }
        Ok(gseq)
    }

    /// Resolves once everything sent so far is stored in the backplane (at
    /// once without one: the local hub has it already).
    pub async fn flush(&self) -> Result<(), SendError> {
        match &self.shared.backplane {
            Some(backplane) => Ok(backplane.flush().await?),
            None => Ok(()),
        }
    }

    /// The backplane's state and counters, when there is one.
    pub fn backplane_stats(&self) -> Option<BackplaneStats> {
        self.shared.backplane.as_ref().map(Backplane::stats)
    }

    /// Sends a comment (one `:` line per line of text) to `channels`.
    pub fn comment(&self, text: &str, channels: &[&str]) -> Result<u64, SendError> {
        self.publish(channels, Payload::Comment(text.to_owned()))
    }

    /// Sends `event` to one client only. `Ok(false)` when it is not connected.
    pub fn send_to(&self, client_id: u64, event: Event) -> Result<bool, SendError> {
        self.check_open()?;
        let sent = self.shared.hub.send_to(client_id, &Payload::Event(event));
        if sent {
            self.shared.stats.event_accepted();
        }
        Ok(sent)
    }

    /// Ends one client's stream cleanly. False when it is not connected.
    pub fn disconnect(&self, client_id: u64) -> bool {
        self.shared.hub.disconnect(client_id)
    }

    /// Replaces the TLS certificate and key for new connections.
    pub fn set_tls(&self, pem: &TlsPem) -> Result<(), SetTlsError> {
        match &self.shared.config.tls {
            Some(tls) => tls.reload(pem).map_err(SetTlsError::Invalid),
            None => Err(SetTlsError::NotTls),
        }
    }

    /// Subscribers and history per channel.
    pub fn channel_stats(&self) -> Vec<ChannelStats> {
        self.shared.hub.channel_stats()
    }

    fn check_open(&self) -> Result<(), SendError> {
        if self.closing.load(std::sync::atomic::Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        Ok(())
    }

    /// The counters right now.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The address the server is listening on, if it is.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match *self.lock_state() {
            State::Listening { addr, .. } => Some(addr),
            _ => None,
        }
    }

    /// Whether `close` has been called (it may still be running).
    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether `close` has been called.
    pub fn is_closed(&self) -> bool {
        matches!(*self.lock_state(), State::Closed)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds `host:port` (port 0 picks a free port; no host means every
    /// interface, IPv6 and IPv4 where available) and starts serving. Must run
    /// inside a tokio runtime.
    pub async fn listen(&self, port: u16, host: Option<&str>) -> Result<SocketAddr, ListenError> {
        let shown_host = host.unwrap_or("::");
        {
            let mut state = self.lock_state();
            match *state {
                State::Idle => *state = State::Binding,
                State::Closed => {
                    return Err(ListenError::state(
                        "ERR_SERVER_CLOSED",
                        "the server is closed and cannot listen again",
                        shown_host,
                        port,
                    ))
                }
                _ => {
                    return Err(ListenError::state(
                        "ERR_SERVER_ALREADY_LISTEN",
                        "listen() was already called on this server",
                        shown_host,
                        port,
                    ))
                }
            }
        }
        if let Some(backplane) = &self.shared.backplane {
            if let Err(e) = backplane.start().await {
                let mut state = self.lock_state();
                if matches!(*state, State::Binding) {
                    *state = State::Idle;
                }
                return Err(ListenError::state(
                    "ERR_REDIS_UNAVAILABLE",
                    &e.to_string(),
                    shown_host,
                    port,
                ));
            }
        }
        let bound = self.bind(port, host).await;
        let mut state = self.lock_state();
        let listener = match bound {
            Ok(l) => l,
            Err(e) => {
                if matches!(*state, State::Binding) {
                    *state = State::Idle;
                }
                return Err(e);
            }
        };
        if !matches!(*state, State::Binding) {
            // close() ran while we were binding.
            return Err(ListenError::state(
                "ERR_SERVER_CLOSED",
                "the server was closed while it was starting to listen",
                shown_host,
                port,
            ));
        }
        let addr = listener
            .local_addr()
            .map_err(|e| ListenError::from_io(&e, "listen", shown_host, port))?;
        let (stop, stopped) = oneshot::channel();
        self.shared.start_background();
        let accept_loop = tokio::spawn(accept_loop(listener, Arc::clone(&self.shared), stopped));
        *state = State::Listening {
            addr,
            stop,
            accept_loop,
        };
        Ok(addr)
    }

    async fn bind(&self, port: u16, host: Option<&str>) -> Result<TcpListener, ListenError> {
        let backlog = self.shared.config.backlog;
        let candidates: Vec<SocketAddr> = match host {
            None => vec![
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            ],
            Some(h) => match h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => match tokio::net::lookup_host((h, port)).await {
                    Ok(addrs) => addrs.collect(),
                    Err(_) => return Err(ListenError::not_found(h, port)),
                },
            },
        };
        let shown = host.unwrap_or("::");
        let mut first_error = None;
        for addr in candidates {
            match bind_one(addr, backlog) {
                Ok(l) => return Ok(l),
                Err(e) => {
                    first_error.get_or_insert(ListenError::from_io(&e, "listen", shown, port));
                    // Move on to the next address only when this one's family is
                    // unavailable here (no IPv6); a port in use is final.
                    let family_missing =
                        e.kind() == io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(97);
                    if !family_missing {
                        break;
                    }
                }
            }
        }
        Err(first_error.unwrap_or_else(|| ListenError::not_found(shown, port)))
    }

    /// Stops accepting, ends every stream cleanly and waits until every
    /// connection is closed (or the grace period ran out and the rest were
    /// dropped). Idempotent; safe to call before `listen`.
    pub async fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(backplane) = &self.shared.backplane {
            // Before the streams end: what was sent reaches Redis, and this
            // instance's own clients get it.
            backplane.close(self.shared.config.shutdown_grace).await;
        }
        let previous = std::mem::replace(&mut *self.lock_state(), State::Closed);
        match previous {
            State::Listening {
                stop, accept_loop, ..
            } => {
                let _ = stop.send(());
                let _ = accept_loop.await;
            }
            _ => self.shared.hub.close(),
        }
        // The hub is closed: every handed-over stream is ending too.
        self.handed.wait(self.shared.config.shutdown_grace).await;
    }

    /// Takes over a stream request another server accepted (Node's `http`,
    /// `https`, `http2`, a fetch-style handler): the same admission, limits
    /// and placement as a request `listen()` accepted. The stream it may
    /// start is then served on the connection's socket or through the other
    /// server ([`crate::handoff`]). A server that never listens serves these
    /// too. `Err` after `close()`.
    pub async fn take(&self, handoff: Handoff) -> Result<Handled, SendError> {
        self.check_open()?;
        if let Some(backplane) = &self.shared.backplane {
            // As `listen()` would: no stream before the backplane is there.
            if let Err(e) = backplane.start().await {
                return Ok(Handled::Reply(Answer::unavailable(&format!("{e}\n"))));
            }
        }
        Ok(take(&self.shared, &self.handed, handoff).await)
    }

    /// How many handed-over streams are being carried now.
    pub fn handed_streams(&self) -> usize {
        self.handed.open()
    }
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Accepts until told to stop, then shuts every connection down gracefully.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let shutdown = Arc::new(Shutdown::default());
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(shared.config.max_header_bytes.max(8192));
    // The first request head is read (and timed, 408) before hyper sees the
    // connection; later heads on a kept-alive connection get hyper's timer.
    builder.header_read_timeout(shared.config.header_timeout);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new()).max_concurrent_streams(1000);
    let builder = Arc::new(Builders { h1: builder, h2 });
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    // Events are small and latency matters more than packet count.
                    let _ = socket.set_nodelay(true);
                    connections.spawn(serve_socket(
                        socket,
                        peer,
                        Arc::clone(&shared),
                        Arc::clone(&shutdown),
                        Arc::clone(&builder),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors or a transient network error:
                    // back off instead of spinning, and keep serving.
                    if !is_connection_error(&e) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }
    drop(listener);
    shared.hub.close();
    shutdown.start();
    // Each connection closes itself within the grace period; this is the backstop.
    let grace = shared.config.shutdown_grace + Duration::from_secs(1);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        connections.shutdown().await;
    }
}

/// Serves one connection: its first request head is read here; a request for
/// a stream path is served directly (no hyper, see [`crate::direct`]), any
/// other goes to hyper with the bytes already read.
///
/// This future lives as long as the connection, and a future is as large as
/// its largest state. So the short-lived first phase ([`prepare`]) is boxed
/// and gone once the stream runs: an idle stream carries only its own state
/// (a few hundred bytes), not the request parsing or the connect hook.
async fn serve_socket(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Arc<Shutdown>,
    builder: Arc<Builders>,
) {
    match Box::pin(prepare(socket, peer, shared, shutdown, builder)).await {
        Next::Direct(stream) => {
            stream.await;
        }
        Next::Hyper(conn) => {
            conn.await;
        }
        Next::Done => {}
    }
}

/// What a connection becomes once its first request head is read. (The
/// direct stream is kept inline on purpose: it is what lives on.)
#[allow(clippy::large_enum_variant)]
enum Next {
    /// A stream served without hyper.
    Direct(DirectStream),
    /// Everything else: hyper, supervised.
    Hyper(std::pin::Pin<Box<dyn std::future::Future<Output = Ended> + Send>>),
    /// Answered (or failed) already.
    Done,
}

/// hyper's connection settings, shared by every connection.
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

async fn prepare(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Arc<Shutdown>,
    builder: Arc<Builders>,
) -> Next {
    let config = &shared.config;
    if let Some(tls) = &config.tls {
        return prepare_tls(socket, peer, &shared, shutdown, &builder, tls).await;
    }
    let head = tokio::select! {
        head = read_head(&socket, config.max_header_bytes.max(8192), config.header_timeout, config.http2) => head,
        _ = shutdown.wait() => return Next::Done,
    };
    let first = match head {
        Ok(Opening::Http1(first)) => first,
        Ok(Opening::Http2(raw)) => {
            let state = Arc::new(ConnState::default());
            let socket = Arc::new(socket);
            let io = Prefixed::new(
                raw.freeze(),
                CountingIo::new(Arc::clone(&socket), Arc::clone(&state.progress)),
            );
            return serve_hyper(io, true, &shared, state, peer, shutdown, &builder);
        }
        Err(e) => {
            if let Some(answer) = error_answer(&e) {
                // Best effort: the client may not be reading either.
                let _ = socket.try_write(answer);
                let _ = shutdown_write(&socket);
            }
            return Next::Done;
        }
    };
    let state = Arc::new(ConnState::default());
    if is_stream_path(&shared, first.parts.uri.path()) {
        let version = first.parts.version;
        let head_only = first.parts.method == http::Method::HEAD;
        // hyper is not here to refuse a request it could not frame.
        let outcome = match refuse_malformed(&shared, &first.parts) {
            Some(answer) => Outcome::Reply(answer),
            None => stream_request(&first.parts, &shared, &state, peer, None).await,
        };
        return match outcome {
            Outcome::Reply(response) => {
                let bytes = encode_final(response, version, head_only);
                let _ =
                    tokio::time::timeout(config.shutdown_grace, write_all(&socket, &bytes)).await;
                let _ = shutdown_write(&socket);
                Next::Done
            }
            Outcome::Stream(started) => {
                let (head, chunked) = direct_head(started.response, version);
                Next::Direct(DirectStream::new(
                    socket,
                    head,
                    started.stream,
                    state,
                    chunked,
                ))
            }
        };
    }
    let socket = Arc::new(socket);
    let io = Prefixed::new(
        first.raw.freeze(),
        CountingIo::new(Arc::clone(&socket), Arc::clone(&state.progress)),
    );
    serve_hyper(io, false, &shared, state, peer, shutdown, &builder)
}

/// The response head of a stream served without hyper, as bytes, and
/// whether its body is chunked (HTTP/1.1; an HTTP/1.0 client gets the raw
/// stream, ended by closing the connection).
pub(crate) fn direct_head(
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
    let mut head = encode_head(&response, version);
    head.extend_from_slice(b"\r\n");
    (head.freeze(), chunked)
}

/// A TLS connection: handshake (bounded by the header timeout), then HTTP/2
/// or HTTP/1.1 as ALPN decided, both through hyper.
async fn prepare_tls(
    socket: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    shutdown: Arc<Shutdown>,
    builder: &Arc<Builders>,
    tls: &Tls,
) -> Next {
    let state = Arc::new(ConnState::default());
    let socket = Arc::new(socket);
    let io = CountingIo::new(Arc::clone(&socket), Arc::clone(&state.progress));
    let handshake = tls.acceptor().accept(io);
    let limit = shared
        .config
        .header_timeout
        .unwrap_or(Duration::from_secs(30));
    let stream = tokio::select! {
        s = tokio::time::timeout(limit, handshake) => s,
        _ = shutdown.wait() => return Next::Done,
    };
    let Ok(Ok(stream)) = stream else {
        return Next::Done;
    };
    let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    serve_hyper(stream, http2, shared, state, peer, shutdown, builder)
}

/// Hands a connection to hyper, HTTP/2 or HTTP/1.1, supervised.
fn serve_hyper<I>(
    io: I,
    http2: bool,
    shared: &Arc<Shared>,
    state: Arc<ConnState>,
    peer: SocketAddr,
    shutdown: Arc<Shutdown>,
    builder: &Builders,
) -> Next
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    state
        .progress
        .multiplexed
        .store(http2, std::sync::atomic::Ordering::Relaxed);
    let service = {
        let (shared, state) = (Arc::clone(shared), Arc::clone(&state));
        service_fn(move |req| route(req, Arc::clone(&shared), Arc::clone(&state), peer))
    };
    let grace = shared.config.shutdown_grace;
    let io = TokioIo::new(io);
    Next::Hyper(if http2 {
        let conn = builder.h2.serve_connection(io, service);
        Box::pin(Supervised::new(conn, state, shutdown, grace))
    } else {
        let conn = builder.h1.serve_connection(io, service);
        Box::pin(Supervised::new(conn, state, shutdown, grace))
    })
}

async fn write_all(socket: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    /// What an idle stream costs is mostly this future: keep it small (the
    /// benchmark's target is 4 KiB of RSS per idle connection in all).
    #[tokio::test]
    async fn a_connection_future_stays_small() {
        use super::*;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = listener.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        let socket = TcpStream::from_std(s).unwrap();
        let server = Server::new(Config::default());
        let fut = serve_socket(
            socket,
            addr,
            Arc::clone(&server.shared),
            Arc::new(Shutdown::default()),
            Arc::new(Builders {
                h1: http1::Builder::new(),
                h2: http2::Builder::new(TokioExecutor::new()),
            }),
        );
        assert!(
            std::mem::size_of_val(&fut) <= 1024,
            "{}",
            std::mem::size_of_val(&fut)
        );
        assert!(std::mem::size_of::<DirectStream>() <= 320);
        drop(c);
    }
}
