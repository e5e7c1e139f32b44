//! Plug and Play and power events through a filter stack (Windows-driver-docs "Filter Module PnP Event
//! Notifications"): network PnP and power events travel *up* — NDIS calls the lowest module's
//! FilterNetPnPEvent and each filter forwards with `NdisFNetPnPEvent` — while device PnP events travel
//! *down* — FilterDevicePnPEventNotify, forwarded with `NdisFDevicePnPEventNotify`.
//!
//! The machine-level operations model what NDIS does around them:
//! * [`power_down`]: the stack is paused (reason `NDIS_PAUSE_LOW_POWER`), then `NetEventSetPower` (D3)
//!   goes up the stack ("Pausing a Driver Stack": a transition to a low-power state pauses the stack first).
//! * [`power_up`]: `NetEventSetPower` (D0) goes up the stack, then the stack restarts.
//! * [`surprise_remove`]: `NdisDevicePnPEventSurpriseRemoved` goes down the stack; the miniport fails the
//!   sends it holds (`NDIS_STATUS_ADAPTER_REMOVED`); the stack pauses (reason
//!   `NDIS_PAUSE_MINIPORT_DEVICE_REMOVE`) and every module detaches.
//!
//! A pause that a filter pends must complete within [`PAUSE_DEADLINE`] of machine time ([`settle_pause`]).
use std::sync::Mutex;
use std::time::Duration;

use kernel::ffi::ndis::{
    NdisDevicePnPEventSurpriseRemoved, NdisDeviceStateD0, NdisDeviceStateD3, NetEventSetPower,
    NDIS_DEVICE_POWER_STATE, NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_DEFAULT, NDIS_STATUS,
    NDIS_STATUS_ADAPTER_REMOVED, NDIS_STATUS_PENDING, NDIS_STATUS_SUCCESS, NET_DEVICE_PNP_EVENT,
    NET_PNP_EVENT_CODE, NET_PNP_EVENT_NOTIFICATION, NET_PNP_EVENT_NOTIFICATION_REVISION_1,
};
use kernel::ffi::ndis_filter::{NDIS_PAUSE_LOW_POWER, NDIS_PAUSE_MINIPORT_DEVICE_REMOVE};
use kernel::ffi::ntos::PASSIVE_LEVEL;

use crate::context::{call_driver, require_irql_at_most};
use crate::ndis::{self, ModuleState};
use crate::verifier::{violation, Rule};

/// How long a pended pause may take: the NDIS verifier's pause limit ("FilterPause ... must complete
/// within 10 seconds" is what the NDIS stack-pause watchdog enforces; issue 4's verifier model).
pub const PAUSE_DEADLINE: Duration = Duration::from_secs(10);

/// What reached the top of the stack (network events) or the miniport (device events), per NIC.
static SEEN: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

pub(crate) fn reset() {
    crate::lock(&SEEN).clear();
}

/// The events that travelled the whole stack on `nic`, as readable names.
pub fn seen(nic: u32) -> Vec<String> {
    crate::lock(&SEEN).iter().filter(|(n, _)| *n == nic).map(|(_, e)| e.clone()).collect()
}

fn record(nic: u32, what: String) {
    crate::lock(&SEEN).push((nic, what));
}

/// Waits for a pended pause: runs the data path, WSK and the scheduler; if the module is still Pausing,
/// advances machine time to the deadline (timers a filter armed fire on the way) and checks again.
/// Returns whether the module reached Paused.
pub fn settle_pause(module: usize) -> bool {
    crate::datapath::pump();
    crate::sched::run_until_idle();
    if ndis::module_state(module) != Some(ModuleState::Pausing) {
        return true;
    }
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while waited < PAUSE_DEADLINE && ndis::module_state(module) == Some(ModuleState::Pausing) {
        crate::sched::advance(step);
        crate::wsk::pump();
        crate::datapath::pump();
        crate::datapath::check_deadlines();
        waited += step;
    }
    if ndis::module_state(module) == Some(ModuleState::Pausing) {
        // NDIS would stop the machine here; the simulation records it and moves the module on, so the test
        // can finish and report.
        violation(
            Rule::NdisPauseTimeout,
            format!("a pended pause did not complete within {PAUSE_DEADLINE:?}"),
        );
        ndis::force_paused(module);
        false
    } else {
        true
    }
}

