//! Names shared by the drivers, the INFs under `inf/`, user mode and the tests.
//!
//! The INF checker (`tests/src/inf.rs`) compares `inf/filter.inf` and `inf/miniport.inf` against these
//! constants, so a rename happens here and in the INF together or the tests fail.

// ---------------------------------------------------------------------------------------------------------
// The lightweight filter
// ---------------------------------------------------------------------------------------------------------

/// The filter's NT service name: `AddService` and `HKR,Ndi,Service` in `filter.inf`, and the `ServiceName`
/// of the `NDIS_FILTER_DRIVER_CHARACTERISTICS` the driver gives `NdisFRegisterFilterDriver`.
pub const FILTER_SERVICE_NAME: &str = "rdcofilter";
/// The filter's unique name: a GUID in braces, equal to `NetCfgInstanceId` in `filter.inf` and to the
/// `UniqueName` of `NDIS_FILTER_DRIVER_CHARACTERISTICS` (the two must be identical, braces included — see the
/// note on `NetCfgInstanceId` in Windows-driver-samples `network/ndis/filter/netlwf.inf`).
pub const FILTER_UNIQUE_NAME: &str = "{F7FE87D7-D39E-4AFF-981C-5D7F5CAF930F}";
/// The filter's friendly name: the `FriendlyName` the driver registers with and the description in the INF.
pub const FILTER_FRIENDLY_NAME: &str = "rdco VPN Lightweight Filter";
/// The component id of the filter (the hardware id of its `NetService` model line, used with
/// `netcfg -l filter.inf -c s -i rdco_filter`).
pub const FILTER_COMPONENT_ID: &str = "rdco_filter";
/// `FilterClass` in `filter.inf` (`HKR, Ndi, FilterClass`).
pub const FILTER_CLASS: &str = "vpn";
/// `FilterType` 2: a modifying filter.
pub const FILTER_TYPE_MODIFYING: u32 = 2;
/// `FilterRunType` 2: an optional filter.
pub const FILTER_RUN_TYPE_OPTIONAL: u32 = 2;
/// `FilterMediaTypes`.
pub const FILTER_MEDIA_TYPES: &str = "ethernet";
/// The filter's image, as `cargo xtask package` names it beside `filter.inf`.
pub const FILTER_IMAGE: &str = "filter.sys";
/// The INF file name of the filter.
pub const FILTER_INF: &str = "filter.inf";

/// The filter's control device (`NdisRegisterDeviceEx` `DeviceName`).
pub const FILTER_DEVICE_NAME: &str = "\\Device\\rdcofilter";
/// The filter's control device symbolic link (`NdisRegisterDeviceEx` `SymbolicName`).
pub const FILTER_SYMBOLIC_LINK: &str = "\\DosDevices\\rdcofilter";
/// The path user mode opens for the filter's control device.
pub const FILTER_USER_PATH: &str = "\\\\.\\rdcofilter";

// ---------------------------------------------------------------------------------------------------------
// The NetAdapterCx miniport
// ---------------------------------------------------------------------------------------------------------

/// The miniport's NT service name (`AddService`, `HKR,Ndi,Service` and `KmdfService` in `miniport.inf`).
pub const MINIPORT_SERVICE_NAME: &str = "rdcominiport";
/// The miniport's hardware id (the model line of `miniport.inf`; a root or software device is created with
/// it).
pub const MINIPORT_HARDWARE_ID: &str = "rdco_tun";
/// The miniport's device description.
pub const MINIPORT_FRIENDLY_NAME: &str = "rdco Tunnel Adapter";
/// The miniport's image, as `cargo xtask package` names it beside `miniport.inf`.
pub const MINIPORT_IMAGE: &str = "miniport.sys";
/// The INF file name of the miniport.
pub const MINIPORT_INF: &str = "miniport.inf";

/// ovpn-dco-win's symbolic link to the adapter's device (`\\.\ovpn-dco`), used by its test client;
/// `Driver.cpp` at `OpenVPN/ovpn-dco-win@0dc463cfb0cd219ab0afc9c237861649dc956ef6`.
pub const OVPN_DCO_SYMBOLIC_LINK: &str = "\\DosDevices\\ovpn-dco";
/// The path user mode opens through [`OVPN_DCO_SYMBOLIC_LINK`].
pub const OVPN_DCO_USER_PATH: &str = "\\\\.\\ovpn-dco";
/// ovpn-dco-win's version control device (`control.cpp`), answering `OVPN_IOCTL_GET_VERSION` without an
/// adapter.
pub const OVPN_DCO_VER_DEVICE_NAME: &str = "\\Device\\ovpn-dco-ver";
/// Its symbolic link.
pub const OVPN_DCO_VER_SYMBOLIC_LINK: &str = "\\DosDevices\\ovpn-dco-ver";
/// The path user mode opens for the version device (OpenVPN tries it first, then [`OVPN_DCO_USER_PATH`]).
pub const OVPN_DCO_VER_USER_PATH: &str = "\\\\.\\ovpn-dco-ver";
/// The reference string of the adapter's device interface.
pub const OVPN_DCO_INTERFACE_REFERENCE: &str = "ovpn-dco";
/// The device interface class the adapter registers: `GUID_DEVINTERFACE_NET` (`ndisguid.h`).
/// OpenVPN 2 and 3 find the adapter through it.
pub const GUID_DEVINTERFACE_NET: Guid = Guid {
    data1: 0xCAC8_8484,
    data2: 0x7515,
    data3: 0x4C03,
    data4: [0x82, 0xE6, 0x71, 0xA8, 0x7A, 0xBA, 0xC3, 0x61],
};
/// [`GUID_DEVINTERFACE_NET`] as text.
pub const GUID_DEVINTERFACE_NET_STR: &str = "{CAC88484-7515-4C03-82E6-71A87ABAC361}";

