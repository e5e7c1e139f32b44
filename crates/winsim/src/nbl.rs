//! `NET_BUFFER_LIST` / `NET_BUFFER`: pools, allocation and free, clones, NBL contexts, retreat/advance,
//! `NdisGetDataBuffer` and copies between NBs, as `ndis.sys` exports them.
//!
//! The structures are the Windows-x64 layouts of `kernel::ffi::nbl`, allocated (16-byte aligned) from the
//! Rust allocator and remembered per pool and per owning driver (the driver running when the allocation
//! was made), so the drivers' inline accessors work on them and the verifier can tell a live NBL from a
//! freed one. Field semantics follow `nbl.h`: an NB's used data starts `DataOffset` bytes into `MdlChain`,
//! `CurrentMdl`/`CurrentMdlOffset` locate that byte, and `DataLength` bytes follow it.
//!
//! Retreat (Retreat Operations, `NdisRetreatNetBufferDataStart` docs): the unused space in front of the data
//! (`DataOffset`) is used first; otherwise NDIS allocates `DataOffsetDelta + DataBackFill` bytes (through
//! the driver's `NetAllocateMdl` handler if given) and chains the new MDL in front. The simulation also
//! puts a partial MDL for the current MDL's used part behind it when the current MDL has unused bytes in
//! front, so the data stays contiguous in the chain, and remembers both MDLs so that an advance with
//! `FreeMdl` past the new MDL frees them and restores the original chain.
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::c_void;
use std::sync::Mutex;

use kernel::ffi::mdl::MDL;
use kernel::ffi::nbl::{
    NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS, NET_BUFFER, NET_BUFFER_ALLOCATE_MDL_HANDLER, NET_BUFFER_DATA_LENGTH,
    NET_BUFFER_FREE_MDL_HANDLER, NET_BUFFER_LIST, NET_BUFFER_LIST_CONTEXT, NET_BUFFER_LIST_POOL_PARAMETERS,
    NET_BUFFER_POOL_PARAMETERS,
};
use kernel::ffi::ndis::{
    NDIS_HANDLE, NDIS_OBJECT_TYPE_DEFAULT, NDIS_STATUS, NDIS_STATUS_FAILURE, NDIS_STATUS_RESOURCES,
    NDIS_STATUS_SUCCESS,
};
use kernel::ffi::ntos::{BOOLEAN, DISPATCH_LEVEL};

use crate::context::{current_driver, require_irql_at_most, DriverId};
use crate::mdl;
use crate::verifier::{violation, Rule};

#[derive(Debug)]
struct NblPool {
    owner: Option<DriverId>,
    tag: u32,
    allocate_nb: bool,
    live: BTreeSet<usize>,
}

