//! The NDIS 6 lightweight-filter API: `NDIS_FILTER_DRIVER_CHARACTERISTICS` with every handler
//! typedef, attach/restart/pause parameters, `NDIS_FILTER_ATTRIBUTES`, and the `NdisF*` exports of
//! `ndis.sys`.
//!
//! Sources (facts only, own code): xdp-for-windows `published/wdkdeps/km/ndis.h` at commit
//! 20d5106ec82d09484774e471bf476c1d704327cc (the filter section: `FILTER_*` typedefs,
//! `NDIS_FILTER_*` structures and `NdisF*` prototypes, `SET_OPTIONS`, `NDIS_RESTART_ATTRIBUTES`).
//!
//! Handler IRQLs (from the typedefs' SAL): attach, detach, restart, pause, set-module-options,
//! net-PnP and device-PnP handlers run at PASSIVE_LEVEL; send, send-complete, receive, return,
//! cancel-send, OID, OID-complete, cancel-OID, direct-OID and status handlers at
//! <= DISPATCH_LEVEL.

use core::ffi::c_void;

use super::nbl::NET_BUFFER_LIST;
/// The send/return/receive flags and their `NDIS_TEST_*` helpers live with the NBL definitions;
/// re-exported here because the `NdisF*` calls and handlers take them.
pub use super::nbl::{
    NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL, NDIS_RECEIVE_FLAGS_MORE_NBLS, NDIS_RECEIVE_FLAGS_PERFECT_FILTERED,
    NDIS_RECEIVE_FLAGS_RESOURCES, NDIS_RECEIVE_FLAGS_SHARED_MEMORY_INFO_VALID,
    NDIS_RECEIVE_FLAGS_SINGLE_ETHER_TYPE, NDIS_RECEIVE_FLAGS_SINGLE_QUEUE, NDIS_RECEIVE_FLAGS_SINGLE_VLAN,
    NDIS_RETURN_FLAGS_DISPATCH_LEVEL, NDIS_RETURN_FLAGS_SINGLE_QUEUE,
    NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL, NDIS_SEND_COMPLETE_FLAGS_SINGLE_QUEUE,
    NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK, NDIS_SEND_FLAGS_DISPATCH_LEVEL, NDIS_SEND_FLAGS_SINGLE_QUEUE,
    NDIS_TEST_RECEIVE_AT_DISPATCH_LEVEL, NDIS_TEST_RECEIVE_CANNOT_PEND, NDIS_TEST_RETURN_AT_DISPATCH_LEVEL,
    NDIS_TEST_SEND_AT_DISPATCH_LEVEL,
};
use super::ndis::{
    NDIS_HANDLE, NDIS_MAX_PHYS_ADDRESS_LENGTH, NDIS_MEDIA_CONNECT_STATE, NDIS_MEDIUM, NDIS_OBJECT_HEADER,
    NDIS_OID, NDIS_PHYSICAL_MEDIUM, NDIS_PORT_NUMBER, NDIS_STATUS, NET_DEVICE_PNP_EVENT, NET_IFINDEX,
    NET_IF_MEDIA_DUPLEX_STATE, NET_LUID, NET_PNP_EVENT_NOTIFICATION,
};
use super::ntos::{DEVICE_OBJECT, DRIVER_OBJECT, NDIS_STRING};
use super::oid::{NDIS_OID_REQUEST, NDIS_STATUS_INDICATION};

// ---------------------------------------------------------------------------------------------
// Handler typedefs
// ---------------------------------------------------------------------------------------------

/// `SET_OPTIONS` (`SetOptionsHandler`). PASSIVE_LEVEL.
pub type SET_OPTIONS_HANDLER = Option<
    unsafe extern "system" fn(ndis_driver_handle: NDIS_HANDLE, driver_context: NDIS_HANDLE) -> NDIS_STATUS,
