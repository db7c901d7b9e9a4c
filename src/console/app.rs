//! The console's state and its one entry point, [`App::update`]: an action in, maybe an
//! effect out. Drawing only reads this state.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ratatui::crossterm::event::{Event, KeyEvent};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::admin::{AppliedConfig, ApplyOutcome, ApplyRefusal, Origin, SaveOutcome};
use crate::broker::ClientInfo;
use crate::config::{ClientCertificateStatus, Config};

use super::action::{Action, Effect};
use super::cert_actions::{self, CertPrompt, Step};
use super::client_list::ClientList;
use super::dashboard::Dashboard;
use super::diag_log::DiagLog;
use super::fields::{Field, FieldKind};
use super::files::FileState;
use super::keymap::{self, Command, Scope};
use super::node::Node;
use super::theme::Theme;
use super::users::{DialogOutcome, UserDialog};
use crate::pki::commands::CertCommand;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Tree,
    Pane,
}

/// A text field being edited: the input, and the validation message while it is invalid.
#[derive(Debug, Clone)]
pub struct Editing {
    pub target: EditTarget,
    pub input: Input,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditTarget {
    Field(Field),
    /// The diagnostics log filter.
    LogFilter,
    /// A path or name for a certificate action (`App::prompt` says which).
    Certificate,
    /// The Clients view's filter (client id, address or user).
    ClientFilter,
    /// The `:` command line.
    CommandLine,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    Help {
        scroll: u16,
    },
    ConfirmQuit,
    ConfirmDisconnect(String),
    /// A destructive certificate action and the question that says what it invalidates.
    ConfirmCertificate(CertCommand, String),
    /// Remove this user? Says what it invalidates.
    ConfirmRemoveUser(String),
    /// Disconnect every client the filter shows.
    ConfirmDisconnectMany(Vec<String>),
    /// The outcome of an apply: the report and whether it was saved, or why it was refused.
    ApplyResult(Result<ApplyOutcome, ApplyRefusal>),
    /// The config file was edited by hand since it was loaded: reload, overwrite or cancel.
    FileChanged,
    Message(String),
}

/// A one-line note in the title bar, such as "pending changes discarded". It expires: what
/// must stay visible (an unsaved config, conflicts) has its own mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
    pub expires_at: std::time::Instant,
}

/// How long a notice shows; errors a little longer.
pub const NOTICE_SECS: u64 = 5;
pub const ERROR_NOTICE_SECS: u64 = 10;

impl Notice {
    pub fn new(text: String, is_error: bool) -> Notice {
        let secs = if is_error {
            ERROR_NOTICE_SECS
        } else {
            NOTICE_SECS
        };
        Notice {
            text,
            is_error,
            expires_at: std::time::Instant::now() + std::time::Duration::from_secs(secs),
        }
    }
}

pub struct App {
    pub config_path: PathBuf,
    /// The configuration the broker runs.
    pub applied: Config,
    /// The configuration being edited; Apply sends it to the broker.
    pub pending: Config,
    /// The config sent with the apply in progress.
    pub in_flight: Option<Config>,
    pub focus: Focus,
    pub node: Node,
    /// Selected row per node (form field, client, certificate, user).
    cursor: [usize; Node::ALL.len()],
    pub editing: Option<Editing>,
    /// What the certificate prompt being edited is for.
    pub prompt: Option<CertPrompt>,
    /// Adding a user, changing a password or editing topic permissions (Users node).
    pub user_dialog: Option<UserDialog>,
    pub popup: Option<Popup>,
    pub notice: Option<Notice>,
    pub dashboard: Dashboard,
    /// The connected clients, with the filter and sort order of the Clients view.
    pub clients: ClientList,
    pub log: DiagLog,
    /// Certificate and key files as last inspected.
    pub files: BTreeMap<PathBuf, FileState>,
    /// Whether diagnostics are switched on in the broker right now.
    pub diagnostics_live: bool,
    pub theme: Theme,
    pub should_quit: bool,
    /// Whether the broker runs in this process or is attached to.
    pub origin: Origin,
    /// The generation of `applied` (counts applies in the broker process).
    pub applied_generation: u64,
    /// Pending edits that conflict with a configuration applied by someone else.
    pub conflicts: Vec<String>,
    /// Why the last applied configuration is not in the file, while it is not.
    pub unsaved: Option<String>,
    /// Set when the broker cannot be reached any more.
    pub broker_gone: Option<String>,
}

