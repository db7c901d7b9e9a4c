//! The line between the router and one connection's writer: what may be queued for the
//! writer ([`Outbound`]), how much is waiting ([`Backlog`]), the throttle a congested
//! subscriber puts on its publishers ([`Throttle`]), and the handle every sender holds
//! ([`ConnectionLink`]). Everything that reaches a writer goes through a link, so the
//! backlog counts every item the writer will take.

use std::collections::VecDeque;
use std::sync::atomic::{
    AtomicBool, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::broker::message::Delivery;
use crate::mqtt::{Packet, Properties, PubResponse, QoS, ReasonCode};

/// What the router (or the reader half of a connection) asks a connection's writer to send.
#[derive(Debug)]
pub enum Outbound {
    Packet(Box<Packet>),
    /// A PUBACK, PUBREC, PUBREL or PUBCOMP without properties: the most frequent control
    /// packets, sent without allocating a boxed [`Packet`] each.
    Ack(Ack),
    Publish(Delivery),
    /// Send DISCONNECT with this reason (MQTT 5.0 only), then close the connection.
    Close(Option<ReasonCode>),
}

/// Which acknowledgement an [`Outbound::Ack`] is.
// The variants are named after the packet types they stand for.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

/// An acknowledgement of one packet identifier, without properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub kind: AckKind,
    pub packet_id: u16,
    pub reason: ReasonCode,
}

impl Ack {
    pub fn new(kind: AckKind, packet_id: u16, reason: ReasonCode) -> Self {
        Ack {
            kind,
            packet_id,
            reason,
        }
    }

    pub fn success(kind: AckKind, packet_id: u16) -> Self {
        Ack::new(kind, packet_id, ReasonCode::Success)
    }

    /// The packet the writer encodes.
    pub fn into_packet(self) -> Packet {
        let response = PubResponse {
            packet_id: self.packet_id,
            reason: self.reason,
            properties: Properties::default(),
        };
        match self.kind {
            AckKind::PubAck => Packet::PubAck(response),
            AckKind::PubRec => Packet::PubRec(response),
            AckKind::PubRel => Packet::PubRel(response),
            AckKind::PubComp => Packet::PubComp(response),
        }
    }
}

/// What is waiting for one connection's writer. Shared by the router (adds) and the writer
/// (takes).
#[derive(Debug, Default)]
pub struct Backlog {
    items: AtomicUsize,
    /// Payload bytes of the QoS 0 messages among them.
    qos0_bytes: AtomicUsize,
    /// Wakes throttled publishers when the backlog falls to [`BACKLOG_LOW`].
    drained: Notify,
    /// Wakes the connection's own reader, paused at [`READ_PAUSE_ITEMS`], when the backlog
    /// falls to [`READ_RESUME_ITEMS`].
    writer_caught_up: Notify,
    /// Set when a throttled publisher waited in vain: the subscriber is not draining, so it
    /// throttles no one until it has caught up again.
    stalled: AtomicBool,
    /// The DISCONNECT reason the writer sends once every link is dropped (see
    /// [`ConnectionLink::close_after_others`]).
    farewell: Mutex<Option<ReasonCode>>,
    queue: Queue,
}

/// QoS 0 messages are dropped for a connection whose writer is this far behind: a peer that
/// stopped reading (or cannot keep up for long). Bursts below these stay lossless.
pub const QOS0_BACKLOG_ITEMS: usize = 100_000;
pub const QOS0_BACKLOG_BYTES: usize = 64 * 1024 * 1024;
/// Above this many waiting items, publishers whose messages feed the backlog are slowed
/// down (their sockets are not read) until it falls to [`BACKLOG_LOW`]: backpressure
/// instead of loss for a subscriber that is slower than its publishers. A subscriber that
/// does not drain while a publisher waits, or falls behind to the drop limits, throttles no
/// one: a stuck client costs publishers one short pause, not their throughput.
pub const BACKLOG_HIGH: usize = 10_000;
pub const BACKLOG_LOW: usize = 2_000;

