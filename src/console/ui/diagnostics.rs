//! The Diagnostics node: the two settings, a status line and the packet log.
//!
//! ```text
//! ┌ Diagnostics ───────────────────────────────────────────┐
//! │   Log MQTT messages               [x]                  │  form
//! │   Log file (empty = none)         (none)               │
//! │ diagnostics.log_messages                               │  form footer
//! │ ● live · 120 events · filter: sensor · paused (+4)     │  status line
//! │ Time         Client     Dir Type      Topic  QoS  Size │  log header
//! │ 12:00:01.250 sensor-1   →   PUBLISH   t/1    1    42 B │  log
//! └────────────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::broker::{DiagEvent, Direction};
use crate::console::app::{App, EditTarget};
use crate::console::node::Node;

use super::form;
use super::widgets::{pane_block, time_of_day, truncate};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane_block(app, "Diagnostics");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [form_area, status_area, log_area] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(inner);
    form::draw_fields(frame, form_area, app, Node::Diagnostics);
    draw_status_line(frame, status_area, app);
    draw_log(frame, log_area, app);
}

fn draw_status_line(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let log = &app.log;
    let mut spans = vec![if app.diagnostics_live {
        Span::styled("● logging", theme.ok())
    } else {
        Span::styled("○ logging off", theme.dim())
    }];
    spans.push(Span::styled(
        format!(" · {} events", log.len()),
        theme.label(),
    ));
    let filter_editing = app
        .editing
        .as_ref()
        .filter(|e| e.target == EditTarget::LogFilter);
    match filter_editing {
        Some(editing) => {
            spans.push(Span::styled(" · filter: ", theme.label()));
            spans.push(Span::styled(
                format!("{} ", editing.input.value()),
                theme.input(),
            ));
        }
        None if !log.filter().is_empty() => {
            spans.push(Span::styled(
                format!(" · filter: {}", log.filter()),
                theme.warning(),
            ));
        }
        None => {}
    }
    if log.is_paused() {
        spans.push(Span::styled(
            format!(" · PAUSED (+{})", log.held_back()),
            theme.warning(),
        ));
    }
    if log.lost > 0 {
        spans.push(Span::styled(
            format!(" · {} lost", log.lost),
            theme.danger(),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    if let Some(editing) = filter_editing {
        let prefix: usize = spans_width_before_input(app);
        let column = area.x + (prefix + editing.input.visual_cursor()) as u16;
        if column < area.x + area.width {
            frame.set_cursor_position((column, area.y));
        }
    }
}

/// Width of the status line up to the filter input, for placing the cursor.
fn spans_width_before_input(app: &App) -> usize {
    let first = if app.diagnostics_live {
        "● logging".chars().count()
    } else {
        "○ logging off".chars().count()
    };
    first + format!(" · {} events", app.log.len()).chars().count() + " · filter: ".len()
}

fn draw_log(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let rows = usize::from(area.height.saturating_sub(1));
    let w = Widths::for_width(area.width);
    let header = Line::styled(
        format!(
            "{:<tw$} {:<cw$} {}{:<dw$} {:<yw$} {:<pw$} {:<3} {:>6}  {}",
            "Time",
            "Client",
            if w.via { "Via " } else { "" },
            if w.dir < 3 { "⇄" } else { "Dir" },
            "Type",
            "Topic",
            "QoS",
            "Size",
            "Payload",
            tw = w.time,
            cw = w.client,
            dw = w.dir,
            yw = w.kind,
            pw = w.topic,
        ),
        theme.block_title(false),
    );
    let mut lines = vec![header];
    let events = app.log.visible(rows);
    if events.is_empty() {
        let hint = if app.diagnostics_live {
            "No packets yet."
        } else {
            "Logging is off: select \"Log MQTT messages\" and press Space."
        };
        lines.push(Line::styled(hint, theme.dim()));
    }
    for event in events {
        lines.push(log_line(app, event, &w));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn log_line(app: &App, event: &DiagEvent, w: &Widths) -> Line<'static> {
    let theme = &app.theme;
    let (arrow, colour) = match event.direction {
        Direction::In => ("→", theme.log_in_fg),
        Direction::Out => ("←", theme.log_out_fg),
    };
    let qos = event
        .qos
        .map(|q| (q as u8).to_string())
        .unwrap_or_else(|| "-".to_string());
    let topic = event.topic.as_deref().unwrap_or("");
    let payload = event
        .payload_preview
        .as_ref()
        .map(|bytes| preview(bytes))
        .unwrap_or_default();
    let via = if w.via {
        format!("{:<3} ", event.transport.transport())
    } else {
        String::new()
    };
    Line::from(vec![
        Span::styled(
            format!("{:<tw$} ", time_of_day(event.time, w.millis), tw = w.time),
            theme.dim(),
        ),
        Span::styled(
            format!(
                "{:<cw$} ",
                truncate(&event.client_id, w.client),
                cw = w.client
            ),
            theme.value(),
        ),
        Span::styled(via, theme.dim()),
        Span::styled(
            format!("{arrow:<dw$} ", dw = w.dir),
            Style::new().fg(colour),
        ),
        Span::styled(
            format!(
                "{:<yw$} ",
                truncate(event.packet_type.name(), w.kind),
                yw = w.kind
            ),
            Style::new().fg(colour),
        ),
        Span::styled(
            format!("{:<pw$} ", truncate(topic, w.topic), pw = w.topic),
            theme.value(),
        ),
        Span::styled(format!("{qos:<3} "), theme.label()),
        Span::styled(
            format!("{:>6}  ", format!("{}B", event.size)),
            theme.label(),
        ),
        Span::styled(payload, theme.dim()),
    ])
}

/// Printable text of a payload's first bytes; other bytes as `.`.
fn preview(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(48)
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                '.'
            }
        })
        .collect()
}

/// Column widths of the log, narrower on small terminals so that QoS and size stay visible.
struct Widths {
    millis: bool,
    time: usize,
    client: usize,
    /// The transport column (tcp, ws, ...), on wide terminals only.
    via: bool,
    dir: usize,
    kind: usize,
    topic: usize,
}

impl Widths {
    fn for_width(width: u16) -> Widths {
        let mut widths = if width >= 90 {
            Widths {
                millis: true,
                time: 12,
                client: 0,
                via: true,
                dir: 3,
                kind: 11,
                topic: 0,
            }
        } else {
            Widths {
                millis: false,
                time: 8,
                client: 0,
                via: false,
                dir: 1,
                kind: 7,
                topic: 0,
            }
        };
        // Time, transport, direction and type; QoS (3) and size (6); the separators.
        let via = if widths.via { 4 } else { 0 };
        let fixed = widths.time + via + widths.dir + widths.kind + 3 + 6 + 8;
        let left = usize::from(width).saturating_sub(fixed);
        // Client id, topic and payload preview share what is left.
        widths.client = (left / 3).clamp(10, 23);
        widths.topic = (left.saturating_sub(widths.client) / 2).clamp(9, 40);
        widths
    }
}
