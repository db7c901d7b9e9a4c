//! The client certificate rules of the configuration, as a rustls verifier.
//!
//! | require | authorized only | trust any matching authorized | a certificate is accepted when |
//! |---|---|---|---|
//! | off | off | off | none is asked for |
//! | on | off | off | a trusted CA issued it |
//! | any | on | off | a trusted CA issued it and it is listed Authorized |
//! | any | off | on | a trusted CA issued it, or it is listed Authorized |
//! | any | on | on | it is listed Authorized |
//!
//! "Authorized only" or "trust any matching authorized" without "require client certificate"
//! still require one. Whatever the options, a certificate listed Revoked, expired or not yet
//! valid is refused. "Trusted" means issued by the configured CA or by a root of the
//! operating system. An untrusted certificate accepted because it is listed still has to
//! prove its key: the handshake signature is checked as for any other.

use std::collections::HashSet;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use crate::config::{ClientCertificateStatus, TlsSettings};
use crate::pki::{CertificateInfo, sha256_hex};

/// Why a client certificate was refused, for the log and the client's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotAuthorized,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotAuthorized => f.write_str("not listed as an Authorized client certificate"),
        }
    }
}

impl std::error::Error for Refusal {}

/// The three options, as the rules read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub required: bool,
    pub authorized_only: bool,
    pub trust_any_authorized: bool,
}

impl Options {
    pub fn from_settings(tls: &TlsSettings) -> Options {
        Options {
            // Either of the other two means a certificate is needed.
            required: tls.require_client_certificate
                || tls.authorized_only
                || tls.trust_any_matching_authorized,
            authorized_only: tls.authorized_only,
            trust_any_authorized: tls.trust_any_matching_authorized,
        }
    }
}

/// The rules of [the module](self) over a WebPKI verifier for the trusted roots.
#[derive(Debug)]
pub struct ClientRules {
    options: Options,
    /// Verifies the chain up to a trusted root; `None` when no root is trusted at all.
    trusted: Option<Arc<dyn ClientCertVerifier>>,
    authorized: HashSet<String>,
    revoked: HashSet<String>,
    algorithms: WebPkiSupportedAlgorithms,
    hints: Vec<DistinguishedName>,
}

impl ClientRules {
    pub fn new(
        options: Options,
        trusted: Option<Arc<dyn ClientCertVerifier>>,
        clients: &[crate::config::ClientCertificate],
        provider: &CryptoProvider,
    ) -> ClientRules {
        let listed = |status| {
            clients
                .iter()
                .filter(|c| c.status == status)
                .map(|c| c.thumbprint.to_ascii_lowercase())
                .collect::<HashSet<_>>()
        };
        let hints = trusted
            .as_ref()
            .map(|verifier| verifier.root_hint_subjects().to_vec())
            .unwrap_or_default();
        ClientRules {
            options,
            trusted,
            authorized: listed(ClientCertificateStatus::Authorized),
            revoked: listed(ClientCertificateStatus::Revoked),
            algorithms: provider.signature_verification_algorithms,
            hints,
        }
    }

    fn decide(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        let thumbprint = sha256_hex(end_entity);
        // Revoked wins over everything, Authorized included.
        if self.revoked.contains(&thumbprint) {
            return Err(CertificateError::Revoked.into());
        }
        let info = CertificateInfo::parse(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let now_secs = now.as_secs() as i64;
        if now_secs < info.not_before.unix_timestamp() {
            return Err(CertificateError::NotValidYet.into());
        }
        if now_secs > info.not_after.unix_timestamp() {
            return Err(CertificateError::Expired.into());
        }
        let authorized = self.authorized.contains(&thumbprint);
        let trusted = match &self.trusted {
            Some(verifier) => verifier.verify_client_cert(end_entity, intermediates, now),
            None => Err(CertificateError::UnknownIssuer.into()),
        };
        match trusted {
            Ok(_) if self.options.authorized_only && !authorized => Err(not_authorized()),
            Ok(_) => Ok(()),
            Err(_) if self.options.trust_any_authorized && authorized => Ok(()),
            Err(error) => Err(error),
        }
    }
}

fn not_authorized() -> Error {
    Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        Refusal::NotAuthorized,
    ))))
}

impl ClientCertVerifier for ClientRules {
    fn offer_client_auth(&self) -> bool {
        self.options.required
    }

    fn client_auth_mandatory(&self) -> bool {
        self.options.required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.decide(end_entity, intermediates, now)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The refusal's reason in the operator's words.
pub fn describe(error: &Error) -> String {
    match error {
        Error::NoCertificatesPresented => "no client certificate presented".into(),
        Error::InvalidCertificate(reason) => match reason {
            CertificateError::Revoked => "the certificate is Revoked".into(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the certificate is not valid yet".into()
            }
            CertificateError::UnknownIssuer => {
                "the certificate was not issued by a trusted CA".into()
            }
            CertificateError::Other(other) => other.to_string(),
            other => format!("the certificate is invalid: {other:?}"),
        },
        other => other.to_string(),
    }
}

/// Whether a handshake error is a refused (or missing) client certificate.
pub fn is_certificate_refusal(error: &Error) -> bool {
    matches!(
        error,
        Error::NoCertificatesPresented | Error::InvalidCertificate(_)
    )
}
