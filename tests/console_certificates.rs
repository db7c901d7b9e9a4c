//! The console's certificate actions driven by key events: create a CA, issue a client
//! certificate into a directory, revoke it. Each effect is run as the console's runtime runs
//! it (`cert_actions::perform`), and the files and the pending configuration are checked.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use roost::config::{ClientCertificateStatus, Config};
use roost::console::app::{Focus, Popup};
use roost::console::cert_actions::perform;
use roost::console::files::inspect_all;
use roost::console::node::Node;
use roost::console::theme::Theme;
use roost::console::{Action, App, Effect};
use roost::pki::commands::CertCommand;

fn app(data_dir: &std::path::Path) -> App {
    let mut config = Config::default();
    config.persistence.data_dir = data_dir.to_path_buf();
    App::new(config, PathBuf::from("roost.ron"), Theme::default())
}

fn key(app: &mut App, code: KeyCode, modifiers: KeyModifiers) -> Option<Effect> {
    app.update(Action::Key(KeyEvent::new(code, modifiers)))
}

fn press(app: &mut App, code: KeyCode) -> Option<Effect> {
    key(app, code, KeyModifiers::NONE)
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(press(app, KeyCode::Char(c)), None);
    }
}

fn open(app: &mut App, node: Node) {
    app.update(Action::SelectNode(node.index()));
    press(app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Pane);
}

/// Runs an effect as the runtime would and feeds the outcome back; returns the report.
fn run(app: &mut App, effect: Option<Effect>) -> String {
    let Some(Effect::Certificate(command)) = effect else {
        panic!("expected a certificate effect, got {effect:?}");
    };
    let done = perform(&command, &app.pending);
    app.update(done);
    match app.popup.take() {
        Some(Popup::Message(text)) => text,
        other => panic!("expected the report, got {other:?}"),
    }
}

#[test]
fn create_ca_asks_first_then_writes_the_ca_and_its_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(&dir.path().join("data"));
    open(&mut app, Node::CertificateAuthority);
    assert_eq!(press(&mut app, KeyCode::Char('n')), None);
    let Some(Popup::ConfirmCertificate(CertCommand::CaCreate { .. }, question)) = &app.popup else {
        panic!("a new CA asks first: {:?}", app.popup);
    };
    assert!(question.contains("no longer trusted"), "{question}");
    // "n" answers no: nothing is written.
    assert_eq!(press(&mut app, KeyCode::Char('n')), None);
    assert!(!dir.path().join("data/certificates/ca.crt").exists());

    press(&mut app, KeyCode::Char('n'));
    let effect = press(&mut app, KeyCode::Char('y'));
    let report = run(&mut app, effect);
    assert!(
        report.contains("created a new certificate authority"),
        "{report}"
    );
    let key = dir.path().join("data/certificates/ca.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Show needs no question.
    let effect = press(&mut app, KeyCode::Char('s'));
    let shown = run(&mut app, effect);
    assert!(
        shown.contains("SHA-256:") && shown.contains("can issue"),
        "{shown}"
    );
}

#[test]
fn issue_then_revoke_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(&dir.path().join("data"));
    open(&mut app, Node::CertificateAuthority);
    press(&mut app, KeyCode::Char('n'));
    let effect = press(&mut app, KeyCode::Char('y'));
    run(&mut app, effect);

    open(&mut app, Node::ClientCertificates);
    press(&mut app, KeyCode::Char('n'));
    assert!(app.editing.is_some(), "issue asks for a name");
    // An empty name is refused in place.
    assert_eq!(press(&mut app, KeyCode::Enter), None);
    assert!(app.editing.as_ref().unwrap().error.is_some());
    type_text(&mut app, "sensor-1");
    assert_eq!(press(&mut app, KeyCode::Enter), None);
    // Then for the directory, which starts as ".".
    press(&mut app, KeyCode::Backspace);
    let devices = dir.path().join("devices");
    type_text(&mut app, devices.to_str().unwrap());
    let effect = press(&mut app, KeyCode::Enter);
    let report = run(&mut app, effect);
    assert!(report.contains("sensor-1.crt"), "{report}");
    assert!(devices.join("sensor-1.crt").exists());
    let key_mode = std::fs::metadata(devices.join("sensor-1.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    // The entry is pending, for Apply.
    let clients = &app.pending.certificates.clients;
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].status, ClientCertificateStatus::Authorized);
    assert!(app.has_pending_changes());

    // Revoke asks first and says what it does to connected clients.
    assert_eq!(key(&mut app, KeyCode::Char('R'), KeyModifiers::SHIFT), None);
    let Some(Popup::ConfirmCertificate(_, question)) = &app.popup else {
        panic!("revoke asks first: {:?}", app.popup);
    };
    assert!(question.contains("disconnected"), "{question}");
    let effect = press(&mut app, KeyCode::Char('y'));
    run(&mut app, effect);
    assert_eq!(
        app.pending.certificates.clients[0].status,
        ClientCertificateStatus::Revoked
    );

    // A failing action reports why, naming the file.
    press(&mut app, KeyCode::Char('i'));
    type_text(&mut app, "/nonexistent/device.pem");
    let effect = press(&mut app, KeyCode::Enter);
    let report = run(&mut app, effect);
    assert!(
        report.starts_with("Not done") && report.contains("/nonexistent/device.pem"),
        "{report}"
    );
}

