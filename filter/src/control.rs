//! The filter's control device (`\Device\rdcofilter`, user mode opens `\\.\rdcofilter`): registration
//! with `NdisRegisterDeviceEx`, the IRP dispatch routines, the IOCTLs of `uapi::rdco_filter`, the
//! configuration they change and the event channel.
//!
//! # State and locking
//! * [`CONFIG`]: `SpinLock<Option<Config>>`, the engine's peer table (peers, keys, keepalive, MSS), the
//!   tunnel policy, the queued events and the pended `READ_EVENT` IRPs. `Some` from `DriverEntry` to
//!   unload. Every access holds the lock (DISPATCH_LEVEL), briefly: no allocation of key state and no
//!   IRP completion happens under it (keys are built before, IRPs completed after).
//! * [`STATS`]: driver-wide counters (atomics), bumped lock-free by the data path; each module keeps
//!   its own [`FilterStats`] too (its send half's and its receive half's), bumped beside them, read
//!   through `GET_STATS` with the module's `IfIndex` ([`count!`]).
//! * Per-peer routes: the engine's [`PeerTable`] holds them (longest-prefix match); [`Config`] keeps
//!   which prefix belongs to which peer so a `SET_PEER_ROUTES` can replace one peer's set as a whole.
//!
//! # IRQL
//! Dispatch routines run at PASSIVE_LEVEL (the I/O manager calls them in the requesting thread).
//! [`queue_event`] runs at IRQL <= DISPATCH_LEVEL (the data path calls it from DPCs).
//!
//! # Errors
//! A request that fails changes nothing. Statuses: a short input or output buffer (or one shorter than
//! its own `Size`) `STATUS_BUFFER_TOO_SMALL`; a bad value (`Size` below the known size, unknown cipher,
//! key slot or family, bad key length, peer id out of range, a remote without address or port, local
//! and remote of different families, keepalive timeout shorter than the interval, `ALL_PEERS` where it
//! means nothing, a hold-policy value outside its range, a route `Count` over 16, the same prefix twice
//! in one route set, a peer together with a module selector) `STATUS_INVALID_PARAMETER`; an unknown
//! peer, or a module selector (`IfIndex`) no attached module has, `STATUS_NOT_FOUND`; a peer id in use,
//! or a route prefix another peer already owns, `STATUS_OBJECT_NAME_COLLISION`; more than
//! `MAX_ROUTES` routes across the peers `STATUS_INSUFFICIENT_RESOURCES`; a swap without a secondary key,
//! or the driver unloading, `STATUS_INVALID_DEVICE_STATE`; too many pended reads
//! `STATUS_INSUFFICIENT_RESOURCES`; an unknown IOCTL `STATUS_INVALID_DEVICE_REQUEST`.
use core::ffi::c_void;
use core::net::{IpAddr, SocketAddr};
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use core::time::Duration;

use datapath::crypto::Cipher;
use datapath::keys::{KeyConfig, KeyDirection, KeyFormat, KeySlot, KeySlotId};
use datapath::peer::{IpPrefix, PeerError};
use datapath::replay::ReplayConfig;
use datapath::{Endpoint, PeerConfig, PeerTable};
use kernel::ffi::ndis::{NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_STATUS, NDIS_STATUS_SUCCESS};
use kernel::ffi::ndis_device::{
    NdisDeregisterDeviceEx, NdisRegisterDeviceEx, NDIS_DEVICE_OBJECT_ATTRIBUTES,
    NDIS_DEVICE_OBJECT_ATTRIBUTES_REVISION_1, NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES,
    NDIS_SIZEOF_DEVICE_OBJECT_ATTRIBUTES_REVISION_1,
};
use kernel::ffi::ntos::{
    IoCompleteRequest, IoGetCurrentIrpStackLocation, KeQueryInterruptTimePrecise,
    KeRestoreExtendedProcessorState, KeSaveExtendedProcessorState, DEVICE_OBJECT, IO_NO_INCREMENT, IRP,
    IRP_MJ_CLEANUP, IRP_MJ_CLOSE, IRP_MJ_CREATE, IRP_MJ_DEVICE_CONTROL, IRP_MJ_MAXIMUM_FUNCTION, IRP_MJ_READ,
    IRP_MJ_WRITE, NTSTATUS, NT_SUCCESS, PDRIVER_DISPATCH, SL_PENDING_RETURNED, STATUS_BUFFER_TOO_SMALL,
    STATUS_CANCELLED, STATUS_DEVICE_NOT_READY, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_DEVICE_REQUEST,
    STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER, STATUS_NOT_FOUND, STATUS_OBJECT_NAME_COLLISION,
    STATUS_PENDING, STATUS_SUCCESS, XSTATE_MASK_AVX, XSTATE_MASK_LEGACY, XSTATE_SAVE,
};
use kernel::sync::SpinLock;
use kernel::unicode_string;
use uapi::ovpn::{OvpnCipherAlg, OvpnKeySlot};
use uapi::rdco_filter::{
    RdcoAddPeer, RdcoEvent, RdcoEventKind, RdcoFilterIoctl, RdcoHoldPolicy, RdcoKeepalive, RdcoNewKey,
    RdcoPeerRef, RdcoPeerRoutes, RdcoSetPolicy, RdcoStats, RdcoStatsQuery, ALL_PEERS, IF_INDEX_ANY,
    MAX_PEER_ROUTES, MAX_POLICY_PREFIXES, MAX_ROUTES,
};
use uapi::UapiError;

/// Events kept for user mode while no read is pending; the oldest is dropped (and counted) past this.
const EVENT_QUEUE_LEN: usize = 32;
/// `READ_EVENT` IRPs that may be pended at once.
const MAX_PENDING_READS: usize = 8;
/// Control-channel packets kept for user mode's `IRP_MJ_READ`; past this, new ones are dropped (counted
/// as `drop_queue_full`: the peer retransmits control packets).
const CONTROL_QUEUE_LEN: usize = 16;
/// The largest control packet kept (OpenVPN's control channel stays below its 1250-byte TLS MTU by
/// default; anything up to a full 1500-byte datagram fits).
const CONTROL_PACKET_MAX: usize = 1500;
/// A queued record: the source `SOCKADDR_IN[6]` (28 bytes at most) followed by the packet.
const CONTROL_RECORD_MAX: usize = uapi::sockaddr::SOCKADDR_IN6_SIZE + CONTROL_PACKET_MAX;
/// Local endpoints remembered for receive classification (a float arrives from a new source, to the
/// same local endpoint).
const MAX_LOCALS: usize = 32;
/// Pool tag of the control-packet queue: 'rdFq'.
const CONTROL_QUEUE_TAG: u32 = u32::from_le_bytes(*b"rdFq");

