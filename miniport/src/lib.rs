//! rdco's NetAdapterCx tunnel miniport (see `docs/miniport.md` and `shared/design.md`).
//!
//! `DriverEntry` binds KMDF and NetAdapterCx through the project's version-binding stubs
//! ([`kernel::kmdf`], [`kernel::netcx`]) and creates the WDFDRIVER; `EvtDriverDeviceAdd` ([`device`])
//! creates the device, its ovpn-dco-win control device ([`ioctl`]), the adapter and its data path: Tx ([`txq`]), Rx
//! ([`rxq`]), the outer UDP socket ([`transport`]) and the keepalive timer ([`keepalive`]). `DriverEntry`
//! also creates the version control device (`\\.\ovpn-dco-ver`, [`ioctl::create_version_device`]).
#![no_std]

pub mod control;
mod device;
pub mod ioctl;
mod keepalive;
mod rxq;
mod tcp;
mod transport;
mod txq;

use kernel::ffi::ntos::{
    KeQueryInterruptTimePrecise, DRIVER_OBJECT, NTSTATUS, STATUS_SUCCESS, UNICODE_STRING,
};
use kernel::ffi::wdf::{WDFDRIVER, WDF_DRIVER_CONFIG};
use kernel::{kmdf, netcx};

/// Pool tag KMDF uses for this driver's framework allocations: 'rdMp'.
const DRIVER_POOL_TAG: u32 = u32::from_le_bytes(*b"rdMp");

/// `DriverEntry`: binds KMDF, creates the WDFDRIVER. PASSIVE_LEVEL, called once.
///
/// # Safety
/// Called by the I/O manager (or the simulated kernel) with a valid driver object and registry path.
pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: DriverEntry's own arguments, once per load.
    if let Err(status) = unsafe { kmdf::bind(driver, registry_path) } {
        return status;
    }
    // SAFETY: KMDF is bound.
    if let Err(status) = unsafe { netcx::bind_class() } {
        // SAFETY: bound above; undone in reverse.
        unsafe { kmdf::unbind() };
        return status;
    }
    let mut config = WDF_DRIVER_CONFIG::init(Some(device::evt_device_add));
    config.DriverPoolTag = DRIVER_POOL_TAG;
    config.EvtDriverUnload = Some(evt_driver_unload);
    // SAFETY: bound above; DriverEntry's arguments.
    match unsafe { kmdf::driver_create(driver, registry_path, &mut config) } {
        Ok(wdfdriver) => {
            // SAFETY: bound, and the WDFDRIVER exists.
            unsafe { kmdf::displace_unload(driver) };
            // Without it only `rdco dco version`-style queries fail; the adapter works: not fatal.
            // Deleted first in EvtDriverUnload (reverse order).
            let _ = ioctl::create_version_device(wdfdriver);
            STATUS_SUCCESS
        }
        Err(status) => {
            // SAFETY: both binds succeeded and nothing else holds the framework; undone in reverse.
            unsafe { netcx::unbind_class() };
            // SAFETY: as above.
            unsafe { kmdf::unbind() };
            status
        }
    }
}

/// `EvtDriverUnload`: deletes the version control device, then unbinds the class (reverse of
/// `DriverEntry`). PASSIVE_LEVEL, once, before KMDF unbinds.
unsafe extern "system" fn evt_driver_unload(_driver: WDFDRIVER) {
    ioctl::delete_version_device();
    // SAFETY: the class bind succeeded in DriverEntry.
    unsafe { netcx::unbind_class() };
}

/// Now, for the engine's timers: interrupt time in milliseconds. Any IRQL.
pub(crate) fn now() -> datapath::Instant {
    // SAFETY: callable at any IRQL; a null QPC out-pointer is allowed.
    let hundred_ns = unsafe { KeQueryInterruptTimePrecise(core::ptr::null_mut()) };
    datapath::Instant::from_millis(hundred_ns / 10_000)
}

/// Hooks for the host tests (the simulated kernel); not built for Windows.
#[cfg(not(target_os = "windows"))]
#[doc(hidden)]
pub mod test_hooks {
    use kernel::ffi::ntos::NTSTATUS;

    use crate::control::{Reply, Snapshot};
    use crate::device::{context_of, DeviceContext};

