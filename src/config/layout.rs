//! Saving a configuration in the commented layout of `roost config init`: the template's
//! comments and order, the configuration's values.
//!
//! Both the template and the configuration's pretty RON (`Config::to_ron`) nest the same
//! structs the same way, one `key: value,` per line. The pretty RON is read into a map from
//! dotted path to value text (several lines for a non-empty list or map, such as the ACL rules
//! per user), and every value line of the template is replaced by the value at its path.

use std::collections::HashMap;

use super::model::Config;
use super::template::default_config_text;

/// The configuration as the commented template with its values. Should a value not fit the
/// line-by-line substitution (a shape the template does not have yet), the plain pretty RON
/// is returned instead: the values matter more than the comments.
pub fn render(config: &Config) -> String {
    let text = render_template(config);
    if ron::from_str::<Config>(&text).ok().as_ref() == Some(config) {
        return text;
    }
    let mut plain =
        String::from("// roost configuration, written by roost. Comments could not be kept.\n");
    plain.push_str(&config.to_ron());
    plain.push('\n');
    plain
}

fn render_template(config: &Config) -> String {
    let values = values_by_path(&config.to_ron());
    let mut out = String::with_capacity(default_config_text().len() + 256);
    let mut path: Vec<String> = Vec::new();
    // While a list or map the template spreads over several lines is replaced: the
    // indentation and the character of its closing line, up to which the template's own lines
    // are skipped.
    let mut skipping: Option<(usize, char)> = None;
    for line in default_config_text().lines() {
        let trimmed = line.trim();
        let indent_width = line.len() - line.trim_start().len();
        if let Some((indent, closer)) = skipping {
            if indent_width == indent && trimmed.starts_with(closer) {
                skipping = None;
            }
            continue;
        }
        match classify(trimmed) {
            LineKind::Open(key) => path.push(key.to_string()),
            LineKind::Close => {
                path.pop();
            }
            kind @ (LineKind::Value(key) | LineKind::OpenCollection(key, _)) => {
                let full = join(&path, key);
                if let Some(value) = values.get(&full) {
                    out.push_str(&line[..indent_width]);
                    out.push_str(key);
                    out.push_str(": ");
                    out.push_str(value);
                    out.push_str(",\n");
                    if let LineKind::OpenCollection(_, closer) = kind {
                        skipping = Some((indent_width, closer));
                    }
                    continue;
                }
            }
            LineKind::Other => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether `text` holds comments that the template does not (and so cannot be kept).
pub fn has_foreign_comments(text: &str) -> bool {
    let known: std::collections::HashSet<&str> = default_config_text()
        .lines()
        .filter_map(comment_of)
        .collect();
    text.lines()
        .filter_map(comment_of)
        .any(|comment| !known.contains(comment) && !comment.starts_with("roost configuration"))
}

/// The text of a `//` comment on a line, outside of strings (a simple scan: RON strings in
/// this file never hold `"` escapes before a comment).
fn comment_of(line: &str) -> Option<&str> {
    let mut in_string = false;
    let mut escaped = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' if in_string => {
                escaped = !escaped;
                continue;
            }
            b'"' if !escaped => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                return Some(line[i + 2..].trim());
            }
            _ => {}
        }
        escaped = false;
    }
    None
}

#[derive(Debug, PartialEq)]
enum LineKind<'a> {
    /// `key: (`: a struct opens.
    Open(&'a str),
    /// `key: [` or `key: {`: a list or a map continues on the next lines, up to the `]` or `}`
    /// (the second field) at the same indentation.
    OpenCollection(&'a str, char),
    /// `key: value,`
    Value(&'a str),
    /// `)` or `),`, `]` or `],`, `}` or `},`.
    Close,
    Other,
}

fn classify(trimmed: &str) -> LineKind<'_> {
    if trimmed.starts_with("//") || trimmed.is_empty() || trimmed == "(" {
        return LineKind::Other;
    }
    if matches!(trimmed, ")" | ")," | "]" | "]," | "}" | "},") {
        return LineKind::Close;
    }
    let Some((key, rest)) = trimmed.split_once(':') else {
        return LineKind::Other;
    };
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return LineKind::Other;
    }
    match rest.trim() {
        "(" => LineKind::Open(key),
        "[" => LineKind::OpenCollection(key, ']'),
        "{" => LineKind::OpenCollection(key, '}'),
        _ => LineKind::Value(key),
    }
}

fn join(path: &[String], key: &str) -> String {
    let mut full = path.join(".");
    if !full.is_empty() {
        full.push('.');
    }
    full.push_str(key);
    full
}

