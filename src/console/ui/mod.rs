//! Drawing: one function per screen region, each reading [`App`] only.
//!
//! ```text
//! ┌ title bar: name · config file · running · pending count · notice ┐
//! ├ tree ─────────┬ pane of the selected node ─────────────────────────┤
//! │ Broker        │ form / dashboard / clients / log                   │
//! │   Limits      │                                                    │
//! │ …             │                                                    │
//! ├───────────────┴────────────────────────────────────────────────────┤
//! └ command bar: the keys the focused component offers now ────────────┘
//! ```

mod certificates;
mod clients;
mod command_bar;
mod diagnostics;
mod form;
mod popup;
mod status;
mod title_bar;
mod tree;
mod widgets;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};

use super::app::App;
use super::node::Node;

/// Width of the tree column.
pub const TREE_WIDTH: u16 = 28;

/// The screen regions, computed the same way for drawing and for mouse hits.
#[derive(Debug, Clone, Copy)]
pub struct Regions {
    pub title: Rect,
    pub tree: Rect,
    pub pane: Rect,
    pub command_bar: Rect,
}

/// The regions of `area`, with `bar_height` lines for the command bar.
pub fn layout(area: Rect, bar_height: u16) -> Regions {
    let [title, body, command_bar] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(bar_height),
    ])
    .areas(area);
    let [tree, pane] =
        Layout::horizontal([Constraint::Length(TREE_WIDTH), Constraint::Min(10)]).areas(body);
    Regions {
        title,
        tree,
        pane,
        command_bar,
    }
}

/// The tree row under a mouse click, if any.
pub fn tree_row_at(area: Rect, column: u16, row: u16) -> Option<usize> {
    // The tree's rows do not depend on the command bar's height.
    let tree = layout(area, 1).tree;
    let inner = tree.inner(ratatui::layout::Margin::new(1, 1));
    let inside = column >= inner.x
        && column < inner.x + inner.width
        && row >= inner.y
        && row < inner.y + inner.height;
    let index = usize::from(row.checked_sub(inner.y)?);
    (inside && index < Node::ALL.len()).then_some(index)
}

pub fn draw(frame: &mut Frame, app: &App) {
    let bar_height = command_bar::height(app, frame.area().width);
    let regions = layout(frame.area(), bar_height);
    frame.render_widget(
        ratatui::widgets::Block::new().style(app.theme.base()),
        frame.area(),
    );
    title_bar::draw(frame, regions.title, app);
    tree::draw(frame, regions.tree, app);
    draw_pane(frame, regions.pane, app);
    command_bar::draw(frame, regions.command_bar, app);
    popup::draw(frame, frame.area(), app);
}

fn draw_pane(frame: &mut Frame, area: Rect, app: &App) {
    match app.node {
        Node::Broker | Node::Limits => form::draw(frame, area, app, app.node),
        Node::CertificateAuthority | Node::ServerCertificate => {
            certificates::draw_certificate(frame, area, app)
        }
        Node::ClientCertificates => certificates::draw_client_certificates(frame, area, app),
        Node::Users => certificates::draw_users(frame, area, app),
        Node::Diagnostics => diagnostics::draw(frame, area, app),
        Node::Status => status::draw(frame, area, app),
        Node::Clients => clients::draw(frame, area, app),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_map_to_tree_rows() {
        let area = Rect::new(0, 0, 80, 24);
        // Row 0 is the title bar, row 1 the tree's top border: the first node is on row 2.
        assert_eq!(tree_row_at(area, 3, 2), Some(0));
        assert_eq!(tree_row_at(area, 3, 2 + 7), Some(Node::Status.index()));
        assert_eq!(tree_row_at(area, 3, 1), None, "border");
        assert_eq!(tree_row_at(area, 50, 2), None, "pane, not tree");
        assert_eq!(tree_row_at(area, 3, 20), None, "below the last node");
    }
}
