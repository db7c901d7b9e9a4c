//! Building the rustls server configuration at apply: the server certificate (made at the
//! first TLS start), the trusted roots (the configured CA and the operating system's) and the
//! client certificate rules.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{RootCertStore, ServerConfig};
use thiserror::Error;
use time::OffsetDateTime;

use super::TlsSetup;
use super::verifier::{ClientRules, Options};
use crate::config::Config;
use crate::pki::server::SignedBy;
use crate::pki::{PkiError, PkiPaths, authority, server};

#[derive(Debug, Error)]
pub enum TlsError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("cannot use the server certificate {path} and its key: {source}")]
    ServerCertificate {
        path: String,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot trust the CA certificate {path}: {message}")]
    Authority { path: String, message: String },
    #[error("preparing TLS was interrupted")]
    Interrupted,
}

/// A TLS setup ready to swap in, and what making it did.
#[derive(Debug)]
pub struct Prepared {
    pub setup: TlsSetup,
    /// The server certificate was made now (the first TLS start), and by whom.
    pub created: Option<SignedBy>,
}

/// The one crypto provider of roost: ring. Every cipher suite it offers is an ECDHE key
/// exchange with an AEAD cipher (AES-GCM, ChaCha20-Poly1305), TLS 1.2 and 1.3 only: no
/// static RSA key exchange, CBC, RC4 or SHA-1 MACs.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads (or, the first time, makes) the server certificate and builds the server
/// configuration with the client certificate rules of `config`. Reads files: run it off the
/// runtime thread.
pub fn prepare(config: &Config, now: OffsetDateTime) -> Result<Prepared, TlsError> {
    let paths = PkiPaths::new(&config.certificates, &config.persistence.data_dir);
    let (certificate, created) = server::ensure(&paths, &config.broker.tls.host_names, now)?;
    let provider = provider();
    let options = Options::from_settings(&config.broker.tls);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::ServerCertificate {
            path: paths.server_certificate.display().to_string(),
            source,
        })?;
    let builder = if options.required {
        let trusted = trusted_roots(&paths, &provider)?;
        let rules = ClientRules::new(options, trusted, &config.certificates.clients, &provider);
        builder.with_client_cert_verifier(Arc::new(rules))
    } else {
        // No client certificate is asked for (the seed: only "require client certificate"
        // and the two options that imply it make clients present one).
        builder.with_no_client_auth()
    };
    let server_config = builder
        .with_single_cert(certificate.chain, certificate.key)
        .map_err(|source| TlsError::ServerCertificate {
            path: paths.server_certificate.display().to_string(),
            source,
        })?;
    let not_after = SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(certificate.info.not_after.unix_timestamp().max(0) as u64);
    Ok(Prepared {
        setup: TlsSetup {
            server: Arc::new(server_config),
            server_not_after: not_after,
        },
        created,
    })
}

/// A WebPKI verifier for the configured CA and the system roots; `None` when no root is
/// trusted at all (then only "trust any matching authorized" can accept anyone).
fn trusted_roots(
    paths: &PkiPaths,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsError> {
    let mut roots = RootCertStore::empty();
    if let Some(authority) = authority::load(paths)? {
        roots
            .add(authority.certificate.clone())
            .map_err(|error| TlsError::Authority {
                path: paths.ca_certificate.display().to_string(),
                message: error.to_string(),
            })?;
    }
    for root in system_roots() {
        // A system root rustls cannot use is skipped, as every TLS library does.
        let _ = roots.add(root.clone());
    }
    if roots.is_empty() {
        return Ok(None);
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map(Some)
        .map_err(|error| TlsError::Authority {
            path: paths.ca_certificate.display().to_string(),
            message: error.to_string(),
        })
}

/// The operating system's trusted roots, read once per process.
fn system_roots() -> &'static [rustls::pki_types::CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::debug!(%error, "a system root certificate could not be read");
        }
        loaded.certs
    })
}
