//! Shared test helpers: a broker on an ephemeral port, and a raw-socket MQTT client built on
//! `roost::mqtt` for packet-level assertions.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use roost::broker::BrokerHandle;
use roost::config::Config;
use roost::mqtt::{
    Connect, DecodeError, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS,
    Subscribe, SubscribeFilter, SubscriptionOptions, Will, decode, encode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod child;
pub mod tls;

/// How long a packet the test expects may take to arrive: generous, a loaded machine can be
/// slow; only a failing test waits this long.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long a condition polled with [`eventually`] may take on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `condition` every few milliseconds until it holds; fails the test after [`DEADLINE`].
/// For effects that no packet reports back to the test (a disconnect reaching the router, a
/// figure in the stats).
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the router no longer lists `client_id` as connected: the end of its connection
/// has reached the router (its will, its session going offline). `clients()` is answered by
/// the router itself, so each poll also waits for everything queued to the router before it.
pub async fn wait_offline(broker: &BrokerHandle, client_id: &str) {
    eventually(&format!("{client_id} offline"), || async {
        !broker
            .clients()
            .await
            .iter()
            .any(|c| &*c.client_id == client_id)
    })
    .await;
}

pub struct TestBroker {
    pub handle: BrokerHandle,
    pub addr: SocketAddr,
}

/// A config listening on 127.0.0.1 with an ephemeral port and short intervals.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.broker.enabled = true;
    config.broker.tcp.enabled = true;
    config.broker.tcp.bind = "127.0.0.1".into();
    config.broker.tcp.port = 0;
    config.broker.sys_interval_secs = 0;
    config.limits.connect_timeout_secs = 2;
    config
}

pub async fn start() -> TestBroker {
    start_with(|_| {}).await
}

pub async fn start_with(change: impl FnOnce(&mut Config)) -> TestBroker {
    let mut config = test_config();
    change(&mut config);
    let handle = BrokerHandle::spawn();
    handle.apply(config).await.expect("apply");
    let addr = handle.stats().listeners[0].address;
    TestBroker { handle, addr }
}

/// A broker on the store that `config`'s persistence settings name, opened as `roost
/// serve` opens it, once the directory is free (a broker stopped just before releases its
/// lock when its actors end).
pub async fn start_on_store(config: Config) -> TestBroker {
    let settings = config.persistence.clone();
    let mut opened = None;
    eventually("the store opens (a stopped broker releases it)", || {
        let attempt = roost::store::open_store(&settings);
        let free = attempt.is_ok();
        opened = attempt.ok();
        async move { free }
    })
    .await;
    let opened = opened.expect("the store opens");
    let handle = BrokerHandle::spawn_with_store_for(opened.store, settings);
    handle.apply(config).await.expect("apply");
    let addr = handle.stats().listeners[0].address;
    TestBroker { handle, addr }
}

/// Stops `broker` gracefully and starts another on the store in `config`'s data directory.
pub async fn restart_on(broker: TestBroker, config: Config) -> TestBroker {
    broker.handle.shutdown().await;
    drop(broker);
    start_on_store(config).await
}

impl TestBroker {
    /// See [`wait_offline`].
    pub async fn wait_offline(&self, client_id: &str) {
        wait_offline(&self.handle, client_id).await;
    }

    /// Waits until the broker's figures satisfy `condition` (they are updated as the router
    /// works, so no packet reports them back).
    pub async fn wait_stats(
        &self,
        what: &str,
        condition: impl Fn(&roost::broker::StatsSnapshot) -> bool,
    ) {
        let condition = &condition;
        eventually(what, || async move { condition(&self.handle.stats()) }).await;
    }

    pub async fn raw(&self, version: ProtocolVersion) -> RawClient {
        RawClient::open(self.addr, version).await
    }

    /// A raw client that has connected with `client_id` and clean start.
    pub async fn connected(&self, version: ProtocolVersion, client_id: &str) -> RawClient {
        let mut client = self.raw(version).await;
        let connack = client.connect(connect(version, client_id)).await;
        assert_eq!(connack.reason.code(), 0, "connack {connack:?}");
        client
    }
}

