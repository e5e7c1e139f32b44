//! NBL, NB and MDL simulation: positive round trips and one negative test per verifier rule, calling the
//! kernel functions through the drivers' own `kernel::ffi` declarations, inside a driver context.
#![allow(non_snake_case)]

use std::ffi::c_void;
use std::ptr::null_mut;

use kernel::ffi::mdl::{self as kmdl, MmGetSystemAddressForMdlSafe, MDL, MDL_SOURCE_IS_NONPAGED_POOL};
use kernel::ffi::nbl::{
    self as k, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS, NET_BUFFER, NET_BUFFER_LIST,
    NET_BUFFER_LIST_POOL_PARAMETERS, NET_BUFFER_POOL_PARAMETERS,
};
use kernel::ffi::ndis::{NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_DEFAULT, NDIS_STATUS_SUCCESS};
use kernel::ffi::ntos::{
    DRIVER_OBJECT, NTSTATUS, PASSIVE_LEVEL, STATUS_SUCCESS, STATUS_UNSUCCESSFUL, UNICODE_STRING,
};
use winsim::context::call_driver;
use winsim::{DriverId, Machine};

const TAG: u32 = u32::from_le_bytes(*b"tNbl");

/// Runs `f` as driver 1 at `PASSIVE_LEVEL`.
fn as_driver<R>(f: impl FnOnce() -> R) -> R {
    call_driver(DriverId(1), PASSIVE_LEVEL, "test", f)
}

fn names(machine: Machine) -> Vec<&'static str> {
    machine.shutdown().iter().map(|v| v.rule.name()).collect()
}

// ---- safe wrappers over the imports, as a driver would call them ----

fn nbl_pool(allocate_nb: bool) -> NDIS_HANDLE {
    let params = NET_BUFFER_LIST_POOL_PARAMETERS {
        Header: NDIS_OBJECT_HEADER { Type: NDIS_OBJECT_TYPE_DEFAULT, Revision: 1, Size: 16 },
        ProtocolId: 0,
        fAllocateNetBuffer: u8::from(allocate_nb),
        ContextSize: 0,
        PoolTag: TAG,
        DataSize: 0,
    };
    // SAFETY: valid parameters for the call.
    let pool = unsafe { k::NdisAllocateNetBufferListPool(null_mut(), &raw const params) };
    assert!(!pool.is_null());
    pool
}

fn nb_pool() -> NDIS_HANDLE {
    let params = NET_BUFFER_POOL_PARAMETERS {
        Header: NDIS_OBJECT_HEADER { Type: NDIS_OBJECT_TYPE_DEFAULT, Revision: 1, Size: 12 },
        PoolTag: TAG,
        DataSize: 0,
    };
    // SAFETY: valid parameters for the call.
    let pool = unsafe { k::NdisAllocateNetBufferPool(null_mut(), &raw const params) };
    assert!(!pool.is_null());
    pool
}

fn free_nbl_pool(pool: NDIS_HANDLE) {
    // SAFETY: the simulation validates the handle.
    unsafe { k::NdisFreeNetBufferListPool(pool) };
}

fn free_nb_pool(pool: NDIS_HANDLE) {
    // SAFETY: the simulation validates the handle.
    unsafe { k::NdisFreeNetBufferPool(pool) };
}

fn mdl(buffer: &mut [u8], start: usize, len: usize) -> *mut MDL {
    let va = buffer[start..start + len].as_mut_ptr().cast::<c_void>();
    // SAFETY: the buffer outlives the MDL in every test.
    let m = unsafe { k::NdisAllocateMdl(null_mut(), va, u32::try_from(len).unwrap()) };
    assert!(!m.is_null());
    m
}

/// Chains MDLs over `buffers`, each `(start, len)` into its own buffer.
fn chain(buffers: &mut [Vec<u8>], ranges: &[(usize, usize)]) -> Vec<*mut MDL> {
    let mdls: Vec<*mut MDL> = buffers.iter_mut().zip(ranges).map(|(b, &(s, l))| mdl(b, s, l)).collect();
    for pair in mdls.windows(2) {
        // SAFETY: live MDLs from NdisAllocateMdl.
        unsafe { (*pair[0]).Next = pair[1] };
    }
    mdls
}

fn free_mdls(mdls: &[*mut MDL]) {
    for &m in mdls {
        // SAFETY: the simulation validates the MDL.
        unsafe { k::NdisFreeMdl(m) };
    }
}

