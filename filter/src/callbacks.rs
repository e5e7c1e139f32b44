//! Every NDIS filter callback, in one table ([`characteristics`]), and the per-module state they share.
//!
//! Each callback states its IRQL as the NDIS documentation gives it. No callback here takes a lock: the
//! module state is only written by the attach/pause/restart/detach callbacks, which NDIS serialises per
//! module (NDIS filter state machine: a module is attached, restarted, paused and detached one transition
//! at a time). The receive path (`receive`), OID pass-through (`oid`) and status/PnP pass-through
//! (`status`) document their own IRQL and locks.
use core::ffi::c_void;
use core::sync::atomic::{AtomicU32, Ordering};

use kernel::ffi::ndis::{
    NdisMedium802_3, NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
    NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS, NDIS_STATUS, NDIS_STATUS_INVALID_PARAMETER,
    NDIS_STATUS_RESOURCES, NDIS_STATUS_SUCCESS,
};
use kernel::ffi::ndis_filter::{
    NdisFSetAttributes, NDIS_FILTER_ATTACH_PARAMETERS, NDIS_FILTER_ATTRIBUTES,
    NDIS_FILTER_ATTRIBUTES_REVISION_1, NDIS_FILTER_CHARACTERISTICS_REVISION_2,
    NDIS_FILTER_DRIVER_CHARACTERISTICS, NDIS_FILTER_PAUSE_PARAMETERS, NDIS_FILTER_RESTART_PARAMETERS,
    NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
};
use kernel::pool::PoolBox;
use kernel::unicode_string;

use crate::{oid, receive, status};

/// Pool tag of module contexts: 'rdFm'.
const MODULE_TAG: u32 = u32::from_le_bytes(*b"rdFm");

/// The NDIS version the filter registers at: 6.30 (Windows 8), revision 2 characteristics.
const NDIS_MAJOR: u8 = 6;
const NDIS_MINOR: u8 = 30;

/// A filter module's lifecycle, as the NDIS filter state machine defines it.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Paused = 1,
    Running = 2,
}

/// Per-module context: NDIS's handle for the module, its state, the pause gate both halves of the data
/// path report to, the send path (`send`) and the receive path (`rx`).
pub(crate) struct Module {
    pub(crate) filter_handle: NDIS_HANDLE,
    state: AtomicU32,
    /// Completes a pended FilterPause once both halves owe the protocol nothing (`pause.rs`).
    pub(crate) pause: crate::pause::PauseGate,
    /// The send path: classification, the divert queue and worker, hold policy (`send.rs`).
    pub(crate) send: crate::send::SendPath,
    /// The receive path's pools and copy slots, what is outstanding at the protocol, and the OID
    /// pass-through state.
    pub(crate) rx: receive::RxState,
}

impl Module {
    /// Whether the module is Running (data may be indicated and sent).
    pub(crate) fn is_running(&self) -> bool {
        self.state.load(Ordering::Acquire) == State::Running as u32
    }
}

/// The module behind an NDIS filter module context.
///
/// # Safety
/// `context` must be the context this driver gave `NdisFSetAttributes`, and the module still attached
/// (NDIS passes it to every module callback until FilterDetach returns).
pub(crate) unsafe fn module<'a>(context: NDIS_HANDLE) -> &'a Module {
    // SAFETY: the caller's contract.
    unsafe { &*context.cast::<Module>() }
}

