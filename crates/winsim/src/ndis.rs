//! The NDIS filter API: registration, the filter-module state machine as NDIS drives it (attach, restart,
//! pause, detach), and the verifier rules for what a filter may call in which state.
//!
//! State machine (Windows-driver-docs, "Filter Module States and Operations"): Detached → Attaching →
//! Paused → Restarting → Running → Pausing → Paused → Detached. NDIS calls `FilterAttach` in Detached,
//! `FilterRestart` and `FilterDetach` in Paused, `FilterPause` in Running; `NdisFSetAttributes` is legal
//! only inside `FilterAttach`.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;

use kernel::ffi::ndis::{
    MediaConnectStateConnected, MediaDuplexStateFull, NdisMedium802_3, NdisPhysicalMedium802_3, NDIS_HANDLE,
    NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_FILTER_ATTACH_PARAMETERS, NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
    NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS, NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS,
    NDIS_OBJECT_TYPE_FILTER_RESTART_PARAMETERS, NDIS_STATUS, NDIS_STATUS_BAD_CHARACTERISTICS,
    NDIS_STATUS_BAD_VERSION, NDIS_STATUS_FAILURE, NDIS_STATUS_PENDING, NDIS_STATUS_SUCCESS,
};
use kernel::ffi::ndis_filter::{
    NDIS_FILTER_ATTACH_PARAMETERS, NDIS_FILTER_ATTACH_PARAMETERS_REVISION_4, NDIS_FILTER_ATTRIBUTES,
    NDIS_FILTER_CHARACTERISTICS_REVISION_1, NDIS_FILTER_DRIVER_CHARACTERISTICS, NDIS_FILTER_PAUSE_PARAMETERS,
    NDIS_FILTER_PAUSE_PARAMETERS_REVISION_1, NDIS_FILTER_RESTART_PARAMETERS,
    NDIS_FILTER_RESTART_PARAMETERS_REVISION_1, NDIS_PAUSE_DETACH_FILTER,
    NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_1,
};
use kernel::ffi::ntos::{DRIVER_OBJECT, PASSIVE_LEVEL};

use crate::context::{call_driver, current_driver, require_irql_at_most, DriverId};
use crate::verifier::{violation, Rule};

/// Where a filter module is in the NDIS state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleState {
    Attaching,
    Paused,
    Restarting,
    Running,
    Pausing,
}

/// A registered filter driver (what NDIS copied from the characteristics).
#[derive(Clone, Debug)]
pub struct FilterDriver {
    pub handle: usize,
    pub owner: DriverId,
    pub context: usize,
    pub friendly_name: String,
    pub unique_name: String,
    pub service_name: String,
    pub ndis_version: (u8, u8),
    characteristics: Arc<Handlers>,
}

/// The registered characteristics (handler pointers and name pointers).
#[derive(Debug)]
pub(crate) struct Handlers(pub(crate) NDIS_FILTER_DRIVER_CHARACTERISTICS);

// SAFETY: the handlers are code pointers and the names are only read during registration; the
// simulation calls handlers on whichever thread drives the machine, as NDIS does.
unsafe impl Send for Handlers {}
// SAFETY: as above; the structure is never written after registration.
unsafe impl Sync for Handlers {}

/// An attached (or attaching) filter module.
#[derive(Debug)]
struct Module {
    driver_handle: usize,
    nic: u32,
    state: ModuleState,
    context: Option<usize>,
    owner: DriverId,
}

#[derive(Default)]
struct Ndis {
    drivers: BTreeMap<usize, FilterDriver>,
    /// Keyed by the NdisFilterHandle NDIS gave the module.
    modules: BTreeMap<usize, Module>,
    next_handle: usize,
}

static NDIS: Mutex<Ndis> =
    Mutex::new(Ndis { drivers: BTreeMap::new(), modules: BTreeMap::new(), next_handle: 0 });

fn new_handle(ndis: &mut Ndis) -> usize {
    // Handles are opaque to drivers; distinct, non-null, and never dereferenced by them.
    ndis.next_handle += 1;
    0x4e44_0000_0000 + ndis.next_handle * 0x100
}

