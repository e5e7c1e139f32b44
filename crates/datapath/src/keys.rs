//! Key material, key slots and the two key formats.
//!
//! # Classic keys (`OVPN_IOCTL_NEW_KEY`)
//! One AEAD key and an 8-byte nonce tail per direction; 32-bit packet ids; the tag before the
//! ciphertext. See [`crate::wire`].
//!
//! # Epoch keys (`OVPN_IOCTL_NEW_KEY_V2` with `CRYPTO_OPTIONS_EPOCH`)
//! Flag value: `#define CRYPTO_OPTIONS_EPOCH (1<<1)`, from the newest public copy of the
//! ovpn-dco-win user API, `src/openvpn/ovpn_dco_win.h` in `OpenVPN/openvpn` at commit
//! 3de926089fdebd79b9d25e80c31e45c1e044911d (added by ebc9d4bc27064d1287a523efda75e16654ba7bea,
//! "dco-win: support for epoch data channel"). Older `uapi/ovpn-dco.h` in `OpenVPN/ovpn-dco-win`
//! (e.g. commit 46907991cd3da0d50df8b7d5079131929fdca9e8) instead defined
//! `CRYPTO_OPTIONS_AEAD_TAG_END (1<<1)` and `CRYPTO_OPTIONS_64BIT_PKTID (1<<2)`; the epoch format
//! implies both (tag at the end, 64-bit packet id). See [`CRYPTO_OPTIONS_EPOCH`].
//!
//! With epoch keys the 32 key bytes of each direction are the epoch key E1 (epoch 1), not a cipher
//! key. Following `OpenVPN`'s `src/openvpn/crypto_epoch.c` (same commit) and ovpn-dco-win's
//! `crypto_epoch.cpp`:
//! - `OVPN-Expand-Label(secret, label, len)` = HKDF-Expand-SHA256(PRK = secret, info, len) with
//!   `info = u16 len (BE) || u8 (5 + label length) || "ovpn " || label || u8 0` (empty context);
//! - data key `K_i = Expand-Label(E_i, "data_key", key length)`, implicit IV
//!   `IV_i = Expand-Label(E_i, "data_iv", 12)`, next epoch key `E_{i+1} = Expand-Label(E_i,
//!   "datakey upd", 32)`;
//! - packet id = `epoch << 48 | counter` (counter from 1), nonce = `(IV[0..8] XOR packet id BE) ||
//!   IV[8..12]`, AAD = header || packet id (12 bytes), tag after the ciphertext;
//! - the sender moves to the next epoch before the AEAD usage limit (packets + plaintext blocks)
//!   or the 48-bit counter runs out; the receiver keeps [`FUTURE_EPOCH_KEYS`] future data keys and
//!   the retiring one, and moves its send key forward when the peer authenticated a newer epoch.

use crate::crypto::{Aead, Cipher, CryptoError, Patch, NONCE_LEN, TAG_LEN};
use crate::pktid::{PktIdError, TxPacketId, CLASSIC_REKEY_AT, EPOCH_COUNTER_MAX};
use crate::replay::{ReplayConfig, ReplayError, ReplayWindow};
use crate::time::Instant;
use crate::wire::{self, field, WireError};
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::ops::Range;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// `CryptoOptions` flag of `OVPN_CRYPTO_DATA_V2` selecting epoch data keys (value `1 << 1`, see
/// the module documentation for the source).
pub const CRYPTO_OPTIONS_EPOCH: u32 = 1 << 1;
/// Future receive epoch keys kept ahead of the current one (`OpenVPN`'s default, 4).
pub const FUTURE_EPOCH_KEYS: usize = 4;
/// Length of an epoch key.
pub const EPOCH_KEY_LEN: usize = 32;
/// Length of a classic nonce tail.
pub const NONCE_TAIL_LEN: usize = 8;

/// One direction of key material as user mode hands it over (`OVPN_KEY_DIRECTION`): up to 32 key
/// bytes (ciphers with shorter keys use the leading bytes; epoch keys use all 32) and the nonce
/// tail. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct KeyDirection {
    /// Cipher key (classic) or epoch key E1 (epoch).
    pub key: [u8; 32],
    /// Classic nonce tail (unused by epoch keys).
    pub nonce_tail: [u8; NONCE_TAIL_LEN],
}

impl fmt::Debug for KeyDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDirection(..)")
    }
}

/// The key format of a key slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// `NEW_KEY`: 32-bit packet ids, tag before the ciphertext.
    Classic,
    /// `NEW_KEY_V2` + `CRYPTO_OPTIONS_EPOCH`: 64-bit epoch packet ids, tag at the end.
    Epoch,
}

impl KeyFormat {
    /// The format a `CryptoOptions` word selects.
    pub const fn from_crypto_options(options: u32) -> KeyFormat {
        if options & CRYPTO_OPTIONS_EPOCH != 0 {
            KeyFormat::Epoch
        } else {
            KeyFormat::Classic
        }
    }
}

/// Which key slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySlotId {
    /// Sends and receives.
    Primary,
    /// Receives only (the key being introduced or retired).
    Secondary,
}

/// Everything needed to install a key slot (`OVPN_CRYPTO_DATA[_V2]`).
#[derive(Clone, Debug)]
pub struct KeyConfig {
    /// The cipher.
    pub cipher: Cipher,
    /// Classic or epoch.
    pub format: KeyFormat,
    /// Key-id, 0..=7.
    pub key_id: u8,
    /// Send direction.
    pub encrypt: KeyDirection,
    /// Receive direction.
    pub decrypt: KeyDirection,
}

