//! The control device's WDF glue: the ovpn-dco-win user API on the miniport's WDFDEVICE.
//!
//! What ovpn-dco-win does (`OpenVPN/ovpn-dco-win` `Driver.cpp`, `OvpnEvtDeviceAdd`; facts only, own
//! code), and this module does the same:
//! * the device is **exclusive** (one handle: the OpenVPN process) and uses **buffered I/O**;
//! * a **file object cleanup** callback: closing the handle deletes the peer(s) ([`Tunnel::close`]);
//! * a **default parallel queue** with `EvtIoDeviceControl`, `EvtIoRead`, `EvtIoWrite`;
//! * two **manual queues**: reads waiting for a control packet (`PendingReadsQueue`) and
//!   `OVPN_IOCTL_NOTIFY_EVENT` requests waiting for a notification (`PendingNotificationRequestsQueue`);
//! * the symbolic link `\DosDevices\ovpn-dco` (user mode opens `\\.\ovpn-dco`) and the
//!   `GUID_DEVINTERFACE_NET` device interface with reference string `ovpn-dco`.
//!
//! Request lifetime: a queue callback owns its request and completes it before returning, except a read
//! with nothing queued and a `NOTIFY_EVENT` with nothing to report, which it forwards to the matching
//! manual queue **while holding the tunnel lock** (so a packet or notification arriving meanwhile finds
//! the request there). Whoever makes progress — a control packet from the data path
//! ([`control_packet_received`]), the keepalive timer ([`timer_tick`]) — retrieves parked requests under
//! the same lock and completes them or forwards them back. Requests still parked when the handle closes
//! are cancelled by the framework (file cleanup) or by [`Effects::cancel_pending`]; when the device is
//! removed the framework purges the manual queues (`STATUS_CANCELLED`).
//!
//! IRQL: the queue callbacks run at IRQL <= DISPATCH_LEVEL (PASSIVE_LEVEL in practice: the default
//! queue has no synchronization scope); [`Tunnel`] is used under `DeviceContext::tunnel` (a spin lock,
//! DISPATCH_LEVEL). `NEW_KEY`/`NEW_KEY_V2` with a cipher that needs it run inside
//! `KeSaveExtendedProcessorState`, taken before the lock and released after it.
//!
//! The control device is a singleton on the machine (the symbolic link name is unique), so the queue
//! handles and the context live in statics, set by [`create`] and cleared by the default queue's cleanup
//! callback when the device goes.
use core::ffi::c_void;
use core::net::SocketAddr;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::ffi::ntos::{
    KeRestoreExtendedProcessorState, KeSaveExtendedProcessorState, NTSTATUS, NT_SUCCESS,
    STATUS_INVALID_DEVICE_STATE, STATUS_PENDING, STATUS_SUCCESS, XSTATE_MASK_AVX, XSTATE_MASK_LEGACY,
    XSTATE_SAVE,
};
use kernel::ffi::oid::GUID;
use kernel::ffi::wdf::{
    WdfDeviceIoBuffered, WdfFalse, WdfIoQueueDispatchManual, WdfIoQueueDispatchParallel, PWDFDEVICE_INIT,
    WDFDEVICE, WDFFILEOBJECT, WDFOBJECT, WDFQUEUE, WDFREQUEST, WDF_FILEOBJECT_CONFIG, WDF_IO_QUEUE_CONFIG,
    WDF_OBJECT_ATTRIBUTES,
};
use kernel::{kmdf, kmdf_io, unicode_string};

use crate::control::{needs_extended_state, ControlSend, Effects, ReadResult, Reply, Tunnel};
use crate::device::DeviceContext;

/// The largest IOCTL input the glue copies out of the shared system buffer before the handler writes
/// its output there (every ovpn-dco-win structure is far smaller; the handlers read only their
/// structure, so a longer input is passed as its first bytes).
const MAX_IOCTL_INPUT: usize = 512;
/// Parked requests served per wake-up (the control queue holds at most 16 packets).
const SERVICE_BUDGET: usize = 64;

/// The device's context (its `tunnel`), set by [`create`].
static CONTEXT: AtomicPtr<DeviceContext> = AtomicPtr::new(null_mut());
/// The manual queue of parked reads.
static READ_QUEUE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
/// The manual queue of parked `NOTIFY_EVENT` requests.
static NOTIFY_QUEUE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// `GUID_DEVINTERFACE_NET` (`ndisguid.h`), as `uapi::names::GUID_DEVINTERFACE_NET`.
const GUID_DEVINTERFACE_NET: GUID = GUID {
    Data1: uapi::names::GUID_DEVINTERFACE_NET.data1,
    Data2: uapi::names::GUID_DEVINTERFACE_NET.data2,
    Data3: uapi::names::GUID_DEVINTERFACE_NET.data3,
    Data4: uapi::names::GUID_DEVINTERFACE_NET.data4,
};

