//! Pool memory: `ExAllocatePool2` / `ExFreePoolWithTag` with tag tracking, per-driver ownership, leak
//! detection at unload, and allocation-failure injection.
use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;

use kernel::ffi::ntos::{DISPATCH_LEVEL, POOL_FLAGS, POOL_FLAG_UNINITIALIZED};

use crate::context::{current_driver, require_irql_at_most, DriverId};
use crate::verifier::{violation, Rule};

/// Pool blocks are 16-byte aligned on 64-bit Windows (ExAllocatePool2 documentation).
const POOL_ALIGNMENT: usize = 16;

#[derive(Clone, Copy, Debug)]
struct Block {
    tag: u32,
    size: usize,
    owner: Option<DriverId>,
}

/// When allocations fail on purpose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FaultPlan {
    /// Never.
    #[default]
    Never,
    /// Only the allocation with this 1-based sequence number (counting from when the plan was set):
    /// walking N over 1..=total exercises every allocation site one at a time.
    Nth(u64),
    /// Every allocation whose sequence number is a multiple of this.
    EveryNth(u64),
}

#[derive(Default)]
struct Pool {
    blocks: BTreeMap<usize, Block>,
    sequence: u64,
    plan: FaultPlan,
    injected: u64,
}

static POOL: Mutex<Pool> =
    Mutex::new(Pool { blocks: BTreeMap::new(), sequence: 0, plan: FaultPlan::Never, injected: 0 });

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size.max(1), POOL_ALIGNMENT).expect("pool block size fits a Layout")
}

/// A tag Windows accepts: nonzero, every byte printable ASCII (0x20..=0x7E).
fn tag_is_valid(tag: u32) -> bool {
    tag != 0 && tag.to_le_bytes().iter().all(|b| (0x20..=0x7e).contains(b))
}

/// Renders a tag as it reads in a pool dump.
pub fn tag_name(tag: u32) -> String {
    tag.to_le_bytes().iter().map(|&b| if (0x20..=0x7e).contains(&b) { b as char } else { '.' }).collect()
}

/// Sets the allocation-failure plan and restarts both counts.
pub fn set_fault_plan(plan: FaultPlan) {
    let mut pool = crate::lock(&POOL);
    pool.plan = plan;
    pool.sequence = 0;
    pool.injected = 0;
}

/// How many allocations were made since the plan was last set, and how many were failed on purpose.
pub fn counts() -> (u64, u64) {
    let pool = crate::lock(&POOL);
    (pool.sequence, pool.injected)
}

/// Live blocks owned by `driver` (or by no driver when `None`): (tag, size) pairs.
pub fn outstanding(driver: Option<DriverId>) -> Vec<(u32, usize)> {
    crate::lock(&POOL).blocks.values().filter(|b| b.owner == driver).map(|b| (b.tag, b.size)).collect()
}

/// Called when `driver` has unloaded: every block it still owns is a leak. The blocks are freed so the
/// next test starts clean.
pub(crate) fn check_unload(driver: DriverId, name: &str) {
    let leaked: Vec<(usize, Block)> = {
        let mut pool = crate::lock(&POOL);
        let keys: Vec<usize> =
            pool.blocks.iter().filter(|(_, b)| b.owner == Some(driver)).map(|(&k, _)| k).collect();
        keys.into_iter().filter_map(|k| pool.blocks.remove(&k).map(|b| (k, b))).collect()
    };
    if !leaked.is_empty() {
        let total: usize = leaked.iter().map(|(_, b)| b.size).sum();
        let tags: Vec<String> =
            leaked.iter().map(|(_, b)| format!("{}:{}", tag_name(b.tag), b.size)).collect();
        violation(
            Rule::PoolLeakAtUnload,
            format!(
                "{name} unloaded with {} pool block(s), {total} bytes: {}",
                leaked.len(),
                tags.join(", ")
            ),
        );
    }
    for (address, block) in leaked {
        // SAFETY: the block was allocated by ExAllocatePool2 below with this layout and is no longer
        // tracked, so nothing else frees it.
        unsafe { dealloc(address as *mut u8, layout(block.size)) };
    }
}

