//! The `RustCrypto` backend: out-of-place CTR/ChaCha keystream over the segments, then the
//! universal hash over the ciphertext in the output.

use super::{apply_patches, check_patches, gather, Aead, Cipher, CryptoError, Patch, NONCE_LEN, TAG_LEN};
use aes::{Aes128, Aes192, Aes256};
use chacha20::ChaCha20;
use cipher::{
    consts::U16, BlockCipher, BlockEncrypt, BlockSizeUser, InnerIvInit, KeyInit, KeyIvInit, StreamCipher,
    StreamCipherCore, StreamCipherCoreWrapper, StreamCipherSeek,
};
use ghash::GHash;
use poly1305::Poly1305;
use subtle::ConstantTimeEq;
use universal_hash::UniversalHash;
use zeroize::{Zeroize, ZeroizeOnDrop};

type Block = cipher::generic_array::GenericArray<u8, U16>;
type CtrCore<'a, C> = ctr::CtrCore<&'a C, ctr::flavors::Ctr32BE>;

/// GCM over a block cipher: the key schedule and the GHASH key.
struct Gcm<C> {
    cipher: C,
    ghash: GHash,
}

impl<C: BlockCipher + BlockEncrypt + BlockSizeUser<BlockSize = U16> + KeyInit> Gcm<C> {
    fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let cipher = C::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength)?;
        let mut h = Block::default();
        cipher.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        h.zeroize();
        Ok(Gcm { cipher, ghash })
    }

    /// The counter positioned after J0, and the tag mask E(K, J0).
    fn ctr(&self, nonce: &[u8; NONCE_LEN]) -> (StreamCipherCoreWrapper<CtrCore<'_, C>>, Block) {
        let mut j0 = Block::default();
        j0[..NONCE_LEN].copy_from_slice(nonce);
        j0[15] = 1;
        let mut core = CtrCore::<C>::inner_iv_init(&self.cipher, &j0);
        let mut mask = Block::default();
        core.write_keystream_block(&mut mask);
        (StreamCipherCoreWrapper::from_core(core), mask)
    }

    fn tag(&self, mask: &Block, aad: &[u8], ct: &[u8]) -> [u8; TAG_LEN] {
        let mut ghash = self.ghash.clone();
        ghash.update_padded(aad);
        ghash.update_padded(ct);
        let mut lens = Block::default();
        lens[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        lens[8..].copy_from_slice(&(ct.len() as u64 * 8).to_be_bytes());
        ghash.update(&[lens]);
        let t = ghash.finalize();
        let mut tag = [0u8; TAG_LEN];
        for ((o, a), b) in tag.iter_mut().zip(t.iter()).zip(mask.iter()) {
            *o = a ^ b;
        }
        tag
    }

    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        segments: &[&[u8]],
        patches: &[Patch],
        out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let (mut ctr, mask) = self.ctr(nonce);
        let len = keystream_b2b(&mut ctr, segments, out)?;
        let ct = out.get_mut(..len).ok_or(CryptoError::BufferTooSmall)?;
        apply_patches(ct, patches)?;
        Ok(self.tag(&mask, aad, ct))
    }

    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        patches: &[Patch],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        check_patches(buf.len(), patches)?;
        let (mut ctr, mask) = self.ctr(nonce);
        ctr.apply_keystream(buf);
        // XOR commutes with the keystream: patching the ciphertext patches the plaintext.
        apply_patches(buf, patches)?;
        Ok(self.tag(&mask, aad, buf))
    }

    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let (mut ctr, mask) = self.ctr(nonce);
        let expected = self.tag(&mask, aad, buf);
        if !bool::from(expected.ct_eq(tag)) {
            return Err(CryptoError::AuthFailed);
        }
        ctr.apply_keystream(buf);
        Ok(())
    }
}

/// Applies the keystream from each segment into the next bytes of `out`; returns the length.
fn keystream_b2b<S: StreamCipher>(
    s: &mut S,
    segments: &[&[u8]],
    out: &mut [u8],
) -> Result<usize, CryptoError> {
    let mut off = 0usize;
    for seg in segments {
        let end = off.checked_add(seg.len()).ok_or(CryptoError::BufferTooSmall)?;
        let dst = out.get_mut(off..end).ok_or(CryptoError::BufferTooSmall)?;
        s.apply_keystream_b2b(seg, dst).map_err(|_| CryptoError::BufferTooSmall)?;
        off = end;
    }
    Ok(off)
}

/// A ChaCha20-Poly1305 key (RFC 8439 construction over `chacha20` and `poly1305`).
#[derive(Zeroize, ZeroizeOnDrop)]
struct ChaChaKey([u8; 32]);

impl ChaChaKey {
    fn start(&self, nonce: &[u8; NONCE_LEN]) -> (ChaCha20, Poly1305) {
        let mut c = ChaCha20::new(&self.0.into(), nonce.into());
        let mut otk = [0u8; 64];
        c.apply_keystream(&mut otk);
        let mac = Poly1305::new(poly1305::Key::from_slice(&otk[..32]));
        otk.zeroize();
        // Block 0 went to the one-time key; the message starts at block 1.
        c.seek(64u64);
        (c, mac)
    }

