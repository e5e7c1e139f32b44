//! The Tx queue: packets from the OS are sealed straight from their fragments into pooled ciphertext
//! buffers and sent through WSK in batches; a packet goes back to the OS only when its send completed,
//! in ring order.
//!
//! # Ring protocol (NetAdapterCx `NET_RING`, `ring.h`)
//! The OS posts packets by moving `EndIndex`. This queue owns `[BeginIndex, EndIndex)` and splits it
//! with `NextIndex`: `[BeginIndex, NextIndex)` were sealed and handed to WSK, `[NextIndex, EndIndex)`
//! wait. Each advance
//! 1. seals the waiting packets into the ciphertext buffer of the same ring index (the pool has one
//!    buffer of [`TX_BUFFER_SIZE`] bytes per packet-ring element, allocated at queue creation, each with
//!    its own MDL) and sends runs of packets to the same peer with one `WskSendMessages`, the batch's
//!    first ring index and length as the send's context;
//! 2. retires packets from `BeginIndex` while their buffer's state is [`DONE`], setting `Scratch` on each
//!    (the driver's "completed" mark) and moving the fragment ring's `BeginIndex` past their fragments.
//!    A packet whose send has not completed stops the walk: completions out of order never reorder the
//!    ring.
//!
//! The WSK completion (any IRQL <= DISPATCH_LEVEL, any CPU) only flips the batch's buffer states to
//! [`DONE`] (atomics: it must not touch ring memory the advance may be reading) and, if the OS armed
//! notification, calls `NetTxQueueNotifyMoreCompletedPacketsAvailable`.
//!
//! Cancel (`EvtPacketQueueCancel`): waiting packets are dropped, packets in flight are retired at once
//! (their plaintext is no longer needed: the ciphertext is in the pool) and their buffers become
//! [`ORPHAN`] until their completion arrives; the pool outlives the queue (freed at device cleanup,
//! after the socket closed).
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use arrayvec::ArrayVec;
use kernel::ffi::mdl::{IoAllocateMdl, IoFreeMdl, MmBuildMdlForNonPagedPool, MDL};
use kernel::ffi::netcx::{
    NetExtensionTypeFragment, NetRingGetElementAtIndex, NetRingIncrementIndex, NetRingTypeFragment,
    NetRingTypePacket, NETADAPTER, NETPACKETQUEUE, NET_EXTENSION, NET_FRAGMENT,
    NET_FRAGMENT_EXTENSION_MDL_NAME, NET_FRAGMENT_EXTENSION_VIRTUAL_ADDRESS_NAME, NET_PACKET,
    NET_PACKET_QUEUE_CONFIG, NET_RING, PNETTXQUEUE_INIT,
};
use kernel::ffi::ntos::{
    ExAllocatePool2, ExFreePoolWithTag, BOOLEAN, FALSE, NTSTATUS, NT_SUCCESS, POOL_FLAG_NON_PAGED,
    STATUS_DEVICE_BUSY, STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS,
};
use kernel::netcx::{self, Direction};
use kernel::sync::SpinLock;
use kernel::wsk::{SendBuffer, SocketAddr};

use crate::device::{self, DeviceContext, DATA_POOL_TAG};

/// Largest packet ring the queue supports (the pool has one buffer per element).
pub(crate) const MAX_TX_PACKETS: usize = 1024;
/// Bytes per ciphertext buffer: an MTU-sized packet plus the AEAD overhead, rounded up.
pub(crate) const TX_BUFFER_SIZE: usize = 2048;
/// Most fragments of one Tx packet sealed in one pass.
pub(crate) const MAX_TX_FRAGMENTS: usize = 16;

/// Buffer free (or its packet not sealed yet).
pub(crate) const IDLE: u8 = 0;
/// Sealed and handed to WSK.
pub(crate) const IN_FLIGHT: u8 = 1;
/// Send completed (or the packet was dropped): the packet may retire.
pub(crate) const DONE: u8 = 2;
/// The packet retired (cancel) while its send was in flight: the completion frees the buffer.
pub(crate) const ORPHAN: u8 = 3;

/// What a send carries to its completion: the batch's first ring index and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendCtx {
    /// Tx packets `first .. first + count` (ring indices, wrapping with the mask).
    Packets { first: u32, count: u32, mask: u32 },
    /// A keepalive ping in ping buffer `index`.
    Ping(usize),
}

