//! The console's state driven by key events, without a terminal or a broker: every effect the
//! runtime would execute is checked, and its result is fed back as an action.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use roost::broker::{
    ApplyChange, ApplyReport, ChangeAction, ClientInfo, DiagEvent, Direction, ListenerKind,
};
use roost::config::{Config, StorageMode};
use roost::console::app::{EditTarget, Focus, Popup};
use roost::console::node::Node;
use roost::console::theme::Theme;
use roost::console::{Action, App, Effect};
use roost::mqtt::{PacketType, ProtocolVersion};

fn app() -> App {
    App::new(
        Config::default(),
        PathBuf::from("roost.ron"),
        Theme::default(),
    )
}

fn press(app: &mut App, code: KeyCode) -> Option<Effect> {
    app.update(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn ch(app: &mut App, c: char) -> Option<Effect> {
    press(app, KeyCode::Char(c))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(ch(app, c), None);
    }
}

/// Selects the Broker node's form and moves down to the field at `index`.
fn open_broker_field(app: &mut App, index: usize) {
    press(app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Pane);
    for _ in 0..index {
        ch(app, 'j');
    }
}

const TCP_PORT_ROW: usize = 3;

fn edit_tcp_port(app: &mut App, port: &str) {
    open_broker_field(app, TCP_PORT_ROW);
    press(app, KeyCode::Enter);
    assert!(
        app.editing.is_some(),
        "Enter on a text field opens the editor"
    );
    app.update(Action::Key(KeyEvent::new(
        KeyCode::Char('u'),
        KeyModifiers::CONTROL,
    )));
    type_text(app, port);
}

fn report() -> ApplyReport {
    ApplyReport {
        changes: vec![ApplyChange {
            subject: "TCP listener 0.0.0.0:1884".to_string(),
            action: ChangeAction::Restarted,
        }],
    }
}

#[test]
fn navigates_the_tree_with_arrows_and_vi_keys() {
    let mut app = app();
    assert_eq!(app.node, Node::Broker);
    ch(&mut app, 'j');
    assert_eq!(app.node, Node::Limits);
    press(&mut app, KeyCode::Down);
    assert_eq!(app.node, Node::CertificateAuthority);
    press(&mut app, KeyCode::Up);
    ch(&mut app, 'k');
    assert_eq!(app.node, Node::Broker);
    ch(&mut app, 'k');
    assert_eq!(app.node, Node::Broker, "stays at the top");
    ch(&mut app, 'G');
    assert_eq!(app.node, Node::Clients);
    ch(&mut app, 'g');
    assert_eq!(app.node, Node::Broker);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.focus, Focus::Pane);
    ch(&mut app, 'j');
    assert_eq!(app.cursor(), 1, "in the pane, j moves the field cursor");
    assert_eq!(app.node, Node::Broker);
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.focus, Focus::Tree);
}

#[test]
fn mouse_click_selects_a_node() {
    let mut app = app();
    app.update(Action::SelectNode(Node::Status.index()));
    assert_eq!(app.node, Node::Status);
}

#[test]
fn editing_a_field_marks_it_dirty_and_counts_it() {
    let mut app = app();
    edit_tcp_port(&mut app, "1884");
    press(&mut app, KeyCode::Enter);
    assert!(app.editing.is_none());
    assert_eq!(app.pending.broker.tcp.port, 1884);
    assert_eq!(
        app.applied.broker.tcp.port, 1883,
        "applied config untouched"
    );
    assert!(app.is_dirty(roost::console::fields::Field::TcpPort));
    assert_eq!(app.pending_changes(), vec!["broker.tcp.port".to_string()]);
}

#[test]
fn space_toggles_a_checkbox_and_the_storage_choice_cycles() {
    let mut app = app();
    open_broker_field(&mut app, 0);
    assert_eq!(ch(&mut app, ' '), None);
    assert!(app.pending.broker.enabled);
    assert!(app.has_pending_changes());
    ch(&mut app, ' ');
    assert!(
        !app.has_pending_changes(),
        "toggling back clears the change"
    );

    let storage_row = roost::console::fields::SERVER_SETTINGS
        .iter()
        .position(|f| *f == roost::console::fields::Field::StorageMode)
        .unwrap();
    for _ in 0..storage_row {
        ch(&mut app, 'j');
    }
    press(&mut app, KeyCode::Right);
    assert_eq!(app.pending.persistence.mode, StorageMode::DiskBuffered);
    ch(&mut app, ' ');
    assert_eq!(app.pending.persistence.mode, StorageMode::DiskUnbuffered);
    press(&mut app, KeyCode::Left);
    press(&mut app, KeyCode::Left);
    assert_eq!(app.pending.persistence.mode, StorageMode::Memory);
}

