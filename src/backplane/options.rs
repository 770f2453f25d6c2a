//! The `redis` option: where Redis is, what the keys are called, how many
//! sends may wait; checked at `createServer`, before anything connects.
//!
//! Parse, don't validate: a [`RedisOptions`] holds a [`RedisUrl`], and the
//! only way to get one is to parse it ([`RedisUrl::parse`]), which builds
//! the Redis client there and then. So whoever builds the options (the
//! binding from JavaScript values, a Rust caller by hand) meets a bad URL as
//! a [`UrlError`] at that moment, and a backplane made from the options
//! cannot fail to make its client.

use std::str::FromStr;

/// The most sends waiting for Redis by default; past it `send()` throws.
pub const DEFAULT_MAX_PENDING: usize = 100_000;

/// How to reach Redis and what to call things there.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host[:port][/db]` or `unix:///path`, parsed.
    pub url: RedisUrl,
    /// Prefix of every key (default `sse`), so several applications can share one Redis.
    pub prefix: String,
    /// Sends allowed to wait while Redis is unreachable.
    pub max_pending: usize,
}

/// A Redis URL the Redis client accepted: connecting to it may still fail,
/// building a client for it no longer can. Its `Debug` and `Display` show
/// the URL without its password.
#[derive(Clone)]
pub struct RedisUrl {
    client: redis::Client,
    /// The URL as given, password replaced by `***`.
    shown: String,
}

impl RedisUrl {
    /// Parses `url` without connecting. `rediss://` is refused: this
    /// build has no TLS to Redis.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        if url.starts_with("rediss://") {
            return Err(UrlError::Tls);
        }
        let client = redis::Client::open(url).map_err(UrlError::NotRedis)?;
        Ok(RedisUrl {
            client,
            shown: redact(url),
        })
    }

    /// The URL for messages: as given, without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A client for this URL (cheap: a client holds only what to connect to).
    pub(crate) fn client(&self) -> redis::Client {
        self.client.clone()
    }
}

impl FromStr for RedisUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        RedisUrl::parse(url)
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.shown).finish()
    }
}

impl std::fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Why a Redis URL was refused. Its `Display` reads after the URL
/// (`'redis:/x' is not a Redis URL (…)`), as `createServer` reports it.
#[derive(Debug, Clone)]
pub enum UrlError {
    /// `rediss://`: TLS to Redis is not supported.
    Tls,
    /// Not a URL the Redis client understands; its error is the source.
    NotRedis(redis::RedisError),
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::Tls => f.write_str(
                "rediss:// (TLS to Redis) is not supported; use redis:// on a private network",
            ),
            UrlError::NotRedis(e) => write!(f, "is not a Redis URL ({e})"),
        }
    }
}

impl std::error::Error for UrlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UrlError::Tls => None,
            UrlError::NotRedis(e) => Some(e),
        }
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let auth = &url[scheme + 3..at];
            match auth.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn a_parsed_url_shows_no_password_even_in_debug() {
        let url: RedisUrl = "redis://u:secret@127.0.0.1:6379/0".parse().unwrap();
        assert_eq!(url.shown(), "redis://u:***@127.0.0.1:6379/0");
        assert_eq!(url.to_string(), url.shown());
        assert!(!format!("{url:?}").contains("secret"));
    }

    #[test]
    fn a_url_that_is_not_redis_is_refused_with_the_clients_error_as_source() {
        let error = RedisUrl::parse("http://127.0.0.1:6379").unwrap_err();
        assert!(matches!(error, UrlError::NotRedis(_)));
        assert!(error.to_string().starts_with("is not a Redis URL ("));
        let source = error.source().expect("a source");
        assert!(source.is::<redis::RedisError>());
    }

    #[test]
    fn tls_to_redis_is_refused() {
        let error = RedisUrl::parse("rediss://h").unwrap_err();
        assert!(matches!(error, UrlError::Tls));
        assert!(error.source().is_none());
    }
}
