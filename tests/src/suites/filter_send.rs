//! The filter_send suite: the REAL filter, installed from its INF over a simulated NIC, with its send
//! path: the protocol sends IP packets to a prefix in the tunnel policy; a UDP socket on loopback stands
//! for the peer, receives the datagrams and opens them with the engine (keys mirrored), and every inner
//! packet must verify (lengths, checksums) and reassemble to exactly the bytes the protocol sent. Bypass
//! traffic (test frames) must reach the wire unchanged and in order. Each hold trigger, cancel,
//! pause/restart, power D3/D0, surprise removal and allocation failure at every allocation site.
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ::datapath::{Cipher, KeyConfig, KeyDirection, KeyFormat, KeySlotId, Peer, PeerConfig, Received};
use kernel::ffi::nbl::NetBufferListCancelId;
use kernel::ffi::ndis::{NDIS_STATUS_RESOURCES, NDIS_STATUS_SEND_ABORTED, NDIS_STATUS_SUCCESS};
use kernel::ffi::ntos::{DISPATCH_LEVEL, NTSTATUS, STATUS_SUCCESS};
use uapi::ovpn::{OvpnCipherAlg, OvpnCryptoData, OvpnCryptoDataV2, OvpnKeyDirection, OvpnKeySlot};
use uapi::rdco_filter::{
    module_state, RdcoAddPeer, RdcoFilterIoctl, RdcoHoldPolicy, RdcoModuleList, RdcoNewKey, RdcoPeerRef,
    RdcoPeerRoutes, RdcoPrefix, RdcoSetPolicy, RdcoStats, RdcoStatsQuery, ALL_PEERS,
};
use uapi::Wire;
use winsim::datapath::{self, IpSend, NicConfig, Proto};
use winsim::device::{self, Handle};
use winsim::pool::{self, FaultPlan};
use winsim::{ndis, DriverId, Machine};

use crate::install::{self, Installed};
use crate::{Outcome, Test};

pub(super) const NIC: u32 = 1;
const PEER_ID: u32 = 1;
const TX_KEY: [u8; 32] = [0x11; 32];
const RX_KEY: [u8; 32] = [0x22; 32];
const TX_TAIL: [u8; 8] = [0x33; 8];
const RX_TAIL: [u8; 8] = [0x44; 8];

/// The peer's side: a real UDP socket and the engine with the filter's keys mirrored.
struct TestPeer {
    socket: UdpSocket,
    peer: Peer,
}

impl TestPeer {
    fn new() -> Result<Self, String> {
        Self::with_keys(PEER_ID, TX_KEY, RX_KEY)
    }

    /// Peer `id` whose engine mirrors the filter's keys: the filter encrypts with `tx`, decrypts `rx`.
    fn with_keys(id: u32, tx: [u8; 32], rx: [u8; 32]) -> Result<Self, String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("peer socket: {e}"))?;
        socket.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
        // Room for a burst of a few hundred datagrams (the simulated WSK transmits at send time).
        super::two_hosts::big_receive_buffer(&socket)?;
        let mut peer = Peer::new(&PeerConfig::new(id), ::datapath::Instant::from_millis(0));
        let config = KeyConfig {
            cipher: Cipher::Aes256Gcm,
            format: KeyFormat::Classic,
            key_id: 0,
            encrypt: KeyDirection { key: rx, nonce_tail: RX_TAIL },
            decrypt: KeyDirection { key: tx, nonce_tail: TX_TAIL },
        };
        peer.install_key(KeySlotId::Primary, &config).map_err(|e| format!("peer key: {e:?}"))?;
        Ok(TestPeer { socket, peer })
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("bound")
    }

    /// Runs the machine (DPCs, WSK) and collects every inner packet that arrives until `want` did or
    /// nothing comes for a while. Keepalive pings are skipped.
    fn collect(&mut self, want: usize) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        let mut idle = 0;
        let mut buf = vec![0u8; 70_000];
        while out.len() < want && idle < 10 {
            winsim::sched::run_until_idle();
            winsim::wsk::pump();
            match self.socket.recv_from(&mut buf) {
                Ok((n, _)) => {
                    idle = 0;
                    let packet = &mut buf[..n];
                    match self.peer.open(::datapath::Instant::from_millis(0), None, packet) {
                        Ok(Received::Data(o)) => out.push(packet[o.payload].to_vec()),
                        Ok(Received::Keepalive(_)) => {}
                        other => return Err(format!("peer could not open a datagram: {other:?}")),
                    }
                }
                Err(_) => idle += 1,
            }
        }
        Ok(out)
    }
}

/// The inner packets as Ethernet frames (for winsim's checkers), each verified; grouped by send id and
/// reassembled; compared with what the protocol sent.
fn check_inner(packets: &[Vec<u8>], sends: &[(u16, IpSend)]) -> Result<(), String> {
    let mut by_id: BTreeMap<u16, Vec<Vec<u8>>> = BTreeMap::new();
    for p in packets {
        let ethertype: u16 = if p.first().map(|b| b >> 4) == Some(6) { 0x86dd } else { 0x0800 };
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(p);
        winsim::offload::verify_packet(&f).map_err(|e| format!("inner packet does not verify: {e}"))?;
        let id = winsim::offload::send_id(&f).ok_or("inner packet without a send id")?;
        by_id.entry(id).or_default().push(f);
    }
    for (id, s) in sends {
        let got = by_id.get(id).ok_or_else(|| format!("send {id} never arrived"))?;
        let refs: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
        let payload = winsim::offload::reassemble(&refs);
        let want: Vec<u8> = (0..s.payload_len).map(|i| winsim::offload::payload_byte(*id, i)).collect();
        if payload != want {
            return Err(format!("send {id}: payload differs ({} bytes, want {})", payload.len(), want.len()));
        }
    }
    Ok(())
}

pub(super) fn encode<T: Wire>(value: &T) -> Vec<u8> {
    let mut out = vec![0u8; T::SIZE];
    value.write_to(&mut out).expect("encodes");
    out
}

pub(super) fn ioctl(h: Handle, which: RdcoFilterIoctl, input: &[u8], out: usize) -> (NTSTATUS, Vec<u8>) {
    device::device_io_control(h, which.code(), input, out)
}

pub(super) fn ok(what: &str, (status, _): (NTSTATUS, Vec<u8>)) -> Result<(), String> {
    if status == STATUS_SUCCESS {
        Ok(())
    } else {
        Err(format!("{what}: {status:#010x}"))
    }
}

