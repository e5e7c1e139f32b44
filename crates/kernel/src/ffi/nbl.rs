//! `NET_BUFFER_LIST` / `NET_BUFFER`: layouts, the `nblaccessors.h` macros and inlines as
//! `#[inline]` functions, the `NET_BUFFER_LIST_INFO` indices and the per-NBL info values
//! (checksum, LSO, USO, hash), NBL/NB pools, clones, retreat/advance, copies and MDL helpers
//! exported by `ndis.sys`.
//!
//! Sources (facts only, own code): xdp-for-windows `published/wdkdeps/km` at commit
//! 20d5106ec82d09484774e471bf476c1d704327cc: `ndis/nbl.h`, `ndis/nblinfo.h`,
//! `ndis/nblaccessors.h`, `ndis/nblapi.h`, `ndis/mdlapi.h`, `ndis/nblchecksum.h`, `ndis/nbllso.h`,
//! `ndis/nbluso.h`, `ndis/nblhash.h`, `ndis/nblsend.h`, `ndis/nblreceive.h`, `ndis.h`
//! (cancel-id macros), and `shared/ndis/hashtypes.h`.
//!
//! Layout notes (x64 and ARM64 identical): both structures start with a union containing an
//! `SLIST_HEADER` (16 bytes, 16-byte aligned) and carry `DECLSPEC_ALIGN(MEMORY_ALLOCATION_ALIGNMENT)`
//! reserved arrays, so both are 16-byte aligned. `NetBufferListInfo` has
//! `MaxNetBufferListInfo` = 27 entries for NDIS >= 6.80 on 64-bit (24 for 6.30, 26 for 6.50);
//! NDIS allocates NBLs with the running OS's size, so a driver may only index below the count of
//! the NDIS version it declared. We declare 27 (`NET_BUFFER_LIST` = 0x170 bytes) so the simulated
//! kernel allocates the largest layout.

use core::ffi::c_void;

use super::mdl::MDL;
use super::ndis::{NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_STATUS};
use super::ntos::BOOLEAN;

// ---------------------------------------------------------------------------------------------
// NET_BUFFER_LIST_INFO indices (NDIS_NET_BUFFER_LIST_INFO), 64-bit, NDIS 6.80+
// ---------------------------------------------------------------------------------------------

/// `NDIS_NET_BUFFER_LIST_INFO` (enum, used as an index).
pub type NDIS_NET_BUFFER_LIST_INFO = usize;
pub const TcpIpChecksumNetBufferListInfo: NDIS_NET_BUFFER_LIST_INFO = 0;
pub const TcpOffloadBytesTransferred: NDIS_NET_BUFFER_LIST_INFO = 0;
pub const IPsecOffloadV1NetBufferListInfo: NDIS_NET_BUFFER_LIST_INFO = 1;
pub const IPsecOffloadV2NetBufferListInfo: NDIS_NET_BUFFER_LIST_INFO = 1;
pub const TcpLargeSendNetBufferListInfo: NDIS_NET_BUFFER_LIST_INFO = 2;
pub const TcpReceiveNoPush: NDIS_NET_BUFFER_LIST_INFO = 2;
pub const ClassificationHandleNetBufferListInfo: NDIS_NET_BUFFER_LIST_INFO = 3;
pub const Ieee8021QNetBufferListInfo: NDIS_NET_BUFFER_LIST_INFO = 4;
pub const NetBufferListCancelId: NDIS_NET_BUFFER_LIST_INFO = 5;
pub const MediaSpecificInformation: NDIS_NET_BUFFER_LIST_INFO = 6;
pub const NetBufferListFrameType: NDIS_NET_BUFFER_LIST_INFO = 7;
pub const NetBufferListProtocolId: NDIS_NET_BUFFER_LIST_INFO = 7;
pub const NetBufferListHashValue: NDIS_NET_BUFFER_LIST_INFO = 8;
pub const NetBufferListHashInfo: NDIS_NET_BUFFER_LIST_INFO = 9;
pub const WfpNetBufferListInfo: NDIS_NET_BUFFER_LIST_INFO = 10;
pub const IPsecOffloadV2TunnelNetBufferListInfo: NDIS_NET_BUFFER_LIST_INFO = 11;
pub const IPsecOffloadV2HeaderNetBufferListInfo: NDIS_NET_BUFFER_LIST_INFO = 12;
pub const NetBufferListCorrelationId: NDIS_NET_BUFFER_LIST_INFO = 13;
pub const NetBufferListFilteringInfo: NDIS_NET_BUFFER_LIST_INFO = 14;
pub const MediaSpecificInformationEx: NDIS_NET_BUFFER_LIST_INFO = 15;
pub const NblOriginalInterfaceIfIndex: NDIS_NET_BUFFER_LIST_INFO = 16;
pub const NblReAuthWfpFlowContext: NDIS_NET_BUFFER_LIST_INFO = 16;
pub const TcpReceiveBytesTransferred: NDIS_NET_BUFFER_LIST_INFO = 17;
pub const NrtNameResolutionId: NDIS_NET_BUFFER_LIST_INFO = 17;
/// NDIS 6.84: URO info shares the slot of `TcpReceiveBytesTransferred`.
pub const UdpRecvSegCoalesceOffloadInfo: NDIS_NET_BUFFER_LIST_INFO = 17;
pub const SwitchForwardingReserved: NDIS_NET_BUFFER_LIST_INFO = 18;
pub const SwitchForwardingDetail: NDIS_NET_BUFFER_LIST_INFO = 19;
pub const VirtualSubnetInfo: NDIS_NET_BUFFER_LIST_INFO = 20;
pub const IMReserved: NDIS_NET_BUFFER_LIST_INFO = 21;
pub const TcpRecvSegCoalesceInfo: NDIS_NET_BUFFER_LIST_INFO = 22;
/// NDIS 6.83: USO info shares the slot of `TcpRecvSegCoalesceInfo`.
pub const UdpSegmentationOffloadInfo: NDIS_NET_BUFFER_LIST_INFO = 22;
pub const RscTcpTimestampDelta: NDIS_NET_BUFFER_LIST_INFO = 23;
pub const TcpSendOffloadsSupplementalNetBufferListInfo: NDIS_NET_BUFFER_LIST_INFO = 23;
pub const GftOffloadInformation: NDIS_NET_BUFFER_LIST_INFO = 24;
pub const GftFlowEntryId: NDIS_NET_BUFFER_LIST_INFO = 25;
pub const NetBufferListInfoReserved3: NDIS_NET_BUFFER_LIST_INFO = 26;
/// `MaxNetBufferListInfo` for NDIS >= 6.80 on 64-bit Windows.
pub const MaxNetBufferListInfo: usize = 27;
/// `MaxNetBufferListInfo` as compiled for NDIS 6.30 (the largest index such a driver may use + 1).
pub const MaxNetBufferListInfo_NDIS630: usize = 24;

