//! Winsock Kernel over real UDP sockets on loopback, and the driver-allocated IRPs WSK runs on.
//!
//! # What is modelled (and from where)
//! * **IRPs** (`IoAllocateIrp`, `IoFreeIrp`, `IoReuseIrp`, `IofCompleteRequest`): an IRP from
//!   `IoAllocateIrp(StackSize)` has no current stack location (`CurrentLocation == StackSize + 1`); the
//!   client sets its completion routine in the next one (`IoSetCompletionRoutine`, Wine `ddk/wdm.h`) and
//!   passes the IRP to a WSK function. The provider makes that location current (as `IoCallDriver` would)
//!   and completes the IRP later: `IoStatus` is set and the completion routine runs at the IRQL of the
//!   completer, <= `DISPATCH_LEVEL`. An IRP the driver allocated itself can only be finished by the driver,
//!   so its completion routine must return `STATUS_MORE_PROCESSING_REQUIRED` and then reuse or free it
//!   (`IoAllocateIrp` / `IoFreeIrp` / `IoReuseIrp` docs; ovpn-dco-win `socket.cpp` frees in the routine).
//!   IRP memory is pool (tag `Irp `), so a leaked IRP is a `pool.leak_at_unload`.
//! * **Registration** (`WskRegister`, `WskCaptureProviderNPI`, `WskReleaseProviderNPI`, `WskDeregister`,
//!   `WskQueryProviderCharacteristics`): the provider NPI's `Dispatch` is a static
//!   `WSK_PROVIDER_DISPATCH`; `Client` is the registration (opaque to the client).
//! * **Datagram sockets** (`WskSocket` with `WSK_FLAG_DATAGRAM_SOCKET`): `WskControlSocket`
//!   (`SO_WSK_EVENT_CALLBACK` with or without an IRP, the usual UDP options, `SIO_WSK_SET_REMOTE_ADDRESS`),
//!   `WskBind` to a real `std::net::UdpSocket` on 127.0.0.1 / ::1 (the wildcard address binds loopback),
//!   `WskGetLocalAddress`, `WskSendTo`, `WskSendMessages` (each `WSK_BUF_LIST` element one datagram),
//!   `WskCloseSocket`, `WskRelease`. Control operations complete inline (the completion routine runs before
//!   the call returns, and the call returns the final status, as the WSK docs allow: "the WSK subsystem
//!   always calls the IRP's completion routine"); sends return `STATUS_PENDING` and complete from
//!   [`pump`] (or the optional poller thread) at `DISPATCH_LEVEL`, unless [`SendCompletion::Inline`].
//! * **Receive** (`PFN_WSK_RECEIVE_FROM_EVENT` docs): datagrams read from the real socket are indicated
//!   as a chain of `WSK_DATAGRAM_INDICATION`s at `DISPATCH_LEVEL` with `WSK_FLAG_AT_DISPATCH_LEVEL`; each
//!   has its own MDL chain (optionally split over up to three MDLs in separate buffers, with a nonzero
//!   `Buffer.Offset`) and `RemoteAddress`. `STATUS_SUCCESS`: the provider takes the chain back;
//!   `STATUS_PENDING`: the client retains it until `WskRelease` (`PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST`
//!   docs, which also say closing the socket does not release retained lists); `STATUS_DATA_NOT_ACCEPTED`:
//!   the datagrams are dropped (counted in [`Stats::not_accepted`]). `WskRelease` may be given any chain
//!   of retained indications (the client may relink `Next` to release datagrams one at a time).
//! * **Faults** ([`set_faults`]): loss, duplication, reordering, a stall before completion, a send error
//!   status, a backpressure window and socket-creation/bind errors, drawn from a seeded `ChaCha8` generator (`rand_chacha`) so runs repeat exactly.
//!
//! * **TCP client sockets** (`WskSocket` with `WSK_FLAG_CONNECTION_SOCKET`): see the `tcp` submodule.
//!
//! Not simulated (recorded as `sim.not_simulated`): stream/listen sockets, `WskReceiveFrom`,
//! `WskReceive`, retained stream indications, `WskSocketConnect`, name resolution, UDP send/receive coalescing with a nonzero size.
use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::c_void;
use std::io::{Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream, UdpSocket,
};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use kernel::ffi::mdl::{MDL, MDL_SOURCE_IS_NONPAGED_POOL, PAGE_SIZE};
use kernel::ffi::ntos::{
    IoSizeOfIrp, BOOLEAN, DEVICE_OBJECT, DISPATCH_LEVEL, IO_STACK_LOCATION, IO_TYPE_IRP, IRP, KIRQL,
    NTSTATUS, NT_SUCCESS, PASSIVE_LEVEL, PEPROCESS, PETHREAD, POOL_FLAG_NON_PAGED, SL_INVOKE_ON_CANCEL,
    SL_INVOKE_ON_ERROR, SL_INVOKE_ON_SUCCESS, SL_PENDING_RETURNED, STATUS_CANCELLED,
    STATUS_DATA_NOT_ACCEPTED, STATUS_DEVICE_NOT_READY, STATUS_INVALID_ADDRESS, STATUS_INVALID_BUFFER_SIZE,
    STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER, STATUS_MORE_PROCESSING_REQUIRED,
    STATUS_NOT_SUPPORTED, STATUS_PENDING, STATUS_SUCCESS, UNICODE_STRING,
};
use kernel::ffi::oid::GUID;
use kernel::ffi::wsk::{
    WskGetOption, WskIoctl, WskSetOption, ADDRESS_FAMILY, AF_INET, AF_INET6, CMSGHDR, IN6_ADDR, IN6_PKTINFO,
    IN_ADDR, IN_PKTINFO, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_UDP, IPV6_PKTINFO, IPV6_V6ONLY, IP_PKTINFO,
    PWSK_CLIENT, SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6, SOCK_DGRAM, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, SO_RCVBUF,
    SO_REUSEADDR, SO_SNDBUF, SO_WSK_EVENT_CALLBACK, UDP_RECV_MAX_COALESCED_SIZE, UDP_SEND_MSG_SIZE,
    WSA_CMSG_LEN, WSA_CMSG_SPACE, WSK_BUF, WSK_BUF_LIST, WSK_CLIENT_DATAGRAM_DISPATCH, WSK_CLIENT_NPI,
    WSK_CONTROL_SOCKET_TYPE, WSK_DATAGRAM_INDICATION, WSK_EVENT_CALLBACK_CONTROL, WSK_EVENT_DISABLE,
    WSK_EVENT_RECEIVE_FROM, WSK_FLAG_AT_DISPATCH_LEVEL, WSK_FLAG_DATAGRAM_SOCKET, WSK_NO_WAIT,
    WSK_PROVIDER_BASIC_DISPATCH, WSK_PROVIDER_CHARACTERISTICS, WSK_PROVIDER_DATAGRAM_DISPATCH,
    WSK_PROVIDER_DISPATCH, WSK_PROVIDER_NPI, WSK_REGISTRATION, WSK_SET_STATIC_EVENT_CALLBACKS, WSK_SOCKET,
    WSK_VERSION_1_0,
};

use crate::context::{call_driver, current_driver, irql, require_irql_at_most, DriverId};
use kernel::ffi::wsk::{IPPROTO_TCP, SOCK_STREAM, WSK_FLAG_CONNECTION_SOCKET};

mod tcp;
use crate::verifier::{violation, Rule};

/// `SIO_WSK_SET_REMOTE_ADDRESS` = `_WSAIOW(IOC_WSK, 0x1)` with `IOC_WSK` = `IOC_WS2 | 0x07000000`
/// (`wsk.h`/`ws2def.h`): sets the default destination of a datagram socket.
pub const SIO_WSK_SET_REMOTE_ADDRESS: u32 = 0x8F00_0001;
/// `STATUS_ADDRESS_ALREADY_ASSOCIATED` (`ntstatus.h`): the bind address is in use.
pub const STATUS_ADDRESS_ALREADY_ASSOCIATED: NTSTATUS = 0xC000_020Au32.cast_signed();
/// Pool tag of simulated IRPs.
pub const IRP_TAG: u32 = u32::from_le_bytes(*b"Irp ");
/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// How send IRPs complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SendCompletion {
    /// `WskSendTo`/`WskSendMessages` return `STATUS_PENDING`; the IRP completes from [`pump`] (or the
    /// poller thread) at `DISPATCH_LEVEL`, after the datagrams went on the wire.
    #[default]
    Deferred,
    /// The send completes before the call returns (completion routine at the caller's IRQL) and the
    /// call returns the final status. Faults that delay completion (stall, backpressure) still defer.
    Inline,
}

/// Simulation settings (not faults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Run a poller thread that does what [`pump`] does every millisecond. Off by default: tests call
    /// [`pump`] on their own thread and stay single-threaded and deterministic.
    pub threaded: bool,
    /// Split every received datagram of 3+ bytes across up to three MDLs in separate buffers at
    /// pseudo-random cut points, with a nonzero `WSK_BUF.Offset` into the first MDL.
    pub split_receive: bool,
    /// When sends complete.
    pub send_completion: SendCompletion,
    /// Most datagrams chained into one `WskReceiveFromEvent` call.
    pub max_indication_chain: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

impl Config {
    const DEFAULT: Config = Config {
        threaded: false,
        split_receive: false,
        send_completion: SendCompletion::Deferred,
        max_indication_chain: 16,
    };
}

/// Faults applied to sends. Probabilities are per datagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Datagrams silently not transmitted (the send still succeeds, as UDP does).
    pub loss: f64,
    /// Datagrams transmitted twice.
    pub duplicate: f64,
    /// Datagrams held back and transmitted after the next one (or at the end of the pump).
    pub reorder: f64,
    /// Send IRPs complete no earlier than this many milliseconds after the call, on the machine's clock
    /// ([`crate::clock`]: virtual in deterministic mode, so `sched::advance` moves stalled sends on).
    pub stall_ms: u64,
    /// Every send completes with this status and transmits nothing.
    pub send_error: Option<NTSTATUS>,
    /// At most this many send IRPs complete per [`pump`] (a slow link: IRPs stay pending longer).
    pub backpressure: Option<usize>,
    /// Pending send IRPs are taken newest first (transmitted and completed in reverse submission
    /// order): a provider completing IRPs out of order, which WSK allows (each IRP completes on its own;
    /// nothing orders completions across IRPs). With [`Faults::backpressure`] `Some(1)` each [`pump`]
    /// completes the newest pending send alone.
    pub reverse_completions: bool,
    /// `WskSocket` fails with this status (completing its IRP with it, as a provider out of memory or
    /// a refused socket would): the client gets no socket. Tests the callers' rollback.
    pub socket_error: Option<NTSTATUS>,
    /// `WskBind` fails with this status (for example `STATUS_ADDRESS_ALREADY_ASSOCIATED`, what a taken
    /// port gives): the socket stays unbound and the client must close it.
    pub bind_error: Option<NTSTATUS>,
    /// Seed of the fault generator.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::NONE
    }
}

impl Faults {
    /// No faults.
    pub const NONE: Faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        stall_ms: 0,
        send_error: None,
        backpressure: None,
        reverse_completions: false,
        socket_error: None,
        bind_error: None,
        seed: 0x5EED,
    };
}

/// Counters since boot (or the last [`set_faults`] for the fault counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams the clients asked to send.
    pub submitted: u64,
    /// Datagrams put on the wire (duplicates included).
    pub transmitted: u64,
    /// Datagrams dropped by the loss fault.
    pub lost: u64,
    /// Extra copies transmitted by the duplication fault.
    pub duplicated: u64,
    /// Datagrams transmitted out of order.
    pub reordered: u64,
    /// Send IRPs completed with the injected error.
    pub send_errors: u64,
    /// Send IRPs completed (any status).
    pub send_completions: u64,
    /// Datagrams indicated to clients.
    pub indicated: u64,
    /// `WskReceiveFromEvent` calls.
    pub indications: u64,
    /// Datagrams retained by clients (`STATUS_PENDING`).
    pub retained: u64,
    /// Datagrams returned with `WskRelease`.
    pub released: u64,
    /// Datagrams refused with `STATUS_DATA_NOT_ACCEPTED`.
    pub not_accepted: u64,
}

