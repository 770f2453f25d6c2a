//! Request handling: where each request goes and what it gets.
//!
//! Order: a request that breaks HTTP/1.1's message rules is answered 400;
//! a CORS preflight (or, with CORS configured, any `OPTIONS`) is answered
//! next; then stream paths, then the application's `on_request` route
//! handler, then static files, then 404. Every refusal is an HTTP answer with
//! a reason, never a dropped connection.

use crate::body::{plain, ResponseBody};
use crate::channel::DEFAULT_CHANNEL;
use crate::channel::{check_name, BadName};
use crate::connection::ConnState;
use crate::cors::{is_preflight, Cors, Verdict, ALLOWED_METHODS};
use crate::event::encode_comment;
use crate::hooks::EndReason;
use crate::hooks::{
    within, ClientInfo, Decision, HookTimeout, PlainRequest, Reply, RequestInfo, Unanswered,
};
use crate::http1::{check_request, forbids_body};
use crate::hub::{Subscriber, Subscription};
use crate::limits::{Permit, Refusal};
use crate::shared::Shared;
use crate::stream::EventStream;
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a request to a stream path comes to.
pub(crate) enum Outcome {
    /// An answer without a stream (denied, preflight, HEAD, 405, …).
    Reply(Response<ResponseBody>),
    /// A stream, started.
    Stream(Started),
}

/// Whether `path` opens an event stream.
pub(crate) fn is_stream_path(shared: &Shared, path: &str) -> bool {
    shared.config.paths.iter().any(|p| p == path)
}

/// The CORS decision for a request, or the answer to give at once (a
/// preflight, a bare `OPTIONS`, a refused origin, a failing origin function).
/// `allow` is what the path answers to, for a bare `OPTIONS`.
async fn cors_gate(
    parts: &Parts,
    shared: &Shared,
    is_stream: bool,
    allow: &'static str,
) -> Result<Verdict, Response<ResponseBody>> {
    let Some(cors) = &shared.config.cors else {
        return Ok(Verdict::SameOrigin);
    };
    let verdict = if same_origin(&parts.headers) {
        Verdict::SameOrigin
    } else {
        match within(shared.config.hook_timeout, cors.check(&parts.headers)).await {
            Ok(v) => v,
            Err(why) => return Err(unanswered(shared, "cors.origin", why, is_stream)),
        }
    };
    if is_preflight(&parts.method, &parts.headers) {
        return Err(match verdict {
            Verdict::Allowed(mut headers) => {
                headers.extend(cors.preflight_headers(&parts.headers));
                let mut response = no_content();
                append(&mut response, headers);
                response
            }
            _ => plain(StatusCode::FORBIDDEN, "origin not allowed\n"),
        });
    }
    if verdict == Verdict::Refused {
        if is_stream {
            shared.stats.denied();
        }
        return Err(plain(StatusCode::FORBIDDEN, "origin not allowed\n"));
    }
    if parts.method == Method::OPTIONS {
        // Not a preflight: what the path answers to, as the `cors`
        // middleware does, rather than 405.
        let mut response = no_content();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        if let Verdict::Allowed(headers) = verdict {
            append(&mut response, headers);
        }
        return Err(response);
    }
    Ok(verdict)
}

/// Answers one request that hyper parsed.
pub(crate) async fn route(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    peer: SocketAddr,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, body) = req.into_parts();
    if let Some(answer) = refuse_malformed(&shared, &parts) {
        return Ok(answer);
    }
    if is_stream_path(&shared, parts.uri.path()) {
        return Ok(
            match stream_request(&parts, &shared, &conn, peer, None).await {
                Outcome::Reply(response) => response,
                Outcome::Stream(Started {
                    mut response,
                    stream,
                    ..
                }) => {
                    *response.body_mut() = ResponseBody::Events(Box::new(stream));
                    response
                }
            },
        );
    }
    let mut response = match cors_gate(&parts, &shared, false, allow(&shared, true)).await {
        Ok(verdict) => {
            let mut response = serve_plain(parts, body, &shared, peer).await;
            if let Verdict::Allowed(headers) = verdict {
                append(&mut response, headers);
            }
            response
        }
        Err(answer) => answer,
    };
    finish(&shared, &mut response);
    Ok(response)
}

