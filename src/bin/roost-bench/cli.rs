//! The `roost-bench` command line: `run` one scenario, or `compare` roost with Mosquitto.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::BenchError;
use super::bad_logins::{BadLoginOptions, run_bad_logins};
use super::client::Transport;
use super::compare::RunSettings;
use super::compare::{CompareOptions, compare};
use super::connect_rate::{ConnectOptions, run_connections};
use super::hooks::RoundHooks;
use super::restart::{RestartOptions, measure_restart};
use super::retained::{RetainedOptions, run_retained};
use super::run::{RunOptions, Scenario, run};
use super::storage::{MODES, StorageOptions, storage};
use super::tls::{TlsClient, files_from_options};
use roost::mqtt::{ProtocolVersion, QoS};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Drive a broker with one scenario; report throughput, latency, loss and broker CPU.
    Run(RunArgs),
    /// Open, CONNECT and DISCONNECT connections in a loop with N connectors; report new
    /// connections per second and the broker's CPU per connection.
    Connections(ConnectionsArgs),
    /// Start roost and Mosquitto (and an earlier roost build with --baseline), run the standard
    /// scenarios against each, print a Markdown table.
    Compare(CompareArgs),
    /// Store many retained messages, subscribe wildcard filters matching them, and measure
    /// other clients' QoS 1 round trips meanwhile.
    Retained(RetainedArgs),
    /// Send CONNECTs with a wrong password at a steady rate, and measure other clients' QoS
    /// 1 round trips meanwhile.
    BadLogins(BadLoginArgs),
    /// Start roost in each storage mode, an earlier build (with --baseline) and Mosquitto with
    /// persistence; measure QoS 1 pairs with persistent sessions and this disk's fsync rate.
    Storage(StorageArgs),
    /// Fill a disk-mode roost with persistent sessions and queued QoS 1 messages, restart it
    /// and time until a session is back (CONNACK Session Present).
    Restart(RestartArgs),
}

/// Commands around each measured round (to pause other load on a shared machine).
#[derive(Debug, Args)]
pub struct RoundHookArgs {
    /// Shell command run before each round (for example one that pauses compilers).
    #[arg(long, value_name = "COMMAND")]
    before_round: Option<String>,
    /// Shell command run after each round.
    #[arg(long, value_name = "COMMAND")]
    after_round: Option<String>,
    /// Seconds to wait between rounds.
    #[arg(long, default_value_t = 0.0)]
    round_gap: f64,
}

impl RoundHookArgs {
    fn hooks(self) -> Result<RoundHooks, BenchError> {
        Ok(RoundHooks {
            before: self.before_round,
            after: self.after_round,
            gap: seconds(self.round_gap, "--round-gap")?,
        })
    }
}

