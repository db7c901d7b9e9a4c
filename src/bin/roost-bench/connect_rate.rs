//! `roost-bench connections`: how many new connections per second a broker completes.
//!
//! Each of N connectors opens a connection (TCP connect, the TLS handshake when the transport
//! has TLS, CONNECT / CONNACK), sends DISCONNECT, waits for the broker to close the socket, and
//! starts over with a new client identifier, until the warm-up and the measured window have
//! passed. Counted are the connections that completed inside the window; the broker's CPU
//! time over the window gives its cost per connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::BenchError;
use super::client::{Connection, Transport};
use super::histogram::LatencyHistogram;
use super::procstat::CpuClock;
use super::run::format_nanos;
use roost::mqtt::ProtocolVersion;

/// One connection-rate run.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub address: SocketAddr,
    pub transport: Transport,
    /// Connections in progress at once.
    pub connectors: usize,
    pub version: ProtocolVersion,
    pub warm_up: Duration,
    pub duration: Duration,
    pub broker_pid: Option<u32>,
}

/// What one connection-rate run measured.
#[derive(Debug, Clone, Default)]
pub struct ConnectReport {
    pub connectors: usize,
    pub window: Duration,
    /// Connections completed (DISCONNECT answered by the close) inside the window.
    pub completed: u64,
    /// Attempts that failed anywhere, warm-up included.
    pub failed: u64,
    pub first_failure: Option<String>,
    /// From the start of the TCP connect to the broker's close, for each completed one.
    pub latency: LatencyHistogram,
    /// Broker CPU seconds (user + system) inside the window.
    pub broker_cpu: Option<f64>,
    pub generator_cpu: f64,
}

impl ConnectReport {
    /// Completed connections per second.
    pub fn rate(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.completed as f64 / secs
        } else {
            0.0
        }
    }

    /// Broker CPU milliseconds per completed connection.
    pub fn cpu_ms_per_connection(&self) -> Option<f64> {
        let cpu = self.broker_cpu?;
        (self.completed > 0).then(|| cpu * 1_000.0 / self.completed as f64)
    }
}

impl std::fmt::Display for ConnectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quantile = |q: f64| self.latency.quantile(q).map_or("-".into(), format_nanos);
        writeln!(
            f,
            "new connections, {} connectors, {:.2} s window",
            self.connectors,
            self.window.as_secs_f64()
        )?;
        writeln!(
            f,
            "  rate        {:.0} connections/s ({} completed, {} failed)",
            self.rate(),
            self.completed,
            self.failed
        )?;
        writeln!(
            f,
            "  time        p50 {}, p99 {}, max {} (connect to close)",
            quantile(0.50),
            quantile(0.99),
            format_nanos(self.latency.max())
        )?;
        match self.cpu_ms_per_connection() {
            Some(per) => writeln!(
                f,
                "  broker CPU  {:.2} s = {per:.3} ms per connection",
                self.broker_cpu.unwrap_or_default()
            )?,
            None => writeln!(f, "  broker CPU  (give --broker-pid to measure)")?,
        }
        writeln!(f, "  generator   {:.2} s CPU", self.generator_cpu)?;
        if let Some(failure) = &self.first_failure {
            writeln!(f, "  first failure: {failure}")?;
        }
        Ok(())
    }
}

/// What one connector saw.
#[derive(Debug, Default)]
struct ConnectorOutcome {
    completed: u64,
    failed: u64,
    first_failure: Option<String>,
    latency: LatencyHistogram,
}

/// Runs the connectors for the warm-up and the window, and reports.
pub async fn run_connections(options: &ConnectOptions) -> Result<ConnectReport, BenchError> {
    if options.connectors == 0 {
        return Err(BenchError::InvalidOptions(
            "at least one connector is needed".into(),
        ));
    }
    if options.duration.is_zero() {
        return Err(BenchError::InvalidOptions(
            "the window must be longer than zero".into(),
        ));
    }
    let started = Instant::now();
    let window_start = started + options.warm_up;
    let window_end = window_start + options.duration;
    let mut connectors = Vec::with_capacity(options.connectors);
    for connector in 0..options.connectors {
        let options = options.clone();
        connectors.push(tokio::spawn(async move {
            connect_repeatedly(&options, connector, window_start, window_end).await
        }));
    }

    tokio::time::sleep_until(window_start).await;
    let broker_clock = options.broker_pid.map(CpuClock::for_pid);
    let generator_clock = CpuClock::for_self();
    let broker_before = broker_clock.as_ref().map(CpuClock::seconds).transpose()?;
    let generator_before = generator_clock.seconds()?;
    tokio::time::sleep_until(window_end).await;
    let broker_after = broker_clock.as_ref().map(CpuClock::seconds).transpose()?;
    let generator_after = generator_clock.seconds()?;

    let mut report = ConnectReport {
        connectors: options.connectors,
        window: options.duration,
        broker_cpu: broker_before
            .zip(broker_after)
            .map(|(before, after)| after - before),
        generator_cpu: generator_after - generator_before,
        ..ConnectReport::default()
    };
    for connector in connectors {
        let outcome = connector
            .await
            .map_err(|error| BenchError::Task(error.to_string()))?;
        report.completed += outcome.completed;
        report.failed += outcome.failed;
        report.latency.merge(&outcome.latency);
        if report.first_failure.is_none() {
            report.first_failure = outcome.first_failure;
        }
    }
    Ok(report)
}

async fn connect_repeatedly(
    options: &ConnectOptions,
    connector: usize,
    window_start: Instant,
    window_end: Instant,
) -> ConnectorOutcome {
    let mut outcome = ConnectorOutcome::default();
    for attempt in 0u64.. {
        let began = Instant::now();
        if began >= window_end {
            break;
        }
        let client_id = format!("roost-bench-conn-{connector}-{attempt}");
        let result = async {
            Connection::open(
                options.address,
                &options.transport,
                options.version,
                client_id,
            )
            .await?
            .disconnect()
            .await
        }
        .await;
        let ended = Instant::now();
        match result {
            Ok(()) if ended >= window_start && ended <= window_end => {
                outcome.completed += 1;
                outcome
                    .latency
                    .record((ended - began).as_nanos().min(u128::from(u64::MAX)) as u64);
            }
            Ok(()) => {}
            Err(error) => {
                outcome.failed += 1;
                outcome
                    .first_failure
                    .get_or_insert_with(|| error.to_string());
                // A broker that refuses outright must not be hammered in a tight loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    outcome
}
