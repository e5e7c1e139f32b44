//! The module's pause gate: `FilterPause` may complete only when nothing the protocol owns is held, and two
//! independent halves hold protocol NBLs (the send path: queued originals and bypass sends below; the
//! receive path: NBLs indicated up and not yet returned). Each half reports when it owes nothing; the
//! last report completes the pause.
//!
//! Protocol ("Pausing a Filter Module", windows-driver-docs `network/pausing-a-filter-module`: a filter
//! that cannot finish its pause at once returns `NDIS_STATUS_PENDING` and later calls
//! `NdisFPauseComplete` exactly once): `FilterPause` calls [`PauseGate::arm`] with the number of halves,
//! then each half either finishes synchronously ([`PauseGate::part_done_sync`]) or later from its
//! completion path ([`PauseGate::part_done`]), and `FilterPause` returns [`PauseGate::finish`]. The
//! count carries one extra reference held by `FilterPause` itself, so a half that settles while
//! `FilterPause` is still running can never be the last, and `NdisFPauseComplete` is never called for
//! a pause that returned `NDIS_STATUS_SUCCESS`.
//!
//! IRQL: `arm`/`finish` at PASSIVE_LEVEL (FilterPause); `part_done` at IRQL <= DISPATCH_LEVEL (send
//! completions, receive returns). No lock: one atomic.
use core::sync::atomic::{AtomicU32, Ordering};

use kernel::ffi::ndis::{NDIS_HANDLE, NDIS_STATUS, NDIS_STATUS_PENDING, NDIS_STATUS_SUCCESS};
use kernel::ffi::ndis_filter::NdisFPauseComplete;

/// Counts the halves of a module whose pause is still outstanding (plus `FilterPause`'s own reference).
pub(crate) struct PauseGate {
    handle: NDIS_HANDLE,
    parts: AtomicU32,
}

impl PauseGate {
    /// A gate for the module with NDIS handle `handle`, idle.
    pub(crate) const fn new(handle: NDIS_HANDLE) -> Self {
        Self { handle, parts: AtomicU32::new(0) }
    }

    /// FilterPause begins: `halves` reports are owed, plus FilterPause's own reference.
    pub(crate) fn arm(&self, halves: u32) {
        self.parts.store(halves + 1, Ordering::Release);
    }

    /// A half finished inside FilterPause (it returned anything but pending).
    pub(crate) fn part_done_sync(&self) {
        // Never the last: FilterPause still holds its own reference.
        self.parts.fetch_sub(1, Ordering::AcqRel);
    }

    /// A half that pended now owes the protocol nothing. IRQL <= DISPATCH_LEVEL. Completes the pause if
    /// it is the last report.
    pub(crate) fn part_done(&self) {
        if self.parts.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: this module returned NDIS_STATUS_PENDING from FilterPause (the extra reference is
            // gone, so finish() ran and saw a half outstanding) and this is the one last report.
            unsafe { NdisFPauseComplete(self.handle) };
        }
    }

    /// FilterPause ends: `NDIS_STATUS_SUCCESS` if every half already finished, else `NDIS_STATUS_PENDING`
    /// (the last half's [`PauseGate::part_done`] completes it).
    pub(crate) fn finish(&self) -> NDIS_STATUS {
        if self.parts.fetch_sub(1, Ordering::AcqRel) == 1 {
            NDIS_STATUS_SUCCESS
        } else {
            NDIS_STATUS_PENDING
        }
    }
}
