//! The brokers of a comparison as child processes: a scratch directory with a generated
//! configuration (the same limits for every broker), a free local port per listener, start
//! and readiness, and the process killed when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;

/// The URL path of every broker's WebSocket listener in a comparison.
pub const WS_PATH: &str = "/mqtt";

/// Every broker gets the same limits, so none wins by dropping or queueing more.
pub const MAX_INFLIGHT: u16 = 100;
pub const MAX_QUEUED: u32 = 10_000;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How a broker is configured and started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Roost,
    Mosquitto,
}

impl BrokerKind {
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Roost => "roost",
            BrokerKind::Mosquitto => "mosquitto",
        }
    }
}

/// One broker of a comparison: its name in the table, how it is started, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUnderTest {
    pub label: String,
    pub kind: BrokerKind,
    pub program: PathBuf,
    /// Where the broker keeps sessions and messages; `None` leaves its default (roost:
    /// whatever the build defaults to; Mosquitto: `persistence false`).
    pub persistence: Option<Persistence>,
}

/// A broker's storage in a comparison, always inside its scratch directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persistence {
    /// `roost serve --persistence MODE --data-dir SCRATCH/data`.
    Roost(String),
    /// Mosquitto's `persistence true` with `persistence_location SCRATCH/`: it writes a
    /// snapshot every `autosave_interval` (1800 s by default) and at exit, nothing per message.
    MosquittoSnapshots,
}

impl BrokerUnderTest {
    /// The broker labelled by its kind (`roost`, `mosquitto`).
    pub fn new(kind: BrokerKind, program: &Path) -> BrokerUnderTest {
        BrokerUnderTest {
            label: kind.name().to_string(),
            kind,
            program: program.to_path_buf(),
            persistence: None,
        }
    }
}

/// The table label of a baseline build: its file name (`roost-c7b4210`), or `baseline` when the
/// file name would read as one of the other brokers (an earlier build named plain `roost`).
pub fn baseline_label(program: &Path) -> String {
    match program.file_name().map(|name| name.to_string_lossy()) {
        Some(name) if name != BrokerKind::Roost.name() && name != BrokerKind::Mosquitto.name() => {
            name.into_owned()
        }
        _ => "baseline".to_string(),
    }
}

/// What every broker of a comparison listens on: TCP, and WebSockets beside it when asked;
/// with `tls`, both speak TLS with the same certificate files.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    pub websockets: bool,
    pub tls: Option<ServerFiles>,
}

/// The server side of TLS for every broker: roost's data directory (it reads
/// `certificates/server.crt` and `server.key` there) and the PEM files in it Mosquitto is
/// given by name.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    pub data_dir: PathBuf,
    pub ca_certificate: PathBuf,
    pub server_certificate: PathBuf,
    pub server_key: PathBuf,
}

/// Certificates made for a comparison by roost's own commands (`roost ca create`, `roost
/// server-cert create`, for the default host names, 127.0.0.1 among them), removed with
/// their directory when dropped.
pub struct Certificates {
    pub files: ServerFiles,
    _directory: ScratchDir,
}

impl Certificates {
    pub fn create(roost: &Path) -> Result<Certificates, BenchError> {
        let directory = ScratchDir::new("pki")?;
        let data_dir = directory.path.join("data");
        let config = directory.path.join("roost.ron");
        for action in [["ca", "create"], ["server-cert", "create"]] {
            let program = roost.to_string_lossy().into_owned();
            let output = Command::new(roost)
                .arg("--config")
                .arg(&config)
                .args(action)
                .arg("--data-dir")
                .arg(&data_dir)
                .stdin(Stdio::null())
                .output()
                .map_err(|source| BenchError::Spawn {
                    program: program.clone(),
                    source,
                })?;
            if !output.status.success() {
                return Err(BenchError::Certificates {
                    command: format!("{program} {}", action.join(" ")),
                    message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
                });
            }
        }
        let certificates = data_dir.join(roost::pki::paths::CERTIFICATES_DIR);
        Ok(Certificates {
            files: ServerFiles {
                ca_certificate: certificates.join("ca.crt"),
                server_certificate: certificates.join("server.crt"),
                server_key: certificates.join("server.key"),
                data_dir,
            },
            _directory: directory,
        })
    }
}

