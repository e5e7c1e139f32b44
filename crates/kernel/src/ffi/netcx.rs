//! NetAdapterCx 2.x: the packet and fragment rings, their extensions, the adapter and queue
//! configuration structures and the class function-table indices (`NetFunctions`).
//!
//! Sources (facts only, own code): the published WDK headers copied in microsoft/xdp-for-windows
//! (commit 20d5106) under `published/wdkdeps/km/netcx/kmdf/adapter/2.2/` (`netfuncenum.h`,
//! `netadapter.h`, `netrxqueue.h`, `nettxqueue.h`, `netpacketqueue.h`, `netadapterpacket.h`,
//! `netadaptercxtypes.h`, `netdevice.h`) and `published/wdkdeps/shared/netcx/shared/1.0/net/`
//! (`ring.h`, `ringcollection.h`, `packet.h`, `fragment.h`, `extension.h`,
//! `returncontexttypes.h`, `virtualaddresstypes.h`, `mdltypes.h`); the class binding protocol from
//! microsoft/Network-Adapter-Class-Extension `netcx/adapter/version.cpp` (`NetAdapterCxBindClient`:
//! it copies `FunctionTableCount` entries into the array `WDF_CLASS_BIND_INFO.FunctionTable` points
//! at, and stores the `NET_DRIVER_GLOBALS*` through `ClassBindInfo`).
//!
//! Layouts are Windows x64 (ARM64 identical). C bit-fields are kept as their storage unit with
//! accessor methods (MSVC packs them from the least significant bit of the unit).
use core::ffi::c_void;

use super::mdl::MDL;
use super::ntos::{BOOLEAN, NTSTATUS};
use super::wdf::{PWDFDEVICE_INIT, WDFDEVICE, WDF_OBJECT_ATTRIBUTES};

// ---------------------------------------------------------------------------------------------
// Handles and globals (netadaptercxtypes.h)
// ---------------------------------------------------------------------------------------------

/// `NETADAPTER`: opaque handle.
pub type NETADAPTER = *mut c_void;
/// `NETPACKETQUEUE`: opaque handle.
pub type NETPACKETQUEUE = *mut c_void;
/// `NETEXECUTIONCONTEXT`: opaque handle.
pub type NETEXECUTIONCONTEXT = *mut c_void;
/// `NETADAPTER_INIT*`: opaque.
pub type PNETADAPTER_INIT = *mut c_void;
/// `NETTXQUEUE_INIT*`: opaque.
pub type PNETTXQUEUE_INIT = *mut c_void;
/// `NETRXQUEUE_INIT*`: opaque.
pub type PNETRXQUEUE_INIT = *mut c_void;
/// `NET_FRAGMENT_RETURN_CONTEXT_HANDLE`: opaque, chosen by the driver.
pub type NET_FRAGMENT_RETURN_CONTEXT_HANDLE = *mut c_void;

/// `NET_DRIVER_GLOBALS`: the public part of the class extension's per-client globals.
#[repr(C)]
#[derive(Debug)]
pub struct NET_DRIVER_GLOBALS {
    pub Unused: u32,
}
const _: () = assert!(core::mem::size_of::<NET_DRIVER_GLOBALS>() == 4);

/// `NETFUNC`: an untyped class DDI entry.
pub type NETFUNC = Option<unsafe extern "system" fn()>;

/// The class name the WDK's NetAdapterCx stub binds: `L"NetAdapterCx"` (NUL-terminated).
pub const NETADAPTERCX_CLASS_NAME: [u16; 13] = [
    b'N' as u16,
    b'e' as u16,
    b't' as u16,
    b'A' as u16,
    b'd' as u16,
    b'a' as u16,
    b'p' as u16,
    b't' as u16,
    b'e' as u16,
    b'r' as u16,
    b'C' as u16,
    b'x' as u16,
    0,
];
/// The class version the project targets: NetAdapterCx 2.2 (build 0 = stable).
pub const NETCX_ADAPTER_MAJOR_VERSION: u32 = 2;
pub const NETCX_ADAPTER_MINOR_VERSION: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Rings (net/ring.h, net/ringcollection.h)
// ---------------------------------------------------------------------------------------------

/// `SYSTEM_CACHE_ALIGNMENT_SIZE` on x64/ARM64: `NET_RING.Buffer` starts here.
pub const NET_RING_BUFFER_OFFSET: usize = 64;

/// `NET_RING` header (cache aligned); the elements follow at [`NET_RING_BUFFER_OFFSET`]. The
/// client may write only `BeginIndex`, `NextIndex` and `Scratch`.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct NET_RING {
    pub OSReserved1: u16,
    pub ElementStride: u16,
    pub NumberOfElements: u32,
    pub ElementIndexMask: u32,
    pub EndIndex: u32,
    /// union { `UINT32 OSReserved0`; `void* OSReserved2[4]` }.
    pub OSReserved2: [*mut c_void; 4],
    pub BeginIndex: u32,
    pub NextIndex: u32,
    pub Scratch: *mut c_void,
}
const _: () = assert!(core::mem::size_of::<NET_RING>() == NET_RING_BUFFER_OFFSET);
const _: () = assert!(core::mem::offset_of!(NET_RING, ElementStride) == 2);
const _: () = assert!(core::mem::offset_of!(NET_RING, NumberOfElements) == 4);
const _: () = assert!(core::mem::offset_of!(NET_RING, ElementIndexMask) == 8);
const _: () = assert!(core::mem::offset_of!(NET_RING, EndIndex) == 12);
const _: () = assert!(core::mem::offset_of!(NET_RING, OSReserved2) == 16);
const _: () = assert!(core::mem::offset_of!(NET_RING, BeginIndex) == 48);
const _: () = assert!(core::mem::offset_of!(NET_RING, NextIndex) == 52);
const _: () = assert!(core::mem::offset_of!(NET_RING, Scratch) == 56);

