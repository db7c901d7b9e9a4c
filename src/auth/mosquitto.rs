//! Mosquitto's password file: one `username:hash` per line, as `mosquitto_passwd` writes it.
//! Blank lines and lines starting with `#` are skipped. Each hash must be one that
//! [`StoredHash`] verifies (`$7$`, `$6$`, or an argon2 PHC string); it is imported as it is.

use thiserror::Error;

use super::password::{PasswordError, StoredHash};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PasswordFileError {
    #[error("line {line}: expected username:hash")]
    NoSeparator { line: usize },
    #[error("line {line}: the username is empty")]
    EmptyUsername { line: usize },
    #[error("line {line} (user {username}): {source}")]
    BadHash {
        line: usize,
        username: String,
        #[source]
        source: PasswordError,
    },
    #[error("line {line}: user {username} is listed twice")]
    Duplicate { line: usize, username: String },
}

/// One user read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordEntry {
    pub username: String,
    pub password_hash: String,
}

/// Parses the whole file; the first bad line is the error, so nothing half-read is imported.
pub fn parse_password_file(text: &str) -> Result<Vec<PasswordEntry>, PasswordFileError> {
    let mut entries: Vec<PasswordEntry> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim_end_matches('\r');
        if trimmed.trim().is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // Usernames may not contain ':' in Mosquitto's format; the hash never does.
        let Some((username, hash)) = trimmed.split_once(':') else {
            return Err(PasswordFileError::NoSeparator { line });
        };
        if username.is_empty() {
            return Err(PasswordFileError::EmptyUsername { line });
        }
        let hash = hash.trim();
        StoredHash::parse(hash).map_err(|source| PasswordFileError::BadHash {
            line,
            username: username.to_string(),
            source,
        })?;
        if entries.iter().any(|e| e.username == username) {
            return Err(PasswordFileError::Duplicate {
                line,
                username: username.to_string(),
            });
        }
        entries.push(PasswordEntry {
            username: username.to_string(),
            password_hash: hash.to_string(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$7$101$oWqXDA1xBWyfpd3f$NQi9Eip5GqtgRxFSV33dbiZPFxEz4bdoH4aGLXs4fyiH5GlOPoiUl06lyHY94i2SEoVYEuHnaUXH8MGZIj8HUA==";

    #[test]
    fn users_are_read_and_comments_skipped() {
        let text = format!("# users\n\nalice:{HASH}\r\nbob:{HASH}\n");
        let entries = parse_password_file(&text).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.username.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(entries[0].password_hash, HASH);
    }

    #[test]
    fn the_first_bad_line_is_named() {
        let text = format!("alice:{HASH}\nbob\n");
        assert_eq!(
            parse_password_file(&text),
            Err(PasswordFileError::NoSeparator { line: 2 })
        );
        let text = "carol:plaintext\n";
        assert!(matches!(
            parse_password_file(text),
            Err(PasswordFileError::BadHash { line: 1, .. })
        ));
        let text = format!("alice:{HASH}\nalice:{HASH}\n");
        assert!(matches!(
            parse_password_file(&text),
            Err(PasswordFileError::Duplicate { line: 2, .. })
        ));
    }
}
