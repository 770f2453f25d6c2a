//! A static file's body: read from disk in blocks as the connection takes them.

use crate::chunks::{BoxError, Chunks};
use bytes::BytesMut;
use http_body::Frame;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncRead;

/// A file read from disk in blocks, so a large static file never sits in
/// memory whole.
pub struct FileStream {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

const FILE_BLOCK: usize = 64 * 1024;

impl FileStream {
    /// Bytes still to send.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Streams the first `len` bytes of `file` (its length when opened).
    pub fn new(file: tokio::fs::File, len: u64) -> Self {
        FileStream {
            file,
            remaining: len,
            buf: BytesMut::new(),
        }
    }

    pub(crate) fn poll_chunk(
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
