//! Raw declarations, one module per kernel boundary.
//!
//! Everything here mirrors the C headers: Windows names, `#[repr(C)]` layouts with `const` size and
//! offset assertions (Windows x64 values; ARM64 is identical unless a module says otherwise, and
//! the Linux host build must reproduce the x64 layout exactly so the simulated kernel can hand the
//! drivers real Windows-shaped structures). C `ULONG`/`LONG` are 32-bit on Windows and map to
//! `u32`/`i32`, never `c_long`.
//!
//! Each `extern` block imports from the module that exports its functions (`ntoskrnl.exe`,
//! `hal.dll`, `ndis.sys`, `netio.sys`, `wdfldr.sys`) through `raw-dylib` on Windows targets; on the
//! host the blocks carry no link attribute and the simulated kernel (`crates/winsim`) defines the
//! symbols. Header macros and force-inlines become `#[inline]` Rust functions, documented as such.
//! Every function is `unsafe` and states its IRQL contract as the header's SAL annotations do.
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]
#![allow(clippy::upper_case_acronyms, clippy::doc_markdown)]

/// Implements `Debug` for unions by printing the type name only (which member is active is known
/// to the code that owns the value, not to the formatter).
macro_rules! union_debug {
    ($($t:ident),* $(,)?) => {
        $(impl core::fmt::Debug for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(stringify!($t))
            }
        })*
    };
}

pub mod mdl;
pub mod nbl;
pub mod ndis;
pub mod ndis_device;
pub mod ndis_filter;
pub mod netcx;
pub mod ntos;
pub mod oid;
pub mod wdf;
pub mod wsk;