/// Errors installing a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Key-id above 7.
    BadKeyId,
    /// Epoch keys need an AEAD cipher.
    EpochNeedsAead,
    /// The backend refused the key.
    Crypto(CryptoError),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::BadKeyId => f.write_str("key id out of range"),
            KeyError::EpochNeedsAead => f.write_str("epoch keys need an AEAD cipher"),
            KeyError::Crypto(e) => write!(f, "key rejected: {e}"),
        }
    }
}

/// Errors of the seal path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// No primary key installed.
    NoKey,
    /// `out` is shorter than plaintext + overhead.
    BufferTooSmall,
    /// The key's packet ids are used up; a new key is needed before anything can be sent.
    KeyExhausted,
    /// No peer routes to the packet's destination (peer table only).
    NoRoute,
    /// The backend failed.
    Crypto(CryptoError),
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::NoKey => f.write_str("no key"),
            SealError::BufferTooSmall => f.write_str("output buffer too small"),
            SealError::KeyExhausted => f.write_str("key exhausted, rekey needed"),
            SealError::NoRoute => f.write_str("no route to destination"),
            SealError::Crypto(e) => write!(f, "{e}"),
        }
    }
}

/// Errors of the open path; each is a reason to drop the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Malformed or truncated.
    Malformed(WireError),
    /// No peer with the packet's peer-id.
    UnknownPeer,
    /// No key with the packet's key-id.
    NoKey,
    /// An epoch the receiver has no key for.
    UnknownEpoch,
    /// Refused by the replay window.
    Replay(ReplayError),
    /// The tag did not verify.
    AuthFailed,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Malformed(e) => write!(f, "malformed: {e}"),
            OpenError::UnknownPeer => f.write_str("unknown peer"),
            OpenError::NoKey => f.write_str("no key for key id"),
            OpenError::UnknownEpoch => f.write_str("unknown epoch"),
            OpenError::Replay(e) => write!(f, "replay: {e}"),
            OpenError::AuthFailed => f.write_str("authentication failed"),
        }
    }
}

impl OpenError {
    /// A short machine-friendly reason (used by `rdco packet open`).
    pub const fn reason(&self) -> &'static str {
        match self {
            OpenError::Malformed(_) => "malformed",
            OpenError::UnknownPeer => "unknown-peer",
            OpenError::NoKey => "no-key",
            OpenError::UnknownEpoch => "unknown-epoch",
            OpenError::Replay(ReplayError::ZeroId) => "replay-zero-id",
            OpenError::Replay(ReplayError::Duplicate) => "replay",
            OpenError::Replay(ReplayError::TooOld) => "replay-too-old",
            OpenError::Replay(ReplayError::TimeBacktrack) => "replay-time-backtrack",
            OpenError::AuthFailed => "auth-failed",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Epoch key derivation.

/// `OVPN-Expand-Label(secret, label, "", out.len())`.
pub fn expand_label(secret: &[u8; EPOCH_KEY_LEN], label: &[u8], out: &mut [u8]) {
    const PREFIX: &[u8] = b"ovpn ";
    let mut info = [0u8; 2 + 1 + 5 + 32 + 1];
    let label = label.get(..label.len().min(32)).unwrap_or(&[]);
    let out_len = u16::try_from(out.len()).unwrap_or(u16::MAX);
    let mut n = 0;
    for b in out_len
        .to_be_bytes()
        .iter()
        .chain(&[u8::try_from(PREFIX.len() + label.len()).unwrap_or(0)])
        .chain(PREFIX)
        .chain(label)
        .chain(&[0u8])
    {
        if let Some(slot) = info.get_mut(n) {
            *slot = *b;
        }
        n += 1;
    }
    // A 32-byte PRK is always long enough for SHA-256, and the outputs here (at most 32 bytes)
    // are far below HKDF's 255 * 32 limit, so neither call can fail; fill zeros if one did.
    match Hkdf::<Sha256>::from_prk(secret) {
        Ok(h) => {
            if h.expand(info.get(..n).unwrap_or(&[]), out).is_err() {
                out.fill(0);
            }
        }
        Err(_) => out.fill(0),
    }
    info.zeroize();
}

/// An epoch key `E_i`. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EpochKey {
    key: [u8; EPOCH_KEY_LEN],
    epoch: u16,
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKey").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl EpochKey {
    /// `E_1` from the installed key material.
    pub fn first(key: &[u8; EPOCH_KEY_LEN]) -> Self {
        EpochKey { key: *key, epoch: 1 }
    }

    /// The epoch number.
    pub fn epoch(&self) -> u16 {
        self.epoch
    }

    /// Moves to the next epoch: `E_{i+1} = Expand-Label(E_i, "datakey upd", 32)`. Returns false
    /// (and stays) at epoch 65535.
    pub fn iterate(&mut self) -> bool {
        let Some(next) = self.epoch.checked_add(1) else { return false };
        let mut k = [0u8; EPOCH_KEY_LEN];
        expand_label(&self.key, b"datakey upd", &mut k);
        self.key = k;
        k.zeroize();
        self.epoch = next;
        true
    }

    /// The data key and implicit IV of this epoch, as raw bytes (test vectors, tools).
    pub fn data_key_bytes(&self, cipher: Cipher, key_out: &mut [u8; 32]) -> [u8; NONCE_LEN] {
        let n = cipher.key_len();
        expand_label(&self.key, b"data_key", key_out.get_mut(..n).unwrap_or(&mut []));
        let mut iv = [0u8; NONCE_LEN];
        expand_label(&self.key, b"data_iv", &mut iv);
        iv
    }

    fn data_key<A: Aead>(&self, cipher: Cipher) -> Result<EpochDataKey<A>, CryptoError> {
        let mut k = [0u8; 32];
        let iv = self.data_key_bytes(cipher, &mut k);
        let aead = A::new(cipher, k.get(..cipher.key_len()).unwrap_or(&[]));
        k.zeroize();
        Ok(EpochDataKey { aead: aead?, iv: Iv(iv), epoch: self.epoch })
    }
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Iv([u8; NONCE_LEN]);

/// A derived epoch data key: the AEAD key, its implicit IV, its epoch.
struct EpochDataKey<A> {
    aead: A,
    iv: Iv,
    epoch: u16,
}

impl<A> EpochDataKey<A> {
    fn nonce(&self, packet_id: u64) -> [u8; NONCE_LEN] {
        let mut n = self.iv.0;
        for (b, p) in n.iter_mut().zip(packet_id.to_be_bytes()) {
            *b ^= p;
        }
        n
    }
}

/// `packet id BE || tail`. Built as an 8-byte word and a 4-byte word, the same widths the AEAD
/// backend then loads the nonce with: writing it as 4 + 8 bytes made the 8-byte load span two
/// stores, a store-forwarding stall on every packet.
#[inline]
fn classic_nonce(packet_id: u32, tail: [u8; NONCE_TAIL_LEN]) -> [u8; NONCE_LEN] {
    let [t0, t1, t2, t3, t4, t5, t6, t7] = tail;
    let head = u64::from(packet_id) << 32 | u64::from(u32::from_be_bytes([t0, t1, t2, t3]));
    let [h0, h1, h2, h3, h4, h5, h6, h7] = head.to_be_bytes();
    [h0, h1, h2, h3, h4, h5, h6, h7, t4, t5, t6, t7]
}

/// The classic AAD (header and packet id, the first 8 bytes of the packet) as one 8-byte word.
#[inline]
fn classic_aad(header: u32, id: u32) -> [u8; 8] {
    (u64::from(header) << 32 | u64::from(id)).to_be_bytes()
}

/// Takes the next classic packet id for a packet of `plain_len` bytes and counts its AEAD usage
/// (`usage` += its 16-byte blocks + 1). The flag: the key should be replaced (the id passed the
/// wrap trigger, or the usage passed `rekey_blocks`).
#[inline]
fn classic_next_id(
    pktid: &mut TxPacketId,
    usage: &mut u64,
    rekey_blocks: u64,
    plain_len: usize,
) -> Result<(u32, bool), SealError> {
    let (id, rekey) = pktid.take_next().map_err(|PktIdError::Exhausted| SealError::KeyExhausted)?;
    // `ceil(len / 16) + 1 = (len + 31) / 16`, exact: `plain_len` fits in a slice, so it is at most
    // `isize::MAX` and the sum cannot wrap.
    *usage = usage.saturating_add((plain_len as u64).wrapping_add(31) >> 4);
    Ok((id, rekey || *usage > rekey_blocks))
}

/// A backend error on the seal path.
fn seal_crypto_error(e: CryptoError) -> SealError {
    match e {
        CryptoError::BufferTooSmall => SealError::BufferTooSmall,
        e => SealError::Crypto(e),
    }
}

/// Where the plaintext of a seal comes from.
#[derive(Clone, Copy)]
enum Plain<'a, 'b> {
    /// A scatter list, sealed into the packet's payload field ([`Aead::seal_into`]).
    Gather(&'a [&'b [u8]]),
    /// Already in the packet's payload field ([`Aead::seal_in_place`]).
    InPlace,
}

impl Plain<'_, '_> {
    /// Seals into `body` (the payload field, exactly the plaintext's length) and `tag`. Always
    /// inlined: with plain `#[inline]` the compiler kept it out of line and the in-place seal cost
    /// 36 more instructions per packet (callgrind, 64-byte AES-256-GCM).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn seal<A: Aead>(
        self,
        aead: &A,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        patches: &[Patch],
        body: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), SealError> {
        match self {
            Plain::Gather(segments) => aead.seal_into(nonce, aad, segments, patches, body, tag),
            Plain::InPlace => aead.seal_in_place(nonce, aad, body, patches, tag),
        }
        .map_err(seal_crypto_error)
    }

