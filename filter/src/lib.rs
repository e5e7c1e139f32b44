//! rdco's NDIS 6 lightweight filter driver (see `docs/filter.md` and `shared/design.md`).
//!
//! At this stage the filter is a transparent modifying filter: it registers with NDIS, attaches to every
//! Ethernet miniport its INF binds it to, keeps a per-module state machine, and registers no send or
//! receive handlers, so NDIS bypasses it on the data path. Its control device (`control`) configures the
//! engine's peer table, keys and policy and carries events; the tunnel divert and the WSK worker grow on
//! this skeleton.
//!
//! Build modes: on the host this crate is an `rlib` that tests load into the simulated kernel through
//! [`driver_entry`]; `cargo xtask package` builds it as `filter.sys`, where the exported `DriverEntry`
//! forwards to the same function.
#![no_std]

mod callbacks;
mod classify;
mod control;
mod driver;
mod hold;
mod offload;
mod oid;
mod pause;
mod pnp;
mod receive;
mod send;
mod status;
mod transport;
mod worker;

pub use driver::driver_entry;

/// Host-only hooks for tests (never in a kernel image): they stand in for data-path code that does not
/// exist yet.
#[cfg(not(target_os = "windows"))]
#[doc(hidden)]
pub mod test_hooks {
    /// TEST HOOK: queues an event as the data path will (keepalive timeout, rekey, float), completing a
    /// pended `IOCTL_RDCO_FILTER_READ_EVENT`. Call inside the filter's driver context at IRQL <=
    /// DISPATCH_LEVEL. Returns false if the filter is not loaded or an older event was dropped.
    pub fn queue_event(
        kind: uapi::rdco_filter::RdcoEventKind,
        peer_id: u32,
        address: Option<core::net::SocketAddr>,
    ) -> bool {
        crate::control::queue_event(kind, peer_id, address)
    }

    /// TEST HOOK: the policy as the control device stored it (call inside the filter's driver context).
    pub fn policy() -> [Option<datapath::peer::IpPrefix>; uapi::rdco_filter::MAX_POLICY_PREFIXES] {
        crate::control::CONFIG
            .lock()
            .as_ref()
            .map_or([None; uapi::rdco_filter::MAX_POLICY_PREFIXES], |c| c.policy)
    }

    /// TEST HOOK: every peer route (prefix, owner), sorted (call inside the filter's driver context).
    pub fn routes() -> arrayvec::ArrayVec<(datapath::peer::IpPrefix, u32), { uapi::rdco_filter::MAX_ROUTES }>
    {
        use datapath::peer::IpPrefix;
        let guard = crate::control::CONFIG.lock();
        let mut r: arrayvec::ArrayVec<_, { uapi::rdco_filter::MAX_ROUTES }> =
            guard.as_ref().map(|c| c.routes().iter().copied().collect()).unwrap_or_default();
        drop(guard);
        r.sort_unstable_by_key(|(p, id)| match *p {
            IpPrefix::V4(a, l) => (4u8, u128::from(u32::from_be_bytes(a)), l, *id),
            IpPrefix::V6(a, l) => (6u8, u128::from_be_bytes(a), l, *id),
        });
        r
    }

    /// TEST HOOK: the peer a diverted packet to `dst` goes to (longest prefix, or the only peer), as the
    /// worker decides it (call inside the filter's driver context).
    pub fn route_of(dst: datapath::peer::InnerDest) -> Option<u32> {
        crate::control::CONFIG.lock().as_ref().and_then(|c| c.route(dst))
    }

    /// TEST HOOK: a peer's key ids (primary, secondary), or `None` for an unknown peer (call inside the
    /// filter's driver context).
    pub fn peer_keys(peer_id: u32) -> Option<(Option<u8>, Option<u8>)> {
        let guard = crate::control::CONFIG.lock();
        let peer = guard.as_ref()?.peers.peer(peer_id)?;
        Some((peer.keys().primary().map(|k| k.key_id()), peer.keys().secondary().map(|k| k.key_id())))
    }

    /// TEST HOOK: stands in for the WSK receive event (the transport is another engineer's): hands
    /// `datagram` (a UDP payload from `from`) to the receive path's `indicate_datagram` on the module
    /// whose NdisFilterHandle is `module`. Call inside the filter's driver context at IRQL <=
    /// DISPATCH_LEVEL, on the thread that drives attach/detach. Returns the NDIS status, or
    /// `NDIS_STATUS_INVALID_PARAMETER` for an unknown module.
    pub fn indicate_datagram(module: usize, datagram: &[u8], from: core::net::SocketAddr) -> i32 {
        let Some(m) = crate::receive::find_module(module) else {
            return kernel::ffi::ndis::NDIS_STATUS_INVALID_PARAMETER;
        };
        let from = match from {
            core::net::SocketAddr::V4(a) => datapath::Endpoint::V4 { addr: a.ip().octets(), port: a.port() },
            core::net::SocketAddr::V6(a) => datapath::Endpoint::V6 { addr: a.ip().octets(), port: a.port() },
        };
        // SAFETY: the module is attached (found above) and stays so on this thread for the call.
        crate::receive::indicate_datagram(unsafe { &*m }, datagram.len(), core::iter::once(datagram), from)
    }

    /// TEST HOOK: NBLs the module with NdisFilterHandle `module` indicated up and has not had back.
    pub fn rx_outstanding(module: usize) -> Option<i64> {
        // SAFETY: the module is attached (found) and stays so on this thread for the call.
        crate::receive::find_module(module).map(|m| unsafe { &*m }.rx.outstanding())
    }

