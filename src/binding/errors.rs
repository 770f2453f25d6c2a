//! The engine's `listen` errors in the shape of Node's own.
//!
//! Node rejects a failed `server.listen()` with an `Error` that has `code`
//! (`'EADDRINUSE'`), `errno` (`-98` on Linux), `syscall` (`'listen'`),
//! `address`, `port`, and a message such as `listen EADDRINUSE: address
//! already in use 127.0.0.1:3000`. The engine reports a portable
//! [`ListenError`]; this is where it gets that shape:
//!
//! - the code is chosen from what the error *is*: its [`io::ErrorKind`]
//!   where std classifies it, the platform's own constant where std does not
//!   (`EAFNOSUPPORT`) or puts two in one kind (`EPERM` and `EACCES` are both
//!   `PermissionDenied`), never from Linux's numbers;
//! - `errno` is what Node reports: the operating system's number negated on
//!   Linux and macOS, libuv's own numbers on Windows (`-4091` for
//!   `EADDRINUSE`, not Winsock's 10048);
//! - the failures of this package's own (listening twice, closed, no Redis)
//!   get its `ERR_…` codes and the engine's sentence as the message.

use crate::bind::{family_unavailable, ListenError, ListenErrorKind};
use napi::bindgen_prelude::*;
use napi::{Env, JsValue};
use std::io;

/// A failed `listen` as Node reports one: what the JavaScript error gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeError {
    /// Node's code: `EADDRINUSE`, `EACCES`, `ENOTFOUND`, `ERR_SERVER_CLOSED`, …
    pub code: &'static str,
    /// The failing call: `listen` or `getaddrinfo`.
    pub syscall: &'static str,
    /// The OS error number, negative, when the failure has one.
    pub errno: Option<i32>,
    /// The host that was asked for.
    pub address: String,
    /// The port that was asked for.
    pub port: u16,
    /// Node's words: `listen EADDRINUSE: address already in use 127.0.0.1:3000`.
    pub message: String,
}

/// `e` in Node's shape.
pub(super) fn node_listen_error(e: &ListenError) -> NodeError {
    let (address, port) = (e.address.as_str(), e.port);
    let ours = |code| (code, "listen", None, e.to_string());
    let (code, syscall, errno, message) = match &e.kind {
        ListenErrorKind::Io { syscall, source } => {
            let (code, text) = io_code(source);
            let message = format!("{syscall} {code}: {text} {address}:{port}");
            let errno = node_errno(code, source);
            (code, *syscall, errno, message)
        }
        ListenErrorKind::HostNotFound { .. } => (
            "ENOTFOUND",
            "getaddrinfo",
            None,
            format!("getaddrinfo ENOTFOUND {address}"),
        ),
        ListenErrorKind::AlreadyListening => ours("ERR_SERVER_ALREADY_LISTEN"),
        ListenErrorKind::Closed | ListenErrorKind::ClosedWhileStarting => ours("ERR_SERVER_CLOSED"),
        ListenErrorKind::BackplaneUnavailable(_) => ours("ERR_REDIS_UNAVAILABLE"),
    };
    NodeError {
        code,
        syscall,
        errno,
        address: address.to_owned(),
        port,
        message,
    }
}

/// Node's `errno` for an error it reports as `code`: libuv's number, which
/// is the OS number negated except on Windows, where libuv has its own.
fn node_errno(code: &str, source: &io::Error) -> Option<i32> {
    let raw = source.raw_os_error()?;
    if cfg!(windows) {
        // uv-errno.h, UV__E* on Windows; an error Node has no name for
        // keeps its Winsock number.
        let uv = match code {
            "EACCES" => -4092,
            "EADDRINUSE" => -4091,
            "EADDRNOTAVAIL" => -4090,
            "EAFNOSUPPORT" => -4089,
            "EINVAL" => -4071,
            "EMFILE" => -4066,
            "EPERM" => -4048,
            _ => return raw.checked_neg(),
        };
        return Some(uv);
    }
    raw.checked_neg()
}

/// Error numbers std does not tell apart by [`io::ErrorKind`], on this
/// platform (`None` where the platform has no such error).
mod os {
    #[cfg(unix)]
    pub const EPERM: Option<i32> = Some(libc::EPERM);
    #[cfg(unix)]
    pub const EINVAL: Option<i32> = Some(libc::EINVAL);
    #[cfg(unix)]
    pub const EMFILE: Option<i32> = Some(libc::EMFILE);

    // Winsock's numbers (WSAEINVAL, WSAEMFILE); Windows sockets have no EPERM.
    #[cfg(windows)]
    pub const EPERM: Option<i32> = None;
    #[cfg(windows)]
    pub const EINVAL: Option<i32> = Some(10022);
    #[cfg(windows)]
    pub const EMFILE: Option<i32> = Some(10024);

    #[cfg(not(any(unix, windows)))]
    pub const EPERM: Option<i32> = None;
    #[cfg(not(any(unix, windows)))]
    pub const EINVAL: Option<i32> = None;
    #[cfg(not(any(unix, windows)))]
    pub const EMFILE: Option<i32> = None;
}

/// Whether `e` is the OS error `number` (never true for an error that
/// carries no number, nor for a platform without that error).
fn is_os(e: &io::Error, number: Option<i32>) -> bool {
    e.raw_os_error().is_some() && e.raw_os_error() == number
}

