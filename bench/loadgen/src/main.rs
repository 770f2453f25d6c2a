//! sse-loadgen: opens many SSE connections to a server that speaks the
//! benchmark's control protocol (see bench/peers/README.md), triggers a
//! burst or a fixed rate of events, and reports deliveries, completeness,
//! throughput and latency (from the send timestamp each event carries).
//!
//! It is deliberately lean per connection: one single-threaded runtime, one
//! small task and read buffer per connection, and an incremental parser that
//! decodes chunked framing and SSE `data:` lines without allocating per event.
//! Prints one JSON object on stdout. The soak's scenarios (`cycle`, `stall`)
//! live in [`soak`].

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod soak;

#[derive(Clone, Debug)]
struct Args {
    port: u16,
    /// Where /burst and /rate go (default: `port`). Another instance's port
    /// measures delivery across instances (through the Redis backplane).
    control_port: u16,
    clients: usize,
    /// Source addresses to spread connections over ([`source_addr`]).
    sources: u16,
    scenario: String,
    count: u64,
    size: u64,
    rate: u64,
    seconds: u64,
    timeout_s: u64,
    sendcost: u64,
    /// `idle`: a second RSS reading this long after the first, once the
    /// server has been idle a while (V8 collects the garbage of the
    /// connection storm only after some idle seconds).
    settle_s: u64,
    tls: bool,
    h2: bool,
    streams_per_conn: usize,
    /// `cycle`: connections to make, and how many at a time.
    cycles: u64,
    concurrency: usize,
    /// `stall`: how long to hold the stalled clients.
    hold_s: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        port: 0,
        control_port: 0,
        clients: 100,
        sources: 16,
        scenario: "burst".into(),
        count: 100,
        size: 128,
        rate: 20,
        seconds: 10,
        timeout_s: 60,
        sendcost: 0,
        settle_s: 0,
        tls: false,
        h2: false,
        streams_per_conn: 100,
        cycles: 1000,
        concurrency: 128,
        hold_s: 60,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--port" => a.port = v.parse().expect("--port"),
            "--control-port" => a.control_port = v.parse().expect("--control-port"),
            "--clients" => a.clients = v.parse().expect("--clients"),
            "--sources" => a.sources = v.parse().expect("--sources"),
            "--scenario" => a.scenario = v,
            "--count" => a.count = v.parse().expect("--count"),
            "--size" => a.size = v.parse().expect("--size"),
            "--rate" => a.rate = v.parse().expect("--rate"),
            "--seconds" => a.seconds = v.parse().expect("--seconds"),
            "--timeout-s" => a.timeout_s = v.parse().expect("--timeout-s"),
            "--sendcost" => a.sendcost = v.parse().expect("--sendcost"),
            "--settle-s" => a.settle_s = v.parse().expect("--settle-s"),
            "--tls" => {
                a.tls = true;
                i += 1;
                continue;
            }
            "--h2" => {
                a.h2 = true;
                i += 1;
                continue;
            }
            "--streams-per-conn" => a.streams_per_conn = v.parse().expect("--streams-per-conn"),
            "--cycles" => a.cycles = v.parse().expect("--cycles"),
            "--concurrency" => a.concurrency = v.parse().expect("--concurrency"),
            "--hold-s" => a.hold_s = v.parse().expect("--hold-s"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(a.port != 0, "--port is required");
    if a.control_port == 0 {
        a.control_port = a.port;
    }
    a
}

thread_local! {
    /// Whether the server speaks TLS (control requests too).
    static TLS: RefCell<bool> = const { RefCell::new(false) };
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Raises the open-file soft limit to the hard limit.
fn raise_nofile() -> u64 {
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur as u64
    }
}

/// Shared results, touched only from the single runtime thread.
#[derive(Default)]
struct Tally {
    received: u64,
    per_conn: Vec<u64>,
    latencies: Vec<u32>,
    last_us: u64,
    done_conns: usize,
    errors: u64,
    closed: usize,
}

/// Incremental decoder: HTTP/1.1 chunked framing, then SSE lines.
struct Parser {
    chunked: bool,
    state: Chunk,
    size: u64,
    line: Vec<u8>,
    line_len: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Chunk {
    Size,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
}

impl Parser {
    fn new(chunked: bool) -> Self {
        Parser {
            chunked,
            state: Chunk::Size,
            size: 0,
            line: Vec::with_capacity(32),
            line_len: 0,
        }
    }

