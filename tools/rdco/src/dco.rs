//! `rdco dco ...`: an ovpn-dco-cli-style test bed for the miniport's ovpn-dco-win control API.
//!
//! ovpn-dco-win's own test client (`ovpn-cli/ovpn-dco-cli.cpp` in `OpenVPN/ovpn-dco-win`) takes the transport,
//! the local and remote addresses, a `data64.key` file and a key direction, and drives the adapter with
//! `NEW_PEER`, `NEW_KEY`, `SET_PEER` and `START_VPN` on one handle that it keeps open (closing the handle
//! deletes the peer). `rdco dco client` does the same with named options, and `rdco dco server` does the
//! multipeer equivalent (`SET_MODE`, `MP_START_VPN`, `MP_NEW_PEER`, keys, `MP_SET_PEER`, `MP_ADD_IROUTE`).
//! Every request is built with `uapi::ovpn`; `--dry-run` prints them (`NAME hex`) instead of sending.
//!
//! Transport: `DeviceIoControl` on `\\.\ovpn-dco` (and `\\.\ovpn-dco-ver` for the version) on Windows;
//! elsewhere a simulated machine's control socket (`--sim-socket` or `RDCO_SIM_SOCKET`), like `rdco filter`.
//! NOTE: the simulated miniport does not expose its control device yet (its NetAdapterCx device creation is
//! being built), so against the simulated kernel the open fails with `STATUS_OBJECT_NAME_NOT_FOUND` for
//! now; the request building and the error paths are what the tests check today.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use datapath::keyfile::KeyFile;
use uapi::ovpn::{
    OvpnCipherAlg, OvpnCryptoData, OvpnGetPeerStats, OvpnIoctl, OvpnKeyDirection, OvpnKeySlot, OvpnMode,
    OvpnMpIroute, OvpnMpNewPeer, OvpnMpSetPeer, OvpnMpStartVpn, OvpnNewPeer, OvpnPeerStats, OvpnProto,
    OvpnSetMode, OvpnSetPeer, OvpnStats, OvpnVersion,
};
use uapi::Wire;

use crate::filter::{open_device, status_name, Device};
use crate::Fail;

/// The most peers `GET_PEER_STATS` is asked about at once (the miniport's own limit).
const MAX_STATS_PEERS: usize = 256;

#[derive(Args, Debug)]
pub struct DcoArgs {
    /// The simulated machine's control socket (Linux); default: $RDCO_SIM_SOCKET.
    #[arg(long, value_name = "PATH", global = true)]
    sim_socket: Option<PathBuf>,
    /// Print the requests (`IOCTL_NAME hex-input`, one per line) instead of sending them.
    #[arg(long, global = true)]
    dry_run: bool,
    #[command(subcommand)]
    command: DcoCommand,
}

#[derive(Subcommand, Debug)]
enum DcoCommand {
    /// Ask the driver's version (OVPN_IOCTL_GET_VERSION on the version device).
    Version,
    /// Client (point-to-point) mode: one peer, its key, keepalive, then start; hold the handle open.
    Client(ClientArgs),
    /// Server (multipeer) mode: listen socket, peers with keys, keepalive and iroutes; hold the handle open.
    Server(ServerArgs),
}

#[derive(Args, Debug)]
struct KeyOpts {
    /// Key file (`data64.key`: base64 of key A, key B, nonce tail).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Key direction: 0 encrypts with key A and decrypts with B, 1 the reverse.
    #[arg(long, value_name = "0|1")]
    direction: u8,
    /// aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-poly1305 or none.
    #[arg(long, default_value = "aes-256-gcm")]
    cipher: String,
    /// Key id, 0..=7.
    #[arg(long, value_name = "N", default_value_t = 0)]
    key_id: u8,
    /// Keepalive `INTERVAL,TIMEOUT` in seconds (0 = off), e.g. `10,60`.
    #[arg(long, value_name = "I,T")]
    keepalive: Option<String>,
    /// Clamp the TCP MSS of tunnelled connections to this (0 = off).
    #[arg(long, value_name = "BYTES")]
    mss: Option<u16>,
    /// Keep the handle (and so the tunnel) open this long, then print statistics and exit; default: until
    /// standard input closes.
    #[arg(long, value_name = "MS")]
    hold_ms: Option<u64>,
}

