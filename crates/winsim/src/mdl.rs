//! Memory descriptor lists: `IoAllocateMdl` / `IoFreeMdl`, `MmBuildMdlForNonPagedPool`,
//! `MmMapLockedPagesSpecifyCache` / `MmUnmapLockedPages`, `NdisAllocateMdl` / `NdisFreeMdl`, and the MDLs
//! the simulated NDIS allocates itself (retreat, clones).
//!
//! Every MDL is a real `MDL` header followed by its PFN array (`MmSizeOfMdl` bytes) from the Rust
//! allocator, with the field semantics of `wdm.h`: `StartVa` is the page-aligned start, `ByteOffset` the
//! offset into that page, `ByteCount` the length, and `MappedSystemVa` the system address once the MDL is
//! built for non-paged pool or mapped. Simulated memory is identity-mapped, so the system address is
//! always `StartVa + ByteOffset`. Each MDL is remembered with the routine family that allocated it and the
//! driver that owns it, so freeing through the wrong routine or twice is [`Rule::MdlBadFree`] and an MDL
//! still owned at unload is a leak.
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;

use kernel::ffi::mdl::{
    MmSizeOfMdl, MDL, MDL_MAPPED_TO_SYSTEM_VA, MDL_SOURCE_IS_NONPAGED_POOL, MEMORY_CACHING_TYPE, PAGE_SIZE,
};
use kernel::ffi::ndis::NDIS_HANDLE;
use kernel::ffi::ntos::{KernelMode, APC_LEVEL, BOOLEAN, DISPATCH_LEVEL, IRP, KPROCESSOR_MODE};

use crate::context::{current_driver, require_irql_at_most, DriverId};
use crate::verifier::{violation, Rule};

/// Which allocator an MDL came from; each must be freed by its reciprocal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MdlKind {
    /// `IoAllocateMdl`, freed by `IoFreeMdl`.
    Io,
    /// `NdisAllocateMdl`, freed by `NdisFreeMdl`.
    Ndis,
    /// Allocated by the simulated NDIS itself (retreat without a handler, clones without
    /// `NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS`); freed only by NDIS.
    Sim,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    kind: MdlKind,
    owner: Option<DriverId>,
    /// Bytes of the MDL allocation (header + PFN array).
    bytes: usize,
    /// A data buffer the simulation allocated with the MDL and frees with it: (address, length).
    data: Option<(usize, usize)>,
}

static MDLS: Mutex<BTreeMap<usize, Record>> = Mutex::new(BTreeMap::new());

const MDL_ALIGN: usize = 16;

fn mdl_layout(bytes: usize) -> Layout {
    Layout::from_size_align(bytes.max(1), MDL_ALIGN).expect("MDL sizes fit a Layout")
}

fn data_layout(len: usize) -> Layout {
    Layout::from_size_align(len.max(1), MDL_ALIGN).expect("buffer sizes fit a Layout")
}

/// Frees every MDL still tracked (a new machine starts empty).
pub(crate) fn reset() {
    let all = std::mem::take(&mut *crate::lock(&MDLS));
    for (address, record) in all {
        release(address, record);
    }
}

fn release(address: usize, record: Record) {
    if let Some((data, len)) = record.data {
        // SAFETY: the buffer was allocated in `allocate_with_buffer` with this layout and is untracked now.
        unsafe { dealloc(data as *mut u8, data_layout(len)) };
    }
    // SAFETY: the MDL was allocated in `allocate` with this layout and is untracked now.
    unsafe { dealloc(address as *mut u8, mdl_layout(record.bytes)) };
}

/// Builds an MDL describing `length` bytes at `va`, owned by the current driver.
fn allocate(va: *mut c_void, length: u32, kind: MdlKind, data: Option<(usize, usize)>) -> *mut MDL {
    let address = va as usize;
    let bytes = MmSizeOfMdl(address, length as usize);
    // SAFETY: the layout has nonzero size.
    let memory = unsafe { alloc_zeroed(mdl_layout(bytes)) };
    #[allow(clippy::cast_ptr_alignment)] // mdl_layout is 16-byte aligned
    let mdl = memory.cast::<MDL>();
    if mdl.is_null() {
        return mdl;
    }
    let start = address & !(PAGE_SIZE - 1);
    let header = MDL {
        Next: std::ptr::null_mut(),
        Size: i16::try_from(bytes).unwrap_or(i16::MAX),
        MdlFlags: 0,
        Process: std::ptr::null_mut(),
        MappedSystemVa: std::ptr::null_mut(),
        StartVa: start as *mut c_void,
        ByteCount: length,
        ByteOffset: u32::try_from(address - start).expect("a page offset fits u32"),
    };
    // SAFETY: `mdl` was just allocated with room for an MDL header and is suitably aligned.
    unsafe { mdl.write(header) };
    crate::lock(&MDLS).insert(mdl as usize, Record { kind, owner: current_driver(), bytes, data });
    mdl
}

