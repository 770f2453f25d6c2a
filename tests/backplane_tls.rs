//! The backplane over TLS (`rediss://`): a throwaway CA and certificates
//! made with the `openssl` CLI, a redis-server of the test's own listening
//! only on a TLS port (stopped by its PID), two engines through it. A
//! server the CA given does not vouch for, or whose certificate names
//! another host, fails `listen()`; a Redis that checks its clients takes a
//! client certificate.

use hyper_sse::backplane::{ClientCert, RedisOptions, RedisTls, RedisUrl, DEFAULT_MAX_PENDING};
use hyper_sse::bind::ListenErrorKind;
use hyper_sse::config::Config;
use hyper_sse::event::Event;
use hyper_sse::server::Server;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{wait_for, Client};

/// PEM files in a temporary directory, removed when dropped.
struct Pki {
    dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the openssl CLI is needed");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA (`<ca>.crt`/`.key`) and, signed by it, `server.crt` for
/// localhost/127.0.0.1 and `client.crt`; `other-ca.crt` signs nothing here.
fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!(
        "hyper-sse-redis-tls-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = Pki { dir };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    for ca in ["ca", "other-ca"] {
        let (crt, key) = (format!("{ca}.crt"), format!("{ca}.key"));
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
        args.extend(ec);
        args.extend([
            "-keyout",
            &key,
            "-out",
            &crt,
            "-subj",
            "/CN=hyper-sse test CA",
        ]);
        args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(&pki.dir, &args);
    }
    std::fs::write(
        pki.path("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(pki.path("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for leaf in ["server", "client"] {
        let (crt, key, csr, ext) = (
            format!("{leaf}.crt"),
            format!("{leaf}.key"),
            format!("{leaf}.csr"),
            format!("{leaf}.ext"),
        );
        let mut args = vec!["req", "-nodes"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
        openssl(&pki.dir, &args);
        openssl(
            &pki.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
        );
    }
    pki
}

/// A redis-server listening only on a TLS port of 127.0.0.1 and
/// 127.0.0.2; killed by its PID when dropped.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn tls_redis(pki: &Pki, auth_clients: bool) -> TlsRedis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "127.0.0.2"])
        .args(["--tls-cert-file", &pki.arg("server.crt")])
        .args(["--tls-key-file", &pki.arg("server.key")])
        .args(["--tls-ca-cert-file", &pki.arg("ca.crt")])
        .args([
            "--tls-auth-clients",
            if auth_clients { "yes" } else { "no" },
        ])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (with TLS, as Debian's) is needed");
    let own = TlsRedis { child, port };
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return own;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("redis-server did not start on TLS port {port}");
}

fn tls(ca: Option<Vec<u8>>, client: Option<(&Pki, &str)>) -> RedisTls {
    RedisTls {
        ca,
        client: client.map(|(pki, name)| ClientCert {
            cert: pki.read(&format!("{name}.crt")),
            key: pki.read(&format!("{name}.key")),
        }),
        servername: None,
    }
}

fn server(url: &str, tls: &RedisTls, prefix: &str) -> Server {
    Server::new(Config {
        keep_alive: None,
        redis: Some(RedisOptions {
            endpoint: RedisUrl::parse_with_tls(url, Some(tls)).unwrap().into(),
            prefix: prefix.to_owned(),
            max_pending: DEFAULT_MAX_PENDING,
        }),
        ..Config::default()
    })
}

async fn instance(url: &str, tls: &RedisTls, prefix: &str) -> (Arc<Server>, SocketAddr) {
    let server = Arc::new(server(url, tls, prefix));
    let addr = server.listen(0, Some("127.0.0.1")).await.unwrap();
    (server, addr)
}

/// A send on one instance reaches a client of the other, through Redis.
async fn fan_out(url: &str, tls: &RedisTls) {
    let prefix = format!("tls-{}", std::process::id());
    let (a, _) = instance(url, tls, &prefix).await;
    let (b, b_addr) = instance(url, tls, &prefix).await;
    let mut client = Client::get(b_addr, "/events").await;
    client.read_until(b"\r\n\r\n").await;
    wait_for("the stream on B", || b.stats().connections == 1).await;
    a.send(Event::message("over tls"), &[]).unwrap();
    a.flush().await.unwrap();
    client.read_until(b"data: over tls\n\n").await;
    a.close().await;
    b.close().await;
}

/// `listen()`'s error for `url`, which must be the backplane's.
async fn listen_error(url: &str, tls: &RedisTls) -> String {
    let server = server(url, tls, "refused");
    let error = tokio::time::timeout(Duration::from_secs(15), server.listen(0, Some("127.0.0.1")))
        .await
        .expect("listen() to give up within 15 s")
        .unwrap_err();
    assert!(
        matches!(error.kind, ListenErrorKind::BackplaneUnavailable(_)),
        "{error:?}"
    );
    assert_eq!(server.local_addr(), None);
    error.to_string()
}

#[tokio::test]
async fn a_send_reaches_the_other_instance_over_rediss_with_the_ca_given() {
    let pki = pki();
    let redis = tls_redis(&pki, false).await;
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    fan_out(&url, &tls(Some(pki.read("ca.crt")), None)).await;
}

#[tokio::test]
async fn listen_fails_naming_the_certificate_when_the_ca_does_not_vouch_for_redis() {
    let pki = pki();
    let redis = tls_redis(&pki, false).await;
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    for settings in [tls(None, None), tls(Some(pki.read("other-ca.crt")), None)] {
        let error = listen_error(&url, &settings).await;
        assert!(
            error.starts_with(&format!("cannot connect to Redis at {url}")),
            "{error}"
        );
        // "…: the TLS handshake failed (…): invalid peer certificate: UnknownIssuer"
        assert!(error.contains("TLS handshake"), "{error}");
        assert!(
            error.contains("check redis.tls and the host of redis.url"),
            "{error}"
        );
        assert!(error.contains("invalid peer certificate"), "{error}");
    }
}

#[tokio::test]
async fn listen_fails_when_the_certificate_names_another_host() {
    let pki = pki();
    let redis = tls_redis(&pki, false).await;
    // Redis listens on 127.0.0.2 too, but its certificate does not name it.
    let url = format!("rediss://127.0.0.2:{}", redis.port);
    let error = listen_error(&url, &tls(Some(pki.read("ca.crt")), None)).await;
    assert!(error.contains("TLS handshake"), "{error}");
    assert!(
        error.contains("not valid for name \"127.0.0.2\""),
        "{error}"
    );
}

#[tokio::test]
async fn a_servername_is_checked_instead_of_the_urls_host() {
    let pki = pki();
    let redis = tls_redis(&pki, false).await;
    // 127.0.0.2 is not in the certificate; the name given is.
    let url = format!("rediss://127.0.0.2:{}", redis.port);
    let named = |name: &str| RedisTls {
        servername: Some(name.to_owned()),
        ..tls(Some(pki.read("ca.crt")), None)
    };
    fan_out(&url, &named("localhost")).await;
    let error = listen_error(&url, &named("redis.elsewhere")).await;
    assert!(error.contains("TLS handshake"), "{error}");
    assert!(
        error.contains("not valid for name \"redis.elsewhere\""),
        "{error}"
    );
}

#[tokio::test]
async fn a_redis_that_checks_its_clients_takes_a_client_certificate() {
    let pki = pki();
    let redis = tls_redis(&pki, true).await;
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let error = listen_error(&url, &tls(Some(pki.read("ca.crt")), None)).await;
    assert!(
        error.starts_with(&format!("cannot connect to Redis at {url}")),
        "{error}"
    );
    // "…: the TLS handshake failed (…): received fatal alert: CertificateRequired"
    assert!(error.contains("TLS handshake"), "{error}");
    fan_out(&url, &tls(Some(pki.read("ca.crt")), Some((&pki, "client")))).await;
}
