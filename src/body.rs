//! Response bodies: every kind of response one connection writes, and the
//! short plain-text answer every error gets.

use crate::chunks::{BoxError, Chunks};
use crate::static_files::file::FileStream;
use crate::stream::EventStream;
use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

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
            ResponseBody::File(file) => file.remaining() == 0,
            ResponseBody::Events(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty => SizeHint::with_exact(0),
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::File(file) => SizeHint::with_exact(file.remaining()),
            ResponseBody::Events(_) => SizeHint::default(),
        }
    }
}

/// A short plain-text response; used for every error the server answers.
pub fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response<ResponseBody> {
    let text = text.into();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .body(ResponseBody::text(text))
        .expect("a StatusCode, a static content type and a length always make a valid head")
}