fn nbl_with_nb(pool: NDIS_HANDLE, first: *mut MDL, offset: u32, len: usize) -> *mut NET_BUFFER_LIST {
    // SAFETY: a live pool and MDL chain.
    let nbl = unsafe { k::NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, first, offset, len) };
    assert!(!nbl.is_null());
    nbl
}

fn free_nbl(nbl: *mut NET_BUFFER_LIST) {
    // SAFETY: the simulation validates the NBL.
    unsafe { k::NdisFreeNetBufferList(nbl) };
}

fn first_nb(nbl: *mut NET_BUFFER_LIST) -> *mut NET_BUFFER {
    // SAFETY: a live NBL.
    unsafe { k::NET_BUFFER_LIST_FIRST_NB(nbl) }
}

fn length(nb: *mut NET_BUFFER) -> u32 {
    // SAFETY: a live NB.
    unsafe { k::NET_BUFFER_DATA_LENGTH(nb) }
}

fn offset(nb: *mut NET_BUFFER) -> u32 {
    // SAFETY: a live NB.
    unsafe { k::NET_BUFFER_DATA_OFFSET(nb) }
}

fn nb_ref<'a>(nb: *mut NET_BUFFER) -> &'a NET_BUFFER {
    // SAFETY: a live NB for the test's duration.
    unsafe { &*nb }
}

fn nbl_ref<'a>(nbl: *mut NET_BUFFER_LIST) -> &'a NET_BUFFER_LIST {
    // SAFETY: a live NBL for the test's duration.
    unsafe { &*nbl }
}

/// All used data of `nb`, through `NdisGetDataBuffer` with storage.
fn data(nb: *mut NET_BUFFER) -> Vec<u8> {
    let len = length(nb);
    let mut storage = vec![0u8; len as usize];
    // SAFETY: `storage` holds `len` bytes.
    let p = unsafe { k::NdisGetDataBuffer(nb, len, storage.as_mut_ptr().cast(), 1, 0) };
    assert!(!p.is_null());
    // SAFETY: NdisGetDataBuffer returned `len` readable bytes.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len as usize) }.to_vec()
}

fn clone(nbl: *mut NET_BUFFER_LIST, pool: NDIS_HANDLE, flags: u32) -> *mut NET_BUFFER_LIST {
    // SAFETY: a live NBL and pool.
    let c = unsafe { k::NdisAllocateCloneNetBufferList(nbl, pool, null_mut(), flags) };
    assert!(!c.is_null());
    c
}

fn free_clone(nbl: *mut NET_BUFFER_LIST, flags: u32) {
    // SAFETY: the simulation validates the NBL.
    unsafe { k::NdisFreeCloneNetBufferList(nbl, flags) };
}

fn retreat(
    nb: *mut NET_BUFFER,
    delta: u32,
    backfill: u32,
    handler: k::NET_BUFFER_ALLOCATE_MDL_HANDLER,
) -> i32 {
    // SAFETY: a live NB.
    unsafe { k::NdisRetreatNetBufferDataStart(nb, delta, backfill, handler) }
}

fn advance(nb: *mut NET_BUFFER, delta: u32, free: bool, handler: k::NET_BUFFER_FREE_MDL_HANDLER) {
    // SAFETY: a live NB.
    unsafe { k::NdisAdvanceNetBufferDataStart(nb, delta, u8::from(free), handler) };
}

/// Three buffers of distinct bytes; MDLs at awkward offsets: 5 bytes at 3, 3 bytes at 1, 7 bytes at 6.
fn three_buffers() -> Vec<Vec<u8>> {
    (0u8..3).map(|b| (0u8..32).map(|i| b * 64 + i).collect()).collect()
}
const RANGES: [(usize, usize); 3] = [(3, 5), (1, 3), (6, 7)];

fn expected_bytes(buffers: &[Vec<u8>]) -> Vec<u8> {
    buffers.iter().zip(RANGES).flat_map(|(b, (s, l))| b[s..s + l].to_vec()).collect()
}

// ---- positive tests ----

