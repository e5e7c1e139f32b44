//! The filter_two_hosts suite: two simulated hosts (see `two_hosts`), each with the REAL filter installed
//! from its INF over a simulated NIC and configured through its control device, talking over real UDP
//! through the seeded relay (loss, duplication, reordering). This file is the filter host; the relay,
//! the host processes and the accounting are shared with `two_hosts_miniport`.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use uapi::ovpn::{OvpnCipherAlg, OvpnCryptoData, OvpnCryptoDataV2, OvpnKeySlot};
use uapi::rdco_filter::{RdcoAddPeer, RdcoFilterIoctl, RdcoNewKey, RdcoPrefix, RdcoSetPolicy};
use winsim::datapath as sim;
use winsim::Machine;

use super::filter_send::{encode, finish, ioctl, ok, rig, stats, NIC};
use super::two_hosts::{
    arrivals, key_directions, merge, pump_wsk, receive_expected, relay_test, say, sends_of, wait_line,
    HostResult, HostSpec, Kind, PEER_ID,
};
use crate::{Outcome, Test};

/// One round of the host: DPCs, the WSK provider (sends completed, datagrams indicated), the NIC; the
/// protocol takes what it received and returns the receives at once (as TCP/IP does soon after an
/// indication), so the filter's copy slots come back between two WSK deliveries.
fn step(received: &mut Vec<Vec<u8>>) {
    winsim::sched::run_until_idle();
    let moved = pump_wsk();
    sim::pump();
    received.extend(sim::take_protocol_received(NIC));
    sim::protocol_return_all(NIC);
    if moved == 0 {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Host `role`: the filter's tunnel socket on `local`, the relay at `relay`.
pub(crate) fn host(machine: &mut Machine, h: &HostSpec) -> HostResult {
    let (role, local, relay, rx) = (h.role, h.local, h.relay, &h.lines);
    // At most 4 rounds of 8 datagrams per socket and pump: no more than the filter's 32 receive copy
    // slots are out between two returns. Received datagrams are split across MDLs.
    winsim::wsk::configure(winsim::wsk::Config {
        split_receive: true,
        max_indication_chain: 8,
        ..winsim::wsk::Config::default()
    });
    let r = rig(machine)?;
    // The simulated protocol addresses its packets to 198.51.100.0/24 and V6_PEER: on each host that is
    // the other host's inner prefix.
    let prefixes = [
        RdcoPrefix { addr: std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 0)), prefix_len: 24 },
        RdcoPrefix { addr: std::net::IpAddr::V6(winsim::offload::V6_PEER.into()), prefix_len: 128 },
    ];
    let policy = RdcoSetPolicy::new(&prefixes).map_err(|e| format!("policy: {e:?}"))?;
    ok("set policy", ioctl(r.handle, RdcoFilterIoctl::SetPolicy, &encode(&policy), 0))?;
    let add = RdcoAddPeer {
        peer_id: PEER_ID,
        local: SocketAddr::from(([127, 0, 0, 1], local)),
        remote: SocketAddr::from(([127, 0, 0, 1], relay)),
    };
    ok("add peer", ioctl(r.handle, RdcoFilterIoctl::AddPeer, &encode(&add), 0))?;
    let (enc, dec) = key_directions(role);
    let key = RdcoNewKey {
        key: OvpnCryptoDataV2 {
            v1: OvpnCryptoData {
                encrypt: enc,
                decrypt: dec,
                key_slot: OvpnKeySlot::Primary,
                cipher_alg: OvpnCipherAlg::AesGcm,
                key_id: 0,
                peer_id: PEER_ID as i32,
            },
            crypto_options: 0,
        },
    };
    ok("new key", ioctl(r.handle, RdcoFilterIoctl::NewKey, &encode(&key), 0))?;
    say("READY");
    wait_line(rx, "GO", Duration::from_secs(10), &mut || {
        winsim::sched::run_until_idle();
        winsim::wsk::pump();
        sim::pump();
    })?;

    let mine = sends_of(role);
    let mut received: Vec<Vec<u8>> = Vec::new();
    for batch in mine.chunks(40) {
        sim::protocol_send_ip(NIC, batch);
        let deadline = Instant::now() + Duration::from_secs(2);
        while sim::ledger(NIC).owed() != 0 && Instant::now() < deadline {
            step(&mut received);
        }
    }
    if sim::ledger(NIC).owed() != 0 {
        return Err(format!("host: {} sends never completed", sim::ledger(NIC).owed()));
    }
    say("SENT");
    receive_expected(rx, &mut received, &mut step)?;
    let arrived = arrivals(role, &received)?;
    let s = stats(&r)?;
    let ledger = sim::ledger(NIC);
    finish(machine, r)?;
    Ok(merge(
        arrived,
        serde_json::json!({
        "tx_packets": s.tx_packets,
        "rx_packets": s.rx_packets,
        "drop_replay": s.drop_replay,
        "diverted": s.diverted,
        "plaintext_copies": s.plaintext_copies,
        "completed": ledger.completed,
        "failed": ledger.failed.len(),
        "stats": format!("{s:?}"),
        }),
    ))
}

fn two_hosts(_machine: &mut Machine) -> Outcome {
    relay_test([Kind::Filter, Kind::Filter])
}

pub fn tests() -> Vec<Test> {
    vec![Test {
        suite: "filter_two_hosts",
        name: "rdcofilter.two_hosts_relay_loss_reorder_dup",
        expect: None,
        run: two_hosts,
    }]
}
