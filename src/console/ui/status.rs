//! The Status dashboard.
//!
//! ```text
//! ┌ Status ────────────────────────────────────────────────┐
//! │ Running                   Yes     │ Listeners          │  figures │ listeners, rates
//! │ Clients                   3       │ TCP 0.0.0.0:1883   │
//! │ …                                 │ in   12 msg/s      │
//! │ ─ Messages in per second (last 5 min, max 40) ──────── │
//! │ ▁▂▃▅▇▅▃                                                │  sparkline in
//! │ ─ Messages out per second ───────────────────────────── │
//! │ ▁▂▃▅▇▅▃                                                │  sparkline out
//! └────────────────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};

use crate::console::app::App;
use crate::console::dashboard::{Dashboard, megabytes};

use super::widgets::{duration, label_value, pane_block};

const LABEL_WIDTH: usize = 25;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane_block(app, "Status");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let figures_width = LABEL_WIDTH as u16 + 12;
    // Beside the figures when there is room, else on one line below them.
    let wide = inner.width >= figures_width + 24;
    let warnings = warning_lines(app);
    let [top, summary, notes, charts] = Layout::vertical([
        Constraint::Length(13),
        Constraint::Length(if wide { 0 } else { 1 }),
        Constraint::Length(warnings.len() as u16),
        Constraint::Min(0),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(warnings), notes);
    let [figures, side] =
        Layout::horizontal([Constraint::Length(figures_width), Constraint::Min(0)]).areas(top);
    draw_figures(frame, figures, app);
    if wide {
        draw_listeners_and_rates(frame, side, app);
    } else {
        draw_summary_line(frame, summary, app);
    }
    draw_charts(frame, charts, app);
}

/// What the operator must not miss: a broker nobody can reach, settings that do nothing yet.
fn warning_lines(app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let mut lines = Vec::new();
    if app.running_without_listeners() {
        lines.push(Line::styled(
            "⚠ Running with no listeners: no client can connect.",
            theme.warning(),
        ));
    }
    if let Some(restored) = &app.dashboard.latest.store_recovery {
        lines.push(Line::styled(
            format!("⚠ Store restored from a backup: {restored}"),
            theme.danger(),
        ));
    }
    let stored = app.stored_not_active();
    if !stored.is_empty() {
        lines.push(Line::styled(
            format!("⚠ Stored, not active yet: {}", stored.join(", ")),
            theme.warning(),
        ));
    }
    lines
}

