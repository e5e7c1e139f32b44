//! KMDF, as far as the drivers use it: the `wdfldr.sys` binding (`WdfVersionBind`/`WdfVersionUnbind`)
//! and a function table whose implemented slots are simulated and whose other slots stop the machine
//! naming the DDI (see `build.rs`).
use std::collections::BTreeMap;
use std::sync::Mutex;

use kernel::ffi::ntos::{
    DRIVER_OBJECT, NTSTATUS, PASSIVE_LEVEL, STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
    STATUS_UNSUCCESSFUL, UNICODE_STRING,
};
use kernel::ffi::wdf::{
    WdfDriverCreateTableIndex, WdfFunctionTableNumEntries, KMDF_VERSION_MAJOR, WDFDRIVER, WDFFUNC,
    WDF_BIND_INFO, WDF_DRIVER_CONFIG, WDF_DRIVER_GLOBALS, WDF_OBJECT_ATTRIBUTES,
};

use crate::context::{call_driver, current_driver, require_irql_at_most, DriverId};
use crate::verifier::{violation, Rule};

include!(concat!(env!("OUT_DIR"), "/kmdf_stubs.rs"));

/// Names of the slots the drivers are known to reach (wdffuncenum.h), for the not-simulated message.
const DDI_NAMES: &[(usize, &str)] = &[
    (WdfDriverCreateTableIndex, "WdfDriverCreate"),
    (kernel::ffi::wdf::WdfDeviceCreateTableIndex, "WdfDeviceCreate"),
    (kernel::ffi::wdf::WdfObjectDeleteTableIndex, "WdfObjectDelete"),
    (kernel::ffi::wdf::WdfIoQueueCreateTableIndex, "WdfIoQueueCreate"),
    (kernel::ffi::wdf::WdfRequestCompleteTableIndex, "WdfRequestComplete"),
    (kernel::ffi::wdf::WdfDeviceInitSetFileObjectConfigTableIndex, "WdfDeviceInitSetFileObjectConfig"),
    (kernel::ffi::wdf::WdfDriverWdmGetDriverObjectTableIndex, "WdfDriverWdmGetDriverObject"),
];

/// A table slot no simulation implements: the machine stops, naming the DDI.
pub(crate) fn not_simulated(slot: usize) -> ! {
    let name = DDI_NAMES.iter().find(|(i, _)| *i == slot).map_or("?", |(_, n)| n);
    crate::debug::stop_machine(
        Rule::NotSimulated,
        &format!("KMDF DDI WdfFunctions[{slot}] ({name}) is not simulated"),
    )
}

struct Binding {
    owner: DriverId,
    globals: Box<WDF_DRIVER_GLOBALS>,
    _table: Box<[WDFFUNC]>,
    config: Option<WDF_DRIVER_CONFIG>,
    driver_object: usize,
}

// SAFETY: the raw pointers inside are only handed to the driver; the simulation never dereferences them
// from another thread.
unsafe impl Send for Binding {}

static BINDINGS: Mutex<BTreeMap<usize, Binding>> = Mutex::new(BTreeMap::new());
static CREATED: Mutex<u32> = Mutex::new(0);

pub(crate) fn reset() {
    crate::lock(&BINDINGS).clear();
    *crate::lock(&CREATED) = 0;
}

/// How many WDFDRIVERs were created since boot.
pub fn drivers_created() -> u32 {
    *crate::lock(&CREATED)
}

pub(crate) fn driver_unloaded(driver: DriverId) {
    let mut bindings = crate::lock(&BINDINGS);
    let stale: Vec<usize> = bindings.iter().filter(|(_, b)| b.owner == driver).map(|(&k, _)| k).collect();
    for key in stale {
        bindings.remove(&key);
        violation(Rule::WdfStillBound, "driver unloaded without WdfVersionUnbind");
    }
}

