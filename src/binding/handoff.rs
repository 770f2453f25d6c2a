//! `handle(req, res)` and `fetch(request)`: streams for requests the
//! application's own server accepted, on its own port.
//!
//! What touches Node's objects is JavaScript (`handoff.js`, evaluated once
//! per server); this side turns its description of a request into an engine
//! [`Handoff`], and carries out what the engine decides on the JavaScript
//! thread: write an answer, take the socket (native), or bridge the stream
//! through `res.write()` / a web `ReadableStream`, one call per batch.

use super::convert::{self, Bad, Res};
use super::hooks::{caught, client_js, js, take_exception, OnJsThread, StreamClient};
use crate::handoff::{Answer, Handled, Handoff, Opened, Outlet, OutletFuture, Wrote};
use crate::server::{SendError, Server as Engine};
use bytes::Bytes;
use http::{HeaderMap, Method, Uri, Version};
use napi::bindgen_prelude::*;
use napi::{sys, Env, JsValue};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, Notify};

const GLUE: &str = include_str!("handoff.js");

/// What one handed-over request's JavaScript side has told the engine.
#[derive(Default)]
struct Watch {
    /// The response (or the fetch request) is gone: the client left.
    left: Arc<AtomicBool>,
    /// A full response took more (`'drain'`, or the reader pulled). A
    /// permit is kept if nobody waits yet.
    drained: Notify,
    /// Wakes everything waiting on the client when it leaves.
    gone: Notify,
}

impl Watch {
    fn leave(&self) {
        self.left.store(true, Ordering::Release);
        self.gone.notify_waiters();
        self.drained.notify_one();
    }

    fn has_left(&self) -> bool {
        self.left.load(Ordering::Acquire)
    }
}

type Watches = Arc<Mutex<HashMap<u32, Arc<Watch>>>>;

fn lock(w: &Watches) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Watch>>> {
    crate::sync::lock(w)
}

/// Work for the JavaScript thread from a bridged stream.
enum Job {
    Write {
        key: u32,
        batch: Bytes,
        answer: oneshot::Sender<Wrote>,
    },
    End {
        key: u32,
        clean: bool,
    },
}

/// The glue's functions (only ever touched on the JavaScript thread; kept
/// for the server's lifetime).
type Glue = Rc<ObjectRef<false>>;

/// One server's JavaScript half, made on first use.
pub struct Handoffs {
    glue: Glue,
    jobs: Arc<OnJsThread<Job>>,
    watches: Watches,
    next_key: u32,
}

impl Handoffs {
    /// Evaluates the glue and wires it to this server's watches.
    pub fn new(env: &Env) -> Result<Self> {
        let watches: Watches = Arc::default();
        let notify = {
            let watches = Arc::clone(&watches);
            env.create_function_from_closure::<(u32, String), (), _>(
                "hyperSseNotify",
                move |ctx| {
                    let (key, what): (u32, String) = (ctx.get(0)?, ctx.get(1)?);
                    let watch = lock(&watches).get(&key).cloned();
                    if let Some(watch) = watch {
                        match what.as_str() {
                            "drain" => watch.drained.notify_one(),
                            _ => {
                                lock(&watches).remove(&key);
                                watch.leave();
                            }
                        }
                    }
                    Ok(())
                },
            )?
        };
        let make: Function<Function<(u32, String), ()>, Object> = env.run_script(GLUE)?;
        let glue: Glue = Rc::new(make.call(notify)?.create_ref()?);
        let jobs = {
            let glue = Rc::clone(&glue);
            OnJsThread::new(env, move |env, job: Job| run_job(env, &glue, job))?
        };
        Ok(Handoffs {
            glue,
            jobs: Arc::new(jobs),
            watches,
            next_key: 0,
        })
    }

    fn watch(&mut self) -> (u32, Arc<Watch>) {
        self.next_key = self.next_key.wrapping_add(1);
        let key = self.next_key;
        let watch = Arc::new(Watch::default());
        lock(&self.watches).insert(key, Arc::clone(&watch));
        (key, watch)
    }

    fn unwatch(&self, key: u32) {
        lock(&self.watches).remove(&key);
    }
}

