//! A short, bounded soak of a real `roost serve` child: about 15 seconds of mixed QoS 0, 1 and
//! 2 traffic between v3.1.1 and v5 clients, every client with a 2-second keep alive and
//! pinging every second, so that PINGRESPs interleave with deliveries on every connection
//! many times over.
//!
//! It catches delivery that stops silently (QoS 0 once stopped after a subscriber's first
//! PINGREQ, counted only as "dropped"), lost or duplicated QoS 1/2 messages, connections the
//! broker closes under steady load, and memory that grows with traffic after a warm-up.
//!
//! Synchronisation is on the protocol: subscribers hold their SUBACK before publishers start;
//! publishers finish when every QoS 1/2 PUBLISH is acknowledged; the run ends when each
//! subscriber has received the last message of every stream it expects (topics are ordered
//! per publisher, MQTT 5.0 §4.6 / MQTT-4.6.0-6), under a generous deadline; the end check is a
//! PINGREQ/PINGRESP round trip on each connection.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use common::child::ChildBroker;
use roost::mqtt::{
    Connect, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode, decode,
    encode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior, interval, interval_at, timeout, timeout_at};

/// Keep alive every client asks for; the broker closes a client silent for 1.5 times it
/// (MQTT-3.1.2-24), so these connections live only as long as their pings are answered.
const KEEP_ALIVE_SECS: u16 = 2;
/// Clients ping every second (half the keep alive) whatever else they send, so that each
/// connection's PINGRESPs interleave with its deliveries about 15 times during the run.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Messages each publisher sends at each QoS.
const PER_QOS: u32 = 225;
/// Pace of each publisher: 4 publishers at 45 msg/s is 180 msg/s in, 720 deliveries/s out,
/// so 3 × 225 messages take about 15 s. A correctness soak, not a benchmark.
const PUBLISH_EVERY: Duration = Duration::from_micros(22_222);
/// Messages published (by all publishers) before the warm-up RSS sample: about 3 s.
const WARM_UP_MESSAGES: u64 = 4 * 45 * 3;
/// RSS the broker may gain from after the warm-up to the end of the traffic.
const RSS_GROWTH_LIMIT: u64 = 4 * 1024 * 1024;
/// Pings a subscriber must have had answered before its last message of every QoS arrived:
/// delivery continued across three keep-alive periods at least (15 are expected).
const MIN_PINGS_BEFORE_LAST: u32 = 6;
/// QoS 1/2 messages a publisher leaves unacknowledged at most (our Receive Maximum is 100).
const PUBLISHER_WINDOW: usize = 50;
/// Generous bounds for a loaded 2-core machine; a healthy run needs a fraction of each.
const SETUP_DEADLINE: Duration = Duration::from_secs(20);
const TRAFFIC_DEADLINE: Duration = Duration::from_secs(60);
const DRAIN_DEADLINE: Duration = Duration::from_secs(20);
/// Two `$SYS` periods of one second each, with room for a loaded machine.
const SYS_DEADLINE: Duration = Duration::from_secs(10);

const PUBLISHERS: [(&str, ProtocolVersion); 4] = [
    ("p4a", ProtocolVersion::V3_1_1),
    ("p4b", ProtocolVersion::V3_1_1),
    ("p5a", ProtocolVersion::V5),
    ("p5b", ProtocolVersion::V5),
];

const QOS_LEVELS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

/// A subscriber: name, protocol version, filter and requested QoS.
struct SubscriberSpec {
    name: &'static str,
    version: ProtocolVersion,
    filter: &'static str,
    qos: QoS,
}

const SUBSCRIBERS: [SubscriberSpec; 8] = [
    sub("s4q0", ProtocolVersion::V3_1_1, "soak/+/0", QoS::AtMostOnce),
    sub(
        "s4q1",
        ProtocolVersion::V3_1_1,
        "soak/+/1",
        QoS::AtLeastOnce,
    ),
    sub(
        "s4q2",
        ProtocolVersion::V3_1_1,
        "soak/+/2",
        QoS::ExactlyOnce,
    ),
    sub("s4all", ProtocolVersion::V3_1_1, "soak/#", QoS::ExactlyOnce),
    sub("s5q0", ProtocolVersion::V5, "soak/+/0", QoS::AtMostOnce),
    sub("s5q1", ProtocolVersion::V5, "soak/+/1", QoS::AtLeastOnce),
    sub("s5q2", ProtocolVersion::V5, "soak/+/2", QoS::ExactlyOnce),
    sub("s5all", ProtocolVersion::V5, "soak/#", QoS::ExactlyOnce),
];

