//! Counters the server keeps about itself, readable at any time without
//! stopping anything: every field is an independent relaxed atomic.

use crate::hub::Eviction;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared by the accept loop, every stream and `send`.
#[derive(Debug, Default)]
pub struct Stats {
    connections: AtomicU64,
    total_connections: AtomicU64,
    events_sent: AtomicU64,
    comments_sent: AtomicU64,
    deliveries: AtomicU64,
    bytes_sent: AtomicU64,
    /// Per [`Eviction`], at its [`Eviction::index`].
    evicted: [AtomicU64; Eviction::ALL.len()],
    denied: AtomicU64,
}

/// Evictions split by why they happened: the total alone cannot tell a
/// budget that is too small from frozen tabs or an instance behind Redis.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evictions(pub [u64; Eviction::ALL.len()]);

impl Evictions {
    /// The count for one reason.
    pub fn get(&self, why: Eviction) -> u64 {
        self.0[why.index()]
    }

    /// Every eviction, whatever its reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Event streams open right now.
    pub connections: u64,
    /// Event streams ever opened.
    pub total_connections: u64,
    /// Events accepted by `send`, each counted once however many clients get it.
    pub events_sent: u64,
    /// Comments accepted by `comment`.
    pub comments_sent: u64,
    /// Events and comments handed to client connections, one per client.
    pub deliveries: u64,
    /// Stream bytes handed to client connections, summed over clients
    /// (event bytes, heartbeats and retry hints; not HTTP framing).
    pub bytes_sent: u64,
    /// Streams closed because the client fell too far behind: the sum of
    /// `evictions`.
    pub evicted: u64,
    /// The same streams, by reason.
    pub evictions: Evictions,
    /// Stream requests refused (connect hook, CORS, connection limits).
    pub denied: u64,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let evictions = Evictions(self.evicted.each_ref().map(get));
        StatsSnapshot {
            connections: get(&self.connections),
            total_connections: get(&self.total_connections),
            events_sent: get(&self.events_sent),
            comments_sent: get(&self.comments_sent),
            deliveries: get(&self.deliveries),
            bytes_sent: get(&self.bytes_sent),
            evicted: evictions.total(),
            evictions,
            denied: get(&self.denied),
        }
    }

    /// A stream opened; the returned guard closes it in the counters when dropped,
    /// however the stream ends.
    pub fn stream_opened(self: &std::sync::Arc<Self>) -> OpenStream {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.total_connections.fetch_add(1, Ordering::Relaxed);
        OpenStream(std::sync::Arc::clone(self))
    }

    pub(crate) fn event_accepted(&self) {
        self.events_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn comment_accepted(&self) {
        self.comments_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn delivered(&self, items: u64, bytes: u64) {
        self.deliveries.fetch_add(items, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn wrote(&self, bytes: u64) {
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn evicted(&self, why: Eviction) {
        self.evicted[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn denied(&self) {
        self.denied.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts one open stream for as long as it lives.
#[derive(Debug)]
pub struct OpenStream(std::sync::Arc<Stats>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
