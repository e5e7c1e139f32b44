//! Little-endian field access that never panics, and the [`Wire`] trait every structure implements.

use crate::UapiError;

/// A fixed-size structure of the control API.
///
/// Each implementor also has the same items as inherent `SIZE`, `parse` and `write_to`; the trait exists so
/// that code (and tests) can treat all of them alike.
pub trait Wire: Sized {
    /// The structure's size in bytes, as `sizeof` gives it on Windows x64 and ARM64.
    const SIZE: usize;
    /// Parses the structure from the start of `buf`; extra bytes after `SIZE` are ignored.
    fn parse(buf: &[u8]) -> Result<Self, UapiError>;
    /// Writes exactly `SIZE` bytes (padding zeroed) to the start of `out`; returns `SIZE`.
    fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError>;
}

/// Implements [`Wire`] by delegating to the inherent items of the same names.
macro_rules! impl_wire {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::Wire for $t {
            const SIZE: usize = <$t>::SIZE;
            fn parse(buf: &[u8]) -> Result<Self, $crate::UapiError> {
                <$t>::parse(buf)
            }
            fn write_to(&self, out: &mut [u8]) -> Result<usize, $crate::UapiError> {
                <$t>::write_to(self, out)
            }
        }
    )*};
}
pub(crate) use impl_wire;

pub(crate) fn check_in(buf: &[u8], need: usize) -> Result<(), UapiError> {
    if buf.len() < need {
        Err(UapiError::TooShort { need, got: buf.len() })
    } else {
        Ok(())
    }
}

/// Checks the output length and zeroes the structure's bytes (so padding is always zero).
pub(crate) fn prep_out(out: &mut [u8], need: usize) -> Result<(), UapiError> {
    match out.get_mut(..need) {
        Some(dst) => {
            dst.fill(0);
            Ok(())
        }
        None => Err(UapiError::BufferTooSmall { need, got: out.len() }),
    }
}

pub(crate) fn bytes<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = off.checked_add(N).and_then(|end| buf.get(off..end)) {
        a.copy_from_slice(s);
    }
    a
}

pub(crate) fn put(out: &mut [u8], off: usize, src: &[u8]) {
    if let Some(d) = off.checked_add(src.len()).and_then(|end| out.get_mut(off..end)) {
        d.copy_from_slice(src);
    }
}

pub(crate) fn u8_at(buf: &[u8], off: usize) -> u8 {
    buf.get(off).copied().unwrap_or(0)
}
pub(crate) fn u16_at(buf: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(bytes(buf, off))
}
pub(crate) fn u32_at(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(bytes(buf, off))
}
pub(crate) fn i32_at(buf: &[u8], off: usize) -> i32 {
    i32::from_le_bytes(bytes(buf, off))
}
pub(crate) fn i64_at(buf: &[u8], off: usize) -> i64 {
    i64::from_le_bytes(bytes(buf, off))
}
pub(crate) fn u64_at(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(bytes(buf, off))
}
pub(crate) fn put_u8(out: &mut [u8], off: usize, v: u8) {
    put(out, off, &[v]);
}
pub(crate) fn put_u16(out: &mut [u8], off: usize, v: u16) {
    put(out, off, &v.to_le_bytes());
}
pub(crate) fn put_u32(out: &mut [u8], off: usize, v: u32) {
    put(out, off, &v.to_le_bytes());
}
pub(crate) fn put_i32(out: &mut [u8], off: usize, v: i32) {
    put(out, off, &v.to_le_bytes());
}
pub(crate) fn put_i64(out: &mut [u8], off: usize, v: i64) {
    put(out, off, &v.to_le_bytes());
}
pub(crate) fn put_u64(out: &mut [u8], off: usize, v: u64) {
    put(out, off, &v.to_le_bytes());
}
