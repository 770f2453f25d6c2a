//! What the application can decide per request, as plain Rust types.
//!
//! The engine calls these hooks; the JavaScript binding implements them with
//! threadsafe functions, and `cargo test` with closures. A hook that fails
//! (throws, rejects, returns something malformed) never takes the server down:
//! the request gets a 500 and the error goes to `on_error`. Nor can one that
//! never settles hold a request forever: [`within`] bounds the wait
//! (`hookTimeout`), and the request is answered without it.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Any error a hook reports.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;
/// What an asynchronous hook returns.
pub type HookFuture<T> = Pin<Box<dyn Future<Output = Result<T, HookError>> + Send>>;

/// The parts of an HTTP request that hooks see.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, still percent-encoded, without the query.
    pub path: String,
    /// The raw query string (without `?`), empty when there is none.
    pub query: String,
    /// Header names (lower case) and values, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// `1.0`, `1.1` or `2`.
    pub version: &'static str,
}

/// An HTTP answer decided by the application.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// Extra headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body (may be empty).
    pub body: Bytes,
}

/// The connect hook's verdict.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Open the stream; `channels` replaces the default subscription.
    Accept {
        /// Channels to subscribe to; `None` keeps the default.
        channels: Option<Vec<String>>,
        /// Extra headers for this stream's response.
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Refuse: answer with this instead; no stream opens.
    Deny(Reply),
}

/// A stream's client: as the connect hook sees it before the stream opens
/// (channels: what it gets unless the hook chooses others; stale: judged for
/// those), and as `on_connection` and `on_disconnect` see it after.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client's id, for `send_to` and `disconnect`.
    pub id: u64,
    /// The HTTP request that opened the stream.
    pub request: Arc<RequestInfo>,
    /// The channels it reads.
    pub channels: Vec<String>,
    /// The `Last-Event-ID` it resumed from.
    pub last_event_id: Option<String>,
    /// Whether that id was too old or unknown to replay from.
    pub last_event_id_stale: bool,
}

/// A plain (non-stream) request for the application's route handler.
#[derive(Debug, Clone)]
pub struct PlainRequest {
    /// The HTTP request.
    pub request: Arc<RequestInfo>,
    /// The request body, read in full (bounded by the body size limit).
    pub body: Bytes,
}

/// Decides whether a stream opens and what it subscribes to.
pub type ConnectHook = Arc<dyn Fn(Arc<ClientInfo>) -> HookFuture<Decision> + Send + Sync>;
/// Answers a non-stream request, or passes (`None`).
pub type RequestHook = Arc<dyn Fn(PlainRequest) -> HookFuture<Option<Reply>> + Send + Sync>;
/// Told about a client.
pub type ClientHook = Arc<dyn Fn(Arc<ClientInfo>) + Send + Sync>;
/// Told that a client's stream ended, and why.
pub type EndHook = Arc<dyn Fn(Arc<ClientInfo>, EndReason) + Send + Sync>;
/// Told that a hook failed, and where.
pub type ErrorHook = Arc<dyn Fn(&'static str, HookError) + Send + Sync>;

/// The application's hooks; every one is optional.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Decides whether a stream opens and what it subscribes to.
    pub on_connect: Option<ConnectHook>,
    /// Answers non-stream requests; `None` falls through to static files.
    pub on_request: Option<RequestHook>,
    /// Told when a stream has opened.
    pub on_connection: Option<ClientHook>,
    /// Told when a stream has ended, or was denied, and why.
    pub on_disconnect: Option<EndHook>,
    /// Told when a hook failed; without it errors go to standard error.
    pub on_error: Option<ErrorHook>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("on_connect", &self.on_connect.is_some())
            .field("on_request", &self.on_request.is_some())
            .field("on_connection", &self.on_connection.is_some())
            .field("on_disconnect", &self.on_disconnect.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

impl Hooks {
    /// Reports a hook failure: to `on_error`, or to standard error, never nowhere.
    pub fn report(&self, context: &'static str, error: HookError) {
        match &self.on_error {
            Some(on_error) => on_error(context, error),
            None => eprintln!("hyper-sse: {context} failed: {error}"),
        }
    }
}

/// A hook that did not settle within the hook time limit (`hookTimeout`):
/// the request was answered without it, and whatever it settles to later is
/// discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookTimeout {
    /// The hook: `onConnect`, `onRequest` or `cors.origin`.
    pub hook: &'static str,
    /// The limit it ran out of.
    pub limit: Duration,
    /// What the request was answered instead: 503 for a stream request, 504
    /// for a route.
    pub status: StatusCode,
}

impl std::fmt::Display for HookTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} did not settle within {} ms (hookTimeout); the request was answered {}",
            self.hook,
            self.limit.as_millis(),
            self.status.as_u16()
        )
    }
}