#[derive(Debug)]
struct NbPool {
    owner: Option<DriverId>,
    tag: u32,
    live: BTreeSet<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NblKind {
    /// `NdisAllocateNetBufferList`: no NBs of its own.
    Plain,
    /// `NdisAllocateNetBufferAndNetBufferList`: one preallocated NB, freed with it.
    WithNb,
    /// `NdisAllocateCloneNetBufferList` with these flags, of this parent.
    Clone { flags: u32, parent: usize },
}

#[derive(Debug)]
struct NblRec {
    /// The NBL pool, or `None` for NDIS's own (a clone with a null pool handle).
    pool: Option<usize>,
    owner: Option<DriverId>,
    kind: NblKind,
    /// NBs freed with the NBL (preallocated or cloned).
    nbs: Vec<usize>,
}

#[derive(Debug)]
struct NbRec {
    /// The NB pool, if allocated by `NdisAllocateNetBuffer`.
    pool: Option<usize>,
    owner: Option<DriverId>,
    /// The NBL this NB was allocated with (preallocated or cloned); freed only with it.
    with_nbl: Option<usize>,
    /// MDLs the simulation allocated for a clone without `NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS`.
    clone_mdls: Vec<usize>,
}

/// One retreat that allocated an MDL.
#[derive(Debug)]
struct Retreat {
    owner: Option<DriverId>,
    saved_chain: usize,
    saved_data_offset: u32,
    /// `ByteCount` of the new MDL: an advance to a `DataOffset` at or past this leaves it unused.
    boundary: u32,
    new_mdl: usize,
    /// The new MDL came from the driver's `NetAllocateMdl` handler (else from NDIS).
    via_handler: bool,
    /// A partial MDL the simulation put behind the new one (see the module docs).
    partial: Option<usize>,
}

#[derive(Default)]
struct State {
    nbl_pools: BTreeMap<usize, NblPool>,
    nb_pools: BTreeMap<usize, NbPool>,
    nbls: BTreeMap<usize, NblRec>,
    nbs: BTreeMap<usize, NbRec>,
    freed_nbls: BTreeSet<usize>,
    freed_nbs: BTreeSet<usize>,
    /// Context blocks: address -> (data bytes, allocated with the NBL rather than by
    /// `NdisAllocateNetBufferListContext`).
    contexts: BTreeMap<usize, (usize, bool)>,
    retreats: BTreeMap<usize, Vec<Retreat>>,
    next_handle: usize,
    cancel_id: u8,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = crate::lock(&STATE);
    f(guard.get_or_insert_with(State::default))
}

fn new_handle(state: &mut State) -> usize {
    state.next_handle += 1;
    0x4e42_0000_0000 + state.next_handle * 0x100
}

fn nbl_layout() -> Layout {
    Layout::new::<NET_BUFFER_LIST>()
}

fn nb_layout() -> Layout {
    Layout::new::<NET_BUFFER>()
}

fn context_layout(data: usize) -> Layout {
    Layout::from_size_align(std::mem::size_of::<NET_BUFFER_LIST_CONTEXT>() + data, 16)
        .expect("context sizes fit a Layout")
}

// ---------------------------------------------------------------------------------------------
// Raw access. Every pointer handed to these is either one the simulation allocated and still tracks,
// or one the driver passed in under the export's contract (a valid NBL/NB/MDL).
// ---------------------------------------------------------------------------------------------

fn nbl_mut<'a>(nbl: *mut NET_BUFFER_LIST) -> &'a mut NET_BUFFER_LIST {
    // SAFETY: see the section comment: `nbl` is a valid, live NET_BUFFER_LIST.
    unsafe { &mut *nbl }
}

fn nb_mut<'a>(nb: *mut NET_BUFFER) -> &'a mut NET_BUFFER {
    // SAFETY: see the section comment: `nb` is a valid, live NET_BUFFER.
    unsafe { &mut *nb }
}

fn mdl_mut<'a>(m: *mut MDL) -> &'a mut MDL {
    // SAFETY: see the section comment: `m` is a valid, live MDL.
    unsafe { &mut *m }
}

fn data_length(nb: &NET_BUFFER) -> u32 {
    // SAFETY: the ULONG view of the DataLength union is a plain integer, always initialised.
    unsafe { nb.DataLength.DataLength }
}

fn set_data_length(nb: &mut NET_BUFFER, length: u32) {
    nb.DataLength = NET_BUFFER_DATA_LENGTH { stDataLength: length as usize };
}

fn mdl_va(m: &MDL) -> *mut u8 {
    m.StartVa.cast::<u8>().wrapping_add(m.ByteOffset as usize)
}

/// Total bytes described by an MDL chain.
fn chain_length(mut m: *mut MDL) -> u64 {
    let mut total = 0u64;
    while !m.is_null() {
        let r = mdl_mut(m);
        total += u64::from(r.ByteCount);
        m = r.Next;
    }
    total
}

/// Sets `CurrentMdl`/`CurrentMdlOffset` from `MdlChain` and `DataOffset`: the MDL holding the first used
/// byte (on an MDL boundary, the next MDL at offset 0).
fn locate(nb: &mut NET_BUFFER) {
    let mut m = nb.MdlChain;
    let mut offset = nb.DataOffset;
    while !m.is_null() {
        let r = mdl_mut(m);
        if offset < r.ByteCount || r.Next.is_null() {
            break;
        }
        offset -= r.ByteCount;
        m = r.Next;
    }
    nb.CurrentMdl = m;
    nb.CurrentMdlOffset = offset;
}

/// Initialises an NB to describe `length` bytes `offset` bytes into `chain`; false (and a
/// [`Rule::NbRange`] violation) if the range lies beyond the chain.
fn init_nb(nb: &mut NET_BUFFER, chain: *mut MDL, offset: u32, length: usize, routine: &str) -> bool {
    let Ok(length32) = u32::try_from(length) else {
        violation(Rule::NbRange, format!("{routine}: DataLength {length} does not fit a ULONG"));
        return false;
    };
    let available = chain_length(chain);
    if u64::from(offset) + u64::from(length32) > available {
        violation(
            Rule::NbRange,
            format!(
                "{routine}: DataOffset {offset} + DataLength {length} beyond the {available}-byte MDL chain"
            ),
        );
        return false;
    }
    nb.MdlChain = chain;
    nb.DataOffset = offset;
    set_data_length(nb, length32);
    locate(nb);
    true
}

/// The used-data bytes `[offset, offset + len)` of `nb` as (address, length) runs, or `None` if the MDL
/// chain ends first.
fn segments(nb: &NET_BUFFER, offset: u32, len: u32) -> Option<Vec<(*mut u8, usize)>> {
    let mut runs = Vec::new();
    let mut m = nb.CurrentMdl;
    let mut skip = u64::from(nb.CurrentMdlOffset) + u64::from(offset);
    let mut left = u64::from(len);
    while left > 0 {
        if m.is_null() {
            return None;
        }
        let r = mdl_mut(m);
        let count = u64::from(r.ByteCount);
        if skip >= count {
            skip -= count;
        } else {
            let take = (count - skip).min(left);
            let start = usize::try_from(skip).ok()?;
            runs.push((mdl_va(r).wrapping_add(start), usize::try_from(take).ok()?));
            left -= take;
            skip = 0;
        }
        m = r.Next;
    }
    Some(runs)
}

fn read_runs(runs: &[(*mut u8, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(p, n) in runs {
        // SAFETY: each run lies inside an MDL's described buffer, which the NB's owner keeps alive.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(p, n) });
    }
    out
}

fn write_runs(runs: &[(*mut u8, usize)], mut data: &[u8]) {
    for &(p, n) in runs {
        let (now, rest) = data.split_at(n.min(data.len()));
        // SAFETY: each run lies inside an MDL's described buffer; `now` is a separate Vec.
        unsafe { std::ptr::copy_nonoverlapping(now.as_ptr(), p, now.len()) };
        data = rest;
    }
}

// ---------------------------------------------------------------------------------------------
// Allocation and destruction (state locked by the caller)
// ---------------------------------------------------------------------------------------------

fn alloc_nbl_memory() -> *mut NET_BUFFER_LIST {
    // SAFETY: the layout has nonzero size; all-zero is a valid NET_BUFFER_LIST.
    unsafe { alloc_zeroed(nbl_layout()) }.cast()
}

fn alloc_nb_memory() -> *mut NET_BUFFER {
    // SAFETY: the layout has nonzero size; all-zero is a valid NET_BUFFER.
    unsafe { alloc_zeroed(nb_layout()) }.cast()
}

fn alloc_context(
    state: &mut State,
    data: usize,
    unused: usize,
    initial: bool,
) -> *mut NET_BUFFER_LIST_CONTEXT {
    // SAFETY: the layout has nonzero size (it includes the header).
    let memory = unsafe { alloc_zeroed(context_layout(data)) };
    #[allow(clippy::cast_ptr_alignment)] // context_layout is 16-byte aligned
    let ctx = memory.cast::<NET_BUFFER_LIST_CONTEXT>();
    if ctx.is_null() {
        return ctx;
    }
    // SAFETY: `ctx` was just allocated with room for the header.
    let header = unsafe { &mut *ctx };
    header.Size = u16::try_from(data).unwrap_or(u16::MAX);
    header.Offset = u16::try_from(unused).unwrap_or(u16::MAX);
    state.contexts.insert(ctx as usize, (data, initial));
    ctx
}

fn free_contexts(state: &mut State, nbl: &mut NET_BUFFER_LIST) {
    let mut ctx = nbl.Context;
    while !ctx.is_null() {
        // SAFETY: the chain consists of context blocks (ours, or the driver's own if it built one).
        let next = unsafe { (*ctx).Next };
        if let Some((data, _)) = state.contexts.remove(&(ctx as usize)) {
            // SAFETY: allocated in `alloc_context` with this layout and now untracked.
            unsafe { dealloc(ctx.cast(), context_layout(data)) };
        }
        ctx = next;
    }
    nbl.Context = std::ptr::null_mut();
}

fn new_nbl(
    state: &mut State,
    pool: Option<usize>,
    context_size: u16,
    backfill: u16,
    kind: NblKind,
) -> *mut NET_BUFFER_LIST {
    let nbl = alloc_nbl_memory();
    if nbl.is_null() {
        return nbl;
    }
    let n = nbl_mut(nbl);
    n.NdisPoolHandle = pool.unwrap_or(0) as NDIS_HANDLE;
    let total = usize::from(context_size) + usize::from(backfill);
    if total > 0 {
        n.Context = alloc_context(state, total, usize::from(backfill), true);
    }
    state.nbls.insert(nbl as usize, NblRec { pool, owner: current_driver(), kind, nbs: Vec::new() });
    state.freed_nbls.remove(&(nbl as usize));
    if let Some(p) = pool.and_then(|p| state.nbl_pools.get_mut(&p)) {
        p.live.insert(nbl as usize);
    }
    nbl
}

fn new_nb(state: &mut State, pool: Option<usize>, with_nbl: Option<usize>) -> *mut NET_BUFFER {
    let nb = alloc_nb_memory();
    if nb.is_null() {
        return nb;
    }
    nb_mut(nb).NdisPoolHandle = pool.unwrap_or(0) as NDIS_HANDLE;
    state.nbs.insert(nb as usize, NbRec { pool, owner: current_driver(), with_nbl, clone_mdls: Vec::new() });
    state.freed_nbs.remove(&(nb as usize));
    if let Some(p) = pool.and_then(|p| state.nb_pools.get_mut(&p)) {
        p.live.insert(nb as usize);
    }
    nb
}

/// Frees the MDLs NDIS allocated in the NB's outstanding retreats (handler-allocated ones stay the
/// driver's).
fn drop_retreats(state: &mut State, nb: usize) {
    for r in state.retreats.remove(&nb).unwrap_or_default() {
        if !r.via_handler {
            mdl::free_sim(r.new_mdl as *mut MDL);
        }
        if let Some(p) = r.partial {
            mdl::free_sim(p as *mut MDL);
        }
    }
}

fn destroy_nb(state: &mut State, nb: usize) {
    if let Some(rec) = state.nbs.remove(&nb) {
        for m in rec.clone_mdls {
            mdl::free_sim(m as *mut MDL);
        }
        if let Some(p) = rec.pool.and_then(|p| state.nb_pools.get_mut(&p)) {
            p.live.remove(&nb);
        }
    }
    drop_retreats(state, nb);
    state.freed_nbs.insert(nb);
    // SAFETY: allocated by `alloc_nb_memory` with this layout; its record is gone.
    unsafe { dealloc(nb as *mut u8, nb_layout()) };
}

fn destroy_nbl(state: &mut State, nbl: usize) {
    let Some(rec) = state.nbls.remove(&nbl) else { return };
    for nb in rec.nbs {
        destroy_nb(state, nb);
    }
    free_contexts(state, nbl_mut(nbl as *mut NET_BUFFER_LIST));
    if let Some(p) = rec.pool.and_then(|p| state.nbl_pools.get_mut(&p)) {
        p.live.remove(&nbl);
    }
    state.freed_nbls.insert(nbl);
    // SAFETY: allocated by `alloc_nbl_memory` with this layout; its record is gone.
    unsafe { dealloc(nbl as *mut u8, nbl_layout()) };
}

/// Frees everything (a new machine starts empty). Run before [`mdl::reset`].
pub(crate) fn reset() {
    let mut guard = crate::lock(&STATE);
    if let Some(mut state) = guard.take() {
        let nbls: Vec<usize> = state.nbls.keys().copied().collect();
        for nbl in nbls {
            destroy_nbl(&mut state, nbl);
        }
        let nbs: Vec<usize> = state.nbs.keys().copied().collect();
        for nb in nbs {
            destroy_nb(&mut state, nb);
        }
    }
}

/// NBLs (from any pool, clones included) allocated by `driver` and not yet freed.
pub fn outstanding_nbls(driver: Option<DriverId>) -> usize {
    with(|s| s.nbls.values().filter(|r| r.owner == driver).count())
}

/// Whether `nbl` is an NBL the simulated NDIS allocated and has not freed.
pub fn is_live(nbl: *const NET_BUFFER_LIST) -> bool {
    with(|s| s.nbls.contains_key(&(nbl as usize)))
}

/// Called when `driver` has unloaded (or its `DriverEntry` failed): every NBL, NB and pool it still owns
/// is [`Rule::NblPoolLeak`] (bug check 0x7C, `NDIS_BUGCHECK_LEAKED_NBL` 0x27), and every MDL it owns a
/// pool leak. Everything is freed so the next test starts clean.
pub(crate) fn check_unload(driver: DriverId, name: &str) {
    let me = Some(driver);
    let mut leaks = Vec::new();
    with(|s| {
        let nbls: Vec<usize> = s.nbls.iter().filter(|(_, r)| r.owner == me).map(|(&k, _)| k).collect();
        if !nbls.is_empty() {
            leaks.push(format!("{} NET_BUFFER_LIST(s)", nbls.len()));
        }
        for nbl in nbls {
            // A leaked clone no longer holds its parent (which may belong to someone else).
            if let Some(NblKind::Clone { parent, .. }) = s.nbls.get(&nbl).map(|r| r.kind) {
                if s.nbls.contains_key(&parent) {
                    nbl_mut(parent as *mut NET_BUFFER_LIST).ChildRefCount -= 1;
                }
            }
            destroy_nbl(s, nbl);
        }
        let nbs: Vec<usize> =
            s.nbs.iter().filter(|(_, r)| r.owner == me && r.with_nbl.is_none()).map(|(&k, _)| k).collect();
        if !nbs.is_empty() {
            leaks.push(format!("{} NET_BUFFER(s)", nbs.len()));
        }
        for nb in nbs {
            destroy_nb(s, nb);
        }
        let pools: Vec<usize> = s.nbl_pools.iter().filter(|(_, p)| p.owner == me).map(|(&k, _)| k).collect();
        for p in &pools {
            if let Some(pool) = s.nbl_pools.remove(p) {
                leaks
                    .push(format!("NET_BUFFER_LIST pool {p:#x} (tag '{}')", crate::pool::tag_name(pool.tag)));
            }
        }
        let pools: Vec<usize> = s.nb_pools.iter().filter(|(_, p)| p.owner == me).map(|(&k, _)| k).collect();
        for p in &pools {
            if let Some(pool) = s.nb_pools.remove(p) {
                leaks.push(format!("NET_BUFFER pool {p:#x} (tag '{}')", crate::pool::tag_name(pool.tag)));
            }
        }
        for list in s.retreats.values_mut() {
            list.retain(|r| r.owner != me);
        }
    });
    if !leaks.is_empty() {
        violation(Rule::NblPoolLeak, format!("{name} unloaded with {} outstanding", leaks.join(", ")));
    }
    mdl::check_unload(driver, name);
}

// ---------------------------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------------------------

fn header_ok(header: kernel::ffi::ndis::NDIS_OBJECT_HEADER, size: u16) -> bool {
    header.Type == NDIS_OBJECT_TYPE_DEFAULT && header.Revision >= 1 && header.Size >= size
}

/// `NdisAllocateNetBufferListPool`. IRQL <= `DISPATCH_LEVEL`. Null if the parameters' header is not
/// `NDIS_OBJECT_TYPE_DEFAULT`, revision 1, size >= 16.
///
/// # Safety
/// `parameters` must be null or point to valid parameters.
#[no_mangle]
pub unsafe extern "system" fn NdisAllocateNetBufferListPool(
    _ndis_handle: NDIS_HANDLE,
    parameters: *const NET_BUFFER_LIST_POOL_PARAMETERS,
) -> NDIS_HANDLE {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisAllocateNetBufferListPool") {
        return std::ptr::null_mut();
    }
    // SAFETY: the caller passes null or valid parameters.
    let Some(p) = (unsafe { parameters.as_ref() }) else { return std::ptr::null_mut() };
    if !header_ok(p.Header, 16) {
        return std::ptr::null_mut();
    }
    if crate::pool::driver_allocation_fails() {
        return std::ptr::null_mut();
    }
    with(|s| {
        let handle = new_handle(s);
        s.nbl_pools.insert(
            handle,
            NblPool {
                owner: current_driver(),
                tag: p.PoolTag,
                allocate_nb: p.fAllocateNetBuffer != 0,
                live: BTreeSet::new(),
            },
        );
        handle as NDIS_HANDLE
    })
}

/// `NdisFreeNetBufferListPool`. IRQL <= `DISPATCH_LEVEL`. Refused (with [`Rule::NblPoolLeak`]) while NBLs
/// from the pool are outstanding.
///
/// # Safety
/// `pool` is validated.
#[no_mangle]
pub unsafe extern "system" fn NdisFreeNetBufferListPool(pool: NDIS_HANDLE) {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisFreeNetBufferListPool") {
        return;
    }
    let outcome = with(|s| match s.nbl_pools.get(&(pool as usize)) {
        None => Err(None),
        Some(p) if !p.live.is_empty() => Err(Some(p.live.len())),
        Some(_) => {
            s.nbl_pools.remove(&(pool as usize));
            Ok(())
        }
    });
    match outcome {
        Ok(()) => {}
        Err(None) => violation(
            Rule::NdisBadHandle,
            format!("NdisFreeNetBufferListPool({pool:p}): not a live NET_BUFFER_LIST pool"),
        ),
        Err(Some(n)) => violation(
            Rule::NblPoolLeak,
            format!("NdisFreeNetBufferListPool({pool:p}) with {n} NET_BUFFER_LIST(s) still allocated"),
        ),
    }
}

/// `NdisAllocateNetBufferPool`. IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `parameters` must be null or point to valid parameters.
#[no_mangle]
pub unsafe extern "system" fn NdisAllocateNetBufferPool(
    _ndis_handle: NDIS_HANDLE,
    parameters: *const NET_BUFFER_POOL_PARAMETERS,
) -> NDIS_HANDLE {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisAllocateNetBufferPool") {
        return std::ptr::null_mut();
    }
    // SAFETY: the caller passes null or valid parameters.
    let Some(p) = (unsafe { parameters.as_ref() }) else { return std::ptr::null_mut() };
    if !header_ok(p.Header, 12) {
        return std::ptr::null_mut();
    }
    with(|s| {
        let handle = new_handle(s);
        s.nb_pools.insert(handle, NbPool { owner: current_driver(), tag: p.PoolTag, live: BTreeSet::new() });
        handle as NDIS_HANDLE
    })
}

