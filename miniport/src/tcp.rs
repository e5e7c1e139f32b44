//! The TCP transport (client mode): the stream framing of OpenVPN over TCP (each packet preceded by
//! its 2-byte big-endian length, `datapath::framing`) on a WSK connection socket
//! ([`kernel::wsk::TcpSocket`]).
//!
//! * **Tx**: every sender (the Tx ring, pings, written control packets) seals or copies its packet
//!   [`FRAME_HEADROOM`] bytes into its pool buffer when the transport is TCP
//!   ([`crate::transport::Transport::headroom`]) and writes the prefix in front ([`frame`]); each packet
//!   is one `WskSend` (the ring's pool buffers are not contiguous, so a batch cannot be one `WSK_BUF`).
//!   Packets still retire in ring order: the completion carries the same context as a UDP batch of one.
//! * **Rx**: `WskReceiveEvent` ([`on_data`], DISPATCH_LEVEL) feeds every byte to the engine's
//!   [`Deframer`]. Each record is copied into a buffer of the TCP Rx pool ([`TCP_RX_BUFFERS`] buffers
//!   of [`TCP_RX_BUFFER_SIZE`] bytes with MDLs, allocated at the first TCP connect), opened in place
//!   there, and a data packet is lent to the Rx ring with the pool buffer as its return context
//!   (`rxq::RxBuf::Tcp`); control packets go to the parked reads, keepalive pings are dropped. The
//!   indicated bytes belong to WSK only during the callback (the wrapper consumes, as ovpn-dco-win's
//!   `OvpnSocketTcpReceiveEvent` does), so this copy is the price of lending a record to the OS: it is a
//!   copy of *ciphertext*, counted in [`TcpCounters::copied_records`] / `copied_bytes`, never of
//!   plaintext; a record that straddles indications is reassembled by the deframer first
//!   ([`TcpCounters::straddled`]).
//! * **Stream errors**: a zero-length record or one longer than [`MAX_RECORD`] means the stream is out
//!   of sync (ovpn-dco-win resets its TCP state on the same two conditions). The connection is dropped:
//!   the socket resets it (an abortive `WskDisconnect`, issued by the wrapper when the receiver returns
//!   false), nothing more of it is processed, the reason is counted, and user mode learns it like a peer's
//!   close or reset (`WskDisconnectEvent`, [`on_disconnect`]): the pending (or next) `ReadFile` fails
//!   with `STATUS_CONNECTION_DISCONNECTED`, as after a keepalive timeout. (ovpn-dco-win completes a read
//!   that is already pending with `STATUS_CONNECTION_ABORTED` in `OvpnSocketTcpDisconnectEvent` and
//!   loses the news otherwise; rdco keeps it for the next read and uses the keepalive timeout's status,
//!   which OpenVPN treats the same way: the transport is gone.) The socket closes with `DEL_PEER` or the
//!   handle's close.
//!
//! Locks: the deframer lock (receive event only, and connect at PASSIVE_LEVEL) is taken before the
//! tunnel lock and the Rx lock, never while holding either; the pool is atomics only.
extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use datapath::framing::{Deframed, Deframer, FramingError, PREFIX_LEN};
use datapath::peer::Endpoint;
use kernel::ffi::mdl::{IoAllocateMdl, IoFreeMdl, MmBuildMdlForNonPagedPool, MDL};
use kernel::ffi::ntos::{
    ExAllocatePool2, ExFreePoolWithTag, FALSE, NTSTATUS, POOL_FLAG_NON_PAGED, STATUS_INSUFFICIENT_RESOURCES,
};
use kernel::sync::SpinLock;
use kernel::wsk::{BufferParts, SocketAddr, StreamData, StreamReceiver, TcpSocket};

use crate::device::{DeviceContext, DATA_POOL_TAG};

/// Bytes of the length prefix in front of every packet on the stream.
pub(crate) const FRAME_HEADROOM: usize = PREFIX_LEN;
/// Buffers of the TCP Rx pool (records opened or lent to the OS at once).
pub(crate) const TCP_RX_BUFFERS: usize = 128;
/// Bytes per TCP Rx buffer.
pub(crate) const TCP_RX_BUFFER_SIZE: usize = 2048;
/// Largest record accepted: the ciphertext of an MTU-sized packet or a control packet fits; a longer
/// one breaks the stream.
pub(crate) const MAX_RECORD: usize = TCP_RX_BUFFER_SIZE;
const POOL_WORDS: usize = TCP_RX_BUFFERS / 64;
const _: () = assert!(TCP_RX_BUFFERS.is_multiple_of(64));