// ---------------------------------------------------------------------------------------------
// Structures
// ---------------------------------------------------------------------------------------------

/// `NET_BUFFER.DataLength` union (`ULONG DataLength` / `SIZE_T stDataLength`).
#[repr(C)]
#[derive(Clone, Copy)]
pub union NET_BUFFER_DATA_LENGTH {
    pub DataLength: u32,
    pub stDataLength: usize,
}
union_debug!(NET_BUFFER_DATA_LENGTH);

/// `NET_BUFFER` (x64/ARM64: 0xB0 bytes, 16-byte aligned). The leading union's `SLIST_HEADER Link`
/// member (used by NDIS for free lists) is not spelled out; its data view is flattened here.
#[repr(C, align(16))]
pub struct NET_BUFFER {
    pub Next: *mut NET_BUFFER,
    pub CurrentMdl: *mut MDL,
    pub CurrentMdlOffset: u32,
    pub DataLength: NET_BUFFER_DATA_LENGTH,
    pub MdlChain: *mut MDL,
    pub DataOffset: u32,
    /// Tail padding of the leading union (its data struct is 48 bytes).
    pub DataPad: u32,
    pub ChecksumBias: u16,
    pub Reserved: u16,
    pub NdisPoolHandle: NDIS_HANDLE,
    pub NdisReserved: [*mut c_void; 2],
    pub ProtocolReserved: [*mut c_void; 6],
    pub MiniportReserved: [*mut c_void; 4],
    /// `PHYSICAL_ADDRESS` (`LARGE_INTEGER`).
    pub DataPhysicalAddress: i64,
    /// Union of `SharedMemoryInfo` / `ScatterGatherList` (NDIS 6.20+).
    pub SharedMemoryInfo: *mut c_void,
}
const _: () = assert!(core::mem::size_of::<NET_BUFFER>() == 0xB0);
const _: () = assert!(core::mem::align_of::<NET_BUFFER>() == 16);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, Next) == 0);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, CurrentMdl) == 8);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, CurrentMdlOffset) == 16);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, DataLength) == 24);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, MdlChain) == 32);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, DataOffset) == 40);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, ChecksumBias) == 48);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, NdisPoolHandle) == 56);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, NdisReserved) == 64);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, ProtocolReserved) == 80);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, MiniportReserved) == 128);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, DataPhysicalAddress) == 160);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER, SharedMemoryInfo) == 168);

impl core::fmt::Debug for NET_BUFFER {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // SAFETY: reading the ULONG view of the DataLength union is always valid (plain integer).
        let len = unsafe { self.DataLength.DataLength };
        f.debug_struct("NET_BUFFER")
            .field("Next", &self.Next)
            .field("CurrentMdl", &self.CurrentMdl)
            .field("CurrentMdlOffset", &self.CurrentMdlOffset)
            .field("DataLength", &len)
            .field("MdlChain", &self.MdlChain)
            .field("DataOffset", &self.DataOffset)
            .finish_non_exhaustive()
    }
}

/// `NET_BUFFER_LIST_CONTEXT` header; `ContextData` (16-byte aligned) follows at offset 16.
#[repr(C, align(16))]
#[derive(Debug)]
pub struct NET_BUFFER_LIST_CONTEXT {
    pub Next: *mut NET_BUFFER_LIST_CONTEXT,
    pub Size: u16,
    pub Offset: u16,
}
const _: () = assert!(core::mem::size_of::<NET_BUFFER_LIST_CONTEXT>() == 16);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST_CONTEXT, Size) == 8);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST_CONTEXT, Offset) == 10);

/// `NET_BUFFER_LIST` (x64/ARM64: 0x170 bytes with 27 info slots, 16-byte aligned). The leading
/// union's `SLIST_HEADER Link` member is not spelled out.
#[repr(C, align(16))]
pub struct NET_BUFFER_LIST {
    pub Next: *mut NET_BUFFER_LIST,
    pub FirstNetBuffer: *mut NET_BUFFER,
    pub Context: *mut NET_BUFFER_LIST_CONTEXT,
    pub ParentNetBufferList: *mut NET_BUFFER_LIST,
    pub NdisPoolHandle: NDIS_HANDLE,
    /// Padding inserted by `DECLSPEC_ALIGN(16)` on `NdisReserved`.
    pub NdisReservedAlign: *mut c_void,
    pub NdisReserved: [*mut c_void; 2],
    pub ProtocolReserved: [*mut c_void; 4],
    pub MiniportReserved: [*mut c_void; 2],
    pub Scratch: *mut c_void,
    pub SourceHandle: NDIS_HANDLE,
    pub NblFlags: u32,
    pub ChildRefCount: i32,
    pub Flags: u32,
    /// Union of `NDIS_STATUS Status` / `ULONG NdisReserved2`.
    pub Status: NDIS_STATUS,
    pub NetBufferListInfo: [*mut c_void; MaxNetBufferListInfo],
}
const _: () = assert!(core::mem::size_of::<NET_BUFFER_LIST>() == 0x170);
const _: () = assert!(core::mem::align_of::<NET_BUFFER_LIST>() == 16);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, Next) == 0);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, FirstNetBuffer) == 8);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, Context) == 16);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, ParentNetBufferList) == 24);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, NdisPoolHandle) == 32);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, NdisReserved) == 48);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, ProtocolReserved) == 64);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, MiniportReserved) == 96);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, Scratch) == 112);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, SourceHandle) == 120);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, NblFlags) == 128);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, ChildRefCount) == 132);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, Flags) == 136);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, Status) == 140);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST, NetBufferListInfo) == 144);

impl core::fmt::Debug for NET_BUFFER_LIST {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NET_BUFFER_LIST")
            .field("Next", &self.Next)
            .field("FirstNetBuffer", &self.FirstNetBuffer)
            .field("ParentNetBufferList", &self.ParentNetBufferList)
            .field("SourceHandle", &self.SourceHandle)
            .field("NblFlags", &self.NblFlags)
            .field("ChildRefCount", &self.ChildRefCount)
            .field("Status", &self.Status)
            .finish_non_exhaustive()
    }
}