/// Runs a bridged stream's job on the JavaScript thread.
fn run_job(env: &Env, glue: &ObjectRef<false>, job: Job) {
    match job {
        Job::Write { key, batch, answer } => {
            let wrote = call(env, glue, "write", |env| {
                Ok(vec![js(env, key)?, js(env, Buffer::from(batch.to_vec()))?])
            })
            .and_then(|v| u32::from_unknown(v));
            let _ = answer.send(match wrote {
                Ok(0) => Wrote::Taken,
                Ok(1) => Wrote::Full,
                _ => Wrote::Gone,
            });
        }
        Job::End { key, clean } => {
            let _ = call(env, glue, "end", |env| {
                Ok(vec![js(env, key)?, js(env, clean)?])
            });
        }
    }
}

/// Calls `glue[name](...args)`; a throw is an `Err` carrying the thrown value.
fn call<'env>(
    env: &'env Env,
    glue: &ObjectRef<false>,
    name: &str,
    args: impl FnOnce(&Env) -> Result<Vec<sys::napi_value>>,
) -> Result<Unknown<'env>> {
    caught(env, || {
        let glue = glue.get_value(env)?;
        let f: Unknown = glue.get_named_property(name)?;
        let args = args(env)?;
        let mut out = ptr::null_mut();
        // SAFETY: on the JavaScript thread; every value is live in this env.
        let status = unsafe {
            sys::napi_call_function(
                env.raw(),
                glue.raw(),
                f.raw(),
                args.len(),
                args.as_ptr(),
                &mut out,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(take_exception(env).unwrap_or_else(|| {
                Error::new(Status::from(status), format!("handoff: {name} failed"))
            }));
        }
        // SAFETY: `out` is the live return value of the call above.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), out) })
    })
}

// ---------------------------------------------------------------------------
// The request, as the engine wants it.

/// What `handle()`/`fetch()` were asked: the request, described by the
/// glue, and the channels from the options.
struct Asked {
    parts: http::request::Parts,
    peer: SocketAddr,
    takeable: bool,
}

fn describe(d: Object, context: &str) -> Res<Asked> {
    let method: String = d.get_named_property("method")?;
    let url: String = d.get_named_property("url")?;
    let version: String = d.get_named_property("version")?;
    let flat: Vec<String> = d.get_named_property("headers")?;
    let address: String = d.get_named_property("remoteAddress")?;
    let port: u32 = d.get_named_property("remotePort")?;
    let takeable: bool = d.get_named_property("takeable")?;
    let bad = |what: &str| Bad::Type(format!("{context}: the request's {what} cannot be read"));
    let builder = http::Request::builder()
        .method(Method::from_bytes(method.as_bytes()).map_err(|_| bad("method"))?)
        .uri(url.parse::<Uri>().map_err(|_| bad("URL"))?)
        .version(match version.as_str() {
            "1.0" => Version::HTTP_10,
            "2" => Version::HTTP_2,
            _ => Version::HTTP_11,
        });
    let mut headers = HeaderMap::new();
    for pair in flat.chunks_exact(2) {
        let name = http::HeaderName::from_bytes(pair[0].as_bytes()).map_err(|_| bad("headers"))?;
        let value = http::HeaderValue::from_str(&pair[1]).map_err(|_| bad("headers"))?;
        headers.append(name, value);
    }
    let (mut parts, ()) = builder.body(()).map_err(|_| bad("head"))?.into_parts();
    parts.headers = headers;
    let ip = address
        .trim_start_matches("::ffff:")
        .parse::<IpAddr>()
        .or_else(|_| address.parse::<IpAddr>())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    Ok(Asked {
        parts,
        peer: SocketAddr::new(ip, port as u16),
        takeable,
    })
}

/// `options.channels` of `handle()`/`fetch()`, validated.
fn chosen_channels(options: Option<Unknown>, context: &str) -> Res<Option<Vec<String>>> {
    let Some(options) = options else {
        return Ok(None);
    };
    if convert::is_nullish(&options)? {
        return Ok(None);
    }
    let what = format!("{context}: options");
    let obj = convert::object(options, &what)?;
    convert::check_keys(&obj, &["channels"], &what)?;
    match convert::field(&obj, "channels")? {
        None => Ok(None),
        Some(c) => Ok(Some(convert::channels(c, &format!("{what}.channels"))?)),
    }
}

/// An engine header map as `{ name: value | value[] }`.
fn headers_js<'env>(env: &'env Env, headers: &HeaderMap) -> Result<Object<'env>> {
    let mut obj = Object::new(env)?;
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if values.len() == 1 {
            obj.set_named_property(name.as_str(), values[0].as_str())?;
        } else {
            obj.set_named_property(name.as_str(), values)?;
        }
    }
    Ok(obj)
}

