//! A small passthrough lightweight filter that lives with the tests: it registers every data-path handler
//! and passes everything through unchanged, counting what it owes so its pause completes only when
//! nothing is outstanding. The suites drive it through the simulated NDIS until the real filter carries
//! the data path.
//!
//! [`BUG`] makes it break exactly one NDIS rule, for the verifier's negative tests (each test runs in its
//! own process, so the switch is set once before the driver loads).
#![allow(clippy::missing_safety_doc)]

use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, Ordering};

use kernel::ffi::mdl::{IoAllocateMdl, IoFreeMdl, MmBuildMdlForNonPagedPool, MDL};
use kernel::ffi::nbl::{
    NdisAllocateNetBufferAndNetBufferList, NdisAllocateNetBufferListPool, NdisFreeNetBufferList,
    NdisFreeNetBufferListPool, NET_BUFFER_LIST_POOL_PARAMETERS,
};
use kernel::ffi::nbl::{
    NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL, NDIS_RECEIVE_FLAGS_RESOURCES, NDIS_RETURN_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL, NDIS_SEND_FLAGS_DISPATCH_LEVEL, NET_BUFFER_LIST,
};
use kernel::ffi::ndis::{
    NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
    NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS, NDIS_PORT_NUMBER, NDIS_STATUS, NDIS_STATUS_PAUSED,
    NDIS_STATUS_PENDING, NDIS_STATUS_RESOURCES, NDIS_STATUS_SUCCESS,
};
use kernel::ffi::ndis_filter::{
    NdisFDeregisterFilterDriver, NdisFIndicateReceiveNetBufferLists, NdisFIndicateStatus, NdisFPauseComplete,
    NdisFRegisterFilterDriver, NdisFReturnNetBufferLists, NdisFSendNetBufferLists,
    NdisFSendNetBufferListsComplete, NdisFSetAttributes, NDIS_FILTER_ATTACH_PARAMETERS,
    NDIS_FILTER_ATTRIBUTES, NDIS_FILTER_ATTRIBUTES_REVISION_1, NDIS_FILTER_CHARACTERISTICS_REVISION_2,
    NDIS_FILTER_DRIVER_CHARACTERISTICS, NDIS_FILTER_PAUSE_PARAMETERS, NDIS_FILTER_RESTART_PARAMETERS,
    NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
};
use kernel::ffi::ndis_filter::{NdisFOidRequest, NdisFOidRequestComplete};
use kernel::ffi::ntos::{ExAllocatePool2, ExFreePoolWithTag, POOL_FLAG_NON_PAGED};
use kernel::ffi::ntos::{KeGetCurrentIrql, DISPATCH_LEVEL, DRIVER_OBJECT, NTSTATUS, UNICODE_STRING};
use kernel::ffi::oid::{
    NdisAllocateCloneOidRequest, NdisFreeCloneOidRequest, NDIS_OID_REQUEST, NDIS_STATUS_INDICATION,
};
use kernel::pool::PoolBox;
use kernel::unicode_string;

