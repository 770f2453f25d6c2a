//! `Last-Event-ID` resolution (`Hub::resolve`, `Hub::subscribe`) after an
//! arbitrary history of sends.
//!
//! The hub publishes events (automatic or explicit ids) and comments to
//! channels `default`, `a`, `b` with a small history, and may switch its id
//! epoch the way the Redis backplane does when Redis lost its data. A model
//! of the logs (each channel keeps its newest `history` entries when nobody
//! is subscribed) says what each id must resolve to. Then arbitrary strings,
//! handed-out ids and ids spelled in the hub's own epoch are given as
//! `Last-Event-ID`. Checked, besides "never panics":
//! - every automatic id of the current epoch resolves to exactly its
//!   position when every channel asked for still covers it, else it is stale
//!   and the client starts live; ids of an older epoch are stale;
//! - an explicit id resolves to the position of its newest event in the
//!   client's channels (whatever order they are named in) when that is still
//!   in the history, else stale;
//! - nothing else resolves to a position outside what was published: `n` of
//!   `<epoch>-<n>` maps to `offset + n`, which must lie between the epoch's
//!   start (`n = 0`, "before its first event", what the backplane counts
//!   from) and the newest published position, and still be covered;
//! - `subscribe` agrees with `resolve` on staleness, and its first reads
//!   replay exactly the events after that position in its channels, in
//!   order, once each, carrying the ids they were sent with; a live start
//!   replays nothing.

#![no_main]

use arbitrary::Arbitrary;
use hyper_sse::event::Event;
use hyper_sse::event::Payload;
use hyper_sse::hub::{Hub, IdSpace, Read, Retention, Start, Subscription};
use hyper_sse::io::Progress;
use libfuzzer_sys::fuzz_target;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

const CHANNELS: [&str; 3] = ["default", "a", "b"];

#[derive(Arbitrary, Debug)]
enum Op {
    /// An event; its channels are a bit mask over `CHANNELS` (0: none given).
    Publish {
        channels: u8,
        id: Option<String>,
    },
    Comment {
        channels: u8,
    },
    /// What the backplane does when Redis lost its data: a new epoch whose
    /// `n = 0` is the current position.
    NewEpoch,
    Resolve(Query),
    Subscribe(Query),
}

#[derive(Arbitrary, Debug)]
struct Query {
    /// The client's channels, a bit mask over `CHANNELS` (0: none given).
    channels: u8,
    id: Candidate,
}

#[derive(Arbitrary, Debug)]
enum Candidate {
    Raw(String),
    /// The i-th id handed out (any epoch), modulo their number.
    Handed(u16),
    /// `<current epoch>-<suffix>`.
    Spelled(String),
    /// `<current epoch>-<n>`.
    Number(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    history: u8,
    ops: Vec<Op>,
}

/// One published position, as the model keeps it.
#[derive(Clone, Debug)]
struct Entry {
    gseq: u64,
    /// The id line sent with it (`None` for a comment).
    id: Option<String>,
    /// Whether `id` is explicit (given by the sender).
    explicit: bool,
}

#[derive(Default)]
struct Channel {
    log: VecDeque<Entry>,
    /// Position of the newest entry dropped from the log.
    trimmed: u64,
}

struct Model {
    history: usize,
    channels: HashMap<&'static str, Channel>,
    committed: u64,
    epoch: u32,
    offset: u64,
    /// Every id handed out: (id, position, epoch, explicit).
    handed: Vec<(String, u64, u32, bool)>,
}

impl Model {
    fn epoch_name(epoch: u32) -> String {
        format!("e{epoch}")
    }