/// The queue of control-channel packets for `IRP_MJ_READ`, in its own zero-filled pool block (too large
/// for a kernel stack, so it is never built on one). All-zero is a valid empty queue.
struct ControlQueue {
    records: [[u8; CONTROL_RECORD_MAX]; CONTROL_QUEUE_LEN],
    lens: [usize; CONTROL_QUEUE_LEN],
    head: usize,
    count: usize,
}

/// Owner of the [`ControlQueue`] block.
struct ControlQueueBox(NonNull<ControlQueue>);

// SAFETY: the block is owned by the box and only reached through CONFIG's lock.
unsafe impl Send for ControlQueueBox {}

impl ControlQueueBox {
    /// A zero-filled block (an empty queue). PASSIVE_LEVEL or DISPATCH_LEVEL.
    fn new() -> Option<Self> {
        // SAFETY: a plain non-paged allocation, zero-filled (no POOL_FLAG_UNINITIALIZED), null on failure.
        let raw = unsafe {
            kernel::ffi::ntos::ExAllocatePool2(
                kernel::ffi::ntos::POOL_FLAG_NON_PAGED,
                core::mem::size_of::<ControlQueue>(),
                CONTROL_QUEUE_TAG,
            )
        };
        NonNull::new(raw.cast::<ControlQueue>()).map(ControlQueueBox)
    }

    fn get(&mut self) -> &mut ControlQueue {
        // SAFETY: the block is ours, initialised (all-zero is valid) and reached only through `&mut self`.
        unsafe { self.0.as_mut() }
    }
}

impl Drop for ControlQueueBox {
    fn drop(&mut self) {
        // SAFETY: the block came from ExAllocatePool2 with this tag and is freed once.
        unsafe { kernel::ffi::ntos::ExFreePoolWithTag(self.0.as_ptr().cast(), CONTROL_QUEUE_TAG) };
    }
}

impl ControlQueue {
    /// Queues `from` + `packet`; false if the queue is full or the packet too long (nothing changes).
    fn push(&mut self, from: &SocketAddr, packet: &[u8]) -> bool {
        if self.count == CONTROL_QUEUE_LEN || packet.len() > CONTROL_PACKET_MAX {
            return false;
        }
        let at = (self.head + self.count) % CONTROL_QUEUE_LEN;
        let (Some(record), Some(len)) = (self.records.get_mut(at), self.lens.get_mut(at)) else {
            return false;
        };
        match uapi::sockaddr::write_prefixed(from, packet, record) {
            Ok(n) => *len = n,
            Err(_) => return false,
        }
        self.count += 1;
        true
    }

    /// The oldest record, if any.
    fn front(&self) -> Option<&[u8]> {
        if self.count == 0 {
            return None;
        }
        let len = *self.lens.get(self.head)?;
        self.records.get(self.head)?.get(..len)
    }

    fn pop(&mut self) {
        if self.count > 0 {
            self.head = (self.head + 1) % CONTROL_QUEUE_LEN;
            self.count -= 1;
        }
    }
}

/// A pended `READ_EVENT` IRP and the file object (handle) it came on.
struct PendingRead {
    irp: NonNull<IRP>,
    file: usize,
}

// SAFETY: a pended IRP belongs to the driver until it completes it; whichever thread takes it out of
// the configuration (under the lock) completes it exactly once.
unsafe impl Send for PendingRead {}

/// The configuration the control device manages. Lives in [`CONFIG`].
pub(crate) struct Config {
    /// The engine's peers (keys, keepalive, MSS clamp), found by peer id.
    pub(crate) peers: PeerTable,
    /// The tunnel policy: inner destination prefixes that are diverted (host bits cleared).
    pub(crate) policy: [Option<IpPrefix>; MAX_POLICY_PREFIXES],
    /// Peer ids and outer endpoints, for the send classifier (never divert to a peer's own address).
    peer_endpoints: arrayvec::ArrayVec<(u32, Endpoint), { crate::classify::MAX_SNAPSHOT_PEERS }>,
    events: [Option<RdcoEvent>; EVENT_QUEUE_LEN],
    event_head: usize,
    event_len: usize,
    reads: [Option<PendingRead>; MAX_PENDING_READS],
    /// Each peer's local endpoint (from `ADD_PEER`), for receive classification.
    locals: [Option<(u32, Endpoint)>; MAX_LOCALS],
    /// Control-channel packets for `IRP_MJ_READ`, and the reads pended waiting for one.
    control: ControlQueueBox,
    control_reads: [Option<PendingRead>; MAX_PENDING_READS],
    /// Which peer owns each route prefix (the engine's table holds the same routes for lookup).
    routes: arrayvec::ArrayVec<(IpPrefix, u32), MAX_ROUTES>,
}

impl Config {
    fn new() -> Option<Config> {
        Some(Config {
            peers: PeerTable::new(),
            policy: [None; MAX_POLICY_PREFIXES],
            peer_endpoints: arrayvec::ArrayVec::new(),
            events: [None; EVENT_QUEUE_LEN],
            event_head: 0,
            event_len: 0,
            reads: [const { None }; MAX_PENDING_READS],
            locals: [None; MAX_LOCALS],
            control: ControlQueueBox::new()?,
            control_reads: [const { None }; MAX_PENDING_READS],
            routes: arrayvec::ArrayVec::new(),
        })
    }

    fn pop_event(&mut self) -> Option<RdcoEvent> {
        if self.event_len == 0 {
            return None;
        }
        let e = self.events.get_mut(self.event_head).and_then(Option::take);
        self.event_head = (self.event_head + 1) % EVENT_QUEUE_LEN;
        self.event_len -= 1;
        e
    }

    /// Queues an event; returns false if the oldest had to be dropped.
    fn push_event(&mut self, event: RdcoEvent) -> bool {
        let mut kept = true;
        if self.event_len == EVENT_QUEUE_LEN {
            let _ = self.pop_event();
            kept = false;
        }
        let at = (self.event_head + self.event_len) % EVENT_QUEUE_LEN;
        if let Some(slot) = self.events.get_mut(at) {
            *slot = Some(event);
        }
        self.event_len += 1;
        kept
    }

    /// The outer endpoints of the peers (the classifier never diverts traffic to them).
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = Endpoint> + '_ {
        self.peer_endpoints.iter().map(|&(_, e)| e)
    }

    /// The peer a diverted packet to `dst` goes to: the peer whose route is the longest prefix holding
    /// `dst` (the engine's lookup); with no route and exactly one peer, that peer (the single-peer policy
    /// of `SET_POLICY`). `None`: no peer carries it.
    pub(crate) fn route(&self, dst: datapath::peer::InnerDest) -> Option<u32> {
        match self.peers.lookup(dst) {
            Some(id) => Some(id),
            None if self.peers.len() == 1 => self.peer_endpoints.first().map(|(id, _)| *id),
            None => None,
        }
    }

    /// Whether `dst` is inside a peer route (diverted even when outside the policy prefixes).
    pub(crate) fn routed(&self, dst: datapath::peer::InnerDest) -> bool {
        self.peers.lookup(dst).is_some()
    }

    /// Every route and the peer that owns it.
    #[cfg_attr(target_os = "windows", allow(dead_code))] // read by the host tests' hook
    pub(crate) fn routes(&self) -> &[(IpPrefix, u32)] {
        &self.routes
    }

    /// Whether the peer has a primary key (its diverted sends can be sealed).
    pub(crate) fn keyed(&self, peer_id: u32) -> bool {
        self.peers.peer(peer_id).is_some_and(|p| p.keys().primary().is_some())
    }

    fn take_read(&mut self) -> Option<PendingRead> {
        self.reads.iter_mut().find_map(Option::take)
    }
}