/// The fault generator: `ChaCha8` seeded from [`Faults::seed`] (created on first use, so the state can be
/// built in a `const`).
#[derive(Clone, Debug)]
struct Rng {
    seed: u64,
    inner: Option<ChaCha8Rng>,
}

impl Rng {
    const fn new(seed: u64) -> Rng {
        Rng { seed, inner: None }
    }

    fn next_u64(&mut self) -> u64 {
        let seed = self.seed;
        self.inner.get_or_insert_with(|| ChaCha8Rng::seed_from_u64(seed)).next_u64()
    }

    /// True with probability `p`.
    #[allow(clippy::cast_precision_loss)]
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `lo..hi` (`lo` if empty).
    #[allow(clippy::cast_possible_truncation)]
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        if hi <= lo {
            lo
        } else {
            lo + (self.next_u64() % (hi - lo) as u64) as usize
        }
    }
}

struct Registration {
    owner: Option<DriverId>,
    captures: usize,
    static_receive_from: bool,
}

struct Socket {
    owner: Option<DriverId>,
    registration: usize,
    family: ADDRESS_FAMILY,
    context: usize,
    receive_from: Option<usize>,
    events: bool,
    udp: Option<Arc<UdpSocket>>,
    remote: Option<SocketAddr>,
    pktinfo: bool,
    /// Connection sockets (`WSK_FLAG_CONNECTION_SOCKET`) only.
    connection: Option<Connection>,
}