/// The deliberate mistakes the filter can make, one rule each.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    None = 0,
    /// `NdisFReturnNetBufferLists` on RESOURCES receives: `ndis.return_resources`.
    ReturnResources,
    /// Completes sends it already passed down: `ndis.send_ownership`.
    CompleteAfterSend,
    /// Returns receives it already indicated up: `ndis.receive_ownership`.
    ReturnAfterIndicate,
    /// Indicates RESOURCES receives one by one and leaves the chain broken: `ndis.resources_chain`.
    BreakResourcesChain,
    /// Holds sends and still completes its pause at once: `ndis.pause_outstanding`.
    PauseWhileHolding,
    /// Forwards sends without the DISPATCH_LEVEL flag whatever the IRQL: `irql.flag_mismatch`.
    WrongDispatchFlag,
    /// Forwards the OID request NDIS gave it instead of a clone: `oid.forward_original`.
    ForwardOriginalOid,
    /// Completes an OID request twice: `oid.complete_twice`.
    CompleteOidTwice,
    /// First completes an OID request with NDIS_STATUS_PENDING: `oid.complete_pending`.
    CompleteOidPending,
    /// Never frees its OID clones: `oid.clone_leak`.
    LeakOidClone,
    /// Originates a send without its handle in SourceHandle: `ndis.source_handle`.
    OwnSendWithoutSourceHandle,
    /// Completes its own send up the stack: `ndis.complete_own_nbl`.
    CompleteOwnSend,
    /// Originates a send while Paused: `ndis.send_while_paused`.
    SendWhilePaused,
    /// Originates a receive indication while Paused: `ndis.receive_while_paused`.
    IndicateWhilePaused,
    /// Returns its own receive down the stack: `ndis.return_own_nbl`.
    ReturnOwnReceive,
    /// Calls NdisFSetAttributes outside FilterAttach: `ndis.filter_state`.
    SetAttributesInRestart,
    /// Pends an OID request and never completes it: `oid.timeout`.
    NeverCompleteOid,
    /// Pends its pause and never completes it: `ndis.pause_timeout`.
    PauseNeverCompletes,
    /// Marks every send it passes down for LSOv1, which the NIC does not advertise:
    /// `offload.not_advertised`.
    LsoNotAdvertised,
    /// Holds its first send chain until the next pause (then completes it properly): past 30 s of machine
    /// time that is `ndis.timed_data_send`.
    HoldSends,
    /// Holds its first receive chain until the next pause (then returns it properly):
    /// `ndis.timed_data_receive`.
    HoldReceives,
}

/// The mistake to make (set before loading the driver).
pub static BUG: AtomicU32 = AtomicU32::new(Bug::None as u32);

fn bug() -> Bug {
    match BUG.load(Ordering::Relaxed) {
        1 => Bug::ReturnResources,
        2 => Bug::CompleteAfterSend,
        3 => Bug::ReturnAfterIndicate,
        4 => Bug::BreakResourcesChain,
        5 => Bug::PauseWhileHolding,
        6 => Bug::WrongDispatchFlag,
        7 => Bug::ForwardOriginalOid,
        8 => Bug::CompleteOidTwice,
        9 => Bug::CompleteOidPending,
        10 => Bug::LeakOidClone,
        11 => Bug::OwnSendWithoutSourceHandle,
        12 => Bug::CompleteOwnSend,
        13 => Bug::SendWhilePaused,
        14 => Bug::IndicateWhilePaused,
        15 => Bug::ReturnOwnReceive,
        16 => Bug::SetAttributesInRestart,
        17 => Bug::NeverCompleteOid,
        18 => Bug::PauseNeverCompletes,
        19 => Bug::LsoNotAdvertised,
        20 => Bug::HoldSends,
        21 => Bug::HoldReceives,
        _ => Bug::None,
    }
}

/// The passthrough filter's service and unique names (a test filter, not in any INF).
pub const SERVICE: &str = "rdcopassthru";
const UNIQUE: &str = "{5F3A0C11-7E2B-4C57-9D0E-2A6B1C8D4E90}";
const MODULE_TAG: u32 = u32::from_le_bytes(*b"ptFm");

const RUNNING: u32 = 1;
const PAUSING: u32 = 2;
const PAUSED: u32 = 3;

struct Module {
    handle: NDIS_HANDLE,
    state: AtomicU32,
    /// Sends passed down and not completed, plus receives indicated up and not returned.
    outstanding: AtomicI64,
    pause_pending: AtomicBool,
    /// Sends held by [`Bug::PauseWhileHolding`], completed at detach.
    held: AtomicPtr<NET_BUFFER_LIST>,
    /// Receives held by [`Bug::HoldReceives`], returned at pause.
    held_rx: AtomicPtr<NET_BUFFER_LIST>,
    /// Resources for one filter-originated NBL (the own-NBL bug modes).
    own_pool: NDIS_HANDLE,
    own_buffer: *mut c_void,
    own_mdl: *mut MDL,
    /// The own NBL while it is out, and whether it was originated yet.
    own: AtomicPtr<NET_BUFFER_LIST>,
    originated: AtomicBool,
}

static DRIVER: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

fn count(mut nbl: *mut NET_BUFFER_LIST) -> i64 {
    let mut n = 0;
    while !nbl.is_null() {
        n += 1;
        // SAFETY: chains handed to the filter are valid NBL lists.
        nbl = unsafe { (*nbl).Next };
    }
    n
}

