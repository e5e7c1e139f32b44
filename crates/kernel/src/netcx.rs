//! The project's own NetAdapterCx class-binding stub (what the WDK's NetAdapterCx stub library does
//! for class `"NetAdapterCx"` 2.x) and typed wrappers for the class DDIs a client calls through
//! `NetFunctions` by index (`crate::ffi::netcx`).
//!
//! Binding (microsoft/Network-Adapter-Class-Extension `netcx/adapter/version.cpp`,
//! `NetAdapterCxBindClient`): after [`crate::kmdf::bind`], [`bind_class`] calls
//! `WdfVersionBindClass(&BindInfo, WdfDriverGlobals, &ClassBindInfo)` with a static
//! `WDF_CLASS_BIND_INFO { Size = 80, ClassName = L"NetAdapterCx", Version = {2, 2, 0},
//! FunctionTable = NetFunctions, FunctionTableCount = NetFunctionTableNumEntries,
//! ClassBindInfo = &NetDriverGlobals }`; the class extension copies its table into `NetFunctions`
//! and stores the client's `NET_DRIVER_GLOBALS*` in `NetDriverGlobals`. [`unbind_class`]
//! (`WdfVersionUnbindClass`) runs in `EvtDriverUnload`, before the KMDF unbind.
//!
//! Both run at PASSIVE_LEVEL in DriverEntry/unload, which the I/O manager serialises; the statics
//! are written only there.
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::ffi::netcx::*;
use crate::ffi::ntos::{NTSTATUS, NT_SUCCESS, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_STATE};
use crate::ffi::wdf::{
    WdfVersionBindClass, WdfVersionUnbindClass, PWDFDEVICE_INIT, WDFDEVICE, WDF_CLASS_BIND_INFO,
    WDF_NO_OBJECT_ATTRIBUTES, WDF_OBJECT_ATTRIBUTES, WDF_VERSION,
};

/// Data written only at PASSIVE_LEVEL by DriverEntry/unload (serialised by the I/O manager).
struct LoaderCell<T>(UnsafeCell<T>);
// SAFETY: see the type's documentation: never accessed concurrently.
unsafe impl<T> Sync for LoaderCell<T> {}

const TABLE_LEN: usize = NetFunctionTableNumEntries as usize;

/// `NetFunctions`: filled by the class extension at bind.
static NET_FUNCTIONS: LoaderCell<[NETFUNC; TABLE_LEN]> = LoaderCell(UnsafeCell::new([None; TABLE_LEN]));
/// `NetDriverGlobals`: stored by the class extension through `ClassBindInfo`.
static NET_DRIVER_GLOBALS_PTR: AtomicPtr<NET_DRIVER_GLOBALS> = AtomicPtr::new(core::ptr::null_mut());
static CLASS_BIND_INFO: LoaderCell<WDF_CLASS_BIND_INFO> = LoaderCell(UnsafeCell::new(WDF_CLASS_BIND_INFO {
    Size: core::mem::size_of::<WDF_CLASS_BIND_INFO>() as u32,
    ClassName: NETADAPTERCX_CLASS_NAME.as_ptr(),
    Version: WDF_VERSION { Major: NETCX_ADAPTER_MAJOR_VERSION, Minor: NETCX_ADAPTER_MINOR_VERSION, Build: 0 },
    FunctionTable: core::ptr::null_mut(),
    FunctionTableCount: NetFunctionTableNumEntries,
    ClassBindInfo: core::ptr::null_mut(),
    ClientBindClass: None,
    ClientUnbindClass: None,
    ClassModule: core::ptr::null_mut(),
}));

/// Binds NetAdapterCx 2.2. PASSIVE_LEVEL, from `DriverEntry`, after [`crate::kmdf::bind`].
///
/// # Safety
/// Called once per load, from DriverEntry, with KMDF bound.
pub unsafe fn bind_class() -> Result<(), NTSTATUS> {
    let info = CLASS_BIND_INFO.0.get();
    // SAFETY: DriverEntry runs alone (LoaderCell); `FunctionTable` points at NetFunctions, an
    // array of `NetFunctionTableNumEntries` entries, as the class extension expects.
    unsafe { (*info).FunctionTable = NET_FUNCTIONS.0.get().cast() };
    // SAFETY: as above; ClassBindInfo is the address of NetDriverGlobals.
    unsafe { (*info).ClassBindInfo = NET_DRIVER_GLOBALS_PTR.as_ptr().cast() };
    // SAFETY: PASSIVE_LEVEL; KMDF is bound, its bind info and globals are valid; `info` is static.
    let status = unsafe { WdfVersionBindClass(crate::kmdf::bind_info(), crate::kmdf::globals(), info) };
    if !NT_SUCCESS(status) {
        return Err(status);
    }
    if function(NetAdapterCreateTableIndex).is_none() {
        // SAFETY: the bind succeeded, so it is undone once.
        unsafe { unbind_class() };
        return Err(STATUS_INVALID_DEVICE_STATE);
    }
    Ok(())
}

