//! The hub: one log of encoded events, read by every subscriber through its
//! own cursor.
//!
//! History, fan-out and backpressure are one structure. `publish` appends an
//! event's bytes to the log under a short write lock and assigns it the next
//! sequence number; it never touches a subscriber, so its cost on the caller's
//! thread does not grow with the number of clients. A dedicated fan-out task
//! then wakes the subscribers that are waiting, on tokio's threads. Each
//! subscriber is a cursor (the next sequence number it needs): it reads every
//! entry from its cursor on, in log order, cloning the shared `Bytes` by
//! reference count. Nothing is copied per client.
//!
//! The log keeps the last `history` events, and beyond that as many older
//! events as the byte budget of a lagging subscriber may need. A subscriber
//! whose cursor falls off the front of the log is over its budget: it is told
//! it [`Read::Lagged`] so its connection can be closed, instead of letting an
//! unread backlog grow without bound.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

/// How much of the past the log keeps.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Events always kept, whatever their size.
    pub history: usize,
    /// Bytes a subscriber may lag behind the newest event before it is
    /// dropped as too slow. While anyone is subscribed, the log keeps at least
    /// this many bytes so that a subscriber within budget never misses one.
    pub max_buffered_bytes: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            history: 1000,
            max_buffered_bytes: 1024 * 1024,
        }
    }
}

/// The shared event log plus the signals that wake its readers.
pub struct Hub {
    log: RwLock<Log>,
    retention: Retention,
    /// Subscribers wait here for new entries or for the hub to close.
    wake: Arc<Notify>,
    /// Publishers poke the fan-out task here; permits coalesce, so a burst of
    /// sends costs one round of wake-ups, not one per event.
    pending: Notify,
    closed: AtomicBool,
    subscribers: AtomicUsize,
    /// Mirror of the log's first sequence number, readable without the lock.
    oldest: AtomicU64,
}

struct Log {
    entries: VecDeque<Bytes>,
    /// Sequence number of `entries[0]`; sequence numbers start at 1.
    first_seq: u64,
    bytes: usize,
}

impl Log {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }
}

/// What a subscriber finds when it looks at the log.
#[derive(Debug)]
pub enum Read {
    /// Entries after the cursor, oldest first; the cursor has moved past them.
    Events(Vec<Bytes>),
    /// Nothing new yet.
    Empty,
    /// The cursor fell off the front of the log: the subscriber lagged by more
    /// than its byte budget and must be disconnected.
    Lagged,
    /// The hub is closing: the stream should end.
    Closed,
}

/// The most entries one read hands out, so that one subscriber's catch-up
/// cannot hold the read lock for long or build one huge write.
pub const MAX_BATCH_EVENTS: usize = 256;
/// The most bytes one read hands out (a single larger event still goes whole).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

impl Hub {
    /// An empty, open hub. Its fan-out task is [`Hub::run_fanout`], which the
    /// server spawns once it has a runtime.
    pub fn new(retention: Retention) -> Arc<Self> {
        Arc::new(Hub {
            log: RwLock::new(Log {
                entries: VecDeque::new(),
                first_seq: 1,
                bytes: 0,
            }),
            retention,
            wake: Arc::new(Notify::new()),
            pending: Notify::new(),
            closed: AtomicBool::new(false),
            subscribers: AtomicUsize::new(0),
            oldest: AtomicU64::new(1),
        })
    }

    /// Appends one encoded event and returns its sequence number. O(1) in the
    /// number of subscribers: waking them is the fan-out task's job.
    pub fn publish(&self, bytes: Bytes) -> u64 {
        let seq = {
            let mut log = self.log.write().unwrap_or_else(|e| e.into_inner());
            log.bytes += bytes.len();
            log.entries.push_back(bytes);
            let seq = log.next_seq() - 1;
            self.trim(&mut log);
            seq
        };
        self.pending.notify_one();
        seq
    }