fn at_dispatch() -> bool {
    // SAFETY: KeGetCurrentIrql may be called at any IRQL.
    let irql = unsafe { KeGetCurrentIrql() };
    irql == DISPATCH_LEVEL
}

fn module<'a>(context: NDIS_HANDLE) -> &'a Module {
    // SAFETY: NDIS passes back the context from FilterAttach while the module is attached.
    unsafe { &*context.cast::<Module>() }
}

/// Drops the module's outstanding count and completes a pended pause when it reaches zero.
fn settle(m: &Module, n: i64) {
    let left = m.outstanding.fetch_sub(n, Ordering::AcqRel) - n;
    if left == 0 && m.pause_pending.swap(false, Ordering::AcqRel) {
        m.state.store(PAUSED, Ordering::Release);
        // SAFETY: the module pended its pause and now owes nothing.
        unsafe { NdisFPauseComplete(m.handle) };
    }
}

/// `DriverEntry` of the passthrough filter. PASSIVE_LEVEL.
pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    _registry: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: plain C data; zero means "no handler".
    let mut c: NDIS_FILTER_DRIVER_CHARACTERISTICS = unsafe { core::mem::zeroed() };
    c.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
        NDIS_FILTER_CHARACTERISTICS_REVISION_2,
        NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
    );
    c.MajorNdisVersion = 6;
    c.MinorNdisVersion = 30;
    c.FriendlyName = unicode_string!("rdco passthrough test filter");
    c.UniqueName = unicode_string!(UNIQUE);
    c.ServiceName = unicode_string!(SERVICE);
    c.AttachHandler = Some(attach);
    c.DetachHandler = Some(detach);
    c.RestartHandler = Some(restart);
    c.PauseHandler = Some(pause);
    c.SendNetBufferListsHandler = Some(send);
    c.SendNetBufferListsCompleteHandler = Some(send_complete);
    c.ReceiveNetBufferListsHandler = Some(receive);
    c.ReturnNetBufferListsHandler = Some(return_nbls);
    c.StatusHandler = Some(status);
    c.OidRequestHandler = Some(oid_request);
    c.NetPnPEventHandler = Some(net_pnp_event);
    c.DevicePnPEventNotifyHandler = Some(device_pnp_event);
    c.SetFilterModuleOptionsHandler = Some(set_module_options);
    c.OidRequestCompleteHandler = Some(oid_request_complete);
    let mut handle: NDIS_HANDLE = null_mut();
    // SAFETY: PASSIVE_LEVEL in DriverEntry; NDIS copies the characteristics.
    let result = unsafe { NdisFRegisterFilterDriver(driver, driver.cast(), &raw mut c, &raw mut handle) };
    if result == NDIS_STATUS_SUCCESS {
        DRIVER.store(handle, Ordering::Release);
        // SAFETY: the driver object is writable during DriverEntry.
        unsafe { (*driver).DriverUnload = Some(unload) };
    }
    result
}

unsafe extern "system" fn unload(_driver: *mut DRIVER_OBJECT) {
    let handle = DRIVER.swap(null_mut(), Ordering::AcqRel);
    // SAFETY: the registration handle from DriverEntry, deregistered once.
    unsafe { NdisFDeregisterFilterDriver(handle) };
}

unsafe extern "system" fn attach(
    handle: NDIS_HANDLE,
    _driver: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_ATTACH_PARAMETERS,
) -> NDIS_STATUS {
    let (own_pool, own_buffer, own_mdl) =
        if own_nbl_bug() { own_resources(handle) } else { (null_mut(), null_mut(), null_mut()) };
    let m = Module {
        handle,
        state: AtomicU32::new(PAUSED),
        outstanding: AtomicI64::new(0),
        pause_pending: AtomicBool::new(false),
        held: AtomicPtr::new(null_mut()),
        held_rx: AtomicPtr::new(null_mut()),
        own_pool,
        own_buffer,
        own_mdl,
        own: AtomicPtr::new(null_mut()),
        originated: AtomicBool::new(false),
    };
    let Ok(m) = PoolBox::new(m, MODULE_TAG) else { return NDIS_STATUS_RESOURCES };
    let context = m.into_raw();
    let mut attributes = NDIS_FILTER_ATTRIBUTES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
            NDIS_FILTER_ATTRIBUTES_REVISION_1,
            core::mem::size_of::<NDIS_FILTER_ATTRIBUTES>(),
        ),
        Flags: 0,
    };
    // SAFETY: inside FilterAttach with NDIS's handle.
    let status = unsafe { NdisFSetAttributes(handle, context.cast(), &raw mut attributes) };
    if status != NDIS_STATUS_SUCCESS {
        // SAFETY: NDIS did not take the context.
        drop(unsafe { PoolBox::from_raw(context, MODULE_TAG) });
    }
    status
}

