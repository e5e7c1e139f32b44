//! Send classification: which Ethernet frames leave through the tunnel.
//!
//! A frame is *diverted* when its inner (IP) destination falls inside one of the policy prefixes
//! (`control::CONFIG.policy`) or a peer's route (`SET_PEER_ROUTES`, the engine's longest-prefix table),
//! and a peer exists. The peer that carries it is the one whose route is the longest prefix holding the
//! destination (with no route and a single peer, that peer); the send is *ready* when the tunnel socket
//! is up and that peer has a primary key, else it takes the hold policy's not-ready trigger. It is
//! never diverted when
//! * it is not IPv4/IPv6 (ARP, LLDP, test frames...), or its headers are truncated;
//! * its destination is the address of a peer's own outer endpoint (the tunnel must not carry itself);
//! * it is UDP from the tunnel's own WSK socket (`transport`'s local port): the tunnel's ciphertext.
//!
//! The L2 header may be split across MDLs and carry up to [`MAX_VLAN_TAGS`] 802.1Q/802.1ad tags; the
//! classifier copies at most [`HEAD_BYTES`] header bytes out of the NB's MDL chain onto the stack (headers
//! only, never the payload) and parses them there.
//!
//! IRQL: everything here runs at IRQL <= DISPATCH_LEVEL and takes no lock; [`decide`] reads the
//! configuration the caller holds `CONFIG`'s lock for (once per batch of a send chain).
use arrayvec::ArrayVec;
use datapath::peer::{InnerDest, IpPrefix};
use datapath::Endpoint;
use kernel::ffi::mdl::{MdlMappingNoExecute, MmGetSystemAddressForMdlSafe, NormalPagePriority, MDL};
use kernel::ffi::nbl::{
    NET_BUFFER, NET_BUFFER_CURRENT_MDL, NET_BUFFER_CURRENT_MDL_OFFSET, NET_BUFFER_DATA_LENGTH,
};

use crate::control::Config;

/// Ethernet header without tags.
pub(crate) const ETH_HEADER: usize = 14;
/// 802.1Q / 802.1ad tags the classifier looks through.
pub(crate) const MAX_VLAN_TAGS: usize = 2;
/// Header bytes copied for classification: Ethernet, two tags, the largest IPv4 header (60) or the
/// IPv6 header (40), and the UDP ports.
pub(crate) const HEAD_BYTES: usize = ETH_HEADER + 4 * MAX_VLAN_TAGS + 60 + 4;
/// Peers the configuration keeps outer endpoints for (the classifier never diverts traffic to them);
/// `ADD_PEER` refuses more.
pub(crate) const MAX_SNAPSHOT_PEERS: usize = 8;
/// Most MDL segments a NET_BUFFER may span for the zero-copy seal.
pub(crate) const MAX_SEGMENTS: usize = 16;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;
const IPPROTO_UDP: u8 = 17;

/// The classifier's decision for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Down the stack unchanged.
    Bypass,
    /// Through the tunnel; `ready`: the socket is up and the peer it routes to has a primary key (else
    /// no peer carries it yet, or that peer has no key: the hold policy's not-ready trigger).
    Divert { ready: bool },
}

/// The parsed start of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Headers {
    pub(crate) l2_len: usize,
    pub(crate) dst: IpDst,
    pub(crate) proto: u8,
    /// UDP source and destination ports, when the frame is UDP and they are present.
    pub(crate) udp_ports: Option<(u16, u16)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IpDst {
    V4([u8; 4]),
    V6([u8; 16]),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses Ethernet (with up to [`MAX_VLAN_TAGS`] tags) and the IP header from the first bytes of a frame.
pub(crate) fn parse(head: &[u8]) -> Option<Headers> {
    let mut at = 12;
    let mut ethertype = be16(head, at)?;
    let mut tags = 0;
    while ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return None;
        }
        at += 4;
        ethertype = be16(head, at)?;
    }
    let l2_len = at + 2;
    let (dst, proto, l4) = ip_header(ethertype, head.get(l2_len..)?)?;
    let udp_ports =
        if proto == IPPROTO_UDP { l4.and_then(|l4| Some((be16(l4, 0)?, be16(l4, 2)?))) } else { None };
    Some(Headers { l2_len, dst, proto, udp_ports })
}