/// The state of a simulated TCP connection socket: a real `std::net::TcpStream` on loopback once
/// connected.
struct Connection {
    bound: Option<SocketAddr>,
    stream: Option<Arc<TcpStream>>,
    receive_event: Option<usize>,
    disconnect_event: Option<usize>,
    /// End of stream or reset seen (the disconnect event was delivered or is due).
    finished: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IrpState {
    /// The client owns it, fresh from `IoAllocateIrp` or `IoReuseIrp`.
    Client,
    /// The client owns it after a completion; it must call `IoReuseIrp` before passing it again
    /// ("Using IRPs with Winsock Kernel Functions").
    Completed,
    /// A WSK routine holds it.
    Provider(&'static str),
    /// Its completion routines are running.
    Completing,
}

struct IrpInfo {
    owner: Option<DriverId>,
    state: IrpState,
    generation: u64,
}

struct SendOp {
    socket: usize,
    irp: usize,
    datagrams: Vec<(Vec<u8>, SocketAddr)>,
    /// Interrupt time ([`crate::clock::now`]) from which the IRP may complete.
    ready_at: u64,
}

struct Retained {
    socket: usize,
    owner: Option<DriverId>,
}

struct State {
    config: Config,
    faults: Faults,
    rng: Rng,
    stats: Stats,
    registrations: BTreeMap<usize, Registration>,
    sockets: BTreeMap<usize, Socket>,
    irps: BTreeMap<usize, IrpInfo>,
    sends: VecDeque<SendOp>,
    retained: rustc_hash::FxHashMap<usize, Retained>,
    /// A datagram held back by the reorder fault: (socket, bytes, destination).
    held: Option<(Arc<UdpSocket>, Vec<u8>, SocketAddr)>,
}

impl State {
    const fn new() -> State {
        State {
            config: Config::DEFAULT,
            faults: Faults::NONE,
            rng: Rng::new(Faults::NONE.seed),
            stats: Stats {
                submitted: 0,
                transmitted: 0,
                lost: 0,
                duplicated: 0,
                reordered: 0,
                send_errors: 0,
                send_completions: 0,
                indicated: 0,
                indications: 0,
                retained: 0,
                released: 0,
                not_accepted: 0,
            },
            registrations: BTreeMap::new(),
            sockets: BTreeMap::new(),
            irps: BTreeMap::new(),
            sends: VecDeque::new(),
            retained: std::collections::HashMap::with_hasher(rustc_hash::FxBuildHasher),
            held: None,
        }
    }
}

static STATE: Mutex<State> = Mutex::new(State::new());
/// Serializes pumps (the test thread's and the poller's) and unload checks.
static PUMP: Mutex<()> = Mutex::new(());
/// The socket whose receive callback is running, and on which thread (so a close waits for it).
static DELIVERING: Mutex<Option<(ThreadId, usize)>> = Mutex::new(None);
static POLLER: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>> = Mutex::new(None);

thread_local! {
    static IN_PUMP: Cell<bool> = const { Cell::new(false) };
    static RECEIVE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

fn state() -> std::sync::MutexGuard<'static, State> {
    crate::lock(&STATE)
}

// ---------------------------------------------------------------------------------------------
// Control of the simulation
// ---------------------------------------------------------------------------------------------

fn stop_poller() {
    let poller = crate::lock(&POLLER).take();
    if let Some((stop, handle)) = poller {
        stop.store(true, Ordering::SeqCst);
        let _ = handle.join();
    }
}

/// Clears every socket, registration, IRP record and counter, stops the poller and restores the default
/// configuration and no faults. Called at boot.
pub(crate) fn reset() {
    stop_poller();
    let _pump = PumpGuard::enter();
    let mut st = state();
    for &address in std::mem::take(&mut st.sockets).keys() {
        free_socket_object(address);
    }
    for &address in std::mem::take(&mut st.retained).keys() {
        free_indication(address as *mut Indication);
    }
    *st = State::new();
}

/// Sets the simulation settings; starts or stops the poller thread as `config.threaded` says.
pub fn configure(config: Config) {
    state().config = config;
    let running = crate::lock(&POLLER).is_some();
    if config.threaded && !running {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("winsim-wsk-poller".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    pump();
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .expect("spawn the WSK poller");
        *crate::lock(&POLLER) = Some((stop, handle));
    } else if !config.threaded && running {
        stop_poller();
    }
}

/// The simulation settings.
pub fn config() -> Config {
    state().config
}

/// The bench profile's receive path ([`crate::bench::inject`]): indicates `datagrams` to the socket bound
/// to local port `port` straight from memory.
#[cfg(feature = "bench-profile")]
pub(crate) fn inject(port: u16, from: SocketAddr, datagrams: &[&[u8]]) -> usize {
    let Some(prepared) = prepare_inject(port, from, datagrams) else { return 0 };
    deliver_prepared(prepared)
}

#[cfg(feature = "bench-profile")]
/// Datagrams built into indication chains for the socket bound to a port, not yet indicated
/// ([`prepare_inject`], [`deliver_prepared`]).
pub(crate) struct Prepared {
    socket: usize,
    owner: DriverId,
    context: usize,
    receive_from: usize,
    chains: Vec<Vec<*mut Indication>>,
    count: usize,
}

#[cfg(feature = "bench-profile")]
// SAFETY: the indications are the simulation's own memory, handed over whole.
unsafe impl Send for Prepared {}

#[cfg(feature = "bench-profile")]
impl Drop for Prepared {
    fn drop(&mut self) {
        for chain in self.chains.drain(..) {
            chain.into_iter().for_each(free_indication);
        }
    }
}

#[cfg(feature = "bench-profile")]
/// Builds `datagrams` into the indication chains the provider would indicate to the socket bound to
/// `port` (chained up to `max_indication_chain`), without indicating them.
pub(crate) fn prepare_inject(port: u16, from: SocketAddr, datagrams: &[&[u8]]) -> Option<Prepared> {
    let target = state()
        .sockets
        .iter()
        .filter(|(_, s)| s.events)
        .filter(|(_, s)| s.udp.as_ref().and_then(|u| u.local_addr().ok()).is_some_and(|a| a.port() == port))
        .find_map(|(&k, s)| Some((k, s.owner?, s.context, s.receive_from?, s.pktinfo, s.udp.clone()?)));
    let (socket, owner, context, receive_from, pktinfo, udp) = target?;
    let local = udp.local_addr().ok().filter(|_| pktinfo);
    let (limit, split) = {
        let st = state();
        (st.config.max_indication_chain.max(1), st.config.split_receive)
    };
    let mut chains = Vec::new();
    for chunk in datagrams.chunks(limit) {
        let blocks: Vec<*mut Indication> = chunk
            .iter()
            .map(|d| {
                let mut st = state();
                let rng = if split { Some(&mut st.rng) } else { None };
                build_indication(d, from, local, rng)
            })
            .collect();
        for pair in blocks.windows(2) {
            // SAFETY: both blocks were just built and are owned by the simulation.
            unsafe { (*pair[0]).indication.Next = pair[1].cast() };
        }
        chains.push(blocks);
    }
    Some(Prepared { socket, owner, context, receive_from, chains, count: datagrams.len() })
}

#[cfg(feature = "bench-profile")]
/// Indicates what [`prepare_inject`] built, chain by chain (see [`deliver`]). Returns how many
/// datagrams it indicated.
pub(crate) fn deliver_prepared(mut prepared: Prepared) -> usize {
    let _guard = PumpGuard::enter();
    for blocks in std::mem::take(&mut prepared.chains) {
        deliver(prepared.socket, prepared.owner, prepared.context, prepared.receive_from, blocks);
    }
    prepared.count
}

/// Sets the send faults and reseeds the fault generator with `faults.seed`.
pub fn set_faults(faults: Faults) {
    let mut st = state();
    st.faults = faults;
    st.rng = Rng::new(faults.seed);
}

/// The counters.
pub fn stats() -> Stats {
    state().stats
}

/// Send IRPs not yet completed.
pub fn pending_sends() -> usize {
    state().sends.len()
}

/// Datagram indications clients retain now.
pub fn retained() -> usize {
    state().retained.len()
}

/// Holds [`PUMP`] unless this thread already does (a pump calling into a driver that unloads or
/// pumps again).
struct PumpGuard(Option<std::sync::MutexGuard<'static, ()>>);

impl PumpGuard {
    fn enter() -> PumpGuard {
        if IN_PUMP.with(Cell::get) {
            PumpGuard(None)
        } else {
            let guard = crate::lock(&PUMP);
            IN_PUMP.with(|p| p.set(true));
            PumpGuard(Some(guard))
        }
    }
}

impl Drop for PumpGuard {
    fn drop(&mut self) {
        if self.0.is_some() {
            IN_PUMP.with(|p| p.set(false));
        }
    }
}

/// Does one round of the provider's asynchronous work on the calling thread: completes the send IRPs
/// that are due (transmitting their datagrams, with the faults applied), then reads every bound socket
/// with receive events enabled and indicates what arrived. Returns the number of send IRPs completed
/// plus datagrams indicated. Called from inside a driver callback it does nothing.
pub fn pump() -> usize {
    if IN_PUMP.with(Cell::get) {
        return 0;
    }
    let _guard = PumpGuard::enter();
    if crate::bench::active() {
        // The bench profile's wire is memory both ways (`bench::sink`, `bench::inject`): no socket is
        // read, so a bench round makes no `recvfrom` system call per bound socket.
        return pump_sends() + tcp::pump_streams();
    }
    pump_sends() + pump_receives() + tcp::pump_streams()
}

/// Pumps until `done()` holds or `timeout` passes; returns whether `done()` held.
pub fn pump_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        pump();
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Called after `driver` unloaded: its registrations, open sockets and retained indications are leaks
/// (`wsk.socket_leak_at_unload`); they are torn down so nothing calls into the unloaded driver. Its IRP
/// records are dropped (the IRP memory is pool, which the pool check reports and frees).
pub(crate) fn check_unload(driver: DriverId, name: &str) {
    let _pump = PumpGuard::enter();
    let mut st = state();
    let registrations: Vec<usize> =
        st.registrations.iter().filter(|(_, r)| r.owner == Some(driver)).map(|(&k, _)| k).collect();
    let sockets: Vec<usize> =
        st.sockets.iter().filter(|(_, s)| s.owner == Some(driver)).map(|(&k, _)| k).collect();
    let retained: Vec<usize> =
        st.retained.iter().filter(|(_, r)| r.owner == Some(driver)).map(|(&k, _)| k).collect();
    let captures: usize =
        registrations.iter().filter_map(|r| st.registrations.get(r)).map(|r| r.captures).sum();
    for r in &registrations {
        st.registrations.remove(r);
    }
    for s in &sockets {
        st.sockets.remove(s);
        free_socket_object(*s);
    }
    for i in &retained {
        st.retained.remove(i);
        free_indication(*i as *mut Indication);
    }
    let irps: Vec<usize> = st.irps.iter().filter(|(_, i)| i.owner == Some(driver)).map(|(&k, _)| k).collect();
    st.sends.retain(|op| !irps.contains(&op.irp) && !sockets.contains(&op.socket));
    for i in &irps {
        st.irps.remove(i);
    }
    drop(st);
    if !registrations.is_empty() || !sockets.is_empty() || !retained.is_empty() {
        violation(
            Rule::WskSocketLeak,
            format!(
                "{name} unloaded with {} WSK registration(s) not deregistered ({captures} provider NPI capture(s) \
                 not released), {} socket(s) open and {} datagram indication(s) retained",
                registrations.len(),
                sockets.len(),
                retained.len()
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// IRPs
// ---------------------------------------------------------------------------------------------

/// The stack locations that follow the IRP header.
fn stack_base(irp: *mut IRP) -> *mut IO_STACK_LOCATION {
    irp.cast::<u8>().wrapping_add(size_of::<IRP>()).cast()
}

/// Puts an IRP into the state `IoAllocateIrp` returns it in (the `IoInitializeIrp` work).
///
/// # Safety
/// `irp` must point to `IoSizeOfIrp(stack_size)` writable bytes.
unsafe fn initialize_irp(irp: *mut IRP, stack_size: i8) {
    let size = IoSizeOfIrp(stack_size);
    // SAFETY: the caller guarantees `size` writable bytes.
    unsafe { std::ptr::write_bytes(irp.cast::<u8>(), 0, size) };
    // SAFETY: as above; the header is now zeroed, a valid IRP bit pattern.
    let r = unsafe { &mut *irp };
    r.Type = IO_TYPE_IRP;
    r.Size = u16::try_from(size).unwrap_or(u16::MAX);
    r.StackCount = stack_size;
    r.CurrentLocation = stack_size.saturating_add(1);
    let list = &raw mut r.ThreadListEntry;
    r.ThreadListEntry.Flink = list;
    r.ThreadListEntry.Blink = list;
    r.Tail.Overlay.CurrentStackLocation = stack_base(irp).wrapping_add(stack_size.unsigned_abs().into());
}

/// `IoAllocateIrp`. IRQL <= `DISPATCH_LEVEL`. Pool-backed (tag `Irp `, attributed to the calling
/// driver, subject to allocation-failure injection); `charge_quota` is ignored.
#[no_mangle]
pub extern "system" fn IoAllocateIrp(stack_size: i8, _charge_quota: BOOLEAN) -> *mut IRP {
    if !require_irql_at_most(DISPATCH_LEVEL, "IoAllocateIrp") {
        return null_mut();
    }
    if stack_size < 1 {
        violation(Rule::WskIrpMisuse, format!("IoAllocateIrp({stack_size}): an IRP needs a stack location"));
        return null_mut();
    }
    let irp =
        crate::pool::ExAllocatePool2(POOL_FLAG_NON_PAGED, IoSizeOfIrp(stack_size), IRP_TAG).cast::<IRP>();
    if irp.is_null() {
        return irp;
    }
    // SAFETY: the block was just allocated with IoSizeOfIrp(stack_size) bytes.
    unsafe { initialize_irp(irp, stack_size) };
    state()
        .irps
        .insert(irp as usize, IrpInfo { owner: current_driver(), state: IrpState::Client, generation: 0 });
    irp
}

/// `IoFreeIrp`. IRQL <= `DISPATCH_LEVEL`. Refused (`wsk.irp_misuse`) for an IRP a WSK routine still holds,
/// or one that is not a live `IoAllocateIrp` IRP.
///
/// # Safety
/// `irp` is validated before it is freed.
#[no_mangle]
pub unsafe extern "system" fn IoFreeIrp(irp: *mut IRP) {
    if !require_irql_at_most(DISPATCH_LEVEL, "IoFreeIrp") {
        return;
    }
    let mut st = state();
    match st.irps.get(&(irp as usize)).map(|i| i.state) {
        None => {
            drop(st);
            violation(
                Rule::WskIrpMisuse,
                format!("IoFreeIrp({irp:p}): not a live IRP from IoAllocateIrp (freed twice?)"),
            );
        }
        Some(IrpState::Provider(routine)) => {
            drop(st);
            violation(Rule::WskIrpMisuse, format!("IoFreeIrp({irp:p}) while {routine} still holds it"));
        }
        Some(_) => {
            st.irps.remove(&(irp as usize));
            drop(st);
            // SAFETY: a live pool block allocated by IoAllocateIrp with this tag, now untracked.
            unsafe { crate::pool::ExFreePoolWithTag(irp.cast(), IRP_TAG) };
        }
    }
}

/// `IoReuseIrp`. IRQL <= `DISPATCH_LEVEL`. Reinitializes a completed IRP and sets `IoStatus.Status`.
///
/// # Safety
/// `irp` is validated before it is written.
#[no_mangle]
pub unsafe extern "system" fn IoReuseIrp(irp: *mut IRP, status: NTSTATUS) {
    if !require_irql_at_most(DISPATCH_LEVEL, "IoReuseIrp") {
        return;
    }
    let mut st = state();
    let Some(info) = st.irps.get_mut(&(irp as usize)) else {
        drop(st);
        violation(Rule::WskIrpMisuse, format!("IoReuseIrp({irp:p}): not a live IRP from IoAllocateIrp"));
        return;
    };
    if let IrpState::Provider(routine) = info.state {
        drop(st);
        violation(Rule::WskIrpMisuse, format!("IoReuseIrp({irp:p}) while {routine} still holds it"));
        return;
    }
    info.state = IrpState::Client;
    info.generation += 1;
    drop(st);
    // SAFETY: a live IoAllocateIrp IRP; StackCount is the value IoAllocateIrp wrote.
    let stack_size = unsafe { (*irp).StackCount };
    // SAFETY: the IRP was allocated with IoSizeOfIrp(StackCount) bytes.
    unsafe { initialize_irp(irp, stack_size) };
    // SAFETY: as above.
    let io_status = unsafe { &mut (*irp).IoStatus };
    io_status.u.Status = status;
}

/// `IofCompleteRequest` (the `IoCompleteRequest` macro). IRQL <= `DISPATCH_LEVEL`. On an IRP from
/// `IoAllocateIrp` only the WSK provider completes (a driver completing one is
/// `wsk.irp_completed_twice`); any other IRP runs its completion routines, as the I/O manager does.
///
/// # Safety
/// `irp` must be a valid IRP whose current stack location belongs to the caller.
#[no_mangle]
pub unsafe extern "system" fn IofCompleteRequest(irp: *mut IRP, _priority_boost: i8) {
    if !require_irql_at_most(DISPATCH_LEVEL, "IofCompleteRequest") {
        return;
    }
    let tracked = state().irps.get(&(irp as usize)).map(|i| i.state);
    match tracked {
        Some(IrpState::Provider(routine)) => violation(
            Rule::WskIrpCompletedTwice,
            format!("IoCompleteRequest({irp:p}) by a driver while {routine} holds it: only the provider completes it"),
        ),
        Some(_) => violation(
            Rule::WskIrpCompletedTwice,
            format!("IoCompleteRequest({irp:p}): the IRP is not being processed (already completed)"),
        ),
        None => {
            // SAFETY: the caller guarantees a valid IRP.
            unsafe { run_completion(irp, None, irql()) };
        }
    }
}

/// Runs the completion routines from the current stack location up, as `IofCompleteRequest` does.
/// Returns true if a routine returned `STATUS_MORE_PROCESSING_REQUIRED` (the IRP may be gone then).
///
/// # Safety
/// `irp` must be a valid IRP with `CurrentLocation`/`CurrentStackLocation` consistent.
unsafe fn run_completion(irp: *mut IRP, owner: Option<DriverId>, at: KIRQL) -> bool {
    type Routine = unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut IRP, *mut c_void) -> NTSTATUS;
    let address = irp as usize;
    loop {
        // SAFETY: the caller guarantees a valid IRP; every iteration re-checks it is still live.
        let r = unsafe { &mut *irp };
        if r.CurrentLocation > r.StackCount {
            return false;
        }
        // SAFETY: Tail.Overlay is the active member of a live IRP.
        let sp = unsafe { r.Tail.Overlay.CurrentStackLocation };
        r.CurrentLocation += 1;
        r.Tail.Overlay.CurrentStackLocation = sp.wrapping_add(1);
        // SAFETY: CurrentLocation <= StackCount, so `sp` is one of the IRP's stack locations.
        let loc = unsafe { &mut *sp };
        let (routine, context, control) = (loc.CompletionRoutine, loc.Context, loc.Control);
        loc.CompletionRoutine = null_mut();
        loc.Context = null_mut();
        loc.Control = 0;
        r.PendingReturned = control & SL_PENDING_RETURNED;
        // SAFETY: IoStatus.u is a union of Status/Pointer; Status is what completion writes.
        let status = unsafe { r.IoStatus.u.Status };
        // IopCompleteRequest's test: success, error or cancel, each with its SL_INVOKE_ON_* bit.
        let wanted = (NT_SUCCESS(status) && control & SL_INVOKE_ON_SUCCESS != 0)
            || (!NT_SUCCESS(status) && control & SL_INVOKE_ON_ERROR != 0)
            || (r.Cancel != 0 && control & SL_INVOKE_ON_CANCEL != 0);
        if routine.is_null() || !wanted {
            continue;
        }
        // SAFETY: IoSetCompletionRoutine stored an IO_COMPLETION_ROUTINE pointer here.
        let f = unsafe { std::mem::transmute::<*mut c_void, Routine>(routine) };
        let device = if r.CurrentLocation > r.StackCount {
            null_mut()
        } else {
            // SAFETY: Tail.Overlay is the active member of a live IRP.
            let up = unsafe { r.Tail.Overlay.CurrentStackLocation };
            // SAFETY: CurrentLocation <= StackCount, so `up` is one of the IRP's stack locations.
            unsafe { (*up).DeviceObject }
        };
        let call = || {
            // SAFETY: the routine and context are the ones the driver registered for this IRP.
            unsafe { f(device, irp, context) }
        };
        let Some(driver) = owner.or_else(current_driver) else {
            violation(
                Rule::NotSimulated,
                format!("IRP {irp:p} completed outside any driver: whose routine is it?"),
            );
            return true;
        };
        let result = call_driver(driver, at, "IoCompletion routine", call);
        if result == STATUS_MORE_PROCESSING_REQUIRED {
            return true;
        }
        if owner.is_some() && !state().irps.contains_key(&address) {
            violation(
                Rule::WskIrpMisuse,
                format!("completion routine freed IRP {irp:p} and returned {result:#x}, not STATUS_MORE_PROCESSING_REQUIRED"),
            );
            return true;
        }
    }
}

/// Takes an IRP from the client for `routine`: it must be a live `IoAllocateIrp` IRP the client owns,
/// with a stack location left; that location becomes current (`IoSetNextIrpStackLocation`).
///
/// # Safety
/// `irp` is validated before it is touched.
unsafe fn accept_irp(irp: *mut IRP, routine: &'static str) -> bool {
    if irp.is_null() {
        violation(Rule::WskIrpMisuse, format!("{routine} without an IRP"));
        return false;
    }
    let mut st = state();
    let Some(info) = st.irps.get_mut(&(irp as usize)) else {
        drop(st);
        violation(Rule::WskIrpMisuse, format!("{routine}: IRP {irp:p} is not a live IRP from IoAllocateIrp"));
        return false;
    };
    match info.state {
        IrpState::Client => {}
        IrpState::Completed | IrpState::Completing => {
            drop(st);
            violation(
                Rule::WskIrpMisuse,
                format!("{routine}: IRP {irp:p} was completed and is passed again without IoReuseIrp"),
            );
            return false;
        }
        IrpState::Provider(holder) => {
            drop(st);
            violation(Rule::WskIrpMisuse, format!("{routine}: IRP {irp:p} is still in flight in {holder}"));
            return false;
        }
    }
    // SAFETY: a live IoAllocateIrp IRP.
    let r = unsafe { &mut *irp };
    if r.CurrentLocation <= 1 {
        drop(st);
        violation(
            Rule::WskIrpMisuse,
            format!(
                "{routine}: IRP {irp:p} has no stack location left (CurrentLocation {})",
                r.CurrentLocation
            ),
        );
        return false;
    }
    info.state = IrpState::Provider(routine);
    info.generation += 1;
    drop(st);
    // SAFETY: Tail.Overlay is the active member; CurrentLocation > 1, so the next location is inside.
    let next = unsafe { r.Tail.Overlay.CurrentStackLocation }.wrapping_sub(1);
    // SAFETY: as above.
    let loc = unsafe { &*next };
    let (has_routine, control) = (!loc.CompletionRoutine.is_null(), loc.Control);
    let all = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL;
    if !has_routine || control & all != all {
        violation(
            Rule::WskIrpMisuse,
            format!(
                "{routine}: IRP {irp:p} from IoAllocateIrp without a completion routine invoked on success, error and \
                 cancel (IoSetCompletionRoutine(.., TRUE, TRUE, TRUE))"
            ),
        );
    }
    r.CurrentLocation -= 1;
    // SAFETY: Tail.Overlay is the active member.
    let current = unsafe { r.Tail.Overlay.CurrentStackLocation };
    r.Tail.Overlay.CurrentStackLocation = current.wrapping_sub(1);
    true
}

/// Completes an IRP the provider holds: sets `IoStatus` and runs the completion routine at `at`.
///
/// # Safety
/// `irp` must have been accepted by [`accept_irp`] and not completed since.
unsafe fn complete(irp: *mut IRP, status: NTSTATUS, information: usize, at: KIRQL) {
    let address = irp as usize;
    let (owner, generation) = {
        let mut st = state();
        match st.irps.get_mut(&address) {
            Some(info) => {
                info.state = IrpState::Completing;
                (info.owner, info.generation)
            }
            None => return,
        }
    };
    // SAFETY: the provider holds the IRP.
    let r = unsafe { &mut *irp };
    r.IoStatus.u.Status = status;
    r.IoStatus.Information = information;
    // SAFETY: as above.
    let stopped = unsafe { run_completion(irp, owner, at) };
    let mut st = state();
    if let Some(info) = st.irps.get_mut(&address) {
        if info.generation == generation && info.state == IrpState::Completing {
            info.state = IrpState::Completed;
        }
        if !stopped {
            drop(st);
            violation(
                Rule::WskIrpMisuse,
                format!(
                    "IRP {irp:p} from IoAllocateIrp completed without a completion routine returning \
                     STATUS_MORE_PROCESSING_REQUIRED: the I/O manager would finish it as a thread IRP"
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Buffers and addresses
// ---------------------------------------------------------------------------------------------

/// The virtual address an MDL describes (the simulation has one address space).
///
/// # Safety
/// `mdl` must point to a valid MDL.
unsafe fn mdl_address(mdl: *const MDL) -> *const u8 {
    // SAFETY: the caller guarantees a valid MDL.
    let m = unsafe { &*mdl };
    m.StartVa.cast::<u8>().cast_const().wrapping_add(m.ByteOffset as usize)
}

/// Walks the bytes a `WSK_BUF` describes: `Length` bytes from `Offset` into the first MDL, across the
/// chain, handing each MDL's piece to `piece`. Returns the length; `None` if the chain is shorter or
/// `Offset` is not inside the first MDL.
///
/// # Safety
/// `buf` must be null or point to a `WSK_BUF` whose MDLs describe readable memory.
unsafe fn walk_wsk_buf(buf: *const WSK_BUF, mut piece: impl FnMut(&[u8])) -> Option<usize> {
    // SAFETY: the caller guarantees `buf` is null or valid.
    let b = unsafe { buf.as_ref() }?;
    let mut mdl = b.Mdl;
    let mut offset = b.Offset as usize;
    let mut remaining = b.Length;
    if remaining > 0 && !mdl.is_null() {
        // SAFETY: the caller guarantees valid MDLs.
        if offset >= unsafe { (*mdl).ByteCount } as usize {
            return None;
        }
    }
    while remaining > 0 {
        if mdl.is_null() {
            return None;
        }
        // SAFETY: a valid MDL in the caller's chain.
        let count = unsafe { (*mdl).ByteCount } as usize;
        let take = count.saturating_sub(offset).min(remaining);
        // SAFETY: as above.
        let start = unsafe { mdl_address(mdl) }.wrapping_add(offset);
        // SAFETY: the MDL describes `count` readable bytes from its address; `offset + take <= count`.
        piece(unsafe { std::slice::from_raw_parts(start, take) });
        remaining -= take;
        offset = 0;
        // SAFETY: as above.
        mdl = unsafe { (*mdl).Next };
    }
    Some(b.Length)
}

/// Copies the bytes a `WSK_BUF` describes (see [`walk_wsk_buf`]) into a buffer of its own.
///
/// # Safety
/// As [`walk_wsk_buf`].
unsafe fn read_wsk_buf(buf: *const WSK_BUF) -> Option<Vec<u8>> {
    let mut out = spare_buffer();
    // SAFETY: the caller guarantees `buf` is null or valid.
    out.reserve(unsafe { buf.as_ref() }?.Length.min(MAX_DATAGRAM + 1));
    // SAFETY: forwarded contract.
    unsafe { walk_wsk_buf(buf, |piece| out.extend_from_slice(piece)) }?;
    Some(out)
}

/// Reads a Windows `SOCKADDR_IN`/`SOCKADDR_IN6`.
///
/// # Safety
/// `p` must be null or point to a socket address of the size its family implies.
unsafe fn read_sockaddr(p: *const SOCKADDR) -> Option<SocketAddr> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a readable address; the family is its first field.
    let family = unsafe { p.cast::<ADDRESS_FAMILY>().read_unaligned() };
    match family {
        AF_INET => {
            // SAFETY: an AF_INET address is a SOCKADDR_IN.
            let s = unsafe { p.cast::<SOCKADDR_IN>().read_unaligned() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(s.sin_addr.s_addr),
                u16::from_be(s.sin_port),
            )))
        }
        AF_INET6 => {
            // SAFETY: an AF_INET6 address is a SOCKADDR_IN6.
            let s = unsafe { p.cast::<SOCKADDR_IN6>().read_unaligned() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(s.sin6_addr.s6_addr),
                u16::from_be(s.sin6_port),
                u32::from_be(s.sin6_flowinfo),
                s.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn to_sockaddr_in6(addr: SocketAddr) -> SOCKADDR_IN6 {
    match addr {
        SocketAddr::V4(v4) => {
            let v4 = SOCKADDR_IN {
                sin_family: AF_INET,
                sin_port: v4.port().to_be(),
                sin_addr: IN_ADDR { s_addr: v4.ip().octets() },
                sin_zero: [0; 8],
            };
            let mut out = SOCKADDR_IN6 {
                sin6_family: 0,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: IN6_ADDR::default(),
                sin6_scope_id: 0,
            };
            // SAFETY: SOCKADDR_IN (16 bytes) fits in SOCKADDR_IN6 (28 bytes); both are plain data.
            unsafe { (&raw mut out).cast::<SOCKADDR_IN>().write_unaligned(v4) };
            out
        }
        SocketAddr::V6(v6) => SOCKADDR_IN6 {
            sin6_family: AF_INET6,
            sin6_port: v6.port().to_be(),
            sin6_flowinfo: v6.flowinfo().to_be(),
            sin6_addr: IN6_ADDR { s6_addr: v6.ip().octets() },
            sin6_scope_id: v6.scope_id(),
        },
    }
}

/// Writes `addr` as `SOCKADDR_IN` (16 bytes) or `SOCKADDR_IN6` (28 bytes).
///
/// # Safety
/// `out` must be writable for the size of the address's family.
unsafe fn write_sockaddr(addr: SocketAddr, out: *mut SOCKADDR) {
    let full = to_sockaddr_in6(addr);
    let len = if addr.is_ipv4() { size_of::<SOCKADDR_IN>() } else { size_of::<SOCKADDR_IN6>() };
    // SAFETY: the caller guarantees `len` writable bytes; `full` holds at least `len` bytes.
    unsafe { std::ptr::copy_nonoverlapping((&raw const full).cast::<u8>(), out.cast::<u8>(), len) };
}

// ---------------------------------------------------------------------------------------------
// Datagram indications
// ---------------------------------------------------------------------------------------------

/// An MDL followed by its PFN array, as `IoAllocateMdl` lays it out.
#[repr(C)]
struct MdlWithPfns {
    mdl: MDL,
    pfns: [usize; 18],
}

/// One indicated datagram: the `WSK_DATAGRAM_INDICATION` the client sees comes first, so its address is
/// the block's.
#[repr(C)]
struct Indication {
    indication: WSK_DATAGRAM_INDICATION,
    remote: SOCKADDR_IN6,
    control: [u64; 6],
    mdls: [MdlWithPfns; 3],
    chunks: Vec<Vec<u8>>,
}

fn empty_mdl() -> MdlWithPfns {
    MdlWithPfns {
        mdl: MDL {
            Next: null_mut(),
            Size: 0,
            MdlFlags: 0,
            Process: null_mut(),
            MappedSystemVa: null_mut(),
            StartVa: null_mut(),
            ByteCount: 0,
            ByteOffset: 0,
        },
        pfns: [0; 18],
    }
}

/// Builds one indication for `data` from `from`; `local` adds an `IP_PKTINFO`/`IPV6_PKTINFO` control
/// message; `split` cuts the datagram across up to three MDLs with a nonzero `Buffer.Offset`.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
fn build_indication(
    data: &[u8],
    from: SocketAddr,
    local: Option<SocketAddr>,
    split: Option<&mut Rng>,
) -> *mut Indication {
    let (offset, chunks) = match split {
        Some(rng) if data.len() >= 3 => {
            let junk = rng.range(1, 8);
            let a = rng.range(1, data.len() - 1);
            let b = rng.range(a + 1, data.len());
            let mut first = vec![0xA5; junk];
            first.extend_from_slice(&data[..a]);
            (junk, vec![first, data[a..b].to_vec(), data[b..].to_vec()])
        }
        _ => (0, vec![data.to_vec()]),
    };
    let mut block = Box::new(Indication {
        indication: WSK_DATAGRAM_INDICATION {
            Next: null_mut(),
            Buffer: WSK_BUF { Mdl: null_mut(), Offset: offset as u32, Length: data.len() },
            ControlInfo: null_mut(),
            ControlInfoLength: 0,
            RemoteAddress: null_mut(),
        },
        remote: to_sockaddr_in6(from),
        control: [0; 6],
        mdls: [empty_mdl(), empty_mdl(), empty_mdl()],
        chunks,
    });
    let b: &mut Indication = &mut block;
    let count = b.chunks.len();
    for i in 0..count {
        let va = b.chunks[i].as_mut_ptr() as usize;
        let len = b.chunks[i].len();
        let pages = (va % PAGE_SIZE + len).div_ceil(PAGE_SIZE).max(1);
        let next: *mut MDL = if i + 1 < count { &raw mut b.mdls[i + 1].mdl } else { null_mut() };
        let m = &mut b.mdls[i];
        for (p, pfn) in m.pfns.iter_mut().enumerate().take(pages) {
            *pfn = va / PAGE_SIZE + p;
        }
        m.mdl = MDL {
            Next: next,
            Size: (size_of::<MDL>() + pages * size_of::<usize>()) as i16,
            MdlFlags: MDL_SOURCE_IS_NONPAGED_POOL,
            Process: null_mut(),
            MappedSystemVa: va as *mut c_void,
            StartVa: (va & !(PAGE_SIZE - 1)) as *mut c_void,
            ByteCount: len as u32,
            ByteOffset: (va % PAGE_SIZE) as u32,
        };
    }
    b.indication.Buffer.Mdl = &raw mut b.mdls[0].mdl;
    b.indication.RemoteAddress = (&raw mut b.remote).cast();
    if let Some(local) = local {
        let control = (&raw mut b.control).cast::<u8>();
        let (level, kind, info_len) = match local {
            SocketAddr::V4(_) => (IPPROTO_IP, IP_PKTINFO, size_of::<IN_PKTINFO>()),
            SocketAddr::V6(_) => (IPPROTO_IPV6, IPV6_PKTINFO, size_of::<IN6_PKTINFO>()),
        };
        let header =
            CMSGHDR { cmsg_len: WSA_CMSG_LEN(info_len), cmsg_level: level as i32, cmsg_type: kind as i32 };
        let data_at = control.wrapping_add(WSA_CMSG_LEN(0));
        // SAFETY: `control` is 48 bytes; WSA_CMSG_SPACE(20) = 40 fits.
        unsafe { control.cast::<CMSGHDR>().write_unaligned(header) };
        match local {
            SocketAddr::V4(v4) => {
                let info = IN_PKTINFO { ipi_addr: IN_ADDR { s_addr: v4.ip().octets() }, ipi_ifindex: 1 };
                // SAFETY: as above; the data follows the aligned header.
                unsafe { data_at.cast::<IN_PKTINFO>().write_unaligned(info) };
            }
            SocketAddr::V6(v6) => {
                let info = IN6_PKTINFO { ipi6_addr: IN6_ADDR { s6_addr: v6.ip().octets() }, ipi6_ifindex: 1 };
                // SAFETY: as above.
                unsafe { data_at.cast::<IN6_PKTINFO>().write_unaligned(info) };
            }
        }
        b.indication.ControlInfo = control.cast();
        b.indication.ControlInfoLength = WSA_CMSG_SPACE(info_len) as u32;
    }
    Box::into_raw(block)
}

fn free_indication(p: *mut Indication) {
    if crate::bench::active() {
        // The bench profile frees released indications outside the timed region
        // ([`free_released`]): a real provider's buffers go back to the NIC's ring, no heap free.
        RELEASED.with(|r| r.borrow_mut().push(p as usize));
        return;
    }
    // SAFETY: every indication pointer the simulation frees came from Box::into_raw in
    // build_indication and is freed exactly once (it is removed from its tracking first).
    drop(unsafe { Box::from_raw(p) });
}

thread_local! {
    /// Indications this thread released while the bench profile was on, freed by [`free_released`]
    /// (the bench profile runs its data path on one thread).
    static RELEASED: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Frees the indications this thread released under the bench profile.
#[cfg_attr(not(feature = "bench-profile"), allow(dead_code))]
pub(crate) fn free_released() {
    let released = RELEASED.with(|r| std::mem::take(&mut *r.borrow_mut()));
    for p in released {
        // SAFETY: as in `free_indication`: built by build_indication, released once, parked here.
        drop(unsafe { Box::from_raw(p as *mut Indication) });
    }
}

fn free_socket_object(address: usize) {
    // SAFETY: socket objects are created by Box::into_raw in sim_socket and freed once, when their
    // record is removed.
    drop(unsafe { Box::from_raw(address as *mut WSK_SOCKET) });
}

// ---------------------------------------------------------------------------------------------
// Pumping: send completion and receive indication
// ---------------------------------------------------------------------------------------------

/// Transmits `data` with the faults applied (under the state lock: no driver code runs).
fn transmit(st: &mut State, udp: &Arc<UdpSocket>, data: Vec<u8>, to: SocketAddr) {
    let faults = st.faults;
    if st.rng.chance(faults.loss) {
        st.stats.lost += 1;
        return;
    }
    if crate::bench::active() {
        // The bench profile: the datagram leaves through an in-memory sink, not a system call.
        st.stats.transmitted += 1;
        crate::bench::sink(data);
        return;
    }
    let copies = if st.rng.chance(faults.duplicate) { 2 } else { 1 };
    if copies == 2 {
        st.stats.duplicated += 1;
    }
    if st.held.is_none() && st.rng.chance(faults.reorder) {
        st.stats.reordered += 1;
        st.stats.transmitted += copies;
        if copies == 2 {
            let _ = udp.send_to(&data, to);
        }
        st.held = Some((Arc::clone(udp), data, to));
        return;
    }
    for _ in 0..copies {
        let _ = udp.send_to(&data, to);
    }
    st.stats.transmitted += copies;
    recycle(data);
    flush_held(st);
}

/// Datagram buffers of finished sends, kept per thread for the next `read_wsk_buf`: a send copies its
/// datagrams out of the client's MDLs (as the provider's stack reads them) without a heap allocation per
/// datagram. Bounded; anything beyond is freed.
const SPARE_BUFFERS: usize = 256;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer, with capacity from an earlier send when one is spare.
fn spare_buffer() -> Vec<u8> {
    SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default()
}

/// Gives a datagram buffer back for reuse.
pub(crate) fn recycle(mut data: Vec<u8>) {
    data.clear();
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_BUFFERS {
            s.push(data);
        }
    });
}

fn flush_held(st: &mut State) {
    if let Some((udp, data, to)) = st.held.take() {
        let _ = udp.send_to(&data, to);
        recycle(data);
    }
}

/// Puts a send operation on the wire (or fails it) and returns its completion status and information.
fn execute_send(st: &mut State, op: SendOp) -> (NTSTATUS, usize) {
    if let Some(error) = st.faults.send_error {
        st.stats.send_errors += 1;
        return (error, 0);
    }
    if let Some(stream) = st.sockets.get(&op.socket).and_then(|s| s.connection.as_ref()?.stream.clone()) {
        return tcp::write_stream(&stream, op.datagrams);
    }
    let Some(udp) = st.sockets.get(&op.socket).and_then(|s| s.udp.clone()) else {
        return (STATUS_INVALID_DEVICE_STATE, 0);
    };
    let mut bytes = 0;
    for (data, to) in op.datagrams {
        bytes += data.len();
        transmit(st, &udp, data, to);
    }
    (STATUS_SUCCESS, bytes)
}

fn pump_sends() -> usize {
    let now = crate::clock::now();
    let mut done = Vec::new();
    {
        let mut st = state();
        let limit = st.faults.backpressure.unwrap_or(usize::MAX);
        let newest_first = st.faults.reverse_completions;
        loop {
            let next = if newest_first { st.sends.back() } else { st.sends.front() };
            if done.len() >= limit || next.is_none_or(|op| op.ready_at > now) {
                break;
            }
            let taken = if newest_first { st.sends.pop_back() } else { st.sends.pop_front() };
            let Some(op) = taken else { break };
            let irp = op.irp;
            let result = execute_send(&mut st, op);
            st.stats.send_completions += 1;
            done.push((irp, result));
        }
        flush_held(&mut st);
    }
    let count = done.len();
    for (irp, (status, information)) in done {
        // SAFETY: the IRP was accepted by the send routine and is completed once, here.
        unsafe { complete(irp as *mut IRP, status, information, DISPATCH_LEVEL) };
    }
    count
}

type ReceiveFrom = unsafe extern "system" fn(*mut c_void, u32, *mut WSK_DATAGRAM_INDICATION) -> NTSTATUS;

fn pump_receives() -> usize {
    let targets: Vec<(usize, Arc<UdpSocket>, DriverId, usize, usize, bool)> = state()
        .sockets
        .iter()
        .filter(|(_, s)| s.events)
        .filter_map(|(&k, s)| Some((k, s.udp.clone()?, s.owner?, s.context, s.receive_from?, s.pktinfo)))
        .collect();
    let mut total = 0;
    // One datagram-sized receive buffer per thread, reused across pumps (zeroing 64 KiB on every pump
    // cost more than the driver's whole per-packet send path).
    let mut buffer = RECEIVE_BUFFER.with(Cell::take);
    buffer.resize(65_536, 0);
    for (socket, udp, owner, context, receive_from, pktinfo) in targets {
        let local = udp.local_addr().ok().filter(|_| pktinfo);
        for _round in 0..4 {
            let mut blocks: Vec<*mut Indication> = Vec::new();
            let (limit, split) = {
                let st = state();
                (st.config.max_indication_chain.max(1), st.config.split_receive)
            };
            while blocks.len() < limit {
                match udp.recv_from(&mut buffer) {
                    Ok((n, from)) => {
                        let mut st = state();
                        let rng = if split { Some(&mut st.rng) } else { None };
                        blocks.push(build_indication(&buffer[..n], from, local, rng));
                    }
                    Err(_) => break,
                }
            }
            if blocks.is_empty() {
                break;
            }
            for pair in blocks.windows(2) {
                // SAFETY: both blocks were just built and are owned by the simulation.
                unsafe { (*pair[0]).indication.Next = pair[1].cast() };
            }
            total += blocks.len();
            deliver(socket, owner, context, receive_from, blocks);
        }
    }
    RECEIVE_BUFFER.with(|b| b.set(buffer));
    total
}

/// Calls the socket's `WskReceiveFromEvent` with `blocks` chained, at `DISPATCH_LEVEL`, unless the socket
/// closed meanwhile; then frees or retains them as the callback's status says.
fn deliver(
    socket: usize,
    owner: DriverId,
    context: usize,
    receive_from: usize,
    blocks: Vec<*mut Indication>,
) {
    {
        let mut delivering = crate::lock(&DELIVERING);
        if !state().sockets.get(&socket).is_some_and(|s| s.events) {
            drop(delivering);
            blocks.into_iter().for_each(free_indication);
            return;
        }
        *delivering = Some((std::thread::current().id(), socket));
    }
    // SAFETY: the address was stored from the client's WSK_CLIENT_DATAGRAM_DISPATCH.WskReceiveFromEvent.
    let callback = unsafe { std::mem::transmute::<usize, ReceiveFrom>(receive_from) };
    let head = blocks[0].cast::<WSK_DATAGRAM_INDICATION>();
    let status = call_driver(owner, DISPATCH_LEVEL, "WskReceiveFromEvent", || {
        // SAFETY: the client registered this callback for this socket; the chain is valid until it
        // returns (or until WskRelease if it returns STATUS_PENDING).
        unsafe { callback(context as *mut c_void, WSK_FLAG_AT_DISPATCH_LEVEL, head) }
    });
    *crate::lock(&DELIVERING) = None;
    let n = blocks.len() as u64;
    let mut st = state();
    st.stats.indications += 1;
    st.stats.indicated += n;
    if status == STATUS_PENDING {
        st.stats.retained += n;
        for b in blocks {
            st.retained.insert(b as usize, Retained { socket, owner: Some(owner) });
        }
        return;
    }
    if status == STATUS_DATA_NOT_ACCEPTED {
        st.stats.not_accepted += n;
    } else if status != STATUS_SUCCESS {
        drop(st);
        violation(
            Rule::NotSimulated,
            format!("WskReceiveFromEvent returned {status:#x}; only STATUS_SUCCESS, STATUS_PENDING and STATUS_DATA_NOT_ACCEPTED are defined"),
        );
    }
    blocks.into_iter().for_each(free_indication);
}

// ---------------------------------------------------------------------------------------------
// netio.sys exports
// ---------------------------------------------------------------------------------------------

/// `WskRegister`. `PASSIVE_LEVEL`. `registration` identifies the client until `WskDeregister`.
///
/// # Safety
/// `client_npi` and `registration` must be valid; `registration` must stay in place until deregistered.
#[no_mangle]
pub unsafe extern "system" fn WskRegister(
    client_npi: *mut WSK_CLIENT_NPI,
    registration: *mut WSK_REGISTRATION,
) -> NTSTATUS {
    if !require_irql_at_most(PASSIVE_LEVEL, "WskRegister") {
        return STATUS_INVALID_DEVICE_STATE;
    }
    if client_npi.is_null() || registration.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller guarantees a valid registration block, which is the client's to hand over.
    unsafe { (*registration).ReservedRegistrationState = 1 };
    state().registrations.insert(
        registration as usize,
        Registration { owner: current_driver(), captures: 0, static_receive_from: false },
    );
    STATUS_SUCCESS
}

/// `WskDeregister`. `PASSIVE_LEVEL`. Real WSK blocks until every capture is released and every socket
/// closed; the simulation records `wsk.socket_leak_at_unload` instead of hanging.
///
/// # Safety
/// `registration` is looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "system" fn WskDeregister(registration: *mut WSK_REGISTRATION) {
    if !require_irql_at_most(PASSIVE_LEVEL, "WskDeregister") {
        return;
    }
    let key = registration as usize;
    let mut st = state();
    let Some(r) = st.registrations.remove(&key) else {
        drop(st);
        violation(Rule::WskIrpMisuse, format!("WskDeregister({registration:p}): not registered"));
        return;
    };
    let open = st.sockets.values().filter(|s| s.registration == key).count();
    drop(st);
    if r.captures > 0 || open > 0 {
        violation(
            Rule::WskSocketLeak,
            format!(
                "WskDeregister with {} provider NPI capture(s) not released and {open} socket(s) open: it would wait forever",
                r.captures
            ),
        );
    }
}

/// The provider dispatch table handed out in `WSK_PROVIDER_NPI.Dispatch`.
static PROVIDER_DISPATCH: WSK_PROVIDER_DISPATCH = WSK_PROVIDER_DISPATCH {
    Version: WSK_VERSION_1_0,
    Reserved: 0,
    WskSocket: Some(sim_socket),
    WskSocketConnect: Some(sim_socket_connect),
    WskControlClient: Some(sim_control_client),
    WskGetAddressInfo: Some(sim_get_address_info),
    WskFreeAddressInfo: Some(sim_free_address_info),
    WskGetNameInfo: Some(sim_get_name_info),
};

/// The datagram socket dispatch table (`WSK_SOCKET.Dispatch`).
static DATAGRAM_DISPATCH: WSK_PROVIDER_DATAGRAM_DISPATCH = WSK_PROVIDER_DATAGRAM_DISPATCH {
    Basic: WSK_PROVIDER_BASIC_DISPATCH {
        WskControlSocket: Some(sim_control_socket),
        WskCloseSocket: Some(sim_close_socket),
    },
    WskBind: Some(sim_bind),
    WskSendTo: Some(sim_send_to),
    WskReceiveFrom: Some(sim_receive_from),
    WskRelease: Some(sim_release),
    WskGetLocalAddress: Some(sim_get_local_address),
    WskSendMessages: Some(sim_send_messages),
};

/// `WskCaptureProviderNPI`. `PASSIVE_LEVEL` with a wait, <= `DISPATCH_LEVEL` with `WSK_NO_WAIT`. The
/// provider is always ready.
///
/// # Safety
/// `provider_npi` must be writable.
#[no_mangle]
pub unsafe extern "system" fn WskCaptureProviderNPI(
    registration: *mut WSK_REGISTRATION,
    wait_timeout: u32,
    provider_npi: *mut WSK_PROVIDER_NPI,
) -> NTSTATUS {
    let max = if wait_timeout == WSK_NO_WAIT { DISPATCH_LEVEL } else { PASSIVE_LEVEL };
    if !require_irql_at_most(max, "WskCaptureProviderNPI") {
        return STATUS_INVALID_DEVICE_STATE;
    }
    let mut st = state();
    let Some(r) = st.registrations.get_mut(&(registration as usize)) else {
        return STATUS_DEVICE_NOT_READY;
    };
    if provider_npi.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    r.captures += 1;
    let npi = WSK_PROVIDER_NPI { Client: registration.cast(), Dispatch: &raw const PROVIDER_DISPATCH };
    // SAFETY: the caller guarantees `provider_npi` is writable.
    unsafe { provider_npi.write(npi) };
    STATUS_SUCCESS
}

/// `WskReleaseProviderNPI`. IRQL <= `DISPATCH_LEVEL`. Once per successful capture.
///
/// # Safety
/// `registration` is looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "system" fn WskReleaseProviderNPI(registration: *mut WSK_REGISTRATION) {
    if !require_irql_at_most(DISPATCH_LEVEL, "WskReleaseProviderNPI") {
        return;
    }
    let mut st = state();
    match st.registrations.get_mut(&(registration as usize)) {
        Some(r) if r.captures > 0 => r.captures -= 1,
        _ => {
            drop(st);
            violation(
                Rule::WskIrpMisuse,
                format!("WskReleaseProviderNPI({registration:p}) without a capture"),
            );
        }
    }
}

/// `WskQueryProviderCharacteristics`. IRQL <= `DISPATCH_LEVEL`. WSK 1.0 only.
///
/// # Safety
/// `characteristics` must be writable.
#[no_mangle]
pub unsafe extern "system" fn WskQueryProviderCharacteristics(
    registration: *mut WSK_REGISTRATION,
    characteristics: *mut WSK_PROVIDER_CHARACTERISTICS,
) -> NTSTATUS {
    if !require_irql_at_most(DISPATCH_LEVEL, "WskQueryProviderCharacteristics") {
        return STATUS_INVALID_DEVICE_STATE;
    }
    if !state().registrations.contains_key(&(registration as usize)) || characteristics.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let c = WSK_PROVIDER_CHARACTERISTICS { HighestVersion: WSK_VERSION_1_0, LowestVersion: WSK_VERSION_1_0 };
    // SAFETY: the caller guarantees `characteristics` is writable.
    unsafe { characteristics.write(c) };
    STATUS_SUCCESS
}

// ---------------------------------------------------------------------------------------------
// Provider dispatch routines
// ---------------------------------------------------------------------------------------------

/// Records `wsk.dispatch_irql` if the current IRQL is above `max`.
fn check_irql(routine: &str, max: KIRQL) {
    let now = irql();
    if now > max {
        violation(Rule::WskDispatchIrql, format!("{routine} called at IRQL {now}, allowed at most {max}"));
    }
}

/// Accepts `irp` (if any), and completes it inline with `status` at the caller's IRQL; returns `status`.
///
/// # Safety
/// As for [`accept_irp`].
unsafe fn finish_inline(
    irp: *mut IRP,
    routine: &'static str,
    status: NTSTATUS,
    information: usize,
) -> NTSTATUS {
    if irp.is_null() {
        return status;
    }
    // SAFETY: validated inside.
    if !unsafe { accept_irp(irp, routine) } {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: just accepted.
    unsafe { complete(irp, status, information, irql()) };
    status
}

/// Looks up an open socket; records `wsk.irp_misuse` if it is not one.
fn known_socket(socket: *mut WSK_SOCKET, routine: &str) -> bool {
    if state().sockets.contains_key(&(socket as usize)) {
        true
    } else {
        violation(
            Rule::WskIrpMisuse,
            format!("{routine} on socket {socket:p}, which is not open (closed or never created)"),
        );
        false
    }
}

unsafe extern "system" fn sim_socket(
    client: PWSK_CLIENT,
    address_family: ADDRESS_FAMILY,
    socket_type: u16,
    protocol: u32,
    flags: u32,
    socket_context: *mut c_void,
    dispatch: *const c_void,
    _owning_process: PEPROCESS,
    _owning_thread: PETHREAD,
    _security_descriptor: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskSocket";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    if irp.is_null() {
        violation(Rule::WskIrpMisuse, "WskSocket without an IRP (the IRP is required)");
        return STATUS_INVALID_PARAMETER;
    }
    let static_events = state().registrations.get(&(client as usize)).map(|r| r.static_receive_from);
    let status = if static_events.is_none() {
        STATUS_INVALID_PARAMETER
    } else if flags == WSK_FLAG_CONNECTION_SOCKET && socket_type == SOCK_STREAM && protocol == IPPROTO_TCP {
        if address_family != AF_INET && address_family != AF_INET6 {
            STATUS_INVALID_PARAMETER
        } else {
            // SAFETY: for connection sockets `dispatch` is null or the client's
            // WSK_CLIENT_CONNECTION_DISPATCH.
            let object = unsafe { tcp::create(client as usize, address_family, socket_context, dispatch) };
            // SAFETY: validated inside.
            return unsafe { finish_inline(irp, ROUTINE, STATUS_SUCCESS, object) };
        }
    } else if flags != WSK_FLAG_DATAGRAM_SOCKET || socket_type != SOCK_DGRAM || protocol != IPPROTO_UDP {
        violation(
            Rule::NotSimulated,
            format!("WskSocket(type {socket_type}, protocol {protocol}, flags {flags:#x}): only UDP datagram sockets are simulated"),
        );
        STATUS_NOT_SUPPORTED
    } else if address_family != AF_INET && address_family != AF_INET6 {
        STATUS_INVALID_PARAMETER
    } else if let Some(error) = state().faults.socket_error {
        error
    } else {
        STATUS_SUCCESS
    };
    if !NT_SUCCESS(status) {
        // SAFETY: validated inside.
        return unsafe { finish_inline(irp, ROUTINE, status, 0) };
    }
    // SAFETY: for datagram sockets `dispatch` is null or the client's WSK_CLIENT_DATAGRAM_DISPATCH.
    let receive_from = unsafe { dispatch.cast::<WSK_CLIENT_DATAGRAM_DISPATCH>().as_ref() }
        .and_then(|d| d.WskReceiveFromEvent)
        .map(|f| f as usize);
    let object = Box::into_raw(Box::new(WSK_SOCKET { Dispatch: (&raw const DATAGRAM_DISPATCH).cast() }));
    state().sockets.insert(
        object as usize,
        Socket {
            owner: current_driver(),
            registration: client as usize,
            family: address_family,
            context: socket_context as usize,
            receive_from,
            events: static_events == Some(true) && receive_from.is_some(),
            udp: None,
            remote: None,
            pktinfo: false,
            connection: None,
        },
    );
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, ROUTINE, STATUS_SUCCESS, object as usize) }
}

unsafe extern "system" fn sim_socket_connect(
    _client: PWSK_CLIENT,
    _socket_type: u16,
    _protocol: u32,
    _local_address: *mut SOCKADDR,
    _remote_address: *mut SOCKADDR,
    _flags: u32,
    _socket_context: *mut c_void,
    _dispatch: *const c_void,
    _owning_process: PEPROCESS,
    _owning_thread: PETHREAD,
    _security_descriptor: *mut c_void,
    irp: *mut IRP,
) -> NTSTATUS {
    violation(Rule::NotSimulated, "WskSocketConnect (connection sockets are not simulated)");
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, "WskSocketConnect", STATUS_NOT_SUPPORTED, 0) }
}

unsafe extern "system" fn sim_control_client(
    client: PWSK_CLIENT,
    control_code: u32,
    input_size: usize,
    input_buffer: *mut c_void,
    _output_size: usize,
    _output_buffer: *mut c_void,
    _output_size_returned: *mut usize,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskControlClient";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    let status = if control_code == WSK_SET_STATIC_EVENT_CALLBACKS {
        if input_size < size_of::<WSK_EVENT_CALLBACK_CONTROL>() || input_buffer.is_null() {
            STATUS_INVALID_PARAMETER
        } else {
            // SAFETY: the client passes a WSK_EVENT_CALLBACK_CONTROL of `input_size` bytes.
            let control = unsafe { input_buffer.cast::<WSK_EVENT_CALLBACK_CONTROL>().read_unaligned() };
            match state().registrations.get_mut(&(client as usize)) {
                Some(r) => {
                    r.static_receive_from = control.EventMask & WSK_EVENT_RECEIVE_FROM != 0;
                    STATUS_SUCCESS
                }
                None => STATUS_INVALID_PARAMETER,
            }
        }
    } else {
        violation(Rule::NotSimulated, format!("WskControlClient({control_code})"));
        STATUS_NOT_SUPPORTED
    };
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, ROUTINE, status, 0) }
}

/// Reads a `ULONG` option value.
///
/// # Safety
/// `input` must be null or readable for `size` bytes.
unsafe fn option_u32(size: usize, input: *const c_void) -> Option<u32> {
    if size < 4 || input.is_null() {
        None
    } else {
        // SAFETY: the caller guarantees `size >= 4` readable bytes.
        Some(unsafe { input.cast::<u32>().read_unaligned() })
    }
}

#[allow(non_upper_case_globals)] // the WDK names of WSK_CONTROL_SOCKET_TYPE values
unsafe extern "system" fn sim_control_socket(
    socket: *mut WSK_SOCKET,
    request_type: WSK_CONTROL_SOCKET_TYPE,
    control_code: u32,
    level: u32,
    input_size: usize,
    input_buffer: *mut c_void,
    _output_size: usize,
    _output_buffer: *mut c_void,
    output_size_returned: *mut usize,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskControlSocket";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    if !known_socket(socket, ROUTINE) {
        // SAFETY: validated inside.
        return unsafe { finish_inline(irp, ROUTINE, STATUS_INVALID_PARAMETER, 0) };
    }
    let key = socket as usize;
    let status = match (request_type, level, control_code) {
        (WskSetOption, SOL_SOCKET, SO_WSK_EVENT_CALLBACK) => {
            if input_size < size_of::<WSK_EVENT_CALLBACK_CONTROL>() || input_buffer.is_null() {
                STATUS_INVALID_PARAMETER
            } else {
                // SAFETY: a WSK_EVENT_CALLBACK_CONTROL of `input_size` bytes.
                let control = unsafe { input_buffer.cast::<WSK_EVENT_CALLBACK_CONTROL>().read_unaligned() };
                let mask = control.EventMask;
                let mut st = state();
                let s = st.sockets.get_mut(&key).expect("checked above");
                if let Some(c) = s.connection.as_ref() {
                    tcp::set_events(c, &mut s.events, mask)
                } else if mask & !(WSK_EVENT_RECEIVE_FROM | WSK_EVENT_DISABLE) != 0
                    || mask & WSK_EVENT_RECEIVE_FROM == 0
                {
                    STATUS_INVALID_PARAMETER
                } else if mask & WSK_EVENT_DISABLE != 0 {
                    s.events = false;
                    STATUS_SUCCESS
                } else if s.receive_from.is_none() {
                    STATUS_INVALID_PARAMETER
                } else {
                    s.events = true;
                    STATUS_SUCCESS
                }
            }
        }
        (WskSetOption, SOL_SOCKET, SO_REUSEADDR | SO_EXCLUSIVEADDRUSE | SO_RCVBUF | SO_SNDBUF)
        | (WskSetOption, IPPROTO_IPV6, IPV6_V6ONLY) => {
            // SAFETY: the option value is a ULONG of `input_size` bytes.
            if unsafe { option_u32(input_size, input_buffer) }.is_some() {
                STATUS_SUCCESS
            } else {
                STATUS_INVALID_PARAMETER
            }
        }
        (WskSetOption, IPPROTO_IP, IP_PKTINFO) | (WskSetOption, IPPROTO_IPV6, IPV6_PKTINFO) => {
            // SAFETY: as above.
            match unsafe { option_u32(input_size, input_buffer) } {
                Some(v) => {
                    state().sockets.get_mut(&key).expect("checked above").pktinfo = v != 0;
                    STATUS_SUCCESS
                }
                None => STATUS_INVALID_PARAMETER,
            }
        }
        (WskSetOption, IPPROTO_UDP, UDP_RECV_MAX_COALESCED_SIZE | UDP_SEND_MSG_SIZE) => {
            // SAFETY: as above.
            match unsafe { option_u32(input_size, input_buffer) } {
                Some(0) => STATUS_SUCCESS,
                Some(v) => {
                    violation(
                        Rule::NotSimulated,
                        format!("UDP coalescing/segmentation option {control_code} = {v}"),
                    );
                    STATUS_NOT_SUPPORTED
                }
                None => STATUS_INVALID_PARAMETER,
            }
        }
        (WskIoctl, _, SIO_WSK_SET_REMOTE_ADDRESS) => {
            // SAFETY: the input is a SOCKADDR of `input_size` bytes (checked against its family).
            match unsafe { read_sockaddr(input_buffer.cast()) } {
                Some(addr) if input_size >= if addr.is_ipv4() { 16 } else { 28 } => {
                    state().sockets.get_mut(&key).expect("checked above").remote = Some(addr);
                    STATUS_SUCCESS
                }
                _ => STATUS_INVALID_PARAMETER,
            }
        }
        _ => {
            let kind = match request_type {
                WskGetOption => "WskGetOption",
                WskIoctl => "WskIoctl",
                _ => "WskSetOption",
            };
            violation(
                Rule::NotSimulated,
                format!("WskControlSocket({kind}, level {level:#x}, code {control_code:#x})"),
            );
            STATUS_NOT_SUPPORTED
        }
    };
    if !output_size_returned.is_null() {
        // SAFETY: the client passes a writable SIZE_T when it passes one.
        unsafe { output_size_returned.write(0) };
    }
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, ROUTINE, status, 0) }
}

