//! The publisher task: stores queued sends in Redis, in order, once each.
//!
//! Sends go out in pipelined batches of script calls on the shared control
//! connection. A send leaves the queue only when Redis answered for it, so
//! when the connection breaks the batch is sent again; the script skips what
//! this instance already applied and refuses what would overtake a send not
//! yet applied, which makes the resend exact.

use super::endpoint::Connection;
use super::keys::PUBLISH_SCRIPT;
use super::{Backoff, Inner, Pending};
use crate::sync::lock;
use redis::{RedisError, RedisResult, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Sends per round trip: large enough to amortise the round trip in a burst,
/// small enough that one failed batch is cheap to resend.
const BATCH: usize = 256;

/// Runs until the backplane stops.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut backoff = Backoff::new();
    let mut stop = inner.stop.subscribe();
    loop {
        let batch = next_batch(&inner);
        if inner.stopped() {
            return;
        }
        if batch.is_empty() {
            tokio::select! {
                _ = inner.queued.notified() => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            continue;
        }
        if send(&inner, &batch).await {
            inner.publisher_ok.store(true, Ordering::Release);
            backoff.reset();
        } else {
            backoff.wait(&inner).await;
        }
    }
}

/// The oldest sends, at most [`BATCH`], copied: they stay queued until
/// Redis has answered for them.
fn next_batch(inner: &Inner) -> Vec<Pending> {
    let queue = lock(&inner.queue);
    queue.items.iter().take(BATCH).cloned().collect()
}

/// Sends one batch and settles what Redis answered for. False when part of
/// it must be sent again (after a backoff).
async fn send(inner: &Inner, batch: &[Pending]) -> bool {
    let mut conn = match inner.control().await {
        Ok(conn) => conn,
        Err(e) => {
            inner.failed(&inner.publisher_ok, "cannot reach Redis to publish", &e);
            return false;
        }
    };
    let results = match call_script(inner, &mut conn, batch).await {
        Ok(results) => results,
        Err(e) => {
            inner.drop_control().await;
            inner.failed(&inner.publisher_ok, "publishing to Redis failed", &e);
            return false;
        }
    };
    let replies = Replies::read(&results);
    inner
        .published
        .fetch_add(replies.applied as u64, Ordering::Relaxed);
    let Some(stop) = replies.stop else {
        settle(inner, batch, replies.applied);
        return true;
    };
    let settled = resolve(inner, &mut conn, &batch[replies.applied], stop).await;
    settle(inner, batch, replies.applied + settled);
    false
}

/// The batch as one pipeline of script calls. Every reply is kept: an error
/// in one call does not fail the others.
async fn call_script(
    inner: &Inner,
    conn: &mut Connection,
    batch: &[Pending],
) -> RedisResult<Vec<RedisResult<Value>>> {
    let now = super::unix_time().as_millis().to_string();
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for pending in batch {
        pipe.add_command(invocation(inner, pending, &now));
    }
    pipe.query_async(conn).await
}

/// What Redis answered for one batch, read in order: the sends applied in a
/// row from its start, and what stopped that run. After the first failure
/// the script refuses everything (GAP), so the batch is sent again from
/// there once the cause is dealt with.
#[derive(Debug)]
struct Replies<'a> {
    applied: usize,
    stop: Option<Stop<'a>>,
}

impl<'a> Replies<'a> {
    fn read(results: &'a [RedisResult<Value>]) -> Self {
        let applied = results.iter().take_while(|r| r.is_ok()).count();
        let stop = results
            .get(applied)
            .and_then(|r| r.as_ref().err())
            .map(Stop::of);
        Replies { applied, stop }
    }
}

