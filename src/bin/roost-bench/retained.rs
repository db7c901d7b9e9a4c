//! `roost-bench retained`: many retained messages, subscribers whose wildcard filters (no
//! `#`) match large parts of them, and meanwhile other clients' QoS 1 round trips, whose
//! latency shows whether the broker stays responsive while it hands out the retained
//! messages (issue 6, defect 6).
//!
//! Phases: one client stores the retained messages on `r/{i / 1000}/{i % 1000}`; four (by
//! default) clients start QoS 1 round trips on their own topics, matched by no filter; the
//! subscribers subscribe all at once and read until each has every message its filter
//! matches. The report gives the round trips' percentiles during the subscribes and the time
//! each subscriber took.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use super::BenchError;
use super::client::{Connection, MAX_INCOMING_PACKET, Transport, write_or_give_up};
use super::histogram::LatencyHistogram;
use super::run::format_nanos;
use roost::broker::filter_matches;
use roost::mqtt::{self, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS};

/// How long a client may receive nothing before the run is given up.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// A subscriber that receives nothing for this long is done, with what it has (a broker
/// that dropped some of the retained messages never sends them).
const SUBSCRIBER_SILENCE: Duration = Duration::from_secs(10);
/// QoS 1 retained messages the storing client keeps unacknowledged at most.
const STORE_WINDOW: usize = 1000;

#[derive(Debug, Clone)]
pub struct RetainedOptions {
    pub address: SocketAddr,
    pub retained: usize,
    /// One subscriber per filter, cycling through them.
    pub subscribers: usize,
    pub filters: Vec<String>,
    /// Clients doing QoS 1 round trips meanwhile.
    pub pingers: usize,
    /// QoS of the retained messages and of the subscriptions.
    pub qos: QoS,
    pub payload: usize,
    pub version: ProtocolVersion,
}

fn topic(i: usize) -> String {
    format!("r/{}/{}", i / 1000, i % 1000)
}

fn io_error(context: &'static str) -> impl Fn(std::io::Error) -> BenchError {
    move |source| BenchError::Io { context, source }
}

/// What one subscriber got.
#[derive(Debug, Clone)]
pub struct SubscriberResult {
    pub filter: String,
    /// Retained messages its filter matches.
    pub expected: usize,
    pub received: usize,
    /// From SUBSCRIBE to the last retained message.
    pub took: Duration,
}

#[derive(Debug, Clone)]
pub struct RetainedReport {
    pub retained: usize,
    pub stored_in: Duration,
    pub subscribers: Vec<SubscriberResult>,
    pub pingers: usize,
    /// Round trips of the other clients before the subscribes.
    pub before: LatencyHistogram,
    /// Round trips started between the subscribes and the last retained message received.
    pub during: LatencyHistogram,
}

