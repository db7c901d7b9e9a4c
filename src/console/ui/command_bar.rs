//! The command bar: the keys the focused component offers now, from the key map.
//!
//! ```text
//! ↑↓/jk select field  Enter edit  Space toggle  Tab switch pane  a apply  r revert  ? help  q quit
//! ```

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::app::App;
use crate::console::keymap;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut spans = Vec::new();
    for binding in keymap::bar_bindings(&app.active_scopes()) {
        if !spans.is_empty() {
            spans.push(Span::raw("  "));
        }
        spans.push(Span::styled(binding.label, theme.command_key()));
        spans.push(Span::styled(
            format!(" {}", binding.description),
            theme.command_text(),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(theme.base()), area);
}
