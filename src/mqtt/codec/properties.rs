//! MQTT 5.0 properties (§2.2.2): which may appear in which packet, how they are read and
//! validated, and how they are written.

use std::sync::Arc;

use super::DecodeError;
use super::primitives::{DecodeResult, Reader, Sink, measure};
use crate::mqtt::Properties;
use crate::mqtt::property_id as id;

/// The packet (or CONNECT's will) a property set belongs to; decides which properties are
/// allowed (MQTT 5.0 §2.2.2.2, table 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    PubResponse,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const fn mask(ids: &[u8]) -> u64 {
    let mut bits = 0u64;
    let mut i = 0;
    while i < ids.len() {
        bits |= 1 << ids[i];
        i += 1;
    }
    bits
}

impl PropertyContext {
    fn allowed(self) -> u64 {
        use PropertyContext::*;
        const CONNECT: u64 = mask(&[
            id::SESSION_EXPIRY_INTERVAL,
            id::RECEIVE_MAXIMUM,
            id::MAXIMUM_PACKET_SIZE,
            id::TOPIC_ALIAS_MAXIMUM,
            id::REQUEST_RESPONSE_INFORMATION,
            id::REQUEST_PROBLEM_INFORMATION,
            id::USER_PROPERTY,
            id::AUTHENTICATION_METHOD,
            id::AUTHENTICATION_DATA,
        ]);
        const WILL: u64 = mask(&[
            id::WILL_DELAY_INTERVAL,
            id::PAYLOAD_FORMAT_INDICATOR,
            id::MESSAGE_EXPIRY_INTERVAL,
            id::CONTENT_TYPE,
            id::RESPONSE_TOPIC,
            id::CORRELATION_DATA,
            id::USER_PROPERTY,
        ]);
        const CONNACK: u64 = mask(&[
            id::SESSION_EXPIRY_INTERVAL,
            id::RECEIVE_MAXIMUM,
            id::MAXIMUM_QOS,
            id::RETAIN_AVAILABLE,
            id::MAXIMUM_PACKET_SIZE,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            id::TOPIC_ALIAS_MAXIMUM,
            id::REASON_STRING,
            id::USER_PROPERTY,
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            id::SERVER_KEEP_ALIVE,
            id::RESPONSE_INFORMATION,
            id::SERVER_REFERENCE,
            id::AUTHENTICATION_METHOD,
            id::AUTHENTICATION_DATA,
        ]);
        const PUBLISH: u64 = mask(&[
            id::PAYLOAD_FORMAT_INDICATOR,
            id::MESSAGE_EXPIRY_INTERVAL,
            id::TOPIC_ALIAS,
            id::RESPONSE_TOPIC,
            id::CORRELATION_DATA,
            id::USER_PROPERTY,
            id::SUBSCRIPTION_IDENTIFIER,
            id::CONTENT_TYPE,
        ]);
        const REASON_AND_USER: u64 = mask(&[id::REASON_STRING, id::USER_PROPERTY]);
        const SUBSCRIBE: u64 = mask(&[id::SUBSCRIPTION_IDENTIFIER, id::USER_PROPERTY]);
        const UNSUBSCRIBE: u64 = mask(&[id::USER_PROPERTY]);
        const DISCONNECT: u64 = mask(&[
            id::SESSION_EXPIRY_INTERVAL,
            id::REASON_STRING,
            id::USER_PROPERTY,
            id::SERVER_REFERENCE,
        ]);
        const AUTH: u64 = mask(&[
            id::AUTHENTICATION_METHOD,
            id::AUTHENTICATION_DATA,
            id::REASON_STRING,
            id::USER_PROPERTY,
        ]);
        match self {
            Connect => CONNECT,
            Will => WILL,
            ConnAck => CONNACK,
            Publish => PUBLISH,
            PubResponse | SubAck | UnsubAck => REASON_AND_USER,
            Subscribe => SUBSCRIBE,
            Unsubscribe => UNSUBSCRIBE,
            Disconnect => DISCONNECT,
            Auth => AUTH,
        }
    }

