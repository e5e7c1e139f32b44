//! The AEAD backend trait and the ciphers of the data channel.
//!
//! # The one pass over the payload
//! [`Aead::seal`] reads the plaintext as a scatter list of segments (an MDL chain, `NET_RING`
//! fragments) and writes ciphertext into one contiguous output: the AEAD pass is the only touch
//! of the payload. Small edits the engine makes on the way through (the MSS clamp) arrive as
//! [`Patch`]es, XOR masks over the plaintext stream; the caller's plaintext is never written.
//! [`Aead::open_in_place`] authenticates and decrypts in place. [`Aead::seal_in_place`] seals a
//! plaintext that already sits in the packet buffer (a contiguous send buffer), with no copy in
//! any backend.
//!
//! # Backends
//! - [`RustCryptoAead`] (the default unless feature `ring-default`): GCM composed from the `aes`
//!   block cipher in `ctr` mode and `ghash`, and ChaCha20-Poly1305 composed from `chacha20` and
//!   `poly1305` (RFC 8439), so that the keystream is applied out of place, segment by segment,
//!   straight from the caller's plaintext into the output: the AEAD pass is the only touch of the
//!   payload. For AES-GCM the counter keystream is made in batches of up to 8 blocks (the AES-NI
//!   parallel width) that carry on across segment boundaries, the tag mask E(K, J0) included in
//!   the first; `ChaCha` uses the `chacha20` stream wrapper (`apply_keystream_b2b`). No AES,
//!   GHASH, `ChaCha` or Poly1305 primitive is hand-written here.
//! - `RingAead` (feature `ring`; the default with feature `ring-default`, which the drivers' kernel
//!   builds enable through their `crypto-ring` feature): ring 0.17 seals only in place, so it
//!   gathers the segments into the output first (one plaintext copy, reported through
//!   [`Aead::seal_gathers`] and counted by the engine) and seals there. AES-192-GCM, which ring
//!   lacks, falls back to a `RustCrypto` key inside the same type. About 4x faster than
//!   `RustCrypto` for AES-GCM on `x86_64` with VAES (docs/performance.md).
//!
//! [`DefaultAead`] names the backend the engine uses when none is given.
//!
//! # Extended processor state (kernel)
//! The kernel crate's extended-state guard (`KeSaveExtendedProcessorState` / `Restore`) is taken
//! once per batch of packets. Which operations need it, per backend ([`Aead::needs_extended_state`];
//! [`Cipher::needs_extended_state`] answers for [`DefaultAead`]):
//!
//! | backend | cipher | `x86_64` | `aarch64` |
//! |---|---|---|---|
//! | `RustCrypto` | AES-GCM | no guard: AES-NI + PCLMULQDQ in legacy-SSE encoding (XMM only) | no guard (NEON) |
//! | `RustCrypto` | ChaCha20-Poly1305 | **guard** for seal and open: AVX2 backends picked at run time | no guard |
//! | ring | AES-128/256-GCM | **guard** for key setup (`Aead::new`, i.e. `install_key` and epoch key derivation), seal and open: VAES/VPCLMULQDQ/AVX2 or AVX (`aesni-gcm`, `gcm_init_avx`) code picked by CPUID | no guard (NEON) |
//! | ring | ChaCha20-Poly1305 | **guard** for seal and open (AVX2 `ChaCha` and Poly1305) | no guard |
//! | ring | AES-192-GCM | as `RustCrypto` AES-GCM (it is `RustCrypto`) | no guard |
//! | any | `none` | no guard (copies) | no guard |
//!
//! Details:
//! - AES-GCM in the `RustCrypto` backend: `aes` 0.8 selects AES-NI at run time and `polyval` 0.6
//!   (under `ghash`) selects PCLMULQDQ; both are compiled with `#[target_feature(enable = "aes")]`
//!   / `"pclmulqdq"` over SSE2 and emit legacy-SSE encodings (XMM only), never VEX/AVX, as long as
//!   the crate is not built with `-C target-feature=+avx`. x64 Windows saves XMM state for kernel
//!   code, so no guard is needed. (On `aarch64` the AES/PMULL instructions are NEON, also saved.)
//! - ChaCha20-Poly1305 (`RustCrypto`): `chacha20` 0.9 and `poly1305` 0.8 select AVX2 backends at
//!   run time on `x86_64` when the CPU has AVX2. Those are VEX-encoded and touch YMM state.
//! - ring on `x86_64`: its CPUID dispatch (done once, no VEX) picks `aes-gcm-avx2` (VAES +
//!   VPCLMULQDQ on YMM), else `aesni-gcm` (AVX), else AES-NI + CLMUL; the GHASH key table is built
//!   by `gcm_init_avx`/`gcm_init_vpclmulqdq_avx2` in `UnboundKey::new`, so key creation is VEX too.
//!   ChaCha20-Poly1305 uses `chacha20_poly1305_x86_64` (AVX2 when present). ring's assembly
//!   saves the non-volatile XMM6-15 itself. A ring key must therefore be created, used and (for
//!   epoch keys) derived only while the guard is held on `x86_64`.
//! - `none`: plain copies.

