//! Certificate authority, server and client certificates.
//!
//! The TLS work arrives with the security issue; the configuration already carries the
//! certificate settings so that they can be edited and stored.