fn answer_args(env: &Env, answer: &Answer) -> Result<[sys::napi_value; 3]> {
    Ok([
        js(env, u32::from(answer.status.as_u16()))?,
        headers_js(env, &answer.headers)?.raw(),
        js(env, Buffer::from(answer.body.to_vec()))?,
    ])
}

// ---------------------------------------------------------------------------
// handle()

/// Turns a bad argument into the rejected Promise `handle()` returns.
fn rejected<'env, T: ToNapiValue>(env: &'env Env, error: Error) -> Result<PromiseRaw<'env, T>> {
    let error = match error.status {
        // Thrown already (a TypeError, a coded Error): reject with it.
        Status::PendingException => take_exception(env).unwrap_or(error),
        _ => error,
    };
    PromiseRaw::reject(env, error)
}

/// What `handle()` and `fetch()` share before the engine decides: the
/// options, the glue's description of the request (`describe` for
/// `handle()`, `describeFetch` for `fetch()`, from `args`), and the engine's
/// [`Handoff`] with its watch key; and whether the socket may be taken.
/// `Err` is what the call rejects with.
fn hand_over(
    env: &Env,
    handoffs: &mut Handoffs,
    (context, describer): (&str, &str),
    options: Option<Unknown>,
    args: impl FnOnce(&Env, u32) -> Result<Vec<sys::napi_value>>,
) -> Result<(u32, Arc<Watch>, Handoff, bool)> {
    let channels = chosen_channels(options, context).map_err(|bad| convert::throw(env, bad))?;
    let (key, watch) = handoffs.watch();
    let asked = call(env, &handoffs.glue, describer, |env| args(env, key))
        .and_then(|d| d.coerce_to_object())
        .and_then(|d| describe(d, context).map_err(|bad| convert::throw(env, bad)));
    let asked = match asked {
        Ok(asked) => asked,
        Err(e) => {
            handoffs.unwatch(key);
            return Err(e);
        }
    };
    let handoff = Handoff {
        parts: asked.parts,
        peer: asked.peer,
        channels,
        left: Arc::clone(&watch.left),
    };
    Ok((key, watch, handoff, asked.takeable))
}

/// `server.handle(req, res, options)`.
pub fn handle<'env>(
    env: &'env Env,
    engine: &Arc<Engine>,
    handoffs: &mut Handoffs,
    req: Unknown<'env>,
    res: Unknown<'env>,
    options: Option<Unknown<'env>>,
) -> Result<PromiseRaw<'env, Option<StreamClient>>> {
    let (key, watch, handoff, takeable) = match hand_over(
        env,
        handoffs,
        ("handle()", "describe"),
        options,
        |env, key| Ok(vec![js(env, key)?, req.raw(), res.raw()]),
    ) {
        Ok(prepared) => prepared,
        Err(e) => return rejected(env, e),
    };
    let req_ref = Object::from_unknown(req)?.create_ref::<false>()?;
    let res_ref = Object::from_unknown(res)?.create_ref::<false>()?;
    if engine.is_closing() {
        return closed(env, handoffs, key, req_ref, res_ref);
    }
    let engine_task = Arc::clone(engine);
    let glue = Rc::clone(&handoffs.glue);
    let jobs = Arc::clone(&handoffs.jobs);
    let watches = Arc::clone(&handoffs.watches);
    env.spawn_future_with_callback(
        async move { Ok(engine_task.take(handoff).await) },
        move |env, handled: std::result::Result<Handled, SendError>| {
            let side = Side {
                glue,
                jobs,
                watches,
                key,
                watch,
            };
            let outcome = side.carry(env, handled, &req_ref, &res_ref, takeable);
            let _ = req_ref.unref(env);
            let _ = res_ref.unref(env);
            outcome
        },
    )
}

/// After `close()`: the response is answered 503 and the call rejects.
fn closed<'env, T: ToNapiValue>(
    env: &'env Env,
    handoffs: &Handoffs,
    key: u32,
    req: ObjectRef<false>,
    res: ObjectRef<false>,
) -> Result<PromiseRaw<'env, T>> {
    handoffs.unwatch(key);
    let _ = reply(env, &handoffs.glue, key, &res, &closed_answer());
    let _ = req.unref(env);
    let _ = res.unref(env);
    rejected(
        env,
        convert::throw_code(env, "ERR_SERVER_CLOSED", "handle(): the server is closed"),
    )
}

