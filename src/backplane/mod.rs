//! The Redis backplane: several instances act as one.
//!
//! With `redis` configured, `send()` no longer publishes into the local hub.
//! It queues the encoded event for the **publisher** task, which stores it in
//! Redis (one stream per channel, numbered from one global counter, see
//! [`keys`]). Every instance — the sender included — runs one **reader**
//! task: a blocking `XREAD` over the streams of the channels its clients
//! read, which feeds what it finds into the local hub in stream order
//! ([`Remote::publish`](crate::hub::Remote::publish)). From there the ordinary fan-out takes over:
//! encode once, one reader per instance, no Redis connection per client.
//!
//! A client that reconnects with `Last-Event-ID` is served from the local
//! logs when they cover the id, and otherwise from the streams (`XRANGE`,
//! [`replay`]), whichever instance it lands on.
//!
//! When Redis goes away, sends queue up to `max_pending` and are then
//! refused with an error (never dropped silently); connected clients stay
//! connected; both tasks reconnect with backoff and resume where they
//! stopped. A resent batch is not applied twice, and no send overtakes an
//! earlier one that failed (the script keeps each instance's last applied
//! send, see [`keys::PUBLISH_SCRIPT`]).

mod endpoint;
mod keys;
mod options;
mod publisher;
mod reader;
mod replay;

use crate::channel::normalize;
use crate::clock::unix_time;
use crate::event::Encoded;
use crate::event::Payload;
use crate::hooks::HookError;
use crate::hub::{IdSpace, Remote, Subscriber, Subscription};
use crate::sync::lock;
use endpoint::Connection;
pub use endpoint::Endpoint;
use keys::{Keys, Kind, PUBLISH_SCRIPT};
pub use options::{ClientCert, RedisOptions, RedisTls, RedisUrl, UrlError, DEFAULT_MAX_PENDING};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Entries every stream keeps at least, whatever `history` says: a reader
/// that falls behind in a burst (on a busy machine it can trail the
/// publishers by thousands of entries) must still find what it has not read.
/// A reader further behind than this loses events: they are reported, and
/// the channel's clients are dropped so that they reconnect and learn their
/// id is stale.
pub const MIN_STREAM_LEN: usize = 10_000;

/// How long a client opening a channel new to this instance waits for an
/// unreachable Redis before it is placed without knowing the backplane's position.
pub const FLOOR_WAIT: Duration = Duration::from_secs(10);

/// The backplane's health, as `stats()` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started yet: `listen()`, the first handed-over stream or the
    /// first send connects.
    Idle,
    /// Publishing and reading both work.
    Connected,
    /// Redis is unreachable or failing; retrying with backoff.
    Reconnecting,
    /// Closed with the server.
    Closed,
}

impl State {
    /// The word JavaScript sees.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connected => "connected",
            State::Reconnecting => "reconnecting",
            State::Closed => "closed",
        }
    }
}

/// A copy of the backplane's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackplaneStats {
    pub state: State,
    /// Sends accepted and not yet stored in Redis.
    pub pending: u64,
    /// Events this instance stored in Redis.
    pub published: u64,
    /// Events read from Redis into the local hub (from every instance).
    pub received: u64,
    /// Times a connection to Redis was re-established.
    pub reconnects: u64,
    /// Sends Redis refused for good (each reported to `onError`).
    pub failed: u64,
    /// Events trimmed from a stream before this instance read them.
    pub lost: u64,
    /// The last error seen, if any.
    pub last_error: Option<String>,
}

/// Why a send was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// Redis has been unreachable long enough that `max_pending` sends wait.
    Full { pending: usize, cause: String },
    /// The server is closing.
    Closed,
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Full { pending, cause } => write!(
                f,
                "the Redis backplane is unavailable ({cause}) and {pending} sends are already waiting (redis.maxPending); nothing was sent"
            ),
            PublishError::Closed => f.write_str("the server is closed; nothing more can be sent"),
        }
    }
}

/// No source: a refused send has no error of its own. The `cause` of
/// [`PublishError::Full`] is the text the backplane's tasks recorded for
/// the outage (`stats().backplane.lastError`), not an error value.
impl std::error::Error for PublishError {}

/// Why the backplane could not start: the step that failed, and what Redis
/// (or the connection to it) said, which is also its
/// [`source`](std::error::Error::source). The `Display` holds both, since
/// it is the whole message JavaScript sees.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// The step, in words: `cannot connect to Redis at redis://…`.
    step: String,
    /// Redis's error.
    source: redis::RedisError,
}

