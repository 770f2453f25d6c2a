//! The hub: channels of encoded events, and the clients reading them.
//!
//! History, fan-out, replay and backpressure are one structure. Every channel
//! keeps a log of encoded events; every client is a set of cursors into the
//! logs of its channels plus a private queue for events sent to it alone.
//!
//! - **Publishing** takes the hub's publish lock, gives the event the next
//!   global sequence number, encodes it once (with an automatic id when it has
//!   none and history is on), appends the same [`Encoded`] buffer to each
//!   target log, marks those channels dirty and pokes the fan-out task. Its
//!   cost does not depend on the number of clients.
//! - **Fan-out** runs on tokio's threads: for each dirty channel it wakes the
//!   channel's clients, evicts the ones over their byte budget, and trims the
//!   log to what its slowest remaining client still needs (never below
//!   `history` events). It also trims, without waking anyone, a log whose
//!   slowest reader moved on or left, so a quiet channel does not keep a burst.
//! - **Reading**: a woken client takes everything after its cursors whose
//!   sequence number is committed, merges its channels in global order
//!   (an event sent to two of its channels arrives once), and advances.
//! - **Stalls**: a watchdog evicts a client that had data waiting and made no
//!   progress for `stall_timeout` ([`Hub::run_watchdog`]).
//! - **Replay**: a client that reconnects with `Last-Event-ID` gets cursors
//!   placed right after that event in each of its channels, under the same
//!   locks publishing uses, so the replay flows into the live stream with no
//!   gap and no duplicate. An id the history no longer covers is reported as
//!   stale, and the client starts live.
//! - **Remote mode** (a backplane such as Redis): events are not published
//!   here but arrive from the backplane's reader, already numbered in the
//!   backplane's global order ([`Hub::publish_remote`]); the logs are then a
//!   local cache of the backplane's history, complete for each channel from
//!   the moment it started being read (`since`).

use crate::event::{encode_comment, Encoded, Event};
use crate::io::Progress;
use crate::sync::{lock, read, write};
use atomic_waker::AtomicWaker;
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// The name of the channel that events without an explicit channel go to,
/// and that clients subscribe to unless told otherwise.
pub const DEFAULT_CHANNEL: &str = "default";

/// The most entries one read takes from one source, so a client catching up
/// never holds a lock for long or builds one huge write.
pub const MAX_BATCH_EVENTS: usize = 256;
/// The most bytes one read takes from one source (a single larger event still goes whole).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// How much of the past the hub keeps, and when a client counts as too slow.
///
/// A client that is behind holds no copy of what it has not read: it only
/// keeps the shared log from trimming. So being behind is cheap, and the two
/// limits are about what a client costs everyone else: `max_buffered_bytes`
/// bounds how much log one client may hold back (and its private queue),
/// `stall_timeout` bounds how long a client that takes nothing may hold it.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Events kept per channel for replay; 0 turns history and automatic ids off.
    pub history: usize,
    /// A client further behind than this many bytes whose socket is full,
    /// or whose private queue (`send_to`) would grow beyond it, is evicted.
    pub max_buffered_bytes: u64,
    /// A client with data waiting whose connection has taken nothing for
    /// this long is evicted; `None` turns the rule off.
    pub stall_timeout: Option<Duration>,
}

/// The default byte budget: 3.5 times the benchmark's largest burst per
/// client (4.6 MB) and 8 times what clients reading as fast as loopback
/// allows needed to get all of it (the README's "Slow clients" has the
/// measurements), so that only a client that is really not keeping up
/// reaches it. Being behind costs no memory of its own, so a generous
/// budget is cheap.
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 16 * 1024 * 1024;

/// The default stall limit: far longer than any pause of a healthy
/// connection (TCP retransmission backs off for seconds on a lossy mobile
/// link before it recovers), short enough that a frozen tab stops holding
/// the log within half a minute.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Retention {
    fn default() -> Self {
        Retention {
            history: 1000,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            stall_timeout: Some(DEFAULT_STALL_TIMEOUT),
        }
    }
}

/// What to publish: an event, or a comment (which never gets an id).
#[derive(Debug, Clone)]
pub enum Payload {
    /// An event; it gets an automatic id when it has none and history is on.
    Event(Event),
    /// A comment: one `:` line per line of text.
    Comment(String),
}

/// Where a reconnecting client starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After everything published so far: only new events.
    Live,
    /// Right after the event with this global sequence number.
    After(u64),
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

/// Why a client was evicted (its stream ends with [`EndReason::Slow`]
/// whichever it was): the reasons call for different fixes, so the
/// counters and metrics keep them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Eviction {
    /// Further behind than its byte budget (`max_buffered_bytes`) with its
    /// socket full, or a `send_to` queue that would grow beyond it: raise
    /// the budget, or find why the client reads so slowly.
    Budget,
    /// Data waiting and no progress for `stall_timeout`: a frozen tab or a
    /// dead link.
    Stall,
    /// The backplane trimmed events of one of its channels before this
    /// instance read them ([`Hub::mark_gap`]): this instance fell behind Redis.
    Gap,
}

impl Eviction {
    /// Every reason, in the order counters and metrics list them.
    pub const ALL: [Eviction; 3] = [Eviction::Budget, Eviction::Stall, Eviction::Gap];

    /// The word metrics use as the `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Eviction::Budget => "budget",
            Eviction::Stall => "stall",
            Eviction::Gap => "gap",
        }
    }

    /// Its place in [`Eviction::ALL`], and in counters kept per reason.
    pub fn index(self) -> usize {
        usize::from(self as u8)
    }

    /// Its bits in a client's flags: its index plus one, never 0, so
    /// "evicted" always has a reason.
    fn bits(self) -> u8 {
        (self as u8 + 1) << REASON_SHIFT
    }

    fn from_bits(flags: u8) -> Option<Eviction> {
        let code = usize::from((flags & REASON_MASK) >> REASON_SHIFT);
        Self::ALL.get(code.checked_sub(1)?).copied()
    }
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

/// The event hub: channels, clients, the global sequence and the fan-out signal.
pub struct Hub {
    retention: Retention,
    /// How automatic ids are spelled and mapped to sequence numbers.
    ids: RwLock<IdSpace>,
    /// Events come from a backplane ([`Hub::publish_remote`]), not [`Hub::publish`].
    remote: bool,
    /// Bumped whenever a channel is created or forgotten, so a backplane
    /// reader knows its set of channels to read is out of date.
    generation: AtomicU64,
    /// Told when `generation` moves (a backplane reader waiting for events).
    on_channels_changed: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// The next global sequence number; the lock serialises publishers.
    publish: Mutex<u64>,
    /// Every sequence number up to this one is fully appended everywhere.
    committed: AtomicU64,
    channels: RwLock<HashMap<Arc<str>, Arc<Channel>>>,
    clients: RwLock<HashMap<u64, Arc<Client>>>,
    next_client: AtomicU64,
    dirty: Mutex<Vec<Arc<Channel>>>,
    /// Channels whose slowest reader moved on (or left) while their log
    /// holds more than `history`: the fan-out task trims them without
    /// waking anyone, so a quiet channel does not keep a burst.
    trims: Mutex<Vec<Arc<Channel>>>,
    pending: Notify,
    /// Set while a fan-out round is due, so a burst of sends pokes the
    /// fan-out task once instead of once per send (a wake-up can cost a
    /// system call on the sending thread).
    scheduled: AtomicBool,
    closed: AtomicBool,
}

/// The spelling of automatic ids: `<epoch>-<n>`, where `n` is a hub sequence
/// number minus `offset`. The epoch is unique per hub (or per backplane data
/// set), so an id from another process or an older data set is recognised as
/// foreign instead of misread as a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSpace {
    /// The prefix before the dash.
    pub epoch: String,
    /// Hub sequence number of `n = 0`.
    pub offset: u64,
}

/// One channel: its log and the clients subscribed to it.
pub struct Channel {
    name: Arc<str>,
    /// The committed sequence number when the channel was created: in remote
    /// mode its log holds every event after it (and nothing before).
    since: u64,
    log: RwLock<Log>,
    /// Total bytes ever appended; a client's lag is measured against it.
    appended: AtomicU64,
    /// Global sequence number of the newest entry dropped from the log.
    trimmed_gseq: AtomicU64,
    subscribers: RwLock<Slab<(Arc<Client>, usize)>>,
    /// The lowest cursor of clients that joined since the fan-out task began
    /// its current round: they may have missed its "slowest" computation, so
    /// trimming respects them too.
    join_floor: AtomicU64,
    dirty: AtomicBool,
    /// Queued in the hub's `trims` list.
    trim_due: AtomicBool,
}