/// A child process killed (and reaped) when dropped, with its scratch directory.
pub struct BrokerProcess {
    pub broker: BrokerUnderTest,
    pub child: Child,
    pub address: SocketAddr,
    /// The WebSocket listener, when the comparison runs over WebSockets too.
    pub ws_address: Option<SocketAddr>,
    listeners: Listeners,
    directory: ScratchDir,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // Already exited is fine: there is nothing else to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl BrokerProcess {
    pub fn start(
        broker: &BrokerUnderTest,
        listeners: &Listeners,
    ) -> Result<BrokerProcess, BenchError> {
        if listeners.tls.is_some() && matches!(broker.persistence, Some(Persistence::Roost(_))) {
            return Err(BenchError::InvalidOptions(
                "a comparison over TLS shares one roost data directory; it cannot also give \
                 each broker its own store"
                    .to_string(),
            ));
        }
        let directory = ScratchDir::new(&broker.label)?;
        let address = free_local_address()?;
        let ws_address = listeners.websockets.then(free_local_address).transpose()?;
        let child = spawn(broker, listeners, address, ws_address, &directory.path)?;
        let mut process = BrokerProcess {
            broker: broker.clone(),
            child,
            address,
            ws_address,
            listeners: listeners.clone(),
            directory,
        };
        process.wait_until_ready()?;
        Ok(process)
    }

    /// The broker's data directory (roost with a [`Persistence::Roost`] mode).
    pub fn data_dir(&self) -> PathBuf {
        self.directory.path.join("data")
    }

    /// Asks the broker to stop with SIGTERM (a graceful stop: roost closes its store) and
    /// waits until it has exited; returns how long that took.
    pub fn stop_gracefully(&mut self, timeout: Duration) -> Result<Duration, BenchError> {
        let started = Instant::now();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .map_err(|source| BenchError::Spawn {
                program: "kill".to_string(),
                source,
            })?;
        if !status.success() {
            return Err(BenchError::BrokerExited {
                broker: self.broker.label.clone(),
                status: "gone before SIGTERM".to_string(),
            });
        }
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(started.elapsed()),
                Ok(None) if started.elapsed() > timeout => {
                    return Err(BenchError::Timeout("the broker to exit after SIGTERM"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(source) => {
                    return Err(BenchError::Io {
                        context: "cannot wait for the broker process",
                        source,
                    });
                }
            }
        }
    }

    /// Starts the broker again on the same ports and directory after it exited, without
    /// waiting for it to be ready (the caller measures that).
    pub fn start_again(&mut self) -> Result<(), BenchError> {
        self.child = spawn(
            &self.broker,
            &self.listeners,
            self.address,
            self.ws_address,
            &self.directory.path,
        )?;
        Ok(())
    }

    fn wait_until_ready(&mut self) -> Result<(), BenchError> {
        let started = Instant::now();
        loop {
            self.check_alive()?;
            let ready = |address: &SocketAddr| {
                TcpStream::connect_timeout(address, Duration::from_millis(200)).is_ok()
            };
            if ready(&self.address) && self.ws_address.as_ref().is_none_or(ready) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(BenchError::BrokerNotReady {
                    broker: self.broker.label.clone(),
                    address: self.address,
                    seconds: READY_TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let log = std::fs::read_to_string(self.directory.path.join("broker.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(BenchError::BrokerExited {
                    broker: self.broker.label.clone(),
                    status: format!("{status}; last log lines: {}", tail.join(" | ")),
                })
            }
            Err(source) => Err(BenchError::Io {
                context: "cannot check the broker process",
                source,
            }),
        }
    }
}

/// Writes the broker's configuration into `directory` and starts it there, its stderr going
/// to `broker.log` (appended to, so a restart keeps the earlier lines).
fn spawn(
    broker: &BrokerUnderTest,
    listeners: &Listeners,
    address: SocketAddr,
    ws_address: Option<SocketAddr>,
    directory: &Path,
) -> Result<Child, BenchError> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(directory.join("broker.log"))
        .map_err(|source| BenchError::Io {
            context: "cannot create the broker log",
            source,
        })?;
    let mut command = match broker.kind {
        BrokerKind::Roost => {
            let config_path = directory.join("roost.ron");
            std::fs::write(&config_path, roost_config(address)).map_err(|source| {
                BenchError::Io {
                    context: "cannot write the roost config",
                    source,
                }
            })?;
            let mut command = Command::new(&broker.program);
            command
                .arg("--config")
                .arg(&config_path)
                .arg("serve")
                .arg("--tcp")
                .arg(address.to_string())
                .env("RUST_LOG", "warn");
            if let Some(ws) = ws_address {
                command
                    .arg("--ws")
                    .arg(ws.to_string())
                    .arg("--ws-path")
                    .arg(WS_PATH);
            }
            if let Some(tls) = &listeners.tls {
                command.arg("--tls").arg("--data-dir").arg(&tls.data_dir);
            }
            if let Some(Persistence::Roost(mode)) = &broker.persistence {
                command
                    .arg("--persistence")
                    .arg(mode)
                    .arg("--data-dir")
                    .arg(directory.join("data"));
            }
            command
        }
        BrokerKind::Mosquitto => {
            let config_path = directory.join("mosquitto.conf");
            let mut config = mosquitto_config(
                address,
                ws_address,
                listeners.tls.as_ref(),
                running_as_root(),
            );
            if broker.persistence.is_some() {
                config = with_mosquitto_persistence(&config, directory);
            }
            std::fs::write(&config_path, config).map_err(|source| BenchError::Io {
                context: "cannot write the Mosquitto config",
                source,
            })?;
            let mut command = Command::new(&broker.program);
            command.arg("-c").arg(&config_path);
            command
        }
    };
    let program = command.get_program().to_string_lossy().into_owned();
    command
        .current_dir(directory)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|source| BenchError::Spawn { program, source })
}

