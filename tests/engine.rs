//! The engine driven over real TCP by a raw HTTP/1.1 client, so every byte on
//! the wire is checked: the response head, the chunked framing, the events.

use hyper_sse::bind::ListenErrorKind;
use hyper_sse::config::Config;
use hyper_sse::event::Event;
use hyper_sse::hub::Retention;
use hyper_sse::server::Server;
use hyper_sse::static_files::StaticRoot;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};

mod common;
use common::{contains, find, wait_for, Client};

async fn start(config: Config) -> (Arc<Server>, SocketAddr) {
    let server = Arc::new(Server::new(config));
    let addr = server.listen(0, Some("127.0.0.1")).await.unwrap();
    (server, addr)
}

/// Heartbeats and automatic ids off, so bodies can be compared byte for byte.
fn config() -> Config {
    Config {
        keep_alive: None,
        retention: Retention {
            history: 0,
            ..Retention::default()
        },
        ..Config::default()
    }
}

#[tokio::test]
async fn stream_head_is_flushed_before_any_event() {
    let (server, addr) = start(config()).await;
    let mut c = Client::get(addr, "/events").await;
    c.read_until(b"\r\n\r\n").await;
    let head = c.head().to_ascii_lowercase();
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "http/1.1 200 ok", "{head}");
    for line in [
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "x-accel-buffering: no",
        "connection: keep-alive",
        "transfer-encoding: chunked",
    ] {
        assert!(lines.contains(&line), "{line} missing in {head}");
    }
    assert!(!head.contains("content-length"));
    assert!(!head.contains("content-encoding"));
    server.close().await;
}

#[tokio::test]
async fn events_arrive_byte_exact_in_send_order() {
    let (server, addr) = start(Config {
        retry: Some(3000),
        ..config()
    })
    .await;
    let mut c = Client::get(addr, "/events?x=1").await;
    c.read_until(b"retry: 3000\n\n").await;
    wait_for("subscriber", || server.stats().connections == 1).await;
    server.send(Event::message("12:00:00"), &[]).unwrap();
    server.comment("'这是注释！'", &[]).unwrap();
    let named = Event::message("2026/11/26 12:00:00")
        .event("myEvent")
        .unwrap();
    server.send(named, &[]).unwrap();
    server.send(Event::message("a\nb\r\nc\rd"), &[]).unwrap();
    c.read_until(b"data: d\n\n").await;
    let expected = "retry: 3000\n\n\
        data: 12:00:00\n\n\
        : '这是注释！'\n\
        event: myEvent\ndata: 2026/11/26 12:00:00\n\n\
        data: a\ndata: b\ndata: c\ndata: d\n\n";
    assert_eq!(String::from_utf8(c.body()).unwrap(), expected);
    server.close().await;
}

#[tokio::test]
async fn several_paths_each_open_a_stream() {
    let (server, addr) = start(Config {
        paths: vec!["/a".into(), "/b".into()],
        ..config()
    })
    .await;
    let mut a = Client::get(addr, "/a").await;
    let mut b = Client::get(addr, "/b").await;
    wait_for("two subscribers", || server.stats().connections == 2).await;
    server.send(Event::message("both"), &[]).unwrap();
    a.read_until(b"data: both\n\n").await;
    b.read_until(b"data: both\n\n").await;
    server.close().await;
}

#[tokio::test]
async fn heartbeats_fill_only_silence() {
    let (server, addr) = start(Config {
        keep_alive: Some(Duration::from_millis(300)),
        ..config()
    })
    .await;
    let mut c = Client::get(addr, "/events").await;
    c.read_until(b"\r\n\r\n").await;
    wait_for("subscriber", || server.stats().connections == 1).await;
    // Busy for ~900 ms: an event every 100 ms leaves no room for a heartbeat.
    for i in 0..9 {
        server.send(Event::message(i.to_string()), &[]).unwrap();
        sleep(Duration::from_millis(100)).await;
    }
    c.read_until(b"data: 8\n\n").await;
    assert!(!contains(&c.body(), b":\n"), "heartbeat while busy");
    // Then silence: a heartbeat arrives after about one interval.
    let quiet = Instant::now();
    c.read_until(b":\n").await;
    assert!(quiet.elapsed() >= Duration::from_millis(150));
    server.close().await;
}

