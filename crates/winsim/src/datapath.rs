//! The NDIS data path of one machine: simulated Ethernet miniports (NICs) at the bottom, the filter
//! modules of each NIC's stack, and a simulated protocol on top that sends and receives frames, checks
//! every byte that comes back, and accounts for every NBL it sent.
//!
//! Every NBL that enters the stack is tracked: who originated it, who holds it now, and the path of layers
//! it passed (the senders a send completion must travel back through, the indicators a receive return
//! must travel back through). The filter exports (`NdisFSendNetBufferLists`, `...Complete`,
//! `NdisFIndicateReceiveNetBufferLists`, `NdisFReturnNetBufferLists`) check ownership against that record,
//! which is how the verifier catches the NDIS ownership rules (Windows-driver-docs: "Filter Module Send
//! and Receive Operations", "Pausing a Filter Module", `NdisFReturnNetBufferLists` remarks).
//!
//! Threading: the data path runs on the thread that drives the machine; NIC completions and protocol
//! returns happen when [`pump`] runs. No simulation lock is held while a driver callback runs.
use std::collections::{BTreeMap, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;
use std::sync::Mutex;

use kernel::ffi::mdl::MDL;
use kernel::ffi::nbl::{
    NetBufferListHashInfo, NetBufferListHashValue, TcpIpChecksumNetBufferListInfo,
    TcpLargeSendNetBufferListInfo, UdpSegmentationOffloadInfo, NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL,
    NDIS_RECEIVE_FLAGS_RESOURCES, NDIS_RETURN_FLAGS_DISPATCH_LEVEL, NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_FLAGS_DISPATCH_LEVEL, NET_BUFFER, NET_BUFFER_LIST, NET_BUFFER_LIST_POOL_PARAMETERS,
};
use kernel::ffi::ndis::{
    NDIS_HANDLE, NDIS_OBJECT_HEADER, NDIS_OBJECT_TYPE_DEFAULT, NDIS_PORT_NUMBER, NDIS_STATUS,
    NDIS_STATUS_PAUSED, NDIS_STATUS_SUCCESS, NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG,
};
use kernel::ffi::ntos::{DISPATCH_LEVEL, KIRQL, PASSIVE_LEVEL};

use crate::context::{call_driver, irql};
use crate::ndis::{self, ModuleState};
pub use crate::offload::{IpSend, Offloads, Proto};
use crate::verifier::{violation, Rule};

/// The ethertype of the protocol's test frames: IEEE 802 "local experimental ethertype 1".
pub const TEST_ETHERTYPE: u16 = 0x88b5;
/// Ethernet header length.
pub const ETH_HEADER: usize = 14;
/// Test frame header after Ethernet: sequence number (8) and payload length (2).
const TEST_HEADER: usize = 10;

/// A layer of one NIC's stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    Protocol,
    Module(usize),
    Nic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Send,
    Receive,
}

/// What the simulation knows about one NBL in flight.
#[derive(Clone, Debug)]
struct Track {
    nic: u32,
    direction: Direction,
    origin: Layer,
    holder: Layer,
    /// Layers that handed the NBL on, oldest first: a completion or return travels back through them.
    /// Inline for a stack of protocol, a few filters and the NIC: tracking allocates nothing per NBL.
    path: SmallVec<[Layer; 4]>,
    resources: bool,
    source_handle: usize,
    /// Machine time (100-ns units) when `holder` last changed.
    since: u64,
    /// Reported as held past its deadline already.
    late: bool,
}

/// How a NIC lays received frames out in memory.
#[derive(Clone, Debug)]
pub struct NicConfig {
    pub if_index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// Received frames are split into MDLs of these lengths (the rest goes into a last MDL), so drivers
    /// meet headers split across MDLs at awkward offsets.
    pub rx_split: Vec<usize>,
    /// Unused bytes in front of the data in the first MDL (`DataOffset`), room for a retreat.
    pub rx_data_offset: u32,
    /// The task offloads the miniport advertises (and carries out on the wire).
    pub offloads: Offloads,
}

impl NicConfig {
    /// A 1500-byte-MTU NIC with receive frames split 7 / 13 / rest and 32 bytes of data offset.
    pub fn ethernet(if_index: u32) -> NicConfig {
        let last = u8::try_from(if_index & 0xff).unwrap_or(0);
        NicConfig {
            if_index,
            mac: [0x02, 0x52, 0x44, 0x43, 0x4f, last],
            mtu: 1500,
            rx_split: vec![7, 13],
            rx_data_offset: 32,
            offloads: Offloads::default(),
        }
    }
}

/// The protocol's ledger for one NIC: every send accounted for, every receive checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    pub sent: u64,
    pub completed: u64,
    /// Completions with a status other than success, by status.
    pub failed: BTreeMap<i32, u64>,
    pub received_ok: u64,
    pub received_corrupt: u64,
    /// Frames the wire saw (sent by the NIC): a segmented super-packet counts once per segment.
    pub on_wire: u64,
    /// IP sends (`protocol_send_ip`) the protocol made, and the NBLs they took.
    pub ip_sends: u64,
    /// LSOv2/USO super-packets the NIC segmented, and the packets it cut them into.
    pub super_packets: u64,
    pub segments: u64,
    /// LSOv2 sends that came back with `LsoV2TransmitComplete` set as the docs require.
    pub lso_completed: u64,
}

impl Ledger {
    /// Sends not yet completed back to the protocol.
    pub fn owed(&self) -> u64 {
        self.sent - self.completed
    }
}

/// Memory behind one simulation-built NBL.
struct Built {
    mdls: Vec<usize>,
    buffer: Box<[u8]>,
}

struct Nic {
    config: NicConfig,
    pool: usize,
    /// Sends the NIC has taken and not yet completed.
    pending_sends: VecDeque<usize>,
    /// Frames that went out on the wire, in order.
    wire: Vec<Vec<u8>>,
    /// Receives the protocol holds (not RESOURCES), returned on the next pump.
    protocol_held: Vec<usize>,
    ledger: Ledger,
    /// Alternates the IRQL of data-path calls (PASSIVE / DISPATCH), as the NDIS verifier habitually does.
    dispatch_toggle: bool,
    /// IP sends by id (the source port of their packets), for checking the wire.
    ip_sends: BTreeMap<u16, IpSend>,
    /// Sends the NIC could not carry out (an offload it does not offer): they complete with
    /// `NDIS_STATUS_FAILURE` ("Drivers must fail any send request they can't perform", USO docs).
    refused: std::collections::BTreeSet<usize>,
    next_ip_id: u16,
    /// Every frame the protocol received, in order (bounded by [`RECEIVED_KEPT`]), for byte-for-byte
    /// checks; taken by [`take_protocol_received`].
    received: Vec<Vec<u8>>,
}

/// How many received frames a NIC's protocol keeps for [`take_protocol_received`].
const RECEIVED_KEPT: usize = 65_536;

#[derive(Default)]
struct State {
    nics: BTreeMap<u32, Nic>,
    /// Every NBL in flight, by address. A hash map (not ordered): reports that list NBLs sort them.
    tracks: FxHashMap<usize, Track>,
    built: FxHashMap<usize, Built>,
    /// NBLs of bench-profile batches ([`crate::bench::FilterSendBatch`]): kept, not freed, on completion.
    kept: FxHashSet<usize>,
}

// SAFETY: the raw memory in `Built` is owned by the simulation and only touched under the lock.
unsafe impl Send for State {}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = crate::lock(&STATE);
    f(guard.get_or_insert_with(State::default))
}

pub(crate) fn reset() {
    crate::lock(&STATUS_SEEN).clear();
    crate::lock(&OFFLOAD_SEEN).clear();
    let built: Vec<usize> = with(|s| s.built.keys().copied().collect());
    for nbl in built {
        free_built(nbl);
    }
    let pools: Vec<usize> = with(|s| s.nics.values().map(|n| n.pool).collect());
    for pool in pools {
        // SAFETY: the pool was allocated by `add_nic` and its NBLs were just freed.
        unsafe { crate::nbl::NdisFreeNetBufferListPool(pool as NDIS_HANDLE) };
    }
    *crate::lock(&STATE) = None;
}

// ---------------------------------------------------------------------------------------------------------
// NBL construction
// ---------------------------------------------------------------------------------------------------------

fn chain_to_vec(mut nbl: *mut NET_BUFFER_LIST) -> Vec<usize> {
    let mut out = Vec::new();
    while !nbl.is_null() {
        out.push(nbl as usize);
        // SAFETY: every NBL in a chain handed to NDIS is a valid NET_BUFFER_LIST.
        nbl = unsafe { (*nbl).Next };
        if out.len() > 1_000_000 {
            break;
        }
    }
    out
}

/// Links `nbls` into a chain (and terminates it); returns its head.
fn link(nbls: &[usize]) -> *mut NET_BUFFER_LIST {
    for pair in nbls.windows(2) {
        // SAFETY: the NBLs are live and owned by the layer linking them.
        unsafe { (*(pair[0] as *mut NET_BUFFER_LIST)).Next = pair[1] as *mut NET_BUFFER_LIST };
    }
    if let Some(&last) = nbls.last() {
        // SAFETY: as above.
        unsafe { (*(last as *mut NET_BUFFER_LIST)).Next = std::ptr::null_mut() };
    }
    nbls.first().map_or(std::ptr::null_mut(), |&n| n as *mut NET_BUFFER_LIST)
}

/// Builds one NBL with one NB over `frame`, split into MDLs of `split` lengths after `data_offset` unused
/// bytes, from the NIC's pool. The simulation owns it (no driver).
fn build(pool: usize, frame: &[u8], split: &[usize], data_offset: u32) -> Option<usize> {
    crate::context::as_system(|| build_as_system(pool, frame, split, data_offset))
}

