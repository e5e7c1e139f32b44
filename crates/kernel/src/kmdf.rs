//! The project's own KMDF version-binding stub (what the WDK's `WdfDriverEntry.lib` does), over the
//! `wdfldr.sys` exports declared in [`crate::ffi::wdf`]:
//!
//! 1. [`bind`] in `DriverEntry`: `WdfVersionBind` with a static `WDF_BIND_INFO` for KMDF 1.31 whose
//!    `FuncTable` is the address of our function-table pointer; the framework fills it and returns the
//!    driver globals.
//! 2. The driver calls DDIs through [`function`] (typed wrappers such as [`driver_create`]).
//! 3. [`displace_unload`] after `WdfDriverCreate`: when the framework asks for it
//!    (`DisplaceDriverUnload`), our unload runs the framework's unload and then unbinds.
//!
//! All of it runs at PASSIVE_LEVEL in `DriverEntry`/`DriverUnload`, which the I/O manager serialises; the
//! statics are written only there.
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::ffi::ntos::{DRIVER_OBJECT, NTSTATUS, NT_SUCCESS, STATUS_INVALID_DEVICE_STATE, UNICODE_STRING};
use crate::ffi::wdf::{
    WdfDriverCreateTableIndex, WdfFunctionTableNumEntries, WdfVersionBind, WdfVersionUnbind,
    KMDF_VERSION_MAJOR, KMDF_VERSION_MINOR_1_31, PFN_WDFDRIVERCREATE, WDFDRIVER, WDFFUNC, WDF_BIND_INFO,
    WDF_DRIVER_CONFIG, WDF_DRIVER_GLOBALS, WDF_KMDF_COMPONENT_NAME, WDF_NO_OBJECT_ATTRIBUTES, WDF_VERSION,
};

/// Longest registry path we keep for the unbind (in UTF-16 units); a service key path is far shorter.
const REGISTRY_PATH_CAPACITY: usize = 256;

/// Data written only at PASSIVE_LEVEL by DriverEntry/DriverUnload (serialised by the I/O manager) and
/// handed to wdfldr.sys by pointer.
struct LoaderCell<T>(UnsafeCell<T>);
// SAFETY: see the type's documentation: never accessed concurrently.
unsafe impl<T> Sync for LoaderCell<T> {}

static BIND_INFO: LoaderCell<WDF_BIND_INFO> = LoaderCell(UnsafeCell::new(WDF_BIND_INFO {
    Size: core::mem::size_of::<WDF_BIND_INFO>() as u32,
    Component: WDF_KMDF_COMPONENT_NAME.as_ptr(),
    Version: WDF_VERSION { Major: KMDF_VERSION_MAJOR, Minor: KMDF_VERSION_MINOR_1_31, Build: 0 },
    FuncCount: WdfFunctionTableNumEntries,
    FuncTable: core::ptr::null_mut(),
    Module: core::ptr::null_mut(),
}));
static REGISTRY_BUFFER: LoaderCell<[u16; REGISTRY_PATH_CAPACITY]> =
    LoaderCell(UnsafeCell::new([0; REGISTRY_PATH_CAPACITY]));
static REGISTRY_PATH: LoaderCell<UNICODE_STRING> = LoaderCell(UnsafeCell::new(UNICODE_STRING {
    Length: 0,
    MaximumLength: 0,
    Buffer: core::ptr::null_mut(),
}));

/// The framework's DDI table (`WdfFunctions`), filled by `WdfVersionBind`.
static FUNCTIONS: AtomicPtr<WDFFUNC> = AtomicPtr::new(core::ptr::null_mut());
/// `WdfDriverGlobals`, returned by `WdfVersionBind`.
static GLOBALS: AtomicPtr<WDF_DRIVER_GLOBALS> = AtomicPtr::new(core::ptr::null_mut());
/// The unload routine the framework installed, when we displace it.
static FRAMEWORK_UNLOAD: AtomicUsize = AtomicUsize::new(0);

