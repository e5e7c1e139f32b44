//! Deliberately broken test drivers: each breaks exactly one verifier rule, so the verifier suite can
//! require that exactly that rule fires. They use the kernel bindings the way the real drivers do.
#![allow(clippy::missing_safety_doc)]

use core::ffi::c_void;

use kernel::ffi::ntos::{
    ExAllocatePool2, ExFreePoolWithTag, KeAcquireSpinLockAtDpcLevel, KeAcquireSpinLockRaiseToDpc,
    KeReleaseSpinLock, KeReleaseSpinLockFromDpcLevel, DISPATCH_LEVEL, DRIVER_OBJECT, KSPIN_LOCK, NTSTATUS,
    POOL_FLAG_NON_PAGED, STATUS_SUCCESS, UNICODE_STRING,
};

/// The tag the broken drivers allocate with.
pub const TAG: u32 = u32::from_le_bytes(*b"brkn");

unsafe extern "system" fn unload_nothing(_driver: *mut DRIVER_OBJECT) {}

/// Sets the do-nothing unload routine so the machine can unload the driver.
unsafe fn set_unload(driver: *mut DRIVER_OBJECT) {
    // SAFETY: the I/O manager passes a valid driver object to DriverEntry.
    unsafe { (*driver).DriverUnload = Some(unload_nothing) };
}

macro_rules! broken_driver {
    ($(#[$doc:meta])* $name:ident, |$driver:ident| $body:block) => {
        $(#[$doc])*
        pub unsafe extern "system" fn $name($driver: *mut DRIVER_OBJECT, _registry: *mut UNICODE_STRING) -> NTSTATUS {
            // SAFETY: called by the simulated I/O manager with a valid driver object.
            unsafe { set_unload($driver) };
            #[allow(unreachable_code)]
            {
                $body
                STATUS_SUCCESS
            }
        }
    };
}

broken_driver!(
    /// Allocates in DriverEntry and never frees: `pool.leak_at_unload`.
    leaks_pool,
    |driver| {
        // SAFETY: PASSIVE_LEVEL, valid tag; the block is deliberately leaked.
        let _ = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 100, TAG) };
    }
);

broken_driver!(
    /// Allocates with tag 0: `pool.tag_required`.
    untagged_pool,
    |driver| {
        // SAFETY: PASSIVE_LEVEL; the block is freed with the same (invalid) tag.
        let p = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 16, 0) };
        // SAFETY: `p` is the block just allocated, freed once with its tag.
        unsafe { ExFreePoolWithTag(p, 0) };
    }
);

broken_driver!(
    /// Frees the same block twice: `pool.free_unknown`.
    double_free,
    |driver| {
        // SAFETY: PASSIVE_LEVEL, valid tag.
        let p = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 16, TAG) };
        // SAFETY: the first free is legal.
        unsafe { ExFreePoolWithTag(p, TAG) };
        // SAFETY: deliberately illegal; the simulation validates the pointer and refuses the free.
        unsafe { ExFreePoolWithTag(p, TAG) };
    }
);

broken_driver!(
    /// Frees with another tag: `pool.free_wrong_tag` (then frees correctly, so nothing leaks).
    wrong_tag_free,
    |driver| {
        // SAFETY: PASSIVE_LEVEL, valid tag.
        let p: *mut c_void = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 16, TAG) };
        // SAFETY: deliberately wrong tag; the simulation refuses the free.
        unsafe { ExFreePoolWithTag(p, u32::from_le_bytes(*b"othr")) };
        // SAFETY: the block is still live; freed with its own tag.
        unsafe { ExFreePoolWithTag(p, TAG) };
    }
);

broken_driver!(
    /// Releases a lock it never acquired: `spinlock.release_not_held`.
    release_unheld_lock,
    |driver| {
        let mut lock: KSPIN_LOCK = 0;
        // SAFETY: deliberately illegal; the lock word is valid memory.
        unsafe { KeReleaseSpinLock(&raw mut lock, 0) };
    }
);

