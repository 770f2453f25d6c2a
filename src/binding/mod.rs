//! The JavaScript API: `createServer(options)` and the `Server` class.
//!
//! This is the only N-API-aware module. It converts and validates JavaScript
//! values (throwing a `TypeError` or `RangeError` that names the field, before
//! anything is sent), calls into the engine, and maps engine errors to the
//! errors Node users expect (`listen()` rejects with `err.code ===
//! 'EADDRINUSE'` and friends).
//!
//! Every entry point is built with `catch_unwind`, so a Rust panic surfaces as
//! a JavaScript exception instead of aborting Node.
//!
//! Keeping Node alive: a listening server holds a strong threadsafe function,
//! which is what keeps Node's event loop running (tokio's threads do not);
//! `unref()` weakens it and `close()` releases it, so the process can exit.
//! It also holds a reference to its own JavaScript object while listening, so a
//! server nobody references is not garbage-collected mid-stream, as with
//! `http.Server`.

mod convert;
mod errors;
mod handoff;
mod hooks;
mod options;

use crate::bind::ListenError;
use crate::hub::Eviction;
use convert::{is_nullish, throw, throw_code, Bad, Res};
use errors::listen_error;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Env;
use napi_derive::napi;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use hooks::{HttpRequest, StreamClient};

/// Options for {@link createServer}. Every field is optional.
#[napi(object, object_to_js = false)]
pub struct ServerOptions {
    /// The request path(s) that open an event stream, e.g. `'/sendMessage'`.
    /// Matched exactly, query string ignored. Default `'/events'`.
    #[napi(ts_type = "string | string[]")]
    pub path: Option<Unknown<'static>>,
    /// A directory served for every other GET/HEAD request (`/` serves
    /// `index.html`). Requests can never read outside it; dotfiles are not served.
    /// Without it, other paths answer 404.
    #[napi(js_name = "static")]
    pub static_dir: Option<String>,
    /// Milliseconds of silence after which a stream gets a `:` heartbeat
    /// comment, so proxies and load balancers do not drop idle streams.
    /// Default 15000; 0 turns heartbeats off.
    pub keep_alive: Option<f64>,
    /// Reconnection delay (ms) sent as `retry:` when each stream opens; the
    /// browser waits this long before reconnecting. Default: not sent.
    pub retry: Option<f64>,
    /// Extra response headers for event streams; an array sends the header
    /// once per value. Headers that would break the stream (`Content-Type`,
    /// `Content-Length`, `Transfer-Encoding`, `Connection`, …) are refused.
    #[napi(ts_type = "Record<string, string | string[]>")]
    pub headers: Option<Unknown<'static>>,
    /// Events kept per channel for `Last-Event-ID` replay. Default 1000.
    /// With history on, events sent without an `id` get an automatic one;
    /// 0 turns history and automatic ids off.
    pub history: Option<f64>,
    /// A stream's byte budget: how far (in bytes of its event stream) one
    /// client may fall behind. A client further behind than this whose
    /// socket is full, or whose `sendTo()` queue would grow beyond it, is
    /// disconnected (reason `'slow'`) and can resume from history with
    /// `Last-Event-ID`. Being behind costs no memory of its own (every
    /// client reads one shared log per channel); the budget bounds how much
    /// of the log one client may hold back. Default 16777216 (16 MiB).
    pub max_buffered_bytes: Option<f64>,
    /// Milliseconds a client with data waiting may go without its
    /// connection taking a single byte; then it is disconnected (reason
    /// `'slow'`). Checked every tenth of it (at most every second), so the
    /// disconnect comes at most two such checks later. This is what drops a
    /// client that stopped reading (a frozen tab, a dead network) even when
    /// the channel then goes quiet. A client with nothing waiting is never
    /// stalled. Default 30000; 0 turns it off.
    pub stall_timeout: Option<f64>,
    /// Let clients pick channels with repeated `?channel=` query parameters
    /// (when `onConnect` does not choose them). Default false.
    pub channels_from_query: Option<bool>,
    /// A comment written first on every stream, e.g. `'ok'` (sent as `: ok`).
    pub first_comment: Option<String>,
    /// Decides whether a stream opens. Gets the request (with `id`,
    /// `lastEventId`, `lastEventIdStale`); returns (or resolves to) `true` or
    /// `undefined` (accept, default channel), `{ channels, headers }` (accept),
    /// or `false` / `{ status, body?, headers? }` (deny, e.g. 401, 403, 204 to
    /// stop the browser reconnecting, 429). A throw or rejection answers 500
    /// and is reported to `onError`.
    #[napi(
        ts_type = "(request: StreamClient) => ConnectResult | boolean | undefined | Promise<ConnectResult | boolean | undefined>"
    )]
    pub on_connect: Option<Unknown<'static>>,
    /// Told when a stream has opened.
    #[napi(ts_type = "(client: StreamClient) => void")]
    pub on_connection: Option<Unknown<'static>>,
    /// Told when a stream has ended, and why: `'closed'` (the client left),
    /// `'slow'` (over its byte budget), `'disconnected'` (`disconnect(id)`),
    /// `'shutdown'` (`close()`), or `'denied'` (refused by `onConnect`,
    /// CORS or a connection limit; `onConnection` never ran for it).
    #[napi(
        ts_type = "(client: StreamClient, reason: 'closed' | 'slow' | 'disconnected' | 'shutdown' | 'denied') => void"
    )]
    pub on_disconnect: Option<Unknown<'static>>,
    /// Handles requests that are not streams, before static files: returns
    /// (or resolves to) `{ status?, headers?, body? }`, or `undefined` to fall
    /// through to static files / 404. `body` may be a string, a Buffer or any
    /// value (sent as JSON).
    #[napi(
        ts_type = "(request: HttpRequest) => HttpReply | undefined | Promise<HttpReply | undefined>"
    )]
    pub on_request: Option<Unknown<'static>>,
    /// Receives what your hooks threw or rejected with (the value as it is),
    /// with where it happened (`'onConnect'`, `'onConnection'`,
    /// `'onDisconnect'`, `'onRequest'`, `'cors.origin'`), and Redis backplane
    /// problems (`'redis'`). Without it they go to `console.error`. No hook
    /// failure stops the server: if `onError` itself throws or rejects, that
    /// goes to `console.error` (and to standard error if that fails too).
    #[napi(ts_type = "(error: Error, where: string) => void")]
    pub on_error: Option<Unknown<'static>>,
    /// Cross-origin access for streams and routes. `origin`: `'*'` (default),
    /// an origin, a list of origins, or a function `(origin) => boolean`
    /// (may be async). `credentials: true` allows cookies
    /// (`new EventSource(url, { withCredentials: true })`); the origin is
    /// then echoed, never `*`. `maxAge`: preflight cache seconds (600).
    #[napi(
        ts_type = "{ origin?: '*' | string | string[] | ((origin: string) => boolean | Promise<boolean>), credentials?: boolean, maxAge?: number }"
    )]
    pub cors: Option<Unknown<'static>>,
    /// Most streams held at once: open streams plus stream requests still
    /// waiting for `onConnect` or a `cors.origin` function. Beyond it new
    /// stream requests get 503 with `Retry-After`. Routes (`onRequest`,
    /// static files) are not counted. Default unlimited.
    pub max_connections: Option<f64>,
    /// The same count per client IP address; beyond it 429 with
    /// `Retry-After`. Default unlimited.
    pub max_connections_per_ip: Option<f64>,
    /// Milliseconds a client may take to send its request head; then 408
    /// and the connection is closed (slowloris). Default 10000; 0 = off.
    pub header_timeout: Option<f64>,
    /// Largest request head in bytes (431 beyond). Default 16384, minimum 8192.
    pub max_header_bytes: Option<f64>,
    /// Largest request body read for `onRequest` (413 beyond). Default 1048576.
    pub max_body_bytes: Option<f64>,
    /// Milliseconds a request waits for `onConnect`, `onRequest` or a
    /// `cors.origin` function to settle. Then it is answered without the hook
    /// (503 with `Retry-After` for a stream request, 504 for a route), the
    /// hook's late result is discarded, and `onError` gets an `Error` with
    /// `code: 'ERR_HOOK_TIMEOUT'`. Default 10000; 0 waits as long as it takes.
    pub hook_timeout: Option<f64>,
    /// Serve HTTPS: `cert` and `key` as PEM text or Buffers, `ca` for
    /// intermediate certificates. ALPN offers `h2` and `http/1.1`, so
    /// browsers get HTTP/2 (many EventSources share one connection) and older
    /// clients HTTP/1.1, on the same port. Bad PEM or a key that does not
    /// match the certificate throws a `TypeError`.
    #[napi(
        ts_type = "{ cert: string | Buffer, key: string | Buffer, ca?: string | Buffer | Array<string | Buffer> }"
    )]
    pub tls: Option<Unknown<'static>>,
    /// On a plaintext server, also accept HTTP/2 with prior knowledge (h2c)
    /// beside HTTP/1.1. Default false.
    pub http2: Option<bool>,
    /// Run several instances as one through Redis (see {@link RedisOptions}).
    /// Events go through one Redis Stream per channel and reach every
    /// instance's clients; ids are global, so a client resumes on any
    /// instance. `listen()` rejects with code `'ERR_REDIS_UNAVAILABLE'` when
    /// Redis cannot be reached (or its TLS handshake fails); at run time
    /// problems go to `onError(error, 'redis')` and `stats().backplane`.
    #[napi(ts_type = "RedisOptions")]
    pub redis: Option<Unknown<'static>>,
}

