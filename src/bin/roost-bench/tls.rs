//! The generator's TLS client: rustls with ring, the crypto provider the broker uses, trusting
//! the CA certificates of one PEM file and presenting a client certificate when given one.
//!
//! Certificate and key files are read with the library's PEM readers ([`roost::pki::files`]),
//! so the generator accepts exactly the files `roost ca export` and `roost client-cert issue`
//! write.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::BenchError;

/// What a TLS client is given on the command line.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM file of the CA certificate(s) the broker's certificate must chain to.
    pub ca_file: PathBuf,
    /// Client certificate and its key, for brokers that require one.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The name the server certificate must be valid for; the host connected to by default.
    pub server_name: String,
}

/// A ready TLS client configuration and the name the broker's certificate is checked against.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Reads the files and builds the client configuration (TLS 1.2 and 1.3).
    pub fn new(files: &TlsFiles) -> Result<TlsClient, BenchError> {
        let mut roots = RootCertStore::empty();
        for certificate in roost::pki::files::read_certificates(&files.ca_file)? {
            roots.add(certificate).map_err(|source| BenchError::Tls {
                context: format!("cannot trust {}", files.ca_file.display()),
                source,
            })?;
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|source| BenchError::Tls {
                    context: "no TLS version in common with the crypto provider".to_string(),
                    source,
                })?
                .with_root_certificates(roots);
        let config = match &files.client {
            None => builder.with_no_client_auth(),
            Some((certificate, key)) => {
                let chain = roost::pki::files::read_certificates(certificate)?;
                let key = roost::pki::files::read_key(key, "client certificate")?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| BenchError::Tls {
                        context: format!(
                            "cannot use {} as client certificate",
                            certificate.display()
                        ),
                        source,
                    })?
            }
        };
        let server_name = ServerName::try_from(files.server_name.clone()).map_err(|_| {
            BenchError::InvalidOptions(format!(
                "{:?} is neither a DNS name nor an IP address",
                files.server_name
            ))
        })?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The client side of the handshake on a connected socket.
    pub async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, BenchError> {
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| BenchError::io("TLS handshake", source))
    }

    /// Connects once to see what a handshake with the broker agrees on.
    pub async fn probe(&self, address: std::net::SocketAddr) -> Result<String, BenchError> {
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|source| BenchError::Connect { address, source })?;
        Ok(describe_session(&self.handshake(tcp).await?))
    }
}

/// The protocol version, cipher suite and key exchange a finished handshake agreed on, as
/// `TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519`.
fn describe_session(stream: &TlsStream<TcpStream>) -> String {
    let (_, session) = stream.get_ref();
    let mut parts = Vec::new();
    if let Some(version) = session.protocol_version() {
        parts.push(format!("{version:?}"));
    }
    if let Some(suite) = session.negotiated_cipher_suite() {
        parts.push(format!("{:?}", suite.suite()));
    }
    if let Some(group) = session.negotiated_key_exchange_group() {
        parts.push(format!("{:?}", group.name()));
    }
    parts.join(" ")
}

/// The CA file, client certificate and server name options, checked together.
pub fn files_from_options(
    ca_file: Option<&Path>,
    certificate: Option<&Path>,
    key: Option<&Path>,
    server_name: Option<&str>,
    host: &str,
) -> Result<TlsFiles, BenchError> {
    let Some(ca_file) = ca_file else {
        return Err(BenchError::InvalidOptions(
            "--tls needs --cafile, the CA certificate the broker's certificate chains to".into(),
        ));
    };
    let client = match (certificate, key) {
        (Some(certificate), Some(key)) => Some((certificate.to_path_buf(), key.to_path_buf())),
        (None, None) => None,
        _ => {
            return Err(BenchError::InvalidOptions(
                "--cert and --key go together".into(),
            ));
        }
    };
    Ok(TlsFiles {
        ca_file: ca_file.to_path_buf(),
        client,
        server_name: server_name.unwrap_or(host).to_string(),
    })
}
