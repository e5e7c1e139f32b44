//! The send path of a filter module: `FilterSendNetBufferLists`, `FilterSendNetBufferListsComplete`,
//! `FilterCancelSendNetBufferLists`, and the parts of pause/restart/detach that concern sends.
//!
//! # Data flow
//! `FilterSendNetBufferLists` classifies each NBL of the chain (`classify`). Runs of bypass NBLs go down
//! unchanged with `NdisFSendNetBufferLists`, each run as soon as a diverted NBL ends it, so bypass
//! traffic keeps its order. A diverted NBL is queued as the original (zero copy) on the module's
//! [`Queue`] and the worker DPC is kicked (`worker`); or, when a hold trigger applies at once (the
//! transport is not ready, the queue is at its budget), it is deep-copied and completed (`hold`).
//!
//! # State machine
//! `Paused` → (`FilterRestart`) → `Running` → (`FilterPause`) → `Pausing` → `Paused`. Sends that arrive
//! while not Running complete at once with `NDIS_STATUS_PAUSED`. A pause evicts every queued original
//! ([`hold::Trigger::Pause`]: deep copy, complete) and completes when the bypass sends it passed down have
//! come back ([`SendPath::outstanding`] reaches 0): then nothing the protocol owns is held.
//!
//! # Locking
//! The queue: `SpinLock<Queue>` per module, innermost in the order `TRANSPORT` → `CONFIG` → queue. The
//! counters are atomics. No lock is held while calling NDIS.
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};

use kernel::ffi::nbl::{
    NdisAllocateNetBufferListPool, NdisFreeNetBufferListPool, NDIS_GET_NET_BUFFER_LIST_CANCEL_ID,
    NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL, NDIS_SEND_FLAGS_DISPATCH_LEVEL, NET_BUFFER_LIST,
    NET_BUFFER_LIST_FIRST_NB, NET_BUFFER_LIST_POOL_PARAMETERS, NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
};
use kernel::ffi::ndis::{
    NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_DEFAULT, NDIS_PORT_NUMBER, NDIS_STATUS,
    NDIS_STATUS_PAUSED, NDIS_STATUS_RESOURCES, NDIS_STATUS_SEND_ABORTED, NDIS_STATUS_SUCCESS,
};
use kernel::ffi::ndis_filter::{
    NdisFCancelSendNetBufferLists, NdisFSendNetBufferLists, NdisFSendNetBufferListsComplete,
};
use kernel::ffi::ntos::{
    KeFlushQueuedDpcs, KeGetCurrentIrql, KeInitializeDpc, KeRemoveQueueDpc, DISPATCH_LEVEL,
};
use kernel::sync::SpinLock;

use crate::classify::{self, Verdict, HEAD_BYTES};
use crate::control::{self, count, FilterStats};
use crate::hold::{self, Trigger};
use crate::worker::{self, Worker};

/// Pool tag of the module's deep-copy NBL pool: 'rdFc'.
const COPY_POOL_TAG: u32 = hold::COPY_TAG;

/// NBLs of a send chain classified under one hold of `CONFIG`'s lock.
const CLASSIFY_BATCH: usize = 32;

/// Module send state (the `state` word of [`SendPath`]).
pub(crate) const RUNNING: u32 = 2;
pub(crate) const PAUSING: u32 = 3;
pub(crate) const PAUSED: u32 = 1;

/// A chain of NBLs linked through `Next`, with a tail for O(1) append.
#[derive(Debug)]
pub(crate) struct NblChain {
    head: *mut NET_BUFFER_LIST,
    tail: *mut NET_BUFFER_LIST,
    len: usize,
}

impl NblChain {
    pub(crate) const fn new() -> Self {
        NblChain { head: null_mut(), tail: null_mut(), len: 0 }
    }

