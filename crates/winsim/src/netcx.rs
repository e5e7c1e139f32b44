//! NetAdapterCx 2.2 as far as a client uses it: the class binding (`WdfVersionBindClass`), the KMDF
//! device DDIs it needs (`WdfDeviceCreate`, object contexts), a PnP "device arrives" path that calls
//! `EvtDriverDeviceAdd`, adapters, Tx/Rx packet queues with packet and fragment rings and their fragment
//! extensions, notification, cancel and stop; a simulated IP stack above the adapter; and the
//! NetAdapterCx verifier's ring rules, checked around every `EvtPacketQueueAdvance`.
//!
//! The verifier follows microsoft/Network-Adapter-Class-Extension `netcx/adapter/nxqueueverifier.cpp`
//! (`NxQueueVerifier::PreAdvance`: poison the Rx fields the client must write — FragmentIndex,
//! FragmentCount, Layout, and ValidLength/Offset (and Capacity under driver attachment) — snapshot both
//! rings, and raise to DISPATCH_LEVEL on every other advance; `PostAdvance`: compare) and
//! `netcx/adapter/verifier.cpp` (the individual checks; each rule cites its failure code).
//!
//! Ring ownership (NET_RING docs, `net/ring.h`): the client owns `[BeginIndex, EndIndex)`; the framework
//! posts by moving `EndIndex`, the client returns by moving `BeginIndex`; `NextIndex` and `Scratch` are
//! the client's. Handles are addresses of simulation-owned allocations; every DDI validates them.
//!
//! Locking: one mutex over the simulation's state, never held across a call into the driver.
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;

use kernel::ffi::mdl::MDL;
use kernel::ffi::netcx::*;
use kernel::ffi::ntos::{
    BOOLEAN, DISPATCH_LEVEL, KIRQL, NTSTATUS, NT_SUCCESS, PASSIVE_LEVEL, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED, STATUS_SUCCESS,
};
use kernel::ffi::ntos::{STATUS_OBJECT_NAME_COLLISION, UNICODE_STRING};
use kernel::ffi::oid::GUID;
use kernel::ffi::wdf::{
    WdfDeviceCreateDeviceInterfaceTableIndex, WdfDeviceCreateSymbolicLinkTableIndex,
    WdfDeviceInitSetPnpPowerEventCallbacksTableIndex, WdfPowerDeviceD3Final, WDF_PNPPOWER_EVENT_CALLBACKS,
};
use kernel::ffi::wdf::{
    WdfDeviceCreateTableIndex, WdfObjectGetTypedContextWorkerTableIndex, PWDFDEVICE_INIT, WDFDEVICE, WDFFUNC,
    WDFOBJECT, WDF_BIND_INFO, WDF_CLASS_BIND_INFO, WDF_DRIVER_GLOBALS, WDF_OBJECT_ATTRIBUTES,
    WDF_OBJECT_CONTEXT_TYPE_INFO,
};

use crate::context::{as_system, call_driver, current_driver, irql, require_irql_at_most, DriverId};
use crate::verifier::{violation, Rule};

include!(concat!(env!("OUT_DIR"), "/netcx_stubs.rs"));

/// Packets per queue's packet ring and fragments per fragment ring (powers of two).
pub const PACKET_RING_SIZE: u32 = 32;
pub const FRAGMENT_RING_SIZE: u32 = 64;
/// Advances the framework allows a cancelled queue to drain its rings in.
pub const CANCEL_DRAIN_BUDGET: u32 = 16;
/// Rounds of advances one [`pump`] runs at most.
const PUMP_ROUNDS: u32 = 64;
/// Poison written into the Rx fields the client must fill (`NxQueueVerifier::PreAdvance`): every
/// length and type field at its maximum, `Reserved0` zero.
const POISON_LAYOUT: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];
/// Bytes of each Rx buffer the framework allocates under system allocation.
pub const SYSTEM_RX_BUFFER_SIZE: usize = 2048;

const DDI_NAMES: &[(usize, &str)] = &[
    (NetAdapterInitAllocateTableIndex, "NetAdapterInitAllocate"),
    (NetAdapterInitFreeTableIndex, "NetAdapterInitFree"),
    (NetAdapterCreateTableIndex, "NetAdapterCreate"),
    (NetAdapterStartTableIndex, "NetAdapterStart"),
    (NetAdapterStopTableIndex, "NetAdapterStop"),
    (NetAdapterGetNetLuidTableIndex, "NetAdapterGetNetLuid"),
    (NetAdapterOpenConfigurationTableIndex, "NetAdapterOpenConfiguration"),
    (NetAdapterSetPermanentLinkLayerAddressTableIndex, "NetAdapterSetPermanentLinkLayerAddress"),
    (NetAdapterSetCurrentLinkLayerAddressTableIndex, "NetAdapterSetCurrentLinkLayerAddress"),
    (NetAdapterInitGetCreatedAdapterTableIndex, "NetAdapterInitGetCreatedAdapter"),
    (NetAdapterGetLinkLayerMtuSizeTableIndex, "NetAdapterGetLinkLayerMtuSize"),
    (NetRxQueueInitGetQueueIdTableIndex, "NetRxQueueInitGetQueueId"),
    (NetTxQueueInitGetQueueIdTableIndex, "NetTxQueueInitGetQueueId"),
];

/// A class table slot no simulation implements: the machine stops, naming the DDI.
pub(crate) fn not_simulated(slot: usize) -> ! {
    let name = DDI_NAMES.iter().find(|(i, _)| *i == slot).map_or("?", |(_, n)| n);
    crate::debug::stop_machine(
        Rule::NotSimulated,
        &format!("NetAdapterCx DDI NetFunctions[{slot}] ({name}) is not simulated"),
    )
}

// ---------------------------------------------------------------------------------------------
// Rings
// ---------------------------------------------------------------------------------------------

/// A NET_RING and its elements in one cache-aligned allocation.
struct Ring {
    ptr: *mut NET_RING,
    layout: Layout,
    stride: usize,
    count: u32,
}

impl Ring {
    fn new(count: u32, stride: usize) -> Ring {
        let size = NET_RING_BUFFER_OFFSET + count as usize * stride;
        let layout = Layout::from_size_align(size, 64).expect("ring layout is valid");
        // SAFETY: nonzero size.
        let ptr = unsafe { alloc_zeroed(layout) }.cast::<NET_RING>();
        assert!(!ptr.is_null(), "host allocation failed");
        let ring = Ring { ptr, layout, stride, count };
        let h = ring.hdr();
        h.ElementStride = u16::try_from(stride).unwrap_or(0);
        h.NumberOfElements = count;
        h.ElementIndexMask = count - 1;
        ring
    }
    /// The header. The simulation is single-threaded around ring accesses (the state lock or the
    /// driver call in progress), so the reference is never aliased across a write.
    #[allow(clippy::mut_from_ref)]
    fn hdr(&self) -> &mut NET_RING {
        // SAFETY: `ptr` is a live, aligned ring allocation owned by this value.
        unsafe { &mut *self.ptr }
    }
    fn elem(&self, index: u32) -> *mut u8 {
        self.ptr
            .cast::<u8>()
            .wrapping_add(NET_RING_BUFFER_OFFSET + (index & (self.count - 1)) as usize * self.stride)
    }
    fn packet(&self, index: u32) -> NET_PACKET {
        // SAFETY: the element lies inside the allocation (index masked); unaligned read is always valid.
        unsafe { self.elem(index).cast::<NET_PACKET>().read_unaligned() }
    }
    fn set_packet(&self, index: u32, p: NET_PACKET) {
        // SAFETY: as in `packet`.
        unsafe { self.elem(index).cast::<NET_PACKET>().write_unaligned(p) }
    }
    fn fragment(&self, index: u32) -> NET_FRAGMENT {
        // SAFETY: as in `packet`.
        unsafe { self.elem(index).cast::<NET_FRAGMENT>().read_unaligned() }
    }
    fn set_fragment(&self, index: u32, f: NET_FRAGMENT) {
        // SAFETY: as in `packet`.
        unsafe { self.elem(index).cast::<NET_FRAGMENT>().write_unaligned(f) }
    }
    fn bytes(&self) -> Vec<u8> {
        // SAFETY: the allocation holds `layout.size()` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.layout.size()) }.to_vec()
    }
    fn element_bytes(&self, index: u32) -> &[u8] {
        // SAFETY: the element lies inside the allocation.
        unsafe { std::slice::from_raw_parts(self.elem(index), self.stride) }
    }
    fn restore_element(&self, index: u32, from: &[u8]) {
        let at = NET_RING_BUFFER_OFFSET + (index & (self.count - 1)) as usize * self.stride;
        let src = &from[at..at + self.stride];
        // SAFETY: the element lies inside the allocation; `src` is a separate Vec.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.elem(index), self.stride) };
    }
    fn mask(&self) -> u32 {
        self.count - 1
    }
    /// Elements in `[start, end)`.
    fn range(&self, start: u32, end: u32) -> u32 {
        end.wrapping_sub(start) & self.mask()
    }
    /// Whether `i` lies in `[start, end)`.
    fn in_range(&self, i: u32, start: u32, end: u32) -> bool {
        self.range(start, i) < self.range(start, end)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr.cast(), self.layout) };
    }
}

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Tx,
    Rx,
}

/// What the stack posted on a Tx fragment (the simulation owns the buffer until the fragment is
/// returned).
struct TxBuffer {
    data: Vec<u8>,
    mdl: *mut MDL,
    /// The bench profile's stack owns the buffer and its MDL and posts them again
    /// ([`crate::bench::TxBatch`]): retiring the fragment frees neither.
    kept: bool,
}

struct Queue {
    driver: DriverId,
    adapter: usize,
    dir: Dir,
    config: NET_PACKET_QUEUE_CONFIG,
    collection: Box<NET_RING_COLLECTION>,
    pr: Ring,
    fr: Ring,
    /// Fragment extensions, one 8-byte element per fragment index.
    ext_va: Box<[usize]>,
    ext_mdl: Box<[usize]>,
    ext_rc: Box<[usize]>,
    /// The framework's Rx buffers under system allocation (indexed like the fragments).
    _rx_system: Vec<Box<[u8]>>,
    tx_buffers: Vec<Option<TxBuffer>>,
    notification_enabled: bool,
    disable_pending: bool,
    notified: bool,
    toggle: u32,
    cancelled: bool,
    /// Next Rx element not yet poisoned (`m_verifiedPacketIndex`/`m_verifiedFragmentIndex`).
    poisoned_p: u32,
    poisoned_f: u32,
    _token: Box<u64>,
}

/// Counters of one adapter's data path, as the stack above sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub tx_posted: u64,
    pub tx_completed: u64,
    pub rx_indicated: u64,
    pub rx_ignored: u64,
    pub rx_malformed: u64,
    pub rx_fragments: u64,
    pub returns: u64,
    pub advances: u64,
    pub dispatch_advances: u64,
}

struct Adapter {
    driver: DriverId,
    _device: usize,
    callbacks: Option<NET_ADAPTER_DATAPATH_CALLBACKS>,
    tx_caps: Option<NET_ADAPTER_TX_CAPABILITIES>,
    rx_caps: Option<NET_ADAPTER_RX_CAPABILITIES>,
    link_caps: Option<NET_ADAPTER_LINK_LAYER_CAPABILITIES>,
    mtu: u32,
    link: Option<NET_ADAPTER_LINK_STATE>,
    started: bool,
    tx: Option<usize>,
    rx: Option<usize>,
    /// Return contexts of delivered Rx fragments the stack still holds.
    held: Vec<usize>,
    counters: Counters,
    cleanup: Option<unsafe extern "system" fn(WDFOBJECT)>,
    _token: Box<u64>,
}

struct Device {
    driver: DriverId,
    pnp: Option<WDF_PNPPOWER_EVENT_CALLBACKS>,
    links: Vec<String>,
    interfaces: Vec<GUID>,
    adapters: Vec<usize>,
    cleanup: Option<unsafe extern "system" fn(WDFOBJECT)>,
    _token: Box<u64>,
}

struct DeviceInit {
    driver: DriverId,
    configured: bool,
    pnp: Option<WDF_PNPPOWER_EVENT_CALLBACKS>,
    _token: Box<u64>,
}

struct AdapterInit {
    device: usize,
    callbacks: Option<NET_ADAPTER_DATAPATH_CALLBACKS>,
    used: bool,
    _token: Box<u64>,
}

