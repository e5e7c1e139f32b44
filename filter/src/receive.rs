//! The receive path: `FilterReceiveNetBufferLists` / `FilterReturnNetBufferLists`, and the WSK
//! path's [`indicate_datagram`].
//!
//! # Data flow
//! Each received NBL is classified from its headers alone (read through the MDL chain into a small
//! stack buffer, so an L2/L3/L4 header split across MDLs is fine): Ethernet, an optional 802.1Q tag,
//! IPv4 (unfragmented) or IPv6 (UDP as the first next header), UDP. A datagram is the tunnel's when
//! its source is a configured peer's remote endpoint or its destination a peer's local endpoint (so an
//! authenticated packet from a new address, a float, is caught too). Everything else is *bypass* and
//! goes up unchanged, in order.
//!
//! * **Fast path** (no `NDIS_RECEIVE_FLAGS_RESOURCES`, UDP payload in one MDL): the engine opens the
//!   datagram in place in the miniport's buffer; the inner packet's Ethernet header (the outer frame's
//!   MAC addresses and 802.1Q tag, the inner IP version's ethertype) is written into the room the outer
//!   headers leave just before it; a clone NBL (`NdisAllocateCloneNetBufferList`, from this module's
//!   pool, `NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS`) whose NB is advanced to that header and trimmed to the
//!   inner frame is indicated up in the original's place. When the clone comes back it is freed and
//!   the original is returned to the miniport (`NdisFReturnNetBufferLists`). The payload is touched
//!   once, by the AEAD pass: no copy.
//! * **Copy path** (RESOURCES receives, which the filter may not keep, a payload spread over several
//!   MDLs, or an NBL the miniport marked `NDIS_NBL_FLAGS_RECV_READ_ONLY`): the frame is copied once
//!   into one of the module's copy slots (buffer, MDL and NBL made at attach), opened there and
//!   indicated as the filter's own NBL (without RESOURCES, so the stack may keep it); on return the
//!   slot is recycled. A datagram longer than one 2048-byte slot (jumbo frames) takes a run of
//!   adjacent free slots (each slot's MDL runs to the end of the slot region). When the protocol holds
//!   every one of the [`COPY_SLOTS`] slots, the copy goes into one of [`RESERVE_SLOTS`] reserve slots
//!   and is indicated *with* `NDIS_RECEIVE_FLAGS_RESOURCES`: the protocol must copy what it keeps and
//!   the NBL is the filter's again when `NdisFIndicateReceiveNetBufferLists` returns, so the reserve
//!   slot is free at once (counted, `RESERVE_INDICATIONS`); nothing is dropped for want of slots. RESOURCES chains are indicated in runs and every link
//!   the filter touched is restored before the handler returns.
//! * Keepalive pings (after authentication), control-channel packets (queued for user mode's
//!   `IRP_MJ_READ`, see `control::queue_control`) and packets that fail (no key, replay, forgery,
//!   malformed) are consumed: returned to the miniport at once (or, with RESOURCES, simply not indicated)
//!   and counted.
//!
//! # Offloads on the indicated inner packet
//! The clone and the copy describe the *inner* packet, so nothing the NIC said about the outer one may
//! reach the stack. `NdisAllocateCloneNetBufferList` documents that the clone describes the same data,
//! not that it carries the original's out-of-band information, so every entry that described the outer
//! packet is written explicitly (zero) on the indicated NBL:
//! * `TcpIpChecksumNetBufferListInfo` (`NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO`, receive view): the
//!   NIC's IpChecksumSucceeded/UdpChecksumSucceeded were about the outer headers; a protocol skips its own
//!   check when it sees them, so the inner packet is indicated with no result and TCP/IP verifies it.
//! * `NetBufferListHashValue` / `NetBufferListHashInfo` (`NET_BUFFER_LIST_SET_HASH_VALUE/TYPE/FUNCTION`,
//!   "RSS hashing"): the hash of the outer 5-tuple, wrong for the inner flow; with none the stack
//!   computes its own.
//! * `TcpRecvSegCoalesceInfo` / `RscTcpTimestampDelta` (`NDIS_RSC_NBL_INFO`: "for non-RSC packets
//!   `CoalescedSegCount` must be zero") and `UdpRecvSegCoalesceOffloadInfo`
//!   (`NDIS_UDP_RSC_OFFLOAD_NET_BUFFER_LIST_INFO`, URO): they describe coalescing the inner packet never
//!   had. A URO-coalesced *outer* NBL is not intercepted at all (see [`classify`]).
//!
//! The out-of-band 802.1Q information (`Ieee8021QNetBufferListInfo`) is carried over: the inner packet
//! arrived on the same VLAN. Bypass receives are passed up untouched.
//! # Locking and IRQL
//! Both NDIS handlers run at IRQL <= DISPATCH_LEVEL. The AEAD pass of a classic-key packet runs with
//! **no lock held**: `control::CONFIG` (a spin lock, DISPATCH_LEVEL) is taken twice, briefly, around
//! the engine's split open: `PeerTable::open_begin` (classify, peer and key-id lookup, replay
//! pre-check; it lends the receive key as a reference-counted `PeerTicket`), then, after
//! `PeerTicket::authenticate` has decrypted in place outside the lock, `open_finish` (the replay
//! window is checked again and committed, float and counters; a key replaced in between is refused).
//! So receives for different peers, or on different processors, decrypt in parallel, and a forged
//! packet never moves the window. Epoch-key packets (whose receive keys may move to the next epoch
//! while opening) open whole under the lock. No NDIS call is made under `CONFIG`. Copy slots are
//! claimed and released with an atomic bitmap.
//! `outstanding` counts NBLs indicated up and not yet returned; a pause pends until it drops to zero.
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, Ordering};

use datapath::{Endpoint, OpenError, OpenStart, Received};
use kernel::ffi::mdl::{
    IoAllocateMdl, IoFreeMdl, MdlMappingNoExecute, MmBuildMdlForNonPagedPool, MmGetMdlByteCount,
    MmGetSystemAddressForMdlSafe, NormalPagePriority, MDL,
};
use kernel::ffi::nbl::{
    Ieee8021QNetBufferListInfo, NdisAdvanceNetBufferDataStart, NdisAllocateCloneNetBufferList,
    NdisAllocateNetBufferAndNetBufferList, NdisAllocateNetBufferListPool, NdisFreeCloneNetBufferList,
    NdisFreeNetBufferList, NdisFreeNetBufferListPool, NdisGetPoolFromNetBufferList,
    NdisRetreatNetBufferDataStart, NetBufferListHashInfo, NetBufferListHashValue, RscTcpTimestampDelta,
    TcpIpChecksumNetBufferListInfo, TcpRecvSegCoalesceInfo, UdpRecvSegCoalesceOffloadInfo,
    NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS, NDIS_NBL_FLAGS_RECV_READ_ONLY, NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL,
    NDIS_RECEIVE_FLAGS_RESOURCES, NDIS_RETURN_FLAGS_DISPATCH_LEVEL, NET_BUFFER, NET_BUFFER_DATA_LENGTH,
    NET_BUFFER_DATA_OFFSET, NET_BUFFER_LIST, NET_BUFFER_LIST_POOL_PARAMETERS,
    NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1, NET_BUFFER_SET_DATA_LENGTH,
};
use kernel::ffi::ndis::{
    NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_DEFAULT, NDIS_PORT_NUMBER, NDIS_STATUS,
    NDIS_STATUS_INVALID_PARAMETER, NDIS_STATUS_PAUSED, NDIS_STATUS_PENDING, NDIS_STATUS_RESOURCES,
    NDIS_STATUS_SUCCESS,
};
use kernel::ffi::ndis_filter::{NdisFIndicateReceiveNetBufferLists, NdisFReturnNetBufferLists};
use kernel::ffi::ntos::{
    ExAllocatePool2, ExFreePoolWithTag, KeRestoreExtendedProcessorState, KeSaveExtendedProcessorState,
    NT_SUCCESS, POOL_FLAG_NON_PAGED, XSTATE_MASK_AVX, XSTATE_MASK_LEGACY, XSTATE_SAVE,
};
use uapi::rdco_filter::RdcoEventKind;

use crate::callbacks::{module, Module};
use crate::control::{self, STATS};
use crate::oid::OidState;
use crate::pause::PauseGate;

/// Pool tags: clone NBL pool 'rdRc', copy NBL pool 'rdRp', copy buffers 'rdRb'.
const CLONE_POOL_TAG: u32 = u32::from_le_bytes(*b"rdRc");
const COPY_POOL_TAG: u32 = u32::from_le_bytes(*b"rdRp");
const COPY_BUFFER_TAG: u32 = u32::from_le_bytes(*b"rdRb");

