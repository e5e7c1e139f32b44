//! The `miniport_server` suite: the REAL miniport in server mode (`OVPN_MODE_MP`) with many peers,
//! driven only through its control device `\\.\ovpn-dco` the way OpenVPN's server drives ovpn-dco-win
//! (`SET_MODE`, `MP_START_VPN`, `MP_NEW_PEER` + `NEW_KEY` per client, `MP_SET_PEER`, iroutes,
//! `MP_DEL_PEER`, `GET_PEER_STATS`, `NOTIFY_EVENT`), with traffic through the real rings and sockets.
//!
//! Every client is a real UDP socket on loopback in the test process with its own engine (a client-mode
//! `Tunnel` keyed with that peer's own keys, the other way round), so a packet the miniport routes to the
//! wrong peer fails to authenticate there and the test says so. Each test accounts for every packet: what
//! the stack sent reaches exactly its peer (byte-identical, in order) or is dropped and counted, what the
//! clients sent reaches the stack or is dropped and counted, and the per-peer statistics equal what the
//! clients measured on their sockets.
//!
//! The rollback test fails `MP_START_VPN` and `NEW_PEER` with the simulated WSK's socket-creation and
//! bind faults (`wsk::Faults::socket_error`/`bind_error`) and checks the precise status and that the
//! tunnel is exactly as before, field by field, against a reference `Tunnel` fed the requests that
//! succeeded.
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use datapath::peer::Received;
use kernel::ffi::ntos::{
    NTSTATUS, PASSIVE_LEVEL, STATUS_BUFFER_OVERFLOW, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_OBJECTID_NOT_FOUND, STATUS_SUCCESS,
};
use miniport::control::{Snapshot, Tunnel};
use miniport::test_hooks::{self, DataCounters};
use uapi::ovpn::*;
use uapi::Wire;
use winsim::device::{self, Handle, Io};
use winsim::{netcx, wsk, DriverId, Machine};

use crate::netcx_client::{ipv4_packet, ipv6_packet};
use crate::{Outcome, Test};

const SERVICE: &str = "rdcomp";
const PATH: &str = "\\\\.\\ovpn-dco";
/// Peers of the big test; the others use [`PEERS_SMALL`].
const PEERS: usize = 40;
const PEERS_SMALL: usize = 32;
/// Peer ids are `FIRST_ID + k`.
const FIRST_ID: i32 = 100;
const SERVER_V4: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
/// How long the pumps wait for traffic (real time).
const WAIT: Duration = Duration::from_secs(10);

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

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Key material of peer `k`, direction `d` (0: server to client, 1: client to server).
fn key_dir(k: usize, d: usize) -> OvpnKeyDirection {
    let b = u8::try_from((k * 2 + d + 1) % 251).unwrap_or(1);
    OvpnKeyDirection { key: [b; 32], key_len: 32, nonce_tail: [b ^ 0x55; 8] }
}

fn key(k: usize, server: bool) -> Vec<u8> {
    let (encrypt, decrypt) =
        if server { (key_dir(k, 0), key_dir(k, 1)) } else { (key_dir(k, 1), key_dir(k, 0)) };
    enc(&OvpnCryptoData {
        encrypt,
        decrypt,
        key_slot: OvpnKeySlot::Primary,
        cipher_alg: OvpnCipherAlg::AesGcm,
        key_id: 0,
        peer_id: peer_id(k),
    })
}

fn peer_id(k: usize) -> i32 {
    FIRST_ID + i32::try_from(k).unwrap_or(0)
}

fn vpn4(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 8, 0, u8::try_from(k + 2).unwrap_or(255))
}

fn vpn6(k: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::try_from(k + 2).unwrap_or(0xffff))
}

/// An IPv4 packet from `src` to `dst` with a numbered payload.
fn v4(src: Ipv4Addr, dst: Ipv4Addr, seq: u16, len: usize) -> Vec<u8> {
    let mut p = ipv4_packet(seq, len);
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p
}

/// An IPv6 packet from `src` to `dst` with a numbered payload.
fn v6(src: Ipv6Addr, dst: Ipv6Addr, seq: u16, len: usize) -> Vec<u8> {
    let mut p = ipv6_packet(seq, len);
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    for (i, b) in p.iter_mut().enumerate().skip(40) {
        *b = (i as u8) ^ (seq as u8) ^ 0xa5;
    }
    p
}

/// A packet from the server's stack to `dst`.
fn to(dst: IpAddr, seq: u16, len: usize) -> Vec<u8> {
    match dst {
        IpAddr::V4(d) => v4(SERVER_V4, d, seq, len),
        IpAddr::V6(d) => v6(SERVER_V6, d, seq, len),
    }
}

/// One client of the server: a loopback UDP socket and an engine keyed as peer `k`.
struct Client {
    k: usize,
    socket: UdpSocket,
    engine: Tunnel,
    /// Keepalive pings received (authenticated).
    pings: usize,
    /// Datagram bytes received on the socket (data and pings).
    link_rx: u64,
    /// Datagram bytes sent to the server.
    link_tx: u64,
    /// Inner bytes sent to the server.
    vpn_tx: u64,
    /// Inner packets received.
    got: Vec<Vec<u8>>,
}

