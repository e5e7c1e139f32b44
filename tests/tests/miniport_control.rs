//! The miniport's ovpn-dco-win control API (`miniport::control::Tunnel`): every IOCTL's happy path, every
//! input and output size from 0 to the structure's size + 1, mode and state errors, bad values, key swap
//! (checked on sealed packets), server mode with many peers and iroutes, keepalive timeout, the control
//! channel, and close. Every failing request is checked to change nothing (snapshot before and after).
#![allow(clippy::pedantic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use datapath::{Cipher, Instant};
use kernel::ffi::ntos::{
    NTSTATUS, STATUS_ALREADY_INITIALIZED, STATUS_BUFFER_OVERFLOW, STATUS_BUFFER_TOO_SMALL, STATUS_CANCELLED,
    STATUS_CONNECTION_DISCONNECTED, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_ADDRESS,
    STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_MESSAGE, STATUS_INVALID_PARAMETER, STATUS_OBJECTID_EXISTS, STATUS_OBJECTID_NOT_FOUND,
    STATUS_PENDING, STATUS_SUCCESS,
};
use miniport::control::{
    Action, ControlSend, ReadResult, Reply, TransportRequest, Tunnel, MAX_CONTROL_PACKET, MAX_IROUTES,
    MAX_PEERS, NOTIFY_QUEUE_LEN,
};
use uapi::ovpn::*;
use uapi::Wire;

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

const T0: Instant = Instant::ZERO;

fn at(secs: u64) -> Instant {
    Instant::from_millis(secs * 1000)
}

fn enc<T: Wire>(v: &T) -> Vec<u8> {
    let mut out = vec![0u8; T::SIZE];
    v.write_to(&mut out).unwrap();
    out
}

fn call(
    t: &mut Tunnel,
    ioctl: OvpnIoctl,
    input: &[u8],
    out_len: usize,
) -> Result<(Reply, Vec<u8>), NTSTATUS> {
    let mut out = vec![0u8; out_len];
    let r = t.ioctl(ioctl.code(), input, &mut out, T0)?;
    out.truncate(r.information);
    Ok((r, out))
}

fn ok(t: &mut Tunnel, ioctl: OvpnIoctl, input: &[u8], out_len: usize) -> (Reply, Vec<u8>) {
    call(t, ioctl, input, out_len).unwrap_or_else(|s| panic!("{} failed: {s:#x}", ioctl.name()))
}

/// Runs a request that must succeed, for its effect on the tunnel.
fn go(t: &mut Tunnel, ioctl: OvpnIoctl, input: &[u8], out_len: usize) {
    let _ = ok(t, ioctl, input, out_len);
}

/// The request fails with `status` and changes nothing.
#[track_caller]
fn fails(t: &mut Tunnel, ioctl: OvpnIoctl, input: &[u8], out_len: usize, status: NTSTATUS) {
    let before = t.snapshot();
    match call(t, ioctl, input, out_len) {
        Err(s) => assert_eq!(s, status, "{}: got {s:#x}, want {status:#x}", ioctl.name()),
        Ok((r, _)) => panic!("{} succeeded ({r:?}), want {status:#x}", ioctl.name()),
    }
    assert_eq!(t.snapshot(), before, "{} failed but changed the tunnel", ioctl.name());
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn new_peer(remote: &str) -> Vec<u8> {
    let remote = sa(remote);
    let local = if remote.is_ipv4() { sa("0.0.0.0:0") } else { sa("[::]:0") };
    enc(&OvpnNewPeer { local, remote, proto: OvpnProto::Udp })
}

fn key(peer_id: i32, slot: OvpnKeySlot, key_id: u8, alg: OvpnCipherAlg, len: u8) -> OvpnCryptoData {
    let dir = |b: u8| OvpnKeyDirection { key: [b; 32], key_len: len, nonce_tail: [b ^ 0x55; 8] };
    OvpnCryptoData { encrypt: dir(1), decrypt: dir(2), key_slot: slot, cipher_alg: alg, key_id, peer_id }
}

fn aes(peer_id: i32, slot: OvpnKeySlot, key_id: u8) -> Vec<u8> {
    enc(&key(peer_id, slot, key_id, OvpnCipherAlg::AesGcm, 32))
}

fn set_peer(interval: i32, timeout: i32, mss: i32) -> Vec<u8> {
    enc(&OvpnSetPeer { keepalive_interval: interval, keepalive_timeout: timeout, mss })
}

fn mp_new_peer(id: i32) -> Vec<u8> {
    let n = u8::try_from(id % 250).unwrap();
    enc(&OvpnMpNewPeer {
        local: sa("0.0.0.0:0"),
        remote: SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, n)),
            40000 + u16::try_from(id).unwrap(),
        ),
        vpn_addr4: Ipv4Addr::new(10, 8, u8::try_from(id / 250).unwrap(), n + 2),
        vpn_addr6: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::try_from(id).unwrap() + 2),
        peer_id: id,
    })
}

fn iroute(addr: &str, netbits: u8, peer_id: i32) -> Vec<u8> {
    enc(&OvpnMpIroute { addr: addr.parse().unwrap(), netbits, peer_id })
}

fn peer_ref<T: Wire>(v: T) -> Vec<u8> {
    enc(&v)
}

/// Client mode with a peer (no key yet).
fn p2p_peer() -> Tunnel {
    let mut t = Tunnel::new().unwrap();
    go(&mut t, OvpnIoctl::NewPeer, &new_peer("192.0.2.1:1194"), 0);
    t
}

/// Client mode with a peer keyed under peer id 5.
fn p2p_keyed() -> Tunnel {
    let mut t = p2p_peer();
    go(&mut t, OvpnIoctl::NewKey, &aes(5, OvpnKeySlot::Primary, 0), 0);
    t
}

fn mp_mode() -> Tunnel {
    let mut t = Tunnel::new().unwrap();
    go(&mut t, OvpnIoctl::SetMode, &enc(&OvpnSetMode { mode: OvpnMode::Mp }), 0);
    t
}

fn mp_started() -> Tunnel {
    let mut t = mp_mode();
    let start = enc(&OvpnMpStartVpn { listen_address: sa("0.0.0.0:1194"), ipv6_only: false });
    go(&mut t, OvpnIoctl::MpStartVpn, &start, OvpnMpStartVpn::SIZE);
    t
}

/// Server mode with peers 1 and 2, keyed (peer 1 also has a secondary key), and an iroute to peer 1.
fn mp_peers() -> Tunnel {
    let mut t = mp_started();
    for id in [1, 2] {
        go(&mut t, OvpnIoctl::MpNewPeer, &mp_new_peer(id), 0);
        go(&mut t, OvpnIoctl::NewKey, &aes(id, OvpnKeySlot::Primary, 0), 0);
    }
    go(&mut t, OvpnIoctl::NewKey, &aes(1, OvpnKeySlot::Secondary, 1), 0);
    go(&mut t, OvpnIoctl::MpAddIroute, &iroute("172.16.0.0", 16, 1), 0);
    t
}

