//! Task offloads: Internet checksums, the packets the simulated TCP/IP stack builds with and without
//! offloads, the NIC's segmentation of LSOv2/USO super-packets, the `NDIS_OFFLOAD` the NIC advertises, the
//! LSO completion information, the receive marks, and the `offload.not_advertised` rule.
use kernel::ffi::nbl::{
    NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO as Csum,
    NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO as Lso, NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE,
    NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO as Uso,
};
use kernel::ffi::ndis::{
    NDIS_STATUS_BUFFER_TOO_SHORT, NDIS_STATUS_SUCCESS, NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG,
};
use kernel::ffi::oid::{NdisRequestQueryInformation, OID_TCP_OFFLOAD_CURRENT_CONFIG};
use winsim::datapath::{self, NicConfig};
use winsim::offload::{self, IpSend, Offloads, Proto};
use winsim::Machine;

const DST: [u8; 6] = [2, 0, 0, 0, 0, 0x99];
const SRC: [u8; 6] = [2, 0x52, 0x44, 0x43, 0x4f, 1];

fn send(v6: bool, proto: Proto, payload_len: usize, mss: u16) -> IpSend {
    IpSend { v6, proto, payload_len, request_checksum: true, mss }
}

fn get16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

fn expected(id: u16, len: usize) -> Vec<u8> {
    (0..len).map(|i| offload::payload_byte(id, i)).collect()
}

#[test]
fn internet_checksum_vectors() {
    // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (folded), the checksum its complement.
    let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(offload::fold(offload::sum(&data, 0)), 0xddf2);
    assert_eq!(offload::checksum(&data), !0xddf2);
    // A real IPv4 header (checksum b861 in place) sums to zero.
    let header = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0,
        0xa8, 0x00, 0xc7,
    ];
    assert_eq!(offload::checksum(&header), 0);
    // Odd length: the last byte is padded with zero.
    assert_eq!(offload::fold(offload::sum(&[0xab], 0)), 0xab00);
}

#[test]
fn toeplitz_matches_the_rss_verification_suite() {
    // "Verifying the RSS Hash Calculation": 66.9.149.187:2794 -> 161.142.100.80:1766.
    let src = [66, 9, 149, 187];
    let dst = [161, 142, 100, 80];
    let mut input = src.to_vec();
    input.extend_from_slice(&dst);
    assert_eq!(offload::toeplitz(&offload::RSS_KEY, &input), 0x323e_8fc2);
    input.extend_from_slice(&2794u16.to_be_bytes());
    input.extend_from_slice(&1766u16.to_be_bytes());
    assert_eq!(offload::toeplitz(&offload::RSS_KEY, &input), 0x51cc_c178);
}

#[test]
fn software_path_segments_and_checksums_every_packet() {
    for (v6, proto) in [(false, Proto::Tcp), (true, Proto::Tcp), (false, Proto::Udp), (true, Proto::Udp)] {
        let s = send(v6, proto, 10_000, 1400);
        let packets = offload::protocol_packets(DST, SRC, &s, 7, None);
        assert_eq!(packets.len(), 8, "{v6} {proto:?}");
        for p in &packets {
            assert_eq!((p.checksum, p.lso, p.uso), (0, 0, 0));
            offload::verify_packet(&p.frame).unwrap();
            // The NIC leaves a frame that asks for nothing as it is.
            assert_eq!(offload::nic_transmit(&p.frame, 0, 0, 0), vec![p.frame.clone()]);
        }
        let frames: Vec<&[u8]> = packets.iter().map(|p| p.frame.as_slice()).collect();
        assert_eq!(offload::reassemble(&frames), expected(7, 10_000));
    }
}