/// Sets the hold policy through `IOCTL_RDCO_FILTER_SET_HOLD_POLICY` (as `rdco filter hold set` does).
pub(super) fn set_hold(
    r: &Rig,
    budget_nbls: u32,
    budget_ms: u32,
    ceiling_bytes: u32,
    copy_max_age_ms: u32,
) -> Result<(), String> {
    let policy = RdcoHoldPolicy { budget_nbls, budget_ms, ceiling_bytes, copy_max_age_ms };
    ok("SET_HOLD_POLICY", ioctl(r.handle, RdcoFilterIoctl::SetHoldPolicy, &encode(&policy), 0))
}

/// A machine with one NIC and the filter installed from its INF; the control device open.
pub(super) struct Rig {
    pub(super) installed: Installed,
    pub(super) handle: Handle,
    mac: [u8; 6],
}

pub(super) fn rig(machine: &mut Machine) -> Result<Rig, String> {
    datapath::add_nic(NicConfig::ethernet(NIC)).map_err(|s| format!("add_nic: {s:#x}"))?;
    let installed = install::install_from_inf(
        machine,
        &install::inf_dir().join(uapi::names::FILTER_INF),
        filter::driver_entry,
    )?;
    let handle = device::open(uapi::names::FILTER_USER_PATH).map_err(|s| format!("open: {s:#x}"))?;
    let mac = datapath::nic_info(NIC).ok_or("no NIC")?.mac;
    Ok(Rig { installed, handle, mac })
}

/// Policy (the protocol's peer addresses), the peer, and optionally its key.
fn configure(r: &Rig, peer: &TestPeer, key: bool) -> Result<(), String> {
    let prefixes = [
        RdcoPrefix { addr: std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 0)), prefix_len: 24 },
        RdcoPrefix { addr: std::net::IpAddr::V6(winsim::offload::V6_PEER.into()), prefix_len: 128 },
    ];
    ok(
        "set policy",
        ioctl(
            r.handle,
            RdcoFilterIoctl::SetPolicy,
            &encode(&RdcoSetPolicy::new(&prefixes).expect("policy")),
            0,
        ),
    )?;
    let add =
        RdcoAddPeer { peer_id: PEER_ID, local: SocketAddr::from(([127, 0, 0, 1], 0)), remote: peer.addr() };
    ok("add peer", ioctl(r.handle, RdcoFilterIoctl::AddPeer, &encode(&add), 0))?;
    if key {
        install_key(r)?;
    }
    Ok(())
}

fn install_key(r: &Rig) -> Result<(), String> {
    install_key_for(r, PEER_ID, TX_KEY, RX_KEY)
}

fn install_key_for(r: &Rig, id: u32, tx: [u8; 32], rx: [u8; 32]) -> Result<(), String> {
    let key = RdcoNewKey {
        key: OvpnCryptoDataV2 {
            v1: OvpnCryptoData {
                encrypt: OvpnKeyDirection { key: tx, key_len: 32, nonce_tail: TX_TAIL },
                decrypt: OvpnKeyDirection { key: rx, key_len: 32, nonce_tail: RX_TAIL },
                key_slot: OvpnKeySlot::Primary,
                cipher_alg: OvpnCipherAlg::AesGcm,
                key_id: 0,
                peer_id: id as i32,
            },
            crypto_options: 0,
        },
    };
    ok("new key", ioctl(r.handle, RdcoFilterIoctl::NewKey, &encode(&key), 0))
}

pub(super) fn stats(r: &Rig) -> Result<RdcoStats, String> {
    let (status, out) = ioctl(
        r.handle,
        RdcoFilterIoctl::GetStats,
        &encode(&RdcoPeerRef { peer_id: ALL_PEERS }),
        RdcoStats::SIZE,
    );
    if status != STATUS_SUCCESS {
        return Err(format!("get stats: {status:#x}"));
    }
    RdcoStats::parse(&out).map_err(|e| format!("stats: {e:?}"))
}

/// IP sends numbered in protocol order (the protocol numbers sends from 0 per NIC).
fn numbered(first: u16, sends: &[IpSend]) -> Vec<(u16, IpSend)> {
    sends.iter().enumerate().map(|(i, s)| (first + u16::try_from(i).unwrap_or(0), *s)).collect()
}

fn udp(len: usize) -> IpSend {
    IpSend { v6: false, proto: Proto::Udp, payload_len: len, request_checksum: true, mss: 1472 }
}

fn tcp6(len: usize) -> IpSend {
    IpSend { v6: true, proto: Proto::Tcp, payload_len: len, request_checksum: true, mss: 1440 }
}

/// Detach, close, unload; the ledger must be settled.
pub(super) fn finish(machine: &mut Machine, r: Rig) -> Result<(), String> {
    datapath::pump();
    winsim::sched::run_until_idle();
    winsim::wsk::pump();
    for &m in &r.installed.modules {
        if ndis::module_state(m) == Some(ndis::ModuleState::Running) {
            ndis::pause_module(m, 0);
            winsim::pnp::settle_pause(m);
        }
        ndis::detach_module(m);
    }
    let l = datapath::ledger(NIC);
    if l.owed() != 0 {
        return Err(format!("protocol still owed {} sends: {:?}", l.owed(), datapath::in_flight(NIC)));
    }
    device::close(r.handle);
    machine.unload_driver(r.installed.driver)
}

fn driver(r: &Rig) -> DriverId {
    r.installed.driver
}

fn counters() -> filter::test_hooks::SendCounters {
    filter::test_hooks::send_counters()
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------

/// Divert with zero copies; bypass in order and unchanged; packets up to the MTU (ciphertext larger than
/// it); IPv4 UDP and IPv6 TCP.
fn divert_zero_copy(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, true)?;
    let sends = [udp(1), udp(100), udp(1472), tcp6(10), tcp6(1440), udp(700)];
    let numbered = numbered(0, &sends);
    // Interleave: bypass frames before, between (separate chains) and after.
    let bypass: Vec<Vec<u8>> =
        (0..6).map(|s| datapath::test_frame([2, 0, 0, 0, 0, 9], r.mac, s, 200 + s as usize)).collect();
    datapath::protocol_send(NIC, &bypass[..3]);
    datapath::protocol_send_ip(NIC, &sends);
    datapath::protocol_send(NIC, &bypass[3..]);
    let inner = peer.collect(sends.len())?;
    check_inner(&inner, &numbered)?;
    datapath::pump();
    let wire = datapath::wire(NIC);
    let seqs: Vec<Option<u64>> = wire.iter().map(|f| datapath::check_test_frame(f)).collect();
    if seqs != (0..6).map(Some).collect::<Vec<_>>() {
        return Err(format!("the wire should carry the 6 bypass frames unchanged and in order: {seqs:?}"));
    }
    let s = stats(&r)?;
    if s.diverted != 6
        || s.bypassed != 6
        || s.tx_packets != 6
        || s.plaintext_copies != 0
        || s.deep_copies != 0
    {
        return Err(format!("stats: {s:?}"));
    }
    let l = datapath::ledger(NIC);
    if l.completed != 12 || !l.failed.is_empty() {
        return Err(format!("ledger: {l:?}"));
    }
    let c = counters();
    if c.offload_copies != 0 {
        return Err(format!("no offload was requested, yet {c:?}"));
    }
    finish(machine, r)?;
    Ok(vec![("diverted".into(), s.diverted), ("bypassed".into(), s.bypassed), ("plaintext_copies".into(), 0)])
}

