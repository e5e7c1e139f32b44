//! The device's one keepalive timer: a periodic `KTIMER` whose DPC runs [`crate::control::Tunnel::poll`]
//! and acts on what it reports: seal and send a ping through the transport; on a timeout (client mode:
//! `STATUS_CONNECTION_DISCONNECTED` for the next read; server mode: a `DEL_PEER` notification) complete
//! the control device's parked reads and `NOTIFY_EVENT`s ([`crate::ioctl::service_reads`],
//! [`crate::ioctl::service_notifications`], under the tunnel lock as the glue requires). Started after
//! `NetAdapterStart`, cancelled and flushed in the device's cleanup.
//!
//! Pings, and the control packets user mode writes ([`send_control`]), are sent from a small pool of
//! their own, allocated when the timer starts, so they never compete with the Tx ring's buffers:
//! [`CONTROL_BUFFERS`] buffers of a whole control packet, then [`PING_BUFFERS`] small ones for pings,
//! each with its MDL. Server mode pings many peers in the same tick (every peer whose interval ran out),
//! so the ping buffers are as many as the socket has send IRPs; a ping that finds no buffer or no free
//! IRP is not sealed and stays due (the engine marks a peer pinged only when the ping is sealed), so the
//! next tick sends it.
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use arrayvec::ArrayVec;
use kernel::ffi::mdl::{IoAllocateMdl, IoFreeMdl, MmBuildMdlForNonPagedPool, MDL};
use kernel::ffi::ntos::{
    ExAllocatePool2, ExFreePoolWithTag, KeCancelTimer, KeFlushQueuedDpcs, KeInitializeDpc,
    KeInitializeTimerEx, KeSetTimerEx, NotificationTimer, FALSE, KDPC, KTIMER, LARGE_INTEGER,
    POOL_FLAG_NON_PAGED,
};
use kernel::wsk::SendBuffer;

use crate::control::Action;
use crate::device::{DeviceContext, DATA_POOL_TAG};
use crate::txq::SendCtx;

/// Timer period: the keepalive intervals are whole seconds.
pub(crate) const PERIOD_MS: i32 = 1000;
/// Buffers for control packets user mode writes (sent at once).
pub(crate) const CONTROL_BUFFERS: usize = 8;
/// Ping buffers (pings in flight at once): as many as the socket's send IRPs.
pub(crate) const PING_BUFFERS: usize = crate::transport::SEND_IRPS;
/// Every buffer of the pool.
const POOL_BUFFERS: usize = CONTROL_BUFFERS + PING_BUFFERS;
/// Bytes per ping buffer: a sealed ping (16-byte payload) plus the largest AEAD overhead, rounded up.
const PING_SLOT: usize = 128;
/// Bytes of the pool's one block.
const POOL_BYTES: usize = CONTROL_BUFFERS * PING_SIZE + PING_BUFFERS * PING_SLOT;
/// Bytes per control buffer: a control packet (at most [`crate::control::MAX_CONTROL_PACKET`]) behind the
/// TCP length prefix (the ping slot's 128 bytes hold a sealed ping plus the prefix).
const PING_SIZE: usize = crate::control::MAX_CONTROL_PACKET + crate::tcp::FRAME_HEADROOM;

const FREE: u8 = 0;
const BUSY: u8 = 1;

/// The timer, its DPC and the ping pool.
pub(crate) struct Keepalive {
    timer: UnsafeCell<core::mem::MaybeUninit<KTIMER>>,
    dpc: UnsafeCell<core::mem::MaybeUninit<KDPC>>,
    running: AtomicBool,
    block: UnsafeCell<*mut u8>,
    mdls: UnsafeCell<[*mut MDL; POOL_BUFFERS]>,
    state: [AtomicU8; POOL_BUFFERS],
}

