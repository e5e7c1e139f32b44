//! Layout tests of the control API: IOCTL code values, sizes and offsets, golden bytes, round trips, short
//! buffers and bad values. Nothing may panic on any input.
#![allow(clippy::many_single_char_names)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use uapi::ovpn::*;
use uapi::rdco_filter::*;
use uapi::{ioctl, UapiError, Wire};

// ---------------------------------------------------------------------------------------------------------
// IOCTL codes
// ---------------------------------------------------------------------------------------------------------

// CTL_CODE(FILE_DEVICE_UNKNOWN = 0x22, n, METHOD_BUFFERED = 0, FILE_ANY_ACCESS = 0)
//   = 0x22 << 16 | 0 << 14 | n << 2 | 0 = 0x0022_0000 + 4n, worked out by hand for each n.
#[test]
fn ovpn_ioctl_codes_are_the_header_values() {
    let table: [(u32, u32, &str); 19] = [
        (OVPN_IOCTL_NEW_PEER, 0x0022_0004, "OVPN_IOCTL_NEW_PEER"),
        (OVPN_IOCTL_GET_STATS, 0x0022_0008, "OVPN_IOCTL_GET_STATS"),
        (OVPN_IOCTL_NEW_KEY, 0x0022_000C, "OVPN_IOCTL_NEW_KEY"),
        (OVPN_IOCTL_SWAP_KEYS, 0x0022_0010, "OVPN_IOCTL_SWAP_KEYS"),
        (OVPN_IOCTL_SET_PEER, 0x0022_0014, "OVPN_IOCTL_SET_PEER"),
        (OVPN_IOCTL_START_VPN, 0x0022_0018, "OVPN_IOCTL_START_VPN"),
        (OVPN_IOCTL_DEL_PEER, 0x0022_001C, "OVPN_IOCTL_DEL_PEER"),
        (OVPN_IOCTL_GET_VERSION, 0x0022_0020, "OVPN_IOCTL_GET_VERSION"),
        (OVPN_IOCTL_NEW_KEY_V2, 0x0022_0024, "OVPN_IOCTL_NEW_KEY_V2"),
        (OVPN_IOCTL_SET_MODE, 0x0022_0028, "OVPN_IOCTL_SET_MODE"),
        (OVPN_IOCTL_MP_START_VPN, 0x0022_002C, "OVPN_IOCTL_MP_START_VPN"),
        (OVPN_IOCTL_MP_NEW_PEER, 0x0022_0030, "OVPN_IOCTL_MP_NEW_PEER"),
        (OVPN_IOCTL_MP_SET_PEER, 0x0022_0034, "OVPN_IOCTL_MP_SET_PEER"),
        (OVPN_IOCTL_NOTIFY_EVENT, 0x0022_0038, "OVPN_IOCTL_NOTIFY_EVENT"),
        (OVPN_IOCTL_MP_DEL_PEER, 0x0022_003C, "OVPN_IOCTL_MP_DEL_PEER"),
        (OVPN_IOCTL_MP_SWAP_KEYS, 0x0022_0040, "OVPN_IOCTL_MP_SWAP_KEYS"),
        (OVPN_IOCTL_MP_ADD_IROUTE, 0x0022_0044, "OVPN_IOCTL_MP_ADD_IROUTE"),
        (OVPN_IOCTL_MP_DEL_IROUTE, 0x0022_0048, "OVPN_IOCTL_MP_DEL_IROUTE"),
        (OVPN_IOCTL_GET_PEER_STATS, 0x0022_004C, "OVPN_IOCTL_GET_PEER_STATS"),
    ];
    for (i, (code, literal, name)) in table.iter().enumerate() {
        let n = u32::try_from(i).unwrap() + 1;
        assert_eq!(*code, *literal, "{name}");
        assert_eq!(*code, ioctl::ctl_code(0x22, n, 0, 0), "{name}");
        assert_eq!(ioctl::function_of(*code), n, "{name}");
        let e = OvpnIoctl::from_code(*code).unwrap();
        assert_eq!(e, OvpnIoctl::ALL[i]);
        assert_eq!(e.code(), *code);
        assert_eq!(e.name(), *name);
    }
    assert_eq!(OvpnIoctl::from_code(0x0022_0050), None);
    assert_eq!(OvpnIoctl::from_code(0), None);
}

