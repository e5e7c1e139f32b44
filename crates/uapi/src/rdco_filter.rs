//! rdco's own IOCTLs for the lightweight filter's control device (`\\.\rdcofilter`, see [`crate::names`]).
//!
//! # Conventions
//!
//! * Codes are `CTL_CODE(FILE_DEVICE_UNKNOWN, 0x800 + n, METHOD_BUFFERED, FILE_ANY_ACCESS)`, n = 1..=12 —
//!   function numbers from 0x800 up are the range Microsoft leaves to vendors.
//! * Every request and response is fixed-size and starts with `Size: u32`, the size of the structure as its
//!   sender built it. That is the version: a later version only appends fields and grows `Size`. A receiver
//!   rejects `Size` below the size it knows (`BadValue { field: "Size" }`), requires the buffer to hold
//!   `Size` bytes, reads the fields it knows and ignores the rest. Senders write `Size = SIZE`.
//! * Integers are little-endian; addresses use the Windows `SOCKADDR_IN`/`SOCKADDR_IN6` layouts in a 28-byte
//!   slot ([`crate::sockaddr`]); reserved bytes are written as zero and ignored on parse.
//! * Peer ids are OpenVPN's 24-bit peer ids ([`PEER_ID_MAX`]); [`ALL_PEERS`] means "the whole module" where
//!   a request allows it.
//! * Control-channel packets travel through `ReadFile`/`WriteFile` on the same handle, each prefixed with
//!   the peer's `SOCKADDR_IN`/`SOCKADDR_IN6` exactly like ovpn-dco-win's multipeer mode
//!   ([`crate::sockaddr::split_prefixed`], [`crate::sockaddr::write_prefixed`]).
//!
//! | n | IOCTL | input | output |
//! |---|---|---|---|
//! | 1 | [`IOCTL_RDCO_FILTER_SET_POLICY`] | [`RdcoSetPolicy`] (328) | — |
//! | 2 | [`IOCTL_RDCO_FILTER_ADD_PEER`] | [`RdcoAddPeer`] (64) | — |
//! | 3 | [`IOCTL_RDCO_FILTER_DEL_PEER`] | [`RdcoPeerRef`] (8) | — |
//! | 4 | [`IOCTL_RDCO_FILTER_NEW_KEY`] | [`RdcoNewKey`] (108: `Size` + `OVPN_CRYPTO_DATA_V2`) | — |
//! | 5 | [`IOCTL_RDCO_FILTER_SWAP_KEYS`] | [`RdcoPeerRef`] (8) | — |
//! | 6 | [`IOCTL_RDCO_FILTER_SET_KEEPALIVE`] | [`RdcoKeepalive`] (20) | — |
//! | 7 | [`IOCTL_RDCO_FILTER_GET_STATS`] | [`RdcoStatsQuery`] (12; or [`RdcoPeerRef`], 8: version 1) | [`RdcoStats`] (272) |
//! | 8 | [`IOCTL_RDCO_FILTER_READ_EVENT`] | — | [`RdcoEvent`] (44), pends until an event |
//! | 9 | [`IOCTL_RDCO_FILTER_SET_HOLD_POLICY`] | [`RdcoHoldPolicy`] (20) | — |
//! | 10 | [`IOCTL_RDCO_FILTER_GET_HOLD_POLICY`] | — | [`RdcoHoldPolicy`] (20) |
//! | 11 | [`IOCTL_RDCO_FILTER_SET_PEER_ROUTES`] | [`RdcoPeerRoutes`] (332) | — |
//! | 12 | [`IOCTL_RDCO_FILTER_LIST_MODULES`] | — | [`RdcoModuleList`] (4872) |

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::ioctl::buffered;
use crate::ovpn::OvpnCryptoDataV2;
use crate::sockaddr::{self, AF_INET, AF_INET6, SOCKADDR_INET_SIZE};
use crate::wire::{
    bytes, check_in, impl_wire, prep_out, put, put_u16, put_u32, put_u64, put_u8, u16_at, u32_at, u64_at,
    u8_at,
};
use crate::UapiError;

/// The first function number of the vendor range; rdco's filter IOCTLs are `0x800 + n`.
pub const FUNCTION_BASE: u32 = 0x800;

/// Set the tunnel policy: the inner destination prefixes that are diverted into the tunnel.
pub const IOCTL_RDCO_FILTER_SET_POLICY: u32 = buffered(FUNCTION_BASE + 1);
/// Add a peer (its UDP endpoint).
pub const IOCTL_RDCO_FILTER_ADD_PEER: u32 = buffered(FUNCTION_BASE + 2);
/// Remove a peer.
pub const IOCTL_RDCO_FILTER_DEL_PEER: u32 = buffered(FUNCTION_BASE + 3);
/// Install a key pair in a peer's key slot (the ovpn-dco-win `OVPN_CRYPTO_DATA_V2` layout after `Size`).
pub const IOCTL_RDCO_FILTER_NEW_KEY: u32 = buffered(FUNCTION_BASE + 4);
/// Swap a peer's primary and secondary keys.
pub const IOCTL_RDCO_FILTER_SWAP_KEYS: u32 = buffered(FUNCTION_BASE + 5);
/// Set a peer's keepalive interval and timeout and its MSS clamp.
pub const IOCTL_RDCO_FILTER_SET_KEEPALIVE: u32 = buffered(FUNCTION_BASE + 6);
/// Read the statistics of a peer or of the whole module.
pub const IOCTL_RDCO_FILTER_GET_STATS: u32 = buffered(FUNCTION_BASE + 7);
/// Wait for the next event (keepalive timeout, rekey needed, float).
pub const IOCTL_RDCO_FILTER_READ_EVENT: u32 = buffered(FUNCTION_BASE + 8);
/// Set the driver's hold policy (when a diverted NBL stops being held and is deep-copied).
pub const IOCTL_RDCO_FILTER_SET_HOLD_POLICY: u32 = buffered(FUNCTION_BASE + 9);
/// Read the driver's hold policy.
pub const IOCTL_RDCO_FILTER_GET_HOLD_POLICY: u32 = buffered(FUNCTION_BASE + 10);
/// Replace the inner prefixes routed to one peer (longest prefix wins across peers).
pub const IOCTL_RDCO_FILTER_SET_PEER_ROUTES: u32 = buffered(FUNCTION_BASE + 11);
/// List the filter modules (one per NIC the filter is attached to), with the `IfIndex` that selects a
/// module's counters in `GET_STATS`.
pub const IOCTL_RDCO_FILTER_LIST_MODULES: u32 = buffered(FUNCTION_BASE + 12);