#[test]
fn nbl_and_nb_round_trips_leave_nothing_behind() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let mdls = chain(&mut buffers, &RANGES);
        let nbl = nbl_with_nb(pool, mdls[0], 2, 12);
        let nb = first_nb(nbl);
        assert_eq!((offset(nb), length(nb)), (2, 12));
        // SAFETY: a live NB.
        assert_eq!(unsafe { k::NET_BUFFER_FIRST_MDL(nb) }, mdls[0]);
        assert_eq!(nb_ref(nb).CurrentMdl, mdls[0]);
        assert_eq!(nb_ref(nb).CurrentMdlOffset, 2);
        // SAFETY: a live NBL.
        assert_eq!(unsafe { k::NdisGetPoolFromNetBufferList(nbl) }, pool);
        assert_eq!(data(nb), expected_bytes(&buffers)[2..14]);
        assert!(winsim::nbl::is_live(nbl));
        free_nbl(nbl);
        assert!(!winsim::nbl::is_live(nbl));

        // An NBL without NBs, plus an NB from an NB pool, linked by the driver.
        let plain_pool = nbl_pool(false);
        let nbs = nb_pool();
        // SAFETY: live pools.
        let nbl = unsafe { k::NdisAllocateNetBufferList(plain_pool, 16, 8) };
        assert!(!nbl.is_null());
        // SAFETY: a live NBL with a 24-byte context area, 8 of them unused.
        assert_eq!(unsafe { (*nbl_ref(nbl).Context).Offset }, 8);
        // SAFETY: a live pool and MDL chain.
        let nb = unsafe { k::NdisAllocateNetBuffer(nbs, mdls[1], 0, 10) };
        assert!(!nb.is_null());
        // SAFETY: the driver links its own NB.
        unsafe { (*nbl).FirstNetBuffer = nb };
        assert_eq!(data(nb), expected_bytes(&buffers)[5..15]);
        // SAFETY: a live NBL.
        assert_eq!(unsafe { k::NdisAllocateNetBufferListContext(nbl, 32, 0, TAG) }, NDIS_STATUS_SUCCESS);
        // SAFETY: as above.
        unsafe { k::NdisFreeNetBufferListContext(nbl, 32) };
        // SAFETY: the driver unlinks its NB before freeing the NBL.
        unsafe { (*nbl).FirstNetBuffer = null_mut() };
        free_nbl(nbl);
        // SAFETY: a live NB.
        unsafe { k::NdisFreeNetBuffer(nb) };
        free_nb_pool(nbs);
        free_nbl_pool(plain_pool);
        free_nbl_pool(pool);
        free_mdls(&mdls);
        assert_eq!(winsim::nbl::outstanding_nbls(Some(DriverId(1))), 0);
        assert_eq!(winsim::mdl::outstanding(Some(DriverId(1))), 0);
    });
    assert!(names(machine).is_empty());
}

#[test]
fn get_data_buffer_contiguous_and_not() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let mdls = chain(&mut buffers, &RANGES);
        let all = expected_bytes(&buffers);
        // Data starts 1 byte into the first MDL: 4 bytes there are contiguous, 5 are not.
        let nbl = nbl_with_nb(pool, mdls[0], 1, 13);
        let nb = first_nb(nbl);
        // SAFETY: a live NB; no storage.
        let p = unsafe { k::NdisGetDataBuffer(nb, 4, null_mut(), 1, 0) };
        assert_eq!(p.cast::<u8>(), buffers[0][4..].as_mut_ptr());
        // SAFETY: as above.
        assert!(unsafe { k::NdisGetDataBuffer(nb, 5, null_mut(), 1, 0) }.is_null());
        let mut storage = [0u8; 9];
        // SAFETY: `storage` holds 9 bytes.
        let p = unsafe { k::NdisGetDataBuffer(nb, 9, storage.as_mut_ptr().cast(), 1, 0) };
        assert_eq!(p.cast::<u8>(), storage.as_mut_ptr());
        assert_eq!(storage[..], all[1..10]);
        // More than DataLength: null even with storage.
        let mut big = [0u8; 32];
        // SAFETY: `big` holds 32 bytes.
        assert!(unsafe { k::NdisGetDataBuffer(nb, 14, big.as_mut_ptr().cast(), 1, 0) }.is_null());
        // Misaligned in place with storage: copied.
        let in_place = buffers[0][4..].as_ptr() as usize;
        let align_offset = u32::try_from((in_place + 1) % 4).unwrap();
        // SAFETY: `storage` holds 9 bytes.
        let p = unsafe { k::NdisGetDataBuffer(nb, 2, storage.as_mut_ptr().cast(), 4, align_offset) };
        assert_eq!(p.cast::<u8>(), storage.as_mut_ptr());
        free_nbl(nbl);

        // Data offset exactly at the end of the first MDL: the second MDL is current, at offset 0.
        let nbl = nbl_with_nb(pool, mdls[0], 5, 10);
        let nb = first_nb(nbl);
        assert_eq!((nb_ref(nb).CurrentMdl, nb_ref(nb).CurrentMdlOffset), (mdls[1], 0));
        assert_eq!(data(nb), all[5..15]);
        free_nbl(nbl);
        free_nbl_pool(pool);
        free_mdls(&mdls);
    });
    assert!(names(machine).is_empty());
}

