//! A channel's log: the encoded events it keeps (for replay, and for
//! clients that are behind), appended by publishers and trimmed to what its
//! slowest reader still needs, never below `history`.

use super::client::Client;
use crate::event::Encoded;
use crate::sync::{read, write};
use slab::Slab;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// One channel: its log and the clients subscribed to it.
pub(super) struct Channel {
    pub(super) name: Arc<str>,
    /// The committed sequence number when the channel was created: in remote
    /// mode its log holds every event after it (and nothing before).
    pub(super) since: u64,
    pub(super) log: RwLock<Log>,
    /// Total bytes ever appended; a client's lag is measured against it.
    pub(super) appended: AtomicU64,
    /// Global sequence number of the newest entry dropped from the log.
    pub(super) trimmed_gseq: AtomicU64,
    pub(super) subscribers: RwLock<Slab<(Arc<Client>, usize)>>,
    /// The lowest cursor of clients that joined since the fan-out task began
    /// its current round: they may have missed its "slowest" computation, so
    /// trimming respects them too.
    pub(super) join_floor: AtomicU64,
    pub(super) dirty: AtomicBool,
    /// Queued in the hub's `trims` list.
    pub(super) trim_due: AtomicBool,
}

/// A channel's history and what its readers have not read yet. Entries are
/// kept as small as they can be (a number and a pointer): a busy server
/// holds `history` of them per channel.
pub(super) struct Log {
    pub(super) entries: VecDeque<Entry>,
    /// Channel-local sequence number of `entries[0]` (starts at 1).
    pub(super) first_seq: u64,
    /// The explicit ids of the entries still here, with their global
    /// numbers, for `Last-Event-ID` lookups. Apart from the entries because
    /// most events have none.
    pub(super) ids: VecDeque<(u64, Arc<str>)>,
}

#[derive(Clone)]
pub(super) struct Entry {
    pub(super) gseq: u64,
    pub(super) bytes: Encoded,
}

impl Log {
    pub(super) fn next_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    /// Local sequence number of the first entry after global sequence `gseq`.
    pub(super) fn seq_after(&self, gseq: u64) -> u64 {
        self.first_seq + self.entries.partition_point(|e| e.gseq <= gseq) as u64
    }

    /// Byte offset just before local sequence `seq`, counted back from
    /// `appended` (the offset after the newest entry): a live start costs
    /// nothing, a replay what it replays.
    pub(super) fn offset_before(&self, seq: u64, appended: u64) -> u64 {
        let idx = (seq - self.first_seq) as usize;
        let after: u64 = self
            .entries
            .range(idx.min(self.entries.len())..)
            .map(|e| e.bytes.len() as u64)
            .sum();
        appended - after
    }

    /// The global number of the newest entry sent with explicit id `id`.
    pub(super) fn find_id(&self, id: &str) -> Option<u64> {
        self.ids
            .iter()
            .rev()
            .find(|(_, known)| &**known == id)
            .map(|&(gseq, _)| gseq)
    }
}

impl Channel {
    /// An empty channel whose log is complete after sequence number `since`.
    pub(super) fn new(name: &str, since: u64) -> Self {
        Channel {
            name: Arc::from(name),
            since,
            log: RwLock::new(Log {
                entries: VecDeque::new(),
                first_seq: 1,
                ids: VecDeque::new(),
            }),
            appended: AtomicU64::new(0),
            trimmed_gseq: AtomicU64::new(0),
            subscribers: RwLock::new(Slab::new()),
            join_floor: AtomicU64::new(u64::MAX),
            dirty: AtomicBool::new(false),
            trim_due: AtomicBool::new(false),
        }
    }

    /// Appends one event (its global number, bytes and explicit id) and,
    /// without subscribers, trims to `history` at once.
    pub(super) fn append(&self, gseq: u64, bytes: Encoded, id: Option<Arc<str>>, history: usize) {
        let mut log = write(&self.log);
        let end = self.appended.load(Ordering::Relaxed) + bytes.len() as u64;
        log.entries.push_back(Entry { gseq, bytes });
        if let Some(id) = id {
            log.ids.push_back((gseq, id));
        }
        self.appended.store(end, Ordering::Release);
        // Without subscribers nobody needs more than the history; with them,
        // the fan-out task trims to what the slowest one still needs.
        if read(&self.subscribers).is_empty() {
            self.trim_locked(&mut log, u64::MAX, history);
        }
    }

    /// Drops entries every subscriber has read (`slowest` is the smallest
    /// cursor), keeping at least the newest `history` entries.
    pub(super) fn trim_locked(&self, log: &mut Log, slowest: u64, history: usize) {
        let mut dropped = None;
        while log.entries.len() > history && log.first_seq < slowest {
            let Some(e) = log.entries.pop_front() else {
                break;
            };
            log.first_seq += 1;
            dropped = Some(e.gseq);
        }
        if let Some(gseq) = dropped {
            self.trimmed_gseq.store(gseq, Ordering::Release);
            while log.ids.front().is_some_and(|&(g, _)| g <= gseq) {
                log.ids.pop_front();
            }
            // A log that shrank a lot gives its memory back, or a burst
            // would keep its high-water mark for as long as the channel lives.
            if log.entries.capacity() > 4 * log.entries.len().max(16) {
                log.entries.shrink_to(2 * log.entries.len());
            }
        }
    }
}
