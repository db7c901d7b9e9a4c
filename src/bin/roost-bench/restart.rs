//! `roost-bench restart`: how long a disk-mode roost takes to come back with a large store.
//!
//! It fills a broker with N persistent sessions (3.1.1 Clean Session 0, each subscribed at
//! QoS 1 to a topic of its own, or to one of `--topics` shared ones) and M queued QoS 1
//! messages (M / N for each session, published while they are offline), stops it gracefully
//! (SIGTERM), starts it again on the same data directory, and measures the time from the
//! start until it accepts a TCP connection and until a CONNECT with Clean Session 0 gets a
//! CONNACK with Session Present (MQTT-3.2.2-2), then the broker's resident memory. Each
//! round restarts it again and probes another session, whose queued messages must all arrive.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

use super::BenchError;
use super::brokers::{
    BrokerKind, BrokerProcess, BrokerUnderTest, Listeners, MAX_INFLIGHT, Persistence,
    describe_machine,
};
use super::client::{Connection, MAX_INCOMING_PACKET, Transport};
use super::compare::{group_thousands, median};
use super::hooks::RoundHooks;
use roost::mqtt::{self, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS};

/// The goal: back within this time with 1,000,000 queued messages in 100,000 sessions.
pub const RESTART_GOAL: Duration = Duration::from_secs(5);
/// How long a restart may take before the run gives up.
const RESTART_TIMEOUT: Duration = Duration::from_secs(300);
const STOP_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct RestartOptions {
    pub roost: PathBuf,
    pub mode: String,
    pub sessions: usize,
    /// Queued messages in total, spread evenly over the sessions.
    pub messages: usize,
    /// Topics the sessions subscribe to (session i to topic i mod topics).
    pub topics: usize,
    pub payload: usize,
    /// Connections opening sessions at once.
    pub connectors: usize,
    /// Connections publishing the messages.
    pub publishers: usize,
    pub rounds: usize,
    pub hooks: RoundHooks,
}

impl RestartOptions {
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |why: &str| Err(BenchError::InvalidOptions(why.to_string()));
        if self.mode == "memory" {
            return invalid("a restart keeps nothing in memory mode: choose a disk mode");
        }
        if self.sessions == 0 || self.topics == 0 || self.topics > self.sessions {
            return invalid("need at least one session, and between 1 and --sessions topics");
        }
        if self.messages < self.sessions || !self.messages.is_multiple_of(self.sessions) {
            return invalid("--messages must be a positive multiple of --sessions");
        }
        if !self.sessions.is_multiple_of(self.topics) {
            return invalid("--sessions must be a multiple of --topics");
        }
        if self.rounds == 0 || self.rounds > self.sessions {
            return invalid("--rounds must be between 1 and --sessions");
        }
        if self.connectors == 0 || self.publishers == 0 {
            return invalid("--connectors and --publishers must be at least 1");
        }
        Ok(())
    }

    fn per_session(&self) -> usize {
        self.messages / self.sessions
    }
}

/// One restart.
#[derive(Debug, Clone)]
pub struct RestartRound {
    /// SIGTERM until the process exited.
    pub stop: Duration,
    /// Start until a TCP connection was accepted.
    pub listening: Duration,
    /// Start until CONNACK with Session Present.
    pub session_present: Duration,
    /// Resident memory right after that CONNACK, in KiB.
    pub rss_kib: Option<u64>,
    /// Queued messages the probed session received after the restart (of M / N).
    pub delivered: usize,
}

#[derive(Debug, Clone)]
pub struct RestartReport {
    pub options: RestartOptions,
    pub fill_sessions: Duration,
    pub fill_messages: Duration,
    pub store_bytes: u64,
    pub rss_before_kib: Option<u64>,
    pub rounds: Vec<RestartRound>,
    pub machine: String,
}

