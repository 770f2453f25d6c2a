//! The server's configuration: every setting, its default, and the limits
//! the engine applies to it (once, here).

use crate::backplane::RedisOptions;
use crate::cors::Cors;
use crate::hooks::Hooks;
use crate::hub::Retention;
use crate::static_files::StaticRoot;
use crate::tls::Tls;
use http::HeaderMap;
use std::sync::Arc;
use std::time::Duration;

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
    /// Largest request head accepted (431 beyond); at least [`MIN_HEADER_BYTES`].
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

/// The smallest request-head limit: hyper's buffer needs at least this.
pub const MIN_HEADER_BYTES: usize = 8192;

impl Config {
    /// The configuration with the engine's limits applied, once, where the
    /// server is made (so no part of it applies them on its own).
    pub fn clamped(mut self) -> Self {
        self.max_header_bytes = self.max_header_bytes.max(MIN_HEADER_BYTES);
        self
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