>;
/// `FILTER_SET_MODULE_OPTIONS`. PASSIVE_LEVEL.
pub type FILTER_SET_FILTER_MODULE_OPTIONS_HANDLER =
    Option<unsafe extern "system" fn(filter_module_context: NDIS_HANDLE) -> NDIS_STATUS>;
/// `FILTER_ATTACH`. PASSIVE_LEVEL. Must call `NdisFSetAttributes` before returning success.
pub type FILTER_ATTACH_HANDLER = Option<
    unsafe extern "system" fn(
        ndis_filter_handle: NDIS_HANDLE,
        filter_driver_context: NDIS_HANDLE,
        attach_parameters: *mut NDIS_FILTER_ATTACH_PARAMETERS,
    ) -> NDIS_STATUS,
>;
/// `FILTER_DETACH`. PASSIVE_LEVEL. Frees the module context.
pub type FILTER_DETACH_HANDLER = Option<unsafe extern "system" fn(filter_module_context: NDIS_HANDLE)>;
/// `FILTER_RESTART`. PASSIVE_LEVEL. Returns success, failure, or `NDIS_STATUS_PENDING` and later
/// `NdisFRestartComplete`.
pub type FILTER_RESTART_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        restart_parameters: *mut NDIS_FILTER_RESTART_PARAMETERS,
    ) -> NDIS_STATUS,
>;
/// `FILTER_PAUSE`. PASSIVE_LEVEL. Returns success or `NDIS_STATUS_PENDING` and later
/// `NdisFPauseComplete` once no sent or indicated NBL is outstanding.
pub type FILTER_PAUSE_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        pause_parameters: *mut NDIS_FILTER_PAUSE_PARAMETERS,
    ) -> NDIS_STATUS,
>;
/// `FILTER_SEND_NET_BUFFER_LISTS`. IRQL <= DISPATCH_LEVEL (`NDIS_SEND_FLAGS_DISPATCH_LEVEL` tells
/// which).
pub type FILTER_SEND_NET_BUFFER_LISTS_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        port_number: NDIS_PORT_NUMBER,
        send_flags: u32,
    ),
>;
/// `FILTER_SEND_NET_BUFFER_LISTS_COMPLETE`. IRQL <= DISPATCH_LEVEL.
pub type FILTER_SEND_NET_BUFFER_LISTS_COMPLETE_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        send_complete_flags: u32,
    ),
>;
/// `FILTER_CANCEL_SEND_NET_BUFFER_LISTS`. IRQL <= DISPATCH_LEVEL.
pub type FILTER_CANCEL_SEND_HANDLER =
    Option<unsafe extern "system" fn(filter_module_context: NDIS_HANDLE, cancel_id: *mut c_void)>;
/// `FILTER_RECEIVE_NET_BUFFER_LISTS`. IRQL <= DISPATCH_LEVEL.
pub type FILTER_RECEIVE_NET_BUFFER_LISTS_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        port_number: NDIS_PORT_NUMBER,
        number_of_net_buffer_lists: u32,
        receive_flags: u32,
    ),
>;
/// `FILTER_RETURN_NET_BUFFER_LISTS`. IRQL <= DISPATCH_LEVEL.
pub type FILTER_RETURN_NET_BUFFER_LISTS_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        return_flags: u32,
    ),
>;
/// `FILTER_OID_REQUEST`. IRQL <= DISPATCH_LEVEL.
pub type FILTER_OID_REQUEST_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        oid_request: *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS,
>;
/// `FILTER_OID_REQUEST_COMPLETE`. IRQL <= DISPATCH_LEVEL.
pub type FILTER_OID_REQUEST_COMPLETE_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        oid_request: *mut NDIS_OID_REQUEST,
        status: NDIS_STATUS,
    ),
>;
/// `FILTER_CANCEL_OID_REQUEST`. IRQL <= DISPATCH_LEVEL.
pub type FILTER_CANCEL_OID_REQUEST_HANDLER =
    Option<unsafe extern "system" fn(filter_module_context: NDIS_HANDLE, request_id: *mut c_void)>;
