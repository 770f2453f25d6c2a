//! The application's JavaScript callbacks, as the engine's [`Hooks`].
//!
//! The engine calls hooks from tokio's threads; JavaScript runs on one
//! thread. Each hook is a weak threadsafe function (it never keeps Node alive
//! by itself) of a native no-op, and the work happens in its callback, on the
//! JavaScript thread, in our own code: build the arguments, call the
//! application's function, read what it returned. napi-rs's own argument and
//! return plumbing would hand a throw, a failed conversion or an exception
//! left pending to `napi_fatal_exception` (the process dies), and Node kills
//! the process for an unhandled rejected Promise too. Here each of them is an
//! ordinary `Err` that ends up somewhere:
//!
//! - a hook that answers (`onConnect`, `onRequest`, `cors.origin`): the error
//!   is its answer (the engine replies 500 and reports it); a Promise is
//!   awaited, a malformed value is an error like a throw;
//! - a hook that is told (`onConnection`, `onDisconnect`): the error goes to
//!   `onError(error, where)`; a returned Promise gets a rejection handler;
//! - `onError` itself (or `console.error` without one): to `console.error`,
//!   and when that fails too, to standard error.
//!
//! Nothing is ever left pending on the JavaScript side.

use super::convert::{self, as_error, Bad, Res};
use crate::cors::AllowOrigin;
use crate::hooks::EndReason;
use crate::hooks::{
    ClientInfo, Decision, ErrorHook, HookError, HookFuture, HookTimeout, Hooks, PlainRequest,
    Reply, RequestInfo,
};
use http::{header, HeaderValue, StatusCode};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use napi::{sys, Env, JsValue, ValueType};
use napi_derive::napi;
use std::collections::HashMap;
use std::ptr;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A stream's client as JavaScript sees it: in `onConnect`, `onConnection`
/// and `onDisconnect`.
#[napi(object)]
pub struct StreamClient {
    /// The client's id, for `sendTo()` and `disconnect()`.
    pub id: String,
    /// The channels it reads (for `onConnect`: what it gets unless the hook
    /// chooses others).
    pub channels: Vec<String>,
    /// The request method (`GET`).
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// Query parameters; a repeated parameter is an array.
    #[napi(ts_type = "Record<string, string | string[]>")]
    pub query: HashMap<String, Either<String, Vec<String>>>,
    /// Request headers, lower-case names; repeated headers joined with `, `.
    pub headers: HashMap<String, String>,
    /// The client's IP address.
    pub remote_address: String,
    /// The client's port.
    pub remote_port: u32,
    /// The HTTP version of the request: `'1.0'`, `'1.1'` or `'2'`.
    pub http_version: String,
    /// The `Last-Event-ID` it sent (header, or `lastEventId` query parameter).
    pub last_event_id: Option<String>,
    /// True when that id is unknown or older than the history: nothing was
    /// replayed, so send the client a fresh snapshot.
    pub last_event_id_stale: bool,
    /// How a stream from `handle()` or `fetch()` is carried: `'native'` when
    /// the engine took the connection's socket and writes it itself,
    /// `'bridged'` when each batch goes through the other server (TLS,
    /// HTTP/2, a wrapped response, `fetch()`). Absent in hooks.
    #[napi(ts_type = "'native' | 'bridged'")]
    pub transport: Option<String>,
}

/// A plain (non-stream) request, for `onRequest`.
#[napi(object)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Query parameters; a repeated parameter is an array.
    #[napi(ts_type = "Record<string, string | string[]>")]
    pub query: HashMap<String, Either<String, Vec<String>>>,
    /// Request headers, lower-case names.
    pub headers: HashMap<String, String>,
    /// The client's IP address.
    pub remote_address: String,
    /// The client's port.
    pub remote_port: u32,
    /// The HTTP version: `'1.0'`, `'1.1'` or `'2'`.
    pub http_version: String,
    /// The request body (empty for GET); `body.toString()` for text.
    pub body: Buffer,
}

