//! Two engines and one real redis-server over TCP: what one instance sends
//! reaches the other's clients byte-exact, and a client resumes on the other
//! instance. Uses the redis-server CI started (`HYPER_SSE_REDIS_URL`), or
//! starts one of its own and stops it by PID.

use hyper_sse::backplane::{RedisOptions, DEFAULT_MAX_PENDING};
use hyper_sse::bind::ListenErrorKind;
use hyper_sse::config::Config;
use hyper_sse::event::Event;
use hyper_sse::hub::Retention;
use hyper_sse::server::Server;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{wait_for, Client};

/// A redis-server this test started; killed when dropped.
struct OwnRedis(Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Redis URL, and the server behind it when this test started it.
async fn redis() -> (String, Option<OwnRedis>) {
    if let Ok(url) = std::env::var("HYPER_SSE_REDIS_URL") {
        return (url, None);
    }
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is needed (Debian package redis-server; .ci/run installs it)");
    let own = OwnRedis(child);
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (format!("redis://127.0.0.1:{port}"), Some(own));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("redis-server did not start on port {port}");
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn prefix(test: &str) -> String {
    format!("engine-{test}-{}-{}", std::process::id(), unique())
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn instance(url: &str, prefix: &str) -> (Arc<Server>, SocketAddr) {
    let server = Arc::new(Server::new(Config {
        keep_alive: None,
        retention: Retention::default(),
        redis: Some(RedisOptions {
            endpoint: url.parse().unwrap(),
            prefix: prefix.to_owned(),
            max_pending: DEFAULT_MAX_PENDING,
        }),
        ..Config::default()
    }));
    let addr = server.listen(0, Some("127.0.0.1")).await.unwrap();
    (server, addr)
}

/// The id the first event of a new data set gets: `<epoch>-1`, with the
/// epoch read off the wire.
fn epoch_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("an id line");
    id.split_once('-').unwrap().0.to_owned()
}

#[tokio::test]
async fn a_send_on_one_instance_reaches_the_other_byte_exact() {
    let (url, _own) = redis().await;
    let prefix = prefix("fanout");
    let (a, _) = instance(&url, &prefix).await;
    let (b, b_addr) = instance(&url, &prefix).await;
    let mut client = Client::get(b_addr, "/events").await;
    client.read_until(b"\r\n\r\n").await;
    wait_for("the stream on B", || b.stats().connections == 1).await;

    a.send(Event::message("hello"), &[]).unwrap();
    a.send(Event::message("two\nlines").event("note").unwrap(), &[])
        .unwrap();
    a.send(Event::message("mine").id("order-1").unwrap(), &[])
        .unwrap();
    a.comment("a comment", &[]).unwrap();
    a.flush().await.unwrap();
    client.read_until(b": a comment\n").await;

    let epoch = epoch_of(&client.body());
    let expected = format!(
        "id: {epoch}-1\ndata: hello\n\n\
         id: {epoch}-2\nevent: note\ndata: two\ndata: lines\n\n\
         id: order-1\ndata: mine\n\n\
         : a comment\n"
    );
    assert_eq!(String::from_utf8(client.body()).unwrap(), expected);
    assert!(epoch.bytes().all(|b| b.is_ascii_digit()));
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_client_resumes_on_the_other_instance_after_its_last_event_id() {
    let (url, _own) = redis().await;
    let prefix = prefix("replay");
    let (a, a_addr) = instance(&url, &prefix).await;
    let (b, b_addr) = instance(&url, &prefix).await;
    let mut first = Client::get(a_addr, "/events").await;
    first.read_until(b"\r\n\r\n").await;
    wait_for("the stream on A", || a.stats().connections == 1).await;
    for i in 1..=5 {
        a.send(Event::message(format!("e{i}")), &[]).unwrap();
    }
    first.read_until(b"data: e5\n\n").await;
    let epoch = epoch_of(&first.body());
    drop(first);

    let mut moved = Client::request(
        b_addr,
        &format!("GET /events HTTP/1.1\r\nHost: t\r\nLast-Event-ID: {epoch}-3\r\n\r\n"),
    )
    .await;
    moved.read_until(b"data: e5\n\n").await;
    b.send(Event::message("e6"), &[]).unwrap();
    moved.read_until(b"data: e6\n\n").await;
    assert_eq!(
        String::from_utf8(moved.body()).unwrap(),
        format!(
            "id: {epoch}-4\ndata: e4\n\nid: {epoch}-5\ndata: e5\n\nid: {epoch}-6\ndata: e6\n\n"
        )
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn listen_fails_when_redis_cannot_be_reached() {
    let port = free_port();
    let server = Server::new(Config {
        redis: Some(RedisOptions {
            endpoint: format!("redis://127.0.0.1:{port}").parse().unwrap(),
            prefix: "unreachable".into(),
            max_pending: 10,
        }),
        ..Config::default()
    });
    let error = server.listen(0, Some("127.0.0.1")).await.unwrap_err();
    let ListenErrorKind::BackplaneUnavailable(cause) = &error.kind else {
        panic!("expected the backplane to be unavailable, got {error:?}");
    };
    assert!(
        error.to_string().starts_with(&format!(
            "cannot connect to Redis at redis://127.0.0.1:{port}"
        )),
        "{error}"
    );
    // The chain goes down to what Redis said.
    let source = std::error::Error::source(cause).expect("Redis's error");
    assert!(source.is::<redis::RedisError>(), "{source:?}");
    assert_eq!(server.local_addr(), None);
}
