//! `createServer(options)`: every option checked, with an error that names it.

use super::convert::{self, Bad, Res};
use super::hooks::{self, Callbacks};
use crate::backplane::{
    ClientCert, RedisOptions, RedisTls, RedisUrl, UrlError, DEFAULT_MAX_PENDING,
};
use crate::config::{Config, RESERVED_STREAM_HEADERS};
use crate::cors::{AllowOrigin, Cors};
use crate::static_files::StaticRoot;
use crate::tls::{Tls, TlsPem};
use napi::bindgen_prelude::*;
use napi::{Env, ValueType};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const OPTION_NAMES: &[&str] = &[
    "path",
    "static",
    "keepAlive",
    "retry",
    "headers",
    "history",
    "maxBufferedBytes",
    "stallTimeout",
    "channelsFromQuery",
    "firstComment",
    "onConnect",
    "onConnection",
    "onDisconnect",
    "onRequest",
    "onError",
    "cors",
    "maxConnections",
    "maxConnectionsPerIp",
    "headerTimeout",
    "maxHeaderBytes",
    "maxBodyBytes",
    "hookTimeout",
    "tls",
    "http2",
    "redis",
];

const P: &str = "createServer(): options";

/// `createServer(): options.<name>`, for messages.
fn what(name: &str) -> String {
    format!("{P}.{name}")
}

/// The options object, read one option at a time (`undefined` is absent).
struct Options<'a>(Object<'a>);

impl<'a> Options<'a> {
    fn get(&self, name: &str) -> Res<Option<Unknown<'a>>> {
        Ok(convert::field(&self.0, name)?)
    }
}

/// Reads the options object into the engine's configuration. The options
/// are read in a fixed order (the order of the groups below), so of
/// several bad ones the same one is always reported.
pub fn parse(env: &Env, options: Option<Unknown>) -> Res<Config> {
    let mut config = Config::default();
    let options = match options {
        Some(options) if !convert::is_nullish(&options)? => options,
        _ => {
            config.hooks = hooks::hooks(env, Callbacks::default())?;
            return Ok(config);
        }
    };
    let obj = convert::object(options, P)?;
    convert::check_keys(&obj, OPTION_NAMES, P)?;
    let opts = Options(obj);
    routing(&opts, &mut config)?;
    stream_format(&opts, &mut config)?;
    retention(&opts, &mut config)?;
    stream_start(&opts, &mut config)?;
    if let Some(v) = opts.get("cors")? {
        config.cors = Some(cors(env, v)?);
    }
    limits(&opts, &mut config)?;
    transport(&opts, &mut config)?;
    if let Some(v) = opts.get("redis")? {
        config.redis = Some(redis(v)?);
    }
    config.hooks = hooks::hooks(
        env,
        Callbacks {
            on_connect: opts.get("onConnect")?,
            on_request: opts.get("onRequest")?,
            on_connection: opts.get("onConnection")?,
            on_disconnect: opts.get("onDisconnect")?,
            on_error: opts.get("onError")?,
        },
    )?;
    Ok(config)
}

/// Which requests are streams (`path`) and where the others are served
/// from (`static`).
fn routing(opts: &Options, config: &mut Config) -> Res<()> {
    if let Some(path) = opts.get("path")? {
        config.paths = paths(path)?;
    }
    if let Some(dir) = opts.get("static")? {
        let dir = convert::string(dir, &what("static"))?;
        config.static_root = Some(StaticRoot::new(Path::new(&dir)).map_err(|e| {
            Bad::Type(format!(
                "{P}.static must be an existing directory: {dir}: {e}"
            ))
        })?);
    }
    Ok(())
}

