//! Send offloads of diverted packets, done in software.
//!
//! A send NBL at this layer may ask the NIC to finish it: checksums (`TcpIpChecksumNetBufferListInfo`:
//! IPv4 header, TCP, UDP), an LSOv2 super-packet (`TcpLargeSendNetBufferListInfo`, MSS and TCP header
//! offset) or a USO super-packet (`UdpSegmentationOffloadInfo`). A diverted packet never reaches the
//! NIC, so the filter does what the NIC would have done, and the peer receives exactly the packets the
//! wire would have carried: every checksum the stack left to hardware is computed; a super-packet of up
//! to 64 KB is cut into MSS-sized packets whose IP total length / payload length, IPv4 ID (LSOv2: modulo
//! 0x8000; USO: modulo 0x10000), TCP sequence number and flags (FIN and PSH on the last segment only),
//! UDP length and checksums are fixed up (Windows-driver-docs "TCP/IP Offload" — "Offloading the
//! Segmentation of Large TCP Packets", "UDP segmentation offload (USO)").
//!
//! Each packet is built in one scratch ciphertext-pool buffer (headers, then the segment's payload
//! read from the MDL chain) and sealed from there: one copy of the payload, counted in
//! `RdcoStats::offload_copies`. Bypass traffic keeps its offload information and is never touched here.
//!
//! IRQL: <= DISPATCH_LEVEL, no lock.
use core::sync::atomic::Ordering;

use kernel::ffi::nbl::{
    TcpIpChecksumNetBufferListInfo, TcpLargeSendNetBufferListInfo, UdpSegmentationOffloadInfo,
    NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO, NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO,
    NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE, NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO, NET_BUFFER,
    NET_BUFFER_DATA_LENGTH, NET_BUFFER_LIST, NET_BUFFER_LIST_INFO, NET_BUFFER_LIST_SET_INFO,
};

use crate::classify;
use crate::control::STATS;

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
/// Largest IP + L4 header handled (IPv4 with options 60 + TCP with options 60).
const MAX_HEADERS: usize = 120;

/// What an NBL asks of the NIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Requests {
    csum: u32,
    /// Segment size of an LSOv2 (TCP) or USO (UDP) super-packet; 0 = none.
    mss: u32,
    tcp_lso: bool,
}

impl Requests {
    pub(crate) fn is_none(&self) -> bool {
        self.csum == 0 && self.mss == 0
    }
}

/// Reads the offload requests of a send NBL.
pub(crate) fn requests(nbl: *mut NET_BUFFER_LIST) -> Requests {
    // SAFETY: an NBL the filter owns; the index is below MaxNetBufferListInfo.
    let csum = unsafe { NET_BUFFER_LIST_INFO(nbl, TcpIpChecksumNetBufferListInfo) };
    // SAFETY: as above.
    let lso = unsafe { NET_BUFFER_LIST_INFO(nbl, TcpLargeSendNetBufferListInfo) };
    // SAFETY: as above.
    let uso = unsafe { NET_BUFFER_LIST_INFO(nbl, UdpSegmentationOffloadInfo) };
    let csum = NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO::from_ptr(csum).0;
    let lso = NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO::from_ptr(lso);
    let uso = NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO::from_ptr(uso);
    if lso.0 != 0 && lso.lso_type() == NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE && lso.mss() != 0 {
        return Requests { csum, mss: lso.mss(), tcp_lso: true };
    }
    if uso.0 != 0 && uso.mss() != 0 {
        return Requests { csum, mss: uso.mss(), tcp_lso: false };
    }
    Requests { csum, mss: 0, tcp_lso: false }
}

