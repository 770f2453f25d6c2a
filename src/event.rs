//! The `text/event-stream` wire format: turning an event or a comment into
//! the exact bytes a client parses, and refusing values that would corrupt
//! the stream.
//!
//! An event is encoded once, when it is sent, into one [`Bytes`] that every
//! subscriber then shares by reference count. Validation happens here, at the
//! edge, so nothing that could break a client's parser ever reaches the hub.
//!
//! The rules follow the WHATWG HTML standard, "Server-sent events":
//! - each field is one `name: value` line; a value that itself begins with a
//!   space keeps it, because the parser strips exactly one space after `:`;
//! - `data` is split into one `data:` line per line of the payload, at `\r\n`,
//!   `\n` and a lone `\r`, which is how the parser splits lines;
//! - an event ends with a blank line, which is what makes the client dispatch it;
//! - a comment is a line starting with `:` and is ignored by clients.

use bytes::Bytes;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

/// Why a field was refused: the JavaScript layer maps [`Problem::Type`] to a
/// `TypeError` and [`Problem::Range`] to a `RangeError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The value can never be valid for this field (a line break in a name).
    Type,
    /// The value has the right type but lies outside what the field accepts.
    Range,
}

/// A field value that cannot be encoded, with the field's name so the caller
/// can say exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Which field: `event`, `id`, `retry`, `data`.
    pub field: &'static str,
    /// What is wrong with it, in a sentence fragment.
    pub reason: &'static str,
    /// Type or range problem.
    pub problem: Problem,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// Builds one event field by field; [`Event::encode`] freezes it into the
/// bytes every subscriber shares.
///
/// The builder validates as it goes, so an `Event` that exists can always be
/// encoded, and a refused value leaves nothing half-written anywhere.
#[derive(Debug, Default, Clone)]
pub struct Event {
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    data: Option<String>,
}

impl Event {
    /// An unnamed event carrying `data`: what the browser hands to `onmessage`.
    pub fn message(data: impl Into<String>) -> Self {
        Event {
            data: Some(data.into()),
            ..Event::default()
        }
    }

    /// Sets the payload. Any text is valid: line breaks become more `data:` lines.
    pub fn data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// Sets the event type, which selects the client's `addEventListener(type)`.
    /// A line break would end the field early and inject another one, so it is refused.
    pub fn event(mut self, name: impl Into<String>) -> Result<Self, FieldError> {
        let name = name.into();
        if has_line_break(&name) {
            return Err(FieldError {
                field: "event",
                reason: "must not contain CR or LF",
                problem: Problem::Type,
            });
        }
        self.event = Some(name);
        Ok(self)
    }

    /// Sets the event id, which the client stores as its last event id and sends
    /// back in `Last-Event-ID` when it reconnects. An empty id is meaningful: it
    /// resets the client's last event id. The standard makes the parser ignore
    /// an id containing NUL, and a line break would split the field, so both
    /// are refused rather than silently lost.
    pub fn id(mut self, id: impl Into<String>) -> Result<Self, FieldError> {
        let id = id.into();
        if has_line_break(&id) {
            return Err(FieldError {
                field: "id",
                reason: "must not contain CR or LF",
                problem: Problem::Type,
            });
        }
        if id.contains('\0') {
            return Err(FieldError {
                field: "id",
                reason: "must not contain NUL",
                problem: Problem::Type,
            });
        }
        self.id = Some(id);
        Ok(self)
    }

    /// Sets the reconnection delay in milliseconds that the client adopts.
    pub fn retry(mut self, millis: u64) -> Self {
        self.retry = Some(millis);
        self
    }

    /// Whether the event carries a payload. Without `data` a client dispatches
    /// nothing; the event only updates its retry delay or last event id.
    pub fn has_data(&self) -> bool {
        self.data.is_some()
    }

    /// Whether the event names a type.
    pub fn has_event(&self) -> bool {
        self.event.is_some()
    }

    /// The id the event was given, if any.
    pub fn explicit_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Encodes the event with `id` in place of its own (an automatic id the
    /// hub assigns). `id` comes from the hub and has no line breaks.
    pub fn encode_with_id(&self, id: &str) -> Encoded {
        self.encode_fields(Some(id))
    }

    /// Encodes the event into its wire bytes, once. Fields come in the order
    /// `event`, `id`, `retry`, `data`, and the blank line that dispatches it.
    pub fn encode(&self) -> Encoded {
        self.encode_fields(self.id.as_deref())
    }

    fn encode_fields(&self, id: Option<&str>) -> Encoded {
        Encoded::build(|out| {
            if let Some(event) = &self.event {
                put_field(out, b"event", event);
            }
            if let Some(id) = id {
                put_field(out, b"id", id);
            }
            if let Some(retry) = self.retry {
                put_field(out, b"retry", itoa::Buffer::new().format(retry));
            }
            if let Some(data) = &self.data {
                for line in split_lines(data) {
                    put_field(out, b"data", line);
                }
            }
            out.put(b"\n");
        })
    }
}

/// The wire bytes of one encoded event or comment, shared by every channel
/// and every subscriber that gets it.
///
/// One allocation holds the bytes and their reference count, sized exactly:
/// a stored event costs its bytes plus 16, where a `Bytes` built the usual way
/// costs a second allocation for its shared header and the slack of its
/// growable buffer. History is thousands of these per channel, so the
/// difference is most of what history costs.
#[derive(Clone, PartialEq, Eq)]
pub struct Encoded(Arc<[u8]>);

impl Encoded {
    /// Copies `bytes` (bytes encoded elsewhere, such as a backplane's entries).
    pub fn copy_from(bytes: &[u8]) -> Self {
        Encoded(Arc::from(bytes))
    }