impl Client {
    fn new(k: usize) -> Result<Client, String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut engine = Tunnel::new().map_err(|s| format!("Tunnel::new {s:#x}"))?;
        let np = enc(&OvpnNewPeer { local: loopback(0), remote: loopback(9), proto: OvpnProto::Udp });
        for (code, input) in
            [(OvpnIoctl::NewPeer, np), (OvpnIoctl::NewKey, key(k, false)), (OvpnIoctl::StartVpn, Vec::new())]
        {
            let _ = engine
                .ioctl(code.code(), &input, &mut [], datapath::Instant::ZERO)
                .map_err(|s| format!("client {k} {}: {s:#x}", code.name()))?;
        }
        Ok(Client { k, socket, engine, pings: 0, link_rx: 0, link_tx: 0, vpn_tx: 0, got: Vec::new() })
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap_or_else(|_| loopback(0))
    }

    /// Reads every datagram waiting on `socket` (the client's, or another one it floated to).
    fn drain(&mut self, socket: Option<&UdpSocket>) -> Result<(), String> {
        let mut buf = [0u8; 4096];
        loop {
            let n = match socket.unwrap_or(&self.socket).recv(&mut buf) {
                Ok(n) => n,
                Err(_) => return Ok(()),
            };
            self.link_rx += n as u64;
            let pkt = &mut buf[..n];
            match self.engine.peers().open(datapath::Instant::ZERO, None, pkt) {
                Ok(Received::Data(o)) => self.got.push(pkt[o.payload].to_vec()),
                Ok(Received::Keepalive(_)) => self.pings += 1,
                Ok(Received::Control) => {}
                Err(e) => {
                    return Err(format!("client {} could not open a datagram (misrouted?): {e}", self.k))
                }
            }
        }
    }

    fn seal(&mut self, inner: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = vec![0u8; inner.len() + 64];
        let peer = self.engine.peers().peers_mut().next().ok_or("client without peer")?;
        let s = peer.seal(datapath::Instant::ZERO, &[inner], &mut out).map_err(|e| format!("seal: {e}"))?;
        out.truncate(s.len);
        Ok(out)
    }

    /// Seals `inner` and sends it to the server from `socket` (default: the client's own).
    fn send(&mut self, port: u16, inner: &[u8], socket: Option<&UdpSocket>) -> Result<(), String> {
        let d = self.seal(inner)?;
        socket.unwrap_or(&self.socket).send_to(&d, loopback(port)).map_err(|e| e.to_string())?;
        self.link_tx += d.len() as u64;
        self.vpn_tx += inner.len() as u64;
        Ok(())
    }
}

/// The server: the miniport's device, adapter, control handle and listen port, and its clients.
struct Server {
    driver: DriverId,
    device: usize,
    adapter: usize,
    handle: Handle,
    port: u16,
    clients: Vec<Client>,
    /// Tx packets the stack posted so far.
    posted: u64,
}

#[track_caller]
fn ok(h: Handle, code: OvpnIoctl, input: &[u8], out: usize) -> Result<Vec<u8>, String> {
    let (status, data) = device::device_io_control(h, code.code(), input, out);
    ensure(status == STATUS_SUCCESS, || format!("{}: {status:#x}", code.name()))?;
    Ok(data)
}

fn in_driver<R>(driver: DriverId, f: impl FnOnce() -> R) -> R {
    winsim::context::call_driver(driver, PASSIVE_LEVEL, "test", f)
}

/// Loads the miniport, opens `\\.\ovpn-dco`, sets server mode and starts listening.
fn listen(m: &mut Machine) -> Result<(DriverId, usize, usize, Handle, u16), String> {
    let driver =
        m.load_driver(SERVICE, miniport::driver_entry).map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let device = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let adapter = *netcx::adapters(device).first().ok_or("no adapter created")?;
    let handle = device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    ok(handle, OvpnIoctl::SetMode, &enc(&OvpnSetMode { mode: OvpnMode::Mp }), 0)?;
    let start = enc(&OvpnMpStartVpn { listen_address: loopback(0), ipv6_only: false });
    let reply = ok(handle, OvpnIoctl::MpStartVpn, &start, OvpnMpStartVpn::SIZE)?;
    let port = OvpnMpStartVpn::parse(&reply).map_err(|e| format!("{e:?}"))?.listen_address.port();
    ensure(port != 0, || "MP_START_VPN reported port 0".into())?;
    let link = netcx::adapter_info(adapter).and_then(|i| i.link_connected);
    ensure(link == Some(true), || format!("link after MP_START_VPN: {link:?}"))?;
    Ok((driver, device, adapter, handle, port))
}

/// A server with `n` clients, each added as OpenVPN adds one (`MP_NEW_PEER`, `NEW_KEY`, and
/// `MP_SET_PEER` with `keepalive(k)` when it says so).
fn start(
    m: &mut Machine,
    n: usize,
    keepalive: impl Fn(usize) -> Option<(i32, i32)>,
) -> Result<Server, String> {
    let (driver, device, adapter, handle, port) = listen(m)?;
    let mut clients = Vec::new();
    for k in 0..n {
        let c = Client::new(k)?;
        let np = enc(&OvpnMpNewPeer {
            local: loopback(port),
            remote: c.addr(),
            vpn_addr4: vpn4(k),
            vpn_addr6: vpn6(k),
            peer_id: peer_id(k),
        });
        ok(handle, OvpnIoctl::MpNewPeer, &np, 0)?;
        ok(handle, OvpnIoctl::NewKey, &key(k, true), 0)?;
        if let Some((interval, timeout)) = keepalive(k) {
            let sp = OvpnMpSetPeer {
                peer_id: peer_id(k),
                keepalive_interval: interval,
                keepalive_timeout: timeout,
                mss: -1,
            };
            ok(handle, OvpnIoctl::MpSetPeer, &enc(&sp), 0)?;
        }
        clients.push(c);
    }
    Ok(Server { driver, device, adapter, handle, port, clients, posted: 0 })
}

impl Server {
    fn counters(&self) -> Result<DataCounters, String> {
        in_driver(self.driver, || test_hooks::counters(self.device)).ok_or_else(|| "no counters".into())
    }

    fn snapshot(&self) -> Result<Snapshot, String> {
        in_driver(self.driver, || test_hooks::snapshot(self.device)).ok_or_else(|| "no snapshot".into())
    }

    /// The stack sends `packets` through the Tx ring (as fast as the ring takes them) and waits until
    /// the ring returned every one of them.
    fn send(&mut self, packets: &[Vec<u8>]) -> Result<(), String> {
        let mut i = 0;
        let adapter = self.adapter;
        let posted = wsk::pump_until(WAIT, || {
            netcx::pump(adapter);
            if i < packets.len() {
                i += netcx::stack_send(adapter, &packets[i..]);
            }
            i == packets.len()
        });
        ensure(posted, || format!("the Tx ring took {i} of {} packets", packets.len()))?;
        self.posted += packets.len() as u64;
        let want = self.posted;
        let done = wsk::pump_until(WAIT, || {
            netcx::pump(adapter);
            netcx::counters(adapter).is_some_and(|c| c.tx_completed == want)
        });
        let c = netcx::counters(adapter).map(|c| c.tx_completed);
        ensure(done, || format!("Tx completed {c:?} of {want}"))
    }