// ---------------------------------------------------------------------------------------------------------
// Setup classes
// ---------------------------------------------------------------------------------------------------------

/// `GUID_DEVCLASS_NET` — `Class = Net`.
pub const CLASS_GUID_NET: &str = "{4D36E972-E325-11CE-BFC1-08002BE10318}";
/// `GUID_DEVCLASS_NETSERVICE` — `Class = NetService`.
pub const CLASS_GUID_NETSERVICE: &str = "{4D36E974-E325-11CE-BFC1-08002BE10318}";

/// A GUID in the Windows `GUID` layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Guid {
    /// `Data1`
    pub data1: u32,
    /// `Data2`
    pub data2: u16,
    /// `Data3`
    pub data3: u16,
    /// `Data4`
    pub data4: [u8; 8],
}

impl Guid {
    /// The 16 bytes of the structure in memory (little-endian `Data1..Data3`).
    pub const fn to_bytes(&self) -> [u8; 16] {
        let a = self.data1.to_le_bytes();
        let b = self.data2.to_le_bytes();
        let c = self.data3.to_le_bytes();
        let d = self.data4;
        [a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]
    }
}

/// The UTF-16 form of an ASCII name, for `UNICODE_STRING`s: `const NAME_W: [u16; N] = utf16(NAME);`.
/// `N` must equal the length; a mismatch or a non-ASCII byte fails at compile time when used in a `const`.
pub const fn utf16<const N: usize>(s: &str) -> [u16; N] {
    let b = s.as_bytes();
    assert!(b.len() == N, "length mismatch");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        assert!(b[i].is_ascii(), "not ASCII");
        out[i] = b[i] as u16;
        i += 1;
    }
    out
}

/// [`FILTER_DEVICE_NAME`] in UTF-16.
pub const FILTER_DEVICE_NAME_W: [u16; FILTER_DEVICE_NAME.len()] = utf16(FILTER_DEVICE_NAME);
/// [`FILTER_SYMBOLIC_LINK`] in UTF-16.
pub const FILTER_SYMBOLIC_LINK_W: [u16; FILTER_SYMBOLIC_LINK.len()] = utf16(FILTER_SYMBOLIC_LINK);
/// [`FILTER_SERVICE_NAME`] in UTF-16.
pub const FILTER_SERVICE_NAME_W: [u16; FILTER_SERVICE_NAME.len()] = utf16(FILTER_SERVICE_NAME);
/// [`FILTER_UNIQUE_NAME`] in UTF-16.
pub const FILTER_UNIQUE_NAME_W: [u16; FILTER_UNIQUE_NAME.len()] = utf16(FILTER_UNIQUE_NAME);
/// [`FILTER_FRIENDLY_NAME`] in UTF-16.
pub const FILTER_FRIENDLY_NAME_W: [u16; FILTER_FRIENDLY_NAME.len()] = utf16(FILTER_FRIENDLY_NAME);
/// [`OVPN_DCO_SYMBOLIC_LINK`] in UTF-16.
pub const OVPN_DCO_SYMBOLIC_LINK_W: [u16; OVPN_DCO_SYMBOLIC_LINK.len()] = utf16(OVPN_DCO_SYMBOLIC_LINK);
/// [`OVPN_DCO_VER_DEVICE_NAME`] in UTF-16.
pub const OVPN_DCO_VER_DEVICE_NAME_W: [u16; OVPN_DCO_VER_DEVICE_NAME.len()] = utf16(OVPN_DCO_VER_DEVICE_NAME);
/// [`OVPN_DCO_VER_SYMBOLIC_LINK`] in UTF-16.
pub const OVPN_DCO_VER_SYMBOLIC_LINK_W: [u16; OVPN_DCO_VER_SYMBOLIC_LINK.len()] =
    utf16(OVPN_DCO_VER_SYMBOLIC_LINK);
/// [`OVPN_DCO_INTERFACE_REFERENCE`] in UTF-16.
pub const OVPN_DCO_INTERFACE_REFERENCE_W: [u16; OVPN_DCO_INTERFACE_REFERENCE.len()] =
    utf16(OVPN_DCO_INTERFACE_REFERENCE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_and_bytes_agree() {
        let b = GUID_DEVINTERFACE_NET.to_bytes();
        assert_eq!(
            b,
            [0x84, 0x84, 0xC8, 0xCA, 0x15, 0x75, 0x03, 0x4C, 0x82, 0xE6, 0x71, 0xA8, 0x7A, 0xBA, 0xC3, 0x61]
        );
        assert_eq!(GUID_DEVINTERFACE_NET_STR.len(), 38);
    }

    #[test]
    fn unique_name_is_a_braced_guid() {
        let s = FILTER_UNIQUE_NAME.as_bytes();
        assert_eq!(s.len(), 38);
        assert_eq!((s[0], s[37]), (b'{', b'}'));
        for (i, c) in s[1..37].iter().enumerate() {
            if [8, 13, 18, 23].contains(&i) {
                assert_eq!(*c, b'-');
            } else {
                assert!(c.is_ascii_hexdigit() && !c.is_ascii_lowercase());
            }
        }
    }

    #[test]
    fn utf16_forms() {
        assert_eq!(FILTER_SERVICE_NAME_W, [114, 100, 99, 111, 102, 105, 108, 116, 101, 114]);
        assert_eq!(FILTER_DEVICE_NAME_W.len(), FILTER_DEVICE_NAME.len());
    }
}