/// Undoes [`bind_class`]. PASSIVE_LEVEL, from `EvtDriverUnload` (before the KMDF unbind).
///
/// # Safety
/// Only after a successful [`bind_class`], once.
pub unsafe fn unbind_class() {
    // SAFETY: PASSIVE_LEVEL; the same static class bind info as the bind.
    unsafe {
        WdfVersionUnbindClass(crate::kmdf::bind_info(), crate::kmdf::globals(), CLASS_BIND_INFO.0.get())
    };
    NET_DRIVER_GLOBALS_PTR.store(core::ptr::null_mut(), Ordering::Release);
}

/// The class entry at `index`, if bound and present.
pub fn function(index: usize) -> NETFUNC {
    if index >= TABLE_LEN || NET_DRIVER_GLOBALS_PTR.load(Ordering::Acquire).is_null() {
        return None;
    }
    // SAFETY: the table is written only during the bind (DriverEntry), before any other reader.
    unsafe { (*NET_FUNCTIONS.0.get())[index] }
}

fn globals() -> *mut NET_DRIVER_GLOBALS {
    NET_DRIVER_GLOBALS_PTR.load(Ordering::Acquire)
}

/// Looks up slot `$index` and casts it to `$pfn`, or returns `$missing`.
macro_rules! ddi {
    ($index:expr, $pfn:ty) => {{
        let Some(entry) = function($index) else { return };
        // SAFETY: slot `$index` of the NetAdapterCx 2.2 table holds `$pfn` (netfuncenum.h and the
        // matching header prototype); both are `extern "system"` function pointers.
        unsafe { core::mem::transmute::<unsafe extern "system" fn(), $pfn>(entry) }
    }};
    ($index:expr, $pfn:ty, $missing:expr) => {{
        let Some(entry) = function($index) else { return $missing };
        // SAFETY: slot `$index` of the NetAdapterCx 2.2 table holds `$pfn` (netfuncenum.h and the
        // matching header prototype); both are `extern "system"` function pointers.
        unsafe { core::mem::transmute::<unsafe extern "system" fn(), $pfn>(entry) }
    }};
}

/// `NetDeviceInitConfig`. PASSIVE_LEVEL, in `EvtDriverDeviceAdd` before `WdfDeviceCreate`.
///
/// # Safety
/// `init` is the `WDFDEVICE_INIT` the framework passed to `EvtDriverDeviceAdd`.
pub unsafe fn device_init_config(init: PWDFDEVICE_INIT) -> Result<(), NTSTATUS> {
    let f = ddi!(NetDeviceInitConfigTableIndex, PFN_NETDEVICEINITCONFIG, Err(STATUS_INVALID_DEVICE_STATE));
    // SAFETY: PASSIVE_LEVEL; the init is the framework's (caller).
    let status = unsafe { f(globals(), init) };
    if NT_SUCCESS(status) {
        Ok(())
    } else {
        Err(status)
    }
}

