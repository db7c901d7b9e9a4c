//! The console's state driven by key events, without a terminal or a broker: every effect the
//! runtime would execute is checked, and its result is fed back as an action.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use roost::admin::{ApplyOutcome, ApplyRefusal, SaveOutcome};
use roost::broker::{
    ApplyChange, ApplyReport, ChangeAction, ClientDetail, ClientInfo, ConnectionDetail, DiagEvent,
    Direction, ListenerKind, SubscriptionDetail,
};
use roost::config::{Config, StorageMode};
use roost::console::app::{EditTarget, Focus, Popup};
use roost::console::node::Node;
use roost::console::theme::Theme;
use roost::console::{Action, App, Effect};
use roost::mqtt::{PacketType, ProtocolVersion, QoS};

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

/// An accepted apply, saved to roost.ron.
fn saved() -> Result<ApplyOutcome, ApplyRefusal> {
    Ok(ApplyOutcome {
        report: report(),
        generation: 1,
        saved: SaveOutcome::Saved {
            path: PathBuf::from("roost.ron"),
            comments_copied_to: None,
        },
    })
}

/// An accepted apply that could not be written.
fn not_saved(reason: &str) -> Result<ApplyOutcome, ApplyRefusal> {
    Ok(ApplyOutcome {
        report: report(),
        generation: 1,
        saved: SaveOutcome::NotSaved {
            reason: reason.to_string(),
        },
    })
}

fn refused(reason: &str) -> Result<ApplyOutcome, ApplyRefusal> {
    Err(ApplyRefusal::Refused(reason.to_string()))
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
    let Some(Effect::Apply {
        config: sent,
        overwrite_hand_edits: false,
    }) = effect
    else {
        panic!("expected an apply effect, got {effect:?}");
    };
    assert_eq!(sent.broker.tcp.port, 1884);
    assert!(app.is_applying());
    assert_eq!(ch(&mut app, 'a'), None, "no second apply while one runs");

    app.update(Action::ApplyFinished(saved()));
    assert!(!app.is_applying());
    assert!(!app.has_pending_changes());
    assert_eq!(app.applied.broker.tcp.port, 1884);
    assert_eq!(app.popup, Some(Popup::ApplyResult(saved())));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.popup, None);
}

