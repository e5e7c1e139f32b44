//! The load suite: each driver's real `DriverEntry` and unload in the simulated kernel, verifier clean and
//! nothing leaked.
use winsim::Machine;

use crate::{Outcome, Test};

fn load_filter(machine: &mut Machine) -> Outcome {
    let id = machine
        .load_driver("rdcofilter", filter::driver_entry)
        .map_err(|s| format!("filter DriverEntry failed with {s:#x}"))?;
    let registered = winsim::ndis::registered_filters();
    if registered.len() != 1 {
        return Err(format!("expected one registered filter driver, found {}", registered.len()));
    }
    machine.unload_driver(id)?;
    if !winsim::ndis::registered_filters().is_empty() {
        return Err("the filter driver is still registered after unload".into());
    }
    Ok(Vec::new())
}

fn load_miniport(machine: &mut Machine) -> Outcome {
    let id = machine
        .load_driver("rdcominiport", miniport::driver_entry)
        .map_err(|s| format!("miniport DriverEntry failed with {s:#x}"))?;
    if winsim::wdf::drivers_created() != 1 {
        return Err("the miniport did not create its WDFDRIVER".into());
    }
    machine.unload_driver(id)?;
    Ok(Vec::new())
}

pub fn tests() -> Vec<Test> {
    vec![
        Test { suite: "load", name: "filter.load_unload", expect: None, run: load_filter },
        Test { suite: "load", name: "miniport.load_unload", expect: None, run: load_miniport },
    ]
}
