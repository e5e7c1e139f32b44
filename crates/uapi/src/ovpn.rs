//! The ovpn-dco-win user API: IOCTL codes, request and response layouts, enums, flags and versions.
//!
//! # Source
//!
//! Transcribed (not copied) from the newest public form of `uapi/ovpn-dco.h`:
//!
//! * `OpenVPN/ovpn-dco-win`, path `uapi/ovpn-dco.h`. The newest commit of the file in any public snapshot
//!   available to us is `c3c6b1b0d98403d22fa6e3176078e6e96b45fd80` (2024-10-09, "Implement
//!   `OVPN_IOCTL_MP_NEW_PEER`", reachable from `refs/pull/79/head` = `0dc463cfb0cd219ab0afc9c237861649dc956ef6`);
//!   it stops at IOCTL 12. The search index holds `46907991cd3da0d50df8b7d5079131929fdca9e8` (2024-09-05,
//!   "Add `OVPN_IOCTL_SET_MODE`", IOCTLs 1..=10). The driver's own `Driver.cpp`, `control.cpp` and
//!   `PropertySheet.props` at `0dc463cf…` give the device names and version numbers used in [`crate::names`].
//! * The header is vendored verbatim by OpenVPN 2.x as `OpenVPN/openvpn` `src/openvpn/ovpn_dco_win.h`; its
//!   newest commit `f94a3ad2bafedf38076989a28846728536a02b8e` (2026-01-08; content last changed by
//!   `ebc9d4bc27064d1287a523efda75e16654ba7bea`, 2025-10-08, "dco-win: support for epoch data channel") is
//!   the newest public text of the header and the one this module follows: IOCTLs 1..=19, `OVPN_PEER_STATS`,
//!   `OVPN_NOTIFY_EVENT.FloatAddress`, `OVPN_CMD_FLOAT_PEER`, and `CRYPTO_OPTIONS_EPOCH (1<<1)`.
//!
//! Note the flag history: in ovpn-dco-win of 2024 (`46907991…`) bit 1 was `CRYPTO_OPTIONS_AEAD_TAG_END` and
//! bit 2 `CRYPTO_OPTIONS_64BIT_PKTID`; the current header has only `CRYPTO_OPTIONS_EPOCH` = bit 1. This crate
//! defines the current meaning.
//!
//! # Layout rules
//!
//! C `enum` and `int`/`LONG` are 4-byte little-endian; `LONG64` is 8-byte, 8-aligned (so `OVPN_PEER_STATS`
//! has 4 bytes of padding after `PeerId`); `OVPN_KEY_DIRECTION` is byte-aligned (41 bytes). Padding is
//! ignored by `parse` and written as zero by `write_to`.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::ioctl::buffered;
use crate::sockaddr::{self, SOCKADDR_INET_SIZE, SOCKADDR_STORAGE_SIZE};
use crate::wire::{
    bytes, check_in, i32_at, i64_at, impl_wire, prep_out, put, put_i32, put_i64, put_u32, put_u8, u32_at,
    u8_at,
};
use crate::UapiError;

// ---------------------------------------------------------------------------------------------------------
// IOCTL codes
// ---------------------------------------------------------------------------------------------------------

/// `OVPN_IOCTL_NEW_PEER` — in: [`OvpnNewPeer`].
pub const OVPN_IOCTL_NEW_PEER: u32 = buffered(1);
/// `OVPN_IOCTL_GET_STATS` — out: [`OvpnStats`].
pub const OVPN_IOCTL_GET_STATS: u32 = buffered(2);
/// `OVPN_IOCTL_NEW_KEY` — in: [`OvpnCryptoData`].
pub const OVPN_IOCTL_NEW_KEY: u32 = buffered(3);
/// `OVPN_IOCTL_SWAP_KEYS` — no buffers.
pub const OVPN_IOCTL_SWAP_KEYS: u32 = buffered(4);
/// `OVPN_IOCTL_SET_PEER` — in: [`OvpnSetPeer`].
pub const OVPN_IOCTL_SET_PEER: u32 = buffered(5);
/// `OVPN_IOCTL_START_VPN` — no buffers.
pub const OVPN_IOCTL_START_VPN: u32 = buffered(6);
/// `OVPN_IOCTL_DEL_PEER` — no buffers.
pub const OVPN_IOCTL_DEL_PEER: u32 = buffered(7);
/// `OVPN_IOCTL_GET_VERSION` — out: [`OvpnVersion`].
pub const OVPN_IOCTL_GET_VERSION: u32 = buffered(8);
/// `OVPN_IOCTL_NEW_KEY_V2` — in: [`OvpnCryptoDataV2`].
pub const OVPN_IOCTL_NEW_KEY_V2: u32 = buffered(9);
/// `OVPN_IOCTL_SET_MODE` — in: [`OvpnSetMode`].
pub const OVPN_IOCTL_SET_MODE: u32 = buffered(10);
/// `OVPN_IOCTL_MP_START_VPN` — in and out: [`OvpnMpStartVpn`] (out carries the bound listen address).
pub const OVPN_IOCTL_MP_START_VPN: u32 = buffered(11);
/// `OVPN_IOCTL_MP_NEW_PEER` — in: [`OvpnMpNewPeer`].
pub const OVPN_IOCTL_MP_NEW_PEER: u32 = buffered(12);
/// `OVPN_IOCTL_MP_SET_PEER` — in: [`OvpnMpSetPeer`].
pub const OVPN_IOCTL_MP_SET_PEER: u32 = buffered(13);
/// `OVPN_IOCTL_NOTIFY_EVENT` — out: [`OvpnNotifyEvent`] (pends until an event exists).
pub const OVPN_IOCTL_NOTIFY_EVENT: u32 = buffered(14);
/// `OVPN_IOCTL_MP_DEL_PEER` — in: [`OvpnMpDelPeer`].
pub const OVPN_IOCTL_MP_DEL_PEER: u32 = buffered(15);
/// `OVPN_IOCTL_MP_SWAP_KEYS` — in: [`OvpnMpSwapKeys`].
pub const OVPN_IOCTL_MP_SWAP_KEYS: u32 = buffered(16);
/// `OVPN_IOCTL_MP_ADD_IROUTE` — in: [`OvpnMpIroute`].
pub const OVPN_IOCTL_MP_ADD_IROUTE: u32 = buffered(17);
/// `OVPN_IOCTL_MP_DEL_IROUTE` — in: [`OvpnMpIroute`].
pub const OVPN_IOCTL_MP_DEL_IROUTE: u32 = buffered(18);
/// `OVPN_IOCTL_GET_PEER_STATS` — in: [`OvpnGetPeerStats`]; out: one [`OvpnPeerStats`], or with
/// [`OvpnGetPeerStats::ALL_PEERS`] an array of them. OpenVPN first asks with a 4-byte output buffer and
/// expects `ERROR_MORE_DATA` (`STATUS_BUFFER_OVERFLOW`) with the required size as a `DWORD` in it
/// (`OpenVPN/openvpn` `src/openvpn/dco_win.c`, `dco_get_peer_stats_multi`).
pub const OVPN_IOCTL_GET_PEER_STATS: u32 = buffered(19);