#[test]
fn apply_sends_the_pending_config_and_success_clears_the_changes() {
    let mut app = app();
    edit_tcp_port(&mut app, "1884");
    press(&mut app, KeyCode::Enter);
    let effect = ch(&mut app, 'a');
    let Some(Effect::Apply(sent)) = effect else {
        panic!("expected an apply effect, got {effect:?}");
    };
    assert_eq!(sent.broker.tcp.port, 1884);
    assert!(app.is_applying());
    assert_eq!(ch(&mut app, 'a'), None, "no second apply while one runs");

    app.update(Action::ApplyFinished(Ok(report())));
    assert!(!app.is_applying());
    assert!(!app.has_pending_changes());
    assert_eq!(app.applied.broker.tcp.port, 1884);
    assert_eq!(app.popup, Some(Popup::ApplyResult(Ok(report()))));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.popup, None);
}

#[test]
fn refused_apply_keeps_the_pending_edits() {
    let mut app = app();
    edit_tcp_port(&mut app, "1884");
    press(&mut app, KeyCode::Enter);
    assert!(matches!(ch(&mut app, 'a'), Some(Effect::Apply(_))));
    let reason = "cannot listen on 0.0.0.0:1884 for the TCP listener: address in use".to_string();
    app.update(Action::ApplyFinished(Err(reason.clone())));
    assert_eq!(app.popup, Some(Popup::ApplyResult(Err(reason))));
    assert_eq!(app.pending.broker.tcp.port, 1884, "pending edit kept");
    assert_eq!(
        app.applied.broker.tcp.port, 1883,
        "applied config unchanged"
    );
    assert_eq!(app.pending_changes().len(), 1);
    assert!(!app.is_applying());
}

#[test]
fn revert_discards_pending_edits() {
    let mut app = app();
    edit_tcp_port(&mut app, "1884");
    press(&mut app, KeyCode::Enter);
    assert!(app.has_pending_changes());
    ch(&mut app, 'r');
    assert!(!app.has_pending_changes());
    assert_eq!(app.pending, app.applied);
}

#[test]
fn invalid_port_shows_an_inline_error_and_is_not_accepted() {
    let mut app = app();
    edit_tcp_port(&mut app, "70000");
    let error = app.editing.as_ref().and_then(|e| e.error.clone());
    assert!(error.is_some(), "inline error while typing");
    press(&mut app, KeyCode::Enter);
    assert!(
        app.editing.is_some(),
        "Enter does not accept an invalid value"
    );
    assert_eq!(app.pending.broker.tcp.port, 1883);
    press(&mut app, KeyCode::Esc);
    assert!(app.editing.is_none());
    assert!(!app.has_pending_changes());

    // Fixing the value clears the error.
    press(&mut app, KeyCode::Enter);
    for _ in 0..4 {
        press(&mut app, KeyCode::Backspace);
    }
    type_text(&mut app, "8883");
    assert_eq!(app.editing.as_ref().and_then(|e| e.error.clone()), None);
}

#[test]
fn keys_typed_into_an_editor_are_text_not_commands() {
    let mut app = app();
    open_broker_field(&mut app, 7); // WebSockets URL path
    press(&mut app, KeyCode::Enter);
    type_text(&mut app, "q?ar");
    assert!(app.editing.is_some());
    assert!(app.popup.is_none());
    assert!(!app.should_quit);
}

#[test]
fn quit_with_pending_changes_asks_first() {
    let mut app = app();
    open_broker_field(&mut app, 0);
    ch(&mut app, ' ');
    assert_eq!(ch(&mut app, 'q'), None);
    assert_eq!(app.popup, Some(Popup::ConfirmQuit));
    ch(&mut app, 'n');
    assert_eq!(app.popup, None);
    assert!(!app.should_quit);
    ch(&mut app, 'q');
    assert_eq!(ch(&mut app, 'y'), Some(Effect::Quit));
    assert!(app.should_quit);
}

#[test]
fn quit_without_pending_changes_leaves_at_once() {
    let mut app = app();
    assert_eq!(ch(&mut app, 'q'), Some(Effect::Quit));
}

#[test]
fn a_signal_quits_even_with_pending_changes() {
    let mut app = app();
    open_broker_field(&mut app, 0);
    ch(&mut app, ' ');
    assert_eq!(app.update(Action::Terminate), Some(Effect::Quit));
}

#[test]
fn help_opens_and_closes() {
    let mut app = app();
    ch(&mut app, '?');
    assert!(matches!(app.popup, Some(Popup::Help { .. })));
    ch(&mut app, 'j');
    assert_eq!(app.popup, Some(Popup::Help { scroll: 1 }));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.popup, None);
}

#[test]
fn diagnostics_toggle_acts_live_and_revert_switches_it_back() {
    let mut app = app();
    app.update(Action::SelectNode(Node::Diagnostics.index()));
    press(&mut app, KeyCode::Tab);
    assert_eq!(ch(&mut app, ' '), Some(Effect::SetDiagnostics(true)));
    assert!(app.diagnostics_live);
    assert!(app.pending.diagnostics.log_messages);
    assert_eq!(
        app.pending_changes(),
        vec!["diagnostics.log_messages".to_string()]
    );
    assert_eq!(ch(&mut app, 'r'), Some(Effect::SetDiagnostics(false)));
    assert!(!app.diagnostics_live);
}

