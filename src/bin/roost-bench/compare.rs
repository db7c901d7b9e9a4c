//! `roost-bench compare`: roost and Mosquitto side by side on the same machine, same
//! scenarios, same limits, alternating which broker goes first. With `--baseline`, an earlier
//! roost build runs as a third broker in the same rotation, so a regression shows against
//! figures measured minutes apart on the same machine, not on another day.
//!
//! With `--tls`, roost's own commands make a CA and a server certificate, every broker serves
//! TLS with those files, the QoS 1 pairs run over TLS, and a connection-rate run per broker
//! and round ([`super::connect_rate`]) measures new TLS connections per second.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::BenchError;
use super::brokers::{
    BrokerKind, BrokerProcess, BrokerUnderTest, Certificates, Listeners, MAX_INFLIGHT, MAX_QUEUED,
    WS_PATH, baseline_label, describe_machine, mosquitto_version,
};
use super::client::Transport;
use super::connect_rate::{ConnectOptions, ConnectReport, run_connections};
use super::histogram::LatencyHistogram;
use super::run::{RunOptions, RunReport, Scenario, format_nanos, run};
use super::tls::{TlsClient, TlsFiles};
use roost::mqtt::{ProtocolVersion, QoS};

/// The issue's goals for TLS (issue 8): roost's CPU per message at most this share of
/// Mosquitto's, and at least as many new connections per second.
pub const CPU_GOAL: f64 = 0.67;
pub const CONNECTION_RATE_GOAL: f64 = 1.0;

#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub duration: Duration,
    pub warm_up: Duration,
    pub rounds: usize,
    /// Delivered messages per second in the equal-load scenarios.
    pub load: f64,
    pub version: ProtocolVersion,
    pub roost: PathBuf,
    /// An earlier roost executable, run as a third broker.
    pub baseline: Option<PathBuf>,
    pub mosquitto: PathBuf,
    /// Also run the flat-out scenarios over WebSockets (roost's listener and Mosquitto's
    /// `protocol websockets` one), beside TCP.
    pub websockets: bool,
    /// Serve TLS with certificates made by roost; run the TLS scenarios and the connection
    /// rate instead of the standard scenarios.
    pub tls: bool,
    /// Concurrent connectors of the connection-rate runs.
    pub connectors: usize,
}

impl CompareOptions {
    /// The brokers in table order: roost, the baseline build (when given), Mosquitto.
    pub fn brokers(&self) -> Vec<BrokerUnderTest> {
        let mut brokers = vec![BrokerUnderTest::new(BrokerKind::Roost, &self.roost)];
        if let Some(baseline) = &self.baseline {
            brokers.push(BrokerUnderTest {
                label: baseline_label(baseline),
                kind: BrokerKind::Roost,
                program: baseline.clone(),
                persistence: None,
            });
        }
        brokers.push(BrokerUnderTest::new(BrokerKind::Mosquitto, &self.mosquitto));
        brokers
    }
}

/// The order in which the brokers (indices into the table order) run scenario `scenario` in
/// round `round`: the table order rotated one place further per scenario and per round. Each
/// broker thus takes each place equally often (per round when the scenarios are a multiple of
/// the brokers, per scenario over rounds that are), and two brokers simply alternate.
pub fn run_order(brokers: usize, round: usize, scenario: usize) -> Vec<usize> {
    let Some(shift) = (round + scenario).checked_rem(brokers) else {
        return Vec::new();
    };
    (0..brokers)
        .map(|place| (place + shift) % brokers)
        .collect()
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
    /// Over WebSockets (path [`WS_PATH`]) rather than plain TCP.
    pub websocket: bool,
    /// Over TLS (under the WebSocket, if any).
    pub tls: bool,
    /// Subscribers keep persistent sessions, so every message goes through the store.
    pub persistent: bool,
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
        let over = match (self.websocket, self.tls) {
            (false, false) => "",
            (false, true) => " over TLS",
            (true, false) => " over ws",
            (true, true) => " over wss",
        };
        let sessions = if self.persistent {
            ", persistent sessions"
        } else {
            ""
        };
        format!("QoS {} {shape}, {load}{over}{sessions}", self.qos as u8)
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
                websocket: false,
                tls: false,
                persistent: false,
            };
            if limited {
                compared.rate = Some(load / compared.deliveries_per_publish());
            }
            scenarios.push(compared);
        }
    }
    scenarios
}

