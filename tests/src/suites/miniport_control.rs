//! The `miniport_control` suite: the REAL miniport's control device through the simulated KMDF I/O
//! (`winsim::wdfio`) and the simulated I/O manager (`winsim::device`): the device arrives through PnP
//! (`EvtDriverDeviceAdd`), user mode opens `\\.\ovpn-dco` (exclusive), and every request travels as an
//! IRP → WDFREQUEST → queue callback → `miniport::control::Tunnel` and back. A reference `Tunnel` run
//! beside the device is the oracle for the malformed-input sweep.
use std::net::SocketAddr;
use std::time::Duration;

use kernel::ffi::ntos::{
    NTSTATUS, PASSIVE_LEVEL, STATUS_ACCESS_DENIED, STATUS_CANCELLED, STATUS_CONNECTION_DISCONNECTED,
    STATUS_DELETE_PENDING, STATUS_PENDING, STATUS_SUCCESS,
};
use miniport::control::Tunnel;
use uapi::ovpn::*;
use uapi::Wire;
use winsim::device::{self, Handle, Io};
use winsim::{netcx, DriverId, Machine};

use crate::{Outcome, Test};

const PATH: &str = "\\\\.\\ovpn-dco";

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

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Loads the miniport and lets PnP add its device; returns the driver and the WDFDEVICE.
fn bring_up(machine: &mut Machine) -> Result<(DriverId, usize), String> {
    let driver = machine
        .load_driver(uapi::names::MINIPORT_SERVICE_NAME, miniport::driver_entry)
        .map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let device = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    Ok((driver, device))
}

fn tear_down(machine: &mut Machine, driver: DriverId, device: usize) -> Result<(), String> {
    netcx::device_remove(device);
    machine.unload_driver(driver)
}

fn ioctl(h: Handle, code: OvpnIoctl, input: &[u8], out: usize) -> (NTSTATUS, Vec<u8>) {
    device::device_io_control(h, code.code(), input, out)
}

#[track_caller]
fn ok(h: Handle, code: OvpnIoctl, input: &[u8], out: usize) -> Result<Vec<u8>, String> {
    let (status, data) = ioctl(h, code, input, out);
    ensure(status == STATUS_SUCCESS, || format!("{}: {status:#x}", code.name()))?;
    Ok(data)
}

/// Runs `f` as the miniport's data path or timer DPC would (in the driver's context).
fn as_datapath<R>(driver: DriverId, f: impl FnOnce() -> R) -> R {
    winsim::context::call_driver(driver, PASSIVE_LEVEL, "miniport data path", f)
}

fn aes(peer_id: i32) -> Vec<u8> {
    let dir = |b: u8| OvpnKeyDirection { key: [b; 32], key_len: 32, nonce_tail: [b ^ 0x55; 8] };
    enc(&OvpnCryptoData {
        encrypt: dir(1),
        decrypt: dir(2),
        key_slot: OvpnKeySlot::Primary,
        cipher_alg: OvpnCipherAlg::AesGcm,
        key_id: 0,
        peer_id,
    })
}

fn new_peer() -> Vec<u8> {
    enc(&OvpnNewPeer { local: sa("0.0.0.0:0"), remote: sa("192.0.2.1:1194"), proto: OvpnProto::Udp })
}