/// Why a send was not applied, as far as what to do next goes.
#[derive(Debug)]
enum Stop<'a> {
    /// Redis restarted and forgot the script.
    NoScript,
    /// This instance's publisher key is missing (first send, expired after
    /// a day idle, or Redis lost its data).
    NoPublisher,
    /// A failure that passes by itself, or a send refused behind one (GAP).
    Transient(&'a RedisError),
    /// Refused for good (a key of another type, say).
    Refused(&'a RedisError),
}

impl<'a> Stop<'a> {
    fn of(e: &'a RedisError) -> Self {
        match e.code() {
            Some("NOSCRIPT") => Stop::NoScript,
            Some("NOPUB") => Stop::NoPublisher,
            Some("GAP") => Stop::Transient(e),
            _ if transient(e) => Stop::Transient(e),
            _ => Stop::Refused(e),
        }
    }
}

/// Deals with what stopped a batch at `pending` (its first send not
/// applied) so that sending again goes through; returns how many sends from
/// `pending` on are settled by that (1 for one refused for good, else 0).
async fn resolve(inner: &Inner, conn: &mut Connection, pending: &Pending, stop: Stop<'_>) -> usize {
    match stop {
        Stop::NoScript => {
            // Load it; the batch is sent again.
            let _ = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(PUBLISH_SCRIPT)
                .query_async::<String>(conn)
                .await;
        }
        Stop::NoPublisher => {
            // Everything before this send is settled: start counting here.
            let _ = set_applied(inner, conn, pending.seq - 1).await;
        }
        Stop::Transient(e) => {
            inner.failed(&inner.publisher_ok, "Redis refused a send for now", e);
        }
        Stop::Refused(e) => return usize::from(drop_refused(inner, conn, pending, e).await),
    }
    0
}

/// A send Redis refused for good: reported, and marked settled so that the
/// sends after it can go. False when even the marking failed (the send is
/// then tried again).
async fn drop_refused(
    inner: &Inner,
    conn: &mut Connection,
    pending: &Pending,
    e: &RedisError,
) -> bool {
    if let Err(e) = set_applied(inner, conn, pending.seq).await {
        inner.failed(&inner.publisher_ok, "Redis refused a send for now", &e);
        return false;
    }
    inner.failed.fetch_add(1, Ordering::Relaxed);
    (inner.report)(
        format!(
            "Redis refused a send to channel(s) {} and it was dropped: {e}",
            pending.channels.join(", ")
        )
        .into(),
    );
    true
}

/// Takes the first `done` sends of `batch` off the queue and tells `flush`
/// that everything through the last of them is settled.
fn settle(inner: &Inner, batch: &[Pending], done: usize) {
    let Some(last) = done.checked_sub(1).map(|i| &batch[i]) else {
        return;
    };
    let through = last.seq;
    {
        let mut queue = lock(&inner.queue);
        // close() may have taken the queue meanwhile: remove only
        // what this batch settled.
        while queue.items.front().is_some_and(|p| p.seq <= through) {
            queue.items.pop_front();
        }
    }
    inner.applied.send_replace(through);
}

/// One script call for one send.
fn invocation(inner: &Inner, pending: &Pending, now: &str) -> redis::Cmd {
    let keys = &inner.keys;
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(&inner.script_hash)
        .arg(4 + pending.channels.len())
        .arg(keys.seq())
        .arg(keys.epoch())
        .arg(keys.heads())
        .arg(keys.publisher(&inner.instance));
    for channel in pending.channels.iter() {
        cmd.arg(keys.stream(channel));
    }
    cmd.arg(now)
        .arg(inner.max_len)
        .arg(pending.seq)
        .arg(pending.kind.as_str())
        .arg(&pending.body[..])
        .arg(pending.explicit.as_deref().unwrap_or(""));
    for channel in pending.channels.iter() {
        cmd.arg(channel.as_str());
    }
    cmd
}

/// Sets this instance's publisher key to `seq` (creating it when missing)
/// unless it stands further already: a key moved back would let a send the
/// script applied be applied again.
const SET_APPLIED_SCRIPT: &str = r#"
local done = redis.call('GET', KEYS[1])
if not done or tonumber(done) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400)
end
return 1
"#;

/// Records that this instance's sends up to `seq` are settled.
async fn set_applied(inner: &Inner, conn: &mut Connection, seq: u64) -> RedisResult<()> {
    redis::cmd("EVAL")
        .arg(SET_APPLIED_SCRIPT)
        .arg(1)
        .arg(inner.keys.publisher(&inner.instance))
        .arg(seq)
        .query_async::<()>(conn)
        .await
}

/// Errors that pass by themselves: worth resending.
fn transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || matches!(
            e.code(),
            Some("OOM" | "BUSY" | "LOADING" | "READONLY" | "MASTERDOWN" | "TRYAGAIN")
        )
}

#[cfg(test)]
mod tests {
    use super::super::keys::{self, Entry};
    use super::super::tests::{args, backplane, offline, own_redis, OwnRedis, Reports};
    use super::super::Backplane;
    use super::*;
    use crate::event::Event;
    use crate::event::Payload;
    use std::time::Duration;

    const SOON: Duration = Duration::from_secs(5);

    fn event(data: &str) -> Payload {
        Payload::Event(Event::message(data))
    }

    /// A reply as Redis sends it for a failed call: `-CODE text`.
    fn refusal(line: &str) -> RedisError {
        redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
            .and_then(Value::extract_error)
            .unwrap_err()
    }

    fn seqs(batch: &[Pending]) -> Vec<u64> {
        batch.iter().map(|p| p.seq).collect()
    }

    fn queued(inner: &Inner) -> Vec<u64> {
        lock(&inner.queue).items.iter().map(|p| p.seq).collect()
    }

