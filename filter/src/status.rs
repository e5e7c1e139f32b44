//! Status and device PnP pass-through.
//!
//! The filter does not change what the miniport reports: status indications (link state, offload
//! configuration, resets) go up unchanged with `NdisFIndicateStatus`, and device PnP events (surprise
//! removal, power profile) go down unchanged with `NdisFDevicePnPEventNotify` (Windows-driver-docs
//! "Filter Module Status Indications", `FILTER_DEVICE_PNP_EVENT_NOTIFY`: a filter that registers the
//! handler must forward the event). Neither takes a lock or keeps state.
use kernel::ffi::ndis::{NDIS_HANDLE, NET_DEVICE_PNP_EVENT};
use kernel::ffi::ndis_filter::{NdisFDevicePnPEventNotify, NdisFIndicateStatus};
use kernel::ffi::oid::NDIS_STATUS_INDICATION;

use crate::callbacks::module;

/// `FilterStatus`. IRQL <= DISPATCH_LEVEL. No lock. Forwards the indication to the overlying drivers.
pub(crate) unsafe extern "system" fn filter_status(
    context: NDIS_HANDLE,
    indication: *mut NDIS_STATUS_INDICATION,
) {
    // SAFETY: NDIS passes the live module context from FilterAttach.
    let m = unsafe { module(context) };
    // SAFETY: forwards NDIS's indication, valid for the call, unchanged.
    unsafe { NdisFIndicateStatus(m.filter_handle, indication) };
}

/// `FilterDevicePnPEventNotify`. PASSIVE_LEVEL. No lock. Forwards the event to the underlying drivers.
pub(crate) unsafe extern "system" fn filter_device_pnp_event_notify(
    context: NDIS_HANDLE,
    event: *mut NET_DEVICE_PNP_EVENT,
) {
    // SAFETY: NDIS passes the live module context from FilterAttach.
    let m = unsafe { module(context) };
    // SAFETY: forwards NDIS's event, valid for the call, unchanged.
    unsafe { NdisFDevicePnPEventNotify(m.filter_handle, event) };
}
