//! OID requests through a filter stack, one at a time as NDIS issues them: the protocol's request goes
//! down through each module's FilterOidRequest (a filter forwards a *clone*, made with
//! `NdisAllocateCloneOidRequest`, with `NdisFOidRequest`) to the NIC, and completes back up through
//! FilterOidRequestComplete / `NdisFOidRequestComplete`.
//!
//! Rules (Windows-driver-docs "Filter Module OID Requests", `NdisFOidRequest`, `NdisFOidRequestComplete`,
//! Driver Verifier NDIS rules): a filter never forwards the request NDIS gave it, completes each request
//! exactly once and never with `NDIS_STATUS_PENDING`, frees every clone it made, and requests complete
//! within 12 seconds.
#![allow(non_upper_case_globals)] // the WDK's enum constants keep their C names

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kernel::ffi::ndis::{
    NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_OID_REQUEST, NDIS_OID, NDIS_STATUS,
    NDIS_STATUS_BUFFER_TOO_SHORT, NDIS_STATUS_INVALID_OID, NDIS_STATUS_PENDING, NDIS_STATUS_RESOURCES,
    NDIS_STATUS_SUCCESS,
};
use kernel::ffi::ntos::{DISPATCH_LEVEL, PASSIVE_LEVEL};
use kernel::ffi::oid::{
    NdisRequestQueryInformation, NdisRequestSetInformation, NDIS_OID_REQUEST, NDIS_OID_REQUEST_QUERY,
    NDIS_OID_REQUEST_REVISION_1, NDIS_REQUEST_TYPE, OID_802_3_CURRENT_ADDRESS, OID_GEN_CURRENT_PACKET_FILTER,
    OID_GEN_LINK_SPEED, OID_GEN_MAXIMUM_FRAME_SIZE,
};

use crate::context::{call_driver, current_driver, require_irql_at_most, DriverId};
use crate::ndis::{self, ModuleState};
use crate::verifier::{violation, Rule};

/// "NDIS: an OID request ... must complete within 12 seconds" (Driver Verifier NDIS/WIFI verification,
/// the OID timeout it enforces).
pub const OID_TIMEOUT: Duration = Duration::from_secs(12);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Issuer {
    Protocol,
    Module(usize),
}

#[derive(Debug)]
struct Pending {
    /// Who issued it (and gets the completion).
    issuer: Issuer,
    /// The module it was delivered to, if any (else the NIC took it).
    delivered_to: Option<usize>,
    completed: Option<NDIS_STATUS>,
    issued: Instant,
}

#[derive(Debug)]
struct Clone {
    owner: Option<DriverId>,
    layout: std::alloc::Layout,
}

#[derive(Default)]
struct State {
    /// Requests in flight, by address.
    pending: BTreeMap<usize, Pending>,
    clones: BTreeMap<usize, Clone>,
    /// The packet filter each NIC was set to.
    packet_filter: BTreeMap<u32, u32>,
    /// Requests the NIC pended, with the status they complete with.
    nic_pended: Vec<(usize, NDIS_STATUS)>,
    /// The NIC pends every other request, so both completion paths run.
    pend_next: bool,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = crate::lock(&STATE);
    f(guard.get_or_insert_with(State::default))
}

pub(crate) fn reset() {
    let clones: Vec<(usize, std::alloc::Layout)> =
        with(|s| s.clones.iter().map(|(&a, c)| (a, c.layout)).collect());
    for (address, layout) in clones {
        // SAFETY: allocated by NdisAllocateCloneOidRequest with this layout and still tracked.
        unsafe { std::alloc::dealloc(address as *mut u8, layout) };
    }
    *crate::lock(&STATE) = None;
}

/// Reports clones a driver still holds when it unloads.
pub(crate) fn check_unload(driver: DriverId, name: &str) {
    let leaked: Vec<usize> = with(|s| {
        let keys: Vec<usize> =
            s.clones.iter().filter(|(_, c)| c.owner == Some(driver)).map(|(&a, _)| a).collect();
        for k in &keys {
            if let Some(c) = s.clones.remove(k) {
                // SAFETY: allocated by NdisAllocateCloneOidRequest with this layout; no longer tracked.
                unsafe { std::alloc::dealloc(*k as *mut u8, c.layout) };
            }
        }
        keys
    });
    if !leaked.is_empty() {
        violation(
            Rule::OidCloneLeak,
            format!("{name} unloaded holding {} cloned OID request(s)", leaked.len()),
        );
    }
}

