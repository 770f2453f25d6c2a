//! What the backplane stores in Redis, and how: key names, the publishing
//! script, and the fields of one stream entry.
//!
//! Every event gets one number from a global counter (`<prefix>:seq`) and is
//! appended, under the stream entry id `<epoch>-<number>`, to the stream of
//! each of its channels (`<prefix>:ch:<channel>`). That id is the SSE `id`:
//! the same on every instance, ordered across channels, so a client
//! subscribed to several channels resumes from one id. The epoch (the
//! millisecond time the data set was first used, `<prefix>:epoch`) changes
//! only when Redis loses its data, which makes ids from before a loss
//! recognisably foreign instead of misread.

use crate::event::Encoded;
use bytes::Bytes;
use redis::Value;

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The global event counter.
    pub(crate) fn seq(&self) -> String {
        format!("{}:seq", self.prefix)
    }

    /// The data set's epoch.
    pub(crate) fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    /// Per channel, the number of its newest event (each entry records the
    /// one before it, which is how a trimmed gap is detected).
    pub(crate) fn heads(&self) -> String {
        format!("{}:heads", self.prefix)
    }

    /// The last publish sequence one instance had applied, so a batch resent
    /// after a lost reply is not applied twice.
    pub(crate) fn publisher(&self, instance: &str) -> String {
        format!("{}:pub:{}", self.prefix, instance)
    }

    /// The stream of one channel.
    pub(crate) fn stream(&self, channel: &str) -> String {
        format!("{}:ch:{}", self.prefix, channel)
    }
}

/// Publishes one event atomically: numbers it, appends it to every channel's
/// stream (trimmed to about the history length), and applies each
/// instance's sends exactly once and in order.
///
/// Each instance numbers its sends 1, 2, 3… and the script keeps the last
/// one applied (`publisher` key). A send at or below it was applied already
/// (its reply was lost with a connection): `{epoch, 0}`. A send beyond the
/// next one is refused with `GAP`, so that when one send of a pipeline fails
/// (the script not loaded yet after a Redis restart, say) none after it is
/// applied, and resending from the failed one is exact. A missing key (first
/// send, expired after a day idle, or Redis lost its data) is refused with
/// `NOPUB`; the publisher then sets it to just before its oldest pending send.
///
/// KEYS: seq, epoch, heads, publisher, stream…; ARGV: now in ms, max length,
/// publish sequence, kind, body, explicit id, channel… (one per stream).
/// Returns `{epoch, number}`.
pub(crate) const PUBLISH_SCRIPT: &str = r#"
local done = redis.call('GET', KEYS[4])
if not done then
  return redis.error_reply('NOPUB publisher state missing')
end
done = tonumber(done)
local n = tonumber(ARGV[3])
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
if n <= done then
  return {epoch, 0}
end
if n > done + 1 then
  return redis.error_reply('GAP send ' .. ARGV[3] .. ' before ' .. (done + 1))
end
for i = 5, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= 'stream' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t .. ', not a stream')
  end
end
redis.call('SET', KEYS[4], ARGV[3], 'EX', 86400)
local g = redis.call('INCR', KEYS[1])
local id = epoch .. '-' .. g
for i = 5, #KEYS do
  local channel = ARGV[i + 2]
  local prev = redis.call('HGET', KEYS[3], channel) or '0'
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], id,
    'k', ARGV[4], 'b', ARGV[5], 'p', prev, 'i', ARGV[6])
  redis.call('HSET', KEYS[3], channel, g)
end
return {epoch, g}
"#;

/// What kind of thing an entry holds, which decides its wire bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An event without an id of its own: it gets the entry id.
    Event,
    /// An event with an explicit id, already in its bytes.
    Explicit,
    /// A comment: never an id.
    Comment,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "e",
            Kind::Explicit => "x",
            Kind::Comment => "c",
        }
    }

    fn parse(s: &[u8]) -> Option<Self> {
        match s {
            b"e" => Some(Kind::Event),
            b"x" => Some(Kind::Explicit),
            b"c" => Some(Kind::Comment),
            _ => None,
        }
    }
}

/// One stream entry as read back.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The global number (the part of the id after the epoch).
    pub(crate) number: u64,
    pub(crate) kind: Kind,
    /// The encoded event without an automatic id line.
    pub(crate) body: Bytes,
    /// The number of the previous entry in the same stream (0: none).
    pub(crate) prev: u64,
    /// The explicit id, for `Last-Event-ID` lookups.
    pub(crate) explicit: Option<String>,
}

