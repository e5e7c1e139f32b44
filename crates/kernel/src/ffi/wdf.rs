//! KMDF version binding without the WDK's `WdfDriverEntry.lib` stub: `WDF_BIND_INFO`,
//! `WDF_VERSION`, `WDF_CLASS_BIND_INFO`, the `wdfldr.sys` exports `WdfVersionBind`,
//! `WdfVersionUnbind`, `WdfVersionBindClass`, `WdfVersionUnbindClass`, and the pieces of the KMDF
//! DDI the miniport calls through the function table: `WDF_DRIVER_GLOBALS`, `WDF_DRIVER_CONFIG`,
//! `WDF_OBJECT_ATTRIBUTES`, `PFN_WDFDRIVERCREATE` and the table indices (`wdffuncenum.h`).
//!
//! Sources (facts only, own code):
//! * microsoft/Windows-Driver-Frameworks (snapshot at commit b6191d9):
//!   `src/framework/shared/inc/private/common/fxldr.h` (`WDF_VERSION`, `WDF_BIND_INFO`,
//!   `WdfVersionBind`/`WdfVersionUnbind` prototypes), `src/framework/kmdf/src/librarycommon/
//!   fxlibrarycommon.cpp` (how the framework fills `FuncTable`: for clients newer than 1.13 it
//!   stores a pointer to its table through `FuncTable`, i.e. `FuncTable` is the address of the
//!   client's `WDFFUNC*` variable; `FuncCount` must equal a released table size, 458 for 1.31+),
//!   `src/publicinc/wdf/kmdf/1.33/{wdffuncenum.h, wdfdriver.h, wdfobject.h, wdfglobals.h}`.
//! * `WDF_MAJOR_VERSION`/`WDF_MINOR_VERSION`/`WDF_BUILD_NUMBER` are `ULONG` (`wdfldr.h`, not in that
//!   repository; as in ReactOS `sdk/lib/drivers/wdf/.../wdfldr.h` and Wine's `wdfldr` private
//!   header). `WDF_CLASS_BIND_INFO`/`WDF_CLASS_VERSION` (`wdfldr.h`): 80 bytes on x64; the
//!   framework's `FxStubBindClasses` checks `Size == 80` and calls the `ClientBindClass` member at
//!   offset 56 with `WdfVersionBindClass` as first argument.
//!
//! The binding protocol (what the WDK stub does, and what the project's stub must do):
//! 1. `DriverEntry` fills a static `WDF_BIND_INFO { Size = 48, Component = L"KmdfLibrary",
//!    Version = {1, minor, 0}, FuncCount = WdfFunctionTableNumEntries, FuncTable = &WdfFunctions }`
//!    and calls `WdfVersionBind(DriverObject, RegistryPath, &BindInfo, &WdfDriverGlobals)`.
//! 2. On success `WdfFunctions` points at the framework's DDI table; `WdfDriverGlobals` is passed as
//!    the first argument of every DDI (`WdfFunctions[WdfDriverCreateTableIndex](WdfDriverGlobals,
//!    ...)`).
//! 3. Class extensions (NetAdapterCx) bind with `WdfVersionBindClass(&BindInfo, WdfDriverGlobals,
//!    &ClassBindInfo)` after step 1.
//! 4. On unload: `WdfVersionUnbindClass` per class, then `WdfVersionUnbind(RegistryPath, &BindInfo,
//!    WdfDriverGlobals)`.
//!
//! All `wdfldr.sys` functions are PASSIVE_LEVEL.

use core::ffi::c_void;

use super::ntos::{BOOLEAN, DRIVER_OBJECT, NTSTATUS, UNICODE_STRING};

// ---------------------------------------------------------------------------------------------
// Loader structures
// ---------------------------------------------------------------------------------------------

/// `WDFFUNC`: an untyped DDI entry; cast to the matching `PFN_WDF*` before calling.
pub type WDFFUNC = Option<unsafe extern "system" fn()>;

/// `WDF_VERSION` (`WDF_CLASS_VERSION` has the same layout).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WDF_VERSION {
    pub Major: u32,
    pub Minor: u32,
    pub Build: u32,
}
const _: () = assert!(core::mem::size_of::<WDF_VERSION>() == 12);

/// `WDF_CLASS_VERSION`.
pub type WDF_CLASS_VERSION = WDF_VERSION;

/// `WDF_BIND_INFO` (x64/ARM64: 48 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct WDF_BIND_INFO {
    pub Size: u32,
    /// `PWCHAR`, e.g. `L"KmdfLibrary"`.
    pub Component: *const u16,
    pub Version: WDF_VERSION,
    pub FuncCount: u32,
    /// Address of the client's `WDFFUNC*` variable (`&WdfFunctions`), which the framework sets.
    pub FuncTable: *mut *const WDFFUNC,
    /// `PLIBRARY_MODULE`: loader-owned; zero-initialize.
    pub Module: *mut c_void,
}
const _: () = assert!(core::mem::size_of::<WDF_BIND_INFO>() == 48);
const _: () = assert!(core::mem::offset_of!(WDF_BIND_INFO, Component) == 8);
const _: () = assert!(core::mem::offset_of!(WDF_BIND_INFO, Version) == 16);
const _: () = assert!(core::mem::offset_of!(WDF_BIND_INFO, FuncCount) == 28);
const _: () = assert!(core::mem::offset_of!(WDF_BIND_INFO, FuncTable) == 32);
const _: () = assert!(core::mem::offset_of!(WDF_BIND_INFO, Module) == 40);

/// `PFN_WDF_VERSION_BIND_CLASS` (the type of `WdfVersionBindClass`).
pub type PFN_WDF_VERSION_BIND_CLASS = Option<
    unsafe extern "system" fn(
        bind_info: *mut WDF_BIND_INFO,
        globals: *mut WDF_DRIVER_GLOBALS,
        class_bind_info: *mut WDF_CLASS_BIND_INFO,
    ) -> NTSTATUS,
>;
/// `PFN_WDF_VERSION_UNBIND_CLASS`.
pub type PFN_WDF_VERSION_UNBIND_CLASS = Option<
    unsafe extern "system" fn(
        bind_info: *mut WDF_BIND_INFO,
        globals: *mut WDF_DRIVER_GLOBALS,
        class_bind_info: *mut WDF_CLASS_BIND_INFO,
    ),
>;
/// `PFN_CLIENT_BIND_CLASS`: optional client hook; if set, the stub calls it instead of
/// `WdfVersionBindClass` and passes `WdfVersionBindClass` as `bind_function`.
pub type PFN_CLIENT_BIND_CLASS = Option<
    unsafe extern "system" fn(
        bind_function: PFN_WDF_VERSION_BIND_CLASS,
        bind_info: *mut WDF_BIND_INFO,
        globals: *mut WDF_DRIVER_GLOBALS,
        class_bind_info: *mut WDF_CLASS_BIND_INFO,
    ) -> NTSTATUS,
