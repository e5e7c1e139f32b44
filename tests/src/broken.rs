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
