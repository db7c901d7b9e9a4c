//! MQTT over WebSockets (MQTT 5.0 §6, MQTT 3.1.1 §6) with real clients: rumqttc's and
//! paho-mqtt's WebSocket transports talking to TCP clients through the broker, and a raw
//! WebSocket client (tokio-tungstenite) for the framing rules, the HTTP upgrade and the
//! limits.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{TestBroker, WAIT, connect, publish, subscribe};
use futures::{SinkExt, StreamExt};
use roost::broker::ListenerKind;
use roost::config::Config;
use roost::mqtt::{Packet, ProtocolVersion, QoS, decode, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A broker with TCP and WebSockets (path `/mqtt`) on ephemeral ports.
async fn start_ws(change: impl FnOnce(&mut Config)) -> (TestBroker, SocketAddr) {
    let broker = common::start_with(|config| {
        enable_ws(config);
        change(config);
    })
    .await;
    let ws = ws_address(&broker).expect("a WebSocket listener");
    (broker, ws)
}

fn enable_ws(config: &mut Config) {
    config.broker.websockets.enabled = true;
    config.broker.websockets.bind = "127.0.0.1".into();
    config.broker.websockets.port = 0;
}

fn ws_address(broker: &TestBroker) -> Option<SocketAddr> {
    broker
        .handle
        .stats()
        .listeners
        .iter()
        .find(|l| l.kind == ListenerKind::WebSocket)
        .map(|l| l.address)
}

/// A WebSocket client that speaks MQTT packets through `roost::mqtt`, one frame per call
/// unless told otherwise.
struct WsClient {
    socket: WebSocketStream<TcpStream>,
    version: ProtocolVersion,
    buffer: BytesMut,
}

impl WsClient {
    async fn open(address: SocketAddr, path: &str, version: ProtocolVersion) -> WsClient {
        let socket = ws_connect(address, path, Some("mqtt"))
            .await
            .expect("WebSocket upgrade");
        WsClient {
            socket,
            version,
            buffer: BytesMut::new(),
        }
    }

    fn encode(&self, packet: &Packet) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(packet, self.version, u32::MAX, &mut out).expect("encode");
        out.to_vec()
    }

    async fn send_frame(&mut self, bytes: Vec<u8>) {
        self.socket
            .send(Message::Binary(Bytes::from(bytes)))
            .await
            .expect("send frame");
    }

    async fn send(&mut self, packet: &Packet) {
        let bytes = self.encode(packet);
        self.send_frame(bytes).await;
    }

    /// The next MQTT packet, or `None` once the WebSocket is closed.
    async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, async {
            loop {
                match decode(&mut self.buffer, Some(self.version), u32::MAX) {
                    Ok(Some(packet)) => return Some(packet),
                    Ok(None) => {}
                    Err(error) => panic!("broker sent a bad packet: {error:?}"),
                }
                match self.socket.next().await {
                    Some(Ok(Message::Binary(data))) => self.buffer.extend_from_slice(&data),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                    Some(Ok(other)) => panic!("unexpected WebSocket message {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no packet within {WAIT:?}"))
    }

    async fn connected(address: SocketAddr, version: ProtocolVersion, id: &str) -> WsClient {
        let mut client = WsClient::open(address, "/mqtt", version).await;
        client
            .send(&Packet::Connect(Box::new(connect(version, id))))
            .await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) => assert_eq!(ack.reason.code(), 0, "{ack:?}"),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        client
    }

    /// The close frame the broker sends, skipping any packets before it.
    async fn close_frame(&mut self) -> Option<CloseCode> {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                    Some(Ok(_)) => {}
                    None => return None,
                    Some(Err(error)) => panic!("no close frame: {error}"),
                }
            }
        })
        .await
        .expect("the broker closes in time")
    }
}

async fn ws_connect(
    address: SocketAddr,
    path: &str,
    subprotocol: Option<&str>,
) -> Result<WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{address}{path}")
        .into_client_request()
        .expect("request");
    if let Some(subprotocol) = subprotocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", subprotocol.parse().unwrap());
    }
    let tcp = TcpStream::connect(address).await.expect("connect");
    let (socket, _response) = tokio_tungstenite::client_async(request, tcp).await?;
    Ok(socket)
}