/// Host builds only: the Tx path gathers every packet's fragments into one scratch buffer and seals the
/// copy (the gather-copy design the zero-copy path replaces), for the bench's whole-path baseline row.
/// Never in a kernel image.
#[cfg(not(target_os = "windows"))]
pub(crate) static GATHER_COPY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Scratch buffers behind the ciphertext buffers: one on host builds (the bench baseline), none in a
/// kernel image.
const GATHER_BUFFERS: usize = if cfg!(target_os = "windows") { 0 } else { 1 };

/// The ciphertext pool: `count` buffers of [`TX_BUFFER_SIZE`] in one non-paged block, one MDL each.
struct TxPool {
    base: *mut u8,
    count: usize,
    mdls: [*mut MDL; MAX_TX_PACKETS],
}

// SAFETY: the block and MDLs are non-paged memory owned by the pool; which buffer may be written is
// decided by the per-buffer state atomics.
unsafe impl Send for TxPool {}

impl TxPool {
    /// Allocates `count` buffers with their MDLs. PASSIVE_LEVEL (queue creation).
    fn new(count: usize) -> Result<TxPool, NTSTATUS> {
        // SAFETY: a plain non-paged allocation; freed in `free`.
        let base = unsafe {
            ExAllocatePool2(POOL_FLAG_NON_PAGED, (count + GATHER_BUFFERS) * TX_BUFFER_SIZE, DATA_POOL_TAG)
        }
        .cast::<u8>();
        if base.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        let mut pool = TxPool { base, count: 0, mdls: [core::ptr::null_mut(); MAX_TX_PACKETS] };
        for i in 0..count {
            let va = base.wrapping_add(i * TX_BUFFER_SIZE);
            // SAFETY: describes TX_BUFFER_SIZE bytes of the block just allocated.
            let mdl = unsafe {
                IoAllocateMdl(va.cast(), TX_BUFFER_SIZE as u32, FALSE, FALSE, core::ptr::null_mut())
            };
            if mdl.is_null() {
                pool.free();
                return Err(STATUS_INSUFFICIENT_RESOURCES);
            }
            // SAFETY: an MDL over non-paged pool.
            unsafe { MmBuildMdlForNonPagedPool(mdl) };
            pool.mdls[i] = mdl;
            pool.count = i + 1;
        }
        Ok(pool)
    }

    /// Host builds: the scratch buffer behind the `count` ciphertext buffers that the bench's gather-copy
    /// baseline copies each packet into (`test_hooks::set_tx_gather_copy`). A raw pointer: the caller
    /// holds the pool lock and uses it while it writes only ciphertext buffers (distinct memory).
    #[cfg(not(target_os = "windows"))]
    fn gather(&mut self) -> *mut u8 {
        self.base.wrapping_add(self.count * TX_BUFFER_SIZE)
    }

    fn buffer(&mut self, i: usize) -> &mut [u8] {
        // SAFETY: buffer i of the block; the caller holds the pool lock and the buffer's state says it
        // is not in flight.
        unsafe { core::slice::from_raw_parts_mut(self.base.wrapping_add(i * TX_BUFFER_SIZE), TX_BUFFER_SIZE) }
    }

    fn free(&mut self) {
        for m in &mut self.mdls[..self.count] {
            // SAFETY: an MDL this pool allocated, freed once.
            unsafe { IoFreeMdl(*m) };
            *m = core::ptr::null_mut();
        }
        self.count = 0;
        if !self.base.is_null() {
            // SAFETY: the block allocated in `new`, freed once.
            unsafe { ExFreePoolWithTag(self.base.cast(), DATA_POOL_TAG) };
            self.base = core::ptr::null_mut();
        }
    }
}

/// The queue's ring pointers and extensions (valid while the queue lives).
#[derive(Clone, Copy)]
struct TxRing {
    packets: *mut NET_RING,
    fragments: *mut NET_RING,
    va: Option<NET_EXTENSION>,
    mdl: Option<NET_EXTENSION>,
}

// SAFETY: the framework's ring storage, used only from the queue's serialized callbacks.
unsafe impl Send for TxRing {}