/// Writes the length prefix of a `len`-byte packet sealed at `buf[headroom..]` when `headroom` is
/// [`FRAME_HEADROOM`]; returns the bytes to send. With no headroom (UDP) nothing changes.
pub(crate) fn frame(buf: &mut [u8], headroom: usize, len: usize) -> Option<usize> {
    if headroom == 0 {
        return Some(len);
    }
    let prefix = datapath::framing::prefix(len).ok()?;
    buf.get_mut(..FRAME_HEADROOM)?.copy_from_slice(&prefix);
    Some(len + FRAME_HEADROOM)
}

/// Counters of the TCP transport.
#[derive(Default)]
pub(crate) struct TcpCounters {
    /// Records reassembled from the stream.
    pub(crate) records: AtomicU64,
    /// Records that straddled indications (reassembled in the deframer's buffer first).
    pub(crate) straddled: AtomicU64,
    /// Records copied into a TCP Rx pool buffer (ciphertext copies).
    pub(crate) copied_records: AtomicU64,
    /// Bytes of those copies.
    pub(crate) copied_bytes: AtomicU64,
    /// Connections dropped for a zero-length record.
    pub(crate) zero_length: AtomicU64,
    /// Connections dropped for a record over [`MAX_RECORD`].
    pub(crate) too_long: AtomicU64,
    /// Peer closes and resets (`WskDisconnectEvent`).
    pub(crate) disconnects: AtomicU64,
    /// Records dropped because every pool buffer was busy.
    pub(crate) pool_exhausted: AtomicU64,
}

/// A TCP Rx pool buffer handed to the Rx path: its index and MDL.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolRef {
    index: u16,
    mdl: *mut MDL,
}

// SAFETY: names a pool buffer whose exclusive use the pool's bitmap gave to the holder.
unsafe impl Send for PoolRef {}

impl PoolRef {
    /// The buffer as WSK-style parts (the whole buffer; the Rx path adds the plaintext's offset).
    pub(crate) fn parts(&self) -> BufferParts {
        BufferParts { mdl: self.mdl, offset: 0, length: TCP_RX_BUFFER_SIZE }
    }
}

/// The TCP Rx pool: one non-paged block, one MDL per buffer, a free bitmap.
struct TcpPool {
    base: AtomicPtr<u8>,
    mdls: [AtomicPtr<MDL>; TCP_RX_BUFFERS],
    free: [AtomicU64; POOL_WORDS],
    taken: AtomicUsize,
}

impl TcpPool {
    const fn new() -> TcpPool {
        TcpPool {
            base: AtomicPtr::new(core::ptr::null_mut()),
            mdls: [const { AtomicPtr::new(core::ptr::null_mut()) }; TCP_RX_BUFFERS],
            free: [const { AtomicU64::new(0) }; POOL_WORDS],
            taken: AtomicUsize::new(0),
        }
    }

    /// Allocates the block and MDLs if not done yet. PASSIVE_LEVEL (a TCP connect), no socket open.
    fn allocate(&self) -> Result<(), NTSTATUS> {
        if !self.base.load(Ordering::Acquire).is_null() {
            return Ok(());
        }
        // SAFETY: a plain non-paged allocation; freed in `release`.
        let base = unsafe {
            ExAllocatePool2(POOL_FLAG_NON_PAGED, TCP_RX_BUFFERS * TCP_RX_BUFFER_SIZE, DATA_POOL_TAG)
        }
        .cast::<u8>();
        if base.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        self.base.store(base, Ordering::Release);
        for (i, slot) in self.mdls.iter().enumerate() {
            let va = base.wrapping_add(i * TCP_RX_BUFFER_SIZE);
            // SAFETY: describes TCP_RX_BUFFER_SIZE bytes of the block just allocated.
            let mdl = unsafe {
                IoAllocateMdl(va.cast(), TCP_RX_BUFFER_SIZE as u32, FALSE, FALSE, core::ptr::null_mut())
            };
            if mdl.is_null() {
                self.release();
                return Err(STATUS_INSUFFICIENT_RESOURCES);
            }
            // SAFETY: an MDL over non-paged pool.
            unsafe { MmBuildMdlForNonPagedPool(mdl) };
            slot.store(mdl, Ordering::Release);
        }
        for w in &self.free {
            w.store(u64::MAX, Ordering::Release);
        }
        Ok(())
    }