/// `NdisFreeNetBufferPool`. IRQL <= `DISPATCH_LEVEL`. Refused while NBs from the pool are outstanding.
///
/// # Safety
/// `pool` is validated.
#[no_mangle]
pub unsafe extern "system" fn NdisFreeNetBufferPool(pool: NDIS_HANDLE) {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisFreeNetBufferPool") {
        return;
    }
    let outcome = with(|s| match s.nb_pools.get(&(pool as usize)) {
        None => Err(None),
        Some(p) if !p.live.is_empty() => Err(Some(p.live.len())),
        Some(_) => {
            s.nb_pools.remove(&(pool as usize));
            Ok(())
        }
    });
    match outcome {
        Ok(()) => {}
        Err(None) => violation(
            Rule::NdisBadHandle,
            format!("NdisFreeNetBufferPool({pool:p}): not a live NET_BUFFER pool"),
        ),
        Err(Some(n)) => violation(
            Rule::NblPoolLeak,
            format!("NdisFreeNetBufferPool({pool:p}) with {n} NET_BUFFER(s) still allocated"),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// NBL / NB allocation and free
// ---------------------------------------------------------------------------------------------

/// `NdisAllocateNetBufferList`. IRQL <= `DISPATCH_LEVEL`. The context area is `context_size +
/// context_backfill` bytes with `Offset = context_backfill`.
///
/// # Safety
/// `pool` is validated.
#[no_mangle]
pub unsafe extern "system" fn NdisAllocateNetBufferList(
    pool: NDIS_HANDLE,
    context_size: u16,
    context_backfill: u16,
) -> *mut NET_BUFFER_LIST {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisAllocateNetBufferList") {
        return std::ptr::null_mut();
    }
    if crate::pool::driver_allocation_fails() {
        return std::ptr::null_mut();
    }
    let nbl = with(|s| {
        if !s.nbl_pools.contains_key(&(pool as usize)) {
            return None;
        }
        Some(new_nbl(s, Some(pool as usize), context_size, context_backfill, NblKind::Plain))
    });
    nbl.unwrap_or_else(|| {
        violation(Rule::NdisBadHandle, format!("NdisAllocateNetBufferList({pool:p}): not a live NBL pool"));
        std::ptr::null_mut()
    })
}

/// `NdisAllocateNetBufferAndNetBufferList`. IRQL <= `DISPATCH_LEVEL`. The pool must have been created with
/// `fAllocateNetBuffer`; the NB describes `data_length` bytes `data_offset` bytes into `mdl_chain`.
///
/// # Safety
/// `pool` is validated; `mdl_chain` must be null or a valid MDL chain.
#[no_mangle]
pub unsafe extern "system" fn NdisAllocateNetBufferAndNetBufferList(
    pool: NDIS_HANDLE,
    context_size: u16,
    context_backfill: u16,
    mdl_chain: *mut MDL,
    data_offset: u32,
    data_length: usize,
) -> *mut NET_BUFFER_LIST {
    const ROUTINE: &str = "NdisAllocateNetBufferAndNetBufferList";
    if !require_irql_at_most(DISPATCH_LEVEL, ROUTINE) {
        return std::ptr::null_mut();
    }
    match with(|s| s.nbl_pools.get(&(pool as usize)).map(|p| p.allocate_nb)) {
        None => {
            violation(Rule::NdisBadHandle, format!("{ROUTINE}({pool:p}): not a live NBL pool"));
            return std::ptr::null_mut();
        }
        Some(false) => {
            violation(
                Rule::NdisBadHandle,
                format!("{ROUTINE}({pool:p}): the pool was not created with fAllocateNetBuffer"),
            );
            return std::ptr::null_mut();
        }
        Some(true) => {}
    }
    let mut probe = NbProbe::default();
    if !init_nb(&mut probe.0, mdl_chain, data_offset, data_length, ROUTINE) {
        return std::ptr::null_mut();
    }
    if crate::pool::driver_allocation_fails() {
        return std::ptr::null_mut();
    }
    with(|s| {
        let nbl = new_nbl(s, Some(pool as usize), context_size, context_backfill, NblKind::WithNb);
        if nbl.is_null() {
            return nbl;
        }
        let nb = new_nb(s, None, Some(nbl as usize));
        if nb.is_null() {
            destroy_nbl(s, nbl as usize);
            return std::ptr::null_mut();
        }
        init_nb(nb_mut(nb), mdl_chain, data_offset, data_length, ROUTINE);
        nbl_mut(nbl).FirstNetBuffer = nb;
        if let Some(rec) = s.nbls.get_mut(&(nbl as usize)) {
            rec.nbs.push(nb as usize);
        }
        nbl
    })
}

/// A zeroed `NET_BUFFER` on the Rust heap, used to validate ranges before allocating.
struct NbProbe(Box<NET_BUFFER>);

impl Default for NbProbe {
    fn default() -> Self {
        // SAFETY: all-zero is a valid NET_BUFFER (null pointers, zero lengths).
        NbProbe(Box::new(unsafe { std::mem::zeroed() }))
    }
}

/// Why a free was refused.
enum Refused {
    NotLive { freed_before: bool },
    Foreign(Option<DriverId>),
    Clone,
    NotClone,
    Children(i32),
    WithNbl(usize),
}

fn report(rule_routine: &str, what: *const c_void, refused: &Refused) {
    let (rule, detail) = match refused {
        Refused::NotLive { freed_before: true } => (Rule::NblDoubleFree, "already freed".to_string()),
        Refused::NotLive { freed_before: false } => {
            (Rule::NblDoubleFree, "not allocated from an NDIS pool".to_string())
        }
        Refused::Foreign(owner) => {
            (Rule::NblDoubleFree, format!("allocated by another driver ({owner:?}), not the caller"))
        }
        Refused::Clone => (
            Rule::NblCloneFreeMismatch,
            "a clone from NdisAllocateCloneNetBufferList; free it with NdisFreeCloneNetBufferList"
                .to_string(),
        ),
        Refused::NotClone => (
            Rule::NblCloneFreeMismatch,
            "not a clone from NdisAllocateCloneNetBufferList; free it with NdisFreeNetBufferList".to_string(),
        ),
        Refused::Children(n) => {
            (Rule::NblFreeWithChildren, format!("ChildRefCount is {n}: clones outstanding"))
        }
        Refused::WithNbl(nbl) => {
            (Rule::NblDoubleFree, format!("allocated with NET_BUFFER_LIST {nbl:#x} and freed only with it"))
        }
    };
    violation(rule, format!("{rule_routine}({what:p}): {detail}"));
}

fn check_nbl_free(s: &State, nbl: *mut NET_BUFFER_LIST, clone: bool) -> Result<NblKind, Refused> {
    let Some(rec) = s.nbls.get(&(nbl as usize)) else {
        return Err(Refused::NotLive { freed_before: s.freed_nbls.contains(&(nbl as usize)) });
    };
    if let (Some(owner), Some(me)) = (rec.owner, current_driver()) {
        if owner != me {
            return Err(Refused::Foreign(Some(owner)));
        }
    }
    match (rec.kind, clone) {
        (NblKind::Clone { .. }, false) => return Err(Refused::Clone),
        (NblKind::Plain | NblKind::WithNb, true) => return Err(Refused::NotClone),
        _ => {}
    }
    let children = nbl_mut(nbl).ChildRefCount;
    if children > 0 {
        return Err(Refused::Children(children));
    }
    Ok(rec.kind)
}

/// `NdisFreeNetBufferList`. IRQL <= `DISPATCH_LEVEL`. Frees a preallocated NB with the NBL; MDLs and NBs
/// allocated separately are the caller's.
///
/// # Safety
/// `nbl` is validated before it is freed.
#[no_mangle]
pub unsafe extern "system" fn NdisFreeNetBufferList(nbl: *mut NET_BUFFER_LIST) {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisFreeNetBufferList") {
        return;
    }
    let result = with(|s| {
        let r = check_nbl_free(s, nbl, false);
        if r.is_ok() {
            destroy_nbl(s, nbl as usize);
        }
        r
    });
    match result {
        Err(refused) => report("NdisFreeNetBufferList", nbl.cast_const().cast(), &refused),
        Ok(_) => crate::datapath::forget(nbl as usize),
    }
}