// NBL flags (nbl.h, NDIS 6.30+).
pub const NBL_FLAGS_PROTOCOL_RESERVED: u32 = 0xFFF0_0003;
pub const NBL_FLAGS_MINIPORT_RESERVED: u32 = 0x0000_F000;
pub const NBL_FLAGS_SCRATCH: u32 = 0x000F_0000;
pub const NBL_FLAGS_NDIS_RESERVED: u32 = 0x0000_0FFC;
pub const NDIS_NBL_FLAGS_SEND_READ_ONLY: u32 = 0x0000_0001;
pub const NDIS_NBL_FLAGS_RECV_READ_ONLY: u32 = 0x0000_0002;
pub const NDIS_NBL_FLAGS_HD_SPLIT: u32 = 0x0000_0100;
pub const NDIS_NBL_FLAGS_IS_IPV4: u32 = 0x0000_0200;
pub const NDIS_NBL_FLAGS_IS_IPV6: u32 = 0x0000_0400;
pub const NDIS_NBL_FLAGS_IS_TCP: u32 = 0x0000_0800;
pub const NDIS_NBL_FLAGS_IS_UDP: u32 = 0x0000_1000;
pub const NDIS_NBL_FLAGS_SPLIT_AT_UPPER_LAYER_PROTOCOL_HEADER: u32 = 0x0000_2000;
pub const NDIS_NBL_FLAGS_SPLIT_AT_UPPER_LAYER_PROTOCOL_PAYLOAD: u32 = 0x0000_4000;
pub const NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET: u32 = 0x0000_8000;

// Send / send-complete / receive / return flags (nblsend.h, nblreceive.h).
pub const NDIS_SEND_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
pub const NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK: u32 = 0x0000_0002;
pub const NDIS_SEND_FLAGS_SINGLE_QUEUE: u32 = 0x0000_0004;
pub const NDIS_SEND_FLAGS_SWITCH_DESTINATION_GROUP: u32 = 0x0000_0010;
pub const NDIS_SEND_FLAGS_SWITCH_SINGLE_SOURCE: u32 = 0x0000_0020;
pub const NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
pub const NDIS_SEND_COMPLETE_FLAGS_SINGLE_QUEUE: u32 = 0x0000_0002;
pub const NDIS_SEND_COMPLETE_FLAGS_SWITCH_SINGLE_SOURCE: u32 = 0x0000_0004;
pub const NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
/// The indicated NBLs must not be retained: the callee returns from the indication without
/// keeping them and never passes them to `NdisFReturnNetBufferLists`.
pub const NDIS_RECEIVE_FLAGS_RESOURCES: u32 = 0x0000_0002;
pub const NDIS_RECEIVE_FLAGS_SINGLE_ETHER_TYPE: u32 = 0x0000_0100;
pub const NDIS_RECEIVE_FLAGS_SINGLE_VLAN: u32 = 0x0000_0200;
pub const NDIS_RECEIVE_FLAGS_PERFECT_FILTERED: u32 = 0x0000_0400;
pub const NDIS_RECEIVE_FLAGS_SINGLE_QUEUE: u32 = 0x0000_0800;
pub const NDIS_RECEIVE_FLAGS_SHARED_MEMORY_INFO_VALID: u32 = 0x0000_1000;
pub const NDIS_RECEIVE_FLAGS_MORE_NBLS: u32 = 0x0000_2000;
pub const NDIS_RECEIVE_FLAGS_SWITCH_DESTINATION_GROUP: u32 = 0x0000_4000;
pub const NDIS_RECEIVE_FLAGS_SWITCH_SINGLE_SOURCE: u32 = 0x0000_8000;
pub const NDIS_RETURN_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
pub const NDIS_RETURN_FLAGS_SINGLE_QUEUE: u32 = 0x0000_0002;
pub const NDIS_RETURN_FLAGS_SWITCH_SINGLE_SOURCE: u32 = 0x0000_0004;

/// `NDIS_TEST_SEND_AT_DISPATCH_LEVEL(Flags)` and friends.
#[inline]
pub const fn NDIS_TEST_SEND_AT_DISPATCH_LEVEL(flags: u32) -> bool {
    flags & NDIS_SEND_FLAGS_DISPATCH_LEVEL != 0
}
/// `NDIS_TEST_RECEIVE_AT_DISPATCH_LEVEL(Flags)`.
#[inline]
pub const fn NDIS_TEST_RECEIVE_AT_DISPATCH_LEVEL(flags: u32) -> bool {
    flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL != 0
}
/// `NDIS_TEST_RECEIVE_CANNOT_PEND(Flags)`: RESOURCES set.
#[inline]
pub const fn NDIS_TEST_RECEIVE_CANNOT_PEND(flags: u32) -> bool {
    flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0
}
/// `NDIS_TEST_RETURN_AT_DISPATCH_LEVEL(Flags)`.
#[inline]
pub const fn NDIS_TEST_RETURN_AT_DISPATCH_LEVEL(flags: u32) -> bool {
    flags & NDIS_RETURN_FLAGS_DISPATCH_LEVEL != 0
}

// Clone flags (nblapi.h).
pub const NDIS_CLONE_FLAGS_RESERVED: u32 = 0x0000_0001;
pub const NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS: u32 = 0x0000_0002;

// ---------------------------------------------------------------------------------------------
// Accessor macros / inlines as functions. All are plain field accesses: any IRQL; the caller
// must own (or have been lent) the NBL/NB and pass a valid pointer.
// ---------------------------------------------------------------------------------------------

/// `NET_BUFFER_LIST_NEXT_NBL(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
pub unsafe fn NET_BUFFER_LIST_NEXT_NBL(nbl: *const NET_BUFFER_LIST) -> *mut NET_BUFFER_LIST {
    // SAFETY: caller guarantees `nbl` is valid for reads.
    unsafe { (*nbl).Next }
}

/// `NET_BUFFER_LIST_FIRST_NB(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
pub unsafe fn NET_BUFFER_LIST_FIRST_NB(nbl: *const NET_BUFFER_LIST) -> *mut NET_BUFFER {
    // SAFETY: caller guarantees `nbl` is valid for reads.
    unsafe { (*nbl).FirstNetBuffer }
}

