//! The reader task: one blocking `XREAD` per instance over the streams of
//! every channel the local hub has, feeding the hub in global order.
//!
//! Each stream is read from its own position: the last entry delivered from
//! it, or for a channel new here, the backplane's position when its first
//! client arrived (the channel's `since`). One reply is a snapshot of every
//! stream read, so merging it by number keeps the global order. A channel
//! created while a reply is being delivered would be read from a position
//! already overtaken, so the hub refuses deliveries once its channel set
//! changed ([`Remote::publish`](crate::hub::Remote::publish)), and the
//! reader reads again with the new set. A blocked `XREAD` is cut short with
//! `CLIENT UNBLOCK` for that ([`unblock`]).

use super::endpoint::Connection;
use super::keys::{self, Entry};
use super::{Backoff, Inner};
use crate::hub::IdSpace;
use redis::{Cmd, RedisError, RedisResult, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Entries per stream per read: bounds one reply while catching up.
const COUNT: usize = 1000;
/// How long one `XREAD` waits for something new before asking again.
const BLOCK: Duration = Duration::from_secs(2);

/// Runs until the backplane stops.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut reader = Reader::new(inner);
    while !reader.inner.stopped() {
        let Some(conn) = reader.connection().await else {
            continue;
        };
        if !reader.round(conn).await {
            return;
        }
    }
}

/// What the reader keeps from one round to the next.
struct Reader {
    inner: Arc<Inner>,
    /// The connection, while it works.
    conn: Option<Connection>,
    /// Whether a connection was made before: the next one is a reconnection.
    connected_before: bool,
    /// Per channel: the number of the last entry delivered (or its start).
    positions: HashMap<String, u64>,
    backoff: Backoff,
    stop: watch::Receiver<bool>,
    changes: watch::Receiver<u64>,
}

/// What one round reads: the hub's channels (with their `since`) as of
/// `generation`, and the id space, read once so that the deliveries and
/// the ids they carry agree.
struct Round {
    generation: u64,
    channels: Vec<(String, u64)>,
    ids: IdSpace,
}

impl Reader {
    fn new(inner: Arc<Inner>) -> Self {
        Reader {
            conn: None,
            connected_before: false,
            positions: HashMap::new(),
            backoff: Backoff::new(),
            stop: inner.stop.subscribe(),
            changes: inner.channels_changed.subscribe(),
            inner,
        }
    }

