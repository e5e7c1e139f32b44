//! The verifier suite: one negative test per rule. Each loads a deliberately broken driver (see
//! `crate::broken`) and passes only if exactly the rule it breaks fires.
use winsim::verifier::Rule;
use winsim::{DriverEntry, Machine};

use super::wsk_negative;
use crate::passthrough::{self, Bug};
use crate::{broken, install, Outcome, Test};

/// Loads `entry` as service `brokendrv` and unloads it again (if its entry point succeeded).
fn load_and_unload(machine: &mut Machine, entry: DriverEntry) -> Outcome {
    match machine.load_driver("brokendrv", entry) {
        Ok(id) => machine.unload_driver(id).map(|()| Vec::new()),
        Err(status) => Err(format!("DriverEntry failed with {status:#x}")),
    }
}

/// Runs short bidirectional traffic (RESOURCES and normal receives), a pause and a detach through the
/// passthrough filter made to commit `bug`. The scenario's own result does not matter: the test passes
/// when exactly the bug's rule fires.
fn passthrough_with(machine: &mut Machine, bug: Bug) -> Outcome {
    use winsim::datapath::{self, NicConfig};
    passthrough::BUG.store(bug as u32, std::sync::atomic::Ordering::Relaxed);
    datapath::add_nic(NicConfig::ethernet(1)).map_err(|s| format!("add_nic: {s:#x}"))?;
    let installed = install::install(machine, passthrough::SERVICE, passthrough::driver_entry)?;
    let mac = datapath::nic_info(1).ok_or("no NIC")?.mac;
    for oid in [kernel::ffi::oid::OID_802_3_CURRENT_ADDRESS, kernel::ffi::oid::OID_GEN_MAXIMUM_FRAME_SIZE] {
        winsim::oid::protocol_request(1, kernel::ffi::oid::NdisRequestQueryInformation, oid, &[0; 8]);
    }
    let peer = [2, 0, 0, 0, 0, 9];
    for round in 0..4u64 {
        datapath::protocol_send(
            1,
            &[datapath::test_frame(peer, mac, round, 64), datapath::test_frame(peer, mac, round + 100, 64)],
        );
        datapath::nic_indicate(
            1,
            &[datapath::test_frame(mac, peer, round, 80), datapath::test_frame(mac, peer, round + 100, 80)],
            round % 2 == 0,
        );
    }
    datapath::pump();
    if matches!(bug, Bug::HoldSends | Bug::HoldReceives) {
        // Machine time passes before the pause: NBLs held past their budget are reported.
        datapath::wait(std::time::Duration::from_secs(31));
    }
    for &m in &installed.modules {
        winsim::ndis::pause_module(m, 0);
        winsim::pnp::settle_pause(m);
        winsim::ndis::detach_module(m);
    }
    machine.unload_driver(installed.driver)?;
    Ok(Vec::new())
}

macro_rules! ndis_negative {
    ($($name:literal, $rule:expr, $bug:expr;)*) => {
        vec![$(Test {
            suite: "verifier",
            name: $name,
            expect: Some($rule),
            run: |m| passthrough_with(m, $bug),
        }),*]
    };
}

macro_rules! negative {
    ($($name:literal, $rule:expr, $entry:path;)*) => {
        vec![$(Test {
            suite: "verifier",
            name: $name,
            expect: Some($rule),
            run: |m| load_and_unload(m, $entry),
        }),*]
    };
}

