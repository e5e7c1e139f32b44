//! One peer's data path, and the peer table.
//!
//! [`Peer`] is the client-mode data path (one peer): key slots, packet ids, replay windows,
//! keepalive, MSS clamp, float detection. [`PeerTable`] is the server-mode data path: peers found
//! by peer-id on receive and by the inner destination address, longest-prefix match over IPv4
//! and IPv6 routes, on send.
//!
//! Configuration calls (`add_peer`, `add_route`, `install_key`, ...) may allocate; the per-packet
//! calls (`seal`, `seal_in_place`, `seal_keepalive`, `open`, `lookup_*`, `poll`) never do.

use crate::crypto::{Aead, DefaultAead};
use crate::keepalive::{Keepalive, KeepaliveAction};
use crate::keys::{KeyConfig, KeySet, KeySlot, KeySlotId, OpenBegin, OpenTicket, SealInfo};
pub use crate::keys::{KeyError, OpenError, SealError};
use crate::mss;
use crate::replay::{ReplayConfig, ReplayError};
use crate::time::Instant;
use crate::wire::{self, PacketKind, KEEPALIVE_PING};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use core::time::Duration;

/// An outer transport address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// IPv4 address and port.
    V4 {
        /// Address.
        addr: [u8; 4],
        /// Port.
        port: u16,
    },
    /// IPv6 address and port.
    V6 {
        /// Address.
        addr: [u8; 16],
        /// Port.
        port: u16,
    },
}

/// Peer settings (`OVPN_NEW_PEER` / `OVPN_MP_NEW_PEER` + `OVPN_SET_PEER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The 24-bit peer-id put in every packet sent.
    pub peer_id: u32,
    /// The peer's outer address, if known.
    pub remote: Option<Endpoint>,
    /// Replay window settings.
    pub replay: ReplayConfig,
    /// Ping after this long without sending (zero: off).
    pub keepalive_interval: Duration,
    /// Time out after this long without receiving (zero: off).
    pub keepalive_timeout: Duration,
    /// Clamp TCP MSS to this (zero: off).
    pub mss: u16,
}

impl PeerConfig {
    /// Defaults for `peer_id`: default replay window, keepalive and MSS clamp off.
    pub fn new(peer_id: u32) -> Self {
        PeerConfig {
            peer_id,
            remote: None,
            replay: ReplayConfig::default(),
            keepalive_interval: Duration::ZERO,
            keepalive_timeout: Duration::ZERO,
            mss: 0,
        }
    }
}

/// Per-peer counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Packets sealed.
    pub tx_packets: u64,
    /// Plaintext bytes sealed.
    pub tx_bytes: u64,
    /// Packets opened (data and keepalive).
    pub rx_packets: u64,
    /// Plaintext bytes opened.
    pub rx_bytes: u64,
    /// Keepalive pings received.
    pub rx_keepalives: u64,
    /// Dropped: tag did not verify.
    pub rx_auth_failed: u64,
    /// Dropped: replay window.
    pub rx_replayed: u64,
    /// Dropped: anything else.
    pub rx_other_drops: u64,
    /// MSS options clamped (both directions).
    pub mss_clamped: u64,
    /// Packets sealed whose plaintext the backend first copied into the output (an in-place
    /// backend such as ring): each is one plaintext touch beyond the AEAD pass.
    pub tx_gathered: u64,
}

impl PeerStats {
    /// Counts a dropped received packet; returns `e`. Out of line and cold: the drop paths stay
    /// out of the way of the per-packet path of [`Peer::open`].
    #[cold]
    #[inline(never)]
    fn count_drop(&mut self, e: OpenError) -> OpenError {
        match e {
            OpenError::AuthFailed => self.rx_auth_failed += 1,
            OpenError::Replay(ReplayError::Duplicate | ReplayError::TooOld | ReplayError::TimeBacktrack) => {
                self.rx_replayed += 1;
            }
            _ => self.rx_other_drops += 1,
        }
        e
    }
}

/// The result of sealing one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Peer the packet is for.
    pub peer_id: u32,
    /// Bytes of the output buffer used.
    pub len: usize,
    /// Packet id sent.
    pub packet_id: u64,
    /// Event: the key should be replaced (renegotiate) soon.
    pub rekey_needed: bool,
    /// The backend copied the plaintext into the output before sealing it in place (ring): one
    /// plaintext touch beyond the AEAD pass, for the caller to count. Also counted in
    /// [`PeerStats::tx_gathered`].
    pub gathered: bool,
}

/// An authenticated, decrypted packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Peer it came from.
    pub peer_id: u32,
    /// Where the inner packet is in the buffer passed to `open`.
    pub payload: Range<usize>,
    /// Its packet id.
    pub packet_id: u64,
    /// Its key-id.
    pub key_id: u8,
    /// Event: it came from a new outer address, now the peer's remote (float).
    pub floated: Option<Endpoint>,
    /// It moved the receive key to a newer epoch.
    pub epoch_advanced: bool,
}