/// Before an original LSOv2 send completes, writes `LsoV2TransmitComplete` (`Reserved` 0, `Type`
/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE`) into its `TcpLargeSendNetBufferListInfo`, as the miniport
/// would have ("Offloading the Segmentation of Large TCP Packets": the completing driver sets it).
pub(crate) fn mark_lso_complete(nbl: *mut NET_BUFFER_LIST) {
    if !requests(nbl).tcp_lso {
        return;
    }
    let done = (NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE << 30) as usize as *mut core::ffi::c_void;
    // SAFETY: an original the filter owns and is about to complete; the index is in range.
    unsafe { NET_BUFFER_LIST_SET_INFO(nbl, TcpLargeSendNetBufferListInfo, done) };
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b.get(at).copied().unwrap_or(0), b.get(at + 1).copied().unwrap_or(0)])
}

fn set16(b: &mut [u8], at: usize, v: u16) {
    if let Some(d) = b.get_mut(at..at + 2) {
        d.copy_from_slice(&v.to_be_bytes());
    }
}

fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Where the headers of an IP packet are (offsets from the IP header).
#[derive(Clone, Copy, Debug)]
struct Layout {
    v6: bool,
    proto: u8,
    l4: usize,
    payload: usize,
}

fn layout(p: &[u8]) -> Option<Layout> {
    let version = p.first()? >> 4;
    let (v6, l4, proto) = match version {
        4 => (false, usize::from(p.first()? & 0xf) * 4, *p.get(9)?),
        6 => (true, 40, *p.get(6)?),
        _ => return None,
    };
    let header = match proto {
        PROTO_TCP => usize::from(p.get(l4 + 12)? >> 4) * 4,
        PROTO_UDP => 8,
        _ => return None,
    };
    (header >= 8 && l4 + header <= p.len()).then_some(Layout { v6, proto, l4, payload: l4 + header })
}

/// Fills the checksums of one complete IP packet in `p`: the IPv4 header checksum when `ip`, the TCP/UDP
/// checksum (over the pseudo-header) when `l4`.
fn fill_checksums(p: &mut [u8], l: &Layout, ip: bool, l4: bool) {
    if ip && !l.v6 {
        set16(p, 10, 0);
        let c = !fold(sum(p.get(..l.l4).unwrap_or(&[]), 0));
        set16(p, 10, c);
    }
    if l4 {
        let at = l.l4 + if l.proto == PROTO_TCP { 16 } else { 6 };
        set16(p, at, 0);
        let l4_len = p.len().saturating_sub(l.l4) as u64;
        let addrs = if l.v6 { p.get(8..40) } else { p.get(12..20) };
        let mut acc = sum(addrs.unwrap_or(&[]), 0);
        acc += u64::from(l.proto) + (l4_len >> 16) + (l4_len & 0xffff);
        let mut c = !fold(sum(p.get(l.l4..).unwrap_or(&[]), acc));
        if c == 0 && l.proto == PROTO_UDP {
            c = 0xffff;
        }
        set16(p, at, c);
    }
}

/// Packets one NET_BUFFER becomes: 1, or the segments of a super-packet.
///
/// # Safety
/// `nb` is a valid NB the filter owns.
pub(crate) unsafe fn packets_needed(nb: *const NET_BUFFER, l2_len: usize, r: &Requests) -> usize {
    if r.mss == 0 {
        return 1;
    }
    let mut head = [0u8; MAX_HEADERS];
    // SAFETY: forwarded contract.
    let len = (unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize).saturating_sub(l2_len);
    let n = len.min(MAX_HEADERS);
    // SAFETY: forwarded contract.
    if unsafe { classify::copy_range(nb, l2_len, head.get_mut(..n).unwrap_or(&mut [])) }.is_none() {
        return 1;
    }
    match layout(head.get(..n).unwrap_or(&[])) {
        Some(l) => len.saturating_sub(l.payload).div_ceil(r.mss as usize).max(1),
        None => 1,
    }
}

/// Builds each packet the NIC would have sent for this NET_BUFFER in `scratch` and calls `emit` with it
/// (as one segment). Malformed or oversized input is counted in `drop_malformed` and emits nothing.
///
/// # Safety
/// `nb` is a valid NB the filter owns.
pub(crate) unsafe fn for_each_packet(
    nb: *const NET_BUFFER,
    l2_len: usize,
    r: &Requests,
    scratch: &mut [u8],
    emit: &mut dyn FnMut(&[&[u8]]) -> bool,
) {
    // SAFETY: forwarded contract.
    let total = (unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize).saturating_sub(l2_len);
    if r.mss == 0 {
        let Some(p) = scratch.get_mut(..total) else {
            STATS.drop_malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // SAFETY: forwarded contract.
        if unsafe { classify::copy_range(nb, l2_len, p) }.is_none() {
            STATS.drop_malformed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if r.csum != 0 {
            if let Some(l) = layout(p) {
                let c = NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO(r.csum);
                let ip = c.0 & NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO::TX_IP_HEADER_CHECKSUM != 0;
                let l4 = match l.proto {
                    PROTO_TCP => c.0 & NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO::TX_TCP_CHECKSUM != 0,
                    _ => c.0 & NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO::TX_UDP_CHECKSUM != 0,
                };
                fill_checksums(p, &l, ip, l4);
            }
        }
        STATS.offload_copies.fetch_add(1, Ordering::Relaxed);
        emit(&[p]);
        return;
    }
    // Segmentation: headers once, then each segment's payload behind them.
    let mut head = [0u8; MAX_HEADERS];
    let n = total.min(MAX_HEADERS);
    // SAFETY: forwarded contract.
    if unsafe { classify::copy_range(nb, l2_len, head.get_mut(..n).unwrap_or(&mut [])) }.is_none() {
        STATS.drop_malformed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let Some(l) = layout(head.get(..n).unwrap_or(&[])) else {
        STATS.drop_malformed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let tcp = l.proto == PROTO_TCP;
    if tcp != r.tcp_lso {
        STATS.drop_malformed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mss = r.mss as usize;
    let payload_len = total - l.payload;
    let count = payload_len.div_ceil(mss).max(1);
    let ip_id = if l.v6 { 0 } else { be16(&head, 4) };
    let seq0 = u32::from_be_bytes([head[l.l4 + 4], head[l.l4 + 5], head[l.l4 + 6], head[l.l4 + 7]]);
    let flags0 = head.get(l.l4 + 13).copied().unwrap_or(0);
    STATS.segmented.fetch_add(1, Ordering::Relaxed);
    for k in 0..count {
        let start = (k * mss).min(payload_len);
        let chunk = (payload_len - start).min(mss);
        let Some(p) = scratch.get_mut(..l.payload + chunk) else {
            STATS.drop_malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let (Some(d), Some(s)) = (p.get_mut(..l.payload), head.get(..l.payload)) {
            d.copy_from_slice(s);
        }
        // SAFETY: forwarded contract.
        if unsafe {
            classify::copy_range(nb, l2_len + l.payload + start, p.get_mut(l.payload..).unwrap_or(&mut []))
        }
        .is_none()
        {
            STATS.drop_malformed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let len = p.len();
        if l.v6 {
            set16(p, 4, u16::try_from(len - 40).unwrap_or(0));
        } else {
            set16(p, 2, u16::try_from(len).unwrap_or(0));
            let k16 = u16::try_from(k).unwrap_or(0);
            let id = if tcp { ip_id.wrapping_add(k16) & 0x7fff } else { ip_id.wrapping_add(k16) };
            set16(p, 4, id);
        }
        if tcp {
            let seq = seq0.wrapping_add(u32::try_from(start).unwrap_or(0));
            if let Some(d) = p.get_mut(l.l4 + 4..l.l4 + 8) {
                d.copy_from_slice(&seq.to_be_bytes());
            }
            if k + 1 != count {
                if let Some(f) = p.get_mut(l.l4 + 13) {
                    *f = flags0 & !(TCP_FIN | TCP_PSH);
                }
            }
        } else {
            set16(p, l.l4 + 4, u16::try_from(len - l.l4).unwrap_or(0));
        }
        fill_checksums(p, &l, true, true);
        STATS.offload_copies.fetch_add(1, Ordering::Relaxed);
        if !emit(&[p]) {
            return;
        }
    }
}
