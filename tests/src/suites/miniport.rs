//! The `miniport` suite: the REAL miniport (`miniport::driver_entry`) in the simulated kernel, its device
//! arriving through PnP (`winsim::netcx::device_arrives`), configured through the ovpn-dco-win IOCTLs
//! (`miniport::test_hooks::ioctl`: the same `Tunnel::ioctl` and `transport::apply` the control glue runs;
//! `control_device_end_to_end` goes through `\\.\ovpn-dco` instead), with a loopback UDP socket standing for
//! the peer, which seals and opens with its own engine (a second `Tunnel` keyed the other way round).
//! Tx: the stack's packets reach the peer byte-identical, sealed from their fragments. Rx: the peer's
//! datagrams reach the stack byte-identical, opened in place (no plaintext copy), every return context
//! released exactly once, also on adapter stop with packets outstanding. Tx completion order with WSK
//! completions out of order, cancel with sends in flight, key swap under traffic, keepalive timeout.
use std::net::UdpSocket;
use std::time::Duration;

use datapath::peer::Received;
use kernel::ffi::ntos::{PASSIVE_LEVEL, STATUS_CONNECTION_DISCONNECTED, STATUS_INVALID_PARAMETER};
use miniport::control::Tunnel;
use miniport::test_hooks::{self, DataCounters};
use uapi::ovpn::*;
use uapi::Wire;
use winsim::{netcx, wsk, DriverId, Machine};

use crate::netcx_client::{ipv4_packet, ipv6_packet};
use crate::{Outcome, Test};

const SERVICE: &str = "rdcomp";
const PEER_ID: i32 = 7;

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn enc<T: Wire>(v: &T) -> Vec<u8> {
    let mut out = vec![0u8; T::SIZE];
    let _ = v.write_to(&mut out);
    out
}

fn crypto(key_id: u8, flip: bool, seed: u8) -> Vec<u8> {
    crypto_in(key_id, flip, seed, OvpnKeySlot::Primary)
}

fn crypto_in(key_id: u8, flip: bool, seed: u8, key_slot: OvpnKeySlot) -> Vec<u8> {
    let dir = |b: u8| OvpnKeyDirection { key: [b; 32], key_len: 32, nonce_tail: [b ^ 0x55; 8] };
    let (e, d) = if flip { (seed + 1, seed) } else { (seed, seed + 1) };
    enc(&OvpnCryptoData {
        encrypt: dir(e),
        decrypt: dir(d),
        key_slot,
        cipher_alg: OvpnCipherAlg::AesGcm,
        key_id,
        peer_id: PEER_ID,
    })
}

/// The peer (also used by `benches/miniport.rs`): a real UDP socket on loopback and an engine keyed the other way round.
#[derive(Debug)]
pub struct Peer {
    pub socket: UdpSocket,
    pub engine: Tunnel,
    /// Keepalive pings received (authenticated).
    pub pings: usize,
}

impl Peer {
    pub fn new() -> Result<Peer, String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut engine = Tunnel::new().map_err(|s| format!("{s:#x}"))?;
        let np = enc(&OvpnNewPeer {
            local: "127.0.0.1:0".parse().map_err(|_| "addr")?,
            remote: "127.0.0.1:9".parse().map_err(|_| "addr")?,
            proto: OvpnProto::Udp,
        });
        let now = datapath::Instant::ZERO;
        for (code, input) in [
            (OvpnIoctl::NewPeer, np),
            (OvpnIoctl::NewKey, crypto(0, true, 1)),
            (OvpnIoctl::StartVpn, Vec::new()),
        ] {
            let _ = engine
                .ioctl(code.code(), &input, &mut [], now)
                .map_err(|s| format!("peer {}: {s:#x}", code.name()))?;
        }
        Ok(Peer { socket, engine, pings: 0 })
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Every datagram waiting, opened: inner packets (pings and control excluded).
    pub fn receive(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            let pkt = &mut buf[..n];
            match self.engine.peers().open(datapath::Instant::ZERO, None, pkt) {
                Ok(Received::Data(o)) => out.push(pkt[o.payload].to_vec()),
                Ok(Received::Keepalive(_)) => self.pings += 1,
                Ok(Received::Control) => {}
                Err(e) => return Err(format!("peer could not open a datagram: {e}")),
            }
        }
        Ok(out)
    }

    pub fn seal(&mut self, inner: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = vec![0u8; inner.len() + 64];
        let s = self
            .engine
            .peers()
            .peers_mut()
            .next()
            .ok_or("peer has no peer")?
            .seal(datapath::Instant::ZERO, &[inner], &mut out)
            .map_err(|e| format!("peer seal: {e}"))?;
        out.truncate(s.len);
        Ok(out)
    }

    pub fn ioctl(&mut self, code: OvpnIoctl, input: &[u8]) -> Result<(), String> {
        self.engine
            .ioctl(code.code(), input, &mut [], datapath::Instant::ZERO)
            .map(|_| ())
            .map_err(|s| format!("peer {}: {s:#x}", code.name()))
    }

    pub fn send_to(&self, port: u16, datagram: &[u8]) -> Result<(), String> {
        self.socket.send_to(datagram, ("127.0.0.1", port)).map(|_| ()).map_err(|e| e.to_string())
    }
}

