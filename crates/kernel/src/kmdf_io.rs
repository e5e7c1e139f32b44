//! Typed wrappers over the KMDF I/O DDIs (queues, requests, file objects), called through the table
//! [`crate::kmdf`] bound. Each wrapper documents its IRQL; all need KMDF bound ([`crate::kmdf::bind`]).
//!
//! Request lifetime (KMDF "Request ownership"): a request presented to the driver by a queue callback
//! is the driver's until it completes it ([`request_complete`]) or forwards it to another queue of the
//! same device ([`request_forward`]); a request sitting in a manual queue is the framework's until
//! [`queue_retrieve_next`] hands it back. Using a request after completing it is a bug.
use core::ffi::c_void;

use crate::ffi::ntos::{BOOLEAN, NTSTATUS, NT_SUCCESS, STATUS_INVALID_DEVICE_STATE};
use crate::ffi::wdf::{
    WdfDeviceInitSetExclusiveTableIndex, WdfDeviceInitSetFileObjectConfigTableIndex,
    WdfDeviceInitSetIoTypeTableIndex, WdfIoQueueCreateTableIndex, WdfIoQueueRetrieveNextRequestTableIndex,
    WdfRequestCompleteWithInformationTableIndex, WdfRequestForwardToIoQueueTableIndex,
    WdfRequestGetFileObjectTableIndex, WdfRequestRetrieveInputBufferTableIndex,
    WdfRequestRetrieveOutputBufferTableIndex, PFN_WDFDEVICEINITSETEXCLUSIVE,
    PFN_WDFDEVICEINITSETFILEOBJECTCONFIG, PFN_WDFDEVICEINITSETIOTYPE, PFN_WDFIOQUEUECREATE,
    PFN_WDFIOQUEUERETRIEVENEXTREQUEST, PFN_WDFREQUESTCOMPLETEWITHINFORMATION, PFN_WDFREQUESTFORWARDTOIOQUEUE,
    PFN_WDFREQUESTGETFILEOBJECT, PFN_WDFREQUESTRETRIEVEBUFFER, PWDFDEVICE_INIT, WDFDEVICE, WDFFILEOBJECT,
    WDFQUEUE, WDFREQUEST, WDF_DEVICE_IO_TYPE, WDF_FILEOBJECT_CONFIG, WDF_IO_QUEUE_CONFIG,
    WDF_NO_OBJECT_ATTRIBUTES, WDF_OBJECT_ATTRIBUTES,
};
use crate::kmdf::{function, globals};

fn result(status: NTSTATUS) -> Result<(), NTSTATUS> {
    if NT_SUCCESS(status) {
        Ok(())
    } else {
        Err(status)
    }
}

/// `WdfDeviceInitSetExclusive`. PASSIVE_LEVEL, in `EvtDriverDeviceAdd` before `WdfDeviceCreate`.
///
/// # Safety
/// `init` is the `WDFDEVICE_INIT` `EvtDriverDeviceAdd` received; KMDF is bound.
pub unsafe fn device_init_set_exclusive(init: PWDFDEVICE_INIT, exclusive: bool) -> Result<(), NTSTATUS> {
    let entry = function(WdfDeviceInitSetExclusiveTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot 62 holds PFN_WDFDEVICEINITSETEXCLUSIVE (wdffuncenum.h).
    let set =
        unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDEVICEINITSETEXCLUSIVE>(entry) };
    // SAFETY: PASSIVE_LEVEL; the init is live (caller).
    unsafe { set(globals(), init, BOOLEAN::from(exclusive)) };
    Ok(())
}

/// `WdfDeviceInitSetIoType`. PASSIVE_LEVEL, before `WdfDeviceCreate`.
///
/// # Safety
/// As [`device_init_set_exclusive`].
pub unsafe fn device_init_set_io_type(
    init: PWDFDEVICE_INIT,
    io_type: WDF_DEVICE_IO_TYPE,
) -> Result<(), NTSTATUS> {
    let entry = function(WdfDeviceInitSetIoTypeTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot 61 holds PFN_WDFDEVICEINITSETIOTYPE (wdffuncenum.h).
    let set =
        unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDEVICEINITSETIOTYPE>(entry) };
    // SAFETY: PASSIVE_LEVEL; the init is live (caller).
    unsafe { set(globals(), init, io_type) };
    Ok(())
}