/// `NdisAllocateNetBuffer`. IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `pool` is validated; `mdl_chain` must be null or a valid MDL chain.
#[no_mangle]
pub unsafe extern "system" fn NdisAllocateNetBuffer(
    pool: NDIS_HANDLE,
    mdl_chain: *mut MDL,
    data_offset: u32,
    data_length: usize,
) -> *mut NET_BUFFER {
    const ROUTINE: &str = "NdisAllocateNetBuffer";
    if !require_irql_at_most(DISPATCH_LEVEL, ROUTINE) {
        return std::ptr::null_mut();
    }
    if !with(|s| s.nb_pools.contains_key(&(pool as usize))) {
        violation(Rule::NdisBadHandle, format!("{ROUTINE}({pool:p}): not a live NET_BUFFER pool"));
        return std::ptr::null_mut();
    }
    let mut probe = NbProbe::default();
    if !init_nb(&mut probe.0, mdl_chain, data_offset, data_length, ROUTINE) {
        return std::ptr::null_mut();
    }
    with(|s| {
        let nb = new_nb(s, Some(pool as usize), None);
        if !nb.is_null() {
            init_nb(nb_mut(nb), mdl_chain, data_offset, data_length, ROUTINE);
        }
        nb
    })
}

/// `NdisFreeNetBuffer`. IRQL <= `DISPATCH_LEVEL`. Only for NBs from `NdisAllocateNetBuffer`.
///
/// # Safety
/// `nb` is validated before it is freed.
#[no_mangle]
pub unsafe extern "system" fn NdisFreeNetBuffer(nb: *mut NET_BUFFER) {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisFreeNetBuffer") {
        return;
    }
    let result = with(|s| {
        let Some(rec) = s.nbs.get(&(nb as usize)) else {
            return Err(Refused::NotLive { freed_before: s.freed_nbs.contains(&(nb as usize)) });
        };
        if let Some(nbl) = rec.with_nbl {
            return Err(Refused::WithNbl(nbl));
        }
        if let (Some(owner), Some(me)) = (rec.owner, current_driver()) {
            if owner != me {
                return Err(Refused::Foreign(Some(owner)));
            }
        }
        destroy_nb(s, nb as usize);
        Ok(())
    });
    if let Err(refused) = result {
        report("NdisFreeNetBuffer", nb.cast_const().cast(), &refused);
    }
}