// CTL_CODE(0x22, 0x800 + n, 0, 0) = 0x0022_0000 + (0x800 + n) * 4 = 0x0022_2000 + 4n.
#[test]
fn rdco_filter_ioctl_codes() {
    let table: [(u32, u32); 12] = [
        (IOCTL_RDCO_FILTER_SET_POLICY, 0x0022_2004),
        (IOCTL_RDCO_FILTER_ADD_PEER, 0x0022_2008),
        (IOCTL_RDCO_FILTER_DEL_PEER, 0x0022_200C),
        (IOCTL_RDCO_FILTER_NEW_KEY, 0x0022_2010),
        (IOCTL_RDCO_FILTER_SWAP_KEYS, 0x0022_2014),
        (IOCTL_RDCO_FILTER_SET_KEEPALIVE, 0x0022_2018),
        (IOCTL_RDCO_FILTER_GET_STATS, 0x0022_201C),
        (IOCTL_RDCO_FILTER_READ_EVENT, 0x0022_2020),
        (IOCTL_RDCO_FILTER_SET_HOLD_POLICY, 0x0022_2024),
        (IOCTL_RDCO_FILTER_GET_HOLD_POLICY, 0x0022_2028),
        (IOCTL_RDCO_FILTER_SET_PEER_ROUTES, 0x0022_202C),
        (IOCTL_RDCO_FILTER_LIST_MODULES, 0x0022_2030),
    ];
    for (i, (code, literal)) in table.iter().enumerate() {
        assert_eq!(code, literal);
        assert_eq!(ioctl::function_of(*code), 0x801 + u32::try_from(i).unwrap());
        assert_eq!(RdcoFilterIoctl::from_code(*code).unwrap(), RdcoFilterIoctl::ALL[i]);
        // Never collides with an ovpn-dco-win code.
        assert_eq!(OvpnIoctl::from_code(*code), None);
    }
}

#[test]
fn ioctl_buffer_sizes() {
    assert_eq!(OvpnIoctl::NewPeer.input_len(), 60);
    assert_eq!(OvpnIoctl::NewKey.input_len(), 100);
    assert_eq!(OvpnIoctl::NewKeyV2.input_len(), 104);
    assert_eq!(OvpnIoctl::GetStats.output_len(), 64);
    assert_eq!(OvpnIoctl::NotifyEvent.output_len(), 144);
    assert_eq!(OvpnIoctl::GetPeerStats.output_len(), 40);
    assert_eq!(OvpnIoctl::SwapKeys.input_len() + OvpnIoctl::SwapKeys.output_len(), 0);
    assert_eq!(RdcoFilterIoctl::NewKey.input_len(), 108);
    assert_eq!(RdcoFilterIoctl::GetStats.output_len(), 272);
    assert_eq!(RdcoFilterIoctl::SetHoldPolicy.input_len(), 20);
    assert_eq!(RdcoFilterIoctl::SetHoldPolicy.output_len(), 0);
    assert_eq!(RdcoFilterIoctl::GetHoldPolicy.input_len(), 0);
    assert_eq!(RdcoFilterIoctl::GetHoldPolicy.output_len(), 20);
}

// ---------------------------------------------------------------------------------------------------------
// Sizes and offsets (the C layout worked out by hand: enum/int/LONG 4 bytes, LONG64 8-aligned, sockaddr
// unions 28 bytes 4-aligned, sockaddr_storage 128 bytes 8-aligned, OVPN_KEY_DIRECTION 41 bytes 1-aligned)
// ---------------------------------------------------------------------------------------------------------

