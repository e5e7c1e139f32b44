//! Winsock Kernel UDP sockets for both drivers: [`WskClient`] (registration and the captured provider
//! NPI) and [`UdpSocket`] (a bound datagram socket with receive events, batched sends over a bounded pool
//! of preallocated IRPs, and zero-copy retained receives).
//!
//! Facts from the WSK documentation and from how ovpn-dco-win (`socket.cpp`) and wireguard-nt
//! (`socket.c`) drive WSK (own code):
//! * `WskRegister` / `WskCaptureProviderNPI` at PASSIVE_LEVEL; the capture is released before
//!   `WskDeregister`, which blocks until every socket is closed.
//! * Every WSK call that takes an IRP completes it (also on immediate failure); an IRP from
//!   `IoAllocateIrp` needs a completion routine invoked on success, error and cancel that returns
//!   `STATUS_MORE_PROCESSING_REQUIRED`; the driver then reuses (`IoReuseIrp`) or frees it.
//! * `WskReceiveFromEvent` runs at IRQL <= DISPATCH_LEVEL; returning `STATUS_PENDING` retains the whole
//!   indication chain until `WskRelease`, which accepts any chain of retained indications (so releases
//!   batch); closing a socket does not release retained indications.
//! * `WskSendMessages` (Windows 8+; wireguard-nt polyfills it on Windows 7) sends every `WSK_BUF_LIST`
//!   element as one datagram to one destination, completing one IRP.
//!
//! # IRQL summary
//! | item | IRQL |
//! |---|---|
//! | [`WskClient::new`], drop of [`WskClient`] | PASSIVE_LEVEL |
//! | [`UdpSocket::bind`], [`UdpSocket::close`], drop of [`UdpSocket`] | PASSIVE_LEVEL |
//! | [`UdpSocket::send_to`], [`UdpSocket::send_messages`], [`UdpSocket::flush_releases`] | <= DISPATCH_LEVEL |
//! | [`Receiver::on_datagrams`] | <= DISPATCH_LEVEL (DISPATCH_LEVEL when `WSK_FLAG_AT_DISPATCH_LEVEL`) |
//! | [`SendCompletion::on_send_complete`] | <= DISPATCH_LEVEL (the IRQL of the provider's completion) |
//! | [`Datagram`] accessors, [`Datagram::release`], drop, [`ReleaseBatch`] | <= DISPATCH_LEVEL |
//!
//! # Ordering rules
//! * Every [`UdpSocket`] is dropped (closed) before its [`WskClient`]: `WskDeregister` waits for open
//!   sockets (the simulated kernel reports `wsk.socket_leak_at_unload`).
//! * Every retained [`Datagram`] is released before its socket closes (`wsk.close_with_retained`).
//!   [`UdpSocket::close`] refuses with `STATUS_DEVICE_BUSY` (and gives the socket back) while any is
//!   retained; a plain drop in that state leaks the socket rather than invalidating the datagrams.
//! * After close returns no [`Receiver`] or [`SendCompletion`] callback runs: receive events are
//!   disabled first, the close cancels pending sends (their completions run, with `STATUS_CANCELLED`),
//!   and the close waits until every completion routine has finished.
//!
//! Nothing on the send or receive paths allocates; nothing reachable from a callback panics.
// IRQL names and WSK identifiers appear in prose as the WDK docs write them (as in `ffi`).
#![allow(clippy::doc_markdown)]
use core::cell::{Cell, UnsafeCell};
use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::ffi::mdl::{MdlMappingNoExecute, MmGetSystemAddressForMdlSafe, NormalPagePriority, MDL};
use crate::ffi::ntos::{
    ExAllocatePool2, ExFreePoolWithTag, Executive, IoAllocateIrp, IoFreeIrp, IoReuseIrp,
    IoSetCompletionRoutine, KeClearEvent, KeDelayExecutionThread, KeGetCurrentIrql, KeInitializeEvent,
    KeSetEvent, KeWaitForSingleObject, KernelMode, NotificationEvent, DEVICE_OBJECT, DISPATCH_LEVEL, FALSE,
    IRP, KEVENT, LARGE_INTEGER, NTSTATUS, NT_SUCCESS, PASSIVE_LEVEL, POOL_FLAG_NON_PAGED,
    STATUS_DATA_NOT_ACCEPTED, STATUS_DEVICE_BUSY, STATUS_INSUFFICIENT_RESOURCES, STATUS_INTEGER_OVERFLOW,
    STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER, STATUS_MORE_PROCESSING_REQUIRED,
    STATUS_NOT_SUPPORTED, STATUS_PENDING, STATUS_SUCCESS, STATUS_UNSUCCESSFUL,
};
use crate::ffi::wsk::{
    WskCaptureProviderNPI, WskDeregister, WskRegister, WskReleaseProviderNPI, WskSetOption, ADDRESS_FAMILY,
    AF_INET, AF_INET6, IN6_ADDR, IN_ADDR, IPPROTO_UDP, NPI_WSK_INTERFACE_ID, SOCKADDR, SOCKADDR_IN,
    SOCKADDR_IN6, SOCKADDR_INET, SOCK_DGRAM, SOL_SOCKET, SO_WSK_EVENT_CALLBACK, WSK_BUF, WSK_BUF_LIST,
    WSK_CLIENT_DATAGRAM_DISPATCH, WSK_CLIENT_DISPATCH, WSK_CLIENT_NPI, WSK_DATAGRAM_INDICATION,
    WSK_EVENT_CALLBACK_CONTROL, WSK_EVENT_DISABLE, WSK_EVENT_RECEIVE_FROM, WSK_FLAG_DATAGRAM_SOCKET,
    WSK_FLAG_RELEASE_ASAP, WSK_INFINITE_WAIT, WSK_PROVIDER_DATAGRAM_DISPATCH, WSK_PROVIDER_NPI,
    WSK_REGISTRATION, WSK_SOCKET, WSK_VERSION_1_0,
};
use crate::pool::PoolBox;

pub mod tcp;
pub use tcp::{StreamData, StreamReceiver, StreamSegments, TcpSocket};

/// Pool tag of every allocation this module makes: `rWsk` (the bytes in memory order).
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"rWsk");
/// Most send IRPs one socket may preallocate.
pub const MAX_SEND_IRPS: usize = 1024;
/// Most datagrams in one [`UdpSocket::send_messages`] batch.
pub const MAX_BATCH: usize = 256;
/// Words of the free-IRP bitmap.
const FREE_WORDS: usize = MAX_SEND_IRPS / 64;

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

/// An IPv4 or IPv6 socket address (no `std`). Addresses are in network byte order (as written), ports
/// in host order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketAddr {
    /// IPv4 address and port.
    V4 { ip: [u8; 4], port: u16 },
    /// IPv6 address, port, flow info and scope id.
    V6 { ip: [u8; 16], port: u16, flowinfo: u32, scope_id: u32 },
}

impl SocketAddr {
    /// An IPv4 address.
    pub const fn v4(ip: [u8; 4], port: u16) -> Self {
        SocketAddr::V4 { ip, port }
    }

    /// An IPv6 address (flow info and scope 0).
    pub const fn v6(ip: [u8; 16], port: u16) -> Self {
        SocketAddr::V6 { ip, port, flowinfo: 0, scope_id: 0 }
    }

    /// `127.0.0.1:port`.
    pub const fn localhost_v4(port: u16) -> Self {
        SocketAddr::v4([127, 0, 0, 1], port)
    }

    /// `[::1]:port`.
    pub const fn localhost_v6(port: u16) -> Self {
        let mut ip = [0u8; 16];
        ip[15] = 1;
        SocketAddr::v6(ip, port)
    }

    /// The port, host order.
    pub const fn port(&self) -> u16 {
        match *self {
            SocketAddr::V4 { port, .. } | SocketAddr::V6 { port, .. } => port,
        }
    }

    /// Whether this is an IPv4 address.
    pub const fn is_ipv4(&self) -> bool {
        matches!(self, SocketAddr::V4 { .. })
    }