/// What a received datagram turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A data packet to deliver: `packet[opened.payload]`.
    Data(Opened),
    /// A keepalive ping: authenticated and consumed, nothing to deliver.
    Keepalive(Opened),
    /// A control-channel packet (not `P_DATA_V2`), untouched, for user mode.
    Control,
}

/// A received data packet whose key was lent out by [`Peer::open_begin`] /
/// [`PeerTable::open_begin`]: authenticate it with no lock held, then finish with `open_finish`.
#[derive(Debug)]
pub struct PeerTicket<A: Aead = DefaultAead> {
    peer_id: u32,
    key_id: u8,
    ticket: OpenTicket<A>,
}

impl<A: Aead> PeerTicket<A> {
    /// The peer the packet names.
    pub fn peer_id(&self) -> u32 {
        self.peer_id
    }

    /// Verifies and decrypts `packet` in place (the datagram `open_begin` looked at). Needs no lock.
    pub fn authenticate(&self, packet: &mut [u8]) -> Result<(), OpenError> {
        self.ticket.authenticate(packet)
    }
}

/// What the first half of a split open decided.
#[derive(Debug)]
pub enum OpenStart<A: Aead = DefaultAead> {
    /// A control-channel packet (not `P_DATA_V2`), untouched, for user mode.
    Control,
    /// A data packet: authenticate with the ticket, then `open_finish`.
    Ticket(PeerTicket<A>),
    /// Open it whole under the lock (`open`): epoch keys.
    Locked,
}

/// One peer's data path.
pub struct Peer<A: Aead = DefaultAead> {
    id: u32,
    remote: Option<Endpoint>,
    keys: KeySet<A>,
    keepalive: Keepalive,
    replay: ReplayConfig,
    mss: u16,
    stats: PeerStats,
}

impl<A: Aead> fmt::Debug for Peer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.id)
            .field("remote", &self.remote)
            .field("keys", &self.keys)
            .field("mss", &self.mss)
            .finish_non_exhaustive()
    }
}

impl<A: Aead> Peer<A> {
    /// A peer with no keys yet.
    pub fn new(config: &PeerConfig, now: Instant) -> Self {
        Peer {
            id: config.peer_id & wire::PEER_ID_MASK,
            remote: config.remote,
            keys: KeySet::default(),
            keepalive: Keepalive::new(config.keepalive_interval, config.keepalive_timeout, now),
            replay: config.replay,
            mss: config.mss,
            stats: PeerStats::default(),
        }
    }

    /// The peer-id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The peer's outer address.
    pub fn remote(&self) -> Option<Endpoint> {
        self.remote
    }

    /// Sets the outer address.
    pub fn set_remote(&mut self, remote: Option<Endpoint>) {
        self.remote = remote;
    }

    /// Installs a key (`OVPN_IOCTL_NEW_KEY[_V2]`).
    pub fn install_key(&mut self, which: KeySlotId, config: &KeyConfig) -> Result<(), KeyError> {
        let slot = KeySlot::new(config, self.replay)?;
        self.keys.install(which, slot);
        Ok(())
    }

    /// Installs a prepared key slot.
    pub fn install_key_slot(&mut self, which: KeySlotId, slot: KeySlot<A>) {
        self.keys.install(which, slot);
    }

    /// Swaps primary and secondary keys (`OVPN_IOCTL_SWAP_KEYS`).
    pub fn swap_keys(&mut self) {
        self.keys.swap();
    }

    /// The key slots.
    pub fn keys(&self) -> &KeySet<A> {
        &self.keys
    }

    /// The key slots, mutably.
    pub fn keys_mut(&mut self) -> &mut KeySet<A> {
        &mut self.keys
    }

    /// Changes keepalive settings (`OVPN_IOCTL_SET_PEER`).
    pub fn set_keepalive(&mut self, interval: Duration, timeout: Duration, now: Instant) {
        self.keepalive.configure(interval, timeout, now);
    }

    /// Changes the MSS clamp (0: off).
    pub fn set_mss(&mut self, mss: u16) {
        self.mss = mss;
    }

    /// Counters.
    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// Bytes a sealed packet adds to its plaintext with the current primary key.
    pub fn overhead(&self) -> Option<usize> {
        self.keys.primary().map(KeySlot::overhead)
    }