/// Every ovpn-dco-win IOCTL, for dispatch by code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum OvpnIoctl {
    /// `OVPN_IOCTL_NEW_PEER`
    NewPeer = OVPN_IOCTL_NEW_PEER,
    /// `OVPN_IOCTL_GET_STATS`
    GetStats = OVPN_IOCTL_GET_STATS,
    /// `OVPN_IOCTL_NEW_KEY`
    NewKey = OVPN_IOCTL_NEW_KEY,
    /// `OVPN_IOCTL_SWAP_KEYS`
    SwapKeys = OVPN_IOCTL_SWAP_KEYS,
    /// `OVPN_IOCTL_SET_PEER`
    SetPeer = OVPN_IOCTL_SET_PEER,
    /// `OVPN_IOCTL_START_VPN`
    StartVpn = OVPN_IOCTL_START_VPN,
    /// `OVPN_IOCTL_DEL_PEER`
    DelPeer = OVPN_IOCTL_DEL_PEER,
    /// `OVPN_IOCTL_GET_VERSION`
    GetVersion = OVPN_IOCTL_GET_VERSION,
    /// `OVPN_IOCTL_NEW_KEY_V2`
    NewKeyV2 = OVPN_IOCTL_NEW_KEY_V2,
    /// `OVPN_IOCTL_SET_MODE`
    SetMode = OVPN_IOCTL_SET_MODE,
    /// `OVPN_IOCTL_MP_START_VPN`
    MpStartVpn = OVPN_IOCTL_MP_START_VPN,
    /// `OVPN_IOCTL_MP_NEW_PEER`
    MpNewPeer = OVPN_IOCTL_MP_NEW_PEER,
    /// `OVPN_IOCTL_MP_SET_PEER`
    MpSetPeer = OVPN_IOCTL_MP_SET_PEER,
    /// `OVPN_IOCTL_NOTIFY_EVENT`
    NotifyEvent = OVPN_IOCTL_NOTIFY_EVENT,
    /// `OVPN_IOCTL_MP_DEL_PEER`
    MpDelPeer = OVPN_IOCTL_MP_DEL_PEER,
    /// `OVPN_IOCTL_MP_SWAP_KEYS`
    MpSwapKeys = OVPN_IOCTL_MP_SWAP_KEYS,
    /// `OVPN_IOCTL_MP_ADD_IROUTE`
    MpAddIroute = OVPN_IOCTL_MP_ADD_IROUTE,
    /// `OVPN_IOCTL_MP_DEL_IROUTE`
    MpDelIroute = OVPN_IOCTL_MP_DEL_IROUTE,
    /// `OVPN_IOCTL_GET_PEER_STATS`
    GetPeerStats = OVPN_IOCTL_GET_PEER_STATS,
}

impl OvpnIoctl {
    /// All IOCTLs in function-number order (1..=19).
    pub const ALL: [Self; 19] = [
        Self::NewPeer,
        Self::GetStats,
        Self::NewKey,
        Self::SwapKeys,
        Self::SetPeer,
        Self::StartVpn,
        Self::DelPeer,
        Self::GetVersion,
        Self::NewKeyV2,
        Self::SetMode,
        Self::MpStartVpn,
        Self::MpNewPeer,
        Self::MpSetPeer,
        Self::NotifyEvent,
        Self::MpDelPeer,
        Self::MpSwapKeys,
        Self::MpAddIroute,
        Self::MpDelIroute,
        Self::GetPeerStats,
    ];

