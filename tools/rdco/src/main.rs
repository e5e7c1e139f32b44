//! `rdco`: the user-mode tool.
//!
//! `rdco packet seal` and `rdco packet open`, the data-channel engine on hex lines; `rdco filter ...`, the
//! filter's configuration.
//!
//! ```text
//! rdco packet seal --key data64.key --direction 0 --cipher aes-256-gcm --key-id 0 --peer-id 1 [--packet-id N] [--epoch]
//!     reads one plaintext per line (hex; an empty line or "-" is an empty plaintext) and prints one
//!     packet (hex) per line.
//! rdco packet open --key data64.key --direction 1 --cipher aes-256-gcm --key-id 0 --peer-id 1 [--epoch]
//!     reads one packet per line through one receive state (replays are caught) and prints
//!     `ok <packet-id> <plaintext-hex>` or `drop <reason>` per line.
//! rdco filter [--sim-socket PATH] policy add PREFIX... | policy clear | policy list
//! rdco filter peer add --peer-id N --remote ADDR:PORT [--local ADDR:PORT] | peer del --peer-id N
//! rdco filter key new --peer-id N --key data64.key --direction 0|1 --cipher NAME [--key-id K] [--slot primary|secondary] [--epoch]
//! rdco filter key swap --peer-id N
//! rdco filter keepalive set --peer-id N --interval S --timeout S [--mss M]
//! rdco filter hold show | hold set [--budget-nbls N] [--budget-ms MS] [--ceiling-bytes B] [--copy-max-age-ms MS]
//! rdco filter stats [--peer-id N]
//! rdco filter events [--count N] [--timeout-ms MS]
//!     configure the lightweight filter through its control device: DeviceIoControl on Windows, a
//!     simulated machine's control socket elsewhere (--sim-socket or RDCO_SIM_SOCKET).
//! rdco dco [--sim-socket PATH] [--dry-run] version
//! rdco dco client --remote ADDR:PORT [--local ADDR:PORT] [--proto udp|tcp] [--peer-id N]
//!     --key data64.key --direction 0|1 [--cipher NAME] [--key-id K] [--keepalive I,T] [--mss M] [--hold-ms MS]
//! rdco dco server --listen ADDR:PORT [--ipv6-only] --peer ID=REMOTE[,VPN4][,VPN6]... [--iroute PREFIX=ID]...
//!     --key data64.key --direction 0|1 [--cipher NAME] [--key-id K] [--keepalive I,T] [--mss M] [--hold-ms MS]
//!     drive the miniport through the ovpn-dco-win IOCTLs on one handle held open (closing it deletes
//!     the peers), like ovpn-dco-win's ovpn-dco-cli; --dry-run prints the requests instead.
//! ```
//! Bad input (bad hex, a short key file, an unknown cipher) exits non-zero with a one-line error.

mod dco;
mod filter;

use clap::{Args, Parser, Subcommand};
use datapath::crypto::{Cipher, RustCryptoAead};
use datapath::keyfile::KeyFile;
use datapath::keys::{KeyFormat, KeySlot};
use datapath::replay::ReplayConfig;
use datapath::time::Instant;
use datapath::wire;
use std::io::{BufRead, Write};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "rdco", version, about = "rdco user-mode tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Data-channel packets: seal and open with a data64.key.
    #[command(subcommand)]
    Packet(PacketCommand),
    /// Configure the lightweight filter through its control device.
    Filter(filter::FilterArgs),
    /// Drive the miniport through the ovpn-dco-win control API (ovpn-dco-cli-style test bed).
    Dco(dco::DcoArgs),
}

#[derive(Subcommand, Debug)]
enum PacketCommand {
    /// Seal plaintext hex lines from stdin into packet hex lines.
    Seal(SealArgs),
    /// Open packet hex lines from stdin through one receive state.
    Open(KeyArgs),
}

#[derive(Args, Debug)]
struct KeyArgs {
    /// Key file (`data64.key`: base64 of key A, key B, nonce tail).
    #[arg(long, value_name = "FILE")]
    key: std::path::PathBuf,
    /// Key direction: 0 encrypts with key A and decrypts with B, 1 the reverse.
    #[arg(long, value_name = "0|1")]
    direction: u8,
    /// aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-poly1305 or none.
    #[arg(long)]
    cipher: String,
    /// Key-id, 0..=7.
    #[arg(long, value_name = "N", default_value_t = 0)]
    key_id: u8,
    /// Peer-id, 0..=0xFFFFFF.
    #[arg(long, value_name = "N", default_value_t = 0)]
    peer_id: u32,
    /// Epoch data keys (`NEW_KEY_V2`: 64-bit packet ids, tag at the end) instead of classic keys.
    #[arg(long)]
    epoch: bool,
}

