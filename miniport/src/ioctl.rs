//! The control device glue (stub; replaced by the control glue at merge).
//!
//! The data-path branch only needs the two calls `EvtDriverDeviceAdd` makes; the real module creates the
//! control device's queue, symbolic link and interface and routes the IOCTLs to
//! [`crate::control::Tunnel::ioctl`], applying their effects through [`crate::transport::apply`].
use kernel::ffi::ntos::NTSTATUS;
use kernel::ffi::wdf::{PWDFDEVICE_INIT, WDFDEVICE};

use crate::device::DeviceContext;

/// Called before `WdfDeviceCreate` (stub; replaced by the control glue). PASSIVE_LEVEL.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn init_device(_device_init: PWDFDEVICE_INIT) -> Result<(), NTSTATUS> {
    Ok(())
}

/// Called after `WdfDeviceCreate` (stub; replaced by the control glue). PASSIVE_LEVEL.
#[allow(clippy::unnecessary_wraps)]
pub(crate) fn create(_device: WDFDEVICE, _context: &'static DeviceContext) -> Result<(), NTSTATUS> {
    Ok(())
}
