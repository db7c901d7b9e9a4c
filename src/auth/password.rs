//! Password hashes as roost stores them: never a password, only a salted hash.
//!
//! Two families are accepted in `users[].password_hash`:
//! - argon2id PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), what roost writes
//!   for every password it is given (argon2, argon2i and argon2d PHC strings verify too);
//! - Mosquitto's hashes, imported as they are from a password file so that a site can move
//!   over without knowing its users' passwords: `$7$<iterations>$<salt>$<hash>` (Mosquitto 2:
//!   PBKDF2-HMAC-SHA512, 64-byte hash) and `$6$<salt>$<hash>` (Mosquitto 1.x: SHA-512 of the
//!   password followed by the salt), salt and hash in standard base64.
//!
//! Verification is deliberately slow (argon2id) and compares in constant time; the broker
//! runs it off its runtime thread.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64ct::{Base64, Encoding};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// The most PBKDF2 iterations an imported `$7$` hash may ask for: Mosquitto writes 101 by
/// default; far more would let one CONNECT hold a CPU for seconds.
pub const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("not a password hash roost knows (expected $argon2id$..., $7$... or $6$...)")]
    UnknownFormat,
    #[error("malformed {format} hash: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
    #[error("cannot hash the password: {0}")]
    Hashing(String),
    #[error("the password is empty")]
    Empty,
}

/// A stored hash, parsed once (at Apply) so that a CONNECT only computes and compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// A PHC string of the argon2 family, kept as text and parsed again by the verifier.
    Argon2(String),
    /// Mosquitto 2 `$7$`: PBKDF2-HMAC-SHA512.
    MosquittoPbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// Mosquitto 1.x `$6$`: SHA-512(password ‖ salt).
    MosquittoSha512 { salt: Vec<u8>, hash: Vec<u8> },
}

impl StoredHash {
    /// Parses a stored hash; the error says what is wrong with it, never echoing it.
    pub fn parse(text: &str) -> Result<StoredHash, PasswordError> {
        if text.starts_with("$argon2") {
            PasswordHash::new(text).map_err(|error| PasswordError::Malformed {
                format: "argon2",
                reason: error.to_string(),
            })?;
            return Ok(StoredHash::Argon2(text.to_string()));
        }
        if let Some(rest) = text.strip_prefix("$7$") {
            let malformed = |reason: &str| PasswordError::Malformed {
                format: "Mosquitto $7$",
                reason: reason.to_string(),
            };
            let mut parts = rest.split('$');
            let (Some(iterations), Some(salt), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(malformed("expected $7$iterations$salt$hash"));
            };
            let iterations: u32 = iterations
                .parse()
                .map_err(|_| malformed("the iteration count is not a number"))?;
            if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
                return Err(malformed(&format!(
                    "the iteration count must be 1 to {MAX_PBKDF2_ITERATIONS}"
                )));
            }
            let salt = decode(salt).ok_or_else(|| malformed("the salt is not base64"))?;
            let hash = decode(hash).ok_or_else(|| malformed("the hash is not base64"))?;
            if hash.len() != 64 {
                return Err(malformed("the hash is not 64 bytes (SHA-512)"));
            }
            return Ok(StoredHash::MosquittoPbkdf2 {
                iterations,
                salt,
                hash,
            });
        }
        if let Some(rest) = text.strip_prefix("$6$") {
            let malformed = |reason: &str| PasswordError::Malformed {
                format: "Mosquitto $6$",
                reason: reason.to_string(),
            };
            let Some((salt, hash)) = rest.split_once('$') else {
                return Err(malformed("expected $6$salt$hash"));
            };
            let salt = decode(salt).ok_or_else(|| malformed("the salt is not base64"))?;
            let hash = decode(hash).ok_or_else(|| malformed("the hash is not base64"))?;
            if hash.len() != 64 {
                return Err(malformed("the hash is not 64 bytes (SHA-512)"));
            }
            return Ok(StoredHash::MosquittoSha512 { salt, hash });
        }
        Err(PasswordError::UnknownFormat)
    }

    /// Whether `password` matches. Slow on purpose (argon2id, PBKDF2); the comparison of the
    /// computed hash with the stored one takes the same time wherever they differ.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Argon2(text) => match PasswordHash::new(text) {
                // The parameters come from the stored string; argon2 compares its output in
                // constant time.
                Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
                Err(_) => false,
            },
            StoredHash::MosquittoPbkdf2 {
                iterations,
                salt,
                hash,
            } => {
                let mut computed = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut computed);
                bool::from(computed.ct_eq(hash.as_slice()))
            }
            StoredHash::MosquittoSha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                let computed = digest.finalize();
                bool::from(computed.as_slice().ct_eq(hash.as_slice()))
            }
        }
    }
}

