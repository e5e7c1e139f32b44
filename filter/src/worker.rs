//! The send worker: one DPC per module that seals the diverted NBLs of the module's queue and sends them
//! through the transport in batches.
//!
//! # Why a DPC
//! Sealing and `WskSendMessages` both run at DISPATCH_LEVEL, the send handler is often at DISPATCH_LEVEL
//! already, and a DPC keeps the packet on the processor that queued it with no thread switch. The DPC is
//! queued (`KeInsertQueueDpc`, a no-op when already queued) by the send handler when it queues an NBL,
//! and by the driver's 1 s tick (held copies waiting for the transport, originals past the hold budget).
//!
//! # The queue
//! Diverted NBLs are queued as the originals, linked through their own `Next` field (the filter owns an
//! NBL between `FilterSendNetBufferLists` and its completion and may relink it), with the time it was
//! queued in `Scratch` ("data defined by the current owner of the NET_BUFFER_LIST structure",
//! Windows-driver-docs `NET_BUFFER_LIST` structure). No allocation per packet. Hold-policy copies (own
//! NBLs from the module's pool) wait in the same queue, in order.
//!
//! # One run
//! Lock order `transport::TRANSPORT` → `control::CONFIG` → the module's queue lock, all at DISPATCH_LEVEL.
//! For each NBL taken off the queue: every NET_BUFFER is sealed straight from its MDL chain, skipping the
//! L2 header (the engine takes the MDL segments as a scatter list: no plaintext copy), into a ciphertext
//! buffer; sealed packets go out in batches of up to `transport::SEND_BATCH` to one peer. The original is
//! completed as soon as its packets are sealed, after the locks are released. If the transport cannot
//! take more (no socket, no buffer, every IRP in flight) the run stops and every original left in the
//! queue is deep-copied ([`hold::Trigger::NotReady`]) and completed.
//!
//! # Several peers
//! Each NBL goes to the peer its inner destination routes to (`control::Config::route`: the longest
//! prefix of the engine's route table, or the only peer), looked up when it is sealed, so a route change
//! applies to what is still queued. Consecutive packets to one peer share a `WskSendMessages` batch. An
//! NBL whose destination has no peer, or whose peer has no primary key, must not stall the others: an
//! original is deep-copied ([`hold::Trigger::NotReady`]) and completed, a copy is *parked*; parked copies
//! go back to the head of the queue, in order, when the round ends, wait for a key or a route (`NEW_KEY`
//! and `SET_PEER_ROUTES` kick the workers; so does the 1 s tick) and expire like every held copy.
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use arrayvec::ArrayVec;
use kernel::ffi::nbl::{
    NdisGetPoolFromNetBufferList, NET_BUFFER_LIST, NET_BUFFER_LIST_FIRST_NB, NET_BUFFER_NEXT_NB,
};
use kernel::ffi::ndis::NDIS_STATUS_SUCCESS;
use kernel::ffi::ntos::{
    KeInsertQueueDpc, KeQueryInterruptTimePrecise, KeRestoreExtendedProcessorState,
    KeSaveExtendedProcessorState, KDPC, NT_SUCCESS, XSTATE_MASK_AVX, XSTATE_MASK_LEGACY, XSTATE_SAVE,
};
use kernel::sync::SpinLock;

use crate::classify::{self, HEAD_BYTES};
use crate::control::{self, count, Config};
use crate::hold::{self, Trigger};
use crate::offload;
use crate::send::{NblChain, SendPath};
use crate::transport::{self, Transport, CIPHER_BUFFER_SIZE, SEND_BATCH};

/// NBLs one round takes under the locks.
const ROUND_NBLS: usize = 32;
/// Rounds one DPC run makes before it requeues itself (bounds the time at DISPATCH_LEVEL: 256 NBLs).
const ROUNDS: usize = 8;
/// Modules the registry tracks (one per bound NIC).
pub(crate) const MAX_MODULES: usize = uapi::rdco_filter::MAX_MODULES;
/// Parked NBLs (waiting for their peer's key or a route) one round looks at before it ends: bounds the
/// time at DISPATCH_LEVEL when many copies wait.
const PARK_SCAN: usize = 256;