/// Checksum offload and LSOv2/USO super-packets, diverted: the peer gets exactly the segmented,
/// checksummed packets the wire would have carried; bypass keeps its offloads (the NIC does them).
fn offloads(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, true)?;
    datapath::nic_announce_offloads(NIC);
    if datapath::protocol_offloads(NIC).is_none() {
        return Err("the protocol did not see the NIC's offloads".into());
    }
    let sends = [
        IpSend { v6: false, proto: Proto::Tcp, payload_len: 20_000, request_checksum: true, mss: 1448 },
        IpSend { v6: false, proto: Proto::Udp, payload_len: 9_000, request_checksum: true, mss: 1400 },
        IpSend { v6: false, proto: Proto::Udp, payload_len: 300, request_checksum: true, mss: 1472 },
        IpSend { v6: true, proto: Proto::Tcp, payload_len: 60_000, request_checksum: true, mss: 1440 },
    ];
    let numbered = numbered(0, &sends);
    datapath::protocol_send_ip(NIC, &sends);
    let want: usize = sends.iter().map(|s| s.payload_len.div_ceil(usize::from(s.mss))).sum();
    let inner = peer.collect(want)?;
    if inner.len() != want {
        return Err(format!("{} inner packets arrived, the wire would have carried {want}", inner.len()));
    }
    check_inner(&inner, &numbered)?;
    let c = counters();
    let s = stats(&r)?;
    if c.segmented != 3 || s.segmented != 3 || s.offload_copies != want as u64 || s.plaintext_copies != 0 {
        return Err(format!("expected 3 super-packets segmented in software: {c:?} {s:?}"));
    }
    let l = datapath::ledger(NIC);
    if l.lso_completed != 2 {
        return Err(format!("LSOv2 sends must complete with LsoV2TransmitComplete: {l:?}"));
    }
    finish(machine, r)?;
    Ok(vec![("inner_packets".into(), inner.len() as u64), ("offload_copies".into(), c.offload_copies)])
}

/// Transport not ready (no key): each diverted NBL is deep-copied and completed at once; once the key
/// arrives the copies go out.
fn hold_not_ready(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, false)?;
    let sends = [udp(10), udp(20), udp(30)];
    datapath::protocol_send_ip(NIC, &sends);
    let l = datapath::ledger(NIC);
    if l.completed != 3 || !l.failed.is_empty() {
        return Err(format!("originals must complete at once when copied: {l:?}"));
    }
    let c = counters();
    if c.copies_not_ready != 3 || c.copies_budget + c.copies_pause != 0 {
        return Err(format!("expected 3 not-ready copies: {c:?}"));
    }
    if !peer.collect(1)?.is_empty() {
        return Err("something left without a key".into());
    }
    install_key(&r)?;
    let inner = peer.collect(3)?;
    check_inner(&inner, &numbered(0, &sends))?;
    if counters().copy_bytes != 0 {
        return Err(format!("copies not freed after sending: {:?}", counters()));
    }
    let s = stats(&r)?;
    if s.holds_not_ready != 3
        || s.deep_copies != 3
        || s.holds_budget + s.holds_pause != 0
        || s.tx_packets != 3
    {
        return Err(format!("stats IOCTL: {s:?}"));
    }
    finish(machine, r)?;
    Ok(vec![("deep_copies".into(), s.deep_copies)])
}

/// The hold budget: with room for 4 originals, a chain of 10 diverted NBLs leaves 6 deep copies; the
/// queue-time budget (0 ms here) turns queued originals into copies at the tick.
fn hold_budget(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, true)?;
    set_hold(&r, 4, 60_000, 4 << 20, 5_000)?;
    let sends: Vec<IpSend> = (0..10).map(|i| udp(50 + i)).collect();
    datapath::protocol_send_ip(NIC, &sends);
    let c = counters();
    if c.copies_budget != 6 || datapath::ledger(NIC).completed != 6 {
        return Err(format!(
            "expected 6 budget copies completed at once: {c:?}, {:?}",
            datapath::ledger(NIC)
        ));
    }
    let inner = peer.collect(10)?;
    check_inner(&inner, &numbered(0, &sends))?;
    // Queue-time budget: 0 ms, the tick copies whatever is queued before the worker runs.
    // 0 ms is below the IOCTL's range (HOLD_BUDGET_MS starts at 1), so the test hook sets it.
    filter::test_hooks::set_hold_policy(256, 0, 4 << 20, 5_000);
    let more: Vec<IpSend> = (0..3).map(|i| udp(70 + i)).collect();
    datapath::protocol_send_ip(NIC, &more);
    winsim::context::call_driver(driver(&r), DISPATCH_LEVEL, "test: tick", filter::test_hooks::tick);
    let c2 = counters();
    if c2.copies_budget != 9 {
        return Err(format!("the tick should have copied the 3 queued originals: {c2:?}"));
    }
    let inner = peer.collect(3)?;
    check_inner(&inner, &numbered(10, &more))?;
    set_hold(&r, 256, 50, 4 << 20, 5_000)?;
    finish(machine, r)?;
    Ok(vec![("budget_copies".into(), c2.copies_budget)])
}

