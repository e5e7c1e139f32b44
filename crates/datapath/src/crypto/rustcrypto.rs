//! The `RustCrypto` backend: out-of-place CTR/ChaCha keystream over the segments, then the
//! universal hash over the ciphertext in the output.

use super::{apply_patches, check_patches, gather, Aead, Cipher, CryptoError, Patch, NONCE_LEN, TAG_LEN};
use aes::{Aes128, Aes192, Aes256};
use chacha20::ChaCha20;
use cipher::{
    consts::U16, inout::InOutBuf, BlockCipher, BlockEncrypt, BlockSizeUser, InnerIvInit, KeyInit, KeyIvInit,
    StreamCipher, StreamCipherCore, StreamCipherSeek,
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

    /// The keystream of `nonce`: the counter at J0, its first block taken as the tag mask
    /// E(K, J0); what follows is the keystream of the message.
    fn keystream(&self, nonce: &[u8; NONCE_LEN], len: usize) -> Keystream<'_, C> {
        let mut j0 = Block::default();
        j0[..NONCE_LEN].copy_from_slice(nonce);
        j0[15] = 1;
        let core = CtrCore::<C>::inner_iv_init(&self.cipher, &j0);
        // The mask's block is made with the message's first blocks, in one call.
        let mut ks = Keystream {
            core,
            ahead: [0; KS_BATCH],
            pos: 0,
            end: 0,
            left: len.saturating_add(16),
            mask: Block::default(),
        };
        ks.refill();
        if let Some(m) = ks.ahead.first_chunk::<16>() {
            ks.mask.copy_from_slice(m);
        }
        ks.pos = 16;
        ks
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
        let len = super::total_len(segments);
        check_gcm_len(len)?;
        let ct = out.get_mut(..len).ok_or(CryptoError::BufferTooSmall)?;
        let mut ks = self.keystream(nonce, len);
        ks.apply_from_segments(segments, ct);
        apply_patches(ct, patches)?;
        Ok(self.tag(&ks.mask(), aad, ct))
    }

    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        patches: &[Patch],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        check_patches(buf.len(), patches)?;
        check_gcm_len(buf.len())?;
        let mut ks = self.keystream(nonce, buf.len());
        ks.apply_in_place(buf);
        // XOR commutes with the keystream: patching the ciphertext patches the plaintext.
        apply_patches(buf, patches)?;
        Ok(self.tag(&ks.mask(), aad, buf))
    }

    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        check_gcm_len(buf.len()).map_err(|_| CryptoError::AuthFailed)?;
        let mut ks = self.keystream(nonce, buf.len());
        let expected = self.tag(&ks.mask(), aad, buf);
        if !bool::from(expected.ct_eq(tag)) {
            return Err(CryptoError::AuthFailed);
        }
        ks.apply_in_place(buf);
        Ok(())
    }
}

/// Keystream bytes made ahead per call of the counter: 8 blocks, the AES-NI backend's parallel
/// width (`aes` 0.8), so that each batch takes its pipelined path. The `StreamCipherCoreWrapper`
/// the backend used before makes the keystream of a block that straddles two segments (and of
/// every tail) one block at a time, one latency-bound AES each: the 64-byte seal from 3 segments
/// was slower than copying the segments together first and sealing the copy
/// (docs/performance.md). Here the tag mask E(K, J0) comes out of the first batch too.
const KS_BATCH: usize = 128;

/// Longest GCM plaintext: the 32-bit block counter starts at 2 (J0 + 1), so `2^32 - 2` blocks.
const GCM_MAX_LEN: u64 = ((1 << 32) - 2) * 16;

fn check_gcm_len(len: usize) -> Result<(), CryptoError> {
    if len as u64 <= GCM_MAX_LEN {
        Ok(())
    } else {
        Err(CryptoError::BufferTooSmall)
    }
}

/// `d = s ^ k` over `d.len()` bytes (`s` and `k` at least as long; otherwise nothing is
/// written). Word-wide: 16-byte chunks, the last partial chunk redone as the final 16 bytes
/// (overlapping, which is harmless because `d` is only written); shorter runs as two
/// overlapping 8- or 4-byte words. A plain byte loop here left the odd-sized pieces of a
/// scatter list (28 bytes of headers, say) to scalar code.
#[inline]
fn xor_b2b(d: &mut [u8], s: &[u8], k: &[u8]) {
    let n = d.len();
    let (Some(s), Some(k)) = (s.get(..n), k.get(..n)) else { return };
    if n >= 16 {
        let mut at = 0;
        loop {
            let i = at.min(n - 16);
            if let (Some(d), Some(s), Some(k)) = (
                d.get_mut(i..).and_then(|d| d.first_chunk_mut::<16>()),
                s.get(i..).and_then(|s| s.first_chunk::<16>()),
                k.get(i..).and_then(|k| k.first_chunk::<16>()),
            ) {
                *d = (u128::from_ne_bytes(*s) ^ u128::from_ne_bytes(*k)).to_ne_bytes();
            }
            if i == n - 16 {
                return;
            }
            at += 16;
        }
    }
    if n >= 8 {
        for i in [0, n - 8] {
            if let (Some(d), Some(s), Some(k)) = (
                d.get_mut(i..).and_then(|d| d.first_chunk_mut::<8>()),
                s.get(i..).and_then(|s| s.first_chunk::<8>()),
                k.get(i..).and_then(|k| k.first_chunk::<8>()),
            ) {
                *d = (u64::from_ne_bytes(*s) ^ u64::from_ne_bytes(*k)).to_ne_bytes();
            }
        }
    } else if n >= 4 {
        for i in [0, n - 4] {
            if let (Some(d), Some(s), Some(k)) = (
                d.get_mut(i..).and_then(|d| d.first_chunk_mut::<4>()),
                s.get(i..).and_then(|s| s.first_chunk::<4>()),
                k.get(i..).and_then(|k| k.first_chunk::<4>()),
            ) {
                *d = (u32::from_ne_bytes(*s) ^ u32::from_ne_bytes(*k)).to_ne_bytes();
            }
        }
    } else {
        for ((d, s), k) in d.iter_mut().zip(s).zip(k) {
            *d = s ^ k;
        }
    }
}