const fn sub(
    name: &'static str,
    version: ProtocolVersion,
    filter: &'static str,
    qos: QoS,
) -> SubscriberSpec {
    SubscriberSpec {
        name,
        version,
        filter,
        qos,
    }
}

const DROPPED_TOPIC: &str = "$SYS/broker/messages/dropped";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_mixed_qos_and_versions_with_two_second_keep_alive() {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config_path = config_dir.path().join("roost.ron");
    // `$SYS` every second, so that the dropped counter is fresh when the traffic ends.
    std::fs::write(&config_path, "(broker: (sys_interval_secs: 1))").expect("write config");
    let config_arg = config_path.to_str().expect("utf-8 path").to_string();
    let broker = tokio::task::spawn_blocking(move || {
        ChildBroker::start_with_args(&["--config", &config_arg])
    })
    .await
    .expect("start roost serve");
    let addr = broker.addr;
    let started = Instant::now();

    // Subscribers, then the `$SYS` watcher, each connected and holding its SUBACK before
    // any publisher starts.
    let stop = Arc::new(Notify::new());
    let mut subscribers = Vec::new();
    for spec in &SUBSCRIBERS {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = watch::channel(false);
        let client = Client::connect(addr, spec.version, spec.name).await;
        let task = tokio::spawn(run_subscriber(
            client,
            spec.filter,
            spec.qos,
            expected_streams(spec),
            ready_tx,
            done_tx,
            stop.clone(),
        ));
        timeout(SETUP_DEADLINE, ready_rx)
            .await
            .unwrap_or_else(|_| panic!("{}: no SUBACK", spec.name))
            .unwrap_or_else(|_| panic!("{}: ended before its SUBACK", spec.name));
        subscribers.push((spec, done_rx, task));
    }
    let (dropped_ready_tx, dropped_ready_rx) = oneshot::channel();
    let watcher = Client::connect(addr, ProtocolVersion::V5, "sys-watcher").await;
    let watcher = tokio::spawn(run_dropped_watcher(watcher, dropped_ready_tx, stop.clone()));
    let dropped_before = timeout(SETUP_DEADLINE, dropped_ready_rx)
        .await
        .expect("the retained $SYS dropped counter arrives")
        .expect("the watcher runs");

    // Publishers.
    let published = Arc::new(AtomicU64::new(0));
    let warmed_up = Arc::new(Notify::new());
    let mut publishers = Vec::new();
    for (index, (name, version)) in PUBLISHERS.iter().enumerate() {
        let client = Client::connect(addr, *version, name).await;
        let (acknowledged_tx, acknowledged_rx) = oneshot::channel();
        let task = tokio::spawn(run_publisher(
            client,
            index as u8,
            published.clone(),
            warmed_up.clone(),
            acknowledged_tx,
            stop.clone(),
        ));
        publishers.push((*name, acknowledged_rx, task));
    }
    let traffic_started = Instant::now();
    let traffic_deadline = traffic_started + TRAFFIC_DEADLINE;

    // Warm-up: the first 3 s of traffic; then the reference RSS.
    timeout_at(traffic_deadline, async {
        while published.load(Ordering::Relaxed) < WARM_UP_MESSAGES {
            warmed_up.notified().await;
        }
    })
    .await
    .expect("the warm-up traffic is published");
    let rss_warm = broker.rss_bytes();

    // The traffic ends when every publisher has every QoS 1/2 PUBLISH acknowledged.
    for (name, acknowledged, task) in &mut publishers {
        match timeout_at(traffic_deadline, acknowledged).await {
            Ok(Ok(())) => {}
            // The task ended without its acknowledgements: its error tells why.
            Ok(Err(_)) => match task.await {
                Ok(Err(error)) => panic!("publisher {name}: {error}"),
                Err(panic) => std::panic::resume_unwind(panic.into_panic()),
                Ok(Ok(_)) => unreachable!("a publisher reports its acknowledgements"),
            },
            Err(_) => panic!(
                "publisher {name}: not all QoS 1/2 messages acknowledged within {TRAFFIC_DEADLINE:?}"
            ),
        }
    }
    let traffic_time = traffic_started.elapsed();

    // Every subscriber receives the last message of every stream it expects.
    let drain_deadline = Instant::now() + DRAIN_DEADLINE;
    let mut late = Vec::new();
    for (spec, done, _) in &mut subscribers {
        if timeout_at(drain_deadline, done.wait_for(|done| *done))
            .await
            .is_err()
        {
            late.push(spec.name);
        }
    }
    let rss_end = broker.rss_bytes();
    let delivered_time = traffic_started.elapsed();

    // The end check on every connection, then the tallies.
    stop.notify_waiters();
    let mut publisher_pings = Vec::new();
    for (name, _, task) in publishers {
        match timeout(DRAIN_DEADLINE, task).await {
            Ok(Ok(Ok(pings))) => publisher_pings.push((name, pings)),
            Ok(Ok(Err(error))) => panic!("publisher {name}: {error}"),
            Ok(Err(panic)) => std::panic::resume_unwind(panic.into_panic()),
            Err(_) => panic!("publisher {name}: no end check"),
        }
    }
    let mut tallies = Vec::new();
    for (spec, _, task) in subscribers {
        match timeout(DRAIN_DEADLINE, task).await {
            Ok(Ok(Ok(tally))) => tallies.push((spec, tally)),
            Ok(Ok(Err(error))) => panic!("subscriber {}: {error}", spec.name),
            Ok(Err(panic)) => std::panic::resume_unwind(panic.into_panic()),
            Err(_) => panic!("subscriber {}: no end check", spec.name),
        }
    }
    let mut failures = Vec::new();
    // Without a fresh counter (the watcher is a QoS 0 subscriber too), no QoS 0 loss is
    // excused.
    let dropped = match timeout(SYS_DEADLINE, watcher).await {
        Ok(Ok(Ok(dropped_after))) => Some(dropped_after.saturating_sub(dropped_before)),
        Ok(Ok(Err(error))) => {
            failures.push(format!("$SYS watcher: {error}"));
            None
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic.into_panic()),
        Err(_) => {
            failures.push(format!(
                "$SYS watcher: no fresh {DROPPED_TOPIC} within {SYS_DEADLINE:?} after the traffic"
            ));
            None
        }
    };
    let dropped_text = dropped.map_or("unknown".to_string(), |d| d.to_string());
    let dropped = dropped.unwrap_or(0);

    let mut report = format!(
        "setup {:.1?}, traffic {traffic_time:.1?}, delivered {delivered_time:.1?}, \
         broker dropped {dropped_text}, RSS {} KiB after warm-up -> {} KiB at end\n",
        traffic_started - started,
        rss_warm / 1024,
        rss_end / 1024,
    );
    for (name, pings) in &publisher_pings {
        report += &format!("  {name}: {pings} PINGRESPs\n");
    }
    let mut qos0_lost = 0u64;
    for (spec, tally) in &tallies {
        report += &format!("  {}: {}\n", spec.name, tally.summary());
        let expected = expected_streams(spec);
        for &(publisher, qos) in &expected {
            let name = PUBLISHERS[publisher as usize].0;
            let seqs = tally.streams.get(&(publisher, qos));
            let missing = (1..=PER_QOS)
                .filter(|s| !seqs.is_some_and(|seqs| seqs.contains_key(s)))
                .count() as u64;
            let duplicated = seqs.map_or(0, |seqs| seqs.values().filter(|&&n| n > 1).count());
            match qos {
                // MQTT-4.3.3: exactly once; MQTT-4.3.2: at least once.
                2 if missing > 0 || duplicated > 0 => failures.push(format!(
                    "{}: QoS 2 from {name}: {missing} missing, {duplicated} duplicated",
                    spec.name
                )),
                1 if missing > 0 => failures.push(format!(
                    "{}: QoS 1 from {name}: {missing} missing",
                    spec.name
                )),
                _ => {}
            }
            if qos == 0 && missing > 0 {
                report += &format!("  {}: QoS 0 from {name}: {missing} missing\n", spec.name);
                qos0_lost += missing;
            }
        }
        let mut qos_levels: Vec<u8> = expected.iter().map(|&(_, qos)| qos).collect();
        qos_levels.sort_unstable();
        qos_levels.dedup();
        for qos in qos_levels {
            let pings = tally.pings_before_last.get(&qos).copied().unwrap_or(0);
            if pings < MIN_PINGS_BEFORE_LAST {
                failures.push(format!(
                    "{}: its last QoS {qos} message came after {pings} PINGRESPs (at least \
                     {MIN_PINGS_BEFORE_LAST} expected): delivery stopped early",
                    spec.name
                ));
            }
        }
        for error in &tally.errors {
            failures.push(format!("{}: {error}", spec.name));
        }
    }
    report += &format!("  QoS 0 lost: {qos0_lost}\n");
    if !late.is_empty() {
        failures.push(format!(
            "not every last message arrived within {DRAIN_DEADLINE:?} after the publishers \
             finished: {late:?}"
        ));
    }
    // QoS 0 may be dropped, but only as the broker says.
    if qos0_lost > dropped {
        failures.push(format!(
            "{qos0_lost} QoS 0 deliveries lost, broker counted {dropped_text} dropped"
        ));
    }
    if rss_end > rss_warm + RSS_GROWTH_LIMIT {
        failures.push(format!(
            "the broker grew {} KiB after warm-up (limit {} KiB)",
            (rss_end - rss_warm) / 1024,
            RSS_GROWTH_LIMIT / 1024
        ));
    }
    eprintln!("{report}");
    assert!(failures.is_empty(), "{}\n{report}", failures.join("\n"));
}