#[test]
fn refused_apply_keeps_the_pending_edits() {
    let mut app = app();
    edit_tcp_port(&mut app, "1884");
    press(&mut app, KeyCode::Enter);
    assert!(matches!(ch(&mut app, 'a'), Some(Effect::Apply { .. })));
    let reason = "cannot listen on 0.0.0.0:1884 for the TCP listener: address in use".to_string();
    app.update(Action::ApplyFinished(refused(&reason)));
    assert_eq!(app.popup, Some(Popup::ApplyResult(refused(&reason))));
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
fn the_diagnostics_switch_acts_live_and_is_not_a_pending_change() {
    let mut app = app();
    app.update(Action::SelectNode(Node::Diagnostics.index()));
    press(&mut app, KeyCode::Tab);
    assert_eq!(ch(&mut app, ' '), Some(Effect::SetDiagnostics(true)));
    assert!(app.diagnostics_live);
    assert!(app.pending.diagnostics.log_messages);
    assert!(
        app.pending_changes().is_empty(),
        "a live switch, not an edit"
    );
    // Revert has nothing to undo; quitting does not ask.
    assert_eq!(ch(&mut app, 'r'), None);
    assert!(app.diagnostics_live);
    assert_eq!(ch(&mut app, ' '), Some(Effect::SetDiagnostics(false)));
    assert!(!app.diagnostics_live);
    assert_eq!(ch(&mut app, 'q'), Some(Effect::Quit));
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
        messages_in: 0,
        messages_out: 0,
        dropped: 0,
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
    assert_eq!(&*app.selected_client().unwrap().client_id, "c");
    app.update(Action::Clients(vec![client("c"), client("a"), client("b")]));
    assert_eq!(&*app.selected_client().unwrap().client_id, "c");
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
    assert!(matches!(ch(&mut app, 'a'), Some(Effect::Apply { .. })));
    app.update(Action::ApplyFinished(refused(
        "limits.max_inflight: 0 is outside 1..=65535",
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
    app.update(Action::ApplyFinished(not_saved(
        "roost.ron is read-only; it was not replaced",
    )));
    let notice = app.notice.clone().unwrap();
    assert!(notice.is_error);
    assert!(
        notice
            .text
            .contains("applied, NOT saved: roost.ron is read-only"),
        "{}",
        notice.text
    );
    assert!(app.unsaved.is_some(), "the unsaved mark stays");
    // Quitting asks first, even with nothing pending.
    assert!(!app.has_pending_changes());
    press(&mut app, KeyCode::Esc);
    ch(&mut app, 'q');
    assert_eq!(app.popup, Some(Popup::ConfirmQuit));
    assert!(!app.should_quit);
    press(&mut app, KeyCode::Esc);
    // A later apply that is saved clears the mark.
    ch(&mut app, 'a');
    app.update(Action::ApplyFinished(saved()));
    assert_eq!(app.unsaved, None);
}

// ----- attached consoles, quitting and hand edits (issue 10) ------------------------------

fn applied_elsewhere(config: Config, generation: u64) -> Action {
    Action::AppliedElsewhere(roost::admin::AppliedConfig {
        config: Box::new(config),
        generation,
    })
}

#[test]
fn an_apply_from_another_console_keeps_pending_edits_and_marks_conflicts() {
    let mut app = app();
    edit_tcp_port(&mut app, "1884");
    press(&mut app, KeyCode::Enter);
    let mut theirs = Config::default();
    theirs.broker.tcp.port = 2000;
    theirs.limits.max_inflight = 9;
    app.update(applied_elsewhere(theirs.clone(), 1));
    assert_eq!(app.applied, theirs, "the new applied config is shown");
    assert_eq!(
        app.pending.broker.tcp.port, 1884,
        "the pending edit is kept"
    );
    assert_eq!(
        app.pending.limits.max_inflight, 9,
        "their other change arrives"
    );
    assert_eq!(app.conflicts, vec!["broker.tcp.port".to_string()]);
    assert!(app.is_conflicting("broker.tcp.port"));
    assert!(app.notice.as_ref().unwrap().text.contains("conflict"));
    // An older or repeated announcement changes nothing.
    app.update(applied_elsewhere(Config::default(), 1));
    assert_eq!(app.applied, theirs);
    // Applying resolves the conflict.
    assert!(matches!(ch(&mut app, 'a'), Some(Effect::Apply { .. })));
    app.update(Action::ApplyFinished(Ok(ApplyOutcome {
        generation: 2,
        ..saved().unwrap()
    })));
    assert!(app.conflicts.is_empty());
    assert_eq!(app.applied.broker.tcp.port, 1884);
}

#[test]
fn this_consoles_own_apply_announced_early_is_not_a_conflict() {
    let mut app = app();
    edit_tcp_port(&mut app, "1884");
    press(&mut app, KeyCode::Enter);
    let Some(Effect::Apply { config, .. }) = ch(&mut app, 'a') else {
        panic!("apply expected");
    };
    app.update(applied_elsewhere(*config, 1));
    assert!(app.conflicts.is_empty());
    assert!(app.is_applying(), "the answer is still awaited");
    app.update(Action::ApplyFinished(saved()));
    assert!(!app.has_pending_changes());
}

#[test]
fn an_attached_console_quits_without_asking_even_with_clients() {
    let mut app = app();
    app.origin = roost::admin::Origin::Attached {
        pid: 42,
        socket: PathBuf::from("/run/roost.sock"),
    };
    app.update(Action::Stats(roost::broker::StatsSnapshot {
        running: true,
        clients: 12,
        ..Default::default()
    }));
    assert_eq!(ch(&mut app, 'q'), Some(Effect::Quit));
    assert!(app.should_quit);
}

#[test]
fn an_owning_console_asks_before_disconnecting_its_clients() {
    let mut app = app();
    app.update(Action::Stats(roost::broker::StatsSnapshot {
        running: true,
        clients: 3,
        ..Default::default()
    }));
    assert_eq!(app.clients_lost_on_quit(), 3);
    assert_eq!(ch(&mut app, 'q'), None);
    assert_eq!(app.popup, Some(Popup::ConfirmQuit));
    assert_eq!(ch(&mut app, 'n'), None);
    assert!(!app.should_quit);
    ch(&mut app, 'q');
    assert_eq!(ch(&mut app, 'y'), Some(Effect::Quit));
}

#[test]
fn a_hand_edited_file_offers_reload_or_overwrite() {
    let mut app = app();
    edit_tcp_port(&mut app, "1884");
    press(&mut app, KeyCode::Enter);
    ch(&mut app, 'a');
    app.update(Action::ApplyFinished(Err(
        ApplyRefusal::FileChangedByHand {
            path: PathBuf::from("roost.ron"),
        },
    )));
    assert_eq!(app.popup, Some(Popup::FileChanged));
    assert!(!app.is_applying());
    // Reload: the file's hand edit becomes a pending change next to the operator's.
    assert_eq!(ch(&mut app, 'r'), Some(Effect::ReloadFile));
    let mut file = Config::default();
    file.limits.max_queued_messages = 77;
    app.update(Action::FileReloaded(Ok(file)));
    assert_eq!(app.pending.broker.tcp.port, 1884);
    assert_eq!(app.pending.limits.max_queued_messages, 77);
    assert_eq!(app.pending_changes().len(), 2);
    // Overwrite: the same apply, told to replace the hand edits.
    ch(&mut app, 'a');
    app.update(Action::ApplyFinished(Err(
        ApplyRefusal::FileChangedByHand {
            path: PathBuf::from("roost.ron"),
        },
    )));
    let effect = ch(&mut app, 'o');
    assert!(
        matches!(
            effect,
            Some(Effect::Apply {
                overwrite_hand_edits: true,
                ..
            })
        ),
        "{effect:?}"
    );
}

#[test]
fn notices_expire_and_never_hide_the_pending_counter() {
    let mut app = app();
    edit_tcp_port(&mut app, "1884");
    press(&mut app, KeyCode::Enter);
    ch(&mut app, 'r'); // revert: "pending changes discarded"
    let notice = app.notice.clone().expect("a notice");
    let now = std::time::Instant::now();
    app.update(Action::Tick(now));
    assert!(app.notice.is_some(), "not yet");
    app.update(Action::Tick(notice.expires_at));
    assert_eq!(app.notice, None, "expired");
}

#[test]
fn no_setting_is_stored_but_inactive_and_a_broker_without_listeners_is_flagged() {
    let mut config = Config::default();
    // Every setting is in effect (the store switches at Apply since issue 7).
    config.persistence.enabled = true;
    config.persistence.mode = roost::config::StorageMode::DiskBuffered;
    config.broker.websockets.enabled = true;
    config.broker.tls.enabled = true;
    config.broker.require_credentials = true;
    let mut app = App::new(config, PathBuf::from("roost.ron"), Theme::default());
    assert_eq!(
        app.stored_not_active().len(),
        0,
        "{:?}",
        app.stored_not_active()
    );
    assert!(!app.running_without_listeners(), "no figures yet");
    app.update(Action::Stats(roost::broker::StatsSnapshot {
        running: true,
        ..Default::default()
    }));
    assert!(app.running_without_listeners());
}

#[test]
fn a_store_restored_from_a_backup_is_said_in_a_popup_once_and_stays_in_status() {
    let mut app = App::new(
        Config::default(),
        PathBuf::from("roost.ron"),
        Theme::default(),
    );
    let restored = roost::broker::StatsSnapshot {
        running: true,
        store_recovery: Some("restored from backup 3 taken at 2026-11-26 09:00:00 UTC".into()),
        ..Default::default()
    };
    app.update(Action::Stats(restored.clone()));
    match &app.popup {
        Some(Popup::Message(text)) => {
            assert!(text.contains("restored from a backup"), "{text}");
            assert!(
                text.contains("backup 3 taken at 2026-11-26 09:00:00 UTC"),
                "{text}"
            );
        }
        other => panic!("expected the recovery popup, got {other:?}"),
    }
    app.popup = None;
    app.update(Action::Stats(restored));
    assert_eq!(app.popup, None, "said once");
    assert!(
        app.dashboard.latest.store_recovery.is_some(),
        "kept for Status"
    );
}

// ----- clients at scale --------------------------------------------------------------------

/// 10,000 clients (the default connection limit): one in a hundred is a stalled subscriber
/// with a full queue, every tenth has a user name.
fn many_clients() -> Vec<ClientInfo> {
    (0..10_000u32)
        .map(|i| ClientInfo {
            client_id: format!("device-{i:05}").into(),
            address: SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 40000)),
            username: (i % 10 == 0).then(|| format!("fleet-{}", i / 1000)),
            queued: if i % 100 == 42 {
                900 + (i as usize % 7)
            } else {
                0
            },
            inflight: (i % 3) as usize,
            ..client("x")
        })
        .collect()
}

fn open_clients(app: &mut App) {
    app.update(Action::SelectNode(Node::Clients.index()));
    press(app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Pane);
}

#[test]
fn ten_thousand_clients_filter_sort_and_select_quickly() {
    let mut app = app();
    let start = std::time::Instant::now();
    app.update(Action::Clients(many_clients()));
    open_clients(&mut app);
    assert_eq!(app.clients.len(), 10_000);

    // Sort by queue, largest first: the stalled subscribers come to the top.
    while app.clients.sort != roost::console::client_list::ClientColumn::Queued {
        ch(&mut app, 's');
    }
    ch(&mut app, 'S');
    let top = app.selected_client().unwrap().clone();
    assert!(top.queued >= 900, "{top:?}");

    // Filter by user name: only that fleet's clients remain, still sorted.
    ch(&mut app, '/');
    type_text(&mut app, "fleet-3");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.clients.len(), 100);
    assert!(
        (0..app.clients.len())
            .all(|row| app.clients.row(row).unwrap().username.as_deref() == Some("fleet-3"))
    );
    // By address.
    ch(&mut app, '/');
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.clients.len(), 10_000, "Esc clears the filter");
    ch(&mut app, '/');
    type_text(&mut app, "10.0.38.16:");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.clients.len(), 1);
    let expected = format!("device-{:05}", 38 * 256 + 16);
    assert_eq!(&*app.selected_client().unwrap().client_id, expected);

    // A refresh of all 10,000 keeps the filter and the selection.
    app.update(Action::Clients(many_clients()));
    assert_eq!(app.clients.len(), 1);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "10,000 clients must stay responsive: {:?}",
        start.elapsed()
    );
}