/// Sets the control-device properties on the device's init: exclusive, buffered I/O, the file object
/// cleanup callback. PASSIVE_LEVEL, in `EvtDriverDeviceAdd` before `WdfDeviceCreate`.
pub(crate) fn init_device(device_init: PWDFDEVICE_INIT) -> Result<(), NTSTATUS> {
    // SAFETY: the init EvtDriverDeviceAdd received, before WdfDeviceCreate.
    unsafe { kmdf_io::device_init_set_exclusive(device_init, true) }?;
    // SAFETY: as above.
    unsafe { kmdf_io::device_init_set_io_type(device_init, WdfDeviceIoBuffered) }?;
    let mut config = WDF_FILEOBJECT_CONFIG::init(None, None, Some(evt_file_cleanup));
    // SAFETY: as above; the config is copied by the framework.
    unsafe { kmdf_io::device_init_set_file_object_config(device_init, &mut config) }
}

/// Creates the queues, the symbolic link and the device interface. PASSIVE_LEVEL, after
/// `WdfDeviceCreate`. On failure the device's removal undoes what was created (the queues are its
/// children; the link goes with it).
pub(crate) fn create(device: WDFDEVICE, context: &'static DeviceContext) -> Result<(), NTSTATUS> {
    let installed = CONTEXT.compare_exchange(
        null_mut(),
        core::ptr::from_ref(context).cast_mut(),
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    if installed.is_err() {
        return Err(STATUS_INVALID_DEVICE_STATE);
    }
    let mut default = WDF_IO_QUEUE_CONFIG::init_default_queue(WdfIoQueueDispatchParallel);
    // Not power managed: the control device works whatever the adapter's power state (ovpn-dco-win).
    default.PowerManaged = WdfFalse;
    default.EvtIoDeviceControl = Some(evt_io_device_control);
    default.EvtIoRead = Some(evt_io_read);
    default.EvtIoWrite = Some(evt_io_write);
    let mut attributes = WDF_OBJECT_ATTRIBUTES::init();
    attributes.EvtCleanupCallback = Some(evt_default_queue_cleanup);
    // SAFETY: our live device, after WdfDeviceCreate.
    unsafe { kmdf_io::queue_create(device, &mut default, Some(&mut attributes)) }?;
    for slot in [&READ_QUEUE, &NOTIFY_QUEUE] {
        let mut manual = WDF_IO_QUEUE_CONFIG::init(WdfIoQueueDispatchManual);
        manual.PowerManaged = WdfFalse;
        // SAFETY: as above.
        let queue = unsafe { kmdf_io::queue_create(device, &mut manual, None) }?;
        slot.store(queue, Ordering::Release);
    }
    let link = unicode_string!("\\DosDevices\\ovpn-dco");
    // SAFETY: our device; the string is static.
    unsafe { kmdf::device_create_symbolic_link(device, &link) }?;
    let reference = unicode_string!("ovpn-dco");
    // SAFETY: our device; the GUID and string are static.
    unsafe { kmdf_io::device_create_device_interface_ref(device, &GUID_DEVINTERFACE_NET, &reference) }
}

/// The default queue's cleanup (the device is being removed): forget the statics. PASSIVE_LEVEL. The
/// device's keepalive timer still runs until the device's own cleanup stops it
/// ([`crate::keepalive::Keepalive::stop`]); until then its ticks find no queue and park nothing.
unsafe extern "system" fn evt_default_queue_cleanup(_queue: WDFOBJECT) {
    READ_QUEUE.store(null_mut(), Ordering::Release);
    NOTIFY_QUEUE.store(null_mut(), Ordering::Release);
    CONTEXT.store(null_mut(), Ordering::Release);
}

fn context() -> Option<&'static DeviceContext> {
    let p = CONTEXT.load(Ordering::Acquire);
    // SAFETY: set by `create` from a `&'static DeviceContext`, cleared before the context goes.
    unsafe { p.as_ref() }
}

fn now() -> datapath::Instant {
    crate::now()
}