broken_driver!(
    /// Acquires a lock it already holds: `spinlock.recursive`.
    recursive_lock,
    |driver| {
        let mut lock: KSPIN_LOCK = 0;
        // SAFETY: valid lock word at PASSIVE_LEVEL.
        let old = unsafe { KeAcquireSpinLockRaiseToDpc(&raw mut lock) };
        // SAFETY: deliberately illegal (a deadlock on real hardware); the simulation records and skips it.
        unsafe { KeAcquireSpinLockAtDpcLevel(&raw mut lock) };
        // SAFETY: releases the first acquisition.
        unsafe { KeReleaseSpinLock(&raw mut lock, old) };
    }
);

broken_driver!(
    /// Uses the DPC-level lock calls at PASSIVE_LEVEL: `spinlock.at_dpc_level_irql`.
    dpc_level_lock_at_passive,
    |driver| {
        let mut lock: KSPIN_LOCK = 0;
        // SAFETY: deliberately at the wrong IRQL; the lock word is valid.
        unsafe { KeAcquireSpinLockAtDpcLevel(&raw mut lock) };
        // SAFETY: as above.
        unsafe { KeReleaseSpinLockFromDpcLevel(&raw mut lock) };
    }
);

broken_driver!(
    /// Returns from DriverEntry still holding a lock (at the right IRQL): `spinlock.held_on_return`.
    returns_holding_lock,
    |driver| {
        let mut outer: KSPIN_LOCK = 0;
        let inner = Box::leak(Box::new(0 as KSPIN_LOCK));
        // SAFETY: valid lock words at PASSIVE_LEVEL.
        let old = unsafe { KeAcquireSpinLockRaiseToDpc(&raw mut outer) };
        // SAFETY: at DISPATCH_LEVEL now.
        unsafe { KeAcquireSpinLockAtDpcLevel(inner) };
        // SAFETY: releases `outer` and returns to PASSIVE_LEVEL, deliberately still holding `inner`.
        unsafe { KeReleaseSpinLock(&raw mut outer, old) };
    }
);

broken_driver!(
    /// Returns from DriverEntry at DISPATCH_LEVEL: `irql.not_restored`.
    returns_at_dispatch,
    |driver| {
        let mut lock: KSPIN_LOCK = 0;
        // SAFETY: valid lock word at PASSIVE_LEVEL.
        let _old = unsafe { KeAcquireSpinLockRaiseToDpc(&raw mut lock) };
        // SAFETY: releases the lock but deliberately stays at DISPATCH_LEVEL.
        unsafe { KeReleaseSpinLock(&raw mut lock, DISPATCH_LEVEL) };
    }
);

broken_driver!(
    /// Calls KeBugCheckEx, as a panicking driver does: `kernel.bugcheck`.
    bugchecks,
    |driver| {
        // SAFETY: deliberately stops the (simulated) machine.
        unsafe { kernel::ffi::ntos::KeBugCheckEx(0xDEAD, 1, 2, 3, 4) };
    }
);

// ---------------------------------------------------------------------------------------------------------
// NBL, NB and MDL misuse. Each driver cleans up everything except its one mistake.
// ---------------------------------------------------------------------------------------------------------

use kernel::ffi::mdl::{IoAllocateMdl, IoFreeMdl, MmBuildMdlForNonPagedPool, MDL};
use kernel::ffi::nbl::{
    NdisAdvanceNetBufferDataStart, NdisAllocateCloneNetBufferList, NdisAllocateNetBufferAndNetBufferList,
    NdisAllocateNetBufferList, NdisAllocateNetBufferListPool, NdisFreeCloneNetBufferList,
    NdisFreeNetBufferList, NdisFreeNetBufferListPool, NET_BUFFER_LIST, NET_BUFFER_LIST_POOL_PARAMETERS,
};
use kernel::ffi::ndis::{NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_DEFAULT};

/// An NBL pool of this driver (with preallocated NBs when `with_nb`).
fn nbl_pool(with_nb: bool) -> NDIS_HANDLE {
    let params = NET_BUFFER_LIST_POOL_PARAMETERS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEFAULT,
            1,
            core::mem::size_of::<NET_BUFFER_LIST_POOL_PARAMETERS>(),
        ),
        ProtocolId: 0,
        fAllocateNetBuffer: u8::from(with_nb),
        ContextSize: 0,
        PoolTag: TAG,
        DataSize: 0,
    };
    // SAFETY: PASSIVE_LEVEL, valid parameters.
    unsafe { NdisAllocateNetBufferListPool(core::ptr::null_mut(), &raw const params) }
}

