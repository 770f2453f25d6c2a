//! The event-stream parser of the WHATWG HTML standard, "Server-sent
//! events", §9.2.6 "Interpreting an event stream", written step by step so
//! the encoder can be checked against the standard itself rather than
//! against another implementation's reading of it.
//!
//! Why not a crate: `eventsource-stream` 0.2 (the usual Rust choice) keeps
//! `retry` on the event it arrived with (a retry-only block is lost, where
//! the standard sets the stream's reconnection time at once), accepts
//! `retry: +5` (`u64::from_str`; the standard wants ASCII digits only) and is
//! an async `Stream`. The algorithm is short enough to follow literally.
//!
//! It works on bytes: the stream is UTF-8 decoded line by line, which is the
//! same as decoding it whole because CR and LF never occur inside a
//! multi-byte UTF-8 sequence. It accepts input in arbitrary pieces (a CRLF
//! split across two pieces is one line end), as a browser receives it.

/// What one blank line did: the standard's "dispatch the event".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// The event source's last event ID string after step 1.
    pub last_event_id: String,
    /// The stream's reconnection time at this point (decimal digits, no
    /// leading zeros), or `None` while no valid `retry` field was seen.
    pub reconnection_time: Option<String>,
    /// The `MessageEvent` created, or `None` when the data buffer was empty
    /// (step 2: nothing is fired).
    pub message: Option<Message>,
}

/// A fired `MessageEvent`'s `type` and `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `message` unless an `event` field named another type.
    pub event_type: String,
    /// The data buffer, without its final LF.
    pub data: String,
}

