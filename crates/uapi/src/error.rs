//! The one error type of the crate.

use core::fmt;

/// Why a request or response could not be parsed or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UapiError {
    /// The input buffer is shorter than the structure (or than its own size field says).
    TooShort {
        /// Bytes the structure needs.
        need: usize,
        /// Bytes the caller supplied.
        got: usize,
    },
    /// The output buffer cannot hold the structure.
    BufferTooSmall {
        /// Bytes the structure needs.
        need: usize,
        /// Bytes the caller supplied.
        got: usize,
    },
    /// A field holds a value the API does not define (unknown enum value, bad key length, bad family, ...).
    BadValue {
        /// The field's name as the C header spells it (`"CipherAlg"`, `"Encrypt.KeyLen"`, ...).
        field: &'static str,
        /// The offending value, widened.
        value: u64,
    },
}

impl fmt::Display for UapiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { need, got } => write!(f, "input too short: need {need} bytes, got {got}"),
            Self::BufferTooSmall { need, got } => {
                write!(f, "output buffer too small: need {need} bytes, got {got}")
            }
            Self::BadValue { field, value } => write!(f, "bad value {value:#x} in field {field}"),
        }
    }
}

impl core::error::Error for UapiError {}

impl UapiError {
    pub(crate) fn bad(field: &'static str, value: impl Into<u64>) -> Self {
        Self::BadValue { field, value: value.into() }
    }
}
