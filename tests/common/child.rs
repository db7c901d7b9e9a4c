//! The real `roost serve` binary as a child process, for tests that look at the broker from
//! outside: its memory (resident set size from `/proc`), its logs, and its behaviour under
//! hostile clients. Killed on drop, so a failed test leaves nothing running.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

/// How long the child may take to start listening (a loaded machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A `roost serve` process listening on an ephemeral port of 127.0.0.1.
pub struct ChildBroker {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl ChildBroker {
    /// Starts `roost serve` with the default configuration.
    pub fn start() -> ChildBroker {
        ChildBroker::start_with_args(&[])
    }

    /// Starts `roost serve --tcp 127.0.0.1:0` with `extra_args` (for example `--config
    /// FILE`), and returns once it accepts connections.
    pub fn start_with_args(extra_args: &[&str]) -> ChildBroker {
        let child = spawn_serve(extra_args);
        // Owned by the guard at once, so that a failed start still kills the child.
        let mut broker = ChildBroker {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            logs: Arc::default(),
        };
        let stderr = broker.child.stderr.take().expect("stderr is piped");
        let (address_tx, address_rx) = mpsc::channel();
        let logs = broker.logs.clone();
        thread::spawn(move || {
            // Keeps draining so that roost never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening")
                    && let Some(addr) = line
                        .split_whitespace()
                        .find_map(|field| field.strip_prefix("address="))
                {
                    let _ = address_tx.send(addr.to_string());
                }
                logs.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let addr = address_rx
            .recv_timeout(START_TIMEOUT)
            .expect("roost serve logs its listening address");
        broker.addr = addr.parse().expect("a socket address");
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(broker.addr).is_err() {
            assert!(Instant::now() < deadline, "roost serve does not accept");
            thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's resident set size in bytes (`VmRSS` in `/proc/PID/status`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status is readable");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib * 1024
    }

    /// The log lines written so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The listening port, as a command-line argument for other clients.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                return status;
            }
            assert!(Instant::now() < deadline, "roost did not exit on SIGTERM");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGKILL and waits for the child to be gone: a crash, with nothing flushed.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL is delivered");
        self.child.wait().expect("wait works");
    }

    /// Runs `roost serve --tcp 127.0.0.1:0` with `extra_args` expecting it to refuse to
    /// start: returns its exit status and everything it wrote to stderr.
    pub fn refused_start(extra_args: &[&str]) -> (std::process::ExitStatus, String) {
        let mut child = spawn_serve(extra_args);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if child.try_wait().expect("wait works").is_some() {
                let output = child.wait_with_output().expect("output");
                return (
                    output.status,
                    String::from_utf8_lossy(&output.stderr).into_owned(),
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("roost serve kept running; it should have refused to start");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `roost serve --tcp 127.0.0.1:0` with `extra_args`, its stderr piped for the logs.
fn spawn_serve(extra_args: &[&str]) -> std::process::Child {
    Command::new(ROOST)
        .args(["serve", "--tcp", "127.0.0.1:0"])
        .args(extra_args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roost serve starts")
}