struct QueueInit {
    adapter: usize,
    dir: Dir,
    created: Option<usize>,
    _token: Box<u64>,
}

struct ClassBinding {
    owner: DriverId,
    globals: Box<NET_DRIVER_GLOBALS>,
    _table: Box<[NETFUNC]>,
}

#[derive(Default)]
struct State {
    bindings: BTreeMap<usize, ClassBinding>,
    device_inits: BTreeMap<usize, DeviceInit>,
    devices: BTreeMap<usize, Device>,
    adapter_inits: BTreeMap<usize, AdapterInit>,
    adapters: BTreeMap<usize, Adapter>,
    queue_inits: BTreeMap<usize, QueueInit>,
    queues: BTreeMap<usize, Queue>,
    /// Object contexts: (object, context type) -> zeroed storage.
    contexts: rustc_hash::FxHashMap<(usize, usize), Box<[u64]>>,
    received: Vec<Vec<u8>>,
    hold_returns: bool,
}

// SAFETY: the raw pointers inside are simulation-owned allocations handed to drivers; the simulation
// accesses them only under this lock or on the thread running the driver call.
unsafe impl Send for State {}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = crate::lock(&STATE);
    f(guard.get_or_insert_with(State::default))
}

fn token() -> Box<u64> {
    Box::new(0)
}

fn key(token: &u64) -> usize {
    std::ptr::from_ref(token) as usize
}

pub(crate) fn reset() {
    let old = crate::lock(&STATE).take();
    drop(old);
}

/// Called when `driver` unloads: a class binding still in place is a [`Rule::WdfStillBound`]
/// violation; devices still present are removed first (PnP removes a driver's devices before it can
/// unload).
pub(crate) fn check_unload(driver: DriverId) {
    let devices: Vec<usize> =
        with(|s| s.devices.iter().filter(|(_, d)| d.driver == driver).map(|(&k, _)| k).collect());
    for d in devices {
        device_remove(d);
    }
    let stale = with(|s| {
        let keys: Vec<usize> =
            s.bindings.iter().filter(|(_, b)| b.owner == driver).map(|(&k, _)| k).collect();
        for k in &keys {
            s.bindings.remove(k);
        }
        s.device_inits.retain(|_, i| i.driver != driver);
        keys.len()
    });
    if stale > 0 {
        violation(Rule::WdfStillBound, "driver unloaded without WdfVersionUnbindClass (NetAdapterCx)");
    }
}

fn globals_owner(globals: *mut NET_DRIVER_GLOBALS) -> Option<DriverId> {
    let owner =
        with(|s| s.bindings.values().find(|b| std::ptr::eq(&raw const *b.globals, globals)).map(|b| b.owner));
    if owner.is_none() {
        violation(
            Rule::WdfStillBound,
            format!("NetAdapterCx DDI with globals {globals:p} NetAdapterCx did not hand out"),
        );
    }
    owner
}

fn bad_handle(ddi: &str, what: &str, handle: *const c_void) {
    violation(Rule::NetcxObjectState, format!("{ddi}({handle:p}): not a live {what}"));
}

// ---------------------------------------------------------------------------------------------
// Class binding (wdfldr.sys)
// ---------------------------------------------------------------------------------------------

macro_rules! slot {
    ($table:expr, $index:expr, $f:expr, $ty:ty) => {
        // SAFETY: `$f` has the prototype of the slot's PFN (netfuncenum.h / the DDI's header), which the
        // client casts the entry back to.
        $table[$index] = Some(unsafe { std::mem::transmute::<$ty, unsafe extern "system" fn()>($f) });
    };
}

fn class_table() -> Box<[NETFUNC]> {
    let mut t: Vec<NETFUNC> = NETCX_STUBS.iter().map(|&s| Some(s)).collect();
    slot!(t, NetDeviceInitConfigTableIndex, NetDeviceInitConfig, PFN_NETDEVICEINITCONFIG);
    slot!(t, NetAdapterInitAllocateTableIndex, NetAdapterInitAllocate, PFN_NETADAPTERINITALLOCATE);
    slot!(t, NetAdapterInitFreeTableIndex, NetAdapterInitFree, PFN_NETADAPTERINITFREE);
    slot!(
        t,
        NetAdapterInitSetDatapathCallbacksTableIndex,
        NetAdapterInitSetDatapathCallbacks,
        PFN_NETADAPTERINITSETDATAPATHCALLBACKS
    );
    slot!(t, NetAdapterCreateTableIndex, NetAdapterCreate, PFN_NETADAPTERCREATE);
    slot!(t, NetAdapterStartTableIndex, NetAdapterStart, PFN_NETADAPTERSTART);
    slot!(t, NetAdapterStopTableIndex, NetAdapterStop, PFN_NETADAPTERSTOP);
    slot!(
        t,
        NetAdapterSetLinkLayerCapabilitiesTableIndex,
        NetAdapterSetLinkLayerCapabilities,
        PFN_NETADAPTERSETLINKLAYERCAPABILITIES
    );
    slot!(
        t,
        NetAdapterSetLinkLayerMtuSizeTableIndex,
        NetAdapterSetLinkLayerMtuSize,
        PFN_NETADAPTERSETLINKLAYERMTUSIZE
    );
    slot!(
        t,
        NetAdapterSetDataPathCapabilitiesTableIndex,
        NetAdapterSetDataPathCapabilities,
        PFN_NETADAPTERSETDATAPATHCAPABILITIES
    );
    slot!(t, NetAdapterSetLinkStateTableIndex, NetAdapterSetLinkState, PFN_NETADAPTERSETLINKSTATE);
    slot!(t, NetTxQueueCreateTableIndex, NetTxQueueCreate, PFN_NETTXQUEUECREATE);
    slot!(t, NetRxQueueCreateTableIndex, NetRxQueueCreate, PFN_NETRXQUEUECREATE);
    slot!(
        t,
        NetTxQueueGetRingCollectionTableIndex,
        NetTxQueueGetRingCollection,
        PFN_NETQUEUEGETRINGCOLLECTION
    );
    slot!(
        t,
        NetRxQueueGetRingCollectionTableIndex,
        NetRxQueueGetRingCollection,
        PFN_NETQUEUEGETRINGCOLLECTION
    );
    slot!(t, NetTxQueueGetExtensionTableIndex, NetTxQueueGetExtension, PFN_NETQUEUEGETEXTENSION);
    slot!(t, NetRxQueueGetExtensionTableIndex, NetRxQueueGetExtension, PFN_NETQUEUEGETEXTENSION);
    slot!(
        t,
        NetTxQueueNotifyMoreCompletedPacketsAvailableTableIndex,
        NetTxQueueNotifyMoreCompletedPacketsAvailable,
        PFN_NETQUEUENOTIFY
    );
    slot!(
        t,
        NetRxQueueNotifyMoreReceivedPacketsAvailableTableIndex,
        NetRxQueueNotifyMoreReceivedPacketsAvailable,
        PFN_NETQUEUENOTIFY
    );
    t.into_boxed_slice()
}

/// Installs the KMDF slots this module implements into a client's KMDF table.
pub(crate) fn install_kmdf(table: &mut [WDFFUNC]) {
    type DeviceCreate = unsafe extern "system" fn(
        *mut WDF_DRIVER_GLOBALS,
        *mut PWDFDEVICE_INIT,
        *mut WDF_OBJECT_ATTRIBUTES,
        *mut WDFDEVICE,
    ) -> NTSTATUS;
    type GetContext = unsafe extern "system" fn(
        *mut WDF_DRIVER_GLOBALS,
        WDFOBJECT,
        *const WDF_OBJECT_CONTEXT_TYPE_INFO,
    ) -> *mut c_void;
    slot!(table, WdfDeviceCreateTableIndex, WdfDeviceCreate, DeviceCreate);
    slot!(table, WdfObjectGetTypedContextWorkerTableIndex, WdfObjectGetTypedContextWorker, GetContext);
    type SetPnp = unsafe extern "system" fn(
        *mut WDF_DRIVER_GLOBALS,
        PWDFDEVICE_INIT,
        *mut WDF_PNPPOWER_EVENT_CALLBACKS,
    );
    type CreateInterface = unsafe extern "system" fn(
        *mut WDF_DRIVER_GLOBALS,
        WDFDEVICE,
        *const GUID,
        *const UNICODE_STRING,
    ) -> NTSTATUS;
    type CreateLink =
        unsafe extern "system" fn(*mut WDF_DRIVER_GLOBALS, WDFDEVICE, *const UNICODE_STRING) -> NTSTATUS;
    slot!(
        table,
        WdfDeviceInitSetPnpPowerEventCallbacksTableIndex,
        WdfDeviceInitSetPnpPowerEventCallbacks,
        SetPnp
    );
    slot!(table, WdfDeviceCreateDeviceInterfaceTableIndex, WdfDeviceCreateDeviceInterface, CreateInterface);
    slot!(table, WdfDeviceCreateSymbolicLinkTableIndex, WdfDeviceCreateSymbolicLink, CreateLink);
}

fn wide_eq(p: *const u16, expected: &[u16]) -> bool {
    if p.is_null() {
        return false;
    }
    for (i, &e) in expected.iter().enumerate() {
        // SAFETY: the caller's string is NUL-terminated; we stop at the first mismatch or NUL.
        let c = unsafe { p.wrapping_add(i).read() };
        if c != e {
            return false;
        }
        if c == 0 {
            return true;
        }
    }
    true
}

/// `WdfVersionBindClass` (wdfldr.sys). PASSIVE_LEVEL. Binds class `NetAdapterCx` 2.0–2.2 as
/// `NetAdapterCxBindClient` does (Network-Adapter-Class-Extension `netcx/adapter/version.cpp`): copies
/// `FunctionTableCount` entries into the client's `FunctionTable` array and stores the client's
/// `NET_DRIVER_GLOBALS*` through `ClassBindInfo`.
///
/// # Safety
/// Pointers as the loader requires.
#[no_mangle]
pub unsafe extern "system" fn WdfVersionBindClass(
    _bind_info: *mut WDF_BIND_INFO,
    globals: *mut WDF_DRIVER_GLOBALS,
    class_bind_info: *mut WDF_CLASS_BIND_INFO,
) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "WdfVersionBindClass");
    if !crate::wdf::is_bound(globals) {
        violation(Rule::WdfStillBound, "WdfVersionBindClass with globals WdfVersionBind did not return");
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller passes a valid class bind info.
    let Some(info) = (unsafe { class_bind_info.as_mut() }) else { return STATUS_INVALID_PARAMETER };
    if info.Size as usize != std::mem::size_of::<WDF_CLASS_BIND_INFO>()
        || info.FunctionTable.is_null()
        || info.ClassBindInfo.is_null()
    {
        return STATUS_INVALID_PARAMETER;
    }
    if !wide_eq(info.ClassName, &NETADAPTERCX_CLASS_NAME) {
        return STATUS_NOT_SUPPORTED;
    }
    if info.Version.Major != 2 || info.Version.Minor > NETCX_ADAPTER_MINOR_VERSION || info.Version.Build != 0
    {
        return STATUS_NOT_SUPPORTED;
    }
    let count = info.FunctionTableCount as usize;
    if count == 0 || count > NetFunctionTableNumEntries as usize {
        return STATUS_INVALID_PARAMETER;
    }
    let Some(owner) = current_driver() else { return STATUS_INVALID_DEVICE_STATE };
    let table = class_table();
    let dst = info.FunctionTable.cast::<NETFUNC>();
    // SAFETY: the client's array holds FunctionTableCount entries (class binding contract); `table`
    // holds at least that many; the two do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(table.as_ptr(), dst, count) };
    let mut public = Box::new(NET_DRIVER_GLOBALS { Unused: 0 });
    let public_ptr: *mut NET_DRIVER_GLOBALS = &raw mut *public;
    // SAFETY: ClassBindInfo is the address of the client's NetDriverGlobals variable.
    unsafe { info.ClassBindInfo.cast::<*mut NET_DRIVER_GLOBALS>().write(public_ptr) };
    with(|s| s.bindings.insert(public_ptr as usize, ClassBinding { owner, globals: public, _table: table }));
    STATUS_SUCCESS
}

