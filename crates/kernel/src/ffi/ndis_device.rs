//! The filter's control device: `NDIS_DEVICE_OBJECT_ATTRIBUTES`, `NdisRegisterDeviceEx`,
//! `NdisDeregisterDeviceEx`, `NdisGetDeviceReservedExtension` (`ndis.sys`).
//!
//! Sources (facts only, own code): xdp-for-windows `published/wdkdeps/km/ndis.h` at commit
//! 20d5106ec82d09484774e471bf476c1d704327cc (`NDIS_DEVICE_OBJECT_ATTRIBUTES` and the three
//! prototypes with their SAL IRQL annotations).

use core::ffi::c_void;

use super::ndis::{NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_STATUS};
use super::ntos::{DEVICE_OBJECT, NDIS_STRING, PDRIVER_DISPATCH, UNICODE_STRING};
use super::oid::GUID;

pub const NDIS_DEVICE_OBJECT_ATTRIBUTES_REVISION_1: u8 = 1;
/// `NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES` (`objectheader.h`): `Header.Type` of
/// [`NDIS_DEVICE_OBJECT_ATTRIBUTES`].
pub const NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES: u8 = 0x85;

/// `NDIS_DEVICE_OBJECT_ATTRIBUTES` (x64: 56 bytes). `Header.Type` =
/// `NDIS_OBJECT_TYPE_DEVICE_OBJECT_ATTRIBUTES`. `MajorFunctions` points to an
/// `IRP_MJ_MAXIMUM_FUNCTION + 1` array of dispatch routines (null entries get NDIS defaults).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_DEVICE_OBJECT_ATTRIBUTES {
    pub Header: NDIS_OBJECT_HEADER,
    pub DeviceName: *mut NDIS_STRING,
    pub SymbolicName: *mut NDIS_STRING,
    pub MajorFunctions: *mut PDRIVER_DISPATCH,
    pub ExtensionSize: u32,
    pub DefaultSDDLString: *const UNICODE_STRING,
    pub DeviceClassGuid: *const GUID,
}
const _: () = assert!(core::mem::size_of::<NDIS_DEVICE_OBJECT_ATTRIBUTES>() == 56);
const _: () = assert!(core::mem::offset_of!(NDIS_DEVICE_OBJECT_ATTRIBUTES, DeviceName) == 8);
const _: () = assert!(core::mem::offset_of!(NDIS_DEVICE_OBJECT_ATTRIBUTES, SymbolicName) == 16);
const _: () = assert!(core::mem::offset_of!(NDIS_DEVICE_OBJECT_ATTRIBUTES, MajorFunctions) == 24);
const _: () = assert!(core::mem::offset_of!(NDIS_DEVICE_OBJECT_ATTRIBUTES, ExtensionSize) == 32);
const _: () = assert!(core::mem::offset_of!(NDIS_DEVICE_OBJECT_ATTRIBUTES, DefaultSDDLString) == 40);
const _: () = assert!(core::mem::offset_of!(NDIS_DEVICE_OBJECT_ATTRIBUTES, DeviceClassGuid) == 48);
/// `NDIS_SIZEOF_DEVICE_OBJECT_ATTRIBUTES_REVISION_1`.
pub const NDIS_SIZEOF_DEVICE_OBJECT_ATTRIBUTES_REVISION_1: usize = 56;

#[cfg_attr(target_os = "windows", link(name = "ndis.sys", kind = "raw-dylib", modifiers = "+verbatim"))]
extern "system" {
    /// `NdisRegisterDeviceEx`. PASSIVE_LEVEL. `ndis_handle` is the filter driver handle from
    /// `NdisFRegisterFilterDriver`.
    pub fn NdisRegisterDeviceEx(
        ndis_handle: NDIS_HANDLE,
        device_object_attributes: *mut NDIS_DEVICE_OBJECT_ATTRIBUTES,
        device_object: *mut *mut DEVICE_OBJECT,
        ndis_device_handle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    /// `NdisDeregisterDeviceEx`. PASSIVE_LEVEL.
    pub fn NdisDeregisterDeviceEx(ndis_device_handle: NDIS_HANDLE);
    /// `NdisGetDeviceReservedExtension`. Any IRQL. Returns the `ExtensionSize` bytes reserved for
    /// the driver.
    pub fn NdisGetDeviceReservedExtension(device_object: *mut DEVICE_OBJECT) -> *mut c_void;
}