fn complete(request: WDFREQUEST, status: NTSTATUS, information: usize) {
    // SAFETY: the request is ours (presented to a callback or retrieved from a manual queue).
    unsafe { kmdf_io::request_complete(request, status, information) };
}

/// The request's output buffer as a slice (empty when it has none).
///
/// # Safety
/// `request` is ours and uncompleted; the slice must not outlive its completion.
unsafe fn output<'a>(request: WDFREQUEST) -> Result<&'a mut [u8], NTSTATUS> {
    // SAFETY: forwarded.
    let (p, n) = unsafe { kmdf_io::request_output_buffer(request, 1) }?;
    // SAFETY: the framework's buffer of `n` bytes, valid until the request completes.
    Ok(unsafe { core::slice::from_raw_parts_mut(p, n) })
}

/// The request's input buffer as a slice.
///
/// # Safety
/// As [`output`].
unsafe fn input<'a>(request: WDFREQUEST) -> Result<&'a [u8], NTSTATUS> {
    // SAFETY: forwarded.
    let (p, n) = unsafe { kmdf_io::request_input_buffer(request, 1) }?;
    // SAFETY: the framework's buffer of `n` bytes, valid until the request completes.
    Ok(unsafe { core::slice::from_raw_parts(p, n) })
}

// ---------------------------------------------------------------------------------------------
// Queue callbacks
// ---------------------------------------------------------------------------------------------

/// `EvtIoDeviceControl` of the default queue. IRQL <= DISPATCH_LEVEL; takes `tunnel`.
unsafe extern "system" fn evt_io_device_control(
    _queue: WDFQUEUE,
    request: WDFREQUEST,
    output_length: usize,
    input_length: usize,
    code: u32,
) {
    let Some(ctx) = context() else {
        return complete(request, STATUS_INVALID_DEVICE_STATE, 0);
    };
    // METHOD_BUFFERED: input and output share the system buffer; copy the input out first.
    let mut copy = [0u8; MAX_IOCTL_INPUT];
    let mut in_len = 0;
    if input_length > 0 {
        // SAFETY: our request.
        match unsafe { input(request) } {
            Ok(data) => {
                in_len = data.len().min(MAX_IOCTL_INPUT);
                if let (Some(dst), Some(src)) = (copy.get_mut(..in_len), data.get(..in_len)) {
                    dst.copy_from_slice(src);
                }
            }
            Err(status) => return complete(request, status, 0),
        }
    }
    let input = copy.get(..in_len).unwrap_or(&[]);
    let mut empty = [0u8; 0];
    let out: &mut [u8] = if output_length > 0 {
        // SAFETY: our request; the slice is dropped before the request completes.
        match unsafe { output(request) } {
            Ok(o) => o,
            Err(status) => return complete(request, status, 0),
        }
    } else {
        &mut empty
    };
    let mut save = XSTATE_SAVE::zeroed();
    let extended = needs_extended_state(code, input);
    if extended {
        // SAFETY: IRQL <= DISPATCH_LEVEL; `save` stays on this frame until the restore below.
        let status =
            unsafe { KeSaveExtendedProcessorState(XSTATE_MASK_LEGACY | XSTATE_MASK_AVX, &raw mut save) };
        if !NT_SUCCESS(status) {
            return complete(request, status, 0);
        }
    }
    let (result, checkpoint) = {
        let mut tunnel = ctx.tunnel.lock();
        let checkpoint = tunnel.checkpoint(code);
        let result = tunnel.ioctl(code, input, out, now());
        if let Ok(reply) = result {
            if reply.status == STATUS_PENDING {
                // NOTIFY_EVENT with nothing queued: park it (under the lock, see the module docs).
                park(request, &NOTIFY_QUEUE);
            }
        }
        (result, checkpoint)
    };
    if extended {
        // SAFETY: restores the save above: same thread, same IRQL, LIFO.
        unsafe { KeRestoreExtendedProcessorState(&raw mut save) };
    }
    match result {
        Err(status) => complete(request, status, 0),
        Ok(Reply { status, information, effects }) => {
            // The transport opens (binds) before the request completes, so a bind failure fails it,
            // and the tunnel goes back to where it was before the request (`Tunnel::rollback`).
            let applied = apply(ctx, &effects);
            if applied.is_err() {
                ctx.tunnel.lock().rollback(checkpoint);
            }
            if status != STATUS_PENDING {
                match applied {
                    Ok(bound) => {
                        if let (Some(bound), true) = (bound, code == uapi::ovpn::OvpnIoctl::MpStartVpn.code())
                        {
                            patch_listen_port(out, bound.port());
                        }
                        complete(request, status, information);
                    }
                    Err(e) => complete(request, e, 0),
                }
            }
        }
    }
}