    /// The IOCTL with this code, if it is one of ovpn-dco-win's.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|i| i.code() == code)
    }

    /// The IOCTL code.
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The name as the header spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NewPeer => "OVPN_IOCTL_NEW_PEER",
            Self::GetStats => "OVPN_IOCTL_GET_STATS",
            Self::NewKey => "OVPN_IOCTL_NEW_KEY",
            Self::SwapKeys => "OVPN_IOCTL_SWAP_KEYS",
            Self::SetPeer => "OVPN_IOCTL_SET_PEER",
            Self::StartVpn => "OVPN_IOCTL_START_VPN",
            Self::DelPeer => "OVPN_IOCTL_DEL_PEER",
            Self::GetVersion => "OVPN_IOCTL_GET_VERSION",
            Self::NewKeyV2 => "OVPN_IOCTL_NEW_KEY_V2",
            Self::SetMode => "OVPN_IOCTL_SET_MODE",
            Self::MpStartVpn => "OVPN_IOCTL_MP_START_VPN",
            Self::MpNewPeer => "OVPN_IOCTL_MP_NEW_PEER",
            Self::MpSetPeer => "OVPN_IOCTL_MP_SET_PEER",
            Self::NotifyEvent => "OVPN_IOCTL_NOTIFY_EVENT",
            Self::MpDelPeer => "OVPN_IOCTL_MP_DEL_PEER",
            Self::MpSwapKeys => "OVPN_IOCTL_MP_SWAP_KEYS",
            Self::MpAddIroute => "OVPN_IOCTL_MP_ADD_IROUTE",
            Self::MpDelIroute => "OVPN_IOCTL_MP_DEL_IROUTE",
            Self::GetPeerStats => "OVPN_IOCTL_GET_PEER_STATS",
        }
    }

    /// The minimum input buffer length the IOCTL requires (0: none is read).
    pub const fn input_len(self) -> usize {
        match self {
            Self::NewPeer => OvpnNewPeer::SIZE,
            Self::NewKey => OvpnCryptoData::SIZE,
            Self::SetPeer => OvpnSetPeer::SIZE,
            Self::NewKeyV2 => OvpnCryptoDataV2::SIZE,
            Self::SetMode => OvpnSetMode::SIZE,
            Self::MpStartVpn => OvpnMpStartVpn::SIZE,
            Self::MpNewPeer => OvpnMpNewPeer::SIZE,
            Self::MpSetPeer => OvpnMpSetPeer::SIZE,
            Self::MpDelPeer => OvpnMpDelPeer::SIZE,
            Self::MpSwapKeys => OvpnMpSwapKeys::SIZE,
            Self::MpAddIroute | Self::MpDelIroute => OvpnMpIroute::SIZE,
            Self::GetPeerStats => OvpnGetPeerStats::SIZE,
            Self::GetStats
            | Self::SwapKeys
            | Self::StartVpn
            | Self::DelPeer
            | Self::GetVersion
            | Self::NotifyEvent => 0,
        }
    }

    /// The output buffer length the IOCTL fills (0: none is written). `GET_PEER_STATS` gives one entry's
    /// size; for all peers the output is an array.
    pub const fn output_len(self) -> usize {
        match self {
            Self::GetStats => OvpnStats::SIZE,
            Self::GetVersion => OvpnVersion::SIZE,
            Self::MpStartVpn => OvpnMpStartVpn::SIZE,
            Self::NotifyEvent => OvpnNotifyEvent::SIZE,
            Self::GetPeerStats => OvpnPeerStats::SIZE,
            _ => 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Enums and flags
// ---------------------------------------------------------------------------------------------------------

macro_rules! c_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($(#[$vm:meta])* $v:ident = $n:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name {
            $($(#[$vm])* $v = $n,)*
        }
        impl $name {
            /// The value with this C enum number.
            pub const fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $($n => Some(Self::$v),)*
                    _ => None,
                }
            }
            /// Like [`Self::from_u32`], failing with the header's field name.
            pub fn parse_field(v: u32) -> Result<Self, UapiError> {
                Self::from_u32(v).ok_or(UapiError::bad($field, v))
            }
            /// The C enum number.
            pub const fn as_u32(self) -> u32 {
                self as u32
            }
        }
    };
}

c_enum!(
    /// `OVPN_PROTO`
    OvpnProto, "Proto" {
        /// `OVPN_PROTO_UDP`
        Udp = 0,
        /// `OVPN_PROTO_TCP`
        Tcp = 1,
    }
);
c_enum!(
    /// `OVPN_KEY_SLOT`
    OvpnKeySlot, "KeySlot" {
        /// `OVPN_KEY_SLOT_PRIMARY`
        Primary = 0,
        /// `OVPN_KEY_SLOT_SECONDARY`
        Secondary = 1,
    }
);
c_enum!(
    /// `OVPN_CIPHER_ALG`
    OvpnCipherAlg, "CipherAlg" {
        /// `OVPN_CIPHER_ALG_NONE`
        None = 0,
        /// `OVPN_CIPHER_ALG_AES_GCM` (key length 16, 24 or 32 selects AES-128/192/256-GCM)
        AesGcm = 1,
        /// `OVPN_CIPHER_ALG_CHACHA20_POLY1305`
        ChaCha20Poly1305 = 2,
    }
);
c_enum!(
    /// `OVPN_MODE`
    OvpnMode, "Mode" {
        /// `OVPN_MODE_P2P` (client, one peer)
        P2p = 0,
        /// `OVPN_MODE_MP` (server, many peers)
        Mp = 1,
    }
);
c_enum!(
    /// `OVPN_NOTIFY_CMD`
    OvpnNotifyCmd, "Cmd" {
        /// `OVPN_CMD_DEL_PEER`
        DelPeer = 0,
        /// `OVPN_CMD_SWAP_KEYS`
        SwapKeys = 1,
        /// `OVPN_CMD_FLOAT_PEER`
        FloatPeer = 2,
    }
);
c_enum!(
    /// `OVPN_DEL_PEER_REASON`
    OvpnDelPeerReason, "DelPeerReason" {
        /// `OVPN_DEL_PEER_REASON_TEARDOWN`
        Teardown = 0,
        /// `OVPN_DEL_PEER_REASON_USERSPACE`
        Userspace = 1,
        /// `OVPN_DEL_PEER_REASON_EXPIRED`
        Expired = 2,
        /// `OVPN_DEL_PEER_REASON_TRANSPORT_ERROR`
        TransportError = 3,
        /// `OVPN_DEL_PEER_REASON_TRANSPORT_DISCONNECT`
        TransportDisconnect = 4,
    }
);

/// `CRYPTO_OPTIONS_EPOCH` — `OVPN_CRYPTO_DATA_V2.CryptoOptions`: the keys are epoch key material (32 bytes in
/// `Key`) and the driver derives and rotates the data keys itself.
pub const CRYPTO_OPTIONS_EPOCH: u32 = 1 << 1;
/// Every `CryptoOptions` bit the current header defines.
pub const CRYPTO_OPTIONS_KNOWN: u32 = CRYPTO_OPTIONS_EPOCH;

// ---------------------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------------------

/// OpenVPN uses multipeer (server) mode only with a driver whose `Major >= 2`
/// (`dco_win_supports_multipeer` in `OpenVPN/openvpn` `src/openvpn/dco_win.c`).
pub const VERSION_MIN_MULTIPEER: OvpnVersion = OvpnVersion { major: 2, minor: 0, patch: 0 };
/// OpenVPN negotiates epoch data keys only with a driver of 2.8 or newer (`dco_supports_epoch_data`, same
/// file).
pub const VERSION_MIN_EPOCH: OvpnVersion = OvpnVersion { major: 2, minor: 8, patch: 0 };
/// The version rdco's miniport reports through `OVPN_IOCTL_GET_VERSION`: multipeer mode and per-peer
/// statistics, but below [`VERSION_MIN_EPOCH`], because the engine has no epoch data keys, so OpenVPN will
/// not ask for them.
pub const RDCO_REPORTED_VERSION: OvpnVersion = OvpnVersion { major: 2, minor: 7, patch: 0 };

// ---------------------------------------------------------------------------------------------------------
// Structures
// ---------------------------------------------------------------------------------------------------------

/// `OVPN_NEW_PEER` (60 bytes): the peer of point-to-point mode and its transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvpnNewPeer {
    /// `Local` — the local address to bind (family always set; address may be unspecified).
    pub local: SocketAddr,
    /// `Remote` — the peer's address.
    pub remote: SocketAddr,
    /// `Proto`
    pub proto: OvpnProto,
}