/// `NdisGetPoolFromNetBufferList`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[no_mangle]
pub unsafe extern "system" fn NdisGetPoolFromNetBufferList(nbl: *const NET_BUFFER_LIST) -> NDIS_HANDLE {
    nbl_mut(nbl.cast_mut()).NdisPoolHandle
}

// ---------------------------------------------------------------------------------------------
// Clones
// ---------------------------------------------------------------------------------------------

/// `NdisAllocateCloneNetBufferList`. IRQL <= `DISPATCH_LEVEL`. A new NBL whose NBs describe the original's
/// data: with `NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS` they share its MDL chains, otherwise NDIS allocates
/// MDLs referencing the same buffers. Sets `ParentNetBufferList` and increments the original's
/// `ChildRefCount` (decremented by `NdisFreeCloneNetBufferList`). A null pool handle uses NDIS's own pool.
///
/// # Safety
/// `original` must point to a valid NBL with valid NBs and MDLs; pools are validated.
#[no_mangle]
pub unsafe extern "system" fn NdisAllocateCloneNetBufferList(
    original: *mut NET_BUFFER_LIST,
    nbl_pool: NDIS_HANDLE,
    nb_pool: NDIS_HANDLE,
    allocate_clone_flags: u32,
) -> *mut NET_BUFFER_LIST {
    const ROUTINE: &str = "NdisAllocateCloneNetBufferList";
    if !require_irql_at_most(DISPATCH_LEVEL, ROUTINE) {
        return std::ptr::null_mut();
    }
    let nbl_pool = (!nbl_pool.is_null()).then_some(nbl_pool as usize);
    let nb_pool = (!nb_pool.is_null()).then_some(nb_pool as usize);
    let bad = with(|s| {
        nbl_pool.is_some_and(|p| !s.nbl_pools.contains_key(&p))
            || nb_pool.is_some_and(|p| !s.nb_pools.contains_key(&p))
    });
    if bad {
        violation(
            Rule::NdisBadHandle,
            format!("{ROUTINE}: pool handle {nbl_pool:x?}/{nb_pool:x?} is not live"),
        );
        return std::ptr::null_mut();
    }
    if crate::pool::driver_allocation_fails() {
        return std::ptr::null_mut();
    }
    let share = allocate_clone_flags & NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS != 0;
    with(|s| {
        let kind = NblKind::Clone { flags: allocate_clone_flags, parent: original as usize };
        let clone = new_nbl(s, nbl_pool, 0, 0, kind);
        if clone.is_null() {
            return clone;
        }
        nbl_mut(clone).ParentNetBufferList = original;
        let mut link: *mut *mut NET_BUFFER = &raw mut nbl_mut(clone).FirstNetBuffer;
        let mut src = nbl_mut(original).FirstNetBuffer;
        while !src.is_null() {
            let from = nb_mut(src);
            let nb = new_nb(s, nb_pool, Some(clone as usize));
            if nb.is_null() {
                destroy_nbl(s, clone as usize);
                return std::ptr::null_mut();
            }
            if let Some(rec) = s.nbls.get_mut(&(clone as usize)) {
                rec.nbs.push(nb as usize);
            }
            let to = nb_mut(nb);
            set_data_length(to, data_length(from));
            if share {
                to.MdlChain = from.MdlChain;
                to.DataOffset = from.DataOffset;
            } else {
                // New MDLs for the current MDL onward, referencing the same buffers.
                let mut mdls = Vec::new();
                let mut m = from.CurrentMdl;
                let mut tail: *mut *mut MDL = &raw mut to.MdlChain;
                while !m.is_null() {
                    let r = mdl_mut(m);
                    let copy = mdl::allocate_sim(mdl_va(r).cast(), r.ByteCount);
                    if copy.is_null() {
                        break;
                    }
                    mdls.push(copy as usize);
                    // SAFETY: `tail` points at the NB's MdlChain or the previous copy's Next.
                    unsafe { tail.write(copy) };
                    tail = &raw mut mdl_mut(copy).Next;
                    m = r.Next;
                }
                to.DataOffset = from.CurrentMdlOffset;
                if let Some(rec) = s.nbs.get_mut(&(nb as usize)) {
                    rec.clone_mdls = mdls;
                }
            }
            locate(to);
            // SAFETY: `link` points at the clone's FirstNetBuffer or the previous NB's Next.
            unsafe { link.write(nb) };
            link = &raw mut to.Next;
            src = from.Next;
        }
        nbl_mut(original).ChildRefCount += 1;
        clone
    })
}