/// `WdfDeviceInitSetFileObjectConfig` without file object attributes. PASSIVE_LEVEL, before
/// `WdfDeviceCreate`.
///
/// # Safety
/// As [`device_init_set_exclusive`].
pub unsafe fn device_init_set_file_object_config(
    init: PWDFDEVICE_INIT,
    config: &mut WDF_FILEOBJECT_CONFIG,
) -> Result<(), NTSTATUS> {
    let entry = function(WdfDeviceInitSetFileObjectConfigTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot 71 holds PFN_WDFDEVICEINITSETFILEOBJECTCONFIG (wdffuncenum.h).
    let set = unsafe {
        core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDEVICEINITSETFILEOBJECTCONFIG>(entry)
    };
    // SAFETY: PASSIVE_LEVEL; the init is live and the config outlives the call (the framework copies it).
    unsafe { set(globals(), init, config, WDF_NO_OBJECT_ATTRIBUTES) };
    Ok(())
}

/// `WdfIoQueueCreate` (the queue's parent is the device; `attributes` may carry a cleanup callback,
/// run when the device is removed). IRQL <=
/// DISPATCH_LEVEL (PASSIVE_LEVEL in practice, after `WdfDeviceCreate`).
///
/// # Safety
/// `device` is the driver's live WDFDEVICE; KMDF is bound.
pub unsafe fn queue_create(
    device: WDFDEVICE,
    config: &mut WDF_IO_QUEUE_CONFIG,
    attributes: Option<&mut WDF_OBJECT_ATTRIBUTES>,
) -> Result<WDFQUEUE, NTSTATUS> {
    let attributes = attributes.map_or(WDF_NO_OBJECT_ATTRIBUTES, |a| a as *mut _);
    let entry = function(WdfIoQueueCreateTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot 152 holds PFN_WDFIOQUEUECREATE (wdffuncenum.h).
    let create = unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFIOQUEUECREATE>(entry) };
    let mut queue: WDFQUEUE = core::ptr::null_mut();
    // SAFETY: the device is live, the config and out pointer valid for the call.
    result(unsafe { create(globals(), device, config, attributes, &raw mut queue) })?;
    Ok(queue)
}

/// `WdfIoQueueRetrieveNextRequest`: the oldest request of a manual queue, now the driver's, or
/// `Err(STATUS_NO_MORE_ENTRIES)`. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `queue` is a live queue of the driver's; KMDF is bound.
pub unsafe fn queue_retrieve_next(queue: WDFQUEUE) -> Result<WDFREQUEST, NTSTATUS> {
    let entry = function(WdfIoQueueRetrieveNextRequestTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot 158 holds PFN_WDFIOQUEUERETRIEVENEXTREQUEST (wdffuncenum.h).
    let get = unsafe {
        core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFIOQUEUERETRIEVENEXTREQUEST>(entry)
    };
    let mut request: WDFREQUEST = core::ptr::null_mut();
    // SAFETY: the queue is live; the out pointer is valid.
    let status = unsafe { get(globals(), queue, &raw mut request) };
    // STATUS_NO_MORE_ENTRIES is a warning, not an error: check it explicitly.
    if status != 0 {
        return Err(status);
    }
    Ok(request)
}

/// `WdfRequestCompleteWithInformation` (`WdfRequestComplete` is this with the current information).
/// IRQL <= DISPATCH_LEVEL. The request is gone afterwards.
///
/// # Safety
/// `request` is a live request the driver owns; KMDF is bound.
pub unsafe fn request_complete(request: WDFREQUEST, status: NTSTATUS, information: usize) {
    let Some(entry) = function(WdfRequestCompleteWithInformationTableIndex) else { return };
    // SAFETY: slot 265 holds PFN_WDFREQUESTCOMPLETEWITHINFORMATION (wdffuncenum.h).
    let complete = unsafe {
        core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFREQUESTCOMPLETEWITHINFORMATION>(entry)
    };
    // SAFETY: the request is live and the driver's (caller).
    unsafe { complete(globals(), request, status, information) };
}

fn retrieve(index: usize, request: WDFREQUEST, minimum: usize) -> Result<(*mut u8, usize), NTSTATUS> {
    let entry = function(index).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slots 269/270 hold PFN_WDFREQUESTRETRIEVE{INPUT,OUTPUT}BUFFER (wdffuncenum.h).
    let get =
        unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFREQUESTRETRIEVEBUFFER>(entry) };
    let mut buffer: *mut c_void = core::ptr::null_mut();
    let mut length = 0usize;
    // SAFETY: the request is live (callers' contract); the out pointers are valid.
    result(unsafe { get(globals(), request, minimum, &raw mut buffer, &raw mut length) })?;
    Ok((buffer.cast(), length))
}

/// `WdfRequestRetrieveInputBuffer`: the request's input buffer (address, length). A buffer shorter
/// than `minimum` (or empty) is `STATUS_BUFFER_TOO_SMALL`. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `request` is a live request the driver owns; the buffer is valid until the request completes.
pub unsafe fn request_input_buffer(
    request: WDFREQUEST,
    minimum: usize,
) -> Result<(*mut u8, usize), NTSTATUS> {
    retrieve(WdfRequestRetrieveInputBufferTableIndex, request, minimum)
}

/// `WdfRequestRetrieveOutputBuffer`. As [`request_input_buffer`].
///
/// # Safety
/// As [`request_input_buffer`].
pub unsafe fn request_output_buffer(
    request: WDFREQUEST,
    minimum: usize,
) -> Result<(*mut u8, usize), NTSTATUS> {
    retrieve(WdfRequestRetrieveOutputBufferTableIndex, request, minimum)
}

/// `WdfRequestForwardToIoQueue`: hands a request the driver owns to another queue of the same device
/// (the framework owns it again). IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `request` is live and the driver's; `queue` a live queue of the same device.
pub unsafe fn request_forward(request: WDFREQUEST, queue: WDFQUEUE) -> Result<(), NTSTATUS> {
    let entry = function(WdfRequestForwardToIoQueueTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot 281 holds PFN_WDFREQUESTFORWARDTOIOQUEUE (wdffuncenum.h).
    let forward =
        unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFREQUESTFORWARDTOIOQUEUE>(entry) };
    // SAFETY: as the caller guarantees.
    result(unsafe { forward(globals(), request, queue) })
}

/// `WdfRequestGetFileObject`: the file object the request came through (null when none). IRQL <=
/// DISPATCH_LEVEL.
///
/// # Safety
/// `request` is live and the driver's.
pub unsafe fn request_file_object(request: WDFREQUEST) -> WDFFILEOBJECT {
    let Some(entry) = function(WdfRequestGetFileObjectTableIndex) else { return core::ptr::null_mut() };
    // SAFETY: slot 277 holds PFN_WDFREQUESTGETFILEOBJECT (wdffuncenum.h).
    let get =
        unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFREQUESTGETFILEOBJECT>(entry) };
    // SAFETY: as the caller guarantees.
    unsafe { get(globals(), request) }
}

