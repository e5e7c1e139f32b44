//! The ovpn-dco-win control API of the miniport, as logic independent of how requests arrive.
//!
//! [`Tunnel`] is the state behind the adapter's control device (`\\.\ovpn-dco` and the adapter's
//! `GUID_DEVINTERFACE_NET` interface): the mode (client / point-to-point or server / multipeer), the
//! engine's [`PeerTable`] (peers, keys, keepalive, MSS clamp, routes), the iroutes, the started flag, the
//! global counters, the queued `OVPN_IOCTL_NOTIFY_EVENT` notifications and the control packets queued for
//! `ReadFile`. [`Tunnel::ioctl`] handles the 19 IOCTLs of `uapi::ovpn`; [`Tunnel::read`] /
//! [`Tunnel::write`] the control channel; [`Tunnel::poll`] the keepalive timers; [`Tunnel::close`] the
//! handle's cleanup. None of them touches a WDF object: they return what the glue must do ([`Reply`],
//! [`Effects`], [`Action`]), so the WDF queue callbacks stay thin.
//!
//! # Behaviour of record
//!
//! The statuses and the state rules follow ovpn-dco-win where its source says what it does
//! (`OpenVPN/ovpn-dco-win` at `0dc463cfb0cd219ab0afc9c237861649dc956ef6`: `Driver.cpp`
//! `OvpnEvtIoDeviceControl`, `OvpnDeviceCheckMode`, `OvpnSetMode`, `OvpnMPStartVPN`, `OvpnStopVPN`,
//! `OvpnEvtIoRead`/`OvpnEvtIoWrite`, `OvpnEvtFileCleanup`; `peer.cpp` `OvpnPeerNew`, `OvpnMPPeerNew`,
//! `OvpnPeerSet`, `OvpnPeerGetStats`, `OvpnPeerStartVPN`, `OvpnPeerNewKey[V2]`, `OvpnPeerSwapKeys`;
//! `crypto.cpp` `OvpnCryptoNewKey`; `timer.cpp` `OvpnTimerRecv`). The IOCTLs 13..=19 are newer than any
//! driver source available to us; for them the statuses are rdco's, chosen in the same style and listed
//! in `docs/miniport.md`. OpenVPN's use of them (`OpenVPN/openvpn` `src/openvpn/dco_win.c`) fixes the
//! shapes: `NOTIFY_EVENT` is kept pending like a read, `GET_PEER_STATS` answers a 4-byte output buffer
//! with `STATUS_BUFFER_OVERFLOW` and the size it needs, `MP_DEL_IROUTE` names no peer.
//!
//! | condition | status |
//! |---|---|
//! | unknown IOCTL code | `STATUS_INVALID_DEVICE_REQUEST` |
//! | IOCTL not valid in the current mode (checked first) | `STATUS_INVALID_DEVICE_STATE` |
//! | input or output buffer shorter than the structure | `STATUS_BUFFER_TOO_SMALL` |
//! | client call with no peer yet (`GET_STATS`, `SET_PEER`, `START_VPN`, `NEW_KEY[_V2]`, `SWAP_KEYS`) | `STATUS_INVALID_DEVICE_REQUEST` |
//! | address family other than `AF_INET`/`AF_INET6`; bad key slot, cipher, key length or key id | `STATUS_INVALID_DEVICE_REQUEST` |
//! | other bad field (enum value, peer id out of range, `-1`-less negative keepalive, MSS over 65535, prefix) | `STATUS_INVALID_PARAMETER` |
//! | `NEW_PEER` with a peer, `MP_NEW_PEER` with a taken peer id or tunnel address | `STATUS_OBJECTID_EXISTS` |
//! | a peer id no peer has | `STATUS_OBJECTID_NOT_FOUND` |
//! | `SET_MODE` after multipeer was set, second `MP_START_VPN` | `STATUS_ALREADY_INITIALIZED` |
//! | swap with no secondary key; `SET_MODE` with a client peer; `MP_NEW_PEER` before `MP_START_VPN` | `STATUS_INVALID_DEVICE_STATE` |
//! | peer or iroute table full | `STATUS_INSUFFICIENT_RESOURCES` |
//!
//! A request that fails changes nothing: every handler parses and checks its whole input, and builds any
//! key state, before it changes the tunnel.
//!
//! # IRQL and locking
//! Every method takes `&mut self`: the glue keeps the tunnel under one lock (a spin lock, DISPATCH_LEVEL)
//! shared by the control device's queue callbacks (PASSIVE_LEVEL callers) and the data path (DPCs).
//! `NEW_KEY`/`NEW_KEY_V2` build AEAD key state: with the ring backend on x64 the glue runs them inside
//! `KeSaveExtendedProcessorState` ([`needs_extended_state`] says when). Configuration calls may allocate
//! through the engine (peer table, routes); the tunnel's own queues and tables are allocated once, in
//! [`Tunnel::new`], and never grow.

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use arrayvec::ArrayVec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;

use datapath::keepalive::KeepaliveAction;
use datapath::keys::{KeyConfig, KeyDirection, KeyFormat, KeySlot, KeySlotId};
use datapath::peer::IpPrefix;
use datapath::replay::ReplayConfig;
use datapath::{Cipher, Endpoint, Instant, PeerConfig, PeerTable};
use kernel::ffi::ntos::{
    NTSTATUS, STATUS_ALREADY_INITIALIZED, STATUS_BUFFER_OVERFLOW, STATUS_BUFFER_TOO_SMALL, STATUS_CANCELLED,
    STATUS_CONNECTION_DISCONNECTED, STATUS_INSUFFICIENT_RESOURCES, STATUS_INVALID_ADDRESS,
    STATUS_INVALID_BUFFER_SIZE, STATUS_INVALID_DEVICE_REQUEST, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_MESSAGE, STATUS_INVALID_PARAMETER, STATUS_OBJECTID_EXISTS, STATUS_OBJECTID_NOT_FOUND,
    STATUS_PENDING, STATUS_SUCCESS,
};
use uapi::ovpn::{
    OvpnCipherAlg, OvpnCryptoData, OvpnCryptoDataV2, OvpnDelPeerReason, OvpnGetPeerStats, OvpnIoctl,
    OvpnKeySlot, OvpnMode, OvpnMpDelPeer, OvpnMpIroute, OvpnMpNewPeer, OvpnMpSetPeer, OvpnMpStartVpn,
    OvpnMpSwapKeys, OvpnNewPeer, OvpnNotifyCmd, OvpnNotifyEvent, OvpnPeerStats, OvpnProto, OvpnSetMode,
    OvpnSetPeer, OvpnStats, OvpnVersion, RDCO_REPORTED_VERSION,
};
use uapi::sockaddr::{self, SOCKADDR_IN6_SIZE};
use uapi::UapiError;

/// Peers of multipeer mode (the peer table and its metadata are sized for this at [`Tunnel::new`]).
pub const MAX_PEERS: usize = 256;
/// Iroutes of multipeer mode.
pub const MAX_IROUTES: usize = 1024;
/// Notifications kept for `NOTIFY_EVENT` while none is pending; past this the oldest is dropped (counted).
pub const NOTIFY_QUEUE_LEN: usize = 64;
/// Received control packets kept for `ReadFile`; past this new ones are dropped (counted in
/// `LostInControlPackets`).
pub const CONTROL_QUEUE_LEN: usize = 16;
/// The largest control packet accepted from `WriteFile` or kept for `ReadFile` (without the address
/// prefix of multipeer mode).
pub const MAX_CONTROL_PACKET: usize = 1500;
/// One control queue slot: the largest address prefix (`SOCKADDR_IN6`) and packet.
const CONTROL_SLOT: usize = SOCKADDR_IN6_SIZE + MAX_CONTROL_PACKET;
/// The largest peer id (24 bits on the wire).
pub const PEER_ID_MAX: i32 = 0x00FF_FFFF;