/// Value text by dotted path, read from `Config::to_ron` output.
fn values_by_path(pretty: &str) -> HashMap<String, String> {
    let mut values = HashMap::new();
    let mut path: Vec<String> = Vec::new();
    let mut lines = pretty.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        match classify(trimmed) {
            LineKind::Open(key) => path.push(key.to_string()),
            LineKind::Close => {
                path.pop();
            }
            LineKind::Value(key) => {
                let value = trimmed[key.len() + 1..].trim();
                let value = value.strip_suffix(',').unwrap_or(value);
                values.insert(join(&path, key), value.to_string());
            }
            LineKind::OpenCollection(key, closer) => {
                // The list or map runs to its closer at this line's indentation; what is
                // inside is kept as it is, nested structs and all.
                let indent = line.len() - line.trim_start().len();
                let opener = if closer == '}' { '{' } else { '[' };
                let mut value = format!("{opener}\n");
                for inner in lines.by_ref() {
                    let inner_indent = inner.len() - inner.trim_start().len();
                    if inner_indent == indent && inner.trim_start().starts_with(closer) {
                        value.push_str(&inner[..indent]);
                        value.push(closer);
                        break;
                    }
                    value.push_str(inner);
                    value.push('\n');
                }
                values.insert(join(&path, key), value);
            }
            LineKind::Other => {}
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientCertificate, ClientCertificateStatus, StorageMode, User};

    #[test]
    fn the_defaults_render_as_the_template() {
        assert_eq!(render(&Config::default()), default_config_text());
    }

    #[test]
    fn values_are_replaced_and_comments_kept() {
        let mut config = Config::default();
        config.broker.enabled = true;
        config.broker.tcp.port = 2883;
        config.broker.websockets.path = "/a\"quoted\"//path".to_string();
        config.persistence.mode = StorageMode::DiskBuffered;
        config.certificates.ca_certificate = Some("/etc/roost/ca.pem".into());
        config.users.push(User {
            username: "sensor".to_string(),
            password_hash: "$argon2id$x".to_string(),
        });
        config.certificates.clients.push(ClientCertificate {
            name: "one".to_string(),
            thumbprint: "ab".repeat(32),
            subject: "CN=one".to_string(),
            expires: "2028-11-26 06:47 UTC".to_string(),
            status: ClientCertificateStatus::Revoked,
        });
        config.broker.tls.host_names = vec!["broker.example".to_string()];
        let text = render(&config);
        // Parsed without validation: only the layout is under test here.
        assert_eq!(ron::from_str::<Config>(&text).unwrap(), config, "{text}");
        assert!(text.contains("// Enable TCP Server"), "{text}");
        assert!(text.contains("port: 2883,"), "{text}");
        assert!(!has_foreign_comments(&text));
    }

    /// A configuration with every shape the file has: a map of lists of structs (ACL rules per
    /// user), lists of structs (users, client certificates, anonymous and pattern rules), lists
    /// of strings (one the template spreads over lines, emptied), and optional paths.
    fn security_config() -> Config {
        use crate::auth::acl::{Access, TopicRule};
        let rule = |access, topic: &str| TopicRule {
            access,
            topic: topic.to_string(),
        };
        let mut config = Config::default();
        config.broker.tls.enabled = true;
        config.broker.tls.require_client_certificate = true;
        config.broker.require_credentials = true;
        for name in ["alice", "bob"] {
            config.users.push(User {
                username: name.to_string(),
                password_hash: concat!(
                    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQxMjM0$",
                    "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY"
                )
                .to_string(),
            });
        }
        config.acl.users.insert(
            "alice".to_string(),
            vec![
                rule(Access::ReadWrite, "alice/#"),
                rule(Access::Deny, "alice/secret/#"),
            ],
        );
        config
            .acl
            .users
            .insert("bob".to_string(), vec![rule(Access::Read, "public/#")]);
        config.acl.users.insert("carol".to_string(), vec![]);
        config.acl.anonymous.push(rule(Access::Read, "public/#"));
        config
            .acl
            .patterns
            .push(rule(Access::Write, "clients/%c/#"));
        config.certificates.ca_private_key = Some("/etc/roost/ca.key".into());
        config.broker.websockets.allowed_origins = vec!["https://example.com".to_string()];
        config.broker.tls.host_names = vec![];
        config.diagnostics.log_file = Some("roost-messages.log".into());
        for (name, status, byte) in [
            ("sensor-1", ClientCertificateStatus::Authorized, "cd"),
            ("sensor-2", ClientCertificateStatus::Revoked, "ef"),
        ] {
            config.certificates.clients.push(ClientCertificate {
                name: name.to_string(),
                thumbprint: byte.repeat(32),
                subject: format!("CN={name}"),
                expires: "2028-11-26 06:47 UTC".to_string(),
                status,
            });
        }
        config
    }

    #[test]
    fn per_user_acl_rules_keep_the_commented_layout() {
        let config = security_config();
        let text = render(&config);
        assert!(
            !text.contains("Comments could not be kept"),
            "fell back to plain RON:\n{text}"
        );
        // Every comment of the template is still there, and no other.
        for comment in default_config_text().lines().filter_map(comment_of) {
            assert!(
                text.contains(comment),
                "lost the comment {comment:?}:\n{text}"
            );
        }
        assert!(!has_foreign_comments(&text), "{text}");
        assert!(text.contains("\"alice\": ["), "{text}");
        assert_eq!(Config::from_ron(&text).unwrap(), config, "{text}");
    }

    #[test]
    fn save_then_load_keeps_users_acl_rules_and_client_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roost.ron");
        let config = security_config();
        crate::admin::saving::save(&path, &config, None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config, "{text}");
        assert!(text.contains("// Per username:"), "{text}");
        assert!(text.contains("// Client Certificates:"), "{text}");
        // Saving what was loaded writes the same text again.
        let loaded = Config::load(&path).unwrap();
        assert_eq!(render(&loaded), text);
    }

    #[test]
    fn hand_written_comments_are_noticed() {
        assert!(!has_foreign_comments(default_config_text()));
        let edited = default_config_text().replace(
            "        enabled: false,\n        // Enable TCP",
            "        enabled: false, // turned on by ops, ticket 42\n        // Enable TCP",
        );
        assert_ne!(edited, default_config_text());
        assert!(has_foreign_comments(&edited));
        assert!(!has_foreign_comments(
            "(broker: (path: \"a//b\")) // roost configuration, written by roost."
        ));
    }
}