/// Where a socket bound to `addr` really listens. The wildcard and the simulated machine's own unicast
/// addresses — the documentation ranges the tests give the simulated NICs (RFC 5737: 192.0.2.0/24,
/// 198.51.100.0/24, 203.0.113.0/24; RFC 3849: 2001:db8::/32) — are served by the host's loopback, on
/// the requested port; any other address is not simulated.
fn loopback_for(addr: SocketAddr) -> SocketAddr {
    let simulated_host_v4 =
        |ip: Ipv4Addr| matches!(ip.octets(), [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]);
    let simulated_host_v6 = |ip: Ipv6Addr| ip.segments()[0] == 0x2001 && ip.segments()[1] == 0x0db8;
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() || simulated_host_v4(ip) => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() || simulated_host_v6(ip) => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

unsafe extern "system" fn sim_bind(
    socket: *mut WSK_SOCKET,
    local_address: *mut SOCKADDR,
    _flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskBind";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    if !known_socket(socket, ROUTINE) {
        // SAFETY: validated inside.
        return unsafe { finish_inline(irp, ROUTINE, STATUS_INVALID_PARAMETER, 0) };
    }
    let key = socket as usize;
    // SAFETY: the client passes a socket address of its family's size.
    let requested = unsafe { read_sockaddr(local_address) };
    let status = {
        let mut st = state();
        let injected = st.faults.bind_error;
        let s = st.sockets.get_mut(&key).expect("checked above");
        match requested {
            _ if s.udp.is_some() => STATUS_INVALID_DEVICE_STATE,
            Some(_) if injected.is_some() => injected.unwrap_or(STATUS_INVALID_DEVICE_STATE),
            None => STATUS_INVALID_ADDRESS,
            Some(addr) if (s.family == AF_INET) != addr.is_ipv4() => STATUS_INVALID_ADDRESS,
            Some(addr) => {
                let addr = loopback_for(addr);
                if addr.ip().is_loopback() {
                    match UdpSocket::bind(addr) {
                        Ok(udp) if udp.set_nonblocking(true).is_ok() => {
                            s.udp = Some(Arc::new(udp));
                            STATUS_SUCCESS
                        }
                        Ok(_) => STATUS_INVALID_DEVICE_STATE,
                        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                            STATUS_ADDRESS_ALREADY_ASSOCIATED
                        }
                        Err(_) => STATUS_INVALID_ADDRESS,
                    }
                } else {
                    drop(st);
                    violation(Rule::NotSimulated, format!("WskBind to {addr}: only loopback is simulated"));
                    STATUS_INVALID_ADDRESS
                }
            }
        }
    };
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, ROUTINE, status, 0) }
}

