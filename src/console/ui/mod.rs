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
mod client_detail;
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
/// Below this width the tree folds away while a pane has the focus, to give the form room.
pub const COLLAPSE_BELOW: u16 = 100;
/// The smallest terminal the console draws in; below it a message says what is needed.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

/// The screen regions, computed the same way for drawing and for mouse hits.
#[derive(Debug, Clone, Copy)]
pub struct Regions {
    pub title: Rect,
    pub tree: Rect,
    pub pane: Rect,
    pub command_bar: Rect,
}

/// Whether the tree is folded away now.
pub fn tree_collapsed(area: Rect, app: &App) -> bool {
    area.width < COLLAPSE_BELOW && app.focus == super::app::Focus::Pane
}

/// The regions of `area`, with `bar_height` lines for the command bar and the tree folded
/// away when `collapsed`.
pub fn layout(area: Rect, bar_height: u16, collapsed: bool) -> Regions {
    let [title, body, command_bar] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(bar_height),
    ])
    .areas(area);
    let tree_width = if collapsed { 0 } else { TREE_WIDTH };
    let [tree, pane] =
        Layout::horizontal([Constraint::Length(tree_width), Constraint::Min(10)]).areas(body);
    Regions {
        title,
        tree,
        pane,
        command_bar,
    }
}

/// The tree row under a mouse click, if any.
pub fn tree_row_at(area: Rect, column: u16, row: u16, app: &App) -> Option<usize> {
    // The tree's rows do not depend on the command bar's height.
    let tree = layout(area, 1, tree_collapsed(area, app)).tree;
    let inner = tree.inner(ratatui::layout::Margin::new(1, 1));
    let inside = column >= inner.x
        && column < inner.x + inner.width
        && row >= inner.y
        && row < inner.y + inner.height;
    let index = usize::from(row.checked_sub(inner.y)?);
    (inside && index < Node::ALL.len()).then_some(index)
}

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    frame.render_widget(ratatui::widgets::Block::new().style(app.theme.base()), area);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(frame, area, app);
        return;
    }
    let bar_height = command_bar::height(app, area.width);
    let collapsed = tree_collapsed(area, app);
    let regions = layout(area, bar_height, collapsed);
    title_bar::draw(frame, regions.title, app);
    if !collapsed {
        tree::draw(frame, regions.tree, app);
    }
    draw_pane(frame, regions.pane, app);
    command_bar::draw(frame, regions.command_bar, app);
    popup::draw(frame, frame.area(), app);
}

/// Replaces a layout that would be broken.
fn draw_too_small(frame: &mut Frame, area: Rect, app: &App) {
    let text = format!(
        "terminal too small (need {MIN_WIDTH}×{MIN_HEIGHT}, have {}×{})",
        area.width, area.height
    );
    let paragraph = ratatui::widgets::Paragraph::new(text)
        .style(app.theme.warning())
        .wrap(ratatui::widgets::Wrap { trim: true })
        .alignment(ratatui::layout::Alignment::Center);
    let middle = Rect::new(
        area.x,
        area.y + area.height / 2,
        area.width,
        area.height.min(3),
    );
    frame.render_widget(paragraph, middle.intersection(area));
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
        let app = App::new(
            crate::config::Config::default(),
            "roost.ron".into(),
            crate::console::theme::Theme::default(),
        );
        let app = &app;
        // Row 0 is the title bar, row 1 the tree's top border: the first node is on row 2.
        assert_eq!(tree_row_at(area, 3, 2, app), Some(0));
        assert_eq!(tree_row_at(area, 3, 2 + 7, app), Some(Node::Status.index()));
        assert_eq!(tree_row_at(area, 3, 1, app), None, "border");
        assert_eq!(tree_row_at(area, 50, 2, app), None, "pane, not tree");
        assert_eq!(tree_row_at(area, 3, 20, app), None, "below the last node");
    }
}