/// The `redis` option of {@link ServerOptions}: where Redis is and what
/// the keys are called.
#[napi(object, object_to_js = false)]
pub struct RedisOptions {
    /// `'redis://[user:password@]host[:port][/db]'`, `'rediss://…'` for TLS
    /// (checked against the system's trust roots unless `tls.ca` is given),
    /// or `'unix:///path/to/redis.sock'`.
    pub url: String,
    /// Prefix of every key (default `'sse'`), so several applications can
    /// share one Redis.
    pub prefix: Option<String>,
    /// Sends kept while Redis is unreachable (default 100000); beyond it
    /// `send()` throws.
    pub max_pending: Option<f64>,
    /// TLS settings for a `rediss://` URL (a `TypeError` with any other
    /// URL). Bad PEM, or a key that does not match `cert`, throws a
    /// `TypeError` naming the field.
    #[napi(ts_type = "RedisTlsOptions")]
    pub tls: Option<Unknown<'static>>,
}

/// TLS to Redis ({@link RedisOptions.tls}). `ca`, `cert` and `key` are PEM
/// text or a Buffer of it. The name checked in Redis's certificate is the
/// URL's host unless `servername` says otherwise.
#[napi(object, object_to_js = false)]
pub struct RedisTlsOptions {
    /// The CA certificate(s) to trust instead of the system's roots, for a
    /// Redis whose certificate a private CA signed.
    #[napi(ts_type = "string | Buffer | Array<string | Buffer>")]
    pub ca: Option<Unknown<'static>>,
    /// A client certificate (optionally followed by its chain), for a Redis
    /// that checks its clients (`tls-auth-clients yes`). Needs `key`.
    #[napi(ts_type = "string | Buffer")]
    pub cert: Option<Unknown<'static>>,
    /// The private key of `cert` (PKCS#8, PKCS#1 or SEC1). Needs `cert`.
    #[napi(ts_type = "string | Buffer")]
    pub key: Option<Unknown<'static>>,
    /// The name to check in Redis's certificate (and send as SNI) instead
    /// of the URL's host: for a Redis reached by IP address or through an
    /// alias whose certificate names the service, e.g.
    /// `{ url: 'rediss://10.0.0.5:6380', tls: { ca, servername: 'redis.internal' } }`.
    pub servername: Option<String>,
}

