//! OID requests and status indications: `NDIS_OID_REQUEST` (with its `DATA` union),
//! `NDIS_STATUS_INDICATION`, `NdisAllocateCloneOidRequest`/`NdisFreeCloneOidRequest`, the OIDs the
//! drivers see or issue, and the offload structures the stack exchanges (`NDIS_OFFLOAD`,
//! `NDIS_OFFLOAD_ENCAPSULATION`, `NDIS_OFFLOAD_PARAMETERS`).
//!
//! Sources (facts only, own code): xdp-for-windows `published/wdkdeps` at commit
//! 20d5106ec82d09484774e471bf476c1d704327cc: `km/ndis/oidrequest.h`, `shared/ndis/oidtypes.h`,
//! `km/ndis.h` (`NDIS_STATUS_INDICATION`, `NdisAllocateCloneOidRequest`, `NdisFreeCloneOidRequest`),
//! `shared/ntddndis.h` (OID values, `NDIS_OFFLOAD`, `NDIS_TCP_IP_CHECKSUM_OFFLOAD`,
//! `NDIS_TCP_LARGE_SEND_OFFLOAD_V1/V2`, `NDIS_IPSEC_OFFLOAD_V1/V2`, `NDIS_TCP_CONNECTION_OFFLOAD`,
//! `NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD`, `NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD(_V2)`,
//! `NDIS_UDP_SEGMENTATION_OFFLOAD`, `NDIS_OFFLOAD_ENCAPSULATION`, `NDIS_OFFLOAD_PARAMETERS`).

use core::ffi::c_void;

use super::ndis::{NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_OID, NDIS_PORT_NUMBER, NDIS_STATUS};

// ---------------------------------------------------------------------------------------------
// NDIS_OID_REQUEST
// ---------------------------------------------------------------------------------------------

/// `NDIS_REQUEST_TYPE` (enum).
pub type NDIS_REQUEST_TYPE = i32;
pub const NdisRequestQueryInformation: NDIS_REQUEST_TYPE = 0;
pub const NdisRequestSetInformation: NDIS_REQUEST_TYPE = 1;
pub const NdisRequestQueryStatistics: NDIS_REQUEST_TYPE = 2;
pub const NdisRequestMethod: NDIS_REQUEST_TYPE = 12;

pub const NDIS_OID_REQUEST_REVISION_1: u8 = 1;
pub const NDIS_OID_REQUEST_REVISION_2: u8 = 2;
pub const NDIS_OID_REQUEST_TIMEOUT_INFINITE: u32 = 0;
pub const NDIS_OID_REQUEST_NDIS_RESERVED_SIZE: usize = 16;
pub const NDIS_OID_REQUEST_FLAGS_VPORT_ID_VALID: u32 = 0x0001;

/// `DATA.QUERY_INFORMATION`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_OID_REQUEST_QUERY {
    pub Oid: NDIS_OID,
    pub InformationBuffer: *mut c_void,
    pub InformationBufferLength: u32,
    pub BytesWritten: u32,
    pub BytesNeeded: u32,
}

/// `DATA.SET_INFORMATION`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_OID_REQUEST_SET {
    pub Oid: NDIS_OID,
    pub InformationBuffer: *mut c_void,
    pub InformationBufferLength: u32,
    pub BytesRead: u32,
    pub BytesNeeded: u32,
}

/// `DATA.METHOD_INFORMATION`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NDIS_OID_REQUEST_METHOD {
    pub Oid: NDIS_OID,
    pub InformationBuffer: *mut c_void,
    pub InputBufferLength: u32,
    pub OutputBufferLength: u32,
    pub MethodId: u32,
    pub BytesWritten: u32,
    pub BytesRead: u32,
    pub BytesNeeded: u32,
}

/// `NDIS_OID_REQUEST::DATA` (`union _REQUEST_DATA`, 40 bytes on x64).
#[repr(C)]
#[derive(Clone, Copy)]
pub union NDIS_OID_REQUEST_DATA {
    pub Oid: NDIS_OID,
    pub QUERY_INFORMATION: NDIS_OID_REQUEST_QUERY,
    pub SET_INFORMATION: NDIS_OID_REQUEST_SET,
    pub METHOD_INFORMATION: NDIS_OID_REQUEST_METHOD,
}
union_debug!(NDIS_OID_REQUEST_DATA);
const _: () = assert!(core::mem::size_of::<NDIS_OID_REQUEST_DATA>() == 40);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_QUERY, InformationBuffer) == 8);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_QUERY, InformationBufferLength) == 16);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_QUERY, BytesWritten) == 20);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_QUERY, BytesNeeded) == 24);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_SET, BytesRead) == 20);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_SET, BytesNeeded) == 24);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_METHOD, InputBufferLength) == 16);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_METHOD, OutputBufferLength) == 20);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_METHOD, MethodId) == 24);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_METHOD, BytesWritten) == 28);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_METHOD, BytesRead) == 32);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST_METHOD, BytesNeeded) == 36);