/// The streams (publisher index, QoS of delivery) a subscriber gets: the delivery QoS is the
/// lower of the publication's and the subscription's (MQTT-3.8.4-8 / MQTT 5.0 §3.8.4).
fn expected_streams(spec: &SubscriberSpec) -> Vec<(u8, u8)> {
    let mut streams = Vec::new();
    for publisher in 0..PUBLISHERS.len() as u8 {
        for qos in QOS_LEVELS {
            let topic = format!("soak/{}/{}", PUBLISHERS[publisher as usize].0, qos as u8);
            if matches(spec.filter, &topic) {
                streams.push((publisher, (qos as u8).min(spec.qos as u8)));
            }
        }
    }
    streams
}

/// Enough filter matching for the filters above (`+` and a trailing `#`).
fn matches(filter: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        match (part, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (part, Some(level)) if part == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// A raw MQTT client over one TCP connection, sharing the test's codec (`roost::mqtt`).
struct Client {
    name: &'static str,
    version: ProtocolVersion,
    stream: TcpStream,
    buffer: BytesMut,
    pings_answered: u32,
}

type Result<T> = std::result::Result<T, String>;

impl Client {
    async fn connect(
        addr: std::net::SocketAddr,
        version: ProtocolVersion,
        name: &'static str,
    ) -> Client {
        let stream = timeout(SETUP_DEADLINE, TcpStream::connect(addr))
            .await
            .expect("TCP connect in time")
            .expect("TCP connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut client = Client {
            name,
            version,
            stream,
            buffer: BytesMut::new(),
            pings_answered: 0,
        };
        let connect = Connect {
            protocol: version,
            clean_start: true,
            keep_alive: KEEP_ALIVE_SECS,
            properties: Properties::default(),
            client_id: name.into(),
            will: None,
            username: None,
            password: None,
        };
        client
            .send(&Packet::Connect(Box::new(connect)))
            .await
            .expect("send CONNECT");
        match timeout(SETUP_DEADLINE, client.next()).await {
            Ok(Ok(Packet::ConnAck(connack))) if connack.reason.code() == 0 => {
                // MQTT 5.0 §3.2.2.3.14: the server may impose its own keep alive; these
                // clients ping at half of ours, so a longer one changes nothing here.
                client
            }
            other => panic!("{name}: expected a successful CONNACK, got {other:?}"),
        }
    }

    async fn send(&mut self, packet: &Packet) -> Result<()> {
        let mut out = BytesMut::new();
        encode(packet, self.version, u32::MAX, &mut out)
            .map_err(|e| format!("{}: encode {packet:?}: {e:?}", self.name))?;
        self.stream
            .write_all(&out)
            .await
            .map_err(|e| format!("{}: write failed (connection closed?): {e}", self.name))
    }

    /// The next packet decoded from the buffer, if whole.
    fn decoded(&mut self) -> Result<Option<Packet>> {
        decode(&mut self.buffer, Some(self.version), u32::MAX)
            .map_err(|e| format!("{}: the broker sent a bad packet: {e:?}", self.name))
    }

    /// Reads more bytes; an error when the broker closed the connection. Cancel safe.
    async fn fill(&mut self) -> Result<()> {
        match self.stream.read_buf(&mut self.buffer).await {
            Ok(0) => Err(format!("{}: the broker closed the connection", self.name)),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{}: read failed: {e}", self.name)),
        }
    }

    async fn next(&mut self) -> Result<Packet> {
        loop {
            if let Some(packet) = self.decoded()? {
                return Ok(packet);
            }
            self.fill().await?;
        }
    }

    async fn ping(&mut self) -> Result<()> {
        self.send(&Packet::PingReq).await
    }

    /// The end check: a PINGREQ answered shows the connection is still open; then a clean
    /// DISCONNECT. Other packets still arriving are handed to `other`.
    async fn end_check(&mut self, mut other: impl FnMut(Packet)) -> Result<()> {
        self.ping().await?;
        let before = self.pings_answered;
        while self.pings_answered == before {
            match timeout(DRAIN_DEADLINE, self.next()).await {
                Ok(Ok(Packet::PingResp)) => self.pings_answered += 1,
                Ok(Ok(packet)) => other(packet),
                Ok(Err(error)) => return Err(format!("at the end check: {error}")),
                Err(_) => return Err("no PINGRESP at the end check".into()),
            }
        }
        self.send(&Packet::Disconnect(roost::mqtt::Disconnect::new(
            ReasonCode::Success,
        )))
        .await
    }
}

/// First tick one period from now: each connection carries traffic before its first ping.
fn ping_timer() -> tokio::time::Interval {
    let mut timer = interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    timer
}

fn payload(publisher: u8, qos: QoS, seq: u32) -> Bytes {
    let mut bytes = BytesMut::with_capacity(6);
    bytes.extend_from_slice(&[publisher, qos as u8]);
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.freeze()
}

/// Publishes `PER_QOS` messages at each QoS, round-robin, at a steady pace; returns the
/// number of PINGRESPs it saw once every QoS 1/2 message is acknowledged and the end check
/// has passed.
async fn run_publisher(
    mut client: Client,
    index: u8,
    published: Arc<AtomicU64>,
    warmed_up: Arc<Notify>,
    acknowledged: oneshot::Sender<()>,
    stop: Arc<Notify>,
) -> Result<u32> {
    let name = client.name;
    let stopped = stop.notified();
    tokio::pin!(stopped);
    let mut pace = interval(PUBLISH_EVERY);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ping = ping_timer();
    let mut next = 0u32; // messages sent, all QoS together
    let total = 3 * PER_QOS;
    let mut packet_id = 0u16;
    // Packet id -> (QoS, whether PUBREC came).
    let mut unacked: HashMap<u16, (QoS, bool)> = HashMap::new();
    while next < total || !unacked.is_empty() {
        tokio::select! {
            _ = pace.tick(), if next < total && unacked.len() < PUBLISHER_WINDOW => {
                let qos = QOS_LEVELS[(next % 3) as usize];
                let seq = next / 3 + 1;
                let id = (qos != QoS::AtMostOnce).then(|| {
                    packet_id = packet_id.checked_add(1).unwrap_or(1);
                    packet_id
                });
                if let Some(id) = id
                    && unacked.insert(id, (qos, false)).is_some()
                {
                    return Err(format!("{name}: packet id {id} reused while in flight"));
                }
                let publish = Publish {
                    dup: false,
                    qos,
                    retain: false,
                    topic: Arc::from(format!("soak/{name}/{}", qos as u8)),
                    packet_id: id,
                    properties: Properties::default(),
                    payload: payload(index, qos, seq),
                };
                client.send(&Packet::Publish(publish)).await?;
                next += 1;
                published.fetch_add(1, Ordering::Relaxed);
                warmed_up.notify_waiters();
            }
            _ = ping.tick() => client.ping().await?,
            filled = client.fill() => {
                filled?;
                while let Some(packet) = client.decoded()? {
                    match packet {
                        Packet::PingResp => client.pings_answered += 1,
                        // MQTT-4.3.2: PUBACK ends a QoS 1 flow.
                        Packet::PubAck(ack) => match unacked.remove(&ack.packet_id) {
                            Some((QoS::AtLeastOnce, _)) if ack.reason.code() < 0x80 => {}
                            other => {
                                return Err(format!("{name}: unexpected {ack:?} (in flight: {other:?})"));
                            }
                        },
                        // MQTT-4.3.3: PUBREC, then our PUBREL, then PUBCOMP.
                        Packet::PubRec(rec) => match unacked.get_mut(&rec.packet_id) {
                            Some((QoS::ExactlyOnce, received)) if rec.reason.code() < 0x80 => {
                                *received = true;
                                client.send(&Packet::PubRel(PubResponse::success(rec.packet_id))).await?;
                            }
                            other => {
                                return Err(format!("{name}: unexpected {rec:?} (in flight: {other:?})"));
                            }
                        },
                        Packet::PubComp(comp) => match unacked.remove(&comp.packet_id) {
                            Some((QoS::ExactlyOnce, true)) => {}
                            other => {
                                return Err(format!("{name}: unexpected {comp:?} (in flight: {other:?})"));
                            }
                        },
                        other => return Err(format!("{name}: unexpected {other:?}")),
                    }
                }
            }
        }
    }
    let _ = acknowledged.send(());
    // Keep the connection alive (and checked) until the subscribers are done.
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = ping.tick() => client.ping().await?,
            filled = client.fill() => {
                filled?;
                while let Some(packet) = client.decoded()? {
                    match packet {
                        Packet::PingResp => client.pings_answered += 1,
                        other => return Err(format!("{name}: unexpected {other:?} after the traffic")),
                    }
                }
            }
        }
    }
    client
        .end_check(|_| {})
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    Ok(client.pings_answered)
}

