//! Response bodies: what one connection writes, and the zero-copy buffer that
//! carries many shared events in one HTTP chunk.

use crate::event::Encoded;
use crate::stream::EventStream;
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncRead;

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

/// Every kind of response this server writes.
pub enum ResponseBody {
    /// No body (HEAD, 204, 304, redirects).
    Empty,
    /// A small body known in full (errors, short messages).
    Full(Option<Bytes>),
    /// A static file streamed from disk.
    File(FileStream),
    /// An event stream that lives until the client leaves or the server closes.
    Events(Box<EventStream>),
}

impl ResponseBody {
    /// A body holding `text`.
    pub fn text(text: impl Into<Bytes>) -> Self {
        ResponseBody::Full(Some(text.into()))
    }
}

impl Body for ResponseBody {
    type Data = Chunks;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Chunks>, BoxError>>> {
        match self.get_mut() {
            ResponseBody::Empty => Poll::Ready(None),
            ResponseBody::Full(bytes) => {
                Poll::Ready(bytes.take().map(|b| Ok(Frame::data(Chunks::one(b)))))
            }
            ResponseBody::File(file) => Pin::new(file).poll_chunk(cx),
            ResponseBody::Events(stream) => stream.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty => true,
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::File(file) => file.remaining == 0,
            ResponseBody::Events(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty => SizeHint::with_exact(0),
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::File(file) => SizeHint::with_exact(file.remaining),
            ResponseBody::Events(_) => SizeHint::default(),
        }
    }
}

/// A file read from disk in blocks, so a large static file never sits in
/// memory whole.
pub struct FileStream {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

const FILE_BLOCK: usize = 64 * 1024;

impl FileStream {
    /// Streams the first `len` bytes of `file` (its length when opened).
    pub fn new(file: tokio::fs::File, len: u64) -> Self {
        FileStream {
            file,
            remaining: len,
            buf: BytesMut::new(),
        }
    }

    fn poll_chunk(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Chunks>, BoxError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (self.remaining as usize).min(FILE_BLOCK);
        let this = &mut *self;
        if this.buf.capacity() < want {
            this.buf.reserve(want);
        }
        let spare = &mut this.buf.spare_capacity_mut()[..want];
        let mut read_buf = tokio::io::ReadBuf::uninit(spare);
        match Pin::new(&mut this.file).poll_read(cx, &mut read_buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Ok(())) => {
                let n = read_buf.filled().len();
                if n == 0 {
                    // The file shrank after we sent its length: the response
                    // cannot be completed honestly, so abort it.
                    return Poll::Ready(Some(
                        Err("static file was truncated while sending".into()),
                    ));
                }
                // SAFETY: `ReadBuf` initialised and filled the first `n` bytes.
                unsafe { this.buf.set_len(n) };
                this.remaining -= n as u64;
                let chunk = this.buf.split().freeze();
                Poll::Ready(Some(Ok(Frame::data(Chunks::one(chunk)))))
            }
        }
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
