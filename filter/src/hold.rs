//! The hold policy: when the filter stops holding the protocol's NBL and deep-copies it instead.
//!
//! NDIS lends a send NBL only briefly: the sender may be blocked until it comes back, and a pause or a
//! power-down waits for it ("Pausing a Filter Module": the pause is not complete until every send the
//! module owns has been completed). So a diverted NBL is held as the original (zero copy) only while the
//! worker is about to seal it. On a named [`Trigger`] the filter copies the NBL, its NET_BUFFERs, MDLs and
//! payload into memory from its own pools (an NDIS NBL pool per module, tag `rdFc`, and pool blocks) and
//! completes the original at once; the copy waits in the same queue and is sealed like an original.
//!
//! Triggers (each counted in `RdcoStats::holds_budget` / `holds_not_ready` / `holds_pause`, and all in
//! `deep_copies`):
//! * [`Trigger::Budget`]: the queue already holds [`HoldPolicy::budget_nbls`] originals, or an original
//!   waited longer than [`HoldPolicy::budget_ms`] (checked by every worker run and the 1 s tick).
//! * [`Trigger::NotReady`]: the transport cannot take it now: no socket, no key for the peer, or WSK
//!   backpressure (every send IRP in flight / no ciphertext buffer).
//! * [`Trigger::Pause`]: the module is pausing, detaching or leaving D0 (power-down pauses first).
//! * cancel (`FilterCancelSendNetBufferLists`) is not a copy: the NBL completes with
//!   `NDIS_STATUS_SEND_ABORTED` (see `send::filter_cancel_send`).
//!
//! Deep copies have a memory ceiling ([`HoldPolicy::ceiling_bytes`], payload bytes held at once across
//! the driver). Past it the original is completed with `NDIS_STATUS_RESOURCES` and counted in
//! `drop_copy_ceiling`; a copy that waits longer than [`HoldPolicy::copy_max_age_ms`] for the transport
//! is freed and counted in `drop_no_key`. Nothing is leaked or silently lost.
//!
//! The policy lives in atomics (defaults below), one set for the whole driver. User mode reads it with
//! `IOCTL_RDCO_FILTER_GET_HOLD_POLICY` and replaces it with `IOCTL_RDCO_FILTER_SET_HOLD_POLICY`
//! ([`policy`], [`set_policy`]; the accepted ranges are `uapi::rdco_filter::HOLD_*`). The four fields
//! are stored one by one, not as a unit: a data-path reader racing a SET may see some fields old and
//! some new, every one of them valid, and the next read sees the whole new policy. Host tests may also
//! set values outside the ranges through `test_hooks` (e.g. a zero budget).
//!
//! IRQL: everything here runs at IRQL <= DISPATCH_LEVEL.
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use kernel::ffi::mdl::MDL;
use kernel::ffi::nbl::{
    NdisAllocateMdl, NdisAllocateNetBufferAndNetBufferList, NdisCopySendNetBufferListInfo, NdisFreeMdl,
    NdisFreeNetBufferList, NET_BUFFER, NET_BUFFER_DATA_LENGTH, NET_BUFFER_FIRST_MDL, NET_BUFFER_LIST,
    NET_BUFFER_LIST_FIRST_NB, NET_BUFFER_NEXT_NB,
};
use kernel::ffi::ndis::{NDIS_HANDLE, NDIS_STATUS, NDIS_STATUS_RESOURCES};
use kernel::ffi::ntos::{ExAllocatePool2, ExFreePoolWithTag, POOL_FLAG_NON_PAGED};

use uapi::rdco_filter::RdcoHoldPolicy;

use crate::classify;

/// Pool tag of deep-copy payload blocks: 'rdFc'.
pub(crate) const COPY_TAG: u32 = u32::from_le_bytes(*b"rdFc");
/// The largest frame a deep copy takes (an LSO super-packet of 64 KB plus headers).
pub(crate) const MAX_COPY: usize = 65_536 + 256;

/// Why an original NBL stopped being held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    Budget,
    NotReady,
    Pause,
}

/// Copies dropped because the ceiling was reached.
pub(crate) static CEILING_DROPS: AtomicU64 = AtomicU64::new(0);
/// Payload bytes held in deep copies right now (all modules).
pub(crate) static COPY_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The configurable policy.
pub(crate) struct HoldPolicy {
    pub(crate) budget_nbls: AtomicU32,
    pub(crate) budget_ms: AtomicU32,
    pub(crate) ceiling_bytes: AtomicU32,
    pub(crate) copy_max_age_ms: AtomicU32,
}

/// Defaults: 256 originals queued, 50 ms in the queue, 4 MiB of copies, copies kept 5 s (each inside
/// the range `SET_HOLD_POLICY` accepts).
pub(crate) const DEFAULT_POLICY: RdcoHoldPolicy =
    RdcoHoldPolicy { budget_nbls: 256, budget_ms: 50, ceiling_bytes: 4 << 20, copy_max_age_ms: 5_000 };