    /// Whether the backend copies this plaintext into the packet first.
    #[inline]
    fn gathers<A: Aead>(self, aead: &A) -> bool {
        matches!(self, Plain::Gather(_)) && aead.seal_gathers()
    }
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct NonceTail([u8; NONCE_TAIL_LEN]);

/// Packets + blocks after which a classic key asks for a rekey: 7/8 of the AEAD usage `limit`
/// (0: no limit, never).
const fn classic_rekey_blocks(limit: u64) -> u64 {
    if limit > 0 {
        limit / 8 * 7
    } else {
        u64::MAX
    }
}

// ---------------------------------------------------------------------------------------------
// Send state.

struct EpochTx<A> {
    key: EpochDataKey<A>,
    epoch_key: EpochKey,
    counter: u64,
    blocks: u64,
    limit: u64,
    cipher: Cipher,
}

impl<A: Aead> EpochTx<A> {
    /// Replaces the send data key with the one of `epoch_key` and restarts the counter. Rare (an
    /// epoch rollover) and kept out of line: the new key is built on the stack, and inlined into
    /// the seal path it would give every packet a kilobyte-sized frame.
    #[cold]
    #[inline(never)]
    fn install_current(&mut self) -> Result<(), CryptoError> {
        self.key = self.epoch_key.data_key(self.cipher)?;
        self.counter = 0;
        self.blocks = 0;
        Ok(())
    }

    fn next_packet_id(&mut self, len: usize) -> Result<(u64, bool), SealError> {
        let used_up = (self.limit > 0 && self.blocks.saturating_add(self.counter) > self.limit)
            || self.counter >= EPOCH_COUNTER_MAX;
        if used_up {
            if !self.epoch_key.iterate() {
                return Err(SealError::KeyExhausted);
            }
            self.install_current().map_err(SealError::Crypto)?;
        }
        self.counter += 1;
        self.blocks = self.blocks.saturating_add((len as u64).div_ceil(16));
        let rekey = self.epoch_key.epoch() >= u16::MAX - 16;
        Ok((u64::from(self.key.epoch) << 48 | self.counter, rekey))
    }