/// `NetRingAdvanceIndex`.
#[inline]
pub fn NetRingAdvanceIndex(ring: &NET_RING, index: u32, distance: i32) -> u32 {
    index.wrapping_add_signed(distance) & ring.ElementIndexMask
}
/// `NetRingIncrementIndex`.
#[inline]
pub fn NetRingIncrementIndex(ring: &NET_RING, index: u32) -> u32 {
    NetRingAdvanceIndex(ring, index, 1)
}
/// `NetRingGetRangeCount`: elements in `[start, end)`.
#[inline]
pub fn NetRingGetRangeCount(ring: &NET_RING, start: u32, end: u32) -> u32 {
    end.wrapping_sub(start) & ring.ElementIndexMask
}

/// `NetRingGetElementAtIndex` (`Buffer + Index * ElementStride`).
///
/// # Safety
/// `ring` must point to a ring whose element array holds `NumberOfElements` elements and
/// `index < NumberOfElements`.
#[inline]
pub unsafe fn NetRingGetElementAtIndex(ring: *const NET_RING, index: u32) -> *mut u8 {
    // SAFETY: the caller guarantees `ring` is valid.
    let stride = usize::from(unsafe { (*ring).ElementStride });
    ring.cast::<u8>().cast_mut().wrapping_add(NET_RING_BUFFER_OFFSET + index as usize * stride)
}

/// `NET_RING_TYPE`.
pub const NetRingTypePacket: usize = 0;
pub const NetRingTypeFragment: usize = 1;
pub const NetRingTypeDataBuffer: usize = 2;

/// `NET_RING_COLLECTION`.
#[repr(C)]
#[derive(Debug)]
pub struct NET_RING_COLLECTION {
    pub Rings: [*mut NET_RING; 3],
}
const _: () = assert!(core::mem::size_of::<NET_RING_COLLECTION>() == 24);

// ---------------------------------------------------------------------------------------------
// Packets and fragments (net/packet.h, net/fragment.h)
// ---------------------------------------------------------------------------------------------

/// `NET_PACKET_LAYER2_TYPE`.
pub const NetPacketLayer2TypeUnspecified: u8 = 0;
pub const NetPacketLayer2TypeNull: u8 = 1;
pub const NetPacketLayer2TypeEthernet: u8 = 2;
pub const NetPacketLayer2TypeIeee80211: u8 = 3;
/// `NET_PACKET_LAYER3_TYPE`.
pub const NetPacketLayer3TypeUnspecified: u8 = 0;
pub const NetPacketLayer3TypeIPv4UnspecifiedOptions: u8 = 1;
pub const NetPacketLayer3TypeIPv4WithOptions: u8 = 2;
pub const NetPacketLayer3TypeIPv4NoOptions: u8 = 3;
pub const NetPacketLayer3TypeIPv6UnspecifiedExtensions: u8 = 4;
pub const NetPacketLayer3TypeIPv6WithExtensions: u8 = 5;
pub const NetPacketLayer3TypeIPv6NoExtensions: u8 = 6;
/// `NET_PACKET_LAYER4_TYPE`.
pub const NetPacketLayer4TypeUnspecified: u8 = 0;
pub const NetPacketLayer4TypeTcp: u8 = 1;
pub const NetPacketLayer4TypeUdp: u8 = 2;
pub const NetPacketLayer4TypeIPFragment: u8 = 3;
pub const NetPacketLayer4TypeIPNotFragment: u8 = 4;

/// `NET_PACKET_LAYOUT` (packed, 5 bytes): `UINT16 Layer2HeaderLength:7, Layer3HeaderLength:9;
/// UINT8 Layer4HeaderLength; UINT8 Layer2Type:4, Layer3Type:4; UINT8 Layer4Type:4, Reserved0:4`.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NET_PACKET_LAYOUT {
    pub Bits: [u8; 5],
}
const _: () = assert!(core::mem::size_of::<NET_PACKET_LAYOUT>() == 5);