    /// Appends one NBL (its `Next` is overwritten).
    pub(crate) fn push(&mut self, nbl: *mut NET_BUFFER_LIST) {
        // SAFETY: the caller owns `nbl`; relinking an owned NBL is allowed.
        unsafe { (*nbl).Next = null_mut() };
        if self.tail.is_null() {
            self.head = nbl;
        } else {
            // SAFETY: the tail is an NBL of this chain, owned by the caller.
            unsafe { (*self.tail).Next = nbl };
        }
        self.tail = nbl;
        self.len += 1;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    fn take(&mut self) -> (*mut NET_BUFFER_LIST, usize) {
        let r = (self.head, self.len);
        *self = NblChain::new();
        r
    }
}

/// The module's queue of diverted NBLs (originals and hold copies), linked through `Next`; the time each
/// was queued (interrupt time, 100 ns) is in its `Scratch`.
#[derive(Debug)]
pub(crate) struct Queue {
    chain: NblChain,
}

// SAFETY: the NBLs in the queue belong to the filter; the queue moves between processors only under
// its lock.
unsafe impl Send for Queue {}

impl Queue {
    pub(crate) const fn new() -> Self {
        Queue { chain: NblChain::new() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chain.head.is_null()
    }

    /// Appends an NBL (keeps its `Scratch`).
    pub(crate) fn push(&mut self, nbl: *mut NET_BUFFER_LIST) {
        self.chain.push(nbl);
    }

    /// Appends a chain linked through `Next`.
    pub(crate) fn push_chain(&mut self, mut nbl: *mut NET_BUFFER_LIST) {
        while !nbl.is_null() {
            // SAFETY: an owned chain.
            let next = unsafe { (*nbl).Next };
            self.push(nbl);
            nbl = next;
        }
    }

    /// Appends a whole queue behind this one (order kept).
    pub(crate) fn append(&mut self, mut back: Queue) {
        back.prepend(core::mem::replace(self, Queue::new()));
        *self = back;
    }

    /// Puts a whole queue in front of this one (order kept).
    pub(crate) fn prepend(&mut self, mut front: Queue) {
        if front.is_empty() {
            return;
        }
        if !self.is_empty() {
            // SAFETY: the front queue's tail is an NBL the filter owns.
            unsafe { (*front.chain.tail).Next = self.chain.head };
            front.chain.tail = self.chain.tail;
            front.chain.len += self.chain.len;
        }
        *self = front;
    }

    /// Takes up to `n` NBLs off the head, in order, as a queue of their own.
    pub(crate) fn take_front(&mut self, n: usize) -> Queue {
        if n == 0 || self.is_empty() {
            return Queue::new();
        }
        if n >= self.chain.len {
            return core::mem::replace(self, Queue::new());
        }
        let head = self.chain.head;
        let mut last = head;
        for _ in 1..n {
            // SAFETY: fewer than `len` steps along the owned chain.
            last = unsafe { (*last).Next };
        }
        // SAFETY: as above; `last` has a successor because n < len.
        self.chain.head = unsafe { (*last).Next };
        // SAFETY: as above.
        unsafe { (*last).Next = null_mut() };
        self.chain.len -= n;
        Queue { chain: NblChain { head, tail: last, len: n } }
    }

    /// Puts an NBL back at the head.
    pub(crate) fn push_front(&mut self, nbl: *mut NET_BUFFER_LIST) {
        // SAFETY: an owned NBL.
        unsafe { (*nbl).Next = self.chain.head };
        if self.chain.tail.is_null() {
            self.chain.tail = nbl;
        }
        self.chain.head = nbl;
        self.chain.len += 1;
    }

    /// Takes the head (null when empty), unlinked.
    pub(crate) fn pop(&mut self) -> *mut NET_BUFFER_LIST {
        let nbl = self.chain.head;
        if nbl.is_null() {
            return nbl;
        }
        // SAFETY: an NBL of the queue, owned by the filter.
        self.chain.head = unsafe { (*nbl).Next };
        if self.chain.head.is_null() {
            self.chain.tail = null_mut();
        }
        self.chain.len -= 1;
        // SAFETY: as above.
        unsafe { (*nbl).Next = null_mut() };
        nbl
    }

    /// Queue time of the oldest original.
    pub(crate) fn oldest_original(&self, path: &SendPath) -> Option<u64> {
        let mut nbl = self.chain.head;
        while !nbl.is_null() {
            if !path.is_copy(nbl) {
                // SAFETY: a queued NBL.
                return Some(unsafe { (*nbl).Scratch } as u64);
            }
            // SAFETY: as above.
            nbl = unsafe { (*nbl).Next };
        }
        None
    }

    /// Unlinks every original whose cancel id is `id` into `out`.
    fn cancel(&mut self, path: &SendPath, id: *mut core::ffi::c_void, out: &mut NblChain) {
        let mut kept = Queue::new();
        loop {
            let nbl = self.pop();
            if nbl.is_null() {
                break;
            }
            // SAFETY: a queued NBL the filter owns.
            if !path.is_copy(nbl) && unsafe { NDIS_GET_NET_BUFFER_LIST_CANCEL_ID(nbl) } == id {
                out.push(nbl);
            } else {
                kept.push(nbl);
            }
        }
        *self = kept;
    }
}

/// Everything of a module that the send path owns. Lives inside the module context (non-paged, stable
/// address from attach to detach).
pub(crate) struct SendPath {
    pub(crate) filter_handle: NDIS_HANDLE,
    pub(crate) state: AtomicU32,
    pub(crate) queue: SpinLock<Queue>,
    /// NBL pool (with NBs) for hold-policy deep copies.
    pub(crate) copy_pool: NDIS_HANDLE,
    /// Protocol NBLs the module owes: bypass sends passed down and not completed, plus queued originals.
    pub(crate) outstanding: AtomicI64,
    pub(crate) pause_pending: AtomicBool,
    /// NetEventSetPower: the device is below D0.
    pub(crate) low_power: AtomicBool,
    pub(crate) worker: Worker,
    /// A peer (bit 31 set) whose key asked for a rekey while sealing; reported by the worker.
    pub(crate) rekey: AtomicU32,
    registered: AtomicBool,
    /// The module's pause gate ([`SendPath::start`]); told when a pended pause owes nothing any more.
    gate: core::sync::atomic::AtomicPtr<crate::pause::PauseGate>,
    /// The module's own counters of its send half (the driver-wide totals are `control::STATS`).
    pub(crate) stats: FilterStats,
    /// Which NIC the module sits on, for `LIST_MODULES` and `GET_STATS` by `IfIndex`.
    pub(crate) identity: Identity,
}

/// A module's identity as NDIS gave it at attach (`NDIS_FILTER_ATTACH_PARAMETERS`).
pub(crate) struct Identity {
    /// `BaseMiniportIfIndex`: the miniport's interface index (never 0, `NET_IFINDEX_UNSPECIFIED`).
    pub(crate) if_index: u32,
    /// `NetLuid`: the filter module's own LUID.
    pub(crate) net_luid: u64,
    /// `BaseMiniportName`, cut to `uapi::rdco_filter::MODULE_NAME_LEN` UTF-16 units.
    pub(crate) name: [u16; uapi::rdco_filter::MODULE_NAME_LEN],
    pub(crate) name_len: usize,
}

impl Identity {
    /// From the attach parameters. PASSIVE_LEVEL (FilterAttach).
    pub(crate) fn from_attach(params: &kernel::ffi::ndis_filter::NDIS_FILTER_ATTACH_PARAMETERS) -> Self {
        let mut id = Identity {
            if_index: params.BaseMiniportIfIndex,
            net_luid: params.NetLuid,
            name: [0; uapi::rdco_filter::MODULE_NAME_LEN],
            name_len: 0,
        };
        // SAFETY: NDIS passes a valid (or null) NDIS_STRING for the duration of FilterAttach.
        if let Some(name) = unsafe { params.BaseMiniportName.as_ref() } {
            let units = usize::from(name.Length) / 2;
            if !name.Buffer.is_null() {
                // SAFETY: Buffer holds Length bytes of UTF-16 for the duration of the call.
                let src = unsafe { core::slice::from_raw_parts(name.Buffer.cast_const(), units) };
                for (dst, c) in id.name.iter_mut().zip(src) {
                    *dst = *c;
                }
                id.name_len = units.min(id.name.len());
            }
        }
        id
    }
}

// SAFETY: the handles are NDIS's, usable from any processor; the rest is atomics and locks.
unsafe impl Send for SendPath {}
// SAFETY: as above.
unsafe impl Sync for SendPath {}

impl SendPath {
    /// Allocates the module's send resources (the copy NBL pool). PASSIVE_LEVEL, from `FilterAttach`.
    pub(crate) fn new(filter_handle: NDIS_HANDLE) -> Result<Self, NDIS_STATUS> {
        let params = NET_BUFFER_LIST_POOL_PARAMETERS {
            Header: NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_DEFAULT,
                NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
                core::mem::size_of::<NET_BUFFER_LIST_POOL_PARAMETERS>(),
            ),
            ProtocolId: 0,
            fAllocateNetBuffer: 1,
            ContextSize: 0,
            PoolTag: COPY_POOL_TAG,
            DataSize: 0,
        };
        // SAFETY: PASSIVE_LEVEL with the module's handle and valid parameters.
        let copy_pool = unsafe { NdisAllocateNetBufferListPool(filter_handle, &raw const params) };
        if copy_pool.is_null() {
            return Err(NDIS_STATUS_RESOURCES);
        }
        Ok(SendPath {
            filter_handle,
            state: AtomicU32::new(PAUSED),
            queue: SpinLock::new(Queue::new()),
            copy_pool,
            outstanding: AtomicI64::new(0),
            pause_pending: AtomicBool::new(false),
            low_power: AtomicBool::new(false),
            worker: Worker::new(),
            rekey: AtomicU32::new(0),
            registered: AtomicBool::new(false),
            gate: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
            stats: FilterStats::new(),
            identity: Identity {
                if_index: 0,
                net_luid: 0,
                name: [0; uapi::rdco_filter::MODULE_NAME_LEN],
                name_len: 0,
            },
        })
    }