fn query_map(query: &str) -> HashMap<String, Either<String, Vec<String>>> {
    let mut map: HashMap<String, Either<String, Vec<String>>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let v = v.into_owned();
        match map.remove(k.as_ref()) {
            None => {
                map.insert(k.into_owned(), Either::A(v));
            }
            Some(Either::A(first)) => {
                map.insert(k.into_owned(), Either::B(vec![first, v]));
            }
            Some(Either::B(mut all)) => {
                all.push(v);
                map.insert(k.into_owned(), Either::B(all));
            }
        }
    }
    map
}

fn header_map(req: &RequestInfo) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = HashMap::new();
    for (k, v) in &req.headers {
        map.entry(k.clone())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    map
}

/// A client as JavaScript sees it.
pub(super) fn client_js(info: &ClientInfo) -> StreamClient {
    let req = &info.request;
    StreamClient {
        id: info.id.to_string(),
        channels: info.channels.clone(),
        method: req.method.clone(),
        path: req.path.clone(),
        query: query_map(&req.query),
        headers: header_map(req),
        remote_address: req.remote_addr.ip().to_string(),
        remote_port: u32::from(req.remote_addr.port()),
        http_version: req.version.to_owned(),
        last_event_id: info.last_event_id.clone(),
        last_event_id_stale: info.last_event_id_stale,
        transport: None,
    }
}

/// A plain request as JavaScript sees it.
fn request_js(r: &PlainRequest) -> HttpRequest {
    HttpRequest {
        method: r.request.method.clone(),
        path: r.request.path.clone(),
        query: query_map(&r.request.query),
        headers: header_map(&r.request),
        remote_address: r.request.remote_addr.ip().to_string(),
        remote_port: u32::from(r.request.remote_addr.port()),
        http_version: r.request.version.to_owned(),
        body: Buffer::from(r.body.to_vec()),
    }
}

// ---------------------------------------------------------------------------
// Calling JavaScript safely, on the JavaScript thread.

/// Takes the pending JavaScript exception, if there is one, as an error that
/// holds the thrown value as it is (whatever was thrown: an `Error`, a
/// string, a symbol).
pub(super) fn take_exception(env: &Env) -> Option<Error> {
    let raw = env.raw();
    let mut pending = false;
    let mut exception = ptr::null_mut();
    // SAFETY: `env` is the live env of the JavaScript thread we run on, the
    // out-pointers are valid locals, and `exception` is read as a value only
    // after N-API returned it as one of this env.
    unsafe {
        if sys::napi_is_exception_pending(raw, &mut pending) != sys::Status::napi_ok || !pending {
            return None;
        }
        if sys::napi_get_and_clear_last_exception(raw, &mut exception) != sys::Status::napi_ok {
            return None;
        }
        Some(Error::from_unknown_without_coercion(
            Unknown::from_raw_unchecked(raw, exception),
        ))
    }
}

/// Runs code that calls into JavaScript and gives back one result: its own,
/// or, when it left an exception pending (a getter that threw, say), that
/// exception, which is the better account of what went wrong. Afterwards
/// nothing is pending.
pub(super) fn caught<R>(env: &Env, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let result = f();
    match take_exception(env) {
        Some(thrown) => Err(thrown),
        None => result,
    }
}

/// A Rust value as a JavaScript value.
pub(super) fn js<V: ToNapiValue>(env: &Env, value: V) -> Result<sys::napi_value> {
    // SAFETY: `env` is the live env of the JavaScript thread we run on.
    unsafe { V::to_napi_value(env.raw(), value) }
}

/// The application's function, kept alive across calls.
type UserFn = FunctionRef<(), ()>;

/// Checks that `f` is a function and keeps a reference to it.
fn user_fn(f: Unknown, what: &str) -> Res<UserFn> {
    if f.get_type()? != ValueType::Function {
        return Err(Bad::Type(format!(
            "{what} must be a function, got {}",
            convert::type_name(&f)
        )));
    }
    Ok(Function::<(), ()>::from_unknown(f)?.create_ref()?)
}