/// Byte offsets of [`OvpnNewPeer`].
pub mod new_peer {
    /// `Local` (`SOCKADDR_IN` / `SOCKADDR_IN6` union, 28 bytes)
    pub const LOCAL: usize = 0;
    /// `Remote` (union, 28 bytes)
    pub const REMOTE: usize = 28;
    /// `Proto` (enum, 4 bytes)
    pub const PROTO: usize = 56;
}

impl OvpnNewPeer {
    /// `sizeof(OVPN_NEW_PEER)`
    pub const SIZE: usize = 60;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        use new_peer as f;
        check_in(buf, Self::SIZE)?;
        Ok(Self {
            local: sockaddr::parse(inet(buf, f::LOCAL), "Local")?,
            remote: sockaddr::parse(inet(buf, f::REMOTE), "Remote")?,
            proto: OvpnProto::parse_field(u32_at(buf, f::PROTO))?,
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        use new_peer as f;
        prep_out(out, Self::SIZE)?;
        write_inet(&self.local, out, f::LOCAL)?;
        write_inet(&self.remote, out, f::REMOTE)?;
        put_u32(out, f::PROTO, self.proto.as_u32());
        Ok(Self::SIZE)
    }
}

/// `OVPN_MP_NEW_PEER` (80 bytes): a peer of multipeer mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvpnMpNewPeer {
    /// `Local`
    pub local: SocketAddr,
    /// `Remote`
    pub remote: SocketAddr,
    /// `VpnAddr4` — the peer's tunnel IPv4 address (`0.0.0.0` if none).
    pub vpn_addr4: Ipv4Addr,
    /// `VpnAddr6` — the peer's tunnel IPv6 address (`::` if none).
    pub vpn_addr6: Ipv6Addr,
    /// `PeerId`
    pub peer_id: i32,
}

/// Byte offsets of [`OvpnMpNewPeer`].
pub mod mp_new_peer {
    /// `Local` (union, 28 bytes)
    pub const LOCAL: usize = 0;
    /// `Remote` (union, 28 bytes)
    pub const REMOTE: usize = 28;
    /// `VpnAddr4` (`IN_ADDR`)
    pub const VPN_ADDR4: usize = 56;
    /// `VpnAddr6` (`IN6_ADDR`)
    pub const VPN_ADDR6: usize = 60;
    /// `PeerId`
    pub const PEER_ID: usize = 76;
}

impl OvpnMpNewPeer {
    /// `sizeof(OVPN_MP_NEW_PEER)`
    pub const SIZE: usize = 80;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        use mp_new_peer as f;
        check_in(buf, Self::SIZE)?;
        Ok(Self {
            local: sockaddr::parse(inet(buf, f::LOCAL), "Local")?,
            remote: sockaddr::parse(inet(buf, f::REMOTE), "Remote")?,
            vpn_addr4: Ipv4Addr::from(bytes::<4>(buf, f::VPN_ADDR4)),
            vpn_addr6: Ipv6Addr::from(bytes::<16>(buf, f::VPN_ADDR6)),
            peer_id: i32_at(buf, f::PEER_ID),
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        use mp_new_peer as f;
        prep_out(out, Self::SIZE)?;
        write_inet(&self.local, out, f::LOCAL)?;
        write_inet(&self.remote, out, f::REMOTE)?;
        put(out, f::VPN_ADDR4, &self.vpn_addr4.octets());
        put(out, f::VPN_ADDR6, &self.vpn_addr6.octets());
        put_i32(out, f::PEER_ID, self.peer_id);
        Ok(Self::SIZE)
    }
}

/// `OVPN_STATS` (64 bytes): the device's global counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct OvpnStats {
    pub lost_in_control_packets: i32,
    pub lost_out_control_packets: i32,
    pub lost_in_data_packets: i32,
    pub lost_out_data_packets: i32,
    pub received_data_packets: i32,
    pub received_control_packets: i32,
    pub sent_control_packets: i32,
    pub sent_data_packets: i32,
    pub transport_bytes_sent: i64,
    pub transport_bytes_received: i64,
    pub tun_bytes_sent: i64,
    pub tun_bytes_received: i64,
}

/// Byte offsets of [`OvpnStats`].
#[allow(missing_docs)]
pub mod stats {
    pub const LOST_IN_CONTROL_PACKETS: usize = 0;
    pub const LOST_OUT_CONTROL_PACKETS: usize = 4;
    pub const LOST_IN_DATA_PACKETS: usize = 8;
    pub const LOST_OUT_DATA_PACKETS: usize = 12;
    pub const RECEIVED_DATA_PACKETS: usize = 16;
    pub const RECEIVED_CONTROL_PACKETS: usize = 20;
    pub const SENT_CONTROL_PACKETS: usize = 24;
    pub const SENT_DATA_PACKETS: usize = 28;
    pub const TRANSPORT_BYTES_SENT: usize = 32;
    pub const TRANSPORT_BYTES_RECEIVED: usize = 40;
    pub const TUN_BYTES_SENT: usize = 48;
    pub const TUN_BYTES_RECEIVED: usize = 56;
}