    /// Seals one epoch-format packet (`out` holds at least `total` bytes). Out of line, so that
    /// the classic path [`KeySlot::seal`] inlines into its callers without it.
    #[inline(never)]
    fn seal(
        &mut self,
        header: [u8; 4],
        plain_len: usize,
        total: usize,
        plain: Plain<'_, '_>,
        patches: &[Patch],
        out: &mut [u8],
    ) -> Result<SealInfo, SealError> {
        let (id, rekey) = self.next_packet_id(plain_len)?;
        let (head, rest) = out.split_at_mut_checked(field::EPOCH_PAYLOAD).ok_or(SealError::BufferTooSmall)?;
        head[..4].copy_from_slice(&header);
        head[field::EPOCH_PKTID].copy_from_slice(&id.to_be_bytes());
        let nonce = self.key.nonce(id);
        // [header 4][packet id 8][ciphertext][tag 16]: the tag goes straight to the end.
        let (ct, tail) = rest.split_at_mut_checked(plain_len).ok_or(SealError::BufferTooSmall)?;
        let tag: &mut [u8; TAG_LEN] =
            tail.get_mut(..TAG_LEN).and_then(|t| t.try_into().ok()).ok_or(SealError::BufferTooSmall)?;
        plain.seal(&self.key.aead, &nonce, head, patches, ct, tag)?;
        Ok(SealInfo {
            len: total,
            packet_id: id,
            rekey_needed: rekey,
            gathered: plain.gathers(&self.key.aead),
        })
    }

    /// Follows the peer to `epoch` (it authenticated a packet of that epoch).
    fn bump_to(&mut self, epoch: u16) -> Result<(), CryptoError> {
        if self.key.epoch >= epoch {
            return Ok(());
        }
        while self.epoch_key.epoch() < epoch {
            if !self.epoch_key.iterate() {
                break;
            }
        }
        self.install_current()
    }
}

// The classic variants are the hot path and stay inline; the epoch state is boxed at install.
#[allow(clippy::large_enum_variant)]
enum TxState<A> {
    /// `usage`: plaintext blocks sealed plus the current packet id (the AEAD usage `q + s` of
    /// the key, counted as one sum: each packet adds its blocks + 1); `rekey_blocks`: "rekey
    /// needed" once `usage` passes it (7/8 of the AEAD usage limit, `u64::MAX` without a limit),
    /// worked out when the limit is set rather than on every packet.
    Classic {
        aead: A,
        tail: NonceTail,
        pktid: TxPacketId,
        usage: u64,
        rekey_blocks: u64,
    },
    Epoch(Box<EpochTx<A>>),
}

// ---------------------------------------------------------------------------------------------
// Receive state.

struct EpochRx<A> {
    current: EpochDataKey<A>,
    window: ReplayWindow,
    retiring: Option<(EpochDataKey<A>, ReplayWindow)>,
    future: [Option<EpochDataKey<A>>; FUTURE_EPOCH_KEYS],
    /// The epoch key of the highest data key generated so far.
    epoch_key: EpochKey,
    cipher: Cipher,
    replay: ReplayConfig,
}

#[derive(Clone, Copy)]
enum EpochWhich {
    Current,
    Retiring,
    Future(usize),
}

impl<A: Aead> EpochRx<A> {
    fn new(e1: &[u8; EPOCH_KEY_LEN], cipher: Cipher, replay: ReplayConfig) -> Result<Self, CryptoError> {
        let epoch_key = EpochKey::first(e1);
        let current = epoch_key.data_key(cipher)?;
        let mut rx = EpochRx {
            current,
            window: ReplayWindow::new(replay),
            retiring: None,
            future: [None, None, None, None],
            epoch_key,
            cipher,
            replay,
        };
        rx.fill_future()?;
        Ok(rx)
    }

    /// Fills the empty tail of `future` with the next keys after `epoch_key`.
    fn fill_future(&mut self) -> Result<(), CryptoError> {
        for slot in &mut self.future {
            if slot.is_none() {
                if !self.epoch_key.iterate() {
                    break;
                }
                *slot = Some(self.epoch_key.data_key(self.cipher)?);
            }
        }
        Ok(())
    }

    fn lookup(&self, epoch: u16) -> Option<(EpochWhich, &EpochDataKey<A>)> {
        if epoch == self.current.epoch {
            return Some((EpochWhich::Current, &self.current));
        }
        if let Some((k, _)) = &self.retiring {
            if k.epoch == epoch {
                return Some((EpochWhich::Retiring, k));
            }
        }
        let ahead = usize::from(epoch.checked_sub(self.current.epoch)?);
        let idx = ahead.checked_sub(1)?;
        let k = self.future.get(idx)?.as_ref()?;
        (k.epoch == epoch).then_some((EpochWhich::Future(idx), k))
    }