/// Calls `f(...args())` with `this` undefined and reads the result as `R`.
/// A throw, a failed conversion either way, a pending exception: all `Err`.
fn call<R: FromNapiValue>(
    env: &Env,
    f: &UserFn,
    args: impl FnOnce() -> Result<Vec<sys::napi_value>>,
) -> Result<R> {
    caught(env, || {
        let f = f.borrow_back(env)?;
        let args = args()?;
        let raw = env.raw();
        let mut this = ptr::null_mut();
        let mut out = ptr::null_mut();
        // SAFETY: on the JavaScript thread; `f` and `args` are live values of this env.
        let status = unsafe {
            sys::napi_get_undefined(raw, &mut this);
            sys::napi_call_function(raw, this, f.raw(), args.len(), args.as_ptr(), &mut out)
        };
        if status != sys::Status::napi_ok {
            return Err(take_exception(env).unwrap_or_else(|| {
                Error::new(Status::from(status), "the function could not be called")
            }));
        }
        // SAFETY: `out` is the live return value of the call above.
        unsafe { R::from_napi_value(raw, out) }
    })
}

/// Whether `value` is a Promise.
///
/// # Safety
///
/// `env` must be the live env of the current (JavaScript) thread and `value`
/// a live value of it.
unsafe fn is_promise(env: sys::napi_env, value: sys::napi_value) -> Result<bool> {
    let mut yes = false;
    // SAFETY: as this function's contract says.
    let status = unsafe { sys::napi_is_promise(env, value, &mut yes) };
    if status != sys::Status::napi_ok {
        return Err(Error::new(
            Status::from(status),
            "could not tell whether the hook returned a Promise",
        ));
    }
    Ok(yes)
}

/// Work the engine sends to the JavaScript thread from any thread.
pub(super) struct OnJsThread<T: 'static>(ThreadsafeFunction<T, (), (), Status, false, true>);

impl<T: 'static> OnJsThread<T> {
    /// `work` runs on the JavaScript thread for each value sent.
    pub(super) fn new(env: &Env, mut work: impl FnMut(&Env, T) + 'static) -> Result<Self> {
        let noop = env.create_function_from_closure::<(), (), _>("hyperSseHook", |_| Ok(()))?;
        let tsfn = noop
            .build_threadsafe_function::<T>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(move |ctx: ThreadsafeCallContext<T>| {
                work(&ctx.env, ctx.value);
                // `work` settles everything it started; should anything still
                // be pending, Node must not see it as an uncaught exception.
                if let Some(left) = take_exception(&ctx.env) {
                    eprintln!("hyper-sse: an exception was left pending by a hook: {left}");
                }
                Ok(())
            })?;
        Ok(OnJsThread(tsfn))
    }

    /// Queues `value` for the JavaScript thread. False when Node is shutting
    /// down and nothing will run (the value is dropped).
    pub(super) fn send(&self, value: T) -> bool {
        self.0.call(value, ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok
    }
}

// ---------------------------------------------------------------------------
// Hooks that answer.

/// What a hook that answers returned: a value now, or a Promise of one.
pub enum Returned<T: FromNapiValue + 'static> {
    Now(T),
    Later(Promise<T>),
}

impl<T: FromNapiValue + 'static> FromNapiValue for Returned<T> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        // SAFETY: napi-rs and `call` hand us a live value of the current env.
        unsafe {
            if is_promise(env, value)? {
                Ok(Returned::Later(Promise::<T>::from_napi_value(env, value)?))
            } else {
                Ok(Returned::Now(T::from_napi_value(env, value)?))
            }
        }
    }
}

impl<T: FromNapiValue + Send + 'static> Returned<T> {
    async fn settle(self) -> Result<T> {
        match self {
            Returned::Now(v) => Ok(v),
            Returned::Later(p) => p.await,
        }
    }
}

fn boxed(e: Error) -> HookError {
    Box::new(e)
}

/// Where a hook that answers sends its result (or its failure).
type Answer<R> = oneshot::Sender<Result<Returned<R>>>;