/// Node's code for a socket error, and its words for it.
fn io_code(e: &io::Error) -> (&'static str, &'static str) {
    if family_unavailable(e) {
        return ("EAFNOSUPPORT", "address family not supported");
    }
    match e.kind() {
        io::ErrorKind::AddrInUse => ("EADDRINUSE", "address already in use"),
        io::ErrorKind::PermissionDenied if is_os(e, os::EPERM) => {
            ("EPERM", "operation not permitted")
        }
        io::ErrorKind::PermissionDenied => ("EACCES", "permission denied"),
        io::ErrorKind::AddrNotAvailable => ("EADDRNOTAVAIL", "address not available"),
        _ if is_os(e, os::EINVAL) => ("EINVAL", "invalid argument"),
        _ if is_os(e, os::EMFILE) => ("EMFILE", "too many open files"),
        _ => ("ELISTEN", "could not listen"),
    }
}

/// The JavaScript error for a failed `listen`: an `Error` with `code`,
/// `syscall`, `address`, `port` and (when there is one) `errno`, as a napi
/// `Error` that rejects with exactly that object.
pub(super) fn listen_error(env: &Env, e: &ListenError) -> Error {
    let e = node_listen_error(e);
    let build = || -> Result<Error> {
        let mut obj = env.create_error(Error::new(Status::GenericFailure, e.message.clone()))?;
        obj.set_named_property("code", e.code)?;
        obj.set_named_property("syscall", e.syscall)?;
        obj.set_named_property("address", e.address.as_str())?;
        obj.set_named_property("port", u32::from(e.port))?;
        if let Some(errno) = e.errno {
            obj.set_named_property("errno", errno)?;
        }
        Ok(Error::from(obj.to_unknown()))
    };
    build().unwrap_or_else(|err| err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_failure(source: io::Error) -> NodeError {
        node_listen_error(&ListenError::io(source, "listen", "127.0.0.1", 3000))
    }

    fn of_kind(kind: ListenErrorKind) -> NodeError {
        node_listen_error(&ListenError::new("::", 8080, kind))
    }

    #[test]
    fn a_port_in_use_is_eaddrinuse_in_nodes_words() {
        let e = io_failure(io::Error::from(io::ErrorKind::AddrInUse));
        assert_eq!(e.code, "EADDRINUSE");
        assert_eq!(e.syscall, "listen");
        assert_eq!(
            e.message,
            "listen EADDRINUSE: address already in use 127.0.0.1:3000"
        );
        assert_eq!((e.address.as_str(), e.port), ("127.0.0.1", 3000));
        // An error without an OS number has no errno.
        assert_eq!(e.errno, None);
    }

    #[cfg(unix)]
    #[test]
    fn errno_is_the_os_number_negated_and_the_code_follows_the_kind() {
        let cases = [
            (libc::EADDRINUSE, "EADDRINUSE"),
            (libc::EACCES, "EACCES"),
            (libc::EPERM, "EPERM"),
            (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
            (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
            (libc::EINVAL, "EINVAL"),
            (libc::EMFILE, "EMFILE"),
            (libc::ENOBUFS, "ELISTEN"),
        ];
        for (number, code) in cases {
            let e = io_failure(io::Error::from_raw_os_error(number));
            assert_eq!(e.code, code, "errno {number}");
            assert_eq!(e.errno, Some(-number), "{code}");
            assert!(
                e.message.starts_with(&format!("listen {code}: ")),
                "{}",
                e.message
            );
        }
    }

    #[cfg(windows)]
    #[test]
    fn winsock_errors_get_nodes_codes() {
        for (number, code, uv) in [
            (10048, "EADDRINUSE", -4091),
            (10013, "EACCES", -4092),
            (10049, "EADDRNOTAVAIL", -4090),
            (10047, "EAFNOSUPPORT", -4089),
        ] {
            let e = io_failure(io::Error::from_raw_os_error(number));
            assert_eq!(e.code, code, "error {number}");
            assert_eq!(e.errno, Some(uv), "libuv's number, as Node gives it");
        }
    }

    #[test]
    fn made_up_errors_map_by_kind() {
        let denied = io_failure(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(denied.code, "EACCES");
        let missing = io_failure(io::Error::from(io::ErrorKind::AddrNotAvailable));
        assert_eq!(missing.code, "EADDRNOTAVAIL");
        let other = io_failure(io::Error::other("strange"));
        assert_eq!(other.code, "ELISTEN");
        assert_eq!(
            other.message,
            "listen ELISTEN: could not listen 127.0.0.1:3000"
        );
    }

    #[test]
    fn an_unknown_host_is_enotfound_from_getaddrinfo() {
        let e = of_kind(ListenErrorKind::HostNotFound { source: None });
        assert_eq!(
            (e.code, e.syscall, e.errno),
            ("ENOTFOUND", "getaddrinfo", None)
        );
        assert_eq!(e.message, "getaddrinfo ENOTFOUND ::");
    }

    #[test]
    fn the_packages_own_failures_get_its_codes_and_the_engines_words() {
        let again = of_kind(ListenErrorKind::AlreadyListening);
        assert_eq!(again.code, "ERR_SERVER_ALREADY_LISTEN");
        assert_eq!(again.message, "listen() was already called on this server");
        assert_eq!((again.syscall, again.errno), ("listen", None));
        assert_eq!((again.address.as_str(), again.port), ("::", 8080));
        let closed = of_kind(ListenErrorKind::Closed);
        assert_eq!(closed.code, "ERR_SERVER_CLOSED");
        assert_eq!(
            closed.message,
            "the server is closed and cannot listen again"
        );
        let raced = of_kind(ListenErrorKind::ClosedWhileStarting);
        assert_eq!(raced.code, "ERR_SERVER_CLOSED");
        assert_eq!(
            raced.message,
            "the server was closed while it was starting to listen"
        );
    }
}