#[tokio::test]
async fn disconnect_is_noticed_and_freed() {
    let (server, addr) = start(config()).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut c = Client::get(addr, "/events").await;
        c.read_until(b"\r\n\r\n").await;
        clients.push(c);
    }
    wait_for("20 streams", || server.stats().connections == 20).await;
    clients.truncate(5);
    let dropped = Instant::now();
    wait_for("15 streams to close", || server.stats().connections == 5).await;
    assert!(dropped.elapsed() < Duration::from_secs(1));
    assert_eq!(server.stats().total_connections, 20);
    server.close().await;
}

#[tokio::test]
async fn wrong_method_is_405_and_unknown_path_is_404() {
    let (server, addr) = start(config()).await;
    let mut c = Client::request(
        addr,
        "POST /events HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    c.read_until(b"\r\n\r\n").await;
    let head = c.head().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 405"), "{head}");
    assert!(head.contains("\r\nallow: get, head\r\n"), "{head}");
    let mut c = Client::get(addr, "/nope").await;
    c.read_until(b"\r\n\r\n").await;
    assert!(c.head().starts_with("HTTP/1.1 404"));
    assert_eq!(server.stats().connections, 0);
    server.close().await;
}

#[tokio::test]
async fn a_stream_request_breaking_the_message_rules_is_answered_400_and_closed() {
    let (server, addr) = start(config()).await;
    for (request, reason) in [
        (
            "GET /events HTTP/1.1\r\n\r\n",
            "an HTTP/1.1 request needs a Host header",
        ),
        (
            "GET /events HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "more than one Host header",
        ),
        (
            "GET /events HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
            "Content-Length must be one decimal number",
        ),
        (
            "GET /events HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
            "the final Transfer-Encoding must be chunked",
        ),
    ] {
        let mut c = Client::request(addr, request).await;
        c.read_to_end().await;
        let text = String::from_utf8_lossy(&c.raw).into_owned();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        assert!(
            text.ends_with(&format!("bad request: {reason}\n")),
            "{text}"
        );
    }
    assert_eq!(server.stats().total_connections, 0);
    server.close().await;
}

#[tokio::test]
async fn head_on_a_stream_path_opens_no_stream() {
    let (server, addr) = start(config()).await;
    let mut c = Client::request(addr, "HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n").await;
    c.read_until(b"\r\n\r\n").await;
    assert!(c
        .head()
        .to_ascii_lowercase()
        .contains("content-type: text/event-stream"));
    assert_eq!(server.stats().total_connections, 0);
    server.close().await;
}

#[tokio::test]
async fn close_writes_pending_events_then_the_terminating_chunk() {
    let (server, addr) = start(config()).await;
    let mut c = Client::get(addr, "/events").await;
    c.read_until(b"\r\n\r\n").await;
    wait_for("subscriber", || server.stats().connections == 1).await;
    server.send(Event::message("last words"), &[]).unwrap();
    server.close().await;
    c.read_to_end().await;
    assert!(
        c.ended(),
        "no terminating chunk: {:?}",
        String::from_utf8_lossy(&c.raw)
    );
    assert_eq!(c.body(), b"data: last words\n\n");
    assert!(server.send(Event::message("late"), &[]).is_err());
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after close"
    );
}

#[tokio::test]
async fn close_does_not_wait_forever_for_a_client_that_does_not_read() {
    let (server, addr) = start(Config {
        shutdown_grace: Duration::from_millis(500),
        ..config()
    })
    .await;
    // Never reads: its socket buffers fill up and the final chunk cannot be written.
    let _stalled = Client::get(addr, "/events").await;
    wait_for("subscriber", || server.stats().connections == 1).await;
    let big = "x".repeat(64 * 1024);
    for _ in 0..12 {
        server.send(Event::message(big.as_str()), &[]).unwrap();
    }
    let started = Instant::now();
    timeout(Duration::from_secs(5), server.close())
        .await
        .expect("close hung");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.stats().connections, 0);
}

