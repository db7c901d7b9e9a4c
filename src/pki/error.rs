//! What can go wrong with certificates and keys; every file error names the file.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PkiError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} is not valid PEM: {message}", path.display())]
    BadPem { path: PathBuf, message: String },
    #[error("{} holds a certificate that cannot be parsed: {message}", path.display())]
    BadCertificate { path: PathBuf, message: String },
    #[error("{} holds a private key that cannot be used: {message}", path.display())]
    BadKey { path: PathBuf, message: String },
    #[error("{} holds no private key; {what} must be imported together with its private key", path.display())]
    MissingKey { path: PathBuf, what: &'static str },
    #[error("the private key in {} does not belong to its certificate", path.display())]
    KeyMismatch { path: PathBuf },
    #[error("{} is not a CA certificate (its basic constraints do not allow issuing)", path.display())]
    NotCa { path: PathBuf },
    #[error("no certificate authority yet ({} does not exist): create one with `roost ca create` or import one", path.display())]
    NoAuthority { path: PathBuf },
    #[error("the certificate authority has no private key ({} does not exist), so it cannot issue certificates", path.display())]
    AuthorityCannotIssue { path: PathBuf },
    #[error("no server certificate yet ({} does not exist): create one with `roost server-cert create`", path.display())]
    NoServerCertificate { path: PathBuf },
    #[error("cannot create the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{name:?} is not a usable name: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error(
        "no client certificate matches {id:?} (give a name, a subject common name or a SHA-256 thumbprint)"
    )]
    UnknownClient { id: String },
    #[error("{id:?} matches {count} client certificates; give the SHA-256 thumbprint instead")]
    AmbiguousClient { id: String, count: usize },
    #[error("the client certificate {thumbprint} is already listed (as {name:?})")]
    DuplicateClient { thumbprint: String, name: String },
    #[error("{} already exists; remove it first or choose another directory", path.display())]
    Exists { path: PathBuf },
}