    /// Initialises the worker DPC and registers with the tick, once the send path has its final
    /// address (inside the module context). PASSIVE_LEVEL, from `FilterAttach`.
    pub(crate) fn start(&self, gate: &crate::pause::PauseGate) {
        self.gate.store(core::ptr::from_ref(gate).cast_mut(), Ordering::Release);
        let me = core::ptr::from_ref(self);
        // SAFETY: the DPC lives in the module context until detach, which removes and flushes it.
        unsafe { KeInitializeDpc(self.worker.dpc.get(), Some(worker::worker_dpc), me.cast_mut().cast()) };
        self.registered.store(worker::register(me), Ordering::Release);
    }

    /// Undoes [`SendPath::start`] and frees what is left: the DPC is removed and flushed, leftover copies
    /// freed, the copy pool freed. PASSIVE_LEVEL, from `FilterDetach` (the module is Paused) or a failed
    /// attach.
    pub(crate) fn stop(&self) {
        if self.registered.swap(false, Ordering::AcqRel) {
            worker::unregister(core::ptr::from_ref(self));
        }
        // Twice: the first flush waits for a tick or worker run in progress, which may have queued the
        // worker again; after it nothing can queue it any more (unregistered, Paused), so the second
        // remove catches that last one.
        for _ in 0..2 {
            // SAFETY: the DPC was initialised by `start` (or is all-zero and not queued).
            let _ = unsafe { KeRemoveQueueDpc(self.worker.dpc.get()) };
            // SAFETY: PASSIVE_LEVEL; waits for a run already executing on another processor.
            unsafe { KeFlushQueuedDpcs() };
        }
        // Originals cannot remain (pause evicted them and NDIS sends nothing to a paused module); if
        // any did (a detach without pause), complete them rather than leak them.
        let mut done = NblChain::new();
        worker::evict(self, Trigger::Pause, &mut done);
        self.complete(done);
        worker::drop_all_copies(self);
    }

