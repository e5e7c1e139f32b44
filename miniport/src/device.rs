//! `EvtDriverDeviceAdd`: the WDFDEVICE, its [`DeviceContext`], the NETADAPTER and its capabilities.
//!
//! Object contexts: the device, the adapter and both packet queues each carry one pointer-sized context
//! ([`PTR_CONTEXT`]) holding the address of the device's [`DeviceContext`], which lives in non-paged pool
//! from `EvtDriverDeviceAdd` until the device's `EvtCleanupCallback` (after the data path stopped and the
//! adapter was deleted: the simulated kernel and KMDF delete children first). Every callback finds its
//! state through that pointer, so several devices work side by side.
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use kernel::ffi::netcx::{
    MediaConnectStateConnected, MediaConnectStateDisconnected, MediaDuplexStateFull, NETADAPTER,
    NET_ADAPTER_DATAPATH_CALLBACKS, NET_ADAPTER_LINK_LAYER_CAPABILITIES, NET_ADAPTER_LINK_STATE,
    NET_ADAPTER_RX_CAPABILITIES, NET_ADAPTER_TX_CAPABILITIES,
};
use kernel::ffi::ntos::{NTSTATUS, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_PARAMETER, STATUS_SUCCESS};
use kernel::ffi::wdf::{
    PWDFDEVICE_INIT, WDFDEVICE, WDFDRIVER, WDFOBJECT, WDF_OBJECT_ATTRIBUTES, WDF_OBJECT_CONTEXT_TYPE_INFO,
};
use kernel::pool::PoolBox;
use kernel::sync::SpinLock;
use kernel::{kmdf, netcx};

use crate::control::Tunnel;
use crate::rxq::RxState;
use crate::transport::Transport;
use crate::txq::TxState;

/// Pool tag of the device context and the data path's pools: 'rdMd'.
pub(crate) const DATA_POOL_TAG: u32 = u32::from_le_bytes(*b"rdMd");
/// Largest MTU the adapter accepts (an IP-only tunnel over a 1500-byte path; OpenVPN's default).
pub(crate) const MAX_MTU: u32 = 1500;
/// MTU the adapter starts with.
pub(crate) const DEFAULT_MTU: u32 = 1500;
/// Link speed the adapter reports (a virtual link: a nominal 1 Gbit/s, as ovpn-dco-win does).
const LINK_SPEED: u64 = 1_000_000_000;

/// The type info of the one-pointer context on the device, the adapter and the queues.
#[repr(transparent)]
pub(crate) struct TypeInfo(WDF_OBJECT_CONTEXT_TYPE_INFO);
// SAFETY: immutable static data; the pointers point at other statics.
unsafe impl Sync for TypeInfo {}

/// `WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(PVOID, ...)`: a pointer to the [`DeviceContext`].
pub(crate) static PTR_CONTEXT: TypeInfo = TypeInfo(WDF_OBJECT_CONTEXT_TYPE_INFO {
    Size: core::mem::size_of::<WDF_OBJECT_CONTEXT_TYPE_INFO>() as u32,
    ContextName: c"RDCO_DEVICE_POINTER".as_ptr().cast(),
    ContextSize: core::mem::size_of::<usize>(),
    UniqueType: core::ptr::null(),
    EvtDriverGetUniqueContextType: core::ptr::null(),
});