mod rustcrypto;
pub use rustcrypto::RustCryptoAead;

#[cfg(feature = "ring")]
mod ring_backend;
#[cfg(feature = "ring")]
pub use ring_backend::RingAead;

/// The engine's default backend: [`RustCryptoAead`], or `RingAead` with feature `ring-default`
/// (the drivers' kernel builds).
#[cfg(not(feature = "ring-default"))]
pub type DefaultAead = RustCryptoAead;
/// The engine's default backend: [`RustCryptoAead`], or `RingAead` with feature `ring-default`
/// (the drivers' kernel builds).
#[cfg(feature = "ring-default")]
pub type DefaultAead = RingAead;

use core::fmt;

/// Length of an AEAD tag.
pub const TAG_LEN: usize = 16;
/// Length of an AEAD nonce.
pub const NONCE_LEN: usize = 12;
/// Longest cipher key.
pub const MAX_KEY_LEN: usize = 32;
/// Most patches one seal applies (MSS value and TCP checksum).
pub const MAX_PATCHES: usize = 2;

/// The data-channel ciphers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// No encryption, no authentication (`--cipher none`): header, packet id, plaintext.
    None,
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-192-GCM.
    Aes192Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439).
    ChaCha20Poly1305,
}

impl Cipher {
    /// Every cipher, in a fixed order.
    pub const ALL: [Cipher; 5] =
        [Cipher::None, Cipher::Aes128Gcm, Cipher::Aes192Gcm, Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305];

    /// Key length in bytes (0 for `none`).
    pub const fn key_len(self) -> usize {
        match self {
            Cipher::None => 0,
            Cipher::Aes128Gcm => 16,
            Cipher::Aes192Gcm => 24,
            Cipher::Aes256Gcm | Cipher::ChaCha20Poly1305 => 32,
        }
    }

    /// Whether the cipher encrypts and authenticates.
    pub const fn is_aead(self) -> bool {
        !matches!(self, Cipher::None)
    }

