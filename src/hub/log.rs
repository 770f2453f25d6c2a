//! A channel's log: the encoded events it keeps (for replay, and for
//! clients that are behind), appended by publishers and trimmed to what its
//! slowest reader still needs, never below `history`. A plain structure:
//! the locks around it, and who counts as a reader, are the channel's.

use crate::event::Encoded;
use std::collections::VecDeque;
use std::sync::Arc;

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
    /// An empty log; its first entry will be local sequence number 1.
    pub(super) fn new() -> Self {
        Log {
            entries: VecDeque::new(),
            first_seq: 1,
            ids: VecDeque::new(),
        }
    }

    /// Appends the event numbered `gseq`, remembering its explicit id.
    pub(super) fn push(&mut self, gseq: u64, bytes: Encoded, id: Option<Arc<str>>) {
        self.entries.push_back(Entry { gseq, bytes });
        if let Some(id) = id {
            self.ids.push_back((gseq, id));
        }
    }

    /// Drops entries before local sequence number `slowest` (what every
    /// reader has read), keeping at least the newest `history`. Returns the
    /// global number of the newest entry dropped, if any.
    pub(super) fn trim(&mut self, slowest: u64, history: usize) -> Option<u64> {
        let mut dropped = None;
        while self.entries.len() > history && self.first_seq < slowest {
            let Some(e) = self.entries.pop_front() else {
                break;
            };
            self.first_seq += 1;
            dropped = Some(e.gseq);
        }
        let gseq = dropped?;
        while self.ids.front().is_some_and(|&(g, _)| g <= gseq) {
            self.ids.pop_front();
        }
        // A log that shrank a lot gives its memory back, or a burst
        // would keep its high-water mark for as long as the channel lives.
        if self.entries.capacity() > 4 * self.entries.len().max(16) {
            self.entries.shrink_to(2 * self.entries.len());
        }
        Some(gseq)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(gseqs: &[u64]) -> Log {
        let mut log = Log::new();
        for &g in gseqs {
            let id = (g % 2 == 0).then(|| Arc::from(format!("e{g}")));
            log.push(g, Encoded::copy_from(b"xy"), id);
        }
        log
    }

    #[test]
    fn a_trim_keeps_the_history_and_what_the_slowest_reader_needs() {
        let mut log = log_of(&[10, 20, 30, 40, 50]);
        assert_eq!(log.trim(3, 1), Some(20), "readers are at local seq 3");
        assert_eq!((log.first_seq, log.entries.len()), (3, 3));
        assert_eq!(
            log.trim(u64::MAX, 2),
            Some(30),
            "no readers: down to history"
        );
        assert_eq!(log.trim(u64::MAX, 2), None, "nothing more to drop");
        assert_eq!(log.next_seq(), 6);
    }

    #[test]
    fn explicit_ids_are_found_newest_first_and_leave_with_their_entries() {
        let mut log = log_of(&[1, 2, 3, 4]);
        log.push(5, Encoded::copy_from(b"z"), Some(Arc::from("e2")));
        assert_eq!(log.find_id("e2"), Some(5));
        assert_eq!(log.find_id("e4"), Some(4));
        log.trim(u64::MAX, 1);
        assert_eq!(log.find_id("e4"), None);
        assert_eq!(log.find_id("e2"), Some(5));
    }

    #[test]
    fn positions_map_between_global_numbers_local_numbers_and_bytes() {
        let log = log_of(&[10, 20, 30]);
        assert_eq!(log.seq_after(20), 3);
        assert_eq!(log.seq_after(5), 1);
        assert_eq!(log.seq_after(99), 4);
        assert_eq!(log.offset_before(3, 100), 98, "one entry of 2 bytes after");
        assert_eq!(log.offset_before(4, 100), 100, "a live start costs nothing");
    }
}