/// The configuration: `Some` from `DriverEntry` until unload. IRQL <= DISPATCH_LEVEL to lock.
pub(crate) static CONFIG: SpinLock<Option<Config>> = SpinLock::new(None);

macro_rules! filter_stats {
    ($($field:ident),* $(,)?) => {
        /// Module-wide counters, in the order and meaning of `RdcoStats`. Bumped lock-free at any IRQL
        /// <= DISPATCH_LEVEL by the data path; read by `IOCTL_RDCO_FILTER_GET_STATS`.
        pub(crate) struct FilterStats { $(pub(crate) $field: AtomicU64,)* }

        impl FilterStats {
            pub(crate) const fn new() -> Self {
                Self { $($field: AtomicU64::new(0),)* }
            }

            pub(crate) fn snapshot(&self) -> RdcoStats {
                RdcoStats { peer_id: ALL_PEERS, $($field: self.$field.load(Ordering::Relaxed),)* }
            }

            /// Adds these counters to `total` (a module's two halves make its counters).
            pub(crate) fn add_to(&self, total: &mut RdcoStats) {
                $(total.$field = total.$field.wrapping_add(self.$field.load(Ordering::Relaxed));)*
            }
        }
    };
}

filter_stats!(
    tx_packets,
    tx_bytes,
    rx_packets,
    rx_bytes,
    diverted,
    bypassed,
    control_in,
    control_out,
    drop_no_key,
    drop_replay,
    drop_auth,
    drop_malformed,
    drop_queue_full,
    drop_copy_ceiling,
    drop_other,
    plaintext_copies,
    deep_copies,
    clones,
    holds,
    hold_time_us,
    keepalives_sent,
    keepalives_received,
    rx_bypassed,
    rx_copies,
    rx_drop_no_buffer,
    rx_drop_unknown_peer,
    rx_floats,
    holds_budget,
    holds_not_ready,
    holds_pause,
    send_aborted,
    offload_copies,
    segmented,
);

/// The driver-wide counters (every module together, and what belongs to no module).
pub(crate) static STATS: FilterStats = FilterStats::new();

/// Counts `n` in the driver-wide [`STATS`] and in a module's own counters: `count!(module_stats,
/// field, n)`. Lock-free, any IRQL <= DISPATCH_LEVEL.
macro_rules! count {
    ($module:expr, $field:ident, $n:expr) => {{
        let n: u64 = $n;
        $crate::control::STATS.$field.fetch_add(n, core::sync::atomic::Ordering::Relaxed);
        $module.$field.fetch_add(n, core::sync::atomic::Ordering::Relaxed);
    }};
}
pub(crate) use count;
/// Events dropped because the queue was full and nobody read them.
pub(crate) static EVENTS_LOST: AtomicU64 = AtomicU64::new(0);

/// The NDIS device handle; null while no device is registered. Written at PASSIVE_LEVEL by
/// [`register`] and [`deregister`] only.
static DEVICE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// The dispatch table NDIS copies at registration.
fn major_functions() -> [PDRIVER_DISPATCH; IRP_MJ_MAXIMUM_FUNCTION + 1] {
    let mut table: [PDRIVER_DISPATCH; IRP_MJ_MAXIMUM_FUNCTION + 1] = [None; IRP_MJ_MAXIMUM_FUNCTION + 1];
    table[IRP_MJ_CREATE] = Some(dispatch_create_close);
    table[IRP_MJ_CLOSE] = Some(dispatch_create_close);
    table[IRP_MJ_CLEANUP] = Some(dispatch_cleanup);
    table[IRP_MJ_READ] = Some(dispatch_read_write);
    table[IRP_MJ_WRITE] = Some(dispatch_read_write);
    table[IRP_MJ_DEVICE_CONTROL] = Some(dispatch_device_control);
    table
}

/// Creates the configuration and registers the control device. PASSIVE_LEVEL, from `DriverEntry` after
/// `NdisFRegisterFilterDriver`. On failure nothing stays allocated or registered.
pub(crate) fn register(filter_driver: NDIS_HANDLE) -> NDIS_STATUS {
    let Some(config) = Config::new() else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    *CONFIG.lock() = Some(config);
    let mut table = major_functions();
    let mut name = unicode_string!(uapi::names::FILTER_DEVICE_NAME);
    let mut link = unicode_string!(uapi::names::FILTER_SYMBOLIC_LINK);
    let mut attributes = NDIS_DEVICE_OBJECT_ATTRIBUTES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES,
            NDIS_DEVICE_OBJECT_ATTRIBUTES_REVISION_1,
            NDIS_SIZEOF_DEVICE_OBJECT_ATTRIBUTES_REVISION_1,
        ),
        DeviceName: &raw mut name,
        SymbolicName: &raw mut link,
        MajorFunctions: table.as_mut_ptr(),
        ExtensionSize: 0,
        DefaultSDDLString: core::ptr::null(),
        DeviceClassGuid: core::ptr::null(),
    };
    let mut object: *mut DEVICE_OBJECT = null_mut();
    let mut handle: NDIS_HANDLE = null_mut();
    // SAFETY: PASSIVE_LEVEL in DriverEntry; `filter_driver` is our registration handle; the attributes,
    // names and table live for the call (NDIS copies them); both out-pointers are valid.
    let status =
        unsafe { NdisRegisterDeviceEx(filter_driver, &raw mut attributes, &raw mut object, &raw mut handle) };
    if status != NDIS_STATUS_SUCCESS {
        drop(CONFIG.lock().take());
        return status;
    }
    DEVICE.store(handle, Ordering::Release);
    status
}

/// Deregisters the control device, completes any read still pended and frees the configuration.
/// PASSIVE_LEVEL, from `DriverUnload` (before the filter deregisters from NDIS).
pub(crate) fn deregister() {
    let handle = DEVICE.swap(null_mut(), Ordering::AcqRel);
    if !handle.is_null() {
        // SAFETY: the handle NdisRegisterDeviceEx gave us, deregistered once, at PASSIVE_LEVEL.
        unsafe { NdisDeregisterDeviceEx(handle) };
    }
    // The transport goes before the configuration it seals with (its timer DPC reads CONFIG).
    crate::transport::tear_down();
    let config = CONFIG.lock().take();
    if let Some(mut config) = config {
        while let Some(read) = config.take_read() {
            complete(read.irp.as_ptr(), STATUS_CANCELLED, 0);
        }
        for read in config.control_reads.iter_mut().filter_map(Option::take) {
            complete(read.irp.as_ptr(), STATUS_CANCELLED, 0);
        }
        drop(config);
    }
}