/// Hashes a new password as an argon2id PHC string with a random salt and the crate's
/// default parameters (19 MiB, 2 passes, 1 lane: OWASP's recommendation).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordError::Hashing(error.to_string()))
}

/// A hash that never matches, verified for unknown usernames so that a client cannot tell
/// an unknown user from a wrong password by the time the answer takes.
pub fn decoy_hash() -> &'static StoredHash {
    static DECOY: std::sync::OnceLock<StoredHash> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let text = hash_password("roost decoy: never a real password")
            .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string());
        StoredHash::Argon2(text)
    })
}

/// A short name for the kind of a stored hash, for lists (the console, `roost user list`).
pub fn scheme(hash: &str) -> &'static str {
    if hash.starts_with("$argon2id$") {
        "argon2id"
    } else if hash.starts_with("$argon2") {
        "argon2"
    } else if hash.starts_with("$7$") {
        "mosquitto $7$"
    } else if hash.starts_with("$6$") {
        "mosquitto $6$"
    } else {
        "unknown"
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    Base64::decode_vec(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_hash_is_argon2id_and_verifies_only_its_password() {
        let text = hash_password("correct horse").unwrap();
        assert!(text.starts_with("$argon2id$"), "{text}");
        let stored = StoredHash::parse(&text).unwrap();
        assert!(stored.verify(b"correct horse"));
        assert!(!stored.verify(b"correct horsE"));
        assert!(!stored.verify(b""));
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_their_salt() {
        assert_ne!(hash_password("x").unwrap(), hash_password("x").unwrap());
    }

    #[test]
    fn an_empty_password_is_not_hashed() {
        assert_eq!(hash_password(""), Err(PasswordError::Empty));
    }

    /// Built here the way Mosquitto 2 builds `$7$` (PBKDF2-HMAC-SHA512, 101 iterations);
    /// `tests/auth_passwords.rs` checks one that `mosquitto_passwd` wrote.
    #[test]
    fn a_mosquitto_pbkdf2_hash_verifies() {
        let salt = b"twelve bytes";
        let mut hash = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha512>(b"secret", salt, 101, &mut hash);
        let text = format!(
            "$7$101${}${}",
            Base64::encode_string(salt),
            Base64::encode_string(&hash)
        );
        let stored = StoredHash::parse(&text).unwrap();
        assert!(stored.verify(b"secret"));
        assert!(!stored.verify(b"Secret"));
    }

    #[test]
    fn a_mosquitto_sha512_hash_verifies() {
        let salt = b"salty";
        let hash = Sha512::new()
            .chain_update(b"pw")
            .chain_update(salt)
            .finalize();
        let text = format!(
            "$6${}${}",
            Base64::encode_string(salt),
            Base64::encode_string(&hash)
        );
        let stored = StoredHash::parse(&text).unwrap();
        assert!(stored.verify(b"pw"));
        assert!(!stored.verify(b"pw "));
    }

    #[test]
    fn malformed_hashes_are_refused_with_the_reason() {
        assert_eq!(
            StoredHash::parse("hunter2"),
            Err(PasswordError::UnknownFormat)
        );
        assert!(matches!(
            StoredHash::parse("$7$abc$AAAA$AAAA"),
            Err(PasswordError::Malformed { .. })
        ));
        assert!(matches!(
            StoredHash::parse("$7$99999999$AAAA$AAAA"),
            Err(PasswordError::Malformed { .. })
        ));
        assert!(matches!(
            StoredHash::parse("$argon2id$nonsense"),
            Err(PasswordError::Malformed { .. })
        ));
    }

    #[test]
    fn the_decoy_never_matches() {
        assert!(!decoy_hash().verify(b""));
        assert!(!decoy_hash().verify(b"roost decoy"));
    }
}