pub fn connect(version: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 30,
        properties: Properties::default(),
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
    }
}

pub fn will(topic: &str, payload: &str, qos: QoS, retain: bool) -> Will {
    Will {
        topic: Arc::from(topic),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos,
        retain,
        properties: Properties::default(),
    }
}

pub fn publish(topic: &str, payload: &str, qos: QoS, packet_id: Option<u16>) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: Arc::from(topic),
        packet_id,
        properties: Properties::default(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    }
}

pub fn subscribe(packet_id: u16, filter: &str, qos: QoS) -> Subscribe {
    Subscribe {
        packet_id,
        properties: Properties::default(),
        filters: vec![SubscribeFilter {
            filter: filter.into(),
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        }],
    }
}

/// A client that speaks MQTT through `roost::mqtt` and lets tests see every byte.
pub struct RawClient {
    pub stream: TcpStream,
    pub version: ProtocolVersion,
    buffer: BytesMut,
}

impl RawClient {
    /// A client on a stream the test connected itself (to handle a refused connection).
    pub fn from_stream(stream: TcpStream, version: ProtocolVersion) -> RawClient {
        RawClient {
            stream,
            version,
            buffer: BytesMut::new(),
        }
    }

    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            version,
            buffer: BytesMut::new(),
        }
    }

    /// Sends CONNECT and returns the CONNACK.
    pub async fn connect(&mut self, connect: Connect) -> roost::mqtt::ConnAck {
        self.send(&Packet::Connect(Box::new(connect))).await;
        match self.recv().await {
            Some(Packet::ConnAck(connack)) => connack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        encode(packet, self.version, u32::MAX, &mut out).expect("encode");
        self.stream.write_all(&out).await.expect("write");
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn publish(&mut self, publish: Publish) {
        self.send(&Packet::Publish(publish)).await;
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<roost::mqtt::ReasonCode> {
        self.send(&Packet::Subscribe(subscribe(1, filter, qos)))
            .await;
        match self.recv().await {
            Some(Packet::SubAck(suback)) => suback.reasons,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// A barrier through the router: UNSUBSCRIBE of a filter nobody uses, and its UNSUBACK.
    /// The connection forwards this client's packets to the router in order, so when the
    /// UNSUBACK arrives everything this client sent before has been routed (retained messages
    /// stored, PUBLISHes handed to the subscribers' connections). It changes no state. The
    /// client must have nothing else due before the UNSUBACK.
    pub async fn sync(&mut self) {
        const SYNC_PACKET_ID: u16 = 65_000;
        self.send(&Packet::Unsubscribe(roost::mqtt::Unsubscribe {
            packet_id: SYNC_PACKET_ID,
            properties: Properties::default(),
            filters: vec!["roost-test/sync/never-subscribed".into()],
        }))
        .await;
        match self.recv().await {
            Some(Packet::UnsubAck(ack)) if ack.packet_id == SYNC_PACKET_ID => {}
            other => panic!("expected the UNSUBACK of the sync barrier, got {other:?}"),
        }
    }

    pub async fn puback(&mut self, packet_id: u16) {
        self.send(&Packet::PubAck(PubResponse::success(packet_id)))
            .await;
    }

    /// The next packet, or `None` when the broker closed the connection. Panics after
    /// [`WAIT`] without either.
    pub async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no packet within {WAIT:?}"))
    }

    /// `Some(None)`: closed; `None`: nothing within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Option<Packet>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match decode(&mut self.buffer, Some(self.version), u32::MAX) {
                Ok(Some(packet)) => return Some(Some(packet)),
                Ok(None) => {}
                Err(error) => panic!("broker sent a bad packet: {error:?}"),
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buffer));
            match read.await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Asserts the broker has nothing for this client: after a router barrier ([`Self::sync`]:
    /// whatever the router had for this client before it would arrive ahead of the UNSUBACK),
    /// nothing more arrives for `wait` either.
    pub async fn expect_nothing(&mut self, wait: Duration) {
        self.sync().await;
        self.expect_silence(wait).await;
    }

    /// Asserts nothing arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(packet) = self.recv_within(wait).await {
            panic!("expected nothing, got {packet:?}");
        }
    }

    /// The next PUBLISH (skipping nothing: anything else fails the test).
    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(publish)) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Reads until the broker closes; returns the DISCONNECT it sent first, if any.
    pub async fn expect_disconnect(&mut self) -> Option<roost::mqtt::Disconnect> {
        let mut disconnect = None;
        loop {
            match self.recv().await {
                Some(Packet::Disconnect(d)) => disconnect = Some(d),
                Some(_) => {}
                None => return disconnect,
            }
        }
    }
}