fn build_as_system(pool: usize, frame: &[u8], split: &[usize], data_offset: u32) -> Option<usize> {
    let offset = data_offset as usize;
    let mut buffer = vec![0u8; offset + frame.len()].into_boxed_slice();
    buffer[offset..].copy_from_slice(frame);
    let base = buffer.as_mut_ptr();
    // MDL boundaries: the first MDL covers the data offset plus the first split length.
    let mut bounds = Vec::new();
    let mut at = 0usize;
    for (i, &len) in split.iter().enumerate() {
        let end = if i == 0 { offset + len } else { at + len };
        if end >= buffer.len() {
            break;
        }
        bounds.push((at, end));
        at = end;
    }
    bounds.push((at, buffer.len()));
    let mut mdls = Vec::new();
    for &(start, end) in &bounds {
        let length = u32::try_from(end - start).ok()?;
        // SAFETY: `start..end` lies inside `buffer`, which outlives the MDL (freed together in free_built).
        let mdl = unsafe {
            crate::mdl::IoAllocateMdl(base.wrapping_add(start).cast(), length, 0, 0, std::ptr::null_mut())
        };
        if mdl.is_null() {
            return None;
        }
        // SAFETY: a fresh MDL over non-paged (simulated) memory.
        unsafe { crate::mdl::MmBuildMdlForNonPagedPool(mdl) };
        mdls.push(mdl as usize);
    }
    for pair in mdls.windows(2) {
        // SAFETY: both MDLs were just allocated by the simulation.
        unsafe { (*(pair[0] as *mut MDL)).Next = pair[1] as *mut MDL };
    }
    // SAFETY: the pool is the NIC's; the MDL chain covers `data_offset + frame.len()` bytes.
    let nbl = unsafe {
        crate::nbl::NdisAllocateNetBufferAndNetBufferList(
            pool as NDIS_HANDLE,
            0,
            0,
            mdls[0] as *mut MDL,
            data_offset,
            frame.len(),
        )
    };
    if nbl.is_null() {
        for m in mdls {
            // SAFETY: allocated above, not yet attached to anything.
            unsafe { crate::mdl::IoFreeMdl(m as *mut MDL) };
        }
        return None;
    }
    with(|s| s.built.insert(nbl as usize, Built { mdls, buffer }));
    Some(nbl as usize)
}

/// [`build`], then writes `info` (`(NetBufferListInfo index, value)` pairs) into the new NBL, as the stack or
/// the NIC marks what it sends or indicates.
fn build_with_info(
    pool: usize,
    frame: &[u8],
    split: &[usize],
    data_offset: u32,
    info: &[(usize, usize)],
) -> Option<usize> {
    let nbl = build(pool, frame, split, data_offset)?;
    for &(index, value) in info {
        // SAFETY: the simulation owns the NBL it just built; callers pass indices below MaxNetBufferListInfo.
        unsafe {
            (*(nbl as *mut NET_BUFFER_LIST)).NetBufferListInfo[index] = value as *mut core::ffi::c_void
        };
    }
    Some(nbl)
}

fn free_built(nbl: usize) {
    crate::context::as_system(|| free_built_as_system(nbl));
}

fn free_built_as_system(nbl: usize) {
    let Some(built) = with(|s| s.built.remove(&nbl)) else { return };
    // SAFETY: the NBL was built by `build` and nobody holds it any more.
    unsafe { crate::nbl::NdisFreeNetBufferList(nbl as *mut NET_BUFFER_LIST) };
    for m in built.mdls {
        // SAFETY: the MDLs were allocated by `build` for this NBL only.
        unsafe { crate::mdl::IoFreeMdl(m as *mut MDL) };
    }
    drop(built.buffer);
}

/// The bytes an NBL's first NB describes, read through its MDL chain.
///
/// # Safety
/// `nbl` must be a live NBL whose NB and MDLs are valid.
pub unsafe fn read_first_nb(nbl: *const NET_BUFFER_LIST) -> Vec<u8> {
    // SAFETY: the caller passes a live NBL.
    let nb: *mut NET_BUFFER = unsafe { (*nbl).FirstNetBuffer };
    if nb.is_null() {
        return Vec::new();
    }
    // SAFETY: a live NB of a live NBL.
    let nb = unsafe { &*nb };
    // SAFETY: DataLength is the active member of the union for NBs (nbl.h).
    let mut left = unsafe { nb.DataLength.DataLength } as usize;
    let mut skip = nb.CurrentMdlOffset as usize;
    let mut mdl = nb.CurrentMdl;
    let mut out = Vec::with_capacity(left);
    while left > 0 && !mdl.is_null() {
        // SAFETY: MDLs in a live NB's chain are valid.
        let m = unsafe { &*mdl };
        let va = if m.MappedSystemVa.is_null() {
            m.StartVa.cast::<u8>().wrapping_add(m.ByteOffset as usize)
        } else {
            m.MappedSystemVa.cast::<u8>()
        };
        let count = m.ByteCount as usize;
        if skip < count {
            let take = (count - skip).min(left);
            // SAFETY: the MDL describes `ByteCount` readable bytes at `va`.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(va.wrapping_add(skip), take) });
            left -= take;
            skip = 0;
        } else {
            skip -= count;
        }
        mdl = m.Next;
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Test frames
// ---------------------------------------------------------------------------------------------------------

/// A test frame: Ethernet header with [`TEST_ETHERTYPE`], then the sequence number, the payload length and
/// a payload whose every byte is derived from the sequence number, so corruption anywhere is detected.
pub fn test_frame(dst: [u8; 6], src: [u8; 6], seq: u64, payload_len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HEADER + TEST_HEADER + payload_len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&TEST_ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&u16::try_from(payload_len).unwrap_or(u16::MAX).to_be_bytes());
    f.extend((0..payload_len).map(|i| pattern(seq, i)));
    f
}

fn pattern(seq: u64, i: usize) -> u8 {
    (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) & 0xff) as u8
}

/// Checks a test frame; returns its sequence number if every byte is as built.
pub fn check_test_frame(frame: &[u8]) -> Option<u64> {
    if frame.len() < ETH_HEADER + TEST_HEADER || frame[12..14] != TEST_ETHERTYPE.to_be_bytes() {
        return None;
    }
    let seq = u64::from_be_bytes(frame[14..22].try_into().ok()?);
    let len = usize::from(u16::from_be_bytes(frame[22..24].try_into().ok()?));
    let payload = &frame[ETH_HEADER + TEST_HEADER..];
    (payload.len() == len && payload.iter().enumerate().all(|(i, &b)| b == pattern(seq, i))).then_some(seq)
}

// ---------------------------------------------------------------------------------------------------------
// NICs
// ---------------------------------------------------------------------------------------------------------

/// Adds a NIC to the machine (the miniport below the filter stack).
pub fn add_nic(config: NicConfig) -> Result<(), NDIS_STATUS> {
    let params = NET_BUFFER_LIST_POOL_PARAMETERS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEFAULT,
            1,
            std::mem::size_of::<NET_BUFFER_LIST_POOL_PARAMETERS>(),
        ),
        ProtocolId: 0,
        fAllocateNetBuffer: 1,
        ContextSize: 0,
        PoolTag: u32::from_le_bytes(*b"SimN"),
        DataSize: 0,
    };
    // SAFETY: valid parameters; the simulation owns the pool (no driver context).
    let pool = unsafe { crate::nbl::NdisAllocateNetBufferListPool(std::ptr::null_mut(), &raw const params) };
    if pool.is_null() {
        return Err(kernel::ffi::ndis::NDIS_STATUS_RESOURCES);
    }
    with(|s| {
        s.nics.insert(
            config.if_index,
            Nic {
                config,
                pool: pool as usize,
                pending_sends: VecDeque::new(),
                wire: Vec::new(),
                protocol_held: Vec::new(),
                ledger: Ledger::default(),
                dispatch_toggle: false,
                ip_sends: BTreeMap::new(),
                refused: std::collections::BTreeSet::new(),
                next_ip_id: 0,
                received: Vec::new(),
            },
        )
    });
    Ok(())
}

/// The NIC's identity for attach parameters.
pub fn nic_info(if_index: u32) -> Option<ndis::NicInfo> {
    with(|s| s.nics.get(&if_index).map(|n| ndis::NicInfo { if_index, mac: n.config.mac, mtu: n.config.mtu }))
}

/// The protocol's ledger for a NIC.
pub fn ledger(if_index: u32) -> Ledger {
    with(|s| s.nics.get(&if_index).map(|n| n.ledger.clone()).unwrap_or_default())
}

/// Forgets what the data path knew about an NBL a driver just freed (its address may be reused).
pub(crate) fn forget(nbl: usize) {
    let mut guard = crate::lock(&STATE);
    if let Some(s) = guard.as_mut() {
        s.tracks.remove(&nbl);
    }
}

/// Frames the NIC has put on the wire so far.
pub fn wire(if_index: u32) -> Vec<Vec<u8>> {
    with(|s| s.nics.get(&if_index).map(|n| n.wire.clone()).unwrap_or_default())
}

/// NBLs still in flight on the NIC's stack: (description, holder).
pub fn in_flight(if_index: u32) -> Vec<String> {
    with(|s| {
        s.tracks
            .iter()
            .filter(|(_, t)| t.nic == if_index)
            // A driver's own NBL that it freed (a clone after its return) is no longer in flight.
            .filter(|(&a, _)| crate::nbl::is_live(a as *const NET_BUFFER_LIST))
            .map(|(&a, t)| {
                (a, format!("{:?} NBL {a:#x} from {:?} held by {:?}", t.direction, t.origin, t.holder))
            })
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .collect()
    })
}

