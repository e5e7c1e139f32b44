//! The control suite: the real filter's control device through the simulated I/O manager. Every IOCTL
//! with valid input, with every input size below the request size, and with bad values; the state must be
//! unchanged after every failure. The pended event read, a close with a read pended, `DriverEntry`
//! unwinding when the device cannot be registered, and unload with the device deregistered.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use kernel::ffi::ntos::{
    DISPATCH_LEVEL, NTSTATUS, PASSIVE_LEVEL, STATUS_BUFFER_TOO_SMALL, STATUS_CANCELLED,
    STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_PARAMETER, STATUS_NOT_FOUND, STATUS_OBJECT_NAME_COLLISION, STATUS_PENDING, STATUS_SUCCESS,
};
use uapi::ovpn::{OvpnCipherAlg, OvpnCryptoData, OvpnCryptoDataV2, OvpnKeyDirection, OvpnKeySlot};
use uapi::rdco_filter::{
    RdcoAddPeer, RdcoEvent, RdcoEventKind, RdcoFilterIoctl, RdcoHoldPolicy, RdcoKeepalive, RdcoModuleList,
    RdcoNewKey, RdcoPeerRef, RdcoPeerRoutes, RdcoPrefix, RdcoSetPolicy, RdcoStats, RdcoStatsQuery, ALL_PEERS,
    MAX_PEER_ROUTES, MAX_ROUTES,
};
use uapi::Wire;
use winsim::device::{self, Handle, Io};
use winsim::{DriverId, Machine};

use crate::{Outcome, Test};

fn load(machine: &mut Machine) -> Result<(DriverId, Handle), String> {
    let id = machine
        .load_driver(uapi::names::FILTER_SERVICE_NAME, filter::driver_entry)
        .map_err(|s| format!("filter DriverEntry failed with {s:#x}"))?;
    let devices = device::registered();
    if devices.len() != 1
        || devices[0].1 != uapi::names::FILTER_DEVICE_NAME
        || devices[0].2 != uapi::names::FILTER_SYMBOLIC_LINK
    {
        return Err(format!("expected the filter's control device, found {devices:?}"));
    }
    let h = device::open(uapi::names::FILTER_USER_PATH).map_err(|s| format!("open failed with {s:#x}"))?;
    Ok((id, h))
}

fn unload(machine: &mut Machine, id: DriverId, h: Handle) -> Result<(), String> {
    let status = device::close(h);
    check("close", status, STATUS_SUCCESS)?;
    machine.unload_driver(id)?;
    if !device::registered().is_empty() {
        return Err("the control device is still registered after unload".into());
    }
    Ok(())
}

fn check(what: &str, got: NTSTATUS, want: NTSTATUS) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: status {got:#010x}, expected {want:#010x}"))
    }
}

fn encode<T: Wire>(value: &T) -> Vec<u8> {
    let mut out = vec![0u8; T::SIZE];
    value.write_to(&mut out).expect("encodes");
    out
}

fn ioctl(h: Handle, which: RdcoFilterIoctl, input: &[u8], out: usize) -> (NTSTATUS, Vec<u8>) {
    device::device_io_control(h, which.code(), input, out)
}

fn policy(prefixes: &[(Ipv4Addr, u8)]) -> Vec<u8> {
    let p: Vec<RdcoPrefix> =
        prefixes.iter().map(|&(a, l)| RdcoPrefix { addr: std::net::IpAddr::V4(a), prefix_len: l }).collect();
    encode(&RdcoSetPolicy::new(&p).expect("valid policy"))
}

fn add_peer(id: u32) -> Vec<u8> {
    encode(&RdcoAddPeer {
        peer_id: id,
        local: SocketAddr::from(([0, 0, 0, 0], 0)),
        remote: SocketAddr::from(([192, 0, 2, 1], 1194)),
    })
}

fn peer_ref(id: u32) -> Vec<u8> {
    encode(&RdcoPeerRef { peer_id: id })
}

fn new_key(peer: i32, slot: OvpnKeySlot, key_id: u8, alg: OvpnCipherAlg, key_len: u8) -> Vec<u8> {
    let dir = OvpnKeyDirection { key: [7; 32], key_len, nonce_tail: [3; 8] };
    encode(&RdcoNewKey {
        key: OvpnCryptoDataV2 {
            v1: OvpnCryptoData {
                encrypt: dir,
                decrypt: dir,
                key_slot: slot,
                cipher_alg: alg,
                key_id,
                peer_id: peer,
            },
            crypto_options: 0,
        },
    })
}

fn keepalive(id: u32, interval: u32, timeout: u32) -> Vec<u8> {
    encode(&RdcoKeepalive {
        peer_id: id,
        keepalive_interval: interval,
        keepalive_timeout: timeout,
        mss: 1360,
    })
}

/// Everything observable about the configuration: the policy, peers 1 and 2 (key ids), their stats and
/// the hold policy (through `GET_HOLD_POLICY`).
#[derive(Debug, PartialEq)]
struct Fingerprint {
    policy: String,
    routes: String,
    keys: Vec<Option<(Option<u8>, Option<u8>)>>,
    stats: Vec<(NTSTATUS, Vec<u8>)>,
    hold: (NTSTATUS, Vec<u8>),
}

