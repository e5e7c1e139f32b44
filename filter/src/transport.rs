//! The tunnel's transport, one per driver: a WSK client, one UDP socket (`kernel::wsk::UdpSocket`) and a
//! pool of ciphertext buffers, each with its own MDL, that sealed packets are written into and sent from.
//!
//! # Lifetime
//! Created (PASSIVE_LEVEL) by `IOCTL_RDCO_FILTER_ADD_PEER` when the first peer is added, bound to that
//! peer's local address; torn down (PASSIVE_LEVEL) when the last peer is removed and at unload. Teardown
//! takes the transport out of [`TRANSPORT`] under its lock (so no DPC can reach it any more), stops the
//! keepalive timer, then closes the socket outside the lock (the close waits for every send
//! completion), then frees the buffer pool, then deregisters the WSK client: the reverse of setup.
//!
//! # Locking
//! [`TRANSPORT`]: `SpinLock<Option<Transport>>`, held (DISPATCH_LEVEL) by whoever sends: the worker DPC
//! for a batch, the keepalive timer DPC, the control write. Lock order: `TRANSPORT` before
//! `control::CONFIG` before a module's queue lock. Send completions never take a lock: they give their
//! buffers back to the pool's lock-free bitmap.
//!
//! # Buffers
//! [`CIPHER_BUFFERS`] buffers of [`CIPHER_BUFFER_SIZE`] bytes in one non-paged block (tag `rdFt`),
//! allocated when the transport is created; a buffer is taken per sealed packet and returned by the WSK
//! completion of the send that carried it. No allocation per packet.
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arrayvec::ArrayVec;
use datapath::keepalive::KeepaliveAction;
use datapath::Endpoint;
use kernel::ffi::mdl::{IoAllocateMdl, IoFreeMdl, MmBuildMdlForNonPagedPool, MDL};
use kernel::ffi::ntos::{
    ExAllocatePool2, ExFreePoolWithTag, KeCancelTimer, KeFlushQueuedDpcs, KeInitializeDpc,
    KeInitializeTimerEx, KeSetTimerEx, KDPC, KTIMER, NTSTATUS, NT_SUCCESS, POOL_FLAG_NON_PAGED,
    STATUS_DEVICE_BUSY, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use kernel::pool::PoolBox;
use kernel::sync::SpinLock;
use kernel::wsk::{
    DatagramChain, Receiver, RetainDecision, SendBuffer, SendCompletion, SocketAddr, SocketConfig, UdpSocket,
    WskClient,
};
use uapi::rdco_filter::RdcoEventKind;

use crate::control::{self, STATS};

/// Pool tag of the transport's blocks: 'rdFt'.
const TAG: u32 = u32::from_le_bytes(*b"rdFt");
/// Ciphertext buffers (a multiple of 64: one bitmap word per 64).
pub(crate) const CIPHER_BUFFERS: usize = 512;
/// Bytes per ciphertext buffer: an inner packet of a 1500-byte MTU plus two VLAN tags, with the largest
/// engine overhead, fits with room to spare.
pub(crate) const CIPHER_BUFFER_SIZE: usize = 2048;
/// Datagrams per `WskSendMessages` call (and per completion).
pub(crate) const SEND_BATCH: usize = 32;
/// Send IRPs of the socket.
const SEND_IRPS: usize = 64;
/// Keepalive timer period, milliseconds.
const TICK_MS: i32 = 1000;

const WORDS: usize = CIPHER_BUFFERS / 64;

/// The buffers of one send: what a WSK completion gives back.
pub(crate) type Batch = ArrayVec<u16, SEND_BATCH>;

/// Ciphertext buffers with their MDLs and a lock-free free bitmap. Lives in a [`PoolBox`] (stable address)
/// that outlives the socket.
pub(crate) struct CipherPool {
    block: NonNull<u8>,
    mdls: [*mut MDL; CIPHER_BUFFERS],
    free: [AtomicU64; WORDS],
}

// SAFETY: the block and MDLs are owned by the pool; buffers are handed out exclusively through the
// atomic bitmap, so concurrent users never share a buffer.
unsafe impl Send for CipherPool {}
// SAFETY: as above.
unsafe impl Sync for CipherPool {}

impl CipherPool {
    /// Allocates the block and one MDL per buffer. IRQL <= DISPATCH_LEVEL. On failure everything
    /// allocated so far is freed (the pool's drop frees what is non-null).
    fn new() -> Result<PoolBox<CipherPool>, NTSTATUS> {
        // SAFETY: IRQL <= DISPATCH_LEVEL; null on failure, handled.
        let raw = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, CIPHER_BUFFERS * CIPHER_BUFFER_SIZE, TAG) };
        let block = NonNull::new(raw.cast::<u8>()).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        let pool = CipherPool {
            block,
            mdls: [null_mut(); CIPHER_BUFFERS],
            free: [const { AtomicU64::new(0) }; WORDS],
        };
        // On failure the pool value is dropped inside `new`, and its drop frees the block.
        let mut pool = PoolBox::new(pool, TAG)?;
        for i in 0..CIPHER_BUFFERS {
            let va = block.as_ptr().wrapping_add(i * CIPHER_BUFFER_SIZE).cast::<c_void>();
            // SAFETY: `va` is inside the non-paged block; a free-standing MDL (no IRP).
            let mdl = unsafe { IoAllocateMdl(va, CIPHER_BUFFER_SIZE as u32, 0, 0, null_mut()) };
            if mdl.is_null() {
                return Err(STATUS_INSUFFICIENT_RESOURCES);
            }
            // SAFETY: an MDL describing non-paged pool.
            unsafe { MmBuildMdlForNonPagedPool(mdl) };
            if let Some(slot) = pool.mdls.get_mut(i) {
                *slot = mdl;
            }
        }
        for w in &pool.free {
            w.store(u64::MAX, Ordering::Release);
        }
        Ok(pool)
    }

    /// Takes a free buffer. Any IRQL <= DISPATCH_LEVEL.
    pub(crate) fn take(&self) -> Option<u16> {
        kernel::sync::bitmap_take(&self.free).and_then(|i| u16::try_from(i).ok())
    }

    /// Gives a buffer back. Any IRQL <= DISPATCH_LEVEL.
    pub(crate) fn put(&self, index: u16) {
        kernel::sync::bitmap_put(&self.free, usize::from(index));
    }

    /// Buffers in use (taken and not yet given back).
    pub(crate) fn in_use(&self) -> usize {
        CIPHER_BUFFERS
            - self.free.iter().map(|w| w.load(Ordering::Acquire).count_ones() as usize).sum::<usize>()
    }

    /// The bytes of buffer `index`.
    ///
    /// # Safety
    /// The caller must hold `index` (taken with [`CipherPool::take`], not given back) and not have
    /// another slice of it alive.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn buffer(&self, index: u16) -> &mut [u8] {
        let start = usize::from(index).min(CIPHER_BUFFERS - 1) * CIPHER_BUFFER_SIZE;
        let base = self.block.as_ptr().wrapping_add(start);
        // SAFETY: inside the block; exclusive by the caller's contract (the bitmap gave it to them alone).
        unsafe { core::slice::from_raw_parts_mut(base, CIPHER_BUFFER_SIZE) }
    }

    fn mdl(&self, index: u16) -> *mut MDL {
        self.mdls.get(usize::from(index)).copied().unwrap_or(null_mut())
    }
}

