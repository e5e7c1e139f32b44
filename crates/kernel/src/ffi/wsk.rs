//! Winsock Kernel (WSK): registration (`netio.sys` exports), the provider/client NPIs and dispatch
//! tables, datagram sockets (`WskSendTo`, `WskSendMessages`, `WskReceiveFromEvent`, `WskRelease`),
//! `WSK_BUF`/`WSK_BUF_LIST`/`WSK_DATAGRAM_INDICATION`, and the socket-address and control-message
//! types they carry.
//!
//! Sources (facts only, own code):
//! * Wine 8.0 `include/ddk/wsk.h` (Debian `libwine-dev` 8.0~repack-4): `WSK_BUF`, `WSK_BUF_LIST`,
//!   `WSK_DATA_INDICATION`, `WSK_DATAGRAM_INDICATION`, `WSK_CLIENT_DISPATCH`, `WSK_CLIENT_NPI`,
//!   `WSK_PROVIDER_NPI`, `WSK_REGISTRATION`, `WSK_PROVIDER_DISPATCH`, `WSK_PROVIDER_BASIC_DISPATCH`,
//!   `WSK_PROVIDER_DATAGRAM_DISPATCH`, the `PFN_WSK_*` prototypes and `WSK_FLAG_*` socket types;
//!   checked against ours by `tests/wine_layout.rs`.
//! * The WDK `wsk.h` (as published; Wine lacks it): `WSK_CLIENT_DATAGRAM_DISPATCH`,
//!   `PFN_WSK_RECEIVE_FROM_EVENT`, `WSK_FLAG_AT_DISPATCH_LEVEL`/`RELEASE_ASAP`/`ENTIRE_MESSAGE`,
//!   `WSK_EVENT_*`, `SO_WSK_EVENT_CALLBACK` = `WSK_SO_BASE + 2` with `WSK_SO_BASE` = 0x4000
//!   (`ws2def.h`), `WSK_SET_STATIC_EVENT_CALLBACKS`, the IRQL notes of `WskRegister` & co.
//!   `NPI_WSK_INTERFACE_ID` = {2227E803-8D8B-11D4-ABAD-009027719E09}.
//! * `ws2def.h`/`ws2ipdef.h`: `SOCKADDR`, `SOCKADDR_IN`, `SOCKADDR_IN6`, `SOCKADDR_INET`,
//!   `WSACMSGHDR`, `IN_PKTINFO`, `IN6_PKTINFO`, `AF_INET` = 2, `AF_INET6` = 23 (Windows value),
//!   `UDP_SEND_MSG_SIZE` = 2, `UDP_RECV_MAX_COALESCED_SIZE` = 3.
//!
//! Dispatch-table functions run at IRQL <= DISPATCH_LEVEL unless noted (socket creation, bind, close
//! and control at PASSIVE_LEVEL is the safe rule); completion is through the IRP passed in.

use core::ffi::c_void;

use super::mdl::MDL;
use super::ntos::{IRP, KSPIN_LOCK, NTSTATUS, PEPROCESS, PETHREAD, UNICODE_STRING};
use super::oid::GUID;

// ---------------------------------------------------------------------------------------------
// Socket addresses and control messages
// ---------------------------------------------------------------------------------------------

/// `ADDRESS_FAMILY` (`USHORT`).
pub type ADDRESS_FAMILY = u16;
pub const AF_UNSPEC: ADDRESS_FAMILY = 0;
pub const AF_INET: ADDRESS_FAMILY = 2;
/// Windows' value (not Linux's 10).
pub const AF_INET6: ADDRESS_FAMILY = 23;
pub const SOCK_STREAM: u16 = 1;
pub const SOCK_DGRAM: u16 = 2;
pub const IPPROTO_IP: u32 = 0;
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;
pub const IPPROTO_IPV6: u32 = 41;
pub const SOL_SOCKET: u32 = 0xFFFF;
pub const SO_REUSEADDR: u32 = 0x0004;
/// `SO_EXCLUSIVEADDRUSE` = `~SO_REUSEADDR`.
pub const SO_EXCLUSIVEADDRUSE: u32 = !SO_REUSEADDR;
pub const SO_SNDBUF: u32 = 0x1001;
pub const SO_RCVBUF: u32 = 0x1002;
/// `IP_PKTINFO` (IPPROTO_IP level).
pub const IP_PKTINFO: u32 = 19;
/// `IPV6_PKTINFO` (IPPROTO_IPV6 level).
pub const IPV6_PKTINFO: u32 = 19;
pub const IPV6_V6ONLY: u32 = 27;
/// `UDP_SEND_MSG_SIZE` (IPPROTO_UDP level): UDP segmentation offload segment size.
pub const UDP_SEND_MSG_SIZE: u32 = 2;
/// `UDP_RECV_MAX_COALESCED_SIZE` (IPPROTO_UDP level): receive coalescing.
pub const UDP_RECV_MAX_COALESCED_SIZE: u32 = 3;

