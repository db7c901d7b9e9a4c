//! `roost-bench storage`: QoS 1 throughput through each of roost's storage modes, beside an
//! earlier roost build (optional, to check memory mode did not get slower) and Mosquitto with
//! `persistence true`, with this disk's fsync rate measured in the same run and the goals of
//! the persistence issue (7) marked met or not.
//!
//! Every scenario is N QoS 1 pairs whose subscribers keep persistent sessions, so every
//! message goes through the store. The brokers, the rotation and the per-run figures are
//! those of `roost-bench compare` ([`super::compare`]).

use std::fmt::Write as _;
use std::path::PathBuf;

use super::BenchError;
use super::brokers::{
    BrokerKind, BrokerProcess, BrokerUnderTest, Listeners, MAX_INFLIGHT, MAX_QUEUED, Persistence,
    baseline_label, describe_machine, mosquitto_version,
};
use super::compare::{
    CompareRun, ComparedScenario, RunSettings, Summary, median, run_round, summarize,
    write_summary_row,
};
use super::fsync::{FsyncRate, measure_fsync_rate};
use super::hooks::RoundHooks;
use super::run::Scenario;
use roost::mqtt::QoS;

/// The storage modes of `roost serve --persistence`, in table order.
pub const MODES: [&str; 4] = [
    "memory",
    "disk-buffered",
    "disk-unbuffered",
    "disk-fault-tolerant",
];

/// The goals: unbuffered with 16 publishers at least this many times the fsync rate;
/// buffered at least this share of memory mode; memory mode no slower than before the store
/// (read as at least this share of the earlier build: runs vary by ±5% on a shared machine).
pub const UNBUFFERED_FSYNC_GOAL: f64 = 5.0;
pub const BUFFERED_SHARE_GOAL: f64 = 0.80;
pub const MEMORY_NOT_SLOWER: f64 = 0.95;

#[derive(Debug, Clone)]
pub struct StorageOptions {
    pub settings: RunSettings,
    /// Publisher counts: one scenario of that many QoS 1 pairs each.
    pub publishers: Vec<usize>,
    pub modes: Vec<String>,
    pub roost: PathBuf,
    /// An earlier roost build (before the store), run in its default memory store.
    pub baseline: Option<PathBuf>,
    /// An earlier build with the store, run in `earlier_modes` beside `roost`, for
    /// before/after rows of one change to the store.
    pub earlier: Option<PathBuf>,
    pub earlier_modes: Vec<String>,
    pub mosquitto: PathBuf,
    /// How long each round measures the fsync rate.
    pub fsync_duration: std::time::Duration,
    pub hooks: RoundHooks,
}

impl StorageOptions {
    /// In table order: roost in each mode, the earlier build in its modes, the baseline
    /// build, Mosquitto with persistence.
    pub fn brokers(&self) -> Vec<BrokerUnderTest> {
        let roost_in = |program: &PathBuf, label: &str, mode: &String| BrokerUnderTest {
            label: format!("{label} {mode}"),
            kind: BrokerKind::Roost,
            program: program.clone(),
            persistence: Some(Persistence::Roost(mode.clone())),
        };
        let mut brokers: Vec<BrokerUnderTest> = self
            .modes
            .iter()
            .map(|mode| roost_in(&self.roost, "roost", mode))
            .collect();
        if let Some(earlier) = &self.earlier {
            let label = baseline_label(earlier);
            brokers.extend(
                self.earlier_modes
                    .iter()
                    .map(|mode| roost_in(earlier, &label, mode)),
            );
        }
        if let Some(baseline) = &self.baseline {
            brokers.push(BrokerUnderTest {
                label: format!("{} (memory)", baseline_label(baseline)),
                kind: BrokerKind::Roost,
                program: baseline.clone(),
                persistence: None,
            });
        }
        brokers.push(BrokerUnderTest {
            label: "mosquitto persistence true".to_string(),
            kind: BrokerKind::Mosquitto,
            program: self.mosquitto.clone(),
            persistence: Some(Persistence::MosquittoSnapshots),
        });
        brokers
    }

    pub fn scenarios(&self) -> Vec<ComparedScenario> {
        self.publishers
            .iter()
            .map(|&pairs| ComparedScenario {
                scenario: Scenario::Pairs,
                publishers: pairs,
                subscribers: pairs,
                qos: QoS::AtLeastOnce,
                rate: None,
                websocket: false,
                tls: false,
                persistent: true,
            })
            .collect()
    }
}