fn table() -> Box<[WDFFUNC]> {
    let mut table: Vec<WDFFUNC> = KMDF_STUBS.iter().map(|&stub| Some(stub)).collect();
    // SAFETY: the slot's declared type is PFN_WDFDRIVERCREATE, which WdfDriverCreate implements; callers
    // transmute it back to that type.
    table[WdfDriverCreateTableIndex] = Some(unsafe {
        std::mem::transmute::<
            unsafe extern "system" fn(
                *mut WDF_DRIVER_GLOBALS,
                *mut DRIVER_OBJECT,
                *const UNICODE_STRING,
                *mut WDF_OBJECT_ATTRIBUTES,
                *mut WDF_DRIVER_CONFIG,
                *mut WDFDRIVER,
            ) -> NTSTATUS,
            unsafe extern "system" fn(),
        >(WdfDriverCreate)
    });
    crate::netcx::install_kmdf(&mut table);
    crate::wdfio::install(&mut table);
    table.into_boxed_slice()
}

/// `WdfVersionBind` (wdfldr.sys). PASSIVE_LEVEL. Checks the bind info as the loader does (size, the
/// `KmdfLibrary` component, major version 1, a released table size), then hands out the table and the
/// driver globals.
///
/// # Safety
/// Pointers as the loader requires.
#[no_mangle]
pub unsafe extern "system" fn WdfVersionBind(
    driver_object: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
    bind_info: *mut WDF_BIND_INFO,
    component_globals: *mut *mut WDF_DRIVER_GLOBALS,
) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "WdfVersionBind");
    // SAFETY: the caller passes a valid bind info.
    let Some(info) = (unsafe { bind_info.as_mut() }) else { return STATUS_INVALID_PARAMETER };
    if info.Size as usize != std::mem::size_of::<WDF_BIND_INFO>() || info.FuncTable.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: Component is a NUL-terminated UTF-16 string (WDF_BIND_INFO contract).
    let component = unsafe { wide_cstr(info.Component) };
    if component != "KmdfLibrary" || info.Version.Major != KMDF_VERSION_MAJOR || info.Version.Minor > 33 {
        return STATUS_NOT_SUPPORTED;
    }
    if info.FuncCount != WdfFunctionTableNumEntries {
        return STATUS_NOT_SUPPORTED;
    }
    let Some(owner) = current_driver() else { return STATUS_UNSUCCESSFUL };
    // SAFETY: plain C data; zero is the framework's initial state.
    let mut globals: Box<WDF_DRIVER_GLOBALS> = Box::new(unsafe { std::mem::zeroed() });
    globals.DisplaceDriverUnload = 1;
    let table = table();
    // SAFETY: FuncTable is the address of the client's `WDFFUNC*` variable (fxlibrarycommon.cpp).
    unsafe { info.FuncTable.cast::<*const WDFFUNC>().write(table.as_ptr()) };
    let globals_ptr: *mut WDF_DRIVER_GLOBALS = &raw mut *globals;
    // SAFETY: the caller passes a location valid for writes.
    unsafe { component_globals.write(globals_ptr) };
    crate::lock(&BINDINGS).insert(
        globals_ptr as usize,
        Binding { owner, globals, _table: table, config: None, driver_object: driver_object as usize },
    );
    STATUS_SUCCESS
}

/// `WdfVersionUnbind` (wdfldr.sys). PASSIVE_LEVEL.
///
/// # Safety
/// `globals` must come from `WdfVersionBind`.
#[no_mangle]
pub unsafe extern "system" fn WdfVersionUnbind(
    _registry_path: *mut UNICODE_STRING,
    _bind_info: *mut WDF_BIND_INFO,
    globals: *mut WDF_DRIVER_GLOBALS,
) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "WdfVersionUnbind");
    if crate::lock(&BINDINGS).remove(&(globals as usize)).is_none() {
        violation(Rule::WdfStillBound, format!("WdfVersionUnbind({globals:p}): not bound"));
        return STATUS_INVALID_PARAMETER;
    }
    STATUS_SUCCESS
}

