//! What the TCP-level tests share: a raw HTTP/1.1 client that keeps every
//! byte it read, chunked decoding, and waiting with a deadline.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, Instant};

/// A raw client that keeps everything it has read.
pub struct Client {
    pub socket: TcpStream,
    pub raw: Vec<u8>,
}

impl Client {
    pub async fn get(addr: SocketAddr, path: &str) -> Client {
        Client::request(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")).await
    }

    pub async fn request(addr: SocketAddr, request: &str) -> Client {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        Client {
            socket,
            raw: Vec::new(),
        }
    }

    /// Reads until `raw` contains `needle` (panics after 5 s).
    pub async fn read_until(&mut self, needle: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !contains(&self.raw, needle) {
            let mut buf = [0u8; 65536];
            let n = timeout(deadline - Instant::now(), self.socket.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out waiting for {:?}; have {:?}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(&self.raw)
                    )
                })
                .unwrap();
            assert!(
                n > 0,
                "connection closed before {:?}",
                String::from_utf8_lossy(needle)
            );
            self.raw.extend_from_slice(&buf[..n]);
        }
    }

    /// Reads until the server closes the connection.
    pub async fn read_to_end(&mut self) {
        timeout(
            Duration::from_secs(10),
            self.socket.read_to_end(&mut self.raw),
        )
        .await
        .expect("server did not close the connection")
        .unwrap();
    }

    pub fn head(&self) -> String {
        let end = find(&self.raw, b"\r\n\r\n").expect("no complete head");
        String::from_utf8_lossy(&self.raw[..end]).into_owned()
    }

    /// The body with the chunked framing removed.
    pub fn body(&self) -> Vec<u8> {
        let start = find(&self.raw, b"\r\n\r\n").unwrap() + 4;
        dechunk(&self.raw[start..]).0
    }

    /// Whether the terminating zero-length chunk arrived.
    pub fn ended(&self) -> bool {
        let start = find(&self.raw, b"\r\n\r\n").unwrap() + 4;
        dechunk(&self.raw[start..]).1
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// Decodes `Transfer-Encoding: chunked`; returns the data and whether the last chunk was seen.
pub fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(raw, b"\r\n") else {
            return (out, false);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap(), 16).unwrap();
        if size == 0 {
            return (out, true);
        }
        if raw.len() < eol + 2 + size + 2 {
            return (out, false);
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        assert_eq!(&raw[eol + 2 + size..eol + 4 + size], b"\r\n");
        raw = &raw[eol + 4 + size..];
    }
}

pub async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(10)).await;
    }
}
