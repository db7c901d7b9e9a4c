//! The broker: a tokio actor system behind [`BrokerHandle`].
//!
//! - the supervisor owns the applied config and the listeners (`supervisor`);
//! - listeners accept sockets and start one connection task each (`listener`), within the
//!   connection limit (`admission`);
//! - a WebSockets listener's connections upgrade first, then run as any other (`websocket`);
//! - a connection reads packets and writes batches (`connection`);
//! - the router owns sessions, subscriptions and retained messages (`router`);
//! - TLS: the server configuration, client certificate rules and handshakes (`tls`);
//! - metrics are atomics read by the handle (`metrics`), published as `$SYS` (`sys`).

mod admission;
mod api;
mod auth;
mod connection;
mod diagnostics;
mod handle;
mod level_tree;
mod listener;
mod message;
mod metrics;
mod open_files;
mod retained_index;
mod router;
mod session;
mod small_map;
mod state;
mod store_apply;
mod subscriptions;
mod supervisor;
mod sys;
mod tls;
mod websocket;

pub use api::*;
pub use connection::{ByteStream, Input, Streamed};
pub use handle::{BrokerHandle, DiagnosticsReceiver};
pub use message::{Delivery, Message};
pub use subscriptions::{Subscription, filter_matches};
pub use tls::{PeerIdentity, TlsError};
pub use websocket::WsBytes;
