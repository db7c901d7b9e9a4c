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
    /// `roost --data-dir DIR`: attach to the broker running on DIR, else run one on it.
    pub data_dir: Option<PathBuf>,
}

/// `roost`: attaches to the broker running on the config file or on the data directory
/// (`--data-dir`, else the file's) when there is one, or to the socket named by `--attach`;
/// else starts one in this process, serves its admin socket so that other consoles can
/// attach, and stops it when the console ends.
pub async fn start(options: ConsoleOptions) -> Result<(), ConsoleError> {
    if let Some(socket) = &options.attach {
        let client = AdminClient::connect(socket).await?;
        return run_attached_to_its_config(options, client).await;
    }
    if let Some(client) = admin::attach_to_running(&options.config_path).await? {
        return run(options, &Admin::Attached(client), None).await;
    }
    let data_dir = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => configured_data_dir(&options.config_path),
    };
    if let Some(client) = admin::attach_by_data_dir(&data_dir).await? {
        return run_attached_to_its_config(options, client).await;
    }
    let path = options.config_path.clone();
    let config = Config::load_or_create(&path)?;
    let text = std::fs::read_to_string(&path).ok();
    // `--data-dir` overrides the file's for this run, as for `roost serve`, and is not saved.
    let data_dir_override = options.data_dir.clone();
    let (broker, store_error) = open_broker(&config, data_dir_override.as_deref()).await;
    let service = AdminService::new(
        broker.clone(),
        path,
        config,
        text,
        Arc::new(move |config: &mut Config| {
            if let Some(dir) = &data_dir_override {
                config.persistence.data_dir = dir.clone();
            }
        }),
    );
    let start_error = match (store_error, service.apply_initial().await) {
        (Some(store), _) => Some(store),
        (None, result) => result.err().map(|err| err.to_string()),
    };
    let server = admin::open_socket(&service);
    let admin = Admin::InProcess(service);
    let result = run(options, &admin, start_error).await;
    drop(server);
    admin.shutdown_if_owned().await;
    result
}

/// The data directory the config file names (the default one when the file is missing or
/// unreadable: a broker started on it would use that).
fn configured_data_dir(config_path: &std::path::Path) -> PathBuf {
    Config::load(config_path)
        .map(|config| config.persistence.data_dir)
        .unwrap_or_else(|_| Config::default().persistence.data_dir)
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
    let mut detail_poll: Option<tokio::task::JoinHandle<()>> = None;
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
                // The open detail pane's client, alone: details are never fetched for the
                // whole list.
                if app.clients.detail
                    && app.node == super::node::Node::Clients
                    && let Some(client_id) = app.clients.detail_of.clone()
                    && detail_poll.as_ref().is_none_or(|task| task.is_finished())
                {
                    detail_poll = Some(fetch_detail(admin, client_id.to_string(), &action_tx));
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

/// Asks the broker for one client's details; the answer comes back as an action.
fn fetch_detail(
    admin: &Admin,
    client_id: String,
    actions: &mpsc::UnboundedSender<Action>,
) -> tokio::task::JoinHandle<()> {
    let admin = admin.clone();
    let actions = actions.clone();
    tokio::spawn(async move {
        match admin.client_detail(&client_id).await {
            Ok(detail) => {
                let detail = detail.map(Box::new);
                let _ = actions.send(Action::ClientDetail { client_id, detail });
            }
            Err(err) => warn!(error = %err, client_id, "cannot fetch the client's details"),
        }
    })
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
        Effect::ClientDetail(client_id) => {
            fetch_detail(&admin, client_id, &actions);
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

/// Starts the broker of an owning console on the store its configuration asks for (opened
/// off the runtime thread, as `roost serve` does), so that the first Apply finds it in
/// place. A store that cannot be opened leaves the broker in memory and says why: the
/// console still starts, to let the operator choose another mode or directory.
async fn open_broker(config: &Config, data_dir: Option<&Path>) -> (BrokerHandle, Option<String>) {
    let mut settings = config.persistence.clone();
    if let Some(dir) = data_dir {
        settings.data_dir = dir.to_path_buf();
    }
    let opening = settings.clone();
    match tokio::task::spawn_blocking(move || crate::store::open_store(&opening)).await {
        Ok(Ok(opened)) => {
            let broker = BrokerHandle::spawn_with_store_for(opened.store, settings);
            broker.set_store_recovery(opened.recovery.map(|r| r.to_string()));
            (broker, None)
        }
        Ok(Err(error)) => (
            BrokerHandle::spawn(),
            Some(format!("the store cannot be opened: {error}")),
        ),
        Err(error) => (
            BrokerHandle::spawn(),
            Some(format!("opening the store stopped: {error}")),
        ),
    }
}

/// Runs attached to `client`'s broker, whose config file (perhaps not the one named on the
/// command line) is the one applies save to.
async fn run_attached_to_its_config(
    options: ConsoleOptions,
    client: AdminClient,
) -> Result<(), ConsoleError> {
    let config_path = client.welcome().config_path.clone();
    run(
        options.with_config(config_path),
        &Admin::Attached(client),
        None,
    )
    .await
}
