//! A small NetAdapterCx client that lives with the tests, written as a driver would: it binds KMDF and
//! NetAdapterCx through the project's stubs (`kernel::kmdf`, `kernel::netcx`), creates its device and
//! adapter in `EvtDriverDeviceAdd`, declares driver-managed Rx buffers, and loops Tx back to Rx: each
//! Tx packet is read from its fragments (virtual-address extension), completed, and indicated on the
//! Rx ring in buffers the driver owns (return-context extension; packets over
//! [`RX_SPLIT`] bytes become two fragments). `EvtAdapterReturnRxBuffer` frees a buffer exactly once.
//!
//! [`BUG`] makes it break exactly one NetAdapterCx rule (once), for the verifier's negative tests; each
//! test runs in its own process, so the switch is set before the driver loads. [`SLOW_TX`] makes Tx
//! complete nothing until the queue is cancelled (a transport that never completes), so packets are in
//! flight when the data path is cancelled.
#![allow(clippy::missing_safety_doc, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use kernel::ffi::netcx::*;
use kernel::ffi::ntos::{BOOLEAN, DRIVER_OBJECT, NTSTATUS, STATUS_SUCCESS, UNICODE_STRING};
use kernel::ffi::wdf::{
    PWDFDEVICE_INIT, WDFCMRESLIST, WDFDEVICE, WDFDRIVER, WDF_DRIVER_CONFIG, WDF_PNPPOWER_EVENT_CALLBACKS,
    WDF_POWER_DEVICE_STATE,
};
use kernel::netcx::Direction;
use kernel::{kmdf, netcx};

/// The service name the tests load it under.
pub const SERVICE: &str = "netcxtest";
/// Rx packets longer than this are indicated as two fragments.
pub const RX_SPLIT: usize = 100;
/// Room the client leaves before the data in each Rx buffer (`NET_FRAGMENT.Offset`).
const RX_HEADROOM: usize = 8;

/// The deliberate mistakes, one NetAdapterCx rule each.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    None = 0,
    /// Writes `OSReserved1` of the Rx packet ring: `netcx.ring.immutable`.
    WritesRingHeader,
    /// Moves the Tx packet ring's `BeginIndex` past `EndIndex`: `netcx.ring.begin_past_end`.
    BeginPastEnd,
    /// Writes the Tx packet just past `EndIndex` (the framework's): `netcx.ring.outside_range`.
    WritesOutsideRange,
    /// Sets `Ignore` on a Tx packet: `netcx.tx.immutable`.
    WritesTxIgnore,
    /// Returns an Rx packet with `FragmentCount` 0: `netcx.rx.packet_fragments`.
    ZeroFragments,
    /// Returns an IPv4 Rx packet whose layer-3 header length is 10: `netcx.rx.layout`.
    ShortIpv4Layout,
    /// Returns an Rx fragment with `Offset + ValidLength > Capacity`: `netcx.rx.fragment`.
    FragmentPastCapacity,
    /// Sets `OsReserved_Bounced` on an Rx fragment: `netcx.rx.os_reserved`.
    SetsBounced,
    /// Ignores `EvtPacketQueueCancel` on Rx and never drains: `netcx.cancel`.
    NeverDrains,
    /// Notifies the Rx queue whatever the notification state: `netcx.notify`.
    NotifiesWhileDisabled,
    /// Driver-managed Rx allocation with system attachment: `netcx.capabilities`.
    DriverAllocSystemAttach,
    /// Calls `NetAdapterStart` twice: `netcx.object_state`.
    StartsTwice,
    /// Under system-managed Rx, changes a fragment's `Capacity`: `netcx.rx.fragment`.
    ChangesSystemCapacity,
    /// Calls `NetRxQueueGetRingCollection` (PASSIVE_LEVEL only) from the advance: `irql.too_high`.
    RingCollectionInAdvance,
    /// Calls `NetAdapterGetNetLuid`, which the simulation does not implement: the machine stops
    /// (`sim.not_simulated`, naming the DDI).
    CallsUnsimulated,
    /// Points a second Rx packet at the first one's fragment: `netcx.rx.packet_fragments` (overlap).
    ReusesFragment,
}