    /// The working connection, or a new one; `None` (after a backoff) when
    /// Redis cannot be reached.
    async fn connection(&mut self) -> Option<Connection> {
        if let Some(conn) = self.conn.take() {
            return Some(conn);
        }
        let inner = &self.inner;
        match connect(inner, &mut self.positions).await {
            Ok(conn) => {
                if self.connected_before {
                    inner.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                self.connected_before = true;
                Some(conn)
            }
            Err(e) => {
                inner.failed(&inner.reader_ok, "cannot reach Redis to read", &e);
                self.backoff.wait(inner).await;
                None
            }
        }
    }

    /// One round on `conn`: one `XREAD` over the current channel set and
    /// its delivery, or, without channels, a wait for some. False when the
    /// backplane stopped meanwhile.
    async fn round(&mut self, mut conn: Connection) -> bool {
        let round = self.begin();
        if round.channels.is_empty() {
            self.idle(conn).await;
            return true;
        }
        let streams: HashMap<String, &str> = round
            .channels
            .iter()
            .map(|(n, _)| (self.inner.keys.stream(n), n.as_str()))
            .collect();
        let cmd = xread(&streams, &self.positions, &round.ids.epoch);
        let Some(reply) = self.read(&mut conn, &cmd).await else {
            return false;
        };
        match reply {
            Ok(value) => {
                deliver(
                    &self.inner,
                    &streams,
                    round.generation,
                    &mut self.positions,
                    &round.ids,
                    value,
                );
                self.read_fine(conn);
            }
            Err(e) => {
                self.inner
                    .failed(&self.inner.reader_ok, "reading from Redis failed", &e);
                self.backoff.wait(&self.inner).await;
            }
        }
        true
    }

    /// No channel, nothing to read: keeps the connection and waits for the
    /// channel set to change (or the backplane to stop).
    async fn idle(&mut self, conn: Connection) {
        self.inner.reader_blocked.store(false, Ordering::SeqCst);
        self.conn = Some(conn);
        tokio::select! {
            _ = self.changes.changed() => {}
            _ = self.stop.wait_for(|s| *s) => {}
        }
    }

    /// Sends the blocking `cmd` and waits for its reply, giving up a while
    /// after its block time (a reply that never comes is a broken
    /// connection); `None` when the backplane stops first.
    async fn read(&mut self, conn: &mut Connection, cmd: &Cmd) -> Option<RedisResult<Value>> {
        let reply = tokio::select! {
            r = tokio::time::timeout(BLOCK + Duration::from_secs(5), cmd.query_async::<Value>(conn)) => r,
            _ = self.stop.wait_for(|s| *s) => return None,
        };
        self.inner.reader_blocked.store(false, Ordering::SeqCst);
        Some(reply.unwrap_or_else(|_| {
            Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "XREAD did not come back",
            )))
        }))
    }

    /// Starts a round: raises the "blocked" flag, then notes the channel
    /// set's generation (in that order: see [`unblock`]), and brings the
    /// positions in line with the channels.
    fn begin(&mut self) -> Round {
        let inner = &self.inner;
        // Flag first, generation second: see `unblock`.
        inner.reader_blocked.store(true, Ordering::SeqCst);
        let generation = inner.remote.generation();
        inner.reading_generation.store(generation, Ordering::SeqCst);
        self.changes.borrow_and_update();
        let channels = inner.remote.channel_starts();
        let ids = inner.remote.id_space();
        align(&mut self.positions, &channels, ids.offset);
        Round {
            generation,
            channels,
            ids,
        }
    }

    /// A reply was delivered: the connection works, and `close` may count
    /// the round.
    fn read_fine(&mut self, conn: Connection) {
        self.inner.reader_rounds.fetch_add(1, Ordering::AcqRel);
        self.conn = Some(conn);
        self.inner.reader_ok.store(true, Ordering::Release);
        self.backoff.reset();
    }
}

/// Keeps a position for every channel of the hub and none other. A channel
/// new here starts at its `since`; one forgotten and created again between
/// two reads keeps its name but starts afresh at its new `since`, past the
/// old position.
fn align(positions: &mut HashMap<String, u64>, channels: &[(String, u64)], offset: u64) {
    positions.retain(|name, _| channels.iter().any(|(n, _)| n == name));
    for (name, since) in channels {
        let position = positions.entry(name.clone()).or_insert(0);
        *position = (*position).max(since.saturating_sub(offset));
    }
}

/// One blocking `XREAD` of every stream (key → channel) from its position.
fn xread(streams: &HashMap<String, &str>, positions: &HashMap<String, u64>, epoch: &str) -> Cmd {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(COUNT)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS");
    // (Keys and values of an unchanged map come in the same order.)
    for key in streams.keys() {
        cmd.arg(key);
    }
    for name in streams.values() {
        cmd.arg(format!("{epoch}-{}", positions[*name]));
    }
    cmd
}

/// Feeds one `XREAD` reply to the hub in global order, moving each
/// stream's position past what it delivered. Stops early (the rest is read
/// again) when a stream was cut at `COUNT` — later entries of other streams
/// would overtake its next ones — or when the hub's channel set changed.
fn deliver(
    inner: &Inner,
    streams: &HashMap<String, &str>,
    generation: u64,
    positions: &mut HashMap<String, u64>,
    ids: &IdSpace,
    reply: Value,
) {
    let mut limit = u64::MAX;
    let mut all: Vec<(Entry, &str)> = Vec::new();
    for (key, entries) in stream_replies(reply) {
        let Some(&channel) = streams.get(&key) else {
            continue;
        };
        let entries: Vec<Entry> = entries
            .iter()
            .filter_map(|v| keys::parse_entry(v).map(|(_, e)| e))
            .collect();
        if entries.len() >= COUNT {
            if let Some(last) = entries.last() {
                limit = limit.min(last.number);
            }
        }
        let position = positions.get(channel).copied().unwrap_or(0);
        if let Some(first) = entries.first() {
            check_gap(inner, channel, position, first, ids);
        }
        all.extend(entries.into_iter().map(|e| (e, channel)));
    }
    all.sort_by_key(|(e, _)| e.number);
    feed(inner, generation, positions, ids, &all, limit);
}