impl NET_PACKET_LAYOUT {
    fn l23(self) -> u16 {
        u16::from_le_bytes([self.Bits[0], self.Bits[1]])
    }
    pub fn layer2_header_length(self) -> u16 {
        self.l23() & 0x7f
    }
    pub fn layer3_header_length(self) -> u16 {
        self.l23() >> 7
    }
    pub fn layer4_header_length(self) -> u8 {
        self.Bits[2]
    }
    pub fn layer2_type(self) -> u8 {
        self.Bits[3] & 0xf
    }
    pub fn layer3_type(self) -> u8 {
        self.Bits[3] >> 4
    }
    pub fn layer4_type(self) -> u8 {
        self.Bits[4] & 0xf
    }
    pub fn reserved0(self) -> u8 {
        self.Bits[4] >> 4
    }
    /// Builds a layout from its fields (each masked to its width; Reserved0 zero).
    #[allow(clippy::cast_possible_truncation)]
    pub fn new(l2_len: u16, l3_len: u16, l4_len: u8, l2: u8, l3: u8, l4: u8) -> Self {
        let l23 = (l2_len & 0x7f) | ((l3_len & 0x1ff) << 7);
        let [a, b] = l23.to_le_bytes();
        Self { Bits: [a, b, l4_len, (l2 & 0xf) | ((l3 & 0xf) << 4), l4 & 0xf] }
    }
}

/// `NET_PACKET` (12 bytes). The last byte holds `Ignore:1, Scratch:1, Reserved1:6`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NET_PACKET {
    pub FragmentIndex: u32,
    pub FragmentCount: u16,
    pub Layout: NET_PACKET_LAYOUT,
    pub Flags: u8,
}
const _: () = assert!(core::mem::size_of::<NET_PACKET>() == 12);
const _: () = assert!(core::mem::offset_of!(NET_PACKET, FragmentCount) == 4);
const _: () = assert!(core::mem::offset_of!(NET_PACKET, Layout) == 6);
const _: () = assert!(core::mem::offset_of!(NET_PACKET, Flags) == 11);

/// `NET_PACKET.Ignore` bit of [`NET_PACKET::Flags`].
pub const NET_PACKET_IGNORE: u8 = 0x01;
/// `NET_PACKET.Scratch` bit of [`NET_PACKET::Flags`].
pub const NET_PACKET_SCRATCH: u8 = 0x02;

impl NET_PACKET {
    pub fn ignore(&self) -> bool {
        self.Flags & NET_PACKET_IGNORE != 0
    }
    pub fn set_ignore(&mut self, on: bool) {
        self.Flags = if on { self.Flags | NET_PACKET_IGNORE } else { self.Flags & !NET_PACKET_IGNORE };
    }
    pub fn scratch(&self) -> bool {
        self.Flags & NET_PACKET_SCRATCH != 0
    }
    pub fn set_scratch(&mut self, on: bool) {
        self.Flags = if on { self.Flags | NET_PACKET_SCRATCH } else { self.Flags & !NET_PACKET_SCRATCH };
    }
    pub fn reserved1(&self) -> u8 {
        self.Flags >> 2
    }
}

/// `NET_FRAGMENT` (8 bytes): `UINT64 ValidLength:26, Capacity:26, Offset:10, Scratch:1,
/// OsReserved_Bounced:1`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NET_FRAGMENT {
    pub Bits: u64,
}
const _: () = assert!(core::mem::size_of::<NET_FRAGMENT>() == 8);

/// Largest `ValidLength`/`Capacity` (26 bits) and `Offset` (10 bits).
pub const NET_FRAGMENT_MAX_LENGTH: u64 = (1 << 26) - 1;
pub const NET_FRAGMENT_MAX_OFFSET: u64 = (1 << 10) - 1;

impl NET_FRAGMENT {
    fn field(self, shift: u32, width: u32) -> u64 {
        (self.Bits >> shift) & ((1 << width) - 1)
    }
    fn set(&mut self, shift: u32, width: u32, value: u64) {
        let mask = ((1u64 << width) - 1) << shift;
        self.Bits = (self.Bits & !mask) | ((value << shift) & mask);
    }
    pub fn valid_length(self) -> u64 {
        self.field(0, 26)
    }
    pub fn set_valid_length(&mut self, v: u64) {
        self.set(0, 26, v);
    }
    pub fn capacity(self) -> u64 {
        self.field(26, 26)
    }
    pub fn set_capacity(&mut self, v: u64) {
        self.set(26, 26, v);
    }
    pub fn offset(self) -> u64 {
        self.field(52, 10)
    }
    pub fn set_offset(&mut self, v: u64) {
        self.set(52, 10, v);
    }
    pub fn scratch(self) -> bool {
        self.field(62, 1) != 0
    }
    pub fn set_scratch(&mut self, on: bool) {
        self.set(62, 1, u64::from(on));
    }
    pub fn bounced(self) -> bool {
        self.field(63, 1) != 0
    }
    pub fn set_bounced(&mut self, on: bool) {
        self.set(63, 1, u64::from(on));
    }
}

// ---------------------------------------------------------------------------------------------
// Extensions (net/extension.h, netadapterpacket.h, the fragment extension headers)
// ---------------------------------------------------------------------------------------------

/// `NET_EXTENSION_TYPE`.
pub type NET_EXTENSION_TYPE = i32;
pub const NetExtensionTypePacket: NET_EXTENSION_TYPE = 1;
pub const NetExtensionTypeFragment: NET_EXTENSION_TYPE = 2;
pub const NetExtensionTypeBuffer: NET_EXTENSION_TYPE = 3;