/// Rates and listeners on one line, for narrow terminals.
fn draw_summary_line(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let s = &app.dashboard.latest;
    let mut spans = vec![
        Span::styled(
            format!("in {:.0}/s", s.messages_received_per_sec),
            Style::new().fg(theme.sparkline_in),
        ),
        Span::styled(" · ", theme.dim()),
        Span::styled(
            format!("out {:.0}/s", s.messages_sent_per_sec),
            Style::new().fg(theme.sparkline_out),
        ),
        Span::styled(" · ", theme.dim()),
    ];
    if s.listeners.is_empty() {
        let style = if s.running {
            theme.warning()
        } else {
            theme.dim()
        };
        spans.push(Span::styled("no listeners", style));
    }
    if let Some(expires) = s.server_certificate_expires {
        let expires = time::OffsetDateTime::from(expires);
        if expires - time::OffsetDateTime::now_utc()
            < time::Duration::days(crate::pki::server::EXPIRY_WARNING_DAYS)
        {
            spans.push(Span::styled(
                format!(
                    "server certificate expires {} · ",
                    crate::pki::info::format_time(expires)
                ),
                theme.warning(),
            ));
        }
    }
    for (index, listener) in s.listeners.iter().enumerate() {
        if index > 0 {
            spans.push(Span::styled(", ", theme.dim()));
        }
        spans.push(Span::styled(
            format!("{} {}", listener.kind, listener.address),
            theme.value(),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Every figure of the specification's Status tab.
fn draw_figures(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let s = &app.dashboard.latest;
    let value = |text: String| Span::styled(text, theme.value());
    let running = if app.running_without_listeners() {
        // Explained by the warning below the figures.
        Span::styled("Yes ⚠", theme.warning())
    } else if s.running {
        Span::styled("Yes", theme.ok())
    } else {
        Span::styled("No", theme.danger())
    };
    let lines = vec![
        label_value(theme, "Running", LABEL_WIDTH, running),
        label_value(theme, "Uptime", LABEL_WIDTH, value(duration(s.uptime))),
        label_value(
            theme,
            "Clients",
            LABEL_WIDTH,
            // Of which over WebSockets: "3 · 1 ws".
            value(format!("{} · {} ws", s.clients, s.websocket_connections)),
        ),
        label_value(
            theme,
            "Sessions",
            LABEL_WIDTH,
            value(s.sessions.to_string()),
        ),
        label_value(
            theme,
            "Subscriptions",
            LABEL_WIDTH,
            value(s.subscriptions.to_string()),
        ),
        label_value(
            theme,
            "Messages received",
            LABEL_WIDTH,
            value(s.messages_received.to_string()),
        ),
        label_value(
            theme,
            "Messages sent",
            LABEL_WIDTH,
            value(s.messages_sent.to_string()),
        ),
        label_value(
            theme,
            "Messages retained",
            LABEL_WIDTH,
            value(s.messages_retained.to_string()),
        ),
        label_value(
            theme,
            "Retained message storage",
            LABEL_WIDTH,
            value(megabytes(s.retained_storage_bytes)),
        ),
        label_value(
            theme,
            "Queued message storage",
            LABEL_WIDTH,
            value(megabytes(s.queued_storage_bytes)),
        ),
        label_value(
            theme,
            "Persisted session storage",
            LABEL_WIDTH,
            value(megabytes(s.session_storage_bytes)),
        ),
        label_value(
            theme,
            "Messages dropped",
            LABEL_WIDTH,
            value(s.messages_dropped.to_string()),
        ),
        label_value(
            theme,
            "Connections refused",
            LABEL_WIDTH,
            // Bad credentials are counted beside the connection limit's refusals, shown
            // once there are any so that the line stays short.
            value(match s.auth_failures {
                0 => s.connections_refused.to_string(),
                bad => format!("{} +{bad} bad login", s.connections_refused),
            }),
        ),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_listeners_and_rates(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let s = &app.dashboard.latest;
    let mut lines = vec![
        Line::from(vec![
            Span::styled("in  ", theme.label()),
            Span::styled(
                format!("{:.0} msg/s", s.messages_received_per_sec),
                Style::new().fg(theme.sparkline_in),
            ),
        ]),
        Line::from(vec![
            Span::styled("out ", theme.label()),
            Span::styled(
                format!("{:.0} msg/s", s.messages_sent_per_sec),
                Style::new().fg(theme.sparkline_out),
            ),
        ]),
        Line::from(""),
        Line::styled("Listeners", theme.block_title(false)),
    ];
    if s.listeners.is_empty() {
        let style = if s.running {
            theme.warning()
        } else {
            theme.dim()
        };
        lines.push(Line::styled("none", style));
    }
    for listener in &s.listeners {
        lines.push(Line::from(vec![
            Span::styled(format!("{} ", listener.kind), theme.label()),
            Span::styled(listener.address.to_string(), theme.value()),
        ]));
    }
    lines.extend(tls_lines(app));
    frame.render_widget(Paragraph::new(lines), area);
}

/// While TLS is on: certificate refusals, and the server certificate's expiry, as a warning
/// when it is less than 30 days away.
fn tls_lines(app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let s = &app.dashboard.latest;
    let Some(expires) = s.server_certificate_expires else {
        return Vec::new();
    };
    let expires = time::OffsetDateTime::from(expires);
    let now = time::OffsetDateTime::now_utc();
    let soon = expires - now < time::Duration::days(crate::pki::server::EXPIRY_WARNING_DAYS);
    let date = crate::pki::info::format_time(expires);
    let expiry = match soon {
        true => Span::styled(format!("expires {date}!"), theme.warning()),
        false => Span::styled(format!("until {date}"), theme.value()),
    };
    vec![
        Line::from(""),
        Line::from(vec![Span::styled("Server cert ", theme.label()), expiry]),
        Line::from(vec![
            Span::styled("Certificates refused ", theme.label()),
            Span::styled(s.certificates_refused.to_string(), theme.value()),
        ]),
        Line::from(vec![
            Span::styled("TLS handshakes failed ", theme.label()),
            Span::styled(s.tls_handshakes_failed.to_string(), theme.value()),
        ]),
    ]
}

fn draw_charts(frame: &mut Frame, area: Rect, app: &App) {
    let [incoming, outgoing] =
        Layout::vertical([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(area);
    let dashboard = &app.dashboard;
    draw_chart(
        frame,
        incoming,
        app,
        "Messages in per second",
        &dashboard.rate_in,
        app.theme.sparkline_in,
    );
    draw_chart(
        frame,
        outgoing,
        app,
        "Messages out per second",
        &dashboard.rate_out,
        app.theme.sparkline_out,
    );
}

fn draw_chart(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    title: &str,
    samples: &std::collections::VecDeque<u64>,
    colour: ratatui::style::Color,
) {
    if area.height < 2 {
        return;
    }
    let width = usize::from(area.width);
    let data = Dashboard::window(samples, width);
    let max = data.iter().copied().max().unwrap_or(0);
    // One bar per second.
    let span = if width >= 120 {
        format!("{} min", width / 60)
    } else {
        format!("{width} s")
    };
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(app.theme.border(false))
        .title(Span::styled(
            format!(" {title} (last {span}, peak {max}) "),
            app.theme.label(),
        ));
    let sparkline = Sparkline::default()
        .block(block)
        .data(&data)
        .max(max.max(1))
        .style(Style::new().fg(colour));
    frame.render_widget(sparkline, area);
}