/// The registration table: names from `uapi::names` (the INF carries the same), the mandatory
/// attach/detach/restart/pause handlers, and no data-path handlers yet (NDIS bypasses the filter for
/// sends and receives whose handlers are absent).
pub fn characteristics() -> NDIS_FILTER_DRIVER_CHARACTERISTICS {
    // SAFETY: the structure is plain C data; all-zero means "no handler" for every optional entry.
    let mut c: NDIS_FILTER_DRIVER_CHARACTERISTICS = unsafe { core::mem::zeroed() };
    c.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
        NDIS_FILTER_CHARACTERISTICS_REVISION_2,
        NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
    );
    c.MajorNdisVersion = NDIS_MAJOR;
    c.MinorNdisVersion = NDIS_MINOR;
    c.MajorDriverVersion = 0;
    c.MinorDriverVersion = 1;
    c.FriendlyName = unicode_string!(uapi::names::FILTER_FRIENDLY_NAME);
    c.UniqueName = unicode_string!(uapi::names::FILTER_UNIQUE_NAME);
    c.ServiceName = unicode_string!(uapi::names::FILTER_SERVICE_NAME);
    c.AttachHandler = Some(filter_attach);
    c.DetachHandler = Some(filter_detach);
    c.RestartHandler = Some(filter_restart);
    c.PauseHandler = Some(filter_pause);
    c.ReceiveNetBufferListsHandler = Some(receive::filter_receive);
    c.ReturnNetBufferListsHandler = Some(receive::filter_return);
    c.OidRequestHandler = Some(oid::filter_oid_request);
    c.OidRequestCompleteHandler = Some(oid::filter_oid_request_complete);
    c.CancelOidRequestHandler = Some(oid::filter_cancel_oid_request);
    c.StatusHandler = Some(status::filter_status);
    c.DevicePnPEventNotifyHandler = Some(status::filter_device_pnp_event_notify);
    c.SendNetBufferListsHandler = Some(filter_send);
    c.SendNetBufferListsCompleteHandler = Some(filter_send_complete);
    c.CancelSendNetBufferListsHandler = Some(filter_cancel_send);
    c.NetPnPEventHandler = Some(filter_net_pnp_event);
    c
}

/// `FilterAttach`. PASSIVE_LEVEL. Allocates the module context and hands it to NDIS; the module starts
/// Paused.
unsafe extern "system" fn filter_attach(
    ndis_filter_handle: NDIS_HANDLE,
    _driver_context: NDIS_HANDLE,
    parameters: *mut NDIS_FILTER_ATTACH_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes valid attach parameters for the duration of the call.
    let Some(parameters) = (unsafe { parameters.as_ref() }) else {
        return NDIS_STATUS_INVALID_PARAMETER;
    };
    if parameters.MiniportMediaType != NdisMedium802_3 {
        // The INF binds us to Ethernet only; anything else is declined, not half-supported.
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(parameters.CurrentMacAddress.get(..6).unwrap_or(&[0; 6]));
    // Reverse order on failure: whatever was built is dropped (each half frees its own pools).
    let rx = match receive::RxState::new(ndis_filter_handle, mac) {
        Ok(rx) => rx,
        Err(status) => return status,
    };
    let mut send = match crate::send::SendPath::new(ndis_filter_handle) {
        Ok(s) => s,
        Err(status) => return status,
    };
    send.identity = crate::send::Identity::from_attach(parameters);
    let module = Module {
        filter_handle: ndis_filter_handle,
        state: AtomicU32::new(State::Paused as u32),
        pause: crate::pause::PauseGate::new(ndis_filter_handle),
        send,
        rx,
    };
    let module = match PoolBox::new(module, MODULE_TAG) {
        Ok(m) => m,
        Err(_) => return NDIS_STATUS_RESOURCES,
    };
    // The module has its final address now: the send path's DPC and registry entry, and both halves'
    // pause reports, can point into it.
    module.send.start(&module.pause);
    module.rx.start(&module.pause);
    let context = module.into_raw();
    let mut attributes = NDIS_FILTER_ATTRIBUTES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
            NDIS_FILTER_ATTRIBUTES_REVISION_1,
            core::mem::size_of::<NDIS_FILTER_ATTRIBUTES>(),
        ),
        Flags: 0,
    };
    // SAFETY: called from FilterAttach at PASSIVE_LEVEL with NDIS's handle; the attributes live for the
    // call.
    let status =
        unsafe { NdisFSetAttributes(ndis_filter_handle, context.cast::<c_void>(), &raw mut attributes) };
    if status != NDIS_STATUS_SUCCESS {
        // SAFETY: `context` came from into_raw above and NDIS did not take it.
        let module = unsafe { PoolBox::from_raw(context, MODULE_TAG) };
        module.send.stop();
        drop(module);
        return status;
    }
    receive::register_module(ndis_filter_handle, context);
    status
}