/// A 128-byte pool buffer with an MDL over it.
fn buffer_with_mdl() -> (*mut c_void, *mut MDL) {
    // SAFETY: PASSIVE_LEVEL, valid tag.
    let buffer = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, 128, TAG) };
    // SAFETY: the buffer is 128 bytes of non-paged pool.
    let mdl = unsafe { IoAllocateMdl(buffer, 128, 0, 0, core::ptr::null_mut()) };
    // SAFETY: a fresh MDL over non-paged memory.
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    (buffer, mdl)
}

fn free_buffer_with_mdl((buffer, mdl): (*mut c_void, *mut MDL)) {
    // SAFETY: the MDL came from IoAllocateMdl and is freed once.
    unsafe { IoFreeMdl(mdl) };
    // SAFETY: the buffer came from ExAllocatePool2 with TAG and is freed once.
    unsafe { ExFreePoolWithTag(buffer, TAG) };
}

/// An NBL with one NB over the whole 128-byte buffer.
fn nbl_over(pool: NDIS_HANDLE, mdl: *mut MDL) -> *mut NET_BUFFER_LIST {
    // SAFETY: the pool allocates NBs; the MDL chain covers 128 bytes.
    unsafe { NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, mdl, 0, 128) }
}

broken_driver!(
    /// Frees an NBL twice: `nbl.double_free`.
    nbl_double_free,
    |driver| {
        let pool = nbl_pool(false);
        // SAFETY: a plain NBL from this driver's pool.
        let nbl = unsafe { NdisAllocateNetBufferList(pool, 0, 0) };
        // SAFETY: the first free is legal.
        unsafe { NdisFreeNetBufferList(nbl) };
        // SAFETY: deliberately illegal; the simulation refuses it.
        unsafe { NdisFreeNetBufferList(nbl) };
        // SAFETY: the pool is empty again.
        unsafe { NdisFreeNetBufferListPool(pool) };
    }
);

broken_driver!(
    /// Frees a parent while its clone is outstanding: `nbl.free_with_children`.
    nbl_free_with_children,
    |driver| {
        let pool = nbl_pool(true);
        let memory = buffer_with_mdl();
        let parent = nbl_over(pool, memory.1);
        // SAFETY: clones a live NBL from the same pool.
        let clone = unsafe { NdisAllocateCloneNetBufferList(parent, pool, core::ptr::null_mut(), 0) };
        // SAFETY: deliberately illegal: the clone still refers to the parent; the simulation refuses.
        unsafe { NdisFreeNetBufferList(parent) };
        // SAFETY: frees the clone with the matching call and flags, then the parent.
        unsafe { NdisFreeCloneNetBufferList(clone, 0) };
        // SAFETY: no children any more.
        unsafe { NdisFreeNetBufferList(parent) };
        free_buffer_with_mdl(memory);
        // SAFETY: the pool is empty again.
        unsafe { NdisFreeNetBufferListPool(pool) };
    }
);

broken_driver!(
    /// Frees a clone with NdisFreeNetBufferList: `nbl.clone_free_mismatch`.
    nbl_clone_free_mismatch,
    |driver| {
        let pool = nbl_pool(true);
        let memory = buffer_with_mdl();
        let parent = nbl_over(pool, memory.1);
        // SAFETY: clones a live NBL from the same pool.
        let clone = unsafe { NdisAllocateCloneNetBufferList(parent, pool, core::ptr::null_mut(), 0) };
        // SAFETY: deliberately the wrong free routine; the simulation refuses it.
        unsafe { NdisFreeNetBufferList(clone) };
        // SAFETY: now the right one.
        unsafe { NdisFreeCloneNetBufferList(clone, 0) };
        // SAFETY: no children any more.
        unsafe { NdisFreeNetBufferList(parent) };
        free_buffer_with_mdl(memory);
        // SAFETY: the pool is empty again.
        unsafe { NdisFreeNetBufferListPool(pool) };
    }
);

broken_driver!(
    /// Unloads with an NBL pool and an NBL outstanding: `nbl.pool_leak` (the leaked-NBL bug check).
    nbl_leak,
    |driver| {
        let pool = nbl_pool(false);
        // SAFETY: a plain NBL, deliberately never freed.
        let _ = unsafe { NdisAllocateNetBufferList(pool, 0, 0) };
    }
);

