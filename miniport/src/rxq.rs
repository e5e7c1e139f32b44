//! The Rx queue, zero copy: datagrams are opened in place inside WSK's own buffers, retained, and lent
//! to the OS as the Rx ring's fragments.
//!
//! # Buffer lifetime
//! 1. `WskReceiveFromEvent` ([`on_datagrams`], DISPATCH_LEVEL): each datagram of the chain is opened in
//!    place by the engine (a datagram that spans several MDLs is linearized into a scratch buffer for the
//!    AEAD and its plaintext written back in place, counted in `rx_linearized`). Data packets are kept;
//!    keepalive pings, control packets (queued for `ReadFile` with `Tunnel::receive_control`) and
//!    failures are not. If any is kept the chain is retained (`STATUS_PENDING`) and the kept datagrams wait
//!    in a bounded queue ([`RX_QUEUE_LEN`]); the rest are released at once, in one `WskRelease`.
//! 2. The Rx advance attaches each waiting datagram's plaintext to fragments: one fragment per MDL the
//!    plaintext touches (virtual address of the MDL's mapping, `Offset`, `ValidLength`, `Capacity` = the
//!    MDL's byte count, the MDL extension if the OS asked for it), the lent-table slot as every fragment's
//!    return context, and the packet's `Layout` from its IP header.
//! 3. `EvtAdapterReturnRxBuffer` runs once per fragment. When a datagram's last fragment comes back it
//!    joins a release batch, handed to WSK in one `WskRelease` when [`RELEASE_BATCH`] datagrams gathered,
//!    or when nothing else is lent, or at the next advance.
//!
//! Cancel: every packet the OS offers goes back with `Ignore` set, the waiting datagrams are released;
//! lent ones come back through the return callback as usual (adapter stop returns them all).
extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr as NetAddr};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use arrayvec::ArrayVec;
use datapath::peer::{Endpoint, Received};
use kernel::ffi::mdl::{MdlMappingNoExecute, MmGetSystemAddressForMdlSafe, NormalPagePriority, MDL};
use kernel::ffi::netcx::{
    NetExtensionTypeFragment, NetPacketLayer2TypeNull, NetPacketLayer3TypeIPv4UnspecifiedOptions,
    NetPacketLayer3TypeIPv6UnspecifiedExtensions, NetRingGetElementAtIndex, NetRingGetRangeCount,
    NetRingIncrementIndex, NetRingTypeFragment, NetRingTypePacket, NETADAPTER, NETPACKETQUEUE, NET_EXTENSION,
    NET_FRAGMENT, NET_FRAGMENT_EXTENSION_MDL_NAME, NET_FRAGMENT_EXTENSION_RETURN_CONTEXT_NAME,
    NET_FRAGMENT_EXTENSION_VIRTUAL_ADDRESS_NAME, NET_FRAGMENT_RETURN_CONTEXT_HANDLE, NET_PACKET,
    NET_PACKET_LAYOUT, NET_PACKET_QUEUE_CONFIG, NET_RING, PNETRXQUEUE_INIT,
};
use kernel::ffi::ntos::{BOOLEAN, NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS};
use kernel::netcx::{self, Direction};
use kernel::sync::SpinLock;
use kernel::wsk::{Datagram, DatagramChain, DatagramRef, ReleaseBatch, RetainDecision, SocketAddr};

use crate::device::{self, DeviceContext};

/// Opened datagrams waiting for the Rx ring.
pub(crate) const RX_QUEUE_LEN: usize = 256;
/// Datagrams lent to the OS at once.
pub(crate) const MAX_LENT: usize = 512;
/// Returned datagrams gathered per `WskRelease`.
pub(crate) const RELEASE_BATCH: usize = 16;
/// Datagrams of one indication chain looked at (the rest are refused).
const MAX_CHAIN: usize = 64;
/// Most MDLs one datagram may span.
const MAX_RX_FRAGMENTS: usize = 8;
/// Scratch for datagrams that span several MDLs (an MTU-sized packet plus overhead).
const LINEAR_SIZE: usize = 2048;

