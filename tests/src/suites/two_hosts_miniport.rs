//! The `two_hosts_miniport` suite: the two-host relay test (see `two_hosts`) with the REAL miniport on one
//! or both hosts. A miniport host loads `miniport::driver_entry`, lets PnP add its device
//! (`winsim::netcx::device_arrives`) and configures it through `\\.\ovpn-dco` the way OpenVPN drives
//! ovpn-dco-win (`NEW_PEER` with its tunnel port and the relay as the remote, `NEW_KEY`, `START_VPN`); its stack
//! sends the same numbered inner packets a filter host's protocol sends (as IP packets: the adapter has
//! no L2) through the Tx ring and takes what the Rx ring indicates. Tests: miniport ↔ miniport and
//! miniport ↔ filter, with the filter test's accounting.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kernel::ffi::ntos::{PASSIVE_LEVEL, STATUS_SUCCESS};
use miniport::test_hooks;
use uapi::ovpn::{OvpnCipherAlg, OvpnCryptoData, OvpnIoctl, OvpnKeySlot, OvpnNewPeer, OvpnProto};
use uapi::Wire;
use winsim::{device, netcx, wsk, Machine};

use super::two_hosts::{
    arrivals, key_directions, merge, pump_wsk, receive_expected, relay_test, say, sends_of, wait_line,
    HostResult, HostSpec, Kind, PEER_ID,
};
use crate::{Outcome, Test};

const SERVICE: &str = "rdcomp";
const ETH_HEADER: usize = 14;
/// Packets the stack hands the adapter at once (the filter host's protocol sends the same batches).
const BATCH: usize = 40;

fn enc<T: Wire>(v: &T) -> Vec<u8> {
    let mut out = vec![0u8; T::SIZE];
    let _ = v.write_to(&mut out);
    out
}

/// The IP packets host `role`'s stack sends: send `i` of `sends_of(role)` as the filter host's protocol
/// builds it (one segment, checksums filled), without its Ethernet header.
fn ip_packets(role: u8) -> Result<Vec<Vec<u8>>, String> {
    sends_of(role)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = u16::try_from(i).map_err(|_| "too many sends")?;
            let frames = winsim::offload::protocol_packets([0; 6], [0; 6], s, id, None);
            match frames.as_slice() {
                [p] if p.frame.len() > ETH_HEADER => Ok(p.frame[ETH_HEADER..].to_vec()),
                _ => Err(format!("send {i} is not one packet")),
            }
        })
        .collect()
}

/// An IP packet the adapter indicated, as the Ethernet frame the shared checks read (the ethertype from
/// the IP version; a packet that is neither is left for the checks to reject).
fn as_frame(packet: &[u8]) -> Vec<u8> {
    let ethertype: u16 = match packet.first().map(|b| b >> 4) {
        Some(6) => 0x86dd,
        _ => 0x0800,
    };
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(packet);
    f
}