impl App {
    pub fn new(config: Config, config_path: PathBuf, theme: Theme) -> App {
        // A broker that is already enabled opens on what an operator comes to see; a fresh
        // config on the form that enables it.
        let start_node = if config.broker.enabled {
            Node::Status
        } else {
            Node::Broker
        };
        App {
            config_path,
            diagnostics_live: config.diagnostics.log_messages,
            pending: config.clone(),
            applied: config,
            in_flight: None,
            focus: Focus::Tree,
            node: start_node,
            cursor: [0; Node::ALL.len()],
            editing: None,
            prompt: None,
            user_dialog: None,
            popup: None,
            notice: None,
            dashboard: Dashboard::default(),
            clients: ClientList::default(),
            log: DiagLog::default(),
            files: BTreeMap::new(),
            theme,
            should_quit: false,
            origin: Origin::InProcess,
            applied_generation: 0,
            conflicts: Vec::new(),
            unsaved: None,
            broker_gone: None,
        }
    }

    /// Whether quitting stops the broker.
    pub fn owns_broker(&self) -> bool {
        self.origin == Origin::InProcess
    }

    /// The connected clients a quit would disconnect (none when attached).
    pub fn clients_lost_on_quit(&self) -> u64 {
        if self.owns_broker() {
            self.dashboard.latest.clients
        } else {
            0
        }
    }

    // ----- reading the state -------------------------------------------------------------

    /// The selected row of the current node.
    pub fn cursor(&self) -> usize {
        self.cursor[self.node.index()]
    }

    pub fn cursor_of(&self, node: Node) -> usize {
        self.cursor[node.index()]
    }

    pub fn selected_field(&self) -> Option<Field> {
        self.node.fields().get(self.cursor()).copied()
    }

    pub fn is_dirty(&self, field: Field) -> bool {
        field.get(&self.pending) != field.get(&self.applied)
    }

    /// The dotted paths of every setting that differs between pending and applied.
    pub fn pending_changes(&self) -> Vec<String> {
        super::diff::changed_paths(&self.applied, &self.pending)
    }

    pub fn has_pending_changes(&self) -> bool {
        self.pending != self.applied
    }