    /// `parts` one after the other, in one buffer.
    pub fn concat(parts: &[&[u8]]) -> Self {
        Encoded::build(|out| parts.iter().for_each(|p| out.put(p)))
    }

    /// Runs `write` twice: once to measure, once to fill a buffer of exactly
    /// that size, so the bytes are written once and never reallocated.
    fn build(write: impl Fn(&mut dyn Sink)) -> Self {
        let mut measure = Measure(0);
        write(&mut measure);
        let mut buf = Arc::<[u8]>::new_uninit_slice(measure.0);
        let slots = Arc::get_mut(&mut buf).expect("a new Arc has no other owner");
        let mut fill = Fill { slots, at: 0 };
        write(&mut fill);
        assert_eq!(fill.at, measure.0, "an encoder wrote what it measured");
        // SAFETY: `fill` wrote every one of the `measure.0` slots (asserted
        // just above; `Fill::put` never skips one), so all are initialised.
        Encoded(unsafe { buf.assume_init() })
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Deref for Encoded {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Encoded {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoded({:?})", String::from_utf8_lossy(&self.0))
    }
}

/// Where an encoder writes: [`Measure`] counts, [`Fill`] copies.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

struct Measure(usize);

impl Sink for Measure {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

struct Fill<'a> {
    slots: &'a mut [MaybeUninit<u8>],
    at: usize,
}

impl Sink for Fill<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        for (slot, &b) in self.slots[self.at..end].iter_mut().zip(bytes) {
            slot.write(b);
        }
        self.at = end;
    }
}

/// What `send`/`comment` publish: an event, or a comment (which never gets
/// an id). Encoded once, into the bytes every client of its channels shares.
#[derive(Debug, Clone)]
pub enum Payload {
    /// An event; it gets an automatic id when it has none and history is on.
    Event(Event),
    /// A comment: one `:` line per line of text.
    Comment(String),
}

impl Payload {
    /// The id the application gave the event, if any (comments have none).
    pub fn explicit_id(&self) -> Option<&str> {
        match self {
            Payload::Event(event) => event.explicit_id(),
            Payload::Comment(_) => None,
        }
    }

