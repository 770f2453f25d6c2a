//! A connected client as the hub sees it: its cursors into its channels'
//! logs, its private queue, and its byte budget: the one check
//! ([`Client::must_drop`]) every transport and the fan-out make, and the
//! stall rule the watchdog applies.

use super::Channel;
use crate::event::Encoded;
use crate::io::Progress;
use atomic_waker::AtomicWaker;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a client was evicted (its stream ends with `EndReason::Slow`
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
    /// instance read them ([`Remote::mark_gap`](super::Remote::mark_gap)): this instance fell behind Redis.
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

/// The shared side of one connected client: what the hub, the fan-out task,
/// the client's stream and its connection all see.
pub struct Client {
    id: u64,
    pub(super) channels: Vec<Arc<Channel>>,
    /// Per channel: next local sequence number and byte offset consumed.
    pub(super) cursors: Vec<(AtomicU64, AtomicU64)>,
    /// Per channel: the channel's byte offset when the client subscribed.
    /// History it asked to replay (before this) is kept for everyone anyway,
    /// so only what was published after it counts against its budget.
    pub(super) joined_at: Vec<u64>,
    /// Slab keys in each channel's subscriber list, for removal.
    pub(super) slots: Mutex<Vec<usize>>,
    /// Events for this client alone, after global sequence number `.0`;
    /// `.2` says whether they count against its budget (a replay fetched
    /// from the backplane does not: it is history, like a log replay).
    pub(super) private: Mutex<VecDeque<(u64, Encoded, bool)>>,
    pub(super) private_bytes: AtomicU64,
    /// Bytes handed to the connection, framing included.
    handed: AtomicU64,
    /// What the connection reports about its socket.
    progress: Arc<Progress>,
    pub(super) budget: u64,
    /// The task polling the client's stream.
    pub(super) waker: AtomicWaker,
    /// The task supervising the client's connection, when that is another
    /// task (HTTP/2 streams are polled apart from their connection): told
    /// when the client is evicted.
    watcher: AtomicWaker,
    flags: AtomicU8,
    /// When a disconnect was asked for: the last sequence number still
    /// delivered before the stream ends.
    pub(super) stop_at: AtomicU64,
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
            + self.private_bytes.load(Ordering::Relaxed)
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
    pub(super) fn request_disconnect(&self, last: u64) {
        self.stop_at.fetch_min(last, Ordering::AcqRel);
        self.flags.fetch_or(DISCONNECT, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Whether `disconnect(id)` asked the stream to end.
    pub fn disconnect_requested(&self) -> bool {
        self.flags.load(Ordering::Acquire) & DISCONNECT != 0
    }

    /// The names of the channels this client reads.
    pub fn channel_names(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.name.to_string()).collect()
    }
}

impl Client {
    /// Client `id` reading `channels`, which it joined when their byte
    /// offsets stood at `joined_at`; its cursors are placed by the hub.
    pub(super) fn new(
        id: u64,
        channels: Vec<Arc<Channel>>,
        joined_at: Vec<u64>,
        progress: Arc<Progress>,
        budget: u64,
    ) -> Self {
        Client {
            id,
            cursors: channels
                .iter()
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
            channels,
            joined_at,
            slots: Mutex::new(Vec::new()),
            private: Mutex::new(VecDeque::new()),
            private_bytes: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            progress,
            budget,
            waker: AtomicWaker::new(),
            watcher: AtomicWaker::new(),
            flags: AtomicU8::new(0),
            stop_at: AtomicU64::new(u64::MAX),
            seen_progress: AtomicU64::new(0),
            stalled_looks: AtomicU32::new(0),
        }
    }

    /// Queues `bytes` for this client alone, after sequence number `gseq`,
    /// counted against its budget. A queue that would grow beyond the
    /// budget is not grown: the client is evicted instead (false), since
    /// this queue is memory of its own, unlike the shared logs.
    pub(super) fn queue_private(&self, gseq: u64, bytes: Encoded) -> bool {
        let len = bytes.len() as u64;
        if self.private_bytes.load(Ordering::Relaxed) + len > self.budget {
            self.evict(Eviction::Budget);
            return false;
        }
        self.private_bytes.fetch_add(len, Ordering::Relaxed);
        crate::sync::lock(&self.private).push_back((gseq, bytes, true));
        true
    }
}

/// How many looks `tick` apart without progress prove a stall of at least
/// `limit`: the first look may come right after the client's last progress,
/// so one more than `limit / tick`.
pub(super) fn stall_looks(limit: Duration, tick: Duration) -> u32 {
    let whole = limit.as_nanos().div_ceil(tick.as_nanos().max(1));
    u32::try_from(whole).unwrap_or(u32::MAX).saturating_add(1)
}

impl Client {
    /// One look of the watchdog: counts the looks in a row at which the
    /// client had data waiting and its progress had not moved since the
    /// previous look; true once there were `looks` of them.
    pub(super) fn stalled_for(&self, looks: u32) -> bool {
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