#[derive(Debug)]
pub struct Rig {
    pub driver: DriverId,
    pub device: usize,
    pub adapter: usize,
    pub peer: Peer,
    pub port: u16,
}

fn in_driver<R>(driver: DriverId, what: &str, f: impl FnOnce() -> R) -> R {
    winsim::context::call_driver(driver, PASSIVE_LEVEL, what, f)
}

fn ioctl(r: &Rig, code: OvpnIoctl, input: &[u8]) -> Result<Option<u16>, String> {
    in_driver(r.driver, "test: ioctl", || test_hooks::ioctl(r.device, code.code(), input, &mut []))
        .map(|(_, port)| port)
        .map_err(|s| format!("{}: {s:#x}", code.name()))
}

/// Loads the miniport, lets PnP add its device, connects it to a fresh peer and starts the VPN.
pub fn bring_up(m: &mut Machine, keepalive: Option<(i32, i32)>) -> Result<Rig, String> {
    let driver =
        m.load_driver(SERVICE, miniport::driver_entry).map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let device = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let adapter = *netcx::adapters(device).first().ok_or("no adapter created")?;
    let info = netcx::adapter_info(adapter).ok_or("no adapter info")?;
    ensure(
        info.started && info.mtu == 1500 && info.rx_driver_managed && info.link_connected == Some(false),
        || format!("adapter before the VPN starts: {info:?}"),
    )?;
    let peer = Peer::new()?;
    let mut r = Rig { driver, device, adapter, peer, port: 0 };
    let np = enc(&OvpnNewPeer {
        local: "127.0.0.1:0".parse().map_err(|_| "addr")?,
        remote: format!("127.0.0.1:{}", r.peer.port()).parse().map_err(|_| "addr")?,
        proto: OvpnProto::Udp,
    });
    r.port = ioctl(&r, OvpnIoctl::NewPeer, &np)?.ok_or("NEW_PEER opened no socket")?;
    ioctl(&r, OvpnIoctl::NewKey, &crypto(0, false, 1))?;
    if let Some((interval, timeout)) = keepalive {
        ioctl(
            &r,
            OvpnIoctl::SetPeer,
            &enc(&OvpnSetPeer { keepalive_interval: interval, keepalive_timeout: timeout, mss: 0 }),
        )?;
    }
    ioctl(&r, OvpnIoctl::StartVpn, &[])?;
    let info = netcx::adapter_info(adapter).ok_or("no adapter info")?;
    ensure(info.link_connected == Some(true), || format!("link after START_VPN: {info:?}"))?;
    Ok(r)
}

pub fn counters(r: &Rig) -> Result<DataCounters, String> {
    in_driver(r.driver, "test: counters", || test_hooks::counters(r.device))
        .ok_or_else(|| "no counters".into())
}

pub fn tear_down(m: &mut Machine, r: Rig) -> Result<(), String> {
    netcx::device_remove(r.device);
    ensure(wsk::retained() == 0, || format!("{} datagrams still retained after removal", wsk::retained()))?;
    m.unload_driver(r.driver)
}

fn report(c: &DataCounters) -> Vec<(String, u64)> {
    vec![
        ("tx_sealed".into(), c.tx_sealed),
        ("tx_batches".into(), c.tx_batches),
        ("tx_gathered".into(), c.tx_gathered),
        ("rx_indicated".into(), c.rx_indicated),
        ("rx_copied_bytes".into(), c.rx_copied_bytes),
        ("rx_returns".into(), c.rx_returns),
        ("rx_released".into(), c.rx_released),
        ("rx_release_batches".into(), c.rx_release_batches),
    ]
}

/// Pumps WSK until the peer holds `n` inner packets.
pub fn peer_collect(r: &mut Rig, n: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut got = Vec::new();
    let ok = wsk::pump_until(Duration::from_secs(5), || {
        if let Ok(mut more) = r.peer.receive() {
            got.append(&mut more);
        }
        got.len() >= n
    });
    ensure(ok, || format!("the peer got {} of {n} packets", got.len()))?;
    Ok(got)
}

