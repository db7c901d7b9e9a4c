//! The administration console: a ratatui terminal UI over a [`crate::broker::BrokerHandle`].
//!
//! - [`app`]: the state and `App::update(Action) -> Option<Effect>`;
//! - [`action`]: actions in, effects out; [`keymap`]: the one table of key bindings;
//! - [`node`], [`fields`], [`validate`]: the settings tree, the form fields and their checks;
//! - [`dashboard`], [`diag_log`]: the Status figures and the diagnostics ring buffer;
//! - [`theme`]: colours by purpose; [`ui`]: one render function per region;
//! - [`runtime`]: the terminal loop that executes effects against the broker.

pub mod action;
pub mod app;
pub mod cert_actions;
pub mod client_list;
pub mod clipboard;
pub mod command_line;
pub mod contrast;
pub mod dashboard;
pub mod diag_log;
mod diff;
mod error;
pub mod fields;
pub mod files;
pub mod keymap;
mod logging;
pub mod node;
pub mod rebase;
mod runtime;
pub mod theme;
pub mod ui;
pub mod users;
pub mod validate;

pub use action::{Action, Effect};
pub use app::App;
pub use error::ConsoleError;
pub use runtime::{ConsoleOptions, run, start};