pub async fn measure_restart(options: &RestartOptions) -> Result<RestartReport, BenchError> {
    options.validate()?;
    let broker = BrokerUnderTest {
        label: format!("roost {}", options.mode),
        kind: BrokerKind::Roost,
        program: options.roost.clone(),
        persistence: Some(Persistence::Roost(options.mode.clone())),
    };
    let mut process = BrokerProcess::start(&broker, &Listeners::default())?;
    let address = process.address;

    let started = Instant::now();
    open_sessions(address, options).await?;
    let fill_sessions = started.elapsed();
    eprintln!(
        "{} sessions opened in {:.1} s",
        options.sessions,
        fill_sessions.as_secs_f64()
    );
    let started = Instant::now();
    publish_queued(address, options).await?;
    let fill_messages = started.elapsed();
    eprintln!(
        "{} messages queued in {:.1} s",
        options.messages,
        fill_messages.as_secs_f64()
    );
    process.check_alive()?;
    let rss_before_kib = resident_kib(process.child.id());

    let mut rounds = Vec::new();
    for round in 0..options.rounds {
        options.hooks.before_round(round).await?;
        let result = restart_once(&mut process, options, round).await;
        options.hooks.after_round().await?;
        let measured = result?;
        eprintln!(
            "round {}: stopped in {:.2} s; listening after {:.3} s, session present after \
             {:.3} s, {} KiB resident, {}/{} queued messages delivered",
            round + 1,
            measured.stop.as_secs_f64(),
            measured.listening.as_secs_f64(),
            measured.session_present.as_secs_f64(),
            measured.rss_kib.unwrap_or(0),
            measured.delivered,
            options.per_session()
        );
        rounds.push(measured);
    }
    let store_bytes = directory_bytes(&process.data_dir());
    Ok(RestartReport {
        options: options.clone(),
        fill_sessions,
        fill_messages,
        store_bytes,
        rss_before_kib,
        rounds,
        machine: describe_machine(),
    })
}

fn session_id(index: usize) -> String {
    format!("restart-{index}")
}

fn topic(index: usize) -> String {
    format!("restart/{index}")
}

/// Opens every session with `connectors` connections at a time: CONNECT with Clean Session
/// 0, SUBSCRIBE at QoS 1, DISCONNECT.
async fn open_sessions(address: SocketAddr, options: &RestartOptions) -> Result<(), BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..options.connectors {
        let next = Arc::clone(&next);
        let (sessions, topics) = (options.sessions, options.topics);
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= sessions {
                    return Ok::<(), BenchError>(());
                }
                let mut connection = Connection::open_session(
                    address,
                    &Transport::tcp(),
                    ProtocolVersion::V3_1_1,
                    session_id(index),
                    true,
                )
                .await?;
                connection
                    .subscribe(&topic(index % topics), QoS::AtLeastOnce)
                    .await?;
                connection.disconnect().await?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| BenchError::Task(e.to_string()))??;
    }
    Ok(())
}

/// Publishes M / N QoS 1 messages to every topic's sessions, from `publishers` connections
/// each keeping up to [`MAX_INFLIGHT`] unacknowledged.
async fn publish_queued(address: SocketAddr, options: &RestartOptions) -> Result<(), BenchError> {
    let payload = Bytes::from(vec![b'q'; options.payload]);
    let mut tasks = Vec::new();
    for publisher in 0..options.publishers {
        let topics: Vec<usize> = (publisher..options.topics)
            .step_by(options.publishers)
            .collect();
        let (per_topic, payload) = (options.per_session(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let connection = Connection::open(
                address,
                &Transport::tcp(),
                ProtocolVersion::V3_1_1,
                format!("restart-publisher-{publisher}"),
            )
            .await?;
            publish_pipelined(connection, &topics, per_topic, payload).await
        }));
    }
    for task in tasks {
        task.await.map_err(|e| BenchError::Task(e.to_string()))??;
    }
    Ok(())
}

async fn publish_pipelined(
    mut connection: Connection,
    topics: &[usize],
    per_topic: usize,
    payload: Bytes,
) -> Result<(), BenchError> {
    let window = usize::from(MAX_INFLIGHT).min(usize::from(connection.broker_receive_maximum));
    let mut messages = topics
        .iter()
        .flat_map(|&index| std::iter::repeat_n(index, per_topic));
    let mut inflight = 0usize;
    let mut sent = 0u64;
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut exhausted = false;
    loop {
        out.clear();
        while inflight < window && !exhausted {
            let Some(index) = messages.next() else {
                exhausted = true;
                break;
            };
            // Identifiers cycle through 1..=65535; only `window` of them are in flight.
            let packet_id = (sent % u64::from(u16::MAX)) as u16 + 1;
            sent += 1;
            let publish = Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: Arc::from(topic(index)),
                packet_id: Some(packet_id),
                properties: Properties::default(),
                payload: payload.clone(),
            };
            mqtt::encode(
                &Packet::Publish(publish),
                connection.version,
                u32::MAX,
                &mut out,
            )?;
            inflight += 1;
        }
        if !out.is_empty() {
            connection
                .writer
                .write_all(&out)
                .await
                .map_err(|source| BenchError::io("write", source))?;
        }
        if inflight == 0 {
            break;
        }
        // One acknowledgement (waiting for it), then every one already read.
        let mut packet = Some(connection.receive().await?);
        while let Some(received) = packet {
            if let Packet::PubAck(ack) = received {
                if ack.reason.is_error() {
                    return Err(BenchError::Refused {
                        client_id: connection.client_id.clone(),
                        what: "a QoS 1 PUBLISH",
                        reason: format!("{:?}", ack.reason),
                    });
                }
                inflight -= 1;
            }
            packet = mqtt::decode(
                &mut connection.read_buf,
                Some(connection.version),
                MAX_INCOMING_PACKET,
            )?;
        }
    }
    connection.disconnect().await
}

