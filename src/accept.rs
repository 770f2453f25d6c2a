//! The accept pipeline: from a listening socket to served connections.
//!
//! Each accepted connection's first request head is read here; a stream
//! request is served without hyper ([`crate::direct`]), TLS and everything
//! else go to hyper, supervised ([`crate::connection`]). When told to stop,
//! the loop closes the hub and shuts every connection down within the grace
//! period.

use crate::connection::{ConnState, Ended, Shutdown, Supervised};
use crate::direct::{response_head, DirectStream};
use crate::http1::{encode_final, error_answer, read_head, Opening};
use crate::io::{shutdown_write, CountingIo, Prefixed};
use crate::routes::{is_stream_path, refuse_malformed, route, stream_request, Outcome};
use crate::shared::Shared;
use crate::tls::Tls;
use hyper::server::conn::http1;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Accepts until told to stop, then shuts every connection down gracefully.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let shutdown = Arc::new(Shutdown::default());
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(shared.config.max_header_bytes);
    // The first request head is read (and timed, 408) before hyper sees the
    // connection; later heads on a kept-alive connection get hyper's timer.
    builder.header_read_timeout(shared.config.header_timeout);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new()).max_concurrent_streams(1000);
    let builder = Arc::new(Builders { h1: builder, h2 });
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    // Events are small and latency matters more than packet count.
                    let _ = socket.set_nodelay(true);
                    connections.spawn(serve_socket(
                        socket,
                        peer,
                        Arc::clone(&shared),
                        Arc::clone(&shutdown),
                        Arc::clone(&builder),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors or a transient network error:
                    // back off instead of spinning, and keep serving.
                    if !is_connection_error(&e) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }
    drop(listener);
    shared.hub().close();
    shutdown.start();
    // Each connection closes itself within the grace period; this is the backstop.
    let grace = shared.config.shutdown_grace + Duration::from_secs(1);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        connections.shutdown().await;
    }
}

/// Serves one connection: its first request head is read here; a request for
/// a stream path is served directly (no hyper, see [`crate::direct`]), any
/// other goes to hyper with the bytes already read.
///
/// This future lives as long as the connection, and a future is as large as
/// its largest state. So the short-lived first phase ([`prepare`]) is boxed
/// and gone once the stream runs: an idle stream carries only its own state
/// (a few hundred bytes), not the request parsing or the connect hook.
async fn serve_socket(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Arc<Shutdown>,
    builder: Arc<Builders>,
) {
    match Box::pin(prepare(socket, peer, shared, shutdown, builder)).await {
        Next::Direct(stream) => {
            stream.await;
        }
        Next::Hyper(conn) => {
            conn.await;
        }
        Next::Done => {}
    }
}

/// What a connection becomes once its first request head is read. (The
/// direct stream is kept inline on purpose: it is what lives on.)
#[allow(clippy::large_enum_variant)]
enum Next {
    /// A stream served without hyper.
    Direct(DirectStream),
    /// Everything else: hyper, supervised.
    Hyper(std::pin::Pin<Box<dyn std::future::Future<Output = Ended> + Send>>),
    /// Answered (or failed) already.
    Done,
}

/// hyper's connection settings, shared by every connection.
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

async fn prepare(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Arc<Shutdown>,
    builder: Arc<Builders>,
) -> Next {
    let config = &shared.config;
    if let Some(tls) = &config.tls {
        return prepare_tls(socket, peer, &shared, shutdown, &builder, tls).await;
    }
    let head = tokio::select! {
        head = read_head(&socket, config.max_header_bytes, config.header_timeout, config.http2) => head,
        _ = shutdown.wait() => return Next::Done,
    };
    let first = match head {
        Ok(Opening::Http1(first)) => first,
        Ok(Opening::Http2(raw)) => {
            let (state, io) = counted(socket, raw.freeze());
            return serve_hyper(io, true, &shared, state, peer, shutdown, &builder);
        }
        Err(e) => {
            if let Some(answer) = error_answer(&e) {
                // Best effort: the client may not be reading either.
                let _ = socket.try_write(answer);
                let _ = shutdown_write(&socket);
            }
            return Next::Done;
        }
    };
    if is_stream_path(&shared, first.parts.uri.path()) {
        let state = Arc::new(ConnState::default());
        let version = first.parts.version;
        let head_only = first.parts.method == http::Method::HEAD;
        // hyper is not here to refuse a request it could not frame.
        let outcome = match refuse_malformed(&shared, &first.parts) {
            Some(answer) => Outcome::Reply(answer),
            None => stream_request(&first.parts, &shared, &state, peer, None).await,
        };
        return match outcome {
            Outcome::Reply(response) => {
                let bytes = encode_final(response, version, head_only);
                let _ =
                    tokio::time::timeout(config.shutdown_grace, write_all(&socket, &bytes)).await;
                let _ = shutdown_write(&socket);
                Next::Done
            }
            Outcome::Stream(started) => {
                let (head, chunked) = response_head(started.response, version);
                Next::Direct(DirectStream::new(
                    socket,
                    head,
                    started.stream,
                    state,
                    chunked,
                ))
            }
        };
    }
    let (state, io) = counted(socket, first.raw.freeze());
    serve_hyper(io, false, &shared, state, peer, shutdown, &builder)
}