    /// The channels a mask names; none named means the default channel.
    fn names(mask: u8) -> Vec<&'static str> {
        let names: Vec<_> = (0..3)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| CHANNELS[i])
            .collect();
        if names.is_empty() {
            vec!["default"]
        } else {
            names
        }
    }

    fn append(&mut self, names: &[&'static str], entry: Entry) {
        let history = self.history;
        for name in names {
            let ch = self.channels.entry(name).or_default();
            ch.log.push_back(entry.clone());
            while ch.log.len() > history {
                let dropped = ch.log.pop_front().expect("log is longer than history");
                ch.trimmed = dropped.gseq;
            }
        }
    }

    /// Whether every existing channel of `names` still has position `g`'s successors.
    fn covered(&self, names: &[&str], g: u64) -> bool {
        names
            .iter()
            .filter_map(|n| self.channels.get(n))
            .all(|ch| ch.trimmed <= g)
    }

    /// What a client on `names` replays after `g`: positions in order, once each.
    fn replay(&self, names: &[&str], g: u64) -> Vec<Entry> {
        let mut out: Vec<Entry> = names
            .iter()
            .filter_map(|n| self.channels.get(n))
            .flat_map(|ch| ch.log.iter().filter(|e| e.gseq > g).cloned())
            .collect();
        out.sort_by_key(|e| e.gseq);
        out.dedup_by_key(|e| e.gseq);
        out
    }

    /// An explicit id that spells an id of one of the hub's epochs (now or
    /// later: `e<digits>-…`) is ambiguous by design (the automatic reading
    /// wins); not generated.
    fn spells_auto(id: &str) -> bool {
        id.split_once('-').is_some_and(|(e, _)| {
            e.strip_prefix('e')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
    }

    fn candidate(&self, c: &Candidate) -> String {
        let epoch = Self::epoch_name(self.epoch);
        match c {
            Candidate::Raw(s) => s.clone(),
            Candidate::Handed(i) if !self.handed.is_empty() => {
                self.handed[usize::from(*i) % self.handed.len()].0.clone()
            }
            Candidate::Handed(_) => format!("{epoch}-1"),
            Candidate::Spelled(suffix) => format!("{epoch}-{suffix}"),
            Candidate::Number(n) => format!("{epoch}-{n}"),
        }
    }

    /// Checks `resolve`'s answer for `id` on `names`.
    fn check(&self, names: &[&str], id: &str, got: (Start, bool)) {
        if self.history == 0 {
            assert_eq!(got, (Start::Live, true), "history off: {id:?}");
            return;
        }
        let at = |g: u64| {
            if self.covered(names, g) {
                (Start::After(g), false)
            } else {
                (Start::Live, true)
            }
        };
        let handed: Vec<_> = self.handed.iter().filter(|h| h.0 == id).collect();
        if let Some(auto) = handed.iter().find(|h| !h.3) {
            if auto.2 == self.epoch {
                assert_eq!(got, at(auto.1), "automatic id {id:?} (position {})", auto.1);
            } else {
                assert_eq!(got, (Start::Live, true), "id {id:?} of an older epoch");
            }
            return;
        }
        if !handed.is_empty() {
            // Explicit: the newest of its events still in these channels' logs.
            let newest = names
                .iter()
                .filter_map(|n| self.channels.get(n))
                .flat_map(|ch| ch.log.iter())
                .filter(|e| e.explicit && e.id.as_deref() == Some(id))
                .map(|e| e.gseq)
                .max();
            match newest {
                None => assert_eq!(
                    got,
                    (Start::Live, true),
                    "explicit id {id:?} not in history"
                ),
                Some(g) => assert_eq!(got, at(g), "explicit id {id:?} (newest at {g})"),
            }
            return;
        }
        match got {
            (Start::Live, true) => {}
            (Start::After(g), false) => {
                assert!(
                    g >= self.offset && g <= self.committed && self.covered(names, g),
                    "{id:?} resolved to position {g}: epoch starts at {}, newest is {}",
                    self.offset,
                    self.committed
                );
            }
            other => panic!("{id:?} resolved to {other:?}"),
        }
    }
}

/// The position and id line of one replayed block.
fn replayed(bytes: &[u8]) -> (u64, Option<String>) {
    let text = std::str::from_utf8(bytes).expect("the hub sends UTF-8");
    let mut gseq = None;
    let mut id = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.strip_prefix(' ').unwrap_or(v).to_owned());
        } else if let Some(v) = line
            .strip_prefix("data: ")
            .or_else(|| line.strip_prefix(": "))
        {
            gseq = v.parse().ok();
        }
    }
    (gseq.expect("every payload is its position"), id)
}

