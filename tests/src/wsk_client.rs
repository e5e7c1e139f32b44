//! A small raw WSK client, written as a driver would (register, capture the provider NPI, create datagram
//! sockets with receive events, bind, send with IRPs it allocates, retain and release indications). The
//! WSK tests (`tests/tests/wsk.rs`) and the verifier suite's WSK negative tests use it. Helper failures
//! panic: they are test-infrastructure failures, not verdicts on a driver.
#![allow(non_snake_case, clippy::missing_panics_doc, clippy::must_use_candidate, clippy::missing_safety_doc)]
// Test scaffolding: every raw pointer these helpers take is one the simulated provider handed out (a socket,
// an indication, an IRP from `new_irp`), and the simulation validates them before use.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::c_void;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use kernel::ffi::mdl::{
    MmGetMdlByteCount, MmGetSystemAddressForMdlSafe, MDL, MDL_SOURCE_IS_NONPAGED_POOL, PAGE_SIZE,
};
use kernel::ffi::ntos::{
    IoAllocateIrp, IoFreeIrp, IoSetCompletionRoutine, DEVICE_OBJECT, DRIVER_OBJECT, IRP, KIRQL, NTSTATUS,
    PASSIVE_LEVEL, STATUS_MORE_PROCESSING_REQUIRED, STATUS_PENDING, STATUS_SUCCESS, UNICODE_STRING,
};
use kernel::ffi::wsk::{
    WskCaptureProviderNPI, WskDeregister, WskRegister, WskReleaseProviderNPI, WskSetOption, AF_INET,
    AF_INET6, IN6_ADDR, IN_ADDR, IN_PKTINFO, IPPROTO_UDP, IP_PKTINFO, NPI_WSK_INTERFACE_ID, SOCKADDR,
    SOCKADDR_IN, SOCKADDR_IN6, SOCKADDR_STORAGE, SOCK_DGRAM, SOL_SOCKET, SO_WSK_EVENT_CALLBACK, WSA_CMSG_LEN,
    WSK_BUF, WSK_CLIENT_DATAGRAM_DISPATCH, WSK_CLIENT_DISPATCH, WSK_CLIENT_NPI, WSK_DATAGRAM_INDICATION,
    WSK_EVENT_CALLBACK_CONTROL, WSK_EVENT_RECEIVE_FROM, WSK_FLAG_DATAGRAM_SOCKET, WSK_INFINITE_WAIT,
    WSK_PROVIDER_DATAGRAM_DISPATCH, WSK_PROVIDER_NPI, WSK_REGISTRATION, WSK_SOCKET, WSK_VERSION_1_0,
};
use winsim::context::{call_driver, irql};
use winsim::wsk::{self};
use winsim::{DriverId, Machine};

// ---- the test driver ----

pub unsafe extern "system" fn unload(_: *mut DRIVER_OBJECT) {}

pub unsafe extern "system" fn entry(driver: *mut DRIVER_OBJECT, _: *mut UNICODE_STRING) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid driver object.
    unsafe { (*driver).DriverUnload = Some(unload) };
    STATUS_SUCCESS
}

pub fn boot() -> (Machine, DriverId) {
    let mut machine = Machine::boot();
    let id = load(&mut machine);
    (machine, id)
}

/// Loads the WSK test driver into `machine` and clears the client's records.
pub fn load(machine: &mut Machine) -> DriverId {
    let id = machine.load_driver("wsktest", entry).expect("test driver loads");
    *RECEIVED.lock().unwrap() = Vec::new();
    *COMPLETED.lock().unwrap() = Vec::new();
    RECEIVE_STATUS.store(STATUS_SUCCESS, Ordering::SeqCst);
    COMPLETION_RESULT.store(STATUS_MORE_PROCESSING_REQUIRED, Ordering::SeqCst);
    id
}

pub fn names(machine: Machine) -> Vec<&'static str> {
    machine.shutdown().iter().map(|v| v.rule.name()).collect()
}

pub fn as_driver<R>(id: DriverId, f: impl FnOnce() -> R) -> R {
    call_driver(id, PASSIVE_LEVEL, "test", f)
}

// ---- client callbacks ----