pub(crate) fn reset() {
    let mut ndis = crate::lock(&NDIS);
    ndis.drivers.clear();
    ndis.modules.clear();
}

/// Filter drivers registered now.
pub fn registered_filters() -> Vec<FilterDriver> {
    crate::lock(&NDIS).drivers.values().cloned().collect()
}

/// Checks after a driver unloaded (or failed DriverEntry) that it left nothing registered.
pub(crate) fn driver_unloaded(driver: DriverId, name: &str) {
    let mut ndis = crate::lock(&NDIS);
    let stale: Vec<usize> = ndis.drivers.values().filter(|d| d.owner == driver).map(|d| d.handle).collect();
    for handle in stale {
        ndis.drivers.remove(&handle);
        violation(Rule::NdisStillRegistered, format!("{name} unloaded without NdisFDeregisterFilterDriver"));
    }
}

fn read_name(s: &kernel::ffi::ntos::UNICODE_STRING) -> String {
    // SAFETY: the driver passed the string inside its characteristics; NDIS requires valid strings.
    unsafe { crate::read_unicode(s) }.unwrap_or_default()
}

/// `NdisFRegisterFilterDriver`. PASSIVE_LEVEL. Validates the characteristics as NDIS does: object header
/// type, revision and size; NDIS 6.x; the mandatory handlers (attach, detach, restart, pause).
///
/// # Safety
/// Pointers as the NDIS documentation requires.
#[no_mangle]
pub unsafe extern "system" fn NdisFRegisterFilterDriver(
    _driver_object: *mut DRIVER_OBJECT,
    filter_driver_context: NDIS_HANDLE,
    characteristics: *mut NDIS_FILTER_DRIVER_CHARACTERISTICS,
    handle_out: *mut NDIS_HANDLE,
) -> NDIS_STATUS {
    if !require_irql_at_most(PASSIVE_LEVEL, "NdisFRegisterFilterDriver") {
        return NDIS_STATUS_FAILURE;
    }
    // SAFETY: the caller passes a valid characteristics structure.
    let Some(c) = (unsafe { characteristics.as_ref() }) else {
        return NDIS_STATUS_BAD_CHARACTERISTICS;
    };
    let header = c.Header;
    if header.Type != NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS
        || header.Revision < NDIS_FILTER_CHARACTERISTICS_REVISION_1
        || usize::from(header.Size) < NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_1
    {
        return NDIS_STATUS_BAD_CHARACTERISTICS;
    }
    if c.MajorNdisVersion != 6 {
        return NDIS_STATUS_BAD_VERSION;
    }
    if c.AttachHandler.is_none()
        || c.DetachHandler.is_none()
        || c.RestartHandler.is_none()
        || c.PauseHandler.is_none()
    {
        return NDIS_STATUS_BAD_CHARACTERISTICS;
    }
    let Some(owner) = current_driver() else {
        return NDIS_STATUS_FAILURE;
    };
    let mut ndis = crate::lock(&NDIS);
    let handle = new_handle(&mut ndis);
    let driver = FilterDriver {
        handle,
        owner,
        context: filter_driver_context as usize,
        friendly_name: read_name(&c.FriendlyName),
        unique_name: read_name(&c.UniqueName),
        service_name: read_name(&c.ServiceName),
        ndis_version: (c.MajorNdisVersion, c.MinorNdisVersion),
        // SAFETY: NDIS copies the structure; it is plain C data.
        characteristics: Arc::new(Handlers(unsafe { std::ptr::read(characteristics) })),
    };
    ndis.drivers.insert(handle, driver);
    // SAFETY: the caller passes a handle location valid for writes.
    unsafe { handle_out.write(handle as NDIS_HANDLE) };
    NDIS_STATUS_SUCCESS
}

