//! The disk store's compact, versioned binary encoding of its records.
//!
//! Every value starts with a format byte ([`FORMAT`]); a reader refuses a format it does
//! not know rather than guess. Numbers are big-endian, strings and byte strings are
//! length-prefixed (u32). A message (topic, payload, QoS, RETAIN and every MQTT 5.0
//! property) is stored as the MQTT 5.0 PUBLISH packet that carries it, through the broker's
//! own codec, after its expiry as a wall-clock time: times survive a restart as wall-clock
//! times, never as `Instant`s.
//!
//! Keys: a session's records share the prefix `u16 length + client id`, so one range
//! covers them; queued records add the big-endian sequence (so they iterate in order) and
//! a kind byte (the message, or its delivery stage).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use super::{SessionRecord, Stage, StoreError};
use crate::model::{Message, Subscription};
use crate::mqtt::{
    Packet, ProtocolVersion, Publish, PublishDelivery, QoS, RetainHandling, SubscriptionOptions,
    Will,
};

/// The format byte of every value this version writes.
pub const FORMAT: u8 = 1;

/// Key kind bytes after a session's prefix.
pub const KIND_RECORD: u8 = 0;
pub const KIND_INBOUND: u8 = 1;
/// Key kind bytes after a queued message's sequence.
pub const KIND_MESSAGE: u8 = 0;
pub const KIND_STAGE: u8 = 1;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// The prefix of every key of one session (in `sessions` and `queued`).
pub fn session_prefix(client_id: &str) -> Vec<u8> {
    let bytes = client_id.as_bytes();
    // Client ids are MQTT strings, at most 65,535 bytes (MQTT-1.5.4).
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(2 + bytes.len() + 10);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(&bytes[..usize::from(len)]);
    key
}

/// The exclusive end of the range of keys starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    // Every key under a prefix is at most 10 bytes longer and none is all 0xFF after it.
    end.extend_from_slice(&[0xFF; 11]);
    end
}

/// Splits a key into its session's client id and the rest.
pub fn split_session_key(key: &[u8]) -> Result<(Arc<str>, &[u8]), StoreError> {
    let len_bytes: [u8; 2] = key
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("key shorter than its client id length"))?;
    let len = usize::from(u16::from_be_bytes(len_bytes));
    let id = key
        .get(2..2 + len)
        .ok_or_else(|| corrupt("key shorter than its client id"))?;
    let id = std::str::from_utf8(id).map_err(|_| corrupt("client id is not UTF-8"))?;
    Ok((Arc::from(id), &key[2 + len..]))
}

pub fn session_key(client_id: &str) -> Vec<u8> {
    let mut key = session_prefix(client_id);
    key.push(KIND_RECORD);
    key
}

pub fn inbound_key(client_id: &str, packet_id: u16) -> Vec<u8> {
    let mut key = session_prefix(client_id);
    key.push(KIND_INBOUND);
    key.extend_from_slice(&packet_id.to_be_bytes());
    key
}

pub fn queued_key(client_id: &str, sequence: u64, kind: u8) -> Vec<u8> {
    let mut key = session_prefix(client_id);
    key.extend_from_slice(&sequence.to_be_bytes());
    key.push(kind);
    key
}

/// Appends values in the format's encoding.
#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    pub fn new() -> Writer {
        Writer(vec![FORMAT])
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.0.extend_from_slice(&v[..len as usize]);
        self
    }
    pub fn opt_u32(&mut self, v: Option<u32>) -> &mut Self {
        match v {
            Some(v) => self.u8(1).u32(v),
            None => self.u8(0),
        }
    }
    pub fn opt_time(&mut self, v: Option<SystemTime>) -> &mut Self {
        match v {
            Some(t) => self.u8(1).u64(unix_millis(t)),
            None => self.u8(0),
        }
    }
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads values in the format's encoding; every read checks the length.
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// Checks the format byte.
    pub fn new(value: &'a [u8], what: &str) -> Result<Reader<'a>, StoreError> {
        match value.split_first() {
            Some((&FORMAT, rest)) => Ok(Reader(rest)),
            Some((format, _)) => Err(StoreError::Corrupt(format!(
                "{what}: unknown record format {format}"
            ))),
            None => Err(StoreError::Corrupt(format!("{what}: empty record"))),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(corrupt("record truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, StoreError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, StoreError> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    pub fn string(&mut self) -> Result<&'a str, StoreError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt("string is not UTF-8"))
    }
    pub fn opt_u32(&mut self) -> Result<Option<u32>, StoreError> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(self.u32()?),
        })
    }
    /// Nothing left: an optional field added later is absent from older records.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn opt_time(&mut self) -> Result<Option<SystemTime>, StoreError> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(from_unix_millis(self.u64()?)),
        })
    }
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_unix_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