/// The IP header at the start of `ip` (after an L2 header of type `ethertype`): destination, protocol
/// and the bytes after it (`None` for a non-first IPv4 fragment). `None` when it is not IPv4/IPv6 or is
/// malformed or cut short before the destination.
fn ip_header(ethertype: u16, ip: &[u8]) -> Option<(IpDst, u8, Option<&[u8]>)> {
    match ethertype {
        ETHERTYPE_IPV4 => {
            if ip.first()? >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(ip.first()? & 0x0F) * 4;
            if ihl < 20 {
                return None;
            }
            let frag = be16(ip, 6)? & 0x1FFF;
            let dst = IpDst::V4(ip.get(16..20)?.try_into().ok()?);
            // Only the first fragment carries the UDP header.
            Some((dst, *ip.get(9)?, if frag == 0 { ip.get(ihl..) } else { None }))
        }
        ETHERTYPE_IPV6 => {
            if ip.first()? >> 4 != 6 {
                return None;
            }
            let dst = IpDst::V6(ip.get(24..40)?.try_into().ok()?);
            Some((dst, *ip.get(6)?, ip.get(40..)))
        }
        _ => None,
    }
}

/// What the send worker needs of a diverted frame, its L2 header length and inner destination, read in
/// place when the frame has no VLAN tag and its IP header (through the destination) sits in one MDL:
/// the first, or the second when the first holds the Ethernet header alone. `None`: take
/// [`head`] and [`parse`] (which then decide the same way, or find the frame malformed).
///
/// # Safety
/// As for [`nb_segments`].
pub(crate) unsafe fn route_key(nb: *const NET_BUFFER) -> Option<(usize, IpDst)> {
    // SAFETY: forwarded contract (valid, owned NB).
    let mdl = unsafe { NET_BUFFER_CURRENT_MDL(nb) };
    // SAFETY: as above.
    let offset = unsafe { NET_BUFFER_CURRENT_MDL_OFFSET(nb) } as usize;
    // SAFETY: as above.
    let length = unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize;
    if mdl.is_null() {
        return None;
    }
    // SAFETY: forwarded contract: the MDL's bytes stay valid while the caller owns the NB.
    let first = unsafe { mdl_bytes(mdl) }?.get(offset..)?;
    let first = first.get(..length.min(first.len()))?;
    let ethertype = be16(first, 12)?;
    if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        return None;
    }
    let ip = if first.len() > ETH_HEADER {
        first.get(ETH_HEADER..)?
    } else {
        // SAFETY: as above (the next MDL of the same owned NB).
        let next = unsafe { (*mdl).Next };
        if next.is_null() || first.len() != ETH_HEADER {
            return None;
        }
        // SAFETY: as above.
        let second = unsafe { mdl_bytes(next) }?;
        second.get(..(length - ETH_HEADER).min(second.len()))?
    };
    let (dst, _, _) = ip_header(ethertype, ip)?;
    Some((ETH_HEADER, dst))
}

fn prefix_contains(prefix: &IpPrefix, dst: &IpDst) -> bool {
    match (prefix, dst) {
        (IpPrefix::V4(p, len), IpDst::V4(a)) => {
            let mask = if *len == 0 { 0 } else { u32::MAX << (32 - u32::from((*len).min(32))) };
            u32::from_be_bytes(*p) & mask == u32::from_be_bytes(*a) & mask
        }
        (IpPrefix::V6(p, len), IpDst::V6(a)) => {
            let mask = if *len == 0 { 0 } else { u128::MAX << (128 - u32::from((*len).min(128))) };
            u128::from_be_bytes(*p) & mask == u128::from_be_bytes(*a) & mask
        }
        _ => false,
    }
}

fn is_peer_endpoint(endpoint: &Endpoint, dst: &IpDst) -> bool {
    match (endpoint, dst) {
        (Endpoint::V4 { addr, .. }, IpDst::V4(a)) => addr == a,
        (Endpoint::V6 { addr, .. }, IpDst::V6(a)) => addr == a,
        _ => false,
    }
}

/// The engine's form of an inner destination.
pub(crate) fn inner_dest(dst: &IpDst) -> InnerDest {
    match *dst {
        IpDst::V4(a) => InnerDest::V4(a),
        IpDst::V6(a) => InnerDest::V6(a),
    }
}