/// Pumps WSK and the adapter until the stack received `n` packets.
pub fn stack_collect(r: &Rig, n: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut got = Vec::new();
    let ok = wsk::pump_until(Duration::from_secs(5), || {
        netcx::pump(r.adapter);
        got.extend(netcx::stack_received());
        got.len() >= n
    });
    ensure(ok, || format!("the stack got {} of {n} packets", got.len()))?;
    Ok(got)
}

fn tx_reaches_peer(m: &mut Machine) -> Outcome {
    let mut r = bring_up(m, None)?;
    let mut sent = Vec::new();
    for (k, len) in [64usize, 512, 1420, 20, 1500].into_iter().enumerate() {
        sent.push(vec![ipv4_packet(k as u16, len)]);
    }
    // A packet of three fragments, sealed from all three without a gather copy by the miniport.
    let p = ipv6_packet(9, 700);
    sent.push(vec![p[..40].to_vec(), p[40..300].to_vec(), p[300..].to_vec()]);
    let posted = netcx::stack_send_fragments(r.adapter, &sent);
    ensure(posted == sent.len(), || format!("posted {posted}"))?;
    let got = peer_collect(&mut r, sent.len())?;
    let want: Vec<Vec<u8>> = sent.iter().map(|f| f.concat()).collect();
    ensure(got == want, || "the peer's packets differ from what the stack sent".into())?;
    wsk::pump_until(Duration::from_secs(2), || {
        netcx::pump(r.adapter);
        netcx::counters(r.adapter).is_some_and(|c| c.tx_completed == sent.len() as u64)
    });
    let c = netcx::counters(r.adapter).ok_or("no counters")?;
    ensure(c.tx_completed == sent.len() as u64, || format!("Tx completed {}", c.tx_completed))?;
    let d = counters(&r)?;
    ensure(d.tx_sealed == sent.len() as u64 && d.tx_in_flight == 0, || format!("{d:?}"))?;
    let snap = in_driver(r.driver, "test", || test_hooks::snapshot(r.device)).ok_or("no snapshot")?;
    ensure(snap.stats.sent_data_packets == sent.len() as i32, || format!("stats {:?}", snap.stats))?;
    ensure(snap.peers.first().is_some_and(|p| p.info.link_tx_bytes > 0), || {
        "per-peer tx bytes not counted".into()
    })?;
    let out = report(&d);
    tear_down(m, r)?;
    Ok(out)
}

fn rx_zero_copy(m: &mut Machine) -> Outcome {
    let mut r = bring_up(m, None)?;
    let inner: Vec<Vec<u8>> = (0..20u16)
        .map(|k| {
            if k % 3 == 0 {
                ipv6_packet(k, 100 + usize::from(k) * 60)
            } else {
                ipv4_packet(k, 64 + usize::from(k) * 70)
            }
        })
        .collect();
    for p in &inner {
        let d = r.peer.seal(p)?;
        r.peer.send_to(r.port, &d)?;
    }
    let got = stack_collect(&r, inner.len())?;
    ensure(got == inner, || "the stack's packets differ from what the peer sealed".into())?;
    let d = counters(&r)?;
    ensure(d.rx_copied_bytes == 0 && d.rx_linearized == 0, || format!("plaintext copied: {d:?}"))?;
    ensure(d.rx_returns == inner.len() as u64 && d.rx_bad_returns == 0, || format!("returns {d:?}"))?;
    ensure(d.rx_lent == 0 && d.rx_released == inner.len() as u64, || format!("releases {d:?}"))?;
    ensure(d.rx_release_batches < d.rx_released, || format!("releases not batched: {d:?}"))?;
    ensure(wsk::retained() == 0, || format!("{} retained", wsk::retained()))?;
    let snap = in_driver(r.driver, "test", || test_hooks::snapshot(r.device)).ok_or("no snapshot")?;
    ensure(snap.stats.received_data_packets == inner.len() as i32, || format!("stats {:?}", snap.stats))?;
    let out = report(&d);
    tear_down(m, r)?;
    Ok(out)
}