>;
/// `PFN_CLIENT_UNBIND_CLASS`.
pub type PFN_CLIENT_UNBIND_CLASS = Option<
    unsafe extern "system" fn(
        unbind_function: PFN_WDF_VERSION_UNBIND_CLASS,
        bind_info: *mut WDF_BIND_INFO,
        globals: *mut WDF_DRIVER_GLOBALS,
        class_bind_info: *mut WDF_CLASS_BIND_INFO,
    ),
>;

/// `WDF_CLASS_BIND_INFO` (x64/ARM64: 80 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct WDF_CLASS_BIND_INFO {
    pub Size: u32,
    /// `PWCHAR`, e.g. `L"NetAdapterCx"`.
    pub ClassName: *const u16,
    pub Version: WDF_CLASS_VERSION,
    /// The client's class function table. NetAdapterCx treats it as the client's
    /// `NETFUNC NetFunctions[FunctionTableCount]` array and copies its entries into it
    /// (Network-Adapter-Class-Extension `netcx/adapter/version.cpp`, `NetAdapterCxBindClient`);
    /// `kernel::netcx` casts accordingly.
    pub FunctionTable: *mut *const WDFFUNC,
    pub FunctionTableCount: u32,
    /// For NetAdapterCx: the address of the client's `NET_DRIVER_GLOBALS*` variable, which the class
    /// extension sets at bind and clears at unbind (same source).
    pub ClassBindInfo: *mut c_void,
    pub ClientBindClass: PFN_CLIENT_BIND_CLASS,
    pub ClientUnbindClass: PFN_CLIENT_UNBIND_CLASS,
    pub ClassModule: *mut c_void,
}
const _: () = assert!(core::mem::size_of::<WDF_CLASS_BIND_INFO>() == 80);
const _: () = assert!(core::mem::offset_of!(WDF_CLASS_BIND_INFO, ClassName) == 8);
const _: () = assert!(core::mem::offset_of!(WDF_CLASS_BIND_INFO, Version) == 16);
const _: () = assert!(core::mem::offset_of!(WDF_CLASS_BIND_INFO, FunctionTable) == 32);
const _: () = assert!(core::mem::offset_of!(WDF_CLASS_BIND_INFO, FunctionTableCount) == 40);
const _: () = assert!(core::mem::offset_of!(WDF_CLASS_BIND_INFO, ClassBindInfo) == 48);
const _: () = assert!(core::mem::offset_of!(WDF_CLASS_BIND_INFO, ClientBindClass) == 56);
const _: () = assert!(core::mem::offset_of!(WDF_CLASS_BIND_INFO, ClientUnbindClass) == 64);
const _: () = assert!(core::mem::offset_of!(WDF_CLASS_BIND_INFO, ClassModule) == 72);

/// KMDF major version.
pub const KMDF_VERSION_MAJOR: u32 = 1;
/// KMDF 1.31 (Windows 10 2004): the minimum NetAdapterCx 2.x clients target here.
pub const KMDF_VERSION_MINOR_1_31: u32 = 31;
/// KMDF 1.33 (Windows 11 21H2): the headers the indices below were checked against.
pub const KMDF_VERSION_MINOR_1_33: u32 = 33;
/// `WdfFunctionTableNumEntries` for KMDF 1.31 and 1.33 (both 458; `FuncCount` must match a
/// released table size exactly or the framework rejects the bind).
pub const WdfFunctionTableNumEntries: u32 = 458;
/// The `Component` string of the KMDF library: `L"KmdfLibrary"` (NUL-terminated UTF-16).
pub const WDF_KMDF_COMPONENT_NAME: [u16; 12] = utf16_lit(b"KmdfLibrary");

/// ASCII literal to NUL-terminated UTF-16 at compile time.
const fn utf16_lit<const N: usize>(s: &[u8]) -> [u16; N] {
    let mut out = [0u16; N];
    let mut i = 0;
    while i < s.len() {
        out[i] = s[i] as u16;
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// KMDF DDI pieces used by the miniport
// ---------------------------------------------------------------------------------------------

/// `WDFOBJECT` and the typed handles: opaque pointers.
pub type WDFOBJECT = *mut c_void;
pub type WDFDRIVER = *mut c_void;
pub type WDFDEVICE = *mut c_void;
/// `PWDFDEVICE_INIT`: opaque.
pub type PWDFDEVICE_INIT = *mut c_void;

/// `WDF_DRIVER_GLOBALS_NAME_LEN`.
pub const WDF_DRIVER_GLOBALS_NAME_LEN: usize = 32;

/// `WDF_DRIVER_GLOBALS` (x64: 56 bytes): what `WdfVersionBind` returns through its last
/// argument; the first argument of every DDI.
#[repr(C)]
#[derive(Debug)]
pub struct WDF_DRIVER_GLOBALS {
    pub Driver: WDFDRIVER,
    pub DriverFlags: u32,
    pub DriverTag: u32,
    pub DriverName: [u8; WDF_DRIVER_GLOBALS_NAME_LEN],
    pub DisplaceDriverUnload: BOOLEAN,
}
const _: () = assert!(core::mem::size_of::<WDF_DRIVER_GLOBALS>() == 56);
const _: () = assert!(core::mem::offset_of!(WDF_DRIVER_GLOBALS, DriverFlags) == 8);
const _: () = assert!(core::mem::offset_of!(WDF_DRIVER_GLOBALS, DriverTag) == 12);
const _: () = assert!(core::mem::offset_of!(WDF_DRIVER_GLOBALS, DriverName) == 16);
const _: () = assert!(core::mem::offset_of!(WDF_DRIVER_GLOBALS, DisplaceDriverUnload) == 48);

/// `EVT_WDF_DRIVER_DEVICE_ADD`. PASSIVE_LEVEL.
pub type PFN_WDF_DRIVER_DEVICE_ADD =
    Option<unsafe extern "system" fn(driver: WDFDRIVER, device_init: PWDFDEVICE_INIT) -> NTSTATUS>;
/// `EVT_WDF_DRIVER_UNLOAD`. PASSIVE_LEVEL.
pub type PFN_WDF_DRIVER_UNLOAD = Option<unsafe extern "system" fn(driver: WDFDRIVER)>;
/// `EVT_WDF_OBJECT_CONTEXT_CLEANUP`. IRQL <= DISPATCH_LEVEL.
pub type PFN_WDF_OBJECT_CONTEXT_CLEANUP = Option<unsafe extern "system" fn(object: WDFOBJECT)>;
/// `EVT_WDF_OBJECT_CONTEXT_DESTROY`. IRQL <= DISPATCH_LEVEL.
pub type PFN_WDF_OBJECT_CONTEXT_DESTROY = Option<unsafe extern "system" fn(object: WDFOBJECT)>;

/// `WDF_DRIVER_INIT_FLAGS`.
pub const WdfDriverInitNonPnpDriver: u32 = 0x0000_0001;
pub const WdfDriverInitNoDispatchOverride: u32 = 0x0000_0002;
pub const WdfVerifyOn: u32 = 0x0000_0004;
pub const WdfVerifierOn: u32 = 0x0000_0008;
pub const WdfDriverInitCompanion: u32 = 0x0000_0010;

/// `WDF_DRIVER_CONFIG` (x64: 32 bytes). `Size = sizeof` (`WDF_DRIVER_CONFIG_INIT`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WDF_DRIVER_CONFIG {
    pub Size: u32,
    pub EvtDriverDeviceAdd: PFN_WDF_DRIVER_DEVICE_ADD,
    pub EvtDriverUnload: PFN_WDF_DRIVER_UNLOAD,
    pub DriverInitFlags: u32,
    pub DriverPoolTag: u32,
}
const _: () = assert!(core::mem::size_of::<WDF_DRIVER_CONFIG>() == 32);
const _: () = assert!(core::mem::offset_of!(WDF_DRIVER_CONFIG, EvtDriverDeviceAdd) == 8);
const _: () = assert!(core::mem::offset_of!(WDF_DRIVER_CONFIG, EvtDriverUnload) == 16);
const _: () = assert!(core::mem::offset_of!(WDF_DRIVER_CONFIG, DriverInitFlags) == 24);
const _: () = assert!(core::mem::offset_of!(WDF_DRIVER_CONFIG, DriverPoolTag) == 28);

impl WDF_DRIVER_CONFIG {
    /// `WDF_DRIVER_CONFIG_INIT(&config, EvtDriverDeviceAdd)`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init(device_add: PFN_WDF_DRIVER_DEVICE_ADD) -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            EvtDriverDeviceAdd: device_add,
            EvtDriverUnload: None,
            DriverInitFlags: 0,
            DriverPoolTag: 0,
        }
    }
}

