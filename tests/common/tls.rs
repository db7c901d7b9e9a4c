//! TLS test fixtures: a data directory with a CA, client certificates of every kind the
//! acceptance rules distinguish, and a TLS client (tokio-rustls, ring) that connects with
//! MQTT and says whether the broker accepted it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use roost::config::{ClientCertificate, ClientCertificateStatus, Config};
use roost::mqtt::{Packet, ProtocolVersion, decode, encode};
use roost::pki::issue::{self, Signer};
use roost::pki::{CertificateInfo, PkiPaths, authority, files};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A certificate and key pair on disk.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    pub name: String,
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub thumbprint: String,
}

/// A temporary directory with `data/` (the broker's data directory, holding its CA) and the
/// client certificates tests hand to clients.
pub struct Fixture {
    pub dir: TempDir,
    pub data_dir: PathBuf,
    pub paths: PkiPaths,
    ca: Signer,
    rogue: Signer,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let paths = PkiPaths::new(&Default::default(), &data_dir);
        let now = OffsetDateTime::now_utc();
        authority::create(&paths, "Test CA", now).expect("CA");
        let ca = authority::require(&paths)
            .expect("CA")
            .signer(&paths)
            .expect("CA signs");
        // A CA the broker does not know: what it issues is untrusted.
        let rogue = issue::authority("Rogue CA", now).expect("rogue CA");
        let rogue_key = PrivateKeyDer::from_pem_slice(rogue.key_pem.as_bytes()).expect("key");
        let rogue = Signer::new(&rogue.certificate, &rogue_key).expect("rogue signs");
        Fixture {
            dir,
            data_dir,
            paths,
            ca,
            rogue,
        }
    }

    /// A client certificate named `name`, issued by the broker's CA (`trusted`) or by an
    /// unknown one, valid from `from` to `until` days from now.
    pub fn client(&self, name: &str, trusted: bool, from: i64, until: i64) -> ClientFiles {
        let now = OffsetDateTime::now_utc();
        let signer = if trusted { &self.ca } else { &self.rogue };
        let issued = issue::client(
            name,
            Some(signer),
            now + Duration::days(from),
            now + Duration::days(until),
        )
        .expect("client certificate");
        let certificate = self.dir.path().join(format!("{name}.crt"));
        let key = self.dir.path().join(format!("{name}.key"));
        files::write_public(&certificate, &issued.certificate_pem).expect("write");
        files::write_private(&key, &issued.key_pem).expect("write");
        let info = CertificateInfo::parse(&issued.certificate).expect("parse");
        ClientFiles {
            name: name.to_string(),
            certificate,
            key,
            thumbprint: info.sha256,
        }
    }

    /// A certificate valid from yesterday for a year.
    pub fn valid_client(&self, name: &str, trusted: bool) -> ClientFiles {
        self.client(name, trusted, -1, 365)
    }

    pub fn ca_file(&self) -> &Path {
        &self.paths.ca_certificate
    }
}

/// The config entry listing `client` with `status`.
pub fn listed(client: &ClientFiles, status: ClientCertificateStatus) -> ClientCertificate {
    ClientCertificate {
        name: client.name.clone(),
        thumbprint: client.thumbprint.clone(),
        subject: format!("CN={}", client.name),
        expires: String::new(),
        status,
    }
}

/// A config with TLS on, the data directory of `fixture` and the given client list.
pub fn tls_config(fixture: &Fixture, clients: Vec<ClientCertificate>) -> Config {
    let mut config = super::test_config();
    config.broker.tls.enabled = true;
    config.persistence.data_dir = fixture.data_dir.clone();
    config.certificates.clients = clients;
    config
}

/// A rustls client trusting `ca_file`, presenting `client` if given.
pub fn client_config(ca_file: &Path, client: Option<&ClientFiles>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_file).expect("CA file") {
        roots.add(certificate.expect("CA")).expect("CA root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let config = match client {
        Some(client) => {
            let chain = CertificateDer::pem_file_iter(&client.certificate)
                .expect("certificate file")
                .collect::<Result<Vec<_>, _>>()
                .expect("certificate");
            let key = PrivateKeyDer::from_pem_file(&client.key).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A TLS session to `addr` (server name 127.0.0.1).
pub async fn handshake(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    TlsConnector::from(config).connect(name, tcp).await
}

/// Connects over TLS and sends a 3.1.1 CONNECT: `Ok` with the session when the broker
/// answered CONNACK 0, `Err` with what happened otherwise (a refused certificate ends the
/// TLS session, in TLS 1.3 after the client's side of the handshake is done).
pub async fn mqtt_connect(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    client_id: &str,
) -> Result<TlsStream<TcpStream>, String> {
    let attempt = async {
        let mut stream = handshake(addr, config)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let mut out = bytes::BytesMut::new();
        let connect = super::connect(ProtocolVersion::V3_1_1, client_id);
        encode(
            &Packet::Connect(Box::new(connect)),
            ProtocolVersion::V3_1_1,
            u32::MAX,
            &mut out,
        )
        .map_err(|e| e.to_string())?;
        stream
            .write_all(&out)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut connack = [0u8; 4];
        stream
            .read_exact(&mut connack)
            .await
            .map_err(|e| format!("read: {e}"))?;
        match connack {
            [0x20, 0x02, _, 0x00] => Ok(stream),
            other => Err(format!("CONNACK {other:?}")),
        }
    };
    tokio::time::timeout(super::WAIT, attempt)
        .await
        .unwrap_or_else(|_| Err("no answer".into()))
}

/// Publishes at QoS 1 on an MQTT 3.1.1 session and waits for the PUBACK: the session works.
pub async fn qos1_round_trip(
    stream: &mut TlsStream<TcpStream>,
    packet_id: u16,
) -> Result<(), String> {
    let publish = super::publish(
        "tls/ping",
        "x",
        roost::mqtt::QoS::AtLeastOnce,
        Some(packet_id),
    );
    let mut out = bytes::BytesMut::new();
    encode(
        &Packet::Publish(publish),
        ProtocolVersion::V3_1_1,
        u32::MAX,
        &mut out,
    )
    .map_err(|e| e.to_string())?;
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut buffer = bytes::BytesMut::new();
    let read = async {
        loop {
            if let Some(packet) = decode(&mut buffer, Some(ProtocolVersion::V3_1_1), u32::MAX)
                .map_err(|e| e.to_string())?
            {
                if let Packet::PubAck(ack) = packet
                    && ack.packet_id == packet_id
                {
                    return Ok(());
                }
                continue;
            }
            if stream
                .read_buf(&mut buffer)
                .await
                .map_err(|e| e.to_string())?
                == 0
            {
                return Err("closed".to_string());
            }
        }
    };
    tokio::time::timeout(super::WAIT, read)
        .await
        .unwrap_or_else(|_| Err("no PUBACK".into()))
}