/// Sends raw bytes over TCP and returns everything the broker answers until it closes.
async fn http_exchange(address: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(address).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("the broker answers and closes in time")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

// ---------------------------------------------------------------------------------------
// Real clients: rumqttc (v3.1.1 and v5) over ws to and from a TCP client, every QoS.

#[tokio::test]
async fn rumqttc_v311_over_websockets_talks_to_a_tcp_client_at_every_qos() {
    use rumqttc::{QoS as Q, Transport};
    let (broker, ws) = start_ws(|_| {}).await;
    // With the WebSocket transport, the broker address is the URL.
    let mut options = rumqttc::MqttOptions::new("ws-v4", format!("ws://{ws}/mqtt"), ws.port());
    options.set_transport(Transport::Ws);
    options.set_keep_alive(Duration::from_secs(5));
    let mut over_ws = common::v4::spawn(options).await;
    let mut over_tcp = common::v4::spawn(common::v4::options(broker.addr, "tcp-v4")).await;

    over_tcp
        .client
        .subscribe("to-tcp/#", Q::ExactlyOnce)
        .await
        .unwrap();
    over_tcp.suback().await;
    over_ws
        .client
        .subscribe("to-ws/#", Q::ExactlyOnce)
        .await
        .unwrap();
    over_ws.suback().await;
    for qos in [Q::AtMostOnce, Q::AtLeastOnce, Q::ExactlyOnce] {
        let payload = format!("ws->tcp {qos:?}");
        over_ws
            .client
            .publish("to-tcp/x", qos, false, payload.clone())
            .await
            .unwrap();
        let received = over_tcp.next_publish().await;
        assert_eq!(
            (received.qos, &received.payload[..]),
            (qos, payload.as_bytes())
        );

        let payload = format!("tcp->ws {qos:?}");
        over_tcp
            .client
            .publish("to-ws/x", qos, false, payload.clone())
            .await
            .unwrap();
        let received = over_ws.next_publish().await;
        assert_eq!(
            (received.qos, &received.payload[..]),
            (qos, payload.as_bytes())
        );
    }
    let clients = broker.handle.clients().await;
    let transport = |id: &str| {
        clients
            .iter()
            .find(|c| &*c.client_id == id)
            .map(|c| c.listener)
    };
    assert_eq!(transport("ws-v4"), Some(ListenerKind::WebSocket));
    assert_eq!(transport("tcp-v4"), Some(ListenerKind::Tcp));
    assert_eq!(broker.handle.stats().websocket_connections, 1);
}

#[tokio::test]
async fn rumqttc_v5_over_websockets_talks_to_a_tcp_client_at_every_qos() {
    use rumqttc::Transport;
    use rumqttc::v5::mqttbytes::QoS as Q;
    let (broker, ws) = start_ws(|_| {}).await;
    // With the WebSocket transport, the broker address is the URL.
    let mut options = rumqttc::v5::MqttOptions::new("ws-v5", format!("ws://{ws}/mqtt"), ws.port());
    options.set_transport(Transport::Ws);
    options.set_keep_alive(Duration::from_secs(5));
    let mut over_ws = common::v5::spawn(options).await;
    let mut over_tcp = common::v5::spawn(common::v5::options(broker.addr, "tcp-v5")).await;

    over_tcp
        .client
        .subscribe("to-tcp/#", Q::ExactlyOnce)
        .await
        .unwrap();
    over_tcp.suback().await;
    over_ws
        .client
        .subscribe("to-ws/#", Q::ExactlyOnce)
        .await
        .unwrap();
    over_ws.suback().await;
    for qos in [Q::AtMostOnce, Q::AtLeastOnce, Q::ExactlyOnce] {
        let payload = format!("ws->tcp {qos:?}");
        over_ws
            .client
            .publish("to-tcp/x", qos, false, payload.clone())
            .await
            .unwrap();
        let received = over_tcp.next_publish().await;
        assert_eq!(
            (received.qos, &received.payload[..]),
            (qos, payload.as_bytes())
        );

        let payload = format!("tcp->ws {qos:?}");
        over_tcp
            .client
            .publish("to-ws/x", qos, false, payload.clone())
            .await
            .unwrap();
        let received = over_ws.next_publish().await;
        assert_eq!(
            (received.qos, &received.payload[..]),
            (qos, payload.as_bytes())
        );
    }
}

/// paho-mqtt's `transport="websockets"`, v3.1.1 and v5, every QoS, to and from a paho TCP
/// client (tests/scripts/paho_websockets.py).
#[tokio::test]
async fn paho_over_websockets_talks_to_a_tcp_client_at_every_qos() {
    let (broker, ws) = start_ws(|_| {}).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/paho_websockets.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args(["127.0.0.1", &broker.addr.port().to_string()])
            .args([&ws.port().to_string(), "/mqtt"])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "paho checks failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("all paho websocket checks passed"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------------------
// The HTTP upgrade.

#[tokio::test]
async fn another_path_gets_404_and_a_plain_get_gets_a_text_answer() {
    let (_broker, ws) = start_ws(|_| {}).await;
    let answer = http_exchange(ws, "GET /other HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    let refused = ws_connect(ws, "/other", Some("mqtt")).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 404),
        "{refused:?}"
    );

    let answer = http_exchange(ws, "GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 426 "), "{answer}");
    assert!(answer.contains("Content-Type: text/plain"), "{answer}");
    assert!(answer.contains("MQTT over WebSocket"), "{answer}");
}

/// MQTT-6.0.0-4: the subprotocol returned is `mqtt`; a client offering only others is
/// refused.
#[tokio::test]
async fn the_mqtt_subprotocol_is_negotiated_and_others_are_refused() {
    let (_broker, ws) = start_ws(|_| {}).await;
    let refused = ws_connect(ws, "/mqtt", Some("wamp")).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 400),
        "{refused:?}"
    );

    let mut request = format!("ws://{ws}/mqtt").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "wamp, mqtt".parse().unwrap());
    let tcp = TcpStream::connect(ws).await.unwrap();
    let (_socket, response) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "mqtt");

    let mut request = format!("ws://{ws}/mqtt").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqttv3.1".parse().unwrap());
    let tcp = TcpStream::connect(ws).await.unwrap();
    let (_socket, response) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "mqttv3.1");
}