/// `NET_BUFFER_LIST_STATUS(Nbl)` (read).
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
pub unsafe fn NET_BUFFER_LIST_STATUS(nbl: *const NET_BUFFER_LIST) -> NDIS_STATUS {
    // SAFETY: caller guarantees `nbl` is valid for reads.
    unsafe { (*nbl).Status }
}

/// `NET_BUFFER_LIST_STATUS(Nbl) = Status`.
///
/// # Safety
/// `nbl` must point to a valid NBL the caller owns.
#[inline]
pub unsafe fn NET_BUFFER_LIST_SET_STATUS(nbl: *mut NET_BUFFER_LIST, status: NDIS_STATUS) {
    // SAFETY: caller guarantees `nbl` is valid for writes.
    unsafe { (*nbl).Status = status };
}

/// `NET_BUFFER_LIST_FLAGS(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
pub unsafe fn NET_BUFFER_LIST_FLAGS(nbl: *const NET_BUFFER_LIST) -> u32 {
    // SAFETY: caller guarantees `nbl` is valid for reads.
    unsafe { (*nbl).Flags }
}

/// `NET_BUFFER_LIST_NBL_FLAGS(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
pub unsafe fn NET_BUFFER_LIST_NBL_FLAGS(nbl: *const NET_BUFFER_LIST) -> u32 {
    // SAFETY: caller guarantees `nbl` is valid for reads.
    unsafe { (*nbl).NblFlags }
}

/// `NdisTestNblFlag(Nbl, Flag)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
pub unsafe fn NdisTestNblFlag(nbl: *const NET_BUFFER_LIST, flag: u32) -> bool {
    // SAFETY: caller guarantees `nbl` is valid for reads.
    unsafe { (*nbl).NblFlags & flag != 0 }
}

/// `NdisSetNblFlag(Nbl, Flag)`.
///
/// # Safety
/// `nbl` must point to a valid NBL the caller owns.
#[inline]
pub unsafe fn NdisSetNblFlag(nbl: *mut NET_BUFFER_LIST, flag: u32) {
    // SAFETY: caller guarantees `nbl` is valid for writes.
    unsafe { (*nbl).NblFlags |= flag };
}

/// `NdisClearNblFlag(Nbl, Flag)`.
///
/// # Safety
/// `nbl` must point to a valid NBL the caller owns.
#[inline]
pub unsafe fn NdisClearNblFlag(nbl: *mut NET_BUFFER_LIST, flag: u32) {
    // SAFETY: caller guarantees `nbl` is valid for writes.
    unsafe { (*nbl).NblFlags &= !flag };
}

/// `NBL_TEST_FLAG(Nbl, Flag)` (private `Flags`).
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
pub unsafe fn NBL_TEST_FLAG(nbl: *const NET_BUFFER_LIST, flag: u32) -> bool {
    // SAFETY: caller guarantees `nbl` is valid for reads.
    unsafe { (*nbl).Flags & flag != 0 }
}

/// `NBL_SET_FLAG(Nbl, Flag)`.
///
/// # Safety
/// `nbl` must point to a valid NBL the caller owns.
#[inline]
pub unsafe fn NBL_SET_FLAG(nbl: *mut NET_BUFFER_LIST, flag: u32) {
    // SAFETY: caller guarantees `nbl` is valid for writes.
    unsafe { (*nbl).Flags |= flag };
}

/// `NBL_CLEAR_FLAG(Nbl, Flag)`.
///
/// # Safety
/// `nbl` must point to a valid NBL the caller owns.
#[inline]
pub unsafe fn NBL_CLEAR_FLAG(nbl: *mut NET_BUFFER_LIST, flag: u32) {
    // SAFETY: caller guarantees `nbl` is valid for writes.
    unsafe { (*nbl).Flags &= !flag };
}

/// `NET_BUFFER_LIST_INFO(Nbl, Id)` (read).
///
/// # Safety
/// `nbl` must point to a valid NBL and `id < MaxNetBufferListInfo` of the NDIS version in use.
#[inline]
pub unsafe fn NET_BUFFER_LIST_INFO(
    nbl: *const NET_BUFFER_LIST,
    id: NDIS_NET_BUFFER_LIST_INFO,
) -> *mut c_void {
    // SAFETY: caller guarantees `nbl` is valid for reads; indexing is bounds-checked.
    unsafe { (*nbl).NetBufferListInfo[id] }
}

/// `NET_BUFFER_LIST_INFO(Nbl, Id) = Value`.
///
/// # Safety
/// `nbl` must point to a valid NBL the caller owns.
#[inline]
pub unsafe fn NET_BUFFER_LIST_SET_INFO(
    nbl: *mut NET_BUFFER_LIST,
    id: NDIS_NET_BUFFER_LIST_INFO,
    value: *mut c_void,
) {
    // SAFETY: caller guarantees `nbl` is valid for writes; indexing is bounds-checked.
    unsafe { (*nbl).NetBufferListInfo[id] = value };
}

/// `NDIS_GET_NET_BUFFER_LIST_CANCEL_ID(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
pub unsafe fn NDIS_GET_NET_BUFFER_LIST_CANCEL_ID(nbl: *const NET_BUFFER_LIST) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { NET_BUFFER_LIST_INFO(nbl, NetBufferListCancelId) }
}

/// `NDIS_SET_NET_BUFFER_LIST_CANCEL_ID(Nbl, CancelId)`.
///
/// # Safety
/// `nbl` must point to a valid NBL the caller owns.
#[inline]
pub unsafe fn NDIS_SET_NET_BUFFER_LIST_CANCEL_ID(nbl: *mut NET_BUFFER_LIST, cancel_id: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { NET_BUFFER_LIST_SET_INFO(nbl, NetBufferListCancelId, cancel_id) };
}

/// `NET_BUFFER_LIST_CONTEXT_DATA_START(Nbl)`: `(PUCHAR)(Nbl->Context + 1) + Nbl->Context->Offset`.
///
/// # Safety
/// `nbl` must point to a valid NBL with a non-null `Context`.
#[inline]
pub unsafe fn NET_BUFFER_LIST_CONTEXT_DATA_START(nbl: *const NET_BUFFER_LIST) -> *mut u8 {
    // SAFETY: caller guarantees `nbl` is valid and has a context.
    let ctx = unsafe { (*nbl).Context };
    // SAFETY: `ctx` is a valid context header per the caller's guarantee.
    let offset = unsafe { (*ctx).Offset };
    ctx.wrapping_add(1).cast::<u8>().wrapping_add(usize::from(offset))
}