impl Entry {
    /// The bytes clients get. An event without an explicit id gets
    /// `id: <epoch>-<number>` in front (field order does not matter to an
    /// SSE parser), unless ids are off (`history: 0`).
    pub(crate) fn wire_bytes(&self, epoch: &str, with_ids: bool) -> Encoded {
        if self.kind != Kind::Event || !with_ids {
            return Encoded::copy_from(&self.body);
        }
        let id = format!("id: {epoch}-{}\n", self.number);
        Encoded::concat(&[id.as_bytes(), &self.body])
    }
}

/// Splits an entry id (or SSE id) `<epoch>-<number>`.
pub(crate) fn parse_id(id: &str) -> Option<(&str, u64)> {
    let (epoch, n) = id.split_once('-')?;
    if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((epoch, n.parse().ok()?))
}

/// Reads `[id, [field, value, …]]` as returned by XRANGE and XREAD.
pub(crate) fn parse_entry(value: &Value) -> Option<(String, Entry)> {
    let Value::Array(parts) = value else {
        return None;
    };
    let [id, Value::Array(fields)] = parts.as_slice() else {
        return None;
    };
    let id = text(id)?;
    let (_, number) = parse_id(&id)?;
    let mut kind = None;
    let mut body = Bytes::new();
    let mut prev = 0;
    let mut explicit = None;
    for pair in fields.chunks(2) {
        let [name, value] = pair else { break };
        let (Value::BulkString(name), Value::BulkString(value)) = (name, value) else {
            continue;
        };
        match name.as_slice() {
            b"k" => kind = Kind::parse(value),
            b"b" => body = Bytes::copy_from_slice(value),
            b"p" => prev = std::str::from_utf8(value).ok()?.parse().ok()?,
            b"i" if !value.is_empty() => explicit = String::from_utf8(value.clone()).ok(),
            _ => {}
        }
    }
    Some((
        id,
        Entry {
            number,
            kind: kind?,
            body,
            prev,
            explicit,
        },
    ))
}