/// `config` with Mosquitto's persistence on, its snapshot in `directory` (the path must end
/// with a slash). The snapshot interval stays at Mosquitto's default (`autosave_interval
/// 1800`): that is what `persistence true` means to its users.
pub fn with_mosquitto_persistence(config: &str, directory: &Path) -> String {
    let location = format!("{}/", directory.display());
    config.replace(
        "persistence false\n",
        &format!("persistence true\npersistence_location {location}\n"),
    )
}

/// The roost configuration for a comparison: one local listener and the limits Mosquitto gets.
/// Only these settings are written (the rest keep their defaults), so that an earlier build,
/// which refuses settings it does not know, reads the same file.
pub fn roost_config(address: SocketAddr) -> String {
    format!(
        "(\n    \
         broker: (enabled: true, tcp: (enabled: true, bind: \"{}\", port: {})),\n    \
         limits: (max_inflight: {MAX_INFLIGHT}, max_queued_messages: {MAX_QUEUED}),\n\
         )\n",
        address.ip(),
        address.port()
    )
}

/// The Mosquitto configuration for a comparison: one local listener, nothing on disk, the
/// same inflight and queue limits roost gets, and Nagle's algorithm off as roost has it
/// (with it on, delayed ACKs add tens of milliseconds to every QoS 0 delivery). With `tls`,
/// every listener speaks TLS with roost's certificate files.
pub fn mosquitto_config(
    address: SocketAddr,
    ws: Option<SocketAddr>,
    tls: Option<&ServerFiles>,
    as_root: bool,
) -> String {
    // Mosquitto's TLS options belong to the listener above them.
    let tls_lines = tls.map_or_else(String::new, |files| {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            files.ca_certificate.display(),
            files.server_certificate.display(),
            files.server_key.display()
        )
    });
    let mut config = format!(
        "listener {} {}\n\
         {tls_lines}\
         allow_anonymous true\n\
         persistence false\n\
         max_inflight_messages {MAX_INFLIGHT}\n\
         max_queued_messages {MAX_QUEUED}\n\
         set_tcp_nodelay true\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n",
        address.port(),
        address.ip()
    );
    if let Some(ws) = ws {
        // Mosquitto's WebSocket listener serves any path, WS_PATH included.
        config.push_str(&format!(
            "listener {} {}\nprotocol websockets\n{tls_lines}",
            ws.port(),
            ws.ip()
        ));
    }
    if as_root {
        // Run as root, Mosquitto would otherwise switch to the `mosquitto` user.
        config.push_str("user root\n");
    }
    config
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|uids| uids.split_whitespace().next())
            == Some("0")
    })
}

