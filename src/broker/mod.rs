//! The broker: a tokio actor system behind [`BrokerHandle`].

mod api;
mod handle;

pub use api::*;
pub use handle::{BrokerHandle, DiagnosticsReceiver};
