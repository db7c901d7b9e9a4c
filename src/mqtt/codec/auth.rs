//! AUTH (MQTT 5.0 §3.15): extended authentication exchanges.

use super::primitives::{DecodeResult, Reader, Sink};
use super::properties::{
    PropertyContext, PropertySource, properties_len, read_properties, write_properties,
};
use super::{Body, expect_empty, read_reason};
use crate::mqtt::{Auth, Properties, ReasonCode};

/// MQTT 5.0 §3.15.2.1.
const AUTH_REASONS: &[u8] = &[0x00, 0x18, 0x19];

pub(super) fn decode(mut r: Reader) -> DecodeResult<Auth> {
    let mut auth = Auth {
        reason: ReasonCode::Success,
        properties: Properties::default(),
    };
    // §3.15.2.1: Remaining Length 0 means Success without properties.
    if !r.is_empty() {
        auth.reason = read_reason(&mut r, AUTH_REASONS)?;
    }
    if !r.is_empty() {
        auth.properties = read_properties(&mut r, PropertyContext::Auth)?;
    }
    expect_empty(r)?;
    Ok(auth)
}

pub(super) struct AuthBody<'a> {
    pub(super) auth: &'a Auth,
}

impl Body for AuthBody<'_> {
    fn first_byte(&self) -> u8 {
        0xF0
    }

    fn write<S: Sink>(&self, s: &mut S, drop_optional: bool) {
        let a = self.auth;
        let source = PropertySource::of(&a.properties);
        let has_properties = properties_len(&source, PropertyContext::Auth, drop_optional) > 0;
        // §3.15.2.1: Success without properties may be sent with Remaining Length 0.
        if a.reason == ReasonCode::Success && !has_properties {
            return;
        }
        s.write_u8(a.reason.code());
        write_properties(s, &source, PropertyContext::Auth, drop_optional);
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use crate::mqtt::{
        Auth, DecodeError, EncodeError, Packet, Properties, ProtocolVersion, ReasonCode, decode,
        encode,
    };

    #[test]
    fn auth_round_trip_v5() {
        let auth = Auth {
            reason: ReasonCode::ContinueAuthentication,
            properties: Properties {
                authentication_method: Some("SCRAM-SHA-1".into()),
                authentication_data: Some(Bytes::from_static(b"\x01\x02")),
                ..Properties::default()
            },
        };
        let mut out = BytesMut::new();
        encode(
            &Packet::Auth(auth.clone()),
            ProtocolVersion::V5,
            u32::MAX,
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0], 0xF0);
        assert_eq!(out[2], 0x18);
        let back = decode(&mut out, Some(ProtocolVersion::V5), u32::MAX).unwrap();
        assert_eq!(back, Some(Packet::Auth(auth)));
    }

    #[test]
    fn auth_success_without_properties_is_two_bytes() {
        let auth = Packet::Auth(Auth {
            reason: ReasonCode::Success,
            properties: Properties::default(),
        });
        let mut out = BytesMut::new();
        encode(&auth, ProtocolVersion::V5, u32::MAX, &mut out).unwrap();
        assert_eq!(&out[..], &[0xF0, 0]);
        assert_eq!(
            decode(&mut out, Some(ProtocolVersion::V5), u32::MAX).unwrap(),
            Some(auth)
        );
    }

    #[test]
    fn auth_is_not_in_3_1_1() {
        let auth = Packet::Auth(Auth {
            reason: ReasonCode::Success,
            properties: Properties::default(),
        });
        let mut out = BytesMut::new();
        assert_eq!(
            encode(&auth, ProtocolVersion::V3_1_1, u32::MAX, &mut out),
            Err(EncodeError::NotInVersion("AUTH"))
        );
        // Packet type 15 is reserved in 3.1.1 (§2.2.1).
        let mut buf = BytesMut::from(&[0xF0u8, 0][..]);
        assert!(matches!(
            decode(&mut buf, Some(ProtocolVersion::V3_1_1), u32::MAX),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn auth_reason_not_allowed_is_a_protocol_error() {
        let mut buf = BytesMut::from(&[0xF0u8, 2, 0x87, 0][..]);
        assert!(matches!(
            decode(&mut buf, Some(ProtocolVersion::V5), u32::MAX),
            Err(DecodeError::Protocol(_))
        ));
    }
}