unsafe extern "system" fn detach(context: NDIS_HANDLE) {
    let m = module(context);
    let held = m.held.swap(null_mut(), Ordering::AcqRel);
    if !held.is_null() {
        let mut nbl = held;
        while !nbl.is_null() {
            // SAFETY: the held chain is the filter's to complete.
            unsafe { (*nbl).Status = NDIS_STATUS_PAUSED };
            // SAFETY: as above.
            nbl = unsafe { (*nbl).Next };
        }
        // SAFETY: completes sends the filter holds.
        unsafe { NdisFSendNetBufferListsComplete(m.handle, held, 0) };
    }
    match bug() {
        Bug::SendWhilePaused => {
            let own = own_nbl(m);
            // SAFETY: deliberately wrong: the module is Paused; the simulation refuses the send.
            unsafe { NdisFSendNetBufferLists(m.handle, own, 0, 0) };
            free_own(m, own);
        }
        Bug::IndicateWhilePaused => {
            let own = own_nbl(m);
            // SAFETY: deliberately wrong: the module is Paused; the simulation refuses the indication.
            unsafe { NdisFIndicateReceiveNetBufferLists(m.handle, own, 0, 1, 0) };
            free_own(m, own);
        }
        _ => {}
    }
    release_own_resources(m);
    // SAFETY: NDIS hands the context back once, at detach.
    drop(unsafe { PoolBox::from_raw(context.cast::<Module>(), MODULE_TAG) });
}

unsafe extern "system" fn restart(
    context: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_RESTART_PARAMETERS,
) -> NDIS_STATUS {
    if bug() == Bug::SetAttributesInRestart {
        let mut attributes = NDIS_FILTER_ATTRIBUTES {
            Header: NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
                NDIS_FILTER_ATTRIBUTES_REVISION_1,
                core::mem::size_of::<NDIS_FILTER_ATTRIBUTES>(),
            ),
            Flags: 0,
        };
        // SAFETY: deliberately outside FilterAttach; the simulation refuses it.
        let _ = unsafe { NdisFSetAttributes(module(context).handle, context, &raw mut attributes) };
    }
    module(context).state.store(RUNNING, Ordering::Release);
    NDIS_STATUS_SUCCESS
}

unsafe extern "system" fn pause(
    context: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_PAUSE_PARAMETERS,
) -> NDIS_STATUS {
    let m = module(context);
    m.state.store(PAUSING, Ordering::Release);
    if bug() == Bug::PauseNeverCompletes {
        // Deliberately wrong: pended and forgotten.
        return NDIS_STATUS_PENDING;
    }
    if bug() == Bug::HoldSends {
        let held = m.held.swap(null_mut(), Ordering::AcqRel);
        if !held.is_null() {
            let mut nbl = held;
            while !nbl.is_null() {
                // SAFETY: the held chain is the filter's to complete.
                unsafe { (*nbl).Status = NDIS_STATUS_PAUSED };
                // SAFETY: as above.
                nbl = unsafe { (*nbl).Next };
            }
            // SAFETY: completes sends the filter held (Pausing a Filter Module: complete queued sends).
            unsafe { NdisFSendNetBufferListsComplete(m.handle, held, 0) };
        }
    }
    if bug() == Bug::HoldReceives {
        let held = m.held_rx.swap(null_mut(), Ordering::AcqRel);
        if !held.is_null() {
            // SAFETY: returns receives the filter held (Pausing a Filter Module: return queued receives).
            unsafe { NdisFReturnNetBufferLists(m.handle, held, 0) };
        }
    }
    if bug() == Bug::PauseWhileHolding || m.outstanding.load(Ordering::Acquire) == 0 {
        m.state.store(PAUSED, Ordering::Release);
        return NDIS_STATUS_SUCCESS;
    }
    m.pause_pending.store(true, Ordering::Release);
    // Close the race with a completion that arrived between the check and the flag.
    if m.outstanding.load(Ordering::Acquire) == 0 && m.pause_pending.swap(false, Ordering::AcqRel) {
        m.state.store(PAUSED, Ordering::Release);
        return NDIS_STATUS_SUCCESS;
    }
    NDIS_STATUS_PENDING
}

