//! The command bar: the keys the focused component offers now, from the key map. It takes a
//! second line when one is not wide enough.
//!
//! ```text
//! ↑↓/jk move  Enter edit  Space toggle  Tab pane  a apply  r revert  ? help  q quit
//! ```

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::app::App;
use crate::console::keymap;

const SEPARATOR: &str = "  ";

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let lines = lines(app, area.width);
    frame.render_widget(Paragraph::new(lines).style(app.theme.base()), area);
}

/// How many lines the bar needs at this width (1 or 2).
pub fn height(app: &App, width: u16) -> u16 {
    lines(app, width).len().clamp(1, 2) as u16
}

/// The commands packed greedily into lines of `width` columns.
fn lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let width = usize::from(width);
    let mut lines: Vec<Line> = vec![Line::default()];
    let offered = keymap::bar_bindings(&app.active_scopes())
        .into_iter()
        .filter(|binding| app.offers(binding.command));
    for binding in offered {
        let item = vec![
            Span::styled(binding.label, theme.command_key()),
            Span::styled(
                format!(" {}", binding.bar_description()),
                theme.command_text(),
            ),
        ];
        let item_width: usize = item.iter().map(Span::width).sum();
        let current = lines.last_mut().map_or(0, |line| line.width());
        if current > 0 && current + SEPARATOR.len() + item_width > width {
            lines.push(Line::default());
        }
        if let Some(line) = lines.last_mut() {
            if line.width() > 0 {
                line.push_span(Span::raw(SEPARATOR));
            }
            for span in item {
                line.push_span(span);
            }
        }
    }
    lines
}
