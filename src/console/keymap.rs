//! The one key map: every binding with the scope it belongs to. Key handling, the command bar
//! and the help popup all read this table, so what the help says is what the keys do.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for, before the state decides what that means in context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Up,
    Down,
    Top,
    Bottom,
    Left,
    Right,
    PageUp,
    PageDown,
    NextPane,
    PrevPane,
    Edit,
    Toggle,
    Apply,
    Revert,
    Help,
    Quit,
    Confirm,
    Cancel,
    Disconnect,
    Pause,
    Filter,
    ClearLog,
    NewCertificate,
    ImportCertificate,
    ExportCertificate,
    ShowCertificate,
    RevokeCertificate,
    RemoveCertificate,
    /// Copy the thumbprint of the certificate shown or selected to the clipboard (OSC 52).
    CopyThumbprint,
    AddUser,
    ChangePassword,
    RemoveUser,
    EditRules,
    /// Disconnect every client the filter shows.
    DisconnectMatching,
    /// Sort the clients by the next column.
    SortNext,
    /// Reverse the clients' order.
    SortReverse,
    /// Open or close the selected client's details.
    Details,
    /// Back from a form or list to the tree.
    Back,
    /// Open a view by its number (1 is the first node of the tree).
    Jump(usize),
    /// Open the `:` command line.
    CommandLine,
    /// Complete the word typed on the command line.
    Complete,
    /// Reload the config file after hand edits, keeping pending edits.
    Reload,
    /// Save over the config file's hand edits.
    Overwrite,
}

/// Where a binding is offered. The app says which scopes are active right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Tree,
    Form,
    List,
    Clients,
    CertificateList,
    /// The Certificate Authority and Server Certificate nodes.
    Certificate,
    Users,
    DiagnosticsLog,
    Editing,
    Confirm,
    Dismiss,
    /// The question asked when the config file was edited by hand.
    FileChanged,
    Help,
}

impl Scope {
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Everywhere",
            Scope::Tree => "Settings tree",
            Scope::Form => "Forms",
            Scope::List => "Lists",
            Scope::Clients => "Clients",
            Scope::CertificateList => "Client certificates",
            Scope::Certificate => "Certificate authority and server certificate",
            Scope::Users => "Users",
            Scope::DiagnosticsLog => "Diagnostics log",
            Scope::Editing => "Editing a text field or filter",
            Scope::Confirm => "Questions",
            Scope::Dismiss => "Reports and messages",
            Scope::FileChanged => "Config file edited by hand",
            Scope::Help => "This help",
        }
    }
}

/// One key binding.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub scope: Scope,
    pub keys: &'static [(KeyCode, KeyModifiers)],
    /// The keys as shown to the operator.
    pub label: &'static str,
    pub description: &'static str,
    pub command: Command,
    /// Shown in the command bar (the help popup shows every binding).
    pub in_bar: bool,
    /// Shorter text for the command bar, when the description is too specific.
    pub bar_text: Option<&'static str>,
}

impl Binding {
    /// The text after the key in the command bar.
    pub fn bar_description(&self) -> &'static str {
        self.bar_text.unwrap_or(self.description)
    }

    const fn bar_as(mut self, text: &'static str) -> Binding {
        self.bar_text = Some(text);
        self
    }
}

const NONE: KeyModifiers = KeyModifiers::NONE;
const SHIFT: KeyModifiers = KeyModifiers::SHIFT;

const fn bind(
    scope: Scope,
    keys: &'static [(KeyCode, KeyModifiers)],
    label: &'static str,
    description: &'static str,
    command: Command,
    in_bar: bool,
) -> Binding {
    Binding {
        scope,
        keys,
        label,
        description,
        command,
        in_bar,
        bar_text: None,
    }
}

use Command as C;
use KeyCode as K;
use Scope as S;

const UP: &[(KeyCode, KeyModifiers)] = &[(K::Up, NONE), (K::Char('k'), NONE)];
const DOWN: &[(KeyCode, KeyModifiers)] = &[(K::Down, NONE), (K::Char('j'), NONE)];
const TOP: &[(KeyCode, KeyModifiers)] = &[(K::Char('g'), NONE), (K::Home, NONE)];
const BOTTOM: &[(KeyCode, KeyModifiers)] =
    &[(K::Char('G'), SHIFT), (K::Char('G'), NONE), (K::End, NONE)];