    /// Feeds body bytes; calls `on_data(ts)` for every `data:` line.
    fn feed(&mut self, mut buf: &[u8], on_data: &mut impl FnMut(u64)) {
        if !self.chunked {
            self.sse(buf, on_data);
            return;
        }
        while !buf.is_empty() {
            match self.state {
                Chunk::Size => {
                    let b = buf[0];
                    buf = &buf[1..];
                    match b {
                        b'0'..=b'9' => self.size = self.size * 16 + u64::from(b - b'0'),
                        b'a'..=b'f' => self.size = self.size * 16 + u64::from(b - b'a' + 10),
                        b'A'..=b'F' => self.size = self.size * 16 + u64::from(b - b'A' + 10),
                        b'\r' => self.state = Chunk::SizeLf,
                        _ => {}
                    }
                }
                Chunk::SizeLf => {
                    buf = &buf[1..];
                    self.state = if self.size == 0 {
                        Chunk::Trailer
                    } else {
                        Chunk::Data
                    };
                }
                Chunk::Data => {
                    let n = (self.size as usize).min(buf.len());
                    let (data, rest) = buf.split_at(n);
                    self.sse(data, on_data);
                    self.size -= n as u64;
                    buf = rest;
                    if self.size == 0 {
                        self.state = Chunk::DataCr;
                    }
                }
                Chunk::DataCr => {
                    buf = &buf[1..];
                    self.state = Chunk::DataLf;
                }
                Chunk::DataLf => {
                    buf = &buf[1..];
                    self.state = Chunk::Size;
                }
                Chunk::Trailer => return,
            }
        }
    }

    /// SSE lines: only the first bytes of each line are kept (enough for the
    /// timestamp); line ends are found with memchr, so the padding of an
    /// event is skipped, not walked byte by byte.
    fn sse(&mut self, mut data: &[u8], on_data: &mut impl FnMut(u64)) {
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    self.keep(&data[..i]);
                    self.end_line(on_data);
                    data = &data[i + 1..];
                }
                None => {
                    self.keep(data);
                    return;
                }
            }
        }
    }

    fn keep(&mut self, part: &[u8]) {
        let room = 32usize.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        self.line_len += part.len();
    }

    fn end_line(&mut self, on_data: &mut impl FnMut(u64)) {
        if let Some(rest) = self.line.strip_prefix(b"data:") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            let mut ts = 0u64;
            for &d in rest {
                if !d.is_ascii_digit() {
                    break;
                }
                ts = ts * 10 + u64::from(d - b'0');
            }
            on_data(ts);
        }
        self.line.clear();
        self.line_len = 0;
    }
}

/// The `i`-th of `sources` loopback source addresses: 127.0.0.1, 127.0.0.2,
/// …, 127.0.0.250, 127.0.1.1, … (250 per third octet; never .0 or .255).
fn source_addr(i: usize, sources: u16) -> Ipv4Addr {
    let k = i % usize::from(sources.max(1));
    Ipv4Addr::new(127, 0, (k / 250) as u8, (1 + k % 250) as u8)
}

async fn connect(port: u16, source: Ipv4Addr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
    let stream = socket
        .connect(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))
        .await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Accepts any server certificate: the benchmark talks to its own server on
/// loopback with a throwaway self-signed certificate.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector(alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Sends the stream request over HTTP/1.1 and reads the response head.
async fn h1_open<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
) -> std::io::Result<(S, Vec<u8>, bool)> {
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        .await?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the response head"));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
            if !text.starts_with("http/1.1 200") {
                return Err(std::io::Error::other(format!(
                    "bad status: {}",
                    text.lines().next().unwrap_or("")
                )));
            }
            let chunked = text.contains("transfer-encoding: chunked");
            let rest = head[end + 4..].to_vec();
            return Ok((stream, rest, chunked));
        }
    }
}