    /// Seals the plaintext `segments` (one inner IP packet) into `out` with the primary key. The
    /// MSS clamp, if on, is applied on the way through, never to `segments`.
    ///
    /// Always inlined into the caller's send loop, as [`Self::seal_in_place`].
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub fn seal(&mut self, now: Instant, segments: &[&[u8]], out: &mut [u8]) -> Result<Sealed, SealError> {
        // Fast path (clamp off, or a packet that is certainly no TCP SYN): no patch list at all, so
        // the patch checks and the patch pass compile away (callgrind, docs/performance.md).
        let first = segments.first().copied().unwrap_or_default();
        if !mss::may_clamp(first, self.mss) {
            let slot = self.keys.primary_mut().ok_or(SealError::NoKey)?;
            let info = slot.seal(self.id, segments, &[], out)?;
            let plain_len = info.len - slot.overhead();
            return Ok(self.count_sealed(now, &info, plain_len, false));
        }
        self.seal_clamped(now, segments, out)
    }

    /// [`Self::seal`] for a packet the MSS clamp may edit. Out of line, off the fast path.
    #[inline(never)]
    fn seal_clamped(
        &mut self,
        now: Instant,
        segments: &[&[u8]],
        out: &mut [u8],
    ) -> Result<Sealed, SealError> {
        let patches = mss::patches(segments, self.mss);
        let slot = self.keys.primary_mut().ok_or(SealError::NoKey)?;
        let info = slot.seal(self.id, segments, &patches, out)?;
        let plain_len = info.len - slot.overhead();
        Ok(self.count_sealed(now, &info, plain_len, !patches.is_empty()))
    }

    /// Bytes a sealed packet has before its payload with the current primary key (24 for classic
    /// AEAD keys, 8 for `none`, 12 for epoch keys): where [`Self::seal_in_place`] expects the
    /// plaintext. `None` without a primary key.
    pub fn headroom(&self) -> Option<usize> {
        self.keys.primary().map(KeySlot::headroom)
    }

    /// Seals an inner IP packet that already sits in the send buffer: its `plain_len` bytes are at
    /// `packet[headroom..]` ([`Self::headroom`], taken under the same lock as this call). The
    /// header, packet id and tag are written around it and the plaintext is encrypted in place;
    /// the sealed packet is `packet[..sealed.len]`. Unlike [`Self::seal`] no backend copies the
    /// plaintext (`Sealed::gathered` is false). The plaintext is consumed: the MSS clamp, if on,
    /// is applied to it in the buffer as part of the seal pass.
    ///
    /// `packet` must hold `plain_len` + [`Self::overhead`] bytes, else
    /// [`SealError::BufferTooSmall`] and nothing changes; [`SealError::NoKey`] without a primary
    /// key. Never allocates.
    ///
    /// Always inlined into the caller's send loop: the fast path is short (its rare branches, the
    /// MSS clamp and epoch keys, are calls), and a frame of its own cost about 15 instructions per
    /// packet (callgrind, docs/performance.md).
    #[allow(clippy::inline_always)]
    #[inline(always)]
    pub fn seal_in_place(
        &mut self,
        now: Instant,
        packet: &mut [u8],
        plain_len: usize,
    ) -> Result<Sealed, SealError> {
        let slot = self.keys.primary_mut().ok_or(SealError::NoKey)?;
        // Fast path as in `seal`: no patch list when the clamp cannot apply (the plaintext is only
        // looked at with the clamp on; `KeySlot::seal_in_place` checks the lengths either way,
        // the overhead being at least the headroom).
        if self.mss == 0
            || packet
                .get(slot.headroom()..)
                .and_then(|p| p.get(..plain_len))
                .is_some_and(|plain| !mss::may_clamp(plain, self.mss))
        {
            let info = slot.seal_in_place(self.id, packet, plain_len, &[])?;
            // An in-place seal never gathers (`info.gathered` is false): nothing to add to
            // `tx_gathered`.
            self.keepalive.on_sent(now);
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += plain_len as u64;
            return Ok(Sealed {
                peer_id: self.id,
                len: info.len,
                packet_id: info.packet_id,
                rekey_needed: info.rekey_needed,
                gathered: false,
            });
        }
        self.seal_in_place_clamped(now, packet, plain_len)
    }

    /// [`Self::seal_in_place`] for a packet the MSS clamp may edit. Out of line, off the fast path.
    #[inline(never)]
    fn seal_in_place_clamped(
        &mut self,
        now: Instant,
        packet: &mut [u8],
        plain_len: usize,
    ) -> Result<Sealed, SealError> {
        let slot = self.keys.primary_mut().ok_or(SealError::NoKey)?;
        let plain = packet
            .get(slot.headroom()..)
            .and_then(|p| p.get(..plain_len))
            .ok_or(SealError::BufferTooSmall)?;
        let patches = mss::patches(&[plain], self.mss);
        let info = slot.seal_in_place(self.id, packet, plain_len, &patches)?;
        Ok(self.count_sealed(now, &info, plain_len, !patches.is_empty()))
    }