/// A request that breaks HTTP/1.1's message rules ([`check_request`]),
/// answered: 400 with the reason, and the connection closes after it. Both
/// paths ask: hyper's for every request, the direct one before a stream.
pub(crate) fn refuse_malformed(shared: &Shared, parts: &Parts) -> Option<Response<ResponseBody>> {
    let why = check_request(parts).err()?;
    let mut response = plain(StatusCode::BAD_REQUEST, why.reason());
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    finish(shared, &mut response);
    Some(response)
}

/// What every response gets last: with a public CORS policy
/// ([`Cors::is_public`]), `Access-Control-Allow-Origin: *`, whether the
/// request sent an `Origin` or not.
fn finish(shared: &Shared, response: &mut Response<ResponseBody>) {
    if shared.config.cors.as_ref().is_some_and(Cors::is_public) {
        response
            .headers_mut()
            .entry(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .or_insert(HeaderValue::from_static("*"));
    }
}

/// The methods a path answers to, for `Allow`: a stream path or static
/// files take GET and HEAD; routes (`routes`, with `on_request`) may take
/// any; OPTIONS is answered only with CORS configured.
fn allow(shared: &Shared, routes: bool) -> &'static str {
    match (
        &shared.config.cors,
        routes && shared.config.hooks.on_request.is_some(),
    ) {
        (None, _) => "GET, HEAD",
        (Some(_), true) => ALLOWED_METHODS,
        (Some(_), false) => "GET, HEAD, OPTIONS",
    }
}

fn no_content() -> Response<ResponseBody> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(ResponseBody::Empty)
        .expect("a StatusCode alone always makes a valid head")
}

/// Answers a request to a stream path: limits, CORS, method, the connect
/// hook, then the stream. Shared by hyper's path and the direct one.
///
/// A GET takes its connection slot before anything is decided, so a request
/// still waiting for the CORS origin function or `onConnect` counts against
/// `maxConnections` (and `maxConnectionsPerIp`) like an open stream; the
/// hook time limit bounds how long it can hold it.
///
/// `handing` is set for a request another server accepted (`handle()`,
/// `fetch()`).
pub(crate) async fn stream_request(
    parts: &Parts,
    shared: &Arc<Shared>,
    conn: &Arc<ConnState>,
    peer: SocketAddr,
    handing: Option<Handing>,
) -> Outcome {
    let mut outcome = decide_stream(parts, shared, conn, peer, handing).await;
    finish(shared, outcome.response_mut());
    outcome
}

impl Outcome {
    /// The response either way (a stream's head, or the whole answer).
    pub(crate) fn response_mut(&mut self) -> &mut Response<ResponseBody> {
        match self {
            Outcome::Reply(r) | Outcome::Stream(Started { response: r, .. }) => r,
        }
    }
}

async fn decide_stream(
    parts: &Parts,
    shared: &Arc<Shared>,
    conn: &Arc<ConnState>,
    peer: SocketAddr,
    handing: Option<Handing>,
) -> Outcome {
    let candidate = match parts.method {
        Method::GET => {
            let candidate = match Candidate::new(parts, shared, peer, handing) {
                Ok(candidate) => candidate,
                Err(bad) => return Outcome::Reply(bad_channel(bad)),
            };
            match shared.limits.acquire(peer.ip()) {
                Ok(permit) => Some((candidate, permit)),
                Err(refusal) => return candidate.deny(shared, limit_refusal(refusal)),
            }
        }
        _ => None,
    };
    let verdict = match cors_gate(parts, shared, true, allow(shared, false)).await {
        Ok(v) => v,
        Err(answer) => return Outcome::Reply(answer),
    };
    let mut outcome = match (&parts.method, candidate) {
        (&Method::GET, Some((candidate, permit))) => {
            open_stream(candidate, permit, shared, conn).await
        }
        (&Method::HEAD, _) => Outcome::Reply(stream_head(parts, shared)),
        _ => Outcome::Reply(method_not_allowed(shared)),
    };
    if let Verdict::Allowed(headers) = verdict {
        append(outcome.response_mut(), headers);
    }
    outcome
}

