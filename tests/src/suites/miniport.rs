//! The `miniport` suite: the REAL miniport (`miniport::driver_entry`) in the simulated kernel, its device
//! arriving through PnP (`winsim::netcx::device_arrives`), configured through the ovpn-dco-win IOCTLs
//! (`miniport::test_hooks::ioctl`, standing for the control glue), with a loopback UDP socket standing for
//! the peer, which seals and opens with its own engine (a second `Tunnel` keyed the other way round).
//! Tx: the stack's packets reach the peer byte-identical, sealed from their fragments. Rx: the peer's
//! datagrams reach the stack byte-identical, opened in place (no plaintext copy), every return context
//! released exactly once, also on adapter stop with packets outstanding. Tx completion order with WSK
//! completions out of order, cancel with sends in flight, key swap under traffic, keepalive timeout.
use std::net::UdpSocket;
use std::time::Duration;

use datapath::peer::Received;
use kernel::ffi::ntos::{PASSIVE_LEVEL, STATUS_CONNECTION_DISCONNECTED};
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
    let dir = |b: u8| OvpnKeyDirection { key: [b; 32], key_len: 32, nonce_tail: [b ^ 0x55; 8] };
    let (e, d) = if flip { (seed + 1, seed) } else { (seed, seed + 1) };
    enc(&OvpnCryptoData {
        encrypt: dir(e),
        decrypt: dir(d),
        key_slot: OvpnKeySlot::Primary,
        cipher_alg: OvpnCipherAlg::AesGcm,
        key_id,
        peer_id: PEER_ID,
    })
}

/// The peer: a real UDP socket on loopback and an engine keyed the other way round.
struct Peer {
    socket: UdpSocket,
    engine: Tunnel,
}

impl Peer {
    fn new() -> Result<Peer, String> {
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
        Ok(Peer { socket, engine })
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Every datagram waiting, opened: inner packets (pings and control excluded).
    fn receive(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            let pkt = &mut buf[..n];
            match self.engine.peers().open(datapath::Instant::ZERO, None, pkt) {
                Ok(Received::Data(o)) => out.push(pkt[o.payload].to_vec()),
                Ok(_) => {}
                Err(e) => return Err(format!("peer could not open a datagram: {e}")),
            }
        }
        Ok(out)
    }

    fn seal(&mut self, inner: &[u8]) -> Result<Vec<u8>, String> {
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

    fn send_to(&self, port: u16, datagram: &[u8]) -> Result<(), String> {
        self.socket.send_to(datagram, ("127.0.0.1", port)).map(|_| ()).map_err(|e| e.to_string())
    }
}

struct Rig {
    driver: DriverId,
    device: usize,
    adapter: usize,
    peer: Peer,
    port: u16,
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
fn bring_up(m: &mut Machine, keepalive: Option<(i32, i32)>) -> Result<Rig, String> {
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

fn counters(r: &Rig) -> Result<DataCounters, String> {
    in_driver(r.driver, "test: counters", || test_hooks::counters(r.device))
        .ok_or_else(|| "no counters".into())
}

fn tear_down(m: &mut Machine, r: Rig) -> Result<(), String> {
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
fn peer_collect(r: &mut Rig, n: usize) -> Result<Vec<Vec<u8>>, String> {
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
fn stack_collect(r: &Rig, n: usize) -> Result<Vec<Vec<u8>>, String> {
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
    wsk::set_faults(wsk::Faults::NONE);
    let d = counters(&r)?;
    let out = report(&d);
    tear_down(m, r)?;
    Ok(out)
}

fn keepalive_timeout(m: &mut Machine) -> Outcome {
    let r = bring_up(m, Some((1, 3)))?;
    winsim::sched::advance(Duration::from_secs(5));
    in_driver(r.driver, "test: keepalive", || test_hooks::keepalive_poll(r.device));
    let d = counters(&r)?;
    ensure(d.keepalive_timeouts >= 1, || format!("no timeout: {d:?}"))?;
    let mut buf = [0u8; 64];
    let read = in_driver(r.driver, "test: read", || test_hooks::read(r.device, &mut buf));
    ensure(read == Err(STATUS_CONNECTION_DISCONNECTED), || format!("read after timeout: {read:?}"))?;
    let out = report(&d);
    tear_down(m, r)?;
    Ok(out)
}

type Run = fn(&mut Machine) -> Outcome;

pub fn tests() -> Vec<Test> {
    let list: [(&'static str, Run); 6] = [
        ("tx_reaches_peer", tx_reaches_peer),
        ("rx_zero_copy", rx_zero_copy),
        ("rx_split_mdls", rx_split_mdls),
        ("rx_returns_on_adapter_stop", rx_returns_on_stop),
        ("tx_cancel_in_flight", tx_cancel_in_flight),
        ("keepalive_timeout", keepalive_timeout),
    ];
    list.into_iter().map(|(name, run)| Test { suite: "miniport", name, expect: None, run }).collect()
}