/// What `onConnect` may return.
#[napi(object, object_to_js = false)]
pub struct ConnectResult {
    /// Channels this stream reads (accept).
    #[napi(ts_type = "string | string[]")]
    pub channels: Option<Unknown<'static>>,
    /// Extra response headers for this stream (accept or deny); an array
    /// sends the header once per value.
    #[napi(ts_type = "Record<string, string | string[]>")]
    pub headers: Option<Unknown<'static>>,
    /// Deny with this HTTP status (e.g. 401, 403, 204, 429).
    pub status: Option<f64>,
    /// The body of a denial: string, Buffer or JSON value.
    #[napi(ts_type = "string | Buffer | unknown")]
    pub body: Option<Unknown<'static>>,
}

/// What `onRequest` may return.
#[napi(object, object_to_js = false)]
pub struct HttpReply {
    /// The status, default 200. A 204 or 304 reply has no body (and no
    /// `Content-Length`).
    pub status: Option<f64>,
    /// Response headers; an array sends the header once per value
    /// (`{ 'Set-Cookie': ['a=1', 'b=2'] }`). `Content-Length` is set for you;
    /// `Connection: 'close'` closes the connection after this reply (no
    /// other `Connection` value is allowed).
    #[napi(ts_type = "Record<string, string | string[]>")]
    pub headers: Option<Unknown<'static>>,
    /// A string (text/plain), a Buffer (application/octet-stream) or any
    /// other value (application/json) unless `Content-Type` is given.
    #[napi(ts_type = "string | Buffer | unknown")]
    pub body: Option<Unknown<'static>>,
}

/// An event for {@link Server.send}.
#[napi(object, object_to_js = false)]
pub struct SseEvent {
    /// The payload. A string is sent as is (one `data:` line per line), a
    /// Buffer must hold UTF-8, and any other value is sent as its
    /// `JSON.stringify` text. May be omitted only when `id` or `retry` is set.
    #[napi(ts_type = "string | Buffer | unknown")]
    pub data: Option<Unknown<'static>>,
    /// The event type: the browser dispatches it to
    /// `addEventListener(event)` instead of `onmessage`. No CR or LF.
    pub event: Option<String>,
    /// The event id, stored by the browser and sent back as `Last-Event-ID`
    /// when it reconnects. `''` resets it. No CR, LF or NUL. Without it (and
    /// with history on) the server assigns one.
    #[napi(ts_type = "string | number")]
    pub id: Option<Unknown<'static>>,
    /// Reconnection delay in milliseconds for this client from now on.
    pub retry: Option<f64>,
}

/// How {@link Server.handle} and {@link Server.fetch} stream a request.
#[napi(object, object_to_js = false)]
pub struct HandleOptions {
    /// The channel or channels the stream reads, chosen by your own code
    /// (an auth middleware, a route parameter); `onConnect` is then not
    /// called. Without it the `?channel=` query (with `channelsFromQuery`)
    /// and `onConnect` decide, as for `listen()`.
    #[napi(ts_type = "string | string[]")]
    pub channels: Option<Unknown<'static>>,
}

/// Where {@link Server.send} delivers.
#[napi(object, object_to_js = false)]
pub struct SendOptions {
    /// The channel or channels; default `'default'`, the channel every
    /// stream reads unless `onConnect` or the query chose others. A channel
    /// name is non-empty, has no control characters and is at most 256
    /// bytes long.
    #[napi(ts_type = "string | string[]")]
    pub channel: Option<Unknown<'static>>,
}

/// Where a server listens, as resolved by {@link Server.listen}.
#[napi(object)]
pub struct ListenAddress {
    /// The bound port (the real one when 0 was asked for).
    pub port: u32,
    /// The bound address, e.g. `'127.0.0.1'` or `'::'`.
    pub host: String,
    /// `'IPv4'` or `'IPv6'`.
    pub family: String,
}

/// One channel's figures in {@link ServerStats}.
#[napi(object)]
pub struct ChannelStats {
    /// Streams reading the channel now.
    pub subscribers: i64,
    /// Events in its history now.
    pub history: i64,
}