fn closed_answer() -> Answer {
    Answer::unavailable("the server is shutting down\n")
}

fn reply(
    env: &Env,
    glue: &ObjectRef<false>,
    key: u32,
    res: &ObjectRef<false>,
    answer: &Answer,
) -> Result<()> {
    call(env, glue, "reply", |env| {
        let [status, headers, body] = answer_args(env, answer)?;
        Ok(vec![
            js(env, key)?,
            res.get_value(env)?.raw(),
            status,
            headers,
            body,
        ])
    })
    .map(|_| ())
}

/// One handed-over request's JavaScript side, once the engine has decided.
struct Side {
    glue: Glue,
    jobs: Arc<OnJsThread<Job>>,
    watches: Watches,
    key: u32,
    watch: Arc<Watch>,
}

impl Side {
    /// Carries out the engine's decision for `handle()`.
    fn carry(
        self,
        env: &Env,
        handled: std::result::Result<Handled, SendError>,
        req: &ObjectRef<false>,
        res: &ObjectRef<false>,
        takeable: bool,
    ) -> Result<Option<StreamClient>> {
        let opened = match handled {
            Err(_) => {
                self.forget();
                let _ = reply(env, &self.glue, self.key, res, &closed_answer());
                return Err(convert::throw_code(
                    env,
                    "ERR_SERVER_CLOSED",
                    "handle(): the server is closed",
                ));
            }
            Ok(Handled::Reply(answer)) => {
                self.forget();
                reply(env, &self.glue, self.key, res, &answer)?;
                return Ok(None);
            }
            Ok(Handled::Stream(opened)) => opened,
        };
        if self.watch.has_left() {
            // Gone since the engine decided: the stream ends at once.
            self.forget();
            return Ok(None);
        }
        let mut client = client_js(opened.client());
        if takeable {
            if let Some(socket) = self.socket(env, req, res)? {
                self.forget();
                let served = napi::bindgen_prelude::within_runtime_if_available(|| {
                    opened.serve_native(socket)
                });
                // Checked just above: the handle is there to let go of.
                let _ = call(env, &self.glue, "release", |env| {
                    Ok(vec![js(env, self.key)?, req.get_value(env)?.raw()])
                });
                if served.is_err() {
                    return Ok(None);
                }
                client.transport = Some("native".to_owned());
                return Ok(Some(client));
            }
        }
        let (status, headers) = opened.head();
        let status = u32::from(status.as_u16());
        let bridged = call(env, &self.glue, "bridge", |env| {
            Ok(vec![
                js(env, self.key)?,
                res.get_value(env)?.raw(),
                js(env, status)?,
                headers_js(env, headers)?.raw(),
            ])
        });
        if let Err(e) = bridged {
            // The response refused the head: no stream (it ends as the client's).
            self.forget();
            return Err(e);
        }
        self.serve_bridged(opened);
        client.transport = Some("bridged".to_owned());
        Ok(Some(client))
    }

    /// A descriptor of the connection's socket, when the glue says it may
    /// be taken now.
    fn socket(
        &self,
        env: &Env,
        req: &ObjectRef<false>,
        res: &ObjectRef<false>,
    ) -> Result<Option<std::net::TcpStream>> {
        let fd = call(env, &self.glue, "takeable", |env| {
            Ok(vec![req.get_value(env)?.raw(), res.get_value(env)?.raw()])
        })?;
        let fd = i32::from_unknown(fd)?;
        if fd < 0 {
            return Ok(None);
        }
        Ok(duplicate(fd))
    }

    fn serve_bridged(self, opened: Box<Opened>) {
        let outlet = JsOutlet {
            key: self.key,
            jobs: self.jobs,
            watch: self.watch,
            watches: self.watches,
        };
        // On the JavaScript thread: the engine's tasks go to its runtime.
        napi::bindgen_prelude::within_runtime_if_available(|| opened.serve_bridged(outlet));
    }

    fn forget(&self) {
        lock(&self.watches).remove(&self.key);
    }
}