/// Classifies a frame from its first bytes (at most [`HEAD_BYTES`] are looked at) against the
/// configuration (`None`: the driver is unloading) and the tunnel socket's local port (0: no socket).
/// The caller holds `CONFIG`'s lock.
pub(crate) fn decide(head: &[u8], config: Option<&Config>, own_port: u16) -> Verdict {
    let Some(config) = config else { return Verdict::Bypass };
    if config.peers.is_empty() {
        return Verdict::Bypass;
    }
    let Some(h) = parse(head) else { return Verdict::Bypass };
    if config.endpoints().any(|e| is_peer_endpoint(&e, &h.dst)) {
        return Verdict::Bypass;
    }
    if own_port != 0 && h.udp_ports.is_some_and(|(src, _)| src == own_port) {
        return Verdict::Bypass;
    }
    let dst = inner_dest(&h.dst);
    if !(config.policy.iter().flatten().any(|p| prefix_contains(p, &h.dst)) || config.routed(dst)) {
        return Verdict::Bypass;
    }
    let ready = own_port != 0 && config.route(dst).is_some_and(|id| config.keyed(id));
    Verdict::Divert { ready }
}

/// The mapped bytes of one MDL (null if it cannot be mapped).
///
/// # Safety
/// `mdl` must be a valid MDL describing locked or non-paged memory that stays valid for `'a`.
unsafe fn mdl_bytes<'a>(mdl: *mut MDL) -> Option<&'a [u8]> {
    // SAFETY: the caller guarantees a valid, locked MDL.
    let va = unsafe { MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority | MdlMappingNoExecute) };
    if va.is_null() {
        return None;
    }
    // SAFETY: as above; ByteCount is the MDL's length.
    let len = unsafe { (*mdl).ByteCount } as usize;
    // SAFETY: the mapping covers ByteCount bytes and lives as long as the MDL.
    Some(unsafe { core::slice::from_raw_parts(va.cast::<u8>(), len) })
}

/// The NET_BUFFER's data as MDL segments, starting `skip` bytes into the data, into `out` (the caller's,
/// reused per packet): the zero-copy view the engine seals from. `None` if the chain is shorter than the
/// data, cannot be mapped, or spans more than [`MAX_SEGMENTS`] MDLs.
///
/// # Safety
/// `nb` must be a valid NET_BUFFER the caller owns (a send NBL handed to the filter, or its own copy);
/// the slices must not outlive that ownership.
pub(crate) unsafe fn nb_segments<'a>(
    nb: *const NET_BUFFER,
    skip: usize,
    out: &mut ArrayVec<&'a [u8], MAX_SEGMENTS>,
) -> Option<()> {
    out.clear();
    // SAFETY: the caller owns a valid NB (for this and the next two reads).
    let mut mdl = unsafe { NET_BUFFER_CURRENT_MDL(nb) };
    // SAFETY: as above.
    let offset = unsafe { NET_BUFFER_CURRENT_MDL_OFFSET(nb) } as usize;
    // SAFETY: as above.
    let length = unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize;
    let mut offset = offset.checked_add(skip)?;
    let mut left = length.checked_sub(skip)?;
    while left > 0 {
        if mdl.is_null() {
            return None;
        }
        // SAFETY: MDLs of an owned NB are valid for the NB's lifetime.
        let bytes: &'a [u8] = unsafe { mdl_bytes(mdl) }?;
        if offset < bytes.len() {
            let take = (bytes.len() - offset).min(left);
            out.try_push(bytes.get(offset..offset + take)?).ok()?;
            left -= take;
            offset = 0;
        } else {
            offset -= bytes.len();
        }
        // SAFETY: as above.
        mdl = unsafe { (*mdl).Next };
    }
    Some(())
}