/// The parser's state: the three buffers the standard associates with a
/// stream, the stream's reconnection time, and the line being assembled.
#[derive(Debug, Default)]
pub struct Parser {
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    last_event_id: String,
    reconnection_time: Option<String>,
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous piece ended with CR: an LF first in this one belongs to it.
    after_cr: bool,
    /// Bytes seen so far, while fewer than three: the BOM check needs three.
    start: Option<Vec<u8>>,
    dispatches: Vec<Dispatch>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Parser {
            start: Some(Vec::new()),
            ..Parser::default()
        }
    }

    /// Feeds the next piece of the stream.
    pub fn feed(&mut self, piece: &[u8]) {
        // "UTF-8 decode" removes one leading byte order mark, and only one.
        if let Some(mut start) = self.start.take() {
            start.extend_from_slice(piece);
            if start.len() < BOM.len() && BOM.starts_with(&start) {
                self.start = Some(start);
                return;
            }
            let rest = start.strip_prefix(BOM).unwrap_or(&start).to_vec();
            self.lines(&rest);
            return;
        }
        self.lines(piece);
    }

    /// Ends the stream and returns every dispatch, in order. "Once the end of
    /// the file is reached, any pending data must be discarded": an
    /// unfinished event is not dispatched.
    pub fn finish(mut self) -> Vec<Dispatch> {
        if let Some(start) = self.start.take() {
            // Fewer than three bytes, all a prefix of the BOM: not a BOM.
            self.lines(&start);
        }
        self.dispatches
    }

    /// The reconnection time set so far (decimal digits), if any.
    pub fn reconnection_time(&self) -> Option<&str> {
        self.reconnection_time.as_deref()
    }

    /// "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A
    /// LINE FEED (CRLF) character pair, a single U+000A LINE FEED (LF)
    /// character, or a single U+000D CARRIAGE RETURN (CR) character."
    fn lines(&mut self, mut bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if std::mem::take(&mut self.after_cr) {
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => self.end_line(),
                b'\r' => {
                    self.end_line();
                    match bytes.get(i + 1) {
                        Some(b'\n') => i += 1,
                        Some(_) => {}
                        None => {
                            self.after_cr = true;
                            return;
                        }
                    }
                }
                b => self.line.push(b),
            }
            i += 1;
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        self.process_line(&line);
    }

    /// "Lines must be processed, in the order they are received, as follows".
    fn process_line(&mut self, line: &str) {
        if line.is_empty() {
            // "If the line is empty (a blank line): Dispatch the event."
            self.dispatch();
        } else if line.starts_with(':') {
            // "If the line starts with a U+003A COLON character (:): Ignore the line."
        } else if let Some((field, value)) = line.split_once(':') {
            // "Collect the characters on the line before the first U+003A
            // COLON character (:), and let field be that string. [...] after
            // [...] let value be that string. If value starts with a U+0020
            // SPACE character, remove it from value."
            let value = value.strip_prefix(' ').unwrap_or(value);
            self.process_field(field, value);
        } else {
            // "Otherwise, the string is not empty but does not contain a
            // U+003A COLON character (:): Process the field using [...] the
            // whole line as the field name, and the empty string as the field value."
            self.process_field(line, "");
        }
    }

    /// "The steps to process the field given a field name and a field value".
    fn process_field(&mut self, field: &str, value: &str) {
        match field {
            // "Set the event type buffer to field value."
            "event" => self.event_type = value.to_owned(),
            // "Append the field value to the data buffer, then append a
            // single U+000A LINE FEED (LF) character to the data buffer."
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // "If the field value does not contain U+0000 NULL, then set the
            // last event ID buffer to the field value. Otherwise, ignore the field."
            "id" if !value.contains('\0') => self.last_event_id_buffer = value.to_owned(),
            // "If the field value consists of only ASCII digits, then
            // interpret the field value as an integer in base ten, and set
            // the event stream's reconnection time to that integer.
            // Otherwise, ignore the field."
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                let digits = value.trim_start_matches('0');
                self.reconnection_time = Some(if digits.is_empty() {
                    "0".to_owned()
                } else {
                    digits.to_owned()
                });
            }
            // "Otherwise: The field is ignored." (And the ignored id and retry values.)
            _ => {}
        }
    }

    /// "When the user agent is required to dispatch the event".
    fn dispatch(&mut self) {
        // 1. "Set the last event ID string of the event source to the value
        // of the last event ID buffer. The buffer does not get reset."
        self.last_event_id = self.last_event_id_buffer.clone();
        // 2. "If the data buffer is an empty string, set the data buffer and
        // the event type buffer to the empty string and return."
        let message = if self.data.is_empty() {
            self.event_type.clear();
            None
        } else {
            // 3. "If the data buffer's last character is a U+000A LINE FEED
            // (LF) character, then remove the last character from the data buffer."
            let mut data = std::mem::take(&mut self.data);
            if data.ends_with('\n') {
                data.pop();
            }
            // 5./6. "Initialize event's type attribute to "message" [...] If
            // the event type buffer has a value other than the empty string,
            // change the type of the newly created event to equal the value
            // of the event type buffer."
            let event_type = match std::mem::take(&mut self.event_type) {
                t if t.is_empty() => "message".to_owned(),
                t => t,
            };
            // 7. "Set the data buffer and the event type buffer to the empty
            // string." (Both were taken above.)
            Some(Message { event_type, data })
        };
        self.dispatches.push(Dispatch {
            last_event_id: self.last_event_id.clone(),
            reconnection_time: self.reconnection_time.clone(),
            message,
        });
    }
}