    #[test]
    fn a_batch_is_the_oldest_sends_up_to_256_and_they_stay_queued() {
        let (backplane, _) = offline(10);
        for i in 0..300 {
            backplane.publish(&["a"], &event(&i.to_string())).unwrap();
        }
        let batch = next_batch(&backplane.inner);
        assert_eq!(seqs(&batch), (1..=256).collect::<Vec<_>>());
        assert_eq!(queued(&backplane.inner).len(), 300);
    }

    #[test]
    fn replies_count_the_sends_applied_in_a_row_and_name_what_stopped_them() {
        let ok = || Ok(Value::Okay);
        let all: Vec<RedisResult<Value>> = vec![ok(), ok(), ok()];
        let replies = Replies::read(&all);
        assert_eq!(replies.applied, 3);
        assert!(replies.stop.is_none());
        let stops: Vec<(RedisError, &str)> = vec![
            (refusal("NOSCRIPT No matching script"), "NoScript"),
            (refusal("NOPUB publisher state missing"), "NoPublisher"),
            (refusal("GAP send 3 before 2"), "Transient"),
            (refusal("OOM command not allowed"), "Transient"),
            (refusal("LOADING Redis is loading"), "Transient"),
            (
                std::io::Error::from(std::io::ErrorKind::ConnectionReset).into(),
                "Transient",
            ),
            (refusal("WRONGTYPE Operation against a key"), "Refused"),
            (refusal("ERR something else"), "Refused"),
        ];
        for (error, expected) in stops {
            let results = vec![ok(), ok(), Err(error)];
            let replies = Replies::read(&results);
            assert_eq!(replies.applied, 2);
            let stop = format!("{:?}", replies.stop.unwrap());
            assert!(stop.starts_with(expected), "{stop} is not {expected}");
        }
    }

    #[test]
    fn only_the_first_failure_of_a_batch_counts() {
        let results = vec![
            Err(refusal("WRONGTYPE Operation against a key")),
            Ok(Value::Okay),
            Err(refusal("GAP send 3 before 2")),
        ];
        let replies = Replies::read(&results);
        assert_eq!(replies.applied, 0);
        assert!(matches!(replies.stop, Some(Stop::Refused(_))));
    }

    #[test]
    fn settling_takes_what_the_batch_settled_off_the_queue_and_tells_flush() {
        let (backplane, _) = offline(10);
        let inner = &backplane.inner;
        for i in 0..5 {
            backplane.publish(&["a"], &event(&i.to_string())).unwrap();
        }
        let batch = next_batch(inner);
        settle(inner, &batch, 0);
        assert_eq!(queued(inner), [1, 2, 3, 4, 5]);
        assert_eq!(*inner.applied.borrow(), 0);
        settle(inner, &batch, 3);
        assert_eq!(queued(inner), [4, 5]);
        assert_eq!(*inner.applied.borrow(), 3);
    }

    #[test]
    fn settling_after_close_took_the_queue_leaves_it_empty() {
        let (backplane, _) = offline(10);
        let inner = &backplane.inner;
        backplane.publish(&["a"], &event("1")).unwrap();
        backplane.publish(&["a"], &event("2")).unwrap();
        let batch = next_batch(inner);
        lock(&inner.queue).items.clear();
        backplane.publish(&["a"], &event("3")).unwrap();
        settle(inner, &batch, 2);
        assert_eq!(queued(inner), [3]);
        assert_eq!(*inner.applied.borrow(), 2);
    }

    #[test]
    fn a_script_call_passes_keys_and_arguments_in_the_order_the_script_reads_them() {
        let (backplane, _) = offline(10);
        let inner = &backplane.inner;
        backplane
            .publish(
                &["b", "a"],
                &Payload::Event(Event::message("x").id("mine").unwrap()),
            )
            .unwrap();
        let pending = &next_batch(inner)[0];
        let cmd = invocation(inner, pending, "1700");
        let args = args(&cmd);
        let keys = &inner.keys;
        let expected = [
            "EVALSHA",
            &inner.script_hash,
            "6",
            // KEYS: seq, epoch, heads, publisher, one stream per channel.
            &keys.seq(),
            &keys.epoch(),
            &keys.heads(),
            &keys.publisher(&inner.instance),
            &keys.stream("a"),
            &keys.stream("b"),
            // ARGV: now, max length, publish sequence, kind, body, explicit
            // id, then the channel of each stream.
            "1700",
            "10000",
            "1",
            "x",
            "id: mine\ndata: x\n\n",
            "mine",
            "a",
            "b",
        ];
        assert_eq!(args, expected);
    }

    /// The entries of a channel's stream, oldest first.
    async fn stream(conn: &mut Connection, inner: &Inner, channel: &str) -> Vec<Entry> {
        let page: Value = redis::cmd("XRANGE")
            .arg(inner.keys.stream(channel))
            .arg("-")
            .arg("+")
            .query_async(conn)
            .await
            .unwrap();
        let Value::Array(items) = page else {
            panic!("not a stream: {page:?}")
        };
        items
            .iter()
            .map(|v| keys::parse_entry(v).unwrap().1)
            .collect()
    }