#[tokio::test]
async fn only_allowed_origins_may_connect_when_a_list_is_set() {
    let (_broker, ws) = start_ws(|config| {
        config.broker.websockets.allowed_origins = vec!["http://good.example".into()];
    })
    .await;
    let with_origin = |origin: &'static str| async move {
        let mut request = format!("ws://{ws}/mqtt").into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
        headers.insert("Origin", origin.parse().unwrap());
        let tcp = TcpStream::connect(ws).await.unwrap();
        tokio_tungstenite::client_async(request, tcp)
            .await
            .map(|_| ())
    };
    assert!(with_origin("http://good.example").await.is_ok());
    let refused = with_origin("http://evil.example").await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
        "{refused:?}"
    );
    // Not a browser: no Origin header.
    assert!(ws_connect(ws, "/mqtt", Some("mqtt")).await.is_ok());
}

/// A socket that sends nothing, or its HTTP request slowly, is closed by the connect timeout
/// (2 s in the test config) rather than held open.
#[tokio::test]
async fn silent_and_slow_sockets_are_closed_by_the_connect_timeout() {
    let (_broker, ws) = start_ws(|_| {}).await;
    let mut silent = TcpStream::connect(ws).await.unwrap();
    let mut slow = TcpStream::connect(ws).await.unwrap();
    slow.write_all(b"GET /mqtt HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    for socket in [&mut silent, &mut slow] {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(WAIT, socket.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the socket is still open after {WAIT:?}");
    }
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

// ---------------------------------------------------------------------------------------
// Framing: MQTT-6.0.0-1 (binary frames only), MQTT-6.0.0-2 (packets and frames unaligned).

