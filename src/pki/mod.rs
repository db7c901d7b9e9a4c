//! Certificates and keys: the certificate authority, the server certificate and the client
//! certificates of the configuration, with the same code behind the console, the command line
//! (`roost ca|server-cert|client-cert`) and the broker's TLS listener.
//!
//! - [`paths`]: where the files live (the data directory's `certificates/`, or the paths the
//!   config names);
//! - [`files`]: reading PEM with errors that name the file, writing temp-then-rename with
//!   private keys at mode 0600;
//! - [`info`]: what a certificate says (subject, SANs, validity, thumbprints), via `x509-parser`;
//! - [`authority`], [`server`], [`clients`]: the three sets of actions;
//! - [`issue`]: key pairs and certificates made with `rcgen`.
//!
//! Private keys are written only into files, never into the configuration.

pub mod authority;
pub mod clients;
pub mod commands;
mod error;
pub mod files;
pub mod info;
pub mod issue;
pub mod paths;
pub mod server;

pub use self::error::PkiError;
pub use self::info::{CertificateInfo, sha1_hex, sha256_hex};
pub use self::paths::{CERTIFICATES_DIR, PkiPaths};
