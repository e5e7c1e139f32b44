//! NDIS 6 common types: handles, `NDIS_STATUS` and its codes, `NDIS_OBJECT_HEADER` and the object
//! types/revisions the drivers fill in, `NET_LUID`, media enums, the PnP event structures, and the
//! NDIS version constants.
//!
//! Sources (facts only, own code): xdp-for-windows `published/wdkdeps` at commit
//! 20d5106ec82d09484774e471bf476c1d704327cc (the last commit holding the WDK header copy):
//! `shared/ndis/types.h`, `shared/ndis/objectheader.h`, `shared/ndis/status.h`,
//! `shared/ntddndis.h` (`NDIS_OBJECT_TYPE_*`, `NDIS_MEDIUM`, `NDIS_PHYSICAL_MEDIUM`), `km/ndis.h`
//! (`NET_PNP_EVENT_NOTIFICATION`, `NET_DEVICE_PNP_EVENT`, `NDIS_DEVICE_PNP_EVENT`,
//! `NDIS_STATUS_*` indications). `NET_PNP_EVENT` / `NET_PNP_EVENT_CODE` (from `netpnp.h`, not in
//! that copy) follow Wine 8.0 `include/ddk/ndis.h` and the public WDK docs; `NET_PNP_EVENT` is
//! checked against Wine by `tests/wine_layout.rs`.

use core::ffi::c_void;

use super::ntos::{self, NTSTATUS};

/// `NDIS_HANDLE`: an opaque pointer.
pub type NDIS_HANDLE = *mut c_void;
/// `NDIS_STATUS`: `int` (same values as `NTSTATUS`).
pub type NDIS_STATUS = i32;
/// `NDIS_PORT_NUMBER`: `ULONG`.
pub type NDIS_PORT_NUMBER = u32;
/// `NDIS_OID`: `ULONG`.
pub type NDIS_OID = u32;
/// `NET_IFINDEX`: `ULONG`.
pub type NET_IFINDEX = u32;
/// `NET_LUID` (`NET_LUID_LH`): a 64-bit union (`Value` / `{Reserved:24, NetLuidIndex:24,
/// IfType:16}`), treated as its `Value`.
pub type NET_LUID = u64;
/// `NDIS_MEDIUM` (enum).
pub type NDIS_MEDIUM = i32;
/// `NDIS_PHYSICAL_MEDIUM` (enum).
pub type NDIS_PHYSICAL_MEDIUM = i32;
/// `NDIS_MEDIA_CONNECT_STATE` (enum).
pub type NDIS_MEDIA_CONNECT_STATE = i32;
/// `NET_IF_MEDIA_DUPLEX_STATE` (enum).
pub type NET_IF_MEDIA_DUPLEX_STATE = i32;
/// `NDIS_DEVICE_POWER_STATE` / `NET_DEVICE_POWER_STATE` (enum).
pub type NDIS_DEVICE_POWER_STATE = i32;

pub const NdisMedium802_3: NDIS_MEDIUM = 0;
pub const NdisMediumIP: NDIS_MEDIUM = 19;
pub const NdisPhysicalMediumUnspecified: NDIS_PHYSICAL_MEDIUM = 0;
pub const NdisPhysicalMedium802_3: NDIS_PHYSICAL_MEDIUM = 14;
pub const MediaConnectStateUnknown: NDIS_MEDIA_CONNECT_STATE = 0;
pub const MediaConnectStateConnected: NDIS_MEDIA_CONNECT_STATE = 1;
pub const MediaConnectStateDisconnected: NDIS_MEDIA_CONNECT_STATE = 2;
pub const MediaDuplexStateUnknown: NET_IF_MEDIA_DUPLEX_STATE = 0;
pub const MediaDuplexStateHalf: NET_IF_MEDIA_DUPLEX_STATE = 1;
pub const MediaDuplexStateFull: NET_IF_MEDIA_DUPLEX_STATE = 2;
pub const NdisDeviceStateUnspecified: NDIS_DEVICE_POWER_STATE = 0;
pub const NdisDeviceStateD0: NDIS_DEVICE_POWER_STATE = 1;
pub const NdisDeviceStateD1: NDIS_DEVICE_POWER_STATE = 2;
pub const NdisDeviceStateD2: NDIS_DEVICE_POWER_STATE = 3;
pub const NdisDeviceStateD3: NDIS_DEVICE_POWER_STATE = 4;

