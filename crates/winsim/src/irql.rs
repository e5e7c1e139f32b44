//! IRQL and spin locks. The lock word in the driver's memory really excludes other threads (the
//! real-time mode runs DPCs and work items on several threads), and each thread's held locks and IRQL are
//! tracked for the verifier.
use std::sync::atomic::{AtomicUsize, Ordering};

use kernel::ffi::ntos::{DISPATCH_LEVEL, KIRQL, KLOCK_QUEUE_HANDLE, KSPIN_LOCK};

use crate::context::{self, holds, irql, pop_held, push_held, require_irql_at_most, set_irql};
use crate::verifier::{violation, Rule};

/// A nonzero marker for "held"; the real kernel stores an owner-dependent value.
const HELD: usize = 1;

/// `KeGetCurrentIrql`: exported by the simulation (an intrinsic reading CR8 on x64 Windows).
#[no_mangle]
pub extern "system" fn KeGetCurrentIrql() -> KIRQL {
    irql()
}

/// Takes the lock word, spinning while another thread holds it. A lock this thread already holds is a
/// deadlock on real hardware: recorded, and not spun on.
fn take(lock: *mut KSPIN_LOCK, routine: &str) {
    if holds(lock as usize) {
        violation(Rule::SpinLockRecursive, format!("{routine}({lock:p}): already held by this thread"));
        return;
    }
    // SAFETY: KSPIN_LOCK is a pointer-sized integer the driver initialised; AtomicUsize has its size
    // and alignment, and every access to the word goes through these atomics.
    let word = unsafe { AtomicUsize::from_ptr(lock) };
    while word.compare_exchange_weak(0, HELD, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::hint::spin_loop();
    }
    push_held(lock as usize);
}

fn give(lock: *mut KSPIN_LOCK, routine: &str) -> bool {
    if !pop_held(lock as usize) {
        violation(Rule::SpinLockNotHeld, format!("{routine}({lock:p}): not held by this thread"));
        return false;
    }
    // SAFETY: as in `take`.
    let word = unsafe { AtomicUsize::from_ptr(lock) };
    word.store(0, Ordering::Release);
    true
}

fn require_dispatch(routine: &str) {
    let now = irql();
    if now < DISPATCH_LEVEL {
        violation(Rule::SpinLockDpcLevel, format!("{routine} called at IRQL {now}, requires DISPATCH_LEVEL"));
    }
}

/// `KeAcquireSpinLockRaiseToDpc`. IRQL <= DISPATCH_LEVEL; returns the previous IRQL.
///
/// # Safety
/// `lock` must point to an initialised `KSPIN_LOCK`.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireSpinLockRaiseToDpc(lock: *mut KSPIN_LOCK) -> KIRQL {
    require_irql_at_most(DISPATCH_LEVEL, "KeAcquireSpinLockRaiseToDpc");
    let old = irql();
    set_irql(DISPATCH_LEVEL);
    take(lock, "KeAcquireSpinLockRaiseToDpc");
    old
}

/// `KeReleaseSpinLock`: releases and lowers the IRQL to `new_irql`. Runs at DISPATCH_LEVEL.
///
/// # Safety
/// `lock` must point to an initialised `KSPIN_LOCK`.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseSpinLock(lock: *mut KSPIN_LOCK, new_irql: KIRQL) {
    if give(lock, "KeReleaseSpinLock") {
        set_irql(new_irql);
    }
}

/// `KeAcquireSpinLockAtDpcLevel`. Requires DISPATCH_LEVEL.
///
/// # Safety
/// `lock` must point to an initialised `KSPIN_LOCK`.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireSpinLockAtDpcLevel(lock: *mut KSPIN_LOCK) {
    require_dispatch("KeAcquireSpinLockAtDpcLevel");
    take(lock, "KeAcquireSpinLockAtDpcLevel");
}