/// A connection for hyper: its state, and its socket counting what it
/// writes, with `prefix` (what was read while looking at the first request
/// head) read first.
fn counted(socket: TcpStream, prefix: bytes::Bytes) -> (Arc<ConnState>, Prefixed<CountingIo>) {
    let state = Arc::new(ConnState::default());
    let io = CountingIo::new(socket, Arc::clone(&state.progress));
    (state, Prefixed::new(prefix, io))
}

/// A TLS connection: handshake (bounded by the header timeout), then HTTP/2
/// or HTTP/1.1 as ALPN decided, both through hyper.
async fn prepare_tls(
    socket: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    shutdown: Arc<Shutdown>,
    builder: &Arc<Builders>,
    tls: &Tls,
) -> Next {
    let (state, io) = counted(socket, bytes::Bytes::new());
    let handshake = tls.acceptor().accept(io);
    let limit = shared
        .config
        .header_timeout
        .unwrap_or(Duration::from_secs(30));
    let stream = tokio::select! {
        s = tokio::time::timeout(limit, handshake) => s,
        _ = shutdown.wait() => return Next::Done,
    };
    let Ok(Ok(stream)) = stream else {
        return Next::Done;
    };
    let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    serve_hyper(stream, http2, shared, state, peer, shutdown, builder)
}

/// Hands a connection to hyper, HTTP/2 or HTTP/1.1, supervised.
fn serve_hyper<I>(
    io: I,
    http2: bool,
    shared: &Arc<Shared>,
    state: Arc<ConnState>,
    peer: SocketAddr,
    shutdown: Arc<Shutdown>,
    builder: &Builders,
) -> Next
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    state
        .progress
        .multiplexed
        .store(http2, std::sync::atomic::Ordering::Relaxed);
    let service = {
        let (shared, state) = (Arc::clone(shared), Arc::clone(&state));
        service_fn(move |req| route(req, Arc::clone(&shared), Arc::clone(&state), peer))
    };
    let grace = shared.config.shutdown_grace;
    let io = TokioIo::new(io);
    Next::Hyper(if http2 {
        let conn = builder.h2.serve_connection(io, service);
        Box::pin(Supervised::new(conn, state, shutdown, grace))
    } else {
        let conn = builder.h1.serve_connection(io, service);
        Box::pin(Supervised::new(conn, state, shutdown, grace))
    })
}

async fn write_all(socket: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        socket.writable().await?;
        match socket.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    /// What an idle stream costs is mostly this future: keep it small (the
    /// benchmark's target is 4 KiB of RSS per idle connection in all).
    #[tokio::test]
    async fn a_connection_future_stays_small() {
        use super::*;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (s, _) = listener.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        let socket = TcpStream::from_std(s).unwrap();
        let server = crate::server::Server::new(crate::config::Config::default());
        let fut = serve_socket(
            socket,
            addr,
            server.shared(),
            Arc::new(Shutdown::default()),
            Arc::new(Builders {
                h1: http1::Builder::new(),
                h2: http2::Builder::new(TokioExecutor::new()),
            }),
        );
        assert!(
            std::mem::size_of_val(&fut) <= 1024,
            "{}",
            std::mem::size_of_val(&fut)
        );
        assert!(std::mem::size_of::<DirectStream>() <= 320);
        drop(c);
    }
}