/// Binds to KMDF. PASSIVE_LEVEL, from `DriverEntry`. Keeps a copy of the registry path for the unbind
/// (the I/O manager's string does not outlive `DriverEntry`).
///
/// # Safety
/// `driver` and `registry_path` are the arguments of `DriverEntry`; called once per load.
pub unsafe fn bind(driver: *mut DRIVER_OBJECT, registry_path: *const UNICODE_STRING) -> Result<(), NTSTATUS> {
    // SAFETY: the I/O manager's registry path is valid for the duration of DriverEntry.
    let source = unsafe { &*registry_path };
    let units = (usize::from(source.Length) / 2).min(REGISTRY_PATH_CAPACITY);
    // SAFETY: DriverEntry runs alone (type documentation), so nothing else accesses the buffer.
    let buffer = unsafe { &mut *REGISTRY_BUFFER.0.get() };
    if units > 0 {
        // SAFETY: the source buffer holds `Length` bytes (>= units UTF-16 units) and `buffer` has room for
        // `units` (clamped to its capacity); the two do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(source.Buffer, buffer.as_mut_ptr(), units) };
    }
    let bytes = u16::try_from(units * 2).unwrap_or(0);
    let path = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: buffer.as_mut_ptr() };
    // SAFETY: as above, DriverEntry runs alone.
    unsafe { *REGISTRY_PATH.0.get() = path };
    // SAFETY: as above; FuncTable points at FUNCTIONS, whose layout is that of a `*mut WDFFUNC`.
    unsafe { (*BIND_INFO.0.get()).FuncTable = FUNCTIONS.as_ptr().cast() };
    let mut globals: *mut WDF_DRIVER_GLOBALS = core::ptr::null_mut();
    let registry = REGISTRY_PATH.0.get();
    let bind_info = BIND_INFO.0.get();
    // SAFETY: PASSIVE_LEVEL; every pointer is valid and the bind info and path are static.
    let status = unsafe { WdfVersionBind(driver, registry, bind_info, &raw mut globals) };
    if !NT_SUCCESS(status) {
        return Err(status);
    }
    if globals.is_null() || FUNCTIONS.load(Ordering::Acquire).is_null() {
        // SAFETY: the bind succeeded, so it is undone once.
        unsafe { unbind() };
        return Err(STATUS_INVALID_DEVICE_STATE);
    }
    GLOBALS.store(globals, Ordering::Release);
    Ok(())
}