/// A bulk or simple string as text.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A number from a bulk string or an integer reply.
pub(crate) fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Nil => Some(0),
        other => text(other)?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn ids_split_into_epoch_and_number() {
        assert_eq!(parse_id("1764140000000-42"), Some(("1764140000000", 42)));
        assert_eq!(parse_id("abc-42"), None);
        assert_eq!(parse_id("17-x"), None);
        assert_eq!(parse_id("42"), None);
    }

    #[test]
    fn entries_read_back_and_get_their_id_line() {
        let raw = Value::Array(vec![
            bulk("1700-7"),
            Value::Array(vec![
                bulk("k"),
                bulk("e"),
                bulk("b"),
                bulk("data: hi\n\n"),
                bulk("p"),
                bulk("3"),
                bulk("i"),
                bulk(""),
            ]),
        ]);
        let (id, entry) = parse_entry(&raw).unwrap();
        assert_eq!(id, "1700-7");
        assert_eq!((entry.number, entry.prev), (7, 3));
        assert_eq!(entry.explicit, None);
        assert_eq!(
            &entry.wire_bytes("1700", true)[..],
            b"id: 1700-7\ndata: hi\n\n"
        );
        assert_eq!(&entry.wire_bytes("1700", false)[..], b"data: hi\n\n");
        let comment = Entry {
            kind: Kind::Comment,
            ..entry
        };
        assert_eq!(&comment.wire_bytes("1700", true)[..], b"data: hi\n\n");
    }

    #[test]
    fn every_key_lives_under_the_prefix() {
        let keys = Keys::new("app");
        let names = [
            keys.seq(),
            keys.epoch(),
            keys.heads(),
            keys.publisher("i1"),
            keys.stream("news"),
        ];
        assert_eq!(
            names,
            [
                "app:seq",
                "app:epoch",
                "app:heads",
                "app:pub:i1",
                "app:ch:news"
            ]
        );
    }

    #[test]
    fn numbers_and_texts_come_from_every_reply_shape() {
        assert_eq!(number(&Value::Int(5)), Some(5));
        assert_eq!(number(&Value::Int(-1)), None);
        assert_eq!(number(&Value::Nil), Some(0));
        assert_eq!(number(&bulk("12")), Some(12));
        assert_eq!(number(&bulk("x")), None);
        assert_eq!(text(&Value::SimpleString("ok".into())), Some("ok".into()));
        assert_eq!(text(&Value::Int(3)), Some("3".into()));
        assert_eq!(text(&Value::Nil), None);
    }

    #[test]
    fn an_entry_with_an_unknown_kind_or_a_foreign_id_is_not_read() {
        let raw = |id: &str, kind: &str| {
            Value::Array(vec![
                bulk(id),
                Value::Array(vec![bulk("k"), bulk(kind), bulk("p"), bulk("0")]),
            ])
        };
        assert!(parse_entry(&raw("1700-1", "e")).is_some());
        assert!(parse_entry(&raw("1700-1", "?")).is_none());
        assert!(parse_entry(&raw("id-1", "e")).is_none());
        assert!(parse_entry(&Value::Nil).is_none());
        let explicit = Value::Array(vec![
            bulk("1700-2"),
            Value::Array(["k", "x", "i", "mine"].map(bulk).to_vec()),
        ]);
        let (_, entry) = parse_entry(&explicit).unwrap();
        assert_eq!(
            (entry.kind, entry.explicit.as_deref()),
            (Kind::Explicit, Some("mine"))
        );
    }

    /// Runs the publishing script as instance `i1` for its send `seq` to
    /// `channels`; the reply as `(epoch, number)`, or the error's code.
    async fn publish(
        conn: &mut redis::aio::MultiplexedConnection,
        keys: &Keys,
        seq: u64,
        channels: &[&str],
    ) -> Result<(String, u64), String> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(PUBLISH_SCRIPT).arg(4 + channels.len());
        cmd.arg(keys.seq())
            .arg(keys.epoch())
            .arg(keys.heads())
            .arg(keys.publisher("i1"));
        cmd.arg(channels.iter().map(|c| keys.stream(c)).collect::<Vec<_>>());
        cmd.arg("1700")
            .arg(100)
            .arg(seq)
            .arg("e")
            .arg("data: x\n\n")
            .arg("");
        cmd.arg(channels);
        match cmd.query_async::<Vec<Value>>(conn).await {
            Ok(reply) => Ok((text(&reply[0]).unwrap(), number(&reply[1]).unwrap())),
            Err(e) => Err(e.code().unwrap_or("?").to_owned()),
        }
    }

    /// Per entry of a channel's stream: its id and the number before it.
    async fn stream(
        conn: &mut redis::aio::MultiplexedConnection,
        keys: &Keys,
        channel: &str,
    ) -> Vec<(String, u64)> {
        let page: Vec<Value> = redis::cmd("XRANGE")
            .arg(keys.stream(channel))
            .arg("-")
            .arg("+")
            .query_async(conn)
            .await
            .unwrap();
        page.iter()
            .map(|v| parse_entry(v).map(|(id, e)| (id, e.prev)).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn the_script_applies_each_send_once_and_in_order() {
        let redis = super::super::tests::own_redis().await;
        let client = redis::Client::open(redis.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys = Keys::new("t");
        // No state for the instance yet: it must say where it stands.
        assert_eq!(
            publish(&mut conn, &keys, 1, &["a"]).await,
            Err("NOPUB".into())
        );
        let _: () = redis::cmd("SET")
            .arg(keys.publisher("i1"))
            .arg(0)
            .query_async(&mut conn)
            .await
            .unwrap();
        let first = publish(&mut conn, &keys, 1, &["a", "b"]).await;
        assert_eq!(first, Ok(("1700".into(), 1)));
        // A resend of what was applied is answered, not applied again.
        assert_eq!(
            publish(&mut conn, &keys, 1, &["a"]).await,
            Ok(("1700".into(), 0))
        );
        // A send may not overtake one not yet applied.
        assert_eq!(
            publish(&mut conn, &keys, 3, &["a"]).await,
            Err("GAP".into())
        );
        assert_eq!(
            publish(&mut conn, &keys, 2, &["a"]).await,
            Ok(("1700".into(), 2))
        );
        let a = stream(&mut conn, &keys, "a").await;
        assert_eq!(a, [("1700-1".into(), 0), ("1700-2".into(), 1)]);
        assert_eq!(stream(&mut conn, &keys, "b").await, [("1700-1".into(), 0)]);
        let epoch: String = redis::cmd("GET")
            .arg(keys.epoch())
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(epoch, "1700");
    }
}