unsafe extern "system" fn sim_get_local_address(
    socket: *mut WSK_SOCKET,
    local_address: *mut SOCKADDR,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskGetLocalAddress";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    if !known_socket(socket, ROUTINE) {
        // SAFETY: validated inside.
        return unsafe { finish_inline(irp, ROUTINE, STATUS_INVALID_PARAMETER, 0) };
    }
    let local = state().sockets.get(&(socket as usize)).and_then(|s| match &s.connection {
        Some(c) => c.stream.as_ref()?.local_addr().ok(),
        None => s.udp.as_ref()?.local_addr().ok(),
    });
    let status = match local {
        Some(addr) if !local_address.is_null() => {
            // SAFETY: the client passes a buffer of its socket's address size.
            unsafe { write_sockaddr(addr, local_address) };
            STATUS_SUCCESS
        }
        Some(_) => STATUS_INVALID_PARAMETER,
        None => STATUS_INVALID_DEVICE_STATE,
    };
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, ROUTINE, status, 0) }
}

/// Queues (or, inline, performs) a send of `datagrams` and completes `irp` accordingly.
///
/// # Safety
/// `irp` must have been accepted.
unsafe fn submit_send(socket: usize, irp: *mut IRP, datagrams: Vec<(Vec<u8>, SocketAddr)>) -> NTSTATUS {
    let now = crate::clock::now();
    let mut st = state();
    st.stats.submitted += datagrams.len() as u64;
    let stall = crate::clock::ticks(Duration::from_millis(st.faults.stall_ms));
    let op = SendOp { socket, irp: irp as usize, datagrams, ready_at: now.saturating_add(stall) };
    let inline = st.config.send_completion == SendCompletion::Inline
        && st.faults.stall_ms == 0
        && st.faults.backpressure.is_none()
        && st.sends.is_empty();
    if !inline {
        st.sends.push_back(op);
        return STATUS_PENDING;
    }
    let (status, information) = execute_send(&mut st, op);
    st.stats.send_completions += 1;
    flush_held(&mut st);
    drop(st);
    // SAFETY: accepted by the caller, completed once here.
    unsafe { complete(irp, status, information, irql()) };
    status
}