/// The engine's own descriptor of a socket Node holds, so that Node
/// closing its handle later neither closes the connection nor sends FIN.
#[cfg(unix)]
fn duplicate(fd: i32) -> Option<std::net::TcpStream> {
    use std::os::fd::BorrowedFd;
    // SAFETY: `fd` is the descriptor of a socket Node holds open right now
    // (the glue read it from the live handle, on this thread, just before).
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    borrowed
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from)
}

#[cfg(not(unix))]
fn duplicate(_fd: i32) -> Option<std::net::TcpStream> {
    None
}

/// A bridged stream's outlet: the other server's response, reached through
/// the JavaScript thread.
struct JsOutlet {
    key: u32,
    jobs: Arc<OnJsThread<Job>>,
    watch: Arc<Watch>,
    watches: Watches,
}

impl Outlet for JsOutlet {
    fn write(&mut self, batch: Bytes) -> OutletFuture<Wrote> {
        let (answer, wrote) = oneshot::channel();
        let sent = self.jobs.send(Job::Write {
            key: self.key,
            batch,
            answer,
        });
        Box::pin(async move {
            if !sent {
                return Wrote::Gone;
            }
            wrote.await.unwrap_or(Wrote::Gone)
        })
    }

    fn drained(&mut self) -> OutletFuture<bool> {
        let watch = Arc::clone(&self.watch);
        Box::pin(async move {
            watch.drained.notified().await;
            !watch.has_left()
        })
    }

    fn gone(&mut self) -> OutletFuture<()> {
        let watch = Arc::clone(&self.watch);
        Box::pin(async move {
            loop {
                let gone = watch.gone.notified();
                if watch.has_left() {
                    return;
                }
                gone.await;
            }
        })
    }

    fn end(self: Box<Self>, clean: bool) {
        lock(&self.watches).remove(&self.key);
        let _ = self.jobs.send(Job::End {
            key: self.key,
            clean,
        });
    }
}

impl Drop for JsOutlet {
    fn drop(&mut self) {
        lock(&self.watches).remove(&self.key);
    }
}

// ---------------------------------------------------------------------------
// fetch()

/// `server.fetch(request, options)`: a web `Response`, its body fed by the
/// engine; after `close()`, a 503 `Response` (the answer a fetch handler
/// would give).
pub fn fetch<'env>(
    env: &'env Env,
    engine: &Arc<Engine>,
    handoffs: &mut Handoffs,
    request: Unknown<'env>,
    options: Option<Unknown<'env>>,
) -> Result<PromiseRaw<'env, Unknown<'env>>> {
    let (key, watch, handoff, _) = match hand_over(
        env,
        handoffs,
        ("fetch()", "describeFetch"),
        options,
        |env, key| Ok(vec![js(env, key)?, request.raw()]),
    ) {
        Ok(prepared) => prepared,
        Err(e) => return rejected(env, e),
    };
    let engine_task = Arc::clone(engine);
    let side = Side {
        glue: Rc::clone(&handoffs.glue),
        jobs: Arc::clone(&handoffs.jobs),
        watches: Arc::clone(&handoffs.watches),
        key,
        watch,
    };
    env.spawn_future_with_callback(
        async move { Ok(engine_task.take(handoff).await) },
        move |env, handled: std::result::Result<Handled, SendError>| side.respond(env, handled),
    )
}

impl Side {
    /// Carries out the engine's decision for `fetch()`: a `Response`.
    fn respond<'env>(
        self,
        env: &'env Env,
        handled: std::result::Result<Handled, SendError>,
    ) -> Result<Unknown<'env>> {
        let answer = match handled {
            Err(_) => closed_answer(),
            Ok(Handled::Reply(answer)) => answer,
            Ok(Handled::Stream(opened)) if !self.watch.has_left() => {
                let (status, headers) = opened.head();
                let status = u32::from(status.as_u16());
                let response = call(env, &self.glue, "fetchStream", |env| {
                    Ok(vec![
                        js(env, self.key)?,
                        js(env, status)?,
                        headers_js(env, headers)?.raw(),
                    ])
                })?;
                self.serve_bridged(opened);
                return Ok(response);
            }
            // The request was aborted while the engine decided.
            Ok(Handled::Stream(_)) => closed_answer(),
        };
        self.forget();
        call(env, &self.glue, "fetchReply", |env| {
            let [status, headers, body] = answer_args(env, &answer)?;
            Ok(vec![js(env, self.key)?, status, headers, body])
        })
    }
}
