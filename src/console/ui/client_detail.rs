//! The detail pane of one client: its connection and what its CONNECT asked for, its
//! session expiry, its will and every subscription with its options. Below the table on
//! narrow terminals, beside it on wide ones.
//!
//! ```text
//! ─ sensor-1 · connected ──────────────────────────────────────────────────
//! MQTT 5.0 over wss from 192.168.1.20:50000 · since 22:13:20 UTC
//! User           fleet                   Clean start    no                  properties,
//! Keep alive     30 s                    Session expiry 1 h                 two columns
//! Receive max    20                      Max packet     65536 B
//! Topic aliases  0 (default)             Window         20 in flight
//! Messages       in 0 · out 0 · dropped 0 · 0.0 msg/s · 0 inflight · 0 queued
//! Will           alarms/sensor-1 · QoS 1 · retained · 10 B · delay 30 s
//! Subscriptions  3
//! Filter                 QoS NoLocal RetainAsPub RetainHandling SubId Group   one row each
//! home/+/temp              1 yes     yes         if new             7 -
//! ```

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

use crate::broker::{ClientDetail, ClientInfo, SubscriptionDetail, WillDetail};
use crate::console::app::App;

use super::widgets::{time_of_day, truncate};

/// Width of the property labels.
const LABEL: u16 = 15;

/// Draws the pane for the client it follows into `area`; `borders` says which edges
/// separate it from the table.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, borders: Borders) {
    let theme = &app.theme;
    let list = &app.clients;
    let Some(client_id) = list.detail_of.as_deref() else {
        return;
    };
    let listed = list.position(client_id).and_then(|row| {
        let info = list.row(row)?;
        Some((info, list.rate(row)))
    });
    let fetched = list.shown_detail();
    let status = match fetched.map(|f| f.detail.as_deref()) {
        Some(Some(detail)) => match (&detail.connection, detail.session_expires_in) {
            (Some(_), _) => "connected".to_string(),
            (None, Some(left)) => format!("disconnected · session ends in {}", span(left)),
            (None, None) => "disconnected".to_string(),
        },
        Some(None) => "no session".to_string(),
        None => "loading…".to_string(),
    };
    let block = Block::new()
        .borders(borders)
        .border_style(theme.border(false))
        .title(Span::styled(
            format!(" {client_id} · {status} "),
            theme.block_title(false),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let Some(fetched) = fetched else {
        // The list's figures until the broker has answered.
        let lines = match listed {
            Some((info, rate)) => vec![
                connection_line(info),
                Line::from(format!(
                    "{} in · {} out · {} dropped · {rate:.1} msg/s",
                    info.messages_in, info.messages_out, info.dropped
                )),
            ],
            None => Vec::new(),
        };
        frame.render_widget(Paragraph::new(lines).style(theme.dim()), inner);
        return;
    };
    let Some(detail) = fetched.detail.as_deref() else {
        frame.render_widget(
            Paragraph::new(Line::styled(
                format!("The broker has no session for {client_id} any more."),
                theme.dim(),
            )),
            inner,
        );
        return;
    };
    let rate = listed.map_or(0.0, |(_, rate)| rate);
    let properties = property_lines(property_rows(detail, rate), inner.width, app);
    let property_height = properties.len() as u16;
    let [head, props, subs] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(property_height),
        Constraint::Min(0),
    ])
    .areas(inner);

    let head_line = match &detail.connection {
        Some(connection) => Line::styled(
            format!(
                "MQTT {} over {} from {} · since {} UTC",
                detail.protocol,
                connection.listener.transport(),
                connection.address,
                time_of_day(connection.connected_since, false),
            ),
            theme.value(),
        ),
        None => Line::styled(
            format!("MQTT {} · not connected", detail.protocol),
            theme.value(),
        ),
    };
    frame.render_widget(Paragraph::new(head_line), head);
    frame.render_widget(Paragraph::new(properties), props);
    draw_subscriptions(frame, subs, app, detail);
}

/// `MQTT 5.0 over tcp from ADDR · since HH:MM:SS UTC` from the list's row.
fn connection_line(info: &ClientInfo) -> Line<'static> {
    Line::from(format!(
        "MQTT {} over {} from {} · since {} UTC",
        info.protocol,
        info.listener.transport(),
        info.address,
        time_of_day(info.connected_since, false),
    ))
}