/// Copy slots per module that the protocol may keep (copies indicated without RESOURCES). Together
/// with [`RESERVE_SLOTS`] at most 64: the free set is one atomic bitmap.
pub(crate) const COPY_SLOTS: usize = 32;
/// Reserved copy slots: used only when the protocol holds every one of the [`COPY_SLOTS`]; a copy in
/// them is indicated **with** `NDIS_RECEIVE_FLAGS_RESOURCES` and is free again when the indication
/// returns ("NDIS_RECEIVE_FLAGS_RESOURCES ... the overlying driver must copy the data and the
/// miniport driver (here: the filter) regains ownership as soon as
/// NdisFIndicateReceiveNetBufferLists returns", `NdisFIndicateReceiveNetBufferLists` and
/// `FILTER_RECEIVE_NET_BUFFER_LISTS` docs). 8 x 2 KB holds one 9 KB jumbo frame and more.
pub(crate) const RESERVE_SLOTS: usize = 8;
/// Every slot: the protocol's, then the reserve (one contiguous buffer, slot `i` at `i * COPY_SLOT_BYTES`).
const ALL_SLOTS: usize = COPY_SLOTS + RESERVE_SLOTS;
/// Bytes per copy slot: a full 1500-byte-MTU frame with an 802.1Q tag, rounded up. A larger frame (a
/// jumbo frame, up to the whole region) takes a run of adjacent slots: the buffer is contiguous and
/// slot `i`'s MDL describes everything from slot `i` to the end of its region, so a run needs no MDL
/// chaining and the engine opens it as one contiguous datagram.
pub(crate) const COPY_SLOT_BYTES: usize = 2048;
/// Where a WSK datagram is placed in its slot: room in front for the inner Ethernet header.
#[cfg_attr(target_os = "windows", allow(dead_code))] // used by the WSK path, not built yet (test hook)
const DATAGRAM_HEADROOM: usize = 64;
/// The clone flags the fast path allocates (and must free) clones with.
const CLONE_FLAGS: u32 = NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS;

const ETH_HEADER: usize = 14;
const VLAN_TAG: usize = 4;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: u16 = 0x8100;
const IPPROTO_UDP: u8 = 17;
/// The longest header prefix classification reads: Ethernet, 802.1Q, IPv4 with options (60) or IPv6
/// (40), UDP.
const HEADER_MAX: usize = ETH_HEADER + VLAN_TAG + 60 + 8;
/// Source MAC of inner frames made from WSK datagrams (locally administered; no outer frame to take one
/// from).
#[cfg_attr(target_os = "windows", allow(dead_code))] // used by the WSK path, not built yet (test hook)
const TUNNEL_MAC: [u8; 6] = [0x02, 0x72, 0x64, 0x63, 0x6f, 0x01];

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// One copy slot: an MDL over its part of the module's copy buffer and a preallocated NBL/NB over it.
struct Slot {
    buffer: *mut u8,
    mdl: *mut MDL,
    nbl: *mut NET_BUFFER_LIST,
}

/// A module's receive-side state (the module's `rx` field): pools made at attach, the copy slots,
/// what is outstanding at the protocol, the pause that waits for it, and the OID pass-through state.
pub(crate) struct RxState {
    pub(crate) oid: OidState,
    handle: NDIS_HANDLE,
    /// The NIC's MAC (destination of inner frames made from WSK datagrams).
    #[cfg_attr(target_os = "windows", allow(dead_code))]
    mac: [u8; 6],
    clone_pool: NDIS_HANDLE,
    copy_pool: NDIS_HANDLE,
    buffers: *mut c_void,
    slots: [Slot; ALL_SLOTS],
    /// Bit i set: slot i is free (bits `0..COPY_SLOTS` the protocol's, then the reserve).
    free: AtomicU64,
    /// NBLs indicated up (clones, copies, bypassed originals) not yet returned.
    outstanding: AtomicI64,
    pause_pending: AtomicBool,
    /// The module's pause gate ([`RxState::start`]); told when a pended pause owes nothing any more.
    gate: AtomicPtr<PauseGate>,
    /// The module's own counters of its receive half (beside the driver-wide `STATS`), for
    /// `GET_STATS` by `IfIndex`.
    pub(crate) stats: crate::control::FilterStats,
}

// SAFETY: the raw pointers are NDIS handles and pool memory owned by this state; every shared access
// goes through atomics (slot bitmap, counters) or NDIS, which serialises per NBL.
unsafe impl Send for RxState {}
// SAFETY: as above.
unsafe impl Sync for RxState {}

impl RxState {
    /// Allocates the module's receive resources: the clone NBL pool, the copy NBL pool, one buffer for
    /// every copy slot, and an MDL and NBL per slot. PASSIVE_LEVEL (FilterAttach). On failure whatever
    /// was allocated is freed (the partly built state's `Drop`) and the NDIS status is returned.
    pub(crate) fn new(handle: NDIS_HANDLE, mac: [u8; 6]) -> Result<Self, NDIS_STATUS> {
        let mut rx = RxState {
            oid: OidState::new(),
            handle,
            mac,
            clone_pool: null_mut(),
            copy_pool: null_mut(),
            buffers: null_mut(),
            slots: [const { Slot { buffer: null_mut(), mdl: null_mut(), nbl: null_mut() } }; ALL_SLOTS],
            free: AtomicU64::new(0),
            outstanding: AtomicI64::new(0),
            pause_pending: AtomicBool::new(false),
            stats: crate::control::FilterStats::new(),
            gate: AtomicPtr::new(null_mut()),
        };
        rx.clone_pool = nbl_pool(handle, false, CLONE_POOL_TAG);
        if rx.clone_pool.is_null() {
            return Err(NDIS_STATUS_RESOURCES);
        }
        rx.copy_pool = nbl_pool(handle, true, COPY_POOL_TAG);
        if rx.copy_pool.is_null() {
            return Err(NDIS_STATUS_RESOURCES);
        }
        // SAFETY: PASSIVE_LEVEL; a plain non-paged allocation, null on failure.
        rx.buffers =
            unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, ALL_SLOTS * COPY_SLOT_BYTES, COPY_BUFFER_TAG) };
        if rx.buffers.is_null() {
            return Err(NDIS_STATUS_RESOURCES);
        }
        let base = rx.buffers.cast::<u8>();
        let copy_pool = rx.copy_pool;
        let mut free = 0u64;
        for (i, slot) in rx.slots.iter_mut().enumerate() {
            slot.buffer = base.wrapping_add(i * COPY_SLOT_BYTES);
            // The MDL runs to the end of the slot's region, so that a run of slots starting here is one
            // MDL (see COPY_SLOT_BYTES).
            let region_end = if i < COPY_SLOTS { COPY_SLOTS } else { ALL_SLOTS };
            let mdl_bytes = (region_end - i) * COPY_SLOT_BYTES;
            // SAFETY: that part of the non-paged buffer outlives the MDL (both freed in Drop).
            slot.mdl = unsafe { IoAllocateMdl(slot.buffer.cast(), mdl_bytes as u32, 0, 0, null_mut()) };
            if slot.mdl.is_null() {
                return Err(NDIS_STATUS_RESOURCES);
            }
            // SAFETY: a fresh MDL over non-paged pool.
            unsafe { MmBuildMdlForNonPagedPool(slot.mdl) };
            // SAFETY: our pool made with fAllocateNetBuffer; the MDL covers COPY_SLOT_BYTES bytes.
            slot.nbl = unsafe {
                NdisAllocateNetBufferAndNetBufferList(copy_pool, 0, 0, slot.mdl, 0, COPY_SLOT_BYTES)
            };
            if slot.nbl.is_null() {
                return Err(NDIS_STATUS_RESOURCES);
            }
            // SAFETY: our own NBL: MiniportReserved belongs to the driver that allocated it. [0]: the
            // slot's index + 1; [1]: how many slots its run holds (set when claimed).
            unsafe { (*slot.nbl).MiniportReserved[0] = (i + 1) as *mut c_void };
            free |= 1 << i;
        }
        rx.free.store(free, Ordering::Release);
        Ok(rx)
    }

    /// Points the pause reports at the module's gate. PASSIVE_LEVEL (FilterAttach), once the module
    /// context has its final address; the gate lives in the same context as this state.
    pub(crate) fn start(&self, gate: &PauseGate) {
        self.gate.store(core::ptr::from_ref(gate).cast_mut(), Ordering::Release);
    }

    /// A pended pause of the receive half is over: tells the module's gate.
    fn pause_done(&self) {
        // SAFETY: set by `start` before NDIS can pause the module; the gate lives in the module context
        // with this state, until detach.
        if let Some(gate) = unsafe { self.gate.load(Ordering::Acquire).as_ref() } {
            gate.part_done();
        }
    }

    /// Called from FilterPause (PASSIVE_LEVEL, the module no longer Running): `NDIS_STATUS_SUCCESS` if
    /// nothing is outstanding at the protocol, else `NDIS_STATUS_PENDING`, and the last return
    /// reports to the module's pause gate ("Pausing a Filter Module": the pause is not
    /// complete until every indicated NBL has been returned).
    pub(crate) fn pause(&self) -> NDIS_STATUS {
        self.pause_pending.store(true, Ordering::Release);
        if self.outstanding.load(Ordering::Acquire) == 0 && self.pause_pending.swap(false, Ordering::AcqRel) {
            return NDIS_STATUS_SUCCESS;
        }
        NDIS_STATUS_PENDING
    }

    /// NBLs indicated up and not yet returned.
    pub(crate) fn outstanding(&self) -> i64 {
        self.outstanding.load(Ordering::Acquire)
    }

    fn settle(&self, n: i64) {
        if n == 0 {
            return;
        }
        let left = self.outstanding.fetch_sub(n, Ordering::AcqRel) - n;
        if left == 0 && self.pause_pending.swap(false, Ordering::AcqRel) {
            self.pause_done();
        }
    }

    /// Claims `n` adjacent free slots inside `region` (the protocol's slots or the reserve); returns
    /// the first. Lock-free (one compare-exchange on the bitmap).
    fn take_run(&self, n: usize, region: core::ops::Range<usize>) -> Option<usize> {
        if n == 0 || n > region.len() {
            return None;
        }
        let run: u64 = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        let mut free = self.free.load(Ordering::Acquire);
        loop {
            let first = (region.start..=region.end - n).find(|&i| (free >> i) & run == run)?;
            match self.free.compare_exchange_weak(
                free,
                free & !(run << first),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let slot = self.slots.get(first)?;
                    // SAFETY: our slot NBL, claimed above: nobody else touches it.
                    unsafe { (*slot.nbl).MiniportReserved[1] = n as *mut c_void };
                    return Some(first);
                }
                Err(now) => free = now,
            }
        }
    }

    /// Claims the slots for a copy of `bytes` bytes: from the protocol's slots if a run is free, else
    /// from the reserve (`borrowed`: indicate with RESOURCES). `None` (counted by the caller) if neither
    /// has room. Returns (first slot, bytes the run holds, borrowed).
    fn claim(&self, bytes: usize) -> Option<(usize, usize, bool)> {
        let n = bytes.div_ceil(COPY_SLOT_BYTES).max(1);
        if let Some(i) = self.take_run(n, 0..COPY_SLOTS) {
            return Some((i, n * COPY_SLOT_BYTES, false));
        }
        let i = self.take_run(n, COPY_SLOTS..ALL_SLOTS)?;
        Some((i, n * COPY_SLOT_BYTES, true))
    }

    /// Puts a run of slots back (the run that starts at slot `i`): its NB again describes one slot,
    /// its info is cleared.
    fn release_slot(&self, i: usize) {
        let Some(slot) = self.slots.get(i) else { return };
        // SAFETY: our slot NBL, back with us; [1] holds its run's length (set by `take_run`).
        let n = (unsafe { (*slot.nbl).MiniportReserved[1] } as usize).clamp(1, ALL_SLOTS - i);
        // SAFETY: the slot's NBL is ours and back with us; its NB was allocated with it.
        let nb = unsafe { (*slot.nbl).FirstNetBuffer };
        // SAFETY: as above.
        let offset = unsafe { NET_BUFFER_DATA_OFFSET(nb) };
        if offset > 0 {
            // SAFETY: retreating within the MDL's unused front (offset bytes): nothing is allocated.
            let _ = unsafe { NdisRetreatNetBufferDataStart(nb, offset, 0, None) };
        }
        // SAFETY: our NB over our MDL of COPY_SLOT_BYTES bytes.
        unsafe { NET_BUFFER_SET_DATA_LENGTH(nb, COPY_SLOT_BYTES as u32) };
        // SAFETY: our NBL; the indices are below MaxNetBufferListInfo.
        unsafe { (*slot.nbl).NetBufferListInfo[Ieee8021QNetBufferListInfo] = null_mut() };
        // SAFETY: as above.
        unsafe { (*slot.nbl).Next = null_mut() };
        let run: u64 = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        self.free.fetch_or(run << i, Ordering::AcqRel);
    }
}