    /// TEST HOOK (benches): with `on`, the Tx path gathers each packet's fragments into a scratch buffer
    /// and seals the copy (the gather-copy design the zero-copy path replaces) instead of sealing straight
    /// from the fragments.
    pub fn set_tx_gather_copy(on: bool) {
        crate::txq::GATHER_COPY.store(on, core::sync::atomic::Ordering::Relaxed);
    }
    /// The data path's counters, as plain numbers.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DataCounters {
        pub tx_sealed: u64,
        pub tx_dropped: u64,
        pub tx_gathered: u64,
        pub tx_batches: u64,
        pub tx_send_errors: u64,
        pub tx_in_flight: u64,
        pub rx_opened: u64,
        pub rx_linearized: u64,
        pub rx_copied_bytes: u64,
        pub rx_dropped: u64,
        pub rx_keepalives: u64,
        pub rx_control: u64,
        pub rx_indicated: u64,
        pub rx_returns: u64,
        pub rx_bad_returns: u64,
        pub rx_released: u64,
        pub rx_release_batches: u64,
        pub rx_lent: u64,
        pub rx_waiting: u64,
        pub keepalive_pings: u64,
        pub rx_floats: u64,
        pub keepalive_timeouts: u64,
    }

    fn ctx(device: usize) -> Option<&'static DeviceContext> {
        context_of(device as *mut core::ffi::c_void)
    }

    /// TEST HOOK: runs a control IOCTL on the device's tunnel and applies its transport and link
    /// effects as the control glue does. Call inside the miniport's driver context at PASSIVE_LEVEL.
    /// Returns the reply and, when a socket was opened, its bound port.
    pub fn ioctl(
        device: usize,
        code: u32,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(Reply, Option<u16>), NTSTATUS> {
        let ctx = ctx(device).ok_or(kernel::ffi::ntos::STATUS_INVALID_DEVICE_STATE)?;
        let (reply, checkpoint) = {
            let mut t = ctx.tunnel.lock();
            let checkpoint = t.checkpoint(code);
            (t.ioctl(code, input, output, crate::now())?, checkpoint)
        };
        let bound = crate::transport::apply(ctx, &reply.effects).inspect_err(|_| {
            ctx.tunnel.lock().rollback(checkpoint);
        })?;
        Ok((reply, bound.map(|a| a.port())))
    }

    /// TEST HOOK: the tunnel's snapshot (call inside the driver context).
    pub fn snapshot(device: usize) -> Option<Snapshot> {
        ctx(device).map(|c| c.tunnel.lock().snapshot())
    }

    /// TEST HOOK: a `ReadFile` of the control channel (call inside the driver context).
    pub fn read(device: usize, out: &mut [u8]) -> Result<crate::control::ReadResult, NTSTATUS> {
        ctx(device).ok_or(kernel::ffi::ntos::STATUS_INVALID_DEVICE_STATE)?.tunnel.lock().read(out)
    }

    /// TEST HOOK: the bound port of the device's socket.
    pub fn local_port(device: usize) -> Option<u16> {
        ctx(device)?.transport.local_addr().map(|a| a.port())
    }

    /// TEST HOOK: sets the adapter's MTU (as the control glue will; call inside the driver context at
    /// PASSIVE_LEVEL).
    pub fn set_mtu(device: usize, mtu: u32) -> Result<(), NTSTATUS> {
        ctx(device).ok_or(kernel::ffi::ntos::STATUS_INVALID_DEVICE_STATE)?.set_mtu(mtu)
    }

    /// TEST HOOK: runs the keepalive timers once, as the timer DPC does (call inside the driver context).
    pub fn keepalive_poll(device: usize) {
        if let Some(c) = ctx(device) {
            crate::keepalive::poll(c);
        }
    }

    /// The TCP transport's counters, as plain numbers (`tcp::TcpCounters`), and the TCP Rx pool
    /// buffers out now.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TcpCounters {
        pub records: u64,
        pub straddled: u64,
        pub copied_records: u64,
        pub copied_bytes: u64,
        pub zero_length: u64,
        pub too_long: u64,
        pub disconnects: u64,
        pub pool_exhausted: u64,
        pub buffers_out: u64,
    }

    /// TEST HOOK: the TCP transport's counters.
    pub fn tcp_counters(device: usize) -> Option<TcpCounters> {
        use core::sync::atomic::Ordering::Relaxed;
        let t = &ctx(device)?.transport.tcp;
        let k = &t.counters;
        Some(TcpCounters {
            records: k.records.load(Relaxed),
            straddled: k.straddled.load(Relaxed),
            copied_records: k.copied_records.load(Relaxed),
            copied_bytes: k.copied_bytes.load(Relaxed),
            zero_length: k.zero_length.load(Relaxed),
            too_long: k.too_long.load(Relaxed),
            disconnects: k.disconnects.load(Relaxed),
            pool_exhausted: k.pool_exhausted.load(Relaxed),
            buffers_out: t.buffers_out() as u64,
        })
    }

    /// TEST HOOK: the data path's counters.
    pub fn counters(device: usize) -> Option<DataCounters> {
        use core::sync::atomic::Ordering::Relaxed;
        let c = ctx(device)?;
        let k = &c.counters;
        let (lent, waiting) = c.rx.outstanding();
        Some(DataCounters {
            tx_sealed: k.tx_sealed.load(Relaxed),
            tx_dropped: k.tx_dropped.load(Relaxed),
            tx_gathered: k.tx_gathered.load(Relaxed),
            tx_batches: k.tx_batches.load(Relaxed),
            tx_send_errors: k.tx_send_errors.load(Relaxed),
            tx_in_flight: c.tx.in_flight() as u64,
            rx_opened: k.rx_opened.load(Relaxed),
            rx_linearized: k.rx_linearized.load(Relaxed),
            rx_copied_bytes: k.rx_copied_bytes.load(Relaxed),
            rx_dropped: k.rx_dropped.load(Relaxed),
            rx_keepalives: k.rx_keepalives.load(Relaxed),
            rx_control: k.rx_control.load(Relaxed),
            rx_indicated: k.rx_indicated.load(Relaxed),
            rx_returns: k.rx_returns.load(Relaxed),
            rx_bad_returns: k.rx_bad_returns.load(Relaxed),
            rx_released: k.rx_released.load(Relaxed),
            rx_release_batches: k.rx_release_batches.load(Relaxed),
            rx_lent: lent as u64,
            rx_waiting: waiting as u64,
            keepalive_pings: k.keepalive_pings.load(Relaxed),
            rx_floats: k.rx_floats.load(Relaxed),
            keepalive_timeouts: k.keepalive_timeouts.load(Relaxed),
        })
    }
}

/// The image's entry point on Windows; the host calls [`driver_entry`] directly.
///
/// # Safety
/// As for [`driver_entry`].
#[cfg(target_os = "windows")]
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut DRIVER_OBJECT,
    registry_path: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: forwarded from the I/O manager unchanged.
    unsafe { driver_entry(driver, registry_path) }
}
