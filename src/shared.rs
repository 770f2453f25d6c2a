//! What every connection, the accept loop, routing and the API share: the
//! configuration, the bus and its hub, the counters and the limits.

use crate::bus::Bus;
use crate::config::Config;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::stats::Stats;
use std::sync::Arc;

/// State shared by the accept loop, every connection and the API.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Where sends go and clients join (local, or through Redis).
    pub(crate) bus: Bus,
    pub(crate) stats: Arc<Stats>,
    pub(crate) limits: Arc<Limits>,
    /// The retry hint block, encoded once.
    pub(crate) preamble: Option<crate::event::Encoded>,
    /// Whether the hub's fan-out and stall watchdog run yet: started by
    /// `listen()`, or by the first handed-over stream.
    background: std::sync::Once,
}

impl Shared {
    /// The shared state of a server built from `config`.
    pub(crate) fn new(config: Config) -> Self {
        let config = config.clamped();
        Shared {
            bus: Bus::new(&config),
            preamble: config.retry.map(crate::event::retry_hint),
            limits: Limits::new(config.max_connections, config.max_connections_per_ip),
            config,
            stats: Arc::new(Stats::default()),
            background: std::sync::Once::new(),
        }
    }

    /// The hub every stream reads from.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        self.bus.hub()
    }

    /// Starts the hub's background tasks once (on the current runtime).
    pub(crate) fn start_background(&self) {
        self.background.call_once(|| {
            tokio::spawn(Arc::clone(self.hub()).run_fanout());
            tokio::spawn(Arc::clone(self.hub()).run_watchdog());
        });
    }
}