/// The bug this process's client commits.
pub static BUG: AtomicU32 = AtomicU32::new(Bug::None as u32);
/// Whether the adapter declares system-managed Rx buffers (the framework allocates and attaches them;
/// the client copies into them) instead of driver-managed ones.
pub static SYSTEM_RX: AtomicBool = AtomicBool::new(false);
/// Whether Tx holds every packet until `EvtPacketQueueCancel`.
pub static SLOW_TX: AtomicBool = AtomicBool::new(false);
static BUG_DONE: AtomicBool = AtomicBool::new(false);

fn bug() -> Bug {
    let b = BUG.load(Ordering::Relaxed);
    [
        Bug::None,
        Bug::WritesRingHeader,
        Bug::BeginPastEnd,
        Bug::WritesOutsideRange,
        Bug::WritesTxIgnore,
        Bug::ZeroFragments,
        Bug::ShortIpv4Layout,
        Bug::FragmentPastCapacity,
        Bug::SetsBounced,
        Bug::NeverDrains,
        Bug::NotifiesWhileDisabled,
        Bug::DriverAllocSystemAttach,
        Bug::StartsTwice,
        Bug::ChangesSystemCapacity,
        Bug::RingCollectionInAdvance,
        Bug::CallsUnsimulated,
        Bug::ReusesFragment,
    ]
    .get(b as usize)
    .copied()
    .unwrap_or(Bug::None)
}

/// Whether to commit `b` now (each bug is committed once).
fn commit(b: Bug) -> bool {
    bug() == b && !BUG_DONE.swap(true, Ordering::Relaxed)
}

/// One queue as the client sees it.
#[derive(Clone, Copy)]
struct QueueView {
    handle: usize,
    packets: usize,
    fragments: usize,
    va: Option<NET_EXTENSION>,
    rc: Option<NET_EXTENSION>,
}

// SAFETY: the raw pointers are the framework's ring and extension storage, used only by the driver's
// callbacks, which the framework serialises per queue.
unsafe impl Send for QueueView {}

#[derive(Default)]
struct Client {
    adapter: usize,
    tx: Option<QueueView>,
    rx: Option<QueueView>,
    /// Packets read from Tx, waiting for Rx.
    loopback: Vec<Vec<u8>>,
    /// Rx buffers lent to the OS, by return-context id.
    lent: BTreeMap<usize, Box<[u8]>>,
    next_id: usize,
    rx_notification: bool,
    rx_cancelled: bool,
    tx_cancelled: bool,
    /// Return callbacks for a context not lent (a second return, or never lent).
    bad_returns: u64,
    returns: u64,
}

static CLIENT: Mutex<Option<Client>> = Mutex::new(None);
/// The PnP/power and queue events the client saw, in order.
static EVENTS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn event(e: &'static str) {
    EVENTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(e);
}

/// The PnP/power and queue events so far (`PrepareHardware`, `D0Entry`, `TxCancel`, `RxCancel`,
/// `D0Exit`, `ReleaseHardware`).
pub fn events() -> Vec<&'static str> {
    EVENTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
}

/// The control device's symbolic link and interface class the client registers.
pub const SYMBOLIC_LINK: &str = "\\DosDevices\\netcxtest";
pub const INTERFACE_CLASS: kernel::ffi::oid::GUID = kernel::ffi::oid::GUID {
    Data1: 0x1234_5678,
    Data2: 0x9abc,
    Data3: 0xdef0,
    Data4: [1, 2, 3, 4, 5, 6, 7, 8],
};

fn with<R>(f: impl FnOnce(&mut Client) -> R) -> R {
    let mut g = CLIENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(g.get_or_insert_with(Client::default))
}

/// What the client observed: buffers still lent to the OS, returns, returns of unknown contexts.
pub fn stats() -> (usize, u64, u64) {
    with(|c| (c.lent.len(), c.returns, c.bad_returns))
}

// ---- ring access ----