impl OvpnStats {
    /// `sizeof(OVPN_STATS)`
    pub const SIZE: usize = 64;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        use stats as f;
        check_in(buf, Self::SIZE)?;
        Ok(Self {
            lost_in_control_packets: i32_at(buf, f::LOST_IN_CONTROL_PACKETS),
            lost_out_control_packets: i32_at(buf, f::LOST_OUT_CONTROL_PACKETS),
            lost_in_data_packets: i32_at(buf, f::LOST_IN_DATA_PACKETS),
            lost_out_data_packets: i32_at(buf, f::LOST_OUT_DATA_PACKETS),
            received_data_packets: i32_at(buf, f::RECEIVED_DATA_PACKETS),
            received_control_packets: i32_at(buf, f::RECEIVED_CONTROL_PACKETS),
            sent_control_packets: i32_at(buf, f::SENT_CONTROL_PACKETS),
            sent_data_packets: i32_at(buf, f::SENT_DATA_PACKETS),
            transport_bytes_sent: i64_at(buf, f::TRANSPORT_BYTES_SENT),
            transport_bytes_received: i64_at(buf, f::TRANSPORT_BYTES_RECEIVED),
            tun_bytes_sent: i64_at(buf, f::TUN_BYTES_SENT),
            tun_bytes_received: i64_at(buf, f::TUN_BYTES_RECEIVED),
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        use stats as f;
        prep_out(out, Self::SIZE)?;
        put_i32(out, f::LOST_IN_CONTROL_PACKETS, self.lost_in_control_packets);
        put_i32(out, f::LOST_OUT_CONTROL_PACKETS, self.lost_out_control_packets);
        put_i32(out, f::LOST_IN_DATA_PACKETS, self.lost_in_data_packets);
        put_i32(out, f::LOST_OUT_DATA_PACKETS, self.lost_out_data_packets);
        put_i32(out, f::RECEIVED_DATA_PACKETS, self.received_data_packets);
        put_i32(out, f::RECEIVED_CONTROL_PACKETS, self.received_control_packets);
        put_i32(out, f::SENT_CONTROL_PACKETS, self.sent_control_packets);
        put_i32(out, f::SENT_DATA_PACKETS, self.sent_data_packets);
        put_i64(out, f::TRANSPORT_BYTES_SENT, self.transport_bytes_sent);
        put_i64(out, f::TRANSPORT_BYTES_RECEIVED, self.transport_bytes_received);
        put_i64(out, f::TUN_BYTES_SENT, self.tun_bytes_sent);
        put_i64(out, f::TUN_BYTES_RECEIVED, self.tun_bytes_received);
        Ok(Self::SIZE)
    }
}

/// `OVPN_PEER_STATS` (40 bytes; 4 bytes of padding after `PeerId`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct OvpnPeerStats {
    pub peer_id: i32,
    pub link_rx_bytes: i64,
    pub link_tx_bytes: i64,
    pub vpn_rx_bytes: i64,
    pub vpn_tx_bytes: i64,
}

/// Byte offsets of [`OvpnPeerStats`].
#[allow(missing_docs)]
pub mod peer_stats {
    pub const PEER_ID: usize = 0;
    pub const LINK_RX_BYTES: usize = 8;
    pub const LINK_TX_BYTES: usize = 16;
    pub const VPN_RX_BYTES: usize = 24;
    pub const VPN_TX_BYTES: usize = 32;
}

impl OvpnPeerStats {
    /// `sizeof(OVPN_PEER_STATS)`
    pub const SIZE: usize = 40;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        use peer_stats as f;
        check_in(buf, Self::SIZE)?;
        Ok(Self {
            peer_id: i32_at(buf, f::PEER_ID),
            link_rx_bytes: i64_at(buf, f::LINK_RX_BYTES),
            link_tx_bytes: i64_at(buf, f::LINK_TX_BYTES),
            vpn_rx_bytes: i64_at(buf, f::VPN_RX_BYTES),
            vpn_tx_bytes: i64_at(buf, f::VPN_TX_BYTES),
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        use peer_stats as f;
        prep_out(out, Self::SIZE)?;
        put_i32(out, f::PEER_ID, self.peer_id);
        put_i64(out, f::LINK_RX_BYTES, self.link_rx_bytes);
        put_i64(out, f::LINK_TX_BYTES, self.link_tx_bytes);
        put_i64(out, f::VPN_RX_BYTES, self.vpn_rx_bytes);
        put_i64(out, f::VPN_TX_BYTES, self.vpn_tx_bytes);
        Ok(Self::SIZE)
    }
}

/// `OVPN_KEY_DIRECTION` (41 bytes, byte-aligned): one direction's key.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct OvpnKeyDirection {
    /// `Key[32]` — the first `key_len` bytes are the key (with epoch keys, all 32 are key material).
    pub key: [u8; 32],
    /// `KeyLen` — 16/24/32 for AES-GCM, 32 for ChaCha20-Poly1305.
    pub key_len: u8,
    /// `NonceTail[8]` — the implicit IV tail.
    pub nonce_tail: [u8; 8],
}

impl core::fmt::Debug for OvpnKeyDirection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Key material stays out of logs.
        f.debug_struct("OvpnKeyDirection").field("key_len", &self.key_len).finish_non_exhaustive()
    }
}

/// Byte offsets inside an [`OvpnKeyDirection`].
pub mod key_direction {
    /// `Key[32]`
    pub const KEY: usize = 0;
    /// `KeyLen`
    pub const KEY_LEN: usize = 32;
    /// `NonceTail[8]`
    pub const NONCE_TAIL: usize = 33;
}

impl OvpnKeyDirection {
    /// `sizeof(OVPN_KEY_DIRECTION)`
    pub const SIZE: usize = 41;

    fn read(buf: &[u8], off: usize) -> Self {
        use key_direction as f;
        Self {
            key: bytes(buf, off + f::KEY),
            key_len: u8_at(buf, off + f::KEY_LEN),
            nonce_tail: bytes(buf, off + f::NONCE_TAIL),
        }
    }

    fn put(&self, out: &mut [u8], off: usize) {
        use key_direction as f;
        put(out, off + f::KEY, &self.key);
        put_u8(out, off + f::KEY_LEN, self.key_len);
        put(out, off + f::NONCE_TAIL, &self.nonce_tail);
    }

    /// The key bytes (`key[..key_len]`), or `None` if `key_len` is over 32.
    pub fn key_bytes(&self) -> Option<&[u8]> {
        self.key.get(..usize::from(self.key_len))
    }

    fn check(&self, alg: OvpnCipherAlg, field: &'static str) -> Result<(), UapiError> {
        let ok = match alg {
            OvpnCipherAlg::None => usize::from(self.key_len) <= 32,
            OvpnCipherAlg::AesGcm => matches!(self.key_len, 16 | 24 | 32),
            OvpnCipherAlg::ChaCha20Poly1305 => self.key_len == 32,
        };
        if ok {
            Ok(())
        } else {
            Err(UapiError::bad(field, self.key_len))
        }
    }
}

/// `OVPN_CRYPTO_DATA` (100 bytes): a key pair for one key slot.
///
/// `parse` checks more than the layout: `KeySlot` and `CipherAlg` must be defined values, each `KeyLen` must
/// fit the cipher (16/24/32 for AES-GCM, 32 for ChaCha20-Poly1305, at most 32 for none), and `KeyId` must be
/// an OpenVPN key id (0..=7, three bits on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvpnCryptoData {
    /// `Encrypt`
    pub encrypt: OvpnKeyDirection,
    /// `Decrypt`
    pub decrypt: OvpnKeyDirection,
    /// `KeySlot`
    pub key_slot: OvpnKeySlot,
    /// `CipherAlg`
    pub cipher_alg: OvpnCipherAlg,
    /// `KeyId` (0..=7)
    pub key_id: u8,
    /// `PeerId`
    pub peer_id: i32,
}