    /// Frees the pool if no buffer is out. PASSIVE_LEVEL, no socket open.
    fn release(&self) {
        if self.taken.load(Ordering::Acquire) != 0 {
            return;
        }
        for w in &self.free {
            w.store(0, Ordering::Release);
        }
        for slot in &self.mdls {
            let m = slot.swap(core::ptr::null_mut(), Ordering::AcqRel);
            if !m.is_null() {
                // SAFETY: an MDL this pool allocated, freed once.
                unsafe { IoFreeMdl(m) };
            }
        }
        let base = self.base.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !base.is_null() {
            // SAFETY: the block allocated in `allocate`, freed once.
            unsafe { ExFreePoolWithTag(base.cast(), DATA_POOL_TAG) };
        }
    }

    fn take(&self) -> Option<usize> {
        let index = kernel::sync::bitmap_take(&self.free)?;
        self.taken.fetch_add(1, Ordering::AcqRel);
        Some(index)
    }

    fn give(&self, index: usize) {
        if kernel::sync::bitmap_put(&self.free, index) {
            self.taken.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The device's TCP state beside the socket.
pub(crate) struct TcpState {
    pub(crate) counters: TcpCounters,
    /// The stream's deframer (a 16 KiB reassembly buffer: allocated at connect, never on a stack).
    deframer: SpinLock<Option<Vec<Deframer>>>,
    /// The peer's address (the source of received control packets).
    remote: SpinLock<Option<SocketAddr>>,
    /// The stream broke (framing error or disconnect): nothing more of it is processed.
    broken: AtomicBool,
    pool: TcpPool,
}

impl TcpState {
    pub(crate) const fn new() -> TcpState {
        TcpState {
            counters: TcpCounters {
                records: AtomicU64::new(0),
                straddled: AtomicU64::new(0),
                copied_records: AtomicU64::new(0),
                copied_bytes: AtomicU64::new(0),
                zero_length: AtomicU64::new(0),
                too_long: AtomicU64::new(0),
                disconnects: AtomicU64::new(0),
                pool_exhausted: AtomicU64::new(0),
            },
            deframer: SpinLock::new(None),
            remote: SpinLock::new(None),
            broken: AtomicBool::new(false),
            pool: TcpPool::new(),
        }
    }

    /// Before a connect (PASSIVE_LEVEL, no socket open): the pool, a fresh deframer, the peer.
    pub(crate) fn prepare(&self, remote: &SocketAddr) -> Result<(), NTSTATUS> {
        self.pool.allocate()?;
        let mut v = Vec::new();
        v.try_reserve_exact(1).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        v.push(Deframer::new());
        *self.deframer.lock() = Some(v);
        *self.remote.lock() = Some(*remote);
        self.broken.store(false, Ordering::Release);
        Ok(())
    }

    /// After the socket closed (PASSIVE_LEVEL): the deframer goes, and the pool once nothing is out.
    pub(crate) fn release(&self) {
        let old = self.deframer.lock().take();
        drop(old);
        self.pool.release();
    }

    /// Pool buffers out (opening, waiting for the ring, or lent to the OS).
    #[cfg_attr(target_os = "windows", allow(dead_code))]
    pub(crate) fn buffers_out(&self) -> usize {
        self.pool.taken.load(Ordering::Acquire)
    }
}

/// A pool buffer comes back from the Rx path (returned by the OS, dropped, or cancelled). Any IRQL
/// <= DISPATCH_LEVEL; atomics only.
pub(crate) fn give_back(ctx: &DeviceContext, buffer: PoolRef) {
    ctx.transport.tcp.pool.give(usize::from(buffer.index));
}

/// The receive half of the device's TCP socket.
pub(crate) struct StreamRx {
    pub(crate) ctx: &'static DeviceContext,
}

impl StreamReceiver for StreamRx {
    fn on_data(&self, data: StreamData<'_>) -> bool {
        on_data(self.ctx, &data)
    }
    fn on_disconnect(&self, _abortive: bool) {
        on_disconnect(self.ctx);
    }
}

/// The device's TCP socket type.
pub(crate) type TcpSock = TcpSocket<StreamRx, crate::transport::TxDone>;

/// `WskReceiveEvent`. IRQL <= DISPATCH_LEVEL. Deframes, opens and delivers every complete record.
/// Returns false when the stream broke (the socket then resets the connection).
pub(crate) fn on_data(ctx: &DeviceContext, data: &StreamData<'_>) -> bool {
    let tcp = &ctx.transport.tcp;
    if tcp.broken.load(Ordering::Acquire) {
        return false;
    }
    let from = *tcp.remote.lock();
    let now = crate::now();
    let mut guard = tcp.deframer.lock();
    let Some(deframer) = guard.as_mut().and_then(|v| v.first_mut()) else { return false };
    let mut failure = None;
    'segments: for segment in data.segments() {
        let mut input = segment;
        while !input.is_empty() {
            let (used, step) = match deframer.deframe(input) {
                Ok(x) => x,
                Err(e) => {
                    failure = Some(e);
                    break 'segments;
                }
            };
            let record = match step {
                Deframed::NeedMore => None,
                Deframed::InInput(range) => input.get(range).map(|r| (r, false)),
                Deframed::Buffered => Some((deframer.buffered(), true)),
            };
            if let Some((bytes, straddled)) = record {
                if bytes.len() > MAX_RECORD {
                    failure =
                        Some(FramingError::FrameTooLong(u16::try_from(bytes.len()).unwrap_or(u16::MAX)));
                    break 'segments;
                }
                deliver(ctx, bytes, straddled, from.as_ref(), now);
            }
            input = input.get(used..).unwrap_or(&[]);
        }
    }
    drop(guard);
    if let Some(e) = failure {
        let counter = match e {
            FramingError::EmptyFrame => &tcp.counters.zero_length,
            FramingError::FrameTooLong(_) | FramingError::PacketTooLong => &tcp.counters.too_long,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        stream_lost(ctx);
        return false;
    }
    true
}

/// Copies one record into a pool buffer, opens it there and hands the result on.
fn deliver(
    ctx: &DeviceContext,
    record: &[u8],
    straddled: bool,
    from: Option<&SocketAddr>,
    now: datapath::Instant,
) {
    let tcp = &ctx.transport.tcp;
    tcp.counters.records.fetch_add(1, Ordering::Relaxed);
    if straddled {
        tcp.counters.straddled.fetch_add(1, Ordering::Relaxed);
    }
    let Some(index) = tcp.pool.take() else {
        tcp.counters.pool_exhausted.fetch_add(1, Ordering::Relaxed);
        ctx.counters.rx_dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let base = tcp.pool.base.load(Ordering::Acquire);
    let mdl = tcp.pool.mdls.get(index).map_or(core::ptr::null_mut(), |m| m.load(Ordering::Acquire));
    if base.is_null() || mdl.is_null() || record.len() > TCP_RX_BUFFER_SIZE {
        tcp.pool.give(index);
        return;
    }
    // SAFETY: buffer `index` of the live block, ours alone (the bitmap gave it) until given back.
    let buffer = unsafe {
        core::slice::from_raw_parts_mut(base.wrapping_add(index * TCP_RX_BUFFER_SIZE), TCP_RX_BUFFER_SIZE)
    };
    let bytes = &mut buffer[..record.len()];
    bytes.copy_from_slice(record);
    tcp.counters.copied_records.fetch_add(1, Ordering::Relaxed);
    tcp.counters.copied_bytes.fetch_add(record.len() as u64, Ordering::Relaxed);
    let from_ep = from.map(|a| match *a {
        SocketAddr::V4 { ip, port } => Endpoint::V4 { addr: ip, port },
        SocketAddr::V6 { ip, port, .. } => Endpoint::V6 { addr: ip, port },
    });
    let verdict = {
        let mut tunnel = ctx.tunnel.lock();
        let opened = tunnel.peers().open(now, from_ep.as_ref(), bytes);
        crate::rxq::verdict(ctx, &mut tunnel, opened, bytes, record.len(), from)
    };
    let kept = verdict.is_some_and(|(start, len)| {
        let buffer = PoolRef { index: index as u16, mdl };
        crate::rxq::push_pool_buffer(ctx, buffer, start, len)
    });
    if !kept {
        tcp.pool.give(index);
    }
}

/// `WskDisconnectEvent`: the peer closed or reset the connection. IRQL <= DISPATCH_LEVEL.
pub(crate) fn on_disconnect(ctx: &DeviceContext) {
    ctx.transport.tcp.counters.disconnects.fetch_add(1, Ordering::Relaxed);
    stream_lost(ctx);
}

/// The stream is gone: stop processing it and tell user mode through the read path (under the tunnel
/// lock, as the control glue requires). IRQL <= DISPATCH_LEVEL.
fn stream_lost(ctx: &DeviceContext) {
    if ctx.transport.tcp.broken.swap(true, Ordering::AcqRel) {
        return;
    }
    let mut tunnel = ctx.tunnel.lock();
    tunnel.transport_lost();
    crate::ioctl::service_reads(&mut tunnel);
}