/// Reports the entries of `channel` after `position` that were trimmed
/// before this instance read them (the first entry read says its
/// predecessor is newer): its clients are dropped and told their id is
/// stale when they come back.
fn check_gap(inner: &Inner, channel: &str, position: u64, first: &Entry, ids: &IdSpace) {
    if first.prev <= position {
        return;
    }
    let epoch = ids.epoch.as_str();
    inner.lost.fetch_add(1, Ordering::Relaxed);
    let dropped = inner.remote.mark_gap(channel, ids.offset + first.prev);
    (inner.report)(
        format!(
            "Redis backplane: events on channel '{channel}' after {epoch}-{position} were trimmed before this instance read them; {dropped} of its clients were disconnected and will resume with a stale id (raise history, or find why this instance fell behind)"
        )
        .into(),
    );
}

/// Feeds the hub the merged entries (sorted by number) up to `limit`, each
/// number once with all the channels that have it; stops when the hub
/// refuses (its channel set changed since `generation`).
fn feed(
    inner: &Inner,
    generation: u64,
    positions: &mut HashMap<String, u64>,
    ids: &IdSpace,
    all: &[(Entry, &str)],
    limit: u64,
) {
    for same in all.chunk_by(|(a, _), (b, _)| a.number == b.number) {
        let entry = &same[0].0;
        let number = entry.number;
        if number > limit {
            break;
        }
        let channels: Vec<&str> = same.iter().map(|(_, c)| *c).collect();
        let bytes = entry.wire_bytes(&ids.epoch, inner.with_ids);
        let id = entry.explicit.as_deref().map(Arc::from);
        if !inner
            .remote
            .publish(generation, ids.offset + number, &channels, bytes, id)
        {
            break;
        }
        inner.received.fetch_add(1, Ordering::Relaxed);
        for channel in channels {
            positions.insert(channel.to_owned(), number);
        }
    }
}

/// `[[key, [entry…]]…]` (RESP2) or `{key: [entry…]}` (RESP3).
fn stream_replies(reply: Value) -> Vec<(String, Vec<Value>)> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let v = kv.pop()?;
                    let k = kv.pop()?;
                    Some((k, v))
                }
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs,
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::Array(entries) => Some((keys::text(&k)?, entries)),
            _ => None,
        })
        .collect()
}

/// A reader connection. When the data set's epoch changed since the hub
/// learnt it, Redis lost its data: ids restart, so the hub's numbering
/// continues from where it stands (the new epoch's number 0 = what the hub
/// has now).
async fn connect(inner: &Inner, positions: &mut HashMap<String, u64>) -> RedisResult<Connection> {
    let mut conn = inner.connect(None).await?;
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    inner.reader_id.store(id, Ordering::Release);
    let (epoch, _) = inner.position(&mut conn).await?;
    let known = inner.remote.id_space().epoch;
    if epoch != known {
        inner.remote.set_id_space(IdSpace {
            epoch: epoch.clone(),
            offset: inner.remote.hub().committed(),
        });
        (inner.report)(
            format!(
                "Redis backplane: Redis lost its data (epoch {known} is now {epoch}); events not yet read are gone, ids restart, and clients resuming from older ids are told their id is stale"
            )
            .into(),
        );
        positions.clear();
    }
    Ok(conn)
}

