//! The filter_receive suite: the real filter (installed from its INF) on a simulated NIC receives the
//! tunnel's encrypted datagrams, sealed in the test by the engine with the peer's keys, and must hand
//! the protocol exactly the inner packets, as Ethernet frames, byte for byte: by the zero-copy clone
//! path without RESOURCES, by one copy with RESOURCES, with the outer packet's offload marks cleared;
//! bypass traffic unchanged and in order; replays, forgeries and keepalives consumed and counted;
//! control packets read through the control device; floats reported; pause, media and reset events
//! while receiving; OID, status and PnP pass-through; every allocation failing in turn; and removal with
//! clones outstanding.
use std::net::SocketAddr;

use ::datapath::{Cipher, Instant, KeyConfig, KeyDirection, KeyFormat, KeySlotId, Peer, PeerConfig};
use kernel::ffi::ndis::{NDIS_STATUS_LINK_STATE, NDIS_STATUS_PENDING, NDIS_STATUS_SUCCESS};
use kernel::ffi::ntos::{NTSTATUS, PASSIVE_LEVEL, STATUS_SUCCESS};
use uapi::ovpn::{OvpnCipherAlg, OvpnCryptoData, OvpnCryptoDataV2, OvpnKeyDirection, OvpnKeySlot};
use uapi::rdco_filter::{
    RdcoAddPeer, RdcoEvent, RdcoEventKind, RdcoFilterIoctl, RdcoNewKey, RdcoPeerRef, RdcoStats, ALL_PEERS,
};
use uapi::Wire;
use winsim::datapath::{
    self as sim, IpSend, NicConfig, Proto, NDIS_STATUS_RESET_END, NDIS_STATUS_RESET_START,
};
use winsim::device::{self, Handle, Io};
use winsim::ndis::{self, ModuleState};
use winsim::pool::{self, FaultPlan};
use winsim::{DriverId, Machine};

use crate::install::{self, Installed};
use crate::{Outcome, Test};

const NIC: u32 = 1;
const PEER_ID: u32 = 1;
/// The tunnel's outer endpoints: our NIC's address and the peer's.
const LOCAL: ([u8; 4], u16) = ([192, 0, 2, 1], 1194);
const REMOTE: ([u8; 4], u16) = ([203, 0, 113, 5], 1194);
const LOCAL6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const REMOTE6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
/// The peer's (gateway's) MAC: the outer frames' source.
const GW_MAC: [u8; 6] = sim::PEER_MAC;
/// Keys: the filter decrypts with `RX_KEY`, the peer (the test's engine) encrypts with it.
const RX_KEY: [u8; 32] = [0x5a; 32];
const TX_KEY: [u8; 32] = [0xa5; 32];
const RX_TAIL: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const TX_TAIL: [u8; 8] = [8, 7, 6, 5, 4, 3, 2, 1];

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

/// Adds peer `peer_id` (`local` → `remote`) to the filter through the control device and gives it
/// AES-256-GCM keys (the filter seals with `TX_KEY`/`TX_TAIL` and opens with `rx`); returns the test's
/// engine for the other end (sealing with `rx`, opening what the filter sealed).
fn add_keyed_peer(
    h: Handle,
    peer_id: u32,
    local: SocketAddr,
    remote: SocketAddr,
    rx: ([u8; 32], [u8; 8]),
) -> Result<Peer, String> {
    let add = encode(&RdcoAddPeer { peer_id, local, remote });
    check(
        &format!("ADD_PEER {peer_id}"),
        device::device_io_control(h, RdcoFilterIoctl::AddPeer.code(), &add, 0).0,
        STATUS_SUCCESS,
    )?;
    let dir = |key: [u8; 32], tail: [u8; 8]| OvpnKeyDirection { key, key_len: 32, nonce_tail: tail };
    let key = encode(&RdcoNewKey {
        key: OvpnCryptoDataV2 {
            v1: OvpnCryptoData {
                encrypt: dir(TX_KEY, TX_TAIL),
                decrypt: dir(rx.0, rx.1),
                key_slot: OvpnKeySlot::Primary,
                cipher_alg: OvpnCipherAlg::AesGcm,
                key_id: 0,
                peer_id: peer_id as i32,
            },
            crypto_options: 0,
        },
    });
    check(
        &format!("NEW_KEY {peer_id}"),
        device::device_io_control(h, RdcoFilterIoctl::NewKey.code(), &key, 0).0,
        STATUS_SUCCESS,
    )?;
    let mut peer = Peer::new(&PeerConfig::new(peer_id), Instant::from_millis(0));
    peer.install_key(
        KeySlotId::Primary,
        &KeyConfig {
            cipher: Cipher::Aes256Gcm,
            format: KeyFormat::from_crypto_options(0),
            key_id: 0,
            encrypt: KeyDirection { key: rx.0, nonce_tail: rx.1 },
            decrypt: KeyDirection { key: TX_KEY, nonce_tail: TX_TAIL },
        },
    )
    .map_err(|e| format!("peer {peer_id} test engine key: {e:?}"))?;
    Ok(peer)
}

/// The machine with the filter installed from its INF, the control device open, peer 1 configured with
/// AES-256-GCM keys, and the peer's side of the tunnel (the test's engine).
struct Tunnel {
    installed: Installed,
    h: Handle,
    mac: [u8; 6],
    peer: Peer,
    now: u64,
}

impl Tunnel {
    fn up(machine: &mut Machine, nic: NicConfig, v6: bool) -> Result<Tunnel, String> {
        sim::add_nic(nic).map_err(|s| format!("add_nic: {s:#x}"))?;
        let inf = install::inf_dir().join(uapi::names::FILTER_INF);
        let installed = install::install_from_inf(machine, &inf, filter::driver_entry)?;
        let h = device::open(uapi::names::FILTER_USER_PATH).map_err(|s| format!("open: {s:#x}"))?;
        let (local, remote) = if v6 {
            (SocketAddr::from((LOCAL6, LOCAL.1)), SocketAddr::from((REMOTE6, REMOTE.1)))
        } else {
            (SocketAddr::from(LOCAL), SocketAddr::from(REMOTE))
        };
        let peer = add_keyed_peer(h, PEER_ID, local, remote, (RX_KEY, RX_TAIL))?;
        let mac = sim::nic_info(NIC).ok_or("no NIC")?.mac;
        Ok(Tunnel { installed, h, mac, peer, now: 0 })
    }

    /// Seals `inner` (an IP packet) as the peer would.
    fn seal(&mut self, inner: &[u8]) -> Result<Vec<u8>, String> {
        self.now += 1;
        let mut out = vec![0u8; inner.len() + 64];
        let s = self
            .peer
            .seal(Instant::from_millis(self.now), &[inner], &mut out)
            .map_err(|e| format!("seal: {e:?}"))?;
        out.truncate(s.len);
        Ok(out)
    }

    fn keepalive(&mut self) -> Result<Vec<u8>, String> {
        self.now += 1;
        let mut out = vec![0u8; 128];
        let s = self
            .peer
            .seal_keepalive(Instant::from_millis(self.now), &mut out)
            .map_err(|e| format!("seal: {e:?}"))?;
        out.truncate(s.len);
        Ok(out)
    }

    fn stats(&self, peer: u32) -> Result<RdcoStats, String> {
        let (s, out) = device::device_io_control(
            self.h,
            RdcoFilterIoctl::GetStats.code(),
            &encode(&RdcoPeerRef { peer_id: peer }),
            RdcoStats::SIZE,
        );
        check("GET_STATS", s, STATUS_SUCCESS)?;
        RdcoStats::parse(&out).map_err(|e| e.to_string())
    }

    fn module(&self) -> usize {
        self.installed.modules[0]
    }

    fn driver(&self) -> DriverId {
        self.installed.driver
    }

    fn outstanding(&self) -> Option<i64> {
        let m = self.module();
        winsim::context::call_driver(self.driver(), PASSIVE_LEVEL, "test: rx outstanding", || {
            filter::test_hooks::rx_outstanding(m)
        })
    }

    /// The module's receive block of `RdcoStats`: (bypassed, copies, no-buffer drops, unknown-peer
    /// drops, floats).
    fn rx_counters(&self) -> Result<[u64; 5], String> {
        let s = self.stats(ALL_PEERS)?;
        Ok([s.rx_bypassed, s.rx_copies, s.rx_drop_no_buffer, s.rx_drop_unknown_peer, s.rx_floats])
    }