/// Host builds only: the worker gathers every packet into a scratch buffer and seals that copy (the
/// double-copy design the zero-copy path replaces), for the send bench's baseline row
/// (`test_hooks::set_copy_then_seal`). Never in a kernel image.
#[cfg(not(target_os = "windows"))]
pub(crate) static COPY_THEN_SEAL: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether the bench's copy-then-seal baseline is on (always false in a kernel image).
#[inline]
fn copy_then_seal() -> bool {
    #[cfg(not(target_os = "windows"))]
    return COPY_THEN_SEAL.load(Ordering::Relaxed);
    #[cfg(target_os = "windows")]
    return false;
}

/// Interrupt time in 100-ns units. Any IRQL.
pub(crate) fn ticks() -> u64 {
    // SAFETY: callable at any IRQL; a null QPC out-pointer is allowed.
    unsafe { KeQueryInterruptTimePrecise(null_mut()) }
}

/// The modules whose workers the tick kicks. Registered at attach, unregistered at detach before the
/// module's DPC is flushed.
static REGISTRY: SpinLock<[usize; MAX_MODULES]> = SpinLock::new([0; MAX_MODULES]);

/// Adds a module's send path to the registry. Returns false when full (the module then relies on its
/// own sends to run its worker).
pub(crate) fn register(path: *const SendPath) -> bool {
    let mut r = REGISTRY.lock();
    match r.iter_mut().find(|s| **s == 0) {
        Some(slot) => {
            *slot = path as usize;
            true
        }
        None => false,
    }
}

pub(crate) fn unregister(path: *const SendPath) {
    let mut r = REGISTRY.lock();
    for slot in r.iter_mut().filter(|s| **s == path as usize) {
        *slot = 0;
    }
}

/// Queues the worker DPC of every registered module with something queued. IRQL <= DISPATCH_LEVEL.
pub(crate) fn kick_all() {
    let r = REGISTRY.lock();
    for &p in r.iter().filter(|p| **p != 0) {
        // SAFETY: registered paths are live until unregistered (under this lock) at detach.
        let path = unsafe { &*(p as *const SendPath) };
        if !path.queue.lock_at_dpc().is_empty() {
            path.kick();
        }
    }
}

/// The 1 s tick for every module: originals queued longer than the hold budget are deep-copied and
/// completed ([`Trigger::Budget`]), then the worker is kicked if anything is queued. DISPATCH_LEVEL,
/// from the tick DPC only: detach unregisters a module and then flushes queued DPCs
/// (`KeFlushQueuedDpcs`), which waits for this DPC, so the paths copied out of the registry stay live
/// for the whole call without holding the registry lock across NDIS calls.
pub(crate) fn tick_all() {
    let paths: ArrayVec<usize, MAX_MODULES> = REGISTRY.lock().iter().copied().filter(|p| *p != 0).collect();
    for p in paths {
        // SAFETY: see above: live until detach's flush, which waits for this DPC.
        let path = unsafe { &*(p as *const SendPath) };
        let mut done = NblChain::new();
        evict_aged(path, &mut done);
        path.complete(done);
        if !path.queue.lock().is_empty() {
            path.kick();
        }
    }
}

/// The worker's per-module state: its DPC and counters.
pub(crate) struct Worker {
    pub(crate) dpc: core::cell::UnsafeCell<KDPC>,
    pub(crate) runs: AtomicU32,
    /// Originals in the queue (for the budget and pause).
    pub(crate) queued_originals: AtomicI64,
}

impl Worker {
    pub(crate) fn new() -> Self {
        Worker {
            // SAFETY: KDPC is plain C data, initialised by KeInitializeDpc at attach.
            dpc: core::cell::UnsafeCell::new(unsafe { core::mem::zeroed() }),
            runs: AtomicU32::new(0),
            queued_originals: AtomicI64::new(0),
        }
    }
}

impl SendPath {
    /// Queues the worker DPC. Any IRQL <= DISPATCH_LEVEL.
    pub(crate) fn kick(&self) {
        // SAFETY: the DPC was initialised at attach and lives in the module context until detach, which
        // removes and flushes it.
        let _ = unsafe { KeInsertQueueDpc(self.worker.dpc.get(), null_mut(), null_mut()) };
    }