/// `SOCKADDR` (16 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SOCKADDR {
    pub sa_family: ADDRESS_FAMILY,
    pub sa_data: [u8; 14],
}
const _: () = assert!(core::mem::size_of::<SOCKADDR>() == 16);

/// `IN_ADDR` (network byte order).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IN_ADDR {
    pub s_addr: [u8; 4],
}

/// `IN6_ADDR` (network byte order).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IN6_ADDR {
    pub s6_addr: [u8; 16],
}

/// `SOCKADDR_IN` (16 bytes). `sin_port` in network byte order.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SOCKADDR_IN {
    pub sin_family: ADDRESS_FAMILY,
    pub sin_port: u16,
    pub sin_addr: IN_ADDR,
    pub sin_zero: [u8; 8],
}
const _: () = assert!(core::mem::size_of::<SOCKADDR_IN>() == 16);
const _: () = assert!(core::mem::offset_of!(SOCKADDR_IN, sin_port) == 2);
const _: () = assert!(core::mem::offset_of!(SOCKADDR_IN, sin_addr) == 4);
const _: () = assert!(core::mem::offset_of!(SOCKADDR_IN, sin_zero) == 8);

/// `SOCKADDR_IN6` (28 bytes; `sin6_scope_id` is a union with `SCOPE_ID`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SOCKADDR_IN6 {
    pub sin6_family: ADDRESS_FAMILY,
    pub sin6_port: u16,
    pub sin6_flowinfo: u32,
    pub sin6_addr: IN6_ADDR,
    pub sin6_scope_id: u32,
}
const _: () = assert!(core::mem::size_of::<SOCKADDR_IN6>() == 28);
const _: () = assert!(core::mem::offset_of!(SOCKADDR_IN6, sin6_port) == 2);
const _: () = assert!(core::mem::offset_of!(SOCKADDR_IN6, sin6_flowinfo) == 4);
const _: () = assert!(core::mem::offset_of!(SOCKADDR_IN6, sin6_addr) == 8);
const _: () = assert!(core::mem::offset_of!(SOCKADDR_IN6, sin6_scope_id) == 24);

/// `SOCKADDR_INET` (28 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub union SOCKADDR_INET {
    pub Ipv4: SOCKADDR_IN,
    pub Ipv6: SOCKADDR_IN6,
    pub si_family: ADDRESS_FAMILY,
}
const _: () = assert!(core::mem::size_of::<SOCKADDR_INET>() == 28);

impl core::fmt::Debug for SOCKADDR_INET {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // SAFETY: `si_family` overlays the first field of both members, so it is always initialized
        // when either member was written.
        let family = unsafe { self.si_family };
        f.debug_struct("SOCKADDR_INET").field("si_family", &family).finish_non_exhaustive()
    }
}

/// `SOCKADDR_STORAGE` (128 bytes, 8-byte aligned).
#[repr(C, align(8))]
#[derive(Debug, Clone, Copy)]
pub struct SOCKADDR_STORAGE {
    pub ss_family: ADDRESS_FAMILY,
    pub ss_pad: [u8; 126],
}
const _: () = assert!(core::mem::size_of::<SOCKADDR_STORAGE>() == 128);

/// `WSACMSGHDR` / `CMSGHDR` (16 bytes); data starts at `WSA_CMSGDATA_ALIGN(sizeof(CMSGHDR))` = 16.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CMSGHDR {
    pub cmsg_len: usize,
    pub cmsg_level: i32,
    pub cmsg_type: i32,
}
const _: () = assert!(core::mem::size_of::<CMSGHDR>() == 16);
const _: () = assert!(core::mem::offset_of!(CMSGHDR, cmsg_level) == 8);
const _: () = assert!(core::mem::offset_of!(CMSGHDR, cmsg_type) == 12);

/// `WSA_CMSG_ALIGN(len)` / `WSA_CMSGDATA_ALIGN(len)`: round up to `sizeof(SIZE_T)` (x64: 8).
#[inline]
pub const fn WSA_CMSG_ALIGN(len: usize) -> usize {
    (len + core::mem::size_of::<usize>() - 1) & !(core::mem::size_of::<usize>() - 1)
}
/// `WSA_CMSG_LEN(len)`: header (aligned) plus `len` data bytes.
#[inline]
pub const fn WSA_CMSG_LEN(len: usize) -> usize {
    WSA_CMSG_ALIGN(core::mem::size_of::<CMSGHDR>()) + len
}
/// `WSA_CMSG_SPACE(len)`: aligned header plus aligned data.
#[inline]
pub const fn WSA_CMSG_SPACE(len: usize) -> usize {
    WSA_CMSG_ALIGN(core::mem::size_of::<CMSGHDR>() + WSA_CMSG_ALIGN(len))
}