#[test]
fn clones_share_or_copy_mdls_and_count_children() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let clones = nbl_pool(false);
        let mdls = chain(&mut buffers, &RANGES);
        let parent = nbl_with_nb(pool, mdls[0], 4, 9);
        let pnb = first_nb(parent);

        let shared = clone(parent, clones, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS);
        assert_eq!(nbl_ref(parent).ChildRefCount, 1);
        assert_eq!(nbl_ref(shared).ParentNetBufferList, parent);
        let snb = first_nb(shared);
        assert_ne!(snb, pnb);
        assert_eq!(nb_ref(snb).MdlChain, nb_ref(pnb).MdlChain);
        assert_eq!((offset(snb), length(snb)), (4, 9));
        assert_eq!(data(snb), data(pnb));

        let copied = clone(parent, clones, 0);
        assert_eq!(nbl_ref(parent).ChildRefCount, 2);
        let cnb = first_nb(copied);
        assert_ne!(nb_ref(cnb).MdlChain, nb_ref(pnb).MdlChain);
        assert_eq!(data(cnb), data(pnb));

        free_clone(copied, 0);
        assert_eq!(nbl_ref(parent).ChildRefCount, 1);
        free_clone(shared, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS);
        assert_eq!(nbl_ref(parent).ChildRefCount, 0);
        free_nbl(parent);
        free_nbl_pool(clones);
        free_nbl_pool(pool);
        free_mdls(&mdls);
        assert_eq!(winsim::mdl::outstanding(Some(DriverId(1))), 0);
    });
    assert!(names(machine).is_empty());
}

#[test]
fn retreat_uses_data_offset_room_first() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let mdls = chain(&mut buffers, &RANGES);
        // 8 bytes of room: 5 in the first MDL, 3 in the second.
        let nbl = nbl_with_nb(pool, mdls[0], 8, 5);
        let nb = first_nb(nbl);
        assert_eq!(nb_ref(nb).CurrentMdl, mdls[2]);
        assert_eq!(retreat(nb, 6, 0, None), NDIS_STATUS_SUCCESS);
        assert_eq!((offset(nb), length(nb)), (2, 11));
        assert_eq!(nb_ref(nb).MdlChain, mdls[0]);
        assert_eq!((nb_ref(nb).CurrentMdl, nb_ref(nb).CurrentMdlOffset), (mdls[0], 2));
        assert_eq!(data(nb), expected_bytes(&buffers)[2..13]);
        advance(nb, 6, true, None);
        assert_eq!((offset(nb), length(nb)), (8, 5));
        assert_eq!(nb_ref(nb).CurrentMdl, mdls[2]);
        free_nbl(nbl);
        free_nbl_pool(pool);
        free_mdls(&mdls);
    });
    assert!(names(machine).is_empty());
}

#[test]
fn retreat_without_room_allocates_an_mdl_that_advance_frees() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let mdls = chain(&mut buffers, &RANGES);
        let before = winsim::mdl::outstanding(Some(DriverId(1)));
        // 2 bytes of room in the first MDL, 10 wanted, with 4 bytes of backfill.
        let nbl = nbl_with_nb(pool, mdls[0], 2, 9);
        let nb = first_nb(nbl);
        let original = data(nb);
        assert_eq!(retreat(nb, 10, 4, None), NDIS_STATUS_SUCCESS);
        assert_ne!(nb_ref(nb).MdlChain, mdls[0]);
        assert_eq!((offset(nb), length(nb)), (4, 19));
        // The new header space is contiguous and writable in place.
        // SAFETY: a live NB with 19 bytes; no storage needed for the first 10.
        let header = unsafe { k::NdisGetDataBuffer(nb, 10, null_mut(), 1, 0) }.cast::<u8>();
        assert!(!header.is_null());
        // SAFETY: 10 writable bytes in the NDIS-allocated MDL.
        unsafe { header.write_bytes(0xEE, 10) };
        let mut expected = vec![0xEE; 10];
        expected.extend_from_slice(&original);
        assert_eq!(data(nb), expected);
        assert!(winsim::mdl::outstanding(Some(DriverId(1))) > before);
        // A second retreat fits in the backfill.
        assert_eq!(retreat(nb, 4, 0, None), NDIS_STATUS_SUCCESS);
        assert_eq!(offset(nb), 0);
        advance(nb, 14, true, None);
        assert_eq!(nb_ref(nb).MdlChain, mdls[0]);
        assert_eq!((offset(nb), length(nb)), (2, 9));
        assert_eq!(data(nb), original);
        assert_eq!(winsim::mdl::outstanding(Some(DriverId(1))), before);
        free_nbl(nbl);
        free_nbl_pool(pool);
        free_mdls(&mdls);
    });
    assert!(names(machine).is_empty());
}

