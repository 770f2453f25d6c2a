//! The `redis` option: where Redis is, what the keys are called, how many
//! sends may wait; checked at `createServer`, before anything connects.
//!
//! Parse, don't validate: a [`RedisOptions`] holds a [`RedisUrl`], and the
//! only way to get one is to parse it ([`RedisUrl::parse`]), which builds
//! the Redis client there and then. So whoever builds the options (the
//! binding from JavaScript values, a Rust caller by hand) meets a bad URL as
//! a [`UrlError`] at that moment, and a backplane made from the options
//! cannot fail to make its client.

use std::str::FromStr;

/// The most sends waiting for Redis by default; past it `send()` throws.
pub const DEFAULT_MAX_PENDING: usize = 100_000;

/// How to reach Redis and what to call things there.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Where Redis is: for one node, `redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` (TLS) or `unix:///path`, parsed (with its TLS settings,
    /// if any).
    pub endpoint: super::Endpoint,
    /// Prefix of every key (default `sse`), so several applications can share one Redis.
    pub prefix: String,
    /// Sends allowed to wait while Redis is unreachable.
    pub max_pending: usize,
}

/// TLS settings for a `rediss://` URL, as PEM. Without them (or with
/// neither field set) the system's trust roots check the server and no
/// client certificate is sent.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// Trust roots that replace the system's (a private CA), PEM.
    pub ca: Option<Vec<u8>>,
    /// A client certificate, for a Redis that checks its clients
    /// (`tls-auth-clients yes`).
    pub client: Option<ClientCert>,
    /// The name to check in Redis's certificate (and to send as SNI) when
    /// it is not the URL's host: Redis reached by an IP address or an
    /// internal alias whose certificate names the service.
    pub servername: Option<String>,
}

/// A client certificate chain and its private key, PEM.
#[derive(Clone)]
pub struct ClientCert {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.as_ref().map(|_| "<pem>"))
            .field("client", &self.client.as_ref().map(|_| "<cert and key>"))
            .field("servername", &self.servername)
            .finish()
    }
}

/// A Redis URL the Redis client accepted: connecting to it may still fail,
/// building a client for it no longer can. Its `Debug` and `Display` show
/// the URL without its password.
#[derive(Clone)]
pub struct RedisUrl {
    client: redis::Client,
    /// With `servername`, the client's host is that name (so TLS checks it)
    /// and this resolves it to the URL's real host.
    resolver: Option<ServerName>,
    /// The URL as given, password replaced by `***`.
    shown: String,
}

impl RedisUrl {
    /// Parses `url` without connecting; a `rediss://` URL trusts the
    /// system's roots and sends no client certificate.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        RedisUrl::parse_with_tls(url, None)
    }

    /// Parses `url` without connecting, with `tls` for a `rediss://` URL.
    /// The certificates and key are checked here (a key must belong to its
    /// certificate), so a bad one is an error now rather than at connect.
    /// `tls` with any other scheme is [`UrlError::TlsNeedsRediss`].
    pub fn parse_with_tls(url: &str, tls: Option<&RedisTls>) -> Result<Self, UrlError> {
        let client = redis::Client::open(url).map_err(UrlError::NotRedis)?;
        let secure = matches!(
            client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        );
        let mut resolver = None;
        let client = match tls {
            Some(_) if !secure => return Err(UrlError::TlsNeedsRediss),
            Some(tls) if tls.ca.is_some() || tls.client.is_some() || tls.servername.is_some() => {
                if let Some(ca) = &tls.ca {
                    crate::tls::roots(ca).map_err(UrlError::Tls)?;
                }
                if let Some(ClientCert { cert, key }) = &tls.client {
                    let chain = crate::tls::certs("cert", cert).map_err(UrlError::Tls)?;
                    crate::tls::key_for(&chain, key, "redis.tls.cert").map_err(UrlError::Tls)?;
                }
                let certs = redis::TlsCertificates {
                    client_tls: tls.client.as_ref().map(|c| redis::ClientTlsConfig {
                        client_cert: c.cert.clone(),
                        client_key: c.key.clone(),
                    }),
                    root_cert: tls.ca.clone(),
                };
                let mut info = client.get_connection_info().clone();
                if let Some(name) = &tls.servername {
                    let (redirect, addr) = ServerName::new(name, info.addr())?;
                    info = info.set_addr(addr);
                    resolver = Some(redirect);
                }
                redis::Client::build_with_tls(info, certs).map_err(UrlError::NotRedis)?
            }
            _ => client,
        };
        Ok(RedisUrl {
            client,
            resolver,
            shown: redact(url),
        })
    }

    /// The URL for messages: as given, without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether connections to this URL use TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        matches!(
            self.client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        )
    }

    /// A client for this URL (cheap: a client holds only what to connect to).
    pub(crate) fn client(&self) -> redis::Client {
        self.client.clone()
    }

    /// `config` as connections to this URL need it: with `servername`, the
    /// resolver that finds the URL's real host behind the name.
    pub(crate) fn configure(
        &self,
        config: redis::AsyncConnectionConfig,
    ) -> redis::AsyncConnectionConfig {
        match &self.resolver {
            Some(resolver) => config.set_dns_resolver(resolver.clone()),
            None => config,
        }
    }
}

