//! TCP MSS clamping on SYN and SYN-ACK segments, IPv4 and IPv6, with checksum fix-up.
//!
//! On send the clamp is computed from the plaintext segments without writing them: the result is
//! a pair of [`Patch`]es (the MSS option value and the TCP checksum) that the seal pass applies
//! to the ciphertext stream. On receive [`clamp_in_place`] edits the decrypted packet.
//!
//! Behaviour follows ovpn-dco-win's `mss.cpp`: IPv4 only when the datagram is whole (total
//! length equals the buffer) and not a non-first fragment; IPv6 only when the next header is TCP
//! directly and the payload length matches; IPv6 clamps to `mss - 20`; only a 4-byte MSS option
//! larger than the limit is changed.

use crate::crypto::{Patch, MAX_PATCHES};
use arrayvec::ArrayVec;

/// Longest IP + TCP header prefix examined (60-byte IPv4 header + 60-byte TCP header).
pub const MAX_HEADER_PREFIX: usize = 120;

mod field {
    pub const V4_IHL: usize = 0;
    pub const V4_TOTAL_LEN: usize = 2;
    pub const V4_FRAG: usize = 6;
    pub const V4_PROTO: usize = 9;
    pub const V6_PAYLOAD_LEN: usize = 4;
    pub const V6_NEXT: usize = 6;
    pub const V6_HEADER_LEN: usize = 40;
    pub const TCP_DATA_OFF: usize = 12;
    pub const TCP_FLAGS: usize = 13;
    pub const TCP_CHECKSUM: usize = 16;
    pub const TCP_MIN_LEN: usize = 20;
}

const IPPROTO_TCP: u8 = 6;
const TH_SYN: u8 = 0x02;
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;

/// A planned MSS edit: where the two MSS bytes and the checksum are, old and new values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MssEdit {
    /// Offset of the MSS value (2 bytes, BE) from the start of the IP packet.
    pub mss_at: usize,
    /// Old MSS.
    pub old_mss: u16,
    /// New MSS.
    pub new_mss: u16,
    /// Offset of the TCP checksum.
    pub csum_at: usize,
    /// Old checksum.
    pub old_csum: u16,
    /// New checksum.
    pub new_csum: u16,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Incremental checksum update (RFC 1624, eqn. 3): `HC' = ~(~HC + ~m + m')`.
pub fn checksum_adjust(old_csum: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!old_csum) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    !(u16::try_from(sum).unwrap_or(0xFFFF))
}

/// Plans the clamp for the IP packet whose first bytes are `head` and whose full length is
/// `total_len`. `head` needs the IP and TCP headers (up to [`MAX_HEADER_PREFIX`] bytes).
pub fn plan(head: &[u8], total_len: usize, mss: u16) -> Option<MssEdit> {
    if mss == 0 {
        return None;
    }
    let version = head.first()? >> 4;
    let (tcp_at, limit) = match version {
        4 => {
            let ihl = usize::from(head.get(field::V4_IHL)? & 0x0F) * 4;
            if ihl < 20 || *head.get(field::V4_PROTO)? != IPPROTO_TCP {
                return None;
            }
            if usize::from(be16(head, field::V4_TOTAL_LEN)?) != total_len {
                return None;
            }
            if be16(head, field::V4_FRAG)? & 0x1FFF != 0 {
                return None;
            }
            (ihl, mss)
        }
        6 => {
            if *head.get(field::V6_NEXT)? != IPPROTO_TCP {
                return None;
            }
            if usize::from(be16(head, field::V6_PAYLOAD_LEN)?) + field::V6_HEADER_LEN != total_len {
                return None;
            }
            (field::V6_HEADER_LEN, mss.saturating_sub(20))
        }
        _ => return None,
    };
    let tcp_len = total_len.checked_sub(tcp_at)?;
    if tcp_len < field::TCP_MIN_LEN {
        return None;
    }
    let tcp = head.get(tcp_at..)?;
    if tcp.get(field::TCP_FLAGS)? & TH_SYN == 0 {
        return None;
    }
    let hlen = usize::from(tcp.get(field::TCP_DATA_OFF)? >> 4) * 4;
    if hlen <= field::TCP_MIN_LEN || hlen > tcp_len {
        return None;
    }
    let opts = tcp.get(field::TCP_MIN_LEN..hlen)?;
    let mut i = 0usize;
    while i + 1 < opts.len() {
        match opts[i] {
            OPT_EOL => break,
            OPT_NOP => i += 1,
            kind => {
                let olen = usize::from(*opts.get(i + 1)?);
                if olen < 2 || i + olen > opts.len() {
                    break;
                }
                if kind == OPT_MSS && olen == 4 {
                    let old = be16(opts, i + 2)?;
                    if old > limit {
                        let csum_at = tcp_at + field::TCP_CHECKSUM;
                        let old_csum = be16(head, csum_at)?;
                        return Some(MssEdit {
                            mss_at: tcp_at + field::TCP_MIN_LEN + i + 2,
                            old_mss: old,
                            new_mss: limit,
                            csum_at,
                            old_csum,
                            new_csum: checksum_adjust(old_csum, old, limit),
                        });
                    }
                    return None;
                }
                i += olen;
            }
        }
    }
    None
}

