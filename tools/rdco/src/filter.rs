//! `rdco filter ...`: configures the lightweight filter through its control device.
//!
//! Transport: on Windows `CreateFileW(\\.\rdcofilter)` + `DeviceIoControl` (compile-gated, untested on
//! these Linux machines); elsewhere the control socket of a simulated machine (`--sim-socket PATH` or
//! `RDCO_SIM_SOCKET`; protocol in docs/testing.md, "The control socket").
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use datapath::keyfile::KeyFile;
use uapi::ovpn::{
    OvpnCipherAlg, OvpnCryptoData, OvpnCryptoDataV2, OvpnKeyDirection, OvpnKeySlot, CRYPTO_OPTIONS_EPOCH,
};
use uapi::rdco_filter::hold_policy as o;
use uapi::rdco_filter::{
    RdcoAddPeer, RdcoEvent, RdcoFilterIoctl, RdcoHoldPolicy, RdcoKeepalive, RdcoModuleList, RdcoNewKey,
    RdcoPeerRef, RdcoPeerRoutes, RdcoPrefix, RdcoSetPolicy, RdcoStats, RdcoStatsQuery, ALL_PEERS,
    HOLD_BUDGET_MS, HOLD_BUDGET_NBLS, HOLD_CEILING_BYTES, HOLD_COPY_MAX_AGE_MS,
};
use uapi::Wire;

use crate::Fail;

#[derive(Args, Debug)]
pub struct FilterArgs {
    /// The simulated machine's control socket (Linux); default: $RDCO_SIM_SOCKET.
    #[arg(long, value_name = "PATH", global = true)]
    sim_socket: Option<PathBuf>,
    #[command(subcommand)]
    command: FilterCommand,
}

