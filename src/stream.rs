//! One client's event stream: the response body that turns a hub subscription
//! into HTTP body frames, with heartbeats while the stream is idle.
//!
//! The body is polled by the connection's own task, so an idle client costs
//! no task, thread or timer of its own beyond a `Notify` registration and, when
//! heartbeats are on, one timer entry. When woken it takes everything queued
//! for it at once (see [`crate::hub::Subscriber::read`]), and hyper writes that
//! in one go.

use crate::body::{BoxError, Chunks};
use crate::event::heartbeat;
use crate::hub::{Read, Subscriber};
use crate::stats::{OpenStream, Stats};
use bytes::Bytes;
use http_body::Frame;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::futures::OwnedNotified;
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

pin_project! {
    /// The body of one `text/event-stream` response.
    pub struct EventStream {
        subscriber: Subscriber,
        preamble: Option<Bytes>,
        stats: Arc<Stats>,
        // Counts the stream as open in the stats until it is dropped.
        _open: OpenStream,
        heartbeat: Option<Heartbeat>,
        #[pin]
        notified: OwnedNotified,
    }
}

/// A timer that only fires after a stream has been silent for a whole
/// interval: writing anything pushes the next heartbeat back.
struct Heartbeat {
    interval: Duration,
    last_write: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl EventStream {
    /// A stream reading `subscriber`. `preamble` (a retry hint) is written
    /// first; `keep_alive` is the heartbeat interval, `None` for none.
    pub fn new(
        subscriber: Subscriber,
        preamble: Option<Bytes>,
        keep_alive: Option<Duration>,
        stats: Arc<Stats>,
    ) -> Self {
        let notified = subscriber.hub().waker().notified_owned();
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
            subscriber,
            preamble,
            stats,
            heartbeat,
            notified,
        }
    }

    /// Yields the next frame: the preamble, then batches of events as they are
    /// published, heartbeats in the silences, and the end once the hub closes.
    pub fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Chunks>, BoxError>>> {
        let mut this = self.project();
        if let Some(preamble) = this.preamble.take() {
            this.stats.wrote(preamble.len() as u64);
            return Poll::Ready(Some(Ok(Frame::data(Chunks::one(preamble)))));
        }
        loop {
            // Register for the next wake-up *before* looking at the log, so an
            // event published in between cannot be missed.
            this.notified.as_mut().enable();
            match this.subscriber.read() {
                Read::Events(batch) => {
                    let bytes: usize = batch.iter().map(Bytes::len).sum();
                    this.stats.delivered(batch.len() as u64, bytes as u64);
                    if let Some(hb) = this.heartbeat.as_mut() {
                        hb.last_write = Instant::now();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(Chunks::many(batch)))));
                }
                Read::Closed => return Poll::Ready(None),
                Read::Lagged => {
                    if this.subscriber.position().mark_evicted() {
                        this.stats.evicted();
                    }
                    return Poll::Ready(Some(Err(Box::new(SlowClient))));
                }
                Read::Empty => {}
            }
            if this.notified.as_mut().poll(cx).is_pending() {
                break;
            }
            let fresh = this.subscriber.hub().waker().notified_owned();
            this.notified.set(fresh);
        }
        let Some(hb) = this.heartbeat.as_mut() else {
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
            hb.last_write = now;
            hb.sleep.as_mut().reset(now + hb.interval);
            let beat = heartbeat();
            this.stats.wrote(beat.len() as u64);
            return Poll::Ready(Some(Ok(Frame::data(Chunks::one(beat)))));
        }
    }
}