fn device_and_exclusive_open(m: &mut Machine) -> Outcome {
    let (driver, dev) = bring_up(m)?;
    let (links, interfaces) = netcx::device_names(dev);
    ensure(links == ["\\DosDevices\\ovpn-dco"], || format!("links {links:?}"))?;
    let net = uapi::names::GUID_DEVINTERFACE_NET;
    ensure(
        interfaces.len() == 1 && interfaces[0].Data1 == net.data1 && interfaces[0].Data4 == net.data4,
        || format!("interfaces {interfaces:?}"),
    )?;
    let h = device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    ensure(device::open(PATH) == Err(STATUS_ACCESS_DENIED), || "second open of an exclusive device".into())?;
    let version = ok(h, OvpnIoctl::GetVersion, &[], OvpnVersion::SIZE)?;
    let v = OvpnVersion::parse(&version).map_err(|e| format!("{e:?}"))?;
    ensure((v.major, v.minor, v.patch) == (2, 7, 0), || format!("version {v:?}"))?;
    ensure(device::close(h) == STATUS_SUCCESS, || "close".into())?;
    let h = device::open(PATH).map_err(|s| format!("reopen after close: {s:#x}"))?;
    // The version device (created in DriverEntry) is not exclusive and answers GET_VERSION only.
    let v1 = device::open("\\\\.\\ovpn-dco-ver").map_err(|s| format!("open ovpn-dco-ver: {s:#x}"))?;
    let v2 =
        device::open("\\\\.\\ovpn-dco-ver").map_err(|s| format!("second open of ovpn-dco-ver: {s:#x}"))?;
    let version = ok(v2, OvpnIoctl::GetVersion, &[], OvpnVersion::SIZE)?;
    ensure(OvpnVersion::parse(&version).is_ok_and(|v| (v.major, v.minor) == (2, 7)), || {
        "version device".into()
    })?;
    let (status, _) = ioctl(v1, OvpnIoctl::GetStats, &[], OvpnStats::SIZE);
    ensure(status == kernel::ffi::ntos::STATUS_INVALID_DEVICE_REQUEST, || {
        format!("GET_STATS on ovpn-dco-ver {status:#x}")
    })?;
    let (status, _) = ioctl(v1, OvpnIoctl::GetVersion, &[], 4);
    ensure(status == kernel::ffi::ntos::STATUS_BUFFER_TOO_SMALL, || format!("short version {status:#x}"))?;
    device::close(v1);
    device::close(v2);
    device::close(h);
    tear_down(m, driver, dev)?;
    Ok(vec![])
}

/// Every IOCTL code (and two unknown ones) with inputs of every size 0..=128 and three output sizes,
/// through the real request path, compared with a reference `Tunnel` fed the same requests: status,
/// `Information` and bytes must match. Then the same in server mode (where `NOTIFY_EVENT` pends).
fn malformed_inputs_every_size(m: &mut Machine) -> Outcome {
    let (driver, dev) = bring_up(m)?;
    let h = device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    let mut reference = Tunnel::new().map_err(|s| format!("Tunnel::new {s:#x}"))?;
    let mut requests = 0u64;
    let mut pended = 0u64;
    for mode in [OvpnMode::P2p, OvpnMode::Mp] {
        if mode == OvpnMode::Mp {
            let input = enc(&OvpnSetMode { mode: OvpnMode::Mp });
            ok(h, OvpnIoctl::SetMode, &input, 0)?;
            let mut out = [0u8; 0];
            let _ = reference
                .ioctl(OvpnIoctl::SetMode.code(), &input, &mut out, datapath::Instant::ZERO)
                .map_err(|s| format!("reference SET_MODE {s:#x}"))?;
        }
        for n in 0..=20u32 {
            let code = ovpn_code(n);
            for len in 0..=128usize {
                for fill in [0u8, 0xff] {
                    let input: Vec<u8> = (0..len).map(|i| fill ^ (i as u8 & 3)).collect();
                    for out_len in [0usize, 4, 256] {
                        requests += 1;
                        let got = device::submit_io_control(h, code, &input, out_len);
                        let mut out = vec![0u8; out_len];
                        let want =
                            reference.ioctl(code, &input, &mut out, datapath::Instant::ZERO).map(|r| {
                                out.truncate(r.information);
                                (r.status, out)
                            });
                        match (got, want) {
                            (Io::Pending(_), Ok((STATUS_PENDING, _))) => pended += 1,
                            (Io::Done(status, data), Ok((ws, wout))) if status == ws && data == wout => {}
                            (Io::Done(status, data), Err(ws)) if status == ws && data.is_empty() => {}
                            (got, want) => {
                                return Err(format!(
                                    "code {n} input {len}x{fill:#x} out {out_len}: device {got:?}, reference {want:?}"
                                ))
                            }
                        }
                    }
                }
            }
        }
    }
    ensure(pended > 0, || "no NOTIFY_EVENT pended in server mode".into())?;
    // Closing cancels every parked NOTIFY_EVENT.
    let parked = device::pending_for(h);
    ensure(parked.len() as u64 == pended, || format!("{} parked, {pended} pended", parked.len()))?;
    device::close(h);
    for id in parked {
        ensure(device::poll(id).is_some_and(|(s, _)| s == STATUS_CANCELLED), || {
            "parked not cancelled".into()
        })?;
    }
    tear_down(m, driver, dev)?;
    Ok(vec![("requests".into(), requests), ("pended".into(), pended)])
}

fn ovpn_code(n: u32) -> u32 {
    // CTL_CODE(FILE_DEVICE_UNKNOWN, n, METHOD_BUFFERED, FILE_ANY_ACCESS); n = 0 and 20 are unknown.
    (0x22 << 16) | (n << 2)
}