/// The deep-copy ceiling: past it originals complete with NDIS_STATUS_RESOURCES and count as dropped.
fn hold_ceiling(machine: &mut Machine) -> Outcome {
    let peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, false)?;
    // Each UDP frame of 1000 payload bytes is 1042 bytes: two fit in 2500.
    set_hold(&r, 256, 50, 2_500, 5_000)?;
    datapath::protocol_send_ip(NIC, &[udp(1000), udp(1000), udp(1000), udp(1000)]);
    let l = datapath::ledger(NIC);
    let c = counters();
    let s = stats(&r)?;
    set_hold(&r, 256, 50, 4 << 20, 5_000)?;
    if c.copies_not_ready != 2 || c.ceiling_drops != 2 || s.drop_copy_ceiling != 2 {
        return Err(format!("expected 2 copies and 2 ceiling drops: {c:?} {s:?}"));
    }
    if l.completed != 4 || l.failed.get(&NDIS_STATUS_RESOURCES) != Some(&2) {
        return Err(format!("expected 2 completions with NDIS_STATUS_RESOURCES: {l:?}"));
    }
    // The copies expire when no key comes (5 s), freeing the ceiling.
    set_hold(&r, 256, 50, 4 << 20, 1_000)?;
    datapath::wait(Duration::from_secs(3));
    let after = counters();
    set_hold(&r, 256, 50, 4 << 20, 5_000)?;
    if after.copy_bytes != 0 {
        return Err(format!("expired copies were not freed: {after:?}"));
    }
    finish(machine, r)?;
    Ok(vec![("ceiling_drops".into(), c.ceiling_drops)])
}

/// Cancel: queued originals with the cancelled id complete with NDIS_STATUS_SEND_ABORTED; the others go.
fn cancel(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, true)?;
    // Build two IP frames by sending through the protocol's frame builder: use test packets from the
    // offload module (IPv4 UDP to the peer address) with cancel ids.
    let frames: Vec<(Vec<u8>, datapath::NblInfo)> = (0..4u16)
        .map(|id| {
            let s = udp(100);
            let p = winsim::offload::protocol_packets(datapath::PEER_MAC, r.mac, &s, 100 + id, None);
            let id_value = if id % 2 == 0 { 0x4200 } else { 0x4300 };
            (p[0].frame.clone(), vec![(NetBufferListCancelId, id_value)])
        })
        .collect();
    datapath::protocol_send_with_info(NIC, &frames);
    datapath::protocol_cancel_send(NIC, 0x4200);
    let l = datapath::ledger(NIC);
    if l.failed.get(&NDIS_STATUS_SEND_ABORTED) != Some(&2) {
        return Err(format!("expected 2 sends aborted: {l:?}"));
    }
    let inner = peer.collect(2)?;
    if inner.len() != 2 || counters().cancelled != 2 || stats(&r)?.send_aborted != 2 {
        return Err(format!("expected the 2 others to arrive: {} arrived, {:?}", inner.len(), counters()));
    }
    finish(machine, r)?;
    Ok(vec![("cancelled".into(), 2)])
}

/// Pause and restart with diverted sends queued and bypass sends at the NIC: the pause copies what it
/// queued, pends until the bypass sends complete, and the copies still reach the peer.
fn pause_restart(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, true)?;
    let m = r.installed.modules[0];
    let mut delivered = 0;
    for round in 0..3u16 {
        let sends = [udp(100 + usize::from(round)), tcp6(500)];
        datapath::protocol_send_ip(NIC, &sends);
        datapath::protocol_send(
            NIC,
            &[datapath::test_frame([2, 0, 0, 0, 0, 9], r.mac, u64::from(round), 64)],
        );
        let status = ndis::pause_module(m, 0);
        if status != kernel::ffi::ndis::NDIS_STATUS_PENDING {
            return Err(format!("pause with a bypass send at the NIC must pend, got {status:#x}"));
        }
        if !winsim::pnp::settle_pause(m) {
            return Err("pause never completed".into());
        }
        let inner = peer.collect(2)?;
        check_inner(&inner, &numbered(round * 2, &sends))?;
        delivered += inner.len();
        if ndis::restart_module(m) != NDIS_STATUS_SUCCESS {
            return Err("restart failed".into());
        }
    }
    let c = counters();
    if c.copies_pause != 6 {
        return Err(format!("every queued original should have been copied by the pause: {c:?}"));
    }
    finish(machine, r)?;
    Ok(vec![("delivered".into(), delivered as u64), ("pause_copies".into(), c.copies_pause)])
}

/// Power D3 and back to D0 with traffic: the stack pauses for low power (copies), the power event passes
/// through the filter, and traffic flows again after D0.
fn power(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, true)?;
    datapath::protocol_send_ip(NIC, &[udp(40), udp(41)]);
    let status = winsim::pnp::power_down(NIC);
    if status != NDIS_STATUS_SUCCESS {
        return Err(format!("power down: {status:#x}"));
    }
    let first = peer.collect(2)?;
    check_inner(&first, &numbered(0, &[udp(40), udp(41)]))?;
    let status = winsim::pnp::power_up(NIC);
    if status != NDIS_STATUS_SUCCESS {
        return Err(format!("power up: {status:#x}"));
    }
    datapath::protocol_send_ip(NIC, &[udp(42)]);
    let second = peer.collect(1)?;
    check_inner(&second, &numbered(2, &[udp(42)]))?;
    let seen = winsim::pnp::seen(NIC);
    if seen.iter().filter(|e| e.contains("SetPower") || e.contains("net:0")).count() < 2 {
        return Err(format!("the power events did not pass through: {seen:?}"));
    }
    finish(machine, r)?;
    Ok(vec![("pause_copies".into(), counters().copies_pause)])
}

/// Surprise removal with diverted and bypass packets in flight, then unload: nothing leaks, every send
/// completes.
fn surprise_removal(machine: &mut Machine) -> Outcome {
    let peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, true)?;
    datapath::protocol_send_ip(NIC, &[udp(10), udp(20)]);
    datapath::protocol_send(NIC, &[datapath::test_frame([2, 0, 0, 0, 0, 9], r.mac, 1, 64)]);
    winsim::pnp::surprise_remove(NIC);
    winsim::sched::run_until_idle();
    winsim::wsk::pump();
    let l = datapath::ledger(NIC);
    if l.owed() != 0 {
        return Err(format!("sends still owed after surprise removal: {l:?}"));
    }
    device::close(r.handle);
    machine.unload_driver(r.installed.driver)?;
    Ok(vec![("completed".into(), l.completed)])
}

/// One full run for the fault injection: load, configure, divert and bypass, pause, detach, unload.
/// Steps may fail under an injected allocation failure; the driver must clean up anyway.
fn lifecycle(machine: &mut Machine, peer: &mut TestPeer) -> Result<(), String> {
    let r = rig(machine)?;
    // Without a key first: the sends are deep-copied (the hold path's allocations), then keyed.
    let configured = configure(&r, peer, false);
    datapath::protocol_send_ip(NIC, &[udp(10)]);
    let keyed = install_key(&r);
    datapath::protocol_send_ip(NIC, &[udp(1400)]);
    datapath::protocol_send(NIC, &[datapath::test_frame([2, 0, 0, 0, 0, 9], r.mac, 1, 64)]);
    let _ = peer.collect(2);
    finish(machine, r)?;
    configured.and(keyed)
}

