//! TLS: certificates from PEM, ALPN offering `h2` and `http/1.1`, and a
//! configuration that can be replaced while the server runs (rotated
//! certificates), each new handshake using the newest one.
//!
//! rustls with the `ring` provider; nothing here panics on bad input: every
//! problem is a [`TlsError`] that names the field (`cert`, `key`, `ca`).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// A refused certificate or key, with the field it came from. The PEM
/// parser's or rustls's error, when one of them refused it, is the
/// [`source`](std::error::Error::source) (its text is in `reason` too).
#[derive(Debug, Clone)]
pub struct TlsError {
    /// `cert`, `key` or `ca`.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TlsError {
    /// `field` refused for `reason`, found by the check that failed with `source`.
    pub(crate) fn caused(
        field: &'static str,
        reason: String,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        TlsError {
            field,
            reason,
            source: Some(Arc::new(source)),
        }
    }
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tls.{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// PEM text (or bytes) for a certificate chain and its key.
#[derive(Debug, Clone, Default)]
pub struct TlsPem {
    /// The server certificate, optionally followed by its chain.
    pub cert: Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Vec<u8>,
    /// Intermediate certificates to send after `cert`.
    pub ca: Vec<Vec<u8>>,
}

/// The server's TLS settings; [`Tls::reload`] swaps them atomically.
pub struct Tls {
    current: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls { .. }")
    }
}

impl Tls {
    /// Checks and loads `pem`.
    pub fn new(pem: &TlsPem) -> Result<Self, TlsError> {
        Ok(Tls {
            current: RwLock::new(Arc::new(build(pem)?)),
        })
    }

    /// Replaces the certificate and key for every handshake from now on;
    /// connections already open keep theirs. On error nothing changes.
    pub fn reload(&self, pem: &TlsPem) -> Result<(), TlsError> {
        let config = Arc::new(build(pem)?);
        *crate::sync::write_lock(&self.current) = config;
        Ok(())
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&crate::sync::read_lock(&self.current)))
    }
}

/// The certificates in `pem` (at least one), refused as `field` otherwise.
pub(crate) fn certs(
    field: &'static str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| TlsError::caused(field, format!("not valid PEM: {e}"), e))?;
    if certs.is_empty() {
        return Err(TlsError {
            field,
            reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) found".into(),
            source: None,
        });
    }
    Ok(certs)
}

/// The private key in `pem`, checked to be usable and to belong to
/// `chain` (named `cert_name` in the message); refused as `key` otherwise.
pub(crate) fn key_for(
    chain: &[CertificateDer<'static>],
    pem: &[u8],
    cert_name: &str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        TlsError::caused("key", format!("no usable PEM private key found ({e})"), e)
    })?;
    // A key that belongs to another certificate would only fail in the
    // handshake, every time: refuse it here instead.
    let signing_key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::caused("key", format!("unsupported private key: {e}"), e))?;
    rustls::sign::CertifiedKey::new(chain.to_vec(), signing_key)
        .keys_match()
        .map_err(|e| TlsError::caused("key", format!("does not match {cert_name} ({e})"), e))?;
    Ok(key)
}

/// Trust roots from `pem` (refused as `ca` when none is usable as one).
pub(crate) fn roots(pem: &[u8]) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certs("ca", pem)? {
        store
            .add(cert)
            .map_err(|e| TlsError::caused("ca", format!("not a usable CA certificate: {e}"), e))?;
    }
    Ok(store)
}

fn build(pem: &TlsPem) -> Result<ServerConfig, TlsError> {
    let mut chain = certs("cert", &pem.cert)?;
    for ca in &pem.ca {
        chain.extend(certs("ca", ca)?);
    }
    let key = key_for(&chain, &pem.key, "tls.cert")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::caused("cert", e.to_string(), e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::caused("cert", e.to_string(), e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn pem(cert: &[u8], key: &[u8]) -> TlsPem {
        TlsPem {
            cert: cert.to_vec(),
            key: key.to_vec(),
            ca: Vec::new(),
        }
    }

    #[test]
    fn bad_pem_names_the_field_and_keeps_the_parsers_error_as_source() {
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let error = Tls::new(&pem(broken, b"")).unwrap_err();
        assert_eq!(error.field, "cert");
        assert!(error.reason.starts_with("not valid PEM: "), "{error}");
        assert!(error.source().is_some());
    }

    #[test]
    fn a_missing_certificate_is_refused_without_a_source() {
        let error = Tls::new(&pem(b"", b"")).unwrap_err();
        assert_eq!(error.field, "cert");
        assert_eq!(
            error.to_string(),
            "tls.cert: no PEM certificate (-----BEGIN CERTIFICATE-----) found"
        );
        assert!(error.source().is_none());
    }
}