#[derive(Subcommand, Debug)]
enum FilterCommand {
    /// The tunnel policy (diverted inner destination prefixes).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Peers.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Keepalive and MSS clamp.
    #[command(subcommand)]
    Keepalive(KeepaliveCommand),
    /// The hold policy (when diverted NBLs stop being held and are deep-copied).
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Print a peer's statistics, one module's, or the driver-wide totals.
    Stats {
        /// Peer id; omitted: the driver-wide totals (or the module of --module).
        #[arg(long, value_name = "N", conflicts_with = "module")]
        peer_id: Option<u32>,
        /// The module above the NIC with this interface index (see `rdco filter modules`).
        #[arg(long, value_name = "IFINDEX", value_parser = clap::value_parser!(u32).range(1..))]
        module: Option<u32>,
    },
    /// List the filter's modules (one per NIC it is attached to): IfIndex, state, LUID, NIC name.
    Modules,
    /// Wait for events and print one per line.
    Events {
        /// How many events to read before exiting.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Give up after this many milliseconds (0: wait forever).
        #[arg(long, value_name = "MS", default_value_t = 0)]
        timeout_ms: u64,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Set the policy to these prefixes (replacing it), e.g. `10.8.0.0/24 fd00::/64`.
    Add {
        #[arg(required = true, value_name = "PREFIX")]
        prefixes: Vec<String>,
    },
    /// Clear the policy (divert nothing).
    Clear,
    /// List the policy: not available — the control API has no policy query.
    List,
}

#[derive(Subcommand, Debug)]
enum PeerCommand {
    /// Add a peer.
    Add {
        #[arg(long, value_name = "N")]
        peer_id: u32,
        /// The peer's UDP endpoint, e.g. 192.0.2.1:1194.
        #[arg(long, value_name = "ADDR:PORT")]
        remote: SocketAddr,
        /// Local address for the socket (default: the unspecified address of the remote's family).
        #[arg(long, value_name = "ADDR:PORT")]
        local: Option<SocketAddr>,
    },
    /// Remove a peer.
    Del {
        #[arg(long, value_name = "N")]
        peer_id: u32,
    },
    /// Set the inner prefixes routed to a peer (replacing its routes; none: remove them), e.g.
    /// `rdco filter peer routes --peer-id 2 10.2.0.0/16 fd00:2::/64`. The longest prefix wins.
    Routes {
        #[arg(long, value_name = "N")]
        peer_id: u32,
        #[arg(value_name = "PREFIX")]
        prefixes: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Install a key pair from a data64.key file.
    New {
        #[arg(long, value_name = "N")]
        peer_id: u32,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// 0 encrypts with key A and decrypts with B, 1 the reverse.
        #[arg(long, value_name = "0|1")]
        direction: u8,
        /// aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-poly1305 or none.
        #[arg(long)]
        cipher: String,
        #[arg(long, value_name = "N", default_value_t = 0)]
        key_id: u8,
        /// primary or secondary.
        #[arg(long, default_value = "primary")]
        slot: String,
        /// Epoch data keys (CRYPTO_OPTIONS_EPOCH).
        #[arg(long)]
        epoch: bool,
    },
    /// Swap a peer's primary and secondary keys.
    Swap {
        #[arg(long, value_name = "N")]
        peer_id: u32,
    },
}

#[derive(Subcommand, Debug)]
enum KeepaliveCommand {
    /// Set keepalive interval and timeout (seconds, 0 = off) and the MSS clamp.
    Set {
        #[arg(long, value_name = "N")]
        peer_id: u32,
        #[arg(long, value_name = "S")]
        interval: u32,
        #[arg(long, value_name = "S")]
        timeout: u32,
        #[arg(long, value_name = "BYTES", default_value_t = 0)]
        mss: u16,
    },
}

#[derive(Subcommand, Debug)]
enum HoldCommand {
    /// Print the hold policy in force, one `name value` line per field.
    Show,
    /// Change some of the hold policy's fields (the others keep their current values).
    Set {
        /// Originals queued before the next one is deep-copied (1..=1048576).
        #[arg(long, value_name = "N")]
        budget_nbls: Option<u32>,
        /// Milliseconds an original may wait in the queue before it is deep-copied (1..=60000).
        #[arg(long, value_name = "MS")]
        budget_ms: Option<u32>,
        /// Payload bytes held in deep copies at once across the driver (2048..=1073741824).
        #[arg(long, value_name = "BYTES")]
        ceiling_bytes: Option<u32>,
        /// Milliseconds a deep copy waits for the transport before it is dropped (100..=600000).
        #[arg(long, value_name = "MS")]
        copy_max_age_ms: Option<u32>,
    },
}

/// `NTSTATUS` names for the statuses the filter and the miniport return.
pub(crate) fn status_name(status: i32) -> String {
    #[allow(clippy::cast_sign_loss)]
    let name = match status as u32 {
        0xC000_0023 => "STATUS_BUFFER_TOO_SMALL",
        0xC000_000D => "STATUS_INVALID_PARAMETER",
        0xC000_0184 => "STATUS_INVALID_DEVICE_STATE",
        0xC000_0225 => "STATUS_NOT_FOUND",
        0xC000_0035 => "STATUS_OBJECT_NAME_COLLISION",
        0xC000_0010 => "STATUS_INVALID_DEVICE_REQUEST",
        0xC000_009A => "STATUS_INSUFFICIENT_RESOURCES",
        0xC000_00A3 => "STATUS_DEVICE_NOT_READY",
        0xC000_0120 => "STATUS_CANCELLED",
        0xC000_0034 => "STATUS_OBJECT_NAME_NOT_FOUND",
        0xC000_0008 => "STATUS_INVALID_HANDLE",
        0xC000_022B => "STATUS_OBJECTID_EXISTS",
        0xC000_02F0 => "STATUS_OBJECTID_NOT_FOUND",
        0xC000_0510 => "STATUS_ALREADY_INITIALIZED",
        0xC000_020C => "STATUS_CONNECTION_DISCONNECTED",
        0xC000_0236 => "STATUS_CONNECTION_REFUSED",
        0x8000_0005 => "STATUS_BUFFER_OVERFLOW",
        _ => "",
    };
    #[allow(clippy::cast_sign_loss)]
    let code = status as u32;
    if name.is_empty() {
        format!("status {code:#010x}")
    } else {
        format!("{name} ({code:#010x})")
    }
}

/// One open handle on a control device.
pub(crate) trait Device {
    /// `DeviceIoControl`: the final status and the bytes returned. `Ok(None)` on a timeout.
    fn ioctl(
        &mut self,
        code: u32,
        input: &[u8],
        output_len: usize,
        timeout_ms: u64,
    ) -> Result<Option<(i32, Vec<u8>)>, Fail>;
}

#[cfg(unix)]
pub(crate) mod sim {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use super::{status_name, Fail};

