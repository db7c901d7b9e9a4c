//! The difference between two configs as a list of changed fields (dotted paths), used by the
//! console to mark edited fields and by the broker to decide what to restart.

use std::collections::BTreeMap;

use super::model::Config;

/// One field whose value differs, with both values as display text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// Dotted path such as `broker.tcp.port` or `users[0].username`.
    pub path: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// Every leaf field that differs between `old` and `new`, in path order.
pub fn diff(old: &Config, new: &Config) -> Vec<FieldChange> {
    if old == new {
        return Vec::new();
    }
    let old = flatten(old);
    let new = flatten(new);
    let mut changes = Vec::new();
    for (path, old_value) in &old {
        match new.get(path) {
            Some(new_value) if new_value == old_value => {}
            new_value => changes.push(FieldChange {
                path: path.clone(),
                old: Some(old_value.clone()),
                new: new_value.cloned(),
            }),
        }
    }
    for (path, new_value) in &new {
        if !old.contains_key(path) {
            changes.push(FieldChange {
                path: path.clone(),
                old: None,
                new: Some(new_value.clone()),
            });
        }
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes
}

/// The config as leaf paths and values. Goes through `serde_json::Value` because it keeps
/// enum variant names (as strings), which RON's own value tree does not.
fn flatten(config: &Config) -> BTreeMap<String, String> {
    let mut leaves = BTreeMap::new();
    if let Ok(value) = serde_json::to_value(config) {
        flatten_value("", &value, &mut leaves);
    }
    leaves
}

fn flatten_value(prefix: &str, value: &serde_json::Value, leaves: &mut BTreeMap<String, String>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (name, child) in map {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                flatten_value(&path, child, leaves);
            }
        }
        Value::Array(items) => {
            leaves.insert(prefix.to_string(), format!("{} entries", items.len()));
            for (index, child) in items.iter().enumerate() {
                flatten_value(&format!("{prefix}[{index}]"), child, leaves);
            }
        }
        Value::String(text) => {
            leaves.insert(prefix.to_string(), text.clone());
        }
        Value::Null => {
            leaves.insert(prefix.to_string(), "None".to_string());
        }
        leaf => {
            leaves.insert(prefix.to_string(), leaf.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StorageMode, User};

    #[test]
    fn equal_configs_have_no_changes() {
        assert!(diff(&Config::default(), &Config::default()).is_empty());
    }

    #[test]
    fn changed_leaves_are_named_by_path() {
        let old = Config::default();
        let mut new = old.clone();
        new.broker.tcp.port = 2883;
        new.persistence.mode = StorageMode::DiskBuffered;
        let paths: Vec<_> = diff(&old, &new).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, vec!["broker.tcp.port", "persistence.mode"]);
        let change = &diff(&old, &new)[0];
        assert_eq!(change.old.as_deref(), Some("1883"));
        assert_eq!(change.new.as_deref(), Some("2883"));
    }

    #[test]
    fn added_list_entries_appear() {
        let old = Config::default();
        let mut new = old.clone();
        new.users.push(User {
            username: "a".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
        });
        let paths: Vec<_> = diff(&old, &new).into_iter().map(|c| c.path).collect();
        assert!(paths.contains(&"users".to_string()), "{paths:?}");
        assert!(
            paths.contains(&"users[0].username".to_string()),
            "{paths:?}"
        );
    }

    #[test]
    fn optional_paths_are_leaves() {
        let old = Config::default();
        let mut new = old.clone();
        new.diagnostics.log_file = Some("diag.log".into());
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, "diagnostics.log_file");
    }
}
