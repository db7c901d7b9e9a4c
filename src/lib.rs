//! roost: an MQTT 3.1.1 / 5.0 broker with its administration console built in.
//!
//! The crate is split into rooms with one job each:
//! - [`mqtt`]: the wire protocol only (packets, properties, reason codes, encode/decode; no I/O);
//! - [`auth`]: password hashes, topic permissions and the file formats they come in;
//! - [`config`]: the RON configuration, its validation and its diff;
//! - [`broker`]: the tokio actor system behind [`broker::BrokerHandle`];
//! - [`admin`]: the admin socket and [`admin::Admin`], the API consoles and commands use;
//! - [`model`]: the records the broker and the store share (messages, subscriptions);
//! - [`store`]: the `Store` trait that session state and retained messages go through;
//! - [`pki`]: the certificate authority, server and client certificates (files, thumbprints);
//! - [`cli`]: the subcommands that manage certificates, users and topic permissions;
//! - [`console`]: the ratatui administration console.
//!
//! The load generator, `roost-bench` (`src/bin/roost-bench/`), is a separate binary on top of
//! [`mqtt`]; it is not part of this library.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod config;
pub mod console;
pub mod headless;
pub mod model;
pub mod mqtt;
pub mod pki;
pub mod store;