/// What a subscriber saw.
#[derive(Default)]
struct Tally {
    /// (publisher, delivery QoS) -> sequence number -> times received.
    streams: BTreeMap<(u8, u8), BTreeMap<u32, u32>>,
    /// Delivery QoS -> PINGRESPs answered before the latest message at that QoS arrived.
    pings_before_last: BTreeMap<u8, u32>,
    errors: Vec<String>,
    pings: u32,
}

impl Tally {
    fn summary(&self) -> String {
        let received: u32 = self.streams.values().flat_map(|s| s.values()).sum();
        format!(
            "{received} received, {} PINGRESPs, PINGRESPs before the last message by QoS {:?}",
            self.pings, self.pings_before_last
        )
    }
}

/// Subscribes, reports its SUBACK, then receives (acknowledging QoS 1 and 2 as the spec
/// says) and pings until stopped; `done` becomes true once the last message of every
/// expected stream has arrived.
async fn run_subscriber(
    mut client: Client,
    filter: &'static str,
    qos: QoS,
    expected: Vec<(u8, u8)>,
    ready: oneshot::Sender<()>,
    done: watch::Sender<bool>,
    stop: Arc<Notify>,
) -> Result<Tally> {
    let name = client.name;
    client
        .send(&Packet::Subscribe(common::subscribe(1, filter, qos)))
        .await?;
    let mut ping = ping_timer();
    let mut tally = Tally::default();
    // Packet ids of QoS 2 messages received and not yet released (MQTT-4.3.3).
    let mut awaiting_release = std::collections::HashSet::new();
    let mut subscribed = false;
    let mut ready = Some(ready);
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = ping.tick() => client.ping().await?,
            filled = client.fill() => {
                filled?;
                while let Some(packet) = client.decoded()? {
                    match packet {
                        Packet::SubAck(suback) if !subscribed => {
                            let granted = suback.reasons.first().map(|r| r.code());
                            if granted != Some(qos as u8) {
                                return Err(format!("{name}: SUBACK {suback:?}, wanted QoS {}", qos as u8));
                            }
                            subscribed = true;
                            if let Some(ready) = ready.take() {
                                let _ = ready.send(());
                            }
                        }
                        Packet::PingResp => client.pings_answered += 1,
                        Packet::Publish(publish) => {
                            if !subscribed {
                                return Err(format!("{name}: PUBLISH before SUBACK"));
                            }
                            receive(&mut client, &mut tally, &mut awaiting_release, publish).await?;
                            let complete = expected.iter().all(|&(publisher, qos)| {
                                tally.streams.get(&(publisher, qos)).is_some_and(|s| s.contains_key(&PER_QOS))
                            });
                            if complete && !*done.borrow() {
                                let _ = done.send(true);
                            }
                        }
                        Packet::PubRel(rel) => {
                            if !awaiting_release.remove(&rel.packet_id) {
                                tally.errors.push(format!("PUBREL for unknown packet id {}", rel.packet_id));
                            }
                            client.send(&Packet::PubComp(PubResponse::success(rel.packet_id))).await?;
                        }
                        other => return Err(format!("{name}: unexpected {other:?}")),
                    }
                }
            }
        }
    }
    let mut late = Vec::new();
    client
        .end_check(|packet| late.push(packet))
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    for packet in late {
        if let Packet::Publish(publish) = packet {
            // Counted, not acknowledged: the connection is closing.
            record(&mut tally, &publish, client.pings_answered);
        }
    }
    tally.pings = client.pings_answered;
    Ok(tally)
}

