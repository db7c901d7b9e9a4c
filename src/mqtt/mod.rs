//! The MQTT wire protocol: packets, properties, reason codes, encode and decode.
//!
//! This module knows nothing of sockets: it turns bytes into [`Packet`]s and back, and
//! enforces the specification's rules on well-formed packets (MQTT 3.1.1 §1.5 / §2, MQTT 5.0
//! §1.5 / §2 / §4.7). Every rule it enforces names its normative statement in a comment.

mod codec;
mod packet;
mod properties;
mod reason;
pub mod topic;

pub use codec::{DecodeError, EncodeError, PublishDelivery, decode, encode, encode_publish};
pub use packet::*;
pub use properties::{Properties, id as property_id};
pub use reason::ReasonCode;

/// The largest remaining length the four-byte variable byte integer can express
/// (MQTT 3.1.1 §2.2.3, MQTT 5.0 §1.5.5): 268,435,455 bytes.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;
