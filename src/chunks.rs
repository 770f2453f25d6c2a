//! The zero-copy buffer that carries many shared events in one write: a
//! leaf every transport (hyper's bodies, the direct path, handed-over
//! streams) writes from.

use crate::event::Encoded;
use bytes::{Buf, Bytes};
use std::io::IoSlice;

/// The error type every body reports to hyper; any error aborts the connection.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one body frame writes, as one vectored write: framing before, one
/// buffer or shared events, framing after.
///
/// A subscriber catching up on several events hands them to hyper as one
/// frame: one chunk header on the wire, one vectored write, and still no copy
/// of any event: each is a reference-counted clone of the encoded event the
/// hub keeps. Everything else (heads, small answers, file blocks, heartbeats)
/// is one [`Bytes`].
#[derive(Debug, Default)]
pub struct Chunks {
    before: Bytes,
    single: Bytes,
    events: Vec<Encoded>,
    after: Bytes,
    /// The first part not yet written in full, counting `before` as part 0,
    /// `single` as 1, the events as 2..=n+1 and `after` as n + 2.
    head: usize,
    /// How much of that part is written.
    offset: usize,
    remaining: usize,
}

impl Chunks {
    /// One buffer.
    pub fn one(bytes: Bytes) -> Self {
        Chunks::new(Bytes::new(), bytes, Vec::new(), Bytes::new())
    }

    /// Encoded events, written in order.
    pub fn events(events: Vec<Encoded>) -> Self {
        Chunks::new(Bytes::new(), Bytes::new(), events, Bytes::new())
    }

    fn new(before: Bytes, single: Bytes, events: Vec<Encoded>, after: Bytes) -> Self {
        let mut chunks = Chunks {
            before,
            single,
            events,
            after,
            head: 0,
            offset: 0,
            remaining: 0,
        };
        chunks.remaining = chunks.total();
        chunks.skip_written();
        chunks
    }

    /// Whether nothing is left to write.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The same contents between `before` and `after` (chunk framing),
    /// still without copying any event. Only for a frame that has no
    /// framing yet and was not written from.
    pub fn wrap(self, before: Bytes, after: Bytes) -> Chunks {
        debug_assert!(self.remaining == self.total(), "wrap before writing");
        debug_assert!(self.before.is_empty() && self.after.is_empty());
        Chunks::new(before, self.single, self.events, after)
    }

    fn total(&self) -> usize {
        (0..self.parts()).map(|i| self.part(i).len()).sum()
    }

    fn parts(&self) -> usize {
        self.events.len() + 3
    }

    fn part(&self, i: usize) -> &[u8] {
        match i {
            0 => &self.before,
            1 => &self.single,
            i if i <= self.events.len() + 1 => &self.events[i - 2],
            _ => &self.after,
        }
    }

    /// Moves past parts that are written in full (or empty), so `chunk()`
    /// is never empty while anything remains.
    fn skip_written(&mut self) {
        while self.head < self.parts() && self.offset == self.part(self.head).len() {
            self.head += 1;
            self.offset = 0;
        }
    }
}

impl Buf for Chunks {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        if self.head >= self.parts() {
            return &[];
        }
        &self.part(self.head)[self.offset..]
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of Chunks");
        self.remaining -= cnt;
        while cnt > 0 {
            let left = self.part(self.head).len() - self.offset;
            let step = cnt.min(left);
            self.offset += step;
            cnt -= step;
            self.skip_written();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for i in self.head..self.parts() {
            if n == dst.len() {
                break;
            }
            let part = self.part(i);
            let skip = if i == self.head { self.offset } else { 0 };
            if part.len() > skip {
                dst[n] = IoSlice::new(&part[skip..]);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_advance_across_parts_and_vector_the_rest() {
        let events = vec![Encoded::copy_from(b"de"), Encoded::copy_from(b"")];
        let mut c =
            Chunks::events(events).wrap(Bytes::from_static(b"abc"), Bytes::from_static(b"f"));
        assert_eq!(c.remaining(), 6);
        c.advance(1);
        assert_eq!(c.chunk(), b"bc");
        c.advance(3);
        assert_eq!(c.chunk(), b"e");
        let mut io = [IoSlice::new(&[]); 4];
        assert_eq!(c.chunks_vectored(&mut io), 2);
        assert_eq!((&*io[0], &*io[1]), (&b"e"[..], &b"f"[..]));
        c.advance(2);
        assert!(c.is_empty());
        assert_eq!(c.chunk(), b"");
    }
}