/// The answer when a hook gave none, reported to `onError`: 500 when it
/// failed; when it ran out of time, 503 with `Retry-After` for a stream
/// request (the client should come back) or 504 for a route.
fn unanswered(
    shared: &Shared,
    hook: &'static str,
    why: Unanswered,
    is_stream: bool,
) -> Response<ResponseBody> {
    let hooks = &shared.config.hooks;
    match why {
        Unanswered::Failed(e) => {
            hooks.report(hook, e);
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
        Unanswered::TimedOut(limit) => {
            let (status, text) = if is_stream {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server could not decide in time; try again\n",
                )
            } else {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "the application did not answer in time\n",
                )
            };
            hooks.report(
                hook,
                Box::new(HookTimeout {
                    hook,
                    limit,
                    status,
                }),
            );
            let mut response = plain(status, text);
            if is_stream {
                retry_after(&mut response);
            }
            response
        }
    }
}

/// The answer to a stream request over a connection limit.
fn limit_refusal(refusal: Refusal) -> Response<ResponseBody> {
    let (status, text) = match refusal {
        Refusal::Total => (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n"),
        Refusal::PerIp => (
            StatusCode::TOO_MANY_REQUESTS,
            "too many connections from this address\n",
        ),
    };
    let mut response = plain(status, text);
    retry_after(&mut response);
    response
}

/// Tells the client when to try again.
fn retry_after(response: &mut Response<ResponseBody>) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
}

/// Whether `Origin` names this very server (a same-origin `fetch` sends it too).
fn same_origin(headers: &http::HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST))
    else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

fn append(response: &mut Response<ResponseBody>, headers: Vec<(http::HeaderName, HeaderValue)>) {
    for (name, value) in headers {
        response.headers_mut().append(name, value);
    }
}

fn request_info(req: &Parts, peer: SocketAddr) -> Arc<RequestInfo> {
    Arc::new(RequestInfo {
        method: req.method.as_str().to_owned(),
        path: req.uri.path().to_owned(),
        query: req.uri.query().unwrap_or("").to_owned(),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        remote_addr: peer,
        version: match req.version {
            Version::HTTP_10 => "1.0",
            Version::HTTP_2 => "2",
            _ => "1.1",
        },
    })
}

/// 405 for a stream path or static files, which take GET and HEAD only.
fn method_not_allowed(shared: &Shared) -> Response<ResponseBody> {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static(allow(shared, false)),
    );
    response
}

/// An application-decided answer as a response. A 204 or 304 answer gets
/// neither a body nor `Content-Length` (RFC 9110 §8.6).
pub fn reply(reply: Reply) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Empty);
    *response.status_mut() = reply.status;
    if !forbids_body(reply.status) {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, reply.body.len().into());
        if !reply.body.is_empty() {
            *response.body_mut() = ResponseBody::text(reply.body);
        }
    }
    append(&mut response, reply.headers);
    response
}

/// The response head every stream (and HEAD on a stream path) gets.
fn stream_head(req: &Parts, shared: &Shared) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Empty);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if req.version == Version::HTTP_11 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    // A configured header replaces a default one; a repeated one is sent
    // once per value.
    let configured = &shared.config.headers;
    for name in configured.keys() {
        headers.remove(name);
        for value in configured.get_all(name) {
            headers.append(name, value.clone());
        }
    }
    response
}