/// `WdfVersionUnbindClass` (wdfldr.sys). PASSIVE_LEVEL.
///
/// # Safety
/// `class_bind_info` is the structure the bind used.
#[no_mangle]
pub unsafe extern "system" fn WdfVersionUnbindClass(
    _bind_info: *mut WDF_BIND_INFO,
    _globals: *mut WDF_DRIVER_GLOBALS,
    class_bind_info: *mut WDF_CLASS_BIND_INFO,
) {
    require_irql_at_most(PASSIVE_LEVEL, "WdfVersionUnbindClass");
    // SAFETY: the caller passes the bind's structure.
    let Some(info) = (unsafe { class_bind_info.as_mut() }) else { return };
    if info.ClassBindInfo.is_null() {
        return;
    }
    // SAFETY: ClassBindInfo is the address of the client's NetDriverGlobals variable.
    let public = unsafe { info.ClassBindInfo.cast::<*mut NET_DRIVER_GLOBALS>().read() };
    let removed = with(|s| s.bindings.remove(&(public as usize)));
    if removed.is_none() {
        violation(Rule::WdfStillBound, "WdfVersionUnbindClass without WdfVersionBindClass");
        return;
    }
    // SAFETY: as above.
    unsafe { info.ClassBindInfo.cast::<*mut NET_DRIVER_GLOBALS>().write(std::ptr::null_mut()) };
}

// ---------------------------------------------------------------------------------------------
// KMDF: devices and contexts
// ---------------------------------------------------------------------------------------------

/// Reads the attributes' context request and cleanup callback.
fn attributes(
    attrs: *mut WDF_OBJECT_ATTRIBUTES,
) -> (Option<(usize, usize)>, Option<unsafe extern "system" fn(WDFOBJECT)>) {
    // SAFETY: null or the caller's valid attributes.
    let Some(a) = (unsafe { attrs.as_ref() }) else { return (None, None) };
    if a.ContextTypeInfo.is_null() {
        return (None, a.EvtCleanupCallback);
    }
    // SAFETY: a non-null ContextTypeInfo points at the driver's static type info.
    let info = unsafe { &*a.ContextTypeInfo };
    let size =
        if a.ContextSizeOverride > info.ContextSize { a.ContextSizeOverride } else { info.ContextSize };
    let unique =
        if info.UniqueType.is_null() { a.ContextTypeInfo as usize } else { info.UniqueType as usize };
    (Some((unique, size)), a.EvtCleanupCallback)
}

fn add_context(s: &mut State, object: usize, request: Option<(usize, usize)>) {
    if let Some((ty, size)) = request {
        s.contexts.insert((object, ty), vec![0u64; size.div_ceil(8).max(1)].into_boxed_slice());
    }
}

unsafe extern "system" fn WdfDeviceCreate(
    globals: *mut WDF_DRIVER_GLOBALS,
    device_init: *mut PWDFDEVICE_INIT,
    attrs: *mut WDF_OBJECT_ATTRIBUTES,
    device_out: *mut WDFDEVICE,
) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "WdfDeviceCreate");
    if !crate::wdf::is_bound(globals) {
        violation(Rule::WdfStillBound, "WdfDeviceCreate with foreign globals");
        return STATUS_INVALID_PARAMETER;
    }
    if device_init.is_null() || device_out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller passes the address of its PWDFDEVICE_INIT.
    let init = unsafe { device_init.read() };
    let (ctx, cleanup) = attributes(attrs);
    let created = with(|s| {
        let Some(i) = s.device_inits.remove(&(init as usize)) else { return Err(()) };
        let t = token();
        let k = key(&t);
        add_context(s, k, ctx);
        s.devices.insert(
            k,
            Device {
                driver: i.driver,
                pnp: i.pnp,
                links: Vec::new(),
                interfaces: Vec::new(),
                adapters: Vec::new(),
                cleanup,
                _token: t,
            },
        );
        Ok((k, i.configured, i.driver))
    });
    let Ok((device, _configured, driver)) = created else {
        bad_handle("WdfDeviceCreate", "WDFDEVICE_INIT", init);
        return STATUS_INVALID_PARAMETER;
    };
    crate::wdfio::device_created(init as usize, device, driver);
    // SAFETY: out pointers valid (checked non-null; caller contract). The framework now owns the init.
    unsafe { device_init.write(std::ptr::null_mut()) };
    // SAFETY: as above.
    unsafe { device_out.write(device as WDFDEVICE) };
    STATUS_SUCCESS
}

unsafe extern "system" fn WdfDeviceInitSetPnpPowerEventCallbacks(
    _globals: *mut WDF_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
    callbacks: *mut WDF_PNPPOWER_EVENT_CALLBACKS,
) {
    require_irql_at_most(PASSIVE_LEVEL, "WdfDeviceInitSetPnpPowerEventCallbacks");
    // SAFETY: null or the caller's structure.
    let Some(cb) = (unsafe { callbacks.as_ref() }).copied() else { return };
    if cb.Size as usize != std::mem::size_of::<WDF_PNPPOWER_EVENT_CALLBACKS>() {
        violation(Rule::NetcxCapabilities, format!("WDF_PNPPOWER_EVENT_CALLBACKS.Size {}", cb.Size));
        return;
    }
    if with(|s| s.device_inits.get_mut(&(init as usize)).map(|i| i.pnp = Some(cb))).is_none() {
        bad_handle("WdfDeviceInitSetPnpPowerEventCallbacks", "WDFDEVICE_INIT", init);
    }
}

/// `WdfDeviceCreateSymbolicLink`: records the name (a `\DosDevices\` or `\??\` path), unique machine
/// wide (`STATUS_OBJECT_NAME_COLLISION` otherwise, as `IoCreateSymbolicLink`). The link goes with the
/// device. PASSIVE_LEVEL.
unsafe extern "system" fn WdfDeviceCreateSymbolicLink(
    _globals: *mut WDF_DRIVER_GLOBALS,
    device: WDFDEVICE,
    name: *const UNICODE_STRING,
) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "WdfDeviceCreateSymbolicLink");
    // SAFETY: null or the caller's valid string.
    let Some(name) = (unsafe { crate::read_unicode(name) }) else { return STATUS_INVALID_PARAMETER };
    let rest = name.strip_prefix("\\DosDevices\\").or_else(|| name.strip_prefix("\\??\\"));
    if rest.is_none_or(|r| r.is_empty() || r.contains('\\')) {
        return STATUS_INVALID_PARAMETER;
    }
    let r = with(|s| {
        if s.devices.values().any(|d| d.links.iter().any(|l| l.eq_ignore_ascii_case(&name))) {
            return Some(STATUS_OBJECT_NAME_COLLISION);
        }
        s.devices.get_mut(&(device as usize)).map(|d| {
            d.links.push(name.clone());
            STATUS_SUCCESS
        })
    });
    if r == Some(STATUS_SUCCESS) {
        // The framework's I/O dispatch for the device (crate::wdfio); a name the I/O manager already
        // has (an NDIS control device) collides there.
        let status = crate::wdfio::link_created(device as usize, &name);
        if status != STATUS_SUCCESS {
            with(|s| s.devices.get_mut(&(device as usize)).map(|d| d.links.retain(|l| *l != name)));
            return status;
        }
    }
    r.unwrap_or_else(|| {
        bad_handle("WdfDeviceCreateSymbolicLink", "WDFDEVICE", device);
        STATUS_INVALID_PARAMETER
    })
}

/// `WdfDeviceCreateDeviceInterface`: records the interface class (enabled while the device exists).
/// PASSIVE_LEVEL.
unsafe extern "system" fn WdfDeviceCreateDeviceInterface(
    _globals: *mut WDF_DRIVER_GLOBALS,
    device: WDFDEVICE,
    class: *const GUID,
    _reference: *const UNICODE_STRING,
) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "WdfDeviceCreateDeviceInterface");
    // SAFETY: null or the caller's GUID.
    let Some(class) = (unsafe { class.as_ref() }).copied() else { return STATUS_INVALID_PARAMETER };
    let r = with(|s| s.devices.get_mut(&(device as usize)).map(|d| d.interfaces.push(class)));
    if r.is_none() {
        bad_handle("WdfDeviceCreateDeviceInterface", "WDFDEVICE", device);
        return STATUS_INVALID_PARAMETER;
    }
    STATUS_SUCCESS
}

/// The symbolic links and interface classes of `device`.
pub fn device_names(device: usize) -> (Vec<String>, Vec<GUID>) {
    with(|s| s.devices.get(&device).map(|d| (d.links.clone(), d.interfaces.clone())).unwrap_or_default())
}

unsafe extern "system" fn WdfObjectGetTypedContextWorker(
    _globals: *mut WDF_DRIVER_GLOBALS,
    object: WDFOBJECT,
    type_info: *const WDF_OBJECT_CONTEXT_TYPE_INFO,
) -> *mut c_void {
    if type_info.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the driver's static type info.
    let unique = unsafe { (*type_info).UniqueType };
    let ty = if unique.is_null() { type_info as usize } else { unique as usize };
    with(|s| {
        s.contexts.get_mut(&(object as usize, ty)).map_or(std::ptr::null_mut(), |c| c.as_mut_ptr().cast())
    })
}

// ---------------------------------------------------------------------------------------------
// PnP: device arrival and removal
// ---------------------------------------------------------------------------------------------

/// A fresh `WDFDEVICE_INIT` of `driver` outside PnP (`WdfControlDeviceInitAllocate`, crate::wdfio).
pub(crate) fn new_device_init(driver: DriverId) -> usize {
    let t = token();
    let init = key(&t);
    with(|s| s.device_inits.insert(init, DeviceInit { driver, configured: false, pnp: None, _token: t }));
    init
}

/// Frees an init `WdfDeviceCreate` did not take (`WdfDeviceInitFree`); false if it is not one.
pub(crate) fn free_device_init(init: usize) -> bool {
    with(|s| s.device_inits.remove(&init)).is_some()
}

/// Whether `object` is a live WDFDEVICE (for `WdfObjectDelete`, crate::wdfio).
pub(crate) fn is_device(object: usize) -> bool {
    with(|s| s.devices.contains_key(&object))
}

/// PnP reports a device for `driver`: the framework builds a WDFDEVICE_INIT and calls the driver's
/// `EvtDriverDeviceAdd` at PASSIVE_LEVEL. Returns the WDFDEVICE it created.
pub fn device_arrives(driver: DriverId) -> Result<usize, NTSTATUS> {
    let Some((add, wdfdriver)) = crate::wdf::device_add_for(driver) else {
        return Err(STATUS_INVALID_DEVICE_STATE);
    };
    let t = token();
    let init = key(&t);
    with(|s| s.device_inits.insert(init, DeviceInit { driver, configured: false, pnp: None, _token: t }));
    let before: Vec<usize> = with(|s| s.devices.keys().copied().collect());
    // SAFETY: the driver's registered callback with its WDFDRIVER and a live init.
    let status = call_driver(driver, PASSIVE_LEVEL, "EvtDriverDeviceAdd", || unsafe {
        add(wdfdriver, init as PWDFDEVICE_INIT)
    });
    // An init WdfDeviceCreate did not take is the framework's to free.
    with(|s| s.device_inits.remove(&init));
    crate::wdfio::init_freed(init);
    let new: Vec<usize> = with(|s| s.devices.keys().copied().filter(|k| !before.contains(k)).collect());
    if !NT_SUCCESS(status) {
        for d in new {
            device_remove(d);
        }
        return Err(status);
    }
    let device = new.first().copied().ok_or(STATUS_INVALID_DEVICE_STATE)?;
    // Start the device: EvtDevicePrepareHardware, then EvtDeviceD0Entry from D3Final (the KMDF PnP/power
    // start sequence). A failure removes the device again, undoing only what succeeded.
    let Some(cb) = with(|s| s.devices.get(&device).and_then(|d| d.pnp)) else { return Ok(device) };
    let mut status = STATUS_SUCCESS;
    if let Some(f) = cb.EvtDevicePrepareHardware {
        status = call_driver(driver, PASSIVE_LEVEL, "EvtDevicePrepareHardware", || {
            // SAFETY: the driver's callback with its device (no resources: a software device).
            unsafe { f(device as WDFDEVICE, std::ptr::null_mut(), std::ptr::null_mut()) }
        });
    }
    if !NT_SUCCESS(status) {
        with(|s| s.devices.get_mut(&device).map(|d| d.pnp = None));
        device_remove(device);
        return Err(status);
    }
    if let Some(f) = cb.EvtDeviceD0Entry {
        status = call_driver(driver, PASSIVE_LEVEL, "EvtDeviceD0Entry", || {
            // SAFETY: as above.
            unsafe { f(device as WDFDEVICE, WdfPowerDeviceD3Final) }
        });
    }
    if !NT_SUCCESS(status) {
        let without_d0_exit = WDF_PNPPOWER_EVENT_CALLBACKS { EvtDeviceD0Exit: None, ..cb };
        with(|s| s.devices.get_mut(&device).map(|d| d.pnp = Some(without_d0_exit)));
        device_remove(device);
        return Err(status);
    }
    Ok(device)
}