/// Whether [`patches`] could find anything to clamp in a packet whose first segment is `first`:
/// a cheap test run before any header parsing, so that the seal path can skip the patch
/// machinery for every packet that is certainly not a TCP SYN. `false` only when the clamp is
/// off or the bytes present in `first` already rule it out (IP version, protocol / next header,
/// the SYN flag of an IPv4 header of its stated length or of a plain IPv6 header); `true`
/// whenever `first` is too short to tell (headers split over segments).
#[inline]
pub fn may_clamp(first: &[u8], mss: u16) -> bool {
    if mss == 0 {
        return false;
    }
    let Some(&b0) = first.first() else { return true };
    let flags_at = match b0 >> 4 {
        4 => {
            match first.get(field::V4_PROTO) {
                Some(&p) if p != IPPROTO_TCP => return false,
                Some(_) => {}
                None => return true,
            }
            usize::from(b0 & 0x0F) * 4 + field::TCP_FLAGS
        }
        6 => {
            match first.get(field::V6_NEXT) {
                Some(&n) if n != IPPROTO_TCP => return false,
                Some(_) => {}
                None => return true,
            }
            field::V6_HEADER_LEN + field::TCP_FLAGS
        }
        _ => return false,
    };
    first.get(flags_at).is_none_or(|f| f & TH_SYN != 0)
}

/// Plans the clamp for a packet given as segments and returns it as seal patches (XOR masks).
/// Reads at most [`MAX_HEADER_PREFIX`] header bytes; never writes the segments.
#[inline]
pub fn patches(segments: &[&[u8]], mss: u16) -> ArrayVec<Patch, MAX_PATCHES> {
    // Clamp off (the common case): no call, no work.
    if mss == 0 {
        return ArrayVec::new();
    }
    patches_for(segments, mss)
}

fn patches_for(segments: &[&[u8]], mss: u16) -> ArrayVec<Patch, MAX_PATCHES> {
    let mut out = ArrayVec::new();
    let total: usize = segments.iter().map(|s| s.len()).sum();
    // The headers usually sit in the first segment; gather them only when they do not.
    let mut buf = [0u8; MAX_HEADER_PREFIX];
    let want = total.min(MAX_HEADER_PREFIX);
    let head: &[u8] = match segments.first() {
        Some(first) if first.len() >= want => first,
        _ => {
            let mut n = 0;
            for s in segments {
                let take = s.len().min(want - n);
                buf[n..n + take].copy_from_slice(&s[..take]);
                n += take;
                if n == want {
                    break;
                }
            }
            &buf[..n]
        }
    };
    if let Some(e) = plan(head, total, mss) {
        let x = |a: u16, b: u16| (a ^ b).to_be_bytes();
        out.push(Patch { offset: e.mss_at, xor: x(e.old_mss, e.new_mss) });
        out.push(Patch { offset: e.csum_at, xor: x(e.old_csum, e.new_csum) });
    }
    out
}

