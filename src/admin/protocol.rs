//! The admin protocol, version [`PROTOCOL_VERSION`].
//!
//! One JSON document per line (UTF-8, `\n`-terminated, at most [`MAX_LINE`] bytes) in each
//! direction over the admin Unix socket.
//!
//! 1. The client sends `{"Hello":{"protocol":2,"client":"roost console 0.1.0"}}`.
//! 2. The server answers `{"Welcome":{"protocol":2,"pid":1234,...}}`, or
//!    `{"Refused":{"reason":"..."}}` and closes when the versions differ. Only the `protocol`
//!    number of a Hello is read before the versions are compared, so a Hello from any version
//!    gets a readable refusal.
//! 3. The client sends `{"Request":{"id":N,"request":...}}`; the server answers each with
//!    `{"Response":{"id":N,"response":...}}`, not necessarily in order.
//! 4. The server also sends `{"Event":...}` at any time: every Apply (from any client), and,
//!    once a client asked with `WatchDiagnostics`, diagnostic events. Diagnostic events a slow
//!    client cannot take are dropped and counted (`DiagnosticsLost`), never waited for.
//!
//! Any change to these types that an older peer cannot read needs a new version number.
//! A request this side cannot read (a newer peer's) is answered with `Response::Error` when
//! its id can be read, so that the peer is not left waiting.
//!
//! Versions:
//! - 1: apply, stats, the client list, disconnect, diagnostics, hand edits;
//! - 2: `ClientDetail` (one client's subscriptions, will, session expiry and CONNECT
//!   properties, for the console's detail pane).

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::broker::{ApplyReport, ClientDetail, ClientInfo, DiagEvent, StatsSnapshot};
use crate::config::Config;

/// The version spoken by this build. Peers of another version are refused.
pub const PROTOCOL_VERSION: u32 = 2;

/// The longest line accepted (a config with thousands of users fits easily).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientMsg {
    Hello { protocol: u32, client: String },
    Request { id: u64, request: Request },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ServerMsg {
    Welcome(Welcome),
    Refused { reason: String },
    Response { id: u64, response: Response },
    Event(Event),
}

/// Who the client is talking to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol: u32,
    /// The broker's process id, for the console's title bar.
    pub pid: u32,
    /// The roost version of the broker.
    pub version: String,
    /// The config file the broker saves to.
    pub config_path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// The applied configuration (as saved, without command-line overrides).
    Applied,
    /// Apply and save. `overwrite_hand_edits`: save even when the file was edited by hand
    /// since it was loaded (otherwise that refuses the apply with `FileChangedByHand`).
    Apply {
        config: Box<Config>,
        overwrite_hand_edits: bool,
    },
    /// Re-reads the config file after hand edits; the broker keeps running as it is.
    ReloadFile,
    Stats,
    Clients,
    /// One client's session in full (since version 2); asked for one client at a time.
    ClientDetail {
        client_id: String,
    },
    Disconnect {
        client_id: String,
    },
    SetDiagnostics {
        on: bool,
    },
    /// Start sending diagnostic events to this client.
    WatchDiagnostics,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Applied(AppliedConfig),
    Apply(Result<ApplyOutcome, ApplyRefusal>),
    ReloadFile(Result<Box<Config>, String>),
    Stats(Box<StatsSnapshot>),
    Clients(Vec<ClientInfo>),
    /// `None`: no session with that client id.
    ClientDetail(Option<Box<ClientDetail>>),
    Disconnect {
        found: bool,
    },
    Done,
    /// The request could not be read (for example a request of a newer version).
    Error(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    /// A new configuration was applied (by any client).
    Applied(AppliedConfig),
    Diagnostic(Arc<DiagEvent>),
    /// This many diagnostic events were dropped because this client fell behind.
    DiagnosticsLost(u64),
}

/// The applied configuration and how many applies led to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedConfig {
    pub config: Box<Config>,
    /// Counts applies since the broker started; a console compares it to notice applies made
    /// by others.
    pub generation: u64,
}

/// What an accepted apply did, and whether the file was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    pub report: ApplyReport,
    pub generation: u64,
    pub saved: SaveOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaveOutcome {
    Saved {
        path: PathBuf,
        /// Where the previous file was copied because its hand-written comments could not be
        /// kept.
        comments_copied_to: Option<PathBuf>,
    },
    /// Applied, NOT saved, with the reason.
    NotSaved { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyRefusal {
    /// The broker refused the config; it runs as before.
    Refused(String),
    /// The file changed on disk since it was loaded; nothing was applied.
    FileChangedByHand { path: PathBuf },
}

impl std::fmt::Display for ApplyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyRefusal::Refused(reason) => f.write_str(reason),
            ApplyRefusal::FileChangedByHand { path } => write!(
                f,
                "{} was changed by hand since it was loaded",
                path.display()
            ),
        }
    }
}

/// Only the version of a Hello, read from any version's Hello.
#[derive(Debug, Deserialize)]
pub(crate) struct AnyHello {
    #[serde(rename = "Hello")]
    pub hello: HelloVersion,
}

#[derive(Debug, Deserialize)]
pub(crate) struct HelloVersion {
    pub protocol: u32,
}

/// Only the id of a request, read from a request this version does not know.
#[derive(Debug, Deserialize)]
pub(crate) struct AnyRequest {
    #[serde(rename = "Request")]
    pub request: RequestId,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RequestId {
    pub id: u64,
}

/// The refusal sent to a peer of another version.
pub fn version_mismatch(ours: u32, theirs: u32) -> String {
    format!(
        "admin protocol version mismatch: this side speaks version {ours}, the other side {theirs}; \
         run the console and the broker from the same roost release"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_of_any_version_can_be_read() {
        let line = r#"{"Hello":{"protocol":7,"client":"x","future_field":[1,2]}}"#;
        let hello: AnyHello = serde_json::from_str(line).unwrap();
        assert_eq!(hello.hello.protocol, 7);
    }

    #[test]
    fn the_id_of_an_unknown_request_can_be_read() {
        let line = r#"{"Request":{"id":9,"request":{"Teleport":{"to":"mars"}}}}"#;
        assert!(serde_json::from_str::<ClientMsg>(line).is_err());
        let any: AnyRequest = serde_json::from_str(line).unwrap();
        assert_eq!(any.request.id, 9);
    }

    #[test]
    fn messages_round_trip() {
        let msg = ClientMsg::Request {
            id: 3,
            request: Request::Apply {
                config: Box::default(),
                overwrite_hand_edits: false,
            },
        };
        let text = serde_json::to_string(&msg).unwrap();
        assert!(!text.contains('\n'), "one message is one line");
        let back: ClientMsg = serde_json::from_str(&text).unwrap();
        assert!(matches!(back, ClientMsg::Request { id: 3, .. }));
    }
}