/// Marks an MDL as describing non-paged memory (what `MmBuildMdlForNonPagedPool` does).
fn build_nonpaged(mdl: *mut MDL) {
    // SAFETY: the callers pass a valid MDL.
    let m = unsafe { &mut *mdl };
    m.MappedSystemVa = m.StartVa.cast::<u8>().wrapping_add(m.ByteOffset as usize).cast();
    m.MdlFlags |= MDL_SOURCE_IS_NONPAGED_POOL;
}

/// Allocates an MDL the simulated NDIS owns, describing `length` bytes at `va` (memory it does not own).
pub(crate) fn allocate_sim(va: *mut c_void, length: u32) -> *mut MDL {
    let mdl = allocate(va, length, MdlKind::Sim, None);
    if !mdl.is_null() {
        build_nonpaged(mdl);
    }
    mdl
}

/// Allocates a zeroed data buffer of `length` bytes and an MDL describing it, both owned by the simulated
/// NDIS (and charged to the current driver).
pub(crate) fn allocate_with_buffer(length: u32) -> *mut MDL {
    // SAFETY: the layout has nonzero size.
    let data = unsafe { alloc_zeroed(data_layout(length as usize)) };
    if data.is_null() {
        return std::ptr::null_mut();
    }
    let mdl = allocate(data.cast(), length, MdlKind::Sim, Some((data as usize, length as usize)));
    if mdl.is_null() {
        // SAFETY: allocated just above with this layout and never shared.
        unsafe { dealloc(data, data_layout(length as usize)) };
        return mdl;
    }
    build_nonpaged(mdl);
    mdl
}

/// The kind of a live MDL, if the simulation allocated it.
pub fn kind(mdl: *const MDL) -> Option<MdlKind> {
    crate::lock(&MDLS).get(&(mdl as usize)).map(|r| r.kind)
}

/// Live MDLs owned by `driver`.
pub fn outstanding(driver: Option<DriverId>) -> usize {
    crate::lock(&MDLS).values().filter(|r| r.owner == driver).count()
}

/// Frees an MDL if it is live and of `expected` kind; otherwise records [`Rule::MdlBadFree`] naming
/// `routine` and frees nothing.
fn free_checked(mdl: *mut MDL, expected: MdlKind, routine: &str) {
    let record = {
        let mut mdls = crate::lock(&MDLS);
        match mdls.get(&(mdl as usize)) {
            Some(r) if r.kind == expected => mdls.remove(&(mdl as usize)),
            Some(r) => {
                let actual = r.kind;
                drop(mdls);
                violation(
                    Rule::MdlBadFree,
                    format!("{routine}({mdl:p}): the MDL was allocated by {actual:?}, not {expected:?}"),
                );
                return;
            }
            None => None,
        }
    };
    match record {
        Some(record) => release(mdl as usize, record),
        None => violation(
            Rule::MdlBadFree,
            format!("{routine}({mdl:p}): not a live MDL (already freed, or never allocated)"),
        ),
    }
}

/// Frees an MDL the simulated NDIS allocated. Returns false (and frees nothing) if it is not one.
pub(crate) fn free_sim(mdl: *mut MDL) -> bool {
    let record = {
        let mut mdls = crate::lock(&MDLS);
        match mdls.get(&(mdl as usize)) {
            Some(r) if r.kind == MdlKind::Sim => mdls.remove(&(mdl as usize)),
            _ => None,
        }
    };
    match record {
        Some(record) => {
            release(mdl as usize, record);
            true
        }
        None => false,
    }
}

/// Called when `driver` has unloaded: every MDL it still owns is leaked pool (`IoAllocateMdl` and
/// `NdisAllocateMdl` allocate from non-paged pool). They are freed so the next test starts clean.
pub(crate) fn check_unload(driver: DriverId, name: &str) {
    let leaked: Vec<(usize, Record)> = {
        let mut mdls = crate::lock(&MDLS);
        let keys: Vec<usize> =
            mdls.iter().filter(|(_, r)| r.owner == Some(driver)).map(|(&k, _)| k).collect();
        keys.into_iter().filter_map(|k| mdls.remove(&k).map(|r| (k, r))).collect()
    };
    if !leaked.is_empty() {
        let kinds: Vec<String> = leaked.iter().map(|(a, r)| format!("{:?} MDL {a:#x}", r.kind)).collect();
        violation(
            Rule::PoolLeakAtUnload,
            format!("{name} unloaded with {} MDL(s) outstanding: {}", leaked.len(), kinds.join(", ")),
        );
    }
    for (address, record) in leaked {
        release(address, record);
    }
}

/// `IoAllocateMdl`. IRQL <= `DISPATCH_LEVEL`. Only free-standing MDLs (null `irp`) are simulated.
///
/// # Safety
/// `virtual_address` must describe `length` bytes of memory that outlive the MDL.
#[no_mangle]
pub unsafe extern "system" fn IoAllocateMdl(
    virtual_address: *mut c_void,
    length: u32,
    _secondary_buffer: BOOLEAN,
    _charge_quota: BOOLEAN,
    irp: *mut IRP,
) -> *mut MDL {
    if !require_irql_at_most(DISPATCH_LEVEL, "IoAllocateMdl") {
        return std::ptr::null_mut();
    }
    if !irp.is_null() {
        violation(Rule::NotSimulated, "IoAllocateMdl with an IRP (MDL chained to Irp->MdlAddress)");
        return std::ptr::null_mut();
    }
    if crate::pool::driver_allocation_fails() {
        return std::ptr::null_mut();
    }
    allocate(virtual_address, length, MdlKind::Io, None)
}