/// `NET_BUFFER_LIST_CONTEXT_DATA_SIZE(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL with a non-null `Context`.
#[inline]
pub unsafe fn NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl: *const NET_BUFFER_LIST) -> u16 {
    // SAFETY: caller guarantees `nbl` is valid and has a context.
    let ctx = unsafe { (*nbl).Context };
    // SAFETY: as above.
    unsafe { (*ctx).Size }
}

/// `NET_BUFFER_NEXT_NB(Nb)`.
///
/// # Safety
/// `nb` must point to a valid NB.
#[inline]
pub unsafe fn NET_BUFFER_NEXT_NB(nb: *const NET_BUFFER) -> *mut NET_BUFFER {
    // SAFETY: caller guarantees `nb` is valid for reads.
    unsafe { (*nb).Next }
}

/// `NET_BUFFER_FIRST_MDL(Nb)`.
///
/// # Safety
/// `nb` must point to a valid NB.
#[inline]
pub unsafe fn NET_BUFFER_FIRST_MDL(nb: *const NET_BUFFER) -> *mut MDL {
    // SAFETY: caller guarantees `nb` is valid for reads.
    unsafe { (*nb).MdlChain }
}

/// `NET_BUFFER_CURRENT_MDL(Nb)`.
///
/// # Safety
/// `nb` must point to a valid NB.
#[inline]
pub unsafe fn NET_BUFFER_CURRENT_MDL(nb: *const NET_BUFFER) -> *mut MDL {
    // SAFETY: caller guarantees `nb` is valid for reads.
    unsafe { (*nb).CurrentMdl }
}

/// `NET_BUFFER_CURRENT_MDL_OFFSET(Nb)`.
///
/// # Safety
/// `nb` must point to a valid NB.
#[inline]
pub unsafe fn NET_BUFFER_CURRENT_MDL_OFFSET(nb: *const NET_BUFFER) -> u32 {
    // SAFETY: caller guarantees `nb` is valid for reads.
    unsafe { (*nb).CurrentMdlOffset }
}

/// `NET_BUFFER_DATA_LENGTH(Nb)` (the `ULONG` view).
///
/// # Safety
/// `nb` must point to a valid NB.
#[inline]
pub unsafe fn NET_BUFFER_DATA_LENGTH(nb: *const NET_BUFFER) -> u32 {
    // SAFETY: caller guarantees `nb` is valid for reads.
    let len = unsafe { (*nb).DataLength };
    // SAFETY: the ULONG view of the union is a plain integer (the low half of `stDataLength` on
    // little-endian targets), valid whichever member was written.
    unsafe { len.DataLength }
}

/// `NET_BUFFER_DATA_LENGTH(Nb) = Length`.
///
/// # Safety
/// `nb` must point to a valid NB the caller owns.
#[inline]
pub unsafe fn NET_BUFFER_SET_DATA_LENGTH(nb: *mut NET_BUFFER, length: u32) {
    // SAFETY: caller guarantees `nb` is valid for writes. Writing the full SIZE_T view keeps the
    // high half zero, as NDIS expects.
    unsafe { (*nb).DataLength = NET_BUFFER_DATA_LENGTH { stDataLength: length as usize } };
}

/// `NET_BUFFER_DATA_OFFSET(Nb)`.
///
/// # Safety
/// `nb` must point to a valid NB.
#[inline]
pub unsafe fn NET_BUFFER_DATA_OFFSET(nb: *const NET_BUFFER) -> u32 {
    // SAFETY: caller guarantees `nb` is valid for reads.
    unsafe { (*nb).DataOffset }
}

/// `NET_BUFFER_CHECKSUM_BIAS(Nb)`.
///
/// # Safety
/// `nb` must point to a valid NB.
#[inline]
pub unsafe fn NET_BUFFER_CHECKSUM_BIAS(nb: *const NET_BUFFER) -> u16 {
    // SAFETY: caller guarantees `nb` is valid for reads.
    unsafe { (*nb).ChecksumBias }
}

/// `NET_BUFFER_PROTOCOL_RESERVED(Nb)`.
///
/// # Safety
/// `nb` must point to a valid NB.
#[inline]
pub unsafe fn NET_BUFFER_PROTOCOL_RESERVED(nb: *mut NET_BUFFER) -> *mut [*mut c_void; 6] {
    // SAFETY: caller guarantees `nb` is valid; only a place projection, no read.
    unsafe { core::ptr::addr_of_mut!((*nb).ProtocolReserved) }
}

/// `NET_BUFFER_MINIPORT_RESERVED(Nb)`.
///
/// # Safety
/// `nb` must point to a valid NB.
#[inline]
pub unsafe fn NET_BUFFER_MINIPORT_RESERVED(nb: *mut NET_BUFFER) -> *mut [*mut c_void; 4] {
    // SAFETY: caller guarantees `nb` is valid; only a place projection, no read.
    unsafe { core::ptr::addr_of_mut!((*nb).MiniportReserved) }
}

/// `NET_BUFFER_LIST_PROTOCOL_RESERVED(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
pub unsafe fn NET_BUFFER_LIST_PROTOCOL_RESERVED(nbl: *mut NET_BUFFER_LIST) -> *mut [*mut c_void; 4] {
    // SAFETY: caller guarantees `nbl` is valid; only a place projection, no read.
    unsafe { core::ptr::addr_of_mut!((*nbl).ProtocolReserved) }
}

/// `NET_BUFFER_LIST_MINIPORT_RESERVED(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
pub unsafe fn NET_BUFFER_LIST_MINIPORT_RESERVED(nbl: *mut NET_BUFFER_LIST) -> *mut [*mut c_void; 2] {
    // SAFETY: caller guarantees `nbl` is valid; only a place projection, no read.
    unsafe { core::ptr::addr_of_mut!((*nbl).MiniportReserved) }
}

// ---------------------------------------------------------------------------------------------
// Per-NBL info values (bit fields packed into the PVOID slot; MSVC allocates ULONG bit fields from
// the least significant bit)
// ---------------------------------------------------------------------------------------------

/// `NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO`, as the low 32 bits of the slot's `Value`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO(pub u32);