    const OPEN: u8 = 1;
    const IOCTL: u8 = 2;
    const CLOSE: u8 = 5;

    pub struct Sim {
        stream: UnixStream,
        handle: u64,
    }

    fn send(stream: &mut UnixStream, op: u8, body: &[u8]) -> Result<(), Fail> {
        let len = u32::try_from(body.len() + 1).map_err(|_| Fail("request too large".into()))?;
        let mut frame = Vec::with_capacity(5 + body.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.push(op);
        frame.extend_from_slice(body);
        stream.write_all(&frame).map_err(|e| Fail(format!("control socket: {e}")))
    }

    /// `Ok(None)` on a read timeout.
    fn receive(stream: &mut UnixStream) -> Result<Option<(i32, u64, Vec<u8>)>, Fail> {
        let mut len = [0u8; 4];
        match stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Ok(None)
            }
            Err(e) => return Err(Fail(format!("control socket: {e}"))),
        }
        let len = u32::from_le_bytes(len) as usize;
        if !(12..=1 << 20).contains(&len) {
            return Err(Fail(format!("control socket: bad reply length {len}")));
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).map_err(|e| Fail(format!("control socket: {e}")))?;
        let status = i32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        let mut info = [0u8; 8];
        info.copy_from_slice(&body[4..12]);
        Ok(Some((status, u64::from_le_bytes(info), body.split_off(12))))
    }

    impl Sim {
        pub fn open(path: &std::path::Path, name: &str) -> Result<Sim, Fail> {
            let mut stream = UnixStream::connect(path)
                .map_err(|e| Fail(format!("cannot connect to the control socket {}: {e}", path.display())))?;
            send(&mut stream, OPEN, name.as_bytes())?;
            let (status, handle, _) =
                receive(&mut stream)?.ok_or_else(|| Fail("control socket: no reply".into()))?;
            if status < 0 {
                return Err(Fail(format!("cannot open {name}: {}", status_name(status))));
            }
            Ok(Sim { stream, handle })
        }
    }

    impl super::Device for Sim {
        fn ioctl(
            &mut self,
            code: u32,
            input: &[u8],
            output_len: usize,
            timeout_ms: u64,
        ) -> Result<Option<(i32, Vec<u8>)>, Fail> {
            let mut body = Vec::with_capacity(16 + input.len());
            body.extend_from_slice(&self.handle.to_le_bytes());
            body.extend_from_slice(&code.to_le_bytes());
            body.extend_from_slice(&u32::try_from(output_len).unwrap_or(u32::MAX).to_le_bytes());
            body.extend_from_slice(input);
            send(&mut self.stream, IOCTL, &body)?;
            let timeout = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms));
            self.stream.set_read_timeout(timeout).map_err(|e| Fail(format!("control socket: {e}")))?;
            Ok(receive(&mut self.stream)?.map(|(s, _, d)| (s, d)))
        }
    }

    impl Drop for Sim {
        fn drop(&mut self) {
            let _ = self.stream.set_read_timeout(Some(Duration::from_secs(5)));
            if send(&mut self.stream, CLOSE, &self.handle.to_le_bytes()).is_ok() {
                let _ = receive(&mut self.stream);
            }
        }
    }
}

#[cfg(windows)]
pub(crate) mod win {
    //! `CreateFileW` + `DeviceIoControl` (untested here: these machines have no Windows).
    use windows_sys::Win32::Foundation::{CloseHandle, GetLastError, HANDLE, INVALID_HANDLE_VALUE};
    use windows_sys::Win32::Storage::FileSystem::{
        CreateFileW, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
    };
    use windows_sys::Win32::System::IO::DeviceIoControl;

    use super::Fail;

    const GENERIC_READ: u32 = 0x8000_0000;
    const GENERIC_WRITE: u32 = 0x4000_0000;

    pub struct Win(HANDLE);

