//! Topic permissions (issue 8): SUBSCRIBE refused in SUBACK (MQTT 5.0 §3.9.3 0x87; MQTT 3.1.1
//! §3.9.3 0x80), PUBLISH refused with 0x87 in v5 (MQTT 5.0 §3.4.2.1, §3.5.2.1) and
//! acknowledged then discarded in 3.1.1 (MQTT-3.3.5-2), deliveries and retained messages that
//! never cross a read rule, wills held to write rules, `%u` / `%c` patterns, rules changed at
//! Apply, and a Mosquitto acl_file imported and enforced by `roost serve`.

use std::process::Command;
use std::time::Duration;

mod common;

use common::child::ChildBroker;
use common::*;
use roost::auth::acl::parse_acl_file;
use roost::mqtt::{Packet, ProtocolVersion, PubResponse, QoS, ReasonCode};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");
const QUIET: Duration = Duration::from_millis(200);

/// Rules as an operator writes them in Mosquitto's acl_file.
const ACL: &str = "\
# anonymous clients
topic read public/#
topic write inbox/#

user alice
topic readwrite alice/#
topic read public/#
topic deny alice/secret/#

user watcher
topic read #
topic deny private/#

user writer
topic write #

pattern readwrite users/%u/#
pattern read devices/%c/config
";

async fn broker() -> TestBroker {
    start_with(|c| c.acl = parse_acl_file(ACL).expect("acl")).await
}

async fn client(
    broker: &TestBroker,
    version: ProtocolVersion,
    client_id: &str,
    username: Option<&str>,
) -> RawClient {
    let mut client = broker.raw(version).await;
    let mut request = connect(version, client_id);
    request.username = username.map(str::to_string);
    let connack = client.connect(request).await;
    assert_eq!(connack.reason, ReasonCode::Success, "{client_id}");
    client
}

async fn publish_acked(
    client: &mut RawClient,
    topic: &str,
    qos: QoS,
    packet_id: u16,
) -> ReasonCode {
    client
        .publish(publish(topic, "m", qos, Some(packet_id)))
        .await;
    match client.recv().await {
        Some(Packet::PubAck(ack)) | Some(Packet::PubRec(ack)) => {
            assert_eq!(ack.packet_id, packet_id);
            ack.reason
        }
        other => panic!("expected PUBACK or PUBREC, got {other:?}"),
    }
}

#[tokio::test]
async fn subscribe_refused_by_a_deny_rule_or_no_read_rule_v5_0x87_v311_0x80() {
    let broker = broker().await;
    let mut v5 = client(&broker, ProtocolVersion::V5, "alice-5", Some("alice")).await;
    assert_eq!(
        v5.subscribe("alice/secret/#", QoS::AtLeastOnce).await,
        vec![ReasonCode::NotAuthorized]
    );
    assert_eq!(
        v5.subscribe("bob/#", QoS::AtLeastOnce).await,
        vec![ReasonCode::NotAuthorized]
    );
    assert_eq!(
        v5.subscribe("alice/#", QoS::AtLeastOnce).await,
        vec![ReasonCode::GrantedQoS1]
    );
    // A filter reaching readable and unreadable topics is granted; delivery filters it.
    assert_eq!(
        v5.subscribe("#", QoS::AtMostOnce).await,
        vec![ReasonCode::Success]
    );
    let mut v3 = client(&broker, ProtocolVersion::V3_1_1, "alice-3", Some("alice")).await;
    // 3.1.1 has one failure code: 0x80 (MQTT 3.1.1 §3.9.3).
    let reasons = v3.subscribe("alice/secret/x", QoS::AtMostOnce).await;
    assert_eq!(reasons.len(), 1);
    assert_eq!(reasons[0].code(), 0x80, "{reasons:?}");
    assert!(broker.handle.stats().subscriptions_denied >= 3);
}

