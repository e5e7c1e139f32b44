//! The two-host machinery shared by the `filter_two_hosts` and `two_hosts_miniport` suites: two
//! simulated hosts, each its own process (the simulated machine is process-global) started as
//! `ndistest --host KIND:ROLE:LOCAL_PORT:RELAY_PORT`, each with a REAL driver (the filter over a simulated
//! NIC, or the miniport as the tunnel adapter) configured through its control device. Their tunnel
//! sockets (real UDP on loopback) talk through a relay in the test's process that forwards datagrams both
//! ways with seeded loss, duplication and reordering, and logs what it did. Each host's stack sends
//! numbered inner packets (IPv4 UDP and IPv6 TCP, up to the MTU) into the tunnel; the other host's stack
//! must receive exactly the ones the relay did not drop, byte for byte, each once; the duplicates are
//! dropped by the replay window and counted; nothing is copied in plaintext; both hosts unload clean.
//!
//! Protocol between the test and a host (lines): host → `READY`; test → `GO`; host → `RX n` (progress,
//! for the relay's flow control) and `SENT`; test → `EXPECT k` (the distinct datagrams the relay
//! forwarded to it); host → `HOSTRESULT {json}`. The result has `received`, `distinct`, `ids`, `twice`,
//! `late` (from [`arrivals`]) and the driver's `tx_packets`, `rx_packets`, `drop_replay`,
//! `plaintext_copies`, `completed`, `failed` (and the filter's `diverted`).
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use uapi::ovpn::OvpnKeyDirection;
use winsim::datapath::{IpSend, Proto};
use winsim::Machine;

use crate::Outcome;

/// One host's place: its role (0 = A, 1 = B), its tunnel port, the relay's port, and the test's lines.
pub(crate) struct HostSpec {
    pub role: u8,
    pub local: u16,
    pub relay: u16,
    pub lines: Receiver<String>,
}

/// What a host reports (see the module documentation), or why it failed.
pub(crate) type HostResult = Result<serde_json::Value, String>;

/// Which driver a host runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Filter,
    Miniport,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Filter => "filter",
            Kind::Miniport => "miniport",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [Kind::Filter, Kind::Miniport].into_iter().find(|k| k.name() == s)
    }

    fn run(self, machine: &mut Machine, h: &HostSpec) -> HostResult {
        match self {
            Kind::Filter => super::filter_two_hosts::host(machine, h),
            Kind::Miniport => super::two_hosts_miniport::host(machine, h),
        }
    }
}

pub(crate) const PEER_ID: u32 = 7;
/// Host A encrypts with `KEY_AB`, host B decrypts with it; the reverse for `KEY_BA`.
const KEY_AB: [u8; 32] = [0x61; 32];
const KEY_BA: [u8; 32] = [0x62; 32];
const TAIL_AB: [u8; 8] = [0xa1; 8];
const TAIL_BA: [u8; 8] = [0xb2; 8];
/// Inner packets each host sends.
pub(crate) const PACKETS: usize = 240;
/// The relay's seed (its decisions and the hosts' packet sizes are functions of it).
pub(crate) const SEED: u64 = 0x5eed_2a0b;
/// Relay: per mille of data datagrams dropped, duplicated, held back for reordering.
const DROP_PERMILLE: u64 = 60;
const DUP_PERMILLE: u64 = 60;
const HOLD_PERMILLE: u64 = 100;
/// A held datagram is released after this many later ones passed (well inside the replay window).
const HOLD_DISTANCE: usize = 3;
/// Largest keepalive datagram (P_DATA_V2 header 8 + 16-byte ping + 16-byte tag): not data.
const KEEPALIVE_LEN: usize = 40;
/// Relay flow control: datagrams on their way to a host that it has not taken in yet.
const IN_FLIGHT: u64 = 64;

/// A small deterministic generator (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What host `role` (0 = A, 1 = B) sends: varied sizes up to the MTU, one in five IPv6 TCP.
pub(crate) fn sends_of(role: u8) -> Vec<IpSend> {
    let mut rng = Rng(SEED ^ (0x1000 + u64::from(role)));
    (0..PACKETS)
        .map(|i| {
            let v6 = i % 5 == 4;
            let max = if v6 { 1440 } else { 1472 };
            // Cover both ends: the first two of each kind are the smallest and the largest.
            let len = match i {
                0 | 4 => 1,
                1 | 9 => max,
                _ => 1 + usize::try_from(rng.below(max as u64)).unwrap_or(0),
            };
            IpSend {
                v6,
                proto: if v6 { Proto::Tcp } else { Proto::Udp },
                payload_len: len,
                request_checksum: true,
                mss: max as u16,
            }
        })
        .collect()
}