#[derive(Debug)]
pub struct StorageReport {
    pub options: StorageOptions,
    pub brokers: Vec<BrokerUnderTest>,
    pub scenarios: Vec<ComparedScenario>,
    pub runs: Vec<CompareRun>,
    /// One measurement per round, taken before the round's runs.
    pub fsync: Vec<FsyncRate>,
    pub machine: String,
    pub mosquitto_version: String,
}

/// Starts every broker, then per round: the hooks, this disk's fsync rate, every scenario
/// against every broker.
pub async fn storage(options: &StorageOptions) -> Result<StorageReport, BenchError> {
    let brokers = options.brokers();
    let scenarios = options.scenarios();
    let mut processes = brokers
        .iter()
        .map(|broker| BrokerProcess::start(broker, &Listeners::default()))
        .collect::<Result<Vec<_>, _>>()?;
    // The brokers' scratch directories are in the temporary directory: measure that disk.
    let directory = std::env::temp_dir();
    let mut runs = Vec::new();
    let mut fsync = Vec::new();
    for round in 0..options.settings.rounds {
        options.hooks.before_round(round).await?;
        let (directory, duration) = (directory.clone(), options.fsync_duration);
        let rate = tokio::task::spawn_blocking(move || measure_fsync_rate(&directory, duration))
            .await
            .map_err(|e| BenchError::Task(e.to_string()))??;
        eprintln!("round {}: {rate}", round + 1);
        fsync.push(rate);
        let round_runs =
            run_round(&options.settings, &mut processes, &scenarios, round, &None).await;
        runs.extend(round_runs);
        options.hooks.after_round().await?;
    }
    drop(processes);
    Ok(StorageReport {
        options: options.clone(),
        brokers,
        scenarios,
        runs,
        fsync,
        machine: describe_machine(),
        mosquitto_version: mosquitto_version(&options.mosquitto),
    })
}

impl StorageReport {
    pub fn summary(&self, scenario: usize, broker: usize) -> Summary {
        summarize(
            self.runs
                .iter()
                .filter(|run| run.scenario == scenario && run.broker == broker),
        )
    }

    /// The median fsync rate over the rounds.
    pub fn fsync_rate(&self) -> Option<f64> {
        median(self.fsync.iter().map(|rate| rate.per_second).collect())
    }

    /// The place of `program` serving in `mode`.
    fn index_of(&self, program: &PathBuf, mode: &str) -> Option<usize> {
        self.brokers.iter().position(|broker| {
            &broker.program == program
                && broker.persistence == Some(Persistence::Roost(mode.to_string()))
        })
    }

    /// The place of the measured build (not the earlier one) serving in `mode`.
    fn broker_index(&self, mode: &str) -> Option<usize> {
        self.index_of(&self.options.roost, mode)
    }

    fn baseline_index(&self) -> Option<usize> {
        self.brokers
            .iter()
            .position(|broker| broker.kind == BrokerKind::Roost && broker.persistence.is_none())
    }

