//! One delivery of an application message to one session. The message itself
//! ([`Message`]) is a record type of [`crate::model`], shared with the store.

use std::sync::Arc;

use crate::mqtt::QoS;

pub use crate::model::Message;

/// One delivery of a message to one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Arc<Message>,
    pub qos: QoS,
    pub packet_id: Option<u16>,
    pub dup: bool,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
}