/// One received datagram: socket context, bytes, sender, MDL count, `Buffer.Offset`, the indication,
/// and the callback's flags and IRQL.
#[derive(Clone, Debug)]
pub struct Received {
    pub context: usize,
    pub data: Vec<u8>,
    pub from: Option<SocketAddr>,
    pub mdls: usize,
    pub offset: u32,
    pub indication: usize,
    pub flags: u32,
    pub irql: KIRQL,
    /// The destination address from an `IP_PKTINFO` control message, if any.
    pub pktinfo: Option<Ipv4Addr>,
}

pub static RECEIVED: Mutex<Vec<Received>> = Mutex::new(Vec::new());
/// What `on_receive` returns.
pub static RECEIVE_STATUS: AtomicI32 = AtomicI32::new(STATUS_SUCCESS);
/// (tag, status, information, irql) of every completion.
pub static COMPLETED: Mutex<Vec<(usize, NTSTATUS, usize, KIRQL)>> = Mutex::new(Vec::new());
/// What `on_complete` returns.
pub static COMPLETION_RESULT: AtomicI32 = AtomicI32::new(STATUS_MORE_PROCESSING_REQUIRED);
/// Tag bit: the completion routine frees the IRP (as ovpn-dco-win's send completion does).
pub const FREE: usize = 1 << 40;

pub fn read_sockaddr(p: *const SOCKADDR) -> Option<SocketAddr> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the provider's RemoteAddress is a SOCKADDR_IN or SOCKADDR_IN6.
    let family = unsafe { (*p).sa_family };
    if family == AF_INET {
        // SAFETY: as above.
        let s = unsafe { p.cast::<SOCKADDR_IN>().read_unaligned() };
        Some(SocketAddr::new(Ipv4Addr::from(s.sin_addr.s_addr).into(), u16::from_be(s.sin_port)))
    } else {
        // SAFETY: as above.
        let s = unsafe { p.cast::<SOCKADDR_IN6>().read_unaligned() };
        Some(SocketAddr::new(Ipv6Addr::from(s.sin6_addr.s6_addr).into(), u16::from_be(s.sin6_port)))
    }
}

/// Reads a datagram through its MDL chain as a driver would.
pub fn read_indication(ind: &WSK_DATAGRAM_INDICATION) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut mdl = ind.Buffer.Mdl;
    let mut offset = ind.Buffer.Offset as usize;
    let mut remaining = ind.Buffer.Length;
    let mut count = 0;
    while !mdl.is_null() && remaining > 0 {
        // SAFETY: the provider's MDLs are valid while the indication is held.
        let va = unsafe { MmGetSystemAddressForMdlSafe(mdl, 0) }.cast::<u8>();
        // SAFETY: as above.
        let len = unsafe { MmGetMdlByteCount(mdl) } as usize;
        let take = (len - offset).min(remaining);
        let start = va.wrapping_add(offset);
        // SAFETY: the MDL maps `len` bytes at `va`; `offset + take <= len`.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(start, take) });
        remaining -= take;
        offset = 0;
        count += 1;
        // SAFETY: as above.
        mdl = unsafe { (*mdl).Next };
    }
    (out, count)
}

/// Parses an `IP_PKTINFO` control message.
#[allow(clippy::cast_ptr_alignment)] // read_unaligned below
pub fn read_pktinfo(ind: &WSK_DATAGRAM_INDICATION) -> Option<Ipv4Addr> {
    if ind.ControlInfo.is_null() || (ind.ControlInfoLength as usize) < WSA_CMSG_LEN(size_of::<IN_PKTINFO>()) {
        return None;
    }
    // SAFETY: the provider's control buffer holds ControlInfoLength bytes.
    let header = unsafe { ind.ControlInfo.read_unaligned() };
    if header.cmsg_level != 0 || header.cmsg_type != IP_PKTINFO.cast_signed() {
        return None;
    }
    let data = ind.ControlInfo.cast::<u8>().wrapping_add(WSA_CMSG_LEN(0)).cast::<IN_PKTINFO>();
    // SAFETY: as above; the data follows the aligned header.
    let info = unsafe { data.read_unaligned() };
    Some(Ipv4Addr::from(info.ipi_addr.s_addr))
}

