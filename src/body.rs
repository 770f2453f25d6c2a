//! Response bodies: what one connection writes, and the zero-copy buffer that
//! carries many shared events in one HTTP chunk.

use crate::stream::EventStream;
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncRead;

/// The error type every body reports to hyper; any error aborts the connection.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A sequence of shared byte buffers written as one body frame.
///
/// A subscriber catching up on several events hands them to hyper as one
/// frame: one chunk header on the wire, one vectored write, and still no copy
/// of any event: each part is a reference-counted clone of the encoded event.
#[derive(Debug, Default)]
pub struct Chunks {
    parts: Vec<Bytes>,
    head: usize,
    remaining: usize,
}

impl Chunks {
    /// One buffer.
    pub fn one(bytes: Bytes) -> Self {
        Chunks::many(vec![bytes])
    }

    /// Several buffers, written in order. Empty buffers are dropped, so
    /// `chunk()` is never empty while anything remains.
    pub fn many(mut parts: Vec<Bytes>) -> Self {
        parts.retain(|b| !b.is_empty());
        let remaining = parts.iter().map(Bytes::len).sum();
        Chunks {
            parts,
            head: 0,
            remaining,
        }
    }

    /// How many buffers this holds.
    pub fn len(&self) -> usize {
        self.parts.len() - self.head
    }

    /// Whether nothing is left to write.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The same buffers between `before` and `after` (chunk framing), still
    /// without copying any of them.
    pub fn wrap(self, before: Bytes, after: Bytes) -> Chunks {
        let mut parts = Vec::with_capacity(self.len() + 2);
        parts.push(before);
        parts.extend(self.parts.into_iter().skip(self.head));
        parts.push(after);
        Chunks::many(parts)
    }
}

impl Buf for Chunks {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.parts.get(self.head).map_or(&[], |b| b.as_ref())
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of Chunks");
        while cnt > 0 {
            let part = &mut self.parts[self.head];
            if cnt < part.len() {
                part.advance(cnt);
                self.remaining -= cnt;
                return;
            }
            cnt -= part.len();
            self.remaining -= part.len();
            // Release the reference as soon as it is written.
            *part = Bytes::new();
            self.head += 1;
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for part in &self.parts[self.head..] {
            if n == dst.len() {
                break;
            }
            dst[n] = IoSlice::new(part);
            n += 1;
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
        let mut c = Chunks::many(vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"de"),
            Bytes::from_static(b"f"),
        ]);
        assert_eq!(c.remaining(), 6);
        assert_eq!(c.len(), 3);
        c.advance(4);
        assert_eq!(c.chunk(), b"e");
        let mut io = [IoSlice::new(&[]); 4];
        assert_eq!(c.chunks_vectored(&mut io), 2);
        assert_eq!(&*io[1], b"f");
        c.advance(2);
        assert!(c.is_empty());
        assert_eq!(c.chunk(), b"");
    }
}