/// `NdisFDeregisterFilterDriver`. PASSIVE_LEVEL. Detaches every module of the driver first (pausing
/// running ones), as NDIS does before it returns.
///
/// # Safety
/// `handle` must come from registration.
#[no_mangle]
pub unsafe extern "system" fn NdisFDeregisterFilterDriver(handle: NDIS_HANDLE) {
    require_irql_at_most(PASSIVE_LEVEL, "NdisFDeregisterFilterDriver");
    let modules: Vec<usize> = {
        let ndis = crate::lock(&NDIS);
        if !ndis.drivers.contains_key(&(handle as usize)) {
            drop(ndis);
            violation(
                Rule::NdisBadHandle,
                format!("NdisFDeregisterFilterDriver({handle:p}): not a registered filter driver"),
            );
            return;
        }
        ndis.modules.iter().filter(|(_, m)| m.driver_handle == handle as usize).map(|(&h, _)| h).collect()
    };
    for module in modules {
        if state_of(module) == Some(ModuleState::Running) {
            let _ = pause_module(module, NDIS_PAUSE_DETACH_FILTER);
        }
        detach_module(module);
    }
    crate::lock(&NDIS).drivers.remove(&(handle as usize));
}

/// `NdisFSetAttributes`: legal only inside `FilterAttach` of that module.
///
/// # Safety
/// Pointers as the NDIS documentation requires.
#[no_mangle]
pub unsafe extern "system" fn NdisFSetAttributes(
    ndis_filter_handle: NDIS_HANDLE,
    filter_module_context: NDIS_HANDLE,
    attributes: *mut NDIS_FILTER_ATTRIBUTES,
) -> NDIS_STATUS {
    require_irql_at_most(PASSIVE_LEVEL, "NdisFSetAttributes");
    // SAFETY: the caller passes valid attributes.
    let valid =
        unsafe { attributes.as_ref() }.is_some_and(|a| a.Header.Type == NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES);
    let mut ndis = crate::lock(&NDIS);
    let Some(module) = ndis.modules.get_mut(&(ndis_filter_handle as usize)) else {
        drop(ndis);
        violation(
            Rule::NdisBadHandle,
            format!("NdisFSetAttributes({ndis_filter_handle:p}): unknown filter module"),
        );
        return NDIS_STATUS_FAILURE;
    };
    if module.state != ModuleState::Attaching {
        let state = module.state;
        drop(ndis);
        violation(
            Rule::NdisFilterState,
            format!("NdisFSetAttributes called in state {state:?}, legal only in FilterAttach"),
        );
        return NDIS_STATUS_FAILURE;
    }
    if !valid {
        return NDIS_STATUS_BAD_CHARACTERISTICS;
    }
    module.context = Some(filter_module_context as usize);
    NDIS_STATUS_SUCCESS
}

fn state_of(module: usize) -> Option<ModuleState> {
    crate::lock(&NDIS).modules.get(&module).map(|m| m.state)
}

fn set_state(module: usize, state: ModuleState) {
    if let Some(m) = crate::lock(&NDIS).modules.get_mut(&module) {
        m.state = state;
    }
}

fn driver_of(module: usize) -> Option<(FilterDriver, Option<usize>, DriverId)> {
    let ndis = crate::lock(&NDIS);
    let m = ndis.modules.get(&module)?;
    Some((ndis.drivers.get(&m.driver_handle)?.clone(), m.context, m.owner))
}