/// Counts one received event for client `i`.
fn record(tally: &RefCell<Tally>, i: usize, expected: u64, count: &mut u64, ts: u64) {
    let now = now_us();
    let mut t = tally.borrow_mut();
    t.received += 1;
    t.per_conn[i] += 1;
    t.latencies
        .push(now.saturating_sub(ts).min(u32::MAX as u64) as u32);
    t.last_us = t.last_us.max(now);
    *count += 1;
    if *count == expected {
        t.done_conns += 1;
    }
}

/// One HTTP/1.1 client: open, then read and parse until the end.
async fn h1_client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    i: usize,
    expected: u64,
    buf_size: usize,
    tally: Rc<RefCell<Tally>>,
    ready: Rc<RefCell<usize>>,
) {
    let (mut stream, first, chunked) = match h1_open(stream).await {
        Ok(x) => x,
        Err(_) => {
            tally.borrow_mut().errors += 1;
            return;
        }
    };
    *ready.borrow_mut() += 1;
    let mut parser = Parser::new(chunked);
    let mut count = 0u64;
    let mut on_data = |ts: u64| record(&tally, i, expected, &mut count, ts);
    parser.feed(&first, &mut on_data);
    let mut buf = vec![0u8; buf_size];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => parser.feed(&buf[..n], &mut on_data),
        }
    }
    tally.borrow_mut().closed += 1;
}

/// One HTTP/2 connection carrying `streams` clients, numbered from `first`.
async fn h2_connection<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    io: S,
    first: usize,
    streams: usize,
    expected: u64,
    tally: Rc<RefCell<Tally>>,
    ready: Rc<RefCell<usize>>,
) {
    let Ok((client, connection)) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake::<_, bytes::Bytes>(io)
        .await
    else {
        tally.borrow_mut().errors += streams as u64;
        return;
    };
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    for i in first..first + streams {
        let mut client = client.clone();
        let tally = Rc::clone(&tally);
        let ready = Rc::clone(&ready);
        tokio::task::spawn_local(async move {
            let request = http::Request::get("https://127.0.0.1/events")
                .body(())
                .expect("request");
            let opened = async {
                client = client.ready().await?;
                let (response, _) = client.send_request(request, true)?;
                response.await
            };
            let response = match opened.await {
                Ok(r) if r.status() == 200 => r,
                _ => {
                    tally.borrow_mut().errors += 1;
                    return;
                }
            };
            *ready.borrow_mut() += 1;
            let mut body = response.into_body();
            let mut parser = Parser::new(false);
            let mut count = 0u64;
            let mut on_data = |ts: u64| record(&tally, i, expected, &mut count, ts);
            while let Some(chunk) = body.data().await {
                let Ok(chunk) = chunk else { break };
                let _ = body.flow_control().release_capacity(chunk.len());
                parser.feed(&chunk, &mut on_data);
            }
            tally.borrow_mut().closed += 1;
        });
    }
}

/// One plain HTTP request on a fresh connection; returns the body.
async fn control(port: u16, method: &str, path: &str) -> String {
    let tls = TLS.with(|t| *t.borrow());
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("control connect");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let mut out = Vec::new();
    if tls {
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut s = tls_connector(b"http/1.1")
            .connect(name, tcp)
            .await
            .expect("control tls");
        s.write_all(req.as_bytes()).await.expect("control write");
        let _ = s.read_to_end(&mut out).await;
    } else {
        let mut s = tcp;
        s.write_all(req.as_bytes()).await.expect("control write");
        s.read_to_end(&mut out).await.expect("control read");
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let body_start = text.find("\r\n\r\n").map(|i| i + 4).unwrap_or(0);
    let head = &text[..body_start];
    let body = &text[body_start..];
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut plain = Vec::new();
        let mut rest = body.as_bytes();
        loop {
            let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                break;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap_or("0").trim(), 16)
                    .unwrap_or(0);
            if size == 0 || rest.len() < eol + 2 + size {
                break;
            }
            plain.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 4 + size..];
        }
        String::from_utf8_lossy(&plain).into_owned()
    } else {
        body.to_owned()
    }
}