/// `NDIS_DEFAULT_PORT_NUMBER`.
pub const NDIS_DEFAULT_PORT_NUMBER: NDIS_PORT_NUMBER = 0;
/// `NDIS_MAX_PHYS_ADDRESS_LENGTH` (= `IF_MAX_PHYS_ADDRESS_LENGTH`).
pub const NDIS_MAX_PHYS_ADDRESS_LENGTH: usize = 32;

// ---------------------------------------------------------------------------------------------
// NDIS_STATUS codes (shared/ndis/status.h, km/ndis.h)
// ---------------------------------------------------------------------------------------------

#[allow(clippy::cast_possible_wrap)]
const fn ns(v: u32) -> NDIS_STATUS {
    v as NDIS_STATUS
}

pub const NDIS_STATUS_SUCCESS: NDIS_STATUS = ntos::STATUS_SUCCESS;
pub const NDIS_STATUS_PENDING: NDIS_STATUS = ntos::STATUS_PENDING;
pub const NDIS_STATUS_NOT_RECOGNIZED: NDIS_STATUS = 0x0001_0001;
pub const NDIS_STATUS_NOT_COPIED: NDIS_STATUS = 0x0001_0002;
pub const NDIS_STATUS_NOT_ACCEPTED: NDIS_STATUS = 0x0001_0003;
pub const NDIS_STATUS_INDICATION_REQUIRED: NDIS_STATUS = ntos::STATUS_NDIS_INDICATION_REQUIRED;
pub const NDIS_STATUS_BUFFER_OVERFLOW: NDIS_STATUS = ntos::STATUS_BUFFER_OVERFLOW;
pub const NDIS_STATUS_FAILURE: NDIS_STATUS = ntos::STATUS_UNSUCCESSFUL;
pub const NDIS_STATUS_RESOURCES: NDIS_STATUS = ntos::STATUS_INSUFFICIENT_RESOURCES;
pub const NDIS_STATUS_CLOSING: NDIS_STATUS = ns(0xC001_0002);
pub const NDIS_STATUS_BAD_VERSION: NDIS_STATUS = ns(0xC001_0004);
pub const NDIS_STATUS_BAD_CHARACTERISTICS: NDIS_STATUS = ns(0xC001_0005);
pub const NDIS_STATUS_ADAPTER_NOT_FOUND: NDIS_STATUS = ns(0xC001_0006);
pub const NDIS_STATUS_DEVICE_FAILED: NDIS_STATUS = ns(0xC001_0008);
pub const NDIS_STATUS_REQUEST_ABORTED: NDIS_STATUS = ns(0xC001_000C);
pub const NDIS_STATUS_RESET_IN_PROGRESS: NDIS_STATUS = ns(0xC001_000D);
pub const NDIS_STATUS_NOT_SUPPORTED: NDIS_STATUS = ntos::STATUS_NOT_SUPPORTED;
pub const NDIS_STATUS_INVALID_PACKET: NDIS_STATUS = ns(0xC001_000F);
pub const NDIS_STATUS_ADAPTER_NOT_READY: NDIS_STATUS = ns(0xC001_0011);
pub const NDIS_STATUS_INVALID_LENGTH: NDIS_STATUS = ns(0xC001_0014);
pub const NDIS_STATUS_INVALID_DATA: NDIS_STATUS = ns(0xC001_0015);
pub const NDIS_STATUS_BUFFER_TOO_SHORT: NDIS_STATUS = ns(0xC001_0016);
pub const NDIS_STATUS_INVALID_OID: NDIS_STATUS = ns(0xC001_0017);
pub const NDIS_STATUS_ADAPTER_REMOVED: NDIS_STATUS = ns(0xC001_0018);
pub const NDIS_STATUS_INVALID_DEVICE_REQUEST: NDIS_STATUS = ntos::STATUS_INVALID_DEVICE_REQUEST;
pub const NDIS_STATUS_SEND_ABORTED: NDIS_STATUS = ntos::STATUS_NDIS_REQUEST_ABORTED;
pub const NDIS_STATUS_PAUSED: NDIS_STATUS = ntos::STATUS_NDIS_PAUSED;
pub const NDIS_STATUS_INTERFACE_NOT_FOUND: NDIS_STATUS = ntos::STATUS_NDIS_INTERFACE_NOT_FOUND;
pub const NDIS_STATUS_INVALID_PARAMETER: NDIS_STATUS = ntos::STATUS_INVALID_PARAMETER;
pub const NDIS_STATUS_UNSUPPORTED_REVISION: NDIS_STATUS = ntos::STATUS_NDIS_UNSUPPORTED_REVISION;
pub const NDIS_STATUS_INVALID_PORT: NDIS_STATUS = ntos::STATUS_NDIS_INVALID_PORT;
pub const NDIS_STATUS_INVALID_PORT_STATE: NDIS_STATUS = ntos::STATUS_NDIS_INVALID_PORT_STATE;
pub const NDIS_STATUS_INVALID_STATE: NDIS_STATUS = ntos::STATUS_INVALID_DEVICE_STATE;
pub const NDIS_STATUS_MEDIA_DISCONNECTED: NDIS_STATUS = ntos::STATUS_NDIS_MEDIA_DISCONNECTED;
pub const NDIS_STATUS_LOW_POWER_STATE: NDIS_STATUS = ntos::STATUS_NDIS_LOW_POWER_STATE;