#[test]
fn checksum_offload_request_leaves_the_pseudo_header_sum_and_the_nic_completes_it() {
    for (v6, proto) in [(false, Proto::Tcp), (true, Proto::Tcp), (false, Proto::Udp), (true, Proto::Udp)] {
        let s = send(v6, proto, 1000, 1400);
        let packets = offload::protocol_packets(DST, SRC, &s, 3, Some(&Offloads::default()));
        assert_eq!(packets.len(), 1);
        let p = &packets[0];
        let info = Csum(p.checksum);
        let header = if v6 { 54 } else { 34 };
        assert_eq!(info.tx_tcp_header_offset(), header);
        assert_eq!(p.checksum & Csum::TX_IS_IPV4 != 0, !v6);
        assert_eq!(p.checksum & Csum::TX_IS_IPV6 != 0, v6);
        assert_eq!(p.checksum & Csum::TX_IP_HEADER_CHECKSUM != 0, !v6);
        assert_eq!(p.checksum & Csum::TX_TCP_CHECKSUM != 0, proto == Proto::Tcp);
        assert_eq!(p.checksum & Csum::TX_UDP_CHECKSUM != 0, proto == Proto::Udp);
        // The transport leaves the pseudo-header sum (with the length) and a zero IPv4 header checksum.
        let l = offload::layout(&p.frame).unwrap();
        let (src, dst) = if v6 {
            (offload::V6_LOCAL.to_vec(), offload::V6_PEER.to_vec())
        } else {
            (offload::V4_LOCAL.to_vec(), offload::V4_PEER.to_vec())
        };
        let number = if proto == Proto::Tcp { 6 } else { 17 };
        let field = if proto == Proto::Tcp { l.l4 + 16 } else { l.l4 + 6 };
        let l4_len = u32::try_from(p.frame.len() - l.l4).unwrap();
        assert_eq!(get16(&p.frame, field), offload::pseudo_sum(&src, &dst, number, Some(l4_len)));
        if !v6 {
            assert_eq!(get16(&p.frame, l.ip + 10), 0);
        }
        assert!(offload::verify_packet(&p.frame).is_err(), "not yet a valid packet");
        let wire = offload::nic_transmit(&p.frame, p.checksum, 0, 0);
        assert_eq!(wire.len(), 1);
        offload::verify_packet(&wire[0]).unwrap();
    }
}

#[test]
fn lso_v2_super_packet_is_segmented_as_the_docs_require() {
    for v6 in [false, true] {
        let mss = 1460u16;
        let s = send(v6, Proto::Tcp, 65_536, mss);
        let packets = offload::protocol_packets(DST, SRC, &s, 11, Some(&Offloads::default()));
        assert_eq!(packets.len(), 1, "one super-packet");
        let mut p = packets[0].clone();
        let info = Lso(p.lso);
        assert_eq!(info.lso_type(), NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE);
        assert_eq!(info.mss(), u32::from(mss));
        assert_eq!(info.tcp_header_offset(), if v6 { 54 } else { 34 });
        assert_eq!(info.ip_version(), u32::from(v6));
        assert_eq!((p.checksum, p.uso), (0, 0));
        let l = offload::layout(&p.frame).unwrap();
        // Length fields 0 (the NIC takes the length from the NB), pseudo-header sum without the length.
        assert_eq!(get16(&p.frame, if v6 { l.ip + 4 } else { l.ip + 2 }), 0);
        let (src, dst) = if v6 {
            (offload::V6_LOCAL.to_vec(), offload::V6_PEER.to_vec())
        } else {
            (offload::V4_LOCAL.to_vec(), offload::V4_PEER.to_vec())
        };
        assert_eq!(get16(&p.frame, l.l4 + 16), offload::pseudo_sum(&src, &dst, 6, None));
        if !v6 {
            // IP IDs count modulo 0x8000: start just below the wrap.
            p.frame[l.ip + 4..l.ip + 6].copy_from_slice(&0x7ffeu16.to_be_bytes());
        }
        assert!(offload::check_request(&Offloads::default(), 0, p.lso, 0, 1, &p.frame).is_none());
        let wire = offload::nic_transmit(&p.frame, 0, p.lso, 0);
        assert_eq!(wire.len(), 65_536usize.div_ceil(1460));
        for (k, w) in wire.iter().enumerate() {
            let wl = offload::verify_packet(w).unwrap_or_else(|e| panic!("segment {k}: {e}"));
            let payload = w.len() - wl.payload;
            let last = k + 1 == wire.len();
            assert_eq!(payload, if last { 65_536 % 1460 } else { 1460 });
            let seq = u32::from_be_bytes([w[wl.l4 + 4], w[wl.l4 + 5], w[wl.l4 + 6], w[wl.l4 + 7]]);
            assert_eq!(seq, offload::TCP_ISN + u32::try_from(k * 1460).unwrap());
            assert_eq!(w[wl.l4 + 13] & 0x08 != 0, last, "PSH only on the last segment");
            if !v6 {
                let id = get16(w, wl.ip + 4);
                assert_eq!(id, (0x7ffe + u16::try_from(k).unwrap()) & 0x7fff);
            }
        }
        let frames: Vec<&[u8]> = wire.iter().map(Vec::as_slice).collect();
        assert_eq!(offload::reassemble(&frames), expected(11, 65_536));
    }
}

