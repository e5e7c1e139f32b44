//! The `OpenVPN` `P_DATA_V2` wire format.
//!
//! Every data packet starts with one big-endian 32-bit word
//! `((P_DATA_V2 << 3 | key_id) << 24) | (peer_id & 0xFFFFFF)`. A packet whose first byte `>> 3` is
//! anything but `P_DATA_V2` (9) is a control packet for user mode.
//!
//! After the header, two AEAD layouts exist:
//! - classic (`OVPN_IOCTL_NEW_KEY`): `[header 4][packet id 4, BE][tag 16][ciphertext]`, AAD = the
//!   first 8 bytes, nonce = packet id (4 bytes BE) || 8-byte nonce tail. Cipher `none` has no tag.
//! - epoch (`OVPN_IOCTL_NEW_KEY_V2`, `OpenVPN` 2.7): `[header 4][packet id 8 BE = epoch(16) << 48 |
//!   counter(48)][ciphertext][tag 16]`, AAD = the first 12 bytes.

use core::fmt;

/// Opcode of `P_DATA_V2`.
pub const P_DATA_V2: u8 = 9;
/// Shift of the opcode in the first byte.
pub const OPCODE_SHIFT: u8 = 3;
/// Mask of the key-id in the first byte.
pub const KEY_ID_MASK: u8 = 0x07;
/// Mask of the 24-bit peer-id.
pub const PEER_ID_MASK: u32 = 0x00FF_FFFF;
/// The "undefined" peer-id `OpenVPN` uses when none was assigned.
pub const PEER_ID_UNDEF: u32 = 0x00FF_FFFF;
/// Length of the `P_DATA_V2` header word.
pub const HEADER_LEN: usize = 4;
/// Length of the AEAD tag.
pub const TAG_LEN: usize = 16;
/// Length of a classic packet id.
pub const CLASSIC_PKTID_LEN: usize = 4;
/// Length of an epoch packet id.
pub const EPOCH_PKTID_LEN: usize = 8;
/// Bytes a classic AEAD packet adds to its plaintext: header, packet id, tag.
pub const CLASSIC_AEAD_OVERHEAD: usize = HEADER_LEN + CLASSIC_PKTID_LEN + TAG_LEN;
/// Bytes a classic `none` packet adds to its plaintext: header, packet id.
pub const CLASSIC_NONE_OVERHEAD: usize = HEADER_LEN + CLASSIC_PKTID_LEN;
/// Bytes an epoch packet adds to its plaintext: header, 64-bit packet id, tag.
pub const EPOCH_OVERHEAD: usize = HEADER_LEN + EPOCH_PKTID_LEN + TAG_LEN;
/// The largest overhead of any layout; size output buffers as plaintext + this.
pub const MAX_OVERHEAD: usize = EPOCH_OVERHEAD;

/// The keepalive ping payload `OpenVPN` sends as an encrypted data packet.
pub const KEEPALIVE_PING: [u8; 16] =
    [0x2a, 0x18, 0x7b, 0xf3, 0x64, 0x1e, 0xb4, 0xcb, 0x07, 0xed, 0x2d, 0x0a, 0x98, 0x1f, 0xc7, 0x48];

/// Byte offsets of the header fields.
pub mod field {
    use core::ops::Range;
    /// Opcode (high 5 bits) and key-id (low 3 bits).
    pub const OP_KEY: usize = 0;
    /// 24-bit big-endian peer-id.
    pub const PEER_ID: Range<usize> = 1..4;
    /// Classic packet id.
    pub const CLASSIC_PKTID: Range<usize> = 4..8;
    /// Classic tag.
    pub const CLASSIC_TAG: Range<usize> = 8..24;
    /// Start of classic AEAD ciphertext.
    pub const CLASSIC_AEAD_PAYLOAD: usize = 24;
    /// Start of classic `none` payload.
    pub const CLASSIC_NONE_PAYLOAD: usize = 8;
    /// Epoch packet id (epoch in the top 16 bits).
    pub const EPOCH_PKTID: Range<usize> = 4..12;
    /// Start of epoch ciphertext (the tag follows it, at the very end).
    pub const EPOCH_PAYLOAD: usize = 12;
}

/// Errors of the wire layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than the layout needs.
    Truncated,
    /// Not a `P_DATA_V2` packet.
    NotData,
    /// A key-id or peer-id out of range.
    BadField,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated packet",
            WireError::NotData => "not a P_DATA_V2 packet",
            WireError::BadField => "field out of range",
        })
    }
}

