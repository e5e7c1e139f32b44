//! NT kernel (`ntoskrnl.exe`, `hal.dll`) types and functions: status codes, strings, driver
//! objects, IRPs, pool, spin locks, IRQL, events, DPCs/timers, work items, bug checks, debug print,
//! time, and extended processor state.
//!
//! Sources (facts only, own code):
//! * Wine 8.0 `include/ddk/wdm.h`, `include/winternl.h`, `include/ntstatus.h` (Debian package
//!   `libwine-dev` 8.0~repack-4): `UNICODE_STRING`, `LIST_ENTRY`, `DRIVER_OBJECT`,
//!   `DRIVER_EXTENSION`, `IRP`, `IO_STACK_LOCATION`, `IO_STATUS_BLOCK`, `KDPC`, `KTIMER`, `KEVENT`,
//!   `KLOCK_QUEUE_HANDLE`, the `Ke*`/`Io*` prototypes and the generic `STATUS_*` values. Wine's
//!   layouts are checked against ours by `crates/kernel/tests/wine_layout.rs`.
//! * WDK `wdm.h` as documented on learn.microsoft.com: `ExAllocatePool2` and `POOL_FLAG_*`,
//!   `XSTATE_SAVE`, `KeSaveExtendedProcessorState`, `KeQueryInterruptTimePrecise`, the x64
//!   `KeGetCurrentIrql` force-inline over `CR8`.
//! * `STATUS_NDIS_*` values: xdp-for-windows `published/wdkdeps/shared/ndis/status.h` (commit
//!   20d5106ec82d09484774e471bf476c1d704327cc) names them; their numeric values are those of the SDK
//!   `ntstatus.h` (facility 0x23).
//!
//! Every function is `unsafe`; each declaration states its IRQL contract as the header's SAL does.
//! On Windows targets the `extern` blocks import through `raw-dylib` from the exporting module; on
//! the host the simulated kernel (`crates/winsim`) defines the same symbols.

use core::ffi::{c_char, c_void};

// ---------------------------------------------------------------------------------------------
// Basic types
// ---------------------------------------------------------------------------------------------

/// `NTSTATUS`: a signed 32-bit status; negative values are errors.
pub type NTSTATUS = i32;
/// `KIRQL`: interrupt request level (`UCHAR`).
pub type KIRQL = u8;
/// `KSPIN_LOCK`: `ULONG_PTR`.
pub type KSPIN_LOCK = usize;
/// `BOOLEAN`: `UCHAR`, 0 or 1.
pub type BOOLEAN = u8;
/// `KPRIORITY`: `LONG`.
pub type KPRIORITY = i32;
/// `LARGE_INTEGER` passed or returned by value (an 8-byte union; ABI-identical to `i64` on x64 and
/// ARM64).
pub type LARGE_INTEGER = i64;
/// `POOL_FLAGS` (`ULONG64`), the first argument of `ExAllocatePool2`.
pub type POOL_FLAGS = u64;
/// `KPROCESSOR_MODE` (`CCHAR`).
pub type KPROCESSOR_MODE = i8;
/// `PEPROCESS`: opaque.
pub type PEPROCESS = *mut c_void;
/// `PETHREAD`: opaque.
pub type PETHREAD = *mut c_void;

/// `TRUE` as a `BOOLEAN`.
pub const TRUE: BOOLEAN = 1;
/// `FALSE` as a `BOOLEAN`.
pub const FALSE: BOOLEAN = 0;

/// `NT_SUCCESS(Status)`: `Status >= 0`.
#[inline]
pub const fn NT_SUCCESS(status: NTSTATUS) -> bool {
    status >= 0
}

// ---------------------------------------------------------------------------------------------
// Status codes used by the drivers
// ---------------------------------------------------------------------------------------------

#[allow(clippy::cast_possible_wrap)]
const fn st(v: u32) -> NTSTATUS {
    v as NTSTATUS
}

pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_TIMEOUT: NTSTATUS = 0x0000_0102;
pub const STATUS_PENDING: NTSTATUS = 0x0000_0103;
pub const STATUS_BUFFER_OVERFLOW: NTSTATUS = st(0x8000_0005);
/// `STATUS_NO_MORE_ENTRIES` (a warning status): e.g. `WdfIoQueueRetrieveNextRequest` on an empty queue.
pub const STATUS_NO_MORE_ENTRIES: NTSTATUS = st(0x8000_001A);
/// `STATUS_DEVICE_BUSY` (a warning status, `ntstatus.h`): the device is busy; try again later.
pub const STATUS_DEVICE_BUSY: NTSTATUS = st(0x8000_0011);
pub const STATUS_UNSUCCESSFUL: NTSTATUS = st(0xC000_0001);
pub const STATUS_NOT_IMPLEMENTED: NTSTATUS = st(0xC000_0002);
pub const STATUS_INVALID_PARAMETER: NTSTATUS = st(0xC000_000D);
pub const STATUS_INVALID_DEVICE_REQUEST: NTSTATUS = st(0xC000_0010);
pub const STATUS_MORE_PROCESSING_REQUIRED: NTSTATUS = st(0xC000_0016);
pub const STATUS_NO_MEMORY: NTSTATUS = st(0xC000_0017);
pub const STATUS_ACCESS_DENIED: NTSTATUS = st(0xC000_0022);
pub const STATUS_BUFFER_TOO_SMALL: NTSTATUS = st(0xC000_0023);
pub const STATUS_OBJECT_NAME_COLLISION: NTSTATUS = st(0xC000_0035);
pub const STATUS_DELETE_PENDING: NTSTATUS = st(0xC000_0056);
pub const STATUS_INTEGER_OVERFLOW: NTSTATUS = st(0xC000_0095);
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = st(0xC000_009A);
pub const STATUS_DEVICE_NOT_READY: NTSTATUS = st(0xC000_00A3);
pub const STATUS_IO_TIMEOUT: NTSTATUS = st(0xC000_00B5);
pub const STATUS_NOT_SUPPORTED: NTSTATUS = st(0xC000_00BB);
pub const STATUS_CANCELLED: NTSTATUS = st(0xC000_0120);
pub const STATUS_INVALID_ADDRESS: NTSTATUS = st(0xC000_0141);
pub const STATUS_INVALID_DEVICE_STATE: NTSTATUS = st(0xC000_0184);
pub const STATUS_INVALID_BUFFER_SIZE: NTSTATUS = st(0xC000_0206);
pub const STATUS_DATA_NOT_ACCEPTED: NTSTATUS = st(0xC000_021B);
pub const STATUS_NOT_FOUND: NTSTATUS = st(0xC000_0225);
pub const STATUS_NETWORK_UNREACHABLE: NTSTATUS = st(0xC000_023C);
pub const STATUS_HOST_UNREACHABLE: NTSTATUS = st(0xC000_023D);
pub const STATUS_REQUEST_ABORTED: NTSTATUS = st(0xC000_0240);
/// `STATUS_CONNECTION_DISCONNECTED` (`ntstatus.h`; Win32 `ERROR_NETNAME_DELETED`): ovpn-dco-win completes a
/// pending read with it when the peer's keepalive timeout expires (`timer.cpp`).
pub const STATUS_CONNECTION_DISCONNECTED: NTSTATUS = st(0xC000_020C);
/// `STATUS_CONNECTION_RESET` (`ntstatus.h`): the peer reset the connection.
pub const STATUS_CONNECTION_RESET: NTSTATUS = st(0xC000_020D);
/// `STATUS_CONNECTION_REFUSED` (`ntstatus.h`; Win32 `ERROR_CONNECTION_REFUSED`): nothing listens there.
pub const STATUS_CONNECTION_REFUSED: NTSTATUS = st(0xC000_0236);
/// `STATUS_CONNECTION_ABORTED` (`ntstatus.h`): the connection was aborted.
pub const STATUS_CONNECTION_ABORTED: NTSTATUS = st(0xC000_0241);
/// `STATUS_OBJECTID_EXISTS` (`ntstatus.h`): ovpn-dco-win's answer to a second `NEW_PEER` / a taken peer id.
pub const STATUS_OBJECTID_EXISTS: NTSTATUS = st(0xC000_022B);
/// `STATUS_OBJECTID_NOT_FOUND` (`ntstatus.h`): ovpn-dco-win's answer to a key for an unknown peer id.
pub const STATUS_OBJECTID_NOT_FOUND: NTSTATUS = st(0xC000_02F0);
/// `STATUS_ALREADY_INITIALIZED` (`ntstatus.h`): ovpn-dco-win's answer to `SET_MODE` after the mode was set
/// and to a second `MP_START_VPN`.
pub const STATUS_ALREADY_INITIALIZED: NTSTATUS = st(0xC000_0510);
/// `STATUS_INVALID_MESSAGE` (`ntstatus.h`): a control packet too short for its address prefix.
pub const STATUS_INVALID_MESSAGE: NTSTATUS = st(0xC000_0702);
pub const STATUS_DEVICE_REMOVED: NTSTATUS = st(0xC000_02B6);
pub const STATUS_NDIS_INDICATION_REQUIRED: NTSTATUS = 0x4023_0001;
pub const STATUS_NDIS_REQUEST_ABORTED: NTSTATUS = st(0xC023_000C);
pub const STATUS_NDIS_MEDIA_DISCONNECTED: NTSTATUS = st(0xC023_001F);
pub const STATUS_NDIS_PAUSED: NTSTATUS = st(0xC023_002A);
pub const STATUS_NDIS_INTERFACE_NOT_FOUND: NTSTATUS = st(0xC023_002B);
pub const STATUS_NDIS_UNSUPPORTED_REVISION: NTSTATUS = st(0xC023_002C);
pub const STATUS_NDIS_INVALID_PORT: NTSTATUS = st(0xC023_002D);
pub const STATUS_NDIS_INVALID_PORT_STATE: NTSTATUS = st(0xC023_002E);
pub const STATUS_NDIS_LOW_POWER_STATE: NTSTATUS = st(0xC023_002F);
pub const STATUS_NDIS_NOT_SUPPORTED: NTSTATUS = st(0xC023_00BB);

// ---------------------------------------------------------------------------------------------
// IRQL
// ---------------------------------------------------------------------------------------------

pub const PASSIVE_LEVEL: KIRQL = 0;
pub const APC_LEVEL: KIRQL = 1;
pub const DISPATCH_LEVEL: KIRQL = 2;
/// `HIGH_LEVEL` on x64 and ARM64.
pub const HIGH_LEVEL: KIRQL = 15;

/// `KeGetCurrentIrql()`.
///
/// How it is obtained differs per build, as it does in `wdm.h`:
/// * x64 Windows: `wdm.h` force-inlines it as a read of `CR8` (the task-priority register, which on
///   x64 holds the IRQL); the import library does not reliably provide it, so we inline the same
///   `mov reg, cr8`. No import.
/// * ARM64 Windows: a real exported function (`NTHALAPI KIRQL KeGetCurrentIrql(VOID)`); imported from
///   `hal.dll`, which on current Windows either implements it or forwards it to `ntoskrnl.exe`.
/// * host: the simulated kernel exports `KeGetCurrentIrql` (its model of the current IRQL).
///
/// Callable at any IRQL.
#[cfg(all(target_os = "windows", target_arch = "x86_64"))]
#[inline]
pub unsafe fn KeGetCurrentIrql() -> KIRQL {
    let cr8: u64;
    // SAFETY: reading CR8 is what wdm.h's KeGetCurrentIrql does on x64; it is legal in ring 0 at any
    // IRQL, has no side effects, and touches neither memory nor the stack.
    unsafe { core::arch::asm!("mov {}, cr8", out(reg) cr8, options(nomem, nostack, preserves_flags)) };
    // CR8 holds the IRQL in its low 4 bits; the rest is reserved as zero.
    #[allow(clippy::cast_possible_truncation)]
    let irql = (cr8 & 0xF) as KIRQL;
    irql
}

#[cfg(not(all(target_os = "windows", target_arch = "x86_64")))]
pub use self::irql_import::KeGetCurrentIrql;

#[cfg(not(all(target_os = "windows", target_arch = "x86_64")))]
mod irql_import {
    use super::KIRQL;
    #[cfg_attr(
        all(target_os = "windows", target_arch = "aarch64"),
        link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim")
    )]
    extern "system" {
        /// `KeGetCurrentIrql` (exported on ARM64; the simulated kernel's on the host). Any IRQL.
        pub fn KeGetCurrentIrql() -> KIRQL;
    }
}

// ---------------------------------------------------------------------------------------------
// Strings and lists
// ---------------------------------------------------------------------------------------------

/// `UNICODE_STRING`: counted UTF-16 string; lengths in bytes, not NUL-terminated.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct UNICODE_STRING {
    pub Length: u16,
    pub MaximumLength: u16,
    pub Buffer: *mut u16,
}
const _: () = assert!(core::mem::size_of::<UNICODE_STRING>() == 16);
const _: () = assert!(core::mem::offset_of!(UNICODE_STRING, Length) == 0);
const _: () = assert!(core::mem::offset_of!(UNICODE_STRING, MaximumLength) == 2);
const _: () = assert!(core::mem::offset_of!(UNICODE_STRING, Buffer) == 8);

/// `NDIS_STRING` is a `UNICODE_STRING`.
pub type NDIS_STRING = UNICODE_STRING;