pub unsafe extern "system" fn on_receive(
    context: *mut c_void,
    flags: u32,
    indication: *mut WSK_DATAGRAM_INDICATION,
) -> NTSTATUS {
    let mut p = indication;
    while !p.is_null() {
        // SAFETY: the provider's chain is valid during the callback.
        let ind = unsafe { &*p };
        let (data, mdls) = read_indication(ind);
        RECEIVED.lock().unwrap().push(Received {
            context: context as usize,
            data,
            from: read_sockaddr(ind.RemoteAddress),
            mdls,
            offset: ind.Buffer.Offset,
            indication: p as usize,
            flags,
            irql: irql(),
            pktinfo: read_pktinfo(ind),
        });
        p = ind.Next;
    }
    RECEIVE_STATUS.load(Ordering::SeqCst)
}

pub unsafe extern "system" fn on_complete(
    _device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    let tag = context as usize;
    let status = irp_status(irp);
    // SAFETY: as above.
    let information = unsafe { (*irp).IoStatus.Information };
    if tag & !FREE != 0 {
        // Tag 0 is `sync_op`'s, which reads the IRP itself.
        COMPLETED.lock().unwrap().push((tag & !FREE, status, information, irql()));
    }
    if tag & FREE != 0 {
        // SAFETY: the IRP is ours and the provider is done with it.
        unsafe { IoFreeIrp(irp) };
    }
    COMPLETION_RESULT.load(Ordering::SeqCst)
}

static CLIENT_DISPATCH: WSK_CLIENT_DISPATCH =
    WSK_CLIENT_DISPATCH { Version: WSK_VERSION_1_0, Reserved: 0, WskClientEvent: None };
static DATAGRAM_EVENTS: WSK_CLIENT_DATAGRAM_DISPATCH =
    WSK_CLIENT_DATAGRAM_DISPATCH { WskReceiveFromEvent: Some(on_receive) };

/// `Irp->IoStatus.Status` of a completed IRP.
pub fn irp_status(irp: *mut IRP) -> NTSTATUS {
    // SAFETY: a live IRP the caller owns.
    let io_status = unsafe { &(*irp).IoStatus };
    // SAFETY: Status is the member completion writes.
    unsafe { io_status.u.Status }
}

pub fn completions() -> Vec<(usize, NTSTATUS, usize, KIRQL)> {
    COMPLETED.lock().unwrap().clone()
}

pub fn received() -> Vec<Received> {
    RECEIVED.lock().unwrap().clone()
}

// ---- the client ----

#[derive(Debug)]
pub struct Client {
    pub id: DriverId,
    pub registration: Box<WSK_REGISTRATION>,
    pub npi: WSK_PROVIDER_NPI,
}

pub fn register(id: DriverId) -> Client {
    let mut registration = Box::new(WSK_REGISTRATION {
        ReservedRegistrationState: 0,
        ReservedRegistrationContext: null_mut(),
        ReservedRegistrationLock: 0,
    });
    let mut client_npi = WSK_CLIENT_NPI { ClientContext: null_mut(), Dispatch: &raw const CLIENT_DISPATCH };
    let mut npi = WSK_PROVIDER_NPI { Client: null_mut(), Dispatch: std::ptr::null() };
    as_driver(id, || {
        // SAFETY: valid NPI and registration that outlive the registration.
        let status = unsafe { WskRegister(&raw mut client_npi, &raw mut *registration) };
        assert_eq!(status, STATUS_SUCCESS);
        // SAFETY: a live registration and a writable NPI.
        let status =
            unsafe { WskCaptureProviderNPI(&raw mut *registration, WSK_INFINITE_WAIT, &raw mut npi) };
        assert_eq!(status, STATUS_SUCCESS);
    });
    Client { id, registration, npi }
}

pub fn deregister(mut client: Client) {
    as_driver(client.id, || {
        // SAFETY: captured once above.
        unsafe { WskReleaseProviderNPI(&raw mut *client.registration) };
        // SAFETY: registered above.
        unsafe { WskDeregister(&raw mut *client.registration) };
    });
}

pub fn new_irp(tag: usize) -> *mut IRP {
    // SAFETY: plain allocation.
    let irp = unsafe { IoAllocateIrp(1, 0) };
    assert!(!irp.is_null());
    set_routine(irp, tag);
    irp
}

