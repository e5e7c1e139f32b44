//! MINIMAL; REPLACED AT MERGE BY THE ADAPTER'S device.rs (issue 6: the NetAdapterCx device and adapter
//! are another engineer's part). It exists so the control device's glue ([`crate::ioctl`]) can be built
//! and tested: `EvtDriverDeviceAdd` creates the WDFDEVICE with a [`DeviceContext`] holding the tunnel,
//! and calls [`crate::ioctl::init_device`] and [`crate::ioctl::create`]. No adapter is created.
use core::mem::size_of;

use kernel::ffi::ntos::NTSTATUS;
use kernel::ffi::wdf::{
    PWDFDEVICE_INIT, WDFDRIVER, WDFOBJECT, WDF_OBJECT_ATTRIBUTES, WDF_OBJECT_CONTEXT_TYPE_INFO,
};
use kernel::kmdf;
use kernel::sync::SpinLock;

use crate::control::Tunnel;

/// The WDFDEVICE's context.
pub(crate) struct DeviceContext {
    /// The control API's state; the control device's queue callbacks and the data path take it.
    pub(crate) tunnel: SpinLock<Tunnel>,
}

/// `WDF_DECLARE_CONTEXT_TYPE(DeviceContext)`: read-only after link time.
struct ContextType(WDF_OBJECT_CONTEXT_TYPE_INFO);
// SAFETY: the pointers inside are to static data and never written.
unsafe impl Sync for ContextType {}

static CONTEXT_TYPE: ContextType = ContextType(WDF_OBJECT_CONTEXT_TYPE_INFO {
    Size: size_of::<WDF_OBJECT_CONTEXT_TYPE_INFO>() as u32,
    ContextName: c"DeviceContext".as_ptr().cast(),
    ContextSize: size_of::<DeviceContext>(),
    UniqueType: core::ptr::null(),
    EvtDriverGetUniqueContextType: core::ptr::null(),
});

/// `EvtDriverDeviceAdd`. PASSIVE_LEVEL. The tunnel is built before `WdfDeviceCreate` and moved into the
/// context right after it, so the context is initialized whenever its cleanup can run.
pub(crate) unsafe extern "system" fn evt_device_add(
    _driver: WDFDRIVER,
    mut init: PWDFDEVICE_INIT,
) -> NTSTATUS {
    match device_add(&mut init) {
        Ok(()) => 0,
        Err(status) => status,
    }
}

fn device_add(init: &mut PWDFDEVICE_INIT) -> Result<(), NTSTATUS> {
    crate::ioctl::init_device(*init)?;
    let tunnel = Tunnel::new()?;
    let mut attributes = WDF_OBJECT_ATTRIBUTES::init();
    attributes.ContextTypeInfo = &CONTEXT_TYPE.0;
    attributes.EvtCleanupCallback = Some(evt_device_cleanup);
    // SAFETY: the init EvtDriverDeviceAdd received; KMDF is bound.
    let device = unsafe { kmdf::device_create(init, Some(&mut attributes)) }?;
    // SAFETY: the device was created with this context type.
    let context = unsafe { kmdf::object_context(device, &CONTEXT_TYPE.0) }.cast::<DeviceContext>();
    if context.is_null() {
        return Err(kernel::ffi::ntos::STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: the framework's zeroed, suitably sized and aligned context, written once here and
    // dropped in evt_device_cleanup.
    unsafe { context.write(DeviceContext { tunnel: SpinLock::new(tunnel) }) };
    // SAFETY: the context lives until the device's cleanup callback, after every queue of the device.
    crate::ioctl::create(device, unsafe { &*context })
}

/// The WDFDEVICE's `EvtCleanupCallback`: drops the context (its queues are gone). PASSIVE_LEVEL.
unsafe extern "system" fn evt_device_cleanup(device: WDFOBJECT) {
    // SAFETY: the device was created with this context type.
    let context = unsafe { kmdf::object_context(device, &CONTEXT_TYPE.0) }.cast::<DeviceContext>();
    if !context.is_null() {
        // SAFETY: written in device_add right after WdfDeviceCreate; dropped once, here.
        unsafe { core::ptr::drop_in_place(context) };
    }
}