/// `LIST_ENTRY`: doubly linked list links.
#[repr(C)]
#[derive(Debug)]
pub struct LIST_ENTRY {
    pub Flink: *mut LIST_ENTRY,
    pub Blink: *mut LIST_ENTRY,
}
const _: () = assert!(core::mem::size_of::<LIST_ENTRY>() == 16);
const _: () = assert!(core::mem::offset_of!(LIST_ENTRY, Blink) == 8);

/// `SINGLE_LIST_ENTRY`.
#[repr(C)]
#[derive(Debug)]
pub struct SINGLE_LIST_ENTRY {
    pub Next: *mut SINGLE_LIST_ENTRY,
}
const _: () = assert!(core::mem::size_of::<SINGLE_LIST_ENTRY>() == 8);

/// `IO_STATUS_BLOCK`: `{ union { NTSTATUS Status; PVOID Pointer; }; ULONG_PTR Information; }`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IO_STATUS_BLOCK_0 {
    pub Status: NTSTATUS,
    pub Pointer: *mut c_void,
}
union_debug!(IO_STATUS_BLOCK_0, IRP_ASSOCIATED, IRP_TAIL, IO_STACK_PARAMETERS);

/// `IO_STATUS_BLOCK`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IO_STATUS_BLOCK {
    pub u: IO_STATUS_BLOCK_0,
    pub Information: usize,
}
const _: () = assert!(core::mem::size_of::<IO_STATUS_BLOCK>() == 16);
const _: () = assert!(core::mem::offset_of!(IO_STATUS_BLOCK, Information) == 8);

// ---------------------------------------------------------------------------------------------
// Driver and device objects
// ---------------------------------------------------------------------------------------------

/// `IRP_MJ_MAXIMUM_FUNCTION`.
pub const IRP_MJ_MAXIMUM_FUNCTION: usize = 0x1b;
pub const IRP_MJ_CREATE: usize = 0x00;
pub const IRP_MJ_CLOSE: usize = 0x02;
pub const IRP_MJ_READ: usize = 0x03;
pub const IRP_MJ_WRITE: usize = 0x04;
pub const IRP_MJ_DEVICE_CONTROL: usize = 0x0e;
pub const IRP_MJ_INTERNAL_DEVICE_CONTROL: usize = 0x0f;
pub const IRP_MJ_CLEANUP: usize = 0x12;
pub const IRP_MJ_PNP: usize = 0x1b;

/// `DEVICE_OBJECT`: opaque to the drivers (they only pass pointers to it around).
#[repr(C)]
#[derive(Debug)]
pub struct DEVICE_OBJECT {
    _opaque: [u8; 0],
}

/// `DRIVER_INITIALIZE` (`DriverEntry`). PASSIVE_LEVEL.
pub type PDRIVER_INITIALIZE = Option<
    unsafe extern "system" fn(driver: *mut DRIVER_OBJECT, registry_path: *mut UNICODE_STRING) -> NTSTATUS,
>;
/// `DRIVER_UNLOAD`. PASSIVE_LEVEL.
pub type PDRIVER_UNLOAD = Option<unsafe extern "system" fn(driver: *mut DRIVER_OBJECT)>;
/// `DRIVER_DISPATCH`: an IRP handler. PASSIVE_LEVEL for create/close/device-control.
pub type PDRIVER_DISPATCH =
    Option<unsafe extern "system" fn(device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS>;
/// `DRIVER_STARTIO`.
pub type PDRIVER_STARTIO = Option<unsafe extern "system" fn(device: *mut DEVICE_OBJECT, irp: *mut IRP)>;
/// `DRIVER_ADD_DEVICE`.
pub type PDRIVER_ADD_DEVICE =
    Option<unsafe extern "system" fn(driver: *mut DRIVER_OBJECT, pdo: *mut DEVICE_OBJECT) -> NTSTATUS>;
/// `DRIVER_CANCEL`.
pub type PDRIVER_CANCEL = Option<unsafe extern "system" fn(device: *mut DEVICE_OBJECT, irp: *mut IRP)>;

/// `DRIVER_EXTENSION`: the documented prefix only (the real structure continues with private
/// fields, so no size assertion; never allocate one).
#[repr(C)]
#[derive(Debug)]
pub struct DRIVER_EXTENSION {
    pub DriverObject: *mut DRIVER_OBJECT,
    pub AddDevice: PDRIVER_ADD_DEVICE,
    pub Count: u32,
    pub ServiceKeyName: UNICODE_STRING,
}
const _: () = assert!(core::mem::offset_of!(DRIVER_EXTENSION, AddDevice) == 8);
const _: () = assert!(core::mem::offset_of!(DRIVER_EXTENSION, Count) == 16);
const _: () = assert!(core::mem::offset_of!(DRIVER_EXTENSION, ServiceKeyName) == 24);

/// `DRIVER_OBJECT`: full public layout (x64/ARM64: 0x150 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct DRIVER_OBJECT {
    pub Type: i16,
    pub Size: i16,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub Flags: u32,
    pub DriverStart: *mut c_void,
    pub DriverSize: u32,
    pub DriverSection: *mut c_void,
    pub DriverExtension: *mut DRIVER_EXTENSION,
    pub DriverName: UNICODE_STRING,
    pub HardwareDatabase: *mut UNICODE_STRING,
    pub FastIoDispatch: *mut c_void,
    pub DriverInit: PDRIVER_INITIALIZE,
    pub DriverStartIo: PDRIVER_STARTIO,
    pub DriverUnload: PDRIVER_UNLOAD,
    pub MajorFunction: [PDRIVER_DISPATCH; IRP_MJ_MAXIMUM_FUNCTION + 1],
}
const _: () = assert!(core::mem::size_of::<DRIVER_OBJECT>() == 0x150);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, DeviceObject) == 8);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, Flags) == 16);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, DriverStart) == 24);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, DriverSize) == 32);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, DriverSection) == 40);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, DriverExtension) == 48);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, DriverName) == 56);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, HardwareDatabase) == 72);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, FastIoDispatch) == 80);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, DriverInit) == 88);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, DriverStartIo) == 96);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, DriverUnload) == 104);
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, MajorFunction) == 112);

// ---------------------------------------------------------------------------------------------
// IRP and IO_STACK_LOCATION (for IOCTL dispatch on a control device)
// ---------------------------------------------------------------------------------------------

/// `IRP.AssociatedIrp`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_ASSOCIATED {
    pub MasterIrp: *mut IRP,
    pub IrpCount: i32,
    pub SystemBuffer: *mut c_void,
}