#[test]
fn tab_completes_file_paths_in_a_certificate_prompt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("devices")).unwrap();
    std::fs::write(dir.path().join("devices/sensor-10.pem"), "x").unwrap();
    std::fs::write(dir.path().join("devices/sensor-11.pem"), "x").unwrap();
    let mut app = app(&dir.path().join("data"));
    open(&mut app, Node::ClientCertificates);
    press(&mut app, KeyCode::Char('i'));
    let base = dir.path().to_str().unwrap();
    type_text(&mut app, &format!("{base}/dev"));
    press(&mut app, KeyCode::Tab);
    let value = |app: &App| app.editing.as_ref().unwrap().input.value().to_string();
    assert_eq!(value(&app), format!("{base}/devices/"));
    type_text(&mut app, "s");
    press(&mut app, KeyCode::Tab);
    // Two entries share "sensor-1": completed that far.
    assert_eq!(value(&app), format!("{base}/devices/sensor-1"));
    type_text(&mut app, "1");
    press(&mut app, KeyCode::Tab);
    assert_eq!(value(&app), format!("{base}/devices/sensor-11.pem"));
}

/// `y` puts the thumbprint on the operator's clipboard through the terminal (OSC 52): the
/// selected client certificate's, and the CA's as read from its file.
#[test]
fn y_copies_the_thumbprint_of_the_selected_or_shown_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(&dir.path().join("data"));
    // Nothing to copy yet: said so, and nothing is written to the terminal.
    open(&mut app, Node::CertificateAuthority);
    assert_eq!(press(&mut app, KeyCode::Char('y')), None);
    let notice = app.notice.clone().expect("a notice");
    assert!(
        notice.is_error && notice.text.contains("no certificate"),
        "{notice:?}"
    );

    press(&mut app, KeyCode::Char('n'));
    let effect = press(&mut app, KeyCode::Char('y'));
    run(&mut app, effect);
    // The runtime re-inspects the files after an action; so does this test.
    app.update(Action::Files(inspect_all(&app.pending)));
    let ca = roost::pki::authority::require(&roost::pki::PkiPaths::new(
        &app.pending.certificates,
        &app.pending.persistence.data_dir,
    ))
    .unwrap();
    assert_eq!(
        press(&mut app, KeyCode::Char('y')),
        Some(Effect::Clipboard(ca.info.sha256.clone()))
    );
    assert_eq!(
        app.notice.as_ref().map(|n| n.text.as_str()),
        Some("copied thumbprint to clipboard (OSC 52)")
    );

    // Two issued client certificates: the selected row's thumbprint is copied.
    open(&mut app, Node::ClientCertificates);
    for name in ["first", "second"] {
        press(&mut app, KeyCode::Char('n'));
        type_text(&mut app, name);
        press(&mut app, KeyCode::Enter);
        // The directory prompt starts as ".".
        press(&mut app, KeyCode::Backspace);
        type_text(&mut app, dir.path().join("devices").to_str().unwrap());
        let effect = press(&mut app, KeyCode::Enter);
        run(&mut app, effect);
    }
    let clients = app.pending.certificates.clients.clone();
    assert_eq!(clients.len(), 2);
    press(&mut app, KeyCode::Char('g'));
    press(&mut app, KeyCode::Down);
    assert_eq!(
        press(&mut app, KeyCode::Char('y')),
        Some(Effect::Clipboard(clients[1].thumbprint.clone()))
    );
    assert_ne!(clients[0].thumbprint, clients[1].thumbprint);
}
