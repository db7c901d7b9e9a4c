//! The title bar.
//!
//! ```text
//! roost · roost.ron   ● running   ✱ 2 pending changes            saved roost.ron
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
        Span::styled(format!("· {file}   "), bar),
        running,
        Span::styled("   ", bar),
        pending,
    ];
    if app.is_applying() {
        left.push(Span::styled("   applying…", bar));
    }
    let notice = app.notice.as_ref().map(|notice| {
        let style = if notice.is_error {
            bar.patch(theme.danger())
        } else {
            bar
        };
        Span::styled(format!("{} ", notice.text), style)
    });
    let notice_width = notice.as_ref().map_or(0, |n| n.width() as u16);
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(notice_width)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(left)).style(bar), left_area);
    if let Some(notice) = notice {
        frame.render_widget(
            Paragraph::new(Line::from(notice).right_aligned()).style(bar),
            right_area,
        );
    }
}
