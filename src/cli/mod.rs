//! Subcommands of `roost` beyond `serve` and `config`, each in its own module.

pub mod certs;
