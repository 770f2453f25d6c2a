//! Streams for requests another server accepted ([`hyper_sse::handoff`]),
//! over real TCP: a stand-in "other server" accepts the connection and reads
//! the request head, then hands it over; natively (the engine gets the
//! socket) or bridged (an outlet made of channels stands in for
//! `res.write()`), on a server that never listens.

use bytes::Bytes;
use hyper_sse::config::Config;
use hyper_sse::event::Event;
use hyper_sse::handoff::{Handled, Handoff, Outlet, OutletFuture, Wrote};
use hyper_sse::hub::Retention;
use hyper_sse::server::Server;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

mod common;
use common::{contains, wait_for, Client};

fn config() -> Config {
    Config {
        keep_alive: None,
        retention: Retention {
            history: 10,
            ..Retention::default()
        },
        ..Config::default()
    }
}

fn parts(target: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder().uri(target).header("host", "test");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn handoff(target: &str, headers: &[(&str, &str)], channels: Option<Vec<String>>) -> Handoff {
    Handoff {
        parts: parts(target, headers),
        peer: "127.0.0.1:1".parse().unwrap(),
        channels,
        left: Arc::new(AtomicBool::new(false)),
    }
}

/// The "other server": accepts one connection and reads its request head.
async fn accept_one(listener: &TcpListener) -> std::net::TcpStream {
    let listener = listener.try_clone().unwrap();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let (mut socket, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        socket
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_handed_socket_streams_natively_with_replay_on_a_server_that_never_listens() {
    let server = Server::new(config());
    for i in 1..=3 {
        server
            .send(
                Event::message(format!("e{i}")).id(i.to_string()).unwrap(),
                &[],
            )
            .unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut client = Client::get(addr, "/anything?lastEventId=1").await;
    let socket = accept_one(&listener).await;
    let opened = match server
        .take(handoff("/anything?lastEventId=1", &[], None))
        .await
        .unwrap()
    {
        Handled::Stream(opened) => opened,
        Handled::Reply(a) => panic!("answered {a:?}"),
    };
    assert_eq!(opened.client().channels, vec!["default".to_owned()]);
    opened.serve_native(socket).unwrap();
    client.read_until(b"data: e3\n\n").await;
    assert!(client.head().starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(contains(
        client.head().as_bytes(),
        b"transfer-encoding: chunked"
    ));
    let body = String::from_utf8(client.body()).unwrap();
    assert_eq!(body, "id: 2\ndata: e2\n\nid: 3\ndata: e3\n\n");
    server.send(Event::message("live"), &[]).unwrap();
    client.read_until(b"data: live\n\n").await;
    assert_eq!(server.handed_streams(), 1);
    server.close().await;
    client.read_to_end().await;
    assert!(client.ended(), "the stream ends with the terminating chunk");
    assert_eq!(server.handed_streams(), 0);
}

#[tokio::test]
async fn chosen_channels_skip_the_query_and_a_head_request_is_answered() {
    let server = Server::new(config());
    let chosen = Some(vec!["b".to_owned(), "a".to_owned()]);
    match server
        .take(handoff("/x?channel=zzz", &[], chosen))
        .await
        .unwrap()
    {
        Handled::Stream(opened) => assert_eq!(opened.client().channels, vec!["a", "b"]),
        Handled::Reply(a) => panic!("answered {a:?}"),
    }
    let mut head = handoff("/x", &[], None);
    head.parts.method = http::Method::HEAD;
    match server.take(head).await.unwrap() {
        Handled::Reply(a) => {
            assert_eq!(a.status, 200);
            assert_eq!(a.headers["content-type"], "text/event-stream");
            assert!(a.body.is_empty());
        }
        Handled::Stream(_) => panic!("HEAD opened a stream"),
    }
    let mut post = handoff("/x", &[], None);
    post.parts.method = http::Method::POST;
    match server.take(post).await.unwrap() {
        Handled::Reply(a) => assert_eq!(a.status, 405),
        Handled::Stream(_) => panic!("POST opened a stream"),
    }
    server.close().await;
    assert!(server.take(handoff("/x", &[], None)).await.is_err());
}

/// An outlet made of channels: batches go to `batches`; it is "full" after
/// each batch while `full` is set, until `drain` is notified.
struct TestOutlet {
    batches: mpsc::UnboundedSender<Bytes>,
    full: Arc<AtomicBool>,
    drain: Arc<Notify>,
    ended: Arc<Mutex<Option<bool>>>,
}

impl Outlet for TestOutlet {
    fn write(&mut self, batch: Bytes) -> OutletFuture<Wrote> {
        let sent = self.batches.send(batch).is_ok();
        let full = self.full.load(Ordering::SeqCst);
        Box::pin(async move {
            match (sent, full) {
                (false, _) => Wrote::Gone,
                (true, true) => Wrote::Full,
                (true, false) => Wrote::Taken,
            }
        })
    }
    fn drained(&mut self) -> OutletFuture<bool> {
        let drain = Arc::clone(&self.drain);
        Box::pin(async move {
            drain.notified().await;
            true
        })
    }
    fn gone(&mut self) -> OutletFuture<()> {
        Box::pin(std::future::pending())
    }
    fn end(self: Box<Self>, clean: bool) {
        *self.ended.lock().unwrap() = Some(clean);
    }
}

/// The test's side of a [`TestOutlet`].
struct Probe {
    batches: mpsc::UnboundedReceiver<Bytes>,
    full: Arc<AtomicBool>,
    drain: Arc<Notify>,
    ended: Arc<Mutex<Option<bool>>>,
}

fn outlet() -> (TestOutlet, Probe) {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe {
        batches: rx,
        full: Arc::new(AtomicBool::new(false)),
        drain: Arc::new(Notify::new()),
        ended: Arc::new(Mutex::new(None)),
    };
    let o = TestOutlet {
        batches: tx,
        full: Arc::clone(&probe.full),
        drain: Arc::clone(&probe.drain),
        ended: Arc::clone(&probe.ended),
    };
    (o, probe)
}

#[tokio::test]
async fn a_bridged_stream_hands_one_batch_per_write_waits_for_drain_and_ends_cleanly() {
    let server = Server::new(config());
    let Handled::Stream(opened) = server.take(handoff("/e", &[], None)).await.unwrap() else {
        panic!("no stream");
    };
    let (o, mut p) = outlet();
    let (full, drain, ended) = (
        Arc::clone(&p.full),
        Arc::clone(&p.drain),
        Arc::clone(&p.ended),
    );
    full.store(true, Ordering::SeqCst);
    opened.serve_bridged(o);
    for i in 0..100 {
        server.send(Event::message(format!("n{i}")), &[]).unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(5), p.batches.recv())
        .await
        .unwrap()
        .unwrap();
    // A burst is one batch, not one write per event.
    assert!(contains(&first, b"data: n0\n\n"));
    // Full: nothing more until it drains.
    server.send(Event::message("after"), &[]).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(p.batches.try_recv().is_err());
    full.store(false, Ordering::SeqCst);
    drain.notify_one();
    let mut all = first.to_vec();
    while !contains(&all, b"data: after\n\n") {
        let next = tokio::time::timeout(Duration::from_secs(5), p.batches.recv())
            .await
            .unwrap()
            .unwrap();
        all.extend_from_slice(&next);
    }
    assert!(contains(&all, b"data: n99\n\n"));
    server.close().await;
    assert_eq!(*ended.lock().unwrap(), Some(true));
}

#[tokio::test]
async fn a_bridged_stream_that_stays_full_is_evicted_like_any_stalled_client() {
    let server = Server::new(Config {
        retention: Retention {
            stall_timeout: Some(Duration::from_millis(200)),
            ..config().retention
        },
        ..config()
    });
    let Handled::Stream(opened) = server.take(handoff("/e", &[], None)).await.unwrap() else {
        panic!("no stream");
    };
    let (o, p) = outlet();
    let (full, ended) = (Arc::clone(&p.full), Arc::clone(&p.ended));
    full.store(true, Ordering::SeqCst);
    opened.serve_bridged(o);
    server.send(Event::message("one"), &[]).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.send(Event::message("two"), &[]).unwrap();
    wait_for("the eviction", || *ended.lock().unwrap() == Some(false)).await;
    wait_for("the count", || server.stats().evicted == 1).await;
    assert_eq!(server.handed_streams(), 0);
}

/// An outlet whose writes never finish (a response that is neither taking
/// bytes nor saying it is full), to see `close()` give up on it.
struct StuckOutlet(Arc<AtomicBool>);

impl Outlet for StuckOutlet {
    fn write(&mut self, _batch: Bytes) -> OutletFuture<Wrote> {
        Box::pin(std::future::pending())
    }
    fn drained(&mut self) -> OutletFuture<bool> {
        Box::pin(std::future::pending())
    }
    fn gone(&mut self) -> OutletFuture<()> {
        Box::pin(std::future::pending())
    }
    fn end(self: Box<Self>, _clean: bool) {}
}

impl Drop for StuckOutlet {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn close_drops_a_handed_stream_that_does_not_end_within_the_grace_period() {
    let server = Server::new(Config {
        shutdown_grace: Duration::from_millis(300),
        ..config()
    });
    let dropped = Arc::new(AtomicBool::new(false));
    let Handled::Stream(opened) = server.take(handoff("/e", &[], None)).await.unwrap() else {
        panic!("no stream");
    };
    opened.serve_bridged(StuckOutlet(Arc::clone(&dropped)));
    server.send(Event::message("never written"), &[]).unwrap();
    wait_for("the stream", || server.handed_streams() == 1).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), server.close())
        .await
        .expect("close() resolves");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for the grace period"
    );
    wait_for("the stream dropped", || dropped.load(Ordering::SeqCst)).await;
    assert_eq!(server.handed_streams(), 0);
}
