//! The one place where a CONNECT is accepted or refused on who the client is.

use crate::config::Config;
use crate::mqtt::{Connect, ReasonCode};

/// Decides whether `connect` may proceed. `require_credentials` and `users` arrive with the
/// security work (hashed passwords, client certificates, per-user topic rules); until then
/// every client is accepted, and the supervisor reports those settings as stored, not active.
pub fn authenticate(connect: &Connect, config: &Config) -> Result<(), ReasonCode> {
    let _ = config;
    // roost offers no enhanced authentication (MQTT 5.0 §4.12): a CONNECT naming an
    // Authentication Method is refused with 0x8C Bad authentication method, and the caller
    // closes the connection (MQTT-4.12.0-1).
    if connect.properties.authentication_method.is_some() {
        return Err(ReasonCode::BadAuthenticationMethod);
    }
    Ok(())
}