/// A channel's history and what its readers have not read yet. Entries are
/// kept as small as they can be (a number and a pointer): a busy server
/// holds `history` of them per channel.
struct Log {
    entries: VecDeque<Entry>,
    /// Channel-local sequence number of `entries[0]` (starts at 1).
    first_seq: u64,
    /// The explicit ids of the entries still here, with their global
    /// numbers, for `Last-Event-ID` lookups. Apart from the entries because
    /// most events have none.
    ids: VecDeque<(u64, Arc<str>)>,
}

#[derive(Clone)]
struct Entry {
    gseq: u64,
    bytes: Encoded,
}

impl Log {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    /// Local sequence number of the first entry after global sequence `gseq`.
    fn seq_after(&self, gseq: u64) -> u64 {
        self.first_seq + self.entries.partition_point(|e| e.gseq <= gseq) as u64
    }

    /// Byte offset just before local sequence `seq`, counted back from
    /// `appended` (the offset after the newest entry): a live start costs
    /// nothing, a replay what it replays.
    fn offset_before(&self, seq: u64, appended: u64) -> u64 {
        let idx = (seq - self.first_seq) as usize;
        let after: u64 = self
            .entries
            .range(idx.min(self.entries.len())..)
            .map(|e| e.bytes.len() as u64)
            .sum();
        appended - after
    }

    /// The global number of the newest entry sent with explicit id `id`.
    fn find_id(&self, id: &str) -> Option<u64> {
        self.ids
            .iter()
            .rev()
            .find(|(_, known)| &**known == id)
            .map(|&(gseq, _)| gseq)
    }
}

/// The shared side of one connected client: what the hub, the fan-out task,
/// the client's stream and its connection all see.
pub struct Client {
    id: u64,
    channels: Vec<Arc<Channel>>,
    /// Per channel: next local sequence number and byte offset consumed.
    cursors: Vec<(AtomicU64, AtomicU64)>,
    /// Per channel: the channel's byte offset when the client subscribed.
    /// History it asked to replay (before this) is kept for everyone anyway,
    /// so only what was published after it counts against its budget.
    joined_at: Vec<u64>,
    /// Slab keys in each channel's subscriber list, for removal.
    slots: Mutex<Vec<usize>>,
    /// Events for this client alone, after global sequence number `.0`;
    /// `.2` says whether they count against its budget (a replay fetched
    /// from the backplane does not: it is history, like a log replay).
    direct: Mutex<VecDeque<(u64, Encoded, bool)>>,
    direct_bytes: AtomicU64,
    /// Bytes handed to the connection, framing included.
    handed: AtomicU64,
    /// What the connection reports about its socket.
    progress: Arc<Progress>,
    budget: u64,
    /// The task polling the client's stream.
    waker: AtomicWaker,
    /// The task supervising the client's connection, when that is another
    /// task (HTTP/2 streams are polled apart from their connection): told
    /// when the client is evicted.
    watcher: AtomicWaker,
    flags: AtomicU8,
    /// When a disconnect was asked for: the last sequence number still
    /// delivered before the stream ends.
    stop_at: AtomicU64,
    /// The stall watchdog's notes (only it touches them): the client's
    /// progress at its last look, and for how many looks in a row the client
    /// had data waiting and made none.
    seen_progress: AtomicU64,
    stalled_looks: AtomicU32,
}

const EVICTED: u8 = 1;
const DISCONNECT: u8 = 2;
/// Where an evicted client's [`Eviction`] is kept in its flags: set in the
/// same atomic step as `EVICTED`, so whoever sees one sees the other.
const REASON_SHIFT: u8 = 2;
const REASON_MASK: u8 = 0b1100;

impl Client {
    /// The client's id, unique within the hub.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Registers the task to wake when something arrives for this client.
    pub fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Registers the connection's supervising task, woken on eviction.
    pub fn register_watcher(&self, waker: &std::task::Waker) {
        self.watcher.register(waker);
    }

    /// Bytes queued for this client and not yet written to its socket: what
    /// was published to its channels since it joined and it has not read, its
    /// private queue, and what its connection was handed but not written.
    /// History it is still replaying does not count: that is kept anyway.
    pub fn lag(&self) -> u64 {
        let unwritten = self
            .handed
            .load(Ordering::Relaxed)
            .saturating_sub(self.progress.written.load(Ordering::Relaxed));
        self.lag_in_hub() + unwritten
    }

    /// Whether the client is too slow: its socket is full and more than its
    /// byte budget is queued for it.
    pub fn over_budget(&self) -> bool {
        self.progress.blocked.load(Ordering::Relaxed) && self.lag() > self.budget
    }

    /// The one eviction check every transport makes when it runs: true when
    /// the connection must be dropped (the client was evicted, or is over
    /// its budget now and is evicted by this call).
    pub fn must_drop(&self) -> bool {
        if self.is_evicted() {
            return true;
        }
        if self.over_budget() {
            self.evict(Eviction::Budget);
            return true;
        }
        false
    }

    /// Whether anything is waiting for the client: published to its
    /// channels and not read, queued for it alone, or handed to its
    /// connection and not written. Over HTTP/2 the socket is shared, so
    /// only what its stream has not taken counts.
    fn has_waiting(&self) -> bool {
        if self.progress.multiplexed.load(Ordering::Relaxed) {
            return self.lag_in_hub() > 0;
        }
        self.lag() > 0
    }

    /// What the client's stream has not taken from the hub yet.
    fn lag_in_hub(&self) -> u64 {
        self.channels
            .iter()
            .zip(&self.cursors)
            .zip(&self.joined_at)
            .map(|((ch, (_, offset)), &joined)| {
                ch.appended
                    .load(Ordering::Acquire)
                    .saturating_sub(offset.load(Ordering::Acquire).max(joined))
            })
            .sum::<u64>()
            + self.direct_bytes.load(Ordering::Relaxed)
    }

    /// A number that moves whenever the client makes progress: its stream
    /// takes something, or (on its own connection) its socket accepts bytes.
    fn progress_mark(&self) -> u64 {
        let handed = self.handed.load(Ordering::Relaxed);
        if self.progress.multiplexed.load(Ordering::Relaxed) {
            return handed;
        }
        handed.wrapping_add(self.progress.written.load(Ordering::Relaxed))
    }

    /// Records bytes handed to the connection (framing included).
    pub fn handed(&self, bytes: u64) {
        self.handed.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Marks the client evicted for `why`; true for the first caller only, so
    /// it is counted once, and only the first caller's reason is kept.
    pub fn evict(&self, why: Eviction) -> bool {
        let first = self
            .flags
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                (f & EVICTED == 0).then_some(f | EVICTED | why.bits())
            })
            .is_ok();
        self.waker.wake();
        self.watcher.wake();
        first
    }

    /// Why the client was evicted; `None` while it was not.
    pub fn eviction(&self) -> Option<Eviction> {
        Eviction::from_bits(self.flags.load(Ordering::Acquire))
    }

    /// Whether the client was evicted.
    pub fn is_evicted(&self) -> bool {
        self.flags.load(Ordering::Acquire) & EVICTED != 0
    }

    /// Asks the client's stream to end cleanly once it has written what was
    /// sent up to global sequence number `last`.
    fn request_disconnect(&self, last: u64) {
        self.stop_at.fetch_min(last, Ordering::AcqRel);
        self.flags.fetch_or(DISCONNECT, Ordering::AcqRel);
        self.waker.wake();
    }

    fn disconnect_requested(&self) -> bool {
        self.flags.load(Ordering::Acquire) & DISCONNECT != 0
    }

    /// The names of the channels this client reads.
    pub fn channel_names(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.name.to_string()).collect()
    }
}

/// What a client finds when it reads.
#[derive(Debug)]
pub enum Read {
    /// Events in global order; the cursors have moved past them.
    Events(Vec<Encoded>),
    /// Nothing new yet.
    Empty,
    /// Over budget or fallen off a log: the connection must be dropped.
    Lagged,
    /// The stream should end cleanly (server closing, or `disconnect`).
    End,
}

/// Per-channel statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStats {
    /// The channel's name.
    pub name: String,
    /// Clients subscribed right now.
    pub subscribers: u64,
    /// Events in its history right now.
    pub history: u64,
}

impl Hub {
    /// An empty, open hub. Its fan-out task is [`Hub::run_fanout`].
    pub fn new(retention: Retention) -> Arc<Self> {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Self::build(
            retention,
            IdSpace {
                epoch: radix36(epoch),
                offset: 0,
            },
            false,
        )
    }

