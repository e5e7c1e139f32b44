//! Task offloads as a NIC and the TCP/IP stack exchange them: the NIC's capabilities (`NDIS_OFFLOAD`, as
//! `OID_TCP_OFFLOAD_CURRENT_CONFIG` answers and `NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG` indicates them),
//! the per-NBL information TCP/IP sets on a send when the NIC advertises an offload, what the NIC does
//! with that information on its way to the wire (checksums, LSOv2 and USO segmentation), the receive-side
//! marks (checksum results, RSS hash), and Internet checksums. Pure functions over bytes; the data path
//! (`crate::datapath`) applies them to NBLs.
//!
//! Sources (Windows-driver-docs): "Offloading Checksum Tasks" (the transport writes the pseudo-header sum
//! *with* the TCP/UDP length into the checksum field and zero into the IPv4 header checksum; the NIC adds
//! the sum of the header and payload and complements), "Offloading the Segmentation of Large TCP Packets"
//! (LSO: pseudo-header sum *without* the length; MSS-sized segments, only the last shorter; FIN and PSH
//! only on the last segment; LSOv2 IP IDs count up modulo 0x8000; the total length comes from the NB's
//! length; at completion `LsoV2TransmitComplete.Reserved` = 0 and `.Type` = V2), "UDP Segmentation
//! Offload (USO)" (pseudo-header sum without the length; IP IDs count up modulo 0x10000; UDP and IP
//! lengths set per datagram), `NDIS_OFFLOAD`, `NDIS_TCP_IP_CHECKSUM_OFFLOAD`,
//! `NDIS_TCP_LARGE_SEND_OFFLOAD_V2`, `NDIS_UDP_SEGMENTATION_OFFLOAD`. For LSOv2 and USO super-packets the
//! simulated stack writes 0 into the IPv4 Total Length / IPv6 Payload Length (and UDP Length): a 64 KB
//! payload does not fit the 16-bit fields, the docs tell LSOv2/USO miniports to take the length from the
//! NET_BUFFER, and Hyper-V's LSOv2 senders (Linux netvsc) do the same.
use kernel::ffi::nbl::{
    NdisHashFunctionToeplitz, NDIS_HASH_TCP_IPV4, NDIS_HASH_TCP_IPV6, NDIS_HASH_UDP_IPV4,
    NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE,
};
use kernel::ffi::nbl::{
    NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO as Csum,
    NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO as Lso,
    NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO as Uso,
};
use kernel::ffi::ndis::NDIS_OBJECT_TYPE_OFFLOAD;
use kernel::ffi::oid::{
    NDIS_ENCAPSULATION_IEEE_802_3, NDIS_OFFLOAD, NDIS_OFFLOAD_REVISION_6, NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_6,
};

/// `NDIS_HASH_UDP_IPV6` (ntddndis.h).
pub const NDIS_HASH_UDP_IPV6: u32 = 0x0000_8000;
/// The largest LSO/USO super-packet payload a modern NIC takes.
pub const MAX_OFFLOAD_SIZE: u32 = 65_536;
/// The value the NIC writes into `TcpLargeSendNetBufferListInfo` before completing an LSOv2 send
/// (`LsoV2TransmitComplete.Reserved` = 0, `.Type` = `NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE`).
pub const LSO_V2_TRANSMIT_COMPLETE: u32 = NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE << 30;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const ETH: usize = 14;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
/// The initial TCP sequence number of every simulated send (a segment's payload offset is its sequence
/// number minus this).
pub const TCP_ISN: u32 = 0x1000_0000;
/// The source port of send `id` is `PORT_BASE + id`.
pub const PORT_BASE: u16 = 10_000;
const TCP_DST_PORT: u16 = 443;
const UDP_DST_PORT: u16 = 1194;

/// What a NIC offloads (transmit and receive checksums per IP version, LSOv2, USO).
#[allow(clippy::struct_excessive_bools)] // one switch per NDIS_OFFLOAD member, as the registry keywords are
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offloads {
    /// IPv4 header, TCP and UDP checksums over IPv4 (with IP and TCP options).
    pub checksum_v4: bool,
    /// TCP and UDP checksums over IPv6 (with extension headers and TCP options).
    pub checksum_v6: bool,
    /// Large send offload version 2, IPv4 and IPv6.
    pub lso_v2: bool,
    /// LSOv2 `MaxOffLoadSize`: the most TCP payload bytes in one super-packet.
    pub lso_max: u32,
    /// LSOv2 `MinSegmentCount`.
    pub lso_min_segments: u32,
    /// UDP segmentation offload, IPv4 and IPv6 (with `SubMssFinalSegmentSupported`).
    pub uso: bool,
    /// USO `MaxOffLoadSize`.
    pub uso_max: u32,
    /// USO `MinSegmentCount` (a 6-bit field).
    pub uso_min_segments: u32,
}

