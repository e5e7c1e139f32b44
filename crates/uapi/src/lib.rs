//! The rdco control API: IOCTL codes and request layouts shared by the drivers and user mode.
//!
//! The API is defined once, here, the way ovpn-dco-win keeps `uapi/ovpn-dco.h`:
//!
//! * [`ovpn`] — the ovpn-dco-win user API (IOCTL codes 1..=19, every request and response structure byte for
//!   byte, enums, option flags, version thresholds) that the miniport's control device speaks, so an OpenVPN
//!   client that drives ovpn-dco-win can drive rdco.
//! * [`rdco_filter`] — rdco's own IOCTLs for the lightweight filter's control device.
//! * [`names`] — service names, the filter's unique name, hardware id, device names, symbolic links and the
//!   device interface GUID; the INFs under `inf/` and the drivers use these same strings.
//! * [`ioctl`] — `CTL_CODE` and its constants.
//! * [`sockaddr`] — the Windows `SOCKADDR_IN` / `SOCKADDR_IN6` byte layouts.
//!
//! Every structure is a plain Rust struct with an inherent `SIZE`, a `field` module of byte offsets
//! (smoltcp style), a checked `parse(&[u8])` and a checked `write_to(&mut [u8])`. All integers are
//! little-endian (Windows on x64 and ARM64); ports and addresses are in network order as in the C structures.
//! Nothing here panics on any input, and there is no `unsafe`.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

mod error;
pub mod ioctl;
pub mod names;
pub mod ovpn;
pub mod rdco_filter;
pub mod sockaddr;
mod wire;

pub use error::UapiError;
pub use wire::Wire;