fn mp_with_event() -> Tunnel {
    let mut t = mp_peers();
    let _ = t.notify(OvpnNotifyEvent {
        cmd: OvpnNotifyCmd::FloatPeer,
        peer_id: 2,
        del_peer_reason: OvpnDelPeerReason::Teardown,
        float_address: Some(sa("203.0.113.9:5000")),
    });
    t
}

/// Seals a small IPv4 packet for `peer_id` and returns the first byte (opcode << 3 | key id).
fn sealed_key_id(t: &mut Tunnel, peer_id: u32) -> u8 {
    let mut ip = [0u8; 40];
    ip[0] = 0x45;
    ip[3] = 40;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 8, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 8, 0, 2]);
    let mut out = [0u8; 200];
    let peer = t.peers().peer_mut(peer_id).expect("engine peer");
    let s = peer.seal(T0, &[&ip], &mut out).expect("seal");
    assert!(s.len > ip.len());
    out[0] & 0x07
}

// ---------------------------------------------------------------------------------------------------------
// Happy paths
// ---------------------------------------------------------------------------------------------------------

#[test]
fn client_mode_happy_path() {
    let mut t = Tunnel::new().unwrap();
    let (_, v) = ok(&mut t, OvpnIoctl::GetVersion, &[], OvpnVersion::SIZE);
    assert_eq!(OvpnVersion::parse(&v).unwrap(), RDCO_REPORTED_VERSION);

    let (r, _) = ok(&mut t, OvpnIoctl::NewPeer, &new_peer("192.0.2.1:1194"), 0);
    assert_eq!(
        r.effects.open_transport,
        Some(TransportRequest::Connect {
            local: sa("0.0.0.0:0"),
            remote: sa("192.0.2.1:1194"),
            proto: OvpnProto::Udp
        })
    );
    let s = t.snapshot();
    assert_eq!((s.mode, s.started, s.peers.len()), (OvpnMode::P2p, false, 1));

    go(&mut t, OvpnIoctl::NewKey, &aes(5, OvpnKeySlot::Primary, 0), 0);
    let s = t.snapshot();
    assert_eq!(s.peers[0].info.peer_id, 5);
    let primary = s.peers[0].primary.unwrap();
    assert_eq!((primary.key_id, primary.cipher), (0, Cipher::Aes256Gcm));
    assert!(s.peers[0].secondary.is_none());

    go(&mut t, OvpnIoctl::SetPeer, &set_peer(10, 60, 1360), 0);
    let info = t.snapshot().peers[0].info;
    assert_eq!((info.keepalive_interval, info.keepalive_timeout, info.mss), (10, 60, 1360));
    go(&mut t, OvpnIoctl::SetPeer, &set_peer(-1, 120, -1), 0);
    let info = t.snapshot().peers[0].info;
    assert_eq!((info.keepalive_interval, info.keepalive_timeout, info.mss), (10, 120, 1360));

    let (r, _) = ok(&mut t, OvpnIoctl::StartVpn, &[], 0);
    assert_eq!(r.effects.link, Some(true));
    assert!(t.snapshot().started);

    t.stats_mut().sent_data_packets = 7;
    let (_, out) = ok(&mut t, OvpnIoctl::GetStats, &[], OvpnStats::SIZE);
    assert_eq!(OvpnStats::parse(&out).unwrap().sent_data_packets, 7);

    go(
        &mut t,
        OvpnIoctl::NewKeyV2,
        &enc(&OvpnCryptoDataV2 {
            v1: key(5, OvpnKeySlot::Secondary, 1, OvpnCipherAlg::ChaCha20Poly1305, 32),
            crypto_options: 0,
        }),
        0,
    );
    assert_eq!(sealed_key_id(&mut t, 5), 0);
    go(&mut t, OvpnIoctl::SwapKeys, &[], 0);
    let s = t.snapshot();
    assert_eq!(s.peers[0].primary.unwrap().cipher, Cipher::ChaCha20Poly1305);
    assert_eq!(s.peers[0].secondary.unwrap().key_id, 0);
    assert_eq!(sealed_key_id(&mut t, 5), 1, "after the swap the new key seals");

    let (_, out) =
        ok(&mut t, OvpnIoctl::GetPeerStats, &peer_ref(OvpnGetPeerStats { peer_id: 5 }), OvpnPeerStats::SIZE);
    let ps = OvpnPeerStats::parse(&out).unwrap();
    assert_eq!(ps.peer_id, 5);
    assert_eq!(ps.vpn_tx_bytes, 80, "two sealed 40-byte packets");

    let (r, _) = ok(&mut t, OvpnIoctl::DelPeer, &[], 0);
    assert_eq!(r.effects.link, Some(false));
    assert!(r.effects.close_transport);
    assert_eq!(r.effects.cancel_pending, Some(STATUS_CANCELLED));
    let s = t.snapshot();
    assert!(s.peers.is_empty() && !s.started && s.mode == OvpnMode::P2p);
    // A new session may start on the same handle.
    go(&mut t, OvpnIoctl::NewPeer, &new_peer("[2001:db8::1]:1194"), 0);
}