broken_driver!(
    /// Advances an NB past its data: `nbl.retreat_advance`.
    nb_advance_past_data,
    |driver| {
        let pool = nbl_pool(true);
        let memory = buffer_with_mdl();
        let nbl = nbl_over(pool, memory.1);
        // SAFETY: a live NBL with one NB.
        let nb = unsafe { (*nbl).FirstNetBuffer };
        // SAFETY: deliberately more than DataLength (128); the simulation refuses it.
        unsafe { NdisAdvanceNetBufferDataStart(nb, 500, 0, None) };
        // SAFETY: frees what was allocated, in reverse.
        unsafe { NdisFreeNetBufferList(nbl) };
        free_buffer_with_mdl(memory);
        // SAFETY: the pool is empty again.
        unsafe { NdisFreeNetBufferListPool(pool) };
    }
);

broken_driver!(
    /// Describes more data than its MDL chain holds: `nb.range`.
    nb_beyond_chain,
    |driver| {
        let pool = nbl_pool(true);
        let memory = buffer_with_mdl();
        // SAFETY: deliberately 64 + 128 bytes over a 128-byte chain; the allocation fails.
        let nbl = unsafe { NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, memory.1, 64, 128) };
        if !nbl.is_null() {
            // SAFETY: in case the simulation allocated it anyway.
            unsafe { NdisFreeNetBufferList(nbl) };
        }
        free_buffer_with_mdl(memory);
        // SAFETY: the pool is empty again.
        unsafe { NdisFreeNetBufferListPool(pool) };
    }
);

broken_driver!(
    /// Frees an MDL twice: `mdl.bad_free`.
    mdl_double_free,
    |driver| {
        let memory = buffer_with_mdl();
        free_buffer_with_mdl(memory);
        // SAFETY: deliberately illegal; the simulation refuses the second free.
        unsafe { IoFreeMdl(memory.1) };
    }
);

// ---------------------------------------------------------------------------------------------------------
// IRQL, registration and binding misuse
// ---------------------------------------------------------------------------------------------------------

use kernel::ffi::ndis_filter::{NdisFDeregisterFilterDriver, NdisFRegisterFilterDriver};

broken_driver!(
    /// Registers a filter driver at DISPATCH_LEVEL: `irql.too_high`.
    register_at_dispatch,
    |driver| {
        let mut lock: KSPIN_LOCK = 0;
        // SAFETY: valid lock word at PASSIVE_LEVEL.
        let old = unsafe { KeAcquireSpinLockRaiseToDpc(&raw mut lock) };
        let mut handle: NDIS_HANDLE = core::ptr::null_mut();
        // SAFETY: deliberately at DISPATCH_LEVEL (PASSIVE_LEVEL only); the simulation fails the call.
        let _ = unsafe { NdisFRegisterFilterDriver(driver, core::ptr::null_mut(), core::ptr::null_mut(), &raw mut handle) };
        // SAFETY: releases the lock acquired above.
        unsafe { KeReleaseSpinLock(&raw mut lock, old) };
    }
);

unsafe extern "system" fn ignore_attach(
    _h: NDIS_HANDLE,
    _c: NDIS_HANDLE,
    _p: *mut kernel::ffi::ndis_filter::NDIS_FILTER_ATTACH_PARAMETERS,
) -> i32 {
    kernel::ffi::ndis::NDIS_STATUS_NOT_SUPPORTED
}
unsafe extern "system" fn ignore_detach(_c: NDIS_HANDLE) {}
unsafe extern "system" fn ignore_restart(
    _c: NDIS_HANDLE,
    _p: *mut kernel::ffi::ndis_filter::NDIS_FILTER_RESTART_PARAMETERS,
) -> i32 {
    0
}
unsafe extern "system" fn ignore_pause(
    _c: NDIS_HANDLE,
    _p: *mut kernel::ffi::ndis_filter::NDIS_FILTER_PAUSE_PARAMETERS,
) -> i32 {
    0
}