/// Host `role`'s key directions (encrypt, decrypt): A encrypts with `KEY_AB`, B decrypts with it; the
/// reverse for `KEY_BA`.
pub(crate) fn key_directions(role: u8) -> (OvpnKeyDirection, OvpnKeyDirection) {
    let dir = |key: [u8; 32], tail: [u8; 8]| OvpnKeyDirection { key, key_len: 32, nonce_tail: tail };
    if role == 0 {
        (dir(KEY_AB, TAIL_AB), dir(KEY_BA, TAIL_BA))
    } else {
        (dir(KEY_BA, TAIL_BA), dir(KEY_AB, TAIL_AB))
    }
}

// ---------------------------------------------------------------------------------------------------------
// The host (a child process)
// ---------------------------------------------------------------------------------------------------------

fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Waits for a line starting with `prefix` while `step` keeps the machine running.
pub(crate) fn wait_line(
    rx: &Receiver<String>,
    prefix: &str,
    timeout: Duration,
    step: &mut dyn FnMut(),
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        step();
        if let Ok(line) = rx.try_recv() {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.trim().to_string());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("host: no {prefix:?} from the test"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs the WSK provider once (sends completed, datagrams indicated) and, when the host's tunnel socket
/// took datagrams in, tells the relay how many so far (its flow control). Returns what moved.
pub(crate) fn pump_wsk() -> usize {
    let before = winsim::wsk::stats().indicated;
    let moved = winsim::wsk::pump();
    let after = winsim::wsk::stats().indicated;
    if after != before {
        say(&format!("RX {after}"));
    }
    moved
}

/// After `SENT`: keeps `step` running (it appends what the stack received to its argument) until the
/// test says `EXPECT k` and `k` packets arrived, then a little longer (a duplicate let through must show
/// up too).
pub(crate) fn receive_expected(
    rx: &Receiver<String>,
    received: &mut Vec<Vec<u8>>,
    step: &mut dyn FnMut(&mut Vec<Vec<u8>>),
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let expect = loop {
        step(received);
        if let Ok(line) = rx.try_recv() {
            if let Some(rest) = line.strip_prefix("EXPECT") {
                break rest.trim().parse::<usize>().map_err(|_| "host: bad EXPECT line".to_string())?;
            }
        }
        if Instant::now() >= deadline {
            return Err("host: no EXPECT from the test".into());
        }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.len() < expect && Instant::now() < deadline {
        step(received);
    }
    let deadline = Instant::now() + Duration::from_millis(100);
    while Instant::now() < deadline {
        step(received);
    }
    Ok(())
}

/// Checks the Ethernet frames host `role`'s stack received against what the other host sent: each
/// verifies, carries a send id, the right IP version and exactly that send's payload. Returns
/// `received`, `distinct`, `ids`, `twice` (ids seen more than once) and `late` (arrived after a
/// later-numbered one: the relay's reordering, accepted).
pub(crate) fn arrivals(role: u8, received: &[Vec<u8>]) -> Result<serde_json::Value, String> {
    let theirs = sends_of(1 - role);
    let mut ids: BTreeMap<u16, usize> = BTreeMap::new();
    // Packets that arrived after a later-numbered one (the relay's reordering, accepted).
    let mut late = 0u64;
    let mut highest: Option<u16> = None;
    for f in received {
        winsim::offload::verify_packet(f).map_err(|e| format!("host: inner packet does not verify: {e}"))?;
        let id = winsim::offload::send_id(f).ok_or("host: inner packet without a send id")?;
        let s = theirs.get(usize::from(id)).ok_or_else(|| format!("host: send id {id} was never sent"))?;
        let payload = winsim::offload::reassemble(&[f.as_slice()]);
        let want: Vec<u8> = (0..s.payload_len).map(|i| winsim::offload::payload_byte(id, i)).collect();
        if payload != want {
            return Err(format!(
                "host: send {id}: payload differs ({} bytes, want {})",
                payload.len(),
                want.len()
            ));
        }
        let ethertype = u16::from_be_bytes([f[12], f[13]]);
        if (ethertype == 0x86dd) != s.v6 {
            return Err(format!("host: send {id} arrived as the wrong IP version"));
        }
        *ids.entry(id).or_default() += 1;
        if highest.is_some_and(|h| id < h) {
            late += 1;
        }
        highest = highest.max(Some(id));
    }
    let twice: Vec<u16> = ids.iter().filter(|(_, &n)| n > 1).map(|(&id, _)| id).collect();
    Ok(serde_json::json!({
        "received": received.len(),
        "distinct": ids.len(),
        "ids": ids.keys().copied().collect::<Vec<u16>>(),
        "twice": twice,
        "late": late,
    }))
}

/// Adds the driver's counters to `arrivals`' result.
pub(crate) fn merge(mut base: serde_json::Value, more: serde_json::Value) -> serde_json::Value {
    if let (Some(b), Some(m)) = (base.as_object_mut(), more.as_object()) {
        for (k, v) in m {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// `ndistest --host KIND:ROLE:LOCAL_PORT:RELAY_PORT`: runs one host in this process and prints its result.
pub fn host_main(spec: &str) -> std::process::ExitCode {
    let parts: Vec<&str> = spec.split(':').collect();
    let parsed = match parts.as_slice() {
        [kind, role, local, relay] => {
            match (Kind::parse(kind), role.parse::<u8>(), local.parse::<u16>(), relay.parse::<u16>()) {
                (Some(kind), Ok(role @ 0..=1), Ok(local), Ok(relay)) => Some((kind, role, local, relay)),
                _ => None,
            }
        }
        _ => None,
    };
    let Some((kind, role, local, relay)) = parsed else {
        eprintln!("ndistest: --host wants filter|miniport:ROLE(0|1):LOCAL_PORT:RELAY_PORT, got {spec:?}");
        return std::process::ExitCode::from(2);
    };
    let mut machine = Machine::boot();
    let spec = HostSpec { role, local, relay, lines: stdin_lines() };
    let outcome = kind.run(&mut machine, &spec);
    let violations: Vec<String> = machine.shutdown().iter().map(ToString::to_string).collect();
    let json = match outcome {
        Ok(mut v) => {
            v["violations"] = serde_json::json!(violations);
            v["kind"] = serde_json::json!(kind.name());
            v
        }
        Err(e) => serde_json::json!({ "error": e, "violations": violations }),
    };
    say(&format!("HOSTRESULT {json}"));
    std::process::ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------------------------
// The test: two hosts and the relay
// ---------------------------------------------------------------------------------------------------------

/// One host process, its stdin and its stdout lines.
struct HostProc {
    child: Child,
    lines: Receiver<String>,
    /// The host said `SENT`.
    sent: bool,
    /// Datagrams the host's tunnel socket has taken in (its last `RX` line).
    rx: u64,
}

impl HostProc {
    fn spawn(kind: Kind, role: u8, local: u16, relay: u16) -> Result<HostProc, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .arg("--host")
            .arg(format!("{}:{role}:{local}:{relay}", kind.name()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn host {role}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no host stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(HostProc { child, lines, sent: false, rx: 0 })
    }

    fn tell(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.child.stdin.as_mut().ok_or("no host stdin")?;
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).map_err(|e| format!("host stdin: {e}"))
    }

    /// The next line starting with `prefix`, if it comes within `timeout`.
    fn wait(&self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Some(rest.trim().to_string());
            }
        }
    }

    /// Reads the progress lines that came (`SENT`, `RX n`).
    fn poll(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            if line == "SENT" {
                self.sent = true;
            } else if let Some(n) = line.strip_prefix("RX ").and_then(|n| n.parse().ok()) {
                self.rx = n;
            }
        }
    }
}

impl Drop for HostProc {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// One direction of the relay: datagrams arrive on `from_sock` (from the sending host) and leave on
/// `to_sock` (whose address the receiving host has as its peer) towards `to`.
#[derive(Default, Debug)]
struct Direction {
    data: u64,
    keepalives: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
    forwarded: u64,
    /// Datagrams put on the wire towards the receiver (copies and late ones included).
    wire: u64,
    held: VecDeque<(usize, Vec<u8>)>,
    log: Vec<String>,
}

impl Direction {
    fn forward(
        &mut self,
        rng: &mut Rng,
        datagram: &[u8],
        out: &UdpSocket,
        to: SocketAddr,
    ) -> Result<(), String> {
        let wire = &mut self.wire;
        let mut send = |d: &[u8]| {
            *wire += 1;
            out.send_to(d, to).map(|_| ()).map_err(|e| format!("relay send: {e}"))
        };
        if datagram.len() <= KEEPALIVE_LEN {
            self.keepalives += 1;
            return send(datagram);
        }
        let n = self.data;
        self.data += 1;
        // Release held datagrams whose distance has passed (after this one: they arrive late).
        let roll = rng.below(1000);
        if roll < DROP_PERMILLE {
            self.dropped += 1;
            self.log.push(format!("#{n} ({} bytes) dropped", datagram.len()));
        } else if roll < DROP_PERMILLE + HOLD_PERMILLE {
            self.reordered += 1;
            self.forwarded += 1;
            self.log.push(format!("#{n} held back {HOLD_DISTANCE}"));
            self.held.push_back((HOLD_DISTANCE, datagram.to_vec()));
        } else {
            self.forwarded += 1;
            send(datagram)?;
            if roll < DROP_PERMILLE + HOLD_PERMILLE + DUP_PERMILLE {
                self.duplicated += 1;
                self.log.push(format!("#{n} duplicated"));
                send(datagram)?;
            }
        }
        for h in &mut self.held {
            h.0 = h.0.saturating_sub(1);
        }
        while self.held.front().is_some_and(|h| h.0 == 0) {
            if let Some((_, d)) = self.held.pop_front() {
                send(&d)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, out: &UdpSocket, to: SocketAddr) -> Result<(), String> {
        while let Some((_, d)) = self.held.pop_front() {
            self.wire += 1;
            out.send_to(&d, to).map_err(|e| format!("relay send: {e}"))?;
        }
        Ok(())
    }
}

fn big_socket() -> Result<UdpSocket, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("relay socket: {e}"))?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    big_receive_buffer(&socket)?;
    Ok(socket)
}

/// Gives `socket` a 4 MB receive buffer (room for bursts of a few hundred datagrams).
pub(crate) fn big_receive_buffer(socket: &UdpSocket) -> Result<(), String> {
    let size: libc::c_int = 4 << 20;
    // SAFETY: a valid socket descriptor and a c_int option value of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err("setsockopt(SO_RCVBUF) failed".into());
    }
    Ok(())
}

fn port(s: &UdpSocket) -> Result<u16, String> {
    s.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A free loopback port for a host's tunnel socket (bound and released; the host binds it next).
fn free_port() -> Result<u16, String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("probe socket: {e}"))?;
    port(&s)
}

/// The relay test: host A of kind `kinds[0]`, host B of kind `kinds[1]`, each its own process.
pub(crate) fn relay_test(kinds: [Kind; 2]) -> Outcome {
    // relay[0] is host A's peer address (A sends to it), relay[1] host B's.
    let relay = [big_socket()?, big_socket()?];
    let host_port = [free_port()?, free_port()?];
    let to =
        [SocketAddr::from(([127, 0, 0, 1], host_port[0])), SocketAddr::from(([127, 0, 0, 1], host_port[1]))];
    let mut hosts = [
        HostProc::spawn(kinds[0], 0, host_port[0], port(&relay[0])?)?,
        HostProc::spawn(kinds[1], 1, host_port[1], port(&relay[1])?)?,
    ];
    for (i, h) in hosts.iter().enumerate() {
        h.wait("READY", Duration::from_secs(10)).ok_or_else(|| format!("host {i} never became ready"))?;
    }
    for h in &mut hosts {
        h.tell("GO")?;
    }
    // dir[0]: A → B, dir[1]: B → A.
    let mut dirs = [Direction::default(), Direction::default()];
    // One generator per direction: the decisions depend only on the order within a direction.
    let mut rngs = [Rng(SEED), Rng(SEED ^ 0x00ba_0000_00ab)];
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut idle_since = Instant::now();
    loop {
        let mut moved = false;
        for d in 0..2 {
            // Paced (at most 8 datagrams per direction and millisecond), as a link would be: the hosts'
            // tunnel sockets have the default receive buffer, and a host in a debug build opens each
            // datagram slower than loopback delivers it.
            for _ in 0..8 {
                // Flow control: at most IN_FLIGHT datagrams on the way to a host that has not taken
                // them in yet (a stalled host would otherwise overflow its socket's receive buffer).
                if dirs[d].wire >= hosts[1 - d].rx + IN_FLIGHT {
                    break;
                }
                let Ok((n, from)) = relay[d].recv_from(&mut buf) else { break };
                if from != to[d] {
                    return Err(format!("relay: a datagram from {from}, expected host at {}", to[d]));
                }
                moved = true;
                dirs[d].forward(&mut rngs[d], &buf[..n], &relay[1 - d], to[1 - d])?;
            }
        }
        for h in &mut hosts {
            h.poll();
        }
        let sent = [hosts[0].sent, hosts[1].sent];
        if moved {
            idle_since = Instant::now();
        } else if sent == [true, true]
            && dirs.iter().all(|d| d.data == PACKETS as u64)
            && idle_since.elapsed() > Duration::from_millis(100)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        if Instant::now() > deadline {
            return Err(format!("relay: the hosts did not finish sending (sent {sent:?})"));
        }
    }
    for d in 0..2 {
        dirs[d].flush(&relay[1 - d], to[1 - d])?;
    }
    for d in 0..2 {
        let forwarded = dirs[d].forwarded;
        hosts[1 - d].tell(&format!("EXPECT {forwarded}"))?;
    }
    let mut results = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let line =
            h.wait("HOSTRESULT", Duration::from_secs(15)).ok_or_else(|| format!("host {i}: no result"))?;
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("host {i}: {e}"))?;
        if v.get("error").is_none() && v["kind"].as_str() != Some(kinds[i].name()) {
            return Err(format!("host {i}: ran {}, not the {} host", v["kind"], kinds[i].name()));
        }
        results.push(v);
    }
    // The relay's log (shown with the test's output when it fails).
    for (d, dir) in dirs.iter().enumerate() {
        for line in &dir.log {
            eprintln!("relay {}: {line}", ["A->B", "B->A"][d]);
        }
    }
    let mut metrics = Vec::new();
    for d in 0..2 {
        let (name, dir) = (["a_to_b", "b_to_a"][d], &dirs[d]);
        let sender = &results[d];
        let receiver = &results[1 - d];
        for (who, v) in [("sender", sender), ("receiver", receiver)] {
            if let Some(e) = v.get("error") {
                return Err(format!("{name} {who}: {e}"));
            }
            if v["violations"].as_array().is_none_or(|a| !a.is_empty()) {
                return Err(format!("{name} {who}: violations {}", v["violations"]));
            }
        }
        let get = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(u64::MAX);
        let packets = PACKETS as u64;
        // `diverted` is the filter's (a miniport host has every packet of its stack to send).
        if get(sender, "tx_packets") != packets
            || sender.get("diverted").is_some_and(|d| d.as_u64() != Some(packets))
            || get(sender, "plaintext_copies") != 0
            || get(sender, "completed") != packets
            || get(sender, "failed") != 0
        {
            return Err(format!("{name}: sender {sender}"));
        }
        if dir.data != packets {
            return Err(format!("{name}: the relay saw {} data datagrams, {packets} were sent", dir.data));
        }
        let want = packets - dir.dropped;
        if get(receiver, "received") != want
            || get(receiver, "distinct") != want
            || get(receiver, "rx_packets") != want
            || get(receiver, "drop_replay") != dir.duplicated
            || get(receiver, "plaintext_copies") != 0
            || receiver["twice"].as_array().is_none_or(|a| !a.is_empty())
            || (dir.reordered > 0 && get(receiver, "late") == 0)
        {
            return Err(format!(
                "{name}: relay dropped {} and duplicated {} of {packets}; receiver {receiver}",
                dir.dropped, dir.duplicated
            ));
        }
        for (k, v) in [
            ("sent", packets),
            ("dropped", dir.dropped),
            ("duplicated", dir.duplicated),
            ("reordered", dir.reordered),
            ("received", want),
            ("arrived_late", get(receiver, "late")),
            ("drop_replay", dir.duplicated),
            ("keepalives", dir.keepalives),
        ] {
            metrics.push((format!("{name}_{k}"), v));
        }
    }
    Ok(metrics)
}
