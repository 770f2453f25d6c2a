//! Binding the listening socket: `host:port` to a listener, or a
//! [`ListenError`] that says what failed.
//!
//! The error is the engine's own and means the same on every platform: an
//! I/O failure keeps the operating system's [`io::Error`] (its
//! [`source`](std::error::Error::source)), read through
//! [`io::ErrorKind`] where std classifies the error and through the
//! platform's constant where it does not (`EAFNOSUPPORT`).
//! Node's shape for it (`code: 'EADDRINUSE'`, `errno`, `syscall`, the message
//! in Node's words) is the binding's business (`crate::binding`).

use crate::backplane::ConnectError;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::{TcpListener, TcpSocket};

/// Why `listen` failed, and for which `host:port`.
///
/// Its `Display` is a complete sentence for people; programs read
/// [`ListenError::kind`] (and, for an I/O failure, the [`io::Error`] it
/// holds as its source).
#[derive(Debug)]
pub struct ListenError {
    /// The host that was asked for (`::` when none was: every interface).
    pub address: String,
    /// The port that was asked for.
    pub port: u16,
    /// What went wrong.
    pub kind: ListenErrorKind,
}

/// What went wrong in a [`ListenError`].
#[derive(Debug)]
pub enum ListenErrorKind {
    /// A socket call failed: the port is taken, no permission, no such
    /// address on this machine, … `syscall` names the step as Node does
    /// (`listen` for creating, binding and listening alike).
    Io {
        syscall: &'static str,
        source: io::Error,
    },
    /// The host name resolved to no address; `source` is the resolver's
    /// error, when it gave one (none when it answered with an empty list).
    HostNotFound { source: Option<io::Error> },
    /// `listen` was called before on this server (it may still be binding).
    AlreadyListening,
    /// The server is closed; it cannot listen again.
    Closed,
    /// `close` was called while the socket was being bound; nothing listens.
    ClosedWhileStarting,
    /// The Redis backplane could not be started, so no client is taken.
    BackplaneUnavailable(ConnectError),
}

impl ListenError {
    /// A failure of `kind` for `address:port`.
    pub(crate) fn new(address: &str, port: u16, kind: ListenErrorKind) -> Self {
        ListenError {
            address: address.to_owned(),
            port,
            kind,
        }
    }

    /// A socket call (`syscall`) that failed with `source`.
    pub(crate) fn io(source: io::Error, syscall: &'static str, address: &str, port: u16) -> Self {
        Self::new(address, port, ListenErrorKind::Io { syscall, source })
    }
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (address, port) = (&self.address, self.port);
        match &self.kind {
            ListenErrorKind::Io { syscall, source } => {
                write!(f, "{syscall} on {address}:{port} failed: {source}")
            }
            ListenErrorKind::HostNotFound {
                source: Some(source),
            } => {
                write!(f, "the host {address} was not found: {source}")
            }
            ListenErrorKind::HostNotFound { source: None } => {
                write!(f, "the host {address} was not found")
            }
            ListenErrorKind::AlreadyListening => {
                f.write_str("listen() was already called on this server")
            }
            ListenErrorKind::Closed => f.write_str("the server is closed and cannot listen again"),
            ListenErrorKind::ClosedWhileStarting => {
                f.write_str("the server was closed while it was starting to listen")
            }
            ListenErrorKind::BackplaneUnavailable(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ListenErrorKind::Io { source, .. } => Some(source),
            ListenErrorKind::HostNotFound { source } => source
                .as_ref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            ListenErrorKind::BackplaneUnavailable(e) => Some(e),
            ListenErrorKind::AlreadyListening
            | ListenErrorKind::Closed
            | ListenErrorKind::ClosedWhileStarting => None,
        }
    }
}

/// The platform's "address family not supported" error number, which std
/// has no [`io::ErrorKind`] for: `EAFNOSUPPORT` (97 on Linux, 47 on macOS
/// and the BSDs), `WSAEAFNOSUPPORT` (10047) on Windows.
#[cfg(unix)]
const EAFNOSUPPORT: Option<i32> = Some(libc::EAFNOSUPPORT);
#[cfg(windows)]
const EAFNOSUPPORT: Option<i32> = Some(10047);
#[cfg(not(any(unix, windows)))]
const EAFNOSUPPORT: Option<i32> = None;

/// Whether `error` says this machine does not support the address family
/// (a host without IPv6 asked for an IPv6 socket).
pub(crate) fn family_unavailable(error: &io::Error) -> bool {
    error.raw_os_error().is_some() && error.raw_os_error() == EAFNOSUPPORT
}