async fn receive(
    client: &mut Client,
    tally: &mut Tally,
    awaiting_release: &mut std::collections::HashSet<u16>,
    publish: Publish,
) -> Result<()> {
    match (publish.qos, publish.packet_id) {
        (QoS::AtMostOnce, None) => {}
        (QoS::AtLeastOnce, Some(id)) => {
            client
                .send(&Packet::PubAck(PubResponse::success(id)))
                .await?
        }
        (QoS::ExactlyOnce, Some(id)) => {
            // A second PUBLISH with an id not yet released would be a redelivery, which a
            // broker sends only after a reconnect (MQTT-4.4.0-1): none here.
            if !awaiting_release.insert(id) {
                tally.errors.push(format!(
                    "QoS 2 packet id {id} delivered again before PUBREL"
                ));
            }
            client
                .send(&Packet::PubRec(PubResponse::success(id)))
                .await?;
        }
        _ => {
            tally.errors.push(format!("malformed delivery {publish:?}"));
            return Ok(());
        }
    }
    record(tally, &publish, client.pings_answered);
    Ok(())
}

fn record(tally: &mut Tally, publish: &Publish, pings: u32) {
    let mut payload = publish.payload.clone();
    if payload.len() != 6 {
        tally
            .errors
            .push(format!("unexpected payload on {}", publish.topic));
        return;
    }
    let publisher = payload.get_u8();
    let published_qos = payload.get_u8();
    let seq = payload.get_u32();
    let expected_topic = PUBLISHERS
        .get(publisher as usize)
        .map(|(name, _)| format!("soak/{name}/{published_qos}"));
    if expected_topic.as_deref() != Some(&*publish.topic) || published_qos < publish.qos as u8 {
        tally.errors.push(format!(
            "{} at QoS {} carries publisher {publisher}, QoS {published_qos}",
            publish.topic, publish.qos as u8
        ));
        return;
    }
    let qos = publish.qos as u8;
    *tally
        .streams
        .entry((publisher, qos))
        .or_default()
        .entry(seq)
        .or_default() += 1;
    tally.pings_before_last.insert(qos, pings);
}

