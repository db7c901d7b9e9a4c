//! `roost bench` against an in-process roost broker: a short, gentle run in each scenario
//! shape must deliver every message exactly once.

use std::time::Duration;

use roost::bench::{RunOptions, Scenario, run};
use roost::broker::BrokerHandle;
use roost::config::Config;
use roost::mqtt::{ProtocolVersion, QoS};

async fn broker() -> (BrokerHandle, std::net::SocketAddr) {
    let mut config = Config::default();
    config.broker.enabled = true;
    config.broker.tcp.enabled = true;
    config.broker.tcp.bind = "127.0.0.1".into();
    config.broker.tcp.port = 0;
    let handle = BrokerHandle::spawn();
    handle.apply(config).await.expect("apply");
    let address = handle.stats().listeners[0].address;
    (handle, address)
}

fn gentle(address: std::net::SocketAddr, scenario: Scenario, qos: QoS) -> RunOptions {
    let (publishers, subscribers) = match scenario {
        Scenario::FanIn => (3, 1),
        Scenario::FanOut => (1, 3),
        Scenario::Pairs => (2, 2),
    };
    RunOptions {
        address,
        scenario,
        publishers,
        subscribers,
        qos,
        payload: 64,
        version: ProtocolVersion::V3_1_1,
        warm_up: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        count: None,
        rate: Some(600.0),
        inflight: 10,
        // The broker runs in this process, so this is its CPU time (plus the generator's).
        broker_pid: Some(std::process::id()),
    }
}

fn assert_complete(report: &roost::bench::RunReport) {
    assert!(report.problems.is_empty(), "{report}");
    assert!(report.delivered_in_window > 0, "{report}");
    assert!(report.deliveries.expected > 0, "{report}");
    assert_eq!(report.lost(), 0, "{report}");
    assert_eq!(report.deliveries.duplicates, 0, "{report}");
    assert_eq!(report.foreign, 0, "{report}");
    assert!(report.latency.quantile(0.99).is_some(), "{report}");
    assert!(report.broker_cpu.is_some(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_at_qos_0_delivers_everything() {
    let (broker, address) = broker().await;
    let report = run(&gentle(address, Scenario::FanIn, QoS::AtMostOnce))
        .await
        .expect("run");
    assert_complete(&report);
    // Three publishers at 200 msg/s each for about a second.
    assert!(report.published_in_window >= 500, "{report}");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_at_qos_2_delivers_every_message_to_every_subscriber() {
    let (broker, address) = broker().await;
    let report = run(&gentle(address, Scenario::FanOut, QoS::ExactlyOnce))
        .await
        .expect("run");
    assert_complete(&report);
    assert_eq!(report.unacknowledged, 0, "{report}");
    assert_eq!(report.deliveries.expected % 3, 0, "{report}");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_at_qos_1_over_mqtt_5_with_a_message_count() {
    let (broker, address) = broker().await;
    let mut options = gentle(address, Scenario::Pairs, QoS::AtLeastOnce);
    options.version = ProtocolVersion::V5;
    options.count = Some(400);
    options.rate = None;
    let report = run(&options).await.expect("run");
    assert_complete(&report);
    assert_eq!(report.published_in_window, 400, "{report}");
    assert_eq!(report.unacknowledged, 0, "{report}");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_scenario_delivers_every_retained_message() {
    let (_broker, address) = broker().await;
    let options = roost::bench::RetainedOptions {
        address,
        retained: 3_000,
        subscribers: 2,
        filters: vec!["+/+/+".into(), "r/1/+".into()],
        pingers: 1,
        qos: QoS::AtLeastOnce,
        payload: 16,
        version: ProtocolVersion::V5,
    };
    let report = roost::bench::run_retained(&options)
        .await
        .expect("retained scenario");
    let got: Vec<(usize, usize)> = report
        .subscribers
        .iter()
        .map(|s| (s.expected, s.received))
        .collect();
    assert_eq!(got, [(3_000, 3_000), (1_000, 1_000)], "{report}");
    assert!(report.before.count() > 0, "{report}");
}