    impl Win {
        pub fn open(path: &str) -> Result<Win, Fail> {
            let wide: Vec<u16> = path.encode_utf16().chain(Some(0)).collect();
            // SAFETY: `wide` is NUL-terminated and outlives the call; the other arguments are plain values.
            let h = unsafe {
                CreateFileW(
                    wide.as_ptr(),
                    GENERIC_READ | GENERIC_WRITE,
                    FILE_SHARE_READ | FILE_SHARE_WRITE,
                    std::ptr::null(),
                    OPEN_EXISTING,
                    0,
                    0 as HANDLE,
                )
            };
            if h == INVALID_HANDLE_VALUE {
                // SAFETY: no preconditions.
                let e = unsafe { GetLastError() };
                return Err(Fail(format!("cannot open {path}: Win32 error {e}")));
            }
            Ok(Win(h))
        }
    }

    impl super::Device for Win {
        fn ioctl(
            &mut self,
            code: u32,
            input: &[u8],
            output_len: usize,
            _timeout_ms: u64,
        ) -> Result<Option<(i32, Vec<u8>)>, Fail> {
            let mut out = vec![0u8; output_len];
            let mut returned = 0u32;
            // SAFETY: the buffers are valid for their lengths for the duration of this synchronous call.
            let ok = unsafe {
                DeviceIoControl(
                    self.0,
                    code,
                    input.as_ptr().cast(),
                    u32::try_from(input.len()).unwrap_or(u32::MAX),
                    out.as_mut_ptr().cast(),
                    u32::try_from(output_len).unwrap_or(u32::MAX),
                    &mut returned,
                    std::ptr::null_mut(),
                )
            };
            if ok == 0 {
                // SAFETY: no preconditions.
                let e = unsafe { GetLastError() };
                return Err(Fail(format!("DeviceIoControl failed: Win32 error {e}")));
            }
            out.truncate(returned as usize);
            Ok(Some((0, out)))
        }
    }

    impl Drop for Win {
        fn drop(&mut self) {
            // SAFETY: the handle came from CreateFileW and is closed once.
            unsafe { CloseHandle(self.0) };
        }
    }
}

fn open(args: &FilterArgs) -> Result<Box<dyn Device>, Fail> {
    open_device(args.sim_socket.as_ref(), uapi::names::FILTER_USER_PATH)
}

/// Opens the control device at `path` (`\\.\name`): `CreateFileW` on Windows, the simulated machine's
/// control socket elsewhere (`sim_socket` or `RDCO_SIM_SOCKET`).
pub(crate) fn open_device(sim_socket: Option<&PathBuf>, path: &str) -> Result<Box<dyn Device>, Fail> {
    #[cfg(windows)]
    {
        let _ = sim_socket;
        Ok(Box::new(win::Win::open(path)?))
    }
    #[cfg(unix)]
    {
        let socket = sim_socket
            .cloned()
            .or_else(|| std::env::var_os("RDCO_SIM_SOCKET").map(PathBuf::from))
            .ok_or_else(|| {
            Fail("no control device here: give --sim-socket PATH or set RDCO_SIM_SOCKET".into())
        })?;
        Ok(Box::new(sim::Sim::open(&socket, path)?))
    }
}

fn encode<T: Wire>(value: &T) -> Vec<u8> {
    let mut out = vec![0u8; T::SIZE];
    // A zeroed buffer of SIZE bytes always takes the structure.
    let _ = value.write_to(&mut out);
    out
}

fn call(
    dev: &mut dyn Device,
    ioctl: RdcoFilterIoctl,
    input: &[u8],
    timeout_ms: u64,
) -> Result<Option<Vec<u8>>, Fail> {
    match dev.ioctl(ioctl.code(), input, ioctl.output_len(), timeout_ms)? {
        None => Ok(None),
        Some((status, _)) if status < 0 => {
            Err(Fail(format!("{} failed: {}", ioctl.name(), status_name(status))))
        }
        Some((_, out)) => Ok(Some(out)),
    }
}

fn parse_prefix(text: &str) -> Result<RdcoPrefix, Fail> {
    let (addr, len) =
        text.split_once('/').ok_or_else(|| Fail(format!("bad prefix '{text}': expected ADDR/LEN")))?;
    let addr: IpAddr = addr.parse().map_err(|_| Fail(format!("bad prefix '{text}': bad address")))?;
    let prefix_len: u8 = len.parse().map_err(|_| Fail(format!("bad prefix '{text}': bad length")))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix_len > max {
        return Err(Fail(format!("bad prefix '{text}': length over {max}")));
    }
    Ok(RdcoPrefix { addr, prefix_len })
}