/// `MP_START_VPN`'s reply carries the listen address back: with port 0 asked, the port the socket was
/// bound to (`Tunnel::ioctl` wrote the request's address; the output was checked to be large enough).
fn patch_listen_port(out: &mut [u8], port: u16) {
    if let Ok(mut reply) = uapi::ovpn::OvpnMpStartVpn::parse(out) {
        reply.listen_address.set_port(port);
        let _ = reply.write_to(out);
    }
}

/// Forwards a request to a manual queue; a failure completes it with the failure.
fn park(request: WDFREQUEST, queue: &AtomicPtr<c_void>) {
    let q = queue.load(Ordering::Acquire);
    // SAFETY: our request and our device's queue.
    if let Err(status) = unsafe { kmdf_io::request_forward(request, q) } {
        complete(request, status, 0);
    }
}

/// `EvtIoRead`: one control packet, or the read parks. IRQL <= DISPATCH_LEVEL; takes `tunnel`.
unsafe extern "system" fn evt_io_read(_queue: WDFQUEUE, request: WDFREQUEST, _length: usize) {
    let Some(ctx) = context() else {
        return complete(request, STATUS_INVALID_DEVICE_STATE, 0);
    };
    let mut tunnel = ctx.tunnel.lock();
    serve_read(&mut tunnel, request);
}

/// Answers one read under the lock: complete it, or park it in the read queue.
fn serve_read(tunnel: &mut Tunnel, request: WDFREQUEST) -> bool {
    // SAFETY: our request; the slice is not used after completion.
    let out = match unsafe { output(request) } {
        Ok(o) => o,
        Err(status) => {
            complete(request, status, 0);
            return true;
        }
    };
    match tunnel.read(out) {
        Ok(ReadResult::Complete(n)) => {
            complete(request, STATUS_SUCCESS, n);
            true
        }
        Ok(ReadResult::Pending) => {
            park(request, &READ_QUEUE);
            false
        }
        Err(status) => {
            complete(request, status, 0);
            true
        }
    }
}

/// `EvtIoWrite`: one control packet to send. IRQL <= DISPATCH_LEVEL; takes `tunnel`.
unsafe extern "system" fn evt_io_write(_queue: WDFQUEUE, request: WDFREQUEST, length: usize) {
    let Some(ctx) = context() else {
        return complete(request, STATUS_INVALID_DEVICE_STATE, 0);
    };
    // SAFETY: our request.
    let data = match unsafe { input(request) } {
        Ok(d) => d,
        Err(status) => return complete(request, status, 0),
    };
    let sent = ctx.tunnel.lock().write(data);
    match sent.and_then(|send| send_control(ctx, send, data)) {
        Ok(()) => complete(request, STATUS_SUCCESS, length),
        Err(status) => complete(request, status, 0),
    }
}

/// `EvtFileCleanup`: the handle closes; the peers go ([`Tunnel::close`]). PASSIVE_LEVEL. The framework
/// then cancels what the handle still has in the queues.
unsafe extern "system" fn evt_file_cleanup(_file: WDFFILEOBJECT) {
    let Some(ctx) = context() else { return };
    let effects = ctx.tunnel.lock().close();
    // Closing only closes the socket and drops the link: nothing that can fail is left to report.
    let _ = apply(ctx, &effects);
}

// ---------------------------------------------------------------------------------------------
// Effects and wake-ups
// ---------------------------------------------------------------------------------------------

/// Carries out a request's side effects: cancels parked requests, then opens/closes the outer socket
/// and sets the link state ([`crate::transport::apply`]). PASSIVE_LEVEL. Returns the socket's bound
/// address when one was opened, or the transport's failure.
fn apply(
    ctx: &'static DeviceContext,
    effects: &Effects,
) -> Result<Option<kernel::wsk::SocketAddr>, NTSTATUS> {
    if let Some(status) = effects.cancel_pending {
        for queue in [&READ_QUEUE, &NOTIFY_QUEUE] {
            let q = queue.load(Ordering::Acquire);
            if q.is_null() {
                continue;
            }
            for _ in 0..SERVICE_BUDGET {
                // SAFETY: our device's manual queue.
                let Ok(request) = (unsafe { kmdf_io::queue_retrieve_next(q) }) else {
                    break;
                };
                complete(request, status, 0);
            }
        }
    }
    crate::transport::apply(ctx, effects)
}