    /// Pause (waiting for a pended one), detach, close, unload.
    fn down(self, machine: &mut Machine) -> Result<(), String> {
        for &m in &self.installed.modules {
            let status = ndis::pause_module(m, 0);
            if status == NDIS_STATUS_PENDING {
                winsim::pnp::settle_pause(m);
            }
            if ndis::module_state(m) != Some(ModuleState::Paused) {
                return Err(format!("module {:?} after pause", ndis::module_state(m)));
            }
            ndis::detach_module(m);
        }
        check("close", device::close(self.h), STATUS_SUCCESS)?;
        machine.unload_driver(self.installed.driver)
    }
}

/// The inner packet of send `id` as the protocol must receive it (Ethernet + IP + UDP/TCP), and the
/// IP packet the tunnel carries (the same without the Ethernet header).
fn inner(mac: [u8; 6], id: u16, v6: bool, proto: Proto, len: usize) -> (Vec<u8>, Vec<u8>) {
    let s = IpSend { v6, proto, payload_len: len, request_checksum: false, mss: 1400 };
    let frame = winsim::offload::inbound_frame(mac, GW_MAC, &s, id);
    let ip = frame[14..].to_vec();
    (frame, ip)
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An outer frame carrying `payload` over UDP from `src` to `dst` (IPv4 or IPv6 by the addresses),
/// optionally 802.1Q-tagged, with correct IPv4 header and UDP checksums.
fn outer_frame(
    mac: [u8; 6],
    src: (&[u8], u16),
    dst: (&[u8], u16),
    payload: &[u8],
    vlan: Option<u16>,
) -> Vec<u8> {
    let v6 = src.0.len() == 16;
    let udp_len = 8 + payload.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&src.1.to_be_bytes());
    udp.extend_from_slice(&dst.1.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(src.0);
    pseudo.extend_from_slice(dst.0);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let mut c = fold(sum16(&pseudo) + sum16(&udp));
    if c == 0 {
        c = 0xffff;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&mac);
    f.extend_from_slice(&GW_MAC);
    if let Some(tci) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    if v6 {
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        f.extend_from_slice(src.0);
        f.extend_from_slice(dst.0);
    } else {
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
        ip.extend_from_slice(src.0);
        ip.extend_from_slice(dst.0);
        let c = fold(sum16(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
    }
    f.extend_from_slice(&udp);
    f
}

fn from_peer(mac: [u8; 6], payload: &[u8]) -> Vec<u8> {
    outer_frame(mac, (&REMOTE.0, REMOTE.1), (&LOCAL.0, LOCAL.1), payload, None)
}

fn tagged(inner_frame: &[u8], tci: u16) -> Vec<u8> {
    let mut f = inner_frame[..12].to_vec();
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&inner_frame[12..]);
    f
}

fn expect_frames(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: the protocol received {} frames, expected {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g != w {
            let at = g.iter().zip(w).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
            return Err(format!(
                "{what}: frame {i} differs at byte {at} ({} bytes, expected {})",
                g.len(),
                w.len()
            ));
        }
    }
    Ok(())
}

/// (frames to indicate, frames the protocol must get, tunnel packets among them).
type Mixed = (Vec<Vec<u8>>, Vec<Vec<u8>>, u64);

/// Encrypted datagrams (IPv4 and IPv6 inner packets, UDP and TCP, small to full-size) interleaved with
/// bypass frames; returns (frames to indicate, frames the protocol must get, tunnel packets).
fn mixed(t: &mut Tunnel, first_id: u16, count: u16) -> Result<Mixed, String> {
    let mut wire = Vec::new();
    let mut want = Vec::new();
    let mut tunnel = 0;
    for i in 0..count {
        let id = first_id + i;
        if i % 3 == 2 {
            let f = sim::test_frame(t.mac, GW_MAC, u64::from(id), 40 + usize::from(i) * 7);
            wire.push(f.clone());
            want.push(f);
            continue;
        }
        let len = [1usize, 100, 512, 1300, 1400][usize::from(i) % 5];
        let proto = if i % 2 == 0 { Proto::Udp } else { Proto::Tcp };
        let (frame, ip) = inner(t.mac, id, i % 4 == 1, proto, len);
        let sealed = t.seal(&ip)?;
        wire.push(from_peer(t.mac, &sealed));
        want.push(frame);
        tunnel += 1;
    }
    Ok((wire, want, tunnel))
}

/// The fast path: no RESOURCES, payloads in one MDL (headers split 7/13/rest): clones, zero copies.
fn fast_path(machine: &mut Machine) -> Outcome {
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let (wire, want, tunnel) = mixed(&mut t, 1, 30)?;
    let n = sim::nic_indicate(NIC, &wire, false);
    if n != wire.len() {
        return Err(format!("indicated {n} of {}", wire.len()));
    }
    let got = sim::take_protocol_received(NIC);
    expect_frames(&got, &want, "fast path")?;
    let ledger = sim::ledger(NIC);
    if ledger.received_corrupt != 0 || ledger.received_ok != want.len() as u64 {
        return Err(format!("protocol ledger {ledger:?}"));
    }
    if t.outstanding() != Some(wire.len() as i64) {
        return Err(format!("{:?} outstanding while the protocol holds {}", t.outstanding(), wire.len()));
    }
    sim::protocol_return_all(NIC);
    if t.outstanding() != Some(0) {
        return Err(format!("{:?} outstanding after every return", t.outstanding()));
    }
    // Every clone was freed and every original went back to the NIC.
    let left = sim::in_flight(NIC);
    if !left.is_empty() {
        return Err(format!("NBLs still in flight after every return: {left:?}"));
    }
    let s = t.stats(ALL_PEERS)?;
    if s.clones != tunnel || s.rx_packets != tunnel || s.plaintext_copies != 0 || s.deep_copies != 0 {
        return Err(format!("module stats after {tunnel} tunnel packets: {s:?}"));
    }
    let p = t.stats(PEER_ID)?;
    if p.rx_packets != tunnel {
        return Err(format!("peer stats: {p:?}"));
    }
    let [bypassed, copies, ..] = t.rx_counters()?;
    if bypassed != (wire.len() as u64 - tunnel) || copies != 0 {
        return Err(format!("bypassed {bypassed}, copies {copies}"));
    }
    t.down(machine)?;
    Ok(vec![("tunnel_packets".into(), tunnel), ("clones".into(), s.clones), ("plaintext_copies".into(), 0)])
}

/// RESOURCES receives: one copy each into the filter's own NBLs; the miniport's chain is restored (the
/// verifier checks) and the copies come back through FilterReturnNetBufferLists.
fn resources(machine: &mut Machine) -> Outcome {
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let mut total = 0u64;
    let mut copies = 0u64;
    for round in 0..6u16 {
        let (wire, want, tunnel) = mixed(&mut t, 100 * (round + 1), 12)?;
        // Three batches in four carry RESOURCES, as the logo tests do.
        let with_resources = round % 4 != 0;
        sim::nic_indicate(NIC, &wire, with_resources);
        let got = sim::take_protocol_received(NIC);
        expect_frames(&got, &want, if with_resources { "RESOURCES batch" } else { "owned batch" })?;
        total += tunnel;
        if with_resources {
            copies += tunnel;
        }
        sim::protocol_return_all(NIC);
    }
    if t.outstanding() != Some(0) {
        return Err(format!("{:?} outstanding after every return", t.outstanding()));
    }
    let s = t.stats(ALL_PEERS)?;
    if s.deep_copies != copies
        || s.plaintext_copies != 0
        || s.rx_packets != total
        || s.clones != total - copies
    {
        return Err(format!("stats after {total} packets, {copies} by copy: {s:?}"));
    }
    let ledger = sim::ledger(NIC);
    if ledger.received_corrupt != 0 {
        return Err(format!("protocol ledger {ledger:?}"));
    }
    t.down(machine)?;
    Ok(vec![("tunnel_packets".into(), total), ("resources_copies".into(), copies)])
}

/// IPv6 outer datagrams, an 802.1Q-tagged outer frame, and a NIC whose MDLs split the UDP payload (the
/// copy path for a datagram the engine cannot open in one piece).
fn v6_vlan_split(machine: &mut Machine) -> Outcome {
    let mut nic = NicConfig::ethernet(NIC);
    nic.rx_split = vec![7, 13, 40, 300];
    let mut t = Tunnel::up(machine, nic, true)?;
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for i in 0..8u16 {
        let (frame, ip) =
            inner(t.mac, 500 + i, i % 2 == 0, Proto::Udp, [10usize, 600, 1200, 90][usize::from(i % 4)]);
        let sealed = t.seal(&ip)?;
        let vlan = (i % 3 == 0).then_some(0x0064);
        wire.push(outer_frame(t.mac, (&REMOTE6, REMOTE.1), (&LOCAL6, LOCAL.1), &sealed, vlan));
        want.push(match vlan {
            Some(tci) => tagged(&frame, tci),
            None => frame,
        });
    }
    sim::nic_indicate(NIC, &wire, false);
    let got = sim::take_protocol_received(NIC);
    expect_frames(&got, &want, "IPv6 / VLAN / split payload")?;
    sim::protocol_return_all(NIC);
    let s = t.stats(ALL_PEERS)?;
    let [_, copies, ..] = t.rx_counters()?;
    if s.rx_packets != 8 || copies == 0 || s.clones + copies != 8 || s.plaintext_copies != 0 {
        return Err(format!("stats {s:?}, copies {copies}"));
    }
    // Receive data the miniport marks read-only is never opened in place: every one is copied.
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for i in 0..4u16 {
        let (frame, ip) = inner(t.mac, 600 + i, false, Proto::Udp, 40);
        let sealed = t.seal(&ip)?;
        wire.push(outer_frame(t.mac, (&REMOTE6, REMOTE.1), (&LOCAL6, LOCAL.1), &sealed, None));
        want.push(frame);
    }
    let clones_before = s.clones;
    sim::nic_indicate_with_flags(NIC, &wire, false, kernel::ffi::nbl::NDIS_NBL_FLAGS_RECV_READ_ONLY);
    expect_frames(&sim::take_protocol_received(NIC), &want, "read-only receive data")?;
    sim::protocol_return_all(NIC);
    let s = t.stats(ALL_PEERS)?;
    if s.clones != clones_before || s.rx_copies != copies + 4 {
        return Err(format!(
            "read-only data: {} clones (was {clones_before}), {} copies",
            s.clones, s.rx_copies
        ));
    }
    t.down(machine)?;
    Ok(vec![("clones".into(), s.clones), ("copies".into(), copies)])
}

/// The NIC marks the outer datagrams with checksum results and an RSS hash; the protocol checks that
/// the marks on what it gets describe *that* packet, so the filter must clear them on the inner one.
/// Bypass IP traffic keeps its marks (and the protocol accepts them).
fn offload_marks_cleared(machine: &mut Machine) -> Outcome {
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let mut wire = Vec::new();
    for i in 0..10u16 {
        let (_, ip) = inner(t.mac, 700 + i, false, if i % 2 == 0 { Proto::Tcp } else { Proto::Udp }, 300);
        let sealed = t.seal(&ip)?;
        wire.push(from_peer(t.mac, &sealed));
    }
    for resources in [false, true] {
        sim::nic_indicate_offloaded(NIC, &wire[usize::from(resources) * 5..][..5], resources, true, false);
        sim::protocol_return_all(NIC);
    }
    let opened = t.stats(ALL_PEERS)?.rx_packets;
    // A URO-coalesced tunnel datagram is left to the stack (which splits it for the WSK socket): it goes
    // up exactly as it came and is not opened.
    let (_, ip) = inner(t.mac, 720, false, Proto::Udp, 100);
    let uro = from_peer(t.mac, &t.seal(&ip)?);
    sim::take_protocol_received(NIC);
    sim::nic_indicate_offloaded(NIC, std::slice::from_ref(&uro), false, true, true);
    expect_frames(&sim::take_protocol_received(NIC), std::slice::from_ref(&uro), "URO datagram")?;
    sim::protocol_return_all(NIC);
    if t.stats(ALL_PEERS)?.rx_packets != opened {
        return Err("a URO-coalesced datagram was opened".into());
    }
    let corrupt_before = sim::ledger(NIC).received_corrupt;
    // Bypass IP packets with their marks.
    let bypass: Vec<IpSend> = (0..4)
        .map(|i| IpSend {
            v6: i % 2 == 1,
            proto: Proto::Udp,
            payload_len: 200,
            request_checksum: false,
            mss: 1400,
        })
        .collect();
    sim::nic_indicate_ip(NIC, &bypass, false, true);
    sim::protocol_return_all(NIC);
    let ledger = sim::ledger(NIC);
    // The URO datagram itself is not a packet the protocol's test traffic knows (one corrupt).
    if ledger.received_ok != 14 || ledger.received_corrupt != corrupt_before {
        return Err(format!("protocol ledger {ledger:?} (marks of the outer packet reached the stack?)"));
    }
    t.down(machine)?;
    Ok(vec![("marked_datagrams".into(), 10)])
}

/// Replays, forgeries, unknown peers, keepalives and control packets are consumed and counted; control
/// packets reach user mode through IRP_MJ_READ (queued, and pended reads completed).
fn drops_keepalive_control(machine: &mut Machine) -> Outcome {
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let (_, ip) = inner(t.mac, 900, false, Proto::Udp, 64);
    let good = t.seal(&ip)?;
    let mut forged = t.seal(&ip)?;
    let last = forged.len() - 1;
    forged[last] ^= 0x40;
    let ping = t.keepalive()?;
    let control: Vec<u8> = [0x20u8].iter().copied().chain((0..40).map(|i| i as u8)).collect();
    let mut other_peer = good.clone();
    other_peer[3] = 0x42; // peer id 0x000042: nobody
    let mut no_key = t.seal(&ip)?;
    no_key[0] = (no_key[0] & 0xf8) | 3; // key id 3: not installed
    for resources in [false, true] {
        let wire: Vec<Vec<u8>> = [&good, &good, &forged, &ping, &control, &other_peer, &no_key]
            .iter()
            .map(|p| from_peer(t.mac, p))
            .collect();
        sim::nic_indicate(NIC, &wire, resources);
        sim::protocol_return_all(NIC);
    }
    let got = sim::take_protocol_received(NIC);
    // Only the first `good` is delivered. Replays: its copy in batch 1, both copies and the ping in
    // batch 2 (4); the forgery fails authentication in both batches (its packet id is never committed).
    if got.len() != 1 {
        return Err(format!("the protocol got {} frames, expected the one good packet", got.len()));
    }
    let s = t.stats(ALL_PEERS)?;
    let [_, _, _, unknown, _] = t.rx_counters()?;
    if s.rx_packets != 1
        || s.drop_replay != 4
        || s.drop_auth != 2
        || s.keepalives_received != 1
        || s.control_in != 2
    {
        return Err(format!("stats {s:?}"));
    }
    if unknown != 2 || s.drop_no_key != 2 {
        return Err(format!("{unknown} unknown-peer and {} no-key drops, expected 2 and 2", s.drop_no_key));
    }
    // Both control packets are queued: read them.
    for i in 0..2 {
        let (status, out) = device::read(t.h, 2048);
        check(&format!("read control {i}"), status, STATUS_SUCCESS)?;
        let (from, packet) = uapi::sockaddr::split_prefixed(&out).map_err(|e| e.to_string())?;
        if from != SocketAddr::from(REMOTE) || packet != control.as_slice() {
            return Err(format!("control read {i}: from {from}, {} bytes", packet.len()));
        }
    }
    // A pended read completes when the next control packet arrives.
    let Io::Pending(irp) = device::submit_read(t.h, 2048) else {
        return Err("a read with nothing queued did not pend".into());
    };
    sim::nic_indicate(NIC, &[from_peer(t.mac, &control)], false);
    let (status, out) = device::poll(irp).ok_or("the pended read did not complete")?;
    check("pended read", status, STATUS_SUCCESS)?;
    if uapi::sockaddr::split_prefixed(&out).map(|(_, p)| p.to_vec()) != Ok(control.clone()) {
        return Err("the pended read returned something else".into());
    }
    // A pended read is cancelled on close (CLEANUP); then the driver unloads cleanly.
    let Io::Pending(_) = device::submit_read(t.h, 2048) else {
        return Err("second read did not pend".into());
    };
    t.down(machine)?;
    Ok(vec![("drop_replay".into(), s.drop_replay), ("drop_auth".into(), s.drop_auth)])
}

/// An authenticated packet from a new source address (to our local endpoint) floats the peer: it is
/// delivered, the peer's remote moves, and a float event reaches READ_EVENT.
fn float(machine: &mut Machine) -> Outcome {
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let new_src: ([u8; 4], u16) = ([198, 18, 0, 77], 40_000);
    let (frame, ip) = inner(t.mac, 950, false, Proto::Udp, 200);
    let sealed = t.seal(&ip)?;
    let wire = outer_frame(t.mac, (&new_src.0, new_src.1), (&LOCAL.0, LOCAL.1), &sealed, None);
    let Io::Pending(irp) =
        device::submit_io_control(t.h, RdcoFilterIoctl::ReadEvent.code(), &[], RdcoEvent::SIZE)
    else {
        return Err("READ_EVENT did not pend".into());
    };
    sim::nic_indicate(NIC, &[wire], true);
    expect_frames(&sim::take_protocol_received(NIC), &[frame], "floated packet")?;
    sim::protocol_return_all(NIC);
    let (status, out) = device::poll(irp).ok_or("no float event")?;
    check("READ_EVENT", status, STATUS_SUCCESS)?;
    let e = RdcoEvent::parse(&out).map_err(|e| e.to_string())?;
    if e.kind != RdcoEventKind::Float || e.peer_id != PEER_ID || e.address != Some(SocketAddr::from(new_src))
    {
        return Err(format!("event {e:?}"));
    }
    // Packets from the new address are now the peer's; the old address is no longer matched by source.
    let (frame2, ip2) = inner(t.mac, 951, false, Proto::Udp, 20);
    let sealed2 = t.seal(&ip2)?;
    sim::nic_indicate(
        NIC,
        &[outer_frame(t.mac, (&new_src.0, new_src.1), (&[10, 9, 9, 9], 5), &sealed2, None)],
        false,
    );
    expect_frames(&sim::take_protocol_received(NIC), &[frame2], "after the float")?;
    sim::protocol_return_all(NIC);
    let [.., floats] = t.rx_counters()?;
    if floats != 1 {
        return Err(format!("{floats} floats counted"));
    }
    t.down(machine)?;
    Ok(vec![("floats".into(), floats)])
}

/// Pause with clones held by the protocol (the pause pends until they come back), restart, media
/// disconnect/connect and a NIC reset (status pass-through) while receiving.
fn pause_media_reset(machine: &mut Machine) -> Outcome {
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let mut pended = 0;
    let mut delivered = 0usize;
    for round in 0..6u16 {
        let (wire, want, _) = mixed(&mut t, 1000 + round * 20, 9)?;
        sim::nic_indicate(NIC, &wire, round % 2 == 1);
        expect_frames(&sim::take_protocol_received(NIC), &want, "round")?;
        delivered += want.len();
        match round {
            1 | 4 => {
                let m = t.module();
                let status = ndis::pause_module(m, 0);
                if status == NDIS_STATUS_PENDING {
                    pended += 1;
                    if ndis::module_state(m) != Some(ModuleState::Pausing) {
                        return Err("pause pended but the module is not Pausing".into());
                    }
                    // Receives while Pausing never reach the filter (NDIS does not call a module that is
                    // not Running); the protocol returns what it holds and the pause completes.
                    sim::protocol_return_all(NIC);
                    winsim::pnp::settle_pause(m);
                } else if sim::protocol_holding(NIC) != 0 {
                    return Err("the pause completed while the protocol held clones".into());
                }
                if ndis::module_state(m) != Some(ModuleState::Paused) {
                    return Err(format!("module {:?} after its pause", ndis::module_state(m)));
                }
                check("restart", ndis::restart_module(m), NDIS_STATUS_SUCCESS)?;
            }
            2 => {
                let mut down = [0u8; 4];
                sim::nic_indicate_status(NIC, NDIS_STATUS_LINK_STATE, &mut down);
                sim::nic_indicate_status(NIC, NDIS_STATUS_LINK_STATE, &mut down);
                sim::protocol_return_all(NIC);
            }
            3 => {
                sim::nic_indicate_status(NIC, NDIS_STATUS_RESET_START, &mut []);
                sim::nic_indicate_status(NIC, NDIS_STATUS_RESET_END, &mut []);
                sim::protocol_return_all(NIC);
            }
            _ => sim::protocol_return_all(NIC),
        }
    }
    let seen = sim::protocol_status(NIC);
    for code in [NDIS_STATUS_LINK_STATE, NDIS_STATUS_RESET_START, NDIS_STATUS_RESET_END] {
        if !seen.contains(&code) {
            return Err(format!("status {code:#x} did not reach the protocol: {seen:x?}"));
        }
    }
    if pended == 0 {
        return Err("no pause pended although the protocol held clones each time".into());
    }
    t.down(machine)?;
    Ok(vec![("pauses_pended".into(), pended), ("frames".into(), delivered as u64)])
}

/// OIDs through the real filter: every OID the simulated stack sends, short buffers, the offload
/// configuration, and a cancellation passed down.
fn oid_passthrough(machine: &mut Machine) -> Outcome {
    use kernel::ffi::ndis::{NDIS_STATUS_BUFFER_TOO_SHORT, NDIS_STATUS_INVALID_OID};
    use kernel::ffi::oid::{
        NdisRequestQueryInformation, NdisRequestSetInformation, OID_802_3_CURRENT_ADDRESS,
        OID_GEN_CURRENT_PACKET_FILTER, OID_GEN_LINK_SPEED, OID_GEN_MAXIMUM_FRAME_SIZE,
        OID_TCP_OFFLOAD_CURRENT_CONFIG,
    };
    use winsim::oid::protocol_request;
    let t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let q = NdisRequestQueryInformation;
    let r = protocol_request(NIC, q, OID_802_3_CURRENT_ADDRESS, &[0; 6]);
    if r.status != NDIS_STATUS_SUCCESS || r.buffer != t.mac || r.bytes != 6 {
        return Err(format!("OID_802_3_CURRENT_ADDRESS: {r:x?}"));
    }
    let r = protocol_request(NIC, q, OID_GEN_MAXIMUM_FRAME_SIZE, &[0; 2]);
    if r.status != NDIS_STATUS_BUFFER_TOO_SHORT || r.bytes_needed != 4 {
        return Err(format!("short OID_GEN_MAXIMUM_FRAME_SIZE: {r:x?}"));
    }
    let r = protocol_request(NIC, q, OID_GEN_MAXIMUM_FRAME_SIZE, &[0; 4]);
    if r.status != NDIS_STATUS_SUCCESS || r.buffer != 1500u32.to_le_bytes() || r.bytes != 4 {
        return Err(format!("OID_GEN_MAXIMUM_FRAME_SIZE: {r:x?}"));
    }
    let r = protocol_request(NIC, q, OID_GEN_LINK_SPEED, &[0; 4]);
    if r.status != NDIS_STATUS_SUCCESS || r.buffer != 100_000_000u32.to_le_bytes() {
        return Err(format!("OID_GEN_LINK_SPEED: {r:x?}"));
    }
    let r = protocol_request(NIC, q, OID_TCP_OFFLOAD_CURRENT_CONFIG, &[0; 512]);
    let want = sim::nic_offload_bytes(NIC).ok_or("no offload bytes")?;
    if r.status != NDIS_STATUS_SUCCESS || r.bytes as usize != want.len() || r.buffer[..want.len()] != want[..]
    {
        return Err(format!("OID_TCP_OFFLOAD_CURRENT_CONFIG: status {:#x}, {} bytes", r.status, r.bytes));
    }
    let r = protocol_request(
        NIC,
        NdisRequestSetInformation,
        OID_GEN_CURRENT_PACKET_FILTER,
        &0x0bu32.to_le_bytes(),
    );
    if r.status != NDIS_STATUS_SUCCESS || winsim::oid::packet_filter(NIC) != Some(0x0b) || r.bytes != 4 {
        return Err(format!("OID_GEN_CURRENT_PACKET_FILTER: {r:x?}"));
    }
    let r = protocol_request(NIC, NdisRequestSetInformation, OID_GEN_CURRENT_PACKET_FILTER, &[0; 2]);
    if r.status != NDIS_STATUS_BUFFER_TOO_SHORT || r.bytes_needed != 4 {
        return Err(format!("short set OID_GEN_CURRENT_PACKET_FILTER: {r:x?}"));
    }
    let r = protocol_request(NIC, q, 0x0101_0199, &[0; 4]);
    if r.status != NDIS_STATUS_INVALID_OID {
        return Err(format!("unknown OID: {r:x?}"));
    }
    // A statistics query (OID_GEN_STATISTICS) and a method request pass through with the miniport's
    // answer (the simulated miniport supports neither).
    let r = protocol_request(NIC, kernel::ffi::oid::NdisRequestQueryStatistics, 0x0002_0106, &[0; 64]);
    if r.status != NDIS_STATUS_INVALID_OID || r.bytes != 0 {
        return Err(format!("OID_GEN_STATISTICS: {r:x?}"));
    }
    let r = protocol_request(NIC, kernel::ffi::oid::NdisRequestMethod, 0x0101_0199, &[0; 16]);
    if r.status != NDIS_STATUS_INVALID_OID {
        return Err(format!("method request: {r:x?}"));
    }
    // Nothing is pending, so a cancel matches nothing and is not forwarded.
    let before = winsim::oid::cancels_forwarded();
    winsim::oid::protocol_cancel_request(NIC, 0x1234);
    if winsim::oid::cancels_forwarded() != before {
        return Err("a cancel for no pending request was forwarded".into());
    }
    t.down(machine)?;
    Ok(vec![("oids".into(), 10)])
}

/// A datagram the stack reassembled arrives through the WSK path (`indicate_datagram`, through its
/// test hook): copied once, opened, and indicated as a frame to the NIC's MAC.
fn wsk_datagram(machine: &mut Machine) -> Outcome {
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let (frame, ip) = inner(t.mac, 1200, false, Proto::Tcp, 1000);
    let sealed = t.seal(&ip)?;
    let m = t.module();
    let status = winsim::context::call_driver(t.driver(), PASSIVE_LEVEL, "test: WSK datagram", || {
        filter::test_hooks::indicate_datagram(m, &sealed, SocketAddr::from(REMOTE))
    });
    check("indicate_datagram", status, NDIS_STATUS_SUCCESS)?;
    let got = sim::take_protocol_received(NIC);
    let mut want = frame;
    want[6..12].copy_from_slice(&[0x02, 0x72, 0x64, 0x63, 0x6f, 0x01]);
    expect_frames(&got, &[want], "WSK datagram")?;
    // A replay of it is dropped; an oversized one refused.
    let status = winsim::context::call_driver(t.driver(), PASSIVE_LEVEL, "test: WSK replay", || {
        filter::test_hooks::indicate_datagram(m, &sealed, SocketAddr::from(REMOTE))
    });
    check("replayed indicate_datagram", status, NDIS_STATUS_SUCCESS)?;
    if !sim::take_protocol_received(NIC).is_empty() {
        return Err("a replayed WSK datagram was indicated".into());
    }
    // Larger than every protocol slot together (32 x 2 KB): refused.
    let big = vec![0u8; 70_000];
    let status = winsim::context::call_driver(t.driver(), PASSIVE_LEVEL, "test: WSK big", || {
        filter::test_hooks::indicate_datagram(m, &big, SocketAddr::from(REMOTE))
    });
    check("oversized indicate_datagram", status, kernel::ffi::ndis::NDIS_STATUS_INVALID_PARAMETER)?;
    sim::protocol_return_all(NIC);
    // While the module is paused nothing is indicated: the WSK path is told so.
    check("pause", ndis::pause_module(m, 0), NDIS_STATUS_SUCCESS)?;
    let fresh = t.seal(&ip)?;
    let status = winsim::context::call_driver(t.driver(), PASSIVE_LEVEL, "test: WSK while paused", || {
        filter::test_hooks::indicate_datagram(m, &fresh, SocketAddr::from(REMOTE))
    });
    check("indicate_datagram while paused", status, kernel::ffi::ndis::NDIS_STATUS_PAUSED)?;
    check("restart", ndis::restart_module(m), NDIS_STATUS_SUCCESS)?;
    if t.outstanding() != Some(0) {
        return Err(format!("{:?} outstanding", t.outstanding()));
    }
    let s = t.stats(ALL_PEERS)?;
    if s.drop_replay != 1 || s.rx_packets != 1 {
        return Err(format!("stats {s:?}"));
    }
    t.down(machine)?;
    Ok(vec![("datagrams".into(), 1)])
}

/// The WSK path's datagram for a test: sealed `ip` from the peer, indicated on the module.
fn wsk_indicate(t: &Tunnel, sealed: &[u8]) -> i32 {
    let m = t.module();
    winsim::context::call_driver(t.driver(), PASSIVE_LEVEL, "test: WSK datagram", || {
        filter::test_hooks::indicate_datagram(m, sealed, SocketAddr::from(REMOTE))
    })
}

/// The frame the protocol gets for a WSK datagram: the tunnel MAC as source.
fn from_tunnel_mac(mut frame: Vec<u8>) -> Vec<u8> {
    frame[6..12].copy_from_slice(&[0x02, 0x72, 0x64, 0x63, 0x6f, 0x01]);
    frame
}

/// Jumbo datagrams (9000-byte inner packets, IPv4 and IPv6, over a 9 KB-MTU NIC) on every copy path:
/// RESOURCES receives, a payload the NIC splits across MDLs, read-only receive data, and the WSK path.
/// Each is copied once into a run of adjacent copy slots (no drop, no allocation), opened there and
/// indicated byte for byte; the fast path still takes the ones it can open in place.
fn jumbo_copy_path(machine: &mut Machine) -> Outcome {
    let mut nic = NicConfig::ethernet(NIC);
    nic.mtu = 9000;
    let mut t = Tunnel::up(machine, nic, false)?;
    let mut rounds = Vec::new();
    for (i, len) in [8900usize, 8000, 5000, 2100].into_iter().enumerate() {
        let id = 1300 + i as u16;
        let (frame, ip) = inner(t.mac, id, i % 2 == 1, if i % 2 == 0 { Proto::Tcp } else { Proto::Udp }, len);
        let sealed = t.seal(&ip)?;
        rounds.push((frame, from_peer(t.mac, &sealed)));
    }
    let before = t.stats(ALL_PEERS)?;
    // RESOURCES: one batch of all four.
    let wire: Vec<Vec<u8>> = rounds.iter().map(|r| r.1.clone()).collect();
    let want: Vec<Vec<u8>> = rounds.iter().map(|r| r.0.clone()).collect();
    sim::nic_indicate(NIC, &wire, true);
    expect_frames(&sim::take_protocol_received(NIC), &want, "jumbo RESOURCES receives")?;
    sim::protocol_return_all(NIC);
    // Read-only receive data (copied, never opened in place).
    let mut wire2 = Vec::new();
    let mut want2 = Vec::new();
    for i in 0..2u16 {
        let (frame, ip) = inner(t.mac, 1320 + i, i == 1, Proto::Udp, 8950);
        wire2.push(from_peer(t.mac, &t.seal(&ip)?));
        want2.push(frame);
    }
    sim::nic_indicate_with_flags(NIC, &wire2, false, kernel::ffi::nbl::NDIS_NBL_FLAGS_RECV_READ_ONLY);
    expect_frames(&sim::take_protocol_received(NIC), &want2, "jumbo read-only receives")?;
    sim::protocol_return_all(NIC);
    // The WSK path: a 9000-byte inner packet reassembled by the stack.
    let (frame, ip) = inner(t.mac, 1330, false, Proto::Tcp, 8900);
    let sealed = t.seal(&ip)?;
    check("jumbo indicate_datagram", wsk_indicate(&t, &sealed), NDIS_STATUS_SUCCESS)?;
    expect_frames(&sim::take_protocol_received(NIC), &[from_tunnel_mac(frame)], "jumbo WSK datagram")?;
    sim::protocol_return_all(NIC);
    let s = t.stats(ALL_PEERS)?;
    let copies = s.rx_copies - before.rx_copies;
    if copies != 7
        || s.rx_packets - before.rx_packets != 7
        || s.rx_drop_no_buffer != before.rx_drop_no_buffer
        || s.plaintext_copies != 0
    {
        return Err(format!("after 7 jumbo datagrams: {copies} copies, stats {s:?}"));
    }
    if t.outstanding() != Some(0) {
        return Err(format!("{:?} outstanding after every return", t.outstanding()));
    }
    t.down(machine)?;
    // A NIC that splits the jumbo payload across MDLs: the copy path again.
    let mut nic = NicConfig::ethernet(NIC);
    nic.mtu = 9000;
    nic.rx_split = vec![7, 13, 40, 3000];
    let mut t = Tunnel::up(machine, nic, true)?;
    let before = t.stats(ALL_PEERS)?;
    let (frame, ip) = inner(t.mac, 1340, true, Proto::Udp, 8900);
    let sealed = t.seal(&ip)?;
    let wire = outer_frame(t.mac, (&REMOTE6, REMOTE.1), (&LOCAL6, LOCAL.1), &sealed, Some(0x0064));
    sim::nic_indicate(NIC, &[wire], false);
    expect_frames(&sim::take_protocol_received(NIC), &[tagged(&frame, 0x0064)], "split jumbo receive")?;
    sim::protocol_return_all(NIC);
    let s = t.stats(ALL_PEERS)?;
    if s.rx_copies - before.rx_copies != 1
        || s.rx_packets - before.rx_packets != 1
        || s.rx_drop_no_buffer != before.rx_drop_no_buffer
    {
        return Err(format!("split jumbo: stats {s:?}"));
    }
    t.down(machine)?;
    Ok(vec![("jumbo_datagrams".into(), 8), ("copies".into(), copies + 1)])
}

/// The protocol keeps every one of the 32 copy slots (RESOURCES receives it does not return); more
/// tunnel datagrams arrive (RESOURCES, split payloads, the WSK path, a jumbo one): every one is still
/// delivered, copied into the reserve and indicated with NDIS_RECEIVE_FLAGS_RESOURCES (the protocol
/// copies it; the slot is free again when the indication returns), and counted. None is dropped.
fn slots_exhausted_resources(machine: &mut Machine) -> Outcome {
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for i in 0..32u16 {
        let (frame, ip) = inner(t.mac, 1400 + i, i % 2 == 0, Proto::Udp, 100 + usize::from(i) * 30);
        wire.push(from_peer(t.mac, &t.seal(&ip)?));
        want.push(frame);
    }
    sim::nic_indicate(NIC, &wire, true);
    expect_frames(&sim::take_protocol_received(NIC), &want, "the 32 held copies")?;
    if sim::protocol_holding(NIC) != 32 || t.outstanding() != Some(32) {
        return Err(format!(
            "protocol holds {} (filter: {:?} outstanding), expected every slot",
            sim::protocol_holding(NIC),
            t.outstanding()
        ));
    }
    let reserve_before = filter::test_hooks::rx_reserve_indications();
    let before = t.stats(ALL_PEERS)?;
    // Twelve more while every slot is held: RESOURCES receives, owned receives with split payloads
    // (both copy), and a full-size one.
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for i in 0..12u16 {
        let len = if i == 5 { 1400 } else { 64 + usize::from(i) };
        let (frame, ip) = inner(t.mac, 1450 + i, i % 3 == 0, Proto::Tcp, len);
        wire.push(from_peer(t.mac, &t.seal(&ip)?));
        want.push(frame);
    }
    sim::nic_indicate(NIC, &wire[..8], true);
    sim::nic_indicate_with_flags(NIC, &wire[8..], false, kernel::ffi::nbl::NDIS_NBL_FLAGS_RECV_READ_ONLY);
    // And two through the WSK path.
    for i in 0..2u16 {
        let (frame, ip) = inner(t.mac, 1470 + i, false, Proto::Udp, 200);
        let sealed = t.seal(&ip)?;
        check("indicate_datagram with every slot held", wsk_indicate(&t, &sealed), NDIS_STATUS_SUCCESS)?;
        want.push(from_tunnel_mac(frame));
    }
    expect_frames(&sim::take_protocol_received(NIC), &want, "datagrams past the held slots")?;
    let reserved = filter::test_hooks::rx_reserve_indications() - reserve_before;
    let s = t.stats(ALL_PEERS)?;
    if reserved != 14
        || s.rx_drop_no_buffer != before.rx_drop_no_buffer
        || s.rx_packets - before.rx_packets != 14
    {
        return Err(format!("{reserved} reserve indications (expected 14), stats {s:?}"));
    }
    // The reserve copies went up with RESOURCES: the protocol holds no more than before.
    if sim::protocol_holding(NIC) != 32 || t.outstanding() != Some(32) {
        return Err(format!(
            "protocol holds {}, filter {:?} outstanding after the reserve indications",
            sim::protocol_holding(NIC),
            t.outstanding()
        ));
    }
    // Back to normal once the protocol returns its slots: owned copies again, no reserve.
    sim::protocol_return_all(NIC);
    let (frame, ip) = inner(t.mac, 1480, false, Proto::Udp, 300);
    let one = from_peer(t.mac, &t.seal(&ip)?);
    sim::nic_indicate(NIC, &[one], true);
    expect_frames(&sim::take_protocol_received(NIC), &[frame], "after the slots came back")?;
    if filter::test_hooks::rx_reserve_indications() - reserve_before != 14 || sim::protocol_holding(NIC) != 1
    {
        return Err("a copy used the reserve while protocol slots were free".into());
    }
    sim::protocol_return_all(NIC);
    if t.outstanding() != Some(0) {
        return Err(format!("{:?} outstanding after every return", t.outstanding()));
    }
    let ledger = sim::ledger(NIC);
    if ledger.received_corrupt != 0 {
        return Err(format!("protocol ledger {ledger:?}"));
    }
    t.down(machine)?;
    Ok(vec![("held_slots".into(), 32), ("reserve_indications".into(), reserved)])
}

/// What the AEAD hook of [`parallel_peers`] saw.
mod parallel {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// Armed: the next AEAD pass for peer 1 waits inside the hook.
    pub static ARMED: AtomicBool = AtomicBool::new(false);
    /// Peer 1's receive is inside its AEAD pass (the hook), and has left it.
    pub static A_IN: AtomicBool = AtomicBool::new(false);
    pub static A_OUT: AtomicBool = AtomicBool::new(false);
    /// Peer 2's receive was indicated to the protocol.
    pub static B_DONE: AtomicBool = AtomicBool::new(false);
    /// AEAD passes seen, and how many of them ran with a spin lock held.
    pub static PASSES: AtomicUsize = AtomicUsize::new(0);
    pub static UNDER_LOCK: AtomicUsize = AtomicUsize::new(0);
    pub static TIMED_OUT: AtomicBool = AtomicBool::new(false);

    pub fn reset() {
        for f in [&ARMED, &A_IN, &A_OUT, &B_DONE, &TIMED_OUT] {
            f.store(false, Ordering::SeqCst);
        }
        PASSES.store(0, Ordering::SeqCst);
        UNDER_LOCK.store(0, Ordering::SeqCst);
    }

    /// The filter's `before_authenticate` hook.
    pub fn hook(peer_id: u32) {
        PASSES.fetch_add(1, Ordering::SeqCst);
        if winsim::context::spin_locks_held() != 0 {
            UNDER_LOCK.fetch_add(1, Ordering::SeqCst);
        }
        if peer_id == 1 && ARMED.swap(false, Ordering::SeqCst) {
            A_IN.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !B_DONE.load(Ordering::SeqCst) {
                if Instant::now() > deadline {
                    TIMED_OUT.store(true, Ordering::SeqCst);
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            A_OUT.store(true, Ordering::SeqCst);
        }
    }
}

/// Two receive indications for two different peers at once, on two threads: peer 1's receive is held
/// inside its AEAD pass (a test hook on the filter's split open) until peer 2's receive has been opened
/// and indicated on the other thread. With the decryption under a driver-wide lock the second receive
/// would wait for the first (and the hook times out). Every AEAD pass runs with no spin lock held.
fn parallel_peers(machine: &mut Machine) -> Outcome {
    use std::sync::atomic::Ordering;
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    // Peer 2 from another remote address, with its own keys.
    const REMOTE2: ([u8; 4], u16) = ([203, 0, 113, 6], 1194);
    let (key2, tail2) = ([0x77u8; 32], [9u8; 8]);
    let mut peer2 =
        add_keyed_peer(t.h, 2, SocketAddr::from(LOCAL), SocketAddr::from(REMOTE2), (key2, tail2))?;
    let (frame1, ip1) = inner(t.mac, 1500, false, Proto::Tcp, 1300);
    let wire1 = from_peer(t.mac, &t.seal(&ip1)?);
    let (frame2, ip2) = inner(t.mac, 1501, true, Proto::Udp, 900);
    let mut sealed2 = vec![0u8; ip2.len() + 64];
    let n = peer2.seal(Instant::from_millis(1), &[&ip2], &mut sealed2).map_err(|e| format!("{e:?}"))?.len;
    sealed2.truncate(n);
    let wire2 = outer_frame(t.mac, (&REMOTE2.0, REMOTE2.1), (&LOCAL.0, LOCAL.1), &sealed2, None);

    parallel::reset();
    filter::test_hooks::set_before_authenticate(Some(parallel::hook));
    parallel::ARMED.store(true, Ordering::SeqCst);
    let a = std::thread::spawn(move || sim::nic_indicate(NIC, &[wire1], false));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !parallel::A_IN.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let a_in = parallel::A_IN.load(Ordering::SeqCst);
    // Peer 2's receive on this thread while peer 1's is inside its AEAD pass.
    let b = sim::nic_indicate(NIC, &[wire2], false);
    let b_while_a_held = !parallel::A_OUT.load(Ordering::SeqCst);
    let got_b = sim::take_protocol_received(NIC);
    parallel::B_DONE.store(true, Ordering::SeqCst);
    let a = a.join().map_err(|_| "peer 1's receive thread panicked".to_string())?;
    filter::test_hooks::set_before_authenticate(None);
    let got_a = sim::take_protocol_received(NIC);
    sim::protocol_return_all(NIC);
    if !a_in {
        return Err("peer 1's receive never reached its AEAD pass".into());
    }
    if a != 1 || b != 1 || !b_while_a_held || parallel::TIMED_OUT.load(Ordering::SeqCst) {
        return Err(format!(
            "peer 2's receive did not complete while peer 1's was inside its AEAD pass (b done while a held: {b_while_a_held}, hook timed out: {})",
            parallel::TIMED_OUT.load(Ordering::SeqCst)
        ));
    }
    expect_frames(&got_b, &[frame2], "peer 2 (while peer 1 decrypts)")?;
    expect_frames(&got_a, &[frame1], "peer 1")?;
    let (passes, under_lock) =
        (parallel::PASSES.load(Ordering::SeqCst), parallel::UNDER_LOCK.load(Ordering::SeqCst));
    if passes != 2 || under_lock != 0 {
        return Err(format!("{passes} AEAD passes, {under_lock} of them with a spin lock held"));
    }
    let (p1, p2) = (t.stats(1)?, t.stats(2)?);
    if p1.rx_packets != 1 || p2.rx_packets != 1 {
        return Err(format!("peer stats {p1:?} / {p2:?}"));
    }
    t.down(machine)?;
    Ok(vec![("parallel_receives".into(), 2), ("aead_passes_under_lock".into(), under_lock as u64)])
}

/// The MSS the clamp tests configure.
const CLAMP: u16 = 1200;

/// An Ethernet frame carrying a TCP SYN (or SYN-ACK) with options (MSS 1460, SACK permitted,
/// timestamps, window scale) from `src` to `dst` (IPv4 or IPv6 by length), with correct checksums.
fn syn_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: &[u8], dst: &[u8], ack: bool) -> Vec<u8> {
    let v6 = src.len() == 16;
    let options: [u8; 20] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&443u16.to_be_bytes());
    tcp.extend_from_slice(&0x1000_0000u32.to_be_bytes());
    tcp.extend_from_slice(&(if ack { 0x2000_0001u32 } else { 0 }).to_be_bytes());
    tcp.push((((20 + options.len()) / 4) << 4) as u8);
    tcp.push(if ack { 0x12 } else { 0x02 });
    tcp.extend_from_slice(&64240u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(&options);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(src);
    pseudo.extend_from_slice(dst);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    let c = fold(sum16(&pseudo) + sum16(&tcp));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    if v6 {
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        f.extend_from_slice(&[6, 64]);
        f.extend_from_slice(src);
        f.extend_from_slice(dst);
    } else {
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
        ip.extend_from_slice(src);
        ip.extend_from_slice(dst);
        let c = fold(sum16(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
    }
    f.extend_from_slice(&tcp);
    f
}

/// Checks a frame carrying a TCP SYN or SYN-ACK: checksums verify and the MSS option is `mss` (IPv4;
/// `mss - 20` for IPv6); every other byte equals `original`'s except the MSS value and the TCP checksum.
fn check_clamped(frame: &[u8], original: &[u8], mss: u16, what: &str) -> Result<(), String> {
    let l = winsim::offload::verify_packet(frame).map_err(|e| format!("{what}: does not verify: {e}"))?;
    // IPv6 headers are 20 bytes longer: the engine clamps IPv6 to `mss - 20`, as OpenVPN's
    // mss_fixup_ipv6 does (datapath::mss).
    let mss = if l.v6 { mss - 20 } else { mss };
    if frame.len() != original.len() {
        return Err(format!("{what}: {} bytes, sent {}", frame.len(), original.len()));
    }
    let opt = l.l4 + 20;
    if frame.get(opt..opt + 2) != Some(&[2, 4][..]) {
        return Err(format!("{what}: no MSS option where it was sent"));
    }
    let got = u16::from_be_bytes([frame[opt + 2], frame[opt + 3]]);
    if got != mss {
        return Err(format!("{what}: MSS {got}, expected {mss}"));
    }
    let csum = l.l4 + 16..l.l4 + 18;
    let mss_at = opt + 2..opt + 4;
    let differs = (0..frame.len())
        .filter(|i| !csum.contains(i) && !mss_at.contains(i))
        .any(|i| frame[i] != original[i]);
    if differs {
        return Err(format!("{what}: bytes other than the MSS and the TCP checksum changed"));
    }
    Ok(())
}

/// MSS clamping through the filter, both ways, IPv4 and IPv6, with TCP options. Send: the protocol's
/// SYN to a tunnel prefix is diverted; the peer (a real UDP socket, the engine with the mirrored key)
/// opens it and finds the MSS clamped to the configured value with correct checksums. Receive: a
/// SYN-ACK sealed by the peer (which does not clamp) is clamped in place by the filter before the
/// protocol sees it, on the fast path and on the RESOURCES copy path.
fn mss_clamp_both_ways(machine: &mut Machine) -> Outcome {
    use std::net::UdpSocket;
    sim::add_nic(NicConfig::ethernet(NIC)).map_err(|s| format!("add_nic: {s:#x}"))?;
    let inf = install::inf_dir().join(uapi::names::FILTER_INF);
    let installed = install::install_from_inf(machine, &inf, filter::driver_entry)?;
    let h = device::open(uapi::names::FILTER_USER_PATH).map_err(|s| format!("open: {s:#x}"))?;
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("peer socket: {e}"))?;
    socket.set_read_timeout(Some(std::time::Duration::from_millis(200))).map_err(|e| e.to_string())?;
    let v4_peer = [198u8, 51, 100, 7];
    let v6_peer: [u8; 16] = winsim::offload::V6_PEER;
    let prefixes = [
        uapi::rdco_filter::RdcoPrefix { addr: std::net::IpAddr::from(v4_peer), prefix_len: 32 },
        uapi::rdco_filter::RdcoPrefix { addr: std::net::IpAddr::from(v6_peer), prefix_len: 128 },
    ];
    let policy = encode(&uapi::rdco_filter::RdcoSetPolicy::new(&prefixes).map_err(|e| format!("{e:?}"))?);
    check(
        "SET_POLICY",
        device::device_io_control(h, RdcoFilterIoctl::SetPolicy.code(), &policy, 0).0,
        STATUS_SUCCESS,
    )?;
    let remote = socket.local_addr().map_err(|e| e.to_string())?;
    let mut peer =
        add_keyed_peer(h, PEER_ID, SocketAddr::from(([127, 0, 0, 1], 0)), remote, (RX_KEY, RX_TAIL))?;
    let keepalive = encode(&uapi::rdco_filter::RdcoKeepalive {
        peer_id: PEER_ID,
        keepalive_interval: 0,
        keepalive_timeout: 0,
        mss: CLAMP,
    });
    check(
        "SET_KEEPALIVE (MSS)",
        device::device_io_control(h, RdcoFilterIoctl::SetKeepalive.code(), &keepalive, 0).0,
        STATUS_SUCCESS,
    )?;
    let mac = sim::nic_info(NIC).ok_or("no NIC")?.mac;
    let local4 = [192u8, 0, 2, 1];
    let local6 = LOCAL6;
    // Send: SYNs from the protocol, IPv4 and IPv6.
    let syns =
        [syn_frame(GW_MAC, mac, &local4, &v4_peer, false), syn_frame(GW_MAC, mac, &local6, &v6_peer, false)];
    sim::protocol_send(NIC, &syns);
    let mut opened = Vec::new();
    let mut buf = vec![0u8; 70_000];
    let mut idle = 0;
    while opened.len() < syns.len() && idle < 10 {
        winsim::sched::run_until_idle();
        winsim::wsk::pump();
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                idle = 0;
                let packet = &mut buf[..n];
                match peer.open(Instant::from_millis(0), None, packet) {
                    Ok(::datapath::Received::Data(o)) => opened.push(packet[o.payload].to_vec()),
                    Ok(::datapath::Received::Keepalive(_)) => {}
                    other => return Err(format!("the peer could not open a datagram: {other:?}")),
                }
            }
            Err(_) => idle += 1,
        }
    }
    if opened.len() != syns.len() {
        return Err(format!("the peer got {} of {} diverted SYNs", opened.len(), syns.len()));
    }
    for (inner_packet, syn) in opened.iter().zip(&syns) {
        // Compare as Ethernet frames (the tunnel carries the IP packet).
        let mut f = syn[..14].to_vec();
        f.extend_from_slice(inner_packet);
        check_clamped(&f, syn, CLAMP, "diverted SYN at the peer")?;
    }
    // Let the diverted originals complete.
    sim::pump();
    // Receive: SYN-ACKs from the tunnel, fast path and RESOURCES, IPv4 and IPv6.
    let (rip, rport) = match remote {
        SocketAddr::V4(a) => (a.ip().octets(), a.port()),
        SocketAddr::V6(_) => return Err("peer socket is not IPv4".into()),
    };
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for (i, v6) in [false, true, false, true].into_iter().enumerate() {
        let frame = if v6 {
            syn_frame(mac, GW_MAC, &v6_peer, &local6, true)
        } else {
            syn_frame(mac, GW_MAC, &v4_peer, &local4, true)
        };
        let mut sealed = vec![0u8; frame.len() + 64];
        let n = peer
            .seal(Instant::from_millis(1 + i as u64), &[&frame[14..]], &mut sealed)
            .map_err(|e| format!("{e:?}"))?
            .len;
        sealed.truncate(n);
        // From the peer's socket address, as the filter knows it.
        wire.push(outer_frame(mac, (&rip, rport), (&[127, 0, 0, 1], 1194), &sealed, None));
        want.push(frame);
    }
    sim::nic_indicate(NIC, &wire[..2], false);
    sim::nic_indicate(NIC, &wire[2..], true);
    let got = sim::take_protocol_received(NIC);
    if got.len() != want.len() {
        return Err(format!("the protocol received {} SYN-ACKs of {}", got.len(), want.len()));
    }
    for (g, w) in got.iter().zip(&want) {
        check_clamped(g, w, CLAMP, "received SYN-ACK")?;
    }
    sim::protocol_return_all(NIC);
    let p = {
        let (s, out) = device::device_io_control(
            h,
            RdcoFilterIoctl::GetStats.code(),
            &encode(&RdcoPeerRef { peer_id: PEER_ID }),
            RdcoStats::SIZE,
        );
        check("GET_STATS", s, STATUS_SUCCESS)?;
        RdcoStats::parse(&out).map_err(|e| e.to_string())?
    };
    if p.rx_packets != 4 || p.tx_packets < 2 {
        return Err(format!("peer stats {p:?}"));
    }
    let t = Tunnel { installed, h, mac, peer, now: 0 };
    t.down(machine)?;
    Ok(vec![("clamped_syns_sent".into(), 2), ("clamped_syn_acks_received".into(), 4)])
}

/// Surprise removal while the protocol holds clones: the device event passes down through the filter
/// to the miniport, the stack pauses (the filter's pause pends until the protocol has given the clones
/// back), every module detaches, and the driver unloads without a leak.
fn removal_with_clones_out(machine: &mut Machine) -> Outcome {
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let (wire, _, tunnel) = mixed(&mut t, 1300, 12)?;
    sim::nic_indicate(NIC, &wire, false);
    let held = sim::protocol_holding(NIC);
    if held != wire.len() || t.outstanding() != Some(held as i64) {
        return Err(format!("protocol holds {held}, filter counts {:?}", t.outstanding()));
    }
    winsim::pnp::surprise_remove(NIC);
    if !winsim::pnp::seen(NIC).iter().any(|e| e.starts_with("device:")) {
        return Err(format!("the device PnP event did not reach the miniport: {:?}", winsim::pnp::seen(NIC)));
    }
    if !ndis::modules_on_nic_empty(NIC) {
        return Err("modules still attached after surprise removal".into());
    }
    if sim::protocol_holding(NIC) != 0 {
        return Err("the protocol still holds receives after the stack was torn down".into());
    }
    check("close", device::close(t.h), STATUS_SUCCESS)?;
    machine.unload_driver(t.installed.driver)?;
    Ok(vec![("clones_out".into(), tunnel)])
}

/// The receive path's lifecycle for the allocation-failure walk: load, attach, configure, fast-path
/// and RESOURCES receives, return, pause, detach, unload. Steps may fail; nothing may leak or crash.
fn receive_lifecycle(machine: &mut Machine) -> Result<(), String> {
    let mut t = Tunnel::up(machine, NicConfig::ethernet(NIC), false)?;
    let (wire, _, _) = mixed(&mut t, 1, 6)?;
    sim::nic_indicate(NIC, &wire, false);
    let (wire, _, _) = mixed(&mut t, 10, 6)?;
    sim::nic_indicate(NIC, &wire, true);
    let (_, ip) = inner(t.mac, 40, false, Proto::Udp, 50);
    let sealed = t.seal(&ip)?;
    let m = t.module();
    winsim::context::call_driver(t.driver(), PASSIVE_LEVEL, "test: WSK datagram", || {
        filter::test_hooks::indicate_datagram(m, &sealed, SocketAddr::from(REMOTE))
    });
    sim::protocol_return_all(NIC);
    t.down(machine)
}

/// Allocation failure at every allocation site the receive lifecycle reaches (pool, NBL pools, copy
/// slots' MDLs and NBLs, clones, OID clones are not in it), one at a time: no crash, no leak, no
/// violation, and the driver then loads and runs cleanly again.
fn alloc_failure_each_site(machine: &mut Machine) -> Outcome {
    pool::set_fault_plan(FaultPlan::Never);
    receive_lifecycle(machine)?;
    let (total, _) = pool::counts();
    if let Some(v) = machine.reboot().first() {
        return Err(format!("clean run: {v}"));
    }
    let mut failed_steps = 0;
    for n in 1..=total {
        pool::set_fault_plan(FaultPlan::Nth(n));
        if receive_lifecycle(machine).is_err() {
            failed_steps += 1;
        }
        let (_, injected) = pool::counts();
        pool::set_fault_plan(FaultPlan::Never);
        // A failed step may leave the driver loaded: unload it as the test harness would.
        for (id, _) in machine.loaded() {
            for (module, _, _) in ndis::modules() {
                let status = ndis::pause_module(module, 0);
                if status == NDIS_STATUS_PENDING {
                    sim::protocol_return_all(NIC);
                    winsim::pnp::settle_pause(module);
                }
                ndis::detach_module(module);
            }
            let _ = machine.unload_driver(id);
        }
        let violations = machine.reboot();
        if let Some(v) = violations.first() {
            return Err(format!("allocation {n} of {total} failed: {v}"));
        }
        if injected != 1 {
            return Err(format!("allocation {n} of {total}: {injected} failures injected, expected 1"));
        }
    }
    receive_lifecycle(machine).map_err(|e| format!("reload after the walk: {e}"))?;
    Ok(vec![("allocation_sites".into(), total), ("runs_with_a_failed_step".into(), failed_steps)])
}

pub fn tests() -> Vec<Test> {
    let t = |name, run| Test { suite: "filter_receive", name, expect: None, run };
    vec![
        t("rdcofilter.fast_path_zero_copy", fast_path),
        t("rdcofilter.resources_copy_once", resources),
        t("rdcofilter.ipv6_vlan_split_payload", v6_vlan_split),
        t("rdcofilter.offload_marks_cleared", offload_marks_cleared),
        t("rdcofilter.drops_keepalive_control_read", drops_keepalive_control),
        t("rdcofilter.float_event", float),
        t("rdcofilter.pause_media_reset_while_receiving", pause_media_reset),
        t("rdcofilter.oid_status_passthrough", oid_passthrough),
        t("rdcofilter.wsk_datagram_indicated", wsk_datagram),
        t("rdcofilter.jumbo_datagrams_copy_path", jumbo_copy_path),
        t("rdcofilter.slots_exhausted_resources_indication", slots_exhausted_resources),
        t("rdcofilter.two_peers_decrypt_in_parallel", parallel_peers),
        t("rdcofilter.mss_clamp_syn_both_ways", mss_clamp_both_ways),
        t("rdcofilter.surprise_removal_with_clones_out", removal_with_clones_out),
        t("rdcofilter.alloc_failure_each_receive_site", alloc_failure_each_site),
    ]
}
