//! The title bar.
//!
//! ```text
//! roost · roost.ron · attached to pid 1234   ● running   ✱ 2 pending changes   ⚠ NOT saved
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::app::App;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let bar = theme.title_bar();
    let file = app
        .config_path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| app.config_path.display().to_string());
    let running = if app.dashboard.latest.running {
        Span::styled("● running", bar.patch(theme.ok()))
    } else {
        Span::styled("○ stopped", bar)
    };
    let pending = app.pending_changes().len();
    let pending = match pending {
        0 => Span::styled("no pending changes", bar),
        1 => Span::styled("✱ 1 pending change", bar.patch(theme.dirty())),
        n => Span::styled(format!("✱ {n} pending changes"), bar.patch(theme.dirty())),
    };
    let mut left = vec![
        Span::styled(" roost ", bar.add_modifier(ratatui::style::Modifier::BOLD)),
        Span::styled(format!("· {file} · {}   ", app.origin), bar),
        running,
        Span::styled("   ", bar),
        pending,
    ];
    if !app.conflicts.is_empty() {
        left.push(Span::styled(
            format!("   ⚠ {} conflicting", app.conflicts.len()),
            bar.patch(theme.danger()),
        ));
    }
    if app.unsaved.is_some() {
        left.push(Span::styled("   ⚠ NOT saved", bar.patch(theme.danger())));
    }
    if app.broker_gone.is_some() {
        left.push(Span::styled(
            "   ⚠ broker unreachable",
            bar.patch(theme.danger()),
        ));
    }
    if app.is_applying() {
        left.push(Span::styled("   applying…", bar));
    }
    // The status on the left always shows in full; a notice gets what is left, cut short
    // when it does not fit, so it never hides the pending-changes counter.
    let left = Line::from(left);
    let left_width = (left.width() as u16).min(area.width);
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Length(left_width), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(left).style(bar), left_area);
    if let Some(notice) = app.notice.as_ref() {
        let style = if notice.is_error {
            bar.patch(theme.danger())
        } else {
            bar
        };
        let room = usize::from(right_area.width.saturating_sub(3));
        let text = fit(&notice.text, room);
        if !text.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::from(Span::styled(format!("{text} "), style)).right_aligned())
                    .style(bar),
                right_area,
            );
        }
    }
}

/// `text` cut to `width` characters, ending in `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}