#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Seconds measured per scenario and broker, after the warm-up.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warm_up: f64,
    /// How many times every scenario runs against each broker (rotating which goes first).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Comma-separated publisher counts, each a scenario of that many QoS 1 pairs.
    #[arg(long, default_value = "1,4,16", value_delimiter = ',')]
    publishers: Vec<usize>,
    /// Comma-separated storage modes of roost to run.
    #[arg(
        long,
        default_value = "memory,disk-buffered,disk-unbuffered,disk-fault-tolerant",
        value_delimiter = ','
    )]
    modes: Vec<String>,
    /// Seconds of fsyncs per round to measure this disk's fsync rate.
    #[arg(long, default_value_t = 3.0)]
    fsync_seconds: f64,
    /// MQTT version: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1", value_parser = parse_version)]
    mqtt_version: ProtocolVersion,
    /// The roost executable to serve with (default: `roost` next to this executable).
    #[arg(long)]
    roost: Option<PathBuf>,
    /// A roost build from before the store, run in its (memory) default, for memory mode's
    /// "no slower than before" goal.
    #[arg(long, value_name = "PATH")]
    baseline: Option<PathBuf>,
    /// An earlier roost build with the store, run in --earlier-modes in the same rotation,
    /// for before/after rows of a change to the store (labelled with its file name).
    #[arg(long, value_name = "PATH")]
    earlier: Option<PathBuf>,
    /// Comma-separated storage modes of the --earlier build.
    #[arg(long, default_value = "memory,disk-buffered", value_delimiter = ',')]
    earlier_modes: Vec<String>,
    /// The Mosquitto executable.
    #[arg(long, default_value = "mosquitto")]
    mosquitto: PathBuf,
    #[command(flatten)]
    hooks: RoundHookArgs,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The disk storage mode.
    #[arg(long, default_value = "disk-unbuffered")]
    mode: String,
    /// Persistent sessions to open.
    #[arg(long, default_value_t = 100_000)]
    sessions: usize,
    /// Queued QoS 1 messages in total (a multiple of --sessions).
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    /// Topics the sessions subscribe to (default: one per session).
    #[arg(long)]
    topics: Option<usize>,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Connections opening sessions at once.
    #[arg(long, default_value_t = 32)]
    connectors: usize,
    /// Connections publishing the queued messages.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Restarts to measure.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The roost executable (default: `roost` next to this executable).
    #[arg(long)]
    roost: Option<PathBuf>,
    #[command(flatten)]
    hooks: RoundHookArgs,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BadLoginArgs {
    /// Broker host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker TCP port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Bad CONNECTs per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of bad CONNECTs.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of round trips alone before.
    #[arg(long, default_value_t = 2.0)]
    warm_up: f64,
    /// Clients doing QoS 1 round trips (anonymously) meanwhile.
    #[arg(long, default_value_t = 4)]
    pingers: usize,
    /// A username the broker knows, so that every attempt costs a real password check.
    #[arg(long, default_value = "bench")]
    username: String,
    /// MQTT version: 3.1.1 or 5.
    #[arg(long, default_value = "5", value_parser = parse_version)]
    mqtt_version: ProtocolVersion,
}

#[derive(Debug, Args)]
pub struct RetainedArgs {
    /// Broker host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker TCP port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Retained messages stored, on `r/{i / 1000}/{i % 1000}`.
    #[arg(long, default_value_t = 1_000_000)]
    retained: usize,
    /// Subscribers, each with the next filter of `--filters`.
    #[arg(long, default_value_t = 2)]
    subscribers: usize,
    /// Comma-separated filters without `#`.
    #[arg(long, default_value = "+/+/+,r/+/+", value_delimiter = ',')]
    filters: Vec<String>,
    /// Clients doing QoS 1 round trips during the subscribes.
    #[arg(long, default_value_t = 4)]
    pingers: usize,
    /// QoS of the retained messages and the subscriptions (0 or 1).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 16)]
    payload: usize,
    /// MQTT version: 3.1.1 or 5.
    #[arg(long, default_value = "5", value_parser = parse_version)]
    mqtt_version: ProtocolVersion,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Broker host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker TCP port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// fan-in (N publishers → 1 subscriber), fan-out (1 → N) or pairs (N separate topics).
    #[arg(long, default_value = "fan-in", value_parser = parse_scenario)]
    scenario: Scenario,
    /// Publishers (default: 4 for fan-in, 1 for fan-out, 8 pairs).
    #[arg(long)]
    publishers: Option<usize>,
    /// Subscribers (default: 1 for fan-in, 8 for fan-out, one per pair).
    #[arg(long)]
    subscribers: Option<usize>,
    /// QoS of the messages and subscriptions.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Payload size in bytes (at least 24: sequence number and send time travel in it).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Seconds measured after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Publish this many messages in total after the warm-up instead of running for a duration.
    #[arg(long)]
    count: Option<u64>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warm_up: f64,
    /// Total messages per second over all publishers (default: as fast as the broker takes them).
    #[arg(long)]
    rate: Option<f64>,
    /// QoS 1/2 messages each publisher keeps unacknowledged at most.
    #[arg(long, default_value_t = 100)]
    inflight: usize,
    /// Process id of the broker, to measure its CPU time.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// MQTT version: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1", value_parser = parse_version)]
    mqtt_version: ProtocolVersion,
    /// Subscribers keep persistent sessions (3.1.1 Clean Session 0, v5 Session Expiry), so
    /// that every QoS 1/2 message goes through the broker's store.
    #[arg(long)]
    persistent: bool,
    /// Connect over a WebSocket on this URL path (such as /mqtt) instead of plain TCP.
    #[arg(long, value_name = "PATH")]
    websocket: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// Other clients (clean sessions, plain TCP) doing QoS 1 round trips alone for the
    /// warm-up's length, then during the measured window: does the load stall everyone?
    #[arg(long, default_value_t = 0)]
    pingers: usize,
}