    /// Pumps until every client `k` holds `want[k]` inner packets (and no more arrive); returns them and
    /// clears them from the clients.
    fn clients_collect(&mut self, want: &[usize]) -> Result<Vec<Vec<Vec<u8>>>, String> {
        let mut error = None;
        let clients = &mut self.clients;
        let ok = wsk::pump_until(WAIT, || {
            for c in clients.iter_mut() {
                if let Err(e) = c.drain(None) {
                    error = Some(e);
                }
            }
            error.is_some() || clients.iter().all(|c| c.got.len() >= want.get(c.k).copied().unwrap_or(0))
        });
        if let Some(e) = error {
            return Err(e);
        }
        let have: Vec<usize> = self.clients.iter().map(|c| c.got.len()).collect();
        ensure(ok && have == want, || format!("clients received {have:?}, expected {want:?}"))?;
        Ok(self.clients.iter_mut().map(|c| std::mem::take(&mut c.got)).collect())
    }

    /// Pumps until the stack received `n` packets.
    fn stack_collect(&self, n: usize) -> Result<Vec<Vec<u8>>, String> {
        let mut got = Vec::new();
        let adapter = self.adapter;
        let ok = wsk::pump_until(WAIT, || {
            netcx::pump(adapter);
            got.extend(netcx::stack_received());
            got.len() >= n
        });
        ensure(ok && got.len() == n, || format!("the stack got {} of {n} packets", got.len()))?;
        Ok(got)
    }

    /// `GET_PEER_STATS` for every peer, as OpenVPN asks: first with a 4-byte buffer for the size.
    fn peer_stats(&self) -> Result<BTreeMap<i32, OvpnPeerStats>, String> {
        let all = enc(&OvpnGetPeerStats { peer_id: OvpnGetPeerStats::ALL_PEERS });
        let (status, head) = device::device_io_control(self.handle, OvpnIoctl::GetPeerStats.code(), &all, 4);
        ensure(status == STATUS_BUFFER_OVERFLOW && head.len() == 4, || format!("size query {status:#x}"))?;
        let need = u32::from_le_bytes(head[..4].try_into().map_err(|_| "size")?) as usize;
        let data = ok(self.handle, OvpnIoctl::GetPeerStats, &all, need)?;
        ensure(data.len() == need && need.is_multiple_of(OvpnPeerStats::SIZE), || {
            format!("{} of {need} bytes", data.len())
        })?;
        let mut out = BTreeMap::new();
        for chunk in data.chunks_exact(OvpnPeerStats::SIZE) {
            let s = OvpnPeerStats::parse(chunk).map_err(|e| format!("{e:?}"))?;
            out.insert(s.peer_id, s);
        }
        Ok(out)
    }

    /// Every live client's counters equal what the driver reports for its peer (no traffic in flight).
    fn check_peer_stats(&self, vpn_tx: &[u64], skip: &[usize]) -> Result<(), String> {
        let stats = self.peer_stats()?;
        let live: Vec<&Client> = self.clients.iter().filter(|c| !skip.contains(&c.k)).collect();
        ensure(stats.len() == live.len(), || {
            format!("{} peers in GET_PEER_STATS, {} live", stats.len(), live.len())
        })?;
        for c in live {
            let s = stats.get(&peer_id(c.k)).ok_or_else(|| format!("peer {} missing", peer_id(c.k)))?;
            let want = (
                i64::try_from(c.link_tx).unwrap_or(-1),
                i64::try_from(c.link_rx).unwrap_or(-1),
                i64::try_from(c.vpn_tx).unwrap_or(-1),
                i64::try_from(vpn_tx.get(c.k).copied().unwrap_or(0)).unwrap_or(-1),
            );
            let got = (s.link_rx_bytes, s.link_tx_bytes, s.vpn_rx_bytes, s.vpn_tx_bytes);
            ensure(got == want, || {
                format!(
                    "peer {}: driver (link rx, link tx, vpn rx, vpn tx) {got:?}, clients measured {want:?}",
                    c.k
                )
            })?;
        }
        Ok(())
    }

    fn finish(self, m: &mut Machine) -> Result<DataCounters, String> {
        let d = self.counters()?;
        ensure(d.rx_copied_bytes == 0 && d.rx_bad_returns == 0 && d.rx_lent == 0, || format!("Rx: {d:?}"))?;
        ensure(device::close(self.handle) == STATUS_SUCCESS, || "close".into())?;
        netcx::device_remove(self.device);
        ensure(wsk::retained() == 0, || format!("{} datagrams still retained", wsk::retained()))?;
        m.unload_driver(self.driver)?;
        Ok(d)
    }
}

fn report(d: &DataCounters, peers: usize) -> Vec<(String, u64)> {
    vec![
        ("peers".into(), peers as u64),
        ("tx_sealed".into(), d.tx_sealed),
        ("tx_batches".into(), d.tx_batches),
        ("tx_dropped".into(), d.tx_dropped),
        ("rx_indicated".into(), d.rx_indicated),
        ("rx_dropped".into(), d.rx_dropped),
    ]
}

/// Splits what the stack sends by the client it must reach: `(per client packets, inner bytes)`.
fn expect(packets: &[(Option<usize>, Vec<u8>)], n: usize) -> (Vec<Vec<Vec<u8>>>, Vec<u64>) {
    let mut per = vec![Vec::new(); n];
    let mut bytes = vec![0u64; n];
    for (k, p) in packets {
        if let Some(k) = k {
            per[*k].push(p.clone());
            bytes[*k] += p.len() as u64;
        }
    }
    (per, bytes)
}