/// The framework's `DriverUnload`, installed by `WdfDriverCreate`: `EvtDriverUnload`, then the WDFDRIVER
/// is gone.
unsafe extern "system" fn framework_unload(driver_object: *mut DRIVER_OBJECT) {
    let config = {
        let bindings = crate::lock(&BINDINGS);
        bindings
            .values()
            .find(|b| b.driver_object == driver_object as usize)
            .and_then(|b| b.config.map(|c| (c, b.owner)))
    };
    if let Some((config, owner)) = config {
        if let Some(unload) = config.EvtDriverUnload {
            // SAFETY: the driver's registered callback with its WDFDRIVER handle.
            call_driver(owner, PASSIVE_LEVEL, "EvtDriverUnload", || unsafe { unload(driver_object.cast()) });
        }
    }
}

/// `WdfDriverCreate` (table slot 116). PASSIVE_LEVEL, from DriverEntry.
unsafe extern "system" fn WdfDriverCreate(
    globals: *mut WDF_DRIVER_GLOBALS,
    driver_object: *mut DRIVER_OBJECT,
    _registry_path: *const UNICODE_STRING,
    _attributes: *mut WDF_OBJECT_ATTRIBUTES,
    config: *mut WDF_DRIVER_CONFIG,
    driver_out: *mut WDFDRIVER,
) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "WdfDriverCreate");
    // SAFETY: the caller passes a valid config (WdfDriverCreate contract).
    let Some(config) = (unsafe { config.as_ref() }) else { return STATUS_INVALID_PARAMETER };
    if config.Size as usize != std::mem::size_of::<WDF_DRIVER_CONFIG>() {
        return STATUS_INVALID_PARAMETER;
    }
    let mut bindings = crate::lock(&BINDINGS);
    let Some(binding) = bindings.get_mut(&(globals as usize)) else {
        drop(bindings);
        violation(Rule::WdfStillBound, "WdfDriverCreate with globals WdfVersionBind did not return");
        return STATUS_INVALID_PARAMETER;
    };
    binding.config = Some(*config);
    // The WDFDRIVER handle: the driver object stands in for it (distinct per driver, opaque to clients).
    let handle: WDFDRIVER = driver_object.cast();
    binding.globals.Driver = handle;
    drop(bindings);
    *crate::lock(&CREATED) += 1;
    // SAFETY: the driver object is the loading driver's, writable during DriverEntry.
    unsafe { (*driver_object).DriverUnload = Some(framework_unload) };
    if !driver_out.is_null() {
        // SAFETY: the caller's out pointer is valid for writes.
        unsafe { driver_out.write(handle) };
    }
    STATUS_SUCCESS
}

/// Reads a NUL-terminated UTF-16 string.
///
/// # Safety
/// `p` must be null or NUL-terminated.
unsafe fn wide_cstr(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut units = Vec::new();
    let mut i = 0;
    loop {
        // SAFETY: the caller guarantees NUL termination, so every unit up to it is in the string.
        let at = unsafe { p.add(i) };
        // SAFETY: as above, the unit is readable.
        let unit = unsafe { at.read() };
        if unit == 0 || i > 1024 {
            break;
        }
        units.push(unit);
        i += 1;
    }
    String::from_utf16_lossy(&units)
}

/// The `EvtDriverDeviceAdd` of `driver`'s WDFDRIVER and the WDFDRIVER handle, if it created one (for
/// the PnP "device arrives" path in [`crate::netcx`]).
pub(crate) fn device_add_for(
    driver: DriverId,
) -> Option<(unsafe extern "system" fn(WDFDRIVER, kernel::ffi::wdf::PWDFDEVICE_INIT) -> NTSTATUS, WDFDRIVER)>
{
    let bindings = crate::lock(&BINDINGS);
    let b = bindings.values().find(|b| b.owner == driver)?;
    let add = b.config?.EvtDriverDeviceAdd?;
    Some((add, b.globals.Driver))
}

/// Whether `globals` is the live KMDF globals of some bound driver.
pub(crate) fn is_bound(globals: *mut WDF_DRIVER_GLOBALS) -> bool {
    crate::lock(&BINDINGS).contains_key(&(globals as usize))
}

/// The driver that owns the KMDF globals `globals`, if bound.
pub(crate) fn owner_of(globals: *mut WDF_DRIVER_GLOBALS) -> Option<DriverId> {
    crate::lock(&BINDINGS).get(&(globals as usize)).map(|b| b.owner)
}