unsafe extern "system" fn send(
    context: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    port: NDIS_PORT_NUMBER,
    flags: u32,
) {
    let m = module(context);
    if m.state.load(Ordering::Acquire) != RUNNING {
        let mut nbl = nbls;
        while !nbl.is_null() {
            // SAFETY: the filter owns the chain it was handed.
            unsafe { (*nbl).Status = NDIS_STATUS_PAUSED };
            // SAFETY: as above.
            nbl = unsafe { (*nbl).Next };
        }
        let complete_flags = if at_dispatch() { NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL } else { 0 };
        // SAFETY: completes the sends the filter was handed.
        unsafe { NdisFSendNetBufferListsComplete(m.handle, nbls, complete_flags) };
        return;
    }
    if bug() == Bug::PauseWhileHolding {
        m.held.store(nbls, Ordering::Release);
        return;
    }
    if bug() == Bug::HoldSends
        && m.held.compare_exchange(null_mut(), nbls, Ordering::AcqRel, Ordering::Acquire).is_ok()
    {
        return;
    }
    if matches!(bug(), Bug::OwnSendWithoutSourceHandle | Bug::CompleteOwnSend)
        && !m.originated.swap(true, Ordering::AcqRel)
    {
        let own = own_nbl(m);
        let source = if bug() == Bug::OwnSendWithoutSourceHandle { null_mut() } else { m.handle };
        // SAFETY: the filter owns the NBL it just allocated.
        unsafe { (*own).SourceHandle = source };
        m.outstanding.fetch_add(1, Ordering::AcqRel);
        let own_flags = if at_dispatch() { NDIS_SEND_FLAGS_DISPATCH_LEVEL } else { 0 };
        // SAFETY: sends the filter's own NBL down.
        unsafe { NdisFSendNetBufferLists(m.handle, own, port, own_flags) };
    }
    if bug() == Bug::LsoNotAdvertised {
        mark_lso_v1(nbls);
    }
    m.outstanding.fetch_add(count(nbls), Ordering::AcqRel);
    let send_flags =
        if bug() == Bug::WrongDispatchFlag { flags & !NDIS_SEND_FLAGS_DISPATCH_LEVEL } else { flags };
    // SAFETY: forwards the chain the filter owns to the layer below.
    unsafe { NdisFSendNetBufferLists(m.handle, nbls, port, send_flags) };
    if bug() == Bug::CompleteAfterSend {
        let complete_flags = if at_dispatch() { NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL } else { 0 };
        // SAFETY: deliberately wrong: the chain belongs to the layers below now.
        unsafe { NdisFSendNetBufferListsComplete(m.handle, nbls, complete_flags) };
    }
}

unsafe extern "system" fn send_complete(context: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
    let m = module(context);
    let own = m.own.load(Ordering::Acquire);
    if !own.is_null() && nbls == own {
        if bug() == Bug::CompleteOwnSend {
            // SAFETY: deliberately wrong: the filter's own NBL completes to the filter, not up.
            unsafe { NdisFSendNetBufferListsComplete(m.handle, own, flags) };
        }
        free_own(m, own);
        settle(m, 1);
        return;
    }
    let n = count(nbls);
    // SAFETY: passes the completed sends on up to their sender.
    unsafe { NdisFSendNetBufferListsComplete(m.handle, nbls, flags) };
    settle(m, n);
}