#[test]
fn server_mode_happy_path_with_many_peers_and_iroutes() {
    let mut t = mp_mode();
    let start = enc(&OvpnMpStartVpn { listen_address: sa("[::]:1194"), ipv6_only: true });
    let (r, out) = ok(&mut t, OvpnIoctl::MpStartVpn, &start, OvpnMpStartVpn::SIZE);
    assert_eq!(out, start, "the listen address is written back");
    assert_eq!(
        r.effects.open_transport,
        Some(TransportRequest::Listen { address: sa("[::]:1194"), ipv6_only: true })
    );
    assert_eq!(r.effects.link, Some(true));

    const N: i32 = 200;
    for id in 0..N {
        go(&mut t, OvpnIoctl::MpNewPeer, &mp_new_peer(id), 0);
        go(&mut t, OvpnIoctl::NewKey, &aes(id, OvpnKeySlot::Primary, 0), 0);
        go(
            &mut t,
            OvpnIoctl::MpSetPeer,
            &enc(&OvpnMpSetPeer { peer_id: id, keepalive_interval: 10, keepalive_timeout: 60, mss: -1 }),
            0,
        );
        // Each peer gets an IPv4 /24 and an IPv6 /64 behind it.
        let a = u8::try_from(id % 250).unwrap();
        let b = u8::try_from(id / 250).unwrap();
        go(&mut t, OvpnIoctl::MpAddIroute, &iroute(&format!("192.168.{a}.0"), 24, id), 0);
        go(&mut t, OvpnIoctl::MpAddIroute, &iroute(&format!("fd10:{b}:{a}::"), 64, id), 0);
    }
    let s = t.snapshot();
    assert_eq!(s.peers.len(), N as usize);
    assert_eq!(s.iroutes.len(), 2 * N as usize);
    for id in 0..N {
        let a = u8::try_from(id % 250).unwrap();
        let want = Some(u32::try_from(id).unwrap());
        assert_eq!(t.peers().lookup_v4([192, 168, a, 77]), want);
        assert_eq!(t.peers().lookup_v4([10, 8, 0, a + 2]), want, "VpnAddr4 host route");
        let v6: Ipv6Addr = format!("fd10:0:{a}::99").parse().unwrap();
        assert_eq!(t.peers().lookup_v6(v6.octets()), want);
    }
    assert_eq!(t.peers().lookup_v4([192, 169, 0, 1]), None);

    // A second iroute for the same prefix moves it to another peer; deleting it removes it.
    go(&mut t, OvpnIoctl::MpAddIroute, &iroute("192.168.3.0", 24, 4), 0);
    assert_eq!(t.peers().lookup_v4([192, 168, 3, 1]), Some(4));
    assert_eq!(t.snapshot().iroutes.len(), 2 * N as usize);
    go(&mut t, OvpnIoctl::MpDelIroute, &iroute("192.168.3.0", 24, -1), 0);
    assert_eq!(t.peers().lookup_v4([192, 168, 3, 1]), None);
    // Deleting a prefix that has no route succeeds and changes nothing.
    let before = t.snapshot();
    go(&mut t, OvpnIoctl::MpDelIroute, &iroute("192.168.3.0", 24, -1), 0);
    assert_eq!(t.snapshot(), before);

    // Key swap of one peer leaves the others alone.
    go(&mut t, OvpnIoctl::NewKey, &aes(9, OvpnKeySlot::Secondary, 3), 0);
    go(&mut t, OvpnIoctl::MpSwapKeys, &peer_ref(OvpnMpSwapKeys { peer_id: 9 }), 0);
    assert_eq!(sealed_key_id(&mut t, 9), 3);
    assert_eq!(sealed_key_id(&mut t, 8), 0);

    // Per-peer statistics: one, and all (first the 4-byte size query OpenVPN makes).
    t.count_link(9, 1000, 2000);
    let (_, out) = ok(&mut t, OvpnIoctl::GetPeerStats, &peer_ref(OvpnGetPeerStats { peer_id: 9 }), 64);
    let ps = OvpnPeerStats::parse(&out).unwrap();
    assert_eq!((ps.peer_id, ps.link_rx_bytes, ps.link_tx_bytes, ps.vpn_tx_bytes), (9, 1000, 2000, 40));
    let all = peer_ref(OvpnGetPeerStats { peer_id: OvpnGetPeerStats::ALL_PEERS });
    let (r, out) = ok(&mut t, OvpnIoctl::GetPeerStats, &all, 4);
    assert_eq!(r.status, STATUS_BUFFER_OVERFLOW);
    let need = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
    assert_eq!(need, N as usize * OvpnPeerStats::SIZE);
    let (r, out) = ok(&mut t, OvpnIoctl::GetPeerStats, &all, need);
    assert_eq!((r.status, out.len()), (STATUS_SUCCESS, need));
    let ids: Vec<i32> =
        out.chunks(OvpnPeerStats::SIZE).map(|c| OvpnPeerStats::parse(c).unwrap().peer_id).collect();
    assert_eq!(ids, (0..N).collect::<Vec<_>>());

    // Deleting a peer drops its iroutes and host routes.
    go(&mut t, OvpnIoctl::MpDelPeer, &peer_ref(OvpnMpDelPeer { peer_id: 7 }), 0);
    assert_eq!(t.peers().lookup_v4([192, 168, 7, 1]), None);
    assert_eq!(t.peers().lookup_v4([10, 8, 0, 9]), None);
    let s = t.snapshot();
    assert_eq!(s.peers.len(), N as usize - 1);
    assert!(s.iroutes.iter().all(|r| r.peer_id != 7));
    assert_eq!(s.iroutes.len(), 2 * N as usize - 3);

    // GET_STATS works in server mode too.
    go(&mut t, OvpnIoctl::GetStats, &[], OvpnStats::SIZE);
}

#[test]
fn notify_event_pends_then_reports_expired_peers() {
    let mut t = mp_peers();
    let (r, _) = ok(&mut t, OvpnIoctl::NotifyEvent, &[], OvpnNotifyEvent::SIZE);
    assert_eq!((r.status, r.information), (STATUS_PENDING, 0));
    go(
        &mut t,
        OvpnIoctl::MpSetPeer,
        &enc(&OvpnMpSetPeer { peer_id: 2, keepalive_interval: 2, keepalive_timeout: 5, mss: 0 }),
        0,
    );
    let mut actions = Vec::new();
    t.poll(at(2), |a| actions.push(a));
    assert_eq!(actions, vec![Action::SendPing(2)]);
    actions.clear();
    t.poll(at(5), |a| actions.push(a));
    assert!(actions.contains(&Action::PeerExpired(2)) && actions.contains(&Action::Notify), "{actions:?}");
    assert!(t.peer_info(2).is_none());
    assert_eq!(t.peers().lookup_v4([10, 8, 0, 4]), None);
    let (r, out) = ok(&mut t, OvpnIoctl::NotifyEvent, &[], OvpnNotifyEvent::SIZE);
    assert_eq!((r.status, r.information), (STATUS_SUCCESS, OvpnNotifyEvent::SIZE));
    let e = OvpnNotifyEvent::parse(&out).unwrap();
    assert_eq!(
        (e.cmd, e.peer_id, e.del_peer_reason),
        (OvpnNotifyCmd::DelPeer, 2, OvpnDelPeerReason::Expired)
    );
    // Old OpenVPN: a 12-byte buffer gets the structure without FloatAddress.
    let mut t = mp_with_event();
    let (_, out) = ok(&mut t, OvpnIoctl::NotifyEvent, &[], OvpnNotifyEvent::SIZE_WITHOUT_FLOAT);
    assert_eq!(out.len(), 12);
    assert_eq!(i32::from_le_bytes(out[4..8].try_into().unwrap()), 2);
    // The queue is bounded: the oldest is dropped and counted.
    let mut t = mp_peers();
    for i in 0..NOTIFY_QUEUE_LEN + 3 {
        let _ = t.notify(OvpnNotifyEvent {
            cmd: OvpnNotifyCmd::SwapKeys,
            peer_id: i32::try_from(i).unwrap(),
            del_peer_reason: OvpnDelPeerReason::Teardown,
            float_address: None,
        });
    }
    assert_eq!(t.notifications_lost(), 3);
    let (_, out) = ok(&mut t, OvpnIoctl::NotifyEvent, &[], OvpnNotifyEvent::SIZE);
    assert_eq!(OvpnNotifyEvent::parse(&out).unwrap().peer_id, 3);
}

