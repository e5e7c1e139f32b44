//! The `ring` backend (feature `ring`; the engine's default AEAD with feature `ring-default`, which
//! the drivers' kernel builds enable).
//!
//! ring 0.17 seals only in place, so [`Aead::seal`] first gathers the segments into the output (one
//! plaintext copy the `RustCrypto` backend does not make), applies the MSS patches there, and seals
//! in place. That copy is reported: [`Aead::seal_gathers`] is `true` for the ring ciphers, and the
//! engine passes it on as `Sealed::gathered` and `PeerStats::tx_gathered`. [`Aead::seal_in_place`]
//! (the engine's `Peer::seal_in_place`) needs no copy: the plaintext already sits in the packet.
//!
//! AES-192-GCM is not in ring; a [`RingAead`] for it holds a [`RustCryptoAead`] key instead, so the
//! backend covers every data-channel cipher and can be the engine's default.
//!
//! # Kernel use
//! - Builds for `x86_64-pc-windows-msvc` and `aarch64-pc-windows-msvc` with `clang-16`, a tiny
//!   freestanding header shim (`crates/datapath/kernel-shim/include`) and link-time stubs; see
//!   `xtask/src/cross.rs` and docs/performance.md ("Backend decision"). Nothing here calls
//!   `ring::rand`, so getrandom's `BCryptGenRandom`/`RtlGenRandom` are never referenced and never
//!   imported.
//! - On `x86_64` ring selects VAES/VPCLMULQDQ/AVX2 (or AVX) AES-GCM and AVX2 ChaCha20-Poly1305 code
//!   at run time, also in key setup (the GHASH key table): key creation, seal and open must run
//!   inside the extended-state guard there ([`Aead::needs_extended_state`]).

use super::{
    apply_patches, check_patches, gather, Aead, Cipher, CryptoError, Patch, RustCryptoAead, NONCE_LEN,
    TAG_LEN,
};
use ring::aead::{self, LessSafeKey, Nonce, UnboundKey};

// One key per direction, built at configuration time; boxing a variant would only add an indirection
// to every packet.
#[allow(clippy::large_enum_variant)]
enum Key {
    /// `none`: copies only.
    None,
    /// A ring AEAD key (ring keeps its key schedule in its own types).
    Ring(LessSafeKey),
    /// AES-192-GCM, which ring lacks.
    RustCrypto(RustCryptoAead),
}

/// A ring AEAD key, or a `RustCrypto` key for the one cipher ring lacks (AES-192-GCM).
pub struct RingAead {
    cipher: Cipher,
    key: Key,
}

impl core::fmt::Debug for RingAead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RingAead").field("cipher", &self.cipher).finish_non_exhaustive()
    }
}

impl RingAead {
    /// Whether seal/open/key setup with `cipher` may run AVX (VEX) code in this backend: every ring
    /// cipher on x86 (ring dispatches to VAES/AVX2/AVX code by CPUID); AES-192-GCM uses the
    /// `RustCrypto` rule; never on `aarch64` (NEON, saved by the kernel).
    pub const fn needs_extended_state_for(cipher: Cipher) -> bool {
        match cipher {
            Cipher::None => false,
            Cipher::Aes192Gcm => RustCryptoAead::needs_extended_state_for(cipher),
            Cipher::Aes128Gcm | Cipher::Aes256Gcm | Cipher::ChaCha20Poly1305 => {
                cfg!(any(target_arch = "x86_64", target_arch = "x86"))
            }
        }
    }
}

impl Aead for RingAead {
    fn new(cipher: Cipher, key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != cipher.key_len() {
            return Err(CryptoError::BadKeyLength);
        }
        let alg = match cipher {
            Cipher::None => return Ok(RingAead { cipher, key: Key::None }),
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
            Cipher::Aes192Gcm => {
                return Ok(RingAead { cipher, key: Key::RustCrypto(RustCryptoAead::new(cipher, key)?) });
            }
        };
        let k = UnboundKey::new(alg, key).map_err(|_| CryptoError::BadKeyLength)?;
        Ok(RingAead { cipher, key: Key::Ring(LessSafeKey::new(k)) })
    }

    #[inline]
    fn cipher(&self) -> Cipher {
        self.cipher
    }

    #[inline]
    fn seal_gathers(&self) -> bool {
        matches!(self.key, Key::Ring(_))
    }

    #[inline]
    fn needs_extended_state(cipher: Cipher) -> bool {
        Self::needs_extended_state_for(cipher)
    }

    #[inline]
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        segments: &[&[u8]],
        patches: &[Patch],
        out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let mut tag = [0u8; TAG_LEN];
        self.seal_into(nonce, aad, segments, patches, out, &mut tag)?;
        Ok(tag)
    }

    #[inline]
    fn seal_into(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        segments: &[&[u8]],
        patches: &[Patch],
        out: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        if let Key::RustCrypto(k) = &self.key {
            return k.seal_into(nonce, aad, segments, patches, out, tag);
        }
        let len = gather(segments, out)?;
        let buf = out.get_mut(..len).ok_or(CryptoError::BufferTooSmall)?;
        apply_patches(buf, patches)?;
        let Key::Ring(key) = &self.key else {
            // Cipher `none`: the patched plaintext is the payload, with an all-zero tag.
            *tag = [0; TAG_LEN];
            return Ok(());
        };
        // ring hands the tag back by value; it is moved once, straight into the caller's field.
        match key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), aead::Aad::from(aad), buf)
        {
            Ok(t) => {
                tag.copy_from_slice(t.as_ref());
                Ok(())
            }
            Err(_) => Err(CryptoError::BufferTooSmall),
        }
    }

    // Always inlined: as a call it cost the engine's in-place seal 22 instructions per packet
    // (prologue, epilogue, argument moves; callgrind, 64-byte AES-256-GCM), about 2 % at 64 B.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        patches: &[Patch],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        if let Key::RustCrypto(k) = &self.key {
            return k.seal_in_place(nonce, aad, buf, patches, tag);
        }
        // ring's tag covers the ciphertext it makes, so the patches go into the plaintext first
        // (the caller handed it over to be overwritten); all are checked before any is applied.
        check_patches(buf.len(), patches)?;
        apply_patches(buf, patches)?;
        let Key::Ring(key) = &self.key else {
            // Cipher `none`: the patched plaintext is the payload, with an all-zero tag.
            *tag = [0; TAG_LEN];
            return Ok(());
        };
        match key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), aead::Aad::from(aad), buf)
        {
            Ok(t) => {
                tag.copy_from_slice(t.as_ref());
                Ok(())
            }
            Err(_) => Err(CryptoError::BufferTooSmall),
        }
    }

    #[inline]
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let key = match &self.key {
            Key::None => return Ok(()),
            Key::RustCrypto(k) => return k.open_in_place(nonce, aad, buf, tag),
            Key::Ring(k) => k,
        };
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