    /// The `OpenVPN` name, as `--cipher` and `rdco --cipher` spell it (lower case).
    pub const fn name(self) -> &'static str {
        match self {
            Cipher::None => "none",
            Cipher::Aes128Gcm => "aes-128-gcm",
            Cipher::Aes192Gcm => "aes-192-gcm",
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// The cipher for ovpn-dco-win's `OVPN_CIPHER_ALG` number (`NONE` 0, `AES_GCM` 1,
    /// `CHACHA20_POLY1305` 2; `uapi::ovpn::OvpnCipherAlg` in this tree) and the encrypt and decrypt
    /// key lengths of an `OVPN_CRYPTO_DATA`: AES-GCM is picked by key length, which both directions
    /// must share (ovpn-dco-win `crypto.cpp` keys both directions with one algorithm); `none` takes
    /// any lengths. `None` for an unknown number or a length the cipher does not take. Both drivers
    /// map a `None` to their own status.
    pub const fn from_ovpn_alg(alg: u32, encrypt_key_len: usize, decrypt_key_len: usize) -> Option<Cipher> {
        let cipher = match (alg, encrypt_key_len) {
            (0, _) => return Some(Cipher::None),
            (1, 16) => Cipher::Aes128Gcm,
            (1, 24) => Cipher::Aes192Gcm,
            (1, 32) => Cipher::Aes256Gcm,
            (2, 32) => Cipher::ChaCha20Poly1305,
            _ => return None,
        };
        if encrypt_key_len == decrypt_key_len {
            Some(cipher)
        } else {
            None
        }
    }

    /// Parses a name case-insensitively.
    pub fn from_name(name: &str) -> Option<Cipher> {
        Cipher::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The AEAD usage limit (`q + s`, packets plus 16-byte plaintext blocks) after which a key
    /// must be replaced; 0 for none. Same figure as `OpenVPN`'s `cipher_get_aead_limits`: 2^36 - 1
    /// for AES-GCM, no limit for ChaCha20-Poly1305.
    pub const fn aead_usage_limit(self) -> u64 {
        match self {
            Cipher::Aes128Gcm | Cipher::Aes192Gcm | Cipher::Aes256Gcm => (1 << 36) - 1,
            Cipher::None | Cipher::ChaCha20Poly1305 => 0,
        }
    }

    /// Whether key setup, seal and open with this cipher in the default backend ([`DefaultAead`])
    /// may execute AVX (VEX) instructions, so that kernel callers must hold the
    /// extended-processor-state guard around them (see the module docs for the table).
    /// `RustCrypto`: ChaCha20-Poly1305 on x86. ring (`ring-default`): every ring cipher on x86
    /// (AES-128/256-GCM, ChaCha20-Poly1305), key setup included. Never on `aarch64`.
    pub const fn needs_extended_state(self) -> bool {
        #[cfg(feature = "ring-default")]
        {
            RingAead::needs_extended_state_for(self)
        }
        #[cfg(not(feature = "ring-default"))]
        {
            RustCryptoAead::needs_extended_state_for(self)
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of the crypto layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// The key has the wrong length for the cipher.
    BadKeyLength,
    /// The output is shorter than the plaintext, or a patch lies outside it.
    BufferTooSmall,
    /// The tag did not verify.
    AuthFailed,
    /// The backend does not implement this cipher.
    Unsupported,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CryptoError::BadKeyLength => "bad key length",
            CryptoError::BufferTooSmall => "buffer too small",
            CryptoError::AuthFailed => "authentication failed",
            CryptoError::Unsupported => "cipher not supported by this backend",
        })
    }
}

/// An XOR mask over two bytes of the plaintext stream, applied as the plaintext passes through
/// seal. `offset` counts from the start of the concatenated segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patch {
    /// Offset into the plaintext stream.
    pub offset: usize,
    /// Mask: old bytes XOR new bytes.
    pub xor: [u8; 2],
}

/// Applies `patches` (XOR masks) to `buf`, which holds the plaintext stream or a keystream-XORed
/// image of it (XOR commutes with a stream cipher).
#[inline]
pub(crate) fn apply_patches(buf: &mut [u8], patches: &[Patch]) -> Result<(), CryptoError> {
    for p in patches {
        let end = p.offset.checked_add(2).ok_or(CryptoError::BufferTooSmall)?;
        let dst = buf.get_mut(p.offset..end).ok_or(CryptoError::BufferTooSmall)?;
        dst[0] ^= p.xor[0];
        dst[1] ^= p.xor[1];
    }
    Ok(())
}

