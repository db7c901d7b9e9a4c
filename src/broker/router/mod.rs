//! The router actor: owns every session, the subscription tree and the retained messages,
//! and is reached only through its channel. It never waits on a connection: deliveries go
//! to each connection's writer through [`ConnectionLink`].
//!
//! This module holds the actor itself, its inbox messages, the run loop and the dispatch of
//! each message; the work is done in one submodule per job:
//! - [`lifecycle`]: connect, takeover, resume, connection lost, session end and expiry;
//! - [`wills`]: holding a will for its delay and publishing it;
//! - [`delivery`]: routing a PUBLISH, delivering, the inflight window and acknowledgements;
//! - [`subscribe`]: SUBSCRIBE and UNSUBSCRIBE;
//! - [`permissions`]: topic permissions on PUBLISH, SUBSCRIBE, delivery and wills;
//! - [`retained`]: the retained messages, and those a new subscription gets, in chunks
//!   across router turns;
//! - [`retained_sweep`]: purging expired retained messages from the one-second tick;
//! - [`shared_subs`]: handing a leaving member's shared-subscription messages to another;
//! - [`persist`]: writing to the store without waiting for the disk, and what waits for
//!   durability (acknowledgements in the unbuffered modes);
//! - [`admin`]: the client list, the gauges and `$SYS`.

mod admin;
mod delivery;
mod lifecycle;
mod permissions;
mod persist;
mod retained;
mod retained_sweep;
mod shared_subs;
mod spill;
mod store_switch;
mod subscribe;
#[cfg(test)]
mod testing;
mod wills;

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use self::lifecycle::TimerKind;
use self::persist::Persistence;
use self::retained::{PendingRetained, RETAINED_RETRY, RetainedMessages, RetainedTurn};
use self::retained_sweep::SweepSchedule;
pub use self::store_switch::{StoreSwitch, Switched};
use super::api::{ClientDetail, ClientInfo};
use super::connection::link::{Backlog, ConnectionLink};
use super::metrics::{Metrics, RateMeter};
use super::session::{ConnectionInfo, Inflight, Queued, Session, SessionAccess};
use super::state::BrokerState;
use super::subscriptions::{Match, SessionKey, SubscriptionTree};
use crate::config::Limits;
use crate::mqtt::{ConnAck, Packet, ProtocolVersion, ReasonCode, Will};
use crate::store::{Store, StoreError, StoredSession};

/// Capacity of the router's inbox: connections wait (and stop reading their socket) when
/// it is full, which pushes back on publishers.
pub const ROUTER_CHANNEL_CAPACITY: usize = 4096;

/// A client whose CONNECT was accepted by its connection task.
#[derive(Debug)]
pub struct ConnectRequest {
    pub client_id: Arc<str>,
    pub protocol: ProtocolVersion,
    pub clean_start: bool,
    /// Seconds after disconnection; `None` never expires.
    pub expiry_secs: Option<u32>,
    pub will: Option<Will>,
    /// How many QoS 1/2 messages may be in flight to the client.
    pub window: usize,
    pub link: ConnectionLink,
    pub info: ConnectionInfo,
    /// CONNACK as the connection negotiated it; the router sets Session Present.
    pub connack: ConnAck,
    pub reply: oneshot::Sender<SessionKey>,
}

// PUBLISH travels by value: boxing it would cost an allocation per message, and the
// channel's slots are allocated once in blocks.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RouterMsg {
    Connect(Box<ConnectRequest>),
    /// Packets from a connected client, in the order received (PUBLISH with its topic alias
    /// resolved): all those one read from the socket brought in, so that the router is
    /// woken once per read rather than once per packet.
    FromClient {
        session: SessionKey,
        connection_id: u64,
        packets: Vec<Packet>,
    },
    /// The connection ended on its own (client DISCONNECT, socket closed, protocol error).
    ConnectionLost {
        session: SessionKey,
        connection_id: u64,
        publish_will: bool,
        /// Session Expiry Interval sent in a v5 DISCONNECT.
        expiry_secs: Option<u32>,
    },
    /// An outbound PUBLISH was larger than the client's Maximum Packet Size and was
    /// discarded as if delivered (MQTT-3.1.2-25).
    Discarded {
        session: SessionKey,
        connection_id: u64,
        packet_id: u16,
    },
    Configure(Arc<crate::config::Config>),
    /// Moves the durable state to another store (an Apply changed the persistence).
    SwitchStore {
        switch: StoreSwitch,
        reply: oneshot::Sender<Result<Switched, String>>,
    },
    Clients(oneshot::Sender<Vec<ClientInfo>>),
    /// One session's details, connected or not (the console's detail pane).
    ClientDetail {
        client_id: String,
        reply: oneshot::Sender<Option<ClientDetail>>,
    },
    DisconnectClient {
        client_id: String,
        reply: oneshot::Sender<bool>,
    },
    /// Closes the connections made with one of these client certificates (SHA-256
    /// thumbprints): they were revoked. Replies with how many were closed.
    DisconnectCertificates {
        thumbprints: Vec<Arc<str>>,
        reply: oneshot::Sender<usize>,
    },
    /// Closes every connection with this v5 reason (shutdown, service disabled).
    DisconnectAll {
        reason: ReasonCode,
        /// The broker is shutting down: the sessions it holds end with it.
        shutdown: bool,
        reply: oneshot::Sender<()>,
    },
}

