//! The connected clients.
//!
//! ```text
//! ┌ Connected Clients (3) ─────────────────────────────────┐
//! │ Client ID      Address         Via Proto Subs Infl Queue │  table
//! │ sensor-1       127.0.0.1:50432 ws  5.0      2    0     0 │
//! │ ─────────────────────────────────────────────────────── │
//! │ keep alive 60 s · since 12:00:01 · user none · TCP      │  details of the selected one
//! └────────────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};

use crate::console::app::{App, Focus};
use crate::console::node::Node;

use super::widgets::{pane_block, time_of_day};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let title = format!("Connected Clients ({})", app.clients.len());
    let block = pane_block(app, &title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if app.clients.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled("No clients connected.", theme.dim())),
            inner,
        );
        return;
    }
    let [table_area, details_area] =
        Layout::vertical([Constraint::Min(2), Constraint::Length(3)]).areas(inner);
    // Narrow terminals drop the columns that the details line repeats.
    let wide = table_area.width >= 64;
    let header: Vec<&str> = if wide {
        vec![
            "Client ID",
            "Address",
            "Via",
            "Proto",
            "Subs",
            "Infl",
            "Queue",
            "Since",
        ]
    } else {
        vec!["Client ID", "Address", "Via", "Proto", "Subs"]
    };
    let header = Row::new(header).style(theme.block_title(false));
    let rows = app.clients.iter().map(|client| {
        let mut cells = vec![
            client.client_id.to_string(),
            client.address.to_string(),
            client.listener.transport().to_string(),
            client.protocol.to_string(),
            format!("{:>4}", client.subscriptions),
        ];
        if wide {
            cells.extend([
                format!("{:>4}", client.inflight),
                format!("{:>5}", client.queued),
                time_of_day(client.connected_since, false),
            ]);
        }
        Row::new(cells)
    });
    let mut widths = vec![
        Constraint::Min(10),
        Constraint::Length(21),
        Constraint::Length(3),
        Constraint::Length(5),
        Constraint::Length(4),
    ];
    if wide {
        widths.extend([
            Constraint::Length(4),
            Constraint::Length(5),
            Constraint::Length(8),
        ]);
    }
    let focused = app.focus == Focus::Pane && app.popup.is_none();
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(theme.selection(focused))
        .style(theme.value());
    let mut state = TableState::default().with_selected(Some(app.cursor_of(Node::Clients)));
    frame.render_stateful_widget(table, table_area, &mut state);

    if let Some(client) = app.clients.get(app.cursor_of(Node::Clients)) {
        let details = format!(
            "{} · {} over {} · keep alive {} s · user {} · connected since {} UTC · \
             {} subscriptions, {} inflight, {} queued",
            client.client_id,
            client.address,
            client.listener,
            client.keep_alive_secs,
            client.username.as_deref().unwrap_or("none"),
            time_of_day(client.connected_since, false),
            client.subscriptions,
            client.inflight,
            client.queued,
        );
        frame.render_widget(
            Paragraph::new(Line::styled(details, theme.dim())).wrap(Wrap { trim: true }),
            details_area,
        );
    }
}