/// Watches `$SYS/broker/messages/dropped`: reports the retained value at subscribe time,
/// and once stopped returns a value published at least one `$SYS` period after the stop
/// (the second one to arrive), so that it counts every drop of the run.
async fn run_dropped_watcher(
    mut client: Client,
    ready: oneshot::Sender<u64>,
    stop: Arc<Notify>,
) -> Result<u64> {
    client
        .send(&Packet::Subscribe(common::subscribe(
            1,
            DROPPED_TOPIC,
            QoS::AtMostOnce,
        )))
        .await?;
    let mut ping = ping_timer();
    let mut ready = Some(ready);
    let mut latest = None;
    let mut after_stop: Option<u32> = None;
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        if after_stop.is_some_and(|n| n >= 2) {
            break;
        }
        tokio::select! {
            _ = &mut stopped, if after_stop.is_none() => after_stop = Some(0),
            _ = ping.tick() => client.ping().await?,
            filled = client.fill() => {
                filled?;
                while let Some(packet) = client.decoded()? {
                    match packet {
                        Packet::SubAck(_) | Packet::PingResp => {}
                        Packet::Publish(publish) if &*publish.topic == DROPPED_TOPIC => {
                            let value: u64 = std::str::from_utf8(&publish.payload)
                                .ok()
                                .and_then(|v| v.parse().ok())
                                .ok_or_else(|| format!("bad {DROPPED_TOPIC}: {publish:?}"))?;
                            latest = Some(value);
                            if let Some(ready) = ready.take() {
                                let _ = ready.send(value);
                            }
                            if let Some(n) = after_stop.as_mut() {
                                *n += 1;
                            }
                        }
                        other => return Err(format!("unexpected {other:?}")),
                    }
                }
            }
        }
    }
    client.end_check(|_| {}).await?;
    latest.ok_or_else(|| "no dropped counter".into())
}