fn ring(p: usize) -> *mut NET_RING {
    p as *mut NET_RING
}
fn hdr<'a>(p: usize) -> &'a mut NET_RING {
    // SAFETY: `p` is a ring the framework handed out for a live queue; the framework serialises the
    // queue's callbacks, so nothing else accesses the header meanwhile.
    unsafe { &mut *ring(p) }
}
fn packet<'a>(p: usize, i: u32) -> &'a mut NET_PACKET {
    // SAFETY: `i` is masked below NumberOfElements; the element is the client's (in its range).
    let at = unsafe { NetRingGetElementAtIndex(ring(p), i & hdr(p).ElementIndexMask) };
    // SAFETY: the element is live ring storage of the right type, aligned (stride and base).
    unsafe { &mut *at.cast::<NET_PACKET>() }
}
fn fragment<'a>(p: usize, i: u32) -> &'a mut NET_FRAGMENT {
    // SAFETY: as in `packet`.
    let at = unsafe { NetRingGetElementAtIndex(ring(p), i & hdr(p).ElementIndexMask) };
    // SAFETY: the element is live ring storage of the right type, aligned (stride and base).
    unsafe { &mut *at.cast::<NET_FRAGMENT>() }
}
fn ext_slot(ext: &NET_EXTENSION, i: u32) -> *mut usize {
    ext.data(i).cast::<usize>()
}

// ---- driver entry ----

pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    registry: *mut UNICODE_STRING,
) -> NTSTATUS {
    *CLIENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    EVENTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    BUG_DONE.store(false, Ordering::Relaxed);
    // SAFETY: DriverEntry's arguments, once per load.
    if let Err(s) = unsafe { kmdf::bind(driver, registry) } {
        return s;
    }
    // SAFETY: KMDF is bound.
    if let Err(s) = unsafe { netcx::bind_class() } {
        // SAFETY: bound above.
        unsafe { kmdf::unbind() };
        return s;
    }
    let mut config = WDF_DRIVER_CONFIG::init(Some(evt_device_add));
    config.EvtDriverUnload = Some(evt_driver_unload);
    // SAFETY: bound; DriverEntry's arguments.
    match unsafe { kmdf::driver_create(driver, registry, &mut config) } {
        Ok(_) => {
            // SAFETY: bound and the WDFDRIVER exists.
            unsafe { kmdf::displace_unload(driver) };
            STATUS_SUCCESS
        }
        Err(s) => {
            // SAFETY: both binds succeeded; undone in reverse.
            unsafe { netcx::unbind_class() };
            // SAFETY: as above.
            unsafe { kmdf::unbind() };
            s
        }
    }
}

unsafe extern "system" fn evt_driver_unload(_driver: WDFDRIVER) {
    // SAFETY: the class bind succeeded in DriverEntry; this runs once, before the KMDF unbind.
    unsafe { netcx::unbind_class() };
}

unsafe extern "system" fn prepare_hardware(
    _d: WDFDEVICE,
    _raw: WDFCMRESLIST,
    _translated: WDFCMRESLIST,
) -> NTSTATUS {
    event("PrepareHardware");
    STATUS_SUCCESS
}
unsafe extern "system" fn release_hardware(_d: WDFDEVICE, _translated: WDFCMRESLIST) -> NTSTATUS {
    event("ReleaseHardware");
    STATUS_SUCCESS
}
unsafe extern "system" fn d0_entry(_d: WDFDEVICE, _previous: WDF_POWER_DEVICE_STATE) -> NTSTATUS {
    event("D0Entry");
    STATUS_SUCCESS
}
unsafe extern "system" fn d0_exit(_d: WDFDEVICE, _target: WDF_POWER_DEVICE_STATE) -> NTSTATUS {
    event("D0Exit");
    STATUS_SUCCESS
}