/// Pauses every Running module on `nic` with `reason`, waiting for pended pauses.
fn pause_stack(nic: u32, reason: u32) {
    for module in ndis::modules_on(nic).into_iter().rev() {
        if ndis::module_state(module) == Some(ModuleState::Running)
            && ndis::pause_module(module, reason) == NDIS_STATUS_PENDING
        {
            settle_pause(module);
        }
    }
}

fn notification(code: NET_PNP_EVENT_CODE, state: &mut NDIS_DEVICE_POWER_STATE) -> NET_PNP_EVENT_NOTIFICATION {
    // SAFETY: plain C data; zero is valid for every field.
    let mut n: NET_PNP_EVENT_NOTIFICATION = unsafe { std::mem::zeroed() };
    n.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_DEFAULT,
        NET_PNP_EVENT_NOTIFICATION_REVISION_1,
        std::mem::size_of::<NET_PNP_EVENT_NOTIFICATION>(),
    );
    n.NetPnPEvent.NetEvent = code;
    n.NetPnPEvent.Buffer = std::ptr::from_mut(state).cast();
    n.NetPnPEvent.BufferLength = u32::try_from(std::mem::size_of::<NDIS_DEVICE_POWER_STATE>()).unwrap_or(4);
    n
}

/// The next module above `from` (None = the miniport) with a FilterNetPnPEvent handler.
fn next_up(nic: u32, from: Option<usize>) -> Option<usize> {
    let modules = ndis::modules_on(nic);
    let above: Vec<usize> = match from {
        None => modules,
        Some(m) => modules.iter().skip_while(|&&x| x != m).skip(1).copied().collect(),
    };
    above.into_iter().find(|&m| {
        ndis::module_view(m)
            .is_some_and(|v| v.state != ModuleState::Attaching && v.handlers.0.NetPnPEventHandler.is_some())
    })
}

/// The next module below `from` (None = the protocol) with a FilterDevicePnPEventNotify handler.
fn next_down(nic: u32, from: Option<usize>) -> Option<usize> {
    let modules = ndis::modules_on(nic);
    let below: Vec<usize> = match from {
        None => modules.iter().rev().copied().collect(),
        Some(m) => modules.iter().rev().skip_while(|&&x| x != m).skip(1).copied().collect(),
    };
    below.into_iter().find(|&m| {
        ndis::module_view(m).is_some_and(|v| {
            v.state != ModuleState::Attaching && v.handlers.0.DevicePnPEventNotifyHandler.is_some()
        })
    })
}

fn event_up(nic: u32, from: Option<usize>, n: *mut NET_PNP_EVENT_NOTIFICATION) -> NDIS_STATUS {
    match next_up(nic, from) {
        Some(m) => {
            let Some(view) = ndis::module_view(m) else { return NDIS_STATUS_SUCCESS };
            let handler = view.handlers.0.NetPnPEventHandler.expect("checked in next_up");
            call_driver(view.owner, PASSIVE_LEVEL, "FilterNetPnPEvent", || {
                // SAFETY: the module's registered handler; the notification lives for the call.
                unsafe { handler(view.context, n) }
            })
        }
        None => {
            // SAFETY: the notification is valid for the duration of the event.
            let event = unsafe { &(*n).NetPnPEvent };
            // SAFETY: for NetEventSetPower, Buffer points to an NDIS_DEVICE_POWER_STATE (NET_PNP_EVENT docs).
            let state = unsafe { event.Buffer.cast::<i32>().read() };
            let code = event.NetEvent;
            record(nic, format!("net:{code}:{state}"));
            NDIS_STATUS_SUCCESS
        }
    }
}