pub fn tests() -> Vec<Test> {
    let mut tests = ndis_negative! {
        "ndis.return_resources", Rule::NdisReturnResources, Bug::ReturnResources;
        "ndis.send_ownership", Rule::NdisSendOwnership, Bug::CompleteAfterSend;
        "ndis.receive_ownership", Rule::NdisReceiveOwnership, Bug::ReturnAfterIndicate;
        "ndis.resources_chain", Rule::NdisResourcesChain, Bug::BreakResourcesChain;
        "ndis.pause_outstanding", Rule::NdisPauseOutstanding, Bug::PauseWhileHolding;
        "irql.flag_mismatch", Rule::IrqlFlagMismatch, Bug::WrongDispatchFlag;
        "oid.forward_original", Rule::OidForwardOriginal, Bug::ForwardOriginalOid;
        "oid.complete_twice", Rule::OidCompleteTwice, Bug::CompleteOidTwice;
        "oid.complete_pending", Rule::OidCompletePending, Bug::CompleteOidPending;
        "oid.clone_leak", Rule::OidCloneLeak, Bug::LeakOidClone;
        "ndis.source_handle", Rule::NdisSourceHandle, Bug::OwnSendWithoutSourceHandle;
        "ndis.complete_own_nbl", Rule::NdisCompleteOwn, Bug::CompleteOwnSend;
        "ndis.send_while_paused", Rule::NdisSendWhilePaused, Bug::SendWhilePaused;
        "ndis.receive_while_paused", Rule::NdisReceiveWhilePaused, Bug::IndicateWhilePaused;
        "ndis.return_own_nbl", Rule::NdisReturnOwn, Bug::ReturnOwnReceive;
        "ndis.filter_state", Rule::NdisFilterState, Bug::SetAttributesInRestart;
        "oid.timeout", Rule::OidTimeout, Bug::NeverCompleteOid;
        "ndis.pause_timeout", Rule::NdisPauseTimeout, Bug::PauseNeverCompletes;
        "ndis.timed_data_send", Rule::NdisTimedDataSend, Bug::HoldSends;
        "ndis.timed_data_receive", Rule::NdisTimedDataReceive, Bug::HoldReceives;
        "offload.not_advertised", Rule::OffloadNotAdvertised, Bug::LsoNotAdvertised;
    };
    tests.extend(negative! {
        "pool.leak_at_unload", Rule::PoolLeakAtUnload, broken::leaks_pool;
        "pool.tag_required", Rule::PoolTagRequired, broken::untagged_pool;
        "pool.free_unknown", Rule::PoolFreeUnknown, broken::double_free;
        "pool.free_wrong_tag", Rule::PoolFreeWrongTag, broken::wrong_tag_free;
        "spinlock.release_not_held", Rule::SpinLockNotHeld, broken::release_unheld_lock;
        "spinlock.recursive", Rule::SpinLockRecursive, broken::recursive_lock;
        "spinlock.at_dpc_level_irql", Rule::SpinLockDpcLevel, broken::dpc_level_lock_at_passive;
        "spinlock.held_on_return", Rule::SpinLockHeldOnReturn, broken::returns_holding_lock;
        "irql.not_restored", Rule::IrqlNotRestored, broken::returns_at_dispatch;
        "kernel.bugcheck", Rule::BugCheck, broken::bugchecks;
        "nbl.double_free", Rule::NblDoubleFree, broken::nbl_double_free;
        "nbl.free_with_children", Rule::NblFreeWithChildren, broken::nbl_free_with_children;
        "nbl.clone_free_mismatch", Rule::NblCloneFreeMismatch, broken::nbl_clone_free_mismatch;
        "nbl.pool_leak", Rule::NblPoolLeak, broken::nbl_leak;
        "nbl.retreat_advance", Rule::NblRetreatAdvance, broken::nb_advance_past_data;
        "nb.range", Rule::NbRange, broken::nb_beyond_chain;
        "mdl.bad_free", Rule::MdlBadFree, broken::mdl_double_free;
        "irql.too_high", Rule::IrqlTooHigh, broken::register_at_dispatch;
        "ndis.still_registered_at_unload", Rule::NdisStillRegistered, broken::never_deregisters;
        "ndis.bad_handle", Rule::NdisBadHandle, broken::deregisters_bogus_handle;
        "wdf.binding", Rule::WdfStillBound, broken::unbinds_without_bind;
        "sched.dpc_pending_at_unload", Rule::SchedPendingAtUnload, broken::unloads_with_dpc_queued;
        "sched.workitem_freed_while_queued", Rule::SchedWorkItemFreedWhileQueued, broken::frees_queued_work_item;
        "sched.wait_at_dispatch", Rule::SchedWaitAtDispatch, broken::waits_at_dispatch;
        "sched.wait_deadlock", Rule::SchedWaitDeadlock, broken::waits_forever;
        "xstate.unbalanced", Rule::XStateUnbalanced, broken::restores_unsaved_xstate;
    });
    tests.extend(
        [
            (
                "wsk.release_unknown",
                Rule::WskReleaseUnknown,
                wsk_negative::release_twice as fn(&mut Machine) -> Outcome,
            ),
            ("wsk.irp_completed_twice", Rule::WskIrpCompletedTwice, wsk_negative::complete_twice),
            ("wsk.irp_misuse", Rule::WskIrpMisuse, wsk_negative::reuse_without_reset),
            ("wsk.socket_leak_at_unload", Rule::WskSocketLeak, wsk_negative::unload_with_socket),
            ("wsk.dispatch_irql", Rule::WskDispatchIrql, wsk_negative::send_at_high_level),
            ("wsk.close_with_retained", Rule::WskCloseWithRetained, wsk_negative::close_with_retained),
        ]
        .into_iter()
        .map(|(name, rule, run)| Test { suite: "verifier", name, expect: Some(rule), run }),
    );
    tests.extend(device_tests());
    tests.extend(netcx_tests());
    tests.extend(kmdf_request_tests());
    tests
}

/// Loads [`broken::device_driver`] committing `bug`, sends one IOCTL through a handle, closes it and
/// unloads: exactly the bug's rule must fire.
fn device_with(machine: &mut Machine, bug: broken::DeviceBug) -> Outcome {
    broken::DEVICE_BUG.store(bug as u32, std::sync::atomic::Ordering::Relaxed);
    let id = machine
        .load_driver("brokendev", broken::device_driver)
        .map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let h = winsim::device::open("\\\\.\\brokendev").map_err(|s| format!("open: {s:#x}"))?;
    let _ = winsim::device::device_io_control(h, uapi::ioctl::buffered(0x801), &[0; 8], 8);
    winsim::device::close(h);
    machine.unload_driver(id)?;
    Ok(Vec::new())
}