#[tokio::test]
async fn a_stalled_client_is_evicted_and_fast_ones_get_everything() {
    let (server, addr) = start(Config {
        retention: Retention {
            history: 0,
            max_buffered_bytes: 256 * 1024,
            stall_timeout: None,
        },
        ..config()
    })
    .await;
    let stalled = Client::get(addr, "/events").await;
    let mut fast = Client::get(addr, "/events").await;
    fast.read_until(b"\r\n\r\n").await;
    wait_for("two streams", || server.stats().connections == 2).await;
    let payload = "y".repeat(16 * 1024);
    let mut read = 0usize;
    for i in 0..400 {
        server
            .send(Event::message(format!("{i} {payload}")), &[])
            .unwrap();
        // The fast client keeps up.
        let mut buf = vec![0u8; 1 << 20];
        while read < (i + 1) * payload.len() {
            let n = timeout(Duration::from_secs(5), fast.socket.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0);
            fast.raw.extend_from_slice(&buf[..n]);
            read += n;
        }
    }
    wait_for("eviction", || server.stats().evicted == 1).await;
    wait_for("one stream left", || server.stats().connections == 1).await;
    fast.read_until(format!("399 {payload}").as_bytes()).await;
    let body = fast.body();
    let count = body.windows(6).filter(|w| w == b"data: ").count();
    assert_eq!(count, 400);
    drop(stalled);
    server.close().await;
}

/// A client that stops reading, behind a burst on a channel that then goes
/// quiet: nothing is published that would look at it again, and its byte
/// lag is far below the budget. The stall rule alone drops it, on the direct
/// path and on a stream hyper serves, and the log it held shrinks back to
/// the history at once.
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_stall_timeout_on_a_quiet_channel() {
    let stall = Duration::from_millis(500);
    let (server, addr) = start(Config {
        retention: Retention {
            history: 10,
            max_buffered_bytes: 1 << 30,
            stall_timeout: Some(stall),
        },
        ..config()
    })
    .await;
    let mut direct = Client::get(addr, "/events").await;
    direct.read_until(b"\r\n\r\n").await;
    // A stream asked for after another request on the same connection is
    // served by hyper.
    let mut via_hyper = Client::request(
        addr,
        "GET /nothing HTTP/1.1\r\nHost: test\r\n\r\nGET /events HTTP/1.1\r\nHost: test\r\n\r\n",
    )
    .await;
    via_hyper.read_until(b"text/event-stream").await;
    wait_for("two streams", || server.stats().connections == 2).await;
    let block = "z".repeat(64 * 1024);
    let burst_started = Instant::now();
    for _ in 0..256 {
        server.send(Event::message(block.as_str()), &[]).unwrap();
    }
    // 16 MiB: far more than the two sockets' buffers take, far less than
    // the byte budget. Then nothing more is sent.
    wait_for("both evicted", || server.stats().evicted == 2).await;
    assert!(
        burst_started.elapsed() >= stall,
        "dropped after {:?}, before the stall timeout",
        burst_started.elapsed()
    );
    wait_for("no stream left", || server.stats().connections == 0).await;
    let history = server.channel_stats()[0].history;
    assert_eq!(
        history, 10,
        "the log shrinks to the history without another send"
    );
    drop((direct, via_hyper));
    server.close().await;
}

#[tokio::test]
async fn many_clients_get_every_event_in_order() {
    let (server, addr) = start(config()).await;
    let mut clients = Vec::new();
    for _ in 0..200 {
        let mut c = Client::get(addr, "/events").await;
        c.read_until(b"\r\n\r\n").await;
        clients.push(c);
    }
    wait_for("200 streams", || server.stats().connections == 200).await;
    for i in 0..100 {
        server
            .send(
                Event::message(i.to_string()).id(i.to_string()).unwrap(),
                &[],
            )
            .unwrap();
    }
    let expected: String = (0..100)
        .map(|i| format!("id: {i}\ndata: {i}\n\n"))
        .collect();
    for c in &mut clients {
        c.read_until(b"id: 99\ndata: 99\n\n").await;
        assert_eq!(String::from_utf8(c.body()).unwrap(), expected);
    }
    server.close().await;
}

fn static_dir() -> tempdir::Dir {
    tempdir::Dir::new()
}