/// A checked view of a `P_DATA_V2` header over a byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DataHeader<T> {
    /// Wraps `buffer` without checking it. Accessors then return zero for missing bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        DataHeader { buffer }
    }

    /// Wraps `buffer` after [`Self::check`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let h = Self::new_unchecked(buffer);
        h.check()?;
        Ok(h)
    }

    /// Checks the length and the opcode.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.opcode() != P_DATA_V2 {
            return Err(WireError::NotData);
        }
        Ok(())
    }

    fn byte(&self, i: usize) -> u8 {
        self.buffer.as_ref().get(i).copied().unwrap_or(0)
    }

    /// The opcode (high 5 bits of the first byte).
    pub fn opcode(&self) -> u8 {
        self.byte(field::OP_KEY) >> OPCODE_SHIFT
    }

    /// The key-id (low 3 bits of the first byte).
    pub fn key_id(&self) -> u8 {
        self.byte(field::OP_KEY) & KEY_ID_MASK
    }

    /// The 24-bit peer-id.
    pub fn peer_id(&self) -> u32 {
        u32::from_be_bytes([0, self.byte(1), self.byte(2), self.byte(3)])
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DataHeader<T> {
    /// Writes the header word. Does nothing on a buffer shorter than [`HEADER_LEN`].
    pub fn emit(&mut self, key_id: u8, peer_id: u32) {
        if let Some(h) = self.buffer.as_mut().get_mut(..HEADER_LEN) {
            h.copy_from_slice(&header_word(key_id, peer_id));
        }
    }
}

/// The 4 header bytes for `key_id` and `peer_id` (both masked to their field widths).
pub const fn header_word(key_id: u8, peer_id: u32) -> [u8; 4] {
    let w = (((P_DATA_V2 << OPCODE_SHIFT) | (key_id & KEY_ID_MASK)) as u32) << 24 | (peer_id & PEER_ID_MASK);
    w.to_be_bytes()
}

/// What a received datagram is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketKind {
    /// A `P_DATA_V2` packet for the data path.
    Data {
        /// Key-id from the header.
        key_id: u8,
        /// Peer-id from the header.
        peer_id: u32,
    },
    /// Anything else: a control-channel packet (or `P_DATA_V1`) for user mode.
    Control {
        /// The opcode from the first byte.
        opcode: u8,
    },
}

/// Classifies a received packet by its first byte. Empty input is [`WireError::Truncated`]; a
/// data opcode with fewer than 4 bytes is also truncated.
#[inline]
pub fn classify(packet: &[u8]) -> Result<PacketKind, WireError> {
    let first = *packet.first().ok_or(WireError::Truncated)?;
    let opcode = first >> OPCODE_SHIFT;
    if opcode != P_DATA_V2 {
        return Ok(PacketKind::Control { opcode });
    }
    let h = DataHeader::new_checked(packet)?;
    Ok(PacketKind::Data { key_id: h.key_id(), peer_id: h.peer_id() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let w = header_word(5, 0x12_3456);
        assert_eq!(w, [0x4d, 0x12, 0x34, 0x56]);
        let h = DataHeader::new_checked(&w[..]).unwrap();
        assert_eq!((h.opcode(), h.key_id(), h.peer_id()), (9, 5, 0x12_3456));
        let mut buf = [0u8; 8];
        DataHeader::new_unchecked(&mut buf[..]).emit(7, 0xFFFF_FFFF);
        assert_eq!(&buf[..4], &[0x4f, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn classify_packets() {
        assert_eq!(classify(&[]), Err(WireError::Truncated));
        assert_eq!(classify(&[0x48, 0, 0]), Err(WireError::Truncated));
        assert_eq!(classify(&[0x48, 0, 0, 1]), Ok(PacketKind::Data { key_id: 0, peer_id: 1 }));
        // P_CONTROL_V1 (4) with key id 0, and P_DATA_V1 (6).
        assert_eq!(classify(&[0x20]), Ok(PacketKind::Control { opcode: 4 }));
        assert_eq!(classify(&[0x30, 1, 2, 3]), Ok(PacketKind::Control { opcode: 6 }));
        assert_eq!(DataHeader::new_checked(&[0x30u8, 0, 0, 0][..]), Err(WireError::NotData));
        assert_eq!(DataHeader::new_unchecked(&[][..]).peer_id(), 0);
    }
}