/// A hook that answers, as an async function for the engine. `args` builds
/// the JavaScript arguments from the engine's value, on the JavaScript thread.
fn answering<T, R>(
    env: &Env,
    f: Unknown,
    what: &str,
    args: impl Fn(&Env, T) -> Result<Vec<sys::napi_value>> + 'static,
) -> Res<impl Fn(T) -> HookFuture<R> + Send + Sync + 'static>
where
    T: Send + 'static,
    R: FromNapiValue + Send + 'static,
{
    let f = user_fn(f, what)?;
    let job = Arc::new(OnJsThread::new(
        env,
        move |env, (value, answer): (T, Answer<R>)| {
            let result = call(env, &f, || args(env, value));
            // A closed channel means the engine stopped waiting (the hook
            // timed out): the late answer is discarded.
            let _ = answer.send(result);
        },
    )?);
    Ok(move |value: T| -> HookFuture<R> {
        let job = Arc::clone(&job);
        Box::pin(async move {
            let (answer, result) = oneshot::channel();
            let gone = || {
                boxed(Error::new(
                    Status::Closing,
                    "the hook could not be called: Node is shutting down",
                ))
            };
            if !job.send((value, answer)) {
                return Err(gone());
            }
            let returned = result.await.map_err(|_| gone())?.map_err(boxed)?;
            returned.settle().await.map_err(boxed)
        })
    })
}

/// Parses a JavaScript value with [`Res`] errors.
///
/// # Safety
///
/// `env` must be the live env of the current (JavaScript) thread and `value`
/// a live value of it, as napi-rs guarantees to `from_napi_value`.
unsafe fn parse_with<T>(
    env: sys::napi_env,
    value: sys::napi_value,
    f: impl FnOnce(&Env, Unknown) -> Res<T>,
) -> Result<T> {
    let env = Env::from_raw(env);
    // SAFETY: as this function's contract says.
    let value = unsafe { Unknown::from_raw_unchecked(env.raw(), value) };
    f(&env, value).map_err(as_error)
}

/// What `onConnect` returned.
pub struct ConnectVerdict(Decision);

const STREAM_RESERVED: &[&str] = crate::config::RESERVED_STREAM_HEADERS;

impl FromNapiValue for ConnectVerdict {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        // SAFETY: `from_napi_value`'s own contract (the live env of this
        // thread, a live value of it) is exactly what `parse_with` requires.
        unsafe {
            parse_with(env, value, |env, v| {
                const WHAT: &str = "onConnect() result";
                let decision = match v.get_type()? {
                    ValueType::Undefined => accept(None, Vec::new()),
                    ValueType::Boolean if bool::from_unknown(v)? => accept(None, Vec::new()),
                    ValueType::Boolean => Decision::Deny(Reply {
                        status: StatusCode::FORBIDDEN,
                        headers: vec![(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/plain; charset=utf-8"),
                        )],
                        body: bytes::Bytes::from_static(b"forbidden\n"),
                    }),
                    ValueType::Object if !v.is_array()? => {
                        let obj = Object::from_unknown(v)?;
                        if convert::field(&obj, "status")?.is_some() {
                            Decision::Deny(reply(env, &obj, WHAT, StatusCode::FORBIDDEN)?)
                        } else {
                            convert::check_keys(&obj, &["channels", "headers"], WHAT)?;
                            let channels = convert::field(&obj, "channels")?
                                .map(|c| convert::channels(c, &format!("{WHAT}.channels")))
                                .transpose()?;
                            let headers = convert::field(&obj, "headers")?
                                .map(|h| {
                                    convert::headers(
                                        h,
                                        &format!("{WHAT}.headers"),
                                        STREAM_RESERVED,
                                    )
                                })
                                .transpose()?
                                .unwrap_or_default();
                            accept(channels, headers)
                        }
                    }
                    _ => {
                        return Err(Bad::Type(format!(
                            "{WHAT} must be true, false, undefined, {{ channels, headers }} or {{ status, body, headers }}, got {}",
                            convert::type_name(&v)
                        )))
                    }
                };
                Ok(ConnectVerdict(decision))
            })
        }
    }
}

fn accept(
    channels: Option<Vec<String>>,
    headers: Vec<(http::HeaderName, HeaderValue)>,
) -> Decision {
    Decision::Accept { channels, headers }
}