    /// Counts one sealed packet of `plain_len` plaintext bytes and makes its [`Sealed`].
    #[inline]
    fn count_sealed(&mut self, now: Instant, info: &SealInfo, plain_len: usize, clamped: bool) -> Sealed {
        if clamped {
            self.stats.mss_clamped += 1;
        }
        self.keepalive.on_sent(now);
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += plain_len as u64;
        self.stats.tx_gathered += u64::from(info.gathered);
        Sealed {
            peer_id: self.id,
            len: info.len,
            packet_id: info.packet_id,
            rekey_needed: info.rekey_needed,
            gathered: info.gathered,
        }
    }

    /// Seals a keepalive ping into `out`.
    pub fn seal_keepalive(&mut self, now: Instant, out: &mut [u8]) -> Result<Sealed, SealError> {
        let slot = self.keys.primary_mut().ok_or(SealError::NoKey)?;
        let info = slot.seal(self.id, &[&KEEPALIVE_PING], &[], out)?;
        self.keepalive.on_sent(now);
        self.stats.tx_packets += 1;
        self.stats.tx_gathered += u64::from(info.gathered);
        Ok(Sealed {
            peer_id: self.id,
            len: info.len,
            packet_id: info.packet_id,
            rekey_needed: info.rekey_needed,
            gathered: info.gathered,
        })
    }

    /// Opens a received datagram in place. `from` is its outer source address, if the transport
    /// knows it (UDP); an authenticated packet from a new address floats the peer there.
    pub fn open(
        &mut self,
        now: Instant,
        from: Option<&Endpoint>,
        packet: &mut [u8],
    ) -> Result<Received, OpenError> {
        let key_id = match wire::classify(packet).map_err(OpenError::Malformed)? {
            PacketKind::Control { .. } => return Ok(Received::Control),
            PacketKind::Data { key_id, .. } => key_id,
        };
        let result = match self.keys.by_key_id_mut(key_id) {
            Some(slot) => slot.open(now, packet),
            None => Err(OpenError::NoKey),
        };
        let info = match result {
            Ok(info) => info,
            Err(e) => return Err(self.stats.count_drop(e)),
        };
        Ok(self.opened(now, from, key_id, &info, packet))
    }

    /// The first half of a split [`Self::open`], under the caller's lock: classifies `packet`, finds
    /// the key slot and checks replay (nothing is committed). A classic key is lent as a
    /// [`PeerTicket`]: [`PeerTicket::authenticate`] runs the AEAD with no lock held, then
    /// [`Self::open_finish`] completes the open under the lock. Epoch keys answer
    /// [`OpenStart::Locked`] (call [`Self::open`] under the lock). Drops are counted as by `open`.
    pub fn open_begin(&mut self, now: Instant, packet: &[u8]) -> Result<OpenStart<A>, OpenError> {
        let key_id = match wire::classify(packet).map_err(OpenError::Malformed)? {
            PacketKind::Control { .. } => return Ok(OpenStart::Control),
            PacketKind::Data { key_id, .. } => key_id,
        };
        let result = match self.keys.by_key_id(key_id) {
            Some(slot) => slot.open_begin(now, packet),
            None => Err(OpenError::NoKey),
        };
        match result {
            Ok(OpenBegin::Ticket(ticket)) => {
                Ok(OpenStart::Ticket(PeerTicket { peer_id: self.id, key_id, ticket }))
            }
            Ok(OpenBegin::Locked) => Ok(OpenStart::Locked),
            Err(e) => Err(self.stats.count_drop(e)),
        }
    }

    /// The second half of a split open, under the caller's lock: `auth` is what
    /// [`PeerTicket::authenticate`] said about `packet`. Counts a failure; on success commits the
    /// packet id (re-checked: another processor may have opened the same id meanwhile) and does
    /// what [`Self::open`] does after the AEAD (keepalive, float, counters, MSS clamp). A key
    /// replaced between the halves is [`OpenError::NoKey`].
    pub fn open_finish(
        &mut self,
        now: Instant,
        from: Option<&Endpoint>,
        ticket: &PeerTicket<A>,
        auth: Result<(), OpenError>,
        packet: &mut [u8],
    ) -> Result<Received, OpenError> {
        let result = auth.and_then(|()| match self.keys.by_key_id_mut(ticket.key_id) {
            Some(slot) => slot.open_commit(now, &ticket.ticket, packet.len()),
            None => Err(OpenError::NoKey),
        });
        let info = match result {
            Ok(info) => info,
            Err(e) => return Err(self.stats.count_drop(e)),
        };
        Ok(self.opened(now, from, ticket.key_id, &info, packet))
    }