/// The wall-clock time of a monotonic deadline.
pub fn wall_clock(at: Instant) -> SystemTime {
    let now = Instant::now();
    let wall = SystemTime::now();
    if at >= now {
        wall.checked_add(at - now).unwrap_or(wall)
    } else {
        wall.checked_sub(now - at).unwrap_or(UNIX_EPOCH)
    }
}

/// The monotonic deadline of a wall-clock time (a past time is now).
pub fn monotonic(at: SystemTime) -> Instant {
    let now = Instant::now();
    match at.duration_since(SystemTime::now()) {
        Ok(ahead) => now.checked_add(ahead).unwrap_or(now),
        Err(_) => now,
    }
}

/// The MQTT 5.0 PUBLISH packet carrying `publish` (packet id 1 as a placeholder).
fn publish_bytes(publish: &Publish) -> Result<Vec<u8>, StoreError> {
    let mut delivery = PublishDelivery::unchanged(publish);
    delivery.dup = false;
    delivery.topic_alias = None;
    delivery.packet_id = (publish.qos != QoS::AtMostOnce).then_some(1);
    let mut out = BytesMut::new();
    crate::mqtt::encode_publish(publish, &delivery, ProtocolVersion::V5, u32::MAX, &mut out)
        .map_err(|error| StoreError::Corrupt(format!("cannot encode a message: {error}")))?;
    Ok(out.to_vec())
}

fn publish_from(bytes: &[u8]) -> Result<Publish, StoreError> {
    let mut buf = BytesMut::from(bytes);
    match crate::mqtt::decode(&mut buf, Some(ProtocolVersion::V5), u32::MAX) {
        Ok(Some(Packet::Publish(mut publish))) => {
            publish.packet_id = None;
            publish.dup = false;
            Ok(publish)
        }
        Ok(_) => Err(corrupt("message record is not a PUBLISH")),
        Err(error) => Err(StoreError::Corrupt(format!("message record: {error}"))),
    }
}

pub fn encode_message(message: &Message) -> Result<Vec<u8>, StoreError> {
    let mut w = Writer::new();
    w.opt_time(message.expires_at.map(wall_clock));
    w.bytes(&publish_bytes(&message.publish)?);
    Ok(w.finish())
}

pub fn decode_message(value: &[u8]) -> Result<Message, StoreError> {
    let mut r = Reader::new(value, "message")?;
    let expires_at = r.opt_time()?.map(monotonic);
    let publish = publish_from(r.bytes()?)?;
    Ok(Message {
        publish,
        expires_at,
    })
}

/// A queued message: its reference into `messages` and what differs per session, and when
/// the message expires (a copy of the payload's, so that expired records can be purged
/// without reading their payloads; absent from records written before it was added).
pub struct QueuedValue<'a> {
    pub message_id: u64,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: &'a [u32],
    pub share: Option<&'a str>,
    pub expires_at: Option<SystemTime>,
}

pub fn encode_queued(q: &QueuedValue<'_>) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(q.message_id).u8(q.qos as u8).u8(u8::from(q.retain));
    w.u32(u32::try_from(q.subscription_ids.len()).unwrap_or(u32::MAX));
    for id in q.subscription_ids {
        w.u32(*id);
    }
    match q.share {
        Some(share) => w.u8(1).bytes(share.as_bytes()),
        None => w.u8(0),
    };
    w.opt_time(q.expires_at);
    w.finish()
}

pub struct DecodedQueued {
    pub message_id: u64,
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    pub share: Option<Arc<str>>,
    pub expires_at: Option<SystemTime>,
}

pub fn decode_queued(value: &[u8]) -> Result<DecodedQueued, StoreError> {
    let mut r = Reader::new(value, "queued message")?;
    let message_id = r.u64()?;
    let qos = QoS::from_u8(r.u8()?).ok_or_else(|| corrupt("queued message QoS"))?;
    let retain = r.u8()? != 0;
    let count = r.u32()? as usize;
    let mut subscription_ids = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        subscription_ids.push(r.u32()?);
    }
    let share = match r.u8()? {
        0 => None,
        _ => Some(Arc::from(r.string()?)),
    };
    let expires_at = if r.is_empty() { None } else { r.opt_time()? };
    Ok(DecodedQueued {
        message_id,
        qos,
        retain,
        subscription_ids,
        share,
        expires_at,
    })
}