/// Stops the broker, starts it again, and measures until the probed session is back.
async fn restart_once(
    process: &mut BrokerProcess,
    options: &RestartOptions,
    round: usize,
) -> Result<RestartRound, BenchError> {
    let stop = process.stop_gracefully(STOP_TIMEOUT)?;
    let started = Instant::now();
    process.start_again()?;
    let address = process.address;
    let listening = loop {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            break started.elapsed();
        }
        process.check_alive()?;
        if started.elapsed() > RESTART_TIMEOUT {
            return Err(BenchError::BrokerNotReady {
                broker: process.broker.label.clone(),
                address,
                seconds: RESTART_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    // A session not probed before: the last ones, one per round.
    let probe = session_id(options.sessions - 1 - round);
    let mut connection = Connection::open_session(
        address,
        &Transport::tcp(),
        ProtocolVersion::V3_1_1,
        probe.clone(),
        true,
    )
    .await?;
    let session_present = started.elapsed();
    let rss_kib = resident_kib(process.child.id());
    if !connection.session_present {
        return Err(BenchError::Refused {
            client_id: probe,
            what: "the session (CONNACK without Session Present after the restart)",
            reason: "the store did not bring it back".to_string(),
        });
    }
    let delivered = receive_queued(&mut connection, options.per_session()).await?;
    Ok(RestartRound {
        stop,
        listening,
        session_present,
        rss_kib,
        delivered,
    })
}

/// Receives and acknowledges the probed session's queued messages until all `expected` have
/// arrived or none comes for the setup timeout.
async fn receive_queued(connection: &mut Connection, expected: usize) -> Result<usize, BenchError> {
    let mut delivered = 0;
    while delivered < expected {
        match connection.receive().await {
            Ok(Packet::Publish(publish)) => {
                delivered += 1;
                if let Some(id) = publish.packet_id {
                    connection
                        .send(&Packet::PubAck(PubResponse::success(id)))
                        .await?;
                }
            }
            Ok(_) => {}
            Err(BenchError::Timeout(_)) => break,
            Err(other) => return Err(other),
        }
    }
    Ok(delivered)
}

/// `VmRSS` of a process, in KiB.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The size of the files under `path`, recursively (0 for what cannot be read).
fn directory_bytes(path: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(metadata) if metadata.is_dir() => pending.push(entry.path()),
                Ok(metadata) => total += metadata.len(),
                Err(_) => {}
            }
        }
    }
    total
}