/// Datagrams split over several MDLs become multi-fragment packets (plaintext written back in place).
fn rx_split_mdls(m: &mut Machine) -> Outcome {
    wsk::configure(wsk::Config { split_receive: true, ..wsk::Config::default() });
    let mut r = bring_up(m, None)?;
    let inner: Vec<Vec<u8>> = (0..10u16).map(|k| ipv4_packet(k, 200 + usize::from(k) * 100)).collect();
    for p in &inner {
        let d = r.peer.seal(p)?;
        r.peer.send_to(r.port, &d)?;
    }
    let got = stack_collect(&r, inner.len())?;
    ensure(got == inner, || "multi-MDL packets differ".into())?;
    let c = netcx::counters(r.adapter).ok_or("no counters")?;
    ensure(c.rx_fragments > inner.len() as u64, || format!("no multi-fragment packet: {c:?}"))?;
    let d = counters(&r)?;
    ensure(d.rx_returns == c.rx_fragments && d.rx_lent == 0 && wsk::retained() == 0, || format!("{d:?}"))?;
    let out = report(&d);
    tear_down(m, r)?;
    wsk::configure(wsk::Config::default());
    Ok(out)
}

fn rx_returns_on_stop(m: &mut Machine) -> Outcome {
    let mut r = bring_up(m, None)?;
    netcx::stack_hold_returns(true);
    let inner: Vec<Vec<u8>> = (0..12u16).map(|k| ipv4_packet(k, 300)).collect();
    for p in &inner {
        let d = r.peer.seal(p)?;
        r.peer.send_to(r.port, &d)?;
    }
    let got = stack_collect(&r, inner.len())?;
    ensure(got == inner, || "packets differ".into())?;
    let d = counters(&r)?;
    ensure(d.rx_lent == inner.len() as u64 && d.rx_returns == 0, || format!("before stop: {d:?}"))?;
    ensure(wsk::retained() == inner.len(), || format!("{} retained", wsk::retained()))?;
    netcx::adapter_stop(r.adapter);
    netcx::stack_hold_returns(false);
    let d = counters(&r)?;
    ensure(d.rx_returns == inner.len() as u64 && d.rx_lent == 0 && d.rx_bad_returns == 0, || {
        format!("after stop: {d:?}")
    })?;
    ensure(wsk::retained() == 0, || format!("{} retained after stop", wsk::retained()))?;
    let out = report(&d);
    tear_down(m, r)?;
    Ok(out)
}

fn tx_cancel_in_flight(m: &mut Machine) -> Outcome {
    let r = bring_up(m, None)?;
    // Sends stay pending: the wire is stalled for a minute of machine time.
    wsk::set_faults(wsk::Faults { stall_ms: 60_000, ..wsk::Faults::NONE });
    let sent: Vec<Vec<u8>> = (0..8u16).map(|k| ipv4_packet(k, 400)).collect();
    ensure(netcx::stack_send(r.adapter, &sent) == sent.len(), || "not posted".into())?;
    let c = netcx::counters(r.adapter).ok_or("no counters")?;
    ensure(c.tx_completed == 0, || format!("completed before the wire took them: {c:?}"))?;
    let d = counters(&r)?;
    ensure(d.tx_in_flight == sent.len() as u64, || format!("in flight {d:?}"))?;
    netcx::adapter_stop(r.adapter);
    // Cancel returned every packet (their ciphertext is in the pool); the sends stay WSK's until they
    // complete, and their buffers with them.
    let c = netcx::counters(r.adapter).ok_or("no counters")?;
    ensure(c.tx_completed == sent.len() as u64, || format!("after cancel: {c:?}"))?;
    let d = counters(&r)?;
    ensure(d.tx_in_flight == sent.len() as u64, || format!("orphaned sends after cancel: {d:?}"))?;
    wsk::set_faults(wsk::Faults::NONE);
    winsim::sched::advance(Duration::from_secs(61));
    let mut r = r;
    let got = peer_collect(&mut r, sent.len())?;
    ensure(got == sent, || "the sends in flight at cancel did not arrive intact".into())?;
    let d = counters(&r)?;
    ensure(d.tx_in_flight == 0, || format!("after the completions: {d:?}"))?;
    let out = report(&d);
    tear_down(m, r)?;
    Ok(out)
}