/// Messages the router handles in a row once woken, before it looks at its timers again.
const INBOX_BATCH: usize = 64;

pub struct Router {
    shared: Arc<BrokerState>,
    persist: Persistence,
    limits: Limits,
    sys_interval: Option<Duration>,
    /// The topic permissions of the applied configuration.
    permissions: Arc<crate::auth::acl::TopicPermissions>,
    /// Some rule exists: deliveries may need a read check.
    permissions_active: bool,
    /// Boxed: the map's spare buckets then cost a pointer each, not a whole session.
    sessions: HashMap<SessionKey, Box<Session>>,
    by_client_id: HashMap<Arc<str>, SessionKey>,
    next_session_key: SessionKey,
    tree: SubscriptionTree,
    retained: RetainedMessages,
    /// Retained messages owed to new subscriptions, sent a chunk per session per turn.
    pending_retained: PendingRetained,
    /// When expired retained messages are next worth a sweep.
    retained_sweep: SweepSchedule,
    timers: BTreeSet<(Instant, SessionKey, TimerKind)>,
    /// Reused for every PUBLISH so that matching allocates nothing per subscriber.
    scratch: Vec<Match>,
    /// A subscriber backlog the current PUBLISH found congested (see [`Backlog`]).
    congested: Option<Arc<Backlog>>,
    /// Windows of queues being read back from the store (see [`spill`]).
    reads: spill::QueueReads,
    /// The id of the next payload pushed to the store.
    next_payload: u64,
    inbox: mpsc::Receiver<RouterMsg>,
}

impl Router {
    pub fn new(
        shared: Arc<BrokerState>,
        store: Arc<dyn Store>,
        inbox: mpsc::Receiver<RouterMsg>,
    ) -> Router {
        Router {
            shared,
            persist: Persistence::new(store),
            limits: Limits::default(),
            sys_interval: None,
            permissions: Arc::default(),
            permissions_active: false,
            sessions: HashMap::new(),
            by_client_id: HashMap::new(),
            next_session_key: 1,
            tree: SubscriptionTree::default(),
            retained: RetainedMessages::default(),
            pending_retained: PendingRetained::default(),
            retained_sweep: SweepSchedule::new(Instant::now()),
            timers: BTreeSet::new(),
            scratch: Vec::new(),
            congested: None,
            reads: spill::QueueReads::default(),
            next_payload: 1,
            inbox,
        }
    }

    pub async fn run(mut self) {
        self.load().await;
        let mut second = tokio::time::interval(Duration::from_secs(1));
        second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rates = RateMeter::new(&self.shared.metrics);
        // The first tick after $SYS is switched on publishes at once.
        let mut last_sys: Option<Instant> = None;
        let mut retained_turn = RetainedTurn::Idle;
        loop {
            let next_timer = self.timers.first().map(|t| t.0);
            tokio::select! {
                message = self.inbox.recv() => match message {
                    Some(message) => {
                        self.handle(message).await;
                        // Whatever else is waiting is handled before going back to the
                        // select (bounded, so timers and the tick still get their turn).
                        for _ in 1..INBOX_BATCH {
                            match self.inbox.try_recv() {
                                Ok(message) => self.handle(message).await,
                                Err(_) => break,
                            }
                        }
                    }
                    None => break,
                },
                _ = sleep_until(next_timer), if next_timer.is_some() => self.fire_timers().await,
                _ = second.tick() => {
                    rates.update(&self.shared.metrics);
                    self.sweep_expired_retained(Instant::now());
                    self.sweep_expired_queues();
                    if let Some(interval) = self.sys_interval
                        && last_sys.is_none_or(|at| at.elapsed() + Duration::from_millis(50) >= interval)
                    {
                        last_sys = Some(Instant::now());
                        self.publish_sys().await;
                    }
                }
                _ = retained_wait(retained_turn), if retained_turn != RetainedTurn::Idle => {}
                Some(read) = self.reads.running.join_next(), if !self.reads.running.is_empty() => {
                    match read {
                        Ok(read) => self.store_read(read).await,
                        Err(error) => tracing::error!(%error, "store: a queue read failed"),
                    }
                }
                changed = self.persist.durable.changed(), if self.persist.is_waiting() => {
                    if changed.is_err() {
                        tracing::error!("the store's durability task has stopped");
                    }
                }
            }
            // What this turn changed is written (without waiting for the disk), and what
            // waited for durable batches goes out.
            self.end_turn();
            // Every turn, whatever woke the router, moves the pending retained matches on.
            retained_turn = self.send_retained_chunks().await;
        }
    }