/// What a stream request asks for: channels (from the query when allowed
/// and nobody chose them already) and the id to resume after; or why a
/// `?channel=` it reads is not a channel name.
fn stream_params(
    req: &Parts,
    shared: &Shared,
    chosen: bool,
) -> Result<(Vec<String>, Option<String>), BadName> {
    let from_query = shared.config.channels_from_query && !chosen;
    let mut channels = Vec::new();
    let mut last_event_id = req
        .headers
        .get("last-event-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    for (key, value) in form_urlencoded::parse(req.uri.query().unwrap_or("").as_bytes()) {
        match &*key {
            "channel" if from_query => {
                check_name(&value)?;
                channels.push(value.into_owned())
            }
            "lastEventId" if last_event_id.is_none() => last_event_id = Some(value.into_owned()),
            _ => {}
        }
    }
    if channels.is_empty() {
        channels.push(DEFAULT_CHANNEL.to_owned());
    }
    Ok((channels, last_event_id))
}

fn bad_channel(why: BadName) -> Response<ResponseBody> {
    plain(
        StatusCode::BAD_REQUEST,
        format!("bad request: a ?channel= name {why}\n"),
    )
}

/// A GET on a stream path before it is decided: what it asks for, and the
/// client as the hooks see it. A `?channel=` that is not a channel name is
/// refused when it is made (400, see [`bad_channel`]).
struct Candidate<'a> {
    req: &'a Parts,
    peer: SocketAddr,
    id: u64,
    channels: Vec<String>,
    last_event_id: Option<String>,
    /// The channels were chosen by the server that accepted the request
    /// (`handle()` with `channels`), not by the query or `onConnect`.
    chosen: bool,
    /// For a handed-over request: set when its client went away.
    left: Option<Arc<AtomicBool>>,
    /// Built once when a hook will look at it: a stream without hooks keeps
    /// no copy of its request headers.
    request: Option<Arc<RequestInfo>>,
}

impl<'a> Candidate<'a> {
    fn new(
        req: &'a Parts,
        shared: &Shared,
        peer: SocketAddr,
        handing: Option<Handing>,
    ) -> Result<Self, BadName> {
        let hooks = &shared.config.hooks;
        let app_chose = handing.as_ref().is_some_and(|h| h.channels.is_some());
        let (asked, last_event_id) = stream_params(req, shared, app_chose)?;
        let handed = handing.is_some();
        let (chosen, left) = match handing {
            Some(h) => (h.channels, Some(h.left)),
            None => (None, None),
        };
        Ok(Candidate {
            req,
            peer,
            id: shared.hub().next_client_id(),
            chosen: chosen.is_some(),
            channels: chosen.unwrap_or(asked),
            left,
            last_event_id,
            request: (handed
                || hooks.on_connect.is_some()
                || hooks.on_connection.is_some()
                || hooks.on_disconnect.is_some())
            .then(|| request_info(req, peer)),
        })
    }

    /// Whether the client of a handed-over request went away.
    fn has_left(&self) -> bool {
        self.left
            .as_ref()
            .is_some_and(|l| l.load(Ordering::Acquire))
    }

    /// The client as the hooks see it, reading `channels`.
    fn info(&self, channels: &[String], stale: bool) -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            id: self.id,
            request: self
                .request
                .clone()
                .unwrap_or_else(|| request_info(self.req, self.peer)),
            channels: channels.to_vec(),
            last_event_id: self.last_event_id.clone(),
            last_event_id_stale: stale,
        })
    }

    /// Refuses the stream with `response`: counted, and told to `onDisconnect`.
    fn deny(&self, shared: &Shared, response: Response<ResponseBody>) -> Outcome {
        shared.stats.denied();
        if let Some(on_disconnect) = &shared.config.hooks.on_disconnect {
            on_disconnect(self.info(&self.channels, false), EndReason::Denied);
        }
        Outcome::Reply(response)
    }
}