    /// An empty hub fed by a backplane through [`Hub::publish_remote`]; its
    /// ids are set by the backplane ([`Hub::set_id_space`]).
    pub fn new_remote(retention: Retention) -> Arc<Self> {
        Self::build(
            retention,
            IdSpace {
                epoch: String::new(),
                offset: 0,
            },
            true,
        )
    }

    fn build(retention: Retention, ids: IdSpace, remote: bool) -> Arc<Self> {
        Arc::new(Hub {
            retention,
            ids: RwLock::new(ids),
            remote,
            generation: AtomicU64::new(0),
            on_channels_changed: OnceLock::new(),
            publish: Mutex::new(1),
            committed: AtomicU64::new(0),
            channels: RwLock::new(HashMap::new()),
            clients: RwLock::new(HashMap::new()),
            next_client: AtomicU64::new(1),
            dirty: Mutex::new(Vec::new()),
            trims: Mutex::new(Vec::new()),
            pending: Notify::new(),
            scheduled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    fn channel(&self, name: &str) -> Arc<Channel> {
        self.channel_from(name, 0)
    }

    /// The channel, created when missing with its log complete after
    /// `floor` (or after `committed`, if later).
    fn channel_from(&self, name: &str, floor: u64) -> Arc<Channel> {
        if let Some(ch) = read(&self.channels).get(name) {
            return Arc::clone(ch);
        }
        let mut channels = write(&self.channels);
        let mut created = false;
        let ch = channels.entry(Arc::from(name)).or_insert_with(|| {
            created = true;
            Arc::new(Channel {
                name: Arc::from(name),
                since: self.committed.load(Ordering::Acquire).max(floor),
                log: RwLock::new(Log {
                    entries: VecDeque::new(),
                    first_seq: 1,
                    ids: VecDeque::new(),
                }),
                appended: AtomicU64::new(0),
                trimmed_gseq: AtomicU64::new(0),
                subscribers: RwLock::new(Slab::new()),
                join_floor: AtomicU64::new(u64::MAX),
                dirty: AtomicBool::new(false),
                trim_due: AtomicBool::new(false),
            })
        });
        let ch = Arc::clone(ch);
        drop(channels);
        if created {
            self.channels_changed();
        }
        ch
    }

    fn channels_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(notify) = self.on_channels_changed.get() {
            notify();
        }
    }

    /// The automatic id of global sequence number `gseq`.
    pub fn auto_id(&self, gseq: u64) -> String {
        let ids = read(&self.ids);
        format!("{}-{}", ids.epoch, gseq.saturating_sub(ids.offset))
    }

    /// Changes how automatic ids are spelled (remote mode: the backplane's
    /// data set and where its numbering starts in this hub).
    pub fn set_id_space(&self, ids: IdSpace) {
        *write(&self.ids) = ids;
    }

    /// How automatic ids are spelled right now.
    pub fn id_space(&self) -> IdSpace {
        read(&self.ids).clone()
    }

    /// Asks to be told whenever the set of channels changes. Only the first
    /// caller is registered (one backplane reader per hub).
    pub fn on_channels_changed(&self, notify: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_channels_changed.set(notify);
    }

    /// The channel set's version, bumped on every change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Every channel the hub has (with subscribers or history), with the
    /// sequence number its log is complete after.
    pub fn channel_starts(&self) -> Vec<(String, u64)> {
        read(&self.channels)
            .values()
            .map(|c| (c.name.to_string(), c.since))
            .collect()
    }

    /// Whether every one of `channels` (the default channel when empty) exists here.
    pub fn has_channels(&self, channels: &[String]) -> bool {
        let map = read(&self.channels);
        if channels.is_empty() {
            return map.contains_key(DEFAULT_CHANNEL);
        }
        channels.iter().all(|c| map.contains_key(c.as_str()))
    }

    /// Remote mode: the backplane's numbering already stands at `gseq` when
    /// this hub starts, so "live" means "after `gseq`".
    pub fn start_at(&self, gseq: u64) {
        let mut next = lock(&self.publish);
        *next = (*next).max(gseq + 1);
        self.committed.store(gseq, Ordering::Release);
    }

    /// Records that the events of channel `name` up to `through` never
    /// reached this hub (the backplane trimmed them before they were read):
    /// ids before the gap become stale, and the channel's clients are
    /// dropped (as too slow) so they reconnect and learn it, rather than
    /// silently missing events. Returns how many clients were dropped.
    pub fn mark_gap(&self, name: &str, through: u64) -> usize {
        let Some(ch) = read(&self.channels).get(name).cloned() else {
            return 0;
        };
        ch.trimmed_gseq.fetch_max(through, Ordering::AcqRel);
        let subscribers = read(&ch.subscribers);
        subscribers
            .iter()
            .filter(|(_, (client, _))| client.evict(Eviction::Gap))
            .count()
    }

    /// Every sequence number up to this one is delivered to the logs.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    fn encode(&self, gseq: u64, payload: &Payload) -> (Encoded, Option<Arc<str>>) {
        match payload {
            Payload::Comment(text) => (encode_comment(text), None),
            Payload::Event(event) => match event.explicit_id() {
                Some(id) => (event.encode(), Some(Arc::from(id))),
                None if self.retention.history > 0 => {
                    (event.encode_with_id(&self.auto_id(gseq)), None)
                }
                None => (event.encode(), None),
            },
        }
    }

    /// Publishes to `channels` (deduplicated; empty means the default channel).
    /// Returns the event's global sequence number.
    pub fn publish(&self, channels: &[&str], payload: &Payload) -> u64 {
        // Channels are looked up under the publish lock, which is also what an
        // unsubscribing client holds to remove an empty channel: an event can
        // never land in a channel that was just dropped from the map.
        let mut next = lock(&self.publish);
        let targets: Vec<Arc<Channel>> = match channels {
            [] => vec![self.channel(DEFAULT_CHANNEL)],
            [one] => vec![self.channel(one)],
            many => {
                let mut names: Vec<&str> = many.to_vec();
                names.sort_unstable();
                names.dedup();
                names.into_iter().map(|c| self.channel(c)).collect()
            }
        };
        let gseq = *next;
        *next += 1;
        let (bytes, id) = self.encode(gseq, payload);
        for ch in &targets {
            ch.append(gseq, bytes.clone(), id.clone(), self.retention.history);
        }
        self.committed.store(gseq, Ordering::Release);
        drop(next);
        self.schedule(targets);
        gseq
    }

    /// Publishes an event the backplane numbered `gseq` (greater than every
    /// earlier one) to those of `channels` this hub has, with its bytes
    /// already encoded. Refused (false, nothing published) when the channel
    /// set changed since `generation`: the reader must first read the new
    /// set, or a channel created meanwhile would miss earlier events.
    pub fn publish_remote(
        &self,
        generation: u64,
        gseq: u64,
        channels: &[&str],
        bytes: Encoded,
        id: Option<Arc<str>>,
    ) -> bool {
        let mut next = lock(&self.publish);
        if self.generation.load(Ordering::Acquire) != generation {
            return false;
        }
        let targets: Vec<Arc<Channel>> = {
            let map = read(&self.channels);
            channels
                .iter()
                .filter_map(|c| map.get(*c).cloned())
                .collect()
        };
        *next = (*next).max(gseq + 1);
        // A channel's log holds what came after its `since`, in order: an
        // older event (read for a channel since created again) is not its.
        let targets: Vec<Arc<Channel>> = targets.into_iter().filter(|ch| gseq > ch.since).collect();
        for ch in &targets {
            ch.append(gseq, bytes.clone(), id.clone(), self.retention.history);
        }
        self.committed.fetch_max(gseq, Ordering::AcqRel);
        drop(next);
        self.schedule(targets);
        true
    }

    /// Lets the fan-out task know `targets` received something.
    fn schedule(&self, targets: Vec<Arc<Channel>>) {
        let mut dirty = lock(&self.dirty);
        for ch in targets {
            if !ch.dirty.swap(true, Ordering::AcqRel) {
                dirty.push(ch);
            }
        }
        drop(dirty);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.pending.notify_one();
        }
    }