/// The largest OpenVPN peer id (24 bits).
pub const PEER_ID_MAX: u32 = 0x00FF_FFFF;
/// The peer id that stands for the whole module (statistics).
pub const ALL_PEERS: u32 = u32::MAX;
/// How many prefixes one policy holds.
pub const MAX_POLICY_PREFIXES: usize = 16;
/// How many prefixes one `SET_PEER_ROUTES` request carries (a peer's whole route set).
pub const MAX_PEER_ROUTES: usize = 16;
/// How many routes the driver holds across all peers (a `SET_PEER_ROUTES` past it fails).
pub const MAX_ROUTES: usize = 64;
/// How many modules [`RdcoModuleList`] reports (the driver tracks at most this many).
pub const MAX_MODULES: usize = 32;
/// UTF-16 units of a module name kept in [`RdcoModuleInfo`] (longer names are cut).
pub const MODULE_NAME_LEN: usize = 64;
/// The `IfIndex` that selects no module ([`RdcoStatsQuery`]): `NET_IFINDEX_UNSPECIFIED`.
pub const IF_INDEX_ANY: u32 = 0;

/// Every rdco filter IOCTL, for dispatch by code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RdcoFilterIoctl {
    /// [`IOCTL_RDCO_FILTER_SET_POLICY`]
    SetPolicy = IOCTL_RDCO_FILTER_SET_POLICY,
    /// [`IOCTL_RDCO_FILTER_ADD_PEER`]
    AddPeer = IOCTL_RDCO_FILTER_ADD_PEER,
    /// [`IOCTL_RDCO_FILTER_DEL_PEER`]
    DelPeer = IOCTL_RDCO_FILTER_DEL_PEER,
    /// [`IOCTL_RDCO_FILTER_NEW_KEY`]
    NewKey = IOCTL_RDCO_FILTER_NEW_KEY,
    /// [`IOCTL_RDCO_FILTER_SWAP_KEYS`]
    SwapKeys = IOCTL_RDCO_FILTER_SWAP_KEYS,
    /// [`IOCTL_RDCO_FILTER_SET_KEEPALIVE`]
    SetKeepalive = IOCTL_RDCO_FILTER_SET_KEEPALIVE,
    /// [`IOCTL_RDCO_FILTER_GET_STATS`]
    GetStats = IOCTL_RDCO_FILTER_GET_STATS,
    /// [`IOCTL_RDCO_FILTER_READ_EVENT`]
    ReadEvent = IOCTL_RDCO_FILTER_READ_EVENT,
    /// [`IOCTL_RDCO_FILTER_SET_HOLD_POLICY`]
    SetHoldPolicy = IOCTL_RDCO_FILTER_SET_HOLD_POLICY,
    /// [`IOCTL_RDCO_FILTER_GET_HOLD_POLICY`]
    GetHoldPolicy = IOCTL_RDCO_FILTER_GET_HOLD_POLICY,
    /// [`IOCTL_RDCO_FILTER_SET_PEER_ROUTES`]
    SetPeerRoutes = IOCTL_RDCO_FILTER_SET_PEER_ROUTES,
    /// [`IOCTL_RDCO_FILTER_LIST_MODULES`]
    ListModules = IOCTL_RDCO_FILTER_LIST_MODULES,
}

impl RdcoFilterIoctl {
    /// All of them, in function-number order.
    pub const ALL: [Self; 12] = [
        Self::SetPolicy,
        Self::AddPeer,
        Self::DelPeer,
        Self::NewKey,
        Self::SwapKeys,
        Self::SetKeepalive,
        Self::GetStats,
        Self::ReadEvent,
        Self::SetHoldPolicy,
        Self::GetHoldPolicy,
        Self::SetPeerRoutes,
        Self::ListModules,
    ];

    /// The IOCTL with this code, if it is one of the filter's.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|i| i.code() == code)
    }

    /// The IOCTL code.
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// A stable name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SetPolicy => "IOCTL_RDCO_FILTER_SET_POLICY",
            Self::AddPeer => "IOCTL_RDCO_FILTER_ADD_PEER",
            Self::DelPeer => "IOCTL_RDCO_FILTER_DEL_PEER",
            Self::NewKey => "IOCTL_RDCO_FILTER_NEW_KEY",
            Self::SwapKeys => "IOCTL_RDCO_FILTER_SWAP_KEYS",
            Self::SetKeepalive => "IOCTL_RDCO_FILTER_SET_KEEPALIVE",
            Self::GetStats => "IOCTL_RDCO_FILTER_GET_STATS",
            Self::ReadEvent => "IOCTL_RDCO_FILTER_READ_EVENT",
            Self::SetHoldPolicy => "IOCTL_RDCO_FILTER_SET_HOLD_POLICY",
            Self::GetHoldPolicy => "IOCTL_RDCO_FILTER_GET_HOLD_POLICY",
            Self::SetPeerRoutes => "IOCTL_RDCO_FILTER_SET_PEER_ROUTES",
            Self::ListModules => "IOCTL_RDCO_FILTER_LIST_MODULES",
        }
    }

    /// The minimum input length (0: none).
    pub const fn input_len(self) -> usize {
        match self {
            Self::SetPolicy => RdcoSetPolicy::SIZE,
            Self::AddPeer => RdcoAddPeer::SIZE,
            Self::DelPeer | Self::SwapKeys | Self::GetStats => RdcoPeerRef::SIZE,
            Self::NewKey => RdcoNewKey::SIZE,
            Self::SetKeepalive => RdcoKeepalive::SIZE,
            Self::SetHoldPolicy => RdcoHoldPolicy::SIZE,
            Self::SetPeerRoutes => RdcoPeerRoutes::SIZE,
            Self::ReadEvent | Self::GetHoldPolicy | Self::ListModules => 0,
        }
    }

    /// The output length (0: none).
    pub const fn output_len(self) -> usize {
        match self {
            Self::GetStats => RdcoStats::SIZE,
            Self::ReadEvent => RdcoEvent::SIZE,
            Self::GetHoldPolicy => RdcoHoldPolicy::SIZE,
            Self::ListModules => RdcoModuleList::SIZE,
            _ => 0,
        }
    }
}