/// Headers an application reply may not set: hyper frames the body itself.
/// (`Connection` may be `close`, see [`reply`].)
const REPLY_RESERVED: &[&str] = &["content-length", "transfer-encoding", "upgrade"];

/// `{ status, headers, body }` as a [`Reply`]; `default_status` when absent.
/// `Connection: close` closes the connection after the reply; any other
/// `Connection` value is refused (the server manages keep-alive). A 204 or
/// 304 reply cannot have a body.
fn reply(env: &Env, obj: &Object, what: &str, default_status: StatusCode) -> Res<Reply> {
    convert::check_keys(obj, &["status", "headers", "body"], what)?;
    let status = match convert::field(obj, "status")? {
        None => default_status,
        Some(s) => {
            let n = convert::count(s, &format!("{what}.status"), "an HTTP status")?;
            match u16::try_from(n)
                .ok()
                .and_then(|n| StatusCode::from_u16(n).ok())
            {
                Some(code) if (200..=599).contains(&n) => code,
                _ => {
                    return Err(Bad::Range(format!(
                        "{what}.status must be an HTTP status from 200 to 599, got {n}"
                    )))
                }
            }
        }
    };
    let mut headers = match convert::field(obj, "headers")? {
        None => Vec::new(),
        Some(h) => convert::headers(h, &format!("{what}.headers"), REPLY_RESERVED)?,
    };
    if let Some((_, value)) = headers
        .iter()
        .find(|(n, v)| n == header::CONNECTION && !v.as_bytes().eq_ignore_ascii_case(b"close"))
    {
        return Err(Bad::Type(format!(
            "{what}.headers['connection'] may only be 'close' (the server manages keep-alive), got '{}'",
            String::from_utf8_lossy(value.as_bytes())
        )));
    }
    let body = match convert::field(obj, "body")? {
        None => bytes::Bytes::new(),
        Some(b) => {
            let (bytes, content_type) = convert::body(env, b, &format!("{what}.body"))?;
            if crate::http1::forbids_body(status) {
                if !bytes.is_empty() {
                    return Err(Bad::Type(format!(
                        "{what}.body must be empty with status {} (such an answer has no body)",
                        status.as_u16()
                    )));
                }
            } else if !headers.iter().any(|(n, _)| n == header::CONTENT_TYPE) {
                headers.push((header::CONTENT_TYPE, HeaderValue::from_static(content_type)));
            }
            bytes
        }
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// What `onRequest` returned: a reply, or nothing (fall through).
pub struct RouteVerdict(Option<Reply>);

impl FromNapiValue for RouteVerdict {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        // SAFETY: `from_napi_value`'s own contract (the live env of this
        // thread, a live value of it) is exactly what `parse_with` requires.
        unsafe {
            parse_with(env, value, |env, v| {
                const WHAT: &str = "onRequest() result";
                if convert::is_nullish(&v)? {
                    return Ok(RouteVerdict(None));
                }
                let obj = convert::object(v, WHAT)?;
                Ok(RouteVerdict(Some(reply(env, &obj, WHAT, StatusCode::OK)?)))
            })
        }
    }
}

/// What a CORS `origin` function returned.
pub struct OriginVerdict(bool);

impl FromNapiValue for OriginVerdict {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        // SAFETY: `from_napi_value`'s own contract (the live env of this
        // thread, a live value of it) is exactly what `parse_with` requires.
        unsafe {
            parse_with(env, value, |_, v| {
                Ok(OriginVerdict(convert::boolean(v, "cors.origin() result")?))
            })
        }
    }
}

// ---------------------------------------------------------------------------
// Hooks that are told.

/// What a told hook returned: only a Promise matters, since its rejection is
/// a failure like a throw.
struct Told(Option<sys::napi_value>);

impl FromNapiValue for Told {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        // SAFETY: `call` hands us a live value of the current env.
        Ok(Told(unsafe { is_promise(env, value)? }.then_some(value)))
    }
}

