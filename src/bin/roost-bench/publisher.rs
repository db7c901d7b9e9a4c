//! One publishing client: stamps and sends messages in batches, at a rate or flat out, and
//! for QoS 1/2 keeps at most `inflight` messages unacknowledged.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::client::{
    Connection, MAX_INCOMING_PACKET, PING_EVERY, PublishTemplate, Reader, write_or_give_up,
};
use super::schedule::{Schedule, StopRule, StoppedGuard};
use super::stamp::Stamp;
use roost::mqtt::{self, Disconnect, Packet, ProtocolVersion, PubResponse, QoS, ReasonCode};

/// Bytes written per batch when publishing flat out.
const BATCH_BYTES: usize = 16 * 1024;
const MAX_BATCH: usize = 256;
/// How long a stopped publisher waits for its outstanding acknowledgements.
const ACK_DRAIN: Duration = Duration::from_secs(5);
/// The longest a waiting publisher sleeps before it looks at the clock again.
const MAX_NAP: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct PublisherPlan {
    pub index: u32,
    pub run_id: u32,
    pub template: PublishTemplate,
    pub qos: QoS,
    /// Messages per second for this publisher; `None` is flat out.
    pub rate: Option<f64>,
    /// Most QoS 1/2 messages unacknowledged at once.
    pub inflight: usize,
}

#[derive(Debug, Clone, Default)]
pub struct PublisherOutcome {
    /// Messages sent, warm-up included (sequence numbers `0..sent`).
    pub sent: u64,
    /// Messages stamped after the warm-up.
    pub sent_in_window: u64,
    /// QoS 1/2 flows completed (PUBACK, or PUBCOMP).
    pub acknowledged: u64,
    /// Acknowledgements carrying an error reason code (MQTT 5.0).
    pub rejected: u64,
    /// QoS 1/2 messages still unacknowledged when the publisher gave up waiting.
    pub unacknowledged: u64,
    /// Why the publisher ended early, if it did.
    pub problem: Option<String>,
}

/// The QoS 1/2 flow state the ack reader and the writer share.
struct Flow {
    /// Free places in the inflight window.
    free: usize,
    /// Which packet identifiers are in use.
    in_use: Vec<bool>,
    /// PUBREC received: PUBREL to send (MQTT-4.3.3).
    releases: Vec<u16>,
    acknowledged: u64,
    rejected: u64,
    closed: Option<String>,
}

struct Shared {
    flow: Mutex<Flow>,
    changed: Notify,
}