/// Byte offsets of [`OvpnCryptoData`] (and of the `V1` part of [`OvpnCryptoDataV2`]).
pub mod crypto_data {
    /// `Encrypt` (41 bytes)
    pub const ENCRYPT: usize = 0;
    /// `Decrypt` (41 bytes)
    pub const DECRYPT: usize = 41;
    /// `KeySlot` (after 2 bytes of padding)
    pub const KEY_SLOT: usize = 84;
    /// `CipherAlg`
    pub const CIPHER_ALG: usize = 88;
    /// `KeyId` (one byte, then 3 bytes of padding)
    pub const KEY_ID: usize = 92;
    /// `PeerId`
    pub const PEER_ID: usize = 96;
    /// `CryptoOptions` — in `OVPN_CRYPTO_DATA_V2` only.
    pub const CRYPTO_OPTIONS: usize = 100;
}

/// The largest OpenVPN key id.
pub const KEY_ID_MAX: u8 = 7;

impl OvpnCryptoData {
    /// `sizeof(OVPN_CRYPTO_DATA)`
    pub const SIZE: usize = 100;

    /// Parses the structure; see [`crate::Wire::parse`] and the checks listed on the type.
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        use crypto_data as f;
        check_in(buf, Self::SIZE)?;
        let key_slot = OvpnKeySlot::parse_field(u32_at(buf, f::KEY_SLOT))?;
        let cipher_alg = OvpnCipherAlg::parse_field(u32_at(buf, f::CIPHER_ALG))?;
        let encrypt = OvpnKeyDirection::read(buf, f::ENCRYPT);
        let decrypt = OvpnKeyDirection::read(buf, f::DECRYPT);
        encrypt.check(cipher_alg, "Encrypt.KeyLen")?;
        decrypt.check(cipher_alg, "Decrypt.KeyLen")?;
        let key_id = u8_at(buf, f::KEY_ID);
        if key_id > KEY_ID_MAX {
            return Err(UapiError::bad("KeyId", key_id));
        }
        Ok(Self { encrypt, decrypt, key_slot, cipher_alg, key_id, peer_id: i32_at(buf, f::PEER_ID) })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        use crypto_data as f;
        prep_out(out, Self::SIZE)?;
        self.encrypt.put(out, f::ENCRYPT);
        self.decrypt.put(out, f::DECRYPT);
        put_u32(out, f::KEY_SLOT, self.key_slot.as_u32());
        put_u32(out, f::CIPHER_ALG, self.cipher_alg.as_u32());
        put_u8(out, f::KEY_ID, self.key_id);
        put_i32(out, f::PEER_ID, self.peer_id);
        Ok(Self::SIZE)
    }
}

/// `OVPN_CRYPTO_DATA_V2` (104 bytes): `OVPN_CRYPTO_DATA` plus `CryptoOptions`.
///
/// `parse` rejects option bits the header does not define.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvpnCryptoDataV2 {
    /// `V1`
    pub v1: OvpnCryptoData,
    /// `CryptoOptions` — [`CRYPTO_OPTIONS_EPOCH`] or 0.
    pub crypto_options: u32,
}

impl OvpnCryptoDataV2 {
    /// `sizeof(OVPN_CRYPTO_DATA_V2)`
    pub const SIZE: usize = 104;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_in(buf, Self::SIZE)?;
        let v1 = OvpnCryptoData::parse(buf)?;
        let crypto_options = u32_at(buf, crypto_data::CRYPTO_OPTIONS);
        if crypto_options & !CRYPTO_OPTIONS_KNOWN != 0 {
            return Err(UapiError::bad("CryptoOptions", crypto_options));
        }
        Ok(Self { v1, crypto_options })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        prep_out(out, Self::SIZE)?;
        self.v1.write_to(out)?;
        put_u32(out, crypto_data::CRYPTO_OPTIONS, self.crypto_options);
        Ok(Self::SIZE)
    }

    /// Whether the keys are epoch key material.
    pub const fn epoch(&self) -> bool {
        self.crypto_options & CRYPTO_OPTIONS_EPOCH != 0
    }
}

/// `OVPN_SET_PEER` (12 bytes). ovpn-dco-win treats -1 in a field as "leave unchanged".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvpnSetPeer {
    /// `KeepaliveInterval` (seconds)
    pub keepalive_interval: i32,
    /// `KeepaliveTimeout` (seconds)
    pub keepalive_timeout: i32,
    /// `MSS`
    pub mss: i32,
}

/// Byte offsets of [`OvpnSetPeer`].
#[allow(missing_docs)]
pub mod set_peer {
    pub const KEEPALIVE_INTERVAL: usize = 0;
    pub const KEEPALIVE_TIMEOUT: usize = 4;
    pub const MSS: usize = 8;
}

impl OvpnSetPeer {
    /// `sizeof(OVPN_SET_PEER)`
    pub const SIZE: usize = 12;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        use set_peer as f;
        check_in(buf, Self::SIZE)?;
        Ok(Self {
            keepalive_interval: i32_at(buf, f::KEEPALIVE_INTERVAL),
            keepalive_timeout: i32_at(buf, f::KEEPALIVE_TIMEOUT),
            mss: i32_at(buf, f::MSS),
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        use set_peer as f;
        prep_out(out, Self::SIZE)?;
        put_i32(out, f::KEEPALIVE_INTERVAL, self.keepalive_interval);
        put_i32(out, f::KEEPALIVE_TIMEOUT, self.keepalive_timeout);
        put_i32(out, f::MSS, self.mss);
        Ok(Self::SIZE)
    }
}

/// `OVPN_MP_SET_PEER` (16 bytes): [`OvpnSetPeer`] for one peer of multipeer mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvpnMpSetPeer {
    /// `PeerId`
    pub peer_id: i32,
    /// `KeepaliveInterval`
    pub keepalive_interval: i32,
    /// `KeepaliveTimeout`
    pub keepalive_timeout: i32,
    /// `MSS`
    pub mss: i32,
}