/// Keepalive through the real timer DPC: pings go out every interval; with nothing received for the
/// timeout, the next control read fails with `STATUS_CONNECTION_DISCONNECTED`.
fn keepalive_timeout(m: &mut Machine) -> Outcome {
    let mut r = bring_up(m, Some((1, 3)))?;
    ensure(winsim::clock::is_deterministic(), || "needs the deterministic clock".into())?;
    winsim::sched::advance(Duration::from_millis(2500));
    let d = counters(&r)?;
    ensure(d.keepalive_pings >= 1 && d.keepalive_timeouts == 0, || format!("after 2.5 s: {d:?}"))?;
    let _ = peer_collect(&mut r, 0)?;
    wsk::pump_until(Duration::from_secs(2), || {
        let _ = r.peer.receive();
        r.peer.pings >= 1
    });
    ensure(r.peer.pings >= 1, || "the peer received no authenticated ping".into())?;
    winsim::sched::advance(Duration::from_secs(3));
    let d = counters(&r)?;
    ensure(d.keepalive_timeouts >= 1, || format!("no timeout from the timer: {d:?}"))?;
    let mut buf = [0u8; 64];
    let read = in_driver(r.driver, "test: read", || test_hooks::read(r.device, &mut buf));
    ensure(read == Err(STATUS_CONNECTION_DISCONNECTED), || format!("read after timeout: {read:?}"))?;
    let mut out = report(&d);
    out.push(("keepalive_pings".into(), d.keepalive_pings));
    out.push(("peer_pings".into(), r.peer.pings as u64));
    tear_down(m, r)?;
    Ok(out)
}

/// WSK completes the Tx batches newest first, one per pump: nothing retires until the oldest batch
/// completed, then everything does, in ring order.
fn tx_completion_order(m: &mut Machine) -> Outcome {
    let mut r = bring_up(m, None)?;
    wsk::set_faults(wsk::Faults { stall_ms: 10_000, ..wsk::Faults::NONE });
    let batches: Vec<Vec<Vec<u8>>> = (0..4u16)
        .map(|b| (0..3u16).map(|k| ipv4_packet(b * 3 + k, 100 + usize::from(k) * 50)).collect())
        .collect();
    for b in &batches {
        ensure(netcx::stack_send(r.adapter, b) == b.len(), || "not posted".into())?;
    }
    let d = counters(&r)?;
    ensure(d.tx_batches == 4 && d.tx_in_flight == 12, || format!("before completions: {d:?}"))?;
    wsk::set_faults(wsk::Faults { reverse_completions: true, backpressure: Some(1), ..wsk::Faults::NONE });
    winsim::sched::advance(Duration::from_secs(11));
    let mut seen = Vec::new();
    for round in 0..4 {
        wsk::pump();
        netcx::pump(r.adapter);
        let c = netcx::counters(r.adapter).ok_or("no counters")?;
        seen.push(c.tx_completed);
        let want = if round < 3 { 0 } else { 12 };
        ensure(c.tx_completed == want, || {
            format!("round {round}: {} completed (sequence {seen:?})", c.tx_completed)
        })?;
    }
    wsk::set_faults(wsk::Faults::NONE);
    let mut got = peer_collect(&mut r, 12)?;
    let mut want: Vec<Vec<u8>> = batches.concat();
    got.sort();
    want.sort();
    ensure(got == want, || "the peer's packets differ".into())?;
    let d = counters(&r)?;
    ensure(d.tx_in_flight == 0, || format!("{d:?}"))?;
    let out = report(&d);
    tear_down(m, r)?;
    Ok(out)
}

/// New keys under traffic: secondary key installed on both sides, the miniport swaps first (its Tx
/// moves to the new key, the peer still sends with the old one), then the peer swaps. Every packet in
/// both directions arrives byte-identical.
fn key_swap_under_traffic(m: &mut Machine) -> Outcome {
    let mut r = bring_up(m, None)?;
    let mut tx_sent = Vec::new();
    let mut rx_sent = Vec::new();
    let mut seq = 0u16;
    let mut round =
        |r: &mut Rig, tx_sent: &mut Vec<Vec<u8>>, rx_sent: &mut Vec<Vec<u8>>| -> Result<(), String> {
            let tx: Vec<Vec<u8>> = (0..4).map(|k| ipv4_packet(seq + k, 200)).collect();
            let rx: Vec<Vec<u8>> = (0..4).map(|k| ipv6_packet(seq + k, 240)).collect();
            seq += 4;
            ensure(netcx::stack_send(r.adapter, &tx) == tx.len(), || "not posted".into())?;
            for p in &rx {
                let d = r.peer.seal(p)?;
                r.peer.send_to(r.port, &d)?;
            }
            let got_tx = peer_collect(r, tx.len())?;
            ensure(got_tx == tx, || "Tx packets differ".into())?;
            let got_rx = stack_collect(r, rx.len())?;
            ensure(got_rx == rx, || "Rx packets differ".into())?;
            tx_sent.extend(tx);
            rx_sent.extend(rx);
            Ok(())
        };
    round(&mut r, &mut tx_sent, &mut rx_sent)?;
    ioctl(&r, OvpnIoctl::NewKey, &crypto_in(1, false, 5, OvpnKeySlot::Secondary))?;
    r.peer.ioctl(OvpnIoctl::NewKey, &crypto_in(1, true, 5, OvpnKeySlot::Secondary))?;
    round(&mut r, &mut tx_sent, &mut rx_sent)?;
    ioctl(&r, OvpnIoctl::SwapKeys, &[])?;
    round(&mut r, &mut tx_sent, &mut rx_sent)?;
    r.peer.ioctl(OvpnIoctl::SwapKeys, &[])?;
    round(&mut r, &mut tx_sent, &mut rx_sent)?;
    let snap = in_driver(r.driver, "test", || test_hooks::snapshot(r.device)).ok_or("no snapshot")?;
    let keys = snap.peers.first().map(|p| (p.primary.map(|k| k.key_id), p.secondary.map(|k| k.key_id)));
    ensure(keys == Some((Some(1), Some(0))), || format!("key slots after the swap: {keys:?}"))?;
    let d = counters(&r)?;
    ensure(d.rx_dropped == 0 && d.tx_dropped == 0, || format!("drops: {d:?}"))?;
    ensure(snap.stats.received_data_packets == 16 && snap.stats.sent_data_packets == 16, || {
        format!("{:?}", snap.stats)
    })?;
    let out = report(&d);
    tear_down(m, r)?;
    Ok(out)
}