unsafe extern "system" fn evt_device_add(_driver: WDFDRIVER, mut init: PWDFDEVICE_INIT) -> NTSTATUS {
    // SAFETY: the framework's init.
    if let Err(s) = unsafe { netcx::device_init_config(init) } {
        return s;
    }
    let mut pnp = WDF_PNPPOWER_EVENT_CALLBACKS::init();
    pnp.EvtDevicePrepareHardware = Some(prepare_hardware);
    pnp.EvtDeviceReleaseHardware = Some(release_hardware);
    pnp.EvtDeviceD0Entry = Some(d0_entry);
    pnp.EvtDeviceD0Exit = Some(d0_exit);
    // SAFETY: the framework's init, before WdfDeviceCreate.
    unsafe { kmdf::device_init_set_pnp_power_callbacks(init, &mut pnp) };
    // SAFETY: as above.
    let device = match unsafe { kmdf::device_create(&mut init, None) } {
        Ok(d) => d,
        Err(s) => return s,
    };
    let mut link: Vec<u16> = SYMBOLIC_LINK.encode_utf16().collect();
    let bytes = u16::try_from(link.len() * 2).unwrap_or(0);
    let name = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: link.as_mut_ptr() };
    // SAFETY: our device; the string outlives the call.
    if let Err(s) = unsafe { kmdf::device_create_symbolic_link(device, &name) } {
        return s;
    }
    // SAFETY: our device.
    if let Err(s) = unsafe { kmdf::device_create_device_interface(device, &INTERFACE_CLASS) } {
        return s;
    }
    let mut callbacks = NET_ADAPTER_DATAPATH_CALLBACKS::init(Some(create_tx), Some(create_rx));
    // SAFETY: our device.
    let adapter = match unsafe { netcx::adapter_create(device, &mut callbacks, None) } {
        Ok(a) => a,
        Err(s) => return s,
    };
    with(|c| c.adapter = adapter as usize);
    if bug() == Bug::CallsUnsimulated {
        if let Some(entry) = netcx::function(NetAdapterGetNetLuidTableIndex) {
            type GetNetLuid = unsafe extern "system" fn(*mut NET_DRIVER_GLOBALS, NETADAPTER) -> u64;
            // SAFETY: slot NetAdapterGetNetLuidTableIndex holds PFN_NETADAPTERGETNETLUID (netadapter.h).
            let get = unsafe { core::mem::transmute::<unsafe extern "system" fn(), GetNetLuid>(entry) };
            // SAFETY: our live adapter (the simulation stops the machine here).
            let _ = unsafe { get(core::ptr::null_mut(), adapter) };
        }
    }
    let mut tx = NET_ADAPTER_TX_CAPABILITIES::init(1);
    let mut rx = if SYSTEM_RX.load(Ordering::Relaxed) || bug() == Bug::ChangesSystemCapacity {
        NET_ADAPTER_RX_CAPABILITIES::init_system_managed(2048, 1)
    } else {
        NET_ADAPTER_RX_CAPABILITIES::init_driver_managed(Some(return_rx_buffer), 2048, 1)
    };
    if bug() == Bug::DriverAllocSystemAttach {
        rx.AttachmentMode = NetRxFragmentBufferAttachmentModeSystem;
    }
    let mut link = NET_ADAPTER_LINK_LAYER_CAPABILITIES::init(1_000_000_000, 1_000_000_000);
    let mut state =
        NET_ADAPTER_LINK_STATE::init(1_000_000_000, MediaConnectStateConnected, MediaDuplexStateFull);
    // SAFETY: our adapter, PASSIVE_LEVEL, before start.
    unsafe {
        netcx::set_datapath_capabilities(adapter, &mut tx, &mut rx);
    }
    // SAFETY: as above.
    unsafe { netcx::set_link_layer_capabilities(adapter, &mut link) };
    // SAFETY: as above.
    unsafe { netcx::set_mtu(adapter, 1500) };
    // SAFETY: as above.
    unsafe { netcx::set_link_state(adapter, &mut state) };
    // SAFETY: as above.
    let started = unsafe { netcx::adapter_start(adapter) };
    if bug() == Bug::StartsTwice {
        // SAFETY: as above (the second start is the bug).
        let _ = unsafe { netcx::adapter_start(adapter) };
    }
    match started {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

fn view(dir: Direction, queue: NETPACKETQUEUE) -> QueueView {
    // SAFETY: our live queue, PASSIVE_LEVEL inside the create callback.
    let rings = unsafe { netcx::ring_collection(dir, queue) };
    // SAFETY: the framework's collection for the queue's lifetime.
    let r = unsafe { &*rings };
    // SAFETY: our live queue; the names are NUL-terminated statics.
    let va = unsafe {
        netcx::extension(
            dir,
            queue,
            &NET_FRAGMENT_EXTENSION_VIRTUAL_ADDRESS_NAME,
            1,
            NetExtensionTypeFragment,
        )
    };
    let rc = if dir == Direction::Rx {
        // SAFETY: as above.
        unsafe {
            netcx::extension(
                dir,
                queue,
                &NET_FRAGMENT_EXTENSION_RETURN_CONTEXT_NAME,
                1,
                NetExtensionTypeFragment,
            )
        }
    } else {
        None
    };
    QueueView {
        handle: queue as usize,
        packets: r.Rings[NetRingTypePacket] as usize,
        fragments: r.Rings[NetRingTypeFragment] as usize,
        va,
        rc,
    }
}

unsafe extern "system" fn create_tx(_adapter: NETADAPTER, init: PNETTXQUEUE_INIT) -> NTSTATUS {
    let mut config =
        NET_PACKET_QUEUE_CONFIG::init(Some(tx_advance), Some(tx_set_notification), Some(tx_cancel));
    // SAFETY: the framework's init, inside the create callback.
    match unsafe { netcx::queue_create(Direction::Tx, init, None, &mut config) } {
        Ok(q) => {
            let v = view(Direction::Tx, q);
            with(|c| c.tx = Some(v));
            STATUS_SUCCESS
        }
        Err(s) => s,
    }
}

unsafe extern "system" fn create_rx(_adapter: NETADAPTER, init: PNETRXQUEUE_INIT) -> NTSTATUS {
    let mut config =
        NET_PACKET_QUEUE_CONFIG::init(Some(rx_advance), Some(rx_set_notification), Some(rx_cancel));
    // SAFETY: as in create_tx.
    match unsafe { netcx::queue_create(Direction::Rx, init, None, &mut config) } {
        Ok(q) => {
            let v = view(Direction::Rx, q);
            with(|c| c.rx = Some(v));
            STATUS_SUCCESS
        }
        Err(s) => s,
    }
}

// ---- Tx ----

/// Reads a Tx packet's payload from its fragments' virtual addresses.
fn tx_payload(q: &QueueView, p: &NET_PACKET) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(va) = q.va else { return out };
    for k in 0..u32::from(p.FragmentCount) {
        let fi = p.FragmentIndex.wrapping_add(k) & hdr(q.fragments).ElementIndexMask;
        let f = *fragment(q.fragments, fi);
        // SAFETY: the extension holds one pointer per fragment index.
        let base = unsafe { ext_slot(&va, fi).read() } as *const u8;
        let (off, len) = (f.offset() as usize, f.valid_length() as usize);
        // SAFETY: the framework describes ValidLength bytes at VirtualAddress + Offset.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(base.wrapping_add(off), len) });
    }
    out
}