/// `FilterDetach`. PASSIVE_LEVEL; the module is Paused. Frees the module context.
unsafe extern "system" fn filter_detach(context: NDIS_HANDLE) {
    receive::unregister_module(context.cast::<Module>());
    // SAFETY: NDIS passes back the context from FilterAttach exactly once, here.
    let module = unsafe { PoolBox::from_raw(context.cast::<Module>(), MODULE_TAG) };
    receive::wait_for_wsk_path(&module);
    // Send path first (DPC flushed, held copies freed, pool freed), then the context: reverse of attach.
    module.send.stop();
    drop(module);
}

/// `FilterRestart`. PASSIVE_LEVEL; the module is Paused and becomes Running.
unsafe extern "system" fn filter_restart(
    context: NDIS_HANDLE,
    _parameters: *mut NDIS_FILTER_RESTART_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes the live module context from FilterAttach.
    let module = unsafe { &*context.cast::<Module>() };
    module.send.restart();
    module.state.store(State::Running as u32, Ordering::Release);
    NDIS_STATUS_SUCCESS
}

/// `FilterPause`. PASSIVE_LEVEL; the module is Running. The send path evicts what it queued (deep copies)
/// and waits for the bypass sends it passed down; the receive path stops indicating (receives arriving
/// from now on are returned) and waits for the NBLs it indicated. The pause pends
/// (`NDIS_STATUS_PENDING`) until both owe the protocol nothing; the half that settles last completes it
/// with `NdisFPauseComplete` through the module's [`crate::pause::PauseGate`].
unsafe extern "system" fn filter_pause(
    context: NDIS_HANDLE,
    _parameters: *mut NDIS_FILTER_PAUSE_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes the live module context from FilterAttach.
    let module = unsafe { &*context.cast::<Module>() };
    debug_assert!(!module.filter_handle.is_null());
    module.state.store(State::Paused as u32, Ordering::Release);
    module.pause.arm(2);
    if module.send.pause() != kernel::ffi::ndis::NDIS_STATUS_PENDING {
        module.pause.part_done_sync();
    }
    if module.rx.pause() != kernel::ffi::ndis::NDIS_STATUS_PENDING {
        module.pause.part_done_sync();
    }
    module.pause.finish()
}

/// `FilterSendNetBufferLists`. IRQL <= DISPATCH_LEVEL. See `send::filter_send`.
unsafe extern "system" fn filter_send(
    context: NDIS_HANDLE,
    nbls: *mut kernel::ffi::nbl::NET_BUFFER_LIST,
    port: kernel::ffi::ndis::NDIS_PORT_NUMBER,
    flags: u32,
) {
    // SAFETY: NDIS passes the live module context.
    crate::send::filter_send(&unsafe { module(context) }.send, nbls, port, flags);
}

/// `FilterSendNetBufferListsComplete`. IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn filter_send_complete(
    context: NDIS_HANDLE,
    nbls: *mut kernel::ffi::nbl::NET_BUFFER_LIST,
    flags: u32,
) {
    // SAFETY: NDIS passes the live module context.
    crate::send::filter_send_complete(&unsafe { module(context) }.send, nbls, flags);
}

/// `FilterCancelSendNetBufferLists`. IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn filter_cancel_send(context: NDIS_HANDLE, cancel_id: *mut c_void) {
    // SAFETY: NDIS passes the live module context.
    crate::send::filter_cancel_send(&unsafe { module(context) }.send, cancel_id);
}

/// `FilterNetPnPEvent`. PASSIVE_LEVEL. See `pnp`.
unsafe extern "system" fn filter_net_pnp_event(
    context: NDIS_HANDLE,
    notification: *mut kernel::ffi::ndis::NET_PNP_EVENT_NOTIFICATION,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes the live module context.
    crate::pnp::filter_net_pnp_event(&unsafe { module(context) }.send, notification)
}