// SAFETY: the timer and DPC are kernel objects used through the kernel's own synchronisation; the
// block and MDLs are written only at start/stop (PASSIVE_LEVEL, timer not running) and the buffers
// handed out by the `state` atomics.
unsafe impl Sync for Keepalive {}
// SAFETY: as above.
unsafe impl Send for Keepalive {}

impl Keepalive {
    pub(crate) const fn new() -> Keepalive {
        Keepalive {
            timer: UnsafeCell::new(core::mem::MaybeUninit::zeroed()),
            dpc: UnsafeCell::new(core::mem::MaybeUninit::zeroed()),
            running: AtomicBool::new(false),
            block: UnsafeCell::new(core::ptr::null_mut()),
            mdls: UnsafeCell::new([core::ptr::null_mut(); POOL_BUFFERS]),
            state: [const { AtomicU8::new(FREE) }; POOL_BUFFERS],
        }
    }

    /// Allocates the ping pool and starts the periodic timer. PASSIVE_LEVEL (after `NetAdapterStart`).
    /// Without memory for the pool the timer still runs (timeouts work; pings are skipped).
    pub(crate) fn start(&self, ctx: &'static DeviceContext) {
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: a plain non-paged allocation, freed in `stop`.
        let block = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, POOL_BYTES, DATA_POOL_TAG) }.cast::<u8>();
        if !block.is_null() {
            // SAFETY: the timer is not running: nothing else reads the pool fields.
            let mdls = unsafe { &mut *self.mdls.get() };
            for (i, m) in mdls.iter_mut().enumerate() {
                let (offset, len) = slot(i);
                // SAFETY: describes `len` bytes of the block at `offset` (inside POOL_BYTES).
                *m = unsafe {
                    IoAllocateMdl(
                        block.wrapping_add(offset).cast(),
                        len as u32,
                        FALSE,
                        FALSE,
                        core::ptr::null_mut(),
                    )
                };
                if !m.is_null() {
                    // SAFETY: an MDL over non-paged pool.
                    unsafe { MmBuildMdlForNonPagedPool(*m) };
                }
            }
            // SAFETY: as above.
            unsafe { *self.block.get() = block };
        }
        let timer = self.timer.get().cast::<KTIMER>();
        let dpc = self.dpc.get().cast::<KDPC>();
        // SAFETY: our storage, which lives as long as the device context.
        unsafe { KeInitializeTimerEx(timer, NotificationTimer) };
        let context: *mut c_void = core::ptr::from_ref(ctx).cast_mut().cast();
        // SAFETY: as above; the context outlives the timer (stopped in device cleanup).
        unsafe { KeInitializeDpc(dpc, Some(keepalive_dpc), context) };
        let due: LARGE_INTEGER = -(i64::from(PERIOD_MS) * 10_000);
        // SAFETY: initialised timer and DPC.
        unsafe { KeSetTimerEx(timer, due, PERIOD_MS, dpc) };
    }

    /// Stops the timer, waits for a running DPC, frees the ping pool. PASSIVE_LEVEL (device cleanup,
    /// after the socket closed: no ping is in flight).
    pub(crate) fn stop(&self) {
        if !self.running.swap(false, Ordering::AcqRel) {
            return;
        }
        // SAFETY: the timer was initialised in `start`.
        unsafe { KeCancelTimer(self.timer.get().cast()) };
        // SAFETY: PASSIVE_LEVEL; waits for a DPC already queued.
        unsafe { KeFlushQueuedDpcs() };
    }

    /// Frees the ping pool. PASSIVE_LEVEL, after [`Keepalive::stop`] and the socket's close.
    pub(crate) fn free(&self) {
        // SAFETY: the timer is stopped and no ping is in flight: nothing else touches the pool.
        let mdls = unsafe { &mut *self.mdls.get() };
        for m in mdls.iter_mut() {
            if !m.is_null() {
                // SAFETY: an MDL `start` allocated, freed once.
                unsafe { IoFreeMdl(*m) };
                *m = core::ptr::null_mut();
            }
        }
        // SAFETY: as above.
        let block = unsafe { &mut *self.block.get() };
        if !block.is_null() {
            // SAFETY: the block `start` allocated, freed once.
            unsafe { ExFreePoolWithTag((*block).cast(), DATA_POOL_TAG) };
            *block = core::ptr::null_mut();
        }
    }
}

