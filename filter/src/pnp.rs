//! `FilterNetPnPEvent`: network PnP and power events travel up the stack; the filter looks at power
//! transitions and forwards every event with `NdisFNetPnPEvent` ("Filter Module PnP Event
//! Notifications": a filter that does not handle an event must pass it on).
//!
//! Power: NDIS pauses the stack before `NetEventSetPower` to a low-power state ("Pausing a Driver
//! Stack"), so the pause already evicted every queued original; below D0 the module is marked low-power
//! and, should an original still be queued, it is evicted here too (hold trigger: leaving D0). On the way
//! back to D0 the mark is cleared before the event goes on; the restart that follows resumes sends.
//!
//! IRQL: PASSIVE_LEVEL. No lock is held across the forward.
use core::sync::atomic::Ordering;

use kernel::ffi::ndis::{
    NdisDeviceStateD0, NetEventSetPower, NDIS_DEVICE_POWER_STATE, NDIS_STATUS, NET_PNP_EVENT_NOTIFICATION,
};
use kernel::ffi::ndis_filter::NdisFNetPnPEvent;

use crate::hold::Trigger;
use crate::send::{NblChain, SendPath};
use crate::worker;

/// The device power state a `NetEventSetPower` notification carries, if it is one and well formed.
fn power_state(n: &NET_PNP_EVENT_NOTIFICATION) -> Option<NDIS_DEVICE_POWER_STATE> {
    let e = &n.NetPnPEvent;
    if e.NetEvent != NetEventSetPower
        || e.Buffer.is_null()
        || (e.BufferLength as usize) < core::mem::size_of::<NDIS_DEVICE_POWER_STATE>()
    {
        return None;
    }
    // SAFETY: NDIS passes a buffer of BufferLength bytes holding an NDIS_DEVICE_POWER_STATE for
    // NetEventSetPower (checked above); read unaligned to be safe.
    Some(unsafe { e.Buffer.cast::<NDIS_DEVICE_POWER_STATE>().read_unaligned() })
}

/// `FilterNetPnPEvent` for the module whose send path is `path`. PASSIVE_LEVEL.
pub(crate) fn filter_net_pnp_event(
    path: &SendPath,
    notification: *mut NET_PNP_EVENT_NOTIFICATION,
) -> NDIS_STATUS {
    // SAFETY: NDIS passes a valid notification for the duration of the call.
    if let Some(state) = unsafe { notification.as_ref() }.and_then(power_state) {
        if state == NdisDeviceStateD0 {
            path.low_power.store(false, Ordering::Release);
        } else {
            path.low_power.store(true, Ordering::Release);
            let mut done = NblChain::new();
            worker::evict(path, Trigger::Pause, &mut done);
            path.complete(done);
        }
    }
    // SAFETY: PASSIVE_LEVEL; the module's handle and NDIS's notification, forwarded unchanged.
    unsafe { NdisFNetPnPEvent(path.filter_handle, notification) }
}
