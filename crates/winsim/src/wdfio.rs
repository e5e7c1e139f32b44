//! KMDF I/O as far as the drivers use it: device-init I/O settings (`WdfDeviceInitSetExclusive`,
//! `WdfDeviceInitSetIoType`, `WdfDeviceInitSetFileObjectConfig`), I/O queues (`WdfIoQueueCreate`:
//! default sequential/parallel queues with `EvtIoRead`/`EvtIoWrite`/`EvtIoDeviceControl`/`EvtIoDefault`,
//! manual queues, `WdfIoQueueRetrieveNextRequest`, `WdfIoQueuePurgeSynchronously`) and requests
//! (`WdfRequestRetrieveInputBuffer`/`OutputBuffer`, `WdfRequestComplete[WithInformation]`,
//! `WdfRequestSetInformation`, `WdfRequestForwardToIoQueue`, `WdfRequestGetFileObject`), plus the
//! framework's IRP dispatch: a WDFDEVICE with a symbolic link (`WdfDeviceCreateSymbolicLink`, in
//! [`crate::netcx`]) is registered with the simulated I/O manager ([`crate::device`]) with the framework's
//! dispatch routine, which turns each IRP into a WDFREQUEST.
//!
//! # What is modelled (facts from the KMDF documentation, own code)
//! * **Create/cleanup/close** ("Framework File Objects", `WDF_FILEOBJECT_CONFIG`): `IRP_MJ_CREATE` runs
//!   `EvtDeviceFileCreate(device, request, file)`, which completes the request (without the callback the
//!   framework succeeds it). An exclusive device (`WdfDeviceInitSetExclusive`, `IoCreateDevice`'s
//!   `Exclusive`: one open handle) fails a second open with `STATUS_ACCESS_DENIED` before the driver sees
//!   it. `IRP_MJ_CLEANUP` runs `EvtFileCleanup(file)`, then the framework cancels the requests of that
//!   file object still in the device's queues (`STATUS_CANCELLED`, or `EvtIoCanceledOnQueue` when the
//!   queue has one); `IRP_MJ_CLOSE` runs `EvtFileClose(file)`. The WDFFILEOBJECT handle is the
//!   `FILE_OBJECT`'s address.
//! * **Dispatch** (`WDF_IO_QUEUE_CONFIG`, "Dispatching Methods for I/O Requests"): reads, writes and
//!   IOCTLs go to the default queue; no default queue or no callback for the type fails the request with
//!   `STATUS_INVALID_DEVICE_REQUEST`. A zero-length read or write is completed with `STATUS_SUCCESS` by
//!   the framework unless `AllowZeroLengthRequests`. Parallel queues present every request at once;
//!   sequential queues one at a time (the next when the driver completes or forwards the current one);
//!   manual queues hold requests until `WdfIoQueueRetrieveNextRequest` (`STATUS_NO_MORE_ENTRIES` when
//!   empty). Callbacks run at PASSIVE_LEVEL (the simulation's I/O manager calls at PASSIVE_LEVEL). The
//!   framework dispatch routine marks the IRP pending and returns `STATUS_PENDING` unless the driver
//!   completed it inside the callback.
//! * **Buffers** (`WdfRequestRetrieveInputBuffer`/`OutputBuffer` docs; buffered I/O only): the IOCTL
//!   input/output buffers are the IRP's `SystemBuffer` with the stack location's lengths; a write has an
//!   input buffer only and a read an output buffer only (the other is `STATUS_INVALID_DEVICE_REQUEST`); a
//!   buffer shorter than `MinimumRequiredSize`, or of length 0, is `STATUS_BUFFER_TOO_SMALL`.
//! * **Removal**: when PnP removes the device, the framework purges its queues (requests still queued
//!   complete with `STATUS_CANCELLED`), removes the symbolic link, and then every request the driver
//!   still owns is a leak.
//!
//! # Rules (the KMDF verifier's request checks: bug check 0x10D `WDF_VIOLATION`, parameter 1 = 0x6,
//! `WDF_REQUEST_FATAL_ERROR`, and the DDI compliance rules `DoubleCompletion`, `BufAfterReqCompleted*`,
//! `InvalidReqAccess`, `ReqNotCanceled`)
//! * `wdf.request_completed_twice`: completing a request that is already completed.
//! * `wdf.request_after_completion`: any other request DDI on a completed request.
//! * `wdf.request_not_owned`: completing, forwarding or reading the buffers of a request that sits in a
//!   queue (the framework's), or forwarding to a queue of another device.
//! * `wdf.request_information_overflow`: completing a read or IOCTL with `Information` beyond its output
//!   buffer (`WDF_REQUEST_FATAL_ERROR_INFORMATION_LENGTH_MISMATCH`).
//! * `wdf.request_leaked`: a request the driver owns is not completed when its device is removed (or its
//!   driver unloads); the framework then completes it with `STATUS_CANCELLED` so the I/O manager's IRP
//!   does not hang.
//!
//! Not modelled: direct and neither I/O, power-managed queue stop/start (`EvtIoStop`), request
//! cancel routines (`WdfRequestMarkCancelableEx`; the drivers keep pended requests in manual queues, whose
//! cancellation the framework owns), queue-level synchronization scopes, `EvtIoInCallerContext`.
//!
//! Locking: one mutex over the state, never held across a call into a driver or into the I/O manager.
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::c_void;
use std::sync::Mutex;

