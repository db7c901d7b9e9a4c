//! Every pane of the console rendered into ratatui's `TestBackend` at 80×24 (the smallest
//! terminal we support) and 160×48, plus the popups, snapshot-tested with insta. The help
//! popup is generated from the key map, so this snapshot also keeps the help honest.
//!
//! All data is fixed (no clocks, no live rates): the snapshots are deterministic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use roost::admin::{ApplyOutcome, ApplyRefusal, SaveOutcome};
use roost::broker::{
    ApplyChange, ApplyReport, ChangeAction, ClientDetail, ClientInfo, ConnectionDetail, DiagEvent,
    Direction, ListenerInfo, ListenerKind, StatsSnapshot, SubscriptionDetail, WillDetail,
};
use roost::config::{ClientCertificate, ClientCertificateStatus, Config, User};
use roost::console::app::Popup;
use roost::console::files::FileState;
use roost::console::node::Node;
use roost::console::theme::Theme;
use roost::console::{Action, App, ui};
use roost::mqtt::{PacketType, ProtocolVersion, QoS};

const SMALL: (u16, u16) = (80, 24);
const LARGE: (u16, u16) = (160, 48);

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn config() -> Config {
    let mut config = Config::default();
    config.broker.enabled = true;
    config.certificates.ca_certificate = Some(PathBuf::from("roost-data/ca.pem"));
    config.certificates.ca_private_key = Some(PathBuf::from("roost-data/ca.key"));
    config.certificates.server_certificate = Some(PathBuf::from("roost-data/server.pem"));
    config.certificates.clients = vec![
        ClientCertificate {
            name: String::new(),
            expires: String::new(),
            thumbprint: "3f".repeat(32),
            subject: "CN=sensor-1".to_string(),
            status: ClientCertificateStatus::Authorized,
        },
        ClientCertificate {
            name: String::new(),
            expires: String::new(),
            thumbprint: "a0".repeat(32),
            subject: "CN=old-gateway".to_string(),
            status: ClientCertificateStatus::Revoked,
        },
    ];
    config.users = vec![User {
        username: "operator".to_string(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_string(),
    }];
    config
}

fn stats(second: u64) -> StatsSnapshot {
    StatsSnapshot {
        running: true,
        uptime: Duration::from_secs(3723 + second),
        clients: 3,
        connections: 3,
        connections_refused: 0,
        websocket_connections: 1,
        sessions: 4,
        subscriptions: 7,
        messages_received: 1200 + second * 10,
        messages_sent: 2400 + second * 20,
        messages_retained: 5,
        messages_dropped: 0,
        store_errors: 0,
        auth_failures: 0,
        publishes_denied: 0,
        subscriptions_denied: 0,
        bytes_received: 0,
        bytes_sent: 0,
        messages_received_per_sec: ((second * 7) % 13) as f64,
        messages_sent_per_sec: ((second * 5) % 17) as f64,
        retained_storage_bytes: 0,
        queued_storage_bytes: 0,
        session_storage_bytes: 0,
        listeners: vec![ListenerInfo {
            kind: ListenerKind::Tcp,
            address: SocketAddr::from(([0, 0, 0, 0], 1883)),
        }],
        certificates_refused: 0,
        tls_handshakes_failed: 0,
        server_certificate_expires: None,
        store_recovery: None,
    }
}

fn clients() -> Vec<ClientInfo> {
    ["sensor-1", "sensor-2", "dashboard"]
        .iter()
        .enumerate()
        .map(|(i, id)| ClientInfo {
            client_id: (*id).into(),
            address: SocketAddr::from(([192, 168, 1, 20 + i as u8], 50000 + i as u16)),
            listener: if i == 1 {
                ListenerKind::WebSocket
            } else {
                ListenerKind::Tcp
            },
            protocol: if i == 2 {
                ProtocolVersion::V3_1_1
            } else {
                ProtocolVersion::V5
            },
            username: (i == 2).then(|| "operator".to_string()),
            keep_alive_secs: 60,
            subscriptions: i,
            inflight: i,
            queued: 0,
            connected_since: at(i as u64 * 61),
            messages_in: 100 * i as u64,
            messages_out: 7 * i as u64,
            dropped: if i == 1 { 3 } else { 0 },
        })
        .collect()
}

fn diag_events() -> Vec<Arc<DiagEvent>> {
    (0..30u64)
        .map(|i| {
            let publish = i % 3 != 2;
            Arc::new(DiagEvent {
                time: at(100) + Duration::from_millis(i * 250),
                client_id: format!("sensor-{}", i % 2 + 1).into(),
                transport: if i % 2 == 0 {
                    ListenerKind::Tcp
                } else {
                    ListenerKind::WebSocket
                },
                direction: if i % 4 == 3 {
                    Direction::Out
                } else {
                    Direction::In
                },
                packet_type: if publish {
                    PacketType::Publish
                } else {
                    PacketType::PingReq
                },
                topic: publish.then(|| format!("home/room{}/temp", i % 3).into()),
                qos: publish.then_some(QoS::AtLeastOnce),
                packet_id: publish.then_some(i as u16),
                size: if publish { 42 } else { 2 },
                payload_preview: publish.then(|| Bytes::from(format!("{{\"t\":{}.5}}", 20 + i))),
            })
        })
        .collect()
}

/// An app with data in every view and one pending change (the TCP port).
fn app() -> App {
    let applied = config();
    let mut app = App::new(
        applied,
        PathBuf::from("/etc/roost/roost.ron"),
        Theme::default(),
    );
    app.pending.broker.tcp.port = 1884;
    app.pending.diagnostics.log_messages = true;
    app.diagnostics_live = true;
    for second in 0..200 {
        app.update(Action::Stats(stats(second)));
    }
    app.update(Action::Clients(clients()));
    for event in diag_events() {
        app.update(Action::Diag(event));
    }
    let pem = |certificates, private_key| FileState::Pem {
        bytes: 1302,
        certificates,
        private_key,
        thumbprint: None,
    };
    app.update(Action::Files(
        [
            (PathBuf::from("roost-data/ca.pem"), pem(1, false)),
            (PathBuf::from("roost-data/ca.key"), pem(0, true)),
            (PathBuf::from("roost-data/server.pem"), FileState::Missing),
        ]
        .into_iter()
        .collect(),
    ));
    app
}

fn render(app: &App, (width, height): (u16, u16)) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| ui::draw(frame, app)).unwrap();
    terminal
}

