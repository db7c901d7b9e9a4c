//! What an apply does for TLS: prepare the setup from the files (off the runtime thread),
//! swap it in for new connections, and disconnect the clients whose certificate was revoked.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::setup::{self, Prepared, TlsError};
use crate::broker::api::{ApplyChange, ChangeAction, ListenerKind};
use crate::broker::router::RouterMsg;
use crate::broker::state::BrokerState;
use crate::config::{ClientCertificateStatus, Config};
use crate::pki::server::SignedBy;

/// Reads the certificate files and builds the TLS setup; on a blocking thread, as it reads
/// files and may make a key pair.
pub async fn prepare(config: &Config) -> Result<Prepared, TlsError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || setup::prepare(&config, time::OffsetDateTime::now_utc()))
        .await
        .map_err(|_| TlsError::Interrupted)?
}

/// Swaps in the new setup (or none): connections accepted from now on use it, connected ones
/// keep theirs. Returns the lines of the apply report.
pub fn commit(
    shared: &BrokerState,
    prepared: Option<Prepared>,
    config: &Config,
    previous: &Config,
) -> Vec<ApplyChange> {
    let was_on = shared.tls.current().is_some();
    let mut changes = Vec::new();
    let now_on = prepared.is_some();
    match prepared {
        Some(prepared) => {
            if let Some(signed_by) = prepared.created {
                changes.push(ApplyChange {
                    subject: format!(
                        "server certificate ({})",
                        match signed_by {
                            SignedBy::Authority => "made, issued by the certificate authority",
                            SignedBy::Itself => "made, self-signed: the CA has no private key",
                        }
                    ),
                    action: ChangeAction::Started,
                });
            }
            let expires = time::OffsetDateTime::from(prepared.setup.server_not_after);
            if expires - time::OffsetDateTime::now_utc()
                < time::Duration::days(crate::pki::server::EXPIRY_WARNING_DAYS)
            {
                tracing::warn!(
                    expires = %crate::pki::info::format_time(expires),
                    "the server certificate expires within 30 days: make a new one (roost server-cert create)"
                );
            }
            shared.tls.set(Some(Arc::new(prepared.setup)));
        }
        None => shared.tls.set(None),
    }
    let action = match (was_on, now_on) {
        (false, true) => Some(ChangeAction::Started),
        (true, false) => Some(ChangeAction::Stopped),
        (true, true)
            if config.broker.tls != previous.broker.tls
                || config.certificates != previous.certificates =>
        {
            Some(ChangeAction::Updated)
        }
        _ => None,
    };
    if let Some(action) = action {
        changes.push(ApplyChange {
            subject: "TLS on the TCP and WebSockets listeners (for new connections)".into(),
            action,
        });
    }
    changes
}

/// The kind a listener is shown as: with TLS on, TCP serves MQTT over TLS and WebSockets
/// serve `wss://`.
pub fn shown_kind(kind: ListenerKind, tls_on: bool) -> ListenerKind {
    match kind {
        ListenerKind::Tcp if tls_on => ListenerKind::Tls,
        ListenerKind::WebSocket if tls_on => ListenerKind::SecureWebSocket,
        other => other,
    }
}

/// Disconnects the clients connected with a certificate that this apply revokes.
pub async fn disconnect_revoked(
    router: &mpsc::Sender<RouterMsg>,
    config: &Config,
    previous: &Config,
) -> Option<ApplyChange> {
    let revoked = |config: &Config| {
        config
            .certificates
            .clients
            .iter()
            .filter(|c| c.status == ClientCertificateStatus::Revoked)
            .map(|c| c.thumbprint.to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let before = revoked(previous);
    let newly: Vec<Arc<str>> = revoked(config)
        .into_iter()
        .filter(|thumbprint| !before.contains(thumbprint))
        .map(Arc::from)
        .collect();
    if newly.is_empty() {
        return None;
    }
    let (reply, closed) = oneshot::channel();
    let message = RouterMsg::DisconnectCertificates {
        thumbprints: newly,
        reply,
    };
    router.send(message).await.ok()?;
    let closed = closed.await.ok()?;
    Some(ApplyChange {
        subject: format!("{closed} client(s) connected with a revoked certificate"),
        action: ChangeAction::Stopped,
    })
}
