//! Where the certificate files live: `certificates/` in the data directory unless the config
//! names other files.

use std::path::{Path, PathBuf};

use crate::config::CertificateSettings;

/// The directory under the data directory that holds the certificate files.
pub const CERTIFICATES_DIR: &str = "certificates";

/// The four files of the CA and the server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    pub ca_certificate: PathBuf,
    pub ca_private_key: PathBuf,
    pub server_certificate: PathBuf,
    pub server_private_key: PathBuf,
}

impl PkiPaths {
    /// The configured paths, or the defaults under `data_dir`.
    pub fn new(settings: &CertificateSettings, data_dir: &Path) -> PkiPaths {
        let dir = data_dir.join(CERTIFICATES_DIR);
        let pick = |configured: &Option<PathBuf>, default: &str| {
            configured.clone().unwrap_or_else(|| dir.join(default))
        };
        PkiPaths {
            ca_certificate: pick(&settings.ca_certificate, "ca.crt"),
            ca_private_key: pick(&settings.ca_private_key, "ca.key"),
            server_certificate: pick(&settings.server_certificate, "server.crt"),
            server_private_key: pick(&settings.server_private_key, "server.key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_live_in_the_data_directory_and_configured_paths_win() {
        let mut settings = CertificateSettings::default();
        let paths = PkiPaths::new(&settings, Path::new("/var/lib/roost"));
        assert_eq!(
            paths.ca_private_key,
            Path::new("/var/lib/roost/certificates/ca.key")
        );
        settings.server_certificate = Some(PathBuf::from("/etc/roost/server.pem"));
        let paths = PkiPaths::new(&settings, Path::new("/var/lib/roost"));
        assert_eq!(paths.server_certificate, Path::new("/etc/roost/server.pem"));
        assert_eq!(
            paths.server_private_key,
            Path::new("/var/lib/roost/certificates/server.key")
        );
    }
}