fn fingerprint(id: DriverId, h: Handle) -> Fingerprint {
    let (policy, routes, keys) =
        winsim::context::call_driver(id, PASSIVE_LEVEL, "test: read configuration", || {
            (
                format!("{:?}", filter::test_hooks::policy()),
                format!("{:?}", filter::test_hooks::routes()),
                vec![filter::test_hooks::peer_keys(1), filter::test_hooks::peer_keys(2)],
            )
        });
    let stats = [1, 2, ALL_PEERS]
        .iter()
        .map(|&p| ioctl(h, RdcoFilterIoctl::GetStats, &peer_ref(p), RdcoStats::SIZE))
        .collect();
    let hold = ioctl(h, RdcoFilterIoctl::GetHoldPolicy, &[], RdcoHoldPolicy::SIZE);
    Fingerprint { policy, routes, keys, stats, hold }
}

/// Sends `input` and requires `want` and an unchanged configuration.
fn rejects(
    id: DriverId,
    h: Handle,
    which: RdcoFilterIoctl,
    input: &[u8],
    out: usize,
    want: NTSTATUS,
    what: &str,
) -> Result<(), String> {
    let before = fingerprint(id, h);
    let (status, _) = ioctl(h, which, input, out);
    check(&format!("{} {what}", which.name()), status, want)?;
    let after = fingerprint(id, h);
    if before != after {
        return Err(format!(
            "{} {what} failed but changed the configuration: {before:?} -> {after:?}",
            which.name()
        ));
    }
    Ok(())
}

/// Every size below the request size fails with STATUS_BUFFER_TOO_SMALL and changes nothing; a `Size`
/// field below the structure size fails with STATUS_INVALID_PARAMETER.
fn short_and_undersized(id: DriverId, h: Handle, which: RdcoFilterIoctl, valid: &[u8]) -> Result<(), String> {
    for len in 0..valid.len() {
        rejects(
            id,
            h,
            which,
            &valid[..len],
            which.output_len(),
            STATUS_BUFFER_TOO_SMALL,
            &format!("with {len} input bytes"),
        )?;
    }
    let mut small = valid.to_vec();
    small[..4].copy_from_slice(&(u32::try_from(valid.len()).unwrap_or(0) - 1).to_le_bytes());
    rejects(id, h, which, &small, which.output_len(), STATUS_INVALID_PARAMETER, "with Size one short")?;
    let mut big = valid.to_vec();
    big[..4].copy_from_slice(&(u32::try_from(valid.len()).unwrap_or(0) + 4).to_le_bytes());
    rejects(id, h, which, &big, which.output_len(), STATUS_BUFFER_TOO_SMALL, "with Size past the buffer")
}