    /// `AF_INET` or `AF_INET6` (Windows values).
    pub const fn family(&self) -> ADDRESS_FAMILY {
        if self.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        }
    }

    /// The `SOCKADDR_INET` WSK takes. Any IRQL.
    pub const fn to_raw(&self) -> SOCKADDR_INET {
        match *self {
            SocketAddr::V4 { ip, port } => SOCKADDR_INET {
                Ipv4: SOCKADDR_IN {
                    sin_family: AF_INET,
                    sin_port: port.to_be(),
                    sin_addr: IN_ADDR { s_addr: ip },
                    sin_zero: [0; 8],
                },
            },
            SocketAddr::V6 { ip, port, flowinfo, scope_id } => SOCKADDR_INET {
                Ipv6: SOCKADDR_IN6 {
                    sin6_family: AF_INET6,
                    sin6_port: port.to_be(),
                    sin6_flowinfo: flowinfo.to_be(),
                    sin6_addr: IN6_ADDR { s6_addr: ip },
                    sin6_scope_id: scope_id,
                },
            },
        }
    }

    /// Reads a `SOCKADDR_IN` / `SOCKADDR_IN6`; `None` for null or another family. Any IRQL.
    ///
    /// # Safety
    /// `p` must be null or point to a readable socket address of the size its family implies.
    pub unsafe fn from_raw(p: *const SOCKADDR) -> Option<Self> {
        if p.is_null() {
            return None;
        }
        // SAFETY: the caller guarantees a readable address; the family is its first field.
        let family = unsafe { p.cast::<ADDRESS_FAMILY>().read_unaligned() };
        match family {
            AF_INET => {
                // SAFETY: an AF_INET address is a SOCKADDR_IN (caller's contract).
                let s = unsafe { p.cast::<SOCKADDR_IN>().read_unaligned() };
                Some(SocketAddr::v4(s.sin_addr.s_addr, u16::from_be(s.sin_port)))
            }
            AF_INET6 => {
                // SAFETY: an AF_INET6 address is a SOCKADDR_IN6 (caller's contract).
                let s = unsafe { p.cast::<SOCKADDR_IN6>().read_unaligned() };
                Some(SocketAddr::V6 {
                    ip: s.sin6_addr.s6_addr,
                    port: u16::from_be(s.sin6_port),
                    flowinfo: u32::from_be(s.sin6_flowinfo),
                    scope_id: s.sin6_scope_id,
                })
            }
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// The current IRQL.
fn current_irql() -> u8 {
    // SAFETY: KeGetCurrentIrql may be called at any IRQL and has no preconditions.
    unsafe { KeGetCurrentIrql() }
}

/// `Irp->IoStatus` as (status, information).
///
/// # Safety
/// `irp` must be a live IRP the caller owns (completed, or inside its completion routine).
unsafe fn irp_result(irp: *mut IRP) -> (NTSTATUS, usize) {
    // SAFETY: the caller guarantees a live IRP.
    let io_status = unsafe { &(*irp).IoStatus };
    // SAFETY: Status is the member completion writes.
    let status = unsafe { io_status.u.Status };
    // SAFETY: as above.
    let information = unsafe { (*irp).IoStatus.Information };
    (status, information)
}

/// A fixed array of `T` in one non-paged pool block tagged [`POOL_TAG`]. PASSIVE..DISPATCH_LEVEL.
struct PoolArray<T> {
    ptr: NonNull<T>,
    len: usize,
}

impl<T> PoolArray<T> {
    fn new(len: usize, mut init: impl FnMut(usize) -> T) -> Result<Self, NTSTATUS> {
        const { assert!(core::mem::align_of::<T>() <= 16, "pool blocks are 16-byte aligned") };
        let bytes = core::mem::size_of::<T>().checked_mul(len).ok_or(STATUS_INTEGER_OVERFLOW)?.max(1);
        // SAFETY: IRQL <= DISPATCH_LEVEL (callers run at PASSIVE_LEVEL); null is handled below.
        let raw = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, bytes, POOL_TAG) };
        let ptr = NonNull::new(raw.cast::<T>()).ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        for i in 0..len {
            // SAFETY: the block holds `len` elements and `i < len`: the pointer stays inside it.
            let element = unsafe { ptr.as_ptr().add(i) };
            // SAFETY: in bounds (above), suitably aligned, not initialised yet.
            unsafe { element.write(init(i)) };
        }
        Ok(PoolArray { ptr, len })
    }

    fn as_slice(&self) -> &[T] {
        // SAFETY: `len` initialised elements live in the block for as long as `self`.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for PoolArray<T> {
    fn drop(&mut self) {
        let slice: *mut [T] = self.as_mut_slice();
        // SAFETY: every element was initialised by `new` and is dropped exactly once, here.
        unsafe { core::ptr::drop_in_place(slice) };
        // SAFETY: the block came from ExAllocatePool2 with POOL_TAG and is freed once.
        unsafe { ExFreePoolWithTag(self.ptr.as_ptr().cast::<c_void>(), POOL_TAG) };
    }
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// `WSK_CLIENT_DISPATCH`: no client-level events.
static CLIENT_DISPATCH: WSK_CLIENT_DISPATCH =
    WSK_CLIENT_DISPATCH { Version: WSK_VERSION_1_0, Reserved: 0, WskClientEvent: None };

/// What `WskRegister` keeps pointers into: must stay in place until `WskDeregister` returned.
struct ClientBlock {
    registration: UnsafeCell<WSK_REGISTRATION>,
    client_npi: UnsafeCell<WSK_CLIENT_NPI>,
    provider: UnsafeCell<WSK_PROVIDER_NPI>,
}

/// A WSK client registration with the provider NPI captured. Create once per driver at PASSIVE_LEVEL
/// (`DriverEntry`, or a device's start); drop at PASSIVE_LEVEL after every [`UdpSocket`] made from it was
/// dropped. Drop releases the NPI and deregisters, in that order.
pub struct WskClient {
    block: PoolBox<ClientBlock>,
}

// SAFETY: the block is written only by `new` (before the client is shared) and by the WSK provider,
// which synchronises its own accesses; the provider NPI is read-only after the capture.
unsafe impl Send for WskClient {}
// SAFETY: as above; `&WskClient` only reads the captured NPI.
unsafe impl Sync for WskClient {}

impl WskClient {
    /// `WskRegister` + `WskCaptureProviderNPI(WSK_INFINITE_WAIT)`. PASSIVE_LEVEL.
    pub fn new() -> Result<Self, NTSTATUS> {
        if current_irql() != PASSIVE_LEVEL {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        let block = PoolBox::new(
            ClientBlock {
                registration: UnsafeCell::new(WSK_REGISTRATION {
                    ReservedRegistrationState: 0,
                    ReservedRegistrationContext: null_mut(),
                    ReservedRegistrationLock: 0,
                }),
                client_npi: UnsafeCell::new(WSK_CLIENT_NPI {
                    ClientContext: null_mut(),
                    Dispatch: &raw const CLIENT_DISPATCH,
                }),
                provider: UnsafeCell::new(WSK_PROVIDER_NPI {
                    Client: null_mut(),
                    Dispatch: core::ptr::null(),
                }),
            },
            POOL_TAG,
        )?;
        // SAFETY: PASSIVE_LEVEL (checked); the NPI and registration live in a pool block that stays in
        // place until WskDeregister (in Drop, or below on failure).
        let status = unsafe { WskRegister(block.client_npi.get(), block.registration.get()) };
        if !NT_SUCCESS(status) {
            return Err(status);
        }
        // SAFETY: PASSIVE_LEVEL with a wait; a live registration and a writable NPI.
        let status = unsafe {
            WskCaptureProviderNPI(block.registration.get(), WSK_INFINITE_WAIT, block.provider.get())
        };
        if !NT_SUCCESS(status) {
            // SAFETY: registered above, nothing captured, no sockets.
            unsafe { WskDeregister(block.registration.get()) };
            return Err(status);
        }
        Ok(WskClient { block })
    }

    /// The captured provider NPI.
    fn provider(&self) -> &WSK_PROVIDER_NPI {
        // SAFETY: written by the capture in `new`, read-only afterwards.
        unsafe { &*self.block.provider.get() }
    }
}

impl Drop for WskClient {
    /// PASSIVE_LEVEL. `WskReleaseProviderNPI`, then `WskDeregister` (which waits for open sockets).
    fn drop(&mut self) {
        // SAFETY: captured once in `new`, released once here.
        unsafe { WskReleaseProviderNPI(self.block.registration.get()) };
        // SAFETY: registered in `new`, deregistered once here at PASSIVE_LEVEL (the drop's contract).
        unsafe { WskDeregister(self.block.registration.get()) };
    }
}

impl core::fmt::Debug for WskClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WskClient").finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------------------------

/// Receives datagrams from the socket's `WskReceiveFromEvent`.
pub trait Receiver: Send + Sync {
    /// Called at IRQL <= DISPATCH_LEVEL (usually DISPATCH_LEVEL) with one or more datagrams. Must not
    /// block or panic. Return [`RetainDecision::CONSUMED`] (the provider takes the buffers back when this
    /// returns), [`RetainDecision::NOT_ACCEPTED`] (dropped; `STATUS_DATA_NOT_ACCEPTED`), or the decision
    /// [`DatagramChain::retain`] hands out (the datagrams become [`Datagram`] handles, released later).
    fn on_datagrams(&self, chain: DatagramChain<'_>) -> RetainDecision;
}

/// Learns how sends ended.
pub trait SendCompletion: Send + Sync {
    /// What the caller attaches to a send and gets back on completion (a packet, a pooled buffer).
    type Context: Send;
    /// Called exactly once per accepted send, at IRQL <= DISPATCH_LEVEL (the provider's completion
    /// IRQL; possibly inside [`UdpSocket::send_to`] when the provider completes inline). `bytes` is the
    /// number of bytes sent (the sum over a batch). The send's IRP is already back in the pool, so the
    /// callback may send again. Must not block or panic.
    fn on_send_complete(&self, status: NTSTATUS, bytes: usize, context: Self::Context);
}

/// What [`Receiver::on_datagrams`] did with the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetainDecision(Decision);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Consumed,
    NotAccepted,
    Retained,
}

impl RetainDecision {
    /// Done with the datagrams: `STATUS_SUCCESS`.
    pub const CONSUMED: RetainDecision = RetainDecision(Decision::Consumed);
    /// Refused: `STATUS_DATA_NOT_ACCEPTED`.
    pub const NOT_ACCEPTED: RetainDecision = RetainDecision(Decision::NotAccepted);

    /// Whether this decision retains the chain.
    pub fn is_retained(&self) -> bool {
        self.0 == Decision::Retained
    }
}

// ---------------------------------------------------------------------------------------------
// Buffers: MDL chain walking
// ---------------------------------------------------------------------------------------------

/// A buffer as WSK describes it: an MDL chain, an offset into the first MDL, and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferParts {
    /// First MDL of the chain.
    pub mdl: *mut MDL,
    /// Offset into the first MDL's bytes.
    pub offset: u32,
    /// Bytes described, across the chain.
    pub length: usize,
}

/// One step of an MDL-chain walk: the mapped address and length of the next segment.
///
/// # Safety
/// `*mdl` must be null or a valid, mapped-or-mappable MDL whose chain stays valid.
unsafe fn next_segment(
    mdl: &mut *mut MDL,
    offset: &mut usize,
    remaining: &mut usize,
) -> Option<(*mut u8, usize)> {
    while *remaining > 0 && !mdl.is_null() {
        let current = *mdl;
        // SAFETY: the caller guarantees a valid MDL.
        let count = unsafe { (*current).ByteCount } as usize;
        // SAFETY: as above.
        let next = unsafe { (*current).Next };
        let skip = *offset;
        *offset = 0;
        *mdl = next;
        let take = count.saturating_sub(skip).min(*remaining);
        if take == 0 {
            continue;
        }
        // SAFETY: a valid MDL describing locked or non-paged memory (WSK buffers are).
        let va = unsafe { MmGetSystemAddressForMdlSafe(current, NormalPagePriority | MdlMappingNoExecute) };
        if va.is_null() {
            *remaining = 0;
            return None;
        }
        *remaining -= take;
        return Some((va.cast::<u8>().wrapping_add(skip), take));
    }
    None
}

/// The bytes of a datagram as `&[u8]` segments, one per MDL touched (offset and length honoured). If
/// a segment cannot be mapped (never for WSK's own buffers) the iteration ends early.
#[derive(Debug)]
pub struct Segments<'a> {
    mdl: *mut MDL,
    offset: usize,
    remaining: usize,
    _borrow: PhantomData<&'a [u8]>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        // SAFETY: the MDL chain belongs to a datagram borrowed for 'a (a retained or indicated one).
        let (va, len) = unsafe { next_segment(&mut self.mdl, &mut self.offset, &mut self.remaining) }?;
        // SAFETY: the MDL maps `len` bytes at `va` (offset + take <= ByteCount), valid for 'a.
        Some(unsafe { core::slice::from_raw_parts(va, len) })
    }
}

