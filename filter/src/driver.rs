//! `DriverEntry` and unload: registration with NDIS as a lightweight filter, and the control device.
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::ffi::ndis::{NDIS_HANDLE, NDIS_STATUS_SUCCESS};
use kernel::ffi::ndis_filter::{NdisFDeregisterFilterDriver, NdisFRegisterFilterDriver};
use kernel::ffi::ntos::{DRIVER_OBJECT, NTSTATUS, UNICODE_STRING};

use crate::{callbacks, control};

/// `NdisFilterDriverHandle` from registration; null while not registered. Written at PASSIVE_LEVEL by
/// `DriverEntry` and `DriverUnload` only.
static FILTER_DRIVER: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// `DriverEntry`: registers the filter with NDIS. PASSIVE_LEVEL, called once.
///
/// # Safety
/// `driver` must be the driver object the I/O manager passes; `registry_path` is not used.
pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
) -> NTSTATUS {
    // A freshly loaded image starts with the default hold policy; the host simulation keeps statics
    // across an unload and a reload, so store the defaults explicitly (no earlier SET survives a reload).
    crate::hold::set_policy(&crate::hold::DEFAULT_POLICY);
    let mut characteristics = callbacks::characteristics();
    let mut handle: NDIS_HANDLE = null_mut();
    // SAFETY: PASSIVE_LEVEL in DriverEntry; the characteristics live for the call (NDIS copies them),
    // their name strings are static, and `handle` is valid for writes.
    let status = unsafe {
        NdisFRegisterFilterDriver(driver, driver.cast(), &raw mut characteristics, &raw mut handle)
    };
    if status != NDIS_STATUS_SUCCESS {
        return status;
    }
    // The control device and its configuration; on failure unwind the filter registration (in reverse
    // order) so DriverEntry leaves nothing behind.
    let status = control::register(handle);
    if status != NDIS_STATUS_SUCCESS {
        // SAFETY: the handle registered above, deregistered once, at PASSIVE_LEVEL.
        unsafe { NdisFDeregisterFilterDriver(handle) };
        return status;
    }
    FILTER_DRIVER.store(handle, Ordering::Release);
    // SAFETY: the I/O manager's driver object is valid for writes during DriverEntry.
    unsafe { (*driver).DriverUnload = Some(driver_unload) };
    status
}

/// `DriverUnload`: deregisters the control device (completing any pended request and freeing the
/// configuration), then deregisters from NDIS, which detaches every module first. PASSIVE_LEVEL.
unsafe extern "system" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    control::deregister();
    let handle = FILTER_DRIVER.swap(null_mut(), Ordering::AcqRel);
    if !handle.is_null() {
        // SAFETY: `handle` is the registration handle from DriverEntry, deregistered once.
        unsafe { NdisFDeregisterFilterDriver(handle) };
    }
}