/// What every stream carries besides events: heartbeats (`keepAlive`),
/// the `retry` hint, extra response `headers`.
fn stream_format(opts: &Options, config: &mut Config) -> Res<()> {
    if let Some(v) = opts.get("keepAlive")? {
        let ms = convert::count(v, &what("keepAlive"), "milliseconds")?;
        config.keep_alive = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(v) = opts.get("retry")? {
        config.retry = Some(convert::count(v, &what("retry"), "milliseconds")?);
    }
    if let Some(v) = opts.get("headers")? {
        config.headers = convert::headers(v, &what("headers"), RESERVED_STREAM_HEADERS)?
            .into_iter()
            .collect();
    }
    Ok(())
}

/// What is kept and for how long a client may lag: `history`,
/// `maxBufferedBytes`, `stallTimeout`.
fn retention(opts: &Options, config: &mut Config) -> Res<()> {
    if let Some(v) = opts.get("history")? {
        config.retention.history = convert::count(v, &what("history"), "events")? as usize;
    }
    if let Some(v) = opts.get("maxBufferedBytes")? {
        let n = convert::count(v, &what("maxBufferedBytes"), "bytes")?;
        if n == 0 {
            return Err(Bad::Range(format!(
                "{P}.maxBufferedBytes must be at least 1, got 0"
            )));
        }
        config.retention.max_buffered_bytes = n;
    }
    if let Some(v) = opts.get("stallTimeout")? {
        let ms = convert::count(v, &what("stallTimeout"), "milliseconds")?;
        config.retention.stall_timeout = (ms > 0).then(|| Duration::from_millis(ms));
    }
    Ok(())
}

/// How a stream starts: channels from the query (`channelsFromQuery`), a
/// `firstComment`.
fn stream_start(opts: &Options, config: &mut Config) -> Res<()> {
    if let Some(v) = opts.get("channelsFromQuery")? {
        config.channels_from_query = convert::boolean(v, &what("channelsFromQuery"))?;
    }
    if let Some(v) = opts.get("firstComment")? {
        config.first_comment = Some(convert::string(v, &what("firstComment"))?);
    }
    Ok(())
}

/// What one client or one request may take: connections (in all, per IP),
/// time and bytes for its head and body, time for the hooks.
fn limits(opts: &Options, config: &mut Config) -> Res<()> {
    if let Some(v) = opts.get("maxConnections")? {
        config.max_connections = Some(convert::count(v, &what("maxConnections"), "streams")?);
    }
    if let Some(v) = opts.get("maxConnectionsPerIp")? {
        config.max_connections_per_ip =
            Some(convert::count(v, &what("maxConnectionsPerIp"), "streams")?);
    }
    if let Some(v) = opts.get("headerTimeout")? {
        let ms = convert::count(v, &what("headerTimeout"), "milliseconds")?;
        config.header_timeout = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(v) = opts.get("maxHeaderBytes")? {
        let n = convert::count(v, &what("maxHeaderBytes"), "bytes")?;
        if n < 8192 {
            return Err(Bad::Range(format!(
                "{P}.maxHeaderBytes must be at least 8192, got {n}"
            )));
        }
        config.max_header_bytes = n as usize;
    }
    if let Some(v) = opts.get("maxBodyBytes")? {
        config.max_body_bytes = convert::count(v, &what("maxBodyBytes"), "bytes")? as usize;
    }
    if let Some(v) = opts.get("hookTimeout")? {
        let ms = convert::count(v, &what("hookTimeout"), "milliseconds")?;
        config.hook_timeout = (ms > 0).then(|| Duration::from_millis(ms));
    }
    Ok(())
}

/// How connections are spoken: HTTPS (`tls`), h2c (`http2`).
fn transport(opts: &Options, config: &mut Config) -> Res<()> {
    if let Some(v) = opts.get("tls")? {
        let pem = tls_pem(v, &what("tls"))?;
        config.tls =
            Some(Arc::new(Tls::new(&pem).map_err(|e| {
                Bad::Type(format!("{P}.tls.{}: {}", e.field, e.reason))
            })?));
    }
    if let Some(v) = opts.get("http2")? {
        config.http2 = convert::boolean(v, &what("http2"))?;
    }
    Ok(())
}

/// `{ cert, key, ca? }`, each PEM text or a Buffer of it (`ca` may be a list).
pub fn tls_pem(value: Unknown, what: &str) -> Res<TlsPem> {
    let obj = convert::object(value, what)?;
    convert::check_keys(&obj, &["cert", "key", "ca"], what)?;
    let required = |name: &str| -> Res<Vec<u8>> {
        match convert::field(&obj, name)? {
            Some(v) => pem(v, what, name),
            None => Err(Bad::Type(format!("{what}.{name} is required"))),
        }
    };
    let cert = required("cert")?;
    let key = required("key")?;
    let ca = match convert::field(&obj, "ca")? {
        None => Vec::new(),
        Some(v) => pem_list(v, what, "ca")?,
    };
    Ok(TlsPem { cert, key, ca })
}

/// `what.name`: PEM text, a string or a Buffer.
fn pem(v: Unknown, what: &str, name: &str) -> Res<Vec<u8>> {
    match v.get_type()? {
        ValueType::String => Ok(String::from_unknown(v)?.into_bytes()),
        ValueType::Object if v.is_buffer()? => Ok(BufferSlice::from_unknown(v)?.as_ref().to_vec()),
        _ => Err(Bad::Type(format!(
            "{what}.{name} must be PEM text (a string or a Buffer), got {}",
            convert::type_name(&v)
        ))),
    }
}

/// `what.name`: one PEM text or a list of them.
fn pem_list(v: Unknown, what: &str, name: &str) -> Res<Vec<Vec<u8>>> {
    if v.is_array()? {
        let arr = Object::from_unknown(v)?;
        (0..arr.get_array_length()?)
            .map(|i| {
                pem(
                    arr.get_element::<Unknown>(i)?,
                    what,
                    &format!("{name}[{i}]"),
                )
            })
            .collect()
    } else {
        Ok(vec![pem(v, what, name)?])
    }
}

/// `redis.tls`: `{ ca?, cert?, key?, servername? }`, PEM; `cert` and `key`
/// together or not at all.
fn redis_tls(value: Unknown, what: &str) -> Res<RedisTls> {
    let obj = convert::object(value, what)?;
    convert::check_keys(&obj, &["ca", "cert", "key", "servername"], what)?;
    let servername = convert::field(&obj, "servername")?
        .map(|v| convert::string(v, &format!("{what}.servername")))
        .transpose()?;
    let ca = match convert::field(&obj, "ca")? {
        None => None,
        Some(v) => Some(pem_list(v, what, "ca")?.join(&b"\n"[..])),
    };
    let cert = convert::field(&obj, "cert")?
        .map(|v| pem(v, what, "cert"))
        .transpose()?;
    let key = convert::field(&obj, "key")?
        .map(|v| pem(v, what, "key"))
        .transpose()?;
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Bad::Type(format!(
                "{what}.key is required with redis.tls.cert (a client certificate needs its key)"
            )))
        }
        (None, Some(_)) => {
            return Err(Bad::Type(format!(
                "{what}.cert is required with redis.tls.key (a client key needs its certificate)"
            )))
        }
    };
    Ok(RedisTls {
        ca,
        client,
        servername,
    })
}

