//! One client's event stream: the response body that turns a hub subscription
//! into HTTP body frames, with heartbeats while the stream is idle.
//!
//! The body is polled by the connection's own task, so an idle client costs
//! no task, thread or timer of its own beyond one waker slot and, when
//! heartbeats are on, one timer entry. When woken it takes everything queued
//! for it at once (see [`crate::hub::Subscriber::read`]) and hyper writes that
//! in one go.

use crate::chunks::{BoxError, Chunks};
use crate::connection::ConnState;
use crate::event::heartbeat;
use crate::hooks::EndReason;
use crate::hub::{Eviction, Read, Subscriber};
use crate::limits::Permit;
use crate::stats::{OpenStream, Stats};
use bytes::{Buf, Bytes};
use http_body::Frame;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The error a stream ends with when its client fell further behind than its
/// byte budget allows. hyper aborts the connection on it: a clean end could
/// not be written to a client that is not reading anyway.
#[derive(Debug)]
pub struct SlowClient;

impl std::fmt::Display for SlowClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client fell behind its byte budget and was disconnected")
    }
}

impl std::error::Error for SlowClient {}

/// Called once when a stream ends, with the reason.
pub type OnEnd = Box<dyn FnOnce(EndReason) + Send>;

/// The body of one `text/event-stream` response.
pub struct EventStream {
    subscriber: Subscriber,
    preamble: Option<Bytes>,
    stats: Arc<Stats>,
    heartbeat: Option<Heartbeat>,
    on_end: Option<OnEnd>,
    conn: Arc<ConnState>,
    // Held for the stream's lifetime: counted as open, and a limit slot.
    _open: OpenStream,
    _permit: Option<Permit>,
}

/// A timer that only fires after a stream has been silent for a whole
/// interval: writing anything pushes the next heartbeat back.
struct Heartbeat {
    interval: Duration,
    last_write: Instant,
    sleep: Pin<Box<Sleep>>,
}

/// Bytes hyper adds around a chunk of `len` bytes: hex size, CRLF, CRLF.
pub(crate) fn chunk_overhead(len: usize) -> u64 {
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1);
    u64::from(digits) + 4
}

impl EventStream {
    /// A stream reading `subscriber`. `preamble` (retry hint, first comment)
    /// is written first; `keep_alive` is the heartbeat interval; `on_end` is
    /// told why the stream ended.
    pub fn new(
        subscriber: Subscriber,
        preamble: Option<Bytes>,
        keep_alive: Option<Duration>,
        stats: Arc<Stats>,
        permit: Option<Permit>,
        on_end: Option<OnEnd>,
        conn: Arc<ConnState>,
    ) -> Self {
        let heartbeat = keep_alive.map(|interval| {
            let now = Instant::now();
            Heartbeat {
                interval,
                last_write: now,
                sleep: Box::pin(tokio::time::sleep_until(now + interval)),
            }
        });
        EventStream {
            _open: stats.stream_opened(),
            _permit: permit,
            subscriber,
            preamble,
            stats,
            heartbeat,
            on_end,
            conn,
        }
    }

    /// The client this stream serves.
    pub fn client(&self) -> &Arc<crate::hub::Client> {
        self.subscriber.client()
    }

    /// Why the stream is ending, judged from its client's flags and the hub.
    fn end_reason(&self) -> EndReason {
        let client = self.subscriber.client();
        if client.is_evicted() {
            EndReason::Slow
        } else if client.disconnect_requested() {
            EndReason::Disconnected
        } else if self.subscriber.hub_is_closed() {
            EndReason::Shutdown
        } else {
            EndReason::Closed
        }
    }

    fn frame(&mut self, chunks: Chunks, events: u64) -> Frame<Chunks> {
        let bytes = chunks.remaining();
        self.subscriber
            .client()
            .handed(bytes as u64 + chunk_overhead(bytes));
        if events > 0 {
            self.stats.delivered(events, bytes as u64);
        } else {
            self.stats.wrote(bytes as u64);
        }
        if let Some(hb) = self.heartbeat.as_mut() {
            hb.last_write = Instant::now();
        }
        Frame::data(chunks)
    }

    /// Yields the next frame: the preamble, then batches of events as they are
    /// published, heartbeats in the silences, and the end when the server
    /// closes or disconnects this client.
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Chunks>, BoxError>>> {
        if let Some(preamble) = self.preamble.take() {
            return Poll::Ready(Some(Ok(self.frame(Chunks::one(preamble), 0))));
        }
        // Register before reading, so a publish in between still wakes us.
        self.subscriber.client().register(cx.waker());
        match self.subscriber.read() {
            Read::Events(batch) => {
                let n = batch.len() as u64;
                return Poll::Ready(Some(Ok(self.frame(Chunks::events(batch), n))));
            }
            Read::Close => {
                if self.end_reason() == EndReason::Disconnected {
                    // The server ended this client's stream: close the
                    // connection after the final chunk instead of keeping it
                    // alive, and get the supervisor polled to act on it.
                    self.conn
                        .close_after_response
                        .store(true, std::sync::atomic::Ordering::Release);
                    cx.waker().wake_by_ref();
                }
                return Poll::Ready(None);
            }
            Read::Lagged => {
                // Usually evicted already, and its reason stands; otherwise it
                // fell off a log, which only moves on without a reader the
                // fan-out found over its budget.
                self.subscriber.client().evict(Eviction::Budget);
                return Poll::Ready(Some(Err(Box::new(SlowClient))));
            }
            Read::Empty => {}
        }
        let Some(hb) = self.heartbeat.as_mut() else {
            return Poll::Pending;
        };
        loop {
            if hb.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = hb.last_write + hb.interval;
            let now = Instant::now();
            if now < due {
                // Something was written since the timer was set: wait for the
                // rest of the silence.
                hb.sleep.as_mut().reset(due);
                continue;
            }
            hb.sleep.as_mut().reset(now + hb.interval);
            return Poll::Ready(Some(Ok(self.frame(Chunks::one(heartbeat()), 0))));
        }
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let reason = self.end_reason();
        if let Some(why) = self.subscriber.client().eviction() {
            self.stats.evicted(why);
        }
        if let Some(on_end) = self.on_end.take() {
            on_end(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_overhead;

    #[test]
    fn chunk_overhead_counts_hex_digits_and_two_crlfs() {
        assert_eq!(chunk_overhead(0), 5);
        assert_eq!(chunk_overhead(15), 5);
        assert_eq!(chunk_overhead(16), 6);
        assert_eq!(chunk_overhead(0x1_0000), 9);
    }
}
