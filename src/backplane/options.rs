//! The `redis` option: where Redis is, what the keys are called, how many
//! sends may wait; checked at `createServer`, before anything connects.

/// The most sends waiting for Redis by default; past it `send()` throws.
pub const DEFAULT_MAX_PENDING: usize = 100_000;

/// How to reach Redis and what to call things there.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host[:port][/db]` or `unix:///path`.
    pub url: String,
    /// Prefix of every key (default `sse`), so several applications can share one Redis.
    pub prefix: String,
    /// Sends allowed to wait while Redis is unreachable.
    pub max_pending: usize,
}

/// Why a Redis URL was refused at `createServer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError(pub String);

impl RedisOptions {
    /// Checks the URL without connecting.
    pub fn validate(&self) -> Result<(), UrlError> {
        if self.url.starts_with("rediss://") {
            return Err(UrlError(
                "rediss:// (TLS to Redis) is not supported; use redis:// on a private network"
                    .into(),
            ));
        }
        redis::Client::open(self.url.as_str())
            .map(|_| ())
            .map_err(|e| UrlError(format!("is not a Redis URL ({e})")))
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub(super) fn redact(url: &str) -> String {
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
    use super::redact;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }
}