/// Offset of the leading `Size` field in every structure.
pub const SIZE_FIELD: usize = 0;

fn check_header(buf: &[u8], size: usize) -> Result<(), UapiError> {
    check_in(buf, size)?;
    let declared = u32_at(buf, SIZE_FIELD);
    let declared_len = usize::try_from(declared).unwrap_or(usize::MAX);
    if declared_len < size {
        return Err(UapiError::bad("Size", declared));
    }
    check_in(buf, declared_len)
}

fn header_out(out: &mut [u8], size: usize) -> Result<(), UapiError> {
    prep_out(out, size)?;
    put_u32(out, SIZE_FIELD, u32::try_from(size).unwrap_or(u32::MAX));
    Ok(())
}

fn peer_id(v: u32) -> Result<u32, UapiError> {
    if v > PEER_ID_MAX {
        Err(UapiError::bad("PeerId", v))
    } else {
        Ok(v)
    }
}

/// One policy prefix (20 bytes): `Family` u16 at 0 (`AF_INET`/`AF_INET6`), `PrefixLen` u8 at 2, reserved u8
/// at 3, `Addr[16]` at 4 (an IPv4 address in its first 4 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdcoPrefix {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length (0..=32 or 0..=128).
    pub prefix_len: u8,
}

impl Default for RdcoPrefix {
    fn default() -> Self {
        Self { addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED), prefix_len: 0 }
    }
}

/// Byte offsets inside an [`RdcoPrefix`].
pub mod prefix {
    /// `Family`
    pub const FAMILY: usize = 0;
    /// `PrefixLen`
    pub const PREFIX_LEN: usize = 2;
    /// `Addr[16]`
    pub const ADDR: usize = 4;
}

impl RdcoPrefix {
    /// Encoded size.
    pub const SIZE: usize = 20;

    /// Parses one prefix.
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_in(buf, Self::SIZE)?;
        let family = u16_at(buf, prefix::FAMILY);
        let prefix_len = u8_at(buf, prefix::PREFIX_LEN);
        let (addr, max) = match family {
            AF_INET => (IpAddr::V4(Ipv4Addr::from(bytes::<4>(buf, prefix::ADDR))), 32),
            AF_INET6 => (IpAddr::V6(Ipv6Addr::from(bytes::<16>(buf, prefix::ADDR))), 128),
            other => return Err(UapiError::bad("Prefix.Family", other)),
        };
        if prefix_len > max {
            return Err(UapiError::bad("Prefix.PrefixLen", prefix_len));
        }
        Ok(Self { addr, prefix_len })
    }

    /// Writes one prefix.
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        prep_out(out, Self::SIZE)?;
        match self.addr {
            IpAddr::V4(a) => {
                put_u16(out, prefix::FAMILY, AF_INET);
                put(out, prefix::ADDR, &a.octets());
            }
            IpAddr::V6(a) => {
                put_u16(out, prefix::FAMILY, AF_INET6);
                put(out, prefix::ADDR, &a.octets());
            }
        }
        put_u8(out, prefix::PREFIX_LEN, self.prefix_len);
        Ok(Self::SIZE)
    }
}

/// `RDCO_SET_POLICY` (328 bytes): `Size` u32 at 0, `Count` u32 at 4, `Prefixes[16]` ([`RdcoPrefix`], 20 bytes
/// each) at 8. Replaces the whole policy; `Count` 0 diverts nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RdcoSetPolicy {
    count: u8,
    prefixes: [RdcoPrefix; MAX_POLICY_PREFIXES],
}

/// Byte offsets of [`RdcoSetPolicy`].
pub mod set_policy {
    /// `Size`
    pub const SIZE: usize = 0;
    /// `Count`
    pub const COUNT: usize = 4;
    /// `Prefixes[16]`
    pub const PREFIXES: usize = 8;
}

impl RdcoSetPolicy {
    /// Encoded size of this version.
    pub const SIZE: usize = 8 + MAX_POLICY_PREFIXES * RdcoPrefix::SIZE;

    /// A policy of these prefixes (at most [`MAX_POLICY_PREFIXES`]).
    pub fn new(prefixes: &[RdcoPrefix]) -> Result<Self, UapiError> {
        let mut p = Self::default();
        if prefixes.len() > MAX_POLICY_PREFIXES {
            return Err(UapiError::bad("Count", u64::try_from(prefixes.len()).unwrap_or(u64::MAX)));
        }
        for (dst, src) in p.prefixes.iter_mut().zip(prefixes) {
            *dst = *src;
        }
        p.count = u8::try_from(prefixes.len()).unwrap_or(0);
        Ok(p)
    }

    /// The prefixes.
    pub fn prefixes(&self) -> &[RdcoPrefix] {
        self.prefixes.get(..usize::from(self.count)).unwrap_or(&[])
    }

    /// Parses the structure; see [`crate::Wire::parse`]. Only the first `Count` prefixes are checked.
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_header(buf, Self::SIZE)?;
        let count = u32_at(buf, set_policy::COUNT);
        let n = match u8::try_from(count) {
            Ok(n) if usize::from(n) <= MAX_POLICY_PREFIXES => n,
            _ => return Err(UapiError::bad("Count", count)),
        };
        let mut p = Self { count: n, ..Self::default() };
        for (i, slot) in p.prefixes.iter_mut().take(usize::from(n)).enumerate() {
            let off = set_policy::PREFIXES + i * RdcoPrefix::SIZE;
            *slot = RdcoPrefix::parse(buf.get(off..).unwrap_or(&[]))?;
        }
        Ok(p)
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        put_u32(out, set_policy::COUNT, u32::from(self.count));
        for (i, p) in self.prefixes().iter().enumerate() {
            let off = set_policy::PREFIXES + i * RdcoPrefix::SIZE;
            if let Some(dst) = out.get_mut(off..) {
                p.write_to(dst)?;
            }
        }
        Ok(Self::SIZE)
    }
}

/// `RDCO_PEER_ROUTES` (332 bytes): `Size` u32 at 0, `PeerId` u32 at 4, `Count` u32 at 8, `Prefixes[16]`
/// ([`RdcoPrefix`], 20 bytes each) at 12. Replaces the whole set of inner prefixes routed to the peer;
/// `Count` 0 removes them. Host bits are cleared by the driver. Only the first `Count` prefixes are
/// checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RdcoPeerRoutes {
    /// The peer the prefixes route to.
    pub peer_id: u32,
    count: u8,
    prefixes: [RdcoPrefix; MAX_PEER_ROUTES],
}

