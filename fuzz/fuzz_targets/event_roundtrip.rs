//! The event encoder, round-tripped through the standard's parser.
//!
//! A stream is built the way the hub builds one: events from the builder
//! (arbitrary `event`/`id`/`retry`/`data`), events with an automatic id
//! (`encode_with_id`), comments, heartbeats and retry hints, one after the
//! other. It is parsed by `sse_spec` (the WHATWG algorithm), whole and in
//! arbitrary pieces, and every blank line must do exactly what the sender
//! meant:
//! - an event with data fires one `MessageEvent` whose type is its `event`
//!   (`message` when absent or empty), whose data is its data with every line
//!   break (CRLF, LF, lone CR: the parser's line ends) as LF, and whose
//!   `lastEventId` is its id, or the last one sent before (`''` resets it);
//! - an event without data fires nothing but still sets the id and retry;
//! - `retry` sets the reconnection time to exactly that number;
//! - comments and heartbeats change nothing and fire nothing.
//!
//! Refused values: `event` with CR/LF and `id` with CR/LF/NUL must be
//! refused, naming that field, as a type problem; everything else accepted.

#![no_main]

use arbitrary::Arbitrary;
use hyper_sse::event::{encode_comment, heartbeat, retry_hint, Event, FieldError, Problem};
use hyper_sse_fuzz::sse_spec::{Dispatch, Message, Parser};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Item {
    Event {
        event: Option<String>,
        id: Option<String>,
        retry: Option<u64>,
        data: Option<String>,
    },
    /// An event with an automatic id `<epoch>-<n>`, as the hub encodes it.
    AutoId {
        epoch: u64,
        n: u64,
        data: String,
    },
    Comment(String),
    Heartbeat,
    RetryHint(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    items: Vec<Item>,
    /// Piece sizes for feeding the stream, used in turn (0 counts as 1).
    pieces: Vec<u8>,
}

/// What the parser should be left with after each blank line.
#[derive(Default)]
struct Expect {
    last_event_id: String,
    reconnection_time: Option<String>,
    dispatches: Vec<Dispatch>,
}

impl Expect {
    fn block(&mut self, id: Option<&str>, retry: Option<u64>, message: Option<Message>) {
        if let Some(id) = id {
            self.last_event_id = id.to_owned();
        }
        if let Some(retry) = retry {
            self.reconnection_time = Some(retry.to_string());
        }
        self.dispatches.push(Dispatch {
            last_event_id: self.last_event_id.clone(),
            reconnection_time: self.reconnection_time.clone(),
            message,
        });
    }
}

/// The data a client sees: the payload's lines joined with LF.
fn as_received(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

fn message(event: Option<&str>, data: &str) -> Message {
    Message {
        event_type: match event {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => "message".to_owned(),
        },
        data: as_received(data),
    }
}

/// Sets one validated field; `bad` says whether the value breaks the stream.
/// The builder must refuse exactly those, naming `field`, as a type problem.
/// False when refused (`ev` is then unchanged).
fn set(
    ev: &mut Event,
    field: &str,
    value: &str,
    bad: bool,
    setter: impl FnOnce(Event, &str) -> Result<Event, FieldError>,
) -> bool {
    match setter(ev.clone(), value) {
        Ok(e) => {
            assert!(!bad, "{field} {value:?} accepted");
            *ev = e;
            true
        }
        Err(err) => {
            assert!(bad, "{field} {value:?} refused: {err}");
            assert_eq!((err.field, err.problem), (field, Problem::Type));
            false
        }
    }
}

/// Builds the event as `send()` does, checking what the builder refuses.
/// `None` when a field was refused (nothing is sent then).
fn build(
    event: &Option<String>,
    id: &Option<String>,
    retry: Option<u64>,
    data: &Option<String>,
) -> Option<Event> {
    let mut ev = Event::default();
    if let Some(data) = data {
        ev = ev.data(data.as_str());
    }
    let event_ok = event.as_ref().is_none_or(|name| {
        let bad = name.contains(['\r', '\n']);
        set(&mut ev, "event", name, bad, |e, v| e.event(v))
    });
    let id_ok = id.as_ref().is_none_or(|id| {
        let bad = id.contains(['\r', '\n', '\0']);
        set(&mut ev, "id", id, bad, |e, v| e.id(v))
    });
    if let Some(retry) = retry {
        ev = ev.retry(retry);
    }
    (event_ok && id_ok).then_some(ev)
}

fuzz_target!(|input: Input| {
    let mut stream = Vec::new();
    let mut expect = Expect::default();
    for item in &input.items {
        match item {
            Item::Event {
                event,
                id,
                retry,
                data,
            } => {
                let Some(ev) = build(event, id, *retry, data) else {
                    continue;
                };
                stream.extend_from_slice(ev.encode().as_ref());
                let msg = data.as_deref().map(|d| message(event.as_deref(), d));
                expect.block(id.as_deref(), *retry, msg);
            }
            Item::AutoId { epoch, n, data } => {
                let id = format!("{epoch:x}-{n}");
                stream
                    .extend_from_slice(Event::message(data.as_str()).encode_with_id(&id).as_ref());
                expect.block(Some(&id), None, Some(message(None, data)));
            }
            Item::Comment(text) => stream.extend_from_slice(encode_comment(text).as_ref()),
            Item::Heartbeat => stream.extend_from_slice(heartbeat().as_ref()),
            Item::RetryHint(ms) => {
                stream.extend_from_slice(retry_hint(*ms).as_ref());
                expect.block(None, Some(*ms), None);
            }
        }
    }

    let whole = hyper_sse_fuzz::sse_spec::parse(&stream);
    assert_eq!(
        whole,
        expect.dispatches,
        "stream {:?}",
        String::from_utf8_lossy(&stream)
    );

    let mut parser = Parser::new();
    let mut rest = &stream[..];
    let mut sizes = input.pieces.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().map_or(rest.len(), |&n| usize::from(n.max(1)));
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        parser.feed(piece);
        rest = tail;
    }
    assert_eq!(
        parser.reconnection_time(),
        expect.reconnection_time.as_deref()
    );
    assert_eq!(parser.finish(), expect.dispatches, "fed in pieces");
});