/// TLS for the generator's clients.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Connect over TLS (wss:// with --websocket).
    #[arg(long)]
    tls: bool,
    /// PEM file of the CA certificate the broker's certificate chains to (such as the one
    /// `roost ca export` writes).
    #[arg(long, value_name = "FILE", requires = "tls")]
    cafile: Option<PathBuf>,
    /// Client certificate (PEM) to present, for brokers that require one.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "key"])]
    cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "cert"])]
    key: Option<PathBuf>,
    /// The name the broker's certificate must be valid for [default: --host].
    #[arg(long, value_name = "NAME", requires = "tls")]
    server_name: Option<String>,
}

impl TlsArgs {
    /// The transport of these options, with a WebSocket on `websocket` if given.
    fn transport(&self, host: &str, websocket: Option<String>) -> Result<Transport, BenchError> {
        let tls = match self.tls {
            true => Some(TlsClient::new(&files_from_options(
                self.cafile.as_deref(),
                self.cert.as_deref(),
                self.key.as_deref(),
                self.server_name.as_deref(),
                host,
            )?)?),
            false => None,
        };
        Ok(Transport { tls, websocket })
    }
}

#[derive(Debug, Args)]
pub struct ConnectionsArgs {
    /// Broker host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker TCP port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Connections in progress at once.
    #[arg(long, default_value_t = 8)]
    connectors: usize,
    /// Seconds measured after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of connections before measuring.
    #[arg(long, default_value_t = 1.0)]
    warm_up: f64,
    /// Process id of the broker, to measure its CPU time.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// MQTT version: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1", value_parser = parse_version)]
    mqtt_version: ProtocolVersion,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Seconds measured per scenario and broker, after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warm_up: f64,
    /// How many times every scenario runs against each broker (alternating which goes first).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Delivered messages per second of the equal-load scenarios.
    #[arg(long, default_value_t = 20_000.0)]
    load: f64,
    /// MQTT version: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1", value_parser = parse_version)]
    mqtt_version: ProtocolVersion,
    /// The roost executable to serve with (default: `roost` next to this executable).
    #[arg(long)]
    roost: Option<PathBuf>,
    /// An earlier roost executable to run as a third broker in the same rotation, for a
    /// roost/baseline ratio row (the table labels it with its file name).
    #[arg(long, value_name = "PATH")]
    baseline: Option<PathBuf>,
    /// The Mosquitto executable.
    #[arg(long, default_value = "mosquitto")]
    mosquitto: PathBuf,
    /// Also run the flat-out scenarios over WebSockets, beside TCP.
    #[arg(long)]
    websockets: bool,
    /// Serve TLS on every broker with a CA and server certificate made by `roost ca create`
    /// and `roost server-cert create`; run the QoS 1 pairs over TLS and the connection rate.
    #[arg(long)]
    tls: bool,
    /// Concurrent connectors of the --tls connection-rate runs.
    #[arg(long, default_value_t = 8)]
    connectors: usize,
    /// Also write the Markdown table to this file.
    #[arg(long)]
    output: Option<PathBuf>,
}

fn parse_scenario(text: &str) -> Result<Scenario, String> {
    Scenario::from_name(text).ok_or_else(|| "expected fan-in, fan-out or pairs".to_string())
}

