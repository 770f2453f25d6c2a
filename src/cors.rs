//! Cross-origin access: which origins may open streams and call routes, and
//! the `Access-Control-Allow-*` headers that tell the browser so.
//!
//! `Access-Control-Allow-Origin: *` is only ever sent without credentials; with
//! credentials the request's own origin is echoed (and `Vary: Origin` set), as
//! the Fetch standard requires.

use crate::hooks::HookFuture;
use http::{header, HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;

/// Which origins are allowed.
#[derive(Clone)]
pub enum AllowOrigin {
    /// Every origin.
    Any,
    /// Exactly these origins (`scheme://host[:port]`).
    List(Vec<String>),
    /// Decided per origin by the application.
    Predicate(Arc<dyn Fn(String) -> HookFuture<bool> + Send + Sync>),
}

impl std::fmt::Debug for AllowOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowOrigin::Any => f.write_str("Any"),
            AllowOrigin::List(l) => f.debug_tuple("List").field(l).finish(),
            AllowOrigin::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}

/// The CORS policy.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Allowed origins.
    pub origin: AllowOrigin,
    /// Whether cookies and HTTP authentication may be sent (`withCredentials`).
    pub credentials: bool,
    /// How long a browser may cache a preflight answer, in seconds.
    pub max_age: u32,
}

/// How a request relates to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No `Origin` header: not a cross-origin request, nothing to add.
    SameOrigin,
    /// Allowed: add these headers to the response.
    Allowed(Vec<(HeaderName, HeaderValue)>),
    /// The origin is not allowed.
    Refused,
}

/// The methods a preflight answer allows (and what a bare `OPTIONS` to a
/// route lists in `Allow`): the application's routes may take any of them.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

impl Cors {
    /// Whether every response may say `Access-Control-Allow-Origin: *`:
    /// any origin, and no credentials (which never go with `*`). Then every
    /// response says it, whether the request has an `Origin` or not, as the
    /// `cors` middleware for Node does.
    pub fn is_public(&self) -> bool {
        matches!(self.origin, AllowOrigin::Any) && !self.credentials
    }

    /// Judges a request's `Origin`; the application's predicate may run here.
    pub async fn check(&self, headers: &HeaderMap) -> Result<Verdict, crate::hooks::HookError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(Verdict::SameOrigin);
        };
        let Ok(origin_text) = origin.to_str() else {
            return Ok(Verdict::Refused);
        };
        let allowed = match &self.origin {
            AllowOrigin::Any => true,
            AllowOrigin::List(list) => list.iter().any(|o| o == origin_text),
            AllowOrigin::Predicate(f) => f(origin_text.to_owned()).await?,
        };
        if !allowed {
            return Ok(Verdict::Refused);
        }
        let mut out = Vec::new();
        if self.is_public() {
            out.push((
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ));
        } else {
            out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
            out.push((header::VARY, HeaderValue::from_static("Origin")));
        }
        if self.credentials {
            out.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        Ok(Verdict::Allowed(out))
    }

    /// The extra headers of a preflight answer (`OPTIONS` with
    /// `Access-Control-Request-Method`), on top of [`Cors::check`]'s.
    pub fn preflight_headers(&self, request: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = vec![
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            ),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(self.max_age),
            ),
        ];
        if let Some(h) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            out.push((header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
        }
        out
    }
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(method: &http::Method, headers: &HeaderMap) -> bool {
    method == http::Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origin(o: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        h
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn any_origin_without_credentials_is_a_star() {
        let cors = Cors {
            origin: AllowOrigin::Any,
            credentials: false,
            max_age: 600,
        };
        let v = block_on(cors.check(&with_origin("http://a.test"))).unwrap();
        assert_eq!(
            v,
            Verdict::Allowed(vec![(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*")
            )])
        );
        assert_eq!(
            block_on(cors.check(&HeaderMap::new())).unwrap(),
            Verdict::SameOrigin
        );
    }

    #[test]
    fn only_any_origin_without_credentials_is_public() {
        let cors = |origin, credentials| Cors {
            origin,
            credentials,
            max_age: 600,
        };
        assert!(cors(AllowOrigin::Any, false).is_public());
        assert!(!cors(AllowOrigin::Any, true).is_public());
        assert!(!cors(AllowOrigin::List(vec!["http://a.test".into()]), false).is_public());
    }

    #[test]
    fn credentials_never_get_a_star() {
        let cors = Cors {
            origin: AllowOrigin::Any,
            credentials: true,
            max_age: 600,
        };
        let Verdict::Allowed(h) = block_on(cors.check(&with_origin("http://a.test"))).unwrap()
        else {
            panic!()
        };
        assert!(h.contains(&(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("http://a.test")
        )));
        assert!(h.contains(&(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true")
        )));
    }

    #[test]
    fn a_list_allows_only_its_origins() {
        let cors = Cors {
            origin: AllowOrigin::List(vec!["http://ok.test".into()]),
            credentials: false,
            max_age: 600,
        };
        assert!(matches!(
            block_on(cors.check(&with_origin("http://ok.test"))).unwrap(),
            Verdict::Allowed(_)
        ));
        assert_eq!(
            block_on(cors.check(&with_origin("http://evil.test"))).unwrap(),
            Verdict::Refused
        );
    }
}