// ---------------------------------------------------------------------------------------------
// IRP helpers
// ---------------------------------------------------------------------------------------------

/// Completes `irp` with `status` and `information` bytes. IRQL <= DISPATCH_LEVEL; the caller owns the
/// IRP and gives it up here. Returns `status` for the dispatch routine to return.
fn complete(irp: *mut IRP, status: NTSTATUS, information: usize) -> NTSTATUS {
    // SAFETY: the caller owns the IRP (in its dispatch routine, or pended by us).
    let io_status = unsafe { &mut (*irp).IoStatus };
    io_status.u.Status = status;
    io_status.Information = information;
    // SAFETY: the IRP is ours to complete, once, at IRQL <= DISPATCH_LEVEL.
    unsafe { IoCompleteRequest(irp, IO_NO_INCREMENT) };
    status
}

/// The file object of the IRP's current stack location (identifies the handle).
fn file_object(irp: *mut IRP) -> usize {
    // SAFETY: the IRP is being dispatched to us; its current stack location is ours.
    let sp = unsafe { IoGetCurrentIrpStackLocation(irp) };
    // SAFETY: `sp` points to the IRP's current stack location.
    unsafe { (*sp).FileObject as usize }
}

/// The IRP's `SystemBuffer` as a byte slice of `len` bytes (empty if there is none).
///
/// # Safety
/// The IRP must be a buffered request being dispatched to us whose `SystemBuffer` holds `len` bytes, and
/// the slice must not outlive the IRP's completion.
unsafe fn system_buffer<'a>(irp: *mut IRP, len: usize) -> &'a mut [u8] {
    // SAFETY: the caller guarantees a valid IRP.
    let associated = unsafe { &(*irp).AssociatedIrp };
    // SAFETY: a buffered IRP: SystemBuffer is the active member.
    let buffer = unsafe { associated.SystemBuffer }.cast::<u8>();
    if buffer.is_null() || len == 0 {
        return &mut [];
    }
    // SAFETY: the I/O manager allocated max(input, output) >= len bytes for the request.
    unsafe { core::slice::from_raw_parts_mut(buffer, len) }
}

fn uapi_status(e: UapiError) -> NTSTATUS {
    match e {
        UapiError::TooShort { .. } | UapiError::BufferTooSmall { .. } => STATUS_BUFFER_TOO_SMALL,
        UapiError::BadValue { .. } => STATUS_INVALID_PARAMETER,
    }
}

/// Now, for the engine's timers: interrupt time in milliseconds. Any IRQL.
pub(crate) fn now() -> datapath::Instant {
    // SAFETY: callable at any IRQL; a null QPC out-pointer is allowed.
    let hundred_ns = unsafe { KeQueryInterruptTimePrecise(null_mut()) };
    datapath::Instant::from_millis(hundred_ns / 10_000)
}

// ---------------------------------------------------------------------------------------------
// Dispatch routines
// ---------------------------------------------------------------------------------------------

/// `IRP_MJ_CREATE` / `IRP_MJ_CLOSE`. PASSIVE_LEVEL. No per-handle state: succeed.
unsafe extern "system" fn dispatch_create_close(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    complete(irp, STATUS_SUCCESS, 0)
}

/// `IRP_MJ_CLEANUP`: the last handle of a file object closes. PASSIVE_LEVEL. Completes every
/// `READ_EVENT` pended on that file object with `STATUS_CANCELLED` (taken out under [`CONFIG`]'s lock,
/// completed after it is released).
unsafe extern "system" fn dispatch_cleanup(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    let file = file_object(irp);
    let mut cancelled: [Option<PendingRead>; MAX_PENDING_READS] = [const { None }; MAX_PENDING_READS];
    let mut cancelled_control: [Option<PendingRead>; MAX_PENDING_READS] = [const { None }; MAX_PENDING_READS];
    if let Some(config) = CONFIG.lock().as_mut() {
        for (slot, out) in config.reads.iter_mut().zip(cancelled.iter_mut()) {
            if slot.as_ref().is_some_and(|r| r.file == file) {
                *out = slot.take();
            }
        }
        for (slot, out) in config.control_reads.iter_mut().zip(cancelled_control.iter_mut()) {
            if slot.as_ref().is_some_and(|r| r.file == file) {
                *out = slot.take();
            }
        }
    }
    for read in cancelled.into_iter().chain(cancelled_control).flatten() {
        complete(read.irp.as_ptr(), STATUS_CANCELLED, 0);
    }
    complete(irp, STATUS_SUCCESS, 0)
}

/// `IRP_MJ_READ` / `IRP_MJ_WRITE`: control-channel packets, prefixed with the peer's `SOCKADDR_IN[6]`.
/// PASSIVE_LEVEL. A read completes with the oldest queued control packet the receive path intercepted
/// (see [`read_control`]). A well-formed write is sent through the transport's socket to that address
/// (`STATUS_SUCCESS`, all bytes); without a transport (no peer yet) `STATUS_DEVICE_NOT_READY`, with no
/// free buffer or IRP `STATUS_DEVICE_BUSY`; a malformed one `STATUS_INVALID_PARAMETER`.
unsafe extern "system" fn dispatch_read_write(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the IRP is being dispatched to us.
    let sp = unsafe { IoGetCurrentIrpStackLocation(irp) };
    // SAFETY: `sp` is the current stack location.
    let major = usize::from(unsafe { (*sp).MajorFunction });
    // SAFETY: `sp` is the current stack location.
    let parameters = unsafe { &(*sp).Parameters };
    // SAFETY: Parameters.Read/Write.Length is the first ULONG of the union, as OutputBufferLength is.
    let length = unsafe { parameters.DeviceIoControl.OutputBufferLength } as usize;
    if major == IRP_MJ_READ {
        return read_control(irp, length);
    }
    if major == IRP_MJ_WRITE {
        // SAFETY: a buffered write: SystemBuffer holds `length` bytes until we complete the IRP.
        let data = unsafe { system_buffer(irp, length) };
        let Ok((remote, packet)) = uapi::sockaddr::split_prefixed(data) else {
            return complete(irp, STATUS_INVALID_PARAMETER, 0);
        };
        let status = crate::transport::send_control(&remote, packet);
        return complete(irp, status, if status == STATUS_SUCCESS { length } else { 0 });
    }
    complete(irp, STATUS_DEVICE_NOT_READY, 0)
}

