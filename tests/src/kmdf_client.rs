//! A small KMDF client that lives with the tests: a device with a symbolic link (`\\.\kmdftest`), a
//! default parallel queue whose `EvtIoDeviceControl` does what the IOCTL's function number says, and a
//! manual queue. The "mistake" codes break exactly one KMDF request rule each, for the verifier's
//! negative tests ([`Mistake`]); [`ECHO`] is the well-behaved request (copies input to output).
#![allow(clippy::missing_safety_doc, clippy::missing_panics_doc)]

use std::sync::atomic::{AtomicPtr, Ordering};

use kernel::ffi::ntos::{DRIVER_OBJECT, NTSTATUS, STATUS_SUCCESS, UNICODE_STRING};
use kernel::ffi::wdf::{
    WdfIoQueueDispatchManual, WdfIoQueueDispatchParallel, PWDFDEVICE_INIT, WDFDRIVER, WDFQUEUE, WDFREQUEST,
    WDF_DRIVER_CONFIG, WDF_IO_QUEUE_CONFIG,
};
use kernel::{kmdf, kmdf_io};

/// The service name the tests load it under.
pub const SERVICE: &str = "kmdftest";
/// What user mode opens.
pub const PATH: &str = "\\\\.\\kmdftest";
const LINK: &str = "\\DosDevices\\kmdftest";

/// `CTL_CODE(FILE_DEVICE_UNKNOWN, n, METHOD_BUFFERED, FILE_ANY_ACCESS)`.
pub const fn code(n: u32) -> u32 {
    (0x22 << 16) | (n << 2)
}
/// Copies the input to the output and completes with its length.
pub const ECHO: u32 = code(0x800);

/// The deliberate mistakes, one KMDF request rule each (the IOCTL function number).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mistake {
    /// Completes the request twice: `wdf.request_completed_twice`.
    CompletesTwice = 0x801,
    /// Reads the input buffer after completing: `wdf.request_after_completion`.
    BufferAfterCompletion = 0x802,
    /// Forwards to the manual queue, then completes it there: `wdf.request_not_owned`.
    CompletesQueued = 0x803,
    /// Completes with `Information` one past the output buffer: `wdf.request_information_overflow`.
    InformationPastBuffer = 0x804,
    /// Keeps the request and never completes it: `wdf.request_leaked` at removal.
    Keeps = 0x805,
}

static MANUAL: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());
/// A request held by [`HOLD`] until [`release_held`].
static HELD: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());
/// Make the default queue sequential instead of parallel (set before the device arrives).
pub static SEQUENTIAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Keeps the request until the test calls [`release_held`] (well behaved, unlike `Mistake::Keeps`).
pub const HOLD: u32 = code(0x806);

/// Completes the request [`HOLD`] kept with `STATUS_SUCCESS`. Call in the driver's context.
pub fn release_held() -> bool {
    let r = HELD.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if r.is_null() {
        return false;
    }
    // SAFETY: the request HOLD kept, ours and not completed.
    unsafe { kmdf_io::request_complete(r, STATUS_SUCCESS, 0) };
    true
}

pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    registry: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: DriverEntry's arguments, once per load.
    if let Err(s) = unsafe { kmdf::bind(driver, registry) } {
        return s;
    }
    let mut config = WDF_DRIVER_CONFIG::init(Some(evt_device_add));
    // SAFETY: bound; DriverEntry's arguments.
    match unsafe { kmdf::driver_create(driver, registry, &mut config) } {
        Ok(_) => {
            // SAFETY: bound and the WDFDRIVER exists.
            unsafe { kmdf::displace_unload(driver) };
            STATUS_SUCCESS
        }
        Err(s) => {
            // SAFETY: the bind succeeded.
            unsafe { kmdf::unbind() };
            s
        }
    }
}