    /// Starts from what the store holds (nothing for a fresh memory store).
    async fn load(&mut self) {
        let store = self.persist.store.clone();
        // Reading the store is the one time the router waits for it: before it serves.
        let loaded = tokio::task::spawn_blocking(move || store.load()).await;
        let snapshot = match loaded {
            Ok(Ok(snapshot)) => snapshot,
            Ok(Err(error)) => {
                Metrics::add(&self.shared.metrics.store_errors, 1);
                tracing::error!(%error, "cannot load the store; starting empty");
                return;
            }
            Err(error) => {
                Metrics::add(&self.shared.metrics.store_errors, 1);
                tracing::error!(%error, "loading the store failed; starting empty");
                return;
            }
        };
        let now = Instant::now();
        self.next_payload = self.next_payload.max(snapshot.next_payload);
        for message in snapshot.retained {
            if !message.is_expired(now) {
                self.retained_sweep.note(message.expires_at);
                self.retained.set(message);
            }
        }
        for stored in snapshot.sessions {
            self.restore_session(stored, now).await;
        }
        self.update_gauges();
    }

    /// One session back from the store: subscriptions, messages in flight (resent with DUP
    /// and their packet ids when the client returns, MQTT-4.4.0-1) and queued, inbound QoS 2
    /// packet ids, expiry and will. A session that was connected when the broker stopped
    /// lost its connection then: its will goes out (after its delay) and its expiry starts.
    async fn restore_session(&mut self, stored: StoredSession, now: Instant) {
        let StoredSession {
            record,
            queued,
            spilled,
            inbound_qos2,
        } = stored;
        let key = self.new_session(record.client_id.clone(), record.protocol);
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        session.expiry_secs = record.expiry_secs;
        for (filter, subscription) in &record.subscriptions {
            session.subscriptions.insert(filter.clone(), *subscription);
            self.tree.insert(filter, key, *subscription);
        }
        session.incoming_qos2.extend(inbound_qos2);
        for item in queued {
            // New messages are numbered after it, or they would take (and overwrite in
            // the store) the records of restored ones.
            session.restored_sequence(item.sequence);
            let queued = Queued {
                sequence: item.sequence,
                payload: item.payload,
                message: item.message,
                qos: item.qos,
                retain: item.retain,
                subscription_ids: item.subscription_ids,
                share: item.share,
            };
            match item.stage {
                Some(stage) => session.inflight.push_back(Inflight {
                    packet_id: stage.packet_id,
                    queued,
                    released: stage.released,
                }),
                None => session.queue.push_back(queued),
            }
        }
        if spilled.count > 0 {
            // The waiting messages stay in the store until the client returns.
            session.restored_sequence(spilled.last);
            session.spill = Some(Box::new(crate::broker::session::Spill {
                count: spilled.count,
                from: spilled.from,
                ..Default::default()
            }));
        }
        session.will = record.will.map(Box::new);
        if let Some(username) = record.username {
            // Its topic permissions follow with the configuration (see `attach_permissions`).
            session.access = Some(Box::new(SessionAccess {
                username: Some(username),
                ..SessionAccess::default()
            }));
        }
        match (record.expires_at, record.will_at) {
            (Some(expires_at), will_at) => {
                // Disconnected before the stop: the deadlines continue on the wall clock.
                let at = crate::store::monotonic_deadline(expires_at);
                session.expires_at = Some(at);
                self.timers.insert((at, key, TimerKind::SessionExpiry));
                if let Some(will_at) = will_at {
                    let at = crate::store::monotonic_deadline(will_at);
                    session.will_at = Some(at);
                    self.timers.insert((at, key, TimerKind::Will));
                } else {
                    session.will = None;
                }
            }
            (None, _) if session.expiry_secs == Some(0) => {}
            (None, _) => {
                // Connected when the broker stopped: its connection ended without
                // DISCONNECT (MQTT-3.1.2-8).
                if let Some(will) = self.will_after_disconnect(key, true, now) {
                    self.publish_will(will).await;
                }
                self.schedule_expiry(key, now);
            }
        }
    }