/// The scenarios of a comparison: the standard ones (with `tls`, only the QoS 1 pairs, over
/// TLS), then, with `websockets`, the flat-out ones again over WebSockets.
pub fn compared_scenarios(load: f64, websockets: bool, tls: bool) -> Vec<ComparedScenario> {
    let mut scenarios = standard_scenarios(load);
    if tls {
        scenarios = scenarios
            .into_iter()
            .filter(|s| s.scenario == Scenario::Pairs)
            .map(|s| ComparedScenario { tls: true, ..s })
            .collect();
    }
    if websockets {
        let over_ws: Vec<ComparedScenario> = scenarios
            .iter()
            .filter(|s| s.rate.is_none())
            .map(|s| ComparedScenario {
                websocket: true,
                ..s.clone()
            })
            .collect();
        scenarios.extend(over_ws);
    }
    scenarios
}

/// The result of one run in a comparison (or why it failed).
#[derive(Debug)]
pub struct CompareRun {
    pub scenario: usize,
    /// Index into [`CompareReport::brokers`].
    pub broker: usize,
    pub result: Result<RunReport, String>,
}

/// The result of one connection-rate run (or why it failed).
#[derive(Debug)]
pub struct ConnectRun {
    /// Index into [`CompareReport::brokers`].
    pub broker: usize,
    pub result: Result<ConnectReport, String>,
}

#[derive(Debug)]
pub struct CompareReport {
    pub options: CompareOptions,
    /// In table order: roost, the baseline build (when given), Mosquitto.
    pub brokers: Vec<BrokerUnderTest>,
    pub scenarios: Vec<ComparedScenario>,
    pub runs: Vec<CompareRun>,
    /// With `--tls`: the connection-rate runs.
    pub connection_runs: Vec<ConnectRun>,
    /// With `--tls`: what a handshake with each broker agreed on (version, cipher suite, key
    /// exchange), in table order.
    pub tls_sessions: Vec<String>,
    pub machine: String,
    pub mosquitto_version: String,
}

/// Starts the brokers, runs every scenario against each, and stops them again (also when
/// this future is dropped, for example on Ctrl-C).
pub async fn compare(options: &CompareOptions) -> Result<CompareReport, BenchError> {
    let scenarios = compared_scenarios(options.load, options.websockets, options.tls);
    let brokers = options.brokers();
    // Made by the roost under test, used by every broker; removed at the end.
    let certificates = match options.tls {
        true => Some(Certificates::create(&options.roost)?),
        false => None,
    };
    let listeners = Listeners {
        websockets: options.websockets,
        tls: certificates.as_ref().map(|c| c.files.clone()),
    };
    let tls_client = match &certificates {
        Some(certificates) => Some(TlsClient::new(&TlsFiles {
            ca_file: certificates.files.ca_certificate.clone(),
            client: None,
            server_name: "127.0.0.1".to_string(),
        })?),
        None => None,
    };
    // Collecting stops at the first broker that does not start; dropping the ones started
    // before it kills them.
    let mut processes = brokers
        .iter()
        .map(|broker| BrokerProcess::start(broker, &listeners))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tls_sessions = Vec::new();
    if let Some(client) = &tls_client {
        for process in &processes {
            let session = client.probe(process.address).await?;
            eprintln!("{}: {session}", process.broker.label);
            tls_sessions.push(session);
        }
    }
    let mut runs = Vec::new();
    let mut connection_runs = Vec::new();
    for round in 0..options.rounds {
        runs.extend(
            run_round(
                &RunSettings::of(options),
                &mut processes,
                &scenarios,
                round,
                &tls_client,
            )
            .await,
        );
        if tls_client.is_none() {
            continue;
        }
        // The connection rate takes the next place in the rotation after the scenarios.
        for broker in run_order(processes.len(), round, scenarios.len()) {
            let process = &mut processes[broker];
            eprintln!(
                "round {}/{}: new TLS connections, {} connectors, against {}",
                round + 1,
                options.rounds,
                options.connectors,
                process.broker.label
            );
            let connect = ConnectOptions {
                address: process.address,
                transport: Transport {
                    tls: tls_client.clone(),
                    websocket: None,
                },
                connectors: options.connectors,
                version: options.version,
                warm_up: options.warm_up,
                duration: options.duration,
                broker_pid: Some(process.child.id()),
            };
            let result = match process.check_alive() {
                Ok(()) => run_connections(&connect).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match &result {
                Ok(report) => eprintln!(
                    "  {:.0} connections/s, {} failed",
                    report.rate(),
                    report.failed
                ),
                Err(e) => eprintln!("  failed: {e}"),
            }
            connection_runs.push(ConnectRun { broker, result });
        }
    }
    drop(processes);
    drop(certificates);
    Ok(CompareReport {
        options: options.clone(),
        brokers,
        scenarios,
        runs,
        connection_runs,
        tls_sessions,
        machine: describe_machine(),
        mosquitto_version: mosquitto_version(&options.mosquitto),
    })
}

/// What every run of a comparison shares.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub version: ProtocolVersion,
    pub warm_up: Duration,
    pub duration: Duration,
    pub rounds: usize,
}

