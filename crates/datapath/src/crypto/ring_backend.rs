//! The `ring` backend (feature `ring`): host comparison only, never in the kernel images.
//!
//! ring seals only in place, so [`Aead::seal`] first gathers the segments into the output (a
//! plaintext copy the `RustCrypto` backend does not make) and seals there. AES-192-GCM is not in
//! ring and reports [`CryptoError::Unsupported`].

use super::{apply_patches, gather, Aead, Cipher, CryptoError, Patch, NONCE_LEN, TAG_LEN};
use ring::aead::{self, LessSafeKey, Nonce, UnboundKey};

/// A ring AEAD key (ring zeroizes nothing itself; its key schedules live in its own types).
pub struct RingAead {
    cipher: Cipher,
    key: Option<LessSafeKey>,
}

impl core::fmt::Debug for RingAead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RingAead").field("cipher", &self.cipher).finish_non_exhaustive()
    }
}

impl Aead for RingAead {
    fn new(cipher: Cipher, key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != cipher.key_len() {
            return Err(CryptoError::BadKeyLength);
        }
        let alg = match cipher {
            Cipher::None => return Ok(RingAead { cipher, key: None }),
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
            Cipher::Aes192Gcm => return Err(CryptoError::Unsupported),
        };
        let k = UnboundKey::new(alg, key).map_err(|_| CryptoError::BadKeyLength)?;
        Ok(RingAead { cipher, key: Some(LessSafeKey::new(k)) })
    }

    fn cipher(&self) -> Cipher {
        self.cipher
    }

    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        segments: &[&[u8]],
        patches: &[Patch],
        out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let len = gather(segments, out)?;
        let buf = out.get_mut(..len).ok_or(CryptoError::BufferTooSmall)?;
        apply_patches(buf, patches)?;
        let Some(key) = &self.key else { return Ok([0; TAG_LEN]) };
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), aead::Aad::from(aad), buf)
            .map_err(|_| CryptoError::BufferTooSmall)?;
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(tag.as_ref());
        Ok(t)
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let Some(key) = &self.key else { return Ok(()) };
        let tag = aead::Tag::from(*tag);
        key.open_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            aead::Aad::from(aad),
            tag,
            buf,
            0..,
        )
        .map(|_| ())
        .map_err(|_| CryptoError::AuthFailed)
    }
}