#[derive(Args, Debug)]
struct SealArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Packet id of the first packet (classic keys).
    #[arg(long, value_name = "N", default_value_t = 1)]
    packet_id: u32,
}

/// A one-line error.
pub(crate) struct Fail(pub(crate) String);

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Self {
        Fail(e.to_string())
    }
}

fn parse_hex(line: &str, lineno: usize) -> Result<Vec<u8>, Fail> {
    let s = line.trim();
    if s.is_empty() || s == "-" {
        return Ok(Vec::new());
    }
    if !s.len().is_multiple_of(2) {
        return Err(Fail(format!("line {lineno}: bad hex: odd number of digits")));
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(i, p)| match (digit(p[0]), digit(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(Fail(format!("line {lineno}: bad hex at column {}", 2 * i + 1))),
        })
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn key_slot(args: &KeyArgs, first_packet_id: u32) -> Result<KeySlot<RustCryptoAead>, Fail> {
    let cipher = Cipher::from_name(&args.cipher).ok_or_else(|| {
        Fail(format!(
            "unknown cipher '{}' (expected aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-poly1305 or none)",
            args.cipher
        ))
    })?;
    if args.direction > 1 {
        return Err(Fail(format!("--direction must be 0 or 1, not {}", args.direction)));
    }
    if args.key_id > wire::KEY_ID_MASK {
        return Err(Fail(format!("--key-id must be 0..=7, not {}", args.key_id)));
    }
    if args.peer_id > wire::PEER_ID_MASK {
        return Err(Fail(format!("--peer-id must be at most 0xFFFFFF, not {}", args.peer_id)));
    }
    let text = std::fs::read(&args.key).map_err(|e| Fail(format!("key file {}: {e}", args.key.display())))?;
    let kf = KeyFile::parse(&text).map_err(|e| Fail(format!("key file {}: {e}", args.key.display())))?;
    let format = if args.epoch { KeyFormat::Epoch } else { KeyFormat::Classic };
    if args.epoch && first_packet_id != 1 {
        return Err(Fail("--packet-id applies to classic keys only".into()));
    }
    if first_packet_id == 0 {
        return Err(Fail("--packet-id must be at least 1".into()));
    }
    let cfg = kf.key_config(cipher, format, args.key_id, args.direction)?;
    Ok(KeySlot::with_tx_packet_id(&cfg, ReplayConfig::default(), first_packet_id)?)
}

fn seal(args: &SealArgs) -> Result<(), Fail> {
    let mut slot = key_slot(&args.key, args.packet_id)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    for (i, line) in stdin.lock().lines().enumerate() {
        let plain = parse_hex(&line?, i + 1)?;
        buf.resize(plain.len() + wire::MAX_OVERHEAD, 0);
        let s = slot
            .seal(args.key.peer_id, &[&plain], &[], &mut buf)
            .map_err(|e| Fail(format!("line {}: {e}", i + 1)))?;
        writeln!(out, "{}", to_hex(&buf[..s.len]))?;
    }
    out.flush()?;
    Ok(())
}

fn open(args: &KeyArgs) -> Result<(), Fail> {
    let mut slot = key_slot(args, 1)?;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for (i, line) in stdin.lock().lines().enumerate() {
        let mut packet = parse_hex(&line?, i + 1)?;
        match wire::classify(&packet) {
            Ok(wire::PacketKind::Control { opcode }) => {
                writeln!(out, "drop control-opcode-{opcode}")?;
                continue;
            }
            Err(_) => {
                writeln!(out, "drop malformed")?;
                continue;
            }
            Ok(wire::PacketKind::Data { key_id, .. }) if key_id != slot.key_id() => {
                writeln!(out, "drop no-key")?;
                continue;
            }
            Ok(_) => {}
        }
        match slot.open(Instant::ZERO, &mut packet) {
            Ok(info) => writeln!(out, "ok {} {}", info.packet_id, to_hex(&packet[info.payload]))?,
            Err(e) => writeln!(out, "drop {}", e.reason())?,
        }
    }
    out.flush()?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // Clap's message on one line: the lines before the blank line or "Usage:" (a missing argument's
            // name is on the second line).
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                .collect();
            let line = if message.is_empty() { "bad arguments".to_string() } else { message.join(" ") };
            eprintln!("rdco: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Packet(PacketCommand::Seal(a)) => seal(a),
        Command::Packet(PacketCommand::Open(a)) => open(a),
        Command::Filter(a) => filter::run(a),
        Command::Dco(a) => dco::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg)) => {
            eprintln!("rdco: {msg}");
            ExitCode::from(1)
        }
    }
}