impl RunSettings {
    fn of(options: &CompareOptions) -> RunSettings {
        RunSettings {
            version: options.version,
            warm_up: options.warm_up,
            duration: options.duration,
            rounds: options.rounds,
        }
    }
}

/// Round `round` of a comparison: every scenario against every broker, in the rotating
/// order of [`run_order`]; a broker that has exited fails its runs instead of ending the round.
pub async fn run_round(
    settings: &RunSettings,
    processes: &mut [BrokerProcess],
    scenarios: &[ComparedScenario],
    round: usize,
    tls_client: &Option<TlsClient>,
) -> Vec<CompareRun> {
    let mut runs = Vec::new();
    for (index, compared) in scenarios.iter().enumerate() {
        for broker in run_order(processes.len(), round, index) {
            let process = &mut processes[broker];
            eprintln!(
                "round {}/{}: {} against {}",
                round + 1,
                settings.rounds,
                compared.label(),
                process.broker.label
            );
            let result = match process.check_alive() {
                Ok(()) => run(&run_options(settings, compared, process, tls_client))
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
                broker,
                result,
            });
        }
    }
    runs
}

fn run_options(
    settings: &RunSettings,
    compared: &ComparedScenario,
    process: &BrokerProcess,
    tls: &Option<TlsClient>,
) -> RunOptions {
    let (address, websocket) = match (compared.websocket, process.ws_address) {
        (true, Some(ws)) => (ws, Some(WS_PATH.to_string())),
        _ => (process.address, None),
    };
    RunOptions {
        address,
        transport: Transport {
            tls: tls.clone().filter(|_| compared.tls),
            websocket,
        },
        scenario: compared.scenario,
        publishers: compared.publishers,
        subscribers: compared.subscribers,
        qos: compared.qos,
        payload: 64,
        version: settings.version,
        warm_up: settings.warm_up,
        duration: settings.duration,
        count: None,
        rate: compared.rate,
        inflight: usize::from(MAX_INFLIGHT),
        broker_pid: Some(process.child.id()),
        persistent: compared.persistent,
        pingers: 0,
    }
}

pub fn group_thousands(value: f64) -> String {
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

/// The median over rounds of one latency quantile (nanoseconds).
fn median_quantile<'a>(
    rounds: impl Iterator<Item = &'a LatencyHistogram>,
    quantile: f64,
) -> Option<f64> {
    median(
        rounds
            .filter_map(|latency| latency.quantile(quantile))
            .map(|n| n as f64)
            .collect(),
    )
}