use kernel::ffi::ntos::{
    IoGetCurrentIrpStackLocation, BOOLEAN, DEVICE_OBJECT, DISPATCH_LEVEL, IRP, IRP_MJ_CLEANUP, IRP_MJ_CLOSE,
    IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IRP_MJ_READ, IRP_MJ_WRITE, NTSTATUS, NT_SUCCESS, PASSIVE_LEVEL,
    SL_PENDING_RETURNED, STATUS_ACCESS_DENIED, STATUS_BUFFER_TOO_SMALL, STATUS_CANCELLED,
    STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_PARAMETER, STATUS_NO_MORE_ENTRIES, STATUS_PENDING,
    STATUS_SUCCESS,
};
use kernel::ffi::wdf::{
    WdfDeviceInitSetExclusiveTableIndex, WdfDeviceInitSetFileObjectConfigTableIndex,
    WdfDeviceInitSetIoTypeTableIndex, WdfIoQueueCreateTableIndex, WdfIoQueueDispatchManual,
    WdfIoQueueDispatchParallel, WdfIoQueueDispatchSequential, WdfIoQueuePurgeSynchronouslyTableIndex,
    WdfIoQueueRetrieveNextRequestTableIndex, WdfRequestCompleteTableIndex,
    WdfRequestCompleteWithInformationTableIndex, WdfRequestForwardToIoQueueTableIndex,
    WdfRequestGetFileObjectTableIndex, WdfRequestRetrieveInputBufferTableIndex,
    WdfRequestRetrieveOutputBufferTableIndex, WdfRequestSetInformationTableIndex,
    PFN_WDFDEVICEINITSETEXCLUSIVE, PFN_WDFDEVICEINITSETFILEOBJECTCONFIG, PFN_WDFDEVICEINITSETIOTYPE,
    PFN_WDFIOQUEUECREATE, PFN_WDFIOQUEUEPURGESYNCHRONOUSLY, PFN_WDFIOQUEUERETRIEVENEXTREQUEST,
    PFN_WDFREQUESTCOMPLETE, PFN_WDFREQUESTCOMPLETEWITHINFORMATION, PFN_WDFREQUESTFORWARDTOIOQUEUE,
    PFN_WDFREQUESTGETFILEOBJECT, PFN_WDFREQUESTRETRIEVEBUFFER, PFN_WDFREQUESTSETINFORMATION, PWDFDEVICE_INIT,
    WDFDEVICE, WDFFILEOBJECT, WDFFUNC, WDFQUEUE, WDFREQUEST, WDF_DEVICE_IO_TYPE, WDF_DRIVER_GLOBALS,
    WDF_FILEOBJECT_CONFIG, WDF_IO_QUEUE_CONFIG, WDF_OBJECT_ATTRIBUTES,
};

use crate::context::{call_driver, require_irql_at_most, DriverId};
use crate::verifier::{violation, Rule};

#[derive(Default)]
struct InitIo {
    /// `WdfDeviceInitAssignName`.
    name: Option<String>,
    exclusive: bool,
    io_type: WDF_DEVICE_IO_TYPE,
    file: Option<WDF_FILEOBJECT_CONFIG>,
}

struct DevIo {
    driver: DriverId,
    name: Option<String>,
    exclusive: bool,
    file: Option<WDF_FILEOBJECT_CONFIG>,
    default_queue: Option<usize>,
    queues: Vec<usize>,
    /// The I/O manager registration and `DEVICE_OBJECT` address, once a symbolic link exists.
    registration: Option<(usize, usize)>,
    /// Open file objects.
    files: BTreeSet<usize>,
}

struct QueueRec {
    device: usize,
    config: WDF_IO_QUEUE_CONFIG,
    held: VecDeque<usize>,
    /// Sequential queues: requests presented and not yet completed or forwarded.
    presented: usize,
    /// The queue's `EvtCleanupCallback` (object attributes), run when its device is removed.
    cleanup: Option<unsafe extern "system" fn(kernel::ffi::wdf::WDFOBJECT)>,
    _token: Box<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Driver,
    Queue(usize),
}

struct Req {
    device: usize,
    irp: usize,
    major: usize,
    file: usize,
    input_len: usize,
    output_len: usize,
    code: u32,
    buffer: usize,
    owner: Owner,
    /// The sequential queue that presented it, if any (freed for the next request on completion).
    presenter: Option<usize>,
    information: usize,
    token: Box<u64>,
}

#[derive(Default)]
struct State {
    inits: BTreeMap<usize, InitIo>,
    devices: BTreeMap<usize, DevIo>,
    queues: BTreeMap<usize, QueueRec>,
    requests: BTreeMap<usize, Req>,
    /// Handles of completed requests (their tokens are kept so the addresses are never reused).
    completed: BTreeMap<usize, Box<u64>>,
}

// SAFETY: the state holds addresses and plain configuration; the raw pointers in the configs are
// driver callbacks, only called through `call_driver`.
unsafe impl Send for State {}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = crate::lock(&STATE);
    f(guard.get_or_insert_with(State::default))
}

pub(crate) fn reset() {
    let old = crate::lock(&STATE).take();
    drop(old);
}

thread_local! {
    /// Set while a sequential queue is presenting on this thread (completion inside the callback does
    /// not present the next request recursively; the presenting loop does).
    static PRESENTING: Cell<bool> = const { Cell::new(false) };
}

macro_rules! slot {
    ($table:expr, $index:expr, $f:expr, $ty:ty) => {
        // SAFETY: `$f` has the prototype of the slot's PFN (wdffuncenum.h and the DDI's header), which
        // the client casts the entry back to.
        $table[$index] = Some(unsafe { std::mem::transmute::<$ty, unsafe extern "system" fn()>($f) });
    };
}