/// What a request another server accepted brings along.
pub(crate) struct Handing {
    /// The channels its application chose; `None` lets the query and
    /// `onConnect` decide.
    pub(crate) channels: Option<Vec<String>>,
    /// Set when its client goes away.
    pub(crate) left: Arc<AtomicBool>,
}

/// A stream that was admitted: its response head (body still empty), the
/// stream, and the client as the hooks (and `handle()`) see it, when anyone
/// will look (a stream without hooks keeps no copy of its request).
pub(crate) struct Started {
    pub(crate) response: Response<ResponseBody>,
    pub(crate) stream: EventStream,
    pub(crate) client: Option<Arc<ClientInfo>>,
}

/// Admits, places and starts a stream; the three steps every way into a
/// stream (`listen()`'s transports, `handle()`, `fetch()`) share.
async fn open_stream(
    candidate: Candidate<'_>,
    permit: Option<Permit>,
    shared: &Arc<Shared>,
    conn: &Arc<ConnState>,
) -> Outcome {
    let (channels, extra_headers) = match admit(&candidate, shared).await {
        Ok(admitted) => admitted,
        Err(answer) => return answer,
    };
    if candidate.has_left() {
        // Gone while the hook decided: never counted as connected.
        return Outcome::Reply(plain(StatusCode::BAD_REQUEST, "the client went away\n"));
    }
    let (subscriber, stale) = place(&candidate, &channels, shared, conn).await;
    let mut started = start(&candidate, subscriber, stale, permit, shared, conn);
    append(&mut started.response, extra_headers);
    Outcome::Stream(started)
}

/// Admission: the connect hook decides (accept with channels and headers, or
/// deny), unless the channels were chosen already (`handle()` with
/// `channels`: the application's own middleware decided).
async fn admit(
    candidate: &Candidate<'_>,
    shared: &Arc<Shared>,
) -> Result<(Vec<String>, Vec<(http::HeaderName, HeaderValue)>), Outcome> {
    let channels = candidate.channels.clone();
    let on_connect = match (&shared.config.hooks.on_connect, candidate.chosen) {
        (Some(on_connect), false) => on_connect,
        _ => return Ok((channels, Vec::new())),
    };
    let stale = shared
        .bus
        .is_stale(candidate.last_event_id.as_deref(), &channels)
        .await;
    let decision = within(
        shared.config.hook_timeout,
        on_connect(candidate.info(&channels, stale)),
    )
    .await;
    match decision {
        Err(why) => Err(Outcome::Reply(unanswered(shared, "onConnect", why, true))),
        Ok(Decision::Deny(r)) => Err(candidate.deny(shared, reply(r))),
        Ok(Decision::Accept {
            channels: chosen,
            headers,
        }) => Ok((chosen.unwrap_or(channels), headers)),
    }
}

/// Placement: the client joins its channels where it resumes
/// ([`crate::bus::Bus::subscribe`]). True with it when the `Last-Event-ID`
/// could not be resumed from.
async fn place(
    candidate: &Candidate<'_>,
    channels: &[String],
    shared: &Arc<Shared>,
    conn: &Arc<ConnState>,
) -> (Subscriber, bool) {
    let request = Subscription {
        id: candidate.id,
        channels,
        last_event_id: candidate.last_event_id.as_deref(),
        progress: Arc::clone(&conn.progress),
    };
    shared.bus.subscribe(request).await
}