/// Retries parked reads under the lock until one has to wait again. IRQL <= DISPATCH_LEVEL, under
/// `DeviceContext::tunnel` (the Rx path calls it after queueing a control packet). Nothing to do
/// while the control device has no queue (before [`create`], after its cleanup).
pub(crate) fn service_reads(tunnel: &mut Tunnel) {
    let queue = READ_QUEUE.load(Ordering::Acquire);
    if queue.is_null() {
        return;
    }
    for _ in 0..SERVICE_BUDGET {
        // SAFETY: our device's manual queue.
        let Ok(request) = (unsafe { kmdf_io::queue_retrieve_next(queue) }) else {
            return;
        };
        if !serve_read(tunnel, request) {
            return;
        }
    }
}

/// Retries parked `NOTIFY_EVENT` requests under the lock until one has to wait again. IRQL <=
/// DISPATCH_LEVEL, under `DeviceContext::tunnel` (the keepalive timer calls it after a peer expired).
pub(crate) fn service_notifications(tunnel: &mut Tunnel) {
    let queue = NOTIFY_QUEUE.load(Ordering::Acquire);
    if queue.is_null() {
        return;
    }
    for _ in 0..SERVICE_BUDGET {
        // SAFETY: our device's manual queue.
        let Ok(request) = (unsafe { kmdf_io::queue_retrieve_next(queue) }) else {
            return;
        };
        // SAFETY: our request; the slice is not used after completion.
        let out = match unsafe { output(request) } {
            Ok(o) => o,
            Err(status) => {
                complete(request, status, 0);
                continue;
            }
        };
        match tunnel.ioctl(uapi::ovpn::OvpnIoctl::NotifyEvent.code(), &[], out, now()) {
            Ok(reply) if reply.status == STATUS_PENDING => {
                park(request, &NOTIFY_QUEUE);
                return;
            }
            Ok(reply) => complete(request, reply.status, reply.information),
            Err(status) => complete(request, status, 0),
        }
    }
}

/// The data path received a control packet from `from` (UDP/TCP receive path, IRQL <= DISPATCH_LEVEL):
/// queued for `ReadFile`, and parked reads are served. Returns the queueing status (a full queue drops
/// the packet and counts it). `STATUS_INVALID_DEVICE_STATE` when there is no control device.
pub fn control_packet_received(from: SocketAddr, packet: &[u8]) -> NTSTATUS {
    let Some(ctx) = context() else { return STATUS_INVALID_DEVICE_STATE };
    let mut tunnel = ctx.tunnel.lock();
    let status = match tunnel.receive_control(from, packet) {
        Ok(()) => STATUS_SUCCESS,
        Err(status) => status,
    };
    service_reads(&mut tunnel);
    status
}

/// Runs the device's keepalive timers once, as its timer DPC does ([`crate::keepalive::poll`]): a
/// client-mode timeout completes the parked read with `STATUS_CONNECTION_DISCONNECTED`, server-mode
/// notifications complete parked `NOTIFY_EVENT`s, pings go out through the socket. IRQL <=
/// DISPATCH_LEVEL. `STATUS_INVALID_DEVICE_STATE` when there is no control device.
pub fn timer_tick() -> NTSTATUS {
    let Some(ctx) = context() else { return STATUS_INVALID_DEVICE_STATE };
    crate::keepalive::poll(ctx);
    STATUS_SUCCESS
}

// ---------------------------------------------------------------------------------------------
// The version device
// ---------------------------------------------------------------------------------------------