/// The MTU is configurable up to 1500; a bad value is refused and changes nothing; Tx packets over the
/// MTU are dropped, not sent.
fn mtu_configurable(m: &mut Machine) -> Outcome {
    let mut r = bring_up(m, None)?;
    let set = |r: &Rig, mtu: u32| in_driver(r.driver, "test: mtu", || test_hooks::set_mtu(r.device, mtu));
    ensure(set(&r, 1501) == Err(STATUS_INVALID_PARAMETER), || "MTU 1501 accepted".into())?;
    ensure(set(&r, 0) == Err(STATUS_INVALID_PARAMETER), || "MTU 0 accepted".into())?;
    let mtu = netcx::adapter_info(r.adapter).map(|i| i.mtu);
    ensure(mtu == Some(1500), || format!("MTU after refused sets: {mtu:?}"))?;
    ensure(set(&r, 1400) == Ok(()), || "MTU 1400 refused".into())?;
    let mtu = netcx::adapter_info(r.adapter).map(|i| i.mtu);
    ensure(mtu == Some(1400), || format!("MTU after setting 1400: {mtu:?}"))?;
    let sent = vec![ipv4_packet(1, 1400), ipv4_packet(2, 1401), ipv4_packet(3, 64)];
    ensure(netcx::stack_send(r.adapter, &sent) == 3, || "not posted".into())?;
    let got = peer_collect(&mut r, 2)?;
    ensure(got == [sent[0].clone(), sent[2].clone()], || format!("{} packets reached the peer", got.len()))?;
    let d = counters(&r)?;
    ensure(d.tx_dropped == 1 && d.tx_sealed == 2, || format!("{d:?}"))?;
    let out = report(&d);
    tear_down(m, r)?;
    Ok(out)
}

/// Non-data packets: a control-channel packet goes to the control read queue byte for byte; a keepalive
/// ping is authenticated and dropped; neither reaches the stack. A forged data packet is dropped.
fn rx_control_and_ping(m: &mut Machine) -> Outcome {
    let mut r = bring_up(m, None)?;
    // P_CONTROL_V1 (opcode 4) with key id 0, then session id and payload as OpenVPN's TLS channel sends.
    let control: Vec<u8> = std::iter::once(0x20u8).chain((1..=40u8).map(|b| b ^ 0x5a)).collect();
    r.peer.send_to(r.port, &control)?;
    let mut ping = vec![0u8; 128];
    let n = {
        let p = r.peer.engine.peers().peers_mut().next().ok_or("peer has no peer")?;
        p.seal_keepalive(datapath::Instant::ZERO, &mut ping).map_err(|e| format!("ping: {e}"))?.len
    };
    r.peer.send_to(r.port, &ping[..n])?;
    let mut forged = r.peer.seal(&ipv4_packet(1, 100))?;
    let last = forged.len() - 1;
    forged[last] ^= 1;
    r.peer.send_to(r.port, &forged)?;
    let real = ipv4_packet(2, 100);
    let sealed = r.peer.seal(&real)?;
    r.peer.send_to(r.port, &sealed)?;
    let got = stack_collect(&r, 1)?;
    ensure(got == [real], || "the stack got something other than the one data packet".into())?;
    let d = counters(&r)?;
    ensure(d.rx_control == 1 && d.rx_keepalives == 1 && d.rx_dropped == 1, || format!("{d:?}"))?;
    let mut buf = [0u8; 1600];
    let read = in_driver(r.driver, "test: read", || test_hooks::read(r.device, &mut buf));
    ensure(read == Ok(miniport::control::ReadResult::Complete(control.len())), || format!("read: {read:?}"))?;
    ensure(buf[..control.len()] == control[..], || "the control packet changed on the way".into())?;
    ensure(wsk::retained() == 0, || format!("{} retained", wsk::retained()))?;
    let snap = in_driver(r.driver, "test", || test_hooks::snapshot(r.device)).ok_or("no snapshot")?;
    ensure(snap.stats.lost_in_data_packets == 1, || format!("{:?}", snap.stats))?;
    let out = report(&d);
    tear_down(m, r)?;
    Ok(out)
}

