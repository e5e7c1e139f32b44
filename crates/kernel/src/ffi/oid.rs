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

// ---------------------------------------------------------------------------------------------
// OIDs (shared/ntddndis.h)
// ---------------------------------------------------------------------------------------------

pub const OID_GEN_MAXIMUM_FRAME_SIZE: NDIS_OID = 0x0001_0106;
pub const OID_GEN_LINK_SPEED: NDIS_OID = 0x0001_0107;
pub const OID_GEN_VENDOR_DESCRIPTION: NDIS_OID = 0x0001_010D;
pub const OID_GEN_CURRENT_PACKET_FILTER: NDIS_OID = 0x0001_010E;
pub const OID_GEN_MAXIMUM_TOTAL_SIZE: NDIS_OID = 0x0001_0111;
pub const OID_GEN_MEDIA_CONNECT_STATUS: NDIS_OID = 0x0001_0114;
pub const OID_GEN_RECEIVE_SCALE_PARAMETERS: NDIS_OID = 0x0001_0204;
pub const OID_GEN_LINK_STATE: NDIS_OID = 0x0001_0207;
pub const OID_GEN_STATISTICS: NDIS_OID = 0x0002_0106;
pub const OID_802_3_CURRENT_ADDRESS: NDIS_OID = 0x0101_0102;
pub const OID_PNP_SET_POWER: NDIS_OID = 0xFD01_0101;
/// Legacy task offload (NDIS 5); NDIS 6 stacks use the OIDs below.
pub const OID_TCP_TASK_OFFLOAD: NDIS_OID = 0xFC01_0201;
/// Query only, answered by NDIS from the miniport's current `NDIS_OFFLOAD`.
pub const OID_TCP_OFFLOAD_CURRENT_CONFIG: NDIS_OID = 0xFC01_020B;
/// Set only: `NDIS_OFFLOAD_PARAMETERS`.
pub const OID_TCP_OFFLOAD_PARAMETERS: NDIS_OID = 0xFC01_020C;
/// Query only: the hardware `NDIS_OFFLOAD` capabilities.
pub const OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES: NDIS_OID = 0xFC01_020D;
/// Set: `NDIS_OFFLOAD_ENCAPSULATION` (the protocol tells the miniport its framing).
pub const OID_OFFLOAD_ENCAPSULATION: NDIS_OID = 0x0101_010A;

// ---------------------------------------------------------------------------------------------
// Offload structures (shared/ntddndis.h, shared/ndis/offloadtypes.h, km/ndis/encapsulationconfig.h).
// Bit fields are kept as the raw ULONG (MSVC allocates them from the least significant bit); the
// accessors below name the 2-bit fields that matter.
// ---------------------------------------------------------------------------------------------

pub const NDIS_OFFLOAD_NOT_SUPPORTED: u32 = 0;
pub const NDIS_OFFLOAD_SUPPORTED: u32 = 1;
pub const NDIS_OFFLOAD_SET_NO_CHANGE: u32 = 0;
pub const NDIS_OFFLOAD_SET_ON: u32 = 1;
pub const NDIS_OFFLOAD_SET_OFF: u32 = 2;
pub const NDIS_ENCAPSULATION_NOT_SUPPORTED: u32 = 0x0000_0000;
pub const NDIS_ENCAPSULATION_NULL: u32 = 0x0000_0001;
pub const NDIS_ENCAPSULATION_IEEE_802_3: u32 = 0x0000_0002;
pub const NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q: u32 = 0x0000_0004;
pub const NDIS_ENCAPSULATION_IEEE_802_3_P_AND_Q_IN_OOB: u32 = 0x0000_0008;
pub const NDIS_ENCAPSULATION_IEEE_LLC_SNAP_ROUTED: u32 = 0x0000_0010;

/// One direction/family of `NDIS_TCP_IP_CHECKSUM_OFFLOAD`: `Encapsulation` plus a bit-field
/// ULONG (IPv4: `IpOptionsSupported:2, TcpOptionsSupported:2, TcpChecksum:2, UdpChecksum:2,
/// IpChecksum:2`; IPv6: `IpExtensionHeadersSupported:2, TcpOptionsSupported:2, TcpChecksum:2,
/// UdpChecksum:2`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_CHECKSUM_OFFLOAD_DIRECTION {
    pub Encapsulation: u32,
    pub Bits: u32,
}

