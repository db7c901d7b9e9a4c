//! The settings tree.
//!
//! ```text
//! ┌ Settings ──────────────┐
//! │ Broker *               │  * = the node has pending changes
//! │   Limits               │
//! │   Certificate Author…  │
//! │ Diagnostics            │
//! │ Status                 │
//! │   Clients              │
//! └────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState};

use crate::console::app::{App, Focus};
use crate::console::node::Node;

use super::widgets::titled_block;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let focused = app.focus == Focus::Tree && app.popup.is_none();
    let items: Vec<ListItem> = Node::ALL
        .iter()
        .map(|node| {
            let indent = "  ".repeat(node.depth());
            let mut spans = vec![Span::raw(format!("{indent}{}", node.name()))];
            if node_is_dirty(app, *node) {
                spans.push(Span::styled(" *", theme.dirty()));
            }
            ListItem::new(Line::from(spans))
        })
        .collect();
    let list = List::new(items)
        .block(titled_block(theme, "Settings", focused))
        .style(theme.base())
        .highlight_style(theme.selection(focused))
        .highlight_symbol("› ")
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always);
    let mut state = ListState::default().with_selected(Some(app.node.index()));
    frame.render_stateful_widget(list, area, &mut state);
}

fn node_is_dirty(app: &App, node: Node) -> bool {
    match node {
        Node::Users => app.pending.users != app.applied.users,
        Node::ClientCertificates => {
            app.pending.certificates.clients != app.applied.certificates.clients
        }
        _ => node.fields().iter().any(|field| app.is_dirty(*field)),
    }
}
