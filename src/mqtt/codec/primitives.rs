//! The data representations of MQTT 3.1.1 §1.5 / MQTT 5.0 §1.5: integers, variable byte
//! integers, UTF-8 strings and binary data, read from a [`Reader`] and written to a [`Sink`].

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::DecodeError;
use crate::mqtt::MAX_REMAINING_LENGTH;

pub(super) type DecodeResult<T> = Result<T, DecodeError>;

/// Reads the fields of one packet's body. The body is a `Bytes` view of the input, so
/// binary fields (payload, correlation data, passwords) are zero-copy slices of it.
pub(super) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(super) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn need(&self, n: usize) -> DecodeResult<()> {
        if self.buf.len() < n {
            // A field runs past the end of the packet (MQTT 5.0 §1.5 / §4.13: malformed).
            Err(DecodeError::Malformed("packet too short for its fields"))
        } else {
            Ok(())
        }
    }

    pub(super) fn u8(&mut self) -> DecodeResult<u8> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    /// Two Byte Integer, big-endian (MQTT 5.0 §1.5.2).
    pub(super) fn u16(&mut self) -> DecodeResult<u16> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    /// Four Byte Integer, big-endian (MQTT 5.0 §1.5.3).
    pub(super) fn u32(&mut self) -> DecodeResult<u32> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    /// Variable Byte Integer (MQTT 5.0 §1.5.5): at most four bytes.
    pub(super) fn varint(&mut self) -> DecodeResult<u32> {
        match parse_varint(&self.buf)? {
            Some((value, used)) => {
                self.buf.advance(used);
                Ok(value)
            }
            None => Err(DecodeError::Malformed(
                "variable byte integer runs past the packet",
            )),
        }
    }

    /// The next `n` bytes as a zero-copy slice.
    pub(super) fn take(&mut self, n: usize) -> DecodeResult<Bytes> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// Everything left in the packet.
    pub(super) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Binary Data: a Two Byte Integer length and that many bytes (MQTT 5.0 §1.5.6).
    pub(super) fn binary(&mut self) -> DecodeResult<Bytes> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    /// Reads a UTF-8 Encoded String (MQTT 5.0 §1.5.4, MQTT 3.1.1 §1.5.3), validates it once
    /// and hands it to `convert` for the one allocation the caller wants.
    fn with_str<T>(&mut self, convert: impl FnOnce(&str) -> T) -> DecodeResult<T> {
        let len = self.u16()? as usize;
        self.need(len)?;
        let value = validate_utf8(&self.buf[..len]).map(convert)?;
        self.buf.advance(len);
        Ok(value)
    }

    pub(super) fn string(&mut self) -> DecodeResult<String> {
        self.with_str(|text| String::from(text))
    }

    /// A string in one shared allocation (topic names).
    pub(super) fn arc_str(&mut self) -> DecodeResult<Arc<str>> {
        self.with_str(|text| Arc::from(text))
    }
}

/// Checks the rules on UTF-8 Encoded Strings. U+FEFF is an ordinary character and is kept
/// (MQTT-1.5.4-3 / MQTT-1.5.3-3).
fn validate_utf8(raw: &[u8]) -> DecodeResult<&str> {
    // Ill-formed UTF-8, including encoded surrogates U+D800..U+DFFF, is malformed
    // (MQTT-1.5.3-1 in 3.1.1, MQTT-1.5.4-1 in 5.0). `from_utf8` rejects exactly these.
    let text = std::str::from_utf8(raw)
        .map_err(|_| DecodeError::Malformed("string is not valid UTF-8"))?;
    // U+0000 must not appear (MQTT-1.5.3-2 in 3.1.1, MQTT-1.5.4-2 in 5.0).
    if raw.contains(&0) {
        return Err(DecodeError::Malformed("string contains U+0000"));
    }
    Ok(text)
}

/// Parses a Variable Byte Integer from the front of `buf`.
/// `Ok(None)`: more bytes are needed. More than four bytes is malformed (MQTT 5.0 §1.5.5,
/// MQTT 3.1.1 §2.2.3). Non-minimal encodings (e.g. 0x80 0x00) are accepted: the
/// specification only bounds the length.
pub(super) fn parse_varint(buf: &[u8]) -> DecodeResult<Option<(u32, usize)>> {
    let mut value: u32 = 0;
    for (index, byte) in buf.iter().enumerate() {
        if index == 4 {
            return Err(DecodeError::Malformed(
                "variable byte integer longer than four bytes",
            ));
        }
        value |= u32::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some((value, index + 1)));
        }
    }
    if buf.len() >= 4 {
        return Err(DecodeError::Malformed(
            "variable byte integer longer than four bytes",
        ));
    }
    Ok(None)
}

