//! Small drawing helpers shared by the regions.

use std::time::{Duration, SystemTime};

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType};

use crate::console::app::{App, Focus};
use crate::console::theme::Theme;

/// The bordered block of a pane, highlighted when the pane has the focus.
pub fn pane_block<'a>(app: &App, title: &'a str) -> Block<'a> {
    let focused = app.focus == Focus::Pane && app.popup.is_none();
    titled_block(&app.theme, title, focused)
}

pub fn titled_block<'a>(theme: &Theme, title: &'a str, focused: bool) -> Block<'a> {
    Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(theme.border(focused))
        .title(Span::styled(
            format!(" {title} "),
            theme.block_title(focused),
        ))
}

/// A rectangle of at most `width`×`height` centred in `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    )
}

/// `label  value` with the label padded to `width`.
pub fn label_value<'a>(theme: &Theme, label: &str, width: usize, value: Span<'a>) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label:<width$} "), theme.label()),
        value,
    ])
}

/// Wall-clock time of day in UTC as `HH:MM:SS` (with milliseconds when asked).
pub fn time_of_day(time: SystemTime, millis: bool) -> String {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs() % 86_400;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if millis {
        format!("{h:02}:{m:02}:{s:02}.{:03}", since_epoch.subsec_millis())
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// A duration as `1d 02:03:04` or `02:03:04`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// Cuts `text` to `max` characters, marking the cut with `…`.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(3_723_045);
        assert_eq!(time_of_day(t, true), "01:02:03.045");
        assert_eq!(duration(Duration::from_secs(90_061)), "1d 01:01:01");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