unsafe extern "system" fn tx_advance(_queue: NETPACKETQUEUE) {
    let Some(q) = with(|c| c.tx) else { return };
    let (pr, fr) = (hdr(q.packets), hdr(q.fragments));
    if SLOW_TX.load(Ordering::Relaxed) && !with(|c| c.tx_cancelled) {
        return;
    }
    let mut i = pr.BeginIndex;
    let mut moved = Vec::new();
    let mut last_fragment_end = fr.BeginIndex;
    while i != pr.EndIndex {
        let p = *packet(q.packets, i);
        moved.push(tx_payload(&q, &p));
        last_fragment_end = p.FragmentIndex.wrapping_add(u32::from(p.FragmentCount)) & fr.ElementIndexMask;
        i = NetRingIncrementIndex(pr, i);
    }
    if commit(Bug::WritesTxIgnore) && pr.BeginIndex != pr.EndIndex {
        packet(q.packets, pr.BeginIndex).set_ignore(true);
    }
    if commit(Bug::WritesOutsideRange) {
        packet(q.packets, pr.EndIndex).set_scratch(true);
    }
    if bug() == Bug::BeginPastEnd && pr.BeginIndex != pr.EndIndex && commit(Bug::BeginPastEnd) {
        pr.BeginIndex = NetRingAdvanceIndex(pr, pr.EndIndex, 1);
        return;
    }
    pr.BeginIndex = i;
    fr.BeginIndex = last_fragment_end;
    let notify = with(|c| {
        let any = !moved.is_empty();
        c.loopback.extend(moved);
        any && (c.rx_notification || bug() == Bug::NotifiesWhileDisabled)
    });
    if notify {
        if let Some(rx) = with(|c| c.rx) {
            // SAFETY: our live Rx queue.
            unsafe { netcx::notify(Direction::Rx, rx.handle as NETPACKETQUEUE) };
        }
    }
}