fn peer_id(id: u32) -> Result<u32, Fail> {
    if id > uapi::rdco_filter::PEER_ID_MAX {
        return Err(Fail(format!("--peer-id must be at most 0xFFFFFF, not {id}")));
    }
    Ok(id)
}

fn key_request(
    peer: u32,
    key: &PathBuf,
    direction: u8,
    cipher: &str,
    key_id: u8,
    slot: &str,
    epoch: bool,
) -> Result<Vec<u8>, Fail> {
    let (alg, key_len) = match cipher {
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
    let key_slot = match slot {
        "primary" => OvpnKeySlot::Primary,
        "secondary" => OvpnKeySlot::Secondary,
        other => return Err(Fail(format!("--slot must be primary or secondary, not '{other}'"))),
    };
    if key_id > uapi::ovpn::KEY_ID_MAX {
        return Err(Fail(format!("--key-id must be 0..=7, not {key_id}")));
    }
    let text = std::fs::read(key).map_err(|e| Fail(format!("key file {}: {e}", key.display())))?;
    let file = KeyFile::parse(&text).map_err(|e| Fail(format!("key file {}: {e}", key.display())))?;
    let (enc, dec) = file.directions(direction).map_err(|e| Fail(e.to_string()))?;
    let dir = |d: &datapath::KeyDirection| OvpnKeyDirection { key: d.key, key_len, nonce_tail: d.nonce_tail };
    let request = RdcoNewKey {
        key: OvpnCryptoDataV2 {
            v1: OvpnCryptoData {
                encrypt: dir(&enc),
                decrypt: dir(&dec),
                key_slot,
                cipher_alg: alg,
                key_id,
                peer_id: i32::try_from(peer_id(peer)?).unwrap_or(0),
            },
            crypto_options: if epoch { CRYPTO_OPTIONS_EPOCH } else { 0 },
        },
    };
    Ok(encode(&request))
}

fn print_stats(out: &[u8]) -> Result<(), Fail> {
    let s = RdcoStats::parse(out).map_err(|e| Fail(format!("bad statistics reply: {e}")))?;
    if s.peer_id == ALL_PEERS {
        println!("peer module");
    } else {
        println!("peer {}", s.peer_id);
    }
    let rows: [(&str, u64); 33] = [
        ("tx_packets", s.tx_packets),
        ("tx_bytes", s.tx_bytes),
        ("rx_packets", s.rx_packets),
        ("rx_bytes", s.rx_bytes),
        ("diverted", s.diverted),
        ("bypassed", s.bypassed),
        ("control_in", s.control_in),
        ("control_out", s.control_out),
        ("drop_no_key", s.drop_no_key),
        ("drop_replay", s.drop_replay),
        ("drop_auth", s.drop_auth),
        ("drop_malformed", s.drop_malformed),
        ("drop_queue_full", s.drop_queue_full),
        ("drop_copy_ceiling", s.drop_copy_ceiling),
        ("drop_other", s.drop_other),
        ("plaintext_copies", s.plaintext_copies),
        ("deep_copies", s.deep_copies),
        ("clones", s.clones),
        ("holds", s.holds),
        ("hold_time_us", s.hold_time_us),
        ("keepalives_sent", s.keepalives_sent),
        ("keepalives_received", s.keepalives_received),
        ("rx_bypassed", s.rx_bypassed),
        ("rx_copies", s.rx_copies),
        ("rx_drop_no_buffer", s.rx_drop_no_buffer),
        ("rx_drop_unknown_peer", s.rx_drop_unknown_peer),
        ("rx_floats", s.rx_floats),
        ("holds_budget", s.holds_budget),
        ("holds_not_ready", s.holds_not_ready),
        ("holds_pause", s.holds_pause),
        ("send_aborted", s.send_aborted),
        ("offload_copies", s.offload_copies),
        ("segmented", s.segmented),
    ];
    for (name, value) in rows {
        println!("{name} {value}");
    }
    Ok(())
}

/// One line per module: `module IFINDEX state STATE luid 0xLUID name NAME`.
fn print_modules(out: &[u8]) -> Result<(), Fail> {
    let list = RdcoModuleList::parse(out).map_err(|e| Fail(format!("bad module list reply: {e}")))?;
    for m in list.modules() {
        let state = match m.state {
            uapi::rdco_filter::module_state::RUNNING => "running",
            uapi::rdco_filter::module_state::PAUSING => "pausing",
            _ => "paused",
        };
        let name = String::from_utf16_lossy(m.name());
        println!("module {} state {state} luid {:#x} name {name}", m.if_index, m.net_luid);
    }
    Ok(())
}

fn print_hold(out: &[u8]) -> Result<(), Fail> {
    // The driver reports its policy as it is: read the fields without the SET range check.
    let field = |at: usize| -> Result<u32, Fail> {
        out.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| Fail(format!("bad hold policy reply: {} bytes", out.len())))
    };
    println!("budget_nbls {}", field(o::BUDGET_NBLS)?);
    println!("budget_ms {}", field(o::BUDGET_MS)?);
    println!("ceiling_bytes {}", field(o::CEILING_BYTES)?);
    println!("copy_max_age_ms {}", field(o::COPY_MAX_AGE_MS)?);
    Ok(())
}