fn pended_read_completed_by_control_packet(m: &mut Machine) -> Outcome {
    let (driver, dev) = bring_up(m)?;
    let h = device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    ok(h, OvpnIoctl::NewPeer, &new_peer(), 0)?;
    let Io::Pending(read) = device::submit_read(h, 2048) else { return Err("read did not pend".into()) };
    let status =
        as_datapath(driver, || miniport::ioctl::control_packet_received(sa("192.0.2.1:1194"), b"P_CONTROL"));
    ensure(status == STATUS_SUCCESS, || format!("receive {status:#x}"))?;
    let done = device::poll(read).ok_or("read still pending after a control packet")?;
    ensure(done == (STATUS_SUCCESS, b"P_CONTROL".to_vec()), || format!("read {done:?}"))?;
    // A packet already queued answers the next read at once; a short buffer fails and keeps it.
    as_datapath(driver, || miniport::ioctl::control_packet_received(sa("192.0.2.1:1194"), b"second"));
    let short = device::read(h, 3);
    ensure(short.0 == kernel::ffi::ntos::STATUS_BUFFER_TOO_SMALL, || format!("short read {short:?}"))?;
    ensure(device::read(h, 100) == (STATUS_SUCCESS, b"second".to_vec()), || "queued read".into())?;
    // A write is checked and counted (the transport is a hook in this branch).
    ensure(device::write(h, b"hello") == (STATUS_SUCCESS, 5), || "write".into())?;
    let stats = ok(h, OvpnIoctl::GetStats, &[], OvpnStats::SIZE)?;
    let s = OvpnStats::parse(&stats).map_err(|e| format!("{e:?}"))?;
    ensure(s.sent_control_packets == 1 && s.received_control_packets == 2, || format!("stats {s:?}"))?;
    device::close(h);
    tear_down(m, driver, dev)?;
    Ok(vec![])
}

fn keepalive_timeout_fails_pended_read(m: &mut Machine) -> Outcome {
    let (driver, dev) = bring_up(m)?;
    let h = device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    ok(h, OvpnIoctl::NewPeer, &new_peer(), 0)?;
    ok(h, OvpnIoctl::NewKey, &aes(5), 0)?;
    ok(h, OvpnIoctl::SetPeer, &enc(&OvpnSetPeer { keepalive_interval: 1, keepalive_timeout: 3, mss: 0 }), 0)?;
    ok(h, OvpnIoctl::StartVpn, &[], 0)?;
    let Io::Pending(read) = device::submit_read(h, 2048) else { return Err("read did not pend".into()) };
    // The driver's keepalive timer (a periodic DPC) runs as machine time passes.
    winsim::datapath::wait(Duration::from_secs(2));
    ensure(device::is_pending(read), || "read completed before the timeout".into())?;
    winsim::datapath::wait(Duration::from_secs(2));
    let done = device::poll(read).ok_or("read still pending after the keepalive timeout")?;
    ensure(done.0 == STATUS_CONNECTION_DISCONNECTED, || format!("read {done:?}"))?;
    // Once: the next read pends again; closing cancels it.
    let Io::Pending(again) = device::submit_read(h, 2048) else {
        return Err("second read did not pend".into());
    };
    device::close(h);
    ensure(device::poll(again).is_some_and(|(s, _)| s == STATUS_CANCELLED), || {
        "close did not cancel".into()
    })?;
    tear_down(m, driver, dev)?;
    Ok(vec![])
}

