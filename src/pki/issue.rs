//! Making key pairs and certificates with `rcgen`: a CA, a server certificate and client
//! certificates. Keys are ECDSA P-256 (small, fast to sign and verify, accepted by every
//! TLS 1.2 and 1.3 client roost cares about).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

use super::PkiError;

/// How long a new CA is valid.
pub const CA_VALIDITY_DAYS: i64 = 10 * 365;
/// How long a new server certificate is valid (browsers cap public ones at 398 days).
pub const SERVER_VALIDITY_DAYS: i64 = 398;
/// How long a new client certificate is valid.
pub const CLIENT_VALIDITY_DAYS: i64 = 2 * 365;
/// Clocks differ: certificates are valid from a little before they are made.
const BACKDATE: Duration = Duration::hours(1);

/// A freshly made certificate and its private key, as PEM.
#[derive(Debug)]
pub struct Issued {
    pub certificate: CertificateDer<'static>,
    pub certificate_pem: String,
    pub key_pem: String,
}

/// A CA that can sign: its certificate's names and its key.
pub struct Signer {
    issuer: Issuer<'static, KeyPair>,
}

impl Signer {
    /// The CA of `certificate`, signing with `key`; the caller has checked they match.
    pub fn new(
        certificate: &CertificateDer<'_>,
        key: &PrivateKeyDer<'_>,
    ) -> Result<Signer, PkiError> {
        let key = KeyPair::try_from(key)?;
        Ok(Signer {
            issuer: Issuer::from_ca_cert_der(certificate, key)?,
        })
    }
}

/// A usable private key from its DER form (for checking imported keys); the error says why not.
pub fn key_pair(key: &PrivateKeyDer<'_>) -> Result<KeyPair, String> {
    KeyPair::try_from(key).map_err(|error| error.to_string())
}

/// A new self-signed CA.
pub fn authority(common_name: &str, now: OffsetDateTime) -> Result<Issued, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = base_params(common_name, now, CA_VALIDITY_DAYS)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let certificate = params.self_signed(&key)?;
    Ok(finish(certificate, &key))
}

/// A server certificate for `host_names` (DNS names or IP addresses), issued by `signer`
/// or, without one, self-signed.
pub fn server(
    host_names: &[String],
    signer: Option<&Signer>,
    now: OffsetDateTime,
) -> Result<Issued, PkiError> {
    let common_name = host_names.first().map(String::as_str).unwrap_or("roost");
    let mut params = base_params(common_name, now, SERVER_VALIDITY_DAYS)?;
    params.subject_alt_names = host_names
        .iter()
        .map(|name| san(name))
        .collect::<Result<_, _>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf(params, signer)
}

/// A client certificate named `common_name`, issued by `signer`, valid from `not_before` to
/// `not_after` (tests make expired and not-yet-valid ones).
pub fn client(
    common_name: &str,
    signer: Option<&Signer>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Issued, PkiError> {
    let mut params = base_params(common_name, not_before + BACKDATE, 0)?;
    params.not_after = not_after;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf(params, signer)
}

/// A client certificate valid for [`CLIENT_VALIDITY_DAYS`] from `now`.
pub fn client_now(
    common_name: &str,
    signer: &Signer,
    now: OffsetDateTime,
) -> Result<Issued, PkiError> {
    client(
        common_name,
        Some(signer),
        now,
        now + Duration::days(CLIENT_VALIDITY_DAYS),
    )
}

fn leaf(params: CertificateParams, signer: Option<&Signer>) -> Result<Issued, PkiError> {
    let key = KeyPair::generate()?;
    let certificate = match signer {
        Some(signer) => params.signed_by(&key, &signer.issuer)?,
        None => params.self_signed(&key)?,
    };
    Ok(finish(certificate, &key))
}

fn base_params(
    common_name: &str,
    now: OffsetDateTime,
    days: i64,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(days);
    params.serial_number = Some(random_serial()?);
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn san(name: &str) -> Result<SanType, PkiError> {
    Ok(match name.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(name.try_into()?),
    })
}

/// 16 random bytes, positive (RFC 5280 §4.1.2.2: at most 20 octets, non-negative).
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Generate(rcgen::Error::RingUnspecified))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn finish(certificate: rcgen::Certificate, key: &KeyPair) -> Issued {
    Issued {
        certificate_pem: certificate.pem(),
        certificate: certificate.der().clone(),
        key_pem: key.serialize_pem(),
    }
}