/// How a completed request is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Reply {
    /// `STATUS_SUCCESS`, `STATUS_BUFFER_OVERFLOW` (a partial answer, `GET_PEER_STATS`) or `STATUS_PENDING`
    /// (`NOTIFY_EVENT` with nothing queued: the glue parks the request and calls [`Tunnel::ioctl`] again
    /// when [`Action::Notify`] arrives).
    pub status: NTSTATUS,
    /// Bytes written to the output buffer (the request's `Information`).
    pub information: usize,
    /// What the glue must do besides completing the request.
    pub effects: Effects,
}

impl Reply {
    fn done(information: usize) -> Reply {
        Reply { status: STATUS_SUCCESS, information, effects: Effects::default() }
    }

    fn with(effects: Effects) -> Reply {
        Reply { status: STATUS_SUCCESS, information: 0, effects }
    }
}

/// What the outer transport must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportRequest {
    /// Client mode (`NEW_PEER`): a socket bound to `local`, to `remote`, UDP or TCP (TCP completes the
    /// request when connected; the glue pends it).
    Connect {
        /// `Local`
        local: SocketAddr,
        /// `Remote`
        remote: SocketAddr,
        /// `Proto`
        proto: OvpnProto,
    },
    /// Server mode (`MP_START_VPN`): a UDP socket bound to `address`. The glue writes the bound port into
    /// the reply's `ListenAddress` (port 0 asks Windows to choose).
    Listen {
        /// `ListenAddress`
        address: SocketAddr,
        /// `IPv6Only`
        ipv6_only: bool,
    },
}

/// Side effects of a request, for the glue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Set the adapter's link state: `Some(true)` connected, `Some(false)` disconnected.
    pub link: Option<bool>,
    /// Open the outer transport.
    pub open_transport: Option<TransportRequest>,
    /// Close the outer transport socket.
    pub close_transport: bool,
    /// Complete every parked read and `NOTIFY_EVENT` request with this status (`STATUS_CANCELLED`).
    pub cancel_pending: Option<NTSTATUS>,
}

/// What the keepalive timers want, reported by [`Tunnel::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Seal and send a keepalive ping to this peer.
    SendPing(u32),
    /// Client mode: the peer timed out. Call [`Tunnel::read`] for a parked read: it completes with
    /// `STATUS_CONNECTION_DISCONNECTED` (once, as ovpn-dco-win's `OvpnTimerRecv` does).
    WakeReads,
    /// A notification was queued: complete a parked `NOTIFY_EVENT` by calling [`Tunnel::ioctl`] again.
    Notify,
    /// Server mode: this peer timed out and was deleted (a `DEL_PEER` notification with reason
    /// `EXPIRED` is queued).
    PeerExpired(u32),
}

/// The answer to a read of the control channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadResult {
    /// A packet of this many bytes was written to the buffer.
    Complete(usize),
    /// Nothing queued: the glue parks the read (ovpn-dco-win's `PendingReadsQueue`).
    Pending,
}

/// A control packet from `WriteFile`, checked: send `len` bytes from `offset` of the write buffer to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlSend {
    /// The peer's address (client mode: the peer's remote; server mode: the write's address prefix).
    pub to: SocketAddr,
    /// Start of the packet in the write buffer (after the address prefix).
    pub offset: usize,
    /// Bytes of packet.
    pub len: usize,
}

/// What the control device knows of one peer besides the engine's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer id (client mode: the peer id of the first key; 0 before).
    pub peer_id: u32,
    /// `Local`
    pub local: SocketAddr,
    /// `Remote`
    pub remote: SocketAddr,
    /// `VpnAddr4` (server mode), if set.
    pub vpn4: Option<Ipv4Addr>,
    /// `VpnAddr6` (server mode), if set.
    pub vpn6: Option<Ipv6Addr>,
    /// Keepalive interval in seconds (0: off).
    pub keepalive_interval: i32,
    /// Keepalive timeout in seconds (0: off).
    pub keepalive_timeout: i32,
    /// MSS clamp (0: off).
    pub mss: i32,
    /// Outer bytes received from the peer (the data path counts them with [`Tunnel::count_link`]).
    pub link_rx_bytes: u64,
    /// Outer bytes sent to the peer.
    pub link_tx_bytes: u64,
}

/// An iroute: an inner prefix routed to a peer of multipeer mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iroute {
    /// The prefix, host bits cleared.
    pub prefix: IpPrefix,
    /// The peer.
    pub peer_id: u32,
}

/// A key slot as the snapshot shows it (never the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyView {
    /// Key id.
    pub key_id: u8,
    /// Cipher.
    pub cipher: Cipher,
    /// Classic or epoch.
    pub format: KeyFormat,
}

/// One peer in a [`Snapshot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerView {
    /// The control device's view.
    pub info: PeerInfo,
    /// The engine's primary key slot.
    pub primary: Option<KeyView>,
    /// The engine's secondary key slot.
    pub secondary: Option<KeyView>,
    /// The engine's outer address of the peer.
    pub endpoint: Option<Endpoint>,
}

/// Everything observable of a [`Tunnel`], for diagnostics and tests (allocates; not for the data path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The mode.
    pub mode: OvpnMode,
    /// `START_VPN` done (client) or the listen socket requested (server).
    pub started: bool,
    /// The listen address of server mode.
    pub listen: Option<OvpnMpStartVpn>,
    /// Client mode: the peer's transport protocol.
    pub proto: Option<OvpnProto>,
    /// Peers, by peer id.
    pub peers: Vec<PeerView>,
    /// Iroutes, in the order added.
    pub iroutes: Vec<Iroute>,
    /// Global counters.
    pub stats: OvpnStats,
    /// Queued notifications.
    pub notifications: Vec<OvpnNotifyEvent>,
    /// Queued control packets (lengths, prefix included).
    pub control: Vec<usize>,
    /// A keepalive timeout waits to be reported to a read.
    pub disconnect_pending: bool,
}

/// The part of a [`Tunnel`] a transport-opening request changes, from [`Tunnel::checkpoint`], for
/// [`Tunnel::rollback`]. Holds no key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Checkpoint {
    opens_transport: bool,
    had_peers: bool,
    started: bool,
    listen: Option<OvpnMpStartVpn>,
    proto: Option<OvpnProto>,
    stats: OvpnStats,
    disconnect_pending: bool,
}

/// One queued control packet (with its address prefix in server mode).
struct ControlPacket {
    len: usize,
    data: [u8; CONTROL_SLOT],
}

/// Whether `NEW_KEY`/`NEW_KEY_V2` with this input builds key state that needs the kernel's
/// extended-state guard (the glue wraps the call in `KeSaveExtendedProcessorState` then).
pub fn needs_extended_state(code: u32, input: &[u8]) -> bool {
    let data = match OvpnIoctl::from_code(code) {
        Some(OvpnIoctl::NewKey | OvpnIoctl::NewKeyV2) => OvpnCryptoData::parse(input),
        _ => return false,
    };
    match data {
        Ok(d) => {
            cipher(d.cipher_alg, d.encrypt.key_len, d.decrypt.key_len).is_ok_and(Cipher::needs_extended_state)
        }
        Err(_) => false,
    }
}