unsafe extern "system" fn receive(
    context: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    port: NDIS_PORT_NUMBER,
    number: u32,
    flags: u32,
) {
    let m = module(context);
    let resources = flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0;
    let return_flags =
        if flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL != 0 { NDIS_RETURN_FLAGS_DISPATCH_LEVEL } else { 0 };
    if m.state.load(Ordering::Acquire) != RUNNING {
        if !resources {
            // SAFETY: a paused filter returns what it cannot indicate (Pausing a Filter Module).
            unsafe { NdisFReturnNetBufferLists(m.handle, nbls, return_flags) };
        }
        return;
    }
    match bug() {
        Bug::ReturnResources if resources => {
            // SAFETY: deliberately wrong: RESOURCES NBLs come back by returning from this function.
            unsafe { NdisFReturnNetBufferLists(m.handle, nbls, return_flags) };
            return;
        }
        Bug::BreakResourcesChain if resources => {
            let mut nbl = nbls;
            while !nbl.is_null() {
                // SAFETY: the filter holds the chain during the indication.
                let next = unsafe { (*nbl).Next };
                // SAFETY: as above; unlinking to indicate one at a time.
                unsafe { (*nbl).Next = null_mut() };
                // SAFETY: indicates one NBL the filter holds, keeping the RESOURCES flag.
                unsafe { NdisFIndicateReceiveNetBufferLists(m.handle, nbl, port, 1, flags) };
                nbl = next;
            }
            // Deliberately wrong: the original chain is not restored.
            return;
        }
        _ => {}
    }
    if bug() == Bug::ReturnOwnReceive && !resources && !m.originated.swap(true, Ordering::AcqRel) {
        let own = own_nbl(m);
        m.outstanding.fetch_add(1, Ordering::AcqRel);
        let own_flags = flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL;
        // SAFETY: indicates the filter's own NBL up.
        unsafe { NdisFIndicateReceiveNetBufferLists(m.handle, own, port, 1, own_flags) };
    }
    if bug() == Bug::HoldReceives
        && !resources
        && m.held_rx.compare_exchange(null_mut(), nbls, Ordering::AcqRel, Ordering::Acquire).is_ok()
    {
        return;
    }
    if !resources {
        m.outstanding.fetch_add(i64::from(number), Ordering::AcqRel);
    }
    // SAFETY: indicates the chain the filter holds, flags unchanged.
    unsafe { NdisFIndicateReceiveNetBufferLists(m.handle, nbls, port, number, flags) };
    if bug() == Bug::ReturnAfterIndicate && !resources {
        // SAFETY: deliberately wrong: the chain belongs to the layers above now.
        unsafe { NdisFReturnNetBufferLists(m.handle, nbls, return_flags) };
    }
}

unsafe extern "system" fn return_nbls(context: NDIS_HANDLE, nbls: *mut NET_BUFFER_LIST, flags: u32) {
    let m = module(context);
    let own = m.own.load(Ordering::Acquire);
    if !own.is_null() && nbls == own {
        if bug() == Bug::ReturnOwnReceive {
            // SAFETY: deliberately wrong: the filter's own NBL comes back to the filter, not down.
            unsafe { NdisFReturnNetBufferLists(m.handle, own, flags) };
        }
        free_own(m, own);
        settle(m, 1);
        return;
    }
    let n = count(nbls);
    // SAFETY: passes the returned receives on down to their indicator.
    unsafe { NdisFReturnNetBufferLists(m.handle, nbls, flags) };
    settle(m, n);
}

unsafe extern "system" fn status(context: NDIS_HANDLE, indication: *mut NDIS_STATUS_INDICATION) {
    // SAFETY: passes the indication on up unchanged.
    unsafe { NdisFIndicateStatus(module(context).handle, indication) };
}

const OID_TAG: u32 = u32::from_le_bytes(*b"ptOi");

