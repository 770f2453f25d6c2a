//! Remote mode: a hub fed by a backplane (Redis) instead of by `publish`.
//!
//! Events arrive from the backplane's reader already numbered in the
//! backplane's global order ([`Remote::publish`]); the logs are then a local
//! cache of the backplane's history, complete for each channel from the
//! moment it started being read (its `since`). Only the backplane holds a
//! [`Remote`], so the operations that exist for it are not reachable from
//! the local paths; the two things that differ inside the hub are the rules
//! of [`Feed`].

use super::subscriber::Subscriber;
use super::{Hub, IdSpace, Retention, Subscription};
use crate::event::Encoded;
use crate::sync::{lock, read_lock, write_lock};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Where a hub's events come from: the two rules that differ between a hub
/// that numbers its own events and one a backplane feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feed {
    /// `publish` numbers and appends events here.
    Local,
    /// A backplane numbers them ([`Remote::publish`]).
    Backplane,
}

impl Feed {
    /// Whether an event sent to one client takes a sequence number of its
    /// own. With a backplane the numbers are the backplane's: a private send
    /// is placed after the newest event, without one.
    pub(super) fn numbers_private_sends(self) -> bool {
        self == Feed::Local
    }

    /// Whether the logs are only a cache of a history kept elsewhere: they
    /// answer a `Last-Event-ID` only when every channel is here and was read
    /// since before it, and a channel without subscribers is forgotten.
    pub(super) fn logs_are_a_cache(self) -> bool {
        self == Feed::Backplane
    }
}

/// The backplane's handle on the hub it feeds: the hub (for the server and
/// its streams), plus what only a backplane may do to it.
pub struct Remote {
    hub: Arc<Hub>,
}

impl Hub {
    /// An empty hub fed by a backplane, and the backplane's handle on it;
    /// its ids are set by the backplane ([`Remote::set_id_space`]).
    pub fn new_remote(retention: Retention) -> Remote {
        Remote {
            hub: Hub::build(retention, IdSpace::unknown(), Feed::Backplane),
        }
    }
}

impl Remote {
    /// The hub itself, as the server and its streams use it.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Publishes an event the backplane numbered `gseq` (greater than every
    /// earlier one) to those of `channels` this hub has, with its bytes
    /// already encoded. Refused (false, nothing published) when the channel
    /// set changed since `generation`: the reader must first read the new
    /// set, or a channel created meanwhile would miss earlier events.
    pub fn publish(
        &self,
        generation: u64,
        gseq: u64,
        channels: &[&str],
        bytes: Encoded,
        id: Option<Arc<str>>,
    ) -> bool {
        let hub = &self.hub;
        let mut next = lock(&hub.publish);
        if hub.generation.load(Ordering::Acquire) != generation {
            return false;
        }
        // A channel's log holds what came after its `since`, in order: an
        // older event (read for a channel since created again) is not its.
        let targets: Vec<_> = {
            let map = read_lock(&hub.channels);
            channels
                .iter()
                .filter_map(|c| map.get(*c).cloned())
                .filter(|ch| gseq > ch.since)
                .collect()
        };
        *next = (*next).max(gseq + 1);
        hub.commit(next, targets, gseq, bytes, id);
        true
    }

    /// The backplane's numbering already stands at `gseq` when this hub
    /// starts, so "live" means "after `gseq`".
    pub fn start_at(&self, gseq: u64) {
        let mut next = lock(&self.hub.publish);
        *next = (*next).max(gseq + 1);
        self.hub.committed.store(gseq, Ordering::Release);
    }

    /// Changes how automatic ids are spelled: the backplane's data set, and
    /// where its numbering starts in this hub.
    pub fn set_id_space(&self, ids: IdSpace) {
        *write_lock(&self.hub.ids) = ids;
    }

    /// How automatic ids are spelled right now.
    pub fn id_space(&self) -> IdSpace {
        read_lock(&self.hub.ids).clone()
    }

    /// Asks to be told whenever the set of channels changes. Only the first
    /// caller is registered (one backplane reader per hub).
    pub fn on_channels_changed(&self, notify: Box<dyn Fn() + Send + Sync>) {
        let _ = self.hub.on_channels_changed.set(notify);
    }

    /// The channel set's version, bumped on every change.
    pub fn generation(&self) -> u64 {
        self.hub.generation.load(Ordering::Acquire)
    }

    /// Every channel the hub has (with subscribers or history), with the
    /// sequence number its log is complete after.
    pub fn channel_starts(&self) -> Vec<(String, u64)> {
        read_lock(&self.hub.channels)
            .values()
            .map(|c| (c.name.to_string(), c.since))
            .collect()
    }

    /// Whether every one of `channels` (the default channel when empty) exists here.
    pub fn has_channels(&self, channels: &[String]) -> bool {
        let map = read_lock(&self.hub.channels);
        crate::channel::normalize(channels)
            .iter()
            .all(|c| map.contains_key(*c))
    }

    /// Records that the events of channel `name` up to `through` never
    /// reached this hub (the backplane trimmed them before they were read):
    /// ids before the gap become stale, and the channel's clients are
    /// dropped (as too slow) so they reconnect and learn it, rather than
    /// silently missing events. Returns how many clients were dropped.
    pub fn mark_gap(&self, name: &str, through: u64) -> usize {
        let Some(ch) = read_lock(&self.hub.channels).get(name).cloned() else {
            return 0;
        };
        ch.trimmed_gseq.fetch_max(through, Ordering::AcqRel);
        let subscribers = read_lock(&ch.subscribers);
        subscribers
            .iter()
            .filter(|(_, (client, _))| client.evict(super::Eviction::Gap))
            .count()
    }

    /// [`Hub::subscribe`] where `floor` is the backplane's position when the
    /// client arrived. Channels new here start after it, and so does the
    /// client when it starts live: events numbered before it happened
    /// before the client came, even if this hub has not read them.
    pub fn subscribe(&self, request: Subscription<'_>, floor: u64) -> (Subscriber, bool) {
        self.hub.subscribe_at(request, floor)
    }

    /// Queues a replay fetched from the backplane's history for `subscriber`:
    /// `(sequence number, bytes)` in order, all at or before where the
    /// client started, so they go out before anything live. Not counted
    /// against the byte budget, like a replay from the local logs.
    pub fn preload(&self, subscriber: &mut Subscriber, events: Vec<(u64, Encoded)>) {
        let mut private = lock(&subscriber.client.private);
        for (i, (gseq, bytes)) in events.into_iter().enumerate() {
            private.insert(i, (gseq, bytes, false));
        }
    }

    /// Treats everything up to `gseq` as already delivered to `subscriber`:
    /// a client that resumes from an id this hub has not caught up with yet.
    pub fn skip_through(&self, subscriber: &mut Subscriber, gseq: u64) {
        subscriber.last_gseq = subscriber.last_gseq.max(gseq);
    }
}