impl std::fmt::Display for RetainedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "stored {} retained messages in {:.1} s",
            self.retained,
            self.stored_in.as_secs_f64()
        )?;
        for s in &self.subscribers {
            write!(
                f,
                "subscriber {}: {} of {} retained messages in {:.2} s ({:.0} msg/s)",
                s.filter,
                s.received,
                s.expected,
                s.took.as_secs_f64(),
                s.received as f64 / s.took.as_secs_f64().max(1e-9),
            )?;
            if s.received < s.expected {
                write!(f, ", then nothing for {} s", SUBSCRIBER_SILENCE.as_secs())?;
            }
            writeln!(f)?;
        }
        for (what, histogram) in [("before", &self.before), ("during", &self.during)] {
            writeln!(
                f,
                "QoS 1 round trips of {} other clients {what} the subscribes: {} round trips, p50 {}, p99 {}, max {}",
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

/// Runs the scenario.
pub async fn run_retained(options: &RetainedOptions) -> Result<RetainedReport, BenchError> {
    if options.filters.is_empty() || options.subscribers == 0 {
        return Err(BenchError::InvalidOptions(
            "at least one subscriber and one filter".into(),
        ));
    }
    if options.filters.iter().any(|f| f.contains('#')) {
        return Err(BenchError::InvalidOptions(
            "the filters of this scenario have no `#`".into(),
        ));
    }
    let started = Instant::now();
    store(options).await?;
    let stored_in = started.elapsed();

    // The subscribers connect first, so that the subscribes are all that happens later.
    let mut subscribers = Vec::new();
    for s in 0..options.subscribers {
        let filter = options.filters[s % options.filters.len()].clone();
        let expected = (0..options.retained)
            .filter(|&i| filter_matches(&filter, &topic(i)))
            .count();
        let connection = Connection::open(
            options.address,
            &Transport::tcp(),
            options.version,
            format!("rsub-{s}"),
        )
        .await?;
        subscribers.push((connection, filter, expected));
    }
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (connected, pingers_ready) = tokio::sync::oneshot::channel();
    let pingers = {
        let (options, recording, stop) = (options.clone(), recording.clone(), stop.clone());
        std::thread::spawn(move || pingers_thread(&options, recording, stop, connected))
    };
    if pingers_ready.await.is_err() {
        join_pingers(pingers).await?;
        return Err(BenchError::Task(
            "the round-trip clients did not start".into(),
        ));
    }
    // Round trips before the subscribes, for comparison.
    tokio::time::sleep(Duration::from_millis(500)).await;
    recording.store(true, Ordering::Relaxed);
    let subscribe_start = Instant::now();
    let mut tasks = Vec::new();
    for (connection, filter, expected) in subscribers {
        let qos = options.qos;
        tasks.push(tokio::spawn(async move {
            let (received, took) = consume(connection, &filter, qos, expected).await?;
            Ok::<_, BenchError>(SubscriberResult {
                filter,
                expected,
                received,
                took,
            })
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.map_err(|e| BenchError::Task(e.to_string()))??);
    }
    stop.store(true, Ordering::Relaxed);
    let (before, samples) = join_pingers(pingers).await?;
    // "During" ends with the last retained message any subscriber received (not with the
    // silence that ends a subscriber a broker dropped messages for).
    let end = subscribe_start + results.iter().map(|s| s.took).max().unwrap_or_default();
    let mut during = LatencyHistogram::default();
    for (started, nanos) in samples {
        if started <= end {
            during.record(nanos);
        }
    }
    Ok(RetainedReport {
        retained: options.retained,
        stored_in,
        subscribers: results,
        pingers: options.pingers,
        before,
        during,
    })
}

/// Publishes the retained messages; returns once the broker has taken all of them (a QoS 1
/// round trip after the last QoS 0 one, or the last PUBACK).
async fn store(options: &RetainedOptions) -> Result<(), BenchError> {
    let mut connection = Connection::open(
        options.address,
        &Transport::tcp(),
        options.version,
        "rstore".into(),
    )
    .await?;
    let payload = Bytes::from(vec![b'x'; options.payload]);
    let window = STORE_WINDOW.min(usize::from(connection.broker_receive_maximum).max(1));
    let mut out = BytesMut::new();
    let mut i = 0;
    while i < options.retained {
        out.clear();
        let batch = (options.retained - i).min(window);
        for j in 0..batch {
            let qos = options.qos.min(QoS::AtLeastOnce);
            let publish = Publish {
                dup: false,
                qos,
                retain: true,
                topic: Arc::from(topic(i + j)),
                packet_id: (qos != QoS::AtMostOnce).then_some(j as u16 + 1),
                properties: Properties::default(),
                payload: payload.clone(),
            };
            mqtt::encode(
                &Packet::Publish(publish),
                options.version,
                u32::MAX,
                &mut out,
            )?;
        }
        write_or_give_up(&mut connection.writer, &out)
            .await
            .map_err(|e| BenchError::Task(e.to_string()))?;
        if options.qos != QoS::AtMostOnce {
            wait_acks(&mut connection, batch).await?;
        }
        i += batch;
    }
    // QoS 0: a QoS 1 round trip on the same connection comes after all of them.
    round_trip(&mut connection, "rstore/barrier", 1).await?;
    Ok(())
}

async fn wait_acks(connection: &mut Connection, mut count: usize) -> Result<(), BenchError> {
    while count > 0 {
        if let Packet::PubAck(_) = next_packet(connection).await? {
            count -= 1;
        }
    }
    Ok(())
}

async fn next_packet(connection: &mut Connection) -> Result<Packet, BenchError> {
    loop {
        if let Some(packet) = mqtt::decode(
            &mut connection.read_buf,
            Some(connection.version),
            MAX_INCOMING_PACKET,
        )? {
            return Ok(packet);
        }
        let read = connection.reader.read_buf(&mut connection.read_buf);
        match tokio::time::timeout(SILENCE_LIMIT, read).await {
            Err(_) => return Err(BenchError::Timeout("a packet from the broker")),
            Ok(Err(source)) => return Err(io_error("read")(source)),
            Ok(Ok(0)) => {
                return Err(BenchError::Closed {
                    client_id: connection.client_id.clone(),
                });
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// One QoS 1 PUBLISH and its PUBACK; returns how long it took.
pub(super) async fn round_trip(
    connection: &mut Connection,
    topic: &str,
    packet_id: u16,
) -> Result<Duration, BenchError> {
    let publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: Arc::from(topic),
        packet_id: Some(packet_id),
        properties: Properties::default(),
        payload: Bytes::from_static(b"ping"),
    };
    let mut out = BytesMut::new();
    mqtt::encode(
        &Packet::Publish(publish),
        connection.version,
        u32::MAX,
        &mut out,
    )?;
    let started = Instant::now();
    write_or_give_up(&mut connection.writer, &out)
        .await
        .map_err(BenchError::Task)?;
    loop {
        if let Packet::PubAck(ack) = next_packet(connection).await?
            && ack.packet_id == packet_id
        {
            return Ok(started.elapsed());
        }
    }
}

/// Round trips before the subscribes, and each one's start and latency after.
type Latencies = (LatencyHistogram, Vec<(Instant, u64)>);

/// The round-trip clients run on a thread of their own, so that the subscribers' work in
/// this process cannot delay them: what they measure is the broker.
fn pingers_thread(
    options: &RetainedOptions,
    recording: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    connected: tokio::sync::oneshot::Sender<()>,
) -> Result<Latencies, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_error("cannot start the round-trip clients' runtime"))?;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for p in 0..options.pingers {
            let connection = Connection::open(
                options.address,
                &Transport::tcp(),
                options.version,
                format!("rping-{p}"),
            )
            .await?;
            tasks.push(tokio::spawn(ping(
                connection,
                p,
                recording.clone(),
                stop.clone(),
            )));
        }
        let _ = connected.send(());
        let (mut before, mut during) = (LatencyHistogram::default(), Vec::new());
        for task in tasks {
            let (b, d) = task.await.map_err(|e| BenchError::Task(e.to_string()))??;
            before.merge(&b);
            during.extend(d);
        }
        Ok((before, during))
    })
}

async fn join_pingers(
    pingers: std::thread::JoinHandle<Result<Latencies, BenchError>>,
) -> Result<Latencies, BenchError> {
    tokio::task::spawn_blocking(move || pingers.join())
        .await
        .map_err(|e| BenchError::Task(e.to_string()))?
        .map_err(|_| BenchError::Task("the round-trip clients' thread panicked".into()))?
}

/// Round trips back to back until `stop`: a histogram of those before `recording`, and
/// each later one's start and latency.
async fn ping(
    mut connection: Connection,
    index: usize,
    recording: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<Latencies, BenchError> {
    let topic = format!("rping/{index}");
    let (mut before, mut during) = (LatencyHistogram::default(), Vec::new());
    let mut packet_id: u16 = 1;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let took = round_trip(&mut connection, &topic, packet_id).await?;
        let nanos = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        if recording.load(Ordering::Relaxed) {
            during.push((started, nanos));
        } else {
            before.record(nanos);
        }
        packet_id = packet_id.checked_add(1).unwrap_or(1);
    }
    Ok((before, during))
}

/// Subscribes and reads until `expected` retained PUBLISHes have arrived (acknowledging QoS
/// 1 ones) or none came for [`SUBSCRIBER_SILENCE`]; returns how many arrived and the time
/// from SUBSCRIBE to the last one.
async fn consume(
    mut connection: Connection,
    filter: &str,
    qos: QoS,
    expected: usize,
) -> Result<(usize, Duration), BenchError> {
    let started = Instant::now();
    let mut last = Duration::ZERO;
    connection.subscribe(filter, qos).await?;
    let mut received = 0;
    let mut acks = BytesMut::new();
    while received < expected {
        acks.clear();
        // Everything already read, then one more read.
        loop {
            let packet = match mqtt::decode(
                &mut connection.read_buf,
                Some(connection.version),
                MAX_INCOMING_PACKET,
            )? {
                Some(packet) => packet,
                None => break,
            };
            if let Packet::Publish(publish) = packet {
                if publish.retain {
                    received += 1;
                    last = started.elapsed();
                }
                if let Some(packet_id) = publish.packet_id {
                    let ack = Packet::PubAck(PubResponse::success(packet_id));
                    mqtt::encode(&ack, connection.version, u32::MAX, &mut acks)?;
                }
            }
        }
        if !acks.is_empty() {
            write_or_give_up(&mut connection.writer, &acks)
                .await
                .map_err(BenchError::Task)?;
        }
        if received >= expected {
            break;
        }
        let read = connection.reader.read_buf(&mut connection.read_buf);
        match tokio::time::timeout(SUBSCRIBER_SILENCE, read).await {
            Err(_) => break,
            Ok(Err(source)) => return Err(io_error("read")(source)),
            Ok(Ok(0)) => {
                return Err(BenchError::Closed {
                    client_id: connection.client_id,
                });
            }
            Ok(Ok(_)) => {}
        }
    }
    Ok((received, last))
}