/// Hands a told hook's failure, now (a throw) or later (a rejection), to
/// `fail`. The rejection handler also marks the Promise as handled, so Node
/// never sees an unhandled rejection.
fn settle_told(env: &Env, told: Result<Told>, fail: impl Fn(&Env, Error) + Clone + 'static) {
    let promise = match told {
        Ok(Told(None)) => return,
        Ok(Told(Some(promise))) => promise,
        Err(e) => return fail(env, e),
    };
    let on_reject = fail.clone();
    let watched = caught(env, || {
        // SAFETY: `promise` is a live Promise of this env (checked by `Told`).
        let promise = unsafe { PromiseRaw::<Unknown>::from_napi_value(env.raw(), promise)? };
        promise.catch(move |ctx: CallbackContext<Unknown>| {
            on_reject(&ctx.env, Error::from_unknown_without_coercion(ctx.value));
            Ok(())
        })?;
        Ok(())
    });
    if let Err(e) = watched {
        fail(env, e);
    }
}

/// A told hook: `args` builds its arguments; failures go to `report` as
/// failures of `place`.
fn told<T: 'static>(
    env: &Env,
    f: Unknown,
    place: &'static str,
    report: &ErrorHook,
    args: impl Fn(&Env, T) -> Result<Vec<sys::napi_value>> + 'static,
) -> Res<OnJsThread<T>> {
    let f = user_fn(f, &format!("createServer(): options.{place}"))?;
    let report = Arc::clone(report);
    Ok(OnJsThread::new(env, move |env, value: T| {
        let report = Arc::clone(&report);
        let result = call(env, &f, || args(env, value));
        settle_told(env, result, move |_, e| report(place, boxed(e)));
    })?)
}

// ---------------------------------------------------------------------------
// Where errors end up.

/// A failure as the JavaScript value `onError` receives: what JavaScript
/// threw or rejected with, as it is; for the engine's own errors an `Error`
/// (a hook that ran out of time: `code: 'ERR_HOOK_TIMEOUT'`).
fn error_value(env: &Env, error: HookError) -> Result<sys::napi_value> {
    let error = match error.downcast::<Error>() {
        // The retained thrown value comes back as it is, even when it is not
        // an `Error` (`throw 'oops'`).
        Ok(e) => return js(env, *e),
        Err(other) => other,
    };
    let mut obj = env.create_error(Error::new(Status::GenericFailure, error.to_string()))?;
    if error.is::<HookTimeout>() {
        obj.set_named_property("code", "ERR_HOOK_TIMEOUT")?;
    }
    Ok(obj.raw())
}

/// A failure in words, for standard error and headings: for a JavaScript
/// error, its message (without napi-rs's status prefix).
fn describe(error: &HookError) -> String {
    match error.downcast_ref::<Error>() {
        Some(e) => e.reason.clone(),
        None => error.to_string(),
    }
}

/// The end of the line for an error: `console.error(heading, error)`; when
/// even that fails (no console, a `console.error` that throws), standard
/// error. Never throws, never leaves anything pending.
fn last_resort(env: &Env, heading: &str, error: HookError) {
    let text = describe(&error);
    let printed = caught(env, || {
        let console: Object = env.get_global()?.get_named_property("console")?;
        let print: Unknown = console.get_named_property("error")?;
        if print.get_type()? != ValueType::Function {
            return Err(Error::new(
                Status::FunctionExpected,
                "console.error is not a function",
            ));
        }
        let print = Function::<(), ()>::from_unknown(print)?;
        let args = [js(env, heading)?, error_value(env, error)?];
        let raw = env.raw();
        let mut out = ptr::null_mut();
        // SAFETY: on the JavaScript thread; every value is live in this env.
        let status = unsafe {
            sys::napi_call_function(
                raw,
                console.raw(),
                print.raw(),
                args.len(),
                args.as_ptr(),
                &mut out,
            )
        };
        match status {
            sys::Status::napi_ok => Ok(()),
            s => Err(Error::new(Status::from(s), "console.error failed")),
        }
    });
    if printed.is_err() {
        eprintln!("{heading} {text}");
    }
}