fn next_irql(if_index: u32) -> KIRQL {
    with(|s| {
        s.nics.get_mut(&if_index).map_or(PASSIVE_LEVEL, |n| {
            n.dispatch_toggle = !n.dispatch_toggle;
            if n.dispatch_toggle {
                DISPATCH_LEVEL
            } else {
                PASSIVE_LEVEL
            }
        })
    })
}

/// The next layer below `from` that takes sends: a Running module with a send handler, else the NIC.
fn layer_below(nic: u32, from: Layer) -> Layer {
    let modules = ndis::modules_on(nic); // bottom first
    let candidates: Vec<usize> = match from {
        Layer::Protocol => modules.iter().rev().copied().collect(),
        Layer::Module(m) => modules.iter().rev().skip_while(|&&x| x != m).skip(1).copied().collect(),
        Layer::Nic => Vec::new(),
    };
    candidates
        .into_iter()
        .find(|&m| {
            ndis::module_view(m).is_some_and(|v| {
                v.state == ModuleState::Running && v.handlers.0.SendNetBufferListsHandler.is_some()
            })
        })
        .map_or(Layer::Nic, Layer::Module)
}

/// The next layer above `from` that takes receives: a Running module with a receive handler, else the
/// protocol.
fn layer_above(nic: u32, from: Layer) -> Layer {
    let modules = ndis::modules_on(nic);
    let candidates: Vec<usize> = match from {
        Layer::Nic => modules,
        Layer::Module(m) => modules.iter().skip_while(|&&x| x != m).skip(1).copied().collect(),
        Layer::Protocol => Vec::new(),
    };
    candidates
        .into_iter()
        .find(|&m| {
            ndis::module_view(m).is_some_and(|v| {
                v.state == ModuleState::Running && v.handlers.0.ReceiveNetBufferListsHandler.is_some()
            })
        })
        .map_or(Layer::Protocol, Layer::Module)
}

/// Whether every module on the NIC is Running (the stack is up).
fn stack_running(nic: u32) -> bool {
    ndis::modules_on(nic)
        .iter()
        .all(|&m| ndis::module_view(m).is_some_and(|v| v.state == ModuleState::Running))
}

// ---------------------------------------------------------------------------------------------------------
// Send path
// ---------------------------------------------------------------------------------------------------------

/// The protocol sends `frames` on `nic`, one NBL each, as one chain. A paused stack completes them with
/// `NDIS_STATUS_PAUSED` (NDIS does so for a paused binding).
pub fn protocol_send(nic: u32, frames: &[Vec<u8>]) -> usize {
    let marked: Vec<(Vec<u8>, usize, NblInfo)> =
        frames.iter().map(|f| (f.clone(), ETH_HEADER, Vec::new())).collect();
    protocol_send_marked(nic, &marked)
}

/// The protocol (as TCP/IP) sends real IP packets on `nic`: Ethernet + IPv4/IPv6 + TCP/UDP with a payload
/// derived from each send's id. It uses the offloads it last saw advertised (the
/// `NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG` indication or its `OID_TCP_OFFLOAD_CURRENT_CONFIG` query, as
/// it came through the filters): checksum offload requests, LSOv2 and USO super-packets (one NBL, headers
/// in the first MDL); without them it computes checksums and segments itself. Returns the NBLs sent.
pub fn protocol_send_ip(nic: u32, sends: &[IpSend]) -> usize {
    let Some(marked) = protocol_frames(nic, sends) else { return 0 };
    protocol_send_marked(nic, &marked)
}

/// The frames (with MDL split and NBL info) the protocol builds for `sends`.
fn protocol_frames(nic: u32, sends: &[IpSend]) -> Option<Vec<(Vec<u8>, usize, NblInfo)>> {
    let view = protocol_offloads(nic);
    let (mac, first) = with(|s| {
        s.nics.get_mut(&nic).map(|n| {
            let first = n.next_ip_id;
            n.next_ip_id = n.next_ip_id.wrapping_add(u16::try_from(sends.len()).unwrap_or(0));
            for (i, send) in sends.iter().enumerate() {
                n.ip_sends.insert(first.wrapping_add(u16::try_from(i).unwrap_or(0)), *send);
            }
            n.ledger.ip_sends += sends.len() as u64;
            (n.config.mac, first)
        })
    })?;
    let mut marked = Vec::new();
    for (i, send) in sends.iter().enumerate() {
        let id = first.wrapping_add(u16::try_from(i).unwrap_or(0));
        for p in crate::offload::protocol_packets(PEER_MAC, mac, send, id, view.as_ref()) {
            let mut info = Vec::new();
            let mut split = ETH_HEADER;
            if p.checksum != 0 {
                info.push((TcpIpChecksumNetBufferListInfo, p.checksum as usize));
            }
            if p.lso != 0 {
                info.push((TcpLargeSendNetBufferListInfo, p.lso as usize));
            }
            if p.uso != 0 {
                info.push((UdpSegmentationOffloadInfo, p.uso as usize));
            }
            if p.lso | p.uso != 0 {
                // "All packet headers (Ethernet, IP, TCP) will be in the first MDL" for LSO.
                split = crate::offload::layout(&p.frame).map_or(ETH_HEADER, |l| l.payload);
            }
            marked.push((p.frame, split, info));
        }
    }
    Some(marked)
}

fn protocol_send_marked(nic: u32, frames: &[(Vec<u8>, usize, NblInfo)]) -> usize {
    let Some(pool) = with(|s| s.nics.get(&nic).map(|n| n.pool)) else { return 0 };
    let mut nbls = Vec::new();
    for (frame, split, info) in frames {
        nbls.extend(build_with_info(pool, frame, &[*split], 0, info));
    }
    send_built(nic, nbls)
}

/// The bench profile's protocol NBLs for `sends`, built once and kept across sends.
#[cfg(feature = "bench-profile")]
pub(crate) fn bench_build(nic: u32, sends: &[IpSend]) -> Vec<usize> {
    let Some(pool) = with(|s| s.nics.get(&nic).map(|n| n.pool)) else { return Vec::new() };
    let mut nbls = Vec::new();
    for (frame, split, info) in protocol_frames(nic, sends).unwrap_or_default() {
        nbls.extend(build_with_info(pool, &frame, &[split], 0, &info));
    }
    with(|s| s.kept.extend(nbls.iter().copied()));
    nbls
}

/// Sends a bench batch again; 0 when one of its NBLs is still in flight.
#[cfg(feature = "bench-profile")]
pub(crate) fn bench_send(nic: u32, nbls: &[usize]) -> usize {
    if with(|s| nbls.iter().any(|n| s.tracks.contains_key(n))) {
        return 0;
    }
    for &nbl in nbls {
        // SAFETY: the protocol owns its kept NBL again (not tracked: completed back to it).
        unsafe { (*(nbl as *mut NET_BUFFER_LIST)).Status = NDIS_STATUS_SUCCESS };
    }
    send_built(nic, nbls.to_vec())
}

/// Frees a bench batch (its NBLs must be back with the protocol).
#[cfg(feature = "bench-profile")]
pub(crate) fn bench_free(nbls: &[usize]) {
    for nbl in nbls {
        let idle = with(|s| s.kept.remove(nbl) && !s.tracks.contains_key(nbl));
        if idle {
            free_built(*nbl);
        }
    }
}

/// The protocol sends NBLs it built: tracked from here, handed to the layer below.
fn send_built(nic: u32, nbls: Vec<usize>) -> usize {
    // One reading of the clock for the chain (in real-time mode each is a system clock read).
    let now = crate::clock::now();
    with(|s| {
        if let Some(n) = s.nics.get_mut(&nic) {
            n.ledger.sent += nbls.len() as u64;
        }
        for &nbl in &nbls {
            s.tracks.insert(
                nbl,
                Track {
                    nic,
                    direction: Direction::Send,
                    origin: Layer::Protocol,
                    holder: Layer::Protocol,
                    path: SmallVec::new(),
                    resources: false,
                    source_handle: 0,
                    since: now,
                    late: false,
                },
            );
        }
    });
    if !stack_running(nic) {
        for &nbl in &nbls {
            // SAFETY: the protocol owns the NBL it just built.
            unsafe { (*(nbl as *mut NET_BUFFER_LIST)).Status = NDIS_STATUS_PAUSED };
            protocol_complete(nbl);
        }
        return nbls.len();
    }
    let count = nbls.len();
    hand_down(nic, Layer::Protocol, nbls);
    count
}

/// Records that `from` handed `nbls` on to `to` (which holds them now and must hand them back).
fn pass_on(nbls: &[usize], from: Layer, to: Layer) {
    let now = crate::clock::now();
    with(|s| {
        for nbl in nbls {
            if let Some(t) = s.tracks.get_mut(nbl) {
                t.path.push(from);
                t.holder = to;
                t.since = now;
            }
        }
    });
}

/// Moves `nbls` from `from` to the next layer below and calls it.
fn hand_down(nic: u32, from: Layer, nbls: Vec<usize>) {
    let target = layer_below(nic, from);
    pass_on(&nbls, from, target);
    match target {
        Layer::Module(m) => {
            let Some(view) = ndis::module_view(m) else { return };
            let Some(send) = view.handlers.0.SendNetBufferListsHandler else { return };
            let irql = next_irql(nic);
            let flags = if irql == DISPATCH_LEVEL { NDIS_SEND_FLAGS_DISPATCH_LEVEL } else { 0 };
            let head = link(&nbls);
            call_driver(view.owner, irql, "FilterSendNetBufferLists", || {
                // SAFETY: the module's registered handler with its own context and a chain it now owns.
                unsafe { send(view.context, head, 0, flags) }
            });
        }
        Layer::Nic => nic_take_sends(nic, &nbls),
        Layer::Protocol => {}
    }
}