/// Byte offsets of [`OvpnMpSetPeer`].
#[allow(missing_docs)]
pub mod mp_set_peer {
    pub const PEER_ID: usize = 0;
    pub const KEEPALIVE_INTERVAL: usize = 4;
    pub const KEEPALIVE_TIMEOUT: usize = 8;
    pub const MSS: usize = 12;
}

impl OvpnMpSetPeer {
    /// `sizeof(OVPN_MP_SET_PEER)`
    pub const SIZE: usize = 16;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        use mp_set_peer as f;
        check_in(buf, Self::SIZE)?;
        Ok(Self {
            peer_id: i32_at(buf, f::PEER_ID),
            keepalive_interval: i32_at(buf, f::KEEPALIVE_INTERVAL),
            keepalive_timeout: i32_at(buf, f::KEEPALIVE_TIMEOUT),
            mss: i32_at(buf, f::MSS),
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        use mp_set_peer as f;
        prep_out(out, Self::SIZE)?;
        put_i32(out, f::PEER_ID, self.peer_id);
        put_i32(out, f::KEEPALIVE_INTERVAL, self.keepalive_interval);
        put_i32(out, f::KEEPALIVE_TIMEOUT, self.keepalive_timeout);
        put_i32(out, f::MSS, self.mss);
        Ok(Self::SIZE)
    }
}

/// `OVPN_VERSION` (12 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OvpnVersion {
    /// `Major`
    pub major: i32,
    /// `Minor`
    pub minor: i32,
    /// `Patch`
    pub patch: i32,
}

/// Byte offsets of [`OvpnVersion`].
#[allow(missing_docs)]
pub mod version {
    pub const MAJOR: usize = 0;
    pub const MINOR: usize = 4;
    pub const PATCH: usize = 8;
}

impl OvpnVersion {
    /// `sizeof(OVPN_VERSION)`
    pub const SIZE: usize = 12;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_in(buf, Self::SIZE)?;
        Ok(Self {
            major: i32_at(buf, version::MAJOR),
            minor: i32_at(buf, version::MINOR),
            patch: i32_at(buf, version::PATCH),
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        prep_out(out, Self::SIZE)?;
        put_i32(out, version::MAJOR, self.major);
        put_i32(out, version::MINOR, self.minor);
        put_i32(out, version::PATCH, self.patch);
        Ok(Self::SIZE)
    }
}

/// `OVPN_SET_MODE` (4 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvpnSetMode {
    /// `Mode`
    pub mode: OvpnMode,
}

/// Byte offsets of [`OvpnSetMode`].
pub mod set_mode {
    /// `Mode`
    pub const MODE: usize = 0;
}

impl OvpnSetMode {
    /// `sizeof(OVPN_SET_MODE)`
    pub const SIZE: usize = 4;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        check_in(buf, Self::SIZE)?;
        Ok(Self { mode: OvpnMode::parse_field(u32_at(buf, set_mode::MODE))? })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        prep_out(out, Self::SIZE)?;
        put_u32(out, set_mode::MODE, self.mode.as_u32());
        Ok(Self::SIZE)
    }
}

/// `OVPN_MP_START_VPN` (32 bytes): the server's listen socket. The driver writes the structure back with the
/// address it bound (port filled in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvpnMpStartVpn {
    /// `ListenAddress`
    pub listen_address: SocketAddr,
    /// `IPv6Only` (C `int`; any non-zero value is true, written as 1)
    pub ipv6_only: bool,
}

/// Byte offsets of [`OvpnMpStartVpn`].
pub mod mp_start_vpn {
    /// `ListenAddress` (union, 28 bytes)
    pub const LISTEN_ADDRESS: usize = 0;
    /// `IPv6Only`
    pub const IPV6_ONLY: usize = 28;
}

impl OvpnMpStartVpn {
    /// `sizeof(OVPN_MP_START_VPN)`
    pub const SIZE: usize = 32;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        use mp_start_vpn as f;
        check_in(buf, Self::SIZE)?;
        Ok(Self {
            listen_address: sockaddr::parse(inet(buf, f::LISTEN_ADDRESS), "ListenAddress")?,
            ipv6_only: i32_at(buf, f::IPV6_ONLY) != 0,
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        use mp_start_vpn as f;
        prep_out(out, Self::SIZE)?;
        write_inet(&self.listen_address, out, f::LISTEN_ADDRESS)?;
        put_i32(out, f::IPV6_ONLY, i32::from(self.ipv6_only));
        Ok(Self::SIZE)
    }
}

/// `OVPN_NOTIFY_EVENT` (144 bytes): what a completed `OVPN_IOCTL_NOTIFY_EVENT` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvpnNotifyEvent {
    /// `Cmd`
    pub cmd: OvpnNotifyCmd,
    /// `PeerId`
    pub peer_id: i32,
    /// `DelPeerReason` (meaningful for [`OvpnNotifyCmd::DelPeer`]; 0 otherwise)
    pub del_peer_reason: OvpnDelPeerReason,
    /// `FloatAddress` (`struct sockaddr_storage`): the peer's new address for
    /// [`OvpnNotifyCmd::FloatPeer`]; `None` is written as all zero (`AF_UNSPEC`).
    pub float_address: Option<SocketAddr>,
}

/// Byte offsets of [`OvpnNotifyEvent`].
pub mod notify_event {
    /// `Cmd`
    pub const CMD: usize = 0;
    /// `PeerId`
    pub const PEER_ID: usize = 4;
    /// `DelPeerReason`
    pub const DEL_PEER_REASON: usize = 8;
    /// `FloatAddress` (`sockaddr_storage` is 8-aligned, so 4 bytes of padding precede it)
    pub const FLOAT_ADDRESS: usize = 16;
}