static mut HANDLER_BUFFER: [u8; 64] = [0; 64];

unsafe extern "system" fn allocate_mdl(size: *mut u32) -> *mut MDL {
    // SAFETY: NDIS passes a valid size; the test asks for at most 64 bytes.
    let wanted = unsafe { *size };
    assert!(wanted <= 64);
    // The static buffer is used by one test at a time (the machine lock serialises tests).
    let va = (&raw mut HANDLER_BUFFER).cast::<c_void>();
    // SAFETY: the static buffer outlives the MDL.
    unsafe { k::NdisAllocateMdl(null_mut(), va, 64) }
}

unsafe extern "system" fn free_mdl(mdl: *mut MDL) {
    // SAFETY: the MDL came from `allocate_mdl`.
    unsafe { k::NdisFreeMdl(mdl) };
}

#[test]
fn retreat_with_driver_handlers_round_trips() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let mdls = chain(&mut buffers, &RANGES);
        let nbl = nbl_with_nb(pool, mdls[0], 0, 15);
        let nb = first_nb(nbl);
        assert_eq!(retreat(nb, 20, 0, Some(allocate_mdl)), NDIS_STATUS_SUCCESS);
        assert_eq!((offset(nb), length(nb)), (44, 35));
        advance(nb, 20, true, Some(free_mdl));
        assert_eq!((nb_ref(nb).MdlChain, offset(nb), length(nb)), (mdls[0], 0, 15));
        free_nbl(nbl);
        free_nbl_pool(pool);
        free_mdls(&mdls);
        assert_eq!(winsim::mdl::outstanding(Some(DriverId(1))), 0);
    });
    assert!(names(machine).is_empty());
}

#[test]
fn copy_between_nbs_across_mdl_boundaries() {
    let machine = Machine::boot();
    let mut src_buffers = three_buffers();
    let mut dst_buffers: Vec<Vec<u8>> = vec![vec![0; 32]; 3];
    as_driver(|| {
        let pool = nbl_pool(true);
        let src_mdls = chain(&mut src_buffers, &RANGES);
        let dst_mdls = chain(&mut dst_buffers, &[(0, 2), (9, 6), (4, 8)]);
        let src = nbl_with_nb(pool, src_mdls[0], 1, 14);
        let dst = nbl_with_nb(pool, dst_mdls[0], 1, 15);
        let mut copied = 0u32;
        // SAFETY: live NBs and a valid count location.
        let status = unsafe {
            k::NdisCopyFromNetBufferToNetBuffer(first_nb(dst), 2, 10, first_nb(src), 3, &raw mut copied)
        };
        assert_eq!((status, copied), (NDIS_STATUS_SUCCESS, 10));
        let all = expected_bytes(&src_buffers);
        assert_eq!(data(first_nb(dst))[2..12], all[4..14]);
        // Clamped to what the source has left.
        // SAFETY: as above.
        let status = unsafe {
            k::NdisCopyFromNetBufferToNetBuffer(first_nb(dst), 0, 100, first_nb(src), 10, &raw mut copied)
        };
        assert_eq!((status, copied), (NDIS_STATUS_SUCCESS, 4));
        assert_eq!(data(first_nb(dst))[..4], all[11..15]);
        free_nbl(src);
        free_nbl(dst);
        free_nbl_pool(pool);
        free_mdls(&src_mdls);
        free_mdls(&dst_mdls);
    });
    assert!(names(machine).is_empty());
}