/// `WDF_EXECUTION_LEVEL`.
pub type WDF_EXECUTION_LEVEL = i32;
pub const WdfExecutionLevelInvalid: WDF_EXECUTION_LEVEL = 0;
pub const WdfExecutionLevelInheritFromParent: WDF_EXECUTION_LEVEL = 1;
pub const WdfExecutionLevelPassive: WDF_EXECUTION_LEVEL = 2;
pub const WdfExecutionLevelDispatch: WDF_EXECUTION_LEVEL = 3;
/// `WDF_SYNCHRONIZATION_SCOPE`.
pub type WDF_SYNCHRONIZATION_SCOPE = i32;
pub const WdfSynchronizationScopeInvalid: WDF_SYNCHRONIZATION_SCOPE = 0;
pub const WdfSynchronizationScopeInheritFromParent: WDF_SYNCHRONIZATION_SCOPE = 1;
pub const WdfSynchronizationScopeDevice: WDF_SYNCHRONIZATION_SCOPE = 2;
pub const WdfSynchronizationScopeQueue: WDF_SYNCHRONIZATION_SCOPE = 3;
pub const WdfSynchronizationScopeNone: WDF_SYNCHRONIZATION_SCOPE = 4;

/// `WDF_OBJECT_CONTEXT_TYPE_INFO` (x64: 40 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct WDF_OBJECT_CONTEXT_TYPE_INFO {
    pub Size: u32,
    /// `PCHAR ContextName`.
    pub ContextName: *const u8,
    pub ContextSize: usize,
    pub UniqueType: *const WDF_OBJECT_CONTEXT_TYPE_INFO,
    /// `PFN_GET_UNIQUE_CONTEXT_TYPE`.
    pub EvtDriverGetUniqueContextType: *const c_void,
}
const _: () = assert!(core::mem::size_of::<WDF_OBJECT_CONTEXT_TYPE_INFO>() == 40);

/// `WDF_OBJECT_ATTRIBUTES` (x64: 56 bytes). Initialize with [`WDF_OBJECT_ATTRIBUTES::init`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WDF_OBJECT_ATTRIBUTES {
    pub Size: u32,
    pub EvtCleanupCallback: PFN_WDF_OBJECT_CONTEXT_CLEANUP,
    pub EvtDestroyCallback: PFN_WDF_OBJECT_CONTEXT_DESTROY,
    pub ExecutionLevel: WDF_EXECUTION_LEVEL,
    pub SynchronizationScope: WDF_SYNCHRONIZATION_SCOPE,
    pub ParentObject: WDFOBJECT,
    pub ContextSizeOverride: usize,
    pub ContextTypeInfo: *const WDF_OBJECT_CONTEXT_TYPE_INFO,
}
const _: () = assert!(core::mem::size_of::<WDF_OBJECT_ATTRIBUTES>() == 56);
const _: () = assert!(core::mem::offset_of!(WDF_OBJECT_ATTRIBUTES, EvtCleanupCallback) == 8);
const _: () = assert!(core::mem::offset_of!(WDF_OBJECT_ATTRIBUTES, EvtDestroyCallback) == 16);
const _: () = assert!(core::mem::offset_of!(WDF_OBJECT_ATTRIBUTES, ExecutionLevel) == 24);
const _: () = assert!(core::mem::offset_of!(WDF_OBJECT_ATTRIBUTES, SynchronizationScope) == 28);
const _: () = assert!(core::mem::offset_of!(WDF_OBJECT_ATTRIBUTES, ParentObject) == 32);
const _: () = assert!(core::mem::offset_of!(WDF_OBJECT_ATTRIBUTES, ContextSizeOverride) == 40);
const _: () = assert!(core::mem::offset_of!(WDF_OBJECT_ATTRIBUTES, ContextTypeInfo) == 48);

impl WDF_OBJECT_ATTRIBUTES {
    /// `WDF_OBJECT_ATTRIBUTES_INIT(&attributes)`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init() -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            EvtCleanupCallback: None,
            EvtDestroyCallback: None,
            ExecutionLevel: WdfExecutionLevelInheritFromParent,
            SynchronizationScope: WdfSynchronizationScopeInheritFromParent,
            ParentObject: core::ptr::null_mut(),
            ContextSizeOverride: 0,
            ContextTypeInfo: core::ptr::null(),
        }
    }
}

/// `WDF_NO_OBJECT_ATTRIBUTES`.
pub const WDF_NO_OBJECT_ATTRIBUTES: *mut WDF_OBJECT_ATTRIBUTES = core::ptr::null_mut();
/// `WDF_NO_HANDLE`.
pub const WDF_NO_HANDLE: *mut c_void = core::ptr::null_mut();