unsafe extern "system" fn evt_device_add(_driver: WDFDRIVER, mut init: PWDFDEVICE_INIT) -> NTSTATUS {
    // SAFETY: the framework's init.
    if let Err(s) = unsafe { kmdf_io::device_init_set_io_type(init, kernel::ffi::wdf::WdfDeviceIoBuffered) } {
        return s;
    }
    // SAFETY: as above.
    let device = match unsafe { kmdf::device_create(&mut init, None) } {
        Ok(d) => d,
        Err(s) => return s,
    };
    let kind = if SEQUENTIAL.load(Ordering::Relaxed) {
        kernel::ffi::wdf::WdfIoQueueDispatchSequential
    } else {
        WdfIoQueueDispatchParallel
    };
    let mut default = WDF_IO_QUEUE_CONFIG::init_default_queue(kind);
    default.EvtIoDeviceControl = Some(evt_io_device_control);
    // SAFETY: our device.
    if let Err(s) = unsafe { kmdf_io::queue_create(device, &mut default, None) } {
        return s;
    }
    let mut manual = WDF_IO_QUEUE_CONFIG::init(WdfIoQueueDispatchManual);
    // SAFETY: our device.
    match unsafe { kmdf_io::queue_create(device, &mut manual, None) } {
        Ok(q) => MANUAL.store(q, Ordering::Release),
        Err(s) => return s,
    }
    let mut link: Vec<u16> = LINK.encode_utf16().collect();
    let bytes = u16::try_from(link.len() * 2).unwrap_or(0);
    let name = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: link.as_mut_ptr() };
    // SAFETY: our device; the string outlives the call.
    match unsafe { kmdf::device_create_symbolic_link(device, &name) } {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

unsafe extern "system" fn evt_io_device_control(
    _queue: WDFQUEUE,
    request: WDFREQUEST,
    output_length: usize,
    _input_length: usize,
    io_control_code: u32,
) {
    let complete = |r: WDFREQUEST, status: NTSTATUS, info: usize| {
        // SAFETY: a request the test hands the framework (the mistakes are the point).
        unsafe { kmdf_io::request_complete(r, status, info) }
    };
    let manual = MANUAL.load(Ordering::Acquire);
    match io_control_code {
        ECHO => {
            // SAFETY: our uncompleted request.
            let input = unsafe { kmdf_io::request_input_buffer(request, 1) };
            // SAFETY: as above.
            let output = unsafe { kmdf_io::request_output_buffer(request, 1) };
            match (input, output) {
                (Ok((i, n)), Ok((o, m))) => {
                    let len = n.min(m);
                    // SAFETY: both buffers hold at least `len` bytes (they may be the same buffer).
                    unsafe { core::ptr::copy(i, o, len) };
                    complete(request, STATUS_SUCCESS, len);
                }
                (Err(s), _) | (_, Err(s)) => complete(request, s, 0),
            }
        }
        c if c == code(Mistake::CompletesTwice as u32) => {
            complete(request, STATUS_SUCCESS, 0);
            complete(request, STATUS_SUCCESS, 0);
        }
        c if c == code(Mistake::BufferAfterCompletion as u32) => {
            complete(request, STATUS_SUCCESS, 0);
            // SAFETY: deliberately after completion; the framework refuses it.
            let _ = unsafe { kmdf_io::request_input_buffer(request, 1) };
        }
        c if c == code(Mistake::CompletesQueued as u32) => {
            // SAFETY: our request and our manual queue.
            let _ = unsafe { kmdf_io::request_forward(request, manual) };
            complete(request, STATUS_SUCCESS, 0);
            // Take it back properly so nothing else fires.
            // SAFETY: our manual queue.
            if let Ok(r) = unsafe { kmdf_io::queue_retrieve_next(manual) } {
                complete(r, STATUS_SUCCESS, 0);
            }
        }
        c if c == code(Mistake::InformationPastBuffer as u32) => {
            complete(request, STATUS_SUCCESS, output_length + 1)
        }
        c if c == code(Mistake::Keeps as u32) => {}
        HOLD => HELD.store(request, Ordering::Release),
        _ => complete(request, kernel::ffi::ntos::STATUS_INVALID_DEVICE_REQUEST, 0),
    }
}