pub fn decode_error_reason(error: DecodeError) -> u8 {
    error.reason_code().code()
}

/// Builds a rumqttc v3.1.1 client and spawns its event loop, forwarding incoming PUBLISH.
pub mod v4 {
    use super::*;
    use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet as P};
    use tokio::sync::mpsc;

    pub fn options(addr: SocketAddr, id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(5));
        options
    }

    pub struct Client {
        pub client: AsyncClient,
        pub publishes: mpsc::UnboundedReceiver<rumqttc::Publish>,
        pub connack: rumqttc::ConnAck,
        pub connacks: mpsc::UnboundedReceiver<rumqttc::ConnAck>,
        /// SUBACK, UNSUBACK, PUBACK and PUBCOMP as they arrive, for [`Client::acked`].
        pub acks: mpsc::UnboundedReceiver<P>,
        pub task: tokio::task::JoinHandle<()>,
    }

    pub async fn spawn(options: MqttOptions) -> Client {
        let (client, eventloop) = AsyncClient::new(options, 100);
        let (ptx, publishes) = mpsc::unbounded_channel();
        let (ctx, mut connacks) = mpsc::unbounded_channel();
        let (atx, acks) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(eventloop, ptx, ctx, atx));
        let connack = tokio::time::timeout(WAIT, connacks.recv())
            .await
            .expect("connack in time")
            .expect("connack");
        Client {
            client,
            publishes,
            connack,
            acks,
            connacks,
            task,
        }
    }

    async fn drive(
        mut eventloop: EventLoop,
        publishes: mpsc::UnboundedSender<rumqttc::Publish>,
        connacks: mpsc::UnboundedSender<rumqttc::ConnAck>,
        acks: mpsc::UnboundedSender<P>,
    ) {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(P::Publish(p))) => {
                    let _ = publishes.send(p);
                }
                Ok(Event::Incoming(P::ConnAck(c))) => {
                    let _ = connacks.send(c);
                }
                Ok(Event::Incoming(
                    ack @ (P::SubAck(_) | P::UnsubAck(_) | P::PubAck(_) | P::PubComp(_)),
                )) => {
                    let _ = acks.send(ack);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    impl Client {
        /// Waits for the broker's next acknowledgement that `is_wanted` accepts, dropping the
        /// others: a SUBACK after `subscribe`, a PUBACK after a QoS 1 `publish` (rumqttc's
        /// calls return when the request is queued, not when the broker has it).
        pub async fn acked(&mut self, what: &str, is_wanted: impl Fn(&P) -> bool) {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                match tokio::time::timeout_at(deadline, self.acks.recv()).await {
                    Ok(Some(ack)) if is_wanted(&ack) => return,
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("event loop ended before the {what}"),
                    Err(_) => panic!("no {what} within {WAIT:?}"),
                }
            }
        }

        /// Waits for the next SUBACK.
        pub async fn suback(&mut self) {
            self.acked("SUBACK", |p| matches!(p, P::SubAck(_))).await;
        }

        /// Waits for the next PUBACK.
        pub async fn puback(&mut self) {
            self.acked("PUBACK", |p| matches!(p, P::PubAck(_))).await;
        }

        pub async fn next_publish(&mut self) -> rumqttc::Publish {
            tokio::time::timeout(WAIT, self.publishes.recv())
                .await
                .expect("publish in time")
                .expect("event loop alive")
        }

        pub async fn no_publish(&mut self, wait: Duration) {
            if let Ok(Some(p)) = tokio::time::timeout(wait, self.publishes.recv()).await {
                panic!("unexpected publish {p:?}");
            }
        }
    }
}

