//! The `miniport_tcp` suite: the REAL miniport with a TCP peer (client mode, `NEW_PEER` with
//! `OVPN_PROTO_TCP`), driven end to end through the control device `\\.\ovpn-dco` (`DeviceIoControl`,
//! `ReadFile`, `WriteFile`). The peer is a `std::net::TcpListener` on loopback plus its own engine (a
//! second `Tunnel` keyed the other way round) that frames, seals, deframes and opens like OpenVPN over
//! TCP (2-byte big-endian length before every packet). Checked: traffic both ways with payloads
//! compared, records split across indications at every offset, control packets both ways, keepalive
//! pings framed on the stream, the peer's close and reset completing the pending read, a refused
//! connect failing `NEW_PEER` with `STATUS_CONNECTION_REFUSED` and changing nothing, and malformed
//! streams (a zero length, a length over the maximum) dropping the connection with the reason counted.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use datapath::framing::{Deframed, Deframer};
use datapath::peer::Received;
use kernel::ffi::ntos::{
    PASSIVE_LEVEL, STATUS_CONNECTION_DISCONNECTED, STATUS_CONNECTION_REFUSED, STATUS_SUCCESS,
};
use miniport::control::Tunnel;
use miniport::test_hooks::{self, TcpCounters};
use uapi::ovpn::*;
use uapi::Wire;
use winsim::device::{self, Handle, Io};
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

fn crypto(flip: bool) -> Vec<u8> {
    let dir = |b: u8| OvpnKeyDirection { key: [b; 32], key_len: 32, nonce_tail: [b ^ 0x55; 8] };
    let (e, d) = if flip { (2, 1) } else { (1, 2) };
    enc(&OvpnCryptoData {
        encrypt: dir(e),
        decrypt: dir(d),
        key_slot: OvpnKeySlot::Primary,
        cipher_alg: OvpnCipherAlg::AesGcm,
        key_id: 0,
        peer_id: PEER_ID,
    })
}

fn in_driver<R>(driver: DriverId, what: &str, f: impl FnOnce() -> R) -> R {
    winsim::context::call_driver(driver, PASSIVE_LEVEL, what, f)
}

/// The TCP peer: a listener, the accepted stream, an engine, and what it deframed.
struct TcpPeer {
    listener: TcpListener,
    stream: Option<TcpStream>,
    engine: Tunnel,
    deframer: Box<Deframer>,
    pings: usize,
    controls: Vec<Vec<u8>>,
}

impl TcpPeer {
    fn new() -> Result<TcpPeer, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let mut engine = Tunnel::new().map_err(|s| format!("{s:#x}"))?;
        let np = enc(&OvpnNewPeer {
            local: "127.0.0.1:0".parse().map_err(|_| "addr")?,
            remote: "127.0.0.1:9".parse().map_err(|_| "addr")?,
            proto: OvpnProto::Tcp,
        });
        for (code, input) in
            [(OvpnIoctl::NewPeer, np), (OvpnIoctl::NewKey, crypto(true)), (OvpnIoctl::StartVpn, Vec::new())]
        {
            let _ = engine
                .ioctl(code.code(), &input, &mut [], datapath::Instant::ZERO)
                .map_err(|s| format!("peer {}: {s:#x}", code.name()))?;
        }
        Ok(TcpPeer {
            listener,
            stream: None,
            engine,
            deframer: Box::default(),
            pings: 0,
            controls: Vec::new(),
        })
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    fn accept(&mut self) -> Result<(), String> {
        let (s, _) = self.listener.accept().map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        self.stream = Some(s);
        Ok(())
    }

    fn stream(&mut self) -> Result<&mut TcpStream, String> {
        self.stream.as_mut().ok_or_else(|| "not connected".to_string())
    }