fn parse_version(text: &str) -> Result<ProtocolVersion, String> {
    match text {
        "3.1.1" | "4" => Ok(ProtocolVersion::V3_1_1),
        "5" | "5.0" => Ok(ProtocolVersion::V5),
        _ => Err("expected 3.1.1 or 5".to_string()),
    }
}

fn seconds(value: f64, what: &str) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| BenchError::InvalidOptions(format!("{what} must be a number of seconds")))
}

/// Runs a `roost-bench` command; Ctrl-C stops it (and the brokers `compare` started).
pub async fn run_command(command: BenchCommand) -> Result<(), BenchError> {
    let work = async {
        match command {
            BenchCommand::Run(args) => run_one(args).await,
            BenchCommand::Connections(args) => {
                let options = ConnectOptions {
                    address: resolve(&args.host, args.port).await?,
                    transport: args.tls.transport(&args.host, None)?,
                    connectors: args.connectors,
                    version: args.mqtt_version,
                    warm_up: seconds(args.warm_up, "--warm-up")?,
                    duration: seconds(args.duration, "--duration")?,
                    broker_pid: args.broker_pid,
                };
                print!("{}", run_connections(&options).await?);
                Ok(())
            }
            BenchCommand::Compare(args) => run_compare(args).await,
            BenchCommand::Retained(args) => run_retained_command(args).await,
            BenchCommand::Storage(args) => run_storage(args).await,
            BenchCommand::Restart(args) => run_restart(args).await,
            BenchCommand::BadLogins(args) => {
                let options = BadLoginOptions {
                    address: resolve(&args.host, args.port).await?,
                    rate: args.rate,
                    duration: seconds(args.duration, "--duration")?,
                    warm_up: seconds(args.warm_up, "--warm-up")?,
                    pingers: args.pingers,
                    username: args.username,
                    version: args.mqtt_version,
                };
                print!("{}", run_bad_logins(&options).await?);
                Ok(())
            }
        }
    };
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => Err(BenchError::Interrupted),
    }
}

async fn run_retained_command(args: RetainedArgs) -> Result<(), BenchError> {
    let options = RetainedOptions {
        address: resolve(&args.host, args.port).await?,
        retained: args.retained,
        subscribers: args.subscribers,
        filters: args.filters,
        pingers: args.pingers,
        qos: QoS::from_u8(args.qos)
            .ok_or_else(|| BenchError::InvalidOptions("QoS must be 0 or 1".into()))?,
        payload: args.payload,
        version: args.mqtt_version,
    };
    let report = run_retained(&options).await?;
    print!("{report}");
    Ok(())
}

async fn resolve(host: &str, port: u16) -> Result<std::net::SocketAddr, BenchError> {
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| BenchError::Resolve {
            host: host.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| BenchError::Resolve {
            host: host.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })
}

