//! A settings form: one line per field, the selected one highlighted, a text field in edit
//! mode showing the input and its validation message, and a footer naming the setting.
//!
//! ```text
//! ┌ Server Settings ─────────────────────────────┐
//! │ * Enable MQTT broker service     [x]          │  * + colour = pending change
//! │   TCP port                       1883         │
//! │   Storage                        ◂ Memory ▸   │
//! │ …                                             │
//! │ broker.tcp.port                               │  footer: path, note or error
//! └───────────────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::console::app::{App, EditTarget, Focus};
use crate::console::fields::{Field, FieldKind, FieldValue};
use crate::console::node::Node;

use super::widgets::pane_block;

/// Width of the label column.
const LABEL_WIDTH: usize = 30;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, node: Node) {
    let block = pane_block(app, node.pane_title());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    draw_fields(frame, inner, app, node);
}

/// The fields and the footer, inside an already drawn block.
pub fn draw_fields(frame: &mut Frame, area: Rect, app: &App, node: Node) {
    let [list_area, footer_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(2)]).areas(area);
    let fields = node.fields();
    let selected = app.cursor_of(node);
    let rows = usize::from(list_area.height).max(1);
    let first = (selected + 1).saturating_sub(rows);
    let lines: Vec<Line> = fields
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(index, field)| field_line(app, *field, index == selected, list_area.width))
        .collect();
    frame.render_widget(Paragraph::new(lines), list_area);
    if let Some(field) = fields.get(selected) {
        frame.render_widget(Paragraph::new(footer(app, *field)), footer_area);
    }
    draw_cursor(frame, list_area, app, first, selected);
}

fn field_line(app: &App, field: Field, selected: bool, width: u16) -> Line<'static> {
    let theme = &app.theme;
    let dirty = app.is_dirty(field);
    let focused = app.focus == Focus::Pane && app.popup.is_none();
    let conflicting = dirty && app.is_conflicting(field.path());
    let marker = if conflicting {
        // Another console applied a different value since this edit was made.
        Span::styled("! ", theme.danger())
    } else if dirty {
        Span::styled("* ", theme.dirty())
    } else {
        Span::raw("  ")
    };
    let label_style = if dirty { theme.dirty() } else { theme.label() };
    let label = Span::styled(format!("{:<LABEL_WIDTH$} ", field.label()), label_style);
    let editing = app
        .editing
        .as_ref()
        .filter(|e| selected && e.target == EditTarget::Field(field));
    let value = match (editing, field.kind(), field.get(&app.pending)) {
        (Some(editing), _, _) => Span::styled(format!("{} ", editing.input.value()), theme.input()),
        (None, FieldKind::Checkbox, FieldValue::Bool(on)) => {
            Span::styled(if on { "[x]" } else { "[ ]" }, theme.value())
        }
        (None, FieldKind::Choice, value) => {
            Span::styled(format!("◂ {} ▸", value.as_text()), theme.value())
        }
        (None, _, value) => {
            let text = value.as_text();
            if text.is_empty() {
                Span::styled("(none)", theme.dim())
            } else {
                Span::styled(text, theme.value())
            }
        }
    };
    let mut line = Line::from(vec![marker, label, value]);
    if selected && editing.is_none() {
        // The highlight spans the whole row.
        let fill = usize::from(width).saturating_sub(line.width());
        line.push_span(Span::raw(" ".repeat(fill)));
        line.style(theme.selection(focused))
    } else {
        line
    }
}

fn footer(app: &App, field: Field) -> Vec<Line<'static>> {
    let theme = &app.theme;
    if let Some(editing) = &app.editing
        && editing.target == EditTarget::Field(field)
    {
        return match &editing.error {
            Some(error) => vec![Line::styled(format!("✗ {error}"), theme.danger())],
            None => vec![Line::styled(
                "✓ valid — Enter to accept, Esc to cancel",
                theme.ok(),
            )],
        };
    }
    let mut first = vec![Span::styled(field.path(), theme.dim())];
    if app.is_dirty(field) {
        first.push(Span::styled(
            format!("  applied: {}", field.get(&app.applied).as_text()),
            theme.dirty(),
        ));
    }
    if app.is_dirty(field) && app.is_conflicting(field.path()) {
        first.push(Span::styled(
            "  conflicts with another console's apply",
            theme.danger(),
        ));
    }
    let mut lines = vec![Line::from(first)];
    if field.stored_not_active() {
        lines.push(Line::styled(
            "saved in the config; not active yet",
            theme.warning(),
        ));
    } else if let Some(note) = field.note() {
        lines.push(Line::styled(note, theme.dim()));
    }
    lines
}

/// Puts the terminal cursor inside the text input being edited.
fn draw_cursor(frame: &mut Frame, area: Rect, app: &App, first: usize, selected: usize) {
    let Some(editing) = &app.editing else { return };
    if !matches!(editing.target, EditTarget::Field(_)) || selected < first {
        return;
    }
    let row = area.y + (selected - first) as u16;
    let column = area.x + 2 + LABEL_WIDTH as u16 + 1 + editing.input.visual_cursor() as u16;
    if row < area.y + area.height && column < area.x + area.width {
        frame.set_cursor_position((column, row));
    }
}