    /// The bytes on the wire. `auto_id` is asked only for an event without
    /// an id of its own, and its answer (when `Some`) becomes the `id:` line:
    /// the hub numbers events, a backplane leaves that to Redis.
    pub fn encode(&self, auto_id: impl FnOnce() -> Option<String>) -> Encoded {
        match self {
            Payload::Comment(text) => encode_comment(text),
            Payload::Event(event) if event.explicit_id().is_some() => event.encode(),
            Payload::Event(event) => match auto_id() {
                Some(id) => event.encode_with_id(&id),
                None => event.encode(),
            },
        }
    }
}

/// Encodes a comment: one `:` line per line of `text`. Clients ignore comments;
/// servers use them as heartbeats and for debugging. Every line of a multi-line
/// comment is prefixed, so no line of it can become a field.
pub fn encode_comment(text: &str) -> Encoded {
    Encoded::build(|out| {
        for line in split_lines(text) {
            put_field(out, b"", line);
        }
    })
}

/// The heartbeat written to an idle stream: the smallest comment, one `:` line.
pub fn heartbeat() -> Bytes {
    Bytes::from_static(b":\n")
}

/// The block sent first on every new stream when a retry hint is configured:
/// `retry:` followed by the blank line that ends the block.
pub fn retry_hint(millis: u64) -> Encoded {
    Event::default().retry(millis).encode()
}

/// Writes `name: value\n`, or `name:\n` for an empty value. One space always
/// follows the colon, so a value that starts with a space keeps it: the parser
/// removes exactly one.
fn put_field(out: &mut dyn Sink, name: &[u8], value: &str) {
    out.put(name);
    out.put(if value.is_empty() { b":" } else { b": " });
    out.put(value.as_bytes());
    out.put(b"\n");
}

fn has_line_break(s: &str) -> bool {
    memchr::memchr2(b'\r', b'\n', s.as_bytes()).is_some()
}

/// Splits text into lines exactly as an event-stream parser does: at `\r\n`,
/// `\n` or a lone `\r`. An empty text is one empty line, and a trailing line
/// break yields a trailing empty line, so the payload round-trips unchanged.
pub fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        // memchr finds the next line break a word at a time: most payloads
        // have none, and this is on the path of every send().
        match memchr::memchr2(b'\n', b'\r', &bytes[start..]) {
            Some(offset) => {
                let i = start + offset;
                let line = &text[start..i];
                start = if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    i + 2
                } else {
                    i + 1
                };
                Some(line)
            }
            None => {
                done = true;
                Some(&text[start..])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_takes_an_automatic_id_only_when_it_has_none_of_its_own() {
        let asked = std::cell::Cell::new(0);
        let auto = || {
            asked.set(asked.get() + 1);
            Some("e-7".to_owned())
        };
        let plain = Payload::Event(Event::message("x"));
        assert_eq!(&*plain.encode(auto), b"id: e-7\ndata: x\n\n");
        let own = Payload::Event(Event::message("x").id("mine").unwrap());
        assert_eq!(&*own.encode(auto), b"id: mine\ndata: x\n\n");
        assert_eq!(own.explicit_id(), Some("mine"));
        let comment = Payload::Comment("hi".into());
        assert_eq!(&*comment.encode(auto), b": hi\n");
        assert_eq!(comment.explicit_id(), None);
        assert_eq!(&*plain.encode(|| None), b"data: x\n\n");
        assert_eq!(asked.get(), 1, "asked for the plain event only");
    }

    fn enc(ev: Event) -> Vec<u8> {
        ev.encode().to_vec()
    }

    #[test]
    fn unnamed_event_is_one_data_line_and_a_blank_line() {
        assert_eq!(enc(Event::message("12:00:00")), b"data: 12:00:00\n\n");
    }

    #[test]
    fn named_event_with_id_and_retry_in_field_order() {
        let ev = Event::message("x")
            .event("myEvent")
            .unwrap()
            .id("42")
            .unwrap()
            .retry(3000);
        assert_eq!(
            enc(ev),
            b"event: myEvent\nid: 42\nretry: 3000\ndata: x\n\n".to_vec()
        );
    }

    #[test]
    fn data_is_split_at_lf_crlf_and_lone_cr() {
        assert_eq!(
            enc(Event::message("a\nb\r\nc\rd")),
            b"data: a\ndata: b\ndata: c\ndata: d\n\n".to_vec()
        );
    }

    #[test]
    fn trailing_and_consecutive_line_breaks_survive() {
        assert_eq!(
            enc(Event::message("a\n\nb\n")),
            b"data: a\ndata:\ndata: b\ndata:\n\n".to_vec()
        );
        assert_eq!(enc(Event::message("\r\r\n")), b"data:\ndata:\ndata:\n\n");
    }

    #[test]
    fn empty_data_is_one_empty_data_line() {
        assert_eq!(enc(Event::message("")), b"data:\n\n");
    }

    #[test]
    fn leading_space_is_kept() {
        assert_eq!(enc(Event::message(" foobar")), b"data:  foobar\n\n");
        let ev = Event::message("x").event(" spaced").unwrap();
        assert_eq!(enc(ev), b"event:  spaced\ndata: x\n\n");
    }

    #[test]
    fn empty_id_resets_the_last_event_id() {
        let ev = Event::message("x").id("").unwrap();
        assert_eq!(enc(ev), b"id:\ndata: x\n\n");
    }

    #[test]
    fn unicode_passes_through_unchanged() {
        assert_eq!(
            enc(Event::message("这是注释！")),
            "data: 这是注释！\n\n".as_bytes()
        );
    }

    #[test]
    fn line_breaks_in_event_and_id_are_refused() {
        for bad in ["a\nb", "a\rb", "\r\n"] {
            let err = Event::default().event(bad).unwrap_err();
            assert_eq!((err.field, err.problem), ("event", Problem::Type));
            let err = Event::default().id(bad).unwrap_err();
            assert_eq!(err.field, "id");
        }
        let err = Event::default().id("a\0b").unwrap_err();
        assert_eq!(err.reason, "must not contain NUL");
    }

    #[test]
    fn comment_prefixes_every_line() {
        assert_eq!(encode_comment("hi").to_vec(), b": hi\n");
        assert_eq!(encode_comment("a\nb\r\nc").to_vec(), b": a\n: b\n: c\n");
        assert_eq!(encode_comment("").to_vec(), b":\n");
        assert_eq!(
            encode_comment("'这是注释！'").to_vec(),
            ": '这是注释！'\n".as_bytes()
        );
    }

    #[test]
    fn retry_hint_is_its_own_block() {
        assert_eq!(retry_hint(3000).to_vec(), b"retry: 3000\n\n");
    }

    #[test]
    fn split_lines_matches_the_parser() {
        let lines: Vec<_> = split_lines("a\r\n\rb").collect();
        assert_eq!(lines, ["a", "", "b"]);
        let lines: Vec<_> = split_lines("").collect();
        assert_eq!(lines, [""]);
    }
}