/// A NIC the simulated machine offers filters: what attach parameters describe.
#[derive(Clone, Debug)]
pub struct NicInfo {
    pub if_index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// Attaches the filter driver `driver_handle` to `nic`, as NDIS does when it builds a stack: calls
/// `FilterAttach` at PASSIVE_LEVEL. Returns the module's NdisFilterHandle, in Paused state.
pub fn attach_module(driver_handle: usize, nic: &NicInfo) -> Result<usize, NDIS_STATUS> {
    let (driver, module) = {
        let mut ndis = crate::lock(&NDIS);
        let driver = ndis.drivers.get(&driver_handle).cloned().ok_or(NDIS_STATUS_FAILURE)?;
        let module = new_handle(&mut ndis);
        ndis.modules.insert(
            module,
            Module {
                driver_handle,
                nic: nic.if_index,
                state: ModuleState::Attaching,
                context: None,
                owner: driver.owner,
            },
        );
        (driver, module)
    };
    // SAFETY: the parameters are plain C data; zero is a valid "absent" value for every pointer field.
    let mut params: NDIS_FILTER_ATTACH_PARAMETERS = unsafe { std::mem::zeroed() };
    params.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_FILTER_ATTACH_PARAMETERS,
        NDIS_FILTER_ATTACH_PARAMETERS_REVISION_4,
        std::mem::size_of::<NDIS_FILTER_ATTACH_PARAMETERS>(),
    );
    params.IfIndex = 1000 + nic.if_index;
    params.BaseMiniportIfIndex = nic.if_index;
    params.MediaConnectState = MediaConnectStateConnected;
    params.MediaDuplexState = MediaDuplexStateFull;
    params.XmitLinkSpeed = 10_000_000_000;
    params.RcvLinkSpeed = 10_000_000_000;
    params.MiniportMediaType = NdisMedium802_3;
    params.MiniportPhysicalMediaType = NdisPhysicalMedium802_3;
    params.MacAddressLength = 6;
    params.CurrentMacAddress[..6].copy_from_slice(&nic.mac);
    params.LowerIfIndex = nic.if_index;
    // NET_LUID: Reserved (24 bits), NetLuidIndex (24), IfType (16; 6 = IF_TYPE_ETHERNET_CSMACD), per
    // the NET_LUID_LH union of ifdef.h. The module's LUID and the miniport's, distinct.
    params.NetLuid = (6u64 << 48) | (u64::from(params.IfIndex) << 24);
    params.BaseMiniportNetLuid = (6u64 << 48) | (u64::from(nic.if_index) << 24);
    // BaseMiniportName: the miniport's device name, `\DEVICE\{GUID}` on Windows; a made-up GUID here
    // that names the NIC's IfIndex. Lives for the call, as NDIS's does.
    let mut name_units: Vec<u16> =
        format!("\\DEVICE\\{{5EC0{:04X}-0000-4000-8000-52444F4E4943}}", nic.if_index)
            .encode_utf16()
            .collect();
    let mut name = kernel::ffi::ntos::UNICODE_STRING {
        Length: u16::try_from(name_units.len() * 2).unwrap_or(0),
        MaximumLength: u16::try_from(name_units.len() * 2).unwrap_or(0),
        Buffer: name_units.as_mut_ptr(),
    };
    params.BaseMiniportName = &raw mut name;
    let attach = driver.characteristics.0.AttachHandler.expect("validated at registration");
    let context = driver.context as NDIS_HANDLE;
    // SAFETY: the handler was registered by the driver; the parameters live for the call.
    let status = call_driver(driver.owner, PASSIVE_LEVEL, "FilterAttach", || unsafe {
        attach(module as NDIS_HANDLE, context, &raw mut params)
    });
    let mut ndis = crate::lock(&NDIS);
    if status == NDIS_STATUS_SUCCESS {
        let m = ndis.modules.get_mut(&module).expect("module exists while attaching");
        if m.context.is_none() {
            drop(ndis);
            violation(
                Rule::NdisFilterState,
                "FilterAttach returned success without calling NdisFSetAttributes",
            );
            crate::lock(&NDIS).modules.remove(&module);
            return Err(NDIS_STATUS_FAILURE);
        }
        m.state = ModuleState::Paused;
        Ok(module)
    } else {
        ndis.modules.remove(&module);
        if status == NDIS_STATUS_PENDING {
            drop(ndis);
            violation(Rule::NdisFilterState, "FilterAttach returned NDIS_STATUS_PENDING, which it may not");
        }
        Err(status)
    }
}