/// A snapshot of a server's counters, from {@link Server.stats}.
#[napi(object)]
pub struct ServerStats {
    /// Event streams open right now.
    pub connections: i64,
    /// Event streams opened since the server started.
    pub total_connections: i64,
    /// Events accepted by `send()`/`sendTo()`, each counted once however many
    /// clients get it.
    pub events_sent: i64,
    /// Comments accepted by `comment()`.
    pub comments_sent: i64,
    /// Events and comments handed to client connections, one per client.
    pub deliveries: i64,
    /// Stream bytes handed to client connections, summed over all clients
    /// (events, comments, heartbeats, retry hints; not HTTP framing).
    pub bytes_sent: i64,
    /// Streams closed because their client fell too far behind: the sum of
    /// {@link ServerStats.evictions}.
    pub evicted: i64,
    /// The same streams by why they were evicted.
    pub evictions: EvictionStats,
    /// Stream requests refused by `onConnect`, CORS or a connection limit.
    pub denied: i64,
    /// Per channel: subscribers and history size.
    pub channels: HashMap<String, ChannelStats>,
    /// The Redis backplane, when `redis` is set.
    pub backplane: Option<BackplaneStats>,
}

/// Evictions by reason in {@link ServerStats}: the total alone cannot tell a
/// budget that is too small from frozen tabs or an instance behind Redis.
#[napi(object)]
pub struct EvictionStats {
    /// Over the byte budget (`maxBufferedBytes`) with its socket full.
    pub budget: i64,
    /// No progress for `stallTimeout` while data waited.
    pub stall: i64,
    /// The Redis backplane trimmed events of its channel before this
    /// instance read them.
    pub gap: i64,
}

/// The Redis backplane's health in {@link ServerStats}.
#[napi(object)]
pub struct BackplaneStats {
    /// `'connected'`, `'reconnecting'` (Redis unreachable or failing; retrying
    /// with backoff), `'idle'` (not started: `listen()`, the first handed-over
    /// stream or the first send connects) or `'closed'`.
    #[napi(ts_type = "'idle' | 'connected' | 'reconnecting' | 'closed'")]
    pub state: String,
    /// Sends accepted and not yet stored in Redis.
    pub pending: i64,
    /// Events this instance stored in Redis.
    pub published: i64,
    /// Events read from Redis for this instance's clients (sent by any instance).
    pub received: i64,
    /// Connections to Redis re-established after a failure.
    pub reconnects: i64,
    /// Sends Redis refused for good, or still waiting when the server closed
    /// (each reported to `onError` with where = `'redis'`).
    pub failed: i64,
    /// Times events were trimmed from a stream before this instance read them.
    pub lost: i64,
    /// The text of the last failure the backplane met while running (Redis
    /// unreachable, a refused send), or `null` when there has been none. It
    /// stays after a recovery: `state` says whether Redis is reachable now.
    /// (A `listen()` that cannot reach Redis rejects with the error instead.)
    #[napi(ts_type = "string | null")]
    pub last_error: Either<String, Null>,
}

type KeepAlive = ThreadsafeFunction<(), (), (), Status, false>;

/// A Server-Sent Events server. Create one with {@link createServer}.
#[napi]
pub struct Server {
    engine: Arc<crate::server::Server>,
    /// What this server holds on Node's side; shared with the callback that
    /// settles `listen()`, which lets go of it when binding fails.
    hold: Arc<Mutex<ProcessHold>>,
    /// The JavaScript half of `handle()` and `fetch()`, made on first use.
    handoffs: Option<handoff::Handoffs>,
}

/// What a listening server holds on to in Node (see the module docs). Only
/// ever touched on the JavaScript thread.
#[derive(Default)]
struct ProcessHold {
    /// The strong handle that keeps Node's event loop alive.
    keep_alive: Option<KeepAlive>,
    /// `unref()` was called (and `ref()` not since).
    unreferenced: bool,
    /// `listen()` was called and neither failed nor was followed by `close()`.
    listening: bool,
    /// Our own JS object, pinned while listening.
    this_ref: Option<ObjectRef<false>>,
}

impl ProcessHold {
    /// Takes the keep-alive handle when listening and referenced and not
    /// holding one already.
    fn sync(&mut self, env: &Env) -> Result<()> {
        if !self.listening || self.unreferenced {
            // Dropping the strong handle releases Node's event loop.
            self.keep_alive = None;
            return Ok(());
        }
        if self.keep_alive.is_none() {
            let noop =
                env.create_function_from_closure::<(), (), _>("hyperSseKeepAlive", |_| Ok(()))?;
            let tsfn: KeepAlive = noop
                .build_threadsafe_function::<()>()
                .callee_handled::<false>()
                .build()?;
            self.keep_alive = Some(tsfn);
        }
        Ok(())
    }

    /// Lets go of everything: the process may exit, the object may be collected.
    fn release(&mut self, env: &Env) -> Result<()> {
        self.listening = false;
        self.keep_alive = None;
        if let Some(r) = self.this_ref.take() {
            r.unref(env)?;
        }
        Ok(())
    }
}

impl Server {
    /// The JavaScript half of `handle()` and `fetch()`, made on first use.
    fn handoffs(&mut self, env: &Env) -> Result<&mut handoff::Handoffs> {
        let handoffs = match self.handoffs.take() {
            Some(made) => made,
            None => handoff::Handoffs::new(env)?,
        };
        Ok(self.handoffs.insert(handoffs))
    }
}