/// `FilterOidRequest`: forwards a clone (the original rides in the clone's `SourceReserved`) and always
/// completes the original through [`oid_request_complete`], as the NDIS LWF sample does. PASSIVE_LEVEL.
unsafe extern "system" fn oid_request(context: NDIS_HANDLE, request: *mut NDIS_OID_REQUEST) -> NDIS_STATUS {
    let m = module(context);
    if bug() == Bug::NeverCompleteOid {
        // Deliberately wrong: pended and forgotten.
        return NDIS_STATUS_PENDING;
    }
    if bug() == Bug::ForwardOriginalOid {
        // SAFETY: deliberately wrong: forwards NDIS's own request.
        return unsafe { NdisFOidRequest(m.handle, request) };
    }
    let mut clone: *mut NDIS_OID_REQUEST = null_mut();
    // SAFETY: PASSIVE_LEVEL; `request` is valid during the call.
    let status = unsafe { NdisAllocateCloneOidRequest(m.handle, request, OID_TAG, &raw mut clone) };
    if status != NDIS_STATUS_SUCCESS {
        return status;
    }
    // SAFETY: the clone is ours; SourceReserved is the originator's scratch space.
    let clone_ref = unsafe { &mut *clone };
    clone_ref.SourceReserved[..8].copy_from_slice(&(request as usize).to_ne_bytes());
    // SAFETY: forwards the clone, which stays valid until it completes.
    let status = unsafe { NdisFOidRequest(m.handle, clone) };
    if status != NDIS_STATUS_PENDING {
        // SAFETY: completed synchronously; hand the result to the completion path.
        unsafe { oid_request_complete(context, clone, status) };
    }
    NDIS_STATUS_PENDING
}

/// `FilterOidRequestComplete`: copies the clone's results to the original, frees the clone, completes
/// the original. IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn oid_request_complete(
    context: NDIS_HANDLE,
    clone: *mut NDIS_OID_REQUEST,
    status: NDIS_STATUS,
) {
    let m = module(context);
    let mut raw = [0u8; 8];
    // SAFETY: the clone is ours until freed.
    let clone_ref = unsafe { &*clone };
    raw.copy_from_slice(&clone_ref.SourceReserved[..8]);
    let original = usize::from_ne_bytes(raw) as *mut NDIS_OID_REQUEST;
    // SAFETY: the original stays valid until the filter completes it; the clone until it is freed.
    let to = unsafe { &mut *original };
    let from = clone_ref;
    // SAFETY: the query member's counters sit at the same offsets as the set member's, so copying them
    // through the query view is right for both request types.
    let counters = unsafe { from.DATA.QUERY_INFORMATION };
    // SAFETY: as above.
    let target = unsafe { &mut to.DATA.QUERY_INFORMATION };
    target.BytesWritten = counters.BytesWritten;
    target.BytesNeeded = counters.BytesNeeded;
    if bug() != Bug::LeakOidClone {
        // SAFETY: the clone came from NdisAllocateCloneOidRequest and is freed once.
        unsafe { NdisFreeCloneOidRequest(m.handle, clone) };
    }
    if bug() == Bug::CompleteOidPending {
        // SAFETY: deliberately wrong status; completed properly right after.
        unsafe { NdisFOidRequestComplete(m.handle, original, NDIS_STATUS_PENDING) };
    }
    // SAFETY: completes the request NDIS gave the filter.
    unsafe { NdisFOidRequestComplete(m.handle, original, status) };
    if bug() == Bug::CompleteOidTwice {
        // SAFETY: deliberately wrong: completes it again.
        unsafe { NdisFOidRequestComplete(m.handle, original, status) };
    }
}

const OWN_TAG: u32 = u32::from_le_bytes(*b"ptOw");
const OWN_FRAME: usize = 64;

fn own_nbl_bug() -> bool {
    matches!(
        bug(),
        Bug::OwnSendWithoutSourceHandle
            | Bug::CompleteOwnSend
            | Bug::SendWhilePaused
            | Bug::IndicateWhilePaused
            | Bug::ReturnOwnReceive
    )
}

/// A pool, a buffer holding a test frame, and an MDL over it, for one own NBL. PASSIVE_LEVEL (attach).
fn own_resources(handle: NDIS_HANDLE) -> (NDIS_HANDLE, *mut c_void, *mut MDL) {
    let params = NET_BUFFER_LIST_POOL_PARAMETERS {
        Header: NDIS_OBJECT_HEADER::new(
            kernel::ffi::ndis::NDIS_OBJECT_TYPE_DEFAULT,
            1,
            core::mem::size_of::<NET_BUFFER_LIST_POOL_PARAMETERS>(),
        ),
        ProtocolId: 0,
        fAllocateNetBuffer: 1,
        ContextSize: 0,
        PoolTag: OWN_TAG,
        DataSize: 0,
    };
    // SAFETY: PASSIVE_LEVEL with valid parameters.
    let pool = unsafe { NdisAllocateNetBufferListPool(handle, &raw const params) };
    // SAFETY: PASSIVE_LEVEL, valid tag.
    let buffer = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, OWN_FRAME, OWN_TAG) };
    let frame = winsim::datapath::test_frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 7, OWN_FRAME - 24);
    // SAFETY: the buffer holds OWN_FRAME bytes, as many as the frame has.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), buffer.cast::<u8>(), OWN_FRAME) };
    // SAFETY: an MDL over the non-paged buffer.
    let mdl = unsafe { IoAllocateMdl(buffer, OWN_FRAME as u32, 0, 0, null_mut()) };
    // SAFETY: a fresh MDL over non-paged memory.
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    (pool, buffer, mdl)
}