/// Restarts a Paused module: `FilterRestart` at PASSIVE_LEVEL.
pub fn restart_module(module: usize) -> NDIS_STATUS {
    let Some((driver, Some(context), owner)) = driver_of(module) else { return NDIS_STATUS_FAILURE };
    if state_of(module) != Some(ModuleState::Paused) {
        return NDIS_STATUS_FAILURE;
    }
    // "To start a paused filter module, NDIS calls the filter driver's FilterSetModuleOptions function, if
    // any, and then calls FilterRestart" (Starting a Filter Module).
    if let Some(options) = driver.characteristics.0.SetFilterModuleOptionsHandler {
        // SAFETY: the registered handler with the module's own context.
        let status = call_driver(owner, PASSIVE_LEVEL, "FilterSetModuleOptions", || unsafe {
            options(context as NDIS_HANDLE)
        });
        if status != NDIS_STATUS_SUCCESS {
            return status;
        }
    }
    set_state(module, ModuleState::Restarting);
    // SAFETY: plain C data, zero is valid for every field.
    let mut params: NDIS_FILTER_RESTART_PARAMETERS = unsafe { std::mem::zeroed() };
    params.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_FILTER_RESTART_PARAMETERS,
        NDIS_FILTER_RESTART_PARAMETERS_REVISION_1,
        std::mem::size_of::<NDIS_FILTER_RESTART_PARAMETERS>(),
    );
    let restart = driver.characteristics.0.RestartHandler.expect("validated at registration");
    // SAFETY: the registered handler with the module's own context.
    let status = call_driver(owner, PASSIVE_LEVEL, "FilterRestart", || unsafe {
        restart(context as NDIS_HANDLE, &raw mut params)
    });
    match status {
        NDIS_STATUS_SUCCESS => set_state(module, ModuleState::Running),
        NDIS_STATUS_PENDING => {}
        _ => set_state(module, ModuleState::Paused),
    }
    status
}

/// Pauses a Running module: `FilterPause` at PASSIVE_LEVEL.
pub fn pause_module(module: usize, reason: u32) -> NDIS_STATUS {
    let Some((driver, Some(context), owner)) = driver_of(module) else { return NDIS_STATUS_FAILURE };
    if state_of(module) != Some(ModuleState::Running) {
        return NDIS_STATUS_FAILURE;
    }
    set_state(module, ModuleState::Pausing);
    let mut params = NDIS_FILTER_PAUSE_PARAMETERS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS,
            NDIS_FILTER_PAUSE_PARAMETERS_REVISION_1,
            std::mem::size_of::<NDIS_FILTER_PAUSE_PARAMETERS>(),
        ),
        Flags: 0,
        PauseReason: reason,
    };
    let pause = driver.characteristics.0.PauseHandler.expect("validated at registration");
    // SAFETY: the registered handler with the module's own context.
    let status = call_driver(owner, PASSIVE_LEVEL, "FilterPause", || unsafe {
        pause(context as NDIS_HANDLE, &raw mut params)
    });
    match status {
        NDIS_STATUS_SUCCESS => {
            crate::datapath::check_paused(module);
            set_state(module, ModuleState::Paused);
        }
        // The filter completes later with NdisFPauseComplete; the module stays Pausing until then.
        NDIS_STATUS_PENDING => {}
        other => {
            // "NDIS drivers cannot fail a pause request" (FILTER_PAUSE documentation).
            violation(Rule::NdisFilterState, format!("FilterPause returned {other:#x}; a pause cannot fail"));
            set_state(module, ModuleState::Paused);
        }
    }
    status
}

/// Detaches a Paused module: `FilterDetach` at PASSIVE_LEVEL.
pub fn detach_module(module: usize) {
    let Some((driver, Some(context), owner)) = driver_of(module) else {
        crate::lock(&NDIS).modules.remove(&module);
        return;
    };
    if state_of(module) != Some(ModuleState::Paused) {
        violation(Rule::NdisFilterState, format!("detach requested in state {:?}", state_of(module)));
    }
    let detach = driver.characteristics.0.DetachHandler.expect("validated at registration");
    // SAFETY: the registered handler with the module's own context.
    call_driver(owner, PASSIVE_LEVEL, "FilterDetach", || unsafe { detach(context as NDIS_HANDLE) });
    crate::lock(&NDIS).modules.remove(&module);
}