    /// Queues a payload for one client only. False when no such client is
    /// connected, and when its private queue would grow beyond its byte
    /// budget: that queue is memory of its own (unlike the shared logs), so a
    /// client that far behind is evicted instead.
    pub fn send_to(&self, client_id: u64, payload: &Payload) -> bool {
        let Some(client) = read(&self.clients).get(&client_id).cloned() else {
            return false;
        };
        if client.is_evicted() || client.disconnect_requested() {
            return false;
        }
        let mut next = lock(&self.publish);
        // In remote mode sequence numbers belong to the backplane: a direct
        // send is placed after the newest event, without a number of its own.
        let gseq = if self.remote { *next - 1 } else { *next };
        let (bytes, _) = self.encode(gseq, payload);
        let queued = client.direct_bytes.load(Ordering::Relaxed);
        if queued + bytes.len() as u64 > client.budget {
            drop(next);
            client.evict(Eviction::Budget);
            return false;
        }
        if !self.remote {
            *next += 1;
        }
        client
            .direct_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        lock(&client.direct).push_back((gseq, bytes, true));
        self.committed.store(gseq, Ordering::Release);
        drop(next);
        // Direct sends bypass the fan-out task, so the budget is checked here.
        if client.over_budget() {
            client.evict(Eviction::Budget);
        }
        client.waker.wake();
        true
    }

    /// Asks one client's stream to end. False when no such client is connected.
    pub fn disconnect(&self, client_id: u64) -> bool {
        let Some(client) = read(&self.clients).get(&client_id).cloned() else {
            return false;
        };
        // Under the publish lock, so "sent before the disconnect" is exact.
        let publish = lock(&self.publish);
        client.request_disconnect(*publish - 1);
        drop(publish);
        true
    }

    /// Finds where a client resuming after `last_event_id` starts in `channels`,
    /// and whether that id is stale (unknown, foreign, or older than the history
    /// of one of the channels), in which case it starts live.
    pub fn resolve(&self, last_event_id: Option<&str>, channels: &[String]) -> (Start, bool) {
        let Some(id) = last_event_id else {
            return (Start::Live, false);
        };
        if self.retention.history == 0 {
            return (Start::Live, true);
        }
        let names: Vec<&str> = if channels.is_empty() {
            vec![DEFAULT_CHANNEL]
        } else {
            channels.iter().map(String::as_str).collect()
        };
        let chans: Vec<Arc<Channel>> = {
            let map = read(&self.channels);
            names.iter().filter_map(|c| map.get(*c).cloned()).collect()
        };
        // In remote mode the local logs are a cache: they answer only when
        // every channel is here and was read since before the id.
        if self.remote && chans.len() < names.len() {
            return (Start::Live, true);
        }
        // An explicit id sent more than once means its newest event in any
        // of the channels, whatever order they are named in.
        let gseq = self.parse_auto_id(id).or_else(|| {
            chans
                .iter()
                .filter_map(|ch| read(&ch.log).find_id(id))
                .max()
        });
        match gseq {
            Some(g)
                if chans.iter().all(|ch| {
                    ch.trimmed_gseq.load(Ordering::Acquire) <= g && (!self.remote || ch.since <= g)
                }) =>
            {
                (Start::After(g), false)
            }
            _ => (Start::Live, true),
        }
    }

    fn parse_auto_id(&self, id: &str) -> Option<u64> {
        let (epoch, n) = id.split_once('-')?;
        let ids = read(&self.ids);
        if epoch != ids.epoch || ids.epoch.is_empty() {
            return None;
        }
        let seq = n.parse::<u64>().ok()?.checked_add(ids.offset)?;
        (seq <= self.committed.load(Ordering::Acquire)).then_some(seq)
    }

    /// A fresh client id, handed out before the client subscribes so that a
    /// connect hook can see it.
    pub fn next_client_id(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }

    /// Subscribes client `id` to `channels` (the default channel when empty).
    /// With a `last_event_id` it resumes right after that event when the
    /// history still covers it, and starts live otherwise, reporting the id as
    /// stale. `progress` is what its connection reports about the socket,
    /// which the byte budget is measured against.
    pub fn subscribe(
        self: &Arc<Self>,
        id: u64,
        channels: &[String],
        last_event_id: Option<&str>,
        progress: Arc<Progress>,
    ) -> (Subscriber, bool) {
        self.subscribe_from(id, channels, last_event_id, progress, 0)
    }

    /// [`Hub::subscribe`] for remote mode: `floor` is the backplane's
    /// position when the client arrived. Channels new here start after it,
    /// and so does the client when it starts live: events numbered before it
    /// happened before the client came, even if this hub has not read them.
    pub fn subscribe_from(
        self: &Arc<Self>,
        id: u64,
        channels: &[String],
        last_event_id: Option<&str>,
        progress: Arc<Progress>,
        floor: u64,
    ) -> (Subscriber, bool) {
        let mut names: Vec<&str> = channels.iter().map(String::as_str).collect();
        if names.is_empty() {
            names.push(DEFAULT_CHANNEL);
        }
        names.sort_unstable();
        names.dedup();
        // Hold the publish lock while placing cursors, so nothing is published
        // between "where the client starts" and "the client is listening".
        let publish = lock(&self.publish);
        let chans: Vec<Arc<Channel>> = names.iter().map(|n| self.channel_from(n, floor)).collect();
        let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let (mut start, mut stale) = self.resolve(last_event_id, &owned);
        // Each channel's cursor is placed and the client joins the channel
        // under that channel's log lock, and leaves its cursor in the join
        // floor, so a concurrent trim cannot drop what it is about to read.
        let mut guards: Vec<_> = chans.iter().map(|ch| read(&ch.log)).collect();
        let joined_at = chans
            .iter()
            .map(|ch| ch.appended.load(Ordering::Acquire))
            .collect();
        let client = Arc::new(Client {
            id,
            channels: chans.clone(),
            cursors: chans
                .iter()
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
            joined_at,
            slots: Mutex::new(Vec::new()),
            direct: Mutex::new(VecDeque::new()),
            direct_bytes: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            progress,
            budget: self.retention.max_buffered_bytes,
            waker: AtomicWaker::new(),
            watcher: AtomicWaker::new(),
            flags: AtomicU8::new(0),
            stop_at: AtomicU64::new(u64::MAX),
            seen_progress: AtomicU64::new(0),
            stalled_looks: AtomicU32::new(0),
        });
        if let Start::After(g) = start {
            if chans
                .iter()
                .any(|ch| ch.trimmed_gseq.load(Ordering::Acquire) > g)
            {
                (start, stale) = (Start::Live, true);
            }
        }
        let mut slots = Vec::with_capacity(chans.len());
        for (i, (ch, log)) in chans.iter().zip(guards.iter_mut()).enumerate() {
            let appended = ch.appended.load(Ordering::Acquire);
            let seq = match start {
                Start::Live => log.next_seq(),
                Start::After(g) => log.seq_after(g),
            };
            client.cursors[i].0.store(seq, Ordering::Release);
            client.cursors[i]
                .1
                .store(log.offset_before(seq, appended), Ordering::Release);
            slots.push(write(&ch.subscribers).insert((Arc::clone(&client), i)));
            ch.join_floor.fetch_min(seq, Ordering::AcqRel);
        }
        drop(guards);
        *lock(&client.slots) = slots;
        // In remote mode a channel can start ahead of what this hub has read
        // (created for a client that came when the backplane was further on):
        // a live start before it would miss that channel's events in between.
        let floor = chans.iter().map(|ch| ch.since).fold(floor, u64::max);
        let horizon = self.committed.load(Ordering::Acquire).max(floor);
        drop(publish);
        write(&self.clients).insert(id, Arc::clone(&client));
        let subscriber = Subscriber {
            hub: Arc::clone(self),
            local: client
                .cursors
                .iter()
                .map(|(seq, _)| seq.load(Ordering::Relaxed))
                .collect(),
            client,
            last_gseq: match start {
                Start::Live => horizon,
                Start::After(g) => g,
            },
        };
        (subscriber, stale)
    }