/// `IN_PKTINFO` (8 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IN_PKTINFO {
    pub ipi_addr: IN_ADDR,
    pub ipi_ifindex: u32,
}
const _: () = assert!(core::mem::size_of::<IN_PKTINFO>() == 8);

/// `IN6_PKTINFO` (20 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IN6_PKTINFO {
    pub ipi6_addr: IN6_ADDR,
    pub ipi6_ifindex: u32,
}
const _: () = assert!(core::mem::size_of::<IN6_PKTINFO>() == 20);

// ---------------------------------------------------------------------------------------------
// WSK basic types
// ---------------------------------------------------------------------------------------------

/// `MAKE_WSK_VERSION(Mj, Mn)`.
#[inline]
pub const fn MAKE_WSK_VERSION(major: u8, minor: u8) -> u16 {
    ((major as u16) << 8) | minor as u16
}
/// WSK 1.0, the version clients request.
pub const WSK_VERSION_1_0: u16 = MAKE_WSK_VERSION(1, 0);

pub const WSK_NO_WAIT: u32 = 0;
pub const WSK_INFINITE_WAIT: u32 = 0xFFFF_FFFF;

// Socket type flags (WskSocket `Flags`).
pub const WSK_FLAG_BASIC_SOCKET: u32 = 0x0000_0000;
pub const WSK_FLAG_LISTEN_SOCKET: u32 = 0x0000_0001;
pub const WSK_FLAG_CONNECTION_SOCKET: u32 = 0x0000_0002;
pub const WSK_FLAG_DATAGRAM_SOCKET: u32 = 0x0000_0004;
pub const WSK_FLAG_STREAM_SOCKET: u32 = 0x0000_0008;
// Event callback flags.
/// The event callback runs at DISPATCH_LEVEL.
pub const WSK_FLAG_AT_DISPATCH_LEVEL: u32 = 0x0000_0008;
/// The indicated buffers should be released as soon as possible if retained.
pub const WSK_FLAG_RELEASE_ASAP: u32 = 0x0000_0002;
pub const WSK_FLAG_ENTIRE_MESSAGE: u32 = 0x0000_0004;
pub const WSK_FLAG_ABORTIVE: u32 = 0x0000_0001;
pub const WSK_FLAG_NODELAY: u32 = 0x0000_0002;

// Client-level control codes.
pub const WSK_TRANSPORT_LIST_QUERY: u32 = 2;
pub const WSK_TRANSPORT_LIST_CHANGE: u32 = 3;
pub const WSK_CACHE_SD: u32 = 4;
pub const WSK_RELEASE_SD: u32 = 5;
pub const WSK_TDI_DEVICENAME_MAPPING: u32 = 6;
pub const WSK_SET_STATIC_EVENT_CALLBACKS: u32 = 7;
pub const WSK_TDI_BEHAVIOR: u32 = 8;

/// `WSK_SO_BASE`.
pub const WSK_SO_BASE: u32 = 0x4000;
pub const SO_WSK_SECURITY: u32 = WSK_SO_BASE + 1;
/// Enable/disable event callbacks on a socket (`WskControlSocket(WskSetOption, SO_WSK_EVENT_CALLBACK,
/// SOL_SOCKET, sizeof(WSK_EVENT_CALLBACK_CONTROL), ...)`).
pub const SO_WSK_EVENT_CALLBACK: u32 = WSK_SO_BASE + 2;
pub const WSK_EVENT_RECEIVE_FROM: u32 = 0x0000_0100;
pub const WSK_EVENT_ACCEPT: u32 = 0x0000_0200;
pub const WSK_EVENT_SEND_BACKLOG: u32 = 0x0000_0010;
pub const WSK_EVENT_RECEIVE: u32 = 0x0000_0040;
pub const WSK_EVENT_DISCONNECT: u32 = 0x0000_0080;
pub const WSK_EVENT_DISABLE: u32 = 0x8000_0000;

/// `NPIID` (a GUID).
pub type NPIID = GUID;
/// `NPI_WSK_INTERFACE_ID` (exported as data by netio.sys; defined here so no data import is needed).
pub const NPI_WSK_INTERFACE_ID: NPIID = GUID {
    Data1: 0x2227_E803,
    Data2: 0x8D8B,
    Data3: 0x11D4,
    Data4: [0xAB, 0xAD, 0x00, 0x90, 0x27, 0x71, 0x9E, 0x09],
};

/// `WSK_EVENT_CALLBACK_CONTROL` (16 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_EVENT_CALLBACK_CONTROL {
    pub NpiId: *const NPIID,
    pub EventMask: u32,
}
const _: () = assert!(core::mem::size_of::<WSK_EVENT_CALLBACK_CONTROL>() == 16);
const _: () = assert!(core::mem::offset_of!(WSK_EVENT_CALLBACK_CONTROL, EventMask) == 8);

