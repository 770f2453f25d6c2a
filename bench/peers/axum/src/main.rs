//! Benchmark peer: the "naive one-task-per-client" Rust ceiling.
//!
//! Every `/events` response is `axum::response::sse::Sse` over a
//! `tokio_stream::wrappers::BroadcastStream` of one shared
//! `tokio::sync::broadcast` channel, each item mapped to an axum `Event`
//! (so every client frames every event itself). hyper drives each client's
//! body on tokio's worker threads.
//!
//! Control protocol: see ../README.md. Environment:
//!   PORT               port to listen on (0 = any free port; printed)
//!   HOST               address, default 127.0.0.1
//!   BROADCAST_CAPACITY ring size of the broadcast channel, default 131072
//!                      events. A client more than that many events behind
//!                      loses the oldest ones (counted in /stats `lagged`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

struct Shared {
    tx: broadcast::Sender<Arc<str>>,
    connections: AtomicUsize,
    /// Events that some client missed because it fell more than the
    /// channel's capacity behind (should stay 0 in a valid run).
    lagged: AtomicU64,
}

type AppState = Arc<Shared>;

/// Decrements the connection count when the response body is dropped
/// (client gone, or server shutting the connection).
struct ConnGuard(AppState);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// `${ts} ${pad}`: exactly `size` bytes unless `ts ` alone is longer.
fn make_data(size: usize) -> String {
    let ts = now_micros().to_string();
    let mut s = String::with_capacity(size.max(ts.len() + 1));
    s.push_str(&ts);
    s.push(' ');
    if size > s.len() {
        let pad = size - s.len();
        s.extend(std::iter::repeat_n('x', pad));
    }
    s
}

async fn events(State(st): State<AppState>) -> impl IntoResponse {
    let rx = st.tx.subscribe();
    st.connections.fetch_add(1, Ordering::Relaxed);
    let guard = ConnGuard(st.clone());
    let stream = BroadcastStream::new(rx).filter_map(move |item| {
        // The guard lives as long as the stream (moved into this closure).
        let _keep = &guard;
        let out = match item {
            Ok(data) => Some(Ok::<Event, Infallible>(Event::default().data(&*data))),
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                _keep.0.lagged.fetch_add(n, Ordering::Relaxed);
                None
            }
        };
        futures_util::future::ready(out)
    });
    sse(stream)
}

fn sse<S>(stream: S) -> Sse<S>
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    // No keep-alive: axum's Sse sends no heartbeat unless asked to.
    Sse::new(stream)
}

/// A non-negative integer query parameter, or a 400 naming it.
fn param(q: &HashMap<String, String>, name: &str) -> Result<u64, BadParam> {
    q.get(name)
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or(BadParam(name.to_owned()))
}

struct BadParam(String);

impl IntoResponse for BadParam {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            format!("missing or invalid {}\n", self.0),
        )
            .into_response()
    }
}

async fn burst(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, BadParam> {
    let count = param(&q, "count")?;
    let size = param(&q, "size")? as usize;
    let start = Instant::now();
    for _ in 0..count {
        let data: Arc<str> = make_data(size).into();
        // Err only when there are no receivers: nothing to deliver.
        let _ = st.tx.send(data);
    }
    let loop_ms = start.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(json!({ "count": count, "loopMs": loop_ms, "eld": null })).into_response())
}

async fn rate(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, BadParam> {
    let rate = param(&q, "rate")?;
    let seconds = param(&q, "seconds")?;
    let size = param(&q, "size")? as usize;
    if rate == 0 {
        return Err(BadParam("rate".into()));
    }
    let total = rate * seconds;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
        for _ in 0..total {
            tick.tick().await;
            let _ = st.tx.send(make_data(size).into());
        }
    });
    Ok(Json(json!({ "ok": true })).into_response())
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
                    .map(|kb| kb * 1024)
            })
        })
        .unwrap_or(0)
}

async fn stats(State(st): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "rss": rss_bytes(),
        "connections": st.connections.load(Ordering::Relaxed),
        "lagged": st.lagged.load(Ordering::Relaxed),
    }))
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found\n")
}

#[tokio::main]
async fn main() {
    let port: u16 = match std::env::var("PORT").unwrap_or_else(|_| "0".into()).parse() {
        Ok(p) => p,
        Err(_) => {
            eprintln!("invalid PORT");
            std::process::exit(2);
        }
    };
    let host = std::env::var("HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into());
    let capacity: usize = std::env::var("BROADCAST_CAPACITY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&c| c > 0)
        .unwrap_or(1 << 17);

    let (tx, _) = broadcast::channel::<Arc<str>>(capacity);
    let st: AppState = Arc::new(Shared {
        tx,
        connections: AtomicUsize::new(0),
        lagged: AtomicU64::new(0),
    });

    let app = Router::new()
        .route("/events", get(events))
        .route("/burst", post(burst))
        .route("/rate", post(rate))
        .route("/stats", get(stats))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(st);

    let addr: SocketAddr = match format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse::<SocketAddr>())
    {
        Ok(a) => a,
        Err(_) => {
            eprintln!("invalid HOST/PORT: {host}:{port}");
            std::process::exit(2);
        }
    };
    // Same accept backlog as hyper-sse (4096; the kernel caps it at somaxconn).
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    if let Err(e) = socket.bind(addr) {
        eprintln!("cannot bind {addr}: {e}");
        std::process::exit(1);
    }
    let listener = socket.listen(4096).expect("listen");
    let bound = listener.local_addr().expect("local_addr");
    println!("listening {}", bound.port());

    // TCP_NODELAY on every accepted socket, as hyper-sse and Node's http do.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.expect("server");
}