/// The per-NBL offload information of a send: (checksum, LSO, USO) as their 32-bit values.
fn offload_info(nbl: usize) -> (u32, u32, u32) {
    let p = nbl as *const NET_BUFFER_LIST;
    // SAFETY: the NIC holds this live NBL; the indices are below MaxNetBufferListInfo.
    let info = unsafe { (*p).NetBufferListInfo };
    #[allow(clippy::cast_possible_truncation)]
    let value = |i: usize| info[i] as usize as u32;
    (
        value(TcpIpChecksumNetBufferListInfo),
        value(TcpLargeSendNetBufferListInfo),
        value(UdpSegmentationOffloadInfo),
    )
}

/// The miniport takes sends: it checks each one's offload metadata against what it advertised, carries
/// the offloads out (checksums, LSOv2/USO segmentation) for every NET_BUFFER and puts the resulting packets
/// on the wire. A send asking for what the NIC does not offer trips `offload.not_advertised` and is failed
/// without reaching the wire.
fn nic_take_sends(nic: u32, nbls: &[usize]) {
    let offloads = with(|s| s.nics.get(&nic).map(|n| n.config.offloads)).unwrap_or_else(Offloads::none);
    let mut frames = Vec::new();
    let mut refused = Vec::new();
    let mut super_packets = 0;
    let mut segments = 0;
    for &n in nbls {
        let buffers = read_nbs(n);
        let (checksum, lso, uso) = offload_info(n);
        if checksum | lso | uso != 0 {
            let first = buffers.first().map_or(&[][..], Vec::as_slice);
            if let Some(problem) =
                crate::offload::check_request(&offloads, checksum, lso, uso, buffers.len(), first)
            {
                violation(Rule::OffloadNotAdvertised, format!("NBL {n:#x}: {problem}"));
                refused.push(n);
                continue;
            }
        }
        for frame in &buffers {
            let out = crate::offload::nic_transmit(frame, checksum, lso, uso);
            if lso | uso != 0 {
                super_packets += 1;
                segments += out.len() as u64;
            }
            frames.extend(out);
        }
    }
    with(|s| {
        if let Some(n) = s.nics.get_mut(&nic) {
            n.ledger.on_wire += frames.len() as u64;
            n.ledger.super_packets += super_packets;
            n.ledger.segments += segments;
            n.wire.extend(frames);
            n.refused.extend(refused);
            n.pending_sends.extend(nbls.iter().copied());
        }
    });
}

/// The bytes of every NET_BUFFER of an NBL the NIC holds, in order.
fn read_nbs(nbl: usize) -> Vec<Vec<u8>> {
    // SAFETY: the NIC holds this live NBL.
    let mut nb = unsafe { (*(nbl as *const NET_BUFFER_LIST)).FirstNetBuffer };
    let mut out = Vec::new();
    while !nb.is_null() && out.len() < 1_000_000 {
        // A one-NB view of the NBL to reuse `read_first_nb`.
        // SAFETY: plain C data; zero is valid for every field.
        let mut view: NET_BUFFER_LIST = unsafe { std::mem::zeroed() };
        view.FirstNetBuffer = nb;
        // SAFETY: `view` points at a live NB of a live NBL.
        out.push(unsafe { read_first_nb(&raw const view) });
        // SAFETY: NBs of a live NBL are valid.
        nb = unsafe { (*nb).Next };
    }
    out
}

/// The NIC completes every send it holds with `status`.
pub fn nic_complete_sends(nic: u32, status: NDIS_STATUS) {
    let pending: Vec<usize> =
        with(|s| s.nics.get_mut(&nic).map(|n| n.pending_sends.drain(..).collect()).unwrap_or_default());
    let refused: std::collections::BTreeSet<usize> =
        with(|s| s.nics.get_mut(&nic).map(|n| std::mem::take(&mut n.refused)).unwrap_or_default());
    for nbl in pending {
        let status = if refused.contains(&nbl) && status == NDIS_STATUS_SUCCESS {
            kernel::ffi::ndis::NDIS_STATUS_FAILURE
        } else {
            status
        };
        // "Before completing the send operation for the large packet" the miniport writes
        // LsoV2TransmitComplete: Reserved = 0, Type = NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE.
        let (_, lso, _) = offload_info(nbl);
        if lso != 0 && !refused.contains(&nbl) {
            let p = nbl as *mut NET_BUFFER_LIST;
            let done = crate::offload::LSO_V2_TRANSMIT_COMPLETE as usize as *mut core::ffi::c_void;
            // SAFETY: the NIC holds the NBL until it completes it.
            unsafe { (*p).NetBufferListInfo[TcpLargeSendNetBufferListInfo] = done };
        }
        // SAFETY: the NIC holds the NBL until it completes it.
        unsafe { (*(nbl as *mut NET_BUFFER_LIST)).Status = status };
        complete_up(nbl);
    }
}

/// Hands a completed send back to the last layer that sent it.
fn complete_up(nbl: usize) {
    let Some(sender) = with(|s| {
        let t = s.tracks.get_mut(&nbl)?;
        let sender = t.path.pop()?;
        t.holder = sender;
        t.since = crate::clock::now();
        Some((sender, t.nic))
    }) else {
        return;
    };
    match sender {
        (Layer::Protocol, _) => protocol_complete(nbl),
        (Layer::Module(m), nic) => complete_to_module(nbl, m, nic),
        (Layer::Nic, _) => {}
    }
}

/// Completes a send to module `m`, which sent it down (its `FilterSendNetBufferListsComplete`).
fn complete_to_module(nbl: usize, m: usize, nic: u32) {
    let Some(view) = ndis::module_view(m) else { return };
    match view.handlers.0.SendNetBufferListsCompleteHandler {
        Some(complete) => {
            let irql = next_irql(nic);
            let flags = if irql == DISPATCH_LEVEL { NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL } else { 0 };
            let head = link(&[nbl]);
            call_driver(view.owner, irql, "FilterSendNetBufferListsComplete", || {
                // SAFETY: the module's registered handler; it owns the NBL again.
                unsafe { complete(view.context, head, flags) }
            });
        }
        // No completion handler: NDIS passes the completion on up.
        None => complete_up(nbl),
    }
}

/// The protocol's ledger entry for one completed send.
fn record_completion(ledger: &mut Ledger, status: NDIS_STATUS, lso: u32) {
    ledger.completed += 1;
    if lso == crate::offload::LSO_V2_TRANSMIT_COMPLETE {
        ledger.lso_completed += 1;
    }
    if status != NDIS_STATUS_SUCCESS {
        *ledger.failed.entry(status).or_default() += 1;
    }
}

fn protocol_complete(nbl: usize) {
    // SAFETY: the NBL is back with its originator, the protocol.
    let status = unsafe { (*(nbl as *mut NET_BUFFER_LIST)).Status };
    let (_, lso, _) = offload_info(nbl);
    let kept = with(|s| {
        if let Some(t) = s.tracks.remove(&nbl) {
            if let Some(n) = s.nics.get_mut(&t.nic) {
                record_completion(&mut n.ledger, status, lso);
            }
        }
        s.kept.contains(&nbl)
    });
    if !kept {
        free_built(nbl);
    }
}

fn check_flag(flags: u32, dispatch_flag: u32, routine: &str) {
    let at_dispatch = irql() == DISPATCH_LEVEL;
    let says_dispatch = flags & dispatch_flag != 0;
    if at_dispatch != says_dispatch {
        violation(
            Rule::IrqlFlagMismatch,
            format!(
                "{routine}: DISPATCH_LEVEL flag {} but IRQL is {}",
                if says_dispatch { "set" } else { "clear" },
                irql()
            ),
        );
    }
}

fn module_of(handle: NDIS_HANDLE, routine: &str) -> Option<(usize, u32, ModuleState)> {
    let m = handle as usize;
    match (ndis::nic_of(m), ndis::module_state(m)) {
        (Some(nic), Some(state)) => Some((m, nic, state)),
        _ => {
            violation(Rule::NdisBadHandle, format!("{routine}({handle:p}): not an attached filter module"));
            None
        }
    }
}

/// `NdisFSendNetBufferLists`. IRQL <= DISPATCH_LEVEL. The filter hands NBLs it owns to the next lower
/// layer; NBLs the simulation has not seen are the filter's own and must carry its handle in
/// `SourceHandle` (NET_BUFFER_LIST documentation: `SourceHandle` routes the completion to the originator).
///
/// # Safety
/// `nbls` must be a valid chain.
#[no_mangle]
pub unsafe extern "system" fn NdisFSendNetBufferLists(
    handle: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    _port: NDIS_PORT_NUMBER,
    flags: u32,
) {
    check_flag(flags, NDIS_SEND_FLAGS_DISPATCH_LEVEL, "NdisFSendNetBufferLists");
    let Some((m, nic, state)) = module_of(handle, "NdisFSendNetBufferLists") else { return };
    if matches!(state, ModuleState::Paused | ModuleState::Attaching | ModuleState::Restarting) {
        // Refused: the NBLs stay with the filter.
        violation(Rule::NdisSendWhilePaused, format!("NdisFSendNetBufferLists in state {state:?}"));
        return;
    }
    let mut accepted = Vec::new();
    let now = crate::clock::now();
    for nbl in chain_to_vec(nbls) {
        // SAFETY: a valid chain (caller's contract).
        let source = unsafe { (*(nbl as *mut NET_BUFFER_LIST)).SourceHandle } as usize;
        let problem = with(|s| {
            match s.tracks.get_mut(&nbl) {
            Some(t) if t.holder != Layer::Module(m) => {
                Some((Rule::NdisSendOwnership, format!("send of NBL {nbl:#x} held by {:?}, not this filter", t.holder)))
            }
            Some(t) if t.origin != Layer::Module(m) && source != t.source_handle => Some((
                Rule::NdisSourceHandle,
                format!("NBL {nbl:#x}: SourceHandle changed from {:#x} to {source:#x} by a filter that did not originate it", t.source_handle),
            )),
            Some(_) => None,
            None => {
                s.tracks.insert(
                    nbl,
                    Track {
                        nic,
                        direction: Direction::Send,
                        origin: Layer::Module(m),
                        holder: Layer::Module(m),
                        path: SmallVec::new(),
                        resources: false,
                        source_handle: source,
                        since: now,
                        late: false,
                    },
                );
                (source != m).then(|| {
                    (
                        Rule::NdisSourceHandle,
                        format!("filter-originated NBL {nbl:#x} sent with SourceHandle {source:#x}, not its NdisFilterHandle"),
                    )
                })
            }
        }
        });
        match problem {
            Some((rule, detail)) if rule == Rule::NdisSendOwnership => violation(rule, detail),
            Some((rule, detail)) => {
                violation(rule, detail);
                accepted.push(nbl);
            }
            None => accepted.push(nbl),
        }
    }
    if !accepted.is_empty() {
        hand_down(nic, Layer::Module(m), accepted);
    }
}