impl Drop for RxState {
    /// Frees the receive resources in reverse order of allocation. PASSIVE_LEVEL (FilterDetach, or a
    /// failed attach); nothing is outstanding (the module is Paused).
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if !slot.nbl.is_null() {
                // SAFETY: our preallocated NBL, back with us (the module is paused), freed once.
                unsafe { NdisFreeNetBufferList(slot.nbl) };
                slot.nbl = null_mut();
            }
            if !slot.mdl.is_null() {
                // SAFETY: our MDL from IoAllocateMdl, no longer described by any NB.
                unsafe { IoFreeMdl(slot.mdl) };
                slot.mdl = null_mut();
            }
        }
        if !self.buffers.is_null() {
            // SAFETY: our copy buffer, allocated with this tag, no MDL over it any more.
            unsafe { ExFreePoolWithTag(self.buffers, COPY_BUFFER_TAG) };
        }
        for pool in [self.copy_pool, self.clone_pool] {
            if !pool.is_null() {
                // SAFETY: our pool; every NBL from it was freed.
                unsafe { NdisFreeNetBufferListPool(pool) };
            }
        }
    }
}

fn nbl_pool(handle: NDIS_HANDLE, allocate_nb: bool, tag: u32) -> NDIS_HANDLE {
    let params = NET_BUFFER_LIST_POOL_PARAMETERS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEFAULT,
            NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
            core::mem::size_of::<NET_BUFFER_LIST_POOL_PARAMETERS>(),
        ),
        ProtocolId: 0,
        fAllocateNetBuffer: u8::from(allocate_nb),
        ContextSize: 0,
        PoolTag: tag,
        DataSize: 0,
    };
    // SAFETY: PASSIVE_LEVEL (attach); the parameters live for the call.
    unsafe { NdisAllocateNetBufferListPool(handle, &raw const params) }
}

// ---------------------------------------------------------------------------------------------
// Reading and writing an NB's data through its MDL chain
// ---------------------------------------------------------------------------------------------

/// Calls `f(offset_in_data, segment)` for each mapped piece of the NB's data, in order, until `f`
/// returns false. Returns false if an MDL could not be mapped.
///
/// # Safety
/// `nb` must be a valid NB the caller holds, with a valid MDL chain.
unsafe fn for_each_segment(nb: *mut NET_BUFFER, mut f: impl FnMut(usize, *mut u8, usize) -> bool) -> bool {
    // SAFETY: the caller's NB.
    let mut left = unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize;
    // SAFETY: as above.
    let mut mdl = unsafe { (*nb).CurrentMdl };
    // SAFETY: as above.
    let mut skip = unsafe { (*nb).CurrentMdlOffset } as usize;
    let mut at = 0usize;
    while left > 0 && !mdl.is_null() {
        // SAFETY: an MDL of the NB's chain.
        let count = unsafe { MmGetMdlByteCount(mdl) } as usize;
        if skip < count {
            // SAFETY: MDLs of a received NB describe locked (or non-paged) pages.
            let va = unsafe { MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority | MdlMappingNoExecute) };
            if va.is_null() {
                return false;
            }
            let take = (count - skip).min(left);
            if !f(at, va.cast::<u8>().wrapping_add(skip), take) {
                return true;
            }
            at += take;
            left -= take;
            skip = 0;
        } else {
            skip -= count;
        }
        // SAFETY: as above.
        mdl = unsafe { (*mdl).Next };
    }
    true
}

/// Copies NB data `[offset, offset + out.len())` into `out`; returns how many bytes were copied.
///
/// # Safety
/// As for [`for_each_segment`].
unsafe fn copy_out(nb: *mut NET_BUFFER, offset: usize, out: &mut [u8]) -> usize {
    let mut done = 0usize;
    let end = offset + out.len();
    let each = |at: usize, ptr: *mut u8, len: usize| {
        let (from, to) = (at.max(offset), (at + len).min(end));
        if from < to {
            // SAFETY: the segment maps `len` readable bytes at `ptr`; `from..to` lies within it.
            let src = unsafe { core::slice::from_raw_parts(ptr.wrapping_add(from - at), to - from) };
            if let Some(dst) = out.get_mut(from - offset..to - offset) {
                dst.copy_from_slice(src);
                done += to - from;
            }
        }
        at + len < end
    };
    // SAFETY: the caller's NB.
    unsafe { for_each_segment(nb, each) };
    done
}