/// Checks one `hold set` flag against the range the driver accepts.
fn hold_flag(
    flag: &str,
    value: Option<u32>,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Option<u32>, Fail> {
    match value {
        Some(v) if !range.contains(&v) => {
            Err(Fail(format!("--{flag} must be {}..={}, not {v}", range.start(), range.end())))
        }
        other => Ok(other),
    }
}

/// `rdco filter hold set`: reads the policy, replaces the given fields, writes it back.
fn hold_set(dev: &mut dyn Device, fields: [Option<u32>; 4]) -> Result<(), Fail> {
    let out = call(dev, RdcoFilterIoctl::GetHoldPolicy, &[], 0)?.unwrap_or_default();
    let current = |at: usize| out.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let pick = |given: Option<u32>, at: usize| {
        given
            .or_else(|| current(at))
            .ok_or_else(|| Fail(format!("bad hold policy reply: {} bytes", out.len())))
    };
    let policy = RdcoHoldPolicy {
        budget_nbls: pick(fields[0], o::BUDGET_NBLS)?,
        budget_ms: pick(fields[1], o::BUDGET_MS)?,
        ceiling_bytes: pick(fields[2], o::CEILING_BYTES)?,
        copy_max_age_ms: pick(fields[3], o::COPY_MAX_AGE_MS)?,
    };
    call(dev, RdcoFilterIoctl::SetHoldPolicy, &encode(&policy), 0)?;
    Ok(())
}

/// Runs one `rdco filter` subcommand.
pub fn run(args: &FilterArgs) -> Result<(), Fail> {
    use RdcoFilterIoctl as I;
    // Validate arguments before touching the device.
    let request: Option<(RdcoFilterIoctl, Vec<u8>)> = match &args.command {
        FilterCommand::Policy(PolicyCommand::Add { prefixes }) => {
            let parsed = prefixes.iter().map(|p| parse_prefix(p)).collect::<Result<Vec<_>, _>>()?;
            let policy = RdcoSetPolicy::new(&parsed)
                .map_err(|_| Fail(format!("at most {} prefixes", uapi::rdco_filter::MAX_POLICY_PREFIXES)))?;
            Some((I::SetPolicy, encode(&policy)))
        }
        FilterCommand::Policy(PolicyCommand::Clear) => {
            Some((I::SetPolicy, encode(&RdcoSetPolicy::default())))
        }
        FilterCommand::Policy(PolicyCommand::List) => {
            return Err(Fail(
                "policy list is not available: the filter's control API has no policy query IOCTL".into(),
            ))
        }
        FilterCommand::Peer(PeerCommand::Add { peer_id: id, remote, local }) => {
            let local = local.unwrap_or_else(|| match remote {
                SocketAddr::V4(_) => SocketAddr::from(([0u8; 4], 0)),
                SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
            });
            Some((I::AddPeer, encode(&RdcoAddPeer { peer_id: peer_id(*id)?, local, remote: *remote })))
        }
        FilterCommand::Peer(PeerCommand::Routes { peer_id: id, prefixes }) => {
            let parsed = prefixes.iter().map(|p| parse_prefix(p)).collect::<Result<Vec<_>, _>>()?;
            let routes = RdcoPeerRoutes::new(peer_id(*id)?, &parsed).map_err(|_| {
                Fail(format!("at most {} prefixes per peer", uapi::rdco_filter::MAX_PEER_ROUTES))
            })?;
            Some((I::SetPeerRoutes, encode(&routes)))
        }
        FilterCommand::Peer(PeerCommand::Del { peer_id: id }) => {
            Some((I::DelPeer, encode(&RdcoPeerRef { peer_id: peer_id(*id)? })))
        }
        FilterCommand::Key(KeyCommand::New { peer_id: id, key, direction, cipher, key_id, slot, epoch }) => {
            Some((I::NewKey, key_request(*id, key, *direction, cipher, *key_id, slot, *epoch)?))
        }
        FilterCommand::Key(KeyCommand::Swap { peer_id: id }) => {
            Some((I::SwapKeys, encode(&RdcoPeerRef { peer_id: peer_id(*id)? })))
        }
        FilterCommand::Keepalive(KeepaliveCommand::Set { peer_id: id, interval, timeout, mss }) => Some((
            I::SetKeepalive,
            encode(&RdcoKeepalive {
                peer_id: peer_id(*id)?,
                keepalive_interval: *interval,
                keepalive_timeout: *timeout,
                mss: *mss,
            }),
        )),
        FilterCommand::Stats { peer_id: id, module } => {
            let id = match id {
                Some(id) => peer_id(*id)?,
                None => ALL_PEERS,
            };
            let query = RdcoStatsQuery { peer_id: id, if_index: module.unwrap_or(0) };
            Some((I::GetStats, encode(&query)))
        }
        FilterCommand::Modules => Some((I::ListModules, Vec::new())),
        FilterCommand::Hold(HoldCommand::Show) => Some((I::GetHoldPolicy, Vec::new())),
        FilterCommand::Hold(HoldCommand::Set { budget_nbls, budget_ms, ceiling_bytes, copy_max_age_ms }) => {
            let fields = [
                hold_flag("budget-nbls", *budget_nbls, HOLD_BUDGET_NBLS)?,
                hold_flag("budget-ms", *budget_ms, HOLD_BUDGET_MS)?,
                hold_flag("ceiling-bytes", *ceiling_bytes, HOLD_CEILING_BYTES)?,
                hold_flag("copy-max-age-ms", *copy_max_age_ms, HOLD_COPY_MAX_AGE_MS)?,
            ];
            if fields.iter().all(Option::is_none) {
                return Err(Fail(
                    "hold set needs at least one of --budget-nbls, --budget-ms, --ceiling-bytes, --copy-max-age-ms"
                        .into(),
                ));
            }
            return hold_set(open(args)?.as_mut(), fields);
        }
        FilterCommand::Events { .. } => None,
    };
    let mut dev = open(args)?;
    if let Some((ioctl, input)) = request {
        let out = call(dev.as_mut(), ioctl, &input, 0)?.unwrap_or_default();
        if ioctl == I::GetStats {
            if let FilterCommand::Stats { module: Some(m), .. } = &args.command {
                println!("module {m}");
            }
            print_stats(&out)?;
        } else if ioctl == I::ListModules {
            print_modules(&out)?;
        } else if ioctl == I::GetHoldPolicy {
            print_hold(&out)?;
        }
        return Ok(());
    }
    let FilterCommand::Events { count, timeout_ms } = args.command else { return Ok(()) };
    for _ in 0..count {
        let Some(out) = call(dev.as_mut(), I::ReadEvent, &[], timeout_ms)? else {
            return Err(Fail(format!("no event within {timeout_ms} ms")));
        };
        let e = RdcoEvent::parse(&out).map_err(|e| Fail(format!("bad event: {e}")))?;
        match e.address {
            Some(a) => println!("{:?} peer {} address {a}", e.kind, e.peer_id),
            None => println!("{:?} peer {}", e.kind, e.peer_id),
        }
    }
    Ok(())
}
