//! The HTTP side: binding, the accept loop, routing each request to an event
//! stream, a static file or an error, and shutting everything down cleanly.
//!
//! Lifecycle: a [`Server`] is created idle (events sent before `listen` go to
//! the history), [`Server::listen`] binds and starts the accept loop, and
//! [`Server::close`] stops accepting, ends every stream with its terminating
//! chunk, waits for connections to finish (bounded by a grace period, after
//! which the stragglers are dropped) and only then resolves.

use crate::body::ResponseBody;
use crate::connection::Supervised;
use crate::event::{encode_comment, retry_hint, Event};
use crate::hub::{Hub, Position, Retention};
use crate::static_files::{plain, StaticRoot};
use crate::stats::{Stats, StatsSnapshot};
use crate::stream::EventStream;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// `close` was called: nothing more can be delivered.
    Closed,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server is closed; nothing more can be sent")
    }
}

impl std::error::Error for SendError {}

/// State shared by the accept loop, every connection and the API.
struct Shared {
    config: Config,
    hub: Arc<Hub>,
    stats: Arc<Stats>,
    /// The retry hint block, encoded once.
    preamble: Option<bytes::Bytes>,
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
    state: Mutex<State>,
}

impl Server {
    /// An idle server with `config`; nothing is bound until [`Server::listen`].
    pub fn new(config: Config) -> Self {
        let hub = Hub::new(config.retention);
        Server {
            shared: Arc::new(Shared {
                preamble: config.retry.map(retry_hint),
                config,
                hub,
                stats: Arc::new(Stats::default()),
            }),
            state: Mutex::new(State::Idle),
        }
    }

    /// Encodes `event` once and hands it to the hub. Costs O(1) in the number
    /// of clients; returns the event's sequence number.
    pub fn send(&self, event: &Event) -> Result<u64, SendError> {
        self.publish(event.encode(), false)
    }

    /// Sends a comment (one `:` line per line of text) to every stream.
    pub fn comment(&self, text: &str) -> Result<u64, SendError> {
        self.publish(encode_comment(text), true)
    }

    fn publish(&self, bytes: bytes::Bytes, comment: bool) -> Result<u64, SendError> {
        if self.shared.hub.is_closed() || matches!(*self.lock_state(), State::Closed) {
            return Err(SendError::Closed);
        }
        if comment {
            self.shared.stats.comment_accepted();
        } else {
            self.shared.stats.event_accepted();
        }
        Ok(self.shared.hub.publish(bytes))
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
        tokio::spawn(Arc::clone(&self.shared.hub).run_fanout());
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
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, _peer)) => {
                    // Events are small and latency matters more than packet count.
                    let _ = socket.set_nodelay(true);
                    let position = Arc::new(Position::default());
                    let service = {
                        let (shared, position) = (Arc::clone(&shared), Arc::clone(&position));
                        service_fn(move |req| route(req, Arc::clone(&shared), Arc::clone(&position)))
                    };
                    let conn = builder.serve_connection(TokioIo::new(socket), service);
                    let conn = Supervised::new(
                        graceful.watch(conn),
                        Arc::clone(&shared.hub),
                        position,
                        Arc::clone(&shared.stats),
                    );
                    connections.spawn(async move {
                        // A connection error (reset, eviction) only ends that connection.
                        let _ = conn.await;
                    });
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
    let grace = shared.config.shutdown_grace;
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
    connections.shutdown().await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Sends each request where it belongs: stream paths first, then static files,
/// then 404.
async fn route(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    position: Arc<Position>,
) -> Result<Response<ResponseBody>, Infallible> {
    let path = req.uri().path();
    if shared.config.paths.iter().any(|p| p == path) {
        return Ok(match *req.method() {
            Method::GET => open_stream(&req, &shared, Some(position)),
            Method::HEAD => open_stream(&req, &shared, None),
            _ => method_not_allowed(),
        });
    }
    if let Some(root) = &shared.config.static_root {
        return Ok(match *req.method() {
            Method::GET | Method::HEAD => {
                root.serve(req.method(), path, req.uri().query(), req.headers())
                    .await
            }
            _ => method_not_allowed(),
        });
    }
    Ok(plain(StatusCode::NOT_FOUND, "not found\n"))
}

fn method_not_allowed() -> Response<ResponseBody> {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// The response head of an event stream, and (for GET, which passes the
/// connection's `position`) the stream itself.
fn open_stream(
    req: &Request<Incoming>,
    shared: &Shared,
    position: Option<Arc<Position>>,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Empty);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if req.version() == Version::HTTP_11 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    for (name, value) in &shared.config.headers {
        headers.insert(name, value.clone());
    }
    if let Some(position) = position {
        let stream = EventStream::new(
            shared.hub.subscribe_with(position),
            shared.preamble.clone(),
            shared.config.keep_alive,
            Arc::clone(&shared.stats),
        );
        *response.body_mut() = ResponseBody::Events(Box::pin(stream));
    }
    response
}