    /// Makes future key `idx` the current one (its packet authenticated).
    fn advance(&mut self, idx: usize) -> Result<(), CryptoError> {
        let Some(new) = self.future.get_mut(idx).and_then(Option::take) else { return Ok(()) };
        let old = core::mem::replace(&mut self.current, new);
        let old_window = core::mem::replace(&mut self.window, ReplayWindow::new(self.replay));
        self.retiring = Some((old, old_window));
        // Keys of skipped epochs are of no use any more.
        for slot in self.future.iter_mut().take(idx) {
            *slot = None;
        }
        self.future.rotate_left(idx + 1);
        self.fill_future()
    }
}

#[allow(clippy::large_enum_variant)]
enum RxState<A> {
    /// The AEAD key is shared (`Arc`) so that [`KeySlot::open_begin`] can lend it to an open that
    /// runs outside the caller's lock; the count moves only there, never on [`KeySlot::open`].
    Classic {
        aead: Arc<A>,
        tail: NonceTail,
        window: ReplayWindow,
    },
    Epoch(Box<EpochRx<A>>),
}

// ---------------------------------------------------------------------------------------------
// Key slot.

/// The result of sealing one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealInfo {
    /// Bytes of `out` used.
    pub len: usize,
    /// The packet id sent (epoch packet ids include the epoch).
    pub packet_id: u64,
    /// The key should be replaced soon (raise "rekey needed").
    pub rekey_needed: bool,
    /// The backend copied the plaintext into the output before its AEAD pass
    /// ([`crate::crypto::Aead::seal_gathers`]): one plaintext touch beyond the AEAD pass.
    pub gathered: bool,
}

/// The result of opening one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenInfo {
    /// Where the plaintext is in the packet buffer.
    pub payload: Range<usize>,
    /// The packet id received.
    pub packet_id: u64,
    /// An epoch packet moved the receive key to a new epoch.
    pub epoch_advanced: bool,
}

/// One key slot: a key-id with its send and receive state.
pub struct KeySlot<A: Aead> {
    key_id: u8,
    cipher: Cipher,
    /// The header word of this key-id with peer-id 0 (opcode and key-id in the top byte), worked
    /// out at install: a packet's header is this OR its peer-id.
    header_base: u32,
    /// [`Self::headroom`], fixed by the key format and cipher at install.
    headroom: u8,
    /// [`Self::overhead`], likewise.
    overhead: u8,
    tx: TxState<A>,
    rx: RxState<A>,
}

impl<A: Aead> fmt::Debug for KeySlot<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySlot")
            .field("key_id", &self.key_id)
            .field("cipher", &self.cipher)
            .field("format", &self.format())
            .finish_non_exhaustive()
    }
}

impl<A: Aead> KeySlot<A> {
    /// Builds a slot from `config` (configuration time: epoch state is boxed here).
    pub fn new(config: &KeyConfig, replay: ReplayConfig) -> Result<Self, KeyError> {
        Self::with_tx_packet_id(config, replay, 1)
    }

    /// As [`Self::new`], with the first classic transmit packet id given (tools and tests).
    pub fn with_tx_packet_id(
        config: &KeyConfig,
        replay: ReplayConfig,
        first_id: u32,
    ) -> Result<Self, KeyError> {
        if config.key_id > wire::KEY_ID_MASK {
            return Err(KeyError::BadKeyId);
        }
        let cipher = config.cipher;
        let n = cipher.key_len();
        let (tx, rx) = match config.format {
            KeyFormat::Classic => {
                let enc =
                    A::new(cipher, config.encrypt.key.get(..n).unwrap_or(&[])).map_err(KeyError::Crypto)?;
                let dec =
                    A::new(cipher, config.decrypt.key.get(..n).unwrap_or(&[])).map_err(KeyError::Crypto)?;
                (
                    TxState::Classic {
                        aead: enc,
                        tail: NonceTail(config.encrypt.nonce_tail),
                        pktid: TxPacketId::starting_at(first_id, CLASSIC_REKEY_AT),
                        // The ids before `first_id` count as used.
                        usage: u64::from(first_id.saturating_sub(1)),
                        rekey_blocks: classic_rekey_blocks(cipher.aead_usage_limit()),
                    },
                    RxState::Classic {
                        aead: Arc::new(dec),
                        tail: NonceTail(config.decrypt.nonce_tail),
                        window: ReplayWindow::new(replay),
                    },
                )
            }
            KeyFormat::Epoch => {
                if !cipher.is_aead() {
                    return Err(KeyError::EpochNeedsAead);
                }
                let epoch_key = EpochKey::first(&config.encrypt.key);
                let key = epoch_key.data_key(cipher).map_err(KeyError::Crypto)?;
                let tx = EpochTx {
                    key,
                    epoch_key,
                    counter: 0,
                    blocks: 0,
                    limit: cipher.aead_usage_limit(),
                    cipher,
                };
                let rx = EpochRx::new(&config.decrypt.key, cipher, replay).map_err(KeyError::Crypto)?;
                (TxState::Epoch(Box::new(tx)), RxState::Epoch(Box::new(rx)))
            }
        };
        // Every layout's figures are below 256 (the largest, epoch, is 28 bytes).
        let (headroom, overhead) = match (config.format, cipher.is_aead()) {
            (KeyFormat::Classic, true) => (field::CLASSIC_AEAD_PAYLOAD, wire::CLASSIC_AEAD_OVERHEAD),
            (KeyFormat::Classic, false) => (field::CLASSIC_NONE_PAYLOAD, wire::CLASSIC_NONE_OVERHEAD),
            (KeyFormat::Epoch, _) => (field::EPOCH_PAYLOAD, wire::EPOCH_OVERHEAD),
        };
        Ok(KeySlot {
            key_id: config.key_id,
            cipher,
            header_base: u32::from_be_bytes(wire::header_word(config.key_id, 0)),
            headroom: u8::try_from(headroom).unwrap_or(u8::MAX),
            overhead: u8::try_from(overhead).unwrap_or(u8::MAX),
            tx,
            rx,
        })
    }

    /// The key-id.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    /// The cipher.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The key format.
    pub fn format(&self) -> KeyFormat {
        match self.tx {
            TxState::Classic { .. } => KeyFormat::Classic,
            TxState::Epoch(_) => KeyFormat::Epoch,
        }
    }

    /// Bytes a packet adds to its plaintext with this key.
    #[inline]
    pub fn overhead(&self) -> usize {
        usize::from(self.overhead)
    }