fn every_ioctl(machine: &mut Machine) -> Outcome {
    let (id, h) = load(machine)?;
    use RdcoFilterIoctl as I;
    // Unknown code.
    let (s, _) = device::device_io_control(h, uapi::ioctl::buffered(0x8FF), &[], 0);
    check("unknown IOCTL", s, STATUS_INVALID_DEVICE_REQUEST)?;

    // SET_POLICY.
    let valid_policy = policy(&[(Ipv4Addr::new(10, 8, 0, 0), 24), (Ipv4Addr::new(10, 9, 1, 7), 16)]);
    short_and_undersized(id, h, I::SetPolicy, &valid_policy)?;
    let mut bad = valid_policy.clone();
    bad[4..8].copy_from_slice(&17u32.to_le_bytes());
    rejects(id, h, I::SetPolicy, &bad, 0, STATUS_INVALID_PARAMETER, "with Count 17")?;
    let mut bad = valid_policy.clone();
    bad[8 + 2] = 33;
    rejects(id, h, I::SetPolicy, &bad, 0, STATUS_INVALID_PARAMETER, "with /33")?;
    let mut bad = valid_policy.clone();
    bad[8..10].copy_from_slice(&7u16.to_le_bytes());
    rejects(id, h, I::SetPolicy, &bad, 0, STATUS_INVALID_PARAMETER, "with family 7")?;
    check("SET_POLICY", ioctl(h, I::SetPolicy, &valid_policy, 0).0, STATUS_SUCCESS)?;
    let stored = winsim::context::call_driver(id, PASSIVE_LEVEL, "test", filter::test_hooks::policy);
    let want = [
        Some(datapath::peer::IpPrefix::V4([10, 8, 0, 0], 24)),
        Some(datapath::peer::IpPrefix::V4([10, 9, 0, 0], 16)),
    ];
    if stored[..2] != want || stored[2..].iter().any(Option::is_some) {
        return Err(format!("policy stored as {stored:?}"));
    }

    // ADD_PEER.
    short_and_undersized(id, h, I::AddPeer, &add_peer(1))?;
    let mut bad = add_peer(1);
    bad[4..8].copy_from_slice(&0x0100_0000u32.to_le_bytes());
    rejects(id, h, I::AddPeer, &bad, 0, STATUS_INVALID_PARAMETER, "with a 25-bit peer id")?;
    let no_port = encode(&RdcoAddPeer {
        peer_id: 1,
        local: SocketAddr::from(([0; 4], 0)),
        remote: SocketAddr::from(([192, 0, 2, 1], 0)),
    });
    rejects(id, h, I::AddPeer, &no_port, 0, STATUS_INVALID_PARAMETER, "with remote port 0")?;
    let mixed = encode(&RdcoAddPeer {
        peer_id: 1,
        local: SocketAddr::from(([0u16; 8], 0)),
        remote: SocketAddr::from(([192, 0, 2, 1], 1194)),
    });
    rejects(id, h, I::AddPeer, &mixed, 0, STATUS_INVALID_PARAMETER, "with IPv6 local and IPv4 remote")?;
    let mut bad = add_peer(1);
    bad[36..38].copy_from_slice(&9u16.to_le_bytes());
    rejects(id, h, I::AddPeer, &bad, 0, STATUS_INVALID_PARAMETER, "with remote family 9")?;
    check("ADD_PEER 1", ioctl(h, I::AddPeer, &add_peer(1), 0).0, STATUS_SUCCESS)?;
    rejects(id, h, I::AddPeer, &add_peer(1), 0, STATUS_OBJECT_NAME_COLLISION, "twice")?;

    // NEW_KEY.
    let key = new_key(1, OvpnKeySlot::Primary, 1, OvpnCipherAlg::AesGcm, 32);
    short_and_undersized(id, h, I::NewKey, &key)?;
    rejects(
        id,
        h,
        I::NewKey,
        &new_key(2, OvpnKeySlot::Primary, 1, OvpnCipherAlg::AesGcm, 32),
        0,
        STATUS_NOT_FOUND,
        "for an unknown peer",
    )?;
    rejects(
        id,
        h,
        I::NewKey,
        &new_key(1, OvpnKeySlot::Primary, 1, OvpnCipherAlg::AesGcm, 20),
        0,
        STATUS_INVALID_PARAMETER,
        "with a 20-byte AES key",
    )?;
    rejects(
        id,
        h,
        I::NewKey,
        &new_key(1, OvpnKeySlot::Primary, 1, OvpnCipherAlg::ChaCha20Poly1305, 16),
        0,
        STATUS_INVALID_PARAMETER,
        "with a 16-byte ChaCha key",
    )?;
    rejects(
        id,
        h,
        I::NewKey,
        &new_key(1, OvpnKeySlot::Primary, 8, OvpnCipherAlg::AesGcm, 16),
        0,
        STATUS_INVALID_PARAMETER,
        "with key id 8",
    )?;
    let mut bad = key.clone();
    bad[4 + 88..4 + 92].copy_from_slice(&9u32.to_le_bytes());
    rejects(id, h, I::NewKey, &bad, 0, STATUS_INVALID_PARAMETER, "with cipher 9")?;
    let mut bad = key.clone();
    bad[4 + 84..4 + 88].copy_from_slice(&2u32.to_le_bytes());
    rejects(id, h, I::NewKey, &bad, 0, STATUS_INVALID_PARAMETER, "with key slot 2")?;
    let mut bad = key.clone();
    bad[4 + 41 + 32] = 16; // decrypt KeyLen 16 with encrypt 32
    rejects(id, h, I::NewKey, &bad, 0, STATUS_INVALID_PARAMETER, "with different key lengths")?;
    let mut bad = key.clone();
    bad[4 + 100..4 + 104].copy_from_slice(&1u32.to_le_bytes());
    rejects(id, h, I::NewKey, &bad, 0, STATUS_INVALID_PARAMETER, "with an unknown CryptoOptions bit")?;
    check("NEW_KEY primary", ioctl(h, I::NewKey, &key, 0).0, STATUS_SUCCESS)?;

    // SWAP_KEYS: no secondary yet.
    short_and_undersized(id, h, I::SwapKeys, &peer_ref(1))?;
    rejects(id, h, I::SwapKeys, &peer_ref(1), 0, STATUS_INVALID_DEVICE_STATE, "without a secondary key")?;
    rejects(id, h, I::SwapKeys, &peer_ref(2), 0, STATUS_NOT_FOUND, "for an unknown peer")?;
    rejects(id, h, I::SwapKeys, &peer_ref(ALL_PEERS), 0, STATUS_INVALID_PARAMETER, "for ALL_PEERS")?;
    let secondary = new_key(1, OvpnKeySlot::Secondary, 2, OvpnCipherAlg::ChaCha20Poly1305, 32);
    check("NEW_KEY secondary", ioctl(h, I::NewKey, &secondary, 0).0, STATUS_SUCCESS)?;
    check("SWAP_KEYS", ioctl(h, I::SwapKeys, &peer_ref(1), 0).0, STATUS_SUCCESS)?;
    let keys = winsim::context::call_driver(id, PASSIVE_LEVEL, "test", || filter::test_hooks::peer_keys(1));
    if keys != Some((Some(2), Some(1))) {
        return Err(format!("after the swap peer 1 has keys {keys:?}, expected primary 2, secondary 1"));
    }

    // SET_KEEPALIVE.
    short_and_undersized(id, h, I::SetKeepalive, &keepalive(1, 10, 60))?;
    rejects(
        id,
        h,
        I::SetKeepalive,
        &keepalive(1, 60, 10),
        0,
        STATUS_INVALID_PARAMETER,
        "with timeout < interval",
    )?;
    rejects(id, h, I::SetKeepalive, &keepalive(2, 10, 60), 0, STATUS_NOT_FOUND, "for an unknown peer")?;
    let mut bad = keepalive(1, 10, 60);
    bad[16..20].copy_from_slice(&70_000u32.to_le_bytes());
    rejects(id, h, I::SetKeepalive, &bad, 0, STATUS_INVALID_PARAMETER, "with MSS 70000")?;
    check("SET_KEEPALIVE", ioctl(h, I::SetKeepalive, &keepalive(1, 10, 60), 0).0, STATUS_SUCCESS)?;

    // GET_STATS.
    short_and_undersized(id, h, I::GetStats, &peer_ref(1))?;
    for out in 0..RdcoStats::SIZE {
        rejects(
            id,
            h,
            I::GetStats,
            &peer_ref(1),
            out,
            STATUS_BUFFER_TOO_SMALL,
            &format!("with {out} output bytes"),
        )?;
    }
    rejects(id, h, I::GetStats, &peer_ref(2), RdcoStats::SIZE, STATUS_NOT_FOUND, "for an unknown peer")?;
    let (s, out) = ioctl(h, I::GetStats, &peer_ref(1), RdcoStats::SIZE);
    check("GET_STATS 1", s, STATUS_SUCCESS)?;
    let stats = RdcoStats::parse(&out).map_err(|e| format!("GET_STATS output: {e}"))?;
    if stats.peer_id != 1 || stats.tx_packets != 0 {
        return Err(format!("peer stats {stats:?}"));
    }
    let (s, out) = ioctl(h, I::GetStats, &peer_ref(ALL_PEERS), RdcoStats::SIZE + 16);
    check("GET_STATS module", s, STATUS_SUCCESS)?;
    if out.len() != RdcoStats::SIZE || RdcoStats::parse(&out).map(|s| s.peer_id) != Ok(ALL_PEERS) {
        return Err(format!("module stats: {} bytes", out.len()));
    }

    // GET_HOLD_POLICY: the defaults after DriverEntry; every output size below 20 is too small.
    let defaults =
        RdcoHoldPolicy { budget_nbls: 256, budget_ms: 50, ceiling_bytes: 4 << 20, copy_max_age_ms: 5_000 };
    let (s, out) = ioctl(h, I::GetHoldPolicy, &[], RdcoHoldPolicy::SIZE + 8);
    check("GET_HOLD_POLICY", s, STATUS_SUCCESS)?;
    if out.len() != RdcoHoldPolicy::SIZE || RdcoHoldPolicy::parse(&out) != Ok(defaults) {
        return Err(format!("GET_HOLD_POLICY returned {out:?}, expected the defaults {defaults:?}"));
    }
    for out in 0..RdcoHoldPolicy::SIZE {
        rejects(
            id,
            h,
            I::GetHoldPolicy,
            &[],
            out,
            STATUS_BUFFER_TOO_SMALL,
            &format!("with {out} output bytes"),
        )?;
    }

    // SET_HOLD_POLICY: sizes, every field one past either end of its range, then a valid change.
    let wanted =
        RdcoHoldPolicy { budget_nbls: 8, budget_ms: 20, ceiling_bytes: 1 << 20, copy_max_age_ms: 2_000 };
    let valid_hold = encode(&wanted);
    short_and_undersized(id, h, I::SetHoldPolicy, &valid_hold)?;
    let bad_values: [(usize, u32, &str); 9] = [
        (4, 0, "BudgetNbls 0"),
        (4, (1 << 20) + 1, "BudgetNbls 2^20+1"),
        (8, 0, "BudgetMs 0"),
        (8, 60_001, "BudgetMs 60001"),
        (12, 0, "CeilingBytes 0"),
        (12, 2_047, "CeilingBytes 2047"),
        (12, (1 << 30) + 1, "CeilingBytes 1 GiB + 1"),
        (16, 99, "CopyMaxAgeMs 99"),
        (16, u32::MAX, "CopyMaxAgeMs u32::MAX"),
    ];
    for (offset, value, what) in bad_values {
        let mut bad = valid_hold.clone();
        bad[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        rejects(id, h, I::SetHoldPolicy, &bad, 0, STATUS_INVALID_PARAMETER, &format!("with {what}"))?;
    }
    // The edges of the ranges are accepted.
    let edges =
        RdcoHoldPolicy { budget_nbls: 1 << 20, budget_ms: 1, ceiling_bytes: 2_048, copy_max_age_ms: 600_000 };
    check("SET_HOLD_POLICY (range edges)", ioctl(h, I::SetHoldPolicy, &encode(&edges), 0).0, STATUS_SUCCESS)?;
    // A later version's longer request (Size 24, zero tail) is accepted; its tail is ignored.
    let mut longer = valid_hold.clone();
    longer[..4].copy_from_slice(&24u32.to_le_bytes());
    longer.extend_from_slice(&[0xEE; 4]);
    check("SET_HOLD_POLICY (Size 24)", ioctl(h, I::SetHoldPolicy, &longer, 0).0, STATUS_SUCCESS)?;
    let (s, out) = ioctl(h, I::GetHoldPolicy, &[], RdcoHoldPolicy::SIZE);
    check("GET_HOLD_POLICY after SET", s, STATUS_SUCCESS)?;
    if RdcoHoldPolicy::parse(&out) != Ok(wanted) {
        return Err(format!("after SET_HOLD_POLICY the driver reports {out:?}, expected {wanted:?}"));
    }
    let stored = winsim::context::call_driver(id, PASSIVE_LEVEL, "test", filter::test_hooks::hold_policy);
    if stored != (8, 20, 1 << 20, 2_000) {
        return Err(format!("the hold policy in force is {stored:?}"));
    }
    check(
        "SET_HOLD_POLICY (defaults back)",
        ioctl(h, I::SetHoldPolicy, &encode(&defaults), 0).0,
        STATUS_SUCCESS,
    )?;

    // READ_EVENT with a short output buffer does not pend.
    for out in [0, 1, RdcoEvent::SIZE - 1] {
        rejects(id, h, I::ReadEvent, &[], out, STATUS_BUFFER_TOO_SMALL, &format!("with {out} output bytes"))?;
    }

    // Reads and writes: malformed write, no transport yet.
    check("write (no sockaddr)", device::write(h, &[1, 2, 3]).0, STATUS_INVALID_PARAMETER)?;
    let mut packet = vec![0u8; 16];
    uapi::sockaddr::write(&SocketAddr::from(([192, 0, 2, 1], 1194)), &mut packet)
        .map_err(|e| e.to_string())?;
    packet.extend_from_slice(&[0x38, 1, 2, 3]);
    // Peer 1 exists, so the transport is up: the control packet goes out through its socket.
    let (s, written) = device::write(h, &packet);
    check("write (transport up)", s, STATUS_SUCCESS)?;
    if written != packet.len() {
        return Err(format!("write reported {written} bytes of {}", packet.len()));
    }
    // A read with nothing queued pends only with room for any control packet (1528 bytes).
    check("read (short, nothing queued)", device::read(h, 1500).0, STATUS_BUFFER_TOO_SMALL)?;

    // DEL_PEER.
    short_and_undersized(id, h, I::DelPeer, &peer_ref(1))?;
    rejects(id, h, I::DelPeer, &peer_ref(2), 0, STATUS_NOT_FOUND, "for an unknown peer")?;
    rejects(id, h, I::DelPeer, &peer_ref(ALL_PEERS), 0, STATUS_INVALID_PARAMETER, "for ALL_PEERS")?;
    check("DEL_PEER", ioctl(h, I::DelPeer, &peer_ref(1), 0).0, STATUS_SUCCESS)?;
    check(
        "GET_STATS after DEL_PEER",
        ioctl(h, I::GetStats, &peer_ref(1), RdcoStats::SIZE).0,
        STATUS_NOT_FOUND,
    )?;

    unload(machine, id, h)?;
    Ok(vec![("ioctls".into(), RdcoFilterIoctl::ALL.len() as u64)])
}

fn routes(peer: u32, prefixes: &[(&str, u8)]) -> Vec<u8> {
    let p: Vec<RdcoPrefix> = prefixes
        .iter()
        .map(|&(a, l)| RdcoPrefix { addr: a.parse().expect("address"), prefix_len: l })
        .collect();
    encode(&RdcoPeerRoutes::new(peer, &p).expect("at most 16"))
}

fn route_of(id: DriverId, dst: &str) -> Option<u32> {
    let dst = match dst.parse::<std::net::IpAddr>().expect("address") {
        std::net::IpAddr::V4(a) => ::datapath::peer::InnerDest::V4(a.octets()),
        std::net::IpAddr::V6(a) => ::datapath::peer::InnerDest::V6(a.octets()),
    };
    winsim::context::call_driver(id, PASSIVE_LEVEL, "test: route", || filter::test_hooks::route_of(dst))
}

fn route_count(id: DriverId) -> usize {
    winsim::context::call_driver(id, PASSIVE_LEVEL, "test: routes", || filter::test_hooks::routes().len())
}

/// `SET_PEER_ROUTES`: sizes, every bad value (nothing changed by any failure), longest-prefix routing
/// across peers, replacement as a whole, the route table's capacity, routes leaving with their peer;
/// `GET_STATS` version 2 with a module selector and `LIST_MODULES` without modules (no NIC here; the
/// `filter_send` suite has two).
fn peer_routes(machine: &mut Machine) -> Outcome {
    let (id, h) = load(machine)?;
    use RdcoFilterIoctl as I;
    let valid = routes(1, &[("10.1.0.0", 16), ("fd00:1::", 64)]);
    short_and_undersized(id, h, I::SetPeerRoutes, &valid)?;
    // Before any peer: unknown.
    rejects(id, h, I::SetPeerRoutes, &valid, 0, STATUS_NOT_FOUND, "before the peer exists")?;
    for p in 1..=3 {
        check("ADD_PEER", ioctl(h, I::AddPeer, &add_peer(p), 0).0, STATUS_SUCCESS)?;
    }
    let mut bad = valid.clone();
    bad[8..12].copy_from_slice(&17u32.to_le_bytes());
    rejects(id, h, I::SetPeerRoutes, &bad, 0, STATUS_INVALID_PARAMETER, "with Count 17")?;
    let mut bad = valid.clone();
    bad[12 + 2] = 33;
    rejects(id, h, I::SetPeerRoutes, &bad, 0, STATUS_INVALID_PARAMETER, "with /33")?;
    let mut bad = valid.clone();
    bad[32 + 2] = 129;
    rejects(id, h, I::SetPeerRoutes, &bad, 0, STATUS_INVALID_PARAMETER, "with an IPv6 /129")?;
    let mut bad = valid.clone();
    bad[12..14].copy_from_slice(&7u16.to_le_bytes());
    rejects(id, h, I::SetPeerRoutes, &bad, 0, STATUS_INVALID_PARAMETER, "with family 7")?;
    for (peer, what) in [(ALL_PEERS, "for ALL_PEERS"), (0x0100_0000, "with a peer id past 24 bits")] {
        let mut bad = valid.clone();
        bad[4..8].copy_from_slice(&peer.to_le_bytes());
        rejects(id, h, I::SetPeerRoutes, &bad, 0, STATUS_INVALID_PARAMETER, what)?;
    }
    rejects(id, h, I::SetPeerRoutes, &routes(9, &[("10.9.0.0", 16)]), 0, STATUS_NOT_FOUND, "unknown peer")?;
    let twice = routes(1, &[("10.1.0.0", 16), ("10.1.0.0", 16)]);
    rejects(id, h, I::SetPeerRoutes, &twice, 0, STATUS_INVALID_PARAMETER, "with a prefix twice")?;
    // The same prefix once host bits are cleared.
    let twice = routes(1, &[("10.1.0.0", 16), ("10.1.7.7", 16)]);
    rejects(id, h, I::SetPeerRoutes, &twice, 0, STATUS_INVALID_PARAMETER, "with a prefix twice (host bits)")?;

    check("SET_PEER_ROUTES 1", ioctl(h, I::SetPeerRoutes, &valid, 0).0, STATUS_SUCCESS)?;
    // Nested prefixes of another peer are fine: the longest wins.
    let two = routes(2, &[("10.1.2.0", 24), ("10.2.0.0", 16), ("::", 0)]);
    check("SET_PEER_ROUTES 2", ioctl(h, I::SetPeerRoutes, &two, 0).0, STATUS_SUCCESS)?;
    let three = routes(3, &[("10.1.2.128", 25), ("0.0.0.0", 0)]);
    check("SET_PEER_ROUTES 3", ioctl(h, I::SetPeerRoutes, &three, 0).0, STATUS_SUCCESS)?;
    let want = [
        ("10.1.3.9", Some(1)),
        ("10.1.2.9", Some(2)),
        ("10.1.2.200", Some(3)),
        ("10.2.255.1", Some(2)),
        ("192.0.2.77", Some(3)),
        ("fd00:1::5", Some(1)),
        ("fd00:9::5", Some(2)),
    ];
    for (dst, peer) in want {
        let got = route_of(id, dst);
        if got != peer {
            return Err(format!("{dst} routes to {got:?}, expected {peer:?}"));
        }
    }
    // A prefix another peer owns (after normalisation too).
    let taken = routes(1, &[("10.1.0.0", 16), ("10.2.9.9", 16)]);
    rejects(id, h, I::SetPeerRoutes, &taken, 0, STATUS_OBJECT_NAME_COLLISION, "with peer 2's prefix")?;
    // Replacement as a whole: peer 3 keeps only its /25 and the default route goes.
    let three = routes(3, &[("10.1.2.128", 25)]);
    check("SET_PEER_ROUTES 3 again", ioctl(h, I::SetPeerRoutes, &three, 0).0, STATUS_SUCCESS)?;
    if route_of(id, "192.0.2.77").is_some() || route_of(id, "10.1.2.200") != Some(3) {
        return Err("replacing peer 3's routes left the old ones".into());
    }
    // A later version's longer request (Size 336, zero tail) is accepted; the tail is ignored.
    let mut longer = routes(3, &[("10.1.2.128", 25), ("10.3.0.0", 16)]);
    longer[..4].copy_from_slice(&336u32.to_le_bytes());
    longer.extend_from_slice(&[0xEE; 4]);
    check("SET_PEER_ROUTES (Size 336)", ioctl(h, I::SetPeerRoutes, &longer, 0).0, STATUS_SUCCESS)?;
    if route_of(id, "10.3.1.1") != Some(3) {
        return Err("the longer request's routes were not installed".into());
    }
    // Capacity: MAX_ROUTES across the peers; one more fails and changes nothing.
    let full = |peer: u32, base: u8| -> Vec<u8> {
        let p: Vec<RdcoPrefix> = (0..MAX_PEER_ROUTES)
            .map(|i| RdcoPrefix {
                addr: std::net::IpAddr::V4(Ipv4Addr::new(base, u8::try_from(i).unwrap_or(0), 0, 0)),
                prefix_len: 16,
            })
            .collect();
        encode(&RdcoPeerRoutes::new(peer, &p).expect("16"))
    };
    for p in 4..=5 {
        check("ADD_PEER", ioctl(h, I::AddPeer, &add_peer(p), 0).0, STATUS_SUCCESS)?;
    }
    for (p, base) in [(1, 20), (2, 21), (3, 22), (4, 23)] {
        check("SET_PEER_ROUTES (16)", ioctl(h, I::SetPeerRoutes, &full(p, base), 0).0, STATUS_SUCCESS)?;
    }
    if route_count(id) != MAX_ROUTES {
        return Err(format!("{} routes, expected {MAX_ROUTES}", route_count(id)));
    }
    rejects(
        id,
        h,
        I::SetPeerRoutes,
        &routes(5, &[("10.5.0.0", 16)]),
        0,
        STATUS_INSUFFICIENT_RESOURCES,
        "past MAX_ROUTES",
    )?;
    // Replacing a peer's own set within the limit is fine; clearing frees room.
    check("SET_PEER_ROUTES 4 (replace)", ioctl(h, I::SetPeerRoutes, &full(4, 24), 0).0, STATUS_SUCCESS)?;
    check("SET_PEER_ROUTES 4 (clear)", ioctl(h, I::SetPeerRoutes, &routes(4, &[]), 0).0, STATUS_SUCCESS)?;
    check(
        "SET_PEER_ROUTES 5",
        ioctl(h, I::SetPeerRoutes, &routes(5, &[("10.5.0.0", 16)]), 0).0,
        STATUS_SUCCESS,
    )?;
    // Routes leave with their peer.
    check("DEL_PEER 5", ioctl(h, I::DelPeer, &peer_ref(5), 0).0, STATUS_SUCCESS)?;
    if route_of(id, "10.5.1.1").is_some() || route_count(id) != 3 * MAX_PEER_ROUTES {
        return Err(format!("peer 5's route outlived it ({} routes)", route_count(id)));
    }

    // GET_STATS version 2: a module selector nobody has, a peer with a selector, and IfIndex 0 (the
    // driver-wide totals, as version 1).
    let query = |peer_id: u32, if_index: u32| encode(&RdcoStatsQuery { peer_id, if_index });
    rejects(id, h, I::GetStats, &query(ALL_PEERS, 7), RdcoStats::SIZE, STATUS_NOT_FOUND, "for IfIndex 7")?;
    rejects(id, h, I::GetStats, &query(1, 7), RdcoStats::SIZE, STATUS_INVALID_PARAMETER, "peer + IfIndex")?;
    let (s1, v1) = ioctl(h, I::GetStats, &peer_ref(ALL_PEERS), RdcoStats::SIZE);
    let (s2, v2) = ioctl(h, I::GetStats, &query(ALL_PEERS, 0), RdcoStats::SIZE);
    check("GET_STATS v1", s1, STATUS_SUCCESS)?;
    check("GET_STATS v2", s2, STATUS_SUCCESS)?;
    if v1 != v2 {
        return Err("GET_STATS version 2 with IfIndex 0 differs from version 1".into());
    }
    let (s, out) = ioctl(h, I::GetStats, &query(1, 0), RdcoStats::SIZE);
    check("GET_STATS v2 (peer 1)", s, STATUS_SUCCESS)?;
    if RdcoStats::parse(&out).map(|s| s.peer_id) != Ok(1) {
        return Err("GET_STATS v2 for peer 1 did not report peer 1".into());
    }
    // LIST_MODULES: no NIC, no module; a short output buffer fails.
    let (s, out) = ioctl(h, I::ListModules, &[], RdcoModuleList::SIZE);
    check("LIST_MODULES", s, STATUS_SUCCESS)?;
    let list = RdcoModuleList::parse(&out).map_err(|e| format!("module list: {e}"))?;
    if !list.modules().is_empty() {
        return Err(format!("modules without a NIC: {list:?}"));
    }
    rejects(
        id,
        h,
        I::ListModules,
        &[],
        RdcoModuleList::SIZE - 1,
        STATUS_BUFFER_TOO_SMALL,
        "with a short output buffer",
    )?;
    unload(machine, id, h)?;
    Ok(vec![("routes".into(), (3 * MAX_PEER_ROUTES) as u64)])
}

fn fire(id: DriverId, kind: RdcoEventKind, peer: u32) -> bool {
    winsim::context::call_driver(id, DISPATCH_LEVEL, "test: data-path event", || {
        filter::test_hooks::queue_event(kind, peer, None)
    })
}

fn pending_event_read(machine: &mut Machine) -> Outcome {
    let (id, h) = load(machine)?;
    let Io::Pending(irp) =
        device::submit_io_control(h, RdcoFilterIoctl::ReadEvent.code(), &[], RdcoEvent::SIZE)
    else {
        return Err("READ_EVENT with no event queued did not pend".into());
    };
    if device::poll(irp).is_some() {
        return Err("the pended read completed before any event".into());
    }
    fire(id, RdcoEventKind::KeepaliveTimeout, 5);
    let (status, out) =
        device::wait(irp, Duration::from_secs(1)).ok_or("the event did not complete the read")?;
    check("pended READ_EVENT", status, STATUS_SUCCESS)?;
    let event = RdcoEvent::parse(&out).map_err(|e| format!("event: {e}"))?;
    if event.kind != RdcoEventKind::KeepaliveTimeout || event.peer_id != 5 {
        return Err(format!("event {event:?}"));
    }
    // Queued first, read later: completes at once, in order.
    fire(id, RdcoEventKind::RekeyNeeded, 6);
    fire(id, RdcoEventKind::Float, 7);
    for (kind, peer) in [(RdcoEventKind::RekeyNeeded, 6), (RdcoEventKind::Float, 7)] {
        let (s, out) = ioctl(h, RdcoFilterIoctl::ReadEvent, &[], RdcoEvent::SIZE);
        check("READ_EVENT with an event queued", s, STATUS_SUCCESS)?;
        let e = RdcoEvent::parse(&out).map_err(|e| format!("event: {e}"))?;
        if (e.kind, e.peer_id) != (kind, peer) {
            return Err(format!("event {e:?}, expected {kind:?} for {peer}"));
        }
    }
    // Overflow: 32 kept, the oldest dropped and counted.
    for i in 0..40 {
        fire(id, RdcoEventKind::RekeyNeeded, i);
    }
    let lost = filter::test_hooks::events_lost();
    let (s, out) = ioctl(h, RdcoFilterIoctl::ReadEvent, &[], RdcoEvent::SIZE);
    check("READ_EVENT after overflow", s, STATUS_SUCCESS)?;
    let first = RdcoEvent::parse(&out).map_err(|e| e.to_string())?.peer_id;
    if lost < 8 || first != 8 {
        return Err(format!(
            "after 40 events: {lost} lost, first kept for peer {first}; expected >= 8 and 8"
        ));
    }
    for _ in 0..31 {
        check("draining", ioctl(h, RdcoFilterIoctl::ReadEvent, &[], RdcoEvent::SIZE).0, STATUS_SUCCESS)?;
    }
    // Eight reads may pend at once; the ninth fails.
    let mut pended = Vec::new();
    for _ in 0..8 {
        match device::submit_io_control(h, RdcoFilterIoctl::ReadEvent.code(), &[], RdcoEvent::SIZE) {
            Io::Pending(irp) => pended.push(irp),
            Io::Done(s, _) => return Err(format!("READ_EVENT completed with {s:#x} instead of pending")),
        }
    }
    let (s, _) = ioctl(h, RdcoFilterIoctl::ReadEvent, &[], RdcoEvent::SIZE);
    check("ninth pended READ_EVENT", s, kernel::ffi::ntos::STATUS_INSUFFICIENT_RESOURCES)?;
    for (i, irp) in pended.into_iter().enumerate() {
        fire(id, RdcoEventKind::Float, u32::try_from(i).unwrap_or(0));
        check(
            "pended read",
            device::wait(irp, Duration::from_secs(1)).ok_or("not completed")?.0,
            STATUS_SUCCESS,
        )?;
    }
    unload(machine, id, h)?;
    Ok(Vec::new())
}

fn close_with_pending_read(machine: &mut Machine) -> Outcome {
    let (id, h) = load(machine)?;
    let other =
        device::open(uapi::names::FILTER_SYMBOLIC_LINK).map_err(|s| format!("second open: {s:#x}"))?;
    let Io::Pending(mine) =
        device::submit_io_control(h, RdcoFilterIoctl::ReadEvent.code(), &[], RdcoEvent::SIZE)
    else {
        return Err("READ_EVENT did not pend".into());
    };
    let Io::Pending(theirs) = device::submit_io_control(other, RdcoFilterIoctl::ReadEvent.code(), &[], 64)
    else {
        return Err("READ_EVENT did not pend".into());
    };
    check("close", device::close(h), STATUS_SUCCESS)?;
    let (status, out) = device::poll(mine).ok_or("closing the handle left its read pending")?;
    check("read pended at close", status, STATUS_CANCELLED)?;
    if !out.is_empty() {
        return Err("a cancelled read returned data".into());
    }
    if !device::is_pending(theirs) {
        return Err("closing one handle completed the other handle's read".into());
    }
    check("close other", device::close(other), STATUS_SUCCESS)?;
    check("other read at close", device::poll(theirs).ok_or("still pending")?.0, STATUS_CANCELLED)?;
    check(
        "ioctl on a closed handle",
        ioctl(h, RdcoFilterIoctl::GetStats, &peer_ref(ALL_PEERS), RdcoStats::SIZE).0,
        winsim::device::STATUS_INVALID_HANDLE,
    )?;
    machine.unload_driver(id)?;
    if !device::registered().is_empty() || device::pending_irps() != 0 {
        return Err("device or IRPs left after unload".into());
    }
    Ok(Vec::new())
}

/// Fails each pool allocation of `DriverEntry` in turn (the device registration is one of them): every
/// failure must unwind without a leak or a registration left behind, and the driver must then load.
fn entry_unwinds(machine: &mut Machine) -> Outcome {
    let mut failures = 0u64;
    for n in 1..=16 {
        winsim::pool::set_fault_plan(winsim::pool::FaultPlan::Nth(n));
        let result = machine.load_driver(uapi::names::FILTER_SERVICE_NAME, filter::driver_entry);
        winsim::pool::set_fault_plan(winsim::pool::FaultPlan::Never);
        match result {
            Err(status) => {
                failures += 1;
                if status >= 0 {
                    return Err(format!("DriverEntry failed with a success status {status:#x}"));
                }
                if !device::registered().is_empty() || !winsim::ndis::registered_filters().is_empty() {
                    return Err(format!("allocation {n} failed: DriverEntry left a registration behind"));
                }
            }
            Ok(id) => {
                let h = device::open(uapi::names::FILTER_USER_PATH).map_err(|s| format!("open: {s:#x}"))?;
                unload(machine, id, h)?;
                if failures == 0 {
                    return Err("no allocation of DriverEntry could be failed".into());
                }
                return Ok(vec![("failed_entries".into(), failures)]);
            }
        }
    }
    Err("DriverEntry never succeeded".into())
}

fn pending_is_visible(machine: &mut Machine) -> Outcome {
    let (id, h) = load(machine)?;
    let io = device::submit_io_control(h, RdcoFilterIoctl::ReadEvent.code(), &[], RdcoEvent::SIZE);
    let flat = ioctl(h, RdcoFilterIoctl::GetStats, &peer_ref(ALL_PEERS), RdcoStats::SIZE).0;
    check("GET_STATS while a read is pended", flat, STATUS_SUCCESS)?;
    if !matches!(io, Io::Pending(_)) || device::pending_for(h).len() != 1 {
        return Err("the pended read is not visible".into());
    }
    let _ = STATUS_PENDING;
    unload(machine, id, h)?;
    Ok(Vec::new())
}

pub fn tests() -> Vec<Test> {
    vec![
        Test { suite: "control", name: "control.every_ioctl", expect: None, run: every_ioctl },
        Test { suite: "control", name: "control.pending_event_read", expect: None, run: pending_event_read },
        Test {
            suite: "control",
            name: "control.close_with_pending_read",
            expect: None,
            run: close_with_pending_read,
        },
        Test { suite: "control", name: "control.pending_visible", expect: None, run: pending_is_visible },
        Test { suite: "control", name: "control.entry_unwinds", expect: None, run: entry_unwinds },
        Test { suite: "control", name: "control.peer_routes_and_modules", expect: None, run: peer_routes },
    ]
}