/// `NdisFSendNetBufferListsComplete`. IRQL <= DISPATCH_LEVEL. Completes NBLs the filter holds back to the
/// layer that sent them; a filter must not complete NBLs it originated (those complete to it).
///
/// # Safety
/// `nbls` must be a valid chain.
#[no_mangle]
pub unsafe extern "system" fn NdisFSendNetBufferListsComplete(
    handle: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    flags: u32,
) {
    check_flag(flags, NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL, "NdisFSendNetBufferListsComplete");
    let Some((m, _, _)) = module_of(handle, "NdisFSendNetBufferListsComplete") else { return };
    let nbls = chain_to_vec(nbls);
    // What the protocol's ledger needs, read while the NBLs are still the filter's to complete.
    let infos: Vec<(NDIS_STATUS, u32)> = nbls
        .iter()
        .map(|&nbl| {
            // SAFETY: a valid chain (caller's contract).
            let status = unsafe { (*(nbl as *mut NET_BUFFER_LIST)).Status };
            (status, offload_info(nbl).1)
        })
        .collect();
    // One pass under one hold of the state lock (a chain completes at once): each NBL's ownership is
    // checked, its sender popped (as `complete_up`), and a send back with the protocol accounted and
    // untracked there and then (as `protocol_complete`).
    let now = crate::clock::now();
    let mut problems = Vec::new();
    let mut to_modules = Vec::new();
    let mut to_free = Vec::with_capacity(nbls.len());
    with(|s| {
        // The protocol's ledger changes, added to its NIC once per run of one NIC's NBLs.
        let mut ledger: Option<(u32, Ledger)> = None;
        let flush = |s: &mut State, ledger: &mut Option<(u32, Ledger)>| {
            if let Some((nic, d)) = ledger.take() {
                if let Some(n) = s.nics.get_mut(&nic) {
                    n.ledger.completed += d.completed;
                    n.ledger.lso_completed += d.lso_completed;
                    for (status, count) in d.failed {
                        *n.ledger.failed.entry(status).or_default() += count;
                    }
                }
            }
        };
        for (&nbl, &(status, lso)) in nbls.iter().zip(&infos) {
            // One probe of the table per NBL (checked, updated and, back with the protocol, removed
            // through the same entry).
            let std::collections::hash_map::Entry::Occupied(mut entry) = s.tracks.entry(nbl) else {
                problems.push((Rule::NdisSendOwnership, format!("completion of unknown NBL {nbl:#x}")));
                continue;
            };
            let t = entry.get_mut();
            if t.holder != Layer::Module(m) {
                let detail = format!("completion of NBL {nbl:#x} held by {:?}", t.holder);
                problems.push((Rule::NdisSendOwnership, detail));
                continue;
            }
            if t.origin == Layer::Module(m) {
                let detail = format!("filter completed its own NBL {nbl:#x} up the stack");
                problems.push((Rule::NdisCompleteOwn, detail));
                continue;
            }
            let Some(sender) = t.path.pop() else { continue };
            t.holder = sender;
            t.since = now;
            match sender {
                Layer::Protocol => {
                    let nic = t.nic;
                    entry.remove();
                    if ledger.as_ref().is_some_and(|(n, _)| *n != nic) {
                        flush(s, &mut ledger);
                    }
                    let (_, d) = ledger.get_or_insert_with(|| (nic, Ledger::default()));
                    record_completion(d, status, lso);
                    if !s.kept.contains(&nbl) {
                        to_free.push(nbl);
                    }
                }
                Layer::Module(below) => to_modules.push((nbl, below, t.nic)),
                Layer::Nic => {}
            }
        }
        flush(s, &mut ledger);
    });
    for (rule, detail) in problems {
        violation(rule, detail);
    }
    for (nbl, below, nic) in to_modules {
        complete_to_module(nbl, below, nic);
    }
    to_free.into_iter().for_each(free_built);
}

// ---------------------------------------------------------------------------------------------------------
// Receive path
// ---------------------------------------------------------------------------------------------------------

/// The NIC receives `frames` and indicates them up as one chain, with `NDIS_RECEIVE_FLAGS_RESOURCES`
/// when `resources` (the NIC is low on receive buffers: the NBLs come back when the indication returns).
/// Returns how many were indicated (none while the stack is not running).
pub fn nic_indicate(nic: u32, frames: &[Vec<u8>], resources: bool) -> usize {
    let marked: Vec<(Vec<u8>, NblInfo)> = frames.iter().map(|f| (f.clone(), Vec::new())).collect();
    nic_indicate_marked(nic, &marked, resources)
}

/// The NIC receives real IP packets for the protocol (peer to local, one frame per `IpSend`, each payload
/// at most an MTU's worth) and indicates them as one chain, marking each NBL as a NIC with receive
/// offloads does: `TcpIpChecksumNetBufferListInfo` with the receive checksum results when it offloads
/// receive checksums for the IP version (IpChecksumSucceeded, TcpChecksumSucceeded / UdpChecksumSucceeded),
/// and, when `rss`, the Toeplitz RSS hash (`NET_BUFFER_LIST_SET_HASH_VALUE/TYPE/FUNCTION`). The protocol
/// checks that the marks describe the frame it gets, so a filter that rewrites a receive must clear or
/// rewrite them. Returns how many were indicated.
pub fn nic_indicate_ip(nic: u32, packets: &[IpSend], resources: bool, rss: bool) -> usize {
    let Some((mac, offloads, first)) = with(|s| {
        s.nics.get_mut(&nic).map(|n| {
            let first = n.next_ip_id;
            n.next_ip_id = n.next_ip_id.wrapping_add(u16::try_from(packets.len()).unwrap_or(0));
            (n.config.mac, n.config.offloads, first)
        })
    }) else {
        return 0;
    };
    let marked: Vec<(Vec<u8>, NblInfo)> = packets
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let id = first.wrapping_add(u16::try_from(i).unwrap_or(0));
            let frame = crate::offload::inbound_frame(mac, PEER_MAC, p, id);
            let mut info = Vec::new();
            let marks = crate::offload::rx_checksum_marks(&frame, &offloads);
            if marks != 0 {
                info.push((TcpIpChecksumNetBufferListInfo, marks as usize));
            }
            if rss {
                if let Some((value, kind)) = crate::offload::rss_hash(&frame) {
                    info.push((NetBufferListHashValue, value as usize));
                    info.push((NetBufferListHashInfo, kind as usize));
                }
            }
            (frame, info)
        })
        .collect();
    nic_indicate_marked(nic, &marked, resources)
}

/// The NIC receives `frames` (any Ethernet frames, e.g. a tunnel's UDP datagrams built by a test) and
/// marks each NBL as [`nic_indicate_ip`] does: receive checksum results for IP frames when the NIC offloads
/// receive checksums, and the RSS hash when `rss`; with `uro`, each is also marked as a URO coalesced
/// unit (`UdpRecvSegCoalesceOffloadInfo`: 2 segments of the frame's UDP payload size). Returns how many
/// were indicated.
pub fn nic_indicate_offloaded(nic: u32, frames: &[Vec<u8>], resources: bool, rss: bool, uro: bool) -> usize {
    let Some(offloads) = with(|s| s.nics.get(&nic).map(|n| n.config.offloads)) else { return 0 };
    let marked: Vec<(Vec<u8>, NblInfo)> = frames
        .iter()
        .map(|frame| {
            let mut info = Vec::new();
            let marks = crate::offload::rx_checksum_marks(frame, &offloads);
            if marks != 0 {
                info.push((TcpIpChecksumNetBufferListInfo, marks as usize));
            }
            if rss {
                if let Some((value, kind)) = crate::offload::rss_hash(frame) {
                    info.push((NetBufferListHashValue, value as usize));
                    info.push((NetBufferListHashInfo, kind as usize));
                }
            }
            if uro {
                // NDIS_UDP_RSC_OFFLOAD_NET_BUFFER_LIST_INFO: SegCount (16 bits) then SegSize (16 bits).
                let size = crate::offload::layout(frame).map_or(0, |l| frame.len() - l.payload);
                info.push((kernel::ffi::nbl::UdpRecvSegCoalesceOffloadInfo, 2 | (size << 16)));
            }
            (frame.clone(), info)
        })
        .collect();
    nic_indicate_marked(nic, &marked, resources)
}