/// 40 peers: Tx interleaved across every peer (IPv4 and IPv6, by VPN address), then runs of one peer
/// (batched into one `WskSendMessages`), then packets with no route (dropped and counted); every client
/// receives exactly its packets in order. Rx: every client sends; the stack receives everything, each
/// client's packets in its order. `GET_PEER_STATS` equals what each client measured on its socket;
/// `GET_STATS` equals the totals.
fn many_peers_both_ways(m: &mut Machine) -> Outcome {
    let n = PEERS;
    let mut s = start(m, n, |_| None)?;
    let mut seq = 0u16;
    let mut plan: Vec<(Option<usize>, Vec<u8>)> = Vec::new();
    for r in 0..3usize {
        for k in 0..n {
            let dst = if (r + k) % 2 == 0 { IpAddr::V4(vpn4(k)) } else { IpAddr::V6(vpn6(k)) };
            seq += 1;
            plan.push((Some(k), to(dst, seq, 60 + (k * 37 + r * 101) % 1300)));
        }
    }
    for k in [0usize, 7, 39] {
        for _ in 0..12 {
            seq += 1;
            plan.push((Some(k), to(IpAddr::V4(vpn4(k)), seq, 200)));
        }
    }
    let no_route: [IpAddr; 4] = [
        IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 8, 0, 200)),
        IpAddr::V6(Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x99)),
    ];
    for (i, dst) in no_route.iter().enumerate() {
        seq += 1;
        plan.insert(i * 30 + 5, (None, to(*dst, seq, 100)));
    }
    let packets: Vec<Vec<u8>> = plan.iter().map(|(_, p)| p.clone()).collect();
    s.send(&packets)?;
    let (want, vpn_tx) = expect(&plan, n);
    let counts: Vec<usize> = want.iter().map(Vec::len).collect();
    let got = s.clients_collect(&counts)?;
    for k in 0..n {
        ensure(got[k] == want[k], || format!("client {k}: packets differ from what the stack sent it"))?;
    }
    let d = s.counters()?;
    let routed = (packets.len() - no_route.len()) as u64;
    ensure(d.tx_sealed == routed && d.tx_dropped == no_route.len() as u64, || format!("Tx: {d:?}"))?;
    ensure(d.tx_batches < d.tx_sealed, || format!("runs of one peer were not batched: {d:?}"))?;
    // Rx: three packets from each client, interleaved across clients.
    let mut sent_by: Vec<Vec<Vec<u8>>> = vec![Vec::new(); n];
    for r in 0..3u16 {
        for (k, sent) in sent_by.iter_mut().enumerate() {
            seq += 1;
            let p = if r == 1 {
                v6(vpn6(k), SERVER_V6, seq, 80 + k * 20)
            } else {
                v4(vpn4(k), SERVER_V4, seq, 64 + k * 30 + usize::from(r) * 7)
            };
            let port = s.port;
            s.clients[k].send(port, &p, None)?;
            sent.push(p);
        }
    }
    let got = s.stack_collect(3 * n)?;
    for (k, sent) in sent_by.iter().enumerate() {
        let mine: Vec<&Vec<u8>> = got.iter().filter(|p| sent.contains(p)).collect();
        ensure(mine.len() == sent.len() && mine.iter().zip(sent).all(|(a, b)| *a == b), || {
            format!("client {k}: the stack got {} of its {} packets or out of order", mine.len(), sent.len())
        })?;
    }
    s.check_peer_stats(&vpn_tx, &[])?;
    let snap = s.snapshot()?;
    let st = snap.stats;
    let tun_tx: u64 = vpn_tx.iter().sum();
    let tun_rx: u64 = sent_by.iter().flatten().map(|p| p.len() as u64).sum();
    ensure(
        i64::from(st.sent_data_packets) == routed as i64
            && i64::from(st.received_data_packets) == (3 * n) as i64
            && i64::from(st.lost_out_data_packets) == no_route.len() as i64
            && st.lost_in_data_packets == 0
            && st.tun_bytes_sent == tun_tx as i64
            && st.tun_bytes_received == tun_rx as i64,
        || format!("GET_STATS {st:?}"),
    )?;
    let global = OvpnStats::parse(&ok(s.handle, OvpnIoctl::GetStats, &[], OvpnStats::SIZE)?)
        .map_err(|e| format!("{e:?}"))?;
    ensure(global == st, || format!("GET_STATS {global:?} differs from the tunnel's {st:?}"))?;
    let d = s.finish(m)?;
    Ok(report(&d, n))
}

fn iroute(addr: IpAddr, netbits: u8, peer: i32) -> Vec<u8> {
    enc(&OvpnMpIroute { addr, netbits, peer_id: peer })
}

