//! Inline validation of text typed into the forms. Each function returns the parsed value or a
//! short message shown under the field. The rules themselves live in [`crate::config`], so the
//! console accepts exactly what the config file accepts.

use std::path::PathBuf;
use std::str::FromStr;

use crate::config;

/// A TCP port, 0–65535 (0 lets the system pick one).
pub fn port(input: &str) -> Result<u16, String> {
    config::validate_port(input)
}

/// An address to bind, such as `0.0.0.0`, `127.0.0.1` or `::`.
pub fn bind_address(input: &str) -> Result<String, String> {
    config::validate_bind_address(input).map(|()| input.trim().to_string())
}

/// The WebSockets URL path: starts with `/`, no spaces, query or fragment.
pub fn ws_path(input: &str) -> Result<String, String> {
    config::validate_ws_path(input.trim()).map(|()| input.trim().to_string())
}

/// Allowed WebSocket origins, comma-separated; empty allows any.
pub fn origins(input: &str) -> Result<Vec<String>, String> {
    input
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| config::validate_origin(origin).map(|()| origin.to_string()))
        .collect()
}

/// A whole number within `min..=max`.
pub fn number<T>(input: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    config::validate_number(input, min..=max)
}

/// A path that may be left empty (meaning "none").
pub fn optional_path(input: &str) -> Option<PathBuf> {
    let text = input.trim();
    (!text.is_empty()).then(|| PathBuf::from(text))
}

/// A path that must be given.
pub fn required_path(input: &str) -> Result<PathBuf, String> {
    optional_path(input).ok_or_else(|| "a path is required".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(port(" 1883 "), Ok(1883));
        assert!(port("65536").is_err());
        assert!(port("-1").is_err());
        assert!(port("abc").is_err());
    }

    #[test]
    fn bind_addresses() {
        assert!(bind_address("0.0.0.0").is_ok());
        assert!(bind_address("::").is_ok());
        assert!(bind_address("localhost:1883").is_err());
    }

    #[test]
    fn ws_paths() {
        assert_eq!(ws_path("/mqtt"), Ok("/mqtt".to_string()));
        assert!(ws_path("mqtt").is_err());
        assert!(ws_path("/a b").is_err());
        assert!(ws_path("/a?b").is_err());
    }

    #[test]
    fn numbers_in_range() {
        assert_eq!(number::<u16>("5", 1, 10), Ok(5));
        assert!(number::<u16>("0", 1, 10).is_err());
        assert!(number::<u16>("11", 1, 10).is_err());
    }
}
