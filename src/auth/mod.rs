//! Who a client is and what it may do: password hashes, the users file formats roost reads,
//! and topic permissions. Pure library code with no I/O on sockets: the broker enforces it
//! (`broker::auth`), and the command line and the console edit the configuration with it.
//!
//! - [`password`]: hashing new passwords (argon2id) and verifying stored hashes (argon2id PHC
//!   strings and Mosquitto's `$7$` / `$6$` hashes), in constant time;
//! - [`mosquitto`]: reading a Mosquitto password file;
//! - [`acl`]: topic permissions, Mosquitto's `acl_file` format, and the per-client view the
//!   broker checks packets against.

pub mod acl;
pub mod mosquitto;
pub mod password;
