//! What can happen to the console (actions) and what the console asks the runtime to do
//! (effects). `App::update` turns one into the other; the runtime executes effects and feeds
//! their results back as actions, so the state can be driven in tests without a terminal.

use std::sync::Arc;

use ratatui::crossterm::event::KeyEvent;

use crate::admin::{AppliedConfig, ApplyOutcome, ApplyRefusal};
use crate::broker::{ClientDetail, ClientInfo, DiagEvent, StatsSnapshot};
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
    /// The broker's answer to an `Effect::Apply`: what changed and whether the file was
    /// written, or why nothing was applied.
    ApplyFinished(Result<ApplyOutcome, ApplyRefusal>),
    /// A configuration was applied by another console or command (or by this one: the
    /// generation tells).
    AppliedElsewhere(AppliedConfig),
    /// The config file as re-read after hand edits (`Effect::ReloadFile`).
    FileReloaded(Result<Config, String>),
    /// The broker cannot be reached any more (an attached console whose broker stopped).
    BrokerGone(String),
    /// The outcome of an `Effect::DisconnectMany`: how many were still connected.
    DisconnectedMany {
        asked: usize,
        found: usize,
    },
    /// The outcome of an `Effect::Disconnect`: whether the client was still connected.
    Disconnected {
        client_id: String,
        found: bool,
    },
    Stats(StatsSnapshot),
    Clients(Vec<ClientInfo>),
    /// The broker's answer to `Effect::ClientDetail`: `None` when it has no session for
    /// the client (any more).
    ClientDetail {
        client_id: String,
        detail: Option<Box<ClientDetail>>,
    },
    Diag(Arc<DiagEvent>),
    /// The diagnostics channel overflowed and this many events were lost.
    DiagLagged(u64),
    /// What is on disk behind the configured certificate paths.
    Files(std::collections::BTreeMap<std::path::PathBuf, super::files::FileState>),
    /// A certificate action finished: its report and the changed configuration, or why not.
    CertificateDone(Result<super::cert_actions::CertDone, String>),
    /// Time passes (the render tick): notices expire.
    Tick(std::time::Instant),
    /// SIGTERM or SIGHUP: leave without asking.
    Terminate,
}

/// Work for the runtime loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Apply this config through `Admin::apply`, which saves it when accepted;
    /// `overwrite_hand_edits` saves even over a file edited by hand.
    Apply {
        config: Box<Config>,
        overwrite_hand_edits: bool,
    },
    /// Re-read the config file (`Admin::reload_file`).
    ReloadFile,
    /// `Admin::client_detail` of this client, for the detail pane.
    ClientDetail(String),
    /// `Admin::disconnect`.
    Disconnect(String),
    /// `Admin::disconnect` for each of these clients.
    DisconnectMany(Vec<String>),
    /// `Admin::set_diagnostics`, live.
    SetDiagnostics(bool),
    /// A certificate action (`pki::commands`), on the pending configuration.
    Certificate(crate::pki::commands::CertCommand),
    /// Put this text on the operator's clipboard (an OSC 52 sequence to the terminal).
    Clipboard(String),
    /// Restore the terminal and return; the broker stops only if this process owns it.
    Quit,
}