/// `IoFreeMdl`. IRQL <= `DISPATCH_LEVEL`. Only for MDLs from `IoAllocateMdl`.
///
/// # Safety
/// `mdl` is validated before it is freed.
#[no_mangle]
pub unsafe extern "system" fn IoFreeMdl(mdl: *mut MDL) {
    if require_irql_at_most(DISPATCH_LEVEL, "IoFreeMdl") {
        free_checked(mdl, MdlKind::Io, "IoFreeMdl");
    }
}

/// `MmBuildMdlForNonPagedPool`: sets `MappedSystemVa` and `MDL_SOURCE_IS_NONPAGED_POOL`.
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[no_mangle]
pub unsafe extern "system" fn MmBuildMdlForNonPagedPool(mdl: *mut MDL) {
    if require_irql_at_most(DISPATCH_LEVEL, "MmBuildMdlForNonPagedPool") {
        build_nonpaged(mdl);
    }
}

/// `MmMapLockedPagesSpecifyCache`: returns the MDL's system address (`StartVa + ByteOffset`; simulated
/// memory is identity-mapped) and sets `MDL_MAPPED_TO_SYSTEM_VA`. `KernelMode` at IRQL <= `DISPATCH_LEVEL`,
/// `UserMode` at <= `APC_LEVEL` (only `KernelMode` is simulated).
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[no_mangle]
pub unsafe extern "system" fn MmMapLockedPagesSpecifyCache(
    mdl: *mut MDL,
    access_mode: KPROCESSOR_MODE,
    _cache_type: MEMORY_CACHING_TYPE,
    _requested_address: *mut c_void,
    _bug_check_on_failure: u32,
    _priority: u32,
) -> *mut c_void {
    let max = if access_mode == KernelMode { DISPATCH_LEVEL } else { APC_LEVEL };
    if !require_irql_at_most(max, "MmMapLockedPagesSpecifyCache") {
        return std::ptr::null_mut();
    }
    if access_mode != KernelMode {
        violation(Rule::NotSimulated, "MmMapLockedPagesSpecifyCache(UserMode)");
        return std::ptr::null_mut();
    }
    // SAFETY: the caller passes a valid MDL.
    let m = unsafe { &mut *mdl };
    let va: *mut c_void = m.StartVa.cast::<u8>().wrapping_add(m.ByteOffset as usize).cast();
    if m.MdlFlags & MDL_SOURCE_IS_NONPAGED_POOL == 0 {
        m.MappedSystemVa = va;
        m.MdlFlags |= MDL_MAPPED_TO_SYSTEM_VA;
    }
    va
}

/// `MmUnmapLockedPages`: clears `MDL_MAPPED_TO_SYSTEM_VA`.
///
/// # Safety
/// `mdl` must point to a valid MDL.
#[no_mangle]
pub unsafe extern "system" fn MmUnmapLockedPages(_base_address: *mut c_void, mdl: *mut MDL) {
    if !require_irql_at_most(DISPATCH_LEVEL, "MmUnmapLockedPages") {
        return;
    }
    // SAFETY: the caller passes a valid MDL.
    let m = unsafe { &mut *mdl };
    if m.MdlFlags & MDL_MAPPED_TO_SYSTEM_VA != 0 {
        m.MdlFlags &= !MDL_MAPPED_TO_SYSTEM_VA;
        m.MappedSystemVa = std::ptr::null_mut();
    }
}

/// `NdisAllocateMdl`: an MDL for non-paged memory, already built (`MDL_SOURCE_IS_NONPAGED_POOL`).
/// IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `virtual_address` must describe `length` bytes of memory that outlive the MDL.
#[no_mangle]
pub unsafe extern "system" fn NdisAllocateMdl(
    _ndis_handle: NDIS_HANDLE,
    virtual_address: *mut c_void,
    length: u32,
) -> *mut MDL {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisAllocateMdl") {
        return std::ptr::null_mut();
    }
    let mdl = allocate(virtual_address, length, MdlKind::Ndis, None);
    if !mdl.is_null() {
        build_nonpaged(mdl);
    }
    mdl
}

/// `NdisFreeMdl`. IRQL <= `DISPATCH_LEVEL`. Only for MDLs from `NdisAllocateMdl`.
///
/// # Safety
/// `mdl` is validated before it is freed.
#[no_mangle]
pub unsafe extern "system" fn NdisFreeMdl(mdl: *mut MDL) {
    if require_irql_at_most(DISPATCH_LEVEL, "NdisFreeMdl") {
        free_checked(mdl, MdlKind::Ndis, "NdisFreeMdl");
    }
}