/// Installs the KMDF I/O slots into a client's table.
pub(crate) fn install(table: &mut [WDFFUNC]) {
    slot!(
        table,
        WdfDeviceInitSetExclusiveTableIndex,
        WdfDeviceInitSetExclusive,
        PFN_WDFDEVICEINITSETEXCLUSIVE
    );
    slot!(table, WdfDeviceInitSetIoTypeTableIndex, WdfDeviceInitSetIoType, PFN_WDFDEVICEINITSETIOTYPE);
    slot!(
        table,
        WdfDeviceInitSetFileObjectConfigTableIndex,
        WdfDeviceInitSetFileObjectConfig,
        PFN_WDFDEVICEINITSETFILEOBJECTCONFIG
    );
    slot!(table, WdfIoQueueCreateTableIndex, WdfIoQueueCreate, PFN_WDFIOQUEUECREATE);
    slot!(
        table,
        kernel::ffi::wdf::WdfControlDeviceInitAllocateTableIndex,
        WdfControlDeviceInitAllocate,
        kernel::ffi::wdf::PFN_WDFCONTROLDEVICEINITALLOCATE
    );
    slot!(
        table,
        kernel::ffi::wdf::WdfControlFinishInitializingTableIndex,
        WdfControlFinishInitializing,
        kernel::ffi::wdf::PFN_WDFCONTROLFINISHINITIALIZING
    );
    slot!(
        table,
        kernel::ffi::wdf::WdfDeviceInitFreeTableIndex,
        WdfDeviceInitFree,
        kernel::ffi::wdf::PFN_WDFDEVICEINITFREE
    );
    slot!(
        table,
        kernel::ffi::wdf::WdfDeviceInitAssignNameTableIndex,
        WdfDeviceInitAssignName,
        kernel::ffi::wdf::PFN_WDFDEVICEINITASSIGNNAME
    );
    slot!(
        table,
        kernel::ffi::wdf::WdfObjectDeleteTableIndex,
        WdfObjectDelete,
        kernel::ffi::wdf::PFN_WDFOBJECTDELETE
    );
    slot!(
        table,
        WdfIoQueueRetrieveNextRequestTableIndex,
        WdfIoQueueRetrieveNextRequest,
        PFN_WDFIOQUEUERETRIEVENEXTREQUEST
    );
    slot!(
        table,
        WdfIoQueuePurgeSynchronouslyTableIndex,
        WdfIoQueuePurgeSynchronously,
        PFN_WDFIOQUEUEPURGESYNCHRONOUSLY
    );
    slot!(table, WdfRequestCompleteTableIndex, WdfRequestComplete, PFN_WDFREQUESTCOMPLETE);
    slot!(
        table,
        WdfRequestCompleteWithInformationTableIndex,
        WdfRequestCompleteWithInformation,
        PFN_WDFREQUESTCOMPLETEWITHINFORMATION
    );
    slot!(table, WdfRequestSetInformationTableIndex, WdfRequestSetInformation, PFN_WDFREQUESTSETINFORMATION);
    slot!(
        table,
        WdfRequestRetrieveInputBufferTableIndex,
        WdfRequestRetrieveInputBuffer,
        PFN_WDFREQUESTRETRIEVEBUFFER
    );
    slot!(
        table,
        WdfRequestRetrieveOutputBufferTableIndex,
        WdfRequestRetrieveOutputBuffer,
        PFN_WDFREQUESTRETRIEVEBUFFER
    );
    slot!(
        table,
        WdfRequestForwardToIoQueueTableIndex,
        WdfRequestForwardToIoQueue,
        PFN_WDFREQUESTFORWARDTOIOQUEUE
    );
    slot!(table, WdfRequestGetFileObjectTableIndex, WdfRequestGetFileObject, PFN_WDFREQUESTGETFILEOBJECT);
}

// ---------------------------------------------------------------------------------------------
// Hooks from the device DDIs (crate::netcx)
// ---------------------------------------------------------------------------------------------

/// `WdfDeviceCreate` took `init` and made `device`: the init's I/O settings become the device's.
pub(crate) fn device_created(init: usize, device: usize, driver: DriverId) {
    with(|s| {
        let i = s.inits.remove(&init).unwrap_or_default();
        s.devices.insert(
            device,
            DevIo {
                driver,
                name: i.name,
                exclusive: i.exclusive,
                file: i.file,
                default_queue: None,
                queues: Vec::new(),
                registration: None,
                files: BTreeSet::new(),
            },
        );
    });
}

/// An init the framework frees without a device.
pub(crate) fn init_freed(init: usize) {
    with(|s| s.inits.remove(&init));
}

/// `WdfDeviceCreateSymbolicLink` named `link` for `device`: the first link makes the device reachable
/// through the I/O manager (later links are recorded by [`crate::netcx`] only).
pub(crate) fn link_created(device: usize, link: &str) -> NTSTATUS {
    let Some((driver, registered, name)) =
        with(|s| s.devices.get(&device).map(|d| (d.driver, d.registration.is_some(), d.name.clone())))
    else {
        return STATUS_INVALID_PARAMETER;
    };
    if registered {
        return STATUS_SUCCESS;
    }
    let name = name.unwrap_or_else(|| format!("\\Device\\WdfDevice{device:x}"));
    match crate::device::register_framework(driver, &name, link, framework_dispatch) {
        Ok(reg) => {
            with(|s| s.devices.get_mut(&device).map(|d| d.registration = Some(reg)));
            STATUS_SUCCESS
        }
        Err(status) => status,
    }
}

/// PnP removes `device` (before its cleanup callback): the framework purges the device's queues
/// (queued requests complete with `STATUS_CANCELLED`) and removes the symbolic link.
pub(crate) fn device_removing(device: usize) {
    let queues = with(|s| s.devices.get(&device).map(|d| d.queues.clone()).unwrap_or_default());
    for q in queues {
        purge(q, None);
    }
    if let Some((handle, _)) = with(|s| s.devices.get_mut(&device).and_then(|d| d.registration.take())) {
        crate::device::deregister_framework(handle);
    }
    // The queues are the device's children: their cleanup callbacks run before the device's.
    type Cleanup = unsafe extern "system" fn(kernel::ffi::wdf::WDFOBJECT);
    let cleanups: Vec<(usize, DriverId, Cleanup)> = with(|s| {
        let driver = s.devices.get(&device).map(|d| d.driver);
        s.queues
            .iter_mut()
            .filter(|(_, q)| q.device == device)
            .filter_map(|(&k, q)| Some((k, driver?, q.cleanup.take()?)))
            .collect()
    });
    for (q, driver, cb) in cleanups {
        // SAFETY: the driver's cleanup callback with the queue it was registered for.
        call_driver(driver, PASSIVE_LEVEL, "EvtCleanupCallback(WDFQUEUE)", || unsafe { cb(q as _) });
    }
}

/// After the device's cleanup callback: requests the driver still owns are leaks (completed with
/// `STATUS_CANCELLED` so the caller's IRP finishes); the device's queues are gone.
pub(crate) fn device_removed(device: usize) {
    let leaked: Vec<usize> =
        with(|s| s.requests.iter().filter(|(_, r)| r.device == device).map(|(&k, _)| k).collect());
    for r in leaked {
        let what = with(|s| s.requests.get(&r).map(describe)).unwrap_or_default();
        violation(
            Rule::WdfRequestLeaked,
            format!("{what} still owned by the driver when its device was removed"),
        );
        finish(r, STATUS_CANCELLED, 0);
    }
    with(|s| {
        s.queues.retain(|_, q| q.device != device);
        s.devices.remove(&device);
    });
}