#[derive(Args, Debug)]
struct ClientArgs {
    /// The server's address, e.g. 192.0.2.1:1194.
    #[arg(long, value_name = "ADDR:PORT")]
    remote: SocketAddr,
    /// Local address to bind (default: the unspecified address of the remote's family, port 0).
    #[arg(long, value_name = "ADDR:PORT")]
    local: Option<SocketAddr>,
    /// udp or tcp.
    #[arg(long, default_value = "udp")]
    proto: String,
    /// Our peer id (the one the server assigned), 0..=0xFFFFFF.
    #[arg(long, value_name = "N", default_value_t = 0)]
    peer_id: u32,
    #[command(flatten)]
    key: KeyOpts,
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Listen address, e.g. 0.0.0.0:1194.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Listen on IPv6 only.
    #[arg(long)]
    ipv6_only: bool,
    /// A peer: `ID=REMOTE[,VPN4][,VPN6]`, e.g. `1=198.51.100.7:40000,10.8.0.2,fd00::2`. Repeatable.
    #[arg(long = "peer", value_name = "SPEC", required = true)]
    peers: Vec<String>,
    /// An iroute: `PREFIX=ID`, e.g. `192.168.10.0/24=1`. Repeatable.
    #[arg(long = "iroute", value_name = "SPEC")]
    iroutes: Vec<String>,
    #[command(flatten)]
    key: KeyOpts,
}

/// One request to send.
struct Request {
    ioctl: OvpnIoctl,
    input: Vec<u8>,
    output_len: usize,
}

fn encode<T: Wire>(value: &T) -> Vec<u8> {
    let mut out = vec![0u8; T::SIZE];
    // A zeroed buffer of SIZE bytes always takes the structure.
    let _ = value.write_to(&mut out);
    out
}

fn req<T: Wire>(ioctl: OvpnIoctl, value: &T) -> Request {
    Request { ioctl, input: encode(value), output_len: ioctl.output_len() }
}

fn peer_id(id: u32) -> Result<i32, Fail> {
    if id > 0x00FF_FFFF {
        return Err(Fail(format!("peer id must be at most 0xFFFFFF, not {id}")));
    }
    i32::try_from(id).map_err(|_| Fail(format!("bad peer id {id}")))
}

fn proto(text: &str) -> Result<OvpnProto, Fail> {
    match text {
        "udp" => Ok(OvpnProto::Udp),
        "tcp" => Ok(OvpnProto::Tcp),
        other => Err(Fail(format!("--proto must be udp or tcp, not '{other}'"))),
    }
}

fn keepalive(text: Option<&String>) -> Result<Option<(i32, i32)>, Fail> {
    let Some(text) = text else { return Ok(None) };
    let bad = || Fail(format!("bad --keepalive '{text}': expected INTERVAL,TIMEOUT in seconds"));
    let (i, t) = text.split_once(',').ok_or_else(bad)?;
    let i: i32 = i.trim().parse().map_err(|_| bad())?;
    let t: i32 = t.trim().parse().map_err(|_| bad())?;
    if i < 0 || t < 0 {
        return Err(bad());
    }
    Ok(Some((i, t)))
}

/// The key pair of a data64.key file as an `OVPN_CRYPTO_DATA` for `peer`.
fn key_data(opts: &KeyOpts, peer: i32) -> Result<OvpnCryptoData, Fail> {
    let (alg, key_len) = match opts.cipher.as_str() {
        "aes-128-gcm" => (OvpnCipherAlg::AesGcm, 16),
        "aes-192-gcm" => (OvpnCipherAlg::AesGcm, 24),
        "aes-256-gcm" => (OvpnCipherAlg::AesGcm, 32),
        "chacha20-poly1305" => (OvpnCipherAlg::ChaCha20Poly1305, 32),
        "none" => (OvpnCipherAlg::None, 0),
        other => {
            return Err(Fail(format!(
                "unknown cipher '{other}' (expected aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-poly1305 or none)"
            )))
        }
    };
    if opts.key_id > uapi::ovpn::KEY_ID_MAX {
        return Err(Fail(format!("--key-id must be 0..=7, not {}", opts.key_id)));
    }
    if opts.direction > 1 {
        return Err(Fail(format!("--direction must be 0 or 1, not {}", opts.direction)));
    }
    let text = std::fs::read(&opts.key).map_err(|e| Fail(format!("key file {}: {e}", opts.key.display())))?;
    let file = KeyFile::parse(&text).map_err(|e| Fail(format!("key file {}: {e}", opts.key.display())))?;
    let (enc, dec) = file.directions(opts.direction).map_err(|e| Fail(e.to_string()))?;
    let dir = |d: &datapath::KeyDirection| OvpnKeyDirection { key: d.key, key_len, nonce_tail: d.nonce_tail };
    Ok(OvpnCryptoData {
        encrypt: dir(&enc),
        decrypt: dir(&dec),
        key_slot: OvpnKeySlot::Primary,
        cipher_alg: alg,
        key_id: opts.key_id,
        peer_id: peer,
    })
}

