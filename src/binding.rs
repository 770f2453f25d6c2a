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

use crate::event::{Event, FieldError, Problem};
use crate::server::{Config, ListenError, RESERVED_STREAM_HEADERS};
use crate::static_files::StaticRoot;
use http::{HeaderName, HeaderValue};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, JsValue, ValueType};
use napi_derive::napi;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// Extra response headers for event streams, e.g. CORS headers. Headers
    /// that would break the stream (`Content-Type`, `Content-Length`,
    /// `Transfer-Encoding`, `Connection`, …) are refused.
    #[napi(ts_type = "Record<string, string>")]
    pub headers: Option<Unknown<'static>>,
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
    /// when it reconnects. `''` resets it. No CR, LF or NUL.
    #[napi(ts_type = "string | number")]
    pub id: Option<Unknown<'static>>,
    /// Reconnection delay in milliseconds for this client from now on.
    pub retry: Option<f64>,
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

/// A snapshot of a server's counters, from {@link Server.stats}.
#[napi(object)]
pub struct ServerStats {
    /// Event streams open right now.
    pub connections: i64,
    /// Event streams opened since the server started.
    pub total_connections: i64,
    /// Events accepted by `send()`, each counted once however many clients get it.
    pub events_sent: i64,
    /// Comments accepted by `comment()`.
    pub comments_sent: i64,
    /// Events and comments handed to client connections, one per client.
    pub deliveries: i64,
    /// Stream bytes handed to client connections, summed over all clients
    /// (events, comments, heartbeats, retry hints; not HTTP framing).
    pub bytes_sent: i64,
    /// Streams closed because their client fell too far behind.
    pub evicted: i64,
}

type KeepAlive = ThreadsafeFunction<(), (), (), Status, false>;

/// A Server-Sent Events server. Create one with {@link createServer}.
#[napi]
pub struct Server {
    engine: Arc<crate::server::Server>,
    /// What this server holds on Node's side; shared with the callback that
    /// settles `listen()`, which lets go of it when binding fails.
    hold: Arc<Mutex<ProcessHold>>,
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

fn lock(hold: &Mutex<ProcessHold>) -> std::sync::MutexGuard<'_, ProcessHold> {
    hold.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates a server. Nothing is bound until {@link Server.listen}; events sent
/// before that are not delivered to anyone (there is no one to deliver to).
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
    let config = parse_options(env, options)?;
    Ok(Server {
        engine: Arc::new(crate::server::Server::new(config)),
        hold: Arc::default(),
    })
}

