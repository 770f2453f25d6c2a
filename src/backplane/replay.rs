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

use super::endpoint::Connection;
use super::keys::{self, Entry};
use super::Inner;
use crate::event::Encoded;
use crate::hub::Subscriber;
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
    conn: &mut Connection,
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
    conn: &mut Connection,
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
    conn: &mut Connection,
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
pub(super) async fn issued(conn: &mut Connection, inner: &Inner) -> RedisResult<u64> {
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

#[cfg(test)]
mod tests {
    use super::super::tests::{backplane, own_redis, OwnRedis};
    use super::super::Backplane;
    use super::*;
    use crate::hub::{IdSpace, Read, Subscription};
    use crate::io::Progress;
    use std::sync::Arc;

    const EPOCH: &str = "1700";

    /// One entry to store: its number, the number before it in its stream,
    /// and its explicit id ("" for none).
    type Stored = (u64, u64, &'static str);

    /// `numbers` as one stream's entries, each after the one before it
    /// (the first after `prev`).
    fn chain(mut prev: u64, numbers: impl IntoIterator<Item = u64>) -> Vec<Stored> {
        numbers
            .into_iter()
            .map(|n| (n, std::mem::replace(&mut prev, n), ""))
            .collect()
    }

    /// A Redis of its own and a backplane for it (not started) whose hub
    /// uses the ids of data set [`EPOCH`], with its control connection.
    async fn setup() -> (OwnRedis, Backplane, Connection) {
        let redis = own_redis().await;
        let (backplane, _) = backplane(&redis.url, 10);
        backplane.inner.remote.set_id_space(IdSpace {
            epoch: EPOCH.into(),
            offset: 0,
        });
        let conn = backplane.inner.control().await.unwrap();
        (redis, backplane, conn)
    }

    /// Appends `entries` to the stream of `channel`, as the script would.
    async fn store(conn: &mut Connection, inner: &Inner, channel: &str, entries: &[Stored]) {
        let mut pipe = redis::pipe();
        for &(number, prev, explicit) in entries {
            let kind = if explicit.is_empty() { "e" } else { "x" };
            pipe.cmd("XADD")
                .arg(inner.keys.stream(channel))
                .arg(format!("{EPOCH}-{number}"))
                .arg("k")
                .arg(kind)
                .arg("b")
                .arg(format!("data: {number}\n\n"))
                .arg("p")
                .arg(prev)
                .arg("i")
                .arg(explicit)
                .ignore();
        }
        pipe.query_async::<()>(conn).await.unwrap();
    }

    async fn set_issued(conn: &mut Connection, inner: &Inner, number: u64) {
        let _: () = redis::cmd("SET")
            .arg(inner.keys.seq())
            .arg(number)
            .query_async(conn)
            .await
            .unwrap();
    }

    fn numbers(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|e| e.iter().map(|e| e.number).collect())
    }

    fn names(channels: &[&str]) -> Vec<String> {
        channels.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn a_page_reads_its_entries_and_skips_what_is_not_one() {
        let good = Value::Array(vec![
            Value::BulkString(b"1700-4".to_vec()),
            Value::Array(
                ["k", "e", "b", "data: 4\n\n", "p", "2", "i", ""]
                    .iter()
                    .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                    .collect(),
            ),
        ]);
        let page = Value::Array(vec![good, Value::Nil, Value::Int(3)]);
        let entries = parse_entries(&page);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, "1700-4");
        assert_eq!((entries[0].1.number, entries[0].1.prev), (4, 2));
        assert!(parse_entries(&Value::Nil).is_empty());
    }

    #[tokio::test]
    async fn what_a_client_missed_is_read_page_by_page_up_to_where_it_went_live() {
        let (_redis, backplane, mut conn) = setup().await;
        let inner = &backplane.inner;
        store(&mut conn, inner, "a", &chain(0, 1..=1200)).await;
        let got = missed(&mut conn, inner, "a", EPOCH, 10, 1100)
            .await
            .unwrap();
        assert_eq!(numbers(got), Some((11..=1100).collect()));
        let none = missed(&mut conn, inner, "a", EPOCH, 1100, 1100)
            .await
            .unwrap();
        assert_eq!(numbers(none), Some(vec![]));
    }

    #[tokio::test]
    async fn what_a_client_missed_is_none_once_part_of_it_was_trimmed() {
        let (_redis, backplane, mut conn) = setup().await;
        let inner = &backplane.inner;
        // 1 to 5 are gone: the first entry left follows 5.
        store(&mut conn, inner, "a", &chain(5, [6, 7, 20])).await;
        let gone = missed(&mut conn, inner, "a", EPOCH, 2, 7).await.unwrap();
        assert_eq!(numbers(gone), None);
        let whole = missed(&mut conn, inner, "a", EPOCH, 5, 7).await.unwrap();
        assert_eq!(numbers(whole), Some(vec![6, 7]));
        // Nothing in range, but what follows shows a gap after 2.
        store(&mut conn, inner, "b", &chain(10, [15])).await;
        let hidden = missed(&mut conn, inner, "b", EPOCH, 2, 4).await.unwrap();
        assert_eq!(numbers(hidden), None);
        assert!(trimmed_after(&mut conn, inner, "b", EPOCH, 2)
            .await
            .unwrap());
        assert!(!trimmed_after(&mut conn, inner, "b", EPOCH, 10)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn an_id_is_located_by_its_number_or_as_the_newest_entry_that_carried_it() {
        let (_redis, backplane, mut conn) = setup().await;
        let inner = &backplane.inner;
        let mut a = chain(0, 1..=600);
        a[0].2 = "mine"; // the oldest entry: found on the second page back
        a[2].2 = "twice";
        store(&mut conn, inner, "a", &a).await;
        store(&mut conn, inner, "b", &[(601, 0, "twice")]).await;
        // The newest carrier is on the channel searched first.
        let channels = names(&["b", "a"]);
        let locate = |id: &'static str| {
            let mut conn = conn.clone();
            let channels = channels.clone();
            async move {
                locate(&mut conn, inner, id, &channels, EPOCH)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(locate("1700-42").await, Some(42));
        assert_eq!(locate("999-42").await, None);
        assert_eq!(locate("mine").await, Some(1));
        assert_eq!(locate("twice").await, Some(601));
        assert_eq!(locate("never").await, None);
    }

    #[tokio::test]
    async fn issued_is_the_global_counter_and_zero_before_any_send() {
        let (_redis, backplane, mut conn) = setup().await;
        let inner = &backplane.inner;
        assert_eq!(issued(&mut conn, inner).await.unwrap(), 0);
        set_issued(&mut conn, inner, 42).await;
        assert_eq!(issued(&mut conn, inner).await.unwrap(), 42);
    }

    #[tokio::test]
    async fn a_replay_queues_what_was_missed_on_every_channel_once_in_order() {
        let (_redis, backplane, mut conn) = setup().await;
        let inner = &backplane.inner;
        store(&mut conn, inner, "a", &chain(0, 1..=10)).await;
        store(&mut conn, inner, "b", &chain(0, [3, 6, 9, 11])).await;
        set_issued(&mut conn, inner, 11).await;
        // The client joins live where this hub stands: after 10.
        inner.remote.start_at(10);
        let channels = names(&["a", "b"]);
        let progress = Arc::new(Progress::default());
        let hub = inner.remote.hub();
        let (mut subscriber, _) = hub.subscribe(Subscription::new(
            hub.next_client_id(),
            &channels,
            None,
            progress,
        ));
        assert!(!replay(inner, &mut subscriber, "1700-4", &channels).await);
        let Read::Events(batch) = subscriber.read() else {
            panic!("nothing replayed");
        };
        let texts: Vec<String> = batch
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect();
        let expected: Vec<String> = (5..=10)
            .map(|n| format!("id: 1700-{n}\ndata: {n}\n\n"))
            .collect();
        assert_eq!(texts, expected);
    }

    #[tokio::test]
    async fn an_id_is_stale_when_trimmed_past_foreign_or_never_handed_out() {
        let (_redis, backplane, mut conn) = setup().await;
        let inner = &backplane.inner;
        store(&mut conn, inner, "a", &chain(5, 6..=10)).await;
        set_issued(&mut conn, inner, 10).await;
        let channels = names(&["a"]);
        assert!(!is_stale(inner, "1700-5", &channels).await);
        assert!(!is_stale(inner, "1700-10", &channels).await);
        assert!(is_stale(inner, "1700-4", &channels).await);
        assert!(is_stale(inner, "1700-11", &channels).await);
        assert!(is_stale(inner, "999-7", &channels).await);
    }
}