/// `NetAdapterInitAllocate` + `NetAdapterInitSetDatapathCallbacks` + `NetAdapterCreate` +
/// `NetAdapterInitFree` (the init is freed on every path). PASSIVE_LEVEL.
///
/// # Safety
/// `device` is a WDFDEVICE created by this driver.
pub unsafe fn adapter_create(
    device: WDFDEVICE,
    callbacks: &mut NET_ADAPTER_DATAPATH_CALLBACKS,
    attributes: Option<&mut WDF_OBJECT_ATTRIBUTES>,
) -> Result<NETADAPTER, NTSTATUS> {
    let alloc =
        ddi!(NetAdapterInitAllocateTableIndex, PFN_NETADAPTERINITALLOCATE, Err(STATUS_INVALID_DEVICE_STATE));
    let set = ddi!(
        NetAdapterInitSetDatapathCallbacksTableIndex,
        PFN_NETADAPTERINITSETDATAPATHCALLBACKS,
        Err(STATUS_INVALID_DEVICE_STATE)
    );
    let create = ddi!(NetAdapterCreateTableIndex, PFN_NETADAPTERCREATE, Err(STATUS_INVALID_DEVICE_STATE));
    let free = ddi!(NetAdapterInitFreeTableIndex, PFN_NETADAPTERINITFREE, Err(STATUS_INVALID_DEVICE_STATE));
    // SAFETY: PASSIVE_LEVEL; the device is the driver's (caller).
    let init = unsafe { alloc(globals(), device) };
    if init.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: `init` was just allocated; the callbacks outlive the call.
    unsafe { set(globals(), init, callbacks) };
    let attributes = attributes.map_or(WDF_NO_OBJECT_ATTRIBUTES, |a| a as *mut _);
    let mut adapter: NETADAPTER = core::ptr::null_mut();
    // SAFETY: `init` is live; out pointer valid.
    let status = unsafe { create(globals(), init, attributes, &raw mut adapter) };
    // SAFETY: the init is freed once whatever NetAdapterCreate returned (netadapter.h remarks).
    unsafe { free(globals(), init) };
    if NT_SUCCESS(status) {
        Ok(adapter)
    } else {
        Err(status)
    }
}

/// `NetAdapterSetDataPathCapabilities`. PASSIVE_LEVEL, before `NetAdapterStart`.
///
/// # Safety
/// `adapter` is the driver's live adapter.
pub unsafe fn set_datapath_capabilities(
    adapter: NETADAPTER,
    tx: &mut NET_ADAPTER_TX_CAPABILITIES,
    rx: &mut NET_ADAPTER_RX_CAPABILITIES,
) {
    let f = ddi!(NetAdapterSetDataPathCapabilitiesTableIndex, PFN_NETADAPTERSETDATAPATHCAPABILITIES);
    // SAFETY: PASSIVE_LEVEL; the structures outlive the call.
    unsafe { f(globals(), adapter, tx, rx) };
}

/// `NetAdapterSetLinkLayerCapabilities`. PASSIVE_LEVEL.
///
/// # Safety
/// `adapter` is the driver's live adapter.
pub unsafe fn set_link_layer_capabilities(
    adapter: NETADAPTER,
    caps: &mut NET_ADAPTER_LINK_LAYER_CAPABILITIES,
) {
    let f = ddi!(NetAdapterSetLinkLayerCapabilitiesTableIndex, PFN_NETADAPTERSETLINKLAYERCAPABILITIES);
    // SAFETY: PASSIVE_LEVEL; the structure outlives the call.
    unsafe { f(globals(), adapter, caps) };
}

/// `NetAdapterSetLinkLayerMtuSize`. PASSIVE_LEVEL.
///
/// # Safety
/// `adapter` is the driver's live adapter.
pub unsafe fn set_mtu(adapter: NETADAPTER, mtu: u32) {
    let f = ddi!(NetAdapterSetLinkLayerMtuSizeTableIndex, PFN_NETADAPTERSETLINKLAYERMTUSIZE);
    // SAFETY: PASSIVE_LEVEL.
    unsafe { f(globals(), adapter, mtu) };
}

/// `NetAdapterSetLinkState`. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `adapter` is the driver's live adapter.
pub unsafe fn set_link_state(adapter: NETADAPTER, state: &mut NET_ADAPTER_LINK_STATE) {
    let f = ddi!(NetAdapterSetLinkStateTableIndex, PFN_NETADAPTERSETLINKSTATE);
    // SAFETY: the structure outlives the call.
    unsafe { f(globals(), adapter, state) };
}

/// `NetAdapterStart`. PASSIVE_LEVEL.
///
/// # Safety
/// `adapter` is the driver's live adapter.
pub unsafe fn adapter_start(adapter: NETADAPTER) -> Result<(), NTSTATUS> {
    let f = ddi!(NetAdapterStartTableIndex, PFN_NETADAPTERSTART, Err(STATUS_INVALID_DEVICE_STATE));
    // SAFETY: PASSIVE_LEVEL.
    let status = unsafe { f(globals(), adapter) };
    if NT_SUCCESS(status) {
        Ok(())
    } else {
        Err(status)
    }
}

/// `NetAdapterStop`. PASSIVE_LEVEL.
///
/// # Safety
/// `adapter` is the driver's live, started adapter.
pub unsafe fn adapter_stop(adapter: NETADAPTER) {
    let f = ddi!(NetAdapterStopTableIndex, PFN_NETADAPTERSTOP);
    // SAFETY: PASSIVE_LEVEL.
    unsafe { f(globals(), adapter) };
}