impl NDIS_TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO {
    // Transmit view.
    pub const TX_IS_IPV4: u32 = 1 << 0;
    pub const TX_IS_IPV6: u32 = 1 << 1;
    pub const TX_TCP_CHECKSUM: u32 = 1 << 2;
    pub const TX_UDP_CHECKSUM: u32 = 1 << 3;
    pub const TX_IP_HEADER_CHECKSUM: u32 = 1 << 4;
    pub const TX_TCP_HEADER_OFFSET_SHIFT: u32 = 16;
    pub const TX_TCP_HEADER_OFFSET_MASK: u32 = 0x3FF;
    // Receive view.
    pub const RX_TCP_CHECKSUM_FAILED: u32 = 1 << 0;
    pub const RX_UDP_CHECKSUM_FAILED: u32 = 1 << 1;
    pub const RX_IP_CHECKSUM_FAILED: u32 = 1 << 2;
    pub const RX_TCP_CHECKSUM_SUCCEEDED: u32 = 1 << 3;
    pub const RX_UDP_CHECKSUM_SUCCEEDED: u32 = 1 << 4;
    pub const RX_IP_CHECKSUM_SUCCEEDED: u32 = 1 << 5;
    pub const RX_LOOPBACK: u32 = 1 << 6;
    pub const RX_TCP_CHECKSUM_VALUE_INVALID: u32 = 1 << 7;
    pub const RX_IP_CHECKSUM_VALUE_INVALID: u32 = 1 << 8;

    /// From the NBL info slot value.
    #[allow(clippy::cast_possible_truncation)]
    pub fn from_ptr(value: *mut c_void) -> Self {
        Self(value as usize as u32)
    }
    /// To an NBL info slot value.
    pub fn to_ptr(self) -> *mut c_void {
        self.0 as usize as *mut c_void
    }
    /// `Transmit.TcpHeaderOffset`.
    pub const fn tx_tcp_header_offset(self) -> u32 {
        (self.0 >> Self::TX_TCP_HEADER_OFFSET_SHIFT) & Self::TX_TCP_HEADER_OFFSET_MASK
    }
}

/// `NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO`, as the low 32 bits of the slot's `Value`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO(pub u32);

pub const NDIS_TCP_LARGE_SEND_OFFLOAD_V1_TYPE: u32 = 0;
pub const NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE: u32 = 1;
pub const NDIS_TCP_LARGE_SEND_OFFLOAD_IPv4: u32 = 0;
pub const NDIS_TCP_LARGE_SEND_OFFLOAD_IPv6: u32 = 1;
pub const NDIS_LARGE_SEND_OFFLOAD_MAX_HEADER_LENGTH: u32 = 128;

impl NDIS_TCP_LARGE_SEND_OFFLOAD_NET_BUFFER_LIST_INFO {
    /// From the NBL info slot value.
    #[allow(clippy::cast_possible_truncation)]
    pub fn from_ptr(value: *mut c_void) -> Self {
        Self(value as usize as u32)
    }
    /// To an NBL info slot value.
    pub fn to_ptr(self) -> *mut c_void {
        self.0 as usize as *mut c_void
    }
    /// `LsoV1Transmit.MSS` / `LsoV2Transmit.MSS` (bits 0..20).
    pub const fn mss(self) -> u32 {
        self.0 & 0xF_FFFF
    }
    /// `LsoV*Transmit.TcpHeaderOffset` (bits 20..30).
    pub const fn tcp_header_offset(self) -> u32 {
        (self.0 >> 20) & 0x3FF
    }
    /// `Transmit.Type` (bit 30): V1 or V2.
    pub const fn lso_type(self) -> u32 {
        (self.0 >> 30) & 1
    }
    /// `LsoV2Transmit.IPVersion` (bit 31).
    pub const fn ip_version(self) -> u32 {
        self.0 >> 31
    }
    /// `LsoV1TransmitComplete.TcpPayload` (bits 0..30).
    pub const fn tcp_payload(self) -> u32 {
        self.0 & 0x3FFF_FFFF
    }
    /// A V2 transmit request.
    pub const fn v2(mss: u32, tcp_header_offset: u32, ip_version: u32) -> Self {
        Self(
            (mss & 0xF_FFFF)
                | ((tcp_header_offset & 0x3FF) << 20)
                | (NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE << 30)
                | ((ip_version & 1) << 31),
        )
    }
}

pub const NDIS_UDP_SEGMENTATION_OFFLOAD_IPV4: u32 = 0;
pub const NDIS_UDP_SEGMENTATION_OFFLOAD_IPV6: u32 = 1;

/// `NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO` (NDIS 6.83), low 32 bits of the slot.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO(pub u32);

impl NDIS_UDP_SEGMENTATION_OFFLOAD_NET_BUFFER_LIST_INFO {
    /// From the NBL info slot value.
    #[allow(clippy::cast_possible_truncation)]
    pub fn from_ptr(value: *mut c_void) -> Self {
        Self(value as usize as u32)
    }
    /// To an NBL info slot value.
    pub fn to_ptr(self) -> *mut c_void {
        self.0 as usize as *mut c_void
    }
    /// `Transmit.MSS` (bits 0..20).
    pub const fn mss(self) -> u32 {
        self.0 & 0xF_FFFF
    }
    /// `Transmit.UdpHeaderOffset` (bits 20..30).
    pub const fn udp_header_offset(self) -> u32 {
        (self.0 >> 20) & 0x3FF
    }
    /// `Transmit.IPVersion` (bit 31).
    pub const fn ip_version(self) -> u32 {
        self.0 >> 31
    }
    /// A transmit request.
    pub const fn new(mss: u32, udp_header_offset: u32, ip_version: u32) -> Self {
        Self((mss & 0xF_FFFF) | ((udp_header_offset & 0x3FF) << 20) | ((ip_version & 1) << 31))
    }
}

// Hash info (hashtypes.h, nblhash.h).
pub const NdisHashFunctionToeplitz: u32 = 0x0000_0001;
pub const NDIS_HASH_FUNCTION_MASK: u32 = 0x0000_00FF;
pub const NDIS_HASH_TYPE_MASK: u32 = 0x00FF_FF00;
pub const NDIS_HASH_IPV4: u32 = 0x0000_0100;
pub const NDIS_HASH_TCP_IPV4: u32 = 0x0000_0200;
pub const NDIS_HASH_IPV6: u32 = 0x0000_0400;
pub const NDIS_HASH_TCP_IPV6: u32 = 0x0000_1000;
pub const NDIS_HASH_UDP_IPV4: u32 = 0x0000_4000;

