//! The soak's two client behaviours (`npm run soak`, bench/soak.mjs):
//!
//! - `cycle`: many short stream connections, one after the other on a
//!   bounded number of workers, ending in the four ways a client leaves: after
//!   its first event (FIN), after the head with a reset (RST), right after
//!   sending the request, and halfway through the request head;
//! - `stall`: clients that connect, read the response head and then never
//!   read again, held open for a while, then counted (still open, or closed by
//!   the server) and dropped.
//!
//! Both spread their source addresses over 127.0.x.y ([`source_addr`]) so a
//! hundred thousand connections neither run out of ephemeral ports nor pile
//! up TIME_WAIT on one address. Each prints one JSON object on stdout.

use crate::{connect, source_addr, Args};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST: &[u8] =
    b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
/// Any one step of a cycle (connect, write, read) gives up after this.
const STEP: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Cycles {
    done: u64,
    /// Cycles that saw what they waited for (the head, the first event).
    ok: u64,
    with_event: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Cycles {
    fn fail(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

/// Reads until the end of the response head; the bytes after it, or why not.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(STEP, stream.read(&mut buf))
            .await
            .map_err(|_| "timed out reading the head".to_owned())?
            .map_err(|e| format!("reading the head: {e}"))?;
        if n == 0 {
            return Err("closed before the response head".to_owned());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            if !head.starts_with(b"HTTP/1.1 200") {
                let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
                return Err(format!("status {}", String::from_utf8_lossy(line)));
            }
            return Ok(head.split_off(end + 4));
        }
    }
}

/// One cycle of kind `i % 4`; true when it saw what it waited for.
async fn cycle(port: u16, i: u64, sources: u16, tally: &RefCell<Cycles>) {
    let source = source_addr(i as usize, sources);
    let result: Result<bool, String> = async {
        let mut s = tokio::time::timeout(STEP, connect(port, source))
            .await
            .map_err(|_| "timed out connecting".to_owned())?
            .map_err(|e| format!("connect from {source}: {e}"))?;
        match i % 4 {
            // Reads the head and the first event, then closes (FIN).
            0 => {
                s.write_all(REQUEST).await.map_err(|e| e.to_string())?;
                let mut seen = read_head(&mut s).await?;
                let mut buf = [0u8; 2048];
                while !seen.windows(5).any(|w| w == b"data:") {
                    let n = tokio::time::timeout(STEP, s.read(&mut buf))
                        .await
                        .map_err(|_| "no event within 10 s".to_owned())?
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("closed before the first event".to_owned());
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                Ok(true)
            }
            // Reads the head, then resets the connection (RST, no TIME_WAIT).
            1 => {
                s.write_all(REQUEST).await.map_err(|e| e.to_string())?;
                read_head(&mut s).await?;
                s.set_zero_linger().map_err(|e| e.to_string())?;
                Ok(false)
            }
            // Sends the request and leaves at once.
            2 => {
                s.write_all(REQUEST).await.map_err(|e| e.to_string())?;
                Ok(false)
            }
            // Leaves halfway through the request head.
            _ => {
                s.write_all(&REQUEST[..REQUEST.len() / 2])
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(false)
            }
        }
    }
    .await;
    let mut t = tally.borrow_mut();
    t.done += 1;
    match result {
        Ok(event) => {
            t.ok += 1;
            t.with_event += u64::from(event);
        }
        Err(e) => t.fail(e),
    }
}

/// `--scenario cycle`: `--cycles` connections on `--concurrency` workers.
pub async fn run_cycle(args: &Args) -> String {
    let tally = Rc::new(RefCell::new(Cycles::default()));
    let next = Rc::new(RefCell::new(0u64));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (tally, next) = (Rc::clone(&tally), Rc::clone(&next));
        let (port, total, sources) = (args.port, args.cycles, args.sources);
        workers.push(tokio::task::spawn_local(async move {
            loop {
                let i = {
                    let mut n = next.borrow_mut();
                    if *n >= total {
                        break;
                    }
                    *n += 1;
                    *n - 1
                };
                cycle(port, i, sources, &tally).await;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let t = tally.borrow();
    format!(
        concat!(
            "{{\"scenario\":\"cycle\",\"cycles\":{},\"ok\":{},\"withEvent\":{},\"errors\":{},",
            "\"firstError\":{},\"durationMs\":{:.0},\"cyclesPerSec\":{:.0}}}"
        ),
        t.done,
        t.ok,
        t.with_event,
        t.errors,
        json_string(t.first_error.as_deref()),
        secs * 1000.0,
        t.done as f64 / secs.max(1e-9),
    )
}

/// The kernel's view of a socket: `tcpi_state` (1 = ESTABLISHED).
fn tcp_state(stream: &TcpStream) -> u8 {
    use std::os::fd::AsRawFd;
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: TCP_INFO writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc == 0 {
        info[0]
    } else {
        0
    }
}

/// `--scenario stall`: `--clients` streams that stop reading after the
/// head, held for `--hold-s` seconds. Prints `connected <n>` on stderr once
/// every client has its head, so the caller can time the hold.
pub async fn run_stall(args: &Args) -> String {
    let start = Instant::now();
    let sem = Rc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(args.clients);
    for c in 0..args.clients {
        let sem = Rc::clone(&sem);
        let (port, sources) = (args.port, args.sources);
        tasks.push(tokio::task::spawn_local(async move {
            let _permit = sem.acquire().await.expect("semaphore");
            let source = source_addr(c, sources);
            let mut s = tokio::time::timeout(STEP, connect(port, source))
                .await
                .map_err(|_| "timed out connecting".to_owned())?
                .map_err(|e| format!("connect from {source}: {e}"))?;
            s.write_all(REQUEST).await.map_err(|e| e.to_string())?;
            read_head(&mut s).await?;
            Ok::<TcpStream, String>(s)
        }));
    }
    let mut held = Vec::with_capacity(args.clients);
    let mut errors = 0u64;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let connect_ms = start.elapsed().as_secs_f64() * 1000.0;
    eprintln!("connected {}", held.len());
    tokio::time::sleep(Duration::from_secs(args.hold_s)).await;
    // Still ESTABLISHED: the server kept it. Anything else: it was closed
    // (a reset), or the server's FIN got through.
    let open = held.iter().filter(|s| tcp_state(s) == 1).count();
    let closed = held.len() - open;
    // Unread data is waiting in every socket: closing them resets them.
    drop(held);
    format!(
        concat!(
            "{{\"scenario\":\"stall\",\"clients\":{},\"connected\":{},\"errors\":{},\"firstError\":{},",
            "\"connectMs\":{:.0},\"heldS\":{},\"stillOpen\":{},\"closedByServer\":{}}}"
        ),
        args.clients,
        open + closed,
        errors,
        json_string(first_error.as_deref()),
        connect_ms,
        args.hold_s,
        open,
        closed,
    )
}

fn json_string(s: Option<&str>) -> String {
    match s {
        None => "null".to_owned(),
        Some(s) => {
            let escaped: String = s
                .chars()
                .map(|c| match c {
                    '"' | '\\' => format!("\\{c}"),
                    c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32),
                    c => c.to_string(),
                })
                .collect();
            format!("\"{escaped}\"")
        }
    }
}
