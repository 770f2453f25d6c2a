//! The first request head of a connection, read by hand, and small HTTP/1.1
//! answers written by hand.
//!
//! Requests for a stream path are served without hyper (see [`crate::direct`]),
//! which is what keeps an idle stream down to a few hundred bytes of state;
//! everything else is handed to hyper together with the bytes read here.

use crate::body::ResponseBody;
use bytes::{BufMut, Bytes, BytesMut};
use http::request::Parts;
use http::{header, Response, Version};
use std::io;
use std::time::Duration;
use tokio::net::TcpStream;

/// Why no request head could be read.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The client closed the connection (or it failed) first.
    Closed,
    /// The head did not complete in time (408).
    Timeout,
    /// The head is larger than allowed, or has too many headers (431).
    TooLarge,
    /// Not an HTTP/1.x request head (400).
    Bad,
}

/// The most headers a request may have (hyper's default, too).
const MAX_HEADERS: usize = 100;

/// The HTTP/2 connection preface: a client speaking HTTP/2 with prior
/// knowledge (h2c) starts with it instead of an HTTP/1 request head.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection opened with (short-lived: size differences do not matter).
#[allow(clippy::large_enum_variant)]
pub enum Opening {
    /// An HTTP/1 request head.
    Http1(FirstRequest),
    /// The HTTP/2 preface; the bytes read so far (hyper reads them again).
    Http2(BytesMut),
}

/// A parsed first request and every byte read so far (the head included),
/// so that hyper can be handed the connection as if nothing had been read.
pub struct FirstRequest {
    /// Method, URI, version and headers.
    pub parts: Parts,
    /// The bytes read from the socket, from the first one.
    pub raw: BytesMut,
}

/// Reads the first request head, within `timeout` and `max_bytes`; with
/// `http2` an HTTP/2 preface is recognised too (otherwise it is a bad request).
pub async fn read_head(
    socket: &TcpStream,
    max_bytes: usize,
    timeout: Option<Duration>,
    http2: bool,
) -> Result<Opening, HeadError> {
    let read = async {
        let mut raw = BytesMut::with_capacity(1024);
        loop {
            socket.readable().await.map_err(|_| HeadError::Closed)?;
            if raw.capacity() - raw.len() < 512 {
                raw.reserve(raw.capacity().min(max_bytes));
            }
            match socket.try_read_buf(&mut raw) {
                Ok(0) => return Err(HeadError::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return Err(HeadError::Closed),
            }
            if http2 && H2_PREFACE.starts_with(&raw[..raw.len().min(H2_PREFACE.len())]) {
                if raw.len() >= H2_PREFACE.len() {
                    return Ok(Opening::Http2(raw));
                }
                continue;
            }
            match parse(&raw)? {
                Some(parts) => return Ok(Opening::Http1(FirstRequest { parts, raw })),
                None if raw.len() >= max_bytes => return Err(HeadError::TooLarge),
                None => {}
            }
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, read)
            .await
            .unwrap_or(Err(HeadError::Timeout)),
        None => read.await,
    }
}

/// Parses a complete head, `None` while incomplete. Public so the fuzz
/// targets (`fuzz/`) can feed it arbitrary bytes, whole and in pieces.
pub fn parse(raw: &[u8]) -> Result<Option<Parts>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(raw) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(_)) => {
            let mut builder = http::Request::builder()
                .method(req.method.ok_or(HeadError::Bad)?)
                .uri(req.path.ok_or(HeadError::Bad)?)
                .version(match req.version {
                    Some(0) => Version::HTTP_10,
                    _ => Version::HTTP_11,
                });
            for h in req.headers.iter() {
                builder = builder.header(h.name, h.value);
            }
            let (parts, ()) = builder.body(()).map_err(|_| HeadError::Bad)?.into_parts();
            Ok(Some(parts))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => Err(HeadError::Bad),
    }
}

/// The status line and headers of `response`, as bytes.
pub fn encode_head(response: &Response<ResponseBody>, version: Version) -> BytesMut {
    let mut out = BytesMut::with_capacity(256);
    let status = response.status();
    out.put_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in response.headers() {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out
}

/// A whole answer that ends the connection: head, `Connection: close`, body.
pub fn encode_final(
    mut response: Response<ResponseBody>,
    version: Version,
    head_only: bool,
) -> Bytes {
    let body = match std::mem::replace(response.body_mut(), ResponseBody::Empty) {
        ResponseBody::Full(Some(b)) => b,
        _ => Bytes::new(),
    };
    let headers = response.headers_mut();
    headers.remove(header::CONNECTION);
    headers.insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    if !head_only && !headers.contains_key(header::CONTENT_LENGTH) {
        headers.insert(header::CONTENT_LENGTH, body.len().into());
    }
    let mut out = encode_head(&response, version);
    out.put_slice(b"\r\n");
    if !head_only {
        out.put_slice(&body);
    }
    out.freeze()
}

/// A fixed error answer for a head that could not be read.
pub fn error_answer(error: &HeadError) -> Option<&'static [u8]> {
    match error {
        HeadError::Closed => None,
        HeadError::Timeout => Some(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\nrequest header timeout\r\n"),
        HeadError::TooLarge => Some(b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
        HeadError::Bad => Some(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_head_and_waits_for_an_incomplete_one() {
        assert!(parse(b"GET /events HTTP/1.1\r\nHost: x\r\n")
            .unwrap()
            .is_none());
        let parts = parse(b"GET /events?a=1 HTTP/1.0\r\nHost: x\r\nLast-Event-ID: 7\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(parts.uri.path(), "/events");
        assert_eq!(parts.uri.query(), Some("a=1"));
        assert_eq!(parts.version, Version::HTTP_10);
        assert_eq!(parts.headers["last-event-id"], "7");
        assert!(matches!(
            parse(b"\x00\x01garbage\r\n\r\n"),
            Err(HeadError::Bad)
        ));
    }

    #[test]
    fn final_answers_close_the_connection() {
        let r = Response::builder()
            .status(403)
            .header("connection", "keep-alive")
            .body(ResponseBody::text("no\n"))
            .unwrap();
        let bytes = encode_final(r, Version::HTTP_11, false);
        assert_eq!(
            &bytes[..],
            b"HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 3\r\n\r\nno\n"
        );
    }
}