pub fn median(mut values: Vec<f64>) -> Option<f64> {
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

/// The figures of some runs (one broker on one scenario, over all rounds): medians of
/// throughput, latency and CPU per message, losses summed, and why runs failed.
pub fn summarize<'a>(runs: impl Iterator<Item = &'a CompareRun> + Clone) -> Summary {
    let reports: Vec<&RunReport> = runs
        .clone()
        .filter_map(|run| run.result.as_ref().ok())
        .collect();
    let failures = runs
        .filter_map(|run| run.result.as_ref().err().cloned())
        .collect();
    let quantile = |q: f64| median_quantile(reports.iter().map(|r| &r.latency), q);
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

impl CompareReport {
    /// The figures of `broker` (an index into [`CompareReport::brokers`]) on `scenario`.
    pub fn summary(&self, scenario: usize, broker: usize) -> Summary {
        summarize(
            self.runs
                .iter()
                .filter(|run| run.scenario == scenario && run.broker == broker),
        )
    }

    /// The comparison as Markdown: a table with one row per broker and scenario, and ratio
    /// rows of roost to each other broker (Mosquitto first, then the baseline build) for
    /// throughput, latency and CPU per message.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let options = &self.options;
        let (order, all) = match self.brokers.len() {
            2 => ("alternating", "both brokers"),
            _ => ("rotating", "all brokers"),
        };
        // Two brokers are always this roost and Mosquitto; the executables are worth naming
        // once several roost builds ran.
        let executables = if self.brokers.len() > 2 {
            let list: Vec<String> = self
                .brokers
                .iter()
                .map(|broker| format!("{} `{}`", broker.label, broker.program.display()))
                .collect();
            format!(" Executables: {}.", list.join(", "))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "Machine: {}. {}. MQTT {}, 64-byte payloads, {} s measured after {} s warm-up, \
             {} round(s), brokers {order} first; {all} limited to {MAX_INFLIGHT} \
             inflight and {MAX_QUEUED} queued messages per client.{executables}\n",
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
        for (index, compared) in self.scenarios.iter().enumerate() {
            let label = compared.label();
            let summaries: Vec<Summary> = (0..self.brokers.len())
                .map(|broker| self.summary(index, broker))
                .collect();
            for (place, (broker, summary)) in self.brokers.iter().zip(&summaries).enumerate() {
                let scenario_cell = if place == 0 { label.as_str() } else { "" };
                write_summary_row(&mut out, scenario_cell, &broker.label, summary);
            }
            // roost is first in the table; Mosquitto, last, gets the first ratio row.
            for other in (1..self.brokers.len()).rev() {
                write_ratio_row(
                    &mut out,
                    &format!("{}/{}", self.brokers[0].label, self.brokers[other].label),
                    &summaries[0],
                    &summaries[other],
                );
            }
            // Over WebSockets, roost also against itself over TCP on the same scenario.
            let tcp_twin = self.scenarios.iter().position(|s| {
                compared.websocket
                    && !s.websocket
                    && ComparedScenario {
                        websocket: true,
                        ..s.clone()
                    } == *compared
            });
            if let Some(twin) = tcp_twin {
                let pair = if compared.tls { "wss/tls" } else { "ws/tcp" };
                let label = format!("{} {pair}", self.brokers[0].label);
                write_ratio_row(&mut out, &label, &summaries[0], &self.summary(twin, 0));
            }
        }
        if self.options.tls {
            self.write_tls_sections(&mut out);
        }
        out
    }

    /// The figures of `broker` over its connection-rate runs.
    pub fn connection_summary(&self, broker: usize) -> ConnectSummary {
        let runs = self
            .connection_runs
            .iter()
            .filter(|run| run.broker == broker);
        let reports: Vec<&ConnectReport> = runs
            .clone()
            .filter_map(|run| run.result.as_ref().ok())
            .collect();
        let quantile = |q: f64| median_quantile(reports.iter().map(|r| &r.latency), q);
        ConnectSummary {
            rate: median(reports.iter().map(|r| r.rate()).collect()),
            p50: quantile(0.50),
            p99: quantile(0.99),
            failed: reports.iter().map(|r| r.failed).sum(),
            cpu_ms_per_connection: median(
                reports
                    .iter()
                    .filter_map(|r| r.cpu_ms_per_connection())
                    .collect(),
            ),
            failures: runs
                .filter_map(|run| run.result.as_ref().err().cloned())
                .collect(),
        }
    }

    /// With `--tls`: the handshakes, the connection-rate table and the issue's goals.
    fn write_tls_sections(&self, out: &mut String) {
        let sessions: Vec<String> = self
            .brokers
            .iter()
            .zip(&self.tls_sessions)
            .map(|(broker, session)| format!("{} {session}", broker.label))
            .collect();
        let _ = writeln!(
            out,
            "\nTLS: every broker serves the CA and server certificate made by `roost ca create` \
             and `roost server-cert create` (ECDSA P-256); the clients are rustls (ring) \
             trusting that CA, without client certificates. Handshakes agreed on: {}.\n",
            sessions.join("; ")
        );
        let _ = writeln!(
            out,
            "New TLS connections: {} connectors, each in a loop: TCP connect, TLS handshake, \
             CONNECT/CONNACK, DISCONNECT, the broker closes.\n",
            self.options.connectors
        );
        out.push_str("| Broker | connections/s | p50 | p99 | failed | CPU ms per connection |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|\n");
        let summaries: Vec<ConnectSummary> = (0..self.brokers.len())
            .map(|broker| self.connection_summary(broker))
            .collect();
        let latency = |nanos: Option<f64>| nanos.map_or("-".into(), |n| format_nanos(n as u64));
        for (broker, summary) in self.brokers.iter().zip(&summaries) {
            match summary.rate {
                None => {
                    let why = summary.failures.first().cloned().unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "| {} | failed: {} | | | | |",
                        broker.label,
                        why.replace('|', "/")
                    );
                }
                Some(rate) => {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} |",
                        broker.label,
                        group_thousands(rate),
                        latency(summary.p50),
                        latency(summary.p99),
                        summary.failed,
                        summary
                            .cpu_ms_per_connection
                            .map_or("-".into(), |cpu| format!("{cpu:.3}")),
                    );
                }
            }
        }
        for other in (1..self.brokers.len()).rev() {
            let (mine, theirs) = (&summaries[0], &summaries[other]);
            let _ = writeln!(
                out,
                "| {}/{} | {} | {} | {} | | {} |",
                self.brokers[0].label,
                self.brokers[other].label,
                ratio(mine.rate, theirs.rate),
                ratio(mine.p50, theirs.p50),
                ratio(mine.p99, theirs.p99),
                ratio(mine.cpu_ms_per_connection, theirs.cpu_ms_per_connection),
            );
        }
        self.write_goals(out, &summaries);
    }

    /// The issue's two TLS goals against Mosquitto (the last broker), met or not.
    fn write_goals(&self, out: &mut String, connections: &[ConnectSummary]) {
        let Some(mosquitto) = self
            .brokers
            .iter()
            .rposition(|broker| broker.kind == BrokerKind::Mosquitto)
        else {
            return;
        };
        let verdict = |value: Option<f64>, met: fn(f64) -> bool| match value {
            Some(value) if met(value) => format!("{value:.2}× — **met**"),
            Some(value) => format!("{value:.2}× — **not met**"),
            None => "not measured".to_string(),
        };
        out.push_str("\nGoals (issue 8), roost/mosquitto from the same run:\n\n");
        for (index, compared) in self.scenarios.iter().enumerate() {
            if compared.websocket || compared.qos != QoS::AtLeastOnce {
                continue;
            }
            let cpu = |broker| self.summary(index, broker).cpu_per_million;
            let share = cpu(0)
                .zip(cpu(mosquitto))
                .map(|(mine, theirs)| mine / theirs);
            let _ = writeln!(
                out,
                "- CPU per message at most {CPU_GOAL}× Mosquitto's, {}: {}",
                compared.label(),
                verdict(share, |share| share <= CPU_GOAL)
            );
        }
        let rate = connections[0]
            .rate
            .zip(connections[mosquitto].rate)
            .map(|(mine, theirs)| mine / theirs);
        let _ = writeln!(
            out,
            "- New TLS connections per second at least Mosquitto's: {}",
            verdict(rate, |rate| rate >= CONNECTION_RATE_GOAL)
        );
    }
}