    /// After an authenticated open: keepalive, float, counters, keepalive ping, MSS clamp.
    #[inline]
    fn opened(
        &mut self,
        now: Instant,
        from: Option<&Endpoint>,
        key_id: u8,
        info: &crate::keys::OpenInfo,
        packet: &mut [u8],
    ) -> Received {
        self.keepalive.on_received(now);
        let floated = match from {
            Some(f) if self.remote.is_some_and(|r| r != *f) => {
                self.remote = Some(*f);
                Some(*f)
            }
            Some(f) => {
                self.remote = Some(*f);
                None
            }
            None => None,
        };
        self.stats.rx_packets += 1;
        let opened = Opened {
            peer_id: self.id,
            payload: info.payload.clone(),
            packet_id: info.packet_id,
            key_id,
            floated,
            epoch_advanced: info.epoch_advanced,
        };
        let Some(payload) = packet.get_mut(info.payload.clone()) else { return Received::Data(opened) };
        if payload == KEEPALIVE_PING {
            self.stats.rx_keepalives += 1;
            return Received::Keepalive(opened);
        }
        self.stats.rx_bytes += payload.len() as u64;
        if self.mss != 0 && mss::clamp_in_place(payload, self.mss) {
            self.stats.mss_clamped += 1;
        }
        Received::Data(opened)
    }

    /// What the keepalive timers want at `now` (send a ping with [`Self::seal_keepalive`], or the
    /// peer timed out).
    pub fn poll(&mut self, now: Instant) -> KeepaliveAction {
        self.keepalive.poll(now)
    }

    /// When to call [`Self::poll`] next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.keepalive.next_deadline()
    }
}

// ---------------------------------------------------------------------------------------------
// Routes.

/// An IPv4 or IPv6 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpPrefix {
    /// IPv4 address and prefix length (0..=32).
    V4([u8; 4], u8),
    /// IPv6 address and prefix length (0..=128).
    V6([u8; 16], u8),
}

impl IpPrefix {
    fn v4_range(addr: [u8; 4], len: u8) -> (u32, u32) {
        let a = u32::from_be_bytes(addr);
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
        (a & mask, (a & mask) | !mask)
    }

    fn v6_range(addr: [u8; 16], len: u8) -> (u128, u128) {
        let a = u128::from_be_bytes(addr);
        let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
        (a & mask, (a & mask) | !mask)
    }

    /// The prefix with host bits cleared, or `None` if the length is out of range.
    pub fn normalized(self) -> Option<IpPrefix> {
        match self {
            IpPrefix::V4(a, l) if l <= 32 => Some(IpPrefix::V4(Self::v4_range(a, l).0.to_be_bytes(), l)),
            IpPrefix::V6(a, l) if l <= 128 => Some(IpPrefix::V6(Self::v6_range(a, l).0.to_be_bytes(), l)),
            _ => None,
        }
    }
}

/// Errors of peer-table configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerError {
    /// A peer with this id exists.
    Exists,
    /// No peer with this id.
    UnknownPeer,
    /// Prefix length out of range.
    BadPrefix,
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerError::Exists => "peer exists",
            PeerError::UnknownPeer => "unknown peer",
            PeerError::BadPrefix => "bad prefix",
        })
    }
}

const NO_PEER: u32 = u32::MAX;

trait LpmKey: Copy + Ord {
    const ZERO: Self;
    const MAX: Self;
    const BITS: u32;
    fn succ(self) -> Self;
    /// `self - base` (callers guarantee `self >= base`).
    fn offset_from(self, base: Self) -> Self;
    /// `self >> shift` as an index, saturated to `usize::MAX`.
    fn bucket(self, shift: u32) -> usize;
    /// `base + (bucket << shift)`, or `None` past `MAX`.
    fn bucket_start(base: Self, bucket: usize, shift: u32) -> Option<Self>;
    fn leading_zeros(self) -> u32;
}

macro_rules! lpm_key {
    ($t:ty) => {
        impl LpmKey for $t {
            const ZERO: Self = 0;
            const MAX: Self = <$t>::MAX;
            const BITS: u32 = <$t>::BITS;
            fn succ(self) -> Self {
                self.saturating_add(1)
            }
            fn offset_from(self, base: Self) -> Self {
                self.wrapping_sub(base)
            }
            fn bucket(self, shift: u32) -> usize {
                usize::try_from(self.checked_shr(shift).unwrap_or(0)).unwrap_or(usize::MAX)
            }
            fn bucket_start(base: Self, bucket: usize, shift: u32) -> Option<Self> {
                let b = <$t>::try_from(bucket).ok()?;
                if b != 0 && b.leading_zeros() < shift {
                    return None;
                }
                base.checked_add(b.checked_shl(shift)?)
            }
            fn leading_zeros(self) -> u32 {
                <$t>::leading_zeros(self)
            }
        }
    };
}
lpm_key!(u32);
lpm_key!(u128);

