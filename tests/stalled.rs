//! Many clients that stop reading, under a large burst: the memory they cost
//! the server stays bounded (every client reads one shared log, so being
//! behind costs no copy), they are dropped as slow, and each comes back with
//! its `Last-Event-ID` to exactly the events after it.
//!
//! Its own test binary, so the process's memory is this test's alone.

use hyper_sse::config::Config;
use hyper_sse::event::Event;
use hyper_sse::hub::Retention;
use hyper_sse::server::Server;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{sleep, timeout, Instant};

const STALLED: usize = 1000;
const SIZE: usize = 4096;
/// 200 MiB of event data in all.
const COUNT: usize = 51_200;
/// 80 MiB: covers what is sent while the clients are dropped and come back.
const HISTORY: usize = 20_000;

/// The process's resident memory now (`VmRSS`) or at its peak (`VmHWM`), in bytes.
fn memory(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The `id: ` fields of a stream as it is read, keeping only the line not
/// yet complete: a thousand clients in this process must cost it little, or
/// the test would measure them instead of the server.
#[derive(Default)]
struct Ids {
    seen: Vec<String>,
    partial: Vec<u8>,
}

impl Ids {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b != b'\n' {
                self.partial.push(b);
                continue;
            }
            if let Some(id) = self.partial.strip_prefix(b"id: ") {
                self.seen.push(String::from_utf8_lossy(id).into_owned());
            }
            self.partial.clear();
        }
    }
}

/// Connects from `source` with a small receive buffer, so the kernel holds
/// little for it: what the client does not read stays the server's to hold,
/// which is the case this test is about.
async fn connect_small(addr: SocketAddr, source: Ipv4Addr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Opens a stream, reads its first `want` events once they come, then stops
/// reading for good. Returns the socket (still open) and the last id read.
async fn stall_after(addr: SocketAddr, source: Ipv4Addr, want: usize) -> (TcpStream, String) {
    let mut socket = connect_small(addr, source).await;
    socket
        .write_all(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut ids = Ids::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before {want} events");
        ids.feed(&buf[..n]);
        // The event of the `want`-th id is complete once another began.
        if ids.seen.len() > want {
            return (socket, ids.seen.swap_remove(want - 1));
        }
    }
}

/// Comes back with `last`: the first 20 events are the ones right after it.
async fn resume(addr: SocketAddr, source: Ipv4Addr, last: &str) -> Result<(), String> {
    let (epoch, n) = last.split_once('-').unwrap();
    let n: u64 = n.parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut socket = socket.connect(addr).await.unwrap();
    let request = format!("GET /events HTTP/1.1\r\nHost: test\r\nLast-Event-ID: {last}\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut ids = Ids::default();
    let mut buf = [0u8; 4096];
    while ids.seen.len() < 20 {
        let read = timeout(Duration::from_secs(30), socket.read(&mut buf)).await;
        let n = read.map_err(|_| format!("{last}: no replay"))?.unwrap();
        if n == 0 {
            return Err(format!("{last}: closed during the replay"));
        }
        ids.feed(&buf[..n]);
    }
    let got = &ids.seen[..20];
    let expected: Vec<String> = (1..=20).map(|k| format!("{epoch}-{}", n + k)).collect();
    if got != expected.as_slice() {
        return Err(format!("{last}: got {:?}…", &got[..3]));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stalled_clients_under_a_200_mb_burst_cost_bounded_memory_and_resume_without_a_gap(
) {
    let server = Arc::new(Server::new(Config {
        keep_alive: None,
        retention: Retention {
            history: HISTORY,
            ..Retention::default()
        },
        ..Config::default()
    }));
    let addr = server.listen(0, Some("127.0.0.1")).await.unwrap();
    let source = |i: usize, base: u8| Ipv4Addr::new(127, 0, base + (i % 8) as u8, 1);
    let mut stalling = Vec::new();
    for i in 0..STALLED {
        stalling.push(tokio::spawn(stall_after(addr, source(i, 1), 1 + i % 5)));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.stats().connections < STALLED as u64 {
        assert!(Instant::now() < deadline, "only {:?}", server.stats());
        sleep(Duration::from_millis(20)).await;
    }
    let before = memory("VmRSS");

    // 2 MiB every 200 ms: 200 MiB in about 20 s, so the clients can come
    // back while it runs, well within the history.
    let sender = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let pad = "x".repeat(SIZE - 8);
            for i in 0..COUNT {
                let data = format!("{i:07} {pad}");
                server.send(Event::message(data), &[]).unwrap();
                if i % 512 == 511 {
                    sleep(Duration::from_millis(200)).await;
                }
            }
        })
    };
    let mut stalled = Vec::new();
    for task in stalling {
        stalled.push(task.await.unwrap());
    }
    // No client but the stalled ones exists yet: every eviction is one of them.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.stats().evicted < STALLED as u64 {
        assert!(
            Instant::now() < deadline,
            "not all dropped: {:?}",
            server.stats()
        );
        sleep(Duration::from_millis(20)).await;
    }
    let sent_when_dropped = server.stats().events_sent;
    let (sockets, last_ids): (Vec<_>, Vec<_>) = stalled.into_iter().unzip();
    drop(sockets);

    let mut resumed = Vec::new();
    for (i, last) in last_ids.into_iter().enumerate() {
        resumed.push(tokio::spawn(async move {
            resume(addr, source(i, 9), &last).await
        }));
    }
    let mut gaps = Vec::new();
    for task in resumed {
        if let Err(e) = task.await.unwrap() {
            gaps.push(e);
        }
    }
    sender.await.unwrap();
    let grown = memory("VmHWM").saturating_sub(before);
    eprintln!(
        "{STALLED} stalled clients, {COUNT} × {SIZE} B: all dropped after {sent_when_dropped} events; \
         RSS {:.1} MiB before, peak +{:.1} MiB",
        before as f64 / 1048576.0,
        grown as f64 / 1048576.0
    );
    assert!(
        gaps.is_empty(),
        "{} resumed with a gap: {:?}",
        gaps.len(),
        &gaps[..gaps.len().min(3)]
    );
    assert!(grown < 200 << 20, "RSS grew by {} MiB", grown >> 20);
    server.close().await;
}
