//! What is on disk behind the certificate paths of the config: missing, unreadable, or a PEM
//! file with so many certificates and perhaps a private key. Checked by the runtime, shown by
//! the certificate nodes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Missing,
    Unreadable(String),
    Pem {
        bytes: u64,
        certificates: usize,
        private_key: bool,
        /// SHA-256 of the first certificate, lowercase hex (what `y` copies).
        thumbprint: Option<String>,
    },
}

impl std::fmt::Display for FileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileState::Missing => f.write_str("file not found"),
            FileState::Unreadable(reason) => write!(f, "unreadable: {reason}"),
            FileState::Pem {
                bytes,
                certificates,
                private_key,
                ..
            } => {
                let mut parts = Vec::new();
                match certificates {
                    0 => {}
                    1 => parts.push("1 certificate".to_string()),
                    n => parts.push(format!("{n} certificates")),
                }
                if *private_key {
                    parts.push("private key".to_string());
                }
                if parts.is_empty() {
                    parts.push("no PEM blocks".to_string());
                }
                write!(f, "{} ({bytes} bytes)", parts.join(" + "))
            }
        }
    }
}

/// The state of the CA and server certificate files: those the config names, else those of
/// the data directory.
pub fn inspect_all(config: &Config) -> BTreeMap<PathBuf, FileState> {
    let paths = crate::pki::PkiPaths::new(&config.certificates, &config.persistence.data_dir);
    [
        paths.ca_certificate,
        paths.ca_private_key,
        paths.server_certificate,
        paths.server_private_key,
    ]
    .into_iter()
    .map(|path| {
        let state = inspect(&path);
        (path, state)
    })
    .collect()
}

/// Reads one file and counts its PEM blocks.
pub fn inspect(path: &Path) -> FileState {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let thumbprint = CertificateDer::pem_slice_iter(&bytes)
                .next()
                .and_then(Result::ok)
                .map(|certificate| crate::pki::sha256_hex(&certificate));
            FileState::Pem {
                bytes: bytes.len() as u64,
                certificates: text.matches("-----BEGIN CERTIFICATE-----").count(),
                private_key: text.contains("PRIVATE KEY-----"),
                thumbprint,
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => FileState::Missing,
        Err(err) => FileState::Unreadable(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_pem_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.pem");
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n";
        std::fs::write(&path, format!("{cert}{cert}{key}")).unwrap();
        let state = inspect(&path);
        assert!(matches!(
            state,
            FileState::Pem {
                certificates: 2,
                private_key: true,
                ..
            }
        ));
        assert!(
            state
                .to_string()
                .starts_with("2 certificates + private key")
        );
        assert_eq!(inspect(&dir.path().join("none.pem")), FileState::Missing);
    }

    #[test]
    fn configured_paths_win_over_the_data_directory() {
        let mut config = Config::default();
        config.persistence.data_dir = PathBuf::from("/nonexistent/data");
        config.certificates.ca_certificate = Some(PathBuf::from("/nonexistent/ca.pem"));
        let states = inspect_all(&config);
        assert_eq!(states.len(), 4);
        assert_eq!(
            states.get(Path::new("/nonexistent/ca.pem")),
            Some(&FileState::Missing)
        );
        assert!(states.contains_key(Path::new("/nonexistent/data/certificates/server.key")));
    }
}