fn json_field(json: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let i = json.find(&pat)? + pat.len();
    let rest = json[i..].trim_start();
    let end = rest
        .find(|c: char| {
            !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+')
        })
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn sockstat_mem_pages() -> u64 {
    std::fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("TCP:")).and_then(|l| {
                l.split_whitespace()
                    .skip_while(|w| *w != "mem")
                    .nth(1)
                    .map(|v| v.parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let args = parse_args();
    let nofile = raise_nofile();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let out = match args.scenario.as_str() {
        "cycle" => local.block_on(&rt, soak::run_cycle(&args)),
        "stall" => local.block_on(&rt, soak::run_stall(&args)),
        _ => local.block_on(&rt, run(args.clone(), nofile)),
    };
    println!("{out}");
}

async fn run(args: Args, nofile: u64) -> String {
    TLS.with(|t| *t.borrow_mut() = args.tls);
    let tally = Rc::new(RefCell::new(Tally {
        per_conn: vec![0; args.clients],
        ..Tally::default()
    }));
    let expected_per_conn = match args.scenario.as_str() {
        "burst" => args.count,
        "rate" => args.rate * args.seconds,
        _ => 0,
    };
    let stats_before = control(args.port, "GET", "/stats").await;
    let sock_before = sockstat_mem_pages();
    let buf_size = if args.clients <= 1000 {
        64 * 1024
    } else {
        8 * 1024
    };

    // Connect in waves, spreading source addresses over 127.0.0.x.
    let connect_start = Instant::now();
    let open_failed;
    let sem = Rc::new(tokio::sync::Semaphore::new(256));
    let mut handles = Vec::with_capacity(args.clients);
    let ready = Rc::new(RefCell::new(0usize));
    let connections = if args.h2 {
        args.clients.div_ceil(args.streams_per_conn.max(1))
    } else {
        args.clients
    };
    let connector = args
        .tls
        .then(|| tls_connector(if args.h2 { b"h2" } else { b"http/1.1" }));
    for c in 0..connections {
        let source = source_addr(c, args.sources);
        let tally = Rc::clone(&tally);
        let sem = Rc::clone(&sem);
        let ready = Rc::clone(&ready);
        let port = args.port;
        let connector = connector.clone();
        let (h2, per) = (args.h2, args.streams_per_conn.max(1));
        let clients = args.clients;
        handles.push(tokio::task::spawn_local(async move {
            let permit = sem.acquire().await.expect("semaphore");
            let tcp = connect(port, source).await;
            let streams = if h2 { per.min(clients - c * per) } else { 1 };
            let Ok(tcp) = tcp else {
                tally.borrow_mut().errors += streams as u64;
                return;
            };
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            match (connector, h2) {
                (Some(connector), h2) => {
                    let Ok(tls) = connector.connect(name, tcp).await else {
                        tally.borrow_mut().errors += streams as u64;
                        return;
                    };
                    drop(permit);
                    if h2 {
                        h2_connection(tls, c * per, streams, expected_per_conn, tally, ready).await
                    } else {
                        h1_client(tls, c, expected_per_conn, buf_size, tally, ready).await
                    }
                }
                (None, true) => {
                    drop(permit);
                    h2_connection(tcp, c * per, streams, expected_per_conn, tally, ready).await
                }
                (None, false) => {
                    drop(permit);
                    h1_client(tcp, c, expected_per_conn, buf_size, tally, ready).await
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s.max(30));
    loop {
        let r = *ready.borrow();
        let e = tally.borrow().errors as usize;
        if r + e >= args.clients || Instant::now() > deadline {
            open_failed = e as u64;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = *ready.borrow();
    let connect_ms = connect_start.elapsed().as_secs_f64() * 1000.0;
    // Let the server register every stream.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut server_reply = String::new();
    let mut stats_after = String::new();
    let mut sendcost = String::new();
    let mut stats_settled = String::new();
    let t0 = now_us();
    match args.scenario.as_str() {
        "burst" => {
            server_reply = control(
                args.control_port,
                "POST",
                &format!("/burst?count={}&size={}", args.count, args.size),
            )
            .await;
            let end = Instant::now() + Duration::from_secs(args.timeout_s);
            while tally.borrow().done_conns < connected && Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        "rate" => {
            server_reply = control(
                args.control_port,
                "POST",
                &format!(
                    "/rate?rate={}&seconds={}&size={}",
                    args.rate, args.seconds, args.size
                ),
            )
            .await;
            tokio::time::sleep(Duration::from_secs(args.seconds + 3)).await;
        }
        "idle" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            stats_after = control(args.port, "GET", "/stats").await;
            if args.settle_s > 0 {
                tokio::time::sleep(Duration::from_secs(args.settle_s)).await;
                stats_settled = control(args.port, "GET", "/stats").await;
            }
            if args.sendcost > 0 {
                sendcost = control(
                    args.port,
                    "POST",
                    &format!("/sendcost?count={}&size={}", args.sendcost, args.size),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        other => panic!("unknown scenario {other}"),
    }
    let sock_after = sockstat_mem_pages();
    if stats_after.is_empty() {
        stats_after = control(args.port, "GET", "/stats").await;
    }
    let t = tally.borrow();
    let mut lat = t.latencies.clone();
    lat.sort_unstable();
    let expected = expected_per_conn * connected as u64;
    let duration_us = t.last_us.saturating_sub(t0).max(1);
    let complete = t
        .per_conn
        .iter()
        .filter(|&&c| c >= expected_per_conn)
        .count();
    let rss_before = json_field(&stats_before, "rss").unwrap_or(0.0);
    let rss_after = json_field(&stats_after, "rss").unwrap_or(0.0);
    let settled_per_conn = match json_field(&stats_settled, "rss") {
        Some(rss) if connected > 0 => (rss - rss_before) / connected as f64,
        _ => 0.0,
    };
    let per_conn = if connected > 0 {
        (rss_after - rss_before) / connected as f64
    } else {
        0.0
    };
    let kernel_per_conn = if connected > 0 {
        (sock_after.saturating_sub(sock_before) as f64 * 4096.0) / connected as f64
    } else {
        0.0
    };
    let server_json = if server_reply.trim_start().starts_with('{') {
        server_reply.trim().to_owned()
    } else {
        "null".to_owned()
    };
    let sendcost_json = if sendcost.trim_start().starts_with('{') {
        sendcost.trim().to_owned()
    } else {
        "null".to_owned()
    };
    format!(
        concat!(
            "{{\"scenario\":\"{}\",\"clients\":{},\"connected\":{},\"openFailed\":{},\"connectMs\":{:.0},\"nofile\":{},",
            "\"count\":{},\"size\":{},\"rate\":{},\"seconds\":{},",
            "\"expected\":{},\"delivered\":{},\"completeClients\":{},\"complete\":{},",
            "\"durationMs\":{:.1},\"deliveriesPerSec\":{:.0},",
            "\"latencyUs\":{{\"p50\":{},\"p99\":{},\"max\":{}}},",
            "\"rssBefore\":{},\"rssAfter\":{},\"rssPerConn\":{:.0},\"rssSettledPerConn\":{:.0},\"kernelPerConn\":{:.0},",
            "\"server\":{},\"sendcost\":{}}}"
        ),
        args.scenario, args.clients, connected, open_failed, connect_ms, nofile,
        args.count, args.size, args.rate, args.seconds,
        expected, t.received, complete, expected > 0 && t.received >= expected && complete == connected,
        duration_us as f64 / 1000.0,
        if expected > 0 { t.received as f64 / (duration_us as f64 / 1e6) } else { 0.0 },
        percentile(&lat, 0.5), percentile(&lat, 0.99), lat.last().copied().unwrap_or(0),
        rss_before, rss_after, per_conn, settled_per_conn, kernel_per_conn,
        server_json, sendcost_json,
    )
}