/// `IRP.Tail.Overlay` (the part a driver touches: `DriverContext` and `CurrentStackLocation`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IRP_TAIL_OVERLAY {
    /// Union with `DeviceQueueEntry`; four pointers the owning driver may use.
    pub DriverContext: [*mut c_void; 4],
    pub Thread: PETHREAD,
    pub AuxiliaryBuffer: *mut c_char,
    pub ListEntry: [*mut c_void; 2],
    /// Union with `PacketType`.
    pub CurrentStackLocation: *mut IO_STACK_LOCATION,
    pub OriginalFileObject: *mut c_void,
}

/// `IRP.Tail`: union of `Overlay`, `Apc` (a `KAPC`, 0x58 bytes on x64) and `CompletionKey`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IRP_TAIL {
    pub Overlay: IRP_TAIL_OVERLAY,
    pub Apc: [u64; 11],
    pub CompletionKey: *mut c_void,
}

/// `IRP` (x64/ARM64: 0xD0 bytes). Only `IoStatus`, `AssociatedIrp.SystemBuffer`, `MdlAddress`,
/// `UserBuffer`, `RequestorMode`, `Cancel` and `Tail.Overlay.CurrentStackLocation` are for drivers.
#[repr(C)]
pub struct IRP {
    pub Type: i16,
    pub Size: u16,
    /// `AllocationProcessorNumber` and `Reserved` on current Windows; padding in older headers.
    pub AllocationProcessorNumber: u16,
    pub Reserved: u16,
    pub MdlAddress: *mut super::mdl::MDL,
    pub Flags: u32,
    pub AssociatedIrp: IRP_ASSOCIATED,
    pub ThreadListEntry: LIST_ENTRY,
    pub IoStatus: IO_STATUS_BLOCK,
    pub RequestorMode: KPROCESSOR_MODE,
    pub PendingReturned: BOOLEAN,
    pub StackCount: i8,
    pub CurrentLocation: i8,
    pub Cancel: BOOLEAN,
    pub CancelIrql: KIRQL,
    pub ApcEnvironment: i8,
    pub AllocationFlags: u8,
    pub UserIosb: *mut IO_STATUS_BLOCK,
    pub UserEvent: *mut KEVENT,
    /// `Overlay` union (`AsynchronousParameters` / `AllocationSize`), 16 bytes.
    pub Overlay: [u64; 2],
    pub CancelRoutine: PDRIVER_CANCEL,
    pub UserBuffer: *mut c_void,
    pub Tail: IRP_TAIL,
}
const _: () = assert!(core::mem::size_of::<IRP>() == 0xD0);
const _: () = assert!(core::mem::offset_of!(IRP, MdlAddress) == 8);
const _: () = assert!(core::mem::offset_of!(IRP, Flags) == 16);
const _: () = assert!(core::mem::offset_of!(IRP, AssociatedIrp) == 24);
const _: () = assert!(core::mem::offset_of!(IRP, ThreadListEntry) == 32);
const _: () = assert!(core::mem::offset_of!(IRP, IoStatus) == 48);
const _: () = assert!(core::mem::offset_of!(IRP, RequestorMode) == 64);
const _: () = assert!(core::mem::offset_of!(IRP, Cancel) == 68);
const _: () = assert!(core::mem::offset_of!(IRP, CancelIrql) == 69);
const _: () = assert!(core::mem::offset_of!(IRP, UserIosb) == 72);
const _: () = assert!(core::mem::offset_of!(IRP, UserEvent) == 80);
const _: () = assert!(core::mem::offset_of!(IRP, Overlay) == 88);
const _: () = assert!(core::mem::offset_of!(IRP, CancelRoutine) == 104);
const _: () = assert!(core::mem::offset_of!(IRP, UserBuffer) == 112);
const _: () = assert!(core::mem::offset_of!(IRP, Tail) == 120);
const _: () = assert!(core::mem::offset_of!(IRP_TAIL_OVERLAY, Thread) == 32);
const _: () = assert!(core::mem::offset_of!(IRP_TAIL_OVERLAY, CurrentStackLocation) == 64);
const _: () = assert!(core::mem::offset_of!(IRP_TAIL_OVERLAY, OriginalFileObject) == 72);
const _: () = assert!(core::mem::size_of::<IRP_TAIL>() == 88);

impl core::fmt::Debug for IRP {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IRP").field("Type", &self.Type).field("Flags", &self.Flags).finish_non_exhaustive()
    }
}

/// `IO_STACK_LOCATION.Parameters.DeviceIoControl`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IO_STACK_DEVICE_IO_CONTROL {
    pub OutputBufferLength: u32,
    /// `POINTER_ALIGNMENT` padding.
    pub Pad0: u32,
    pub InputBufferLength: u32,
    /// `POINTER_ALIGNMENT` padding.
    pub Pad1: u32,
    pub IoControlCode: u32,
    /// `POINTER_ALIGNMENT` padding.
    pub Pad2: u32,
    pub Type3InputBuffer: *mut c_void,
}

/// `IO_STACK_LOCATION.Parameters`: a union of 32 bytes on x64 (four pointer-sized slots).
#[repr(C)]
#[derive(Clone, Copy)]
pub union IO_STACK_PARAMETERS {
    pub DeviceIoControl: IO_STACK_DEVICE_IO_CONTROL,
    pub Others: [*mut c_void; 4],
}

/// `IO_STACK_LOCATION` (x64/ARM64: 0x48 bytes).
#[repr(C)]
pub struct IO_STACK_LOCATION {
    pub MajorFunction: u8,
    pub MinorFunction: u8,
    pub Flags: u8,
    pub Control: u8,
    pub Parameters: IO_STACK_PARAMETERS,
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub FileObject: *mut c_void,
    pub CompletionRoutine: *mut c_void,
    pub Context: *mut c_void,
}
const _: () = assert!(core::mem::size_of::<IO_STACK_LOCATION>() == 0x48);
const _: () = assert!(core::mem::offset_of!(IO_STACK_LOCATION, Parameters) == 8);
const _: () = assert!(core::mem::offset_of!(IO_STACK_LOCATION, DeviceObject) == 40);
const _: () = assert!(core::mem::offset_of!(IO_STACK_LOCATION, FileObject) == 48);
const _: () = assert!(core::mem::offset_of!(IO_STACK_LOCATION, CompletionRoutine) == 56);
const _: () = assert!(core::mem::offset_of!(IO_STACK_LOCATION, Context) == 64);
const _: () = assert!(core::mem::offset_of!(IO_STACK_DEVICE_IO_CONTROL, OutputBufferLength) == 0);
const _: () = assert!(core::mem::offset_of!(IO_STACK_DEVICE_IO_CONTROL, InputBufferLength) == 8);
const _: () = assert!(core::mem::offset_of!(IO_STACK_DEVICE_IO_CONTROL, IoControlCode) == 16);
const _: () = assert!(core::mem::offset_of!(IO_STACK_DEVICE_IO_CONTROL, Type3InputBuffer) == 24);

