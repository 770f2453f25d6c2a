//! One connection served by hyper, supervised: shut down gracefully on
//! request, and dropped as a slow client when a stream on it falls over its
//! byte budget.
//!
//! A client that stops reading fills its socket and hyper's write buffer;
//! hyper then stops polling the response body, so the stream itself can no
//! longer notice that it lags. The supervisor registers the connection's task
//! with the client, so every publish still wakes it, and drops the connection
//! (closing the socket, freeing everything queued for it) once the client is
//! marked evicted.

use crate::hub::Client;
use crate::io::Progress;
use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;
use tokio::time::Sleep;

/// What a connection's request handlers share with its supervisor.
#[derive(Default)]
pub struct ConnState {
    /// What the socket has taken so far, and whether it is full.
    pub progress: Arc<Progress>,
    /// The clients whose streams this connection carries (one for HTTP/1.1,
    /// any number for HTTP/2), while it does.
    pub clients: Mutex<Vec<Arc<Client>>>,
    /// Set when the connection should close after its current response
    /// (its stream was ended by the server).
    pub close_after_response: AtomicBool,
}

impl ConnState {
    /// Notes that the stream of `client` runs on this connection.
    pub fn attach(&self, client: Arc<Client>) {
        self.lock().push(client);
    }

    /// Notes that the stream of client `id` ended.
    pub fn detach(&self, id: u64) {
        self.lock().retain(|c| c.id() != id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Client>>> {
        crate::sync::lock(&self.clients)
    }
}

/// The server-wide "stop" signal every connection watches.
#[derive(Debug, Default)]
pub struct Shutdown {
    notify: Arc<Notify>,
    started: AtomicBool,
}

impl Shutdown {
    /// Tells every connection to finish its current response and close.
    pub fn start(&self) {
        self.started.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Resolves once shutdown has started.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_started() {
                return;
            }
            notified.await;
        }
    }
}

/// How a supervised connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// hyper finished with it (the client left, or it closed gracefully).
    Served,
    /// Dropped because its stream fell over its byte budget.
    Evicted,
    /// It did not finish within the grace period after shutdown began.
    Lingered,
}

pin_project! {
    /// Drives a hyper connection under the rules above.
    pub struct Supervised<C> {
        #[pin]
        conn: C,
        state: Arc<ConnState>,
        shutdown: Arc<Shutdown>,
        #[pin]
        stop: OwnedNotified,
        grace: Duration,
        linger: Option<Pin<Box<Sleep>>>,
    }
}

impl<C> Supervised<C>
where
    C: GracefulConnection,
{
    /// Supervises `conn`; `grace` bounds how long a graceful close may take.
    pub fn new(conn: C, state: Arc<ConnState>, shutdown: Arc<Shutdown>, grace: Duration) -> Self {
        Supervised {
            conn,
            state,
            stop: Arc::clone(&shutdown.notify).notified_owned(),
            shutdown,
            grace,
            linger: None,
        }
    }
}

impl<C> Future for Supervised<C>
where
    C: GracefulConnection,
{
    type Output = Ended;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        let mut this = self.project();
        // A stalled client stalls the whole connection (and, over HTTP/2,
        // every stream on it): once one is evicted the connection goes.
        for client in this.state.lock().iter() {
            client.register_watcher(cx.waker());
            if client.must_drop() {
                return Poll::Ready(Ended::Evicted);
            }
        }

        this.stop.as_mut().enable();
        let stopping = this.shutdown.is_started()
            || this.state.close_after_response.load(Ordering::Acquire)
            || this.stop.as_mut().poll(cx).is_ready();
        if stopping && this.linger.is_none() {
            this.conn.as_mut().graceful_shutdown();
            *this.linger = Some(Box::pin(tokio::time::sleep(*this.grace)));
        }
        if let Some(linger) = this.linger.as_mut() {
            if linger.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ended::Lingered);
            }
        }

        this.conn.poll(cx).map(|_| Ended::Served)
    }
}