/// PnP removes a device: each started adapter's data path is stopped (cancel, drain, stop), adapters are
/// deleted, then the device (object cleanup callbacks run at PASSIVE_LEVEL).
pub fn device_remove(device: usize) {
    let Some((driver, adapters, cleanup, pnp)) =
        with(|s| s.devices.get(&device).map(|d| (d.driver, d.adapters.clone(), d.cleanup, d.pnp)))
    else {
        return;
    };
    for a in adapters {
        stop_datapath(a);
        stack_return_all(a);
        let cleanup = with(|s| s.adapters.remove(&a).and_then(|ad| ad.cleanup));
        if let Some(cb) = cleanup {
            // SAFETY: the driver's cleanup callback with the adapter it was registered for.
            call_driver(driver, PASSIVE_LEVEL, "EvtCleanupCallback(NETADAPTER)", || unsafe {
                cb(a as WDFOBJECT)
            });
        }
        with(|s| s.contexts.retain(|(o, _), _| *o != a));
    }
    // The data path is stopped; now the device leaves D0 for good and releases its hardware.
    if let Some(cb) = pnp {
        if let Some(f) = cb.EvtDeviceD0Exit {
            call_driver(driver, PASSIVE_LEVEL, "EvtDeviceD0Exit", || {
                // SAFETY: the driver's callback with its device.
                unsafe { f(device as WDFDEVICE, WdfPowerDeviceD3Final) }
            });
        }
        if let Some(f) = cb.EvtDeviceReleaseHardware {
            call_driver(driver, PASSIVE_LEVEL, "EvtDeviceReleaseHardware", || {
                // SAFETY: as above.
                unsafe { f(device as WDFDEVICE, std::ptr::null_mut()) }
            });
        }
    }
    // The framework purges the device's I/O queues and removes its symbolic link (crate::wdfio).
    crate::wdfio::device_removing(device);
    if let Some(cb) = cleanup {
        // SAFETY: as above, for the device.
        call_driver(driver, PASSIVE_LEVEL, "EvtCleanupCallback(WDFDEVICE)", || unsafe {
            cb(device as WDFOBJECT)
        });
    }
    crate::wdfio::device_removed(device);
    with(|s| {
        s.devices.remove(&device);
        s.contexts.retain(|(o, _), _| *o != device);
        s.adapter_inits.retain(|_, i| i.device != device);
    });
}

// ---------------------------------------------------------------------------------------------
// Adapter DDIs
// ---------------------------------------------------------------------------------------------

unsafe extern "system" fn NetDeviceInitConfig(
    globals: *mut NET_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "NetDeviceInitConfig");
    globals_owner(globals);
    let ok = with(|s| s.device_inits.get_mut(&(init as usize)).map(|i| i.configured = true).is_some());
    if ok {
        STATUS_SUCCESS
    } else {
        bad_handle("NetDeviceInitConfig", "WDFDEVICE_INIT", init);
        STATUS_INVALID_PARAMETER
    }
}

unsafe extern "system" fn NetAdapterInitAllocate(
    globals: *mut NET_DRIVER_GLOBALS,
    device: WDFDEVICE,
) -> PNETADAPTER_INIT {
    require_irql_at_most(PASSIVE_LEVEL, "NetAdapterInitAllocate");
    globals_owner(globals);
    let r = with(|s| {
        if !s.devices.contains_key(&(device as usize)) {
            return None;
        }
        let t = token();
        let k = key(&t);
        s.adapter_inits
            .insert(k, AdapterInit { device: device as usize, callbacks: None, used: false, _token: t });
        Some(k)
    });
    match r {
        Some(k) => k as PNETADAPTER_INIT,
        None => {
            bad_handle("NetAdapterInitAllocate", "WDFDEVICE", device);
            std::ptr::null_mut()
        }
    }
}

unsafe extern "system" fn NetAdapterInitFree(globals: *mut NET_DRIVER_GLOBALS, init: PNETADAPTER_INIT) {
    require_irql_at_most(PASSIVE_LEVEL, "NetAdapterInitFree");
    globals_owner(globals);
    if with(|s| s.adapter_inits.remove(&(init as usize))).is_none() {
        bad_handle("NetAdapterInitFree", "NETADAPTER_INIT (freed twice?)", init);
    }
}

unsafe extern "system" fn NetAdapterInitSetDatapathCallbacks(
    globals: *mut NET_DRIVER_GLOBALS,
    init: PNETADAPTER_INIT,
    callbacks: *mut NET_ADAPTER_DATAPATH_CALLBACKS,
) {
    require_irql_at_most(PASSIVE_LEVEL, "NetAdapterInitSetDatapathCallbacks");
    globals_owner(globals);
    // SAFETY: null or the caller's structure.
    let Some(cb) = (unsafe { callbacks.as_ref() }).copied() else { return };
    if cb.Size as usize != std::mem::size_of::<NET_ADAPTER_DATAPATH_CALLBACKS>() {
        violation(Rule::NetcxCapabilities, format!("NET_ADAPTER_DATAPATH_CALLBACKS.Size {}", cb.Size));
        return;
    }
    if with(|s| s.adapter_inits.get_mut(&(init as usize)).map(|i| i.callbacks = Some(cb))).is_none() {
        bad_handle("NetAdapterInitSetDatapathCallbacks", "NETADAPTER_INIT", init);
    }
}

unsafe extern "system" fn NetAdapterCreate(
    globals: *mut NET_DRIVER_GLOBALS,
    init: PNETADAPTER_INIT,
    attrs: *mut WDF_OBJECT_ATTRIBUTES,
    adapter_out: *mut NETADAPTER,
) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "NetAdapterCreate");
    let Some(driver) = globals_owner(globals) else { return STATUS_INVALID_PARAMETER };
    if adapter_out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let (ctx, cleanup) = attributes(attrs);
    let r = with(|s| {
        let i = s.adapter_inits.get_mut(&(init as usize)).ok_or("not a live NETADAPTER_INIT")?;
        if i.used {
            return Err("NETADAPTER_INIT already used by NetAdapterCreate");
        }
        i.used = true;
        let (device, callbacks) = (i.device, i.callbacks);
        let t = token();
        let k = key(&t);
        add_context(s, k, ctx);
        s.adapters.insert(
            k,
            Adapter {
                driver,
                _device: device,
                callbacks,
                tx_caps: None,
                rx_caps: None,
                link_caps: None,
                mtu: 0,
                link: None,
                started: false,
                tx: None,
                rx: None,
                held: Vec::new(),
                counters: Counters::default(),
                cleanup,
                _token: t,
            },
        );
        if let Some(d) = s.devices.get_mut(&device) {
            d.adapters.push(k);
        }
        Ok(k)
    });
    match r {
        Ok(k) => {
            // SAFETY: checked non-null; the caller's out pointer.
            unsafe { adapter_out.write(k as NETADAPTER) };
            STATUS_SUCCESS
        }
        Err(why) => {
            violation(Rule::NetcxObjectState, format!("NetAdapterCreate({init:p}): {why}"));
            STATUS_INVALID_PARAMETER
        }
    }
}

fn with_adapter<R>(ddi: &str, adapter: NETADAPTER, f: impl FnOnce(&mut Adapter) -> R) -> Option<R> {
    let r = with(|s| s.adapters.get_mut(&(adapter as usize)).map(f));
    if r.is_none() {
        bad_handle(ddi, "NETADAPTER", adapter);
    }
    r
}

unsafe extern "system" fn NetAdapterSetLinkLayerCapabilities(
    globals: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    caps: *mut NET_ADAPTER_LINK_LAYER_CAPABILITIES,
) {
    require_irql_at_most(PASSIVE_LEVEL, "NetAdapterSetLinkLayerCapabilities");
    globals_owner(globals);
    // SAFETY: null or the caller's structure.
    let Some(c) = (unsafe { caps.as_ref() }).copied() else { return };
    if c.Size as usize != std::mem::size_of::<NET_ADAPTER_LINK_LAYER_CAPABILITIES>() {
        violation(Rule::NetcxCapabilities, format!("NET_ADAPTER_LINK_LAYER_CAPABILITIES.Size {}", c.Size));
        return;
    }
    with_adapter("NetAdapterSetLinkLayerCapabilities", adapter, |a| a.link_caps = Some(c));
}

unsafe extern "system" fn NetAdapterSetLinkLayerMtuSize(
    globals: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    mtu: u32,
) {
    require_irql_at_most(PASSIVE_LEVEL, "NetAdapterSetLinkLayerMtuSize");
    globals_owner(globals);
    if mtu == 0 {
        violation(
            Rule::NetcxCapabilities,
            "NetAdapterSetLinkLayerMtuSize(0) (FailureCode_MtuMustBeGreaterThanZero)",
        );
        return;
    }
    with_adapter("NetAdapterSetLinkLayerMtuSize", adapter, |a| a.mtu = mtu);
}

unsafe extern "system" fn NetAdapterSetDataPathCapabilities(
    globals: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    tx: *mut NET_ADAPTER_TX_CAPABILITIES,
    rx: *mut NET_ADAPTER_RX_CAPABILITIES,
) {
    require_irql_at_most(PASSIVE_LEVEL, "NetAdapterSetDataPathCapabilities");
    globals_owner(globals);
    // SAFETY: null or the caller's structures.
    let (Some(t), Some(r)) = (unsafe { tx.as_ref() }.copied(), unsafe { rx.as_ref() }.copied()) else {
        violation(
            Rule::NetcxCapabilities,
            "NetAdapterSetDataPathCapabilities with a null capability structure",
        );
        return;
    };
    if let Err(why) = check_capabilities(&t, &r) {
        violation(Rule::NetcxCapabilities, format!("NetAdapterSetDataPathCapabilities: {why}"));
        return;
    }
    with_adapter("NetAdapterSetDataPathCapabilities", adapter, |a| {
        a.tx_caps = Some(t);
        a.rx_caps = Some(r);
    });
}

/// `Verifier_VerifyAdapterTxCapabilities`/`RxCapabilities` (verifier.cpp), as far as a client without
/// DMA can get them wrong.
fn check_capabilities(
    t: &NET_ADAPTER_TX_CAPABILITIES,
    r: &NET_ADAPTER_RX_CAPABILITIES,
) -> Result<(), String> {
    if t.Size as usize != std::mem::size_of::<NET_ADAPTER_TX_CAPABILITIES>() {
        return Err(format!("NET_ADAPTER_TX_CAPABILITIES.Size {}", t.Size));
    }
    if r.Size as usize != std::mem::size_of::<NET_ADAPTER_RX_CAPABILITIES>() {
        return Err(format!("NET_ADAPTER_RX_CAPABILITIES.Size {}", r.Size));
    }
    if t.MaximumNumberOfQueues == 0 || r.MaximumNumberOfQueues == 0 {
        return Err("MaximumNumberOfQueues 0".into());
    }
    if r.AllocationMode == NetRxFragmentBufferAllocationModeDriver {
        if r.AttachmentMode != NetRxFragmentBufferAttachmentModeDriver {
            return Err("driver-managed Rx allocation requires driver attachment".into());
        }
        if r.return_callback().is_none() {
            return Err("driver-managed Rx allocation without EvtAdapterReturnRxBuffer".into());
        }
    }
    Ok(())
}

unsafe extern "system" fn NetAdapterSetLinkState(
    globals: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    state: *mut NET_ADAPTER_LINK_STATE,
) {
    require_irql_at_most(DISPATCH_LEVEL, "NetAdapterSetLinkState");
    globals_owner(globals);
    // SAFETY: null or the caller's structure.
    let Some(l) = (unsafe { state.as_ref() }).copied() else { return };
    if l.Size as usize != std::mem::size_of::<NET_ADAPTER_LINK_STATE>()
        || !(0..=2).contains(&l.MediaConnectState)
    {
        violation(
            Rule::NetcxCapabilities,
            "NET_ADAPTER_LINK_STATE with a bad Size or MediaConnectState (FailureCode_InvalidLinkState)",
        );
        return;
    }
    with_adapter("NetAdapterSetLinkState", adapter, |a| a.link = Some(l));
}