/// `FILTER_DEVICE_PNP_EVENT_NOTIFY`. PASSIVE_LEVEL.
pub type FILTER_DEVICE_PNP_EVENT_NOTIFY_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        net_device_pnp_event: *mut NET_DEVICE_PNP_EVENT,
    ),
>;
/// `FILTER_NET_PNP_EVENT`. PASSIVE_LEVEL. Usually forwarded with `NdisFNetPnPEvent`.
pub type FILTER_NET_PNP_EVENT_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        net_pnp_event_notification: *mut NET_PNP_EVENT_NOTIFICATION,
    ) -> NDIS_STATUS,
>;
/// `FILTER_STATUS`. IRQL <= DISPATCH_LEVEL.
pub type FILTER_STATUS_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        status_indication: *mut NDIS_STATUS_INDICATION,
    ),
>;
/// `FILTER_DIRECT_OID_REQUEST` (NDIS 6.1). IRQL <= DISPATCH_LEVEL.
pub type FILTER_DIRECT_OID_REQUEST_HANDLER = FILTER_OID_REQUEST_HANDLER;
/// `FILTER_DIRECT_OID_REQUEST_COMPLETE` (NDIS 6.1). IRQL <= DISPATCH_LEVEL.
pub type FILTER_DIRECT_OID_REQUEST_COMPLETE_HANDLER = FILTER_OID_REQUEST_COMPLETE_HANDLER;
/// `FILTER_CANCEL_DIRECT_OID_REQUEST` (NDIS 6.1). IRQL <= DISPATCH_LEVEL.
pub type FILTER_CANCEL_DIRECT_OID_REQUEST_HANDLER = FILTER_CANCEL_OID_REQUEST_HANDLER;
/// `FILTER_SYNCHRONOUS_OID_REQUEST` (NDIS 6.80). IRQL <= DISPATCH_LEVEL, same IRQL on return.
pub type FILTER_SYNCHRONOUS_OID_REQUEST_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        oid_request: *mut NDIS_OID_REQUEST,
        call_context: *mut *mut c_void,
    ) -> NDIS_STATUS,
>;
/// `FILTER_SYNCHRONOUS_OID_REQUEST_COMPLETE` (NDIS 6.80). IRQL <= DISPATCH_LEVEL.
pub type FILTER_SYNCHRONOUS_OID_REQUEST_COMPLETE_HANDLER = Option<
    unsafe extern "system" fn(
        filter_module_context: NDIS_HANDLE,
        oid_request: *mut NDIS_OID_REQUEST,
        status: *mut NDIS_STATUS,
        call_context: *mut c_void,
    ),
>;

// ---------------------------------------------------------------------------------------------
// Characteristics
// ---------------------------------------------------------------------------------------------

pub const NDIS_FILTER_CHARACTERISTICS_REVISION_1: u8 = 1;
pub const NDIS_FILTER_CHARACTERISTICS_REVISION_2: u8 = 2;
pub const NDIS_FILTER_CHARACTERISTICS_REVISION_3: u8 = 3;
pub const NDIS_FILTER_DRIVER_MANDATORY: u32 = 0x0000_0001;
pub const NDIS_FILTER_DRIVER_SUPPORTS_CURRENT_MAC_ADDRESS_CHANGE: u32 = 0x0000_0002;
pub const NDIS_FILTER_DRIVER_SUPPORTS_L2_MTU_SIZE_CHANGE: u32 = 0x0000_0004;