pub fn encode_stage(stage: Stage) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16(stage.packet_id).u8(u8::from(stage.released));
    w.finish()
}

pub fn decode_stage(value: &[u8]) -> Result<Stage, StoreError> {
    let mut r = Reader::new(value, "delivery stage")?;
    Ok(Stage {
        packet_id: r.u16()?,
        released: r.u8()? != 0,
    })
}

fn protocol_from(level: u8) -> Result<ProtocolVersion, StoreError> {
    match level {
        3 => Ok(ProtocolVersion::V3_1),
        4 => Ok(ProtocolVersion::V3_1_1),
        5 => Ok(ProtocolVersion::V5),
        _ => Err(corrupt("session protocol version")),
    }
}

fn retain_handling_from(value: u8) -> Result<RetainHandling, StoreError> {
    match value {
        0 => Ok(RetainHandling::SendOnSubscribe),
        1 => Ok(RetainHandling::SendIfNew),
        2 => Ok(RetainHandling::DoNotSend),
        _ => Err(corrupt("subscription retain handling")),
    }
}

pub fn encode_session(record: &SessionRecord) -> Result<Vec<u8>, StoreError> {
    let mut w = Writer::new();
    w.u8(record.protocol.level());
    w.opt_u32(record.expiry_secs);
    w.opt_time(record.expires_at);
    w.u32(u32::try_from(record.subscriptions.len()).unwrap_or(u32::MAX));
    for (filter, subscription) in &record.subscriptions {
        let options = subscription.options;
        let flags = u8::from(options.no_local)
            | u8::from(options.retain_as_published) << 1
            | (options.retain_handling as u8) << 2;
        w.bytes(filter.as_bytes())
            .u8(options.qos as u8)
            .u8(flags)
            .opt_u32(subscription.identifier);
    }
    match &record.will {
        Some(will) => {
            // The will as the PUBLISH it becomes; its delay (not a PUBLISH property) beside.
            let publish = Publish {
                dup: false,
                qos: will.qos,
                retain: will.retain,
                topic: will.topic.clone(),
                packet_id: None,
                properties: will.properties.clone(),
                payload: will.payload.clone(),
            };
            w.u8(1)
                .bytes(&publish_bytes(&publish)?)
                .opt_u32(will.properties.will_delay_interval);
        }
        None => {
            w.u8(0);
        }
    }
    w.opt_time(record.will_at);
    match &record.username {
        Some(username) => w.u8(1).bytes(username.as_bytes()),
        None => w.u8(0),
    };
    Ok(w.finish())
}

pub fn decode_session(client_id: Arc<str>, value: &[u8]) -> Result<SessionRecord, StoreError> {
    let mut r = Reader::new(value, "session")?;
    let protocol = protocol_from(r.u8()?)?;
    let expiry_secs = r.opt_u32()?;
    let expires_at = r.opt_time()?;
    let count = r.u32()? as usize;
    let mut subscriptions = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let filter = r.string()?.to_string();
        let qos = QoS::from_u8(r.u8()?).ok_or_else(|| corrupt("subscription QoS"))?;
        let flags = r.u8()?;
        let identifier = r.opt_u32()?;
        subscriptions.push((
            filter,
            Subscription {
                options: SubscriptionOptions {
                    qos,
                    no_local: flags & 1 != 0,
                    retain_as_published: flags & 2 != 0,
                    retain_handling: retain_handling_from(flags >> 2)?,
                },
                identifier,
            },
        ));
    }
    let will = match r.u8()? {
        0 => None,
        _ => {
            let publish = publish_from(r.bytes()?)?;
            let mut properties = publish.properties;
            properties.will_delay_interval = r.opt_u32()?;
            Some(Will {
                topic: publish.topic,
                payload: publish.payload,
                qos: publish.qos,
                retain: publish.retain,
                properties,
            })
        }
    };
    let will_at = r.opt_time()?;
    let username = match r.u8()? {
        0 => None,
        _ => Some(Arc::from(r.string()?)),
    };
    Ok(SessionRecord {
        client_id,
        protocol,
        expiry_secs,
        expires_at,
        subscriptions,
        will,
        will_at,
        username,
    })
}