/// The destination of a send: the explicit address, else the socket's `SIO_WSK_SET_REMOTE_ADDRESS`.
///
/// # Safety
/// `remote` must be null or a valid socket address.
unsafe fn destination(socket: usize, remote: *mut SOCKADDR) -> Option<SocketAddr> {
    // SAFETY: forwarded contract.
    let explicit = unsafe { read_sockaddr(remote) };
    explicit.or_else(|| state().sockets.get(&socket)?.remote)
}

/// Common checks of the two send routines; `Err` carries the status to complete with.
fn send_checks(socket: usize) -> Result<(), NTSTATUS> {
    match state().sockets.get(&socket) {
        None => Err(STATUS_INVALID_PARAMETER),
        Some(s) if s.udp.is_none() => Err(STATUS_INVALID_DEVICE_STATE),
        Some(_) => Ok(()),
    }
}

unsafe extern "system" fn sim_send_to(
    socket: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    _flags: u32,
    remote_address: *mut SOCKADDR,
    _control_info_length: u32,
    _control_info: *mut CMSGHDR,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskSendTo";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    let known = known_socket(socket, ROUTINE);
    // SAFETY: validated inside.
    if !unsafe { accept_irp(irp, ROUTINE) } {
        return STATUS_INVALID_PARAMETER;
    }
    let key = socket as usize;
    // SAFETY: the client's WSK_BUF and socket address stay valid until completion.
    let prepared = send_checks(key).and_then(|()| {
        // SAFETY: as above.
        let to = unsafe { destination(key, remote_address) }.ok_or(STATUS_INVALID_PARAMETER)?;
        // SAFETY: as above.
        let data = unsafe { read_wsk_buf(buffer) }.ok_or(STATUS_INVALID_PARAMETER)?;
        if data.len() > MAX_DATAGRAM {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        Ok(vec![(data, to)])
    });
    match prepared {
        // SAFETY: accepted above.
        Ok(datagrams) if known => unsafe { submit_send(key, irp, datagrams) },
        Ok(_) => {
            // SAFETY: accepted above.
            unsafe { complete(irp, STATUS_INVALID_PARAMETER, 0, irql()) };
            STATUS_INVALID_PARAMETER
        }
        Err(status) => {
            // SAFETY: accepted above.
            unsafe { complete(irp, status, 0, irql()) };
            status
        }
    }
}

unsafe extern "system" fn sim_send_messages(
    socket: *mut WSK_SOCKET,
    buffer_list: *mut WSK_BUF_LIST,
    _flags: u32,
    remote_address: *mut SOCKADDR,
    _control_info_length: u32,
    _control_info: *mut CMSGHDR,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskSendMessages";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    let known = known_socket(socket, ROUTINE);
    // SAFETY: validated inside.
    if !unsafe { accept_irp(irp, ROUTINE) } {
        return STATUS_INVALID_PARAMETER;
    }
    let key = socket as usize;
    if known && crate::bench::active() {
        // SAFETY: the client's buffers and address stay valid until completion; the IRP was accepted.
        if let Some(status) = unsafe { bench_send_messages(key, buffer_list, remote_address, irp) } {
            return status;
        }
    }
    let prepared = send_checks(key).and_then(|()| {
        // SAFETY: the client's buffers and address stay valid until completion.
        let to = unsafe { destination(key, remote_address) }.ok_or(STATUS_INVALID_PARAMETER)?;
        let mut datagrams = Vec::new();
        let mut element = buffer_list;
        while !element.is_null() {
            // SAFETY: each element of the client's list is a valid WSK_BUF_LIST.
            let e = unsafe { &*element };
            // SAFETY: as above.
            let data = unsafe { read_wsk_buf(&raw const e.Buffer) }.ok_or(STATUS_INVALID_PARAMETER)?;
            if data.len() > MAX_DATAGRAM {
                return Err(STATUS_INVALID_BUFFER_SIZE);
            }
            datagrams.push((data, to));
            element = e.Next;
        }
        if datagrams.is_empty() {
            return Err(STATUS_INVALID_PARAMETER);
        }
        Ok(datagrams)
    });
    let status = match prepared {
        Ok(datagrams) if known => {
            // SAFETY: accepted above.
            return unsafe { submit_send(key, irp, datagrams) };
        }
        Ok(_) => STATUS_INVALID_PARAMETER,
        Err(status) => status,
    };
    // SAFETY: accepted above.
    unsafe { complete(irp, status, 0, irql()) };
    status
}

/// The bench profile's `WskSendMessages` when nothing can make it differ from an inline completion (no
/// fault, inline completions, nothing queued, a UDP socket, every buffer valid): the datagrams are
/// counted and measured where they sit, as a NIC would DMA them, and only the last of the list is copied
/// for [`crate::bench::sink_take`]; the IRP completes inline. `None` sends the call down the general
/// path (which also reports every error).
///
/// # Safety
/// As `sim_send_messages`, with `irp` accepted.
#[cfg_attr(not(feature = "bench-profile"), allow(dead_code))]
unsafe fn bench_send_messages(
    key: usize,
    buffer_list: *mut WSK_BUF_LIST,
    remote_address: *mut SOCKADDR,
    irp: *mut IRP,
) -> Option<NTSTATUS> {
    send_checks(key).ok()?;
    // SAFETY: forwarded contract.
    unsafe { destination(key, remote_address) }?;
    let mut st = state();
    let faults = st.faults;
    let plain = st.config.send_completion == SendCompletion::Inline
        && faults.stall_ms == 0
        && faults.backpressure.is_none()
        && faults.send_error.is_none()
        && faults.loss == 0.0
        && faults.duplicate == 0.0
        && faults.reorder == 0.0
        && st.sends.is_empty()
        && st.held.is_none()
        && st.sockets.get(&key).is_some_and(|s| s.udp.is_some() && s.connection.is_none());
    if !plain {
        return None;
    }
    let (mut count, mut bytes, mut last) = (0u64, 0usize, std::ptr::null::<WSK_BUF>());
    let mut element = buffer_list;
    while !element.is_null() {
        // SAFETY: each element of the client's list is a valid WSK_BUF_LIST.
        let e = unsafe { &*element };
        // SAFETY: as above.
        let len = unsafe { walk_wsk_buf(&raw const e.Buffer, |_| {}) }?;
        if len > MAX_DATAGRAM {
            return None;
        }
        count += 1;
        bytes += len;
        last = &raw const e.Buffer;
        element = e.Next;
    }
    // SAFETY: as above.
    let last = unsafe { read_wsk_buf(last) }?;
    st.stats.submitted += count;
    st.stats.transmitted += count;
    st.stats.send_completions += 1;
    crate::bench::sink_batch(count, bytes as u64, last);
    drop(st);
    // SAFETY: accepted by the caller, completed once here.
    unsafe { complete(irp, STATUS_SUCCESS, bytes, irql()) };
    Some(STATUS_SUCCESS)
}

unsafe extern "system" fn sim_receive_from(
    _socket: *mut WSK_SOCKET,
    _buffer: *mut WSK_BUF,
    _flags: u32,
    _remote_address: *mut SOCKADDR,
    _control_length: *mut u32,
    _control_info: *mut CMSGHDR,
    _control_flags: *mut u32,
    irp: *mut IRP,
) -> NTSTATUS {
    violation(Rule::NotSimulated, "WskReceiveFrom (use receive events)");
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, "WskReceiveFrom", STATUS_NOT_SUPPORTED, 0) }
}