    /// Ends every stream once it has written what was published before: each
    /// client reads [`Read::End`] when caught up. Idempotent.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for client in read(&self.clients).values() {
            client.waker.wake();
        }
        self.pending.notify_one();
    }

    /// Whether [`Hub::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// How many clients are connected.
    pub fn client_count(&self) -> usize {
        read(&self.clients).len()
    }

    /// Subscribers and history size of every channel, sorted by name.
    pub fn channel_stats(&self) -> Vec<ChannelStats> {
        let mut out: Vec<ChannelStats> = read(&self.channels)
            .values()
            .map(|ch| ChannelStats {
                name: ch.name.to_string(),
                subscribers: read(&ch.subscribers).len() as u64,
                history: read(&ch.log).entries.len() as u64,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The fan-out task: wakes the clients of every channel that received
    /// something, evicts clients over budget, trims logs. Runs until closed.
    pub async fn run_fanout(self: Arc<Self>) {
        loop {
            self.pending.notified().await;
            self.round();
            if self.is_closed() {
                return;
            }
        }
    }

    /// One round of the fan-out task over the channels that asked for it.
    fn round(&self) {
        // Cleared before taking the lists: a send after this point either
        // lands in the lists taken below or schedules another round.
        self.scheduled.store(false, Ordering::Release);
        let dirty = std::mem::take(&mut *lock(&self.dirty));
        let trims = std::mem::take(&mut *lock(&self.trims));
        for ch in dirty {
            ch.dirty.store(false, Ordering::Release);
            // A channel's fan-out trims it too: a trim asked for before
            // this point is done by it. A swap, not a store, so that the
            // cursor moves of whoever asked are seen by the fan-out.
            ch.trim_due.swap(false, Ordering::AcqRel);
            self.fan_out(&ch, true);
        }
        for ch in trims {
            if ch.trim_due.swap(false, Ordering::AcqRel) {
                self.fan_out(&ch, false);
            }
        }
    }

    /// One channel's round: with `wake`, wakes every subscriber (something
    /// was published); always evicts the ones over budget and trims the log
    /// to what the slowest remaining one still needs.
    fn fan_out(&self, ch: &Channel, wake: bool) {
        ch.join_floor.store(u64::MAX, Ordering::Release);
        let mut slowest = u64::MAX;
        for (_, (client, idx)) in read(&ch.subscribers).iter() {
            if wake {
                client.waker.wake();
            }
            if client.must_drop() {
                continue;
            }
            slowest = slowest.min(client.cursors[*idx].0.load(Ordering::Acquire));
        }
        let mut log = write(&ch.log);
        let slowest = slowest.min(ch.join_floor.load(Ordering::Acquire));
        ch.trim_locked(&mut log, slowest, self.retention.history);
    }

    /// Asks the fan-out task to trim `ch` (its slowest reader moved on or
    /// left); one request per channel is pending at a time.
    fn request_trim(&self, ch: &Arc<Channel>) {
        if ch.trim_due.swap(true, Ordering::AcqRel) {
            return;
        }
        lock(&self.trims).push(Arc::clone(ch));
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.pending.notify_one();
        }
    }

    /// The stall watchdog: evicts every client that had data waiting and
    /// made no progress for `stall_timeout`, looking every tenth of it (at
    /// most every second). This is what catches a client that stopped
    /// reading on a channel that then went quiet: nothing else would look at
    /// it again, and it would hold the log for ever. Runs until closed;
    /// returns at once when the rule is off.
    pub async fn run_watchdog(self: Arc<Self>) {
        let Some(limit) = self.retention.stall_timeout else {
            return;
        };
        let tick = (limit / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let looks = stall_looks(limit, tick);
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.is_closed() {
            interval.tick().await;
            for client in read(&self.clients).values() {
                if client.stalled_for(looks) {
                    client.evict(Eviction::Stall);
                }
            }
        }
    }
}

/// How many looks `tick` apart without progress prove a stall of at least
/// `limit`: the first look may come right after the client's last progress,
/// so one more than `limit / tick`.
fn stall_looks(limit: Duration, tick: Duration) -> u32 {
    let whole = limit.as_nanos().div_ceil(tick.as_nanos().max(1));
    u32::try_from(whole).unwrap_or(u32::MAX).saturating_add(1)
}

impl Client {
    /// One look of the watchdog: counts the looks in a row at which the
    /// client had data waiting and its progress had not moved since the
    /// previous look; true once there were `looks` of them.
    fn stalled_for(&self, looks: u32) -> bool {
        if self.is_evicted() {
            return false;
        }
        let mark = self.progress_mark();
        let moved = self.seen_progress.swap(mark, Ordering::Relaxed) != mark;
        if moved || !self.has_waiting() {
            self.stalled_looks.store(0, Ordering::Relaxed);
            return false;
        }
        let n = self.stalled_looks.fetch_add(1, Ordering::Relaxed) + 1;
        n >= looks
    }
}

impl Channel {
    fn append(&self, gseq: u64, bytes: Encoded, id: Option<Arc<str>>, history: usize) {
        let mut log = write(&self.log);
        let end = self.appended.load(Ordering::Relaxed) + bytes.len() as u64;
        log.entries.push_back(Entry { gseq, bytes });
        if let Some(id) = id {
            log.ids.push_back((gseq, id));
        }
        self.appended.store(end, Ordering::Release);
        // Without subscribers nobody needs more than the history; with them,
        // the fan-out task trims to what the slowest one still needs.
        if read(&self.subscribers).is_empty() {
            self.trim_locked(&mut log, u64::MAX, history);
        }
    }

    /// Drops entries every subscriber has read (`slowest` is the smallest
    /// cursor), keeping at least the newest `history` entries.
    fn trim_locked(&self, log: &mut Log, slowest: u64, history: usize) {
        let mut dropped = None;
        while log.entries.len() > history && log.first_seq < slowest {
            let Some(e) = log.entries.pop_front() else {
                break;
            };
            log.first_seq += 1;
            dropped = Some(e.gseq);
        }
        if let Some(gseq) = dropped {
            self.trimmed_gseq.store(gseq, Ordering::Release);
            while log.ids.front().is_some_and(|&(g, _)| g <= gseq) {
                log.ids.pop_front();
            }
            // A log that shrank a lot gives its memory back, or a burst
            // would keep its high-water mark for as long as the channel lives.
            if log.entries.capacity() > 4 * log.entries.len().max(16) {
                log.entries.shrink_to(2 * log.entries.len());
            }
        }
    }
}

/// One client's reading side, owned by its stream. Dropping it unsubscribes.
pub struct Subscriber {
    hub: Arc<Hub>,
    client: Arc<Client>,
    /// Next local sequence number per channel (mirrors `client.cursors`).
    local: Vec<u64>,
    /// The newest global sequence number delivered.
    last_gseq: u64,
}

struct Source {
    taken: Vec<Entry>,
    /// Whether more committed entries were left behind by the batch limit.
    truncated: bool,
}

impl Subscriber {
    /// The shared side, for the connection and for callbacks.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Takes what is queued for the client, in global order.
    pub fn read(&mut self) -> Read {
        if self.client.is_evicted() {
            return Read::Lagged;
        }
        let horizon = self
            .hub
            .committed
            .load(Ordering::Acquire)
            .min(self.client.stop_at.load(Ordering::Acquire));
        let mut sources = Vec::with_capacity(self.client.channels.len() + 1);
        // Per channel: whether this client is at the front of a log longer
        // than the history, so moving on may let it trim.
        let mut holds_front = Vec::with_capacity(self.client.channels.len());
        for (i, ch) in self.client.channels.iter().enumerate() {
            let log = read(&ch.log);
            if self.local[i] < log.first_seq {
                return Read::Lagged;
            }
            holds_front.push(
                self.local[i] == log.first_seq && log.entries.len() > self.hub.retention.history,
            );
            let start = (self.local[i] - log.first_seq) as usize;
            sources.push(take(log.entries.range(start..).cloned(), horizon));
        }
        {
            // The direct queue only ever holds complete entries, and in remote
            // mode it may hold a replay numbered past what this hub has read:
            // only a disconnect bounds it.
            let direct = lock(&self.client.direct);
            let horizon = self.client.stop_at.load(Ordering::Acquire);
            sources.push(take(
                direct.iter().map(|(gseq, bytes, _)| Entry {
                    gseq: *gseq,
                    bytes: bytes.clone(),
                }),
                horizon,
            ));
        }
        // A source cut short by the batch limit bounds what may be delivered now,
        // or its later entries would be overtaken by other sources'.
        let limit = sources
            .iter()
            .filter(|s| s.truncated)
            .filter_map(|s| s.taken.last().map(|e| e.gseq))
            .min()
            .unwrap_or(u64::MAX);
        let mut batch = Vec::new();
        let mut heads = vec![0usize; sources.len()];
        let direct_idx = sources.len() - 1;
        loop {
            let next = sources
                .iter()
                .zip(&heads)
                .filter_map(|(s, &h)| s.taken.get(h).map(|e| e.gseq))
                .filter(|&g| g <= limit)
                .min();
            let Some(gseq) = next else { break };
            let mut pushed = false;
            for (i, (s, h)) in sources.iter().zip(heads.iter_mut()).enumerate() {
                if let Some(e) = s.taken.get(*h) {
                    if e.gseq == gseq {
                        // The direct queue is last: its entries are the
                        // client's own and always go out, after the channel
                        // event of the same number; channel events go out
                        // once however many of the client's channels had them.
                        if i == direct_idx {
                            batch.push(e.bytes.clone());
                        } else if !pushed && gseq > self.last_gseq {
                            batch.push(e.bytes.clone());
                            pushed = true;
                        }
                        *h += 1;
                    }
                }
            }
            self.last_gseq = self.last_gseq.max(gseq);
        }
        // Advance cursors past what was consumed.
        for (i, (s, &h)) in sources.iter().zip(&heads).enumerate() {
            if h == 0 {
                continue;
            }
            if i == direct_idx {
                let mut direct = lock(&self.client.direct);
                let mut freed = 0;
                for _ in 0..h {
                    if let Some((_, b, counted)) = direct.pop_front() {
                        if counted {
                            freed += b.len() as u64;
                        }
                    }
                }
                self.client.direct_bytes.fetch_sub(freed, Ordering::Relaxed);
            } else {
                self.local[i] += h as u64;
                let consumed: u64 = s.taken[..h].iter().map(|e| e.bytes.len() as u64).sum();
                let (seq, offset) = &self.client.cursors[i];
                seq.store(self.local[i], Ordering::Release);
                offset.fetch_add(consumed, Ordering::AcqRel);
                if holds_front[i] {
                    self.hub.request_trim(&self.client.channels[i]);
                }
            }
        }
        if !batch.is_empty() {
            return Read::Events(batch);
        }
        if self.hub.is_closed() || self.client.disconnect_requested() {
            return Read::End;
        }
        Read::Empty
    }

    /// Queues a replay fetched from elsewhere (the backplane's history):
    /// `(sequence number, bytes)` in order, all at or before where the client
    /// started, so they go out before anything live. Not counted against the
    /// byte budget, like a replay from the local logs.
    pub fn preload(&mut self, events: Vec<(u64, Encoded)>) {
        let mut direct = lock(&self.client.direct);
        for (i, (gseq, bytes)) in events.into_iter().enumerate() {
            direct.insert(i, (gseq, bytes, false));
        }
    }

    /// Treats everything up to `gseq` as already delivered: a client that
    /// resumes from an id this hub has not caught up with yet.
    pub fn skip_through(&mut self, gseq: u64) {
        self.last_gseq = self.last_gseq.max(gseq);
    }

    /// The newest sequence number the client has (or is treated as having).
    pub fn last_gseq(&self) -> u64 {
        self.last_gseq
    }

    /// Why the stream is ending, judged from the client's flags.
    pub fn end_reason(&self) -> EndReason {
        if self.client.is_evicted() {
            EndReason::Slow
        } else if self.client.disconnect_requested() {
            EndReason::Disconnected
        } else if self.hub.is_closed() {
            EndReason::Shutdown
        } else {
            EndReason::Closed
        }
    }
}

fn take(entries: impl Iterator<Item = Entry>, horizon: u64) -> Source {
    let mut taken = Vec::new();
    let mut bytes = 0;
    let mut truncated = false;
    for e in entries {
        if e.gseq > horizon {
            break;
        }
        if !taken.is_empty()
            && (taken.len() == MAX_BATCH_EVENTS || bytes + e.bytes.len() > MAX_BATCH_BYTES)
        {
            truncated = true;
            break;
        }
        bytes += e.bytes.len();
        taken.push(e);
    }
    Source { taken, truncated }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        write(&self.hub.clients).remove(&self.client.id);
        let slots = std::mem::take(&mut *lock(&self.client.slots));
        let _publish = lock(&self.hub.publish);
        for (ch, slot) in self.client.channels.iter().zip(slots) {
            let mut subs = write(&ch.subscribers);
            if subs.contains(slot) {
                subs.remove(slot);
            }
            let alone = subs.is_empty();
            drop(subs);
            // A channel with neither subscribers nor history is forgotten, so
            // clients naming channels at will cannot grow the map for ever.
            // In remote mode one without subscribers is forgotten too: the
            // backplane keeps its history, and the reader stops reading it.
            if alone && (self.hub.remote || read(&ch.log).entries.is_empty()) {
                write(&self.hub.channels).remove(&ch.name);
                self.hub.channels_changed();
                continue;
            }
            // What only this client still needed goes now, not at the
            // channel's next send: without readers, down to the history at
            // once; with others, as far as the slowest of them allows.
            let history = self.hub.retention.history;
            if alone {
                ch.trim_locked(&mut write(&ch.log), u64::MAX, history);
            } else if read(&ch.log).entries.len() > history {
                self.hub.request_trim(ch);
            }
        }
    }
}

fn radix36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_hub(history: usize, budget: u64) -> Arc<Hub> {
        Hub::new(Retention {
            history,
            max_buffered_bytes: budget,
            stall_timeout: None,
        })
    }

    /// A connection whose socket is full: lagging clients count as slow.
    fn blocked() -> Arc<Progress> {
        let p = Progress::default();
        p.blocked.store(true, Ordering::Relaxed);
        Arc::new(p)
    }

    fn ev(data: &str) -> Payload {
        Payload::Event(Event::message(data))
    }

    fn sub(hub: &Arc<Hub>, channels: &[&str], last_event_id: Option<&str>) -> Subscriber {
        let names: Vec<String> = channels.iter().map(|s| s.to_string()).collect();
        hub.subscribe(hub.next_client_id(), &names, last_event_id, blocked())
            .0
    }

    fn texts(read: Read) -> Vec<String> {
        match read {
            Read::Events(v) => v
                .iter()
                .map(|b| {
                    let s = String::from_utf8(b.to_vec()).unwrap();
                    s.lines()
                        .find_map(|l| l.strip_prefix("data: "))
                        .unwrap_or("")
                        .to_owned()
                })
                .collect(),
            other => panic!("expected events, got {other:?}"),
        }
    }

    #[test]
    fn a_live_subscriber_sees_only_what_comes_after_it() {
        let hub = new_hub(10, 1 << 20);
        hub.publish(&[], &ev("old"));
        let mut s = sub(&hub, &[], None);
        assert!(matches!(s.read(), Read::Empty));
        hub.publish(&[], &ev("a"));
        hub.publish(&[], &ev("b"));
        assert_eq!(texts(s.read()), ["a", "b"]);
        assert!(matches!(s.read(), Read::Empty));
    }

    #[test]
    fn events_get_automatic_ids_and_keep_explicit_ones() {
        let hub = new_hub(10, 1 << 20);
        let mut s = sub(&hub, &[], None);
        let g = hub.publish(&[], &ev("a"));
        hub.publish(
            &[],
            &Payload::Event(Event::message("b").id("mine").unwrap()),
        );
        let Read::Events(batch) = s.read() else {
            panic!()
        };
        assert_eq!(
            batch[0],
            Encoded::copy_from(format!("id: {}\ndata: a\n\n", hub.auto_id(g)).as_bytes())
        );
        assert_eq!(batch[1], Encoded::copy_from(b"id: mine\ndata: b\n\n"));
        let off = new_hub(0, 1 << 20);
        let mut s = sub(&off, &[], None);
        off.publish(&[], &ev("x"));
        let Read::Events(batch) = s.read() else {
            panic!()
        };
        assert_eq!(batch[0], Encoded::copy_from(b"data: x\n\n"));
    }

    #[test]
    fn channels_are_isolated_and_merged_in_send_order_without_duplicates() {
        let hub = new_hub(10, 1 << 20);
        let mut a = sub(&hub, &["a"], None);
        let mut ab = sub(&hub, &["a", "b"], None);
        let mut def = sub(&hub, &[], None);
        hub.publish(&["b"], &ev("1"));
        hub.publish(&["a"], &ev("2"));
        hub.publish(&["a", "b"], &ev("3"));
        hub.publish(&[], &ev("4"));
        hub.publish(&["b", "b"], &ev("5"));
        assert_eq!(texts(a.read()), ["2", "3"]);
        assert_eq!(texts(ab.read()), ["1", "2", "3", "5"]);
        assert_eq!(texts(def.read()), ["4"]);
    }

    #[test]
    fn replay_resumes_right_after_the_last_event_id() {
        let hub = new_hub(100, 1 << 20);
        let mut ids = Vec::new();
        for i in 0..10 {
            ids.push(hub.auto_id(hub.publish(&["x"], &ev(&i.to_string()))));
        }
        let (start, stale) = hub.resolve(Some(&ids[6]), &["x".into()]);
        assert!(!stale);
        assert!(matches!(start, Start::After(_)));
        let mut s = sub(&hub, &["x"], Some(&ids[6]));
        hub.publish(&["x"], &ev("10"));
        assert_eq!(texts(s.read()), ["7", "8", "9", "10"]);
    }

    #[test]
    fn replay_finds_explicit_ids() {
        let hub = new_hub(100, 1 << 20);
        for i in 0..5 {
            let e = Event::message(i.to_string())
                .id(format!("msg-{i}"))
                .unwrap();
            hub.publish(&[], &Payload::Event(e));
        }
        let (_, stale) = hub.resolve(Some("msg-2"), &[]);
        assert!(!stale);
        let mut s = sub(&hub, &[], Some("msg-2"));
        assert_eq!(texts(s.read()), ["3", "4"]);
    }

    /// Found by `fuzz/fuzz_targets/last_event_id.rs`: the first channel (in
    /// the order given) holding the id used to win, so `subscribe` (names
    /// sorted) and `resolve` (names as given) resumed at different events.
    #[test]
    fn an_explicit_id_sent_twice_resumes_after_its_newest_event_in_any_channel_order() {
        let hub = new_hub(10, 1 << 20);
        let again = |data: &str| Payload::Event(Event::message(data).id("same").unwrap());
        hub.publish(&["b"], &again("1"));
        let newest = hub.publish(&["default"], &again("2"));
        for order in [["default", "b"], ["b", "default"]] {
            let names: Vec<String> = order.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                hub.resolve(Some("same"), &names),
                (Start::After(newest), false)
            );
            let mut s = sub(&hub, &order, Some("same"));
            assert!(matches!(s.read(), Read::Empty), "nothing after the newest");
        }
    }

    #[test]
    fn ids_older_than_history_unknown_or_foreign_are_stale() {
        let hub = new_hub(3, 1 << 20);
        let first = hub.auto_id(hub.publish(&[], &ev("0")));
        for i in 1..10 {
            hub.publish(&[], &ev(&i.to_string()));
        }
        assert_eq!(hub.resolve(Some(&first), &[]), (Start::Live, true));
        assert_eq!(hub.resolve(Some("nope"), &[]), (Start::Live, true));
        assert_eq!(hub.resolve(Some("zzz-5"), &[]), (Start::Live, true));
        assert_eq!(
            hub.resolve(Some(&hub.auto_id(999)), &[]),
            (Start::Live, true)
        );
        assert_eq!(hub.resolve(None, &[]), (Start::Live, false));
        let recent = hub.auto_id(8);
        assert_eq!(hub.resolve(Some(&recent), &[]), (Start::After(8), false));
    }

    #[test]
    fn direct_sends_reach_one_client_in_order_with_channel_events() {
        let hub = new_hub(10, 1 << 20);
        let mut a = sub(&hub, &[], None);
        let mut b = sub(&hub, &[], None);
        hub.publish(&[], &ev("1"));
        assert!(hub.send_to(a.client().id(), &ev("2")));
        hub.publish(&[], &ev("3"));
        assert_eq!(texts(a.read()), ["1", "2", "3"]);
        assert_eq!(texts(b.read()), ["1", "3"]);
        assert!(!hub.send_to(9999, &ev("x")));
    }

    #[test]
    fn batches_are_limited_and_stay_in_order_across_channels() {
        let hub = new_hub(10_000, 1 << 30);
        let mut s = sub(&hub, &["a", "b"], None);
        for i in 0..(MAX_BATCH_EVENTS * 2) {
            let ch = if i % 3 == 0 { "a" } else { "b" };
            hub.publish(&[ch], &ev(&i.to_string()));
        }
        let mut got = Vec::new();
        loop {
            match s.read() {
                Read::Empty => break,
                other => got.extend(texts(other)),
            }
        }
        let expected: Vec<String> = (0..MAX_BATCH_EVENTS * 2).map(|i| i.to_string()).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn the_fanout_evicts_clients_over_budget_and_trims_to_the_slowest() {
        let hub = new_hub(2, 100);
        let mut fast = sub(&hub, &[], None);
        let mut slow = sub(&hub, &[], None);
        for i in 0..5 {
            hub.publish(&[], &ev(&format!("{i:030}")));
            fast.read();
        }
        let ch = hub.channel(DEFAULT_CHANNEL);
        hub.fan_out(&ch, true);
        assert_eq!(slow.client().eviction(), Some(Eviction::Budget));
        assert_eq!(fast.client().eviction(), None);
        assert!(matches!(slow.read(), Read::Lagged));
        // The slow client no longer holds the log back.
        assert_eq!(read(&ch.log).entries.len(), 2);
        drop(slow);
        assert_eq!(hub.client_count(), 1);
    }

    #[test]
    fn channels_without_subscribers_or_history_are_forgotten() {
        let hub = new_hub(0, 1 << 20);
        let s = sub(&hub, &["tmp-1", "tmp-2"], None);
        assert_eq!(hub.channel_stats().len(), 2);
        drop(s);
        assert!(hub.channel_stats().is_empty());
    }

    #[test]
    fn a_replaying_client_keeps_what_it_still_needs() {
        let hub = new_hub(2, 1 << 20);
        let mut live = sub(&hub, &[], None);
        let ids: Vec<String> = (0..10)
            .map(|i| hub.auto_id(hub.publish(&[], &ev(&i.to_string()))))
            .collect();
        assert_eq!(texts(live.read()).len(), 10);
        let mut replay = sub(&hub, &[], Some(&ids[4]));
        hub.fan_out(&hub.channel(DEFAULT_CHANNEL), true);
        assert_eq!(texts(replay.read()), ["5", "6", "7", "8", "9"]);
        hub.fan_out(&hub.channel(DEFAULT_CHANNEL), true);
        assert_eq!(hub.channel_stats()[0].history, 2);
    }

    #[test]
    fn history_is_bounded_without_subscribers() {
        let hub = new_hub(3, 1 << 20);
        for i in 0..10 {
            hub.publish(&[], &ev(&i.to_string()));
        }
        assert_eq!(hub.channel_stats()[0].history, 3);
    }

    #[test]
    fn close_drains_then_ends_and_disconnect_ends_one() {
        let hub = new_hub(10, 1 << 20);
        let mut a = sub(&hub, &[], None);
        let mut b = sub(&hub, &[], None);
        hub.publish(&[], &ev("before"));
        assert!(hub.disconnect(b.client().id()));
        hub.publish(&[], &ev("after"));
        assert_eq!(texts(b.read()), ["before"]);
        assert!(matches!(b.read(), Read::End));
        assert_eq!(b.end_reason(), EndReason::Disconnected);
        hub.publish(&[], &ev("last"));
        hub.close();
        assert_eq!(texts(a.read()), ["before", "after", "last"]);
        assert!(matches!(a.read(), Read::End));
        assert_eq!(a.end_reason(), EndReason::Shutdown);
    }

    fn history_of(hub: &Hub, name: &str) -> u64 {
        hub.channel_stats()
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.history)
    }

    #[test]
    fn a_caught_up_reader_lets_the_log_shrink_to_the_history_without_another_send() {
        let hub = new_hub(10, 1 << 20);
        let mut reader = sub(&hub, &["news"], None);
        for i in 0..15 {
            hub.publish(&["news"], &ev(&i.to_string()));
        }
        hub.round();
        assert_eq!(
            history_of(&hub, "news"),
            15,
            "the reader still needs all 15"
        );
        assert_eq!(texts(reader.read()).len(), 15);
        hub.round();
        assert_eq!(history_of(&hub, "news"), 10);
    }

    #[test]
    fn a_lagging_reader_that_leaves_lets_the_log_shrink_at_once() {
        let hub = new_hub(3, 1 << 20);
        let mut fast = sub(&hub, &[], None);
        let slow = sub(&hub, &[], None);
        for i in 0..20 {
            hub.publish(&[], &ev(&i.to_string()));
        }
        assert_eq!(texts(fast.read()).len(), 20);
        hub.round();
        assert_eq!(
            history_of(&hub, DEFAULT_CHANNEL),
            20,
            "held by the slow one"
        );
        drop(slow);
        hub.round();
        assert_eq!(history_of(&hub, DEFAULT_CHANNEL), 3);
        drop(fast);
        assert_eq!(
            history_of(&hub, DEFAULT_CHANNEL),
            3,
            "history stays for replay"
        );
    }

    #[test]
    fn explicit_ids_leave_with_their_events() {
        let hub = new_hub(2, 1 << 20);
        for i in 0..5 {
            let e = Event::message(i.to_string()).id(format!("e{i}")).unwrap();
            hub.publish(&[], &Payload::Event(e));
        }
        assert_eq!(hub.resolve(Some("e1"), &[]), (Start::Live, true));
        assert!(!hub.resolve(Some("e3"), &[]).1);
        let log = read(&hub.channel(DEFAULT_CHANNEL).log).ids.len();
        assert_eq!(log, 2);
    }

    #[test]
    fn a_private_queue_beyond_the_budget_evicts_instead_of_growing() {
        let hub = new_hub(0, 100);
        let s = Hub::subscribe(&hub, 7, &[], None, Arc::new(Progress::default())).0;
        let sixty = "x".repeat(60);
        assert!(hub.send_to(7, &ev(&sixty)));
        assert!(
            !s.client().is_evicted(),
            "a socket with room: not over budget yet"
        );
        assert!(
            !hub.send_to(7, &ev(&sixty)),
            "a second one would pass 100 bytes"
        );
        assert_eq!(s.client().eviction(), Some(Eviction::Budget));
        assert!(!hub.send_to(7, &ev("x")));
    }

    #[test]
    fn the_watchdog_counts_looks_without_progress_only_while_data_waits() {
        let hub = new_hub(10, 1 << 30);
        let progress = Arc::new(Progress::default());
        let (mut s, _) = hub.subscribe(1, &[], None, Arc::clone(&progress));
        let client = Arc::clone(s.client());
        // Nothing waiting: an idle client never stalls.
        assert!((0..10).all(|_| !client.stalled_for(3)));
        hub.publish(&[], &ev("a"));
        assert!(!client.stalled_for(3));
        assert!(!client.stalled_for(3));
        assert!(client.stalled_for(3), "third look without progress");
        // Taking the event is progress; written bytes are progress too.
        let Read::Events(batch) = s.read() else {
            panic!()
        };
        client.handed(batch[0].len() as u64);
        assert!(!client.stalled_for(3));
        assert!(!client.stalled_for(3), "handed, not written: data waits");
        progress.written.fetch_add(5, Ordering::Relaxed);
        assert!(!client.stalled_for(3), "the socket took some");
        assert!(!client.stalled_for(3));
        assert!(!client.stalled_for(3));
        assert!(client.stalled_for(3));
        progress
            .written
            .fetch_add(batch[0].len() as u64 - 5, Ordering::Relaxed);
        assert!(!client.stalled_for(3));
        assert!((0..10).all(|_| !client.stalled_for(3)), "all written");
    }

    #[test]
    fn over_http2_only_what_the_stream_takes_is_its_progress() {
        let hub = new_hub(10, 1 << 30);
        let progress = Arc::new(Progress::default());
        progress.multiplexed.store(true, Ordering::Relaxed);
        let (_s, _) = hub.subscribe(1, &[], None, Arc::clone(&progress));
        hub.publish(&[], &ev("a"));
        let client = hub.clients.read().unwrap().get(&1).cloned().unwrap();
        assert!(!client.stalled_for(2));
        // Other streams on the same connection keep the socket busy.
        progress.written.fetch_add(100, Ordering::Relaxed);
        assert!(client.stalled_for(2));
    }

    #[test]
    fn a_log_entry_is_a_number_and_a_pointer() {
        // History is `history` entries per channel: keep each one small.
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }

    #[test]
    fn a_stall_is_proven_by_one_look_more_than_the_limit_holds() {
        let s = Duration::from_secs(1);
        assert_eq!(stall_looks(30 * s, s), 31);
        assert_eq!(
            stall_looks(Duration::from_millis(250), Duration::from_millis(25)),
            11
        );
        assert_eq!(
            stall_looks(Duration::from_millis(5), Duration::from_millis(10)),
            2
        );
    }

    fn remote(n: u64, data: &str) -> (u64, Encoded) {
        let bytes = format!("id: 9-{n}\ndata: {data}\n\n");
        (n, Encoded::copy_from(bytes.as_bytes()))
    }

    fn remote_hub() -> Arc<Hub> {
        let hub = Hub::new_remote(Retention::default());
        hub.set_id_space(IdSpace {
            epoch: "9".into(),
            offset: 0,
        });
        hub
    }

    fn sub_from(
        hub: &Arc<Hub>,
        channels: &[&str],
        last: Option<&str>,
        floor: u64,
    ) -> (Subscriber, bool) {
        let names: Vec<String> = channels.iter().map(|s| s.to_string()).collect();
        hub.subscribe_from(hub.next_client_id(), &names, last, blocked(), floor)
    }

    #[test]
    fn remote_events_keep_the_backplane_numbers_and_a_changed_channel_set_refuses_them() {
        let hub = remote_hub();
        hub.start_at(10);
        let (mut a, _) = sub_from(&hub, &["a"], None, 0);
        let generation = hub.generation();
        let (n, bytes) = remote(11, "one");
        assert!(hub.publish_remote(generation, n, &["a"], bytes, None));
        assert_eq!(texts(a.read()), ["one"]);
        // A new channel: deliveries read before it existed are refused.
        let (_b, _) = sub_from(&hub, &["b"], None, 0);
        let (n, bytes) = remote(12, "two");
        assert!(!hub.publish_remote(generation, n, &["a"], bytes.clone(), None));
        assert!(matches!(a.read(), Read::Empty));
        assert!(hub.publish_remote(hub.generation(), n, &["a"], bytes, None));
        assert_eq!(texts(a.read()), ["two"]);
        assert_eq!(hub.auto_id(12), "9-12");
    }

    #[test]
    fn a_channel_new_here_starts_at_the_floor_and_its_ids_before_are_not_covered() {
        let hub = remote_hub();
        let (mut c, stale) = sub_from(&hub, &["news"], Some("9-3"), 20);
        assert!(
            stale,
            "nothing local covers 9-3: the backplane must replay it"
        );
        assert_eq!(c.last_gseq(), 20);
        assert_eq!(hub.channel_starts(), [("news".to_owned(), 20)]);
        // A client arriving live while the hub itself is behind the channel's
        // start starts with the channel, not before it.
        let (e, _) = sub_from(&hub, &["news"], None, 0);
        assert_eq!(e.last_gseq(), 20);
        drop(e);
        // The backplane's replay goes first, then live events after the floor.
        c.preload(vec![remote(4, "r4"), remote(19, "r19")]);
        let (n, bytes) = remote(21, "live");
        assert!(hub.publish_remote(hub.generation(), n, &["news"], bytes, None));
        assert_eq!(texts(c.read()), ["r4", "r19", "live"]);
        // A later client resuming inside what this hub has read is served locally.
        let (mut d, stale) = sub_from(&hub, &["news"], Some("9-20"), 0);
        assert!(!stale);
        assert_eq!(texts(d.read()), ["live"]);
        drop((c, d));
        assert!(
            hub.channel_starts().is_empty(),
            "forgotten without subscribers"
        );
    }

    #[test]
    fn direct_sends_in_remote_mode_follow_the_newest_event_without_a_number() {
        let hub = remote_hub();
        let (mut c, _) = sub_from(&hub, &["a"], None, 0);
        let (n, bytes) = remote(1, "first");
        assert!(hub.publish_remote(hub.generation(), n, &["a"], bytes, None));
        assert!(hub.send_to(c.client().id(), &ev("private")));
        let (n, bytes) = remote(2, "second");
        assert!(hub.publish_remote(hub.generation(), n, &["a"], bytes, None));
        assert_eq!(texts(c.read()), ["first", "private", "second"]);
    }

    #[test]
    fn the_first_eviction_reason_is_kept_and_counted_once() {
        let hub = new_hub(2, 1 << 20);
        let s = sub(&hub, &[], None);
        hub.disconnect(s.client().id());
        assert_eq!(s.client().eviction(), None, "a disconnect is no eviction");
        assert!(s.client().evict(Eviction::Stall));
        assert!(!s.client().evict(Eviction::Budget));
        assert!(!s.client().evict(Eviction::Gap));
        assert_eq!(s.client().eviction(), Some(Eviction::Stall));
        assert!(s.client().is_evicted() && s.client().disconnect_requested());
    }

    #[test]
    fn a_gap_makes_older_ids_stale_and_drops_the_channel_clients() {
        let hub = remote_hub();
        let (c, _) = sub_from(&hub, &["a"], None, 0);
        let (n, bytes) = remote(5, "five");
        assert!(hub.publish_remote(hub.generation(), n, &["a"], bytes, None));
        assert_eq!(hub.mark_gap("a", 8), 1);
        assert_eq!(c.client().eviction(), Some(Eviction::Gap));
        let (_d, stale) = sub_from(&hub, &["a"], Some("9-5"), 0);
        assert!(stale);
    }
}