impl ConnectError {
    fn new(step: String, source: redis::RedisError) -> Self {
        ConnectError { step, source }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.source)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Reports a backplane problem (to `onError` with where = `'redis'`).
pub type Reporter = Arc<dyn Fn(HookError) + Send + Sync>;

/// One send waiting for Redis.
#[derive(Debug, Clone)]
struct Pending {
    /// This instance's publish sequence (1, 2, …), for exactly-once retries.
    seq: u64,
    channels: Arc<[String]>,
    kind: Kind,
    body: Encoded,
    explicit: Option<String>,
}

struct Queue {
    items: VecDeque<Pending>,
    next_seq: u64,
}

/// The backplane of one server.
pub struct Backplane {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Where Redis is.
    endpoint: Endpoint,
    /// Where Redis is, for messages (no password).
    shown_url: String,
    keys: Keys,
    /// The hub this backplane feeds.
    remote: Remote,
    script_hash: String,
    /// Automatic ids are on (history > 0).
    with_ids: bool,
    max_len: usize,
    instance: String,
    max_pending: usize,
    report: Reporter,
    queue: Mutex<Queue>,
    queued: Notify,
    /// Publish sequence applied through (for `flush`).
    applied: watch::Sender<u64>,
    /// Shared connection for publishing, replays and unblocking the reader.
    control: tokio::sync::Mutex<Option<Connection>>,
    /// Redis client id of the reader's connection (for `CLIENT UNBLOCK`).
    reader_id: AtomicI64,
    reader_blocked: AtomicBool,
    reading_generation: AtomicU64,
    /// Replies (or empty returns) the reader has finished with.
    reader_rounds: AtomicU64,
    /// The hub's channel-set generation, told by the hub on every change.
    channels_changed: watch::Sender<u64>,
    publisher_ok: AtomicBool,
    reader_ok: AtomicBool,
    started: AtomicBool,
    /// A background start was asked for ([`Backplane::start_soon`]).
    start_requested: AtomicBool,
    /// The runtime the backplane was made on, for starting it from a send
    /// made on a thread outside it (Node's).
    runtime: Option<tokio::runtime::Handle>,
    /// Held while starting: `listen()` and the first handed-over streams
    /// may all ask at once, and only one may connect.
    starting: tokio::sync::Mutex<()>,
    /// No more sends.
    closing: AtomicBool,
    /// Tasks stop.
    stop: watch::Sender<bool>,
    published: AtomicU64,
    received: AtomicU64,
    reconnects: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Backplane {
    /// A backplane feeding the hub of `remote`; nothing connects until
    /// [`Backplane::start`]. Cannot fail: `options` holds a URL that was
    /// parsed into a client when the options were made ([`RedisUrl`]).
    pub fn new(options: &RedisOptions, remote: Remote, history: usize, report: Reporter) -> Self {
        let instance = format!("{:x}{:x}", std::process::id(), unix_time().as_nanos());
        Backplane {
            inner: Arc::new(Inner {
                endpoint: options.endpoint.clone(),
                shown_url: options.endpoint.shown(),
                keys: Keys::new(&options.prefix),
                remote,
                script_hash: redis::Script::new(PUBLISH_SCRIPT).get_hash().to_owned(),
                with_ids: history > 0,
                max_len: history.max(MIN_STREAM_LEN),
                instance,
                max_pending: options.max_pending,
                report,
                queue: Mutex::new(Queue {
                    items: VecDeque::new(),
                    next_seq: 1,
                }),
                queued: Notify::new(),
                applied: watch::channel(0).0,
                control: tokio::sync::Mutex::new(None),
                reader_id: AtomicI64::new(-1),
                reader_blocked: AtomicBool::new(false),
                reading_generation: AtomicU64::new(0),
                reader_rounds: AtomicU64::new(0),
                channels_changed: watch::channel(0).0,
                publisher_ok: AtomicBool::new(false),
                reader_ok: AtomicBool::new(false),
                started: AtomicBool::new(false),
                start_requested: AtomicBool::new(false),
                runtime: tokio::runtime::Handle::try_current().ok(),
                starting: tokio::sync::Mutex::new(()),
                closing: AtomicBool::new(false),
                stop: watch::channel(false).0,
                published: AtomicU64::new(0),
                received: AtomicU64::new(0),
                reconnects: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                lost: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        }
    }

    /// Connects, learns the data set's epoch and the current position, and
    /// starts the tasks (the reader makes its own connection). Fails when
    /// Redis cannot be reached now: a server that cannot reach its backplane
    /// should not start taking clients.
    pub async fn start(&self) -> Result<(), ConnectError> {
        start(&self.inner).await
    }

    /// Starts the backplane in the background when nothing has yet: a
    /// process that only sends (it never listens nor takes a stream) must
    /// still publish. Retries with backoff while Redis cannot be reached,
    /// reporting the first failure; the sends wait in the queue meanwhile.
    /// Needs the runtime the server was made on (a caller with none waits
    /// for `listen`, a handed-over stream or `flush`).
    fn start_soon(&self) {
        let inner = &self.inner;
        if inner.started.load(Ordering::Acquire)
            || inner.start_requested.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let runtime = inner
            .runtime
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        match runtime {
            Some(runtime) => drop(runtime.spawn(start_eventually(Arc::clone(inner)))),
            None => inner.start_requested.store(false, Ordering::Release),
        }
    }
}

/// Whether rustls refused the connection (a certificate the trust roots
/// do not vouch for, another host's name, a client certificate refused):
/// somewhere down `error`'s chain of causes is a [`rustls::Error`], maybe
/// inside an `io::Error`. (redis-rs gives its cause as an
/// `Arc<dyn Error>`, whose own `source` skips the cause itself: hence the
/// look inside the `Arc`.)
fn is_tls_failure(error: &redis::RedisError) -> bool {
    type Shared = Arc<dyn std::error::Error + Send + Sync>;
    fn is_rustls(e: &(dyn std::error::Error + 'static)) -> bool {
        let e = match e.downcast_ref::<Shared>() {
            Some(shared) => &**shared as &(dyn std::error::Error + 'static),
            None => e,
        };
        e.is::<rustls::Error>()
            || e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>())
    }
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        if is_rustls(e) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The body of [`Backplane::start`], on the shared state so the background
/// starter can run it without owning the `Backplane` (whose drop stops it).
async fn start(inner: &Arc<Inner>) -> Result<(), ConnectError> {
    let _only_one = inner.starting.lock().await;
    if inner.started.load(Ordering::Acquire) {
        return Ok(());
    }
    let mut control = inner
        .connect(Some(Duration::from_secs(5)))
        .await
        .map_err(|e| {
            let step = format!("cannot connect to Redis at {}", inner.shown_url);
            let step = if is_tls_failure(&e) {
                format!("{step}: the TLS handshake failed (a certificate was refused: check redis.tls and the host of redis.url)")
            } else {
                step
            };
            ConnectError::new(step, e)
        })?;
    let (epoch, position) = inner.position(&mut control).await.map_err(|e| {
        ConnectError::new(
            format!("Redis at {} refused the backplane's setup", inner.shown_url),
            e,
        )
    })?;
    redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(PUBLISH_SCRIPT)
        .query_async::<String>(&mut control)
        .await
        .map_err(|e| ConnectError::new("Redis refused the publishing script".into(), e))?;
    inner.remote.start_at(position);
    inner.remote.set_id_space(IdSpace { epoch, offset: 0 });
    *inner.control.lock().await = Some(control);
    inner.publisher_ok.store(true, Ordering::Release);
    inner.reader_ok.store(true, Ordering::Release);
    inner.started.store(true, Ordering::Release);
    // Weak: the hub holds this callback and the backplane holds the
    // hub, so a strong reference would keep both alive for ever.
    let changed = Arc::downgrade(inner);
    inner.remote.on_channels_changed(Box::new(move || {
        if let Some(inner) = changed.upgrade() {
            inner
                .channels_changed
                .send_replace(inner.remote.generation());
        }
    }));
    tokio::spawn(publisher::run(Arc::clone(inner)));
    tokio::spawn(reader::run(Arc::clone(inner)));
    tokio::spawn(reader::unblock(Arc::clone(inner)));
    Ok(())
}

/// [`start`] until it succeeds or the backplane stops, one report per
/// outage (the first failure), as the running tasks do.
async fn start_eventually(inner: Arc<Inner>) {
    let mut backoff = Backoff::new();
    let mut reported = false;
    while !inner.stopped() && !inner.started.load(Ordering::Acquire) {
        match start(&inner).await {
            Ok(()) => return,
            Err(e) => {
                *lock(&inner.last_error) = Some(e.to_string());
                if !std::mem::replace(&mut reported, true) {
                    (inner.report)(format!("Redis backplane: {e}; retrying with backoff").into());
                }
            }
        }
        backoff.wait(&inner).await;
    }
}

impl Backplane {
    /// Queues a send for Redis. Cost on the caller's thread: one lock and a
    /// push. Refused when the queue is full (Redis away for long) or closing.
    pub fn publish(&self, channels: &[&str], payload: &Payload) -> Result<(), PublishError> {
        let inner = &self.inner;
        if inner.closing.load(Ordering::Acquire) {
            return Err(PublishError::Closed);
        }
        let kind = match payload {
            Payload::Comment(_) => Kind::Comment,
            Payload::Event(_) if payload.explicit_id().is_some() => Kind::Explicit,
            Payload::Event(_) => Kind::Event,
        };
        // Redis numbers the event, so no automatic id here: readers add it.
        let body = payload.encode(|| None);
        let explicit = payload.explicit_id().map(str::to_owned);
        let names: Vec<String> = normalize(channels).into_iter().map(str::to_owned).collect();
        let mut queue = lock(&inner.queue);
        if queue.items.len() >= inner.max_pending {
            let pending = queue.items.len();
            drop(queue);
            return Err(PublishError::Full {
                pending,
                cause: inner
                    .last_error()
                    .unwrap_or_else(|| "Redis is slow to answer".into()),
            });
        }
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.items.push_back(Pending {
            seq,
            channels: names.into(),
            kind,
            body,
            explicit,
        });
        drop(queue);
        inner.queued.notify_one();
        self.start_soon();
        Ok(())
    }

    /// Resolves once Redis has answered for everything sent so far: stored,
    /// or (rarely) refused for good and reported. Fails when the backplane
    /// closes first.
    pub async fn flush(&self) -> Result<(), PublishError> {
        self.start_soon();
        let target = {
            let queue = lock(&self.inner.queue);
            queue.next_seq - 1
        };
        let mut applied = self.inner.applied.subscribe();
        let mut stop = self.inner.stop.subscribe();
        loop {
            if *applied.borrow_and_update() >= target {
                return Ok(());
            }
            if *stop.borrow_and_update() {
                return Err(PublishError::Closed);
            }
            tokio::select! {
                r = applied.changed() => if r.is_err() { return Err(PublishError::Closed) },
                r = stop.changed() => if r.is_err() { return Err(PublishError::Closed) },
            }
        }
    }

    /// Where a client arriving now starts, in hub sequence numbers: the
    /// backplane's current position when one of its channels is new here
    /// (this instance has not been reading it, so the hub's own position says
    /// nothing about it), else 0 (the hub knows). While Redis is away the
    /// client waits for it (its stream head with it), up to [`FLOOR_WAIT`];
    /// then 0: the hub's position, possibly behind, so the client may get
    /// that channel's events from a little before it came.
    async fn floor(&self, channels: &[String]) -> u64 {
        let inner = &self.inner;
        if inner.remote.has_channels(channels) {
            return 0;
        }
        let deadline = tokio::time::Instant::now() + FLOOR_WAIT;
        let mut backoff = Backoff::new();
        loop {
            let ids = inner.remote.id_space();
            let issued = async {
                let mut conn = inner.control().await?;
                replay::issued(&mut conn, inner).await
            };
            match issued.await {
                Ok(number) => return ids.offset + number,
                Err(_) if inner.stopped() || tokio::time::Instant::now() >= deadline => return 0,
                Err(_) => {
                    inner.drop_control().await;
                    backoff.wait(inner).await;
                }
            }
        }
    }

    /// Joins a client where it resumes: after the backplane's floor for
    /// channels new here ([`Backplane::floor`]), from the local logs when
    /// they cover its `Last-Event-ID`, else replaying what it missed from
    /// Redis ([`replay`]). True with it when the id is stale.
    pub async fn subscribe(&self, request: Subscription<'_>) -> (Subscriber, bool) {
        let last_event_id = request.last_event_id;
        let floor = self.floor(request.channels).await;
        let (mut subscriber, stale) = self.inner.remote.subscribe(request, floor);
        let Some(last) = last_event_id.filter(|_| stale) else {
            return (subscriber, stale);
        };
        let names = subscriber.client().channel_names();
        let stale = replay::replay(&self.inner, &mut subscriber, last, &names).await;
        (subscriber, stale)
    }

    /// Whether an id would be stale here, for the connect hook's preview
    /// (the real answer comes with [`Backplane::subscribe`]): the local logs
    /// answer when they cover it, else Redis does.
    pub async fn is_stale(&self, last_event_id: Option<&str>, channels: &[String]) -> bool {
        let stale_here = self.inner.remote.hub().resolve(last_event_id, channels).1;
        match last_event_id {
            Some(id) if stale_here => replay::is_stale(&self.inner, id, channels).await,
            _ => stale_here,
        }
    }

    /// Stops taking sends, waits up to `grace` for the queue to reach Redis
    /// and for this instance's own events to come back to its clients, then
    /// stops the tasks. Sends that could not be stored are reported.
    pub async fn close(&self, grace: Duration) {
        let inner = &self.inner;
        inner.closing.store(true, Ordering::Release);
        if inner.stopped() {
            return; // closed before: nothing left to wait for
        }
        if inner.started.load(Ordering::Acquire) {
            let deadline = tokio::time::Instant::now() + grace;
            let _ = tokio::time::timeout_at(deadline, self.flush()).await;
            // A read issued after the flush sees everything this instance
            // stored; the one in flight may not, hence two rounds. The
            // reader is nudged so that a read with nothing new for this
            // instance's channels does not wait out its block time.
            let first = inner.reader_rounds.load(Ordering::Acquire);
            let caught_up = async {
                // (A reader without channels has nothing to deliver here.)
                while inner.reader_rounds.load(Ordering::Acquire) < first + 2
                    && !inner.remote.channel_starts().is_empty()
                {
                    reader::nudge(inner).await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            let _ = tokio::time::timeout_at(deadline, caught_up).await;
        }
        let left = {
            let mut queue = lock(&inner.queue);
            std::mem::take(&mut queue.items).len()
        };
        if left > 0 {
            inner.failed.fetch_add(left as u64, Ordering::Relaxed);
            (inner.report)(
                format!(
                    "{left} accepted sends could not be stored in Redis before the server closed ({})",
                    inner.last_error().unwrap_or_else(|| "Redis did not answer in time".into())
                )
                .into(),
            );
        }
        inner.stop.send_replace(true);
        inner.queued.notify_one();
    }

    /// The counters and state right now.
    pub fn stats(&self) -> BackplaneStats {
        let inner = &self.inner;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BackplaneStats {
            state: inner.state(),
            pending: lock(&inner.queue).items.len() as u64,
            published: get(&inner.published),
            received: get(&inner.received),
            reconnects: get(&inner.reconnects),
            failed: get(&inner.failed),
            lost: get(&inner.lost),
            last_error: inner.last_error(),
        }
    }
}

impl Drop for Backplane {
    fn drop(&mut self) {
        self.inner.stop.send_replace(true);
        self.inner.queued.notify_one();
    }
}

impl Inner {
    fn state(&self) -> State {
        if *self.stop.borrow() {
            State::Closed
        } else if !self.started.load(Ordering::Acquire) {
            // A background start that keeps failing is an outage like any other.
            let retrying =
                self.start_requested.load(Ordering::Acquire) && self.last_error().is_some();
            if retrying {
                State::Reconnecting
            } else {
                State::Idle
            }
        } else if self.publisher_ok.load(Ordering::Acquire)
            && self.reader_ok.load(Ordering::Acquire)
        {
            State::Connected
        } else {
            State::Reconnecting
        }
    }

    fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// A new connection; `response_timeout` None for the reader, whose
    /// `XREAD` blocks on purpose.
    async fn connect(&self, response_timeout: Option<Duration>) -> redis::RedisResult<Connection> {
        self.endpoint.connect(response_timeout).await
    }

    /// The shared control connection, connecting when there is none.
    async fn control(&self) -> redis::RedisResult<Connection> {
        let mut slot = self.control.lock().await;
        if let Some(conn) = &*slot {
            return Ok(conn.clone());
        }
        let conn = self.connect(Some(Duration::from_secs(5))).await?;
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets a control connection that failed, so the next use reconnects.
    async fn drop_control(&self) {
        *self.control.lock().await = None;
    }

    /// The data set's epoch (created when missing) and the global counter.
    async fn position(&self, conn: &mut Connection) -> redis::RedisResult<(String, u64)> {
        let (_, epoch, seq): (redis::Value, redis::Value, redis::Value) = redis::pipe()
            .cmd("SET")
            .arg(self.keys.epoch())
            .arg(unix_time().as_millis().to_string())
            .arg("NX")
            .cmd("GET")
            .arg(self.keys.epoch())
            .cmd("GET")
            .arg(self.keys.seq())
            .query_async(conn)
            .await?;
        let epoch = keys::text(&epoch).unwrap_or_default();
        Ok((epoch, keys::number(&seq).unwrap_or(0)))
    }

    /// Records a failure: remembered for `stats()`, and reported the first
    /// time a task that was working fails (one report per outage, not one
    /// per retry).
    fn failed(&self, ok: &AtomicBool, what: &str, error: &redis::RedisError) {
        let text = format!("{what}: {error}");
        *lock(&self.last_error) = Some(text.clone());
        if ok.swap(false, Ordering::AcqRel) && !self.stopped() {
            (self.report)(format!("Redis backplane: {text}; retrying with backoff").into());
        }
    }
}

/// Waits between retries: 50 ms doubling to 2 s, reset after a success.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(50))
    }

    fn reset(&mut self) {
        self.0 = Duration::from_millis(50);
    }

    /// Sleeps (or returns early when the backplane stops).
    async fn wait(&mut self, inner: &Inner) {
        let mut stop = inner.stop.subscribe();
        let _ = tokio::time::timeout(self.0, stop.wait_for(|s| *s)).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
    }
}

/// What the tests of the backplane's parts share: a backplane that never
/// connects, for the logic that needs none, and a Redis of their own.
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::hub::{Hub, Retention};
    use std::process::{Child, Command, Stdio};

    /// What a backplane reported (to `onError`), in order.
    pub(crate) type Reports = Arc<Mutex<Vec<String>>>;

    /// A backplane of a remote hub (`history` events kept) for Redis at
    /// `url`; nothing connects until it is started.
    pub(crate) fn backplane(url: &str, history: usize) -> (Backplane, Reports) {
        let reports = Reports::default();
        let report: Reporter = {
            let reports = Arc::clone(&reports);
            Arc::new(move |e| lock(&reports).push(e.to_string()))
        };
        let hub = Hub::new_remote(Retention {
            history,
            ..Retention::default()
        });
        let options = RedisOptions {
            endpoint: url.parse().expect("a redis:// URL"),
            prefix: format!("unit-{}-{:x}", std::process::id(), unix_time().as_nanos()),
            max_pending: DEFAULT_MAX_PENDING,
        };
        (Backplane::new(&options, hub, history, report), reports)
    }

    /// The words of a command, as Redis will read them.
    pub(crate) fn args(cmd: &redis::Cmd) -> Vec<String> {
        cmd.args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "<not a plain argument>".into(),
            })
            .collect()
    }

    /// A backplane that is never started: its shared state, for the parts
    /// of the tasks that need no Redis.
    pub(crate) fn offline(history: usize) -> (Backplane, Reports) {
        backplane("redis://127.0.0.1:1", history)
    }

    /// A `redis-server` of the test's own on a free loopback port, stopped
    /// (by its PID) when dropped.
    pub(crate) struct OwnRedis {
        child: Child,
        pub(crate) url: String,
    }

    impl Drop for OwnRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Starts a Redis for one test and waits (at most 5 s) until it listens.
    pub(crate) async fn own_redis() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is needed (Debian package redis-server)");
        let own = OwnRedis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return own;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    /// The delays of `n` waits in a row, on a backplane that has stopped
    /// (so none of them sleeps).
    async fn delays(backoff: &mut Backoff, inner: &Inner, n: usize) -> Vec<u64> {
        let mut seen = Vec::new();
        for _ in 0..n {
            seen.push(backoff.0.as_millis() as u64);
            backoff.wait(inner).await;
        }
        seen
    }

    #[tokio::test]
    async fn backoff_doubles_from_50_ms_up_to_2_s_and_starts_over_after_a_reset() {
        let (backplane, _) = offline(10);
        let inner = &backplane.inner;
        inner.stop.send_replace(true);
        let mut backoff = Backoff::new();
        let seen = delays(&mut backoff, inner, 9).await;
        assert_eq!(seen, [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        backoff.reset();
        assert_eq!(delays(&mut backoff, inner, 2).await, [50, 100]);
    }

    #[tokio::test]
    async fn a_backoff_sleeps_its_delay_unless_the_backplane_stops() {
        let (backplane, _) = offline(10);
        let inner = &backplane.inner;
        let mut backoff = Backoff::new();
        let began = tokio::time::Instant::now();
        backoff.wait(inner).await;
        assert!(began.elapsed() >= Duration::from_millis(50));
        backoff.0 = Duration::from_secs(2);
        let stopper = {
            let inner = Arc::clone(inner);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                inner.stop.send_replace(true);
            })
        };
        let began = tokio::time::Instant::now();
        backoff.wait(inner).await;
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "{:?}",
            began.elapsed()
        );
        stopper.await.unwrap();
    }
}
