//! OID request pass-through with cloned requests (Windows-driver-docs "Filter Module OID Requests",
//! "Sending OID requests from a filter driver"), and cancellation.
//!
//! A filter that registers `FilterOidRequest` must not forward the request NDIS gave it: it clones it
//! (`NdisAllocateCloneOidRequest`), keeps the original in the clone's `SourceReserved`, forwards the
//! clone with `NdisFOidRequest` and, when the clone completes (synchronously or in
//! `FilterOidRequestComplete`), copies the results back to the original, frees the clone
//! (`NdisFreeCloneOidRequest`) and completes the original with `NdisFOidRequestComplete`. The original
//! is always completed through that one path, so `FilterOidRequest` returns `NDIS_STATUS_PENDING` once the
//! clone is on its way (as the NDIS LWF sample does).
//!
//! # State and locking
//! [`OidState::pending`] holds the original request whose clone is outstanding, for
//! `FilterCancelOidRequest` to match its `RequestId`. NDIS issues a filter module's regular OID
//! requests one at a time ("Filter Module OID Requests": NDIS serializes them), so one slot suffices; it
//! is an atomic, no lock is taken.
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::ffi::ndis::{NDIS_HANDLE, NDIS_STATUS, NDIS_STATUS_PENDING, NDIS_STATUS_SUCCESS};
use kernel::ffi::ndis_filter::{NdisFCancelOidRequest, NdisFOidRequest, NdisFOidRequestComplete};
use kernel::ffi::oid::{
    NdisAllocateCloneOidRequest, NdisFreeCloneOidRequest, NdisRequestMethod, NdisRequestQueryInformation,
    NdisRequestQueryStatistics, NDIS_OID_REQUEST,
};

use crate::callbacks::module;

/// Pool tag of OID request clones: 'rdFo'.
const OID_TAG: u32 = u32::from_le_bytes(*b"rdFo");

/// Where the original request's address is kept in its clone's `SourceReserved` (the first pointer; the
/// field belongs to whoever issued the clone).
const ORIGINAL_AT: usize = 0;

/// A module's OID state (part of the module's receive-side state, `RxState::oid`).
pub(crate) struct OidState {
    /// The original request whose clone is outstanding below (null when none).
    pending: AtomicPtr<NDIS_OID_REQUEST>,
}

impl OidState {
    pub(crate) const fn new() -> Self {
        OidState { pending: AtomicPtr::new(null_mut()) }
    }
}

fn original_of(clone: &NDIS_OID_REQUEST) -> *mut NDIS_OID_REQUEST {
    let mut raw = [0u8; core::mem::size_of::<usize>()];
    if let Some(bytes) = clone.SourceReserved.get(ORIGINAL_AT..ORIGINAL_AT + raw.len()) {
        raw.copy_from_slice(bytes);
    }
    usize::from_ne_bytes(raw) as *mut NDIS_OID_REQUEST
}

/// `FilterOidRequest`. IRQL <= DISPATCH_LEVEL (NDIS calls it at PASSIVE_LEVEL for regular requests). No
/// lock. Clones `request`, forwards the clone and returns `NDIS_STATUS_PENDING`; the original completes
/// in [`filter_oid_request_complete`]. If the clone cannot be allocated the request fails with the
/// status NDIS returned (`NDIS_STATUS_RESOURCES`) and nothing is forwarded.
pub(crate) unsafe extern "system" fn filter_oid_request(
    context: NDIS_HANDLE,
    request: *mut NDIS_OID_REQUEST,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes the live module context from FilterAttach.
    let m = unsafe { module(context) };
    let mut clone: *mut NDIS_OID_REQUEST = null_mut();
    // SAFETY: `request` is valid for the call; the out-pointer is a local.
    let status = unsafe { NdisAllocateCloneOidRequest(m.filter_handle, request, OID_TAG, &raw mut clone) };
    if status != NDIS_STATUS_SUCCESS || clone.is_null() {
        return status;
    }
    // SAFETY: the clone is ours until it is freed; SourceReserved belongs to its issuer, us.
    let clone_ref = unsafe { &mut *clone };
    if let Some(slot) =
        clone_ref.SourceReserved.get_mut(ORIGINAL_AT..ORIGINAL_AT + core::mem::size_of::<usize>())
    {
        slot.copy_from_slice(&(request as usize).to_ne_bytes());
    }
    m.rx.oid.pending.store(request, Ordering::Release);
    // SAFETY: forwards our clone, which stays valid until it completes to us.
    let status = unsafe { NdisFOidRequest(m.filter_handle, clone) };
    if status != NDIS_STATUS_PENDING {
        // SAFETY: completed synchronously: the completion path copies results and completes the original.
        unsafe { filter_oid_request_complete(context, clone, status) };
    }
    NDIS_STATUS_PENDING
}