// Status indication codes (NDIS_STATUS_INDICATION.StatusCode), km/ndis.h.
pub const NDIS_STATUS_MEDIA_CONNECT: NDIS_STATUS = 0x4001_000B;
pub const NDIS_STATUS_MEDIA_DISCONNECT: NDIS_STATUS = 0x4001_000C;
pub const NDIS_STATUS_LINK_STATE: NDIS_STATUS = 0x4001_0017;
pub const NDIS_STATUS_PORT_STATE: NDIS_STATUS = 0x4001_0022;
pub const NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG: NDIS_STATUS = 0x4002_0006;
pub const NDIS_STATUS_TASK_OFFLOAD_HARDWARE_CAPABILITIES: NDIS_STATUS = 0x4002_0007;
/// (sic: the header's spelling)
pub const NDIS_STATUS_OFFLOAD_ENCASPULATION_CHANGE: NDIS_STATUS = 0x4002_0008;

/// `NT_SUCCESS` for an `NDIS_STATUS`.
#[inline]
pub const fn NDIS_SUCCESS(status: NDIS_STATUS) -> bool {
    status >= 0
}

const _: () = assert!(core::mem::size_of::<NDIS_STATUS>() == core::mem::size_of::<NTSTATUS>());

// ---------------------------------------------------------------------------------------------
// NDIS_OBJECT_HEADER
// ---------------------------------------------------------------------------------------------

/// `NDIS_OBJECT_HEADER`: prefix of every versioned NDIS structure.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_OBJECT_HEADER {
    pub Type: u8,
    pub Revision: u8,
    pub Size: u16,
}
const _: () = assert!(core::mem::size_of::<NDIS_OBJECT_HEADER>() == 4);
const _: () = assert!(core::mem::offset_of!(NDIS_OBJECT_HEADER, Revision) == 1);
const _: () = assert!(core::mem::offset_of!(NDIS_OBJECT_HEADER, Size) == 2);

impl NDIS_OBJECT_HEADER {
    /// A header with the given type, revision and size.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn new(ty: u8, revision: u8, size: usize) -> Self {
        assert!(size <= u16::MAX as usize);
        Self { Type: ty, Revision: revision, Size: size as u16 }
    }
}