/// `NDIS_FILTER_DRIVER_CHARACTERISTICS` (revision 3 layout; x64: 240 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_FILTER_DRIVER_CHARACTERISTICS {
    pub Header: NDIS_OBJECT_HEADER,
    pub MajorNdisVersion: u8,
    pub MinorNdisVersion: u8,
    pub MajorDriverVersion: u8,
    pub MinorDriverVersion: u8,
    pub Flags: u32,
    pub FriendlyName: NDIS_STRING,
    pub UniqueName: NDIS_STRING,
    pub ServiceName: NDIS_STRING,
    pub SetOptionsHandler: SET_OPTIONS_HANDLER,
    pub SetFilterModuleOptionsHandler: FILTER_SET_FILTER_MODULE_OPTIONS_HANDLER,
    pub AttachHandler: FILTER_ATTACH_HANDLER,
    pub DetachHandler: FILTER_DETACH_HANDLER,
    pub RestartHandler: FILTER_RESTART_HANDLER,
    pub PauseHandler: FILTER_PAUSE_HANDLER,
    pub SendNetBufferListsHandler: FILTER_SEND_NET_BUFFER_LISTS_HANDLER,
    pub SendNetBufferListsCompleteHandler: FILTER_SEND_NET_BUFFER_LISTS_COMPLETE_HANDLER,
    pub CancelSendNetBufferListsHandler: FILTER_CANCEL_SEND_HANDLER,
    pub ReceiveNetBufferListsHandler: FILTER_RECEIVE_NET_BUFFER_LISTS_HANDLER,
    pub ReturnNetBufferListsHandler: FILTER_RETURN_NET_BUFFER_LISTS_HANDLER,
    pub OidRequestHandler: FILTER_OID_REQUEST_HANDLER,
    pub OidRequestCompleteHandler: FILTER_OID_REQUEST_COMPLETE_HANDLER,
    pub CancelOidRequestHandler: FILTER_CANCEL_OID_REQUEST_HANDLER,
    pub DevicePnPEventNotifyHandler: FILTER_DEVICE_PNP_EVENT_NOTIFY_HANDLER,
    pub NetPnPEventHandler: FILTER_NET_PNP_EVENT_HANDLER,
    pub StatusHandler: FILTER_STATUS_HANDLER,
    // NDIS 6.1 (revision 2)
    pub DirectOidRequestHandler: FILTER_DIRECT_OID_REQUEST_HANDLER,
    pub DirectOidRequestCompleteHandler: FILTER_DIRECT_OID_REQUEST_COMPLETE_HANDLER,
    pub CancelDirectOidRequestHandler: FILTER_CANCEL_DIRECT_OID_REQUEST_HANDLER,
    // NDIS 6.80 (revision 3)
    pub SynchronousOidRequestHandler: FILTER_SYNCHRONOUS_OID_REQUEST_HANDLER,
    pub SynchronousOidRequestCompleteHandler: FILTER_SYNCHRONOUS_OID_REQUEST_COMPLETE_HANDLER,
}
const _: () = assert!(core::mem::size_of::<NDIS_FILTER_DRIVER_CHARACTERISTICS>() == 240);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, MajorNdisVersion) == 4);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, MinorNdisVersion) == 5);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, MajorDriverVersion) == 6);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, MinorDriverVersion) == 7);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, Flags) == 8);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, FriendlyName) == 16);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, UniqueName) == 32);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, ServiceName) == 48);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, SetOptionsHandler) == 64);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, SetFilterModuleOptionsHandler) == 72);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, AttachHandler) == 80);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, DetachHandler) == 88);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, RestartHandler) == 96);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, PauseHandler) == 104);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, SendNetBufferListsHandler) == 112);
const _: () = assert!(
    core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, SendNetBufferListsCompleteHandler) == 120
);
const _: () = assert!(
    core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, CancelSendNetBufferListsHandler) == 128
);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, ReceiveNetBufferListsHandler) == 136);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, ReturnNetBufferListsHandler) == 144);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, OidRequestHandler) == 152);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, OidRequestCompleteHandler) == 160);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, CancelOidRequestHandler) == 168);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, DevicePnPEventNotifyHandler) == 176);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, NetPnPEventHandler) == 184);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, StatusHandler) == 192);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, DirectOidRequestHandler) == 200);
const _: () = assert!(
    core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, DirectOidRequestCompleteHandler) == 208
);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, CancelDirectOidRequestHandler) == 216);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, SynchronousOidRequestHandler) == 224);
const _: () = assert!(
    core::mem::offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, SynchronousOidRequestCompleteHandler) == 232
);