/// What an Rx packet lends: a retained WSK datagram (UDP), or a TCP Rx pool buffer holding one
/// record opened in place (`crate::tcp`), which goes back to its pool instead of to WSK.
pub(crate) enum RxBuf {
    Wsk(Datagram),
    Tcp(crate::tcp::PoolRef),
}

impl RxBuf {
    fn parts(&self) -> kernel::wsk::BufferParts {
        match self {
            RxBuf::Wsk(d) => d.buffer(),
            RxBuf::Tcp(p) => p.parts(),
        }
    }
}

/// Gives a buffer back: a datagram joins the release batch, a pool buffer returns to its pool.
fn release(ctx: &DeviceContext, inner: &mut RxInner, buffer: RxBuf) {
    match buffer {
        RxBuf::Wsk(d) => {
            inner.releases.push(d);
            inner.pending_releases += 1;
        }
        RxBuf::Tcp(p) => crate::tcp::give_back(ctx, p),
    }
}

/// An opened datagram waiting for the ring: plaintext at `start .. start + len` of its bytes.
struct Ready {
    datagram: RxBuf,
    start: usize,
    len: usize,
}

/// A datagram lent to the OS; `fragments` return callbacks still to come.
struct Lent {
    datagram: RxBuf,
    fragments: u16,
}

struct RxInner {
    ready: VecDeque<Ready>,
    lent: Vec<Option<Lent>>,
    free: Vec<u16>,
    outstanding: usize,
    releases: ReleaseBatch,
    pending_releases: usize,
    linear: Vec<u8>,
    ring: Option<RxRing>,
}

#[derive(Clone, Copy)]
struct RxRing {
    packets: *mut NET_RING,
    fragments: *mut NET_RING,
    va: NET_EXTENSION,
    mdl: Option<NET_EXTENSION>,
    rc: NET_EXTENSION,
}

// SAFETY: the framework's ring storage, used only from the queue's serialized callbacks.
unsafe impl Send for RxRing {}

/// The return context the driver attaches to every fragment of a packet lent from Rx slot `i`: the
/// address of the device's `tags[i]`, which holds the device context. `EvtAdapterReturnRxBuffer` gets it
/// back ("the return context the client driver attached", NET_FRAGMENT_RETURN_CONTEXT) and finds its
/// device and slot from it with no framework call (`WdfObjectGetTypedContext` per returned fragment was
/// the most expensive step of the return path). The tags live in the device context, so they outlive
/// every return.
#[repr(transparent)]
pub(crate) struct ReturnTag(AtomicPtr<DeviceContext>);

/// The device's Rx state.
pub(crate) struct RxState {
    queue: AtomicUsize,
    notify: AtomicBool,
    cancelled: AtomicBool,
    inner: SpinLock<Option<RxInner>>,
    tags: [ReturnTag; MAX_LENT],
}

impl RxState {
    pub(crate) const fn new() -> RxState {
        RxState {
            queue: AtomicUsize::new(0),
            notify: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            inner: SpinLock::new(None),
            tags: [const { ReturnTag(AtomicPtr::new(core::ptr::null_mut())) }; MAX_LENT],
        }
    }

    /// Points every return tag at `ctx`, the device context this state lives in, at its final address.
    /// PASSIVE_LEVEL (device creation, before the adapter starts).
    pub(crate) fn bind_returns(&self, ctx: &DeviceContext) {
        let p = core::ptr::from_ref(ctx).cast_mut();
        for t in &self.tags {
            t.0.store(p, Ordering::Release);
        }
    }

    /// The return context of slot `slot`.
    fn tag(&self, slot: u16) -> usize {
        self.tags.get(usize::from(slot)).map_or(0, |t| core::ptr::from_ref(t) as usize)
    }