/// Offset and length of pool buffer `i`: control buffers first, then the small ping buffers.
const fn slot(i: usize) -> (usize, usize) {
    if i < CONTROL_BUFFERS {
        (i * PING_SIZE, PING_SIZE)
    } else {
        (CONTROL_BUFFERS * PING_SIZE + (i - CONTROL_BUFFERS) * PING_SLOT, PING_SLOT)
    }
}

/// Takes a free buffer of `range` (FREE to BUSY). Any IRQL.
fn take(ctx: &DeviceContext, range: core::ops::Range<usize>) -> Option<usize> {
    let states = ctx.keepalive.state.get(range.clone())?;
    let k = states
        .iter()
        .position(|s| s.compare_exchange(FREE, BUSY, Ordering::AcqRel, Ordering::Acquire).is_ok())?;
    Some(range.start + k)
}

/// A ping's send completed. IRQL <= DISPATCH_LEVEL.
pub(crate) fn ping_done(ctx: &DeviceContext, index: usize) {
    if let Some(s) = ctx.keepalive.state.get(index) {
        s.store(FREE, Ordering::Release);
    }
}

/// The timer DPC. DISPATCH_LEVEL. Takes the tunnel lock, then (after releasing it) the socket lock.
unsafe extern "system" fn keepalive_dpc(
    _dpc: *mut KDPC,
    context: *mut c_void,
    _a1: *mut c_void,
    _a2: *mut c_void,
) {
    // SAFETY: the device context set in `start`, alive until the timer is stopped.
    let Some(ctx) = (unsafe { context.cast::<DeviceContext>().cast_const().as_ref() }) else { return };
    poll(ctx);
}

