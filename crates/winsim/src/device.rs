//! Control devices: `NdisRegisterDeviceEx` / `NdisDeregisterDeviceEx` / `NdisGetDeviceReservedExtension`,
//! and IRP dispatch to them the way the I/O manager does it, plus a local control socket ([`serve`]) so a
//! user-mode tool reaches a simulated machine's devices.
//!
//! # What is modelled
//! * **Registration** (`NdisRegisterDeviceEx` docs, `NDIS_DEVICE_OBJECT_ATTRIBUTES`): PASSIVE_LEVEL; the
//!   handle must be the caller's filter driver handle from `NdisFRegisterFilterDriver`; the attributes need
//!   `Header.Type` `NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES`, revision 1 and at least the revision-1 size,
//!   a `DeviceName` under `\Device\`, a `SymbolicName` under `\DosDevices\` (or `\??\`, `\GLOBAL??\`), a
//!   `MajorFunctions` table of `IRP_MJ_MAXIMUM_FUNCTION + 1` entries and an `ExtensionSize` of at most
//!   64 KiB. A name already in use fails with `STATUS_OBJECT_NAME_COLLISION`. The `DEVICE_OBJECT` is a
//!   zeroed block of the real x64 size (0x150 bytes) owned by the simulation; its reserved extension
//!   (`NdisGetDeviceReservedExtension`) is a separate zeroed block of `ExtensionSize` bytes. Registration
//!   draws one pool allocation (tag `NDev`, attributed to the system) so allocation-failure injection can
//!   fail it as `NDIS_STATUS_RESOURCES`, as a real `IoCreateDevice` can.
//! * **Dispatch** ([`open`], [`device_io_control`], [`read`], [`write`], [`close`]): each request is an IRP
//!   with one stack location (the driver's) carrying `MajorFunction`, `Parameters`, `DeviceObject` and a
//!   per-handle `FileObject` (a zeroed 0xD8-byte block, the x64 `FILE_OBJECT` size, used as identity only).
//!   `METHOD_BUFFERED` IOCTLs, reads and writes use one `SystemBuffer` of max(input, output) bytes; the
//!   bytes returned are `min(IoStatus.Information, output length)`, none when the status is an error. The
//!   dispatch routine runs through [`call_driver`] at PASSIVE_LEVEL. Null `MajorFunctions` entries get
//!   NDIS's default: success for create, cleanup and close, `STATUS_INVALID_DEVICE_REQUEST` otherwise.
//!   [`close`] sends `IRP_MJ_CLEANUP` then `IRP_MJ_CLOSE`.
//! * **Pending** (`IoMarkIrpPending`, `STATUS_PENDING`): a dispatch routine may mark the IRP pending,
//!   return `STATUS_PENDING` and complete it later with `IofCompleteRequest` at IRQL <= DISPATCH_LEVEL from
//!   any context; [`submit_io_control`] then returns [`Io::Pending`], and [`poll`] / [`wait`] collect the
//!   result. The I/O manager's completion is observed through a completion routine in the IRP's stack
//!   location (the one `IofCompleteRequest` runs on the way up).
//!
//! Rules: `device.not_deregistered` (a device still registered when its driver unloads),
//! `device.irp_pending_at_unload` (an IRP of the driver's devices still pending when it unloads; the
//! driver must complete pending IRPs at `IRP_MJ_CLEANUP` and before unload) and `device.irp_misuse`
//! (returning a status other than `STATUS_PENDING` without completing the IRP, `STATUS_PENDING` without
//! `IoMarkIrpPending`, a returned status that differs from the completed one, completing with
//! `STATUS_PENDING`, completing twice, or `IoStatus.Information` beyond the output buffer).
//!
//! Not modelled: cancel routines (`IoSetCancelRoutine`, `CancelIo`), security descriptors
//! (`DefaultSDDLString`), `METHOD_IN_DIRECT`/`OUT_DIRECT`/`NEITHER`, fast I/O, device interfaces.
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kernel::ffi::ndis::{NDIS_HANDLE, NDIS_STATUS, NDIS_STATUS_INVALID_PARAMETER, NDIS_STATUS_RESOURCES};
use kernel::ffi::ndis_device::{
    NDIS_DEVICE_OBJECT_ATTRIBUTES, NDIS_DEVICE_OBJECT_ATTRIBUTES_REVISION_1,
    NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES, NDIS_SIZEOF_DEVICE_OBJECT_ATTRIBUTES_REVISION_1,
};
use kernel::ffi::ntos::{
    IoSizeOfIrp, DEVICE_OBJECT, IO_STACK_DEVICE_IO_CONTROL, IO_STACK_LOCATION, IO_STACK_PARAMETERS,
    IO_TYPE_IRP, IRP, IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL,
    IRP_MJ_MAXIMUM_FUNCTION, IRP_MJ_READ, IRP_MJ_WRITE, NTSTATUS, PASSIVE_LEVEL, PDRIVER_DISPATCH,
    POOL_FLAG_NON_PAGED, SL_INVOKE_ON_CANCEL, SL_INVOKE_ON_ERROR, SL_INVOKE_ON_SUCCESS, SL_PENDING_RETURNED,
    STATUS_DELETE_PENDING, STATUS_INVALID_DEVICE_REQUEST, STATUS_MORE_PROCESSING_REQUIRED,
    STATUS_OBJECT_NAME_COLLISION, STATUS_PENDING, STATUS_SUCCESS,
};