/// `PFN_WDFDRIVERCREATE` (table slot `WdfDriverCreateTableIndex`). PASSIVE_LEVEL, from
/// `DriverEntry`.
pub type PFN_WDFDRIVERCREATE = unsafe extern "system" fn(
    driver_globals: *mut WDF_DRIVER_GLOBALS,
    driver_object: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
    driver_attributes: *mut WDF_OBJECT_ATTRIBUTES,
    driver_config: *mut WDF_DRIVER_CONFIG,
    driver: *mut WDFDRIVER,
) -> NTSTATUS;
/// `PFN_WDFOBJECTDELETE` (table slot `WdfObjectDeleteTableIndex`). IRQL <= DISPATCH_LEVEL.
pub type PFN_WDFOBJECTDELETE =
    unsafe extern "system" fn(driver_globals: *mut WDF_DRIVER_GLOBALS, object: WDFOBJECT);
/// `PFN_WDFDRIVERWDMGETDRIVEROBJECT`. IRQL <= DISPATCH_LEVEL.
pub type PFN_WDFDRIVERWDMGETDRIVEROBJECT = unsafe extern "system" fn(
    driver_globals: *mut WDF_DRIVER_GLOBALS,
    driver: WDFDRIVER,
) -> *mut DRIVER_OBJECT;

// `WDFFUNCENUM` table indices (wdffuncenum.h, KMDF 1.33; identical in 1.31).
pub const WdfControlDeviceInitAllocateTableIndex: usize = 25;
pub const WdfControlFinishInitializingTableIndex: usize = 27;
pub const WdfDeviceWdmGetDeviceObjectTableIndex: usize = 31;
pub const WdfDeviceInitFreeTableIndex: usize = 54;
pub const WdfDeviceInitSetPnpPowerEventCallbacksTableIndex: usize = 55;
pub const WdfDeviceInitSetIoTypeTableIndex: usize = 61;
pub const WdfDeviceInitSetExclusiveTableIndex: usize = 62;
pub const WdfDeviceInitSetDeviceTypeTableIndex: usize = 66;
pub const WdfDeviceInitAssignNameTableIndex: usize = 67;
pub const WdfDeviceInitAssignSDDLStringTableIndex: usize = 68;
pub const WdfDeviceInitSetCharacteristicsTableIndex: usize = 70;
pub const WdfDeviceCreateTableIndex: usize = 75;
pub const WdfDeviceCreateSymbolicLinkTableIndex: usize = 80;
pub const WdfDriverCreateTableIndex: usize = 116;
pub const WdfDriverGetRegistryPathTableIndex: usize = 117;
pub const WdfDriverWdmGetDriverObjectTableIndex: usize = 118;
pub const WdfDriverOpenParametersRegistryKeyTableIndex: usize = 119;
pub const WdfIoQueueCreateTableIndex: usize = 152;
pub const WdfObjectGetTypedContextWorkerTableIndex: usize = 202;
pub const WdfObjectAllocateContextTableIndex: usize = 203;
pub const WdfObjectReferenceActualTableIndex: usize = 205;
pub const WdfObjectDereferenceActualTableIndex: usize = 206;
pub const WdfObjectDeleteTableIndex: usize = 208;
pub const WdfRequestCompleteTableIndex: usize = 263;
pub const WdfRequestCompleteWithInformationTableIndex: usize = 265;
pub const WdfRequestGetParametersTableIndex: usize = 266;
pub const WdfRequestRetrieveInputBufferTableIndex: usize = 269;
pub const WdfRequestRetrieveOutputBufferTableIndex: usize = 270;
pub const WdfRequestSetInformationTableIndex: usize = 275;
pub const WdfRequestGetIoQueueTableIndex: usize = 282;
pub const WdfSpinLockCreateTableIndex: usize = 315;
pub const WdfSpinLockAcquireTableIndex: usize = 316;
pub const WdfSpinLockReleaseTableIndex: usize = 317;
pub const WdfTimerCreateTableIndex: usize = 318;
pub const WdfTimerStartTableIndex: usize = 319;
pub const WdfWorkItemCreateTableIndex: usize = 379;
pub const WdfWorkItemEnqueueTableIndex: usize = 380;

// ---------------------------------------------------------------------------------------------
// wdfldr.sys imports
// ---------------------------------------------------------------------------------------------

#[cfg_attr(target_os = "windows", link(name = "wdfldr.sys", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// `WdfVersionBind`. PASSIVE_LEVEL (from `DriverEntry`). Loads/references the framework, sets
    /// `*bind_info.FuncTable` and returns the driver globals through `component_globals`.
    pub fn WdfVersionBind(
        driver_object: *mut DRIVER_OBJECT,
        registry_path: *mut UNICODE_STRING,
        bind_info: *mut WDF_BIND_INFO,
        component_globals: *mut *mut WDF_DRIVER_GLOBALS,
    ) -> NTSTATUS;
    /// `WdfVersionUnbind`. PASSIVE_LEVEL (from unload, after the WDFDRIVER's cleanup).
    pub fn WdfVersionUnbind(
        registry_path: *mut UNICODE_STRING,
        bind_info: *mut WDF_BIND_INFO,
        component_globals: *mut WDF_DRIVER_GLOBALS,
    ) -> NTSTATUS;
    /// `WdfVersionBindClass`. PASSIVE_LEVEL. Binds a class extension (e.g. NetAdapterCx) for a
    /// client already bound with `WdfVersionBind`.
    pub fn WdfVersionBindClass(
        bind_info: *mut WDF_BIND_INFO,
        globals: *mut WDF_DRIVER_GLOBALS,
        class_bind_info: *mut WDF_CLASS_BIND_INFO,
    ) -> NTSTATUS;
    /// `WdfVersionUnbindClass`. PASSIVE_LEVEL.
    pub fn WdfVersionUnbindClass(
        bind_info: *mut WDF_BIND_INFO,
        globals: *mut WDF_DRIVER_GLOBALS,
        class_bind_info: *mut WDF_CLASS_BIND_INFO,
    );
}

/// Calls `WdfDriverCreate` through the bound function table (what the `FORCEINLINE WdfDriverCreate`
/// of `wdfdriver.h` does). PASSIVE_LEVEL.
///
/// # Safety
/// `functions` must be the table the framework published through `WDF_BIND_INFO.FuncTable` (with at
/// least `WdfFunctionTableNumEntries` entries), `globals` the globals from the same bind, and the
/// remaining arguments valid as `WdfDriverCreate` requires.
pub unsafe fn WdfDriverCreate(
    functions: *const WDFFUNC,
    globals: *mut WDF_DRIVER_GLOBALS,
    driver_object: *mut DRIVER_OBJECT,
    registry_path: *const UNICODE_STRING,
    driver_attributes: *mut WDF_OBJECT_ATTRIBUTES,
    driver_config: *mut WDF_DRIVER_CONFIG,
    driver: *mut WDFDRIVER,
) -> NTSTATUS {
    let slot = functions.wrapping_add(WdfDriverCreateTableIndex);
    // SAFETY: the caller guarantees `functions` holds at least WdfFunctionTableNumEntries entries,
    // so `slot` is in bounds and readable.
    let entry = unsafe { *slot };
    let Some(entry) = entry else {
        return super::ntos::STATUS_NOT_IMPLEMENTED;
    };
    // SAFETY: slot WdfDriverCreateTableIndex of a KMDF 1.x table holds WdfDriverCreate, whose
    // signature is PFN_WDFDRIVERCREATE; both are `extern "system"` function pointers.
    let create: PFN_WDFDRIVERCREATE =
        unsafe { core::mem::transmute::<unsafe extern "system" fn(), PFN_WDFDRIVERCREATE>(entry) };
    // SAFETY: forwarded contract.
    unsafe { create(globals, driver_object, registry_path, driver_attributes, driver_config, driver) }
}