fn notify_event_in_server_mode(m: &mut Machine) -> Outcome {
    let (driver, dev) = bring_up(m)?;
    let h = device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    ok(h, OvpnIoctl::SetMode, &enc(&OvpnSetMode { mode: OvpnMode::Mp }), 0)?;
    let start = enc(&OvpnMpStartVpn { listen_address: sa("0.0.0.0:1194"), ipv6_only: false });
    ok(h, OvpnIoctl::MpStartVpn, &start, OvpnMpStartVpn::SIZE)?;
    let peer = enc(&OvpnMpNewPeer {
        local: sa("0.0.0.0:0"),
        remote: sa("198.51.100.7:40000"),
        vpn_addr4: "10.8.0.2".parse().map_err(|_| "addr")?,
        vpn_addr6: "fd00::2".parse().map_err(|_| "addr")?,
        peer_id: 2,
    });
    ok(h, OvpnIoctl::MpNewPeer, &peer, 0)?;
    ok(h, OvpnIoctl::NewKey, &aes(2), 0)?;
    let set = enc(&OvpnMpSetPeer { peer_id: 2, keepalive_interval: 2, keepalive_timeout: 5, mss: 0 });
    ok(h, OvpnIoctl::MpSetPeer, &set, 0)?;
    let Io::Pending(notify) =
        device::submit_io_control(h, OvpnIoctl::NotifyEvent.code(), &[], OvpnNotifyEvent::SIZE)
    else {
        return Err("NOTIFY_EVENT did not pend".into());
    };
    winsim::datapath::wait(Duration::from_secs(6));
    let (status, out) = device::poll(notify).ok_or("NOTIFY_EVENT still pending after the peer expired")?;
    ensure(status == STATUS_SUCCESS, || format!("notify {status:#x}"))?;
    let e = OvpnNotifyEvent::parse(&out).map_err(|e| format!("{e:?}"))?;
    ensure(
        (e.cmd, e.peer_id, e.del_peer_reason) == (OvpnNotifyCmd::DelPeer, 2, OvpnDelPeerReason::Expired),
        || format!("event {e:?}"),
    )?;
    // The peer is gone: deleting it again names no peer.
    let del = enc(&OvpnMpDelPeer { peer_id: 2 });
    let (status, _) = ioctl(h, OvpnIoctl::MpDelPeer, &del, 0);
    ensure(status == kernel::ffi::ntos::STATUS_OBJECTID_NOT_FOUND, || format!("MP_DEL_PEER {status:#x}"))?;
    device::close(h);
    tear_down(m, driver, dev)?;
    Ok(vec![])
}

fn close_deletes_peer_and_cancels(m: &mut Machine) -> Outcome {
    let (driver, dev) = bring_up(m)?;
    let h = device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    ok(h, OvpnIoctl::NewPeer, &new_peer(), 0)?;
    // DEL_PEER cancels parked reads too (ovpn-dco-win OvpnStopVPN); then a new peer for the close below.
    let Io::Pending(parked) = device::submit_read(h, 1500) else { return Err("read did not pend".into()) };
    ok(h, OvpnIoctl::DelPeer, &[], 0)?;
    ensure(device::poll(parked).is_some_and(|(s, _)| s == STATUS_CANCELLED), || {
        "DEL_PEER did not cancel".into()
    })?;
    ok(h, OvpnIoctl::NewPeer, &new_peer(), 0)?;
    let reads: Vec<_> = (0..3)
        .map(|_| match device::submit_read(h, 1500) {
            Io::Pending(id) => Ok(id),
            other => Err(format!("read {other:?}")),
        })
        .collect::<Result<_, _>>()?;
    ensure(winsim::wdfio::requests_outstanding() == (3, 0), || {
        format!("outstanding {:?}", winsim::wdfio::requests_outstanding())
    })?;
    device::close(h);
    for r in reads {
        ensure(device::poll(r).is_some_and(|(s, _)| s == STATUS_CANCELLED), || "read not cancelled".into())?;
    }
    ensure(winsim::wdfio::requests_outstanding() == (0, 0), || "requests left after close".into())?;
    // The peer was deleted: a new handle can add a peer again.
    let h = device::open(PATH).map_err(|s| format!("reopen: {s:#x}"))?;
    ok(h, OvpnIoctl::NewPeer, &new_peer(), 0)?;
    device::close(h);
    tear_down(m, driver, dev)?;
    Ok(vec![])
}

fn removal_with_requests_pended(m: &mut Machine) -> Outcome {
    let (driver, dev) = bring_up(m)?;
    let h = device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    ok(h, OvpnIoctl::NewPeer, &new_peer(), 0)?;
    let Io::Pending(read) = device::submit_read(h, 1500) else { return Err("read did not pend".into()) };
    ensure(winsim::wdfio::requests_outstanding() == (1, 0), || {
        format!("outstanding before removal {:?}", winsim::wdfio::requests_outstanding())
    })?;
    netcx::device_remove(dev);
    let done = device::poll(read).ok_or_else(|| {
        format!("read still pending after removal {:?}", winsim::wdfio::requests_outstanding())
    })?;
    ensure(done.0 == STATUS_CANCELLED, || format!("read {done:?}"))?;
    let (status, _) = ioctl(h, OvpnIoctl::GetVersion, &[], OvpnVersion::SIZE);
    ensure(status == STATUS_DELETE_PENDING, || format!("request after removal {status:#x}"))?;
    device::close(h);
    ensure(device::open(PATH).is_err(), || "the link outlived the device".into())?;
    m.unload_driver(driver)?;
    Ok(vec![])
}