/// `NET_BUFFER_LIST_GET_HASH_VALUE(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
#[allow(clippy::cast_possible_truncation)]
pub unsafe fn NET_BUFFER_LIST_GET_HASH_VALUE(nbl: *const NET_BUFFER_LIST) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { NET_BUFFER_LIST_INFO(nbl, NetBufferListHashValue) as usize as u32 }
}

/// `NET_BUFFER_LIST_SET_HASH_VALUE(Nbl, Value)`.
///
/// # Safety
/// `nbl` must point to a valid NBL the caller owns.
#[inline]
pub unsafe fn NET_BUFFER_LIST_SET_HASH_VALUE(nbl: *mut NET_BUFFER_LIST, value: u32) {
    // SAFETY: forwarded contract.
    unsafe { NET_BUFFER_LIST_SET_INFO(nbl, NetBufferListHashValue, value as usize as *mut c_void) };
}

/// `NET_BUFFER_LIST_GET_HASH_TYPE(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
#[allow(clippy::cast_possible_truncation)]
pub unsafe fn NET_BUFFER_LIST_GET_HASH_TYPE(nbl: *const NET_BUFFER_LIST) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { (NET_BUFFER_LIST_INFO(nbl, NetBufferListHashInfo) as usize as u32) & NDIS_HASH_TYPE_MASK }
}

/// `NET_BUFFER_LIST_GET_HASH_FUNCTION(Nbl)`.
///
/// # Safety
/// `nbl` must point to a valid NBL.
#[inline]
#[allow(clippy::cast_possible_truncation)]
pub unsafe fn NET_BUFFER_LIST_GET_HASH_FUNCTION(nbl: *const NET_BUFFER_LIST) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { (NET_BUFFER_LIST_INFO(nbl, NetBufferListHashInfo) as usize as u32) & NDIS_HASH_FUNCTION_MASK }
}

// ---------------------------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------------------------

pub const NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1: u8 = 1;
pub const NET_BUFFER_POOL_PARAMETERS_REVISION_1: u8 = 1;
/// `NDIS_PROTOCOL_ID_DEFAULT`.
pub const NDIS_PROTOCOL_ID_DEFAULT: u8 = 0x00;
/// `NDIS_PROTOCOL_ID_TCP_IP`.
pub const NDIS_PROTOCOL_ID_TCP_IP: u8 = 0x02;
/// `NDIS_PROTOCOL_ID_IP6`.
pub const NDIS_PROTOCOL_ID_IP6: u8 = 0x03;

/// `NET_BUFFER_LIST_POOL_PARAMETERS` (16 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_BUFFER_LIST_POOL_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub ProtocolId: u8,
    pub fAllocateNetBuffer: BOOLEAN,
    pub ContextSize: u16,
    pub PoolTag: u32,
    pub DataSize: u32,
}
const _: () = assert!(core::mem::size_of::<NET_BUFFER_LIST_POOL_PARAMETERS>() == 16);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST_POOL_PARAMETERS, ProtocolId) == 4);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST_POOL_PARAMETERS, fAllocateNetBuffer) == 5);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST_POOL_PARAMETERS, ContextSize) == 6);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST_POOL_PARAMETERS, PoolTag) == 8);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_LIST_POOL_PARAMETERS, DataSize) == 12);

/// `NET_BUFFER_POOL_PARAMETERS` (12 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_BUFFER_POOL_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub PoolTag: u32,
    pub DataSize: u32,
}
const _: () = assert!(core::mem::size_of::<NET_BUFFER_POOL_PARAMETERS>() == 12);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_POOL_PARAMETERS, PoolTag) == 4);
const _: () = assert!(core::mem::offset_of!(NET_BUFFER_POOL_PARAMETERS, DataSize) == 8);

/// `NET_BUFFER_ALLOCATE_MDL` handler for `NdisRetreatNetBufferDataStart`. IRQL <= DISPATCH_LEVEL.
pub type NET_BUFFER_ALLOCATE_MDL_HANDLER =
    Option<unsafe extern "system" fn(buffer_size: *mut u32) -> *mut MDL>;
/// `NET_BUFFER_FREE_MDL` handler for `NdisAdvanceNetBufferDataStart`. IRQL <= DISPATCH_LEVEL.
pub type NET_BUFFER_FREE_MDL_HANDLER = Option<unsafe extern "system" fn(mdl: *mut MDL)>;

// ---------------------------------------------------------------------------------------------
// ndis.sys imports
// ---------------------------------------------------------------------------------------------