// ---------------------------------------------------------------------------------------------
// Devices and object contexts (wdfdevice.h, wdfobject.h, KMDF 1.33)
// ---------------------------------------------------------------------------------------------

/// `PFN_WDFDEVICECREATE` (slot `WdfDeviceCreateTableIndex`). PASSIVE_LEVEL, from
/// `EvtDriverDeviceAdd`. On success the framework takes the `WDFDEVICE_INIT` and nulls
/// `*device_init`.
pub type PFN_WDFDEVICECREATE = unsafe extern "system" fn(
    driver_globals: *mut WDF_DRIVER_GLOBALS,
    device_init: *mut PWDFDEVICE_INIT,
    device_attributes: *mut WDF_OBJECT_ATTRIBUTES,
    device: *mut WDFDEVICE,
) -> NTSTATUS;
/// `PFN_WDFOBJECTGETTYPEDCONTEXTWORKER` (slot `WdfObjectGetTypedContextWorkerTableIndex`). Any
/// IRQL. Returns the context of `type_info` the object was created with, or null.
pub type PFN_WDFOBJECTGETTYPEDCONTEXTWORKER = unsafe extern "system" fn(
    driver_globals: *mut WDF_DRIVER_GLOBALS,
    handle: WDFOBJECT,
    type_info: *const WDF_OBJECT_CONTEXT_TYPE_INFO,
) -> *mut c_void;

// ---------------------------------------------------------------------------------------------
// PnP/power callbacks, symbolic links, device interfaces (wdfdevice.h, KMDF 1.33)
// ---------------------------------------------------------------------------------------------

/// `WDF_POWER_DEVICE_STATE`.
pub type WDF_POWER_DEVICE_STATE = i32;
pub const WdfPowerDeviceInvalid: WDF_POWER_DEVICE_STATE = 0;
pub const WdfPowerDeviceD0: WDF_POWER_DEVICE_STATE = 1;
pub const WdfPowerDeviceD1: WDF_POWER_DEVICE_STATE = 2;
pub const WdfPowerDeviceD2: WDF_POWER_DEVICE_STATE = 3;
pub const WdfPowerDeviceD3: WDF_POWER_DEVICE_STATE = 4;
pub const WdfPowerDeviceD3Final: WDF_POWER_DEVICE_STATE = 5;

/// `WDFCMRESLIST`: opaque.
pub type WDFCMRESLIST = *mut c_void;

/// `EVT_WDF_DEVICE_D0_ENTRY` / `_D0_EXIT`. PASSIVE_LEVEL (non power-pageable devices may be called
/// at DISPATCH_LEVEL; the simulation calls at PASSIVE_LEVEL).
pub type PFN_WDF_DEVICE_D0_ENTRY =
    Option<unsafe extern "system" fn(device: WDFDEVICE, previous: WDF_POWER_DEVICE_STATE) -> NTSTATUS>;
pub type PFN_WDF_DEVICE_D0_EXIT =
    Option<unsafe extern "system" fn(device: WDFDEVICE, target: WDF_POWER_DEVICE_STATE) -> NTSTATUS>;
/// `EVT_WDF_DEVICE_PREPARE_HARDWARE`. PASSIVE_LEVEL.
pub type PFN_WDF_DEVICE_PREPARE_HARDWARE = Option<
    unsafe extern "system" fn(device: WDFDEVICE, raw: WDFCMRESLIST, translated: WDFCMRESLIST) -> NTSTATUS,
>;
/// `EVT_WDF_DEVICE_RELEASE_HARDWARE`. PASSIVE_LEVEL.
pub type PFN_WDF_DEVICE_RELEASE_HARDWARE =
    Option<unsafe extern "system" fn(device: WDFDEVICE, translated: WDFCMRESLIST) -> NTSTATUS>;
/// A callback slot of `WDF_PNPPOWER_EVENT_CALLBACKS` the project does not use (kept opaque).
pub type PFN_WDF_UNUSED = Option<unsafe extern "system" fn()>;

/// `WDF_PNPPOWER_EVENT_CALLBACKS` (x64: 144 bytes). `WDF_PNPPOWER_EVENT_CALLBACKS_INIT` zeroes it
/// and sets `Size`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WDF_PNPPOWER_EVENT_CALLBACKS {
    pub Size: u32,
    pub EvtDeviceD0Entry: PFN_WDF_DEVICE_D0_ENTRY,
    pub EvtDeviceD0EntryPostInterruptsEnabled: PFN_WDF_UNUSED,
    pub EvtDeviceD0Exit: PFN_WDF_DEVICE_D0_EXIT,
    pub EvtDeviceD0ExitPreInterruptsDisabled: PFN_WDF_UNUSED,
    pub EvtDevicePrepareHardware: PFN_WDF_DEVICE_PREPARE_HARDWARE,
    pub EvtDeviceReleaseHardware: PFN_WDF_DEVICE_RELEASE_HARDWARE,
    pub EvtDeviceSelfManagedIoCleanup: PFN_WDF_UNUSED,
    pub EvtDeviceSelfManagedIoFlush: PFN_WDF_UNUSED,
    pub EvtDeviceSelfManagedIoInit: PFN_WDF_UNUSED,
    pub EvtDeviceSelfManagedIoSuspend: PFN_WDF_UNUSED,
    pub EvtDeviceSelfManagedIoRestart: PFN_WDF_UNUSED,
    pub EvtDeviceSurpriseRemoval: PFN_WDF_UNUSED,
    pub EvtDeviceQueryRemove: PFN_WDF_UNUSED,
    pub EvtDeviceQueryStop: PFN_WDF_UNUSED,
    pub EvtDeviceUsageNotification: PFN_WDF_UNUSED,
    pub EvtDeviceRelationsQuery: PFN_WDF_UNUSED,
    pub EvtDeviceUsageNotificationEx: PFN_WDF_UNUSED,
}
const _: () = assert!(core::mem::size_of::<WDF_PNPPOWER_EVENT_CALLBACKS>() == 144);
const _: () = assert!(core::mem::offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceD0Exit) == 24);
const _: () = assert!(core::mem::offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDevicePrepareHardware) == 40);
const _: () = assert!(core::mem::offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceReleaseHardware) == 48);
const _: () =
    assert!(core::mem::offset_of!(WDF_PNPPOWER_EVENT_CALLBACKS, EvtDeviceUsageNotificationEx) == 136);