    /// Whether `nbl` is one of this module's deep copies.
    pub(crate) fn is_copy(&self, nbl: *mut NET_BUFFER_LIST) -> bool {
        // SAFETY: an NBL the filter owns.
        unsafe { NdisGetPoolFromNetBufferList(nbl) == self.copy_pool }
    }
}

/// The worker DPC. DISPATCH_LEVEL. `context` is the module's [`SendPath`].
pub(crate) unsafe extern "system" fn worker_dpc(
    _dpc: *mut KDPC,
    context: *mut c_void,
    _a1: *mut c_void,
    _a2: *mut c_void,
) {
    // SAFETY: the context given to KeInitializeDpc: the module's send path, live until detach flushes
    // the DPC.
    let path = unsafe { &*context.cast::<SendPath>() };
    run(path);
}

/// Saves the extended processor state into `save` when the engine's AEAD backend may use AVX
/// (`KeSaveExtendedProcessorState` is callable at DISPATCH_LEVEL). Returns whether it saved; the caller
/// restores the same, unmoved `save` with [`xstate_leave`] on this processor, LIFO.
pub(crate) fn xstate_enter(save: &mut XSTATE_SAVE) -> bool {
    if !(datapath::Cipher::Aes256Gcm.needs_extended_state()
        || datapath::Cipher::ChaCha20Poly1305.needs_extended_state())
    {
        return false;
    }
    // SAFETY: IRQL <= DISPATCH_LEVEL; `save` stays in place on the caller's frame until the restore.
    let status = unsafe { KeSaveExtendedProcessorState(XSTATE_MASK_LEGACY | XSTATE_MASK_AVX, save) };
    NT_SUCCESS(status)
}

pub(crate) fn xstate_leave(save: &mut XSTATE_SAVE, saved: bool) {
    if saved {
        // SAFETY: the save of `xstate_enter`, same processor and frame, LIFO.
        unsafe { KeRestoreExtendedProcessorState(save) };
    }
}

/// Pending sealed packets for one peer.
struct Outbox {
    remote: Option<datapath::Endpoint>,
    items: ArrayVec<(u16, usize), SEND_BATCH>,
}

impl Outbox {
    fn flush(&mut self, t: &Transport) {
        if let Some(remote) = self.remote {
            if !self.items.is_empty() {
                t.send_batch(&remote, &self.items);
            }
        }
        self.items.clear();
    }
}

/// Why one NBL could not be sealed.
enum Stop {
    /// The transport cannot take it now (no socket, buffers or IRPs): keep it and every NBL behind it
    /// (as copies) for later.
    NotReady,
    /// No peer carries it now, or its peer has no key: park it (as a copy); the others go on.
    PeerNotReady,
}

/// How a round of the worker ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Round {
    /// The queue is empty.
    Empty,
    /// The round's budget ran out with NBLs left.
    More,
    /// The transport cannot take more now.
    Stopped,
}

/// One worker run over a module's queue: up to [`ROUNDS`] rounds of [`ROUND_NBLS`] NBLs, the locks taken
/// per round (so a send handler waiting for `CONFIG` waits at most one round) and the sealed originals
/// completed after each round with no lock held. DISPATCH_LEVEL (or below: the locks raise).
pub(crate) fn run(path: &SendPath) {
    path.worker.runs.fetch_add(1, Ordering::Relaxed);
    let mut last = Round::More;
    for _ in 0..ROUNDS {
        let mut done = NblChain::new();
        let parked;
        (last, parked) = round(path, &mut done);
        if last == Round::Stopped {
            // The transport cannot take the rest now: originals become copies, expired copies go.
            evict(path, Trigger::NotReady, &mut done);
        }
        if last == Round::Stopped || parked {
            expire_copies(path);
        }
        path.complete(done);
        if last != Round::More {
            break;
        }
    }
    let rekey = path.rekey.swap(0, Ordering::AcqRel);
    if rekey & 0x8000_0000 != 0 {
        control::queue_event(uapi::rdco_filter::RdcoEventKind::RekeyNeeded, rekey & 0x00FF_FFFF, None);
    }
    if last == Round::More {
        path.kick();
    }
}

