//! Prometheus metrics: the server's counters as text in the exposition
//! format (version 0.0.4), so any Prometheus-compatible scraper reads them
//! with no exporter process beside the server.
//!
//! This module only renders: it takes the counters ([`StatsSnapshot`]), the
//! channels' figures and the backplane's, and writes `# HELP`, `# TYPE` and
//! one line per sample. Serving the text is the application's business (an
//! `onRequest` route, a framework's route). Every name starts with
//! `hyper_sse_`; counters end in `_total`, byte counters in `_bytes_total`.
//!
//! Channel names are user input, and each label value is a time series the
//! scraper stores for weeks: so only the `max_channels` channels with the
//! most subscribers get a `channel` label of their own, and the rest are
//! summed into one series labelled [`OTHER_CHANNELS`]. `hyper_sse_channels`
//! says how many channels exist, listed or not.

use crate::backplane::{BackplaneStats, State};
use crate::hub::{ChannelStats, Eviction};
use crate::stats::StatsSnapshot;
use std::borrow::Cow;
use std::fmt::Write;

/// How many channels get a label of their own unless told otherwise: enough
/// for a dashboard of the busy ones, few enough that a server with a channel
/// per user does not flood its scraper.
pub const DEFAULT_MAX_CHANNELS: usize = 100;

/// The most `max_channels` may be: past it one scrape is megabytes of text
/// and a series per channel, which is what the cap is there to prevent.
pub const MAX_CHANNELS_LIMIT: usize = 10_000;

/// The `channel` label of the series that sums the channels not listed. A
/// real channel with this name is always summed there too, so the label
/// never appears twice (a duplicate series fails the whole scrape).
pub const OTHER_CHANNELS: &str = "_other";

/// The backplane's states, in the order the `state` gauge lists them.
const STATES: [State; 4] = [
    State::Idle,
    State::Connected,
    State::Reconnecting,
    State::Closed,
];

/// Renders the metrics: the counters in `stats`, the busiest `max_channels`
/// of `channels` (and the rest summed), and the backplane's figures when
/// there is one. The text ends with a newline, as the format requires.
pub fn render(
    stats: &StatsSnapshot,
    channels: &[ChannelStats],
    backplane: Option<&BackplaneStats>,
    max_channels: usize,
) -> String {
    let mut w = Writer::default();
    w.gauge(
        "hyper_sse_connections",
        "Event streams open now.",
        stats.connections,
    );
    w.counter(
        "hyper_sse_streams_opened_total",
        "Event streams opened since the server started.",
        stats.total_connections,
    );
    w.counter(
        "hyper_sse_events_sent_total",
        "Events accepted by send() and sendTo(), each counted once however many clients get it.",
        stats.events_sent,
    );
    w.counter(
        "hyper_sse_comments_sent_total",
        "Comments accepted by comment().",
        stats.comments_sent,
    );
    w.counter(
        "hyper_sse_deliveries_total",
        "Events and comments handed to client connections, one per client.",
        stats.deliveries,
    );
    w.counter(
        "hyper_sse_sent_bytes_total",
        "Event-stream bytes handed to client connections, summed over clients (not HTTP framing).",
        stats.bytes_sent,
    );
    w.family(
        "hyper_sse_evictions_total",
        "counter",
        "Streams dropped as too slow, by reason: budget (maxBufferedBytes), stall (stallTimeout), gap (the Redis backplane trimmed events before this instance read them).",
    );
    for why in Eviction::ALL {
        w.sample(
            "hyper_sse_evictions_total",
            &[("reason", why.as_str())],
            stats.evictions.get(why),
        );
    }
    w.counter(
        "hyper_sse_denials_total",
        "Stream requests refused by onConnect, CORS or a connection limit.",
        stats.denied,
    );
    render_channels(&mut w, channels, max_channels);
    if let Some(b) = backplane {
        render_backplane(&mut w, b);
    }
    w.out
}