fn free_local_address() -> Result<SocketAddr, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| BenchError::Io {
        context: "cannot find a free port",
        source,
    })?;
    listener.local_addr().map_err(|source| BenchError::Io {
        context: "cannot find a free port",
        source,
    })
}

struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn new(label: &str) -> Result<ScratchDir, BenchError> {
        // Labels such as "roost disk-buffered" become path-friendly "roost-disk-buffered".
        let label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "roost-bench-{label}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).map_err(|source| BenchError::Io {
            context: "cannot create a scratch directory",
            source,
        })?;
        Ok(ScratchDir { path })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn describe_machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores ({model}), Linux {kernel}")
}

pub fn mosquitto_version(program: &Path) -> String {
    // `mosquitto -h` prints "mosquitto version X.Y.Z" first (and exits non-zero).
    Command::new(program)
        .arg("-h")
        .output()
        .ok()
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            text.lines()
                .find(|line| line.contains("version"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "mosquitto (version unknown)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost::config::Config;

    #[test]
    fn mosquitto_gets_a_websocket_listener_when_asked() {
        let config = mosquitto_config(
            "127.0.0.1:18830".parse().unwrap(),
            Some("127.0.0.1:19001".parse().unwrap()),
            None,
            false,
        );
        assert!(config.contains("listener 18830 127.0.0.1\n"), "{config}");
        assert!(
            config.contains("listener 19001 127.0.0.1\nprotocol websockets\n"),
            "{config}"
        );
    }

    #[test]
    fn mosquitto_gets_the_same_limits_and_a_local_listener() {
        let config = mosquitto_config("127.0.0.1:18830".parse().unwrap(), None, None, true);
        assert!(config.contains("listener 18830 127.0.0.1\n"));
        assert!(config.contains("persistence false\n"));
        assert!(config.contains("allow_anonymous true\n"));
        assert!(config.contains(&format!("max_queued_messages {MAX_QUEUED}\n")));
        assert!(config.contains("user root\n"));
        assert!(config.contains("set_tcp_nodelay true\n"));
        assert!(
            !mosquitto_config("127.0.0.1:1".parse().unwrap(), None, None, false)
                .contains("user root")
        );
    }

    /// A run that delivered `throughput` messages in one second with the given latencies

    #[test]
    fn the_roost_config_sets_only_the_listener_and_limits() {
        let text = roost_config("127.0.0.1:18831".parse().unwrap());
        let config = Config::from_ron(&text).unwrap();
        let mut expected = Config::default();
        expected.broker.enabled = true;
        expected.broker.tcp.enabled = true;
        expected.broker.tcp.bind = "127.0.0.1".to_string();
        expected.broker.tcp.port = 18831;
        expected.limits.max_inflight = MAX_INFLIGHT;
        expected.limits.max_queued_messages = MAX_QUEUED;
        assert_eq!(config, expected);
    }

    #[test]
    fn with_tls_every_mosquitto_listener_gets_the_certificate_files() {
        let files = ServerFiles {
            data_dir: PathBuf::from("/tmp/pki/data"),
            ca_certificate: PathBuf::from("/tmp/pki/data/certificates/ca.crt"),
            server_certificate: PathBuf::from("/tmp/pki/data/certificates/server.crt"),
            server_key: PathBuf::from("/tmp/pki/data/certificates/server.key"),
        };
        let config = mosquitto_config(
            "127.0.0.1:18830".parse().unwrap(),
            Some("127.0.0.1:19001".parse().unwrap()),
            Some(&files),
            false,
        );
        let tls = "cafile /tmp/pki/data/certificates/ca.crt\n\
                   certfile /tmp/pki/data/certificates/server.crt\n\
                   keyfile /tmp/pki/data/certificates/server.key\n";
        assert!(
            config.starts_with(&format!("listener 18830 127.0.0.1\n{tls}allow_anonymous")),
            "{config}"
        );
        assert!(
            config.contains(&format!(
                "listener 19001 127.0.0.1\nprotocol websockets\n{tls}"
            )),
            "{config}"
        );
    }
}