/// Iroutes: each peer gets a /24; a longer /25 inside peer 0's goes to peer 1 (longest prefix wins);
/// IPv6 /48 and a /64 inside it; a peer's VPN /32 moved to another peer by an iroute. Each packet reaches
/// the peer its longest prefix names; after `MP_DEL_IROUTE` the shorter prefix takes over, then nothing
/// (dropped and counted); deleting the peer that held another's /32 gives the host route back.
fn iroutes(m: &mut Machine) -> Outcome {
    let n = PEERS_SMALL;
    let mut s = start(m, n, |_| None)?;
    let h = s.handle;
    let net = |k: usize| Ipv4Addr::new(192, 168, u8::try_from(k).unwrap_or(0), 0);
    for k in 0..n {
        ok(h, OvpnIoctl::MpAddIroute, &iroute(IpAddr::V4(net(k)), 24, peer_id(k)), 0)?;
    }
    ok(h, OvpnIoctl::MpAddIroute, &iroute(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 128)), 25, peer_id(1)), 0)?;
    let v6net = IpAddr::V6(Ipv6Addr::new(0xfd10, 0, 0, 0, 0, 0, 0, 0));
    ok(h, OvpnIoctl::MpAddIroute, &iroute(v6net, 48, peer_id(2)), 0)?;
    ok(
        h,
        OvpnIoctl::MpAddIroute,
        &iroute(IpAddr::V6(Ipv6Addr::new(0xfd10, 0, 0, 5, 0, 0, 0, 0)), 64, peer_id(3)),
        0,
    )?;
    ok(h, OvpnIoctl::MpAddIroute, &iroute(IpAddr::V4(vpn4(5)), 32, peer_id(6)), 0)?;
    let mut seq = 0u16;
    let mut round = |s: &mut Server, cases: &[(IpAddr, Option<usize>)]| -> Result<Vec<u64>, String> {
        let plan: Vec<(Option<usize>, Vec<u8>)> = cases
            .iter()
            .map(|(dst, k)| {
                seq += 1;
                (*k, to(*dst, seq, 120))
            })
            .collect();
        let before = s.counters()?.tx_dropped;
        s.send(&plan.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>())?;
        let (want, bytes) = expect(&plan, n);
        let got = s.clients_collect(&want.iter().map(Vec::len).collect::<Vec<_>>())?;
        ensure(got == want, || format!("packets reached the wrong peers: cases {cases:?}"))?;
        let dropped = s.counters()?.tx_dropped - before;
        let none = cases.iter().filter(|c| c.1.is_none()).count() as u64;
        ensure(dropped == none, || format!("{dropped} dropped, expected {none}"))?;
        Ok(bytes)
    };
    let a = |x: u8, y: u8| IpAddr::V4(Ipv4Addr::new(192, 168, x, y));
    let mut cases: Vec<(IpAddr, Option<usize>)> =
        (0..n).map(|k| (a(u8::try_from(k).unwrap_or(0), 7), Some(k))).collect();
    cases.extend([
        (a(0, 200), Some(1)),
        (a(0, 5), Some(0)),
        (IpAddr::V6(Ipv6Addr::new(0xfd10, 0, 0, 9, 0, 0, 0, 1)), Some(2)),
        (IpAddr::V6(Ipv6Addr::new(0xfd10, 0, 0, 5, 0, 0, 0, 9)), Some(3)),
        (IpAddr::V4(vpn4(5)), Some(6)),
        (IpAddr::V6(vpn6(5)), Some(5)),
        (a(200, 1), None),
    ]);
    let mut vpn_tx = round(&mut s, &cases)?;
    // The /25 goes: its addresses fall back to peer 0's /24. MP_DEL_IROUTE names no peer (-1).
    ok(h, OvpnIoctl::MpDelIroute, &iroute(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 128)), 25, -1), 0)?;
    let more = round(&mut s, &[(a(0, 200), Some(0)), (a(1, 1), Some(1))])?;
    vpn_tx.iter_mut().zip(more).for_each(|(t, b)| *t += b);
    // The /24 goes too: nothing routes there any more.
    ok(h, OvpnIoctl::MpDelIroute, &iroute(IpAddr::V4(net(0)), 24, -1), 0)?;
    let more = round(&mut s, &[(a(0, 200), None), (a(0, 5), None), (a(2, 2), Some(2))])?;
    vpn_tx.iter_mut().zip(more).for_each(|(t, b)| *t += b);
    ensure(s.snapshot()?.iroutes.len() == n + 2, || "iroute table after the deletions".into())?;
    // Peer 6 held peer 5's /32; deleting peer 6 gives peer 5 its host route back.
    ok(h, OvpnIoctl::MpDelPeer, &enc(&OvpnMpDelPeer { peer_id: peer_id(6) }), 0)?;
    let more =
        round(&mut s, &[(IpAddr::V4(vpn4(5)), Some(5)), (a(6, 1), None), (IpAddr::V4(vpn4(6)), None)])?;
    vpn_tx.iter_mut().zip(more).for_each(|(t, b)| *t += b);
    s.check_peer_stats(&vpn_tx, &[6])?;
    let snap = s.snapshot()?;
    ensure(snap.stats.lost_out_data_packets == 5, || {
        format!("lost out {}", snap.stats.lost_out_data_packets)
    })?;
    let d = s.finish(m)?;
    Ok(report(&d, n))
}

/// Submits a `NOTIFY_EVENT`; it must pend (nothing to report yet).
fn pend_notify(h: Handle) -> Result<winsim::device::IrpId, String> {
    match device::submit_io_control(h, OvpnIoctl::NotifyEvent.code(), &[], OvpnNotifyEvent::SIZE) {
        Io::Pending(id) => Ok(id),
        Io::Done(status, _) => Err(format!("NOTIFY_EVENT completed at once: {status:#x}")),
    }
}

fn notification(id: winsim::device::IrpId) -> Result<OvpnNotifyEvent, String> {
    let mut done = None;
    wsk::pump_until(WAIT, || {
        done = device::poll(id);
        done.is_some()
    });
    let (status, data) = done.ok_or("NOTIFY_EVENT never completed")?;
    ensure(status == STATUS_SUCCESS, || format!("NOTIFY_EVENT {status:#x}"))?;
    OvpnNotifyEvent::parse(&data).map_err(|e| format!("{e:?}"))
}

/// A client moves to a new address (a new socket): its first authenticated packet from there floats
/// the peer, completes the parked `NOTIFY_EVENT` with `FLOAT_PEER` and the new address, and the
/// server's packets for it go there from then on; the other peers are untouched. A forged packet from
/// another address (bad tag) floats nothing.
fn float(m: &mut Machine) -> Outcome {
    let n = PEERS_SMALL;
    let mut s = start(m, n, |_| None)?;
    let notify = pend_notify(s.handle)?;
    let moved = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    moved.set_nonblocking(true).map_err(|e| e.to_string())?;
    let new_addr = moved.local_addr().map_err(|e| e.to_string())?;
    let (port, f) = (s.port, 3usize);
    let hello = v4(vpn4(f), SERVER_V4, 1, 300);
    s.clients[f].send(port, &hello, Some(&moved))?;
    // A forged packet for peer 4 from a third address: dropped, no float.
    let forger = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let mut forged = s.clients[4].seal(&v4(vpn4(4), SERVER_V4, 2, 100))?;
    let last = forged.len() - 1;
    forged[last] ^= 1;
    forger.send_to(&forged, loopback(port)).map_err(|e| e.to_string())?;
    let got = s.stack_collect(1)?;
    ensure(got == [hello], || "the stack did not get the floated client's packet".into())?;
    let ev = notification(notify)?;
    ensure(
        ev.cmd == OvpnNotifyCmd::FloatPeer && ev.peer_id == peer_id(f) && ev.float_address == Some(new_addr),
        || format!("notification {ev:?}, expected FLOAT_PEER of {} to {new_addr}", peer_id(f)),
    )?;
    let snap = s.snapshot()?;
    let remote =
        |k: usize| snap.peers.iter().find(|p| p.info.peer_id == peer_id(k) as u32).map(|p| p.info.remote);
    ensure(remote(f) == Some(new_addr), || format!("peer {f} remote {:?}", remote(f)))?;
    ensure(remote(4) == Some(s.clients[4].addr()), || format!("peer 4 moved: {:?}", remote(4)))?;
    ensure(snap.notifications.is_empty(), || format!("left queued: {:?}", snap.notifications))?;
    // The server now sends to the new address; the old socket gets nothing.
    let plan: Vec<(Option<usize>, Vec<u8>)> =
        (0..n).map(|k| (Some(k), to(IpAddr::V4(vpn4(k)), 10 + k as u16, 150))).collect();
    s.send(&plan.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>())?;
    let (mut want, _) = expect(&plan, n);
    let floated_want = std::mem::take(&mut want[f]);
    let got = s.clients_collect(&want.iter().map(Vec::len).collect::<Vec<_>>())?;
    ensure(got == want, || "the other peers' packets differ".into())?;
    let mut at_new = Vec::new();
    let c = &mut s.clients[f];
    wsk::pump_until(WAIT, || {
        let _ = c.drain(Some(&moved));
        at_new.append(&mut c.got);
        at_new.len() >= floated_want.len()
    });
    ensure(at_new == floated_want, || {
        format!("the floated client got {} packets at its new address", at_new.len())
    })?;
    let d = s.counters()?;
    ensure(d.rx_floats == 1 && d.rx_dropped == 1, || format!("floats/drops: {d:?}"))?;
    let d = s.finish(m)?;
    let mut out = report(&d, n);
    out.push(("rx_floats".into(), d.rx_floats));
    Ok(out)
}

