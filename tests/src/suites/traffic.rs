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
            datapath::pump();
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

pub fn tests() -> Vec<Test> {
    vec![
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