fn alloc_failure_each_site(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    pool::set_fault_plan(FaultPlan::Never);
    lifecycle(machine, &mut peer)?;
    let (total, _) = pool::counts();
    if let Some(v) = machine.reboot().first() {
        return Err(format!("clean run: {v}"));
    }
    let mut failed_steps = 0;
    for n in 1..=total {
        let mut peer = TestPeer::new()?;
        // A run whose divert failed waits for nothing: a short idle wait keeps the sweep within seconds.
        peer.socket.set_read_timeout(Some(Duration::from_millis(10))).map_err(|e| e.to_string())?;
        pool::set_fault_plan(FaultPlan::Nth(n));
        if lifecycle(machine, &mut peer).is_err() {
            failed_steps += 1;
        }
        pool::set_fault_plan(FaultPlan::Never);
        if let Some(v) = machine.reboot().first() {
            return Err(format!("allocation {n} of {total} failed: {v}"));
        }
    }
    // And it reloads cleanly.
    let mut peer = TestPeer::new()?;
    lifecycle(machine, &mut peer)?;
    Ok(vec![("allocation_sites".into(), total), ("runs_with_a_failed_step".into(), failed_steps)])
}

/// The control device's write sends a control-channel packet through the tunnel socket, unchanged;
/// without a transport (no peer) it fails with STATUS_DEVICE_NOT_READY.
fn control_write(machine: &mut Machine) -> Outcome {
    let peer = TestPeer::new()?;
    let r = rig(machine)?;
    let mut packet = vec![0u8; 16];
    uapi::sockaddr::write(&peer.addr(), &mut packet).map_err(|e| e.to_string())?;
    let control: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(3)).collect();
    packet.extend_from_slice(&control);
    let (s, _) = device::write(r.handle, &packet);
    if s != kernel::ffi::ntos::STATUS_DEVICE_NOT_READY {
        return Err(format!("write without a transport: {s:#x}"));
    }
    configure(&r, &peer, false)?;
    let (s, n) = device::write(r.handle, &packet);
    if s != STATUS_SUCCESS || n != packet.len() {
        return Err(format!("write: {s:#x}, {n} bytes"));
    }
    winsim::wsk::pump();
    let mut buf = [0u8; 2048];
    let (got, _) = peer.socket.recv_from(&mut buf).map_err(|e| format!("peer got nothing: {e}"))?;
    if buf[..got] != control[..] {
        return Err("the control packet arrived changed".into());
    }
    let st = stats(&r)?;
    if st.control_out != 1 {
        return Err(format!("control_out {}", st.control_out));
    }
    finish(machine, r)?;
    Ok(vec![("control_out".into(), 1)])
}

/// Keepalive: the 1 s tick sends the pings the engine asks for (the peer opens them as keepalives) and
/// queues a timeout event when nothing came from the peer.
fn keepalive(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, true)?;
    let ka = uapi::rdco_filter::RdcoKeepalive {
        peer_id: PEER_ID,
        keepalive_interval: 1,
        keepalive_timeout: 3,
        mss: 0,
    };
    ok("set keepalive", ioctl(r.handle, RdcoFilterIoctl::SetKeepalive, &encode(&ka), 0))?;
    datapath::wait(Duration::from_secs(5));
    winsim::wsk::pump();
    let mut pings = 0;
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = peer.socket.recv_from(&mut buf) {
        match peer.peer.open(::datapath::Instant::from_millis(0), None, &mut buf[..n]) {
            Ok(Received::Keepalive(_)) => pings += 1,
            other => return Err(format!("expected only keepalive pings, got {other:?}")),
        }
    }
    let s = stats(&r)?;
    if pings < 2 || s.keepalives_sent != pings {
        return Err(format!("{pings} pings arrived, keepalives_sent {}", s.keepalives_sent));
    }
    let (status, out) = ioctl(r.handle, RdcoFilterIoctl::ReadEvent, &[], uapi::rdco_filter::RdcoEvent::SIZE);
    let event =
        uapi::rdco_filter::RdcoEvent::parse(&out).map_err(|e| format!("event ({status:#x}): {e:?}"))?;
    if status != STATUS_SUCCESS
        || event.kind != uapi::rdco_filter::RdcoEventKind::KeepaliveTimeout
        || event.peer_id != PEER_ID
    {
        return Err(format!("expected a keepalive timeout event: {status:#x} {event:?}"));
    }
    finish(machine, r)?;
    Ok(vec![("pings".into(), pings)])
}

/// Classification: a VLAN-tagged IPv4 frame (tag and IP header in a second MDL) to the policy is
/// diverted; frames to a peer's own outer address (even inside a policy prefix), to addresses outside
/// the policy, and non-IP frames go down unchanged.
fn classify_rules(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, true)?;
    // Add 127.0.0.0/8 (the peer's own address) to the policy: it must still never be diverted.
    let prefixes = [
        RdcoPrefix { addr: std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 0)), prefix_len: 24 },
        RdcoPrefix { addr: std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)), prefix_len: 8 },
    ];
    ok(
        "set policy",
        ioctl(
            r.handle,
            RdcoFilterIoctl::SetPolicy,
            &encode(&RdcoSetPolicy::new(&prefixes).expect("policy")),
            0,
        ),
    )?;
    let base = |id: u16| {
        winsim::offload::protocol_packets(datapath::PEER_MAC, r.mac, &udp(200), id, None)[0].frame.clone()
    };
    let mut vlan = base(500);
    vlan.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    let mut to_peer = base(501);
    to_peer[14 + 16..14 + 20].copy_from_slice(&[127, 0, 0, 1]);
    let mut outside = base(502);
    outside[14 + 16..14 + 20].copy_from_slice(&[203, 0, 113, 9]);
    let test = datapath::test_frame([2, 0, 0, 0, 0, 9], r.mac, 7, 100);
    let frames: Vec<(Vec<u8>, datapath::NblInfo)> =
        [vlan, to_peer.clone(), outside.clone(), test.clone()].into_iter().map(|f| (f, Vec::new())).collect();
    datapath::protocol_send_with_info(NIC, &frames);
    let inner = peer.collect(1)?;
    check_inner(&inner, &[(500, udp(200))])?;
    datapath::pump();
    let wire = datapath::wire(NIC);
    if wire != vec![to_peer, outside, test] {
        return Err(format!(
            "the wire should carry the 3 bypass frames unchanged and in order ({} frames)",
            wire.len()
        ));
    }
    let st = stats(&r)?;
    if st.diverted != 1 || st.bypassed != 3 {
        return Err(format!("diverted {} bypassed {}", st.diverted, st.bypassed));
    }
    finish(machine, r)?;
    Ok(vec![("diverted".into(), 1), ("bypassed".into(), 3)])
}