impl Shared {
    fn flow(&self) -> MutexGuard<'_, Flow> {
        // A poisoned lock means a panic elsewhere in the generator; the state is still usable.
        self.flow
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub async fn run_publisher(
    connection: Connection,
    plan: PublisherPlan,
    schedule: Arc<Schedule>,
) -> PublisherOutcome {
    let window = match plan.qos {
        QoS::AtMostOnce => usize::MAX,
        _ => plan
            .inflight
            .min(usize::from(connection.broker_receive_maximum))
            .max(1),
    };
    let shared = Arc::new(Shared {
        flow: Mutex::new(Flow {
            free: window,
            in_use: vec![false; usize::from(u16::MAX) + 1],
            releases: Vec::new(),
            acknowledged: 0,
            rejected: 0,
            closed: None,
        }),
        changed: Notify::new(),
    });
    let Connection {
        reader,
        mut writer,
        read_buf,
        version,
        ..
    } = connection;
    let reader_task = tokio::spawn(read_acknowledgements(
        reader,
        read_buf,
        version,
        Arc::clone(&shared),
    ));

    let mut outcome = PublisherOutcome::default();
    let mut stopped = StoppedGuard::new(&schedule);
    let mut out = BytesMut::with_capacity(BATCH_BYTES + 4096);
    let batch_max = (BATCH_BYTES / plan.template.len().max(1)).clamp(1, MAX_BATCH);
    let mut ids = [0u16; MAX_BATCH];
    let mut next_id: u16 = 0;
    let start = schedule.now();
    let mut last_write = start;

    let result: Result<(), String> = async {
        loop {
            let now = schedule.now();
            let measuring = now >= schedule.warm_up_end();
            let remaining = match schedule.stop_rule() {
                StopRule::At(end) if now >= end => break,
                StopRule::AfterCount(count) if outcome.sent_in_window >= count => break,
                StopRule::AfterCount(count) if measuring => count - outcome.sent_in_window,
                _ => u64::MAX,
            };
            let mut allowance = (batch_max as u64).min(remaining);
            if let Some(rate) = plan.rate {
                // Message k may leave at start + k / rate.
                let due = ((now - start) as f64 * rate / 1e9) as u64 + 1;
                allowance = allowance.min(due.saturating_sub(outcome.sent));
            }

            out.clear();
            if plan.qos != QoS::AtMostOnce {
                let mut flow = shared.flow();
                if let Some(reason) = &flow.closed {
                    return Err(reason.clone());
                }
                for packet_id in std::mem::take(&mut flow.releases) {
                    encode(
                        &Packet::PubRel(PubResponse::success(packet_id)),
                        version,
                        &mut out,
                    )?;
                }
                allowance = allowance.min(flow.free as u64);
                flow.free -= allowance as usize;
                for slot in ids.iter_mut().take(allowance as usize) {
                    next_id = next_free_id(&flow.in_use, next_id);
                    flow.in_use[usize::from(next_id)] = true;
                    *slot = next_id;
                }
            }
            for packet_id in ids.iter().take(allowance as usize) {
                let stamp = Stamp {
                    run_id: plan.run_id,
                    publisher: plan.index,
                    sequence: outcome.sent,
                    sent_at_nanos: now,
                };
                plan.template.append(&mut out, *packet_id, &stamp);
                outcome.sent += 1;
            }
            if measuring {
                outcome.sent_in_window += allowance;
            }
            if out.is_empty() && now - last_write >= PING_EVERY.as_nanos() as u64 {
                encode(&Packet::PingReq, version, &mut out)?;
            }
            if !out.is_empty() {
                write_or_give_up(&mut writer, &out).await?;
                last_write = now;
            }
            if allowance == 0 {
                let mut nap = MAX_NAP;
                if let Some(rate) = plan.rate {
                    let next_due = start + (outcome.sent as f64 * 1e9 / rate) as u64;
                    nap = nap.min(Duration::from_nanos(next_due.saturating_sub(now)));
                }
                if let StopRule::At(end) = schedule.stop_rule() {
                    nap = nap.min(Duration::from_nanos(end.saturating_sub(now)));
                }
                tokio::select! {
                    _ = shared.changed.notified() => {}
                    _ = tokio::time::sleep(nap) => {}
                }
            }
        }
        stopped.stopped();

        // Wait for the acknowledgements of what is still in flight.
        if plan.qos != QoS::AtMostOnce {
            let deadline = tokio::time::Instant::now() + ACK_DRAIN;
            loop {
                out.clear();
                let done = {
                    let mut flow = shared.flow();
                    for packet_id in std::mem::take(&mut flow.releases) {
                        encode(
                            &Packet::PubRel(PubResponse::success(packet_id)),
                            version,
                            &mut out,
                        )?;
                    }
                    if let Some(reason) = &flow.closed {
                        return Err(reason.clone());
                    }
                    flow.free == window
                };
                if !out.is_empty() {
                    write_or_give_up(&mut writer, &out).await?;
                }
                if done {
                    break;
                }
                tokio::select! {
                    _ = shared.changed.notified() => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
        out.clear();
        encode(
            &Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
            version,
            &mut out,
        )?;
        // The broker may already be gone; a failed goodbye changes no result.
        let _ = write_or_give_up(&mut writer, &out).await;
        let _ = writer.shutdown().await;
        Ok(())
    }
    .await;

    stopped.stopped();
    reader_task.abort();
    let flow = shared.flow();
    outcome.acknowledged = flow.acknowledged;
    outcome.rejected = flow.rejected;
    if plan.qos != QoS::AtMostOnce {
        outcome.unacknowledged = (window - flow.free) as u64;
    }
    outcome.problem = result.err();
    outcome
}

fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), String> {
    mqtt::encode(packet, version, u32::MAX, out).map_err(|e| e.to_string())
}

/// The next packet identifier after `after` that is not in use (never 0, MQTT-2.3.1-1).
fn next_free_id(in_use: &[bool], after: u16) -> u16 {
    let mut id = after;
    loop {
        id = id.wrapping_add(1);
        if id != 0 && !in_use[usize::from(id)] {
            return id;
        }
    }
}

/// Reads what the broker sends a publisher: acknowledgements, PINGRESP, perhaps DISCONNECT.
async fn read_acknowledgements(
    mut reader: Reader,
    mut buf: BytesMut,
    version: ProtocolVersion,
    shared: Arc<Shared>,
) {
    let reason = loop {
        match reader.read_buf(&mut buf).await {
            Ok(0) => break "the broker closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break format!("read failed: {e}"),
        }
        let mut flow = shared.flow();
        let mut problem = None;
        loop {
            match mqtt::decode(&mut buf, Some(version), MAX_INCOMING_PACKET) {
                Ok(Some(packet)) => {
                    if let Some(reason) = flow.apply(packet) {
                        problem = Some(reason);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    problem = Some(format!("undecodable packet from the broker: {e}"));
                    break;
                }
            }
        }
        drop(flow);
        shared.changed.notify_one();
        if let Some(reason) = problem {
            break reason;
        }
    };
    shared.flow().closed = Some(reason);
    shared.changed.notify_one();
}

impl Flow {
    /// Applies one packet from the broker; returns why the connection is over, if it is.
    fn apply(&mut self, packet: Packet) -> Option<String> {
        match packet {
            Packet::PubAck(ack) | Packet::PubComp(ack) => self.complete(&ack),
            // An error PUBREC ends the flow: no PUBREL follows (MQTT 5.0 §4.3.3).
            Packet::PubRec(ack) if ack.reason.is_error() => self.complete(&ack),
            Packet::PubRec(ack) if self.in_use[usize::from(ack.packet_id)] => {
                self.releases.push(ack.packet_id);
            }
            Packet::Disconnect(disconnect) => {
                return Some(format!("the broker disconnected: {:?}", disconnect.reason));
            }
            _ => {}
        }
        None
    }

    fn complete(&mut self, ack: &PubResponse) {
        let slot = &mut self.in_use[usize::from(ack.packet_id)];
        if *slot {
            *slot = false;
            self.free += 1;
            self.acknowledged += 1;
            if ack.reason.is_error() {
                self.rejected += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(window: usize) -> Flow {
        Flow {
            free: window,
            in_use: vec![false; 65536],
            releases: Vec::new(),
            acknowledged: 0,
            rejected: 0,
            closed: None,
        }
    }

    #[test]
    fn packet_identifiers_skip_zero_and_those_in_use() {
        let mut in_use = vec![false; 65536];
        in_use[1] = true;
        assert_eq!(next_free_id(&in_use, 0), 2);
        assert_eq!(next_free_id(&in_use, u16::MAX), 2);
    }

    #[test]
    fn puback_frees_a_place_once() {
        let mut flow = flow(2);
        flow.free = 1;
        flow.in_use[5] = true;
        flow.apply(Packet::PubAck(PubResponse::success(5)));
        flow.apply(Packet::PubAck(PubResponse::success(5)));
        assert_eq!(flow.free, 2);
        assert_eq!(flow.acknowledged, 1);
    }

    #[test]
    fn qos2_frees_the_place_on_pubcomp_not_pubrec() {
        let mut flow = flow(1);
        flow.free = 0;
        flow.in_use[9] = true;
        flow.apply(Packet::PubRec(PubResponse::success(9)));
        assert_eq!(flow.releases, vec![9]);
        assert_eq!(flow.free, 0);
        flow.apply(Packet::PubComp(PubResponse::success(9)));
        assert_eq!(flow.free, 1);
        assert_eq!(flow.acknowledged, 1);
    }

    #[test]
    fn an_error_pubrec_ends_the_flow_without_pubrel() {
        let mut flow = flow(1);
        flow.free = 0;
        flow.in_use[3] = true;
        let mut rec = PubResponse::success(3);
        rec.reason = ReasonCode::QuotaExceeded;
        flow.apply(Packet::PubRec(rec));
        assert!(flow.releases.is_empty());
        assert_eq!(flow.free, 1);
        assert_eq!(flow.rejected, 1);
    }
}