/// The connection-rate figures of one broker over all rounds.
#[derive(Debug, Clone, Default)]
pub struct ConnectSummary {
    pub rate: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub failed: u64,
    pub cpu_ms_per_connection: Option<f64>,
    pub failures: Vec<String>,
}

/// `mine / theirs` as `0.52×`, or "-" where either is missing.
pub fn ratio(mine: Option<f64>, theirs: Option<f64>) -> String {
    match (mine, theirs) {
        (Some(mine), Some(theirs)) if theirs > 0.0 => format!("{:.2}×", mine / theirs),
        _ => "-".to_string(),
    }
}

pub fn write_summary_row(out: &mut String, scenario_cell: &str, broker: &str, summary: &Summary) {
    if summary.throughput.is_none() {
        let why = summary.failures.first().cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "| {scenario_cell} | {broker} | failed: {} | | | | |",
            why.replace('|', "/")
        );
        return;
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
    let latency = |nanos: Option<f64>| nanos.map_or("-".into(), |n| format_nanos(n as u64));
    let _ = writeln!(
        out,
        "| {scenario_cell} | {broker} | {} | {} | {} | {lost} | {} |",
        summary.throughput.map_or("-".into(), group_thousands),
        latency(summary.p50),
        latency(summary.p99),
        summary
            .cpu_per_million
            .map_or("-".into(), |cpu| format!("{cpu:.2}")),
    );
}