#[test]
fn sizes_and_offsets() {
    assert_eq!(OvpnNewPeer::SIZE, 60);
    assert_eq!((new_peer::LOCAL, new_peer::REMOTE, new_peer::PROTO), (0, 28, 56));
    assert_eq!(OvpnMpNewPeer::SIZE, 80);
    assert_eq!(
        (
            mp_new_peer::LOCAL,
            mp_new_peer::REMOTE,
            mp_new_peer::VPN_ADDR4,
            mp_new_peer::VPN_ADDR6,
            mp_new_peer::PEER_ID
        ),
        (0, 28, 56, 60, 76)
    );
    assert_eq!(OvpnStats::SIZE, 64);
    assert_eq!(
        (
            uapi::ovpn::stats::SENT_DATA_PACKETS,
            uapi::ovpn::stats::TRANSPORT_BYTES_SENT,
            uapi::ovpn::stats::TUN_BYTES_RECEIVED
        ),
        (28, 32, 56)
    );
    assert_eq!(OvpnPeerStats::SIZE, 40);
    assert_eq!((peer_stats::PEER_ID, peer_stats::LINK_RX_BYTES, peer_stats::VPN_TX_BYTES), (0, 8, 32));
    assert_eq!(OvpnKeyDirection::SIZE, 41);
    assert_eq!((key_direction::KEY, key_direction::KEY_LEN, key_direction::NONCE_TAIL), (0, 32, 33));
    assert_eq!(OvpnCryptoData::SIZE, 100);
    assert_eq!(
        (
            crypto_data::ENCRYPT,
            crypto_data::DECRYPT,
            crypto_data::KEY_SLOT,
            crypto_data::CIPHER_ALG,
            crypto_data::KEY_ID,
            crypto_data::PEER_ID,
            crypto_data::CRYPTO_OPTIONS
        ),
        (0, 41, 84, 88, 92, 96, 100)
    );
    assert_eq!(OvpnCryptoDataV2::SIZE, 104);
    assert_eq!(OvpnSetPeer::SIZE, 12);
    assert_eq!(OvpnMpSetPeer::SIZE, 16);
    assert_eq!(OvpnVersion::SIZE, 12);
    assert_eq!(OvpnSetMode::SIZE, 4);
    assert_eq!(OvpnMpStartVpn::SIZE, 32);
    assert_eq!(mp_start_vpn::IPV6_ONLY, 28);
    assert_eq!(OvpnNotifyEvent::SIZE, 144);
    assert_eq!(notify_event::FLOAT_ADDRESS, 16);
    assert_eq!(OvpnMpDelPeer::SIZE, 4);
    assert_eq!(OvpnMpSwapKeys::SIZE, 4);
    assert_eq!(OvpnGetPeerStats::SIZE, 4);
    assert_eq!(OvpnMpIroute::SIZE, 28);
    assert_eq!((mp_iroute::NETBITS, mp_iroute::PEER_ID, mp_iroute::IPV6), (16, 20, 24));
    assert_eq!(CRYPTO_OPTIONS_EPOCH, 2);
    assert_eq!(RdcoSetPolicy::SIZE, 328);
    assert_eq!(RdcoAddPeer::SIZE, 64);
    assert_eq!(RdcoPeerRef::SIZE, 8);
    assert_eq!(RdcoNewKey::SIZE, 108);
    assert_eq!(RdcoKeepalive::SIZE, 20);
    assert_eq!(RdcoStats::SIZE, 272);
    assert_eq!(uapi::rdco_filter::stats::KEEPALIVES_RECEIVED + 8, uapi::rdco_filter::stats::RX_BYPASSED);
    assert_eq!(uapi::rdco_filter::stats::RX_FLOATS + 8, uapi::rdco_filter::stats::HOLDS_BUDGET);
    assert_eq!(uapi::rdco_filter::stats::SEGMENTED + 8, RdcoStats::SIZE);
    assert_eq!(RdcoEvent::SIZE, 44);
    assert_eq!(RdcoPeerRoutes::SIZE, 332);
    assert_eq!((peer_routes::PEER_ID, peer_routes::COUNT, peer_routes::PREFIXES), (4, 8, 12));
    assert_eq!(RdcoStatsQuery::SIZE, 12);
    assert_eq!(stats_query::IF_INDEX, 8);
    assert_eq!(RdcoModuleInfo::SIZE, 152);
    assert_eq!((module_info::NET_LUID, module_info::NAME_LENGTH, module_info::NAME), (8, 16, 24));
    assert_eq!(RdcoModuleList::SIZE, 4872);
    assert_eq!(RdcoFilterIoctl::SetPeerRoutes.input_len(), 332);
    assert_eq!(RdcoFilterIoctl::ListModules.output_len(), 4872);
}