/// The whole driver through its control device only: `\\.\ovpn-dco` opened through the simulated I/O
/// manager, `NEW_PEER`, `NEW_KEY`, `START_VPN` as IOCTLs (no test hook), then traffic both ways through
/// the rings to the loopback peer, a control packet written by user mode reaching the peer, and a pended
/// read completed by a control packet the peer sends over the wire (the Rx path hands it to the glue).
fn control_device_end_to_end(m: &mut Machine) -> Outcome {
    use kernel::ffi::ntos::STATUS_SUCCESS;
    use winsim::device::{self, Io};
    let driver =
        m.load_driver(SERVICE, miniport::driver_entry).map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let device = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let adapter = *netcx::adapters(device).first().ok_or("no adapter created")?;
    let mut r = Rig { driver, device, adapter, peer: Peer::new()?, port: 0 };
    let h = device::open("\\\\.\\ovpn-dco").map_err(|s| format!("open: {s:#x}"))?;
    let np = enc(&OvpnNewPeer {
        local: "127.0.0.1:0".parse().map_err(|_| "addr")?,
        remote: format!("127.0.0.1:{}", r.peer.port()).parse().map_err(|_| "addr")?,
        proto: OvpnProto::Udp,
    });
    for (code, input) in [
        (OvpnIoctl::NewPeer, np),
        (OvpnIoctl::NewKey, crypto(0, false, 1)),
        (OvpnIoctl::StartVpn, Vec::new()),
    ] {
        let (status, _) = device::device_io_control(h, code.code(), &input, 0);
        ensure(status == STATUS_SUCCESS, || format!("{}: {status:#x}", code.name()))?;
    }
    r.port =
        in_driver(driver, "test", || test_hooks::local_port(device)).ok_or("START_VPN opened no socket")?;
    let info = netcx::adapter_info(adapter).ok_or("no adapter info")?;
    ensure(info.link_connected == Some(true), || format!("link after START_VPN: {info:?}"))?;
    // Tx: the stack's packets reach the peer.
    let sent: Vec<Vec<u8>> = (0..8u16).map(|k| ipv4_packet(k, 100 + 150 * usize::from(k))).collect();
    let frags: Vec<Vec<Vec<u8>>> = sent.iter().map(|p| vec![p.clone()]).collect();
    ensure(netcx::stack_send_fragments(adapter, &frags) == sent.len(), || "post".into())?;
    let got = peer_collect(&mut r, sent.len())?;
    ensure(got == sent, || "the peer's packets differ from what the stack sent".into())?;
    // Rx: the peer's datagrams reach the stack.
    let back: Vec<Vec<u8>> = (0..8u16).map(|k| ipv6_packet(k, 80 + 170 * usize::from(k))).collect();
    for p in &back {
        let d = r.peer.seal(p)?;
        r.peer.send_to(r.port, &d)?;
    }
    let got = stack_collect(&r, back.len())?;
    ensure(got == back, || "the stack's packets differ from what the peer sent".into())?;
    // A control packet written by user mode goes out through the socket unchanged.
    let hello: Vec<u8> = std::iter::once(0x38u8).chain((0..30u8).map(|b| b ^ 0xa5)).collect();
    let (status, n) = device::write(h, &hello);
    ensure(status == STATUS_SUCCESS && n == hello.len(), || format!("write {status:#x} {n}"))?;
    let mut raw = Vec::new();
    wsk::pump_until(Duration::from_secs(5), || {
        let mut buf = [0u8; 2048];
        if let Ok(n) = r.peer.socket.recv(&mut buf) {
            raw = buf[..n].to_vec();
        }
        !raw.is_empty()
    });
    ensure(raw == hello, || format!("the peer received {raw:02x?}"))?;
    // A pended read completes when the peer's control packet arrives over the wire.
    let Io::Pending(read) = device::submit_read(h, 2048) else { return Err("read did not pend".into()) };
    let control: Vec<u8> = std::iter::once(0x20u8).chain((1..=40u8).map(|b| b ^ 0x5a)).collect();
    r.peer.send_to(r.port, &control)?;
    let mut done = None;
    wsk::pump_until(Duration::from_secs(5), || {
        done = device::poll(read);
        done.is_some()
    });
    ensure(done == Some((STATUS_SUCCESS, control.clone())), || format!("read {done:?}"))?;
    ensure(device::close(h) == STATUS_SUCCESS, || "close".into())?;
    // Closing the handle deleted the peer: the socket is closed and the link down.
    ensure(in_driver(driver, "test", || test_hooks::local_port(device)).is_none(), || {
        "socket still open".into()
    })?;
    let info = netcx::adapter_info(adapter).ok_or("no adapter info")?;
    ensure(info.link_connected == Some(false), || format!("link after close: {info:?}"))?;
    let d = counters(&r)?;
    let out = vec![("tx_sealed".into(), d.tx_sealed), ("rx_indicated".into(), d.rx_indicated)];
    tear_down(m, r)?;
    Ok(out)
}

