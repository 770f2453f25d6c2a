//! The server's lifecycle and its API: created idle, listening, closing.
//!
//! A [`Server`] is created idle (events sent before `listen` go to the
//! history), [`Server::listen`] binds and starts the accept loop
//! ([`crate::accept`]), and [`Server::close`] stops accepting, ends every
//! stream with its terminating chunk, waits for connections to finish
//! (bounded by a grace period, after which the stragglers are dropped) and
//! only then resolves. Streams for requests other servers accepted come in
//! through [`Server::take`] ([`crate::handoff`]).

use crate::accept::accept_loop;
use crate::backplane::{BackplaneStats, PublishError};
use crate::bind::{bind, ListenError, ListenErrorKind};
use crate::config::Config;
use crate::event::Event;
use crate::event::Payload;
use crate::handoff::{take, Answer, Handled, Handoff, Tracker};
use crate::hub::ChannelStats;
use crate::shared::Shared;
use crate::stats::StatsSnapshot;
use crate::tls::{TlsError, TlsPem};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why `send`/`comment` refused to accept anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// `close` was called: nothing more can be delivered.
    Closed,
    /// The Redis backplane is unreachable and its queue of waiting sends is
    /// full: the backplane's refusal, which is also the source.
    Unavailable(PublishError),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Closed => f.write_str("the server is closed; nothing more can be sent"),
            SendError::Unavailable(why) => why.fmt(f),
        }
    }
}

impl From<PublishError> for SendError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Closed => SendError::Closed,
            full => SendError::Unavailable(full),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Closed => None,
            SendError::Unavailable(why) => Some(why),
        }
    }
}

/// Why certificates could not be replaced.
#[derive(Debug, Clone)]
pub enum SetTlsError {
    /// The server was created without `tls`.
    NotTls,
    /// The new certificate or key is refused (the source); the old one stays.
    Invalid(TlsError),
}

impl std::fmt::Display for SetTlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetTlsError::NotTls => f.write_str("this server was created without the tls option"),
            SetTlsError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SetTlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetTlsError::NotTls => None,
            SetTlsError::Invalid(e) => Some(e),
        }
    }
}

enum State {
    Idle,
    Binding,
    Listening {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        accept_loop: JoinHandle<()>,
    },
    Closed,
}

/// A Server-Sent Events server: one hub, one listener, many streams.
pub struct Server {
    shared: Arc<Shared>,
    /// Streams for requests other servers accepted ([`Server::take`]).
    handed: Arc<Tracker>,
    state: Mutex<State>,
    /// Set as soon as `close` is called, so `send` refuses without a lock.
    closing: std::sync::atomic::AtomicBool,
}