    /// The current send epoch (epoch keys), for tests and statistics.
    pub fn tx_epoch(&self) -> Option<u16> {
        match &self.tx {
            TxState::Epoch(t) => Some(t.key.epoch),
            TxState::Classic { .. } => None,
        }
    }

    /// The current receive epoch (epoch keys).
    pub fn rx_epoch(&self) -> Option<u16> {
        match &self.rx {
            RxState::Epoch(r) => Some(r.current.epoch),
            RxState::Classic { .. } => None,
        }
    }

    /// Sets the AEAD usage limit of the send key (tests exercise epoch rollover with it).
    pub fn set_tx_usage_limit(&mut self, limit: u64) {
        match &mut self.tx {
            TxState::Epoch(t) => t.limit = limit,
            TxState::Classic { rekey_blocks, .. } => *rekey_blocks = classic_rekey_blocks(limit),
        }
    }

    /// Bytes of a sealed packet before its payload with this key: 24 (classic AEAD), 8 (classic
    /// `none`) or 12 (epoch, whose tag follows the payload). Where [`Self::seal_in_place`] expects
    /// the plaintext.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.headroom)
    }

    /// Seals the concatenated `segments` (with `patches`) into `out` as one packet with header
    /// `peer_id`. Returns the length written.
    ///
    /// Always inlined: the per-packet path (classic keys) merges with the caller's, where a
    /// constant empty `patches` (the engine's fast path) removes the patch checks and pass; the
    /// epoch path is out of line.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub fn seal(
        &mut self,
        peer_id: u32,
        segments: &[&[u8]],
        patches: &[Patch],
        out: &mut [u8],
    ) -> Result<SealInfo, SealError> {
        self.seal_with(peer_id, crate::crypto::total_len(segments), Plain::Gather(segments), patches, out)
    }

    /// Seals the `plain_len` plaintext bytes that sit in `packet` at [`Self::headroom`] in place
    /// (with `patches`, offsets into that plaintext), writing the header (and tag) around them:
    /// the packet is `packet[..len]`. No gather copy with any backend. `packet` must hold
    /// `plain_len` + [`Self::overhead`] bytes, else [`SealError::BufferTooSmall`] and nothing
    /// changes. Always inlined, as [`Self::seal`].
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub fn seal_in_place(
        &mut self,
        peer_id: u32,
        packet: &mut [u8],
        plain_len: usize,
        patches: &[Patch],
    ) -> Result<SealInfo, SealError> {
        // Checked before the packet id is taken, so that a bad patch changes nothing.
        crate::crypto::check_patches(plain_len, patches).map_err(seal_crypto_error)?;
        self.seal_with(peer_id, plain_len, Plain::InPlace, patches, packet)
    }

    /// [`Self::seal`] and [`Self::seal_in_place`]: the same packet around either plaintext.
    // Always inlined into both (each is `#[inline]` into its caller): the classic path then
    // stays one frame deep, as it was before the in-place variant existed.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn seal_with(
        &mut self,
        peer_id: u32,
        plain_len: usize,
        plain: Plain<'_, '_>,
        patches: &[Patch],
        out: &mut [u8],
    ) -> Result<SealInfo, SealError> {
        // `wire::header_word(self.key_id, peer_id)`, from the part fixed at install.
        let header = self.header_base | (peer_id & wire::PEER_ID_MASK);
        match &mut self.tx {
            TxState::Classic { aead, tail, pktid, usage, rekey_blocks } => {
                // Each layout's lengths are checked against its fixed header size (constants, so
                // the compiler drops the checks the split already implies), and before a packet id
                // is used: a refused seal changes nothing.
                let gathered = plain.gathers(aead);
                if self.cipher.is_aead() {
                    // [header 4][packet id 4][tag 16][ciphertext]: the tag goes straight into its
                    // field, the AAD is the first 8 bytes.
                    let (head, rest) = out
                        .split_first_chunk_mut::<{ field::CLASSIC_AEAD_PAYLOAD }>()
                        .ok_or(SealError::BufferTooSmall)?;
                    let body = rest.get_mut(..plain_len).ok_or(SealError::BufferTooSmall)?;
                    let (id, rekey) = classic_next_id(pktid, usage, *rekey_blocks, plain_len)?;
                    let (aad, tag) = head.split_at_mut(field::CLASSIC_TAG.start);
                    let tag: &mut [u8; TAG_LEN] = tag.try_into().map_err(|_| SealError::BufferTooSmall)?;
                    aad.copy_from_slice(&classic_aad(header, id));
                    plain.seal(aead, &classic_nonce(id, tail.0), aad, patches, body, tag)?;
                    Ok(SealInfo {
                        len: plain_len + wire::CLASSIC_AEAD_OVERHEAD,
                        packet_id: u64::from(id),
                        rekey_needed: rekey,
                        gathered,
                    })
                } else {
                    let (head, rest) = out
                        .split_first_chunk_mut::<{ field::CLASSIC_NONE_PAYLOAD }>()
                        .ok_or(SealError::BufferTooSmall)?;
                    let body = rest.get_mut(..plain_len).ok_or(SealError::BufferTooSmall)?;
                    let (id, rekey) = classic_next_id(pktid, usage, *rekey_blocks, plain_len)?;
                    *head = classic_aad(header, id);
                    // `none` has no tag field; the backend writes zeros here.
                    plain.seal(aead, &classic_nonce(id, tail.0), head, patches, body, &mut [0; TAG_LEN])?;
                    Ok(SealInfo {
                        len: plain_len + wire::CLASSIC_NONE_OVERHEAD,
                        packet_id: u64::from(id),
                        rekey_needed: rekey,
                        gathered,
                    })
                }
            }
            TxState::Epoch(tx) => {
                let total = plain_len.checked_add(wire::EPOCH_OVERHEAD).ok_or(SealError::BufferTooSmall)?;
                if out.len() < total {
                    return Err(SealError::BufferTooSmall);
                }
                tx.seal(header.to_be_bytes(), plain_len, total, plain, patches, out)
            }
        }
    }

    /// Authenticates, replay-checks and decrypts `packet` in place. The replay window is checked
    /// before the AEAD and committed only after the tag verified. Inline for classic keys; the
    /// epoch path is out of line.
    #[inline]
    pub fn open(&mut self, now: Instant, packet: &mut [u8]) -> Result<OpenInfo, OpenError> {
        let malformed = OpenError::Malformed(WireError::Truncated);
        match &mut self.rx {
            RxState::Classic { aead, tail, window } => {
                let aead_cipher = self.cipher.is_aead();
                let payload_at =
                    if aead_cipher { field::CLASSIC_AEAD_PAYLOAD } else { field::CLASSIC_NONE_PAYLOAD };
                if packet.len() < payload_at {
                    return Err(malformed);
                }
                let (head, body) = packet.split_at_mut(payload_at);
                let (aad, tag) = head.split_at_checked(field::CLASSIC_TAG.start).ok_or(malformed)?;
                let id = aad
                    .get(field::CLASSIC_PKTID)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u32::from_be_bytes);
                window.check(u64::from(id), now).map_err(OpenError::Replay)?;
                if aead_cipher {
                    // The tag is read in place from the packet, not copied out first.
                    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| malformed)?;
                    let nonce = classic_nonce(id, tail.0);
                    aead.open_in_place(&nonce, aad, body, tag).map_err(|_| OpenError::AuthFailed)?;
                }
                window.commit(u64::from(id), now);
                Ok(OpenInfo {
                    payload: payload_at..packet.len(),
                    packet_id: u64::from(id),
                    epoch_advanced: false,
                })
            }
            RxState::Epoch(rx) => open_epoch(rx, &mut self.tx, now, packet),
        }
    }
}

