//! The traffic suite: bidirectional traffic through a filter stack while the module pauses and restarts,
//! most receives carry NDIS_RECEIVE_FLAGS_RESOURCES, the media disconnects and reconnects and the NIC
//! resets; then detach and unload, with every NBL accounted for and every byte checked.
use kernel::ffi::ndis::{NDIS_STATUS_LINK_STATE, NDIS_STATUS_PENDING, NDIS_STATUS_SUCCESS};
use winsim::datapath::{self, NicConfig, NDIS_STATUS_RESET_END, NDIS_STATUS_RESET_START};
use winsim::ndis::{self, ModuleState};
use winsim::{DriverEntry, Machine};

use crate::install::{self, Installed};
use crate::{passthrough, Outcome, Test};

const NIC: u32 = 1;
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

fn frames(nic_mac: [u8; 6], first_seq: u64, count: u64, inbound: bool) -> Vec<Vec<u8>> {
    (first_seq..first_seq + count)
        .map(|seq| {
            // Sizes from minimal to a full 1500-byte MTU, some awkward.
            let len = [1, 46, 333, 1000, 1476][usize::try_from(seq % 5).unwrap_or(0)];
            if inbound {
                datapath::test_frame(nic_mac, PEER_MAC, seq, len)
            } else {
                datapath::test_frame(PEER_MAC, nic_mac, seq, len)
            }
        })
        .collect()
}

/// Pauses every module of the filter, waiting (pumping the NIC and protocol) for pended pauses.
fn pause_all(installed: &Installed) -> Result<u64, String> {
    let mut pended = 0;
    for &m in &installed.modules {
        let status = ndis::pause_module(m, 0);
        if status == NDIS_STATUS_PENDING {
            pended += 1;
            winsim::pnp::settle_pause(m);
        } else if status != NDIS_STATUS_SUCCESS {
            return Err(format!("FilterPause returned {status:#x}"));
        }
        if ndis::module_state(m) != Some(ModuleState::Paused) {
            return Err(format!("module still {:?} after its pause and a pump", ndis::module_state(m)));
        }
    }
    Ok(pended)
}

fn restart_all(installed: &Installed) -> Result<(), String> {
    for &m in &installed.modules {
        let status = ndis::restart_module(m);
        if status != NDIS_STATUS_SUCCESS {
            return Err(format!("FilterRestart returned {status:#x}"));
        }
    }
    Ok(())
}

/// Queries and sets through the stack (each filter clones and forwards them), with short buffers too.
fn check_oids(mac: [u8; 6]) -> Result<u64, String> {
    use kernel::ffi::ndis::NDIS_STATUS_BUFFER_TOO_SHORT;
    use kernel::ffi::oid::{
        NdisRequestQueryInformation, NdisRequestSetInformation, OID_802_3_CURRENT_ADDRESS,
        OID_GEN_CURRENT_PACKET_FILTER, OID_GEN_MAXIMUM_FRAME_SIZE,
    };
    use winsim::oid::protocol_request;
    let r = protocol_request(NIC, NdisRequestQueryInformation, OID_802_3_CURRENT_ADDRESS, &[0; 6]);
    if r.status != NDIS_STATUS_SUCCESS || r.buffer != mac || r.bytes != 6 {
        return Err(format!("OID_802_3_CURRENT_ADDRESS: {r:x?}"));
    }
    let r = protocol_request(NIC, NdisRequestQueryInformation, OID_GEN_MAXIMUM_FRAME_SIZE, &[0; 2]);
    if r.status != NDIS_STATUS_BUFFER_TOO_SHORT || r.bytes_needed != 4 {
        return Err(format!("short OID_GEN_MAXIMUM_FRAME_SIZE: {r:x?}"));
    }
    let r = protocol_request(NIC, NdisRequestQueryInformation, OID_GEN_MAXIMUM_FRAME_SIZE, &[0; 4]);
    if r.status != NDIS_STATUS_SUCCESS || r.buffer != 1500u32.to_le_bytes() {
        return Err(format!("OID_GEN_MAXIMUM_FRAME_SIZE: {r:x?}"));
    }
    let r = protocol_request(
        NIC,
        NdisRequestSetInformation,
        OID_GEN_CURRENT_PACKET_FILTER,
        &0x0bu32.to_le_bytes(),
    );
    if r.status != NDIS_STATUS_SUCCESS || winsim::oid::packet_filter(NIC) != Some(0x0b) {
        return Err(format!("OID_GEN_CURRENT_PACKET_FILTER: {r:x?}"));
    }
    Ok(4)
}