/// The `meta` value holding the schema version.
pub fn encode_schema(version: u32) -> Vec<u8> {
    version.to_be_bytes().to_vec()
}

pub fn decode_schema(value: &[u8]) -> Result<u32, StoreError> {
    let bytes: [u8; 4] = value
        .try_into()
        .map_err(|_| corrupt("schema version record"))?;
    Ok(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::mqtt::Properties;

    fn publish(qos: QoS) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: true,
            topic: Arc::from("a/b"),
            packet_id: None,
            properties: Properties {
                message_expiry_interval: Some(60),
                content_type: Some("text/plain".into()),
                user_properties: vec![("k".into(), "v".into())],
                ..Properties::default()
            },
            payload: Bytes::from_static(b"payload"),
        }
    }

    #[test]
    fn a_queued_record_round_trips_and_one_written_before_its_expiry_field_still_reads() {
        let expires_at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let value = QueuedValue {
            message_id: 42,
            qos: QoS::ExactlyOnce,
            retain: true,
            subscription_ids: &[7, 9],
            share: Some("$share/g/t"),
            expires_at: Some(expires_at),
        };
        let encoded = encode_queued(&value);
        let decoded = decode_queued(&encoded).unwrap();
        assert_eq!(decoded.message_id, 42);
        assert_eq!(decoded.qos, QoS::ExactlyOnce);
        assert!(decoded.retain);
        assert_eq!(decoded.subscription_ids, [7, 9]);
        assert_eq!(decoded.share.as_deref(), Some("$share/g/t"));
        assert_eq!(decoded.expires_at, Some(expires_at));
        // The same record as this schema's first writers wrote it: no expiry field.
        let older = &encoded[..encoded.len() - 9];
        assert_eq!(decode_queued(older).unwrap().expires_at, None);
    }

    #[test]
    fn a_message_round_trips_with_its_properties_and_wall_clock_expiry() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let message = Message::new(publish(qos), Instant::now());
            let decoded = decode_message(&encode_message(&message).unwrap()).unwrap();
            assert_eq!(decoded.publish, message.publish);
            let (a, b) = (decoded.expires_at.unwrap(), message.expires_at.unwrap());
            let skew = if a > b { a - b } else { b - a };
            assert!(skew < Duration::from_millis(50), "{skew:?}");
        }
    }

    #[test]
    fn a_session_round_trips_with_subscriptions_and_will() {
        let mut record = SessionRecord::new(Arc::from("c"), ProtocolVersion::V3_1_1);
        record.expiry_secs = Some(300);
        record.expires_at = Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        record.subscriptions = vec![(
            "$share/g/a/+".into(),
            Subscription {
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
                identifier: Some(42),
            },
        )];
        record.will = Some(Will {
            topic: Arc::from("w"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Properties {
                will_delay_interval: Some(30),
                ..Properties::default()
            },
        });
        record.will_at = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_100));
        record.username = Some(Arc::from("sensor-user"));
        let decoded = decode_session(Arc::from("c"), &encode_session(&record).unwrap()).unwrap();
        assert_eq!(decoded, record);
    }

    #[test]
    fn an_unknown_format_or_a_truncated_record_is_corrupt_not_a_panic() {
        let record = SessionRecord::new(Arc::from("c"), ProtocolVersion::V5);
        let mut value = encode_session(&record).unwrap();
        for cut in 0..value.len() {
            assert!(decode_session(Arc::from("c"), &value[..cut]).is_err());
        }
        value[0] = FORMAT + 1;
        let error = decode_session(Arc::from("c"), &value).unwrap_err();
        assert!(
            error.to_string().contains("unknown record format"),
            "{error}"
        );
    }

    #[test]
    fn keys_of_one_session_share_a_prefix_and_sort_by_sequence() {
        let a = queued_key("ab", 2, KIND_MESSAGE);
        let b = queued_key("ab", 10, KIND_MESSAGE);
        assert!(a < b);
        let prefix = session_prefix("ab");
        assert!(a.starts_with(&prefix) && b < prefix_end(&prefix));
        // "a" and "ab" never share keys: the length comes first.
        assert!(!a.starts_with(&session_prefix("a")));
        let (id, rest) = split_session_key(&b).unwrap();
        assert_eq!(&*id, "ab");
        assert_eq!(rest.len(), 9);
    }
}
