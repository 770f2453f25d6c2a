//! One accepted connection, supervised: served by hyper, shut down gracefully
//! on request, given a `408` when its first request head never completes, and
//! dropped as a slow client when its stream falls over its byte budget.
//!
//! A client that stops reading fills its socket and hyper's write buffer;
//! hyper then stops polling the response body, so the stream itself can no
//! longer notice that it lags. The supervisor registers the connection's task
//! with the client, so every publish still wakes it, and drops the connection
//! (closing the socket, freeing everything queued for it) once the client is
//! marked evicted.

use crate::hub::{Client, Progress};
use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;
use tokio::time::Sleep;

/// What a connection's request handlers share with its supervisor.
#[derive(Default)]
pub struct ConnState {
    /// What the socket has taken so far, and whether it is full.
    pub progress: Arc<Progress>,
    /// Request heads received so far.
    pub requests: AtomicU64,
    /// The client whose stream this connection carries, while it does.
    pub client: Mutex<Option<Arc<Client>>>,
    /// Set when the connection should close after its current response
    /// (its stream was ended by the server).
    pub close_after_response: AtomicBool,
}

impl ConnState {
    /// Notes that the stream of `client` runs on this connection.
    pub fn attach(&self, client: Arc<Client>) {
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client);
    }

    /// Notes that the stream ended.
    pub fn detach(&self) {
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = None;
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
    /// The first request head did not arrive in time; `408` was sent.
    HeaderTimeout,
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
        socket: Arc<TcpStream>,
        header_deadline: Option<Pin<Box<Sleep>>>,
        grace: Duration,
        linger: Option<Pin<Box<Sleep>>>,
    }
}

impl<C> Supervised<C>
where
    C: GracefulConnection,
{
    /// Supervises `conn` on `socket`. A `header_timeout` applies to the first
    /// request head; `grace` bounds how long a graceful close may take.
    pub fn new(
        conn: C,
        state: Arc<ConnState>,
        shutdown: Arc<Shutdown>,
        socket: Arc<TcpStream>,
        header_timeout: Option<Duration>,
        grace: Duration,
    ) -> Self {
        Supervised {
            conn,
            state,
            stop: Arc::clone(&shutdown.notify).notified_owned(),
            shutdown,
            socket,
            header_deadline: header_timeout.map(|t| Box::pin(tokio::time::sleep(t))),
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
        if let Some(client) = this
            .state
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            client.register(cx.waker());
            if client.is_evicted() || (client.over_budget() && client.evict()) {
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

        if let Some(deadline) = this.header_deadline.as_mut() {
            if this.state.requests.load(Ordering::Acquire) > 0 {
                *this.header_deadline = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                // Best effort: the client may not be reading either.
                let _ = this.socket.try_write(
                    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\nrequest header timeout\r\n",
                );
                let _ = crate::io::shutdown_write(this.socket);
                return Poll::Ready(Ended::HeaderTimeout);
            }
        }

        this.conn.poll(cx).map(|_| Ended::Served)
    }
}
