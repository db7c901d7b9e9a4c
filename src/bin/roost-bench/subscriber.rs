//! One subscribing client: reads deliveries in whole buffers, acknowledges QoS 1/2, and
//! accounts for every message (latency, sequence, window).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::client::{Connection, MAX_INCOMING_PACKET, PING_EVERY, write_or_give_up};
use super::histogram::LatencyHistogram;
use super::schedule::Schedule;
use super::sequence::SequenceTracker;
use super::stamp::Stamp;
use roost::mqtt::{self, Packet, PubResponse, Publish, QoS};

#[derive(Debug, Clone)]
pub struct SubscriberPlan {
    pub run_id: u32,
    pub publishers: usize,
}

/// What one subscriber saw. Its trackers are indexed by publisher.
#[derive(Debug, Clone, Default)]
pub struct SubscriberOutcome {
    pub trackers: Vec<SequenceTracker>,
    /// Latency of the deliveries received inside the measurement window.
    pub latency: LatencyHistogram,
    pub delivered_in_window: u64,
    /// Deliveries that did not carry this run's stamp.
    pub foreign: u64,
    pub problem: Option<String>,
}

/// The part of a subscriber that looks at messages, separate from the socket so it can be
/// tested on its own.
#[derive(Debug)]
pub struct DeliveryRecorder {
    run_id: u32,
    outcome: SubscriberOutcome,
}

impl DeliveryRecorder {
    pub fn new(plan: &SubscriberPlan) -> Self {
        DeliveryRecorder {
            run_id: plan.run_id,
            outcome: SubscriberOutcome {
                trackers: vec![SequenceTracker::default(); plan.publishers],
                ..SubscriberOutcome::default()
            },
        }
    }

    /// Accounts for one delivery whose bytes arrived at `received_at` (schedule nanoseconds).
    pub fn record(&mut self, publish: &Publish, received_at: u64, schedule: &Schedule) {
        let stamp = match Stamp::read(&publish.payload) {
            Some(stamp) if stamp.run_id == self.run_id => stamp,
            _ => {
                self.outcome.foreign += 1;
                return;
            }
        };
        let Some(tracker) = self.outcome.trackers.get_mut(stamp.publisher as usize) else {
            self.outcome.foreign += 1;
            return;
        };
        tracker.record(stamp.sequence);
        if schedule.in_window(received_at) {
            self.outcome.delivered_in_window += 1;
            self.outcome
                .latency
                .record(received_at.saturating_sub(stamp.sent_at_nanos));
        }
    }

    pub fn finish(self, problem: Option<String>) -> SubscriberOutcome {
        SubscriberOutcome {
            problem,
            ..self.outcome
        }
    }
}