fn lock(hold: &Mutex<ProcessHold>) -> std::sync::MutexGuard<'_, ProcessHold> {
    crate::sync::lock(hold)
}

/// Creates a server. Nothing is bound until {@link Server.listen}; events sent
/// before that go to the history (and are replayed to clients that ask).
///
/// ```js
/// const server = createServer({ path: '/sendMessage', static: './public' })
/// const { port } = await server.listen(3000, '127.0.0.1')
/// setInterval(() => server.send(new Date().toLocaleTimeString()), 1000)
/// ```
///
/// Throws a `TypeError` or `RangeError` naming the option when an option is
/// unknown or has the wrong type or value.
#[napi(catch_unwind, ts_args_type = "options?: ServerOptions")]
pub fn create_server(env: &Env, options: Option<Unknown>) -> Result<Server> {
    let config = options::parse(env, options).map_err(|b| throw(env, b))?;
    Ok(Server {
        // In the runtime's context: a backplane remembers it, so that a
        // send from this (Node's) thread can start it.
        engine: Arc::new(napi::bindgen_prelude::within_runtime_if_available(|| {
            crate::server::Server::new(config)
        })),
        hold: Arc::default(),
        handoffs: None,
    })
}

#[napi]
impl Server {
    /// Starts listening on `port` (0 or omitted: any free port) and `host`
    /// (omitted: every interface). Resolves with the bound address. Rejects
    /// with an `Error` carrying Node's `code` (`'EADDRINUSE'`, `'EACCES'`,
    /// `'ENOTFOUND'`, …) and `syscall`, `address`, `port`; with code
    /// `'ERR_SERVER_ALREADY_LISTEN'` when `listen()` was called before,
    /// `'ERR_REDIS_UNAVAILABLE'` when the `redis` option's Redis cannot be
    /// reached, `'ERR_SERVER_CLOSED'` when `close()` came while binding.
    /// Throws at once (no promise): an `Error` with code `'ERR_SERVER_CLOSED'`
    /// after `close()`, a `RangeError`/`TypeError` for a bad `port`/`host`.
    ///
    /// While listening the server keeps the process alive, like `http.Server`,
    /// unless {@link Server.unref} was called.
    #[napi(
        catch_unwind,
        ts_args_type = "port?: number, host?: string",
        ts_return_type = "Promise<ListenAddress>"
    )]
    pub fn listen<'env>(
        &mut self,
        env: &'env Env,
        this: This<'env>,
        port: Option<Unknown>,
        host: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, ListenAddress>> {
        let port = parse_port(port).map_err(|b| throw(env, b))?;
        let host = match host {
            None => None,
            Some(v) if is_nullish(&v)? => None,
            Some(v) => Some(convert::string(v, "listen(): host").map_err(|b| throw(env, b))?),
        };
        if self.engine.is_closed() {
            return Err(throw_code(
                env,
                "ERR_SERVER_CLOSED",
                "listen(): the server is closed",
            ));
        }
        {
            let mut hold = lock(&self.hold);
            hold.listening = true;
            hold.sync(env)?;
            if hold.this_ref.is_none() {
                hold.this_ref = Some(this.create_ref()?);
            }
        }
        let engine = Arc::clone(&self.engine);
        let hold = Arc::clone(&self.hold);
        env.spawn_future_with_callback(
            async move { Ok(engine.listen(port, host.as_deref()).await) },
            move |env, bound: std::result::Result<SocketAddr, ListenError>| match bound {
                Ok(addr) => Ok(ListenAddress {
                    port: u32::from(addr.port()),
                    host: addr.ip().to_string(),
                    family: if addr.is_ipv4() { "IPv4" } else { "IPv6" }.to_owned(),
                }),
                Err(e) => {
                    // Nothing is listening: stop keeping the process alive.
                    lock(&hold).release(env)?;
                    Err(listen_error(env, &e))
                }
            },
        )
    }

    /// Sends an event to every stream reading its channel (the default
    /// channel unless `{ channel }` says otherwise; a list sends it once to
    /// each stream reading any of them). A string is the data of an unnamed
    /// event (the browser's `onmessage`); an object may also name the event,
    /// set its id or a retry delay. The event is encoded once and shared by
    /// every client; the call's cost does not depend on how many clients
    /// there are.
    ///
    /// ```js
    /// server.send(new Date().toLocaleTimeString())
    /// server.send({ event: 'price', data: { price: 42 } }, { channel: 'ticker' })
    /// ```
    ///
    /// Throws (and sends nothing) on bad input: a `TypeError` for a wrong type,
    /// CR/LF in `event` or `id`, NUL in `id`, a Buffer that is not UTF-8, an
    /// unknown field; a `RangeError` for a negative, fractional or huge
    /// `retry`. Throws an `Error` with code `'ERR_SERVER_CLOSED'` after `close()`.
    ///
    /// With `redis`, the event is queued for Redis and reaches every
    /// instance's clients (this one's too) from there; `await server.flush()`
    /// tells when it is stored. While Redis is unreachable sends wait in
    /// memory, up to `redis.maxPending`; beyond that `send()` throws an
    /// `Error` with code `'ERR_REDIS_UNAVAILABLE'` and sends nothing.
    #[napi(
        catch_unwind,
        ts_args_type = "event: string | Buffer | SseEvent, options?: SendOptions"
    )]
    pub fn send(&self, env: &Env, event: Unknown, options: Option<Unknown>) -> Result<()> {
        let (event, channels) = (|| -> Res<_> {
            let event = convert::event(env, event, "send()")?;
            Ok((event, send_channels(options, "send()")?))
        })()
        .map_err(|b| throw(env, b))?;
        let names: Vec<&str> = channels.iter().map(String::as_str).collect();
        self.engine
            .send(event, &names)
            .map(|_| ())
            .map_err(|e| send_error(env, "send()", &e))
    }

    /// Sends a comment: one `:` line per line of `text`, to the default
    /// channel or `{ channel }`. Browsers ignore comments; they show up in
    /// the network inspector.
    #[napi(catch_unwind, ts_args_type = "text: string, options?: SendOptions")]
    pub fn comment(&self, env: &Env, text: Unknown, options: Option<Unknown>) -> Result<()> {
        let (text, channels) = (|| -> Res<_> {
            Ok((
                convert::string(text, "comment(): text")?,
                send_channels(options, "comment()")?,
            ))
        })()
        .map_err(|b| throw(env, b))?;
        let names: Vec<&str> = channels.iter().map(String::as_str).collect();
        self.engine
            .comment(&text, &names)
            .map(|_| ())
            .map_err(|e| send_error(env, "comment()", &e))
    }

    /// Sends an event to one client only (its `id` from `onConnect` /
    /// `onConnection`), e.g. one user's LLM response. Returns `false` when
    /// that client is not connected (nothing was queued). Events sent this
    /// way are not kept in any history; for replay across reconnects use a
    /// per-user channel instead.
    #[napi(
        catch_unwind,
        ts_args_type = "clientId: string, event: string | Buffer | SseEvent"
    )]
    pub fn send_to(&self, env: &Env, client_id: Unknown, event: Unknown) -> Result<bool> {
        let (id, event) = (|| -> Res<_> {
            Ok((
                client_id_of(client_id, "sendTo()")?,
                convert::event(env, event, "sendTo()")?,
            ))
        })()
        .map_err(|b| throw(env, b))?;
        self.engine
            .send_to(id, event)
            .map_err(|e| send_error(env, "sendTo()", &e))
    }

    /// Ends one client's stream cleanly (its events so far are written
    /// first). The browser will reconnect unless `onConnect` then denies it,
    /// e.g. with status 204. Returns `false` when that client is not connected.
    #[napi(catch_unwind, ts_args_type = "clientId: string")]
    pub fn disconnect(&self, env: &Env, client_id: Unknown) -> Result<bool> {
        let id = client_id_of(client_id, "disconnect()").map_err(|b| throw(env, b))?;
        Ok(self.engine.disconnect(id))
    }

    /// Replaces the TLS certificate and key (e.g. after renewal) without a
    /// restart: new connections use them, open ones keep theirs. Throws a
    /// `TypeError` naming the field when the PEM is bad (the old certificate
    /// stays), and an `Error` when the server was created without `tls`.
    #[napi(
        catch_unwind,
        js_name = "setSecureContext",
        ts_args_type = "context: { cert: string | Buffer, key: string | Buffer, ca?: string | Buffer | Array<string | Buffer> }"
    )]
    pub fn set_secure_context(&self, env: &Env, context: Unknown) -> Result<()> {
        let pem =
            options::tls_pem(context, "setSecureContext(): context").map_err(|b| throw(env, b))?;
        match self.engine.set_tls(&pem) {
            Ok(()) => Ok(()),
            Err(crate::server::SetTlsError::Invalid(e)) => Err(throw(
                env,
                Bad::Type(format!(
                    "setSecureContext(): context.{}: {}",
                    e.field, e.reason
                )),
            )),
            Err(crate::server::SetTlsError::NotTls) => Err(throw_code(
                env,
                "ERR_SERVER_NOT_TLS",
                "setSecureContext(): this server was created without the tls option",
            )),
        }
    }

    /// Takes over a request that your own Node server accepted (`http`,
    /// `https`, or `http2`'s compatibility API; Express, Fastify after
    /// `reply.hijack()`, Koa with `ctx.respond = false`) and streams to it,
    /// on your port, with everything a stream from {@link Server.listen}
    /// has: channels, history and `Last-Event-ID` replay, budgets, heartbeats,
    /// CORS, limits, hooks, the Redis backplane, and `close()`.
    ///
    /// ```js
    /// app.get('/events', requireUser, (req, res) => {
    ///   sse.handle(req, res, { channels: ['news', `user:${req.user.id}`] })
    /// })
    /// ```
    ///
    /// With `options.channels` the stream reads those channels and
    /// `onConnect` is not called (your middleware decided); without it the
    /// query and `onConnect` decide, as for `listen()`.
    ///
    /// On plaintext HTTP/1.x (Linux, macOS) the engine takes the socket
    /// from Node and serves the stream itself (`transport: 'native'`); on
    /// TLS, HTTP/2, Windows, or a response whose `write` a framework wrapped,
    /// each batch goes through `res.write()` (`transport: 'bridged'`).
    ///
    /// Resolves with the client once the stream head is written, or `null`
    /// when the request was answered without a stream (denied, a limit,
    /// CORS, HEAD, 405). Rejects with a `TypeError` when `req`/`res` are not
    /// a live request and response, or `res` has sent headers or ended; with
    /// an `Error` with code `'ERR_SERVER_CLOSED'` after `close()` (the
    /// response is answered 503).
    #[napi(
        catch_unwind,
        ts_args_type = "req: import('node:http').IncomingMessage | import('node:http2').Http2ServerRequest, res: import('node:http').ServerResponse | import('node:http2').Http2ServerResponse, options?: HandleOptions",
        ts_return_type = "Promise<StreamClient | null>"
    )]
    pub fn handle<'env>(
        &mut self,
        env: &'env Env,
        req: Unknown<'env>,
        res: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> Result<PromiseRaw<'env, Option<StreamClient>>> {
        let engine = Arc::clone(&self.engine);
        handoff::handle(env, &engine, self.handoffs(env)?, req, res, options)
    }

    /// Streams to a web `Request` in a fetch-style server (Hono, Next.js
    /// route handlers, any `(request) => Response` handler on Node): resolves
    /// with a `Response` whose body is a `ReadableStream` the engine feeds
    /// (`text/event-stream`, with everything a stream from `listen()` has).
    /// `request.signal` aborting, or the reader cancelling, ends the client.
    /// A request answered without a stream (denied, a limit, CORS, HEAD,
    /// 405) resolves with that answer; after `close()`, with a 503.
    ///
    /// ```js
    /// app.get('/events', (c) => sse.fetch(c.req.raw, { channels: 'news' }))
    /// ```
    ///
    /// Rejects with a `TypeError` when `request` is not a web `Request`.
    /// `maxConnectionsPerIp` does not apply: a `Request` does not say who
    /// the client is (`maxConnections` does).
    #[napi(
        catch_unwind,
        ts_args_type = "request: Request, options?: HandleOptions",
        ts_return_type = "Promise<Response>"
    )]
    pub fn fetch<'env>(
        &mut self,
        env: &'env Env,
        request: Unknown<'env>,
        options: Option<Unknown<'env>>,
    ) -> Result<PromiseRaw<'env, Unknown<'env>>> {
        let engine = Arc::clone(&self.engine);
        handoff::fetch(env, &engine, self.handoffs(env)?, request, options)
    }

    /// Resolves once everything sent so far is stored in Redis (at once
    /// without `redis`); a send Redis refuses for good (a wrong key type,
    /// say) is reported to `onError` and does not hold it up. Rejects when
    /// the server closes first.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn flush<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let engine = Arc::clone(&self.engine);
        env.spawn_future(async move {
            engine.flush().await.map_err(|e| {
                Error::new(
                    Status::GenericFailure,
                    format!("flush(): {e}; some sends may not have reached Redis"),
                )
            })
        })
    }

    /// The server's counters right now.
    #[napi(catch_unwind)]
    pub fn stats(&self) -> ServerStats {
        let s = self.engine.stats();
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        ServerStats {
            connections: n(s.connections),
            total_connections: n(s.total_connections),
            events_sent: n(s.events_sent),
            comments_sent: n(s.comments_sent),
            deliveries: n(s.deliveries),
            bytes_sent: n(s.bytes_sent),
            evicted: n(s.evicted),
            evictions: EvictionStats {
                budget: n(s.evictions.get(Eviction::Budget)),
                stall: n(s.evictions.get(Eviction::Stall)),
                gap: n(s.evictions.get(Eviction::Gap)),
            },
            denied: n(s.denied),
            backplane: self.engine.backplane_stats().map(|b| BackplaneStats {
                state: b.state.as_str().to_owned(),
                pending: n(b.pending),
                published: n(b.published),
                received: n(b.received),
                reconnects: n(b.reconnects),
                failed: n(b.failed),
                lost: n(b.lost),
                last_error: b.last_error.map_or(Either::B(Null), Either::A),
            }),
            channels: self
                .engine
                .channel_stats()
                .into_iter()
                .map(|c| {
                    (
                        c.name,
                        ChannelStats {
                            subscribers: n(c.subscribers),
                            history: n(c.history),
                        },
                    )
                })
                .collect(),
        }
    }

    /// The server's counters as Prometheus text (exposition format 0.0.4),
    /// for a `/metrics` route: serve it with `Content-Type: text/plain;
    /// version=0.0.4`. Names start with `hyper_sse_`: connections, streams
    /// opened, events, comments, deliveries, bytes, evictions by `reason`
    /// (`'budget'`, `'stall'`, `'gap'`), denials, channels, and with `redis`
    /// the backplane's state and counters.
    ///
    /// Only the `maxChannels` channels with the most subscribers (default
    /// 100, at most 10000) get a `channel` label of their own; the rest are
    /// summed as `channel="_other"`, so a channel per user cannot flood the
    /// scraper.
    ///
    /// ```js
    /// createServer({ onRequest: (req) => req.path === '/metrics'
    ///   ? { headers: { 'content-type': 'text/plain; version=0.0.4' }, body: server.metrics() }
    ///   : undefined })
    /// ```
    ///
    /// Throws a `TypeError` for an unknown option or a `maxChannels` that is
    /// not a number, a `RangeError` for one that is not an integer from 0 to 10000.
    #[napi(catch_unwind, ts_args_type = "options?: { maxChannels?: number }")]
    pub fn metrics(&self, env: &Env, options: Option<Unknown>) -> Result<String> {
        let max_channels = metrics_max_channels(options).map_err(|b| throw(env, b))?;
        Ok(crate::metrics::render(
            &self.engine.stats(),
            &self.engine.channel_stats(),
            self.engine.backplane_stats().as_ref(),
            max_channels,
        ))
    }

    /// The port the server listens on, or `null` when it is not listening.
    #[napi(getter)]
    pub fn port(&self) -> Option<u32> {
        self.engine.local_addr().map(|a| u32::from(a.port()))
    }

    /// Stops accepting connections, ends every open stream cleanly (events
    /// already sent are still written, then the terminating chunk), and
    /// resolves once every connection is closed. Clients that do not read are
    /// dropped after a 5 s grace period. Afterwards the process can exit.
    /// Calling it again, or before `listen()`, is harmless.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn close<'env>(&mut self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let engine = Arc::clone(&self.engine);
        // The returned promise keeps Node alive until the close completes.
        lock(&self.hold).release(env)?;
        env.spawn_future(async move {
            engine.close().await;
            Ok(())
        })
    }

    /// Lets the process exit even while this server is listening, like
    /// `http.Server#unref()`. Returns the server.
    #[napi(catch_unwind, js_name = "unref", ts_return_type = "this")]
    pub fn unref_process<'env>(&mut self, env: &Env, this: This<'env>) -> Result<This<'env>> {
        let mut hold = lock(&self.hold);
        hold.unreferenced = true;
        hold.sync(env)?;
        Ok(this)
    }

    /// Undoes {@link Server.unref}: a listening server keeps the process
    /// alive again. Returns the server.
    #[napi(catch_unwind, js_name = "ref", ts_return_type = "this")]
    pub fn ref_process<'env>(&mut self, env: &Env, this: This<'env>) -> Result<This<'env>> {
        let mut hold = lock(&self.hold);
        hold.unreferenced = false;
        hold.sync(env)?;
        Ok(this)
    }
}