#[test]
fn uso_super_packet_becomes_datagrams_of_mss_bytes() {
    for v6 in [false, true] {
        let s = send(v6, Proto::Udp, 60_000, 1200);
        let packets = offload::protocol_packets(DST, SRC, &s, 5, Some(&Offloads::default()));
        assert_eq!(packets.len(), 1);
        let mut p = packets[0].clone();
        let info = Uso(p.uso);
        assert_eq!(
            (info.mss(), info.udp_header_offset(), info.ip_version()),
            (1200, if v6 { 54 } else { 34 }, u32::from(v6))
        );
        let l = offload::layout(&p.frame).unwrap();
        if !v6 {
            // USO IP IDs count modulo 0x10000.
            p.frame[l.ip + 4..l.ip + 6].copy_from_slice(&0xfffeu16.to_be_bytes());
        }
        let wire = offload::nic_transmit(&p.frame, 0, 0, p.uso);
        assert_eq!(wire.len(), 50);
        for (k, w) in wire.iter().enumerate() {
            let wl = offload::verify_packet(w).unwrap();
            assert_eq!(usize::from(get16(w, wl.l4 + 4)), 8 + 1200);
            if !v6 {
                assert_eq!(get16(w, wl.ip + 4), 0xfffeu16.wrapping_add(u16::try_from(k).unwrap()));
            }
        }
        let frames: Vec<&[u8]> = wire.iter().map(Vec::as_slice).collect();
        assert_eq!(offload::reassemble(&frames), expected(5, 60_000));
    }
}

#[test]
fn the_stack_only_offloads_what_was_advertised() {
    let limited = Offloads { lso_max: 16_000, lso_min_segments: 4, uso: false, ..Offloads::default() };
    // Too big for MaxOffLoadSize: the stack segments itself.
    let big = offload::protocol_packets(DST, SRC, &send(false, Proto::Tcp, 20_000, 1000), 1, Some(&limited));
    assert_eq!(big.len(), 20);
    assert!(big.iter().all(|p| p.lso == 0 && p.checksum != 0));
    // Fewer than MinSegmentCount segments: no LSO either.
    let few = offload::protocol_packets(DST, SRC, &send(false, Proto::Tcp, 3000, 1000), 1, Some(&limited));
    assert_eq!(few.len(), 3);
    let fits = offload::protocol_packets(DST, SRC, &send(false, Proto::Tcp, 8000, 1000), 1, Some(&limited));
    assert_eq!(fits.len(), 1);
    assert_ne!(fits[0].lso, 0);
    // No USO advertised: datagrams of MSS bytes, software-segmented.
    let udp = offload::protocol_packets(DST, SRC, &send(true, Proto::Udp, 5000, 1000), 1, Some(&limited));
    assert_eq!(udp.len(), 5);
    assert!(udp.iter().all(|p| p.uso == 0));
}

#[test]
fn requests_beyond_the_advertisement_are_named() {
    let all = Offloads::default();
    let lso = offload::protocol_packets(DST, SRC, &send(false, Proto::Tcp, 30_000, 1000), 1, Some(&all));
    let p = &lso[0];
    let none = Offloads::none();
    assert!(offload::check_request(&none, 0, p.lso, 0, 1, &p.frame).unwrap().contains("not advertised"));
    let small = Offloads { lso_max: 20_000, ..all };
    assert!(offload::check_request(&small, 0, p.lso, 0, 1, &p.frame).unwrap().contains("MaxOffLoadSize"));
    let min = Offloads { lso_min_segments: 40, ..all };
    assert!(offload::check_request(&min, 0, p.lso, 0, 1, &p.frame).unwrap().contains("MinSegmentCount"));
    assert!(offload::check_request(&all, 0, p.lso, 0, 2, &p.frame).unwrap().contains("NET_BUFFER"));
    let v1 = Lso(p.lso & !(1 << 30)).0;
    assert!(offload::check_request(&all, 0, v1, 0, 1, &p.frame).unwrap().contains("LSOv1"));
    let csum = Csum::TX_IS_IPV6 | Csum::TX_TCP_CHECKSUM;
    let v4_only = Offloads { checksum_v6: false, ..all };
    assert!(offload::check_request(&v4_only, csum, 0, 0, 1, &p.frame).unwrap().contains("IPv6"));
    assert!(offload::check_request(&all, csum, 0, 0, 1, &p.frame).is_none());
}