impl NDIS_CHECKSUM_OFFLOAD_DIRECTION {
    /// The 2-bit field at `index` (0 = IP options / IPv6 extension headers, 1 = TCP options,
    /// 2 = TCP checksum, 3 = UDP checksum, 4 = IP checksum (IPv4 only)).
    pub const fn field(self, index: u32) -> u32 {
        (self.Bits >> (2 * index)) & 3
    }
    /// Sets the 2-bit field at `index`.
    #[must_use]
    pub const fn with_field(self, index: u32, value: u32) -> Self {
        let mask = 3 << (2 * index);
        Self { Encapsulation: self.Encapsulation, Bits: (self.Bits & !mask) | ((value & 3) << (2 * index)) }
    }
    pub const TCP_CHECKSUM: u32 = 2;
    pub const UDP_CHECKSUM: u32 = 3;
    pub const IP_CHECKSUM: u32 = 4;
}

/// `NDIS_TCP_IP_CHECKSUM_OFFLOAD` (32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_TCP_IP_CHECKSUM_OFFLOAD {
    pub IPv4Transmit: NDIS_CHECKSUM_OFFLOAD_DIRECTION,
    pub IPv4Receive: NDIS_CHECKSUM_OFFLOAD_DIRECTION,
    pub IPv6Transmit: NDIS_CHECKSUM_OFFLOAD_DIRECTION,
    pub IPv6Receive: NDIS_CHECKSUM_OFFLOAD_DIRECTION,
}
const _: () = assert!(core::mem::size_of::<NDIS_TCP_IP_CHECKSUM_OFFLOAD>() == 32);

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V1.IPv4` (`TcpOptions:2, IpOptions:2` in `Bits`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_TCP_LARGE_SEND_OFFLOAD_V1 {
    pub Encapsulation: u32,
    pub MaxOffLoadSize: u32,
    pub MinSegmentCount: u32,
    pub Bits: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_TCP_LARGE_SEND_OFFLOAD_V1>() == 16);

/// `NDIS_IPSEC_OFFLOAD_V1` (28 bytes; not used, carried for layout).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_IPSEC_OFFLOAD_V1 {
    pub Encapsulation: u32,
    pub AhEspCombined: u32,
    pub TransportTunnelCombined: u32,
    pub IPv4Options: u32,
    pub Flags: u32,
    pub IPv4AH: u32,
    pub IPv4ESP: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_IPSEC_OFFLOAD_V1>() == 28);

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_V2` (28 bytes). IPv6 `Bits`: `IpExtensionHeadersSupported:2,
/// TcpOptionsSupported:2`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_TCP_LARGE_SEND_OFFLOAD_V2 {
    pub IPv4Encapsulation: u32,
    pub IPv4MaxOffLoadSize: u32,
    pub IPv4MinSegmentCount: u32,
    pub IPv6Encapsulation: u32,
    pub IPv6MaxOffLoadSize: u32,
    pub IPv6MinSegmentCount: u32,
    pub IPv6Bits: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_TCP_LARGE_SEND_OFFLOAD_V2>() == 28);

/// `NDIS_IPSEC_OFFLOAD_V2` (32 bytes; not used, carried for layout).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_IPSEC_OFFLOAD_V2 {
    pub Encapsulation: u32,
    /// `IPv6Supported`, `IPv4Options`, `IPv6NonIPsecExtensionHeaders`, `Ah`, `Esp`,
    /// `AhEspCombined`, `Transport`, `Tunnel`, `TransportTunnelCombined`, `LsoSupported`,
    /// `ExtendedSequenceNumbers` (BOOLEANs).
    pub Booleans: [u8; 11],
    pub UdpEsp: u32,
    pub AuthenticationAlgorithms: u32,
    pub EncryptionAlgorithms: u32,
    pub SaOffloadCapacity: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_IPSEC_OFFLOAD_V2>() == 32);
const _: () = assert!(core::mem::offset_of!(NDIS_IPSEC_OFFLOAD_V2, UdpEsp) == 16);

/// `NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD` (2 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD {
    pub IPv4Enabled: u8,
    pub IPv6Enabled: u8,
}

/// `NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD` (8 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD {
    pub Bits: u32,
    pub MaxHeaderSizeSupported: u32,
}

/// `NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD_V2` (20 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD_V2 {
    pub Bits: u32,
    pub MaxHeaderSizeSupported: u32,
    /// `EncapsulationProtocolInfo` union (`VxlanInfo` / `Value`).
    pub EncapsulationProtocolInfo: u32,
    pub Reserved1: u32,
    pub Reserved2: u32,
}

/// `NDIS_RFC6877_464XLAT_OFFLOAD` (8 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_RFC6877_464XLAT_OFFLOAD {
    pub XlatOffload: i32,
    pub Flags: u32,
}