/// `NdisFreeCloneNetBufferList`. IRQL <= `DISPATCH_LEVEL`. `free_clone_flags` must equal the allocation's
/// flags ([`Rule::NblCloneFreeMismatch`]; the clone is still freed as allocated).
///
/// # Safety
/// `clone` is validated before it is freed.
#[no_mangle]
pub unsafe extern "system" fn NdisFreeCloneNetBufferList(clone: *mut NET_BUFFER_LIST, free_clone_flags: u32) {
    const ROUTINE: &str = "NdisFreeCloneNetBufferList";
    if !require_irql_at_most(DISPATCH_LEVEL, ROUTINE) {
        return;
    }
    let result = with(|s| {
        let kind = check_nbl_free(s, clone, true)?;
        destroy_nbl(s, clone as usize);
        Ok(kind)
    });
    match result {
        Err(refused) => report(ROUTINE, clone.cast_const().cast(), &refused),
        Ok(NblKind::Clone { flags, parent }) => {
            crate::datapath::forget(clone as usize);
            let p = nbl_mut(parent as *mut NET_BUFFER_LIST);
            p.ChildRefCount -= 1;
            if flags != free_clone_flags {
                violation(
                    Rule::NblCloneFreeMismatch,
                    format!("{ROUTINE}({clone:p}, {free_clone_flags:#x}): allocated with flags {flags:#x}"),
                );
            }
        }
        Ok(_) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Contexts and info
// ---------------------------------------------------------------------------------------------

/// `NdisAllocateNetBufferListContext`: uses the unused context space (`Offset`) if it suffices, else
/// chains a new context block of `context_size + context_backfill` bytes. IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[no_mangle]
pub unsafe extern "system" fn NdisAllocateNetBufferListContext(
    nbl: *mut NET_BUFFER_LIST,
    context_size: u16,
    context_backfill: u16,
    _pool_tag: u32,
) -> NDIS_STATUS {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisAllocateNetBufferListContext") {
        return NDIS_STATUS_FAILURE;
    }
    let n = nbl_mut(nbl);
    if !n.Context.is_null() {
        // SAFETY: a non-null Context is a valid context header.
        let ctx = unsafe { &mut *n.Context };
        if ctx.Offset >= context_size {
            ctx.Offset -= context_size;
            return NDIS_STATUS_SUCCESS;
        }
    }
    let total = usize::from(context_size) + usize::from(context_backfill);
    let ctx = with(|s| alloc_context(s, total, usize::from(context_backfill), false));
    if ctx.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    // SAFETY: just allocated.
    unsafe { (*ctx).Next = n.Context };
    n.Context = ctx;
    NDIS_STATUS_SUCCESS
}

/// `NdisFreeNetBufferListContext`: returns `context_size` bytes to the unused space; a block chained by
/// `NdisAllocateNetBufferListContext` is freed once wholly unused. IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// `nbl` must point to a valid NBL with a context.
#[no_mangle]
pub unsafe extern "system" fn NdisFreeNetBufferListContext(nbl: *mut NET_BUFFER_LIST, context_size: u16) {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisFreeNetBufferListContext") {
        return;
    }
    let n = nbl_mut(nbl);
    if n.Context.is_null() {
        violation(Rule::NbRange, format!("NdisFreeNetBufferListContext({nbl:p}): the NBL has no context"));
        return;
    }
    // SAFETY: a non-null Context is a valid context header.
    let ctx = unsafe { &mut *n.Context };
    let offset = u32::from(ctx.Offset) + u32::from(context_size);
    if offset > u32::from(ctx.Size) {
        violation(
            Rule::NbRange,
            format!(
                "NdisFreeNetBufferListContext({nbl:p}, {context_size}): only {} context bytes in use",
                ctx.Size - ctx.Offset
            ),
        );
        return;
    }
    ctx.Offset = u16::try_from(offset).unwrap_or(u16::MAX);
    if ctx.Offset == ctx.Size {
        let block = n.Context;
        let next = ctx.Next;
        let freed = with(|s| match s.contexts.get(&(block as usize)) {
            Some(&(data, false)) => {
                s.contexts.remove(&(block as usize));
                Some(data)
            }
            _ => None,
        });
        if let Some(data) = freed {
            n.Context = next;
            // SAFETY: allocated in `alloc_context` with this layout and now untracked.
            unsafe { dealloc(block.cast(), context_layout(data)) };
        }
    }
}