use crate::context::{as_system, call_driver, current_driver, require_irql_at_most, DriverId};
use crate::verifier::{violation, Rule};

/// `STATUS_INVALID_HANDLE`.
#[allow(clippy::cast_possible_wrap)]
pub const STATUS_INVALID_HANDLE: NTSTATUS = 0xC000_0008_u32 as NTSTATUS;
/// `STATUS_OBJECT_NAME_NOT_FOUND`.
#[allow(clippy::cast_possible_wrap)]
pub const STATUS_OBJECT_NAME_NOT_FOUND: NTSTATUS = 0xC000_0034_u32 as NTSTATUS;

/// `IO_TYPE_DEVICE`.
const IO_TYPE_DEVICE: i16 = 3;
/// `sizeof(DEVICE_OBJECT)` on x64.
const DEVICE_OBJECT_SIZE: usize = 0x150;
/// `sizeof(FILE_OBJECT)` on x64.
const FILE_OBJECT_SIZE: usize = 0xD8;
/// The largest reserved extension accepted.
const MAX_EXTENSION: u32 = 64 * 1024;
/// Pool tag of the registration's fault-injection allocation.
const DEVICE_TAG: u32 = u32::from_le_bytes(*b"NDev");
/// `UserMode`.
const USER_MODE: i8 = 1;
/// `IRP_BUFFERED_IO`.
const IRP_BUFFERED_IO: u32 = 0x0000_0010;

/// A zeroed, 16-byte aligned block the simulation owns (device objects, file objects, IRPs, buffers).
struct Block {
    words: Box<[u128]>,
}

impl Block {
    fn new(bytes: usize) -> Block {
        Block { words: vec![0u128; bytes.div_ceil(16).max(1)].into_boxed_slice() }
    }
    fn ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr().cast()
    }
    fn addr(&self) -> usize {
        self.words.as_ptr() as usize
    }
}

struct Device {
    owner: DriverId,
    object: Block,
    extension: Block,
    extension_len: usize,
    name: String,
    link: String,
    dispatch: [PDRIVER_DISPATCH; IRP_MJ_MAXIMUM_FUNCTION + 1],
    pool_block: usize,
}

/// A handle user mode holds on a device (a file object).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handle(pub u64);

struct OpenFile {
    /// The NDIS device handle; `None` once the device was deregistered under the open handle.
    device: Option<usize>,
    file: Block,
}

/// Identifies a submitted IRP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IrpId(pub usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IrpState {
    Dispatching,
    Pending,
    Completed(NTSTATUS, usize),
}

struct IrpRecord {
    owner: DriverId,
    handle: u64,
    major: usize,
    output_len: usize,
    state: IrpState,
    /// The IRP's memory, owned until the record is collected.
    _irp: Block,
    buffer: Option<Block>,
}

#[derive(Default)]
struct Devices {
    devices: BTreeMap<usize, Device>,
    files: BTreeMap<u64, OpenFile>,
    next_handle: u64,
    next_device: usize,
}

static DEVICES: Mutex<Devices> =
    Mutex::new(Devices { devices: BTreeMap::new(), files: BTreeMap::new(), next_handle: 0, next_device: 0 });
/// IRPs in flight, keyed by IRP address. Never held while a driver runs (completion locks it).
static IRPS: Mutex<BTreeMap<usize, IrpRecord>> = Mutex::new(BTreeMap::new());
/// Serializes whoever drives the machine with the control-socket threads; see [`machine_lock`].
static MACHINE_IO: Mutex<()> = Mutex::new(());

// SAFETY: the blocks are plain memory owned by the simulation; the raw addresses in them are only
// dereferenced under the locks above or by the driver code the simulation calls.
unsafe impl Send for Block {}

fn devices() -> MutexGuard<'static, Devices> {
    crate::lock(&DEVICES)
}

fn irps() -> MutexGuard<'static, BTreeMap<usize, IrpRecord>> {
    crate::lock(&IRPS)
}

/// The lock every thread that drives the simulated machine takes around its calls into drivers while a
/// control socket is served ([`serve`] takes it for each request).
pub fn machine_lock() -> MutexGuard<'static, ()> {
    crate::lock(&MACHINE_IO)
}

pub(crate) fn reset() {
    irps().clear();
    let mut d = devices();
    d.devices.clear();
    d.files.clear();
}

/// Registered devices: (NDIS device handle, device name, symbolic name).
pub fn registered() -> Vec<(usize, String, String)> {
    devices().devices.iter().map(|(&h, d)| (h, d.name.clone(), d.link.clone())).collect()
}

/// IRPs pending now (returned `STATUS_PENDING`, not yet completed).
pub fn pending_irps() -> usize {
    irps().values().filter(|r| r.state == IrpState::Pending).count()
}