/// The channels of `{ channel }`; empty means the default channel.
fn send_channels(options: Option<Unknown>, context: &str) -> Res<Vec<String>> {
    let Some(options) = options else {
        return Ok(Vec::new());
    };
    if is_nullish(&options)? {
        return Ok(Vec::new());
    }
    let what = format!("{context}: options");
    let obj = convert::object(options, &what)?;
    convert::check_keys(&obj, &["channel"], &what)?;
    match convert::field(&obj, "channel")? {
        None => Ok(Vec::new()),
        Some(c) => {
            let list = convert::channels(c, &format!("{what}.channel"))?;
            if list.is_empty() {
                return Err(Bad::Type(format!(
                    "{what}.channel must not be an empty array"
                )));
            }
            Ok(list)
        }
    }
}

/// `metrics()`'s `maxChannels`: [`crate::metrics::DEFAULT_MAX_CHANNELS`]
/// unless given, never above [`crate::metrics::MAX_CHANNELS_LIMIT`].
fn metrics_max_channels(options: Option<Unknown>) -> Res<usize> {
    use crate::metrics::{DEFAULT_MAX_CHANNELS, MAX_CHANNELS_LIMIT};
    let Some(options) = options else {
        return Ok(DEFAULT_MAX_CHANNELS);
    };
    if is_nullish(&options)? {
        return Ok(DEFAULT_MAX_CHANNELS);
    }
    let what = "metrics(): options";
    let obj = convert::object(options, what)?;
    convert::check_keys(&obj, &["maxChannels"], what)?;
    let Some(v) = convert::field(&obj, "maxChannels")? else {
        return Ok(DEFAULT_MAX_CHANNELS);
    };
    let n = convert::number(v, "metrics(): options.maxChannels")?;
    if !(n.fract() == 0.0 && (0.0..=MAX_CHANNELS_LIMIT as f64).contains(&n)) {
        return Err(Bad::Range(format!(
            "metrics(): options.maxChannels must be an integer from 0 to {MAX_CHANNELS_LIMIT}, got {n}"
        )));
    }
    Ok(n as usize)
}