impl OvpnNotifyEvent {
    /// `sizeof(OVPN_NOTIFY_EVENT)`
    pub const SIZE: usize = 144;
    /// The size of the structure before `FloatAddress` was added (OpenVPN before float notifications).
    pub const SIZE_WITHOUT_FLOAT: usize = 12;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        use notify_event as f;
        check_in(buf, Self::SIZE)?;
        let storage = buf.get(f::FLOAT_ADDRESS..f::FLOAT_ADDRESS + SOCKADDR_STORAGE_SIZE).unwrap_or(&[]);
        Ok(Self {
            cmd: OvpnNotifyCmd::parse_field(u32_at(buf, f::CMD))?,
            peer_id: i32_at(buf, f::PEER_ID),
            del_peer_reason: OvpnDelPeerReason::parse_field(u32_at(buf, f::DEL_PEER_REASON))?,
            float_address: sockaddr::parse_optional(storage, "FloatAddress")?,
        })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        use notify_event as f;
        prep_out(out, Self::SIZE)?;
        put_u32(out, f::CMD, self.cmd.as_u32());
        put_i32(out, f::PEER_ID, self.peer_id);
        put_u32(out, f::DEL_PEER_REASON, self.del_peer_reason.as_u32());
        if let Some(a) = &self.float_address {
            if let Some(dst) = out.get_mut(f::FLOAT_ADDRESS..) {
                sockaddr::write(a, dst)?;
            }
        }
        Ok(Self::SIZE)
    }
}

macro_rules! peer_id_only {
    ($(#[$m:meta])* $name:ident, $module:ident, $c:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            /// `PeerId`
            pub peer_id: i32,
        }

        #[doc = concat!("Byte offsets of [`", stringify!($name), "`].")]
        pub mod $module {
            /// `PeerId`
            pub const PEER_ID: usize = 0;
        }

        impl $name {
            #[doc = concat!("`sizeof(", $c, ")`")]
            pub const SIZE: usize = 4;

            /// Parses the structure; see [`crate::Wire::parse`].
            pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
                check_in(buf, Self::SIZE)?;
                Ok(Self { peer_id: i32_at(buf, $module::PEER_ID) })
            }

            /// Writes the structure; see [`crate::Wire::write_to`].
            pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
                prep_out(out, Self::SIZE)?;
                put_i32(out, $module::PEER_ID, self.peer_id);
                Ok(Self::SIZE)
            }
        }
    };
}

peer_id_only!(
    /// `OVPN_MP_DEL_PEER` (4 bytes).
    OvpnMpDelPeer, mp_del_peer, "OVPN_MP_DEL_PEER"
);
peer_id_only!(
    /// `OVPN_MP_SWAP_KEYS` (4 bytes).
    OvpnMpSwapKeys, mp_swap_keys, "OVPN_MP_SWAP_KEYS"
);
peer_id_only!(
    /// `OVPN_GET_PEER_STATS` (4 bytes). `PeerId` -1 ([`OvpnGetPeerStats::ALL_PEERS`]) asks for all peers.
    OvpnGetPeerStats, get_peer_stats, "OVPN_GET_PEER_STATS"
);

impl OvpnGetPeerStats {
    /// The `PeerId` that asks for every peer's statistics.
    pub const ALL_PEERS: i32 = -1;
}

/// `OVPN_MP_IROUTE` (28 bytes): an internal route to a peer of multipeer mode.
///
/// `parse` checks `IPv6` is 0 or 1 and `Netbits` fits the family (0..=32 or 0..=128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OvpnMpIroute {
    /// `Addr` (`IN_ADDR` or `IN6_ADDR`, chosen by `IPv6`)
    pub addr: IpAddr,
    /// `Netbits`
    pub netbits: u8,
    /// `PeerId` (-1 when deleting a route: OpenVPN does not name the peer)
    pub peer_id: i32,
}

/// Byte offsets of [`OvpnMpIroute`].
pub mod mp_iroute {
    /// `Addr` (union of `IN_ADDR` and `IN6_ADDR`, 16 bytes)
    pub const ADDR: usize = 0;
    /// `Netbits`
    pub const NETBITS: usize = 16;
    /// `PeerId`
    pub const PEER_ID: usize = 20;
    /// `IPv6`
    pub const IPV6: usize = 24;
}

impl OvpnMpIroute {
    /// `sizeof(OVPN_MP_IROUTE)`
    pub const SIZE: usize = 28;

    /// Parses the structure; see [`crate::Wire::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self, UapiError> {
        use mp_iroute as f;
        check_in(buf, Self::SIZE)?;
        let v6 = match u32_at(buf, f::IPV6) {
            0 => false,
            1 => true,
            other => return Err(UapiError::bad("IPv6", other)),
        };
        let raw_bits = u32_at(buf, f::NETBITS);
        let max = if v6 { 128 } else { 32 };
        let netbits = match u8::try_from(raw_bits) {
            Ok(n) if u32::from(n) <= max => n,
            _ => return Err(UapiError::bad("Netbits", raw_bits)),
        };
        Ok(Self { addr: sockaddr::ip_at(buf, f::ADDR, v6), netbits, peer_id: i32_at(buf, f::PEER_ID) })
    }

    /// Writes the structure; see [`crate::Wire::write_to`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, UapiError> {
        use mp_iroute as f;
        prep_out(out, Self::SIZE)?;
        match self.addr {
            IpAddr::V4(a) => put(out, f::ADDR, &a.octets()),
            IpAddr::V6(a) => put(out, f::ADDR, &a.octets()),
        }
        put_u32(out, f::NETBITS, u32::from(self.netbits));
        put_i32(out, f::PEER_ID, self.peer_id);
        put_u32(out, f::IPV6, u32::from(self.addr.is_ipv6()));
        Ok(Self::SIZE)
    }
}

impl_wire!(
    OvpnNewPeer,
    OvpnMpNewPeer,
    OvpnStats,
    OvpnPeerStats,
    OvpnCryptoData,
    OvpnCryptoDataV2,
    OvpnSetPeer,
    OvpnMpSetPeer,
    OvpnVersion,
    OvpnSetMode,
    OvpnMpStartVpn,
    OvpnNotifyEvent,
    OvpnMpDelPeer,
    OvpnMpSwapKeys,
    OvpnGetPeerStats,
    OvpnMpIroute,
);

/// The 28 bytes of a sockaddr union at `off` (the caller has checked the length).
fn inet(buf: &[u8], off: usize) -> &[u8] {
    buf.get(off..off + SOCKADDR_INET_SIZE).unwrap_or(&[])
}

fn write_inet(addr: &SocketAddr, out: &mut [u8], off: usize) -> Result<(), UapiError> {
    match out.get_mut(off..off + SOCKADDR_INET_SIZE) {
        Some(dst) => sockaddr::write(addr, dst).map(|_| ()),
        None => Err(UapiError::BufferTooSmall { need: off + SOCKADDR_INET_SIZE, got: out.len() }),
    }
}