const NIC2: u32 = 2;

/// Peer `id`'s keys (distinct per peer: a packet opens only with the keys of the peer it was sealed for).
fn keys_of(id: u32) -> ([u8; 32], [u8; 32]) {
    let b = u8::try_from(id).unwrap_or(0);
    ([0x40 + b; 32], [0x50 + b; 32])
}

fn set_routes(r: &Rig, id: u32, prefixes: &[(&str, u8)]) -> Result<(), String> {
    let p: Vec<RdcoPrefix> = prefixes
        .iter()
        .map(|&(a, l)| RdcoPrefix { addr: a.parse().expect("address"), prefix_len: l })
        .collect();
    let req = RdcoPeerRoutes::new(id, &p).map_err(|e| e.to_string())?;
    ok(&format!("routes of peer {id}"), ioctl(r.handle, RdcoFilterIoctl::SetPeerRoutes, &encode(&req), 0))
}

fn stats_of(r: &Rig, peer_id: u32, if_index: u32) -> Result<RdcoStats, String> {
    let (status, out) = ioctl(
        r.handle,
        RdcoFilterIoctl::GetStats,
        &encode(&RdcoStatsQuery { peer_id, if_index }),
        RdcoStats::SIZE,
    );
    if status != STATUS_SUCCESS {
        return Err(format!("get stats (peer {peer_id:#x}, module {if_index}): {status:#x}"));
    }
    RdcoStats::parse(&out).map_err(|e| format!("stats: {e:?}"))
}

/// A UDP frame from `mac` to inner destination `dst` (IPv4 or IPv6), IP id `id`; headers patched after
/// the builder (the inner bytes are compared exactly, not checksummed).
fn frame_to(mac: [u8; 6], dst: &str, id: u16) -> Vec<u8> {
    let dst: std::net::IpAddr = dst.parse().expect("address");
    let send = IpSend {
        v6: dst.is_ipv6(),
        proto: Proto::Udp,
        payload_len: 40 + usize::from(id % 50),
        request_checksum: false,
        mss: 1400,
    };
    let mut f = winsim::offload::protocol_packets(datapath::PEER_MAC, mac, &send, id, None)[0].frame.clone();
    match dst {
        std::net::IpAddr::V4(a) => f[14 + 16..14 + 20].copy_from_slice(&a.octets()),
        std::net::IpAddr::V6(a) => f[14 + 24..14 + 40].copy_from_slice(&a.octets()),
    }
    f
}

/// An outer IPv4/UDP frame to `mac` from `src` to `dst` carrying `payload` (IPv4 header checksum set;
/// UDP checksum 0, "none", which IPv4 allows).
fn outer_udp(mac: [u8; 6], src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut f = Vec::with_capacity(14 + 20 + udp_len);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&datapath::PEER_MAC);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&u16::try_from(20 + udp_len).unwrap_or(0).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.0);
    ip.extend_from_slice(&dst.0);
    let mut sum: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&u16::try_from(udp_len).unwrap_or(0).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Whether `got` holds exactly the inner packets of `frames` (any order).
fn same_packets(what: &str, got: &[Vec<u8>], frames: &[Vec<u8>]) -> Result<(), String> {
    let mut want: Vec<Vec<u8>> = frames.iter().map(|f| f[14..].to_vec()).collect();
    let mut got = got.to_vec();
    want.sort();
    got.sort();
    if got != want {
        return Err(format!(
            "{what}: received {} inner packets, expected {} (or the bytes differ)",
            got.len(),
            want.len()
        ));
    }
    Ok(())
}

