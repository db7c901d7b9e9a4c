//! The title bar.
//!
//! ```text
//! roost  roost.ron  attached to pid 1234  ● running  ✱ 2 pending changes  ⚠ NOT saved
//! ```
//!
//! Segments that do not fit are left out, least important first (see `draw`).

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
    let running = if app.running_without_listeners() {
        Span::styled("● no listeners", bar.patch(theme.warning()))
    } else if app.dashboard.latest.running {
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
    // Segments by importance: when the bar is too narrow, the least important go first, so
    // the pending counter and the unsaved mark always show.
    let mut segments: Vec<(u8, Span<'static>)> = vec![
        (
            1,
            Span::styled("roost", bar.add_modifier(ratatui::style::Modifier::BOLD)),
        ),
        (2, Span::styled(file, bar)),
        (6, Span::styled(app.origin.to_string(), bar)),
        (7, running),
        (10, pending),
    ];
    if !app.conflicts.is_empty() {
        segments.push((
            8,
            Span::styled(
                format!("⚠ {} conflicting", app.conflicts.len()),
                bar.patch(theme.danger()),
            ),
        ));
    }
    let stored = app.stored_not_active().len();
    if stored > 0 {
        segments.push((
            5,
            Span::styled(format!("⚠ {stored} not active"), bar.patch(theme.warning())),
        ));
    }
    if app.unsaved.is_some() {
        segments.push((9, Span::styled("⚠ NOT saved", bar.patch(theme.danger()))));
    }
    if app.broker_gone.is_some() {
        segments.push((
            9,
            Span::styled("⚠ broker unreachable", bar.patch(theme.danger())),
        ));
    }
    if app.is_applying() {
        segments.push((4, Span::styled("applying…", bar)));
    }
    const GAP: &str = "  ";
    let width_of = |segments: &[(u8, Span<'static>)]| -> usize {
        1 + segments
            .iter()
            .map(|(_, span)| span.width() + GAP.len())
            .sum::<usize>()
    };
    while width_of(&segments) > usize::from(area.width) && segments.len() > 1 {
        let least = segments
            .iter()
            .enumerate()
            .min_by_key(|(_, (rank, _))| *rank)
            .map(|(index, _)| index)
            .unwrap_or(0);
        segments.remove(least);
    }
    let mut left = vec![Span::styled(" ", bar)];
    for (index, (_, span)) in segments.into_iter().enumerate() {
        if index > 0 {
            left.push(Span::styled(GAP, bar));
        }
        left.push(span);
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
