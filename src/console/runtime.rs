//! The runtime loop: terminal events, broker figures and diagnostics in; effects out.
//!
//! One `tokio::select!` waits on the terminal, the actions coming back from effects, a
//! one-second poll of the broker's figures, the diagnostics channel, a render tick and the
//! signals that end the process (SIGTERM, SIGHUP).

use std::io::stdout;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event, EventStream, KeyEventKind, MouseButton,
    MouseEventKind,
};
use ratatui::crossterm::execute;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{info, warn};

use std::sync::Arc;

use crate::admin::{self, Admin, AdminClient, AdminService, DiagItem};
use crate::broker::BrokerHandle;
use crate::config::Config;

use super::action::{Action, Effect};
use super::app::{App, Popup};
use super::error::ConsoleError;
use super::{files, logging, theme::Theme, ui};

/// What `roost` (no subcommand) needs to start the console.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    pub config_path: PathBuf,
    /// `--theme`: overrides the config's `console.theme`.
    pub theme: Option<String>,
    /// `roost console --attach PATH`: this admin socket, and never a broker of our own.
    pub attach: Option<PathBuf>,
}

/// `roost`: attaches to the broker running on the config file when there is one (or to the
/// socket named by `--attach`), else starts one in this process, serves its admin socket so
/// that other consoles can attach, and stops it when the console ends.
pub async fn start(options: ConsoleOptions) -> Result<(), ConsoleError> {
    if let Some(socket) = &options.attach {
        let client = AdminClient::connect(socket).await?;
        let config_path = client.welcome().config_path.clone();
        return run(
            options.with_config(config_path),
            &Admin::Attached(client),
            None,
        )
        .await;
    }
    if let Some(client) = admin::attach_to_running(&options.config_path).await? {
        return run(options, &Admin::Attached(client), None).await;
    }
    let path = options.config_path.clone();
    let config = Config::load_or_create(&path)?;
    let text = std::fs::read_to_string(&path).ok();
    let broker = BrokerHandle::spawn();
    let service = AdminService::new(
        broker.clone(),
        path,
        config,
        text,
        Arc::new(|_: &mut Config| {}),
    );
    let start_error = service
        .apply_initial()
        .await
        .err()
        .map(|err| err.to_string());
    let server = admin::open_socket(&service);
    let admin = Admin::InProcess(service);
    let result = run(options, &admin, start_error).await;
    drop(server);
    admin.shutdown_if_owned().await;
    result
}

impl ConsoleOptions {
    fn with_config(mut self, config_path: PathBuf) -> ConsoleOptions {
        self.config_path = config_path;
        self
    }
}

/// Runs the console against `admin` until the operator quits or a SIGTERM/SIGHUP arrives,
/// and restores the terminal either way. `start_error`: why the broker refused the file's
/// configuration at start. Stopping an owned broker is the caller's job.
pub async fn run(
    options: ConsoleOptions,
    admin: &Admin,
    start_error: Option<String>,
) -> Result<(), ConsoleError> {
    let path = options.config_path;
    let applied = admin.applied();
    let config = *applied.config;
    logging::init(&logging::log_path(&path))?;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let theme = Theme::resolve(options.theme.as_deref(), &config.console.theme, no_color)?;
    info!(config = %path.display(), origin = %admin.origin(), "console starting");

    let mut app = App::new(config, path.clone(), theme);
    app.origin = admin.origin();
    app.applied_generation = applied.generation;
    if let Some(err) = start_error {
        warn!(error = %err, "the configuration was refused at start");
        app.popup = Some(Popup::Message(format!(
            "The broker did not start with {}:\n{err}\nFix the setting and press a to apply.",
            path.display()
        )));
    }

    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(err) => {
            ratatui::restore();
            return Err(ConsoleError::Terminal(err));
        }
    };
    let _ = execute!(stdout(), EnableMouseCapture);
    // ratatui's hook restores the screen on panic; mouse reporting must be switched off too.
    let restore_screen = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(stdout(), DisableMouseCapture);
        restore_screen(info);
    }));
    let result = event_loop(&mut terminal, &mut app, admin).await;
    let _ = execute!(stdout(), DisableMouseCapture);
    ratatui::restore();
    info!("console stopped");
    result
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    admin: &Admin,
) -> Result<(), ConsoleError> {
    let (action_tx, mut action_rx) = mpsc::unbounded_channel::<Action>();
    let mut events = EventStream::new();
    let mut diagnostics = admin.diagnostics().await?;
    let mut diagnostics_open = true;
    let mut applied = admin.watch_applied();
    applied.mark_unchanged();
    let mut stats_poll: Option<tokio::task::JoinHandle<()>> = None;
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    let mut render = tokio::time::interval(Duration::from_millis(50));
    let mut sigterm = signal(SignalKind::terminate()).map_err(ConsoleError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(ConsoleError::Signals)?;
    let mut clients_poll: Option<tokio::task::JoinHandle<()>> = None;
    let mut needs_draw = true;

    loop {
        let action = tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => Action::Key(key),
                Some(Ok(Event::Mouse(mouse))) if mouse.kind == MouseEventKind::Down(MouseButton::Left) => {
                    let size = terminal.size().map_err(ConsoleError::Terminal)?;
                    let area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
                    match ui::tree_row_at(area, mouse.column, mouse.row, app) {
                        Some(row) => Action::SelectNode(row),
                        None => continue,
                    }
                }
                Some(Ok(Event::Resize(_, _))) => {
                    draw(terminal, app)?;
                    continue;
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Err(ConsoleError::Terminal(err)),
                None => return Ok(()),
            },
            Some(action) = action_rx.recv() => action,
            _ = poll.tick() => {
                // One request of each kind at a time: a slow broker is not asked again
                // before it answered.
                if clients_poll.as_ref().is_none_or(|task| task.is_finished()) {
                    let admin = admin.clone();
                    let tx = action_tx.clone();
                    clients_poll = Some(tokio::spawn(async move {
                        if let Ok(clients) = admin.clients().await {
                            let _ = tx.send(Action::Clients(clients));
                        }
                    }));
                }
                if stats_poll.as_ref().is_none_or(|task| task.is_finished()) {
                    let admin = admin.clone();
                    let tx = action_tx.clone();
                    stats_poll = Some(tokio::spawn(async move {
                        let _ = tx.send(match admin.stats().await {
                            Ok(stats) => Action::Stats(stats),
                            Err(err) => Action::BrokerGone(err.to_string()),
                        });
                    }));
                }
                let config = app.pending.clone();
                let tx = action_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(Action::Files(files::inspect_all(&config)));
                });
                continue;
            }
            received = diagnostics.recv(), if diagnostics_open => match received {
                Some(DiagItem::Event(event)) => Action::Diag(event),
                Some(DiagItem::Lost(lost)) => Action::DiagLagged(lost),
                None => {
                    diagnostics_open = false;
                    continue;
                }
            },
            changed = applied.changed() => match changed {
                Ok(()) => Action::AppliedElsewhere(applied.borrow_and_update().clone()),
                Err(_) => {
                    // The connection closed: the watch will not change again.
                    applied = tokio::sync::watch::channel(admin.applied()).1;
                    continue;
                }
            },
            _ = render.tick() => {
                if app.notice.is_some() {
                    let before = app.notice.clone();
                    app.update(Action::Tick(std::time::Instant::now()));
                    needs_draw |= app.notice != before;
                }
                if needs_draw {
                    draw(terminal, app)?;
                    needs_draw = false;
                }
                continue;
            }
            _ = sigterm.recv() => { info!("SIGTERM"); Action::Terminate }
            _ = sighup.recv() => { info!("SIGHUP"); Action::Terminate }
        };
        let is_key = matches!(action, Action::Key(_) | Action::SelectNode(_));
        match app.update(action) {
            Some(Effect::Quit) => return Ok(()),
            // Between two draws, so the sequence does not land inside one.
            Some(Effect::Clipboard(text)) => {
                if let Err(error) = super::clipboard::copy(terminal.backend_mut(), &text) {
                    warn!(%error, "cannot write the clipboard sequence to the terminal");
                }
            }
            Some(effect) => execute(effect, admin, &app.pending, &action_tx),
            None => {}
        }
        if app.should_quit {
            return Ok(());
        }
        // Keys are answered at once; a flood of diagnostics waits for the render tick.
        if is_key {
            draw(terminal, app)?;
            needs_draw = false;
        } else {
            needs_draw = true;
        }
    }
}