/// `NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_1` (through `StatusHandler`).
pub const NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_1: usize = 200;
/// `NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2` (through `CancelDirectOidRequestHandler`).
pub const NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2: usize = 224;
/// `NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_3` (through
/// `SynchronousOidRequestCompleteHandler`).
pub const NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_3: usize = 240;

/// `NDIS_FILTER_PARTIAL_CHARACTERISTICS` (for `NdisSetOptionalHandlers` from
/// `FilterSetModuleOptions`; x64: 48 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_FILTER_PARTIAL_CHARACTERISTICS {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    pub SendNetBufferListsHandler: FILTER_SEND_NET_BUFFER_LISTS_HANDLER,
    pub SendNetBufferListsCompleteHandler: FILTER_SEND_NET_BUFFER_LISTS_COMPLETE_HANDLER,
    pub CancelSendNetBufferListsHandler: FILTER_CANCEL_SEND_HANDLER,
    pub ReceiveNetBufferListsHandler: FILTER_RECEIVE_NET_BUFFER_LISTS_HANDLER,
    pub ReturnNetBufferListsHandler: FILTER_RETURN_NET_BUFFER_LISTS_HANDLER,
}
const _: () = assert!(core::mem::size_of::<NDIS_FILTER_PARTIAL_CHARACTERISTICS>() == 48);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_PARTIAL_CHARACTERISTICS, SendNetBufferListsHandler) == 8);
pub const NDIS_FILTER_PARTIAL_CHARACTERISTICS_REVISION_1: u8 = 1;

// ---------------------------------------------------------------------------------------------
// Attach / restart / pause parameters and attributes
// ---------------------------------------------------------------------------------------------

pub const NDIS_FILTER_ATTACH_FLAGS_IGNORE_MANDATORY: u32 = 0x0000_0001;
pub const NDIS_FILTER_ATTACH_PARAMETERS_REVISION_1: u8 = 1;
pub const NDIS_FILTER_ATTACH_PARAMETERS_REVISION_2: u8 = 2;
pub const NDIS_FILTER_ATTACH_PARAMETERS_REVISION_3: u8 = 3;
pub const NDIS_FILTER_ATTACH_PARAMETERS_REVISION_4: u8 = 4;