/// `NET_EXTENSION` (40 bytes): `Reserved[0]` is the base of the extension's storage,
/// `Reserved[1]` its stride (`NetExtensionGetData`); `Enabled` overlays the last pointer.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_EXTENSION {
    pub Reserved: [*mut c_void; 4],
    /// union { `BOOLEAN Enabled`; `void* Reserved1` }: nonzero low byte = enabled.
    pub Enabled: *mut c_void,
}
const _: () = assert!(core::mem::size_of::<NET_EXTENSION>() == 40);
const _: () = assert!(core::mem::offset_of!(NET_EXTENSION, Enabled) == 32);

impl NET_EXTENSION {
    /// An extension not (yet) queried.
    pub const fn empty() -> Self {
        Self { Reserved: [core::ptr::null_mut(); 4], Enabled: core::ptr::null_mut() }
    }
    /// Whether the query found the extension (`Enabled`).
    pub fn enabled(&self) -> bool {
        (self.Enabled as usize) & 0xff != 0
    }
    /// `NetExtensionGetData`: the element for `index` (`Reserved[0] + Reserved[1] * index`).
    pub fn data(&self, index: u32) -> *mut u8 {
        self.Reserved[0].cast::<u8>().wrapping_add(self.Reserved[1] as usize * index as usize)
    }
}

/// `NET_EXTENSION_QUERY` (24 bytes). `NET_EXTENSION_QUERY_INIT` sets `Size`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_EXTENSION_QUERY {
    pub Size: u32,
    /// `PCWSTR`: NUL-terminated extension name.
    pub Name: *const u16,
    pub Version: u32,
    pub Type: NET_EXTENSION_TYPE,
}
const _: () = assert!(core::mem::size_of::<NET_EXTENSION_QUERY>() == 24);
const _: () = assert!(core::mem::offset_of!(NET_EXTENSION_QUERY, Name) == 8);
const _: () = assert!(core::mem::offset_of!(NET_EXTENSION_QUERY, Version) == 16);
const _: () = assert!(core::mem::offset_of!(NET_EXTENSION_QUERY, Type) == 20);

impl NET_EXTENSION_QUERY {
    /// `NET_EXTENSION_QUERY_INIT`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init(name: *const u16, version: u32, ty: NET_EXTENSION_TYPE) -> Self {
        Self { Size: core::mem::size_of::<Self>() as u32, Name: name, Version: version, Type: ty }
    }
}

const fn wide<const N: usize>(s: &[u8]) -> [u16; N] {
    let mut out = [0u16; N];
    let mut i = 0;
    while i < s.len() {
        out[i] = s[i] as u16;
        i += 1;
    }
    out
}

/// `NET_FRAGMENT_EXTENSION_RETURN_CONTEXT_NAME` (`L"ms_fragment_returncontext"`), version 1.
pub const NET_FRAGMENT_EXTENSION_RETURN_CONTEXT_NAME: [u16; 26] = wide(b"ms_fragment_returncontext");
pub const NET_FRAGMENT_EXTENSION_RETURN_CONTEXT_VERSION_1: u32 = 1;
/// `NET_FRAGMENT_EXTENSION_VIRTUAL_ADDRESS_NAME` (`L"ms_fragment_virtualaddress"`), version 1.
pub const NET_FRAGMENT_EXTENSION_VIRTUAL_ADDRESS_NAME: [u16; 27] = wide(b"ms_fragment_virtualaddress");
pub const NET_FRAGMENT_EXTENSION_VIRTUAL_ADDRESS_VERSION_1: u32 = 1;
/// `NET_FRAGMENT_EXTENSION_MDL_NAME` (`L"ms_fragment_mdl"`), version 1.
pub const NET_FRAGMENT_EXTENSION_MDL_NAME: [u16; 16] = wide(b"ms_fragment_mdl");
pub const NET_FRAGMENT_EXTENSION_MDL_VERSION_1: u32 = 1;

/// `NET_FRAGMENT_RETURN_CONTEXT`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_FRAGMENT_RETURN_CONTEXT {
    pub Handle: NET_FRAGMENT_RETURN_CONTEXT_HANDLE,
}
const _: () = assert!(core::mem::size_of::<NET_FRAGMENT_RETURN_CONTEXT>() == 8);
/// `NET_FRAGMENT_VIRTUAL_ADDRESS`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_FRAGMENT_VIRTUAL_ADDRESS {
    pub VirtualAddress: *mut c_void,
}
const _: () = assert!(core::mem::size_of::<NET_FRAGMENT_VIRTUAL_ADDRESS>() == 8);
/// `NET_FRAGMENT_MDL`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_FRAGMENT_MDL {
    pub Mdl: *mut MDL,
}
const _: () = assert!(core::mem::size_of::<NET_FRAGMENT_MDL>() == 8);

// ---------------------------------------------------------------------------------------------
// Adapter configuration (netadapter.h)
// ---------------------------------------------------------------------------------------------

/// `EVT_NET_ADAPTER_CREATE_TXQUEUE` / `_RXQUEUE`. PASSIVE_LEVEL.
pub type PFN_NET_ADAPTER_CREATE_TXQUEUE =
    Option<unsafe extern "system" fn(adapter: NETADAPTER, init: PNETTXQUEUE_INIT) -> NTSTATUS>;