/// The packet filter the protocol's set reached the NIC with.
pub fn packet_filter(nic: u32) -> Option<u32> {
    with(|s| s.packet_filter.get(&nic).copied())
}

/// The result of a protocol OID request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidResult {
    pub status: NDIS_STATUS,
    /// Bytes written (query) or read (set).
    pub bytes: u32,
    pub bytes_needed: u32,
    pub buffer: Vec<u8>,
}

/// The protocol issues one OID request on `nic` and waits for its completion (pumping nothing else: the
/// simulated NIC answers at once). `buffer` is the information buffer (its length is the buffer length).
pub fn protocol_request(
    nic: u32,
    request_type: NDIS_REQUEST_TYPE,
    oid: NDIS_OID,
    buffer: &[u8],
) -> OidResult {
    let mut info = buffer.to_vec();
    // SAFETY: plain C data; zero is valid for every field.
    let mut request: Box<NDIS_OID_REQUEST> = Box::new(unsafe { std::mem::zeroed() });
    request.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_OID_REQUEST,
        NDIS_OID_REQUEST_REVISION_1,
        std::mem::size_of::<NDIS_OID_REQUEST>(),
    );
    request.RequestType = request_type;
    request.DATA.QUERY_INFORMATION = NDIS_OID_REQUEST_QUERY {
        Oid: oid,
        InformationBuffer: info.as_mut_ptr().cast(),
        InformationBufferLength: u32::try_from(info.len()).unwrap_or(0),
        BytesWritten: 0,
        BytesNeeded: 0,
    };
    let address = &raw mut *request;
    with(|s| {
        s.pending.insert(
            address as usize,
            Pending { issuer: Issuer::Protocol, delivered_to: None, completed: None, issued: Instant::now() },
        )
    });
    let status = send_down(nic, None, address);
    drain_nic();
    let status = if status == NDIS_STATUS_PENDING {
        with(|s| s.pending.get(&(address as usize)).and_then(|p| p.completed)).unwrap_or(NDIS_STATUS_PENDING)
    } else {
        status
    };
    let elapsed = with(|s| s.pending.remove(&(address as usize)).map(|p| p.issued.elapsed()));
    if status == NDIS_STATUS_PENDING {
        violation(Rule::OidTimeout, format!("OID {oid:#010x} never completed"));
    } else if elapsed.is_some_and(|e| e > OID_TIMEOUT) {
        violation(Rule::OidTimeout, format!("OID {oid:#010x} took {elapsed:?}"));
    }
    // SAFETY: the request is ours again; the union member for query and set has the same layout prefix.
    let q = unsafe { request.DATA.QUERY_INFORMATION };
    OidResult { status, bytes: q.BytesWritten, bytes_needed: q.BytesNeeded, buffer: info }
}

/// The next module below `from` (None = the protocol) that takes OID requests: attached and not
/// attaching, with an OID handler.
fn module_below(nic: u32, from: Option<usize>) -> Option<usize> {
    let modules = ndis::modules_on(nic);
    let candidates: Vec<usize> = match from {
        None => modules.iter().rev().copied().collect(),
        Some(m) => modules.iter().rev().skip_while(|&&x| x != m).skip(1).copied().collect(),
    };
    candidates.into_iter().find(|&m| {
        ndis::module_view(m)
            .is_some_and(|v| v.state != ModuleState::Attaching && v.handlers.0.OidRequestHandler.is_some())
    })
}

fn send_down(nic: u32, from: Option<usize>, request: *mut NDIS_OID_REQUEST) -> NDIS_STATUS {
    match module_below(nic, from) {
        Some(m) => {
            let Some(view) = ndis::module_view(m) else { return NDIS_STATUS_RESOURCES };
            let handler = view.handlers.0.OidRequestHandler.expect("checked in module_below");
            with(|s| {
                if let Some(p) = s.pending.get_mut(&(request as usize)) {
                    p.delivered_to = Some(m);
                }
            });
            let status = call_driver(view.owner, PASSIVE_LEVEL, "FilterOidRequest", || {
                // SAFETY: the module's registered handler; the request lives until it completes.
                unsafe { handler(view.context, request) }
            });
            if status != NDIS_STATUS_PENDING {
                mark_completed(request, status);
            }
            status
        }
        None => {
            let status = nic_request(nic, request);
            let pend = with(|s| {
                s.pend_next = !s.pend_next;
                s.pend_next
            });
            if pend {
                with(|s| s.nic_pended.push((request as usize, status)));
                NDIS_STATUS_PENDING
            } else {
                status
            }
        }
    }
}

