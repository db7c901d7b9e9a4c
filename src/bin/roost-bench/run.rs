//! `roost-bench run`: one scenario against one broker, from connect to report.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::BenchError;
use super::client::{Connection, PublishTemplate, Transport};
use super::histogram::LatencyHistogram;
use super::probe::{Probe, ProbeLatencies};
use super::procstat::CpuClock;
use super::publisher::{PublisherOutcome, PublisherPlan, run_publisher};
use super::schedule::{Schedule, StopRule};
use super::sequence::DeliveryCounts;
use super::stamp::STAMP_LEN;
use super::subscriber::{SubscriberOutcome, SubscriberPlan, run_subscriber};
use roost::mqtt::{ProtocolVersion, QoS};

/// How long the runner waits for the last deliveries after the publishers stopped.
const DRAIN_MAX: Duration = Duration::from_secs(10);
/// ... and gives up earlier when nothing has arrived for this long.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// Who publishes to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// Many publishers, one topic, (usually) one subscriber.
    FanIn,
    /// One publisher, one topic, many subscribers.
    FanOut,
    /// Publisher i publishes to topic i, which only subscriber i subscribes to.
    Pairs,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::FanIn => "fan-in",
            Scenario::FanOut => "fan-out",
            Scenario::Pairs => "pairs",
        }
    }

    pub fn from_name(name: &str) -> Option<Scenario> {
        match name {
            "fan-in" => Some(Scenario::FanIn),
            "fan-out" => Some(Scenario::FanOut),
            "pairs" => Some(Scenario::Pairs),
            _ => None,
        }
    }

    /// Whether subscriber `subscriber` receives what publisher `publisher` sends.
    pub fn delivers(self, publisher: usize, subscriber: usize) -> bool {
        match self {
            Scenario::FanIn | Scenario::FanOut => true,
            Scenario::Pairs => publisher == subscriber,
        }
    }
}

/// Everything one run needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub address: SocketAddr,
    pub scenario: Scenario,
    pub publishers: usize,
    pub subscribers: usize,
    pub qos: QoS,
    pub payload: usize,
    pub version: ProtocolVersion,
    pub warm_up: Duration,
    /// Length of the measurement window, unless `count` is given.
    pub duration: Duration,
    /// Messages to publish in total after the warm-up, instead of a duration.
    pub count: Option<u64>,
    /// Total messages per second over all publishers; `None` is flat out.
    pub rate: Option<f64>,
    /// Most QoS 1/2 messages each publisher keeps unacknowledged.
    pub inflight: usize,
    pub broker_pid: Option<u32>,
    /// Subscribers keep persistent sessions, so that messages go through the store.
    pub persistent: bool,
    /// TCP, TLS, WebSockets or both.
    pub transport: Transport,
    /// Other clients doing QoS 1 round trips (clean sessions) alone for the warm-up's
    /// length, then during the measurement window ([`super::probe`]); 0 for none.
    pub pingers: usize,
}

impl RunOptions {
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |why: String| Err(BenchError::InvalidOptions(why));
        if self.publishers == 0 || self.subscribers == 0 {
            return invalid("a run needs at least one publisher and one subscriber".into());
        }
        if self.scenario == Scenario::Pairs && self.publishers != self.subscribers {
            return invalid(format!(
                "pairs needs as many subscribers as publishers ({} and {})",
                self.publishers, self.subscribers
            ));
        }
        if self.payload < STAMP_LEN {
            return invalid(format!(
                "the payload must hold the {STAMP_LEN}-byte stamp (sequence number and send time)"
            ));
        }
        if self
            .rate
            .is_some_and(|rate| !(rate > 0.0 && rate.is_finite()))
        {
            return invalid("the rate must be a positive number of messages per second".into());
        }
        if self.count == Some(0) || (self.count.is_none() && self.duration.is_zero()) {
            return invalid("the run needs a duration or a message count above zero".into());
        }
        if self.inflight == 0 || self.inflight > usize::from(u16::MAX) {
            return invalid("the inflight window must be between 1 and 65535".into());
        }
        Ok(())
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub scenario: Scenario,
    pub qos: QoS,
    pub version: ProtocolVersion,
    pub publishers: usize,
    pub subscribers: usize,
    pub payload: usize,
    pub rate: Option<f64>,
    /// Length of the measurement window (warm-up end to the last publisher stopping).
    pub window: Duration,
    pub published_in_window: u64,
    pub delivered_in_window: u64,
    pub latency: LatencyHistogram,
    /// Over the whole run, warm-up included.
    pub deliveries: DeliveryCounts,
    /// Deliveries without this run's stamp, or from a publisher the subscriber should not hear.
    pub foreign: u64,
    pub unacknowledged: u64,
    pub rejected: u64,
    /// Broker CPU seconds (user + system) inside the window.
    pub broker_cpu: Option<f64>,
    /// The generator's own CPU seconds inside the window.
    pub generator_cpu: f64,
    /// The other clients' round trips alone and during the window (`pingers`).
    pub probe: Option<ProbeLatencies>,
    pub problems: Vec<String>,
}

