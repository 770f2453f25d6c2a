//! Static path decoding (`static_files::decode_segments`) on arbitrary paths.
//!
//! Checked, besides "never panics":
//! - what it accepts is a list of plain file names: none empty, `.` or `..`,
//!   none with `/`, `\` or NUL, none starting with `.` (dotfiles are 404),
//!   each exactly one normal path component, so joined under a root they
//!   stay under it;
//! - it agrees with percent-decoding: the accepted segments are the raw
//!   path's non-empty `/`-separated parts, each decoded by an independent
//!   percent-decoder written here (`%` and two hex digits is a byte, any
//!   other `%` is itself), and the whole path decoded the same way splits
//!   into the same segments (no decoded `/` can hide in one);
//! - segments encoded again (every byte outside `A-Za-z0-9-._~`) decode back
//!   to themselves;
//! - a refusal has a reason: the path does not start with `/`, or one of its
//!   parts decodes to something that is not a plain UTF-8 file name (400),
//!   or to a dotfile name (404).

#![no_main]

use hyper_sse::static_files::{decode_segments, Refusal};
use libfuzzer_sys::fuzz_target;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::path::{Component, Path};

/// The reference: RFC 3986 percent-decoding, byte by byte.
fn percent_decode(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Why a decoded part cannot be served, if it cannot.
fn refusal(part: &[u8]) -> Option<Refusal> {
    let Ok(name) = std::str::from_utf8(part) else {
        return Some(Refusal::BadPath);
    };
    if name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Some(Refusal::BadPath);
    }
    if name.starts_with('.') {
        return Some(Refusal::NotFound);
    }
    None
}

/// RFC 3986 unreserved characters stay as they are; everything else is escaped.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fuzz_target!(|bytes: &[u8]| {
    let Ok(raw) = std::str::from_utf8(bytes) else {
        return;
    };
    let parts: Vec<Vec<u8>> = raw
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    match decode_segments(raw) {
        Ok(segments) => {
            assert!(raw.starts_with('/'), "accepted a path without a leading /");
            for s in &segments {
                assert!(!s.is_empty() && s != "." && s != "..", "segment {s:?}");
                assert!(!s.contains(['/', '\\', '\0']), "segment {s:?}");
                assert!(!s.starts_with('.'), "dotfile {s:?}");
                let mut c = Path::new(s).components();
                assert!(matches!(
                    (c.next(), c.next()),
                    (Some(Component::Normal(_)), None)
                ));
            }
            let root = Path::new("/srv/root");
            let joined = segments.iter().fold(root.to_path_buf(), |p, s| p.join(s));
            assert!(joined.starts_with(root));
            assert_eq!(
                joined.components().count(),
                root.components().count() + segments.len()
            );

            let decoded: Vec<&[u8]> = segments.iter().map(|s| s.as_bytes()).collect();
            let reference: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            assert_eq!(decoded, reference, "segments differ from percent-decoding");
            let whole = percent_decode(raw);
            let split: Vec<&[u8]> = whole
                .split(|&b| b == b'/')
                .filter(|p| !p.is_empty())
                .collect();
            assert_eq!(split, reference, "a decoded / hides in a segment");

            let again: String = segments
                .iter()
                .map(|s| format!("/{}", utf8_percent_encode(s, ESCAPE)))
                .collect();
            let again = if again.is_empty() {
                "/".to_owned()
            } else {
                again
            };
            assert_eq!(decode_segments(&again).as_ref(), Ok(&segments), "{again:?}");
        }
        Err(err) => {
            let first = if raw.starts_with('/') {
                parts.iter().find_map(|p| refusal(p))
            } else {
                Some(Refusal::BadPath)
            };
            assert_eq!(Some(err), first, "refused {raw:?} for no reason");
        }
    }
});