/// The simulated KMDF I/O itself, with the test KMDF client: buffers, types without a callback,
/// zero-length requests, exclusive off, and a second open.
fn kmdf_io_semantics(m: &mut Machine) -> Outcome {
    use crate::kmdf_client::{driver_entry, ECHO, PATH as KPATH, SERVICE};
    let driver = m.load_driver(SERVICE, driver_entry).map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let dev = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let a = device::open(KPATH).map_err(|s| format!("open: {s:#x}"))?;
    let b = device::open(KPATH).map_err(|s| format!("second open of a shared device: {s:#x}"))?;
    ensure(device::device_io_control(a, ECHO, b"abcdef", 6) == (STATUS_SUCCESS, b"abcdef".to_vec()), || {
        "echo".into()
    })?;
    // The output is shorter: only what fits comes back.
    ensure(device::device_io_control(b, ECHO, b"abcdef", 3) == (STATUS_SUCCESS, b"abc".to_vec()), || {
        "short echo".into()
    })?;
    // No input: WdfRequestRetrieveInputBuffer fails with STATUS_BUFFER_TOO_SMALL.
    let (status, _) = device::device_io_control(a, ECHO, &[], 8);
    ensure(status == kernel::ffi::ntos::STATUS_BUFFER_TOO_SMALL, || format!("empty input {status:#x}"))?;
    // Reads and writes: no callback for the type, so the framework refuses; zero-length ones succeed.
    let (status, _) = device::read(a, 16);
    ensure(status == kernel::ffi::ntos::STATUS_INVALID_DEVICE_REQUEST, || format!("read {status:#x}"))?;
    ensure(device::read(a, 0).0 == STATUS_SUCCESS, || "zero-length read".into())?;
    ensure(device::write(a, b"x").0 == kernel::ffi::ntos::STATUS_INVALID_DEVICE_REQUEST, || "write".into())?;
    ensure(winsim::wdfio::requests_outstanding() == (0, 0), || "requests left".into())?;
    device::close(a);
    device::close(b);
    netcx::device_remove(dev);
    m.unload_driver(driver)?;
    Ok(vec![])
}

/// A sequential default queue presents one request at a time: the second waits in the queue until
/// the driver completes the first.
fn kmdf_io_sequential(m: &mut Machine) -> Outcome {
    use crate::kmdf_client::{driver_entry, release_held, ECHO, HOLD, PATH as KPATH, SEQUENTIAL, SERVICE};
    SEQUENTIAL.store(true, std::sync::atomic::Ordering::Relaxed);
    let driver = m.load_driver(SERVICE, driver_entry).map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let dev = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let h = device::open(KPATH).map_err(|s| format!("open: {s:#x}"))?;
    let Io::Pending(first) = device::submit_io_control(h, HOLD, b"x", 0) else {
        return Err("held request did not pend".into());
    };
    let Io::Pending(second) = device::submit_io_control(h, ECHO, b"two", 3) else {
        return Err("the second request was presented while the first was outstanding".into());
    };
    ensure(winsim::wdfio::requests_outstanding() == (1, 1), || {
        format!("outstanding {:?}", winsim::wdfio::requests_outstanding())
    })?;
    ensure(as_datapath(driver, release_held), || "nothing held".into())?;
    ensure(device::poll(first).is_some_and(|(s, _)| s == STATUS_SUCCESS), || "first".into())?;
    let done = device::poll(second).ok_or("second not presented after the first completed")?;
    ensure(done == (STATUS_SUCCESS, b"two".to_vec()), || format!("second {done:?}"))?;
    device::close(h);
    netcx::device_remove(dev);
    m.unload_driver(driver)?;
    Ok(vec![])
}

pub fn tests() -> Vec<Test> {
    let t = |name, run| Test { suite: "miniport_control", name, expect: None, run };
    vec![
        t("device_and_exclusive_open", device_and_exclusive_open),
        t("malformed_inputs_every_size", malformed_inputs_every_size),
        t("pended_read_completed_by_control_packet", pended_read_completed_by_control_packet),
        t("keepalive_timeout_fails_pended_read", keepalive_timeout_fails_pended_read),
        t("notify_event_in_server_mode", notify_event_in_server_mode),
        t("close_deletes_peer_and_cancels", close_deletes_peer_and_cancels),
        t("removal_with_requests_pended", removal_with_requests_pended),
        Test { suite: "kmdf_io", name: "kmdf_io_semantics", expect: None, run: kmdf_io_semantics },
        Test { suite: "kmdf_io", name: "kmdf_io_sequential", expect: None, run: kmdf_io_sequential },
    ]
}