/// Cuts the reader's blocked `XREAD` short whenever the hub's channel set
/// changes, so a new channel is read at once rather than after `BLOCK`.
/// The reader raises its flag before it reads the generation, so "flag down
/// or generation current" means it will (or did) read the new set itself.
/// An unblock can reach Redis before the `XREAD` does; it is repeated until
/// the reader is seen reading the current set.
pub(super) async fn unblock(inner: Arc<Inner>) {
    let mut changes = inner.channels_changed.subscribe();
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            if inner.stopped() {
                return;
            }
            if !inner.reader_blocked.load(Ordering::SeqCst)
                || inner.reading_generation.load(Ordering::SeqCst) == inner.remote.generation()
            {
                break;
            }
            nudge(&inner).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Makes a blocked `XREAD` of the reader return now (empty). Harmless when
/// the reader is not blocked.
pub(super) async fn nudge(inner: &Inner) {
    if let Ok(mut conn) = inner.control().await {
        let _: RedisResult<Value> = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(inner.reader_id.load(Ordering::Acquire))
            .query_async(&mut conn)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{args, backplane, offline, own_redis, Reports};
    use super::super::Backplane;
    use super::*;
    use crate::event::Event;
    use crate::event::Payload;
    use crate::hub::{Eviction, Read, Subscriber, Subscription};
    use crate::io::Progress;
    use crate::sync::lock;

    const EPOCH: &str = "1700";

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    /// A stream entry as XREAD returns it: event `number`, after `prev` in
    /// its stream, carrying `data`.
    fn entry(number: u64, prev: u64, data: &str) -> Value {
        Value::Array(vec![
            bulk(&format!("{EPOCH}-{number}")),
            Value::Array(
                [
                    "k",
                    "e",
                    "b",
                    &format!("data: {data}\n\n"),
                    "p",
                    &prev.to_string(),
                    "i",
                    "",
                ]
                .into_iter()
                .map(bulk)
                .collect(),
            ),
        ])
    }

    /// An XREAD reply (RESP2): per stream key, its entries.
    fn reply(streams: Vec<(String, Vec<Value>)>) -> Value {
        Value::Array(
            streams
                .into_iter()
                .map(|(key, entries)| Value::Array(vec![bulk(&key), Value::Array(entries)]))
                .collect(),
        )
    }

    /// An offline backplane whose hub has one client on `channels`, with
    /// ids of the data set [`EPOCH`].
    fn with_client(channels: &[&str]) -> (Backplane, Reports, Subscriber) {
        let (backplane, reports) = offline(10);
        let remote = &backplane.inner.remote;
        remote.set_id_space(IdSpace {
            epoch: EPOCH.into(),
            offset: 0,
        });
        let names: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
        let progress = Arc::new(Progress::default());
        let request = Subscription::new(remote.hub().next_client_id(), &names, None, progress);
        let (subscriber, _) = remote.subscribe(request, 0);
        (backplane, reports, subscriber)
    }

    /// Delivers `value`, a reply to a read of `channels` that began at
    /// `generation`, from `positions`.
    fn deliver_read(
        inner: &Inner,
        channels: &[&str],
        generation: u64,
        positions: &mut HashMap<String, u64>,
        value: Value,
    ) {
        let streams: HashMap<String, &str> = channels
            .iter()
            .map(|c| (inner.keys.stream(c), *c))
            .collect();
        deliver(inner, &streams, generation, positions, &ids(), value);
    }

    fn texts(read: Read) -> Vec<String> {
        match read {
            Read::Events(batch) => batch
                .iter()
                .map(|e| String::from_utf8_lossy(e).into_owned())
                .collect(),
            other => panic!("expected events, got {other:?}"),
        }
    }

    fn ids() -> IdSpace {
        IdSpace {
            epoch: EPOCH.into(),
            offset: 0,
        }
    }

    #[test]
    fn positions_follow_the_hubs_channels_and_never_go_back_before_their_start() {
        let mut positions: HashMap<String, u64> =
            [("a".into(), 5), ("gone".into(), 3), ("again".into(), 4)].into();
        let channels = [
            ("a".to_string(), 2),
            ("new".to_string(), 10),
            ("again".to_string(), 9),
        ];
        align(&mut positions, &channels, 0);
        let expected: HashMap<String, u64> =
            [("a".into(), 5), ("new".into(), 10), ("again".into(), 9)].into();
        assert_eq!(positions, expected);
        // A channel's start is in hub numbers; positions in the data set's.
        let mut positions = HashMap::new();
        align(&mut positions, &[("a".to_string(), 10)], 4);
        assert_eq!(positions["a"], 6);
    }

    #[test]
    fn a_read_asks_for_every_stream_from_its_own_position() {
        let streams: HashMap<String, &str> =
            [("k:a".to_string(), "a"), ("k:b".to_string(), "b")].into();
        let positions: HashMap<String, u64> = [("a".into(), 7), ("b".into(), 0)].into();
        let cmd = xread(&streams, &positions, EPOCH);
        let args = args(&cmd);
        assert_eq!(
            args[..6],
            ["XREAD", "COUNT", "1000", "BLOCK", "2000", "STREAMS"]
        );
        let (keys, starts) = args[6..].split_at(2);
        let mut pairs: Vec<(&str, &str)> = keys
            .iter()
            .zip(starts)
            .map(|(k, s)| (k.as_str(), s.as_str()))
            .collect();
        pairs.sort();
        assert_eq!(pairs, [("k:a", "1700-7"), ("k:b", "1700-0")]);
    }

    #[test]
    fn replies_read_the_same_in_resp2_and_resp3() {
        let resp2 = reply(vec![("k:a".into(), vec![entry(1, 0, "x")])]);
        let resp3 = Value::Map(vec![(bulk("k:a"), Value::Array(vec![entry(1, 0, "x")]))]);
        for value in [resp2, resp3] {
            let streams = stream_replies(value);
            assert_eq!(streams.len(), 1);
            assert_eq!(streams[0].0, "k:a");
            assert_eq!(streams[0].1.len(), 1);
        }
        assert!(stream_replies(Value::Nil).is_empty());
        assert!(stream_replies(Value::Array(vec![bulk("not a pair")])).is_empty());
    }

    #[test]
    fn a_reply_is_fed_in_global_order_once_per_event_with_its_id() {
        let (backplane, reports, mut subscriber) = with_client(&["a", "b"]);
        let inner = &backplane.inner;
        let value = reply(vec![
            (
                inner.keys.stream("a"),
                vec![entry(1, 0, "1"), entry(3, 1, "3")],
            ),
            (
                inner.keys.stream("b"),
                vec![entry(2, 0, "2"), entry(3, 2, "3")],
            ),
        ]);
        let mut positions = HashMap::new();
        let generation = inner.remote.generation();
        deliver_read(inner, &["a", "b"], generation, &mut positions, value);
        assert_eq!(
            texts(subscriber.read()),
            [
                "id: 1700-1\ndata: 1\n\n",
                "id: 1700-2\ndata: 2\n\n",
                "id: 1700-3\ndata: 3\n\n"
            ]
        );
        let expected: HashMap<String, u64> = [("a".into(), 3), ("b".into(), 3)].into();
        assert_eq!(positions, expected);
        assert_eq!(backplane.stats().received, 3);
        assert!(lock(&reports).is_empty());
    }

    #[test]
    fn a_stream_cut_at_count_holds_back_what_other_streams_have_after_its_cut() {
        let (backplane, reports, mut subscriber) = with_client(&["a", "b"]);
        let inner = &backplane.inner;
        // `a` has COUNT entries (odd numbers up to 1999), maybe more after.
        let a: Vec<Value> = (0..COUNT as u64)
            .map(|i| entry(2 * i + 1, (2 * i).saturating_sub(1), "a"))
            .collect();
        let b = vec![entry(2, 0, "b"), entry(2000, 2, "b")];
        let value = reply(vec![
            (inner.keys.stream("a"), a),
            (inner.keys.stream("b"), b),
        ]);
        let mut positions = HashMap::new();
        let generation = inner.remote.generation();
        deliver_read(inner, &["a", "b"], generation, &mut positions, value);
        let expected: HashMap<String, u64> = [("a".into(), 1999), ("b".into(), 2)].into();
        assert_eq!(positions, expected);
        assert_eq!(backplane.stats().received, COUNT as u64 + 1);
        let mut read = 0;
        while let Read::Events(batch) = subscriber.read() {
            read += batch.len();
        }
        assert_eq!(read, COUNT + 1);
        assert!(lock(&reports).is_empty(), "{:?}", lock(&reports));
    }

    #[test]
    fn entries_trimmed_before_they_were_read_are_reported_and_drop_the_channels_clients() {
        let (backplane, reports, subscriber) = with_client(&["a"]);
        let inner = &backplane.inner;
        // Our position is 0, but the first entry follows number 5: 1 to 5 are gone.
        let value = reply(vec![(inner.keys.stream("a"), vec![entry(7, 5, "7")])]);
        let mut positions: HashMap<String, u64> = [("a".into(), 0)].into();
        let generation = inner.remote.generation();
        deliver_read(inner, &["a"], generation, &mut positions, value);
        let stats = backplane.stats();
        assert_eq!((stats.lost, stats.received), (1, 1));
        assert_eq!(positions["a"], 7);
        assert_eq!(subscriber.client().eviction(), Some(Eviction::Gap));
        let reports = lock(&reports).clone();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(
            reports[0].starts_with("Redis backplane: events on channel 'a' after 1700-0 were trimmed before this instance read them; 1 of its clients were disconnected"),
            "{reports:?}"
        );
    }

    #[test]
    fn nothing_is_fed_once_the_channel_set_changed_since_the_read_began() {
        let (backplane, _, mut subscriber) = with_client(&["a"]);
        let inner = &backplane.inner;
        let generation = inner.remote.generation();
        let _other = with_channel(inner, "b");
        let value = reply(vec![(inner.keys.stream("a"), vec![entry(1, 0, "1")])]);
        let mut positions: HashMap<String, u64> = [("a".into(), 0)].into();
        deliver_read(inner, &["a"], generation, &mut positions, value);
        assert_eq!(positions["a"], 0);
        assert_eq!(backplane.stats().received, 0);
        assert!(matches!(subscriber.read(), Read::Empty));
    }

    /// A client on `channel` (which this creates when new).
    fn with_channel(inner: &Inner, channel: &str) -> Subscriber {
        let remote = &inner.remote;
        let progress = Arc::new(Progress::default());
        let names = [channel.to_string()];
        remote
            .subscribe(
                Subscription::new(remote.hub().next_client_id(), &names, None, progress),
                0,
            )
            .0
    }

    /// Reads `subscriber` until it has events (panics after 5 s).
    async fn next_events(subscriber: &mut Subscriber) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match subscriber.read() {
                Read::Events(batch) => return texts(Read::Events(batch)),
                Read::Empty if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                other => panic!("no events in time: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_reader_delivers_sends_and_reads_a_channel_new_while_it_blocks_at_once() {
        let redis = own_redis().await;
        let (backplane, reports) = backplane(&redis.url, 10);
        backplane.start().await.unwrap();
        let inner = &backplane.inner;
        let epoch = inner.remote.id_space().epoch;
        let event = |data: &str| Payload::Event(Event::message(data));
        // The reader waits for channels; a client brings one, read at once.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let began = tokio::time::Instant::now();
        let mut a = with_channel(inner, "a");
        backplane.publish(&["a"], &event("1")).unwrap();
        let first = format!("id: {epoch}-1\ndata: 1\n\n");
        assert_eq!(next_events(&mut a).await, [first]);
        assert!(began.elapsed() < BLOCK / 2, "{:?}", began.elapsed());
        // Now the reader blocks on `a` (for up to BLOCK); `b` must not wait that long.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let began = tokio::time::Instant::now();
        let mut b = with_channel(inner, "b");
        backplane.publish(&["b"], &event("2")).unwrap();
        let second = format!("id: {epoch}-2\ndata: 2\n\n");
        assert_eq!(next_events(&mut b).await, [second]);
        assert!(began.elapsed() < BLOCK / 2, "{:?}", began.elapsed());
        assert_eq!(backplane.stats().received, 2);
        assert!(lock(&reports).is_empty(), "{:?}", lock(&reports));
    }
}