/// `ID=REMOTE[,VPN4][,VPN6]`.
fn parse_peer(spec: &str) -> Result<OvpnMpNewPeer, Fail> {
    let bad = |why: &str| Fail(format!("bad --peer '{spec}': {why} (expected ID=REMOTE[,VPN4][,VPN6])"));
    let (id, rest) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
    let id: u32 = id.trim().parse().map_err(|_| bad("bad peer id"))?;
    let mut parts = rest.split(',');
    let remote: SocketAddr =
        parts.next().unwrap_or("").trim().parse().map_err(|_| bad("bad remote address"))?;
    let mut vpn4 = Ipv4Addr::UNSPECIFIED;
    let mut vpn6 = Ipv6Addr::UNSPECIFIED;
    for p in parts {
        match p.trim().parse::<IpAddr>().map_err(|_| bad("bad tunnel address"))? {
            IpAddr::V4(a) => vpn4 = a,
            IpAddr::V6(a) => vpn6 = a,
        }
    }
    let local = if remote.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    Ok(OvpnMpNewPeer {
        local,
        remote,
        vpn_addr4: vpn4,
        vpn_addr6: vpn6,
        peer_id: peer_id(id).map_err(|e| bad(&e.0))?,
    })
}

/// `PREFIX=ID`.
fn parse_iroute(spec: &str) -> Result<OvpnMpIroute, Fail> {
    let bad = |why: &str| Fail(format!("bad --iroute '{spec}': {why} (expected ADDR/LEN=ID)"));
    let (prefix, id) = spec.split_once('=').ok_or_else(|| bad("no '='"))?;
    let (addr, len) = prefix.split_once('/').ok_or_else(|| bad("no '/'"))?;
    let addr: IpAddr = addr.trim().parse().map_err(|_| bad("bad address"))?;
    let netbits: u8 = len.trim().parse().map_err(|_| bad("bad length"))?;
    if netbits > if addr.is_ipv4() { 32 } else { 128 } {
        return Err(bad("length too long for the family"));
    }
    let id: u32 = id.trim().parse().map_err(|_| bad("bad peer id"))?;
    Ok(OvpnMpIroute { addr, netbits, peer_id: peer_id(id).map_err(|e| bad(&e.0))? })
}

fn client_requests(a: &ClientArgs) -> Result<Vec<Request>, Fail> {
    let proto = proto(&a.proto)?;
    let local = a.local.unwrap_or_else(|| match a.remote {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    });
    if local.is_ipv4() != a.remote.is_ipv4() {
        return Err(Fail("--local and --remote must be of the same address family".into()));
    }
    if a.remote.ip().is_unspecified() || a.remote.port() == 0 {
        return Err(Fail(format!("--remote {} is not a usable address", a.remote)));
    }
    let id = peer_id(a.peer_id)?;
    let key = key_data(&a.key, id)?;
    let mut out = vec![
        req(OvpnIoctl::NewPeer, &OvpnNewPeer { local, remote: a.remote, proto }),
        req(OvpnIoctl::NewKey, &key),
    ];
    let ka = keepalive(a.key.keepalive.as_ref())?;
    if ka.is_some() || a.key.mss.is_some() {
        let (i, t) = ka.unwrap_or((-1, -1));
        let mss = a.key.mss.map_or(-1, i32::from);
        out.push(req(OvpnIoctl::SetPeer, &OvpnSetPeer { keepalive_interval: i, keepalive_timeout: t, mss }));
    }
    out.push(Request { ioctl: OvpnIoctl::StartVpn, input: Vec::new(), output_len: 0 });
    Ok(out)
}