pub type PFN_NET_ADAPTER_CREATE_RXQUEUE =
    Option<unsafe extern "system" fn(adapter: NETADAPTER, init: PNETRXQUEUE_INIT) -> NTSTATUS>;
/// `EVT_NET_ADAPTER_RETURN_RX_BUFFER`. PASSIVE_LEVEL..DISPATCH_LEVEL.
pub type PFN_NET_ADAPTER_RETURN_RX_BUFFER =
    Option<unsafe extern "system" fn(adapter: NETADAPTER, context: NET_FRAGMENT_RETURN_CONTEXT_HANDLE)>;

/// `NET_ADAPTER_DATAPATH_CALLBACKS` (24 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_DATAPATH_CALLBACKS {
    pub Size: u32,
    pub EvtAdapterCreateTxQueue: PFN_NET_ADAPTER_CREATE_TXQUEUE,
    pub EvtAdapterCreateRxQueue: PFN_NET_ADAPTER_CREATE_RXQUEUE,
}
const _: () = assert!(core::mem::size_of::<NET_ADAPTER_DATAPATH_CALLBACKS>() == 24);

impl NET_ADAPTER_DATAPATH_CALLBACKS {
    /// `NET_ADAPTER_DATAPATH_CALLBACKS_INIT`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init(tx: PFN_NET_ADAPTER_CREATE_TXQUEUE, rx: PFN_NET_ADAPTER_CREATE_RXQUEUE) -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            EvtAdapterCreateTxQueue: tx,
            EvtAdapterCreateRxQueue: rx,
        }
    }
}

/// `NET_ADAPTER_LINK_LAYER_CAPABILITIES` (24 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_LINK_LAYER_CAPABILITIES {
    pub Size: u32,
    pub MaxTxLinkSpeed: u64,
    pub MaxRxLinkSpeed: u64,
}
const _: () = assert!(core::mem::size_of::<NET_ADAPTER_LINK_LAYER_CAPABILITIES>() == 24);

impl NET_ADAPTER_LINK_LAYER_CAPABILITIES {
    /// `NET_ADAPTER_LINK_LAYER_CAPABILITIES_INIT`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init(tx: u64, rx: u64) -> Self {
        Self { Size: core::mem::size_of::<Self>() as u32, MaxTxLinkSpeed: tx, MaxRxLinkSpeed: rx }
    }
}

/// `NET_IF_MEDIA_CONNECT_STATE` / `NET_IF_MEDIA_DUPLEX_STATE` (ifdef.h).
pub const MediaConnectStateUnknown: i32 = 0;
pub const MediaConnectStateConnected: i32 = 1;
pub const MediaConnectStateDisconnected: i32 = 2;
pub const MediaDuplexStateUnknown: i32 = 0;
pub const MediaDuplexStateHalf: i32 = 1;
pub const MediaDuplexStateFull: i32 = 2;
/// `NET_ADAPTER_LINK_SPEED_UNKNOWN`.
pub const NET_ADAPTER_LINK_SPEED_UNKNOWN: u64 = u64::MAX;

/// `NET_ADAPTER_LINK_STATE` (40 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_LINK_STATE {
    pub Size: u32,
    pub TxLinkSpeed: u64,
    pub RxLinkSpeed: u64,
    pub MediaConnectState: i32,
    pub MediaDuplexState: i32,
    pub SupportedPauseFunctions: i32,
    pub AutoNegotiationFlags: i32,
}
const _: () = assert!(core::mem::size_of::<NET_ADAPTER_LINK_STATE>() == 40);
const _: () = assert!(core::mem::offset_of!(NET_ADAPTER_LINK_STATE, MediaConnectState) == 24);

impl NET_ADAPTER_LINK_STATE {
    /// `NET_ADAPTER_LINK_STATE_INIT` (no pause functions, no auto-negotiation).
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init(speed: u64, connect: i32, duplex: i32) -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            TxLinkSpeed: speed,
            RxLinkSpeed: speed,
            MediaConnectState: connect,
            MediaDuplexState: duplex,
            SupportedPauseFunctions: 0,
            AutoNegotiationFlags: 0,
        }
    }
    /// `NET_ADAPTER_LINK_STATE_INIT_DISCONNECTED`.
    pub const fn disconnected() -> Self {
        Self::init(NET_ADAPTER_LINK_SPEED_UNKNOWN, MediaConnectStateDisconnected, MediaDuplexStateUnknown)
    }
}

/// `NET_MEMORY_MAPPING_REQUIREMENT`.
pub const NetMemoryMappingRequirementNone: i32 = 0;
pub const NetMemoryMappingRequirementDmaMapped: i32 = 1;
/// `NET_RX_FRAGMENT_BUFFER_ALLOCATION_MODE`.
pub const NetRxFragmentBufferAllocationModeSystem: i32 = 0;
pub const NetRxFragmentBufferAllocationModeDriver: i32 = 1;
/// `NET_RX_FRAGMENT_BUFFER_ATTACHMENT_MODE`.
pub const NetRxFragmentBufferAttachmentModeSystem: i32 = 0;
pub const NetRxFragmentBufferAttachmentModeDriver: i32 = 1;
/// `NET_ADAPTER_FRAGMENT_DEFAULT_ALIGNMENT`.
pub const NET_ADAPTER_FRAGMENT_DEFAULT_ALIGNMENT: usize = 1;