impl RestartReport {
    pub fn markdown(&self) -> String {
        let options = &self.options;
        let mut out = String::new();
        let seconds = |values: Vec<f64>| median(values).map_or("-".into(), |s| format!("{s:.2} s"));
        let session_present = median(
            self.rounds
                .iter()
                .map(|r| r.session_present.as_secs_f64())
                .collect(),
        );
        let _ = writeln!(
            out,
            "Machine: {}. roost `{}` in `{}` mode. {} persistent sessions (MQTT 3.1.1, Clean \
             Session 0, each subscribed at QoS 1 to one of {} topics), {} queued QoS 1 \
             messages ({} per session, {}-byte payloads), filled in {:.1} s (sessions) and \
             {:.1} s (messages); store on disk {:.0} MB, broker resident memory before the stop \
             {}. {} restart(s), medians:\n",
            self.machine,
            options.roost.display(),
            options.mode,
            group_thousands(options.sessions as f64),
            group_thousands(options.topics as f64),
            group_thousands(options.messages as f64),
            options.per_session(),
            options.payload,
            self.fill_sessions.as_secs_f64(),
            self.fill_messages.as_secs_f64(),
            self.store_bytes as f64 / 1e6,
            kib(self.rss_before_kib),
            self.rounds.len(),
        );
        out.push_str(
            "| graceful stop | start → TCP accepted | start → CONNACK session present | \
             resident memory after | queued messages received |\n",
        );
        out.push_str("|---:|---:|---:|---:|---:|\n");
        let rss = median(
            self.rounds
                .iter()
                .filter_map(|r| r.rss_kib.map(|k| k as f64))
                .collect(),
        );
        let delivered: Vec<String> = self
            .rounds
            .iter()
            .map(|r| format!("{}/{}", r.delivered, options.per_session()))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            seconds(self.rounds.iter().map(|r| r.stop.as_secs_f64()).collect()),
            seconds(
                self.rounds
                    .iter()
                    .map(|r| r.listening.as_secs_f64())
                    .collect()
            ),
            session_present.map_or("-".into(), |s| format!("{s:.2} s")),
            kib(rss.map(|k| k as u64)),
            delivered.join(", "),
        );
        let each: Vec<String> = self
            .rounds
            .iter()
            .map(|r| format!("{:.2} s", r.session_present.as_secs_f64()))
            .collect();
        let _ = writeln!(
            out,
            "\nEach restart (to session present): {}.",
            each.join(", ")
        );
        let full = options.sessions >= 100_000 && options.messages >= 1_000_000;
        let verdict = match session_present {
            Some(s) if !full => format!(
                "{s:.2} s with {} sessions and {} messages — **not measured at the goal's size**",
                group_thousands(options.sessions as f64),
                group_thousands(options.messages as f64)
            ),
            Some(s) if s < RESTART_GOAL.as_secs_f64() => format!("{s:.2} s — **met**"),
            Some(s) => format!("{s:.2} s — **not met**"),
            None => "not measured".to_string(),
        };
        let _ = writeln!(
            out,
            "\nGoal (issue 7): restart with 1,000,000 queued messages and 100,000 sessions under \
             {} s: {verdict}",
            RESTART_GOAL.as_secs()
        );
        out
    }
}

fn kib(value: Option<u64>) -> String {
    value.map_or("-".into(), |kib| format!("{:.0} MB", kib as f64 / 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> RestartOptions {
        RestartOptions {
            roost: PathBuf::from("/build/roost"),
            mode: "disk-buffered".to_string(),
            sessions: 100_000,
            messages: 1_000_000,
            topics: 100_000,
            payload: 64,
            connectors: 32,
            publishers: 4,
            rounds: 3,
            hooks: RoundHooks::default(),
        }
    }

    #[test]
    fn options_must_spread_evenly_and_keep_something() {
        assert!(options().validate().is_ok());
        assert_eq!(options().per_session(), 10);
        let bad = [
            RestartOptions {
                mode: "memory".into(),
                ..options()
            },
            RestartOptions {
                messages: 1_000_001,
                ..options()
            },
            RestartOptions {
                topics: 30_000,
                ..options()
            },
            RestartOptions {
                rounds: 0,
                ..options()
            },
        ];
        for options in bad {
            assert!(options.validate().is_err(), "{options:?}");
        }
    }

    fn report(sessions: usize, messages: usize, seconds: [f64; 3]) -> RestartReport {
        RestartReport {
            options: RestartOptions {
                sessions,
                messages,
                topics: sessions,
                ..options()
            },
            fill_sessions: Duration::from_secs(20),
            fill_messages: Duration::from_secs(30),
            store_bytes: 150_000_000,
            rss_before_kib: Some(512_000),
            rounds: seconds
                .iter()
                .map(|&s| RestartRound {
                    stop: Duration::from_millis(300),
                    listening: Duration::from_secs_f64(s),
                    session_present: Duration::from_secs_f64(s),
                    rss_kib: Some(400 * 1024),
                    delivered: messages / sessions,
                })
                .collect(),
            machine: "2 cores (Test CPU), Linux 6.1".to_string(),
        }
    }

    #[test]
    fn the_goal_is_judged_on_the_median_and_only_at_its_size() {
        let markdown = report(100_000, 1_000_000, [3.0, 2.0, 9.0]).markdown();
        assert!(markdown.contains("| 0.30 s | 3.00 s | 3.00 s | 400 MB | 10/10, 10/10, 10/10 |"));
        assert!(
            markdown.contains("under 5 s: 3.00 s — **met**"),
            "{markdown}"
        );
        let slow = report(100_000, 1_000_000, [6.0, 7.0, 5.5]).markdown();
        assert!(slow.contains("6.00 s — **not met**"), "{slow}");
        let small = report(10_000, 100_000, [1.0, 1.0, 1.0]).markdown();
        assert!(small.contains("not measured at the goal's size"), "{small}");
    }
}