    fn allows(self, property: u8) -> bool {
        property < 64 && self.allowed() & (1 << property) != 0
    }
}

/// Sets a property that may appear only once: a second occurrence is a Protocol Error
/// (MQTT 5.0 §2.2.2.2 and each property's description, e.g. §3.1.2.11.2).
fn once<T>(slot: &mut Option<T>, value: T) -> DecodeResult<()> {
    if slot.is_some() {
        return Err(DecodeError::Protocol("property included more than once"));
    }
    *slot = Some(value);
    Ok(())
}

/// A Byte property whose only legal values are 0 and 1; anything else is a Protocol Error
/// (payload format indicator §3.3.2.3.2, request problem / response information
/// §3.1.2.11.7 / §3.1.2.11.6, maximum QoS §3.2.2.3.4, retain / wildcard / subscription
/// identifier / shared subscription available §3.2.2.3.5, .11, .12, .13).
fn boolean_byte(reader: &mut Reader) -> DecodeResult<u8> {
    match reader.u8()? {
        value @ (0 | 1) => Ok(value),
        _ => Err(DecodeError::Protocol("property value must be 0 or 1")),
    }
}

/// Reads a Property Length and the properties it covers, validating each against `context`.
pub(super) fn read_properties(
    reader: &mut Reader,
    context: PropertyContext,
) -> DecodeResult<Properties> {
    let len = reader.varint()? as usize;
    if len > reader.remaining() {
        // The property length must fit in what the remaining length left (MQTT 5.0 §2.2.2.1,
        // a packet that contradicts its own lengths is malformed, §1.5.5 / §4.13).
        return Err(DecodeError::Malformed(
            "property length exceeds the remaining length",
        ));
    }
    let mut r = Reader::new(reader.take(len)?);
    let mut p = Properties::default();
    while !r.is_empty() {
        // The identifier is a Variable Byte Integer (§2.2.2.2); all defined ones fit a byte.
        let raw = r.varint()?;
        let property = u8::try_from(raw).unwrap_or(u8::MAX);
        if !context.allows(property) {
            // A property that is unknown or not allowed in this packet makes it malformed
            // (MQTT 5.0 §2.2.2.2: "a Control Packet which contains an Identifier which is
            // not valid for its packet type ... is a Malformed Packet").
            return Err(DecodeError::Malformed(
                "property not allowed in this packet",
            ));
        }
        match property {
            id::PAYLOAD_FORMAT_INDICATOR => {
                let v = boolean_byte(&mut r)?;
                once(&mut p.payload_format_indicator, v)?
            }
            id::MESSAGE_EXPIRY_INTERVAL => once(&mut p.message_expiry_interval, r.u32()?)?,
            id::CONTENT_TYPE => once(&mut p.content_type, r.string()?)?,
            id::RESPONSE_TOPIC => {
                let topic: Arc<str> = r.arc_str()?;
                // MQTT-3.3.2-14 (and §3.1.3.2.5 for the will): a Response Topic is a topic
                // name, so it must not contain wildcards.
                if !crate::mqtt::topic::is_valid_topic_name(&topic) {
                    return Err(DecodeError::Protocol("response topic is not a topic name"));
                }
                once(&mut p.response_topic, topic)?
            }
            id::CORRELATION_DATA => once(&mut p.correlation_data, r.binary()?)?,
            id::SUBSCRIPTION_IDENTIFIER => {
                let value = r.varint()?;
                // §3.3.2.3.8 / §3.8.2.1.2: a value of 0 is a Protocol Error.
                if value == 0 {
                    return Err(DecodeError::Protocol("subscription identifier 0"));
                }
                // §3.8.2.1.2: more than one in SUBSCRIBE is a Protocol Error; a PUBLISH
                // from the server may carry several (§3.3.2.3.8).
                if context != PropertyContext::Publish && !p.subscription_identifiers.is_empty() {
                    return Err(DecodeError::Protocol(
                        "subscription identifier included more than once",
                    ));
                }
                p.subscription_identifiers.push(value);
            }
            id::SESSION_EXPIRY_INTERVAL => once(&mut p.session_expiry_interval, r.u32()?)?,
            id::ASSIGNED_CLIENT_IDENTIFIER => once(&mut p.assigned_client_identifier, r.string()?)?,
            id::SERVER_KEEP_ALIVE => once(&mut p.server_keep_alive, r.u16()?)?,
            id::AUTHENTICATION_METHOD => once(&mut p.authentication_method, r.string()?)?,
            id::AUTHENTICATION_DATA => once(&mut p.authentication_data, r.binary()?)?,
            id::REQUEST_PROBLEM_INFORMATION => {
                let v = boolean_byte(&mut r)?;
                once(&mut p.request_problem_information, v)?
            }
            id::WILL_DELAY_INTERVAL => once(&mut p.will_delay_interval, r.u32()?)?,
            id::REQUEST_RESPONSE_INFORMATION => {
                let v = boolean_byte(&mut r)?;
                once(&mut p.request_response_information, v)?
            }
            id::RESPONSE_INFORMATION => once(&mut p.response_information, r.string()?)?,
            id::SERVER_REFERENCE => once(&mut p.server_reference, r.string()?)?,
            id::REASON_STRING => once(&mut p.reason_string, r.string()?)?,
            id::RECEIVE_MAXIMUM => {
                let value = r.u16()?;
                // §3.1.2.11.3 / §3.2.2.3.3: a Receive Maximum of 0 is a Protocol Error.
                if value == 0 {
                    return Err(DecodeError::Protocol("receive maximum 0"));
                }
                once(&mut p.receive_maximum, value)?
            }
            id::TOPIC_ALIAS_MAXIMUM => once(&mut p.topic_alias_maximum, r.u16()?)?,
            // Topic Alias 0 or above the receiver's maximum is a Topic Alias Invalid error
            // (MQTT-3.3.2-8 / §3.3.2.3.4) that the session checks, since only it knows the
            // maximum and must answer with reason code 0x94.
            id::TOPIC_ALIAS => once(&mut p.topic_alias, r.u16()?)?,
            id::MAXIMUM_QOS => {
                let v = boolean_byte(&mut r)?;
                once(&mut p.maximum_qos, v)?
            }
            id::RETAIN_AVAILABLE => {
                let v = boolean_byte(&mut r)?;
                once(&mut p.retain_available, v)?
            }
            id::USER_PROPERTY => {
                let name = r.string()?;
                let value = r.string()?;
                p.user_properties.push((name, value));
            }
            id::MAXIMUM_PACKET_SIZE => {
                let value = r.u32()?;
                // §3.1.2.11.4 / §3.2.2.3.6: a Maximum Packet Size of 0 is a Protocol Error.
                if value == 0 {
                    return Err(DecodeError::Protocol("maximum packet size 0"));
                }
                once(&mut p.maximum_packet_size, value)?
            }
            id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
                let v = boolean_byte(&mut r)?;
                once(&mut p.wildcard_subscription_available, v)?
            }
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                let v = boolean_byte(&mut r)?;
                once(&mut p.subscription_identifier_available, v)?
            }
            id::SHARED_SUBSCRIPTION_AVAILABLE => {
                let v = boolean_byte(&mut r)?;
                once(&mut p.shared_subscription_available, v)?
            }
            _ => return Err(DecodeError::Malformed("unknown property identifier")),
        }
    }
    // §3.1.2.11.10 / §3.15.2.2.3: Authentication Data without an Authentication Method is a
    // Protocol Error.
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::Protocol(
            "authentication data without authentication method",
        ));
    }
    Ok(p)
}

