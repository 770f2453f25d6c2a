//! Where sends go and where clients join: the local hub alone, or the hub
//! fed through a Redis backplane. The one place that choice is made: the
//! server and routing call the [`Bus`] and never ask which it is.

use crate::backplane::{Backplane, BackplaneStats, ConnectError, PublishError, Reporter};
use crate::config::Config;
use crate::event::Payload;
use crate::hub::{Hub, Subscriber, Subscription};
use std::sync::Arc;
use std::time::Duration;

/// The hub, with or without a backplane.
pub enum Bus {
    /// One instance: `send` publishes into the hub.
    Local(Arc<Hub>),
    /// Several instances through Redis: `send` queues for Redis, and the
    /// backplane's reader feeds the hub.
    Redis {
        /// The hub the backplane feeds.
        hub: Arc<Hub>,
        /// The backplane.
        backplane: Backplane,
    },
}

impl Bus {
    /// The bus `config` asks for; with `redis`, backplane problems are
    /// reported to `onError(err, 'redis')` (or stderr without one).
    pub fn new(config: &Config) -> Self {
        let Some(options) = &config.redis else {
            return Bus::Local(Hub::new(config.retention));
        };
        let remote = Hub::new_remote(config.retention);
        let hub = Arc::clone(remote.hub());
        let on_error = config.hooks.on_error.clone();
        let report: Reporter = Arc::new(move |error| match &on_error {
            Some(on_error) => on_error("redis", error),
            None => eprintln!("hyper-sse: {error}"),
        });
        let backplane = Backplane::new(options, remote, config.retention.history, report);
        Bus::Redis { hub, backplane }
    }

    /// The hub clients read from.
    pub fn hub(&self) -> &Arc<Hub> {
        match self {
            Bus::Local(hub) | Bus::Redis { hub, .. } => hub,
        }
    }

    /// Makes the bus ready for clients: connects the backplane (a server
    /// that cannot reach it should not take clients). At once when local.
    pub async fn start(&self) -> Result<(), ConnectError> {
        match self {
            Bus::Local(_) => Ok(()),
            Bus::Redis { backplane, .. } => backplane.start().await,
        }
    }

    /// Publishes to `channels` (the default channel when empty). Returns
    /// the event's sequence number; 0 with a backplane, where Redis
    /// numbers it later.
    pub fn publish(&self, channels: &[&str], payload: &Payload) -> Result<u64, PublishError> {
        match self {
            Bus::Local(hub) => Ok(hub.publish(channels, payload)),
            Bus::Redis { backplane, .. } => backplane.publish(channels, payload).map(|()| 0),
        }
    }

    /// Resolves once everything sent so far is where clients read it (at
    /// once when local: the hub has it already).
    pub async fn flush(&self) -> Result<(), PublishError> {
        match self {
            Bus::Local(_) => Ok(()),
            Bus::Redis { backplane, .. } => backplane.flush().await,
        }
    }

    /// Joins a client to its channels where it resumes; true with it when
    /// its `Last-Event-ID` could not be resumed from (it starts live).
    pub async fn subscribe(&self, request: Subscription<'_>) -> (Subscriber, bool) {
        match self {
            Bus::Local(hub) => hub.subscribe(request),
            Bus::Redis { backplane, .. } => backplane.subscribe(request).await,
        }
    }

    /// Whether `last_event_id` would be stale for `channels`, for the
    /// connect hook's preview (the real answer comes with `subscribe`).
    pub async fn is_stale(&self, last_event_id: Option<&str>, channels: &[String]) -> bool {
        match self {
            Bus::Local(hub) => hub.resolve(last_event_id, channels).1,
            Bus::Redis { backplane, .. } => backplane.is_stale(last_event_id, channels).await,
        }
    }

    /// Stops taking sends and delivers what was accepted (with a
    /// backplane: to Redis and back to this instance's clients, for up to
    /// `grace`). The hub itself is closed by whoever ends the streams.
    pub async fn close(&self, grace: Duration) {
        if let Bus::Redis { backplane, .. } = self {
            backplane.close(grace).await;
        }
    }

    /// The backplane's state and counters, when there is one.
    pub fn backplane_stats(&self) -> Option<BackplaneStats> {
        match self {
            Bus::Local(_) => None,
            Bus::Redis { backplane, .. } => Some(backplane.stats()),
        }
    }
}
