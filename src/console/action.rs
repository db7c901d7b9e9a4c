//! What can happen to the console (actions) and what the console asks the runtime to do
//! (effects). `App::update` turns one into the other; the runtime executes effects and feeds
//! their results back as actions, so the state can be driven in tests without a terminal.

use std::sync::Arc;

use ratatui::crossterm::event::KeyEvent;

use crate::broker::{ApplyReport, ClientInfo, DiagEvent, StatsSnapshot};
use crate::config::Config;

// Actions pass one at a time from the runtime into `App::update` and are not stored: a large
// variant costs a copy, boxing it an allocation per statistics tick.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Action {
    /// A key press from the terminal.
    Key(KeyEvent),
    /// A mouse click on a tree item.
    SelectNode(usize),
    /// The broker's answer to an `Effect::Apply`.
    ApplyFinished(Result<ApplyReport, String>),
    /// Whether the applied configuration could be written to the file.
    Saved(Result<(), String>),
    /// The outcome of an `Effect::Disconnect`: whether the client was still connected.
    Disconnected {
        client_id: String,
        found: bool,
    },
    Stats(StatsSnapshot),
    Clients(Vec<ClientInfo>),
    Diag(Arc<DiagEvent>),
    /// The diagnostics channel overflowed and this many events were lost.
    DiagLagged(u64),
    /// What is on disk behind the configured certificate paths.
    Files(std::collections::BTreeMap<std::path::PathBuf, super::files::FileState>),
    /// A certificate action finished: its report and the changed configuration, or why not.
    CertificateDone(Result<super::cert_actions::CertDone, String>),
    /// SIGTERM or SIGHUP: leave without asking.
    Terminate,
}

/// Work for the runtime loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send this config through `BrokerHandle::apply` and save it when accepted.
    Apply(Box<Config>),
    /// `BrokerHandle::disconnect_client`.
    Disconnect(String),
    /// `BrokerHandle::set_diagnostics`, live.
    SetDiagnostics(bool),
    /// A certificate action (`pki::commands`), on the pending configuration.
    Certificate(crate::pki::commands::CertCommand),
    /// Stop the broker, restore the terminal and return.
    Quit,
}