unsafe extern "system" fn tx_set_notification(_queue: NETPACKETQUEUE, _enabled: BOOLEAN) {}

unsafe extern "system" fn tx_cancel(_queue: NETPACKETQUEUE) {
    event("TxCancel");
    with(|c| c.tx_cancelled = true);
}

// ---- Rx ----

fn layout_for(p: &[u8]) -> NET_PACKET_LAYOUT {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            let l3 = if commit(Bug::ShortIpv4Layout) { 10 } else { u16::from(p[0] & 0xf) * 4 };
            NET_PACKET_LAYOUT::new(
                0,
                l3,
                0,
                NetPacketLayer2TypeNull,
                NetPacketLayer3TypeIPv4UnspecifiedOptions,
                0,
            )
        }
        Some(6) => NET_PACKET_LAYOUT::new(
            0,
            40,
            0,
            NetPacketLayer2TypeNull,
            NetPacketLayer3TypeIPv6UnspecifiedExtensions,
            0,
        ),
        _ => NET_PACKET_LAYOUT::new(0, 0, 0, NetPacketLayer2TypeNull, 0, 0),
    }
}

unsafe extern "system" fn rx_advance(_queue: NETPACKETQUEUE) {
    let Some(q) = with(|c| c.rx) else { return };
    let (pr, fr) = (hdr(q.packets), hdr(q.fragments));
    if commit(Bug::WritesRingHeader) {
        pr.OSReserved1 = 0x5a5a;
    }
    if with(|c| c.rx_cancelled) {
        if bug() == Bug::NeverDrains {
            return;
        }
        // Cancel: every packet the client holds goes back ignored, every fragment unused.
        let mut i = pr.BeginIndex;
        while i != pr.EndIndex {
            packet(q.packets, i).set_ignore(true);
            i = NetRingIncrementIndex(pr, i);
        }
        pr.BeginIndex = pr.EndIndex;
        fr.BeginIndex = fr.EndIndex;
        return;
    }
    let Some(va) = q.va else { return };
    // SAFETY: KeGetCurrentIrql has no preconditions.
    let at_dispatch = unsafe { kernel::ffi::ntos::KeGetCurrentIrql() } >= kernel::ffi::ntos::DISPATCH_LEVEL;
    if bug() == Bug::RingCollectionInAdvance && at_dispatch && commit(Bug::RingCollectionInAdvance) {
        // The bug: a PASSIVE_LEVEL DDI from the advance, which runs at DISPATCH_LEVEL every other time.
        // SAFETY: our live queue (the call is legal only at PASSIVE_LEVEL).
        let _ = unsafe { netcx::ring_collection(Direction::Rx, q.handle as NETPACKETQUEUE) };
    }
    let mut previous_first: Option<u32> = None;
    while let Some(data) = with(|c| c.loopback.first().cloned()) {
        let pieces: Vec<&[u8]> =
            if data.len() > RX_SPLIT { vec![&data[..RX_SPLIT], &data[RX_SPLIT..]] } else { vec![&data[..]] };
        let p_free = NetRingGetRangeCount(pr, pr.BeginIndex, pr.EndIndex);
        let f_free = NetRingGetRangeCount(fr, fr.BeginIndex, fr.EndIndex);
        if p_free == 0 || (f_free as usize) < pieces.len() {
            break;
        }
        let first = fr.BeginIndex;
        for piece in &pieces {
            let fi = fr.BeginIndex;
            let f = fragment(q.fragments, fi);
            match q.rc {
                Some(rc) => rx_attach_own_buffer(f, &va, &rc, fi, piece),
                None => rx_copy_into_system_buffer(f, &va, fi, piece),
            }
            if commit(Bug::SetsBounced) {
                f.set_bounced(true);
            }
            fr.BeginIndex = NetRingIncrementIndex(fr, fi);
        }
        let p = packet(q.packets, pr.BeginIndex);
        p.FragmentIndex = first;
        p.FragmentCount = u16::try_from(pieces.len()).unwrap_or(1);
        if commit(Bug::ZeroFragments) {
            p.FragmentCount = 0;
        }
        if let Some(earlier) = previous_first {
            if commit(Bug::ReusesFragment) {
                p.FragmentIndex = earlier;
            }
        }
        previous_first = Some(first);
        p.Layout = layout_for(&data);
        pr.BeginIndex = NetRingIncrementIndex(pr, pr.BeginIndex);
        with(|c| c.loopback.remove(0));
    }
}