/// Above this many waiting items, the connection's own reader stops reading its socket until
/// the writer has taken the backlog down to [`READ_RESUME_ITEMS`]. Every PINGREQ owes a
/// PINGRESP (MQTT-3.12.4-1), every SUBSCRIBE a SUBACK, every QoS 1/2 PUBLISH an
/// acknowledgement: a client that sends them and never reads the answers is slowed down by
/// TCP (its writes block) instead of growing the broker's memory. The router never waits on
/// a connection; only the connection's own reader does.
pub const READ_PAUSE_ITEMS: usize = 1_024;
pub const READ_RESUME_ITEMS: usize = 256;

impl Backlog {
    /// Called by the writer for every item it takes off the channel.
    pub fn taken(&self, item: &Outbound) {
        let before = self.items.fetch_sub(1, Relaxed);
        if before == BACKLOG_LOW + 1 {
            self.stalled.store(false, Relaxed);
            self.drained.notify_waiters();
        }
        if before == READ_RESUME_ITEMS + 1 {
            // A permit is stored if the reader is not waiting yet, so the wake-up is not lost.
            self.writer_caught_up.notify_one();
        }
        if let Outbound::Publish(delivery) = item
            && delivery.qos == QoS::AtMostOnce
        {
            self.qos0_bytes
                .fetch_sub(delivery.message.publish.payload.len(), Relaxed);
        }
    }

    /// Items waiting for the writer, control packets included.
    pub fn waiting(&self) -> usize {
        self.items.load(Relaxed)
    }

    fn has_room_for_qos0(&self) -> bool {
        self.items.load(Relaxed) < QOS0_BACKLOG_ITEMS
            && self.qos0_bytes.load(Relaxed) < QOS0_BACKLOG_BYTES
    }

    /// Behind enough to slow publishers down, not so far behind as to be given up on.
    pub fn is_congested(&self) -> bool {
        self.items.load(Relaxed) >= BACKLOG_HIGH
            && self.has_room_for_qos0()
            && !self.stalled.load(Relaxed)
    }

    /// Whether the connection's reader should stop reading its socket.
    pub fn is_over_read_limit(&self) -> bool {
        self.items.load(Relaxed) >= READ_PAUSE_ITEMS
    }

    /// Waits until the writer has taken the backlog down to [`READ_RESUME_ITEMS`].
    pub async fn wait_for_room_to_read(&self) {
        while self.items.load(Relaxed) > READ_RESUME_ITEMS {
            self.writer_caught_up.notified().await;
        }
    }

    /// Waits until the backlog is down to [`BACKLOG_LOW`], at most `limit`.
    pub async fn wait_drained(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Created before the check so that a wake-up in between is not lost.
            let drained = self.drained.notified();
            if self.items.load(Relaxed) <= BACKLOG_LOW {
                return;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                self.stalled.store(true, Relaxed);
                return;
            }
        }
    }
}

/// A publisher's connection is told here which congested backlog to wait for before it
/// reads more from its socket.
#[derive(Debug, Default)]
pub struct Throttle {
    waiting_for: Mutex<Option<Arc<Backlog>>>,
}

impl Throttle {
    pub fn set(&self, backlog: Arc<Backlog>) {
        *lock(&self.waiting_for) = Some(backlog);
    }

    pub fn take(&self) -> Option<Arc<Backlog>> {
        lock(&self.waiting_for).take()
    }
}

/// A line to one connection's writer, held by the router and by the connection's own reader.
/// It is the only way in: every item counts in the [`Backlog`] when sent and is uncounted
/// when the writer takes it through the [`Outbox`], so the count never drifts (a PINGRESP
/// sent around it once made the count underflow, and QoS 0 delivery stopped for good).
///
/// The queue is unbounded, but every kind of item on it is bounded elsewhere: QoS 1/2
/// deliveries by the inflight window, QoS 0 deliveries by the [`Backlog`] limits, control
/// packets by the reader pausing at [`READ_PAUSE_ITEMS`].
#[derive(Debug)]
pub struct ConnectionLink {
    pub connection_id: u64,
    pub backlog: Arc<Backlog>,
    /// Set by the router when this client's messages feed a congested backlog.
    pub throttle: Arc<Throttle>,
}