/// The scenario shared by the suite's tests, over the filter `entry` installed by `install`.
fn bidirectional(machine: &mut Machine, service: &str, entry: DriverEntry, from_inf: bool) -> Outcome {
    datapath::add_nic(NicConfig::ethernet(NIC)).map_err(|s| format!("add_nic: {s:#x}"))?;
    let installed = if from_inf {
        install::install_from_inf(machine, &install::inf_dir().join(uapi::names::FILTER_INF), entry)?
    } else {
        install::install(machine, service, entry)?
    };
    let mac = datapath::nic_info(NIC).ok_or("no NIC")?.mac;
    let oids = check_oids(mac)?;
    let mut seq = 0u64;
    let mut indicated = 0u64;
    let mut resources = 0u64;
    let mut sent_frames = Vec::new();
    let mut pauses_pended = 0;
    for round in 0..8u64 {
        let out = frames(mac, seq, 8, false);
        seq += 8;
        datapath::protocol_send(NIC, &out);
        sent_frames.extend(out);
        // Three receive batches in four carry RESOURCES.
        let with_resources = round % 4 != 0;
        let n = datapath::nic_indicate(NIC, &frames(mac, seq, 8, true), with_resources) as u64;
        seq += 8;
        indicated += n;
        if with_resources {
            resources += n;
        }
        match round {
            // Pause with sends at the NIC and receives held by the protocol: the pause must pend.
            1 | 5 => {
                pauses_pended += pause_all(&installed)?;
                restart_all(&installed)?;
            }
            2 => {
                let mut down = [0u8; 4];
                datapath::nic_indicate_status(NIC, NDIS_STATUS_LINK_STATE, &mut down);
                datapath::nic_indicate_status(NIC, NDIS_STATUS_LINK_STATE, &mut down);
            }
            3 => {
                datapath::nic_indicate_status(NIC, NDIS_STATUS_RESET_START, &mut []);
                datapath::nic_indicate_status(NIC, NDIS_STATUS_RESET_END, &mut []);
            }
            _ => {
                datapath::pump();
            }
        }
    }
    datapath::pump();
    pause_all(&installed)?;
    for &m in &installed.modules {
        ndis::detach_module(m);
    }
    machine.unload_driver(installed.driver)?;

    let ledger = datapath::ledger(NIC);
    let in_flight = datapath::in_flight(NIC);
    if !in_flight.is_empty() {
        return Err(format!("{} NBL(s) unaccounted for: {}", in_flight.len(), in_flight[0]));
    }
    if ledger.owed() != 0 || ledger.sent != sent_frames.len() as u64 {
        return Err(format!("sends: {} sent, {} completed", ledger.sent, ledger.completed));
    }
    if ledger.received_ok != indicated || ledger.received_corrupt != 0 {
        return Err(format!(
            "receives: {indicated} indicated, {} intact, {} corrupt",
            ledger.received_ok, ledger.received_corrupt
        ));
    }
    let wire = datapath::wire(NIC);
    let aborted = ledger.failed.values().sum::<u64>();
    if wire.iter().any(|f| datapath::check_test_frame(f).is_none()) || wire.len() as u64 != ledger.sent {
        return Err(format!(
            "the wire carried {} frames for {} sends, or a corrupt one",
            wire.len(),
            ledger.sent
        ));
    }
    let statuses = datapath::protocol_status(NIC);
    if statuses.iter().filter(|&&s| s == NDIS_STATUS_LINK_STATE).count() != 2
        || !statuses.contains(&NDIS_STATUS_RESET_START)
        || !statuses.contains(&NDIS_STATUS_RESET_END)
    {
        return Err(format!("status indications did not all reach the protocol: {statuses:x?}"));
    }
    Ok(vec![
        ("sent".into(), ledger.sent),
        ("completed".into(), ledger.completed),
        ("completed_failed".into(), aborted),
        ("received".into(), ledger.received_ok),
        ("received_resources".into(), resources),
        ("pauses_pended".into(), pauses_pended),
        ("oids".into(), oids),
    ])
}

