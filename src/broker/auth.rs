//! The one place where a CONNECT is accepted or refused on who the client is.
//!
//! Runs in the connection's task, never in the router. Password hashes are verified off the
//! runtime thread (`spawn_blocking`), a bounded number at a time ([`Authenticator`]'s
//! semaphore), so that a flood of bad passwords costs other clients a core at most, not the
//! broker's only runtime thread. Repeated failures from one address wait longer and longer
//! before their check ([`throttle`]).
//!
//! Rules, as Mosquitto has them with a password file:
//! - with `broker.require_credentials`, a client must give a username and password that
//!   match one of `users`;
//! - without it, a client without a username is accepted (anonymous); a client that gives a
//!   username must give its password when any users are configured, so that nobody can take
//!   another user's name (and its topic permissions) without it.

mod throttle;

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};

use foldhash::HashMap;
use tokio::sync::Semaphore;

use self::throttle::FailureTable;
use super::metrics::Metrics;
use crate::auth::password::{StoredHash, decoy_hash};
use crate::config::{Config, User};
use crate::mqtt::{Connect, ReasonCode};

/// How long a CONNECT waits for a free password check before it is refused as Server busy:
/// a flood of bad passwords must not hold every later client in a queue without end.
const CHECK_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The users as the broker checks them, and what bounds the checks.
#[derive(Debug)]
pub struct Authenticator {
    /// Replaced whole at Apply; a CONNECT takes the table it finds.
    users: RwLock<Arc<UserTable>>,
    /// Password checks running at once.
    checks: Arc<Semaphore>,
    /// [`CHECK_QUEUE_WAIT`], shorter in tests.
    queue_wait: std::time::Duration,
    failures: FailureTable,
}

/// Parsed hashes by username.
#[derive(Debug, Default)]
struct UserTable {
    hashes: HashMap<String, Arc<StoredHash>>,
}

/// Why a CONNECT was refused, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoCredentials,
    UnknownUser,
    NoPassword,
    WrongPassword,
    /// Every password check was busy for [`CHECK_QUEUE_WAIT`]: not the client's fault.
    Busy,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::NoCredentials => "no username, and credentials are required",
            Refusal::UnknownUser => "unknown username",
            Refusal::NoPassword => "no password",
            Refusal::WrongPassword => "wrong password",
            Refusal::Busy => "no password check free in time",
        })
    }
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator::new()
    }
}

impl Authenticator {
    pub fn new() -> Authenticator {
        // One core is left to the runtime: `roost serve` runs on one thread by default.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Authenticator {
            users: RwLock::new(Arc::default()),
            checks: Arc::new(Semaphore::new(cores.saturating_sub(1).max(1))),
            queue_wait: CHECK_QUEUE_WAIT,
            failures: FailureTable::default(),
        }
    }

    /// Takes the users of an applied configuration: new connections check against them.
    /// Hashes were validated with the configuration; one that does not parse is left out.
    pub fn set_users(&self, users: &[User]) {
        let mut table = UserTable::default();
        for user in users {
            match StoredHash::parse(&user.password_hash) {
                Ok(hash) => {
                    table.hashes.insert(user.username.clone(), Arc::new(hash));
                }
                Err(error) => {
                    tracing::warn!(username = %user.username, %error, "user left out");
                }
            }
        }
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
    }

    fn users(&self) -> Arc<UserTable> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Checks the client's credentials; `Err` says why it is refused.
    async fn check(
        &self,
        connect: &Connect,
        require_credentials: bool,
        address: IpAddr,
    ) -> Result<(), Refusal> {
        let users = self.users();
        let Some(username) = &connect.username else {
            return match require_credentials {
                true => Err(Refusal::NoCredentials),
                false => Ok(()),
            };
        };
        if !require_credentials && users.hashes.is_empty() {
            // No users configured: usernames are labels, as before any were added.
            return Ok(());
        }
        // Repeated failures from this address wait before their check (and so before their
        // answer), whatever the outcome of this one.
        let delay = self.failures.delay_for(address, std::time::Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let Some(password) = connect.password.clone() else {
            return Err(Refusal::NoPassword);
        };
        let stored = users.hashes.get(username).cloned();
        let known = stored.is_some();
        // An unknown user costs the same check as a known one, so that the time the answer
        // takes does not tell which usernames exist.
        let permit = match tokio::time::timeout(
            self.queue_wait,
            self.checks.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return Err(Refusal::Busy),
        };
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match &stored {
                Some(hash) => hash.verify(&password),
                None => decoy_hash().verify(&password),
            }
        })
        .await
        .unwrap_or(false);
        match (known, matched) {
            (true, true) => Ok(()),
            (false, _) => Err(Refusal::UnknownUser),
            (true, false) => Err(Refusal::WrongPassword),
        }
    }
}

