//! `roost-bench compare`: roost and Mosquitto side by side on the same machine, same
//! scenarios, same limits, alternating which broker goes first.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;
use super::run::{RunOptions, RunReport, Scenario, format_nanos, run};
use roost::config::Config;
use roost::mqtt::{ProtocolVersion, QoS};

/// Both brokers get the same limits, so neither wins by dropping or queueing more.
const MAX_INFLIGHT: u16 = 100;
const MAX_QUEUED: u32 = 10_000;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub duration: Duration,
    pub warm_up: Duration,
    pub rounds: usize,
    /// Delivered messages per second in the equal-load scenarios.
    pub load: f64,
    pub version: ProtocolVersion,
    pub roost: PathBuf,
    pub mosquitto: PathBuf,
}

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

/// One line of the issue's scenario list.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparedScenario {
    pub scenario: Scenario,
    pub publishers: usize,
    pub subscribers: usize,
    pub qos: QoS,
    /// Published messages per second over all publishers; `None` is flat out.
    pub rate: Option<f64>,
}

impl ComparedScenario {
    pub fn label(&self) -> String {
        let shape = match self.scenario {
            Scenario::Pairs => format!("{} pairs", self.publishers),
            _ => format!(
                "{} {}→{}",
                self.scenario.name(),
                self.publishers,
                self.subscribers
            ),
        };
        let load = match self.rate {
            Some(rate) => {
                let delivered = rate * self.deliveries_per_publish();
                format!("{} msg/s delivered", group_thousands(delivered))
            }
            None => "flat out".to_string(),
        };
        format!("QoS {} {shape}, {load}", self.qos as u8)
    }

    fn deliveries_per_publish(&self) -> f64 {
        match self.scenario {
            Scenario::Pairs => 1.0,
            _ => self.subscribers as f64,
        }
    }
}

/// The issue's scenarios with 64-byte payloads: flat out, then the same at an equal offered
/// load of `load` deliveries per second, to compare latency where neither broker is saturated.
pub fn standard_scenarios(load: f64) -> Vec<ComparedScenario> {
    let shapes = [
        (Scenario::FanIn, 4, 1, QoS::AtMostOnce),
        (Scenario::FanOut, 1, 8, QoS::AtMostOnce),
        (Scenario::Pairs, 8, 8, QoS::AtLeastOnce),
    ];
    let mut scenarios = Vec::new();
    for limited in [false, true] {
        for (scenario, publishers, subscribers, qos) in shapes {
            let mut compared = ComparedScenario {
                scenario,
                publishers,
                subscribers,
                qos,
                rate: None,
            };
            if limited {
                compared.rate = Some(load / compared.deliveries_per_publish());
            }
            scenarios.push(compared);
        }
    }
    scenarios
}

/// The result of one run in a comparison (or why it failed).
#[derive(Debug)]
pub struct CompareRun {
    pub scenario: usize,
    pub broker: BrokerKind,
    pub result: Result<RunReport, String>,
}

#[derive(Debug)]
pub struct CompareReport {
    pub options: CompareOptions,
    pub scenarios: Vec<ComparedScenario>,
    pub runs: Vec<CompareRun>,
    pub machine: String,
    pub mosquitto_version: String,
}

/// A child process killed (and reaped) when dropped, with its scratch directory.
struct BrokerProcess {
    kind: BrokerKind,
    child: Child,
    address: SocketAddr,
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
    fn start(kind: BrokerKind, options: &CompareOptions) -> Result<BrokerProcess, BenchError> {
        let directory = ScratchDir::new(kind.name())?;
        let address = free_local_address()?;
        let log = std::fs::File::create(directory.path.join("broker.log")).map_err(|source| {
            BenchError::Io {
                context: "cannot create the broker log",
                source,
            }
        })?;
        let mut command = match kind {
            BrokerKind::Roost => {
                let config_path = directory.path.join("roost.ron");
                let mut config = Config::default();
                config.broker.enabled = true;
                config.broker.tcp.enabled = true;
                config.broker.tcp.bind = address.ip().to_string();
                config.broker.tcp.port = address.port();
                config.limits.max_inflight = MAX_INFLIGHT;
                config.limits.max_queued_messages = MAX_QUEUED;
                config.save(&config_path).map_err(|e| BenchError::Io {
                    context: "cannot write the roost config",
                    source: std::io::Error::other(e.to_string()),
                })?;
                let mut command = Command::new(&options.roost);
                command
                    .arg("--config")
                    .arg(&config_path)
                    .arg("serve")
                    .arg("--tcp")
                    .arg(address.to_string())
                    .env("RUST_LOG", "warn");
                command
            }
            BrokerKind::Mosquitto => {
                let config_path = directory.path.join("mosquitto.conf");
                std::fs::write(&config_path, mosquitto_config(address, running_as_root()))
                    .map_err(|source| BenchError::Io {
                        context: "cannot write the Mosquitto config",
                        source,
                    })?;
                let mut command = Command::new(&options.mosquitto);
                command.arg("-c").arg(&config_path);
                command
            }
        };
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .current_dir(&directory.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| BenchError::Spawn { program, source })?;
        let mut broker = BrokerProcess {
            kind,
            child,
            address,
            directory,
        };
        broker.wait_until_ready()?;
        Ok(broker)
    }