fn own_nbl(m: &Module) -> *mut NET_BUFFER_LIST {
    // SAFETY: the pool preallocates NBs; the MDL covers OWN_FRAME bytes.
    let nbl = unsafe { NdisAllocateNetBufferAndNetBufferList(m.own_pool, 0, 0, m.own_mdl, 0, OWN_FRAME) };
    m.own.store(nbl, Ordering::Release);
    nbl
}

fn free_own(m: &Module, nbl: *mut NET_BUFFER_LIST) {
    m.own.store(null_mut(), Ordering::Release);
    // SAFETY: the filter's own NBL, back with the filter, freed once.
    unsafe { NdisFreeNetBufferList(nbl) };
}

fn release_own_resources(m: &Module) {
    if m.own_pool.is_null() {
        return;
    }
    // SAFETY: the MDL, buffer and pool were allocated at attach and nothing uses them any more.
    unsafe { IoFreeMdl(m.own_mdl) };
    // SAFETY: as above.
    unsafe { ExFreePoolWithTag(m.own_buffer, OWN_TAG) };
    // SAFETY: as above; the own NBL was freed.
    unsafe { NdisFreeNetBufferListPool(m.own_pool) };
}

/// How often NDIS called FilterSetModuleOptions (before each restart).
pub static MODULE_OPTIONS_CALLS: AtomicU32 = AtomicU32::new(0);

/// `FilterSetModuleOptions`. PASSIVE_LEVEL, Paused, before FilterRestart.
unsafe extern "system" fn set_module_options(_context: NDIS_HANDLE) -> NDIS_STATUS {
    MODULE_OPTIONS_CALLS.fetch_add(1, Ordering::Relaxed);
    NDIS_STATUS_SUCCESS
}

/// `FilterNetPnPEvent`: forwards the event to the overlying drivers. PASSIVE_LEVEL.
unsafe extern "system" fn net_pnp_event(
    context: NDIS_HANDLE,
    notification: *mut kernel::ffi::ndis::NET_PNP_EVENT_NOTIFICATION,
) -> NDIS_STATUS {
    // SAFETY: forwards NDIS's notification unchanged during the call.
    unsafe { kernel::ffi::ndis_filter::NdisFNetPnPEvent(module(context).handle, notification) }
}

/// `FilterDevicePnPEventNotify`: forwards the event to the underlying drivers. PASSIVE_LEVEL.
unsafe extern "system" fn device_pnp_event(
    context: NDIS_HANDLE,
    event: *mut kernel::ffi::ndis::NET_DEVICE_PNP_EVENT,
) {
    // SAFETY: forwards NDIS's event unchanged during the call.
    unsafe { kernel::ffi::ndis_filter::NdisFDevicePnPEventNotify(module(context).handle, event) };
}

/// [`Bug::LsoNotAdvertised`]: asks the NIC for `LSOv1` (MSS 1460 at TCP header offset 34) on every send.
fn mark_lso_v1(mut nbl: *mut NET_BUFFER_LIST) {
    use kernel::ffi::nbl::{TcpLargeSendNetBufferListInfo, NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO};
    let v1 = NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO(0x5b4 | (34 << 20)); // MSS 1460, Type V1
    while !nbl.is_null() {
        // SAFETY: the filter owns the chain it was handed; the index is below MaxNetBufferListInfo.
        unsafe { (*nbl).NetBufferListInfo[TcpLargeSendNetBufferListInfo] = v1.to_ptr() };
        // SAFETY: as above.
        nbl = unsafe { (*nbl).Next };
    }
}