/// One line of properties: two short ones side by side, or a long one whose parts (joined
/// by ` · `) continue on further lines when they do not fit.
enum Property {
    Pair([(&'static str, String); 2]),
    Wide(&'static str, Vec<String>),
}

/// The properties of `detail`, in the order shown.
fn property_rows(detail: &ClientDetail, rate: f64) -> Vec<Property> {
    let v5 = detail.protocol.is_v5();
    let not_v5 = || "– (5.0 only)".to_string();
    let mut rows = Vec::new();
    let expiry = expiry_text(detail);
    match &detail.connection {
        Some(connection) => {
            rows.push(Property::Pair([
                (
                    "User",
                    connection.username.clone().unwrap_or_else(|| "none".into()),
                ),
                ("Clean start", yes_no(connection.clean_start).to_string()),
            ]));
            rows.push(Property::Pair([
                (
                    "Keep alive",
                    if connection.keep_alive_secs == 0 {
                        "off".to_string()
                    } else {
                        format!("{} s", connection.keep_alive_secs)
                    },
                ),
                ("Session expiry", expiry),
            ]));
            rows.push(Property::Pair([
                (
                    "Receive max",
                    match connection.receive_maximum {
                        _ if !v5 => not_v5(),
                        Some(n) => n.to_string(),
                        None => "65535 (default)".to_string(),
                    },
                ),
                (
                    "Max packet",
                    match connection.maximum_packet_size {
                        Some(n) => format!("{n} B"),
                        None => "no limit".to_string(),
                    },
                ),
            ]));
            rows.push(Property::Pair([
                (
                    "Topic aliases",
                    match connection.topic_alias_maximum {
                        _ if !v5 => not_v5(),
                        Some(n) => n.to_string(),
                        None => "0 (default)".to_string(),
                    },
                ),
                ("Window", format!("{} in flight", detail.window)),
            ]));
            rows.push(Property::Wide(
                "Messages",
                vec![
                    format!("in {}", connection.messages_in),
                    format!("out {}", connection.messages_out),
                    format!("dropped {}", connection.dropped),
                    format!("{rate:.1} msg/s"),
                    format!("{} inflight", detail.inflight),
                    format!("{} queued", detail.queued),
                ],
            ));
        }
        None => {
            rows.push(Property::Wide("Session expiry", vec![expiry]));
            rows.push(Property::Wide(
                "Messages",
                vec![
                    format!("{} inflight", detail.inflight),
                    format!("{} queued for its return", detail.queued),
                ],
            ));
        }
    }
    rows.push(Property::Wide(
        "Will",
        detail
            .will
            .as_ref()
            .map_or_else(|| vec!["none".to_string()], will_parts),
    ));
    rows
}

/// Lays the properties out in `width` columns: labels padded to [`LABEL`], pairs in two
/// halves, long values continued under their first part.
fn property_lines(rows: Vec<Property>, width: u16, app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let width = usize::from(width);
    let label_width = usize::from(LABEL);
    let half = width / 2;
    let value_width = half.saturating_sub(label_width + 1);
    let label = |text: &str| Span::styled(format!("{text:<label_width$}"), theme.label());
    let mut lines = Vec::new();
    for row in rows {
        match row {
            Property::Pair([(left_label, left), (right_label, right)]) => {
                lines.push(Line::from(vec![
                    label(left_label),
                    Span::styled(
                        format!("{:<value_width$} ", truncate(&left, value_width)),
                        theme.value(),
                    ),
                    label(right_label),
                    Span::styled(right, theme.value()),
                ]));
            }
            Property::Wide(name, parts) => {
                let room = width.saturating_sub(label_width).max(1);
                let mut current = String::new();
                let mut first = true;
                for part in parts {
                    let joined = if current.is_empty() {
                        part.clone()
                    } else {
                        format!("{current} · {part}")
                    };
                    if joined.chars().count() <= room || current.is_empty() {
                        current = joined;
                        continue;
                    }
                    lines.push(Line::from(vec![
                        label(if first { name } else { "" }),
                        Span::styled(format!("{current} ·"), theme.value()),
                    ]));
                    first = false;
                    current = part;
                }
                lines.push(Line::from(vec![
                    label(if first { name } else { "" }),
                    Span::styled(current, theme.value()),
                ]));
            }
        }
    }
    lines
}

fn expiry_text(detail: &ClientDetail) -> String {
    match detail.session_expiry_secs {
        None => "never".to_string(),
        Some(0) => "at disconnect".to_string(),
        Some(secs) => span(Duration::from_secs(u64::from(secs))),
    }
}

fn will_parts(will: &WillDetail) -> Vec<String> {
    let mut parts = vec![
        will.topic.to_string(),
        format!("QoS {}", will.qos as u8),
        if will.retain {
            "retained"
        } else {
            "not retained"
        }
        .to_string(),
        format!("{} B", will.payload_bytes),
    ];
    if will.delay_secs > 0 {
        parts.push(format!(
            "delay {}",
            span(Duration::from_secs(u64::from(will.delay_secs)))
        ));
    }
    if let Some(left) = will.publishes_in {
        parts.push(format!("published in {}", span(left)));
    }
    parts
}

fn draw_subscriptions(frame: &mut Frame, area: Rect, app: &App, detail: &ClientDetail) {
    if area.height == 0 {
        return;
    }
    let theme = &app.theme;
    let [title, table_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let shown = detail.subscriptions.len();
    // Rows that fit under the header; one goes to "and N more" when they do not all fit.
    let room = usize::from(table_area.height.saturating_sub(1));
    let total = detail.subscription_count;
    let fits = total <= room;
    let rows_shown = if fits { shown } else { room.saturating_sub(1) };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(
                format!("{:<width$}", "Subscriptions", width = usize::from(LABEL)),
                theme.label(),
            ),
            Span::styled(
                if total == 0 {
                    "none".to_string()
                } else {
                    total.to_string()
                },
                theme.value(),
            ),
        ])),
        title,
    );
    if total == 0 || table_area.height == 0 {
        return;
    }
    // The option names of MQTT 5.0 §3.8.3.1, and the Subscription Identifier (§3.8.2.1.2).
    let header = Row::new([
        "Filter",
        "QoS",
        "NoLocal",
        "RetainAsPub",
        "RetainHandling",
        "SubId",
        "Group",
    ])
    .style(theme.label());
    let mut rows: Vec<Row> = detail
        .subscriptions
        .iter()
        .take(rows_shown)
        .map(subscription_row)
        .collect();
    if !fits {
        rows.push(Row::new([format!("… and {} more", total - rows_shown)]).style(theme.dim()));
    }
    let table = Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Length(3),
            Constraint::Length(7),
            Constraint::Length(11),
            Constraint::Length(14),
            Constraint::Length(5),
            Constraint::Length(10),
        ],
    )
    .header(header)
    .style(theme.value());
    frame.render_widget(table, table_area);
}

