//! The test-bed key file `data64.key` (ovpn-dco-cli, Linux `ovpn-cli`).
//!
//! Base64 of 72 bytes: key A (32) || key B (32) || nonce tail (8). Key direction 0 encrypts with A
//! and decrypts with B, direction 1 the reverse; both directions use the same nonce tail. Ciphers
//! with shorter keys use the leading bytes. ASCII whitespace (line breaks) anywhere is ignored.

use crate::crypto::Cipher;
use crate::keys::{KeyConfig, KeyDirection, KeyFormat};
use base64ct::{Base64, Encoding};
use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Decoded length.
pub const KEY_FILE_LEN: usize = 72;
/// Longest base64 text accepted (after removing whitespace).
pub const MAX_TEXT_LEN: usize = 128;

/// Key-file errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFileError {
    /// Not valid base64.
    BadBase64,
    /// Decodes to this many bytes instead of 72.
    WrongLength(usize),
    /// Too much text to be a key file.
    TooLong,
    /// Key direction other than 0 or 1.
    BadDirection,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::BadBase64 => f.write_str("key file is not valid base64"),
            KeyFileError::WrongLength(n) => {
                write!(f, "key file decodes to {n} bytes, expected {KEY_FILE_LEN}")
            }
            KeyFileError::TooLong => f.write_str("key file is too long"),
            KeyFileError::BadDirection => f.write_str("key direction must be 0 or 1"),
        }
    }
}

/// A parsed `data64.key`. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct KeyFile {
    /// Key A.
    pub key_a: [u8; 32],
    /// Key B.
    pub key_b: [u8; 32],
    /// Nonce tail, used by both directions.
    pub nonce_tail: [u8; 8],
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyFile(..)")
    }
}

impl KeyFile {
    /// Parses the file's text.
    pub fn parse(text: &[u8]) -> Result<KeyFile, KeyFileError> {
        let mut compact = [0u8; MAX_TEXT_LEN];
        let mut n = 0usize;
        for &b in text {
            if b.is_ascii_whitespace() {
                continue;
            }
            let slot = compact.get_mut(n).ok_or(KeyFileError::TooLong)?;
            *slot = b;
            n += 1;
        }
        let mut raw = [0u8; MAX_TEXT_LEN];
        let decoded = Base64::decode(compact.get(..n).unwrap_or(&[]), &mut raw);
        compact.zeroize();
        let result = match decoded {
            Ok(bytes) if bytes.len() == KEY_FILE_LEN => {
                let mut kf = KeyFile { key_a: [0; 32], key_b: [0; 32], nonce_tail: [0; 8] };
                kf.key_a.copy_from_slice(&bytes[..32]);
                kf.key_b.copy_from_slice(&bytes[32..64]);
                kf.nonce_tail.copy_from_slice(&bytes[64..72]);
                Ok(kf)
            }
            Ok(bytes) => Err(KeyFileError::WrongLength(bytes.len())),
            Err(_) => Err(KeyFileError::BadBase64),
        };
        raw.zeroize();
        result
    }

    /// Encodes as the file's text (no line breaks, no trailing newline).
    pub fn encode<'a>(&self, out: &'a mut [u8; 96]) -> &'a str {
        let mut raw = [0u8; KEY_FILE_LEN];
        raw[..32].copy_from_slice(&self.key_a);
        raw[32..64].copy_from_slice(&self.key_b);
        raw[64..].copy_from_slice(&self.nonce_tail);
        let s = Base64::encode(&raw, out).unwrap_or("");
        raw.zeroize();
        s
    }

    /// The (encrypt, decrypt) key directions for key direction `direction` (0 or 1).
    pub fn directions(&self, direction: u8) -> Result<(KeyDirection, KeyDirection), KeyFileError> {
        let a = KeyDirection { key: self.key_a, nonce_tail: self.nonce_tail };
        let b = KeyDirection { key: self.key_b, nonce_tail: self.nonce_tail };
        match direction {
            0 => Ok((a, b)),
            1 => Ok((b, a)),
            _ => Err(KeyFileError::BadDirection),
        }
    }

    /// A key-slot configuration for `cipher`, `format`, `key_id` and `direction`.
    pub fn key_config(
        &self,
        cipher: Cipher,
        format: KeyFormat,
        key_id: u8,
        direction: u8,
    ) -> Result<KeyConfig, KeyFileError> {
        let (encrypt, decrypt) = self.directions(direction)?;
        Ok(KeyConfig { cipher, format, key_id, encrypt, decrypt })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_directions() {
        let kf = KeyFile { key_a: [1; 32], key_b: [2; 32], nonce_tail: [3; 8] };
        let mut buf = [0u8; 96];
        let text = kf.encode(&mut buf);
        assert_eq!(text.len(), 96);
        let mut wrapped = alloc::string::String::new();
        for (i, c) in text.chars().enumerate() {
            if i % 64 == 0 && i > 0 {
                wrapped.push_str("\r\n");
            }
            wrapped.push(c);
        }
        wrapped.push('\n');
        let back = KeyFile::parse(wrapped.as_bytes()).unwrap();
        assert_eq!(back, kf);
        let (e, d) = back.directions(1).unwrap();
        assert_eq!((e.key[0], d.key[0], e.nonce_tail, d.nonce_tail), (2, 1, [3; 8], [3; 8]));
        assert_eq!(back.directions(2).unwrap_err(), KeyFileError::BadDirection);
    }

    #[test]
    fn errors() {
        assert_eq!(KeyFile::parse(b"!!!!"), Err(KeyFileError::BadBase64));
        assert_eq!(KeyFile::parse(b"AAAA"), Err(KeyFileError::WrongLength(3)));
        assert_eq!(KeyFile::parse(&[b'A'; 200]), Err(KeyFileError::TooLong));
        assert_eq!(KeyFile::parse(b""), Err(KeyFileError::WrongLength(0)));
    }
}