impl core::fmt::Debug for IO_STACK_LOCATION {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IO_STACK_LOCATION")
            .field("MajorFunction", &self.MajorFunction)
            .field("MinorFunction", &self.MinorFunction)
            .finish_non_exhaustive()
    }
}

/// `IoGetCurrentIrpStackLocation(Irp)`: a macro in `wdm.h`
/// (`Irp->Tail.Overlay.CurrentStackLocation`).
///
/// # Safety
/// `irp` must point to a valid IRP owned by the caller (in its dispatch routine). Any IRQL.
#[inline]
pub unsafe fn IoGetCurrentIrpStackLocation(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller guarantees `irp` is a valid IRP.
    let tail = unsafe { &(*irp).Tail };
    // SAFETY: Tail.Overlay is the active union member for an IRP being dispatched to a driver.
    unsafe { tail.Overlay.CurrentStackLocation }
}

/// `IO_NO_INCREMENT` priority boost for `IofCompleteRequest`.
pub const IO_NO_INCREMENT: i8 = 0;
/// `IO_NETWORK_INCREMENT`.
pub const IO_NETWORK_INCREMENT: i8 = 2;

/// `IoCompleteRequest(Irp, Boost)`: a macro over the `IofCompleteRequest` export.
///
/// # Safety
/// As for [`IofCompleteRequest`].
#[inline]
pub unsafe fn IoCompleteRequest(irp: *mut IRP, priority_boost: i8) {
    // SAFETY: forwarded contract; IofCompleteRequest is what the wdm.h macro expands to.
    unsafe { IofCompleteRequest(irp, priority_boost) }
}

// ---------------------------------------------------------------------------------------------
// Dispatcher objects, DPCs, timers, work items, spin locks (sized opaque where drivers never
// look inside)
// ---------------------------------------------------------------------------------------------

/// `KEVENT` (24 bytes: a `DISPATCHER_HEADER`). Initialize with `KeInitializeEvent`; never move an
/// initialized event (its wait list links point into it).
#[repr(C, align(8))]
#[derive(Debug)]
pub struct KEVENT {
    _opaque: [u8; 24],
}
const _: () = assert!(core::mem::size_of::<KEVENT>() == 24);

/// `EVENT_TYPE`.
pub type EVENT_TYPE = i32;
pub const NotificationEvent: EVENT_TYPE = 0;
pub const SynchronizationEvent: EVENT_TYPE = 1;

/// `KWAIT_REASON::Executive`.
pub const Executive: i32 = 0;
/// `KPROCESSOR_MODE::KernelMode`.
pub const KernelMode: KPROCESSOR_MODE = 0;

/// `KDEFERRED_ROUTINE` (a DPC routine). Runs at DISPATCH_LEVEL.
pub type PKDEFERRED_ROUTINE = Option<
    unsafe extern "system" fn(
        dpc: *mut KDPC,
        deferred_context: *mut c_void,
        system_argument1: *mut c_void,
        system_argument2: *mut c_void,
    ),
>;

/// `KDPC` (x64/ARM64: 64 bytes). Opaque; initialize with `KeInitializeDpc`.
#[repr(C, align(8))]
#[derive(Debug)]
pub struct KDPC {
    _opaque: [u8; 64],
}
const _: () = assert!(core::mem::size_of::<KDPC>() == 64);

/// `KTIMER` (x64/ARM64: 64 bytes). Opaque; initialize with `KeInitializeTimerEx`.
#[repr(C, align(8))]
#[derive(Debug)]
pub struct KTIMER {
    _opaque: [u8; 64],
}
const _: () = assert!(core::mem::size_of::<KTIMER>() == 64);

/// `TIMER_TYPE`.
pub type TIMER_TYPE = i32;
pub const NotificationTimer: TIMER_TYPE = 0;
pub const SynchronizationTimer: TIMER_TYPE = 1;

/// `IO_WORKITEM`: opaque, allocated by `IoAllocateWorkItem`.
#[repr(C)]
#[derive(Debug)]
pub struct IO_WORKITEM {
    _opaque: [u8; 0],
}
/// `IO_WORKITEM_ROUTINE`. Runs at PASSIVE_LEVEL in a system worker thread.
pub type PIO_WORKITEM_ROUTINE =
    Option<unsafe extern "system" fn(device: *mut DEVICE_OBJECT, context: *mut c_void)>;
/// `WORK_QUEUE_TYPE`.
pub type WORK_QUEUE_TYPE = i32;
pub const CriticalWorkQueue: WORK_QUEUE_TYPE = 0;
pub const DelayedWorkQueue: WORK_QUEUE_TYPE = 1;

/// `KSPIN_LOCK_QUEUE`.
#[repr(C)]
#[derive(Debug)]
pub struct KSPIN_LOCK_QUEUE {
    pub Next: *mut KSPIN_LOCK_QUEUE,
    pub Lock: *mut KSPIN_LOCK,
}

/// `KLOCK_QUEUE_HANDLE` for in-stack queued spin locks (24 bytes). Must stay on the acquiring
/// stack frame until released.
#[repr(C)]
#[derive(Debug)]
pub struct KLOCK_QUEUE_HANDLE {
    pub LockQueue: KSPIN_LOCK_QUEUE,
    pub OldIrql: KIRQL,
}
const _: () = assert!(core::mem::size_of::<KLOCK_QUEUE_HANDLE>() == 24);
const _: () = assert!(core::mem::offset_of!(KLOCK_QUEUE_HANDLE, OldIrql) == 16);

/// `KeInitializeSpinLock`: force-inline in `wdm.h` on x64 and ARM64 (`*SpinLock = 0`). Any IRQL.
///
/// # Safety
/// `lock` must be valid for writes and not held.
#[inline]
pub unsafe fn KeInitializeSpinLock(lock: *mut KSPIN_LOCK) {
    // SAFETY: the caller guarantees `lock` is valid for writes.
    unsafe { lock.write_volatile(0) };
}

/// `KeAcquireSpinLock(Lock, &OldIrql)`: a macro over `KeAcquireSpinLockRaiseToDpc` on x64/ARM64.
///
/// # Safety
/// As for [`KeAcquireSpinLockRaiseToDpc`].
#[inline]
pub unsafe fn KeAcquireSpinLock(lock: *mut KSPIN_LOCK) -> KIRQL {
    // SAFETY: forwarded contract.
    unsafe { KeAcquireSpinLockRaiseToDpc(lock) }
}

// ---------------------------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------------------------