/// Most buckets of the [`Lpm`] index (4 MiB of `u32`), whatever the table size.
const LPM_MAX_BUCKET_BITS: u32 = 20;

/// Longest-prefix match as a flat, sorted table of breakpoints: each breakpoint starts a run of
/// addresses with one best route. Built at configuration time.
///
/// Lookup does not binary-search the whole table: a direct-indexed bucket array over the span of
/// the breakpoints (`base` = the first breakpoint after 0, `shift` chosen for about two buckets
/// per breakpoint) gives the few breakpoints that can hold the answer, and a binary search runs
/// over those only. For routes spread over the span that is 0-2 candidates (one subtraction, one
/// shift, two loads, at most a couple of compares); a cluster of many breakpoints inside one
/// bucket degrades to a binary search over that cluster, never worse than over the whole table.
#[derive(Clone, Debug, Default)]
struct Lpm<K> {
    starts: Vec<K>,
    values: Vec<u32>,
    /// `first[j]`: index of the first breakpoint at or after `base + (j << shift)`; one more
    /// entry than there are buckets (the last is `starts.len()`). Empty: no index.
    first: Vec<u32>,
    base: K,
    shift: u32,
}

impl<K: LpmKey> Lpm<K> {
    /// Builds from `(first, last, value)` ranges that are prefixes (so any two nest or are
    /// disjoint) with no duplicates.
    fn build(mut ranges: Vec<(K, K, u32)>) -> Self {
        // Outer prefixes before the prefixes they contain.
        ranges.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut starts: Vec<K> = Vec::with_capacity(ranges.len() * 2 + 1);
        let mut values: Vec<u32> = Vec::with_capacity(ranges.len() * 2 + 1);
        let push = |starts: &mut Vec<K>, values: &mut Vec<u32>, s: K, v: u32| {
            if starts.last() == Some(&s) {
                if let Some(last) = values.last_mut() {
                    *last = v;
                }
            } else {
                starts.push(s);
                values.push(v);
            }
        };
        push(&mut starts, &mut values, K::ZERO, NO_PEER);
        let mut stack: Vec<(K, u32)> = Vec::new();
        for (s, e, v) in ranges {
            while let Some(&(end, _)) = stack.last() {
                if end < s {
                    stack.pop();
                    let parent = stack.last().map_or(NO_PEER, |x| x.1);
                    push(&mut starts, &mut values, end.succ(), parent);
                } else {
                    break;
                }
            }
            push(&mut starts, &mut values, s, v);
            stack.push((e, v));
        }
        while let Some((end, _)) = stack.pop() {
            if end != K::MAX {
                let parent = stack.last().map_or(NO_PEER, |x| x.1);
                push(&mut starts, &mut values, end.succ(), parent);
            }
        }
        // Merge runs with the same value.
        let mut out = Lpm {
            starts: Vec::with_capacity(starts.len()),
            values: Vec::with_capacity(starts.len()),
            first: Vec::new(),
            base: K::ZERO,
            shift: 0,
        };
        for (s, v) in starts.into_iter().zip(values) {
            if out.values.last() != Some(&v) {
                out.starts.push(s);
                out.values.push(v);
            }
        }
        out.index();
        out
    }

    /// Builds the bucket index over `starts[1..]` (`starts[0]` is always `ZERO`).
    fn index(&mut self) {
        let (Some(&base), Some(&last)) = (self.starts.get(1), self.starts.last()) else { return };
        let Ok(len) = u32::try_from(self.starts.len()) else { return };
        let want_bits = (2 * self.starts.len()).next_power_of_two().trailing_zeros().min(LPM_MAX_BUCKET_BITS);
        let span_bits = K::BITS - last.offset_from(base).leading_zeros();
        let shift = span_bits.saturating_sub(want_bits);
        let buckets = last.offset_from(base).bucket(shift).saturating_add(1);
        let mut first = Vec::with_capacity(buckets.saturating_add(1));
        let mut i = 1usize;
        for j in 0..buckets {
            match K::bucket_start(base, j, shift) {
                Some(b) => {
                    while self.starts.get(i).is_some_and(|s| *s < b) {
                        i += 1;
                    }
                }
                None => i = self.starts.len(),
            }
            first.push(u32::try_from(i).unwrap_or(len));
        }
        first.push(len);
        self.first = first;
        self.base = base;
        self.shift = shift;
    }