/// The channel gauges: the `max` channels with the most subscribers (ties
/// by name, so the choice is stable between scrapes), then one
/// [`OTHER_CHANNELS`] series summing the rest when there is a rest.
fn render_channels(w: &mut Writer, channels: &[ChannelStats], max: usize) {
    w.gauge(
        "hyper_sse_channels",
        "Channels that exist now (with subscribers or history), whether listed by name or not.",
        channels.len() as u64,
    );
    let (mut listed, mut rest): (Vec<&ChannelStats>, Vec<&ChannelStats>) =
        channels.iter().partition(|c| c.name != OTHER_CHANNELS);
    listed.sort_unstable_by(|a, b| b.subscribers.cmp(&a.subscribers).then(a.name.cmp(&b.name)));
    rest.extend(listed.drain(max.min(listed.len())..));
    let suffix = format!(
        "; the {max} channels with the most subscribers by name, the rest summed as channel=\"{OTHER_CHANNELS}\"."
    );
    let split = Split { listed, rest };
    split.family(
        w,
        "hyper_sse_channel_subscribers",
        &format!("Streams reading the channel now{suffix}"),
        |c| c.subscribers,
    );
    split.family(
        w,
        "hyper_sse_channel_history_events",
        &format!("Events kept in the channel's history now{suffix}"),
        |c| c.history,
    );
}

/// The channels listed by name, in order, and the ones summed.
struct Split<'a> {
    listed: Vec<&'a ChannelStats>,
    rest: Vec<&'a ChannelStats>,
}

impl Split<'_> {
    /// One gauge family: a sample per listed channel, then the sum of the
    /// rest (when there is a rest).
    fn family(&self, w: &mut Writer, name: &str, help: &str, value: fn(&ChannelStats) -> u64) {
        w.family(name, "gauge", help);
        for c in &self.listed {
            w.sample(name, &[("channel", &c.name)], value(c));
        }
        if !self.rest.is_empty() {
            let sum = self.rest.iter().map(|c| value(c)).sum();
            w.sample(name, &[("channel", OTHER_CHANNELS)], sum);
        }
    }
}

/// The backplane's health: `up`, a gauge per state (1 for the current one),
/// what waits for Redis, and its counters.
fn render_backplane(w: &mut Writer, b: &BackplaneStats) {
    w.gauge(
        "hyper_sse_backplane_up",
        "1 when the Redis backplane is connected (publishing and reading work), else 0.",
        u64::from(b.state == State::Connected),
    );
    w.family(
        "hyper_sse_backplane_state",
        "gauge",
        "The Redis backplane's state: 1 for the current one, 0 for the others.",
    );
    for state in STATES {
        w.sample(
            "hyper_sse_backplane_state",
            &[("state", state.as_str())],
            u64::from(b.state == state),
        );
    }
    w.gauge(
        "hyper_sse_backplane_pending",
        "Sends accepted and not yet stored in Redis.",
        b.pending,
    );
    w.counter(
        "hyper_sse_backplane_published_total",
        "Events this instance stored in Redis.",
        b.published,
    );
    w.counter(
        "hyper_sse_backplane_received_total",
        "Events read from Redis for this instance's clients (sent by any instance).",
        b.received,
    );
    w.counter(
        "hyper_sse_backplane_reconnects_total",
        "Connections to Redis re-established after a failure.",
        b.reconnects,
    );
    w.counter(
        "hyper_sse_backplane_failed_total",
        "Sends Redis refused for good, or still waiting when the server closed.",
        b.failed,
    );
    w.counter(
        "hyper_sse_backplane_lost_total",
        "Times events were trimmed from a Redis stream before this instance read them.",
        b.lost,
    );
}

/// A label value as the format wants it: backslash, double quote and
/// newline escaped (channel names are user input; the engine refuses
/// control characters in them, but the text must be valid whatever it is given).
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `# HELP` text as the format wants it: backslash and newline escaped.
fn escape_help(text: &str) -> Cow<'_, str> {
    if !text.contains(['\\', '\n']) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace('\\', "\\\\").replace('\n', "\\n"))
}

