//! Popups over everything else: help, questions, the apply report, messages.
//!
//! ```text
//!        ┌ Apply report ─────────────────────┐
//!        │ TCP listener 0.0.0.0:1883: started │
//!        │ TLS: stored, not active yet        │
//!        │               Enter/Esc close      │
//!        └────────────────────────────────────┘
//! ```

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

use crate::admin::{ApplyOutcome, ApplyRefusal, SaveOutcome};
use crate::broker::ChangeAction;
use crate::console::app::{App, EditTarget, Popup};
use crate::console::keymap::{self, BINDINGS, Scope};

use super::widgets::centered;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    draw_certificate_prompt(frame, area, app);
    if app.popup.is_none()
        && let Some(dialog) = &app.user_dialog
    {
        draw_user_dialog(frame, area, app, dialog);
        return;
    }
    let Some(popup) = &app.popup else { return };
    match popup {
        Popup::Help { scroll } => draw_help(frame, area, app, *scroll),
        Popup::ConfirmQuit => draw_box(
            frame,
            area,
            app,
            "Quit roost?",
            quit_lines(app),
            Scope::Confirm,
        ),
        Popup::FileChanged => {
            let text = format!(
                "{} was changed by hand since roost loaded it.\n\
                 Nothing was applied.\n\n\
                 r  reload it: the hand edits become pending changes, yours are kept\n\
                 o  overwrite it with this apply\n\
                 Esc  cancel",
                app.config_path.display()
            );
            draw_box(
                frame,
                area,
                app,
                "Config file edited by hand",
                text_lines(&text),
                Scope::FileChanged,
            )
        }
        Popup::ConfirmDisconnect(client_id) => {
            let text = format!(
                "Disconnect client {client_id:?}?\n(v5 clients get reason 0x98, administrative action)"
            );
            draw_box(
                frame,
                area,
                app,
                "Disconnect client",
                text_lines(&text),
                Scope::Confirm,
            )
        }
        Popup::ConfirmDisconnectMany(ids) => {
            let shown: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
            let more = ids.len().saturating_sub(shown.len());
            let text = format!(
                "Disconnect {} client{} matching the filter {:?}?\n{}{}",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" },
                app.clients.filter,
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
            );
            draw_box(
                frame,
                area,
                app,
                "Disconnect clients",
                text_lines(&text),
                Scope::Confirm,
            )
        }
        Popup::ConfirmCertificate(_, question) => draw_box(
            frame,
            area,
            app,
            "Are you sure?",
            text_lines(question),
            Scope::Confirm,
        ),
        Popup::ConfirmRemoveUser(username) => {
            let rules = app.pending.acl.users.get(username).map_or(0, Vec::len);
            let text = format!(
                "Remove user {username:?}?\nAt Apply its password stops working: new connections\nwith it are refused (connected clients stay).\nIts {rules} topic rules are removed too."
            );
            draw_box(
                frame,
                area,
                app,
                "Remove user",
                text_lines(&text),
                Scope::Confirm,
            )
        }
        Popup::ApplyResult(result) => draw_apply_result(frame, area, app, result),
        Popup::Message(text) => {
            draw_box(frame, area, app, "roost", text_lines(text), Scope::Dismiss)
        }
    }
}

/// The typed path or name of a certificate action, with its error while it has one.
fn draw_certificate_prompt(frame: &mut Frame, area: Rect, app: &App) {
    let (Some(editing), Some(prompt)) = (&app.editing, &app.prompt) else {
        return;
    };
    if editing.target != EditTarget::Certificate {
        return;
    }
    let theme = &app.theme;
    let mut lines = vec![
        Line::from(prompt.label()),
        Line::styled(format!("{} ", editing.input.value()), theme.input()),
    ];
    if let Some(error) = &editing.error {
        lines.push(Line::styled(error.clone(), theme.danger()));
    }
    // A text prompt: Enter accepts, Esc cancels.
    draw_box(frame, area, app, "Certificate", lines, Scope::Editing);
}

/// The Users node's dialog: the question, the input (masked for passwords), the error.
fn draw_user_dialog(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    dialog: &crate::console::users::UserDialog,
) {
    let theme = &app.theme;
    let mut lines = vec![
        Line::from(dialog.prompt().to_string()),
        Line::styled(format!("> {}", dialog.shown()), theme.value()),
    ];
    if let Some(error) = &dialog.error {
        lines.push(Line::styled(error.clone(), theme.danger()));
    }
    if dialog.is_masked() {
        lines.push(Line::styled(
            "Stored as an argon2id hash only.".to_string(),
            theme.dim(),
        ));
    }
    // The Users dialogs take text: Enter accepts, Esc cancels.
    draw_box(frame, area, app, &dialog.title(), lines, Scope::Editing)
}