/// What the data path needs to call a module: its owner, context, handlers and state.
#[derive(Clone, Debug)]
pub(crate) struct ModuleView {
    pub(crate) owner: DriverId,
    pub(crate) context: NDIS_HANDLE,
    pub(crate) handlers: Arc<Handlers>,
    pub(crate) state: ModuleState,
}

/// The module with NdisFilterHandle `handle`, once attached (its context known).
pub(crate) fn module_view(handle: usize) -> Option<ModuleView> {
    let ndis = crate::lock(&NDIS);
    let m = ndis.modules.get(&handle)?;
    let driver = ndis.drivers.get(&m.driver_handle)?;
    Some(ModuleView {
        owner: m.owner,
        context: m.context? as NDIS_HANDLE,
        handlers: Arc::clone(&driver.characteristics),
        state: m.state,
    })
}

/// The modules attached to the NIC with `if_index`, bottom of the stack first (attach order: the first
/// filter attached sits directly above the miniport).
pub(crate) fn modules_on(if_index: u32) -> Vec<usize> {
    crate::lock(&NDIS).modules.iter().filter(|(_, m)| m.nic == if_index).map(|(&h, _)| h).collect()
}

/// The NIC a module is attached to.
pub(crate) fn nic_of(handle: usize) -> Option<u32> {
    crate::lock(&NDIS).modules.get(&handle).map(|m| m.nic)
}

/// `NdisFPauseComplete`: completes a pause the filter pended. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `handle` must be a module handle NDIS gave the filter.
#[no_mangle]
pub unsafe extern "system" fn NdisFPauseComplete(handle: NDIS_HANDLE) {
    require_irql_at_most(kernel::ffi::ntos::DISPATCH_LEVEL, "NdisFPauseComplete");
    let module = handle as usize;
    match state_of(module) {
        Some(ModuleState::Pausing) => {
            crate::datapath::check_paused(module);
            set_state(module, ModuleState::Paused);
        }
        Some(state) => {
            violation(Rule::NdisFilterState, format!("NdisFPauseComplete in state {state:?}, not Pausing"))
        }
        None => {
            violation(Rule::NdisBadHandle, format!("NdisFPauseComplete({handle:p}): unknown filter module"))
        }
    }
}

/// `NdisFRestartComplete`: completes a restart the filter pended. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `handle` must be a module handle NDIS gave the filter.
#[no_mangle]
pub unsafe extern "system" fn NdisFRestartComplete(handle: NDIS_HANDLE, status: NDIS_STATUS) {
    require_irql_at_most(kernel::ffi::ntos::DISPATCH_LEVEL, "NdisFRestartComplete");
    let module = handle as usize;
    match state_of(module) {
        Some(ModuleState::Restarting) => {
            set_state(
                module,
                if status == NDIS_STATUS_SUCCESS { ModuleState::Running } else { ModuleState::Paused },
            );
        }
        Some(state) => violation(
            Rule::NdisFilterState,
            format!("NdisFRestartComplete in state {state:?}, not Restarting"),
        ),
        None => {
            violation(Rule::NdisBadHandle, format!("NdisFRestartComplete({handle:p}): unknown filter module"))
        }
    }
}

/// Whether no module is attached to the NIC with `if_index`.
pub fn modules_on_nic_empty(if_index: u32) -> bool {
    modules_on(if_index).is_empty()
}

/// Moves a module stuck in Pausing to Paused after the verifier recorded the timeout.
pub(crate) fn force_paused(module: usize) {
    set_state(module, ModuleState::Paused);
}

/// The state of a module, if attached.
pub fn module_state(handle: usize) -> Option<ModuleState> {
    state_of(handle)
}

/// The modules attached now: (NdisFilterHandle, NIC ifIndex, state).
pub fn modules() -> Vec<(usize, u32, ModuleState)> {
    crate::lock(&NDIS).modules.iter().map(|(&h, m)| (h, m.nic, m.state)).collect()
}