#[test]
fn client_keepalive_timeout_fails_one_read_with_connection_disconnected() {
    let mut t = p2p_keyed();
    go(&mut t, OvpnIoctl::SetPeer, &set_peer(1, 3, 0), 0);
    go(&mut t, OvpnIoctl::StartVpn, &[], 0);
    let mut buf = [0u8; 2048];
    assert_eq!(t.read(&mut buf), Ok(ReadResult::Pending));
    let mut actions = Vec::new();
    t.poll(at(1), |a| actions.push(a));
    assert_eq!(actions, vec![Action::SendPing(5)]);
    actions.clear();
    t.poll(at(3), |a| actions.push(a));
    assert!(actions.contains(&Action::WakeReads), "{actions:?}");
    assert_eq!(t.read(&mut buf), Err(STATUS_CONNECTION_DISCONNECTED));
    // Once: the next read pends again (ovpn-dco-win's one-off receive timer).
    assert_eq!(t.read(&mut buf), Ok(ReadResult::Pending));
    actions.clear();
    t.poll(at(4), |a| actions.push(a));
    assert!(!actions.contains(&Action::WakeReads));
}

#[test]
fn control_channel_read_and_write() {
    // Client mode.
    let mut t = Tunnel::new().unwrap();
    assert_eq!(t.write(b"hello"), Err(STATUS_INVALID_DEVICE_STATE));
    let mut t = p2p_peer();
    assert_eq!(t.write(b"hello"), Ok(ControlSend { to: sa("192.0.2.1:1194"), offset: 0, len: 5 }));
    assert_eq!(t.write(&[]), Err(STATUS_INVALID_MESSAGE));
    assert_eq!(t.write(&vec![0x38; MAX_CONTROL_PACKET + 1]), Err(STATUS_INVALID_BUFFER_SIZE));
    t.receive_control(sa("192.0.2.1:1194"), b"\x38control").unwrap();
    let mut small = [0u8; 4];
    let before = t.snapshot();
    assert_eq!(t.read(&mut small), Err(STATUS_BUFFER_TOO_SMALL));
    assert_eq!(t.snapshot(), before, "a short read keeps the packet");
    let mut buf = [0u8; 2048];
    assert_eq!(t.read(&mut buf), Ok(ReadResult::Complete(8)));
    assert_eq!(&buf[..8], b"\x38control");
    assert_eq!(t.read(&mut buf), Ok(ReadResult::Pending));
    assert_eq!(t.snapshot().stats.received_control_packets, 1);

    // Server mode: address prefixes both ways.
    let mut t = mp_peers();
    let mut w = vec![0u8; 64];
    let n = uapi::sockaddr::write_prefixed(&sa("198.51.100.1:40001"), b"\x38abc", &mut w).unwrap();
    assert_eq!(t.write(&w[..n]), Ok(ControlSend { to: sa("198.51.100.1:40001"), offset: 16, len: 4 }));
    assert_eq!(t.write(&w[..16]), Err(STATUS_INVALID_MESSAGE));
    assert_eq!(t.write(&w[..3]), Err(STATUS_INVALID_MESSAGE));
    let mut bad = w[..n].to_vec();
    bad[0] = 99;
    assert_eq!(t.write(&bad), Err(STATUS_INVALID_ADDRESS));
    t.receive_control(sa("[2001:db8::7]:1194"), b"\x38xyz").unwrap();
    assert_eq!(t.read(&mut buf), Ok(ReadResult::Complete(28 + 4)));
    let (from, packet) = uapi::sockaddr::split_prefixed(&buf[..32]).unwrap();
    assert_eq!((from, packet), (sa("[2001:db8::7]:1194"), &b"\x38xyz"[..]));
    // The queue is bounded: overflow is counted as lost.
    for _ in 0..miniport::control::CONTROL_QUEUE_LEN {
        t.receive_control(sa("198.51.100.1:1"), b"\x38").unwrap();
    }
    assert_eq!(t.receive_control(sa("198.51.100.1:1"), b"\x38"), Err(STATUS_INSUFFICIENT_RESOURCES));
    assert_eq!(t.snapshot().stats.lost_in_control_packets, 1);
}

#[test]
fn close_deletes_every_peer_and_resets_the_tunnel() {
    let mut t = mp_with_event();
    t.receive_control(sa("198.51.100.1:1"), b"\x38").unwrap();
    let e = t.close();
    assert_eq!(e.link, Some(false));
    assert!(e.close_transport);
    assert_eq!(e.cancel_pending, Some(STATUS_CANCELLED));
    let s = t.snapshot();
    assert_eq!(s.mode, OvpnMode::P2p);
    assert!(s.peers.is_empty() && s.iroutes.is_empty() && s.notifications.is_empty() && s.control.is_empty());
    assert!(!s.started && s.listen.is_none());
    assert_eq!(t.peers().len(), 0);
    assert_eq!(t.peers().lookup_v4([172, 16, 1, 1]), None);
    // The next handle starts from scratch.
    go(&mut t, OvpnIoctl::SetMode, &enc(&OvpnSetMode { mode: OvpnMode::Mp }), 0);

    let mut t = p2p_keyed();
    let _ = t.close();
    assert!(t.snapshot().peers.is_empty());
    go(&mut t, OvpnIoctl::NewPeer, &new_peer("192.0.2.1:1194"), 0);
}

// ---------------------------------------------------------------------------------------------------------
// Every size
// ---------------------------------------------------------------------------------------------------------

struct SizeCase {
    ioctl: OvpnIoctl,
    setup: fn() -> Tunnel,
    input: Vec<u8>,
    out_len: usize,
}