/// Whether an NDIS or MDL allocation a driver makes (`NdisAllocateNetBufferListPool`,
/// `NdisAllocateNetBufferList`, `NdisAllocateNetBufferAndNetBufferList`, `NdisAllocateCloneNetBufferList`,
/// `IoAllocateMdl`) fails on purpose: such calls count in the same sequence as `ExAllocatePool2` and fail
/// under the same [`FaultPlan`], so "every allocation site, one at a time" covers them too (each can
/// return NULL on Windows). Allocations the simulation makes for itself (no current driver) never fail.
pub(crate) fn driver_allocation_fails() -> bool {
    if current_driver().is_none() {
        return false;
    }
    let mut pool = crate::lock(&POOL);
    pool.sequence += 1;
    let fail = match pool.plan {
        FaultPlan::Never => false,
        FaultPlan::Nth(n) => pool.sequence == n,
        FaultPlan::EveryNth(n) => n != 0 && pool.sequence.is_multiple_of(n),
    };
    if fail {
        pool.injected += 1;
    }
    fail
}

/// `ExAllocatePool2`. IRQL <= DISPATCH_LEVEL. Zero-fills unless `POOL_FLAG_UNINITIALIZED`.
#[no_mangle]
pub extern "system" fn ExAllocatePool2(flags: POOL_FLAGS, number_of_bytes: usize, tag: u32) -> *mut c_void {
    if !require_irql_at_most(DISPATCH_LEVEL, "ExAllocatePool2") {
        return std::ptr::null_mut();
    }
    if !tag_is_valid(tag) {
        violation(
            Rule::PoolTagRequired,
            format!("ExAllocatePool2({number_of_bytes} bytes) with tag {tag:#010x}"),
        );
    }
    let mut pool = crate::lock(&POOL);
    pool.sequence += 1;
    let fail = match pool.plan {
        FaultPlan::Never => false,
        FaultPlan::Nth(n) => pool.sequence == n,
        FaultPlan::EveryNth(n) => n != 0 && pool.sequence.is_multiple_of(n),
    };
    if fail {
        pool.injected += 1;
        return std::ptr::null_mut();
    }
    let layout = layout(number_of_bytes);
    let memory = if flags & POOL_FLAG_UNINITIALIZED != 0 {
        // SAFETY: the layout has nonzero size.
        unsafe { alloc(layout) }
    } else {
        // SAFETY: the layout has nonzero size.
        unsafe { alloc_zeroed(layout) }
    };
    if !memory.is_null() {
        pool.blocks.insert(memory as usize, Block { tag, size: number_of_bytes, owner: current_driver() });
    }
    memory.cast()
}

/// `ExFreePoolWithTag`. IRQL <= DISPATCH_LEVEL. The tag must be the allocation's.
///
/// # Safety
/// `p` must be null or a pointer the caller owns; the simulation validates it before freeing.
#[no_mangle]
pub unsafe extern "system" fn ExFreePoolWithTag(p: *mut c_void, tag: u32) {
    if !require_irql_at_most(DISPATCH_LEVEL, "ExFreePoolWithTag") {
        return;
    }
    let block = {
        let mut pool = crate::lock(&POOL);
        match pool.blocks.get(&(p as usize)) {
            None => None,
            Some(block) if block.tag != tag => {
                let expected = block.tag;
                drop(pool);
                violation(
                    Rule::PoolFreeWrongTag,
                    format!(
                        "block {p:p} allocated with tag '{}' freed with '{}'",
                        tag_name(expected),
                        tag_name(tag)
                    ),
                );
                return;
            }
            Some(_) => pool.blocks.remove(&(p as usize)),
        }
    };
    match block {
        // SAFETY: the block was allocated above with this layout and has just been untracked.
        Some(block) => unsafe { dealloc(p.cast(), layout(block.size)) },
        None => violation(
            Rule::PoolFreeUnknown,
            format!("ExFreePoolWithTag({p:p}, '{}'): not a live pool block", tag_name(tag)),
        ),
    }
}