/// Server mode through the control device: `MP_START_VPN` asking port 0 binds the listen socket and
/// reports the port it got in the reply; a second `MP_START_VPN` is refused and changes nothing.
fn mp_start_vpn_reports_port(m: &mut Machine) -> Outcome {
    use kernel::ffi::ntos::STATUS_SUCCESS;
    use winsim::device;
    let driver =
        m.load_driver(SERVICE, miniport::driver_entry).map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let dev = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let h = device::open("\\\\.\\ovpn-dco").map_err(|s| format!("open: {s:#x}"))?;
    let (status, _) =
        device::device_io_control(h, OvpnIoctl::SetMode.code(), &enc(&OvpnSetMode { mode: OvpnMode::Mp }), 0);
    ensure(status == STATUS_SUCCESS, || format!("SET_MODE {status:#x}"))?;
    let start =
        enc(&OvpnMpStartVpn { listen_address: "127.0.0.1:0".parse().map_err(|_| "addr")?, ipv6_only: false });
    let (status, out) =
        device::device_io_control(h, OvpnIoctl::MpStartVpn.code(), &start, OvpnMpStartVpn::SIZE);
    ensure(status == STATUS_SUCCESS, || format!("MP_START_VPN {status:#x}"))?;
    let reply = OvpnMpStartVpn::parse(&out).map_err(|e| format!("reply: {e:?}"))?;
    let bound = in_driver(driver, "test", || test_hooks::local_port(dev)).ok_or("no listen socket")?;
    ensure(bound != 0 && reply.listen_address.port() == bound, || format!("reply {reply:?}, bound {bound}"))?;
    let (status, _) =
        device::device_io_control(h, OvpnIoctl::MpStartVpn.code(), &start, OvpnMpStartVpn::SIZE);
    ensure(status != STATUS_SUCCESS, || "second MP_START_VPN accepted".into())?;
    let still = in_driver(driver, "test", || test_hooks::local_port(dev));
    ensure(still == Some(bound), || format!("socket after the refused request: {still:?}"))?;
    device::close(h);
    netcx::device_remove(dev);
    m.unload_driver(driver)?;
    Ok(Vec::new())
}

type Run = fn(&mut Machine) -> Outcome;

pub fn tests() -> Vec<Test> {
    let list: [(&'static str, Run); 12] = [
        ("tx_reaches_peer", tx_reaches_peer),
        ("rx_zero_copy", rx_zero_copy),
        ("rx_split_mdls", rx_split_mdls),
        ("rx_returns_on_adapter_stop", rx_returns_on_stop),
        ("rx_control_and_ping", rx_control_and_ping),
        ("tx_cancel_in_flight", tx_cancel_in_flight),
        ("tx_completion_order", tx_completion_order),
        ("key_swap_under_traffic", key_swap_under_traffic),
        ("keepalive_timeout", keepalive_timeout),
        ("mtu_configurable", mtu_configurable),
        ("control_device_end_to_end", control_device_end_to_end),
        ("mp_start_vpn_reports_port", mp_start_vpn_reports_port),
    ];
    list.into_iter().map(|(name, run)| Test { suite: "miniport", name, expect: None, run }).collect()
}