#[test]
fn ndis_offload_bytes_follow_the_revision_6_layout() {
    let b = offload::ndis_offload_bytes(&Offloads::default());
    assert_eq!(b.len(), 216);
    assert_eq!(&b[..4], &[0xA7, 6, 216, 0], "Header: NDIS_OBJECT_TYPE_OFFLOAD, revision 6, size 216");
    let u = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    // Checksum: IPv4Transmit/Receive (802.3, 0x155), IPv6Transmit/Receive (802.3, 0x55).
    assert_eq!(
        [u(4), u(8), u(12), u(16), u(20), u(24), u(28), u(32)],
        [2, 0x155, 2, 0x155, 2, 0x55, 2, 0x55]
    );
    assert!(b[36..80].iter().all(|&x| x == 0), "no LSOv1, no IPsec v1");
    assert_eq!([u(80), u(84), u(88), u(92), u(96), u(100), u(104)], [2, 65_536, 2, 2, 65_536, 2, 5]);
    assert!(b[108..188].iter().all(|&x| x == 0), "Flags 0, no IPsec v2, RSC or encapsulated offloads");
    assert_eq!(
        [u(188), u(192), u(196), u(200), u(204), u(208), u(212)],
        [2, 65_536, 0x42, 2, 65_536, 0x42, 1]
    );
    assert_eq!(offload::parse_ndis_offload(&b), Some(Offloads::default()));
    let none = offload::ndis_offload_bytes(&Offloads::none());
    assert!(none[4..].iter().all(|&x| x == 0));
    assert_eq!(
        offload::parse_ndis_offload(&none).map(|o| (o.checksum_v4, o.lso_v2, o.uso)),
        Some((false, false, false))
    );
    // A revision-5 report (188 bytes) has no USO member.
    let mut short = b[..188].to_vec();
    short[2] = 188;
    assert_eq!(offload::parse_ndis_offload(&short).map(|o| o.uso), Some(false));
}

fn nic() -> u32 {
    datapath::add_nic(NicConfig::ethernet(1)).unwrap();
    1
}

#[test]
fn the_nic_answers_the_offload_oid_and_announces_its_configuration() {
    let machine = Machine::boot();
    let n = nic();
    let r = winsim::oid::protocol_request(
        n,
        NdisRequestQueryInformation,
        OID_TCP_OFFLOAD_CURRENT_CONFIG,
        &[0; 100],
    );
    assert_eq!((r.status, r.bytes_needed), (NDIS_STATUS_BUFFER_TOO_SHORT, 216));
    assert_eq!(datapath::protocol_offloads(n), None, "nothing seen yet");
    let r = datapath::protocol_query_offloads(n);
    assert_eq!((r.status, r.bytes), (NDIS_STATUS_SUCCESS, 216));
    assert_eq!(r.buffer, offload::ndis_offload_bytes(&Offloads::default()));
    assert_eq!(datapath::protocol_offloads(n), Some(Offloads::default()));
    datapath::nic_announce_offloads(n);
    assert!(datapath::protocol_status(n).contains(&NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG));
    assert_eq!(datapath::protocol_offload_bytes(n), Some(offload::ndis_offload_bytes(&Offloads::default())));
    assert!(machine.shutdown().is_empty());
}

