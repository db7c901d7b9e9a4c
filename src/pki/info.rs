//! What a certificate says, read with `x509-parser`: subject, issuer, alternative names,
//! validity and the SHA-256 and SHA-1 thumbprints of its DER encoding.

use std::fmt;

use ring::digest;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The facts about one certificate that roost shows and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    /// DNS names and IP addresses.
    pub subject_alt_names: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER encoding, lowercase hex: the thumbprint the config lists.
    pub sha256: String,
    /// SHA-1 of the DER encoding, lowercase hex (shown because other tools still print it).
    pub sha1: String,
    pub is_ca: bool,
    /// The subject public key (the bits of its SubjectPublicKeyInfo).
    pub public_key: Vec<u8>,
}

/// Where `now` falls in a certificate's validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    NotYetValid,
    Valid,
    Expired,
}

impl CertificateInfo {
    /// Parses a DER certificate; the error says what is wrong with it.
    pub fn parse(der: &[u8]) -> Result<CertificateInfo, String> {
        let (_, certificate) = X509Certificate::from_der(der)
            .map_err(|error| format!("not an X.509 certificate: {error}"))?;
        let common_name = certificate
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let mut subject_alt_names = Vec::new();
        if let Ok(Some(names)) = certificate.subject_alternative_name() {
            for name in &names.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => subject_alt_names.push((*dns).to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            subject_alt_names.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        let validity = certificate.validity();
        Ok(CertificateInfo {
            subject: certificate.subject().to_string(),
            issuer: certificate.issuer().to_string(),
            common_name,
            subject_alt_names,
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            sha256: sha256_hex(der),
            sha1: sha1_hex(der),
            is_ca: certificate.is_ca(),
            public_key: certificate.public_key().subject_public_key.data.to_vec(),
        })
    }

    pub fn validity_at(&self, now: OffsetDateTime) -> Validity {
        if now < self.not_before {
            Validity::NotYetValid
        } else if now > self.not_after {
            Validity::Expired
        } else {
            Validity::Valid
        }
    }

    /// Whether the certificate has expired or expires within `days` of `now`.
    pub fn expires_within(&self, now: OffsetDateTime, days: i64) -> bool {
        self.not_after - now < time::Duration::days(days)
    }

    /// A name for lists: the common name, else the whole subject.
    pub fn display_name(&self) -> &str {
        self.common_name.as_deref().unwrap_or(&self.subject)
    }
}

impl fmt::Display for CertificateInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Subject:     {}", self.subject)?;
        writeln!(f, "Issuer:      {}", self.issuer)?;
        if !self.subject_alt_names.is_empty() {
            writeln!(f, "Alt. names:  {}", self.subject_alt_names.join(", "))?;
        }
        writeln!(f, "Valid from:  {}", format_time(self.not_before))?;
        writeln!(f, "Valid until: {}", format_time(self.not_after))?;
        writeln!(f, "SHA-256:     {}", self.sha256)?;
        write!(f, "SHA-1:       {}", self.sha1)
    }
}

/// `2026-11-26 06:47 UTC`.
pub fn format_time(time: OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute()
    )
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

pub fn sha256_hex(der: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, der).as_ref())
}

pub fn sha1_hex(der: &[u8]) -> String {
    hex(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A thumbprint as an operator may type it (any case, with or without `:` separators), in
/// the form the config stores: lowercase hex without separators.
pub fn normalize_thumbprint(text: &str) -> String {
    text.chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_are_the_hex_digests_of_the_der_bytes() {
        // Known digests of the empty input.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(normalize_thumbprint("AB:cd: 01"), "abcd01");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(CertificateInfo::parse(b"\x30\x03abc").is_err());
    }
}