    /// Allocates the tables. PASSIVE_LEVEL (device creation).
    pub(crate) fn setup(&self) -> Result<(), NTSTATUS> {
        let mut ready = VecDeque::new();
        ready.try_reserve_exact(RX_QUEUE_LEN).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        let mut lent = Vec::new();
        lent.try_reserve_exact(MAX_LENT).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        lent.resize_with(MAX_LENT, || None);
        let mut free = Vec::new();
        free.try_reserve_exact(MAX_LENT).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        free.extend((0..MAX_LENT as u16).rev());
        let mut linear = Vec::new();
        linear.try_reserve_exact(LINEAR_SIZE).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
        linear.resize(LINEAR_SIZE, 0);
        let inner = RxInner {
            ready,
            lent,
            free,
            outstanding: 0,
            releases: ReleaseBatch::new(),
            pending_releases: 0,
            linear,
            ring: None,
        };
        *self.inner.lock() = Some(inner);
        Ok(())
    }

    /// Releases the datagrams waiting for the ring. IRQL <= DISPATCH_LEVEL.
    pub(crate) fn drop_queued(&self, ctx: &DeviceContext) {
        let mut g = self.inner.lock();
        if let Some(inner) = g.as_mut() {
            while let Some(r) = inner.ready.pop_front() {
                release(ctx, inner, r.datagram);
            }
        }
    }

    /// Hands the gathered returns to WSK. IRQL <= DISPATCH_LEVEL.
    pub(crate) fn flush_releases(&self, ctx: &DeviceContext) {
        let batch = {
            let mut g = self.inner.lock();
            let Some(inner) = g.as_mut() else { return };
            if inner.pending_releases == 0 {
                return;
            }
            ctx.counters.rx_released.fetch_add(inner.pending_releases as u64, Ordering::Relaxed);
            ctx.counters.rx_release_batches.fetch_add(1, Ordering::Relaxed);
            inner.pending_releases = 0;
            core::mem::take(&mut inner.releases)
        };
        batch.release();
    }

    /// Datagrams lent to the OS now, and waiting for the ring (for the tests' hook).
    #[cfg_attr(target_os = "windows", allow(dead_code))]
    pub(crate) fn outstanding(&self) -> (usize, usize) {
        self.inner.lock().as_ref().map_or((0, 0), |i| (i.outstanding, i.ready.len()))
    }
}

fn net_addr(a: &SocketAddr) -> NetAddr {
    match *a {
        SocketAddr::V4 { ip, port } => NetAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port),
        SocketAddr::V6 { ip, port, .. } => NetAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port),
    }
}

fn endpoint(a: &SocketAddr) -> Endpoint {
    match *a {
        SocketAddr::V4 { ip, port } => Endpoint::V4 { addr: ip, port },
        SocketAddr::V6 { ip, port, .. } => Endpoint::V6 { addr: ip, port },
    }
}

/// `WskReceiveFromEvent` for the device's socket. DISPATCH_LEVEL. Takes the Rx lock, then the tunnel
/// lock (the only order anywhere).
pub(crate) fn on_datagrams(ctx: &DeviceContext, mut chain: DatagramChain<'_>) -> RetainDecision {
    let now = crate::now();
    let accept_data = ctx.rx.queue.load(Ordering::Acquire) != 0 && !ctx.rx.cancelled.load(Ordering::Acquire);
    let mut verdicts: ArrayVec<Option<(usize, usize)>, MAX_CHAIN> = ArrayVec::new();
    let mut g = ctx.rx.inner.lock();
    let Some(inner) = g.as_mut() else { return RetainDecision::NOT_ACCEPTED };
    {
        let mut tunnel = ctx.tunnel.lock();
        for mut d in chain.iter() {
            if verdicts.is_full() {
                break;
            }
            let v = open_one(ctx, &mut tunnel, &mut inner.linear, &mut d, now);
            verdicts.push(if accept_data { v } else { None });
        }
    }
    let room = RX_QUEUE_LEN.saturating_sub(inner.ready.len());
    if verdicts.iter().all(Option::is_none) || room == 0 {
        let dropped = verdicts.iter().filter(|v| v.is_some()).count();
        ctx.counters.rx_dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        return RetainDecision::CONSUMED;
    }
    let (decision, retained) = chain.retain();
    let mut batch = ReleaseBatch::new();
    for (k, datagram) in retained.enumerate() {
        match verdicts.get(k).copied().flatten() {
            Some((start, len)) if inner.ready.len() < RX_QUEUE_LEN => {
                inner.ready.push_back(Ready { datagram: RxBuf::Wsk(datagram), start, len });
                ctx.counters.rx_opened.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                ctx.counters.rx_dropped.fetch_add(1, Ordering::Relaxed);
                batch.push(datagram);
            }
            None => batch.push(datagram),
        }
    }
    drop(g);
    // Released while the callback runs: the wrapper defers it to the next opportunity.
    batch.release();
    let queue = ctx.rx.queue.load(Ordering::Acquire);
    if queue != 0 && ctx.rx.notify.swap(false, Ordering::AcqRel) {
        // SAFETY: our live Rx queue with notification armed.
        unsafe { netcx::notify(Direction::Rx, queue as NETPACKETQUEUE) };
    }
    decision
}

