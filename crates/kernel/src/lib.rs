//! Kernel bindings: the one home of FFI in rdco.
//!
//! * [`ffi`]: raw declarations of the Windows kernel structures and functions the drivers use (NTOS,
//!   NDIS, WSK, KMDF/NetAdapterCx), from the public headers, with `const` layout assertions.
//! * [`runtime`]: what a Rust kernel image needs besides: global allocator, panic handler, `_fltused`.
//!   Supplied here for the host and cross builds; by `wdk-sys`/`wdk`/`wdk-alloc` with feature `wdk`.
//!
//! Imports are resolved per build mode: on Windows targets every `extern` block links through
//! `raw-dylib` against the kernel module that exports it (no import library needed); on the host they
//! are left undefined here and resolved at link time by the simulated kernel (`crates/winsim`), which
//! exports the same symbols.
#![no_std]

pub mod ffi;
pub mod kmdf;
pub mod kmdf_io;
pub mod netcx;
pub mod pool;
pub mod runtime;
pub mod strings;
pub mod sync;
pub mod wsk;