/// Per-NBL information to set on a built NBL: (NET_BUFFER_LIST_INFO index, value).
/// `NetBufferListInfo` entries of a protocol send: (index, value).
pub type NblInfo = Vec<(usize, usize)>;

/// The simulated peer's MAC (the source of `nic_indicate_ip` frames, the destination of IP sends).
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

/// The NIC indicates `frames` with `nbl_flags` set in each NBL's `NblFlags` (e.g.
/// `NDIS_NBL_FLAGS_RECV_READ_ONLY`). Returns how many were indicated.
pub fn nic_indicate_with_flags(nic: u32, frames: &[Vec<u8>], resources: bool, nbl_flags: u32) -> usize {
    let marked: Vec<(Vec<u8>, NblInfo)> = frames.iter().map(|f| (f.clone(), Vec::new())).collect();
    nic_indicate_flagged(nic, &marked, resources, nbl_flags)
}

fn nic_indicate_marked(nic: u32, frames: &[(Vec<u8>, NblInfo)], resources: bool) -> usize {
    nic_indicate_flagged(nic, frames, resources, 0)
}

fn nic_indicate_flagged(nic: u32, frames: &[(Vec<u8>, NblInfo)], resources: bool, nbl_flags: u32) -> usize {
    let Some((pool, split, offset)) =
        with(|s| s.nics.get(&nic).map(|n| (n.pool, n.config.rx_split.clone(), n.config.rx_data_offset)))
    else {
        return 0;
    };
    if !stack_running(nic) {
        return 0;
    }
    let mut nbls = Vec::new();
    for (frame, info) in frames {
        nbls.extend(build_with_info(pool, frame, &split, offset, info));
    }
    for &nbl in &nbls {
        // SAFETY: the simulation owns the NBLs it just built.
        unsafe { (*(nbl as *mut NET_BUFFER_LIST)).NblFlags |= nbl_flags };
    }
    with(|s| {
        for &nbl in &nbls {
            s.tracks.insert(
                nbl,
                Track {
                    nic,
                    direction: Direction::Receive,
                    origin: Layer::Nic,
                    holder: Layer::Nic,
                    path: SmallVec::new(),
                    resources,
                    source_handle: 0,
                    since: crate::clock::now(),
                    late: false,
                },
            );
        }
    });
    let count = nbls.len();
    let flags = if resources { NDIS_RECEIVE_FLAGS_RESOURCES } else { 0 };
    hand_up(nic, Layer::Nic, &nbls, flags);
    if resources {
        // The indication returned: the NBLs are the NIC's again.
        for nbl in nbls {
            nic_reclaim(nbl);
        }
    }
    count
}

/// Moves `nbls` from `from` to the next layer above and calls it; for a RESOURCES indication, ownership
/// comes back to `from` when the call returns, and the chain must be as it was handed up.
fn hand_up(nic: u32, from: Layer, nbls: &[usize], flags: u32) {
    let target = layer_above(nic, from);
    let resources = flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0;
    pass_on(nbls, from, target);
    match target {
        Layer::Module(m) => {
            let Some(view) = ndis::module_view(m) else { return };
            let Some(receive) = view.handlers.0.ReceiveNetBufferListsHandler else { return };
            let irql = next_irql(nic);
            let flags = flags | if irql == DISPATCH_LEVEL { NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL } else { 0 };
            let head = link(nbls);
            let count = u32::try_from(nbls.len()).unwrap_or(u32::MAX);
            call_driver(view.owner, irql, "FilterReceiveNetBufferLists", || {
                // SAFETY: the module's registered handler with its own context and a chain it now holds.
                unsafe { receive(view.context, head, 0, count, flags) }
            });
            if resources {
                let after = chain_to_vec(head);
                if after != nbls {
                    violation(
                        Rule::NdisResourcesChain,
                        "FilterReceiveNetBufferLists returned from a RESOURCES indication without restoring the NBL chain",
                    );
                }
            }
        }
        Layer::Protocol => protocol_receive(nic, nbls, resources),
        Layer::Nic => {}
    }
    if resources {
        with(|s| {
            for nbl in nbls {
                if let Some(t) = s.tracks.get_mut(nbl) {
                    t.path.pop();
                    t.holder = from;
                    t.since = crate::clock::now();
                }
            }
        });
    }
}

fn protocol_receive(nic: u32, nbls: &[usize], resources: bool) {
    let mut ok = 0;
    let mut corrupt = 0;
    let mut frames = Vec::with_capacity(nbls.len());
    for &nbl in nbls {
        // SAFETY: the protocol holds these live NBLs for the duration of the indication.
        let frame = unsafe { read_first_nb(nbl as *const NET_BUFFER_LIST) };
        frames.push(frame.clone());
        let intact = if crate::offload::layout(&frame).is_some() {
            // SAFETY: as above; the indices are below MaxNetBufferListInfo.
            let info = unsafe { (*(nbl as *const NET_BUFFER_LIST)).NetBufferListInfo };
            #[allow(clippy::cast_possible_truncation)]
            let value = |i: usize| info[i] as usize as u32;
            match crate::offload::check_received(
                &frame,
                value(TcpIpChecksumNetBufferListInfo),
                value(NetBufferListHashValue),
                value(NetBufferListHashInfo),
            ) {
                Ok(_) => true,
                Err(why) => {
                    if std::env::var_os("WINSIM_VERBOSE").is_some() {
                        eprintln!("winsim protocol: received IP packet rejected: {why}");
                    }
                    false
                }
            }
        } else {
            check_test_frame(&frame).is_some()
        };
        if intact {
            ok += 1;
        } else {
            corrupt += 1;
        }
    }
    with(|s| {
        if let Some(n) = s.nics.get_mut(&nic) {
            n.ledger.received_ok += ok;
            n.ledger.received_corrupt += corrupt;
            let room = RECEIVED_KEPT.saturating_sub(n.received.len());
            n.received.extend(frames.into_iter().take(room));
            if !resources {
                n.protocol_held.extend_from_slice(nbls);
            }
        }
    });
}

/// The frames the protocol received on `nic` since the last call, in order of arrival.
pub fn take_protocol_received(nic: u32) -> Vec<Vec<u8>> {
    with(|s| s.nics.get_mut(&nic).map(|n| std::mem::take(&mut n.received)).unwrap_or_default())
}

/// How many receives the protocol holds on `nic` (indicated without RESOURCES and not yet returned).
pub fn protocol_holding(nic: u32) -> usize {
    with(|s| s.nics.get(&nic).map_or(0, |n| n.protocol_held.len()))
}

/// The protocol returns every receive it holds (as TCP/IP does shortly after an indication).
pub fn protocol_return_all(nic: u32) {
    let held: Vec<usize> =
        with(|s| s.nics.get_mut(&nic).map(|n| std::mem::take(&mut n.protocol_held)).unwrap_or_default());
    for nbl in held {
        return_down(nbl);
    }
}

/// Hands a returned receive back to the last layer that indicated it.
fn return_down(nbl: usize) {
    let Some((indicator, nic)) = with(|s| {
        let t = s.tracks.get_mut(&nbl)?;
        let indicator = t.path.pop()?;
        t.holder = indicator;
        t.since = crate::clock::now();
        Some((indicator, t.nic))
    }) else {
        return;
    };
    match indicator {
        Layer::Nic => nic_reclaim(nbl),
        Layer::Module(m) => {
            let Some(view) = ndis::module_view(m) else { return };
            match view.handlers.0.ReturnNetBufferListsHandler {
                Some(ret) => {
                    let irql = next_irql(nic);
                    let flags = if irql == DISPATCH_LEVEL { NDIS_RETURN_FLAGS_DISPATCH_LEVEL } else { 0 };
                    let head = link(&[nbl]);
                    call_driver(view.owner, irql, "FilterReturnNetBufferLists", || {
                        // SAFETY: the module's registered handler; it holds the NBL again.
                        unsafe { ret(view.context, head, flags) }
                    });
                }
                None => return_down(nbl),
            }
        }
        Layer::Protocol => {}
    }
}

fn nic_reclaim(nbl: usize) {
    with(|s| s.tracks.remove(&nbl));
    free_built(nbl);
}

/// `NdisFIndicateReceiveNetBufferLists`. IRQL <= DISPATCH_LEVEL. Indicates NBLs the filter holds (or
/// originated) to the next upper layer.
///
/// # Safety
/// `nbls` must be a valid chain of `count` NBLs.
#[no_mangle]
pub unsafe extern "system" fn NdisFIndicateReceiveNetBufferLists(
    handle: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    _port: NDIS_PORT_NUMBER,
    count: u32,
    flags: u32,
) {
    check_flag(flags, NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL, "NdisFIndicateReceiveNetBufferLists");
    let Some((m, nic, state)) = module_of(handle, "NdisFIndicateReceiveNetBufferLists") else { return };
    if matches!(state, ModuleState::Paused | ModuleState::Attaching | ModuleState::Restarting) {
        // Refused: the NBLs stay with the filter.
        violation(
            Rule::NdisReceiveWhilePaused,
            format!("NdisFIndicateReceiveNetBufferLists in state {state:?}"),
        );
        return;
    }
    let list = chain_to_vec(nbls);
    if list.len() != count as usize {
        violation(
            Rule::NdisReceiveOwnership,
            format!("NumberOfNetBufferLists {count} but the chain has {} NBLs", list.len()),
        );
    }
    let resources = flags & NDIS_RECEIVE_FLAGS_RESOURCES != 0;
    let mut accepted = Vec::new();
    for nbl in list {
        let problem = with(|s| {
            match s.tracks.get(&nbl) {
            Some(t) if t.holder != Layer::Module(m) => {
                Some(format!("indication of NBL {nbl:#x} held by {:?}, not this filter", t.holder))
            }
            Some(t) if t.resources && !resources => Some(format!(
                "NBL {nbl:#x} came with NDIS_RECEIVE_FLAGS_RESOURCES and was indicated up without it (the upper layer may keep it)"
            )),
            Some(_) => None,
            None => {
                s.tracks.insert(
                    nbl,
                    Track {
                        nic,
                        direction: Direction::Receive,
                        origin: Layer::Module(m),
                        holder: Layer::Module(m),
                        path: SmallVec::new(),
                        resources: false,
                        source_handle: 0,
                        since: crate::clock::now(),
                        late: false,
                    },
                );
                None
            }
        }
        });
        match problem {
            Some(detail) => violation(Rule::NdisReceiveOwnership, detail),
            None => accepted.push(nbl),
        }
    }
    if !accepted.is_empty() {
        let upward = flags & !NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL;
        hand_up(nic, Layer::Module(m), &accepted, upward);
    }
}