/// The version control device (`\\.\ovpn-dco-ver`), while it exists.
static VERSION_DEVICE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// Creates ovpn-dco-win's version device: a control (non-PnP), **non-exclusive** device
/// `\Device\ovpn-dco-ver` with the link `\DosDevices\ovpn-dco-ver`, answering only
/// `OVPN_IOCTL_GET_VERSION`, so OpenVPN can ask the version without taking the adapter's exclusive
/// handle (ovpn-dco-win `control.cpp`). PASSIVE_LEVEL, from `DriverEntry`; deleted by
/// [`delete_version_device`] in `EvtDriverUnload`. Undoes itself on failure.
pub(crate) fn create_version_device(driver: kernel::ffi::wdf::WDFDRIVER) -> Result<(), NTSTATUS> {
    // SYSTEM all access; administrators, everyone and restricted code read/write/execute
    // (`SDDL_DEVOBJ_SYS_ALL_ADM_RWX_WORLD_RWX_RES_RWX`): any process may ask the version.
    let sddl = unicode_string!("D:P(A;;GA;;;SY)(A;;GRGWGX;;;BA)(A;;GRGWGX;;;WD)(A;;GRGWGX;;;RC)");
    // SAFETY: our WDFDRIVER; KMDF is bound; the string is static.
    let mut init = unsafe { kmdf_io::control_device_init_allocate(driver, &sddl) }?;
    let name = unicode_string!("\\Device\\ovpn-dco-ver");
    // SAFETY: the init we allocated.
    let configured = unsafe { kmdf_io::device_init_assign_name(init, &name) }
        // SAFETY: as above.
        .and_then(|()| unsafe { kmdf_io::device_init_set_io_type(init, WdfDeviceIoBuffered) });
    if let Err(status) = configured {
        // SAFETY: WdfDeviceCreate did not take it.
        unsafe { kmdf_io::device_init_free(init) };
        return Err(status);
    }
    // SAFETY: as above.
    let device = match unsafe { kmdf::device_create(&mut init, None) } {
        Ok(d) => d,
        Err(status) => {
            // SAFETY: WdfDeviceCreate failed, so the init is still ours.
            unsafe { kmdf_io::device_init_free(init) };
            return Err(status);
        }
    };
    let mut queue = WDF_IO_QUEUE_CONFIG::init_default_queue(WdfIoQueueDispatchParallel);
    queue.PowerManaged = WdfFalse;
    queue.EvtIoDeviceControl = Some(evt_version_io_control);
    let link = unicode_string!("\\DosDevices\\ovpn-dco-ver");
    // SAFETY: our new control device.
    let built = unsafe { kmdf_io::queue_create(device, &mut queue, None) }
        // SAFETY: as above; the string is static.
        .and_then(|_| unsafe { kmdf::device_create_symbolic_link(device, &link) });
    if let Err(status) = built {
        // SAFETY: our control device; deleting it removes its queue and link.
        unsafe { kmdf::object_delete(device) };
        return Err(status);
    }
    // SAFETY: as above.
    unsafe { kmdf_io::control_finish_initializing(device) };
    VERSION_DEVICE.store(device, Ordering::Release);
    Ok(())
}

/// Deletes the version device. PASSIVE_LEVEL, from `EvtDriverUnload`.
pub(crate) fn delete_version_device() {
    let device = VERSION_DEVICE.swap(null_mut(), Ordering::AcqRel);
    if !device.is_null() {
        // SAFETY: our control device, deleted once.
        unsafe { kmdf::object_delete(device) };
    }
}

/// The version device's `EvtIoDeviceControl`: `GET_VERSION` only. IRQL <= DISPATCH_LEVEL; no lock.
unsafe extern "system" fn evt_version_io_control(
    _queue: WDFQUEUE,
    request: WDFREQUEST,
    _output_length: usize,
    _input_length: usize,
    code: u32,
) {
    if code != uapi::ovpn::OvpnIoctl::GetVersion.code() {
        return complete(request, kernel::ffi::ntos::STATUS_INVALID_DEVICE_REQUEST, 0);
    }
    // SAFETY: our request; the slice is not used after completion.
    let out = match unsafe { output(request) } {
        Ok(o) => o,
        Err(status) => return complete(request, status, 0),
    };
    match uapi::ovpn::RDCO_REPORTED_VERSION.write_to(out) {
        Ok(n) => complete(request, STATUS_SUCCESS, n),
        Err(_) => complete(request, kernel::ffi::ntos::STATUS_BUFFER_TOO_SMALL, 0),
    }
}

// ---------------------------------------------------------------------------------------------
// Control packets out
// ---------------------------------------------------------------------------------------------

/// Sends a checked control packet, `data[send.offset..][..send.len]`, to `send.to` through the device's
/// socket ([`crate::keepalive::send_control`]: a copy in the keepalive pool). PASSIVE_LEVEL (EvtIoWrite).
/// `STATUS_INVALID_DEVICE_STATE` with no socket open.
fn send_control(ctx: &'static DeviceContext, send: ControlSend, data: &[u8]) -> Result<(), NTSTATUS> {
    let packet = data
        .get(send.offset..)
        .and_then(|d| d.get(..send.len))
        .ok_or(kernel::ffi::ntos::STATUS_INVALID_PARAMETER)?;
    crate::keepalive::send_control(ctx, &crate::transport::wsk_addr(&send.to), packet)
}
