//! The control suite: the real filter's control device through the simulated I/O manager. Every IOCTL
//! with valid input, with every input size below the request size, and with bad values; the state must be
//! unchanged after every failure. The pended event read, a close with a read pended, `DriverEntry`
//! unwinding when the device cannot be registered, and unload with the device deregistered.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use kernel::ffi::ntos::{
    DISPATCH_LEVEL, NTSTATUS, PASSIVE_LEVEL, STATUS_BUFFER_TOO_SMALL, STATUS_CANCELLED,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER, STATUS_NOT_FOUND,
    STATUS_OBJECT_NAME_COLLISION, STATUS_PENDING, STATUS_SUCCESS,
};
use uapi::ovpn::{OvpnCipherAlg, OvpnCryptoData, OvpnCryptoDataV2, OvpnKeyDirection, OvpnKeySlot};
use uapi::rdco_filter::{
    RdcoAddPeer, RdcoEvent, RdcoEventKind, RdcoFilterIoctl, RdcoHoldPolicy, RdcoKeepalive, RdcoNewKey,
    RdcoPeerRef, RdcoPrefix, RdcoSetPolicy, RdcoStats, ALL_PEERS,
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
    keys: Vec<Option<(Option<u8>, Option<u8>)>>,
    stats: Vec<(NTSTATUS, Vec<u8>)>,
    hold: (NTSTATUS, Vec<u8>),
}

fn fingerprint(id: DriverId, h: Handle) -> Fingerprint {
    let (policy, keys) = winsim::context::call_driver(id, PASSIVE_LEVEL, "test: read configuration", || {
        (
            format!("{:?}", filter::test_hooks::policy()),
            vec![filter::test_hooks::peer_keys(1), filter::test_hooks::peer_keys(2)],
        )
    });
    let stats = [1, 2, ALL_PEERS]
        .iter()
        .map(|&p| ioctl(h, RdcoFilterIoctl::GetStats, &peer_ref(p), RdcoStats::SIZE))
        .collect();
    let hold = ioctl(h, RdcoFilterIoctl::GetHoldPolicy, &[], RdcoHoldPolicy::SIZE);
    Fingerprint { policy, keys, stats, hold }
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
    ]
}