    pub fn is_applying(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The scopes whose bindings apply now, most specific first (gitui style: a popup takes
    /// every key; otherwise the focused component, then the global commands).
    pub fn active_scopes(&self) -> Vec<Scope> {
        match &self.popup {
            Some(Popup::Help { .. }) => return vec![Scope::Help],
            Some(
                Popup::ConfirmQuit
                | Popup::ConfirmDisconnect(_)
                | Popup::ConfirmDisconnectMany(_)
                | Popup::ConfirmCertificate(..)
                | Popup::ConfirmRemoveUser(_),
            ) => return vec![Scope::Confirm],
            Some(Popup::ApplyResult(_) | Popup::Message(_)) => return vec![Scope::Dismiss],
            Some(Popup::FileChanged) => return vec![Scope::FileChanged],
            None => {}
        }
        if self.editing.is_some() || self.user_dialog.is_some() {
            return vec![Scope::Editing];
        }
        self.component_scopes()
    }

    /// The scopes of the focused component and the global ones, whatever popup is open.
    pub fn component_scopes(&self) -> Vec<Scope> {
        let mut scopes = match self.focus {
            Focus::Tree => vec![Scope::Tree],
            Focus::Pane => match self.node {
                Node::Broker | Node::Limits => vec![Scope::Form],
                Node::CertificateAuthority | Node::ServerCertificate => {
                    vec![Scope::Form, Scope::Certificate]
                }
                Node::Diagnostics => vec![Scope::Form, Scope::DiagnosticsLog],
                Node::Clients => vec![Scope::List, Scope::Clients],
                Node::ClientCertificates => vec![Scope::List, Scope::CertificateList],
                Node::Users => vec![Scope::List, Scope::Users],
                Node::Status => vec![],
            },
        };
        scopes.push(Scope::Global);
        scopes
    }

    /// Whether a command does something useful right now; the command bar shows only those.
    pub fn offers(&self, command: Command) -> bool {
        let kind = self.selected_field().map(Field::kind);
        match command {
            Command::Edit => kind == Some(FieldKind::Text),
            Command::Toggle if self.node == Node::ClientCertificates => {
                !self.pending.certificates.clients.is_empty()
            }
            Command::Toggle => matches!(kind, Some(FieldKind::Checkbox | FieldKind::Choice)),
            Command::Disconnect | Command::DisconnectMatching => !self.clients.is_empty(),
            Command::RevokeCertificate | Command::RemoveCertificate => {
                !self.pending.certificates.clients.is_empty()
            }
            Command::Revert => self.has_pending_changes(),
            Command::ChangePassword | Command::RemoveUser | Command::EditRules => {
                !self.pending.users.is_empty()
            }
            _ => true,
        }
    }

    /// Rows of the current node's list, for cursor bounds.
    fn row_count(&self) -> usize {
        match self.node {
            Node::Clients => self.clients.len(),
            Node::ClientCertificates => self.pending.certificates.clients.len(),
            Node::Users => self.pending.users.len(),
            node => node.fields().len(),
        }
    }

    // ----- changing the state ------------------------------------------------------------

    pub fn update(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Key(key) => self.on_key(key),
            Action::SelectNode(index) => {
                if let Some(node) = Node::ALL.get(index)
                    && self.popup.is_none()
                    && self.editing.is_none()
                {
                    self.node = *node;
                    self.focus = Focus::Tree;
                }
                None
            }
            Action::ApplyFinished(result) => self.on_apply_finished(result),
            Action::AppliedElsewhere(applied) => {
                self.on_applied_elsewhere(applied);
                None
            }
            Action::FileReloaded(result) => {
                self.on_file_reloaded(result);
                None
            }
            Action::BrokerGone(reason) => {
                self.notice = Some(Notice::new(format!("broker unreachable: {reason}"), true));
                self.broker_gone = Some(reason);
                None
            }
            Action::Stats(stats) => {
                // A store restored from a backup is said once in a popup, and stays in Status.
                let restored = match &self.dashboard.latest.store_recovery {
                    None => stats.store_recovery.clone(),
                    Some(_) => None,
                };
                self.dashboard.record(stats);
                if let Some(restored) = restored
                    && self.popup.is_none()
                {
                    self.popup = Some(Popup::Message(format!(
                        "The store was restored from a backup when the broker started: {restored}"
                    )));
                }
                None
            }
            Action::Clients(clients) => {
                self.set_clients(clients);
                // A pane opened on an empty list shows the first client that arrives.
                if self.clients.detail_of.is_none() {
                    return self.detail_follows_selection();
                }
                None
            }
            Action::ClientDetail { client_id, detail } => {
                self.clients.set_detail(&client_id, detail);
                None
            }
            Action::Disconnected { client_id, found } => {
                self.notice = Some(if found {
                    Notice::new(format!("disconnected {client_id}"), false)
                } else {
                    Notice::new(format!("{client_id} was no longer connected"), true)
                });
                None
            }
            Action::DisconnectedMany { asked, found } => {
                self.notice = Some(Notice::new(
                    format!("disconnected {found} of {asked} clients"),
                    found < asked,
                ));
                None
            }
            Action::Diag(event) => {
                self.log.push(event);
                None
            }
            Action::DiagLagged(lost) => {
                self.log.lost += lost;
                None
            }
            Action::Files(files) => {
                self.files = files;
                None
            }
            Action::CertificateDone(result) => {
                let text = match result {
                    Ok(done) => {
                        if let Some(config) = done.config {
                            self.pending = *config;
                        }
                        done.report
                    }
                    Err(error) => format!("Not done: {error}"),
                };
                self.popup = Some(Popup::Message(text));
                None
            }
            Action::Tick(now) => {
                if self.notice.as_ref().is_some_and(|n| n.expires_at <= now) {
                    self.notice = None;
                }
                None
            }
            Action::Terminate => {
                self.should_quit = true;
                Some(Effect::Quit)
            }
        }
    }

    /// A certificate key of the current node: a prompt, a question or the command at once.
    fn certificate_command(&mut self, command: Command) -> Option<Effect> {
        let selected = self
            .pending
            .certificates
            .clients
            .get(self.cursor())
            .map(|c| c.thumbprint.clone());
        let step = match (self.node, command) {
            (Node::CertificateAuthority, Command::NewCertificate) => {
                Step::Run(CertCommand::CaCreate {
                    common_name: "roost CA".into(),
                })
            }
            (Node::CertificateAuthority, Command::ImportCertificate) => {
                Step::Ask(CertPrompt::CaImport)
            }
            (Node::CertificateAuthority, Command::ExportCertificate) => {
                Step::Ask(CertPrompt::CaExport)
            }
            (Node::CertificateAuthority, Command::ShowCertificate) => {
                Step::Run(CertCommand::CaShow)
            }
            (Node::ServerCertificate, Command::NewCertificate) => {
                Step::Run(CertCommand::ServerCreate)
            }
            (Node::ServerCertificate, Command::ImportCertificate) => {
                Step::Ask(CertPrompt::ServerImport)
            }
            (Node::ServerCertificate, Command::ExportCertificate) => {
                Step::Ask(CertPrompt::ServerExport)
            }
            (Node::ServerCertificate, Command::ShowCertificate) => {
                Step::Run(CertCommand::ServerShow)
            }
            (Node::ClientCertificates, Command::NewCertificate) => Step::Ask(CertPrompt::IssueName),
            (Node::ClientCertificates, Command::ImportCertificate) => {
                Step::Ask(CertPrompt::AddFile)
            }
            (Node::ClientCertificates, Command::RevokeCertificate) => {
                Step::Run(CertCommand::ClientRevoke { id: selected? })
            }
            (Node::ClientCertificates, Command::RemoveCertificate) => {
                Step::Run(CertCommand::ClientRemove { id: selected? })
            }
            _ => return None,
        };
        self.take_step(step)
    }

    /// `y` on a certificate node: the thumbprint of the CA or server certificate on disk, or
    /// of the selected client certificate, to the operator's clipboard.
    fn copy_thumbprint(&mut self) -> Option<Effect> {
        let thumbprint = match self.node {
            Node::ClientCertificates => self
                .pending
                .certificates
                .clients
                .get(self.cursor())
                .map(|certificate| certificate.thumbprint.clone()),
            Node::CertificateAuthority | Node::ServerCertificate => {
                let paths = crate::pki::PkiPaths::new(
                    &self.pending.certificates,
                    &self.pending.persistence.data_dir,
                );
                let path = match self.node {
                    Node::CertificateAuthority => paths.ca_certificate,
                    _ => paths.server_certificate,
                };
                match self.files.get(&path) {
                    Some(FileState::Pem { thumbprint, .. }) => thumbprint.clone(),
                    _ => None,
                }
            }
            _ => None,
        };
        match thumbprint {
            Some(thumbprint) => {
                self.notice = Some(Notice::new(
                    "copied thumbprint to clipboard (OSC 52)".to_string(),
                    false,
                ));
                Some(Effect::Clipboard(thumbprint))
            }
            None => {
                self.notice = Some(Notice::new(
                    "no certificate here to copy the thumbprint of".to_string(),
                    true,
                ));
                None
            }
        }
    }

    fn take_step(&mut self, step: Step) -> Option<Effect> {
        match step {
            Step::Ask(prompt) => {
                self.editing = Some(Editing {
                    target: EditTarget::Certificate,
                    input: Input::new(prompt.initial()),
                    error: None,
                });
                self.prompt = Some(prompt);
                None
            }
            Step::Run(command) => match cert_actions::confirmation(&command) {
                Some(question) => {
                    self.popup = Some(Popup::ConfirmCertificate(command, question));
                    None
                }
                None => Some(Effect::Certificate(command)),
            },
        }
    }

    /// Replaces the client list, keeping the same client selected when it is still there.
    fn set_clients(&mut self, clients: Vec<ClientInfo>) {
        self.update_clients(|list| list.set(clients));
    }

    /// Changes the client list (new figures, filter, order) and keeps the same client
    /// selected when it is still shown.
    fn update_clients(&mut self, change: impl FnOnce(&mut ClientList)) {
        let index = Node::Clients.index();
        let selected = self
            .clients
            .row(self.cursor[index])
            .map(|c| c.client_id.clone());
        change(&mut self.clients);
        let position = selected.and_then(|id| self.clients.position(&id));
        self.cursor[index] = position
            .unwrap_or(self.cursor[index])
            .min(self.clients.len().saturating_sub(1));
    }

    /// With the detail pane open in the Clients view, points it at the selected client and
    /// asks for its details when that is another client.
    fn detail_follows_selection(&mut self) -> Option<Effect> {
        if !self.clients.detail || self.node != Node::Clients || self.focus != Focus::Pane {
            return None;
        }
        let selected = self.selected_client().map(|c| c.client_id.clone());
        if !self.clients.show_detail_of(selected.clone()) {
            return None;
        }
        selected.map(|id| Effect::ClientDetail(id.to_string()))
    }

    /// The client selected in the Clients view.
    pub fn selected_client(&self) -> Option<&ClientInfo> {
        self.clients.row(self.cursor_of(Node::Clients))
    }

    fn on_key(&mut self, key: KeyEvent) -> Option<Effect> {
        // A user dialog takes every key: what is typed there may be a password.
        if self.popup.is_none()
            && let Some(dialog) = &mut self.user_dialog
        {
            match dialog.on_key(key, &mut self.pending) {
                DialogOutcome::Open => {}
                DialogOutcome::Cancelled => self.user_dialog = None,
                DialogOutcome::Done(text) => {
                    self.user_dialog = None;
                    self.notice = Some(Notice::new(text, false));
                }
            }
            return None;
        }
        let scopes = self.active_scopes();
        match keymap::lookup(&scopes, &key) {
            Some(binding) => self.on_command(binding.command),
            None => {
                if let Some(editing) = &mut self.editing {
                    editing.input.handle_event(&Event::Key(key));
                    editing.error = match editing.target {
                        EditTarget::Field(field) => field.check_text(editing.input.value()).err(),
                        EditTarget::LogFilter
                        | EditTarget::ClientFilter
                        | EditTarget::Certificate => None,
                        EditTarget::CommandLine => {
                            super::command_line::check(editing.input.value()).err()
                        }
                    };
                    let value = editing.input.value().to_string();
                    match editing.target {
                        EditTarget::LogFilter => self.log.set_filter(&value),
                        EditTarget::ClientFilter => {
                            self.update_clients(|list| list.set_filter(&value))
                        }
                        EditTarget::Field(_)
                        | EditTarget::CommandLine
                        | EditTarget::Certificate => {}
                    }
                }
                None
            }
        }
    }

    fn on_command(&mut self, command: Command) -> Option<Effect> {
        if let Some(popup) = self.popup.clone() {
            return self.on_popup_command(popup, command);
        }
        if self.editing.is_some() {
            return self.on_editing_command(command);
        }
        match command {
            Command::Up | Command::Down | Command::Top | Command::Bottom => {
                self.move_cursor(match command {
                    Command::Up => -1,
                    Command::Down => 1,
                    Command::Top => isize::MIN,
                    _ => isize::MAX,
                });
                return self.detail_follows_selection();
            }
            Command::NextPane | Command::PrevPane => {
                self.focus = match self.focus {
                    Focus::Tree => Focus::Pane,
                    Focus::Pane => Focus::Tree,
                };
            }
            Command::Right if self.focus == Focus::Tree => self.focus = Focus::Pane,
            Command::Right | Command::Left => {
                if self.selected_field().map(Field::kind) == Some(FieldKind::Choice) {
                    return self.toggle(command == Command::Left);
                }
                if command == Command::Left {
                    self.focus = Focus::Tree;
                }
            }
            Command::Edit => return self.start_editing(),
            Command::Toggle => return self.toggle(false),
            Command::Apply => return self.apply(),
            Command::Revert => return self.revert(),
            Command::Help => self.popup = Some(Popup::Help { scroll: 0 }),
            Command::Back => self.focus = Focus::Tree,
            Command::Jump(index) => {
                if let Some(node) = Node::ALL.get(index) {
                    self.node = *node;
                    self.focus = Focus::Pane;
                }
            }
            Command::CommandLine => {
                self.editing = Some(Editing {
                    target: EditTarget::CommandLine,
                    input: Input::default(),
                    error: None,
                });
            }
            Command::Complete => {}
            Command::Quit => {
                // Ask before losing edits, leaving an unsaved config, or (owning the broker)
                // disconnecting clients; an attached console leaves the broker running.
                if self.has_pending_changes()
                    || self.unsaved.is_some()
                    || self.clients_lost_on_quit() > 0
                {
                    self.popup = Some(Popup::ConfirmQuit);
                } else {
                    self.should_quit = true;
                    return Some(Effect::Quit);
                }
            }
            Command::Disconnect => {
                if let Some(client) = self.selected_client() {
                    self.popup = Some(Popup::ConfirmDisconnect(client.client_id.to_string()));
                }
            }
            Command::DisconnectMatching => {
                let ids = self.clients.matching_ids();
                if !ids.is_empty() {
                    self.popup = Some(Popup::ConfirmDisconnectMany(ids));
                }
            }
            // A new order starts at its top: that is where the operator looks.
            Command::SortNext => {
                self.clients.sort_by_next_column();
                self.cursor[Node::Clients.index()] = 0;
            }
            Command::SortReverse => {
                self.clients.reverse();
                self.cursor[Node::Clients.index()] = 0;
            }
            Command::Details => {
                self.clients.detail = !self.clients.detail;
                if !self.clients.detail {
                    self.clients.show_detail_of(None);
                    return None;
                }
                return self.detail_follows_selection();
            }
            Command::Pause => self.log.toggle_pause(),
            Command::Filter if self.node == Node::Clients => {
                self.editing = Some(Editing {
                    target: EditTarget::ClientFilter,
                    input: Input::new(self.clients.filter.clone()),
                    error: None,
                });
            }
            Command::Filter => {
                self.editing = Some(Editing {
                    target: EditTarget::LogFilter,
                    input: Input::new(self.log.filter().to_string()),
                    error: None,
                });
            }
            Command::ClearLog => self.log.clear(),
            Command::NewCertificate
            | Command::ImportCertificate
            | Command::ExportCertificate
            | Command::ShowCertificate
            | Command::RevokeCertificate
            | Command::RemoveCertificate => return self.certificate_command(command),
            Command::CopyThumbprint => return self.copy_thumbprint(),
            Command::AddUser => self.user_dialog = Some(UserDialog::add()),
            Command::ChangePassword => {
                if let Some(user) = self.pending.users.get(self.cursor()) {
                    self.user_dialog = Some(UserDialog::change_password(&user.username));
                }
            }
            Command::EditRules => {
                if let Some(user) = self.pending.users.get(self.cursor()) {
                    self.user_dialog = Some(UserDialog::edit_rules(&self.pending, &user.username));
                }
            }
            Command::RemoveUser => {
                if let Some(user) = self.pending.users.get(self.cursor()) {
                    self.popup = Some(Popup::ConfirmRemoveUser(user.username.clone()));
                }
            }
            Command::PageUp => self.log.scroll(10),
            Command::PageDown => self.log.scroll(-10),
            Command::Confirm | Command::Cancel | Command::Reload | Command::Overwrite => {}
        }
        None
    }

    fn on_popup_command(&mut self, popup: Popup, command: Command) -> Option<Effect> {
        match (popup, command) {
            (Popup::Help { scroll }, Command::Up) => {
                self.popup = Some(Popup::Help {
                    scroll: scroll.saturating_sub(1),
                })
            }
            (Popup::Help { scroll }, Command::Down) => {
                self.popup = Some(Popup::Help {
                    scroll: scroll.saturating_add(1),
                })
            }
            (Popup::ConfirmQuit, Command::Confirm) => {
                self.popup = None;
                self.should_quit = true;
                return Some(Effect::Quit);
            }
            (Popup::ConfirmDisconnect(client_id), Command::Confirm) => {
                self.popup = None;
                return Some(Effect::Disconnect(client_id));
            }
            (Popup::ConfirmCertificate(command, _), Command::Confirm) => {
                self.popup = None;
                return Some(Effect::Certificate(command));
            }
            (Popup::ConfirmRemoveUser(username), Command::Confirm) => {
                self.popup = None;
                let text = super::users::remove_user(&mut self.pending, &username);
                let rows = self.pending.users.len();
                let index = Node::Users.index();
                self.cursor[index] = self.cursor[index].min(rows.saturating_sub(1));
                self.notice = Some(Notice::new(text, false));
            }
            (Popup::ConfirmDisconnectMany(ids), Command::Confirm) => {
                self.popup = None;
                return Some(Effect::DisconnectMany(ids));
            }
            (Popup::FileChanged, Command::Reload) => {
                self.popup = None;
                return Some(Effect::ReloadFile);
            }
            (Popup::FileChanged, Command::Overwrite) => {
                self.popup = None;
                return self.start_apply(true);
            }
            (_, Command::Cancel) => self.popup = None,
            _ => {}
        }
        None
    }

    fn on_editing_command(&mut self, command: Command) -> Option<Effect> {
        let editing = self.editing.as_mut()?;
        match (editing.target, command) {
            (EditTarget::Field(field), Command::Confirm) => {
                let value = editing.input.value().to_string();
                match field.set_text(&mut self.pending, &value) {
                    Ok(()) => self.editing = None,
                    // Invalid input is not accepted: stay in the editor with the message.
                    Err(message) => editing.error = Some(message),
                }
            }
            (EditTarget::CommandLine, Command::Confirm) => {
                let line = editing.input.value().to_string();
                self.editing = None;
                return self.run_command_line(&line);
            }
            (EditTarget::CommandLine, Command::Complete) => {
                let completed = super::command_line::complete(editing.input.value());
                editing.input = Input::new(completed);
            }
            (EditTarget::CommandLine, Command::Cancel) => self.editing = None,
            (EditTarget::LogFilter | EditTarget::ClientFilter, Command::Confirm) => {
                self.editing = None
            }
            (EditTarget::ClientFilter, Command::Cancel) => {
                self.editing = None;
                self.update_clients(|list| list.set_filter(""));
            }
            (EditTarget::LogFilter, Command::Cancel) => {
                self.log.set_filter("");
                self.editing = None;
            }
            (EditTarget::Field(_), Command::Cancel) => self.editing = None,
            (EditTarget::Certificate, Command::Confirm) => {
                let text = editing.input.value().to_string();
                let prompt = self.prompt.clone()?;
                match prompt.next(&text) {
                    Ok(step) => {
                        self.editing = None;
                        self.prompt = None;
                        return self.take_step(step);
                    }
                    Err(message) => editing.error = Some(message),
                }
            }
            (EditTarget::Certificate, Command::Complete) => {
                let completed = cert_actions::complete_path(editing.input.value());
                editing.input = Input::new(completed);
            }
            (EditTarget::Certificate, Command::Cancel) => {
                self.editing = None;
                self.prompt = None;
            }
            _ => {}
        }
        None
    }

    /// Runs a `:` command (see [`super::command_line`]).
    fn run_command_line(&mut self, line: &str) -> Option<Effect> {
        use super::command_line::{CommandLine, parse};
        match parse(line) {
            Ok(CommandLine::Open(node)) => {
                self.node = node;
                self.focus = Focus::Pane;
            }
            Ok(CommandLine::Apply) => return self.apply(),
            Ok(CommandLine::Theme(name)) => match Theme::built_in(&name) {
                Some(theme) => self.theme = theme,
                None => {
                    self.notice = Some(Notice::new(format!("no theme named {name:?}"), true));
                }
            },
            Ok(CommandLine::Help) => self.popup = Some(Popup::Help { scroll: 0 }),
            Ok(CommandLine::Quit) => return self.on_command(Command::Quit),
            Err(message) => self.notice = Some(Notice::new(message, true)),
        }
        None
    }

    fn move_cursor(&mut self, delta: isize) {
        if self.focus == Focus::Tree {
            let index = step(self.node.index(), delta, Node::ALL.len());
            self.node = Node::ALL[index];
            return;
        }
        let rows = self.row_count();
        let index = self.node.index();
        self.cursor[index] = step(self.cursor[index], delta, rows);
    }

    fn start_editing(&mut self) -> Option<Effect> {
        let field = self.selected_field()?;
        match field.kind() {
            FieldKind::Text => {
                self.editing = Some(Editing {
                    target: EditTarget::Field(field),
                    input: Input::new(field.get(&self.pending).as_text()),
                    error: None,
                });
                None
            }
            FieldKind::Checkbox | FieldKind::Choice => self.toggle(false),
        }
    }

    fn toggle(&mut self, back: bool) -> Option<Effect> {
        if self.node == Node::ClientCertificates {
            let cursor = self.cursor();
            if let Some(cert) = self.pending.certificates.clients.get_mut(cursor) {
                cert.status = match cert.status {
                    ClientCertificateStatus::Authorized => ClientCertificateStatus::Revoked,
                    ClientCertificateStatus::Revoked => ClientCertificateStatus::Authorized,
                };
            }
            return None;
        }
        let field = self.selected_field()?;
        if field.kind() == FieldKind::Text {
            // Space on a text field starts editing it, as Enter does.
            return self.start_editing();
        }
        field.toggle(&mut self.pending, back);
        if field == Field::LogMessages {
            // A live switch, not a pending change: it acts at once and is part of the applied
            // configuration from now on (the broker saves it with the next apply).
            self.diagnostics_live = self.pending.diagnostics.log_messages;
            self.applied.diagnostics.log_messages = self.diagnostics_live;
            return Some(Effect::SetDiagnostics(self.diagnostics_live));
        }
        None
    }

    fn apply(&mut self) -> Option<Effect> {
        self.start_apply(false)
    }

    fn start_apply(&mut self, overwrite_hand_edits: bool) -> Option<Effect> {
        if self.is_applying() {
            self.notice = Some(Notice::new(
                "an apply is already in progress".to_string(),
                true,
            ));
            return None;
        }
        self.in_flight = Some(self.pending.clone());
        self.notice = Some(Notice::new("applying…".to_string(), false));
        Some(Effect::Apply {
            config: Box::new(self.pending.clone()),
            overwrite_hand_edits,
        })
    }

    fn on_apply_finished(&mut self, result: Result<ApplyOutcome, ApplyRefusal>) -> Option<Effect> {
        let sent = self.in_flight.take();
        match &result {
            Ok(outcome) => {
                if let Some(config) = sent {
                    self.applied = config;
                }
                self.applied_generation = self.applied_generation.max(outcome.generation);
                self.conflicts.clear();
                self.diagnostics_live = self.applied.diagnostics.log_messages;
                self.notice = None;
                match &outcome.saved {
                    SaveOutcome::Saved { .. } => self.unsaved = None,
                    SaveOutcome::NotSaved { reason } => {
                        self.unsaved = Some(reason.clone());
                        self.notice =
                            Some(Notice::new(format!("applied, NOT saved: {reason}"), true));
                    }
                }
            }
            Err(ApplyRefusal::FileChangedByHand { .. }) => {
                self.popup = Some(Popup::FileChanged);
                return None;
            }
            Err(ApplyRefusal::Refused(reason)) => {
                // Refused: the broker runs as before and the pending edits stay for fixing.
                self.notice = Some(Notice::new(
                    "apply refused; pending changes kept".to_string(),
                    true,
                ));
                let reason = reason.clone();
                self.select_field_named_in(&reason);
            }
        }
        self.popup = Some(Popup::ApplyResult(result));
        None
    }

    /// Another console (or a command) applied a configuration: it becomes the applied one,
    /// and the pending edits are carried onto it; those it contradicts are marked.
    fn on_applied_elsewhere(&mut self, applied: AppliedConfig) {
        if applied.generation <= self.applied_generation {
            return;
        }
        // This console's own apply, announced before its answer arrived.
        if self.in_flight.as_ref() == Some(&*applied.config) {
            return;
        }
        self.applied_generation = applied.generation;
        if *applied.config == self.applied {
            return;
        }
        let (pending, conflicts) =
            super::rebase::rebase(&self.applied, &applied.config, &self.pending);
        self.applied = *applied.config;
        self.pending = pending;
        self.diagnostics_live = self.applied.diagnostics.log_messages;
        self.notice = Some(Notice::new(
            if conflicts.is_empty() {
                "another console applied a new configuration".to_string()
            } else {
                format!(
                    "another console applied; {} pending edit{} conflict{}",
                    conflicts.len(),
                    if conflicts.len() == 1 { "" } else { "s" },
                    if conflicts.len() == 1 { "s" } else { "" },
                )
            },
            !conflicts.is_empty(),
        ));
        self.conflicts = conflicts;
    }

    /// The file as re-read after hand edits becomes the base of the pending edits; the hand
    /// edits show as pending changes until applied.
    fn on_file_reloaded(&mut self, result: Result<Config, String>) {
        match result {
            Ok(file) => {
                let (pending, conflicts) =
                    super::rebase::rebase(&self.applied, &file, &self.pending);
                self.pending = pending;
                self.conflicts = conflicts;
                self.notice = Some(Notice::new(
                    format!(
                        "reloaded {}: hand edits are pending changes now",
                        self.config_path.display()
                    ),
                    false,
                ));
            }
            Err(reason) => {
                self.notice = Some(Notice::new(format!("cannot reload: {reason}"), true));
            }
        }
    }

    /// Settings of the applied configuration that are stored but not in effect yet (their
    /// feature has not landed): each field set away from its default, by label.
    pub fn stored_not_active(&self) -> Vec<&'static str> {
        let defaults = Config::default();
        let mut labels = Vec::new();
        for node in Node::ALL {
            for field in node.fields() {
                if field.stored_not_active()
                    && field.get(&self.applied) != field.get(&defaults)
                    && !labels.contains(&field.label())
                {
                    labels.push(field.label());
                }
            }
        }
        labels
    }