/// Counters of the data path (besides the tunnel's `OvpnStats` and per-peer counters). Any IRQL.
#[derive(Debug, Default)]
pub(crate) struct DataCounters {
    /// Tx packets sealed and handed to WSK.
    pub(crate) tx_sealed: AtomicU64,
    /// Tx packets dropped (no peer, no key, no socket, too big, send error).
    pub(crate) tx_dropped: AtomicU64,
    /// Tx packets the engine gathered (copied) before sealing (ring backend's one-pass seal).
    pub(crate) tx_gathered: AtomicU64,
    /// `WskSendMessages` calls.
    pub(crate) tx_batches: AtomicU64,
    /// WSK send completions with an error status.
    pub(crate) tx_send_errors: AtomicU64,
    /// Rx datagrams opened in place and queued for the Rx ring.
    pub(crate) rx_opened: AtomicU64,
    /// Rx datagrams that spanned several MDLs: linearized for the AEAD and written back in place.
    pub(crate) rx_linearized: AtomicU64,
    /// Rx plaintext bytes copied (only the linearized ones; zero on the zero-copy path).
    pub(crate) rx_copied_bytes: AtomicU64,
    /// Rx datagrams dropped (authentication, replay, no key, queue full).
    pub(crate) rx_dropped: AtomicU64,
    /// Keepalive pings received and dropped after decryption.
    pub(crate) rx_keepalives: AtomicU64,
    /// Control-channel packets queued for user mode.
    pub(crate) rx_control: AtomicU64,
    /// Rx packets indicated on the ring.
    pub(crate) rx_indicated: AtomicU64,
    /// `EvtAdapterReturnRxBuffer` calls.
    pub(crate) rx_returns: AtomicU64,
    /// Return contexts no lent datagram had (never expected).
    pub(crate) rx_bad_returns: AtomicU64,
    /// Datagrams handed back with `WskRelease` from the return path.
    pub(crate) rx_released: AtomicU64,
    /// `WskRelease` calls from the return path (batches).
    pub(crate) rx_release_batches: AtomicU64,
    /// Server-mode peers that floated to a new address (a `FLOAT_PEER` notification each).
    pub(crate) rx_floats: AtomicU64,
    /// Keepalive pings sent.
    pub(crate) keepalive_pings: AtomicU64,
    /// Keepalive timeouts seen.
    pub(crate) keepalive_timeouts: AtomicU64,
}

/// Everything one device's callbacks share. Lives in non-paged pool; see the module documentation.
pub(crate) struct DeviceContext {
    /// The ovpn-dco-win control state (peers, keys, keepalive). Spin lock: DISPATCH_LEVEL.
    pub(crate) tunnel: SpinLock<Tunnel>,
    /// The NETADAPTER (0 before `NetAdapterCreate`).
    pub(crate) adapter: AtomicUsize,
    /// Whether the link is up (reported through `NetAdapterSetLinkState`).
    #[cfg_attr(target_os = "windows", allow(dead_code))]
    pub(crate) link_up: AtomicBool,
    /// The current MTU.
    pub(crate) mtu: AtomicUsize,
    /// The outer UDP socket.
    pub(crate) transport: Transport,
    /// The Tx queue and its ciphertext pool.
    pub(crate) tx: TxState,
    /// The Rx queue, the received datagrams and the ones lent to the OS.
    pub(crate) rx: RxState,
    /// Counters.
    pub(crate) counters: DataCounters,
    /// The keepalive timer.
    pub(crate) keepalive: crate::keepalive::Keepalive,
}

impl DeviceContext {
    fn new() -> Result<DeviceContext, NTSTATUS> {
        Ok(DeviceContext {
            tunnel: SpinLock::new(Tunnel::new()?),
            adapter: AtomicUsize::new(0),
            link_up: AtomicBool::new(false),
            mtu: AtomicUsize::new(DEFAULT_MTU as usize),
            transport: Transport::new(),
            tx: TxState::new(),
            rx: RxState::new(),
            counters: DataCounters::default(),
            keepalive: crate::keepalive::Keepalive::new(),
        })
    }

    /// The NETADAPTER.
    pub(crate) fn adapter(&self) -> NETADAPTER {
        self.adapter.load(Ordering::Acquire) as NETADAPTER
    }

    /// Reports the link state to NetAdapterCx: up when the tunnel has a peer and is started.
    /// IRQL <= DISPATCH_LEVEL (`NetAdapterSetLinkState`). Called through `transport::apply` (by the
    /// control glue after every request, and by the tests' hook).
    pub(crate) fn set_link(&self, up: bool) {
        self.link_up.store(up, Ordering::Release);
        let adapter = self.adapter();
        if adapter.is_null() {
            return;
        }
        let mut state = link_state(up);
        // SAFETY: our live adapter; the state lives on this frame.
        unsafe { netcx::set_link_state(adapter, &mut state) };
    }