/// The policy in force; starts as [`DEFAULT_POLICY`] (and `DriverEntry` stores it again, see
/// `driver::driver_entry`).
pub(crate) static POLICY: HoldPolicy = HoldPolicy {
    budget_nbls: AtomicU32::new(DEFAULT_POLICY.budget_nbls),
    budget_ms: AtomicU32::new(DEFAULT_POLICY.budget_ms),
    ceiling_bytes: AtomicU32::new(DEFAULT_POLICY.ceiling_bytes),
    copy_max_age_ms: AtomicU32::new(DEFAULT_POLICY.copy_max_age_ms),
};

/// The policy now, as `GET_HOLD_POLICY` reports it. Any IRQL <= DISPATCH_LEVEL.
pub(crate) fn policy() -> RdcoHoldPolicy {
    RdcoHoldPolicy {
        budget_nbls: POLICY.budget_nbls.load(Ordering::Relaxed),
        budget_ms: POLICY.budget_ms.load(Ordering::Relaxed),
        ceiling_bytes: POLICY.ceiling_bytes.load(Ordering::Relaxed),
        copy_max_age_ms: POLICY.copy_max_age_ms.load(Ordering::Relaxed),
    }
}

/// Stores a policy the caller has validated (`RdcoHoldPolicy::parse` checks every range). Takes effect
/// for the next trigger check of every module. Any IRQL <= DISPATCH_LEVEL.
pub(crate) fn set_policy(p: &RdcoHoldPolicy) {
    POLICY.budget_nbls.store(p.budget_nbls, Ordering::Relaxed);
    POLICY.budget_ms.store(p.budget_ms, Ordering::Relaxed);
    POLICY.ceiling_bytes.store(p.ceiling_bytes, Ordering::Relaxed);
    POLICY.copy_max_age_ms.store(p.copy_max_age_ms, Ordering::Relaxed);
}

/// Deep-copies `nbl` (every NET_BUFFER into its own copy NBL, linked through `Next` in order, offload
/// information copied) from the module's pool `copy_pool`. Returns the copy chain (head, tail, count), or
/// the status to complete the original with when the ceiling is reached or an allocation fails. The
/// original is untouched.
///
/// # Safety
/// `nbl` must be an NBL the filter owns; `copy_pool` an NBL pool of the filter created with
/// `fAllocateNetBuffer`; `filter_handle` the module's handle.
pub(crate) unsafe fn deep_copy(
    filter_handle: NDIS_HANDLE,
    copy_pool: NDIS_HANDLE,
    nbl: *mut NET_BUFFER_LIST,
    trigger: Trigger,
    module: &crate::control::FilterStats,
) -> Result<(*mut NET_BUFFER_LIST, *mut NET_BUFFER_LIST), NDIS_STATUS> {
    let ceiling = POLICY.ceiling_bytes.load(Ordering::Relaxed) as usize;
    let mut head: *mut NET_BUFFER_LIST = null_mut();
    let mut tail: *mut NET_BUFFER_LIST = null_mut();
    // SAFETY: an owned NBL.
    let mut nb = unsafe { NET_BUFFER_LIST_FIRST_NB(nbl) };
    while !nb.is_null() {
        // SAFETY: an NB of the owned NBL.
        let len = unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize;
        let reserved = COPY_BYTES.fetch_add(len, Ordering::AcqRel) + len;
        let copy = if reserved > ceiling || len == 0 || len > MAX_COPY {
            COPY_BYTES.fetch_sub(len, Ordering::AcqRel);
            if reserved > ceiling {
                CEILING_DROPS.fetch_add(1, Ordering::Relaxed);
                crate::control::count!(module, drop_copy_ceiling, 1);
            }
            None
        } else {
            // SAFETY: forwarded contract; `len` bytes reserved against the ceiling.
            let c = unsafe { copy_one(filter_handle, copy_pool, nbl, nb, len) };
            if c.is_none() {
                COPY_BYTES.fetch_sub(len, Ordering::AcqRel);
                // An allocation failed: the original completes with NDIS_STATUS_RESOURCES, counted.
                crate::control::count!(module, drop_other, 1);
            }
            c
        };
        let Some(copy) = copy else {
            // Undo the copies of earlier NBs: the original fails as a whole.
            // SAFETY: the chain is ours, built above.
            unsafe { free_chain(head) };
            return Err(NDIS_STATUS_RESOURCES);
        };
        if tail.is_null() {
            head = copy;
        } else {
            // SAFETY: our own copy NBL.
            unsafe { (*tail).Next = copy };
        }
        tail = copy;
        // SAFETY: as above.
        nb = unsafe { NET_BUFFER_NEXT_NB(nb) };
    }
    if head.is_null() {
        return Err(NDIS_STATUS_RESOURCES);
    }
    match trigger {
        Trigger::Budget => crate::control::count!(module, holds_budget, 1),
        Trigger::NotReady => crate::control::count!(module, holds_not_ready, 1),
        Trigger::Pause => crate::control::count!(module, holds_pause, 1),
    }
    crate::control::count!(module, deep_copies, 1);
    Ok((head, tail))
}