/// `servername` without a TLS setting of redis-rs's own: the client is
/// told to connect to the name (so rustls checks it and sends it as SNI),
/// and this resolver answers for the name with the URL's real host.
#[derive(Debug, Clone)]
struct ServerName {
    name: String,
    host: String,
}

impl ServerName {
    /// The resolver, and `addr` with its host replaced by `name`.
    fn new(
        name: &str,
        addr: &redis::ConnectionAddr,
    ) -> Result<(Self, redis::ConnectionAddr), UrlError> {
        let redis::ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            tls_params,
        } = addr
        else {
            return Err(UrlError::TlsNeedsRediss);
        };
        if let Err(e) = rustls::pki_types::ServerName::try_from(name.to_owned()) {
            return Err(UrlError::Tls(crate::tls::TlsError::caused(
                "servername",
                format!("'{name}' is not a host name or an IP address"),
                e,
            )));
        }
        let redirect = ServerName {
            name: name.to_owned(),
            host: host.trim_matches(['[', ']']).to_owned(),
        };
        let addr = redis::ConnectionAddr::TcpTls {
            host: name.to_owned(),
            port: *port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        };
        Ok((redirect, addr))
    }
}

impl redis::io::AsyncDNSResolver for ServerName {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        host: &'b str,
        port: u16,
    ) -> redis::RedisFuture<'a, Box<dyn Iterator<Item = std::net::SocketAddr> + Send + 'a>> {
        let host = if host == self.name { &self.host } else { host };
        Box::pin(async move {
            let found = tokio::net::lookup_host((host, port)).await?;
            Ok(Box::new(found) as Box<dyn Iterator<Item = _> + Send>)
        })
    }
}

impl FromStr for RedisUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        RedisUrl::parse(url)
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.shown).finish()
    }
}

impl std::fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Why a Redis URL (or its TLS settings) was refused. Its `Display` reads
/// after the URL (`'redis:/x' is not a Redis URL (…)`), as `createServer`
/// reports it.
#[derive(Debug, Clone)]
pub enum UrlError {
    /// Not a URL the Redis client understands; its error is the source.
    NotRedis(redis::RedisError),
    /// TLS settings were given for a URL that is not `rediss://`.
    TlsNeedsRediss,
    /// A TLS certificate or key was refused; the field it names is that of
    /// [`RedisTls`] (`ca`, `cert`, `key`, `servername`).
    Tls(crate::tls::TlsError),
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::NotRedis(e) => write!(f, "is not a Redis URL ({e})"),
            UrlError::TlsNeedsRediss => {
                f.write_str("is not rediss://, and TLS settings need a rediss:// URL")
            }
            UrlError::Tls(e) => write!(f, "has TLS settings that were refused: {e}"),
        }
    }
}