/// The device's Tx state.
pub(crate) struct TxState {
    queue: AtomicUsize,
    notify: AtomicBool,
    cancelled: AtomicBool,
    state: [AtomicU8; MAX_TX_PACKETS],
    ring: SpinLock<Option<TxRing>>,
    pool: SpinLock<Option<TxPool>>,
}

impl TxState {
    pub(crate) fn new() -> TxState {
        TxState {
            queue: AtomicUsize::new(0),
            notify: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            state: [const { AtomicU8::new(IDLE) }; MAX_TX_PACKETS],
            ring: SpinLock::new(None),
            pool: SpinLock::new(None),
        }
    }

    /// Frees the ciphertext pool. PASSIVE_LEVEL, device cleanup (the socket is closed: no send is in
    /// flight).
    pub(crate) fn free_pool(&self) {
        let pool = self.pool.lock().take();
        if let Some(mut p) = pool {
            p.free();
        }
    }

    /// Buffers whose send has not completed (in flight or orphaned).
    pub(crate) fn in_flight(&self) -> usize {
        self.state.iter().filter(|s| matches!(s.load(Ordering::Acquire), IN_FLIGHT | ORPHAN)).count()
    }
}

fn packet<'a>(ring: *mut NET_RING, i: u32) -> &'a mut NET_PACKET {
    // SAFETY: `ring` is the live packet ring; the index is masked below NumberOfElements.
    let mask = unsafe { (*ring).ElementIndexMask };
    // SAFETY: as above.
    let at = unsafe { NetRingGetElementAtIndex(ring, i & mask) };
    // SAFETY: a NET_PACKET element in the client's range; the queue's callbacks are serialized.
    unsafe { &mut *at.cast::<NET_PACKET>() }
}

fn fragment<'a>(ring: *mut NET_RING, i: u32) -> &'a NET_FRAGMENT {
    // SAFETY: as in `packet`.
    let mask = unsafe { (*ring).ElementIndexMask };
    // SAFETY: as above.
    let at = unsafe { NetRingGetElementAtIndex(ring, i & mask) };
    // SAFETY: a NET_FRAGMENT element in the client's range.
    unsafe { &*at.cast::<NET_FRAGMENT>() }
}

fn hdr<'a>(ring: *mut NET_RING) -> &'a mut NET_RING {
    // SAFETY: the live ring; only the client's header fields are written.
    unsafe { &mut *ring }
}