    /// Drops old entries nobody may still need: beyond `history`, and beyond the
    /// byte budget of a lagging subscriber when there are subscribers at all.
    fn trim(&self, log: &mut Log) {
        let keep_bytes = if self.subscribers.load(Ordering::Relaxed) > 0 {
            self.retention.max_buffered_bytes
        } else {
            0
        };
        while log.entries.len() > self.retention.history {
            let front = log.entries[0].len();
            if log.bytes - front < keep_bytes {
                break;
            }
            log.entries.pop_front();
            log.first_seq += 1;
            log.bytes -= front;
        }
        self.oldest.store(log.first_seq, Ordering::Relaxed);
    }

    /// A new subscriber whose cursor starts after the newest entry: it sees
    /// every event published from now on, and nothing older.
    pub fn subscribe(self: &Arc<Self>) -> Subscriber {
        self.subscribe_with(Arc::default())
    }

    /// Like [`Hub::subscribe`], publishing the cursor through `position` so
    /// that the connection can notice a lagging subscriber even while hyper
    /// is not polling its stream (because the client stopped reading).
    pub fn subscribe_with(self: &Arc<Self>, position: Arc<Position>) -> Subscriber {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        let cursor = self
            .log
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .next_seq();
        position.set(cursor);
        Subscriber {
            hub: Arc::clone(self),
            cursor,
            position,
        }
    }

    /// Whether the subscriber behind `position` has fallen off the front of
    /// the log, i.e. lags by more than its byte budget.
    pub fn is_lagging(&self, position: &Position) -> bool {
        position
            .get()
            .is_some_and(|cursor| cursor < self.oldest.load(Ordering::Relaxed))
    }

    /// How many subscribers are attached right now.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// How many events the log holds right now.
    pub fn len(&self) -> usize {
        self.log
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    /// Whether the log holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends every subscription: each subscriber reads [`Read::Closed`] once it
    /// has been woken. Idempotent.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
        self.pending.notify_one();
    }

    /// Whether [`Hub::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The handle subscribers wait on.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// The fan-out task: each time something was published, wake every waiting
    /// subscriber. Runs until the hub closes.
    pub async fn run_fanout(self: Arc<Self>) {
        loop {
            self.pending.notified().await;
            self.wake.notify_waiters();
            if self.is_closed() {
                return;
            }
        }
    }
}

/// One reader of the hub's log: a cursor and the hub it points into. Dropping
/// it detaches it, which lets the log forget what only it still needed.
pub struct Subscriber {
    hub: Arc<Hub>,
    cursor: u64,
    position: Arc<Position>,
}

/// A subscriber's cursor as seen from outside its stream, plus a once-only
/// eviction mark so a slow client is counted exactly once.
#[derive(Debug, Default)]
pub struct Position {
    /// The next sequence number the subscriber needs; 0 when not subscribed
    /// (sequence numbers start at 1).
    cursor: AtomicU64,
    evicted: AtomicBool,
}

impl Position {
    fn set(&self, cursor: u64) {
        self.cursor.store(cursor, Ordering::Relaxed);
    }

    /// The cursor, if a subscriber is attached.
    pub fn get(&self) -> Option<u64> {
        match self.cursor.load(Ordering::Relaxed) {
            0 => None,
            c => Some(c),
        }
    }

    /// Marks the subscriber as evicted; true only for the first caller.
    pub fn mark_evicted(&self) -> bool {
        !self.evicted.swap(true, Ordering::Relaxed)
    }
}

impl Subscriber {
    /// Takes everything after the cursor (up to [`MAX_BATCH_EVENTS`] entries or
    /// [`MAX_BATCH_BYTES`] bytes) and advances the cursor past it.
    /// Events published before the hub closed are still handed out; only
    /// then does the subscriber read [`Read::Closed`].
    pub fn read(&mut self) -> Read {
        let log = self.hub.log.read().unwrap_or_else(|e| e.into_inner());
        if self.cursor < log.first_seq {
            return Read::Lagged;
        }
        let start = (self.cursor - log.first_seq) as usize;
        if start >= log.entries.len() {
            return if self.hub.is_closed() {
                Read::Closed
            } else {
                Read::Empty
            };
        }
        let mut batch = Vec::with_capacity((log.entries.len() - start).min(MAX_BATCH_EVENTS));
        let mut bytes = 0;
        for entry in log.entries.range(start..) {
            if !batch.is_empty()
                && (batch.len() == MAX_BATCH_EVENTS || bytes + entry.len() > MAX_BATCH_BYTES)
            {
                break;
            }
            bytes += entry.len();
            batch.push(entry.clone());
        }
        self.cursor += batch.len() as u64;
        self.position.set(self.cursor);
        Read::Events(batch)
    }

