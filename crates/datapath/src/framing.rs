//! Stream-transport framing: each packet preceded by a 2-byte big-endian length (TCP).
//!
//! [`Deframer::deframe`] takes whatever bytes the stream delivered and returns one frame at a
//! time: straight out of the input when the frame is whole in it (no copy), or out of its own
//! buffer when the frame spans deliveries (the one copy a stream transport forces).

use core::fmt;
use core::ops::Range;

/// Length of the prefix.
pub const PREFIX_LEN: usize = 2;
/// Largest frame accepted (`OpenVPN`'s TCP packets are at most 65535 bytes, but the data path
/// never sees one above this).
pub const MAX_FRAME_LEN: usize = 16384;

/// Framing errors. After one, the stream is out of sync and must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// A length prefix above [`MAX_FRAME_LEN`].
    FrameTooLong(u16),
    /// A zero length prefix.
    EmptyFrame,
    /// The packet is longer than a prefix can describe.
    PacketTooLong,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::FrameTooLong(n) => write!(f, "frame of {n} bytes is too long"),
            FramingError::EmptyFrame => f.write_str("empty frame"),
            FramingError::PacketTooLong => f.write_str("packet too long to frame"),
        }
    }
}

/// The prefix for a packet of `len` bytes.
pub fn prefix(len: usize) -> Result<[u8; PREFIX_LEN], FramingError> {
    u16::try_from(len).map(u16::to_be_bytes).map_err(|_| FramingError::PacketTooLong)
}

/// One step of deframing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deframed {
    /// All input consumed, no complete frame yet.
    NeedMore,
    /// A complete frame at this range of the input.
    InInput(Range<usize>),
    /// A complete frame in [`Deframer::buffered`] (valid until the next call).
    Buffered,
}

/// Reassembles length-prefixed frames from a byte stream.
pub struct Deframer {
    prefix: [u8; PREFIX_LEN],
    prefix_have: usize,
    /// Length of the frame being collected, once its prefix is complete.
    want: Option<usize>,
    buf: [u8; MAX_FRAME_LEN],
    have: usize,
    /// Whether `buf` holds a complete frame handed out by the last call.
    ready: bool,
}

impl fmt::Debug for Deframer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deframer").field("want", &self.want).field("have", &self.have).finish_non_exhaustive()
    }
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new()
    }
}

impl Deframer {
    /// An empty deframer.
    pub const fn new() -> Self {
        Deframer {
            prefix: [0; PREFIX_LEN],
            prefix_have: 0,
            want: None,
            buf: [0; MAX_FRAME_LEN],
            have: 0,
            ready: false,
        }
    }

    /// The frame of the last [`Deframed::Buffered`] result.
    pub fn buffered(&self) -> &[u8] {
        if self.ready {
            self.buf.get(..self.have).unwrap_or(&[])
        } else {
            &[]
        }
    }

    /// Consumes bytes from `input` up to the end of the next frame. Returns how many bytes were
    /// consumed and what came of them; call again with the rest of the input.
    pub fn deframe(&mut self, input: &[u8]) -> Result<(usize, Deframed), FramingError> {
        if self.ready {
            self.ready = false;
            self.have = 0;
        }
        let mut pos = 0usize;
        // Length prefix, possibly split across deliveries.
        let want = if let Some(w) = self.want {
            w
        } else {
            while self.prefix_have < PREFIX_LEN {
                let Some(&b) = input.get(pos) else { return Ok((pos, Deframed::NeedMore)) };
                self.prefix[self.prefix_have] = b;
                self.prefix_have += 1;
                pos += 1;
            }
            self.prefix_have = 0;
            let n = u16::from_be_bytes(self.prefix);
            if n == 0 {
                return Err(FramingError::EmptyFrame);
            }
            let n = usize::from(n);
            if n > MAX_FRAME_LEN {
                return Err(FramingError::FrameTooLong(u16::try_from(n).unwrap_or(u16::MAX)));
            }
            self.want = Some(n);
            n
        };
        let rest = input.get(pos..).unwrap_or(&[]);
        if self.have == 0 && rest.len() >= want {
            // Whole frame in the input: hand it out in place.
            self.want = None;
            return Ok((pos + want, Deframed::InInput(pos..pos + want)));
        }
        let take = rest.len().min(want - self.have);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.have..self.have + take), rest.get(..take)) {
            dst.copy_from_slice(src);
        }
        self.have += take;
        pos += take;
        if self.have == want {
            self.want = None;
            self.ready = true;
            return Ok((pos, Deframed::Buffered));
        }
        Ok((pos, Deframed::NeedMore))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn frames_of(d: &mut Deframer, mut input: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), FramingError> {
        while !input.is_empty() {
            let (used, r) = d.deframe(input)?;
            match r {
                Deframed::NeedMore => {}
                Deframed::InInput(range) => out.push(input[range].to_vec()),
                Deframed::Buffered => out.push(d.buffered().to_vec()),
            }
            input = &input[used..];
        }
        Ok(())
    }

    #[test]
    fn every_split() {
        let packets: [&[u8]; 3] = [b"abc", &[7u8; 300], b"z"];
        let mut stream = Vec::new();
        for p in packets {
            stream.extend_from_slice(&prefix(p.len()).unwrap());
            stream.extend_from_slice(p);
        }
        for chunk in 1..=stream.len() {
            let mut d = Deframer::new();
            let mut out = Vec::new();
            for c in stream.chunks(chunk) {
                frames_of(&mut d, c, &mut out).unwrap();
            }
            assert_eq!(out.len(), 3, "chunk {chunk}");
            for (a, b) in out.iter().zip(packets) {
                assert_eq!(a.as_slice(), b);
            }
        }
    }

    #[test]
    fn errors() {
        let mut d = Deframer::new();
        assert_eq!(d.deframe(&[0, 0]), Err(FramingError::EmptyFrame));
        let mut d = Deframer::new();
        assert_eq!(d.deframe(&[0xff, 0xff]), Err(FramingError::FrameTooLong(0xffff)));
        assert_eq!(prefix(70_000), Err(FramingError::PacketTooLong));
        assert_eq!(Deframer::new().deframe(&[]), Ok((0, Deframed::NeedMore)));
    }
}