/// `WdfDeviceCreateDeviceInterface` with a reference string (for example `ovpn-dco`). PASSIVE_LEVEL.
///
/// # Safety
/// `device` is the driver's live WDFDEVICE; KMDF is bound.
pub unsafe fn device_create_device_interface_ref(
    device: WDFDEVICE,
    interface_class: &crate::ffi::oid::GUID,
    reference: &crate::ffi::ntos::UNICODE_STRING,
) -> Result<(), NTSTATUS> {
    use crate::ffi::wdf::{WdfDeviceCreateDeviceInterfaceTableIndex, PFN_WDFDEVICECREATEDEVICEINTERFACE};
    let entry = function(WdfDeviceCreateDeviceInterfaceTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot 77 holds PFN_WDFDEVICECREATEDEVICEINTERFACE (wdffuncenum.h).
    let create = unsafe {
        core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDEVICECREATEDEVICEINTERFACE>(entry)
    };
    // SAFETY: PASSIVE_LEVEL; the GUID and string outlive the call (the framework copies them).
    result(unsafe { create(globals(), device, interface_class, reference) })
}

/// `WdfControlDeviceInitAllocate`: an init for a control (non-PnP) device with security descriptor
/// `sddl`. PASSIVE_LEVEL. Free it with [`device_init_free`] if `WdfDeviceCreate` does not take it.
///
/// # Safety
/// `driver` is the driver's WDFDRIVER; KMDF is bound.
pub unsafe fn control_device_init_allocate(
    driver: crate::ffi::wdf::WDFDRIVER,
    sddl: &crate::ffi::ntos::UNICODE_STRING,
) -> Result<PWDFDEVICE_INIT, NTSTATUS> {
    use crate::ffi::wdf::{WdfControlDeviceInitAllocateTableIndex, PFN_WDFCONTROLDEVICEINITALLOCATE};
    let entry = function(WdfControlDeviceInitAllocateTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot 25 holds PFN_WDFCONTROLDEVICEINITALLOCATE (wdffuncenum.h).
    let allocate = unsafe {
        core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFCONTROLDEVICEINITALLOCATE>(entry)
    };
    // SAFETY: PASSIVE_LEVEL; the string outlives the call.
    let init = unsafe { allocate(globals(), driver, sddl) };
    if init.is_null() {
        Err(crate::ffi::ntos::STATUS_INSUFFICIENT_RESOURCES)
    } else {
        Ok(init)
    }
}

/// `WdfDeviceInitAssignName` (`\Device\...`). PASSIVE_LEVEL, before `WdfDeviceCreate`.
///
/// # Safety
/// `init` is a live init of the driver's; KMDF is bound.
pub unsafe fn device_init_assign_name(
    init: PWDFDEVICE_INIT,
    name: &crate::ffi::ntos::UNICODE_STRING,
) -> Result<(), NTSTATUS> {
    use crate::ffi::wdf::{WdfDeviceInitAssignNameTableIndex, PFN_WDFDEVICEINITASSIGNNAME};
    let entry = function(WdfDeviceInitAssignNameTableIndex).ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // SAFETY: slot 67 holds PFN_WDFDEVICEINITASSIGNNAME (wdffuncenum.h).
    let assign =
        unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDEVICEINITASSIGNNAME>(entry) };
    // SAFETY: PASSIVE_LEVEL; the string outlives the call (the framework copies it).
    result(unsafe { assign(globals(), init, name) })
}

/// `WdfDeviceInitFree`: frees an init `WdfDeviceCreate` did not take. PASSIVE_LEVEL.
///
/// # Safety
/// `init` came from [`control_device_init_allocate`] and was not taken; KMDF is bound.
pub unsafe fn device_init_free(init: PWDFDEVICE_INIT) {
    use crate::ffi::wdf::{WdfDeviceInitFreeTableIndex, PFN_WDFDEVICEINITFREE};
    let Some(entry) = function(WdfDeviceInitFreeTableIndex) else { return };
    // SAFETY: slot 54 holds PFN_WDFDEVICEINITFREE (wdffuncenum.h).
    let free = unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDEVICEINITFREE>(entry) };
    // SAFETY: as the caller guarantees.
    unsafe { free(globals(), init) };
}

/// `WdfControlFinishInitializing`. PASSIVE_LEVEL, after the control device's queues and link exist.
///
/// # Safety
/// `device` is the driver's live control device; KMDF is bound.
pub unsafe fn control_finish_initializing(device: WDFDEVICE) {
    use crate::ffi::wdf::{WdfControlFinishInitializingTableIndex, PFN_WDFCONTROLFINISHINITIALIZING};
    let Some(entry) = function(WdfControlFinishInitializingTableIndex) else { return };
    // SAFETY: slot 27 holds PFN_WDFCONTROLFINISHINITIALIZING (wdffuncenum.h).
    let finish = unsafe {
        core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFCONTROLFINISHINITIALIZING>(entry)
    };
    // SAFETY: as the caller guarantees.
    unsafe { finish(globals(), device) };
}