/// One round under `TRANSPORT` → `CONFIG` (and the extended-state save): seal and send up to
/// [`ROUND_NBLS`] NBLs; sealed originals go to `done`. NBLs whose peer is not ready are parked (see the
/// module docs) and put back at the head of the queue when the round ends; the second value says
/// whether any was.
fn round(path: &SendPath, done: &mut NblChain) -> (Round, bool) {
    let tguard = transport::TRANSPORT.lock();
    let Some(t) = tguard.as_ref() else { return (Round::Stopped, false) };
    let mut cguard = control::CONFIG.lock();
    let Some(config) = cguard.as_mut() else { return (Round::Stopped, false) };
    let mut save = XSTATE_SAVE::zeroed();
    let saved = xstate_enter(&mut save);
    let mut out = Outbox { remote: None, items: ArrayVec::new() };
    let time = control::now();
    let mut result = Round::More;
    let mut parked = crate::send::Queue::new();
    let mut parked_seen = 0usize;
    let mut sealed = 0usize;
    // The round's NBLs come off the module's queue in one take (one lock round trip, not one per NBL);
    // what the round does not get to goes back to the head, in order.
    let mut taken = crate::send::Queue::new();
    let mut tally = RoundTally::new(ticks());
    while sealed < ROUND_NBLS {
        if parked_seen >= PARK_SCAN {
            // Only parked NBLs so far: end the run (no requeue); the tick or a key/route change kicks.
            result = Round::Empty;
            break;
        }
        if taken.is_empty() {
            taken = path.queue.lock().take_front(ROUND_NBLS - sealed);
        }
        let nbl = taken.pop();
        if nbl.is_null() {
            result = Round::Empty;
            break;
        }
        let copy = path.is_copy(nbl);
        match seal_nbl(path, t, config, time, nbl, &mut out, &mut tally) {
            Ok(()) => {
                if copy {
                    // SAFETY: our copy, unlinked by pop, sealed and done with.
                    unsafe { hold::free_copy(nbl) };
                } else {
                    offload::mark_lso_complete(nbl);
                    tally.finish(nbl, NDIS_STATUS_SUCCESS, done);
                }
                sealed += 1;
            }
            Err(Stop::NotReady) => {
                taken.push_front(nbl);
                result = Round::Stopped;
                break;
            }
            Err(Stop::PeerNotReady) => {
                parked_seen += 1;
                if copy {
                    parked.push(nbl);
                } else {
                    // SAFETY: an original the filter owns, unlinked by pop.
                    match unsafe {
                        hold::deep_copy(
                            path.filter_handle,
                            path.copy_pool,
                            nbl,
                            Trigger::NotReady,
                            &path.stats,
                        )
                    } {
                        Ok((head, _)) => {
                            stamp(head);
                            parked.push_chain(head);
                            finish_original(path, nbl, NDIS_STATUS_SUCCESS, done);
                        }
                        Err(status) => finish_original(path, nbl, status, done),
                    }
                }
            }
        }
    }
    out.flush(t);
    xstate_leave(&mut save, saved);
    tally.flush(path);
    let any_parked = !parked.is_empty();
    // Parked NBLs first, then what the round took and did not get to, then the rest: the queue's order.
    parked.append(taken);
    let mut q = path.queue.lock();
    q.prepend(parked);
    if result == Round::More && q.is_empty() {
        // Nothing left. (A full round sealed ROUND_NBLS: progress, so the run goes on even with parked
        // NBLs at the head; a round that sealed fewer found the queue empty or only parked NBLs.)
        result = Round::Empty;
    }
    drop(q);
    (result, any_parked)
}

/// Stamps the queue time on a chain of fresh copies (`Scratch`).
fn stamp(mut nbl: *mut NET_BUFFER_LIST) {
    while !nbl.is_null() {
        // SAFETY: our own copies, not yet queued.
        unsafe { (*nbl).Scratch = ticks() as usize as *mut c_void };
        // SAFETY: as above.
        nbl = unsafe { (*nbl).Next };
    }
}