/// `{ url, prefix?, maxPending?, tls? }`; the URL is parsed here (not reached:
/// that is `listen()`'s job), after the other two are checked.
fn redis(value: Unknown) -> Res<RedisOptions> {
    let what = format!("{P}.redis");
    let obj = convert::object(value, &what)?;
    convert::check_keys(&obj, &["url", "prefix", "maxPending", "tls"], &what)?;
    let url = match convert::field(&obj, "url")? {
        Some(v) => convert::string(v, &format!("{what}.url"))?,
        None => {
            return Err(Bad::Type(format!(
                "{what}.url is required (e.g. 'redis://127.0.0.1:6379')"
            )))
        }
    };
    let prefix = match convert::field(&obj, "prefix")? {
        Some(v) => {
            let p = convert::string(v, &format!("{what}.prefix"))?;
            if p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Bad::Type(format!(
                    "{what}.prefix must be a non-empty key prefix without spaces, got '{p}'"
                )));
            }
            p
        }
        None => "sse".to_owned(),
    };
    let max_pending = match convert::field(&obj, "maxPending")? {
        Some(v) => {
            let n = convert::count(v, &format!("{what}.maxPending"), "sends")?;
            if n == 0 {
                return Err(Bad::Range(format!(
                    "{what}.maxPending must be at least 1, got 0"
                )));
            }
            n as usize
        }
        None => DEFAULT_MAX_PENDING,
    };
    let tls = convert::field(&obj, "tls")?
        .map(|v| redis_tls(v, &format!("{what}.tls")))
        .transpose()?;
    let url = RedisUrl::parse_with_tls(&url, tls.as_ref()).map_err(|e| match e {
        UrlError::NotRedis(_) => Bad::Type(format!("{what}.url '{url}' {e}")),
        UrlError::TlsNeedsRediss => Bad::Type(format!(
            "{what}.tls needs a rediss:// URL (TLS to Redis); {what}.url is not one"
        )),
        UrlError::Tls(e) => Bad::Type(format!("{what}.tls.{}: {}", e.field, e.reason)),
    })?;
    Ok(RedisOptions {
        endpoint: url.into(),
        prefix,
        max_pending,
    })
}