/// Runs the keepalive timers once (the DPC's work).
pub(crate) fn poll(ctx: &DeviceContext) {
    let now = crate::now();
    // On the DPC's stack: the peers due a ping this tick; never more than MAX_PEERS.
    let mut pings: ArrayVec<u32, { crate::control::MAX_PEERS }> = ArrayVec::new();
    {
        let mut t = ctx.tunnel.lock();
        let mut wake_reads = false;
        let mut notify = false;
        t.poll(now, |a| match a {
            Action::SendPing(peer) => {
                let _ = pings.try_push(peer);
            }
            Action::WakeReads => {
                wake_reads = true;
                ctx.counters.keepalive_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            // The peer is already deleted and its DEL_PEER notification queued (Action::Notify follows).
            Action::PeerExpired(_) => {
                ctx.counters.keepalive_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            Action::Notify => notify = true,
        });
        // Under the lock, so a read or NOTIFY_EVENT being parked meanwhile is found (see crate::ioctl).
        if wake_reads {
            crate::ioctl::service_reads(&mut t);
        }
        if notify {
            crate::ioctl::service_notifications(&mut t);
        }
    }
    for peer in pings {
        send_ping(ctx, peer, now);
    }
}

fn send_ping(ctx: &DeviceContext, peer: u32, now: datapath::Instant) {
    // SAFETY: written only at start/stop, when no DPC runs.
    let block = unsafe { *ctx.keepalive.block.get() };
    if block.is_null() {
        return;
    }
    if !ctx.transport.has_send_slot() {
        // Every send IRP is in flight: sealing now would mark the peer pinged for a ping that cannot
        // go. Unsealed, the peer stays due and is pinged at the next tick.
        return;
    }
    let Some(index) = take(ctx, CONTROL_BUFFERS..POOL_BUFFERS) else {
        // Every ping buffer is in flight: the peer stays due and is pinged at the next tick.
        return;
    };
    let (offset, len) = slot(index);
    // SAFETY: buffer `index` is ours (state BUSY) until its completion.
    let out = unsafe { core::slice::from_raw_parts_mut(block.wrapping_add(offset), len) };
    let headroom = ctx.transport.headroom();
    let sealed = {
        let mut t = ctx.tunnel.lock();
        let to = t.peer_info(peer).map(|i| crate::transport::wsk_addr(&i.remote));
        let sealed_at = out.get_mut(headroom..).unwrap_or_default();
        let s = t.peers().peer_mut(peer).and_then(|p| p.seal_keepalive(now, sealed_at).ok());
        if let Some(s) = &s {
            t.count_link(peer, 0, s.len as u64);
        }
        s.zip(to)
    };
    // SAFETY: written only at start/stop.
    let mdl = unsafe { (*ctx.keepalive.mdls.get())[index] };
    let Some((s, to)) = sealed else {
        ping_done(ctx, index);
        return;
    };
    let Some(framed) = crate::tcp::frame(out, headroom, s.len) else {
        ping_done(ctx, index);
        return;
    };
    // SAFETY: the MDL describes the ping buffer, untouched until the completion frees it.
    let Ok(buffer) = (unsafe { SendBuffer::new(mdl, 0, framed) }) else {
        ping_done(ctx, index);
        return;
    };
    match ctx.transport.send(&to, &[buffer], SendCtx::Ping(index)) {
        Ok(()) => {
            ctx.counters.keepalive_pings.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => ping_done(ctx, index),
    }
}

/// Sends one control packet (written by user mode, already checked by `Tunnel::write`) to `to`: copied
/// into a free pool buffer, which the send completion frees ([`ping_done`]). IRQL <= DISPATCH_LEVEL.
/// `STATUS_INVALID_BUFFER_SIZE` for a packet over the buffer size, `STATUS_DEVICE_BUSY` with every
/// buffer in flight, `STATUS_INSUFFICIENT_RESOURCES` without a pool, or the send's failure
/// (`STATUS_INVALID_DEVICE_STATE` with no socket open).
pub(crate) fn send_control(
    ctx: &DeviceContext,
    to: &kernel::wsk::SocketAddr,
    packet: &[u8],
) -> Result<(), kernel::ffi::ntos::NTSTATUS> {
    use kernel::ffi::ntos::{STATUS_DEVICE_BUSY, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_BUFFER_SIZE};
    if packet.is_empty() || packet.len() > crate::control::MAX_CONTROL_PACKET {
        return Err(STATUS_INVALID_BUFFER_SIZE);
    }
    if !ctx.transport.is_open() {
        return Err(kernel::ffi::ntos::STATUS_INVALID_DEVICE_STATE);
    }
    // SAFETY: written only at start/stop, when no sender runs.
    let block = unsafe { *ctx.keepalive.block.get() };
    if block.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    let index = take(ctx, 0..CONTROL_BUFFERS).ok_or(STATUS_DEVICE_BUSY)?;
    let (offset, len) = slot(index);
    // SAFETY: buffer `index` is ours (state BUSY) until its completion.
    let out = unsafe { core::slice::from_raw_parts_mut(block.wrapping_add(offset), len) };
    let headroom = ctx.transport.headroom();
    if let Some(dst) = out.get_mut(headroom..headroom + packet.len()) {
        dst.copy_from_slice(packet);
    }
    let framed = crate::tcp::frame(out, headroom, packet.len()).unwrap_or(packet.len());
    // SAFETY: written only at start/stop.
    let mdl = unsafe { (*ctx.keepalive.mdls.get())[index] };
    // SAFETY: the MDL describes the buffer, untouched until the completion frees it.
    let buffer = match unsafe { SendBuffer::new(mdl, 0, framed) } {
        Ok(b) => b,
        Err(status) => {
            ping_done(ctx, index);
            return Err(status);
        }
    };
    ctx.transport.send(to, &[buffer], SendCtx::Ping(index)).map_err(|e| {
        ping_done(ctx, index);
        e.status
    })
}