fn draw(terminal: &mut DefaultTerminal, app: &App) -> Result<(), ConsoleError> {
    terminal
        .draw(|frame| ui::draw(frame, app))
        .map(|_| ())
        .map_err(ConsoleError::Terminal)
}

/// Runs an effect in the background; its outcome comes back as an action.
/// `pending` is the configuration being edited, which certificate actions work on.
fn execute(
    effect: Effect,
    admin: &Admin,
    pending: &Config,
    actions: &mpsc::UnboundedSender<Action>,
) {
    let admin = admin.clone();
    let actions = actions.clone();
    match effect {
        Effect::Apply {
            config,
            overwrite_hand_edits,
        } => {
            tokio::spawn(async move {
                let result = admin.apply(*config, overwrite_hand_edits).await;
                match &result {
                    Ok(outcome) => info!(
                        changes = outcome.report.changes.len(),
                        "configuration applied"
                    ),
                    Err(err) => warn!(error = %err, "apply refused"),
                }
                let _ = actions.send(Action::ApplyFinished(result));
            });
        }
        Effect::ReloadFile => {
            tokio::spawn(async move {
                let _ = actions.send(Action::FileReloaded(admin.reload_file().await));
            });
        }
        Effect::Disconnect(client_id) => {
            tokio::spawn(async move {
                let found = admin.disconnect(&client_id).await.unwrap_or(false);
                info!(client_id, found, "disconnect requested from the console");
                let _ = actions.send(Action::Disconnected { client_id, found });
                if let Ok(clients) = admin.clients().await {
                    let _ = actions.send(Action::Clients(clients));
                }
            });
        }
        Effect::DisconnectMany(client_ids) => {
            tokio::spawn(async move {
                let asked = client_ids.len();
                let mut found = 0;
                for client_id in client_ids {
                    if admin.disconnect(&client_id).await.unwrap_or(false) {
                        found += 1;
                    }
                }
                info!(
                    asked,
                    found, "disconnect of the filtered clients requested from the console"
                );
                let _ = actions.send(Action::DisconnectedMany { asked, found });
                if let Ok(clients) = admin.clients().await {
                    let _ = actions.send(Action::Clients(clients));
                }
            });
        }
        Effect::SetDiagnostics(enabled) => {
            info!(enabled, "diagnostics switched from the console");
            tokio::spawn(async move {
                if let Err(err) = admin.set_diagnostics(enabled).await {
                    warn!(error = %err, "cannot switch diagnostics");
                }
            });
        }
        Effect::Certificate(command) => {
            let pending = pending.clone();
            tokio::task::spawn_blocking(move || {
                info!(?command, "certificate action from the console");
                let _ = actions.send(super::cert_actions::perform(&command, &pending));
            });
        }
        // Handled by the loop, which owns the terminal.
        Effect::Clipboard(_) | Effect::Quit => {}
    }
}