/// The number of bytes the Variable Byte Integer encoding of `value` takes.
pub(super) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Where encoders write: either the output buffer or a [`Counter`] that only measures, so the
/// length of a packet is computed by the same code that writes it.
pub(super) trait Sink {
    fn write_u8(&mut self, value: u8);
    fn write_slice(&mut self, bytes: &[u8]);

    fn write_u16(&mut self, value: u16) {
        self.write_slice(&value.to_be_bytes());
    }

    fn write_u32(&mut self, value: u32) {
        self.write_slice(&value.to_be_bytes());
    }

    /// Variable Byte Integer. Callers keep values within [`MAX_REMAINING_LENGTH`]; larger
    /// values are clamped so the encoding never exceeds four bytes.
    fn write_varint(&mut self, value: usize) {
        let mut value = value.min(MAX_REMAINING_LENGTH);
        loop {
            let mut byte = (value & 0x7F) as u8;
            value >>= 7;
            if value > 0 {
                byte |= 0x80;
            }
            self.write_u8(byte);
            if value == 0 {
                break;
            }
        }
    }

    /// Binary Data; at most 65,535 bytes fit the length prefix, longer input is truncated.
    fn write_binary(&mut self, bytes: &[u8]) {
        let len = bytes.len().min(usize::from(u16::MAX));
        self.write_u16(len as u16);
        self.write_slice(&bytes[..len]);
    }

    /// UTF-8 Encoded String; longer than 65,535 bytes is truncated on a character boundary.
    fn write_str(&mut self, text: &str) {
        let mut len = text.len().min(usize::from(u16::MAX));
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        self.write_u16(len as u16);
        self.write_slice(&text.as_bytes()[..len]);
    }
}

impl Sink for BytesMut {
    fn write_u8(&mut self, value: u8) {
        self.put_u8(value);
    }

    fn write_slice(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }
}

/// A [`Sink`] that counts bytes instead of writing them.
#[derive(Default)]
pub(super) struct Counter(pub(super) usize);

impl Sink for Counter {
    fn write_u8(&mut self, _value: u8) {
        self.0 += 1;
    }

    fn write_slice(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// How many bytes `write` writes.
pub(super) fn measure<F: FnOnce(&mut Counter)>(write: F) -> usize {
    let mut counter = Counter::default();
    write(&mut counter);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_examples_from_the_table() {
        // MQTT 5.0 §1.5.5, table 1-1 boundaries.
        for (value, bytes) in [
            (0usize, vec![0x00]),
            (127, vec![0x7F]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xFF, 0x7F]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (2_097_151, vec![0xFF, 0xFF, 0x7F]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
            (268_435_455, vec![0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            let mut out = BytesMut::new();
            out.write_varint(value);
            assert_eq!(&out[..], &bytes[..], "{value}");
            assert_eq!(varint_len(value), bytes.len());
            assert_eq!(
                parse_varint(&bytes).unwrap(),
                Some((value as u32, bytes.len()))
            );
        }
    }

    #[test]
    fn varint_of_five_bytes_is_malformed() {
        // MQTT 5.0 §1.5.5 / MQTT 3.1.1 §2.2.3: at most four bytes.
        assert!(matches!(
            parse_varint(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            parse_varint(&[0xFF, 0xFF, 0xFF, 0xFF]),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(parse_varint(&[0x80, 0x80]).unwrap(), None);
    }

    #[test]
    fn non_minimal_varint_is_accepted() {
        assert_eq!(parse_varint(&[0x80, 0x00]).unwrap(), Some((0, 2)));
    }

    #[test]
    fn strings_reject_bad_utf8_and_nul_but_keep_bom() {
        // MQTT-1.5.3-1: ill-formed UTF-8 (here an encoded surrogate U+D800).
        let mut r = Reader::new(Bytes::from_static(&[0, 3, 0xED, 0xA0, 0x80]));
        assert!(matches!(r.string(), Err(DecodeError::Malformed(_))));
        // MQTT-1.5.3-2: U+0000.
        let mut r = Reader::new(Bytes::from_static(&[0, 3, b'a', 0, b'b']));
        assert!(matches!(r.string(), Err(DecodeError::Malformed(_))));
        // MQTT-1.5.3-3: U+FEFF is kept, not stripped.
        let mut r = Reader::new(Bytes::from_static(&[0, 4, 0xEF, 0xBB, 0xBF, b'a']));
        assert_eq!(r.string().unwrap(), "\u{FEFF}a");
    }

    #[test]
    fn string_longer_than_packet_is_malformed() {
        let mut r = Reader::new(Bytes::from_static(&[0, 5, b'a']));
        assert!(matches!(r.string(), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn counter_measures_what_is_written() {
        let mut out = BytesMut::new();
        out.write_str("héllo");
        out.write_binary(&[1, 2, 3]);
        out.write_varint(300);
        let counted = measure(|c| {
            c.write_str("héllo");
            c.write_binary(&[1, 2, 3]);
            c.write_varint(300);
        });
        assert_eq!(counted, out.len());
    }
}