#[test]
fn offloaded_sends_reach_the_wire_correct_and_lso_completes_with_v2_info() {
    let machine = Machine::boot();
    let n = nic();
    datapath::nic_announce_offloads(n);
    let sends = [
        send(false, Proto::Tcp, 65_536, 1460),
        send(true, Proto::Tcp, 40_000, 1440),
        send(false, Proto::Udp, 65_000, 1472),
        send(true, Proto::Udp, 64_000, 1000),
        send(false, Proto::Tcp, 100, 1460),
        send(true, Proto::Udp, 1, 1452),
        IpSend { request_checksum: false, ..send(false, Proto::Tcp, 3000, 1460) },
    ];
    let nbls = datapath::protocol_send_ip(n, &sends);
    assert_eq!(
        nbls,
        5 + 2,
        "five super-packets (LSO does not depend on checksum requests), two small packets"
    );
    datapath::pump();
    let ledger = datapath::ledger(n);
    assert_eq!((ledger.sent, ledger.completed, ledger.owed()), (7, 7, 0));
    assert_eq!(ledger.super_packets, 5);
    assert_eq!(ledger.lso_completed, 3);
    let report = datapath::check_ip_wire(n).unwrap();
    assert_eq!(report.sends_intact, 7);
    assert_eq!(report.sends_missing, 0);
    assert_eq!(report.packets, ledger.on_wire);
    assert_eq!(report.payload_bytes, sends.iter().map(|s| s.payload_len as u64).sum::<u64>());
    assert!(machine.shutdown().is_empty());
}

#[test]
fn without_the_announcement_the_stack_does_everything_itself() {
    let machine = Machine::boot();
    let n = nic();
    let nbls = datapath::protocol_send_ip(n, &[send(true, Proto::Tcp, 10_000, 1000)]);
    assert_eq!(nbls, 10);
    datapath::pump();
    assert_eq!(datapath::ledger(n).super_packets, 0);
    assert_eq!(datapath::check_ip_wire(n).unwrap().sends_intact, 1);
    assert!(machine.shutdown().is_empty());
}

#[test]
fn a_send_the_nic_did_not_advertise_trips_offload_not_advertised() {
    let machine = Machine::boot();
    let mut config = NicConfig::ethernet(1);
    config.offloads = Offloads { lso_v2: false, ..Offloads::default() };
    datapath::add_nic(config).unwrap();
    // Something above claims more than the miniport offers (as a filter rewriting the indication might).
    let mut lie = offload::ndis_offload_bytes(&Offloads::default());
    datapath::nic_indicate_status(1, NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG, &mut lie);
    datapath::protocol_send_ip(1, &[send(false, Proto::Tcp, 20_000, 1460)]);
    datapath::pump();
    // The NIC fails what it cannot do: nothing on the wire, the send completed with NDIS_STATUS_FAILURE.
    let ledger = datapath::ledger(1);
    assert!(datapath::wire(1).is_empty());
    assert_eq!(ledger.failed.get(&kernel::ffi::ndis::NDIS_STATUS_FAILURE), Some(&1));
    assert_eq!(ledger.lso_completed, 0);
    let rules: Vec<&str> = machine.shutdown().iter().map(|v| v.rule.name()).collect();
    assert_eq!(rules, ["offload.not_advertised"]);
}

#[test]
fn receive_marks_are_checked_by_the_protocol() {
    let machine = Machine::boot();
    let n = nic();
    let packets = [
        send(false, Proto::Tcp, 1400, 1460),
        send(true, Proto::Udp, 1000, 1452),
        send(true, Proto::Tcp, 1, 1440),
    ];
    assert_eq!(datapath::nic_indicate_ip(n, &packets, false, true), 3);
    assert_eq!(datapath::nic_indicate_ip(n, &packets, true, true), 3);
    datapath::pump();
    let ledger = datapath::ledger(n);
    assert_eq!((ledger.received_ok, ledger.received_corrupt), (6, 0));
    // Marks that do not describe the frame are rejected.
    let frame = offload::inbound_frame(SRC, DST, &packets[0], 9);
    let marks = offload::rx_checksum_marks(&frame, &Offloads::default());
    assert_eq!(marks, Csum::RX_IP_CHECKSUM_SUCCEEDED | Csum::RX_TCP_CHECKSUM_SUCCEEDED);
    let (hash, info) = offload::rss_hash(&frame).unwrap();
    assert_eq!(offload::check_received(&frame, marks, hash, info), Ok(9));
    assert!(offload::check_received(&frame, marks, hash ^ 1, info).is_err());
    assert!(offload::check_received(&frame, Csum::RX_UDP_CHECKSUM_SUCCEEDED, 0, 0).is_err());
    assert!(machine.shutdown().is_empty());
}