broken_driver!(
    /// Registers a filter driver and unloads without deregistering: `ndis.still_registered_at_unload`.
    never_deregisters,
    |driver| {
        use kernel::ffi::ndis_filter::{NDIS_FILTER_CHARACTERISTICS_REVISION_2, NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2};
        // SAFETY: plain C data; zero means no handler.
        let mut c: kernel::ffi::ndis_filter::NDIS_FILTER_DRIVER_CHARACTERISTICS = unsafe { core::mem::zeroed() };
        c.Header = NDIS_OBJECT_HEADER::new(
            kernel::ffi::ndis::NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
            NDIS_FILTER_CHARACTERISTICS_REVISION_2,
            NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
        );
        c.MajorNdisVersion = 6;
        c.MinorNdisVersion = 30;
        c.FriendlyName = kernel::unicode_string!("broken");
        c.UniqueName = kernel::unicode_string!("{00000000-0000-0000-0000-00000000B0B0}");
        c.ServiceName = kernel::unicode_string!("brokendrv");
        c.AttachHandler = Some(ignore_attach);
        c.DetachHandler = Some(ignore_detach);
        c.RestartHandler = Some(ignore_restart);
        c.PauseHandler = Some(ignore_pause);
        let mut handle: NDIS_HANDLE = core::ptr::null_mut();
        // SAFETY: PASSIVE_LEVEL; deliberately never deregistered (the unload routine does nothing).
        let _ = unsafe { NdisFRegisterFilterDriver(driver, core::ptr::null_mut(), &raw mut c, &raw mut handle) };
    }
);

broken_driver!(
    /// Deregisters a handle NDIS never gave out: `ndis.bad_handle`.
    deregisters_bogus_handle,
    |driver| {
        // SAFETY: deliberately a made-up handle; the simulation validates it.
        unsafe { NdisFDeregisterFilterDriver(0x1234 as NDIS_HANDLE) };
    }
);

broken_driver!(
    /// Unbinds KMDF without having bound: `wdf.binding`.
    unbinds_without_bind,
    |driver| {
        // SAFETY: deliberately unbound globals; the simulation validates them.
        let _ = unsafe {
            kernel::ffi::wdf::WdfVersionUnbind(core::ptr::null_mut(), core::ptr::null_mut(), 0x1234 as *mut _)
        };
    }
);

// ---- scheduling (winsim::sched) ----

use kernel::ffi::ntos::{
    DelayedWorkQueue, Executive, IoAllocateWorkItem, IoFreeWorkItem, IoQueueWorkItem, KeInitializeDpc,
    KeInitializeEvent, KeInsertQueueDpc, KeRestoreExtendedProcessorState, KeWaitForSingleObject, KernelMode,
    NotificationEvent, DEVICE_OBJECT, KDPC, KEVENT, LARGE_INTEGER, XSTATE_SAVE,
};

unsafe extern "system" fn dpc_nothing(_: *mut KDPC, _: *mut c_void, _: *mut c_void, _: *mut c_void) {}
unsafe extern "system" fn work_nothing(_: *mut DEVICE_OBJECT, _: *mut c_void) {}

/// A zeroed kernel object leaked for the rest of the process (the broken driver's "non-paged memory").
fn leaked<T>() -> *mut T {
    // SAFETY: KDPC/KTIMER/KEVENT/XSTATE_SAVE are plain bytes; all-zero is their uninitialised state.
    Box::into_raw(Box::new(unsafe { core::mem::zeroed::<T>() }))
}

broken_driver!(
    /// Queues a DPC and unloads without removing it: `sched.dpc_pending_at_unload`.
    unloads_with_dpc_queued,
    |driver| {
        let dpc = leaked::<KDPC>();
        // SAFETY: a live KDPC, not queued.
        unsafe { KeInitializeDpc(dpc, Some(dpc_nothing), core::ptr::null_mut()) };
        // SAFETY: an initialised KDPC; deliberately never removed.
        let _ = unsafe { KeInsertQueueDpc(dpc, core::ptr::null_mut(), core::ptr::null_mut()) };
    }
);

broken_driver!(
    /// Frees a work item while it is queued: `sched.workitem_freed_while_queued`.
    frees_queued_work_item,
    |driver| {
        // SAFETY: PASSIVE_LEVEL.
        let item = unsafe { IoAllocateWorkItem(core::ptr::null_mut()) };
        // SAFETY: a work item this driver allocated.
        unsafe { IoQueueWorkItem(item, Some(work_nothing), DelayedWorkQueue, core::ptr::null_mut()) };
        // SAFETY: deliberately still queued; the simulation refuses to run it afterwards.
        unsafe { IoFreeWorkItem(item) };
    }
);