/// Clamps the MSS of a whole IP packet in place. Returns whether it changed anything.
pub fn clamp_in_place(packet: &mut [u8], mss: u16) -> bool {
    let Some(e) = plan(packet, packet.len(), mss) else { return false };
    for (at, v) in [(e.mss_at, e.new_mss), (e.csum_at, e.new_csum)] {
        match packet.get_mut(at..at + 2) {
            Some(s) => s.copy_from_slice(&v.to_be_bytes()),
            None => return false,
        }
    }
    true
}

/// The full internet checksum of a TCP segment with its pseudo-header (tests and tools).
pub fn tcp_checksum(packet: &[u8]) -> Option<u16> {
    let version = packet.first()? >> 4;
    let mut sum: u64 = 0;
    let add = |sum: &mut u64, b: &[u8]| {
        for c in b.chunks(2) {
            let hi = u64::from(c[0]) << 8;
            let lo = u64::from(c.get(1).copied().unwrap_or(0));
            *sum += hi | lo;
        }
    };
    let tcp = match version {
        4 => {
            let ihl = usize::from(packet.first()? & 0x0F) * 4;
            add(&mut sum, packet.get(12..20)?);
            let tcp = packet.get(ihl..)?;
            sum += u64::from(IPPROTO_TCP) + tcp.len() as u64;
            tcp
        }
        6 => {
            add(&mut sum, packet.get(8..40)?);
            let tcp = packet.get(40..)?;
            sum += u64::from(IPPROTO_TCP) + tcp.len() as u64;
            tcp
        }
        _ => return None,
    };
    add(&mut sum, tcp);
    // Remove the checksum field itself.
    sum -= u64::from(be16(tcp, field::TCP_CHECKSUM)?);
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    Some(!(u16::try_from(sum).unwrap_or(0xFFFF)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A TCP SYN with an MSS option, in IPv4 or IPv6, with a correct checksum.
    pub(crate) fn syn(v6: bool, mss: u16, payload: &[u8]) -> Vec<u8> {
        let mut tcp = alloc::vec![0u8; 24];
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 6 << 4; // 24-byte header
        tcp[13] = TH_SYN;
        tcp[20] = OPT_MSS;
        tcp[21] = 4;
        tcp[22..24].copy_from_slice(&mss.to_be_bytes());
        tcp.extend_from_slice(payload);
        let mut p = if v6 {
            let mut h = alloc::vec![0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&u16::try_from(tcp.len()).unwrap().to_be_bytes());
            h[6] = IPPROTO_TCP;
            h[7] = 64;
            h[8..24].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            h[24..40].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            h
        } else {
            let mut h = alloc::vec![0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&u16::try_from(20 + tcp.len()).unwrap().to_be_bytes());
            h[8] = 64;
            h[9] = IPPROTO_TCP;
            h[12..16].copy_from_slice(&[10, 8, 0, 2]);
            h[16..20].copy_from_slice(&[10, 8, 0, 1]);
            h
        };
        p.extend_from_slice(&tcp);
        let off = if v6 { 40 } else { 20 };
        let c = tcp_checksum(&p).unwrap();
        p[off + 16..off + 18].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn mss_of(p: &[u8]) -> u16 {
        let off = if p[0] >> 4 == 6 { 40 } else { 20 };
        u16::from_be_bytes([p[off + 22], p[off + 23]])
    }

    fn csum_of(p: &[u8]) -> u16 {
        let off = if p[0] >> 4 == 6 { 40 } else { 20 };
        u16::from_be_bytes([p[off + 16], p[off + 17]])
    }

    #[test]
    fn clamp_v4_and_v6_in_place() {
        for v6 in [false, true] {
            for payload in [&b""[..], b"x", b"hello world"] {
                let mut p = syn(v6, 1460, payload);
                assert!(clamp_in_place(&mut p, 1300));
                assert_eq!(mss_of(&p), if v6 { 1280 } else { 1300 });
                assert_eq!(tcp_checksum(&p), Some(csum_of(&p)), "checksum after clamp, v6={v6}");
                // Already small enough: untouched.
                let mut q = syn(v6, 1200, payload);
                let before = q.clone();
                assert!(!clamp_in_place(&mut q, 1300));
                assert_eq!(q, before);
            }
        }
    }

    #[test]
    fn patches_match_in_place() {
        for v6 in [false, true] {
            let p = syn(v6, 1460, b"abc");
            let mut expected = p.clone();
            assert!(clamp_in_place(&mut expected, 1400));
            // Split the headers over several segments, including mid-option.
            for cut in [1usize, 10, 21, 41, 43, 45, p.len() - 1] {
                let segs = [&p[..cut], &p[cut..]];
                let ps = patches(&segs, 1400);
                assert_eq!(ps.len(), 2);
                let mut got = p.clone();
                for pa in &ps {
                    got[pa.offset] ^= pa.xor[0];
                    got[pa.offset + 1] ^= pa.xor[1];
                }
                assert_eq!(got, expected, "cut {cut}");
            }
        }
    }

    /// `may_clamp` never says no where `patches` would clamp: SYNs in IPv4/IPv6 cut at every
    /// offset, with every byte of the headers flipped in turn, and garbage.
    #[test]
    fn may_clamp_is_conservative() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for v6 in [false, true] {
            let p = syn(v6, 1460, b"abc");
            for i in 0..p.len().min(64) {
                for bit in 0..8 {
                    let mut q = p.clone();
                    q[i] ^= 1 << bit;
                    cases.push(q);
                }
            }
            cases.push(p);
        }
        for len in 0..70 {
            cases.push(alloc::vec![0x45u8; len]);
            cases.push((0..len).map(|i| (i * 37) as u8).collect());
        }
        let mut skipped = 0;
        for p in &cases {
            for cut in 0..=p.len() {
                let segs = [&p[..cut], &p[cut..]];
                for mss in [0u16, 536, 1000, 1300] {
                    let clamps = !patches(&segs, mss).is_empty();
                    let may = may_clamp(segs[0], mss);
                    assert!(may || !clamps, "may_clamp said no to a clamp: cut {cut} mss {mss} {p:02x?}");
                    skipped += usize::from(!may);
                }
            }
        }
        // And it does rule out the common case: a non-SYN packet with whole headers.
        let mut ack = syn(false, 1460, b"");
        ack[33] = 0x10;
        assert!(!may_clamp(&ack, 1300));
        let mut ack6 = syn(true, 1460, b"");
        ack6[53] = 0x10;
        assert!(!may_clamp(&ack6, 1300));
        let mut udp = syn(false, 1460, b"");
        udp[9] = 17;
        assert!(!may_clamp(&udp, 1300));
        assert!(may_clamp(&syn(false, 1460, b""), 1300) && may_clamp(&syn(true, 1460, b""), 1300));
        assert!(skipped > 0);
    }

    #[test]
    fn ignores_non_syn_and_garbage() {
        let mut p = syn(false, 1460, b"");
        p[33] = 0x10; // ACK only
        assert!(!clamp_in_place(&mut p, 1300));
        assert!(patches(&[&p], 1300).is_empty());
        for len in 0..80 {
            let mut g = alloc::vec![0x45u8; len];
            let _ = clamp_in_place(&mut g, 1000);
            let mut g = alloc::vec![0x60u8; len];
            let _ = clamp_in_place(&mut g, 1000);
        }
        // Option length running past the header.
        let mut p = syn(true, 1460, b"");
        p[40 + 21] = 40;
        assert!(!clamp_in_place(&mut p, 1000));
        assert_eq!(checksum_adjust(0x1234, 0x0500, 0x0500), 0x1234);
    }
}