/// `NDIS_FILTER_ATTACH_PARAMETERS` (revision 4 layout; x64: 224 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_FILTER_ATTACH_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub IfIndex: NET_IFINDEX,
    pub NetLuid: NET_LUID,
    pub FilterModuleGuidName: *mut NDIS_STRING,
    pub BaseMiniportIfIndex: NET_IFINDEX,
    pub BaseMiniportInstanceName: *mut NDIS_STRING,
    pub BaseMiniportName: *mut NDIS_STRING,
    pub MediaConnectState: NDIS_MEDIA_CONNECT_STATE,
    pub MediaDuplexState: NET_IF_MEDIA_DUPLEX_STATE,
    pub XmitLinkSpeed: u64,
    pub RcvLinkSpeed: u64,
    pub MiniportMediaType: NDIS_MEDIUM,
    pub MiniportPhysicalMediaType: NDIS_PHYSICAL_MEDIUM,
    pub MiniportMediaSpecificAttributes: NDIS_HANDLE,
    /// `PNDIS_OFFLOAD`.
    pub DefaultOffloadConfiguration: *mut super::oid::NDIS_OFFLOAD,
    pub MacAddressLength: u16,
    pub CurrentMacAddress: [u8; NDIS_MAX_PHYS_ADDRESS_LENGTH],
    pub BaseMiniportNetLuid: NET_LUID,
    pub LowerIfIndex: NET_IFINDEX,
    pub LowerIfNetLuid: NET_LUID,
    pub Flags: u32,
    // NDIS 6.1
    pub HDSplitCurrentConfig: *mut c_void,
    // NDIS 6.20
    pub ReceiveFilterCapabilities: *mut c_void,
    pub MiniportPhysicalDeviceObject: *mut DEVICE_OBJECT,
    pub NicSwitchCapabilities: *mut c_void,
    // NDIS 6.30
    pub BaseMiniportIfConnectorPresent: u8,
    pub SriovCapabilities: *mut c_void,
    pub NicSwitchArray: *mut c_void,
}
const _: () = assert!(core::mem::size_of::<NDIS_FILTER_ATTACH_PARAMETERS>() == 224);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, IfIndex) == 4);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, NetLuid) == 8);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, FilterModuleGuidName) == 16);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, BaseMiniportIfIndex) == 24);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, BaseMiniportInstanceName) == 32);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, BaseMiniportName) == 40);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, MediaConnectState) == 48);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, MediaDuplexState) == 52);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, XmitLinkSpeed) == 56);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, RcvLinkSpeed) == 64);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, MiniportMediaType) == 72);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, MiniportPhysicalMediaType) == 76);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, MiniportMediaSpecificAttributes) == 80);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, DefaultOffloadConfiguration) == 88);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, MacAddressLength) == 96);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, CurrentMacAddress) == 98);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, BaseMiniportNetLuid) == 136);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, LowerIfIndex) == 144);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, LowerIfNetLuid) == 152);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, Flags) == 160);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, HDSplitCurrentConfig) == 168);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, ReceiveFilterCapabilities) == 176);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, MiniportPhysicalDeviceObject) == 184);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, NicSwitchCapabilities) == 192);
const _: () =
    assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, BaseMiniportIfConnectorPresent) == 200);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, SriovCapabilities) == 208);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, NicSwitchArray) == 216);
/// `NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_1..4`.
pub const NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_1: usize = 164;
pub const NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_2: usize = 176;
pub const NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_3: usize = 200;
pub const NDIS_SIZEOF_FILTER_ATTACH_PARAMETERS_REVISION_4: usize = 224;

/// `NDIS_RESTART_ATTRIBUTES`: a linked list of (OID, data) entries; `Data` (16-byte aligned)
/// starts at offset 16.
#[repr(C, align(16))]
#[derive(Debug)]
pub struct NDIS_RESTART_ATTRIBUTES {
    pub Next: *mut NDIS_RESTART_ATTRIBUTES,
    pub Oid: NDIS_OID,
    pub DataLength: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_RESTART_ATTRIBUTES>() == 16);
const _: () = assert!(core::mem::offset_of!(NDIS_RESTART_ATTRIBUTES, Oid) == 8);
const _: () = assert!(core::mem::offset_of!(NDIS_RESTART_ATTRIBUTES, DataLength) == 12);

pub const NDIS_FILTER_RESTART_PARAMETERS_REVISION_1: u8 = 1;

/// `NDIS_FILTER_RESTART_PARAMETERS` (x64: 48 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_FILTER_RESTART_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub MiniportMediaType: NDIS_MEDIUM,
    pub MiniportPhysicalMediaType: NDIS_PHYSICAL_MEDIUM,
    pub RestartAttributes: *mut NDIS_RESTART_ATTRIBUTES,
    pub LowerIfIndex: NET_IFINDEX,
    pub LowerIfNetLuid: NET_LUID,
    pub Flags: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_FILTER_RESTART_PARAMETERS>() == 48);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_RESTART_PARAMETERS, MiniportMediaType) == 4);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_RESTART_PARAMETERS, MiniportPhysicalMediaType) == 8);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_RESTART_PARAMETERS, RestartAttributes) == 16);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_RESTART_PARAMETERS, LowerIfIndex) == 24);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_RESTART_PARAMETERS, LowerIfNetLuid) == 32);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_RESTART_PARAMETERS, Flags) == 40);