/// `NdisCopySendNetBufferListInfo`: copies the per-NBL info. IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// Both must point to valid NBLs.
#[no_mangle]
pub unsafe extern "system" fn NdisCopySendNetBufferListInfo(
    dest: *mut NET_BUFFER_LIST,
    src: *const NET_BUFFER_LIST,
) {
    nbl_mut(dest).NetBufferListInfo = nbl_mut(src.cast_mut()).NetBufferListInfo;
}

/// `NdisCopyReceiveNetBufferListInfo`: copies the per-NBL info. IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// Both must point to valid NBLs.
#[no_mangle]
pub unsafe extern "system" fn NdisCopyReceiveNetBufferListInfo(
    dest: *mut NET_BUFFER_LIST,
    src: *const NET_BUFFER_LIST,
) {
    nbl_mut(dest).NetBufferListInfo = nbl_mut(src.cast_mut()).NetBufferListInfo;
}

/// `NdisGeneratePartialCancelId`: a fresh byte for the top of cancel IDs.
#[no_mangle]
pub extern "system" fn NdisGeneratePartialCancelId() -> u8 {
    with(|s| {
        s.cancel_id = s.cancel_id.wrapping_add(1);
        s.cancel_id
    })
}

// ---------------------------------------------------------------------------------------------
// Retreat / advance
// ---------------------------------------------------------------------------------------------

/// `NdisRetreatNetBufferDataStart`. IRQL <= `DISPATCH_LEVEL`. See the module docs.
///
/// # Safety
/// `nb` must point to a valid NB with a valid MDL chain; the handler, if any, must be callable.
#[no_mangle]
pub unsafe extern "system" fn NdisRetreatNetBufferDataStart(
    nb: *mut NET_BUFFER,
    data_offset_delta: u32,
    data_backfill: u32,
    allocate_mdl_handler: NET_BUFFER_ALLOCATE_MDL_HANDLER,
) -> NDIS_STATUS {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisRetreatNetBufferDataStart") {
        return NDIS_STATUS_FAILURE;
    }
    let n = nb_mut(nb);
    let Some(new_length) = data_length(n).checked_add(data_offset_delta) else {
        return NDIS_STATUS_FAILURE;
    };
    if data_offset_delta <= n.DataOffset {
        n.DataOffset -= data_offset_delta;
        set_data_length(n, new_length);
        locate(n);
        return NDIS_STATUS_SUCCESS;
    }
    let Some(mut size) = data_offset_delta.checked_add(data_backfill) else {
        return NDIS_STATUS_FAILURE;
    };
    let (new_mdl, via_handler) = match allocate_mdl_handler {
        // SAFETY: the driver's NetAllocateMdl handler, called as NDIS calls it.
        Some(handler) => (unsafe { handler(&raw mut size) }, true),
        None => (mdl::allocate_with_buffer(size), false),
    };
    if new_mdl.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    let boundary = mdl_mut(new_mdl).ByteCount;
    if boundary < data_offset_delta {
        if !via_handler {
            mdl::free_sim(new_mdl);
        }
        return NDIS_STATUS_FAILURE;
    }
    // Keep the data contiguous: the current MDL's unused front bytes must not sit inside the data.
    let current = n.CurrentMdl;
    let mut partial = None;
    let behind = if current.is_null() {
        std::ptr::null_mut()
    } else if n.CurrentMdlOffset == 0 {
        current
    } else {
        let r = mdl_mut(current);
        let p = mdl::allocate_sim(
            mdl_va(r).wrapping_add(n.CurrentMdlOffset as usize).cast(),
            r.ByteCount - n.CurrentMdlOffset,
        );
        if p.is_null() {
            if !via_handler {
                mdl::free_sim(new_mdl);
            }
            return NDIS_STATUS_RESOURCES;
        }
        mdl_mut(p).Next = r.Next;
        partial = Some(p as usize);
        p
    };
    mdl_mut(new_mdl).Next = behind;
    let record = Retreat {
        owner: current_driver(),
        saved_chain: n.MdlChain as usize,
        saved_data_offset: n.DataOffset,
        boundary,
        new_mdl: new_mdl as usize,
        via_handler,
        partial,
    };
    with(|s| s.retreats.entry(nb as usize).or_default().push(record));
    n.MdlChain = new_mdl;
    n.DataOffset = boundary - data_offset_delta;
    set_data_length(n, new_length);
    locate(n);
    NDIS_STATUS_SUCCESS
}

/// `NdisAdvanceNetBufferDataStart`. IRQL <= `DISPATCH_LEVEL`. With `free_mdl`, MDLs a retreat allocated
/// that the data no longer reaches are freed (through `free_mdl_handler` when the retreat's came from a
/// `NetAllocateMdl` handler) and the chain before that retreat is restored.
///
/// # Safety
/// `nb` must point to a valid NB; the handler, if any, must be callable.
#[no_mangle]
pub unsafe extern "system" fn NdisAdvanceNetBufferDataStart(
    nb: *mut NET_BUFFER,
    data_offset_delta: u32,
    free_mdl: BOOLEAN,
    free_mdl_handler: NET_BUFFER_FREE_MDL_HANDLER,
) {
    const ROUTINE: &str = "NdisAdvanceNetBufferDataStart";
    if !require_irql_at_most(DISPATCH_LEVEL, ROUTINE) {
        return;
    }
    let n = nb_mut(nb);
    let length = data_length(n);
    if data_offset_delta > length {
        violation(
            Rule::NblRetreatAdvance,
            format!("{ROUTINE}({nb:p}, {data_offset_delta}): only {length} bytes of used data"),
        );
        return;
    }
    n.DataOffset += data_offset_delta;
    set_data_length(n, length - data_offset_delta);
    if free_mdl != 0 {
        loop {
            let popped = with(|s| {
                let list = s.retreats.get_mut(&(nb as usize))?;
                if list.last()?.boundary > n.DataOffset {
                    return None;
                }
                let r = list.pop();
                if list.is_empty() {
                    s.retreats.remove(&(nb as usize));
                }
                r
            });
            let Some(r) = popped else { break };
            n.MdlChain = r.saved_chain as *mut MDL;
            n.DataOffset = r.saved_data_offset + (n.DataOffset - r.boundary);
            if let Some(p) = r.partial {
                mdl::free_sim(p as *mut MDL);
            }
            let new_mdl = r.new_mdl as *mut MDL;
            match (r.via_handler, free_mdl_handler) {
                // SAFETY: the driver's NetFreeMdl handler, given back the MDL its NetAllocateMdl made.
                (true, Some(handler)) => unsafe { handler(new_mdl) },
                (true, None) => violation(
                    Rule::NblRetreatAdvance,
                    format!(
                        "{ROUTINE}({nb:p}): MDL {new_mdl:p} came from the driver's NetAllocateMdl but no NetFreeMdl was given"
                    ),
                ),
                (false, Some(_)) => {
                    violation(
                        Rule::NblRetreatAdvance,
                        format!(
                            "{ROUTINE}({nb:p}): NetFreeMdl given for MDL {new_mdl:p}, which NDIS allocated (no NetAllocateMdl at retreat)"
                        ),
                    );
                    mdl::free_sim(new_mdl);
                }
                (false, None) => {
                    mdl::free_sim(new_mdl);
                }
            }
        }
    }
    locate(n);
}