#[test]
fn disconnecting_every_matching_client_asks_first() {
    let mut app = app();
    app.update(Action::Clients(many_clients()));
    open_clients(&mut app);
    ch(&mut app, '/');
    type_text(&mut app, "fleet-7");
    press(&mut app, KeyCode::Enter);
    assert_eq!(ch(&mut app, 'X'), None);
    let Some(Popup::ConfirmDisconnectMany(ids)) = app.popup.clone() else {
        panic!("expected a question, got {:?}", app.popup);
    };
    assert_eq!(ids.len(), 100);
    let effect = ch(&mut app, 'y');
    assert_eq!(effect, Some(Effect::DisconnectMany(ids)));
    app.update(Action::DisconnectedMany {
        asked: 100,
        found: 100,
    });
    assert!(app.notice.as_ref().unwrap().text.contains("100 of 100"));
}

fn detail_of(id: &str, connected: bool) -> Box<ClientDetail> {
    Box::new(ClientDetail {
        client_id: id.into(),
        protocol: ProtocolVersion::V5,
        connection: connected.then(|| ConnectionDetail {
            address: SocketAddr::from(([127, 0, 0, 1], 50000)),
            listener: ListenerKind::Tcp,
            username: None,
            keep_alive_secs: 60,
            clean_start: false,
            connected_since: SystemTime::UNIX_EPOCH,
            receive_maximum: Some(20),
            maximum_packet_size: None,
            topic_alias_maximum: None,
            messages_in: 0,
            messages_out: 0,
            dropped: 0,
        }),
        session_expiry_secs: Some(3600),
        session_expires_in: (!connected).then(|| std::time::Duration::from_secs(3599)),
        inflight: 0,
        queued: 0,
        window: 20,
        will: None,
        subscriptions: vec![SubscriptionDetail {
            filter: "sensors/#".to_string(),
            share_group: None,
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: false,
            retain_handling: 0,
            identifier: Some(3),
        }],
        subscription_count: 1,
    })
}