unsafe extern "system" fn sim_release(
    socket: *mut WSK_SOCKET,
    indication: *mut WSK_DATAGRAM_INDICATION,
) -> NTSTATUS {
    const ROUTINE: &str = "WskRelease";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    if indication.is_null() {
        violation(Rule::WskReleaseUnknown, "WskRelease(NULL)");
        return STATUS_INVALID_PARAMETER;
    }
    let mut p = indication;
    let mut released = 0u64;
    // One hold of the state lock for the whole chain (released again only to report a violation).
    let mut st = state();
    while !p.is_null() {
        match st.retained.get(&(p as usize)) {
            Some(r) if r.socket == socket as usize || !st.sockets.contains_key(&(socket as usize)) => {
                st.retained.remove(&(p as usize));
                st.stats.released += 1;
                // SAFETY: a retained indication the simulation built; reading Next before freeing.
                let next = unsafe { (*p).Next };
                free_indication(p.cast());
                released += 1;
                p = next;
            }
            Some(r) => {
                let from = r.socket;
                drop(st);
                violation(
                    Rule::WskReleaseUnknown,
                    format!("WskRelease({socket:p}, {p:p}): the indication came from socket {from:#x}"),
                );
                return STATUS_INVALID_PARAMETER;
            }
            None => {
                drop(st);
                violation(
                    Rule::WskReleaseUnknown,
                    format!(
                        "WskRelease({socket:p}, {p:p}) after {released} released: not a retained datagram indication \
                         (returned STATUS_SUCCESS from the callback, released already, or never indicated)"
                    ),
                );
                return STATUS_INVALID_PARAMETER;
            }
        }
    }
    STATUS_SUCCESS
}