pub const NDIS_OBJECT_REVISION_1: u8 = 1;
pub const NDIS_OBJECT_TYPE_DEFAULT: u8 = 0x80;
pub const NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES: u8 = 0x85;
pub const NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS: u8 = 0x8B;
pub const NDIS_OBJECT_TYPE_FILTER_PARTIAL_CHARACTERISTICS: u8 = 0x8C;
pub const NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES: u8 = 0x8D;
pub const NDIS_OBJECT_TYPE_STATUS_INDICATION: u8 = 0x98;
pub const NDIS_OBJECT_TYPE_FILTER_ATTACH_PARAMETERS: u8 = 0x99;
pub const NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS: u8 = 0x9A;
pub const NDIS_OBJECT_TYPE_FILTER_RESTART_PARAMETERS: u8 = 0x9B;
pub const NDIS_OBJECT_TYPE_RESTART_GENERAL_ATTRIBUTES: u8 = 0xA2;
pub const NDIS_OBJECT_TYPE_OFFLOAD: u8 = 0xA7;
pub const NDIS_OBJECT_TYPE_OFFLOAD_ENCAPSULATION: u8 = 0xA8;
pub const NDIS_OBJECT_TYPE_OID_REQUEST: u8 = 0x96;

// ---------------------------------------------------------------------------------------------
// NDIS versions (for the characteristics' MajorNdisVersion/MinorNdisVersion)
// ---------------------------------------------------------------------------------------------

pub const NDIS_MAJOR_VERSION_6: u8 = 6;
/// NDIS 6.30 (Windows 8): the minimum the filter targets.
pub const NDIS_MINOR_VERSION_630: u8 = 30;
/// NDIS 6.50 (Windows 10 1507).
pub const NDIS_MINOR_VERSION_650: u8 = 50;
/// NDIS 6.80 (Windows 10 1809).
pub const NDIS_MINOR_VERSION_680: u8 = 80;

// ---------------------------------------------------------------------------------------------
// PnP events
// ---------------------------------------------------------------------------------------------

/// `NET_PNP_EVENT_CODE` (enum).
pub type NET_PNP_EVENT_CODE = i32;
pub const NetEventSetPower: NET_PNP_EVENT_CODE = 0;
pub const NetEventQueryPower: NET_PNP_EVENT_CODE = 1;
pub const NetEventQueryRemoveDevice: NET_PNP_EVENT_CODE = 2;
pub const NetEventCancelRemoveDevice: NET_PNP_EVENT_CODE = 3;
pub const NetEventReconfigure: NET_PNP_EVENT_CODE = 4;
pub const NetEventBindList: NET_PNP_EVENT_CODE = 5;
pub const NetEventBindsComplete: NET_PNP_EVENT_CODE = 6;
pub const NetEventPnPCapabilities: NET_PNP_EVENT_CODE = 7;
pub const NetEventPause: NET_PNP_EVENT_CODE = 8;
pub const NetEventRestart: NET_PNP_EVENT_CODE = 9;
pub const NetEventPortActivation: NET_PNP_EVENT_CODE = 10;
pub const NetEventPortDeactivation: NET_PNP_EVENT_CODE = 11;
pub const NetEventIMReEnableDevice: NET_PNP_EVENT_CODE = 12;
pub const NetEventNDKEnable: NET_PNP_EVENT_CODE = 13;
pub const NetEventNDKDisable: NET_PNP_EVENT_CODE = 14;
pub const NetEventFilterPreDetach: NET_PNP_EVENT_CODE = 15;
pub const NetEventBindFailed: NET_PNP_EVENT_CODE = 16;
pub const NetEventSwitchActivate: NET_PNP_EVENT_CODE = 17;
pub const NetEventAllowBindsAbove: NET_PNP_EVENT_CODE = 18;
pub const NetEventInhibitBindsAbove: NET_PNP_EVENT_CODE = 19;
pub const NetEventAllowStart: NET_PNP_EVENT_CODE = 20;
pub const NetEventRequirePause: NET_PNP_EVENT_CODE = 21;
pub const NetEventUploadGftFlowEntries: NET_PNP_EVENT_CODE = 22;