    /// The hub this subscriber reads.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The cursor as published to the connection.
    pub fn position(&self) -> &Position {
        &self.position
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.position.set(0);
        self.hub.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn events(read: Read) -> Vec<Bytes> {
        match read {
            Read::Events(v) => v,
            other => panic!("expected events, got {other:?}"),
        }
    }

    #[test]
    fn subscriber_sees_only_what_is_published_after_it_subscribed() {
        let hub = Hub::new(Retention::default());
        hub.publish(bytes("old"));
        let mut sub = hub.subscribe();
        assert!(matches!(sub.read(), Read::Empty));
        hub.publish(bytes("a"));
        hub.publish(bytes("b"));
        assert_eq!(events(sub.read()), vec![bytes("a"), bytes("b")]);
        assert!(matches!(sub.read(), Read::Empty));
    }

    #[test]
    fn every_subscriber_shares_the_same_allocation() {
        let hub = Hub::new(Retention::default());
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        hub.publish(bytes("shared"));
        let (ea, eb) = (events(a.read()), events(b.read()));
        assert_eq!(ea[0].as_ptr(), eb[0].as_ptr());
    }

    #[test]
    fn history_is_bounded_without_subscribers() {
        let hub = Hub::new(Retention {
            history: 3,
            max_buffered_bytes: 1 << 20,
        });
        for i in 0..10 {
            hub.publish(bytes(&i.to_string()));
        }
        assert_eq!(hub.len(), 3);
    }

    #[test]
    fn a_subscriber_past_its_byte_budget_is_lagged() {
        let hub = Hub::new(Retention {
            history: 2,
            max_buffered_bytes: 10,
        });
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        for _ in 0..3 {
            hub.publish(bytes("12345"));
            assert_eq!(events(fast.read()).len(), 1);
        }
        // 15 bytes behind with a 10-byte budget: the oldest entry is gone.
        assert!(hub.is_lagging(&slow.position));
        assert!(!hub.is_lagging(&fast.position));
        assert!(matches!(slow.read(), Read::Lagged));
        assert!(matches!(fast.read(), Read::Empty));
    }

    #[test]
    fn a_subscriber_within_budget_loses_nothing() {
        let hub = Hub::new(Retention {
            history: 1,
            max_buffered_bytes: 100,
        });
        let mut sub = hub.subscribe();
        for i in 0..20 {
            hub.publish(bytes(&format!("{i:04}")));
        }
        assert!(!hub.is_lagging(&sub.position));
        let got = events(sub.read());
        assert_eq!(got.len(), 20);
        assert_eq!(got[19], bytes("0019"));
    }

    #[test]
    fn reads_are_batched() {
        let hub = Hub::new(Retention {
            history: 10_000,
            max_buffered_bytes: 1 << 20,
        });
        let mut sub = hub.subscribe();
        for _ in 0..(MAX_BATCH_EVENTS + 5) {
            hub.publish(bytes("x"));
        }
        assert_eq!(events(sub.read()).len(), MAX_BATCH_EVENTS);
        assert_eq!(events(sub.read()).len(), 5);
    }

    #[test]
    fn close_drains_then_ends_every_subscription_and_drop_detaches() {
        let hub = Hub::new(Retention::default());
        let mut sub = hub.subscribe();
        assert_eq!(hub.subscriber_count(), 1);
        hub.publish(bytes("last"));
        hub.close();
        assert_eq!(events(sub.read()), vec![bytes("last")]);
        assert!(matches!(sub.read(), Read::Closed));
        drop(sub);
        assert_eq!(hub.subscriber_count(), 0);
    }
}