pub const NDIS_FILTER_PAUSE_PARAMETERS_REVISION_1: u8 = 1;
/// `NDIS_PAUSE_*` reasons (`NDIS_FILTER_PAUSE_PARAMETERS.PauseReason`).
pub const NDIS_PAUSE_NDIS_INTERNAL: u32 = 0x0000_0001;
pub const NDIS_PAUSE_LOW_POWER: u32 = 0x0000_0002;
pub const NDIS_PAUSE_BIND_PROTOCOL: u32 = 0x0000_0004;
pub const NDIS_PAUSE_UNBIND_PROTOCOL: u32 = 0x0000_0008;
pub const NDIS_PAUSE_ATTACH_FILTER: u32 = 0x0000_0010;
pub const NDIS_PAUSE_DETACH_FILTER: u32 = 0x0000_0020;
pub const NDIS_PAUSE_FILTER_RESTART_STACK: u32 = 0x0000_0040;
pub const NDIS_PAUSE_MINIPORT_DEVICE_REMOVE: u32 = 0x0000_0080;

/// `NDIS_FILTER_PAUSE_PARAMETERS` (12 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_FILTER_PAUSE_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    pub PauseReason: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_FILTER_PAUSE_PARAMETERS>() == 12);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_PAUSE_PARAMETERS, Flags) == 4);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_PAUSE_PARAMETERS, PauseReason) == 8);

pub const NDIS_FILTER_ATTRIBUTES_REVISION_1: u8 = 1;

/// `NDIS_FILTER_ATTRIBUTES` (8 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_FILTER_ATTRIBUTES {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
}
const _: () = assert!(core::mem::size_of::<NDIS_FILTER_ATTRIBUTES>() == 8);
const _: () = assert!(core::mem::offset_of!(NDIS_FILTER_ATTRIBUTES, Flags) == 4);

// ---------------------------------------------------------------------------------------------
// ndis.sys imports
// ---------------------------------------------------------------------------------------------