/// Copies up to `out.len()` bytes of the NET_BUFFER's data (from its start) into `out`; returns how many.
/// Used for headers only.
///
/// # Safety
/// As for [`nb_segments`].
pub(crate) unsafe fn copy_head(nb: *const NET_BUFFER, out: &mut [u8]) -> usize {
    // SAFETY: forwarded contract (valid, owned NB).
    let mut mdl = unsafe { NET_BUFFER_CURRENT_MDL(nb) };
    // SAFETY: as above.
    let mut offset = unsafe { NET_BUFFER_CURRENT_MDL_OFFSET(nb) } as usize;
    // SAFETY: as above.
    let mut left = unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize;
    let mut n = 0;
    while left > 0 && n < out.len() && !mdl.is_null() {
        // SAFETY: forwarded contract.
        let Some(bytes) = (unsafe { mdl_bytes(mdl) }) else { break };
        if offset < bytes.len() {
            let take = (bytes.len() - offset).min(left).min(out.len() - n);
            let (Some(dst), Some(src)) = (out.get_mut(n..n + take), bytes.get(offset..offset + take)) else {
                break;
            };
            dst.copy_from_slice(src);
            n += take;
            left -= take;
            offset = 0;
        } else {
            offset -= bytes.len();
        }
        // SAFETY: forwarded contract.
        mdl = unsafe { (*mdl).Next };
    }
    n
}

/// The NET_BUFFER's first bytes (up to [`HEAD_BYTES`]) for classification: straight from the first MDL
/// when it holds them all (the usual case: the stack puts the headers in one MDL), else copied into
/// `scratch` across the chain ([`copy_head`]).
///
/// # Safety
/// As for [`nb_segments`]; the slice must not outlive the caller's ownership of the NB.
pub(crate) unsafe fn head(nb: *const NET_BUFFER, scratch: &mut [u8; HEAD_BYTES]) -> &[u8] {
    // SAFETY: forwarded contract (valid, owned NB).
    let mdl = unsafe { NET_BUFFER_CURRENT_MDL(nb) };
    // SAFETY: as above.
    let offset = unsafe { NET_BUFFER_CURRENT_MDL_OFFSET(nb) } as usize;
    // SAFETY: as above.
    let want = (unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize).min(HEAD_BYTES);
    if !mdl.is_null() {
        // SAFETY: forwarded contract: the MDL's bytes stay valid while the caller owns the NB.
        if let Some(bytes) = unsafe { mdl_bytes(mdl) }.and_then(|b| b.get(offset..offset.checked_add(want)?))
        {
            return bytes;
        }
    }
    // SAFETY: forwarded contract.
    let n = unsafe { copy_head(nb, scratch) };
    scratch.get(..n).unwrap_or_default()
}

/// Copies the whole data of a NET_BUFFER from byte `skip` into `out`; returns the length, or `None` if it
/// does not fit or the chain is short. (Hold-policy deep copies and the offload path only.)
///
/// # Safety
/// As for [`nb_segments`].
pub(crate) unsafe fn copy_all(nb: *const NET_BUFFER, skip: usize, out: &mut [u8]) -> Option<usize> {
    // SAFETY: forwarded contract (valid, owned NB).
    let length = unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize;
    let want = length.checked_sub(skip)?;
    // SAFETY: forwarded contract.
    unsafe { copy_range(nb, skip, out.get_mut(..want)?) }?;
    Some(want)
}

/// Copies exactly `out.len()` bytes of a NET_BUFFER's data starting at byte `skip`; `None` if the data or
/// the MDL chain is shorter.
///
/// # Safety
/// As for [`nb_segments`].
pub(crate) unsafe fn copy_range(nb: *const NET_BUFFER, skip: usize, out: &mut [u8]) -> Option<()> {
    // SAFETY: forwarded contract (valid, owned NB).
    let length = unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize;
    if skip.checked_add(out.len())? > length {
        return None;
    }
    // SAFETY: as above.
    let mut mdl = unsafe { NET_BUFFER_CURRENT_MDL(nb) };
    // SAFETY: as above.
    let mut offset = unsafe { NET_BUFFER_CURRENT_MDL_OFFSET(nb) } as usize;
    offset = offset.checked_add(skip)?;
    let want = out.len();
    let mut n = 0;
    while n < want {
        if mdl.is_null() {
            return None;
        }
        // SAFETY: forwarded contract.
        let bytes = unsafe { mdl_bytes(mdl) }?;
        if offset < bytes.len() {
            let take = (bytes.len() - offset).min(want - n);
            out.get_mut(n..n + take)?.copy_from_slice(bytes.get(offset..offset + take)?);
            n += take;
            offset = 0;
        } else {
            offset -= bytes.len();
        }
        // SAFETY: forwarded contract.
        mdl = unsafe { (*mdl).Next };
    }
    Some(())
}
