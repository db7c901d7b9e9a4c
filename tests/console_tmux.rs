//! End to end, as an operator over SSH: the real `roost` binary runs in tmux on a fresh config
//! file; keys typed into it enable the broker on a free port and apply; a real MQTT client
//! connects and the Status pane counts it; diagnostics switched on show its PUBLISH.
//!
//! Needs `tmux` on the PATH (CI installs it).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("roost-e2e-{}-{nanos}", std::process::id());
        // After roost exits, the shell prints its exit status on the restored screen.
        // The inner shell records its pid and becomes roost (exec), so the pid is roost's.
        let pid_file = config.with_file_name("roost.pid");
        let command = format!(
            "sh -c 'echo $$ > {}; exec {} --config {}'; echo roost-exit-status=$?; sleep 600",
            pid_file.display(),
            env!("CARGO_BIN_EXE_roost"),
            config.display()
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

    // Quit: the diagnostics switch is a pending change, so roost asks first.
    session.keys(&["q"]);
    session.wait_for_text("Quit roost?");
    session.keys(&["y"]);
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