/// A classic receive key lent out by [`KeySlot::open_begin`]: the shared AEAD key and the nonce of
/// one packet. [`OpenTicket::authenticate`] runs the AEAD with no lock held (the key is read-only);
/// [`KeySlot::open_commit`] then commits the packet id under the caller's lock. The nonce is wiped on
/// drop; the key is zeroized when its last holder (slot or ticket) drops it.
pub struct OpenTicket<A: Aead> {
    aead: Arc<A>,
    nonce: [u8; NONCE_LEN],
    packet_id: u32,
    payload_at: usize,
    is_aead: bool,
}

impl<A: Aead> fmt::Debug for OpenTicket<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenTicket").field("packet_id", &self.packet_id).finish_non_exhaustive()
    }
}

impl<A: Aead> Drop for OpenTicket<A> {
    fn drop(&mut self) {
        self.nonce.zeroize();
    }
}

impl<A: Aead> OpenTicket<A> {
    /// The packet id this ticket is for.
    pub fn packet_id(&self) -> u32 {
        self.packet_id
    }

    /// Verifies the tag and decrypts `packet` (the datagram [`KeySlot::open_begin`] looked at) in
    /// place. Needs no lock: it reads only the shared key and `packet`. Never allocates.
    pub fn authenticate(&self, packet: &mut [u8]) -> Result<(), OpenError> {
        let malformed = OpenError::Malformed(WireError::Truncated);
        if !self.is_aead {
            return Ok(());
        }
        let (head, body) = packet.split_at_mut_checked(self.payload_at).ok_or(malformed)?;
        let (aad, tag) = head.split_at_checked(field::CLASSIC_TAG.start).ok_or(malformed)?;
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| malformed)?;
        self.aead.open_in_place(&self.nonce, aad, body, tag).map_err(|_| OpenError::AuthFailed)
    }
}

/// What [`KeySlot::open_begin`] decided.
#[derive(Debug)]
pub enum OpenBegin<A: Aead> {
    /// Authenticate outside the lock with the ticket, then [`KeySlot::open_commit`].
    Ticket(OpenTicket<A>),
    /// This key's format is opened whole under the lock ([`KeySlot::open`]): epoch keys, whose
    /// receive state may move to a new epoch as part of the open.
    Locked,
}

impl<A: Aead> KeySlot<A> {
    /// The first half of a split [`Self::open`], under the caller's lock: parses the classic header,
    /// checks the packet id against the replay window (nothing is committed) and lends the shared
    /// receive key. Errors as [`Self::open`]'s before the AEAD; nothing changes. Never allocates
    /// (the key's reference count moves).
    pub fn open_begin(&self, now: Instant, packet: &[u8]) -> Result<OpenBegin<A>, OpenError> {
        let malformed = OpenError::Malformed(WireError::Truncated);
        let RxState::Classic { aead, tail, window } = &self.rx else { return Ok(OpenBegin::Locked) };
        let is_aead = self.cipher.is_aead();
        let payload_at = if is_aead { field::CLASSIC_AEAD_PAYLOAD } else { field::CLASSIC_NONE_PAYLOAD };
        if packet.len() < payload_at {
            return Err(malformed);
        }
        let id =
            packet.get(field::CLASSIC_PKTID).and_then(|b| b.try_into().ok()).map_or(0, u32::from_be_bytes);
        window.check(u64::from(id), now).map_err(OpenError::Replay)?;
        Ok(OpenBegin::Ticket(OpenTicket {
            aead: Arc::clone(aead),
            nonce: classic_nonce(id, tail.0),
            packet_id: id,
            payload_at,
            is_aead,
        }))
    }