/// `EVT_NET_ADAPTER_CREATE_TXQUEUE`. PASSIVE_LEVEL.
pub(crate) unsafe extern "system" fn evt_create_txqueue(
    adapter: NETADAPTER,
    init: PNETTXQUEUE_INIT,
) -> NTSTATUS {
    let Some(ctx) = device::context_of(adapter.cast()) else { return STATUS_INSUFFICIENT_RESOURCES };
    match create(ctx, init) {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

fn create(ctx: &'static DeviceContext, init: PNETTXQUEUE_INIT) -> Result<(), NTSTATUS> {
    let mut config =
        NET_PACKET_QUEUE_CONFIG::init(Some(evt_advance), Some(evt_set_notification), Some(evt_cancel));
    let mut attributes = device::pointer_attributes();
    // SAFETY: the framework's init, inside the create callback.
    let queue =
        unsafe { netcx::queue_create(Direction::Tx, init.cast(), Some(&mut attributes), &mut config) }?;
    device::attach(queue.cast(), ctx)?;
    // SAFETY: our live queue, PASSIVE_LEVEL.
    let rings = unsafe { netcx::ring_collection(Direction::Tx, queue) };
    // SAFETY: the framework's collection for the queue's lifetime.
    let rings = unsafe { rings.as_ref() }.ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    let packets = rings.Rings[NetRingTypePacket];
    let fragments = rings.Rings[NetRingTypeFragment];
    // SAFETY: the live packet ring.
    let n = unsafe { (*packets).NumberOfElements } as usize;
    if n > MAX_TX_PACKETS {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: our live queue; the names are NUL-terminated statics.
    let va = unsafe {
        netcx::extension(
            Direction::Tx,
            queue,
            &NET_FRAGMENT_EXTENSION_VIRTUAL_ADDRESS_NAME,
            1,
            NetExtensionTypeFragment,
        )
    };
    // SAFETY: as above.
    let mdl = unsafe {
        netcx::extension(Direction::Tx, queue, &NET_FRAGMENT_EXTENSION_MDL_NAME, 1, NetExtensionTypeFragment)
    };
    {
        let mut pool = ctx.tx.pool.lock();
        if pool.as_ref().is_none_or(|p| p.count < n) {
            if let Some(mut old) = pool.take() {
                if ctx.tx.in_flight() != 0 {
                    // A completion still points into the old pool: keep it, refuse the queue.
                    *pool = Some(old);
                    return Err(STATUS_DEVICE_BUSY);
                }
                old.free();
            }
        }
    }
    if ctx.tx.pool.lock().is_none() {
        // Allocated at PASSIVE_LEVEL outside the spin lock.
        let fresh = TxPool::new(n)?;
        *ctx.tx.pool.lock() = Some(fresh);
    }
    *ctx.tx.ring.lock() = Some(TxRing { packets, fragments, va, mdl });
    ctx.tx.cancelled.store(false, Ordering::Release);
    ctx.tx.notify.store(false, Ordering::Release);
    ctx.tx.queue.store(queue as usize, Ordering::Release);
    Ok(())
}

unsafe extern "system" fn evt_set_notification(queue: NETPACKETQUEUE, enabled: BOOLEAN) {
    let Some(ctx) = device::context_of(queue.cast()) else { return };
    ctx.tx.notify.store(enabled != 0, Ordering::Release);
    if enabled != 0 && ready_to_retire(ctx) && ctx.tx.notify.swap(false, Ordering::AcqRel) {
        // SAFETY: our live queue; notification was armed.
        unsafe { netcx::notify(Direction::Tx, queue) };
    }
}

/// Whether the packet at `BeginIndex` can retire now (a completion arrived before notification was armed).
fn ready_to_retire(ctx: &DeviceContext) -> bool {
    let ring = *ctx.tx.ring.lock();
    let Some(r) = ring else { return false };
    let h = hdr(r.packets);
    h.BeginIndex != h.NextIndex
        && ctx.tx.state.get(h.BeginIndex as usize).is_some_and(|s| s.load(Ordering::Acquire) == DONE)
}

unsafe extern "system" fn evt_cancel(queue: NETPACKETQUEUE) {
    let Some(ctx) = device::context_of(queue.cast()) else { return };
    ctx.tx.cancelled.store(true, Ordering::Release);
    // Completions after this never notify: the queue is going away.
    ctx.tx.notify.store(false, Ordering::Release);
    ctx.tx.queue.store(0, Ordering::Release);
}

/// `EVT_PACKET_QUEUE_ADVANCE`. PASSIVE_LEVEL or DISPATCH_LEVEL; serialized with the queue's other
/// callbacks. Takes the Tx ring and pool locks, the tunnel lock while sealing, the socket lock while
/// sending.
unsafe extern "system" fn evt_advance(queue: NETPACKETQUEUE) {
    let Some(ctx) = device::context_of(queue.cast()) else { return };
    let ring = *ctx.tx.ring.lock();
    let Some(r) = ring else { return };
    if ctx.tx.cancelled.load(Ordering::Acquire) {
        drain_cancelled(ctx, &r);
        return;
    }
    submit(ctx, &r);
    retire(ctx, &r);
}

/// Cancel: every packet goes back; sends in flight keep their buffers until they complete.
fn drain_cancelled(ctx: &DeviceContext, r: &TxRing) {
    let (pr, fr) = (hdr(r.packets), hdr(r.fragments));
    let mut i = pr.BeginIndex;
    while i != pr.EndIndex {
        let s = &ctx.tx.state[i as usize];
        if s.compare_exchange(IN_FLIGHT, ORPHAN, Ordering::AcqRel, Ordering::Acquire).is_err() {
            let _ = s.compare_exchange(DONE, IDLE, Ordering::AcqRel, Ordering::Acquire);
        }
        packet(r.packets, i).set_scratch(true);
        i = NetRingIncrementIndex(pr, i);
    }
    pr.BeginIndex = pr.EndIndex;
    pr.NextIndex = pr.EndIndex;
    fr.BeginIndex = fr.EndIndex;
}

/// Moves `BeginIndex` over completed packets, in order.
fn retire(ctx: &DeviceContext, r: &TxRing) {
    let (pr, fr) = (hdr(r.packets), hdr(r.fragments));
    let mut i = pr.BeginIndex;
    let mut fragment_end = None;
    while i != pr.NextIndex {
        let s = &ctx.tx.state[i as usize];
        if s.compare_exchange(DONE, IDLE, Ordering::AcqRel, Ordering::Acquire).is_err() {
            break;
        }
        let p = packet(r.packets, i);
        p.set_scratch(true);
        fragment_end = Some(p.FragmentIndex.wrapping_add(u32::from(p.FragmentCount)) & fr.ElementIndexMask);
        i = NetRingIncrementIndex(pr, i);
    }
    pr.BeginIndex = i;
    if let Some(end) = fragment_end {
        fr.BeginIndex = end;
    }
}

/// One sealed packet waiting in the batch being built.
struct Pending {
    index: u32,
    buffer: SendBuffer,
}

/// Seals `[NextIndex, EndIndex)` and sends it in batches of one destination.
fn submit(ctx: &DeviceContext, r: &TxRing) {
    let pr = hdr(r.packets);
    let mask = pr.ElementIndexMask;
    let now = crate::now();
    let mut batch: ArrayVec<Pending, { crate::transport::SEND_BATCH }> = ArrayVec::new();
    let mut batch_to: Option<SocketAddr> = None;
    let mut pool_guard = ctx.tx.pool.lock();
    let Some(pool) = pool_guard.as_mut() else { return };
    // Send IRPs this advance may still take, counted down per batch handed to WSK (completions only
    // free more meanwhile, so the count never overstates what is free).
    let mut spare = ctx
        .transport
        .with_socket(|s| s.send_capacity().saturating_sub(s.sends_in_flight()))
        .unwrap_or(usize::MAX);
    while pr.NextIndex != pr.EndIndex {
        let i = pr.NextIndex;
        let state = &ctx.tx.state[i as usize];
        if state.load(Ordering::Acquire) != IDLE {
            // The buffer of this index is still out from an earlier queue (cancel): wait for it.
            break;
        }
        // TCP: 2 bytes of headroom for the stream's length prefix, and one packet per send.
        let headroom = ctx.transport.headroom();
        if (batch.is_empty() || batch.is_full() || headroom != 0) && !ctx.transport.has_send_slot() {
            // Every send IRP is in flight: leave the packet unsealed (sealing uses its packet id) until
            // a completion frees one; that completion notifies the queue.
            break;
        }
        if !batch.is_empty() && spare < 2 {
            // The packet may start a new batch (server mode: another peer; or the batch is full) while
            // the current one still waits to go: sealing it needs an IRP for each. Which peer it goes
            // to is known only once it is routed, so a pending batch reserves two; otherwise a sealed
            // packet (its packet id spent) could find no IRP and be dropped. Every IRP counted here
            // is in flight or about to be, so a completion notifies the queue and nothing stalls.
            break;
        }
        let p = *packet(r.packets, i);
        #[cfg(not(target_os = "windows"))]
        let gather = GATHER_COPY.load(Ordering::Relaxed).then(|| pool.gather());
        #[cfg(target_os = "windows")]
        let gather: Option<*mut u8> = None;
        let sealed =
            seal(ctx, r, &p, pool.buffer(i as usize).get_mut(headroom..).unwrap_or_default(), now, gather)
                .and_then(|(len, to)| Some((crate::tcp::frame(pool.buffer(i as usize), headroom, len)?, to)));
        let Some((len, to)) = sealed else {
            // Dropped: nothing to send; it retires in order.
            ctx.counters.tx_dropped.fetch_add(1, Ordering::Relaxed);
            state.store(DONE, Ordering::Release);
            pr.NextIndex = NetRingIncrementIndex(pr, i);
            continue;
        };
        let own_send = headroom != 0 && !batch.is_empty();
        let new_batch = batch_to.is_some_and(|t| t != to) || batch.is_full() || own_send;
        if new_batch {
            spare = spare.saturating_sub(1);
        }
        if new_batch && !flush(ctx, &mut batch, batch_to, mask) {
            // Backpressure: a sealed packet cannot be resealed later (its packet id is used), so it is
            // dropped and the rest waits for the next advance.
            ctx.counters.tx_dropped.fetch_add(1, Ordering::Relaxed);
            state.store(DONE, Ordering::Release);
            pr.NextIndex = NetRingIncrementIndex(pr, i);
            break;
        }
        batch_to = Some(to);
        // SAFETY: the pool's MDL for buffer i describes TX_BUFFER_SIZE >= len bytes; the buffer stays
        // untouched while its state is IN_FLIGHT, i.e. until the send completes.
        let buffer = match unsafe { SendBuffer::new(pool.mdls[i as usize], 0, len) } {
            Ok(b) => b,
            Err(_) => {
                state.store(DONE, Ordering::Release);
                pr.NextIndex = NetRingIncrementIndex(pr, i);
                continue;
            }
        };
        state.store(IN_FLIGHT, Ordering::Release);
        batch.push(Pending { index: i, buffer });
        pr.NextIndex = NetRingIncrementIndex(pr, i);
    }
    drop(pool_guard);
    flush(ctx, &mut batch, batch_to, mask);
}

/// Sends the batch (consecutive ring indices). Returns false if WSK refused it; its packets are then
/// marked done (dropped).
fn flush(
    ctx: &DeviceContext,
    batch: &mut ArrayVec<Pending, { crate::transport::SEND_BATCH }>,
    to: Option<SocketAddr>,
    mask: u32,
) -> bool {
    let (Some(first), Some(to)) = (batch.first().map(|p| p.index), to) else {
        batch.clear();
        return true;
    };
    let count = batch.len() as u32;
    let mut buffers: ArrayVec<SendBuffer, { crate::transport::SEND_BATCH }> = ArrayVec::new();
    for p in batch.iter() {
        buffers.push(p.buffer);
    }
    let context = SendCtx::Packets { first, count, mask };
    let sent = ctx.transport.send(&to, &buffers, context);
    let ok = sent.is_ok();
    if ok {
        ctx.counters.tx_batches.fetch_add(1, Ordering::Relaxed);
        ctx.counters.tx_sealed.fetch_add(u64::from(count), Ordering::Relaxed);
    } else {
        for p in batch.iter() {
            ctx.tx.state[p.index as usize].store(DONE, Ordering::Release);
        }
        ctx.counters.tx_dropped.fetch_add(u64::from(count), Ordering::Relaxed);
        let mut t = ctx.tunnel.lock();
        let st = t.stats_mut();
        st.lost_out_data_packets = st.lost_out_data_packets.wrapping_add(count as i32);
    }
    batch.clear();
    ok
}

/// Seals packet `p` from its fragments into `out`. Returns the ciphertext length and destination, or
/// `None` when the packet is dropped (no socket, no peer or key, too many fragments, too big).
fn seal(
    ctx: &DeviceContext,
    r: &TxRing,
    p: &NET_PACKET,
    out: &mut [u8],
    now: datapath::Instant,
    gather: Option<*mut u8>,
) -> Option<(usize, SocketAddr)> {
    if !ctx.transport.is_open() {
        return None;
    }
    let mut segments: ArrayVec<&[u8], MAX_TX_FRAGMENTS> = ArrayVec::new();
    let fmask = hdr(r.fragments).ElementIndexMask;
    let mut plain = 0usize;
    for k in 0..u32::from(p.FragmentCount) {
        let fi = p.FragmentIndex.wrapping_add(k) & fmask;
        let f = fragment(r.fragments, fi);
        let base = fragment_base(r, fi)?;
        let (off, len) = (usize::try_from(f.offset()).ok()?, usize::try_from(f.valid_length()).ok()?);
        // SAFETY: the OS describes ValidLength bytes at the fragment's address + Offset, valid until
        // the packet is returned (after this seal).
        let bytes = unsafe { core::slice::from_raw_parts(base.wrapping_add(off), len) };
        segments.try_push(bytes).ok()?;
        plain += len;
    }
    if plain > ctx.mtu.load(Ordering::Acquire) {
        return None;
    }
    let mut linear: Option<&[u8]> = None;
    if let Some(g) = gather.filter(|_| plain <= TX_BUFFER_SIZE) {
        // SAFETY: the pool's scratch buffer (`TxPool::gather`): TX_BUFFER_SIZE bytes, written only here,
        // under the pool lock the caller holds, and distinct from `out`.
        let buf = unsafe { core::slice::from_raw_parts_mut(g, plain) };
        let mut at = 0;
        for s in &segments {
            buf.get_mut(at..at + s.len())?.copy_from_slice(s);
            at += s.len();
        }
        linear = Some(buf);
    }
    if let Some(l) = linear {
        segments.clear();
        segments.push(l);
    }
    let mut t = ctx.tunnel.lock();
    if !t.started() {
        let st = t.stats_mut();
        st.lost_out_data_packets = st.lost_out_data_packets.wrapping_add(1);
        return None;
    }
    // Client mode has one peer and no routes (everything goes to it); server mode routes by the inner
    // destination (peer VPN addresses and iroutes).
    let result = match t.mode() {
        uapi::ovpn::OvpnMode::P2p => match t.peers().peers_mut().next() {
            Some(peer) => peer.seal(now, &segments, out),
            None => Err(datapath::keys::SealError::NoRoute),
        },
        uapi::ovpn::OvpnMode::Mp => t.peers().seal(now, &segments, out),
    };
    let sealed = match result {
        Ok(s) => s,
        Err(_) => {
            let st = t.stats_mut();
            st.lost_out_data_packets = st.lost_out_data_packets.wrapping_add(1);
            return None;
        }
    };
    let to = t.peer_info(sealed.peer_id).map(|i| crate::transport::wsk_addr(&i.remote))?;
    t.count_link(sealed.peer_id, 0, sealed.len as u64);
    let st = t.stats_mut();
    st.sent_data_packets = st.sent_data_packets.wrapping_add(1);
    st.transport_bytes_sent = st.transport_bytes_sent.wrapping_add(sealed.len as i64);
    st.tun_bytes_sent = st.tun_bytes_sent.wrapping_add(plain as i64);
    drop(t);
    if sealed.gathered {
        ctx.counters.tx_gathered.fetch_add(1, Ordering::Relaxed);
    }
    Some((sealed.len, to))
}

/// The mapped address of fragment `fi`'s buffer: the virtual-address extension, else the MDL's.
fn fragment_base(r: &TxRing, fi: u32) -> Option<*const u8> {
    if let Some(va) = r.va {
        // SAFETY: the extension holds one pointer per fragment index.
        let p = unsafe { va.data(fi).cast::<usize>().read() } as *const u8;
        if !p.is_null() {
            return Some(p);
        }
    }
    let ext = r.mdl?;
    // SAFETY: as above, an MDL pointer.
    let mdl = unsafe { ext.data(fi).cast::<usize>().read() } as *mut MDL;
    if mdl.is_null() {
        return None;
    }
    // SAFETY: the OS's MDL for the fragment, describing locked memory.
    let va = unsafe {
        kernel::ffi::mdl::MmGetSystemAddressForMdlSafe(
            mdl,
            kernel::ffi::mdl::NormalPagePriority | kernel::ffi::mdl::MdlMappingNoExecute,
        )
    };
    (!va.is_null()).then_some(va.cast::<u8>().cast_const())
}

/// A send completed. IRQL <= DISPATCH_LEVEL, any CPU. Marks the batch's packets done (atomics only)
/// and notifies the queue if the OS armed notification.
pub(crate) fn on_send_complete(ctx: &DeviceContext, status: NTSTATUS, _bytes: usize, context: SendCtx) {
    match context {
        SendCtx::Ping(index) => crate::keepalive::ping_done(ctx, index),
        SendCtx::Packets { first, count, mask } => {
            if !NT_SUCCESS(status) {
                ctx.counters.tx_send_errors.fetch_add(1, Ordering::Relaxed);
            }
            for k in 0..count {
                let i = first.wrapping_add(k) & mask;
                let Some(s) = ctx.tx.state.get(i as usize) else { continue };
                if s.compare_exchange(IN_FLIGHT, DONE, Ordering::AcqRel, Ordering::Acquire).is_err() {
                    let _ = s.compare_exchange(ORPHAN, IDLE, Ordering::AcqRel, Ordering::Acquire);
                }
            }
            let queue = ctx.tx.queue.load(Ordering::Acquire);
            if queue != 0 && ctx.tx.notify.swap(false, Ordering::AcqRel) {
                // SAFETY: our live queue (`evt_cancel` clears the handle before the queue goes away)
                // with notification armed by the OS.
                unsafe { netcx::notify(Direction::Tx, queue as NETPACKETQUEUE) };
            }
        }
    }
}
