//! One accepted connection: served by hyper, and dropped as a slow client
//! when the stream on it lags too far behind.
//!
//! A client that stops reading fills its socket and hyper's write buffer;
//! hyper then stops polling the response body, so the stream itself can no
//! longer notice that it lags. This wrapper keeps its own registration on the
//! hub's wake-up signal and checks the stream's published cursor every time
//! something is published. Once the cursor has fallen off the log (the client
//! is more than its byte budget behind), it drops the connection, which closes
//! the socket and frees everything queued for it.

use crate::hub::{Hub, Position};
use crate::stats::Stats;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::futures::OwnedNotified;

pin_project! {
    /// Drives `conn` to completion unless its stream is evicted first.
    pub struct Supervised<F> {
        #[pin]
        conn: F,
        #[pin]
        notified: OwnedNotified,
        hub: Arc<Hub>,
        position: Arc<Position>,
        stats: Arc<Stats>,
    }
}

impl<F: Future> Supervised<F> {
    /// Wraps `conn`, whose stream (if it opens one) publishes its cursor in `position`.
    pub fn new(conn: F, hub: Arc<Hub>, position: Arc<Position>, stats: Arc<Stats>) -> Self {
        Supervised {
            conn,
            notified: hub.waker().notified_owned(),
            hub,
            position,
            stats,
        }
    }
}

/// How a supervised connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended<T> {
    /// hyper finished with the connection (the client left, or shutdown).
    Served(T),
    /// Dropped because its stream lagged beyond its byte budget.
    Evicted,
}

impl<F: Future> Future for Supervised<F> {
    type Output = Ended<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            this.notified.as_mut().enable();
            if this.hub.is_lagging(this.position) {
                if this.position.mark_evicted() {
                    this.stats.evicted();
                }
                return Poll::Ready(Ended::Evicted);
            }
            if this.notified.as_mut().poll(cx).is_pending() {
                break;
            }
            let fresh = this.hub.waker().notified_owned();
            this.notified.set(fresh);
        }
        this.conn.poll(cx).map(Ended::Served)
    }
}