pub const POOL_FLAG_USE_QUOTA: POOL_FLAGS = 0x0000_0001;
pub const POOL_FLAG_UNINITIALIZED: POOL_FLAGS = 0x0000_0002;
pub const POOL_FLAG_SESSION: POOL_FLAGS = 0x0000_0004;
pub const POOL_FLAG_CACHE_ALIGNED: POOL_FLAGS = 0x0000_0008;
pub const POOL_FLAG_RAISE_ON_FAILURE: POOL_FLAGS = 0x0000_0020;
/// Non-paged, no-execute pool.
pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x0000_0040;
pub const POOL_FLAG_NON_PAGED_EXECUTE: POOL_FLAGS = 0x0000_0080;
pub const POOL_FLAG_PAGED: POOL_FLAGS = 0x0000_0100;

/// `POOL_TYPE` (for `ExAllocatePoolWithTag`).
pub type POOL_TYPE = i32;
pub const NonPagedPool: POOL_TYPE = 0;
pub const PagedPool: POOL_TYPE = 1;
/// `NonPagedPoolNx` (Windows 8+): non-paged, no-execute.
pub const NonPagedPoolNx: POOL_TYPE = 512;

// ---------------------------------------------------------------------------------------------
// Debug print and bug check
// ---------------------------------------------------------------------------------------------

/// `DPFLTR_IHVDRIVER_ID`: component id for third-party drivers.
pub const DPFLTR_IHVDRIVER_ID: u32 = 77;
pub const DPFLTR_IHVNETWORK_ID: u32 = 79;
pub const DPFLTR_ERROR_LEVEL: u32 = 0;
pub const DPFLTR_WARNING_LEVEL: u32 = 1;
pub const DPFLTR_TRACE_LEVEL: u32 = 2;
pub const DPFLTR_INFO_LEVEL: u32 = 3;

/// `DRIVER_VERIFIER_DETECTED_VIOLATION` bug check code, for the project's own fatal assertions.
pub const DRIVER_VERIFIER_DETECTED_VIOLATION: u32 = 0xC4;
/// `KMODE_EXCEPTION_NOT_HANDLED`.
pub const KMODE_EXCEPTION_NOT_HANDLED: u32 = 0x1E;
/// `DRIVER_IRQL_NOT_LESS_OR_EQUAL`.
pub const DRIVER_IRQL_NOT_LESS_OR_EQUAL: u32 = 0xD1;
/// `MANUALLY_INITIATED_CRASH`.
pub const MANUALLY_INITIATED_CRASH: u32 = 0xE2;

// ---------------------------------------------------------------------------------------------
// Extended processor state (FPU/SSE/AVX in kernel code)
// ---------------------------------------------------------------------------------------------

pub const XSTATE_MASK_LEGACY_FLOATING_POINT: u64 = 1 << 0;
pub const XSTATE_MASK_LEGACY_SSE: u64 = 1 << 1;
pub const XSTATE_MASK_LEGACY: u64 = XSTATE_MASK_LEGACY_FLOATING_POINT | XSTATE_MASK_LEGACY_SSE;
pub const XSTATE_MASK_GSSE: u64 = 1 << 2;
pub const XSTATE_MASK_AVX: u64 = XSTATE_MASK_GSSE;
/// AVX-512 (`KMASK`, `ZMM_H`, `ZMM` components).
pub const XSTATE_MASK_AVX512: u64 = (1 << 5) | (1 << 6) | (1 << 7);

/// `XSTATE_SAVE`, as an opaque out-buffer. x64: `Prev`, `Thread`, `Level`, `XSTATE_CONTEXT` = 56
/// bytes, 8-aligned in mingw-w64's `wdm.h` (64/16 if the WDK declares it `DECLSPEC_ALIGN(16)`); we
/// reserve 64 bytes at 16-byte alignment, which covers both (the wine_layout test checks mingw's
/// size and alignment do not exceed ours). ARM64: `ULONG Dummy`; 16 bytes reserved. Must stay in
/// place (stack or non-paged memory of the saving thread) between save and restore.
#[repr(C, align(16))]
#[derive(Debug)]
pub struct XSTATE_SAVE {
    #[cfg(not(target_arch = "aarch64"))]
    _opaque: [u8; 64],
    #[cfg(target_arch = "aarch64")]
    _opaque: [u8; 16],
}
#[cfg(not(target_arch = "aarch64"))]
const _: () = assert!(core::mem::size_of::<XSTATE_SAVE>() == 64);
#[cfg(target_arch = "aarch64")]
const _: () = assert!(core::mem::size_of::<XSTATE_SAVE>() == 16);