/// One round of the host: DPCs, the WSK provider, the adapter's rings; the stack takes what was
/// indicated (and returns the buffers at once, `netcx`'s default).
fn step(adapter: usize, received: &mut Vec<Vec<u8>>) {
    winsim::sched::run_until_idle();
    let moved = pump_wsk();
    netcx::pump(adapter);
    received.extend(netcx::stack_received().iter().map(|p| as_frame(p)));
    if moved == 0 {
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn tx_completed(adapter: usize) -> u64 {
    netcx::counters(adapter).map_or(0, |c| c.tx_completed)
}

/// Host `role` with the miniport: its tunnel socket on `local`, the relay at `relay`.
pub(crate) fn host(machine: &mut Machine, h: &HostSpec) -> HostResult {
    let (role, local, relay, rx) = (h.role, h.local, h.relay, &h.lines);
    let driver =
        machine.load_driver(SERVICE, miniport::driver_entry).map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let dev = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let adapter = *netcx::adapters(dev).first().ok_or("no adapter created")?;
    let handle = device::open("\\\\.\\ovpn-dco").map_err(|s| format!("open: {s:#x}"))?;
    let np = enc(&OvpnNewPeer {
        local: SocketAddr::from(([127, 0, 0, 1], local)),
        remote: SocketAddr::from(([127, 0, 0, 1], relay)),
        proto: OvpnProto::Udp,
    });
    let (encrypt, decrypt) = key_directions(role);
    let key = enc(&OvpnCryptoData {
        encrypt,
        decrypt,
        key_slot: OvpnKeySlot::Primary,
        cipher_alg: OvpnCipherAlg::AesGcm,
        key_id: 0,
        peer_id: i32::try_from(PEER_ID).map_err(|_| "peer id")?,
    });
    for (code, input) in
        [(OvpnIoctl::NewPeer, np), (OvpnIoctl::NewKey, key), (OvpnIoctl::StartVpn, Vec::new())]
    {
        let (status, _) = device::device_io_control(handle, code.code(), &input, 0);
        if status != STATUS_SUCCESS {
            return Err(format!("host: {}: {status:#x}", code.name()));
        }
    }
    let bound = winsim::context::call_driver(driver, PASSIVE_LEVEL, "test", || test_hooks::local_port(dev));
    if bound != Some(local) {
        return Err(format!("host: tunnel socket on {bound:?}, asked for {local}"));
    }
    if netcx::adapter_info(adapter).and_then(|i| i.link_connected) != Some(true) {
        return Err("host: link not up after START_VPN".into());
    }
    say("READY");
    wait_line(rx, "GO", Duration::from_secs(10), &mut || {
        winsim::sched::run_until_idle();
        wsk::pump();
        netcx::pump(adapter);
    })?;

    let mine = ip_packets(role)?;
    let mut received: Vec<Vec<u8>> = Vec::new();
    let mut done = 0u64;
    for batch in mine.chunks(BATCH) {
        done += batch.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut posted = 0;
        while posted < batch.len() && Instant::now() < deadline {
            posted += netcx::stack_send(adapter, &batch[posted..]);
            step(adapter, &mut received);
        }
        while tx_completed(adapter) < done && Instant::now() < deadline {
            step(adapter, &mut received);
        }
    }
    if tx_completed(adapter) != done {
        return Err(format!("host: {} of {done} sends completed", tx_completed(adapter)));
    }
    say("SENT");
    receive_expected(rx, &mut received, &mut |r| step(adapter, r))?;
    let arrived = arrivals(role, &received)?;

    let d = winsim::context::call_driver(driver, PASSIVE_LEVEL, "test", || test_hooks::counters(dev))
        .ok_or("host: no counters")?;
    let c = netcx::counters(adapter).ok_or("host: no adapter counters")?;
    // Closing the handle deletes the peer (its socket closes, the link goes down); then PnP removes the
    // device, which must have handed every retained datagram back.
    if device::close(handle) != STATUS_SUCCESS {
        return Err("host: close failed".into());
    }
    netcx::device_remove(dev);
    if wsk::retained() != 0 {
        return Err(format!("host: {} datagrams still retained after removal", wsk::retained()));
    }
    machine.unload_driver(driver)?;
    Ok(merge(
        arrived,
        serde_json::json!({
            "tx_packets": d.tx_sealed,
            "rx_packets": d.rx_indicated,
            // Every Rx drop of the miniport (authentication, replay, no key, queue full): with the
            // relay's copies the only ones expected are replays, so this must equal the duplicates.
            "drop_replay": d.rx_dropped,
            "plaintext_copies": d.tx_gathered + d.rx_linearized + d.rx_copied_bytes,
            "completed": c.tx_completed,
            "failed": d.tx_dropped + d.tx_send_errors,
            "stats": format!("{d:?}"),
        }),
    ))
}

fn miniport_to_miniport(_machine: &mut Machine) -> Outcome {
    relay_test([Kind::Miniport, Kind::Miniport])
}

fn miniport_to_filter(_machine: &mut Machine) -> Outcome {
    relay_test([Kind::Miniport, Kind::Filter])
}

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            suite: "two_hosts_miniport",
            name: "rdcomp.two_hosts_miniport_to_miniport",
            expect: None,
            run: miniport_to_miniport,
        },
        Test {
            suite: "two_hosts_miniport",
            name: "rdcomp.two_hosts_miniport_to_filter",
            expect: None,
            run: miniport_to_filter,
        },
    ]
}
