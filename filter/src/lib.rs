//! rdco's NDIS 6 lightweight filter driver (see `docs/filter.md` and `shared/design.md`).
//!
//! At this stage the filter is a transparent modifying filter: it registers with NDIS, attaches to every
//! Ethernet miniport its INF binds it to, keeps a per-module state machine, and registers no send or
//! receive handlers, so NDIS bypasses it on the data path. The tunnel divert, the WSK worker and the
//! control device grow on this skeleton.
//!
//! Build modes: on the host this crate is an `rlib` that tests load into the simulated kernel through
//! [`driver_entry`]; `cargo xtask package` builds it as `filter.sys`, where the exported `DriverEntry`
//! forwards to the same function.
#![no_std]

mod callbacks;
mod driver;

pub use driver::driver_entry;

/// The image's entry point on Windows; the host calls [`driver_entry`] directly.
///
/// # Safety
/// Called once by the I/O manager at PASSIVE_LEVEL with a valid driver object and registry path.
#[cfg(target_os = "windows")]
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    driver: *mut kernel::ffi::ntos::DRIVER_OBJECT,
    registry_path: *mut kernel::ffi::ntos::UNICODE_STRING,
) -> kernel::ffi::ntos::NTSTATUS {
    // SAFETY: forwarded from the I/O manager unchanged.
    unsafe { driver_entry(driver, registry_path) }
}