/// The properties to write: a packet's own, with the per-delivery values of a PUBLISH
/// (expiry, topic alias, subscription identifiers) possibly replaced.
pub(super) struct PropertySource<'a> {
    pub(super) base: &'a Properties,
    pub(super) message_expiry_interval: Option<u32>,
    pub(super) topic_alias: Option<u16>,
    pub(super) subscription_identifiers: &'a [u32],
}

impl<'a> PropertySource<'a> {
    pub(super) fn of(base: &'a Properties) -> Self {
        PropertySource {
            base,
            message_expiry_interval: base.message_expiry_interval,
            topic_alias: base.topic_alias,
            subscription_identifiers: &base.subscription_identifiers,
        }
    }
}

/// Writes the Property Length and the properties allowed in `context`. With
/// `drop_optional` the reason string and user properties are left out, which the
/// specification allows when they would exceed the receiver's Maximum Packet Size
/// (MQTT-3.1.2-29 and e.g. MQTT-3.4.2-2 / MQTT-3.4.2-3).
pub(super) fn write_properties<S: Sink>(
    sink: &mut S,
    source: &PropertySource<'_>,
    context: PropertyContext,
    drop_optional: bool,
) {
    sink.write_varint(properties_len(source, context, drop_optional));
    write_items(sink, source, context, drop_optional);
}