broken_driver!(
    /// Waits with a nonzero timeout while holding a spin lock: `sched.wait_at_dispatch`.
    waits_at_dispatch,
    |driver| {
        let event = leaked::<KEVENT>();
        // SAFETY: a live KEVENT.
        unsafe { KeInitializeEvent(event, NotificationEvent, 0) };
        let mut lock: KSPIN_LOCK = 0;
        // SAFETY: a local spin lock, released below.
        let old = unsafe { KeAcquireSpinLockRaiseToDpc(&raw mut lock) };
        let mut timeout: LARGE_INTEGER = -10_000;
        // SAFETY: an initialised event; deliberately at DISPATCH_LEVEL with a 1 ms timeout.
        let _ = unsafe { KeWaitForSingleObject(event.cast(), Executive, KernelMode, 0, &raw mut timeout) };
        // SAFETY: the lock acquired above.
        unsafe { KeReleaseSpinLock(&raw mut lock, old) };
    }
);

broken_driver!(
    /// Waits forever on an event nothing will set: `sched.wait_deadlock`.
    waits_forever,
    |driver| {
        let event = leaked::<KEVENT>();
        // SAFETY: a live KEVENT.
        unsafe { KeInitializeEvent(event, NotificationEvent, 0) };
        // SAFETY: an initialised event; deliberately an infinite wait nothing satisfies.
        let _ = unsafe { KeWaitForSingleObject(event.cast(), Executive, KernelMode, 0, core::ptr::null_mut()) };
    }
);

broken_driver!(
    /// Restores extended processor state it never saved: `xstate.unbalanced`.
    restores_unsaved_xstate,
    |driver| {
        // SAFETY: deliberately no matching KeSaveExtendedProcessorState.
        unsafe { KeRestoreExtendedProcessorState(leaked::<XSTATE_SAVE>()) };
    }
);

// ---------------------------------------------------------------------------------------------
// Control-device bugs: a filter driver with a control device, broken in one of three ways.
// ---------------------------------------------------------------------------------------------

/// How [`device_driver`] is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum DeviceBug {
    /// Unload deregisters the filter but not the device: `device.not_deregistered`.
    NeverDeregistersDevice = 1,
    /// IOCTLs pend forever, even across cleanup and unload: `device.irp_pending_at_unload`.
    PendsForever = 2,
    /// IOCTLs return STATUS_SUCCESS without IoCompleteRequest: `device.irp_misuse`.
    ForgetsCompletion = 3,
}

/// The bug [`device_driver`] commits.
pub static DEVICE_BUG: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
static DEVICE_FILTER: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
static DEVICE_HANDLE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

fn device_bug() -> u32 {
    DEVICE_BUG.load(core::sync::atomic::Ordering::Relaxed)
}

unsafe extern "system" fn broken_ioctl(
    _device: *mut kernel::ffi::ntos::DEVICE_OBJECT,
    irp: *mut kernel::ffi::ntos::IRP,
) -> NTSTATUS {
    if device_bug() == DeviceBug::PendsForever as u32 {
        // SAFETY: the IRP is being dispatched to us.
        let sp = unsafe { kernel::ffi::ntos::IoGetCurrentIrpStackLocation(irp) };
        // SAFETY: IoMarkIrpPending on our stack location; the IRP is then deliberately never completed.
        unsafe { (*sp).Control |= kernel::ffi::ntos::SL_PENDING_RETURNED };
        return kernel::ffi::ntos::STATUS_PENDING;
    }
    if device_bug() == DeviceBug::ForgetsCompletion as u32 {
        // Deliberately neither completed nor pended.
        return STATUS_SUCCESS;
    }
    // SAFETY: the IRP is ours to complete.
    let io_status = unsafe { &mut (*irp).IoStatus };
    io_status.u.Status = STATUS_SUCCESS;
    // SAFETY: completed once.
    unsafe { kernel::ffi::ntos::IoCompleteRequest(irp, 0) };
    STATUS_SUCCESS
}