/// `mine / theirs` for throughput, p50, p99 and CPU per message ("-" where either is missing).
fn write_ratio_row(out: &mut String, label: &str, mine: &Summary, theirs: &Summary) {
    let _ = writeln!(
        out,
        "| | {label} | {} | {} | {} | | {} |",
        ratio(mine.throughput, theirs.throughput),
        ratio(mine.p50, theirs.p50),
        ratio(mine.p99, theirs.p99),
        ratio(mine.cpu_per_million, theirs.cpu_per_million),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::LatencyHistogram;
    use crate::sequence::DeliveryCounts;
    use std::path::Path;

    const ROOST: usize = 0;

    #[test]
    fn websockets_add_the_flat_out_scenarios_again_over_ws() {
        let scenarios = compared_scenarios(20_000.0, true, false);
        assert_eq!(scenarios.len(), 9);
        assert!(scenarios[..6].iter().all(|s| !s.websocket));
        assert!(
            scenarios[6..]
                .iter()
                .all(|s| s.websocket && s.rate.is_none())
        );
        assert_eq!(scenarios[8].label(), "QoS 1 8 pairs, flat out over ws");
        assert_eq!(
            compared_scenarios(20_000.0, false, false),
            standard_scenarios(20_000.0)
        );
    }

    #[test]
    fn tls_runs_the_qos_1_pairs_over_tls_and_wss() {
        let scenarios = compared_scenarios(10_000.0, false, true);
        assert_eq!(scenarios.len(), 2);
        assert!(
            scenarios
                .iter()
                .all(|s| s.tls && s.scenario == Scenario::Pairs && s.qos == QoS::AtLeastOnce)
        );
        assert_eq!(scenarios[0].label(), "QoS 1 8 pairs, flat out over TLS");
        assert_eq!(scenarios[1].rate, Some(10_000.0));
        let with_ws = compared_scenarios(10_000.0, true, true);
        assert_eq!(with_ws[2].label(), "QoS 1 8 pairs, flat out over wss");
    }

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

    /// (half the samples at each) and broker CPU, losing `lost` of them.
    fn run_report(throughput: u64, p50: u64, p99: u64, cpu: f64, lost: u64) -> RunReport {
        let mut latency = LatencyHistogram::default();
        for _ in 0..50 {
            latency.record(p50);
        }
        for _ in 0..50 {
            latency.record(p99);
        }
        RunReport {
            scenario: Scenario::FanIn,
            qos: QoS::AtMostOnce,
            version: ProtocolVersion::V3_1_1,
            publishers: 4,
            subscribers: 1,
            payload: 64,
            rate: None,
            window: Duration::from_secs(1),
            published_in_window: throughput,
            delivered_in_window: throughput,
            latency,
            deliveries: DeliveryCounts {
                expected: throughput * 2,
                unique: throughput * 2 - lost,
                ..DeliveryCounts::default()
            },
            foreign: 0,
            unacknowledged: 0,
            rejected: 0,
            broker_cpu: Some(cpu),
            generator_cpu: 0.0,
            probe: None,
            problems: Vec::new(),
        }
    }

    fn test_options() -> CompareOptions {
        CompareOptions {
            duration: Duration::from_secs(5),
            warm_up: Duration::from_secs(1),
            rounds: 2,
            load: 20_000.0,
            version: ProtocolVersion::V3_1_1,
            roost: PathBuf::from("/build/roost"),
            baseline: None,
            mosquitto: PathBuf::from("mosquitto"),
            websockets: false,
            tls: false,
            connectors: 8,
        }
    }

    fn test_report(options: CompareOptions, runs: Vec<CompareRun>) -> CompareReport {
        CompareReport {
            brokers: options.brokers(),
            scenarios: standard_scenarios(options.load)[..2].to_vec(),
            options,
            runs,
            connection_runs: Vec::new(),
            tls_sessions: Vec::new(),
            machine: "2 cores (Test CPU), Linux 6.1".to_string(),
            mosquitto_version: "mosquitto version 2.0.11".to_string(),
        }
    }

    fn ok(scenario: usize, broker: usize, report: RunReport) -> CompareRun {
        CompareRun {
            scenario,
            broker,
            result: Ok(report),
        }
    }

    #[test]
    fn without_a_baseline_the_table_is_roost_and_mosquitto_as_before() {
        const MOSQUITTO: usize = 1;
        let runs = vec![
            ok(
                0,
                ROOST,
                run_report(1_500_000, 80_000_000, 150_000_000, 1.0, 0),
            ),
            ok(
                0,
                MOSQUITTO,
                run_report(250_000, 600_000_000, 800_000_000, 1.0, 0),
            ),
            ok(
                0,
                MOSQUITTO,
                run_report(240_000, 640_000_000, 760_000_000, 1.1, 0),
            ),
            ok(
                0,
                ROOST,
                run_report(1_400_000, 90_000_000, 160_000_000, 0.9, 29_000),
            ),
            ok(
                1,
                ROOST,
                run_report(4_000_000, 60_000_000, 80_000_000, 0.8, 0),
            ),
            CompareRun {
                scenario: 1,
                broker: MOSQUITTO,
                result: Err("mosquitto exited early (exit status: 1)".to_string()),
            },
        ];
        let report = test_report(test_options(), runs);
        let expected = "\
Machine: 2 cores (Test CPU), Linux 6.1. mosquitto version 2.0.11. MQTT 3.1.1, 64-byte payloads, \
5 s measured after 1 s warm-up, 2 round(s), brokers alternating first; both brokers limited to \
100 inflight and 10000 queued messages per client.\n\
\n\
| Scenario | Broker | msgs/s delivered | p50 | p99 | lost | CPU s per 1M msgs |\n\
|---|---|---:|---:|---:|---:|---:|\n\
| QoS 0 fan-in 4→1, flat out | roost | 1\u{202F}450\u{202F}000 | 86.0 ms | 155.0 ms | 29000 (0.50 %) | 0.65 |\n\
|  | mosquitto | 245\u{202F}000 | 629.1 ms | 780.0 ms | 0 | 4.29 |\n\
| | roost/mosquitto | 5.92× | 0.14× | 0.20× | | 0.15× |\n\
| QoS 0 fan-out 1→8, flat out | roost | 4\u{202F}000\u{202F}000 | 60.8 ms | 80.0 ms | 0 | 0.20 |\n\
|  | mosquitto | failed: mosquitto exited early (exit status: 1) | | | | |\n\
| | roost/mosquitto | - | - | - | | - |\n";
        assert_eq!(report.markdown(), expected);
    }

    #[test]
    fn a_baseline_adds_its_row_a_ratio_row_and_the_executables() {
        const BASELINE: usize = 1;
        const MOSQUITTO: usize = 2;
        let options = CompareOptions {
            baseline: Some(PathBuf::from("/work/baseline/roost-c7b4210")),
            ..test_options()
        };
        let runs = vec![
            ok(0, ROOST, run_report(1_000_000, 100_000, 400_000, 1.0, 0)),
            ok(0, BASELINE, run_report(800_000, 125_000, 320_000, 1.0, 0)),
            ok(0, MOSQUITTO, run_report(250_000, 400_000, 800_000, 1.0, 0)),
            ok(1, MOSQUITTO, run_report(250_000, 400_000, 800_000, 1.0, 0)),
            ok(1, ROOST, run_report(4_000_000, 60_000, 80_000, 0.8, 0)),
            CompareRun {
                scenario: 1,
                broker: BASELINE,
                result: Err("roost-c7b4210 exited early (exit status: 2)".to_string()),
            },
        ];
        let report = test_report(options, runs);
        // Latencies are read back as the upper bounds of their histogram buckets (125 µs
        // as 127 µs), so the latency ratios are those of the bounds.
        let expected = "\
Machine: 2 cores (Test CPU), Linux 6.1. mosquitto version 2.0.11. MQTT 3.1.1, 64-byte payloads, \
5 s measured after 1 s warm-up, 2 round(s), brokers rotating first; all brokers limited to \
100 inflight and 10000 queued messages per client. Executables: roost `/build/roost`, \
roost-c7b4210 `/work/baseline/roost-c7b4210`, mosquitto `mosquitto`.\n\
\n\
| Scenario | Broker | msgs/s delivered | p50 | p99 | lost | CPU s per 1M msgs |\n\
|---|---|---:|---:|---:|---:|---:|\n\
| QoS 0 fan-in 4→1, flat out | roost | 1\u{202F}000\u{202F}000 | 100 µs | 400 µs | 0 | 1.00 |\n\
|  | roost-c7b4210 | 800\u{202F}000 | 127 µs | 320 µs | 0 | 1.25 |\n\
|  | mosquitto | 250\u{202F}000 | 401 µs | 800 µs | 0 | 4.00 |\n\
| | roost/mosquitto | 4.00× | 0.25× | 0.50× | | 0.25× |\n\
| | roost/roost-c7b4210 | 1.25× | 0.79× | 1.25× | | 0.80× |\n\
| QoS 0 fan-out 1→8, flat out | roost | 4\u{202F}000\u{202F}000 | 60 µs | 80 µs | 0 | 0.20 |\n\
|  | roost-c7b4210 | failed: roost-c7b4210 exited early (exit status: 2) | | | | |\n\
|  | mosquitto | 250\u{202F}000 | 401 µs | 800 µs | 0 | 4.00 |\n\
| | roost/mosquitto | 16.00× | 0.15× | 0.10× | | 0.05× |\n\
| | roost/roost-c7b4210 | - | - | - | | - |\n";
        assert_eq!(report.markdown(), expected);
    }

    #[test]
    fn the_baseline_is_labelled_by_its_file_name_and_runs_between_roost_and_mosquitto() {
        let options = CompareOptions {
            baseline: Some(PathBuf::from("/work/baseline/roost-c7b4210")),
            ..test_options()
        };
        let brokers = options.brokers();
        let labels: Vec<&str> = brokers.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["roost", "roost-c7b4210", "mosquitto"]);
        assert_eq!(brokers[1].kind, BrokerKind::Roost);
        assert_eq!(
            brokers[1].program,
            Path::new("/work/baseline/roost-c7b4210")
        );
        // An earlier build named plain `roost` must not read as the build under test.
        assert_eq!(baseline_label(Path::new("/old/roost")), "baseline");
        assert_eq!(test_options().brokers().len(), 2);
    }

    #[test]
    fn two_brokers_alternate_as_before() {
        for round in 0..4 {
            for scenario in 0..6 {
                let expected = if (round + scenario) % 2 == 0 {
                    [0, 1]
                } else {
                    [1, 0]
                };
                assert_eq!(run_order(2, round, scenario), expected);
            }
        }
    }

    #[test]
    fn three_brokers_rotate_so_each_takes_each_place_equally_often() {
        assert_eq!(run_order(3, 0, 0), [0, 1, 2]);
        assert_eq!(run_order(3, 0, 1), [1, 2, 0]);
        assert_eq!(run_order(3, 0, 2), [2, 0, 1]);
        assert_eq!(run_order(3, 1, 0), [1, 2, 0]);
        // Within a round of the six standard scenarios, each broker runs first, second and
        // third twice; over three rounds, each scenario has each broker first once.
        let mut places = [[0; 3]; 3];
        for scenario in 0..6 {
            let order = run_order(3, 0, scenario);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2], "every broker runs once");
            for (place, broker) in order.into_iter().enumerate() {
                places[broker][place] += 1;
            }
        }
        assert_eq!(places, [[2; 3]; 3]);
        for scenario in 0..6 {
            let mut firsts: Vec<usize> = (0..3)
                .map(|round| run_order(3, round, scenario)[0])
                .collect();
            firsts.sort_unstable();
            assert_eq!(firsts, [0, 1, 2]);
        }
        assert!(run_order(0, 1, 1).is_empty());
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
