//! Installs filter drivers the way their INF describes them: service name, the names the driver must
//! register with, and the media types it binds to (a modifying, optional filter over every Ethernet NIC).
use std::path::Path;

use winsim::{DriverEntry, DriverId, Machine};

use crate::inf;

/// A filter loaded and attached to the machine's NICs.
#[derive(Debug)]
pub struct Installed {
    pub driver: DriverId,
    /// NdisFilterHandle of each module, one per NIC, in NIC order.
    pub modules: Vec<usize>,
}

/// Loads `entry` as service `service`, then attaches and restarts a module on every NIC (as NDIS does
/// when it binds a filter whose FilterMediaTypes include `ethernet`).
pub fn install(machine: &mut Machine, service: &str, entry: DriverEntry) -> Result<Installed, String> {
    let driver = machine
        .load_driver(service, entry)
        .map_err(|s| format!("{service}: DriverEntry failed with {s:#x}"))?;
    let registration = winsim::ndis::registered_filters()
        .into_iter()
        .find(|f| f.owner == driver)
        .ok_or_else(|| format!("{service} did not register as a filter driver"))?;
    let mut modules = Vec::new();
    for nic in winsim::datapath::nics() {
        let info = winsim::datapath::nic_info(nic).ok_or("NIC vanished")?;
        let module = winsim::ndis::attach_module(registration.handle, &info)
            .map_err(|s| format!("{service}: FilterAttach on NIC {nic} failed with {s:#x}"))?;
        let status = winsim::ndis::restart_module(module);
        if status != 0 {
            return Err(format!("{service}: FilterRestart on NIC {nic} returned {status:#x}"));
        }
        modules.push(module);
    }
    Ok(Installed { driver, modules })
}

/// Installs a filter from its INF: reads the service name, checks that the driver registers with the
/// INF's `NetCfgInstanceId` as its unique name and the INF's service as its service name, and binds it
/// only if its `FilterMediaTypes` include `ethernet` (the simulated NICs are Ethernet).
pub fn install_from_inf(
    machine: &mut Machine,
    inf_path: &Path,
    entry: DriverEntry,
) -> Result<Installed, String> {
    let text =
        std::fs::read_to_string(inf_path).map_err(|e| format!("cannot read {}: {e}", inf_path.display()))?;
    let parsed = inf::Inf::parse(&text);
    let info = inf::filter_info(&parsed)?;
    if !info.filter_media_types.iter().any(|m| m.eq_ignore_ascii_case("ethernet")) {
        return Err(format!(
            "{}: FilterMediaTypes {:?} do not include ethernet",
            inf_path.display(),
            info.filter_media_types
        ));
    }
    let installed = install(machine, &info.service_name, entry)?;
    let registration = winsim::ndis::registered_filters()
        .into_iter()
        .find(|f| f.owner == installed.driver)
        .ok_or("the filter deregistered during install")?;
    if !registration.unique_name.eq_ignore_ascii_case(&info.net_cfg_instance_id) {
        return Err(format!(
            "driver registered UniqueName {} but the INF's NetCfgInstanceId is {}",
            registration.unique_name, info.net_cfg_instance_id
        ));
    }
    if !registration.service_name.eq_ignore_ascii_case(&info.service_name) {
        return Err(format!(
            "driver registered ServiceName {} but the INF installs service {}",
            registration.service_name, info.service_name
        ));
    }
    Ok(installed)
}

/// The repository's `inf/` folder.
pub fn inf_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("inf")
}