impl ConnectionLink {
    /// A link and the writer's end of it.
    pub fn new(connection_id: u64) -> (ConnectionLink, Outbox) {
        let backlog = Arc::new(Backlog::default());
        backlog.queue.links.store(1, Relaxed);
        let link = ConnectionLink {
            connection_id,
            backlog: backlog.clone(),
            throttle: Arc::new(Throttle::default()),
        };
        let outbox = Outbox {
            backlog,
            local: VecDeque::new(),
        };
        (link, outbox)
    }

    /// Queues `item` for the writer; false when the writer has ended.
    pub fn send(&self, item: Outbound) -> bool {
        let queue = &self.backlog.queue;
        self.backlog.items.fetch_add(1, Relaxed);
        if queue.writer_gone.load(Acquire) {
            // Never reaches the writer, so never counted out there.
            self.backlog.taken(&item);
            return false;
        }
        let was_empty = {
            let mut items = lock(&queue.items);
            let was_empty = items.is_empty();
            items.push_back(item);
            was_empty
        };
        if was_empty {
            // The writer takes everything queued when it wakes: one wake-up per batch.
            queue.ready.notify_one();
        }
        true
    }

    /// Drops this handle, asking the writer to send DISCONNECT with `reason` (if any) and close
    /// once every other handle is dropped too. The reader ends a connection this way: the
    /// router drops its handle when it handles the reader's `ConnectionLost`, after the
    /// packets the reader forwarded before it, so their answers (a PUBREC for a PUBLISH
    /// accepted before the one over Receive Maximum) reach the client before the DISCONNECT.
    pub fn close_after_others(self, reason: Option<ReasonCode>) {
        *lock(&self.backlog.farewell) = reason;
    }

    /// Sends a QoS 0 delivery unless the writer is too far behind; false means dropped.
    pub fn try_send_qos0(&self, delivery: Delivery) -> bool {
        if !self.backlog.has_room_for_qos0() {
            return false;
        }
        self.backlog
            .qos0_bytes
            .fetch_add(delivery.message.publish.payload.len(), Relaxed);
        self.send(Outbound::Publish(delivery))
    }
}

impl Clone for ConnectionLink {
    fn clone(&self) -> Self {
        self.backlog.queue.links.fetch_add(1, Relaxed);
        ConnectionLink {
            connection_id: self.connection_id,
            backlog: self.backlog.clone(),
            throttle: self.throttle.clone(),
        }
    }
}

impl Drop for ConnectionLink {
    fn drop(&mut self) {
        let queue = &self.backlog.queue;
        if queue.links.fetch_sub(1, AcqRel) == 1 {
            // The last one: the writer finishes what is queued and ends.
            queue.ready.notify_one();
        }
    }
}