    fn bodies(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect()
    }

    async fn flushed(backplane: &Backplane) {
        tokio::time::timeout(SOON, backplane.flush())
            .await
            .expect("Redis answered in time")
            .unwrap();
    }

    /// A started backplane on `redis`, and a connection of the test's own.
    async fn started(redis: &OwnRedis) -> (Backplane, Reports, Connection) {
        let (backplane, reports) = backplane(&redis.url, 10);
        backplane.start().await.unwrap();
        let conn = backplane.inner.connect(Some(SOON)).await.unwrap();
        (backplane, reports, conn)
    }

    /// Runs one command (`words`) on `conn`.
    async fn command(conn: &mut Connection, words: &[&str]) {
        let mut cmd = redis::cmd(words[0]);
        cmd.arg(&words[1..]);
        let _: Value = cmd.query_async(conn).await.unwrap();
    }

    #[tokio::test]
    async fn sends_are_stored_once_each_in_order_after_redis_forgets_the_script_or_the_publisher() {
        let redis = own_redis().await;
        let (backplane, reports, mut conn) = started(&redis).await;
        let inner = &backplane.inner;
        // The first send finds no publisher state (NOPUB).
        backplane.publish(&["a"], &event("1")).unwrap();
        flushed(&backplane).await;
        // As after a restart: the script is gone (NOSCRIPT).
        command(&mut conn, &["SCRIPT", "FLUSH"]).await;
        backplane.publish(&["a"], &event("2")).unwrap();
        flushed(&backplane).await;
        // As after a day idle: the publisher state expired (NOPUB).
        command(&mut conn, &["DEL", &inner.keys.publisher(&inner.instance)]).await;
        backplane.publish(&["a"], &event("3")).unwrap();
        backplane.publish(&["a"], &event("4")).unwrap();
        flushed(&backplane).await;
        let entries = stream(&mut conn, inner, "a").await;
        let numbers: Vec<u64> = entries.iter().map(|e| e.number).collect();
        assert_eq!(numbers, [1, 2, 3, 4]);
        assert_eq!(
            bodies(&entries),
            ["data: 1\n\n", "data: 2\n\n", "data: 3\n\n", "data: 4\n\n"]
        );
        let stats = backplane.stats();
        assert_eq!((stats.published, stats.failed, stats.pending), (4, 0, 0));
        assert!(lock(&reports).is_empty(), "{:?}", lock(&reports));
    }

    /// A refusal used to come after the script had recorded the send as
    /// applied: the next send of the same batch then went through, and was
    /// sent again (and stored twice) once the refused one was settled.
    #[tokio::test]
    async fn a_send_refused_in_the_middle_of_a_batch_leaves_the_next_ones_stored_once() {
        let redis = own_redis().await;
        let (backplane, reports, mut conn) = started(&redis).await;
        let inner = &backplane.inner;
        command(
            &mut conn,
            &["SET", &inner.keys.stream("bad"), "not a stream"],
        )
        .await;
        backplane.publish(&["good"], &event("first")).unwrap();
        backplane.publish(&["bad"], &event("lost")).unwrap();
        backplane.publish(&["good"], &event("kept")).unwrap();
        flushed(&backplane).await;
        assert_eq!(
            bodies(&stream(&mut conn, inner, "good").await),
            ["data: first\n\n", "data: kept\n\n"]
        );
        let stats = backplane.stats();
        assert_eq!((stats.published, stats.failed, stats.pending), (2, 1, 0));
        assert_eq!(lock(&reports).len(), 1, "{:?}", lock(&reports));
    }

    #[tokio::test]
    async fn a_send_redis_refuses_for_good_is_reported_and_dropped_and_the_next_ones_go() {
        let redis = own_redis().await;
        let (backplane, reports, mut conn) = started(&redis).await;
        let inner = &backplane.inner;
        command(
            &mut conn,
            &["SET", &inner.keys.stream("bad"), "not a stream"],
        )
        .await;
        backplane.publish(&["bad"], &event("lost")).unwrap();
        flushed(&backplane).await;
        backplane.publish(&["good"], &event("kept")).unwrap();
        flushed(&backplane).await;
        assert_eq!(
            bodies(&stream(&mut conn, inner, "good").await),
            ["data: kept\n\n"]
        );
        let stats = backplane.stats();
        assert_eq!((stats.published, stats.failed, stats.pending), (1, 1, 0));
        let reports = lock(&reports).clone();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(
            reports[0].starts_with("Redis refused a send to channel(s) bad and it was dropped"),
            "{reports:?}"
        );
    }
}
