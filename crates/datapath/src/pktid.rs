//! Transmit packet ids.
//!
//! Classic keys carry a 32-bit packet id starting at 1. The sender never wraps: from
//! [`CLASSIC_REKEY_AT`] on (`OpenVPN`'s `PACKET_ID_WRAP_TRIGGER`, 0xFF000000) every seal reports
//! "rekey needed", and after id 0xFFFFFFFF the key refuses to send ([`PktIdError::Exhausted`]).
//!
//! Epoch keys carry a 48-bit counter under a 16-bit epoch; the epoch key state (see
//! [`crate::keys`]) moves to the next epoch before the counter or the AEAD usage limit runs out.

use core::fmt;

/// Classic ids at or above this raise "rekey needed" (`OpenVPN`'s `PACKET_ID_WRAP_TRIGGER`).
pub const CLASSIC_REKEY_AT: u32 = 0xFF00_0000;
/// Largest 48-bit epoch counter (`OpenVPN`'s `PACKET_ID_EPOCH_MAX`).
pub const EPOCH_COUNTER_MAX: u64 = 0x0000_FFFF_FFFF_FFFF;

/// Packet-id errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PktIdError {
    /// The id space of this key is used up; only a new key helps.
    Exhausted,
}

impl fmt::Display for PktIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("packet id space exhausted")
    }
}

/// The transmit counter of a classic key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxPacketId {
    /// The id the next packet gets; 0 means exhausted (the counter went past `u32::MAX`).
    next: u32,
    rekey_at: u32,
}

impl Default for TxPacketId {
    fn default() -> Self {
        Self::new(CLASSIC_REKEY_AT)
    }
}

impl TxPacketId {
    /// A counter that starts at 1 and asks for a rekey from `rekey_at` on.
    pub const fn new(rekey_at: u32) -> Self {
        TxPacketId { next: 1, rekey_at }
    }

    /// A counter that starts at `next` (tests and tools).
    pub const fn starting_at(next: u32, rekey_at: u32) -> Self {
        TxPacketId { next, rekey_at }
    }

    /// Takes the next id. The flag is true when the key should be replaced now.
    pub fn take_next(&mut self) -> Result<(u32, bool), PktIdError> {
        let id = self.next;
        if id == 0 {
            return Err(PktIdError::Exhausted);
        }
        self.next = id.wrapping_add(1);
        Ok((id, id >= self.rekey_at))
    }

    /// The id the next packet would get (0 once exhausted).
    pub const fn peek(&self) -> u32 {
        self.next
    }

    /// Whether the key wants replacing (no id sent yet counts as fresh).
    pub const fn rekey_needed(&self) -> bool {
        self.next == 0 || self.next > self.rekey_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_one() {
        let mut p = TxPacketId::default();
        assert_eq!(p.take_next(), Ok((1, false)));
        assert_eq!(p.take_next(), Ok((2, false)));
    }

    #[test]
    fn exhaustion() {
        let mut p = TxPacketId::starting_at(CLASSIC_REKEY_AT - 1, CLASSIC_REKEY_AT);
        assert_eq!(p.take_next(), Ok((CLASSIC_REKEY_AT - 1, false)));
        assert_eq!(p.take_next(), Ok((CLASSIC_REKEY_AT, true)));
        let mut p = TxPacketId::starting_at(u32::MAX - 1, CLASSIC_REKEY_AT);
        assert_eq!(p.take_next(), Ok((u32::MAX - 1, true)));
        assert_eq!(p.take_next(), Ok((u32::MAX, true)));
        assert_eq!(p.take_next(), Err(PktIdError::Exhausted));
        assert_eq!(p.take_next(), Err(PktIdError::Exhausted));
        assert!(p.rekey_needed());
    }
}