/// What one round counts, added to the counters once when it ends (per-packet atomics were a large part
/// of the worker's cost).
struct RoundTally {
    /// Interrupt time when the round began: the end of every sealed original's hold.
    now: u64,
    tx_packets: u64,
    tx_bytes: u64,
    plaintext_copies: u64,
    hold_time_us: u64,
    /// Sealed originals taken off the queued count.
    finished: i64,
}

impl RoundTally {
    fn new(now: u64) -> Self {
        RoundTally { now, tx_packets: 0, tx_bytes: 0, plaintext_copies: 0, hold_time_us: 0, finished: 0 }
    }

    /// Completes-to-be: takes the original `nbl` off the held count (counted here, added at
    /// [`Self::flush`]) and adds it to `done` with `status`.
    fn finish(&mut self, nbl: *mut NET_BUFFER_LIST, status: i32, done: &mut NblChain) {
        // SAFETY: an original the filter owns; Scratch holds the time it was queued.
        let queued_at = unsafe { (*nbl).Scratch } as u64;
        // SAFETY: as above.
        unsafe { (*nbl).Scratch = null_mut() };
        self.hold_time_us += self.now.saturating_sub(queued_at) / 10;
        self.finished += 1;
        // SAFETY: as above.
        unsafe { (*nbl).Status = status };
        done.push(nbl);
    }

    fn flush(&mut self, path: &SendPath) {
        if self.finished > 0 {
            path.worker.queued_originals.fetch_sub(self.finished, Ordering::AcqRel);
            count!(path.stats, hold_time_us, self.hold_time_us);
        }
        if self.tx_packets > 0 {
            count!(path.stats, tx_packets, self.tx_packets);
            count!(path.stats, tx_bytes, self.tx_bytes);
        }
        if self.plaintext_copies > 0 {
            count!(path.stats, plaintext_copies, self.plaintext_copies);
        }
        *self = RoundTally::new(self.now);
    }
}

/// Completes-to-be, outside a round: takes `nbl` off the held count and adds it to `done` with
/// `status` ([`RoundTally::finish`], counted at once).
fn finish_original(path: &SendPath, nbl: *mut NET_BUFFER_LIST, status: i32, done: &mut NblChain) {
    let mut tally = RoundTally::new(ticks());
    tally.finish(nbl, status, done);
    tally.flush(path);
}