    /// The second half of a split open, under the caller's lock again, after
    /// [`OpenTicket::authenticate`] succeeded on `packet_len` bytes: checks the replay window once
    /// more (another processor may have committed the same id meanwhile) and commits. Fails with
    /// [`OpenError::NoKey`] (nothing changes) if this slot no longer holds the ticket's key (it was
    /// replaced between the halves).
    pub fn open_commit(
        &mut self,
        now: Instant,
        ticket: &OpenTicket<A>,
        packet_len: usize,
    ) -> Result<OpenInfo, OpenError> {
        let RxState::Classic { aead, window, .. } = &mut self.rx else { return Err(OpenError::NoKey) };
        if !Arc::ptr_eq(aead, &ticket.aead) {
            return Err(OpenError::NoKey);
        }
        let id = u64::from(ticket.packet_id);
        window.check(id, now).map_err(OpenError::Replay)?;
        window.commit(id, now);
        Ok(OpenInfo { payload: ticket.payload_at..packet_len, packet_id: id, epoch_advanced: false })
    }
}

/// Opens one epoch-format packet (see [`KeySlot::open`]). Out of line, so that the classic path
/// inlines into its callers without it.
#[inline(never)]
fn open_epoch<A: Aead>(
    rx: &mut EpochRx<A>,
    tx: &mut TxState<A>,
    now: Instant,
    packet: &mut [u8],
) -> Result<OpenInfo, OpenError> {
    let malformed = OpenError::Malformed(WireError::Truncated);
    let len = packet.len();
    if len < wire::EPOCH_OVERHEAD {
        return Err(malformed);
    }
    let (head, body) = packet.split_at_mut(field::EPOCH_PAYLOAD);
    let mut idb = [0u8; 8];
    idb.copy_from_slice(&head[field::EPOCH_PKTID]);
    let id = u64::from_be_bytes(idb);
    let epoch = u16::try_from(id >> 48).unwrap_or(0);
    let counter = id & EPOCH_COUNTER_MAX;
    let (which, key) = rx.lookup(epoch).ok_or(OpenError::UnknownEpoch)?;
    match which {
        EpochWhich::Current => rx.window.check(counter, now),
        EpochWhich::Retiring => match &rx.retiring {
            Some((_, w)) => w.check(counter, now),
            None => Err(ReplayError::TooOld),
        },
        EpochWhich::Future(_) => {
            if counter == 0 {
                Err(ReplayError::ZeroId)
            } else {
                Ok(())
            }
        }
    }
    .map_err(OpenError::Replay)?;
    let ct_len = body.len() - TAG_LEN;
    let (ct, tag_bytes) = body.split_at_mut(ct_len);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(tag_bytes);
    let nonce = key.nonce(id);
    key.aead.open_in_place(&nonce, head, ct, &tag).map_err(|_| OpenError::AuthFailed)?;
    let mut advanced = false;
    match which {
        EpochWhich::Current => rx.window.commit(counter, now),
        EpochWhich::Retiring => {
            if let Some((_, w)) = &mut rx.retiring {
                w.commit(counter, now);
            }
        }
        EpochWhich::Future(idx) => {
            // Key derivation cannot fail for a cipher that was accepted at install.
            let _ = rx.advance(idx);
            rx.window.commit(counter, now);
            advanced = true;
        }
    }
    if advanced {
        if let TxState::Epoch(tx) = tx {
            let _ = tx.bump_to(epoch);
        }
    }
    Ok(OpenInfo { payload: field::EPOCH_PAYLOAD..len - TAG_LEN, packet_id: id, epoch_advanced: advanced })
}

/// The primary and secondary key slots of a peer.
#[derive(Debug)]
pub struct KeySet<A: Aead> {
    primary: Option<KeySlot<A>>,
    secondary: Option<KeySlot<A>>,
}

impl<A: Aead> Default for KeySet<A> {
    fn default() -> Self {
        KeySet { primary: None, secondary: None }
    }
}

impl<A: Aead> KeySet<A> {
    /// Installs `slot` in `which`, replacing (and zeroizing) what was there.
    pub fn install(&mut self, which: KeySlotId, slot: KeySlot<A>) {
        match which {
            KeySlotId::Primary => self.primary = Some(slot),
            KeySlotId::Secondary => self.secondary = Some(slot),
        }
    }

    /// Swaps primary and secondary (`OVPN_IOCTL_SWAP_KEYS`).
    pub fn swap(&mut self) {
        core::mem::swap(&mut self.primary, &mut self.secondary);
    }

    /// Removes the key in `which`.
    pub fn remove(&mut self, which: KeySlotId) {
        match which {
            KeySlotId::Primary => self.primary = None,
            KeySlotId::Secondary => self.secondary = None,
        }
    }

    /// The primary (sending) slot.
    pub fn primary(&self) -> Option<&KeySlot<A>> {
        self.primary.as_ref()
    }

    /// The primary (sending) slot, mutably.
    pub fn primary_mut(&mut self) -> Option<&mut KeySlot<A>> {
        self.primary.as_mut()
    }

    /// The secondary slot.
    pub fn secondary(&self) -> Option<&KeySlot<A>> {
        self.secondary.as_ref()
    }

    /// The slot with `key_id`, primary first (shared).
    #[inline]
    pub fn by_key_id(&self, key_id: u8) -> Option<&KeySlot<A>> {
        if self.primary.as_ref().is_some_and(|k| k.key_id == key_id) {
            return self.primary.as_ref();
        }
        self.secondary.as_ref().filter(|k| k.key_id == key_id)
    }

    /// The slot with `key_id`, primary first.
    #[inline]
    pub fn by_key_id_mut(&mut self, key_id: u8) -> Option<&mut KeySlot<A>> {
        if self.primary.as_ref().is_some_and(|k| k.key_id == key_id) {
            return self.primary.as_mut();
        }
        self.secondary.as_mut().filter(|k| k.key_id == key_id)
    }
}
