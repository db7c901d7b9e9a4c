//! `roost-bench run` (the binary) against an in-process roost broker: a short, gentle run in
//! each scenario shape must deliver every message exactly once.

use std::net::SocketAddr;

use roost::broker::BrokerHandle;
use roost::config::Config;

async fn broker() -> (BrokerHandle, SocketAddr) {
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

/// The figures of a run, read back from the report `roost-bench run` prints.
#[derive(Debug, Default)]
struct Report {
    text: String,
    published_in_window: u64,
    delivered_in_window: u64,
    lost: u64,
    expected: u64,
    duplicates: u64,
    foreign: u64,
    unacknowledged: Option<u64>,
    p99_measured: bool,
    broker_cpu_measured: bool,
    problems: usize,
}

/// The whole-number words of `line` in order (`"12 lost of 400"` gives 12, 400).
fn numbers(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter(|word| !word.is_empty() && !word.contains('.'))
        .filter_map(|word| word.parse().ok())
        .collect()
}

fn parse(text: String) -> Report {
    let mut report = Report::default();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((label, rest)) = line.split_once("  ") else {
            continue;
        };
        let values = numbers(rest);
        match label {
            // "window      1.00 s: 600 published, 600 delivered"
            "window" => {
                report.published_in_window = values[0];
                report.delivered_in_window = values[1];
            }
            // "loss        0 lost of 600 expected (0 duplicates, 0 out of order, 0 foreign)"
            "loss" => {
                report.lost = values[0];
                report.expected = values[1];
                report.duplicates = values[2];
                report.foreign = values[4];
            }
            // "acks        0 unacknowledged at the end, 0 rejected"
            "acks" => report.unacknowledged = Some(values[0]),
            // "latency     p50 850 µs, p99 1.20 ms, max 2.0 ms" ("-" when nothing was measured)
            "latency" => report.p99_measured = !rest.contains("p99 -"),
            "broker CPU" => report.broker_cpu_measured = !rest.contains("--broker-pid"),
            "problem" => report.problems += 1,
            _ => {}
        }
    }
    report.text = text;
    report
}

/// Runs `roost-bench run` with a gentle load against `address` and returns its report.
async fn run_bench(address: SocketAddr, scenario: &str, qos: u8, extra: &[&str]) -> Report {
    let (publishers, subscribers) = match scenario {
        "fan-in" => ("3", "1"),
        "fan-out" => ("1", "3"),
        _ => ("2", "2"),
    };
    let port = address.port().to_string();
    let qos = qos.to_string();
    // The broker runs in this process, so this is its CPU time.
    let pid = std::process::id().to_string();
    let mut args = vec![
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--scenario",
        scenario,
        "--publishers",
        publishers,
        "--subscribers",
        subscribers,
        "--qos",
        &qos,
        "--payload",
        "64",
        "--warm-up",
        "0.2",
        "--duration",
        "1",
        "--inflight",
        "10",
        "--broker-pid",
        &pid,
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--count") {
        args.extend_from_slice(&["--rate", "600"]);
    }
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_roost-bench"))
        .args(&args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("start roost-bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "roost-bench {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse(stdout)
}

fn assert_complete(report: &Report) {
    let text = &report.text;
    assert_eq!(report.problems, 0, "{text}");
    assert!(report.delivered_in_window > 0, "{text}");
    assert!(report.expected > 0, "{text}");
    assert_eq!(report.lost, 0, "{text}");
    assert_eq!(report.duplicates, 0, "{text}");
    assert_eq!(report.foreign, 0, "{text}");
    assert!(report.p99_measured, "{text}");
    assert!(report.broker_cpu_measured, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_at_qos_0_delivers_everything() {
    let (broker, address) = broker().await;
    let report = run_bench(address, "fan-in", 0, &[]).await;
    assert_complete(&report);
    // Three publishers at 200 msg/s each for about a second.
    assert!(report.published_in_window >= 500, "{}", report.text);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_at_qos_2_delivers_every_message_to_every_subscriber() {
    let (broker, address) = broker().await;
    let report = run_bench(address, "fan-out", 2, &[]).await;
    assert_complete(&report);
    assert_eq!(report.unacknowledged, Some(0), "{}", report.text);
    assert_eq!(report.expected % 3, 0, "{}", report.text);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_at_qos_1_over_mqtt_5_with_a_message_count() {
    let (broker, address) = broker().await;
    let report = run_bench(
        address,
        "pairs",
        1,
        &["--mqtt-version", "5", "--count", "400"],
    )
    .await;
    assert_complete(&report);
    assert_eq!(report.published_in_window, 400, "{}", report.text);
    assert_eq!(report.unacknowledged, Some(0), "{}", report.text);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_scenario_delivers_every_retained_message() {
    let (_broker, address) = broker().await;
    let port = address.port().to_string();
    let args = [
        "retained",
        "--port",
        &port,
        "--retained",
        "3000",
        "--subscribers",
        "2",
        "--filters",
        "+/+/+,r/1/+",
        "--pingers",
        "1",
        "--qos",
        "1",
    ];
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_roost-bench"))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("start roost-bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "roost-bench {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // "subscriber +/+/+: 3000 of 3000 retained messages in 0.05 s (60000 msg/s)"
    let got: Vec<Vec<u64>> = stdout
        .lines()
        .filter(|line| line.starts_with("subscriber "))
        .map(|line| numbers(line.split_once(": ").map_or("", |(_, rest)| rest)))
        .collect();
    assert_eq!(got.len(), 2, "{stdout}");
    assert_eq!(got[0][..2], [3000, 3000], "{stdout}");
    assert_eq!(got[1][..2], [1000, 1000], "{stdout}");
    assert!(stdout.contains("before the subscribes: "), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_at_qos_1_over_websockets_deliver_everything() {
    let mut config = Config::default();
    config.broker.enabled = true;
    config.broker.tcp.enabled = false;
    config.broker.websockets.enabled = true;
    config.broker.websockets.bind = "127.0.0.1".into();
    config.broker.websockets.port = 0;
    let handle = BrokerHandle::spawn();
    handle.apply(config).await.expect("apply");
    let address = handle.stats().listeners[0].address;
    let report = run_bench(address, "pairs", 1, &["--websocket", "/mqtt"]).await;
    assert_complete(&report);
    assert_eq!(report.unacknowledged, Some(0), "{}", report.text);
    // Every WebSocket connection is counted out once closed.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while handle.stats().websocket_connections > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "WebSockets still counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    handle.shutdown().await;
}