    async fn handle(&mut self, message: RouterMsg) {
        match message {
            RouterMsg::Connect(request) => self.connect(*request).await,
            RouterMsg::FromClient {
                session,
                connection_id,
                packets,
            } => {
                for packet in packets {
                    // A packet can end the connection (e.g. Receive Maximum exceeded): the
                    // rest of the batch is then ignored like anything else it sent later.
                    if !self.is_current(session, connection_id) {
                        break;
                    }
                    self.client_packet(session, packet).await;
                }
            }
            RouterMsg::ConnectionLost {
                session,
                connection_id,
                publish_will,
                expiry_secs,
            } => {
                if self.is_current(session, connection_id) {
                    if let Some(s) = self.sessions.get_mut(&session) {
                        s.connection = None;
                        if let Some(expiry) = expiry_secs {
                            s.expiry_secs = Some(expiry.min(self.limits.max_session_expiry_secs));
                        }
                    }
                    self.connection_lost(session, publish_will).await;
                }
            }
            RouterMsg::Discarded {
                session,
                connection_id,
                packet_id,
            } => {
                if self.is_current(session, connection_id) {
                    self.complete_outbound(session, packet_id).await;
                }
            }
            RouterMsg::Configure(config) => {
                self.limits = config.effective_limits();
                self.sys_interval = match config.broker.sys_interval_secs {
                    0 => None,
                    secs => Some(Duration::from_secs(u64::from(secs))),
                };
                self.set_permissions(&config.acl);
            }
            RouterMsg::SwitchStore { switch, reply } => {
                let _ = reply.send(self.switch_store(switch).await);
            }
            RouterMsg::Clients(reply) => {
                let _ = reply.send(self.clients());
            }
            RouterMsg::ClientDetail { client_id, reply } => {
                let _ = reply.send(self.client_detail(&client_id, Instant::now()));
            }
            RouterMsg::DisconnectClient { client_id, reply } => {
                let found = self.disconnect_client(&client_id).await;
                let _ = reply.send(found);
            }
            RouterMsg::DisconnectCertificates { thumbprints, reply } => {
                let closed = self.disconnect_certificates(&thumbprints).await;
                let _ = reply.send(closed);
            }
            RouterMsg::DisconnectAll {
                reason,
                shutdown,
                reply,
            } => {
                self.disconnect_all(reason, shutdown).await;
                if shutdown {
                    // A graceful stop leaves everything written durable.
                    self.stop_store().await;
                }
                let _ = reply.send(());
            }
        }
    }

    fn is_current(&self, session: SessionKey, connection_id: u64) -> bool {
        self.sessions
            .get(&session)
            .and_then(|s| s.link())
            .is_some_and(|link| link.connection_id == connection_id)
    }

    fn new_session(&mut self, client_id: Arc<str>, protocol: ProtocolVersion) -> SessionKey {
        let key = self.next_session_key;
        self.next_session_key += 1;
        self.by_client_id.insert(client_id.clone(), key);
        self.sessions
            .insert(key, Box::new(Session::new(client_id, protocol)));
        key
    }

    /// One packet from a connected client, in the order it was received.
    async fn client_packet(&mut self, key: SessionKey, packet: Packet) {
        match packet {
            Packet::Publish(publish) => self.client_publish(key, publish).await,
            Packet::PubAck(ack) => self.complete_outbound(key, ack.packet_id).await,
            Packet::PubRec(rec) => self.pubrec(key, rec).await,
            Packet::PubComp(comp) => self.complete_outbound(key, comp.packet_id).await,
            Packet::PubRel(rel) => self.pubrel(key, rel.packet_id),
            Packet::Subscribe(subscribe) => self.subscribe(key, subscribe).await,
            Packet::Unsubscribe(unsubscribe) => self.unsubscribe(key, unsubscribe).await,
            other => {
                tracing::debug!(packet = %other.packet_type(), "router ignores packet");
            }
        }
    }
}

/// Until the pending retained matches should have their next turn: at once (after letting
/// the connections' tasks run) when some subscriber can take more, a little later when all
/// of them are waiting for their subscriber.
async fn retained_wait(turn: RetainedTurn) {
    match turn {
        RetainedTurn::Ready => tokio::task::yield_now().await,
        RetainedTurn::Blocked => tokio::time::sleep(RETAINED_RETRY).await,
        RetainedTurn::Idle => std::future::pending().await,
    }
}

/// Counts and logs a store operation that failed; `action` says what was not done.
fn store_failed(
    metrics: &Metrics,
    error: &StoreError,
    action: &str,
    client_id: Option<&str>,
    topic: Option<&str>,
) {
    Metrics::add(&metrics.store_errors, 1);
    tracing::warn!(
        %error,
        client_id = client_id.unwrap_or("-"),
        topic = topic.unwrap_or("-"),
        "store: cannot {action}"
    );
}

/// The v5 reason for refusing what the store could not take: 0x97 Quota exceeded when it
/// is full, 0x80 Unspecified error otherwise (MQTT 5.0 §3.4.2.1).
fn store_failure_reason(error: &StoreError) -> ReasonCode {
    if error.is_storage_full() {
        ReasonCode::QuotaExceeded
    } else {
        ReasonCode::UnspecifiedError
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
