//! `CTL_CODE` and the constants it is used with (`devioctl.h` / `winioctl.h`).
//!
//! `CTL_CODE(DeviceType, Function, Method, Access) = (DeviceType << 16) | (Access << 14) | (Function << 2) | Method`.

/// `FILE_DEVICE_UNKNOWN`.
pub const FILE_DEVICE_UNKNOWN: u32 = 0x0000_0022;
/// `METHOD_BUFFERED`.
pub const METHOD_BUFFERED: u32 = 0;
/// `FILE_ANY_ACCESS`.
pub const FILE_ANY_ACCESS: u32 = 0;

/// The `CTL_CODE` macro.
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// `CTL_CODE(FILE_DEVICE_UNKNOWN, function, METHOD_BUFFERED, FILE_ANY_ACCESS)`, the form every IOCTL of this
/// crate uses.
pub const fn buffered(function: u32) -> u32 {
    ctl_code(FILE_DEVICE_UNKNOWN, function, METHOD_BUFFERED, FILE_ANY_ACCESS)
}

/// The function number of an IOCTL code (`(code >> 2) & 0xFFF`).
pub const fn function_of(code: u32) -> u32 {
    (code >> 2) & 0xFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctl_code_matches_the_macro() {
        assert_eq!(ctl_code(FILE_DEVICE_UNKNOWN, 1, METHOD_BUFFERED, FILE_ANY_ACCESS), 0x0022_0004);
        // A non-zero method and access land in their own bits.
        assert_eq!(ctl_code(0x22, 0x800, 3, 2), 0x0022_A003);
        assert_eq!(function_of(0x0022_204C), 0x813);
    }
}