#[tokio::test]
async fn packets_split_across_frames_and_packed_into_one_are_both_read() {
    let (broker, ws) = start_ws(|_| {}).await;
    let mut tcp = broker.connected(ProtocolVersion::V5, "tcp-sub").await;
    tcp.subscribe("split/#", QoS::AtLeastOnce).await;

    let mut client = WsClient::open(ws, "/mqtt", ProtocolVersion::V5).await;
    // CONNECT in three frames, cut inside the fixed header and inside the payload.
    let connect = client.encode(&Packet::Connect(Box::new(connect(
        ProtocolVersion::V5,
        "split",
    ))));
    client.send_frame(connect[..1].to_vec()).await;
    client.send_frame(connect[1..7].to_vec()).await;
    client.send_frame(connect[7..].to_vec()).await;
    assert!(matches!(client.recv().await, Some(Packet::ConnAck(_))));

    // SUBSCRIBE, two PUBLISHes and half of a third in one frame, the rest in the next.
    let mut packed = client.encode(&Packet::Subscribe(subscribe(
        1,
        "split/back",
        QoS::AtLeastOnce,
    )));
    packed.extend(client.encode(&Packet::Publish(publish(
        "split/a",
        "one",
        QoS::AtMostOnce,
        None,
    ))));
    packed.extend(client.encode(&Packet::Publish(publish(
        "split/b",
        "two",
        QoS::AtLeastOnce,
        Some(7),
    ))));
    let third = client.encode(&Packet::Publish(publish(
        "split/c",
        "three",
        QoS::AtMostOnce,
        None,
    )));
    packed.extend(&third[..4]);
    client.send_frame(packed).await;
    client.send_frame(third[4..].to_vec()).await;

    assert!(matches!(client.recv().await, Some(Packet::SubAck(_))));
    assert!(matches!(client.recv().await, Some(Packet::PubAck(ack)) if ack.packet_id == 7));
    for expected in ["one", "two", "three"] {
        let received = tcp.recv_publish().await;
        assert_eq!(&received.payload[..], expected.as_bytes());
        if let Some(id) = received.packet_id {
            tcp.puback(id).await;
        }
    }
    // And back: a TCP publish reaches the WebSocket client.
    tcp.publish(publish("split/back", "back", QoS::AtMostOnce, None))
        .await;
    match client.recv().await {
        Some(Packet::Publish(p)) => assert_eq!(&p.payload[..], b"back"),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[tokio::test]
async fn a_text_frame_closes_the_connection_with_close_code_1003() {
    let (broker, ws) = start_ws(|_| {}).await;
    let mut client = WsClient::connected(ws, ProtocolVersion::V3_1_1, "texter").await;
    client
        .socket
        .send(Message::Text("hello".into()))
        .await
        .unwrap();
    assert_eq!(client.close_frame().await, Some(CloseCode::Unsupported));
    broker.wait_offline("texter").await;
}

#[tokio::test]
async fn pings_are_answered_and_a_client_close_is_completed() {
    let (broker, ws) = start_ws(|_| {}).await;
    let mut client = WsClient::connected(ws, ProtocolVersion::V3_1_1, "pinger").await;
    client
        .socket
        .send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    let pong = tokio::time::timeout(WAIT, client.socket.next())
        .await
        .unwrap();
    assert!(
        matches!(&pong, Some(Ok(Message::Pong(data))) if &data[..] == b"are you there"),
        "{pong:?}"
    );
    // The close handshake: our Close is answered with a Close, then the stream ends.
    client.socket.close(None).await.unwrap();
    let end = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = client.socket.next().await {}
    })
    .await;
    assert!(
        end.is_ok(),
        "the broker does not finish the close handshake"
    );
    broker.wait_offline("pinger").await;
}

/// A broker-side close (here, the DISCONNECT of a takeover) is a WebSocket close too.
#[tokio::test]
async fn a_takeover_closes_the_old_websocket_with_a_close_frame() {
    let (_broker, ws) = start_ws(|_| {}).await;
    let mut old = WsClient::connected(ws, ProtocolVersion::V5, "same").await;
    let _new = WsClient::connected(ws, ProtocolVersion::V5, "same").await;
    // MQTT-3.1.4-3 / v5 0x8E Session taken over, then the close handshake.
    match old.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason.code(), 0x8E),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert_eq!(old.close_frame().await, Some(CloseCode::Normal));
}

// ---------------------------------------------------------------------------------------
// The same limits as TCP.

#[tokio::test]
async fn a_frame_larger_than_the_maximum_packet_size_allows_is_refused() {
    let (_broker, ws) = start_ws(|config| config.limits.max_packet_size = 1024).await;
    let mut client = WsClient::connected(ws, ProtocolVersion::V3_1_1, "big").await;
    client.send_frame(vec![0u8; 64 * 1024]).await;
    assert_eq!(client.close_frame().await, Some(CloseCode::Size));
}

#[tokio::test]
async fn a_packet_over_the_maximum_size_split_into_small_frames_is_refused() {
    let (_broker, ws) = start_ws(|config| config.limits.max_packet_size = 1024).await;
    let mut client = WsClient::connected(ws, ProtocolVersion::V5, "big-split").await;
    let big = client.encode(&Packet::Publish(publish(
        "big",
        &"x".repeat(4096),
        QoS::AtMostOnce,
        None,
    )));
    for chunk in big.chunks(512) {
        client.send_frame(chunk.to_vec()).await;
    }
    // MQTT 5.0 §3.1.2.11: 0x95 Packet too large, then the close.
    match client.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason.code(), 0x95),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[tokio::test]
async fn a_websocket_over_the_connection_limit_gets_503() {
    let (broker, ws) = start_ws(|config| config.limits.max_connections = 1).await;
    let _held = WsClient::connected(ws, ProtocolVersion::V3_1_1, "first").await;
    broker
        .wait_stats("one connection", |s| s.connections == 1)
        .await;
    let refused = ws_connect(ws, "/mqtt", Some("mqtt")).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 503),
        "{refused:?}"
    );
    assert_eq!(broker.handle.stats().connections_refused, 1);
}