    fn lookup(&self, k: K) -> Option<u32> {
        let i = if self.first.is_empty() {
            self.starts.partition_point(|s| *s <= k)
        } else if k < self.base {
            1
        } else {
            let j = k.offset_from(self.base).bucket(self.shift);
            match (self.first.get(j), self.first.get(j.wrapping_add(1))) {
                (Some(&lo), Some(&hi)) => {
                    let (lo, hi) = (lo as usize, hi as usize);
                    lo + self.starts.get(lo..hi)?.partition_point(|s| *s <= k)
                }
                // Past the last bucket: after the last breakpoint.
                _ => self.starts.len(),
            }
        };
        let v = *self.values.get(i.checked_sub(1)?)?;
        (v != NO_PEER).then_some(v)
    }
}

/// The destination address of an inner IP packet, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerDest {
    /// IPv4 destination.
    V4([u8; 4]),
    /// IPv6 destination.
    V6([u8; 16]),
}

impl InnerDest {
    /// Reads the destination from the start of an IP packet given as segments.
    pub fn from_segments(segments: &[&[u8]]) -> Option<InnerDest> {
        let mut head = [0u8; 40];
        let mut n = 0;
        for s in segments {
            let take = s.len().min(head.len() - n);
            head.get_mut(n..n + take)?.copy_from_slice(s.get(..take)?);
            n += take;
            if n == head.len() {
                break;
            }
        }
        let head = head.get(..n)?;
        match head.first()? >> 4 {
            4 => Some(InnerDest::V4(head.get(16..20)?.try_into().ok()?)),
            6 => Some(InnerDest::V6(head.get(24..40)?.try_into().ok()?)),
            _ => None,
        }
    }
}

/// Many peers: by peer-id on receive, by inner destination on send.
pub struct PeerTable<A: Aead = DefaultAead> {
    /// Sorted by peer-id.
    peers: Vec<Peer<A>>,
    routes: Vec<(IpPrefix, u32)>,
    v4: Lpm<u32>,
    v6: Lpm<u128>,
}

impl<A: Aead> fmt::Debug for PeerTable<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTable")
            .field("peers", &self.peers.len())
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl<A: Aead> Default for PeerTable<A> {
    fn default() -> Self {
        PeerTable { peers: Vec::new(), routes: Vec::new(), v4: Lpm::default(), v6: Lpm::default() }
    }
}