fn diag(client: &str, topic: &str) -> Action {
    Action::Diag(Arc::new(DiagEvent {
        time: SystemTime::UNIX_EPOCH,
        client_id: client.into(),
        transport: ListenerKind::Tcp,
        direction: Direction::In,
        packet_type: PacketType::Publish,
        topic: Some(topic.into()),
        qos: None,
        packet_id: None,
        size: 20,
        payload_preview: None,
    }))
}

#[test]
fn diagnostics_log_filters_and_pauses() {
    let mut app = app();
    app.update(Action::SelectNode(Node::Diagnostics.index()));
    press(&mut app, KeyCode::Tab);
    app.update(diag("sensor-1", "home/kitchen"));
    app.update(diag("sensor-2", "home/garage"));
    ch(&mut app, '/');
    assert_eq!(
        app.editing.as_ref().map(|e| e.target),
        Some(EditTarget::LogFilter)
    );
    type_text(&mut app, "garage");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.log.visible(10).len(), 1);
    ch(&mut app, 'p');
    assert!(app.log.is_paused());
    app.update(diag("sensor-3", "home/garage"));
    assert_eq!(app.log.visible(10).len(), 1, "paused view does not move");
    ch(&mut app, 'p');
    assert_eq!(app.log.visible(10).len(), 2);
    ch(&mut app, '/');
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.log.filter(), "", "Esc clears the filter");
}

fn client(id: &str) -> ClientInfo {
    ClientInfo {
        client_id: id.into(),
        address: SocketAddr::from(([127, 0, 0, 1], 50000)),
        listener: ListenerKind::Tcp,
        protocol: ProtocolVersion::V5,
        username: None,
        keep_alive_secs: 60,
        subscriptions: 1,
        inflight: 0,
        queued: 0,
        connected_since: SystemTime::UNIX_EPOCH,
    }
}

#[test]
fn disconnecting_a_client_asks_for_confirmation() {
    let mut app = app();
    app.update(Action::Clients(vec![
        client("b-sensor"),
        client("a-sensor"),
    ]));
    app.update(Action::SelectNode(Node::Clients.index()));
    press(&mut app, KeyCode::Tab);
    ch(&mut app, 'j');
    assert_eq!(ch(&mut app, 'x'), None);
    assert_eq!(
        app.popup,
        Some(Popup::ConfirmDisconnect("b-sensor".to_string()))
    );
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Some(Effect::Disconnect("b-sensor".to_string()))
    );
    assert_eq!(app.popup, None);
    app.update(Action::Disconnected {
        client_id: "b-sensor".to_string(),
        found: true,
    });
    assert!(app.notice.as_ref().unwrap().text.contains("b-sensor"));
    // A shorter list keeps the cursor in range.
    app.update(Action::Clients(vec![client("a-sensor")]));
    assert_eq!(app.cursor(), 0);
}

#[test]
fn the_selected_client_stays_selected_when_the_list_changes() {
    let mut app = app();
    app.update(Action::Clients(vec![client("b"), client("c")]));
    app.update(Action::SelectNode(Node::Clients.index()));
    press(&mut app, KeyCode::Tab);
    ch(&mut app, 'j');
    assert_eq!(&*app.clients[app.cursor()].client_id, "c");
    app.update(Action::Clients(vec![client("c"), client("a"), client("b")]));
    assert_eq!(&*app.clients[app.cursor()].client_id, "c");
}

#[test]
fn stats_feed_the_rate_history() {
    let mut app = app();
    for rate in [1.0, 2.0, 3.0] {
        app.update(Action::Stats(roost::broker::StatsSnapshot {
            running: true,
            messages_received_per_sec: rate,
            ..Default::default()
        }));
    }
    assert!(app.dashboard.latest.running);
    assert_eq!(
        app.dashboard.rate_in.iter().copied().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn a_refusal_naming_a_field_selects_it() {
    let mut app = app();
    assert!(matches!(ch(&mut app, 'a'), Some(Effect::Apply(_))));
    app.update(Action::ApplyFinished(Err(
        "limits.max_inflight: 0 is outside 1..=65535".to_string(),
    )));
    assert_eq!(app.node, Node::Limits);
    assert_eq!(
        app.selected_field(),
        Some(roost::console::fields::Field::MaxInflight)
    );
    assert_eq!(app.focus, Focus::Pane);
}

#[test]
fn a_failed_save_is_reported() {
    let mut app = app();
    ch(&mut app, 'a');
    app.update(Action::ApplyFinished(Ok(report())));
    app.update(Action::Saved(Err("permission denied".to_string())));
    let notice = app.notice.clone().unwrap();
    assert!(notice.is_error);
    assert!(notice.text.contains("NOT saved"), "{}", notice.text);
    app.update(Action::Saved(Ok(())));
    assert!(!app.notice.unwrap().is_error);
}