    /// Completes originals to the protocol (status already set in each) and settles the pause.
    pub(crate) fn complete(&self, done: NblChain) {
        let mut done = done;
        let (head, n) = done.take();
        if head.is_null() {
            return;
        }
        // SAFETY: KeGetCurrentIrql may be called at any IRQL.
        let flags = if unsafe { KeGetCurrentIrql() } == DISPATCH_LEVEL {
            NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL
        } else {
            0
        };
        // SAFETY: the chain holds protocol NBLs the module owns and completes once.
        unsafe { NdisFSendNetBufferListsComplete(self.filter_handle, head, flags) };
        self.settle(n as i64);
    }

    /// Drops `n` from the outstanding count; completes a pended pause when nothing is owed.
    pub(crate) fn settle(&self, n: i64) {
        let left = self.outstanding.fetch_sub(n, Ordering::AcqRel) - n;
        if left == 0 && self.pause_pending.swap(false, Ordering::AcqRel) {
            self.state.store(PAUSED, Ordering::Release);
            // SAFETY: set by `start` before NDIS can pause the module; the gate lives in the module
            // context with this path, until detach.
            if let Some(gate) = unsafe { self.gate.load(Ordering::Acquire).as_ref() } {
                gate.part_done();
            }
        }
    }

    /// `FilterRestart` for the send path. PASSIVE_LEVEL.
    pub(crate) fn restart(&self) {
        self.state.store(RUNNING, Ordering::Release);
    }