fn input_cases() -> Vec<SizeCase> {
    let v2 = enc(&OvpnCryptoDataV2 {
        v1: key(5, OvpnKeySlot::Secondary, 2, OvpnCipherAlg::AesGcm, 16),
        crypto_options: 0,
    });
    vec![
        SizeCase {
            ioctl: OvpnIoctl::NewPeer,
            setup: || Tunnel::new().unwrap(),
            input: new_peer("192.0.2.1:1194"),
            out_len: 0,
        },
        SizeCase {
            ioctl: OvpnIoctl::NewKey,
            setup: p2p_keyed,
            input: aes(5, OvpnKeySlot::Secondary, 1),
            out_len: 0,
        },
        SizeCase { ioctl: OvpnIoctl::SetPeer, setup: p2p_keyed, input: set_peer(10, 60, 0), out_len: 0 },
        SizeCase { ioctl: OvpnIoctl::NewKeyV2, setup: p2p_keyed, input: v2, out_len: 0 },
        SizeCase {
            ioctl: OvpnIoctl::SetMode,
            setup: || Tunnel::new().unwrap(),
            input: enc(&OvpnSetMode { mode: OvpnMode::Mp }),
            out_len: 0,
        },
        SizeCase {
            ioctl: OvpnIoctl::MpStartVpn,
            setup: mp_mode,
            input: enc(&OvpnMpStartVpn { listen_address: sa("0.0.0.0:1194"), ipv6_only: false }),
            out_len: OvpnMpStartVpn::SIZE,
        },
        SizeCase { ioctl: OvpnIoctl::MpNewPeer, setup: mp_peers, input: mp_new_peer(3), out_len: 0 },
        SizeCase {
            ioctl: OvpnIoctl::MpSetPeer,
            setup: mp_peers,
            input: enc(&OvpnMpSetPeer {
                peer_id: 1,
                keepalive_interval: 5,
                keepalive_timeout: 30,
                mss: 1300,
            }),
            out_len: 0,
        },
        SizeCase {
            ioctl: OvpnIoctl::MpDelPeer,
            setup: mp_peers,
            input: peer_ref(OvpnMpDelPeer { peer_id: 1 }),
            out_len: 0,
        },
        SizeCase {
            ioctl: OvpnIoctl::MpSwapKeys,
            setup: mp_peers,
            input: peer_ref(OvpnMpSwapKeys { peer_id: 1 }),
            out_len: 0,
        },
        SizeCase {
            ioctl: OvpnIoctl::MpAddIroute,
            setup: mp_peers,
            input: iroute("fd20::", 48, 2),
            out_len: 0,
        },
        SizeCase {
            ioctl: OvpnIoctl::MpDelIroute,
            setup: mp_peers,
            input: iroute("172.16.0.0", 16, -1),
            out_len: 0,
        },
        SizeCase {
            ioctl: OvpnIoctl::GetPeerStats,
            setup: mp_peers,
            input: peer_ref(OvpnGetPeerStats { peer_id: 2 }),
            out_len: OvpnPeerStats::SIZE,
        },
    ]
}