impl WDF_PNPPOWER_EVENT_CALLBACKS {
    /// `WDF_PNPPOWER_EVENT_CALLBACKS_INIT`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init() -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            EvtDeviceD0Entry: None,
            EvtDeviceD0EntryPostInterruptsEnabled: None,
            EvtDeviceD0Exit: None,
            EvtDeviceD0ExitPreInterruptsDisabled: None,
            EvtDevicePrepareHardware: None,
            EvtDeviceReleaseHardware: None,
            EvtDeviceSelfManagedIoCleanup: None,
            EvtDeviceSelfManagedIoFlush: None,
            EvtDeviceSelfManagedIoInit: None,
            EvtDeviceSelfManagedIoSuspend: None,
            EvtDeviceSelfManagedIoRestart: None,
            EvtDeviceSurpriseRemoval: None,
            EvtDeviceQueryRemove: None,
            EvtDeviceQueryStop: None,
            EvtDeviceUsageNotification: None,
            EvtDeviceRelationsQuery: None,
            EvtDeviceUsageNotificationEx: None,
        }
    }
}

/// `PFN_WDFDEVICEINITSETPNPPOWEREVENTCALLBACKS` (slot 55). PASSIVE_LEVEL, before `WdfDeviceCreate`.
pub type PFN_WDFDEVICEINITSETPNPPOWEREVENTCALLBACKS = unsafe extern "system" fn(
    driver_globals: *mut WDF_DRIVER_GLOBALS,
    device_init: PWDFDEVICE_INIT,
    callbacks: *mut WDF_PNPPOWER_EVENT_CALLBACKS,
);
/// `WdfDeviceCreateDeviceInterface` slot (wdffuncenum.h, KMDF 1.33).
pub const WdfDeviceCreateDeviceInterfaceTableIndex: usize = 77;
/// `PFN_WDFDEVICECREATEDEVICEINTERFACE` (slot 77). PASSIVE_LEVEL.
pub type PFN_WDFDEVICECREATEDEVICEINTERFACE = unsafe extern "system" fn(
    driver_globals: *mut WDF_DRIVER_GLOBALS,
    device: WDFDEVICE,
    interface_class: *const super::oid::GUID,
    reference_string: *const UNICODE_STRING,
) -> NTSTATUS;
/// `PFN_WDFDEVICECREATESYMBOLICLINK` (slot 80). PASSIVE_LEVEL.
pub type PFN_WDFDEVICECREATESYMBOLICLINK = unsafe extern "system" fn(
    driver_globals: *mut WDF_DRIVER_GLOBALS,
    device: WDFDEVICE,
    symbolic_link_name: *const UNICODE_STRING,
) -> NTSTATUS;

// ---------------------------------------------------------------------------------------------
// I/O queues, requests and file objects (wdfio.h, wdfrequest.h, wdfdevice.h, wdffileobject.h;
// KMDF 1.33, layouts of the public headers, x64/ARM64)
// ---------------------------------------------------------------------------------------------

/// `WDFQUEUE`, `WDFREQUEST`, `WDFFILEOBJECT`: opaque handles.
pub type WDFQUEUE = *mut c_void;
pub type WDFREQUEST = *mut c_void;
pub type WDFFILEOBJECT = *mut c_void;

/// `WDF_TRI_STATE`.
pub type WDF_TRI_STATE = i32;
pub const WdfFalse: WDF_TRI_STATE = 0;
pub const WdfTrue: WDF_TRI_STATE = 1;
pub const WdfUseDefault: WDF_TRI_STATE = 2;

/// `WDF_IO_QUEUE_DISPATCH_TYPE`.
pub type WDF_IO_QUEUE_DISPATCH_TYPE = i32;
pub const WdfIoQueueDispatchInvalid: WDF_IO_QUEUE_DISPATCH_TYPE = 0;
pub const WdfIoQueueDispatchSequential: WDF_IO_QUEUE_DISPATCH_TYPE = 1;
pub const WdfIoQueueDispatchParallel: WDF_IO_QUEUE_DISPATCH_TYPE = 2;
pub const WdfIoQueueDispatchManual: WDF_IO_QUEUE_DISPATCH_TYPE = 3;

/// `WDF_DEVICE_IO_TYPE`.
pub type WDF_DEVICE_IO_TYPE = i32;
pub const WdfDeviceIoUndefined: WDF_DEVICE_IO_TYPE = 0;
pub const WdfDeviceIoNeither: WDF_DEVICE_IO_TYPE = 1;
pub const WdfDeviceIoBuffered: WDF_DEVICE_IO_TYPE = 2;
pub const WdfDeviceIoDirect: WDF_DEVICE_IO_TYPE = 3;

/// `WDF_FILEOBJECT_CLASS`.
pub type WDF_FILEOBJECT_CLASS = i32;
pub const WdfFileObjectInvalid: WDF_FILEOBJECT_CLASS = 0;
pub const WdfFileObjectNotRequired: WDF_FILEOBJECT_CLASS = 1;
pub const WdfFileObjectWdfCanUseFsContext: WDF_FILEOBJECT_CLASS = 2;
pub const WdfFileObjectWdfCanUseFsContext2: WDF_FILEOBJECT_CLASS = 3;
pub const WdfFileObjectWdfCannotUseFsContexts: WDF_FILEOBJECT_CLASS = 4;

/// `EVT_WDF_IO_QUEUE_IO_DEFAULT` / `_CANCELED_ON_QUEUE`. IRQL <= DISPATCH_LEVEL.
pub type PFN_WDF_IO_QUEUE_IO_DEFAULT =
    Option<unsafe extern "system" fn(queue: WDFQUEUE, request: WDFREQUEST)>;
/// `EVT_WDF_IO_QUEUE_IO_READ` / `_WRITE`. IRQL <= DISPATCH_LEVEL.
pub type PFN_WDF_IO_QUEUE_IO_READ =
    Option<unsafe extern "system" fn(queue: WDFQUEUE, request: WDFREQUEST, length: usize)>;
pub type PFN_WDF_IO_QUEUE_IO_WRITE = PFN_WDF_IO_QUEUE_IO_READ;
/// `EVT_WDF_IO_QUEUE_IO_DEVICE_CONTROL` (and `_INTERNAL_`). IRQL <= DISPATCH_LEVEL.
pub type PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL = Option<
    unsafe extern "system" fn(
        queue: WDFQUEUE,
        request: WDFREQUEST,
        output_buffer_length: usize,
        input_buffer_length: usize,
        io_control_code: u32,
    ),