impl RunReport {
    /// Deliveries per second inside the window.
    pub fn throughput(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.delivered_in_window as f64 / secs
        } else {
            0.0
        }
    }

    /// Broker CPU seconds per million deliveries.
    pub fn cpu_per_million(&self) -> Option<f64> {
        let cpu = self.broker_cpu?;
        (self.delivered_in_window > 0)
            .then(|| cpu / (self.delivered_in_window as f64 / 1_000_000.0))
    }

    pub fn lost(&self) -> u64 {
        self.deliveries.lost()
    }
}

/// Nanoseconds as a short human reading (`850 µs`, `12.3 ms`).
pub fn format_nanos(nanos: u64) -> String {
    let value = nanos as f64;
    if value < 1_000.0 {
        format!("{nanos} ns")
    } else if value < 1_000_000.0 {
        format!("{:.0} µs", value / 1_000.0)
    } else if value < 10_000_000.0 {
        format!("{:.2} ms", value / 1_000_000.0)
    } else if value < 1_000_000_000.0 {
        format!("{:.1} ms", value / 1_000_000.0)
    } else {
        format!("{:.2} s", value / 1_000_000_000.0)
    }
}

fn format_latency(histogram: &LatencyHistogram, quantile: f64) -> String {
    histogram
        .quantile(quantile)
        .map_or_else(|| "-".to_string(), format_nanos)
}

impl RunReport {
    pub fn p50(&self) -> String {
        format_latency(&self.latency, 0.50)
    }

    pub fn p99(&self) -> String {
        format_latency(&self.latency, 0.99)
    }

    /// "fan-in 4→1, QoS 0, 64 B, flat out"
    pub fn title(&self) -> String {
        let load = match self.rate {
            Some(rate) => format!("{rate:.0} msg/s offered"),
            None => "flat out".to_string(),
        };
        format!(
            "{} {}→{}, QoS {}, {} B, MQTT {}, {}",
            self.scenario.name(),
            self.publishers,
            self.subscribers,
            self.qos as u8,
            self.payload,
            self.version,
            load
        )
    }
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.title())?;
        writeln!(
            f,
            "  window      {:.2} s: {} published, {} delivered",
            self.window.as_secs_f64(),
            self.published_in_window,
            self.delivered_in_window
        )?;
        writeln!(f, "  throughput  {:.0} msg/s delivered", self.throughput())?;
        writeln!(
            f,
            "  latency     p50 {}, p99 {}, max {}",
            self.p50(),
            self.p99(),
            format_nanos(self.latency.max())
        )?;
        writeln!(
            f,
            "  loss        {} lost of {} expected ({} duplicates, {} out of order, {} foreign)",
            self.lost(),
            self.deliveries.expected,
            self.deliveries.duplicates,
            self.deliveries.out_of_order,
            self.foreign + self.deliveries.invalid
        )?;
        if self.qos != QoS::AtMostOnce {
            writeln!(
                f,
                "  acks        {} unacknowledged at the end, {} rejected",
                self.unacknowledged, self.rejected
            )?;
        }
        match (self.broker_cpu, self.cpu_per_million()) {
            (Some(cpu), Some(per_million)) => writeln!(
                f,
                "  broker CPU  {cpu:.2} s = {per_million:.2} s per 1M delivered"
            )?,
            (Some(cpu), None) => writeln!(f, "  broker CPU  {cpu:.2} s")?,
            _ => writeln!(f, "  broker CPU  (give --broker-pid to measure)")?,
        }
        writeln!(f, "  generator   {:.2} s CPU", self.generator_cpu)?;
        if let Some((alone, during)) = &self.probe {
            for (what, histogram) in [("alone", alone), ("during", during)] {
                writeln!(
                    f,
                    "  others      QoS 1 round trips {what}: {} round trips, p50 {}, p99 {}, max {}",
                    histogram.count(),
                    format_latency(histogram, 0.50),
                    format_latency(histogram, 0.99),
                    format_nanos(histogram.max())
                )?;
            }
        }
        for problem in &self.problems {
            writeln!(f, "  problem     {problem}")?;
        }
        Ok(())
    }
}