/// The length of the properties alone (without the Property Length field).
pub(super) fn properties_len(
    source: &PropertySource<'_>,
    context: PropertyContext,
    drop_optional: bool,
) -> usize {
    measure(|counter| write_items(counter, source, context, drop_optional))
}

fn write_items<S: Sink>(
    s: &mut S,
    source: &PropertySource<'_>,
    context: PropertyContext,
    drop_optional: bool,
) {
    let p = source.base;
    let allows = |property: u8| context.allows(property);
    let byte = |s: &mut S, property: u8, value: Option<u8>| {
        if let (Some(v), true) = (value, allows(property)) {
            s.write_u8(property);
            s.write_u8(v);
        }
    };
    byte(s, id::PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
    if let (Some(v), true) = (
        source.message_expiry_interval,
        allows(id::MESSAGE_EXPIRY_INTERVAL),
    ) {
        s.write_u8(id::MESSAGE_EXPIRY_INTERVAL);
        s.write_u32(v);
    }
    write_str(s, allows, id::CONTENT_TYPE, p.content_type.as_deref());
    write_str(s, allows, id::RESPONSE_TOPIC, p.response_topic.as_deref());
    if let (Some(v), true) = (&p.correlation_data, allows(id::CORRELATION_DATA)) {
        s.write_u8(id::CORRELATION_DATA);
        s.write_binary(v);
    }
    if allows(id::SUBSCRIPTION_IDENTIFIER) {
        for &v in source.subscription_identifiers {
            s.write_u8(id::SUBSCRIPTION_IDENTIFIER);
            s.write_varint(v as usize);
        }
    }
    write_u32(
        s,
        allows,
        id::SESSION_EXPIRY_INTERVAL,
        p.session_expiry_interval,
    );
    write_str(
        s,
        allows,
        id::ASSIGNED_CLIENT_IDENTIFIER,
        p.assigned_client_identifier.as_deref(),
    );
    write_u16(s, allows, id::SERVER_KEEP_ALIVE, p.server_keep_alive);
    write_str(
        s,
        allows,
        id::AUTHENTICATION_METHOD,
        p.authentication_method.as_deref(),
    );
    if let (Some(v), true) = (&p.authentication_data, allows(id::AUTHENTICATION_DATA)) {
        s.write_u8(id::AUTHENTICATION_DATA);
        s.write_binary(v);
    }
    byte(
        s,
        id::REQUEST_PROBLEM_INFORMATION,
        p.request_problem_information,
    );
    write_u32(s, allows, id::WILL_DELAY_INTERVAL, p.will_delay_interval);
    byte(
        s,
        id::REQUEST_RESPONSE_INFORMATION,
        p.request_response_information,
    );
    write_str(
        s,
        allows,
        id::RESPONSE_INFORMATION,
        p.response_information.as_deref(),
    );
    write_str(
        s,
        allows,
        id::SERVER_REFERENCE,
        p.server_reference.as_deref(),
    );
    if !drop_optional {
        write_str(s, allows, id::REASON_STRING, p.reason_string.as_deref());
    }
    write_u16(s, allows, id::RECEIVE_MAXIMUM, p.receive_maximum);
    write_u16(s, allows, id::TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
    write_u16(s, allows, id::TOPIC_ALIAS, source.topic_alias);
    byte(s, id::MAXIMUM_QOS, p.maximum_qos);
    byte(s, id::RETAIN_AVAILABLE, p.retain_available);
    if !drop_optional && allows(id::USER_PROPERTY) {
        for (name, value) in &p.user_properties {
            s.write_u8(id::USER_PROPERTY);
            s.write_str(name);
            s.write_str(value);
        }
    }
    write_u32(s, allows, id::MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
    byte(
        s,
        id::WILDCARD_SUBSCRIPTION_AVAILABLE,
        p.wildcard_subscription_available,
    );
    byte(
        s,
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        p.subscription_identifier_available,
    );
    byte(
        s,
        id::SHARED_SUBSCRIPTION_AVAILABLE,
        p.shared_subscription_available,
    );
}

fn write_str<S: Sink>(s: &mut S, allows: impl Fn(u8) -> bool, property: u8, value: Option<&str>) {
    if let (Some(v), true) = (value, allows(property)) {
        s.write_u8(property);
        s.write_str(v);
    }
}

fn write_u16<S: Sink>(s: &mut S, allows: impl Fn(u8) -> bool, property: u8, value: Option<u16>) {
    if let (Some(v), true) = (value, allows(property)) {
        s.write_u8(property);
        s.write_u16(v);
    }
}

fn write_u32<S: Sink>(s: &mut S, allows: impl Fn(u8) -> bool, property: u8, value: Option<u32>) {
    if let (Some(v), true) = (value, allows(property)) {
        s.write_u8(property);
        s.write_u32(v);
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;

    fn read(bytes: &'static [u8], context: PropertyContext) -> DecodeResult<Properties> {
        read_properties(&mut Reader::new(Bytes::from_static(bytes)), context)
    }

    #[test]
    fn reads_and_writes_publish_properties() {
        let p = Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            content_type: Some("text/plain".into()),
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(b"\x01\x02")),
            subscription_identifiers: vec![1, 268_435_455],
            topic_alias: Some(3),
            user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            ..Properties::default()
        };
        let mut out = BytesMut::new();
        write_properties(
            &mut out,
            &PropertySource::of(&p),
            PropertyContext::Publish,
            false,
        );
        let decoded =
            read_properties(&mut Reader::new(out.freeze()), PropertyContext::Publish).unwrap();
        assert_eq!(decoded, p);
    }

    #[test]
    fn property_not_allowed_in_packet_is_malformed() {
        // Session Expiry Interval (0x11) in PUBLISH: MQTT 5.0 §2.2.2.2.
        assert!(matches!(
            read(&[5, 0x11, 0, 0, 0, 1], PropertyContext::Publish),
            Err(DecodeError::Malformed(_))
        ));
        // Unknown identifier 0x05.
        assert!(matches!(
            read(&[2, 0x05, 0], PropertyContext::Connect),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn duplicate_single_property_is_a_protocol_error() {
        // Two Receive Maximum properties: MQTT 5.0 §3.1.2.11.3.
        assert!(matches!(
            read(&[6, 0x21, 0, 1, 0x21, 0, 2], PropertyContext::Connect),
            Err(DecodeError::Protocol(_))
        ));
        // Two user properties with the same name are fine (MQTT-3.3.2-18).
        let p = read(
            &[10, 0x26, 0, 1, b'k', 0, 0, 0x26, 0, 1, b'k'],
            PropertyContext::Publish,
        );
        assert!(p.is_err(), "second user property is truncated");
        let p = read(
            &[12, 0x26, 0, 1, b'k', 0, 0, 0x26, 0, 1, b'k', 0, 0],
            PropertyContext::Publish,
        )
        .unwrap();
        assert_eq!(p.user_properties.len(), 2);
    }

    #[test]
    fn property_length_beyond_remaining_length_is_malformed() {
        // MQTT 5.0 §2.2.2.1.
        assert!(matches!(
            read(&[9, 0x21, 0, 1], PropertyContext::Connect),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn zero_values_that_the_spec_forbids_are_protocol_errors() {
        // Subscription Identifier 0: §3.8.2.1.2.
        assert!(matches!(
            read(&[2, 0x0B, 0], PropertyContext::Subscribe),
            Err(DecodeError::Protocol(_))
        ));
        // Receive Maximum 0: §3.1.2.11.3.
        assert!(matches!(
            read(&[3, 0x21, 0, 0], PropertyContext::Connect),
            Err(DecodeError::Protocol(_))
        ));
        // Maximum Packet Size 0: §3.1.2.11.4.
        assert!(matches!(
            read(&[5, 0x27, 0, 0, 0, 0], PropertyContext::Connect),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn boolean_properties_other_than_0_or_1_are_protocol_errors() {
        // Payload Format Indicator §3.3.2.3.2, Request Problem Information §3.1.2.11.7,
        // Request Response Information §3.1.2.11.6, Maximum QoS §3.2.2.3.4.
        for (bytes, context) in [
            (&[2u8, 0x01, 2][..], PropertyContext::Publish),
            (&[2, 0x17, 2][..], PropertyContext::Connect),
            (&[2, 0x19, 2][..], PropertyContext::Connect),
            (&[2, 0x24, 2][..], PropertyContext::ConnAck),
            (&[2, 0x25, 2][..], PropertyContext::ConnAck),
        ] {
            let result = read_properties(&mut Reader::new(Bytes::copy_from_slice(bytes)), context);
            assert!(matches!(result, Err(DecodeError::Protocol(_))), "{bytes:?}");
        }
    }

    #[test]
    fn two_subscription_identifiers_in_subscribe_are_a_protocol_error() {
        // §3.8.2.1.2; a server PUBLISH may carry several (§3.3.2.3.8).
        assert!(matches!(
            read(&[4, 0x0B, 1, 0x0B, 2], PropertyContext::Subscribe),
            Err(DecodeError::Protocol(_))
        ));
        let p = read(&[4, 0x0B, 1, 0x0B, 2], PropertyContext::Publish).unwrap();
        assert_eq!(p.subscription_identifiers, vec![1, 2]);
    }

    #[test]
    fn authentication_data_without_method_is_a_protocol_error() {
        // §3.1.2.11.10.
        assert!(matches!(
            read(&[4, 0x16, 0, 1, 7], PropertyContext::Connect),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn dropping_optional_properties_leaves_reason_string_and_user_properties_out() {
        let p = Properties {
            reason_string: Some("why".into()),
            user_properties: vec![("k".into(), "v".into())],
            ..Properties::default()
        };
        let source = PropertySource::of(&p);
        assert!(properties_len(&source, PropertyContext::PubResponse, false) > 0);
        assert_eq!(
            properties_len(&source, PropertyContext::PubResponse, true),
            0
        );
    }

    #[test]
    fn properties_not_allowed_in_the_packet_are_not_written() {
        let p = Properties {
            session_expiry_interval: Some(5),
            ..Properties::default()
        };
        assert_eq!(
            properties_len(&PropertySource::of(&p), PropertyContext::Publish, false),
            0
        );
    }
}