/// The control device's state. See the module documentation.
pub struct Tunnel {
    mode: OvpnMode,
    started: bool,
    listen: Option<OvpnMpStartVpn>,
    proto: Option<OvpnProto>,
    peers: PeerTable,
    info: Vec<PeerInfo>,
    iroutes: Vec<Iroute>,
    stats: OvpnStats,
    notifications: VecDeque<OvpnNotifyEvent>,
    notifications_lost: u64,
    control: VecDeque<ControlPacket>,
    disconnect_pending: bool,
}

impl core::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tunnel")
            .field("mode", &self.mode)
            .field("started", &self.started)
            .field("peers", &self.info.len())
            .field("iroutes", &self.iroutes.len())
            .finish_non_exhaustive()
    }
}

fn reserve<T>(v: &mut Vec<T>, n: usize) -> Result<(), NTSTATUS> {
    v.try_reserve_exact(n).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)
}

fn reserve_deque<T>(v: &mut VecDeque<T>, n: usize) -> Result<(), NTSTATUS> {
    v.try_reserve_exact(n).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)
}

/// A `uapi` parse error as ovpn-dco-win answers it: short buffers `STATUS_BUFFER_TOO_SMALL` (what
/// `WdfRequestRetrieveInputBuffer` returns below its minimum length), bad address families
/// `STATUS_INVALID_DEVICE_REQUEST` (`OvpnPeerNew`, `OvpnMPPeerNew`), other bad values
/// `STATUS_INVALID_PARAMETER` (`OvpnSetMode`).
fn uapi_status(e: UapiError) -> NTSTATUS {
    match e {
        UapiError::TooShort { .. } | UapiError::BufferTooSmall { .. } => STATUS_BUFFER_TOO_SMALL,
        UapiError::BadValue { field: "Local" | "Remote" | "ListenAddress", .. } => {
            STATUS_INVALID_DEVICE_REQUEST
        }
        UapiError::BadValue { .. } => STATUS_INVALID_PARAMETER,
    }
}

/// Key-data parse errors: all `STATUS_INVALID_DEVICE_REQUEST`, as `OvpnCryptoNewKey` answers a bad key slot,
/// cipher or key length.
fn crypto_status(e: UapiError) -> NTSTATUS {
    match e {
        UapiError::TooShort { .. } | UapiError::BufferTooSmall { .. } => STATUS_BUFFER_TOO_SMALL,
        UapiError::BadValue { .. } => STATUS_INVALID_DEVICE_REQUEST,
    }
}

fn peer_id(v: i32) -> Result<u32, NTSTATUS> {
    if (0..=PEER_ID_MAX).contains(&v) {
        u32::try_from(v).map_err(|_| STATUS_INVALID_PARAMETER)
    } else {
        Err(STATUS_INVALID_PARAMETER)
    }
}

fn endpoint(addr: SocketAddr) -> Endpoint {
    match addr {
        SocketAddr::V4(a) => Endpoint::V4 { addr: a.ip().octets(), port: a.port() },
        SocketAddr::V6(a) => Endpoint::V6 { addr: a.ip().octets(), port: a.port() },
    }
}

/// The engine's cipher for a key pair (lengths already checked per cipher by `uapi`); both directions
/// must use the same key length.
fn cipher(alg: OvpnCipherAlg, encrypt_len: u8, decrypt_len: u8) -> Result<Cipher, NTSTATUS> {
    Cipher::from_ovpn_alg(alg.as_u32(), usize::from(encrypt_len), usize::from(decrypt_len))
        .ok_or(STATUS_INVALID_DEVICE_REQUEST)
}

/// A keepalive or MSS field of `OVPN_SET_PEER`: -1 keeps `current`, other negatives are invalid.
fn field(new: i32, current: i32, max: i32) -> Result<i32, NTSTATUS> {
    match new {
        -1 => Ok(current),
        v if (0..=max).contains(&v) => Ok(v),
        _ => Err(STATUS_INVALID_PARAMETER),
    }
}

fn secs(v: i32) -> Duration {
    Duration::from_secs(u64::try_from(v).unwrap_or(0))
}

fn key_view<A: datapath::Aead>(slot: Option<&KeySlot<A>>) -> Option<KeyView> {
    slot.map(|s| KeyView { key_id: s.key_id(), cipher: s.cipher(), format: s.format() })
}

fn iroute_prefix(r: &OvpnMpIroute) -> Result<IpPrefix, NTSTATUS> {
    let p = match r.addr {
        IpAddr::V4(a) => IpPrefix::V4(a.octets(), r.netbits),
        IpAddr::V6(a) => IpPrefix::V6(a.octets(), r.netbits),
    };
    p.normalized().ok_or(STATUS_INVALID_PARAMETER)
}

impl Tunnel {
    /// A tunnel in client mode with no peer, its tables and queues allocated for their capacities.
    /// PASSIVE_LEVEL (device creation). Fails with `STATUS_INSUFFICIENT_RESOURCES`.
    pub fn new() -> Result<Tunnel, NTSTATUS> {
        let mut t = Tunnel {
            mode: OvpnMode::P2p,
            started: false,
            listen: None,
            proto: None,
            peers: PeerTable::new(),
            info: Vec::new(),
            iroutes: Vec::new(),
            stats: OvpnStats::default(),
            notifications: VecDeque::new(),
            notifications_lost: 0,
            control: VecDeque::new(),
            disconnect_pending: false,
        };
        reserve(&mut t.info, MAX_PEERS)?;
        reserve(&mut t.iroutes, MAX_IROUTES)?;
        reserve_deque(&mut t.notifications, NOTIFY_QUEUE_LEN)?;
        reserve_deque(&mut t.control, CONTROL_QUEUE_LEN)?;
        Ok(t)
    }

    /// The mode.
    pub fn mode(&self) -> OvpnMode {
        self.mode
    }

    /// Whether the tunnel is started (`START_VPN` / `MP_START_VPN`).
    pub fn started(&self) -> bool {
        self.started
    }

    /// The engine's peer table (the data path seals and opens through it).
    pub fn peers(&mut self) -> &mut PeerTable {
        &mut self.peers
    }

    /// The global counters, for the data path to count into.
    pub fn stats_mut(&mut self) -> &mut OvpnStats {
        &mut self.stats
    }

    /// Notifications dropped because the queue was full.
    pub fn notifications_lost(&self) -> u64 {
        self.notifications_lost
    }

    /// The control device's view of a peer.
    pub fn peer_info(&self, peer_id: u32) -> Option<&PeerInfo> {
        self.info.iter().find(|p| p.peer_id == peer_id)
    }

    /// Counts outer bytes for a peer's `OVPN_PEER_STATS` (the data path calls it). Unknown peers are ignored.
    pub fn count_link(&mut self, peer_id: u32, rx_bytes: u64, tx_bytes: u64) {
        if let Some(p) = self.info.iter_mut().find(|p| p.peer_id == peer_id) {
            p.link_rx_bytes = p.link_rx_bytes.saturating_add(rx_bytes);
            p.link_tx_bytes = p.link_tx_bytes.saturating_add(tx_bytes);
        }
    }