#[test]
fn io_mdls_are_built_and_mapped_at_their_address() {
    let machine = Machine::boot();
    let mut buffer = vec![7u8; 5000];
    as_driver(|| {
        let va = buffer[100..].as_mut_ptr().cast::<c_void>();
        // SAFETY: the buffer outlives the MDL.
        let m = unsafe { kmdl::IoAllocateMdl(va, 4800, 0, 0, null_mut()) };
        assert!(!m.is_null());
        // SAFETY: a live MDL.
        let r = unsafe { &*m };
        assert_eq!(r.ByteCount, 4800);
        assert_eq!(r.StartVa as usize % kmdl::PAGE_SIZE, 0);
        assert_eq!(r.StartVa as usize + r.ByteOffset as usize, va as usize);
        assert_eq!(usize::try_from(r.Size).unwrap(), kmdl::MmSizeOfMdl(va as usize, 4800));
        // SAFETY: a live MDL.
        assert_eq!(unsafe { MmGetSystemAddressForMdlSafe(m, kmdl::NormalPagePriority) }, va);
        // SAFETY: a live MDL.
        unsafe { kmdl::MmBuildMdlForNonPagedPool(m) };
        // SAFETY: a live MDL.
        let r = unsafe { &*m };
        assert_ne!(r.MdlFlags & MDL_SOURCE_IS_NONPAGED_POOL, 0);
        assert_eq!(r.MappedSystemVa, va);
        // SAFETY: a live MDL.
        unsafe { kmdl::IoFreeMdl(m) };
    });
    assert!(names(machine).is_empty());
}

// ---- negative tests: one per rule ----

#[test]
fn freeing_an_nbl_twice_is_a_double_free() {
    let machine = Machine::boot();
    as_driver(|| {
        let pool = nbl_pool(false);
        // SAFETY: a live pool.
        let nbl = unsafe { k::NdisAllocateNetBufferList(pool, 0, 0) };
        free_nbl(nbl);
        free_nbl(nbl);
        free_nbl_pool(pool);
    });
    assert_eq!(names(machine), ["nbl.double_free"]);
}

#[test]
fn freeing_an_nbl_ndis_never_allocated_is_a_double_free() {
    let machine = Machine::boot();
    // SAFETY: all-zero is a valid NET_BUFFER_LIST.
    let mut own: Box<NET_BUFFER_LIST> = Box::new(unsafe { std::mem::zeroed() });
    as_driver(|| free_nbl(&raw mut *own));
    assert_eq!(names(machine), ["nbl.double_free"]);
}

#[test]
fn freeing_a_parent_with_clones_outstanding() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let mdls = chain(&mut buffers, &RANGES);
        let parent = nbl_with_nb(pool, mdls[0], 0, 15);
        let child = clone(parent, pool, 0);
        free_nbl(parent);
        assert!(winsim::nbl::is_live(parent));
        free_clone(child, 0);
        free_nbl(parent);
        free_nbl_pool(pool);
        free_mdls(&mdls);
    });
    assert_eq!(names(machine), ["nbl.free_with_children"]);
}

#[test]
fn clone_freed_with_ndisfreenetbufferlist() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let mdls = chain(&mut buffers, &RANGES);
        let parent = nbl_with_nb(pool, mdls[0], 0, 15);
        let child = clone(parent, pool, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS);
        free_nbl(child);
        free_clone(child, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS);
        free_nbl(parent);
        free_nbl_pool(pool);
        free_mdls(&mdls);
    });
    assert_eq!(names(machine), ["nbl.clone_free_mismatch"]);
}

#[test]
fn non_clone_freed_with_ndisfreeclonenetbufferlist() {
    let machine = Machine::boot();
    as_driver(|| {
        let pool = nbl_pool(false);
        // SAFETY: a live pool.
        let nbl = unsafe { k::NdisAllocateNetBufferList(pool, 0, 0) };
        free_clone(nbl, 0);
        free_nbl(nbl);
        free_nbl_pool(pool);
    });
    assert_eq!(names(machine), ["nbl.clone_free_mismatch"]);
}

#[test]
fn clone_freed_with_other_flags() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let mdls = chain(&mut buffers, &RANGES);
        let parent = nbl_with_nb(pool, mdls[0], 0, 15);
        let child = clone(parent, pool, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS);
        free_clone(child, 0);
        assert_eq!(nbl_ref(parent).ChildRefCount, 0);
        free_nbl(parent);
        free_nbl_pool(pool);
        free_mdls(&mdls);
    });
    assert_eq!(names(machine), ["nbl.clone_free_mismatch"]);
}