/// Three peers, each with its own routes (nested prefixes: the longest wins), over two NICs (one module
/// each). Traffic to each prefix reaches the right peer and opens only with that peer's keys; per-peer
/// and per-module counters equal what was sent, and the modules add up to the driver-wide totals. A peer
/// without a key holds its packets (not-ready copies) without stalling the others, and gets them once
/// keyed; a policy prefix no peer routes is held until a route appears; queued packets follow a route
/// change made before the worker runs.
fn three_peers_routes(machine: &mut Machine) -> Outcome {
    datapath::add_nic(NicConfig::ethernet(NIC2)).map_err(|s| format!("add_nic 2: {s:#x}"))?;
    let r = rig(machine)?;
    if r.installed.modules.len() != 2 {
        return Err(format!("expected 2 modules, got {}", r.installed.modules.len()));
    }
    let mac2 = datapath::nic_info(NIC2).ok_or("no NIC 2")?.mac;
    let mut peers = Vec::new();
    for id in 1..=3u32 {
        let (tx, rx) = keys_of(id);
        let p = TestPeer::with_keys(id, tx, rx)?;
        let add = RdcoAddPeer { peer_id: id, local: SocketAddr::from(([127, 0, 0, 1], 0)), remote: p.addr() };
        ok("add peer", ioctl(r.handle, RdcoFilterIoctl::AddPeer, &encode(&add), 0))?;
        peers.push(p);
    }
    for id in 1..=2 {
        let (tx, rx) = keys_of(id);
        install_key_for(&r, id, tx, rx)?;
    }
    set_routes(&r, 1, &[("10.1.0.0", 16)])?;
    set_routes(&r, 2, &[("10.1.2.0", 24), ("fd00:2::", 64)])?;
    set_routes(&r, 3, &[("10.3.0.0", 16)])?;

    // NIC 1: 4 to peer 1, 3 to peer 2 (one IPv6), 2 to peer 3 (no key yet), 1 routed nowhere (bypass).
    let a = [
        (frame_to(r.mac, "10.1.0.5", 1), 1),
        (frame_to(r.mac, "10.1.2.5", 2), 2),
        (frame_to(r.mac, "10.3.0.5", 3), 3),
        (frame_to(r.mac, "10.1.200.5", 4), 1),
        (frame_to(r.mac, "10.1.2.250", 5), 2),
        (frame_to(r.mac, "10.9.9.9", 6), 0),
        (frame_to(r.mac, "10.1.3.1", 7), 1),
        (frame_to(r.mac, "10.3.77.1", 8), 3),
        (frame_to(r.mac, "fd00:2::9", 9), 2),
        (frame_to(r.mac, "10.1.255.255", 10), 1),
    ];
    // NIC 2: 1 to peer 1, 2 to peer 2, 1 to peer 3.
    let b = [
        (frame_to(mac2, "10.1.9.9", 21), 1),
        (frame_to(mac2, "10.1.2.1", 22), 2),
        (frame_to(mac2, "fd00:2::1:1", 23), 2),
        (frame_to(mac2, "10.3.1.1", 24), 3),
    ];
    datapath::protocol_send(NIC, &a.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>());
    datapath::protocol_send(NIC2, &b.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>());
    let for_peer = |id: u32| -> Vec<Vec<u8>> {
        a.iter().chain(b.iter()).filter(|(_, p)| *p == id).map(|(f, _)| f.clone()).collect()
    };
    for id in 1..=2u32 {
        let want = for_peer(id);
        let got = peers[id as usize - 1].collect(want.len())?;
        same_packets(&format!("peer {id}"), &got, &want)?;
    }
    if !peers[2].collect(1)?.is_empty() {
        return Err("peer 3 got packets before it had a key".into());
    }
    datapath::pump();
    if datapath::wire(NIC) != vec![a[5].0.clone()] || !datapath::wire(NIC2).is_empty() {
        return Err("only the unrouted frame may reach the wire, unchanged".into());
    }
    // Keyed now: the held copies leave for peer 3.
    let (tx, rx) = keys_of(3);
    install_key_for(&r, 3, tx, rx)?;
    let want3 = for_peer(3);
    let got3 = peers[2].collect(want3.len())?;
    same_packets("peer 3", &got3, &want3)?;

    // Per-peer counters.
    for (id, want) in [(1, 5), (2, 5), (3, 3)] {
        let st = stats_of(&r, id, 0)?;
        if st.tx_packets != want {
            return Err(format!("peer {id}: tx_packets {}, expected {want}", st.tx_packets));
        }
    }
    // Per-module counters, and the modules add up to the totals.
    let m1 = stats_of(&r, ALL_PEERS, NIC)?;
    let m2 = stats_of(&r, ALL_PEERS, NIC2)?;
    let total = stats_of(&r, ALL_PEERS, 0)?;
    let row = |s: &RdcoStats| (s.diverted, s.bypassed, s.tx_packets, s.holds_not_ready, s.deep_copies);
    if row(&m1) != (9, 1, 9, 2, 2) || row(&m2) != (4, 0, 4, 1, 1) {
        return Err(format!("module counters: NIC 1 {:?}, NIC 2 {:?}", row(&m1), row(&m2)));
    }
    if total.diverted != m1.diverted + m2.diverted
        || total.tx_packets != m1.tx_packets + m2.tx_packets
        || total.tx_bytes != m1.tx_bytes + m2.tx_bytes
        || total.bypassed != m1.bypassed + m2.bypassed
    {
        return Err(format!("the modules do not add up to the totals: {total:?}"));
    }
    if m1.plaintext_copies + m2.plaintext_copies != 0 {
        return Err("a plaintext copy on the zero-copy path".into());
    }
    // LIST_MODULES: both, Running, named after their miniports.
    let (status, out) = ioctl(r.handle, RdcoFilterIoctl::ListModules, &[], RdcoModuleList::SIZE);
    if status != STATUS_SUCCESS {
        return Err(format!("LIST_MODULES: {status:#x}"));
    }
    let list = RdcoModuleList::parse(&out).map_err(|e| e.to_string())?;
    let mut seen: Vec<(u32, u32, String)> =
        list.modules().iter().map(|m| (m.if_index, m.state, String::from_utf16_lossy(m.name()))).collect();
    seen.sort();
    let named = |i: u32| format!("\\DEVICE\\{{5EC0{i:04X}-0000-4000-8000-52444F4E4943}}");
    if seen != vec![(NIC, module_state::RUNNING, named(NIC)), (NIC2, module_state::RUNNING, named(NIC2))] {
        return Err(format!("LIST_MODULES: {seen:?}"));
    }
    if stats_of(&r, ALL_PEERS, 3).is_ok() {
        return Err("GET_STATS for IfIndex 3 (no such module) succeeded".into());
    }

    // Route change with packets queued: 10.3/16 moves to peer 1 and peer 2's /24 goes before the worker
    // runs; the queued packets follow the routes of the moment they are sealed.
    let c = [frame_to(mac2, "10.3.0.7", 31), frame_to(mac2, "10.3.9.7", 32), frame_to(mac2, "10.1.2.7", 33)];
    datapath::protocol_send(NIC2, &c);
    set_routes(&r, 3, &[])?;
    set_routes(&r, 1, &[("10.1.0.0", 16), ("10.3.0.0", 16)])?;
    set_routes(&r, 2, &[("fd00:2::", 64)])?;
    let got = peers[0].collect(c.len())?;
    same_packets("peer 1 after the route change", &got, &c)?;
    if !peers[1].collect(1)?.is_empty() || !peers[2].collect(1)?.is_empty() {
        return Err("a packet went to a peer that no longer owns its prefix".into());
    }
    // A policy prefix with several peers and no route: held (not ready) until a route names a peer.
    ok(
        "set policy",
        ioctl(
            r.handle,
            RdcoFilterIoctl::SetPolicy,
            &encode(
                &RdcoSetPolicy::new(&[RdcoPrefix { addr: "10.9.0.0".parse().expect("a"), prefix_len: 16 }])
                    .expect("policy"),
            ),
            0,
        ),
    )?;
    let d = [frame_to(r.mac, "10.9.0.1", 41), frame_to(r.mac, "10.9.0.2", 42)];
    datapath::protocol_send(NIC, &d);
    for p in &mut peers {
        if !p.collect(1)?.is_empty() {
            return Err("a packet no peer routes left before a route named its peer".into());
        }
    }
    set_routes(&r, 2, &[("fd00:2::", 64), ("10.9.0.0", 24)])?;
    let got = peers[1].collect(d.len())?;
    same_packets("peer 2 after its route appeared", &got, &d)?;
    let m1 = stats_of(&r, ALL_PEERS, NIC)?;
    if m1.diverted != 11 || m1.holds_not_ready != 4 || m1.tx_packets != 11 {
        return Err(format!("module 1 after the policy sends: {:?}", row(&m1)));
    }
    for (id, want) in [(1, 8), (2, 7), (3, 3)] {
        let st = stats_of(&r, id, 0)?;
        if st.tx_packets != want {
            return Err(format!("peer {id} at the end: tx_packets {}, expected {want}", st.tx_packets));
        }
    }
    // Receive on NIC 2: each peer seals 1, 2, 3 packets (its own keys) and they arrive from its
    // endpoint; the module of NIC 2 counts them, NIC 1's does not, and the engine counts each peer's.
    let mut outer = Vec::new();
    let mut inner_want = Vec::new();
    for (i, p) in peers.iter_mut().enumerate() {
        let port = p.addr().port();
        for k in 0..=i {
            let ip = frame_to(mac2, "192.0.2.50", u16::try_from(60 + 10 * i + k).unwrap_or(0))[14..].to_vec();
            let mut buf = vec![0u8; 2048];
            let sealed = p
                .peer
                .seal(::datapath::Instant::from_millis(0), &[&ip], &mut buf)
                .map_err(|e| format!("{e:?}"))?;
            outer.push(outer_udp(mac2, ([127, 0, 0, 1], port), ([127, 0, 0, 1], 1194), &buf[..sealed.len]));
            inner_want.push(ip);
        }
    }
    datapath::nic_indicate(NIC2, &outer, false);
    let up = datapath::take_protocol_received(NIC2);
    datapath::protocol_return_all(NIC2);
    let mut got: Vec<Vec<u8>> = up.iter().map(|f| f[14..].to_vec()).collect();
    got.sort();
    inner_want.sort();
    if got != inner_want {
        return Err(format!("NIC 2 indicated {} inner packets, expected {}", got.len(), inner_want.len()));
    }
    let m1r = stats_of(&r, ALL_PEERS, NIC)?;
    let m2r = stats_of(&r, ALL_PEERS, NIC2)?;
    let rx = |s: &RdcoStats| (s.rx_packets, s.clones, s.rx_copies);
    if rx(&m2r) != (6, 6, 0) || rx(&m1r) != (0, 0, 0) {
        return Err(format!("module receive counters: NIC 1 {:?}, NIC 2 {:?}", rx(&m1r), rx(&m2r)));
    }
    for id in 1..=3u32 {
        let st = stats_of(&r, id, 0)?;
        if st.rx_packets != u64::from(id) {
            return Err(format!("peer {id}: rx_packets {}, expected {id}", st.rx_packets));
        }
    }
    datapath::pump();
    let l2 = datapath::ledger(NIC2);
    if l2.owed() != 0 || !l2.failed.is_empty() {
        return Err(format!("NIC 2 ledger: {l2:?}"));
    }
    finish(machine, r)?;
    Ok(vec![
        ("peers".into(), 3),
        ("modules".into(), 2),
        ("module1_tx".into(), m1.tx_packets),
        ("module2_tx".into(), m2.tx_packets + 3),
    ])
}