    fn wait_until_ready(&mut self) -> Result<(), BenchError> {
        let started = Instant::now();
        loop {
            self.check_alive()?;
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(BenchError::BrokerNotReady {
                    broker: self.kind.name().to_string(),
                    address: self.address,
                    seconds: READY_TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let log = std::fs::read_to_string(self.directory.path.join("broker.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(BenchError::BrokerExited {
                    broker: self.kind.name().to_string(),
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

/// The Mosquitto configuration for a comparison: one local listener, nothing on disk, the
/// same inflight and queue limits roost gets, and Nagle's algorithm off as roost has it
/// (with it on, delayed ACKs add tens of milliseconds to every QoS 0 delivery).
pub fn mosquitto_config(address: SocketAddr, as_root: bool) -> String {
    let mut config = format!(
        "listener {} {}\n\
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

/// Starts both brokers, runs every scenario against each, and stops them again (also when
/// this future is dropped, for example on Ctrl-C).
pub async fn compare(options: &CompareOptions) -> Result<CompareReport, BenchError> {
    let scenarios = standard_scenarios(options.load);
    let mut roost = BrokerProcess::start(BrokerKind::Roost, options)?;
    let mut mosquitto = BrokerProcess::start(BrokerKind::Mosquitto, options)?;
    let mut runs = Vec::new();
    for round in 0..options.rounds {
        for (index, compared) in scenarios.iter().enumerate() {
            let order = if (round + index) % 2 == 0 {
                [BrokerKind::Roost, BrokerKind::Mosquitto]
            } else {
                [BrokerKind::Mosquitto, BrokerKind::Roost]
            };
            for kind in order {
                let broker = match kind {
                    BrokerKind::Roost => &mut roost,
                    BrokerKind::Mosquitto => &mut mosquitto,
                };
                eprintln!(
                    "round {}/{}: {} against {}",
                    round + 1,
                    options.rounds,
                    compared.label(),
                    kind.name()
                );
                let result = match broker.check_alive() {
                    Ok(()) => run(&run_options(options, compared, broker))
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match &result {
                    Ok(report) => eprintln!(
                        "  {:.0} msg/s, p50 {}, p99 {}, lost {}",
                        report.throughput(),
                        report.p50(),
                        report.p99(),
                        report.lost()
                    ),
                    Err(e) => eprintln!("  failed: {e}"),
                }
                runs.push(CompareRun {
                    scenario: index,
                    broker: kind,
                    result,
                });
            }
        }
    }
    drop(roost);
    drop(mosquitto);
    Ok(CompareReport {
        options: options.clone(),
        scenarios,
        runs,
        machine: describe_machine(),
        mosquitto_version: mosquitto_version(&options.mosquitto),
    })
}

fn run_options(
    options: &CompareOptions,
    compared: &ComparedScenario,
    broker: &BrokerProcess,
) -> RunOptions {
    RunOptions {
        address: broker.address,
        scenario: compared.scenario,
        publishers: compared.publishers,
        subscribers: compared.subscribers,
        qos: compared.qos,
        payload: 64,
        version: options.version,
        warm_up: options.warm_up,
        duration: options.duration,
        count: None,
        rate: compared.rate,
        inflight: usize::from(MAX_INFLIGHT),
        broker_pid: Some(broker.child.id()),
    }
}

fn describe_machine() -> String {
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

fn mosquitto_version(program: &Path) -> String {
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

fn group_thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push('\u{202F}');
        }
        grouped.push(digit);
    }
    grouped
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

/// The figures of one broker on one scenario, over all rounds.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub throughput: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub lost: u64,
    pub expected: u64,
    pub cpu_per_million: Option<f64>,
    pub failures: Vec<String>,
}

impl CompareReport {
    pub fn summary(&self, scenario: usize, broker: BrokerKind) -> Summary {
        let reports: Vec<&RunReport> = self
            .runs
            .iter()
            .filter(|run| run.scenario == scenario && run.broker == broker)
            .filter_map(|run| run.result.as_ref().ok())
            .collect();
        let failures = self
            .runs
            .iter()
            .filter(|run| run.scenario == scenario && run.broker == broker)
            .filter_map(|run| run.result.as_ref().err().cloned())
            .collect();
        let quantile = |q: f64| {
            median(
                reports
                    .iter()
                    .filter_map(|r| r.latency.quantile(q))
                    .map(|n| n as f64)
                    .collect(),
            )
        };
        Summary {
            throughput: median(reports.iter().map(|r| r.throughput()).collect()),
            p50: quantile(0.50),
            p99: quantile(0.99),
            lost: reports.iter().map(|r| r.lost()).sum(),
            expected: reports.iter().map(|r| r.deliveries.expected).sum(),
            cpu_per_million: median(reports.iter().filter_map(|r| r.cpu_per_million()).collect()),
            failures,
        }
    }

    /// The comparison as Markdown: a table with one row per broker and scenario, and a
    /// roost/mosquitto ratio row for throughput and CPU per message.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let options = &self.options;
        let _ = writeln!(
            out,
            "Machine: {}. {}. MQTT {}, 64-byte payloads, {} s measured after {} s warm-up, \
             {} round(s), brokers alternating first; both brokers limited to {MAX_INFLIGHT} \
             inflight and {MAX_QUEUED} queued messages per client.\n",
            self.machine,
            self.mosquitto_version,
            options.version,
            options.duration.as_secs_f64(),
            options.warm_up.as_secs_f64(),
            options.rounds
        );
        out.push_str(
            "| Scenario | Broker | msgs/s delivered | p50 | p99 | lost | CPU s per 1M msgs |\n",
        );
        out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
        let fmt_latency = |nanos: Option<f64>| nanos.map_or("-".into(), |n| format_nanos(n as u64));
        for (index, compared) in self.scenarios.iter().enumerate() {
            let label = compared.label();
            let roost = self.summary(index, BrokerKind::Roost);
            let mosquitto = self.summary(index, BrokerKind::Mosquitto);
            for (kind, summary) in [
                (BrokerKind::Roost, &roost),
                (BrokerKind::Mosquitto, &mosquitto),
            ] {
                let scenario_cell = if kind == BrokerKind::Roost {
                    label.as_str()
                } else {
                    ""
                };
                if summary.throughput.is_none() {
                    let why = summary.failures.first().cloned().unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "| {scenario_cell} | {} | failed: {} | | | | |",
                        kind.name(),
                        why.replace('|', "/")
                    );
                    continue;
                }
                let lost = if summary.lost == 0 {
                    "0".to_string()
                } else {
                    format!(
                        "{} ({:.2} %)",
                        summary.lost,
                        summary.lost as f64 * 100.0 / summary.expected.max(1) as f64
                    )
                };
                let _ = writeln!(
                    out,
                    "| {scenario_cell} | {} | {} | {} | {} | {lost} | {} |",
                    kind.name(),
                    summary.throughput.map_or("-".into(), group_thousands),
                    fmt_latency(summary.p50),
                    fmt_latency(summary.p99),
                    summary
                        .cpu_per_million
                        .map_or("-".into(), |cpu| format!("{cpu:.2}")),
                );
            }
            let ratio = |mine: Option<f64>, theirs: Option<f64>| match (mine, theirs) {
                (Some(mine), Some(theirs)) if theirs > 0.0 => format!("{:.2}×", mine / theirs),
                _ => "-".to_string(),
            };
            let _ = writeln!(
                out,
                "| | roost/mosquitto | {} | {} | {} | | {} |",
                ratio(roost.throughput, mosquitto.throughput),
                ratio(roost.p50, mosquitto.p50),
                ratio(roost.p99, mosquitto.p99),
                ratio(roost.cpu_per_million, mosquitto.cpu_per_million),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_scenarios_match_the_issue() {
        let scenarios = standard_scenarios(20_000.0);
        assert_eq!(scenarios.len(), 6);
        assert_eq!(scenarios[0].label(), "QoS 0 fan-in 4→1, flat out");
        assert_eq!(scenarios[1].label(), "QoS 0 fan-out 1→8, flat out");
        assert_eq!(scenarios[2].label(), "QoS 1 8 pairs, flat out");
        // Equal delivered load: fan-out publishes an eighth of it.
        assert_eq!(scenarios[4].rate, Some(2_500.0));
        assert_eq!(scenarios[3].rate, Some(20_000.0));
        assert!(
            scenarios[5]
                .label()
                .ends_with("20\u{202F}000 msg/s delivered")
        );
    }

    #[test]
    fn mosquitto_gets_the_same_limits_and_a_local_listener() {
        let config = mosquitto_config("127.0.0.1:18830".parse().unwrap(), true);
        assert!(config.contains("listener 18830 127.0.0.1\n"));
        assert!(config.contains("persistence false\n"));
        assert!(config.contains("allow_anonymous true\n"));
        assert!(config.contains(&format!("max_queued_messages {MAX_QUEUED}\n")));
        assert!(config.contains("user root\n"));
        assert!(config.contains("set_tcp_nodelay true\n"));
        assert!(!mosquitto_config("127.0.0.1:1".parse().unwrap(), false).contains("user root"));
    }

    #[test]
    fn medians_and_grouping() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(group_thousands(1234567.4), "1\u{202F}234\u{202F}567");
        assert_eq!(group_thousands(999.0), "999");
    }
}
