//! Which settings differ between the applied and the pending configuration.

use crate::config::{self, Config};

/// Dotted paths (such as `broker.tcp.port`) of every setting that differs.
pub fn changed_paths(applied: &Config, pending: &Config) -> Vec<String> {
    config::diff(applied, pending)
        .into_iter()
        .map(|change| change.path)
        .collect()
}