/// Undoes [`bind`]. PASSIVE_LEVEL.
///
/// # Safety
/// Only after a successful [`bind`], once.
pub unsafe fn unbind() {
    let globals = GLOBALS.swap(core::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: PASSIVE_LEVEL; the same static bind info and registry path as the bind.
    let _ = unsafe { WdfVersionUnbind(REGISTRY_PATH.0.get(), BIND_INFO.0.get(), globals) };
    FUNCTIONS.store(core::ptr::null_mut(), Ordering::Release);
}

/// The driver globals every DDI takes first.
pub fn globals() -> *mut WDF_DRIVER_GLOBALS {
    GLOBALS.load(Ordering::Acquire)
}

/// The DDI at `index` of the framework's table, if bound and present.
pub fn function(index: usize) -> WDFFUNC {
    let table = FUNCTIONS.load(Ordering::Acquire);
    if table.is_null() || index >= WdfFunctionTableNumEntries as usize {
        return None;
    }
    // SAFETY: the framework's table has WdfFunctionTableNumEntries entries (checked by the bind), so
    // `index` is in bounds and the entry is initialised.
    let entry = unsafe { table.add(index) };
    // SAFETY: as above.
    unsafe { entry.read() }
}

/// `WdfDriverCreate` with no object attributes. PASSIVE_LEVEL, from `DriverEntry`.
///
/// # Safety
/// `driver`/`registry_path` are DriverEntry's arguments; KMDF is bound.
pub unsafe fn driver_create(
    driver: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
    config: &mut WDF_DRIVER_CONFIG,
) -> Result<WDFDRIVER, NTSTATUS> {
    let entry = function(WdfDriverCreateTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot WdfDriverCreateTableIndex holds PFN_WDFDRIVERCREATE (wdffuncenum.h).
    let create: PFN_WDFDRIVERCREATE =
        unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDRIVERCREATE>(entry) };
    let mut handle: WDFDRIVER = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; pointers valid for the call.
    let status = unsafe {
        create(globals(), driver, registry_path, WDF_NO_OBJECT_ATTRIBUTES, config, &raw mut handle)
    };
    if NT_SUCCESS(status) {
        Ok(handle)
    } else {
        Err(status)
    }
}

/// After `WdfDriverCreate`: when the framework asks (`DisplaceDriverUnload`), installs our unload, which
/// calls the framework's and then unbinds; otherwise installs an unload that only unbinds.
///
/// # Safety
/// `driver` is DriverEntry's driver object; KMDF is bound.
pub unsafe fn displace_unload(driver: *mut DRIVER_OBJECT) {
    let globals = globals();
    // SAFETY: the framework's globals are valid while bound.
    let displace = !globals.is_null() && unsafe { (*globals).DisplaceDriverUnload } != 0;
    if displace {
        // SAFETY: the driver object is valid and writable during DriverEntry.
        if let Some(unload) = unsafe { (*driver).DriverUnload } {
            FRAMEWORK_UNLOAD.store(unload as usize, Ordering::Release);
        }
    }
    // SAFETY: as above.
    unsafe { (*driver).DriverUnload = Some(stub_unload) };
}

/// `DriverUnload` of a KMDF client: the framework's unload (which calls `EvtDriverUnload` and deletes the
/// WDFDRIVER), then the unbind. PASSIVE_LEVEL.
unsafe extern "system" fn stub_unload(driver: *mut DRIVER_OBJECT) {
    let saved = FRAMEWORK_UNLOAD.swap(0, Ordering::AcqRel);
    if saved != 0 {
        // SAFETY: `saved` is the framework's DRIVER_UNLOAD routine stored by displace_unload.
        let unload: unsafe extern "system" fn(*mut DRIVER_OBJECT) = unsafe { core::mem::transmute(saved) };
        // SAFETY: called once, at PASSIVE_LEVEL, with the driver object it was installed on.
        unsafe { unload(driver) };
    }
    // SAFETY: the driver bound in DriverEntry (displace_unload runs only after a bind).
    unsafe { unbind() };
}

/// The static `WDF_BIND_INFO` of the KMDF bind: class extensions bind against it
/// (`WdfVersionBindClass`, see [`crate::netcx`]). Read only by wdfldr.sys.
pub fn bind_info() -> *mut WDF_BIND_INFO {
    BIND_INFO.0.get()
}

/// `WdfDeviceCreate`. PASSIVE_LEVEL, from `EvtDriverDeviceAdd`. On success the framework owns the
/// init (the caller's pointer is nulled).
///
/// # Safety
/// `device_init` is the pointer `EvtDriverDeviceAdd` received; KMDF is bound.
pub unsafe fn device_create(
    device_init: &mut crate::ffi::wdf::PWDFDEVICE_INIT,
    attributes: Option<&mut crate::ffi::wdf::WDF_OBJECT_ATTRIBUTES>,
) -> Result<crate::ffi::wdf::WDFDEVICE, NTSTATUS> {
    use crate::ffi::wdf::{WdfDeviceCreateTableIndex, PFN_WDFDEVICECREATE};
    let entry = function(WdfDeviceCreateTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot WdfDeviceCreateTableIndex holds PFN_WDFDEVICECREATE (wdffuncenum.h).
    let create = unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDEVICECREATE>(entry) };
    let attributes = attributes.map_or(WDF_NO_OBJECT_ATTRIBUTES, |a| a as *mut _);
    let mut device: crate::ffi::wdf::WDFDEVICE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; pointers valid for the call.
    let status = unsafe { create(globals(), device_init, attributes, &raw mut device) };
    if NT_SUCCESS(status) {
        Ok(device)
    } else {
        Err(status)
    }
}

/// `WdfObjectGetTypedContextWorker`: the object's context of `type_info`, or null. Any IRQL.
///
/// # Safety
/// `object` is a live framework object; KMDF is bound.
pub unsafe fn object_context(
    object: crate::ffi::wdf::WDFOBJECT,
    type_info: &'static crate::ffi::wdf::WDF_OBJECT_CONTEXT_TYPE_INFO,
) -> *mut core::ffi::c_void {
    use crate::ffi::wdf::{WdfObjectGetTypedContextWorkerTableIndex, PFN_WDFOBJECTGETTYPEDCONTEXTWORKER};
    let Some(entry) = function(WdfObjectGetTypedContextWorkerTableIndex) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the slot holds PFN_WDFOBJECTGETTYPEDCONTEXTWORKER (wdffuncenum.h).
    let get = unsafe {
        core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFOBJECTGETTYPEDCONTEXTWORKER>(entry)
    };
    // SAFETY: the object is live (caller) and the type info static.
    unsafe { get(globals(), object, type_info) }
}

/// `WdfObjectDelete`. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `object` is a live framework object the driver may delete; KMDF is bound.
pub unsafe fn object_delete(object: crate::ffi::wdf::WDFOBJECT) {
    use crate::ffi::wdf::{WdfObjectDeleteTableIndex, PFN_WDFOBJECTDELETE};
    let Some(entry) = function(WdfObjectDeleteTableIndex) else { return };
    // SAFETY: the slot holds PFN_WDFOBJECTDELETE (wdffuncenum.h).
    let delete = unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFOBJECTDELETE>(entry) };
    // SAFETY: the object is live (caller).
    unsafe { delete(globals(), object) };
}