unsafe extern "system" fn sim_close_socket(socket: *mut WSK_SOCKET, irp: *mut IRP) -> NTSTATUS {
    const ROUTINE: &str = "WskCloseSocket";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    if irp.is_null() {
        violation(Rule::WskIrpMisuse, "WskCloseSocket without an IRP (the IRP is required)");
    }
    if !known_socket(socket, ROUTINE) {
        // SAFETY: validated inside.
        return unsafe { finish_inline(irp, ROUTINE, STATUS_INVALID_PARAMETER, 0) };
    }
    let key = socket as usize;
    let me = std::thread::current().id();
    let deadline = Instant::now() + Duration::from_secs(2);
    // Wait (bounded) for a receive callback on this socket running on another thread.
    let (cancelled, retained) = loop {
        let delivering = crate::lock(&DELIVERING);
        if matches!(*delivering, Some((t, s)) if s == key && t != me) && Instant::now() < deadline {
            drop(delivering);
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let mut st = state();
        if let Some(stream) = st.sockets.remove(&key).and_then(|s| s.connection?.stream) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let (cancelled, kept): (VecDeque<SendOp>, VecDeque<SendOp>) =
            std::mem::take(&mut st.sends).into_iter().partition(|op| op.socket == key);
        st.sends = kept;
        let retained = st.retained.values().filter(|r| r.socket == key).count();
        break (cancelled, retained);
    };
    if retained > 0 {
        violation(
            Rule::WskCloseWithRetained,
            format!("WskCloseSocket({socket:p}) with {retained} datagram indication(s) still retained"),
        );
    }
    for op in cancelled {
        let pending = op.irp as *mut IRP;
        // SAFETY: a send IRP the provider holds; cancelled once, here.
        unsafe { (*pending).Cancel = 1 };
        // SAFETY: as above.
        unsafe { complete(pending, STATUS_CANCELLED, 0, irql()) };
    }
    free_socket_object(key);
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, ROUTINE, STATUS_SUCCESS, 0) }
}

unsafe extern "system" fn sim_get_address_info(
    _client: PWSK_CLIENT,
    _node_name: *mut UNICODE_STRING,
    _service_name: *mut UNICODE_STRING,
    _name_space: u32,
    _provider: *mut GUID,
    _hints: *mut c_void,
    _result: *mut *mut c_void,
    _owning_process: PEPROCESS,
    _owning_thread: PETHREAD,
    irp: *mut IRP,
) -> NTSTATUS {
    violation(Rule::NotSimulated, "WskGetAddressInfo");
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, "WskGetAddressInfo", STATUS_NOT_SUPPORTED, 0) }
}

unsafe extern "system" fn sim_free_address_info(_client: PWSK_CLIENT, _addr_info: *mut c_void) {
    violation(Rule::NotSimulated, "WskFreeAddressInfo");
}

unsafe extern "system" fn sim_get_name_info(
    _client: PWSK_CLIENT,
    _sock_addr: *mut SOCKADDR,
    _sock_addr_length: u32,
    _node_name: *mut UNICODE_STRING,
    _service_name: *mut UNICODE_STRING,
    _flags: u32,
    _owning_process: PEPROCESS,
    _owning_thread: PETHREAD,
    irp: *mut IRP,
) -> NTSTATUS {
    violation(Rule::NotSimulated, "WskGetNameInfo");
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, "WskGetNameInfo", STATUS_NOT_SUPPORTED, 0) }
}