/// The anonymous union at offset 32 of `NET_ADAPTER_RX_CAPABILITIES`: the return callback (driver
/// allocation) overlays `MappingRequirement` (system allocation).
#[repr(C)]
#[derive(Clone, Copy)]
pub union NET_ADAPTER_RX_CAPABILITIES_0 {
    pub EvtAdapterReturnRxBuffer: PFN_NET_ADAPTER_RETURN_RX_BUFFER,
    pub MappingRequirement: i32,
}
union_debug!(NET_ADAPTER_RX_CAPABILITIES_0);

/// `NET_ADAPTER_RX_CAPABILITIES` (56 bytes). `FragmentBufferAlignment` and `DmaCapabilities`
/// belong to the system-allocation arm of the header's union; they are laid out flat here.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_RX_CAPABILITIES {
    pub Size: u32,
    pub AllocationMode: i32,
    pub AttachmentMode: i32,
    pub FragmentRingNumberOfElementsHint: u32,
    pub MaximumFrameSize: usize,
    pub MaximumNumberOfQueues: usize,
    pub u: NET_ADAPTER_RX_CAPABILITIES_0,
    pub FragmentBufferAlignment: usize,
    pub DmaCapabilities: *mut c_void,
}
const _: () = assert!(core::mem::size_of::<NET_ADAPTER_RX_CAPABILITIES>() == 56);
const _: () = assert!(core::mem::offset_of!(NET_ADAPTER_RX_CAPABILITIES, MaximumFrameSize) == 16);
const _: () = assert!(core::mem::offset_of!(NET_ADAPTER_RX_CAPABILITIES, u) == 32);
const _: () = assert!(core::mem::offset_of!(NET_ADAPTER_RX_CAPABILITIES, FragmentBufferAlignment) == 40);
const _: () = assert!(core::mem::offset_of!(NET_ADAPTER_RX_CAPABILITIES, DmaCapabilities) == 48);

impl NET_ADAPTER_RX_CAPABILITIES {
    /// `NET_ADAPTER_RX_CAPABILITIES_INIT_DRIVER_MANAGED`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init_driver_managed(
        evt_return: PFN_NET_ADAPTER_RETURN_RX_BUFFER,
        maximum_frame_size: usize,
        maximum_queues: usize,
    ) -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            AllocationMode: NetRxFragmentBufferAllocationModeDriver,
            AttachmentMode: NetRxFragmentBufferAttachmentModeDriver,
            FragmentRingNumberOfElementsHint: 0,
            MaximumFrameSize: maximum_frame_size,
            MaximumNumberOfQueues: maximum_queues,
            u: NET_ADAPTER_RX_CAPABILITIES_0 { EvtAdapterReturnRxBuffer: evt_return },
            FragmentBufferAlignment: NET_ADAPTER_FRAGMENT_DEFAULT_ALIGNMENT,
            DmaCapabilities: core::ptr::null_mut(),
        }
    }
    /// `NET_ADAPTER_RX_CAPABILITIES_INIT_SYSTEM_MANAGED`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init_system_managed(maximum_frame_size: usize, maximum_queues: usize) -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            AllocationMode: NetRxFragmentBufferAllocationModeSystem,
            AttachmentMode: NetRxFragmentBufferAttachmentModeSystem,
            FragmentRingNumberOfElementsHint: 0,
            MaximumFrameSize: maximum_frame_size,
            MaximumNumberOfQueues: maximum_queues,
            u: NET_ADAPTER_RX_CAPABILITIES_0 { EvtAdapterReturnRxBuffer: None },
            FragmentBufferAlignment: NET_ADAPTER_FRAGMENT_DEFAULT_ALIGNMENT,
            DmaCapabilities: core::ptr::null_mut(),
        }
    }
    /// The return callback, when allocation is driver-managed.
    pub fn return_callback(&self) -> PFN_NET_ADAPTER_RETURN_RX_BUFFER {
        if self.AllocationMode == NetRxFragmentBufferAllocationModeDriver {
            // SAFETY: with driver allocation the union's active member is the callback (header
            // contract); both members are plain data, so reading either is defined.
            unsafe { self.u.EvtAdapterReturnRxBuffer }
        } else {
            None
        }
    }
}

/// `NET_ADAPTER_TX_CAPABILITIES` (56 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_TX_CAPABILITIES {
    pub Size: u32,
    pub MappingRequirement: i32,
    pub PayloadBackfill: usize,
    pub MaximumNumberOfFragments: usize,
    pub FragmentBufferAlignment: usize,
    pub FragmentRingNumberOfElementsHint: u32,
    pub MaximumNumberOfQueues: usize,
    pub DmaCapabilities: *mut c_void,
}
const _: () = assert!(core::mem::size_of::<NET_ADAPTER_TX_CAPABILITIES>() == 56);
const _: () = assert!(core::mem::offset_of!(NET_ADAPTER_TX_CAPABILITIES, PayloadBackfill) == 8);
const _: () =
    assert!(core::mem::offset_of!(NET_ADAPTER_TX_CAPABILITIES, FragmentRingNumberOfElementsHint) == 32);
