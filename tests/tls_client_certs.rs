//! The client certificate rules of the seed, against `roost serve --tls`: the eight
//! combinations of "require client certificate" (R), "accept authorized client certificates
//! only" (A) and "trust any matching authorized client certificate" (T), each tried with a
//! client of every kind the rules distinguish (README, "Client certificates").

mod common;

use common::child::ChildBroker;
use common::tls::{ClientFiles, Fixture, client_config, listed, mqtt_connect, tls_config};
use roost::config::ClientCertificateStatus::{Authorized, Revoked};

/// The clients of every row, in the order of the README's table columns.
const KINDS: [&str; 8] = [
    "no certificate",
    "trusted, Authorized",
    "trusted, unlisted",
    "untrusted, Authorized",
    "untrusted, unlisted",
    "trusted, Revoked",
    "trusted, Authorized, expired",
    "trusted, Authorized, not yet valid",
];

/// Starts `roost serve --tls` with `flags` over a data directory holding the CA and a
/// config listing the clients, and tries every kind of client once.
async fn outcomes(flags: &[&str]) -> (Vec<bool>, ChildBroker) {
    let fixture = Fixture::new();
    let clients: Vec<Option<ClientFiles>> = vec![
        None,
        Some(fixture.valid_client("trusted-listed", true)),
        Some(fixture.valid_client("trusted-unlisted", true)),
        Some(fixture.valid_client("untrusted-listed", false)),
        Some(fixture.valid_client("untrusted-unlisted", false)),
        Some(fixture.valid_client("revoked", true)),
        Some(fixture.client("expired", true, -30, -1)),
        Some(fixture.client("not-yet-valid", true, 2, 30)),
    ];
    let at = |index: usize| clients[index].as_ref().expect("a certificate");
    let list = vec![
        listed(at(1), Authorized),
        listed(at(3), Authorized),
        listed(at(5), Revoked),
        listed(at(6), Authorized),
        listed(at(7), Authorized),
    ];
    let config_file = fixture.dir.path().join("roost.ron");
    tls_config(&fixture, list)
        .save(&config_file)
        .expect("config");
    let data_dir = fixture.data_dir.to_string_lossy().into_owned();
    let config_arg = config_file.to_string_lossy().into_owned();
    let mut args = vec!["--config", &config_arg, "--data-dir", &data_dir, "--tls"];
    args.extend_from_slice(flags);
    let broker = ChildBroker::start_with_args(&args);
    let mut accepted = Vec::new();
    for (index, client) in clients.iter().enumerate() {
        let config = client_config(fixture.ca_file(), client.as_ref());
        let result = mqtt_connect(broker.addr, config, &format!("client-{index}")).await;
        accepted.push(result.is_ok());
    }
    (accepted, broker)
}

/// Compares with the expected row; on failure, names the kinds that differ.
fn check(row: &str, accepted: &[bool], expected: [bool; 8]) {
    let wrong: Vec<String> = KINDS
        .iter()
        .zip(accepted.iter().zip(expected))
        .filter(|(_, (got, want))| *got != want)
        .map(|(kind, (got, _))| format!("{kind}: {}", if *got { "accepted" } else { "refused" }))
        .collect();
    assert!(wrong.is_empty(), "row {row}: {wrong:?}");
}

const Y: bool = true;
const N: bool = false;

#[tokio::test]
async fn row_none_asks_for_no_certificate() {
    let (accepted, _broker) = outcomes(&[]).await;
    // No certificate is requested, so none is checked: every client connects.
    check("none", &accepted, [Y, Y, Y, Y, Y, Y, Y, Y]);
}

#[tokio::test]
async fn row_require_accepts_certificates_a_trusted_ca_issued() {
    let (accepted, broker) = outcomes(&["--require-client-cert"]).await;
    check("R", &accepted, [N, Y, Y, N, N, N, N, N]);
    // Every refusal is logged with its reason.
    let wanted = [
        "no client certificate presented",
        "not issued by a trusted CA",
        "is Revoked",
        "has expired",
        "not valid yet",
    ];
    common::eventually("refusals logged", || {
        let logs = broker.logs().join("\n");
        async move { wanted.iter().all(|reason| logs.contains(reason)) }
    })
    .await;
}

#[tokio::test]
async fn row_authorized_only_refuses_trusted_but_unlisted() {
    let (accepted, broker) = outcomes(&["--authorized-only"]).await;
    // Without "require", authorized only still requires a certificate (issue 8).
    check("A", &accepted, [N, Y, N, N, N, N, N, N]);
    common::eventually("refusal logged", || {
        let logs = broker.logs().join("\n");
        async move { logs.contains("not listed as an Authorized client certificate") }
    })
    .await;
}

#[tokio::test]
async fn row_trust_any_accepts_an_untrusted_authorized_certificate() {
    let (accepted, _broker) = outcomes(&["--trust-any-authorized"]).await;
    check("T", &accepted, [N, Y, Y, Y, N, N, N, N]);
}

#[tokio::test]
async fn row_require_and_authorized_only() {
    let (accepted, _broker) = outcomes(&["--require-client-cert", "--authorized-only"]).await;
    check("R+A", &accepted, [N, Y, N, N, N, N, N, N]);
}

#[tokio::test]
async fn row_require_and_trust_any() {
    let (accepted, _broker) = outcomes(&["--require-client-cert", "--trust-any-authorized"]).await;
    check("R+T", &accepted, [N, Y, Y, Y, N, N, N, N]);
}

#[tokio::test]
async fn row_authorized_only_and_trust_any_accept_exactly_the_authorized() {
    let (accepted, _broker) = outcomes(&["--authorized-only", "--trust-any-authorized"]).await;
    check("A+T", &accepted, [N, Y, N, Y, N, N, N, N]);
}

#[tokio::test]
async fn row_all_three() {
    let (accepted, _broker) = outcomes(&[
        "--require-client-cert",
        "--authorized-only",
        "--trust-any-authorized",
    ])
    .await;
    // Revoked wins over Authorized; expired and not-yet-valid are refused even when listed.
    check("R+A+T", &accepted, [N, Y, N, Y, N, N, N, N]);
}