/// The bytes of a datagram as `&mut [u8]` segments (for decrypting in place). The segments of one
/// datagram are disjoint (distinct MDLs describe distinct provider buffers).
#[derive(Debug)]
pub struct SegmentsMut<'a> {
    mdl: *mut MDL,
    offset: usize,
    remaining: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'a> Iterator for SegmentsMut<'a> {
    type Item = &'a mut [u8];
    fn next(&mut self) -> Option<&'a mut [u8]> {
        // SAFETY: the MDL chain belongs to a datagram mutably borrowed for 'a.
        let (va, len) = unsafe { next_segment(&mut self.mdl, &mut self.offset, &mut self.remaining) }?;
        // SAFETY: as for Segments; each segment is yielded once and segments do not overlap.
        Some(unsafe { core::slice::from_raw_parts_mut(va, len) })
    }
}

/// Read access shared by [`DatagramRef`] and [`Datagram`].
///
/// # Safety
/// `ind` must point to a valid indication for the lifetime of the result.
unsafe fn parts_of(ind: *const WSK_DATAGRAM_INDICATION) -> BufferParts {
    // SAFETY: the caller guarantees a valid indication.
    let buffer = unsafe { (*ind).Buffer };
    BufferParts { mdl: buffer.Mdl, offset: buffer.Offset, length: buffer.Length }
}

fn segments_of<'a>(parts: BufferParts) -> Segments<'a> {
    Segments { mdl: parts.mdl, offset: parts.offset as usize, remaining: parts.length, _borrow: PhantomData }
}

fn segments_mut_of<'a>(parts: BufferParts) -> SegmentsMut<'a> {
    SegmentsMut {
        mdl: parts.mdl,
        offset: parts.offset as usize,
        remaining: parts.length,
        _borrow: PhantomData,
    }
}

/// # Safety
/// `ind` must point to a valid indication.
unsafe fn remote_of(ind: *const WSK_DATAGRAM_INDICATION) -> Option<SocketAddr> {
    // SAFETY: the caller guarantees a valid indication.
    let remote = unsafe { (*ind).RemoteAddress };
    // SAFETY: the provider's RemoteAddress is null or a SOCKADDR_IN/SOCKADDR_IN6.
    unsafe { SocketAddr::from_raw(remote) }
}

/// Number of indications in a chain.
///
/// # Safety
/// `head` must be null or a valid chain.
unsafe fn chain_len(mut head: *mut WSK_DATAGRAM_INDICATION) -> usize {
    let mut n = 0usize;
    while !head.is_null() {
        n = n.wrapping_add(1);
        // SAFETY: a valid element of the chain.
        head = unsafe { (*head).Next };
    }
    n
}

// ---------------------------------------------------------------------------------------------
// Receive side
// ---------------------------------------------------------------------------------------------

/// The non-generic part of a socket, which [`Datagram`]s point to.
struct Core {
    socket: AtomicPtr<WSK_SOCKET>,
    dispatch: AtomicPtr<WSK_PROVIDER_DATAGRAM_DISPATCH>,
    /// Datagrams retained (handed out as [`Datagram`]s or deferred) and not yet released.
    retained: AtomicUsize,
    /// Receive callbacks running now.
    delivering: AtomicUsize,
    /// Released while a receive callback ran (the provider cannot take them back before the callback
    /// returns `STATUS_PENDING`): linked through `Next`, released at the next opportunity.
    deferred: AtomicPtr<WSK_DATAGRAM_INDICATION>,
    /// Set when closing starts: the receive callback consumes without calling the receiver.
    closing: AtomicBool,
}