/// `WSK_CONTROL_SOCKET_TYPE`.
pub type WSK_CONTROL_SOCKET_TYPE = i32;
pub const WskSetOption: WSK_CONTROL_SOCKET_TYPE = 0;
pub const WskGetOption: WSK_CONTROL_SOCKET_TYPE = 1;
pub const WskIoctl: WSK_CONTROL_SOCKET_TYPE = 2;

/// `WSK_SOCKET`: `{ const VOID *Dispatch; }`; `Dispatch` points to the provider table for the
/// socket's type (`WSK_PROVIDER_DATAGRAM_DISPATCH` for datagram sockets).
#[repr(C)]
#[derive(Debug)]
pub struct WSK_SOCKET {
    pub Dispatch: *const c_void,
}
const _: () = assert!(core::mem::size_of::<WSK_SOCKET>() == 8);

/// `PWSK_CLIENT`: opaque (`PVOID`).
pub type PWSK_CLIENT = *mut c_void;

/// `WSK_BUF` (24 bytes). `Offset` must lie in the first MDL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_BUF {
    pub Mdl: *mut MDL,
    pub Offset: u32,
    pub Length: usize,
}
const _: () = assert!(core::mem::size_of::<WSK_BUF>() == 24);
const _: () = assert!(core::mem::offset_of!(WSK_BUF, Offset) == 8);
const _: () = assert!(core::mem::offset_of!(WSK_BUF, Length) == 16);

/// `WSK_BUF_LIST` (32 bytes), the element of a `WskSendMessages` batch.
#[repr(C)]
#[derive(Debug)]
pub struct WSK_BUF_LIST {
    pub Next: *mut WSK_BUF_LIST,
    pub Buffer: WSK_BUF,
}
const _: () = assert!(core::mem::size_of::<WSK_BUF_LIST>() == 32);
const _: () = assert!(core::mem::offset_of!(WSK_BUF_LIST, Buffer) == 8);

/// `WSK_DATA_INDICATION` (32 bytes; stream sockets).
#[repr(C)]
#[derive(Debug)]
pub struct WSK_DATA_INDICATION {
    pub Next: *mut WSK_DATA_INDICATION,
    pub Buffer: WSK_BUF,
}
const _: () = assert!(core::mem::size_of::<WSK_DATA_INDICATION>() == 32);

/// `WSK_DATAGRAM_INDICATION` (56 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct WSK_DATAGRAM_INDICATION {
    pub Next: *mut WSK_DATAGRAM_INDICATION,
    pub Buffer: WSK_BUF,
    pub ControlInfo: *mut CMSGHDR,
    pub ControlInfoLength: u32,
    pub RemoteAddress: *mut SOCKADDR,
}
const _: () = assert!(core::mem::size_of::<WSK_DATAGRAM_INDICATION>() == 56);
const _: () = assert!(core::mem::offset_of!(WSK_DATAGRAM_INDICATION, Buffer) == 8);
const _: () = assert!(core::mem::offset_of!(WSK_DATAGRAM_INDICATION, ControlInfo) == 32);
const _: () = assert!(core::mem::offset_of!(WSK_DATAGRAM_INDICATION, ControlInfoLength) == 40);
const _: () = assert!(core::mem::offset_of!(WSK_DATAGRAM_INDICATION, RemoteAddress) == 48);

// ---------------------------------------------------------------------------------------------
// Client callbacks
// ---------------------------------------------------------------------------------------------