    /// A framed, sealed data packet.
    fn sealed_frame(&mut self, inner: &[u8]) -> Result<Vec<u8>, String> {
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
        Ok(frame(&out))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let s = self.stream()?;
        let mut at = 0;
        while at < bytes.len() {
            match s.write(&bytes[at..]) {
                Ok(n) => at += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// Whether the miniport ended the connection (the peer reads end of stream or a reset).
    fn stream_ended(&mut self) -> bool {
        let Some(s) = self.stream.as_mut() else { return true };
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    /// Reads what arrived, deframes and opens it: inner data packets (pings and control kept aside).
    fn receive(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match self.stream()?.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        let mut out = Vec::new();
        let mut input = &raw[..];
        while !input.is_empty() {
            let (used, step) = self.deframer.deframe(input).map_err(|e| format!("peer deframe: {e}"))?;
            let mut record = match step {
                Deframed::NeedMore => None,
                Deframed::InInput(r) => Some(input[r].to_vec()),
                Deframed::Buffered => Some(self.deframer.buffered().to_vec()),
            };
            if let Some(rec) = record.as_mut() {
                match self.engine.peers().open(datapath::Instant::ZERO, None, rec) {
                    Ok(Received::Data(o)) => out.push(rec[o.payload].to_vec()),
                    Ok(Received::Keepalive(_)) => self.pings += 1,
                    Ok(Received::Control) => self.controls.push(rec.clone()),
                    Err(e) => return Err(format!("peer could not open a record: {e}")),
                }
            }
            input = &input[used..];
        }
        Ok(out)
    }
}

fn frame(packet: &[u8]) -> Vec<u8> {
    let mut out = (packet.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(packet);
    out
}

struct Rig {
    driver: DriverId,
    device: usize,
    adapter: usize,
    handle: Handle,
    peer: TcpPeer,
}

fn load(m: &mut Machine) -> Result<(DriverId, usize, usize, Handle), String> {
    let driver =
        m.load_driver(SERVICE, miniport::driver_entry).map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let device = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let adapter = *netcx::adapters(device).first().ok_or("no adapter created")?;
    let handle = device::open("\\\\.\\ovpn-dco").map_err(|s| format!("open: {s:#x}"))?;
    Ok((driver, device, adapter, handle))
}

fn new_peer_tcp(h: Handle, port: u16) -> Result<kernel::ffi::ntos::NTSTATUS, String> {
    let np = enc(&OvpnNewPeer {
        local: "0.0.0.0:0".parse().map_err(|_| "addr")?,
        remote: format!("127.0.0.1:{port}").parse().map_err(|_| "addr")?,
        proto: OvpnProto::Tcp,
    });
    Ok(device::device_io_control(h, OvpnIoctl::NewPeer.code(), &np, 0).0)
}

/// Loads the miniport and brings a TCP tunnel up through the control device.
fn bring_up(m: &mut Machine, keepalive: Option<(i32, i32)>) -> Result<Rig, String> {
    let (driver, device, adapter, handle) = load(m)?;
    let mut peer = TcpPeer::new()?;
    let status = new_peer_tcp(handle, peer.port())?;
    ensure(status == STATUS_SUCCESS, || format!("NEW_PEER (TCP): {status:#x}"))?;
    peer.accept()?;
    let mut steps = vec![(OvpnIoctl::NewKey, crypto(false))];
    if let Some((interval, timeout)) = keepalive {
        steps.push((
            OvpnIoctl::SetPeer,
            enc(&OvpnSetPeer { keepalive_interval: interval, keepalive_timeout: timeout, mss: 0 }),
        ));
    }
    steps.push((OvpnIoctl::StartVpn, Vec::new()));
    for (code, input) in steps {
        let (status, _) = device::device_io_control(handle, code.code(), &input, 0);
        ensure(status == STATUS_SUCCESS, || format!("{}: {status:#x}", code.name()))?;
    }
    let info = netcx::adapter_info(adapter).ok_or("no adapter info")?;
    ensure(info.link_connected == Some(true), || format!("link after START_VPN: {info:?}"))?;
    Ok(Rig { driver, device, adapter, handle, peer })
}

fn tcp_counters(r: &Rig) -> Result<TcpCounters, String> {
    in_driver(r.driver, "test: tcp counters", || test_hooks::tcp_counters(r.device))
        .ok_or_else(|| "no counters".into())
}

fn tear_down(m: &mut Machine, r: Rig) -> Result<(), String> {
    ensure(device::close(r.handle) == STATUS_SUCCESS, || "close".into())?;
    ensure(in_driver(r.driver, "test", || test_hooks::local_port(r.device)).is_none(), || {
        "the TCP socket is still open after the handle closed".into()
    })?;
    netcx::device_remove(r.device);
    m.unload_driver(r.driver)
}

fn peer_collect(r: &mut Rig, n: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut got = Vec::new();
    let mut err = None;
    let ok = wsk::pump_until(Duration::from_secs(5), || {
        match r.peer.receive() {
            Ok(mut more) => got.append(&mut more),
            Err(e) => err = Some(e),
        }
        err.is_some() || got.len() >= n
    });
    if let Some(e) = err {
        return Err(e);
    }
    ensure(ok, || format!("the peer got {} of {n} packets", got.len()))?;
    Ok(got)
}

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

fn report(c: &TcpCounters) -> Vec<(String, u64)> {
    vec![
        ("tcp_records".into(), c.records),
        ("tcp_straddled".into(), c.straddled),
        ("tcp_copied_records".into(), c.copied_records),
        ("tcp_copied_bytes".into(), c.copied_bytes),
    ]
}

/// Traffic both ways over the stream, payloads compared; Rx records are ciphertext copies into the TCP
/// Rx pool (counted), never plaintext copies, and every pool buffer comes back.
fn tcp_traffic_both_ways(m: &mut Machine) -> Outcome {
    let mut r = bring_up(m, None)?;
    let sent: Vec<Vec<u8>> = (0..12u16)
        .map(|k| {
            if k % 4 == 3 {
                ipv6_packet(k, 90 + usize::from(k) * 100)
            } else {
                ipv4_packet(k, 64 + usize::from(k) * 110)
            }
        })
        .collect();
    ensure(netcx::stack_send(r.adapter, &sent) == sent.len(), || "not posted".into())?;
    let got = peer_collect(&mut r, sent.len())?;
    ensure(got == sent, || "the peer's packets differ from what the stack sent".into())?;
    wsk::pump_until(Duration::from_secs(2), || {
        netcx::pump(r.adapter);
        netcx::counters(r.adapter).is_some_and(|c| c.tx_completed == sent.len() as u64)
    });
    let c = netcx::counters(r.adapter).ok_or("no counters")?;
    ensure(c.tx_completed == sent.len() as u64, || format!("Tx completed {}", c.tx_completed))?;

    let back: Vec<Vec<u8>> = (0..15u16).map(|k| ipv4_packet(100 + k, 60 + usize::from(k) * 95)).collect();
    let mut stream = Vec::new();
    for p in &back {
        stream.extend(r.peer.sealed_frame(p)?);
    }
    r.peer.write(&stream)?;
    let got = stack_collect(&r, back.len())?;
    ensure(got == back, || "the stack's packets differ from what the peer sent".into())?;
    let d = in_driver(r.driver, "test", || test_hooks::counters(r.device)).ok_or("no counters")?;
    ensure(d.rx_copied_bytes == 0 && d.rx_linearized == 0, || format!("plaintext copied: {d:?}"))?;
    ensure(d.rx_lent == 0 && d.rx_bad_returns == 0, || format!("returns: {d:?}"))?;
    let t = tcp_counters(&r)?;
    let ciphertext: u64 = stream.len() as u64 - 2 * back.len() as u64;
    ensure(t.records == back.len() as u64 && t.copied_records == back.len() as u64, || format!("{t:?}"))?;
    ensure(t.copied_bytes == ciphertext && t.buffers_out == 0, || {
        format!("{t:?} (ciphertext {ciphertext})")
    })?;
    let snap = in_driver(r.driver, "test", || test_hooks::snapshot(r.device)).ok_or("no snapshot")?;
    ensure(
        snap.stats.sent_data_packets == sent.len() as i32
            && snap.stats.received_data_packets == back.len() as i32,
        || format!("stats {:?}", snap.stats),
    )?;
    let mut out = report(&t);
    out.push(("tx_sealed".into(), sent.len() as u64));
    tear_down(m, r)?;
    Ok(out)
}

/// Records split at every offset: the first records are written one byte at a time (every split point
/// of the prefix and the body), the rest in odd chunks, and the provider cuts what it indicates into
/// several indications over several MDLs.
fn tcp_records_split_everywhere(m: &mut Machine) -> Outcome {
    wsk::configure(wsk::Config { split_receive: true, ..wsk::Config::default() });
    let result = (|| {
        let mut r = bring_up(m, None)?;
        let back: Vec<Vec<u8>> = (0..24u16).map(|k| ipv4_packet(k, 40 + usize::from(k) * 57)).collect();
        let mut stream = Vec::new();
        for p in &back {
            stream.extend(r.peer.sealed_frame(p)?);
        }
        let byte_by_byte = stream.len() / 6;
        for b in &stream[..byte_by_byte] {
            r.peer.write(std::slice::from_ref(b))?;
            wsk::pump();
        }
        let sizes = [3usize, 7, 1, 13, 2, 31, 5, 97, 11];
        let mut at = byte_by_byte;
        let mut k = 0;
        while at < stream.len() {
            let n = sizes[k % sizes.len()].min(stream.len() - at);
            r.peer.write(&stream[at..at + n])?;
            wsk::pump();
            at += n;
            k += 1;
        }
        let got = stack_collect(&r, back.len())?;
        ensure(got == back, || "reassembled packets differ".into())?;
        let t = tcp_counters(&r)?;
        ensure(t.records == back.len() as u64 && t.straddled >= 4, || format!("{t:?}"))?;
        ensure(t.buffers_out == 0 && t.zero_length == 0 && t.too_long == 0, || format!("{t:?}"))?;
        let out = report(&t);
        tear_down(m, r)?;
        Ok(out)
    })();
    wsk::configure(wsk::Config::default());
    result
}

/// Control packets both ways: `WriteFile` goes out framed on the stream; the peer's framed control
/// packet completes a pended `ReadFile`. Keepalive pings go out framed too.
fn tcp_control_and_pings(m: &mut Machine) -> Outcome {
    let mut r = bring_up(m, Some((1, 60)))?;
    let hello: Vec<u8> = std::iter::once(0x38u8).chain((0..30u8).map(|b| b ^ 0xa5)).collect();
    let (status, n) = device::write(r.handle, &hello);
    ensure(status == STATUS_SUCCESS && n == hello.len(), || format!("write {status:#x} {n}"))?;
    let _ = peer_collect(&mut r, 0)?;
    wsk::pump_until(Duration::from_secs(5), || {
        let _ = r.peer.receive();
        !r.peer.controls.is_empty()
    });
    ensure(r.peer.controls == vec![hello.clone()], || format!("peer controls {:02x?}", r.peer.controls))?;

    let Io::Pending(read) = device::submit_read(r.handle, 2048) else {
        return Err("read did not pend".into());
    };
    let control: Vec<u8> = std::iter::once(0x20u8).chain((1..=40u8).map(|b| b ^ 0x5a)).collect();
    r.peer.write(&frame(&control))?;
    let mut done = None;
    wsk::pump_until(Duration::from_secs(5), || {
        done = device::poll(read);
        done.is_some()
    });
    ensure(done == Some((STATUS_SUCCESS, control.clone())), || format!("read {done:?}"))?;

    winsim::sched::advance(Duration::from_millis(2500));
    wsk::pump_until(Duration::from_secs(2), || {
        let _ = r.peer.receive();
        r.peer.pings >= 1
    });
    ensure(r.peer.pings >= 1, || "the peer received no framed, authenticated ping".into())?;
    let mut out = report(&tcp_counters(&r)?);
    out.push(("peer_pings".into(), r.peer.pings as u64));
    tear_down(m, r)?;
    Ok(out)
}

/// The peer closes (FIN), or resets (RST): the pended read completes with
/// `STATUS_CONNECTION_DISCONNECTED`, once, and the disconnect is counted.
fn tcp_peer_close_completes_read(m: &mut Machine) -> Outcome {
    let mut out = Vec::new();
    for reset in [false, true] {
        let mut r = bring_up(m, None)?;
        let Io::Pending(read) = device::submit_read(r.handle, 2048) else {
            return Err("read did not pend".into());
        };
        if reset {
            // Unread bytes in the peer's receive buffer make the host's stack reset on close.
            ensure(netcx::stack_send(r.adapter, &[ipv4_packet(1, 100)]) == 1, || "post".into())?;
            wsk::pump_until(Duration::from_secs(1), || false);
        }
        drop(r.peer.stream.take());
        let mut done = None;
        wsk::pump_until(Duration::from_secs(5), || {
            done = device::poll(read);
            done.is_some()
        });
        ensure(done == Some((STATUS_CONNECTION_DISCONNECTED, Vec::new())), || {
            format!("read {done:?} (reset {reset})")
        })?;
        let again = device::submit_read(r.handle, 2048);
        ensure(matches!(again, Io::Pending(_)), || format!("second read {again:?}: the news is given once"))?;
        let t = tcp_counters(&r)?;
        ensure(t.disconnects == 1, || format!("{t:?}"))?;
        out.push((if reset { "reset_disconnects" } else { "close_disconnects" }.to_string(), t.disconnects));
        tear_down(m, r)?;
    }
    Ok(out)
}

/// Nothing listens: `NEW_PEER` fails with `STATUS_CONNECTION_REFUSED` (the connect IRP's status, as
/// ovpn-dco-win completes the pended request) and the tunnel is as before: no peer, no socket, link
/// down, and a `NEW_PEER` that works afterwards.
fn tcp_connect_refused(m: &mut Machine) -> Outcome {
    let (driver, device, adapter, handle) = load(m)?;
    let closed = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = closed.local_addr().map_err(|e| e.to_string())?.port();
    drop(closed);
    let before = in_driver(driver, "test", || test_hooks::snapshot(device)).ok_or("no snapshot")?;
    let status = new_peer_tcp(handle, port)?;
    ensure(status == STATUS_CONNECTION_REFUSED, || format!("NEW_PEER to a closed port: {status:#x}"))?;
    let after = in_driver(driver, "test", || test_hooks::snapshot(device)).ok_or("no snapshot")?;
    ensure(format!("{before:?}") == format!("{after:?}"), || {
        format!("state changed:\n{before:?}\n{after:?}")
    })?;
    ensure(in_driver(driver, "test", || test_hooks::local_port(device)).is_none(), || "socket open".into())?;
    let info = netcx::adapter_info(adapter).ok_or("no adapter info")?;
    ensure(info.link_connected == Some(false), || format!("link {info:?}"))?;
    // The same handle can connect now.
    let mut peer = TcpPeer::new()?;
    let status = new_peer_tcp(handle, peer.port())?;
    ensure(status == STATUS_SUCCESS, || format!("NEW_PEER after the refusal: {status:#x}"))?;
    peer.accept()?;
    let r = Rig { driver, device, adapter, handle, peer };
    tear_down(m, r)?;
    Ok(vec![("refused_status".into(), u64::from(STATUS_CONNECTION_REFUSED.cast_unsigned()))])
}

/// A zero-length record and a record over the maximum: the connection is dropped (the miniport resets
/// it and processes nothing after the bad record), the reason counted, and the pended read completes
/// with `STATUS_CONNECTION_DISCONNECTED`.
fn tcp_malformed_stream(m: &mut Machine) -> Outcome {
    let mut out = Vec::new();
    for (name, bad) in [
        ("zero_length", vec![0u8, 0]),
        ("too_long", {
            let mut v = 3000u16.to_be_bytes().to_vec();
            v.extend(std::iter::repeat_n(0x48u8, 3000));
            v
        }),
    ] {
        let mut r = bring_up(m, None)?;
        let Io::Pending(read) = device::submit_read(r.handle, 2048) else {
            return Err("read did not pend".into());
        };
        let good = ipv4_packet(1, 200);
        let mut stream = r.peer.sealed_frame(&good)?;
        stream.extend(&bad);
        stream.extend(r.peer.sealed_frame(&ipv4_packet(2, 200))?);
        r.peer.write(&stream)?;
        let mut done = None;
        wsk::pump_until(Duration::from_secs(5), || {
            done = device::poll(read);
            done.is_some()
        });
        ensure(done == Some((STATUS_CONNECTION_DISCONNECTED, Vec::new())), || {
            format!("{name}: read {done:?}")
        })?;
        let got = stack_collect(&r, 1)?;
        ensure(got == vec![good.clone()], || {
            format!("{name}: only the record before the bad one is delivered")
        })?;
        wsk::pump_until(Duration::from_millis(200), || false);
        netcx::pump(r.adapter);
        ensure(netcx::stack_received().is_empty(), || {
            format!("{name}: a record after the bad one was delivered")
        })?;
        let mut ended = false;
        wsk::pump_until(Duration::from_secs(2), || {
            ended = r.peer.stream_ended();
            ended
        });
        ensure(ended, || format!("{name}: the miniport did not reset the connection"))?;
        let t = tcp_counters(&r)?;
        let counted = if name == "zero_length" { t.zero_length } else { t.too_long };
        ensure(counted == 1 && t.records == 1, || format!("{name}: {t:?}"))?;
        out.push((name.to_string(), counted));
        tear_down(m, r)?;
    }
    Ok(out)
}

type Run = fn(&mut Machine) -> Outcome;

pub fn tests() -> Vec<Test> {
    let list: [(&'static str, Run); 6] = [
        ("tcp_traffic_both_ways", tcp_traffic_both_ways),
        ("tcp_records_split_everywhere", tcp_records_split_everywhere),
        ("tcp_control_and_pings", tcp_control_and_pings),
        ("tcp_peer_close_completes_read", tcp_peer_close_completes_read),
        ("tcp_connect_refused", tcp_connect_refused),
        ("tcp_malformed_stream", tcp_malformed_stream),
    ];
    list.into_iter().map(|(name, run)| Test { suite: "miniport_tcp", name, expect: None, run }).collect()
}
