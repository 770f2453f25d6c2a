//! Replay from Redis, for a client whose `Last-Event-ID` the local logs do
//! not cover (it was last connected to another instance, or this instance
//! started reading its channels after that id).
//!
//! The client has already joined the hub live, which fixed where live
//! starts (the hub's position when it joined). What it missed is exactly
//! the stream entries after its id up to that position: fetched with
//! `XRANGE`, merged across its channels by number (an event on two of its
//! channels comes once), and queued in front of everything live. No gap: the
//! hub has every event after the join; no duplicate: nothing after the join
//! is fetched.
//!
//! Each entry records the number of the one before it in its stream, so a
//! trimmed gap shows: when the first entry after the client's id says its
//! predecessor is newer than that id, the predecessor is gone, and the id is
//! stale (as with the in-process history).

use super::keys::{self, Entry};
use super::Inner;
use crate::event::Encoded;
use crate::hub::Subscriber;
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};
use std::collections::BTreeMap;

/// Entries per `XRANGE` page.
const PAGE: usize = 500;

/// Queues what the client missed; returns whether its id is stale (then it
/// just starts live).
pub(super) async fn replay(
    inner: &Inner,
    subscriber: &mut Subscriber,
    last_event_id: &str,
    channels: &[String],
) -> bool {
    // Without history there are no automatic ids and nothing to replay.
    if !inner.with_ids {
        return true;
    }
    let ids = inner.remote.id_space();
    let live = subscriber.last_gseq().saturating_sub(ids.offset);
    let result = async {
        let mut conn = inner.control().await?;
        let Some(from) = locate(&mut conn, inner, last_event_id, channels, &ids.epoch).await?
        else {
            return Ok(None);
        };
        if from >= live {
            // The client saw more than this instance has read yet: it
            // continues after its id, unless that id was never handed out.
            return Ok((from <= issued(&mut conn, inner).await?).then(|| (from, Vec::new())));
        }
        let mut events: BTreeMap<u64, Encoded> = BTreeMap::new();
        for channel in channels {
            let Some(entries) = missed(&mut conn, inner, channel, &ids.epoch, from, live).await?
            else {
                return Ok(None);
            };
            for entry in entries {
                events
                    .entry(entry.number)
                    .or_insert_with(|| entry.wire_bytes(&ids.epoch, inner.with_ids));
            }
        }
        Ok::<_, redis::RedisError>(Some((from, events.into_iter().collect::<Vec<_>>())))
    }
    .await;
    match result {
        Ok(Some((from, events))) => {
            inner.remote.skip_through(subscriber, ids.offset + from);
            inner.remote.preload(
                subscriber,
                events
                    .into_iter()
                    .map(|(n, bytes)| (ids.offset + n, bytes))
                    .collect(),
            );
            false
        }
        Ok(None) => true,
        Err(e) => {
            inner.drop_control().await;
            (inner.report)(
                format!("Redis backplane: could not replay after '{last_event_id}' ({e}); the client starts live and is told its id is stale").into(),
            );
            true
        }
    }
}

/// Whether replaying after `last_event_id` would find its id stale, without
/// fetching the events (for the connect hook's preview).
pub(super) async fn is_stale(inner: &Inner, last_event_id: &str, channels: &[String]) -> bool {
    if !inner.with_ids {
        return true;
    }
    let ids = inner.remote.id_space();
    let result = async {
        let mut conn = inner.control().await?;
        let Some(from) = locate(&mut conn, inner, last_event_id, channels, &ids.epoch).await?
        else {
            return Ok(true);
        };
        if from > issued(&mut conn, inner).await? {
            return Ok(true);
        }
        for channel in channels {
            if trimmed_after(&mut conn, inner, channel, &ids.epoch, from).await? {
                return Ok(true);
            }
        }
        Ok::<_, redis::RedisError>(false)
    }
    .await;
    result.unwrap_or(true)
}

/// The global number of `last_event_id`: its own number when it is one of
/// our ids from the current data set; found in the streams when it is an
/// explicit id; `None` when it is neither (stale).
async fn locate(
    conn: &mut MultiplexedConnection,
    inner: &Inner,
    last_event_id: &str,
    channels: &[String],
    epoch: &str,
) -> RedisResult<Option<u64>> {
    if let Some((e, n)) = keys::parse_id(last_event_id) {
        return Ok((e == epoch).then_some(n));
    }
    // An explicit id: the newest entry that carried it, searched from the
    // end of each stream (at most the history length per channel).
    let mut best = None;
    for channel in channels {
        let key = inner.keys.stream(channel);
        let mut end = "+".to_owned();
        'pages: loop {
            let page: Value = redis::cmd("XREVRANGE")
                .arg(&key)
                .arg(&end)
                .arg("-")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(conn)
                .await?;
            let entries = parse_entries(&page);
            for (id, entry) in &entries {
                if entry.explicit.as_deref() == Some(last_event_id) {
                    best = best.max(Some(entry.number));
                    break 'pages;
                }
                end = format!("({id}");
            }
            if entries.len() < PAGE {
                break;
            }
        }
    }
    Ok(best)
}

/// The entries of `channel` after `from` up to `to`, or `None` when some
/// of them were trimmed.
async fn missed(
    conn: &mut MultiplexedConnection,
    inner: &Inner,
    channel: &str,
    epoch: &str,
    from: u64,
    to: u64,
) -> RedisResult<Option<Vec<Entry>>> {
    let key = inner.keys.stream(channel);
    let mut out = Vec::new();
    let mut start = format!("({epoch}-{from}");
    loop {
        let page: Value = redis::cmd("XRANGE")
            .arg(&key)
            .arg(&start)
            .arg(format!("{epoch}-{to}"))
            .arg("COUNT")
            .arg(PAGE)
            .query_async(conn)
            .await?;
        let entries = parse_entries(&page);
        let full = entries.len() == PAGE;
        if out.is_empty() {
            match entries.first() {
                Some((_, first)) if first.prev > from => return Ok(None),
                Some(_) => {}
                None => {
                    return Ok(
                        (!trimmed_after(conn, inner, channel, epoch, from).await?).then_some(out)
                    )
                }
            }
        }
        if let Some((id, _)) = entries.last() {
            start = format!("({id}");
        }
        out.extend(entries.into_iter().map(|(_, e)| e));
        if !full {
            return Ok(Some(out));
        }
    }
}

/// Whether an entry of `channel` after `from` is gone: the first one still
/// there says its predecessor is newer than `from`.
async fn trimmed_after(
    conn: &mut MultiplexedConnection,
    inner: &Inner,
    channel: &str,
    epoch: &str,
    from: u64,
) -> RedisResult<bool> {
    let page: Value = redis::cmd("XRANGE")
        .arg(inner.keys.stream(channel))
        .arg(format!("({epoch}-{from}"))
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(parse_entries(&page)
        .first()
        .is_some_and(|(_, first)| first.prev > from))
}

/// The newest number handed out so far.
pub(super) async fn issued(conn: &mut MultiplexedConnection, inner: &Inner) -> RedisResult<u64> {
    let counter: Value = redis::cmd("GET")
        .arg(inner.keys.seq())
        .query_async(conn)
        .await?;
    Ok(keys::number(&counter).unwrap_or(0))
}

fn parse_entries(page: &Value) -> Vec<(String, Entry)> {
    match page {
        Value::Array(items) => items.iter().filter_map(keys::parse_entry).collect(),
        _ => Vec::new(),
    }
}
