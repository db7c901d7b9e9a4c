//! `roost ca`, `roost server-cert` and `roost client-cert`: the files and the config they
//! produce, the modes of key files, and errors that name the file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use roost::config::{ClientCertificateStatus, Config};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");

fn roost(dir: &Path, args: &[&str]) -> Output {
    let config = dir.join("roost.ron");
    let data = dir.join("data");
    let mut command = Command::new(ROOST);
    command.arg("--config").arg(&config).args(args);
    command.arg("--data-dir").arg(&data);
    command.output().expect("roost runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let output = roost(dir, args);
    assert!(
        output.status.success(),
        "roost {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let output = roost(dir, args);
    assert!(!output.status.success(), "roost {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ca_create_show_export_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let error = fails(dir, &["ca", "show"]);
    assert!(error.contains("no certificate authority yet"), "{error}");

    let created = ok(dir, &["ca", "create"]);
    assert!(
        created.contains("SHA-256:") && created.contains("SHA-1:"),
        "{created}"
    );
    let certificates = dir.join("data/certificates");
    assert_eq!(mode(&certificates.join("ca.key")), 0o600);
    assert!(certificates.join("ca.crt").exists());
    // Keys are never in the config (no config is even written for files-only actions).
    assert!(!dir.join("roost.ron").exists());

    let shown = ok(dir, &["ca", "show"]);
    assert!(shown.contains("Subject:     CN=roost CA"), "{shown}");
    assert!(shown.contains("can issue certificates"), "{shown}");

    let out = dir.join("exported-ca.pem");
    ok(dir, &["ca", "export", "--out", out.to_str().unwrap()]);
    let exported = std::fs::read_to_string(&out).unwrap();
    assert!(exported.contains("BEGIN CERTIFICATE") && !exported.contains("PRIVATE KEY"));

    // Imported without its key, the CA can no longer issue.
    let imported = ok(dir, &["ca", "import", out.to_str().unwrap()]);
    assert!(imported.contains("cannot issue"), "{imported}");
    assert!(!certificates.join("ca.key").exists());
    let error = fails(
        dir,
        &["client-cert", "issue", "x", "--out", dir.to_str().unwrap()],
    );
    assert!(error.contains("no private key"), "{error}");
}

#[test]
fn server_cert_create_export_import() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // Without a CA: self-signed.
    let created = ok(dir, &["server-cert", "create"]);
    assert!(created.contains("self-signed"), "{created}");
    assert_eq!(mode(&dir.join("data/certificates/server.key")), 0o600);
    let shown = ok(dir, &["server-cert", "show"]);
    assert!(
        shown.contains("Alt. names:  localhost, 127.0.0.1, ::1"),
        "{shown}"
    );

    let out = dir.join("server.pem");
    ok(
        dir,
        &["server-cert", "export", "--out", out.to_str().unwrap()],
    );
    assert!(
        !std::fs::read_to_string(&out)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    // Import needs the key: refused, naming the file.
    let error = fails(dir, &["server-cert", "import", out.to_str().unwrap()]);
    assert!(
        error.contains("server.pem") && error.contains("no private key"),
        "{error}"
    );

    // With the key in the same file it is imported.
    let mut with_key = std::fs::read_to_string(&out).unwrap();
    with_key.push_str(&std::fs::read_to_string(dir.join("data/certificates/server.key")).unwrap());
    let full = dir.join("full.pem");
    std::fs::write(&full, with_key).unwrap();
    ok(dir, &["server-cert", "import", full.to_str().unwrap()]);

    // With a CA that has its key: issued by it.
    ok(dir, &["ca", "create"]);
    let created = ok(dir, &["server-cert", "create"]);
    assert!(
        created.contains("issued by the certificate authority"),
        "{created}"
    );
}

#[test]
fn client_cert_issue_list_revoke_authorize_remove_add() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(dir, &["ca", "create"]);
    let devices = dir.join("devices");
    let issued = ok(
        dir,
        &[
            "client-cert",
            "issue",
            "sensor-1",
            "--out",
            devices.to_str().unwrap(),
        ],
    );
    assert!(issued.contains("sensor-1.crt"), "{issued}");
    assert_eq!(mode(&devices.join("sensor-1.key")), 0o600);
    assert_eq!(mode(&devices.join("sensor-1.crt")), 0o644);

    let config = Config::load(&dir.join("roost.ron")).unwrap();
    let entry = &config.certificates.clients[0];
    assert_eq!(entry.name, "sensor-1");
    assert_eq!(entry.status, ClientCertificateStatus::Authorized);
    let thumbprint = entry.thumbprint.clone();
    let config_text = std::fs::read_to_string(dir.join("roost.ron")).unwrap();
    assert!(!config_text.contains("PRIVATE KEY"), "no key in the config");

    let listed = ok(dir, &["client-cert", "list"]);
    assert!(
        listed.contains("sensor-1")
            && listed.contains("Authorized")
            && listed.contains(&thumbprint)
    );

    ok(dir, &["client-cert", "revoke", "sensor-1"]);
    let config = Config::load(&dir.join("roost.ron")).unwrap();
    assert_eq!(
        config.certificates.clients[0].status,
        ClientCertificateStatus::Revoked
    );
    // By thumbprint, as other tools print it (upper case, colons).
    let colons: Vec<String> = thumbprint
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect();
    ok(dir, &["client-cert", "authorize", &colons.join(":")]);
    let config = Config::load(&dir.join("roost.ron")).unwrap();
    assert_eq!(
        config.certificates.clients[0].status,
        ClientCertificateStatus::Authorized
    );

    let error = fails(dir, &["client-cert", "revoke", "nobody"]);
    assert!(
        error.contains("no client certificate matches \"nobody\""),
        "{error}"
    );

    ok(dir, &["client-cert", "remove", "sensor-1"]);
    assert!(
        Config::load(&dir.join("roost.ron"))
            .unwrap()
            .certificates
            .clients
            .is_empty()
    );
    let added = ok(
        dir,
        &[
            "client-cert",
            "add",
            devices.join("sensor-1.crt").to_str().unwrap(),
        ],
    );
    assert!(added.contains(&thumbprint), "{added}");
    let config = Config::load(&dir.join("roost.ron")).unwrap();
    assert_eq!(config.certificates.clients[0].thumbprint, thumbprint);
}
