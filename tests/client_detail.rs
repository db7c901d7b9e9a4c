//! One client's details, as the console's detail pane shows them: a real MQTT 5.0 client
//! (rumqttc) with a will and two subscriptions with options, read back through the broker's
//! handle in this process and through the admin socket of a `roost serve` child, connected
//! and then disconnected (its session and its delayed will counting down).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::child::ChildBroker;
use roost::admin::{Admin, AdminClient, AdminService, socket_path_for};
use roost::broker::{ClientDetail, ListenerKind};
use roost::config::Config;
use roost::mqtt::{ProtocolVersion, QoS};
use rumqttc::v5::MqttOptions;
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::v5::mqttbytes::v5::{
    Filter, LastWill, LastWillProperties, RetainForwardRule, SubscribeProperties,
};

const CLIENT: &str = "detail-sensor";
const TIMEOUT: Duration = Duration::from_secs(15);

/// A v5 client that asks for everything the pane shows: no clean start, a session expiry,
/// Receive Maximum, Maximum Packet Size, Topic Alias Maximum and a delayed, retained will.
fn options(port: u16) -> MqttOptions {
    let mut options = MqttOptions::new(CLIENT, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_start(false);
    options.set_session_expiry_interval(Some(3600));
    options.set_receive_maximum(Some(20));
    options.set_max_packet_size(Some(65_536));
    options.set_topic_alias_max(Some(10));
    options.set_last_will(LastWill::new(
        "alarms/detail-sensor",
        "gone away!",
        V5QoS::AtLeastOnce,
        true,
        Some(LastWillProperties {
            delay_interval: Some(30),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    ));
    options
}

/// Connects the client and makes its two subscriptions (each SUBACK received): an ordinary
/// one with every option set and a Subscription Identifier, and a shared one without.
async fn connect_and_subscribe(port: u16) -> common::v5::Client {
    let mut client = common::v5::spawn(options(port)).await;
    client
        .client
        .subscribe_many_with_properties(
            [Filter {
                path: "sensors/+/temp".to_string(),
                qos: V5QoS::AtLeastOnce,
                nolocal: true,
                preserve_retain: true,
                retain_forward_rule: RetainForwardRule::OnNewSubscribe,
            }],
            SubscribeProperties {
                id: Some(7),
                user_properties: Vec::new(),
            },
        )
        .await
        .unwrap();
    client.suback().await;
    client
        .client
        .subscribe_many([Filter {
            path: "$share/workers/jobs/#".to_string(),
            qos: V5QoS::ExactlyOnce,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: RetainForwardRule::Never,
        }])
        .await
        .unwrap();
    client.suback().await;
    client
}

/// Everything the client asked for is in the details (MQTT 5.0 §3.1.2.11, §3.8.3.1).
fn assert_connected_detail(detail: &ClientDetail) {
    assert_eq!(&*detail.client_id, CLIENT);
    assert_eq!(detail.protocol, ProtocolVersion::V5);
    let connection = detail.connection.as_ref().expect("connected");
    assert_eq!(connection.listener, ListenerKind::Tcp);
    assert_eq!(connection.listener.transport(), "tcp");
    assert!(connection.address.ip().is_loopback());
    assert_eq!(connection.username, None);
    assert_eq!(connection.keep_alive_secs, 30);
    assert!(!connection.clean_start);
    assert_eq!(connection.receive_maximum, Some(20));
    assert_eq!(connection.maximum_packet_size, Some(65_536));
    assert_eq!(connection.topic_alias_maximum, Some(10));
    // The window is the client's Receive Maximum, below ours (MQTT 5.0 §4.9).
    assert_eq!(detail.window, 20);
    assert_eq!(detail.session_expiry_secs, Some(3600));
    assert_eq!(
        detail.session_expires_in, None,
        "connected: not counting down"
    );

    let will = detail.will.as_ref().expect("the will is held");
    assert_eq!(&*will.topic, "alarms/detail-sensor");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    assert!(will.retain);
    assert_eq!(will.payload_bytes, "gone away!".len());
    assert_eq!(will.delay_secs, 30);
    assert_eq!(will.publishes_in, None);

    assert_eq!(detail.subscription_count, 2);
    let [shared, ordinary] = detail.subscriptions.as_slice() else {
        panic!("two subscriptions: {:?}", detail.subscriptions);
    };
    // Sorted by the full filter: `$share/...` first.
    assert_eq!(shared.filter, "jobs/#");
    assert_eq!(shared.share_group.as_deref(), Some("workers"));
    assert_eq!(shared.qos, QoS::ExactlyOnce);
    assert!(!shared.no_local && !shared.retain_as_published);
    assert_eq!(shared.retain_handling, 2);
    assert_eq!(shared.identifier, None);

    assert_eq!(ordinary.filter, "sensors/+/temp");
    assert_eq!(ordinary.share_group, None);
    assert_eq!(ordinary.qos, QoS::AtLeastOnce);
    assert!(ordinary.no_local, "No Local (MQTT 5.0 §3.8.3.1)");
    assert!(ordinary.retain_as_published, "Retain As Published");
    assert_eq!(ordinary.retain_handling, 1, "send retained only if new");
    assert_eq!(ordinary.identifier, Some(7), "MQTT 5.0 §3.8.2.1.2");
}

/// After the connection dropped without DISCONNECT: the session counts down from its
/// expiry, and the will from its delay (MQTT 5.0 §3.1.2.5).
fn assert_disconnected_detail(detail: &ClientDetail) {
    assert!(detail.connection.is_none());
    let left = detail.session_expires_in.expect("counting down");
    assert!(
        left <= Duration::from_secs(3600) && left > Duration::from_secs(3000),
        "{left:?}"
    );
    let will = detail.will.as_ref().expect("held for its delay");
    let publishes_in = will.publishes_in.expect("the delay runs");
    assert!(publishes_in <= Duration::from_secs(30), "{publishes_in:?}");
    assert_eq!(detail.subscription_count, 2, "the session keeps them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_details_of_a_real_client_in_this_process() {
    let broker = common::start().await;
    let service = AdminService::new(
        broker.handle.clone(),
        std::path::PathBuf::from("unused.ron"),
        Config::default(),
        None,
        Arc::new(|_: &mut Config| {}),
    );
    let admin = Admin::InProcess(service);
    let client = connect_and_subscribe(broker.addr.port()).await;

    let detail = admin
        .client_detail(CLIENT)
        .await
        .unwrap()
        .expect("a session");
    assert_connected_detail(&detail);
    assert_eq!(admin.client_detail("nobody").await.unwrap(), None);

    // Gone without DISCONNECT (the task holding the socket ends).
    client.task.abort();
    broker.wait_offline(CLIENT).await;
    let detail = broker
        .handle
        .client_detail(CLIENT)
        .await
        .expect("the session outlives the connection");
    assert_disconnected_detail(&detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_details_of_a_real_client_through_the_admin_socket() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("roost.ron");
    std::fs::write(&config, roost::config::default_config_text()).unwrap();
    let broker = ChildBroker::start_with_args(&["--config", config.to_str().unwrap()]);
    let socket = socket_path_for(&config).unwrap();
    let admin = Admin::Attached(
        tokio::time::timeout(TIMEOUT, AdminClient::connect(&socket))
            .await
            .expect("attach in time")
            .expect("the broker answers"),
    );
    let client = connect_and_subscribe(broker.addr.port()).await;

    let detail = admin
        .client_detail(CLIENT)
        .await
        .unwrap()
        .expect("a session");
    assert_connected_detail(&detail);
    assert_eq!(admin.client_detail("nobody").await.unwrap(), None);

    client.task.abort();
    common::eventually("the client offline", || async {
        !admin
            .clients()
            .await
            .unwrap()
            .iter()
            .any(|c| &*c.client_id == CLIENT)
    })
    .await;
    let detail = admin
        .client_detail(CLIENT)
        .await
        .unwrap()
        .expect("the session outlives the connection");
    assert_disconnected_detail(&detail);
}