fn paths(value: Unknown) -> Res<Vec<String>> {
    let one = |v: Unknown, what: &str| -> Res<String> {
        let p = convert::string(v, &format!("createServer(): {what}"))?;
        if !p.starts_with('/') || p.contains(['?', '#']) || p.chars().any(char::is_whitespace) {
            return Err(Bad::Type(format!(
                "createServer(): {what} must be a URL path starting with '/' (no query, no spaces), got '{p}'"
            )));
        }
        Ok(p)
    };
    if value.is_array()? {
        let arr = Object::from_unknown(value)?;
        let len = arr.get_array_length()?;
        if len == 0 {
            return Err(Bad::Type(format!("{P}.path must not be an empty array")));
        }
        (0..len)
            .map(|i| {
                one(
                    arr.get_element::<Unknown>(i)?,
                    &format!("options.path[{i}]"),
                )
            })
            .collect()
    } else {
        Ok(vec![one(value, "options.path")?])
    }
}

fn cors(env: &Env, value: Unknown) -> Res<Cors> {
    let what = format!("{P}.cors");
    let obj = convert::object(value, &what)?;
    convert::check_keys(&obj, &["origin", "credentials", "maxAge"], &what)?;
    let origin = match convert::field(&obj, "origin")? {
        None => AllowOrigin::Any,
        Some(o) => match o.get_type()? {
            ValueType::Function => hooks::origin_predicate(env, o)?,
            ValueType::String if String::from_unknown(o)? == "*" => AllowOrigin::Any,
            _ => {
                let list = convert::strings(o, &format!("{what}.origin"))?;
                for origin in &list {
                    if !(origin.starts_with("http://") || origin.starts_with("https://"))
                        || origin.ends_with('/')
                    {
                        return Err(Bad::Type(format!(
                            "{what}.origin entries must be origins like 'https://example.com' (scheme, host, optional port, no path), got '{origin}'"
                        )));
                    }
                }
                AllowOrigin::List(list)
            }
        },
    };
    let credentials = match convert::field(&obj, "credentials")? {
        None => false,
        Some(c) => convert::boolean(c, &format!("{what}.credentials"))?,
    };
    let max_age = match convert::field(&obj, "maxAge")? {
        None => 600,
        Some(v) => u32::try_from(convert::count(v, &format!("{what}.maxAge"), "seconds")?)
            .map_err(|_| Bad::Range(format!("{what}.maxAge is too large")))?,
    };
    Ok(Cors {
        origin,
        credentials,
        max_age,
    })
}