    /// Sets the MTU (576, IPv4's minimum, up to [`MAX_MTU`]). PASSIVE_LEVEL. `STATUS_INVALID_PARAMETER`
    /// otherwise, changing nothing. Reached from the tests' hook only: ovpn-dco-win's API has no MTU request.
    #[cfg_attr(target_os = "windows", allow(dead_code))]
    pub(crate) fn set_mtu(&self, mtu: u32) -> Result<(), NTSTATUS> {
        if !(576..=MAX_MTU).contains(&mtu) {
            return Err(STATUS_INVALID_PARAMETER);
        }
        self.mtu.store(mtu as usize, Ordering::Release);
        let adapter = self.adapter();
        if !adapter.is_null() {
            // SAFETY: our live adapter, PASSIVE_LEVEL.
            unsafe { netcx::set_mtu(adapter, mtu) };
        }
        Ok(())
    }
}

fn link_state(up: bool) -> NET_ADAPTER_LINK_STATE {
    if up {
        NET_ADAPTER_LINK_STATE::init(LINK_SPEED, MediaConnectStateConnected, MediaDuplexStateFull)
    } else {
        NET_ADAPTER_LINK_STATE::init(0, MediaConnectStateDisconnected, MediaDuplexStateFull)
    }
}

/// Attributes that give an object the one-pointer context.
pub(crate) fn pointer_attributes() -> WDF_OBJECT_ATTRIBUTES {
    let mut a = WDF_OBJECT_ATTRIBUTES::init();
    a.ContextTypeInfo = &raw const PTR_CONTEXT.0;
    a
}

/// Stores `ctx` in `object`'s pointer context. PASSIVE_LEVEL (object creation).
pub(crate) fn attach(object: WDFOBJECT, ctx: &'static DeviceContext) -> Result<(), NTSTATUS> {
    // SAFETY: a live object created with `pointer_attributes`.
    let slot = unsafe { kmdf::object_context(object, &PTR_CONTEXT.0) }.cast::<usize>();
    if slot.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: the framework's context storage holds one pointer-sized, aligned value.
    unsafe { slot.write(core::ptr::from_ref(ctx) as usize) };
    Ok(())
}

/// The device context reachable from `object`'s pointer context, if set. Any IRQL.
pub(crate) fn context_of(object: *mut c_void) -> Option<&'static DeviceContext> {
    if object.is_null() {
        return None;
    }
    // SAFETY: a live object of ours (the framework passes its own handles to our callbacks).
    let slot = unsafe { kmdf::object_context(object.cast(), &PTR_CONTEXT.0) }.cast::<usize>();
    if slot.is_null() {
        return None;
    }
    // SAFETY: our context storage, written by `attach` (zero until then).
    let p = unsafe { slot.read() } as *const DeviceContext;
    // SAFETY: null or a DeviceContext that lives until the device's cleanup callback, which runs after
    // every callback of the device's children.
    unsafe { p.as_ref() }
}

/// `EvtCleanupCallback` of the WDFDEVICE. PASSIVE_LEVEL. The adapter is gone: stops the keepalive timer,
/// closes the socket (nothing is lent any more), frees the pools and the context.
unsafe extern "system" fn evt_device_cleanup(device: WDFOBJECT) {
    let Some(ctx) = context_of(device.cast()) else { return };
    ctx.keepalive.stop();
    ctx.rx.drop_queued(ctx);
    ctx.rx.flush_releases(ctx);
    crate::transport::close(ctx);
    if ctx.transport.holds_context() {
        // A socket with datagrams still lent could not close (never expected: the adapter, and with it
        // every lent buffer, is gone). Its callbacks and sends still reach the context and the pools, so
        // they are leaked rather than freed under it.
        return;
    }
    ctx.tx.free_pool();
    ctx.keepalive.free();
    // SAFETY: the slot held the address of the PoolBox leaked in `evt_device_add`; no callback of this
    // device runs any more.
    let slot = unsafe { kmdf::object_context(device, &PTR_CONTEXT.0) }.cast::<usize>();
    if !slot.is_null() {
        // SAFETY: as above: the context storage of the device.
        unsafe { slot.write(0) };
    }
    let raw = core::ptr::from_ref(ctx).cast_mut();
    // SAFETY: `raw` came from PoolBox::into_raw with DATA_POOL_TAG and is reclaimed once.
    drop(unsafe { PoolBox::from_raw(raw, DATA_POOL_TAG) });
}