/// Called when `driver` has unloaded (or failed `DriverEntry`): its devices must be deregistered and no
/// IRP of theirs may still be pending.
pub(crate) fn check_unload(driver: DriverId, name: &str) {
    let pending: Vec<IrpRecord> = {
        let mut table = irps();
        let keys: Vec<usize> = table
            .iter()
            .filter(|(_, r)| {
                r.owner == driver && matches!(r.state, IrpState::Pending | IrpState::Dispatching)
            })
            .map(|(&k, _)| k)
            .collect();
        keys.into_iter().filter_map(|k| table.remove(&k)).collect()
    };
    if !pending.is_empty() {
        let majors: Vec<String> = pending.iter().map(|r| major_name(r.major).to_string()).collect();
        violation(
            Rule::DeviceIrpPendingAtUnload,
            format!("{name} unloaded with {} IRP(s) still pending: {}", pending.len(), majors.join(", ")),
        );
    }
    let stale: Vec<(usize, Device)> = {
        let mut d = devices();
        let keys: Vec<usize> = d.devices.iter().filter(|(_, v)| v.owner == driver).map(|(&k, _)| k).collect();
        let removed: Vec<(usize, Device)> =
            keys.into_iter().filter_map(|k| d.devices.remove(&k).map(|v| (k, v))).collect();
        for (k, _) in &removed {
            for f in d.files.values_mut() {
                if f.device == Some(*k) {
                    f.device = None;
                }
            }
        }
        removed
    };
    for (_, device) in stale {
        violation(
            Rule::DeviceNotDeregistered,
            format!("{name} unloaded without NdisDeregisterDeviceEx for {} ({})", device.name, device.link),
        );
        if device.pool_block != 0 {
            free_pool_block(device.pool_block);
        }
    }
}

fn free_pool_block(block: usize) {
    as_system(|| {
        // SAFETY: the block was allocated by NdisRegisterDeviceEx with DEVICE_TAG and is freed once.
        unsafe { crate::pool::ExFreePoolWithTag(block as *mut c_void, DEVICE_TAG) };
    });
}

fn major_name(major: usize) -> &'static str {
    match major {
        IRP_MJ_CREATE => "IRP_MJ_CREATE",
        IRP_MJ_CLOSE => "IRP_MJ_CLOSE",
        IRP_MJ_READ => "IRP_MJ_READ",
        IRP_MJ_WRITE => "IRP_MJ_WRITE",
        IRP_MJ_DEVICE_CONTROL => "IRP_MJ_DEVICE_CONTROL",
        IRP_MJ_CLEANUP => "IRP_MJ_CLEANUP",
        _ => "IRP_MJ_?",
    }
}