/// `FilterOidRequestComplete`. IRQL <= DISPATCH_LEVEL. No lock. Copies the clone's results (bytes
/// written/read/needed for the request's type) to the original, frees the clone and completes the
/// original with the clone's status.
pub(crate) unsafe extern "system" fn filter_oid_request_complete(
    context: NDIS_HANDLE,
    clone: *mut NDIS_OID_REQUEST,
    status: NDIS_STATUS,
) {
    // SAFETY: NDIS passes the live module context from FilterAttach.
    let m = unsafe { module(context) };
    // SAFETY: the clone is ours (we issued it) until we free it below.
    let from = unsafe { &*clone };
    let original = original_of(from);
    let _ = m.rx.oid.pending.compare_exchange(original, null_mut(), Ordering::AcqRel, Ordering::Acquire);
    // SAFETY: the original stays valid until we complete it; it is not the clone.
    if let Some(to) = unsafe { original.as_mut() } {
        copy_results(from, to);
    }
    // SAFETY: the clone came from NdisAllocateCloneOidRequest and is freed once, here.
    unsafe { NdisFreeCloneOidRequest(m.filter_handle, clone) };
    if !original.is_null() {
        // SAFETY: completes the request NDIS gave us, once.
        unsafe { NdisFOidRequestComplete(m.filter_handle, original, status) };
    }
}

/// Copies what the layers below reported into the original request (the NDIS LWF sample's
/// `FilterOidRequestComplete`: per request type, the byte counts; the information buffer is shared).
fn copy_results(from: &NDIS_OID_REQUEST, to: &mut NDIS_OID_REQUEST) {
    let kind = from.RequestType;
    if kind == NdisRequestMethod {
        // SAFETY: a method request: METHOD_INFORMATION is the active member of both.
        let f = unsafe { from.DATA.METHOD_INFORMATION };
        // SAFETY: as above, for the original.
        let t = unsafe { &mut to.DATA.METHOD_INFORMATION };
        t.OutputBufferLength = f.OutputBufferLength;
        t.BytesRead = f.BytesRead;
        t.BytesWritten = f.BytesWritten;
        t.BytesNeeded = f.BytesNeeded;
    } else if kind == NdisRequestQueryInformation || kind == NdisRequestQueryStatistics {
        // SAFETY: a query: QUERY_INFORMATION is the active member of both.
        let f = unsafe { from.DATA.QUERY_INFORMATION };
        // SAFETY: as above, for the original.
        let t = unsafe { &mut to.DATA.QUERY_INFORMATION };
        t.BytesWritten = f.BytesWritten;
        t.BytesNeeded = f.BytesNeeded;
    } else {
        // SAFETY: a set: SET_INFORMATION is the active member of both.
        let f = unsafe { from.DATA.SET_INFORMATION };
        // SAFETY: as above, for the original.
        let t = unsafe { &mut to.DATA.SET_INFORMATION };
        t.BytesRead = f.BytesRead;
        t.BytesNeeded = f.BytesNeeded;
    }
}

/// `FilterCancelOidRequest`. IRQL <= DISPATCH_LEVEL. No lock. If the request being forwarded has this
/// `RequestId`, the cancellation is passed down (`NdisFCancelOidRequest`; the clone carries the same
/// id); the request then completes through [`filter_oid_request_complete`] as usual. Otherwise the
/// request is not ours (or already done) and there is nothing to do.
pub(crate) unsafe extern "system" fn filter_cancel_oid_request(
    context: NDIS_HANDLE,
    request_id: *mut c_void,
) {
    // SAFETY: NDIS passes the live module context from FilterAttach.
    let m = unsafe { module(context) };
    let pending = m.rx.oid.pending.load(Ordering::Acquire);
    // SAFETY: a pending original stays valid until its completion clears the slot.
    let Some(original) = (unsafe { pending.as_ref() }) else { return };
    if original.RequestId == request_id {
        // SAFETY: our module handle; the id names the clone we forwarded.
        unsafe { NdisFCancelOidRequest(m.filter_handle, request_id) };
    }
}