/// Which side of the data path a queue call is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Tx,
    Rx,
}

/// `NetTxQueueCreate` / `NetRxQueueCreate`. PASSIVE_LEVEL, inside `EvtAdapterCreate{Tx,Rx}Queue`.
///
/// # Safety
/// `init` is the queue init the framework passed to the create callback.
pub unsafe fn queue_create(
    direction: Direction,
    init: *mut c_void,
    attributes: Option<&mut WDF_OBJECT_ATTRIBUTES>,
    config: &mut NET_PACKET_QUEUE_CONFIG,
) -> Result<NETPACKETQUEUE, NTSTATUS> {
    let f = match direction {
        Direction::Tx => {
            ddi!(NetTxQueueCreateTableIndex, PFN_NETTXQUEUECREATE, Err(STATUS_INVALID_DEVICE_STATE))
        }
        Direction::Rx => {
            ddi!(NetRxQueueCreateTableIndex, PFN_NETRXQUEUECREATE, Err(STATUS_INVALID_DEVICE_STATE))
        }
    };
    let attributes = attributes.map_or(WDF_NO_OBJECT_ATTRIBUTES, |a| a as *mut _);
    let mut queue: NETPACKETQUEUE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; pointers valid for the call.
    let status = unsafe { f(globals(), init, attributes, config, &raw mut queue) };
    if NT_SUCCESS(status) {
        Ok(queue)
    } else {
        Err(status)
    }
}

/// `Net{Tx,Rx}QueueGetRingCollection`. PASSIVE_LEVEL (call it once, in the create callback).
///
/// # Safety
/// `queue` is the driver's live queue of `direction`.
pub unsafe fn ring_collection(direction: Direction, queue: NETPACKETQUEUE) -> *const NET_RING_COLLECTION {
    let f = match direction {
        Direction::Tx => {
            ddi!(NetTxQueueGetRingCollectionTableIndex, PFN_NETQUEUEGETRINGCOLLECTION, core::ptr::null())
        }
        Direction::Rx => {
            ddi!(NetRxQueueGetRingCollectionTableIndex, PFN_NETQUEUEGETRINGCOLLECTION, core::ptr::null())
        }
    };
    // SAFETY: PASSIVE_LEVEL; live queue.
    unsafe { f(globals(), queue) }
}

/// `Net{Tx,Rx}QueueGetExtension`: an enabled extension, or `None`. PASSIVE_LEVEL.
#[allow(clippy::question_mark)]
///
/// # Safety
/// `queue` is the driver's live queue of `direction`; `name` is NUL-terminated.
pub unsafe fn extension(
    direction: Direction,
    queue: NETPACKETQUEUE,
    name: &'static [u16],
    version: u32,
    ty: NET_EXTENSION_TYPE,
) -> Option<NET_EXTENSION> {
    let f = match direction {
        Direction::Tx => ddi!(NetTxQueueGetExtensionTableIndex, PFN_NETQUEUEGETEXTENSION, None),
        Direction::Rx => ddi!(NetRxQueueGetExtensionTableIndex, PFN_NETQUEUEGETEXTENSION, None),
    };
    let query = NET_EXTENSION_QUERY::init(name.as_ptr(), version, ty);
    let mut ext = NET_EXTENSION::empty();
    // SAFETY: PASSIVE_LEVEL; the query and the output outlive the call.
    unsafe { f(globals(), queue, &query, &raw mut ext) };
    ext.enabled().then_some(ext)
}

/// `NetRxQueueNotifyMoreReceivedPacketsAvailable` / `NetTxQueueNotifyMoreCompletedPacketsAvailable`.
/// Any IRQL; only while the framework has notification enabled.
///
/// # Safety
/// `queue` is the driver's live queue of `direction`.
pub unsafe fn notify(direction: Direction, queue: NETPACKETQUEUE) {
    let f = match direction {
        Direction::Tx => {
            ddi!(NetTxQueueNotifyMoreCompletedPacketsAvailableTableIndex, PFN_NETQUEUENOTIFY)
        }
        Direction::Rx => ddi!(NetRxQueueNotifyMoreReceivedPacketsAvailableTableIndex, PFN_NETQUEUENOTIFY),
    };
    // SAFETY: live queue.
    unsafe { f(globals(), queue) };
}
