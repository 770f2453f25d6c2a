//! The request-head reader (`http1::parse`) on arbitrary bytes.
//!
//! `read_head` parses the whole buffer again after every read from the
//! socket, so what matters is that parsing agrees with itself: every prefix
//! of the input is either "incomplete" or gives exactly what the whole input
//! gives, and once a head parses, its parts say what the bytes said.
//!
//! Checked, besides "never panics":
//! - fed in pieces (sizes drawn from the input's hash, plus a cut at every
//!   line end), the first answer that is not "incomplete" equals the answer
//!   for the whole input; all "incomplete" means the whole is incomplete;
//! - a parsed head agrees with httparse's own view of the same bytes: method,
//!   request target (byte for byte for origin-form, less a `#fragment`), version, header names
//!   (lowercased) and values (in wire order for each name);
//! - a parsed head written out again (`METHOD target HTTP/1.x`, `name: value`
//!   lines, blank line) parses to the same parts;
//! - 431 (`TooLarge`) only for more than the header limit.

#![no_main]

use hyper_sse::http1::{parse, HeadError};
use libfuzzer_sys::fuzz_target;

/// A parse result in comparable form.
type Summary = Result<Option<Head>, HeadError>;

#[derive(Debug, PartialEq, Eq)]
struct Head {
    method: String,
    uri: String,
    http10: bool,
    headers: Vec<(String, Vec<u8>)>,
}

fn summary(bytes: &[u8]) -> Summary {
    parse(bytes).map(|parts| {
        parts.map(|p| Head {
            method: p.method.as_str().to_owned(),
            uri: p.uri.to_string(),
            http10: p.version == http::Version::HTTP_10,
            headers: p
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
        })
    })
}

/// The header limit `http1` uses (hyper's default too).
const MAX_HEADERS: usize = 100;

/// FNV-1a: a stable hash of the input, to draw piece sizes from.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Where to cut the input: after every LF and CR (and one byte before), and
/// at pseudo-random sizes of 1..=64 bytes.
fn cuts(bytes: &[u8]) -> Vec<usize> {
    let mut cuts = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || b == b'\r' {
            cuts.push(i);
            cuts.push(i + 1);
        }
    }
    let mut state = hash(bytes) | 1;
    let mut at = 0;
    while at < bytes.len() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        at += 1 + (state % 64) as usize;
        cuts.push(at.min(bytes.len()));
    }
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// httparse's own view of a complete head: the reference for what `parse` built.
fn reference(bytes: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => Some(Head {
            method: req.method?.to_owned(),
            uri: req.path?.to_owned(),
            http10: req.version == Some(0),
            headers: grouped(
                req.headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                    .collect(),
            ),
        }),
        _ => None,
    }
}

/// Headers as `http::HeaderMap` iterates them: every value of a name
/// together, names in the order they first appear, values in wire order.
fn grouped(headers: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<&String> = Vec::new();
    for (name, _) in &headers {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .iter()
        .flat_map(|n| headers.iter().filter(move |(m, _)| m == *n).cloned())
        .collect()
}

fn encode(head: &Head) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.uri.as_bytes());
    out.extend_from_slice(if head.http10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fuzz_target!(|bytes: &[u8]| {
    let whole = summary(bytes);

    // As read_head does: parse the buffer so far after every piece, stop at
    // the first answer that is not "incomplete".
    let mut answer = None;
    for cut in cuts(bytes) {
        match summary(&bytes[..cut]) {
            Ok(None) => continue,
            other => {
                answer = Some((cut, other));
                break;
            }
        }
    }
    match answer {
        Some((cut, got)) => assert_eq!(got, whole, "the prefix of {cut} bytes disagrees"),
        None => assert_eq!(whole, Ok(None), "every piece incomplete, the whole is not"),
    }

    match &whole {
        Ok(Some(head)) => {
            let seen = reference(bytes).expect("parse accepted what httparse did not");
            assert_eq!(head.method, seen.method);
            assert_eq!(head.http10, seen.http10);
            assert_eq!(head.headers, seen.headers);
            if seen.uri.starts_with('/') {
                // As in hyper (the same `http::Uri`), a fragment is dropped:
                // it has no place in a request target (RFC 9112 §3.2).
                let sent = seen.uri.split('#').next().unwrap_or_default();
                assert_eq!(head.uri, sent, "an origin-form target must be kept as sent");
            }
            let again = encode(head);
            assert_eq!(
                summary(&again).as_ref().ok().and_then(|h| h.as_ref()),
                Some(head),
                "the head written out again parses differently: {:?}",
                String::from_utf8_lossy(&again)
            );
        }
        Err(HeadError::TooLarge) => {
            let lines = bytes.iter().filter(|&&b| b == b'\n').count();
            assert!(lines > MAX_HEADERS, "431 for {lines} lines");
        }
        Err(HeadError::Closed | HeadError::Timeout) => {
            panic!("parse cannot time out or see a close: {whole:?}")
        }
        Ok(None) | Err(HeadError::Bad) => {}
    }
});