async fn run_one(args: RunArgs) -> Result<(), BenchError> {
    let address = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await
        .map_err(|source| BenchError::Resolve {
            host: args.host.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| BenchError::Resolve {
            host: args.host.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })?;
    let (publishers, subscribers) = match args.scenario {
        Scenario::FanIn => (args.publishers.unwrap_or(4), args.subscribers.unwrap_or(1)),
        Scenario::FanOut => (args.publishers.unwrap_or(1), args.subscribers.unwrap_or(8)),
        Scenario::Pairs => {
            let pairs = args.publishers.or(args.subscribers).unwrap_or(8);
            (pairs, args.subscribers.unwrap_or(pairs))
        }
    };
    let options = RunOptions {
        address,
        scenario: args.scenario,
        publishers,
        subscribers,
        qos: QoS::from_u8(args.qos)
            .ok_or_else(|| BenchError::InvalidOptions("QoS must be 0, 1 or 2".into()))?,
        payload: args.payload,
        version: args.mqtt_version,
        warm_up: seconds(args.warm_up, "--warm-up")?,
        duration: seconds(args.duration, "--duration")?,
        count: args.count,
        rate: args.rate,
        inflight: args.inflight,
        broker_pid: args.broker_pid,
        persistent: args.persistent,
        transport: args.tls.transport(&args.host, args.websocket)?,
        pingers: args.pingers,
    };
    let report = run(&options).await?;
    print!("{report}");
    Ok(())
}

/// `roost` in this executable's directory: cargo builds both binaries into the same one, and
/// an installation puts them side by side.
fn roost_next_to_this_executable() -> Result<PathBuf, BenchError> {
    let this = std::env::current_exe().map_err(|source| BenchError::Io {
        context: "cannot find this executable to look for roost next to it",
        source,
    })?;
    let roost = this
        .with_file_name("roost")
        .with_extension(std::env::consts::EXE_EXTENSION);
    if roost.is_file() {
        Ok(roost)
    } else {
        Err(BenchError::InvalidOptions(format!(
            "no roost executable at {}; name one with --roost PATH",
            roost.display()
        )))
    }
}

async fn run_compare(args: CompareArgs) -> Result<(), BenchError> {
    let roost = match args.roost {
        Some(path) => path,
        None => roost_next_to_this_executable()?,
    };
    let options = CompareOptions {
        duration: seconds(args.duration, "--duration")?,
        warm_up: seconds(args.warm_up, "--warm-up")?,
        rounds: args.rounds.max(1),
        load: args.load,
        version: args.mqtt_version,
        roost,
        baseline: args.baseline,
        mosquitto: args.mosquitto,
        websockets: args.websockets,
        tls: args.tls,
        connectors: args.connectors,
    };
    let report = compare(&options).await?;
    let markdown = report.markdown();
    print!("{markdown}");
    if let Some(path) = args.output {
        std::fs::write(&path, &markdown).map_err(|source| BenchError::Io {
            context: "cannot write the comparison table",
            source,
        })?;
    }
    Ok(())
}

async fn run_storage(args: StorageArgs) -> Result<(), BenchError> {
    if let Some(unknown) = args
        .modes
        .iter()
        .chain(&args.earlier_modes)
        .find(|mode| !MODES.contains(&mode.as_str()))
    {
        return Err(BenchError::InvalidOptions(format!(
            "--modes: unknown storage mode {unknown} (expected {})",
            MODES.join(", ")
        )));
    }
    if args.publishers.is_empty() || args.publishers.contains(&0) {
        return Err(BenchError::InvalidOptions(
            "--publishers needs counts of at least 1".into(),
        ));
    }
    let options = StorageOptions {
        settings: RunSettings {
            version: args.mqtt_version,
            warm_up: seconds(args.warm_up, "--warm-up")?,
            duration: seconds(args.duration, "--duration")?,
            rounds: args.rounds.max(1),
        },
        publishers: args.publishers,
        modes: args.modes,
        roost: match args.roost {
            Some(path) => path,
            None => roost_next_to_this_executable()?,
        },
        baseline: args.baseline,
        earlier: args.earlier,
        earlier_modes: args.earlier_modes,
        mosquitto: args.mosquitto,
        fsync_duration: seconds(args.fsync_seconds, "--fsync-seconds")?,
        hooks: args.hooks.hooks()?,
    };
    let markdown = storage(&options).await?.markdown();
    print!("{markdown}");
    write_output(args.output, &markdown)
}

async fn run_restart(args: RestartArgs) -> Result<(), BenchError> {
    let options = RestartOptions {
        roost: match args.roost {
            Some(path) => path,
            None => roost_next_to_this_executable()?,
        },
        mode: args.mode,
        sessions: args.sessions,
        messages: args.messages,
        topics: args.topics.unwrap_or(args.sessions),
        payload: args.payload,
        connectors: args.connectors,
        publishers: args.publishers,
        rounds: args.rounds,
        hooks: args.hooks.hooks()?,
    };
    let markdown = measure_restart(&options).await?.markdown();
    print!("{markdown}");
    write_output(args.output, &markdown)
}

fn write_output(path: Option<PathBuf>, markdown: &str) -> Result<(), BenchError> {
    match path {
        Some(path) => std::fs::write(&path, markdown).map_err(|source| BenchError::Io {
            context: "cannot write the report",
            source,
        }),
        None => Ok(()),
    }
}