/// Decides whether `connect` may proceed: enhanced authentication, then credentials.
/// Failures are logged, counted, and remembered for the address (see [`throttle`]).
pub async fn authenticate(
    connect: &Connect,
    config: &Config,
    address: IpAddr,
    authenticator: &Authenticator,
    metrics: &Metrics,
) -> Result<(), ReasonCode> {
    // roost offers no enhanced authentication (MQTT 5.0 §4.12): a CONNECT naming an
    // Authentication Method is refused with 0x8C Bad authentication method, and the caller
    // closes the connection (MQTT-4.12.0-1).
    if connect.properties.authentication_method.is_some() {
        return Err(ReasonCode::BadAuthenticationMethod);
    }
    match authenticator
        .check(connect, config.broker.require_credentials, address)
        .await
    {
        Ok(()) => {
            authenticator.failures.forget(address);
            Ok(())
        }
        Err(Refusal::Busy) => {
            tracing::warn!(%address, client_id = %connect.client_id, "CONNECT refused: password checks busy");
            // 0x89 Server busy (MQTT 5.0 §3.2.2.2); 3.1.1: 0x03 Server unavailable.
            Err(ReasonCode::ServerBusy)
        }
        Err(refusal) => {
            authenticator
                .failures
                .record(address, std::time::Instant::now());
            metrics.auth_failures.fetch_add(1, Relaxed);
            tracing::warn!(
                %address,
                client_id = %connect.client_id,
                username = connect.username.as_deref().unwrap_or(""),
                reason = %refusal,
                "CONNECT refused: bad credentials"
            );
            Err(refusal_code(connect, refusal))
        }
    }
}

/// v5: 0x87 Not authorized without any credentials, 0x86 Bad User Name or Password
/// otherwise (MQTT 5.0 §3.2.2.2). v3.1.1: 0x05 Not authorized (MQTT 3.1.1 §3.2.2.3), as
/// Mosquitto answers, since 0x04 means malformed credentials there.
fn refusal_code(connect: &Connect, refusal: Refusal) -> ReasonCode {
    match (connect.protocol.is_v5(), refusal) {
        (true, Refusal::NoCredentials) => ReasonCode::NotAuthorized,
        (true, _) => ReasonCode::BadUserNameOrPassword,
        (false, _) => ReasonCode::NotAuthorized,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{Properties, ProtocolVersion};

    fn connect(username: &str, password: &str) -> Connect {
        Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 0,
            properties: Properties::default(),
            client_id: "c".into(),
            will: None,
            username: Some(username.into()),
            password: Some(bytes::Bytes::copy_from_slice(password.as_bytes())),
        }
    }

    #[tokio::test]
    async fn a_client_waiting_too_long_for_a_password_check_is_told_the_server_is_busy() {
        let authenticator = Authenticator {
            checks: Arc::new(Semaphore::new(0)),
            queue_wait: std::time::Duration::from_millis(50),
            ..Authenticator::new()
        };
        authenticator.set_users(&[User {
            username: "alice".into(),
            password_hash: crate::auth::password::hash_password("pw").unwrap(),
        }]);
        let mut config = Config::default();
        config.broker.require_credentials = true;
        let metrics = Metrics::default();
        let address = IpAddr::from([127, 0, 0, 1]);
        let refused = authenticate(
            &connect("alice", "pw"),
            &config,
            address,
            &authenticator,
            &metrics,
        )
        .await;
        assert_eq!(refused, Err(ReasonCode::ServerBusy));
        // Not the client's fault: neither counted nor slowed down.
        assert_eq!(metrics.auth_failures.load(Relaxed), 0);
        assert!(
            authenticator
                .failures
                .delay_for(address, std::time::Instant::now())
                .is_zero()
        );
    }
}