    /// TEST HOOK: sets the hold policy (see `hold.rs`): originals queued before the budget trigger, the
    /// queue-time budget (ms), the deep-copy ceiling (bytes) and how long a copy waits for the transport
    /// (ms).
    /// Unlike `IOCTL_RDCO_FILTER_SET_HOLD_POLICY` it takes values outside the accepted ranges (a zero
    /// budget, for tests that want every NBL copied at once).
    pub fn set_hold_policy(budget_nbls: u32, budget_ms: u32, ceiling_bytes: u32, copy_max_age_ms: u32) {
        crate::hold::set_policy(&uapi::rdco_filter::RdcoHoldPolicy {
            budget_nbls,
            budget_ms,
            ceiling_bytes,
            copy_max_age_ms,
        });
    }

    /// TEST HOOK (benches): with `on`, the send worker copies each packet out of its MDLs into a
    /// scratch buffer and seals the copy (the copy-then-seal design the zero-copy path replaces; the copy
    /// is counted in `offload_copies`), instead of sealing straight from the MDLs.
    pub fn set_copy_then_seal(on: bool) {
        crate::worker::COPY_THEN_SEAL.store(on, core::sync::atomic::Ordering::Relaxed);
    }

    /// TEST HOOK: the hold policy in force (budget NBLs, budget ms, ceiling bytes, copy max age ms),
    /// read from the atomics the data path uses.
    pub fn hold_policy() -> (u32, u32, u32, u32) {
        let p = crate::hold::policy();
        (p.budget_nbls, p.budget_ms, p.ceiling_bytes, p.copy_max_age_ms)
    }

    /// The send path's counters beyond `RdcoStats`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SendCounters {
        /// Deep copies by trigger: hold budget, transport not ready, pause/detach/leaving D0.
        pub copies_budget: u64,
        pub copies_not_ready: u64,
        pub copies_pause: u64,
        /// Originals completed with NDIS_STATUS_SEND_ABORTED by a cancel.
        pub cancelled: u64,
        /// NBLs completed with a failure because the deep-copy ceiling was reached.
        pub ceiling_drops: u64,
        /// Payload bytes held in deep copies now.
        pub copy_bytes: u64,
        /// Packets built in a scratch buffer for offloads (checksum, LSO/USO segments).
        pub offload_copies: u64,
        /// Super-packets segmented in software.
        pub segmented: u64,
    }

    /// TEST HOOK: the send path's counters (global atomics; no driver context needed).
    pub fn send_counters() -> SendCounters {
        use core::sync::atomic::Ordering::Relaxed;
        let s = &crate::control::STATS;
        SendCounters {
            copies_budget: s.holds_budget.load(Relaxed),
            copies_not_ready: s.holds_not_ready.load(Relaxed),
            copies_pause: s.holds_pause.load(Relaxed),
            cancelled: s.send_aborted.load(Relaxed),
            ceiling_drops: crate::hold::CEILING_DROPS.load(Relaxed),
            copy_bytes: crate::hold::COPY_BYTES.load(Relaxed) as u64,
            offload_copies: s.offload_copies.load(Relaxed),
            segmented: s.segmented.load(Relaxed),
        }
    }

    /// TEST HOOK: runs the driver's 1 s tick work (keepalive poll, hold-budget check, worker kick) now.
    /// Call inside the filter's driver context at DISPATCH_LEVEL.
    pub fn tick() {
        crate::transport::keepalive_poll();
        crate::worker::tick_all();
    }

    /// TEST HOOK: copies the receive path indicated from its reserve slots with
    /// `NDIS_RECEIVE_FLAGS_RESOURCES` because the protocol held every other slot (a global atomic).
    pub fn rx_reserve_indications() -> u64 {
        crate::receive::RESERVE_INDICATIONS.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// A test's observer of the receive path's AEAD pass (see [`set_before_authenticate`]).
    pub type AuthenticateHook = fn(peer_id: u32);

    static BEFORE_AUTHENTICATE: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    /// TEST HOOK: `hook(peer_id)` is called by the receive path right before each AEAD pass of a split
    /// open (on the receiving thread, with no filter lock held), until replaced or cleared with `None`.
    /// Tests use it to hold one receive inside its AEAD while another runs.
    pub fn set_before_authenticate(hook: Option<AuthenticateHook>) {
        BEFORE_AUTHENTICATE.store(hook.map_or(0, |f| f as usize), core::sync::atomic::Ordering::Release);
    }

    /// Calls the hook set with [`set_before_authenticate`], if any.
    pub(crate) fn before_authenticate(peer_id: u32) {
        let raw = BEFORE_AUTHENTICATE.load(core::sync::atomic::Ordering::Acquire);
        if raw != 0 {
            // SAFETY: `raw` was stored from an `AuthenticateHook` by `set_before_authenticate`; fn
            // pointers and usize have the same size on every target this module builds for.
            let hook = unsafe { core::mem::transmute::<usize, AuthenticateHook>(raw) };
            hook(peer_id);
        }
    }

    /// TEST HOOK: how many events were dropped because the queue was full.
    pub fn events_lost() -> u64 {
        crate::control::EVENTS_LOST.load(core::sync::atomic::Ordering::Relaxed)
    }
}

/// The image's entry point on Windows; the host calls [`driver_entry`] directly.
///
/// # Safety
/// Called once by the I/O manager at PASSIVE_LEVEL with a valid driver object and registry path.
#[cfg(target_os = "windows")]
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut kernel::ffi::ntos::DRIVER_OBJECT,
    registry_path: *mut kernel::ffi::ntos::UNICODE_STRING,
) -> kernel::ffi::ntos::NTSTATUS {
    // SAFETY: forwarded from the I/O manager unchanged.
    unsafe { driver_entry(driver, registry_path) }
}
