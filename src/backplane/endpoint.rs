//! Where Redis is, and opening a connection to it.
//!
//! The backplane's tasks (publisher, reader, replays) ask for a
//! [`Connection`] and send commands on it; whether it reaches one node
//! named by a URL, a master found through Sentinel or a Cluster is decided
//! here, once, when the connection is made. Every command the tasks send
//! goes through [`redis::aio::ConnectionLike`], which each kind of
//! connection implements.

use super::options::{RedisUrl, UrlError};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, RedisResult, Value};
use std::str::FromStr;
use std::time::Duration;

/// How long opening a connection may take before it counts as failed.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the backplane finds Redis.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// One Redis node (`redis://`, `rediss://` or `unix://`).
    Node(RedisUrl),
}

impl Endpoint {
    /// Opens a connection; `response_timeout` None for the reader, whose
    /// `XREAD` blocks on purpose.
    pub(crate) async fn connect(
        &self,
        response_timeout: Option<Duration>,
    ) -> RedisResult<Connection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(response_timeout);
        match self {
            Endpoint::Node(url) => url
                .client()
                .get_multiplexed_async_connection_with_config(&url.configure(config))
                .await
                .map(Connection::Node),
        }
    }

    /// Where Redis is, for messages (no passwords).
    pub fn shown(&self) -> String {
        match self {
            Endpoint::Node(url) => url.shown().to_owned(),
        }
    }
}

impl From<RedisUrl> for Endpoint {
    fn from(url: RedisUrl) -> Self {
        Endpoint::Node(url)
    }
}

/// `"redis://…".parse()`: one node.
impl FromStr for Endpoint {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        RedisUrl::parse(url).map(Endpoint::Node)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// An open connection to Redis, of whichever kind the [`Endpoint`] makes.
/// Cheap to clone: clones share one multiplexed connection.
#[derive(Clone)]
pub(crate) enum Connection {
    /// To one node.
    Node(MultiplexedConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(conn) => conn.get_db(),
        }
    }
}