#[cfg_attr(target_os = "windows", link(name = "ndis.sys", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// `NdisAllocateNetBufferListPool`. IRQL <= DISPATCH_LEVEL. Null on failure. `ndis_handle` is
    /// the filter driver/module handle.
    pub fn NdisAllocateNetBufferListPool(
        ndis_handle: NDIS_HANDLE,
        parameters: *const NET_BUFFER_LIST_POOL_PARAMETERS,
    ) -> NDIS_HANDLE;
    /// `NdisFreeNetBufferListPool`. IRQL <= DISPATCH_LEVEL. Every NBL from the pool must be freed.
    pub fn NdisFreeNetBufferListPool(pool: NDIS_HANDLE);
    /// `NdisAllocateNetBufferList`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisAllocateNetBufferList(
        pool: NDIS_HANDLE,
        context_size: u16,
        context_backfill: u16,
    ) -> *mut NET_BUFFER_LIST;
    /// `NdisAllocateNetBufferAndNetBufferList` (pool created with `fAllocateNetBuffer`).
    /// IRQL <= DISPATCH_LEVEL. The NB describes `data_length` bytes at `data_offset` in `mdl_chain`.
    pub fn NdisAllocateNetBufferAndNetBufferList(
        pool: NDIS_HANDLE,
        context_size: u16,
        context_backfill: u16,
        mdl_chain: *mut MDL,
        data_offset: u32,
        data_length: usize,
    ) -> *mut NET_BUFFER_LIST;
    /// `NdisFreeNetBufferList`. IRQL <= DISPATCH_LEVEL. NBs allocated with it are freed too; MDLs
    /// are not.
    pub fn NdisFreeNetBufferList(nbl: *mut NET_BUFFER_LIST);
    /// `NdisGetPoolFromNetBufferList`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisGetPoolFromNetBufferList(nbl: *const NET_BUFFER_LIST) -> NDIS_HANDLE;
    /// `NdisAllocateNetBufferPool`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisAllocateNetBufferPool(
        ndis_handle: NDIS_HANDLE,
        parameters: *const NET_BUFFER_POOL_PARAMETERS,
    ) -> NDIS_HANDLE;
    /// `NdisFreeNetBufferPool`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisFreeNetBufferPool(pool: NDIS_HANDLE);
    /// `NdisAllocateNetBuffer`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisAllocateNetBuffer(
        pool: NDIS_HANDLE,
        mdl_chain: *mut MDL,
        data_offset: u32,
        data_length: usize,
    ) -> *mut NET_BUFFER;
    /// `NdisFreeNetBuffer`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisFreeNetBuffer(nb: *mut NET_BUFFER);
    /// `NdisRetreatNetBufferDataStart`. IRQL <= DISPATCH_LEVEL. Grows the used data space by
    /// `data_offset_delta` bytes at the front, allocating an MDL (with `data_backfill` extra) if
    /// the current MDL has no room.
    pub fn NdisRetreatNetBufferDataStart(
        nb: *mut NET_BUFFER,
        data_offset_delta: u32,
        data_backfill: u32,
        allocate_mdl_handler: NET_BUFFER_ALLOCATE_MDL_HANDLER,
    ) -> NDIS_STATUS;
    /// `NdisAdvanceNetBufferDataStart`. IRQL <= DISPATCH_LEVEL. Must undo a retreat exactly
    /// (`free_mdl` TRUE frees MDLs the retreat allocated).
    pub fn NdisAdvanceNetBufferDataStart(
        nb: *mut NET_BUFFER,
        data_offset_delta: u32,
        free_mdl: BOOLEAN,
        free_mdl_handler: NET_BUFFER_FREE_MDL_HANDLER,
    );
    /// `NdisRetreatNetBufferListDataStart`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisRetreatNetBufferListDataStart(
        nbl: *mut NET_BUFFER_LIST,
        data_offset_delta: u32,
        data_backfill: u32,
        allocate_mdl_handler: NET_BUFFER_ALLOCATE_MDL_HANDLER,
        free_mdl_handler: NET_BUFFER_FREE_MDL_HANDLER,
    ) -> NDIS_STATUS;
    /// `NdisAdvanceNetBufferListDataStart`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisAdvanceNetBufferListDataStart(
        nbl: *mut NET_BUFFER_LIST,
        data_offset_delta: u32,
        free_mdl: BOOLEAN,
        free_mdl_handler: NET_BUFFER_FREE_MDL_HANDLER,
    );
    /// `NdisAllocateNetBufferListContext`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisAllocateNetBufferListContext(
        nbl: *mut NET_BUFFER_LIST,
        context_size: u16,
        context_backfill: u16,
        pool_tag: u32,
    ) -> NDIS_STATUS;
    /// `NdisFreeNetBufferListContext`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisFreeNetBufferListContext(nbl: *mut NET_BUFFER_LIST, context_size: u16);
    /// `NdisAllocateCloneNetBufferList`. IRQL <= DISPATCH_LEVEL. The clone's NBs share the
    /// original's MDLs with `NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS`; sets `ParentNetBufferList` and
    /// the caller must bump the parent's `ChildRefCount` semantics as documented. Null on failure.
    pub fn NdisAllocateCloneNetBufferList(
        original: *mut NET_BUFFER_LIST,
        nbl_pool: NDIS_HANDLE,
        nb_pool: NDIS_HANDLE,
        allocate_clone_flags: u32,
    ) -> *mut NET_BUFFER_LIST;
    /// `NdisFreeCloneNetBufferList`. IRQL <= DISPATCH_LEVEL. `free_clone_flags` must match the
    /// allocation's.
    pub fn NdisFreeCloneNetBufferList(clone: *mut NET_BUFFER_LIST, free_clone_flags: u32);
    /// `NdisCopySendNetBufferListInfo`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisCopySendNetBufferListInfo(dest: *mut NET_BUFFER_LIST, src: *const NET_BUFFER_LIST);
    /// `NdisCopyReceiveNetBufferListInfo`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisCopyReceiveNetBufferListInfo(dest: *mut NET_BUFFER_LIST, src: *const NET_BUFFER_LIST);
    /// `NdisGetDataBuffer` (a real export). Any IRQL <= DISPATCH_LEVEL. Returns a pointer to
    /// `bytes_needed` contiguous bytes at the NB's data start (in place if contiguous and aligned,
    /// else copied into `storage` if non-null), or null.
    pub fn NdisGetDataBuffer(
        nb: *mut NET_BUFFER,
        bytes_needed: u32,
        storage: *mut c_void,
        align_multiple: u32,
        align_offset: u32,
    ) -> *mut c_void;
    /// `NdisCopyFromNetBufferToNetBuffer`. IRQL <= DISPATCH_LEVEL.
    pub fn NdisCopyFromNetBufferToNetBuffer(
        destination: *mut NET_BUFFER,
        destination_offset: u32,
        bytes_to_copy: u32,
        source: *const NET_BUFFER,
        source_offset: u32,
        bytes_copied: *mut u32,
    ) -> NDIS_STATUS;
    /// `NdisAllocateMdl`. IRQL <= DISPATCH_LEVEL. Describes non-paged `virtual_address`.
    pub fn NdisAllocateMdl(ndis_handle: NDIS_HANDLE, virtual_address: *mut c_void, length: u32) -> *mut MDL;
    /// `NdisFreeMdl`. IRQL <= DISPATCH_LEVEL. Only for MDLs from `NdisAllocateMdl`.
    pub fn NdisFreeMdl(mdl: *mut MDL);
    /// `NdisGeneratePartialCancelId`. Any IRQL <= DISPATCH_LEVEL.
    pub fn NdisGeneratePartialCancelId() -> u8;
}

/// `NdisQueryMdl(Mdl, &Va, &Length, Priority)`: inline in `mdlapi.h`; maps with
/// `Priority | MdlMappingNoExecute`. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `mdl` must point to a valid locked or non-paged MDL.
#[inline]
pub unsafe fn NdisQueryMdl(mdl: *mut MDL, priority: u32) -> (*mut c_void, u32) {
    // SAFETY: forwarded contract.
    let va =
        unsafe { super::mdl::MmGetSystemAddressForMdlSafe(mdl, priority | super::mdl::MdlMappingNoExecute) };
    // SAFETY: forwarded contract.
    let len = unsafe { super::mdl::MmGetMdlByteCount(mdl) };
    (va, len)
}
