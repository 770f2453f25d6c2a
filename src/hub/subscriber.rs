//! One client's reading side: gather what is waiting in its channels' logs
//! and its private queue, merge it into one batch in global order, advance
//! its cursors past it. Dropping it unsubscribes.

use super::client::Client;
use super::log::Entry;
use super::Hub;
use crate::event::Encoded;
use crate::sync::{lock, read_lock, write_lock};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The most entries one read takes from one source, so a client catching up
/// never holds a lock for long or builds one huge write.
pub const MAX_BATCH_EVENTS: usize = 256;
/// The most bytes one read takes from one source (a single larger event still goes whole).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// What a client finds when it reads.
#[derive(Debug)]
pub enum Read {
    /// Events in global order; the cursors have moved past them.
    Events(Vec<Encoded>),
    /// Nothing new yet.
    Empty,
    /// Over budget or fallen off a log: the connection must be dropped.
    Lagged,
    /// Caught up, and the stream should now close cleanly (server closing,
    /// or `disconnect`).
    Close,
}

/// One client's reading side, owned by its stream. Dropping it unsubscribes.
pub struct Subscriber {
    pub(super) hub: Arc<Hub>,
    pub(super) client: Arc<Client>,
    /// Next local sequence number per channel (mirrors `client.cursors`).
    pub(super) local: Vec<u64>,
    /// The newest global sequence number delivered.
    pub(super) last_gseq: u64,
}

/// What one source (a channel's log, or the private queue) has ready.
struct Source {
    taken: Vec<Entry>,
    /// Whether more committed entries were left behind by the batch limit.
    truncated: bool,
}

/// Everything ready for the client, one [`Source`] per channel and the
/// private queue last.
struct Gathered {
    sources: Vec<Source>,
    /// Per channel: whether this client is at the front of a log longer
    /// than the history, so moving on may let it trim.
    holds_front: Vec<bool>,
}

impl Subscriber {
    /// The shared side, for the connection and for callbacks.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Whether the hub is closing (every stream ends once caught up).
    pub fn hub_is_closed(&self) -> bool {
        self.hub.is_closed()
    }

    /// Takes what is queued for the client, in global order.
    pub fn read(&mut self) -> Read {
        if self.client.is_evicted() {
            return Read::Lagged;
        }
        let Some(gathered) = self.gather() else {
            return Read::Lagged;
        };
        let (batch, heads) = merge(&gathered.sources, &mut self.last_gseq);
        self.advance(&gathered, &heads);
        if !batch.is_empty() {
            return Read::Events(batch);
        }
        if self.hub.is_closed() || self.client.disconnect_requested() {
            return Read::Close;
        }
        Read::Empty
    }

    /// Takes, from each channel's log and then the private queue, what is
    /// committed and not read yet (within the batch limits). `None` when
    /// the client fell off a log: what it had not read was trimmed.
    fn gather(&self) -> Option<Gathered> {
        let client = &self.client;
        let horizon = self
            .hub
            .committed
            .load(Ordering::Acquire)
            .min(client.stop_at.load(Ordering::Acquire));
        let mut sources = Vec::with_capacity(client.channels.len() + 1);
        let mut holds_front = Vec::with_capacity(client.channels.len());
        for (i, ch) in client.channels.iter().enumerate() {
            let log = read_lock(&ch.log);
            if self.local[i] < log.first_seq {
                return None;
            }
            holds_front.push(
                self.local[i] == log.first_seq && log.entries.len() > self.hub.retention.history,
            );
            let start = (self.local[i] - log.first_seq) as usize;
            sources.push(take(log.entries.range(start..).cloned(), horizon));
        }
        // The private queue only ever holds complete entries, and in remote
        // mode it may hold a replay numbered past what this hub has read:
        // only a disconnect bounds it.
        let private = lock(&client.private);
        let entries = private.iter().map(|(gseq, bytes, _)| Entry {
            gseq: *gseq,
            bytes: bytes.clone(),
        });
        sources.push(take(entries, client.stop_at.load(Ordering::Acquire)));
        Some(Gathered {
            sources,
            holds_front,
        })
    }

    /// Moves the cursors past what [`merge`] consumed (`heads[i]` entries of
    /// source `i`), frees the private queue's share of the budget, and asks
    /// for a trim where this client held a log's front.
    fn advance(&mut self, gathered: &Gathered, heads: &[usize]) {
        let private_idx = gathered.sources.len() - 1;
        for (i, (source, &h)) in gathered.sources.iter().zip(heads).enumerate() {
            if h == 0 {
                continue;
            }
            if i == private_idx {
                self.pop_private(h);
                continue;
            }
            self.local[i] += h as u64;
            let consumed: u64 = source.taken[..h].iter().map(|e| e.bytes.len() as u64).sum();
            let (seq, offset) = &self.client.cursors[i];
            seq.store(self.local[i], Ordering::Release);
            offset.fetch_add(consumed, Ordering::AcqRel);
            if gathered.holds_front[i] {
                self.hub.request_trim(&self.client.channels[i]);
            }
        }
    }

    /// Drops the first `n` entries of the private queue, read now.
    fn pop_private(&self, n: usize) {
        let mut private = lock(&self.client.private);
        let mut freed = 0;
        for _ in 0..n {
            if let Some((_, bytes, counted)) = private.pop_front() {
                if counted {
                    freed += bytes.len() as u64;
                }
            }
        }
        self.client
            .private_bytes
            .fetch_sub(freed, Ordering::Relaxed);
    }

    /// The newest sequence number the client has (or is treated as having).
    pub fn last_gseq(&self) -> u64 {
        self.last_gseq
    }
}