const _: () = assert!(core::mem::offset_of!(NET_ADAPTER_TX_CAPABILITIES, MaximumNumberOfQueues) == 40);

impl NET_ADAPTER_TX_CAPABILITIES {
    /// `NET_ADAPTER_TX_CAPABILITIES_INIT`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init(maximum_queues: usize) -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            MappingRequirement: NetMemoryMappingRequirementNone,
            PayloadBackfill: 0,
            MaximumNumberOfFragments: usize::MAX,
            FragmentBufferAlignment: NET_ADAPTER_FRAGMENT_DEFAULT_ALIGNMENT,
            FragmentRingNumberOfElementsHint: 0,
            MaximumNumberOfQueues: maximum_queues,
            DmaCapabilities: core::ptr::null_mut(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Packet queues (netpacketqueue.h, nettxqueue.h, netrxqueue.h)
// ---------------------------------------------------------------------------------------------

/// `EVT_PACKET_QUEUE_START`/`_STOP`/`_CANCEL`: PASSIVE_LEVEL. `EVT_PACKET_QUEUE_ADVANCE`: up to
/// DISPATCH_LEVEL. `EVT_PACKET_QUEUE_SET_NOTIFICATION_ENABLED`: PASSIVE_LEVEL.
pub type PFN_PACKET_QUEUE_START = Option<unsafe extern "system" fn(queue: NETPACKETQUEUE)>;
pub type PFN_PACKET_QUEUE_STOP = Option<unsafe extern "system" fn(queue: NETPACKETQUEUE)>;
pub type PFN_PACKET_QUEUE_ADVANCE = Option<unsafe extern "system" fn(queue: NETPACKETQUEUE)>;
pub type PFN_PACKET_QUEUE_CANCEL = Option<unsafe extern "system" fn(queue: NETPACKETQUEUE)>;
pub type PFN_PACKET_QUEUE_SET_NOTIFICATION_ENABLED =
    Option<unsafe extern "system" fn(queue: NETPACKETQUEUE, enabled: BOOLEAN)>;

/// `NET_PACKET_QUEUE_CONFIG` (56 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_PACKET_QUEUE_CONFIG {
    pub Size: u32,
    pub EvtStart: PFN_PACKET_QUEUE_START,
    pub EvtStop: PFN_PACKET_QUEUE_STOP,
    pub EvtAdvance: PFN_PACKET_QUEUE_ADVANCE,
    pub EvtSetNotificationEnabled: PFN_PACKET_QUEUE_SET_NOTIFICATION_ENABLED,
    pub EvtCancel: PFN_PACKET_QUEUE_CANCEL,
    pub ExecutionContext: NETEXECUTIONCONTEXT,
}
const _: () = assert!(core::mem::size_of::<NET_PACKET_QUEUE_CONFIG>() == 56);
const _: () = assert!(core::mem::offset_of!(NET_PACKET_QUEUE_CONFIG, EvtAdvance) == 24);
const _: () = assert!(core::mem::offset_of!(NET_PACKET_QUEUE_CONFIG, EvtCancel) == 40);

impl NET_PACKET_QUEUE_CONFIG {
    /// `NET_PACKET_QUEUE_CONFIG_INIT`.
    #[allow(clippy::cast_possible_truncation)]
    pub const fn init(
        advance: PFN_PACKET_QUEUE_ADVANCE,
        set_notification_enabled: PFN_PACKET_QUEUE_SET_NOTIFICATION_ENABLED,
        cancel: PFN_PACKET_QUEUE_CANCEL,
    ) -> Self {
        Self {
            Size: core::mem::size_of::<Self>() as u32,
            EvtStart: None,
            EvtStop: None,
            EvtAdvance: advance,
            EvtSetNotificationEnabled: set_notification_enabled,
            EvtCancel: cancel,
            ExecutionContext: core::ptr::null_mut(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Class DDIs: prototypes and NetFunctions indices (netfuncenum.h, NetAdapterCx 2.2)
// ---------------------------------------------------------------------------------------------

pub type PFN_NETDEVICEINITCONFIG =
    unsafe extern "system" fn(globals: *mut NET_DRIVER_GLOBALS, device_init: PWDFDEVICE_INIT) -> NTSTATUS;
pub type PFN_NETADAPTERINITALLOCATE =
    unsafe extern "system" fn(globals: *mut NET_DRIVER_GLOBALS, device: WDFDEVICE) -> PNETADAPTER_INIT;
pub type PFN_NETADAPTERINITFREE =
    unsafe extern "system" fn(globals: *mut NET_DRIVER_GLOBALS, init: PNETADAPTER_INIT);
pub type PFN_NETADAPTERINITSETDATAPATHCALLBACKS = unsafe extern "system" fn(
    globals: *mut NET_DRIVER_GLOBALS,
    init: PNETADAPTER_INIT,
    callbacks: *mut NET_ADAPTER_DATAPATH_CALLBACKS,
);
pub type PFN_NETADAPTERCREATE = unsafe extern "system" fn(
    globals: *mut NET_DRIVER_GLOBALS,
    init: PNETADAPTER_INIT,
    attributes: *mut WDF_OBJECT_ATTRIBUTES,
    adapter: *mut NETADAPTER,
) -> NTSTATUS;
pub type PFN_NETADAPTERSTART =
    unsafe extern "system" fn(globals: *mut NET_DRIVER_GLOBALS, adapter: NETADAPTER) -> NTSTATUS;
pub type PFN_NETADAPTERSTOP =
    unsafe extern "system" fn(globals: *mut NET_DRIVER_GLOBALS, adapter: NETADAPTER);
pub type PFN_NETADAPTERSETLINKLAYERCAPABILITIES = unsafe extern "system" fn(
    globals: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    capabilities: *mut NET_ADAPTER_LINK_LAYER_CAPABILITIES,
);
pub type PFN_NETADAPTERSETLINKLAYERMTUSIZE =
    unsafe extern "system" fn(globals: *mut NET_DRIVER_GLOBALS, adapter: NETADAPTER, mtu: u32);
pub type PFN_NETADAPTERSETDATAPATHCAPABILITIES = unsafe extern "system" fn(
    globals: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    tx: *mut NET_ADAPTER_TX_CAPABILITIES,
    rx: *mut NET_ADAPTER_RX_CAPABILITIES,
);
pub type PFN_NETADAPTERSETLINKSTATE = unsafe extern "system" fn(
    globals: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    state: *mut NET_ADAPTER_LINK_STATE,
);
pub type PFN_NETTXQUEUECREATE = unsafe extern "system" fn(
    globals: *mut NET_DRIVER_GLOBALS,
    init: PNETTXQUEUE_INIT,
    attributes: *mut WDF_OBJECT_ATTRIBUTES,
    config: *mut NET_PACKET_QUEUE_CONFIG,
    queue: *mut NETPACKETQUEUE,
) -> NTSTATUS;
pub type PFN_NETRXQUEUECREATE = PFN_NETTXQUEUECREATE;
pub type PFN_NETQUEUENOTIFY =
    unsafe extern "system" fn(globals: *mut NET_DRIVER_GLOBALS, queue: NETPACKETQUEUE);
pub type PFN_NETQUEUEINITGETQUEUEID =
    unsafe extern "system" fn(globals: *mut NET_DRIVER_GLOBALS, init: *mut c_void) -> u32;
pub type PFN_NETQUEUEGETRINGCOLLECTION = unsafe extern "system" fn(
    globals: *mut NET_DRIVER_GLOBALS,
    queue: NETPACKETQUEUE,
) -> *const NET_RING_COLLECTION;
pub type PFN_NETQUEUEGETEXTENSION = unsafe extern "system" fn(
    globals: *mut NET_DRIVER_GLOBALS,
    queue: NETPACKETQUEUE,
    query: *const NET_EXTENSION_QUERY,
    extension: *mut NET_EXTENSION,
);

pub const NetAdapterInitAllocateTableIndex: usize = 0;
pub const NetAdapterInitFreeTableIndex: usize = 1;
pub const NetAdapterInitSetDatapathCallbacksTableIndex: usize = 2;
pub const NetAdapterCreateTableIndex: usize = 3;
pub const NetAdapterStartTableIndex: usize = 4;
pub const NetAdapterStopTableIndex: usize = 5;
pub const NetAdapterSetLinkLayerCapabilitiesTableIndex: usize = 6;
pub const NetAdapterSetLinkLayerMtuSizeTableIndex: usize = 7;
pub const NetAdapterSetDataPathCapabilitiesTableIndex: usize = 14;
pub const NetAdapterSetLinkStateTableIndex: usize = 15;
pub const NetAdapterGetNetLuidTableIndex: usize = 16;
pub const NetAdapterOpenConfigurationTableIndex: usize = 17;
pub const NetAdapterSetPermanentLinkLayerAddressTableIndex: usize = 18;
pub const NetAdapterSetCurrentLinkLayerAddressTableIndex: usize = 19;
pub const NetAdapterInitGetCreatedAdapterTableIndex: usize = 26;
pub const NetAdapterGetLinkLayerMtuSizeTableIndex: usize = 31;
pub const NetDeviceInitConfigTableIndex: usize = 46;
pub const NetRxQueueCreateTableIndex: usize = 58;
pub const NetRxQueueNotifyMoreReceivedPacketsAvailableTableIndex: usize = 59;
pub const NetRxQueueInitGetQueueIdTableIndex: usize = 60;
pub const NetRxQueueGetRingCollectionTableIndex: usize = 61;
pub const NetRxQueueGetExtensionTableIndex: usize = 62;
pub const NetTxQueueCreateTableIndex: usize = 63;
pub const NetTxQueueNotifyMoreCompletedPacketsAvailableTableIndex: usize = 64;
pub const NetTxQueueInitGetQueueIdTableIndex: usize = 65;
pub const NetTxQueueGetRingCollectionTableIndex: usize = 66;
pub const NetTxQueueGetExtensionTableIndex: usize = 67;
/// `NetFunctionTableNumEntries` for NetAdapterCx 2.2.
pub const NetFunctionTableNumEntries: u32 = 124;