#[test]
fn rdco_peer_routes_round_trip_and_checks() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let prefixes = [
        RdcoPrefix { addr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 0)), prefix_len: 16 },
        RdcoPrefix { addr: IpAddr::V6(Ipv6Addr::LOCALHOST), prefix_len: 128 },
    ];
    let r = RdcoPeerRoutes::new(7, &prefixes).unwrap();
    let mut buf = vec![0u8; RdcoPeerRoutes::SIZE];
    r.write_to(&mut buf).unwrap();
    assert_eq!(&buf[..12], &[0x4C, 1, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(RdcoPeerRoutes::parse(&buf).unwrap(), r);
    assert_eq!(RdcoPeerRoutes::parse(&buf).unwrap().prefixes(), &prefixes);
    assert!(RdcoPeerRoutes::new(7, &[prefixes[0]; 17]).is_err());
    let mut bad = buf.clone();
    bad[8] = 17;
    assert!(matches!(RdcoPeerRoutes::parse(&bad), Err(uapi::UapiError::BadValue { field: "Count", .. })));
    let mut bad = buf.clone();
    bad[4..8].copy_from_slice(&ALL_PEERS.to_le_bytes());
    assert!(matches!(RdcoPeerRoutes::parse(&bad), Err(uapi::UapiError::BadValue { field: "PeerId", .. })));
    let mut bad = buf.clone();
    bad[12 + prefix::PREFIX_LEN] = 33;
    assert!(matches!(
        RdcoPeerRoutes::parse(&bad),
        Err(uapi::UapiError::BadValue { field: "Prefix.PrefixLen", .. })
    ));
    assert!(RdcoPeerRoutes::parse(&buf[..331]).is_err());
}

#[test]
fn rdco_stats_query_versions() {
    let mut v1 = vec![0u8; 8];
    RdcoPeerRef { peer_id: ALL_PEERS }.write_to(&mut v1).unwrap();
    assert_eq!(RdcoStatsQuery::parse(&v1).unwrap(), RdcoStatsQuery { peer_id: ALL_PEERS, if_index: 0 });
    let q = RdcoStatsQuery { peer_id: ALL_PEERS, if_index: 5 };
    let mut v2 = vec![0u8; 12];
    q.write_to(&mut v2).unwrap();
    assert_eq!(RdcoStatsQuery::parse(&v2).unwrap(), q);
    // Version 1 in a longer buffer: the IfIndex bytes are not read.
    let mut long = v1.clone();
    long.extend_from_slice(&9u32.to_le_bytes());
    assert_eq!(RdcoStatsQuery::parse(&long).unwrap().if_index, 0);
    // A peer with a module: bad.
    RdcoStatsQuery { peer_id: 3, if_index: 5 }.write_to(&mut v2).unwrap();
    assert!(matches!(RdcoStatsQuery::parse(&v2), Err(uapi::UapiError::BadValue { field: "IfIndex", .. })));
    // Size 12 declared in an 8-byte buffer.
    let mut short = v1.clone();
    short[0] = 12;
    assert!(RdcoStatsQuery::parse(&short).is_err());
}

#[test]
fn rdco_module_list_round_trip() {
    let mut list = RdcoModuleList::default();
    let name: Vec<u16> = "\\DEVICE\\{NIC-1}".encode_utf16().collect();
    assert!(list.push(RdcoModuleInfo::new(4, module_state::RUNNING, 0x1234, &name)));
    let long: Vec<u16> = (0..100).collect();
    assert!(list.push(RdcoModuleInfo::new(9, module_state::PAUSED, 0, &long)));
    let mut buf = vec![0u8; RdcoModuleList::SIZE];
    list.write_to(&mut buf).unwrap();
    let back = RdcoModuleList::parse(&buf).unwrap();
    assert_eq!(back, list);
    assert_eq!(back.modules()[0].name(), name.as_slice());
    assert_eq!(back.modules()[1].name().len(), MODULE_NAME_LEN);
    assert_eq!(u32::from_le_bytes(buf[8..12].try_into().unwrap()), 4);
    // The streaming form writes the same bytes.
    let mut streamed = vec![0xAAu8; RdcoModuleList::SIZE];
    RdcoModuleList::write_header(&mut streamed).unwrap();
    for (i, m) in list.modules().iter().enumerate() {
        m.write_entry(&mut streamed, i).unwrap();
    }
    RdcoModuleList::write_count(&mut streamed, list.modules().len()).unwrap();
    assert_eq!(streamed, buf);
    assert!(RdcoModuleInfo::default().write_entry(&mut streamed, MAX_MODULES).is_err());
    assert!(RdcoModuleList::write_count(&mut streamed, MAX_MODULES + 1).is_err());
    assert!(RdcoModuleList::write_header(&mut streamed[..100]).is_err());
    for _ in 2..MAX_MODULES {
        assert!(list.push(RdcoModuleInfo::default()));
    }
    assert!(!list.push(RdcoModuleInfo::default()));
}

// ---------------------------------------------------------------------------------------------------------
// Golden bytes
// ---------------------------------------------------------------------------------------------------------

fn crypto_sample() -> OvpnCryptoData {
    OvpnCryptoData {
        encrypt: OvpnKeyDirection {
            key: [0x11; 32],
            key_len: 32,
            nonce_tail: [0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7],
        },
        decrypt: OvpnKeyDirection {
            key: [0x22; 32],
            key_len: 32,
            nonce_tail: [0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7],
        },
        key_slot: OvpnKeySlot::Secondary,
        cipher_alg: OvpnCipherAlg::ChaCha20Poly1305,
        key_id: 5,
        peer_id: 0x0102_0304,
    }
}

fn crypto_golden() -> Vec<u8> {
    let mut g = Vec::new();
    g.extend_from_slice(&[0x11; 32]); // Encrypt.Key        0..32
    g.push(32); //                       Encrypt.KeyLen     32
    g.extend_from_slice(&[0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7]); // Encrypt.NonceTail 33..41
    g.extend_from_slice(&[0x22; 32]); // Decrypt.Key        41..73
    g.push(32); //                       Decrypt.KeyLen     73
    g.extend_from_slice(&[0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7]); // Decrypt.NonceTail 74..82
    g.extend_from_slice(&[0, 0]); //     padding            82..84
    g.extend_from_slice(&[1, 0, 0, 0]); // KeySlot          84..88
    g.extend_from_slice(&[2, 0, 0, 0]); // CipherAlg        88..92
    g.extend_from_slice(&[5, 0, 0, 0]); // KeyId + padding  92..96
    g.extend_from_slice(&[4, 3, 2, 1]); // PeerId           96..100
    g
}

#[test]
fn crypto_data_golden_bytes() {
    let golden = crypto_golden();
    assert_eq!(golden.len(), 100);
    assert_eq!(golden[84], 1);
    assert_eq!(golden[88], 2);
    assert_eq!(golden[92], 5);
    assert_eq!(golden[96..100], [4, 3, 2, 1]);
    let mut out = [0xFFu8; 100];
    assert_eq!(crypto_sample().write_to(&mut out), Ok(100));
    assert_eq!(out.to_vec(), golden);
    assert_eq!(OvpnCryptoData::parse(&golden), Ok(crypto_sample()));

    let v2 = OvpnCryptoDataV2 { v1: crypto_sample(), crypto_options: CRYPTO_OPTIONS_EPOCH };
    let mut out2 = [0xFFu8; 104];
    assert_eq!(v2.write_to(&mut out2), Ok(104));
    assert_eq!(out2[..100].to_vec(), golden);
    assert_eq!(out2[100..], [2, 0, 0, 0]);
    assert!(OvpnCryptoDataV2::parse(&out2).unwrap().epoch());

    // The filter's NEW_KEY is `Size` followed by the same bytes.
    let nk = RdcoNewKey {
        key: OvpnCryptoDataV2 { v1: OvpnCryptoData { peer_id: 7, ..crypto_sample() }, crypto_options: 0 },
    };
    let mut out3 = [0u8; 108];
    assert_eq!(nk.write_to(&mut out3), Ok(108));
    assert_eq!(out3[..4], [108, 0, 0, 0]);
    assert_eq!(out3[4..4 + 96], golden[..96]);
    assert_eq!(out3[100..104], [7, 0, 0, 0]);
}

#[test]
fn new_peer_golden_bytes() {
    let p = OvpnNewPeer {
        local: "0.0.0.0:0".parse().unwrap(),
        remote: "198.51.100.7:1194".parse().unwrap(),
        proto: OvpnProto::Tcp,
    };
    let mut b = [0xFFu8; 60];
    assert_eq!(p.write_to(&mut b), Ok(60));
    let mut g = [0u8; 60];
    g[0] = 2; // Local.sin_family = AF_INET
    g[28] = 2; // Remote.sin_family
    g[30..32].copy_from_slice(&[0x04, 0xAA]); // port 1194, network order
    g[32..36].copy_from_slice(&[198, 51, 100, 7]);
    g[56] = 1; // Proto = TCP
    assert_eq!(b, g);
}

#[test]
fn peer_stats_padding_and_iroute_bytes() {
    let s = OvpnPeerStats {
        peer_id: -1,
        link_rx_bytes: 0x0102,
        link_tx_bytes: 3,
        vpn_rx_bytes: 4,
        vpn_tx_bytes: 5,
    };
    let mut b = [0xFFu8; 40];
    s.write_to(&mut b).unwrap();
    assert_eq!(b[..8], [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]);
    assert_eq!(b[8..10], [2, 1]);

    let r = OvpnMpIroute { addr: IpAddr::V4(Ipv4Addr::new(10, 8, 0, 0)), netbits: 24, peer_id: 9 };
    let mut b = [0xFFu8; 28];
    r.write_to(&mut b).unwrap();
    assert_eq!(b[..16], [10, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(b[16..], [24, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
}

// ---------------------------------------------------------------------------------------------------------
// Round trips, short buffers, no panics
// ---------------------------------------------------------------------------------------------------------

fn v6(s: &str, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(s.parse().unwrap(), port, 0, 0))
}

fn check<T: Wire + PartialEq + std::fmt::Debug>(value: &T) {
    let mut buf = vec![0xA5u8; T::SIZE + 8];
    assert_eq!(value.write_to(&mut buf), Ok(T::SIZE));
    assert_eq!(buf[T::SIZE..], [0xA5; 8], "wrote past SIZE");
    // Round trip, also with trailing bytes.
    assert_eq!(T::parse(&buf[..T::SIZE]).as_ref(), Ok(value));
    assert_eq!(T::parse(&buf).as_ref(), Ok(value));
    // Parse then write gives the same bytes.
    let mut again = vec![0u8; T::SIZE];
    T::parse(&buf).unwrap().write_to(&mut again).unwrap();
    assert_eq!(again, buf[..T::SIZE]);
    // Every shorter input and output is rejected.
    for n in 0..T::SIZE {
        assert_eq!(T::parse(&buf[..n]), Err(UapiError::TooShort { need: T::SIZE, got: n }), "parse {n}");
        let mut small = vec![0u8; n];
        assert_eq!(
            value.write_to(&mut small),
            Err(UapiError::BufferTooSmall { need: T::SIZE, got: n }),
            "write {n}"
        );
    }
}

#[test]
fn round_trips_and_short_buffers() {
    check(&OvpnNewPeer { local: v6("::", 0), remote: v6("2001:db8::2", 1194), proto: OvpnProto::Udp });
    check(&OvpnNewPeer {
        local: "10.0.0.1:5000".parse().unwrap(),
        remote: "10.0.0.2:1194".parse().unwrap(),
        proto: OvpnProto::Tcp,
    });
    check(&OvpnMpNewPeer {
        local: "0.0.0.0:1194".parse().unwrap(),
        remote: "203.0.113.9:40000".parse().unwrap(),
        vpn_addr4: Ipv4Addr::new(10, 8, 0, 6),
        vpn_addr6: "fd00::6".parse().unwrap(),
        peer_id: 6,
    });
    check(&OvpnStats {
        lost_in_control_packets: 1,
        lost_out_control_packets: 2,
        lost_in_data_packets: 3,
        lost_out_data_packets: 4,
        received_data_packets: 5,
        received_control_packets: 6,
        sent_control_packets: 7,
        sent_data_packets: 8,
        transport_bytes_sent: 9,
        transport_bytes_received: i64::MAX,
        tun_bytes_sent: -1,
        tun_bytes_received: 12,
    });
    check(&OvpnPeerStats {
        peer_id: 3,
        link_rx_bytes: 1,
        link_tx_bytes: 2,
        vpn_rx_bytes: 3,
        vpn_tx_bytes: 4,
    });
    check(&crypto_sample());
    check(&OvpnCryptoData {
        cipher_alg: OvpnCipherAlg::AesGcm,
        encrypt: OvpnKeyDirection { key: [1; 32], key_len: 16, nonce_tail: [2; 8] },
        decrypt: OvpnKeyDirection { key: [3; 32], key_len: 24, nonce_tail: [4; 8] },
        ..crypto_sample()
    });
    check(&OvpnCryptoDataV2 { v1: crypto_sample(), crypto_options: 0 });
    check(&OvpnSetPeer { keepalive_interval: 10, keepalive_timeout: 60, mss: -1 });
    check(&OvpnMpSetPeer { peer_id: 1, keepalive_interval: 10, keepalive_timeout: 120, mss: 1400 });
    check(&OvpnVersion { major: 2, minor: 7, patch: 0 });
    check(&OvpnSetMode { mode: OvpnMode::Mp });
    check(&OvpnMpStartVpn { listen_address: v6("::", 1194), ipv6_only: true });
    check(&OvpnNotifyEvent {
        cmd: OvpnNotifyCmd::DelPeer,
        peer_id: 4,
        del_peer_reason: OvpnDelPeerReason::Expired,
        float_address: None,
    });
    check(&OvpnNotifyEvent {
        cmd: OvpnNotifyCmd::FloatPeer,
        peer_id: 4,
        del_peer_reason: OvpnDelPeerReason::Teardown,
        float_address: Some(v6("2001:db8::77", 5555)),
    });
    check(&OvpnMpDelPeer { peer_id: 12 });
    check(&OvpnMpSwapKeys { peer_id: 13 });
    check(&OvpnGetPeerStats { peer_id: OvpnGetPeerStats::ALL_PEERS });
    check(&OvpnMpIroute {
        addr: IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 0)),
        netbits: 64,
        peer_id: 2,
    });
    check(&OvpnMpIroute { addr: IpAddr::V4(Ipv4Addr::new(192, 168, 7, 0)), netbits: 24, peer_id: -1 });

    check(
        &RdcoSetPolicy::new(&[
            RdcoPrefix { addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), prefix_len: 8 },
            RdcoPrefix { addr: "fd00::".parse().unwrap(), prefix_len: 8 },
        ])
        .unwrap(),
    );
    check(&RdcoSetPolicy::default());
    check(&RdcoAddPeer { peer_id: 1, local: "0.0.0.0:0".parse().unwrap(), remote: v6("2001:db8::1", 1194) });
    check(&RdcoPeerRef { peer_id: ALL_PEERS });
    check(&RdcoNewKey {
        key: OvpnCryptoDataV2 {
            v1: OvpnCryptoData { peer_id: 0x00FF_FFFF, ..crypto_sample() },
            crypto_options: 0,
        },
    });
    check(&RdcoKeepalive { peer_id: 3, keepalive_interval: 10, keepalive_timeout: 60, mss: 1360 });
    check(&RdcoStats {
        peer_id: ALL_PEERS,
        tx_packets: 1,
        drop_copy_ceiling: 2,
        keepalives_received: u64::MAX,
        ..RdcoStats::default()
    });
    check(&RdcoEvent { kind: RdcoEventKind::KeepaliveTimeout, peer_id: 9, address: None });
    check(&RdcoEvent {
        kind: RdcoEventKind::Float,
        peer_id: 9,
        address: Some("192.0.2.44:1194".parse().unwrap()),
    });
}

/// Random bytes of every length into every parser: errors are fine, panics are not.
#[test]
fn no_panics_on_random_input() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut buf = vec![0u8; 400];
    for round in 0..300 {
        for b in &mut buf {
            *b = u8::try_from(next() & 0xFF).unwrap();
        }
        // Sometimes make the leading family / size fields plausible so deeper checks run.
        if round % 3 == 0 {
            buf[0] = [2, 23, 0][round % 9 / 3];
            buf[1] = 0;
        }
        if round % 5 == 0 {
            buf[0..4].copy_from_slice(&[0xFF, 0, 0, 0]);
        }
        for n in 0..buf.len() {
            let b = &buf[..n];
            let _ = OvpnNewPeer::parse(b);
            let _ = OvpnMpNewPeer::parse(b);
            let _ = OvpnStats::parse(b);
            let _ = OvpnPeerStats::parse(b);
            let _ = OvpnCryptoData::parse(b);
            let _ = OvpnCryptoDataV2::parse(b);
            let _ = OvpnSetPeer::parse(b);
            let _ = OvpnMpSetPeer::parse(b);
            let _ = OvpnVersion::parse(b);
            let _ = OvpnSetMode::parse(b);
            let _ = RdcoHoldPolicy::parse(b);
            let _ = OvpnMpStartVpn::parse(b);
            let _ = OvpnNotifyEvent::parse(b);
            let _ = OvpnMpDelPeer::parse(b);
            let _ = OvpnMpSwapKeys::parse(b);
            let _ = OvpnGetPeerStats::parse(b);
            let _ = OvpnMpIroute::parse(b);
            let _ = RdcoSetPolicy::parse(b);
            let _ = RdcoAddPeer::parse(b);
            let _ = RdcoPeerRef::parse(b);
            let _ = RdcoNewKey::parse(b);
            let _ = RdcoKeepalive::parse(b);
            let _ = RdcoStats::parse(b);
            let _ = RdcoEvent::parse(b);
            let _ = uapi::sockaddr::split_prefixed(b);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Bad values
// ---------------------------------------------------------------------------------------------------------

fn bad(field: &'static str, value: u64) -> UapiError {
    UapiError::BadValue { field, value }
}

#[test]
fn crypto_data_rejects_bad_values() {
    let golden = crypto_golden();
    let with = |off: usize, bytes: &[u8]| {
        let mut g = golden.clone();
        g[off..off + bytes.len()].copy_from_slice(bytes);
        g
    };
    assert_eq!(OvpnCryptoData::parse(&with(88, &[3, 0, 0, 0])), Err(bad("CipherAlg", 3)));
    assert_eq!(OvpnCryptoData::parse(&with(84, &[2, 0, 0, 0])), Err(bad("KeySlot", 2)));
    assert_eq!(OvpnCryptoData::parse(&with(92, &[8])), Err(bad("KeyId", 8)));
    // ChaCha20-Poly1305 needs 32-byte keys.
    assert_eq!(OvpnCryptoData::parse(&with(32, &[16])), Err(bad("Encrypt.KeyLen", 16)));
    assert_eq!(OvpnCryptoData::parse(&with(73, &[31])), Err(bad("Decrypt.KeyLen", 31)));
    // AES-GCM takes 16, 24 or 32, nothing else.
    let aes = with(88, &[1, 0, 0, 0]);
    assert!(OvpnCryptoData::parse(&aes).is_ok());
    let mut aes20 = aes.clone();
    aes20[32] = 20;
    assert_eq!(OvpnCryptoData::parse(&aes20), Err(bad("Encrypt.KeyLen", 20)));
    // No cipher: any length up to 32.
    let mut none = with(88, &[0, 0, 0, 0]);
    none[32] = 0;
    assert!(OvpnCryptoData::parse(&none).is_ok());
    none[32] = 33;
    assert_eq!(OvpnCryptoData::parse(&none), Err(bad("Encrypt.KeyLen", 33)));
    // Unknown option bits.
    let mut v2 = golden.clone();
    v2.extend_from_slice(&[1, 0, 0, 0]);
    assert_eq!(OvpnCryptoDataV2::parse(&v2), Err(bad("CryptoOptions", 1)));
    v2[100] = 4;
    assert_eq!(OvpnCryptoDataV2::parse(&v2), Err(bad("CryptoOptions", 4)));
}

#[test]
fn other_bad_values() {
    let mut p = [0u8; 60];
    OvpnNewPeer {
        local: "0.0.0.0:0".parse().unwrap(),
        remote: "1.2.3.4:5".parse().unwrap(),
        proto: OvpnProto::Udp,
    }
    .write_to(&mut p)
    .unwrap();
    let mut q = p;
    q[56] = 2;
    assert_eq!(OvpnNewPeer::parse(&q), Err(bad("Proto", 2)));
    let mut q = p;
    q[28] = 10; // Linux AF_INET6 is not a Windows family
    assert_eq!(OvpnNewPeer::parse(&q), Err(bad("Remote", 10)));
    let mut q = p;
    q[0] = 0;
    assert_eq!(OvpnNewPeer::parse(&q), Err(bad("Local", 0)));

    assert_eq!(OvpnSetMode::parse(&[2, 0, 0, 0]), Err(bad("Mode", 2)));

    let mut r = [0u8; 28];
    r[24] = 2;
    assert_eq!(OvpnMpIroute::parse(&r), Err(bad("IPv6", 2)));
    r[24] = 0;
    r[16] = 33;
    assert_eq!(OvpnMpIroute::parse(&r), Err(bad("Netbits", 33)));
    r[24] = 1;
    assert!(OvpnMpIroute::parse(&r).is_ok());
    r[16] = 129;
    assert_eq!(OvpnMpIroute::parse(&r), Err(bad("Netbits", 129)));

    let mut e = [0u8; 144];
    e[0] = 3;
    assert_eq!(OvpnNotifyEvent::parse(&e), Err(bad("Cmd", 3)));
    e[0] = 0;
    e[8] = 5;
    assert_eq!(OvpnNotifyEvent::parse(&e), Err(bad("DelPeerReason", 5)));

    // rdco: the size field, counts, peer ids, MSS and kinds.
    let mut k = [0u8; 20];
    RdcoKeepalive { peer_id: 1, keepalive_interval: 1, keepalive_timeout: 2, mss: 3 }
        .write_to(&mut k)
        .unwrap();
    let mut q = k;
    q[0] = 19;
    assert_eq!(RdcoKeepalive::parse(&q), Err(bad("Size", 19)));
    let mut q = k;
    q[0] = 24; // a later, longer version: the buffer must hold it
    assert_eq!(RdcoKeepalive::parse(&q), Err(UapiError::TooShort { need: 24, got: 20 }));
    let mut longer = q.to_vec();
    longer.extend_from_slice(&[0xEE; 4]);
    assert!(RdcoKeepalive::parse(&longer).is_ok());
    let mut q = k;
    q[18] = 1;
    assert_eq!(RdcoKeepalive::parse(&q), Err(bad("Mss", 0x1_0003)));
    let mut q = k;
    q[7] = 1;
    assert_eq!(RdcoKeepalive::parse(&q), Err(bad("PeerId", 0x0100_0001)));

    let mut pol = [0u8; 328];
    RdcoSetPolicy::default().write_to(&mut pol).unwrap();
    pol[4] = 17;
    assert_eq!(RdcoSetPolicy::parse(&pol), Err(bad("Count", 17)));
    pol[4] = 1;
    assert_eq!(RdcoSetPolicy::parse(&pol), Err(bad("Prefix.Family", 0)));
    pol[8] = 2;
    pol[10] = 33;
    assert_eq!(RdcoSetPolicy::parse(&pol), Err(bad("Prefix.PrefixLen", 33)));
    pol[10] = 32;
    assert_eq!(RdcoSetPolicy::parse(&pol).unwrap().prefixes().len(), 1);
    assert!(RdcoSetPolicy::new(&[RdcoPrefix::default(); 17]).is_err());

    let mut ev = [0u8; 44];
    RdcoEvent { kind: RdcoEventKind::RekeyNeeded, peer_id: 0, address: None }.write_to(&mut ev).unwrap();
    ev[4] = 0;
    assert_eq!(RdcoEvent::parse(&ev), Err(bad("Kind", 0)));

    let mut nk = [0u8; 108];
    RdcoNewKey { key: OvpnCryptoDataV2 { v1: crypto_sample(), crypto_options: 0 } }
        .write_to(&mut nk)
        .unwrap();
    nk[100..104].copy_from_slice(&(-1i32).to_le_bytes());
    assert_eq!(RdcoNewKey::parse(&nk), Err(bad("PeerId", 0xFFFF_FFFF)));
}

#[test]
fn hold_policy_layout_and_ranges() {
    assert_eq!(RdcoHoldPolicy::SIZE, 20);
    assert_eq!(
        (
            hold_policy::SIZE,
            hold_policy::BUDGET_NBLS,
            hold_policy::BUDGET_MS,
            hold_policy::CEILING_BYTES,
            hold_policy::COPY_MAX_AGE_MS
        ),
        (0, 4, 8, 12, 16)
    );
    let p =
        RdcoHoldPolicy { budget_nbls: 256, budget_ms: 50, ceiling_bytes: 4 << 20, copy_max_age_ms: 5_000 };
    let mut b = [0xAAu8; 24];
    assert_eq!(p.write_to(&mut b), Ok(20));
    let golden: [u8; 20] = [20, 0, 0, 0, 0, 1, 0, 0, 50, 0, 0, 0, 0, 0, 0x40, 0, 0x88, 0x13, 0, 0];
    assert_eq!(&b[..20], &golden);
    assert_eq!(&b[20..], &[0xAA; 4], "nothing written past Size");
    check(&p);
    // The ends of every range are accepted, one past either end is not.
    let edges = |f: &dyn Fn(&mut RdcoHoldPolicy, u32), field: &'static str, lo: u32, hi: u32| {
        for (v, ok) in
            [(lo, true), (hi, true), (lo.wrapping_sub(1), false), (hi.wrapping_add(1), false), (0, lo == 0)]
        {
            let mut q = p;
            f(&mut q, v);
            let mut buf = [0u8; 20];
            q.write_to(&mut buf).unwrap();
            let got = RdcoHoldPolicy::parse(&buf);
            if ok {
                assert_eq!(got, Ok(q), "{field} = {v}");
            } else {
                assert_eq!(got, Err(bad(field, v.into())), "{field} = {v}");
            }
        }
    };
    edges(&|q, v| q.budget_nbls = v, "BudgetNbls", 1, 1 << 20);
    edges(&|q, v| q.budget_ms = v, "BudgetMs", 1, 60_000);
    edges(&|q, v| q.ceiling_bytes = v, "CeilingBytes", 2_048, 1 << 30);
    edges(&|q, v| q.copy_max_age_ms = v, "CopyMaxAgeMs", 100, 600_000);
    assert_eq!((*HOLD_BUDGET_NBLS.start(), *HOLD_CEILING_BYTES.start()), (1, 2_048));
    // Size below 20 is a bad value; a buffer shorter than its own Size is too short.
    let mut buf = [0u8; 20];
    p.write_to(&mut buf).unwrap();
    buf[0] = 19;
    assert_eq!(RdcoHoldPolicy::parse(&buf), Err(bad("Size", 19)));
    buf[0] = 24;
    assert_eq!(RdcoHoldPolicy::parse(&buf), Err(UapiError::TooShort { need: 24, got: 20 }));
}

#[test]
fn versions() {
    assert!(RDCO_REPORTED_VERSION >= VERSION_MIN_MULTIPEER);
    assert!(RDCO_REPORTED_VERSION < VERSION_MIN_EPOCH);
}