    /// Whether the broker runs but listens nowhere: no client can connect.
    pub fn running_without_listeners(&self) -> bool {
        let latest = &self.dashboard.latest;
        self.dashboard.has_data && latest.running && latest.listeners.is_empty()
    }

    /// Whether a pending edit of `path` conflicts with a configuration applied elsewhere.
    pub fn is_conflicting(&self, path: &str) -> bool {
        self.conflicts.iter().any(|c| c == path)
    }

    /// A refusal that names a field (`broker.tcp.port: ...`) selects that field, so that the
    /// operator lands on what to fix once the report is closed.
    fn select_field_named_in(&mut self, reason: &str) {
        let Some((path, _)) = reason.split_once(':') else {
            return;
        };
        for node in Node::ALL {
            if let Some(row) = node.fields().iter().position(|f| f.path() == path.trim()) {
                self.node = node;
                self.cursor[node.index()] = row;
                self.focus = Focus::Pane;
                return;
            }
        }
    }

    fn revert(&mut self) -> Option<Effect> {
        if !self.has_pending_changes() {
            return None;
        }
        self.pending = self.applied.clone();
        self.notice = Some(Notice::new("pending changes discarded".to_string(), false));
        let applied_diagnostics = self.applied.diagnostics.log_messages;
        if self.diagnostics_live != applied_diagnostics {
            self.diagnostics_live = applied_diagnostics;
            return Some(Effect::SetDiagnostics(applied_diagnostics));
        }
        None
    }
}

/// Moves an index by `delta` within `0..len`, clamping at both ends.
fn step(index: usize, delta: isize, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    index.saturating_add_signed(delta).min(len - 1)
}
