//! The certificate and user nodes: what is configured, editable where it is a setting.
//!
//! ```text
//! ┌ Certificate Authority ────────────────────────┐
//! │   CA certificate (PEM)         ca.pem          │  form (paths)
//! │   CA private key (PEM)         (none)          │
//! │ Status: configured, can issue certificates     │  summary
//! │   ca.pem: 1 certificate (1302 bytes)           │  what is on disk
//! │ n new · i import · e export · s show           │  actions
//! └────────────────────────────────────────────────┘
//! ┌ Client Certificates ──────────────────────────┐
//! │ Thumbprint        Subject          Status      │  table
//! └────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

use crate::config::ClientCertificateStatus;
use crate::console::app::{App, Focus};
use crate::console::files::FileState;
use crate::console::node::Node;
use crate::pki::PkiPaths;

use super::form;
use super::widgets::{pane_block, truncate};

const CERTIFICATE_KEYS: &str = "n new · i import · e export · s show · y copy thumbprint. The \
                                broker uses the files from the next Apply.";
const CLIENT_KEYS: &str = "n issue · i add · Space Authorized/Revoked · R revoke · d remove · \
                           y copy thumbprint; in effect at Apply.";

pub fn draw_certificate(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane_block(app, app.node.pane_title());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [form_area, summary_area] =
        Layout::vertical([Constraint::Length(5), Constraint::Min(0)]).areas(inner);
    form::draw_fields(frame, form_area, app, app.node);
    let theme = &app.theme;
    let paths = PkiPaths::new(&app.pending.certificates, &app.pending.persistence.data_dir);
    let (cert, key) = match app.node {
        Node::CertificateAuthority => (&paths.ca_certificate, &paths.ca_private_key),
        _ => (&paths.server_certificate, &paths.server_private_key),
    };
    let present = |path: &std::path::Path, key: bool| match app.files.get(path) {
        Some(FileState::Pem {
            certificates,
            private_key,
            ..
        }) => match key {
            true => *private_key,
            false => *certificates > 0,
        },
        _ => false,
    };
    let status = match (present(cert, false), present(key, true), app.node) {
        (false, _, Node::CertificateAuthority) => "none yet (n creates one)".to_string(),
        (false, _, _) => "none yet (made at the first TLS start, or n)".to_string(),
        (true, true, Node::CertificateAuthority) => {
            "present, with private key (can issue client certificates)".to_string()
        }
        (true, false, Node::CertificateAuthority) => {
            "present, without private key (cannot issue certificates)".to_string()
        }
        (true, true, _) => "present, with private key".to_string(),
        (true, false, _) => "present, private key missing (TLS needs it)".to_string(),
    };
    let mut lines = vec![Line::from(format!("Status: {status}")).style(theme.value())];
    for path in [cert, key] {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let (text, style) = match app.files.get(path) {
            Some(state @ FileState::Pem { .. }) => (state.to_string(), theme.ok()),
            Some(state) => (state.to_string(), theme.danger()),
            None => ("not checked yet".to_string(), theme.dim()),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("  {name}: "), theme.label()),
            Span::styled(text, style),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::styled(CERTIFICATE_KEYS, theme.dim()));
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: true }),
        summary_area,
    );
}

pub fn draw_client_certificates(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let block = pane_block(app, "Client Certificates");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [table_area, note_area] =
        Layout::vertical([Constraint::Min(2), Constraint::Length(3)]).areas(inner);
    let clients = &app.pending.certificates.clients;
    let applied = &app.applied.certificates.clients;
    let rows: Vec<Row> = clients
        .iter()
        .enumerate()
        .map(|(index, cert)| {
            let dirty = applied.get(index) != Some(cert);
            let status = match cert.status {
                ClientCertificateStatus::Authorized => "Authorized",
                ClientCertificateStatus::Revoked => "Revoked",
            };
            let row = Row::new(vec![
                format!(
                    "{}{}",
                    if dirty { "* " } else { "" },
                    truncate(&cert.thumbprint, 16)
                ),
                cert.subject.clone(),
                status.to_string(),
            ]);
            if dirty {
                row.style(theme.dirty())
            } else if cert.status == ClientCertificateStatus::Revoked {
                row.style(theme.danger())
            } else {
                row
            }
        })
        .collect();
    draw_table(
        frame,
        table_area,
        app,
        rows,
        ["Thumbprint", "Subject", "Status"],
        [
            Constraint::Length(18),
            Constraint::Min(10),
            Constraint::Length(10),
        ],
        "No client certificates configured (certificates.clients in the config file).",
    );
    let note = vec![
        Line::styled("Revoked takes precedence over Authorized.", theme.dim()),
        Line::styled(CLIENT_KEYS, theme.dim()),
    ];
    frame.render_widget(Paragraph::new(note).wrap(Wrap { trim: true }), note_area);
}

pub fn draw_users(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let block = pane_block(app, "Users");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [table_area, note_area] =
        Layout::vertical([Constraint::Min(2), Constraint::Length(3)]).areas(inner);
    let rows: Vec<Row> = app
        .pending
        .users
        .iter()
        .map(|user| {
            // Only the kind of hash is shown: `$argon2id$v=19$...` → argon2id.
            let scheme = crate::auth::password::scheme(&user.password_hash).to_string();
            Row::new(vec![user.username.clone(), scheme])
        })
        .collect();
    draw_table(
        frame,
        table_area,
        app,
        rows,
        ["Username", "Password hash"],
        [Constraint::Min(16), Constraint::Length(14)],
        "No users configured: n adds one.",
    );
    let required = if app.pending.broker.require_credentials {
        "Client credentials are required: a client without a listed username and its password is refused."
    } else {
        "Client credentials are not required (Broker → Require client credentials)."
    };
    let note = vec![
        Line::styled(required, theme.dim()),
        Line::styled("Passwords are stored as hashes only.", theme.dim()),
    ];
    frame.render_widget(Paragraph::new(note).wrap(Wrap { trim: true }), note_area);
}

fn draw_table<const N: usize>(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    rows: Vec<Row>,
    header: [&str; N],
    widths: [Constraint; N],
    empty: &str,
) {
    let theme = &app.theme;
    if rows.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(empty.to_string(), theme.dim())).wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let focused = app.focus == Focus::Pane && app.popup.is_none();
    let table = Table::new(rows, widths)
        .header(Row::new(header.map(str::to_string)).style(theme.block_title(false)))
        .row_highlight_style(theme.selection(focused))
        .style(theme.value());
    let mut state = TableState::default().with_selected(Some(app.cursor()));
    frame.render_stateful_widget(table, area, &mut state);
}