impl Server {
    /// An idle server with `config`; nothing is bound until [`Server::listen`].
    pub fn new(config: Config) -> Self {
        Server {
            shared: Arc::new(Shared::new(config)),
            handed: Arc::default(),
            state: Mutex::new(State::Idle),
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Publishes `event` to `channels` (the default channel when empty). It is
    /// encoded once; the cost does not depend on the number of clients.
    /// Returns the event's global sequence number.
    /// With a backplane the event is queued for Redis instead, and the number
    /// is 0 (Redis numbers it).
    pub fn send(&self, event: Event, channels: &[&str]) -> Result<u64, SendError> {
        self.publish(channels, Payload::Event(event))
    }

    fn publish(&self, channels: &[&str], payload: Payload) -> Result<u64, SendError> {
        self.check_open()?;
        let gseq = self.shared.bus.publish(channels, &payload)?;
        match payload {
            Payload::Event(_) => self.shared.stats.event_accepted(),
            Payload::Comment(_) => self.shared.stats.comment_accepted(),
        }
        Ok(gseq)
    }

    /// Resolves once everything sent so far is stored in the backplane (at
    /// once without one: the local hub has it already).
    pub async fn flush(&self) -> Result<(), SendError> {
        Ok(self.shared.bus.flush().await?)
    }

    /// The backplane's state and counters, when there is one.
    pub fn backplane_stats(&self) -> Option<BackplaneStats> {
        self.shared.bus.backplane_stats()
    }

    /// Sends a comment (one `:` line per line of text) to `channels`.
    pub fn comment(&self, text: &str, channels: &[&str]) -> Result<u64, SendError> {
        self.publish(channels, Payload::Comment(text.to_owned()))
    }

    /// Sends `event` to one client only. `Ok(false)` when it is not connected.
    pub fn send_to(&self, client_id: u64, event: Event) -> Result<bool, SendError> {
        self.check_open()?;
        let sent = self.shared.hub().send_to(client_id, &Payload::Event(event));
        if sent {
            self.shared.stats.event_accepted();
        }
        Ok(sent)
    }

    /// Ends one client's stream cleanly. False when it is not connected.
    pub fn disconnect(&self, client_id: u64) -> bool {
        self.shared.hub().disconnect(client_id)
    }

    /// Replaces the TLS certificate and key for new connections.
    pub fn set_tls(&self, pem: &TlsPem) -> Result<(), SetTlsError> {
        match &self.shared.config.tls {
            Some(tls) => tls.reload(pem).map_err(SetTlsError::Invalid),
            None => Err(SetTlsError::NotTls),
        }
    }

    /// Subscribers and history per channel.
    pub fn channel_stats(&self) -> Vec<ChannelStats> {
        self.shared.hub().channel_stats()
    }

    fn check_open(&self) -> Result<(), SendError> {
        if self.closing.load(std::sync::atomic::Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        Ok(())
    }

    /// The state every connection shares (for the accept pipeline's tests).
    #[cfg(test)]
    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// The counters right now.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The address the server is listening on, if it is.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match *self.lock_state() {
            State::Listening { addr, .. } => Some(addr),
            _ => None,
        }
    }

    /// Whether `close` has been called (it may still be running).
    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether `close` has been called.
    pub fn is_closed(&self) -> bool {
        matches!(*self.lock_state(), State::Closed)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Binds `host:port` (port 0 picks a free port; no host means every
    /// interface, IPv6 and IPv4 where available) and starts serving. Must run
    /// inside a tokio runtime.
    pub async fn listen(&self, port: u16, host: Option<&str>) -> Result<SocketAddr, ListenError> {
        let shown_host = host.unwrap_or("::");
        {
            let mut state = self.lock_state();
            match *state {
                State::Idle => *state = State::Binding,
                State::Closed => {
                    return Err(ListenError::new(shown_host, port, ListenErrorKind::Closed))
                }
                _ => {
                    return Err(ListenError::new(
                        shown_host,
                        port,
                        ListenErrorKind::AlreadyListening,
                    ))
                }
            }
        }
        if let Err(e) = self.shared.bus.start().await {
            let mut state = self.lock_state();
            if matches!(*state, State::Binding) {
                *state = State::Idle;
            }
            return Err(ListenError::new(
                shown_host,
                port,
                ListenErrorKind::BackplaneUnavailable(e),
            ));
        }
        let bound = bind(port, host, self.shared.config.backlog).await;
        let mut state = self.lock_state();
        let listener = match bound {
            Ok(l) => l,
            Err(e) => {
                if matches!(*state, State::Binding) {
                    *state = State::Idle;
                }
                return Err(e);
            }
        };
        if !matches!(*state, State::Binding) {
            // close() ran while we were binding.
            return Err(ListenError::new(
                shown_host,
                port,
                ListenErrorKind::ClosedWhileStarting,
            ));
        }
        let addr = listener
            .local_addr()
            .map_err(|e| ListenError::io(e, "listen", shown_host, port))?;
        let (stop, stopped) = oneshot::channel();
        self.shared.start_background();
        let accept_loop = tokio::spawn(accept_loop(listener, Arc::clone(&self.shared), stopped));
        *state = State::Listening {
            addr,
            stop,
            accept_loop,
        };
        Ok(addr)
    }

    /// Stops accepting, ends every stream cleanly and waits until every
    /// connection is closed (or the grace period ran out and the rest were
    /// dropped). Idempotent; safe to call before `listen`.
    pub async fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
        // Before the streams end: what was sent reaches Redis, and this
        // instance's own clients get it.
        self.shared
            .bus
            .close(self.shared.config.shutdown_grace)
            .await;
        let previous = std::mem::replace(&mut *self.lock_state(), State::Closed);
        match previous {
            State::Listening {
                stop, accept_loop, ..
            } => {
                let _ = stop.send(());
                let _ = accept_loop.await;
            }
            _ => self.shared.hub().close(),
        }
        // The hub is closed: every handed-over stream is ending too.
        self.handed.wait(self.shared.config.shutdown_grace).await;
    }

    /// Takes over a stream request another server accepted (Node's `http`,
    /// `https`, `http2`, a fetch-style handler): the same admission, limits
    /// and placement as a request `listen()` accepted. The stream it may
    /// start is then served on the connection's socket or through the other
    /// server ([`crate::handoff`]). A server that never listens serves these
    /// too. `Err` after `close()`.
    pub async fn take(&self, handoff: Handoff) -> Result<Handled, SendError> {
        self.check_open()?;
        // As `listen()` would: no stream before the backplane is there.
        if let Err(e) = self.shared.bus.start().await {
            return Ok(Handled::Reply(Answer::unavailable(&format!("{e}\n"))));
        }
        Ok(take(&self.shared, &self.handed, handoff).await)
    }

    /// How many handed-over streams are being carried now.
    pub fn handed_streams(&self) -> usize {
        self.handed.open()
    }
}
