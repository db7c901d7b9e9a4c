//! Keeping pending edits when the configuration under them changes: another console applied,
//! or the file was edited by hand and reloaded.
//!
//! The operator's edits are the settings where `pending` differs from the old base. They are
//! carried onto the new base; an edited setting that the new base also changed, to another
//! value, is a conflict: the operator's value is kept and the setting is reported.

use serde_json::Value;

use crate::config::Config;

/// `pending`'s edits (relative to `old_base`) on top of `new_base`, and the dotted paths of
/// the edits that conflict with `new_base`.
pub fn rebase(old_base: &Config, new_base: &Config, pending: &Config) -> (Config, Vec<String>) {
    let (Ok(old), Ok(new), Ok(mine)) = (
        serde_json::to_value(old_base),
        serde_json::to_value(new_base),
        serde_json::to_value(pending),
    ) else {
        return (new_base.clone(), Vec::new());
    };
    let mut conflicts = Vec::new();
    let merged = merge(&old, &new, &mine, "", &mut conflicts);
    match serde_json::from_value(merged) {
        Ok(config) => (config, conflicts),
        // Cannot happen with values of one type; losing the edits would be worse than this.
        Err(_) => (pending.clone(), conflicts),
    }
}

fn merge(old: &Value, new: &Value, mine: &Value, path: &str, conflicts: &mut Vec<String>) -> Value {
    if mine == old {
        return new.clone();
    }
    if new == old || new == mine {
        return mine.clone();
    }
    if let (Value::Object(old_map), Value::Object(new_map), Value::Object(mine_map)) =
        (old, new, mine)
    {
        let mut out = new_map.clone();
        for (key, mine_value) in mine_map {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let old_value = old_map.get(key).unwrap_or(&Value::Null);
            let new_value = new_map.get(key).unwrap_or(&Value::Null);
            out.insert(
                key.clone(),
                merge(old_value, new_value, mine_value, &child, conflicts),
            );
        }
        return Value::Object(out);
    }
    conflicts.push(path.to_string());
    mine.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_carried_and_conflicts_named() {
        let old = Config::default();
        let mut new = old.clone();
        new.broker.tcp.port = 2000;
        new.limits.max_inflight = 7;
        let mut mine = old.clone();
        mine.broker.tcp.port = 3000;
        mine.broker.sys_interval_secs = 5;
        let (merged, conflicts) = rebase(&old, &new, &mine);
        assert_eq!(merged.broker.tcp.port, 3000, "the operator's value is kept");
        assert_eq!(merged.broker.sys_interval_secs, 5);
        assert_eq!(
            merged.limits.max_inflight, 7,
            "the new base's change arrives"
        );
        assert_eq!(conflicts, vec!["broker.tcp.port".to_string()]);
    }

    #[test]
    fn the_same_edit_on_both_sides_is_no_conflict() {
        let old = Config::default();
        let mut new = old.clone();
        new.broker.enabled = true;
        let (merged, conflicts) = rebase(&old, &new, &new.clone());
        assert_eq!(merged, new);
        assert!(conflicts.is_empty());
    }
}