#[test]
fn every_input_size_from_zero_to_size_plus_one() {
    let cases = input_cases();
    let with_input: Vec<OvpnIoctl> = OvpnIoctl::ALL.into_iter().filter(|i| i.input_len() > 0).collect();
    assert_eq!(
        cases.iter().map(|c| c.ioctl).collect::<Vec<_>>(),
        with_input,
        "one case per IOCTL with input"
    );
    let mut checked = 0;
    for c in &cases {
        let size = c.ioctl.input_len();
        assert_eq!(c.input.len(), size, "{}", c.ioctl.name());
        for len in 0..=size + 1 {
            let mut input = c.input.clone();
            input.resize(len, 0);
            let mut t = (c.setup)();
            if len < size {
                fails(&mut t, c.ioctl, &input, c.out_len, STATUS_BUFFER_TOO_SMALL);
            } else {
                let before = t.snapshot();
                let (r, out) = ok(&mut t, c.ioctl, &input, c.out_len);
                assert_eq!(r.status, STATUS_SUCCESS, "{} at {len}", c.ioctl.name());
                if c.ioctl == OvpnIoctl::GetPeerStats {
                    assert_eq!(OvpnPeerStats::parse(&out).unwrap().peer_id, 2);
                    assert_eq!(t.snapshot(), before, "a query changes nothing");
                } else {
                    assert_ne!(t.snapshot(), before, "{} at {len} changed nothing", c.ioctl.name());
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 500, "{checked}");
}

/// An IOCTL with output, its setup, its input and the smallest output it accepts.
type OutCase = (OvpnIoctl, fn() -> Tunnel, Vec<u8>, usize);

#[test]
fn every_output_size_from_zero_to_size_plus_one() {
    let cases: Vec<OutCase> = vec![
        (OvpnIoctl::GetStats, p2p_keyed, vec![], OvpnStats::SIZE),
        (OvpnIoctl::GetVersion, || Tunnel::new().unwrap(), vec![], OvpnVersion::SIZE),
        (
            OvpnIoctl::MpStartVpn,
            mp_mode,
            enc(&OvpnMpStartVpn { listen_address: sa("0.0.0.0:1194"), ipv6_only: false }),
            OvpnMpStartVpn::SIZE,
        ),
        (OvpnIoctl::NotifyEvent, mp_with_event, vec![], OvpnNotifyEvent::SIZE_WITHOUT_FLOAT),
        (OvpnIoctl::GetPeerStats, mp_peers, peer_ref(OvpnGetPeerStats { peer_id: 1 }), OvpnPeerStats::SIZE),
    ];
    let with_output: Vec<OvpnIoctl> = OvpnIoctl::ALL.into_iter().filter(|i| i.output_len() > 0).collect();
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), with_output);
    for (ioctl, setup, input, min) in cases {
        for len in 0..=ioctl.output_len() + 1 {
            let mut t = setup();
            if len < min {
                fails(&mut t, ioctl, &input, len, STATUS_BUFFER_TOO_SMALL);
            } else {
                let (r, out) = ok(&mut t, ioctl, &input, len);
                assert_eq!(r.status, STATUS_SUCCESS);
                assert_eq!(out.len(), ioctl.output_len().min(len), "{} at {len}", ioctl.name());
            }
        }
    }
    // All peers' statistics: below 4 bytes too small, then the size query.
    for len in 0..=2 * OvpnPeerStats::SIZE + 1 {
        let mut t = mp_peers();
        let all = peer_ref(OvpnGetPeerStats { peer_id: -1 });
        match len {
            0..=3 => fails(&mut t, OvpnIoctl::GetPeerStats, &all, len, STATUS_BUFFER_TOO_SMALL),
            4..=79 => {
                let (r, out) = ok(&mut t, OvpnIoctl::GetPeerStats, &all, len);
                assert_eq!((r.status, out), (STATUS_BUFFER_OVERFLOW, 80u32.to_le_bytes().to_vec()));
            }
            _ => assert_eq!(ok(&mut t, OvpnIoctl::GetPeerStats, &all, len).1.len(), 80),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Mode, state and value errors
// ---------------------------------------------------------------------------------------------------------

#[test]
fn unknown_codes_are_invalid_device_requests() {
    let mut t = p2p_keyed();
    for code in
        [0, uapi::ioctl::buffered(20), uapi::ioctl::buffered(0), OvpnIoctl::NewPeer.code() | 3, 0xFFFF_FFFF]
    {
        let before = t.snapshot();
        assert_eq!(t.ioctl(code, &[0; 256], &mut [0; 256], T0), Err(STATUS_INVALID_DEVICE_REQUEST));
        assert_eq!(t.snapshot(), before);
    }
}

#[test]
fn calls_of_the_other_mode_are_invalid_device_state() {
    let client_only = [
        OvpnIoctl::NewPeer,
        OvpnIoctl::DelPeer,
        OvpnIoctl::SwapKeys,
        OvpnIoctl::SetPeer,
        OvpnIoctl::StartVpn,
    ];
    let server_only = [
        OvpnIoctl::MpStartVpn,
        OvpnIoctl::MpNewPeer,
        OvpnIoctl::MpSetPeer,
        OvpnIoctl::NotifyEvent,
        OvpnIoctl::MpDelPeer,
        OvpnIoctl::MpSwapKeys,
        OvpnIoctl::MpAddIroute,
        OvpnIoctl::MpDelIroute,
    ];
    // With full-size (even valid) buffers: the mode is checked first.
    for ioctl in client_only {
        let mut t = mp_peers();
        fails(&mut t, ioctl, &[0; 256], 256, STATUS_INVALID_DEVICE_STATE);
    }
    for ioctl in server_only {
        let mut t = p2p_keyed();
        fails(&mut t, ioctl, &[0; 256], 256, STATUS_INVALID_DEVICE_STATE);
    }
    // The rest work in both modes (SET_MODE has its own state rules, see `state_errors`).
    let both = OvpnIoctl::ALL.into_iter().filter(|i| !client_only.contains(i) && !server_only.contains(i));
    for ioctl in both.filter(|i| *i != OvpnIoctl::SetMode) {
        for mut t in [p2p_keyed(), mp_peers()] {
            assert_ne!(
                call(&mut t, ioctl, &[0; 256], 256).err(),
                Some(STATUS_INVALID_DEVICE_STATE),
                "{}",
                ioctl.name()
            );
        }
    }
}

#[test]
fn state_errors() {
    use OvpnIoctl as I;
    // Client calls before NEW_PEER (ovpn-dco-win: STATUS_INVALID_DEVICE_REQUEST).
    let mut t = Tunnel::new().unwrap();
    fails(&mut t, I::GetStats, &[], 64, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut t, I::SetPeer, &set_peer(1, 2, 0), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut t, I::StartVpn, &[], 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut t, I::NewKey, &aes(0, OvpnKeySlot::Primary, 0), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(
        &mut t,
        I::NewKeyV2,
        &enc(&OvpnCryptoDataV2 {
            v1: key(0, OvpnKeySlot::Primary, 0, OvpnCipherAlg::AesGcm, 32),
            crypto_options: 0,
        }),
        0,
        STATUS_INVALID_DEVICE_REQUEST,
    );
    fails(&mut t, I::SwapKeys, &[], 0, STATUS_INVALID_DEVICE_REQUEST);
    // GET_PEER_STATS for an unknown peer.
    fails(&mut t, I::GetPeerStats, &peer_ref(OvpnGetPeerStats { peer_id: 4 }), 40, STATUS_OBJECTID_NOT_FOUND);
    // DEL_PEER with nothing to delete succeeds (OvpnStopVPN).
    go(&mut t, I::DelPeer, &[], 0);

    // A second client peer.
    let mut t = p2p_keyed();
    fails(&mut t, I::NewPeer, &new_peer("192.0.2.2:1194"), 0, STATUS_OBJECTID_EXISTS);
    // Swap without a secondary key.
    fails(&mut t, I::SwapKeys, &[], 0, STATUS_INVALID_DEVICE_STATE);
    // A key for another peer id once the peer has keys.
    fails(&mut t, I::NewKey, &aes(6, OvpnKeySlot::Secondary, 1), 0, STATUS_INVALID_PARAMETER);
    // SET_MODE with a client peer.
    fails(&mut t, I::SetMode, &enc(&OvpnSetMode { mode: OvpnMode::Mp }), 0, STATUS_INVALID_DEVICE_STATE);

    // SET_MODE twice, MP_START_VPN twice, MP_NEW_PEER before MP_START_VPN.
    let mut t = mp_mode();
    fails(&mut t, I::SetMode, &enc(&OvpnSetMode { mode: OvpnMode::P2p }), 0, STATUS_ALREADY_INITIALIZED);
    fails(&mut t, I::MpNewPeer, &mp_new_peer(1), 0, STATUS_INVALID_DEVICE_STATE);
    let start = enc(&OvpnMpStartVpn { listen_address: sa("0.0.0.0:1194"), ipv6_only: false });
    go(&mut t, I::MpStartVpn, &start, 32);
    fails(&mut t, I::MpStartVpn, &start, 32, STATUS_ALREADY_INITIALIZED);

    // Server peers: taken id, taken tunnel address, unknown ids.
    let mut t = mp_peers();
    fails(&mut t, I::MpNewPeer, &mp_new_peer(1), 0, STATUS_OBJECTID_EXISTS);
    let mut same_vpn = OvpnMpNewPeer::parse(&mp_new_peer(1)).unwrap();
    same_vpn.peer_id = 77;
    fails(&mut t, I::MpNewPeer, &enc(&same_vpn), 0, STATUS_OBJECTID_EXISTS);
    fails(&mut t, I::NewKey, &aes(9, OvpnKeySlot::Primary, 0), 0, STATUS_OBJECTID_NOT_FOUND);
    fails(
        &mut t,
        I::MpSetPeer,
        &enc(&OvpnMpSetPeer { peer_id: 9, keepalive_interval: 1, keepalive_timeout: 2, mss: 0 }),
        0,
        STATUS_OBJECTID_NOT_FOUND,
    );
    fails(&mut t, I::MpDelPeer, &peer_ref(OvpnMpDelPeer { peer_id: 9 }), 0, STATUS_OBJECTID_NOT_FOUND);
    fails(&mut t, I::MpSwapKeys, &peer_ref(OvpnMpSwapKeys { peer_id: 9 }), 0, STATUS_OBJECTID_NOT_FOUND);
    fails(&mut t, I::MpSwapKeys, &peer_ref(OvpnMpSwapKeys { peer_id: 2 }), 0, STATUS_INVALID_DEVICE_STATE);
    fails(&mut t, I::MpAddIroute, &iroute("10.1.0.0", 16, 9), 0, STATUS_OBJECTID_NOT_FOUND);
    fails(&mut t, I::GetPeerStats, &peer_ref(OvpnGetPeerStats { peer_id: 9 }), 40, STATUS_OBJECTID_NOT_FOUND);
}

#[test]
fn capacities_are_enforced() {
    let mut t = mp_started();
    for id in 0..i32::try_from(MAX_PEERS).unwrap() {
        let mut p = OvpnMpNewPeer::parse(&mp_new_peer(id % 200)).unwrap();
        p.peer_id = id;
        p.vpn_addr4 = Ipv4Addr::UNSPECIFIED;
        p.vpn_addr6 = Ipv6Addr::UNSPECIFIED;
        go(&mut t, OvpnIoctl::MpNewPeer, &enc(&p), 0);
    }
    let mut p = OvpnMpNewPeer::parse(&mp_new_peer(1)).unwrap();
    p.peer_id = 100_000;
    fails(&mut t, OvpnIoctl::MpNewPeer, &enc(&p), 0, STATUS_INSUFFICIENT_RESOURCES);

    let mut t = mp_peers();
    let have = t.snapshot().iroutes.len();
    for i in 0..MAX_IROUTES - have {
        let a = Ipv4Addr::from(0x0B00_0000u32 + (u32::try_from(i).unwrap() << 8));
        go(&mut t, OvpnIoctl::MpAddIroute, &iroute(&a.to_string(), 24, 2), 0);
    }
    fails(&mut t, OvpnIoctl::MpAddIroute, &iroute("12.0.0.0", 8, 2), 0, STATUS_INSUFFICIENT_RESOURCES);
    // Replacing an existing prefix still works when full.
    go(&mut t, OvpnIoctl::MpAddIroute, &iroute("11.0.0.0", 24, 1), 0);
}

/// Writes `value` at `offset` of a copy of `input`.
fn patch(input: &[u8], offset: usize, value: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    v[offset..offset + value.len()].copy_from_slice(value);
    v
}

#[test]
fn bad_values_fail_precisely_and_change_nothing() {
    use uapi::ovpn::{crypto_data as cd, mp_iroute as ir, mp_new_peer as mn, new_peer as np, set_mode as sm};
    use OvpnIoctl as I;
    let np_ok = new_peer("192.0.2.1:1194");
    let fresh = || Tunnel::new().unwrap();
    // NEW_PEER: family (INVALID_DEVICE_REQUEST, OvpnPeerNew), protocol, unusable remote, mixed families.
    fails(&mut fresh(), I::NewPeer, &patch(&np_ok, np::REMOTE, &[7, 0]), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut fresh(), I::NewPeer, &patch(&np_ok, np::LOCAL, &[0, 0]), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut fresh(), I::NewPeer, &patch(&np_ok, np::PROTO, &[2, 0, 0, 0]), 0, STATUS_INVALID_PARAMETER);
    fails(&mut fresh(), I::NewPeer, &new_peer("0.0.0.0:1194"), 0, STATUS_INVALID_PARAMETER);
    fails(&mut fresh(), I::NewPeer, &new_peer("192.0.2.1:0"), 0, STATUS_INVALID_PARAMETER);
    let mixed =
        enc(&OvpnNewPeer { local: sa("[::]:0"), remote: sa("192.0.2.1:1194"), proto: OvpnProto::Tcp });
    fails(&mut fresh(), I::NewPeer, &mixed, 0, STATUS_INVALID_PARAMETER);

    // SET_MODE: unknown mode.
    let mode = enc(&OvpnSetMode { mode: OvpnMode::Mp });
    fails(&mut fresh(), I::SetMode, &patch(&mode, sm::MODE, &[2, 0, 0, 0]), 0, STATUS_INVALID_PARAMETER);

    // Keys (OvpnCryptoNewKey: STATUS_INVALID_DEVICE_REQUEST), peer id range (INVALID_PARAMETER).
    let k = aes(5, OvpnKeySlot::Secondary, 1);
    let mut t = p2p_keyed();
    fails(&mut t, I::NewKey, &patch(&k, cd::KEY_SLOT, &[2, 0, 0, 0]), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut t, I::NewKey, &patch(&k, cd::CIPHER_ALG, &[3, 0, 0, 0]), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut t, I::NewKey, &patch(&k, cd::ENCRYPT + 32, &[20]), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut t, I::NewKey, &patch(&k, cd::DECRYPT + 32, &[16]), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut t, I::NewKey, &patch(&k, cd::KEY_ID, &[8]), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut t, I::NewKey, &patch(&k, cd::PEER_ID, &(-2i32).to_le_bytes()), 0, STATUS_INVALID_PARAMETER);
    fails(
        &mut t,
        I::NewKey,
        &patch(&k, cd::PEER_ID, &0x0100_0000i32.to_le_bytes()),
        0,
        STATUS_INVALID_PARAMETER,
    );
    let chacha_short = enc(&key(5, OvpnKeySlot::Secondary, 1, OvpnCipherAlg::ChaCha20Poly1305, 16));
    fails(&mut t, I::NewKey, &chacha_short, 0, STATUS_INVALID_DEVICE_REQUEST);
    let v2 = enc(&OvpnCryptoDataV2 {
        v1: key(5, OvpnKeySlot::Secondary, 1, OvpnCipherAlg::AesGcm, 32),
        crypto_options: 0,
    });
    fails(
        &mut t,
        I::NewKeyV2,
        &patch(&v2, cd::CRYPTO_OPTIONS, &[1, 0, 0, 0]),
        0,
        STATUS_INVALID_DEVICE_REQUEST,
    );
    fails(
        &mut t,
        I::NewKeyV2,
        &patch(&v2, cd::CRYPTO_OPTIONS, &[0, 0, 0, 0x80]),
        0,
        STATUS_INVALID_DEVICE_REQUEST,
    );

    // SET_PEER: negatives other than -1, MSS over 65535.
    for (i, to, m) in [(-2, 1, 1), (1, -5, 1), (1, 1, -7), (1, 1, 65_536), (i32::MIN, 0, 0)] {
        fails(&mut t, I::SetPeer, &set_peer(i, to, m), 0, STATUS_INVALID_PARAMETER);
    }

    // MP_START_VPN: bad family.
    let start = enc(&OvpnMpStartVpn { listen_address: sa("0.0.0.0:1194"), ipv6_only: false });
    fails(&mut mp_mode(), I::MpStartVpn, &patch(&start, 0, &[9, 0]), 32, STATUS_INVALID_DEVICE_REQUEST);

    // MP_NEW_PEER: peer id range, families, unusable remote.
    let mut t = mp_peers();
    let p = mp_new_peer(3);
    fails(&mut t, I::MpNewPeer, &patch(&p, mn::PEER_ID, &(-1i32).to_le_bytes()), 0, STATUS_INVALID_PARAMETER);
    fails(
        &mut t,
        I::MpNewPeer,
        &patch(&p, mn::PEER_ID, &0x0100_0000i32.to_le_bytes()),
        0,
        STATUS_INVALID_PARAMETER,
    );
    fails(&mut t, I::MpNewPeer, &patch(&p, mn::LOCAL, &[1, 0]), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut t, I::MpNewPeer, &patch(&p, mn::REMOTE, &[24, 0]), 0, STATUS_INVALID_DEVICE_REQUEST);
    fails(&mut t, I::MpNewPeer, &patch(&p, mn::REMOTE + 2, &[0, 0]), 0, STATUS_INVALID_PARAMETER);

    // Iroutes: IPv6 flag, netbits, peer id range.
    let r = iroute("10.9.0.0", 16, 1);
    fails(&mut t, I::MpAddIroute, &patch(&r, ir::IPV6, &[2, 0, 0, 0]), 0, STATUS_INVALID_PARAMETER);
    fails(&mut t, I::MpAddIroute, &patch(&r, ir::NETBITS, &[33, 0, 0, 0]), 0, STATUS_INVALID_PARAMETER);
    fails(&mut t, I::MpAddIroute, &patch(&r, ir::NETBITS, &[0, 1, 0, 0]), 0, STATUS_INVALID_PARAMETER);
    fails(
        &mut t,
        I::MpAddIroute,
        &patch(&r, ir::PEER_ID, &(-1i32).to_le_bytes()),
        0,
        STATUS_INVALID_PARAMETER,
    );
    let r6 = iroute("fd00::", 64, 1);
    fails(&mut t, I::MpAddIroute, &patch(&r6, ir::NETBITS, &[129, 0, 0, 0]), 0, STATUS_INVALID_PARAMETER);
    fails(&mut t, I::MpDelIroute, &patch(&r6, ir::NETBITS, &[129, 0, 0, 0]), 0, STATUS_INVALID_PARAMETER);

    // Peer ids of the MP_* calls out of range.
    for v in [-5i32, 0x0100_0000] {
        fails(&mut t, I::MpDelPeer, &v.to_le_bytes(), 0, STATUS_INVALID_PARAMETER);
        fails(&mut t, I::MpSwapKeys, &v.to_le_bytes(), 0, STATUS_INVALID_PARAMETER);
        fails(&mut t, I::GetPeerStats, &v.to_le_bytes(), 40, STATUS_INVALID_PARAMETER);
    }
}

#[test]
fn client_peer_takes_the_peer_id_of_its_first_key() {
    let mut t = p2p_peer();
    go(&mut t, OvpnIoctl::SetPeer, &set_peer(10, 60, 1400), 0);
    go(&mut t, OvpnIoctl::NewKey, &aes(0x00AB_CDEF, OvpnKeySlot::Primary, 2), 0);
    let s = t.snapshot();
    assert_eq!(s.peers[0].info.peer_id, 0x00AB_CDEF);
    assert_eq!((s.peers[0].info.keepalive_interval, s.peers[0].info.mss), (10, 1400), "settings kept");
    assert_eq!(s.peers[0].endpoint, Some(datapath::Endpoint::V4 { addr: [192, 0, 2, 1], port: 1194 }));
    let mut out = [0u8; 100];
    let ip = [0x45u8; 20];
    let sealed = t.peers().peer_mut(0x00AB_CDEF).unwrap().seal(T0, &[&ip], &mut out).unwrap();
    assert_eq!(sealed.peer_id, 0x00AB_CDEF);
    assert_eq!(&out[1..4], &[0xAB, 0xCD, 0xEF], "the peer id on the wire");
    // Cipher none is accepted (OVPN_CIPHER_ALG_NONE).
    go(
        &mut t,
        OvpnIoctl::NewKey,
        &enc(&key(0x00AB_CDEF, OvpnKeySlot::Secondary, 3, OvpnCipherAlg::None, 0)),
        0,
    );
    assert_eq!(t.snapshot().peers[0].secondary.unwrap().cipher, Cipher::None);
}

#[test]
fn a_floating_server_peer_is_reported_with_its_new_address() {
    let mut t = mp_peers();
    let new = sa("203.0.113.50:6000");
    assert_eq!(t.peer_floated(2, new), Some(Action::Notify));
    assert_eq!(t.peer_info(2).unwrap().remote, new);
    assert_eq!(
        t.snapshot().peers[1].endpoint,
        Some(datapath::Endpoint::V4 { addr: [203, 0, 113, 50], port: 6000 })
    );
    assert_eq!(t.peer_floated(2, new), None, "same address: nothing new");
    assert_eq!(t.peer_floated(99, new), None, "unknown peer ignored");
    let (_, out) = ok(&mut t, OvpnIoctl::NotifyEvent, &[], OvpnNotifyEvent::SIZE);
    let e = OvpnNotifyEvent::parse(&out).unwrap();
    assert_eq!((e.cmd, e.peer_id, e.float_address), (OvpnNotifyCmd::FloatPeer, 2, Some(new)));
    // Client mode records the address without a notification (NOTIFY_EVENT is a server call).
    let mut t = p2p_keyed();
    assert_eq!(t.peer_floated(5, new), None);
    assert_eq!(t.peer_info(5).unwrap().remote, new);
    assert!(t.snapshot().notifications.is_empty());
}

#[test]
fn epoch_keys_through_new_key_v2() {
    let mut t = p2p_peer();
    let epoch = OvpnCryptoDataV2 {
        v1: key(3, OvpnKeySlot::Primary, 0, OvpnCipherAlg::AesGcm, 32),
        crypto_options: CRYPTO_OPTIONS_EPOCH,
    };
    go(&mut t, OvpnIoctl::NewKeyV2, &enc(&epoch), 0);
    let primary = t.snapshot().peers[0].primary.unwrap();
    assert_eq!((primary.format, primary.cipher), (datapath::KeyFormat::Epoch, Cipher::Aes256Gcm));
    // NEW_KEY (V1) never carries options: classic keys.
    go(&mut t, OvpnIoctl::NewKey, &aes(3, OvpnKeySlot::Secondary, 1), 0);
    assert_eq!(t.snapshot().peers[0].secondary.unwrap().format, datapath::KeyFormat::Classic);
}

#[test]
fn extended_state_is_needed_only_for_key_setup() {
    use miniport::control::needs_extended_state;
    let k = aes(1, OvpnKeySlot::Primary, 0);
    assert!(!needs_extended_state(OvpnIoctl::SetPeer.code(), &set_peer(1, 2, 3)));
    assert!(!needs_extended_state(OvpnIoctl::NewKey.code(), &k[..10]));
    assert_eq!(needs_extended_state(OvpnIoctl::NewKey.code(), &k), Cipher::Aes256Gcm.needs_extended_state());
}