/// The driver unloads: any framework device of its still present was removed by PnP first
/// ([`crate::netcx::check_unload`]); forget what is left.
pub(crate) fn check_unload(driver: DriverId) {
    let devices: Vec<usize> =
        with(|s| s.devices.iter().filter(|(_, d)| d.driver == driver).map(|(&k, _)| k).collect());
    for d in devices {
        device_removing(d);
        device_removed(d);
    }
}

/// Requests pending in the framework's queues and owned by the driver (for tests): (queued, driver-owned).
pub fn requests_outstanding() -> (usize, usize) {
    with(|s| {
        let queued = s.requests.values().filter(|r| matches!(r.owner, Owner::Queue(_))).count();
        (queued, s.requests.len() - queued)
    })
}

fn describe(r: &Req) -> String {
    let what = match r.major {
        IRP_MJ_CREATE => "create".to_string(),
        IRP_MJ_READ => "read".to_string(),
        IRP_MJ_WRITE => "write".to_string(),
        IRP_MJ_DEVICE_CONTROL => format!("IOCTL {:#x}", r.code),
        _ => "request".to_string(),
    };
    format!("WDFREQUEST {:#x} ({what})", key(&r.token))
}

fn key(token: &u64) -> usize {
    std::ptr::from_ref(token) as usize
}

// ---------------------------------------------------------------------------------------------
// Device-init DDIs
// ---------------------------------------------------------------------------------------------

unsafe extern "system" fn WdfDeviceInitSetExclusive(
    _globals: *mut WDF_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
    exclusive: BOOLEAN,
) {
    require_irql_at_most(PASSIVE_LEVEL, "WdfDeviceInitSetExclusive");
    with(|s| s.inits.entry(init as usize).or_default().exclusive = exclusive != 0);
}

unsafe extern "system" fn WdfDeviceInitSetIoType(
    _globals: *mut WDF_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
    io_type: WDF_DEVICE_IO_TYPE,
) {
    require_irql_at_most(PASSIVE_LEVEL, "WdfDeviceInitSetIoType");
    if io_type != kernel::ffi::wdf::WdfDeviceIoBuffered {
        violation(
            Rule::NotSimulated,
            format!("WdfDeviceInitSetIoType({io_type}): only buffered I/O is simulated"),
        );
    }
    with(|s| s.inits.entry(init as usize).or_default().io_type = io_type);
}

unsafe extern "system" fn WdfDeviceInitSetFileObjectConfig(
    _globals: *mut WDF_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
    config: *mut WDF_FILEOBJECT_CONFIG,
    _attributes: *mut WDF_OBJECT_ATTRIBUTES,
) {
    require_irql_at_most(PASSIVE_LEVEL, "WdfDeviceInitSetFileObjectConfig");
    // SAFETY: null or the caller's valid config.
    let Some(c) = (unsafe { config.as_ref() }).copied() else { return };
    if c.Size as usize != std::mem::size_of::<WDF_FILEOBJECT_CONFIG>() {
        violation(Rule::WdfStillBound, format!("WDF_FILEOBJECT_CONFIG.Size {}", c.Size));
        return;
    }
    with(|s| s.inits.entry(init as usize).or_default().file = Some(c));
}

// ---------------------------------------------------------------------------------------------
// Control devices and object deletion
// ---------------------------------------------------------------------------------------------

/// `WdfControlDeviceInitAllocate`: an init for a control (non-PnP) device of the calling driver. The SDDL
/// string is required (`WdfControlDeviceInitAllocate` docs) and otherwise not modelled. PASSIVE_LEVEL.
unsafe extern "system" fn WdfControlDeviceInitAllocate(
    globals: *mut WDF_DRIVER_GLOBALS,
    _driver: kernel::ffi::wdf::WDFDRIVER,
    sddl: *const kernel::ffi::ntos::UNICODE_STRING,
) -> PWDFDEVICE_INIT {
    require_irql_at_most(PASSIVE_LEVEL, "WdfControlDeviceInitAllocate");
    let Some(owner) = crate::wdf::owner_of(globals) else {
        violation(Rule::WdfStillBound, "WdfControlDeviceInitAllocate with foreign globals");
        return std::ptr::null_mut();
    };
    // SAFETY: null or the caller's valid string.
    if unsafe { crate::read_unicode(sddl) }.is_none_or(|s| s.is_empty()) {
        return std::ptr::null_mut();
    }
    crate::netcx::new_device_init(owner) as PWDFDEVICE_INIT
}

/// `WdfControlFinishInitializing`: the control device may now receive requests (the simulation
/// dispatches from `WdfDeviceCreateSymbolicLink` on). PASSIVE_LEVEL.
unsafe extern "system" fn WdfControlFinishInitializing(
    _globals: *mut WDF_DRIVER_GLOBALS,
    _device: WDFDEVICE,
) {
    require_irql_at_most(PASSIVE_LEVEL, "WdfControlFinishInitializing");
}

/// `WdfDeviceInitFree`: frees an init `WdfDeviceCreate` did not take. PASSIVE_LEVEL.
unsafe extern "system" fn WdfDeviceInitFree(_globals: *mut WDF_DRIVER_GLOBALS, init: PWDFDEVICE_INIT) {
    require_irql_at_most(PASSIVE_LEVEL, "WdfDeviceInitFree");
    init_freed(init as usize);
    if !crate::netcx::free_device_init(init as usize) {
        violation(Rule::WdfStillBound, format!("WdfDeviceInitFree({init:p}): not a live WDFDEVICE_INIT"));
    }
}

/// `WdfDeviceInitAssignName`: the device's name (`\Device\...`). PASSIVE_LEVEL.
unsafe extern "system" fn WdfDeviceInitAssignName(
    _globals: *mut WDF_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
    name: *const kernel::ffi::ntos::UNICODE_STRING,
) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "WdfDeviceInitAssignName");
    // SAFETY: null or the caller's valid string.
    let name = unsafe { crate::read_unicode(name) };
    with(|s| s.inits.entry(init as usize).or_default().name = name);
    STATUS_SUCCESS
}

