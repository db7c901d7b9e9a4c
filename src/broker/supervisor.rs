//! The supervisor actor: owns the applied configuration and the listeners, and turns an
//! apply into started, stopped and restarted components. A refused apply changes nothing:
//! new sockets are bound before old ones are closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::api::{ApplyChange, ApplyError, ApplyReport, ChangeAction, ListenerInfo, ListenerKind};
use super::diagnostics;
use super::listener::{self, socket_address};
use super::open_files;
use super::router::RouterMsg;
use super::state::BrokerState;
use super::store_apply;
use super::tls::commit as tls_commit;
use crate::config::{Config, ConfigError};
use crate::mqtt::ReasonCode;

pub enum SupervisorMsg {
    Apply {
        config: Box<Config>,
        reply: oneshot::Sender<Result<ApplyReport, ApplyError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

struct RunningListener {
    kind: ListenerKind,
    bind: String,
    port: u16,
    address: std::net::SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningListener {
    fn subject(&self) -> String {
        format!("{} listener {}", self.kind, self.address)
    }
}

pub struct Supervisor {
    shared: Arc<BrokerState>,
    router: mpsc::Sender<RouterMsg>,
    applied: Option<Config>,
    listeners: Vec<RunningListener>,
    log_file: Option<(PathBuf, CancellationToken)>,
    inbox: mpsc::Receiver<SupervisorMsg>,
}

/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

impl Supervisor {
    pub fn new(
        shared: Arc<BrokerState>,
        router: mpsc::Sender<RouterMsg>,
        inbox: mpsc::Receiver<SupervisorMsg>,
    ) -> Supervisor {
        Supervisor {
            shared,
            router,
            applied: None,
            listeners: Vec::new(),
            log_file: None,
            inbox,
        }
    }

    pub async fn run(mut self) {
        while let Some(message) = self.inbox.recv().await {
            match message {
                SupervisorMsg::Apply { config, reply } => {
                    let result = self.apply(*config).await;
                    let _ = reply.send(result);
                }
                SupervisorMsg::Shutdown { reply } => {
                    self.shutdown().await;
                    let _ = reply.send(());
                }
            }
        }
        // Every handle is gone.
        self.shutdown().await;
    }

    async fn apply(&mut self, config: Config) -> Result<ApplyReport, ApplyError> {
        validate(&config)?;
        let previous = self.applied.clone().unwrap_or_default();
        let mut changes = Vec::new();

        // 1. Bind what is new before touching anything that runs. TLS too: its files are
        // read (the server certificate made, the first time) before anything changes.
        let tls_wanted = config.broker.enabled
            && (config.broker.tcp.enabled || config.broker.websockets.enabled)
            && config.broker.tls.enabled;
        let tls = match tls_wanted {
            true => Some(tls_commit::prepare(&config).await?),
            false => None,
        };
        let mut wanted = Vec::new();
        if config.broker.enabled && config.broker.tcp.enabled {
            wanted.push((
                // Switching TLS on or off keeps the socket: the listener reads the TLS
                // setup for every new connection.
                ListenerKind::Tcp,
                config.broker.tcp.bind.clone(),
                config.broker.tcp.port,
            ));
        }
        let websockets = &config.broker.websockets;
        if config.broker.enabled && websockets.enabled {
            wanted.push((
                ListenerKind::WebSocket,
                websockets.bind.clone(),
                websockets.port,
            ));
        }
        let mut bound = Vec::new();
        for (kind, bind, port) in &wanted {
            let unchanged = self
                .listeners
                .iter()
                .any(|l| l.kind == *kind && l.bind == *bind && l.port == *port);
            if unchanged {
                continue;
            }
            let address = socket_address(bind, *port).ok_or_else(|| {
                ConfigError::new(bind_field(*kind), format!("{bind:?} is not an IP address"))
            })?;
            let socket = TcpListener::bind(address)
                .await
                .map_err(|source| ApplyError::Bind {
                    listener: *kind,
                    address: address.to_string(),
                    source,
                })?;
            bound.push((*kind, bind.clone(), *port, socket));
        }

        // The store, when the persistence changed: opened (or refused) before anything
        // else changes.
        changes.extend(
            store_apply::apply(
                &self.shared,
                &self.router,
                &previous.persistence,
                &config.persistence,
                self.applied.is_none(),
            )
            .await?,
        );

        // 2. Commit: the new config, then listeners.
        let config_arc = Arc::new(config.clone());
        self.shared.set_config(config_arc.clone());
        changes.extend(tls_commit::commit(&self.shared, tls, &config, &previous));
        self.shared.auth.set_users(&config.users);
        // Open connections keep their slots; only new sockets see a changed limit.
        self.shared
            .admission
            .set_limit(config.limits.max_connections);
        open_files::ensure_room_for(config.limits.max_connections);
        if self
            .router
            .send(RouterMsg::Configure(config_arc))
            .await
            .is_err()
        {
            return Err(ApplyError::Stopped);
        }
        let mut kept = Vec::new();
        let mut stopped = Vec::new();
        for mut running in self.listeners.drain(..) {
            let still_wanted = wanted
                .iter()
                .any(|(k, b, p)| *k == running.kind && *b == running.bind && *p == running.port);
            if still_wanted {
                kept.push(running);
            } else {
                running.stop.cancel();
                let _ = (&mut running.task).await;
                stopped.push(running);
            }
        }
        self.listeners = kept;
        for (kind, bind, port, socket) in bound {
            let address = socket.local_addr().map_err(|source| ApplyError::Bind {
                listener: kind,
                address: format!("{bind}:{port}"),
                source,
            })?;
            let stop = CancellationToken::new();
            let task = tokio::spawn(listener::run_tcp(
                socket,
                kind,
                self.shared.clone(),
                self.router.clone(),
                stop.clone(),
            ));
            let running = RunningListener {
                kind,
                bind,
                port,
                address,
                stop,
                task,
            };
            let replaced = stopped.iter().position(|s| s.kind == kind);
            let action = match replaced {
                Some(index) => {
                    stopped.remove(index);
                    ChangeAction::Restarted
                }
                None => ChangeAction::Started,
            };
            changes.push(ApplyChange {
                subject: running.subject(),
                action,
            });
            self.listeners.push(running);
        }
        for running in stopped {
            changes.push(ApplyChange {
                subject: running.subject(),
                action: ChangeAction::Stopped,
            });
        }
        self.shared.set_listeners(
            self.listeners
                .iter()
                .map(|l| ListenerInfo {
                    kind: tls_commit::shown_kind(l.kind, tls_wanted),
                    address: l.address,
                })
                .collect(),
        );

        // 3. The service as a whole.
        let was_running = self.shared.running.load(Relaxed);
        let running = config.broker.enabled;
        self.shared.running.store(running, Relaxed);
        if was_running && !running {
            self.disconnect_all(ReasonCode::ServerShuttingDown, false)
                .await;
        }
        if was_running != running {
            changes.push(ApplyChange {
                subject: "MQTT broker service".into(),
                action: if running {
                    ChangeAction::Started
                } else {
                    ChangeAction::Stopped
                },
            });
        }

        // 4. Settings that take effect at once.
        if config.limits != previous.limits {
            changes.push(updated("limits (for new connections)"));
        }
        if config.broker.sys_interval_secs != previous.broker.sys_interval_secs {
            changes.push(updated("$SYS interval"));
        }
        self.shared
            .diagnostics
            .set_configured(config.diagnostics.log_messages);
        if config.diagnostics != previous.diagnostics {
            self.restart_log_file(&config);
            changes.push(updated("diagnostics"));
        }

        // Clients connected with a certificate revoked now are disconnected.
        if let Some(change) = tls_commit::disconnect_revoked(&self.router, &config, &previous).await
        {
            changes.push(change);
        }

        // Credentials and topic permissions: new CONNECTs check the new users, and the
        // router holds every client to the new rules from its next packet.
        if config.broker.require_credentials != previous.broker.require_credentials {
            changes.push(updated("require client credentials (for new connections)"));
        }
        if config.users != previous.users {
            changes.push(updated("users (for new connections)"));
        }
        if config.acl != previous.acl {
            changes.push(updated("topic permissions"));
        }

        // The WebSocket path and origins are read by each new connection's upgrade: a
        // listener that kept running serves the new ones from now on.
        let (ws, was_ws) = (&config.broker.websockets, &previous.broker.websockets);
        if (ws.path != was_ws.path || ws.allowed_origins != was_ws.allowed_origins)
            && let Some(running) = self
                .listeners
                .iter()
                .find(|l| l.kind == ListenerKind::WebSocket)
            && !changes.iter().any(|c| c.subject == running.subject())
        {
            changes.push(updated(&format!(
                "{} (path {}, for new connections)",
                running.subject(),
                ws.path
            )));
        }

        self.applied = Some(config);
        Ok(ApplyReport { changes })
    }

    fn restart_log_file(&mut self, config: &Config) {
        if let Some((_, stop)) = self.log_file.take() {
            stop.cancel();
        }
        if let Some(path) = &config.diagnostics.log_file {
            let stop = CancellationToken::new();
            tokio::spawn(diagnostics::run_log_file(
                path.clone(),
                self.shared.diagnostics.subscribe(),
                stop.clone(),
            ));
            self.log_file = Some((path.clone(), stop));
        }
    }

    /// Closes every connection; `shutdown`: the broker is stopping and its sessions end.
    async fn disconnect_all(&self, reason: ReasonCode, shutdown: bool) {
        let (reply, done) = oneshot::channel();
        if self
            .router
            .send(RouterMsg::DisconnectAll {
                reason,
                shutdown,
                reply,
            })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    async fn shutdown(&mut self) {
        for running in self.listeners.drain(..) {
            running.stop.cancel();
            let _ = running.task.await;
        }
        self.shared.set_listeners(Vec::new());
        self.shared.running.store(false, Relaxed);
        self.disconnect_all(ReasonCode::ServerShuttingDown, true)
            .await;
        if let Some((_, stop)) = self.log_file.take() {
            stop.cancel();
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.shared.metrics.open_connections.load(Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The config field that names a listener's bind address.
fn bind_field(kind: ListenerKind) -> &'static str {
    match kind {
        ListenerKind::WebSocket | ListenerKind::SecureWebSocket => "broker.websockets.bind",
        ListenerKind::Tcp | ListenerKind::Tls => "broker.tcp.bind",
    }
}

fn updated(subject: &str) -> ApplyChange {
    ApplyChange {
        subject: subject.into(),
        action: ChangeAction::Updated,
    }
}

/// The config's own validation, plus what the engine depends on (an IP address to bind).
fn validate(config: &Config) -> Result<(), ConfigError> {
    config.validate()?;
    if config.broker.tcp.enabled && socket_address(&config.broker.tcp.bind, 0).is_none() {
        return Err(ConfigError::new(
            "broker.tcp.bind",
            format!("{:?} is not an IP address", config.broker.tcp.bind),
        ));
    }
    let ws = &config.broker.websockets;
    if ws.enabled && socket_address(&ws.bind, 0).is_none() {
        return Err(ConfigError::new(
            "broker.websockets.bind",
            format!("{:?} is not an IP address", ws.bind),
        ));
    }
    if config.limits.max_inflight == 0 {
        return Err(ConfigError::new(
            "limits.max_inflight",
            "must be at least 1",
        ));
    }
    if config.limits.max_packet_size < 64 {
        return Err(ConfigError::new(
            "limits.max_packet_size",
            "must be at least 64 bytes",
        ));
    }
    Ok(())
}