/// Byte offsets of [`RdcoPeerRoutes`].
#[allow(missing_docs)]
pub mod peer_routes {
    pub const SIZE: usize = 0;
    pub const PEER_ID: usize = 4;
    pub const COUNT: usize = 8;
    pub const PREFIXES: usize = 12;
}

impl RdcoPeerRoutes {
    /// Encoded size of this version.
    pub const SIZE: usize = 12 + MAX_PEER_ROUTES * RdcoPrefix::SIZE;

    /// The routes of `peer_id` (at most [`MAX_PEER_ROUTES`]).
    pub fn new(peer_id: u32, prefixes: &[RdcoPrefix]) -> Result<Self, UapiError> {
        if prefixes.len() > MAX_PEER_ROUTES {
            return Err(UapiError::bad("Count", u64::try_from(prefixes.len()).unwrap_or(u64::MAX)));
        }
        let mut r = Self { peer_id, ..Self::default() };
        for (dst, src) in r.prefixes.iter_mut().zip(prefixes) {
            *dst = *src;
        }
        r.count = u8::try_from(prefixes.len()).unwrap_or(0);
        Ok(r)
    }

    /// The prefixes.
    pub fn prefixes(&self) -> &[RdcoPrefix] {
        self.prefixes.get(..usize::from(self.count)).unwrap_or(&[])
    }

    /// Parses the structure; see [`crate::Wire::parse`]. `ALL_PEERS` is not a peer here.
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_header(buf, Self::SIZE)?;
        let id = peer_id(u32_at(buf, peer_routes::PEER_ID))?;
        let count = u32_at(buf, peer_routes::COUNT);
        let n = match u8::try_from(count) {
            Ok(n) if usize::from(n) <= MAX_PEER_ROUTES => n,
            _ => return Err(UapiError::bad("Count", count)),
        };
        let mut r = Self { peer_id: id, count: n, ..Self::default() };
        for (i, slot) in r.prefixes.iter_mut().take(usize::from(n)).enumerate() {
            let off = peer_routes::PREFIXES + i * RdcoPrefix::SIZE;
            *slot = RdcoPrefix::parse(buf.get(off..).unwrap_or(&[]))?;
        }
        Ok(r)
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        put_u32(out, peer_routes::PEER_ID, self.peer_id);
        put_u32(out, peer_routes::COUNT, u32::from(self.count));
        for (i, p) in self.prefixes().iter().enumerate() {
            let off = peer_routes::PREFIXES + i * RdcoPrefix::SIZE;
            if let Some(dst) = out.get_mut(off..) {
                p.write_to(dst)?;
            }
        }
        Ok(Self::SIZE)
    }
}

/// The input of `GET_STATS`, version 2 (12 bytes): `Size` at 0, `PeerId` at 4, `IfIndex` at 8.
/// Version 1 is [`RdcoPeerRef`] (8 bytes, `Size` 8) and still accepted: it reads as `IfIndex` 0.
///
/// * `PeerId` a peer, `IfIndex` 0: that peer's counters (peers are the driver's, not a module's).
/// * `PeerId` [`ALL_PEERS`], `IfIndex` 0 ([`IF_INDEX_ANY`]): the driver-wide totals.
/// * `PeerId` [`ALL_PEERS`], `IfIndex` N: the counters of the module attached above the miniport whose
///   `IfIndex` is N (as `LIST_MODULES` reports it).
///
/// A peer together with a non-zero `IfIndex` is `BadValue { field: "IfIndex" }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdcoStatsQuery {
    /// The peer, or [`ALL_PEERS`].
    pub peer_id: u32,
    /// The module's miniport `IfIndex`, or [`IF_INDEX_ANY`].
    pub if_index: u32,
}

/// Byte offsets of [`RdcoStatsQuery`].
#[allow(missing_docs)]
pub mod stats_query {
    pub const SIZE: usize = 0;
    pub const PEER_ID: usize = 4;
    pub const IF_INDEX: usize = 8;
}

impl RdcoStatsQuery {
    /// Encoded size of this version.
    pub const SIZE: usize = 12;

    /// Parses version 2, or version 1 ([`RdcoPeerRef`]) when `Size` is 8.
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_header(buf, RdcoPeerRef::SIZE)?;
        let v1 = RdcoPeerRef::parse(buf)?;
        let declared = usize::try_from(u32_at(buf, SIZE_FIELD)).unwrap_or(usize::MAX);
        let if_index = if declared >= Self::SIZE { u32_at(buf, stats_query::IF_INDEX) } else { IF_INDEX_ANY };
        if if_index != IF_INDEX_ANY && v1.peer_id != ALL_PEERS {
            return Err(UapiError::bad("IfIndex", if_index));
        }
        Ok(Self { peer_id: v1.peer_id, if_index })
    }

    /// Writes the structure (version 2); see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        put_u32(out, stats_query::PEER_ID, self.peer_id);
        put_u32(out, stats_query::IF_INDEX, self.if_index);
        Ok(Self::SIZE)
    }
}

/// A module's state in [`RdcoModuleInfo`].
pub mod module_state {
    /// Paused (attached, or pause completed).
    pub const PAUSED: u32 = 1;
    /// Running.
    pub const RUNNING: u32 = 2;
    /// A pause is in progress.
    pub const PAUSING: u32 = 3;
}

/// One module of [`RdcoModuleList`] (152 bytes): `IfIndex` u32 at 0 (the miniport's,
/// `NDIS_FILTER_ATTACH_PARAMETERS.BaseMiniportIfIndex`), `State` u32 at 4 ([`module_state`]), `NetLuid`
/// u64 at 8 (the module's own), `NameLength` u16 at 16 (UTF-16 units used of `Name`), reserved u16 at 18
/// and u32 at 20, `Name[64]` (UTF-16, the miniport's `BaseMiniportName`, cut to 64 units) at 24.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdcoModuleInfo {
    /// The miniport's interface index: the selector of `GET_STATS`.
    pub if_index: u32,
    /// [`module_state`].
    pub state: u32,
    /// The filter module's `NET_LUID`.
    pub net_luid: u64,
    name_len: u16,
    name: [u16; MODULE_NAME_LEN],
}