unsafe extern "system" fn device_driver_unload(_driver: *mut DRIVER_OBJECT) {
    let device = DEVICE_HANDLE.swap(0, core::sync::atomic::Ordering::Relaxed);
    if device_bug() != DeviceBug::NeverDeregistersDevice as u32 && device != 0 {
        // SAFETY: the handle NdisRegisterDeviceEx gave us.
        unsafe { kernel::ffi::ndis_device::NdisDeregisterDeviceEx(device as NDIS_HANDLE) };
    }
    let filter = DEVICE_FILTER.swap(0, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: the handle NdisFRegisterFilterDriver gave us.
    unsafe { NdisFDeregisterFilterDriver(filter as NDIS_HANDLE) };
}

/// A filter driver with a control device `\Device\brokendev` (`\DosDevices\brokendev`) committing
/// [`DEVICE_BUG`].
pub unsafe extern "system" fn device_driver(
    driver: *mut DRIVER_OBJECT,
    _registry: *mut UNICODE_STRING,
) -> NTSTATUS {
    use kernel::ffi::ndis_device::{
        NdisRegisterDeviceEx, NDIS_DEVICE_OBJECT_ATTRIBUTES, NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES,
        NDIS_SIZEOF_DEVICE_OBJECT_ATTRIBUTES_REVISION_1,
    };
    use kernel::ffi::ndis_filter::{
        NDIS_FILTER_CHARACTERISTICS_REVISION_2, NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
    };
    // SAFETY: plain C data; zero means no handler.
    let mut c: kernel::ffi::ndis_filter::NDIS_FILTER_DRIVER_CHARACTERISTICS = unsafe { core::mem::zeroed() };
    c.Header = NDIS_OBJECT_HEADER::new(
        kernel::ffi::ndis::NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
        NDIS_FILTER_CHARACTERISTICS_REVISION_2,
        NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
    );
    c.MajorNdisVersion = 6;
    c.MinorNdisVersion = 30;
    c.FriendlyName = kernel::unicode_string!("broken device");
    c.UniqueName = kernel::unicode_string!("{00000000-0000-0000-0000-00000000B0B1}");
    c.ServiceName = kernel::unicode_string!("brokendev");
    c.AttachHandler = Some(ignore_attach);
    c.DetachHandler = Some(ignore_detach);
    c.RestartHandler = Some(ignore_restart);
    c.PauseHandler = Some(ignore_pause);
    let mut filter: NDIS_HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL in DriverEntry.
    let status =
        unsafe { NdisFRegisterFilterDriver(driver, core::ptr::null_mut(), &raw mut c, &raw mut filter) };
    if status != 0 {
        return status;
    }
    DEVICE_FILTER.store(filter as usize, core::sync::atomic::Ordering::Relaxed);
    let mut table: [kernel::ffi::ntos::PDRIVER_DISPATCH; kernel::ffi::ntos::IRP_MJ_MAXIMUM_FUNCTION + 1] =
        [None; kernel::ffi::ntos::IRP_MJ_MAXIMUM_FUNCTION + 1];
    table[kernel::ffi::ntos::IRP_MJ_DEVICE_CONTROL] = Some(broken_ioctl);
    let mut name = kernel::unicode_string!("\\Device\\brokendev");
    let mut link = kernel::unicode_string!("\\DosDevices\\brokendev");
    let mut attributes = NDIS_DEVICE_OBJECT_ATTRIBUTES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES,
            1,
            NDIS_SIZEOF_DEVICE_OBJECT_ATTRIBUTES_REVISION_1,
        ),
        DeviceName: &raw mut name,
        SymbolicName: &raw mut link,
        MajorFunctions: table.as_mut_ptr(),
        ExtensionSize: 0,
        DefaultSDDLString: core::ptr::null(),
        DeviceClassGuid: core::ptr::null(),
    };
    let mut object = core::ptr::null_mut();
    let mut device: NDIS_HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; everything lives for the call.
    let status =
        unsafe { NdisRegisterDeviceEx(filter, &raw mut attributes, &raw mut object, &raw mut device) };
    if status != 0 {
        // SAFETY: unwinds the registration above.
        unsafe { NdisFDeregisterFilterDriver(filter) };
        return status;
    }
    DEVICE_HANDLE.store(device as usize, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: the I/O manager passes a valid driver object to DriverEntry.
    unsafe { (*driver).DriverUnload = Some(device_driver_unload) };
    STATUS_SUCCESS
}