fuzz_target!(|input: Input| {
    let history = usize::from(input.history % 17);
    let hub = Hub::new(Retention {
        history,
        max_buffered_bytes: 1 << 20,
        stall_timeout: None,
    });
    // A fixed epoch, so a failing input replays the same way.
    hub.set_id_space(IdSpace {
        epoch: Model::epoch_name(0),
        offset: 0,
    });
    let mut model = Model {
        history,
        channels: HashMap::new(),
        committed: 0,
        epoch: 0,
        offset: 0,
        handed: Vec::new(),
    };
    for op in input.ops.iter().take(200) {
        match op {
            Op::Publish { channels, id } => {
                let names = Model::names(*channels);
                let gseq = model.committed + 1;
                let mut event = Event::message(gseq.to_string());
                let mut explicit = None;
                if let Some(id) = id {
                    if !Model::spells_auto(id) {
                        if let Ok(e) = event.clone().id(id.as_str()) {
                            event = e;
                            explicit = Some(id.clone());
                        }
                    }
                }
                let given: Vec<&str> = if *channels == 0 {
                    Vec::new()
                } else {
                    names.clone()
                };
                assert_eq!(hub.publish(&given, &Payload::Event(event)), gseq);
                model.committed = gseq;
                let id = match &explicit {
                    Some(id) => Some(id.clone()),
                    None if history > 0 => Some(hub.auto_id(gseq)),
                    None => None,
                };
                if let Some(id) = &id {
                    model
                        .handed
                        .push((id.clone(), gseq, model.epoch, explicit.is_some()));
                }
                model.append(
                    &names,
                    Entry {
                        gseq,
                        id,
                        explicit: explicit.is_some(),
                    },
                );
            }
            Op::Comment { channels } => {
                let names = Model::names(*channels);
                let gseq = model.committed + 1;
                let given: Vec<&str> = if *channels == 0 {
                    Vec::new()
                } else {
                    names.clone()
                };
                assert_eq!(
                    hub.publish(&given, &Payload::Comment(gseq.to_string())),
                    gseq
                );
                model.committed = gseq;
                model.append(
                    &names,
                    Entry {
                        gseq,
                        id: None,
                        explicit: false,
                    },
                );
            }
            Op::NewEpoch => {
                model.epoch += 1;
                model.offset = model.committed;
                hub.set_id_space(IdSpace {
                    epoch: Model::epoch_name(model.epoch),
                    offset: model.offset,
                });
            }
            Op::Resolve(q) => {
                let names = Model::names(q.channels);
                let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
                let id = model.candidate(&q.id);
                model.check(&names, &id, hub.resolve(Some(&id), &owned));
                assert_eq!(hub.resolve(None, &owned), (Start::Live, false));
            }
            Op::Subscribe(q) => {
                let names = Model::names(q.channels);
                let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
                let id = model.candidate(&q.id);
                let resolved = hub.resolve(Some(&id), &owned);
                model.check(&names, &id, resolved);
                let progress = Arc::new(Progress::default());
                let (mut sub, stale) = hub.subscribe(Subscription {
                    id: hub.next_client_id(),
                    channels: &owned,
                    last_event_id: Some(&id),
                    progress,
                });
                assert_eq!(
                    stale, resolved.1,
                    "subscribe and resolve disagree on {id:?}"
                );
                let want: Vec<(u64, Option<String>)> = match resolved.0 {
                    Start::After(g) => model
                        .replay(&names, g)
                        .into_iter()
                        .map(|e| (e.gseq, e.id))
                        .collect(),
                    Start::Live => Vec::new(),
                };
                let mut got = Vec::new();
                loop {
                    match sub.read() {
                        Read::Events(batch) => {
                            got.extend(batch.iter().map(|b| replayed(b.as_ref())))
                        }
                        Read::Empty => break,
                        other => panic!("a fresh subscriber read {other:?}"),
                    }
                }
                assert_eq!(got, want, "replay after {id:?} on {names:?}");
                // Dropping `sub` unsubscribes: the model's logs are unchanged.
            }
        }
    }
});
