//! `roost-bench bad-logins`: CONNECTs with a wrong password at a steady rate, and meanwhile
//! other clients' QoS 1 round trips, whose latency shows whether password checks (argon2id,
//! deliberately slow) stay off the broker's runtime thread (issue 8).
//!
//! Run it against a broker that has a user named `--username` (so that every attempt costs a
//! real hash check) and lets the round-trip clients in anonymously, for example `roost serve`
//! with one user and credentials not required. Phases: round trips alone for `--warm-up`
//! seconds ("before"), then round trips during `--duration` seconds of bad CONNECTs
//! ("during").

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::BenchError;
use super::histogram::LatencyHistogram;
use super::probe::Probe;
use super::run::format_nanos;
use roost::mqtt::{self, Connect, Packet, Properties, ProtocolVersion};

/// How long an attempt waits for its refusal: the broker slows repeated failures from one
/// address down, by up to 10 s.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct BadLoginOptions {
    pub address: SocketAddr,
    /// Bad CONNECTs per second.
    pub rate: f64,
    pub duration: Duration,
    pub warm_up: Duration,
    pub pingers: usize,
    pub username: String,
    pub version: ProtocolVersion,
}

#[derive(Debug, Default)]
pub struct BadLoginReport {
    pub attempts: u64,
    pub refused: u64,
    pub accepted: u64,
    pub unanswered: u64,
    pub pingers: usize,
    pub before: LatencyHistogram,
    pub during: LatencyHistogram,
}

impl std::fmt::Display for BadLoginReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "bad CONNECTs: {} sent, {} refused, {} accepted, {} unanswered",
            self.attempts, self.refused, self.accepted, self.unanswered
        )?;
        for (what, histogram) in [("before", &self.before), ("during", &self.during)] {
            writeln!(
                f,
                "QoS 1 round trips of {} other clients {what} the bad CONNECTs: {} round trips, p50 {}, p99 {}, max {}",
                self.pingers,
                histogram.count(),
                histogram.quantile(0.5).map_or("-".into(), format_nanos),
                histogram.quantile(0.99).map_or("-".into(), format_nanos),
                format_nanos(histogram.max()),
            )?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Outcomes {
    refused: AtomicU64,
    accepted: AtomicU64,
    unanswered: AtomicU64,
}

pub async fn run_bad_logins(options: &BadLoginOptions) -> Result<BadLoginReport, BenchError> {
    if !options.rate.is_finite() || options.rate <= 0.0 {
        return Err(BenchError::InvalidOptions("--rate must be positive".into()));
    }
    let probe = Probe::start(options.address, options.version, options.pingers).await?;
    tokio::time::sleep(options.warm_up).await;
    probe.load_started();

    let outcomes = Arc::new(Outcomes::default());
    let interval = Duration::from_secs_f64(1.0 / options.rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut attempts = 0u64;
    let mut tasks = Vec::new();
    while started.elapsed() < options.duration {
        ticker.tick().await;
        attempts += 1;
        tasks.push(tokio::spawn(attempt(
            options.address,
            options.version,
            options.username.clone(),
            attempts,
            outcomes.clone(),
        )));
    }
    let (before, during) = probe.finish().await?;
    for task in tasks {
        let _ = task.await;
    }
    Ok(BadLoginReport {
        attempts,
        refused: outcomes.refused.load(Ordering::Relaxed),
        accepted: outcomes.accepted.load(Ordering::Relaxed),
        unanswered: outcomes.unanswered.load(Ordering::Relaxed),
        pingers: options.pingers,
        before,
        during,
    })
}

/// One CONNECT with a wrong password; records how the broker answered.
async fn attempt(
    address: SocketAddr,
    version: ProtocolVersion,
    username: String,
    number: u64,
    outcomes: Arc<Outcomes>,
) {
    let answer = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        let connect = Connect {
            protocol: version,
            clean_start: true,
            keep_alive: 30,
            properties: Properties::default(),
            client_id: format!("bad-login-{number}"),
            will: None,
            username: Some(username),
            password: Some(Bytes::from(format!("wrong-{number}"))),
        };
        let mut out = BytesMut::new();
        mqtt::encode(
            &Packet::Connect(Box::new(connect)),
            version,
            u32::MAX,
            &mut out,
        )
        .ok()?;
        stream.write_all(&out).await.ok()?;
        let mut buffer = BytesMut::new();
        loop {
            if let Ok(Some(Packet::ConnAck(connack))) =
                mqtt::decode(&mut buffer, Some(version), u32::MAX)
            {
                return Some(!connack.reason.is_error());
            }
            if stream.read_buf(&mut buffer).await.ok()? == 0 {
                return None;
            }
        }
    })
    .await;
    let counter = match answer {
        Ok(Some(true)) => &outcomes.accepted,
        Ok(Some(false)) => &outcomes.refused,
        _ => &outcomes.unanswered,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}