impl XSTATE_SAVE {
    /// A zeroed save area for `KeSaveExtendedProcessorState` to fill.
    pub const fn zeroed() -> Self {
        Self {
            #[cfg(not(target_arch = "aarch64"))]
            _opaque: [0; 64],
            #[cfg(target_arch = "aarch64")]
            _opaque: [0; 16],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ntoskrnl.exe imports
// ---------------------------------------------------------------------------------------------

#[cfg_attr(target_os = "windows", link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    // --- pool ---
    /// `ExAllocatePool2` (Windows 10 2004+). IRQL <= DISPATCH_LEVEL for non-paged pool, <= APC_LEVEL
    /// for paged. Zero-initializes unless `POOL_FLAG_UNINITIALIZED`. Returns null on failure (unless
    /// `POOL_FLAG_RAISE_ON_FAILURE`). `tag` must be non-zero.
    pub fn ExAllocatePool2(flags: POOL_FLAGS, number_of_bytes: usize, tag: u32) -> *mut c_void;
    /// `ExAllocatePoolWithTag` (deprecated in favour of `ExAllocatePool2`, which needs Windows 10
    /// 2004; kept for older targets). Does not zero. IRQL <= DISPATCH_LEVEL for non-paged types.
    pub fn ExAllocatePoolWithTag(pool_type: POOL_TYPE, number_of_bytes: usize, tag: u32) -> *mut c_void;
    /// `ExFreePoolWithTag`. IRQL <= DISPATCH_LEVEL (<= APC_LEVEL for paged pool). `tag` must match the
    /// allocation's.
    pub fn ExFreePoolWithTag(p: *mut c_void, tag: u32);

    // --- bug check ---
    /// `KeBugCheckEx`. Any IRQL. Does not return.
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;

    // --- spin locks ---
    /// `KeAcquireSpinLockRaiseToDpc`. IRQL <= DISPATCH_LEVEL; raises to DISPATCH_LEVEL and returns
    /// the previous IRQL.
    pub fn KeAcquireSpinLockRaiseToDpc(lock: *mut KSPIN_LOCK) -> KIRQL;
    /// `KeReleaseSpinLock`. IRQL == DISPATCH_LEVEL (lock held); lowers to `new_irql`.
    pub fn KeReleaseSpinLock(lock: *mut KSPIN_LOCK, new_irql: KIRQL);
    /// `KeAcquireSpinLockAtDpcLevel`. IRQL == DISPATCH_LEVEL.
    pub fn KeAcquireSpinLockAtDpcLevel(lock: *mut KSPIN_LOCK);
    /// `KeReleaseSpinLockFromDpcLevel`. IRQL == DISPATCH_LEVEL.
    pub fn KeReleaseSpinLockFromDpcLevel(lock: *mut KSPIN_LOCK);
    /// `KeAcquireInStackQueuedSpinLock`. IRQL <= DISPATCH_LEVEL; raises to DISPATCH_LEVEL.
    /// (x64/ARM64: exported by ntoskrnl; hal on x86 only.)
    pub fn KeAcquireInStackQueuedSpinLock(lock: *mut KSPIN_LOCK, handle: *mut KLOCK_QUEUE_HANDLE);
    /// `KeReleaseInStackQueuedSpinLock`. IRQL == DISPATCH_LEVEL; restores `handle.OldIrql`.
    pub fn KeReleaseInStackQueuedSpinLock(handle: *mut KLOCK_QUEUE_HANDLE);
    /// `KeAcquireInStackQueuedSpinLockAtDpcLevel`. IRQL == DISPATCH_LEVEL.
    pub fn KeAcquireInStackQueuedSpinLockAtDpcLevel(lock: *mut KSPIN_LOCK, handle: *mut KLOCK_QUEUE_HANDLE);
    /// `KeReleaseInStackQueuedSpinLockFromDpcLevel`. IRQL == DISPATCH_LEVEL.
    pub fn KeReleaseInStackQueuedSpinLockFromDpcLevel(handle: *mut KLOCK_QUEUE_HANDLE);

    // --- events ---
    /// `KeInitializeEvent`. Any IRQL (event in non-paged memory).
    pub fn KeInitializeEvent(event: *mut KEVENT, event_type: EVENT_TYPE, state: BOOLEAN);
    /// `KeSetEvent`. IRQL <= DISPATCH_LEVEL (with `wait == FALSE`). Returns the previous state.
    pub fn KeSetEvent(event: *mut KEVENT, increment: KPRIORITY, wait: BOOLEAN) -> i32;
    /// `KeClearEvent`. IRQL <= DISPATCH_LEVEL.
    pub fn KeClearEvent(event: *mut KEVENT);
    /// `KeResetEvent`. IRQL <= DISPATCH_LEVEL. Returns the previous state.
    pub fn KeResetEvent(event: *mut KEVENT) -> i32;
    /// `KeReadStateEvent`. IRQL <= DISPATCH_LEVEL.
    pub fn KeReadStateEvent(event: *mut KEVENT) -> i32;
    /// `KeWaitForSingleObject`. IRQL <= APC_LEVEL for a non-zero timeout (or null = infinite);
    /// <= DISPATCH_LEVEL with a zero timeout. `timeout` is in 100 ns units, negative = relative.
    pub fn KeWaitForSingleObject(
        object: *mut c_void,
        wait_reason: i32,
        wait_mode: KPROCESSOR_MODE,
        alertable: BOOLEAN,
        timeout: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    /// `KeDelayExecutionThread`. IRQL <= APC_LEVEL. `interval` in 100 ns, negative = relative.
    pub fn KeDelayExecutionThread(
        mode: KPROCESSOR_MODE,
        alertable: BOOLEAN,
        interval: *mut LARGE_INTEGER,
    ) -> NTSTATUS;

    // --- DPCs and timers ---
    /// `KeInitializeDpc`. Any IRQL.
    pub fn KeInitializeDpc(dpc: *mut KDPC, routine: PKDEFERRED_ROUTINE, context: *mut c_void);
    /// `KeInsertQueueDpc`. Any IRQL. Returns FALSE if already queued.
    pub fn KeInsertQueueDpc(dpc: *mut KDPC, arg1: *mut c_void, arg2: *mut c_void) -> BOOLEAN;
    /// `KeRemoveQueueDpc`. Any IRQL.
    pub fn KeRemoveQueueDpc(dpc: *mut KDPC) -> BOOLEAN;
    /// `KeFlushQueuedDpcs`. PASSIVE_LEVEL. Waits until every queued DPC has run.
    pub fn KeFlushQueuedDpcs();
    /// `KeInitializeTimerEx`. IRQL <= DISPATCH_LEVEL.
    pub fn KeInitializeTimerEx(timer: *mut KTIMER, timer_type: TIMER_TYPE);
    /// `KeSetTimerEx`. IRQL <= DISPATCH_LEVEL. `due_time` in 100 ns, negative = relative; `period`
    /// in ms (0 = one-shot). Returns TRUE if the timer was already set.
    pub fn KeSetTimerEx(timer: *mut KTIMER, due_time: LARGE_INTEGER, period: i32, dpc: *mut KDPC) -> BOOLEAN;
    /// `KeCancelTimer`. IRQL <= DISPATCH_LEVEL.
    pub fn KeCancelTimer(timer: *mut KTIMER) -> BOOLEAN;

    // --- work items ---
    /// `IoAllocateWorkItem`. IRQL <= DISPATCH_LEVEL. Null on failure.
    pub fn IoAllocateWorkItem(device: *mut DEVICE_OBJECT) -> *mut IO_WORKITEM;
    /// `IoQueueWorkItem`. IRQL <= DISPATCH_LEVEL. The item must not be requeued until it ran.
    pub fn IoQueueWorkItem(
        item: *mut IO_WORKITEM,
        routine: PIO_WORKITEM_ROUTINE,
        queue: WORK_QUEUE_TYPE,
        context: *mut c_void,
    );
    /// `IoFreeWorkItem`. IRQL <= DISPATCH_LEVEL. Not while queued.
    pub fn IoFreeWorkItem(item: *mut IO_WORKITEM);
    /// `IoSizeofWorkItem`. Any IRQL.
    pub fn IoSizeofWorkItem() -> u32;
    /// `IoInitializeWorkItem` (caller-allocated item of `IoSizeofWorkItem()` bytes). Any IRQL.
    pub fn IoInitializeWorkItem(io_object: *mut c_void, item: *mut IO_WORKITEM);
    /// `IoUninitializeWorkItem`. Any IRQL.
    pub fn IoUninitializeWorkItem(item: *mut IO_WORKITEM);

    // --- IRPs ---
    /// `IofCompleteRequest` (target of the `IoCompleteRequest` macro). IRQL <= DISPATCH_LEVEL.
    pub fn IofCompleteRequest(irp: *mut IRP, priority_boost: i8);

    // --- time ---
    /// `KeQueryPerformanceCounter` (ntoskrnl since Windows 8; hal.dll forwards). Any IRQL.
    /// `frequency` may be null.
    pub fn KeQueryPerformanceCounter(frequency: *mut LARGE_INTEGER) -> LARGE_INTEGER;
    /// `KeQueryInterruptTimePrecise` (Windows 8.1+). IRQL <= HIGH_LEVEL. Returns interrupt time in
    /// 100 ns units; writes the QPC value it was derived from.
    pub fn KeQueryInterruptTimePrecise(qpc_time_stamp: *mut u64) -> u64;

    // --- extended processor state ---
    /// `KeSaveExtendedProcessorState`. IRQL <= DISPATCH_LEVEL. Saves the components in `mask`
    /// (e.g. `XSTATE_MASK_AVX`) so the caller may use them until the matching restore.
    pub fn KeSaveExtendedProcessorState(mask: u64, save: *mut XSTATE_SAVE) -> NTSTATUS;
    /// `KeRestoreExtendedProcessorState`. Same IRQL as the save; same thread; LIFO with saves.
    pub fn KeRestoreExtendedProcessorState(save: *mut XSTATE_SAVE);

    // --- strings ---
    /// `RtlInitUnicodeString`. IRQL <= DISPATCH_LEVEL (if `source` is resident).
    pub fn RtlInitUnicodeString(destination: *mut UNICODE_STRING, source: *const u16);
}

#[cfg_attr(target_os = "windows", link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "C" {
    /// `DbgPrintEx` (cdecl, variadic). Any IRQL, but only `%` formats that do not touch pageable
    /// data (no `%wZ`/`%ws`/`%C`/`%S` above PASSIVE_LEVEL). Returns an `NTSTATUS` as `ULONG`.
    pub fn DbgPrintEx(component_id: u32, level: u32, format: *const c_char, ...) -> u32;
}

// ---------------------------------------------------------------------------------------------
// IRPs a driver allocates itself (WSK clients): IoAllocateIrp / IoFreeIrp / IoReuseIrp and the
// completion-routine macros. Wine 8.0 `ddk/wdm.h` (`IoGetNextIrpStackLocation`,
// `IoSetCompletionRoutine`, `SL_INVOKE_ON_*`, `PIO_COMPLETION_ROUTINE`); the offsets used
// (`StackCount`, `CurrentLocation`, `Tail.Overlay.CurrentStackLocation`, `IO_STACK_LOCATION.Control`,
// `.CompletionRoutine`, `.Context`) are asserted above and checked by `tests/wine_layout.rs`.
// ---------------------------------------------------------------------------------------------

/// `IO_COMPLETION_ROUTINE`: runs at IRQL <= DISPATCH_LEVEL (the IRQL of the `IofCompleteRequest`
/// caller). Returns `STATUS_MORE_PROCESSING_REQUIRED` to stop completion (required for IRPs from
/// `IoAllocateIrp`, which the I/O manager cannot finish: the driver reuses or frees them).
pub type PIO_COMPLETION_ROUTINE = Option<
    unsafe extern "system" fn(device: *mut DEVICE_OBJECT, irp: *mut IRP, context: *mut c_void) -> NTSTATUS,
>;

/// `SL_PENDING_RETURNED` (`IO_STACK_LOCATION.Control`).
pub const SL_PENDING_RETURNED: u8 = 0x01;
/// `SL_INVOKE_ON_CANCEL`.
pub const SL_INVOKE_ON_CANCEL: u8 = 0x20;
/// `SL_INVOKE_ON_SUCCESS`.
pub const SL_INVOKE_ON_SUCCESS: u8 = 0x40;
/// `SL_INVOKE_ON_ERROR`.
pub const SL_INVOKE_ON_ERROR: u8 = 0x80;
/// `IO_TYPE_IRP` (`IRP.Type`).
pub const IO_TYPE_IRP: i16 = 6;

/// `IoSizeOfIrp(StackSize)`: a macro in `wdm.h`.
#[inline]
pub const fn IoSizeOfIrp(stack_size: i8) -> usize {
    core::mem::size_of::<IRP>()
        + stack_size.unsigned_abs() as usize * core::mem::size_of::<IO_STACK_LOCATION>()
}

/// `IoGetNextIrpStackLocation(Irp)`: a macro in `wdm.h`
/// (`Irp->Tail.Overlay.CurrentStackLocation - 1`). Any IRQL.
///
/// # Safety
/// `irp` must point to a valid IRP the caller owns with at least one stack location below the
/// current one (`CurrentLocation > 1`).
#[inline]
pub unsafe fn IoGetNextIrpStackLocation(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller guarantees `irp` is valid.
    let current = unsafe { IoGetCurrentIrpStackLocation(irp) };
    current.wrapping_sub(1)
}

/// `IoSetCompletionRoutine(Irp, Routine, Context, OnSuccess, OnError, OnCancel)`: a macro in
/// `wdm.h` writing the next stack location. Any IRQL.
///
/// # Safety
/// As for [`IoGetNextIrpStackLocation`].
#[inline]
pub unsafe fn IoSetCompletionRoutine(
    irp: *mut IRP,
    routine: PIO_COMPLETION_ROUTINE,
    context: *mut c_void,
    on_success: bool,
    on_error: bool,
    on_cancel: bool,
) {
    // SAFETY: forwarded contract.
    let next = unsafe { IoGetNextIrpStackLocation(irp) };
    let mut control = 0;
    if on_success {
        control |= SL_INVOKE_ON_SUCCESS;
    }
    if on_error {
        control |= SL_INVOKE_ON_ERROR;
    }
    if on_cancel {
        control |= SL_INVOKE_ON_CANCEL;
    }
    let routine_ptr: *mut c_void = match routine {
        Some(f) => f as *mut c_void,
        None => core::ptr::null_mut(),
    };
    // SAFETY: the caller guarantees the next stack location lies inside the IRP.
    unsafe { (*next).CompletionRoutine = routine_ptr };
    // SAFETY: as above.
    unsafe { (*next).Context = context };
    // SAFETY: as above.
    unsafe { (*next).Control = control };
}

#[cfg_attr(target_os = "windows", link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// `IoAllocateIrp`. IRQL <= DISPATCH_LEVEL. An IRP with `stack_size` stack locations, none
    /// current (`CurrentLocation == StackSize + 1`). Null on failure.
    pub fn IoAllocateIrp(stack_size: i8, charge_quota: BOOLEAN) -> *mut IRP;
    /// `IoFreeIrp`. IRQL <= DISPATCH_LEVEL. Only for IRPs from `IoAllocateIrp` that no driver is
    /// processing (inside the completion routine is fine).
    pub fn IoFreeIrp(irp: *mut IRP);
    /// `IoReuseIrp`. IRQL <= DISPATCH_LEVEL. Reinitializes a completed IRP for another request and
    /// sets `IoStatus.Status`.
    pub fn IoReuseIrp(irp: *mut IRP, status: NTSTATUS);
}