/// `NDIS_UDP_SEGMENTATION_OFFLOAD` (NDIS 6.83, 28 bytes). IPv4 `Bits`: `MinSegmentCount:6,
/// SubMssFinalSegmentSupported:1`; IPv6 `Bits1` likewise, `Bits2`: `IpExtensionHeadersSupported:2`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_UDP_SEGMENTATION_OFFLOAD {
    pub IPv4Encapsulation: u32,
    pub IPv4MaxOffLoadSize: u32,
    pub IPv4Bits: u32,
    pub IPv6Encapsulation: u32,
    pub IPv6MaxOffLoadSize: u32,
    pub IPv6Bits1: u32,
    pub IPv6Bits2: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_UDP_SEGMENTATION_OFFLOAD>() == 28);

pub const NDIS_OFFLOAD_REVISION_1: u8 = 1;
pub const NDIS_OFFLOAD_REVISION_2: u8 = 2;
pub const NDIS_OFFLOAD_REVISION_3: u8 = 3;
pub const NDIS_OFFLOAD_REVISION_4: u8 = 4;
pub const NDIS_OFFLOAD_REVISION_5: u8 = 5;
pub const NDIS_OFFLOAD_REVISION_6: u8 = 6;
pub const NDIS_OFFLOAD_REVISION_7: u8 = 7;
pub const NDIS_OFFLOAD_FLAGS_GROUP_CHECKSUM_CAPABILITIES: u32 = 0x0000_0001;

/// `NDIS_OFFLOAD` (NDIS 6.83+ layout, 216 bytes; all members 4-byte aligned). Carried by
/// `NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG`, `OID_TCP_OFFLOAD_CURRENT_CONFIG`,
/// `OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES` and the attach parameters' default configuration. Honour
/// `Header.Size`: older miniports report shorter revisions.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_OFFLOAD {
    pub Header: NDIS_OBJECT_HEADER,
    pub Checksum: NDIS_TCP_IP_CHECKSUM_OFFLOAD,
    pub LsoV1: NDIS_TCP_LARGE_SEND_OFFLOAD_V1,
    pub IPsecV1: NDIS_IPSEC_OFFLOAD_V1,
    pub LsoV2: NDIS_TCP_LARGE_SEND_OFFLOAD_V2,
    pub Flags: u32,
    pub IPsecV2: NDIS_IPSEC_OFFLOAD_V2,
    pub Rsc: NDIS_TCP_RECV_SEG_COALESCE_OFFLOAD,
    pub EncapsulatedPacketTaskOffloadGre: NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD,
    pub EncapsulatedPacketTaskOffloadVxlan: NDIS_ENCAPSULATED_PACKET_TASK_OFFLOAD_V2,
    pub EncapsulationTypes: u8,
    pub Rfc6877Xlat: NDIS_RFC6877_464XLAT_OFFLOAD,
    pub UdpSegmentation: NDIS_UDP_SEGMENTATION_OFFLOAD,
}
const _: () = assert!(core::mem::size_of::<NDIS_OFFLOAD>() == 216);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, Checksum) == 4);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, LsoV1) == 36);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, IPsecV1) == 52);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, LsoV2) == 80);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, Flags) == 108);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, IPsecV2) == 112);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, Rsc) == 144);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, EncapsulatedPacketTaskOffloadGre) == 148);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, EncapsulatedPacketTaskOffloadVxlan) == 156);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, EncapsulationTypes) == 176);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, Rfc6877Xlat) == 180);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD, UdpSegmentation) == 188);
/// `NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_1..6` (revision 7 = 6).
pub const NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_1: usize = 112;
pub const NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_2: usize = 144;
pub const NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_3: usize = 156;
pub const NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_4: usize = 177;
pub const NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_5: usize = 188;
pub const NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_6: usize = 216;

pub const NDIS_OFFLOAD_PARAMETERS_REVISION_1: u8 = 1;
pub const NDIS_OFFLOAD_PARAMETERS_REVISION_2: u8 = 2;
pub const NDIS_OFFLOAD_PARAMETERS_REVISION_3: u8 = 3;
pub const NDIS_OFFLOAD_PARAMETERS_REVISION_4: u8 = 4;
pub const NDIS_OFFLOAD_PARAMETERS_REVISION_5: u8 = 5;
pub const NDIS_OFFLOAD_PARAMETERS_NO_CHANGE: u8 = 0;
pub const NDIS_OFFLOAD_PARAMETERS_TX_RX_DISABLED: u8 = 1;
pub const NDIS_OFFLOAD_PARAMETERS_TX_ENABLED_RX_DISABLED: u8 = 2;
pub const NDIS_OFFLOAD_PARAMETERS_RX_ENABLED_TX_DISABLED: u8 = 3;
pub const NDIS_OFFLOAD_PARAMETERS_TX_RX_ENABLED: u8 = 4;
pub const NDIS_OFFLOAD_PARAMETERS_LSOV1_DISABLED: u8 = 1;
pub const NDIS_OFFLOAD_PARAMETERS_LSOV1_ENABLED: u8 = 2;
pub const NDIS_OFFLOAD_PARAMETERS_LSOV2_DISABLED: u8 = 1;
pub const NDIS_OFFLOAD_PARAMETERS_LSOV2_ENABLED: u8 = 2;
pub const NDIS_OFFLOAD_PARAMETERS_RSC_DISABLED: u8 = 1;
pub const NDIS_OFFLOAD_PARAMETERS_RSC_ENABLED: u8 = 2;
pub const NDIS_OFFLOAD_PARAMETERS_USO_DISABLED: u8 = 1;
pub const NDIS_OFFLOAD_PARAMETERS_USO_ENABLED: u8 = 2;
pub const NDIS_OFFLOAD_PARAMETERS_SKIP_REGISTRY_UPDATE: u32 = 0x0000_0001;

