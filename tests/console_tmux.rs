//! End to end, as an operator over SSH: the real `roost` binary runs in tmux on a fresh config
//! file; keys typed into it enable the broker on a free port and apply; a real MQTT client
//! connects and the Status pane counts it; diagnostics switched on show its PUBLISH.
//!
//! The console also attaches to a `roost serve` running on the same config: quitting it or
//! dropping it with SIGHUP leaves the broker and its clients untouched.
//!
//! Needs `tmux` on the PATH (CI installs it).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::child::ChildBroker;
use roost::config::Config;
use rumqttc::{AsyncClient, MqttOptions, QoS};

const WIDTH: u16 = 120;
const HEIGHT: u16 = 36;
const TIMEOUT: Duration = Duration::from_secs(15);

/// A tmux session running roost, killed when dropped (also when the test fails).
struct Session {
    name: String,
    /// roost's log, shown when a wait times out.
    log: std::path::PathBuf,
    /// Where roost's process id is written.
    pid_file: std::path::PathBuf,
}

impl Session {
    fn start(config: &Path) -> Session {
        Session::start_with(config, &format!("--config {}", config.display()))
    }

    /// roost with these arguments; `config`'s directory holds its pid file.
    fn start_with(config: &Path, args: &str) -> Session {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("roost-e2e-{}-{nanos}", std::process::id());
        // After roost exits, the shell prints its exit status on the restored screen.
        // The inner shell records its pid and becomes roost (exec), so the pid is roost's.
        let pid_file = config.with_file_name("roost.pid");
        let command = format!(
            "sh -c 'echo $$ > {}; exec {} {args}'; echo roost-exit-status=$?; sleep 600",
            pid_file.display(),
            env!("CARGO_BIN_EXE_roost"),
        );
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name])
            .args(["-x", &WIDTH.to_string(), "-y", &HEIGHT.to_string()])
            .arg(command)
            .status()
            .expect("tmux must be installed to run this test");
        assert!(status.success(), "tmux new-session failed");
        let log = config.with_file_name("roost.log");
        Session {
            name,
            log,
            pid_file,
        }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux").args(args).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.tmux(&["send-keys", "-t", &self.name, key]);
            // One key at a time, so that Esc is never read as Alt with the next key.
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    /// Waits until `check` accepts the screen; panics with the last screen on timeout.
    fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            if start.elapsed() > TIMEOUT {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("timed out waiting for {what}; screen:\n{screen}\nroost.log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_text(&self, text: &str) -> String {
        self.wait_for(text, |screen| screen.contains(text))
    }

    /// Waits for roost to exit and returns its exit status.
    fn wait_for_exit(&self) -> String {
        let screen = self.wait_for("roost to exit", |s| s.contains("roost-exit-status="));
        let status = screen
            .split("roost-exit-status=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("");
        status.to_string()
    }

    /// The process id of roost.
    fn roost_pid(&self) -> String {
        std::fs::read_to_string(&self.pid_file)
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The number after `label` on the Status pane, such as `Clients   1`.
fn figure(screen: &str, label: &str) -> Option<u64> {
    screen.lines().find_map(|line| {
        let start = line.find(label)?;
        let rest = &line[start + label.len()..];
        // The label must be followed by spaces, not by more letters ("Clients" vs "Client ID").
        if !rest.starts_with("  ") {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Enables the broker on `port` through the Server Settings form and applies.
fn enable_broker_on(session: &Session, port: u16) {
    session.wait_for_text("Server Settings");
    session.keys(&["Tab", "Space", "j", "j", "j", "Enter", "C-u"]);
    session.keys(&[&port.to_string(), "Enter"]);
    session.wait_for_text(&format!("TCP port                       {port}"));
    session.wait_for_text("2 pending changes");
    session.keys(&["a"]);
    let screen = session.wait_for_text("Applied");
    assert!(
        screen.contains(&format!("TCP listener 0.0.0.0:{port}: started")),
        "the apply report names the listener:\n{screen}"
    );
    session.keys(&["Escape"]);
    session.wait_for_text("no pending changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_enables_the_broker_and_watches_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("roost.ron");
    let port = free_port();
    let session = Session::start(&config_path);

    // A fresh config: the broker is off until the operator enables it and applies.
    let screen = session.wait_for_text("Server Settings");
    assert!(
        screen.contains("Enable MQTT broker service     [ ]"),
        "{screen}"
    );
    assert!(
        config_path.exists(),
        "the config file is created with defaults"
    );

    enable_broker_on(&session, port);
    let saved = Config::load(&config_path).unwrap();
    assert!(saved.broker.enabled);
    assert_eq!(saved.broker.tcp.port, port, "the applied config is saved");

    // Status: no clients yet.
    session.keys(&["BTab", "G", "k"]);
    session.wait_for("Status with 0 clients", |s| figure(s, "Clients") == Some(0));

    // A real MQTT client connects on that port.
    let mut options = MqttOptions::new("e2e-sensor", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let poller = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let screen = session.wait_for("Status with 1 client", |s| figure(s, "Clients") == Some(1));
    assert!(screen.contains("Yes"), "Running: Yes\n{screen}");
    assert!(screen.contains(&format!("TCP 0.0.0.0:{port}")), "{screen}");

    // Diagnostics on, live; the client's PUBLISH shows in the log.
    session.keys(&["k", "Tab", "Space"]);
    session.wait_for_text("● logging");
    client
        .publish("e2e/kitchen", QoS::AtLeastOnce, false, "hello-from-e2e")
        .await
        .unwrap();
    let screen = session.wait_for("the PUBLISH in the log", |s| {
        s.lines()
            .any(|line| line.contains("PUBLISH") && line.contains("hello-from-e2e"))
    });
    assert!(screen.contains("e2e-sensor"), "{screen}");

    // Clients: the client is listed; x and a confirmation disconnect it.
    session.keys(&["BTab", "G", "Tab"]);
    session.wait_for_text("Connected Clients (1)");
    session.keys(&["x"]);
    session.wait_for_text("Disconnect client \"e2e-sensor\"?");
    session.keys(&["y"]);
    session.wait_for_text("disconnected e2e-sensor");
    session.wait_for_text("No clients connected.");

    // Quit: the diagnostics switch is live, not a pending change. roost asks only while the
    // figures still count the disconnected client (they are refreshed once a second).
    session.keys(&["q"]);
    let screen = session.wait_for("roost to exit or ask", |s| {
        s.contains("roost-exit-status=") || s.contains("Quit roost?")
    });
    if screen.contains("Quit roost?") {
        assert!(!screen.contains("will be lost"), "{screen}");
        session.keys(&["y"]);
    }
    assert_eq!(session.wait_for_exit(), "0", "roost exits with status 0");
    poller.abort();
}

#[test]
fn sigterm_stops_the_console_cleanly() {
    stops_cleanly_on("TERM");
}

#[test]
fn sighup_stops_the_console_cleanly() {
    stops_cleanly_on("HUP");
}

fn stops_cleanly_on(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("roost.ron");
    let port = free_port();
    let session = Session::start(&config_path);
    enable_broker_on(&session, port);
    let pid = session.roost_pid();
    assert!(!pid.is_empty(), "roost is running");
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{signal} {pid}")])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(session.wait_for_exit(), "0", "SIG{signal} is a clean exit");
    // The listener is closed: nothing accepts on the port any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// `roost serve` on `config` (plus the test harness's `--tcp 127.0.0.1:0`).
fn serve(config: &Path) -> ChildBroker {
    ChildBroker::start_with_args(&["--config", config.to_str().unwrap()])
}

/// A connected MQTT client (CONNACK received), polled in the background; the flag says
/// whether its connection is still up.
async fn connected_client(
    port: u16,
    id: &str,
) -> (
    AsyncClient,
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let up = std::sync::Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let mut connected_tx = Some(connected_tx);
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    flag.store(true, Ordering::SeqCst);
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    flag.store(false, Ordering::SeqCst);
                    return;
                }
            }
        }
    });
    tokio::time::timeout(TIMEOUT, connected)
        .await
        .expect("CONNACK in time")
        .unwrap();
    (client, poller, up)
}

/// A QoS 1 round trip through the broker: the client's connection is alive and served.
async fn round_trip(client: &AsyncClient, up: &std::sync::atomic::AtomicBool) {
    assert!(
        up.load(std::sync::atomic::Ordering::SeqCst),
        "the client is still connected"
    );
    tokio::time::timeout(
        TIMEOUT,
        client.publish("e2e/alive", QoS::AtLeastOnce, false, "still here"),
    )
    .await
    .expect("the publish is queued")
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_console_applies_and_leaves_the_broker_running() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("roost.ron");
    std::fs::write(&config_path, roost::config::default_config_text()).unwrap();
    let mut broker = serve(&config_path);
    let (client, poller, up) = connected_client(broker.addr.port(), "e2e-attached").await;

    let session = Session::start(&config_path);
    let screen = session.wait_for_text(&format!("attached to pid {}", broker.pid()));
    assert!(screen.contains("Server Settings"), "{screen}");
    // The file says the broker is off; `serve` runs it anyway and the console shows the file.
    session.keys(&["Tab", "j", "j", "j", "Enter", "C-u", "1999", "Enter"]);
    session.wait_for_text("1 pending change");
    session.keys(&["a"]);
    let screen = session.wait_for_text("Applied");
    assert!(screen.contains("Saved to"), "{screen}");
    session.keys(&["Escape"]);
    session.wait_for_text("no pending changes");
    // Saved by the broker process, once, without its --tcp override.
    let saved = Config::load(&config_path).unwrap();
    assert_eq!(saved.broker.tcp.port, 1999);
    assert!(!saved.broker.enabled);

    // Quit: nothing pending, attached: no question, and the broker stays.
    session.keys(&["q"]);
    assert_eq!(session.wait_for_exit(), "0");
    assert!(
        broker.is_running(),
        "quitting an attached console never stops the broker"
    );
    round_trip(&client, &up).await;

    // Attach again and drop the console with SIGHUP, as a lost SSH connection does.
    drop(session);
    let session = Session::start(&config_path);
    session.wait_for_text(&format!("attached to pid {}", broker.pid()));
    let pid = session.roost_pid();
    let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success());
    assert_eq!(session.wait_for_exit(), "0");
    assert!(
        broker.is_running(),
        "SIGHUP of an attached console leaves the broker"
    );
    round_trip(&client, &up).await;

    // `roost console --attach SOCKET` names the socket; another config file does not matter.
    drop(session);
    let socket = roost::admin::socket_path_for(&config_path).unwrap();
    let session = Session::start_with(
        &config_path,
        &format!(
            "--config /nonexistent/other.ron console --attach {}",
            socket.display()
        ),
    );
    let screen = session.wait_for_text(&format!("attached to pid {}", broker.pid()));
    assert!(screen.contains("roost.ron"), "{screen}");
    session.keys(&["q"]);
    assert_eq!(session.wait_for_exit(), "0");
    assert!(broker.is_running());
    round_trip(&client, &up).await;
    poller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owning_console_asks_before_quitting_with_clients() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("roost.ron");
    let port = free_port();
    let session = Session::start(&config_path);
    session.wait_for_text("in this process");
    enable_broker_on(&session, port);
    let (_client, poller, _up) = connected_client(port, "e2e-owned").await;
    session.keys(&["BTab", "G", "k"]);
    session.wait_for("Status with 1 client", |s| figure(s, "Clients") == Some(1));
    session.keys(&["q"]);
    session.wait_for_text("disconnect 1 client");
    session.keys(&["n"]);
    session.wait_for("the question closed", |s| !s.contains("Quit roost?"));
    session.keys(&["q"]);
    session.wait_for_text("Quit roost?");
    session.keys(&["y"]);
    assert_eq!(session.wait_for_exit(), "0");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    poller.abort();
}

#[test]
fn a_read_only_config_is_reported_not_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("roost.ron");
    std::fs::write(&config_path, roost::config::default_config_text()).unwrap();
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let port = free_port();
    let session = Session::start(&config_path);
    session.wait_for_text("Server Settings");
    session.keys(&["Tab", "Space", "j", "j", "j", "Enter", "C-u"]);
    session.keys(&[&port.to_string(), "Enter"]);
    session.wait_for_text("2 pending changes");
    session.keys(&["a"]);
    let screen = session.wait_for_text("Applied, NOT saved");
    assert!(screen.contains("read-only"), "{screen}");
    assert!(!screen.contains("Saved to"), "{screen}");
    session.keys(&["Escape"]);
    let screen = session.wait_for_text("NOT saved");
    assert!(screen.contains("no pending changes"), "{screen}");
    assert_eq!(
        std::fs::read_to_string(&config_path).unwrap(),
        roost::config::default_config_text(),
        "the read-only file is not replaced"
    );
    // Quitting asks: the running configuration is not in the file.
    session.keys(&["q"]);
    session.wait_for_text("NOT saved: ");
    session.wait_for_text("Quit anyway?");
    session.keys(&["y"]);
    assert_eq!(session.wait_for_exit(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_attached_consoles_see_each_others_apply() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("roost.ron");
    std::fs::write(&config_path, roost::config::default_config_text()).unwrap();
    let broker = serve(&config_path);
    let first = Session::start(&config_path);
    let second = Session::start(&config_path);
    let attached = format!("attached to pid {}", broker.pid());
    first.wait_for_text(&attached);
    second.wait_for_text(&attached);

    // The second console has edits of its own pending: the sys interval, and the port the
    // first console is about to change too.
    second.keys(&["Tab", "G", "Enter", "C-u", "7", "Enter"]);
    second.wait_for_text("1 pending change");
    second.keys(&["g", "j", "j", "j", "Enter", "C-u", "2222", "Enter"]);
    second.wait_for_text("2 pending changes");

    first.keys(&["Tab", "j", "j", "j", "Enter", "C-u", "1999", "Enter", "a"]);
    first.wait_for_text("Applied");
    // The second hears of it: both its edits are kept, the port is marked as conflicting.
    let screen = second.wait_for_text("1 conflicting");
    assert!(screen.contains("2 pending changes"), "{screen}");
    assert!(
        screen.contains("$SYS interval (s, 0 = off)     7"),
        "the pending edit is kept:\n{screen}"
    );
    assert!(
        screen.contains("! TCP port                       2222"),
        "the conflicting edit is kept and marked:\n{screen}"
    );
    // The port's footer says what the other console applied.
    let screen = second.wait_for_text("applied: 1999");
    assert!(
        screen.contains("conflicts with another console's apply"),
        "{screen}"
    );
}

/// `roost --config OTHER --data-dir D` attaches to the `roost serve` running on D with
/// another config file, and its detail pane shows a real client's will and subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_attaches_by_data_directory_and_shows_a_clients_details() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("roost.ron");
    std::fs::write(&config_path, roost::config::default_config_text()).unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let mut broker = ChildBroker::start_with_args(&[
        "--config",
        config_path.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);

    // A client with a will and a subscription (its SUBACK received).
    let mut options = MqttOptions::new("e2e-detail", "127.0.0.1", broker.addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_last_will(rumqttc::LastWill::new(
        "e2e/will/detail",
        "gone",
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client
        .subscribe("e2e/detail/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    let poller = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = event
                && let Some(tx) = subscribed_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    tokio::time::timeout(TIMEOUT, subscribed)
        .await
        .expect("SUBACK in time")
        .unwrap();

    let other = dir.path().join("other.ron");
    let session = Session::start_with(
        &other,
        &format!(
            "--config {} --data-dir {}",
            other.display(),
            data_dir.display()
        ),
    );
    let screen = session.wait_for_text(&format!("attached to pid {}", broker.pid()));
    assert!(
        screen.contains("roost.ron"),
        "the broker's own file: {screen}"
    );
    assert!(!other.exists(), "the other config file is not created");

    session.keys(&["9"]);
    session.wait_for_text("e2e-detail");
    session.keys(&["Enter"]);
    let screen = session.wait_for_text("e2e/will/detail");
    assert!(screen.contains("e2e-detail · connected"), "{screen}");
    assert!(screen.contains("e2e/detail/#"), "{screen}");
    assert!(screen.contains("MQTT 3.1.1 over tcp"), "{screen}");

    session.keys(&["q"]);
    assert_eq!(session.wait_for_exit(), "0");
    assert!(broker.is_running(), "an attached console leaves the broker");
    poller.abort();
}
