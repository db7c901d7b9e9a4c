//! The admin socket end to end: a real `roost serve` child process on a config file, and
//! admin clients in this process that attach to it, as the console and configuration
//! commands do.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::child::ChildBroker;
use roost::admin::{
    self, Admin, AdminClient, AdminError, ApplyRefusal, DiagItem, Origin, SaveOutcome,
    socket_path_for,
};
use roost::config::Config;
use rumqttc::{AsyncClient, MqttOptions, QoS};

const TIMEOUT: Duration = Duration::from_secs(15);

/// A config file whose broker is off in the file: `roost serve` runs it anyway, on the
/// `--tcp 127.0.0.1:0` override that `ChildBroker` passes.
fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("roost.ron");
    std::fs::write(&path, roost::config::default_config_text()).unwrap();
    path
}

fn serve(config: &std::path::Path) -> ChildBroker {
    ChildBroker::start_with_args(&["--config", config.to_str().unwrap()])
}

async fn attach(config: &std::path::Path) -> Admin {
    let socket = socket_path_for(config).unwrap();
    let client = tokio::time::timeout(TIMEOUT, AdminClient::connect(&socket))
        .await
        .expect("attach in time")
        .expect("the broker answers on its admin socket");
    Admin::Attached(client)
}

/// An MQTT client connected to the child (a CONNACK received), polled in the background.
async fn mqtt_client(broker: &ChildBroker, id: &str) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let mut options = MqttOptions::new(id, "127.0.0.1", broker.addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let mut connected_tx = Some(connected_tx);
    let poller = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) = event
                && let Some(tx) = connected_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    tokio::time::timeout(TIMEOUT, connected)
        .await
        .expect("CONNACK in time")
        .unwrap();
    (client, poller)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_apply_is_saved_without_the_overrides_and_seen_by_every_console() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let broker = serve(&config);

    let socket = socket_path_for(&config).unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the broker's user may attach");

    let first = attach(&config).await;
    let second = attach(&config).await;
    assert_eq!(
        first.origin(),
        Origin::Attached {
            pid: broker.pid(),
            socket: socket.clone()
        }
    );
    let (_client, _poller) = mqtt_client(&broker, "admin-socket-sensor").await;

    // The console sees the file's configuration, not `serve`'s overrides.
    let applied = first.applied();
    assert!(!applied.config.broker.enabled);
    assert_eq!(applied.config.broker.tcp.port, 1883);

    let mut watch = second.watch_applied();
    let mut edited = (*applied.config).clone();
    edited.broker.sys_interval_secs = 5;
    let outcome = first.apply(edited.clone(), false).await.expect("applied");
    assert_eq!(outcome.generation, applied.generation + 1);
    assert!(
        matches!(outcome.saved, SaveOutcome::Saved { .. }),
        "{outcome:?}"
    );

    // Saved once, with the file's values: no override reached the file.
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(Config::from_ron(&text).unwrap(), edited);
    assert!(text.contains("port: 1883,"), "{text}");
    assert!(
        !text.contains("bind: \"127.0.0.1\""),
        "the --tcp override is not saved:\n{text}"
    );
    assert!(
        text.contains("// Enable TCP Server"),
        "the commented layout is kept"
    );

    // The other console hears of it.
    tokio::time::timeout(
        TIMEOUT,
        watch.wait_for(|a| a.generation == outcome.generation),
    )
    .await
    .expect("the second console sees the apply")
    .unwrap();
    assert_eq!(*watch.borrow().config, edited);

    // The broker still runs on the override's port, and its client is still connected.
    let clients = second.clients().await.unwrap();
    assert!(
        clients
            .iter()
            .any(|c| &*c.client_id == "admin-socket-sensor"),
        "{clients:?}"
    );
    let stats = second.stats().await.unwrap();
    assert!(stats.running);
    assert_eq!(stats.clients, 1);

    // Dropping both consoles leaves the broker running.
    drop(first);
    drop(second);
    let third = attach(&config).await;
    assert_eq!(third.stats().await.unwrap().clients, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_and_disconnect_go_through_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let broker = serve(&config);
    let admin = attach(&config).await;
    let mut diagnostics = admin.diagnostics().await.unwrap();
    let observer = attach(&config).await;
    let mut watch = observer.watch_applied();
    admin.set_diagnostics(true).await.unwrap();
    // The live switch is part of the applied configuration: every console sees it.
    tokio::time::timeout(
        TIMEOUT,
        watch.wait_for(|a| a.config.diagnostics.log_messages),
    )
    .await
    .expect("the switch is announced")
    .unwrap();

    let (client, _poller) = mqtt_client(&broker, "diag-publisher").await;
    client
        .publish("sensors/kitchen/temp", QoS::AtLeastOnce, false, "21.5")
        .await
        .unwrap();
    let event = tokio::time::timeout(TIMEOUT, async {
        loop {
            match diagnostics.recv().await {
                Some(DiagItem::Event(event))
                    if event.topic.as_deref() == Some("sensors/kitchen/temp") =>
                {
                    return event;
                }
                Some(_) => continue,
                None => panic!("the diagnostics stream ended"),
            }
        }
    })
    .await
    .expect("the PUBLISH arrives as a diagnostic event");
    assert_eq!(&*event.client_id, "diag-publisher");
    // The per-client counters: the PUBLISH is counted on its connection.
    let clients = admin.clients().await.unwrap();
    let publisher = clients
        .iter()
        .find(|c| &*c.client_id == "diag-publisher")
        .expect("listed");
    assert_eq!(publisher.messages_in, 1, "{publisher:?}");

    assert!(admin.disconnect("diag-publisher").await.unwrap());
    assert!(!admin.disconnect("nobody").await.unwrap());
}