/// WSK backpressure: the provider completes no send, so the ciphertext buffers run out; the worker
/// stops and the originals left in the queue are deep-copied ("transport not ready") and completed.
/// When the link drains, the tick sends the copies: every packet arrives, byte for byte.
fn hold_backpressure(machine: &mut Machine) -> Outcome {
    let mut peer = TestPeer::new()?;
    let r = rig(machine)?;
    configure(&r, &peer, true)?;
    set_hold(&r, 1 << 20, 60_000, 4 << 20, 60_000)?;
    winsim::wsk::set_faults(winsim::wsk::Faults { backpressure: Some(0), ..winsim::wsk::Faults::NONE });
    let sends: Vec<IpSend> = (0..600).map(|i| udp(64 + i % 7)).collect();
    datapath::protocol_send_ip(NIC, &sends);
    winsim::sched::run_until_idle();
    winsim::wsk::pump();
    let stalled = counters();
    let l = datapath::ledger(NIC);
    if stalled.copies_not_ready == 0 || l.completed != 600 || !l.failed.is_empty() {
        set_hold(&r, 256, 50, 4 << 20, 5_000)?;
        return Err(format!("backpressure should copy and complete the rest: {stalled:?} {l:?}"));
    }
    // Drain slowly (two send IRPs, at most 64 datagrams, per pump) so the peer's real socket buffer
    // keeps up with the burst.
    winsim::wsk::set_faults(winsim::wsk::Faults { backpressure: Some(2), ..winsim::wsk::Faults::NONE });
    let mut inner = peer.collect(600 - stalled.copies_not_ready as usize)?;
    winsim::context::call_driver(driver(&r), DISPATCH_LEVEL, "test: tick", filter::test_hooks::tick);
    inner.extend(peer.collect(600 - inner.len())?);
    winsim::wsk::set_faults(winsim::wsk::Faults::NONE);
    set_hold(&r, 256, 50, 4 << 20, 5_000)?;
    check_inner(&inner, &numbered(0, &sends)).map_err(|e| {
        format!("{e}: {} arrived, {stalled:?}, {:?}, {:?}", inner.len(), counters(), stats(&r))
    })?;
    if inner.len() != 600 || counters().copy_bytes != 0 {
        return Err(format!("{} of 600 arrived; {:?}", inner.len(), counters()));
    }
    finish(machine, r)?;
    Ok(vec![("not_ready_copies".into(), stalled.copies_not_ready)])
}

pub fn tests() -> Vec<Test> {
    let t = |name: &'static str, run: fn(&mut Machine) -> Outcome| Test {
        suite: "filter_send",
        name,
        expect: None,
        run,
    };
    vec![
        t("rdcofilter.divert_zero_copy", divert_zero_copy),
        t("rdcofilter.classify_rules", classify_rules),
        t("rdcofilter.offloads_diverted", offloads),
        t("rdcofilter.hold_not_ready", hold_not_ready),
        t("rdcofilter.hold_budget", hold_budget),
        t("rdcofilter.hold_ceiling", hold_ceiling),
        t("rdcofilter.hold_wsk_backpressure", hold_backpressure),
        t("rdcofilter.cancel", cancel),
        t("rdcofilter.control_write", control_write),
        t("rdcofilter.keepalive", keepalive),
        t("rdcofilter.pause_restart_traffic", pause_restart),
        t("rdcofilter.power_d3_d0_traffic", power),
        t("rdcofilter.surprise_removal_in_flight", surprise_removal),
        t("rdcofilter.alloc_failure_each_site", alloc_failure_each_site),
        t("rdcofilter.three_peers_routes_two_modules", three_peers_routes),
    ]
}
