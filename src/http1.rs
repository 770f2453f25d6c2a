//! The first request head of a connection, read by hand, and small HTTP/1.1
//! answers written by hand; and the HTTP/1.1 message rules every request is
//! held to, whoever parsed it.
//!
//! Requests for a stream path are served without hyper (see [`crate::direct`]),
//! which is what keeps an idle stream down to a few hundred bytes of state;
//! everything else is handed to hyper together with the bytes read here.
//! Since hyper does not see the first kind, and does not check `Host` for the
//! second, [`check_request`] is applied to both: one rule, both paths.

use crate::body::ResponseBody;
use bytes::{BufMut, Bytes, BytesMut};
use http::request::Parts;
use http::{header, HeaderMap, Response, StatusCode, Version};
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

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeadError::Closed => "the connection ended before a request head was read",
            HeadError::Timeout => "the request head did not arrive in time",
            HeadError::TooLarge => "the request head is too large or has too many headers",
            HeadError::Bad => "not an HTTP/1.x request head",
        })
    }
}

/// No source: each variant is the whole story (a failed read on a closed
/// connection is [`HeadError::Closed`], whatever the socket said).
impl std::error::Error for HeadError {}

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

/// Why a request breaks the message rules of HTTP/1.1 (RFC 9112 §3.2 for
/// `Host`, §6 for the body's framing). Such a request is answered 400 and its
/// connection closed: a server that guessed could be smuggled a second
/// request inside the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// An HTTP/1.1 request without `Host`.
    NoHost,
    /// More than one `Host` field.
    SeveralHosts,
    /// A `Host` value that is not `host[:port]`.
    BadHost,
    /// A `Content-Length` that is not one decimal number (`-1`, `1e3`, `5, 6`, empty).
    BadContentLength,
    /// `Content-Length` fields that disagree.
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndTransferEncoding,
    /// A `Transfer-Encoding` whose final coding is not `chunked` (`gzip`).
    NotChunked,
    /// `Transfer-Encoding` in an HTTP/1.0 request, which cannot have one.
    TransferEncodingInHttp10,
}

impl Malformed {
    /// The reason, as the body of the 400 answer.
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::NoHost => "bad request: an HTTP/1.1 request needs a Host header\n",
            Malformed::SeveralHosts => "bad request: more than one Host header\n",
            Malformed::BadHost => "bad request: the Host header is not host[:port]\n",
            Malformed::BadContentLength => {
                "bad request: Content-Length must be one decimal number\n"
            }
            Malformed::ConflictingContentLength => "bad request: Content-Length headers disagree\n",
            Malformed::LengthAndTransferEncoding => {
                "bad request: both Content-Length and Transfer-Encoding\n"
            }
            Malformed::NotChunked => "bad request: the final Transfer-Encoding must be chunked\n",
            Malformed::TransferEncodingInHttp10 => {
                "bad request: Transfer-Encoding in an HTTP/1.0 request\n"
            }
        }
    }
}

/// Holds an HTTP/1.x request to the rules of [`Malformed`]. HTTP/2 requests
/// pass: they carry `:authority` instead of `Host`, and the HTTP/2 layer
/// checks their framing.
pub fn check_request(parts: &Parts) -> Result<(), Malformed> {
    if parts.version != Version::HTTP_10 && parts.version != Version::HTTP_11 {
        return Ok(());
    }
    check_host(&parts.headers, parts.version)?;
    check_framing(&parts.headers, parts.version)
}

fn check_host(headers: &HeaderMap, version: Version) -> Result<(), Malformed> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 => Err(Malformed::NoHost),
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(Malformed::SeveralHosts),
        // Empty is allowed: the target has no authority (RFC 9112 §3.2).
        (Some(host), None) if host.is_empty() => Ok(()),
        (Some(host), None) => match http::uri::Authority::try_from(host.as_bytes()) {
            Ok(authority) if !authority.as_str().contains('@') => Ok(()),
            _ => Err(Malformed::BadHost),
        },
    }
}

fn check_framing(headers: &HeaderMap, version: Version) -> Result<(), Malformed> {
    let has_length = headers.contains_key(header::CONTENT_LENGTH);
    if let Some(last) = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    {
        if version == Version::HTTP_10 {
            return Err(Malformed::TransferEncodingInHttp10);
        }
        if has_length {
            return Err(Malformed::LengthAndTransferEncoding);
        }
        let final_coding = last.as_bytes().rsplit(|&b| b == b',').next();
        let is_chunked =
            final_coding.is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return if is_chunked {
            Ok(())
        } else {
            Err(Malformed::NotChunked)
        };
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let digits = value.as_bytes();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(Malformed::BadContentLength);
        }
        let n: u64 = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(Malformed::BadContentLength)?;
        // Repeated fields with one value are one length, as hyper takes them.
        if length.replace(n).is_some_and(|previous| previous != n) {
            return Err(Malformed::ConflictingContentLength);
        }
    }
    Ok(())
}

