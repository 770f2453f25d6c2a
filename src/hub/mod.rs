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
//!   here but arrive from the backplane's reader ([`remote`]).
//!
//! One idea per file: [`ids`] (automatic ids), `log` (a channel's log:
//! push, trim, lookups; the channel around it, with its subscribers, is
//! here), [`client`] (a client, its budget and the eviction rules),
//! [`subscriber`] (gather, merge, advance), `fanout` (the fan-out task and
//! the stall watchdog), [`remote`] (what only a backplane does).

pub mod client;
mod fanout;
pub mod ids;
mod log;
pub mod remote;
pub mod subscriber;

pub use client::{Client, Eviction};
pub use ids::IdSpace;
pub use remote::Remote;
pub use subscriber::{Read, Subscriber, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};

use crate::channel::normalize;
use crate::event::{Encoded, Payload};
use crate::io::Progress;
use crate::sync::{lock, read_lock, write_lock};
use log::Log;
use remote::Feed;
use slab::Slab;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

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

/// Where a reconnecting client starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After everything published so far: only new events.
    Live,
    /// Right after the event with this global sequence number.
    After(u64),
}

/// The event hub: channels, clients, the global sequence and the fan-out signal.
pub struct Hub {
    retention: Retention,
    /// How automatic ids are spelled and mapped to sequence numbers.
    ids: RwLock<IdSpace>,
    /// Whether events are numbered here or by a backplane ([`Feed`]).
    feed: Feed,
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

/// What a client subscribing asks for.
#[derive(Debug, Clone)]
pub struct Subscription<'a> {
    /// Its id, from [`Hub::next_client_id`].
    pub id: u64,
    /// Its channels (the default channel when empty).
    pub channels: &'a [String],
    /// The id it resumes after, if it reconnects.
    pub last_event_id: Option<&'a str>,
    /// What its connection reports about the socket, which its byte budget
    /// is measured against.
    pub progress: Arc<Progress>,
}

impl<'a> Subscription<'a> {
    /// Client `id` on `channels`, resuming after `last_event_id` if any,
    /// on a connection that reports `progress`.
    pub fn new(
        id: u64,
        channels: &'a [String],
        last_event_id: Option<&'a str>,
        progress: Arc<Progress>,
    ) -> Self {
        Subscription {
            id,
            channels,
            last_event_id,
            progress,
        }
    }
}

impl Hub {
    /// An empty, open hub that numbers its own events. Its background tasks
    /// are [`Hub::run_fanout`] and [`Hub::run_watchdog`].
    pub fn new(retention: Retention) -> Arc<Self> {
        Self::build(retention, IdSpace::fresh(), Feed::Local)
    }