/// Start: the stream itself (preamble, heartbeats, limit slot, the
/// connection hooks) and its response head.
fn start(
    candidate: &Candidate<'_>,
    subscriber: Subscriber,
    stale: bool,
    permit: Option<Permit>,
    shared: &Arc<Shared>,
    conn: &Arc<ConnState>,
) -> Started {
    let hooks = &shared.config.hooks;
    let id = candidate.id;
    conn.attach(Arc::clone(subscriber.client()));
    let client = (candidate.left.is_some()
        || hooks.on_connection.is_some()
        || hooks.on_disconnect.is_some())
    .then(|| candidate.info(&subscriber.client().channel_names(), stale));
    if let (Some(on_connection), Some(client)) = (&hooks.on_connection, &client) {
        on_connection(Arc::clone(client));
    }
    let on_end = {
        let conn = Arc::clone(conn);
        let report = hooks.on_disconnect.clone().zip(client.clone());
        Box::new(move |reason: EndReason| {
            conn.detach(id);
            if let Some((on_disconnect, client)) = report {
                on_disconnect(client, reason);
            }
        })
    };
    let stream = EventStream::new(
        subscriber,
        preamble(shared),
        shared.config.keep_alive,
        Arc::clone(&shared.stats),
        permit,
        Some(on_end),
        Arc::clone(conn),
    );
    Started {
        response: stream_head(candidate.req, shared),
        stream,
        client,
    }
}

/// What every stream writes first: the retry hint, then the first comment.
fn preamble(shared: &Shared) -> Option<Bytes> {
    let mut preamble = BytesMut::new();
    if let Some(retry) = &shared.preamble {
        preamble.extend_from_slice(retry);
    }
    if let Some(comment) = &shared.config.first_comment {
        preamble.extend_from_slice(&encode_comment(comment));
    }
    (!preamble.is_empty()).then(|| preamble.freeze())
}