#[napi]
impl Server {
    /// Starts listening on `port` (0 or omitted: any free port) and `host`
    /// (omitted: every interface). Resolves with the bound address. Rejects
    /// with an `Error` carrying Node's `code` (`'EADDRINUSE'`, `'EACCES'`,
    /// `'ENOTFOUND'`, …) and `syscall`, `address`, `port`.
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
        let port = parse_port(env, port)?;
        let host = match host {
            None => None,
            Some(v) if is_nullish(&v)? => None,
            Some(v) => match v.get_type()? {
                ValueType::String => Some(String::from_unknown(v)?),
                _ => return Err(type_error(env, "listen(): host must be a string")),
            },
        };
        if self.engine.is_closed() {
            return Err(plain_error(
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

    /// Sends an event to every connected client. A string is the data of an
    /// unnamed event (the browser's `onmessage`); an object may also name the
    /// event, set its id or a retry delay. The event is encoded once and
    /// shared by every client; the call's cost does not depend on how many
    /// clients there are.
    ///
    /// ```js
    /// server.send(new Date().toLocaleTimeString())
    /// server.send({ event: 'myEvent', data: { price: 42 }, id: '7' })
    /// ```
    ///
    /// Throws (and sends nothing) on bad input: a `TypeError` for a wrong type,
    /// CR/LF in `event` or `id`, NUL in `id`, a Buffer that is not UTF-8; a
    /// `RangeError` for a negative, fractional or huge `retry`. Throws an
    /// `Error` with code `'ERR_SERVER_CLOSED'` after `close()`.
    #[napi(catch_unwind, ts_args_type = "event: string | Buffer | SseEvent")]
    pub fn send(&self, env: &Env, event: Unknown) -> Result<()> {
        let event = parse_event(env, event)?;
        self.engine
            .send(&event)
            .map(|_| ())
            .map_err(|e| plain_error(env, "ERR_SERVER_CLOSED", &format!("send(): {e}")))
    }

    /// Sends a comment to every client: one `:` line per line of `text`.
    /// Browsers ignore comments; they show up in the network inspector.
    #[napi(catch_unwind, ts_args_type = "text: string")]
    pub fn comment(&self, env: &Env, text: Unknown) -> Result<()> {
        if text.get_type()? != ValueType::String {
            return Err(type_error(env, "comment(): text must be a string"));
        }
        let text = String::from_unknown(text)?;
        self.engine
            .comment(&text)
            .map(|_| ())
            .map_err(|e| plain_error(env, "ERR_SERVER_CLOSED", &format!("comment(): {e}")))
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
        }
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

// ---------------------------------------------------------------------------
// Errors

/// Throws a `TypeError` now and returns the marker napi-rs expects for "an
/// exception is already pending".
fn type_error(env: &Env, msg: &str) -> Error {
    let _ = env.throw_type_error(msg, Some("ERR_INVALID_ARG_TYPE"));
    Error::new(Status::PendingException, msg.to_owned())
}

fn range_error(env: &Env, msg: &str) -> Error {
    let _ = env.throw_range_error(msg, Some("ERR_OUT_OF_RANGE"));
    Error::new(Status::PendingException, msg.to_owned())
}

fn plain_error(env: &Env, code: &str, msg: &str) -> Error {
    let _ = env.throw_error(msg, Some(code));
    Error::new(Status::PendingException, msg.to_owned())
}

fn field_error(env: &Env, context: &str, e: &FieldError) -> Error {
    let msg = format!("{context}: event.{} {}", e.field, e.reason);
    match e.problem {
        Problem::Type => type_error(env, &msg),
        Problem::Range => range_error(env, &msg),
    }
}

/// Builds a Node-style error object (`code`, `errno`, `syscall`, `address`,
/// `port`) for a failed listen, as a napi `Error` that rejects with exactly it.
fn listen_error(env: &Env, e: &ListenError) -> Error {
    let build = || -> Result<Error> {
        let mut obj = env.create_error(Error::new(Status::GenericFailure, e.message.clone()))?;
        obj.set_named_property("code", e.code)?;
        obj.set_named_property("syscall", e.syscall)?;
        obj.set_named_property("address", e.address.as_str())?;
        obj.set_named_property("port", u32::from(e.port))?;
        if let Some(errno) = e.errno {
            obj.set_named_property("errno", errno)?;
        }
        Ok(Error::from(obj.to_unknown()))
    };
    build().unwrap_or_else(|err| err)
}

// ---------------------------------------------------------------------------
// Conversions

fn is_nullish(v: &Unknown) -> Result<bool> {
    Ok(matches!(
        v.get_type()?,
        ValueType::Undefined | ValueType::Null
    ))
}

fn parse_port(env: &Env, port: Option<Unknown>) -> Result<u16> {
    let Some(port) = port else { return Ok(0) };
    if is_nullish(&port)? {
        return Ok(0);
    }
    if port.get_type()? != ValueType::Number {
        return Err(type_error(env, "listen(): port must be a number"));
    }
    let n = f64::from_unknown(port)?;
    if !(n.fract() == 0.0 && (0.0..=65535.0).contains(&n)) {
        return Err(range_error(
            env,
            &format!("listen(): port must be an integer from 0 to 65535, got {n}"),
        ));
    }
    Ok(n as u16)
}

/// Validates a millisecond count: a non-negative integer no larger than
/// JavaScript's largest safe integer.
fn millis(env: &Env, what: &str, v: f64) -> Result<u64> {
    if !(v.is_finite() && v.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&v)) {
        return Err(range_error(
            env,
            &format!("{what} must be a non-negative integer (milliseconds), got {v}"),
        ));
    }
    Ok(v as u64)
}

fn number_field(env: &Env, what: &str, v: Unknown) -> Result<f64> {
    if v.get_type()? != ValueType::Number {
        return Err(type_error(
            env,
            &format!("{what} must be a number, got {}", type_name(&v)?),
        ));
    }
    f64::from_unknown(v)
}

fn type_name(v: &Unknown) -> Result<&'static str> {
    Ok(match v.get_type()? {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "boolean",
        ValueType::Number => "number",
        ValueType::String => "string",
        ValueType::Symbol => "symbol",
        ValueType::Object => {
            if v.is_array()? {
                "array"
            } else {
                "object"
            }
        }
        ValueType::Function => "function",
        ValueType::BigInt => "bigint",
        _ => "value",
    })
}

/// The names of an object's own enumerable string keys.
fn keys_of(obj: &Object) -> Result<Vec<String>> {
    let names = obj.get_property_names()?;
    let len = names.get_array_length()?;
    (0..len).map(|i| names.get_element::<String>(i)).collect()
}

fn check_keys(env: &Env, obj: &Object, allowed: &[&str], what: &str) -> Result<()> {
    for key in keys_of(obj)? {
        if !allowed.contains(&key.as_str()) {
            return Err(type_error(
                env,
                &format!(
                    "{what}: unknown field '{key}' (expected one of {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A property that is present and not `undefined`.
fn field<'a>(obj: &Object<'a>, name: &str) -> Result<Option<Unknown<'a>>> {
    let v: Unknown = obj.get_named_property(name)?;
    Ok((v.get_type()? != ValueType::Undefined).then_some(v))
}

fn utf8_buffer(env: &Env, what: &str, v: Unknown) -> Result<String> {
    let buf = BufferSlice::from_unknown(v)?;
    match std::str::from_utf8(buf.as_ref()) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(type_error(
            env,
            &format!("{what} Buffer is not valid UTF-8"),
        )),
    }
}

fn parse_event(env: &Env, value: Unknown) -> Result<Event> {
    const CTX: &str = "send()";
    match value.get_type()? {
        ValueType::String => return Ok(Event::message(String::from_unknown(value)?)),
        ValueType::Object if value.is_buffer()? => {
            return Ok(Event::message(utf8_buffer(env, "send(): event", value)?))
        }
        ValueType::Object if !value.is_array()? => {}
        _ => {
            return Err(type_error(
                env,
                &format!(
                    "send(): event must be a string, a Buffer or an object {{ data, event?, id?, retry? }}, got {}",
                    type_name(&value)?
                ),
            ))
        }
    }
    let obj = Object::from_unknown(value)?;
    check_keys(
        env,
        &obj,
        &["data", "event", "id", "retry"],
        "send(): event",
    )?;
    let mut event = Event::default();
    if let Some(data) = field(&obj, "data")? {
        event = event.data(data_text(env, data)?);
    }
    if let Some(name) = field(&obj, "event")? {
        if name.get_type()? != ValueType::String {
            return Err(type_error(
                env,
                &format!(
                    "send(): event.event must be a string, got {}",
                    type_name(&name)?
                ),
            ));
        }
        event = event
            .event(String::from_unknown(name)?)
            .map_err(|e| field_error(env, CTX, &e))?;
    }
    let mut has_id = false;
    if let Some(id) = field(&obj, "id")? {
        let id = match id.get_type()? {
            ValueType::String => String::from_unknown(id)?,
            ValueType::Number => {
                let n = f64::from_unknown(id)?;
                if !n.is_finite() {
                    return Err(range_error(
                        env,
                        &format!("send(): event.id must be finite, got {n}"),
                    ));
                }
                id.coerce_to_string()?.into_utf8()?.as_str()?.to_owned()
            }
            _ => {
                return Err(type_error(
                    env,
                    &format!(
                        "send(): event.id must be a string or a number, got {}",
                        type_name(&id)?
                    ),
                ))
            }
        };
        event = event.id(id).map_err(|e| field_error(env, CTX, &e))?;
        has_id = true;
    }
    let mut has_retry = false;
    if let Some(retry) = field(&obj, "retry")? {
        let ms = number_field(env, "send(): event.retry", retry)?;
        event = event.retry(millis(env, "send(): event.retry", ms)?);
        has_retry = true;
    }
    if !event.has_data() && (event.has_event() || !(has_id || has_retry)) {
        return Err(type_error(
            env,
            "send(): event.data is required (only an event with just id and/or retry may omit it)",
        ));
    }
    Ok(event)
}

/// The text of `data`: a string as is, a Buffer as UTF-8, anything else as JSON.
fn data_text(env: &Env, data: Unknown) -> Result<String> {
    match data.get_type()? {
        ValueType::String => String::from_unknown(data),
        ValueType::Object if data.is_buffer()? => utf8_buffer(env, "send(): event.data", data),
        _ => {
            let json: Object = env.get_global()?.get_named_property("JSON")?;
            let stringify: Function<Unknown, Unknown> = json.get_named_property("stringify")?;
            let out = match stringify.call(data) {
                Ok(out) => out,
                Err(e) => {
                    return Err(type_error(
                        env,
                        &format!("send(): event.data could not be JSON-encoded: {}", e.reason),
                    ))
                }
            };
            if out.get_type()? != ValueType::String {
                return Err(type_error(
                    env,
                    &format!(
                        "send(): event.data could not be JSON-encoded ({} has no JSON form)",
                        type_name(&data)?
                    ),
                ));
            }
            String::from_unknown(out)
        }
    }
}

const OPTION_NAMES: &[&str] = &["path", "static", "keepAlive", "retry", "headers"];

fn parse_options(env: &Env, options: Option<Unknown>) -> Result<Config> {
    let mut config = Config::default();
    let Some(options) = options else {
        return Ok(config);
    };
    if is_nullish(&options)? {
        return Ok(config);
    }
    if options.get_type()? != ValueType::Object || options.is_array()? {
        return Err(type_error(
            env,
            &format!(
                "createServer(): options must be an object, got {}",
                type_name(&options)?
            ),
        ));
    }
    let obj = Object::from_unknown(options)?;
    check_keys(env, &obj, OPTION_NAMES, "createServer(): options")?;

    if let Some(path) = field(&obj, "path")? {
        config.paths = parse_paths(env, path)?;
    }
    if let Some(dir) = field(&obj, "static")? {
        if dir.get_type()? != ValueType::String {
            return Err(type_error(
                env,
                &format!(
                    "createServer(): options.static must be a string (a directory), got {}",
                    type_name(&dir)?
                ),
            ));
        }
        let dir = String::from_unknown(dir)?;
        config.static_root = Some(StaticRoot::new(Path::new(&dir)).map_err(|e| {
            type_error(
                env,
                &format!(
                    "createServer(): options.static must be an existing directory: {dir}: {e}"
                ),
            )
        })?);
    }
    if let Some(ka) = field(&obj, "keepAlive")? {
        let ms = number_field(env, "createServer(): options.keepAlive", ka)?;
        let ms = millis(env, "createServer(): options.keepAlive", ms)?;
        config.keep_alive = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(retry) = field(&obj, "retry")? {
        let ms = number_field(env, "createServer(): options.retry", retry)?;
        config.retry = Some(millis(env, "createServer(): options.retry", ms)?);
    }
    if let Some(headers) = field(&obj, "headers")? {
        config.headers = parse_headers(env, headers)?;
    }
    Ok(config)
}

fn parse_paths(env: &Env, value: Unknown) -> Result<Vec<String>> {
    let one = |v: Unknown, what: &str| -> Result<String> {
        if v.get_type()? != ValueType::String {
            return Err(type_error(
                env,
                &format!(
                    "createServer(): {what} must be a string, got {}",
                    type_name(&v)?
                ),
            ));
        }
        let p = String::from_unknown(v)?;
        if !p.starts_with('/') || p.contains(['?', '#']) || p.chars().any(char::is_whitespace) {
            return Err(type_error(
                env,
                &format!("createServer(): {what} must be a URL path starting with '/' (no query, no spaces), got '{p}'"),
            ));
        }
        Ok(p)
    };
    if value.is_array()? {
        let arr = Object::from_unknown(value)?;
        let len = arr.get_array_length()?;
        if len == 0 {
            return Err(type_error(
                env,
                "createServer(): options.path must not be an empty array",
            ));
        }
        (0..len)
            .map(|i| {
                one(
                    arr.get_element::<Unknown>(i)?,
                    &format!("options.path[{i}]"),
                )
            })
            .collect()
    } else {
        Ok(vec![one(value, "options.path")?])
    }
}

fn parse_headers(env: &Env, value: Unknown) -> Result<http::HeaderMap> {
    if value.get_type()? != ValueType::Object || value.is_array()? {
        return Err(type_error(
            env,
            &format!(
                "createServer(): options.headers must be an object of strings, got {}",
                type_name(&value)?
            ),
        ));
    }
    let obj = Object::from_unknown(value)?;
    let mut map = http::HeaderMap::new();
    for key in keys_of(&obj)? {
        let what = format!("createServer(): options.headers['{key}']");
        let name = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| type_error(env, &format!("{what}: not a valid header name")))?;
        if RESERVED_STREAM_HEADERS.contains(&name.as_str()) {
            return Err(type_error(
                env,
                &format!(
                    "{what}: this header is set by the server and would break the event stream"
                ),
            ));
        }
        let v: Unknown = obj.get_named_property(&key)?;
        if v.get_type()? != ValueType::String {
            return Err(type_error(
                env,
                &format!("{what} must be a string, got {}", type_name(&v)?),
            ));
        }
        let text = String::from_unknown(v)?;
        let value = HeaderValue::from_str(&text).map_err(|_| {
            type_error(
                env,
                &format!("{what}: not a valid header value (no CR, LF or NUL)"),
            )
        })?;
        map.insert(name, value);
    }
    Ok(map)
}
