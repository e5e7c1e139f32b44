//! The rdco data-channel engine (see `shared/design.md`).
#![no_std]
#![forbid(unsafe_code)]