/// Every binding, in the order the command bar and help show them.
pub const BINDINGS: &[Binding] = &[
    // Popups first: they get keys before anything else.
    bind(
        S::Confirm,
        &[(K::Char('y'), NONE), (K::Enter, NONE)],
        "y/Enter",
        "yes",
        C::Confirm,
        true,
    ),
    bind(
        S::Confirm,
        &[(K::Char('n'), NONE), (K::Esc, NONE)],
        "n/Esc",
        "no",
        C::Cancel,
        true,
    ),
    bind(
        S::Dismiss,
        &[(K::Enter, NONE), (K::Esc, NONE), (K::Char('q'), NONE)],
        "Enter/Esc",
        "close",
        C::Cancel,
        true,
    ),
    bind(
        S::FileChanged,
        &[(K::Char('r'), NONE)],
        "r",
        "reload the file, keep pending edits",
        C::Reload,
        true,
    )
    .bar_as("reload"),
    bind(
        S::FileChanged,
        &[(K::Char('o'), NONE)],
        "o",
        "overwrite the file with this apply",
        C::Overwrite,
        true,
    )
    .bar_as("overwrite"),
    bind(
        S::FileChanged,
        &[(K::Esc, NONE), (K::Char('n'), NONE)],
        "Esc",
        "cancel the apply",
        C::Cancel,
        true,
    )
    .bar_as("cancel"),
    bind(
        S::Help,
        &[
            (K::Esc, NONE),
            (K::Char('?'), NONE),
            (K::Char('?'), SHIFT),
            (K::Char('q'), NONE),
        ],
        "Esc/?",
        "close help",
        C::Cancel,
        true,
    ),
    bind(S::Help, UP, "↑/k", "scroll up", C::Up, true),
    bind(S::Help, DOWN, "↓/j", "scroll down", C::Down, true),
    bind(
        S::Editing,
        &[(K::Enter, NONE)],
        "Enter",
        "accept",
        C::Confirm,
        true,
    ),
    bind(
        S::Editing,
        &[(K::Esc, NONE)],
        "Esc",
        "cancel",
        C::Cancel,
        true,
    ),
    // The focused pane.
    bind(S::Tree, UP, "↑↓/jk", "previous node", C::Up, true).bar_as("move"),
    bind(S::Tree, DOWN, "↓/j", "next node", C::Down, false),
    bind(S::Tree, TOP, "g/G", "first node", C::Top, false),
    bind(S::Tree, BOTTOM, "G", "last node", C::Bottom, false),
    bind(
        S::Tree,
        &[(K::Enter, NONE), (K::Right, NONE), (K::Char('l'), NONE)],
        "Enter/→",
        "open",
        C::Right,
        true,
    ),
    bind(
        S::Form,
        &[(K::Esc, NONE)],
        "Esc",
        "back to the tree",
        C::Back,
        false,
    ),
    bind(
        S::List,
        &[(K::Esc, NONE)],
        "Esc",
        "back to the tree",
        C::Back,
        false,
    ),
    bind(
        S::Editing,
        &[(K::Tab, NONE)],
        "Tab",
        "complete a file path, or a command on the : line",
        C::Complete,
        false,
    ),
    bind(S::Form, UP, "↑↓/jk", "previous field", C::Up, true).bar_as("move"),
    bind(S::Form, DOWN, "↓/j", "next field", C::Down, false),
    bind(S::Form, TOP, "g/G", "first field", C::Top, false),
    bind(S::Form, BOTTOM, "G", "last field", C::Bottom, false),
    bind(S::Form, &[(K::Enter, NONE)], "Enter", "edit", C::Edit, true),
    bind(
        S::Form,
        &[(K::Char(' '), NONE)],
        "Space",
        "toggle",
        C::Toggle,
        true,
    ),
    bind(
        S::Form,
        &[(K::Right, NONE), (K::Char('l'), NONE)],
        "←→",
        "choose option",
        C::Right,
        false,
    ),
    bind(
        S::Form,
        &[(K::Left, NONE), (K::Char('h'), NONE)],
        "←/h",
        "previous option, or back to tree",
        C::Left,
        false,
    ),
    bind(S::List, UP, "↑↓/jk", "previous row", C::Up, true).bar_as("move"),
    bind(S::List, DOWN, "↓/j", "next row", C::Down, false),
    bind(S::List, TOP, "g/G", "first row", C::Top, false),
    bind(S::List, BOTTOM, "G", "last row", C::Bottom, false),
    bind(
        S::List,
        &[(K::Left, NONE), (K::Char('h'), NONE)],
        "←/h",
        "back to tree",
        C::Left,
        false,
    ),
    bind(
        S::Clients,
        &[(K::Char('x'), NONE), (K::Delete, NONE)],
        "x",
        "disconnect the selected client",
        C::Disconnect,
        true,
    )
    .bar_as("disconnect"),
    bind(
        S::Clients,
        &[(K::Char('X'), SHIFT), (K::Char('X'), NONE)],
        "X",
        "disconnect every client the filter shows",
        C::DisconnectMatching,
        false,
    ),
    bind(
        S::Clients,
        &[(K::Char('/'), NONE)],
        "/",
        "filter by client id, address or user",
        C::Filter,
        true,
    )
    .bar_as("filter"),
    bind(
        S::Clients,
        &[(K::Char('s'), NONE)],
        "s",
        "sort by the next column",
        C::SortNext,
        true,
    )
    .bar_as("sort"),
    bind(
        S::Clients,
        &[(K::Char('S'), SHIFT), (K::Char('S'), NONE)],
        "S",
        "reverse the order",
        C::SortReverse,
        false,
    ),
    bind(
        S::Clients,
        &[(K::Enter, NONE)],
        "Enter",
        "details of the selected client",
        C::Details,
        true,
    )
    .bar_as("details"),
    bind(
        S::CertificateList,
        &[(K::Char(' '), NONE)],
        "Space",
        "authorize/revoke",
        C::Toggle,
        true,
    ),
    bind(
        S::Users,
        &[(K::Char('n'), NONE)],
        "n",
        "add a user",
        C::AddUser,
        true,
    )
    .bar_as("add"),
    bind(
        S::Users,
        &[(K::Char('p'), NONE)],
        "p",
        "change the password",
        C::ChangePassword,
        true,
    )
    .bar_as("password"),
    bind(
        S::Users,
        &[(K::Char('e'), NONE), (K::Enter, NONE)],
        "e",
        "edit the topic permissions",
        C::EditRules,
        true,
    )
    .bar_as("permissions"),
    bind(
        S::Users,
        &[(K::Char('d'), NONE), (K::Delete, NONE)],
        "d",
        "remove the user",
        C::RemoveUser,
        true,
    )
    .bar_as("remove"),
    bind(
        S::DiagnosticsLog,
        &[(K::Char('p'), NONE)],
        "p",
        "pause",
        C::Pause,
        true,
    ),
    bind(
        S::DiagnosticsLog,
        &[(K::Char('/'), NONE)],
        "/",
        "filter",
        C::Filter,
        true,
    ),
    bind(
        S::DiagnosticsLog,
        &[(K::Char('c'), NONE)],
        "c",
        "clear",
        C::ClearLog,
        false,
    ),
    bind(
        S::DiagnosticsLog,
        &[(K::PageUp, NONE)],
        "PgUp/PgDn",
        "scroll log",
        C::PageUp,
        false,
    ),
    bind(
        S::DiagnosticsLog,
        &[(K::PageDown, NONE)],
        "PgDn",
        "scroll log down",
        C::PageDown,
        false,
    ),
    // Always there.
    bind(
        S::Global,
        &[(K::Char(':'), NONE), (K::Char(':'), SHIFT)],
        ":",
        "command line (:clients, :status, :diag, :apply, :theme light, :quit)",
        C::CommandLine,
        false,
    ),
    bind(
        S::Global,
        &[(K::Char('1'), NONE)],
        "1-9",
        "open view 1-9 of the tree",
        C::Jump(0),
        false,
    ),
    bind(
        S::Global,
        &[(K::Char('2'), NONE)],
        "2",
        "open view 2",
        C::Jump(1),
        false,
    ),
    bind(
        S::Global,
        &[(K::Char('3'), NONE)],
        "3",
        "open view 3",
        C::Jump(2),
        false,
    ),
    bind(
        S::Global,
        &[(K::Char('4'), NONE)],
        "4",
        "open view 4",
        C::Jump(3),
        false,
    ),
    bind(
        S::Global,
        &[(K::Char('5'), NONE)],
        "5",
        "open view 5",
        C::Jump(4),
        false,
    ),
    bind(
        S::Global,
        &[(K::Char('6'), NONE)],
        "6",
        "open view 6",
        C::Jump(5),
        false,
    ),
    bind(
        S::Global,
        &[(K::Char('7'), NONE)],
        "7",
        "open view 7",
        C::Jump(6),
        false,
    ),
    bind(
        S::Global,
        &[(K::Char('8'), NONE)],
        "8",
        "open view 8",
        C::Jump(7),
        false,
    ),
    bind(
        S::Global,
        &[(K::Char('9'), NONE)],
        "9",
        "open view 9",
        C::Jump(8),
        false,
    ),
    bind(
        S::Global,
        &[(K::Tab, NONE)],
        "Tab",
        "switch between tree and pane",
        C::NextPane,
        true,
    )
    .bar_as("pane"),
    bind(
        S::Global,
        &[(K::BackTab, SHIFT), (K::BackTab, NONE)],
        "S-Tab",
        "switch pane back",
        C::PrevPane,
        false,
    ),
    bind(
        S::Certificate,
        &[(K::Char('n'), NONE)],
        "n",
        "create new (asks first)",
        C::NewCertificate,
        true,
    )
    .bar_as("new"),
    bind(
        S::Certificate,
        &[(K::Char('i'), NONE)],
        "i",
        "import from a PEM file",
        C::ImportCertificate,
        true,
    )
    .bar_as("import"),
    bind(
        S::Certificate,
        &[(K::Char('e'), NONE)],
        "e",
        "export the certificate (never the key)",
        C::ExportCertificate,
        true,
    )
    .bar_as("export"),
    bind(
        S::Certificate,
        &[(K::Char('s'), NONE)],
        "s",
        "show subject, validity and thumbprints",
        C::ShowCertificate,
        true,
    )
    .bar_as("show"),
    bind(
        S::Certificate,
        &[(K::Char('y'), NONE)],
        "y",
        "copy the SHA-256 thumbprint to your clipboard (OSC 52)",
        C::CopyThumbprint,
        true,
    )
    .bar_as("copy"),
    bind(
        S::CertificateList,
        &[(K::Char('n'), NONE)],
        "n",
        "issue a certificate from the CA into a directory",
        C::NewCertificate,
        true,
    )
    .bar_as("issue"),
    bind(
        S::CertificateList,
        &[(K::Char('i'), NONE)],
        "i",
        "add a certificate from a PEM file",
        C::ImportCertificate,
        true,
    )
    .bar_as("add"),
    bind(
        S::CertificateList,
        &[(K::Char('R'), SHIFT), (K::Char('R'), NONE)],
        "R",
        "revoke the selected certificate (asks first)",
        C::RevokeCertificate,
        true,
    )
    .bar_as("revoke"),
    bind(
        S::CertificateList,
        &[(K::Char('d'), NONE), (K::Delete, NONE)],
        "d/Del",
        "remove the selected certificate (asks first)",
        C::RemoveCertificate,
        true,
    )
    .bar_as("remove"),
    bind(
        S::CertificateList,
        &[(K::Char('y'), NONE)],
        "y",
        "copy the selected thumbprint to your clipboard (OSC 52)",
        C::CopyThumbprint,
        true,
    )
    .bar_as("copy"),
    bind(
        S::Global,
        &[(K::Char('a'), NONE)],
        "a",
        "apply",
        C::Apply,
        true,
    ),
    bind(
        S::Global,
        &[(K::Char('r'), NONE)],
        "r",
        "revert",
        C::Revert,
        true,
    ),
    bind(
        S::Global,
        &[(K::Char('?'), NONE), (K::Char('?'), SHIFT), (K::F(1), NONE)],
        "?",
        "help",
        C::Help,
        true,
    ),
    bind(
        S::Global,
        &[(K::Char('q'), NONE), (K::Char('c'), KeyModifiers::CONTROL)],
        "q",
        "quit",
        C::Quit,
        true,
    ),
];

