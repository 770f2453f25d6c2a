//! The publisher task: stores queued sends in Redis, in order, once each.
//!
//! Sends go out in pipelined batches of script calls on the shared control
//! connection. A send leaves the queue only when Redis answered for it, so
//! when the connection breaks the batch is sent again; the script skips what
//! this instance already applied and refuses what would overtake a send not
//! yet applied, which makes the resend exact.

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
        let batch: Vec<Pending> = {
            let queue = lock(&inner.queue);
            queue.items.iter().take(BATCH).cloned().collect()
        };
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
        let mut conn = match inner.control().await {
            Ok(conn) => conn,
            Err(e) => {
                inner.failed(&inner.publisher_ok, "cannot reach Redis to publish", &e);
                backoff.wait(&inner).await;
                continue;
            }
        };
        let now = super::unix_time().as_millis().to_string();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for pending in &batch {
            pipe.add_command(invocation(&inner, pending, &now));
        }
        let results: Vec<RedisResult<Value>> = match pipe.query_async(&mut conn).await {
            Ok(results) => results,
            Err(e) => {
                inner.drop_control().await;
                inner.failed(&inner.publisher_ok, "publishing to Redis failed", &e);
                backoff.wait(&inner).await;
                continue;
            }
        };
        // Replies in order: every Ok is applied; at the first failure the
        // script refuses everything after it (GAP), so the batch is resent
        // from there once the cause is dealt with.
        let mut done = 0;
        let mut retry = false;
        for (i, result) in results.iter().enumerate() {
            match result {
                Ok(_) => {
                    inner.published.fetch_add(1, Ordering::Relaxed);
                    done = i + 1;
                }
                Err(e) if e.code() == Some("NOSCRIPT") => {
                    // Redis restarted and forgot the script: load it, resend.
                    let _ = redis::cmd("SCRIPT")
                        .arg("LOAD")
                        .arg(PUBLISH_SCRIPT)
                        .query_async::<String>(&mut conn)
                        .await;
                    retry = true;
                    break;
                }
                Err(e) if e.code() == Some("NOPUB") => {
                    // Everything before this send is settled: start counting here.
                    let _ = set_applied(&inner, &mut conn, batch[i].seq - 1).await;
                    retry = true;
                    break;
                }
                Err(e) if transient(e) || e.code() == Some("GAP") => {
                    inner.failed(&inner.publisher_ok, "Redis refused a send for now", e);
                    retry = true;
                    break;
                }
                Err(e) => {
                    // Refused for good (a key of another type, say): reported,
                    // and marked settled so that the sends after it can go.
                    let pending = &batch[i];
                    if let Err(e) = set_applied(&inner, &mut conn, pending.seq).await {
                        inner.failed(&inner.publisher_ok, "Redis refused a send for now", &e);
                        retry = true;
                        break;
                    }
                    inner.failed.fetch_add(1, Ordering::Relaxed);
                    (inner.report)(
                        format!(
                            "Redis refused a send to channel(s) {} and it was dropped: {e}",
                            pending.channels.join(", ")
                        )
                        .into(),
                    );
                    done = i + 1;
                    retry = true;
                    break;
                }
            }
        }
        if done > 0 {
            let through = batch[done - 1].seq;
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
        if retry {
            backoff.wait(&inner).await;
        } else {
            inner.publisher_ok.store(true, Ordering::Release);
            backoff.reset();
        }
    }
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

/// Records that this instance's sends up to `seq` are settled.
async fn set_applied(
    inner: &Inner,
    conn: &mut redis::aio::MultiplexedConnection,
    seq: u64,
) -> RedisResult<()> {
    redis::cmd("SET")
        .arg(inner.keys.publisher(&inner.instance))
        .arg(seq)
        .arg("EX")
        .arg(86400)
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