/// Seals every NET_BUFFER of `nbl` for the peer its destination routes to, into `out`. Caller holds
/// TRANSPORT and CONFIG.
fn seal_nbl(
    path: &SendPath,
    t: &Transport,
    config: &mut Config,
    time: datapath::Instant,
    nbl: *mut NET_BUFFER_LIST,
    out: &mut Outbox,
    tally: &mut RoundTally,
) -> Result<(), Stop> {
    // SAFETY: an NBL the filter owns (queued original or own copy).
    let first = unsafe { NET_BUFFER_LIST_FIRST_NB(nbl) };
    // SAFETY: an NB of the owned NBL, read while the filter owns it.
    let key = match unsafe { classify::route_key(first) } {
        Some(key) => Some(key),
        None => {
            let mut scratch = [0u8; HEAD_BYTES];
            // SAFETY: as above.
            classify::parse(unsafe { classify::head(first, &mut scratch) }).map(|h| (h.l2_len, h.dst))
        }
    };
    let Some((l2_len, dst)) = key else {
        count!(path.stats, drop_malformed, 1);
        return Ok(());
    };
    // No peer for it (several peers, no route yet, or the route went): wait for one, like a missing key.
    let Some(peer_id) = config.route(classify::inner_dest(&dst)) else { return Err(Stop::PeerNotReady) };
    let Some(peer) = config.peers.peer_mut(peer_id) else { return Err(Stop::PeerNotReady) };
    let Some(remote) = peer.remote() else {
        count!(path.stats, drop_other, 1);
        return Ok(());
    };
    if !t.can_send() {
        return Err(Stop::NotReady);
    }
    if peer.keys().primary().is_none() {
        return Err(Stop::PeerNotReady);
    }
    let offloads = offload::requests(nbl);
    // Packets of this NBL: every NB, or the segments of an LSO/USO super-packet. Check buffers first so
    // a half-sealed NBL never happens.
    let mut nb = first;
    let mut needed = 0;
    while !nb.is_null() {
        // SAFETY: NBs of the owned NBL.
        needed += unsafe { offload::packets_needed(nb, l2_len, &offloads) };
        // SAFETY: as above.
        nb = unsafe { NET_BUFFER_NEXT_NB(nb) };
    }
    if t.pool().in_use() + needed + 1 > transport::CIPHER_BUFFERS {
        return Err(Stop::NotReady);
    }
    if out.remote != Some(remote) {
        out.flush(t);
        out.remote = Some(remote);
    }
    let mut nb = first;
    while !nb.is_null() {
        let mut emit = |segments: &[&[u8]]| -> bool {
            let Some(index) = t.pool().take() else { return false };
            // SAFETY: we hold `index`.
            let buf = unsafe { t.pool().buffer(index) };
            match peer.seal(time, segments, buf) {
                Ok(sealed) => {
                    if sealed.rekey_needed {
                        path.rekey.store(peer_id | 0x8000_0000, Ordering::Relaxed);
                    }
                    if sealed.gathered {
                        tally.plaintext_copies += 1;
                    }
                    tally.tx_packets += 1;
                    tally.tx_bytes += sealed.len as u64;
                    if out.items.is_full() {
                        out.flush(t);
                    }
                    out.items.push((index, sealed.len));
                    true
                }
                Err(_) => {
                    t.pool().put(index);
                    count!(path.stats, drop_other, 1);
                    true
                }
            }
        };
        // Filled in place (a returned list of 16 slices was a 264-byte copy per packet).
        let mut segments = ArrayVec::<&[u8], { classify::MAX_SEGMENTS }>::new();
        // SAFETY: an NB of the owned NBL; the slices live while we own it.
        match unsafe { classify::nb_segments(nb, l2_len, &mut segments) } {
            Some(()) if offloads.is_none() && !copy_then_seal() => {
                emit(&segments);
            }
            _ => {
                // Offload requests to honour (checksums, LSO/USO), or an MDL chain longer than the
                // scatter list: build each packet in a scratch buffer first (counted).
                let Some(scratch) = t.pool().take() else { return Err(Stop::NotReady) };
                // SAFETY: we hold `scratch`.
                let sbuf = unsafe { t.pool().buffer(scratch) };
                // SAFETY: an NB of the owned NBL.
                unsafe { offload::for_each_packet(nb, l2_len, &offloads, sbuf, &mut emit) };
                t.pool().put(scratch);
            }
        }
        // SAFETY: as above.
        nb = unsafe { NET_BUFFER_NEXT_NB(nb) };
    }
    let _ = CIPHER_BUFFER_SIZE;
    Ok(())
}

/// Deep-copies every original left in the queue (`trigger`) and completes it; a copy that cannot be
/// made (ceiling, allocation) completes the original with the failure status. IRQL <= DISPATCH_LEVEL.
pub(crate) fn evict(path: &SendPath, trigger: Trigger, done: &mut NblChain) {
    let mut q = path.queue.lock();
    let mut rebuilt = crate::send::Queue::new();
    loop {
        let nbl = q.pop();
        if nbl.is_null() {
            break;
        }
        if path.is_copy(nbl) {
            rebuilt.push(nbl);
            continue;
        }
        // SAFETY: an original the filter owns, unlinked.
        match unsafe { hold::deep_copy(path.filter_handle, path.copy_pool, nbl, trigger, &path.stats) } {
            Ok((head, _)) => {
                rebuilt.push_chain(head);
                finish_original(path, nbl, NDIS_STATUS_SUCCESS, done);
            }
            Err(status) => finish_original(path, nbl, status, done),
        }
    }
    *q = rebuilt;
}

/// Originals that waited past the hold budget become copies ([`Trigger::Budget`]).
fn evict_aged(path: &SendPath, done: &mut NblChain) {
    let limit = u64::from(hold::POLICY.budget_ms.load(Ordering::Relaxed)) * 10_000;
    let now = ticks();
    let oldest = path.queue.lock().oldest_original(path);
    if oldest.is_some_and(|t| now.saturating_sub(t) >= limit) {
        evict(path, Trigger::Budget, done);
    }
}