#[test]
fn freeing_a_pool_with_nbls_outstanding() {
    let machine = Machine::boot();
    as_driver(|| {
        let pool = nbl_pool(false);
        // SAFETY: a live pool.
        let nbl = unsafe { k::NdisAllocateNetBufferList(pool, 0, 0) };
        free_nbl_pool(pool);
        free_nbl(nbl);
        free_nbl_pool(pool);
    });
    assert_eq!(names(machine), ["nbl.pool_leak"]);
}

static mut LEAK_POOL: usize = 0;

unsafe extern "system" fn leaky_entry(_: *mut DRIVER_OBJECT, _: *mut UNICODE_STRING) -> NTSTATUS {
    let pool = nbl_pool(false);
    // SAFETY: a live pool; the NBL is deliberately leaked.
    let nbl = unsafe { k::NdisAllocateNetBufferList(pool, 0, 0) };
    assert!(!nbl.is_null());
    STATUS_UNSUCCESSFUL
}

unsafe extern "system" fn unload_nothing(_: *mut DRIVER_OBJECT) {}

unsafe extern "system" fn entry_keeping_pool(driver: *mut DRIVER_OBJECT, _: *mut UNICODE_STRING) -> NTSTATUS {
    // SAFETY: the I/O manager's driver object.
    unsafe { (*driver).DriverUnload = Some(unload_nothing) };
    // SAFETY: the machine lock serialises tests; only this driver touches the static.
    unsafe { LEAK_POOL = nbl_pool(false) as usize };
    STATUS_SUCCESS
}

#[test]
fn failed_driver_entry_leaking_an_nbl() {
    let mut machine = Machine::boot();
    assert!(machine.load_driver("leaky", leaky_entry).is_err());
    assert_eq!(names(machine), ["nbl.pool_leak"]);
}

#[test]
fn unloading_with_an_nbl_pool_outstanding() {
    let mut machine = Machine::boot();
    let id = machine.load_driver("keeper", entry_keeping_pool).expect("loads");
    machine.unload_driver(id).expect("unloads");
    assert_eq!(names(machine), ["nbl.pool_leak"]);
}

#[test]
fn advancing_past_the_data() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let mdls = chain(&mut buffers, &RANGES);
        let nbl = nbl_with_nb(pool, mdls[0], 3, 4);
        let nb = first_nb(nbl);
        advance(nb, 5, false, None);
        assert_eq!((offset(nb), length(nb)), (3, 4));
        free_nbl(nbl);
        free_nbl_pool(pool);
        free_mdls(&mdls);
    });
    assert_eq!(names(machine), ["nbl.retreat_advance"]);
}

#[test]
fn freeing_an_ndis_retreat_mdl_with_the_drivers_handler() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let mdls = chain(&mut buffers, &RANGES);
        let nbl = nbl_with_nb(pool, mdls[0], 0, 15);
        let nb = first_nb(nbl);
        assert_eq!(retreat(nb, 8, 0, None), NDIS_STATUS_SUCCESS);
        advance(nb, 8, true, Some(free_mdl));
        assert_eq!(nb_ref(nb).MdlChain, mdls[0]);
        free_nbl(nbl);
        free_nbl_pool(pool);
        free_mdls(&mdls);
    });
    assert_eq!(names(machine), ["nbl.retreat_advance"]);
}

#[test]
fn nb_beyond_its_mdl_chain() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nb_pool();
        let mdls = chain(&mut buffers, &RANGES);
        // SAFETY: a live pool and chain (15 bytes); the range is deliberately too long.
        let nb = unsafe { k::NdisAllocateNetBuffer(pool, mdls[0], 4, 12) };
        assert!(nb.is_null());
        free_nb_pool(pool);
        free_mdls(&mdls);
    });
    assert_eq!(names(machine), ["nb.range"]);
}

#[test]
fn freeing_an_mdl_twice_or_with_the_wrong_routine() {
    let machine = Machine::boot();
    let mut buffer = vec![0u8; 64];
    as_driver(|| {
        let m = mdl(&mut buffer, 0, 64);
        // SAFETY: the simulation validates the MDL.
        unsafe { kmdl::IoFreeMdl(m) };
        // SAFETY: as above.
        unsafe { k::NdisFreeMdl(m) };
        // SAFETY: as above.
        unsafe { k::NdisFreeMdl(m) };
    });
    assert_eq!(names(machine), ["mdl.bad_free", "mdl.bad_free"]);
}