/// Accumulates the text. Writing to a `String` cannot fail, so the
/// results of `write!` are dropped.
#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Evictions;

    fn channel(name: &str, subscribers: u64, history: u64) -> ChannelStats {
        ChannelStats {
            name: name.to_owned(),
            subscribers,
            history,
        }
    }

    fn stats() -> StatsSnapshot {
        StatsSnapshot {
            connections: 3,
            total_connections: 7,
            events_sent: 11,
            comments_sent: 2,
            deliveries: 30,
            bytes_sent: 4096,
            evicted: 6,
            // budget, stall, gap (the order of `Eviction::ALL`)
            evictions: Evictions([1, 2, 3]),
            denied: 5,
        }
    }

    /// The sample lines of one family, without its `# HELP`/`# TYPE` lines.
    fn samples(text: &str, family: &str) -> String {
        text.lines()
            .filter(|l| {
                l.strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn renders_every_counter_with_help_and_type() {
        let text = render(&stats(), &[channel("default", 3, 10)], None, 100);
        let suffix = "; the 100 channels with the most subscribers by name, the rest summed as channel=\"_other\".";
        let expected = format!(
            "\
# HELP hyper_sse_connections Event streams open now.
# TYPE hyper_sse_connections gauge
hyper_sse_connections 3
# HELP hyper_sse_streams_opened_total Event streams opened since the server started.
# TYPE hyper_sse_streams_opened_total counter
hyper_sse_streams_opened_total 7
# HELP hyper_sse_events_sent_total Events accepted by send() and sendTo(), each counted once however many clients get it.
# TYPE hyper_sse_events_sent_total counter
hyper_sse_events_sent_total 11
# HELP hyper_sse_comments_sent_total Comments accepted by comment().
# TYPE hyper_sse_comments_sent_total counter
hyper_sse_comments_sent_total 2
# HELP hyper_sse_deliveries_total Events and comments handed to client connections, one per client.
# TYPE hyper_sse_deliveries_total counter
hyper_sse_deliveries_total 30
# HELP hyper_sse_sent_bytes_total Event-stream bytes handed to client connections, summed over clients (not HTTP framing).
# TYPE hyper_sse_sent_bytes_total counter
hyper_sse_sent_bytes_total 4096
# HELP hyper_sse_evictions_total Streams dropped as too slow, by reason: budget (maxBufferedBytes), stall (stallTimeout), gap (the Redis backplane trimmed events before this instance read them).
# TYPE hyper_sse_evictions_total counter
hyper_sse_evictions_total{{reason=\"budget\"}} 1
hyper_sse_evictions_total{{reason=\"stall\"}} 2
hyper_sse_evictions_total{{reason=\"gap\"}} 3
# HELP hyper_sse_denials_total Stream requests refused by onConnect, CORS or a connection limit.
# TYPE hyper_sse_denials_total counter
hyper_sse_denials_total 5
# HELP hyper_sse_channels Channels that exist now (with subscribers or history), whether listed by name or not.
# TYPE hyper_sse_channels gauge
hyper_sse_channels 1
# HELP hyper_sse_channel_subscribers Streams reading the channel now{suffix}
# TYPE hyper_sse_channel_subscribers gauge
hyper_sse_channel_subscribers{{channel=\"default\"}} 3
# HELP hyper_sse_channel_history_events Events kept in the channel's history now{suffix}
# TYPE hyper_sse_channel_history_events gauge
hyper_sse_channel_history_events{{channel=\"default\"}} 10
"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label_value("plain é"), "plain é");
        assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label_value("x\ny"), r"x\ny");
        let text = render(
            &stats(),
            &[channel(r#"say "hi"\now"#, 2, 0), channel("l1\nl2", 1, 0)],
            None,
            10,
        );
        assert_eq!(
            samples(&text, "hyper_sse_channel_subscribers"),
            "hyper_sse_channel_subscribers{channel=\"say \\\"hi\\\"\\\\now\"} 2\n\
             hyper_sse_channel_subscribers{channel=\"l1\\nl2\"} 1\n"
        );
    }

    #[test]
    fn help_text_escapes_backslash_and_newline() {
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
        assert_eq!(escape_help("say \"so\""), "say \"so\"");
    }

    #[test]
    fn only_the_busiest_channels_are_listed_and_the_rest_is_summed() {
        let channels = [
            channel("a", 1, 10),
            channel("b", 5, 20),
            channel("c", 5, 30),
            channel("d", 0, 40),
            channel("e", 2, 50),
        ];
        let text = render(&stats(), &channels, None, 2);
        assert_eq!(
            samples(&text, "hyper_sse_channels"),
            "hyper_sse_channels 5\n"
        );
        // Ties (b, c) go by name; a, d and e are summed.
        assert_eq!(
            samples(&text, "hyper_sse_channel_subscribers"),
            "hyper_sse_channel_subscribers{channel=\"b\"} 5\n\
             hyper_sse_channel_subscribers{channel=\"c\"} 5\n\
             hyper_sse_channel_subscribers{channel=\"_other\"} 3\n"
        );
        assert_eq!(
            samples(&text, "hyper_sse_channel_history_events"),
            "hyper_sse_channel_history_events{channel=\"b\"} 20\n\
             hyper_sse_channel_history_events{channel=\"c\"} 30\n\
             hyper_sse_channel_history_events{channel=\"_other\"} 100\n"
        );
        assert!(text.contains("# HELP hyper_sse_channel_subscribers Streams reading the channel now; the 2 channels with the most subscribers"));
    }

    #[test]
    fn no_other_series_when_every_channel_is_listed() {
        let text = render(&stats(), &[channel("a", 1, 0), channel("b", 2, 0)], None, 2);
        assert_eq!(
            samples(&text, "hyper_sse_channel_subscribers"),
            "hyper_sse_channel_subscribers{channel=\"b\"} 2\n\
             hyper_sse_channel_subscribers{channel=\"a\"} 1\n"
        );
    }

    #[test]
    fn a_cap_of_zero_sums_every_channel() {
        let text = render(&stats(), &[channel("a", 1, 4), channel("b", 2, 5)], None, 0);
        assert_eq!(
            samples(&text, "hyper_sse_channel_subscribers"),
            "hyper_sse_channel_subscribers{channel=\"_other\"} 3\n"
        );
        assert_eq!(
            samples(&text, "hyper_sse_channel_history_events"),
            "hyper_sse_channel_history_events{channel=\"_other\"} 9\n"
        );
    }

    #[test]
    fn a_real_channel_named_other_is_summed_never_listed_twice() {
        let text = render(
            &stats(),
            &[channel("_other", 9, 1), channel("a", 1, 2)],
            None,
            5,
        );
        assert_eq!(
            samples(&text, "hyper_sse_channel_subscribers"),
            "hyper_sse_channel_subscribers{channel=\"a\"} 1\n\
             hyper_sse_channel_subscribers{channel=\"_other\"} 9\n"
        );
    }

    #[test]
    fn no_channels_renders_the_count_and_empty_families() {
        let text = render(&stats(), &[], None, 100);
        assert_eq!(
            samples(&text, "hyper_sse_channels"),
            "hyper_sse_channels 0\n"
        );
        assert_eq!(samples(&text, "hyper_sse_channel_subscribers"), "");
        assert!(text.contains("# TYPE hyper_sse_channel_subscribers gauge\n"));
    }

    #[test]
    fn the_backplane_section_appears_only_with_a_backplane() {
        let without = render(&stats(), &[], None, 100);
        assert!(!without.contains("hyper_sse_backplane"));
        let b = BackplaneStats {
            state: State::Reconnecting,
            pending: 4,
            published: 100,
            received: 90,
            reconnects: 2,
            failed: 1,
            lost: 0,
            last_error: Some("connection refused".to_owned()),
        };
        let text = render(&stats(), &[], Some(&b), 100);
        let start = text.find("# HELP hyper_sse_backplane_up").unwrap();
        assert_eq!(
            &text[start..],
            "\
# HELP hyper_sse_backplane_up 1 when the Redis backplane is connected (publishing and reading work), else 0.
# TYPE hyper_sse_backplane_up gauge
hyper_sse_backplane_up 0
# HELP hyper_sse_backplane_state The Redis backplane's state: 1 for the current one, 0 for the others.
# TYPE hyper_sse_backplane_state gauge
hyper_sse_backplane_state{state=\"idle\"} 0
hyper_sse_backplane_state{state=\"connected\"} 0
hyper_sse_backplane_state{state=\"reconnecting\"} 1
hyper_sse_backplane_state{state=\"closed\"} 0
# HELP hyper_sse_backplane_pending Sends accepted and not yet stored in Redis.
# TYPE hyper_sse_backplane_pending gauge
hyper_sse_backplane_pending 4
# HELP hyper_sse_backplane_published_total Events this instance stored in Redis.
# TYPE hyper_sse_backplane_published_total counter
hyper_sse_backplane_published_total 100
# HELP hyper_sse_backplane_received_total Events read from Redis for this instance's clients (sent by any instance).
# TYPE hyper_sse_backplane_received_total counter
hyper_sse_backplane_received_total 90
# HELP hyper_sse_backplane_reconnects_total Connections to Redis re-established after a failure.
# TYPE hyper_sse_backplane_reconnects_total counter
hyper_sse_backplane_reconnects_total 2
# HELP hyper_sse_backplane_failed_total Sends Redis refused for good, or still waiting when the server closed.
# TYPE hyper_sse_backplane_failed_total counter
hyper_sse_backplane_failed_total 1
# HELP hyper_sse_backplane_lost_total Times events were trimmed from a Redis stream before this instance read them.
# TYPE hyper_sse_backplane_lost_total counter
hyper_sse_backplane_lost_total 0
"
        );
        let connected = BackplaneStats {
            state: State::Connected,
            ..b
        };
        let text = render(&stats(), &[], Some(&connected), 100);
        assert!(text.contains("\nhyper_sse_backplane_up 1\n"));
        assert!(text.contains("\nhyper_sse_backplane_state{state=\"connected\"} 1\n"));
    }
}