#[tokio::test]
async fn publish_refused_v5_gets_0x87_and_v311_is_acknowledged_and_discarded_mqtt_3_3_5_2() {
    let broker = broker().await;
    let mut watcher = client(&broker, ProtocolVersion::V5, "watcher", Some("watcher")).await;
    watcher.subscribe("alice/#", QoS::AtLeastOnce).await;
    watcher.subscribe("bob/#", QoS::AtLeastOnce).await;

    let mut v5 = client(&broker, ProtocolVersion::V5, "alice-5", Some("alice")).await;
    assert_eq!(
        publish_acked(&mut v5, "bob/x", QoS::AtLeastOnce, 1).await,
        ReasonCode::NotAuthorized
    );
    assert_eq!(
        publish_acked(&mut v5, "alice/secret/x", QoS::ExactlyOnce, 2).await,
        ReasonCode::NotAuthorized
    );
    v5.publish(publish("bob/qos0", "m", QoS::AtMostOnce, None))
        .await;

    let mut v3 = client(&broker, ProtocolVersion::V3_1_1, "alice-3", Some("alice")).await;
    assert_eq!(
        publish_acked(&mut v3, "bob/y", QoS::AtLeastOnce, 3).await,
        ReasonCode::Success
    );
    // QoS 2 completes as usual (PUBREC, PUBREL, PUBCOMP), and nothing is forwarded.
    assert_eq!(
        publish_acked(&mut v3, "bob/z", QoS::ExactlyOnce, 4).await,
        ReasonCode::Success
    );
    v3.send(&Packet::PubRel(PubResponse::success(4))).await;
    match v3.recv().await {
        Some(Packet::PubComp(ack)) => assert_eq!(ack.packet_id, 4),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    // What alice may write still goes through.
    assert_eq!(
        publish_acked(&mut v3, "alice/ok", QoS::AtLeastOnce, 5).await,
        // A 3.1.1 PUBACK has no reason code: it reads back as Success.
        ReasonCode::Success
    );
    let delivered = watcher.recv_publish().await;
    assert_eq!(&*delivered.topic, "alice/ok");
    watcher.puback(delivered.packet_id.unwrap_or(0)).await;
    watcher.expect_nothing(QUIET).await;
    assert_eq!(broker.handle.stats().publishes_denied, 5);
}

#[tokio::test]
async fn a_hash_subscriber_never_receives_a_topic_it_may_not_read() {
    let broker = broker().await;
    let mut watcher = client(&broker, ProtocolVersion::V5, "watcher", Some("watcher")).await;
    assert_eq!(
        watcher.subscribe("#", QoS::AtLeastOnce).await,
        vec![ReasonCode::GrantedQoS1]
    );
    let mut anonymous = client(&broker, ProtocolVersion::V5, "anon", None).await;
    assert_eq!(
        anonymous.subscribe("#", QoS::AtMostOnce).await,
        vec![ReasonCode::Success]
    );
    let mut writer = client(&broker, ProtocolVersion::V5, "writer", Some("writer")).await;
    for topic in ["private/a", "public/a", "private/b", "other/a"] {
        publish_acked(&mut writer, topic, QoS::AtLeastOnce, 7).await;
    }
    // The watcher may read everything but private/#.
    for expected in ["public/a", "other/a"] {
        let publish = watcher.recv_publish().await;
        assert_eq!(&*publish.topic, expected);
        watcher.puback(publish.packet_id.unwrap_or(0)).await;
    }
    watcher.expect_nothing(QUIET).await;
    // Anonymous clients may read public/# only.
    assert_eq!(&*anonymous.recv_publish().await.topic, "public/a");
    anonymous.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn retained_messages_sent_on_subscribe_obey_the_read_rules() {
    let broker = broker().await;
    let mut writer = client(&broker, ProtocolVersion::V5, "writer", Some("writer")).await;
    for topic in ["private/r", "public/r", "zeta/r"] {
        let mut message = publish(topic, "kept", QoS::AtLeastOnce, Some(9));
        message.retain = true;
        writer.publish(message).await;
        assert!(matches!(writer.recv().await, Some(Packet::PubAck(_))));
    }
    let mut watcher = client(&broker, ProtocolVersion::V5, "watcher", Some("watcher")).await;
    watcher.subscribe("#", QoS::AtMostOnce).await;
    let mut topics = vec![
        watcher.recv_publish().await.topic.to_string(),
        watcher.recv_publish().await.topic.to_string(),
    ];
    topics.sort();
    assert_eq!(topics, ["public/r", "zeta/r"]);
    watcher.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn patterns_give_each_client_its_own_topics_by_username_and_client_id() {
    let broker = broker().await;
    let mut carol = client(&broker, ProtocolVersion::V5, "dev-7", Some("carol")).await;
    assert_eq!(
        carol.subscribe("users/carol/#", QoS::AtLeastOnce).await,
        vec![ReasonCode::GrantedQoS1]
    );
    assert_eq!(
        carol.subscribe("users/dave/#", QoS::AtLeastOnce).await,
        vec![ReasonCode::NotAuthorized]
    );
    assert_eq!(
        carol
            .subscribe("devices/dev-7/config", QoS::AtLeastOnce)
            .await,
        vec![ReasonCode::GrantedQoS1]
    );
    assert_eq!(
        carol
            .subscribe("devices/dev-8/config", QoS::AtLeastOnce)
            .await,
        vec![ReasonCode::NotAuthorized]
    );
    assert_eq!(
        publish_acked(&mut carol, "devices/dev-7/config", QoS::AtLeastOnce, 1).await,
        ReasonCode::NotAuthorized,
        "the %c pattern is read only"
    );
    // Carol receives her own message (sent to her before the PUBACK), then the PUBACK.
    carol
        .publish(publish("users/carol/x", "m", QoS::AtMostOnce, None))
        .await;
    assert_eq!(&*carol.recv_publish().await.topic, "users/carol/x");
    // An anonymous client gets no %u pattern; a username with a wildcard gets nothing.
    let mut anonymous = client(&broker, ProtocolVersion::V5, "dev-9", None).await;
    assert_eq!(
        anonymous.subscribe("users/+/#", QoS::AtMostOnce).await,
        vec![ReasonCode::NotAuthorized]
    );
    let mut sly = client(&broker, ProtocolVersion::V5, "dev-10", Some("#")).await;
    assert_eq!(
        sly.subscribe("users/#", QoS::AtMostOnce).await,
        vec![ReasonCode::NotAuthorized]
    );
}

#[tokio::test]
async fn a_will_on_a_topic_the_client_may_not_write_is_refused_at_connect() {
    let broker = broker().await;
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let mut client = broker.raw(version).await;
        let mut request = connect(version, "willful");
        request.username = Some("alice".into());
        request.will = Some(will("bob/will", "gone", QoS::AtMostOnce, false));
        let connack = client.connect(request).await;
        assert_eq!(connack.reason, ReasonCode::NotAuthorized, "{version:?}");
    }
    // A writable will topic is accepted.
    let mut client = broker.raw(ProtocolVersion::V5).await;
    let mut request = connect(ProtocolVersion::V5, "willful");
    request.username = Some("alice".into());
    request.will = Some(will("alice/will", "gone", QoS::AtMostOnce, false));
    assert_eq!(client.connect(request).await.reason, ReasonCode::Success);
}

#[tokio::test]
async fn rules_changed_at_apply_hold_from_the_next_packet() {
    let mut config = test_config();
    let broker = start_with(|c| *c = config.clone()).await;
    let mut subscriber = client(&broker, ProtocolVersion::V5, "sub", Some("eve")).await;
    subscriber.subscribe("#", QoS::AtMostOnce).await;
    let mut publisher = client(&broker, ProtocolVersion::V5, "pub", Some("eve")).await;
    // No rules: everything is allowed, as before topic permissions existed.
    assert_eq!(
        publish_acked(&mut publisher, "any/topic", QoS::AtLeastOnce, 1).await,
        ReasonCode::Success
    );
    assert_eq!(&*subscriber.recv_publish().await.topic, "any/topic");

    config.acl = parse_acl_file("user eve\ntopic write any/#\ntopic read other/#\n").unwrap();
    broker.handle.apply(config.clone()).await.expect("apply");
    publisher.sync().await;
    assert_eq!(
        publish_acked(&mut publisher, "any/topic", QoS::AtLeastOnce, 2).await,
        ReasonCode::NoMatchingSubscribers,
        "the subscriber may no longer read any/#"
    );
    assert_eq!(
        publish_acked(&mut publisher, "else/topic", QoS::AtLeastOnce, 3).await,
        ReasonCode::NotAuthorized
    );
    subscriber.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn shared_subscriptions_are_judged_by_their_filter() {
    let broker = broker().await;
    let mut alice = client(&broker, ProtocolVersion::V5, "alice-s", Some("alice")).await;
    assert_eq!(
        alice
            .subscribe("$share/g/alice/secret/#", QoS::AtMostOnce)
            .await,
        vec![ReasonCode::NotAuthorized]
    );
    assert_eq!(
        alice.subscribe("$share/g/alice/+", QoS::AtMostOnce).await,
        vec![ReasonCode::Success]
    );
}

#[test]
fn an_acl_file_is_imported_into_the_config_and_enforced_by_roost_serve() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, ACL).unwrap();
    let config = dir.path().join("roost.ron");
    let output = Command::new(ROOST)
        .args([
            "--config",
            config.to_str().unwrap(),
            "acl",
            "import",
            acl.to_str().unwrap(),
        ])
        .output()
        .expect("roost runs");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("2 anonymous rules"), "{stdout}");
    let imported = roost::config::Config::load(&config).unwrap();
    assert_eq!(imported.acl, parse_acl_file(ACL).unwrap());

    // The same rules from the config file, and straight from the acl_file.
    for args in [
        vec!["--config", config.to_str().unwrap()],
        vec!["--acl-file", acl.to_str().unwrap()],
    ] {
        let served = ChildBroker::start_with_args(&args);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut alice = RawClient::open(served.addr, ProtocolVersion::V5).await;
            let mut request = connect(ProtocolVersion::V5, "alice");
            request.username = Some("alice".into());
            alice.connect(request).await;
            assert_eq!(
                alice.subscribe("alice/secret/#", QoS::AtMostOnce).await,
                vec![ReasonCode::NotAuthorized]
            );
            assert_eq!(
                alice.subscribe("#", QoS::AtMostOnce).await,
                vec![ReasonCode::Success]
            );
            // mosquitto_pub, anonymous: may write inbox/# only; alice may read neither of
            // these but public/#, which anonymous clients may not write.
            for topic in ["inbox/x", "public/x", "alice/x"] {
                let status = Command::new("mosquitto_pub")
                    .args(["-h", "127.0.0.1", "-p", &served.port(), "-V", "mqttv311"])
                    .args(["-t", topic, "-m", "hi", "-q", "1"])
                    .status()
                    .expect("mosquitto_pub is installed");
                assert!(
                    status.success(),
                    "3.1.1 acknowledges even a refused PUBLISH"
                );
            }
            let mut anonymous = RawClient::open(served.addr, ProtocolVersion::V5).await;
            anonymous
                .connect(connect(ProtocolVersion::V5, "anon"))
                .await;
            assert_eq!(
                publish_acked(&mut anonymous, "public/x", QoS::AtLeastOnce, 1).await,
                ReasonCode::NotAuthorized
            );
            alice.expect_nothing(QUIET).await;
        });
    }
}