#[test]
fn enter_opens_the_selected_clients_details_and_they_follow_the_selection() {
    let mut app = app();
    app.update(Action::Clients(vec![client("a"), client("b")]));
    open_clients(&mut app);
    assert!(!app.clients.detail);
    // Opening asks the broker for this one client's details.
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Some(Effect::ClientDetail("a".to_string()))
    );
    assert!(app.clients.detail);
    assert!(app.clients.shown_detail().is_none(), "not answered yet");
    app.update(Action::ClientDetail {
        client_id: "a".to_string(),
        detail: Some(detail_of("a", true)),
    });
    let shown = app.clients.shown_detail().expect("shown");
    let detail = shown.detail.as_ref().expect("a session");
    assert_eq!(detail.subscriptions[0].identifier, Some(3));

    // Another client selected: the pane follows it and asks for its details; a late
    // answer about the previous one is not shown for it.
    assert_eq!(
        ch(&mut app, 'j'),
        Some(Effect::ClientDetail("b".to_string()))
    );
    assert_eq!(app.clients.detail_of.as_deref(), Some("b"));
    app.update(Action::ClientDetail {
        client_id: "a".to_string(),
        detail: Some(detail_of("a", true)),
    });
    assert!(app.clients.shown_detail().is_none());
    assert_eq!(ch(&mut app, 'j'), None, "still b: nothing to fetch");

    // b disconnects: the list loses it, the pane keeps it and shows its session expiring.
    app.update(Action::Clients(vec![client("a")]));
    assert_eq!(app.clients.detail_of.as_deref(), Some("b"));
    app.update(Action::ClientDetail {
        client_id: "b".to_string(),
        detail: Some(detail_of("b", false)),
    });
    let shown = app.clients.shown_detail().expect("shown");
    let detail = shown.detail.as_ref().expect("the session is kept");
    assert!(detail.connection.is_none());
    assert!(detail.session_expires_in.is_some());

    // Closing the pane stops following; reopening asks again.
    assert_eq!(press(&mut app, KeyCode::Enter), None);
    assert!(!app.clients.detail);
    assert_eq!(app.clients.detail_of, None);
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Some(Effect::ClientDetail("a".to_string()))
    );
}

