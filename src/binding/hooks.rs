//! The application's JavaScript callbacks, as the engine's [`Hooks`].
//!
//! Each callback becomes a weak threadsafe function (it never keeps Node
//! alive by itself). The engine calls from tokio's threads; arguments are
//! built and return values parsed on the JavaScript thread. A callback may
//! return a value or a Promise of one; a throw, a rejection or a malformed
//! value becomes an error for `onError` (or `console.error`), never a crash.

use super::convert::{self, as_error, Bad, Res};
use crate::cors::AllowOrigin;
use crate::hooks::{
    ClientInfo, Decision, HookError, HookFuture, Hooks, PlainRequest, Reply, RequestInfo,
};
use crate::hub::EndReason;
use http::{header, HeaderValue, StatusCode};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use napi::{Env, JsValue, ValueType};
use napi_derive::napi;
use std::collections::HashMap;
use std::sync::Arc;

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
fn client_js(info: &ClientInfo) -> StreamClient {
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
    }
}

/// A callback's result: a value now, or a Promise of one.
pub enum Returned<T: FromNapiValue + 'static> {
    Now(T),
    Later(Promise<T>),
}

impl<T: FromNapiValue + 'static> FromNapiValue for Returned<T> {
    unsafe fn from_napi_value(
        env: napi::sys::napi_env,
        value: napi::sys::napi_value,
    ) -> Result<Self> {
        let mut is_promise = false;
        // SAFETY: called by napi-rs on the JavaScript thread with a live env and value.
        unsafe {
            napi::sys::napi_is_promise(env, value, &mut is_promise);
            if is_promise {
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

/// Parses a JavaScript value on the JavaScript thread with [`Res`] errors.
fn parse_with<T>(
    env: napi::sys::napi_env,
    value: napi::sys::napi_value,
    f: impl FnOnce(&Env, Unknown) -> Res<T>,
) -> Result<T> {
    let env = Env::from_raw(env);
    // SAFETY: napi-rs hands us a live value of this env.
    let value = unsafe { Unknown::from_raw_unchecked(env.raw(), value) };
    f(&env, value).map_err(as_error)
}

/// What `onConnect` returned.
pub struct ConnectVerdict(Decision);

const STREAM_RESERVED: &[&str] = crate::server::RESERVED_STREAM_HEADERS;

impl FromNapiValue for ConnectVerdict {
    unsafe fn from_napi_value(
        env: napi::sys::napi_env,
        value: napi::sys::napi_value,
    ) -> Result<Self> {
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
                            .map(|h| convert::headers(h, &format!("{WHAT}.headers"), STREAM_RESERVED))
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

fn accept(
    channels: Option<Vec<String>>,
    headers: Vec<(http::HeaderName, HeaderValue)>,
) -> Decision {
    Decision::Accept { channels, headers }
}

/// Headers an application reply may not set: hyper frames the body itself.
const REPLY_RESERVED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

/// `{ status, headers, body }` as a [`Reply`]; `default_status` when absent.
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
    let body = match convert::field(obj, "body")? {
        None => bytes::Bytes::new(),
        Some(b) => {
            let (bytes, content_type) = convert::body(env, b, &format!("{what}.body"))?;
            if !headers.iter().any(|(n, _)| n == header::CONTENT_TYPE) {
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
    unsafe fn from_napi_value(
        env: napi::sys::napi_env,
        value: napi::sys::napi_value,
    ) -> Result<Self> {
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

/// What a CORS `origin` function returned.
pub struct OriginVerdict(bool);

impl FromNapiValue for OriginVerdict {
    unsafe fn from_napi_value(
        env: napi::sys::napi_env,
        value: napi::sys::napi_value,
    ) -> Result<Self> {
        parse_with(env, value, |_, v| {
            Ok(OriginVerdict(convert::boolean(v, "cors.origin() result")?))
        })
    }
}

type Tsfn<T, R, A> = ThreadsafeFunction<T, R, A, Status, false, true>;

fn build<T: 'static, R: FromNapiValue + 'static, A: 'static + JsValuesTupleIntoVec>(
    f: Unknown,
    what: &str,
    args: impl 'static + FnMut(ThreadsafeCallContext<T>) -> Result<A>,
) -> Res<Tsfn<T, R, A>> {
    if f.get_type()? != ValueType::Function {
        return Err(Bad::Type(format!(
            "{what} must be a function, got {}",
            convert::type_name(&f)
        )));
    }
    let f: Function<A, R> = Function::from_unknown(f)?;
    Ok(f.build_threadsafe_function::<T>()
        .weak::<true>()
        .callee_handled::<false>()
        .build_callback(args)?)
}

fn boxed(e: Error) -> HookError {
    Box::new(e)
}

/// Calls a hook and waits for its (possibly asynchronous) result.
async fn ask<
    T: Send + 'static,
    R: FromNapiValue + Send + 'static,
    A: 'static + JsValuesTupleIntoVec,
>(
    tsfn: &Tsfn<T, Returned<R>, A>,
    value: T,
) -> std::result::Result<R, HookError> {
    let returned = tsfn.call_async_catch(value).await.map_err(boxed)?;
    returned.settle().await.map_err(boxed)
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
    let mut hooks = Hooks::default();
    if let Some(f) = cb.on_connect {
        let tsfn: Arc<Tsfn<Arc<ClientInfo>, Returned<ConnectVerdict>, StreamClient>> =
            Arc::new(build(
                f,
                "createServer(): options.onConnect",
                |ctx: ThreadsafeCallContext<Arc<ClientInfo>>| Ok(client_js(&ctx.value)),
            )?);
        hooks.on_connect = Some(Arc::new(
            move |req: Arc<ClientInfo>| -> HookFuture<Decision> {
                let tsfn = Arc::clone(&tsfn);
                Box::pin(async move { ask(&tsfn, req).await.map(|v| v.0) })
            },
        ));
    }
    if let Some(f) = cb.on_request {
        let tsfn: Arc<Tsfn<PlainRequest, Returned<RouteVerdict>, HttpRequest>> = Arc::new(build(
            f,
            "createServer(): options.onRequest",
            |ctx: ThreadsafeCallContext<PlainRequest>| {
                let r = ctx.value;
                Ok(HttpRequest {
                    method: r.request.method.clone(),
                    path: r.request.path.clone(),
                    query: query_map(&r.request.query),
                    headers: header_map(&r.request),
                    remote_address: r.request.remote_addr.ip().to_string(),
                    remote_port: u32::from(r.request.remote_addr.port()),
                    http_version: r.request.version.to_owned(),
                    body: Buffer::from(r.body.to_vec()),
                })
            },
        )?);
        hooks.on_request = Some(Arc::new(
            move |req: PlainRequest| -> HookFuture<Option<Reply>> {
                let tsfn = Arc::clone(&tsfn);
                Box::pin(async move { ask(&tsfn, req).await.map(|v| v.0) })
            },
        ));
    }
    if let Some(f) = cb.on_connection {
        let tsfn: Tsfn<Arc<ClientInfo>, Unknown<'static>, StreamClient> = build(
            f,
            "createServer(): options.onConnection",
            |ctx: ThreadsafeCallContext<Arc<ClientInfo>>| Ok(client_js(&ctx.value)),
        )?;
        hooks.on_connection = Some(Arc::new(move |info: Arc<ClientInfo>| {
            tsfn.call(info, ThreadsafeFunctionCallMode::NonBlocking);
        }));
    }
    if let Some(f) = cb.on_disconnect {
        type EndArgs = FnArgs<(StreamClient, &'static str)>;
        let tsfn: Tsfn<(Arc<ClientInfo>, EndReason), Unknown<'static>, EndArgs> = build(
            f,
            "createServer(): options.onDisconnect",
            |ctx: ThreadsafeCallContext<(Arc<ClientInfo>, EndReason)>| {
                let (info, reason) = ctx.value;
                Ok(FnArgs::from((client_js(&info), reason.as_str())))
            },
        )?;
        hooks.on_disconnect = Some(Arc::new(move |info: Arc<ClientInfo>, reason: EndReason| {
            tsfn.call((info, reason), ThreadsafeFunctionCallMode::NonBlocking);
        }));
    }
    // Errors go to onError(error, where), or to console.error: never nowhere.
    let (report, user): (Unknown, bool) = match cb.on_error {
        Some(f) => (f, true),
        None => {
            let console: Object = env.get_global()?.get_named_property("console")?;
            (console.get_named_property("error")?, false)
        }
    };
    type Arg = Either<JsError, String>;
    let tsfn: Tsfn<(&'static str, Error), Unknown<'static>, FnArgs<(Arg, Arg)>> = build(
        report,
        "createServer(): options.onError",
        move |ctx: ThreadsafeCallContext<(&'static str, Error)>| {
            let (place, error) = ctx.value;
            let err = Either::A(JsError::from(error));
            Ok(FnArgs::from(if user {
                (err, Either::B(place.to_owned()))
            } else {
                (Either::B(format!("hyper-sse: {place} failed:")), err)
            }))
        },
    )?;
    hooks.on_error = Some(Arc::new(move |place: &'static str, error: HookError| {
        let error = match error.downcast::<Error>() {
            Ok(e) => *e,
            Err(other) => Error::new(Status::GenericFailure, other.to_string()),
        };
        tsfn.call((place, error), ThreadsafeFunctionCallMode::NonBlocking);
    }));
    Ok(hooks)
}

/// A CORS `origin` function as an engine predicate.
pub fn origin_predicate(f: Unknown) -> Res<AllowOrigin> {
    let tsfn: Arc<Tsfn<String, Returned<OriginVerdict>, String>> = Arc::new(build(
        f,
        "createServer(): options.cors.origin",
        |ctx: ThreadsafeCallContext<String>| Ok(ctx.value),
    )?);
    Ok(AllowOrigin::Predicate(Arc::new(
        move |origin: String| -> HookFuture<bool> {
            let tsfn = Arc::clone(&tsfn);
            Box::pin(async move { ask(&tsfn, origin).await.map(|v| v.0) })
        },
    )))
}