#[cfg_attr(target_os = "windows", link(name = "ndis.sys", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// `NdisFRegisterFilterDriver`. PASSIVE_LEVEL (from `DriverEntry`).
    pub fn NdisFRegisterFilterDriver(
        driver_object: *mut DRIVER_OBJECT,
        filter_driver_context: NDIS_HANDLE,
        filter_driver_characteristics: *mut NDIS_FILTER_DRIVER_CHARACTERISTICS,
        ndis_filter_driver_handle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    /// `NdisFDeregisterFilterDriver`. PASSIVE_LEVEL (from `DriverUnload`); returns after every
    /// module detached.
    pub fn NdisFDeregisterFilterDriver(ndis_filter_driver_handle: NDIS_HANDLE);
    /// `NdisFSetAttributes`. PASSIVE_LEVEL, only from `FilterAttach`.
    pub fn NdisFSetAttributes(
        ndis_filter_handle: NDIS_HANDLE,
        filter_module_context: NDIS_HANDLE,
        filter_attributes: *mut NDIS_FILTER_ATTRIBUTES,
    ) -> NDIS_STATUS;
    /// `NdisFRestartFilter`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisFRestartFilter(ndis_filter_handle: NDIS_HANDLE) -> NDIS_STATUS;
    /// `NdisFSendNetBufferLists`. IRQL <= DISPATCH_LEVEL (pass `NDIS_SEND_FLAGS_DISPATCH_LEVEL` iff
    /// at DISPATCH_LEVEL). Ownership of the NBLs passes down until send-complete.
    pub fn NdisFSendNetBufferLists(
        ndis_filter_handle: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        port_number: NDIS_PORT_NUMBER,
        send_flags: u32,
    );
    /// `NdisFReturnNetBufferLists`. IRQL <= DISPATCH_LEVEL. Returns received NBLs to the miniport
    /// (never ones indicated with `NDIS_RECEIVE_FLAGS_RESOURCES`, never the filter's own).
    pub fn NdisFReturnNetBufferLists(
        ndis_filter_handle: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        return_flags: u32,
    );
    /// `NdisFSendNetBufferListsComplete`. IRQL <= DISPATCH_LEVEL. Completes sends to the protocol
    /// (never the filter's own NBLs).
    pub fn NdisFSendNetBufferListsComplete(
        ndis_filter_handle: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        send_complete_flags: u32,
    );
    /// `NdisFIndicateReceiveNetBufferLists`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisFIndicateReceiveNetBufferLists(
        ndis_filter_handle: NDIS_HANDLE,
        net_buffer_lists: *mut NET_BUFFER_LIST,
        port_number: NDIS_PORT_NUMBER,
        number_of_net_buffer_lists: u32,
        receive_flags: u32,
    );
    /// `NdisFOidRequest`. IRQL <= DISPATCH_LEVEL. Issue a clone (or the filter's own request),
    /// never the request received from above.
    pub fn NdisFOidRequest(
        ndis_filter_handle: NDIS_HANDLE,
        oid_request: *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS;
    /// `NdisFOidRequestComplete`. IRQL <= DISPATCH_LEVEL. Completes a request the filter pended;
    /// `status` is never `NDIS_STATUS_PENDING`.
    pub fn NdisFOidRequestComplete(
        ndis_filter_handle: NDIS_HANDLE,
        oid_request: *mut NDIS_OID_REQUEST,
        status: NDIS_STATUS,
    );
    /// `NdisFIndicateStatus`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisFIndicateStatus(
        ndis_filter_handle: NDIS_HANDLE,
        status_indication: *mut NDIS_STATUS_INDICATION,
    );
    /// `NdisFRestartComplete`. PASSIVE_LEVEL (per header: `_IRQL_requires_max_(PASSIVE_LEVEL)`).
    pub fn NdisFRestartComplete(ndis_filter_handle: NDIS_HANDLE, status: NDIS_STATUS);
    /// `NdisFPauseComplete`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisFPauseComplete(ndis_filter_handle: NDIS_HANDLE);
    /// `NdisFDevicePnPEventNotify`. PASSIVE_LEVEL.
    pub fn NdisFDevicePnPEventNotify(
        ndis_filter_handle: NDIS_HANDLE,
        net_device_pnp_event: *mut NET_DEVICE_PNP_EVENT,
    );
    /// `NdisFNetPnPEvent`. PASSIVE_LEVEL.
    pub fn NdisFNetPnPEvent(
        ndis_filter_handle: NDIS_HANDLE,
        net_pnp_event_notification: *mut NET_PNP_EVENT_NOTIFICATION,
    ) -> NDIS_STATUS;
    /// `NdisFCancelSendNetBufferLists`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisFCancelSendNetBufferLists(ndis_filter_handle: NDIS_HANDLE, cancel_id: *mut c_void);
    /// `NdisFCancelOidRequest`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisFCancelOidRequest(ndis_filter_handle: NDIS_HANDLE, request_id: *mut c_void);
    /// `NdisFDirectOidRequest` (NDIS 6.1). IRQL <= DISPATCH_LEVEL.
    pub fn NdisFDirectOidRequest(
        ndis_filter_handle: NDIS_HANDLE,
        oid_request: *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS;
    /// `NdisFDirectOidRequestComplete` (NDIS 6.1). IRQL <= DISPATCH_LEVEL.
    pub fn NdisFDirectOidRequestComplete(
        ndis_filter_handle: NDIS_HANDLE,
        oid_request: *mut NDIS_OID_REQUEST,
        status: NDIS_STATUS,
    );
    /// `NdisSetOptionalHandlers`. PASSIVE_LEVEL (from `FilterSetModuleOptions`).
    pub fn NdisSetOptionalHandlers(
        ndis_handle: NDIS_HANDLE,
        optional_handlers: *mut NDIS_OBJECT_HEADER,
    ) -> NDIS_STATUS;
}