/// Driver-managed Rx: a buffer of the driver's own, lent to the OS with its id as return context.
fn rx_attach_own_buffer(f: &mut NET_FRAGMENT, va: &NET_EXTENSION, rc: &NET_EXTENSION, fi: u32, piece: &[u8]) {
    let mut buf = vec![0u8; piece.len() + 2 * RX_HEADROOM].into_boxed_slice();
    buf[RX_HEADROOM..RX_HEADROOM + piece.len()].copy_from_slice(piece);
    let id = with(|c| {
        c.next_id += 1;
        c.next_id
    });
    f.set_capacity(buf.len() as u64);
    f.set_offset(RX_HEADROOM as u64);
    f.set_valid_length(piece.len() as u64);
    if commit(Bug::FragmentPastCapacity) {
        f.set_valid_length(buf.len() as u64);
    }
    // SAFETY: the extensions hold one pointer-sized element per fragment index.
    unsafe { ext_slot(va, fi).write(buf.as_ptr() as usize) };
    // SAFETY: as above.
    unsafe { ext_slot(rc, fi).write(id) };
    with(|c| c.lent.insert(id, buf));
}

/// System-managed Rx: copy into the buffer the framework attached (its VA extension and Capacity).
fn rx_copy_into_system_buffer(f: &mut NET_FRAGMENT, va: &NET_EXTENSION, fi: u32, piece: &[u8]) {
    // SAFETY: the extension holds one pointer per fragment index.
    let base = unsafe { ext_slot(va, fi).read() } as *mut u8;
    let len = piece.len().min(usize::try_from(f.capacity()).unwrap_or(0));
    // SAFETY: the framework's buffer holds Capacity bytes; `len` is clamped to it; no overlap.
    unsafe { std::ptr::copy_nonoverlapping(piece.as_ptr(), base, len) };
    f.set_offset(0);
    f.set_valid_length(len as u64);
    if commit(Bug::ChangesSystemCapacity) {
        f.set_capacity(f.capacity() - 1);
    }
}

unsafe extern "system" fn rx_set_notification(queue: NETPACKETQUEUE, enabled: BOOLEAN) {
    let pending = with(|c| {
        c.rx_notification = enabled != 0;
        enabled != 0 && !c.loopback.is_empty()
    });
    if pending {
        // SAFETY: our live queue; notification was just enabled.
        unsafe { netcx::notify(Direction::Rx, queue) };
    }
}

unsafe extern "system" fn rx_cancel(_queue: NETPACKETQUEUE) {
    event("RxCancel");
    with(|c| {
        c.rx_cancelled = true;
        c.loopback.clear();
    });
}

unsafe extern "system" fn return_rx_buffer(
    _adapter: NETADAPTER,
    context: NET_FRAGMENT_RETURN_CONTEXT_HANDLE,
) {
    let id = context as usize;
    with(|c| {
        if c.lent.remove(&id).is_some() {
            c.returns += 1;
        } else {
            c.bad_returns += 1;
        }
    });
}

/// An IPv4 packet of `len` bytes (at least 20) with `seq` in its identification field.
pub fn ipv4_packet(seq: u16, len: usize) -> Vec<u8> {
    let len = len.max(20);
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    p[4..6].copy_from_slice(&seq.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    for (i, b) in p.iter_mut().enumerate().skip(20) {
        *b = (i as u8) ^ (seq as u8);
    }
    p
}

/// An IPv6 packet of `len` bytes (at least 40).
pub fn ipv6_packet(seq: u16, len: usize) -> Vec<u8> {
    let len = len.max(40);
    let mut p = vec![0u8; len];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&u16::try_from(len - 40).unwrap_or(u16::MAX).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..10].copy_from_slice(&seq.to_be_bytes());
    p
}
