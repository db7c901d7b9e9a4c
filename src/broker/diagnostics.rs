//! Per-packet diagnostic events: built only while switched on, broadcast to the console and
//! optionally appended to a log file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::api::{DiagEvent, Direction, ListenerKind};
use crate::mqtt::Packet;

/// How many events a slow receiver may lag behind before it loses the oldest.
const DIAG_CHANNEL_CAPACITY: usize = 4096;
/// Bytes of PUBLISH payload kept in an event.
const PAYLOAD_PREVIEW: usize = 64;

#[derive(Debug)]
pub struct Diagnostics {
    /// Switched on by the console.
    manual: AtomicBool,
    /// Switched on by `diagnostics.log_messages` in the applied config.
    configured: AtomicBool,
    /// Either of the two: the one load on the hot path.
    on: AtomicBool,
    sender: broadcast::Sender<Arc<DiagEvent>>,
}

impl Default for Diagnostics {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(DIAG_CHANNEL_CAPACITY);
        Diagnostics {
            manual: AtomicBool::new(false),
            configured: AtomicBool::new(false),
            on: AtomicBool::new(false),
            sender,
        }
    }
}

impl Diagnostics {
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Relaxed)
    }

    pub fn set_manual(&self, on: bool) {
        self.manual.store(on, Relaxed);
        self.refresh();
    }

    pub fn set_configured(&self, on: bool) {
        self.configured.store(on, Relaxed);
        self.refresh();
    }

    fn refresh(&self) {
        let on = self.manual.load(Relaxed) || self.configured.load(Relaxed);
        self.on.store(on, Relaxed);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<DiagEvent>> {
        self.sender.subscribe()
    }

    /// Records one packet; call only after [`Diagnostics::is_on`].
    pub fn record(
        &self,
        client_id: &Arc<str>,
        transport: ListenerKind,
        direction: Direction,
        packet: &Packet,
        size: usize,
    ) {
        let (topic, qos, packet_id, payload_preview) = match packet {
            Packet::Publish(publish) => (
                Some(publish.topic.clone()),
                Some(publish.qos),
                publish.packet_id,
                Some(preview(&publish.payload)),
            ),
            Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
                (None, None, Some(r.packet_id), None)
            }
            Packet::Subscribe(s) => (None, None, Some(s.packet_id), None),
            Packet::SubAck(s) => (None, None, Some(s.packet_id), None),
            Packet::Unsubscribe(u) => (None, None, Some(u.packet_id), None),
            Packet::UnsubAck(u) => (None, None, Some(u.packet_id), None),
            _ => (None, None, None, None),
        };
        self.send(DiagEvent {
            time: SystemTime::now(),
            client_id: client_id.clone(),
            transport,
            direction,
            packet_type: packet.packet_type(),
            topic,
            qos,
            packet_id,
            size,
            payload_preview,
        });
    }

    pub fn send(&self, event: DiagEvent) {
        // No receiver is fine: nobody is watching.
        let _ = self.sender.send(Arc::new(event));
    }
}

pub fn preview(payload: &Bytes) -> Bytes {
    payload.slice(..payload.len().min(PAYLOAD_PREVIEW))
}

/// One line of the diagnostics log file.
pub fn format_line(event: &DiagEvent) -> String {
    let millis = event
        .time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let direction = match event.direction {
        Direction::In => "in ",
        Direction::Out => "out",
    };
    let mut line = format!(
        "{millis} {direction} {} {} size={}",
        event.client_id, event.packet_type, event.size
    );
    if let Some(topic) = &event.topic {
        line.push_str(&format!(" topic={topic}"));
    }
    if let Some(qos) = event.qos {
        line.push_str(&format!(" qos={}", qos as u8));
    }
    if let Some(id) = event.packet_id {
        line.push_str(&format!(" id={id}"));
    }
    if let Some(payload) = &event.payload_preview {
        line.push_str(&format!(" payload={:?}", String::from_utf8_lossy(payload)));
    }
    line.push('\n');
    line
}

/// Appends every event to `path` until `stop` is cancelled.
pub async fn run_log_file(
    path: PathBuf,
    mut events: broadcast::Receiver<Arc<DiagEvent>>,
    stop: CancellationToken,
) {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await;
    let mut file = match file {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot open the diagnostics log file");
            return;
        }
    };
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = events.recv() => event,
        };
        match event {
            Ok(event) => {
                if let Err(error) = file.write_all(format_line(&event).as_bytes()).await {
                    tracing::warn!(path = %path.display(), %error, "diagnostics log write failed");
                    break;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let line = format!("... {missed} events lost (log file too slow)\n");
                let _ = file.write_all(line.as_bytes()).await;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    let _ = file.flush().await;
}