fn press(app: &mut App, code: KeyCode) {
    app.update(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn snapshot_node(node: Node) {
    let mut app = app();
    app.update(Action::SelectNode(node.index()));
    press(&mut app, KeyCode::Tab);
    let name = node.name().to_lowercase().replace(' ', "_");
    insta::assert_snapshot!(format!("{name}_80x24"), render(&app, SMALL).backend());
    insta::assert_snapshot!(format!("{name}_160x48"), render(&app, LARGE).backend());
}

#[test]
fn broker_pane() {
    snapshot_node(Node::Broker);
}

#[test]
fn limits_pane() {
    snapshot_node(Node::Limits);
}

#[test]
fn certificate_authority_pane() {
    snapshot_node(Node::CertificateAuthority);
}

#[test]
fn server_certificate_pane() {
    snapshot_node(Node::ServerCertificate);
}

#[test]
fn client_certificates_pane() {
    snapshot_node(Node::ClientCertificates);
}

#[test]
fn users_pane() {
    snapshot_node(Node::Users);
}

#[test]
fn diagnostics_pane() {
    snapshot_node(Node::Diagnostics);
}

#[test]
fn status_pane() {
    snapshot_node(Node::Status);
}

#[test]
fn clients_pane() {
    snapshot_node(Node::Clients);
}

#[test]
fn tree_focused_on_a_fresh_config() {
    let app = App::new(
        Config::default(),
        PathBuf::from("roost.ron"),
        Theme::default(),
    );
    insta::assert_snapshot!("fresh_80x24", render(&app, SMALL).backend());
}

#[test]
fn help_popup() {
    let mut app = app();
    press(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help_160x48", render(&app, LARGE).backend());
    insta::assert_snapshot!("help_80x24", render(&app, SMALL).backend());
}

#[test]
fn editing_with_an_invalid_port() {
    let mut app = app();
    press(&mut app, KeyCode::Tab);
    for _ in 0..3 {
        press(&mut app, KeyCode::Char('j'));
    }
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('9'));
    press(&mut app, KeyCode::Char('9'));
    insta::assert_snapshot!("editing_invalid_port_80x24", render(&app, SMALL).backend());
}

#[test]
fn apply_report_popup() {
    let mut app = app();
    press(&mut app, KeyCode::Char('a'));
    app.update(Action::ApplyFinished(Ok(ApplyOutcome {
        generation: 1,
        saved: SaveOutcome::Saved {
            path: "roost.ron".into(),
            comments_copied_to: None,
        },
        report: ApplyReport {
            changes: vec![
                ApplyChange {
                    subject: "TCP listener 0.0.0.0:1884".to_string(),
                    action: ChangeAction::Restarted,
                },
                ApplyChange {
                    subject: "diagnostics".to_string(),
                    action: ChangeAction::Updated,
                },
                ApplyChange {
                    subject: "TLS".to_string(),
                    action: ChangeAction::StoredNotActive,
                },
            ],
        },
    })));
    insta::assert_snapshot!("apply_report_80x24", render(&app, SMALL).backend());
}

#[test]
fn apply_refused_popup() {
    let mut app = app();
    press(&mut app, KeyCode::Char('a'));
    app.update(Action::ApplyFinished(Err(ApplyRefusal::Refused(
        "cannot listen on 0.0.0.0:1884 for the TCP listener: Address in use (os error 98)"
            .to_string(),
    ))));
    insta::assert_snapshot!("apply_refused_80x24", render(&app, SMALL).backend());
}

#[test]
fn quit_confirmation_popup() {
    let mut app = app();
    press(&mut app, KeyCode::Char('q'));
    assert_eq!(app.popup, Some(Popup::ConfirmQuit));
    insta::assert_snapshot!("confirm_quit_80x24", render(&app, SMALL).backend());
}

#[test]
fn every_theme_renders_and_no_color_keeps_the_text() {
    for (name, _) in roost::console::theme::BUILT_IN {
        let mut app = app();
        app.theme = Theme::resolve(Some(name), "dark", false).unwrap();
        let coloured = render(&app, SMALL);
        app.theme = Theme::resolve(Some(name), "dark", true).unwrap();
        let plain = render(&app, SMALL);
        // Same text whatever the colours.
        assert_eq!(coloured.backend().to_string(), plain.backend().to_string());
        let cells = plain.backend().buffer().content();
        assert!(
            cells
                .iter()
                .all(|c| c.fg == ratatui::style::Color::Reset
                    && c.bg == ratatui::style::Color::Reset),
            "NO_COLOR leaves no colour with theme {name}"
        );
    }
}

#[test]
fn status_warns_when_the_server_certificate_expires_within_30_days() {
    let mut app = app();
    let mut figures = stats(200);
    figures.certificates_refused = 4;
    figures.server_certificate_expires = Some(SystemTime::now() + Duration::from_secs(10 * 86_400));
    app.update(Action::Stats(figures.clone()));
    app.update(Action::SelectNode(Node::Status.index()));
    let screen = format!("{:?}", render(&app, LARGE).backend());
    assert!(screen.contains("Server cert expires"), "{screen}");
    assert!(screen.contains("Certificates refused 4"), "{screen}");

    // A year away: shown, without the warning.
    figures.server_certificate_expires =
        Some(SystemTime::now() + Duration::from_secs(365 * 86_400));
    app.update(Action::Stats(figures));
    let screen = format!("{:?}", render(&app, LARGE).backend());
    assert!(screen.contains("Server cert until"), "{screen}");
}

#[test]
fn a_long_notice_leaves_the_pending_counter_and_the_unsaved_mark_visible() {
    let mut app = app();
    app.pending.broker.tcp.port = 1999;
    app.unsaved = Some("roost.ron is read-only; it was not replaced".to_string());
    app.notice = Some(roost::console::app::Notice::new(
        "applied, NOT saved: /a/very/long/path/to/the/configuration/roost.ron is read-only; it was not replaced".to_string(),
        true,
    ));
    let screen = render(&app, SMALL).backend().to_string();
    let title = screen.lines().next().unwrap();
    assert!(title.contains("pending changes"), "{title}");
    assert!(title.contains("NOT saved"), "{title}");
    insta::assert_snapshot!("long_notice_80x24", render(&app, SMALL).backend());
}

#[test]
fn status_warns_of_no_listeners() {
    let mut config = config();
    config.broker.tcp.enabled = false;
    // Every setting is in effect since the store switches at Apply.
    config.persistence.enabled = true;
    config.persistence.mode = roost::config::StorageMode::DiskBuffered;
    let mut app = App::new(
        config,
        PathBuf::from("/etc/roost/roost.ron"),
        Theme::default(),
    );
    app.node = Node::Status;
    app.update(Action::Stats(StatsSnapshot {
        running: true,
        ..stats(1)
    }));
    app.dashboard.latest.listeners.clear();
    let screen = render(&app, SMALL).backend().to_string();
    assert!(screen.contains("no listeners"), "{screen}");
    assert!(!screen.contains("not active yet"), "{screen}");
    insta::assert_snapshot!("status_warnings_80x24", render(&app, SMALL).backend());
}

#[test]
fn status_says_the_store_was_restored_from_a_backup() {
    let mut app = App::new(
        config(),
        PathBuf::from("/etc/roost/roost.ron"),
        Theme::default(),
    );
    app.node = Node::Status;
    app.update(Action::Stats(StatsSnapshot {
        running: true,
        store_recovery: Some("restored from backup 3".into()),
        ..stats(1)
    }));
    app.popup = None;
    let screen = render(&app, SMALL).backend().to_string();
    assert!(screen.contains("Store restored from a backup"), "{screen}");
}

/// The Clients view with 10,000 rows, sorted by queue with the detail pane closed, at the
/// three sizes an operator's terminal is likely to have.
#[test]
fn many_clients_at_three_sizes() {
    let mut app = app();
    let many: Vec<ClientInfo> = (0..10_000u32)
        .map(|i| ClientInfo {
            client_id: format!("device-{i:05}").into(),
            address: SocketAddr::from(([10, 0, (i / 256) as u8, (i % 256) as u8], 40000)),
            queued: if i % 100 == 42 { 900 } else { 0 },
            ..clients()[0].clone()
        })
        .collect();
    app.update(Action::Clients(many));
    app.update(Action::SelectNode(Node::Clients.index()));
    press(&mut app, KeyCode::Tab);
    for _ in 0..6 {
        press(&mut app, KeyCode::Char('s'));
    }
    press(&mut app, KeyCode::Char('S'));
    insta::assert_snapshot!("clients_many_80x24", render(&app, SMALL).backend());
    insta::assert_snapshot!("clients_many_100x30", render(&app, (100, 30)).backend());
    insta::assert_snapshot!("clients_many_200x50", render(&app, (200, 50)).backend());
    press(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("clients_detail_100x30", render(&app, (100, 30)).backend());
}

/// The details of sensor-1: a v5 client with a delayed will and three subscriptions (one
/// shared, one with a Subscription Identifier).
fn sensor_detail(connected: bool) -> ClientDetail {
    let sub =
        |filter: &str, group: Option<&str>, qos: QoS, identifier: Option<u32>| SubscriptionDetail {
            filter: filter.to_string(),
            share_group: group.map(str::to_string),
            qos,
            no_local: identifier.is_some(),
            retain_as_published: identifier.is_some(),
            retain_handling: if group.is_some() { 2 } else { 1 },
            identifier,
        };
    ClientDetail {
        client_id: "sensor-1".into(),
        protocol: ProtocolVersion::V5,
        connection: connected.then(|| ConnectionDetail {
            address: SocketAddr::from(([192, 168, 1, 20], 50000)),
            listener: ListenerKind::SecureWebSocket,
            username: Some("fleet".to_string()),
            keep_alive_secs: 30,
            clean_start: false,
            connected_since: at(0),
            receive_maximum: Some(20),
            maximum_packet_size: Some(65_536),
            topic_alias_maximum: None,
            messages_in: 0,
            messages_out: 0,
            dropped: 0,
        }),
        session_expiry_secs: Some(3600),
        session_expires_in: (!connected).then(|| Duration::from_secs(3540)),
        inflight: 0,
        queued: if connected { 0 } else { 12 },
        window: 20,
        will: Some(WillDetail {
            topic: "alarms/sensor-1".into(),
            qos: QoS::AtLeastOnce,
            retain: true,
            payload_bytes: 10,
            delay_secs: 30,
            publishes_in: (!connected).then(|| Duration::from_secs(25)),
        }),
        subscriptions: vec![
            sub("jobs/#", Some("workers"), QoS::ExactlyOnce, None),
            sub("home/+/temp", None, QoS::AtLeastOnce, Some(7)),
            sub("home/+/humidity", None, QoS::AtMostOnce, None),
        ],
        subscription_count: 3,
    }
}

/// The detail pane of one client at the smallest size (under the table) and a wide one
/// (beside it), and once its client has gone (the session and the will counting down).
#[test]
fn client_detail_pane() {
    let mut app = app();
    app.update(Action::SelectNode(Node::Clients.index()));
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Char('j'));
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.clients.detail_of.as_deref(), Some("sensor-1"));
    insta::assert_snapshot!("client_detail_loading_80x24", render(&app, SMALL).backend());
    app.update(Action::ClientDetail {
        client_id: "sensor-1".to_string(),
        detail: Some(Box::new(sensor_detail(true))),
    });
    let small = render(&app, SMALL).backend().to_string();
    for expected in ["alarms/sensor-1", "home/+/temp", "workers", "65536 B"] {
        assert!(small.contains(expected), "{expected}:\n{small}");
    }
    insta::assert_snapshot!("client_detail_80x24", render(&app, SMALL).backend());
    insta::assert_snapshot!("client_detail_200x50", render(&app, (200, 50)).backend());
    app.update(Action::ClientDetail {
        client_id: "sensor-1".to_string(),
        detail: Some(Box::new(sensor_detail(false))),
    });
    insta::assert_snapshot!("client_detail_gone_80x24", render(&app, SMALL).backend());
}

#[test]
fn the_tree_collapses_under_100_columns_and_a_tiny_terminal_says_so() {
    let mut app = app();
    app.update(Action::SelectNode(Node::Limits.index()));
    press(&mut app, KeyCode::Tab);
    let narrow = render(&app, (90, 24)).backend().to_string();
    assert!(!narrow.contains("Certificate Authority"), "{narrow}");
    insta::assert_snapshot!("limits_collapsed_90x24", render(&app, (90, 24)).backend());
    let wide = render(&app, (100, 30)).backend().to_string();
    assert!(wide.contains("Certificate Authority"), "{wide}");
    insta::assert_snapshot!("limits_100x30", render(&app, (100, 30)).backend());
    let tiny = render(&app, (40, 10)).backend().to_string();
    assert!(tiny.contains("terminal too small (need 60×16"), "{tiny}");
    insta::assert_snapshot!("too_small_40x10", render(&app, (40, 10)).backend());
}