unsafe extern "system" fn NetAdapterStart(globals: *mut NET_DRIVER_GLOBALS, adapter: NETADAPTER) -> NTSTATUS {
    require_irql_at_most(PASSIVE_LEVEL, "NetAdapterStart");
    globals_owner(globals);
    let Some(r) = with_adapter("NetAdapterStart", adapter, |a| {
        if a.started {
            return Err((
                Rule::NetcxObjectState,
                "NetAdapterStart on a started adapter (FailureCode_AdapterAlreadyStarted)",
            ));
        }
        if a.callbacks.is_none() || a.tx_caps.is_none() {
            return Err((
                Rule::NetcxCapabilities,
                "NetAdapterStart without datapath callbacks or data-path capabilities",
            ));
        }
        a.started = true;
        Ok(())
    }) else {
        return STATUS_INVALID_PARAMETER;
    };
    if let Err((rule, why)) = r {
        violation(rule, why);
        return STATUS_INVALID_DEVICE_STATE;
    }
    start_datapath(adapter as usize)
}

unsafe extern "system" fn NetAdapterStop(globals: *mut NET_DRIVER_GLOBALS, adapter: NETADAPTER) {
    require_irql_at_most(PASSIVE_LEVEL, "NetAdapterStop");
    globals_owner(globals);
    if with_adapter("NetAdapterStop", adapter, |_| ()).is_some() {
        stop_datapath(adapter as usize);
        stack_return_all(adapter as usize);
        with(|s| s.adapters.get_mut(&(adapter as usize)).map(|a| a.started = false));
    }
}

// ---------------------------------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------------------------------

/// Creates the Tx and Rx queues through the driver's create callbacks, then starts them.
fn start_datapath(adapter: usize) -> NTSTATUS {
    let Some((driver, cb)) = with(|s| s.adapters.get(&adapter).map(|a| (a.driver, a.callbacks))) else {
        return STATUS_INVALID_PARAMETER;
    };
    let Some(cb) = cb else { return STATUS_INVALID_DEVICE_STATE };
    for dir in [Dir::Tx, Dir::Rx] {
        let t = token();
        let init = key(&t);
        with(|s| s.queue_inits.insert(init, QueueInit { adapter, dir, created: None, _token: t }));
        let status = match dir {
            Dir::Tx => cb.EvtAdapterCreateTxQueue.map_or(STATUS_INVALID_DEVICE_STATE, |f| {
                call_driver(driver, PASSIVE_LEVEL, "EvtAdapterCreateTxQueue", || {
                    // SAFETY: the driver's registered callback with its adapter and a live queue init.
                    unsafe { f(adapter as NETADAPTER, init as _) }
                })
            }),
            Dir::Rx => cb.EvtAdapterCreateRxQueue.map_or(STATUS_INVALID_DEVICE_STATE, |f| {
                call_driver(driver, PASSIVE_LEVEL, "EvtAdapterCreateRxQueue", || {
                    // SAFETY: the driver's registered callback with its adapter and a live queue init.
                    unsafe { f(adapter as NETADAPTER, init as _) }
                })
            }),
        };
        let created = with(|s| s.queue_inits.remove(&init).and_then(|i| i.created));
        if !NT_SUCCESS(status) || created.is_none() {
            stop_datapath(adapter);
            with(|s| s.adapters.get_mut(&adapter).map(|a| a.started = false));
            return if NT_SUCCESS(status) { STATUS_INVALID_DEVICE_STATE } else { status };
        }
    }
    for q in queues_of(adapter) {
        let start = with(|s| s.queues.get(&q).and_then(|x| x.config.EvtStart));
        if let Some(f) = start {
            // SAFETY: the driver's queue callback with its live queue.
            call_driver(driver, PASSIVE_LEVEL, "EvtPacketQueueStart", || unsafe { f(q as NETPACKETQUEUE) });
        }
    }
    STATUS_SUCCESS
}

fn queues_of(adapter: usize) -> Vec<usize> {
    with(|s| s.adapters.get(&adapter).map(|a| a.tx.into_iter().chain(a.rx).collect()).unwrap_or_default())
}

fn queue_create(
    dir: Dir,
    globals: *mut NET_DRIVER_GLOBALS,
    init: *mut c_void,
    attrs: *mut WDF_OBJECT_ATTRIBUTES,
    config: *mut NET_PACKET_QUEUE_CONFIG,
    out: *mut NETPACKETQUEUE,
) -> NTSTATUS {
    let ddi = if dir == Dir::Tx { "NetTxQueueCreate" } else { "NetRxQueueCreate" };
    require_irql_at_most(PASSIVE_LEVEL, ddi);
    let Some(driver) = globals_owner(globals) else { return STATUS_INVALID_PARAMETER };
    // SAFETY: null or the caller's config.
    let Some(cfg) = (unsafe { config.as_ref() }).copied() else { return STATUS_INVALID_PARAMETER };
    if out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    if cfg.Size as usize != std::mem::size_of::<NET_PACKET_QUEUE_CONFIG>()
        || cfg.EvtAdvance.is_none()
        || cfg.EvtSetNotificationEnabled.is_none()
        || cfg.EvtCancel.is_none()
    {
        violation(Rule::NetcxCapabilities, format!("{ddi}: NET_PACKET_QUEUE_CONFIG without Size/EvtAdvance/EvtSetNotificationEnabled/EvtCancel (FailureCode_InvalidQueueConfiguration)"));
        return STATUS_INVALID_PARAMETER;
    }
    let (ctx, _) = attributes(attrs);
    let r = with(|s| {
        let i = s
            .queue_inits
            .get_mut(&(init as usize))
            .ok_or("not a live queue init (outside the create callback?)")?;
        if i.dir != dir {
            return Err("queue init of the other direction (FailureCode_BadQueueInitContext)");
        }
        if i.created.is_some() {
            return Err("queue already created from this init (FailureCode_QueueAlreadyCreated)");
        }
        let adapter = i.adapter;
        let rx_caps = s.adapters.get(&adapter).and_then(|a| a.rx_caps);
        let pr = Ring::new(PACKET_RING_SIZE, std::mem::size_of::<NET_PACKET>());
        let fr = Ring::new(FRAGMENT_RING_SIZE, std::mem::size_of::<NET_FRAGMENT>());
        if dir == Dir::Rx
            && rx_caps.is_some_and(|r| r.AttachmentMode == NetRxFragmentBufferAttachmentModeSystem)
        {
            // System attachment: the framework sets each fragment's Capacity before handing it out.
            for f in 0..FRAGMENT_RING_SIZE {
                let mut frag = NET_FRAGMENT::default();
                frag.set_capacity(SYSTEM_RX_BUFFER_SIZE as u64);
                fr.set_fragment(f, frag);
            }
        }
        let system_alloc = dir == Dir::Rx
            && rx_caps.is_some_and(|r| r.AllocationMode == NetRxFragmentBufferAllocationModeSystem);
        let n = FRAGMENT_RING_SIZE as usize;
        let mut rx_system: Vec<Box<[u8]>> = Vec::new();
        let mut ext_va = vec![0usize; n].into_boxed_slice();
        if system_alloc {
            // System allocation: one framework buffer per fragment, reached through the VA extension.
            for va in ext_va.iter_mut() {
                let mut buf = vec![0u8; SYSTEM_RX_BUFFER_SIZE].into_boxed_slice();
                *va = buf.as_mut_ptr() as usize;
                rx_system.push(buf);
            }
        }
        let collection = Box::new(NET_RING_COLLECTION { Rings: [pr.ptr, fr.ptr, std::ptr::null_mut()] });
        let t = token();
        let k = key(&t);
        add_context(s, k, ctx);
        s.queues.insert(
            k,
            Queue {
                driver,
                adapter,
                dir,
                config: cfg,
                collection,
                pr,
                fr,
                ext_va,
                _rx_system: rx_system,
                ext_mdl: vec![0; n].into_boxed_slice(),
                ext_rc: vec![0; n].into_boxed_slice(),
                tx_buffers: (0..n).map(|_| None).collect(),
                notification_enabled: false,
                disable_pending: false,
                notified: false,
                toggle: 0,
                cancelled: false,
                poisoned_p: 0,
                poisoned_f: 0,
                _token: t,
            },
        );
        if let Some(i) = s.queue_inits.get_mut(&(init as usize)) {
            i.created = Some(k);
        }
        if let Some(a) = s.adapters.get_mut(&adapter) {
            match dir {
                Dir::Tx => a.tx = Some(k),
                Dir::Rx => a.rx = Some(k),
            }
        }
        Ok(k)
    });
    match r {
        Ok(k) => {
            // SAFETY: checked non-null; the caller's out pointer.
            unsafe { out.write(k as NETPACKETQUEUE) };
            STATUS_SUCCESS
        }
        Err(why) => {
            violation(Rule::NetcxObjectState, format!("{ddi}({init:p}): {why}"));
            STATUS_INVALID_PARAMETER
        }
    }
}

unsafe extern "system" fn NetTxQueueCreate(
    g: *mut NET_DRIVER_GLOBALS,
    i: PNETTXQUEUE_INIT,
    a: *mut WDF_OBJECT_ATTRIBUTES,
    c: *mut NET_PACKET_QUEUE_CONFIG,
    q: *mut NETPACKETQUEUE,
) -> NTSTATUS {
    queue_create(Dir::Tx, g, i, a, c, q)
}
unsafe extern "system" fn NetRxQueueCreate(
    g: *mut NET_DRIVER_GLOBALS,
    i: PNETRXQUEUE_INIT,
    a: *mut WDF_OBJECT_ATTRIBUTES,
    c: *mut NET_PACKET_QUEUE_CONFIG,
    q: *mut NETPACKETQUEUE,
) -> NTSTATUS {
    queue_create(Dir::Rx, g, i, a, c, q)
}

fn ring_collection(
    dir: Dir,
    globals: *mut NET_DRIVER_GLOBALS,
    queue: NETPACKETQUEUE,
) -> *const NET_RING_COLLECTION {
    let ddi = if dir == Dir::Tx { "NetTxQueueGetRingCollection" } else { "NetRxQueueGetRingCollection" };
    require_irql_at_most(PASSIVE_LEVEL, ddi);
    globals_owner(globals);
    let r =
        with(|s| s.queues.get(&(queue as usize)).filter(|q| q.dir == dir).map(|q| &raw const *q.collection));
    r.unwrap_or_else(|| {
        bad_handle(ddi, "queue of this direction", queue);
        std::ptr::null()
    })
}
unsafe extern "system" fn NetTxQueueGetRingCollection(
    g: *mut NET_DRIVER_GLOBALS,
    q: NETPACKETQUEUE,
) -> *const NET_RING_COLLECTION {
    ring_collection(Dir::Tx, g, q)
}
unsafe extern "system" fn NetRxQueueGetRingCollection(
    g: *mut NET_DRIVER_GLOBALS,
    q: NETPACKETQUEUE,
) -> *const NET_RING_COLLECTION {
    ring_collection(Dir::Rx, g, q)
}

fn get_extension(
    dir: Dir,
    globals: *mut NET_DRIVER_GLOBALS,
    queue: NETPACKETQUEUE,
    query: *const NET_EXTENSION_QUERY,
    out: *mut NET_EXTENSION,
) {
    let ddi = if dir == Dir::Tx { "NetTxQueueGetExtension" } else { "NetRxQueueGetExtension" };
    require_irql_at_most(PASSIVE_LEVEL, ddi);
    globals_owner(globals);
    // SAFETY: null or the caller's query.
    let Some(q) = (unsafe { query.as_ref() }).copied() else { return };
    if out.is_null() {
        return;
    }
    let mut ext = NET_EXTENSION::empty();
    let found = with(|s| {
        let Some(queue) = s.queues.get_mut(&(queue as usize)).filter(|x| x.dir == dir) else {
            return Err(());
        };
        let driver_managed = s
            .adapters
            .get(&queue.adapter)
            .and_then(|a| a.rx_caps)
            .is_some_and(|r| r.AllocationMode == NetRxFragmentBufferAllocationModeDriver);
        if q.Type != NetExtensionTypeFragment {
            return Ok(None);
        }
        let base = if wide_eq(q.Name, &NET_FRAGMENT_EXTENSION_VIRTUAL_ADDRESS_NAME) && q.Version == 1 {
            Some(queue.ext_va.as_mut_ptr())
        } else if wide_eq(q.Name, &NET_FRAGMENT_EXTENSION_MDL_NAME) && q.Version == 1 {
            Some(queue.ext_mdl.as_mut_ptr())
        } else if wide_eq(q.Name, &NET_FRAGMENT_EXTENSION_RETURN_CONTEXT_NAME)
            && q.Version == 1
            && dir == Dir::Rx
            && driver_managed
        {
            Some(queue.ext_rc.as_mut_ptr())
        } else {
            None
        };
        Ok(base)
    });
    match found {
        Err(()) => bad_handle(ddi, "queue of this direction", queue),
        Ok(Some(base)) => {
            ext.Reserved[0] = base.cast();
            ext.Reserved[1] = std::mem::size_of::<usize>() as *mut c_void;
            ext.Enabled = std::ptr::without_provenance_mut(1);
        }
        Ok(None) => {}
    }
    // SAFETY: checked non-null; the caller's output.
    unsafe { out.write(ext) };
}
unsafe extern "system" fn NetTxQueueGetExtension(
    g: *mut NET_DRIVER_GLOBALS,
    q: NETPACKETQUEUE,
    query: *const NET_EXTENSION_QUERY,
    e: *mut NET_EXTENSION,
) {
    get_extension(Dir::Tx, g, q, query, e);
}
unsafe extern "system" fn NetRxQueueGetExtension(
    g: *mut NET_DRIVER_GLOBALS,
    q: NETPACKETQUEUE,
    query: *const NET_EXTENSION_QUERY,
    e: *mut NET_EXTENSION,
) {
    get_extension(Dir::Rx, g, q, query, e);
}