/// What a quit would lose, one line per loss.
fn quit_lines(app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let mut lines = Vec::new();
    let count = app.pending_changes().len();
    if count > 0 {
        lines.push(Line::from(format!(
            "There {} {count} pending change{} that will be lost.",
            if count == 1 { "is" } else { "are" },
            if count == 1 { "" } else { "s" },
        )));
    }
    if let Some(reason) = &app.unsaved {
        lines.push(Line::styled(
            format!("The applied configuration is NOT saved: {reason}"),
            theme.danger(),
        ));
    }
    if app.owns_broker() {
        let clients = app.clients_lost_on_quit();
        lines.push(Line::styled(
            match clients {
                0 => "The broker runs in this console and will stop.".to_string(),
                1 => "The broker runs in this console: it will stop and disconnect 1 client."
                    .to_string(),
                n => format!(
                    "The broker runs in this console: it will stop and disconnect {n} clients."
                ),
            },
            if clients > 0 {
                theme.danger()
            } else {
                theme.dim()
            },
        ));
    } else {
        lines.push(Line::styled(
            format!("The broker keeps running ({}).", app.origin),
            theme.dim(),
        ));
    }
    lines.push(Line::from("Quit anyway?"));
    lines
}

fn text_lines(text: &str) -> Vec<Line<'static>> {
    text.lines()
        .map(|line| Line::from(line.to_string()))
        .collect()
}

fn draw_apply_result(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    result: &Result<ApplyOutcome, ApplyRefusal>,
) {
    let theme = &app.theme;
    match result {
        Ok(outcome) => {
            let mut lines: Vec<Line> = outcome
                .report
                .changes
                .iter()
                .map(|change| {
                    let style = match change.action {
                        ChangeAction::Started | ChangeAction::Restarted => theme.ok(),
                        ChangeAction::Stopped => theme.danger(),
                        ChangeAction::StoredNotActive => theme.warning(),
                        ChangeAction::Updated => theme.value(),
                    };
                    Line::styled(format!("• {change}"), style)
                })
                .collect();
            if lines.is_empty() {
                lines.push(Line::from("Nothing needed to change."));
            }
            lines.push(Line::from(""));
            let title = match &outcome.saved {
                SaveOutcome::Saved {
                    path,
                    comments_copied_to,
                } => {
                    lines.push(Line::styled(
                        format!("Saved to {}.", path.display()),
                        theme.dim(),
                    ));
                    if let Some(copy) = comments_copied_to {
                        lines.push(Line::styled(
                            format!(
                                "Its hand-written comments cannot be kept; the previous file is in {}.",
                                copy.display()
                            ),
                            theme.warning(),
                        ));
                    }
                    "Applied"
                }
                SaveOutcome::NotSaved { reason } => {
                    lines.push(Line::styled(
                        format!("Applied, NOT saved: {reason}"),
                        theme.danger(),
                    ));
                    lines.push(Line::styled(
                        "The broker runs this configuration; the file still has the old one.",
                        theme.dim(),
                    ));
                    "Applied, NOT saved"
                }
            };
            draw_box(frame, area, app, title, lines, Scope::Dismiss)
        }
        Err(reason) => {
            let lines = vec![
                Line::styled("The broker refused the configuration:", theme.danger()),
                Line::from(reason.to_string()),
                Line::from(""),
                Line::styled(
                    "The running broker is unchanged; your pending changes are kept.",
                    theme.dim(),
                ),
            ];
            draw_box(frame, area, app, "Apply refused", lines, Scope::Dismiss)
        }
    }
}

/// A bordered box sized to its text, with the keys it accepts on the bottom border.
fn draw_box(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    title: &str,
    lines: Vec<Line<'static>>,
    scope: Scope,
) {
    let theme = &app.theme;
    let widest = lines.iter().map(Line::width).max().unwrap_or(0) as u16;
    let width = (widest + 4).clamp(30, area.width.saturating_sub(4).max(30));
    let inner_width = width.saturating_sub(2).max(1);
    let wrapped_rows: u16 = lines
        .iter()
        .map(|line| (line.width() as u16).div_ceil(inner_width).max(1))
        .sum();
    let rect = centered(area, width, wrapped_rows + 2);
    let keys = keys_hint(app, scope);
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .border_style(theme.popup_border())
        .title(Span::styled(format!(" {title} "), theme.block_title(true)))
        .title_bottom(Line::from(keys).right_aligned());
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .style(theme.base())
            .wrap(Wrap { trim: false }),
        rect,
    );
}