    fn build(retention: Retention, ids: IdSpace, feed: Feed) -> Arc<Self> {
        Arc::new(Hub {
            retention,
            ids: RwLock::new(ids),
            feed,
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

    /// The channel, created when missing with its log complete after
    /// `floor` (or after `committed`, if later).
    fn channel(&self, name: &str, floor: u64) -> Arc<Channel> {
        if let Some(ch) = read_lock(&self.channels).get(name) {
            return Arc::clone(ch);
        }
        let mut channels = write_lock(&self.channels);
        let mut created = false;
        let ch = channels.entry(Arc::from(name)).or_insert_with(|| {
            created = true;
            let since = self.committed.load(Ordering::Acquire).max(floor);
            Arc::new(Channel::new(name, since))
        });
        let ch = Arc::clone(ch);
        drop(channels);
        if created {
            self.channels_changed();
        }
        ch
    }

    /// Bumps the channel set's version and tells a backplane reader.
    fn channels_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(notify) = self.on_channels_changed.get() {
            notify();
        }
    }

    /// The automatic id of global sequence number `gseq`.
    pub fn auto_id(&self, gseq: u64) -> String {
        read_lock(&self.ids).spell(gseq)
    }

    /// Fuzzing only (`cargo fuzz` builds with `--cfg fuzzing`): respells
    /// ids as a backplane does, on a local hub, so one target covers epochs
    /// and offsets against a model. Real hubs get this only through
    /// [`Remote::set_id_space`].
    #[cfg(fuzzing)]
    pub fn set_id_space(&self, ids: IdSpace) {
        *write_lock(&self.ids) = ids;
    }

    /// Every sequence number up to this one is delivered to the logs.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// The payload's bytes (with an automatic id when it has none and
    /// history is on), and its explicit id for `Last-Event-ID` lookups.
    fn encode(&self, gseq: u64, payload: &Payload) -> (Encoded, Option<Arc<str>>) {
        let bytes = payload.encode(|| (self.retention.history > 0).then(|| self.auto_id(gseq)));
        (bytes, payload.explicit_id().map(Arc::from))
    }

    /// Publishes to `channels` (deduplicated; empty means the default channel).
    /// Returns the event's global sequence number.
    pub fn publish(&self, channels: &[&str], payload: &Payload) -> u64 {
        // Channels are looked up under the publish lock, which is also what an
        // unsubscribing client holds to remove an empty channel: an event can
        // never land in a channel that was just dropped from the map.
        let mut next = lock(&self.publish);
        let targets: Vec<Arc<Channel>> = normalize(channels)
            .into_iter()
            .map(|c| self.channel(c, 0))
            .collect();
        let gseq = *next;
        *next += 1;
        let (bytes, id) = self.encode(gseq, payload);
        self.commit(next, targets, gseq, bytes, id);
        gseq
    }

    /// Appends event `gseq` to `targets` and commits it, under the publish
    /// lock (`next`, released here), then pokes the fan-out.
    fn commit(
        &self,
        next: MutexGuard<'_, u64>,
        targets: Vec<Arc<Channel>>,
        gseq: u64,
        bytes: Encoded,
        id: Option<Arc<str>>,
    ) {
        for ch in &targets {
            ch.append(gseq, bytes.clone(), id.clone(), self.retention.history);
        }
        self.committed.fetch_max(gseq, Ordering::AcqRel);
        drop(next);
        self.schedule(targets);
    }

    /// Queues a payload for one client only. False when no such client is
    /// connected, and when its private queue would grow beyond its byte
    /// budget: that queue is memory of its own (unlike the shared logs), so a
    /// client that far behind is evicted instead.
    pub fn send_to(&self, client_id: u64, payload: &Payload) -> bool {
        let Some(client) = read_lock(&self.clients).get(&client_id).cloned() else {
            return false;
        };
        if client.is_evicted() || client.disconnect_requested() {
            return false;
        }
        let mut next = lock(&self.publish);
        let numbered = self.feed.numbers_private_sends();
        let gseq = if numbered { *next } else { *next - 1 };
        let (bytes, _) = self.encode(gseq, payload);
        if !client.queue_private(gseq, bytes) {
            return false;
        }
        if numbered {
            *next += 1;
        }
        self.committed.store(gseq, Ordering::Release);
        drop(next);
        // Private sends bypass the fan-out task, so the budget is checked here.
        client.must_drop();
        client.waker.wake();
        true
    }

    /// Asks one client's stream to end. False when no such client is connected.
    pub fn disconnect(&self, client_id: u64) -> bool {
        let Some(client) = read_lock(&self.clients).get(&client_id).cloned() else {
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
        let names = normalize(channels);
        let chans: Vec<Arc<Channel>> = {
            let map = read_lock(&self.channels);
            names.iter().filter_map(|c| map.get(*c).cloned()).collect()
        };
        // A cache answers only when every channel is here and was read
        // since before the id.
        let cache = self.feed.logs_are_a_cache();
        if cache && chans.len() < names.len() {
            return (Start::Live, true);
        }
        // An explicit id sent more than once means its newest event in any
        // of the channels, whatever order they are named in.
        let gseq = self.parse_auto_id(id).or_else(|| {
            chans
                .iter()
                .filter_map(|ch| read_lock(&ch.log).find_id(id))
                .max()
        });
        match gseq {
            Some(g)
                if chans.iter().all(|ch| {
                    ch.trimmed_gseq.load(Ordering::Acquire) <= g && (!cache || ch.since <= g)
                }) =>
            {
                (Start::After(g), false)
            }
            _ => (Start::Live, true),
        }
    }

    /// The global number an automatic id names, when it is one of this
    /// hub's and was issued already.
    fn parse_auto_id(&self, id: &str) -> Option<u64> {
        let seq = read_lock(&self.ids).parse(id)?;
        (seq <= self.committed.load(Ordering::Acquire)).then_some(seq)
    }

    /// A fresh client id, handed out before the client subscribes so that a
    /// connect hook can see it.
    pub fn next_client_id(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }

    /// Subscribes a client to its channels. With a `last_event_id` it
    /// resumes right after that event when the history still covers it, and
    /// starts live otherwise, reporting the id as stale (true).
    pub fn subscribe(self: &Arc<Self>, request: Subscription<'_>) -> (Subscriber, bool) {
        self.subscribe_at(request, 0)
    }

    /// [`Hub::subscribe`], with new channels and a live start placed after
    /// `floor` ([`Remote::subscribe`]; 0 for a local hub).
    fn subscribe_at(self: &Arc<Self>, request: Subscription<'_>, floor: u64) -> (Subscriber, bool) {
        let names = normalize(request.channels);
        // Hold the publish lock while placing cursors, so nothing is published
        // between "where the client starts" and "the client is listening".
        let publish = lock(&self.publish);
        let chans: Vec<Arc<Channel>> = names.iter().map(|n| self.channel(n, floor)).collect();
        let owned: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let resolved = self.resolve(request.last_event_id, &owned);
        let (client, start, stale) = self.join(request, chans, resolved);
        // With a backplane a channel can start ahead of what this hub has read
        // (created for a client that came when the backplane was further on):
        // a live start before it would miss that channel's events in between.
        let floor = client
            .channels
            .iter()
            .map(|ch| ch.since)
            .fold(floor, u64::max);
        let horizon = self.committed.load(Ordering::Acquire).max(floor);
        drop(publish);
        write_lock(&self.clients).insert(client.id(), Arc::clone(&client));
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

    /// Makes the client and joins it to `chans` where `resolved` says it
    /// starts (live instead when a channel was trimmed past its id since):
    /// returns it, where it starts, and whether its id was stale. Each
    /// cursor is placed and the client joins the channel under that
    /// channel's log lock, and leaves its cursor in the join floor, so a
    /// concurrent trim cannot drop what it is about to read. Called under
    /// the publish lock.
    fn join(
        &self,
        request: Subscription<'_>,
        chans: Vec<Arc<Channel>>,
        resolved: (Start, bool),
    ) -> (Arc<Client>, Start, bool) {
        let mut guards: Vec<_> = chans.iter().map(|ch| read_lock(&ch.log)).collect();
        let joined_at = chans
            .iter()
            .map(|ch| ch.appended.load(Ordering::Acquire))
            .collect();
        let (mut start, mut stale) = resolved;
        if let Start::After(g) = start {
            if chans
                .iter()
                .any(|ch| ch.trimmed_gseq.load(Ordering::Acquire) > g)
            {
                (start, stale) = (Start::Live, true);
            }
        }
        let client = Arc::new(Client::new(
            request.id,
            chans.clone(),
            joined_at,
            request.progress,
            self.retention.max_buffered_bytes,
        ));
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
            slots.push(write_lock(&ch.subscribers).insert((Arc::clone(&client), i)));
            ch.join_floor.fetch_min(seq, Ordering::AcqRel);
        }
        drop(guards);
        *lock(&client.slots) = slots;
        (client, start, stale)
    }

    /// Ends every stream once it has written what was published before: each
    /// client reads [`Read::Close`] when caught up. Idempotent.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for client in read_lock(&self.clients).values() {
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
        read_lock(&self.clients).len()
    }

    /// Subscribers and history size of every channel, sorted by name.
    pub fn channel_stats(&self) -> Vec<ChannelStats> {
        let mut out: Vec<ChannelStats> = read_lock(&self.channels)
            .values()
            .map(|ch| ChannelStats {
                name: ch.name.to_string(),
                subscribers: read_lock(&ch.subscribers).len() as u64,
                history: read_lock(&ch.log).entries.len() as u64,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// One channel: its log and the clients subscribed to it.
struct Channel {
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

impl Channel {
    /// An empty channel whose log is complete after sequence number `since`.
    fn new(name: &str, since: u64) -> Self {
        Channel {
            name: Arc::from(name),
            since,
            log: RwLock::new(Log::new()),
            appended: AtomicU64::new(0),
            trimmed_gseq: AtomicU64::new(0),
            subscribers: RwLock::new(Slab::new()),
            join_floor: AtomicU64::new(u64::MAX),
            dirty: AtomicBool::new(false),
            trim_due: AtomicBool::new(false),
        }
    }

    /// Appends one event (its global number, bytes and explicit id) and,
    /// without subscribers, trims to `history` at once.
    fn append(&self, gseq: u64, bytes: Encoded, id: Option<Arc<str>>, history: usize) {
        let mut log = write_lock(&self.log);
        let end = self.appended.load(Ordering::Relaxed) + bytes.len() as u64;
        log.push(gseq, bytes, id);
        self.appended.store(end, Ordering::Release);
        // Without subscribers nobody needs more than the history; with them,
        // the fan-out task trims to what the slowest one still needs.
        if read_lock(&self.subscribers).is_empty() {
            self.trim_locked(&mut log, u64::MAX, history);
        }
    }

    /// Drops entries every subscriber has read (`slowest` is the smallest
    /// cursor), keeping at least the newest `history` entries.
    fn trim_locked(&self, log: &mut Log, slowest: u64, history: usize) {
        if let Some(gseq) = log.trim(slowest, history) {
            self.trimmed_gseq.store(gseq, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::client::stall_looks;
    use super::log::Entry;
    use super::*;
    use crate::channel::DEFAULT_CHANNEL;
    use crate::event::Event;

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
        hub.subscribe(Subscription {
            id: hub.next_client_id(),
            channels: &names,
            last_event_id,
            progress: blocked(),
        })
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
    fn sends_to_one_client_reach_it_in_order_with_channel_events() {
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
        let ch = hub.channel(DEFAULT_CHANNEL, 0);
        hub.fan_out(&ch, true);
        assert_eq!(slow.client().eviction(), Some(Eviction::Budget));
        assert_eq!(fast.client().eviction(), None);
        assert!(matches!(slow.read(), Read::Lagged));
        // The slow client no longer holds the log back.
        assert_eq!(read_lock(&ch.log).entries.len(), 2);
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
        hub.fan_out(&hub.channel(DEFAULT_CHANNEL, 0), true);
        assert_eq!(texts(replay.read()), ["5", "6", "7", "8", "9"]);
        hub.fan_out(&hub.channel(DEFAULT_CHANNEL, 0), true);
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
        assert!(matches!(b.read(), Read::Close));
        assert!(b.client().disconnect_requested() && !b.hub_is_closed());
        hub.publish(&[], &ev("last"));
        hub.close();
        assert_eq!(texts(a.read()), ["before", "after", "last"]);
        assert!(matches!(a.read(), Read::Close));
        assert!(!a.client().disconnect_requested() && a.hub_is_closed());
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
        let log = read_lock(&hub.channel(DEFAULT_CHANNEL, 0).log).ids.len();
        assert_eq!(log, 2);
    }

    #[test]
    fn a_private_queue_beyond_the_budget_evicts_instead_of_growing() {
        let hub = new_hub(0, 100);
        let s = hub
            .subscribe(Subscription {
                id: 7,
                channels: &[],
                last_event_id: None,
                progress: Arc::new(Progress::default()),
            })
            .0;
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
        let (mut s, _) = hub.subscribe(Subscription {
            id: 1,
            channels: &[],
            last_event_id: None,
            progress: Arc::clone(&progress),
        });
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
        let (_s, _) = hub.subscribe(Subscription {
            id: 1,
            channels: &[],
            last_event_id: None,
            progress: Arc::clone(&progress),
        });
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

    fn event_at(n: u64, data: &str) -> (u64, Encoded) {
        let bytes = format!("id: 9-{n}\ndata: {data}\n\n");
        (n, Encoded::copy_from(bytes.as_bytes()))
    }

    /// A hub fed by a backplane, and the backplane's handle on it.
    fn remote_hub() -> (Arc<Hub>, Remote) {
        let remote = Hub::new_remote(Retention::default());
        remote.set_id_space(IdSpace {
            epoch: "9".into(),
            offset: 0,
        });
        (Arc::clone(remote.hub()), remote)
    }

    fn sub_from(
        remote: &Remote,
        channels: &[&str],
        last: Option<&str>,
        floor: u64,
    ) -> (Subscriber, bool) {
        let names: Vec<String> = channels.iter().map(|s| s.to_string()).collect();
        let request = Subscription {
            id: remote.hub().next_client_id(),
            channels: &names,
            last_event_id: last,
            progress: blocked(),
        };
        remote.subscribe(request, floor)
    }

    #[test]
    fn remote_events_keep_the_backplane_numbers_and_a_changed_channel_set_refuses_them() {
        let (hub, remote) = remote_hub();
        remote.start_at(10);
        let (mut a, _) = sub_from(&remote, &["a"], None, 0);
        let generation = remote.generation();
        let (n, bytes) = event_at(11, "one");
        assert!(remote.publish(generation, n, &["a"], bytes, None));
        assert_eq!(texts(a.read()), ["one"]);
        // A new channel: deliveries read before it existed are refused.
        let (_b, _) = sub_from(&remote, &["b"], None, 0);
        let (n, bytes) = event_at(12, "two");
        assert!(!remote.publish(generation, n, &["a"], bytes.clone(), None));
        assert!(matches!(a.read(), Read::Empty));
        assert!(remote.publish(remote.generation(), n, &["a"], bytes, None));
        assert_eq!(texts(a.read()), ["two"]);
        assert_eq!(hub.auto_id(12), "9-12");
    }

    #[test]
    fn a_channel_new_here_starts_at_the_floor_and_its_ids_before_are_not_covered() {
        let (_, remote) = remote_hub();
        let (mut c, stale) = sub_from(&remote, &["news"], Some("9-3"), 20);
        assert!(
            stale,
            "nothing local covers 9-3: the backplane must replay it"
        );
        assert_eq!(c.last_gseq(), 20);
        assert_eq!(remote.channel_starts(), [("news".to_owned(), 20)]);
        // A client arriving live while the hub itself is behind the channel's
        // start starts with the channel, not before it.
        let (e, _) = sub_from(&remote, &["news"], None, 0);
        assert_eq!(e.last_gseq(), 20);
        drop(e);
        // The backplane's replay goes first, then live events after the floor.
        remote.preload(&mut c, vec![event_at(4, "r4"), event_at(19, "r19")]);
        let (n, bytes) = event_at(21, "live");
        assert!(remote.publish(remote.generation(), n, &["news"], bytes, None));
        assert_eq!(texts(c.read()), ["r4", "r19", "live"]);
        // A later client resuming inside what this hub has read is served locally.
        let (mut d, stale) = sub_from(&remote, &["news"], Some("9-20"), 0);
        assert!(!stale);
        assert_eq!(texts(d.read()), ["live"]);
        drop((c, d));
        assert!(
            remote.channel_starts().is_empty(),
            "forgotten without subscribers"
        );
    }

    #[test]
    fn sends_to_one_client_with_a_backplane_follow_the_newest_event_without_a_number() {
        let (hub, remote) = remote_hub();
        let (mut c, _) = sub_from(&remote, &["a"], None, 0);
        let (n, bytes) = event_at(1, "first");
        assert!(remote.publish(remote.generation(), n, &["a"], bytes, None));
        assert!(hub.send_to(c.client().id(), &ev("private")));
        let (n, bytes) = event_at(2, "second");
        assert!(remote.publish(remote.generation(), n, &["a"], bytes, None));
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
        let (_, remote) = remote_hub();
        let (c, _) = sub_from(&remote, &["a"], None, 0);
        let (n, bytes) = event_at(5, "five");
        assert!(remote.publish(remote.generation(), n, &["a"], bytes, None));
        assert_eq!(remote.mark_gap("a", 8), 1);
        assert_eq!(c.client().eviction(), Some(Eviction::Gap));
        let (_d, stale) = sub_from(&remote, &["a"], Some("9-5"), 0);
        assert!(stale);
    }
}
