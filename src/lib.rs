//! hyper-sse: a Server-Sent Events engine in Rust (hyper + tokio) for Node.js.
//!
//! The engine modules are plain Rust, driven by `cargo test` over real TCP:
//! [`event`] (the wire format), [`hub`] (the event log, subscribers and
//! fan-out), [`stream`] (one client's response body), [`connection`] (slow-client
//! eviction), [`server`] (accept loop,
//! routing, shutdown), [`handoff`] (streams for requests other servers accepted), [`static_files`], [`stats`] and [`body`].
//! [`backplane`] makes several servers act as one through Redis.
//! [`metrics`] renders the counters as Prometheus text (exposition format 0.0.4).
//! [`binding`] is the only module that knows about N-API and JavaScript.

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