/// Frees copies that waited longer than the policy allows for a transport (counted as `drop_no_key`).
fn expire_copies(path: &SendPath) {
    let limit = u64::from(hold::POLICY.copy_max_age_ms.load(Ordering::Relaxed)) * 10_000;
    let now = ticks();
    let mut expired = null_mut::<NET_BUFFER_LIST>();
    {
        let mut q = path.queue.lock();
        let mut kept = crate::send::Queue::new();
        loop {
            let nbl = q.pop();
            if nbl.is_null() {
                break;
            }
            // SAFETY: our queued NBL; Scratch holds its queue time.
            let at = unsafe { (*nbl).Scratch } as u64;
            if path.is_copy(nbl) && now.saturating_sub(at) > limit {
                // SAFETY: our copy, unlinked.
                unsafe { (*nbl).Next = expired };
                expired = nbl;
            } else {
                kept.push(nbl);
            }
        }
        *q = kept;
    }
    while !expired.is_null() {
        // SAFETY: our copy chain.
        let next = unsafe { (*expired).Next };
        // SAFETY: as above.
        unsafe { hold::free_copy(expired) };
        count!(path.stats, drop_no_key, 1);
        expired = next;
    }
}

/// Frees every copy left in the queue (detach). Originals must not remain (pause evicted them).
pub(crate) fn drop_all_copies(path: &SendPath) -> u64 {
    let mut n = 0;
    loop {
        let nbl = path.queue.lock().pop();
        if nbl.is_null() {
            return n;
        }
        if path.is_copy(nbl) {
            // SAFETY: our copy, unlinked.
            unsafe { hold::free_copy(nbl) };
            count!(path.stats, drop_other, 1);
            n += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Modules for the control device: LIST_MODULES and GET_STATS by IfIndex
// ---------------------------------------------------------------------------------------------

/// The state word of a module as `uapi::rdco_filter::module_state` reports it.
fn module_state(path: &SendPath) -> u32 {
    use uapi::rdco_filter::module_state;
    match path.state.load(Ordering::Acquire) {
        crate::send::RUNNING => module_state::RUNNING,
        crate::send::PAUSING => module_state::PAUSING,
        _ => module_state::PAUSED,
    }
}

/// `IOCTL_RDCO_FILTER_LIST_MODULES`: writes the attached modules (each one's miniport `IfIndex`, state,
/// LUID and miniport name) straight into `out` (the list is 4.8 KB: never built on the kernel stack).
/// Returns the bytes written. IRQL <= DISPATCH_LEVEL; the receive path's module registry lock, briefly.
pub(crate) fn list_modules(out: &mut [u8]) -> Result<usize, uapi::UapiError> {
    use uapi::rdco_filter::{RdcoModuleInfo, RdcoModuleList};
    let size = RdcoModuleList::write_header(out)?;
    let mut count = 0usize;
    let mut result = Ok(());
    crate::receive::for_each_module(|m| {
        let id = &m.send.identity;
        let info = RdcoModuleInfo::new(
            id.if_index,
            module_state(&m.send),
            id.net_luid,
            id.name.get(..id.name_len).unwrap_or(&[]),
        );
        if result.is_ok() && count < uapi::rdco_filter::MAX_MODULES {
            result = info.write_entry(out, count);
            count += 1;
        }
    });
    result?;
    RdcoModuleList::write_count(out, count)?;
    Ok(size)
}

/// The counters of the module above the miniport with this `IfIndex` (its send and receive halves
/// together), `None` if no attached module has it. IRQL <= DISPATCH_LEVEL; the receive path's module
/// registry lock, briefly.
pub(crate) fn module_stats(if_index: u32) -> Option<uapi::rdco_filter::RdcoStats> {
    let mut found = None;
    crate::receive::for_each_module(|m| {
        if found.is_none() && m.send.identity.if_index == if_index {
            let mut s = m.send.stats.snapshot();
            m.rx.stats.add_to(&mut s);
            found = Some(s);
        }
    });
    found
}