impl Default for RdcoModuleInfo {
    fn default() -> Self {
        Self { if_index: 0, state: 0, net_luid: 0, name_len: 0, name: [0; MODULE_NAME_LEN] }
    }
}

/// Byte offsets inside an [`RdcoModuleInfo`].
#[allow(missing_docs)]
pub mod module_info {
    pub const IF_INDEX: usize = 0;
    pub const STATE: usize = 4;
    pub const NET_LUID: usize = 8;
    pub const NAME_LENGTH: usize = 16;
    pub const NAME: usize = 24;
}

impl RdcoModuleInfo {
    /// Encoded size.
    pub const SIZE: usize = 24 + 2 * MODULE_NAME_LEN;

    /// A module entry; `name` is cut to [`MODULE_NAME_LEN`] units.
    pub fn new(if_index: u32, state: u32, net_luid: u64, name: &[u16]) -> Self {
        let mut m = Self { if_index, state, net_luid, ..Self::default() };
        for (dst, src) in m.name.iter_mut().zip(name) {
            *dst = *src;
        }
        m.name_len = u16::try_from(name.len().min(MODULE_NAME_LEN)).unwrap_or(0);
        m
    }

    /// The name's UTF-16 units.
    pub fn name(&self) -> &[u16] {
        self.name.get(..usize::from(self.name_len)).unwrap_or(&[])
    }

    fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_in(buf, Self::SIZE)?;
        let name_len = u16_at(buf, module_info::NAME_LENGTH);
        if usize::from(name_len) > MODULE_NAME_LEN {
            return Err(UapiError::bad("NameLength", name_len));
        }
        let mut m = Self {
            if_index: u32_at(buf, module_info::IF_INDEX),
            state: u32_at(buf, module_info::STATE),
            net_luid: u64_at(buf, module_info::NET_LUID),
            name_len,
            name: [0; MODULE_NAME_LEN],
        };
        for (i, c) in m.name.iter_mut().enumerate() {
            *c = u16_at(buf, module_info::NAME + 2 * i);
        }
        Ok(m)
    }

    /// Writes this entry as entry `index` of a list written with [`RdcoModuleList::write_header`].
    pub fn write_entry(&self, out: &mut [u8], index: usize) -> Result<(), UapiError> {
        if index >= MAX_MODULES {
            return Err(UapiError::bad("Count", u64::try_from(index).unwrap_or(u64::MAX)));
        }
        let off = module_list::MODULES + index * Self::SIZE;
        let got = out.len();
        let dst = out
            .get_mut(off..off + Self::SIZE)
            .ok_or(UapiError::BufferTooSmall { need: RdcoModuleList::SIZE, got })?;
        self.write_to(dst);
        Ok(())
    }

    fn write_to(&self, out: &mut [u8]) {
        put_u32(out, module_info::IF_INDEX, self.if_index);
        put_u32(out, module_info::STATE, self.state);
        put_u64(out, module_info::NET_LUID, self.net_luid);
        put_u16(out, module_info::NAME_LENGTH, self.name_len);
        for (i, c) in self.name().iter().enumerate() {
            put_u16(out, module_info::NAME + 2 * i, *c);
        }
    }
}

/// `RDCO_MODULE_LIST` (4872 bytes), the output of `LIST_MODULES`: `Size` at 0, `Count` at 4, then
/// `Modules[32]` ([`RdcoModuleInfo`], 152 bytes each) at 8; entries past `Count` are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdcoModuleList {
    count: usize,
    modules: [RdcoModuleInfo; MAX_MODULES],
}

impl Default for RdcoModuleList {
    fn default() -> Self {
        Self { count: 0, modules: [RdcoModuleInfo::default(); MAX_MODULES] }
    }
}

/// Byte offsets of [`RdcoModuleList`].
#[allow(missing_docs)]
pub mod module_list {
    pub const SIZE: usize = 0;
    pub const COUNT: usize = 4;
    pub const MODULES: usize = 8;
}

impl RdcoModuleList {
    /// Encoded size of this version.
    pub const SIZE: usize = 8 + MAX_MODULES * RdcoModuleInfo::SIZE;

    /// Streaming form of [`Self::write_to`] for a writer that must not build the whole list (a kernel
    /// stack): zero-fills `out`, writes `Size` and `Count` 0. Then [`RdcoModuleInfo::write_entry`] per
    /// module and [`Self::write_count`]. Returns [`Self::SIZE`].
    pub fn write_header(out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        Ok(Self::SIZE)
    }

    /// Sets `Count` in a list written with [`Self::write_header`] (at most [`MAX_MODULES`]).
    pub fn write_count(out: &mut [u8], count: usize) -> Result<(), UapiError> {
        if count > MAX_MODULES {
            return Err(UapiError::bad("Count", u64::try_from(count).unwrap_or(u64::MAX)));
        }
        if out.len() < Self::SIZE {
            return Err(UapiError::BufferTooSmall { need: Self::SIZE, got: out.len() });
        }
        put_u32(out, module_list::COUNT, u32::try_from(count).unwrap_or(0));
        Ok(())
    }

    /// The modules listed.
    pub fn modules(&self) -> &[RdcoModuleInfo] {
        self.modules.get(..self.count).unwrap_or(&[])
    }

    /// Appends a module; false (nothing changes) when [`MAX_MODULES`] are listed.
    pub fn push(&mut self, m: RdcoModuleInfo) -> bool {
        match self.modules.get_mut(self.count) {
            Some(slot) => {
                *slot = m;
                self.count += 1;
                true
            }
            None => false,
        }
    }

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_header(buf, Self::SIZE)?;
        let count = u32_at(buf, module_list::COUNT);
        let n = usize::try_from(count).unwrap_or(usize::MAX);
        if n > MAX_MODULES {
            return Err(UapiError::bad("Count", count));
        }
        let mut list = Self::default();
        for i in 0..n {
            let off = module_list::MODULES + i * RdcoModuleInfo::SIZE;
            let m = RdcoModuleInfo::parse(buf.get(off..).unwrap_or(&[]))?;
            list.push(m);
        }
        Ok(list)
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        put_u32(out, module_list::COUNT, u32::try_from(self.count).unwrap_or(0));
        for (i, m) in self.modules().iter().enumerate() {
            let off = module_list::MODULES + i * RdcoModuleInfo::SIZE;
            if let Some(dst) = out.get_mut(off..off + RdcoModuleInfo::SIZE) {
                m.write_to(dst);
            }
        }
        Ok(Self::SIZE)
    }
}