/// The entries of one source up to `horizon`, within the batch limits.
fn take(entries: impl Iterator<Item = Entry>, horizon: u64) -> Source {
    let mut taken = Vec::new();
    let mut bytes = 0;
    let mut truncated = false;
    for e in entries {
        if e.gseq > horizon {
            break;
        }
        if !taken.is_empty()
            && (taken.len() == MAX_BATCH_EVENTS || bytes + e.bytes.len() > MAX_BATCH_BYTES)
        {
            truncated = true;
            break;
        }
        bytes += e.bytes.len();
        taken.push(e);
    }
    Source { taken, truncated }
}

/// Merges the sources (the private queue last) into one batch in global
/// order, each channel event once however many of the client's channels
/// had it and only if newer than `last_gseq`, which moves on. Returns the
/// batch and how many entries of each source it consumed.
fn merge(sources: &[Source], last_gseq: &mut u64) -> (Vec<Encoded>, Vec<usize>) {
    // A source cut short by the batch limit bounds what may be delivered now,
    // or its later entries would be overtaken by other sources'.
    let limit = sources
        .iter()
        .filter(|s| s.truncated)
        .filter_map(|s| s.taken.last().map(|e| e.gseq))
        .min()
        .unwrap_or(u64::MAX);
    let mut batch = Vec::new();
    let mut heads = vec![0usize; sources.len()];
    let private_idx = sources.len() - 1;
    loop {
        let next = sources
            .iter()
            .zip(&heads)
            .filter_map(|(s, &h)| s.taken.get(h).map(|e| e.gseq))
            .filter(|&g| g <= limit)
            .min();
        let Some(gseq) = next else { break };
        let mut pushed = false;
        for (i, (s, h)) in sources.iter().zip(heads.iter_mut()).enumerate() {
            let Some(e) = s.taken.get(*h).filter(|e| e.gseq == gseq) else {
                continue;
            };
            // The private queue's entries are the client's own and always
            // go out, after the channel event of the same number.
            if i == private_idx {
                batch.push(e.bytes.clone());
            } else if !pushed && gseq > *last_gseq {
                batch.push(e.bytes.clone());
                pushed = true;
            }
            *h += 1;
        }
        *last_gseq = (*last_gseq).max(gseq);
    }
    (batch, heads)
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        write_lock(&self.hub.clients).remove(&self.client.id());
        let slots = std::mem::take(&mut *lock(&self.client.slots));
        let _publish = lock(&self.hub.publish);
        for (ch, slot) in self.client.channels.iter().zip(slots) {
            let mut subs = write_lock(&ch.subscribers);
            if subs.contains(slot) {
                subs.remove(slot);
            }
            let alone = subs.is_empty();
            drop(subs);
            // A channel with neither subscribers nor history is forgotten, so
            // clients naming channels at will cannot grow the map for ever.
            // With a backplane one without subscribers is forgotten too: the
            // backplane keeps its history, and the reader stops reading it.
            if alone && (self.hub.feed.logs_are_a_cache() || read_lock(&ch.log).entries.is_empty())
            {
                write_lock(&self.hub.channels).remove(&ch.name);
                self.hub.channels_changed();
                continue;
            }
            // What only this client still needed goes now, not at the
            // channel's next send: without readers, down to the history at
            // once; with others, as far as the slowest of them allows.
            let history = self.hub.retention.history;
            if alone {
                ch.trim_locked(&mut write_lock(&ch.log), u64::MAX, history);
            } else if read_lock(&ch.log).entries.len() > history {
                self.hub.request_trim(ch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(gseq: u64, text: &str) -> Entry {
        Entry {
            gseq,
            bytes: Encoded::copy_from(text.as_bytes()),
        }
    }

    fn source(entries: &[(u64, &str)], truncated: bool) -> Source {
        Source {
            taken: entries.iter().map(|&(g, t)| entry(g, t)).collect(),
            truncated,
        }
    }

    fn texts(batch: &[Encoded]) -> Vec<String> {
        batch
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn take_stops_at_the_horizon_and_at_the_batch_limit() {
        let many = (1..=300).map(|g| entry(g, "x"));
        let s = take(many, u64::MAX);
        assert_eq!((s.taken.len(), s.truncated), (MAX_BATCH_EVENTS, true));
        let s = take((1..=5).map(|g| entry(g, "x")), 3);
        assert_eq!((s.taken.len(), s.truncated), (3, false));
        let big = "y".repeat(MAX_BATCH_BYTES + 1);
        let s = take([entry(1, &big), entry(2, "z")].into_iter(), u64::MAX);
        assert_eq!(
            (s.taken.len(), s.truncated),
            (1, true),
            "a larger event goes whole, alone"
        );
    }

    #[test]
    fn merge_interleaves_by_number_once_per_event_with_the_private_queue_after() {
        let a = source(&[(1, "a1"), (3, "both3")], false);
        let b = source(&[(2, "b2"), (3, "both3")], false);
        let private = source(&[(3, "mine")], false);
        let mut last = 0;
        let (batch, heads) = merge(&[a, b, private], &mut last);
        assert_eq!(texts(&batch), ["a1", "b2", "both3", "mine"]);
        assert_eq!((heads, last), (vec![2, 2, 1], 3));
    }

    #[test]
    fn merge_skips_what_was_delivered_and_holds_back_past_a_truncated_source() {
        let a = source(&[(1, "old"), (2, "a2")], true);
        let b = source(&[(3, "b3")], false);
        let private = source(&[], false);
        let mut last = 1;
        let (batch, heads) = merge(&[a, b, private], &mut last);
        assert_eq!(texts(&batch), ["a2"], "b3 waits for a's next batch");
        assert_eq!((heads, last), (vec![2, 0, 0], 2));
    }
}