/// Writes `data` at NB data offset `offset` (possibly across MDLs); returns whether all of it fit.
///
/// # Safety
/// As for [`for_each_segment`], and the NB's buffers must be writable by the caller.
unsafe fn copy_in(nb: *mut NET_BUFFER, offset: usize, data: &[u8]) -> bool {
    let mut done = 0usize;
    let end = offset + data.len();
    let each = |at: usize, ptr: *mut u8, len: usize| {
        let (from, to) = (at.max(offset), (at + len).min(end));
        if from < to {
            if let Some(src) = data.get(from - offset..to - offset) {
                // SAFETY: the segment maps `len` writable bytes at `ptr`; `from..to` lies within it.
                let dst = unsafe { core::slice::from_raw_parts_mut(ptr.wrapping_add(from - at), to - from) };
                dst.copy_from_slice(src);
                done += to - from;
            }
        }
        at + len < end
    };
    // SAFETY: the caller's NB, whose buffers the caller may write.
    unsafe { for_each_segment(nb, each) };
    done == data.len()
}

/// The NB's data `[offset, offset + len)` as one mapped piece, if it lies in a single MDL.
///
/// # Safety
/// As for [`for_each_segment`]; the slice must not outlive the caller's hold on the NB.
unsafe fn contiguous<'a>(nb: *mut NET_BUFFER, offset: usize, len: usize) -> Option<&'a mut [u8]> {
    let mut found = None;
    let each = |at: usize, ptr: *mut u8, seg: usize| {
        if offset >= at && offset < at + seg {
            if offset + len <= at + seg {
                found = Some(ptr.wrapping_add(offset - at));
            }
            return false;
        }
        true
    };
    // SAFETY: the caller's NB.
    unsafe { for_each_segment(nb, each) };
    // SAFETY: `len` bytes at `ptr` lie in one mapped, writable segment the caller holds.
    found.map(|ptr| unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

// ---------------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------------

/// What classification found in a tunnel datagram's outer headers.
#[derive(Clone, Copy, Debug)]
struct Outer {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    /// The in-band 802.1Q tag (TPID and TCI), if the frame carries one.
    vlan: Option<[u8; 4]>,
    src: Endpoint,
    /// Offset of the UDP payload in the frame, and its length (from the UDP header).
    payload: usize,
    payload_len: usize,
}

impl Outer {
    /// The inner frame's Ethernet header for an inner packet starting with `first` (its IP version).
    fn l2_header(&self, first: u8) -> Option<([u8; ETH_HEADER + VLAN_TAG], usize)> {
        let ethertype = match first >> 4 {
            4 => ETHERTYPE_IPV4,
            6 => ETHERTYPE_IPV6,
            _ => return None,
        };
        let mut h = [0u8; ETH_HEADER + VLAN_TAG];
        h[..6].copy_from_slice(&self.dst_mac);
        h[6..12].copy_from_slice(&self.src_mac);
        let mut at = 12;
        if let Some(tag) = self.vlan {
            h[12..16].copy_from_slice(&tag);
            at = 16;
        }
        h[at..at + 2].copy_from_slice(&ethertype.to_be_bytes());
        Some((h, at + 2))
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses the outer headers (`h` holds the frame's first bytes, `frame_len` the NB's data length):
/// `Some` for an unfragmented UDP datagram over IPv4/IPv6 (optionally 802.1Q-tagged), with its
/// endpoints.
fn parse_outer(h: &[u8], frame_len: usize) -> Option<(Outer, Endpoint)> {
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(h.get(..6)?);
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(h.get(6..12)?);
    let mut ethertype = be16(h, 12)?;
    let mut ip = ETH_HEADER;
    let mut vlan = None;
    if ethertype == ETHERTYPE_VLAN {
        let mut tag = [0u8; 4];
        tag.copy_from_slice(h.get(12..16)?);
        vlan = Some(tag);
        ethertype = be16(h, 16)?;
        ip += VLAN_TAG;
    }
    let (src, dst, udp) = match ethertype {
        ETHERTYPE_IPV4 => {
            let v = *h.get(ip)?;
            let ihl = usize::from(v & 0xf) * 4;
            // Fragments (MF set or a fragment offset) are left to the stack, which reassembles them
            // and hands the datagram to the tunnel's WSK socket.
            let frag = be16(h, ip + 6)?;
            if v >> 4 != 4 || ihl < 20 || frag & 0x3fff != 0 || *h.get(ip + 9)? != IPPROTO_UDP {
                return None;
            }
            let total = usize::from(be16(h, ip + 2)?);
            if total < ihl + 8 || ip + total > frame_len {
                return None;
            }
            let mut s = [0u8; 4];
            s.copy_from_slice(h.get(ip + 12..ip + 16)?);
            let mut d = [0u8; 4];
            d.copy_from_slice(h.get(ip + 16..ip + 20)?);
            let udp = ip + ihl;
            (
                Endpoint::V4 { addr: s, port: be16(h, udp)? },
                Endpoint::V4 { addr: d, port: be16(h, udp + 2)? },
                udp,
            )
        }
        ETHERTYPE_IPV6 => {
            // UDP directly after the fixed header only; extension headers (fragments among them) are
            // left to the stack.
            if *h.get(ip)? >> 4 != 6 || *h.get(ip + 6)? != IPPROTO_UDP {
                return None;
            }
            let mut s = [0u8; 16];
            s.copy_from_slice(h.get(ip + 8..ip + 24)?);
            let mut d = [0u8; 16];
            d.copy_from_slice(h.get(ip + 24..ip + 40)?);
            let udp = ip + 40;
            (
                Endpoint::V6 { addr: s, port: be16(h, udp)? },
                Endpoint::V6 { addr: d, port: be16(h, udp + 2)? },
                udp,
            )
        }
        _ => return None,
    };
    let udp_len = usize::from(be16(h, udp + 4)?);
    if udp_len < 8 || udp + udp_len > frame_len {
        return None;
    }
    Some((Outer { dst_mac, src_mac, vlan, src, payload: udp + 8, payload_len: udp_len - 8 }, dst))
}

/// Classifies a received NBL: `Some` if it is a tunnel datagram (single NB, UDP from a peer's remote or
/// to a peer's local endpoint). IRQL <= DISPATCH_LEVEL; takes `control::CONFIG` briefly.
///
/// # Safety
/// `nbl` must be a valid NBL the caller holds.
unsafe fn classify(nbl: *mut NET_BUFFER_LIST) -> Option<Outer> {
    // SAFETY: the caller's NBL; the index is below MaxNetBufferListInfo.
    if !unsafe { (*nbl).NetBufferListInfo[UdpRecvSegCoalesceOffloadInfo] }.is_null() {
        // A URO super-datagram (several datagrams coalesced behind one IP/UDP header, "UDP Receive
        // Segment Coalescing Offload (URO)"): the stack splits it and hands each datagram to the
        // tunnel's WSK socket, whose receive event takes `indicate_datagram`.
        return None;
    }
    // SAFETY: the caller's NBL.
    let nb = unsafe { (*nbl).FirstNetBuffer };
    // SAFETY: a receive NBL's NBs are valid (null-checked first).
    if nb.is_null() || !unsafe { (*nb).Next }.is_null() {
        return None;
    }
    // SAFETY: as above.
    let frame_len = unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize;
    let mut h = [0u8; HEADER_MAX];
    let want = HEADER_MAX.min(frame_len);
    // SAFETY: the caller's NB.
    let got = unsafe { copy_out(nb, 0, h.get_mut(..want)?) };
    let (outer, dst) = parse_outer(h.get(..got)?, frame_len)?;
    control::is_tunnel_endpoint(&outer.src, &dst).then_some(outer)
}

// ---------------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------------

/// What opening a datagram came to.
enum Opened {
    /// A data packet: the inner packet is at `range` of the datagram.
    Data(core::ops::Range<usize>),
    /// Consumed (keepalive, control packet, or dropped): nothing to indicate.
    Consumed,
}

/// Runs `f` inside `KeSaveExtendedProcessorState` when the cipher backend may use AVX (ring on x64),
/// else directly. `None` if the state could not be saved (counted as `drop_other`). IRQL <=
/// DISPATCH_LEVEL.
fn with_extended_state<R>(f: impl FnOnce() -> R) -> Option<R> {
    let guard_needed = datapath::Cipher::Aes128Gcm.needs_extended_state()
        || datapath::Cipher::ChaCha20Poly1305.needs_extended_state();
    if !guard_needed {
        return Some(f());
    }
    let mut save = XSTATE_SAVE::zeroed();
    // SAFETY: IRQL <= DISPATCH_LEVEL; `save` stays on this frame until the restore.
    let status = unsafe { KeSaveExtendedProcessorState(XSTATE_MASK_LEGACY | XSTATE_MASK_AVX, &raw mut save) };
    if !NT_SUCCESS(status) {
        bump(&STATS.drop_other, 1);
        return None;
    }
    let r = f();
    // SAFETY: restores the save above, same thread and IRQL.
    unsafe { KeRestoreExtendedProcessorState(&raw mut save) };
    Some(r)
}

/// Opens `datagram` (a UDP payload, in place) from `from` with the engine, and counts the outcome and
/// queues what user mode must see (control packets, float events). IRQL <= DISPATCH_LEVEL.
///
/// Locking: the AEAD pass runs with **no lock held**. `control::CONFIG` is taken twice, briefly: once
/// for the engine's `open_begin` (peer lookup by id, key slot, replay check; the receive key is lent
/// as a reference-counted ticket) and once for `open_finish` (replay re-check and commit, keepalive,
/// float, counters, MSS clamp). Between the two the ticket authenticates and decrypts in place, inside
/// the extended-state guard when the backend needs it, so receives on different processors (and the
/// control IOCTLs) never wait for each other's AEAD. Epoch keys, whose open may move the receive key
/// to a new epoch, are opened whole under the lock.
fn open(datagram: &mut [u8], from: Endpoint) -> Opened {
    let now = control::now();
    let begun = {
        let mut config = control::CONFIG.lock();
        let Some(config) = config.as_mut() else { return Opened::Consumed };
        config.peers.open_begin(now, datagram)
    };
    let result = match begun {
        Ok(OpenStart::Control) => Ok(Received::Control),
        Err(e) => Err(e),
        Ok(OpenStart::Ticket(ticket)) => {
            #[cfg(not(target_os = "windows"))]
            crate::test_hooks::before_authenticate(ticket.peer_id());
            let Some(auth) = with_extended_state(|| ticket.authenticate(datagram)) else {
                return Opened::Consumed;
            };
            let mut config = control::CONFIG.lock();
            let Some(config) = config.as_mut() else { return Opened::Consumed };
            config.peers.open_finish(now, Some(&from), &ticket, auth, datagram)
        }
        Ok(OpenStart::Locked) => {
            let mut config = control::CONFIG.lock();
            let Some(config) = config.as_mut() else { return Opened::Consumed };
            let Some(r) = with_extended_state(|| config.peers.open(now, Some(&from), datagram)) else {
                return Opened::Consumed;
            };
            r
        }
    };
    match result {
        Ok(Received::Data(opened)) => {
            note_float(&opened);
            bump(&STATS.rx_packets, 1);
            bump(&STATS.rx_bytes, opened.payload.len() as u64);
            Opened::Data(opened.payload)
        }
        Ok(Received::Keepalive(opened)) => {
            note_float(&opened);
            bump(&STATS.keepalives_received, 1);
            Opened::Consumed
        }
        Ok(Received::Control) => {
            if control::queue_control(from, datagram) {
                bump(&STATS.control_in, 1);
            } else {
                bump(&STATS.drop_queue_full, 1);
            }
            Opened::Consumed
        }
        Err(e) => {
            count_drop(e);
            Opened::Consumed
        }
    }
}

fn note_float(opened: &datapath::Opened) {
    if let Some(to) = opened.floated {
        bump(&STATS.rx_floats, 1);
        let _ = control::queue_event(RdcoEventKind::Float, opened.peer_id, Some(control::socket_addr(to)));
    }
}

fn count_drop(e: OpenError) {
    let counter = match e {
        OpenError::NoKey | OpenError::UnknownEpoch => &STATS.drop_no_key,
        OpenError::Replay(_) => &STATS.drop_replay,
        OpenError::AuthFailed => &STATS.drop_auth,
        OpenError::Malformed(_) => &STATS.drop_malformed,
        OpenError::UnknownPeer => &STATS.rx_drop_unknown_peer,
    };
    bump(counter, 1);
}

// ---------------------------------------------------------------------------------------------
// Indicated NBLs
// ---------------------------------------------------------------------------------------------

/// Marks an NBL the filter indicates as describing the inner packet: our SourceHandle, the outer
/// packet's offload information cleared (see the module docs), the out-of-band VLAN tag kept.
///
/// # Safety
/// `nbl` is the filter's own (clone or copy) NBL; `original` a valid NBL the caller holds.
unsafe fn describe_inner(nbl: *mut NET_BUFFER_LIST, original: *const NET_BUFFER_LIST, handle: NDIS_HANDLE) {
    // SAFETY: the caller's NBLs; indices are below MaxNetBufferListInfo.
    let n = unsafe { &mut *nbl };
    n.SourceHandle = handle;
    n.Next = null_mut();
    n.Status = NDIS_STATUS_SUCCESS;
    for index in [
        TcpIpChecksumNetBufferListInfo,
        NetBufferListHashValue,
        NetBufferListHashInfo,
        TcpRecvSegCoalesceInfo,
        RscTcpTimestampDelta,
        UdpRecvSegCoalesceOffloadInfo,
    ] {
        if let Some(v) = n.NetBufferListInfo.get_mut(index) {
            *v = null_mut();
        }
    }
    let vlan = if original.is_null() {
        null_mut()
    } else {
        // SAFETY: as above.
        unsafe { (*original).NetBufferListInfo[Ieee8021QNetBufferListInfo] }
    };
    n.NetBufferListInfo[Ieee8021QNetBufferListInfo] = vlan;
}

/// The fast path for one tunnel NBL held by the filter (no RESOURCES): opens in place and returns the
/// clone to indicate, or `None` when the original is to go back to the miniport (consumed, dropped, or
/// the copy path took it: then `copy` says what to indicate).
///
/// # Safety
/// `nbl` must be a received NBL the filter holds.
unsafe fn fast_path(
    rx: &RxState,
    nbl: *mut NET_BUFFER_LIST,
    outer: &Outer,
    copy: &mut Copied,
) -> Option<*mut NET_BUFFER_LIST> {
    // SAFETY: the caller's NBL.
    let read_only = unsafe { (*nbl).NblFlags } & NDIS_NBL_FLAGS_RECV_READ_ONLY != 0;
    if read_only {
        // The miniport marked its receive data read-only (nbl.h's NDIS_NBL_FLAGS_RECV_READ_ONLY): it is
        // not opened in place; one copy instead.
        // SAFETY: the caller's NBL.
        *copy = unsafe { copy_path(rx, nbl, outer) };
        return None;
    }
    // SAFETY: the caller's NBL.
    let nb = unsafe { (*nbl).FirstNetBuffer };
    // SAFETY: the caller holds the NB; the slice lives until we hand the NBL on.
    let Some(datagram) = (unsafe { contiguous(nb, outer.payload, outer.payload_len) }) else {
        // The payload spans MDLs: the engine opens contiguous bytes, so copy once.
        // SAFETY: as above.
        *copy = unsafe { copy_path(rx, nbl, outer) };
        return None;
    };
    let Opened::Data(range) = open(datagram, outer.src) else { return None };
    bump(&rx.stats.rx_packets, 1);
    bump(&rx.stats.rx_bytes, range.len() as u64);
    let first = *datagram.get(range.start)?;
    let Some((header, l2)) = outer.l2_header(first) else {
        bump(&STATS.drop_malformed, 1);
        return None;
    };
    let inner = outer.payload + range.start;
    let start = inner.checked_sub(l2)?;
    // SAFETY: the miniport's receive buffer, which the filter holds; the header goes in front of the
    // inner packet, over outer header bytes nobody needs any more.
    if !unsafe { copy_in(nb, start, header.get(..l2)?) } {
        bump(&STATS.drop_other, 1);
        return None;
    }
    // SAFETY: a held receive NBL; our pool; NDIS allocates the NBs.
    let clone = unsafe { NdisAllocateCloneNetBufferList(nbl, rx.clone_pool, null_mut(), CLONE_FLAGS) };
    if clone.is_null() {
        bump(&STATS.rx_drop_no_buffer, 1);
        return None;
    }
    // SAFETY: the clone's NB describes the same data as the original's.
    let clone_nb = unsafe { (*clone).FirstNetBuffer };
    // SAFETY: advancing within the data (start < data length); the MDLs are the original's, not freed.
    unsafe { NdisAdvanceNetBufferDataStart(clone_nb, start as u32, 0, None) };
    // SAFETY: shrinking the clone NB's data to the inner frame.
    unsafe { NET_BUFFER_SET_DATA_LENGTH(clone_nb, (l2 + range.len()) as u32) };
    // SAFETY: our clone and the held original.
    unsafe { describe_inner(clone, nbl, rx.handle) };
    bump(&STATS.clones, 1);
    bump(&rx.stats.clones, 1);
    Some(clone)
}

/// What the copy path made.
enum Copied {
    /// Consumed or dropped (counted): nothing to indicate.
    Nothing,
    /// A slot NBL the protocol may keep: indicate without RESOURCES; it comes back through
    /// `FilterReturnNetBufferLists`.
    Owned(*mut NET_BUFFER_LIST),
    /// A reserve slot NBL (every protocol slot was held): indicate it alone **with** RESOURCES, then
    /// release it ([`indicate_borrowed`]).
    Borrowed(*mut NET_BUFFER_LIST),
}

/// Copies a received frame indicated with `NDIS_RECEIVE_FLAGS_RESOURCES` that went up from a reserve
/// slot, and were given back when the indication returned (every protocol slot was held).
pub(crate) static RESERVE_INDICATIONS: AtomicU64 = AtomicU64::new(0);

/// Indicates a reserve slot's NBL with `NDIS_RECEIVE_FLAGS_RESOURCES` and releases the slot once the
/// call returns: with RESOURCES the protocol copies what it needs and the NBL is the filter's again
/// when `NdisFIndicateReceiveNetBufferLists` returns. IRQL <= DISPATCH_LEVEL (`up_flags` says which);
/// no lock held.
///
/// # Safety
/// `nbl` must be one of `rx`'s slot NBLs, claimed and filled by the caller.
unsafe fn indicate_borrowed(rx: &RxState, nbl: *mut NET_BUFFER_LIST, port: NDIS_PORT_NUMBER, up_flags: u32) {
    // SAFETY: our slot NBL, filled; indicated with RESOURCES, so it is ours again when this returns.
    unsafe {
        NdisFIndicateReceiveNetBufferLists(rx.handle, nbl, port, 1, up_flags | NDIS_RECEIVE_FLAGS_RESOURCES)
    };
    bump(&RESERVE_INDICATIONS, 1);
    // SAFETY: as above; MiniportReserved[0] holds the slot's index + 1.
    let tag = unsafe { (*nbl).MiniportReserved[0] } as usize;
    rx.release_slot(tag.wrapping_sub(1));
}

/// The copy path: copies the frame once into a free run of slots (the protocol's, else the reserve),
/// opens it there and returns the slot NBL to indicate (nothing if consumed or dropped; the slots are
/// then free again).
///
/// # Safety
/// `nbl` must be a received NBL the caller holds.
unsafe fn copy_path(rx: &RxState, nbl: *mut NET_BUFFER_LIST, outer: &Outer) -> Copied {
    // SAFETY: the caller's NBL.
    let nb = unsafe { (*nbl).FirstNetBuffer };
    // SAFETY: as above.
    let frame_len = unsafe { NET_BUFFER_DATA_LENGTH(nb) } as usize;
    let Some((i, bytes, borrowed)) = rx.claim(frame_len) else {
        bump(&STATS.rx_drop_no_buffer, 1);
        return Copied::Nothing;
    };
    let Some(slot) = rx.slots.get(i) else { return Copied::Nothing };
    // SAFETY: the run is ours alone (claimed above); the contiguous buffer holds `bytes` bytes from
    // the run's first slot.
    let buffer = unsafe { core::slice::from_raw_parts_mut(slot.buffer, bytes) };
    // SAFETY: the caller's NB.
    let copied = unsafe { copy_out(nb, 0, buffer.get_mut(..frame_len).unwrap_or(&mut [])) };
    bump(&STATS.rx_copies, 1);
    bump(&STATS.deep_copies, 1);
    bump(&rx.stats.rx_copies, 1);
    bump(&rx.stats.deep_copies, 1);
    let end = outer.payload + outer.payload_len;
    let indicated = match buffer.get_mut(outer.payload..end) {
        Some(datagram) if copied == frame_len => match open(datagram, outer.src) {
            Opened::Data(range) => {
                bump(&rx.stats.rx_packets, 1);
                bump(&rx.stats.rx_bytes, range.len() as u64);
                // SAFETY: as above.
                unsafe { fill_slot(rx, i, bytes, outer.payload, range, outer, nbl) }
            }
            Opened::Consumed => false,
        },
        _ => false,
    };
    if !indicated {
        rx.release_slot(i);
        return Copied::Nothing;
    }
    if borrowed {
        Copied::Borrowed(slot.nbl)
    } else {
        Copied::Owned(slot.nbl)
    }
}

/// Writes the inner frame's Ethernet header in the run of slots starting at `i` (`bytes` long) in
/// front of the inner packet (at `base + range`) and points the slot's NB at the inner frame. Returns
/// false if the packet is not IP.
///
/// # Safety
/// The run must be claimed by the caller; `original` null or a valid NBL the caller holds.
unsafe fn fill_slot(
    rx: &RxState,
    i: usize,
    bytes: usize,
    base: usize,
    range: core::ops::Range<usize>,
    outer: &Outer,
    original: *const NET_BUFFER_LIST,
) -> bool {
    let Some(slot) = rx.slots.get(i) else { return false };
    // SAFETY: the run is claimed by the caller; the contiguous buffer holds `bytes` bytes from here.
    let buffer = unsafe { core::slice::from_raw_parts_mut(slot.buffer, bytes) };
    let inner = base + range.start;
    let Some(&first) = buffer.get(inner) else { return false };
    let Some((header, l2)) = outer.l2_header(first) else {
        bump(&STATS.drop_malformed, 1);
        return false;
    };
    let Some(start) = inner.checked_sub(l2) else { return false };
    match (buffer.get_mut(start..inner), header.get(..l2)) {
        (Some(dst), Some(src)) => dst.copy_from_slice(src),
        _ => return false,
    }
    // SAFETY: our slot NBL and its NB, describing one slot (reset at release).
    let nb = unsafe { (*slot.nbl).FirstNetBuffer };
    // SAFETY: our NB over our MDL, which runs to the end of the slot's region (>= `bytes`).
    unsafe { NET_BUFFER_SET_DATA_LENGTH(nb, bytes as u32) };
    // SAFETY: advancing within the run's data (start < bytes); the MDL is ours, not freed.
    unsafe { NdisAdvanceNetBufferDataStart(nb, start as u32, 0, None) };
    // SAFETY: shrinking our NB's data to the inner frame.
    unsafe { NET_BUFFER_SET_DATA_LENGTH(nb, (l2 + range.len()) as u32) };
    // SAFETY: our slot NBL; `original` as the caller guarantees.
    unsafe { describe_inner(slot.nbl, original, rx.handle) };
    true
}

// ---------------------------------------------------------------------------------------------
// NDIS handlers
// ---------------------------------------------------------------------------------------------

/// A chain being built (head, tail, count).
struct Chain {
    head: *mut NET_BUFFER_LIST,
    tail: *mut NET_BUFFER_LIST,
    count: u32,
}

impl Chain {
    const fn new() -> Self {
        Chain { head: null_mut(), tail: null_mut(), count: 0 }
    }

    /// Appends `nbl` (its `Next` is cleared).
    ///
    /// # Safety
    /// `nbl` must be a valid NBL the caller holds, not already in a chain being built.
    unsafe fn push(&mut self, nbl: *mut NET_BUFFER_LIST) {
        // SAFETY: the caller's NBL.
        unsafe { (*nbl).Next = null_mut() };
        if self.tail.is_null() {
            self.head = nbl;
        } else {
            // SAFETY: the tail is an NBL the caller holds (pushed before).
            unsafe { (*self.tail).Next = nbl };
        }
        self.tail = nbl;
        self.count += 1;
    }

    fn take(&mut self) -> Self {
        core::mem::replace(self, Chain::new())
    }
}

fn module_running(m: &Module) -> bool {
    m.is_running()
}

/// `FilterReceiveNetBufferLists`. IRQL <= DISPATCH_LEVEL (`NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL` says
/// which). Takes `control::CONFIG` per tunnel datagram (see the module docs); no lock across NDIS
/// calls. While the module is not Running the chain is returned at once (or, with RESOURCES, left to
/// the miniport by returning), as "Pausing a Filter Module" requires.
pub(crate) unsafe extern "system" fn filter_receive(
    context: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    port: NDIS_PORT_NUMBER,
    count: u32,
    flags: u32,
) {
    // SAFETY: NDIS passes the live module context from FilterAttach.
    let m = unsafe { module(context) };
    let rx = &m.rx;
    let resources = flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0;
    let return_flags =
        if flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL != 0 { NDIS_RETURN_FLAGS_DISPATCH_LEVEL } else { 0 };
    if !module_running(m) {
        if !resources {
            let mut nbl = nbls;
            while !nbl.is_null() {
                // SAFETY: the chain is ours to return.
                unsafe { (*nbl).Status = NDIS_STATUS_PAUSED };
                // SAFETY: as above.
                nbl = unsafe { (*nbl).Next };
            }
            // SAFETY: returns the whole chain we were handed, unindicated.
            unsafe { NdisFReturnNetBufferLists(rx.handle, nbls, return_flags) };
        }
        return;
    }
    if !control::has_peers() {
        // Nothing can be the tunnel's: pass the chain up as it came.
        bump(&STATS.rx_bypassed, u64::from(count));
        bump(&rx.stats.rx_bypassed, u64::from(count));
        rx.outstanding.fetch_add(if resources { 0 } else { i64::from(count) }, Ordering::AcqRel);
        // SAFETY: indicates the chain we hold, flags unchanged.
        unsafe { NdisFIndicateReceiveNetBufferLists(rx.handle, nbls, port, count, flags) };
        return;
    }
    if resources {
        // SAFETY: the chain NDIS handed us for the duration of the call.
        unsafe { receive_resources(rx, nbls, port, flags) };
    } else {
        // SAFETY: as above; we own the chain.
        unsafe { receive_owned(rx, nbls, port, flags, return_flags) };
    }
}

/// A chain the filter owns: one indication up (bypass originals and clones/copies in arrival order),
/// one return down (consumed originals).
///
/// # Safety
/// `nbls` must be the chain NDIS handed the filter.
unsafe fn receive_owned(
    rx: &RxState,
    nbls: *mut NET_BUFFER_LIST,
    port: NDIS_PORT_NUMBER,
    flags: u32,
    return_flags: u32,
) {
    let mut up = Chain::new();
    let mut back = Chain::new();
    let mut bypassed = 0u64;
    let mut nbl = nbls;
    while !nbl.is_null() {
        // SAFETY: a chain NBL we hold.
        let next = unsafe { (*nbl).Next };
        // SAFETY: as above.
        match unsafe { classify(nbl) } {
            None => {
                bypassed += 1;
                // SAFETY: as above.
                unsafe { up.push(nbl) };
            }
            Some(outer) => {
                let mut copy = Copied::Nothing;
                // SAFETY: as above.
                match unsafe { fast_path(rx, nbl, &outer, &mut copy) } {
                    // SAFETY: our clone; the original stays with us until the clone returns.
                    Some(clone) => unsafe { up.push(clone) },
                    None => {
                        match copy {
                            // SAFETY: our slot NBL.
                            Copied::Owned(c) => unsafe { up.push(c) },
                            Copied::Borrowed(c) => {
                                // In order: what is pending goes up first, then the borrowed copy.
                                // SAFETY: NBLs we hold or own; then our claimed slot NBL.
                                unsafe { indicate_owned(rx, &mut up, port, flags) };
                                // SAFETY: as above.
                                unsafe {
                                    indicate_borrowed(rx, c, port, flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL)
                                };
                            }
                            Copied::Nothing => {}
                        }
                        // SAFETY: the original goes back to the miniport.
                        unsafe { back.push(nbl) };
                    }
                }
            }
        }
        nbl = next;
    }
    bump(&STATS.rx_bypassed, bypassed);
    bump(&rx.stats.rx_bypassed, bypassed);
    if !back.head.is_null() {
        // SAFETY: originals we hold and did not indicate.
        unsafe { NdisFReturnNetBufferLists(rx.handle, back.head, return_flags) };
    }
    // SAFETY: NBLs we hold (originals) or own (clones, copies), in arrival order.
    unsafe { indicate_owned(rx, &mut up, port, flags) };
}

/// Indicates (and empties) a chain of NBLs the protocol may keep: bypassed originals of an owned
/// indication, clones, protocol-slot copies. Counted in `outstanding` until they come back.
///
/// # Safety
/// Every NBL of `up` is one the filter holds or owns.
unsafe fn indicate_owned(rx: &RxState, up: &mut Chain, port: NDIS_PORT_NUMBER, flags: u32) {
    let up = up.take();
    if up.head.is_null() {
        return;
    }
    rx.outstanding.fetch_add(i64::from(up.count), Ordering::AcqRel);
    let up_flags = flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL;
    // SAFETY: the caller's NBLs, in arrival order.
    unsafe { NdisFIndicateReceiveNetBufferLists(rx.handle, up.head, port, up.count, up_flags) };
}

/// A RESOURCES chain: the filter may not keep any of it. Bypass NBLs go up in runs with RESOURCES
/// (their links are cut only for the indication and restored right after); tunnel datagrams are copied
/// and their copies indicated without RESOURCES. When this returns the chain is exactly as it came.
///
/// # Safety
/// `nbls` must be the chain NDIS handed the filter.
unsafe fn receive_resources(rx: &RxState, nbls: *mut NET_BUFFER_LIST, port: NDIS_PORT_NUMBER, flags: u32) {
    let up_flags = flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL;
    let mut run_head: *mut NET_BUFFER_LIST = null_mut();
    let mut run_tail: *mut NET_BUFFER_LIST = null_mut();
    let mut run_len = 0u32;
    let mut copies = Chain::new();
    let mut nbl = nbls;
    // Indicates the pending bypass run (restoring the link after it), then the pending copies.
    let flush_run = |head: &mut *mut NET_BUFFER_LIST, tail: &mut *mut NET_BUFFER_LIST, len: &mut u32| {
        if head.is_null() {
            return;
        }
        // SAFETY: the run's last NBL, ours for the call.
        let saved = unsafe { (**tail).Next };
        // SAFETY: as above: the run ends here for the indication.
        unsafe { (**tail).Next = null_mut() };
        // SAFETY: RESOURCES NBLs we hold for the call, indicated with RESOURCES.
        unsafe { NdisFIndicateReceiveNetBufferLists(rx.handle, *head, port, *len, flags) };
        // SAFETY: the link cut above is restored.
        unsafe { (**tail).Next = saved };
        bump(&STATS.rx_bypassed, u64::from(*len));
        bump(&rx.stats.rx_bypassed, u64::from(*len));
        *head = null_mut();
        *tail = null_mut();
        *len = 0;
    };
    let flush_copies = |c: &mut Chain| {
        let c = c.take();
        if c.head.is_null() {
            return;
        }
        rx.outstanding.fetch_add(i64::from(c.count), Ordering::AcqRel);
        // SAFETY: our own slot NBLs, indicated without RESOURCES (the stack may keep them).
        unsafe { NdisFIndicateReceiveNetBufferLists(rx.handle, c.head, port, c.count, up_flags) };
    };
    while !nbl.is_null() {
        // SAFETY: a chain NBL we hold for the call.
        let next = unsafe { (*nbl).Next };
        // SAFETY: as above.
        match unsafe { classify(nbl) } {
            None => {
                flush_copies(&mut copies);
                if run_head.is_null() {
                    run_head = nbl;
                }
                run_tail = nbl;
                run_len += 1;
            }
            Some(outer) => {
                flush_run(&mut run_head, &mut run_tail, &mut run_len);
                // SAFETY: as above.
                match unsafe { copy_path(rx, nbl, &outer) } {
                    // SAFETY: our slot NBL.
                    Copied::Owned(copy) => unsafe { copies.push(copy) },
                    Copied::Borrowed(copy) => {
                        flush_copies(&mut copies);
                        // SAFETY: our claimed, filled slot NBL.
                        unsafe { indicate_borrowed(rx, copy, port, up_flags) };
                    }
                    Copied::Nothing => {}
                }
            }
        }
        nbl = next;
    }
    flush_run(&mut run_head, &mut run_tail, &mut run_len);
    flush_copies(&mut copies);
}

/// `FilterReturnNetBufferLists`. IRQL <= DISPATCH_LEVEL (`NDIS_RETURN_FLAGS_DISPATCH_LEVEL`). No lock.
/// A clone is freed and its original returned to the miniport; a copy slot is recycled; a bypassed
/// original is returned to the miniport. The last return of a pausing module completes its pause.
pub(crate) unsafe extern "system" fn filter_return(
    context: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    flags: u32,
) {
    // SAFETY: NDIS passes the live module context from FilterAttach.
    let m = unsafe { module(context) };
    let rx = &m.rx;
    let mut back = Chain::new();
    let mut done = 0i64;
    let mut nbl = nbls;
    while !nbl.is_null() {
        // SAFETY: an NBL coming back to us.
        let next = unsafe { (*nbl).Next };
        // SAFETY: as above.
        let pool = unsafe { NdisGetPoolFromNetBufferList(nbl) };
        if pool == rx.clone_pool {
            // SAFETY: our clone; its parent is the original we kept.
            let parent = unsafe { (*nbl).ParentNetBufferList };
            // SAFETY: our clone, freed once with the flags it was allocated with.
            unsafe { NdisFreeCloneNetBufferList(nbl, CLONE_FLAGS) };
            if !parent.is_null() {
                // SAFETY: the original we held while its clone was up.
                unsafe { back.push(parent) };
            }
        } else if pool == rx.copy_pool {
            // SAFETY: our slot NBL; MiniportReserved[0] holds its index + 1.
            let tag = unsafe { (*nbl).MiniportReserved[0] } as usize;
            rx.release_slot(tag.wrapping_sub(1));
        } else {
            // SAFETY: a bypassed original going back down.
            unsafe { back.push(nbl) };
        }
        done += 1;
        nbl = next;
    }
    if !back.head.is_null() {
        // SAFETY: originals the miniport indicated, returned once.
        unsafe { NdisFReturnNetBufferLists(rx.handle, back.head, flags) };
    }
    rx.settle(done);
}

/// Indicates a datagram the stack reassembled and the tunnel's WSK socket received (the WSK receive
/// event's path; outer fragments are never intercepted on the NIC). `datagram` is the UDP payload
/// (the ciphertext), `from` its source. It is copied once into a copy slot (the WSK buffer is released
/// at once), opened there, and the inner packet indicated up on this module as the filter's own NBL,
/// with the NIC's MAC as destination. IRQL <= DISPATCH_LEVEL; the module must be Running and the
/// caller must keep it attached for the call.
///
/// A datagram larger than a slot takes a run of adjacent slots. When the protocol holds every one of
/// its slots the copy goes into the reserve and is indicated with `NDIS_RECEIVE_FLAGS_RESOURCES`
/// (free again when the indication returns).
///
/// Errors: `NDIS_STATUS_PAUSED` (module not Running), `NDIS_STATUS_INVALID_PARAMETER` (larger than the
/// protocol's slots together, or the parts do not add up to `len`), `NDIS_STATUS_RESOURCES` (no run
/// free, the reserve included), `NDIS_STATUS_SUCCESS` also when the datagram was consumed (control,
/// keepalive) or dropped (counted).
pub(crate) fn indicate_datagram<'a>(
    m: &Module,
    len: usize,
    parts: impl Iterator<Item = &'a [u8]>,
    from: Endpoint,
) -> NDIS_STATUS {
    let rx = &m.rx;
    if !module_running(m) {
        return NDIS_STATUS_PAUSED;
    }
    if len + DATAGRAM_HEADROOM > COPY_SLOTS * COPY_SLOT_BYTES {
        bump(&STATS.rx_drop_no_buffer, 1);
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    let Some((i, bytes, borrowed)) = rx.claim(len + DATAGRAM_HEADROOM) else {
        bump(&STATS.rx_drop_no_buffer, 1);
        return NDIS_STATUS_RESOURCES;
    };
    let Some(slot) = rx.slots.get(i) else { return NDIS_STATUS_RESOURCES };
    // SAFETY: the run is ours alone (claimed above); the contiguous buffer holds `bytes` bytes from
    // its first slot.
    let buffer = unsafe { core::slice::from_raw_parts_mut(slot.buffer, bytes) };
    let end = DATAGRAM_HEADROOM + len;
    let Some(room) = buffer.get_mut(DATAGRAM_HEADROOM..end) else {
        rx.release_slot(i);
        return NDIS_STATUS_RESOURCES;
    };
    // The one copy of this path: the WSK buffer (one or more MDLs) into the slot.
    let mut at = 0;
    for part in parts {
        let Some(dst) = room.get_mut(at..at + part.len()) else {
            rx.release_slot(i);
            bump(&STATS.drop_malformed, 1);
            return NDIS_STATUS_INVALID_PARAMETER;
        };
        dst.copy_from_slice(part);
        at += part.len();
    }
    if at != len {
        rx.release_slot(i);
        bump(&STATS.drop_malformed, 1);
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    bump(&STATS.rx_copies, 1);
    bump(&rx.stats.rx_copies, 1);
    let outer = Outer {
        dst_mac: rx.mac,
        src_mac: TUNNEL_MAC,
        vlan: None,
        src: from,
        payload: DATAGRAM_HEADROOM,
        payload_len: len,
    };
    let filled = match open(room, from) {
        Opened::Data(range) => {
            bump(&rx.stats.rx_packets, 1);
            bump(&rx.stats.rx_bytes, range.len() as u64);
            // SAFETY: the slot is claimed; no original NBL.
            unsafe { fill_slot(rx, i, bytes, DATAGRAM_HEADROOM, range, &outer, null_mut()) }
        }
        Opened::Consumed => false,
    };
    if !filled {
        rx.release_slot(i);
        return NDIS_STATUS_SUCCESS;
    }
    // SAFETY: KeGetCurrentIrql is callable at any IRQL.
    let irql = unsafe { kernel::ffi::ntos::KeGetCurrentIrql() };
    let flags = if irql >= kernel::ffi::ntos::DISPATCH_LEVEL { NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL } else { 0 };
    if borrowed {
        // SAFETY: our claimed, filled reserve slot NBL.
        unsafe { indicate_borrowed(rx, slot.nbl, 0, flags) };
        return NDIS_STATUS_SUCCESS;
    }
    rx.outstanding.fetch_add(1, Ordering::AcqRel);
    // SAFETY: our own slot NBL, indicated on our module.
    unsafe { NdisFIndicateReceiveNetBufferLists(rx.handle, slot.nbl, 0, 1, flags) };
    NDIS_STATUS_SUCCESS
}

// ---------------------------------------------------------------------------------------------
// Attached modules, for the WSK path (which has a datagram, not a module)
// ---------------------------------------------------------------------------------------------

/// Modules that can be attached at once (one per Ethernet NIC).
const MAX_MODULES: usize = 16;

/// Attached modules: (NdisFilterHandle, module context). Written by FilterAttach and FilterDetach
/// (PASSIVE_LEVEL), read by [`find_module`]; a spin lock, held briefly and never across a call out.
static MODULES: kernel::sync::SpinLock<[(usize, usize); MAX_MODULES]> =
    kernel::sync::SpinLock::new([(0, 0); MAX_MODULES]);

/// Records an attached module. PASSIVE_LEVEL (FilterAttach, after `NdisFSetAttributes`).
pub(crate) fn register_module(handle: NDIS_HANDLE, context: *const Module) {
    let mut modules = MODULES.lock();
    if let Some(slot) = modules.iter_mut().find(|(h, _)| *h == 0) {
        *slot = (handle as usize, context as usize);
    }
}

/// The tunnel socket's receive event (`transport::RxSink`, IRQL <= DISPATCH_LEVEL): an outer datagram
/// the stack reassembled, `len` bytes in `parts`, from `from`. It is indicated on the first attached
/// module that is Running (the socket does not say which NIC the datagram came through; the inner packet
/// belongs to the host's stack either way). Returns the status of [`indicate_datagram`], or
/// `NDIS_STATUS_PAUSED` when no module is Running (the datagram is then dropped and counted by the
/// caller).
///
/// Lifetime: the module is chosen under the [`MODULES`] lock and one reference is taken on its receive
/// half's `outstanding` count there. A pause cannot complete while it is held and `FilterDetach` waits
/// for it after unregistering ([`wait_for_wsk_path`]), so the module outlives the call.
pub(crate) fn wsk_datagram<'a>(
    len: usize,
    parts: impl Iterator<Item = &'a [u8]>,
    from: Endpoint,
) -> NDIS_STATUS {
    let chosen = {
        let modules = MODULES.lock();
        let mut chosen = None;
        for &(handle, context) in modules.iter() {
            if handle == 0 {
                continue;
            }
            // SAFETY: registered modules are live until FilterDetach unregisters them under this lock.
            let m = unsafe { &*(context as *const Module) };
            if module_running(m) {
                m.rx.outstanding.fetch_add(1, Ordering::AcqRel);
                chosen = Some(context as *const Module);
                break;
            }
        }
        chosen
    };
    let Some(m) = chosen else { return NDIS_STATUS_PAUSED };
    // SAFETY: held alive by the reference taken above (see the function's documentation).
    let m = unsafe { &*m };
    let status = indicate_datagram(m, len, parts, from);
    m.rx.settle(1);
    status
}

/// FilterDetach, after [`unregister_module`]: waits (PASSIVE_LEVEL, briefly: at most the rest of one
/// [`wsk_datagram`] call on a module that is no longer Running) until no WSK receive holds the module.
pub(crate) fn wait_for_wsk_path(m: &Module) {
    while m.rx.outstanding() > 0 {
        core::hint::spin_loop();
    }
}

/// Calls `f` for every attached module, in attach order, under the registry's lock (modules stay
/// attached while it is held). `f` must be brief and call out to nothing. IRQL <= DISPATCH_LEVEL.
pub(crate) fn for_each_module(mut f: impl FnMut(&Module)) {
    let modules = MODULES.lock();
    for &(handle, context) in modules.iter() {
        if handle != 0 {
            // SAFETY: registered modules are live until FilterDetach unregisters them under this lock.
            f(unsafe { &*(context as *const Module) });
        }
    }
}

/// Forgets a module. PASSIVE_LEVEL (FilterDetach, before the context is freed).
pub(crate) fn unregister_module(context: *const Module) {
    let mut modules = MODULES.lock();
    for slot in modules.iter_mut().filter(|(_, c)| *c == context as usize) {
        *slot = (0, 0);
    }
}

/// The module context of the module with NDIS handle `handle`, if attached. The caller must keep the
/// module attached while it uses the pointer (the WSK path will hold a rundown reference; the test hook
/// runs on the thread that drives attach and detach).
#[cfg_attr(target_os = "windows", allow(dead_code))] // used by the WSK path, not built yet (test hook)
pub(crate) fn find_module(handle: usize) -> Option<*const Module> {
    let modules = MODULES.lock();
    modules.iter().find(|(h, _)| *h == handle && handle != 0).map(|&(_, c)| c as *const Module)
}