/// `NdisRetreatNetBufferListDataStart`: retreats every NB; on failure the NBs already retreated are
/// advanced back. IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// As for [`NdisRetreatNetBufferDataStart`], for every NB of `nbl`.
#[no_mangle]
pub unsafe extern "system" fn NdisRetreatNetBufferListDataStart(
    nbl: *mut NET_BUFFER_LIST,
    data_offset_delta: u32,
    data_backfill: u32,
    allocate_mdl_handler: NET_BUFFER_ALLOCATE_MDL_HANDLER,
    free_mdl_handler: NET_BUFFER_FREE_MDL_HANDLER,
) -> NDIS_STATUS {
    let mut nb = nbl_mut(nbl).FirstNetBuffer;
    while !nb.is_null() {
        // SAFETY: forwarded contract.
        let status = unsafe {
            NdisRetreatNetBufferDataStart(nb, data_offset_delta, data_backfill, allocate_mdl_handler)
        };
        if status != NDIS_STATUS_SUCCESS {
            let mut undo = nbl_mut(nbl).FirstNetBuffer;
            while undo != nb {
                // SAFETY: forwarded contract; these NBs were just retreated by `data_offset_delta`.
                unsafe { NdisAdvanceNetBufferDataStart(undo, data_offset_delta, 1, free_mdl_handler) };
                undo = nb_mut(undo).Next;
            }
            return status;
        }
        nb = nb_mut(nb).Next;
    }
    NDIS_STATUS_SUCCESS
}

/// `NdisAdvanceNetBufferListDataStart`: advances every NB. IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// As for [`NdisAdvanceNetBufferDataStart`], for every NB of `nbl`.
#[no_mangle]
pub unsafe extern "system" fn NdisAdvanceNetBufferListDataStart(
    nbl: *mut NET_BUFFER_LIST,
    data_offset_delta: u32,
    free_mdl: BOOLEAN,
    free_mdl_handler: NET_BUFFER_FREE_MDL_HANDLER,
) {
    let mut nb = nbl_mut(nbl).FirstNetBuffer;
    while !nb.is_null() {
        // SAFETY: forwarded contract.
        unsafe { NdisAdvanceNetBufferDataStart(nb, data_offset_delta, free_mdl, free_mdl_handler) };
        nb = nb_mut(nb).Next;
    }
}

// ---------------------------------------------------------------------------------------------
// Data access
// ---------------------------------------------------------------------------------------------

/// `NdisGetDataBuffer`. IRQL <= `DISPATCH_LEVEL`. A pointer into the current MDL if the `bytes_needed`
/// bytes at the data start lie in it and the address is `align_offset` modulo `align_multiple`; else
/// the bytes copied into `storage` (and `storage` returned); else null. Null also if the NB has fewer
/// than `bytes_needed` bytes.
///
/// # Safety
/// `nb` must point to a valid NB; `storage` must be null or valid for `bytes_needed` bytes of writes.
#[no_mangle]
pub unsafe extern "system" fn NdisGetDataBuffer(
    nb: *mut NET_BUFFER,
    bytes_needed: u32,
    storage: *mut c_void,
    align_multiple: u32,
    align_offset: u32,
) -> *mut c_void {
    if !require_irql_at_most(DISPATCH_LEVEL, "NdisGetDataBuffer") {
        return std::ptr::null_mut();
    }
    let n = nb_mut(nb);
    if bytes_needed > data_length(n) || n.CurrentMdl.is_null() {
        return std::ptr::null_mut();
    }
    let current = mdl_mut(n.CurrentMdl);
    let in_place = mdl_va(current).wrapping_add(n.CurrentMdlOffset as usize);
    let contiguous = u64::from(n.CurrentMdlOffset) + u64::from(bytes_needed) <= u64::from(current.ByteCount);
    let aligned =
        align_multiple <= 1 || (in_place as usize) % (align_multiple as usize) == align_offset as usize;
    if contiguous && aligned {
        return in_place.cast();
    }
    if storage.is_null() {
        return std::ptr::null_mut();
    }
    let Some(runs) = segments(n, 0, bytes_needed) else { return std::ptr::null_mut() };
    let bytes = read_runs(&runs);
    // SAFETY: the caller guarantees `storage` holds `bytes_needed` bytes; `bytes` is a separate Vec.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), storage.cast::<u8>(), bytes.len()) };
    storage
}

/// `NdisCopyFromNetBufferToNetBuffer`: copies up to `bytes_to_copy` bytes from `source`'s data at
/// `source_offset` to `destination`'s data at `destination_offset`, as many as both NBs' used data
/// allow; `bytes_copied` receives the count. IRQL <= `DISPATCH_LEVEL`.
///
/// # Safety
/// Both NBs must be valid; `bytes_copied` must be valid for writes.
#[no_mangle]
pub unsafe extern "system" fn NdisCopyFromNetBufferToNetBuffer(
    destination: *mut NET_BUFFER,
    destination_offset: u32,
    bytes_to_copy: u32,
    source: *const NET_BUFFER,
    source_offset: u32,
    bytes_copied: *mut u32,
) -> NDIS_STATUS {
    const ROUTINE: &str = "NdisCopyFromNetBufferToNetBuffer";
    // SAFETY: the caller passes a count location valid for writes.
    unsafe { bytes_copied.write(0) };
    if !require_irql_at_most(DISPATCH_LEVEL, ROUTINE) {
        return NDIS_STATUS_FAILURE;
    }
    let dst = nb_mut(destination);
    let src = nb_mut(source.cast_mut());
    let (dst_len, src_len) = (data_length(dst), data_length(src));
    if destination_offset > dst_len || source_offset > src_len {
        violation(
            Rule::NbRange,
            format!(
                "{ROUTINE}: offset {destination_offset} into {dst_len} destination bytes or {source_offset} into {src_len} source bytes"
            ),
        );
        return NDIS_STATUS_FAILURE;
    }
    let count = bytes_to_copy.min(dst_len - destination_offset).min(src_len - source_offset);
    let (Some(from), Some(to)) =
        (segments(src, source_offset, count), segments(dst, destination_offset, count))
    else {
        violation(Rule::NbRange, format!("{ROUTINE}: an NB's DataLength runs past its MDL chain"));
        return NDIS_STATUS_FAILURE;
    };
    write_runs(&to, &read_runs(&from));
    // SAFETY: as above.
    unsafe { bytes_copied.write(count) };
    NDIS_STATUS_SUCCESS
}