/// `IoSetCompletionRoutine(irp, on_complete, tag, TRUE, TRUE, TRUE)`.
pub fn set_routine(irp: *mut IRP, tag: usize) {
    // SAFETY: an IRP of ours with one stack location, none current.
    unsafe { IoSetCompletionRoutine(irp, Some(on_complete), tag as *mut c_void, true, true, true) };
}

/// Runs a control operation with its own IRP, as ovpn-dco-win's `OvpnSocketSyncOp` does; control
/// operations complete inline, so the status is final. Returns (status, information).
pub fn sync_op(id: DriverId, op: impl FnOnce(*mut IRP) -> NTSTATUS) -> (NTSTATUS, usize) {
    as_driver(id, || {
        let irp = new_irp(0);
        let status = op(irp);
        assert_ne!(status, STATUS_PENDING, "control operations complete inline");
        let final_status = irp_status(irp);
        // SAFETY: as above.
        let information = unsafe { (*irp).IoStatus.Information };
        assert_eq!(status, final_status);
        // SAFETY: ours; the provider is done with it.
        unsafe { IoFreeIrp(irp) };
        (status, information)
    })
}

pub fn dgram<'a>(socket: *mut WSK_SOCKET) -> &'a WSK_PROVIDER_DATAGRAM_DISPATCH {
    // SAFETY: an open socket object.
    let table = unsafe { (*socket).Dispatch };
    // SAFETY: a datagram socket's Dispatch is the provider's datagram table, a static.
    unsafe { &*table.cast::<WSK_PROVIDER_DATAGRAM_DISPATCH>() }
}