/// Refuses `patches` unless every one lies inside a buffer of `len` bytes, so that an in-place
/// seal changes nothing when it fails.
#[inline]
pub(crate) fn check_patches(len: usize, patches: &[Patch]) -> Result<(), CryptoError> {
    if patches.iter().all(|p| p.offset.checked_add(2).is_some_and(|end| end <= len)) {
        Ok(())
    } else {
        Err(CryptoError::BufferTooSmall)
    }
}

/// Total length of a scatter list.
#[inline]
pub fn total_len(segments: &[&[u8]]) -> usize {
    segments.iter().map(|s| s.len()).sum()
}

/// One direction's AEAD key in some backend.
///
/// Implementations hold expanded key material and must zeroize it on drop.
pub trait Aead: Sized + fmt::Debug {
    /// Expands `key` for `cipher`. `key.len()` must be `cipher.key_len()`.
    fn new(cipher: Cipher, key: &[u8]) -> Result<Self, CryptoError>;

    /// The cipher of this key.
    fn cipher(&self) -> Cipher;

    /// Whether [`Aead::seal`] with this key copies the plaintext segments into `out` before its
    /// AEAD pass (an in-place backend): one plaintext touch beyond the AEAD pass, which the engine
    /// reports (`Sealed::gathered`) so drivers can count it. `false` when the AEAD pass reads the
    /// segments directly, and for `none` (whose only pass is that copy).
    fn seal_gathers(&self) -> bool {
        false
    }

    /// Whether key setup ([`Aead::new`]), seal and open with `cipher` in this backend may execute
    /// AVX (VEX) instructions, so that kernel callers must hold the extended-state guard.
    fn needs_extended_state(cipher: Cipher) -> bool;

    /// Encrypts the concatenation of `segments` (with `patches` applied) into
    /// `out[..total_len(segments)]` and returns the tag (all zero for `none`).
    /// `aad` is authenticated, not encrypted.
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        segments: &[&[u8]],
        patches: &[Patch],
        out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError>;

    /// As [`Aead::seal`], but writes the tag straight into `tag` (the packet's tag field) instead
    /// of returning it, so that the engine's hot path moves the tag once. `tag` is unspecified
    /// when this fails. Backends whose AEAD hands back the tag by value (ring) override it.
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
        *tag = self.seal(nonce, aad, segments, patches, out)?;
        Ok(())
    }

    /// Encrypts `buf` in place, with `patches` applied to the plaintext on the way, and writes
    /// the tag into `tag` (all zero for `none`). The in-place counterpart of [`Aead::seal_into`]
    /// for a caller whose plaintext already sits in the packet buffer at the payload offset: no
    /// gather copy, so the AEAD pass is the only touch of the payload with every backend. The
    /// plaintext is consumed (it becomes the ciphertext), so the patches may be applied in
    /// `buf`. A patch outside `buf` is refused before anything is written
    /// ([`CryptoError::BufferTooSmall`]).
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        patches: &[Patch],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError>;

    /// Verifies `tag` over `aad` and the ciphertext `buf`, then decrypts `buf` in place. On
    /// failure the `RustCrypto` backend leaves `buf` as it was; ring may have overwritten it (its
    /// contents are then unspecified, and the engine drops the packet either way).
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError>;
}

/// Copies the segments into `out` (the `none` cipher, and gather for in-place backends).
#[inline]
pub(crate) fn gather(segments: &[&[u8]], out: &mut [u8]) -> Result<usize, CryptoError> {
    // One segment (the usual case): one bounds check, one copy.
    if let [s] = segments {
        out.get_mut(..s.len()).ok_or(CryptoError::BufferTooSmall)?.copy_from_slice(s);
        return Ok(s.len());
    }
    let mut off = 0usize;
    for s in segments {
        let end = off.checked_add(s.len()).ok_or(CryptoError::BufferTooSmall)?;
        out.get_mut(off..end).ok_or(CryptoError::BufferTooSmall)?.copy_from_slice(s);
        off = end;
    }
    Ok(off)
}