/// Completes the requests the NIC pended (as its DPC would): each completion goes to whoever issued the
/// request at the layer above the NIC.
fn drain_nic() {
    loop {
        let Some((request, status)) = with(|s| s.nic_pended.pop()) else { return };
        let issuer = with(|s| {
            let p = s.pending.get_mut(&request)?;
            p.completed = Some(status);
            Some(p.issuer)
        });
        if let Some(Issuer::Module(m)) = issuer {
            complete_to_module(m, request as *mut NDIS_OID_REQUEST, status);
        }
    }
}

fn mark_completed(request: *mut NDIS_OID_REQUEST, status: NDIS_STATUS) {
    with(|s| {
        if let Some(p) = s.pending.get_mut(&(request as usize)) {
            p.completed = Some(status);
        }
    });
}

/// The simulated miniport's OID handling (synchronous).
fn nic_request(nic: u32, request: *mut NDIS_OID_REQUEST) -> NDIS_STATUS {
    let Some(info) = crate::datapath::nic_info(nic) else { return NDIS_STATUS_RESOURCES };
    // SAFETY: the request is valid while in flight; the query/set members share their prefix.
    let r = unsafe { &mut *request };
    // SAFETY: as above.
    let q = unsafe { &mut r.DATA.QUERY_INFORMATION };
    let answer: Option<Vec<u8>> = match (r.RequestType, q.Oid) {
        (NdisRequestQueryInformation, OID_GEN_MAXIMUM_FRAME_SIZE) => Some(info.mtu.to_le_bytes().to_vec()),
        (NdisRequestQueryInformation, OID_802_3_CURRENT_ADDRESS) => Some(info.mac.to_vec()),
        (NdisRequestQueryInformation, OID_GEN_LINK_SPEED) => Some(100_000_000u32.to_le_bytes().to_vec()),
        // The miniport's current NDIS_OFFLOAD (revision 6, 216 bytes); NDIS answers this OID from what the
        // miniport reported (OID_TCP_OFFLOAD_CURRENT_CONFIG docs), modelled here at the bottom of the stack
        // so filters see the request and the answer pass through them.
        (NdisRequestQueryInformation, kernel::ffi::oid::OID_TCP_OFFLOAD_CURRENT_CONFIG) => {
            crate::datapath::nic_offload_bytes(nic)
        }
        (NdisRequestSetInformation, OID_GEN_CURRENT_PACKET_FILTER) => {
            if q.InformationBufferLength < 4 {
                q.BytesNeeded = 4;
                return NDIS_STATUS_BUFFER_TOO_SHORT;
            }
            // SAFETY: the issuer's buffer holds InformationBufferLength (>= 4) bytes.
            let value = unsafe { q.InformationBuffer.cast::<u32>().read_unaligned() };
            with(|s| s.packet_filter.insert(nic, value));
            q.BytesWritten = 4; // BytesRead for a set: same offset in the union.
            return NDIS_STATUS_SUCCESS;
        }
        _ => None,
    };
    let Some(answer) = answer else { return NDIS_STATUS_INVALID_OID };
    let needed = u32::try_from(answer.len()).unwrap_or(u32::MAX);
    if q.InformationBufferLength < needed {
        q.BytesNeeded = needed;
        return NDIS_STATUS_BUFFER_TOO_SHORT;
    }
    // SAFETY: the issuer's buffer holds InformationBufferLength (>= needed) bytes.
    unsafe { std::ptr::copy_nonoverlapping(answer.as_ptr(), q.InformationBuffer.cast::<u8>(), answer.len()) };
    q.BytesWritten = needed;
    NDIS_STATUS_SUCCESS
}

