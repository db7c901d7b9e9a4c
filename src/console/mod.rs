//! The administration console: a ratatui terminal UI over a [`crate::broker::BrokerHandle`].