/// Whether a failure to bind one address says only that its family is
/// missing here (no IPv6), so the next candidate may still work; any other
/// failure (a port in use, no permission) is final.
fn try_next_family(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::AddrNotAvailable || family_unavailable(error)
}

/// Binds `host:port` with a `listen(2)` queue of `backlog`: a host name is
/// looked up; no host means every interface, IPv6 first, then IPv4 when
/// this machine has no IPv6.
pub(crate) async fn bind(
    port: u16,
    host: Option<&str>,
    backlog: u32,
) -> Result<TcpListener, ListenError> {
    let candidates: Vec<SocketAddr> = match host {
        None => vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        ],
        Some(h) => match h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match tokio::net::lookup_host((h, port)).await {
                Ok(addrs) => addrs.collect(),
                Err(e) => return Err(not_found(h, port, Some(e))),
            },
        },
    };
    let shown = host.unwrap_or("::");
    let mut first_error = None;
    for addr in candidates {
        match bind_one(addr, backlog) {
            Ok(l) => return Ok(l),
            Err(e) => {
                let next = try_next_family(&e);
                first_error.get_or_insert(ListenError::io(e, "listen", shown, port));
                if !next {
                    break;
                }
            }
        }
    }
    Err(first_error.unwrap_or_else(|| not_found(shown, port, None)))
}

fn not_found(host: &str, port: u16, source: Option<io::Error>) -> ListenError {
    ListenError::new(host, port, ListenErrorKind::HostNotFound { source })
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[cfg(any(unix, windows))]
    #[test]
    fn the_platforms_missing_family_error_moves_on_to_the_next_family() {
        #[cfg(unix)]
        let missing = io::Error::from_raw_os_error(libc::EAFNOSUPPORT);
        #[cfg(windows)]
        let missing = io::Error::from_raw_os_error(10047);
        assert!(family_unavailable(&missing));
        assert!(try_next_family(&missing));
        assert!(try_next_family(&io::Error::from(
            io::ErrorKind::AddrNotAvailable
        )));
    }

    #[test]
    fn a_port_in_use_or_a_refusal_is_final() {
        for kind in [io::ErrorKind::AddrInUse, io::ErrorKind::PermissionDenied] {
            let error = io::Error::from(kind);
            assert!(!family_unavailable(&error), "{kind:?}");
            assert!(!try_next_family(&error), "{kind:?}");
        }
        // A made-up error of no kind carries no OS number to mistake.
        assert!(!family_unavailable(&io::Error::other("no number")));
    }

    #[test]
    fn an_io_failure_keeps_the_os_error_as_its_source() {
        let error = ListenError::io(
            io::Error::from(io::ErrorKind::AddrInUse),
            "listen",
            "127.0.0.1",
            3000,
        );
        let source = error.source().expect("a source");
        let io = source.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(io.kind(), io::ErrorKind::AddrInUse);
        assert!(
            error
                .to_string()
                .starts_with("listen on 127.0.0.1:3000 failed: "),
            "{error}"
        );
    }

    #[test]
    fn the_state_errors_read_as_before_and_have_no_source() {
        let closed = ListenError::new("::", 0, ListenErrorKind::Closed);
        assert_eq!(
            closed.to_string(),
            "the server is closed and cannot listen again"
        );
        assert!(closed.source().is_none());
        let again = ListenError::new("::", 0, ListenErrorKind::AlreadyListening);
        assert_eq!(
            again.to_string(),
            "listen() was already called on this server"
        );
    }

    #[tokio::test]
    async fn a_port_in_use_is_an_io_failure_of_kind_addr_in_use() {
        let taken = bind(0, Some("127.0.0.1"), 16).await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let error = bind(port, Some("127.0.0.1"), 16).await.unwrap_err();
        assert_eq!((error.address.as_str(), error.port), ("127.0.0.1", port));
        match &error.kind {
            ListenErrorKind::Io { syscall, source } => {
                assert_eq!(*syscall, "listen");
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
                assert!(source.raw_os_error().is_some());
            }
            other => panic!("expected an I/O failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unknown_host_is_host_not_found() {
        let error = bind(0, Some("no-such-host.invalid"), 16).await.unwrap_err();
        assert!(
            matches!(error.kind, ListenErrorKind::HostNotFound { .. }),
            "{error:?}"
        );
        assert_eq!(error.address, "no-such-host.invalid");
    }
}