/// Parses a whole stream given in one piece.
pub fn parse(stream: &[u8]) -> Vec<Dispatch> {
    let mut parser = Parser::new();
    parser.feed(stream);
    parser.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(stream: &[u8]) -> Vec<(String, String, String)> {
        parse(stream)
            .into_iter()
            .filter_map(|d| {
                d.message
                    .map(|m| (m.event_type, m.data, d.last_event_id.clone()))
            })
            .collect()
    }

    fn m(t: &str, data: &str, id: &str) -> (String, String, String) {
        (t.to_owned(), data.to_owned(), id.to_owned())
    }

    #[test]
    fn the_standards_examples() {
        // "data: YHOO\ndata: +2\ndata: 10\n\n" is one event "YHOO\n+2\n10".
        assert_eq!(
            messages(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
            [m("message", "YHOO\n+2\n10", "")]
        );
        // The four-block example: a comment, an event, an id, an unfinished event.
        let stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n";
        assert_eq!(
            messages(stream),
            [
                m("message", "first event", "1"),
                m("message", "second event", "")
            ]
        );
        // "data\n\ndata\ndata\n\ndata:" fires "" and "\n"; the last is unfinished.
        assert_eq!(
            messages(b"data\n\ndata\ndata\n\ndata:"),
            [m("message", "", ""), m("message", "\n", "")]
        );
        // "data:test" and "data: test" are the same.
        assert_eq!(
            messages(b"data:test\n\ndata: test\n\n"),
            [m("message", "test", ""), m("message", "test", "")]
        );
    }

    #[test]
    fn lines_end_at_crlf_lf_and_lone_cr_even_across_pieces() {
        let want = [m("message", "a\nb\nc", "")];
        assert_eq!(messages(b"data: a\r\ndata: b\rdata: c\n\r\n"), want);
        let mut p = Parser::new();
        for piece in [
            &b"data: a\r"[..],
            b"\ndata: b\r",
            b"data: c\r",
            b"\n",
            b"\r",
            b"\n",
        ] {
            p.feed(piece);
        }
        let got: Vec<_> = p.finish().into_iter().filter_map(|d| d.message).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, "a\nb\nc");
    }

    #[test]
    fn one_leading_bom_is_removed_even_in_pieces() {
        assert_eq!(
            messages(b"\xEF\xBB\xBFdata: 1\n\n"),
            [m("message", "1", "")]
        );
        let mut p = Parser::new();
        for b in b"\xEF\xBB\xBFdata: 1\n\n" {
            p.feed(&[*b]);
        }
        assert_eq!(p.finish().len(), 1);
        // A second BOM is part of the first field name: that line is ignored.
        assert_eq!(
            messages(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: 1\n\ndata: 2\n\n"),
            [m("message", "2", "")]
        );
        // Not at the start: plain data.
        assert_eq!(
            messages(b"data: \xEF\xBB\xBFx\n\n"),
            [m("message", "\u{feff}x", "")]
        );
    }

    #[test]
    fn event_type_id_and_retry_follow_the_field_rules() {
        let d =
            parse(b"event: add\nid: 7\nretry: 0050\ndata: x\n\nid: a\0b\nretry: +5\nretry: 1x\n\n");
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].message,
            Some(Message {
                event_type: "add".into(),
                data: "x".into()
            })
        );
        assert_eq!(d[0].last_event_id, "7");
        assert_eq!(d[0].reconnection_time.as_deref(), Some("50"));
        // An id with NUL and a non-digit retry are ignored; no data, no event.
        assert_eq!(d[1].message, None);
        assert_eq!(d[1].last_event_id, "7");
        assert_eq!(d[1].reconnection_time.as_deref(), Some("50"));
        // An empty event type is "message"; the type does not carry over.
        assert_eq!(
            messages(b"event:\ndata: a\n\ndata: b\n\n"),
            [m("message", "a", ""), m("message", "b", "")]
        );
        // An empty id resets the last event id; the id carries over otherwise.
        assert_eq!(
            messages(b"id: 1\ndata: a\n\ndata: b\n\nid:\ndata: c\n\n"),
            [
                m("message", "a", "1"),
                m("message", "b", "1"),
                m("message", "c", "")
            ]
        );
    }

    #[test]
    fn only_one_space_after_the_colon_is_removed() {
        assert_eq!(messages(b"data:  x\n\n"), [m("message", " x", "")]);
        assert_eq!(messages(b"data\n\n"), [m("message", "", "")]);
    }
}
