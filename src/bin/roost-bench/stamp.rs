//! The benchmark's payload header: who sent a message, its sequence number and when.
//!
//! Layout (little endian), followed by filler up to the payload size:
//! `run id: u32 | publisher: u32 | sequence: u64 | sent at: u64 nanoseconds since the run's base`.

/// Bytes the stamp needs; payloads must be at least this large.
pub const STAMP_LEN: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub run_id: u32,
    pub publisher: u32,
    pub sequence: u64,
    pub sent_at_nanos: u64,
}

impl Stamp {
    /// Writes the stamp into the first [`STAMP_LEN`] bytes of `payload`.
    pub fn write(&self, payload: &mut [u8]) {
        payload[0..4].copy_from_slice(&self.run_id.to_le_bytes());
        payload[4..8].copy_from_slice(&self.publisher.to_le_bytes());
        payload[8..16].copy_from_slice(&self.sequence.to_le_bytes());
        payload[16..24].copy_from_slice(&self.sent_at_nanos.to_le_bytes());
    }

    /// Reads a stamp; `None` when the payload is too short to carry one.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let header = payload.get(..STAMP_LEN)?;
        let u32_at = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let u64_at = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        Some(Stamp {
            run_id: u32_at(0),
            publisher: u32_at(4),
            sequence: u64_at(8),
            sent_at_nanos: u64_at(16),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_as_written() {
        let stamp = Stamp {
            run_id: 0xDEAD_BEEF,
            publisher: 7,
            sequence: 1 << 40,
            sent_at_nanos: 123_456_789,
        };
        let mut payload = vec![0xAA; 64];
        stamp.write(&mut payload);
        assert_eq!(Stamp::read(&payload), Some(stamp));
        assert_eq!(payload[STAMP_LEN..], [0xAA; 64 - STAMP_LEN]);
    }

    #[test]
    fn a_short_payload_has_no_stamp() {
        assert_eq!(Stamp::read(&[0; STAMP_LEN - 1]), None);
    }
}