impl Core {
    fn dispatch(&self) -> Option<&WSK_PROVIDER_DATAGRAM_DISPATCH> {
        let d = self.dispatch.load(Ordering::Acquire);
        // SAFETY: null, or the provider's static datagram dispatch table of an open socket.
        unsafe { d.as_ref() }
    }

    /// `WskRelease` of a chain now. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `head` is a non-null chain of indications retained from this socket, released once.
    unsafe fn release_now(&self, head: *mut WSK_DATAGRAM_INDICATION) {
        // SAFETY: forwarded contract.
        let n = unsafe { chain_len(head) };
        let socket = self.socket.load(Ordering::Acquire);
        if let Some(release) = self.dispatch().and_then(|d| d.WskRelease) {
            // SAFETY: IRQL <= DISPATCH_LEVEL; the chain was retained from `socket` (STATUS_PENDING).
            let _ = unsafe { release(socket, head) };
        }
        self.retained.fetch_sub(n, Ordering::AcqRel);
    }

    /// Releases what was deferred, unless a receive callback is running. IRQL <= DISPATCH_LEVEL.
    fn flush_deferred(&self) {
        if self.delivering.load(Ordering::Acquire) != 0 || self.deferred.load(Ordering::Acquire).is_null() {
            return;
        }
        let head = self.deferred.swap(null_mut(), Ordering::AcqRel);
        if !head.is_null() {
            // SAFETY: the deferred list holds retained indications of this socket, each pushed once.
            unsafe { self.release_now(head) };
        }
    }

    /// Releases a chain, or defers it while a receive callback runs. IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// As for [`Core::release_now`].
    unsafe fn release_chain(&self, head: *mut WSK_DATAGRAM_INDICATION) {
        if self.delivering.load(Ordering::Acquire) != 0 {
            let mut tail = head;
            loop {
                // SAFETY: a valid element of the caller's chain.
                let next = unsafe { (*tail).Next };
                if next.is_null() {
                    break;
                }
                tail = next;
            }
            let mut current = self.deferred.load(Ordering::Acquire);
            loop {
                // SAFETY: `tail` is the last element of a chain we own.
                unsafe { (*tail).Next = current };
                match self.deferred.compare_exchange_weak(current, head, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return,
                    Err(now) => current = now,
                }
            }
        }
        self.flush_deferred();
        // SAFETY: forwarded contract.
        unsafe { self.release_now(head) };
    }
}

/// Releases (or defers) a chain through its socket's core.
///
/// # Safety
/// `core` is alive (a socket does not free its core while datagrams are retained) and `head` is a chain
/// of retained indications of that socket, released once.
unsafe fn release_via(core: NonNull<Core>, head: *mut WSK_DATAGRAM_INDICATION) {
    // SAFETY: the caller guarantees the core is alive.
    let core = unsafe { core.as_ref() };
    // SAFETY: forwarded contract.
    unsafe { core.release_chain(head) };
}

/// The datagrams of one `WskReceiveFromEvent` call. Valid only during [`Receiver::on_datagrams`].
pub struct DatagramChain<'a> {
    head: *mut WSK_DATAGRAM_INDICATION,
    core: &'a Core,
    flags: u32,
    retained: &'a Cell<bool>,
}

impl DatagramChain<'_> {
    /// Number of datagrams.
    pub fn len(&self) -> usize {
        // SAFETY: the provider's chain is valid during the callback.
        unsafe { chain_len(self.head) }
    }

    /// Whether the chain is empty (never, from the provider).
    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// The callback's flags (`WSK_FLAG_AT_DISPATCH_LEVEL`, `WSK_FLAG_RELEASE_ASAP`).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Whether the provider asked for retained buffers to come back soon (`WSK_FLAG_RELEASE_ASAP`).
    pub fn release_asap(&self) -> bool {
        self.flags & WSK_FLAG_RELEASE_ASAP != 0
    }

    /// Views of the datagrams, for reading or modifying them in place during the callback.
    pub fn iter(&mut self) -> ChainIter<'_> {
        ChainIter { next: self.head, _borrow: PhantomData }
    }

    /// Retains every datagram of the chain: the returned decision must be what the receiver returns
    /// (it becomes `STATUS_PENDING`), and each datagram becomes an owned [`Datagram`]. Datagrams
    /// released before the callback returns are released at the next opportunity (a later callback,
    /// send, release or the close).
    pub fn retain(self) -> (RetainDecision, RetainedDatagrams) {
        let n = self.len();
        self.retained.set(true);
        self.core.retained.fetch_add(n, Ordering::AcqRel);
        let core = NonNull::from(self.core);
        (RetainDecision(Decision::Retained), RetainedDatagrams { next: self.head, core })
    }
}

impl core::fmt::Debug for DatagramChain<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DatagramChain").field("len", &self.len()).field("flags", &self.flags).finish()
    }
}

/// Iterator over a [`DatagramChain`]'s datagrams.
#[derive(Debug)]
pub struct ChainIter<'a> {
    next: *mut WSK_DATAGRAM_INDICATION,
    _borrow: PhantomData<&'a mut DatagramChain<'a>>,
}

impl<'a> Iterator for ChainIter<'a> {
    type Item = DatagramRef<'a>;
    fn next(&mut self) -> Option<DatagramRef<'a>> {
        let current = NonNull::new(self.next)?;
        // SAFETY: a valid element of the provider's chain.
        self.next = unsafe { (*current.as_ptr()).Next };
        Some(DatagramRef { indication: current, _borrow: PhantomData })
    }
}

/// One datagram of a chain during the receive callback.
#[derive(Debug)]
pub struct DatagramRef<'a> {
    indication: NonNull<WSK_DATAGRAM_INDICATION>,
    _borrow: PhantomData<&'a mut WSK_DATAGRAM_INDICATION>,
}

impl DatagramRef<'_> {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.buffer().length
    }
    /// Whether the datagram is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// MDL chain, offset and length.
    pub fn buffer(&self) -> BufferParts {
        // SAFETY: valid during the callback.
        unsafe { parts_of(self.indication.as_ptr()) }
    }
    /// The sender.
    pub fn remote(&self) -> Option<SocketAddr> {
        // SAFETY: valid during the callback.
        unsafe { remote_of(self.indication.as_ptr()) }
    }
    /// The bytes, segment by segment.
    pub fn segments(&self) -> Segments<'_> {
        segments_of(self.buffer())
    }
    /// The bytes, mutable (decrypt in place during the callback).
    pub fn segments_mut(&mut self) -> SegmentsMut<'_> {
        segments_mut_of(self.buffer())
    }
}

/// The datagrams of a retained chain, yielded one by one as owned [`Datagram`]s. Dropping it releases
/// those not taken, in one `WskRelease`.
#[derive(Debug)]
pub struct RetainedDatagrams {
    next: *mut WSK_DATAGRAM_INDICATION,
    core: NonNull<Core>,
}

// SAFETY: it owns retained indications (released through the provider, callable from any thread at
// IRQL <= DISPATCH_LEVEL); the socket core outlives them (close refuses while any are retained).
unsafe impl Send for RetainedDatagrams {}

impl Iterator for RetainedDatagrams {
    type Item = Datagram;
    fn next(&mut self) -> Option<Datagram> {
        let current = NonNull::new(self.next)?;
        // SAFETY: a retained indication this iterator owns.
        self.next = unsafe { (*current.as_ptr()).Next };
        // SAFETY: as above; detached so that releasing it releases it alone.
        unsafe { (*current.as_ptr()).Next = null_mut() };
        Some(Datagram { indication: current, core: self.core })
    }
}

impl Drop for RetainedDatagrams {
    fn drop(&mut self) {
        let head = core::mem::replace(&mut self.next, null_mut());
        if !head.is_null() {
            // SAFETY: the core outlives retained datagrams; `head` is the rest of a retained chain.
            unsafe { release_via(self.core, head) };
        }
    }
}