fn notify(dir: Dir, queue: NETPACKETQUEUE) {
    let r = with(|s| {
        let q = s.queues.get_mut(&(queue as usize)).filter(|q| q.dir == dir)?;
        if !q.notification_enabled {
            return Some(false);
        }
        q.notification_enabled = false;
        q.disable_pending = true;
        q.notified = true;
        Some(true)
    });
    let ddi = if dir == Dir::Tx {
        "NetTxQueueNotifyMoreCompletedPacketsAvailable"
    } else {
        "NetRxQueueNotifyMoreReceivedPacketsAvailable"
    };
    match r {
        None => bad_handle(ddi, "queue of this direction", queue),
        Some(false) => {
            violation(Rule::NetcxNotify, format!("{ddi}({queue:p}) while notification is disabled"))
        }
        Some(true) => {}
    }
}
unsafe extern "system" fn NetTxQueueNotifyMoreCompletedPacketsAvailable(
    _g: *mut NET_DRIVER_GLOBALS,
    q: NETPACKETQUEUE,
) {
    notify(Dir::Tx, q);
}
unsafe extern "system" fn NetRxQueueNotifyMoreReceivedPacketsAvailable(
    _g: *mut NET_DRIVER_GLOBALS,
    q: NETPACKETQUEUE,
) {
    notify(Dir::Rx, q);
}

// ---------------------------------------------------------------------------------------------
// The framework's advance loop, with the verifier around each advance
// ---------------------------------------------------------------------------------------------

/// What a queue looked like before its advance.
struct Before {
    pr: Vec<u8>,
    fr: Vec<u8>,
    p_begin: u32,
    p_end: u32,
    f_begin: u32,
    f_end: u32,
}

/// Runs one verified advance of `queue`. Returns whether the client returned anything.
fn advance(queue: usize) -> bool {
    let Some((driver, f, irql, before)) = with(|s| {
        let adapter_attach = s
            .queues
            .get(&queue)
            .and_then(|q| s.adapters.get(&q.adapter))
            .and_then(|a| a.rx_caps)
            .map(|r| r.AttachmentMode);
        let q = s.queues.get_mut(&queue)?;
        if q.dir == Dir::Rx {
            give_rx(q, adapter_attach == Some(NetRxFragmentBufferAttachmentModeDriver));
        }
        let before = snapshot(q);
        q.toggle = q.toggle.wrapping_add(1);
        let level = if q.toggle & 1 == 0 { DISPATCH_LEVEL } else { PASSIVE_LEVEL };
        let adv = q.config.EvtAdvance?;
        if let Some(a) = s.adapters.get_mut(&q.adapter) {
            a.counters.advances += 1;
            if level == DISPATCH_LEVEL {
                a.counters.dispatch_advances += 1;
            }
        }
        Some((q.driver, adv, level, before))
    }) else {
        return false;
    };
    // SAFETY: the driver's advance callback with its live queue.
    call_driver(driver, irql, "EvtPacketQueueAdvance", || unsafe { f(queue as NETPACKETQUEUE) });
    verify_and_consume(queue, &before)
}

fn snapshot(q: &Queue) -> Before {
    let (ph, fh) = (q.pr.hdr(), q.fr.hdr());
    // The bench profile keeps the indices only: nothing is compared after the advance.
    let bench = crate::bench::active();
    Before {
        pr: if bench { Vec::new() } else { q.pr.bytes() },
        fr: if bench { Vec::new() } else { q.fr.bytes() },
        p_begin: ph.BeginIndex,
        p_end: ph.EndIndex,
        f_begin: fh.BeginIndex,
        f_end: fh.EndIndex,
    }
}

/// Rx: the framework hands every free element to the client and poisons the fields it must write
/// (`NxQueueVerifier::PreAdvance`).
fn give_rx(q: &mut Queue, driver_attach: bool) {
    for (ring, poisoned, is_packet) in [(&q.pr, &mut q.poisoned_p, true), (&q.fr, &mut q.poisoned_f, false)] {
        let h = ring.hdr();
        let end = h.BeginIndex.wrapping_sub(1) & ring.mask();
        h.EndIndex = end;
        if crate::bench::active() {
            // The bench profile: no poisoning (a missing write then goes unnoticed, never misreported).
            *poisoned = end;
        }
        while *poisoned != end {
            let i = *poisoned;
            if is_packet {
                ring.set_packet(
                    i,
                    NET_PACKET {
                        FragmentIndex: u32::MAX,
                        FragmentCount: u16::MAX,
                        Layout: NET_PACKET_LAYOUT { Bits: POISON_LAYOUT },
                        Flags: 0,
                    },
                );
            } else {
                let mut f = ring.fragment(i);
                f.set_valid_length(NET_FRAGMENT_MAX_LENGTH);
                f.set_offset(NET_FRAGMENT_MAX_OFFSET);
                if driver_attach {
                    f.set_capacity(NET_FRAGMENT_MAX_LENGTH);
                }
                f.set_bounced(false);
                f.set_scratch(false);
                ring.set_fragment(i, f);
            }
            *poisoned = (i + 1) & ring.mask();
        }
    }
}

/// Checks the ring-ownership rules common to both directions; repairs what it refuses.
fn verify_ring(ring: &Ring, before: &[u8], begin: u32, end: u32, what: &str) -> u32 {
    // Header: only BeginIndex, NextIndex, Scratch (offsets 48..64) are the client's.
    let now = ring.bytes();
    if now[..48] != before[..48] {
        violation(
            Rule::NetcxRingImmutable,
            format!("{what} ring: header field other than BeginIndex/NextIndex/Scratch written"),
        );
        // SAFETY: the header is the first 48 bytes of the live ring allocation; `before` is a copy.
        unsafe { std::ptr::copy_nonoverlapping(before.as_ptr(), ring.ptr.cast::<u8>(), 48) };
    }
    let h = ring.hdr();
    let new_begin = h.BeginIndex;
    if new_begin > ring.mask() || ring.range(begin, new_begin) > ring.range(begin, end) {
        violation(
            Rule::NetcxRingBeginPastEnd,
            format!("{what} ring: BeginIndex moved from {begin} to {new_begin}, outside [{begin}, EndIndex {end}]"),
        );
        h.BeginIndex = begin;
    }
    // Elements outside [begin, end) are the framework's.
    for i in 0..ring.count {
        if ring.in_range(i, begin, end) {
            continue;
        }
        let at = NET_RING_BUFFER_OFFSET + i as usize * ring.stride;
        if ring.element_bytes(i) != &before[at..at + ring.stride] {
            violation(
                Rule::NetcxRingOutsideRange,
                format!("{what} ring: element {i} outside [{begin}, {end}) changed"),
            );
            ring.restore_element(i, before);
        }
    }
    h.BeginIndex
}

fn old_packet(before: &[u8], i: u32) -> NET_PACKET {
    let at = NET_RING_BUFFER_OFFSET + i as usize * 12;
    let b = &before[at..at + 12];
    NET_PACKET {
        FragmentIndex: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        FragmentCount: u16::from_le_bytes([b[4], b[5]]),
        Layout: NET_PACKET_LAYOUT { Bits: [b[6], b[7], b[8], b[9], b[10]] },
        Flags: b[11],
    }
}

fn old_fragment(before: &[u8], i: u32) -> NET_FRAGMENT {
    let at = NET_RING_BUFFER_OFFSET + i as usize * 8;
    let mut w = [0u8; 8];
    w.copy_from_slice(&before[at..at + 8]);
    NET_FRAGMENT { Bits: u64::from_le_bytes(w) }
}

fn verify_and_consume(queue: usize, b: &Before) -> bool {
    let Some((dir, adapter, cancelled)) =
        with(|s| s.queues.get(&queue).map(|q| (q.dir, q.adapter, q.cancelled)))
    else {
        return false;
    };
    let rx_caps = with(|s| s.adapters.get(&adapter).and_then(|a| a.rx_caps));
    let (p_new, f_new) = with(|s| {
        let q = s.queues.get(&queue).expect("queue checked above");
        if crate::bench::active() {
            return (q.pr.hdr().BeginIndex, q.fr.hdr().BeginIndex);
        }
        let p = verify_ring(&q.pr, &b.pr, b.p_begin, b.p_end, "packet");
        let f = verify_ring(&q.fr, &b.fr, b.f_begin, b.f_end, "fragment");
        match dir {
            Dir::Tx => verify_tx(q, b),
            Dir::Rx => verify_rx(q, b, p, f, rx_caps, cancelled),
        }
        (p, f)
    });
    let progressed = p_new != b.p_begin || f_new != b.f_begin;
    match dir {
        Dir::Tx => consume_tx(queue, b, p_new, f_new),
        Dir::Rx => consume_rx(queue, b, p_new, rx_caps),
    }
    progressed
}

fn verify_tx(q: &Queue, b: &Before) {
    let mut i = b.p_begin;
    while i != b.p_end {
        let (old, new) = (old_packet(&b.pr, i), q.pr.packet(i));
        if (old.Flags | NET_PACKET_SCRATCH) != (new.Flags | NET_PACKET_SCRATCH)
            || old.FragmentIndex != new.FragmentIndex
            || old.FragmentCount != new.FragmentCount
            || old.Layout != new.Layout
        {
            violation(Rule::NetcxTxImmutable, format!("Tx packet {i}: a field other than Scratch changed"));
            q.pr.restore_element(i, &b.pr);
        }
        i = (i + 1) & q.pr.mask();
    }
    let mut i = b.f_begin;
    while i != b.f_end {
        let (mut old, mut new) = (old_fragment(&b.fr, i), q.fr.fragment(i));
        old.set_scratch(false);
        new.set_scratch(false);
        if old != new {
            violation(Rule::NetcxTxImmutable, format!("Tx fragment {i}: a field other than Scratch changed"));
            q.fr.restore_element(i, &b.fr);
        }
        i = (i + 1) & q.fr.mask();
    }
}

fn layout_check(l: NET_PACKET_LAYOUT) -> Result<(), String> {
    let (l2, l3, l4) = (l.layer2_type(), l.layer3_type(), l.layer4_type());
    if l2 > NetPacketLayer2TypeIeee80211
        || l3 > NetPacketLayer3TypeIPv6NoExtensions
        || l4 > NetPacketLayer4TypeIPNotFragment
    {
        return Err(format!("layer types {l2}/{l3}/{l4} out of range"));
    }
    if l2 == NetPacketLayer2TypeNull && l.layer2_header_length() != 0 {
        return Err("Null layer 2 with a header length".into());
    }
    if l2 == NetPacketLayer2TypeEthernet && l.layer2_header_length() != 0 && l.layer2_header_length() < 14 {
        return Err("Ethernet header length below 14".into());
    }
    let l3len = l.layer3_header_length();
    if (1..=3).contains(&l3) && l3len != 0 && l3len < 20 {
        return Err("IPv4 header length below 20".into());
    }
    if (4..=6).contains(&l3) && l3len != 0 && l3len < 40 {
        return Err("IPv6 header length below 40".into());
    }
    let l4len = l.layer4_header_length();
    if l4len != 0 && l4 == NetPacketLayer4TypeTcp && (!(20..=60).contains(&l4len) || !l4len.is_multiple_of(4))
    {
        return Err(format!("TCP header length {l4len}"));
    }
    if l4len != 0 && l4 == NetPacketLayer4TypeUdp && l4len < 8 {
        return Err(format!("UDP header length {l4len}"));
    }
    Ok(())
}

