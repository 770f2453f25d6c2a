//! The hub's background work: the fan-out task (wake the clients of every
//! channel that received something, evict the ones over budget, trim logs)
//! and the stall watchdog.

use super::client::{stall_looks, Eviction};
use super::Channel;
use super::Hub;
use crate::sync::{lock, read_lock, write_lock};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl Hub {
    /// Lets the fan-out task know `targets` received something.
    pub(super) fn schedule(&self, targets: Vec<Arc<Channel>>) {
        let mut dirty = lock(&self.dirty);
        for ch in targets {
            if !ch.dirty.swap(true, Ordering::AcqRel) {
                dirty.push(ch);
            }
        }
        drop(dirty);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.pending.notify_one();
        }
    }

    /// The fan-out task: wakes the clients of every channel that received
    /// something, evicts clients over budget, trims logs. Runs until closed.
    pub async fn run_fanout(self: Arc<Self>) {
        loop {
            self.pending.notified().await;
            self.round();
            if self.is_closed() {
                return;
            }
        }
    }

    /// One round of the fan-out task over the channels that asked for it.
    pub(super) fn round(&self) {
        // Cleared before taking the lists: a send after this point either
        // lands in the lists taken below or schedules another round.
        self.scheduled.store(false, Ordering::Release);
        let dirty = std::mem::take(&mut *lock(&self.dirty));
        let trims = std::mem::take(&mut *lock(&self.trims));
        for ch in dirty {
            ch.dirty.store(false, Ordering::Release);
            // A channel's fan-out trims it too: a trim asked for before
            // this point is done by it. A swap, not a store, so that the
            // cursor moves of whoever asked are seen by the fan-out.
            ch.trim_due.swap(false, Ordering::AcqRel);
            self.fan_out(&ch, true);
        }
        for ch in trims {
            if ch.trim_due.swap(false, Ordering::AcqRel) {
                self.fan_out(&ch, false);
            }
        }
    }

    /// One channel's round: with `wake`, wakes every subscriber (something
    /// was published); always evicts the ones over budget and trims the log
    /// to what the slowest remaining one still needs.
    pub(super) fn fan_out(&self, ch: &Channel, wake: bool) {
        ch.join_floor.store(u64::MAX, Ordering::Release);
        let mut slowest = u64::MAX;
        for (_, (client, idx)) in read_lock(&ch.subscribers).iter() {
            if wake {
                client.waker.wake();
            }
            if client.must_drop() {
                continue;
            }
            slowest = slowest.min(client.cursors[*idx].0.load(Ordering::Acquire));
        }
        let mut log = write_lock(&ch.log);
        let slowest = slowest.min(ch.join_floor.load(Ordering::Acquire));
        ch.trim_locked(&mut log, slowest, self.retention.history);
    }

    /// Asks the fan-out task to trim `ch` (its slowest reader moved on or
    /// left); one request per channel is pending at a time.
    pub(super) fn request_trim(&self, ch: &Arc<Channel>) {
        if ch.trim_due.swap(true, Ordering::AcqRel) {
            return;
        }
        lock(&self.trims).push(Arc::clone(ch));
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.pending.notify_one();
        }
    }

    /// The stall watchdog: evicts every client that had data waiting and
    /// made no progress for `stall_timeout`, looking every tenth of it (at
    /// most every second). This is what catches a client that stopped
    /// reading on a channel that then went quiet: nothing else would look at
    /// it again, and it would hold the log for ever. Runs until closed;
    /// returns at once when the rule is off.
    pub async fn run_watchdog(self: Arc<Self>) {
        let Some(limit) = self.retention.stall_timeout else {
            return;
        };
        let tick = (limit / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let looks = stall_looks(limit, tick);
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.is_closed() {
            interval.tick().await;
            for client in read_lock(&self.clients).values() {
                if client.stalled_for(looks) {
                    client.evict(Eviction::Stall);
                }
            }
        }
    }
}