/// A retained datagram: its buffers stay valid until it is released (drop or [`Datagram::release`]),
/// which must happen before its socket closes. IRQL <= DISPATCH_LEVEL for everything.
#[derive(Debug)]
pub struct Datagram {
    indication: NonNull<WSK_DATAGRAM_INDICATION>,
    core: NonNull<Core>,
}

// SAFETY: see RetainedDatagrams.
unsafe impl Send for Datagram {}
// SAFETY: `&Datagram` only reads the buffers; writing needs `&mut`.
unsafe impl Sync for Datagram {}

impl Datagram {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.buffer().length
    }
    /// Whether the datagram is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// MDL chain, offset and length (to lend to NetAdapterCx as fragments); valid while retained.
    pub fn buffer(&self) -> BufferParts {
        // SAFETY: retained, so valid.
        unsafe { parts_of(self.indication.as_ptr()) }
    }
    /// The sender.
    pub fn remote(&self) -> Option<SocketAddr> {
        // SAFETY: retained, so valid.
        unsafe { remote_of(self.indication.as_ptr()) }
    }
    /// The bytes, segment by segment.
    pub fn segments(&self) -> Segments<'_> {
        segments_of(self.buffer())
    }
    /// The bytes, mutable: the client may modify a datagram it retains (decrypt in place); safe only
    /// while retained, which owning a `Datagram` guarantees.
    pub fn segments_mut(&mut self) -> SegmentsMut<'_> {
        segments_mut_of(self.buffer())
    }
    /// Returns the datagram to the provider (`WskRelease`; deferred if a receive callback of its socket
    /// is running).
    pub fn release(self) {
        drop(self);
    }
    /// Gives up ownership, e.g. as a NetAdapterCx return context. Take it back with
    /// [`Datagram::from_raw`].
    pub fn into_raw(self) -> NonNull<WSK_DATAGRAM_INDICATION> {
        let p = self.indication;
        core::mem::forget(self);
        p
    }
    /// Takes back a datagram given up with [`Datagram::into_raw`].
    ///
    /// # Safety
    /// `indication` came from `into_raw` of a datagram of `socket`, and is taken back once.
    pub unsafe fn from_raw<R: Receiver, C: SendCompletion>(
        indication: NonNull<WSK_DATAGRAM_INDICATION>,
        socket: &UdpSocket<R, C>,
    ) -> Self {
        Datagram { indication, core: NonNull::from(&socket.inner.core) }
    }
}

impl Drop for Datagram {
    fn drop(&mut self) {
        // SAFETY: the core outlives retained datagrams; the indication is retained and detached.
        unsafe { release_via(self.core, self.indication.as_ptr()) };
    }
}

/// Collects datagrams of one socket and releases them in one `WskRelease` (on [`ReleaseBatch::release`]
/// or drop). A datagram of another socket flushes the batch first.
#[derive(Debug, Default)]
pub struct ReleaseBatch {
    head: Option<(NonNull<WSK_DATAGRAM_INDICATION>, NonNull<Core>)>,
}

// SAFETY: see RetainedDatagrams.
unsafe impl Send for ReleaseBatch {}

impl ReleaseBatch {
    /// An empty batch.
    pub const fn new() -> Self {
        ReleaseBatch { head: None }
    }

    /// Adds a datagram.
    pub fn push(&mut self, datagram: Datagram) {
        if self.head.is_some_and(|(_, core)| core != datagram.core) {
            self.flush();
        }
        let (indication, core) = (datagram.indication, datagram.core);
        core::mem::forget(datagram);
        if let Some((head, _)) = self.head {
            // SAFETY: a retained, detached indication now owned by the batch.
            unsafe { (*indication.as_ptr()).Next = head.as_ptr() };
        }
        self.head = Some((indication, core));
    }

    /// Releases everything collected.
    pub fn release(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if let Some((head, core)) = self.head.take() {
            // SAFETY: a chain of retained indications of `core`'s socket, owned by the batch.
            unsafe { release_via(core, head.as_ptr()) };
        }
    }
}

impl Drop for ReleaseBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

// ---------------------------------------------------------------------------------------------
// Send side
// ---------------------------------------------------------------------------------------------

/// A buffer to send: an MDL chain the caller owns until the send completes, an offset into the first
/// MDL and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendBuffer {
    mdl: NonNull<MDL>,
    offset: u32,
    length: usize,
}

// SAFETY: a description of caller-owned memory; the caller's contract in `new` covers its lifetime.
unsafe impl Send for SendBuffer {}

impl SendBuffer {
    /// Describes `length` bytes from `offset` into `mdl`'s chain. `STATUS_INVALID_PARAMETER` if the
    /// offset is not inside the first MDL or the chain is shorter than `offset + length`. Any IRQL.
    ///
    /// # Safety
    /// The MDL chain and the memory it describes (locked or non-paged) stay valid and unchanged until
    /// the send's completion callback ran.
    pub unsafe fn new(mdl: *mut MDL, offset: u32, length: usize) -> Result<Self, NTSTATUS> {
        let first = NonNull::new(mdl).ok_or(STATUS_INVALID_PARAMETER)?;
        // SAFETY: the caller guarantees a valid chain.
        if offset >= unsafe { (*mdl).ByteCount } {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let mut available = 0usize;
        let mut m = mdl;
        while !m.is_null() && available < length.saturating_add(offset as usize) {
            // SAFETY: as above.
            available = available.saturating_add(unsafe { (*m).ByteCount } as usize);
            // SAFETY: as above.
            m = unsafe { (*m).Next };
        }
        if available < length.saturating_add(offset as usize) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        Ok(SendBuffer { mdl: first, offset, length })
    }

    /// Bytes to send.
    pub fn len(&self) -> usize {
        self.length
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    fn wsk_buf(&self) -> WSK_BUF {
        WSK_BUF { Mdl: self.mdl.as_ptr(), Offset: self.offset, Length: self.length }
    }
}

/// A send refused before it reached the provider; the caller gets its context back (to hold or drop
/// the packet). `status` is `STATUS_DEVICE_BUSY` when every send IRP is in flight (apply backpressure
/// and retry after a completion), else the reason (`STATUS_INVALID_PARAMETER`, `STATUS_NOT_SUPPORTED`,
/// `STATUS_INVALID_DEVICE_STATE`).
#[derive(Debug)]
pub struct SendError<T> {
    /// Why.
    pub status: NTSTATUS,
    /// The caller's context, unused.
    pub context: T,
}

impl<T> From<SendError<T>> for NTSTATUS {
    fn from(e: SendError<T>) -> NTSTATUS {
        e.status
    }
}

/// One preallocated send: its IRP, the caller's context while in flight, and the structures WSK reads
/// until completion.
struct Slot<T> {
    irp: *mut IRP,
    index: usize,
    /// The owning `Inner<R, C>` (erased).
    owner: *const c_void,
    context: UnsafeCell<MaybeUninit<T>>,
    remote: UnsafeCell<SOCKADDR_INET>,
    buf: UnsafeCell<WSK_BUF>,
}

/// Sizes of a socket's send pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketConfig {
    /// Send IRPs preallocated (1..=[`MAX_SEND_IRPS`]): sends in flight at once.
    pub send_irps: usize,
    /// Most datagrams per [`UdpSocket::send_messages`] call (1..=[`MAX_BATCH`]).
    pub batch: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig { send_irps: 64, batch: 32 }
    }
}

/// Everything a socket's callbacks reach, in one non-paged pool block that stays put until close.
struct Inner<R: Receiver, C: SendCompletion> {
    core: Core,
    receiver: R,
    completion: C,
    client_dispatch: WSK_CLIENT_DATAGRAM_DISPATCH,
    free: [AtomicU64; FREE_WORDS],
    /// Sends taken from the pool whose completion routine has not finished.
    in_flight: AtomicUsize,
    slots: PoolArray<Slot<C::Context>>,
    lists: PoolArray<UnsafeCell<WSK_BUF_LIST>>,
    batch: usize,
    /// The IRP of socket creation, bind, control and close (one at a time, PASSIVE_LEVEL).
    control_irp: *mut IRP,
    control_event: UnsafeCell<MaybeUninit<KEVENT>>,
}