/// The same for rumqttc's MQTT 5 client.
pub mod v5 {
    use super::*;
    use rumqttc::v5::mqttbytes::v5::Packet as P;
    use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
    use tokio::sync::mpsc;

    pub use rumqttc::v5::mqttbytes::v5::{ConnAck, Publish};

    pub fn options(addr: SocketAddr, id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(5));
        options
    }

    pub struct Client {
        pub client: AsyncClient,
        pub publishes: mpsc::UnboundedReceiver<Publish>,
        pub connack: ConnAck,
        /// SUBACK, UNSUBACK, PUBACK and PUBCOMP as they arrive, for [`Client::acked`].
        pub acks: mpsc::UnboundedReceiver<P>,
        pub task: tokio::task::JoinHandle<()>,
    }

    pub async fn spawn(options: MqttOptions) -> Client {
        let (client, eventloop) = AsyncClient::new(options, 100);
        let (ptx, publishes) = mpsc::unbounded_channel();
        let (ctx, mut connacks) = mpsc::unbounded_channel();
        let (atx, acks) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(eventloop, ptx, ctx, atx));
        let connack = tokio::time::timeout(WAIT, connacks.recv())
            .await
            .expect("connack in time")
            .expect("connack");
        Client {
            client,
            publishes,
            connack,
            acks,
            task,
        }
    }

    async fn drive(
        mut eventloop: EventLoop,
        publishes: mpsc::UnboundedSender<Publish>,
        connacks: mpsc::UnboundedSender<ConnAck>,
        acks: mpsc::UnboundedSender<P>,
    ) {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(P::Publish(p))) => {
                    let _ = publishes.send(p);
                }
                Ok(Event::Incoming(P::ConnAck(c))) => {
                    let _ = connacks.send(c);
                }
                Ok(Event::Incoming(
                    ack @ (P::SubAck(_) | P::UnsubAck(_) | P::PubAck(_) | P::PubComp(_)),
                )) => {
                    let _ = acks.send(ack);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    impl Client {
        /// Waits for the broker's next acknowledgement that `is_wanted` accepts, dropping the
        /// others: a SUBACK after `subscribe`, a PUBACK after a QoS 1 `publish` (rumqttc's
        /// calls return when the request is queued, not when the broker has it).
        pub async fn acked(&mut self, what: &str, is_wanted: impl Fn(&P) -> bool) {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                match tokio::time::timeout_at(deadline, self.acks.recv()).await {
                    Ok(Some(ack)) if is_wanted(&ack) => return,
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("event loop ended before the {what}"),
                    Err(_) => panic!("no {what} within {WAIT:?}"),
                }
            }
        }

        /// Waits for the next SUBACK.
        pub async fn suback(&mut self) {
            self.acked("SUBACK", |p| matches!(p, P::SubAck(_))).await;
        }

        /// Waits for the next PUBACK.
        pub async fn puback(&mut self) {
            self.acked("PUBACK", |p| matches!(p, P::PubAck(_))).await;
        }

        pub async fn next_publish(&mut self) -> Publish {
            tokio::time::timeout(WAIT, self.publishes.recv())
                .await
                .expect("publish in time")
                .expect("event loop alive")
        }

        pub async fn no_publish(&mut self, wait: Duration) {
            if let Ok(Some(p)) = tokio::time::timeout(wait, self.publishes.recv()).await {
                panic!("unexpected publish {p:?}");
            }
        }
    }
}