    /// `FilterPause` for the send path. PASSIVE_LEVEL. Evicts queued originals (hold trigger: pause) and
    /// returns `NDIS_STATUS_PENDING` while bypass sends are still below.
    pub(crate) fn pause(&self) -> NDIS_STATUS {
        self.state.store(PAUSING, Ordering::Release);
        let mut done = NblChain::new();
        worker::evict(self, Trigger::Pause, &mut done);
        // Complete without settling the pause yet: count them here.
        let (head, n) = done.take();
        if !head.is_null() {
            // SAFETY: protocol NBLs the module owns; PASSIVE_LEVEL.
            unsafe { NdisFSendNetBufferListsComplete(self.filter_handle, head, 0) };
            self.outstanding.fetch_sub(n as i64, Ordering::AcqRel);
        }
        if self.outstanding.load(Ordering::Acquire) == 0 {
            self.state.store(PAUSED, Ordering::Release);
            return NDIS_STATUS_SUCCESS;
        }
        self.pause_pending.store(true, Ordering::Release);
        if self.outstanding.load(Ordering::Acquire) == 0 && self.pause_pending.swap(false, Ordering::AcqRel) {
            self.state.store(PAUSED, Ordering::Release);
            return NDIS_STATUS_SUCCESS;
        }
        kernel::ffi::ndis::NDIS_STATUS_PENDING
    }
}

impl Drop for SendPath {
    /// Frees the copy pool: after [`SendPath::stop`] (detach, failed attach), or when the module context
    /// could not be allocated (then nothing was ever allocated from the pool).
    fn drop(&mut self) {
        if !self.copy_pool.is_null() {
            // SAFETY: our pool; every NBL from it was freed (by `stop`, or none was allocated).
            unsafe { NdisFreeNetBufferListPool(self.copy_pool) };
        }
    }
}

fn at_dispatch(send_flags: u32) -> bool {
    send_flags & NDIS_SEND_FLAGS_DISPATCH_LEVEL != 0
}

/// Classifies up to [`CLASSIFY_BATCH`] NBLs from `*nbl` on under one hold of `CONFIG`'s lock (the peer
/// routes are the engine's table, which lives there), advancing `*nbl`. Only headers are copied (onto the
/// stack). IRQL <= DISPATCH_LEVEL.
fn classify_batch(
    nbl: &mut *mut NET_BUFFER_LIST,
    own_port: u16,
) -> arrayvec::ArrayVec<(*mut NET_BUFFER_LIST, Verdict), CLASSIFY_BATCH> {
    let mut batch = arrayvec::ArrayVec::new();
    let guard = control::CONFIG.lock();
    while !nbl.is_null() && !batch.is_full() {
        let this = *nbl;
        // SAFETY: the filter owns the chain it was handed.
        *nbl = unsafe { (*this).Next };
        let mut scratch = [0u8; HEAD_BYTES];
        // SAFETY: an owned NBL.
        let first = unsafe { NET_BUFFER_LIST_FIRST_NB(this) };
        // SAFETY: the first NB of an owned NBL, read while the filter owns it.
        let head = unsafe { classify::head(first, &mut scratch) };
        let verdict = classify::decide(head, guard.as_ref(), own_port);
        batch.push((this, verdict));
    }
    drop(guard);
    batch
}

/// `FilterSendNetBufferLists`. IRQL <= DISPATCH_LEVEL (`NDIS_SEND_FLAGS_DISPATCH_LEVEL` says which).
/// Takes `CONFIG` briefly per batch of [`CLASSIFY_BATCH`] NBLs (classification) and the module's queue
/// lock; calls NDIS with no lock held.
pub(crate) fn filter_send(path: &SendPath, nbls: *mut NET_BUFFER_LIST, port: NDIS_PORT_NUMBER, flags: u32) {
    let complete_flags = if at_dispatch(flags) { NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL } else { 0 };
    if path.state.load(Ordering::Acquire) != RUNNING {
        let mut nbl = nbls;
        while !nbl.is_null() {
            // SAFETY: the filter owns the chain it was handed.
            unsafe { (*nbl).Status = NDIS_STATUS_PAUSED };
            // SAFETY: as above.
            nbl = unsafe { (*nbl).Next };
        }
        // SAFETY: completes the sends the filter was handed.
        unsafe { NdisFSendNetBufferListsComplete(path.filter_handle, nbls, complete_flags) };
        return;
    }
    let own_port = u16::try_from(crate::transport::LOCAL_PORT.load(Ordering::Acquire)).unwrap_or(0);
    let budget = i64::from(hold::POLICY.budget_nbls.load(Ordering::Relaxed));
    let mut run = NblChain::new();
    let mut held = NblChain::new();
    let mut queued = 0usize;
    let mut rest = nbls;
    while !rest.is_null() {
        // One batch's diverted NBLs (originals and hold copies, in order) go onto the module's queue
        // under one hold of its lock, and its counters are added once: per-packet atomics and lock
        // round trips were most of the handler's cost.
        let mut tally = Tally::default();
        let mut pending = Queue::new();
        // One queue time for the batch (interrupt time, 100 ns): the batch arrived in one call.
        let now = worker::ticks() as usize as *mut core::ffi::c_void;
        for (nbl, verdict) in classify_batch(&mut rest, own_port) {
            match verdict {
                Verdict::Bypass => {
                    tally.bypassed += 1;
                    run.push(nbl);
                }
                Verdict::Divert { ready } => {
                    tally.diverted += 1;
                    if !run.is_empty() {
                        // Bypass NBLs ahead of this one go down first (order kept); what this batch
                        // diverted before them is queued first, too.
                        queued += flush_pending(path, &mut pending, &mut tally);
                        send_run(path, &mut run, port, flags);
                    }
                    let trigger = if !ready {
                        Some(Trigger::NotReady)
                    } else if path.worker.queued_originals.load(Ordering::Acquire) + tally.originals >= budget
                    {
                        Some(Trigger::Budget)
                    } else {
                        None
                    };
                    match trigger {
                        None => {
                            // SAFETY: an owned NBL; Scratch is the current owner's.
                            unsafe { (*nbl).Scratch = now };
                            tally.originals += 1;
                            pending.push(nbl);
                        }
                        Some(trigger) => {
                            // SAFETY: an owned NBL, unlinked from the chain below.
                            unsafe { (*nbl).Next = null_mut() };
                            // SAFETY: an owned NBL; the module's pool and handle.
                            let status = match unsafe {
                                hold::deep_copy(path.filter_handle, path.copy_pool, nbl, trigger, &path.stats)
                            } {
                                Ok((head, _)) => {
                                    let mut c = head;
                                    while !c.is_null() {
                                        // SAFETY: our copy.
                                        unsafe { (*c).Scratch = now };
                                        // SAFETY: as above.
                                        c = unsafe { (*c).Next };
                                    }
                                    pending.push_chain(head);
                                    tally.copies += 1;
                                    NDIS_STATUS_SUCCESS
                                }
                                Err(status) => status,
                            };
                            // SAFETY: as above.
                            unsafe { (*nbl).Status = status };
                            held.push(nbl);
                        }
                    }
                }
            }
        }
        queued += flush_pending(path, &mut pending, &mut tally);
        count!(path.stats, bypassed, tally.bypassed);
        count!(path.stats, diverted, tally.diverted);
    }
    send_run(path, &mut run, port, flags);
    let (head, _) = held.take();
    if !head.is_null() {
        // SAFETY: originals the filter owns, copied (or failed), completed once.
        unsafe { NdisFSendNetBufferListsComplete(path.filter_handle, head, complete_flags) };
    }
    if queued > 0 {
        path.kick();
    }
}

/// What one classify batch of [`filter_send`] counted, added to the counters once per batch.
#[derive(Default)]
struct Tally {
    bypassed: u64,
    diverted: u64,
    /// Originals put on `pending` and not yet on the module's queue (nor in its queued count: the
    /// budget check adds them).
    originals: i64,
    /// NBLs deep-copied at once (a hold trigger) whose copies are on `pending`.
    copies: usize,
}

/// Moves `pending` (in order) onto the module's queue under one hold of its lock and accounts the
/// originals in it (owed to the protocol, queued, `holds`). Returns how many NBLs it queued (originals
/// plus copied NBLs). IRQL <= DISPATCH_LEVEL.
fn flush_pending(path: &SendPath, pending: &mut Queue, tally: &mut Tally) -> usize {
    if pending.is_empty() {
        return 0;
    }
    let originals = core::mem::take(&mut tally.originals);
    let copies = core::mem::take(&mut tally.copies);
    if originals > 0 {
        // Before the NBLs become visible to the worker, which subtracts as it completes them.
        path.outstanding.fetch_add(originals, Ordering::AcqRel);
        path.worker.queued_originals.fetch_add(originals, Ordering::AcqRel);
        count!(path.stats, holds, originals as u64);
    }
    let chain = core::mem::replace(pending, Queue::new());
    path.queue.lock().append(chain);
    originals as usize + copies
}

/// Sends a run of bypass NBLs down, in order.
fn send_run(path: &SendPath, run: &mut NblChain, port: NDIS_PORT_NUMBER, flags: u32) {
    let (head, n) = run.take();
    if head.is_null() {
        return;
    }
    path.outstanding.fetch_add(n as i64, Ordering::AcqRel);
    // SAFETY: the chain belongs to the filter and goes down unchanged; flags as NDIS gave them.
    unsafe { NdisFSendNetBufferLists(path.filter_handle, head, port, flags) };
}

/// `FilterSendNetBufferListsComplete`. IRQL <= DISPATCH_LEVEL. Bypass sends coming back: passed up
/// (the filter never sends its own NBLs down).
pub(crate) fn filter_send_complete(path: &SendPath, nbls: *mut NET_BUFFER_LIST, flags: u32) {
    let mut n = 0i64;
    let mut nbl = nbls;
    while !nbl.is_null() {
        n += 1;
        // SAFETY: a completed chain handed back to the filter.
        nbl = unsafe { (*nbl).Next };
    }
    // SAFETY: the protocol's NBLs, completed up once.
    unsafe { NdisFSendNetBufferListsComplete(path.filter_handle, nbls, flags) };
    path.settle(n);
}

/// `FilterCancelSendNetBufferLists`. IRQL <= DISPATCH_LEVEL. Completes every queued original with this
/// cancel id with `NDIS_STATUS_SEND_ABORTED` and passes the cancel down ("Canceling a Send Request in
/// a Filter Driver": a filter cancels what it queued and calls `NdisFCancelSendNetBufferLists`).
pub(crate) fn filter_cancel_send(path: &SendPath, cancel_id: *mut core::ffi::c_void) {
    let mut cancelled = NblChain::new();
    path.queue.lock().cancel(path, cancel_id, &mut cancelled);
    let mut nbl = cancelled.head;
    let mut n = 0u64;
    while !nbl.is_null() {
        // SAFETY: a cancelled original the filter owns.
        unsafe { (*nbl).Status = NDIS_STATUS_SEND_ABORTED };
        // SAFETY: as above.
        unsafe { (*nbl).Scratch = null_mut() };
        path.worker.queued_originals.fetch_sub(1, Ordering::AcqRel);
        n += 1;
        // SAFETY: as above.
        nbl = unsafe { (*nbl).Next };
    }
    count!(path.stats, send_aborted, n);
    path.complete(cancelled);
    // SAFETY: the module's handle; any IRQL <= DISPATCH_LEVEL.
    unsafe { NdisFCancelSendNetBufferLists(path.filter_handle, cancel_id) };
}