/// `IRP_MJ_DEVICE_CONTROL`: the `uapi::rdco_filter` IOCTLs, all `METHOD_BUFFERED`. PASSIVE_LEVEL. Each
/// handler parses its whole input before it changes anything and takes [`CONFIG`]'s lock only around the
/// change itself.
unsafe extern "system" fn dispatch_device_control(_device: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the IRP is being dispatched to us.
    let sp = unsafe { IoGetCurrentIrpStackLocation(irp) };
    // SAFETY: `sp` is the current stack location.
    let parameters = unsafe { &(*sp).Parameters };
    // SAFETY: an IRP_MJ_DEVICE_CONTROL stack location: DeviceIoControl is the active member.
    let params = unsafe { parameters.DeviceIoControl };
    let in_len = params.InputBufferLength as usize;
    let out_len = params.OutputBufferLength as usize;
    // SAFETY: METHOD_BUFFERED: SystemBuffer holds max(input, output) bytes until we complete the IRP.
    let buffer = unsafe { system_buffer(irp, in_len.max(out_len)) };
    let Some(ioctl) = RdcoFilterIoctl::from_code(params.IoControlCode) else {
        return complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0);
    };
    let input = buffer.get(..in_len).unwrap_or(&[]);
    let result = match ioctl {
        RdcoFilterIoctl::SetPolicy => set_policy(input),
        RdcoFilterIoctl::AddPeer => add_peer(input),
        RdcoFilterIoctl::DelPeer => del_peer(input),
        RdcoFilterIoctl::NewKey => new_key(input),
        RdcoFilterIoctl::SwapKeys => swap_keys(input),
        RdcoFilterIoctl::SetKeepalive => set_keepalive(input),
        RdcoFilterIoctl::GetStats => match get_stats(input) {
            Ok(stats) => stats.write_to(buffer.get_mut(..out_len).unwrap_or(&mut [])).map_err(uapi_status),
            Err(e) => Err(e),
        },
        RdcoFilterIoctl::ReadEvent => return read_event(irp, buffer.get_mut(..out_len).unwrap_or(&mut [])),
        RdcoFilterIoctl::SetHoldPolicy => set_hold_policy(input),
        RdcoFilterIoctl::GetHoldPolicy => {
            crate::hold::policy().write_to(buffer.get_mut(..out_len).unwrap_or(&mut [])).map_err(uapi_status)
        }
        RdcoFilterIoctl::SetPeerRoutes => set_peer_routes(input),
        RdcoFilterIoctl::ListModules => {
            crate::worker::list_modules(buffer.get_mut(..out_len).unwrap_or(&mut [])).map_err(uapi_status)
        }
    };
    match result {
        Ok(information) => complete(irp, STATUS_SUCCESS, information),
        Err(status) => complete(irp, status, 0),
    }
}

// ---------------------------------------------------------------------------------------------
// IOCTL handlers (PASSIVE_LEVEL; each takes CONFIG's lock, DISPATCH_LEVEL, around its change only)
// ---------------------------------------------------------------------------------------------

/// `IOCTL_RDCO_FILTER_SET_POLICY`: replaces the policy. Errors: short buffer, bad `Size`, `Count` over 16,
/// bad family or prefix length.
fn set_policy(input: &[u8]) -> Result<usize, NTSTATUS> {
    let request = RdcoSetPolicy::parse(input).map_err(uapi_status)?;
    let mut policy = [None; MAX_POLICY_PREFIXES];
    for (slot, p) in policy.iter_mut().zip(request.prefixes()) {
        let prefix = match p.addr {
            IpAddr::V4(a) => IpPrefix::V4(a.octets(), p.prefix_len),
            IpAddr::V6(a) => IpPrefix::V6(a.octets(), p.prefix_len),
        };
        *slot = Some(prefix.normalized().ok_or(STATUS_INVALID_PARAMETER)?);
    }
    let mut guard = CONFIG.lock();
    let config = guard.as_mut().ok_or(STATUS_INVALID_DEVICE_STATE)?;
    config.policy = policy;
    Ok(0)
}

pub(crate) fn endpoint(addr: SocketAddr) -> Endpoint {
    match addr {
        SocketAddr::V4(a) => Endpoint::V4 { addr: a.ip().octets(), port: a.port() },
        SocketAddr::V6(a) => Endpoint::V6 { addr: a.ip().octets(), port: a.port() },
    }
}

