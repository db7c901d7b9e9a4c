//! The command line's subcommands beyond `serve` and `config`, as library code: each command is
//! a function that takes the configuration (and data directory) and returns what it did, so
//! that the same functions can run inside a broker (the console, an admin socket).

pub mod acl;
pub mod certs;
pub mod users;