    /// Everything observable, for diagnostics and tests.
    pub fn snapshot(&self) -> Snapshot {
        let peers = self
            .info
            .iter()
            .map(|info| {
                let engine = self.peers.peer(info.peer_id);
                PeerView {
                    info: *info,
                    primary: engine.and_then(|p| key_view(p.keys().primary())),
                    secondary: engine.and_then(|p| key_view(p.keys().secondary())),
                    endpoint: engine.and_then(datapath::Peer::remote),
                }
            })
            .collect();
        Snapshot {
            mode: self.mode,
            started: self.started,
            listen: self.listen,
            proto: self.proto,
            peers,
            iroutes: self.iroutes.clone(),
            stats: self.stats,
            notifications: self.notifications.iter().copied().collect(),
            control: self.control.iter().map(|c| c.len).collect(),
            disconnect_pending: self.disconnect_pending,
        }
    }

    // -----------------------------------------------------------------------------------------------
    // IOCTLs
    // -----------------------------------------------------------------------------------------------

    /// Handles one `DeviceIoControl` request: `input` is the request's input buffer, `output` its output
    /// buffer (for `METHOD_BUFFERED` both are views of the one system buffer; the glue copies the input
    /// first if they overlap). `now` is the engine's clock. On `Err` nothing changed and nothing was
    /// written that the request returns.
    pub fn ioctl(
        &mut self,
        code: u32,
        input: &[u8],
        output: &mut [u8],
        now: Instant,
    ) -> Result<Reply, NTSTATUS> {
        let ioctl = OvpnIoctl::from_code(code).ok_or(STATUS_INVALID_DEVICE_REQUEST)?;
        if !mode_allows(self.mode, ioctl) {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        match ioctl {
            OvpnIoctl::NewPeer => self.new_peer(input, now),
            OvpnIoctl::GetStats => self.get_stats(output),
            OvpnIoctl::NewKey => {
                self.require_peer()?;
                let key = OvpnCryptoData::parse(input).map_err(crypto_status)?;
                self.new_key(OvpnCryptoDataV2 { v1: key, crypto_options: 0 }, now)
            }
            OvpnIoctl::NewKeyV2 => {
                self.require_peer()?;
                let key = OvpnCryptoDataV2::parse(input).map_err(crypto_status)?;
                self.new_key(key, now)
            }
            OvpnIoctl::SwapKeys => {
                self.require_peer()?;
                let id = self.p2p_id()?;
                self.swap(id)
            }
            OvpnIoctl::SetPeer => {
                self.require_peer()?;
                let r = OvpnSetPeer::parse(input).map_err(uapi_status)?;
                let id = self.p2p_id()?;
                self.set_peer(id, r.keepalive_interval, r.keepalive_timeout, r.mss, now)
            }
            OvpnIoctl::StartVpn => {
                self.require_peer()?;
                self.started = true;
                Ok(Reply::with(Effects { link: Some(true), ..Effects::default() }))
            }
            OvpnIoctl::DelPeer => Ok(Reply::with(self.stop())),
            OvpnIoctl::GetVersion => write_reply(&RDCO_REPORTED_VERSION, output, OvpnVersion::write_to),
            OvpnIoctl::SetMode => self.set_mode(input),
            OvpnIoctl::MpStartVpn => self.mp_start_vpn(input, output),
            OvpnIoctl::MpNewPeer => self.mp_new_peer(input, now),
            OvpnIoctl::MpSetPeer => {
                let r = OvpnMpSetPeer::parse(input).map_err(uapi_status)?;
                let id = self.known_peer(r.peer_id)?;
                self.set_peer(id, r.keepalive_interval, r.keepalive_timeout, r.mss, now)
            }
            OvpnIoctl::NotifyEvent => self.notify_event(output),
            OvpnIoctl::MpDelPeer => {
                let r = OvpnMpDelPeer::parse(input).map_err(uapi_status)?;
                let id = self.known_peer(r.peer_id)?;
                self.remove_peer(id);
                Ok(Reply::done(0))
            }
            OvpnIoctl::MpSwapKeys => {
                let r = OvpnMpSwapKeys::parse(input).map_err(uapi_status)?;
                let id = self.known_peer(r.peer_id)?;
                self.swap(id)
            }
            OvpnIoctl::MpAddIroute => self.add_iroute(input),
            OvpnIoctl::MpDelIroute => self.del_iroute(input),
            OvpnIoctl::GetPeerStats => self.get_peer_stats(input, output),
        }
    }

    /// What a request that opens the outer transport (`NEW_PEER`, `MP_START_VPN`) may change, taken
    /// before [`Tunnel::ioctl`] so that [`Tunnel::rollback`] can undo the request when the glue fails
    /// to open its socket (`transport::apply`: socket creation or bind). For every other request it
    /// records nothing and the rollback is a no-op (their effects cannot fail). Allocates nothing.
    pub fn checkpoint(&self, code: u32) -> Checkpoint {
        let opens = matches!(OvpnIoctl::from_code(code), Some(OvpnIoctl::NewPeer | OvpnIoctl::MpStartVpn));
        Checkpoint {
            opens_transport: opens && self.mode_allows_code(code),
            had_peers: !self.info.is_empty(),
            started: self.started,
            listen: self.listen,
            proto: self.proto,
            stats: self.stats,
            disconnect_pending: self.disconnect_pending,
        }
    }

    fn mode_allows_code(&self, code: u32) -> bool {
        OvpnIoctl::from_code(code).is_some_and(|i| mode_allows(self.mode, i))
    }

    /// Undoes a request that [`Tunnel::ioctl`] accepted but whose transport could not be opened: the
    /// tunnel is left exactly as `checkpoint` found it (the two requests that open a socket are only
    /// accepted on a tunnel without peers, so the peers they added are all the peers there are; their
    /// keys are zeroized). PASSIVE_LEVEL or DISPATCH_LEVEL, under the tunnel lock.
    ///
    /// Requests that ran between the two (another thread on the same handle) and built on the failed
    /// one — a key for the peer `NEW_PEER` added — go with it: they referred to a peer that never
    /// came to be.
    pub fn rollback(&mut self, checkpoint: Checkpoint) {
        if !checkpoint.opens_transport {
            return;
        }
        if !checkpoint.had_peers {
            // Dropping the engine's table zeroizes the keys; `info` keeps its reserved capacity.
            self.peers = PeerTable::new();
            self.info.clear();
            self.iroutes.clear();
        }
        self.started = checkpoint.started;
        self.listen = checkpoint.listen;
        self.proto = checkpoint.proto;
        self.stats = checkpoint.stats;
        self.disconnect_pending = checkpoint.disconnect_pending;
    }

    /// `STATUS_INVALID_DEVICE_REQUEST` without a peer, as `OvpnHasPeers` checks in ovpn-dco-win.
    fn require_peer(&self) -> Result<(), NTSTATUS> {
        if self.info.is_empty() {
            Err(STATUS_INVALID_DEVICE_REQUEST)
        } else {
            Ok(())
        }
    }

    /// The client peer's id (`OvpnGetFirstPeer`).
    fn p2p_id(&self) -> Result<u32, NTSTATUS> {
        self.info.first().map(|p| p.peer_id).ok_or(STATUS_INVALID_DEVICE_REQUEST)
    }

    /// A peer id of a request that names an existing peer: range-checked, then looked up.
    fn known_peer(&self, id: i32) -> Result<u32, NTSTATUS> {
        let id = peer_id(id)?;
        if self.peer_info(id).is_some() {
            Ok(id)
        } else {
            Err(STATUS_OBJECTID_NOT_FOUND)
        }
    }

    /// `OVPN_IOCTL_NEW_PEER` (`OvpnPeerNew`): the one peer of client mode and its transport.
    fn new_peer(&mut self, input: &[u8], now: Instant) -> Result<Reply, NTSTATUS> {
        let r = OvpnNewPeer::parse(input).map_err(uapi_status)?;
        if !self.info.is_empty() {
            return Err(STATUS_OBJECTID_EXISTS);
        }
        if r.remote.ip().is_unspecified() || r.remote.port() == 0 || r.local.is_ipv4() != r.remote.is_ipv4() {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let mut config = PeerConfig::new(0);
        config.remote = Some(endpoint(r.remote));
        config.replay = ReplayConfig::default();
        self.peers.add_peer(&config, now).map_err(|_| STATUS_OBJECTID_EXISTS)?;
        self.info.push(PeerInfo {
            peer_id: 0,
            local: r.local,
            remote: r.remote,
            vpn4: None,
            vpn6: None,
            keepalive_interval: 0,
            keepalive_timeout: 0,
            mss: 0,
            link_rx_bytes: 0,
            link_tx_bytes: 0,
        });
        self.proto = Some(r.proto);
        self.disconnect_pending = false;
        // OvpnPeerNew zeroes the device's counters for the new session.
        self.stats = OvpnStats::default();
        Ok(Reply::with(Effects {
            open_transport: Some(TransportRequest::Connect {
                local: r.local,
                remote: r.remote,
                proto: r.proto,
            }),
            ..Effects::default()
        }))
    }

    /// `OVPN_IOCTL_GET_STATS` (`OvpnPeerGetStats`): needs a peer, then a 64-byte output buffer.
    fn get_stats(&self, output: &mut [u8]) -> Result<Reply, NTSTATUS> {
        self.require_peer()?;
        write_reply(&self.stats, output, OvpnStats::write_to)
    }

    /// `OVPN_IOCTL_NEW_KEY` / `_V2`: installs a key pair in a peer's slot. The key state is built before
    /// anything changes. Client mode takes the peer id of the first key for its peer (ovpn-dco-win keeps
    /// the peer id per key slot; the engine per peer): a later key with another peer id, once the peer has
    /// keys, is `STATUS_INVALID_PARAMETER`.
    fn new_key(&mut self, key: OvpnCryptoDataV2, now: Instant) -> Result<Reply, NTSTATUS> {
        let v1 = key.v1;
        let id = peer_id(v1.peer_id)?;
        let which = match v1.key_slot {
            OvpnKeySlot::Primary => KeySlotId::Primary,
            OvpnKeySlot::Secondary => KeySlotId::Secondary,
        };
        let config = KeyConfig {
            cipher: cipher(v1.cipher_alg, v1.encrypt.key_len, v1.decrypt.key_len)?,
            format: KeyFormat::from_crypto_options(key.crypto_options),
            key_id: v1.key_id,
            encrypt: KeyDirection { key: v1.encrypt.key, nonce_tail: v1.encrypt.nonce_tail },
            decrypt: KeyDirection { key: v1.decrypt.key, nonce_tail: v1.decrypt.nonce_tail },
        };
        // Which engine peer, and whether client mode must re-key it under the key's peer id.
        let (target, rename) = if self.mode == OvpnMode::P2p {
            let current = self.p2p_id()?;
            let has_keys = self
                .peers
                .peer(current)
                .is_some_and(|p| p.keys().primary().is_some() || p.keys().secondary().is_some());
            match (current == id, has_keys) {
                (true, _) => (current, false),
                (false, false) => (current, true),
                (false, true) => return Err(STATUS_INVALID_PARAMETER),
            }
        } else {
            (self.known_peer(v1.peer_id)?, false)
        };
        let slot =
            KeySlot::new(&config, ReplayConfig::default()).map_err(|_| STATUS_INVALID_DEVICE_REQUEST)?;
        if rename {
            self.rename_p2p_peer(target, id, now)?;
        }
        let peer = self.peers.peer_mut(id).ok_or(STATUS_OBJECTID_NOT_FOUND)?;
        peer.install_key_slot(which, slot);
        Ok(Reply::done(0))
    }

    /// Client mode: the engine peer (without keys) is re-created under `to`, keeping its settings.
    fn rename_p2p_peer(&mut self, from: u32, to: u32, now: Instant) -> Result<(), NTSTATUS> {
        let info = self.info.first().copied().ok_or(STATUS_INVALID_DEVICE_REQUEST)?;
        let mut config = PeerConfig::new(to);
        config.remote = Some(endpoint(info.remote));
        config.keepalive_interval = secs(info.keepalive_interval);
        config.keepalive_timeout = secs(info.keepalive_timeout);
        config.mss = u16::try_from(info.mss).unwrap_or(0);
        // The keepalive timers restart at `now`; the table holds this one peer, so removing it and adding
        // it under the new id cannot collide.
        self.peers.remove_peer(from).map_err(|_| STATUS_INVALID_DEVICE_REQUEST)?;
        self.peers.add_peer(&config, now).map_err(|_| STATUS_OBJECTID_EXISTS)?;
        if let Some(p) = self.info.first_mut() {
            p.peer_id = to;
        }
        Ok(())
    }

    /// Swaps a peer's key slots; `STATUS_INVALID_DEVICE_STATE` with no secondary key (rdco: a swap would
    /// leave the peer without a primary key).
    fn swap(&mut self, id: u32) -> Result<Reply, NTSTATUS> {
        let peer = self.peers.peer_mut(id).ok_or(STATUS_OBJECTID_NOT_FOUND)?;
        if peer.keys().secondary().is_none() {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        peer.swap_keys();
        Ok(Reply::done(0))
    }

    /// `SET_PEER` / `MP_SET_PEER` (`OvpnPeerSet`): -1 leaves a field unchanged; keepalive in seconds, 0
    /// off; MSS 0 off, at most 65535.
    fn set_peer(
        &mut self,
        id: u32,
        interval: i32,
        timeout: i32,
        mss: i32,
        now: Instant,
    ) -> Result<Reply, NTSTATUS> {
        let info = *self.peer_info(id).ok_or(STATUS_OBJECTID_NOT_FOUND)?;
        let interval = field(interval, info.keepalive_interval, i32::MAX)?;
        let timeout = field(timeout, info.keepalive_timeout, i32::MAX)?;
        let mss = field(mss, info.mss, i32::from(u16::MAX))?;
        let peer = self.peers.peer_mut(id).ok_or(STATUS_OBJECTID_NOT_FOUND)?;
        peer.set_keepalive(secs(interval), secs(timeout), now);
        peer.set_mss(u16::try_from(mss).unwrap_or(0));
        if let Some(p) = self.info.iter_mut().find(|p| p.peer_id == id) {
            p.keepalive_interval = interval;
            p.keepalive_timeout = timeout;
            p.mss = mss;
        }
        Ok(Reply::done(0))
    }

    /// `OVPN_IOCTL_SET_MODE` (`OvpnSetMode`): from client mode only (`STATUS_ALREADY_INITIALIZED`
    /// otherwise), and (rdco) not while a client peer exists.
    fn set_mode(&mut self, input: &[u8]) -> Result<Reply, NTSTATUS> {
        let r = OvpnSetMode::parse(input).map_err(uapi_status)?;
        if self.mode != OvpnMode::P2p {
            return Err(STATUS_ALREADY_INITIALIZED);
        }
        if !self.info.is_empty() {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        self.mode = r.mode;
        Ok(Reply::done(0))
    }

    /// `OVPN_IOCTL_MP_START_VPN` (`OvpnMPStartVPN`): once (`STATUS_ALREADY_INITIALIZED`); the output gets
    /// the listen address back (checked before anything changes; the glue patches the bound port).
    fn mp_start_vpn(&mut self, input: &[u8], output: &mut [u8]) -> Result<Reply, NTSTATUS> {
        if self.listen.is_some() {
            return Err(STATUS_ALREADY_INITIALIZED);
        }
        let r = OvpnMpStartVpn::parse(input).map_err(uapi_status)?;
        if output.len() < OvpnMpStartVpn::SIZE {
            return Err(STATUS_BUFFER_TOO_SMALL);
        }
        let n = r.write_to(output).map_err(uapi_status)?;
        self.listen = Some(r);
        self.started = true;
        Ok(Reply {
            status: STATUS_SUCCESS,
            information: n,
            effects: Effects {
                link: Some(true),
                open_transport: Some(TransportRequest::Listen {
                    address: r.listen_address,
                    ipv6_only: r.ipv6_only,
                }),
                ..Effects::default()
            },
        })
    }

    /// `OVPN_IOCTL_MP_NEW_PEER` (`OvpnMPPeerNew`): a peer of server mode, with host routes for its tunnel
    /// addresses. Needs the listen socket (rdco: `STATUS_INVALID_DEVICE_STATE` before `MP_START_VPN`).
    fn mp_new_peer(&mut self, input: &[u8], now: Instant) -> Result<Reply, NTSTATUS> {
        let r = OvpnMpNewPeer::parse(input).map_err(uapi_status)?;
        if !self.started {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        let id = peer_id(r.peer_id)?;
        if self.peer_info(id).is_some() {
            return Err(STATUS_OBJECTID_EXISTS);
        }
        if r.remote.ip().is_unspecified() || r.remote.port() == 0 || r.local.is_ipv4() != r.remote.is_ipv4() {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let vpn4 = (!r.vpn_addr4.is_unspecified()).then_some(r.vpn_addr4);
        let vpn6 = (!r.vpn_addr6.is_unspecified()).then_some(r.vpn_addr6);
        let taken = self
            .info
            .iter()
            .any(|p| (vpn4.is_some() && p.vpn4 == vpn4) || (vpn6.is_some() && p.vpn6 == vpn6));
        if taken {
            return Err(STATUS_OBJECTID_EXISTS);
        }
        if self.info.len() >= MAX_PEERS {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        let mut config = PeerConfig::new(id);
        config.remote = Some(endpoint(r.remote));
        self.peers.add_peer(&config, now).map_err(|_| STATUS_OBJECTID_EXISTS)?;
        let routes = vpn4
            .map(|a| (IpPrefix::V4(a.octets(), 32), id))
            .into_iter()
            .chain(vpn6.map(|a| (IpPrefix::V6(a.octets(), 128), id)));
        if self.peers.add_routes(routes).is_err() {
            let _ = self.peers.remove_peer(id);
            return Err(STATUS_INVALID_PARAMETER);
        }
        let at = self.info.partition_point(|p| p.peer_id < id);
        self.info.insert(
            at,
            PeerInfo {
                peer_id: id,
                local: r.local,
                remote: r.remote,
                vpn4,
                vpn6,
                keepalive_interval: 0,
                keepalive_timeout: 0,
                mss: 0,
                link_rx_bytes: 0,
                link_tx_bytes: 0,
            },
        );
        Ok(Reply::done(0))
    }

    /// Removes a peer, its keys (zeroized), its iroutes and host routes. A host route of another peer
    /// that one of the removed iroutes had replaced (the same /32 or /128) is put back, as
    /// `MP_DEL_IROUTE` does.
    fn remove_peer(&mut self, id: u32) {
        let _ = self.peers.remove_peer(id);
        self.info.retain(|p| p.peer_id != id);
        let before = self.iroutes.len();
        self.iroutes.retain(|r| r.peer_id != id);
        if self.iroutes.len() != before {
            self.restore_all_host_routes();
        }
    }

    /// Puts back every peer's tunnel-address host route that no iroute replaces and the table lost.
    fn restore_all_host_routes(&mut self) {
        for k in 0..self.info.len() {
            let Some(p) = self.info.get(k).copied() else { break };
            let v4 = p.vpn4.map(|a| (IpPrefix::V4(a.octets(), 32), self.peers.lookup_v4(a.octets())));
            let v6 = p.vpn6.map(|a| (IpPrefix::V6(a.octets(), 128), self.peers.lookup_v6(a.octets())));
            for (prefix, routed) in v4.into_iter().chain(v6) {
                let replaced = self.iroutes.iter().any(|r| r.prefix == prefix);
                if !replaced && routed != Some(p.peer_id) {
                    let _ = self.peers.add_route(prefix, p.peer_id);
                }
            }
        }
    }

    /// `OVPN_IOCTL_NOTIFY_EVENT`: the oldest queued notification, or `STATUS_PENDING`. The output must
    /// hold at least the structure without `FloatAddress` (12 bytes, OpenVPN before float
    /// notifications); a full structure (144 bytes) gets the address too.
    fn notify_event(&mut self, output: &mut [u8]) -> Result<Reply, NTSTATUS> {
        if output.len() < OvpnNotifyEvent::SIZE_WITHOUT_FLOAT {
            return Err(STATUS_BUFFER_TOO_SMALL);
        }
        let Some(event) = self.notifications.front().copied() else {
            return Ok(Reply { status: STATUS_PENDING, information: 0, effects: Effects::default() });
        };
        let mut full = [0u8; OvpnNotifyEvent::SIZE];
        let n = event.write_to(&mut full).map_err(uapi_status)?;
        let n = n.min(output.len());
        let (dst, src) = (output.get_mut(..n), full.get(..n));
        if let (Some(dst), Some(src)) = (dst, src) {
            dst.copy_from_slice(src);
        }
        self.notifications.pop_front();
        Ok(Reply::done(n))
    }

    /// `OVPN_IOCTL_MP_ADD_IROUTE`: routes a prefix to a peer (replacing the prefix's route to another).
    fn add_iroute(&mut self, input: &[u8]) -> Result<Reply, NTSTATUS> {
        let r = OvpnMpIroute::parse(input).map_err(uapi_status)?;
        let prefix = iroute_prefix(&r)?;
        let id = self.known_peer(r.peer_id)?;
        let existing = self.iroutes.iter().position(|x| x.prefix == prefix);
        if existing.is_none() && self.iroutes.len() >= MAX_IROUTES {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        self.peers.add_route(prefix, id).map_err(|_| STATUS_INVALID_PARAMETER)?;
        match existing.and_then(|i| self.iroutes.get_mut(i)) {
            Some(route) => route.peer_id = id,
            None => self.iroutes.push(Iroute { prefix, peer_id: id }),
        }
        Ok(Reply::done(0))
    }

    /// `OVPN_IOCTL_MP_DEL_IROUTE`: removes a prefix's route. `PeerId` is not read (OpenVPN sends -1). A
    /// prefix with no route succeeds and changes nothing: OpenVPN deletes a client's iroutes after the
    /// peer, whose deletion already dropped them.
    fn del_iroute(&mut self, input: &[u8]) -> Result<Reply, NTSTATUS> {
        let r = OvpnMpIroute::parse(input).map_err(uapi_status)?;
        let prefix = iroute_prefix(&r)?;
        if let Some(i) = self.iroutes.iter().position(|x| x.prefix == prefix) {
            self.peers.remove_route(prefix).map_err(|_| STATUS_INVALID_PARAMETER)?;
            self.iroutes.remove(i);
            self.restore_host_routes(prefix);
        }
        Ok(Reply::done(0))
    }

    /// After an iroute for `prefix` is gone, puts back a peer's tunnel-address host route it had replaced.
    fn restore_host_routes(&mut self, prefix: IpPrefix) {
        let owner = self.info.iter().find_map(|p| {
            let v4 = p.vpn4.map(|a| IpPrefix::V4(a.octets(), 32));
            let v6 = p.vpn6.map(|a| IpPrefix::V6(a.octets(), 128));
            (v4 == Some(prefix) || v6 == Some(prefix)).then_some(p.peer_id)
        });
        if let Some(id) = owner {
            let _ = self.peers.add_route(prefix, id);
        }
    }

    /// `OVPN_IOCTL_GET_PEER_STATS`: one peer's counters, or with `PeerId` -1 every peer's. For all peers a
    /// buffer of 4 bytes or more that cannot hold them gets the size needed as a `DWORD` and
    /// `STATUS_BUFFER_OVERFLOW` (what OpenVPN's `dco_get_peer_stats_multi` asks first).
    fn get_peer_stats(&self, input: &[u8], output: &mut [u8]) -> Result<Reply, NTSTATUS> {
        let r = OvpnGetPeerStats::parse(input).map_err(uapi_status)?;
        if r.peer_id != OvpnGetPeerStats::ALL_PEERS {
            let id = self.known_peer(r.peer_id)?;
            let stats = self.peer_stats(id).ok_or(STATUS_OBJECTID_NOT_FOUND)?;
            return write_reply(&stats, output, OvpnPeerStats::write_to);
        }
        let need = self.info.len() * OvpnPeerStats::SIZE;
        if output.len() < need {
            let Some(head) = output.get_mut(..4) else {
                return Err(STATUS_BUFFER_TOO_SMALL);
            };
            head.copy_from_slice(&u32::try_from(need).unwrap_or(u32::MAX).to_le_bytes());
            return Ok(Reply { status: STATUS_BUFFER_OVERFLOW, information: 4, effects: Effects::default() });
        }
        for (info, chunk) in self.info.iter().zip(output.chunks_exact_mut(OvpnPeerStats::SIZE)) {
            let stats = self.peer_stats(info.peer_id).unwrap_or_default();
            stats.write_to(chunk).map_err(uapi_status)?;
        }
        Ok(Reply::done(need))
    }

    fn peer_stats(&self, id: u32) -> Option<OvpnPeerStats> {
        let info = self.peer_info(id)?;
        let engine = self.peers.peer(id)?.stats();
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Some(OvpnPeerStats {
            peer_id: i32::try_from(id).unwrap_or(-1),
            link_rx_bytes: i(info.link_rx_bytes),
            link_tx_bytes: i(info.link_tx_bytes),
            vpn_rx_bytes: i(engine.rx_bytes),
            vpn_tx_bytes: i(engine.tx_bytes),
        })
    }

    /// `OvpnStopVPN`: every peer, route, queued packet and notification goes, the mode returns to client,
    /// the socket closes, the link goes down and parked reads are cancelled.
    fn stop(&mut self) -> Effects {
        // Dropping the engine's table zeroizes every key.
        self.peers = PeerTable::new();
        self.info.clear();
        self.iroutes.clear();
        self.mode = OvpnMode::P2p;
        self.started = false;
        self.listen = None;
        self.proto = None;
        self.control.clear();
        self.notifications.clear();
        self.disconnect_pending = false;
        Effects {
            link: Some(false),
            open_transport: None,
            close_transport: true,
            cancel_pending: Some(STATUS_CANCELLED),
        }
    }

    /// The handle closes (`EVT_WDF_FILE_CLEANUP`, `OvpnEvtFileCleanup`): as `DEL_PEER` — the peer(s) are
    /// deleted and the tunnel returns to its initial state. PASSIVE_LEVEL.
    pub fn close(&mut self) -> Effects {
        self.stop()
    }

    // -----------------------------------------------------------------------------------------------
    // Control channel
    // -----------------------------------------------------------------------------------------------

    /// `ReadFile` (`OvpnEvtIoRead`): the oldest queued control packet (server mode: with its address
    /// prefix), or [`ReadResult::Pending`]. After a client-mode keepalive timeout the next read fails with
    /// `STATUS_CONNECTION_DISCONNECTED`, once. A buffer too small for the packet is
    /// `STATUS_BUFFER_TOO_SMALL` and the packet stays queued.
    pub fn read(&mut self, out: &mut [u8]) -> Result<ReadResult, NTSTATUS> {
        if self.disconnect_pending {
            self.disconnect_pending = false;
            return Err(STATUS_CONNECTION_DISCONNECTED);
        }
        let Some(packet) = self.control.front() else {
            return Ok(ReadResult::Pending);
        };
        let n = packet.len;
        let (Some(dst), Some(src)) = (out.get_mut(..n), packet.data.get(..n)) else {
            return Err(STATUS_BUFFER_TOO_SMALL);
        };
        dst.copy_from_slice(src);
        self.control.pop_front();
        self.stats.received_control_packets = self.stats.received_control_packets.wrapping_add(1);
        Ok(ReadResult::Complete(n))
    }

    /// `WriteFile` (`OvpnEvtIoWrite`): checks a control packet to send. Client mode needs the peer
    /// (`STATUS_INVALID_DEVICE_STATE`, ovpn-dco-win's answer without a socket); server mode needs the
    /// listen socket and an address prefix (`STATUS_INVALID_ADDRESS` for a family other than
    /// `AF_INET`/`AF_INET6`, `STATUS_INVALID_MESSAGE` when the buffer ends inside or right after the
    /// prefix). An empty packet is `STATUS_INVALID_MESSAGE`, one over [`MAX_CONTROL_PACKET`]
    /// `STATUS_INVALID_BUFFER_SIZE`.
    pub fn write(&mut self, data: &[u8]) -> Result<ControlSend, NTSTATUS> {
        let (to, offset) = match self.mode {
            OvpnMode::P2p => (self.info.first().ok_or(STATUS_INVALID_DEVICE_STATE)?.remote, 0),
            OvpnMode::Mp => {
                if !self.started {
                    return Err(STATUS_INVALID_DEVICE_STATE);
                }
                match sockaddr::split_prefixed(data) {
                    Ok((addr, rest)) => (addr, data.len() - rest.len()),
                    Err(UapiError::BadValue { .. }) => return Err(STATUS_INVALID_ADDRESS),
                    Err(_) => return Err(STATUS_INVALID_MESSAGE),
                }
            }
        };
        let len = data.len() - offset;
        if len == 0 {
            return Err(STATUS_INVALID_MESSAGE);
        }
        if len > MAX_CONTROL_PACKET {
            return Err(STATUS_INVALID_BUFFER_SIZE);
        }
        self.stats.sent_control_packets = self.stats.sent_control_packets.wrapping_add(1);
        Ok(ControlSend { to, offset, len })
    }

    /// The stream transport (TCP) is gone: the peer closed or reset the connection, or its framing broke.
    /// As after a client-mode keepalive timeout, the pending (or next) `ReadFile` fails with
    /// `STATUS_CONNECTION_DISCONNECTED`, once; the glue then retries its parked reads. IRQL <=
    /// DISPATCH_LEVEL.
    pub fn transport_lost(&mut self) {
        if self.mode == OvpnMode::P2p && !self.info.is_empty() {
            self.disconnect_pending = true;
        }
    }

    /// The data path received a control packet from `from`: queues it for `ReadFile` (server mode with
    /// `from` as a `SOCKADDR_IN`/`SOCKADDR_IN6` prefix). A full queue or an oversized packet drops it and
    /// counts `LostInControlPackets` (`STATUS_INSUFFICIENT_RESOURCES` / `STATUS_INVALID_BUFFER_SIZE`).
    /// After `Ok` the glue retries its parked reads with [`Tunnel::read`]. IRQL <= DISPATCH_LEVEL.
    pub fn receive_control(&mut self, from: SocketAddr, packet: &[u8]) -> Result<(), NTSTATUS> {
        let lost = |t: &mut Tunnel, status| {
            t.stats.lost_in_control_packets = t.stats.lost_in_control_packets.wrapping_add(1);
            Err(status)
        };
        if packet.is_empty() || packet.len() > MAX_CONTROL_PACKET {
            return lost(self, STATUS_INVALID_BUFFER_SIZE);
        }
        if self.control.len() >= CONTROL_QUEUE_LEN {
            return lost(self, STATUS_INSUFFICIENT_RESOURCES);
        }
        let mut slot = ControlPacket { len: 0, data: [0; CONTROL_SLOT] };
        slot.len = match self.mode {
            OvpnMode::P2p => {
                if let Some(dst) = slot.data.get_mut(..packet.len()) {
                    dst.copy_from_slice(packet);
                }
                packet.len()
            }
            OvpnMode::Mp => match sockaddr::write_prefixed(&from, packet, &mut slot.data) {
                Ok(n) => n,
                Err(_) => return lost(self, STATUS_INVALID_BUFFER_SIZE),
            },
        };
        self.control.push_back(slot);
        Ok(())
    }

    /// Queues a notification for `NOTIFY_EVENT` (server mode), dropping the oldest when full. Returns
    /// [`Action::Notify`] for the glue.
    pub fn notify(&mut self, event: OvpnNotifyEvent) -> Action {
        if self.notifications.len() >= NOTIFY_QUEUE_LEN {
            self.notifications.pop_front();
            self.notifications_lost = self.notifications_lost.saturating_add(1);
        }
        self.notifications.push_back(event);
        Action::Notify
    }

    /// The data path opened an authenticated packet of `peer_id` from a new outer address (the engine's
    /// `Opened::floated`; the engine already sends there). Records the address and, in server mode,
    /// queues an `OVPN_CMD_FLOAT_PEER` notification with it (returned as [`Action::Notify`]) so OpenVPN
    /// learns the client's new address. Unknown peers are ignored. IRQL <= DISPATCH_LEVEL.
    pub fn peer_floated(&mut self, peer_id: u32, to: SocketAddr) -> Option<Action> {
        let info = self.info.iter_mut().find(|p| p.peer_id == peer_id)?;
        if info.remote == to {
            return None;
        }
        info.remote = to;
        if let Some(peer) = self.peers.peer_mut(peer_id) {
            peer.set_remote(Some(endpoint(to)));
        }
        if self.mode != OvpnMode::Mp {
            return None;
        }
        Some(self.notify(OvpnNotifyEvent {
            cmd: OvpnNotifyCmd::FloatPeer,
            peer_id: i32::try_from(peer_id).unwrap_or(-1),
            del_peer_reason: OvpnDelPeerReason::Teardown,
            float_address: Some(to),
        }))
    }

    // -----------------------------------------------------------------------------------------------
    // Timers
    // -----------------------------------------------------------------------------------------------

    /// Runs the keepalive timers at `now`, calling `f` for each thing to do. A timed-out client peer
    /// makes the next read fail with `STATUS_CONNECTION_DISCONNECTED` ([`Action::WakeReads`]); a
    /// timed-out server peer is deleted and a `DEL_PEER` notification (reason `EXPIRED`) queued
    /// ([`Action::PeerExpired`], [`Action::Notify`]). IRQL <= DISPATCH_LEVEL (a timer DPC).
    pub fn poll(&mut self, now: Instant, mut f: impl FnMut(Action)) {
        // On the stack (1 KiB): a timer DPC allocates nothing.
        let mut expired: ArrayVec<u32, MAX_PEERS> = ArrayVec::new();
        let mode = self.mode;
        let mut wake = false;
        self.peers.poll(now, |id, action| match action {
            KeepaliveAction::SendPing => f(Action::SendPing(id)),
            KeepaliveAction::Timeout if mode == OvpnMode::P2p => wake = true,
            KeepaliveAction::Timeout => {
                // The table never holds more than MAX_PEERS peers, so this always fits.
                let _ = expired.try_push(id);
            }
            KeepaliveAction::Idle => {}
        });
        if wake {
            self.disconnect_pending = true;
            f(Action::WakeReads);
        }
        for id in expired {
            self.remove_peer(id);
            f(Action::PeerExpired(id));
            let event = OvpnNotifyEvent {
                cmd: OvpnNotifyCmd::DelPeer,
                peer_id: i32::try_from(id).unwrap_or(-1),
                del_peer_reason: OvpnDelPeerReason::Expired,
                float_address: None,
            };
            f(self.notify(event));
        }
    }
}

/// Which IOCTLs each mode accepts (`OvpnDeviceCheckMode`: client calls are refused in server mode, and
/// `MP_START_VPN`/`MP_NEW_PEER` in client mode; rdco refuses the other `MP_*` calls and
/// `NOTIFY_EVENT`, which only OpenVPN's server uses, in client mode the same way).
fn mode_allows(mode: OvpnMode, ioctl: OvpnIoctl) -> bool {
    use OvpnIoctl as I;
    match mode {
        OvpnMode::Mp => !matches!(ioctl, I::NewPeer | I::DelPeer | I::SwapKeys | I::SetPeer | I::StartVpn),
        OvpnMode::P2p => !matches!(
            ioctl,
            I::MpStartVpn
                | I::MpNewPeer
                | I::MpSetPeer
                | I::NotifyEvent
                | I::MpDelPeer
                | I::MpSwapKeys
                | I::MpAddIroute
                | I::MpDelIroute
        ),
    }
}

/// Writes a fixed-size answer (`STATUS_BUFFER_TOO_SMALL` if the output cannot hold it).
fn write_reply<T>(
    value: &T,
    output: &mut [u8],
    write: fn(&T, &mut [u8]) -> Result<usize, UapiError>,
) -> Result<Reply, NTSTATUS> {
    write(value, output).map(Reply::done).map_err(uapi_status)
}