/// `RDCO_ADD_PEER` (64 bytes): `Size` at 0, `PeerId` at 4, `Local` (28-byte sockaddr slot) at 8, `Remote` at
/// 36. The transport is UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdcoAddPeer {
    /// OpenVPN peer id (0..=0xFFFFFF).
    pub peer_id: u32,
    /// Local address for the WSK socket (port 0 / unspecified address let the stack choose).
    pub local: SocketAddr,
    /// The peer's endpoint; traffic to it is never diverted.
    pub remote: SocketAddr,
}

/// Byte offsets of [`RdcoAddPeer`].
pub mod add_peer {
    /// `Size`
    pub const SIZE: usize = 0;
    /// `PeerId`
    pub const PEER_ID: usize = 4;
    /// `Local`
    pub const LOCAL: usize = 8;
    /// `Remote`
    pub const REMOTE: usize = 36;
}

impl RdcoAddPeer {
    /// Encoded size of this version.
    pub const SIZE: usize = 64;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_header(buf, Self::SIZE)?;
        let slot = |off: usize| buf.get(off..off + SOCKADDR_INET_SIZE).unwrap_or(&[]);
        Ok(Self {
            peer_id: peer_id(u32_at(buf, add_peer::PEER_ID))?,
            local: sockaddr::parse(slot(add_peer::LOCAL), "Local")?,
            remote: sockaddr::parse(slot(add_peer::REMOTE), "Remote")?,
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        put_u32(out, add_peer::PEER_ID, self.peer_id);
        if let Some(dst) = out.get_mut(add_peer::LOCAL..add_peer::REMOTE) {
            sockaddr::write(&self.local, dst)?;
        }
        if let Some(dst) = out.get_mut(add_peer::REMOTE..Self::SIZE) {
            sockaddr::write(&self.remote, dst)?;
        }
        Ok(Self::SIZE)
    }
}

/// `RDCO_PEER_REF` (8 bytes): `Size` at 0, `PeerId` at 4. [`ALL_PEERS`] is accepted by `parse`; the driver
/// decides per IOCTL whether it means anything (statistics: the module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdcoPeerRef {
    /// The peer id, or [`ALL_PEERS`].
    pub peer_id: u32,
}

/// Byte offsets of [`RdcoPeerRef`].
pub mod peer_ref {
    /// `Size`
    pub const SIZE: usize = 0;
    /// `PeerId`
    pub const PEER_ID: usize = 4;
}

impl RdcoPeerRef {
    /// Encoded size of this version.
    pub const SIZE: usize = 8;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_header(buf, Self::SIZE)?;
        let id = u32_at(buf, peer_ref::PEER_ID);
        Ok(Self { peer_id: if id == ALL_PEERS { id } else { peer_id(id)? } })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        put_u32(out, peer_ref::PEER_ID, self.peer_id);
        Ok(Self::SIZE)
    }
}

/// `RDCO_NEW_KEY` (108 bytes): `Size` at 0, then `OVPN_CRYPTO_DATA_V2` at 4 (so `Encrypt` at 4, `Decrypt` at
/// 45, `KeySlot` at 88, `CipherAlg` at 92, `KeyId` at 96, `PeerId` at 100, `CryptoOptions` at 104). The
/// `PeerId` inside names the peer; it is checked like every peer id of this API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdcoNewKey {
    /// The key pair, in ovpn-dco-win's layout and with its checks.
    pub key: OvpnCryptoDataV2,
}

/// Byte offsets of [`RdcoNewKey`].
pub mod new_key {
    /// `Size`
    pub const SIZE: usize = 0;
    /// `Key` (`OVPN_CRYPTO_DATA_V2`, 104 bytes)
    pub const KEY: usize = 4;
}

impl RdcoNewKey {
    /// Encoded size of this version.
    pub const SIZE: usize = 4 + OvpnCryptoDataV2::SIZE;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_header(buf, Self::SIZE)?;
        let key = OvpnCryptoDataV2::parse(buf.get(new_key::KEY..).unwrap_or(&[]))?;
        // A negative id fails like any id past 24 bits, reported as its bit pattern.
        peer_id(u32::from_le_bytes(key.v1.peer_id.to_le_bytes()))?;
        Ok(Self { key })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        if let Some(dst) = out.get_mut(new_key::KEY..) {
            self.key.write_to(dst)?;
        }
        Ok(Self::SIZE)
    }
}

/// `RDCO_KEEPALIVE` (20 bytes): `Size` at 0, `PeerId` at 4, `KeepaliveInterval` at 8, `KeepaliveTimeout` at
/// 12 (seconds; 0 disables), `Mss` at 16 (0: no clamping; at most 65535).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdcoKeepalive {
    /// The peer.
    pub peer_id: u32,
    /// Seconds between keepalive pings when idle (0: none).
    pub keepalive_interval: u32,
    /// Seconds without traffic from the peer before the timeout event (0: never).
    pub keepalive_timeout: u32,
    /// MSS to clamp diverted TCP SYNs to (0: none).
    pub mss: u16,
}

/// Byte offsets of [`RdcoKeepalive`].
#[allow(missing_docs)]
pub mod keepalive {
    pub const SIZE: usize = 0;
    pub const PEER_ID: usize = 4;
    pub const KEEPALIVE_INTERVAL: usize = 8;
    pub const KEEPALIVE_TIMEOUT: usize = 12;
    pub const MSS: usize = 16;
}