/// `IOCTL_RDCO_FILTER_ADD_PEER`. Errors: short buffer; bad `Size`, peer id, family; a remote with an
/// unspecified address or port 0; local and remote of different families (all `INVALID_PARAMETER`); the
/// id in use (`OBJECT_NAME_COLLISION`).
fn add_peer(input: &[u8]) -> Result<usize, NTSTATUS> {
    let request = RdcoAddPeer::parse(input).map_err(uapi_status)?;
    if request.remote.ip().is_unspecified()
        || request.remote.port() == 0
        || request.local.is_ipv4() != request.remote.is_ipv4()
    {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let mut peer = PeerConfig::new(request.peer_id);
    peer.remote = Some(endpoint(request.remote));
    peer.replay = ReplayConfig::default();
    if CONFIG.lock().as_ref().ok_or(STATUS_INVALID_DEVICE_STATE)?.peer_endpoints.is_full() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // The transport (socket, buffers) comes up with the first peer, before the peer is visible.
    crate::transport::ensure_up(&request.local)?;
    let time = now();
    let mut guard = CONFIG.lock();
    let config = guard.as_mut().ok_or(STATUS_INVALID_DEVICE_STATE)?;
    let result = match config.peers.add_peer(&peer, time) {
        Ok(_) => {
            if request.local.port() != 0 {
                if let Some(slot) = config.locals.iter_mut().find(|l| l.is_none()) {
                    *slot = Some((request.peer_id, endpoint(request.local)));
                }
            }
            let _ = config.peer_endpoints.try_push((request.peer_id, endpoint(request.remote)));
            Ok(0)
        }
        Err(PeerError::Exists) => Err(STATUS_OBJECT_NAME_COLLISION),
        Err(_) => Err(STATUS_INVALID_PARAMETER),
    };
    let unused = config.peers.is_empty();
    drop(guard);
    if unused {
        // A failed first add leaves nothing behind.
        crate::transport::tear_down();
    }
    result
}

/// A concrete peer id from an `RDCO_PEER_REF` (`ALL_PEERS` is `INVALID_PARAMETER` here).
fn one_peer(input: &[u8]) -> Result<u32, NTSTATUS> {
    let request = RdcoPeerRef::parse(input).map_err(uapi_status)?;
    if request.peer_id == ALL_PEERS {
        return Err(STATUS_INVALID_PARAMETER);
    }
    Ok(request.peer_id)
}

/// `IOCTL_RDCO_FILTER_DEL_PEER`: removes the peer and its keys (zeroized). Errors: short buffer, bad
/// `Size` or id, `ALL_PEERS`; unknown peer (`NOT_FOUND`).
fn del_peer(input: &[u8]) -> Result<usize, NTSTATUS> {
    let id = one_peer(input)?;
    let mut guard = CONFIG.lock();
    let config = guard.as_mut().ok_or(STATUS_INVALID_DEVICE_STATE)?;
    config.peers.remove_peer(id).map_err(|_| STATUS_NOT_FOUND)?;
    for local in config.locals.iter_mut().filter(|l| l.is_some_and(|(peer, _)| peer == id)) {
        *local = None;
    }
    config.peer_endpoints.retain(|(p, _)| *p != id);
    // The engine dropped the peer's routes with it.
    config.routes.retain(|(_, p)| *p != id);
    let last = config.peers.is_empty();
    drop(guard);
    if last {
        // The transport goes with the last peer (PASSIVE_LEVEL, outside the lock).
        crate::transport::tear_down();
    }
    Ok(0)
}

/// The engine's cipher for an `OVPN_CRYPTO_DATA` pair (key lengths already checked per cipher by
/// `uapi`): AES-GCM by key length, which both directions must share.
fn cipher(alg: OvpnCipherAlg, encrypt_len: u8, decrypt_len: u8) -> Result<Cipher, NTSTATUS> {
    Cipher::from_ovpn_alg(alg.as_u32(), usize::from(encrypt_len), usize::from(decrypt_len))
        .ok_or(STATUS_INVALID_PARAMETER)
}

/// Builds a key slot at PASSIVE_LEVEL, under the extended-state guard when the backend's key setup may
/// use AVX (see `datapath::crypto`).
fn build_slot(config: &KeyConfig) -> Result<KeySlot<datapath::DefaultAead>, NTSTATUS> {
    if !config.cipher.needs_extended_state() {
        return KeySlot::new(config, ReplayConfig::default()).map_err(|_| STATUS_INVALID_PARAMETER);
    }
    let mut save = XSTATE_SAVE::zeroed();
    // SAFETY: PASSIVE_LEVEL; `save` stays on this frame until the matching restore below.
    let status = unsafe { KeSaveExtendedProcessorState(XSTATE_MASK_LEGACY | XSTATE_MASK_AVX, &raw mut save) };
    if !NT_SUCCESS(status) {
        return Err(status);
    }
    let slot = KeySlot::new(config, ReplayConfig::default()).map_err(|_| STATUS_INVALID_PARAMETER);
    // SAFETY: restores the save above, same thread and IRQL, LIFO.
    unsafe { KeRestoreExtendedProcessorState(&raw mut save) };
    slot
}

/// `IOCTL_RDCO_FILTER_NEW_KEY`: installs a key pair in a peer's slot. Errors: short buffer; bad `Size`,
/// `KeySlot`, `CipherAlg`, key length for the cipher, encrypt/decrypt key lengths that differ, `KeyId`
/// over 7, unknown `CryptoOptions` bits, peer id out of range, epoch keys without an AEAD cipher (all
/// `INVALID_PARAMETER`); unknown peer (`NOT_FOUND`). The key state is built before the lock is taken and
/// installed under it.
fn new_key(input: &[u8]) -> Result<usize, NTSTATUS> {
    let request = RdcoNewKey::parse(input).map_err(uapi_status)?;
    let key = request.key.v1;
    let peer_id = u32::try_from(key.peer_id).map_err(|_| STATUS_INVALID_PARAMETER)?;
    let cipher = cipher(key.cipher_alg, key.encrypt.key_len, key.decrypt.key_len)?;
    let config = KeyConfig {
        cipher,
        format: KeyFormat::from_crypto_options(request.key.crypto_options),
        key_id: key.key_id,
        encrypt: KeyDirection { key: key.encrypt.key, nonce_tail: key.encrypt.nonce_tail },
        decrypt: KeyDirection { key: key.decrypt.key, nonce_tail: key.decrypt.nonce_tail },
    };
    let which = match key.key_slot {
        OvpnKeySlot::Primary => KeySlotId::Primary,
        OvpnKeySlot::Secondary => KeySlotId::Secondary,
    };
    if CONFIG.lock().as_ref().ok_or(STATUS_INVALID_DEVICE_STATE)?.peers.peer(peer_id).is_none() {
        return Err(STATUS_NOT_FOUND);
    }
    let slot = build_slot(&config)?;
    let mut guard = CONFIG.lock();
    let peers = &mut guard.as_mut().ok_or(STATUS_INVALID_DEVICE_STATE)?.peers;
    // The peer may have gone while the key was built; the slot is then dropped (zeroized).
    let peer = peers.peer_mut(peer_id).ok_or(STATUS_NOT_FOUND)?;
    peer.install_key_slot(which, slot);
    drop(guard);
    // Copies held while no key was there can leave now.
    crate::worker::kick_all();
    Ok(0)
}

/// `IOCTL_RDCO_FILTER_SWAP_KEYS`: primary and secondary change places. Errors: short buffer, bad `Size`
/// or id, `ALL_PEERS`; unknown peer (`NOT_FOUND`); no secondary key to swap in (`INVALID_DEVICE_STATE`).
fn swap_keys(input: &[u8]) -> Result<usize, NTSTATUS> {
    let id = one_peer(input)?;
    let mut guard = CONFIG.lock();
    let config = guard.as_mut().ok_or(STATUS_INVALID_DEVICE_STATE)?;
    let peer = config.peers.peer_mut(id).ok_or(STATUS_NOT_FOUND)?;
    if peer.keys().secondary().is_none() {
        return Err(STATUS_INVALID_DEVICE_STATE);
    }
    peer.swap_keys();
    Ok(0)
}

/// `IOCTL_RDCO_FILTER_SET_KEEPALIVE`: keepalive interval and timeout (seconds, 0 = off) and MSS clamp.
/// Errors: short buffer; bad `Size`, id or `Mss`; a timeout shorter than the interval when both are on
/// (`INVALID_PARAMETER`); unknown peer (`NOT_FOUND`).
fn set_keepalive(input: &[u8]) -> Result<usize, NTSTATUS> {
    let request = RdcoKeepalive::parse(input).map_err(uapi_status)?;
    let (interval, timeout) = (request.keepalive_interval, request.keepalive_timeout);
    if interval != 0 && timeout != 0 && timeout < interval {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let time = now();
    let mut guard = CONFIG.lock();
    let config = guard.as_mut().ok_or(STATUS_INVALID_DEVICE_STATE)?;
    let peer = config.peers.peer_mut(request.peer_id).ok_or(STATUS_NOT_FOUND)?;
    peer.set_keepalive(Duration::from_secs(interval.into()), Duration::from_secs(timeout.into()), time);
    peer.set_mss(request.mss);
    Ok(0)
}

/// `IOCTL_RDCO_FILTER_SET_HOLD_POLICY`: replaces the driver-wide hold policy (`hold.rs`) as a whole.
/// Errors: short buffer, bad `Size`, any field outside its documented range (`uapi::rdco_filter::HOLD_*`,
/// `INVALID_PARAMETER`). The request is parsed and checked completely before any field is stored.
fn set_hold_policy(input: &[u8]) -> Result<usize, NTSTATUS> {
    let request = RdcoHoldPolicy::parse(input).map_err(uapi_status)?;
    crate::hold::set_policy(&request);
    Ok(0)
}

/// `IOCTL_RDCO_FILTER_SET_PEER_ROUTES`: replaces the inner prefixes routed to one peer, as a whole
/// (`Count` 0 removes them). Prefixes of different peers may nest (the longest prefix wins), but one
/// prefix has one owner. Errors: short buffer, bad `Size`, peer id (or `ALL_PEERS`), `Count` over 16,
/// family or prefix length, the same prefix twice in the request (`INVALID_PARAMETER`); unknown peer
/// (`NOT_FOUND`); a prefix another peer owns (`OBJECT_NAME_COLLISION`); more than `MAX_ROUTES` routes
/// across the peers (`INSUFFICIENT_RESOURCES`). Everything is checked under the lock before the engine's
/// table changes, so a failure changes nothing. Sends already queued are routed when the worker seals
/// them, with the routes of that moment.
fn set_peer_routes(input: &[u8]) -> Result<usize, NTSTATUS> {
    let request = RdcoPeerRoutes::parse(input).map_err(uapi_status)?;
    let mut wanted = arrayvec::ArrayVec::<IpPrefix, MAX_PEER_ROUTES>::new();
    for p in request.prefixes() {
        let prefix = match p.addr {
            IpAddr::V4(a) => IpPrefix::V4(a.octets(), p.prefix_len),
            IpAddr::V6(a) => IpPrefix::V6(a.octets(), p.prefix_len),
        };
        let prefix = prefix.normalized().ok_or(STATUS_INVALID_PARAMETER)?;
        if wanted.contains(&prefix) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        wanted.try_push(prefix).map_err(|_| STATUS_INVALID_PARAMETER)?;
    }
    let id = request.peer_id;
    let mut guard = CONFIG.lock();
    let config = guard.as_mut().ok_or(STATUS_INVALID_DEVICE_STATE)?;
    if config.peers.peer(id).is_none() {
        return Err(STATUS_NOT_FOUND);
    }
    if config.routes.iter().any(|(p, owner)| *owner != id && wanted.contains(p)) {
        return Err(STATUS_OBJECT_NAME_COLLISION);
    }
    let others = config.routes.iter().filter(|(_, owner)| *owner != id).count();
    if others + wanted.len() > MAX_ROUTES {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // Checked: from here nothing can fail (peer exists, prefixes normalised, room for them).
    let old: arrayvec::ArrayVec<IpPrefix, MAX_ROUTES> =
        config.routes.iter().filter(|(_, owner)| *owner == id).map(|(p, _)| *p).collect();
    for p in old.iter().filter(|p| !wanted.contains(p)) {
        let _ = config.peers.remove_route(*p);
    }
    config.routes.retain(|(_, owner)| *owner != id);
    for p in &wanted {
        let _ = config.routes.try_push((*p, id));
    }
    config.peers.add_routes(wanted.iter().map(|p| (*p, id))).map_err(|_| STATUS_INVALID_PARAMETER)?;
    drop(guard);
    // Copies held for want of a route may have one now.
    crate::worker::kick_all();
    Ok(0)
}

/// `IOCTL_RDCO_FILTER_GET_STATS`: a peer's engine counters; with `ALL_PEERS` the driver-wide totals
/// ([`STATS`]), or with a module selector (`IfIndex` of the module's miniport, [`RdcoStatsQuery`]) that
/// module's own counters. Errors: short input or output buffer, bad `Size` or id, a peer with a module
/// selector (`INVALID_PARAMETER`); unknown peer or `IfIndex` (`NOT_FOUND`).
fn get_stats(input: &[u8]) -> Result<RdcoStats, NTSTATUS> {
    let request = RdcoStatsQuery::parse(input).map_err(uapi_status)?;
    if request.if_index != IF_INDEX_ANY {
        return crate::worker::module_stats(request.if_index).ok_or(STATUS_NOT_FOUND);
    }
    if request.peer_id == ALL_PEERS {
        return Ok(STATS.snapshot());
    }
    let guard = CONFIG.lock();
    let config = guard.as_ref().ok_or(STATUS_INVALID_DEVICE_STATE)?;
    let s = *config.peers.peer(request.peer_id).ok_or(STATUS_NOT_FOUND)?.stats();
    drop(guard);
    Ok(RdcoStats {
        peer_id: request.peer_id,
        tx_packets: s.tx_packets,
        tx_bytes: s.tx_bytes,
        rx_packets: s.rx_packets,
        rx_bytes: s.rx_bytes,
        drop_replay: s.rx_replayed,
        drop_auth: s.rx_auth_failed,
        drop_other: s.rx_other_drops,
        plaintext_copies: s.tx_gathered,
        keepalives_received: s.rx_keepalives,
        ..RdcoStats::default()
    })
}

/// `IOCTL_RDCO_FILTER_READ_EVENT`: completes at once with the oldest queued event, or pends the IRP
/// (`IoMarkIrpPending`, `STATUS_PENDING`) until [`queue_event`] or `IRP_MJ_CLEANUP` completes it.
/// Errors: output shorter than `RDCO_EVENT` (`BUFFER_TOO_SMALL`), more than 8 reads pended
/// (`INSUFFICIENT_RESOURCES`).
fn read_event(irp: *mut IRP, output: &mut [u8]) -> NTSTATUS {
    if output.len() < RdcoEvent::SIZE {
        return complete(irp, STATUS_BUFFER_TOO_SMALL, 0);
    }
    let file = file_object(irp);
    let mut guard = CONFIG.lock();
    let Some(config) = guard.as_mut() else {
        drop(guard);
        return complete(irp, STATUS_INVALID_DEVICE_STATE, 0);
    };
    if let Some(event) = config.pop_event() {
        drop(guard);
        return match event.write_to(output) {
            Ok(n) => complete(irp, STATUS_SUCCESS, n),
            Err(e) => complete(irp, uapi_status(e), 0),
        };
    }
    let Some(slot) = config.reads.iter_mut().find(|s| s.is_none()) else {
        drop(guard);
        return complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0);
    };
    // IoMarkIrpPending before the IRP becomes visible to queue_event (which may complete it at once).
    // SAFETY: the IRP is being dispatched to us; its current stack location is ours to mark.
    let sp = unsafe { IoGetCurrentIrpStackLocation(irp) };
    // SAFETY: `sp` is the current stack location.
    unsafe { (*sp).Control |= SL_PENDING_RETURNED };
    let Some(irp_ptr) = NonNull::new(irp) else {
        return STATUS_INVALID_PARAMETER;
    };
    *slot = Some(PendingRead { irp: irp_ptr, file });
    drop(guard);
    STATUS_PENDING
}

/// Queues an event for user mode: completes a pended `READ_EVENT` with it, or keeps it (dropping and
/// counting the oldest when the queue is full). IRQL <= DISPATCH_LEVEL (the data path's DPCs). Returns
/// false if the driver is not loaded or an older event was dropped.
pub(crate) fn queue_event(kind: RdcoEventKind, peer_id: u32, address: Option<SocketAddr>) -> bool {
    let event = RdcoEvent { kind, peer_id, address };
    let mut guard = CONFIG.lock();
    let Some(config) = guard.as_mut() else {
        return false;
    };
    let Some(read) = config.take_read() else {
        let kept = config.push_event(event);
        drop(guard);
        if !kept {
            EVENTS_LOST.fetch_add(1, Ordering::Relaxed);
        }
        return kept;
    };
    drop(guard);
    let irp = read.irp.as_ptr();
    // SAFETY: a pended READ_EVENT IRP we own, checked at pend time to hold RDCO_EVENT bytes of output.
    let output = unsafe { system_buffer(irp, RdcoEvent::SIZE) };
    match event.write_to(output) {
        Ok(n) => complete(irp, STATUS_SUCCESS, n),
        Err(e) => complete(irp, uapi_status(e), 0),
    };
    true
}

// ---------------------------------------------------------------------------------------------
// The receive path's side: control-channel packets for user mode, classification helpers
// ---------------------------------------------------------------------------------------------

/// `IRP_MJ_READ` (buffered): completes at once with the oldest queued control packet (its
/// `SOCKADDR_IN[6]` source, then the packet), or pends the IRP (`STATUS_PENDING`) until
/// [`queue_control`] or `IRP_MJ_CLEANUP` completes it. Errors: a buffer too small for the oldest packet
/// (`BUFFER_TOO_SMALL`, the packet stays queued), more than 8 reads pended (`INSUFFICIENT_RESOURCES`),
/// the driver unloading (`INVALID_DEVICE_STATE`). PASSIVE_LEVEL; CONFIG's lock around the queue only.
fn read_control(irp: *mut IRP, length: usize) -> NTSTATUS {
    let file = file_object(irp);
    let mut guard = CONFIG.lock();
    let Some(config) = guard.as_mut() else {
        drop(guard);
        return complete(irp, STATUS_INVALID_DEVICE_STATE, 0);
    };
    let queue = config.control.get();
    if let Some(record) = queue.front() {
        if record.len() > length {
            drop(guard);
            return complete(irp, STATUS_BUFFER_TOO_SMALL, 0);
        }
        // SAFETY: a buffered read: SystemBuffer holds `length` bytes until we complete the IRP.
        let out = unsafe { system_buffer(irp, length) };
        let n = record.len();
        if let Some(dst) = out.get_mut(..n) {
            dst.copy_from_slice(record);
        }
        queue.pop();
        drop(guard);
        return complete(irp, STATUS_SUCCESS, n);
    }
    if length < CONTROL_RECORD_MAX {
        // A pended read must hold any packet: refuse one that might not, rather than lose a packet.
        drop(guard);
        return complete(irp, STATUS_BUFFER_TOO_SMALL, 0);
    }
    let Some(slot) = config.control_reads.iter_mut().find(|s| s.is_none()) else {
        drop(guard);
        return complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0);
    };
    // SAFETY: the IRP is being dispatched to us; its current stack location is ours to mark.
    let sp = unsafe { IoGetCurrentIrpStackLocation(irp) };
    // SAFETY: `sp` is the current stack location.
    unsafe { (*sp).Control |= SL_PENDING_RETURNED };
    let Some(irp_ptr) = NonNull::new(irp) else {
        return STATUS_INVALID_PARAMETER;
    };
    *slot = Some(PendingRead { irp: irp_ptr, file });
    drop(guard);
    STATUS_PENDING
}

/// Hands a control-channel packet the receive path intercepted to user mode: completes a pended
/// `IRP_MJ_READ` with it, or queues it. Returns false (and changes nothing) if the queue is full, the
/// packet too long, or the driver not loaded. IRQL <= DISPATCH_LEVEL (the receive path); CONFIG's lock
/// around the queue only, the IRP completed after it is released.
pub(crate) fn queue_control(from: Endpoint, packet: &[u8]) -> bool {
    let from = socket_addr(from);
    let mut guard = CONFIG.lock();
    let Some(config) = guard.as_mut() else { return false };
    let Some(read) = config.control_reads.iter_mut().find_map(Option::take) else {
        return config.control.get().push(&from, packet);
    };
    drop(guard);
    let irp = read.irp.as_ptr();
    // SAFETY: a pended read IRP we own, checked at pend time to hold CONTROL_RECORD_MAX bytes.
    let out = unsafe { system_buffer(irp, CONTROL_RECORD_MAX) };
    match uapi::sockaddr::write_prefixed(&from, packet, out) {
        Ok(n) => complete(irp, STATUS_SUCCESS, n),
        Err(e) => complete(irp, uapi_status(e), 0),
    };
    true
}

/// The engine's endpoint as a socket address.
pub(crate) fn socket_addr(e: Endpoint) -> SocketAddr {
    match e {
        Endpoint::V4 { addr, port } => SocketAddr::new(IpAddr::from(addr), port),
        Endpoint::V6 { addr, port } => SocketAddr::new(IpAddr::from(addr), port),
    }
}

/// Whether any peer is configured (a receive chain with none is passed up whole). IRQL <=
/// DISPATCH_LEVEL.
pub(crate) fn has_peers() -> bool {
    CONFIG.lock().as_ref().is_some_and(|c| !c.peers.is_empty())
}

/// Whether a UDP datagram from `src` to `dst` is the tunnel's: `src` is a peer's remote endpoint, or
/// `dst` a peer's local endpoint (an unspecified local address matches any address of its family).
/// IRQL <= DISPATCH_LEVEL; CONFIG's lock, briefly.
pub(crate) fn is_tunnel_endpoint(src: &Endpoint, dst: &Endpoint) -> bool {
    let mut guard = CONFIG.lock();
    let Some(config) = guard.as_mut() else { return false };
    if config.peers.peers_mut().any(|p| p.remote().as_ref() == Some(src)) {
        return true;
    }
    config.locals.iter().flatten().any(|(_, local)| match (local, dst) {
        (Endpoint::V4 { addr: la, port: lp }, Endpoint::V4 { addr: da, port: dp }) => {
            lp == dp && (*la == [0; 4] || la == da)
        }
        (Endpoint::V6 { addr: la, port: lp }, Endpoint::V6 { addr: da, port: dp }) => {
            lp == dp && (*la == [0; 16] || la == da)
        }
        _ => false,
    })
}