/// `NDIS_OID_REQUEST` (NDIS 6.50 revision 2 layout; x64: 248 bytes; revision 1 is the prefix
/// through `Reserved2`, 236 bytes).
#[repr(C)]
pub struct NDIS_OID_REQUEST {
    pub Header: NDIS_OBJECT_HEADER,
    pub RequestType: NDIS_REQUEST_TYPE,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub Timeout: u32,
    pub RequestId: *mut c_void,
    pub RequestHandle: NDIS_HANDLE,
    pub DATA: NDIS_OID_REQUEST_DATA,
    pub NdisReserved: [u8; NDIS_OID_REQUEST_NDIS_RESERVED_SIZE * core::mem::size_of::<usize>()],
    pub MiniportReserved: [u8; 2 * core::mem::size_of::<usize>()],
    /// Owned by whoever issued (or cloned) the request: a filter stores its context here.
    pub SourceReserved: [u8; 2 * core::mem::size_of::<usize>()],
    pub SupportedRevision: u8,
    pub Reserved1: u8,
    pub Reserved2: u16,
    pub SwitchId: u32,
    pub VPortId: u32,
    pub Flags: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_OID_REQUEST>() == 248);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, RequestType) == 4);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, PortNumber) == 8);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, Timeout) == 12);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, RequestId) == 16);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, RequestHandle) == 24);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, DATA) == 32);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, NdisReserved) == 72);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, MiniportReserved) == 200);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, SourceReserved) == 216);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, SupportedRevision) == 232);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, Reserved2) == 234);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, SwitchId) == 236);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, VPortId) == 240);
const _: () = assert!(core::mem::offset_of!(NDIS_OID_REQUEST, Flags) == 244);
/// `NDIS_SIZEOF_OID_REQUEST_REVISION_1`.
pub const NDIS_SIZEOF_OID_REQUEST_REVISION_1: usize = 236;
/// `NDIS_SIZEOF_OID_REQUEST_REVISION_2`.
pub const NDIS_SIZEOF_OID_REQUEST_REVISION_2: usize = 248;

impl core::fmt::Debug for NDIS_OID_REQUEST {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // SAFETY: `Oid` is the first ULONG of every member of the DATA union, so reading it is
        // valid whichever member is active.
        let oid = unsafe { self.DATA.Oid };
        f.debug_struct("NDIS_OID_REQUEST")
            .field("RequestType", &self.RequestType)
            .field("PortNumber", &self.PortNumber)
            .field("Oid", &format_args!("{oid:#010x}"))
            .field("RequestId", &self.RequestId)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// NDIS_STATUS_INDICATION
// ---------------------------------------------------------------------------------------------

pub const NDIS_STATUS_INDICATION_REVISION_1: u8 = 1;

/// `GUID`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GUID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}
const _: () = assert!(core::mem::size_of::<GUID>() == 16);

/// `NDIS_STATUS_INDICATION` (x64: 112 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_STATUS_INDICATION {
    pub Header: NDIS_OBJECT_HEADER,
    pub SourceHandle: NDIS_HANDLE,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub StatusCode: NDIS_STATUS,
    pub Flags: u32,
    pub DestinationHandle: NDIS_HANDLE,
    pub RequestId: *mut c_void,
    pub StatusBuffer: *mut c_void,
    pub StatusBufferSize: u32,
    pub Guid: GUID,
    pub NdisReserved: [*mut c_void; 4],
}
const _: () = assert!(core::mem::size_of::<NDIS_STATUS_INDICATION>() == 112);
const _: () = assert!(core::mem::offset_of!(NDIS_STATUS_INDICATION, SourceHandle) == 8);
const _: () = assert!(core::mem::offset_of!(NDIS_STATUS_INDICATION, PortNumber) == 16);
const _: () = assert!(core::mem::offset_of!(NDIS_STATUS_INDICATION, StatusCode) == 20);
const _: () = assert!(core::mem::offset_of!(NDIS_STATUS_INDICATION, Flags) == 24);
const _: () = assert!(core::mem::offset_of!(NDIS_STATUS_INDICATION, DestinationHandle) == 32);
const _: () = assert!(core::mem::offset_of!(NDIS_STATUS_INDICATION, RequestId) == 40);
const _: () = assert!(core::mem::offset_of!(NDIS_STATUS_INDICATION, StatusBuffer) == 48);
const _: () = assert!(core::mem::offset_of!(NDIS_STATUS_INDICATION, StatusBufferSize) == 56);
const _: () = assert!(core::mem::offset_of!(NDIS_STATUS_INDICATION, Guid) == 60);
const _: () = assert!(core::mem::offset_of!(NDIS_STATUS_INDICATION, NdisReserved) == 80);

// ---------------------------------------------------------------------------------------------
// ndis.sys imports
// ---------------------------------------------------------------------------------------------

#[cfg_attr(target_os = "windows", link(name = "ndis.sys", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// `NdisAllocateCloneOidRequest`. IRQL <= DISPATCH_LEVEL. Copies the request (not its
    /// information buffer) into a new one allocated with `pool_tag`; the clone is what a filter
    /// forwards with `NdisFOidRequest`.
    pub fn NdisAllocateCloneOidRequest(
        source_handle: NDIS_HANDLE,
        oid_request: *mut NDIS_OID_REQUEST,
        pool_tag: u32,
        cloned_oid_request: *mut *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS;
    /// `NdisFreeCloneOidRequest`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisFreeCloneOidRequest(source_handle: NDIS_HANDLE, request: *mut NDIS_OID_REQUEST);
}

/// `NDIS_OFFLOAD` (placeholder until the full layout lands).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_OFFLOAD {
    pub Header: NDIS_OBJECT_HEADER,
}
