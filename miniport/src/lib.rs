//! rdco's NetAdapterCx tunnel miniport (see `docs/miniport.md` and `shared/design.md`).
//!
//! The driver binds KMDF through the project's own version-binding stub ([`kernel::kmdf`]), creates its
//! WDFDRIVER, and in `EvtDriverDeviceAdd` ([`device`]) creates the device with the ovpn-dco-win control
//! device ([`ioctl`]). The adapter and the data path come with the adapter's `device.rs`.
#![no_std]

pub mod control;
mod device;
pub mod ioctl;

use kernel::ffi::ntos::{DRIVER_OBJECT, NTSTATUS, STATUS_SUCCESS, UNICODE_STRING};
use kernel::ffi::wdf::WDF_DRIVER_CONFIG;
use kernel::kmdf;

/// Pool tag KMDF uses for this driver's framework allocations: 'rdMp'.
const DRIVER_POOL_TAG: u32 = u32::from_le_bytes(*b"rdMp");

/// `DriverEntry`: binds KMDF, creates the WDFDRIVER. PASSIVE_LEVEL, called once.
///
/// # Safety
/// Called by the I/O manager (or the simulated kernel) with a valid driver object and registry path.
pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: DriverEntry's own arguments, once per load.
    if let Err(status) = unsafe { kmdf::bind(driver, registry_path) } {
        return status;
    }
    let mut config = WDF_DRIVER_CONFIG::init(Some(device::evt_device_add));
    config.DriverPoolTag = DRIVER_POOL_TAG;
    config.EvtDriverUnload = Some(evt_driver_unload);
    // SAFETY: bound above; DriverEntry's arguments.
    match unsafe { kmdf::driver_create(driver, registry_path, &mut config) } {
        Ok(wdfdriver) => {
            // SAFETY: bound, and the WDFDRIVER exists.
            unsafe { kmdf::displace_unload(driver) };
            // Without it only `rdco dco version`-style queries fail; the adapter works: not fatal.
            let _ = ioctl::create_version_device(wdfdriver);
            STATUS_SUCCESS
        }
        Err(status) => {
            // SAFETY: the bind succeeded and nothing else holds the framework.
            unsafe { kmdf::unbind() };
            status
        }
    }
}

/// `EvtDriverUnload`: deletes the version control device. PASSIVE_LEVEL.
unsafe extern "system" fn evt_driver_unload(_driver: kernel::ffi::wdf::WDFDRIVER) {
    ioctl::delete_version_device();
}

/// The image's entry point on Windows; the host calls [`driver_entry`] directly.
///
/// # Safety
/// As for [`driver_entry`].
#[cfg(target_os = "windows")]
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: forwarded from the I/O manager unchanged.
    unsafe { driver_entry(driver, registry_path) }
}