/// `NdisFReturnNetBufferLists`. IRQL <= DISPATCH_LEVEL. Returns receives the filter holds to the layer
/// below that indicated them; never RESOURCES NBLs (those return synchronously), never the filter's own
/// (those come back to its FilterReturnNetBufferLists).
///
/// # Safety
/// `nbls` must be a valid chain.
#[no_mangle]
pub unsafe extern "system" fn NdisFReturnNetBufferLists(
    handle: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    flags: u32,
) {
    check_flag(flags, NDIS_RETURN_FLAGS_DISPATCH_LEVEL, "NdisFReturnNetBufferLists");
    let Some((m, _, _)) = module_of(handle, "NdisFReturnNetBufferLists") else { return };
    for nbl in chain_to_vec(nbls) {
        let verdict = with(|s| match s.tracks.get(&nbl) {
            None => Err((Rule::NdisReceiveOwnership, format!("return of unknown NBL {nbl:#x}"))),
            Some(t) if t.resources => Err((
                Rule::NdisReturnResources,
                format!(
                    "NdisFReturnNetBufferLists on NBL {nbl:#x} indicated with NDIS_RECEIVE_FLAGS_RESOURCES"
                ),
            )),
            Some(t) if t.holder != Layer::Module(m) => {
                Err((Rule::NdisReceiveOwnership, format!("return of NBL {nbl:#x} held by {:?}", t.holder)))
            }
            Some(t) if t.origin == Layer::Module(m) => {
                Err((Rule::NdisReturnOwn, format!("filter returned its own NBL {nbl:#x} down the stack")))
            }
            Some(_) => Ok(()),
        });
        match verdict {
            Ok(()) => return_down(nbl),
            Err((rule, detail)) => violation(rule, detail),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Pause accounting and the pump
// ---------------------------------------------------------------------------------------------------------

/// What `module` still owes at the moment its pause completes: NBLs it holds, sends it passed down that
/// have not completed to it, receives it indicated up that have not been returned to it.
pub fn owed_by(module: usize) -> Vec<String> {
    with(|s| {
        s.tracks
            .iter()
            .filter(|(&a, _)| crate::nbl::is_live(a as *const NET_BUFFER_LIST))
            .filter(|(_, t)| t.holder == Layer::Module(module) || t.path.contains(&Layer::Module(module)))
            // The module's own NBL back with it after its return or completion is idle in its pool, not
            // something it owes anyone (a filter may keep preallocated NBLs across a pause).
            .filter(|(_, t)| {
                !(t.origin == Layer::Module(module) && t.holder == t.origin && t.path.is_empty())
            })
            .map(|(&a, t)| {
                (a, format!("{:?} NBL {a:#x} (from {:?}, held by {:?})", t.direction, t.origin, t.holder))
            })
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .collect()
    })
}

/// Called when a module's pause completes: "The pause operation is not complete until" every send and
/// receive it is part of has come back (Pausing a Filter Module).
pub(crate) fn check_paused(module: usize) {
    let owed = owed_by(module);
    if !owed.is_empty() {
        violation(
            Rule::NdisPauseOutstanding,
            format!(
                "pause completed with {} NBL(s) outstanding: {}",
                owed.len(),
                owed.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ),
        );
    }
}

/// Runs the NICs and the protocol until nothing moves: NICs complete their sends, the protocol returns
/// its receives. Returns how many NBLs moved.
pub fn pump() -> usize {
    let mut moved = 0;
    loop {
        let nics: Vec<(u32, usize, usize)> = with(|s| {
            s.nics.iter().map(|(&i, n)| (i, n.pending_sends.len(), n.protocol_held.len())).collect()
        });
        let work: usize = nics.iter().map(|(_, a, b)| a + b).sum();
        if work == 0 {
            return moved;
        }
        moved += work;
        for (nic, _, _) in nics {
            nic_complete_sends(nic, NDIS_STATUS_SUCCESS);
            protocol_return_all(nic);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Status indications
// ---------------------------------------------------------------------------------------------------------

/// `NDIS_STATUS_RESET_START` / `NDIS_STATUS_RESET_END` (ndis.h).
pub const NDIS_STATUS_RESET_START: NDIS_STATUS = 0x4001_0004;
pub const NDIS_STATUS_RESET_END: NDIS_STATUS = 0x4001_0005;

static STATUS_SEEN: Mutex<Vec<(u32, NDIS_STATUS)>> = Mutex::new(Vec::new());

/// Status codes the protocol received, per NIC, in order.
pub fn protocol_status(nic: u32) -> Vec<NDIS_STATUS> {
    crate::lock(&STATUS_SEEN).iter().filter(|(n, _)| *n == nic).map(|&(_, s)| s).collect()
}

/// The NIC indicates a status (`NdisMIndicateStatusEx`): it travels up through each module's
/// FilterStatus (a filter passes it on with `NdisFIndicateStatus`) to the protocol.
pub fn nic_indicate_status(nic: u32, code: NDIS_STATUS, buffer: &mut [u8]) {
    // SAFETY: plain C data; zero is valid for every field.
    let mut indication: kernel::ffi::oid::NDIS_STATUS_INDICATION = unsafe { std::mem::zeroed() };
    indication.Header = NDIS_OBJECT_HEADER::new(
        kernel::ffi::ndis::NDIS_OBJECT_TYPE_STATUS_INDICATION,
        kernel::ffi::oid::NDIS_STATUS_INDICATION_REVISION_1,
        std::mem::size_of::<kernel::ffi::oid::NDIS_STATUS_INDICATION>(),
    );
    indication.StatusCode = code;
    indication.StatusBuffer = buffer.as_mut_ptr().cast();
    indication.StatusBufferSize = u32::try_from(buffer.len()).unwrap_or(0);
    status_up(nic, Layer::Nic, &raw mut indication);
    if code == NDIS_STATUS_RESET_START {
        // A reset aborts the sends the NIC holds.
        nic_complete_sends(nic, kernel::ffi::ndis::NDIS_STATUS_REQUEST_ABORTED);
    }
}

fn status_up(nic: u32, from: Layer, indication: *mut kernel::ffi::oid::NDIS_STATUS_INDICATION) {
    let modules = ndis::modules_on(nic);
    let above: Vec<usize> = match from {
        Layer::Nic => modules,
        Layer::Module(m) => modules.iter().skip_while(|&&x| x != m).skip(1).copied().collect(),
        Layer::Protocol => Vec::new(),
    };
    // Status goes to attached modules in any state but Attaching (FilterStatus may be called when Paused).
    let next = above.into_iter().find_map(|m| {
        let view = ndis::module_view(m)?;
        (view.state != ModuleState::Attaching && view.handlers.0.StatusHandler.is_some()).then_some((m, view))
    });
    match next {
        Some((_, view)) => {
            let handler = view.handlers.0.StatusHandler.expect("checked above");
            call_driver(view.owner, PASSIVE_LEVEL, "FilterStatus", || {
                // SAFETY: the module's registered handler; the indication lives for the call.
                unsafe { handler(view.context, indication) }
            });
        }
        None => {
            // SAFETY: the indication is valid for the duration of the indication.
            let code = unsafe { (*indication).StatusCode };
            crate::lock(&STATUS_SEEN).push((nic, code));
            if code == NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG {
                // SAFETY: as above.
                let buffer = unsafe { (*indication).StatusBuffer };
                // SAFETY: as above.
                let size = unsafe { (*indication).StatusBufferSize };
                let bytes = if buffer.is_null() {
                    Vec::new()
                } else {
                    // SAFETY: the indicator's status buffer holds StatusBufferSize bytes for the call.
                    unsafe { std::slice::from_raw_parts(buffer.cast::<u8>(), size as usize) }.to_vec()
                };
                crate::lock(&OFFLOAD_SEEN).insert(nic, bytes);
            }
        }
    }
}

/// `NdisFIndicateStatus`. IRQL <= DISPATCH_LEVEL. Passes a status indication to the next upper layer.
///
/// # Safety
/// `indication` must be valid for the call.
#[no_mangle]
pub unsafe extern "system" fn NdisFIndicateStatus(
    handle: NDIS_HANDLE,
    indication: *mut kernel::ffi::oid::NDIS_STATUS_INDICATION,
) {
    crate::context::require_irql_at_most(DISPATCH_LEVEL, "NdisFIndicateStatus");
    let Some((m, nic, _)) = module_of(handle, "NdisFIndicateStatus") else { return };
    status_up(nic, Layer::Module(m), indication);
}

/// The NICs of the machine (their ifIndex), in order.
pub fn nics() -> Vec<u32> {
    with(|s| s.nics.keys().copied().collect())
}

// ---------------------------------------------------------------------------------------------------------
// Task offloads
// ---------------------------------------------------------------------------------------------------------

/// The `NDIS_OFFLOAD` each NIC's protocol last saw, as bytes (from the status indication or its query).
static OFFLOAD_SEEN: Mutex<BTreeMap<u32, Vec<u8>>> = Mutex::new(BTreeMap::new());

/// The offloads the miniport of `nic` advertises.
pub fn nic_offloads(nic: u32) -> Option<Offloads> {
    with(|s| s.nics.get(&nic).map(|n| n.config.offloads))
}

/// The miniport's current `NDIS_OFFLOAD` (revision 6, 216 bytes), as OID_TCP_OFFLOAD_CURRENT_CONFIG
/// returns it.
pub fn nic_offload_bytes(nic: u32) -> Option<Vec<u8>> {
    nic_offloads(nic).map(|o| crate::offload::ndis_offload_bytes(&o))
}

/// The miniport reports its current offload configuration as the stack comes up (after attach and
/// restart, or after a change): `NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG` with an `NDIS_OFFLOAD`, up
/// through every filter's FilterStatus to the protocol, which uses what reaches it.
pub fn nic_announce_offloads(nic: u32) {
    let Some(mut bytes) = nic_offload_bytes(nic) else { return };
    nic_indicate_status(nic, NDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG, &mut bytes);
}

/// The `NDIS_OFFLOAD` bytes the protocol of `nic` last saw, if any.
pub fn protocol_offload_bytes(nic: u32) -> Option<Vec<u8>> {
    crate::lock(&OFFLOAD_SEEN).get(&nic).cloned()
}

/// The offloads the protocol of `nic` believes the NIC has (what it last saw; none before that).
pub fn protocol_offloads(nic: u32) -> Option<Offloads> {
    protocol_offload_bytes(nic).and_then(|b| crate::offload::parse_ndis_offload(&b))
}

/// The protocol queries `OID_TCP_OFFLOAD_CURRENT_CONFIG` through the stack; a successful answer becomes
/// its view of the NIC's offloads.
pub fn protocol_query_offloads(nic: u32) -> crate::oid::OidResult {
    let r = crate::oid::protocol_request(
        nic,
        kernel::ffi::oid::NdisRequestQueryInformation,
        kernel::ffi::oid::OID_TCP_OFFLOAD_CURRENT_CONFIG,
        &[0u8; kernel::ffi::oid::NDIS_SIZEOF_NDIS_OFFLOAD_REVISION_6],
    );
    if r.status == NDIS_STATUS_SUCCESS {
        crate::lock(&OFFLOAD_SEEN).insert(nic, r.buffer[..r.bytes as usize].to_vec());
    }
    r
}

/// What the wire of a NIC carried for the protocol's IP sends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpWireReport {
    /// IP packets on the wire, each with valid lengths and checksums and at most MTU-sized.
    pub packets: u64,
    /// IP sends whose packets reassemble to exactly the payload sent.
    pub sends_intact: u64,
    /// IP sends with no packet on the wire (e.g. completed as paused before reaching the NIC).
    pub sends_missing: u64,
    pub payload_bytes: u64,
}

/// Checks every IP packet the NIC put on the wire (lengths, IPv4 header checksum, TCP/UDP checksum, size
/// within the MTU) and that each IP send's packets reassemble to its payload byte for byte. `Err` names
/// the first problem.
pub fn check_ip_wire(nic: u32) -> Result<IpWireReport, String> {
    let (wire, sends, mtu) = with(|s| {
        s.nics.get(&nic).map(|n| (n.wire.clone(), n.ip_sends.clone(), n.config.mtu)).unwrap_or_default()
    });
    let mut by_send: BTreeMap<u16, Vec<&[u8]>> = BTreeMap::new();
    let mut report = IpWireReport::default();
    for frame in &wire {
        if crate::offload::layout(frame).is_none() {
            continue;
        }
        crate::offload::verify_packet(frame).map_err(|e| format!("wire packet {}: {e}", report.packets))?;
        if frame.len() > ETH_HEADER + mtu as usize {
            return Err(format!("wire packet of {} bytes exceeds the MTU {mtu}", frame.len() - ETH_HEADER));
        }
        report.packets += 1;
        let id = crate::offload::send_id(frame).unwrap_or(u16::MAX);
        by_send.entry(id).or_default().push(frame);
    }
    for (id, send) in &sends {
        let Some(packets) = by_send.get(id) else {
            report.sends_missing += 1;
            continue;
        };
        let payload = crate::offload::reassemble(packets);
        if payload.len() != send.payload_len
            || payload.iter().enumerate().any(|(i, &b)| b != crate::offload::payload_byte(*id, i))
        {
            return Err(format!(
                "IP send {id} ({send:?}): {} packets reassemble to {} bytes that differ from the {} sent",
                packets.len(),
                payload.len(),
                send.payload_len
            ));
        }
        report.sends_intact += 1;
        report.payload_bytes += payload.len() as u64;
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------------------------
// Time budgets
// ---------------------------------------------------------------------------------------------------------

/// How long a filter module may hold an NBL: the NDIS verifier's NdisTimedDataSend rule gives a miniport 30
/// seconds to complete a send (bug check 0xC4, 0x9200D); NdisFilterTimedDataReceive (0xC4, 0x92012) times a
/// filter's receive without stating the value, so the same 30 seconds is used for receives.
pub const DATA_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Reports every NBL a filter module has held longer than [`DATA_DEADLINE`] of machine time (once each).
pub fn check_deadlines() {
    let now = crate::clock::now();
    let limit = crate::clock::ticks(DATA_DEADLINE);
    let mut late: Vec<(Direction, usize, Layer, u64)> = with(|s| {
        s.tracks
            .iter_mut()
            .filter(|(&a, t)| {
                matches!(t.holder, Layer::Module(_))
                    && !t.late
                    && now.saturating_sub(t.since) > limit
                    && crate::nbl::is_live(a as *const NET_BUFFER_LIST)
            })
            .map(|(&a, t)| {
                t.late = true;
                (t.direction, a, t.holder, now.saturating_sub(t.since))
            })
            .collect()
    });
    // In address order, as the reports were before the map was hashed.
    late.sort_unstable_by_key(|l| l.1);
    for (direction, nbl, holder, held) in late {
        let rule = match direction {
            Direction::Send => Rule::NdisTimedDataSend,
            Direction::Receive => Rule::NdisTimedDataReceive,
        };
        violation(rule, format!("{holder:?} held NBL {nbl:#x} for {:?}", crate::clock::duration(held)));
    }
}

/// Lets `duration` of machine time pass in one-second steps: timers fire, WSK and the data path run, and the
/// time budgets are checked after every step.
pub fn wait(duration: std::time::Duration) {
    let step = std::time::Duration::from_secs(1);
    let mut left = duration;
    while !left.is_zero() {
        let now = left.min(step);
        crate::sched::advance(now);
        crate::wsk::pump();
        check_deadlines();
        left -= now;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Send cancellation
// ---------------------------------------------------------------------------------------------------------

/// Calls the cancel-send handler of the first module below `from` (bottom-first order) that has one, at
/// `irql`. The miniport holds nothing cancellable in the simulation: a cancel that reaches it ends there.
fn cancel_below(nic: u32, from: Layer, cancel_id: *mut core::ffi::c_void) {
    let modules = ndis::modules_on(nic);
    let candidates: Vec<usize> = match from {
        Layer::Protocol => modules.iter().rev().copied().collect(),
        Layer::Module(m) => modules.iter().rev().skip_while(|&&x| x != m).skip(1).copied().collect(),
        Layer::Nic => Vec::new(),
    };
    for m in candidates {
        let Some(view) = ndis::module_view(m) else { continue };
        let Some(cancel) = view.handlers.0.CancelSendNetBufferListsHandler else { continue };
        call_driver(view.owner, DISPATCH_LEVEL, "FilterCancelSendNetBufferLists", || {
            // SAFETY: the module's registered handler with its own context.
            unsafe { cancel(view.context, cancel_id) }
        });
        return;
    }
}

/// The protocol cancels its sends marked with `cancel_id` (`NdisCancelSendNetBufferLists`): NDIS calls
/// the top module's `FilterCancelSendNetBufferLists`, which passes it on down ("Canceling a Send Request
/// in a Filter Driver").
pub fn protocol_cancel_send(nic: u32, cancel_id: usize) {
    cancel_below(nic, Layer::Protocol, cancel_id as *mut core::ffi::c_void);
}

/// The protocol sends `frames` as one chain, each NBL with the given `NetBufferListInfo` entries
/// (index, value), e.g. a cancel id (`NetBufferListCancelId`) or offload requests.
pub fn protocol_send_with_info(nic: u32, frames: &[(Vec<u8>, NblInfo)]) -> usize {
    let marked: Vec<(Vec<u8>, usize, NblInfo)> =
        frames.iter().map(|(f, info)| (f.clone(), ETH_HEADER, info.clone())).collect();
    protocol_send_marked(nic, &marked)
}

/// `NdisFCancelSendNetBufferLists`. IRQL <= `DISPATCH_LEVEL`. Passes a cancel request to the layer below
/// the calling module.
///
/// # Safety
/// Any handle is validated.
#[no_mangle]
pub unsafe extern "system" fn NdisFCancelSendNetBufferLists(
    handle: NDIS_HANDLE,
    cancel_id: *mut core::ffi::c_void,
) {
    crate::context::require_irql_at_most(DISPATCH_LEVEL, "NdisFCancelSendNetBufferLists");
    let m = handle as usize;
    let Some(nic) = ndis::nic_of(m) else {
        violation(
            Rule::NdisBadHandle,
            format!("NdisFCancelSendNetBufferLists({handle:p}): not an attached filter module"),
        );
        return;
    };
    cancel_below(nic, Layer::Module(m), cancel_id);
}