impl RdcoKeepalive {
    /// Encoded size of this version.
    pub const SIZE: usize = 20;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_header(buf, Self::SIZE)?;
        let mss = u32_at(buf, keepalive::MSS);
        Ok(Self {
            peer_id: peer_id(u32_at(buf, keepalive::PEER_ID))?,
            keepalive_interval: u32_at(buf, keepalive::KEEPALIVE_INTERVAL),
            keepalive_timeout: u32_at(buf, keepalive::KEEPALIVE_TIMEOUT),
            mss: u16::try_from(mss).map_err(|_| UapiError::bad("Mss", mss))?,
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        put_u32(out, keepalive::PEER_ID, self.peer_id);
        put_u32(out, keepalive::KEEPALIVE_INTERVAL, self.keepalive_interval);
        put_u32(out, keepalive::KEEPALIVE_TIMEOUT, self.keepalive_timeout);
        put_u32(out, keepalive::MSS, u32::from(self.mss));
        Ok(Self::SIZE)
    }
}

/// The accepted range of [`RdcoHoldPolicy::budget_nbls`]: at least one original may be held (0 would
/// copy every diverted NBL, which is what a tiny budget already approximates), at most 2^20.
pub const HOLD_BUDGET_NBLS: core::ops::RangeInclusive<u32> = 1..=1 << 20;
/// The accepted range of [`RdcoHoldPolicy::budget_ms`] (1 ms to 60 s).
pub const HOLD_BUDGET_MS: core::ops::RangeInclusive<u32> = 1..=60_000;
/// The accepted range of [`RdcoHoldPolicy::ceiling_bytes`]: at least one 2 KiB frame, at most 1 GiB.
pub const HOLD_CEILING_BYTES: core::ops::RangeInclusive<u32> = 2_048..=1 << 30;
/// The accepted range of [`RdcoHoldPolicy::copy_max_age_ms`] (100 ms to 10 min).
pub const HOLD_COPY_MAX_AGE_MS: core::ops::RangeInclusive<u32> = 100..=600_000;

/// `RDCO_HOLD_POLICY` (20 bytes): `Size` at 0, `BudgetNbls` at 4, `BudgetMs` at 8, `CeilingBytes` at 12,
/// `CopyMaxAgeMs` at 16. The input of `SET_HOLD_POLICY` and the output of `GET_HOLD_POLICY`. Each field
/// must lie in its range ([`HOLD_BUDGET_NBLS`], [`HOLD_BUDGET_MS`], [`HOLD_CEILING_BYTES`],
/// [`HOLD_COPY_MAX_AGE_MS`]); anything else is `BadValue` naming the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdcoHoldPolicy {
    /// Originals queued (not yet sealed) before the next one is deep-copied (the budget trigger).
    pub budget_nbls: u32,
    /// Milliseconds an original may wait in the queue before it is deep-copied (the budget trigger).
    pub budget_ms: u32,
    /// Payload bytes held in deep copies at once across the driver; past it an original is dropped.
    pub ceiling_bytes: u32,
    /// Milliseconds a deep copy waits for the transport before it is freed and counted as dropped.
    pub copy_max_age_ms: u32,
}

/// Byte offsets of [`RdcoHoldPolicy`].
#[allow(missing_docs)]
pub mod hold_policy {
    pub const SIZE: usize = 0;
    pub const BUDGET_NBLS: usize = 4;
    pub const BUDGET_MS: usize = 8;
    pub const CEILING_BYTES: usize = 12;
    pub const COPY_MAX_AGE_MS: usize = 16;
}

fn in_range(field: &'static str, v: u32, range: core::ops::RangeInclusive<u32>) -> Result<u32, UapiError> {
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(UapiError::bad(field, v))
    }
}

impl RdcoHoldPolicy {
    /// Encoded size of this version.
    pub const SIZE: usize = 20;

    /// Checks every field against its range (what [`Self::parse`] enforces), naming the first bad one.
    pub fn validate(&self) -> Result<(), UapiError> {
        in_range("BudgetNbls", self.budget_nbls, HOLD_BUDGET_NBLS)?;
        in_range("BudgetMs", self.budget_ms, HOLD_BUDGET_MS)?;
        in_range("CeilingBytes", self.ceiling_bytes, HOLD_CEILING_BYTES)?;
        in_range("CopyMaxAgeMs", self.copy_max_age_ms, HOLD_COPY_MAX_AGE_MS)?;
        Ok(())
    }