/// `NET_PNP_EVENT` (x64: 152 bytes). For `NetEventSetPower`, `Buffer` points to an
/// `NDIS_DEVICE_POWER_STATE`.
#[repr(C)]
#[derive(Debug)]
pub struct NET_PNP_EVENT {
    pub NetEvent: NET_PNP_EVENT_CODE,
    pub Buffer: *mut c_void,
    pub BufferLength: u32,
    pub NdisReserved: [usize; 4],
    pub TransportReserved: [usize; 4],
    pub TdiReserved: [usize; 4],
    pub TdiClientReserved: [usize; 4],
}
const _: () = assert!(core::mem::size_of::<NET_PNP_EVENT>() == 152);
const _: () = assert!(core::mem::offset_of!(NET_PNP_EVENT, Buffer) == 8);
const _: () = assert!(core::mem::offset_of!(NET_PNP_EVENT, BufferLength) == 16);
const _: () = assert!(core::mem::offset_of!(NET_PNP_EVENT, NdisReserved) == 24);

pub const NET_PNP_EVENT_NOTIFICATION_REVISION_1: u8 = 1;
pub const NET_PNP_EVENT_NOTIFICATION_REVISION_2: u8 = 2;

/// `NET_PNP_EVENT_NOTIFICATION` (NDIS 6.50 layout with `SwitchId`/`VPortId`; x64: 176 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct NET_PNP_EVENT_NOTIFICATION {
    pub Header: NDIS_OBJECT_HEADER,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub NetPnPEvent: NET_PNP_EVENT,
    pub Flags: u32,
    pub SwitchId: u32,
    pub VPortId: u32,
}
const _: () = assert!(core::mem::offset_of!(NET_PNP_EVENT_NOTIFICATION, PortNumber) == 4);
const _: () = assert!(core::mem::offset_of!(NET_PNP_EVENT_NOTIFICATION, NetPnPEvent) == 8);
const _: () = assert!(core::mem::offset_of!(NET_PNP_EVENT_NOTIFICATION, Flags) == 160);
const _: () = assert!(core::mem::offset_of!(NET_PNP_EVENT_NOTIFICATION, SwitchId) == 164);
const _: () = assert!(core::mem::offset_of!(NET_PNP_EVENT_NOTIFICATION, VPortId) == 168);
const _: () = assert!(core::mem::size_of::<NET_PNP_EVENT_NOTIFICATION>() == 176);

/// `NDIS_DEVICE_PNP_EVENT` (enum).
pub type NDIS_DEVICE_PNP_EVENT = i32;
pub const NdisDevicePnPEventQueryRemoved: NDIS_DEVICE_PNP_EVENT = 0;
pub const NdisDevicePnPEventRemoved: NDIS_DEVICE_PNP_EVENT = 1;
pub const NdisDevicePnPEventSurpriseRemoved: NDIS_DEVICE_PNP_EVENT = 2;
pub const NdisDevicePnPEventQueryStopped: NDIS_DEVICE_PNP_EVENT = 3;
pub const NdisDevicePnPEventStopped: NDIS_DEVICE_PNP_EVENT = 4;
pub const NdisDevicePnPEventPowerProfileChanged: NDIS_DEVICE_PNP_EVENT = 5;
pub const NdisDevicePnPEventFilterListChanged: NDIS_DEVICE_PNP_EVENT = 6;

/// `NET_DEVICE_PNP_EVENT` (x64: 48 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct NET_DEVICE_PNP_EVENT {
    pub Header: NDIS_OBJECT_HEADER,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub DevicePnPEvent: NDIS_DEVICE_PNP_EVENT,
    pub InformationBuffer: *mut c_void,
    pub InformationBufferLength: u32,
    pub NdisReserved: [u8; 2 * core::mem::size_of::<usize>()],
}
const _: () = assert!(core::mem::offset_of!(NET_DEVICE_PNP_EVENT, DevicePnPEvent) == 8);
const _: () = assert!(core::mem::offset_of!(NET_DEVICE_PNP_EVENT, InformationBuffer) == 16);
const _: () = assert!(core::mem::offset_of!(NET_DEVICE_PNP_EVENT, InformationBufferLength) == 24);
const _: () = assert!(core::mem::size_of::<NET_DEVICE_PNP_EVENT>() == 48);