/// `EvtDriverDeviceAdd`. PASSIVE_LEVEL. Creates the device (with the control glue's device init and
/// objects), the adapter with an IP-only link layer, driver-managed Rx buffers and the data path
/// callbacks, and starts it with the link down (it follows the peer).
pub(crate) unsafe extern "system" fn evt_device_add(
    _driver: WDFDRIVER,
    mut init: PWDFDEVICE_INIT,
) -> NTSTATUS {
    match device_add(&mut init) {
        Ok(()) => STATUS_SUCCESS,
        Err(s) => s,
    }
}

fn device_add(init: &mut PWDFDEVICE_INIT) -> Result<(), NTSTATUS> {
    // SAFETY: the framework's init for this callback.
    unsafe { netcx::device_init_config(*init) }?;
    crate::ioctl::init_device(*init)?;
    let context = PoolBox::new(DeviceContext::new()?, DATA_POOL_TAG)?;
    context.rx.setup()?;
    context.rx.bind_returns(&context);
    let mut attributes = pointer_attributes();
    attributes.EvtCleanupCallback = Some(evt_device_cleanup);
    // SAFETY: the framework's init, before WdfDeviceCreate.
    let device = unsafe { kmdf::device_create(init, Some(&mut attributes)) }?;
    // From here the device owns the context: its cleanup callback frees it (also when a later step fails
    // and the framework deletes the device).
    let raw = context.into_raw();
    // SAFETY: just leaked; it lives until the device's cleanup callback.
    let ctx: &'static DeviceContext = unsafe { &*raw };
    if let Err(s) = attach(device.cast(), ctx) {
        // SAFETY: reclaimed once; the device's cleanup sees a null context.
        drop(unsafe { PoolBox::from_raw(raw, DATA_POOL_TAG) });
        return Err(s);
    }
    crate::ioctl::create(device, ctx)?;
    create_adapter(device, ctx)
}

fn create_adapter(device: WDFDEVICE, ctx: &'static DeviceContext) -> Result<(), NTSTATUS> {
    let mut callbacks = NET_ADAPTER_DATAPATH_CALLBACKS::init(
        Some(crate::txq::evt_create_txqueue),
        Some(crate::rxq::evt_create_rxqueue),
    );
    let mut attributes = pointer_attributes();
    // SAFETY: our device, PASSIVE_LEVEL.
    let adapter = unsafe { netcx::adapter_create(device, &mut callbacks, Some(&mut attributes)) }?;
    attach(adapter.cast(), ctx)?;
    ctx.adapter.store(adapter as usize, Ordering::Release);
    let mut tx = NET_ADAPTER_TX_CAPABILITIES::init(1);
    let mut rx = NET_ADAPTER_RX_CAPABILITIES::init_driver_managed(
        Some(crate::rxq::evt_return_rx_buffer),
        MAX_MTU as usize,
        1,
    );
    let mut link = NET_ADAPTER_LINK_LAYER_CAPABILITIES::init(LINK_SPEED, LINK_SPEED);
    let mut state = link_state(false);
    // SAFETY: our adapter, PASSIVE_LEVEL, before NetAdapterStart.
    unsafe { netcx::set_datapath_capabilities(adapter, &mut tx, &mut rx) };
    // SAFETY: as above.
    unsafe { netcx::set_link_layer_capabilities(adapter, &mut link) };
    // SAFETY: as above.
    unsafe { netcx::set_mtu(adapter, DEFAULT_MTU) };
    // SAFETY: as above.
    unsafe { netcx::set_link_state(adapter, &mut state) };
    // SAFETY: as above.
    unsafe { netcx::adapter_start(adapter) }?;
    ctx.keepalive.start(ctx);
    Ok(())
}