/// Whether an answer with this status must not carry a body or
/// `Content-Length`: 1xx, 204 and 304 (RFC 9110 §6.4.1, §8.6).
pub fn forbids_body(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
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
/// A 1xx, 204 or 304 answer gets neither a body nor `Content-Length`.
pub fn encode_final(
    mut response: Response<ResponseBody>,
    version: Version,
    head_only: bool,
) -> Bytes {
    let body = match std::mem::replace(response.body_mut(), ResponseBody::Empty) {
        ResponseBody::Full(Some(b)) => b,
        _ => Bytes::new(),
    };
    let bodiless = forbids_body(response.status());
    let headers = response.headers_mut();
    headers.remove(header::CONNECTION);
    headers.insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    if bodiless {
        headers.remove(header::CONTENT_LENGTH);
    } else if !head_only && !headers.contains_key(header::CONTENT_LENGTH) {
        headers.insert(header::CONTENT_LENGTH, body.len().into());
    }
    let mut out = encode_head(&response, version);
    out.put_slice(b"\r\n");
    if !head_only && !bodiless {
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

    fn head(raw: &str) -> Parts {
        parse(raw.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn a_request_with_one_host_passes() {
        for raw in [
            "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: \r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
        ] {
            assert_eq!(check_request(&head(raw)), Ok(()), "{raw:?}");
        }
    }

    #[test]
    fn an_http_1_1_request_without_host_is_malformed() {
        assert_eq!(
            check_request(&head("GET / HTTP/1.1\r\n\r\n")),
            Err(Malformed::NoHost)
        );
    }

    #[test]
    fn two_host_headers_are_malformed_in_any_version() {
        for v in ["1.0", "1.1"] {
            let raw = format!("GET / HTTP/{v}\r\nHost: a\r\nHost: a\r\n\r\n");
            assert_eq!(check_request(&head(&raw)), Err(Malformed::SeveralHosts));
        }
    }

    #[test]
    fn a_host_that_is_not_host_and_port_is_malformed() {
        for host in ["a b", "user@host", "host/path"] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_eq!(
                check_request(&head(&raw)),
                Err(Malformed::BadHost),
                "{host}"
            );
        }
    }

    #[test]
    fn content_length_must_be_one_decimal_number() {
        for value in [
            "-1",
            "1e3",
            "5, 6",
            "0, 0",
            "",
            "+5",
            "0x10",
            "99999999999999999999999",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(
                check_request(&head(&raw)),
                Err(Malformed::BadContentLength),
                "{value:?}"
            );
        }
        let fine = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\nContent-Length: 42\r\n\r\n";
        assert_eq!(check_request(&head(fine)), Ok(()));
        let two = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            check_request(&head(two)),
            Err(Malformed::ConflictingContentLength)
        );
    }

    #[test]
    fn transfer_encoding_must_end_in_chunked_and_come_alone() {
        let te = |v: &str, extra: &str| {
            check_request(&head(&format!(
                "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {v}\r\n{extra}\r\n"
            )))
        };
        assert_eq!(te("chunked", ""), Ok(()));
        assert_eq!(te("gzip, Chunked", ""), Ok(()));
        assert_eq!(te("gzip", ""), Err(Malformed::NotChunked));
        assert_eq!(te("chunked, gzip", ""), Err(Malformed::NotChunked));
        assert_eq!(
            te("chunked", "Content-Length: 3\r\n"),
            Err(Malformed::LengthAndTransferEncoding)
        );
        assert_eq!(
            check_request(&head(
                "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            Err(Malformed::TransferEncodingInHttp10)
        );
    }

    #[test]
    fn answers_without_a_body_get_no_content_length() {
        for status in [204, 304] {
            let r = Response::builder()
                .status(status)
                .header("content-length", "0")
                .body(ResponseBody::text("dropped"))
                .unwrap();
            let bytes = encode_final(r, Version::HTTP_11, false);
            let reason = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                format!(
                    "HTTP/1.1 {} {}\r\nconnection: close\r\n\r\n",
                    status,
                    reason.canonical_reason().unwrap()
                )
            );
        }
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
