//! The connected clients: a filtered, sorted table drawn a screenful at a time (10,000
//! clients cost no more per frame than 20), a summary of the selected one, and (Enter) the
//! detail pane of [`super::client_detail`], under the table or, when wide, beside it.
//!
//! ```text
//! ┌ Clients 3 of 10000 · filter "sensor" · sort Queue ↓ ───────────┐
//! │ Client ID      Address          Queue Infl User   Proto Subs   │  table
//! │ sensor-1       127.0.0.1:50432      0    0 none   5.0      2   │
//! │                                                                │
//! │ sensor-1 · 127.0.0.1:50432 over TCP · keep alive 60 s · …       │  summary or
//! └────────────────────────────────────────────────────────────────┘  detail pane
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Borders, Paragraph, Row, Table, TableState, Wrap};

use crate::broker::ClientInfo;
use crate::console::app::{App, EditTarget, Focus};
use crate::console::client_list::ClientColumn;
use crate::console::node::Node;

use super::widgets::{pane_block, time_of_day};

/// Columns in the order shown; the first ones stay on narrow terminals.
const KEY_COLUMNS: [ClientColumn; 6] = [
    ClientColumn::ClientId,
    ClientColumn::Address,
    ClientColumn::Queued,
    ClientColumn::Inflight,
    ClientColumn::Dropped,
    ClientColumn::Rate,
];
const MORE_COLUMNS: [ClientColumn; 7] = [
    ClientColumn::MessagesIn,
    ClientColumn::MessagesOut,
    ClientColumn::User,
    ClientColumn::Transport,
    ClientColumn::Protocol,
    ClientColumn::Subscriptions,
    ClientColumn::Since,
];
/// The width from which every column fits.
const WIDE: u16 = 110;
/// The inner width from which the detail pane goes beside the table rather than under it.
const DETAIL_BESIDE: u16 = 150;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let list = &app.clients;
    let mut title = if list.filter.is_empty() {
        format!("Connected Clients ({})", list.all.len())
    } else {
        format!("Clients {} of {}", list.len(), list.all.len())
    };
    let editing_filter = app
        .editing
        .as_ref()
        .is_some_and(|e| e.target == EditTarget::ClientFilter);
    if !list.filter.is_empty() || editing_filter {
        title.push_str(&format!(" · filter {:?}", list.filter));
    }
    if list.sort != ClientColumn::ClientId || list.descending {
        title.push_str(&format!(
            " · sort {} {}",
            list.sort.title(),
            if list.descending { "↓" } else { "↑" }
        ));
    }
    let block = pane_block(app, &title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if list.all.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled("No clients connected.", theme.dim())),
            inner,
        );
        return;
    }
    let (table_area, details_area) = split(inner, list.detail);
    let wide = table_area.width >= WIDE;
    let mut columns: Vec<ClientColumn> = KEY_COLUMNS.to_vec();
    if wide {
        columns.extend(MORE_COLUMNS);
    }
    let header = Row::new(columns.iter().map(|column| {
        if *column == list.sort {
            format!(
                "{}{}",
                column.title(),
                if list.descending { "↓" } else { "↑" }
            )
        } else {
            column.title().to_string()
        }
    }))
    .style(theme.block_title(false));

    // Only the rows on screen are built.
    let visible = usize::from(table_area.height.saturating_sub(1)).max(1);
    let selected = app.cursor_of(Node::Clients);
    let first = selected.saturating_sub(visible - 1);
    let rows = (first..list.len().min(first + visible)).filter_map(|row| {
        let client = list.row(row)?;
        let rate = list.rate(row);
        Some(Row::new(
            columns.iter().map(|column| cell(client, rate, *column)),
        ))
    });
    let widths: Vec<Constraint> = columns.iter().map(|c| width(*c)).collect();
    let focused = app.focus == Focus::Pane && app.popup.is_none();
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(theme.selection(focused))
        .style(theme.value());
    let mut state = TableState::default().with_selected(Some(selected - first));
    frame.render_stateful_widget(table, table_area, &mut state);

    if list.detail {
        let borders = if details_area.y == inner.y {
            Borders::LEFT | Borders::TOP
        } else {
            Borders::TOP
        };
        super::client_detail::draw(frame, details_area, app, borders);
    } else if let Some(client) = app.selected_client() {
        let rate = list.rate(selected);
        let line = Line::from(format!(
            "{} · {} over {} · keep alive {} s · user {} · since {} UTC · {} subscriptions, \
             {} inflight, {} queued · in {} out {} dropped {} · {rate:.1} msg/s · Enter: details",
            client.client_id,
            client.address,
            client.listener,
            client.keep_alive_secs,
            client.username.as_deref().unwrap_or("none"),
            time_of_day(client.connected_since, false),
            client.subscriptions,
            client.inflight,
            client.queued,
            client.messages_in,
            client.messages_out,
            client.dropped,
        ));
        frame.render_widget(
            Paragraph::new(line)
                .style(theme.dim())
                .wrap(Wrap { trim: true }),
            details_area,
        );
    }
}

