//! Counted UTF-16 strings from Rust string constants, for the names drivers register with.
use crate::ffi::ntos::UNICODE_STRING;

/// Widens an ASCII string to UTF-16 at compile time. `N` must equal the string's length; a non-ASCII
/// character or a wrong `N` fails the build (const evaluation panics).
pub const fn ascii_utf16<const N: usize>(text: &str) -> [u16; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() == N, "N must equal the string length");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        assert!(bytes[i].is_ascii(), "only ASCII names are supported");
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

/// A `UNICODE_STRING` over a static UTF-16 buffer. The kernel only reads such strings (registration
/// names), so the `*mut` in the structure never becomes a write.
pub fn static_unicode(buffer: &'static [u16]) -> UNICODE_STRING {
    let bytes = u16::try_from(buffer.len() * 2).unwrap_or(0xfffe);
    UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: buffer.as_ptr().cast_mut() }
}

/// `unicode_string!("name")`: a `UNICODE_STRING` for an ASCII constant, its buffer in a static.
#[macro_export]
macro_rules! unicode_string {
    ($text:expr) => {{
        const TEXT: &str = $text;
        static BUFFER: [u16; TEXT.len()] = $crate::strings::ascii_utf16::<{ TEXT.len() }>(TEXT);
        $crate::strings::static_unicode(&BUFFER)
    }};
}