/// `PFN_WSK_CLIENT_EVENT`. Arbitrary thread context.
pub type PFN_WSK_CLIENT_EVENT = Option<
    unsafe extern "system" fn(
        client_context: *mut c_void,
        event_type: u32,
        information: *mut c_void,
        length: usize,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_RECEIVE_FROM_EVENT`. IRQL <= DISPATCH_LEVEL (`WSK_FLAG_AT_DISPATCH_LEVEL` says which).
/// Return `STATUS_SUCCESS` (consumed), `STATUS_PENDING` (retained until `WskRelease`), or
/// `STATUS_DATA_NOT_ACCEPTED`. A null `indication` means the socket must be closed.
pub type PFN_WSK_RECEIVE_FROM_EVENT = Option<
    unsafe extern "system" fn(
        socket_context: *mut c_void,
        flags: u32,
        indication: *mut WSK_DATAGRAM_INDICATION,
    ) -> NTSTATUS,
>;

/// `WSK_CLIENT_DISPATCH` (16 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct WSK_CLIENT_DISPATCH {
    pub Version: u16,
    pub Reserved: u16,
    pub WskClientEvent: PFN_WSK_CLIENT_EVENT,
}
const _: () = assert!(core::mem::size_of::<WSK_CLIENT_DISPATCH>() == 16);
const _: () = assert!(core::mem::offset_of!(WSK_CLIENT_DISPATCH, WskClientEvent) == 8);

/// `WSK_CLIENT_DATAGRAM_DISPATCH` (8 bytes): the `Dispatch` argument of `WskSocket` for datagram
/// sockets.
#[repr(C)]
#[derive(Debug)]
pub struct WSK_CLIENT_DATAGRAM_DISPATCH {
    pub WskReceiveFromEvent: PFN_WSK_RECEIVE_FROM_EVENT,
}
const _: () = assert!(core::mem::size_of::<WSK_CLIENT_DATAGRAM_DISPATCH>() == 8);

/// `WSK_CLIENT_NPI` (16 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct WSK_CLIENT_NPI {
    pub ClientContext: *mut c_void,
    pub Dispatch: *const WSK_CLIENT_DISPATCH,
}
const _: () = assert!(core::mem::size_of::<WSK_CLIENT_NPI>() == 16);
const _: () = assert!(core::mem::offset_of!(WSK_CLIENT_NPI, Dispatch) == 8);

/// `WSK_REGISTRATION` (24 bytes): opaque to the client; must stay allocated until `WskDeregister`
/// returned.
#[repr(C)]
#[derive(Debug)]
pub struct WSK_REGISTRATION {
    pub ReservedRegistrationState: u64,
    pub ReservedRegistrationContext: *mut c_void,
    pub ReservedRegistrationLock: KSPIN_LOCK,
}
const _: () = assert!(core::mem::size_of::<WSK_REGISTRATION>() == 24);
const _: () = assert!(core::mem::offset_of!(WSK_REGISTRATION, ReservedRegistrationContext) == 8);
const _: () = assert!(core::mem::offset_of!(WSK_REGISTRATION, ReservedRegistrationLock) == 16);

// ---------------------------------------------------------------------------------------------
// Provider dispatch
// ---------------------------------------------------------------------------------------------

/// `PFN_WSK_SOCKET`. PASSIVE_LEVEL recommended (<= DISPATCH_LEVEL allowed). On success
/// `Irp->IoStatus.Information` holds the new `PWSK_SOCKET`.
pub type PFN_WSK_SOCKET = Option<
    unsafe extern "system" fn(
        client: PWSK_CLIENT,
        address_family: ADDRESS_FAMILY,
        socket_type: u16,
        protocol: u32,
        flags: u32,
        socket_context: *mut c_void,
        dispatch: *const c_void,
        owning_process: PEPROCESS,
        owning_thread: PETHREAD,
        security_descriptor: *mut c_void,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_SOCKET_CONNECT`.
pub type PFN_WSK_SOCKET_CONNECT = Option<
    unsafe extern "system" fn(
        client: PWSK_CLIENT,
        socket_type: u16,
        protocol: u32,
        local_address: *mut SOCKADDR,
        remote_address: *mut SOCKADDR,
        flags: u32,
        socket_context: *mut c_void,
        dispatch: *const c_void,
        owning_process: PEPROCESS,
        owning_thread: PETHREAD,
        security_descriptor: *mut c_void,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_CONTROL_CLIENT`.
pub type PFN_WSK_CONTROL_CLIENT = Option<
    unsafe extern "system" fn(
        client: PWSK_CLIENT,
        control_code: u32,
        input_size: usize,
        input_buffer: *mut c_void,
        output_size: usize,
        output_buffer: *mut c_void,
        output_size_returned: *mut usize,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_GET_ADDRESS_INFO` (`ADDRINFOEXW` left opaque). PASSIVE_LEVEL.
pub type PFN_WSK_GET_ADDRESS_INFO = Option<
    unsafe extern "system" fn(
        client: PWSK_CLIENT,
        node_name: *mut UNICODE_STRING,
        service_name: *mut UNICODE_STRING,
        name_space: u32,
        provider: *mut GUID,
        hints: *mut c_void,
        result: *mut *mut c_void,
        owning_process: PEPROCESS,
        owning_thread: PETHREAD,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_FREE_ADDRESS_INFO`.
pub type PFN_WSK_FREE_ADDRESS_INFO =
    Option<unsafe extern "system" fn(client: PWSK_CLIENT, addr_info: *mut c_void)>;
/// `PFN_WSK_GET_NAME_INFO`.
pub type PFN_WSK_GET_NAME_INFO = Option<
    unsafe extern "system" fn(
        client: PWSK_CLIENT,
        sock_addr: *mut SOCKADDR,
        sock_addr_length: u32,
        node_name: *mut UNICODE_STRING,
        service_name: *mut UNICODE_STRING,
        flags: u32,
        owning_process: PEPROCESS,
        owning_thread: PETHREAD,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;

/// `WSK_PROVIDER_DISPATCH` (56 bytes), returned in `WSK_PROVIDER_NPI.Dispatch`.
#[repr(C)]
#[derive(Debug)]
pub struct WSK_PROVIDER_DISPATCH {
    pub Version: u16,
    pub Reserved: u16,
    pub WskSocket: PFN_WSK_SOCKET,
    pub WskSocketConnect: PFN_WSK_SOCKET_CONNECT,
    pub WskControlClient: PFN_WSK_CONTROL_CLIENT,
    pub WskGetAddressInfo: PFN_WSK_GET_ADDRESS_INFO,
    pub WskFreeAddressInfo: PFN_WSK_FREE_ADDRESS_INFO,
    pub WskGetNameInfo: PFN_WSK_GET_NAME_INFO,
}
const _: () = assert!(core::mem::size_of::<WSK_PROVIDER_DISPATCH>() == 56);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DISPATCH, WskSocket) == 8);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DISPATCH, WskSocketConnect) == 16);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DISPATCH, WskControlClient) == 24);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DISPATCH, WskGetAddressInfo) == 32);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DISPATCH, WskFreeAddressInfo) == 40);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DISPATCH, WskGetNameInfo) == 48);

/// `WSK_PROVIDER_NPI` (16 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct WSK_PROVIDER_NPI {
    pub Client: PWSK_CLIENT,
    pub Dispatch: *const WSK_PROVIDER_DISPATCH,
}
const _: () = assert!(core::mem::size_of::<WSK_PROVIDER_NPI>() == 16);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_NPI, Dispatch) == 8);

/// `PFN_WSK_CONTROL_SOCKET`. PASSIVE_LEVEL for most options (event-callback enabling included).
pub type PFN_WSK_CONTROL_SOCKET = Option<
    unsafe extern "system" fn(
        socket: *mut WSK_SOCKET,
        request_type: WSK_CONTROL_SOCKET_TYPE,
        control_code: u32,
        level: u32,
        input_size: usize,
        input_buffer: *mut c_void,
        output_size: usize,
        output_buffer: *mut c_void,
        output_size_returned: *mut usize,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_CLOSE_SOCKET`. IRQL <= DISPATCH_LEVEL; the IRP is required.
pub type PFN_WSK_CLOSE_SOCKET =
    Option<unsafe extern "system" fn(socket: *mut WSK_SOCKET, irp: *mut IRP) -> NTSTATUS>;
/// `PFN_WSK_BIND`. `flags` reserved (0).
pub type PFN_WSK_BIND = Option<
    unsafe extern "system" fn(
        socket: *mut WSK_SOCKET,
        local_address: *mut SOCKADDR,
        flags: u32,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_SEND_TO`. IRQL <= DISPATCH_LEVEL. The MDLs stay owned by the caller until completion.
pub type PFN_WSK_SEND_TO = Option<
    unsafe extern "system" fn(
        socket: *mut WSK_SOCKET,
        buffer: *mut WSK_BUF,
        flags: u32,
        remote_address: *mut SOCKADDR,
        control_info_length: u32,
        control_info: *mut CMSGHDR,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_RECEIVE_FROM`. IRQL <= DISPATCH_LEVEL.
pub type PFN_WSK_RECEIVE_FROM = Option<
    unsafe extern "system" fn(
        socket: *mut WSK_SOCKET,
        buffer: *mut WSK_BUF,
        flags: u32,
        remote_address: *mut SOCKADDR,
        control_length: *mut u32,
        control_info: *mut CMSGHDR,
        control_flags: *mut u32,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST` (`WskRelease`). IRQL <= DISPATCH_LEVEL. Returns
/// datagram indications retained by returning `STATUS_PENDING` from `WskReceiveFromEvent`.
pub type PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST = Option<
    unsafe extern "system" fn(socket: *mut WSK_SOCKET, indication: *mut WSK_DATAGRAM_INDICATION) -> NTSTATUS,
>;
/// `PFN_WSK_GET_LOCAL_ADDRESS`.
pub type PFN_WSK_GET_LOCAL_ADDRESS = Option<
    unsafe extern "system" fn(
        socket: *mut WSK_SOCKET,
        local_address: *mut SOCKADDR,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_SEND_MESSAGES` (table member since the Windows 8 `wsk.h`). IRQL <= DISPATCH_LEVEL. Sends every
/// element of `buffer_list` as its own datagram to `remote_address`.
pub type PFN_WSK_SEND_MESSAGES = Option<
    unsafe extern "system" fn(
        socket: *mut WSK_SOCKET,
        buffer_list: *mut WSK_BUF_LIST,
        flags: u32,
        remote_address: *mut SOCKADDR,
        control_info_length: u32,
        control_info: *mut CMSGHDR,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;

/// `WSK_PROVIDER_BASIC_DISPATCH` (16 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct WSK_PROVIDER_BASIC_DISPATCH {
    pub WskControlSocket: PFN_WSK_CONTROL_SOCKET,
    pub WskCloseSocket: PFN_WSK_CLOSE_SOCKET,
}
const _: () = assert!(core::mem::size_of::<WSK_PROVIDER_BASIC_DISPATCH>() == 16);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_BASIC_DISPATCH, WskCloseSocket) == 8);

/// `WSK_PROVIDER_DATAGRAM_DISPATCH` (64 bytes): `WSK_SOCKET.Dispatch` of a datagram socket.
#[repr(C)]
#[derive(Debug)]
pub struct WSK_PROVIDER_DATAGRAM_DISPATCH {
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    pub WskBind: PFN_WSK_BIND,
    pub WskSendTo: PFN_WSK_SEND_TO,
    pub WskReceiveFrom: PFN_WSK_RECEIVE_FROM,
    pub WskRelease: PFN_WSK_RELEASE_DATAGRAM_INDICATION_LIST,
    pub WskGetLocalAddress: PFN_WSK_GET_LOCAL_ADDRESS,
    pub WskSendMessages: PFN_WSK_SEND_MESSAGES,
}
const _: () = assert!(core::mem::size_of::<WSK_PROVIDER_DATAGRAM_DISPATCH>() == 64);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskBind) == 16);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskSendTo) == 24);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskReceiveFrom) == 32);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskRelease) == 40);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskGetLocalAddress) == 48);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskSendMessages) == 56);