/// `NDIS_OFFLOAD_PARAMETERS` (NDIS 6.83 layout, 36 bytes), the payload of
/// `OID_TCP_OFFLOAD_PARAMETERS`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_OFFLOAD_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub IPv4Checksum: u8,
    pub TCPIPv4Checksum: u8,
    pub UDPIPv4Checksum: u8,
    pub TCPIPv6Checksum: u8,
    pub UDPIPv6Checksum: u8,
    pub LsoV1: u8,
    pub IPsecV1: u8,
    pub LsoV2IPv4: u8,
    pub LsoV2IPv6: u8,
    pub TcpConnectionIPv4: u8,
    pub TcpConnectionIPv6: u8,
    pub Flags: u32,
    pub IPsecV2: u8,
    pub IPsecV2IPv4: u8,
    pub RscIPv4: u8,
    pub RscIPv6: u8,
    pub EncapsulatedPacketTaskOffload: u8,
    pub EncapsulationTypes: u8,
    /// `EncapsulationProtocolParameters` union (`VxlanParameters.VxlanUDPPortNumber` / `Value`).
    pub EncapsulationProtocolParameters: u32,
    pub UdpSegmentationIPv4: u8,
    pub UdpSegmentationIPv6: u8,
}
const _: () = assert!(core::mem::size_of::<NDIS_OFFLOAD_PARAMETERS>() == 36);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD_PARAMETERS, IPv4Checksum) == 4);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD_PARAMETERS, TcpConnectionIPv6) == 14);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD_PARAMETERS, Flags) == 16);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD_PARAMETERS, IPsecV2) == 20);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD_PARAMETERS, RscIPv4) == 22);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD_PARAMETERS, EncapsulationTypes) == 25);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD_PARAMETERS, EncapsulationProtocolParameters) == 28);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD_PARAMETERS, UdpSegmentationIPv4) == 32);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD_PARAMETERS, UdpSegmentationIPv6) == 33);
/// `NDIS_SIZEOF_OFFLOAD_PARAMETERS_REVISION_1..5`.
pub const NDIS_SIZEOF_OFFLOAD_PARAMETERS_REVISION_1: usize = 20;
pub const NDIS_SIZEOF_OFFLOAD_PARAMETERS_REVISION_2: usize = 22;
pub const NDIS_SIZEOF_OFFLOAD_PARAMETERS_REVISION_3: usize = 26;
pub const NDIS_SIZEOF_OFFLOAD_PARAMETERS_REVISION_4: usize = 32;
pub const NDIS_SIZEOF_OFFLOAD_PARAMETERS_REVISION_5: usize = 34;

pub const NDIS_OFFLOAD_ENCAPSULATION_REVISION_1: u8 = 1;

/// `NDIS_OFFLOAD_ENCAPSULATION` (28 bytes), the payload of `OID_OFFLOAD_ENCAPSULATION`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_OFFLOAD_ENCAPSULATION {
    pub Header: NDIS_OBJECT_HEADER,
    pub IPv4Enabled: u32,
    pub IPv4EncapsulationType: u32,
    pub IPv4HeaderSize: u32,
    pub IPv6Enabled: u32,
    pub IPv6EncapsulationType: u32,
    pub IPv6HeaderSize: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_OFFLOAD_ENCAPSULATION>() == 28);
const _: () = assert!(core::mem::offset_of!(NDIS_OFFLOAD_ENCAPSULATION, IPv6Enabled) == 16);
/// `NDIS_SIZEOF_OFFLOAD_ENCAPSULATION_REVISION_1`.
pub const NDIS_SIZEOF_OFFLOAD_ENCAPSULATION_REVISION_1: usize = 28;