/// Bindings whose label duplicates the one before in the same scope are folded into it in
/// the command bar (for example `↑↓/jk` covers both directions).
pub fn bar_bindings(scopes: &[Scope]) -> Vec<&'static Binding> {
    scopes
        .iter()
        .flat_map(|scope| {
            BINDINGS
                .iter()
                .filter(move |b| b.scope == *scope && b.in_bar)
        })
        .collect()
}

/// The first binding in the active scopes (in the order given) that matches the key.
pub fn lookup(scopes: &[Scope], key: &KeyEvent) -> Option<&'static Binding> {
    scopes.iter().find_map(|scope| {
        BINDINGS.iter().find(|b| {
            b.scope == *scope
                && b.keys
                    .iter()
                    .any(|(code, mods)| *code == key.code && *mods == key.modifiers)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice_in_one_scope() {
        for (i, a) in BINDINGS.iter().enumerate() {
            for b in &BINDINGS[i + 1..] {
                if a.scope != b.scope {
                    continue;
                }
                for key in a.keys {
                    assert!(
                        !b.keys.contains(key),
                        "{key:?} bound twice in {:?}: {} and {}",
                        a.scope,
                        a.description,
                        b.description
                    );
                }
            }
        }
    }

    #[test]
    fn earlier_scopes_win() {
        let enter = KeyEvent::new(KeyCode::Enter, NONE);
        let found = lookup(&[Scope::Editing, Scope::Form], &enter).unwrap();
        assert_eq!(found.command, Command::Confirm);
        let found = lookup(&[Scope::Form, Scope::Global], &enter).unwrap();
        assert_eq!(found.command, Command::Edit);
    }
}