#[test]
fn a_detail_pane_opened_on_an_empty_list_shows_the_first_client_that_arrives() {
    let mut app = app();
    open_clients(&mut app);
    assert_eq!(press(&mut app, KeyCode::Enter), None, "nobody to ask about");
    assert!(app.clients.detail);
    assert_eq!(
        app.update(Action::Clients(vec![client("late")])),
        Some(Effect::ClientDetail("late".to_string()))
    );
    assert_eq!(app.update(Action::Clients(vec![client("late")])), None);
}

// ----- keys: Esc, numbers, the command line, Space ---------------------------------------

#[test]
fn esc_goes_back_from_a_form_to_the_tree() {
    let mut app = app();
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Pane);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.focus, Focus::Tree);
}

#[test]
fn number_keys_open_the_views() {
    let mut app = app();
    ch(&mut app, '9');
    assert_eq!(app.node, Node::Clients);
    assert_eq!(app.focus, Focus::Pane);
    ch(&mut app, '8');
    assert_eq!(app.node, Node::Status);
    ch(&mut app, '1');
    assert_eq!(app.node, Node::Broker);
}

#[test]
fn the_command_line_completes_and_runs_commands() {
    let mut app = app();
    ch(&mut app, ':');
    assert_eq!(
        app.editing.as_ref().map(|e| e.target),
        Some(EditTarget::CommandLine)
    );
    type_text(&mut app, "cl");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.editing.as_ref().unwrap().input.value(), "clients");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.node, Node::Clients);
    assert!(app.editing.is_none());

    ch(&mut app, ':');
    type_text(&mut app, "theme light");
    press(&mut app, KeyCode::Enter);
    assert_eq!(
        app.theme,
        Theme::resolve(Some("light"), "dark", false).unwrap()
    );

    ch(&mut app, ':');
    type_text(&mut app, "bogus");
    assert!(
        app.editing.as_ref().unwrap().error.is_some(),
        "flagged while typing"
    );
    press(&mut app, KeyCode::Enter);
    assert!(app.notice.as_ref().unwrap().is_error);

    ch(&mut app, ':');
    type_text(&mut app, "apply");
    assert!(matches!(
        press(&mut app, KeyCode::Enter),
        Some(Effect::Apply { .. })
    ));
}

