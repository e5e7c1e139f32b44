//! Memory descriptor lists: `MDL`, its flags, the header macros (`MmGetSystemAddressForMdlSafe`,
//! `MmGetMdlVirtualAddress`, ...) as inline functions, and the `ntoskrnl.exe` MDL functions.
//!
//! Sources (facts only, own code): Wine 8.0 `include/ddk/wdm.h` (Debian `libwine-dev`
//! 8.0~repack-4) for `MDL`, `MDL_*` flags, `IoAllocateMdl`, `IoFreeMdl`,
//! `MmBuildMdlForNonPagedPool`, `MmMapLockedPagesSpecifyCache`; the WDK `wdm.h` (as documented on
//! learn.microsoft.com) for the `MmGetSystemAddressForMdlSafe` macro body and `MM_PAGE_PRIORITY` /
//! `MdlMappingNoExecute`. `MDL` is checked against Wine's by `tests/wine_layout.rs`.

use core::ffi::c_void;

use super::ntos::{BOOLEAN, IRP, KPROCESSOR_MODE};

/// `MDL` (x64/ARM64: 48 bytes; followed in memory by its PFN array).
#[repr(C)]
#[derive(Debug)]
pub struct MDL {
    pub Next: *mut MDL,
    pub Size: i16,
    pub MdlFlags: i16,
    pub Process: *mut c_void,
    pub MappedSystemVa: *mut c_void,
    pub StartVa: *mut c_void,
    pub ByteCount: u32,
    pub ByteOffset: u32,
}
const _: () = assert!(core::mem::size_of::<MDL>() == 48);
const _: () = assert!(core::mem::offset_of!(MDL, Next) == 0);
const _: () = assert!(core::mem::offset_of!(MDL, Size) == 8);
const _: () = assert!(core::mem::offset_of!(MDL, MdlFlags) == 10);
const _: () = assert!(core::mem::offset_of!(MDL, Process) == 16);
const _: () = assert!(core::mem::offset_of!(MDL, MappedSystemVa) == 24);
const _: () = assert!(core::mem::offset_of!(MDL, StartVa) == 32);
const _: () = assert!(core::mem::offset_of!(MDL, ByteCount) == 40);
const _: () = assert!(core::mem::offset_of!(MDL, ByteOffset) == 44);

/// `PFN_NUMBER` (`ULONG_PTR` on 64-bit Windows).
pub type PFN_NUMBER = usize;

pub const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
pub const MDL_PAGES_LOCKED: i16 = 0x0002;
pub const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;
pub const MDL_ALLOCATED_FIXED_SIZE: i16 = 0x0008;
pub const MDL_PARTIAL: i16 = 0x0010;
pub const MDL_PARTIAL_HAS_BEEN_MAPPED: i16 = 0x0020;
pub const MDL_IO_PAGE_READ: i16 = 0x0040;
pub const MDL_WRITE_OPERATION: i16 = 0x0080;
pub const MDL_PARENT_MAPPED_SYSTEM_VA: i16 = 0x0100;
pub const MDL_FREE_EXTRA_PTES: i16 = 0x0200;
pub const MDL_DESCRIBES_AWE: i16 = 0x0400;
pub const MDL_IO_SPACE: i16 = 0x0800;
pub const MDL_NETWORK_HEADER: i16 = 0x1000;
pub const MDL_MAPPING_CAN_FAIL: i16 = 0x2000;
pub const MDL_ALLOCATED_MUST_SUCCEED: i16 = 0x4000;
#[allow(clippy::cast_possible_wrap)]
pub const MDL_INTERNAL: i16 = 0x8000_u16 as i16;

/// `MEMORY_CACHING_TYPE`.
pub type MEMORY_CACHING_TYPE = i32;
pub const MmNonCached: MEMORY_CACHING_TYPE = 0;
pub const MmCached: MEMORY_CACHING_TYPE = 1;

/// `MM_PAGE_PRIORITY` values (low bits of the `Priority` argument).
pub const LowPagePriority: u32 = 0;
pub const NormalPagePriority: u32 = 16;
pub const HighPagePriority: u32 = 32;
/// `MdlMappingNoWrite`: OR into `Priority` (Windows 8+).
pub const MdlMappingNoWrite: u32 = 0x8000_0000;
/// `MdlMappingNoExecute`: OR into `Priority` (Windows 8+); required by the NX-pool policy.
pub const MdlMappingNoExecute: u32 = 0x4000_0000;

/// `PAGE_SIZE` on x64 and ARM64.
pub const PAGE_SIZE: usize = 0x1000;