/// Keepalive per peer: every peer pings every second; peer 7 times out after 3 s of silence while the
/// others (60 s) stay. The timer deletes just peer 7 and queues `DEL_PEER` (reason `EXPIRED`), which
/// completes the parked `NOTIFY_EVENT`; the others keep working both ways, peer 7's traffic is dropped
/// and counted in both directions.
fn keepalive_expiry(m: &mut Machine) -> Outcome {
    let n = PEERS_SMALL;
    let dead = 7usize;
    let mut s = start(m, n, |k| Some(if k == dead { (1, 3) } else { (1, 60) }))?;
    let notify = pend_notify(s.handle)?;
    winsim::sched::advance(Duration::from_millis(2500));
    // Every client got authenticated pings (the clients drain them: they open with their own keys).
    let clients = &mut s.clients;
    wsk::pump_until(WAIT, || {
        for c in clients.iter_mut() {
            let _ = c.drain(None);
        }
        clients.iter().all(|c| c.pings >= 1)
    });
    let pinged = s.clients.iter().filter(|c| c.pings >= 1).count();
    ensure(pinged == n, || format!("{pinged} of {n} clients got a ping"))?;
    ensure(device::poll(notify).is_none(), || "NOTIFY_EVENT completed before any timeout".into())?;
    winsim::sched::advance(Duration::from_secs(2));
    let ev = notification(notify)?;
    ensure(
        ev.cmd == OvpnNotifyCmd::DelPeer
            && ev.peer_id == peer_id(dead)
            && ev.del_peer_reason == OvpnDelPeerReason::Expired,
        || format!("notification {ev:?}"),
    )?;
    let snap = s.snapshot()?;
    ensure(
        snap.peers.len() == n - 1 && snap.peers.iter().all(|p| p.info.peer_id != peer_id(dead) as u32),
        || format!("{} peers after the expiry", snap.peers.len()),
    )?;
    let d = s.counters()?;
    ensure(d.keepalive_timeouts == 1, || format!("timeouts {d:?}"))?;
    // The others keep working both ways; the expired peer's traffic goes nowhere.
    let plan: Vec<(Option<usize>, Vec<u8>)> =
        (0..n).map(|k| ((k != dead).then_some(k), to(IpAddr::V6(vpn6(k)), 50 + k as u16, 90 + k))).collect();
    s.send(&plan.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>())?;
    let (want, _) = expect(&plan, n);
    let got = s.clients_collect(&want.iter().map(Vec::len).collect::<Vec<_>>())?;
    ensure(got == want, || "packets after the expiry differ".into())?;
    let port = s.port;
    for k in 0..n {
        let p = v4(vpn4(k), SERVER_V4, 70 + k as u16, 100);
        s.clients[k].send(port, &p, None)?;
    }
    let got = s.stack_collect(n - 1)?;
    ensure(got.iter().all(|p| p[12..16] != vpn4(dead).octets()), || {
        "the expired peer's packet reached the stack".into()
    })?;
    let snap = s.snapshot()?;
    ensure(snap.stats.lost_in_data_packets == 1 && snap.stats.lost_out_data_packets == 1, || {
        format!("{:?}", snap.stats)
    })?;
    let d = s.finish(m)?;
    let mut out = report(&d, n);
    out.push(("keepalive_pings".into(), d.keepalive_pings));
    Ok(out)
}

/// `MP_DEL_PEER` under traffic: while the first round's sends are stalled in WSK and every client's
/// datagrams wait on the wire, peer 5 is deleted. What was sealed before reaches every peer (peer 5
/// included); peer 5's datagrams, read after, are dropped and counted; the next round reaches every
/// other peer and peer 5's packet is dropped and counted. Every ring packet comes back.
fn del_peer_under_traffic(m: &mut Machine) -> Outcome {
    let n = PEERS_SMALL;
    let gone = 5usize;
    let mut s = start(m, n, |_| None)?;
    wsk::set_faults(wsk::Faults { stall_ms: 10_000, ..wsk::Faults::NONE });
    // Round 1: one packet to each of the first 24 peers (the Tx ring holds 31), all in flight.
    let first: Vec<(Option<usize>, Vec<u8>)> =
        (0..24).map(|k| (Some(k), to(IpAddr::V4(vpn4(k)), k as u16, 400))).collect();
    let packets: Vec<Vec<u8>> = first.iter().map(|(_, p)| p.clone()).collect();
    ensure(netcx::stack_send(s.adapter, &packets) == packets.len(), || "round 1 not posted".into())?;
    s.posted += packets.len() as u64;
    let d = s.counters()?;
    ensure(d.tx_in_flight == 24, || format!("round 1 not in flight: {d:?}"))?;
    let port = s.port;
    let mut sent_by: Vec<Vec<Vec<u8>>> = vec![Vec::new(); n];
    for (k, sent) in sent_by.iter_mut().enumerate() {
        for r in 0..2u16 {
            let p = v4(vpn4(k), SERVER_V4, 100 + r, 60 + k);
            s.clients[k].send(port, &p, None)?;
            sent.push(p);
        }
    }
    ok(s.handle, OvpnIoctl::MpDelPeer, &enc(&OvpnMpDelPeer { peer_id: peer_id(gone) }), 0)?;
    wsk::set_faults(wsk::Faults::NONE);
    winsim::sched::advance(Duration::from_secs(11));
    let want = s.posted;
    let adapter = s.adapter;
    let done = wsk::pump_until(WAIT, || {
        netcx::pump(adapter);
        netcx::counters(adapter).is_some_and(|c| c.tx_completed == want)
    });
    ensure(done, || "round 1 never completed".into())?;
    let (want1, mut vpn_tx) = expect(&first, n);
    let got = s.clients_collect(&want1.iter().map(Vec::len).collect::<Vec<_>>())?;
    ensure(got == want1, || "round 1 (sealed before the deletion) differs".into())?;
    let got = s.stack_collect(2 * (n - 1))?;
    let expected: usize = (0..n).filter(|&k| k != gone).map(|k| sent_by[k].len()).sum();
    ensure(got.len() == expected && got.iter().all(|p| p[12..16] != vpn4(gone).octets()), || {
        "the deleted peer's datagrams reached the stack".into()
    })?;
    // Round 2 after the deletion: every peer, the deleted one's packet dropped.
    let second: Vec<(Option<usize>, Vec<u8>)> =
        (0..n).map(|k| ((k != gone).then_some(k), to(IpAddr::V4(vpn4(k)), 200 + k as u16, 500))).collect();
    s.send(&second.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>())?;
    let (want2, bytes2) = expect(&second, n);
    let got = s.clients_collect(&want2.iter().map(Vec::len).collect::<Vec<_>>())?;
    ensure(got == want2, || "round 2 differs".into())?;
    vpn_tx.iter_mut().zip(bytes2).for_each(|(t, b)| *t += b);
    let snap = s.snapshot()?;
    ensure(snap.stats.lost_out_data_packets == 1 && snap.stats.lost_in_data_packets == 2, || {
        format!("{:?}", snap.stats)
    })?;
    let d = s.counters()?;
    ensure(d.tx_dropped == 1 && d.tx_in_flight == 0 && d.tx_sealed == 24 + (n as u64 - 1), || {
        format!("{d:?}")
    })?;
    let one = enc(&OvpnGetPeerStats { peer_id: peer_id(gone) });
    let (status, _) =
        device::device_io_control(s.handle, OvpnIoctl::GetPeerStats.code(), &one, OvpnPeerStats::SIZE);
    ensure(status == STATUS_OBJECTID_NOT_FOUND, || {
        format!("GET_PEER_STATS of the deleted peer: {status:#x}")
    })?;
    // The deleted client's counters no longer matter; the others' must match exactly.
    s.check_peer_stats(&vpn_tx, &[gone])?;
    let d = s.finish(m)?;
    Ok(report(&d, n))
}