    fn throughput(&self, scenario: usize, broker: Option<usize>) -> Option<f64> {
        self.summary(scenario, broker?).throughput
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let settings = &self.options.settings;
        let fsync = self
            .fsync_rate()
            .map_or("not measured".to_string(), |rate| {
                format!("{rate:.0} fsyncs/s")
            });
        let each: Vec<String> = self
            .fsync
            .iter()
            .map(|rate| format!("{:.0}", rate.per_second))
            .collect();
        let _ = writeln!(
            out,
            "Machine: {}. {}. MQTT {}, QoS 1, 64-byte payloads, N publishers each to its own \
             subscriber (N pairs), subscribers with persistent sessions (Clean Session 0), so \
             every message goes through the store; {} s measured after {} s warm-up, {} \
             round(s), brokers rotating first; all limited to {MAX_INFLIGHT} inflight and \
             {MAX_QUEUED} queued messages per client. Executables: roost `{}`{}{}.\n",
            self.machine,
            self.mosquitto_version,
            settings.version,
            settings.duration.as_secs_f64(),
            settings.warm_up.as_secs_f64(),
            settings.rounds,
            self.options.roost.display(),
            self.options
                .earlier
                .as_ref()
                .map_or(String::new(), |path| format!(
                    ", earlier `{}`",
                    path.display()
                )),
            self.options
                .baseline
                .as_ref()
                .map_or(String::new(), |path| format!(
                    ", baseline `{}`",
                    path.display()
                )),
        );
        let _ = writeln!(
            out,
            "This disk's single-writer fsync rate, measured in the same run: **{fsync}** \
             (median of the rounds: {}; 64-byte appends, each followed by fsync, in {}).\n",
            each.join(", "),
            self.fsync
                .first()
                .map_or("-".to_string(), |rate| rate.directory.display().to_string()),
        );
        out.push_str(
            "Mosquitto with `persistence true` writes nothing per message: it snapshots its \
             state every `autosave_interval` (1800 s, 30 minutes, by default) and at exit, so \
             a crash loses up to 30 minutes of messages. Its row is the cost of keeping \
             persistent sessions in memory, not of a store.\n\n",
        );
        out.push_str(
            "| Scenario | Broker | msgs/s delivered | p50 | p99 | lost | CPU s per 1M msgs |\n",
        );
        out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
        for (index, compared) in self.scenarios.iter().enumerate() {
            let label = match compared.publishers {
                1 => "QoS 1, 1 pair, persistent".to_string(),
                pairs => format!("QoS 1, {pairs} pairs, persistent"),
            };
            for (place, broker) in self.brokers.iter().enumerate() {
                let cell = if place == 0 { label.as_str() } else { "" };
                write_summary_row(&mut out, cell, &broker.label, &self.summary(index, place));
            }
        }
        self.write_goals(&mut out);
        self.write_before_after(&mut out);
        out
    }

    /// Broker `a`'s throughput over broker `b`'s in every scenario, as "N publisher(s) R×".
    fn ratios(&self, a: Option<usize>, b: Option<usize>) -> String {
        let ratios: Vec<String> = self
            .scenarios
            .iter()
            .enumerate()
            .map(|(index, compared)| {
                let ratio = self
                    .throughput(index, a)
                    .zip(self.throughput(index, b))
                    .map_or("-".to_string(), |(a, b)| format!("{:.2}×", a / b));
                format!("{} publisher(s) {ratio}", compared.publishers)
            })
            .collect();
        ratios.join(", ")
    }

    /// The measured build over the earlier one, mode by mode, and the earlier build's
    /// disk-buffered share of its own memory mode (the goal as it stood before).
    fn write_before_after(&self, out: &mut String) {
        let Some(earlier) = &self.options.earlier else {
            return;
        };
        let label = baseline_label(earlier);
        let _ = writeln!(out, "\nThis build against {label}, same run:\n");
        for mode in &self.options.earlier_modes {
            let ratios = self.ratios(self.broker_index(mode), self.index_of(earlier, mode));
            let _ = writeln!(out, "- {mode}, throughput: {ratios}");
        }
        let (buffered, memory) = (
            self.index_of(earlier, "disk-buffered"),
            self.index_of(earlier, "memory"),
        );
        if buffered.is_some() && memory.is_some() {
            let shares = self.ratios(buffered, memory);
            let _ = writeln!(
                out,
                "- {label}'s disk-buffered against its own memory mode: {shares}"
            );
        }
    }