fn subscription_row(subscription: &SubscriptionDetail) -> Row<'static> {
    Row::new([
        subscription.filter.clone(),
        format!("{:>3}", subscription.qos as u8),
        yes_no(subscription.no_local).to_string(),
        yes_no(subscription.retain_as_published).to_string(),
        // Retain Handling (MQTT 5.0 §3.8.3.1): 0 at subscribe, 1 only when new, 2 never.
        match subscription.retain_handling {
            0 => "send",
            1 => "if new",
            _ => "never",
        }
        .to_string(),
        subscription
            .identifier
            .map_or_else(|| "-".to_string(), |id| format!("{id:>5}")),
        subscription
            .share_group
            .clone()
            .unwrap_or_else(|| "-".to_string()),
    ])
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// A span of time as an operator reads it: `45 s`, `12 min 5 s`, `3 h 20 min`, `2 d 4 h`.
pub fn span(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m, s) {
        (0, 0, 0, s) => format!("{s} s"),
        (0, 0, m, 0) => format!("{m} min"),
        (0, 0, m, s) => format!("{m} min {s} s"),
        (0, h, 0, _) => format!("{h} h"),
        (0, h, m, _) => format!("{h} h {m} min"),
        (d, 0, _, _) => format!("{d} d"),
        (d, h, _, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_an_operator_says_them() {
        assert_eq!(span(Duration::from_secs(45)), "45 s");
        assert_eq!(span(Duration::from_secs(120)), "2 min");
        assert_eq!(span(Duration::from_secs(725)), "12 min 5 s");
        assert_eq!(span(Duration::from_secs(3600)), "1 h");
        assert_eq!(span(Duration::from_secs(12_000)), "3 h 20 min");
        assert_eq!(span(Duration::from_secs(86_400 * 2 + 3600 * 4)), "2 d 4 h");
        assert_eq!(
            span(Duration::from_secs(u64::from(u32::MAX))),
            "49710 d 6 h"
        );
    }
}
