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
//!
//! Two small pieces every transport shares live here too: [`ConnState`],
//! what the streams on one connection report to whoever carries them
//! (hyper, a direct stream, a handed-over one), and [`Shutdown`], the
//! server-wide stop signal connections watch while their first request head
//! is read and while hyper serves them.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Payload;
    use crate::hub::{Eviction, Hub, Retention, Subscriber, Subscription};
    use crate::io::tests::{read_to_close, SOON};
    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use std::convert::Infallible;
    use tokio::io::{AsyncWriteExt, DuplexStream};
    use tokio::time::{timeout, Instant};

    type Answer = Result<http::Response<Empty<Bytes>>, Infallible>;

    /// A hyper HTTP/1.1 connection on one end of an in-memory pipe (the
    /// other end is the client), answering every request with `answer`.
    fn serve<F>(
        answer: impl Fn() -> F + Send + 'static,
    ) -> (impl GracefulConnection + Send, DuplexStream)
    where
        F: Future<Output = Answer> + Send + 'static,
    {
        let (server, client) = tokio::io::duplex(64 * 1024);
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new());
        let conn = builder.serve_connection(TokioIo::new(server), service_fn(move |_| answer()));
        (conn, client)
    }

    /// Sends `request` and reads the answer until the connection closes.
    async fn ask(client: &mut DuplexStream, request: &[u8]) -> Vec<u8> {
        client.write_all(request).await.unwrap();
        read_to_close(client).await
    }

    /// How a supervised connection running on its own task ended.
    async fn ended(supervised: tokio::task::JoinHandle<Ended>) -> Ended {
        timeout(SOON, supervised)
            .await
            .expect("it ended in time")
            .unwrap()
    }

    async fn ok() -> Answer {
        Ok(http::Response::new(Empty::new()))
    }

    fn hub(budget: u64) -> Arc<Hub> {
        Hub::new(Retention {
            history: 0,
            max_buffered_bytes: budget,
            stall_timeout: None,
        })
    }

    /// A client of `hub` on the default channel, carried by `state`.
    fn attached(hub: &Arc<Hub>, state: &ConnState) -> Subscriber {
        let progress = Arc::clone(&state.progress);
        let (subscriber, _) =
            hub.subscribe(Subscription::new(hub.next_client_id(), &[], None, progress));
        state.attach(Arc::clone(subscriber.client()));
        subscriber
    }

    fn ids(state: &ConnState) -> Vec<u64> {
        state.lock().iter().map(|c| c.id()).collect()
    }

    #[test]
    fn a_detached_stream_leaves_the_others_on_the_connection() {
        let hub = hub(1 << 20);
        let state = ConnState::default();
        let a = attached(&hub, &state);
        let b = attached(&hub, &state);
        assert_eq!(ids(&state), [a.client().id(), b.client().id()]);
        state.detach(a.client().id());
        assert_eq!(ids(&state), [b.client().id()]);
        state.detach(a.client().id());
        assert_eq!(ids(&state), [b.client().id()]);
    }

    #[tokio::test]
    async fn shutdown_wakes_those_waiting_and_lets_later_waiters_through() {
        let shutdown = Arc::new(Shutdown::default());
        let waiting = tokio::spawn({
            let shutdown = Arc::clone(&shutdown);
            async move { shutdown.wait().await }
        });
        assert!(timeout(Duration::from_millis(50), shutdown.wait())
            .await
            .is_err());
        shutdown.start();
        timeout(SOON, waiting).await.unwrap().unwrap();
        timeout(SOON, shutdown.wait()).await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_hyper_finishes_ends_as_served() {
        let (conn, mut client) = serve(ok);
        let state = Arc::new(ConnState::default());
        let shutdown = Arc::new(Shutdown::default());
        let supervised = tokio::spawn(Supervised::new(conn, state, shutdown, SOON));
        let answer = ask(
            &mut client,
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
        assert_eq!(ended(supervised).await, Ended::Served);
    }

    #[tokio::test]
    async fn a_connection_whose_client_is_evicted_is_dropped_while_hyper_waits() {
        let (conn, _client) = serve(ok);
        let hub = hub(1 << 20);
        let state = Arc::new(ConnState::default());
        let subscriber = attached(&hub, &state);
        let shutdown = Arc::new(Shutdown::default());
        let supervised = tokio::spawn(Supervised::new(conn, Arc::clone(&state), shutdown, SOON));
        // hyper waits for a request that never comes: only the eviction
        // can wake the connection's task.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!supervised.is_finished());
        subscriber.client().evict(Eviction::Stall);
        let ended = ended(supervised).await;
        assert_eq!(ended, Ended::Evicted);
    }

    #[tokio::test]
    async fn a_client_over_its_budget_on_a_full_socket_is_dropped_at_the_next_publish() {
        let (conn, _client) = serve(ok);
        let hub = hub(100);
        tokio::spawn(Arc::clone(&hub).run_fanout());
        let state = Arc::new(ConnState::default());
        let subscriber = attached(&hub, &state);
        state.progress.blocked.store(true, Ordering::Relaxed);
        let shutdown = Arc::new(Shutdown::default());
        let supervised = tokio::spawn(Supervised::new(conn, Arc::clone(&state), shutdown, SOON));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!supervised.is_finished());
        let big = Payload::Event(crate::event::Event::message("x".repeat(200)));
        hub.publish(&[], &big);
        let ended = ended(supervised).await;
        assert_eq!(ended, Ended::Evicted);
        assert_eq!(subscriber.client().eviction(), Some(Eviction::Budget));
    }

    #[tokio::test]
    async fn an_idle_connection_closes_at_once_when_shutdown_starts() {
        let (conn, mut client) = serve(ok);
        let state = Arc::new(ConnState::default());
        let shutdown = Arc::new(Shutdown::default());
        let grace = Duration::from_secs(30);
        let supervised = tokio::spawn(Supervised::new(conn, state, Arc::clone(&shutdown), grace));
        tokio::time::sleep(Duration::from_millis(20)).await;
        shutdown.start();
        // (Well within the grace: `SOON` is shorter.)
        assert_eq!(ended(supervised).await, Ended::Served);
        assert_eq!(read_to_close(&mut client).await, b"");
    }

    #[tokio::test]
    async fn a_connection_that_lingers_past_the_grace_period_after_shutdown_is_dropped() {
        // A request whose answer never comes keeps hyper from closing.
        let (conn, mut client) = serve(std::future::pending::<Answer>);
        let state = Arc::new(ConnState::default());
        let shutdown = Arc::new(Shutdown::default());
        let grace = Duration::from_millis(200);
        let supervised = tokio::spawn(Supervised::new(conn, state, Arc::clone(&shutdown), grace));
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let began = Instant::now();
        shutdown.start();
        let ended = ended(supervised).await;
        assert_eq!(ended, Ended::Lingered);
        assert!(began.elapsed() >= grace, "{:?}", began.elapsed());
    }

    #[tokio::test]
    async fn a_connection_asked_to_close_after_its_response_closes_once_it_is_written() {
        let state = Arc::new(ConnState::default());
        let answer = {
            let state = Arc::clone(&state);
            move || {
                let state = Arc::clone(&state);
                // As a stream ended by the server does: set the flag, and
                // get the connection's task polled again.
                std::future::poll_fn(move |cx| {
                    state.close_after_response.store(true, Ordering::Release);
                    cx.waker().wake_by_ref();
                    Poll::Ready(Ok(http::Response::new(Empty::new())))
                })
            }
        };
        let (conn, mut client) = serve(answer);
        let shutdown = Arc::new(Shutdown::default());
        let grace = Duration::from_secs(30);
        let supervised = tokio::spawn(Supervised::new(conn, state, shutdown, grace));
        // Keep-alive asked for: only the flag closes the connection.
        let answer = ask(&mut client, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{answer:?}");
        assert!(answer.ends_with(b"\r\n\r\n"), "{answer:?}");
        assert_eq!(ended(supervised).await, Ended::Served);
    }
}