// ---------------------------------------------------------------------------------------
// Apply: the WebSockets listener starts, moves and stops while TCP clients stay connected.

#[tokio::test]
async fn apply_turns_websockets_on_repaths_and_off_without_dropping_tcp_clients() {
    let broker = common::start().await;
    let mut tcp = broker.connected(ProtocolVersion::V5, "stays").await;
    tcp.subscribe("apply/#", QoS::AtLeastOnce).await;
    let mut config = common::test_config();

    // On.
    enable_ws(&mut config);
    let report = broker.handle.apply(config.clone()).await.unwrap();
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.to_string().starts_with("WebSocket listener")
                && c.to_string().ends_with("started")),
        "{report:?}"
    );
    assert!(
        !report
            .changes
            .iter()
            .any(|c| c.to_string().contains("not active")),
        "{report:?}"
    );
    let ws = ws_address(&broker).expect("listening");
    let mut client = WsClient::connected(ws, ProtocolVersion::V5, "ws-1").await;
    client
        .send(&Packet::Publish(publish(
            "apply/1",
            "on",
            QoS::AtMostOnce,
            None,
        )))
        .await;
    assert_eq!(&tcp.recv_publish().await.payload[..], b"on");

    // Re-pathed: the listener keeps running, new connections use the new path, the open
    // WebSocket stays.
    config.broker.websockets.path = "/elsewhere".into();
    broker.handle.apply(config.clone()).await.unwrap();
    assert_eq!(ws_address(&broker), Some(ws));
    let old_path = ws_connect(ws, "/mqtt", Some("mqtt")).await;
    assert!(
        matches!(&old_path, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 404),
        "{old_path:?}"
    );
    let mut moved = WsClient::open(ws, "/elsewhere", ProtocolVersion::V5).await;
    moved
        .send(&Packet::Connect(Box::new(connect(
            ProtocolVersion::V5,
            "ws-2",
        ))))
        .await;
    assert!(matches!(moved.recv().await, Some(Packet::ConnAck(_))));
    client
        .send(&Packet::Publish(publish(
            "apply/2",
            "still here",
            QoS::AtMostOnce,
            None,
        )))
        .await;
    assert_eq!(&tcp.recv_publish().await.payload[..], b"still here");

    // Re-ported: a new port, the old one closed.
    config.broker.websockets.port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let report = broker.handle.apply(config.clone()).await.unwrap();
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.to_string().ends_with("restarted")),
        "{report:?}"
    );
    let new_ws = ws_address(&broker).expect("listening");
    assert_ne!(new_ws, ws);
    assert!(TcpStream::connect(ws).await.is_err());
    let _again = WsClient::open(new_ws, "/elsewhere", ProtocolVersion::V5).await;

    // Off.
    config.broker.websockets.enabled = false;
    broker.handle.apply(config.clone()).await.unwrap();
    assert_eq!(ws_address(&broker), None);
    assert!(TcpStream::connect(new_ws).await.is_err());

    // The TCP client was never dropped.
    tcp.sync().await;
    let clients = broker.handle.clients().await;
    assert!(clients.iter().any(|c| &*c.client_id == "stays"));
}

// ---------------------------------------------------------------------------------------
// `roost serve --ws ADDR:PORT --ws-path PATH`.

#[test]
fn roost_serve_listens_for_websockets_on_the_given_path() {
    let broker = common::child::ChildBroker::start_with_args(&[
        "--ws",
        "127.0.0.1:0",
        "--ws-path",
        "/custom",
    ]);
    // Logged right after the TCP listener, which the child broker waited for.
    let deadline = std::time::Instant::now() + WAIT;
    let ws: SocketAddr = loop {
        let logged = broker
            .logs()
            .iter()
            .filter(|line| line.contains("listening") && line.contains("WebSocket"))
            .find_map(|line| {
                line.split_whitespace()
                    .find_map(|field| field.strip_prefix("address="))
                    .and_then(|a| a.parse().ok())
            });
        if let Some(address) = logged {
            break address;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the WebSocket listener is not logged"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = WsClient::open(ws, "/custom", ProtocolVersion::V3_1_1).await;
        client
            .send(&Packet::Connect(Box::new(connect(
                ProtocolVersion::V3_1_1,
                "cli",
            ))))
            .await;
        assert!(matches!(client.recv().await, Some(Packet::ConnAck(_))));
        let refused = ws_connect(ws, "/mqtt", Some("mqtt")).await;
        assert!(refused.is_err());
    });
    assert!(
        !broker.logs().iter().any(|l| l.contains("not active")),
        "{:?}",
        broker.logs()
    );
}