fn new_run_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
    nanos ^ std::process::id().rotate_left(16)
}

/// Runs one scenario and reports on it.
pub async fn run(options: &RunOptions) -> Result<RunReport, BenchError> {
    options.validate()?;
    let probe = match options.pingers {
        0 => None,
        clients => {
            let probe = Probe::start(options.address, options.version, clients).await?;
            tokio::time::sleep(options.warm_up).await;
            probe.settling();
            Some(probe)
        }
    };
    let run_id = new_run_id();
    let prefix = format!("roost-bench/{run_id:08x}");
    let topic = |index: usize| match options.scenario {
        Scenario::Pairs => format!("{prefix}/pair/{index}"),
        _ => format!("{prefix}/{}", options.scenario.name()),
    };

    // Subscribers first, so nothing published is missed.
    let mut subscriber_connections = Vec::with_capacity(options.subscribers);
    for index in 0..options.subscribers {
        let client_id = format!("roost-bench-{run_id:08x}-sub-{index}");
        let mut connection = Connection::open_session(
            options.address,
            &options.transport,
            options.version,
            client_id,
            options.persistent,
        )
        .await?;
        connection.subscribe(&topic(index), options.qos).await?;
        subscriber_connections.push(connection);
    }
    let mut publisher_connections = Vec::with_capacity(options.publishers);
    for index in 0..options.publishers {
        let client_id = format!("roost-bench-{run_id:08x}-pub-{index}");
        let template =
            PublishTemplate::new(&topic(index), options.qos, options.payload, options.version)?;
        let connection = Connection::open(
            options.address,
            &options.transport,
            options.version,
            client_id,
        )
        .await?;
        publisher_connections.push((connection, template));
    }

    let broker_clock = options.broker_pid.map(CpuClock::for_pid);
    if let Some(clock) = &broker_clock {
        clock.seconds()?;
    }
    let generator_clock = CpuClock::for_self();
    let stop = match options.count {
        Some(total) => StopRule::AfterCount(total.div_ceil(options.publishers as u64)),
        None => StopRule::At((options.warm_up + options.duration).as_nanos() as u64),
    };
    let schedule = Arc::new(Schedule::new(options.warm_up, stop, options.publishers));
    let stop_subscribers = CancellationToken::new();

    let mut subscribers: Vec<(Arc<AtomicU64>, JoinHandle<SubscriberOutcome>)> = Vec::new();
    for connection in subscriber_connections {
        let received = Arc::new(AtomicU64::new(0));
        let plan = SubscriberPlan {
            run_id,
            publishers: options.publishers,
        };
        let task = tokio::spawn(run_subscriber(
            connection,
            plan,
            Arc::clone(&schedule),
            Arc::clone(&received),
            stop_subscribers.clone(),
        ));
        subscribers.push((received, task));
    }
    let mut publishers: Vec<JoinHandle<PublisherOutcome>> = Vec::new();
    for (index, (connection, template)) in publisher_connections.into_iter().enumerate() {
        let plan = PublisherPlan {
            index: index as u32,
            run_id,
            template,
            qos: options.qos,
            rate: options.rate.map(|rate| rate / options.publishers as f64),
            inflight: options.inflight,
        };
        publishers.push(tokio::spawn(run_publisher(
            connection,
            plan,
            Arc::clone(&schedule),
        )));
    }
    // Make sure the subscribers stop whatever happens from here on.
    let _stop_guard = stop_subscribers.clone().drop_guard();

    let warm_up_end = tokio::time::Instant::from_std(schedule.base() + options.warm_up);
    tokio::time::sleep_until(warm_up_end).await;
    if let Some(probe) = &probe {
        probe.load_started();
    }
    let broker_cpu_start = broker_clock.as_ref().map(CpuClock::seconds).transpose()?;
    let generator_cpu_start = generator_clock.seconds()?;
    let window_end = schedule.window_closed().await;
    let broker_cpu_end = broker_clock.as_ref().map(CpuClock::seconds).transpose()?;
    let generator_cpu_end = generator_clock.seconds()?;
    let probe = match probe {
        Some(probe) => Some(probe.finish().await?),
        None => None,
    };

    let mut publisher_outcomes = Vec::with_capacity(publishers.len());
    for task in publishers {
        publisher_outcomes.push(task.await.map_err(|e| BenchError::Task(e.to_string()))?);
    }
    let expected: u64 = (0..options.subscribers)
        .flat_map(|subscriber| {
            publisher_outcomes
                .iter()
                .enumerate()
                .filter(move |(publisher, _)| options.scenario.delivers(*publisher, subscriber))
                .map(|(_, outcome)| outcome.sent)
        })
        .sum();
    wait_for_deliveries(&subscribers, expected).await;
    stop_subscribers.cancel();
    let mut subscriber_outcomes = Vec::with_capacity(subscribers.len());
    for (_, task) in subscribers {
        subscriber_outcomes.push(task.await.map_err(|e| BenchError::Task(e.to_string()))?);
    }

    let mut report = build_report(
        options,
        Duration::from_nanos(window_end.saturating_sub(schedule.warm_up_end())),
        &publisher_outcomes,
        &subscriber_outcomes,
        broker_cpu_start
            .zip(broker_cpu_end)
            .map(|(start, end)| end - start),
        generator_cpu_end - generator_cpu_start,
    );
    report.probe = probe;
    Ok(report)
}