/// `WdfObjectDelete`, for the objects the simulation lets drivers delete: a WDFDEVICE (a control device;
/// removed as PnP removes a device: queues purged, link removed, cleanup callbacks). Anything else stops
/// the machine as not simulated. PASSIVE_LEVEL for a device.
unsafe extern "system" fn WdfObjectDelete(
    _globals: *mut WDF_DRIVER_GLOBALS,
    object: kernel::ffi::wdf::WDFOBJECT,
) {
    require_irql_at_most(PASSIVE_LEVEL, "WdfObjectDelete(WDFDEVICE)");
    if crate::netcx::is_device(object as usize) {
        crate::netcx::device_remove(object as usize);
    } else {
        crate::wdf::not_simulated(kernel::ffi::wdf::WdfObjectDeleteTableIndex);
    }
}

// ---------------------------------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------------------------------

unsafe extern "system" fn WdfIoQueueCreate(
    _globals: *mut WDF_DRIVER_GLOBALS,
    device: WDFDEVICE,
    config: *mut WDF_IO_QUEUE_CONFIG,
    attributes: *mut WDF_OBJECT_ATTRIBUTES,
    queue_out: *mut WDFQUEUE,
) -> NTSTATUS {
    require_irql_at_most(DISPATCH_LEVEL, "WdfIoQueueCreate");
    // SAFETY: null or the caller's valid config.
    let Some(c) = (unsafe { config.as_ref() }).copied() else { return STATUS_INVALID_PARAMETER };
    if c.Size as usize != std::mem::size_of::<WDF_IO_QUEUE_CONFIG>()
        || ![WdfIoQueueDispatchSequential, WdfIoQueueDispatchParallel, WdfIoQueueDispatchManual]
            .contains(&c.DispatchType)
    {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: null or the caller's valid attributes.
    let cleanup = unsafe { attributes.as_ref() }.and_then(|a| a.EvtCleanupCallback);
    let created = with(|s| {
        let d = s.devices.get(&(device as usize))?;
        if c.DefaultQueue != 0 && d.default_queue.is_some() {
            // A second default queue (WdfIoQueueCreate docs: one default queue per device).
            return Some(Err(STATUS_INVALID_DEVICE_REQUEST));
        }
        let token = Box::new(0u64);
        let q = key(&token);
        s.queues.insert(
            q,
            QueueRec {
                device: device as usize,
                config: c,
                held: VecDeque::new(),
                presented: 0,
                cleanup,
                _token: token,
            },
        );
        let d = s.devices.get_mut(&(device as usize))?;
        d.queues.push(q);
        if c.DefaultQueue != 0 {
            d.default_queue = Some(q);
        }
        Some(Ok(q))
    });
    match created {
        Some(Ok(q)) => {
            if !queue_out.is_null() {
                // SAFETY: the caller's out pointer.
                unsafe { queue_out.write(q as WDFQUEUE) };
            }
            STATUS_SUCCESS
        }
        Some(Err(status)) => status,
        None => {
            violation(Rule::WdfStillBound, format!("WdfIoQueueCreate({device:p}): not a WDFDEVICE"));
            STATUS_INVALID_PARAMETER
        }
    }
}

unsafe extern "system" fn WdfIoQueueRetrieveNextRequest(
    _globals: *mut WDF_DRIVER_GLOBALS,
    queue: WDFQUEUE,
    out: *mut WDFREQUEST,
) -> NTSTATUS {
    require_irql_at_most(DISPATCH_LEVEL, "WdfIoQueueRetrieveNextRequest");
    if out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let next = with(|s| {
        let q = s.queues.get_mut(&(queue as usize))?;
        let r = q.held.pop_front();
        if let Some(r) = r {
            if let Some(req) = s.requests.get_mut(&r) {
                req.owner = Owner::Driver;
            }
        }
        Some(r)
    });
    match next {
        Some(Some(r)) => {
            // SAFETY: checked non-null; the caller's out pointer.
            unsafe { out.write(r as WDFREQUEST) };
            STATUS_SUCCESS
        }
        Some(None) => STATUS_NO_MORE_ENTRIES,
        None => {
            violation(
                Rule::WdfStillBound,
                format!("WdfIoQueueRetrieveNextRequest({queue:p}): not a WDFQUEUE"),
            );
            STATUS_INVALID_PARAMETER
        }
    }
}

unsafe extern "system" fn WdfIoQueuePurgeSynchronously(_globals: *mut WDF_DRIVER_GLOBALS, queue: WDFQUEUE) {
    require_irql_at_most(PASSIVE_LEVEL, "WdfIoQueuePurgeSynchronously");
    purge(queue as usize, None);
}

/// Cancels the requests held in `queue` (only those of `file` when given): `EvtIoCanceledOnQueue` when
/// the queue has one (the request is then the driver's to complete), else `STATUS_CANCELLED`.
fn purge(queue: usize, file: Option<usize>) {
    let (taken, canceled, driver) = with(|s| {
        let Some(q) = s.queues.get_mut(&queue) else { return (Vec::new(), None, None) };
        let mut taken = Vec::new();
        let mut keep = VecDeque::new();
        while let Some(r) = q.held.pop_front() {
            let matches = file.is_none_or(|f| s.requests.get(&r).is_some_and(|req| req.file == f));
            if matches {
                taken.push(r);
            } else {
                keep.push_back(r);
            }
        }
        q.held = keep;
        let canceled = q.config.EvtIoCanceledOnQueue;
        let driver = s.devices.get(&q.device).map(|d| d.driver);
        for r in &taken {
            if let Some(req) = s.requests.get_mut(r) {
                req.owner = Owner::Driver;
            }
        }
        (taken, canceled, driver)
    });
    for r in taken {
        match (canceled, driver) {
            (Some(cb), Some(driver)) => {
                // SAFETY: the driver's callback with its queue and a request it now owns.
                call_driver(driver, PASSIVE_LEVEL, "EvtIoCanceledOnQueue", || unsafe {
                    cb(queue as WDFQUEUE, r as WDFREQUEST)
                });
            }
            _ => finish(r, STATUS_CANCELLED, 0),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Looks a request up for a DDI: a completed request is `wdf.request_after_completion` (or
/// `_completed_twice` for a completion), one in a queue `wdf.request_not_owned`.
fn check_owned(request: WDFREQUEST, ddi: &str, completing: bool) -> Option<()> {
    let r = request as usize;
    let state = with(|s| {
        if let Some(req) = s.requests.get(&r) {
            Some(Some(req.owner))
        } else if s.completed.contains_key(&r) {
            Some(None)
        } else {
            None
        }
    });
    match state {
        Some(Some(Owner::Driver)) => Some(()),
        Some(Some(Owner::Queue(q))) => {
            violation(
                Rule::WdfRequestNotOwned,
                format!("{ddi}({request:p}): the request is in queue {q:#x}, owned by the framework"),
            );
            None
        }
        Some(None) if completing => {
            violation(
                Rule::WdfRequestCompletedTwice,
                format!("{ddi}({request:p}): the request was already completed"),
            );
            None
        }
        Some(None) => {
            violation(
                Rule::WdfRequestAfterCompletion,
                format!("{ddi}({request:p}): the request was already completed"),
            );
            None
        }
        None => {
            violation(Rule::WdfStillBound, format!("{ddi}({request:p}): not a WDFREQUEST"));
            None
        }
    }
}

unsafe extern "system" fn WdfRequestComplete(
    globals: *mut WDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    status: NTSTATUS,
) {
    let info = with(|s| s.requests.get(&(request as usize)).map_or(0, |r| r.information));
    // SAFETY: forwarded.
    unsafe { WdfRequestCompleteWithInformation(globals, request, status, info) };
}

unsafe extern "system" fn WdfRequestCompleteWithInformation(
    _globals: *mut WDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    status: NTSTATUS,
    information: usize,
) {
    if !require_irql_at_most(DISPATCH_LEVEL, "WdfRequestComplete") {
        return;
    }
    if check_owned(request, "WdfRequestComplete", true).is_none() {
        return;
    }
    if status == STATUS_PENDING {
        violation(Rule::DeviceIrpMisuse, format!("WdfRequestComplete({request:p}, STATUS_PENDING)"));
        return;
    }
    let mut information = information;
    let overflow = with(|s| {
        let r = s.requests.get(&(request as usize))?;
        let limit = match r.major {
            IRP_MJ_READ | IRP_MJ_DEVICE_CONTROL => r.output_len,
            IRP_MJ_WRITE => r.input_len,
            _ => usize::MAX,
        };
        (information > limit).then(|| (describe(r), limit))
    });
    if let Some((what, limit)) = overflow {
        violation(
            Rule::WdfRequestInformationOverflow,
            format!("{what} completed with Information {information} beyond its {limit}-byte buffer"),
        );
        information = limit;
    }
    finish(request as usize, status, information);
}

/// Completes a request's IRP through the I/O manager and retires the handle; a sequential queue that
/// presented it presents its next request.
fn finish(request: usize, status: NTSTATUS, information: usize) {
    let Some((req, driver)) = with(|s| {
        let req = s.requests.remove(&request)?;
        let driver = s.devices.get(&req.device).map(|d| d.driver);
        Some((req, driver))
    }) else {
        return;
    };
    let presenter = req.presenter;
    with(|s| {
        if req.major == IRP_MJ_CREATE && !NT_SUCCESS(status) {
            if let Some(d) = s.devices.get_mut(&req.device) {
                d.files.remove(&req.file);
            }
        }
        if let Some(q) = presenter.and_then(|q| s.queues.get_mut(&q)) {
            q.presented = q.presented.saturating_sub(1);
        }
    });
    let irp = req.irp as *mut IRP;
    let Req { token, .. } = req;
    with(|s| s.completed.insert(request, token));
    // SAFETY: the IRP is the I/O manager's, dispatched to this framework device and not completed yet.
    let r = unsafe { &mut *irp };
    r.IoStatus.u.Status = status;
    r.IoStatus.Information = information;
    // The I/O manager runs the completion in the client's context (the framework is part of it).
    let complete = || {
        // SAFETY: as above; the current stack location is the framework's.
        unsafe { crate::wsk::IofCompleteRequest(irp, 0) };
    };
    match driver {
        Some(d) if crate::context::current_driver().is_none() => {
            call_driver(d, crate::context::irql(), "WdfRequestComplete", complete);
        }
        _ => complete(),
    }
    if let Some(q) = presenter {
        present_sequential(q);
    }
}

unsafe extern "system" fn WdfRequestSetInformation(
    _globals: *mut WDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    information: usize,
) {
    if check_owned(request, "WdfRequestSetInformation", false).is_some() {
        with(|s| s.requests.get_mut(&(request as usize)).map(|r| r.information = information));
    }
}

fn retrieve(
    request: WDFREQUEST,
    minimum: usize,
    buffer: *mut *mut c_void,
    length: *mut usize,
    input: bool,
) -> NTSTATUS {
    let ddi = if input { "WdfRequestRetrieveInputBuffer" } else { "WdfRequestRetrieveOutputBuffer" };
    if !require_irql_at_most(DISPATCH_LEVEL, ddi) {
        return STATUS_INVALID_PARAMETER;
    }
    if buffer.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    if check_owned(request, ddi, false).is_none() {
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    let Some((major, input_len, output_len, address)) =
        with(|s| s.requests.get(&(request as usize)).map(|r| (r.major, r.input_len, r.output_len, r.buffer)))
    else {
        return STATUS_INVALID_DEVICE_REQUEST;
    };
    let len = match (major, input) {
        (IRP_MJ_DEVICE_CONTROL, true) | (IRP_MJ_WRITE, true) => input_len,
        (IRP_MJ_DEVICE_CONTROL, false) | (IRP_MJ_READ, false) => output_len,
        _ => return STATUS_INVALID_DEVICE_REQUEST,
    };
    if len == 0 || len < minimum || address == 0 {
        return STATUS_BUFFER_TOO_SMALL;
    }
    // SAFETY: checked non-null; the caller's out pointer.
    unsafe { buffer.write(address as *mut c_void) };
    if !length.is_null() {
        // SAFETY: the caller's optional out pointer.
        unsafe { length.write(len) };
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn WdfRequestRetrieveInputBuffer(
    _globals: *mut WDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    minimum: usize,
    buffer: *mut *mut c_void,
    length: *mut usize,
) -> NTSTATUS {
    retrieve(request, minimum, buffer, length, true)
}

unsafe extern "system" fn WdfRequestRetrieveOutputBuffer(
    _globals: *mut WDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    minimum: usize,
    buffer: *mut *mut c_void,
    length: *mut usize,
) -> NTSTATUS {
    retrieve(request, minimum, buffer, length, false)
}

unsafe extern "system" fn WdfRequestForwardToIoQueue(
    _globals: *mut WDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    destination: WDFQUEUE,
) -> NTSTATUS {
    require_irql_at_most(DISPATCH_LEVEL, "WdfRequestForwardToIoQueue");
    if check_owned(request, "WdfRequestForwardToIoQueue", false).is_none() {
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    let r = request as usize;
    let q = destination as usize;
    let moved = with(|s| {
        let device = s.requests.get(&r)?.device;
        let queue_device = s.queues.get(&q)?.device;
        if device != queue_device {
            return Some(Err(()));
        }
        let presenter = s.requests.get_mut(&r).and_then(|req| {
            req.owner = Owner::Queue(q);
            req.presenter.take()
        });
        if let Some(p) = presenter.and_then(|p| s.queues.get_mut(&p)) {
            p.presented = p.presented.saturating_sub(1);
        }
        s.queues.get_mut(&q)?.held.push_back(r);
        Some(Ok(presenter))
    });
    match moved {
        Some(Ok(presenter)) => {
            dispatch_queue(q);
            if let Some(p) = presenter {
                present_sequential(p);
            }
            STATUS_SUCCESS
        }
        Some(Err(())) => {
            violation(
                Rule::WdfRequestNotOwned,
                format!("WdfRequestForwardToIoQueue({request:p}, {destination:p}): the queue belongs to another device"),
            );
            STATUS_INVALID_DEVICE_REQUEST
        }
        None => {
            violation(
                Rule::WdfStillBound,
                format!("WdfRequestForwardToIoQueue({destination:p}): not a WDFQUEUE"),
            );
            STATUS_INVALID_PARAMETER
        }
    }
}

unsafe extern "system" fn WdfRequestGetFileObject(
    _globals: *mut WDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
) -> WDFFILEOBJECT {
    if check_owned(request, "WdfRequestGetFileObject", false).is_none() {
        return std::ptr::null_mut();
    }
    with(|s| s.requests.get(&(request as usize)).map_or(std::ptr::null_mut(), |r| r.file as WDFFILEOBJECT))
}

// ---------------------------------------------------------------------------------------------
// Presentation
// ---------------------------------------------------------------------------------------------

/// Presents what a non-manual queue holds: parallel queues everything, sequential queues one at a time.
fn dispatch_queue(queue: usize) {
    let kind = with(|s| s.queues.get(&queue).map(|q| q.config.DispatchType));
    if kind == Some(WdfIoQueueDispatchParallel) {
        while let Some(r) = with(|s| s.queues.get_mut(&queue).and_then(|q| q.held.pop_front())) {
            present(queue, r, false);
        }
    } else if kind == Some(WdfIoQueueDispatchSequential) {
        present_sequential(queue);
    }
}

fn present_sequential(queue: usize) {
    if PRESENTING.with(Cell::get) {
        return;
    }
    PRESENTING.with(|p| p.set(true));
    loop {
        let next = with(|s| {
            let q = s.queues.get_mut(&queue)?;
            if q.config.DispatchType != WdfIoQueueDispatchSequential || q.presented > 0 {
                return None;
            }
            let r = q.held.pop_front()?;
            q.presented += 1;
            Some(r)
        });
        let Some(r) = next else { break };
        present(queue, r, true);
    }
    PRESENTING.with(|p| p.set(false));
}

/// Hands a request to the queue's callback for its type (the driver owns it from here).
fn present(queue: usize, request: usize, sequential: bool) {
    let Some((config, driver, major, code, input_len, output_len)) = with(|s| {
        let q = s.queues.get(&queue)?;
        let driver = s.devices.get(&q.device)?.driver;
        let config = q.config;
        let r = s.requests.get_mut(&request)?;
        r.owner = Owner::Driver;
        r.presenter = sequential.then_some(queue);
        Some((config, driver, r.major, r.code, r.input_len, r.output_len))
    }) else {
        return;
    };
    let (q, r) = (queue as WDFQUEUE, request as WDFREQUEST);
    match major {
        IRP_MJ_READ if config.EvtIoRead.is_some() => {
            let cb = config.EvtIoRead;
            // SAFETY: the driver's callback with its queue and a request it now owns.
            call_driver(driver, PASSIVE_LEVEL, "EvtIoRead", || unsafe { cb.map(|f| f(q, r, output_len)) });
        }
        IRP_MJ_WRITE if config.EvtIoWrite.is_some() => {
            let cb = config.EvtIoWrite;
            // SAFETY: as above.
            call_driver(driver, PASSIVE_LEVEL, "EvtIoWrite", || unsafe { cb.map(|f| f(q, r, input_len)) });
        }
        IRP_MJ_DEVICE_CONTROL if config.EvtIoDeviceControl.is_some() => {
            let cb = config.EvtIoDeviceControl;
            // SAFETY: as above.
            call_driver(driver, PASSIVE_LEVEL, "EvtIoDeviceControl", || unsafe {
                cb.map(|f| f(q, r, output_len, input_len, code))
            });
        }
        _ => match config.EvtIoDefault {
            Some(f) => {
                // SAFETY: as above.
                call_driver(driver, PASSIVE_LEVEL, "EvtIoDefault", || unsafe { f(q, r) });
            }
            None => finish(request, STATUS_INVALID_DEVICE_REQUEST, 0),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The framework's IRP dispatch
// ---------------------------------------------------------------------------------------------

/// The dispatch routine KMDF installs for every major function of a framework device. Runs in the
/// client's context at PASSIVE_LEVEL (the simulated I/O manager's [`crate::device`] dispatch).
unsafe extern "system" fn framework_dispatch(object: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid IRP whose current stack location is this device's.
    let sp = unsafe { IoGetCurrentIrpStackLocation(irp) };
    // SAFETY: the current stack location of a valid IRP.
    let loc = unsafe { &mut *sp };
    let major = usize::from(loc.MajorFunction);
    let file = loc.FileObject as usize;
    // SAFETY: plain data; the I/O manager filled the member of the request's type.
    let params = unsafe { loc.Parameters.DeviceIoControl };
    // SAFETY: as above, the IRP is valid.
    let associated = unsafe { &(*irp).AssociatedIrp };
    // SAFETY: a buffered request's SystemBuffer member (null when there is no buffer).
    let system_buffer = unsafe { associated.SystemBuffer } as usize;
    let found = with(|s| {
        s.devices
            .iter()
            .find(|(_, d)| d.registration.is_some_and(|(_, o)| o == object as usize))
            .map(|(&k, d)| (k, d.driver, d.exclusive, d.file, d.default_queue, d.files.len()))
    });
    let Some((device, driver, exclusive, file_config, default_queue, opens)) = found else {
        return complete_irp(irp, STATUS_INVALID_DEVICE_REQUEST);
    };
    let (input_len, output_len, code) = match major {
        IRP_MJ_DEVICE_CONTROL => {
            (params.InputBufferLength as usize, params.OutputBufferLength as usize, params.IoControlCode)
        }
        // Parameters.Read/Write.Length share the first ULONG.
        IRP_MJ_READ => (0, params.OutputBufferLength as usize, 0),
        IRP_MJ_WRITE => (params.OutputBufferLength as usize, 0, 0),
        _ => (0, 0, 0),
    };
    match major {
        IRP_MJ_CREATE => {
            if exclusive && opens > 0 {
                return complete_irp(irp, STATUS_ACCESS_DENIED);
            }
            with(|s| s.devices.get_mut(&device).map(|d| d.files.insert(file)));
            let Some(create) = file_config.and_then(|c| c.EvtDeviceFileCreate) else {
                return complete_irp(irp, STATUS_SUCCESS);
            };
            let r = new_request(device, irp, major, file, 0, 0, 0, 0);
            loc.Control |= SL_PENDING_RETURNED;
            // SAFETY: the driver's callback with its device, a request it owns and the file object.
            call_driver(driver, PASSIVE_LEVEL, "EvtDeviceFileCreate", || unsafe {
                create(device as WDFDEVICE, r as WDFREQUEST, file as WDFFILEOBJECT)
            });
            STATUS_PENDING
        }
        IRP_MJ_CLEANUP => {
            if let Some(cleanup) = file_config.and_then(|c| c.EvtFileCleanup) {
                // SAFETY: the driver's callback with the closing file object.
                call_driver(driver, PASSIVE_LEVEL, "EvtFileCleanup", || unsafe {
                    cleanup(file as WDFFILEOBJECT)
                });
            }
            let queues = with(|s| s.devices.get(&device).map(|d| d.queues.clone()).unwrap_or_default());
            for q in queues {
                purge(q, Some(file));
            }
            complete_irp(irp, STATUS_SUCCESS)
        }
        IRP_MJ_CLOSE => {
            if let Some(close) = file_config.and_then(|c| c.EvtFileClose) {
                // SAFETY: the driver's callback with the file object, closed for good after it.
                call_driver(driver, PASSIVE_LEVEL, "EvtFileClose", || unsafe {
                    close(file as WDFFILEOBJECT)
                });
            }
            with(|s| s.devices.get_mut(&device).map(|d| d.files.remove(&file)));
            complete_irp(irp, STATUS_SUCCESS)
        }
        IRP_MJ_READ | IRP_MJ_WRITE | IRP_MJ_DEVICE_CONTROL => {
            let Some(queue) = default_queue else {
                return complete_irp(irp, STATUS_INVALID_DEVICE_REQUEST);
            };
            let zero_ok =
                with(|s| s.queues.get(&queue).is_some_and(|q| q.config.AllowZeroLengthRequests != 0));
            let length = if major == IRP_MJ_READ { output_len } else { input_len };
            if major != IRP_MJ_DEVICE_CONTROL && length == 0 && !zero_ok {
                return complete_irp(irp, STATUS_SUCCESS);
            }
            let r = new_request(device, irp, major, file, input_len, output_len, code, system_buffer);
            loc.Control |= SL_PENDING_RETURNED;
            with(|s| {
                if let Some(req) = s.requests.get_mut(&r) {
                    req.owner = Owner::Queue(queue);
                }
                s.queues.get_mut(&queue).map(|q| q.held.push_back(r))
            });
            dispatch_queue(queue);
            STATUS_PENDING
        }
        _ => complete_irp(irp, STATUS_INVALID_DEVICE_REQUEST),
    }
}

#[allow(clippy::too_many_arguments)]
fn new_request(
    device: usize,
    irp: *mut IRP,
    major: usize,
    file: usize,
    input_len: usize,
    output_len: usize,
    code: u32,
    buffer: usize,
) -> usize {
    let token = Box::new(0u64);
    let r = key(&token);
    let req = Req {
        device,
        irp: irp as usize,
        major,
        file,
        input_len,
        output_len,
        code,
        buffer,
        owner: Owner::Driver,
        presenter: None,
        information: 0,
        token,
    };
    with(|s| s.requests.insert(r, req));
    r
}

/// Completes an IRP no WDFREQUEST was made for, from the dispatch routine.
fn complete_irp(irp: *mut IRP, status: NTSTATUS) -> NTSTATUS {
    // SAFETY: the IRP is the I/O manager's, dispatched to this framework device and not completed yet.
    let r = unsafe { &mut *irp };
    r.IoStatus.u.Status = status;
    r.IoStatus.Information = 0;
    // SAFETY: as above.
    unsafe { crate::wsk::IofCompleteRequest(irp, 0) };
    status
}