impl<A: Aead> PeerTable<A> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether there are no peers.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    fn index(&self, peer_id: u32) -> Result<usize, usize> {
        self.peers.binary_search_by_key(&(peer_id & wire::PEER_ID_MASK), |p| p.id)
    }

    /// Adds a peer (configuration time).
    pub fn add_peer(&mut self, config: &PeerConfig, now: Instant) -> Result<&mut Peer<A>, PeerError> {
        match self.index(config.peer_id) {
            Ok(_) => Err(PeerError::Exists),
            Err(at) => {
                self.peers.insert(at, Peer::new(config, now));
                self.peers.get_mut(at).ok_or(PeerError::UnknownPeer)
            }
        }
    }

    /// Removes a peer and its routes; its keys are zeroized.
    pub fn remove_peer(&mut self, peer_id: u32) -> Result<(), PeerError> {
        let at = self.index(peer_id).map_err(|_| PeerError::UnknownPeer)?;
        self.peers.remove(at);
        let before = self.routes.len();
        self.routes.retain(|r| r.1 != peer_id & wire::PEER_ID_MASK);
        if self.routes.len() != before {
            self.rebuild();
        }
        Ok(())
    }

    /// A peer by id.
    pub fn peer(&self, peer_id: u32) -> Option<&Peer<A>> {
        self.peers.get(self.index(peer_id).ok()?)
    }

    /// A peer by id, mutably.
    pub fn peer_mut(&mut self, peer_id: u32) -> Option<&mut Peer<A>> {
        let i = self.index(peer_id).ok()?;
        self.peers.get_mut(i)
    }

    /// All peers.
    pub fn peers_mut(&mut self) -> impl Iterator<Item = &mut Peer<A>> {
        self.peers.iter_mut()
    }

    /// Routes `prefix` to `peer_id` (`OVPN_IOCTL_MP_ADD_IROUTE`), replacing a route for the same
    /// prefix. Configuration time: rebuilds the lookup table.
    pub fn add_route(&mut self, prefix: IpPrefix, peer_id: u32) -> Result<(), PeerError> {
        let prefix = prefix.normalized().ok_or(PeerError::BadPrefix)?;
        if self.index(peer_id).is_err() {
            return Err(PeerError::UnknownPeer);
        }
        let peer_id = peer_id & wire::PEER_ID_MASK;
        match self.routes.iter_mut().find(|r| r.0 == prefix) {
            Some(r) => r.1 = peer_id,
            None => self.routes.push((prefix, peer_id)),
        }
        self.rebuild();
        Ok(())
    }

    /// Adds many routes with one rebuild.
    pub fn add_routes(&mut self, routes: impl IntoIterator<Item = (IpPrefix, u32)>) -> Result<(), PeerError> {
        for (prefix, peer_id) in routes {
            let prefix = prefix.normalized().ok_or(PeerError::BadPrefix)?;
            if self.index(peer_id).is_err() {
                return Err(PeerError::UnknownPeer);
            }
            let peer_id = peer_id & wire::PEER_ID_MASK;
            match self.routes.iter_mut().find(|r| r.0 == prefix) {
                Some(r) => r.1 = peer_id,
                None => self.routes.push((prefix, peer_id)),
            }
        }
        self.rebuild();
        Ok(())
    }

    /// Removes the route for `prefix` (`OVPN_IOCTL_MP_DEL_IROUTE`).
    pub fn remove_route(&mut self, prefix: IpPrefix) -> Result<(), PeerError> {
        let prefix = prefix.normalized().ok_or(PeerError::BadPrefix)?;
        self.routes.retain(|r| r.0 != prefix);
        self.rebuild();
        Ok(())
    }

    fn rebuild(&mut self) {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (p, id) in &self.routes {
            match *p {
                IpPrefix::V4(a, l) => {
                    let (s, e) = IpPrefix::v4_range(a, l);
                    v4.push((s, e, *id));
                }
                IpPrefix::V6(a, l) => {
                    let (s, e) = IpPrefix::v6_range(a, l);
                    v6.push((s, e, *id));
                }
            }
        }
        self.v4 = Lpm::build(v4);
        self.v6 = Lpm::build(v6);
    }

    /// The peer routed for an IPv4 destination.
    pub fn lookup_v4(&self, dst: [u8; 4]) -> Option<u32> {
        self.v4.lookup(u32::from_be_bytes(dst))
    }

    /// The peer routed for an IPv6 destination.
    pub fn lookup_v6(&self, dst: [u8; 16]) -> Option<u32> {
        self.v6.lookup(u128::from_be_bytes(dst))
    }

    /// The peer routed for an inner destination.
    pub fn lookup(&self, dst: InnerDest) -> Option<u32> {
        match dst {
            InnerDest::V4(a) => self.lookup_v4(a),
            InnerDest::V6(a) => self.lookup_v6(a),
        }
    }

    /// Seals an inner packet for the peer its destination routes to.
    pub fn seal(&mut self, now: Instant, segments: &[&[u8]], out: &mut [u8]) -> Result<Sealed, SealError> {
        let dst = InnerDest::from_segments(segments).ok_or(SealError::NoRoute)?;
        let id = self.lookup(dst).ok_or(SealError::NoRoute)?;
        self.peer_mut(id).ok_or(SealError::NoRoute)?.seal(now, segments, out)
    }

    /// Opens a datagram for the peer its peer-id names. Control packets are returned untouched.
    pub fn open(
        &mut self,
        now: Instant,
        from: Option<&Endpoint>,
        packet: &mut [u8],
    ) -> Result<Received, OpenError> {
        match wire::classify(packet).map_err(OpenError::Malformed)? {
            PacketKind::Control { .. } => Ok(Received::Control),
            PacketKind::Data { peer_id, .. } => {
                self.peer_mut(peer_id).ok_or(OpenError::UnknownPeer)?.open(now, from, packet)
            }
        }
    }

    /// The first half of a split [`Self::open`] for the peer the packet's peer-id names (see
    /// [`Peer::open_begin`]).
    pub fn open_begin(&mut self, now: Instant, packet: &[u8]) -> Result<OpenStart<A>, OpenError> {
        match wire::classify(packet).map_err(OpenError::Malformed)? {
            PacketKind::Control { .. } => Ok(OpenStart::Control),
            PacketKind::Data { peer_id, .. } => {
                self.peer_mut(peer_id).ok_or(OpenError::UnknownPeer)?.open_begin(now, packet)
            }
        }
    }

    /// The second half of a split open (see [`Peer::open_finish`]); [`OpenError::UnknownPeer`] if
    /// the peer was removed between the halves.
    pub fn open_finish(
        &mut self,
        now: Instant,
        from: Option<&Endpoint>,
        ticket: &PeerTicket<A>,
        auth: Result<(), OpenError>,
        packet: &mut [u8],
    ) -> Result<Received, OpenError> {
        self.peer_mut(ticket.peer_id)
            .ok_or(OpenError::UnknownPeer)?
            .open_finish(now, from, ticket, auth, packet)
    }

    /// Polls every peer's timers, calling `f(peer_id, action)` for each that wants something.
    pub fn poll(&mut self, now: Instant, mut f: impl FnMut(u32, KeepaliveAction)) {
        for p in &mut self.peers {
            let a = p.poll(now);
            if a != KeepaliveAction::Idle {
                f(p.id, a);
            }
        }
    }
}