#[test]
fn a_peer_of_another_protocol_version_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let _broker = serve(&config);
    let socket = socket_path_for(&config).unwrap();
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(b"{\"Hello\":{\"protocol\":999,\"client\":\"roost 9.0\"}}\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    assert!(line.contains("Refused"), "{line}");
    assert!(
        line.contains("version mismatch") && line.contains("999"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refuses_a_server_of_another_version() {
    // A fake broker of the previous version (1, before client details): it answers every
    // Hello with a Welcome of version 1.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fake.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = tokio::io::BufReader::new(read).lines();
        let _hello = lines.next_line().await;
        let welcome =
            "{\"Welcome\":{\"protocol\":1,\"pid\":1,\"version\":\"9\",\"config_path\":\"x\"}}\n";
        let _ = write.write_all(welcome.as_bytes()).await;
        let _ = lines.next_line().await;
    });
    let err = AdminClient::connect(&socket).await.unwrap_err();
    assert!(matches!(err, AdminError::Refused(_)), "{err}");
    assert!(err.to_string().contains("version mismatch"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edits_refuse_the_apply_until_reloaded_or_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let _broker = serve(&config);
    let admin = attach(&config).await;
    let mut edited = *admin.applied().config;
    edited.limits.max_inflight = 50;

    // Someone edits the file by hand while the console runs.
    let hand = roost::config::default_config_text()
        .replace("max_queued_messages: 1000", "max_queued_messages: 77");
    std::fs::write(&config, &hand).unwrap();
    let refused = admin.apply(edited.clone(), false).await.unwrap_err();
    assert!(
        matches!(refused, ApplyRefusal::FileChangedByHand { .. }),
        "{refused}"
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        hand,
        "not overwritten"
    );

    // Reload: the file's values arrive; the apply then goes through.
    let reloaded = admin.reload_file().await.unwrap();
    assert_eq!(reloaded.limits.max_queued_messages, 77);
    let mut merged = reloaded.clone();
    merged.limits.max_inflight = 50;
    admin
        .apply(merged.clone(), false)
        .await
        .expect("applied after reload");
    assert_eq!(Config::load(&config).unwrap(), merged);

    // Overwrite: explicitly chosen, the hand edit is replaced.
    std::fs::write(&config, &hand).unwrap();
    admin
        .apply(edited.clone(), true)
        .await
        .expect("overwritten");
    assert_eq!(Config::load(&config).unwrap(), edited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_config_is_applied_but_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let _broker = serve(&config);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o444)).unwrap();
    let admin = attach(&config).await;
    let mut edited = *admin.applied().config;
    edited.broker.sys_interval_secs = 3;
    let outcome = admin.apply(edited.clone(), false).await.expect("applied");
    let SaveOutcome::NotSaved { reason } = &outcome.saved else {
        panic!("a read-only file is not saved: {outcome:?}");
    };
    assert!(reason.contains("read-only"), "{reason}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        roost::config::default_config_text()
    );
    let mut watch = admin.watch_applied();
    tokio::time::timeout(
        TIMEOUT,
        watch.wait_for(|a| a.generation == outcome.generation),
    )
    .await
    .expect("the apply is announced")
    .unwrap();
    assert_eq!(
        *watch.borrow().config,
        edited,
        "the broker runs the new config"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_commands_go_through_the_running_broker() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    // No broker: the file is edited directly.
    let done = admin::edit_config(&config, |c| {
        c.limits.max_topic_aliases = 5;
        Ok(())
    })
    .await
    .unwrap();
    assert!(done.contains("no broker running"), "{done}");
    assert_eq!(Config::load(&config).unwrap().limits.max_topic_aliases, 5);

    // A broker runs: the edit is applied by it, and saved by it.
    let broker = serve(&config);
    let watcher = attach(&config).await;
    let done = admin::edit_config(&config, |c| {
        c.limits.max_topic_aliases = 6;
        Ok(())
    })
    .await
    .unwrap();
    assert!(done.contains(&format!("pid {}", broker.pid())), "{done}");
    let mut watch = watcher.watch_applied();
    tokio::time::timeout(
        TIMEOUT,
        watch.wait_for(|a| a.config.limits.max_topic_aliases == 6),
    )
    .await
    .expect("the attached console sees the command's apply")
    .unwrap();
    assert_eq!(Config::load(&config).unwrap().limits.max_topic_aliases, 6);
}

/// `roost user add` while a broker runs on the same file goes through its admin socket: the
/// running broker applies the new user at once (require credentials on, the user connects
/// without a restart) and saves the file, so the two never disagree.
#[tokio::test]
async fn roost_user_add_goes_through_the_running_broker() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace("require_credentials: false", "require_credentials: true");
    std::fs::write(&config, text).unwrap();
    let broker = serve(&config);
    // The socket answers once the broker has applied the file.
    let _admin = attach(&config).await;

    let mut add = std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "user",
            "add",
            "sensor",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let output = tokio::task::spawn_blocking(move || add.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("applied by the running broker"),
        "the command went to the file instead: {stderr}"
    );
    let saved = Config::load(&config).unwrap();
    assert_eq!(saved.users.len(), 1);

    // The running broker knows the user now.
    let mut options = MqttOptions::new("sensor-1", "127.0.0.1", broker.addr.port());
    options.set_credentials("sensor", "s3cret");
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    let connack = tokio::time::timeout(TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => return Ok(ack),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
    })
    .await
    .expect("CONNACK in time");
    assert!(connack.is_ok(), "the new user is refused: {connack:?}");
}

// ----- attaching by data directory ---------------------------------------------------------

/// `roost serve --config A --data-dir D` names its admin socket in D (mode 0600), so that a
/// console started on another config file with `--data-dir D` finds it; the socket itself
/// still lives where A's path says. The marker goes when the broker stops, and a stale one
/// (its socket gone) is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_finds_the_broker_by_its_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let other_config = dir.path().join("other.ron");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let broker = ChildBroker::start_with_args(&[
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    let _attached = attach(&config).await;
    let marker = roost::admin::marker::marker_path(&data_dir);
    // Written beside the socket's opening, off the broker's runtime thread.
    common::eventually("the marker", || async { marker.exists() }).await;
    let mode = std::fs::metadata(&marker).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        roost::admin::marker::read_marker(&data_dir),
        Some(socket_path_for(&config).unwrap()),
        "the socket path still follows from the config file"
    );
    assert!(
        admin::attach_to_running(&other_config)
            .await
            .unwrap()
            .is_none(),
        "another config file has no broker of its own"
    );
    let client = admin::attach_by_data_dir(&data_dir)
        .await
        .unwrap()
        .expect("found by the data directory");
    assert_eq!(client.welcome().pid, broker.pid());
    assert_eq!(
        client.welcome().config_path,
        std::fs::canonicalize(&config).unwrap(),
        "the console saves through the broker's own config file"
    );
    drop(client);

    let status = broker.terminate();
    assert!(status.success(), "{status}");
    assert!(!marker.exists(), "removed when the broker stops");

    // A broker that was killed leaves its marker: nothing answers on the socket it names.
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
    std::fs::write(&marker, format!("{}\n", dead.display())).unwrap();
    std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        admin::attach_by_data_dir(&data_dir)
            .await
            .unwrap()
            .is_none(),
        "a stale marker is ignored"
    );
}

/// The data directory is part of the configuration: an Apply that changes it moves the
/// marker to the new directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_moves_the_marker_with_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    let config = dir.path().join("roost.ron");
    let text = roost::config::default_config_text()
        .replace("data_dir: \"roost-data\"", &format!("data_dir: {first:?}"));
    std::fs::write(&config, text).unwrap();
    let _broker = serve(&config);
    let admin = attach(&config).await;
    let marker = roost::admin::marker::marker_path;
    common::eventually("the marker in the first directory", || async {
        marker(&first).exists()
    })
    .await;

    let mut moved = *admin.applied().config;
    moved.persistence.data_dir = second.clone();
    admin.apply(moved, false).await.expect("applied");
    common::eventually("the marker moved to the second directory", || async {
        marker(&second).exists() && !marker(&first).exists()
    })
    .await;
    assert!(
        admin::attach_by_data_dir(&second).await.unwrap().is_some(),
        "found in its new data directory"
    );
}