pub fn storage(addr: SocketAddr) -> SOCKADDR_STORAGE {
    let mut s = SOCKADDR_STORAGE { ss_family: 0, ss_pad: [0; 126] };
    let p = (&raw mut s).cast::<u8>();
    match addr {
        SocketAddr::V4(v4) => {
            let a = SOCKADDR_IN {
                sin_family: AF_INET,
                sin_port: v4.port().to_be(),
                sin_addr: IN_ADDR { s_addr: v4.ip().octets() },
                sin_zero: [0; 8],
            };
            // SAFETY: 16 bytes into a 128-byte storage.
            unsafe { p.cast::<SOCKADDR_IN>().write_unaligned(a) };
        }
        SocketAddr::V6(v6) => {
            let a = SOCKADDR_IN6 {
                sin6_family: AF_INET6,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: IN6_ADDR { s6_addr: v6.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: 28 bytes into a 128-byte storage.
            unsafe { p.cast::<SOCKADDR_IN6>().write_unaligned(a) };
        }
    }
    s
}

/// Creates a datagram socket with receive events, bound to `bind`; returns it and its bound address.
pub fn udp_socket(client: &Client, bind: SocketAddr, context: usize) -> (*mut WSK_SOCKET, SocketAddr) {
    let family = if bind.is_ipv4() { AF_INET } else { AF_INET6 };
    // SAFETY: a captured provider NPI's dispatch table.
    let create = unsafe { (*client.npi.Dispatch).WskSocket }.unwrap();
    let (status, info) = sync_op(client.id, |irp| {
        // SAFETY: valid arguments; the IRP is ours.
        unsafe {
            create(
                client.npi.Client,
                family,
                SOCK_DGRAM,
                IPPROTO_UDP,
                WSK_FLAG_DATAGRAM_SOCKET,
                context as *mut c_void,
                (&raw const DATAGRAM_EVENTS).cast(),
                null_mut(),
                null_mut(),
                null_mut(),
                irp,
            )
        }
    });
    assert_eq!(status, STATUS_SUCCESS);
    let socket = info as *mut WSK_SOCKET;
    let d = dgram(socket);
    let mut local = storage(bind);
    let bind_fn = d.WskBind.unwrap();
    // SAFETY: an open socket and a valid address.
    let (status, _) = sync_op(client.id, |irp| unsafe { bind_fn(socket, (&raw mut local).cast(), 0, irp) });
    assert_eq!(status, STATUS_SUCCESS);
    let mut out = storage(bind);
    let get = d.WskGetLocalAddress.unwrap();
    // SAFETY: a bound socket and a 128-byte buffer.
    let (status, _) = sync_op(client.id, |irp| unsafe { get(socket, (&raw mut out).cast(), irp) });
    assert_eq!(status, STATUS_SUCCESS);
    let bound = read_sockaddr((&raw const out).cast()).unwrap();
    assert_ne!(bound.port(), 0);
    assert_eq!(enable_events(client.id, socket), STATUS_SUCCESS);
    (socket, bound)
}

/// `SO_WSK_EVENT_CALLBACK` with no IRP, as ovpn-dco-win does.
pub fn enable_events(id: DriverId, socket: *mut WSK_SOCKET) -> NTSTATUS {
    let mut control =
        WSK_EVENT_CALLBACK_CONTROL { NpiId: &NPI_WSK_INTERFACE_ID, EventMask: WSK_EVENT_RECEIVE_FROM };
    let f = dgram(socket).Basic.WskControlSocket.unwrap();
    as_driver(id, || {
        // SAFETY: an open socket; the control block is valid for the call.
        unsafe {
            f(
                socket,
                WskSetOption,
                SO_WSK_EVENT_CALLBACK,
                SOL_SOCKET,
                size_of::<WSK_EVENT_CALLBACK_CONTROL>(),
                (&raw mut control).cast(),
                0,
                null_mut(),
                null_mut(),
                null_mut(),
            )
        }
    })
}

pub fn close(id: DriverId, socket: *mut WSK_SOCKET) {
    let f = dgram(socket).Basic.WskCloseSocket.unwrap();
    // SAFETY: an open socket.
    let (status, _) = sync_op(id, |irp| unsafe { f(socket, irp) });
    assert_eq!(status, STATUS_SUCCESS);
}

pub fn release(id: DriverId, socket: *mut WSK_SOCKET, indication: usize) -> NTSTATUS {
    let f = dgram(socket).WskRelease.unwrap();
    // SAFETY: the simulation validates the indication.
    as_driver(id, || unsafe { f(socket, indication as *mut WSK_DATAGRAM_INDICATION) })
}

/// A free-standing MDL over `bytes` built like `MmBuildMdlForNonPagedPool` leaves it (the test keeps the
/// bytes alive until the send completes).
#[allow(clippy::unnecessary_box_returns)] // the MDL's address must stay put while it is in use
pub fn mdl_over(bytes: &mut [u8]) -> Box<MDL> {
    let va = bytes.as_mut_ptr() as usize;
    Box::new(MDL {
        Next: null_mut(),
        Size: 48,
        MdlFlags: MDL_SOURCE_IS_NONPAGED_POOL,
        Process: null_mut(),
        MappedSystemVa: va as *mut c_void,
        StartVa: (va & !(PAGE_SIZE - 1)) as *mut c_void,
        ByteCount: u32::try_from(bytes.len()).unwrap(),
        ByteOffset: u32::try_from(va % PAGE_SIZE).unwrap(),
    })
}

/// Sends `data` with `WskSendTo` on a fresh IRP the completion routine frees; returns the call's status.
/// The payload is described by two MDLs and a nonzero offset; it and the MDLs are leaked (tests are
/// short).
pub fn send_to(id: DriverId, socket: *mut WSK_SOCKET, to: SocketAddr, data: &[u8], tag: usize) -> NTSTATUS {
    let mut head = vec![0xEE; 3];
    let cut = (data.len() / 2).max(data.len().min(1));
    head.extend_from_slice(&data[..cut]);
    let head: &'static mut [u8] = Box::leak(head.into_boxed_slice());
    let tail: &'static mut [u8] = Box::leak(data[cut..].to_vec().into_boxed_slice());
    let first = Box::leak(mdl_over(head));
    first.Next = Box::into_raw(mdl_over(tail));
    let mut buf = WSK_BUF { Mdl: first, Offset: 3, Length: data.len() };
    let mut remote = storage(to);
    let f = dgram(socket).WskSendTo.unwrap();
    as_driver(id, || {
        let irp = new_irp(tag | FREE);
        // SAFETY: an open socket; the buffers outlive the send.
        unsafe { f(socket, &raw mut buf, 0, (&raw mut remote).cast(), 0, null_mut(), irp) }
    })
}

pub fn v4() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0)
}

pub fn wait(what: &str, done: impl FnMut() -> bool) {
    assert!(wsk::pump_until(Duration::from_secs(1), done), "timed out waiting for {what}");
}