/// Send IRPs run out in server mode: 40 keepalive pings stalled in WSK hold 40 of the socket's 64 send
/// IRPs when the stack sends 31 packets, each to another peer (so each is its own batch). The advance
/// seals only what it has IRPs for (a pending batch keeps two in reserve) and leaves the rest unsealed
/// until completions free IRPs: no packet is sealed and then dropped for want of an IRP, and every
/// packet reaches its peer once WSK moves again.
fn tx_waits_for_send_irps(m: &mut Machine) -> Outcome {
    let n = PEERS;
    let mut s = start(m, n, |_| Some((1, 0)))?;
    wsk::set_faults(wsk::Faults { stall_ms: 10_000, ..wsk::Faults::NONE });
    winsim::sched::advance(Duration::from_millis(1500));
    let pending = wsk::pending_sends();
    ensure(pending == n, || format!("{pending} sends pending after the first keepalive tick, expected {n}"))?;
    let plan: Vec<(Option<usize>, Vec<u8>)> =
        (0..31).map(|k| (Some(k), to(IpAddr::V4(vpn4(k)), k as u16, 300 + k))).collect();
    let packets: Vec<Vec<u8>> = plan.iter().map(|(_, p)| p.clone()).collect();
    ensure(netcx::stack_send(s.adapter, &packets) == packets.len(), || "not posted".into())?;
    s.posted += packets.len() as u64;
    let d = s.counters()?;
    ensure(d.tx_dropped == 0, || format!("sealed packets dropped for want of a send IRP: {d:?}"))?;
    ensure(d.tx_in_flight > 0 && d.tx_in_flight < 31, || format!("in flight while IRPs ran out: {d:?}"))?;
    let waited = 31 - d.tx_in_flight;
    wsk::set_faults(wsk::Faults::NONE);
    winsim::sched::advance(Duration::from_secs(11));
    let (want, adapter) = (s.posted, s.adapter);
    let done = wsk::pump_until(WAIT, || {
        netcx::pump(adapter);
        netcx::counters(adapter).is_some_and(|c| c.tx_completed == want)
    });
    ensure(done, || "the waiting packets never went".into())?;
    let (want, _) = expect(&plan, n);
    let got = s.clients_collect(&want.iter().map(Vec::len).collect::<Vec<_>>())?;
    ensure(got == want, || "packets differ".into())?;
    let d = s.counters()?;
    ensure(d.tx_dropped == 0 && d.tx_sealed == 31 && d.tx_in_flight == 0, || format!("{d:?}"))?;
    let pinged = s.clients.iter().filter(|c| c.pings >= 1).count();
    ensure(pinged == n, || format!("{pinged} of {n} clients got a ping"))?;
    let d = s.finish(m)?;
    let mut out = report(&d, n);
    out.push(("waited_unsealed".into(), waited));
    Ok(out)
}

/// The fields of two snapshots that differ (empty: equal), for a precise failure message.
fn diff(a: &Snapshot, b: &Snapshot) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |same: bool, name| {
        if !same {
            out.push(name);
        }
    };
    check(a.mode == b.mode, "mode");
    check(a.started == b.started, "started");
    check(a.listen == b.listen, "listen");
    check(a.proto == b.proto, "proto");
    check(a.peers == b.peers, "peers");
    check(a.iroutes == b.iroutes, "iroutes");
    check(a.stats == b.stats, "stats");
    check(a.notifications == b.notifications, "notifications");
    check(a.control == b.control, "control");
    check(a.disconnect_pending == b.disconnect_pending, "disconnect_pending");
    check(a == b, "snapshot");
    out
}