impl Default for Offloads {
    /// A modern NIC: every checksum, LSOv2 and USO up to 64 KB, at least 2 segments.
    fn default() -> Self {
        Offloads {
            checksum_v4: true,
            checksum_v6: true,
            lso_v2: true,
            lso_max: MAX_OFFLOAD_SIZE,
            lso_min_segments: 2,
            uso: true,
            uso_max: MAX_OFFLOAD_SIZE,
            uso_min_segments: 2,
        }
    }
}

impl Offloads {
    /// A NIC without any offload.
    pub fn none() -> Self {
        Offloads {
            checksum_v4: false,
            checksum_v6: false,
            lso_v2: false,
            lso_max: 0,
            lso_min_segments: 0,
            uso: false,
            uso_max: 0,
            uso_min_segments: 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// NDIS_OFFLOAD
// ---------------------------------------------------------------------------------------------------------

/// `IpOptionsSupported | TcpOptionsSupported | TcpChecksum | UdpChecksum | IpChecksum`, each 2-bit field
/// `NDIS_OFFLOAD_SUPPORTED` (`NDIS_TCP_IP_CHECKSUM_OFFLOAD.IPv4Transmit/IPv4Receive`).
const CHECKSUM_V4_BITS: u32 = 0x155;
/// `IpExtensionHeadersSupported | TcpOptionsSupported | TcpChecksum | UdpChecksum` (IPv6).
const CHECKSUM_V6_BITS: u32 = 0x55;

fn put(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn get(buf: &[u8], at: usize) -> u32 {
    buf.get(at..at + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The `NDIS_OFFLOAD` (revision 6, 216 bytes, x64 layout) describing `o`, as the bytes a miniport reports
/// and `OID_TCP_OFFLOAD_CURRENT_CONFIG` returns. LSOv1, IPsec, RSC and encapsulated-packet offloads are
/// reported as not supported.
#[allow(clippy::many_single_char_names)]
pub fn ndis_offload_bytes(o: &Offloads) -> Vec<u8> {
    use core::mem::offset_of;
    let mut b = vec![0u8; NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_6];
    b[0] = NDIS_OBJECT_TYPE_OFFLOAD;
    b[1] = NDIS_OFFLOAD_REVISION_6;
    b[2..4].copy_from_slice(&u16::try_from(NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_6).unwrap_or(0).to_le_bytes());
    let enc = |on: bool| if on { NDIS_ENCAPSULATION_IEEE_802_3 } else { 0 };
    let c = offset_of!(NDIS_OFFLOAD, Checksum);
    for (i, (on, bits)) in [
        (o.checksum_v4, CHECKSUM_V4_BITS), // IPv4Transmit
        (o.checksum_v4, CHECKSUM_V4_BITS), // IPv4Receive
        (o.checksum_v6, CHECKSUM_V6_BITS), // IPv6Transmit
        (o.checksum_v6, CHECKSUM_V6_BITS), // IPv6Receive
    ]
    .into_iter()
    .enumerate()
    {
        put(&mut b, c + 8 * i, enc(on));
        put(&mut b, c + 8 * i + 4, if on { bits } else { 0 });
    }
    let l = offset_of!(NDIS_OFFLOAD, LsoV2);
    if o.lso_v2 {
        for v in [0, 12] {
            put(&mut b, l + v, NDIS_ENCAPSULATION_IEEE_802_3);
            put(&mut b, l + v + 4, o.lso_max);
            put(&mut b, l + v + 8, o.lso_min_segments);
        }
        // IPv6: IpExtensionHeadersSupported:2 = SUPPORTED, TcpOptionsSupported:2 = SUPPORTED.
        put(&mut b, l + 24, 0x5);
    }
    let u = offset_of!(NDIS_OFFLOAD, UdpSegmentation);
    if o.uso {
        // MinSegmentCount:6, SubMssFinalSegmentSupported:1.
        let bits = (o.uso_min_segments & 0x3f) | (1 << 6);
        for v in [0, 12] {
            put(&mut b, u + v, NDIS_ENCAPSULATION_IEEE_802_3);
            put(&mut b, u + v + 4, o.uso_max);
            put(&mut b, u + v + 8, bits);
        }
        // IPv6 IpExtensionHeadersSupported:2 = SUPPORTED.
        put(&mut b, u + 24, 0x1);
    }
    b
}

/// Reads the offloads an `NDIS_OFFLOAD` advertises (what TCP/IP would use). Honours `Header.Size`: a
/// revision without the USO member advertises no USO. `None` when it is not an `NDIS_OFFLOAD`.
#[allow(clippy::many_single_char_names)]
pub fn parse_ndis_offload(b: &[u8]) -> Option<Offloads> {
    use core::mem::offset_of;
    if b.len() < 4 || b[0] != NDIS_OBJECT_TYPE_OFFLOAD {
        return None;
    }
    let size = usize::from(u16::from_le_bytes([b[2], b[3]])).min(b.len());
    let b = &b[..size];
    let c = offset_of!(NDIS_OFFLOAD, Checksum);
    let field = |bits: u32, i: u32| (bits >> (2 * i)) & 3 == 1;
    let v4 = get(b, c + 4);
    let v6 = get(b, c + 20);
    let l = offset_of!(NDIS_OFFLOAD, LsoV2);
    let u = offset_of!(NDIS_OFFLOAD, UdpSegmentation);
    let has_uso = size >= u + 28;
    Some(Offloads {
        checksum_v4: get(b, c) != 0 && field(v4, 2) && field(v4, 3) && field(v4, 4),
        checksum_v6: get(b, c + 16) != 0 && field(v6, 2) && field(v6, 3),
        lso_v2: get(b, l) != 0 && get(b, l + 12) != 0,
        lso_max: get(b, l + 4).min(get(b, l + 16)),
        lso_min_segments: get(b, l + 8).max(get(b, l + 20)),
        uso: has_uso && get(b, u) != 0 && get(b, u + 12) != 0,
        uso_max: if has_uso { get(b, u + 4).min(get(b, u + 16)) } else { 0 },
        uso_min_segments: if has_uso { (get(b, u + 8) & 0x3f).max(get(b, u + 20) & 0x3f) } else { 0 },
    })
}

// ---------------------------------------------------------------------------------------------------------
// Checksums
// ---------------------------------------------------------------------------------------------------------

/// Adds `data` (big-endian 16-bit words, an odd last byte padded with zero) to a one's-complement
/// accumulator.
pub fn sum(data: &[u8], acc: u64) -> u64 {
    let mut acc = acc;
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds an accumulator into a 16-bit one's-complement sum (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    u16::try_from(acc).unwrap_or(0xffff)
}

/// The Internet checksum of `data` (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// The pseudo-header sum (folded, not complemented) for `proto` between `src` and `dst` (4 or 16 bytes
/// each) with upper-layer length `len` (`None`: without the length, as for LSO/USO).
pub fn pseudo_sum(src: &[u8], dst: &[u8], proto: u8, len: Option<u32>) -> u16 {
    let mut acc = sum(src, 0);
    acc = sum(dst, acc);
    acc += u64::from(proto);
    if let Some(len) = len {
        acc += u64::from(len >> 16) + u64::from(len & 0xffff);
    }
    fold(acc)
}

// ---------------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------------

/// Transport protocol of a simulated IP send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn number(self) -> u8 {
        match self {
            Proto::Tcp => PROTO_TCP,
            Proto::Udp => PROTO_UDP,
        }
    }
}

/// Where the headers of an Ethernet + IPv4/IPv6 + TCP/UDP frame are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub v6: bool,
    pub proto: Proto,
    /// Offset of the IP header (after Ethernet).
    pub ip: usize,
    /// Offset of the TCP/UDP header.
    pub l4: usize,
    /// Offset of the payload.
    pub payload: usize,
}

/// Locates the headers of an IP frame (no VLAN tag, no IPv6 extension headers); `None` for anything else.
pub fn layout(frame: &[u8]) -> Option<Layout> {
    if frame.len() < ETH + 20 {
        return None;
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let (v6, l4, proto) = match ethertype {
        ETHERTYPE_IPV4 if frame[ETH] >> 4 == 4 => {
            (false, ETH + usize::from(frame[ETH] & 0xf) * 4, frame[ETH + 9])
        }
        ETHERTYPE_IPV6 if frame.len() >= ETH + 40 && frame[ETH] >> 4 == 6 => (true, ETH + 40, frame[ETH + 6]),
        _ => return None,
    };
    let (proto, header) = match proto {
        PROTO_TCP => (Proto::Tcp, usize::from(*frame.get(l4 + 12)? >> 4) * 4),
        PROTO_UDP => (Proto::Udp, 8),
        _ => return None,
    };
    (l4 + header <= frame.len() && header >= 8).then_some(Layout {
        v6,
        proto,
        ip: ETH,
        l4,
        payload: l4 + header,
    })
}

fn addrs(frame: &[u8], l: &Layout) -> (Vec<u8>, Vec<u8>) {
    if l.v6 {
        (frame[l.ip + 8..l.ip + 24].to_vec(), frame[l.ip + 24..l.ip + 40].to_vec())
    } else {
        (frame[l.ip + 12..l.ip + 16].to_vec(), frame[l.ip + 16..l.ip + 20].to_vec())
    }
}

fn csum_field(l: &Layout) -> usize {
    match l.proto {
        Proto::Tcp => l.l4 + 16,
        Proto::Udp => l.l4 + 6,
    }
}

fn set16(frame: &mut [u8], at: usize, v: u16) {
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn get16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

/// Checks one packet as a receiver would: IPv4 header checksum and lengths, IPv6 payload length, UDP
/// length, and the TCP/UDP checksum. Returns the layout.
pub fn verify_packet(frame: &[u8]) -> Result<Layout, String> {
    let l = layout(frame).ok_or("not an Ethernet + IPv4/IPv6 + TCP/UDP frame")?;
    let ip_len = frame.len() - l.ip;
    if l.v6 {
        if usize::from(get16(frame, l.ip + 4)) != ip_len - 40 {
            return Err(format!("IPv6 payload length {} for {} bytes", get16(frame, l.ip + 4), ip_len - 40));
        }
    } else {
        if usize::from(get16(frame, l.ip + 2)) != ip_len {
            return Err(format!("IPv4 total length {} for {ip_len} bytes", get16(frame, l.ip + 2)));
        }
        if checksum(&frame[l.ip..l.l4]) != 0 {
            return Err("IPv4 header checksum wrong".into());
        }
    }
    let l4_len = frame.len() - l.l4;
    if l.proto == Proto::Udp && usize::from(get16(frame, l.l4 + 4)) != l4_len {
        return Err(format!("UDP length {} for {l4_len} bytes", get16(frame, l.l4 + 4)));
    }
    let (src, dst) = addrs(frame, &l);
    let pseudo = pseudo_sum(&src, &dst, l.proto.number(), Some(u32::try_from(l4_len).unwrap_or(0)));
    let total = !fold(sum(&frame[l.l4..], u64::from(pseudo)));
    let udp_zero = l.proto == Proto::Udp && !l.v6 && get16(frame, csum_field(&l)) == 0;
    if total != 0 && !udp_zero {
        return Err(format!("{:?} checksum wrong (field {:#06x})", l.proto, get16(frame, csum_field(&l))));
    }
    Ok(l)
}

// ---------------------------------------------------------------------------------------------------------
// The protocol's sends
// ---------------------------------------------------------------------------------------------------------

/// One IP send of the simulated TCP/IP stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpSend {
    pub v6: bool,
    pub proto: Proto,
    /// TCP/UDP payload bytes (up to 64 KB: a super-packet when the NIC offloads segmentation).
    pub payload_len: usize,
    /// Ask the NIC for checksums when it advertises them (else the stack computes them).
    pub request_checksum: bool,
    /// Maximum segment size (TCP payload per segment, UDP payload per datagram).
    pub mss: u16,
}

/// One NBL the stack hands down: the frame and its per-NBL offload information.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub frame: Vec<u8>,
    /// `TcpIpChecksumNetBufferListInfo` (transmit view).
    pub checksum: u32,
    /// `TcpLargeSendNetBufferListInfo`.
    pub lso: u32,
    /// `UdpSegmentationOffloadInfo`.
    pub uso: u32,
}

/// The simulated IPv4 and IPv6 addresses of the local host and its peer.
pub const V4_LOCAL: [u8; 4] = [192, 0, 2, 1];
pub const V4_PEER: [u8; 4] = [198, 51, 100, 2];
pub const V6_LOCAL: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const V6_PEER: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Payload byte `i` of send `id`: every byte depends on the send and its position, so a misplaced,
/// duplicated or corrupted segment is detected.
pub fn payload_byte(id: u16, i: usize) -> u8 {
    let i = i as u64;
    (u64::from(id).wrapping_mul(31).wrapping_add(i * 7).wrapping_add((i >> 8) * 13) & 0xff) as u8
}

/// Builds one frame of send `id`: headers with correct lengths, `payload` bytes starting at payload
/// offset `offset` (TCP sequence number `TCP_ISN + offset`), IPv4 ID `ip_id`, TCP flags `flags`, and
/// the checksum fields zero.
#[allow(clippy::too_many_arguments)]
fn frame(
    dst: [u8; 6],
    src: [u8; 6],
    s: &IpSend,
    id: u16,
    offset: usize,
    len: usize,
    ip_id: u16,
    flags: u8,
    outbound: bool,
) -> Vec<u8> {
    let l4_header = if s.proto == Proto::Tcp { 20 } else { 8 };
    let l4_len = l4_header + len;
    let mut f = Vec::with_capacity(ETH + 40 + l4_len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    let (local4, peer4, local6, peer6) = if outbound {
        (V4_LOCAL, V4_PEER, V6_LOCAL, V6_PEER)
    } else {
        (V4_PEER, V4_LOCAL, V6_PEER, V6_LOCAL)
    };
    if s.v6 {
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&u16::try_from(l4_len).unwrap_or(0).to_be_bytes());
        f.push(s.proto.number());
        f.push(64);
        f.extend_from_slice(&local6);
        f.extend_from_slice(&peer6);
    } else {
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&u16::try_from(20 + l4_len).unwrap_or(0).to_be_bytes());
        f.extend_from_slice(&ip_id.to_be_bytes());
        f.extend_from_slice(&[0x40, 0, 64, s.proto.number(), 0, 0]); // DF, TTL 64, checksum 0
        f.extend_from_slice(&local4);
        f.extend_from_slice(&peer4);
    }
    let (sport, dport) = match s.proto {
        Proto::Tcp => (PORT_BASE.wrapping_add(id), TCP_DST_PORT),
        Proto::Udp => (PORT_BASE.wrapping_add(id), UDP_DST_PORT),
    };
    let (sport, dport) = if outbound { (sport, dport) } else { (dport, sport) };
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    match s.proto {
        Proto::Tcp => {
            let seq = TCP_ISN.wrapping_add(u32::try_from(offset).unwrap_or(0));
            f.extend_from_slice(&seq.to_be_bytes());
            f.extend_from_slice(&1u32.to_be_bytes()); // ack
            f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        }
        Proto::Udp => {
            f.extend_from_slice(&u16::try_from(l4_len).unwrap_or(0).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
        }
    }
    f.extend((offset..offset + len).map(|i| payload_byte(id, i)));
    f
}

/// Computes every checksum of a frame in software (what the stack does without checksum offload).
pub fn fill_checksums(f: &mut [u8]) {
    let Some(l) = layout(f) else { return };
    if !l.v6 {
        set16(f, l.ip + 10, 0);
        let c = checksum(&f[l.ip..l.l4]);
        set16(f, l.ip + 10, c);
    }
    let (src, dst) = addrs(f, &l);
    let at = csum_field(&l);
    set16(f, at, 0);
    let pseudo = pseudo_sum(&src, &dst, l.proto.number(), Some(u32::try_from(f.len() - l.l4).unwrap_or(0)));
    let mut c = !fold(sum(&f[l.l4..], u64::from(pseudo)));
    if c == 0 && l.proto == Proto::Udp {
        c = 0xffff;
    }
    set16(f, at, c);
}

/// The packets TCP/IP hands to NDIS for send `id` of `s`, given the offloads it saw advertised
/// (`None`: none). With LSOv2/USO a payload larger than the MSS goes as one super-packet (within
/// MaxOffLoadSize and MinSegmentCount); otherwise the stack segments it itself. With checksum offload
/// and `request_checksum`, the checksum fields carry the pseudo-header sum and the NBL asks the NIC.
pub fn protocol_packets(
    dst: [u8; 6],
    src: [u8; 6],
    s: &IpSend,
    id: u16,
    nic: Option<&Offloads>,
) -> Vec<Packet> {
    let none = Offloads::none();
    let o = nic.unwrap_or(&none);
    let mss = usize::from(s.mss.max(1));
    let segments = s.payload_len.div_ceil(mss).max(1);
    let ip_header = if s.v6 { 40 } else { 20 };
    let l4_offset = u32::try_from(ETH + ip_header).unwrap_or(0);
    let ip_version = u32::from(s.v6);
    let seg_count = u32::try_from(segments).unwrap_or(u32::MAX);
    let len32 = u32::try_from(s.payload_len).unwrap_or(u32::MAX);
    let ip_id = id.wrapping_mul(97) & 0x7fff;
    let large = segments > 1;
    let lso =
        large && s.proto == Proto::Tcp && o.lso_v2 && len32 <= o.lso_max && seg_count >= o.lso_min_segments;
    let uso =
        large && s.proto == Proto::Udp && o.uso && len32 <= o.uso_max && seg_count >= o.uso_min_segments;
    if lso || uso {
        let mut f = frame(dst, src, s, id, 0, s.payload_len, ip_id, TCP_ACK | TCP_PSH, true);
        let l = layout(&f).expect("a frame we just built");
        if s.v6 {
            set16(&mut f, l.ip + 4, 0);
        } else {
            set16(&mut f, l.ip + 2, 0);
        }
        if s.proto == Proto::Udp {
            set16(&mut f, l.l4 + 4, 0);
        }
        let (a, b) = addrs(&f, &l);
        let at = csum_field(&l);
        set16(&mut f, at, pseudo_sum(&a, &b, s.proto.number(), None));
        let mss32 = u32::from(s.mss);
        return vec![Packet {
            frame: f,
            checksum: 0,
            lso: if lso { Lso::v2(mss32, l4_offset, ip_version).0 } else { 0 },
            uso: if uso { Uso::new(mss32, l4_offset, ip_version).0 } else { 0 },
        }];
    }
    let offload_csum = s.request_checksum && if s.v6 { o.checksum_v6 } else { o.checksum_v4 };
    (0..segments)
        .map(|k| {
            let offset = k * mss;
            let len = mss.min(s.payload_len - offset.min(s.payload_len));
            let last = k + 1 == segments;
            let flags = if last { TCP_ACK | TCP_PSH } else { TCP_ACK };
            let ip = ip_id.wrapping_add(u16::try_from(k).unwrap_or(0)) & 0x7fff;
            let mut f = frame(dst, src, s, id, offset, len, ip, flags, true);
            let mut info = 0;
            if offload_csum {
                let l = layout(&f).expect("a frame we just built");
                let (a, b) = addrs(&f, &l);
                let l4_len = u32::try_from(f.len() - l.l4).unwrap_or(0);
                let at = csum_field(&l);
                set16(&mut f, at, pseudo_sum(&a, &b, s.proto.number(), Some(l4_len)));
                info = if s.v6 { Csum::TX_IS_IPV6 } else { Csum::TX_IS_IPV4 | Csum::TX_IP_HEADER_CHECKSUM };
                info |= if s.proto == Proto::Tcp { Csum::TX_TCP_CHECKSUM } else { Csum::TX_UDP_CHECKSUM };
                info |= l4_offset << Csum::TX_TCP_HEADER_OFFSET_SHIFT;
            } else {
                fill_checksums(&mut f);
            }
            Packet { frame: f, checksum: info, lso: 0, uso: 0 }
        })
        .collect()
}

/// A frame the NIC receives for the protocol (peer to local) carrying the whole payload of `s` as send
/// `id`, with correct checksums.
pub fn inbound_frame(dst: [u8; 6], src: [u8; 6], s: &IpSend, id: u16) -> Vec<u8> {
    let mut f = frame(dst, src, s, id, 0, s.payload_len, id, TCP_ACK | TCP_PSH, false);
    fill_checksums(&mut f);
    f
}

// ---------------------------------------------------------------------------------------------------------
// The NIC
// ---------------------------------------------------------------------------------------------------------

/// Why a send's offload metadata is not something the NIC advertised (the `offload.not_advertised`
/// rule), or `None` when it is. `nb_count` is the NBL's NET_BUFFER count; `frame` its first NB's bytes.
pub fn check_request(
    o: &Offloads,
    checksum: u32,
    lso: u32,
    uso: u32,
    nb_count: usize,
    frame: &[u8],
) -> Option<String> {
    let asks = Csum::TX_TCP_CHECKSUM | Csum::TX_UDP_CHECKSUM | Csum::TX_IP_HEADER_CHECKSUM;
    if checksum & Csum::TX_IS_IPV4 != 0 && checksum & asks != 0 && !o.checksum_v4 {
        return Some(format!("IPv4 checksum offload requested ({checksum:#x}) but not advertised"));
    }
    if checksum & Csum::TX_IS_IPV6 != 0 && checksum & asks != 0 && !o.checksum_v6 {
        return Some(format!("IPv6 checksum offload requested ({checksum:#x}) but not advertised"));
    }
    let segmentation = |what: &str, on: bool, mss: u32, offset: u32, max: u32, min: u32| -> Option<String> {
        if !on {
            return Some(format!("{what} requested but not advertised"));
        }
        if nb_count != 1 {
            return Some(format!("{what} NBL with {nb_count} NET_BUFFERs (exactly one allowed)"));
        }
        let l = layout(frame).filter(|l| l.l4 == offset as usize);
        let Some(l) = l else {
            return Some(format!("{what} on a frame whose header offset {offset} is not its TCP/UDP header"));
        };
        let payload = u32::try_from(frame.len() - l.payload).unwrap_or(u32::MAX);
        if mss == 0 {
            return Some(format!("{what} with MSS 0"));
        }
        if payload > max {
            return Some(format!(
                "{what} super-packet of {payload} payload bytes exceeds MaxOffLoadSize {max}"
            ));
        }
        if payload.div_ceil(mss) < min {
            return Some(format!(
                "{what} of {payload} bytes at MSS {mss}: fewer segments than MinSegmentCount {min}"
            ));
        }
        None
    };
    if lso != 0 {
        let info = Lso(lso);
        if info.lso_type() != NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE {
            return Some("LSOv1 requested but not advertised".into());
        }
        let problem = segmentation(
            "LSOv2",
            o.lso_v2,
            info.mss(),
            info.tcp_header_offset(),
            o.lso_max,
            o.lso_min_segments,
        );
        if problem.is_some() {
            return problem;
        }
    }
    if uso != 0 {
        let info = Uso(uso);
        return segmentation(
            "USO",
            o.uso,
            info.mss(),
            info.udp_header_offset(),
            o.uso_max,
            o.uso_min_segments,
        );
    }
    None
}

/// What the NIC puts on the wire for one send NBL: the frame as is when it asks for nothing; else the
/// checksums filled in, and an LSOv2/USO super-packet cut into MSS-sized packets with their IP ID,
/// lengths, TCP sequence numbers and flags fixed up, each checksummed from the pseudo-header sum the
/// stack left in the checksum field. A request the NIC cannot carry out puts the frame out unchanged.
pub fn nic_transmit(frame: &[u8], csum: u32, lso: u32, uso: u32) -> Vec<Vec<u8>> {
    let Some(l) = layout(frame) else { return vec![frame.to_vec()] };
    if lso != 0 || uso != 0 {
        let mss = if lso != 0 { Lso(lso).mss() } else { Uso(uso).mss() } as usize;
        if mss == 0 {
            return vec![frame.to_vec()];
        }
        return segment(frame, &l, mss, lso != 0);
    }
    let is_ip = csum & (Csum::TX_IS_IPV4 | Csum::TX_IS_IPV6) != 0;
    let mut f = frame.to_vec();
    if is_ip {
        if csum & Csum::TX_IP_HEADER_CHECKSUM != 0 && !l.v6 {
            set16(&mut f, l.ip + 10, 0);
            let c = checksum(&f[l.ip..l.l4]);
            set16(&mut f, l.ip + 10, c);
        }
        let wants = match l.proto {
            Proto::Tcp => csum & Csum::TX_TCP_CHECKSUM != 0,
            Proto::Udp => csum & Csum::TX_UDP_CHECKSUM != 0,
        };
        if wants {
            finish_l4(&mut f, &l, None);
        }
    }
    vec![f]
}

/// Completes the L4 checksum from the partial sum in the checksum field: adds the length (`Some` for
/// segments of a super-packet, whose partial sum leaves it out) and the header and payload.
fn finish_l4(f: &mut [u8], l: &Layout, add_len: Option<u32>) {
    let at = csum_field(l);
    let partial = get16(f, at);
    set16(f, at, 0);
    let mut acc = u64::from(partial);
    if let Some(len) = add_len {
        acc += u64::from(len >> 16) + u64::from(len & 0xffff);
    }
    let mut c = !fold(sum(&f[l.l4..], acc));
    if c == 0 && l.proto == Proto::Udp {
        c = 0xffff;
    }
    set16(f, at, c);
}

fn segment(frame: &[u8], l: &Layout, mss: usize, tcp: bool) -> Vec<Vec<u8>> {
    let header = &frame[..l.payload];
    let payload = &frame[l.payload..];
    let count = payload.len().div_ceil(mss).max(1);
    let ip_id = if l.v6 { 0 } else { get16(frame, l.ip + 4) };
    let udp_no_checksum = !tcp && get16(frame, csum_field(l)) == 0;
    let seq0 = if tcp {
        u32::from_be_bytes([frame[l.l4 + 4], frame[l.l4 + 5], frame[l.l4 + 6], frame[l.l4 + 7]])
    } else {
        0
    };
    let flags0 = if tcp { frame[l.l4 + 13] } else { 0 };
    (0..count)
        .map(|k| {
            let start = (k * mss).min(payload.len());
            let chunk = &payload[start..(start + mss).min(payload.len())];
            let mut f = Vec::with_capacity(header.len() + chunk.len());
            f.extend_from_slice(header);
            f.extend_from_slice(chunk);
            let l4_len = f.len() - l.l4;
            let k16 = u16::try_from(k).unwrap_or(0);
            if l.v6 {
                let payload_length = u16::try_from(f.len() - l.ip - 40).unwrap_or(0);
                set16(&mut f, l.ip + 4, payload_length);
            } else {
                let total_length = u16::try_from(f.len() - l.ip).unwrap_or(0);
                set16(&mut f, l.ip + 2, total_length);
                // LSOv2: IDs count modulo 0x8000 (0x8000.. is reserved for chimney); USO: modulo 0x10000.
                let id = if tcp { ip_id.wrapping_add(k16) & 0x7fff } else { ip_id.wrapping_add(k16) };
                set16(&mut f, l.ip + 4, id);
                set16(&mut f, l.ip + 10, 0);
                let c = checksum(&f[l.ip..l.l4]);
                set16(&mut f, l.ip + 10, c);
            }
            if tcp {
                let seq = seq0.wrapping_add(u32::try_from(start).unwrap_or(0));
                f[l.l4 + 4..l.l4 + 8].copy_from_slice(&seq.to_be_bytes());
                if k + 1 != count {
                    f[l.l4 + 13] = flags0 & !(TCP_FIN | TCP_PSH);
                }
            } else {
                set16(&mut f, l.l4 + 4, u16::try_from(l4_len).unwrap_or(0));
            }
            if !udp_no_checksum {
                finish_l4(&mut f, l, Some(u32::try_from(l4_len).unwrap_or(0)));
            }
            f
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Receive marks
// ---------------------------------------------------------------------------------------------------------

/// The Microsoft default RSS secret key (the key of the RSS verification suite).
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0,
    0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42,
    0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key` (the RSS hash function).
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let mut result = 0u32;
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, &byte) in input.iter().enumerate() {
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                result ^= window;
            }
            let incoming = key.get(i + 4).map_or(0, |k| (k >> bit) & 1);
            window = (window << 1) | u32::from(incoming);
        }
    }
    result
}

/// The RSS hash a NIC computes for an IP frame: (value, `NetBufferListHashInfo` = type | function).
pub fn rss_hash(frame: &[u8]) -> Option<(u32, u32)> {
    let l = layout(frame)?;
    let (src, dst) = addrs(frame, &l);
    let mut input = src;
    input.extend_from_slice(&dst);
    input.extend_from_slice(&frame[l.l4..l.l4 + 4]);
    let kind = match (l.v6, l.proto) {
        (false, Proto::Tcp) => NDIS_HASH_TCP_IPV4,
        (true, Proto::Tcp) => NDIS_HASH_TCP_IPV6,
        (false, Proto::Udp) => NDIS_HASH_UDP_IPV4,
        (true, Proto::Udp) => NDIS_HASH_UDP_IPV6,
    };
    Some((toeplitz(&RSS_KEY, &input), kind | NdisHashFunctionToeplitz))
}

/// The receive checksum marks a NIC sets on a frame it validated (`TcpIpChecksumNetBufferListInfo`,
/// receive view): IpChecksumSucceeded (IPv4) and TcpChecksumSucceeded or UdpChecksumSucceeded, or the
/// matching Failed bits.
pub fn rx_checksum_marks(frame: &[u8], o: &Offloads) -> u32 {
    let Some(l) = layout(frame) else { return 0 };
    if !(if l.v6 { o.checksum_v6 } else { o.checksum_v4 }) {
        return 0;
    }
    let ok = verify_packet(frame).is_ok();
    let mut marks = 0;
    if !l.v6 {
        marks |= if checksum(&frame[l.ip..l.l4]) == 0 {
            Csum::RX_IP_CHECKSUM_SUCCEEDED
        } else {
            Csum::RX_IP_CHECKSUM_FAILED
        };
    }
    marks |= match (l.proto, ok) {
        (Proto::Tcp, true) => Csum::RX_TCP_CHECKSUM_SUCCEEDED,
        (Proto::Tcp, false) => Csum::RX_TCP_CHECKSUM_FAILED,
        (Proto::Udp, true) => Csum::RX_UDP_CHECKSUM_SUCCEEDED,
        (Proto::Udp, false) => Csum::RX_UDP_CHECKSUM_FAILED,
    };
    marks
}

/// Checks what the protocol receives: a valid packet whose payload is the pattern of its send, and
/// receive marks that tell the truth about *this* frame (a checksum reported as succeeded must be right;
/// an RSS hash must be this frame's). Returns the send id.
pub fn check_received(frame: &[u8], marks: u32, hash_value: u32, hash_info: u32) -> Result<u16, String> {
    let l = verify_packet(frame)?;
    let id = get16(frame, l.l4 + 2).wrapping_sub(PORT_BASE);
    let offset = match l.proto {
        Proto::Tcp => {
            u32::from_be_bytes([frame[l.l4 + 4], frame[l.l4 + 5], frame[l.l4 + 6], frame[l.l4 + 7]])
                .wrapping_sub(TCP_ISN) as usize
        }
        Proto::Udp => 0,
    };
    if frame[l.payload..].iter().enumerate().any(|(i, &b)| b != payload_byte(id, offset + i)) {
        return Err(format!("payload of send {id} corrupted"));
    }
    let claims_ok =
        Csum::RX_IP_CHECKSUM_SUCCEEDED | Csum::RX_TCP_CHECKSUM_SUCCEEDED | Csum::RX_UDP_CHECKSUM_SUCCEEDED;
    if marks & claims_ok != 0 {
        let wrong_proto = match l.proto {
            Proto::Tcp => marks & Csum::RX_UDP_CHECKSUM_SUCCEEDED != 0,
            Proto::Udp => marks & Csum::RX_TCP_CHECKSUM_SUCCEEDED != 0,
        };
        if wrong_proto || (l.v6 && marks & Csum::RX_IP_CHECKSUM_SUCCEEDED != 0) {
            return Err(format!(
                "receive checksum marks {marks:#x} do not describe this {:?} packet",
                l.proto
            ));
        }
    }
    if hash_info & 0x00ff_ff00 != 0 {
        match rss_hash(frame) {
            Some((value, info)) if value == hash_value && info == hash_info => {}
            _ => return Err(format!("RSS hash {hash_value:#010x} ({hash_info:#x}) is not this packet's")),
        }
    }
    Ok(id)
}

/// Reassembles IP send `id` from wire packets (every one already verified): TCP by sequence number, UDP
/// datagrams in wire order. Returns the payload.
pub fn reassemble(packets: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        let Some(l) = layout(p) else { continue };
        let data = &p[l.payload..];
        match l.proto {
            Proto::Tcp => {
                let seq = u32::from_be_bytes([p[l.l4 + 4], p[l.l4 + 5], p[l.l4 + 6], p[l.l4 + 7]]);
                let at = seq.wrapping_sub(TCP_ISN) as usize;
                if out.len() < at + data.len() {
                    out.resize(at + data.len(), 0);
                }
                out[at..at + data.len()].copy_from_slice(data);
            }
            Proto::Udp => out.extend_from_slice(data),
        }
    }
    out
}

/// The send id a wire packet belongs to (from its source port).
pub fn send_id(frame: &[u8]) -> Option<u16> {
    let l = layout(frame)?;
    Some(get16(frame, l.l4).wrapping_sub(PORT_BASE))
}