/// The control-device rules (appended).
pub fn device_tests() -> Vec<Test> {
    use broken::DeviceBug;
    vec![
        Test {
            suite: "verifier",
            name: "device.not_deregistered",
            expect: Some(Rule::DeviceNotDeregistered),
            run: |m| device_with(m, DeviceBug::NeverDeregistersDevice),
        },
        Test {
            suite: "verifier",
            name: "device.irp_pending_at_unload",
            expect: Some(Rule::DeviceIrpPendingAtUnload),
            run: |m| device_with(m, DeviceBug::PendsForever),
        },
        Test {
            suite: "verifier",
            name: "device.irp_misuse",
            expect: Some(Rule::DeviceIrpMisuse),
            run: |m| device_with(m, DeviceBug::ForgetsCompletion),
        },
    ]
}

/// The NetAdapterCx rules (appended): the test client commits one mistake each.
pub fn netcx_tests() -> Vec<Test> {
    use crate::netcx_client::Bug;
    macro_rules! netcx_negative {
        ($($name:literal, $rule:expr, $bug:expr;)*) => {
            vec![$(Test {
                suite: "verifier",
                name: $name,
                expect: Some($rule),
                run: |m| super::netcx::with_bug(m, $bug),
            }),*]
        };
    }
    netcx_negative! {
        "netcx.ring.immutable", Rule::NetcxRingImmutable, Bug::WritesRingHeader;
        "netcx.ring.begin_past_end", Rule::NetcxRingBeginPastEnd, Bug::BeginPastEnd;
        "netcx.ring.outside_range", Rule::NetcxRingOutsideRange, Bug::WritesOutsideRange;
        "netcx.tx.immutable", Rule::NetcxTxImmutable, Bug::WritesTxIgnore;
        "netcx.rx.packet_fragments", Rule::NetcxRxPacketFragments, Bug::ZeroFragments;
        "netcx.rx.layout", Rule::NetcxRxLayout, Bug::ShortIpv4Layout;
        "netcx.rx.fragment", Rule::NetcxRxFragment, Bug::FragmentPastCapacity;
        "netcx.rx.os_reserved", Rule::NetcxRxReserved, Bug::SetsBounced;
        "netcx.cancel", Rule::NetcxCancel, Bug::NeverDrains;
        "netcx.notify", Rule::NetcxNotify, Bug::NotifiesWhileDisabled;
        "netcx.capabilities", Rule::NetcxCapabilities, Bug::DriverAllocSystemAttach;
        "netcx.object_state", Rule::NetcxObjectState, Bug::StartsTwice;
        "netcx.rx.fragment.system_capacity", Rule::NetcxRxFragment, Bug::ChangesSystemCapacity;
        "netcx.irql.ddi_in_advance", Rule::IrqlTooHigh, Bug::RingCollectionInAdvance;
        "netcx.unsimulated_ddi_stops", Rule::NotSimulated, Bug::CallsUnsimulated;
        "netcx.rx.packet_fragments.overlap", Rule::NetcxRxPacketFragments, Bug::ReusesFragment;
    }
}

/// Loads the test KMDF client, lets its device arrive, sends one IOCTL that commits `mistake` (plus an
/// echo that must work), then removes the device and unloads.
fn kmdf_mistake(m: &mut Machine, mistake: crate::kmdf_client::Mistake) -> crate::Outcome {
    use crate::kmdf_client::{code, driver_entry, ECHO, PATH, SERVICE};
    let driver = m.load_driver(SERVICE, driver_entry).map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let device = winsim::netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let h = winsim::device::open(PATH).map_err(|s| format!("open: {s:#x}"))?;
    let echo = winsim::device::device_io_control(h, ECHO, b"ping", 8);
    if echo != (0, b"ping".to_vec()) {
        return Err(format!("echo {echo:?}"));
    }
    let _ = winsim::device::submit_io_control(h, code(mistake as u32), b"data", 4);
    winsim::netcx::device_remove(device);
    winsim::device::close(h);
    m.unload_driver(driver)?;
    Ok(Vec::new())
}

/// The KMDF request rules: the test KMDF client (`crate::kmdf_client`) commits one mistake each.
pub fn kmdf_request_tests() -> Vec<Test> {
    use crate::kmdf_client::Mistake;
    macro_rules! kmdf_negative {
        ($($name:literal, $rule:expr, $mistake:expr;)*) => {
            vec![$(Test { suite: "verifier", name: $name, expect: Some($rule), run: |m| kmdf_mistake(m, $mistake) }),*]
        };
    }
    kmdf_negative! {
        "wdf.request_completed_twice", Rule::WdfRequestCompletedTwice, Mistake::CompletesTwice;
        "wdf.request_after_completion", Rule::WdfRequestAfterCompletion, Mistake::BufferAfterCompletion;
        "wdf.request_not_owned", Rule::WdfRequestNotOwned, Mistake::CompletesQueued;
        "wdf.request_information_overflow", Rule::WdfRequestInformationOverflow, Mistake::InformationPastBuffer;
        "wdf.request_leaked", Rule::WdfRequestLeaked, Mistake::Keeps;
    }
}