/// Runs until `stop` is cancelled (or the connection ends). `received` counts every
/// PUBLISH, so the runner can tell when the deliveries it expects are in.
pub async fn run_subscriber(
    connection: Connection,
    plan: SubscriberPlan,
    schedule: Arc<Schedule>,
    received: Arc<AtomicU64>,
    stop: CancellationToken,
) -> SubscriberOutcome {
    let Connection {
        mut reader,
        mut writer,
        read_buf: mut buf,
        version,
        ..
    } = connection;
    let mut recorder = DeliveryRecorder::new(&plan);
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;

    let problem: Option<String> = async {
        // Bytes left over from setup are handled before the first read.
        let mut leftover = !buf.is_empty();
        loop {
            if !std::mem::take(&mut leftover) {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return None,
                    read = reader.read_buf(&mut buf) => match read {
                        Ok(0) => return Some("the broker closed the connection".to_string()),
                        Ok(_) => {}
                        Err(e) => return Some(format!("read failed: {e}")),
                    },
                    _ = ping.tick() => {
                        if let Err(e) = mqtt::encode(&Packet::PingReq, version, u32::MAX, &mut out) {
                            return Some(e.to_string());
                        }
                    }
                }
            }
            // One clock reading per read: the time the bytes reached the generator.
            let received_at = schedule.now();
            let mut publishes = 0;
            loop {
                let packet = match mqtt::decode(&mut buf, Some(version), MAX_INCOMING_PACKET) {
                    Ok(Some(packet)) => packet,
                    Ok(None) => break,
                    Err(e) => return Some(format!("undecodable packet from the broker: {e}")),
                };
                let reply = match packet {
                    Packet::Publish(publish) => {
                        publishes += 1;
                        recorder.record(&publish, received_at, &schedule);
                        match (publish.qos, publish.packet_id) {
                            (QoS::AtLeastOnce, Some(id)) => {
                                Some(Packet::PubAck(PubResponse::success(id)))
                            }
                            (QoS::ExactlyOnce, Some(id)) => {
                                Some(Packet::PubRec(PubResponse::success(id)))
                            }
                            _ => None,
                        }
                    }
                    Packet::PubRel(release) => {
                        Some(Packet::PubComp(PubResponse::success(release.packet_id)))
                    }
                    Packet::Disconnect(disconnect) => {
                        return Some(format!("the broker disconnected: {:?}", disconnect.reason));
                    }
                    _ => None,
                };
                if let Some(reply) = reply
                    && let Err(e) = mqtt::encode(&reply, version, u32::MAX, &mut out)
                {
                    return Some(e.to_string());
                }
            }
            received.fetch_add(publishes, Ordering::Relaxed);
            if !out.is_empty() {
                if let Err(problem) = write_or_give_up(&mut writer, &out).await {
                    return Some(problem);
                }
                out.clear();
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(64 * 1024);
            }
        }
    }
    .await;
    recorder.finish(problem)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::schedule::StopRule;
    use roost::mqtt::Properties;

    fn publish_with(stamp: Option<Stamp>) -> Publish {
        let mut payload = vec![0u8; 64];
        if let Some(stamp) = stamp {
            stamp.write(&mut payload);
        }
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Arc::from("t"),
            packet_id: None,
            properties: Properties::default(),
            payload: Bytes::from(payload),
        }
    }

    #[test]
    fn deliveries_are_accounted_per_publisher_and_window() {
        let schedule = Schedule::new(Duration::from_millis(10), StopRule::AfterCount(10), 1);
        let plan = SubscriberPlan {
            run_id: 42,
            publishers: 2,
        };
        let mut recorder = DeliveryRecorder::new(&plan);
        let stamp = |publisher, sequence, sent_at_nanos| {
            Some(Stamp {
                run_id: 42,
                publisher,
                sequence,
                sent_at_nanos,
            })
        };
        // During warm-up: tracked, but no latency or window count.
        recorder.record(&publish_with(stamp(0, 0, 1_000)), 5_000_000, &schedule);
        // In the window: 2 ms and 4 ms latency.
        recorder.record(
            &publish_with(stamp(0, 1, 10_000_000)),
            12_000_000,
            &schedule,
        );
        recorder.record(
            &publish_with(stamp(1, 0, 10_000_000)),
            14_000_000,
            &schedule,
        );
        // Another run's message, a payload without a stamp, and an unknown publisher.
        recorder.record(
            &publish_with(Some(Stamp {
                run_id: 7,
                publisher: 0,
                sequence: 0,
                sent_at_nanos: 0,
            })),
            12_000_000,
            &schedule,
        );
        let mut short = publish_with(None);
        short.payload = Bytes::from_static(b"hi");
        recorder.record(&short, 12_000_000, &schedule);
        recorder.record(&publish_with(stamp(5, 0, 0)), 12_000_000, &schedule);

        let outcome = recorder.finish(None);
        assert_eq!(outcome.delivered_in_window, 2);
        assert_eq!(outcome.foreign, 3);
        assert_eq!(outcome.latency.count(), 2);
        assert_eq!(outcome.latency.max(), 4_000_000);
        assert_eq!(outcome.trackers[0].counts(2).lost(), 0);
        assert_eq!(outcome.trackers[1].counts(3).lost(), 2);
    }
}