    /// The throughput goals, met or not.
    fn write_goals(&self, out: &mut String) {
        let verdict = |value: Option<f64>, goal: f64, unit: &str| match value {
            Some(value) if value >= goal => format!("{value:.2}{unit} — **met**"),
            Some(value) => format!("{value:.2}{unit} — **not met**"),
            None => "not measured".to_string(),
        };
        out.push_str("\nGoals (issue 7), from this run:\n\n");
        let unbuffered = self.broker_index("disk-unbuffered");
        let buffered = self.broker_index("disk-buffered");
        let memory = self.broker_index("memory");
        let baseline = self.baseline_index();
        if let Some(sixteen) = self.scenarios.iter().position(|s| s.publishers == 16) {
            let times = self
                .throughput(sixteen, unbuffered)
                .zip(self.fsync_rate())
                .map(|(throughput, fsync)| throughput / fsync);
            let _ = writeln!(
                out,
                "- disk-unbuffered with 16 publishers at least {UNBUFFERED_FSYNC_GOAL}× the \
                 fsync rate: {}",
                verdict(times, UNBUFFERED_FSYNC_GOAL, "×")
            );
        }
        for (index, compared) in self.scenarios.iter().enumerate() {
            let share = self
                .throughput(index, buffered)
                .zip(self.throughput(index, memory))
                .map(|(buffered, memory)| buffered / memory);
            let _ = writeln!(
                out,
                "- disk-buffered at least {:.0} % of memory mode, {} publisher(s): {}",
                BUFFERED_SHARE_GOAL * 100.0,
                compared.publishers,
                verdict(share, BUFFERED_SHARE_GOAL, "×")
            );
        }
        if baseline.is_some() {
            for (index, compared) in self.scenarios.iter().enumerate() {
                let share = self
                    .throughput(index, memory)
                    .zip(self.throughput(index, baseline))
                    .map(|(now, before)| now / before);
                let _ = writeln!(
                    out,
                    "- memory mode no slower than the build before the store (at least \
                     {MEMORY_NOT_SLOWER}×), {} publisher(s): {}",
                    compared.publishers,
                    verdict(share, MEMORY_NOT_SLOWER, "×")
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::LatencyHistogram;
    use crate::run::RunReport;
    use crate::sequence::DeliveryCounts;
    use roost::mqtt::ProtocolVersion;
    use std::time::Duration;

    fn options(baseline: Option<&str>) -> StorageOptions {
        StorageOptions {
            settings: RunSettings {
                version: ProtocolVersion::V3_1_1,
                warm_up: Duration::from_secs(1),
                duration: Duration::from_secs(3),
                rounds: 1,
            },
            publishers: vec![1, 16],
            modes: MODES.iter().map(|mode| mode.to_string()).collect(),
            roost: PathBuf::from("/build/roost"),
            baseline: baseline.map(PathBuf::from),
            earlier: None,
            earlier_modes: Vec::new(),
            mosquitto: PathBuf::from("mosquitto"),
            fsync_duration: Duration::from_secs(1),
            hooks: RoundHooks::default(),
        }
    }

    fn run(scenario: usize, broker: usize, throughput: u64) -> CompareRun {
        let mut latency = LatencyHistogram::default();
        latency.record(1_000_000);
        CompareRun {
            scenario,
            broker,
            result: Ok(RunReport {
                scenario: Scenario::Pairs,
                qos: QoS::AtLeastOnce,
                version: ProtocolVersion::V3_1_1,
                publishers: 1,
                subscribers: 1,
                payload: 64,
                rate: None,
                window: Duration::from_secs(1),
                published_in_window: throughput,
                delivered_in_window: throughput,
                latency,
                deliveries: DeliveryCounts {
                    expected: throughput,
                    unique: throughput,
                    ..DeliveryCounts::default()
                },
                foreign: 0,
                unacknowledged: 0,
                rejected: 0,
                broker_cpu: Some(1.0),
                generator_cpu: 0.0,
                probe: None,
                problems: Vec::new(),
            }),
        }
    }

    #[test]
    fn every_mode_then_the_baseline_then_mosquitto_with_persistence() {
        let options = options(Some("/work/baseline/roost-02f03d8"));
        let brokers = options.brokers();
        let labels: Vec<&str> = brokers.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "roost memory",
                "roost disk-buffered",
                "roost disk-unbuffered",
                "roost disk-fault-tolerant",
                "roost-02f03d8 (memory)",
                "mosquitto persistence true",
            ]
        );
        assert_eq!(
            brokers[2].persistence,
            Some(Persistence::Roost("disk-unbuffered".into()))
        );
        assert_eq!(brokers[4].persistence, None);
        assert_eq!(
            brokers[5].persistence,
            Some(Persistence::MosquittoSnapshots)
        );
        let scenarios = options.scenarios();
        assert!(
            scenarios
                .iter()
                .all(|s| s.persistent && s.qos == QoS::AtLeastOnce)
        );
        assert_eq!(scenarios[1].publishers, 16);
        assert_eq!(scenarios[1].subscribers, 16);
    }

    #[test]
    fn goals_are_judged_against_the_fsync_rate_memory_mode_and_the_baseline() {
        let options = options(Some("/work/baseline/roost-02f03d8"));
        // Brokers: 0 memory, 1 buffered, 2 unbuffered, 3 fault tolerant, 4 baseline, 5 mosquitto.
        let runs = vec![
            run(0, 0, 100_000),
            run(0, 1, 85_000),
            run(0, 2, 2_000),
            run(0, 4, 110_000),
            run(1, 0, 300_000),
            run(1, 1, 200_000),
            run(1, 2, 6_000),
            run(1, 4, 290_000),
        ];
        let report = StorageReport {
            brokers: options.brokers(),
            scenarios: options.scenarios(),
            options,
            runs,
            fsync: vec![FsyncRate {
                per_second: 1_000.0,
                count: 1_000,
                elapsed: Duration::from_secs(1),
                directory: PathBuf::from("/tmp"),
            }],
            machine: "2 cores (Test CPU), Linux 6.1".to_string(),
            mosquitto_version: "mosquitto version 2.0.11".to_string(),
        };
        let markdown = report.markdown();
        assert!(markdown.contains("**1000 fsyncs/s**"), "{markdown}");
        assert!(markdown.contains("autosave_interval"), "{markdown}");
        assert!(
            markdown.contains("| QoS 1, 16 pairs, persistent | roost memory | 300\u{202F}000 |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("16 publishers at least 5× the fsync rate: 6.00× — **met**"),
            "{markdown}"
        );
        assert!(
            markdown.contains("memory mode, 1 publisher(s): 0.85× — **met**"),
            "{markdown}"
        );
        assert!(
            markdown.contains("memory mode, 16 publisher(s): 0.67× — **not met**"),
            "{markdown}"
        );
        assert!(
            markdown.contains("(at least 0.95×), 1 publisher(s): 0.91× — **not met**"),
            "{markdown}"
        );
        assert!(
            markdown.contains("(at least 0.95×), 16 publisher(s): 1.03× — **met**"),
            "{markdown}"
        );
        // Mosquitto did not run: its rows say so rather than disappearing.
        assert!(
            markdown.contains("| mosquitto persistence true | failed: "),
            "{markdown}"
        );
    }

    #[test]
    fn an_earlier_build_runs_in_its_modes_and_gets_before_after_rows() {
        let mut options = options(None);
        options.modes = vec!["memory".into(), "disk-buffered".into()];
        options.earlier = Some(PathBuf::from("/work/baseline/roost-56bd830"));
        options.earlier_modes = vec!["memory".into(), "disk-buffered".into()];
        let brokers = options.brokers();
        let labels: Vec<&str> = brokers.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "roost memory",
                "roost disk-buffered",
                "roost-56bd830 memory",
                "roost-56bd830 disk-buffered",
                "mosquitto persistence true",
            ]
        );
        // Brokers: 0 memory, 1 buffered, 2 earlier memory, 3 earlier buffered.
        let runs = vec![
            run(0, 0, 100_000),
            run(0, 1, 90_000),
            run(0, 2, 100_000),
            run(0, 3, 20_000),
            run(1, 0, 400_000),
            run(1, 1, 320_000),
            run(1, 2, 400_000),
            run(1, 3, 80_000),
        ];
        let report = StorageReport {
            brokers,
            scenarios: options.scenarios(),
            options,
            runs,
            fsync: Vec::new(),
            machine: "2 cores (Test CPU), Linux 6.1".to_string(),
            mosquitto_version: "mosquitto version 2.0.11".to_string(),
        };
        let markdown = report.markdown();
        // The goals judge the measured build, not the earlier one serving the same mode.
        assert!(
            markdown.contains("memory mode, 1 publisher(s): 0.90× — **met**"),
            "{markdown}"
        );
        assert!(
            markdown.contains(
                "- disk-buffered, throughput: 1 publisher(s) 4.50×, 16 publisher(s) 4.00×"
            ),
            "{markdown}"
        );
        assert!(
            markdown.contains("- memory, throughput: 1 publisher(s) 1.00×, 16 publisher(s) 1.00×"),
            "{markdown}"
        );
        assert!(
            markdown.contains(
                "roost-56bd830's disk-buffered against its own memory mode: 1 publisher(s) \
                 0.20×, 16 publisher(s) 0.20×"
            ),
            "{markdown}"
        );
        assert!(
            markdown.contains("earlier `/work/baseline/roost-56bd830`"),
            "{markdown}"
        );
    }
}
