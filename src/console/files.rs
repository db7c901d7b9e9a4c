//! What is on disk behind the certificate paths of the config: missing, unreadable, or a PEM
//! file with so many certificates and perhaps a private key. Checked by the runtime, shown by
//! the certificate nodes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Missing,
    Unreadable(String),
    Pem {
        bytes: u64,
        certificates: usize,
        private_key: bool,
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

/// The state of every certificate and key file the config names.
pub fn inspect_all(config: &Config) -> BTreeMap<PathBuf, FileState> {
    let c = &config.certificates;
    [
        &c.ca_certificate,
        &c.ca_private_key,
        &c.server_certificate,
        &c.server_private_key,
    ]
    .into_iter()
    .flatten()
    .map(|path| (path.clone(), inspect(path)))
    .collect()
}

/// Reads one file and counts its PEM blocks.
pub fn inspect(path: &Path) -> FileState {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            FileState::Pem {
                bytes: bytes.len() as u64,
                certificates: text.matches("-----BEGIN CERTIFICATE-----").count(),
                private_key: text.contains("PRIVATE KEY-----"),
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
    fn only_configured_paths_are_inspected() {
        let mut config = Config::default();
        assert!(inspect_all(&config).is_empty());
        config.certificates.ca_certificate = Some(PathBuf::from("/nonexistent/ca.pem"));
        let states = inspect_all(&config);
        assert_eq!(states.len(), 1);
        assert_eq!(states.values().next(), Some(&FileState::Missing));
    }
}