/// `b ^= k` over `b.len()` bytes (`k` at least as long), 16 bytes at a time, then the tail.
#[inline]
fn xor_in_place(b: &mut [u8], k: &[u8]) {
    let Some(k) = k.get(..b.len()) else { return };
    let mut bc = b.chunks_exact_mut(16);
    let mut kc = k.chunks_exact(16);
    for (b, k) in (&mut bc).zip(&mut kc) {
        if let (Ok(b), Ok(k)) = (<&mut [u8; 16]>::try_from(b), <&[u8; 16]>::try_from(k)) {
            *b = (u128::from_ne_bytes(*b) ^ u128::from_ne_bytes(*k)).to_ne_bytes();
        }
    }
    for (b, k) in bc.into_remainder().iter_mut().zip(kc.remainder()) {
        *b ^= k;
    }
}

/// The CTR keystream of one GCM message, applied piece by piece (segments) with no restart per
/// piece: `ahead[pos..]` is keystream made ahead in one batch; runs of whole batches inside one
/// piece go straight through the counter's parallel path.
struct Keystream<'a, C: BlockCipher + BlockEncrypt + BlockSizeUser<BlockSize = U16>> {
    core: CtrCore<'a, C>,
    ahead: [u8; KS_BATCH],
    /// `ahead[pos..end]` is made and not used yet.
    pos: usize,
    end: usize,
    /// Keystream bytes the message still needs beyond what was made: a batch makes only the
    /// blocks still needed (wasted blocks cost AES throughput the bulk pass needs).
    left: usize,
    /// E(K, J0).
    mask: Block,
}

impl<C: BlockCipher + BlockEncrypt + BlockSizeUser<BlockSize = U16>> Keystream<'_, C> {
    fn mask(&self) -> Block {
        self.mask
    }

    /// The next batch into `ahead`: up to 8 blocks, no more than the message still needs.
    fn refill(&mut self) {
        let n = self.left.min(KS_BATCH).div_ceil(16) * 16;
        let (mut blocks, _) =
            InOutBuf::from(self.ahead.get_mut(..n).unwrap_or_default()).into_chunks::<U16>();
        self.core.write_keystream_blocks(blocks.get_out());
        self.left = self.left.saturating_sub(n);
        self.pos = 0;
        self.end = n;
    }

    /// `dst = src ^ keystream`, continuing the stream where the last call stopped; `dst` is as
    /// long as `src` (the caller's slices; a shorter `dst` ends the pass early).
    fn apply_b2b(&mut self, mut src: &[u8], mut dst: &mut [u8]) {
        loop {
            let ahead = self.ahead.get(self.pos..self.end).unwrap_or_default();
            let n = ahead.len().min(src.len()).min(dst.len());
            let (s, s_rest) = src.split_at(n);
            let (d, d_rest) = dst.split_at_mut(n);
            xor_b2b(d, s, ahead);
            self.pos += n;
            (src, dst) = (s_rest, d_rest);
            let len = src.len().min(dst.len());
            if len == 0 {
                return;
            }
            // `ahead` is used up, so the stream is at a block boundary: whole batches go through
            // the counter directly.
            let bulk = len / KS_BATCH * KS_BATCH;
            if bulk > 0 {
                let (s, s_rest) = src.split_at(bulk);
                let (d, d_rest) = dst.split_at_mut(bulk);
                if let Ok(io) = InOutBuf::new(s, d) {
                    self.core.apply_keystream_blocks_inout(io.into_chunks::<U16>().0);
                }
                self.left = self.left.saturating_sub(bulk);
                (src, dst) = (s_rest, d_rest);
                if src.is_empty() || dst.is_empty() {
                    return;
                }
            }
            self.refill();
        }
    }

    /// `buf ^= keystream`, as [`Self::apply_b2b`] in place.
    fn apply_in_place(&mut self, mut buf: &mut [u8]) {
        loop {
            let ahead = self.ahead.get(self.pos..self.end).unwrap_or_default();
            let n = ahead.len().min(buf.len());
            let (b, rest) = buf.split_at_mut(n);
            xor_in_place(b, ahead);
            self.pos += n;
            buf = rest;
            if buf.is_empty() {
                return;
            }
            let bulk = buf.len() / KS_BATCH * KS_BATCH;
            if bulk > 0 {
                let (b, rest) = buf.split_at_mut(bulk);
                self.core.apply_keystream_blocks_inout(InOutBuf::from(b).into_chunks::<U16>().0);
                self.left = self.left.saturating_sub(bulk);
                buf = rest;
                if buf.is_empty() {
                    return;
                }
            }
            self.refill();
        }
    }

    /// `out = concat(segments) ^ keystream`. A piece that fits in the keystream made ahead (the
    /// small header segments of a packet) takes one XOR and no batch logic.
    #[inline]
    fn apply_from_segments(&mut self, segments: &[&[u8]], out: &mut [u8]) {
        let mut out = out;
        for s in segments {
            let (d, rest) = out.split_at_mut(s.len().min(out.len()));
            match self.ahead.get(self.pos..self.end).and_then(|a| a.get(..d.len())) {
                Some(k) => {
                    xor_b2b(d, s, k);
                    self.pos += d.len();
                }
                None => self.apply_b2b(s, d),
            }
            out = rest;
        }
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