/// The table's area and the details' below it: a three-line summary of the selected client,
/// or with the detail pane open, the pane beside the table on wide terminals and under a
/// few rows of it on narrow ones.
fn split(inner: Rect, detail: bool) -> (Rect, Rect) {
    if !detail {
        let [table, details] =
            Layout::vertical([Constraint::Min(2), Constraint::Length(3)]).areas(inner);
        return (table, details);
    }
    if inner.width >= DETAIL_BESIDE {
        let width = (inner.width / 2).clamp(72, 110);
        let [table, details] =
            Layout::horizontal([Constraint::Min(40), Constraint::Length(width)]).areas(inner);
        return (table, details);
    }
    // Enough of the table to keep the selection in view; the rest for the details.
    let table_rows = (inner.height / 4).max(4);
    let [table, details] =
        Layout::vertical([Constraint::Length(table_rows), Constraint::Min(0)]).areas(inner);
    (table, details)
}

fn cell(client: &ClientInfo, rate: f64, column: ClientColumn) -> String {
    match column {
        ClientColumn::MessagesIn => format!("{:>8}", client.messages_in),
        ClientColumn::MessagesOut => format!("{:>8}", client.messages_out),
        ClientColumn::Dropped => format!("{:>5}", client.dropped),
        ClientColumn::Rate => format!("{rate:>6.1}"),
        ClientColumn::ClientId => client.client_id.to_string(),
        ClientColumn::Address => client.address.to_string(),
        ClientColumn::User => client.username.clone().unwrap_or_default(),
        ClientColumn::Transport => client.listener.transport().to_string(),
        ClientColumn::Protocol => client.protocol.to_string(),
        ClientColumn::Subscriptions => format!("{:>4}", client.subscriptions),
        ClientColumn::Inflight => format!("{:>5}", client.inflight),
        ClientColumn::Queued => format!("{:>6}", client.queued),
        ClientColumn::Since => time_of_day(client.connected_since, false),
    }
}

fn width(column: ClientColumn) -> Constraint {
    match column {
        ClientColumn::MessagesIn | ClientColumn::MessagesOut => Constraint::Length(9),
        ClientColumn::Dropped => Constraint::Length(6),
        ClientColumn::Rate => Constraint::Length(7),
        ClientColumn::ClientId => Constraint::Min(10),
        ClientColumn::Address => Constraint::Length(21),
        ClientColumn::Transport => Constraint::Length(3),
        ClientColumn::User => Constraint::Length(10),
        ClientColumn::Protocol => Constraint::Length(6),
        ClientColumn::Subscriptions => Constraint::Length(5),
        ClientColumn::Inflight => Constraint::Length(6),
        ClientColumn::Queued => Constraint::Length(7),
        ClientColumn::Since => Constraint::Length(8),
    }
}