fn server_requests(a: &ServerArgs) -> Result<Vec<Request>, Fail> {
    let peers = a.peers.iter().map(|p| parse_peer(p)).collect::<Result<Vec<_>, _>>()?;
    let iroutes = a.iroutes.iter().map(|r| parse_iroute(r)).collect::<Result<Vec<_>, _>>()?;
    for r in &iroutes {
        if !peers.iter().any(|p| p.peer_id == r.peer_id) {
            return Err(Fail(format!("--iroute names peer {} which no --peer defines", r.peer_id)));
        }
    }
    let ka = keepalive(a.key.keepalive.as_ref())?;
    let mut out = vec![
        req(OvpnIoctl::SetMode, &OvpnSetMode { mode: OvpnMode::Mp }),
        req(OvpnIoctl::MpStartVpn, &OvpnMpStartVpn { listen_address: a.listen, ipv6_only: a.ipv6_only }),
    ];
    for p in &peers {
        out.push(req(OvpnIoctl::MpNewPeer, p));
        out.push(req(OvpnIoctl::NewKey, &key_data(&a.key, p.peer_id)?));
        if ka.is_some() || a.key.mss.is_some() {
            let (i, t) = ka.unwrap_or((-1, -1));
            let mss = a.key.mss.map_or(-1, i32::from);
            let set = OvpnMpSetPeer { peer_id: p.peer_id, keepalive_interval: i, keepalive_timeout: t, mss };
            out.push(req(OvpnIoctl::MpSetPeer, &set));
        }
    }
    for r in &iroutes {
        out.push(req(OvpnIoctl::MpAddIroute, r));
    }
    Ok(out)
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn send(dev: &mut dyn Device, r: &Request) -> Result<Vec<u8>, Fail> {
    match dev.ioctl(r.ioctl.code(), &r.input, r.output_len, 0)? {
        None => Err(Fail(format!("{}: no reply", r.ioctl.name()))),
        Some((status, _)) if status < 0 => {
            Err(Fail(format!("{} failed: {}", r.ioctl.name(), status_name(status))))
        }
        Some((_, out)) => Ok(out),
    }
}

fn hold(ms: Option<u64>) {
    match ms {
        Some(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
        None => {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        }
    }
}

fn print_stats(s: &OvpnStats) {
    let rows: [(&str, i64); 12] = [
        ("lost_in_control_packets", s.lost_in_control_packets.into()),
        ("lost_out_control_packets", s.lost_out_control_packets.into()),
        ("lost_in_data_packets", s.lost_in_data_packets.into()),
        ("lost_out_data_packets", s.lost_out_data_packets.into()),
        ("received_data_packets", s.received_data_packets.into()),
        ("received_control_packets", s.received_control_packets.into()),
        ("sent_control_packets", s.sent_control_packets.into()),
        ("sent_data_packets", s.sent_data_packets.into()),
        ("transport_bytes_sent", s.transport_bytes_sent),
        ("transport_bytes_received", s.transport_bytes_received),
        ("tun_bytes_sent", s.tun_bytes_sent),
        ("tun_bytes_received", s.tun_bytes_received),
    ];
    for (name, value) in rows {
        println!("{name} {value}");
    }
}

/// Runs one `rdco dco` subcommand.
pub fn run(args: &DcoArgs) -> Result<(), Fail> {
    // Validate everything and build every request before touching the device.
    let (requests, key_hold, server) = match &args.command {
        DcoCommand::Version => {
            let r =
                Request { ioctl: OvpnIoctl::GetVersion, input: Vec::new(), output_len: OvpnVersion::SIZE };
            if args.dry_run {
                println!("{} {}", r.ioctl.name(), hex(&r.input));
                return Ok(());
            }
            let mut dev = open_device(args.sim_socket.as_ref(), uapi::names::OVPN_DCO_VER_USER_PATH)?;
            let out = send(dev.as_mut(), &r)?;
            let v = OvpnVersion::parse(&out).map_err(|e| Fail(format!("bad version reply: {e}")))?;
            println!("{}.{}.{}", v.major, v.minor, v.patch);
            return Ok(());
        }
        DcoCommand::Client(a) => (client_requests(a)?, a.key.hold_ms, false),
        DcoCommand::Server(a) => (server_requests(a)?, a.key.hold_ms, true),
    };
    if args.dry_run {
        for r in &requests {
            println!("{} {}", r.ioctl.name(), hex(&r.input));
        }
        return Ok(());
    }
    // One handle for the whole session: closing it deletes the peer(s).
    let mut dev = open_device(args.sim_socket.as_ref(), uapi::names::OVPN_DCO_USER_PATH)?;
    for r in &requests {
        let out = send(dev.as_mut(), r)?;
        if r.ioctl == OvpnIoctl::MpStartVpn {
            if let Ok(bound) = OvpnMpStartVpn::parse(&out) {
                println!("listening on {}", bound.listen_address);
            }
        }
    }
    println!("tunnel up");
    hold(key_hold);
    let stats = Request { ioctl: OvpnIoctl::GetStats, input: Vec::new(), output_len: OvpnStats::SIZE };
    let out = send(dev.as_mut(), &stats)?;
    print_stats(&OvpnStats::parse(&out).map_err(|e| Fail(format!("bad statistics reply: {e}")))?);
    if server {
        let all = Request {
            ioctl: OvpnIoctl::GetPeerStats,
            input: encode(&OvpnGetPeerStats { peer_id: OvpnGetPeerStats::ALL_PEERS }),
            output_len: MAX_STATS_PEERS * OvpnPeerStats::SIZE,
        };
        let out = send(dev.as_mut(), &all)?;
        for chunk in out.chunks_exact(OvpnPeerStats::SIZE) {
            if let Ok(p) = OvpnPeerStats::parse(chunk) {
                println!(
                    "peer {} link_rx {} link_tx {} vpn_rx {} vpn_tx {}",
                    p.peer_id, p.link_rx_bytes, p.link_tx_bytes, p.vpn_rx_bytes, p.vpn_tx_bytes
                );
            }
        }
    }
    Ok(())
}