/// Takes a free send slot of a socket's IRP pool: an entry of `free` (see
/// [`crate::sync::bitmap_take`]) and its slot in `slots`, counted in `in_flight`. Lock-free, any IRQL.
fn take_slot<'a, T>(free: &[AtomicU64], slots: &'a [T], in_flight: &AtomicUsize) -> Option<&'a T> {
    let index = crate::sync::bitmap_take(free)?;
    let Some(slot) = slots.get(index) else {
        // Never: only bits of existing slots are ever set. Put it back.
        crate::sync::bitmap_put(free, index);
        return None;
    };
    in_flight.fetch_add(1, Ordering::AcqRel);
    Some(slot)
}

impl<R: Receiver, C: SendCompletion> Inner<R, C> {
    fn acquire_slot(&self) -> Option<&Slot<C::Context>> {
        take_slot(&self.free, self.slots.as_slice(), &self.in_flight)
    }

    fn free_slot(&self, index: usize) {
        crate::sync::bitmap_put(&self.free, index);
    }

    /// Gives an unused slot back (a send refused before reaching the provider).
    fn abandon_slot(&self, index: usize) {
        self.free_slot(index);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The control event (initialised by `allocate_irps`).
    fn event(&self) -> *mut KEVENT {
        self.control_event.get().cast()
    }

    /// Runs one control operation on the control IRP and waits for it. PASSIVE_LEVEL.
    fn sync_op(&self, op: impl FnOnce(*mut IRP) -> NTSTATUS) -> (NTSTATUS, usize) {
        let irp = self.control_irp;
        // SAFETY: our IRP, not in flight (control operations are sequential and waited for).
        unsafe { IoReuseIrp(irp, STATUS_UNSUCCESSFUL) };
        // SAFETY: the event lives in the socket's pool block.
        unsafe { KeClearEvent(self.event()) };
        // SAFETY: our IRP with one stack location, none current after IoReuseIrp.
        unsafe {
            IoSetCompletionRoutine(irp, Some(control_complete), self.event().cast(), true, true, true);
        };
        let status = op(irp);
        if status == STATUS_PENDING {
            // SAFETY: PASSIVE_LEVEL (caller's contract); the event is set by the completion routine.
            let _ = unsafe {
                KeWaitForSingleObject(self.event().cast(), Executive, KernelMode, FALSE, null_mut())
            };
        }
        // SAFETY: completed (WSK completes the IRP before returning a final status).
        unsafe { irp_result(irp) }
    }
}

/// Completion routine of the control IRP: signals the waiter. IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn control_complete(
    _device: *mut DEVICE_OBJECT,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the context is the socket's KEVENT, initialised and alive while the operation runs.
    let _ = unsafe { KeSetEvent(context.cast(), 0, FALSE) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Completion routine of a send IRP. IRQL <= DISPATCH_LEVEL. Returns the IRP to the pool, then calls
/// the socket's [`SendCompletion`]; the last touch of the socket is the in-flight count.
unsafe extern "system" fn send_complete<R: Receiver, C: SendCompletion>(
    _device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    let slot = context.cast::<Slot<C::Context>>().cast_const();
    // SAFETY: the context is the slot this IRP belongs to, inside a socket that waits for every
    // completion routine to finish before it frees anything.
    let slot = unsafe { &*slot };
    // SAFETY: the slot's owner is the socket's Inner<R, C>.
    let inner = unsafe { &*slot.owner.cast::<Inner<R, C>>() };
    // SAFETY: our IRP, inside its completion routine.
    let (status, bytes) = unsafe { irp_result(irp) };
    // SAFETY: the slot is this send's until the routine frees it below.
    let cell = unsafe { &*slot.context.get() };
    // SAFETY: filled by the send that passed this IRP; read once, here.
    let user = unsafe { cell.assume_init_read() };
    // SAFETY: our IRP, completed; reinitialised for the next send.
    unsafe { IoReuseIrp(irp, STATUS_UNSUCCESSFUL) };
    inner.free_slot(slot.index);
    inner.completion.on_send_complete(status, bytes, user);
    inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    STATUS_MORE_PROCESSING_REQUIRED
}

/// `WskReceiveFromEvent`. IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn receive_from_event<R: Receiver, C: SendCompletion>(
    socket_context: *mut c_void,
    flags: u32,
    indication: *mut WSK_DATAGRAM_INDICATION,
) -> NTSTATUS {
    // SAFETY: the socket context is the socket's Inner<R, C>, alive until the socket is closed (after
    // which the provider makes no more calls).
    let inner = unsafe { &*socket_context.cast_const().cast::<Inner<R, C>>() };
    if indication.is_null() || inner.core.closing.load(Ordering::Acquire) {
        // A null indication: the provider is going away and the socket must be closed.
        return STATUS_SUCCESS;
    }
    inner.core.flush_deferred();
    inner.core.delivering.fetch_add(1, Ordering::AcqRel);
    let retained = Cell::new(false);
    let chain = DatagramChain { head: indication, core: &inner.core, flags, retained: &retained };
    let decision = inner.receiver.on_datagrams(chain);
    inner.core.delivering.fetch_sub(1, Ordering::AcqRel);
    if retained.get() {
        return STATUS_PENDING;
    }
    match decision.0 {
        Decision::NotAccepted => STATUS_DATA_NOT_ACCEPTED,
        Decision::Consumed | Decision::Retained => STATUS_SUCCESS,
    }
}

/// A UDP socket (`WSK_FLAG_DATAGRAM_SOCKET`) bound to a local address with receive events enabled.
///
/// Datagrams arrive through `R`'s [`Receiver::on_datagrams`]; sends complete through `C`'s
/// [`SendCompletion::on_send_complete`], over a fixed pool of IRPs preallocated at creation
/// ([`SocketConfig::send_irps`]): no allocation per packet; an empty pool refuses with
/// `STATUS_DEVICE_BUSY`. Drop closes the socket (PASSIVE_LEVEL); see the module's ordering rules.
pub struct UdpSocket<R: Receiver, C: SendCompletion> {
    inner: ManuallyDrop<PoolBox<Inner<R, C>>>,
    local: SocketAddr,
}

// SAFETY: the socket's shared state is atomics, the receiver and completion (Send + Sync), and slots
// whose exclusive use the free bitmap hands out.
unsafe impl<R: Receiver, C: SendCompletion> Send for UdpSocket<R, C> {}
// SAFETY: as above; every `&self` method is safe to call concurrently.
unsafe impl<R: Receiver, C: SendCompletion> Sync for UdpSocket<R, C> {}

impl<R: Receiver, C: SendCompletion> UdpSocket<R, C> {
    /// Creates a datagram socket, binds it to `local` (port 0: any) and enables receive events.
    /// PASSIVE_LEVEL. Preallocates `config.send_irps` IRPs and their batch lists.
    pub fn bind(
        client: &WskClient,
        local: &SocketAddr,
        config: SocketConfig,
        receiver: R,
        completion: C,
    ) -> Result<Self, NTSTATUS> {
        if current_irql() != PASSIVE_LEVEL {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        if config.send_irps == 0
            || config.send_irps > MAX_SEND_IRPS
            || config.batch == 0
            || config.batch > MAX_BATCH
        {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let slots = PoolArray::new(config.send_irps, |index| Slot {
            irp: null_mut(),
            index,
            owner: core::ptr::null(),
            context: UnsafeCell::new(MaybeUninit::uninit()),
            remote: UnsafeCell::new(SocketAddr::v4([0; 4], 0).to_raw()),
            buf: UnsafeCell::new(WSK_BUF { Mdl: null_mut(), Offset: 0, Length: 0 }),
        })?;
        let lists = PoolArray::new(config.send_irps * config.batch, |_| {
            UnsafeCell::new(WSK_BUF_LIST {
                Next: null_mut(),
                Buffer: WSK_BUF { Mdl: null_mut(), Offset: 0, Length: 0 },
            })
        })?;
        let free = core::array::from_fn(|w| {
            let start = w * 64;
            let bits = config.send_irps.saturating_sub(start).min(64);
            AtomicU64::new(if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 })
        });
        let inner = PoolBox::new(
            Inner {
                core: Core {
                    socket: AtomicPtr::new(null_mut()),
                    dispatch: AtomicPtr::new(null_mut()),
                    retained: AtomicUsize::new(0),
                    delivering: AtomicUsize::new(0),
                    deferred: AtomicPtr::new(null_mut()),
                    closing: AtomicBool::new(false),
                },
                receiver,
                completion,
                client_dispatch: WSK_CLIENT_DATAGRAM_DISPATCH {
                    WskReceiveFromEvent: Some(receive_from_event::<R, C>),
                },
                free,
                in_flight: AtomicUsize::new(0),
                slots,
                lists,
                batch: config.batch,
                control_irp: null_mut(),
                control_event: UnsafeCell::new(MaybeUninit::zeroed()),
            },
            POOL_TAG,
        )?;
        let mut socket = UdpSocket { inner: ManuallyDrop::new(inner), local: *local };
        socket.allocate_irps()?;
        socket.open(client, local)?;
        Ok(socket)
    }

    /// Allocates the control IRP and one IRP per slot; wires the slots to the block. PASSIVE_LEVEL.
    fn allocate_irps(&mut self) -> Result<(), NTSTATUS> {
        let owner: *const c_void = (&raw const **self.inner).cast();
        let inner: &mut Inner<R, C> = &mut self.inner;
        // SAFETY: the event lives in the pool block, which does not move; not waited on yet.
        unsafe { KeInitializeEvent(inner.event(), NotificationEvent, FALSE) };
        // SAFETY: PASSIVE_LEVEL; one stack location is all a WSK client needs.
        inner.control_irp = unsafe { IoAllocateIrp(1, FALSE) };
        if inner.control_irp.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        for slot in inner.slots.as_mut_slice() {
            slot.owner = owner;
            // SAFETY: as above.
            slot.irp = unsafe { IoAllocateIrp(1, FALSE) };
            if slot.irp.is_null() {
                return Err(STATUS_INSUFFICIENT_RESOURCES);
            }
        }
        Ok(())
    }

    /// `WskSocket`, `WskBind`, `WskGetLocalAddress`, and `SO_WSK_EVENT_CALLBACK`. PASSIVE_LEVEL.
    fn open(&mut self, client: &WskClient, local: &SocketAddr) -> Result<(), NTSTATUS> {
        let provider = client.provider();
        // SAFETY: the captured provider's dispatch table is static.
        let create = unsafe { (*provider.Dispatch).WskSocket }.ok_or(STATUS_NOT_SUPPORTED)?;
        let inner: &Inner<R, C> = &self.inner;
        let context: *mut c_void = (&raw const *inner).cast_mut().cast();
        let dispatch: *const c_void = (&raw const inner.client_dispatch).cast();
        let (status, information) = inner.sync_op(|irp| {
            // SAFETY: PASSIVE_LEVEL; the context and the client dispatch live in the pool block until
            // the socket is closed; the IRP is ours.
            unsafe {
                create(
                    provider.Client,
                    local.family(),
                    SOCK_DGRAM,
                    IPPROTO_UDP,
                    WSK_FLAG_DATAGRAM_SOCKET,
                    context,
                    dispatch,
                    null_mut(),
                    null_mut(),
                    null_mut(),
                    irp,
                )
            }
        });
        if !NT_SUCCESS(status) {
            return Err(status);
        }
        let socket = information as *mut WSK_SOCKET;
        if socket.is_null() {
            return Err(STATUS_UNSUCCESSFUL);
        }
        // SAFETY: a socket the provider just created; its Dispatch is the datagram table (static).
        let table = unsafe { (*socket).Dispatch }.cast::<WSK_PROVIDER_DATAGRAM_DISPATCH>().cast_mut();
        inner.core.socket.store(socket, Ordering::Release);
        inner.core.dispatch.store(table, Ordering::Release);
        let d = inner.core.dispatch().ok_or(STATUS_UNSUCCESSFUL)?;

        let bind = d.WskBind.ok_or(STATUS_NOT_SUPPORTED)?;
        let mut address = local.to_raw();
        let (status, _) = inner.sync_op(|irp| {
            // SAFETY: an open socket; the address lives on this frame, which waits for completion.
            unsafe { bind(socket, (&raw mut address).cast(), 0, irp) }
        });
        if !NT_SUCCESS(status) {
            return Err(status);
        }
        if let Some(get) = d.WskGetLocalAddress {
            let mut bound = local.to_raw();
            let (status, _) = inner.sync_op(|irp| {
                // SAFETY: a bound socket; a SOCKADDR_INET has room for either family.
                unsafe { get(socket, (&raw mut bound).cast(), irp) }
            });
            if NT_SUCCESS(status) {
                // SAFETY: the provider wrote a socket address of the socket's family.
                if let Some(addr) = unsafe { SocketAddr::from_raw((&raw const bound).cast()) } {
                    self.local = addr;
                }
            }
        }
        let status = self.set_events(WSK_EVENT_RECEIVE_FROM);
        if NT_SUCCESS(status) {
            Ok(())
        } else {
            Err(status)
        }
    }

    /// `SO_WSK_EVENT_CALLBACK` with `mask`. PASSIVE_LEVEL.
    fn set_events(&self, mask: u32) -> NTSTATUS {
        let inner: &Inner<R, C> = &self.inner;
        let socket = inner.core.socket.load(Ordering::Acquire);
        let Some(control) = inner.core.dispatch().and_then(|d| d.Basic.WskControlSocket) else {
            return STATUS_NOT_SUPPORTED;
        };
        let mut request = WSK_EVENT_CALLBACK_CONTROL { NpiId: &NPI_WSK_INTERFACE_ID, EventMask: mask };
        let (status, _) = inner.sync_op(|irp| {
            // SAFETY: an open socket; the request lives on this frame, which waits for completion.
            unsafe {
                control(
                    socket,
                    WskSetOption,
                    SO_WSK_EVENT_CALLBACK,
                    SOL_SOCKET,
                    core::mem::size_of::<WSK_EVENT_CALLBACK_CONTROL>(),
                    (&raw mut request).cast(),
                    0,
                    null_mut(),
                    null_mut(),
                    irp,
                )
            }
        });
        status
    }

    /// The bound local address (the port the provider chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Send IRPs in the pool.
    pub fn send_capacity(&self) -> usize {
        self.inner.slots.as_slice().len()
    }

    /// Most datagrams per [`UdpSocket::send_messages`].
    pub fn batch_capacity(&self) -> usize {
        self.inner.batch
    }

    /// Sends whose completion routine has not finished yet.
    pub fn sends_in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Datagrams retained and not yet released (including releases deferred to the next opportunity).
    pub fn retained(&self) -> usize {
        self.inner.core.retained.load(Ordering::Acquire)
    }

    /// Whether the provider offers `WskSendMessages` (Windows 8 and later).
    pub fn supports_send_messages(&self) -> bool {
        self.inner.core.dispatch().is_some_and(|d| d.WskSendMessages.is_some())
    }

    /// The receiver.
    pub fn receiver(&self) -> &R {
        &self.inner.receiver
    }

    /// The completion handler.
    pub fn completion(&self) -> &C {
        &self.inner.completion
    }

    /// Releases datagrams whose release was deferred because a receive callback was running.
    /// IRQL <= DISPATCH_LEVEL.
    pub fn flush_releases(&self) {
        self.inner.core.flush_deferred();
    }

    /// Common start of a send: flushes deferred releases and takes a slot. IRQL <= DISPATCH_LEVEL.
    fn begin_send(&self, remote: &SocketAddr) -> Result<&Slot<C::Context>, NTSTATUS> {
        let inner: &Inner<R, C> = &self.inner;
        if inner.core.closing.load(Ordering::Acquire) || inner.core.socket.load(Ordering::Acquire).is_null() {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        if remote.is_ipv4() != self.local.is_ipv4() {
            return Err(STATUS_INVALID_PARAMETER);
        }
        inner.core.flush_deferred();
        inner.acquire_slot().ok_or(STATUS_DEVICE_BUSY)
    }

    /// Fills a slot's context and address and arms its IRP. IRQL <= DISPATCH_LEVEL.
    fn arm(slot: &Slot<C::Context>, remote: &SocketAddr, context: C::Context) {
        // SAFETY: the free bitmap gave this slot to us alone; its context is empty.
        unsafe { (*slot.context.get()).write(context) };
        // SAFETY: as above.
        unsafe { *slot.remote.get() = remote.to_raw() };
        // SAFETY: our IRP, reused (or fresh) with one stack location, none current.
        unsafe {
            IoSetCompletionRoutine(
                slot.irp,
                Some(send_complete::<R, C>),
                core::ptr::from_ref(slot).cast_mut().cast(),
                true,
                true,
                true,
            );
        };
    }

    /// Sends one datagram (`WskSendTo`). IRQL <= DISPATCH_LEVEL. `Ok` means the send reached the provider
    /// and [`SendCompletion::on_send_complete`] runs exactly once with `context` (perhaps before this
    /// returns); `buffer` stays the caller's until then. `Err` hands the context back: `STATUS_DEVICE_BUSY`
    /// when every IRP is in flight.
    pub fn send_to(
        &self,
        remote: &SocketAddr,
        buffer: SendBuffer,
        context: C::Context,
    ) -> Result<(), SendError<C::Context>> {
        let inner: &Inner<R, C> = &self.inner;
        let Some(send) = inner.core.dispatch().and_then(|d| d.WskSendTo) else {
            return Err(SendError { status: STATUS_NOT_SUPPORTED, context });
        };
        let slot = match self.begin_send(remote) {
            Ok(slot) => slot,
            Err(status) => return Err(SendError { status, context }),
        };
        // SAFETY: the slot is ours until its completion routine runs.
        unsafe { *slot.buf.get() = buffer.wsk_buf() };
        Self::arm(slot, remote, context);
        let socket = inner.core.socket.load(Ordering::Acquire);
        // SAFETY: IRQL <= DISPATCH_LEVEL; an open socket; the buffer description, address and IRP live
        // in the slot until completion and the caller keeps the MDLs (SendBuffer::new's contract). The
        // provider completes the IRP whatever it returns, so the status is the completion's business.
        let _ = unsafe { send(socket, slot.buf.get(), 0, slot.remote.get().cast(), 0, null_mut(), slot.irp) };
        Ok(())
    }

    /// Sends every buffer as its own datagram to `remote` in one `WskSendMessages` call, on one IRP and
    /// with one completion (`bytes` is the sum). IRQL <= DISPATCH_LEVEL. `buffers` holds 1 to
    /// [`UdpSocket::batch_capacity`] entries (else `STATUS_INVALID_PARAMETER`); `STATUS_NOT_SUPPORTED`
    /// where the provider lacks `WskSendMessages`. Otherwise as [`UdpSocket::send_to`].
    pub fn send_messages(
        &self,
        remote: &SocketAddr,
        buffers: &[SendBuffer],
        context: C::Context,
    ) -> Result<(), SendError<C::Context>> {
        let inner: &Inner<R, C> = &self.inner;
        let Some(send) = inner.core.dispatch().and_then(|d| d.WskSendMessages) else {
            return Err(SendError { status: STATUS_NOT_SUPPORTED, context });
        };
        if buffers.is_empty() || buffers.len() > inner.batch {
            return Err(SendError { status: STATUS_INVALID_PARAMETER, context });
        }
        let slot = match self.begin_send(remote) {
            Ok(slot) => slot,
            Err(status) => return Err(SendError { status, context }),
        };
        let start = slot.index * inner.batch;
        let Some(lists) = inner.lists.as_slice().get(start..start + buffers.len()) else {
            inner.abandon_slot(slot.index);
            return Err(SendError { status: STATUS_INVALID_PARAMETER, context });
        };
        let mut next: *mut WSK_BUF_LIST = null_mut();
        for (element, buffer) in lists.iter().zip(buffers).rev() {
            // SAFETY: this slot's list elements are ours until its completion routine runs.
            unsafe { element.get().write(WSK_BUF_LIST { Next: next, Buffer: buffer.wsk_buf() }) };
            next = element.get();
        }
        Self::arm(slot, remote, context);
        let socket = inner.core.socket.load(Ordering::Acquire);
        // SAFETY: as in send_to; the list lives in the socket's block until completion.
        let _ = unsafe { send(socket, next, 0, slot.remote.get().cast(), 0, null_mut(), slot.irp) };
        Ok(())
    }

    /// Closes the socket. PASSIVE_LEVEL. Refuses with `STATUS_DEVICE_BUSY`, giving the socket back
    /// (receiving again), while datagrams are retained. After `Ok` no callback of the socket runs.
    pub fn close(mut self) -> Result<(), (Self, NTSTATUS)> {
        match self.shutdown() {
            Ok(()) => Ok(()),
            Err(status) => Err((self, status)),
        }
    }

    /// Disables events, waits for callbacks, closes, waits for send completions, frees the IRPs.
    fn shutdown(&mut self) -> Result<(), NTSTATUS> {
        if current_irql() != PASSIVE_LEVEL {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        let socket = self.inner.core.socket.load(Ordering::Acquire);
        if !socket.is_null() {
            self.inner.core.flush_deferred();
            if self.retained() != 0 {
                return Err(STATUS_DEVICE_BUSY);
            }
            let _ = self.set_events(WSK_EVENT_RECEIVE_FROM | WSK_EVENT_DISABLE);
            self.inner.core.closing.store(true, Ordering::Release);
            wait_until(|| self.inner.core.delivering.load(Ordering::Acquire) == 0);
            self.inner.core.flush_deferred();
            if self.retained() != 0 {
                self.inner.core.closing.store(false, Ordering::Release);
                let _ = self.set_events(WSK_EVENT_RECEIVE_FROM);
                return Err(STATUS_DEVICE_BUSY);
            }
            let inner: &Inner<R, C> = &self.inner;
            if let Some(close) = inner.core.dispatch().and_then(|d| d.Basic.WskCloseSocket) {
                // SAFETY: an open socket with nothing retained; the IRP is ours.
                let _ = inner.sync_op(|irp| unsafe { close(socket, irp) });
            }
            inner.core.socket.store(null_mut(), Ordering::Release);
            inner.core.dispatch.store(null_mut(), Ordering::Release);
        }
        // The close completed every pending send; wait for routines still running on other processors.
        wait_until(|| self.inner.in_flight.load(Ordering::Acquire) == 0);
        self.free_irps();
        Ok(())
    }

    /// Frees every IRP (none is in flight). PASSIVE_LEVEL.
    fn free_irps(&mut self) {
        let inner: &mut Inner<R, C> = &mut self.inner;
        for slot in inner.slots.as_mut_slice() {
            if !slot.irp.is_null() {
                // SAFETY: our IRP, not in flight.
                unsafe { IoFreeIrp(slot.irp) };
                slot.irp = null_mut();
            }
        }
        if !inner.control_irp.is_null() {
            // SAFETY: as above.
            unsafe { IoFreeIrp(inner.control_irp) };
            inner.control_irp = null_mut();
        }
    }
}

/// Waits (PASSIVE_LEVEL) until `done` holds, polling every 100 microseconds.
fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        let mut interval: LARGE_INTEGER = -1_000;
        // SAFETY: PASSIVE_LEVEL (callers' contract); a relative interval.
        let _ = unsafe { KeDelayExecutionThread(KernelMode, FALSE, &raw mut interval) };
    }
}

impl<R: Receiver, C: SendCompletion> Drop for UdpSocket<R, C> {
    /// PASSIVE_LEVEL. Closes the socket. With datagrams still retained (a caller bug) or above
    /// PASSIVE_LEVEL the socket is leaked instead (left open, its memory kept) so that the datagrams and
    /// callbacks stay valid; the verifier then reports the open socket at unload.
    fn drop(&mut self) {
        if self.shutdown().is_ok() {
            // SAFETY: dropped once, here; the socket is closed, no IRP is in flight and nothing retained
            // points into the block.
            unsafe { ManuallyDrop::drop(&mut self.inner) };
        }
    }
}

impl<R: Receiver, C: SendCompletion> core::fmt::Debug for UdpSocket<R, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local)
            .field("in_flight", &self.sends_in_flight())
            .field("retained", &self.retained())
            .finish_non_exhaustive()
    }
}

const _: () = assert!(MAX_SEND_IRPS.is_multiple_of(64));
const _: () = assert!(DISPATCH_LEVEL == 2);