    /// Parses the structure; see [`crate::Wire::parse`]. Values outside their ranges are `BadValue`.
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_header(buf, Self::SIZE)?;
        let policy = Self {
            budget_nbls: u32_at(buf, hold_policy::BUDGET_NBLS),
            budget_ms: u32_at(buf, hold_policy::BUDGET_MS),
            ceiling_bytes: u32_at(buf, hold_policy::CEILING_BYTES),
            copy_max_age_ms: u32_at(buf, hold_policy::COPY_MAX_AGE_MS),
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Writes the structure; see [`crate::Wire::write_to`]. Writes whatever the fields hold (the driver
    /// reports its policy as it is).
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        put_u32(out, hold_policy::BUDGET_NBLS, self.budget_nbls);
        put_u32(out, hold_policy::BUDGET_MS, self.budget_ms);
        put_u32(out, hold_policy::CEILING_BYTES, self.ceiling_bytes);
        put_u32(out, hold_policy::COPY_MAX_AGE_MS, self.copy_max_age_ms);
        Ok(Self::SIZE)
    }
}

macro_rules! counters {
    ($($(#[$m:meta])* $field:ident, $konst:ident = $off:literal;)*) => {
        /// `RDCO_STATS` (272 bytes): `Size` at 0, `PeerId` at 4 ([`ALL_PEERS`] for the module), then 33 `u64`
        /// counters from offset 8, in the order below (the receive path's block from offset 184, the send
        /// path's from 224).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct RdcoStats {
            /// The peer, or [`ALL_PEERS`] for the module.
            pub peer_id: u32,
            $($(#[$m])* pub $field: u64,)*
        }

        /// Byte offsets of [`RdcoStats`].
        #[allow(missing_docs)]
        pub mod stats {
            pub const SIZE: usize = 0;
            pub const PEER_ID: usize = 4;
            $(pub const $konst: usize = $off;)*
        }

        impl RdcoStats {
            /// Encoded size of this version.
            pub const SIZE: usize = 272;

            /// Parses the structure; see [`crate::Wire::parse`].
            pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
                check_header(buf, Self::SIZE)?;
                Ok(Self { peer_id: u32_at(buf, stats::PEER_ID), $($field: u64_at(buf, stats::$konst),)* })
            }

            /// Writes the structure; see [`crate::Wire::write_to`].
            pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
                header_out(out, Self::SIZE)?;
                put_u32(out, stats::PEER_ID, self.peer_id);
                $(put_u64(out, stats::$konst, self.$field);)*
                Ok(Self::SIZE)
            }
        }
    };
}

counters! {
    /// Data packets sealed and sent to the peer.
    tx_packets, TX_PACKETS = 8;
    /// Plaintext bytes of those packets.
    tx_bytes, TX_BYTES = 16;
    /// Data packets received from the peer and opened.
    rx_packets, RX_PACKETS = 24;
    /// Plaintext bytes of those packets.
    rx_bytes, RX_BYTES = 32;
    /// Send NBLs diverted into the tunnel.
    diverted, DIVERTED = 40;
    /// Send NBLs passed down unchanged.
    bypassed, BYPASSED = 48;
    /// Control packets handed to user mode.
    control_in, CONTROL_IN = 56;
    /// Control packets sent for user mode.
    control_out, CONTROL_OUT = 64;
    /// Dropped: no key for the packet.
    drop_no_key, DROP_NO_KEY = 72;
    /// Dropped: replayed or too old packet id.
    drop_replay, DROP_REPLAY = 80;
    /// Dropped: authentication tag mismatch.
    drop_auth, DROP_AUTH = 88;
    /// Dropped: malformed packet.
    drop_malformed, DROP_MALFORMED = 96;
    /// Dropped: worker queue full.
    drop_queue_full, DROP_QUEUE_FULL = 104;
    /// Dropped: deep-copy memory ceiling reached.
    drop_copy_ceiling, DROP_COPY_CEILING = 112;
    /// Dropped: any other reason.
    drop_other, DROP_OTHER = 120;
    /// Plaintext copies (0 on the fast paths).
    plaintext_copies, PLAINTEXT_COPIES = 128;
    /// Deep copies made by the hold policy or for RESOURCES receives.
    deep_copies, DEEP_COPIES = 136;
    /// Receive clones indicated.
    clones, CLONES = 144;
    /// NBLs held by the worker.
    holds, HOLDS = 152;
    /// Sum of hold durations, microseconds.
    hold_time_us, HOLD_TIME_US = 160;
    /// Keepalive pings sent.
    keepalives_sent, KEEPALIVES_SENT = 168;
    /// Keepalive pings received.
    keepalives_received, KEEPALIVES_RECEIVED = 176;
    // The receive path's block (added in version 2 of the layout).
    /// Receives passed up unchanged (not the tunnel's).
    rx_bypassed, RX_BYPASSED = 184;
    /// Tunnel datagrams copied once into the filter's own NBL (RESOURCES receives, payloads spread over
    /// MDLs, datagrams from the WSK socket).
    rx_copies, RX_COPIES = 192;
    /// Dropped on receive: no copy slot or clone NBL could be had.
    rx_drop_no_buffer, RX_DROP_NO_BUFFER = 200;
    /// Dropped on receive: the datagram named no configured peer.
    rx_drop_unknown_peer, RX_DROP_UNKNOWN_PEER = 208;
    /// Peer floats (authenticated packets from a new address).
    rx_floats, RX_FLOATS = 216;
    // The send path's block.
    /// Deep copies by hold trigger: the hold budget ran out (queue length or time in the queue).
    holds_budget, HOLDS_BUDGET = 224;
    /// Deep copies by hold trigger: the transport was not ready (no key, no socket, WSK backpressure).
    holds_not_ready, HOLDS_NOT_READY = 232;
    /// Deep copies by hold trigger: the module was pausing, detaching or leaving D0.
    holds_pause, HOLDS_PAUSE = 240;
    /// Queued sends completed with `NDIS_STATUS_SEND_ABORTED` by a cancel.
    send_aborted, SEND_ABORTED = 248;
    /// Diverted packets built in a scratch buffer to carry out an offload request (checksum, LSO/USO).
    offload_copies, OFFLOAD_COPIES = 256;
    /// LSOv2/USO super-packets segmented in software.
    segmented, SEGMENTED = 264;
}

/// What an [`RdcoEvent`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RdcoEventKind {
    /// Nothing heard from the peer within its keepalive timeout.
    KeepaliveTimeout = 1,
    /// The send packet id nears exhaustion (or a key's usage limit): renegotiate.
    RekeyNeeded = 2,
    /// The peer's authenticated packets now come from a new address (in `Address`).
    Float = 3,
}

impl RdcoEventKind {
    /// The kind with this number.
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::KeepaliveTimeout),
            2 => Some(Self::RekeyNeeded),
            3 => Some(Self::Float),
            _ => None,
        }
    }
}

/// `RDCO_EVENT` (44 bytes): `Size` at 0, `Kind` at 4, `PeerId` at 8, reserved u32 at 12, `Address` (28-byte
/// sockaddr slot, all zero unless `Kind` is float) at 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdcoEvent {
    /// What happened.
    pub kind: RdcoEventKind,
    /// To which peer.
    pub peer_id: u32,
    /// The new address for [`RdcoEventKind::Float`].
    pub address: Option<SocketAddr>,
}

/// Byte offsets of [`RdcoEvent`].
#[allow(missing_docs)]
pub mod event {
    pub const SIZE: usize = 0;
    pub const KIND: usize = 4;
    pub const PEER_ID: usize = 8;
    pub const ADDRESS: usize = 16;
}

impl RdcoEvent {
    /// Encoded size of this version.
    pub const SIZE: usize = 44;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_header(buf, Self::SIZE)?;
        let kind = u32_at(buf, event::KIND);
        Ok(Self {
            kind: RdcoEventKind::from_u32(kind).ok_or(UapiError::bad("Kind", kind))?,
            peer_id: peer_id(u32_at(buf, event::PEER_ID))?,
            address: sockaddr::parse_optional(
                buf.get(event::ADDRESS..event::ADDRESS + SOCKADDR_INET_SIZE).unwrap_or(&[]),
                "Address",
            )?,
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        header_out(out, Self::SIZE)?;
        put_u32(out, event::KIND, self.kind as u32);
        put_u32(out, event::PEER_ID, self.peer_id);
        if let (Some(a), Some(dst)) = (&self.address, out.get_mut(event::ADDRESS..Self::SIZE)) {
            sockaddr::write(a, dst)?;
        }
        Ok(Self::SIZE)
    }
}

impl_wire!(
    RdcoSetPolicy,
    RdcoAddPeer,
    RdcoPeerRef,
    RdcoNewKey,
    RdcoKeepalive,
    RdcoStats,
    RdcoEvent,
    RdcoHoldPolicy,
    RdcoPeerRoutes,
    RdcoStatsQuery,
    RdcoModuleList
);