#[allow(clippy::too_many_lines)]
fn verify_rx(
    q: &Queue,
    b: &Before,
    p_new: u32,
    f_new: u32,
    caps: Option<NET_ADAPTER_RX_CAPABILITIES>,
    cancelled: bool,
) {
    let driver_attach = caps.is_some_and(|c| c.AttachmentMode == NetRxFragmentBufferAttachmentModeDriver);
    let (pr, fr) = (&q.pr, &q.fr);
    let mut prev: Option<NET_PACKET> = None;
    let mut i = b.p_begin;
    while i != b.p_end {
        let (old, new) = (old_packet(&b.pr, i), pr.packet(i));
        let returned = pr.in_range(i, b.p_begin, p_new);
        if !new.ignore()
            && (new.reserved1() != old.reserved1() || new.Layout.reserved0() != old.Layout.reserved0())
        {
            violation(Rule::NetcxRxReserved, format!("Rx packet {i}: Reserved bits changed"));
        }
        if !returned {
            i = (i + 1) & pr.mask();
            continue;
        }
        if new.ignore() {
            if new.FragmentIndex != old.FragmentIndex || new.FragmentCount != old.FragmentCount {
                violation(
                    Rule::NetcxRxPacketFragments,
                    format!("Rx packet {i}: ignored, yet its fragment fields were written"),
                );
            }
            i = (i + 1) & pr.mask();
            continue;
        }
        if cancelled {
            violation(
                Rule::NetcxCancel,
                format!("Rx packet {i} returned after EvtPacketQueueCancel without Ignore"),
            );
        }
        let count = u32::from(new.FragmentCount);
        let held = fr.range(b.f_begin, b.f_end);
        if count == 0 || count > held {
            violation(
                Rule::NetcxRxPacketFragments,
                format!("Rx packet {i}: FragmentCount {count} (held {held})"),
            );
        } else if new.FragmentIndex > fr.mask()
            || !fr.in_range(new.FragmentIndex, b.f_begin, f_new)
            || !fr.in_range((new.FragmentIndex + count - 1) & fr.mask(), b.f_begin, f_new)
            || fr.range(new.FragmentIndex, (new.FragmentIndex + count - 1) & fr.mask()) != count - 1
        {
            violation(
                Rule::NetcxRxPacketFragments,
                format!(
                    "Rx packet {i}: fragments [{}, +{count}) not within the fragments returned [{}, {f_new})",
                    new.FragmentIndex, b.f_begin
                ),
            );
        } else {
            if let Some(p) = prev {
                let prev_last = (p.FragmentIndex + u32::from(p.FragmentCount) - 1) & fr.mask();
                if fr.range(b.f_begin, prev_last) >= fr.range(b.f_begin, new.FragmentIndex) {
                    violation(
                        Rule::NetcxRxPacketFragments,
                        format!("Rx packet {i}: fragments overlap or precede the previous packet's"),
                    );
                }
            }
            for k in 0..count {
                let fi = (new.FragmentIndex + k) & fr.mask();
                let (fo, fnew) = (old_fragment(&b.fr, fi), fr.fragment(fi));
                if fnew.bounced() != fo.bounced() {
                    violation(Rule::NetcxRxReserved, format!("Rx fragment {fi}: OsReserved_Bounced changed"));
                }
                let unset = fnew.valid_length() == NET_FRAGMENT_MAX_LENGTH
                    || fnew.offset() == NET_FRAGMENT_MAX_OFFSET
                    || driver_attach && fnew.capacity() == NET_FRAGMENT_MAX_LENGTH;
                if unset {
                    violation(
                        Rule::NetcxRxFragment,
                        format!("Rx fragment {fi}: ValidLength/Offset/Capacity not written"),
                    );
                } else if !driver_attach && fnew.capacity() != fo.capacity() {
                    violation(
                        Rule::NetcxRxFragment,
                        format!("Rx fragment {fi}: Capacity changed under system attachment"),
                    );
                } else if fnew.offset() + fnew.valid_length() > fnew.capacity() {
                    violation(
                        Rule::NetcxRxFragment,
                        format!(
                            "Rx fragment {fi}: Offset {} + ValidLength {} > Capacity {}",
                            fnew.offset(),
                            fnew.valid_length(),
                            fnew.capacity()
                        ),
                    );
                }
            }
            prev = Some(new);
        }
        if let Err(why) = layout_check(new.Layout) {
            violation(Rule::NetcxRxLayout, format!("Rx packet {i}: {why}"));
        }
        i = (i + 1) & pr.mask();
    }
}

fn consume_tx(queue: usize, b: &Before, p_new: u32, f_new: u32) {
    let freed: Vec<*mut MDL> = with(|s| {
        let Some(q) = s.queues.get_mut(&queue) else { return Vec::new() };
        let completed = u64::from(q.pr.range(b.p_begin, p_new));
        let mut mdls = Vec::new();
        let mut i = b.f_begin;
        while i != f_new {
            if let Some(buf) = q.tx_buffers[i as usize].take() {
                if !buf.kept {
                    mdls.push(buf.mdl);
                }
                drop(buf.data);
            }
            q.ext_va[i as usize] = 0;
            q.ext_mdl[i as usize] = 0;
            i = (i + 1) & q.fr.mask();
        }
        let adapter = q.adapter;
        if let Some(a) = s.adapters.get_mut(&adapter) {
            a.counters.tx_completed += completed;
        }
        mdls
    });
    for m in freed {
        as_system(|| crate::mdl::free_sim(m));
    }
}

/// Reads a fragment's bytes through its virtual-address (or MDL) extension.
fn fragment_bytes(q: &Queue, fi: u32) -> Option<Vec<u8>> {
    let f = q.fr.fragment(fi);
    let mut va = q.ext_va[fi as usize] as *const u8;
    if va.is_null() && q.ext_mdl[fi as usize] != 0 {
        // SAFETY: the client stored an MDL it owns in the MDL extension; the simulation's MDLs map their
        // buffer in MappedSystemVa.
        va = unsafe { (*(q.ext_mdl[fi as usize] as *const MDL)).MappedSystemVa }.cast();
    }
    if va.is_null() {
        return None;
    }
    let (off, len) = (usize::try_from(f.offset()).ok()?, usize::try_from(f.valid_length()).ok()?);
    // SAFETY: the client describes `Capacity` bytes at the fragment's address, and the verifier has
    // checked Offset + ValidLength <= Capacity before the stack reads.
    Some(unsafe { std::slice::from_raw_parts(va.wrapping_add(off), len) }.to_vec())
}

/// Checks that `p` is one well-formed IPv4 or IPv6 packet whose length fields match.
fn well_formed(p: &[u8]) -> bool {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            p.len() >= 20
                && usize::from(u16::from_be_bytes([p[2], p[3]])) == p.len()
                && usize::from(p[0] & 0xf) * 4 >= 20
        }
        Some(6) => p.len() >= 40 && usize::from(u16::from_be_bytes([p[4], p[5]])) + 40 == p.len(),
        _ => false,
    }
}

fn consume_rx(queue: usize, b: &Before, p_new: u32, caps: Option<NET_ADAPTER_RX_CAPABILITIES>) {
    let driver_managed = caps.is_some_and(|c| c.AllocationMode == NetRxFragmentBufferAllocationModeDriver);
    let (adapter, driver, returns) = with(|s| {
        let hold = s.hold_returns;
        let Some(q) = s.queues.get_mut(&queue) else { return (0, DriverId(0), Vec::new()) };
        let mut received = Vec::new();
        // One return context per fragment: sized for one each up front (no growth per packet).
        let mut contexts = Vec::with_capacity(q.pr.range(b.p_begin, p_new) as usize);
        let (mut ignored, mut malformed, mut frags) = (0u64, 0u64, 0u64);
        let mut bench_received = 0u64;
        let mut i = b.p_begin;
        while i != p_new {
            let p = q.pr.packet(i);
            i = (i + 1) & q.pr.mask();
            if p.ignore() {
                ignored += 1;
                continue;
            }
            let count = u32::from(p.FragmentCount);
            if count == 0 || p.FragmentIndex > q.fr.mask() || p.FragmentCount == u16::MAX {
                malformed += 1;
                continue;
            }
            if crate::bench::active() {
                // The bench profile: the stack counts the packet and returns its buffers unread.
                frags += u64::from(count);
                if driver_managed {
                    for k in 0..count {
                        contexts.push(q.ext_rc[((p.FragmentIndex + k) & q.fr.mask()) as usize]);
                    }
                }
                bench_received += 1;
                continue;
            }
            let mut data = Vec::new();
            let mut ok = true;
            for k in 0..count {
                let fi = (p.FragmentIndex + k) & q.fr.mask();
                frags += 1;
                match fragment_bytes(q, fi) {
                    Some(bytes) => data.extend_from_slice(&bytes),
                    None => ok = false,
                }
                if driver_managed {
                    contexts.push(q.ext_rc[fi as usize]);
                }
            }
            if ok && well_formed(&data) {
                received.push(data);
            } else {
                malformed += 1;
            }
        }
        let (adapter, driver) = (q.adapter, q.driver);
        let n = received.len() as u64 + bench_received;
        s.received.extend(received);
        let returns = if hold {
            if let Some(a) = s.adapters.get_mut(&adapter) {
                a.held.extend(contexts);
            }
            Vec::new()
        } else {
            contexts
        };
        if let Some(a) = s.adapters.get_mut(&adapter) {
            a.counters.rx_indicated += n;
            a.counters.rx_ignored += ignored;
            a.counters.rx_malformed += malformed;
            a.counters.rx_fragments += frags;
        }
        (adapter, driver, returns)
    });
    return_buffers(adapter, driver, returns);
}

/// Calls `EvtAdapterReturnRxBuffer` once per context (PASSIVE..DISPATCH; the simulation alternates).
fn return_buffers(adapter: usize, driver: DriverId, contexts: Vec<usize>) {
    if contexts.is_empty() {
        return;
    }
    let Some(cb) =
        with(|s| s.adapters.get(&adapter).and_then(|a| a.rx_caps).and_then(|c| c.return_callback()))
    else {
        return;
    };
    let mut returned = 0u64;
    for (n, ctx) in contexts.into_iter().enumerate() {
        let level: KIRQL = if n % 2 == 0 { DISPATCH_LEVEL } else { PASSIVE_LEVEL };
        // SAFETY: the driver's registered return callback with its adapter and the context it attached.
        call_driver(driver, level, "EvtAdapterReturnRxBuffer", || unsafe {
            cb(adapter as NETADAPTER, ctx as _)
        });
        returned += 1;
    }
    with(|s| s.adapters.get_mut(&adapter).map(|a| a.counters.returns += returned));
}

fn set_notification(queue: usize, enabled: bool) {
    let Some((driver, f)) = with(|s| {
        s.queues.get_mut(&queue).map(|q| {
            q.notification_enabled = enabled;
            (q.driver, q.config.EvtSetNotificationEnabled)
        })
    }) else {
        return;
    };
    if let Some(f) = f {
        // SAFETY: the driver's callback with its live queue.
        call_driver(driver, PASSIVE_LEVEL, "EvtPacketQueueSetNotificationEnabled", || unsafe {
            f(queue as NETPACKETQUEUE, BOOLEAN::from(enabled))
        });
    }
}

/// Runs the adapter's queues as NetAdapterCx's execution context does: advance every queue until a
/// whole round makes no progress and no notification is pending, then enable notification on each idle
/// queue. A notification the client raises later ends the idle state; call `pump` again.
pub fn pump(adapter: usize) {
    for _ in 0..PUMP_ROUNDS {
        let mut progressed = false;
        for q in queues_of(adapter) {
            let disable = with(|s| {
                s.queues
                    .get_mut(&q)
                    .map(|x| std::mem::take(&mut x.disable_pending) | std::mem::take(&mut x.notified))
            });
            if disable == Some(true) {
                set_notification(q, false);
                progressed = true;
            }
            if with(|s| s.queues.get(&q).is_some_and(|x| x.notification_enabled)) {
                continue;
            }
            progressed |= advance(q);
        }
        if !progressed {
            break;
        }
    }
    for q in queues_of(adapter) {
        let idle = with(|s| s.queues.get(&q).is_some_and(|x| !x.notification_enabled && !x.cancelled));
        if idle {
            set_notification(q, true);
        }
    }
    // A notification raised inside EvtSetNotificationEnabled(TRUE) (work already waiting) runs now.
    let again = queues_of(adapter).iter().any(|&q| with(|s| s.queues.get(&q).is_some_and(|x| x.notified)));
    if again {
        pump(adapter);
    }
}