/// Power D3 and back to D0 under traffic (the stack pauses for low power, NetEventSetPower travels up
/// through the filter), module options before every restart, then a surprise removal with sends held by
/// the NIC (they fail with NDIS_STATUS_ADAPTER_REMOVED) and the stack torn down; everything accounted for.
fn power_and_surprise_removal(machine: &mut Machine) -> Outcome {
    use kernel::ffi::ndis::NDIS_STATUS_ADAPTER_REMOVED;
    datapath::add_nic(NicConfig::ethernet(NIC)).map_err(|s| format!("add_nic: {s:#x}"))?;
    let installed = install::install(machine, passthrough::SERVICE, passthrough::driver_entry)?;
    let mac = datapath::nic_info(NIC).ok_or("no NIC")?.mac;
    datapath::protocol_send(NIC, &frames(mac, 0, 8, false));
    datapath::nic_indicate(NIC, &frames(mac, 100, 8, true), false);
    let options_before = passthrough::MODULE_OPTIONS_CALLS.load(std::sync::atomic::Ordering::Relaxed);
    winsim::pnp::power_down(NIC);
    for &m in &installed.modules {
        if ndis::module_state(m) != Some(ModuleState::Paused) {
            return Err(format!("module {:?} after power down", ndis::module_state(m)));
        }
    }
    // Asleep: nothing is indicated and sends complete paused.
    if datapath::nic_indicate(NIC, &frames(mac, 200, 4, true), false) != 0 {
        return Err("the NIC indicated receives in D3".into());
    }
    datapath::protocol_send(NIC, &frames(mac, 300, 4, false));
    winsim::pnp::power_up(NIC);
    let options_after = passthrough::MODULE_OPTIONS_CALLS.load(std::sync::atomic::Ordering::Relaxed);
    if options_after != options_before + 1 {
        return Err(format!(
            "FilterSetModuleOptions ran {} time(s) for one restart",
            options_after - options_before
        ));
    }
    let seen = winsim::pnp::seen(NIC);
    if seen != ["net:0:4", "net:0:1"] {
        return Err(format!(
            "NetEventSetPower D3 then D0 did not reach the protocol through the filter: {seen:?}"
        ));
    }
    datapath::protocol_send(NIC, &frames(mac, 400, 8, false));
    datapath::nic_indicate(NIC, &frames(mac, 500, 8, true), true);
    // Sends at the NIC when it disappears.
    winsim::pnp::surprise_remove(NIC);
    if !winsim::pnp::seen(NIC).iter().any(|e| e.starts_with("device:")) {
        return Err("the surprise-removal event did not reach the miniport through the filter".into());
    }
    if !ndis::modules_on_nic_empty(NIC) {
        return Err("modules still attached after surprise removal".into());
    }
    datapath::pump();
    machine.unload_driver(installed.driver)?;
    let ledger = datapath::ledger(NIC);
    let removed = ledger.failed.get(&NDIS_STATUS_ADAPTER_REMOVED).copied().unwrap_or(0);
    let paused = ledger.failed.get(&kernel::ffi::ndis::NDIS_STATUS_PAUSED).copied().unwrap_or(0);
    if ledger.owed() != 0
        || !datapath::in_flight(NIC).is_empty()
        || removed != 8
        || paused != 4
        || ledger.received_ok != 16
    {
        return Err(format!("ledger after surprise removal: {ledger:?}"));
    }
    Ok(vec![
        ("sent".into(), ledger.sent),
        ("failed_adapter_removed".into(), removed),
        ("failed_paused".into(), paused),
        ("received".into(), ledger.received_ok),
    ])
}

