//! The faults suite: allocation failure at every allocation site of a filter, one at a time. A clean run
//! counts the filter's pool allocations (load, attach on two NICs, traffic, detach, unload); then, for
//! each N, a fresh machine fails exactly the Nth allocation. Every run must end without a crash, a leak or
//! a verifier violation, and the driver must then load and run cleanly again.
use winsim::datapath::{self, NicConfig};
use winsim::pool::{self, FaultPlan};
use winsim::{DriverEntry, Machine};

use crate::{install, passthrough, Outcome, Test};

/// Load, attach, a little traffic, detach, unload; allocation failures may make steps fail, which is
/// fine as long as the driver cleans up after itself.
fn lifecycle(machine: &mut Machine, service: &str, entry: DriverEntry) -> Result<(), String> {
    let installed = install::install(machine, service, entry)?;
    let mac = datapath::nic_info(1).ok_or("no NIC")?.mac;
    let peer = [2, 0, 0, 0, 0, 7];
    datapath::protocol_send(1, &[datapath::test_frame(peer, mac, 1, 100)]);
    datapath::nic_indicate(1, &[datapath::test_frame(mac, peer, 2, 100)], false);
    datapath::pump();
    for &m in &installed.modules {
        winsim::ndis::pause_module(m, 0);
        winsim::pnp::settle_pause(m);
        winsim::ndis::detach_module(m);
    }
    machine.unload_driver(installed.driver)
}

fn two_nics() -> Result<(), String> {
    for i in 1..=2 {
        datapath::add_nic(NicConfig::ethernet(i)).map_err(|s| format!("add_nic: {s:#x}"))?;
    }
    Ok(())
}

fn every_site(machine: &mut Machine, service: &str, entry: DriverEntry) -> Outcome {
    // The clean run counts the allocations.
    let total = {
        two_nics()?;
        pool::set_fault_plan(FaultPlan::Never);
        lifecycle(machine, service, entry)?;
        let (allocations, _) = pool::counts();
        if let Some(v) = machine.reboot().first() {
            return Err(format!("clean run: {v}"));
        }
        allocations
    };
    if total == 0 {
        return Err("the driver made no pool allocation: nothing to inject".into());
    }
    let mut failed_steps = 0;
    for n in 1..=total {
        two_nics()?;
        pool::set_fault_plan(FaultPlan::Nth(n));
        if lifecycle(machine, service, entry).is_err() {
            failed_steps += 1;
        }
        let (_, injected) = pool::counts();
        let violations = machine.reboot();
        if let Some(v) = violations.first() {
            return Err(format!("allocation {n} of {total} failed: {v}"));
        }
        if injected != 1 {
            return Err(format!("allocation {n} of {total}: {injected} failures injected, expected 1"));
        }
        // The driver reloads cleanly afterwards.
        two_nics()?;
        lifecycle(machine, service, entry).map_err(|e| format!("reload after fault {n}: {e}"))?;
        if let Some(v) = machine.reboot().first() {
            return Err(format!("reload after fault {n}: {v}"));
        }
    }
    Ok(vec![("allocation_sites".into(), total), ("runs_with_a_failed_step".into(), failed_steps)])
}

pub fn tests() -> Vec<Test> {
    vec![
        Test {
            suite: "faults",
            name: "passthrough.alloc_failure_each_site",
            expect: None,
            run: |m| every_site(m, passthrough::SERVICE, passthrough::driver_entry),
        },
        Test {
            suite: "faults",
            name: "rdcofilter.alloc_failure_each_site",
            expect: None,
            run: |m| every_site(m, uapi::names::FILTER_SERVICE_NAME, filter::driver_entry),
        },
    ]
}
