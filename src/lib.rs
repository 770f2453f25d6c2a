//! hyper-sse: a Server-Sent Events engine in Rust (hyper + tokio) for Node.js.
//!
//! Everything but [`binding`] is plain Rust, driven by `cargo test` over
//! real TCP. One line per module, in the order a request meets them:
//!
//! - [`server`]: the lifecycle and API: created idle, `listen`, `send`, `close`.
//! - [`config`]: every setting, its default and its limits.
//! - [`shared`]: what the accept loop, routing, connections and the API share.
//! - [`bind`]: the listening socket, and why binding it failed.
//! - [`accept`]: the accept pipeline: first request head, then direct or hyper.
//! - [`http1`]: the first request head, read by hand; small answers written by hand.
//! - [`routes`]: where a request goes: CORS, streams (admit, place, start), routes, files.
//! - [`direct`]: the hyper-less transport: a stream written straight to its socket.
//! - [`connection`]: a connection served by hyper, supervised (close, eviction).
//! - [`io`]: the socket as hyper sees it, reporting [`io::Progress`].
//! - [`handoff`]: streams for requests another server accepted (native or bridged).
//! - [`stream`]: one client's event stream: preamble, batches, heartbeats, end.
//! - [`body`]: every kind of response body, and the plain-text answer.
//! - [`chunks`]: the zero-copy buffer one write is made of.
//! - [`bus`]: where sends go and clients join: the hub alone, or through Redis.
//! - [`hub`]: channels' logs, clients as cursors, fan-out, replay, budgets.
//! - [`backplane`]: several instances as one through Redis.
//! - [`event`]: the wire format: events, comments, ids, encoded once.
//! - [`channel`]: channel names and lists.
//! - [`hooks`]: the application's hooks as the engine calls them.
//! - [`cors`]: the cross-origin policy.
//! - [`limits`]: connection limits, total and per address.
//! - [`tls`]: certificates, ALPN, hot reload.
//! - [`static_files`]: files for every other GET/HEAD.
//! - [`stats`]: the counters; [`metrics`]: them as Prometheus text.
//! - [`clock`]: the wall clock; [`sync`]: locks that survive a panic.
//! - [`binding`]: the only module that knows about N-API and JavaScript.

pub mod accept;
pub mod backplane;
pub mod bind;
pub mod binding;
pub mod body;
pub mod bus;
pub mod channel;
pub mod chunks;
pub mod clock;
pub mod config;
pub mod connection;
pub mod cors;
pub mod direct;
pub mod event;
pub mod handoff;
pub mod hooks;
pub mod http1;
pub mod hub;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod shared;
pub mod static_files;
pub mod stats;
pub mod stream;
pub mod sync;
pub mod tls;