impl std::error::Error for UrlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UrlError::NotRedis(e) => Some(e),
            UrlError::TlsNeedsRediss => None,
            UrlError::Tls(e) => Some(e),
        }
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let auth = &url[scheme + 3..at];
            match auth.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn a_parsed_url_shows_no_password_even_in_debug() {
        let url: RedisUrl = "redis://u:secret@127.0.0.1:6379/0".parse().unwrap();
        assert_eq!(url.shown(), "redis://u:***@127.0.0.1:6379/0");
        assert_eq!(url.to_string(), url.shown());
        assert!(!format!("{url:?}").contains("secret"));
    }

    #[test]
    fn a_url_that_is_not_redis_is_refused_with_the_clients_error_as_source() {
        let error = RedisUrl::parse("http://127.0.0.1:6379").unwrap_err();
        assert!(matches!(error, UrlError::NotRedis(_)));
        assert!(error.to_string().starts_with("is not a Redis URL ("));
        let source = error.source().expect("a source");
        assert!(source.is::<redis::RedisError>());
    }

    #[test]
    fn a_rediss_url_is_accepted_with_or_without_tls_settings() {
        assert!(RedisUrl::parse("rediss://h:6380").unwrap().is_tls());
        assert!(!RedisUrl::parse("redis://h").unwrap().is_tls());
        let none = RedisTls::default();
        assert!(RedisUrl::parse_with_tls("rediss://h", Some(&none))
            .unwrap()
            .is_tls());
    }

    #[test]
    fn tls_settings_need_a_rediss_url() {
        let error = RedisUrl::parse_with_tls("redis://h", Some(&RedisTls::default())).unwrap_err();
        assert!(matches!(error, UrlError::TlsNeedsRediss));
        assert!(error.source().is_none());
    }

    #[test]
    fn bad_pem_is_refused_naming_the_field() {
        let bad_ca = RedisTls {
            ca: Some(b"not pem".to_vec()),
            ..RedisTls::default()
        };
        match RedisUrl::parse_with_tls("rediss://h", Some(&bad_ca)).unwrap_err() {
            UrlError::Tls(e) => assert_eq!(e.field, "ca"),
            other => panic!("{other:?}"),
        }
        let bad_cert = RedisTls {
            ca: None,
            client: Some(ClientCert {
                cert: b"not pem".to_vec(),
                key: Vec::new(),
            }),
            ..RedisTls::default()
        };
        match RedisUrl::parse_with_tls("rediss://h", Some(&bad_cert)).unwrap_err() {
            UrlError::Tls(e) => assert_eq!(e.field, "cert"),
            other => panic!("{other:?}"),
        }
        let bad_name = RedisTls {
            servername: Some("not a name!".into()),
            ..RedisTls::default()
        };
        match RedisUrl::parse_with_tls("rediss://h", Some(&bad_name)).unwrap_err() {
            UrlError::Tls(e) => assert_eq!(e.field, "servername"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_servername_is_the_host_tls_checks_and_resolves_to_the_urls_host() {
        let tls = RedisTls {
            servername: Some("redis.internal".into()),
            ..RedisTls::default()
        };
        let url = RedisUrl::parse_with_tls("rediss://:pw@10.0.0.5:6380/2", Some(&tls)).unwrap();
        match url.client().get_connection_info().addr() {
            redis::ConnectionAddr::TcpTls { host, port, .. } => {
                assert_eq!((host.as_str(), *port), ("redis.internal", 6380))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(url.client().get_connection_info().redis_settings().db(), 2);
        assert_eq!(url.shown(), "rediss://:***@10.0.0.5:6380/2");
        let resolver = url.resolver.as_ref().unwrap();
        assert_eq!(resolver.host, "10.0.0.5");
    }
}