/// `WdfDeviceInitSetPnpPowerEventCallbacks`. PASSIVE_LEVEL, in `EvtDriverDeviceAdd` before
/// `WdfDeviceCreate`.
///
/// # Safety
/// `device_init` is the init `EvtDriverDeviceAdd` received; KMDF is bound.
pub unsafe fn device_init_set_pnp_power_callbacks(
    device_init: crate::ffi::wdf::PWDFDEVICE_INIT,
    callbacks: &mut crate::ffi::wdf::WDF_PNPPOWER_EVENT_CALLBACKS,
) {
    use crate::ffi::wdf::{
        WdfDeviceInitSetPnpPowerEventCallbacksTableIndex, PFN_WDFDEVICEINITSETPNPPOWEREVENTCALLBACKS,
    };
    let Some(entry) = function(WdfDeviceInitSetPnpPowerEventCallbacksTableIndex) else { return };
    // SAFETY: the slot holds PFN_WDFDEVICEINITSETPNPPOWEREVENTCALLBACKS (wdffuncenum.h).
    let set = unsafe {
        core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDEVICEINITSETPNPPOWEREVENTCALLBACKS>(entry)
    };
    // SAFETY: PASSIVE_LEVEL; the init is the framework's and the callbacks outlive the call.
    unsafe { set(globals(), device_init, callbacks) };
}

/// `WdfDeviceCreateSymbolicLink` (for example `\DosDevices\ovpn-dco`). PASSIVE_LEVEL.
///
/// # Safety
/// `device` is the driver's live WDFDEVICE; KMDF is bound.
pub unsafe fn device_create_symbolic_link(
    device: crate::ffi::wdf::WDFDEVICE,
    name: &UNICODE_STRING,
) -> Result<(), NTSTATUS> {
    use crate::ffi::wdf::{WdfDeviceCreateSymbolicLinkTableIndex, PFN_WDFDEVICECREATESYMBOLICLINK};
    let entry = function(WdfDeviceCreateSymbolicLinkTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: the slot holds PFN_WDFDEVICECREATESYMBOLICLINK (wdffuncenum.h).
    let create = unsafe {
        core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDEVICECREATESYMBOLICLINK>(entry)
    };
    // SAFETY: PASSIVE_LEVEL; the string outlives the call (the framework copies it).
    let status = unsafe { create(globals(), device, name) };
    if NT_SUCCESS(status) {
        Ok(())
    } else {
        Err(status)
    }
}

/// `WdfDeviceCreateDeviceInterface` without a reference string. PASSIVE_LEVEL.
///
/// # Safety
/// `device` is the driver's live WDFDEVICE; KMDF is bound.
pub unsafe fn device_create_device_interface(
    device: crate::ffi::wdf::WDFDEVICE,
    interface_class: &crate::ffi::oid::GUID,
) -> Result<(), NTSTATUS> {
    use crate::ffi::wdf::{WdfDeviceCreateDeviceInterfaceTableIndex, PFN_WDFDEVICECREATEDEVICEINTERFACE};
    let entry = function(WdfDeviceCreateDeviceInterfaceTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: the slot holds PFN_WDFDEVICECREATEDEVICEINTERFACE (wdffuncenum.h).
    let create = unsafe {
        core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDEVICECREATEDEVICEINTERFACE>(entry)
    };
    // SAFETY: PASSIVE_LEVEL; the GUID outlives the call.
    let status = unsafe { create(globals(), device, interface_class, core::ptr::null()) };
    if NT_SUCCESS(status) {
        Ok(())
    } else {
        Err(status)
    }
}
