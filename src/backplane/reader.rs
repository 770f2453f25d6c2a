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

use super::keys::{self, Entry};
use super::{Backoff, Inner};
use crate::hub::IdSpace;
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Entries per stream per read: bounds one reply while catching up.
const COUNT: usize = 1000;
/// How long one `XREAD` waits for something new before asking again.
const BLOCK: Duration = Duration::from_secs(2);

/// Runs until the backplane stops.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut conn: Option<MultiplexedConnection> = None;
    // Whether a connection was made before: the next one is a reconnection.
    let mut connected_before = false;
    // Per channel: the number of the last entry delivered (or its start).
    let mut positions: HashMap<String, u64> = HashMap::new();
    let mut backoff = Backoff::new();
    let mut stop = inner.stop.subscribe();
    let mut changes = inner.channels_changed.subscribe();
    loop {
        if inner.stopped() {
            return;
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match connect(&inner, &mut positions).await {
                Ok(c) => {
                    if connected_before {
                        inner.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    connected_before = true;
                    c
                }
                Err(e) => {
                    inner.failed(&inner.reader_ok, "cannot reach Redis to read", &e);
                    backoff.wait(&inner).await;
                    continue;
                }
            },
        };
        // Flag first, generation second: see `unblock`.
        inner.reader_blocked.store(true, Ordering::SeqCst);
        let generation = inner.remote.generation();
        inner.reading_generation.store(generation, Ordering::SeqCst);
        changes.borrow_and_update();
        let channels = inner.remote.channel_starts();
        // Read once per round: deliveries and the ids they carry agree.
        let ids = inner.remote.id_space();
        positions.retain(|name, _| channels.iter().any(|(n, _)| n == name));
        // A channel forgotten and created again between two reads keeps its
        // name but starts afresh at its new `since`, past the old position.
        for (name, since) in &channels {
            let position = positions.entry(name.clone()).or_insert(0);
            *position = (*position).max(since.saturating_sub(ids.offset));
        }
        if channels.is_empty() {
            inner.reader_blocked.store(false, Ordering::SeqCst);
            conn = Some(c);
            tokio::select! {
                _ = changes.changed() => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            continue;
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS");
        let streams: HashMap<String, &str> = channels
            .iter()
            .map(|(n, _)| (inner.keys.stream(n), n.as_str()))
            .collect();
        // (Keys and values of an unchanged map come in the same order.)
        for key in streams.keys() {
            cmd.arg(key);
        }
        for name in streams.values() {
            cmd.arg(format!("{}-{}", ids.epoch, positions[*name]));
        }
        let reply = tokio::select! {
            r = tokio::time::timeout(BLOCK + Duration::from_secs(5), cmd.query_async::<Value>(&mut c)) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        inner.reader_blocked.store(false, Ordering::SeqCst);
        match reply {
            Ok(Ok(value)) => {
                deliver(&inner, &streams, generation, &mut positions, &ids, value);
                inner.reader_rounds.fetch_add(1, Ordering::AcqRel);
                conn = Some(c);
                inner.reader_ok.store(true, Ordering::Release);
                backoff.reset();
            }
            Ok(Err(e)) => {
                inner.failed(&inner.reader_ok, "reading from Redis failed", &e);
                backoff.wait(&inner).await;
            }
            Err(_) => {
                let e = redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "XREAD did not come back",
                ));
                inner.failed(&inner.reader_ok, "reading from Redis failed", &e);
                backoff.wait(&inner).await;
            }
        }
    }
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
    let epoch = ids.epoch.as_str();
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
            if first.prev > position {
                // Entries after our position were trimmed before we read them.
                inner.lost.fetch_add(1, Ordering::Relaxed);
                let dropped = inner.remote.mark_gap(channel, ids.offset + first.prev);
                (inner.report)(
                    format!(
                        "Redis backplane: events on channel '{channel}' after {epoch}-{position} were trimmed before this instance read them; {dropped} of its clients were disconnected and will resume with a stale id (raise history, or find why this instance fell behind)"
                    )
                    .into(),
                );
            }
        }
        all.extend(entries.into_iter().map(|e| (e, channel)));
    }
    all.sort_by_key(|(e, _)| e.number);
    let mut i = 0;
    while i < all.len() {
        let number = all[i].0.number;
        if number > limit {
            break;
        }
        let mut j = i;
        let mut channels = Vec::new();
        while j < all.len() && all[j].0.number == number {
            channels.push(all[j].1);
            j += 1;
        }
        let entry = &all[i].0;
        let bytes = entry.wire_bytes(epoch, inner.with_ids);
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
        i = j;
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
async fn connect(
    inner: &Inner,
    positions: &mut HashMap<String, u64>,
) -> RedisResult<MultiplexedConnection> {
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