/// One NB into a fresh copy NBL: payload block, MDL, NBL+NB. `None` on allocation failure (nothing
/// left allocated).
///
/// # Safety
/// As for [`deep_copy`]; `nb` is an NB of `original` holding `len` bytes.
unsafe fn copy_one(
    filter_handle: NDIS_HANDLE,
    copy_pool: NDIS_HANDLE,
    original: *mut NET_BUFFER_LIST,
    nb: *mut NET_BUFFER,
    len: usize,
) -> Option<*mut NET_BUFFER_LIST> {
    // SAFETY: IRQL <= DISPATCH_LEVEL; null on failure.
    let data = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, len, COPY_TAG) };
    if data.is_null() {
        return None;
    }
    // SAFETY: a fresh block of `len` bytes, ours alone.
    let out = unsafe { core::slice::from_raw_parts_mut(data.cast::<u8>(), len) };
    // SAFETY: forwarded contract (owned NB).
    if unsafe { classify::copy_all(nb, 0, out) } != Some(len) {
        // SAFETY: allocated above.
        unsafe { ExFreePoolWithTag(data, COPY_TAG) };
        return None;
    }
    let Ok(len32) = u32::try_from(len) else {
        // SAFETY: allocated above.
        unsafe { ExFreePoolWithTag(data, COPY_TAG) };
        return None;
    };
    // SAFETY: the module's handle; non-paged memory of `len` bytes.
    let mdl = unsafe { NdisAllocateMdl(filter_handle, data, len32) };
    if mdl.is_null() {
        // SAFETY: allocated above.
        unsafe { ExFreePoolWithTag(data, COPY_TAG) };
        return None;
    }
    // SAFETY: the module's pool (fAllocateNetBuffer) and our MDL.
    let copy = unsafe { NdisAllocateNetBufferAndNetBufferList(copy_pool, 0, 0, mdl, 0, len) };
    if copy.is_null() {
        // SAFETY: allocated above, not attached to anything.
        unsafe { NdisFreeMdl(mdl) };
        // SAFETY: allocated above.
        unsafe { ExFreePoolWithTag(data, COPY_TAG) };
        return None;
    }
    // The offload requests (checksum, LSO, USO) travel with the copy for the worker to honour.
    // SAFETY: both NBLs are valid; the copy is ours, the original owned.
    unsafe { NdisCopySendNetBufferListInfo(copy, original) };
    Some(copy)
}

/// Frees one copy NBL with its MDL and payload, and gives its bytes back to the ceiling.
///
/// # Safety
/// `copy` must be a copy NBL made by [`deep_copy`], unlinked (its `Next` is ignored), not used again.
pub(crate) unsafe fn free_copy(copy: *mut NET_BUFFER_LIST) {
    // SAFETY: a copy NBL has exactly one NB.
    let nb = unsafe { NET_BUFFER_LIST_FIRST_NB(copy) };
    let (mdl, len): (*mut MDL, usize) = if nb.is_null() {
        (null_mut(), 0)
    } else {
        // SAFETY: our NB.
        let mdl = unsafe { NET_BUFFER_FIRST_MDL(nb) };
        // SAFETY: our NB.
        (mdl, unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize)
    };
    let data: *mut c_void = if mdl.is_null() {
        null_mut()
    } else {
        // SAFETY: our MDL from NdisAllocateMdl over non-paged pool: MappedSystemVa is the block's start
        // (built for non-paged pool, MDL_SOURCE_IS_NONPAGED_POOL).
        unsafe { (*mdl).MappedSystemVa }
    };
    // SAFETY: our NBL, freed once (its NB with it).
    unsafe { NdisFreeNetBufferList(copy) };
    if !mdl.is_null() {
        // SAFETY: from NdisAllocateMdl, freed once.
        unsafe { NdisFreeMdl(mdl) };
    }
    if !data.is_null() {
        // SAFETY: the payload block from ExAllocatePool2 with COPY_TAG.
        unsafe { ExFreePoolWithTag(data, COPY_TAG) };
    }
    COPY_BYTES.fetch_sub(len, Ordering::AcqRel);
}

/// Frees a chain of copies linked through `Next`.
///
/// # Safety
/// Every NBL in the chain is a copy from [`deep_copy`].
pub(crate) unsafe fn free_chain(mut copy: *mut NET_BUFFER_LIST) {
    while !copy.is_null() {
        // SAFETY: our copy.
        let next = unsafe { (*copy).Next };
        // SAFETY: as above.
        unsafe { free_copy(copy) };
        copy = next;
    }
}