/// IP traffic with task offloads through the passthrough filter: NIC 1 advertises checksum, `LSOv2` and USO
/// offloads (announced with `NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG` after attach and after every restart,
/// and answered through `OID_TCP_OFFLOAD_CURRENT_CONFIG`), NIC 2 none. The protocol sends TCP and UDP over
/// IPv4 and IPv6, small packets and super-packets up to 64 KB, with and without checksum requests; a pause
/// and restart happen with super-packets at the NIC; receives carry checksum results and RSS hashes. Every
/// wire packet must carry valid checksums and lengths, fit the MTU, and every send must reassemble byte
/// for byte.
#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
fn ip_offloads(machine: &mut Machine) -> Outcome {
    use datapath::{IpSend, Offloads, Proto};
    use kernel::ffi::ndis::{NDIS_STATUS_BUFFER_TOO_SHORT, NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG};
    const PLAIN: u32 = 2;
    datapath::add_nic(NicConfig::ethernet(NIC)).map_err(|s| format!("add_nic: {s:#x}"))?;
    let mut plain = NicConfig::ethernet(PLAIN);
    plain.offloads = Offloads::none();
    datapath::add_nic(plain).map_err(|s| format!("add_nic: {s:#x}"))?;
    let installed = install::install(machine, passthrough::SERVICE, passthrough::driver_entry)?;
    for nic in [NIC, PLAIN] {
        datapath::nic_announce_offloads(nic);
        let expected = datapath::nic_offload_bytes(nic).ok_or("no NIC")?;
        if datapath::protocol_offload_bytes(nic).as_ref() != Some(&expected)
            || !datapath::protocol_status(nic).contains(&NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG)
        {
            return Err(format!("NIC {nic}: the protocol did not see the NDIS_OFFLOAD the NIC indicated"));
        }
        let short = winsim::oid::protocol_request(
            nic,
            kernel::ffi::oid::NdisRequestQueryInformation,
            kernel::ffi::oid::OID_TCP_OFFLOAD_CURRENT_CONFIG,
            &[0; 64],
        );
        let full = datapath::protocol_query_offloads(nic);
        if short.status != NDIS_STATUS_BUFFER_TOO_SHORT
            || short.bytes_needed != 216
            || full.status != NDIS_STATUS_SUCCESS
            || full.buffer != expected
        {
            return Err(format!(
                "NIC {nic}: OID_TCP_OFFLOAD_CURRENT_CONFIG: {short:x?} / {:x?}",
                full.status
            ));
        }
    }
    let send = |v6, proto, payload_len, request_checksum, mss| IpSend {
        v6,
        proto,
        payload_len,
        request_checksum,
        mss,
    };
    let mut sends = Vec::new();
    for v6 in [false, true] {
        let (tcp_mss, udp_mss) = if v6 { (1440, 1452) } else { (1460, 1472) };
        sends.extend([
            send(v6, Proto::Tcp, 65_536, true, tcp_mss),
            send(v6, Proto::Tcp, 20_000, false, tcp_mss),
            send(v6, Proto::Tcp, 1, true, tcp_mss),
            send(v6, Proto::Tcp, usize::from(tcp_mss), true, tcp_mss),
            send(v6, Proto::Udp, 65_000, true, udp_mss),
            send(v6, Proto::Udp, 3000, false, 1000),
            send(v6, Proto::Udp, 100, true, udp_mss),
        ]);
    }
    let mut ip_sends = 0u64;
    let mut indicated = 0u64;
    let inbound: Vec<IpSend> =
        sends.iter().map(|s| IpSend { payload_len: s.payload_len.min(1400), ..*s }).collect();
    for round in 0..4u32 {
        for nic in [NIC, PLAIN] {
            datapath::protocol_send_ip(nic, &sends);
            ip_sends += sends.len() as u64;
            indicated += datapath::nic_indicate_ip(nic, &inbound, round % 2 == 1, true) as u64;
        }
        if round == 1 {
            // Super-packets sit at the NIC while the stack pauses; the restart re-announces the offloads.
            pause_all(&installed)?;
            restart_all(&installed)?;
            datapath::nic_announce_offloads(NIC);
            datapath::nic_announce_offloads(PLAIN);
        } else {
            datapath::pump();
        }
    }
    datapath::pump();
    pause_all(&installed)?;
    for &m in &installed.modules {
        ndis::detach_module(m);
    }
    machine.unload_driver(installed.driver)?;
    let mut counters = Vec::new();
    let mut wire_packets = 0;
    let mut intact = 0;
    for nic in [NIC, PLAIN] {
        let ledger = datapath::ledger(nic);
        if ledger.owed() != 0 || !datapath::in_flight(nic).is_empty() || !ledger.failed.is_empty() {
            return Err(format!("NIC {nic}: sends not all completed successfully: {ledger:?}"));
        }
        let report = datapath::check_ip_wire(nic).map_err(|e| format!("NIC {nic}: {e}"))?;
        if report.sends_missing != 0 {
            return Err(format!("NIC {nic}: {} IP sends never reached the wire", report.sends_missing));
        }
        let offloaded = nic == NIC;
        if offloaded != (ledger.super_packets > 0) || offloaded != (ledger.lso_completed > 0) {
            return Err(format!(
                "NIC {nic}: super-packets {} / LSO completions {} (offloads {offloaded})",
                ledger.super_packets, ledger.lso_completed
            ));
        }
        if ledger.received_corrupt != 0 {
            return Err(format!("NIC {nic}: {} receives failed their checks", ledger.received_corrupt));
        }
        wire_packets += report.packets;
        intact += report.sends_intact;
        if offloaded {
            counters.push(("super_packets".to_string(), ledger.super_packets));
            counters.push(("segments".to_string(), ledger.segments));
            counters.push(("lso_completed".to_string(), ledger.lso_completed));
        }
        counters.push((format!("nbls_sent_nic{nic}"), ledger.sent));
    }
    let received: u64 = [NIC, PLAIN].iter().map(|&n| datapath::ledger(n).received_ok).sum();
    if intact != ip_sends || received != indicated {
        return Err(format!(
            "{intact} of {ip_sends} IP sends intact on the wire; {received} of {indicated} receives intact"
        ));
    }
    counters.extend([
        ("ip_sends".to_string(), ip_sends),
        ("wire_packets".to_string(), wire_packets),
        ("received".to_string(), received),
    ]);
    Ok(counters)
}

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            suite: "traffic",
            name: "passthrough.ip_offloads_checksum_lso_uso",
            expect: None,
            run: ip_offloads,
        },
        Test {
            suite: "traffic",
            name: "passthrough.power_d3_d0_surprise_removal",
            expect: None,
            run: power_and_surprise_removal,
        },
        Test {
            suite: "traffic",
            name: "passthrough.pause_restart_resources_link_reset",
            expect: None,
            run: |m| bidirectional(m, passthrough::SERVICE, passthrough::driver_entry, false),
        },
        Test {
            suite: "traffic",
            name: "rdcofilter.bypass_from_inf",
            expect: None,
            run: |m| bidirectional(m, uapi::names::FILTER_SERVICE_NAME, filter::driver_entry, true),
        },
    ]
}