fn device_down(nic: u32, from: Option<usize>, e: *mut NET_DEVICE_PNP_EVENT) {
    match next_down(nic, from) {
        Some(m) => {
            let Some(view) = ndis::module_view(m) else { return };
            let handler = view.handlers.0.DevicePnPEventNotifyHandler.expect("checked in next_down");
            call_driver(view.owner, PASSIVE_LEVEL, "FilterDevicePnPEventNotify", || {
                // SAFETY: the module's registered handler; the event lives for the call.
                unsafe { handler(view.context, e) }
            });
        }
        None => {
            // SAFETY: the event is valid for the duration of the notification.
            let code = unsafe { (*e).DevicePnPEvent };
            record(nic, format!("device:{code}"));
        }
    }
}

/// The NIC goes to D3: the stack pauses for low power, then `NetEventSetPower(D3)` travels up.
pub fn power_down(nic: u32) -> NDIS_STATUS {
    pause_stack(nic, NDIS_PAUSE_LOW_POWER);
    let mut state = NdisDeviceStateD3;
    let mut n = notification(NetEventSetPower, &mut state);
    event_up(nic, None, &raw mut n)
}

/// The NIC returns to D0: `NetEventSetPower(D0)` travels up, then the stack restarts.
pub fn power_up(nic: u32) -> NDIS_STATUS {
    let mut state = NdisDeviceStateD0;
    let mut n = notification(NetEventSetPower, &mut state);
    let status = event_up(nic, None, &raw mut n);
    for module in ndis::modules_on(nic) {
        if ndis::module_state(module) == Some(ModuleState::Paused) {
            ndis::restart_module(module);
        }
    }
    status
}

/// The NIC disappears: the surprise-removal event travels down, the miniport fails what it holds, the
/// stack pauses and every module detaches.
pub fn surprise_remove(nic: u32) {
    // SAFETY: plain C data; zero is valid for every field.
    let mut e: NET_DEVICE_PNP_EVENT = unsafe { std::mem::zeroed() };
    e.Header =
        NDIS_OBJECT_HEADER::new(NDIS_OBJECT_TYPE_DEFAULT, 1, std::mem::size_of::<NET_DEVICE_PNP_EVENT>());
    e.DevicePnPEvent = NdisDevicePnPEventSurpriseRemoved;
    device_down(nic, None, &raw mut e);
    crate::datapath::nic_complete_sends(nic, NDIS_STATUS_ADAPTER_REMOVED);
    pause_stack(nic, NDIS_PAUSE_MINIPORT_DEVICE_REMOVE);
    for module in ndis::modules_on(nic) {
        ndis::detach_module(module);
    }
}

/// `NdisFNetPnPEvent`. PASSIVE_LEVEL. Forwards a network PnP or power event to the layer above.
///
/// # Safety
/// `n` must be valid for the call.
#[no_mangle]
pub unsafe extern "system" fn NdisFNetPnPEvent(
    handle: NDIS_HANDLE,
    n: *mut NET_PNP_EVENT_NOTIFICATION,
) -> NDIS_STATUS {
    require_irql_at_most(PASSIVE_LEVEL, "NdisFNetPnPEvent");
    let m = handle as usize;
    let Some(nic) = ndis::nic_of(m) else {
        violation(
            Rule::NdisBadHandle,
            format!("NdisFNetPnPEvent({handle:p}): not an attached filter module"),
        );
        return kernel::ffi::ndis::NDIS_STATUS_FAILURE;
    };
    event_up(nic, Some(m), n)
}

/// `NdisFDevicePnPEventNotify`. PASSIVE_LEVEL. Forwards a device PnP event to the layer below.
///
/// # Safety
/// `e` must be valid for the call.
#[no_mangle]
pub unsafe extern "system" fn NdisFDevicePnPEventNotify(handle: NDIS_HANDLE, e: *mut NET_DEVICE_PNP_EVENT) {
    require_irql_at_most(PASSIVE_LEVEL, "NdisFDevicePnPEventNotify");
    let m = handle as usize;
    match ndis::nic_of(m) {
        Some(nic) => device_down(nic, Some(m), e),
        None => violation(
            Rule::NdisBadHandle,
            format!("NdisFDevicePnPEventNotify({handle:p}): not an attached filter module"),
        ),
    }
}