#[test]
fn space_on_a_text_field_starts_editing() {
    let mut app = app();
    open_broker_field(&mut app, TCP_PORT_ROW);
    assert_eq!(ch(&mut app, ' '), None);
    assert!(app.editing.is_some());
}

#[test]
fn an_enabled_broker_opens_on_status() {
    let mut config = Config::default();
    config.broker.enabled = true;
    let enabled = App::new(config, PathBuf::from("roost.ron"), Theme::default());
    assert_eq!(enabled.node, Node::Status);
    assert_eq!(app().node, Node::Broker, "a fresh config opens on the form");
}

// ----- honest saving: a full disk ----------------------------------------------------------

/// What a full disk does to the config writer: part of the file is written, then ENOSPC.
fn disk_full(file: &mut std::fs::File, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    file.write_all(&contents[..contents.len() / 2])?;
    Err(std::io::Error::from_raw_os_error(28))
}

/// The broker in this process, its config file on a disk that is full: the apply goes
/// through, the file keeps its old contents, and the console says "applied, NOT saved" with
/// the reason — in the notice, the popup and the title bar — and asks before quitting.
#[tokio::test]
async fn a_full_disk_is_reported_as_applied_not_saved_and_the_old_file_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roost.ron");
    let old = roost::config::default_config_text().to_string();
    std::fs::write(&path, &old).unwrap();
    let config = Config::from_ron(&old).unwrap();
    let service = roost::admin::AdminService::with_writer(
        roost::broker::BrokerHandle::spawn(),
        path.clone(),
        config.clone(),
        Some(old.clone()),
        Arc::new(|_: &mut Config| {}),
        Arc::new(disk_full),
    );
    let mut app = App::new(config, path.clone(), Theme::default());
    edit_tcp_port(&mut app, "1884");
    press(&mut app, KeyCode::Enter);
    let Some(Effect::Apply {
        config,
        overwrite_hand_edits,
    }) = ch(&mut app, 'a')
    else {
        panic!("a applies");
    };
    let outcome = service.apply(*config, overwrite_hand_edits).await;
    app.update(Action::ApplyFinished(outcome));

    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        old,
        "the old file is intact"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["roost.ron"], "no temporary file is left");
    assert_eq!(service.applied().config.broker.tcp.port, 1884, "applied");

    let notice = app.notice.clone().expect("a notice");
    assert!(notice.is_error);
    assert!(
        notice.text.starts_with("applied, NOT saved: ")
            && notice.text.contains("No space left on device"),
        "{}",
        notice.text
    );
    let reason = app.unsaved.clone().expect("the unsaved mark stays");
    assert!(reason.contains("roost.ron"), "{reason}");
    let screen = {
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 36)).unwrap();
        terminal
            .draw(|frame| roost::console::ui::draw(frame, &app))
            .unwrap();
        terminal.backend().to_string()
    };
    assert!(screen.contains("Applied, NOT saved"), "{screen}");
    assert!(!screen.contains("Saved to"), "{screen}");
    assert!(screen.contains("NOT saved"), "the title bar keeps the mark");

    press(&mut app, KeyCode::Esc);
    ch(&mut app, 'q');
    assert_eq!(app.popup, Some(Popup::ConfirmQuit), "quitting asks first");
}