impl std::error::Error for HookTimeout {}

/// Why a hook gave no answer.
#[derive(Debug)]
pub enum Unanswered {
    /// It failed: threw, rejected, returned something malformed.
    Failed(HookError),
    /// It had not settled when this limit ran out.
    TimedOut(Duration),
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::Failed(e) => write!(f, "the hook failed: {e}"),
            Unanswered::TimedOut(limit) => {
                write!(f, "the hook did not settle within {} ms", limit.as_millis())
            }
        }
    }
}

impl std::error::Error for Unanswered {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Unanswered::Failed(e) => Some(&**e),
            Unanswered::TimedOut(_) => None,
        }
    }
}

/// Awaits a hook's answer for at most `limit` (`None`: as long as it takes).
/// On a time-out the hook's future is dropped, so a late answer goes nowhere.
pub async fn within<T>(
    limit: Option<Duration>,
    answer: impl Future<Output = Result<T, HookError>>,
) -> Result<T, Unanswered> {
    let answer = async { answer.await.map_err(Unanswered::Failed) };
    match limit {
        None => answer.await,
        Some(limit) => tokio::time::timeout(limit, answer)
            .await
            .unwrap_or(Err(Unanswered::TimedOut(limit))),
    }
}

/// Why a client's stream ended, as reported to `onDisconnect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client went away.
    Closed,
    /// The client fell further behind than its byte budget.
    Slow,
    /// `disconnect(id)` was called.
    Disconnected,
    /// The server is closing.
    Shutdown,
    /// The connect hook, CORS or a connection limit refused the stream.
    Denied,
}

impl EndReason {
    /// The word JavaScript sees.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Slow => "slow",
            EndReason::Disconnected => "disconnected",
            EndReason::Shutdown => "shutdown",
            EndReason::Denied => "denied",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_within_the_limit_is_taken() {
        let answer = async { Ok::<_, HookError>(7) };
        assert_eq!(
            within(Some(Duration::from_secs(60)), answer).await.unwrap(),
            7
        );
    }

    #[tokio::test]
    async fn a_hook_that_never_settles_times_out() {
        let never = std::future::pending::<Result<(), HookError>>();
        let limit = Duration::from_millis(20);
        assert!(matches!(
            within(Some(limit), never).await,
            Err(Unanswered::TimedOut(l)) if l == limit
        ));
    }

    #[tokio::test]
    async fn a_failure_is_passed_on() {
        let failing = async { Err::<(), HookError>("boom".into()) };
        match within(None, failing).await {
            Err(Unanswered::Failed(e)) => assert_eq!(e.to_string(), "boom"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_time_out_names_the_hook_the_limit_and_the_answer() {
        let e = HookTimeout {
            hook: "onConnect",
            limit: Duration::from_millis(250),
            status: StatusCode::SERVICE_UNAVAILABLE,
        };
        assert_eq!(
            e.to_string(),
            "onConnect did not settle within 250 ms (hookTimeout); the request was answered 503"
        );
    }

    #[test]
    fn a_hooks_failure_is_the_source_of_unanswered() {
        use std::error::Error as _;
        let failed = Unanswered::Failed("boom".into());
        assert_eq!(
            failed.source().map(|e| e.to_string()).as_deref(),
            Some("boom")
        );
        assert!(Unanswered::TimedOut(Duration::from_millis(5))
            .source()
            .is_none());
    }
}