impl Drop for CipherPool {
    /// IRQL <= DISPATCH_LEVEL; no buffer may be in flight (the socket closed first).
    fn drop(&mut self) {
        for mdl in self.mdls {
            if !mdl.is_null() {
                // SAFETY: from IoAllocateMdl above, freed once.
                unsafe { IoFreeMdl(mdl) };
            }
        }
        // SAFETY: allocated in `new` with TAG, freed once.
        unsafe { ExFreePoolWithTag(self.block.as_ptr().cast(), TAG) };
    }
}

/// WSK send completions: the buffers of the send go back to the pool.
pub(crate) struct TxDone {
    pool: *const CipherPool,
}

// SAFETY: the pool is Sync and outlives the socket (teardown closes the socket before freeing it).
unsafe impl Send for TxDone {}
// SAFETY: as above.
unsafe impl Sync for TxDone {}

impl SendCompletion for TxDone {
    type Context = Batch;

    /// IRQL <= DISPATCH_LEVEL. Takes no lock.
    fn on_send_complete(&self, status: NTSTATUS, _bytes: usize, context: Batch) {
        // SAFETY: the pool outlives every send completion (see `TxDone`).
        let pool = unsafe { &*self.pool };
        if !NT_SUCCESS(status) {
            STATS.drop_other.fetch_add(context.len() as u64, Ordering::Relaxed);
        }
        for index in context {
            pool.put(index);
        }
    }
}