/// `WSK_PROVIDER_CHARACTERISTICS`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WSK_PROVIDER_CHARACTERISTICS {
    pub HighestVersion: u16,
    pub LowestVersion: u16,
}
const _: () = assert!(core::mem::size_of::<WSK_PROVIDER_CHARACTERISTICS>() == 4);

// ---------------------------------------------------------------------------------------------
// netio.sys imports
// ---------------------------------------------------------------------------------------------

#[cfg_attr(target_os = "windows", link(name = "netio.sys", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// `WskRegister`. PASSIVE_LEVEL. `registration` must stay allocated until `WskDeregister`.
    pub fn WskRegister(client_npi: *mut WSK_CLIENT_NPI, registration: *mut WSK_REGISTRATION) -> NTSTATUS;
    /// `WskDeregister`. PASSIVE_LEVEL. Waits for every captured NPI to be released, every provider
    /// call to return and every socket to be closed.
    pub fn WskDeregister(registration: *mut WSK_REGISTRATION);
    /// `WskCaptureProviderNPI`. PASSIVE_LEVEL if `wait_timeout != WSK_NO_WAIT`, else
    /// <= DISPATCH_LEVEL. `STATUS_DEVICE_NOT_READY` if the provider is not (yet) there.
    pub fn WskCaptureProviderNPI(
        registration: *mut WSK_REGISTRATION,
        wait_timeout: u32,
        provider_npi: *mut WSK_PROVIDER_NPI,
    ) -> NTSTATUS;
    /// `WskReleaseProviderNPI`. IRQL <= DISPATCH_LEVEL. Once per successful capture.
    pub fn WskReleaseProviderNPI(registration: *mut WSK_REGISTRATION);
    /// `WskQueryProviderCharacteristics`. IRQL <= DISPATCH_LEVEL.
    pub fn WskQueryProviderCharacteristics(
        registration: *mut WSK_REGISTRATION,
        characteristics: *mut WSK_PROVIDER_CHARACTERISTICS,
    ) -> NTSTATUS;
}

