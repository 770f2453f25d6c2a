//! Binding the listening socket: `host:port` to a listener, or an error in
//! the shape Node's own `listen` errors have.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::{TcpListener, TcpSocket};

/// What a failed `listen` reports, in the shape Node's own errors have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenError {
    /// Node's error code: `EADDRINUSE`, `EACCES`, `ENOTFOUND`, …
    pub code: &'static str,
    /// The failing call: `listen` or `getaddrinfo`.
    pub syscall: &'static str,
    /// The errno as Node reports it (negative), when there is one.
    pub errno: Option<i32>,
    /// The host that was asked for.
    pub address: String,
    /// The port that was asked for.
    pub port: u16,
    /// A message in Node's words: `listen EADDRINUSE: address already in use 127.0.0.1:3000`.
    pub message: String,
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ListenError {}

impl ListenError {
    pub(crate) fn from_io(
        err: &io::Error,
        syscall: &'static str,
        address: &str,
        port: u16,
    ) -> Self {
        let (code, text) = match err.raw_os_error() {
            Some(98) => ("EADDRINUSE", "address already in use"),
            Some(13) => ("EACCES", "permission denied"),
            Some(1) => ("EPERM", "operation not permitted"),
            Some(99) => ("EADDRNOTAVAIL", "address not available"),
            Some(97) => ("EAFNOSUPPORT", "address family not supported"),
            Some(22) => ("EINVAL", "invalid argument"),
            Some(24) => ("EMFILE", "too many open files"),
            _ => match err.kind() {
                io::ErrorKind::AddrInUse => ("EADDRINUSE", "address already in use"),
                io::ErrorKind::PermissionDenied => ("EACCES", "permission denied"),
                io::ErrorKind::AddrNotAvailable => ("EADDRNOTAVAIL", "address not available"),
                _ => ("ELISTEN", "could not listen"),
            },
        };
        ListenError {
            code,
            syscall,
            errno: err.raw_os_error().map(|e| -e),
            address: address.to_owned(),
            port,
            message: format!("{syscall} {code}: {text} {address}:{port}"),
        }
    }

    fn not_found(address: &str, port: u16) -> Self {
        ListenError {
            code: "ENOTFOUND",
            syscall: "getaddrinfo",
            errno: None,
            address: address.to_owned(),
            port,
            message: format!("getaddrinfo ENOTFOUND {address}"),
        }
    }

    pub(crate) fn state(code: &'static str, message: &str, address: &str, port: u16) -> Self {
        ListenError {
            code,
            syscall: "listen",
            errno: None,
            address: address.to_owned(),
            port,
            message: message.to_owned(),
        }
    }
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
                Err(_) => return Err(ListenError::not_found(h, port)),
            },
        },
    };
    let shown = host.unwrap_or("::");
    let mut first_error = None;
    for addr in candidates {
        match bind_one(addr, backlog) {
            Ok(l) => return Ok(l),
            Err(e) => {
                first_error.get_or_insert(ListenError::from_io(&e, "listen", shown, port));
                // Move on to the next address only when this one's family is
                // unavailable here (no IPv6); a port in use is final.
                let family_missing =
                    e.kind() == io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(97);
                if !family_missing {
                    break;
                }
            }
        }
    }
    Err(first_error.unwrap_or_else(|| ListenError::not_found(shown, port)))
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