/// `NdisAllocateCloneOidRequest`. IRQL <= DISPATCH_LEVEL. A copy of `request` the filter owns and frees
/// with `NdisFreeCloneOidRequest`.
///
/// # Safety
/// `request` must be valid; `clone_out` valid for writes.
#[no_mangle]
pub unsafe extern "system" fn NdisAllocateCloneOidRequest(
    _source: NDIS_HANDLE,
    request: *mut NDIS_OID_REQUEST,
    _tag: u32,
    clone_out: *mut *mut NDIS_OID_REQUEST,
) -> NDIS_STATUS {
    require_irql_at_most(DISPATCH_LEVEL, "NdisAllocateCloneOidRequest");
    let layout = std::alloc::Layout::new::<NDIS_OID_REQUEST>();
    // SAFETY: nonzero-size layout.
    let clone = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<NDIS_OID_REQUEST>();
    if clone.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: `request` is valid (caller's contract) and `clone` is a fresh block of the same type.
    unsafe { std::ptr::copy_nonoverlapping(request, clone, 1) };
    with(|s| s.clones.insert(clone as usize, Clone { owner: current_driver(), layout }));
    // SAFETY: the caller's out pointer is valid for writes.
    unsafe { clone_out.write(clone) };
    NDIS_STATUS_SUCCESS
}

/// `NdisFreeCloneOidRequest`. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `request` must be a clone from `NdisAllocateCloneOidRequest`.
#[no_mangle]
pub unsafe extern "system" fn NdisFreeCloneOidRequest(_source: NDIS_HANDLE, request: *mut NDIS_OID_REQUEST) {
    require_irql_at_most(DISPATCH_LEVEL, "NdisFreeCloneOidRequest");
    match with(|s| s.clones.remove(&(request as usize))) {
        // SAFETY: allocated above with this layout and no longer tracked.
        Some(c) => unsafe { std::alloc::dealloc(request.cast(), c.layout) },
        None => violation(
            Rule::OidCompleteTwice,
            format!("NdisFreeCloneOidRequest({request:p}): not a live clone"),
        ),
    }
}

/// `NdisFOidRequest`. IRQL PASSIVE_LEVEL. Sends the filter's own request (a clone) down the stack.
///
/// # Safety
/// `request` must stay valid until it completes.
#[no_mangle]
pub unsafe extern "system" fn NdisFOidRequest(
    handle: NDIS_HANDLE,
    request: *mut NDIS_OID_REQUEST,
) -> NDIS_STATUS {
    require_irql_at_most(PASSIVE_LEVEL, "NdisFOidRequest");
    let m = handle as usize;
    let Some(nic) = ndis::nic_of(m) else {
        violation(Rule::NdisBadHandle, format!("NdisFOidRequest({handle:p}): not an attached filter module"));
        return NDIS_STATUS_RESOURCES;
    };
    let original = with(|s| s.pending.get(&(request as usize)).is_some_and(|p| p.delivered_to == Some(m)));
    if original {
        violation(
            Rule::OidForwardOriginal,
            "NdisFOidRequest forwarded the request NDIS gave the filter, not a clone",
        );
        return NDIS_STATUS_RESOURCES;
    }
    with(|s| {
        s.pending.insert(
            request as usize,
            Pending {
                issuer: Issuer::Module(m),
                delivered_to: None,
                completed: None,
                issued: Instant::now(),
            },
        )
    });
    let status = send_down(nic, Some(m), request);
    if status != NDIS_STATUS_PENDING {
        // Completed synchronously: the filter sees the status as the return value.
        with(|s| s.pending.remove(&(request as usize)));
    }
    status
}

/// `NdisFOidRequestComplete`. IRQL <= DISPATCH_LEVEL. Completes a request NDIS gave the filter and the
/// filter pended.
///
/// # Safety
/// `request` must be the request from FilterOidRequest.
#[no_mangle]
pub unsafe extern "system" fn NdisFOidRequestComplete(
    handle: NDIS_HANDLE,
    request: *mut NDIS_OID_REQUEST,
    status: NDIS_STATUS,
) {
    require_irql_at_most(DISPATCH_LEVEL, "NdisFOidRequestComplete");
    let m = handle as usize;
    if status == NDIS_STATUS_PENDING {
        violation(Rule::OidCompletePending, "NdisFOidRequestComplete with NDIS_STATUS_PENDING");
        return;
    }
    let verdict = with(|s| match s.pending.get_mut(&(request as usize)) {
        Some(p) if p.delivered_to == Some(m) && p.completed.is_none() => {
            p.completed = Some(status);
            Ok(p.issuer)
        }
        Some(p) if p.delivered_to == Some(m) => Err(format!("request {request:p} completed twice")),
        _ => Err(format!("NdisFOidRequestComplete({request:p}): not a pending request of this filter")),
    });
    match verdict {
        Ok(Issuer::Protocol) => {}
        Ok(Issuer::Module(above)) => complete_to_module(above, request, status),
        Err(detail) => violation(Rule::OidCompleteTwice, detail),
    }
}

/// Delivers the completion of a module's own (cloned) request to its FilterOidRequestComplete.
fn complete_to_module(module: usize, request: *mut NDIS_OID_REQUEST, status: NDIS_STATUS) {
    with(|s| s.pending.remove(&(request as usize)));
    let Some(view) = ndis::module_view(module) else { return };
    if let Some(handler) = view.handlers.0.OidRequestCompleteHandler {
        call_driver(view.owner, PASSIVE_LEVEL, "FilterOidRequestComplete", || {
            // SAFETY: the module's registered handler with its own request.
            unsafe { handler(view.context, request, status) }
        });
    }
}

/// `NdisFCancelOidRequest`. IRQL <= DISPATCH_LEVEL. A filter forwards a cancellation for a request it
/// forwarded (its clone carries the original's `RequestId`): NDIS calls the next lower module's
/// FilterCancelOidRequest, or the miniport's MiniportCancelOidRequest (Windows-driver-docs
/// "NdisFCancelOidRequest": "NDIS calls the MiniportCancelOidRequest or FilterCancelOidRequest function of
/// the underlying driver"). The simulated NIC answers every request before the issuer can cancel it, so at
/// the bottom of the stack there is nothing left to cancel. Calls are counted ([`cancels_forwarded`]).
///
/// # Safety
/// `handle` is validated; `request_id` is an opaque value.
#[no_mangle]
pub unsafe extern "system" fn NdisFCancelOidRequest(handle: NDIS_HANDLE, request_id: *mut core::ffi::c_void) {
    require_irql_at_most(DISPATCH_LEVEL, "NdisFCancelOidRequest");
    let m = handle as usize;
    let Some(nic) = ndis::nic_of(m) else {
        violation(
            Rule::NdisBadHandle,
            format!("NdisFCancelOidRequest({handle:p}): not an attached filter module"),
        );
        return;
    };
    CANCELS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let below = ndis::modules_on(nic).iter().rev().skip_while(|&&x| x != m).skip(1).copied().find(|&x| {
        ndis::module_view(x).is_some_and(|v| {
            v.state != ModuleState::Attaching && v.handlers.0.CancelOidRequestHandler.is_some()
        })
    });
    if let Some(view) = below.and_then(ndis::module_view) {
        let handler = view.handlers.0.CancelOidRequestHandler.expect("checked above");
        call_driver(view.owner, DISPATCH_LEVEL, "FilterCancelOidRequest", || {
            // SAFETY: the module's registered handler with its own context.
            unsafe { handler(view.context, request_id) }
        });
    }
}

static CANCELS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times filters forwarded an OID cancellation with `NdisFCancelOidRequest`.
pub fn cancels_forwarded() -> u64 {
    CANCELS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The protocol cancels an OID request by `RequestId` on `nic` (NDIS calls the top module's
/// FilterCancelOidRequest). The simulated stack completes every request synchronously, so this only
/// exercises the cancel handlers' pass-through.
pub fn protocol_cancel_request(nic: u32, request_id: usize) {
    let top = ndis::modules_on(nic).iter().rev().copied().find(|&x| {
        ndis::module_view(x).is_some_and(|v| {
            v.state != ModuleState::Attaching && v.handlers.0.CancelOidRequestHandler.is_some()
        })
    });
    if let Some(view) = top.and_then(ndis::module_view) {
        let handler = view.handlers.0.CancelOidRequestHandler.expect("checked above");
        call_driver(view.owner, DISPATCH_LEVEL, "FilterCancelOidRequest", || {
            // SAFETY: the module's registered handler with its own context.
            unsafe { handler(view.context, request_id as *mut core::ffi::c_void) }
        });
    }
}