/// What waits for one writer. A deque under a lock rather than a channel: it holds no
/// memory while empty, where a channel keeps a block of slots for every connection, idle
/// or not.
#[derive(Debug, Default)]
struct Queue {
    items: Mutex<VecDeque<Outbound>>,
    /// Wakes the writer: something was queued into an empty queue, or the last link went.
    ready: Notify,
    /// Live [`ConnectionLink`]s.
    links: AtomicUsize,
    /// The writer has ended: nothing more is queued.
    writer_gone: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writer's end of a [`ConnectionLink`]: taking an item uncounts it from the backlog.
#[derive(Debug)]
pub struct Outbox {
    backlog: Arc<Backlog>,
    /// Items taken from the shared queue in one go, handed out one by one.
    local: VecDeque<Outbound>,
}

impl Outbox {
    /// The next item; `None` once every link is dropped and the queue is empty.
    pub async fn recv(&mut self) -> Option<Outbound> {
        loop {
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            if self.backlog.queue.links.load(Acquire) == 0 {
                // What the last link queued before it went is visible now.
                return self.try_recv();
            }
            // A permit stored by a send in between is not lost.
            self.backlog.queue.ready.notified().await;
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        if self.local.is_empty() {
            let mut shared = lock(&self.backlog.queue.items);
            if shared.is_empty() {
                return None;
            }
            // The emptied local deque goes back, so a busy connection reuses both.
            std::mem::swap(&mut *shared, &mut self.local);
        }
        let item = self.local.pop_front()?;
        self.backlog.taken(&item);
        Some(item)
    }

    /// Frees the queues' memory; called when the writer has nothing left to do, so that an
    /// idle connection holds none.
    pub fn release_memory(&mut self) {
        self.local = VecDeque::new();
        let mut shared = lock(&self.backlog.queue.items);
        if shared.is_empty() {
            *shared = VecDeque::new();
        }
    }

    /// The DISCONNECT reason to send after the last item (see
    /// [`ConnectionLink::close_after_others`]).
    pub fn farewell(&self) -> Option<ReasonCode> {
        *lock(&self.backlog.farewell)
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let queue = &self.backlog.queue;
        queue.writer_gone.store(true, Release);
        // What can no longer be written is freed now, not when the last link goes.
        let abandoned = std::mem::take(&mut *lock(&queue.items));
        for item in abandoned.iter().chain(self.local.iter()) {
            self.backlog.taken(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use bytes::Bytes;

    use super::*;
    use crate::broker::message::Message;
    use crate::mqtt::{PacketType, Publish};

    fn qos0() -> Outbound {
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Arc::from("t"),
            packet_id: None,
            properties: Default::default(),
            payload: Bytes::from_static(b"12345678"),
        };
        Outbound::Publish(Delivery {
            message: Arc::new(Message::new(publish, StdInstant::now())),
            qos: QoS::AtMostOnce,
            packet_id: None,
            dup: false,
            retain: false,
            subscription_ids: Vec::new(),
        })
    }

    fn link() -> (ConnectionLink, Outbox) {
        ConnectionLink::new(1)
    }

    fn fill(link: &ConnectionLink, n: usize) {
        for _ in 0..n {
            let Outbound::Publish(delivery) = qos0() else {
                unreachable!()
            };
            assert!(link.try_send_qos0(delivery));
        }
    }

    #[tokio::test]
    async fn congestion_starts_at_the_high_mark_and_drains_to_the_low_one() {
        let (link, mut receiver) = link();
        fill(&link, BACKLOG_HIGH - 1);
        assert!(!link.backlog.is_congested());
        fill(&link, 1);
        assert!(link.backlog.is_congested());
        assert_eq!(link.backlog.qos0_bytes.load(Relaxed), BACKLOG_HIGH * 8);

        let backlog = link.backlog.clone();
        let waiter = tokio::spawn(async move {
            backlog.wait_drained(Duration::from_secs(5)).await;
        });
        tokio::task::yield_now().await;
        for _ in 0..(BACKLOG_HIGH - BACKLOG_LOW) {
            receiver.try_recv().expect("queued");
        }
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken at the low mark")
            .unwrap();
        assert!(!link.backlog.is_congested());
        assert_eq!(link.backlog.qos0_bytes.load(Relaxed), BACKLOG_LOW * 8);
    }

    #[tokio::test]
    async fn a_backlog_that_does_not_drain_stops_throttling_until_it_catches_up() {
        let (link, mut receiver) = link();
        fill(&link, BACKLOG_HIGH);
        link.backlog.wait_drained(Duration::from_millis(20)).await;
        assert!(!link.backlog.is_congested(), "stalled: throttles no one");
        for _ in 0..(BACKLOG_HIGH - BACKLOG_LOW) {
            receiver.try_recv().expect("queued");
        }
        fill(&link, BACKLOG_HIGH - BACKLOG_LOW);
        assert!(
            link.backlog.is_congested(),
            "caught up once: throttles again"
        );
    }

    #[test]
    fn qos0_is_dropped_at_the_item_limit() {
        let (link, _receiver) = link();
        fill(&link, QOS0_BACKLOG_ITEMS);
        let Outbound::Publish(delivery) = qos0() else {
            unreachable!()
        };
        assert!(!link.try_send_qos0(delivery));
        assert!(
            !link.backlog.is_congested(),
            "given up on: throttles no one"
        );
    }

    /// Everything the writer takes was counted in: a PINGRESP from the reader among QoS 0
    /// deliveries leaves the backlog empty once the writer has taken all, and QoS 0 still
    /// has room.
    #[test]
    fn every_item_sent_is_counted_in_and_out() {
        let (link, mut outbox) = link();
        let reader = link.clone();
        fill(&link, 2);
        assert!(reader.send(Outbound::Packet(Box::new(Packet::PingResp))));
        assert!(link.send(Outbound::Ack(Ack::success(AckKind::PubAck, 1))));
        assert_eq!(link.backlog.items.load(Relaxed), 4);
        while outbox.try_recv().is_some() {}
        assert_eq!(link.backlog.items.load(Relaxed), 0);
        assert_eq!(link.backlog.qos0_bytes.load(Relaxed), 0);
        assert!(link.backlog.has_room_for_qos0());
        fill(&link, 1);
    }

    /// Control packets count like deliveries: past the pause mark the reader waits, and the
    /// writer taking the backlog down to the resume mark wakes it.
    #[tokio::test]
    async fn the_reader_pauses_at_the_pause_mark_and_resumes_at_the_resume_mark() {
        let (link, mut outbox) = link();
        for _ in 0..READ_PAUSE_ITEMS - 1 {
            link.send(Outbound::Packet(Box::new(Packet::PingResp)));
        }
        assert!(!link.backlog.is_over_read_limit());
        link.send(Outbound::Ack(Ack::success(AckKind::PubAck, 1)));
        assert!(link.backlog.is_over_read_limit());

        let backlog = link.backlog.clone();
        let mut reader = tokio::spawn(async move { backlog.wait_for_room_to_read().await });
        for _ in 0..READ_PAUSE_ITEMS - READ_RESUME_ITEMS - 1 {
            outbox.try_recv().expect("queued");
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut reader)
                .await
                .is_err(),
            "still paused one item above the resume mark"
        );
        outbox.try_recv().expect("queued");
        tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("woken at the resume mark")
            .expect("no panic");
        assert!(!link.backlog.is_over_read_limit());
    }

    /// The writer gets what was queued, then the end once every link is gone, then the
    /// reason the last one left (the reader's, after the router's answers).
    #[tokio::test]
    async fn the_writer_gets_everything_queued_then_the_end_and_the_farewell() {
        let (router, mut outbox) = link();
        let reader = router.clone();
        assert!(router.send(Outbound::Ack(Ack::success(AckKind::PubRec, 1))));
        reader.close_after_others(Some(ReasonCode::ReceiveMaximumExceeded));
        assert!(router.send(Outbound::Ack(Ack::success(AckKind::PubRec, 2))));
        let waiting = tokio::spawn(async move {
            let mut taken = Vec::new();
            while let Some(item) = outbox.recv().await {
                taken.push(item);
            }
            (taken.len(), outbox.farewell())
        });
        drop(router);
        let (taken, farewell) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("ends once every link is dropped")
            .expect("no panic");
        assert_eq!(taken, 2);
        assert_eq!(farewell, Some(ReasonCode::ReceiveMaximumExceeded));
    }

    #[test]
    fn an_item_sent_to_an_ended_writer_is_not_counted() {
        let (link, outbox) = link();
        drop(outbox);
        assert!(!link.send(Outbound::Packet(Box::new(Packet::PingResp))));
        let Outbound::Publish(delivery) = qos0() else {
            unreachable!()
        };
        assert!(!link.try_send_qos0(delivery));
        assert_eq!(link.backlog.items.load(Relaxed), 0);
        assert_eq!(link.backlog.qos0_bytes.load(Relaxed), 0);
    }

    #[test]
    fn an_ack_becomes_the_packet_of_its_kind_without_properties() {
        let cases = [
            (AckKind::PubAck, PacketType::PubAck),
            (AckKind::PubRec, PacketType::PubRec),
            (AckKind::PubRel, PacketType::PubRel),
            (AckKind::PubComp, PacketType::PubComp),
        ];
        for (kind, packet_type) in cases {
            let packet = Ack::new(kind, 7, ReasonCode::NoMatchingSubscribers).into_packet();
            assert_eq!(packet.packet_type(), packet_type);
            let (Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r)) =
                packet
            else {
                panic!("not an acknowledgement: {packet:?}");
            };
            assert_eq!(r.packet_id, 7);
            assert_eq!(r.reason, ReasonCode::NoMatchingSubscribers);
            assert_eq!(r.properties, Properties::default());
        }
        assert_eq!(Ack::success(AckKind::PubAck, 1).reason, ReasonCode::Success);
    }
}