#[test]
fn freeing_another_drivers_nbl_is_refused() {
    let machine = Machine::boot();
    let (pool, nbl) = as_driver(|| {
        let pool = nbl_pool(false);
        // SAFETY: a live pool.
        (pool, unsafe { k::NdisAllocateNetBufferList(pool, 0, 0) })
    });
    call_driver(DriverId(2), PASSIVE_LEVEL, "other", || free_nbl(nbl));
    assert!(winsim::nbl::is_live(nbl));
    as_driver(|| {
        free_nbl(nbl);
        free_nbl_pool(pool);
    });
    assert_eq!(names(machine), ["nbl.double_free"]);
}

#[test]
fn nbl_list_retreat_and_advance_cover_every_nb() {
    let machine = Machine::boot();
    let mut buffers = three_buffers();
    as_driver(|| {
        let pool = nbl_pool(true);
        let nbs = nb_pool();
        let mdls = chain(&mut buffers, &RANGES);
        let nbl = nbl_with_nb(pool, mdls[0], 6, 4);
        // SAFETY: a live pool and chain.
        let second = unsafe { k::NdisAllocateNetBuffer(nbs, mdls[1], 1, 9) };
        // SAFETY: the driver links its own NB behind the preallocated one.
        unsafe { (*first_nb(nbl)).Next = second };
        // SAFETY: a live NBL whose NBs are valid.
        let status = unsafe { k::NdisRetreatNetBufferListDataStart(nbl, 3, 0, None, None) };
        assert_eq!(status, NDIS_STATUS_SUCCESS);
        assert_eq!((offset(first_nb(nbl)), length(first_nb(nbl))), (3, 7));
        assert_eq!(length(second), 12);
        assert_ne!(nb_ref(second).MdlChain, mdls[1]);
        // SAFETY: as above.
        unsafe { k::NdisAdvanceNetBufferListDataStart(nbl, 3, 1, None) };
        assert_eq!((offset(first_nb(nbl)), length(first_nb(nbl))), (6, 4));
        assert_eq!((nb_ref(second).MdlChain, offset(second), length(second)), (mdls[1], 1, 9));
        // SAFETY: the driver unlinks its NB before freeing the NBL.
        unsafe { (*first_nb(nbl)).Next = null_mut() };
        free_nbl(nbl);
        // SAFETY: a live NB.
        unsafe { k::NdisFreeNetBuffer(second) };
        free_nb_pool(nbs);
        free_nbl_pool(pool);
        free_mdls(&mdls);
        assert_eq!(winsim::mdl::outstanding(Some(DriverId(1))), 0);
    });
    assert!(names(machine).is_empty());
}

static mut FOREIGN_PARENT: usize = 0;

unsafe extern "system" fn entry_leaking_a_clone(
    driver: *mut DRIVER_OBJECT,
    _: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the I/O manager's driver object.
    unsafe { (*driver).DriverUnload = Some(unload_nothing) };
    // SAFETY: the machine lock serialises tests; the test set the static before loading.
    let parent = unsafe { FOREIGN_PARENT } as *mut NET_BUFFER_LIST;
    // SAFETY: a live NBL; NDIS's own pool; the clone is deliberately leaked.
    let clone = unsafe { k::NdisAllocateCloneNetBufferList(parent, null_mut(), null_mut(), 0) };
    assert!(!clone.is_null());
    STATUS_SUCCESS
}

#[test]
fn unloading_with_a_clone_outstanding_releases_the_parent() {
    let mut machine = Machine::boot();
    let mut buffers = three_buffers();
    // The parent belongs to no driver (as a simulated miniport's NBL would).
    let pool = nbl_pool(true);
    let mdls = chain(&mut buffers, &RANGES);
    let parent = nbl_with_nb(pool, mdls[0], 0, 15);
    // SAFETY: the machine lock serialises tests.
    unsafe { FOREIGN_PARENT = parent as usize };
    let id = machine.load_driver("cloner", entry_leaking_a_clone).expect("loads");
    assert_eq!(nbl_ref(parent).ChildRefCount, 1);
    machine.unload_driver(id).expect("unloads");
    assert_eq!(nbl_ref(parent).ChildRefCount, 0);
    free_nbl(parent);
    free_nbl_pool(pool);
    free_mdls(&mdls);
    assert_eq!(names(machine), ["nbl.pool_leak"]);
}