/// A client id as handed out in `StreamClient.id`.
fn client_id_of(v: Unknown, context: &str) -> Res<u64> {
    let text = convert::string(v, &format!("{context}: clientId"))?;
    text.parse::<u64>().map_err(|_| {
        Bad::Type(format!(
            "{context}: clientId must be a client id from onConnect/onConnection, got '{text}'"
        ))
    })
}

fn parse_port(port: Option<Unknown>) -> Res<u16> {
    let Some(port) = port else { return Ok(0) };
    if is_nullish(&port)? {
        return Ok(0);
    }
    let n = convert::number(port, "listen(): port")?;
    if !(n.fract() == 0.0 && (0.0..=65535.0).contains(&n)) {
        return Err(Bad::Range(format!(
            "listen(): port must be an integer from 0 to 65535, got {n}"
        )));
    }
    Ok(n as u16)
}

/// `send()`/`comment()`/`sendTo()` refused: closed, or Redis unavailable.
fn send_error(env: &Env, call: &str, e: &crate::server::SendError) -> Error {
    let code = match e {
        crate::server::SendError::Closed => "ERR_SERVER_CLOSED",
        crate::server::SendError::Unavailable(_) => "ERR_REDIS_UNAVAILABLE",
    };
    throw_code(env, code, &format!("{call}: {e}"))
}
