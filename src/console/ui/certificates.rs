//! The certificate and user nodes: what is configured, editable where it is a setting.
//!
//! ```text
//! ┌ Certificate Authority ────────────────────────┐
//! │   CA certificate (PEM)         ca.pem          │  form (paths)
//! │   CA private key (PEM)         (none)          │
//! │ Status: configured, can issue certificates     │  summary
//! │   ca.pem: 1 certificate (1302 bytes)           │  what is on disk
//! │ TLS settings are stored, not active yet.       │
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

use super::form;
use super::widgets::{pane_block, truncate};

const NOT_ACTIVE: &str = "TLS and certificates are stored in the configuration, not active yet: \
                          the broker reports them as such on Apply.";

pub fn draw_certificate(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane_block(app, app.node.pane_title());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [form_area, summary_area] =
        Layout::vertical([Constraint::Length(5), Constraint::Min(0)]).areas(inner);
    form::draw_fields(frame, form_area, app, app.node);
    let theme = &app.theme;
    let certs = &app.pending.certificates;
    let (cert, key) = match app.node {
        Node::CertificateAuthority => (&certs.ca_certificate, &certs.ca_private_key),
        _ => (&certs.server_certificate, &certs.server_private_key),
    };
    let status = match (cert, key, app.node) {
        (None, _, _) => "not configured".to_string(),
        (Some(_), Some(_), Node::CertificateAuthority) => {
            "configured, with private key (can issue client certificates)".to_string()
        }
        (Some(_), None, Node::CertificateAuthority) => {
            "configured, without private key (cannot issue certificates)".to_string()
        }
        (Some(_), Some(_), _) => "configured, with private key".to_string(),
        (Some(_), None, _) => "configured, private key missing (TLS needs it)".to_string(),
    };
    let mut lines = vec![Line::from(format!("Status: {status}")).style(theme.value())];
    for path in [cert, key].into_iter().flatten() {
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
    lines.push(Line::styled(NOT_ACTIVE, theme.warning()));
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
        Line::styled(NOT_ACTIVE, theme.warning()),
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