/// Rollback: `MP_START_VPN` and `NEW_PEER` whose socket cannot be created or bound fail with WSK's
/// status, and the tunnel is exactly as before (every field of the snapshot, and equal to a reference
/// `Tunnel` fed only the requests that succeeded); no socket is open and the link stays down. The same
/// request then succeeds once the fault is gone (a half-applied request would make it fail).
fn rollback_on_socket_failure(m: &mut Machine) -> Outcome {
    use wsk::STATUS_ADDRESS_ALREADY_ASSOCIATED as IN_USE;
    let driver =
        m.load_driver(SERVICE, miniport::driver_entry).map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let device = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let adapter = *netcx::adapters(device).first().ok_or("no adapter created")?;
    let snapshot = || in_driver(driver, || test_hooks::snapshot(device)).ok_or("no snapshot");
    let now = datapath::Instant::ZERO;
    let faults: [(&str, wsk::Faults, NTSTATUS); 2] = [
        ("bind", wsk::Faults { bind_error: Some(IN_USE), ..wsk::Faults::NONE }, IN_USE),
        (
            "socket",
            wsk::Faults { socket_error: Some(STATUS_INSUFFICIENT_RESOURCES), ..wsk::Faults::NONE },
            STATUS_INSUFFICIENT_RESOURCES,
        ),
    ];
    let mut failed = 0u64;
    // Both requests, each after the requests that lead to it; `reference` gets only what succeeded.
    let check =
        |h: Handle, code: OvpnIoctl, input: &[u8], out: usize, reference: &Tunnel| -> Result<u64, String> {
            let mut n = 0;
            for (what, f, status) in faults {
                let before = snapshot()?;
                wsk::set_faults(f);
                let (got, _) = device::device_io_control(h, code.code(), input, out);
                wsk::set_faults(wsk::Faults::NONE);
                ensure(got == status, || {
                    format!("{} with a {what} fault: {got:#x}, expected {status:#x}", code.name())
                })?;
                let after = snapshot()?;
                let changed = diff(&before, &after);
                ensure(changed.is_empty(), || {
                    format!("{} failed ({what}) but changed {changed:?}", code.name())
                })?;
                let versus = diff(&reference.snapshot(), &after);
                ensure(versus.is_empty(), || {
                    format!(
                        "after the failed {} ({what}) differs from the reference in {versus:?}",
                        code.name()
                    )
                })?;
                let port = in_driver(driver, || test_hooks::local_port(device));
                ensure(port.is_none(), || {
                    format!("a socket is open after the failed {}: {port:?}", code.name())
                })?;
                let link = netcx::adapter_info(adapter).and_then(|i| i.link_connected);
                ensure(link == Some(false), || format!("link after the failed {}: {link:?}", code.name()))?;
                n += 1;
            }
            Ok(n)
        };
    // Server mode.
    let h = device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    let mut reference = Tunnel::new().map_err(|s| format!("{s:#x}"))?;
    let mode = enc(&OvpnSetMode { mode: OvpnMode::Mp });
    ok(h, OvpnIoctl::SetMode, &mode, 0)?;
    let _ = reference.ioctl(OvpnIoctl::SetMode.code(), &mode, &mut [], now).map_err(|s| format!("{s:#x}"))?;
    let start = enc(&OvpnMpStartVpn { listen_address: loopback(0), ipv6_only: false });
    failed += check(h, OvpnIoctl::MpStartVpn, &start, OvpnMpStartVpn::SIZE, &reference)?;
    let reply = ok(h, OvpnIoctl::MpStartVpn, &start, OvpnMpStartVpn::SIZE)?;
    let port = OvpnMpStartVpn::parse(&reply).map_err(|e| format!("{e:?}"))?.listen_address.port();
    let bound = in_driver(driver, || test_hooks::local_port(device));
    ensure(port != 0 && bound == Some(port), || {
        format!("MP_START_VPN after the faults: port {port}, bound {bound:?}")
    })?;
    ensure(device::close(h) == STATUS_SUCCESS, || "close".into())?;
    // Client mode, after a session that left counters (a written control packet): NEW_PEER zeroes
    // them, so the rollback must bring them back.
    let h = device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    let mut reference = Tunnel::new().map_err(|s| format!("{s:#x}"))?;
    let peer = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let remote = peer.local_addr().map_err(|e| e.to_string())?;
    let np = enc(&OvpnNewPeer { local: loopback(0), remote, proto: OvpnProto::Udp });
    ok(h, OvpnIoctl::NewPeer, &np, 0)?;
    let hello: Vec<u8> = std::iter::once(0x38u8).chain(0..20u8).collect();
    let (status, _) = device::write(h, &hello);
    ensure(status == STATUS_SUCCESS, || format!("write {status:#x}"))?;
    ok(h, OvpnIoctl::DelPeer, &[], 0)?;
    for code in [OvpnIoctl::NewPeer, OvpnIoctl::DelPeer] {
        let input = if code == OvpnIoctl::NewPeer { np.clone() } else { Vec::new() };
        let _ = reference.ioctl(code.code(), &input, &mut [], now).map_err(|s| format!("{s:#x}"))?;
        if code == OvpnIoctl::NewPeer {
            let _ = reference.write(&hello).map_err(|s| format!("{s:#x}"))?;
        }
    }
    let sent = snapshot()?.stats.sent_control_packets;
    ensure(sent == 1, || format!("sent control packets {sent}"))?;
    failed += check(h, OvpnIoctl::NewPeer, &np, 0, &reference)?;
    ok(h, OvpnIoctl::NewPeer, &np, 0)?;
    let snap = snapshot()?;
    ensure(snap.peers.len() == 1 && snap.stats.sent_control_packets == 0, || {
        format!("after NEW_PEER: {snap:?}")
    })?;
    ensure(in_driver(driver, || test_hooks::local_port(device)).is_some(), || {
        "no socket after NEW_PEER".into()
    })?;
    ensure(device::close(h) == STATUS_SUCCESS, || "close".into())?;
    netcx::device_remove(device);
    m.unload_driver(driver)?;
    Ok(vec![("failed_requests_rolled_back".into(), failed)])
}

type Run = fn(&mut Machine) -> Outcome;

pub fn tests() -> Vec<Test> {
    let list: [(&'static str, Run); 7] = [
        ("many_peers_both_ways", many_peers_both_ways),
        ("iroutes_longest_prefix", iroutes),
        ("float_notifies_and_moves_tx", float),
        ("keepalive_expiry_of_one_peer", keepalive_expiry),
        ("del_peer_under_traffic", del_peer_under_traffic),
        ("tx_waits_for_send_irps", tx_waits_for_send_irps),
        ("rollback_on_socket_failure", rollback_on_socket_failure),
    ];
    list.into_iter().map(|(name, run)| Test { suite: "miniport_server", name, expect: None, run }).collect()
}