/// Opens one datagram in place. Returns the plaintext range of a data packet to deliver.
fn open_one(
    ctx: &DeviceContext,
    tunnel: &mut crate::control::Tunnel,
    linear: &mut [u8],
    d: &mut DatagramRef<'_>,
    now: datapath::Instant,
) -> Option<(usize, usize)> {
    let from = d.remote();
    let from_ep = from.as_ref().map(endpoint);
    let total = d.len();
    let mut segments: ArrayVec<&mut [u8], MAX_RX_FRAGMENTS> = ArrayVec::new();
    for s in d.segments_mut() {
        if segments.try_push(s).is_err() {
            ctx.counters.rx_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    }
    if segments.len() > 1 {
        let buf = linear.get_mut(..total)?;
        let mut at = 0;
        for s in &segments {
            buf.get_mut(at..at + s.len())?.copy_from_slice(s);
            at += s.len();
        }
        let r = tunnel.peers().open(now, from_ep.as_ref(), buf);
        let v = verdict(ctx, tunnel, r, buf, total, from.as_ref());
        if let Some((start, len)) = v {
            // Write the plaintext back where it came from, segment by segment.
            let plain = buf.get(start..start + len)?;
            let mut at = 0usize;
            for s in &mut segments {
                let (lo, hi) = (at, at + s.len());
                at = hi;
                let (a, b) = (start.max(lo), (start + len).min(hi));
                if a < b {
                    s.get_mut(a - lo..b - lo)?.copy_from_slice(plain.get(a - start..b - start)?);
                }
            }
            ctx.counters.rx_linearized.fetch_add(1, Ordering::Relaxed);
            ctx.counters.rx_copied_bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
        v
    } else {
        let buf: &mut [u8] = segments.first_mut().map(|s| &mut **s)?;
        let r = tunnel.peers().open(now, from_ep.as_ref(), buf);
        verdict(ctx, tunnel, r, buf, total, from.as_ref())
    }
}

/// Queues a TCP record opened in place in a pool buffer for the Rx ring (as `on_datagrams` does for
/// datagrams). IRQL <= DISPATCH_LEVEL; takes the Rx lock. Returns false (the caller keeps the buffer)
/// when no Rx queue takes data or the queue is full (counted as dropped).
pub(crate) fn push_pool_buffer(
    ctx: &DeviceContext,
    buffer: crate::tcp::PoolRef,
    start: usize,
    len: usize,
) -> bool {
    let accept = ctx.rx.queue.load(Ordering::Acquire) != 0 && !ctx.rx.cancelled.load(Ordering::Acquire);
    {
        let mut g = ctx.rx.inner.lock();
        let Some(inner) = g.as_mut() else { return false };
        if !accept || inner.ready.len() >= RX_QUEUE_LEN {
            ctx.counters.rx_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        inner.ready.push_back(Ready { datagram: RxBuf::Tcp(buffer), start, len });
        ctx.counters.rx_opened.fetch_add(1, Ordering::Relaxed);
    }
    let queue = ctx.rx.queue.load(Ordering::Acquire);
    if queue != 0 && ctx.rx.notify.swap(false, Ordering::AcqRel) {
        // SAFETY: our live Rx queue with notification armed.
        unsafe { netcx::notify(Direction::Rx, queue as NETPACKETQUEUE) };
    }
    true
}

/// Accounts for an opened datagram; returns the plaintext range of a data packet to deliver.
pub(crate) fn verdict(
    ctx: &DeviceContext,
    tunnel: &mut crate::control::Tunnel,
    received: Result<Received, datapath::keys::OpenError>,
    bytes: &[u8],
    total: usize,
    from: Option<&SocketAddr>,
) -> Option<(usize, usize)> {
    match received {
        Ok(Received::Data(opened)) => {
            let range = opened.payload.clone();
            let payload = bytes.get(range.clone())?;
            let ip = matches!(payload.first().map(|b| b >> 4), Some(4 | 6));
            if !ip {
                ctx.counters.rx_dropped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            if let Some(f) = opened.floated {
                let to = match f {
                    Endpoint::V4 { addr, port } => NetAddr::new(IpAddr::V4(Ipv4Addr::from(addr)), port),
                    Endpoint::V6 { addr, port } => NetAddr::new(IpAddr::V6(Ipv6Addr::from(addr)), port),
                };
                // Server mode queues an `OVPN_CMD_FLOAT_PEER` notification with the new address, as
                // ovpn-dco-win does (`notifyqueue.h`, `NotifyQueue::AddFloatEvent`/`FillFloatPeerEvent`;
                // OpenVPN's `dco_win.c` reads it through `OVPN_IOCTL_NOTIFY_EVENT` and moves the client
                // instance to the new address). A parked NOTIFY_EVENT completes now, under the tunnel
                // lock as the control glue requires.
                if tunnel.peer_floated(opened.peer_id, to) == Some(crate::control::Action::Notify) {
                    ctx.counters.rx_floats.fetch_add(1, Ordering::Relaxed);
                    crate::ioctl::service_notifications(tunnel);
                }
            }
            tunnel.count_link(opened.peer_id, total as u64, 0);
            let st = tunnel.stats_mut();
            st.received_data_packets = st.received_data_packets.wrapping_add(1);
            st.transport_bytes_received = st.transport_bytes_received.wrapping_add(total as i64);
            st.tun_bytes_received = st.tun_bytes_received.wrapping_add(range.len() as i64);
            Some((range.start, range.len()))
        }
        Ok(Received::Keepalive(opened)) => {
            ctx.counters.rx_keepalives.fetch_add(1, Ordering::Relaxed);
            tunnel.count_link(opened.peer_id, total as u64, 0);
            None
        }
        Ok(Received::Control) => {
            if let Some(from) = from {
                if tunnel.receive_control(net_addr(from), bytes).is_ok() {
                    ctx.counters.rx_control.fetch_add(1, Ordering::Relaxed);
                    // Parked reads complete now (under the tunnel lock, as the control glue requires).
                    crate::ioctl::service_reads(tunnel);
                }
            }
            None
        }
        Err(_) => {
            ctx.counters.rx_dropped.fetch_add(1, Ordering::Relaxed);
            let st = tunnel.stats_mut();
            st.lost_in_data_packets = st.lost_in_data_packets.wrapping_add(1);
            None
        }
    }
}

/// `EVT_NET_ADAPTER_CREATE_RXQUEUE`. PASSIVE_LEVEL.
pub(crate) unsafe extern "system" fn evt_create_rxqueue(
    adapter: NETADAPTER,
    init: PNETRXQUEUE_INIT,
) -> NTSTATUS {
    let Some(ctx) = device::context_of(adapter.cast()) else { return STATUS_INSUFFICIENT_RESOURCES };
    match create(ctx, init) {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

fn create(ctx: &'static DeviceContext, init: PNETRXQUEUE_INIT) -> Result<(), NTSTATUS> {
    let mut config =
        NET_PACKET_QUEUE_CONFIG::init(Some(evt_advance), Some(evt_set_notification), Some(evt_cancel));
    let mut attributes = device::pointer_attributes();
    // SAFETY: the framework's init, inside the create callback.
    let queue =
        unsafe { netcx::queue_create(Direction::Rx, init.cast(), Some(&mut attributes), &mut config) }?;
    device::attach(queue.cast(), ctx)?;
    // SAFETY: our live queue, PASSIVE_LEVEL.
    let rings = unsafe { netcx::ring_collection(Direction::Rx, queue) };
    // SAFETY: the framework's collection for the queue's lifetime.
    let rings = unsafe { rings.as_ref() }.ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    // SAFETY: our live queue; the names are NUL-terminated statics.
    let va = unsafe {
        netcx::extension(
            Direction::Rx,
            queue,
            &NET_FRAGMENT_EXTENSION_VIRTUAL_ADDRESS_NAME,
            1,
            NetExtensionTypeFragment,
        )
    }
    .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    // SAFETY: as above.
    let rc = unsafe {
        netcx::extension(
            Direction::Rx,
            queue,
            &NET_FRAGMENT_EXTENSION_RETURN_CONTEXT_NAME,
            1,
            NetExtensionTypeFragment,
        )
    }
    .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    // SAFETY: as above.
    let mdl = unsafe {
        netcx::extension(Direction::Rx, queue, &NET_FRAGMENT_EXTENSION_MDL_NAME, 1, NetExtensionTypeFragment)
    };
    let ring = RxRing {
        packets: rings.Rings[NetRingTypePacket],
        fragments: rings.Rings[NetRingTypeFragment],
        va,
        mdl,
        rc,
    };
    if let Some(inner) = ctx.rx.inner.lock().as_mut() {
        inner.ring = Some(ring);
    }
    ctx.rx.cancelled.store(false, Ordering::Release);
    ctx.rx.notify.store(false, Ordering::Release);
    ctx.rx.queue.store(queue as usize, Ordering::Release);
    Ok(())
}

unsafe extern "system" fn evt_set_notification(queue: NETPACKETQUEUE, enabled: BOOLEAN) {
    let Some(ctx) = device::context_of(queue.cast()) else { return };
    ctx.rx.notify.store(enabled != 0, Ordering::Release);
    let waiting = ctx.rx.inner.lock().as_ref().is_some_and(|i| !i.ready.is_empty());
    if enabled != 0 && waiting && ctx.rx.notify.swap(false, Ordering::AcqRel) {
        // SAFETY: our live queue; notification was just armed.
        unsafe { netcx::notify(Direction::Rx, queue) };
    }
}

unsafe extern "system" fn evt_cancel(queue: NETPACKETQUEUE) {
    let Some(ctx) = device::context_of(queue.cast()) else { return };
    ctx.rx.cancelled.store(true, Ordering::Release);
    ctx.rx.queue.store(0, Ordering::Release);
    ctx.rx.notify.store(false, Ordering::Release);
    ctx.rx.drop_queued(ctx);
    ctx.rx.flush_releases(ctx);
}

fn packet<'a>(ring: *mut NET_RING, i: u32) -> &'a mut NET_PACKET {
    // SAFETY: the live packet ring.
    let mask = unsafe { (*ring).ElementIndexMask };
    // SAFETY: the index is masked below NumberOfElements.
    let at = unsafe { NetRingGetElementAtIndex(ring, i & mask) };
    // SAFETY: a NET_PACKET element in the client's range; the queue's callbacks are serialized.
    unsafe { &mut *at.cast::<NET_PACKET>() }
}

fn fragment<'a>(ring: *mut NET_RING, i: u32) -> &'a mut NET_FRAGMENT {
    // SAFETY: the live fragment ring.
    let mask = unsafe { (*ring).ElementIndexMask };
    // SAFETY: the index is masked below NumberOfElements.
    let at = unsafe { NetRingGetElementAtIndex(ring, i & mask) };
    // SAFETY: a NET_FRAGMENT element in the client's range.
    unsafe { &mut *at.cast::<NET_FRAGMENT>() }
}

fn hdr<'a>(ring: *mut NET_RING) -> &'a mut NET_RING {
    // SAFETY: the live ring; only the client's header fields are written.
    unsafe { &mut *ring }
}

/// One fragment to attach: the MDL, its mapping, the offset into it and the length.
#[derive(Clone, Copy)]
struct Piece {
    mdl: *mut MDL,
    base: *mut u8,
    offset: usize,
    len: usize,
    capacity: usize,
}

/// The MDLs that `start .. start + len` of `d` touches.
fn pieces(d: &RxBuf, start: usize, len: usize, out: &mut ArrayVec<Piece, MAX_RX_FRAGMENTS>) -> Option<()> {
    let parts = d.parts();
    out.clear();
    let mut mdl = parts.mdl;
    let mut skip = parts.offset as usize + start;
    let mut remaining = len;
    while remaining > 0 && !mdl.is_null() {
        // SAFETY: the retained datagram's MDL chain is valid until its release.
        let count = unsafe { (*mdl).ByteCount } as usize;
        // SAFETY: as above.
        let next = unsafe { (*mdl).Next };
        if skip >= count {
            skip -= count;
            mdl = next;
            continue;
        }
        // SAFETY: a valid MDL describing the provider's locked buffer.
        let base = unsafe { MmGetSystemAddressForMdlSafe(mdl, NormalPagePriority | MdlMappingNoExecute) };
        if base.is_null() {
            return None;
        }
        let take = (count - skip).min(remaining);
        out.try_push(Piece { mdl, base: base.cast(), offset: skip, len: take, capacity: count }).ok()?;
        remaining -= take;
        skip = 0;
        mdl = next;
    }
    (remaining == 0).then_some(())
}

fn layout(first: u8) -> NET_PACKET_LAYOUT {
    match first >> 4 {
        4 => NET_PACKET_LAYOUT::new(
            0,
            u16::from(first & 0xf) * 4,
            0,
            NetPacketLayer2TypeNull,
            NetPacketLayer3TypeIPv4UnspecifiedOptions,
            0,
        ),
        _ => NET_PACKET_LAYOUT::new(
            0,
            40,
            0,
            NetPacketLayer2TypeNull,
            NetPacketLayer3TypeIPv6UnspecifiedExtensions,
            0,
        ),
    }
}

/// `EVT_PACKET_QUEUE_ADVANCE` of the Rx queue. PASSIVE_LEVEL or DISPATCH_LEVEL. Takes the Rx lock.
unsafe extern "system" fn evt_advance(queue: NETPACKETQUEUE) {
    let Some(ctx) = device::context_of(queue.cast()) else { return };
    let cancelled = ctx.rx.cancelled.load(Ordering::Acquire);
    {
        let mut g = ctx.rx.inner.lock();
        let Some(inner) = g.as_mut() else { return };
        let Some(r) = inner.ring else { return };
        let (pr, fr) = (hdr(r.packets), hdr(r.fragments));
        if cancelled {
            let mut i = pr.BeginIndex;
            while i != pr.EndIndex {
                packet(r.packets, i).set_ignore(true);
                i = NetRingIncrementIndex(pr, i);
            }
            pr.BeginIndex = pr.EndIndex;
            fr.BeginIndex = fr.EndIndex;
            while let Some(x) = inner.ready.pop_front() {
                release(ctx, inner, x.datagram);
            }
        } else {
            fill(ctx, inner, &r);
        }
    }
    ctx.rx.flush_releases(ctx);
}

fn fill(ctx: &DeviceContext, inner: &mut RxInner, r: &RxRing) {
    let (pr, fr) = (hdr(r.packets), hdr(r.fragments));
    // Filled in place per packet (a returned list was a 320-byte copy each).
    let mut pieces = ArrayVec::<Piece, MAX_RX_FRAGMENTS>::new();
    while let Some(front) = inner.ready.front() {
        let Some(()) = self::pieces(&front.datagram, front.start, front.len, &mut pieces) else {
            if let Some(x) = inner.ready.pop_front() {
                ctx.counters.rx_dropped.fetch_add(1, Ordering::Relaxed);
                release(ctx, inner, x.datagram);
            }
            continue;
        };
        let p_free = NetRingGetRangeCount(pr, pr.BeginIndex, pr.EndIndex);
        let f_free = NetRingGetRangeCount(fr, fr.BeginIndex, fr.EndIndex);
        if p_free == 0 || (f_free as usize) < pieces.len() {
            break;
        }
        let Some(slot) = inner.free.pop() else { break };
        let Some(ready) = inner.ready.pop_front() else { break };
        let first = fr.BeginIndex;
        let mut first_byte = 0u8;
        for (k, piece) in pieces.iter().enumerate() {
            let fi = fr.BeginIndex;
            let f = fragment(r.fragments, fi);
            f.set_capacity(piece.capacity as u64);
            f.set_offset(piece.offset as u64);
            f.set_valid_length(piece.len as u64);
            // SAFETY: the extensions hold one pointer-sized element per fragment index.
            unsafe { r.va.data(fi).cast::<usize>().write(piece.base as usize) };
            // SAFETY: as above.
            unsafe { r.rc.data(fi).cast::<usize>().write(ctx.rx.tag(slot)) };
            if let Some(m) = r.mdl {
                // SAFETY: as above.
                unsafe { m.data(fi).cast::<usize>().write(piece.mdl as usize) };
            }
            if k == 0 {
                // SAFETY: the piece maps `len >= 1` bytes at base + offset (the plaintext is an IP packet).
                first_byte = unsafe { piece.base.wrapping_add(piece.offset).read() };
            }
            fr.BeginIndex = NetRingIncrementIndex(fr, fi);
        }
        let p = packet(r.packets, pr.BeginIndex);
        p.FragmentIndex = first;
        p.FragmentCount = pieces.len() as u16;
        p.Layout = layout(first_byte);
        pr.BeginIndex = NetRingIncrementIndex(pr, pr.BeginIndex);
        if let Some(entry) = inner.lent.get_mut(usize::from(slot)) {
            *entry = Some(Lent { datagram: ready.datagram, fragments: pieces.len() as u16 });
        }
        inner.outstanding += 1;
        ctx.counters.rx_indicated.fetch_add(1, Ordering::Relaxed);
    }
}

/// `EVT_NET_ADAPTER_RETURN_RX_BUFFER`: once per fragment of each non-ignored Rx packet. PASSIVE_LEVEL or
/// DISPATCH_LEVEL. Takes the Rx lock; the release batch goes to WSK outside it.
pub(crate) unsafe extern "system" fn evt_return_rx_buffer(
    adapter: NETADAPTER,
    context: NET_FRAGMENT_RETURN_CONTEXT_HANDLE,
) {
    let _ = adapter;
    let tag = context.cast::<ReturnTag>().cast_const();
    if tag.is_null() || !tag.is_aligned() {
        return;
    }
    // SAFETY: the framework hands back the return context this driver attached (`fill`): the address of
    // one of a device's return tags, which live in its device context until the device's cleanup, after
    // every return.
    let device = unsafe { (*tag).0.load(Ordering::Acquire) };
    // SAFETY: null, or the device context the tag was bound to (`bind_returns`), live as above.
    let Some(ctx) = (unsafe { device.as_ref() }) else { return };
    ctx.counters.rx_returns.fetch_add(1, Ordering::Relaxed);
    let base = ctx.rx.tags.as_ptr() as usize;
    let offset = (tag as usize).wrapping_sub(base);
    let slot = offset / core::mem::size_of::<ReturnTag>();
    if !offset.is_multiple_of(core::mem::size_of::<ReturnTag>()) || slot >= MAX_LENT {
        ctx.counters.rx_bad_returns.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let flush = {
        let mut g = ctx.rx.inner.lock();
        let Some(inner) = g.as_mut() else { return };
        let Some(entry) = inner.lent.get_mut(slot) else {
            ctx.counters.rx_bad_returns.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(lent) = entry.as_mut() else {
            ctx.counters.rx_bad_returns.fetch_add(1, Ordering::Relaxed);
            return;
        };
        lent.fragments = lent.fragments.saturating_sub(1);
        if lent.fragments == 0 {
            if let Some(done) = entry.take() {
                release(ctx, inner, done.datagram);
                inner.outstanding = inner.outstanding.saturating_sub(1);
                inner.free.push(slot as u16);
            }
        }
        inner.pending_releases >= RELEASE_BATCH || (inner.outstanding == 0 && inner.pending_releases > 0)
    };
    if flush {
        ctx.rx.flush_releases(ctx);
    }
}