/// The object-manager name without its namespace prefix, lowercased: `\DosDevices\x`, `\??\x`,
/// `\GLOBAL??\x` and the Win32 form `\\.\x` all become `x`.
fn link_key(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    ["\\dosdevices\\", "\\??\\", "\\global??\\", "\\\\.\\"]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .filter(|rest| !rest.is_empty() && !rest.contains('\\'))
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// NDIS exports
// ---------------------------------------------------------------------------------------------

/// `NdisRegisterDeviceEx`. PASSIVE_LEVEL. See the module documentation for what is validated.
///
/// # Safety
/// Pointers as the NDIS documentation requires; the simulation checks them for null.
#[no_mangle]
pub unsafe extern "system" fn NdisRegisterDeviceEx(
    ndis_handle: NDIS_HANDLE,
    attributes: *mut NDIS_DEVICE_OBJECT_ATTRIBUTES,
    device_object: *mut *mut DEVICE_OBJECT,
    device_handle: *mut NDIS_HANDLE,
) -> NDIS_STATUS {
    if !require_irql_at_most(PASSIVE_LEVEL, "NdisRegisterDeviceEx") {
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    let Some(owner) = current_driver() else {
        violation(Rule::NotSimulated, "NdisRegisterDeviceEx outside any driver");
        return NDIS_STATUS_INVALID_PARAMETER;
    };
    let filter = crate::ndis::registered_filters().into_iter().find(|f| f.handle == ndis_handle as usize);
    if filter.as_ref().is_none_or(|f| f.owner != owner) {
        violation(
            Rule::NdisBadHandle,
            format!(
                "NdisRegisterDeviceEx({ndis_handle:p}): not this driver's NdisFRegisterFilterDriver handle"
            ),
        );
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    if device_object.is_null() || device_handle.is_null() {
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller passes a valid attributes structure or null.
    let Some(a) = (unsafe { attributes.as_ref() }) else {
        return NDIS_STATUS_INVALID_PARAMETER;
    };
    if a.Header.Type != NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES
        || a.Header.Revision < NDIS_DEVICE_OBJECT_ATTRIBUTES_REVISION_1
        || usize::from(a.Header.Size) < NDIS_SIZEOF_DEVICE_OBJECT_ATTRIBUTES_REVISION_1
        || a.MajorFunctions.is_null()
        || a.ExtensionSize > MAX_EXTENSION
    {
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the attributes' strings are valid or null (NDIS requires valid strings).
    let name = unsafe { crate::read_unicode(a.DeviceName.cast_const()) };
    // SAFETY: as above.
    let link = unsafe { crate::read_unicode(a.SymbolicName.cast_const()) };
    let (Some(name), Some(link)) = (name, link) else {
        return NDIS_STATUS_INVALID_PARAMETER;
    };
    let name_ok = name.to_ascii_lowercase().strip_prefix("\\device\\").is_some_and(|r| !r.is_empty());
    let Some(key) = link_key(&link).filter(|_| name_ok && !link.starts_with("\\\\.\\")) else {
        return NDIS_STATUS_INVALID_PARAMETER;
    };
    let mut dispatch: [PDRIVER_DISPATCH; IRP_MJ_MAXIMUM_FUNCTION + 1] = [None; IRP_MJ_MAXIMUM_FUNCTION + 1];
    for (i, slot) in dispatch.iter_mut().enumerate() {
        let entry = a.MajorFunctions.wrapping_add(i);
        // SAFETY: MajorFunctions points to IRP_MJ_MAXIMUM_FUNCTION + 1 entries (NdisRegisterDeviceEx docs).
        *slot = unsafe { entry.read() };
    }
    {
        let d = devices();
        if d.devices
            .values()
            .any(|v| v.name.eq_ignore_ascii_case(&name) || link_key(&v.link) == Some(key.clone()))
        {
            return STATUS_OBJECT_NAME_COLLISION;
        }
    }
    let pool_block = as_system(|| crate::pool::ExAllocatePool2(POOL_FLAG_NON_PAGED, 16, DEVICE_TAG));
    if pool_block.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    let extension_len = a.ExtensionSize as usize;
    let mut object = Block::new(DEVICE_OBJECT_SIZE);
    let header = object.ptr().cast::<i16>();
    // SAFETY: the block has DEVICE_OBJECT_SIZE writable, aligned bytes: Type at 0, Size at 2.
    unsafe { header.write(IO_TYPE_DEVICE) };
    let size_field = header.wrapping_add(1);
    // SAFETY: as above.
    unsafe { size_field.write(i16::try_from(DEVICE_OBJECT_SIZE).unwrap_or(i16::MAX)) };
    let object_ptr = object.ptr().cast::<DEVICE_OBJECT>();
    let mut d = devices();
    d.next_device += 1;
    let handle = 0x4e44_4556_0000 + d.next_device * 0x100;
    d.devices.insert(
        handle,
        Device {
            owner,
            object,
            extension: Block::new(extension_len),
            extension_len,
            name,
            link,
            dispatch,
            pool_block: pool_block as usize,
        },
    );
    drop(d);
    // SAFETY: checked non-null above; the caller passes writable out-parameters.
    unsafe { device_object.write(object_ptr) };
    // SAFETY: as above.
    unsafe { device_handle.write(handle as NDIS_HANDLE) };
    STATUS_SUCCESS
}

/// `NdisDeregisterDeviceEx`. PASSIVE_LEVEL. Handles still open on the device stay valid as handles, but
/// every further request on them fails with `STATUS_DELETE_PENDING` and closing them reaches no driver.
///
/// # Safety
/// `handle` is validated.
#[no_mangle]
pub unsafe extern "system" fn NdisDeregisterDeviceEx(handle: NDIS_HANDLE) {
    if !require_irql_at_most(PASSIVE_LEVEL, "NdisDeregisterDeviceEx") {
        return;
    }
    let mut d = devices();
    let owner = current_driver();
    match d.devices.get(&(handle as usize)) {
        Some(dev) if Some(dev.owner) == owner => {}
        _ => {
            drop(d);
            violation(
                Rule::NdisBadHandle,
                format!("NdisDeregisterDeviceEx({handle:p}): not a device this driver registered"),
            );
            return;
        }
    }
    let device = d.devices.remove(&(handle as usize));
    for f in d.files.values_mut() {
        if f.device == Some(handle as usize) {
            f.device = None;
        }
    }
    drop(d);
    if let Some(device) = device {
        free_pool_block(device.pool_block);
    }
}

/// `NdisGetDeviceReservedExtension`. Any IRQL. The `ExtensionSize` bytes reserved at registration (null
/// for an extension of 0 bytes).
///
/// # Safety
/// `device_object` is validated.
#[no_mangle]
pub unsafe extern "system" fn NdisGetDeviceReservedExtension(
    device_object: *mut DEVICE_OBJECT,
) -> *mut c_void {
    let mut d = devices();
    let found = d.devices.values_mut().find(|v| v.object.addr() == device_object as usize);
    match found {
        Some(v) if v.extension_len > 0 => v.extension.ptr().cast(),
        Some(_) => null_mut(),
        None => {
            drop(d);
            violation(
                Rule::NdisBadHandle,
                format!("NdisGetDeviceReservedExtension({device_object:p}): not a registered device object"),
            );
            null_mut()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IRP dispatch
// ---------------------------------------------------------------------------------------------

/// The outcome of a submitted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Io {
    /// Completed: the final status and the bytes returned to the caller.
    Done(NTSTATUS, Vec<u8>),
    /// The driver pended the IRP; collect it with [`poll`] or [`wait`].
    Pending(IrpId),
}

/// The I/O manager's completion routine on the driver's stack location: records the final status.
unsafe extern "system" fn io_completion(
    _device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    _context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: IofCompleteRequest passes the IRP it completes, which the simulation allocated.
    let r = unsafe { &mut *irp };
    // SAFETY: Status is the member IofCompleteRequest callers write.
    let status = unsafe { r.IoStatus.u.Status };
    let information = r.IoStatus.Information;
    let mut table = irps();
    let Some(record) = table.get_mut(&(irp as usize)) else {
        drop(table);
        violation(Rule::DeviceIrpMisuse, format!("IoCompleteRequest({irp:p}): not an IRP in flight"));
        return STATUS_MORE_PROCESSING_REQUIRED;
    };
    let what = major_name(record.major);
    if let IrpState::Completed(..) = record.state {
        drop(table);
        violation(Rule::DeviceIrpMisuse, format!("{what} IRP {irp:p} completed twice"));
        return STATUS_MORE_PROCESSING_REQUIRED;
    }
    let mut problem = None;
    let mut information = information;
    if status == STATUS_PENDING {
        problem = Some(format!("{what} IRP {irp:p} completed with STATUS_PENDING"));
    } else if matches!(record.major, IRP_MJ_DEVICE_CONTROL | IRP_MJ_READ) && information > record.output_len {
        problem = Some(format!(
            "{what} IRP {irp:p} completed with IoStatus.Information {information} beyond its {}-byte output buffer",
            record.output_len
        ));
        information = record.output_len;
    }
    record.state = IrpState::Completed(status, information);
    drop(table);
    // Re-arm the completion routine so a second IofCompleteRequest is seen.
    // SAFETY: the IRP is the simulation's, with one stack location.
    unsafe { arm(irp) };
    if let Some(p) = problem {
        violation(Rule::DeviceIrpMisuse, p);
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Makes the IRP's only stack location current and installs [`io_completion`] in it.
///
/// # Safety
/// `irp` must be an IRP the simulation built with one stack location.
unsafe fn arm(irp: *mut IRP) {
    let stack = irp.cast::<u8>().wrapping_add(size_of::<IRP>()).cast::<IO_STACK_LOCATION>();
    // SAFETY: the caller guarantees a valid IRP.
    let r = unsafe { &mut *irp };
    r.CurrentLocation = 1;
    r.Tail.Overlay.CurrentStackLocation = stack;
    // SAFETY: the stack location follows the header inside the IRP's block.
    let loc = unsafe { &mut *stack };
    loc.CompletionRoutine = io_completion as *mut c_void;
    loc.Context = null_mut();
    loc.Control =
        (loc.Control & SL_PENDING_RETURNED) | SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL;
}

/// Resolves a handle to its device's dispatch routine, device object, owner and file object.
fn target(
    handle: Handle,
    major: usize,
) -> Result<(DriverId, *mut DEVICE_OBJECT, PDRIVER_DISPATCH, usize), NTSTATUS> {
    let mut d = devices();
    let Some(file) = d.files.get_mut(&handle.0) else {
        return Err(STATUS_INVALID_HANDLE);
    };
    let Some(dev_handle) = file.device else {
        return Err(STATUS_DELETE_PENDING);
    };
    let file_addr = file.file.ptr() as usize;
    let dev = d.devices.get_mut(&dev_handle).ok_or(STATUS_DELETE_PENDING)?;
    Ok((dev.owner, dev.object.ptr().cast(), dev.dispatch[major], file_addr))
}

/// Builds and dispatches one IRP.
fn submit(handle: Handle, major: usize, params: IO_STACK_PARAMETERS, input: &[u8], output_len: usize) -> Io {
    let (owner, object, routine, file) = match target(handle, major) {
        Ok(t) => t,
        Err(status) => return Io::Done(status, Vec::new()),
    };
    let Some(routine) = routine else {
        let status = if matches!(major, IRP_MJ_CREATE | IRP_MJ_CLEANUP | IRP_MJ_CLOSE) {
            STATUS_SUCCESS
        } else {
            STATUS_INVALID_DEVICE_REQUEST
        };
        return Io::Done(status, Vec::new());
    };
    let buffer_len = input.len().max(output_len);
    let mut buffer = (buffer_len > 0).then(|| Block::new(buffer_len));
    let system_buffer: *mut c_void = match buffer.as_mut() {
        Some(b) => {
            let p = b.ptr();
            // SAFETY: the block holds at least `input.len()` bytes.
            unsafe { std::ptr::copy_nonoverlapping(input.as_ptr(), p, input.len()) };
            p.cast()
        }
        None => null_mut(),
    };
    let mut block = Block::new(IoSizeOfIrp(1));
    let irp = block.ptr().cast::<IRP>();
    {
        // SAFETY: the block is IoSizeOfIrp(1) zeroed bytes, 16-byte aligned: a valid IRP bit pattern.
        let r = unsafe { &mut *irp };
        r.Type = IO_TYPE_IRP;
        r.Size = u16::try_from(IoSizeOfIrp(1)).unwrap_or(u16::MAX);
        r.StackCount = 1;
        r.RequestorMode = USER_MODE;
        r.Flags = IRP_BUFFERED_IO;
        r.AssociatedIrp.SystemBuffer = system_buffer;
        let list = &raw mut r.ThreadListEntry;
        r.ThreadListEntry.Flink = list;
        r.ThreadListEntry.Blink = list;
        r.Tail.Overlay.OriginalFileObject = file as *mut c_void;
    }
    // SAFETY: the IRP was just built with one stack location.
    unsafe { arm(irp) };
    {
        // SAFETY: the IRP was just built and is valid.
        let tail = unsafe { &(*irp).Tail };
        // SAFETY: Tail.Overlay is its active member.
        let sp = unsafe { tail.Overlay.CurrentStackLocation };
        // SAFETY: CurrentStackLocation points at the IRP's one stack location (set by `arm`).
        let loc = unsafe { &mut *sp };
        loc.MajorFunction = u8::try_from(major).unwrap_or(0xff);
        loc.Parameters = params;
        loc.DeviceObject = object;
        loc.FileObject = file as *mut c_void;
    }
    irps().insert(
        irp as usize,
        IrpRecord {
            owner,
            handle: handle.0,
            major,
            output_len,
            state: IrpState::Dispatching,
            _irp: block,
            buffer,
        },
    );
    let what = major_name(major);
    // SAFETY: the registered dispatch routine with the device object and the IRP built above.
    let returned = call_driver(owner, PASSIVE_LEVEL, what, || unsafe { routine(object, irp) });
    let mut table = irps();
    let state = table.get(&(irp as usize)).map(|r| r.state);
    match state {
        Some(IrpState::Completed(status, _)) => {
            if returned != STATUS_PENDING && returned != status {
                violation(
                    Rule::DeviceIrpMisuse,
                    format!("{what} dispatch returned {returned:#x} but completed the IRP with {status:#x}"),
                );
            }
            let record = table.remove(&(irp as usize));
            drop(table);
            record.map_or(Io::Done(STATUS_SUCCESS, Vec::new()), finish)
        }
        Some(_) if returned == STATUS_PENDING => {
            // SAFETY: the IRP is still the simulation's (not completed, so not freed).
            let tail = unsafe { &(*irp).Tail };
            // SAFETY: Tail.Overlay is its active member.
            let sp = unsafe { tail.Overlay.CurrentStackLocation };
            // SAFETY: its one stack location, inside the IRP's block.
            let control = unsafe { (*sp).Control };
            if let Some(r) = table.get_mut(&(irp as usize)) {
                r.state = IrpState::Pending;
            }
            drop(table);
            if control & SL_PENDING_RETURNED == 0 {
                violation(
                    Rule::DeviceIrpMisuse,
                    format!("{what} dispatch returned STATUS_PENDING without IoMarkIrpPending"),
                );
            }
            Io::Pending(IrpId(irp as usize))
        }
        Some(_) => {
            // Neither completed nor pending: the I/O manager would wait forever. The IRP's memory is
            // leaked on purpose (the driver may still touch it).
            if let Some(record) = table.remove(&(irp as usize)) {
                std::mem::forget(record);
            }
            drop(table);
            violation(
                Rule::DeviceIrpMisuse,
                format!("{what} dispatch returned {returned:#x} without completing the IRP or returning STATUS_PENDING"),
            );
            Io::Done(returned, Vec::new())
        }
        None => Io::Done(returned, Vec::new()),
    }
}

/// The caller's view of a completed IRP: its status and the bytes copied back.
fn finish(mut record: IrpRecord) -> Io {
    let IrpState::Completed(status, information) = record.state else {
        return Io::Done(STATUS_PENDING, Vec::new());
    };
    let returns_data = matches!(record.major, IRP_MJ_DEVICE_CONTROL | IRP_MJ_READ);
    // NT_ERROR: severity 3; the I/O manager copies nothing back on an error.
    #[allow(clippy::cast_sign_loss)]
    let error = (status as u32) >> 30 == 3;
    let mut out = Vec::new();
    if returns_data && !error {
        if let Some(b) = record.buffer.as_mut() {
            let n = information.min(record.output_len);
            // SAFETY: the buffer holds max(input, output) >= n bytes.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(b.ptr(), n) });
        }
    }
    Io::Done(status, out)
}

/// Collects a pended IRP if it has completed.
pub fn poll(id: IrpId) -> Option<(NTSTATUS, Vec<u8>)> {
    let mut table = irps();
    match table.get(&id.0).map(|r| r.state) {
        Some(IrpState::Completed(..)) => {
            let record = table.remove(&id.0)?;
            drop(table);
            match finish(record) {
                Io::Done(s, b) => Some((s, b)),
                Io::Pending(_) => None,
            }
        }
        _ => None,
    }
}

/// Whether an IRP is still pending (not completed, not collected).
pub fn is_pending(id: IrpId) -> bool {
    irps().get(&id.0).is_some_and(|r| r.state == IrpState::Pending)
}

/// Waits in real time (polling) for a pended IRP to complete; `None` on timeout.
pub fn wait(id: IrpId, timeout: Duration) -> Option<(NTSTATUS, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(done) = poll(id) {
            return Some(done);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn collapse(io: Io) -> (NTSTATUS, Vec<u8>) {
    match io {
        Io::Done(s, b) => (s, b),
        Io::Pending(_) => (STATUS_PENDING, Vec::new()),
    }
}

/// Opens a device by its symbolic name (`\DosDevices\x`, `\??\x` or the Win32 `\\.\x`) or device name
/// (`\Device\x`): a new file object and `IRP_MJ_CREATE`.
pub fn open(name: &str) -> Result<Handle, NTSTATUS> {
    let key = link_key(name);
    let lower = name.to_ascii_lowercase();
    let mut d = devices();
    let found = d
        .devices
        .iter()
        .find(|(_, v)| key.is_some() && link_key(&v.link) == key || v.name.to_ascii_lowercase() == lower)
        .map(|(&h, _)| h);
    let Some(device) = found else {
        return Err(STATUS_OBJECT_NAME_NOT_FOUND);
    };
    d.next_handle += 1;
    let handle = Handle(d.next_handle);
    d.files.insert(handle.0, OpenFile { device: Some(device), file: Block::new(FILE_OBJECT_SIZE) });
    drop(d);
    // SAFETY: all-zero Parameters are a valid bit pattern (IO_STACK_PARAMETERS is plain data).
    let params: IO_STACK_PARAMETERS = unsafe { std::mem::zeroed() };
    let (status, _) = collapse(submit(handle, IRP_MJ_CREATE, params, &[], 0));
    if status < 0 {
        devices().files.remove(&handle.0);
        return Err(status);
    }
    Ok(handle)
}

/// `DeviceIoControl` with a `METHOD_BUFFERED` code: returns the driver's final status and the bytes it
/// returned, or [`Io::Pending`].
pub fn submit_io_control(handle: Handle, code: u32, input: &[u8], output_len: usize) -> Io {
    let params = IO_STACK_PARAMETERS {
        DeviceIoControl: IO_STACK_DEVICE_IO_CONTROL {
            OutputBufferLength: u32::try_from(output_len).unwrap_or(u32::MAX),
            Pad0: 0,
            InputBufferLength: u32::try_from(input.len()).unwrap_or(u32::MAX),
            Pad1: 0,
            IoControlCode: code,
            Pad2: 0,
            Type3InputBuffer: null_mut(),
        },
    };
    submit(handle, IRP_MJ_DEVICE_CONTROL, params, input, output_len)
}

/// [`submit_io_control`] flattened: `(STATUS_PENDING, [])` when the driver pended the IRP (find it with
/// [`pending_for`]).
pub fn device_io_control(handle: Handle, code: u32, input: &[u8], output_len: usize) -> (NTSTATUS, Vec<u8>) {
    collapse(submit_io_control(handle, code, input, output_len))
}

/// The IRPs pending on `handle`.
pub fn pending_for(handle: Handle) -> Vec<IrpId> {
    irps()
        .iter()
        .filter(|(_, r)| r.handle == handle.0 && r.state == IrpState::Pending)
        .map(|(&k, _)| IrpId(k))
        .collect()
}

/// `Parameters.Read`/`Parameters.Write`: `Length` in the first `ULONG` (x64 layout: `Length`, `Key`,
/// `Flags`, `ByteOffset`).
fn rw_params(length: usize) -> IO_STACK_PARAMETERS {
    // SAFETY: all-zero Parameters are a valid bit pattern.
    let mut params: IO_STACK_PARAMETERS = unsafe { std::mem::zeroed() };
    params.DeviceIoControl.OutputBufferLength = u32::try_from(length).unwrap_or(u32::MAX);
    params
}

/// `ReadFile` (buffered): `IRP_MJ_READ` with a `length`-byte `SystemBuffer`.
pub fn submit_read(handle: Handle, length: usize) -> Io {
    submit(handle, IRP_MJ_READ, rw_params(length), &[], length)
}

/// [`submit_read`] flattened as [`device_io_control`] is.
pub fn read(handle: Handle, length: usize) -> (NTSTATUS, Vec<u8>) {
    collapse(submit_read(handle, length))
}

/// `WriteFile` (buffered): `IRP_MJ_WRITE`; returns the status and `IoStatus.Information` (bytes written).
pub fn write(handle: Handle, data: &[u8]) -> (NTSTATUS, usize) {
    match submit(handle, IRP_MJ_WRITE, rw_params(data.len()), data, 0) {
        Io::Done(status, _) => (status, if status >= 0 { data.len() } else { 0 }),
        Io::Pending(_) => (STATUS_PENDING, 0),
    }
}

/// `CloseHandle`: `IRP_MJ_CLEANUP` (the driver completes what is pending on the handle) then
/// `IRP_MJ_CLOSE`. Returns the close status.
pub fn close(handle: Handle) -> NTSTATUS {
    if !devices().files.contains_key(&handle.0) {
        return STATUS_INVALID_HANDLE;
    }
    // SAFETY: all-zero Parameters are a valid bit pattern.
    let params: IO_STACK_PARAMETERS = unsafe { std::mem::zeroed() };
    let (cleanup, _) = collapse(submit(handle, IRP_MJ_CLEANUP, params, &[], 0));
    let (closed, _) = collapse(submit(handle, IRP_MJ_CLOSE, params, &[], 0));
    devices().files.remove(&handle.0);
    let _ = cleanup;
    if closed == STATUS_DELETE_PENDING {
        STATUS_SUCCESS
    } else {
        closed
    }
}

// ---------------------------------------------------------------------------------------------
// The control socket
// ---------------------------------------------------------------------------------------------

/// Request opcodes of the control-socket protocol (see docs/testing.md, "The control socket").
pub mod op {
    pub const OPEN: u8 = 1;
    pub const IOCTL: u8 = 2;
    pub const READ: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const CLOSE: u8 = 5;
}
/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

/// A running control-socket server; stops (closing every handle its clients left open) on drop.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves the machine's control devices on a Unix-domain socket at `path` (removed first if it exists):
/// one thread accepts, one thread per connection answers requests in order. Each request runs under
/// [`machine_lock`] at PASSIVE_LEVEL (the dispatch routines run through [`call_driver`]); a pended request
/// is waited for without the lock. Handles a connection opened are closed when it ends.
pub fn serve(path: &Path) -> std::io::Result<Server> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new().name("winsim-control".into()).spawn(move || {
        let mut clients = Vec::new();
        for stream in listener.incoming() {
            if flag.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let flag = Arc::clone(&flag);
            if let Ok(t) =
                std::thread::Builder::new().name("winsim-client".into()).spawn(move || client(stream, &flag))
            {
                clients.push(t);
            }
        }
        for t in clients {
            let _ = t.join();
        }
    })?;
    Ok(Server { path: path.to_path_buf(), stop, thread: Some(thread) })
}

fn read_frame(stream: &mut UnixStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return None;
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

fn reply(stream: &mut UnixStream, status: NTSTATUS, information: u64, data: &[u8]) -> bool {
    let len = u32::try_from(12 + data.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(16 + data.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&status.to_le_bytes());
    frame.extend_from_slice(&information.to_le_bytes());
    frame.extend_from_slice(data);
    stream.write_all(&frame).is_ok()
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Whether the peer closed its end (checked while a request is pending). A client that sends another
/// request before the pending one is answered breaks the protocol and is treated as gone.
fn hung_up(stream: &UnixStream) -> bool {
    let mut byte = [0u8; 1];
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut reader = stream;
    let gone = !matches!(reader.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    let _ = stream.set_nonblocking(false);
    gone
}

/// Waits for a pended IRP without the machine lock; gives up when the client hangs up or the server
/// stops.
fn await_irp(id: IrpId, stream: &UnixStream, stop: &AtomicBool) -> Option<(NTSTATUS, Vec<u8>)> {
    loop {
        if let Some(done) = poll(id) {
            return Some(done);
        }
        if stop.load(Ordering::SeqCst) || hung_up(stream) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn client(mut stream: UnixStream, stop: &AtomicBool) {
    let mut opened: Vec<Handle> = Vec::new();
    while let Some(body) = read_frame(&mut stream) {
        let Some((&opcode, rest)) = body.split_first() else { break };
        let handle = u64_at(rest, 0).map(Handle);
        let owned = |h: Option<Handle>| h.filter(|h| opened.contains(h));
        let io = match opcode {
            op::OPEN => {
                let name = String::from_utf8_lossy(rest).into_owned();
                let result = {
                    let _machine = machine_lock();
                    open(&name)
                };
                let ok = match result {
                    Ok(h) => {
                        opened.push(h);
                        reply(&mut stream, STATUS_SUCCESS, h.0, &[])
                    }
                    Err(status) => reply(&mut stream, status, 0, &[]),
                };
                if !ok {
                    break;
                }
                continue;
            }
            op::IOCTL => match (owned(handle), u32_at(rest, 8), u32_at(rest, 12)) {
                (Some(h), Some(code), Some(out)) => {
                    let _machine = machine_lock();
                    submit_io_control(h, code, rest.get(16..).unwrap_or(&[]), out as usize)
                }
                _ => Io::Done(STATUS_INVALID_HANDLE, Vec::new()),
            },
            op::READ => match (owned(handle), u32_at(rest, 8)) {
                (Some(h), Some(len)) => {
                    let _machine = machine_lock();
                    submit_read(h, len as usize)
                }
                _ => Io::Done(STATUS_INVALID_HANDLE, Vec::new()),
            },
            op::WRITE => match owned(handle) {
                Some(h) => {
                    let data = rest.get(8..).unwrap_or(&[]);
                    let (status, written) = {
                        let _machine = machine_lock();
                        write(h, data)
                    };
                    if !reply(&mut stream, status, written as u64, &[]) {
                        break;
                    }
                    continue;
                }
                None => Io::Done(STATUS_INVALID_HANDLE, Vec::new()),
            },
            op::CLOSE => match owned(handle) {
                Some(h) => {
                    opened.retain(|&x| x != h);
                    let status = {
                        let _machine = machine_lock();
                        close(h)
                    };
                    Io::Done(status, Vec::new())
                }
                None => Io::Done(STATUS_INVALID_HANDLE, Vec::new()),
            },
            _ => break,
        };
        let (status, data) = match io {
            Io::Done(s, d) => (s, d),
            Io::Pending(id) => match await_irp(id, &stream, stop) {
                Some(done) => done,
                None => break,
            },
        };
        if !reply(&mut stream, status, data.len() as u64, &data) {
            break;
        }
    }
    let _machine = machine_lock();
    for h in opened {
        close(h);
    }
}

// ---------------------------------------------------------------------------------------------
// Framework (KMDF) devices
// ---------------------------------------------------------------------------------------------

/// Registers a device whose IRPs go to `dispatch` for every major function: how the simulated KMDF
/// ([`crate::wdfio`]) makes a WDFDEVICE with a symbolic link reachable through [`open`] and the control
/// socket (KMDF installs its own dispatch routines in the driver object and turns IRPs into WDFREQUESTs).
/// `owner` is the KMDF client. Returns the registration handle and the `DEVICE_OBJECT` address; a
/// link or name already in use is `STATUS_OBJECT_NAME_COLLISION`.
pub(crate) fn register_framework(
    owner: DriverId,
    name: &str,
    link: &str,
    dispatch: unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut IRP) -> NTSTATUS,
) -> Result<(usize, usize), NTSTATUS> {
    let key = link_key(link).ok_or(kernel::ffi::ntos::STATUS_INVALID_PARAMETER)?;
    let mut d = devices();
    if d.devices.values().any(|v| v.name.eq_ignore_ascii_case(name) || link_key(&v.link) == Some(key.clone()))
    {
        return Err(STATUS_OBJECT_NAME_COLLISION);
    }
    let mut object = Block::new(DEVICE_OBJECT_SIZE);
    let header = object.ptr().cast::<i16>();
    // SAFETY: the block has DEVICE_OBJECT_SIZE writable, aligned bytes: Type at 0.
    unsafe { header.write(IO_TYPE_DEVICE) };
    let address = object.addr();
    d.next_device += 1;
    let handle = 0x5744_4600_0000 + d.next_device * 0x100;
    d.devices.insert(
        handle,
        Device {
            owner,
            object,
            extension: Block::new(0),
            extension_len: 0,
            name: name.to_string(),
            link: link.to_string(),
            dispatch: [Some(dispatch); IRP_MJ_MAXIMUM_FUNCTION + 1],
            pool_block: 0,
        },
    );
    Ok((handle, address))
}

/// Removes a device [`register_framework`] added: handles still open on it stay valid as handles, but
/// further requests fail with `STATUS_DELETE_PENDING` (as after `NdisDeregisterDeviceEx`).
pub(crate) fn deregister_framework(handle: usize) {
    let mut d = devices();
    d.devices.remove(&handle);
    for f in d.files.values_mut() {
        if f.device == Some(handle) {
            f.device = None;
        }
    }
}
