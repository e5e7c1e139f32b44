//! A spin lock that owns the data it protects.
//!
//! [`SpinLock<T>`] pairs a `KSPIN_LOCK` with a `T`; the only way to reach the `T` is through a guard that
//! holds the lock and releases it when dropped, so an unlocked access or a forgotten release cannot be
//! written.
//!
//! IRQL:
//! * [`SpinLock::lock`]: callable at IRQL <= DISPATCH_LEVEL. Raises to DISPATCH_LEVEL
//!   (`KeAcquireSpinLockRaiseToDpc`); the guard's drop restores the IRQL the caller had
//!   (`KeReleaseSpinLock`).
//! * [`SpinLock::lock_at_dpc`]: callable at DISPATCH_LEVEL only (a DPC, or code already holding another
//!   spin lock) — `KeAcquireSpinLockAtDpcLevel` / `KeReleaseSpinLockFromDpcLevel`, no IRQL change.
//!
//! While a guard lives the code runs at DISPATCH_LEVEL: no waiting, no paged memory, no calls that need
//! PASSIVE_LEVEL. The lock is not recursive; taking it twice on one processor deadlocks (the simulated
//! kernel reports `spinlock.recursive`). Guards must be dropped in reverse order of acquisition when
//! several are held (the IRQL each restores depends on it).
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use crate::ffi::ntos::{
    KeAcquireSpinLockAtDpcLevel, KeAcquireSpinLockRaiseToDpc, KeReleaseSpinLock,
    KeReleaseSpinLockFromDpcLevel, KIRQL, KSPIN_LOCK,
};

/// A `T` protected by a kernel spin lock. Lives in non-paged memory (a `static`, or a pool block) and
/// must not move while locked (guards borrow it, so the borrow checker enforces that).
pub struct SpinLock<T> {
    lock: UnsafeCell<KSPIN_LOCK>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out at most one guard at a time, so `&SpinLock<T>` gives exclusive access to
// the `T` to one thread at a time; that is sound when `T` may move between threads (`T: Send`).
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: the lock word is plain data; sending the lock sends the `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A released lock around `value` (`KeInitializeSpinLock` stores 0; so does this). Usable in a
    /// `static`.
    pub const fn new(value: T) -> Self {
        SpinLock { lock: UnsafeCell::new(0), data: UnsafeCell::new(value) }
    }

    /// Acquires the lock, raising to DISPATCH_LEVEL. IRQL <= DISPATCH_LEVEL. The guard releases the
    /// lock and restores the previous IRQL when dropped.
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        // SAFETY: the lock word lives as long as `self` and is only touched by the Ke* spin lock
        // routines; the caller's IRQL is <= DISPATCH_LEVEL (this function's contract).
        let old_irql = unsafe { KeAcquireSpinLockRaiseToDpc(self.lock.get()) };
        SpinLockGuard { lock: self, release: Release::Irql(old_irql), _not_send: PhantomData }
    }

    /// Acquires the lock without changing the IRQL. The caller must already run at DISPATCH_LEVEL
    /// (a DPC, or under another spin lock).
    pub fn lock_at_dpc(&self) -> SpinLockGuard<'_, T> {
        // SAFETY: the lock word lives as long as `self`; the caller runs at DISPATCH_LEVEL (this
        // function's contract; the simulated kernel checks it).
        unsafe { KeAcquireSpinLockAtDpcLevel(self.lock.get()) };
        SpinLockGuard { lock: self, release: Release::AtDpc, _not_send: PhantomData }
    }

    /// The data, through exclusive access to the lock itself (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T> core::fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SpinLock(..)")
    }
}

/// How a guard gives the lock back.
#[derive(Clone, Copy, Debug)]
enum Release {
    /// `KeReleaseSpinLock` to this IRQL.
    Irql(KIRQL),
    /// `KeReleaseSpinLockFromDpcLevel`.
    AtDpc,
}

/// Proof that the lock is held; derefs to the data. Dropping it releases the lock. Not `Send`: a
/// spin lock is released on the processor that acquired it.
pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
    release: Release,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other reference to the data exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and `&mut self` makes this the only reference through it.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        match self.release {
            // SAFETY: this guard acquired the lock with KeAcquireSpinLockRaiseToDpc, which returned
            // `old`; it is released exactly once, here.
            Release::Irql(old) => unsafe { KeReleaseSpinLock(self.lock.lock.get(), old) },
            // SAFETY: this guard acquired the lock with KeAcquireSpinLockAtDpcLevel and still runs at
            // DISPATCH_LEVEL; released exactly once, here.
            Release::AtDpc => unsafe { KeReleaseSpinLockFromDpcLevel(self.lock.lock.get()) },
        }
    }
}

impl<T> core::fmt::Debug for SpinLockGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SpinLockGuard").field("release", &self.release).finish_non_exhaustive()
    }
}

/// Atomically takes the lowest free entry of a free bitmap (bit set = free; entry `i` is bit `i % 64`
/// of word `i / 64`) and returns its index, or `None` when every entry is taken. Lock-free, any IRQL:
/// the pools of send IRPs and buffers hand out their slots with it.
pub fn bitmap_take(words: &[core::sync::atomic::AtomicU64]) -> Option<usize> {
    use core::sync::atomic::Ordering;
    for (w, word) in words.iter().enumerate() {
        let mut bits = word.load(Ordering::Acquire);
        while bits != 0 {
            let bit = bits.trailing_zeros() as usize;
            match word.compare_exchange_weak(bits, bits & !(1u64 << bit), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(w * 64 + bit),
                Err(now) => bits = now,
            }
        }
    }
    None
}

/// Gives entry `index` back to a free bitmap taken from with [`bitmap_take`] (sets its bit). Returns
/// whether it was taken (false: already free, or past the bitmap). Lock-free, any IRQL.
pub fn bitmap_put(words: &[core::sync::atomic::AtomicU64], index: usize) -> bool {
    use core::sync::atomic::Ordering;
    let bit = 1u64 << (index % 64);
    words.get(index / 64).is_some_and(|word| word.fetch_or(bit, Ordering::AcqRel) & bit == 0)
}