/// `onError`, or `console.error` without one, as the engine's error hook.
fn error_hook(env: &Env, on_error: Option<Unknown>) -> Res<ErrorHook> {
    type Failure = (&'static str, HookError);
    let job = match on_error {
        None => OnJsThread::new(env, |env, (place, error): Failure| {
            last_resort(env, &format!("hyper-sse: {place} failed:"), error)
        })?,
        Some(f) => {
            let f = user_fn(f, "createServer(): options.onError")?;
            OnJsThread::new(env, move |env, (place, error): Failure| {
                let heading: Arc<str> = format!(
                    "hyper-sse: onError failed while reporting that {place} failed ({}):",
                    describe(&error)
                )
                .into();
                let result = call(env, &f, || {
                    Ok(vec![error_value(env, error)?, js(env, place)?])
                });
                settle_told(env, result, move |env, e| {
                    last_resort(env, &heading, boxed(e))
                });
            })?
        }
    };
    Ok(Arc::new(move |place: &'static str, error: HookError| {
        let text = describe(&error);
        if !job.send((place, error)) {
            eprintln!("hyper-sse: {place} failed: {text}");
        }
    }))
}

/// The callbacks found in the options, still as JavaScript values.
#[derive(Default)]
pub struct Callbacks<'a> {
    pub on_connect: Option<Unknown<'a>>,
    pub on_request: Option<Unknown<'a>>,
    pub on_connection: Option<Unknown<'a>>,
    pub on_disconnect: Option<Unknown<'a>>,
    pub on_error: Option<Unknown<'a>>,
}

/// Turns the callbacks into engine hooks.
pub fn hooks(env: &Env, cb: Callbacks) -> Res<Hooks> {
    let report = error_hook(env, cb.on_error)?;
    let mut hooks = Hooks {
        on_error: Some(Arc::clone(&report)),
        ..Hooks::default()
    };
    if let Some(f) = cb.on_connect {
        let ask = answering(
            env,
            f,
            "createServer(): options.onConnect",
            |env, info: Arc<ClientInfo>| Ok(vec![js(env, client_js(&info))?]),
        )?;
        hooks.on_connect = Some(Arc::new(move |info| -> HookFuture<Decision> {
            let verdict = ask(info);
            Box::pin(async move { verdict.await.map(|v: ConnectVerdict| v.0) })
        }));
    }
    if let Some(f) = cb.on_request {
        let ask = answering(
            env,
            f,
            "createServer(): options.onRequest",
            |env, r: PlainRequest| Ok(vec![js(env, request_js(&r))?]),
        )?;
        hooks.on_request = Some(Arc::new(move |r| -> HookFuture<Option<Reply>> {
            let verdict = ask(r);
            Box::pin(async move { verdict.await.map(|v: RouteVerdict| v.0) })
        }));
    }
    if let Some(f) = cb.on_connection {
        let job = told(
            env,
            f,
            "onConnection",
            &report,
            |env, info: Arc<ClientInfo>| Ok(vec![js(env, client_js(&info))?]),
        )?;
        hooks.on_connection = Some(Arc::new(move |info| {
            job.send(info);
        }));
    }
    if let Some(f) = cb.on_disconnect {
        let job = told(
            env,
            f,
            "onDisconnect",
            &report,
            |env, (info, reason): (Arc<ClientInfo>, EndReason)| {
                Ok(vec![js(env, client_js(&info))?, js(env, reason.as_str())?])
            },
        )?;
        hooks.on_disconnect = Some(Arc::new(move |info, reason| {
            job.send((info, reason));
        }));
    }
    Ok(hooks)
}

/// A CORS `origin` function as an engine predicate.
pub fn origin_predicate(env: &Env, f: Unknown) -> Res<AllowOrigin> {
    let ask = answering(
        env,
        f,
        "createServer(): options.cors.origin",
        |env, origin: String| Ok(vec![js(env, origin)?]),
    )?;
    Ok(AllowOrigin::Predicate(Arc::new(
        move |origin: String| -> HookFuture<bool> {
            let verdict = ask(origin);
            Box::pin(async move { verdict.await.map(|v: OriginVerdict| v.0) })
        },
    )))
}