/// `KeReleaseSpinLockFromDpcLevel`. Requires DISPATCH_LEVEL.
///
/// # Safety
/// `lock` must point to an initialised `KSPIN_LOCK`.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseSpinLockFromDpcLevel(lock: *mut KSPIN_LOCK) {
    require_dispatch("KeReleaseSpinLockFromDpcLevel");
    give(lock, "KeReleaseSpinLockFromDpcLevel");
}

/// `KeAcquireInStackQueuedSpinLock`. IRQL <= DISPATCH_LEVEL; the previous IRQL is kept in `handle`.
///
/// # Safety
/// `lock` must point to an initialised `KSPIN_LOCK`; `handle` must be valid for writes.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireInStackQueuedSpinLock(
    lock: *mut KSPIN_LOCK,
    handle: *mut KLOCK_QUEUE_HANDLE,
) {
    require_irql_at_most(DISPATCH_LEVEL, "KeAcquireInStackQueuedSpinLock");
    let old = irql();
    set_irql(DISPATCH_LEVEL);
    take(lock, "KeAcquireInStackQueuedSpinLock");
    // SAFETY: the caller passes a handle valid for writes.
    unsafe {
        handle.write(KLOCK_QUEUE_HANDLE {
            LockQueue: kernel::ffi::ntos::KSPIN_LOCK_QUEUE { Next: std::ptr::null_mut(), Lock: lock },
            OldIrql: old,
        });
    }
}

/// `KeReleaseInStackQueuedSpinLock`: releases and restores the IRQL saved in `handle`.
///
/// # Safety
/// `handle` must be the one passed to the matching acquire.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseInStackQueuedSpinLock(handle: *mut KLOCK_QUEUE_HANDLE) {
    // SAFETY: the caller passes the handle the acquire filled in.
    let handle = unsafe { &*handle };
    let (lock, old) = (handle.LockQueue.Lock, handle.OldIrql);
    if give(lock, "KeReleaseInStackQueuedSpinLock") {
        set_irql(old);
    }
}

/// `KeAcquireInStackQueuedSpinLockAtDpcLevel`. Requires DISPATCH_LEVEL.
///
/// # Safety
/// As for [`KeAcquireInStackQueuedSpinLock`].
#[no_mangle]
pub unsafe extern "system" fn KeAcquireInStackQueuedSpinLockAtDpcLevel(
    lock: *mut KSPIN_LOCK,
    handle: *mut KLOCK_QUEUE_HANDLE,
) {
    require_dispatch("KeAcquireInStackQueuedSpinLockAtDpcLevel");
    take(lock, "KeAcquireInStackQueuedSpinLockAtDpcLevel");
    // SAFETY: the caller passes a handle valid for writes.
    unsafe {
        handle.write(KLOCK_QUEUE_HANDLE {
            LockQueue: kernel::ffi::ntos::KSPIN_LOCK_QUEUE { Next: std::ptr::null_mut(), Lock: lock },
            OldIrql: DISPATCH_LEVEL,
        });
    }
}

/// `KeReleaseInStackQueuedSpinLockFromDpcLevel`. Requires DISPATCH_LEVEL.
///
/// # Safety
/// `handle` must be the one passed to the matching acquire.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseInStackQueuedSpinLockFromDpcLevel(handle: *mut KLOCK_QUEUE_HANDLE) {
    require_dispatch("KeReleaseInStackQueuedSpinLockFromDpcLevel");
    // SAFETY: the caller passes the handle the acquire filled in.
    let lock = unsafe { (*handle).LockQueue.Lock };
    give(lock, "KeReleaseInStackQueuedSpinLockFromDpcLevel");
}

/// Runs `f` at `irql` on this thread and restores the previous IRQL (for the simulation's own use).
pub fn at_irql<R>(irql: KIRQL, f: impl FnOnce() -> R) -> R {
    let saved = context::irql();
    set_irql(irql);
    let r = f();
    set_irql(saved);
    r
}