#[cfg_attr(target_os = "windows", link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// `IoAllocateMdl`. IRQL <= DISPATCH_LEVEL. Describes `length` bytes at `virtual_address`; with a
    /// null `irp` the MDL is free-standing. Null on failure.
    pub fn IoAllocateMdl(
        virtual_address: *mut c_void,
        length: u32,
        secondary_buffer: BOOLEAN,
        charge_quota: BOOLEAN,
        irp: *mut IRP,
    ) -> *mut MDL;
    /// `IoFreeMdl`. IRQL <= DISPATCH_LEVEL. Not for MDLs from `NdisAllocateMdl` (use `NdisFreeMdl`).
    pub fn IoFreeMdl(mdl: *mut MDL);
    /// `MmBuildMdlForNonPagedPool`. IRQL <= DISPATCH_LEVEL. Fills the PFN array of an MDL that
    /// describes non-paged pool and sets `MDL_SOURCE_IS_NONPAGED_POOL`.
    pub fn MmBuildMdlForNonPagedPool(mdl: *mut MDL);
    /// `MmMapLockedPagesSpecifyCache`. IRQL <= DISPATCH_LEVEL for `KernelMode` (<= APC_LEVEL for
    /// `UserMode`). With `bug_check_on_failure == 0` returns null on failure.
    pub fn MmMapLockedPagesSpecifyCache(
        mdl: *mut MDL,
        access_mode: KPROCESSOR_MODE,
        cache_type: MEMORY_CACHING_TYPE,
        requested_address: *mut c_void,
        bug_check_on_failure: u32,
        priority: u32,
    ) -> *mut c_void;
    /// `MmUnmapLockedPages`. IRQL <= DISPATCH_LEVEL.
    pub fn MmUnmapLockedPages(base_address: *mut c_void, mdl: *mut MDL);
}

/// `MmGetSystemAddressForMdlSafe(Mdl, Priority)`: a macro in `wdm.h`. Returns the existing system
/// mapping if the MDL is already mapped or describes non-paged pool, else maps it with
/// `MmMapLockedPagesSpecifyCache(Mdl, KernelMode, MmCached, NULL, FALSE, Priority)`. Null on
/// failure. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `mdl` must point to a valid MDL whose pages are locked (or non-paged).
#[inline]
pub unsafe fn MmGetSystemAddressForMdlSafe(mdl: *mut MDL, priority: u32) -> *mut c_void {
    // SAFETY: the caller guarantees `mdl` is valid for reads.
    let flags = unsafe { (*mdl).MdlFlags };
    if flags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
        // SAFETY: as above.
        unsafe { (*mdl).MappedSystemVa }
    } else {
        // SAFETY: the caller guarantees the pages are locked, which is this function's contract.
        unsafe {
            MmMapLockedPagesSpecifyCache(
                mdl,
                super::ntos::KernelMode,
                MmCached,
                core::ptr::null_mut(),
                0,
                priority,
            )
        }
    }
}

/// `MmGetMdlVirtualAddress(Mdl)`: macro, `StartVa + ByteOffset`. Any IRQL.
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[inline]
pub unsafe fn MmGetMdlVirtualAddress(mdl: *const MDL) -> *mut c_void {
    // SAFETY: the caller guarantees `mdl` is valid for reads.
    let start = unsafe { (*mdl).StartVa };
    // SAFETY: as above.
    let offset = unsafe { (*mdl).ByteOffset };
    start.cast::<u8>().wrapping_add(offset as usize).cast()
}

/// `MmGetMdlByteCount(Mdl)`: macro. Any IRQL.
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[inline]
pub unsafe fn MmGetMdlByteCount(mdl: *const MDL) -> u32 {
    // SAFETY: the caller guarantees `mdl` is valid for reads.
    unsafe { (*mdl).ByteCount }
}

/// `MmGetMdlByteOffset(Mdl)`: macro. Any IRQL.
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[inline]
pub unsafe fn MmGetMdlByteOffset(mdl: *const MDL) -> u32 {
    // SAFETY: the caller guarantees `mdl` is valid for reads.
    unsafe { (*mdl).ByteOffset }
}

/// `ADDRESS_AND_SIZE_TO_SPAN_PAGES(Va, Size)`: number of pages spanned.
#[inline]
pub const fn ADDRESS_AND_SIZE_TO_SPAN_PAGES(va: usize, size: usize) -> usize {
    ((va & (PAGE_SIZE - 1)) + size).div_ceil(PAGE_SIZE)
}

/// `MmSizeOfMdl(Base, Length)` as the header computes it: `sizeof(MDL)` plus one `PFN_NUMBER` per
/// spanned page.
#[inline]
pub const fn MmSizeOfMdl(va: usize, length: usize) -> usize {
    core::mem::size_of::<MDL>()
        + core::mem::size_of::<PFN_NUMBER>() * ADDRESS_AND_SIZE_TO_SPAN_PAGES(va, length)
}