/// A throwaway directory tree for static-file tests.
mod tempdir {
    use std::path::{Path, PathBuf};
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let base = std::env::temp_dir().join(format!(
                "hyper-sse-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let root = base.join("public");
            std::fs::create_dir_all(root.join("sub")).unwrap();
            std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
            std::fs::write(root.join("app.js"), "console.log(1)").unwrap();
            std::fs::write(root.join("sub/index.html"), "sub").unwrap();
            std::fs::write(root.join(".env"), "SECRET=1").unwrap();
            std::fs::write(base.join("secret.txt"), "outside").unwrap();
            #[cfg(unix)]
            std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt")).unwrap();
            Dir(base)
        }
        pub fn root(&self) -> PathBuf {
            self.0.join("public")
        }
        #[allow(dead_code)]
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn fetch(addr: SocketAddr, request: &str) -> (String, Vec<u8>) {
    let mut c = Client::request(addr, request).await;
    c.read_to_end().await;
    let head = c.head();
    let start = find(&c.raw, b"\r\n\r\n").unwrap() + 4;
    (head, c.raw[start..].to_vec())
}

fn get_close(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn static_files_are_served_with_their_types() {
    let dir = static_dir();
    let (server, addr) = start(Config {
        static_root: Some(StaticRoot::new(&dir.root()).unwrap()),
        ..config()
    })
    .await;
    let (head, body) = fetch(addr, &get_close("/")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/html; charset=utf-8"));
    assert_eq!(body, b"<h1>home</h1>");
    let (head, body) = fetch(addr, &get_close("/app.js")).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("javascript; charset=utf-8"),
        "{head}"
    );
    assert_eq!(body, b"console.log(1)");
    let (head, _) = fetch(addr, &get_close("/sub")).await;
    assert!(
        head.starts_with("HTTP/1.1 301") && head.to_ascii_lowercase().contains("location: /sub/")
    );
    let (_, body) = fetch(addr, &get_close("/sub/")).await;
    assert_eq!(body, b"sub");
    let (head, body) = fetch(
        addr,
        "HEAD /app.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        head.to_ascii_lowercase().contains("content-length: 14"),
        "{head}"
    );
    assert!(body.is_empty());
    let (head, _) = fetch(
        addr,
        "DELETE /app.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 405"));
    server.close().await;
}

#[tokio::test]
async fn no_request_reads_outside_the_static_root() {
    let dir = static_dir();
    let (server, addr) = start(Config {
        static_root: Some(StaticRoot::new(&dir.root()).unwrap()),
        ..config()
    })
    .await;
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "//secret.txt",
        "/link.txt",
        "/.env",
        &format!("/{}", dir.path().join("secret.txt").display()),
    ] {
        let (head, body) = fetch(addr, &get_close(path)).await;
        assert!(
            head.starts_with("HTTP/1.1 400") || head.starts_with("HTTP/1.1 404"),
            "{path}: {head}"
        );
        assert!(
            !contains(&body, b"outside") && !contains(&body, b"SECRET"),
            "{path}"
        );
    }
    server.close().await;
}

#[tokio::test]
async fn listen_reports_address_in_use() {
    let (server, addr) = start(config()).await;
    let other = Server::new(config());
    let err = other
        .listen(addr.port(), Some("127.0.0.1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err.kind, ListenErrorKind::Io { syscall: "listen", source }
            if source.kind() == std::io::ErrorKind::AddrInUse),
        "{err:?}"
    );
    let err = server.listen(0, Some("127.0.0.1")).await.unwrap_err();
    assert!(
        matches!(err.kind, ListenErrorKind::AlreadyListening),
        "{err:?}"
    );
    let err = other
        .listen(0, Some("no-such-host.invalid"))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind, ListenErrorKind::HostNotFound { .. }),
        "{err:?}"
    );
    server.close().await;
}

#[tokio::test]
async fn a_stream_on_a_kept_alive_connection_is_served_by_hyper_too() {
    let dir = static_dir();
    let (server, addr) = start(Config {
        static_root: Some(StaticRoot::new(&dir.root()).unwrap()),
        ..config()
    })
    .await;
    // The page first, then the stream, on the same connection, as a browser does.
    let mut c = Client::request(addr, "GET /app.js HTTP/1.1\r\nHost: t\r\n\r\n").await;
    c.read_until(b"console.log(1)").await;
    c.socket
        .write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    c.read_until(b"text/event-stream").await;
    wait_for("stream", || server.stats().connections == 1).await;
    server.send(Event::message("over keep-alive"), &[]).unwrap();
    c.read_until(b"data: over keep-alive\n\n").await;
    server.close().await;
    c.read_to_end().await;
    assert!(
        c.raw.ends_with(b"0\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&c.raw)
    );
}