// ---------------------------------------------------------------------------------------------
// Connection-oriented sockets (TCP)
// ---------------------------------------------------------------------------------------------
//
// From the WDK `wsk.h` as published (windows-driver-docs `ns-wsk-_wsk_client_connection_dispatch`,
// `ns-wsk-_wsk_provider_connection_dispatch`, `nc-wsk-pfn_wsk_receive_event`,
// `nc-wsk-pfn_wsk_disconnect_event`, `nc-wsk-pfn_wsk_connect`, `nc-wsk-pfn_wsk_send`,
// `nc-wsk-pfn_wsk_disconnect`, `nc-wsk-pfn_wsk_release_data_indication_list`); the same order is what
// ovpn-dco-win's `socket.cpp` initialises (`{ receive, disconnect, NULL }`). Wine 8.0's `ddk/wsk.h`
// has both tables too; `tests/wine_layout.rs` checks the client table's size and both tables' offsets.

/// `PFN_WSK_RECEIVE_EVENT`. IRQL <= DISPATCH_LEVEL. `data_indication` null means the socket is no
/// longer functional; return `STATUS_SUCCESS` (consumed, `*bytes_accepted` = what was taken, all by
/// default), `STATUS_PENDING` (retained until `WskRelease`) or `STATUS_DATA_NOT_ACCEPTED`.
pub type PFN_WSK_RECEIVE_EVENT = Option<
    unsafe extern "system" fn(
        socket_context: *mut c_void,
        flags: u32,
        data_indication: *mut WSK_DATA_INDICATION,
        bytes_indicated: usize,
        bytes_accepted: *mut usize,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_DISCONNECT_EVENT`. IRQL <= DISPATCH_LEVEL. `flags` has `WSK_FLAG_ABORTIVE` for a reset.
pub type PFN_WSK_DISCONNECT_EVENT =
    Option<unsafe extern "system" fn(socket_context: *mut c_void, flags: u32) -> NTSTATUS>;
/// `PFN_WSK_SEND_BACKLOG_EVENT`. IRQL <= DISPATCH_LEVEL.
pub type PFN_WSK_SEND_BACKLOG_EVENT =
    Option<unsafe extern "system" fn(socket_context: *mut c_void, ideal_backlog_size: usize) -> NTSTATUS>;

/// `WSK_CLIENT_CONNECTION_DISPATCH` (24 bytes): the `Dispatch` argument of `WskSocket` for
/// connection-oriented sockets.
#[repr(C)]
#[derive(Debug)]
pub struct WSK_CLIENT_CONNECTION_DISPATCH {
    pub WskReceiveEvent: PFN_WSK_RECEIVE_EVENT,
    pub WskDisconnectEvent: PFN_WSK_DISCONNECT_EVENT,
    pub WskSendBacklogEvent: PFN_WSK_SEND_BACKLOG_EVENT,
}
const _: () = assert!(core::mem::size_of::<WSK_CLIENT_CONNECTION_DISPATCH>() == 24);
const _: () = assert!(core::mem::offset_of!(WSK_CLIENT_CONNECTION_DISPATCH, WskDisconnectEvent) == 8);
const _: () = assert!(core::mem::offset_of!(WSK_CLIENT_CONNECTION_DISPATCH, WskSendBacklogEvent) == 16);

/// `PFN_WSK_CONNECT`. PASSIVE_LEVEL..DISPATCH_LEVEL; the socket must be bound first. `flags` reserved.
pub type PFN_WSK_CONNECT = Option<
    unsafe extern "system" fn(
        socket: *mut WSK_SOCKET,
        remote_address: *mut SOCKADDR,
        flags: u32,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_GET_REMOTE_ADDRESS`.
pub type PFN_WSK_GET_REMOTE_ADDRESS = Option<
    unsafe extern "system" fn(
        socket: *mut WSK_SOCKET,
        remote_address: *mut SOCKADDR,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_SEND`. IRQL <= DISPATCH_LEVEL. Completes when every byte was sent (no buffering).
pub type PFN_WSK_SEND = Option<
    unsafe extern "system" fn(
        socket: *mut WSK_SOCKET,
        buffer: *mut WSK_BUF,
        flags: u32,
        irp: *mut IRP,
    ) -> NTSTATUS,
>;
/// `PFN_WSK_RECEIVE`. IRQL <= DISPATCH_LEVEL.
pub type PFN_WSK_RECEIVE = PFN_WSK_SEND;
/// `PFN_WSK_DISCONNECT`. IRQL <= DISPATCH_LEVEL. `buffer` (optional) is sent before a graceful
/// disconnect; `WSK_FLAG_ABORTIVE` resets.
pub type PFN_WSK_DISCONNECT = PFN_WSK_SEND;
/// `PFN_WSK_RELEASE_DATA_INDICATION_LIST` (`WskRelease` of a connection socket). IRQL <=
/// DISPATCH_LEVEL.
pub type PFN_WSK_RELEASE_DATA_INDICATION_LIST = Option<
    unsafe extern "system" fn(socket: *mut WSK_SOCKET, data_indication: *mut WSK_DATA_INDICATION) -> NTSTATUS,
>;

/// `WSK_PROVIDER_CONNECTION_DISPATCH` (80 bytes, the WSK 1.0 members; Windows 10 RS2 appends
/// `WskConnectEx`/`WskSendEx`/`WskReceiveEx`, which rdco neither calls nor assumes):
/// `WSK_SOCKET.Dispatch` of a connection-oriented socket.
#[repr(C)]
#[derive(Debug)]
pub struct WSK_PROVIDER_CONNECTION_DISPATCH {
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    pub WskBind: PFN_WSK_BIND,
    pub WskConnect: PFN_WSK_CONNECT,
    pub WskGetLocalAddress: PFN_WSK_GET_LOCAL_ADDRESS,
    pub WskGetRemoteAddress: PFN_WSK_GET_REMOTE_ADDRESS,
    pub WskSend: PFN_WSK_SEND,
    pub WskReceive: PFN_WSK_RECEIVE,
    pub WskDisconnect: PFN_WSK_DISCONNECT,
    pub WskRelease: PFN_WSK_RELEASE_DATA_INDICATION_LIST,
}
const _: () = assert!(core::mem::size_of::<WSK_PROVIDER_CONNECTION_DISPATCH>() == 80);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskBind) == 16);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskConnect) == 24);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskGetLocalAddress) == 32);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskGetRemoteAddress) == 40);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskSend) == 48);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskReceive) == 56);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskDisconnect) == 64);
const _: () = assert!(core::mem::offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskRelease) == 72);