/// Waits until the subscribers have received `expected` deliveries, or nothing arrives for
/// [`DRAIN_QUIET`], or [`DRAIN_MAX`] has passed.
async fn wait_for_deliveries(
    subscribers: &[(Arc<AtomicU64>, JoinHandle<SubscriberOutcome>)],
    expected: u64,
) {
    let total = || -> u64 {
        subscribers
            .iter()
            .map(|(received, _)| received.load(Ordering::Relaxed))
            .sum()
    };
    let deadline = tokio::time::Instant::now() + DRAIN_MAX;
    let mut last = total();
    let mut last_progress = tokio::time::Instant::now();
    while last < expected && tokio::time::Instant::now() < deadline {
        if subscribers.iter().all(|(_, task)| task.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now_total = total();
        if now_total != last {
            last = now_total;
            last_progress = tokio::time::Instant::now();
        } else if last_progress.elapsed() >= DRAIN_QUIET {
            break;
        }
    }
}

fn build_report(
    options: &RunOptions,
    window: Duration,
    publishers: &[PublisherOutcome],
    subscribers: &[SubscriberOutcome],
    broker_cpu: Option<f64>,
    generator_cpu: f64,
) -> RunReport {
    let mut latency = LatencyHistogram::default();
    let mut deliveries = DeliveryCounts::default();
    let mut foreign = 0;
    let mut delivered_in_window = 0;
    let mut problems = Vec::new();
    for (subscriber, outcome) in subscribers.iter().enumerate() {
        latency.merge(&outcome.latency);
        delivered_in_window += outcome.delivered_in_window;
        foreign += outcome.foreign;
        for (publisher, tracker) in outcome.trackers.iter().enumerate() {
            let sent = publishers.get(publisher).map_or(0, |p| p.sent);
            if options.scenario.delivers(publisher, subscriber) {
                deliveries.add(&tracker.counts(sent));
            } else {
                foreign += tracker.counts(sent).unique;
            }
        }
        if let Some(problem) = &outcome.problem {
            problems.push(format!("subscriber {subscriber}: {problem}"));
        }
    }
    for (index, outcome) in publishers.iter().enumerate() {
        if let Some(problem) = &outcome.problem {
            problems.push(format!("publisher {index}: {problem}"));
        }
    }
    RunReport {
        scenario: options.scenario,
        qos: options.qos,
        version: options.version,
        publishers: options.publishers,
        subscribers: options.subscribers,
        payload: options.payload,
        rate: options.rate,
        window,
        published_in_window: publishers.iter().map(|p| p.sent_in_window).sum(),
        delivered_in_window,
        latency,
        deliveries,
        foreign,
        unacknowledged: publishers.iter().map(|p| p.unacknowledged).sum(),
        rejected: publishers.iter().map(|p| p.rejected).sum(),
        broker_cpu,
        generator_cpu,
        probe: None,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence::SequenceTracker;

    fn options(scenario: Scenario, publishers: usize, subscribers: usize) -> RunOptions {
        RunOptions {
            address: "127.0.0.1:1883".parse().unwrap(),
            scenario,
            publishers,
            subscribers,
            qos: QoS::AtMostOnce,
            payload: 64,
            version: ProtocolVersion::V3_1_1,
            warm_up: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            count: None,
            rate: None,
            inflight: 100,
            broker_pid: None,
            persistent: false,
            transport: Transport::tcp(),
            pingers: 0,
        }
    }

    fn tracker_with(sequences: std::ops::Range<u64>) -> SequenceTracker {
        let mut tracker = SequenceTracker::default();
        sequences.for_each(|s| tracker.record(s));
        tracker
    }

    #[test]
    fn options_are_checked() {
        assert!(options(Scenario::FanIn, 4, 1).validate().is_ok());
        assert!(options(Scenario::Pairs, 8, 7).validate().is_err());
        let mut small = options(Scenario::FanOut, 1, 8);
        small.payload = STAMP_LEN - 1;
        assert!(small.validate().is_err());
        let mut zero_rate = options(Scenario::FanIn, 1, 1);
        zero_rate.rate = Some(0.0);
        assert!(zero_rate.validate().is_err());
    }

    #[test]
    fn pairs_expect_each_publisher_only_at_its_own_subscriber() {
        assert!(Scenario::Pairs.delivers(2, 2));
        assert!(!Scenario::Pairs.delivers(1, 2));
        assert!(Scenario::FanOut.delivers(0, 7));
    }

    #[test]
    fn the_report_adds_up_loss_and_throughput() {
        let publishers = vec![
            PublisherOutcome {
                sent: 100,
                sent_in_window: 80,
                ..PublisherOutcome::default()
            },
            PublisherOutcome {
                sent: 50,
                sent_in_window: 40,
                ..PublisherOutcome::default()
            },
        ];
        let subscriber = SubscriberOutcome {
            trackers: vec![tracker_with(0..100), tracker_with(0..45)],
            delivered_in_window: 120,
            ..SubscriberOutcome::default()
        };
        let report = build_report(
            &options(Scenario::FanIn, 2, 1),
            Duration::from_secs(2),
            &publishers,
            &[subscriber],
            Some(0.6),
            0.5,
        );
        assert_eq!(report.deliveries.expected, 150);
        assert_eq!(report.lost(), 5);
        assert_eq!(report.published_in_window, 120);
        assert_eq!(report.throughput(), 60.0);
        let per_million = report.cpu_per_million().unwrap();
        assert!((per_million - 5000.0).abs() < 1e-6);
    }

    #[test]
    fn in_pairs_a_message_at_the_wrong_subscriber_is_foreign() {
        let publishers = vec![
            PublisherOutcome {
                sent: 10,
                ..PublisherOutcome::default()
            },
            PublisherOutcome {
                sent: 10,
                ..PublisherOutcome::default()
            },
        ];
        let first = SubscriberOutcome {
            trackers: vec![tracker_with(0..10), tracker_with(0..3)],
            ..SubscriberOutcome::default()
        };
        let second = SubscriberOutcome {
            trackers: vec![SequenceTracker::default(), tracker_with(0..10)],
            ..SubscriberOutcome::default()
        };
        let report = build_report(
            &options(Scenario::Pairs, 2, 2),
            Duration::from_secs(1),
            &publishers,
            &[first, second],
            None,
            0.0,
        );
        assert_eq!(report.deliveries.expected, 20);
        assert_eq!(report.lost(), 0);
        assert_eq!(report.foreign, 3);
        assert_eq!(report.cpu_per_million(), None);
    }

    #[test]
    fn nanoseconds_read_naturally() {
        assert_eq!(format_nanos(850), "850 ns");
        assert_eq!(format_nanos(85_000), "85 µs");
        assert_eq!(format_nanos(1_234_000), "1.23 ms");
        assert_eq!(format_nanos(45_600_000), "45.6 ms");
        assert_eq!(format_nanos(2_500_000_000), "2.50 s");
    }
}
