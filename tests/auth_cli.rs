//! `roost user ...` and `roost acl import` (issue 8): each command produces the config it
//! should, written whole (temporary file, then rename), and refuses what it should with an
//! error naming the problem.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use roost::auth::password::StoredHash;
use roost::config::Config;

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

/// Runs `roost --config CONFIG ARGS...` with `stdin` as its standard input (not a terminal:
/// the password is its first line).
fn roost(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(ROOST)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roost runs");
    // A command that needs no password may exit before reading it.
    let _ = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("roost ends")
}

fn verifies(config: &Config, name: &str, password: &str) -> bool {
    let user = config
        .users
        .iter()
        .find(|u| u.username == name)
        .expect("user present");
    StoredHash::parse(&user.password_hash)
        .expect("hash parses")
        .verify(password.as_bytes())
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn user_add_passwd_list_remove_produce_the_config_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("roost.ron");

    // A missing config file is created with the defaults, plus the user.
    let output = roost(&config, &["user", "add", "alice"], "first secret\n");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "user alice added");
    let saved = Config::load(&config).unwrap();
    assert_eq!(saved.users.len(), 1);
    assert!(saved.users[0].password_hash.starts_with("$argon2id$"));
    assert!(verifies(&saved, "alice", "first secret"));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        !text.contains("first secret"),
        "the password is never written"
    );

    let output = roost(&config, &["user", "add", "alice"], "x\n");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("exists already"),
        "{}",
        stderr(&output)
    );

    let output = roost(&config, &["user", "add", "bob"], "\n");
    assert!(!output.status.success(), "an empty password is refused");
    assert!(stderr(&output).contains("empty"), "{}", stderr(&output));

    let output = roost(&config, &["user", "passwd", "alice"], "second\n");
    assert!(output.status.success(), "{}", stderr(&output));
    let saved = Config::load(&config).unwrap();
    assert!(verifies(&saved, "alice", "second"));
    assert!(!verifies(&saved, "alice", "first secret"));

    roost(&config, &["user", "add", "bob"], "b\n");
    let output = roost(&config, &["user", "list"], "");
    assert_eq!(stdout(&output), "alice\targon2id\nbob\targon2id\n");

    let output = roost(&config, &["user", "remove", "alice"], "");
    assert!(output.status.success(), "{}", stderr(&output));
    let saved = Config::load(&config).unwrap();
    let names: Vec<_> = saved.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["bob"]);

    let output = roost(&config, &["user", "passwd", "alice"], "x\n");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no user named alice"),
        "{}",
        stderr(&output)
    );
    // Nothing half-written stays beside the config.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("roost.ron")]);
}

#[test]
fn a_bad_password_file_or_acl_file_is_named_with_its_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("roost.ron");
    roost(&config, &["user", "add", "alice"], "a\n");
    let before = std::fs::read_to_string(&config).unwrap();

    let passwords = dir.path().join("passwd");
    std::fs::write(&passwords, "# users\nbob:plaintext\n").unwrap();
    let output = roost(
        &config,
        &["user", "import-mosquitto", passwords.to_str().unwrap()],
        "",
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("passwd") && message.contains("line 2"),
        "{message}"
    );

    let acl = dir.path().join("acl");
    std::fs::write(&acl, "user bob\ntopic read a/#/b\n").unwrap();
    let output = roost(&config, &["acl", "import", acl.to_str().unwrap()], "");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("acl") && message.contains("line 2"),
        "{message}"
    );

    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
}

#[test]
fn serve_refuses_a_bad_acl_file_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("rules.acl");
    std::fs::write(&acl, "topic readwrite\n").unwrap();
    let output = Command::new(ROOST)
        .args(["serve", "--tcp", "127.0.0.1:0", "--acl-file"])
        .arg(&acl)
        .output()
        .expect("roost runs");
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("rules.acl") && message.contains("line 1"),
        "{message}"
    );
}

/// On a terminal, `roost user add` asks for the password twice and echoes none of it.
/// Driven in tmux (installed by CI), as an operator types it.
#[test]
fn on_a_terminal_the_password_is_asked_twice_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("roost.ron");
    let name = format!("roost-user-{}", std::process::id());
    let command = format!(
        "{} --config {} user add carol; echo exit-status=$?; sleep 600",
        ROOST,
        config.display()
    );
    let status = Command::new("tmux")
        .args(["new-session", "-d", "-s", &name, "-x", "100", "-y", "20"])
        .arg(command)
        .status()
        .expect("tmux must be installed to run this test");
    assert!(status.success());
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    let _kill = Kill(name.clone());
    let screen = || {
        let output = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let wait_for = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let text = screen();
            if text.contains(what) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "waiting for {what:?}:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let send = |keys: &str| {
        Command::new("tmux")
            .args(["send-keys", "-t", &name, "-l", keys])
            .status()
            .unwrap();
        Command::new("tmux")
            .args(["send-keys", "-t", &name, "Enter"])
            .status()
            .unwrap();
    };
    wait_for("Password:");
    send("tmux-secret");
    wait_for("Password again:");
    send("tmux-secret");
    let text = wait_for("exit-status=");
    assert!(text.contains("user carol added"), "{text}");
    assert!(text.contains("exit-status=0"), "{text}");
    assert!(
        !text.contains("tmux-secret"),
        "the password was echoed:\n{text}"
    );
    let saved = Config::load(&config).unwrap();
    assert!(verifies(&saved, "carol", "tmux-secret"));
}