async fn serve_plain(
    req: Parts,
    body: Incoming,
    shared: &Arc<Shared>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let hooks = &shared.config.hooks;
    let request = request_info(&req, peer);
    let method = req.method;
    let headers = req.headers;
    if let Some(on_request) = &hooks.on_request {
        let limit = shared.config.max_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return too_large(limit);
        }
        let body: Bytes = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(limit),
            Err(_) => return plain(StatusCode::BAD_REQUEST, "could not read the request body\n"),
        };
        let answer = on_request(PlainRequest {
            request: Arc::clone(&request),
            body,
        });
        match within(shared.config.hook_timeout, answer).await {
            Ok(Some(r)) => return reply(r),
            Ok(None) => {}
            Err(why) => return unanswered(shared, "onRequest", why, false),
        }
    }
    match (&shared.config.static_root, &method) {
        (Some(root), &Method::GET | &Method::HEAD) => {
            let query = (!request.query.is_empty()).then_some(request.query.as_str());
            root.serve(&method, &request.path, query, &headers).await
        }
        (Some(_), _) => method_not_allowed(shared),
        (None, _) => plain(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn too_large(limit: usize) -> Response<ResponseBody> {
    let mut response = plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    response
        .headers_mut()
        .insert("x-max-body-bytes", HeaderValue::from(limit));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hooks::Reply;

    fn shared(config: Config) -> Shared {
        Shared::new(config)
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = Request::builder().uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_stream_request_asks_for_its_channels_and_resume_point() {
        let with_query = shared(Config {
            channels_from_query: true,
            ..Config::default()
        });
        let req = parts("/events?channel=b&channel=a&lastEventId=q-1", &[]);
        let (channels, last) = stream_params(&req, &with_query, false).unwrap();
        assert_eq!(channels, ["b", "a"], "as asked: the hub normalises");
        assert_eq!(last.as_deref(), Some("q-1"));
        // The header wins over the query; chosen channels skip the query.
        let req = parts(
            "/events?channel=b&lastEventId=q-1",
            &[("last-event-id", "h-2")],
        );
        let (channels, last) = stream_params(&req, &with_query, true).unwrap();
        assert_eq!(
            (channels, last.as_deref()),
            (vec![DEFAULT_CHANNEL.to_owned()], Some("h-2"))
        );
        // Without the option the query chooses nothing.
        let req = parts("/events?channel=b", &[]);
        let (channels, _) = stream_params(&req, &shared(Config::default()), false).unwrap();
        assert_eq!(channels, [DEFAULT_CHANNEL]);
    }

    #[test]
    fn a_channel_name_that_is_not_one_is_refused_with_its_reason() {
        let s = shared(Config {
            channels_from_query: true,
            ..Config::default()
        });
        let req = parts("/events?channel=a%0Ab", &[]);
        let why = stream_params(&req, &s, false).unwrap_err();
        let response = bad_channel(why);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_stream_head_has_the_event_stream_headers_and_configured_ones_replace_them() {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let s = shared(Config {
            headers,
            ..Config::default()
        });
        let head = stream_head(&parts("/events", &[]), &s);
        let h = head.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h["x-accel-buffering"], "no");
        assert_eq!(h[header::CONNECTION], "keep-alive");
        assert_eq!(h.get_all("x-a").iter().count(), 2);
    }

    #[test]
    fn an_application_reply_without_a_body_status_has_no_length() {
        let answer = |status: u16| {
            reply(Reply {
                status: StatusCode::from_u16(status).unwrap(),
                headers: vec![(header::ETAG, HeaderValue::from_static("\"v\""))],
                body: Bytes::from_static(b"hello"),
            })
        };
        let ok = answer(200);
        assert_eq!(ok.headers()[header::CONTENT_LENGTH], "5");
        assert_eq!(ok.headers()[header::ETAG], "\"v\"");
        for status in [204, 304] {
            let empty = answer(status);
            assert!(empty.headers().get(header::CONTENT_LENGTH).is_none());
            assert!(matches!(empty.body(), ResponseBody::Empty));
        }
    }

    #[test]
    fn over_a_limit_the_client_is_told_when_to_come_back() {
        let total = limit_refusal(Refusal::Total);
        assert_eq!(total.status(), StatusCode::SERVICE_UNAVAILABLE);
        let per_ip = limit_refusal(Refusal::PerIp);
        assert_eq!(per_ip.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(per_ip.headers()[header::RETRY_AFTER], "5");
    }

    #[test]
    fn same_origin_means_the_origin_names_this_host() {
        let h =
            |origin: &str, host: &str| parts("/", &[("origin", origin), ("host", host)]).headers;
        assert!(same_origin(&h("http://a.test:3000", "a.test:3000")));
        assert!(same_origin(&h("https://A.test", "a.test")));
        assert!(!same_origin(&h("http://b.test", "a.test")));
        assert!(!same_origin(&parts("/", &[("host", "a.test")]).headers));
    }

    #[test]
    fn allow_lists_what_a_path_answers_to() {
        let plain = shared(Config::default());
        assert_eq!(allow(&plain, true), "GET, HEAD");
        let with_cors = shared(Config {
            cors: Some(Cors {
                origin: crate::cors::AllowOrigin::List(vec!["https://a.test".into()]),
                credentials: false,
                max_age: 600,
            }),
            ..Config::default()
        });
        assert_eq!(allow(&with_cors, false), "GET, HEAD, OPTIONS");
        let response = method_not_allowed(&with_cors);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD, OPTIONS");
    }

    #[test]
    fn a_malformed_request_gets_400_and_closes_the_connection() {
        let s = shared(Config::default());
        let bad = parts(
            "/events",
            &[("content-length", "1"), ("transfer-encoding", "chunked")],
        );
        let answer = refuse_malformed(&s, &bad).expect("refused");
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert_eq!(answer.headers()[header::CONNECTION], "close");
        let good = parts("/events", &[("host", "a.test")]);
        assert!(
            refuse_malformed(&s, &good).is_none(),
            "HTTP/1.1 with its Host"
        );
    }

    #[test]
    fn request_info_copies_what_the_hooks_see() {
        let peer: SocketAddr = "127.0.0.7:4000".parse().unwrap();
        let info = request_info(&parts("/events?x=1", &[("x-k", "v")]), peer);
        assert_eq!(
            (info.method.as_str(), info.path.as_str()),
            ("GET", "/events")
        );
        assert_eq!((info.query.as_str(), info.version), ("x=1", "1.1"));
        assert!(info.headers.iter().any(|(n, v)| n == "x-k" && v == "v"));
        assert_eq!(info.remote_addr, peer);
    }
}
