//! The runtime loop: terminal events, broker figures and diagnostics in; effects out.
//!
//! One `tokio::select!` waits on the terminal, the actions coming back from effects, a
//! one-second poll of the broker's figures, the diagnostics channel, a render tick and the
//! signals that end the process (SIGTERM, SIGHUP).

use std::io::stdout;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event, EventStream, KeyEventKind, MouseButton,
    MouseEventKind,
};
use ratatui::crossterm::execute;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tracing::{info, warn};

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
}

/// Runs the console on the config file against `broker` until the operator quits or a
/// SIGTERM/SIGHUP arrives, and restores the terminal either way.
///
/// The console applies the file's configuration to `broker` at start. It does not own the
/// broker: whoever started it shuts it down after this returns (the console may one day attach
/// to a broker it did not start).
pub async fn run(options: ConsoleOptions, broker: &BrokerHandle) -> Result<(), ConsoleError> {
    let path = options.config_path;
    let config = Config::load_or_create(&path)?;
    logging::init(&logging::log_path(&path))?;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let theme = Theme::resolve(options.theme.as_deref(), &config.console.theme, no_color)?;
    info!(config = %path.display(), "console starting");

    let mut app = App::new(config.clone(), path.clone(), theme);
    if let Err(err) = broker.apply(config).await {
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
    let result = event_loop(&mut terminal, &mut app, broker).await;
    let _ = execute!(stdout(), DisableMouseCapture);
    ratatui::restore();
    info!("console stopped");
    result
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    broker: &BrokerHandle,
) -> Result<(), ConsoleError> {
    let (action_tx, mut action_rx) = mpsc::unbounded_channel::<Action>();
    let mut events = EventStream::new();
    let mut diagnostics = broker.subscribe_diagnostics();
    let mut diagnostics_open = true;
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
                    match ui::tree_row_at(area, mouse.column, mouse.row) {
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
                let finished = clients_poll.as_ref().is_none_or(|task| task.is_finished());
                if finished {
                    let broker = broker.clone();
                    let tx = action_tx.clone();
                    clients_poll = Some(tokio::spawn(async move {
                        let _ = tx.send(Action::Clients(broker.clients().await));
                    }));
                }
                let config = app.pending.clone();
                let tx = action_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(Action::Files(files::inspect_all(&config)));
                });
                Action::Stats(broker.stats())
            }
            received = diagnostics.recv(), if diagnostics_open => match received {
                Ok(event) => Action::Diag(event),
                Err(RecvError::Lagged(lost)) => Action::DiagLagged(lost),
                Err(RecvError::Closed) => {
                    diagnostics_open = false;
                    continue;
                }
            },
            _ = render.tick() => {
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
        if let Some(effect) = app.update(action) {
            if effect == Effect::Quit {
                return Ok(());
            }
            execute(
                effect,
                broker,
                app.config_path.clone(),
                &app.pending,
                &action_tx,
            );
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
fn execute(
    effect: Effect,
    broker: &BrokerHandle,
    config_path: PathBuf,
    pending: &Config,
    actions: &mpsc::UnboundedSender<Action>,
) {
    let broker = broker.clone();
    let actions = actions.clone();
    match effect {
        Effect::Apply(config) => {
            tokio::spawn(async move {
                match broker.apply((*config).clone()).await {
                    Ok(report) => {
                        info!(changes = report.changes.len(), "configuration applied");
                        let saved = save(*config, config_path).await;
                        let _ = actions.send(Action::ApplyFinished(Ok(report)));
                        let _ = actions.send(Action::Saved(saved));
                    }
                    Err(err) => {
                        warn!(error = %err, "apply refused");
                        let _ = actions.send(Action::ApplyFinished(Err(err.to_string())));
                    }
                }
            });
        }
        Effect::Disconnect(client_id) => {
            tokio::spawn(async move {
                let found = broker.disconnect_client(&client_id).await;
                info!(client_id, found, "disconnect requested from the console");
                let _ = actions.send(Action::Disconnected { client_id, found });
                let _ = actions.send(Action::Clients(broker.clients().await));
            });
        }
        Effect::SetDiagnostics(enabled) => {
            info!(enabled, "diagnostics switched from the console");
            broker.set_diagnostics(enabled);
        }
        Effect::Certificate(command) => {
            let pending = pending.clone();
            tokio::task::spawn_blocking(move || {
                info!(?command, "certificate action from the console");
                let _ = actions.send(super::cert_actions::perform(&command, &pending));
            });
        }
        Effect::Quit => {}
    }
}

/// Writes the applied config atomically, off the async threads.
async fn save(config: Config, path: PathBuf) -> Result<(), String> {
    let result = tokio::task::spawn_blocking(move || config.save(Path::new(&path))).await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(err) => Err(err.to_string()),
    }
}