/// Datagrams arriving on the tunnel socket: outer datagrams the stack reassembled (the NIC-level
/// receive path never intercepts fragments). Each takes the receive half's open-and-indicate path
/// (`receive::wsk_datagram`: one copy into a copy slot, opened there, indicated on a Running module);
/// the WSK buffers are handed back at once. A datagram no module can take (none Running, no free slot)
/// is dropped and counted, never silently lost.
pub(crate) struct RxSink;

impl Receiver for RxSink {
    /// IRQL <= DISPATCH_LEVEL.
    fn on_datagrams(&self, mut chain: DatagramChain<'_>) -> RetainDecision {
        for datagram in chain.iter() {
            let from = match datagram.remote() {
                Some(SocketAddr::V4 { ip, port }) => Endpoint::V4 { addr: ip, port },
                Some(SocketAddr::V6 { ip, port, .. }) => Endpoint::V6 { addr: ip, port },
                None => {
                    STATS.drop_malformed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let status = crate::receive::wsk_datagram(datagram.len(), datagram.segments(), from);
            if status == kernel::ffi::ndis::NDIS_STATUS_PAUSED {
                STATS.drop_other.fetch_add(1, Ordering::Relaxed);
            }
        }
        RetainDecision::CONSUMED
    }
}

/// The driver's transport. Field order is drop order: socket, then pool, then client.
pub(crate) struct Transport {
    socket: UdpSocket<RxSink, TxDone>,
    pool: PoolBox<CipherPool>,
    _client: WskClient,
}

// SAFETY: the pool block is owned by the transport and its buffers are handed out through atomics
// (CipherPool is Sync); moving the transport between processors moves that ownership with it.
unsafe impl Send for Transport {}

impl Transport {
    /// The socket's local UDP port.
    pub(crate) fn local_port(&self) -> u16 {
        self.socket.local_addr().port()
    }

    /// The ciphertext buffer pool.
    pub(crate) fn pool(&self) -> &CipherPool {
        &self.pool
    }

    /// Whether a send could start now (an IRP is free): the WSK backpressure test.
    pub(crate) fn can_send(&self) -> bool {
        self.socket.sends_in_flight() < self.socket.send_capacity()
    }

    /// Sends the sealed buffers `items` (index, length) to `remote` in one batch (`WskSendMessages`
    /// where the provider has it, else one `WskSendTo` each). IRQL <= DISPATCH_LEVEL. Buffers of sends
    /// that were refused go back to the pool and are counted as dropped; returns how many were refused.
    pub(crate) fn send_batch(&self, remote: &Endpoint, items: &[(u16, usize)]) -> usize {
        let remote = socket_addr(remote);
        let mut buffers: ArrayVec<SendBuffer, SEND_BATCH> = ArrayVec::new();
        let mut batch = Batch::new();
        let mut refused = 0;
        for &(index, len) in items.iter().take(SEND_BATCH) {
            // SAFETY: the buffer's MDL describes CIPHER_BUFFER_SIZE bytes of the pool block, which stays
            // valid until the completion gives the buffer back.
            match unsafe { SendBuffer::new(self.pool.mdl(index), 0, len) } {
                Ok(b) => {
                    buffers.push(b);
                    batch.push(index);
                }
                Err(_) => {
                    self.pool.put(index);
                    refused += 1;
                }
            }
        }
        if batch.is_empty() {
            return refused;
        }
        if self.socket.supports_send_messages() && buffers.len() <= self.socket.batch_capacity() {
            match self.socket.send_messages(&remote, &buffers, batch) {
                Ok(()) => return refused,
                Err(e) => {
                    refused += e.context.len();
                    for index in e.context {
                        self.pool.put(index);
                    }
                }
            }
        } else {
            for (buffer, index) in buffers.iter().zip(batch) {
                let mut one = Batch::new();
                one.push(index);
                if let Err(e) = self.socket.send_to(&remote, *buffer, one) {
                    refused += 1;
                    for index in e.context {
                        self.pool.put(index);
                    }
                }
            }
        }
        STATS.drop_other.fetch_add(refused as u64, Ordering::Relaxed);
        refused
    }
}

fn socket_addr(e: &Endpoint) -> SocketAddr {
    match *e {
        Endpoint::V4 { addr, port } => SocketAddr::v4(addr, port),
        Endpoint::V6 { addr, port } => SocketAddr::v6(addr, port),
    }
}

/// The transport; `Some` while a peer exists. See the module docs for the lock order.
pub(crate) static TRANSPORT: SpinLock<Option<Transport>> = SpinLock::new(None);
/// The socket's local UDP port while the transport is up, else 0: read lock-free by the send handler's
/// classifier (never divert the tunnel's own traffic) and as "socket up".
pub(crate) static LOCAL_PORT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Creates the transport if there is none, binding the socket to `local`. PASSIVE_LEVEL (from the
/// add-peer IOCTL). Undone in reverse on failure. Starts the keepalive timer.
pub(crate) fn ensure_up(local: &core::net::SocketAddr) -> Result<(), NTSTATUS> {
    if TRANSPORT.lock().is_some() {
        return Ok(());
    }
    let local = match local {
        core::net::SocketAddr::V4(a) => SocketAddr::v4(a.ip().octets(), a.port()),
        core::net::SocketAddr::V6(a) => SocketAddr::v6(a.ip().octets(), a.port()),
    };
    let client = WskClient::new()?;
    let pool = CipherPool::new()?;
    let done = TxDone { pool: &raw const *pool };
    let config = SocketConfig { send_irps: SEND_IRPS, batch: SEND_BATCH };
    let socket = UdpSocket::bind(&client, &local, config, RxSink, done)?;
    let transport = Transport { socket, pool, _client: client };
    let mut guard = TRANSPORT.lock();
    if guard.is_some() {
        // Another request won the race; ours is closed outside the lock.
        drop(guard);
        close(transport);
        return Ok(());
    }
    let port = transport.local_port();
    *guard = Some(transport);
    drop(guard);
    LOCAL_PORT.store(u32::from(port), Ordering::Release);
    timer_start();
    Ok(())
}

/// Closes a transport taken out of [`TRANSPORT`]. PASSIVE_LEVEL.
fn close(transport: Transport) {
    let Transport { socket, pool, _client } = transport;
    if let Err((socket, _)) = socket.close() {
        // Datagrams still retained (never, RxSink retains nothing): the drop leaks rather than frees.
        drop(socket);
    }
    drop(pool);
    drop(_client);
}

/// Tears the transport down if it exists. PASSIVE_LEVEL (last peer removed, unload).
pub(crate) fn tear_down() {
    timer_stop();
    LOCAL_PORT.store(0, Ordering::Release);
    let transport = TRANSPORT.lock().take();
    if let Some(t) = transport {
        close(t);
    }
}

/// Sends one control-channel packet (plaintext, from user mode) to `remote`. PASSIVE_LEVEL (the control
/// device's write). `STATUS_DEVICE_NOT_READY` without a transport; `STATUS_INVALID_PARAMETER` if it does
/// not fit a buffer; `STATUS_DEVICE_BUSY` when no buffer or IRP is free.
pub(crate) fn send_control(remote: &core::net::SocketAddr, data: &[u8]) -> NTSTATUS {
    if data.is_empty() || data.len() > CIPHER_BUFFER_SIZE {
        return STATUS_INVALID_PARAMETER;
    }
    let endpoint = control::endpoint(*remote);
    let guard = TRANSPORT.lock();
    let Some(t) = guard.as_ref() else {
        return kernel::ffi::ntos::STATUS_DEVICE_NOT_READY;
    };
    let Some(index) = t.pool.take() else {
        return STATUS_DEVICE_BUSY;
    };
    // SAFETY: we hold `index` (taken just now).
    let out = unsafe { t.pool.buffer(index) };
    if let Some(dst) = out.get_mut(..data.len()) {
        dst.copy_from_slice(data);
    }
    let refused = t.send_batch(&endpoint, &[(index, data.len())]);
    drop(guard);
    if refused != 0 {
        return STATUS_DEVICE_BUSY;
    }
    STATS.control_out.fetch_add(1, Ordering::Relaxed);
    STATUS_SUCCESS
}

// ---------------------------------------------------------------------------------------------
// Keepalive timer (one per driver)
// ---------------------------------------------------------------------------------------------

/// The periodic timer and its DPC. In the driver image (non-paged), initialised when the transport comes
/// up.
struct Tick {
    timer: UnsafeCell<KTIMER>,
    dpc: UnsafeCell<KDPC>,
    armed: AtomicBool,
}

// SAFETY: the kernel objects are only passed to Ke* routines, which synchronise on their own; `armed`
// serialises arm/disarm (PASSIVE_LEVEL, from the IOCTL path and unload).
unsafe impl Sync for Tick {}

static TICK: Tick = Tick {
    // SAFETY: KTIMER and KDPC are plain C data, initialised by KeInitializeTimerEx/KeInitializeDpc
    // before use.
    timer: UnsafeCell::new(unsafe { core::mem::zeroed() }),
    // SAFETY: as above.
    dpc: UnsafeCell::new(unsafe { core::mem::zeroed() }),
    armed: AtomicBool::new(false),
};

fn timer_start() {
    if TICK.armed.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: the DPC object lives in a static; not queued (the timer is not armed).
    unsafe { KeInitializeDpc(TICK.dpc.get(), Some(tick_dpc), null_mut()) };
    // SAFETY: the timer lives in a static and is not set.
    unsafe { KeInitializeTimerEx(TICK.timer.get(), 0) };
    let due: i64 = -i64::from(TICK_MS) * 10_000;
    // SAFETY: initialised timer and DPC in statics; periodic.
    let _ = unsafe { KeSetTimerEx(TICK.timer.get(), due, TICK_MS, TICK.dpc.get()) };
}

/// Stops the timer and waits until its DPC is not running. PASSIVE_LEVEL.
fn timer_stop() {
    if !TICK.armed.swap(false, Ordering::AcqRel) {
        return;
    }
    // SAFETY: the timer was initialised and set by timer_start.
    let _ = unsafe { KeCancelTimer(TICK.timer.get()) };
    // SAFETY: PASSIVE_LEVEL; waits for a tick DPC already queued or running.
    unsafe { KeFlushQueuedDpcs() };
}

/// The timer's DPC. DISPATCH_LEVEL. Sends the keepalive pings the engine asks for, queues timeout and
/// rekey events, and kicks every module's worker (held copies waiting for the transport, originals past
/// the hold budget).
unsafe extern "system" fn tick_dpc(
    _dpc: *mut KDPC,
    _context: *mut c_void,
    _a1: *mut c_void,
    _a2: *mut c_void,
) {
    keepalive_poll();
    crate::worker::tick_all();
}

/// Polls every peer's keepalive and sends pings. DISPATCH_LEVEL. Lock order TRANSPORT → CONFIG; events
/// are queued after both are released.
pub(crate) fn keepalive_poll() {
    let mut timeouts: ArrayVec<u32, 16> = ArrayVec::new();
    let mut rekeys: ArrayVec<u32, 16> = ArrayVec::new();
    let time = control::now();
    {
        let guard = TRANSPORT.lock();
        let Some(t) = guard.as_ref() else { return };
        let mut config_guard = control::CONFIG.lock();
        let Some(config) = config_guard.as_mut() else { return };
        let mut wanted: ArrayVec<u32, 16> = ArrayVec::new();
        config.peers.poll(time, |id, action| match action {
            KeepaliveAction::SendPing => {
                let _ = wanted.try_push(id);
            }
            KeepaliveAction::Timeout => {
                let _ = timeouts.try_push(id);
            }
            _ => {}
        });
        let mut save = kernel::ffi::ntos::XSTATE_SAVE::zeroed();
        let saved = crate::worker::xstate_enter(&mut save);
        for id in wanted {
            let Some(peer) = config.peers.peer_mut(id) else { continue };
            let Some(remote) = peer.remote() else { continue };
            let Some(index) = t.pool.take() else { break };
            // SAFETY: we hold `index`.
            let out = unsafe { t.pool.buffer(index) };
            match peer.seal_keepalive(time, out) {
                Ok(sealed) => {
                    if sealed.rekey_needed {
                        let _ = rekeys.try_push(id);
                    }
                    if t.send_batch(&remote, &[(index, sealed.len)]) == 0 {
                        STATS.keepalives_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(_) => t.pool.put(index),
            }
        }
        crate::worker::xstate_leave(&mut save, saved);
    }
    for id in timeouts {
        control::queue_event(RdcoEventKind::KeepaliveTimeout, id, None);
    }
    for id in rekeys {
        control::queue_event(RdcoEventKind::RekeyNeeded, id, None);
    }
}