/// Stops the adapter's data path: `EvtPacketQueueCancel` on each queue, advances until both rings are
/// drained (within [`CANCEL_DRAIN_BUDGET`]), `EvtPacketQueueStop`, and the queues are deleted (Tx buffers
/// still posted are reclaimed by the framework).
fn stop_datapath(adapter: usize) {
    let queues = queues_of(adapter);
    for &q in &queues {
        let Some((driver, cancel, enabled)) = with(|s| {
            s.queues.get_mut(&q).map(|x| {
                x.cancelled = true;
                (x.driver, x.config.EvtCancel, x.notification_enabled)
            })
        }) else {
            continue;
        };
        if enabled {
            set_notification(q, false);
        }
        if let Some(f) = cancel {
            // SAFETY: the driver's callback with its live queue.
            call_driver(driver, PASSIVE_LEVEL, "EvtPacketQueueCancel", || unsafe { f(q as NETPACKETQUEUE) });
        }
    }
    for &q in &queues {
        let mut drained = false;
        for _ in 0..CANCEL_DRAIN_BUDGET {
            advance(q);
            drained = with(|s| {
                s.queues.get(&q).is_none_or(|x| {
                    x.pr.hdr().BeginIndex == x.pr.hdr().EndIndex
                        && x.fr.hdr().BeginIndex == x.fr.hdr().EndIndex
                })
            });
            if drained {
                break;
            }
        }
        if !drained {
            violation(Rule::NetcxCancel, format!("queue {q:#x}: rings not drained within {CANCEL_DRAIN_BUDGET} advances after EvtPacketQueueCancel"));
        }
    }
    for &q in &queues {
        let Some((driver, stop)) = with(|s| s.queues.get(&q).map(|x| (x.driver, x.config.EvtStop))) else {
            continue;
        };
        if let Some(f) = stop {
            // SAFETY: as above.
            call_driver(driver, PASSIVE_LEVEL, "EvtPacketQueueStop", || unsafe { f(q as NETPACKETQUEUE) });
        }
    }
    let removed: Vec<Queue> = with(|s| {
        if let Some(a) = s.adapters.get_mut(&adapter) {
            a.tx = None;
            a.rx = None;
        }
        s.contexts.retain(|(o, _), _| !queues.contains(o));
        queues.iter().filter_map(|q| s.queues.remove(q)).collect()
    });
    for q in removed {
        for buf in q.tx_buffers.into_iter().flatten().filter(|b| !b.kept) {
            as_system(|| crate::mdl::free_sim(buf.mdl));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The IP stack above the adapter
// ---------------------------------------------------------------------------------------------

fn layout_of(packet: &[u8]) -> NET_PACKET_LAYOUT {
    match packet.first().map(|b| b >> 4) {
        Some(4) => NET_PACKET_LAYOUT::new(
            0,
            u16::from(packet[0] & 0xf) * 4,
            0,
            NetPacketLayer2TypeNull,
            NetPacketLayer3TypeIPv4UnspecifiedOptions,
            0,
        ),
        Some(6) => NET_PACKET_LAYOUT::new(
            0,
            40,
            0,
            NetPacketLayer2TypeNull,
            NetPacketLayer3TypeIPv6UnspecifiedExtensions,
            0,
        ),
        _ => NET_PACKET_LAYOUT::default(),
    }
}

/// The stack sends packets, each given as its fragments (a packet of several buffers becomes a
/// multi-fragment NET_PACKET with virtual-address and MDL extensions), then runs the data path. Returns
/// how many packets fit in the Tx rings.
pub fn stack_send_fragments(adapter: usize, packets: &[Vec<Vec<u8>>]) -> usize {
    post_tx(adapter, packets, Vec::len, |q, frags| {
        let whole: Vec<u8> = frags.concat();
        for data in frags {
            let fi = q.fr.hdr().EndIndex;
            let mut data = data.clone();
            let mdl = as_system(|| {
                crate::mdl::allocate_sim(data.as_mut_ptr().cast(), u32::try_from(data.len()).unwrap_or(0))
            });
            let mut f = NET_FRAGMENT::default();
            f.set_capacity(data.len() as u64);
            f.set_valid_length(data.len() as u64);
            q.fr.set_fragment(fi, f);
            q.ext_va[fi as usize] = data.as_mut_ptr() as usize;
            q.ext_mdl[fi as usize] = mdl as usize;
            q.tx_buffers[fi as usize] = Some(TxBuffer { data, mdl, kept: false });
            q.fr.hdr().EndIndex = (fi + 1) & q.fr.mask();
        }
        layout_of(&whole)
    })
}

/// The stack posts `packets` on the adapter's Tx ring while both rings have room (`frags` fragments
/// each; `write` puts one packet's fragments on the fragment ring and returns its layout), counts them,
/// arms the queue as the framework does for new Tx work, and runs it. Returns how many were posted.
fn post_tx<P>(
    adapter: usize,
    packets: &[P],
    frags: impl Fn(&P) -> usize,
    mut write: impl FnMut(&mut Queue, &P) -> NET_PACKET_LAYOUT,
) -> usize {
    let posted = with(|s| {
        let Some(qk) = s.adapters.get(&adapter).and_then(|a| a.tx) else { return 0 };
        let Some(q) = s.queues.get_mut(&qk) else { return 0 };
        if q.cancelled {
            return 0;
        }
        let mut posted = 0;
        for p in packets {
            let n = frags(p);
            let (ph, fh) = (q.pr.hdr(), q.fr.hdr());
            let p_free = q.pr.range(ph.EndIndex, ph.BeginIndex.wrapping_sub(1) & q.pr.mask());
            let f_free = q.fr.range(fh.EndIndex, fh.BeginIndex.wrapping_sub(1) & q.fr.mask());
            if n == 0 || p_free == 0 || (f_free as usize) < n {
                break;
            }
            let (first, p_end) = (fh.EndIndex, ph.EndIndex);
            let layout = write(q, p);
            let count = u16::try_from(n).unwrap_or(u16::MAX);
            q.pr.set_packet(
                p_end,
                NET_PACKET { FragmentIndex: first, FragmentCount: count, Layout: layout, Flags: 0 },
            );
            q.pr.hdr().EndIndex = (p_end + 1) & q.pr.mask();
            posted += 1;
        }
        if let Some(a) = s.adapters.get_mut(&adapter) {
            a.counters.tx_posted += posted as u64;
        }
        if let Some(q) = s.queues.get_mut(&qk) {
            if q.notification_enabled && posted > 0 {
                // New Tx work: the framework itself disarms and runs the queue.
                q.disable_pending = true;
            }
        }
        posted
    });
    pump(adapter);
    posted
}

/// One packet of the bench profile's stack, built once: its fragments' buffers with their MDLs, and its
/// layout.
#[cfg(feature = "bench-profile")]
pub(crate) struct Prebuilt {
    pub(crate) frags: Vec<(Vec<u8>, *mut MDL)>,
    pub(crate) layout: NET_PACKET_LAYOUT,
}

/// Builds `packets` (fragments each) once for [`post_prebuilt`]; free with [`free_prebuilt`].
#[cfg(feature = "bench-profile")]
pub(crate) fn build_prebuilt(packets: &[Vec<Vec<u8>>]) -> Vec<Prebuilt> {
    packets
        .iter()
        .map(|frags| Prebuilt {
            layout: layout_of(&frags.concat()),
            frags: frags
                .iter()
                .map(|f| {
                    let mut data = f.clone();
                    let len = u32::try_from(data.len()).unwrap_or(0);
                    let mdl = as_system(|| crate::mdl::allocate_sim(data.as_mut_ptr().cast(), len));
                    (data, mdl)
                })
                .collect(),
        })
        .collect()
}

/// Frees what [`build_prebuilt`] built (none of it may be on a ring).
#[cfg(feature = "bench-profile")]
pub(crate) fn free_prebuilt(packets: Vec<Prebuilt>) {
    for p in packets {
        for (_, mdl) in p.frags {
            as_system(|| crate::mdl::free_sim(mdl));
        }
    }
}

/// Posts prebuilt packets on the Tx ring as [`stack_send_fragments`] posts new ones (same ring writes,
/// same notification), without copying or allocating: the stack's buffers are reused as the TCP/IP stack
/// recycles its NBLs. Returns how many were posted.
#[cfg(feature = "bench-profile")]
pub(crate) fn post_prebuilt(adapter: usize, packets: &[Prebuilt]) -> usize {
    post_tx(
        adapter,
        packets,
        |p| p.frags.len(),
        |q, p| {
            for (data, mdl) in &p.frags {
                let fi = q.fr.hdr().EndIndex;
                let mut f = NET_FRAGMENT::default();
                f.set_capacity(data.len() as u64);
                f.set_valid_length(data.len() as u64);
                q.fr.set_fragment(fi, f);
                q.ext_va[fi as usize] = data.as_ptr() as usize;
                q.ext_mdl[fi as usize] = *mdl as usize;
                q.tx_buffers[fi as usize] = Some(TxBuffer { data: Vec::new(), mdl: *mdl, kept: true });
                q.fr.hdr().EndIndex = (fi + 1) & q.fr.mask();
            }
            p.layout
        },
    )
}

/// The stack sends one-fragment packets (see [`stack_send_fragments`]).
pub fn stack_send(adapter: usize, packets: &[Vec<u8>]) -> usize {
    let as_frags: Vec<Vec<Vec<u8>>> = packets.iter().map(|p| vec![p.clone()]).collect();
    stack_send_fragments(adapter, &as_frags)
}

/// Takes every packet the stack received (all of them checked well formed).
pub fn stack_received() -> Vec<Vec<u8>> {
    with(|s| std::mem::take(&mut s.received))
}

/// Whether the stack keeps received buffers (returning them only on [`stack_return_all`] or adapter
/// stop) instead of returning each at once.
pub fn stack_hold_returns(hold: bool) {
    with(|s| s.hold_returns = hold);
}

/// The stack is done with every buffer it holds: one `EvtAdapterReturnRxBuffer` per fragment.
pub fn stack_return_all(adapter: usize) {
    let Some((driver, held)) =
        with(|s| s.adapters.get_mut(&adapter).map(|a| (a.driver, std::mem::take(&mut a.held))))
    else {
        return;
    };
    return_buffers(adapter, driver, held);
}

/// The adapter's counters.
pub fn counters(adapter: usize) -> Option<Counters> {
    with(|s| s.adapters.get(&adapter).map(|a| a.counters))
}

/// The adapters of `device`.
pub fn adapters(device: usize) -> Vec<usize> {
    with(|s| s.devices.get(&device).map(|d| d.adapters.clone()).unwrap_or_default())
}

/// What the client declared: MTU, link state, whether started, and the Rx capabilities' modes.
#[derive(Clone, Copy, Debug)]
pub struct AdapterInfo {
    pub mtu: u32,
    pub link_connected: Option<bool>,
    pub started: bool,
    pub rx_driver_managed: bool,
    pub max_tx_link_speed: u64,
}

/// The adapter's declared state.
pub fn adapter_info(adapter: usize) -> Option<AdapterInfo> {
    with(|s| {
        s.adapters.get(&adapter).map(|a| AdapterInfo {
            mtu: a.mtu,
            link_connected: a.link.map(|l| l.MediaConnectState == MediaConnectStateConnected),
            started: a.started,
            rx_driver_managed: a
                .rx_caps
                .is_some_and(|r| r.AllocationMode == NetRxFragmentBufferAllocationModeDriver),
            max_tx_link_speed: a.link_caps.map_or(0, |l| l.MaxTxLinkSpeed),
        })
    })
}

/// The OS stops the adapter's data path (as on an NDIS pause): cancel, drain, stop, delete queues;
/// the stack returns what it holds.
pub fn adapter_stop(adapter: usize) {
    stop_datapath(adapter);
    stack_return_all(adapter);
    with(|s| s.adapters.get_mut(&adapter).map(|a| a.started = false));
}

/// The current IRQL is checked by the DDIs; tests may want it.
pub fn current_irql() -> KIRQL {
    irql()
}