fn keys_hint(app: &App, scope: Scope) -> Vec<Span<'static>> {
    let theme = &app.theme;
    let mut spans = vec![Span::raw(" ")];
    for binding in keymap::bar_bindings(&[scope]) {
        spans.push(Span::styled(binding.label, theme.command_key()));
        spans.push(Span::styled(
            format!(" {} ", binding.bar_description()),
            theme.command_text(),
        ));
    }
    spans
}

/// Every binding, grouped by scope; the scopes active behind the popup are marked.
fn draw_help(frame: &mut Frame, area: Rect, app: &App, scroll: u16) {
    let theme = &app.theme;
    let lines = help_lines(app);
    let rect = centered(area, 64, area.height.saturating_sub(2));
    let block = Block::bordered()
        .border_type(BorderType::Double)
        .border_style(theme.popup_border())
        .title(Span::styled(" Keys ", theme.block_title(true)))
        .title_bottom(Line::from(keys_hint(app, Scope::Help)).right_aligned());
    let max_scroll = (lines.len() as u16).saturating_sub(rect.height.saturating_sub(2));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .style(theme.base())
            .scroll((scroll.min(max_scroll), 0)),
        rect,
    );
}

/// The help text, generated from the key map.
pub fn help_lines(app: &App) -> Vec<Line<'static>> {
    let theme = &app.theme;
    const ORDER: [Scope; 13] = [
        Scope::Global,
        Scope::Tree,
        Scope::Form,
        Scope::Editing,
        Scope::List,
        Scope::Clients,
        Scope::Certificate,
        Scope::CertificateList,
        Scope::DiagnosticsLog,
        Scope::Confirm,
        Scope::Dismiss,
        Scope::FileChanged,
        Scope::Help,
    ];
    // The component behind the popup: its sections are marked.
    let behind = app.component_scopes();
    let mut lines = Vec::new();
    for scope in ORDER {
        if !lines.is_empty() {
            lines.push(Line::from(""));
        }
        let mut title = vec![Span::styled(
            scope.title().to_string(),
            theme.block_title(true),
        )];
        if behind.contains(&scope) {
            title.push(Span::styled("  (where you are)", theme.dim()));
        }
        lines.push(Line::from(title));
        // The number keys share one line ("1-9").
        let shown = BINDINGS
            .iter()
            .filter(|b| b.scope == scope)
            .filter(|b| !matches!(b.command, keymap::Command::Jump(n) if n > 0));
        for binding in shown {
            let keys = match binding.command {
                keymap::Command::Jump(_) => binding.label.to_string(),
                _ => key_names(binding),
            };
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<12}"), theme.command_key()),
                Span::styled(binding.description.to_string(), theme.command_text()),
            ]));
        }
        if scope == Scope::Editing {
            // The text input's own keys (tui-input), not in the key map.
            for (keys, what) in EDITING_KEYS {
                lines.push(Line::from(vec![
                    Span::styled(format!("  {keys:<12}"), theme.command_key()),
                    Span::styled(what.to_string(), theme.command_text()),
                ]));
            }
        }
    }
    lines
}

/// The editing keys every text field and filter understands.
const EDITING_KEYS: [(&str, &str); 6] = [
    ("Ctrl-U", "delete to the start of the line"),
    ("Ctrl-K", "delete to the end of the line"),
    ("Ctrl-W", "delete the previous word"),
    ("Ctrl-A Home", "go to the start"),
    ("Ctrl-E End", "go to the end"),
    ("Alt-B Alt-F", "move one word back / forward"),
];

/// The keys of a binding spelled out (the bar shows the short label).
fn key_names(binding: &keymap::Binding) -> String {
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    let mut names: Vec<String> = Vec::new();
    for (code, mods) in binding.keys {
        let name = match code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) if mods.contains(KeyModifiers::CONTROL) => format!("Ctrl-{c}"),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".to_string(),
            KeyCode::Down => "↓".to_string(),
            KeyCode::Left => "←".to_string(),
            KeyCode::Right => "→".to_string(),
            KeyCode::BackTab => "S-Tab".to_string(),
            KeyCode::PageUp => "PgUp".to_string(),
            KeyCode::PageDown => "PgDn".to_string(),
            KeyCode::F(n) => format!("F{n}"),
            other => other.to_string(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(" ")
}
