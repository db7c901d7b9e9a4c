//! A real browser on roost's WebSockets listener: headless Chromium, driven by
//! `playwright-core`, loads `tests/browser/page.html`, which uses MQTT.js over ws on the
//! configured path; a TCP client here exchanges messages with it at QoS 0 and 1, with MQTT
//! 3.1.1 and 5.0.
//!
//! Needs `node`, Debian's `chromium` and `npm ci` run in `tests/browser` (`.ci/run` does all
//! three).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{TestBroker, publish};
use roost::broker::ListenerKind;
use roost::mqtt::{Packet, ProtocolVersion, QoS};
use tokio::process::Command;

/// Chromium's start, the page and both exchanges, on a loaded machine.
const BROWSER_WAIT: Duration = Duration::from_secs(60);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[tokio::test]
async fn a_browser_page_using_mqtt_js_talks_to_a_tcp_client_through_roost() {
    assert!(
        browser_dir()
            .join("node_modules/mqtt/dist/mqtt.min.js")
            .exists()
            && browser_dir().join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/browser first (.ci/run does)"
    );
    let broker = common::start_with(|config| {
        config.broker.websockets.enabled = true;
        config.broker.websockets.bind = "127.0.0.1".into();
        config.broker.websockets.port = 0;
        // A path of the operator's choosing, not the default.
        config.broker.websockets.path = "/roost/mqtt".into();
    })
    .await;
    for version in [4, 5] {
        exchange_with_the_page(&broker, version).await;
    }
}

async fn exchange_with_the_page(broker: &TestBroker, version: u8) {
    let ws = broker
        .handle
        .stats()
        .listeners
        .iter()
        .find(|l| l.kind == ListenerKind::WebSocket)
        .map(|l| l.address)
        .expect("a WebSocket listener");
    let base = format!("browser/v{version}");
    let mut tcp = broker
        .connected(ProtocolVersion::V5, &format!("tcp-for-v{version}"))
        .await;
    tcp.subscribe(&format!("{base}/from-page/#"), QoS::AtLeastOnce)
        .await;

    let mut node = Command::new("node")
        .arg(browser_dir().join("run.mjs"))
        .arg(format!("ws://{ws}/roost/mqtt"))
        .arg(version.to_string())
        .current_dir(browser_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");

    // The page's messages, by topic: its announcement, one at QoS 0, one at QoS 1, then the
    // echoes of ours.
    let mut from_page: BTreeMap<String, Vec<(String, QoS)>> = BTreeMap::new();
    let mut sent_ours = false;
    let deadline = tokio::time::Instant::now() + BROWSER_WAIT;
    while from_page
        .get(&format!("{base}/from-page/echo"))
        .map(Vec::len)
        != Some(2)
    {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(packet) = tcp.recv_within(remaining).await else {
            // Say what the browser did: Chromium's start is the slow part on a loaded machine.
            let _ = node.start_kill();
            let output = node.wait_with_output().await.expect("node output");
            panic!(
                "v{version}: the page's messages within {BROWSER_WAIT:?}, so far {from_page:?}\n\
                 browser run:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let message = match packet {
            Some(Packet::Publish(message)) => message,
            // Our QoS 1 message's acknowledgement.
            Some(Packet::PubAck(_)) => continue,
            other => panic!("v{version}: expected PUBLISH, got {other:?}"),
        };
        if let Some(id) = message.packet_id {
            tcp.puback(id).await;
        }
        from_page
            .entry(message.topic.to_string())
            .or_default()
            .push((
                String::from_utf8_lossy(&message.payload).into_owned(),
                message.qos,
            ));
        // The page has subscribed before it announces itself.
        if !sent_ours && message.topic.ends_with("/ready") {
            sent_ours = true;
            tcp.publish(publish(
                &format!("{base}/to-page/q0"),
                "hello from tcp at qos 0",
                QoS::AtMostOnce,
                None,
            ))
            .await;
            tcp.publish(publish(
                &format!("{base}/to-page/q1"),
                "hello from tcp at qos 1",
                QoS::AtLeastOnce,
                Some(1),
            ))
            .await;
        }
    }
    let output = tokio::time::timeout_at(deadline, node.wait_with_output())
        .await
        .expect("the browser run ends")
        .expect("node output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "v{version}: browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let topic = |name: &str| from_page.get(&format!("{base}/from-page/{name}")).cloned();
    assert_eq!(
        topic("q0"),
        Some(vec![(
            "hello from the page at qos 0".into(),
            QoS::AtMostOnce
        )])
    );
    assert_eq!(
        topic("q1"),
        Some(vec![(
            "hello from the page at qos 1".into(),
            QoS::AtLeastOnce
        )])
    );
    let mut echoes = topic("echo").unwrap_or_default();
    echoes.sort_by_key(|(_, qos)| *qos as u8);
    assert_eq!(
        echoes,
        vec![
            ("hello from tcp at qos 0".into(), QoS::AtMostOnce),
            ("hello from tcp at qos 1".into(), QoS::AtLeastOnce),
        ]
    );
    // What the page itself reported.
    for expected in [
        r#""payload":"hello from tcp at qos 0","qos":0"#,
        r#""payload":"hello from tcp at qos 1","qos":1"#,
    ] {
        assert!(stdout.contains(expected), "v{version}: {stdout}");
    }
}