>;
/// `EVT_WDF_IO_QUEUE_IO_STOP`.
pub type PFN_WDF_IO_QUEUE_IO_STOP =
    Option<unsafe extern "system" fn(queue: WDFQUEUE, request: WDFREQUEST, action_flags: u32)>;
/// `EVT_WDF_IO_QUEUE_IO_RESUME`, `EVT_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE`.
pub type PFN_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE = PFN_WDF_IO_QUEUE_IO_DEFAULT;

/// `WDF_IO_QUEUE_CONFIG` (x64: 96 bytes). Initialize with [`WDF_IO_QUEUE_CONFIG::init_default_queue`]
/// or [`WDF_IO_QUEUE_CONFIG::init`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WDF_IO_QUEUE_CONFIG {
    pub Size: u32,
    pub DispatchType: WDF_IO_QUEUE_DISPATCH_TYPE,
    pub PowerManaged: WDF_TRI_STATE,
    pub AllowZeroLengthRequests: BOOLEAN,
    pub DefaultQueue: BOOLEAN,
    pub EvtIoDefault: PFN_WDF_IO_QUEUE_IO_DEFAULT,
    pub EvtIoRead: PFN_WDF_IO_QUEUE_IO_READ,
    pub EvtIoWrite: PFN_WDF_IO_QUEUE_IO_WRITE,
    pub EvtIoDeviceControl: PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL,
    pub EvtIoInternalDeviceControl: PFN_WDF_IO_QUEUE_IO_DEVICE_CONTROL,
    pub EvtIoStop: PFN_WDF_IO_QUEUE_IO_STOP,
    pub EvtIoResume: PFN_WDF_IO_QUEUE_IO_DEFAULT,
    pub EvtIoCanceledOnQueue: PFN_WDF_IO_QUEUE_IO_CANCELED_ON_QUEUE,
    /// `Settings.Parallel.NumberOfPresentedRequests` (the union's only member).
    pub NumberOfPresentedRequests: u32,
    pub Driver: WDFDRIVER,
}
const _: () = assert!(core::mem::size_of::<WDF_IO_QUEUE_CONFIG>() == 96);
const _: () = assert!(core::mem::offset_of!(WDF_IO_QUEUE_CONFIG, AllowZeroLengthRequests) == 12);
const _: () = assert!(core::mem::offset_of!(WDF_IO_QUEUE_CONFIG, DefaultQueue) == 13);
const _: () = assert!(core::mem::offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoDefault) == 16);
const _: () = assert!(core::mem::offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoDeviceControl) == 40);
const _: () = assert!(core::mem::offset_of!(WDF_IO_QUEUE_CONFIG, EvtIoCanceledOnQueue) == 72);
const _: () = assert!(core::mem::offset_of!(WDF_IO_QUEUE_CONFIG, NumberOfPresentedRequests) == 80);
const _: () = assert!(core::mem::offset_of!(WDF_IO_QUEUE_CONFIG, Driver) == 88);

impl WDF_IO_QUEUE_CONFIG {
    /// `WDF_IO_QUEUE_CONFIG_INIT(&config, dispatch_type)`: power managed by default; parallel queues
    /// present any number of requests (`NumberOfPresentedRequests` = -1).
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init(dispatch_type: WDF_IO_QUEUE_DISPATCH_TYPE) -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            DispatchType: dispatch_type,
            PowerManaged: WdfUseDefault,
            AllowZeroLengthRequests: 0,
            DefaultQueue: 0,
            EvtIoDefault: None,
            EvtIoRead: None,
            EvtIoWrite: None,
            EvtIoDeviceControl: None,
            EvtIoInternalDeviceControl: None,
            EvtIoStop: None,
            EvtIoResume: None,
            EvtIoCanceledOnQueue: None,
            NumberOfPresentedRequests: if dispatch_type == WdfIoQueueDispatchParallel { u32::MAX } else { 0 },
            Driver: core::ptr::null_mut(),
        }
    }

    /// `WDF_IO_QUEUE_CONFIG_INIT_DEFAULT_QUEUE`.
    pub const fn init_default_queue(dispatch_type: WDF_IO_QUEUE_DISPATCH_TYPE) -> Self {
        let mut c = Self::init(dispatch_type);
        c.DefaultQueue = 1;
        c
    }
}

/// `EVT_WDF_DEVICE_FILE_CREATE`. PASSIVE_LEVEL. The driver completes `request`.
pub type PFN_WDF_DEVICE_FILE_CREATE =
    Option<unsafe extern "system" fn(device: WDFDEVICE, request: WDFREQUEST, file: WDFFILEOBJECT)>;
/// `EVT_WDF_FILE_CLOSE` / `EVT_WDF_FILE_CLEANUP`. PASSIVE_LEVEL.
pub type PFN_WDF_FILE_CLOSE = Option<unsafe extern "system" fn(file: WDFFILEOBJECT)>;
pub type PFN_WDF_FILE_CLEANUP = PFN_WDF_FILE_CLOSE;

/// `WDF_FILEOBJECT_CONFIG` (x64: 40 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WDF_FILEOBJECT_CONFIG {
    pub Size: u32,
    pub EvtDeviceFileCreate: PFN_WDF_DEVICE_FILE_CREATE,
    pub EvtFileClose: PFN_WDF_FILE_CLOSE,
    pub EvtFileCleanup: PFN_WDF_FILE_CLEANUP,
    pub AutoForwardCleanupClose: WDF_TRI_STATE,
    pub FileObjectClass: WDF_FILEOBJECT_CLASS,
}
const _: () = assert!(core::mem::size_of::<WDF_FILEOBJECT_CONFIG>() == 40);
const _: () = assert!(core::mem::offset_of!(WDF_FILEOBJECT_CONFIG, EvtFileCleanup) == 24);
const _: () = assert!(core::mem::offset_of!(WDF_FILEOBJECT_CONFIG, AutoForwardCleanupClose) == 32);
const _: () = assert!(core::mem::offset_of!(WDF_FILEOBJECT_CONFIG, FileObjectClass) == 36);

impl WDF_FILEOBJECT_CONFIG {
    /// `WDF_FILEOBJECT_CONFIG_INIT`: `AutoForwardCleanupClose` = `WdfUseDefault`, `FileObjectClass` =
    /// `WdfFileObjectWdfCannotUseFsContexts`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init(
        create: PFN_WDF_DEVICE_FILE_CREATE,
        close: PFN_WDF_FILE_CLOSE,
        cleanup: PFN_WDF_FILE_CLEANUP,
    ) -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            EvtDeviceFileCreate: create,
            EvtFileClose: close,
            EvtFileCleanup: cleanup,
            AutoForwardCleanupClose: WdfUseDefault,
            FileObjectClass: WdfFileObjectWdfCannotUseFsContexts,
        }
    }
}