    fn tag(mut mac: Poly1305, aad: &[u8], ct: &[u8]) -> [u8; TAG_LEN] {
        mac.update_padded(aad);
        mac.update_padded(ct);
        let mut lens = poly1305::Block::default();
        lens[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
        lens[8..].copy_from_slice(&(ct.len() as u64).to_le_bytes());
        mac.update(&[lens]);
        mac.finalize().into()
    }
}

enum Inner {
    None,
    Aes128(Gcm<Aes128>),
    Aes192(Gcm<Aes192>),
    Aes256(Gcm<Aes256>),
    ChaCha(ChaChaKey),
}

/// The `RustCrypto` backend (pure Rust, `no_std`, builds for both Windows kernel targets).
pub struct RustCryptoAead {
    inner: Inner,
}

impl RustCryptoAead {
    /// Whether seal/open with `cipher` may run AVX (VEX) code in this backend: ChaCha20-Poly1305 on
    /// x86 (AVX2 `chacha20`/`poly1305` backends picked at run time). AES-GCM is legacy-SSE only.
    pub const fn needs_extended_state_for(cipher: Cipher) -> bool {
        matches!(cipher, Cipher::ChaCha20Poly1305) && cfg!(any(target_arch = "x86_64", target_arch = "x86"))
    }
}

impl core::fmt::Debug for RustCryptoAead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RustCryptoAead").field("cipher", &self.cipher()).finish_non_exhaustive()
    }
}

impl Aead for RustCryptoAead {
    fn needs_extended_state(cipher: Cipher) -> bool {
        Self::needs_extended_state_for(cipher)
    }

    fn new(cipher: Cipher, key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != cipher.key_len() {
            return Err(CryptoError::BadKeyLength);
        }
        let inner = match cipher {
            Cipher::None => Inner::None,
            Cipher::Aes128Gcm => Inner::Aes128(Gcm::new(key)?),
            Cipher::Aes192Gcm => Inner::Aes192(Gcm::new(key)?),
            Cipher::Aes256Gcm => Inner::Aes256(Gcm::new(key)?),
            Cipher::ChaCha20Poly1305 => {
                let mut k = ChaChaKey([0; 32]);
                k.0.copy_from_slice(key);
                Inner::ChaCha(k)
            }
        };
        Ok(RustCryptoAead { inner })
    }

    fn cipher(&self) -> Cipher {
        match self.inner {
            Inner::None => Cipher::None,
            Inner::Aes128(_) => Cipher::Aes128Gcm,
            Inner::Aes192(_) => Cipher::Aes192Gcm,
            Inner::Aes256(_) => Cipher::Aes256Gcm,
            Inner::ChaCha(_) => Cipher::ChaCha20Poly1305,
        }
    }

    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        segments: &[&[u8]],
        patches: &[Patch],
        out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        match &self.inner {
            Inner::None => {
                let len = gather(segments, out)?;
                apply_patches(out.get_mut(..len).ok_or(CryptoError::BufferTooSmall)?, patches)?;
                Ok([0; TAG_LEN])
            }
            Inner::Aes128(g) => g.seal(nonce, aad, segments, patches, out),
            Inner::Aes192(g) => g.seal(nonce, aad, segments, patches, out),
            Inner::Aes256(g) => g.seal(nonce, aad, segments, patches, out),
            Inner::ChaCha(k) => {
                let (mut c, mac) = k.start(nonce);
                let len = keystream_b2b(&mut c, segments, out)?;
                let ct = out.get_mut(..len).ok_or(CryptoError::BufferTooSmall)?;
                apply_patches(ct, patches)?;
                Ok(ChaChaKey::tag(mac, aad, ct))
            }
        }
    }

    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        patches: &[Patch],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        *tag = match &self.inner {
            Inner::None => {
                check_patches(buf.len(), patches)?;
                apply_patches(buf, patches)?;
                [0; TAG_LEN]
            }
            Inner::Aes128(g) => g.seal_in_place(nonce, aad, buf, patches)?,
            Inner::Aes192(g) => g.seal_in_place(nonce, aad, buf, patches)?,
            Inner::Aes256(g) => g.seal_in_place(nonce, aad, buf, patches)?,
            Inner::ChaCha(k) => {
                check_patches(buf.len(), patches)?;
                let (mut c, mac) = k.start(nonce);
                c.apply_keystream(buf);
                apply_patches(buf, patches)?;
                ChaChaKey::tag(mac, aad, buf)
            }
        };
        Ok(())
    }

    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        match &self.inner {
            Inner::None => Ok(()),
            Inner::Aes128(g) => g.open(nonce, aad, buf, tag),
            Inner::Aes192(g) => g.open(nonce, aad, buf, tag),
            Inner::Aes256(g) => g.open(nonce, aad, buf, tag),
            Inner::ChaCha(k) => {
                let (mut c, mac) = k.start(nonce);
                let expected = ChaChaKey::tag(mac, aad, buf);
                if !bool::from(expected.ct_eq(tag)) {
                    return Err(CryptoError::AuthFailed);
                }
                c.apply_keystream(buf);
                Ok(())
            }
        }
    }
}