// Table indices (wdffuncenum.h, KMDF 1.33).
pub const WdfDeviceInitSetFileObjectConfigTableIndex: usize = 71;
pub const WdfIoQueueRetrieveNextRequestTableIndex: usize = 158;
pub const WdfIoQueuePurgeSynchronouslyTableIndex: usize = 164;
pub const WdfRequestGetFileObjectTableIndex: usize = 277;
pub const WdfRequestForwardToIoQueueTableIndex: usize = 281;

/// `PFN_WDFDEVICEINITSETIOTYPE` (slot 61). PASSIVE_LEVEL, before `WdfDeviceCreate`.
pub type PFN_WDFDEVICEINITSETIOTYPE = unsafe extern "system" fn(
    globals: *mut WDF_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
    io_type: WDF_DEVICE_IO_TYPE,
);
/// `PFN_WDFDEVICEINITSETEXCLUSIVE` (slot 62). PASSIVE_LEVEL, before `WdfDeviceCreate`.
pub type PFN_WDFDEVICEINITSETEXCLUSIVE =
    unsafe extern "system" fn(globals: *mut WDF_DRIVER_GLOBALS, init: PWDFDEVICE_INIT, exclusive: BOOLEAN);
/// `PFN_WDFDEVICEINITSETFILEOBJECTCONFIG` (slot 71). PASSIVE_LEVEL, before `WdfDeviceCreate`.
pub type PFN_WDFDEVICEINITSETFILEOBJECTCONFIG = unsafe extern "system" fn(
    globals: *mut WDF_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
    config: *mut WDF_FILEOBJECT_CONFIG,
    attributes: *mut WDF_OBJECT_ATTRIBUTES,
);
/// `PFN_WDFIOQUEUECREATE` (slot 152). IRQL <= DISPATCH_LEVEL.
pub type PFN_WDFIOQUEUECREATE = unsafe extern "system" fn(
    globals: *mut WDF_DRIVER_GLOBALS,
    device: WDFDEVICE,
    config: *mut WDF_IO_QUEUE_CONFIG,
    attributes: *mut WDF_OBJECT_ATTRIBUTES,
    queue: *mut WDFQUEUE,
) -> NTSTATUS;
/// `PFN_WDFIOQUEUERETRIEVENEXTREQUEST` (slot 158). IRQL <= DISPATCH_LEVEL.
pub type PFN_WDFIOQUEUERETRIEVENEXTREQUEST = unsafe extern "system" fn(
    globals: *mut WDF_DRIVER_GLOBALS,
    queue: WDFQUEUE,
    request: *mut WDFREQUEST,
) -> NTSTATUS;
/// `PFN_WDFIOQUEUEPURGESYNCHRONOUSLY` (slot 164). PASSIVE_LEVEL.
pub type PFN_WDFIOQUEUEPURGESYNCHRONOUSLY =
    unsafe extern "system" fn(globals: *mut WDF_DRIVER_GLOBALS, queue: WDFQUEUE);
/// `PFN_WDFREQUESTCOMPLETE` (slot 263). IRQL <= DISPATCH_LEVEL.
pub type PFN_WDFREQUESTCOMPLETE =
    unsafe extern "system" fn(globals: *mut WDF_DRIVER_GLOBALS, request: WDFREQUEST, status: NTSTATUS);
/// `PFN_WDFREQUESTCOMPLETEWITHINFORMATION` (slot 265). IRQL <= DISPATCH_LEVEL.
pub type PFN_WDFREQUESTCOMPLETEWITHINFORMATION = unsafe extern "system" fn(
    globals: *mut WDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    status: NTSTATUS,
    information: usize,
);
/// `PFN_WDFREQUESTRETRIEVEINPUTBUFFER` / `OUTPUTBUFFER` (slots 269/270). IRQL <= DISPATCH_LEVEL.
pub type PFN_WDFREQUESTRETRIEVEBUFFER = unsafe extern "system" fn(
    globals: *mut WDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    minimum_required_size: usize,
    buffer: *mut *mut c_void,
    length: *mut usize,
) -> NTSTATUS;
/// `PFN_WDFREQUESTSETINFORMATION` (slot 275). IRQL <= DISPATCH_LEVEL.
pub type PFN_WDFREQUESTSETINFORMATION =
    unsafe extern "system" fn(globals: *mut WDF_DRIVER_GLOBALS, request: WDFREQUEST, information: usize);
/// `PFN_WDFREQUESTGETFILEOBJECT` (slot 277). IRQL <= DISPATCH_LEVEL.
pub type PFN_WDFREQUESTGETFILEOBJECT =
    unsafe extern "system" fn(globals: *mut WDF_DRIVER_GLOBALS, request: WDFREQUEST) -> WDFFILEOBJECT;
/// `PFN_WDFREQUESTFORWARDTOIOQUEUE` (slot 281). IRQL <= DISPATCH_LEVEL.
pub type PFN_WDFREQUESTFORWARDTOIOQUEUE = unsafe extern "system" fn(
    globals: *mut WDF_DRIVER_GLOBALS,
    request: WDFREQUEST,
    destination: WDFQUEUE,
) -> NTSTATUS;

/// `PFN_WDFCONTROLDEVICEINITALLOCATE` (slot 25). PASSIVE_LEVEL. A `WDFDEVICE_INIT` for a control (non-PnP)
/// device, with its security descriptor (SDDL); null on failure.
pub type PFN_WDFCONTROLDEVICEINITALLOCATE = unsafe extern "system" fn(
    globals: *mut WDF_DRIVER_GLOBALS,
    driver: WDFDRIVER,
    sddl: *const UNICODE_STRING,
) -> PWDFDEVICE_INIT;
/// `PFN_WDFCONTROLFINISHINITIALIZING` (slot 27). PASSIVE_LEVEL.
pub type PFN_WDFCONTROLFINISHINITIALIZING =
    unsafe extern "system" fn(globals: *mut WDF_DRIVER_GLOBALS, device: WDFDEVICE);
/// `PFN_WDFDEVICEINITFREE` (slot 54). PASSIVE_LEVEL: frees an init `WdfDeviceCreate` did not take.
pub type PFN_WDFDEVICEINITFREE =
    unsafe extern "system" fn(globals: *mut WDF_DRIVER_GLOBALS, init: PWDFDEVICE_INIT);
/// `PFN_WDFDEVICEINITASSIGNNAME` (slot 67). PASSIVE_LEVEL, before `WdfDeviceCreate`.
pub type PFN_WDFDEVICEINITASSIGNNAME = unsafe extern "system" fn(
    globals: *mut WDF_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
    name: *const UNICODE_STRING,
) -> NTSTATUS;
