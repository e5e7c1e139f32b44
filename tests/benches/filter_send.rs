//! The filter's send path per packet at 64/512/1420-byte inner packets, all rows of a size interleaved
//! in one run (see `harness`), ratios to `raw-aead` from the same run:
//!
//! * `divert-zero-copy`: the protocol sends a chain of 32 IPv4/UDP packets to a policy prefix; the real
//!   filter classifies (`FilterSendNetBufferLists`), queues the originals, its worker DPC seals each
//!   straight from the MDL chain, sends through `WskSendMessages` and completes the originals. Runs in
//!   winsim's bench profile (`winsim::bench`): the protocol resends NBLs it built once, WSK sends
//!   complete inline into an in-memory sink (no system call); NBL ownership tracking, IRQL and lock
//!   checks, IRP bookkeeping stay on.
//! * `divert-copy-then-seal`: the same path with the worker's copy-then-seal baseline on
//!   (`filter::test_hooks::set_copy_then_seal`): each packet is first copied out of its MDLs into a
//!   scratch buffer, then sealed from the copy — the double-copy design the zero-copy path replaces, as a
//!   whole path.
//! * `divert-deep-copy`: the same with the hold budget at 0, so every diverted NBL is deep-copied (NBL +
//!   NB + MDL + payload) and completed before it is sealed: the forced slow path.
//! * `seal-segments` (what the worker does per packet: the engine seals from a 3-segment scatter list,
//!   an IP packet split over MDLs), `copy-then-seal` (the double-copy baseline the zero-copy path
//!   replaces: gather the segments into a linear buffer, then seal), `engine-seal-linear` (the engine on
//!   one contiguous buffer) and `raw-aead` (the backend's AEAD alone, no OpenVPN framing).
//!
//! Run: `cargo bench -p ndistest --features bench --bench filter_send`. The split of the instructions
//! between driver, engine and simulation: `tests/benches/callgrind_split.py`. See docs/performance.md.
#![allow(clippy::pedantic, missing_docs)]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

mod harness;

use std::hint::black_box;

use datapath::{Aead, Cipher, DefaultAead, KeyConfig, KeyDirection, KeyFormat, KeySlotId, Peer, PeerConfig};
use harness::{region, Row};
use ndistest::install;
use uapi::ovpn::{OvpnCipherAlg, OvpnCryptoData, OvpnCryptoDataV2, OvpnKeyDirection, OvpnKeySlot};
use uapi::rdco_filter::{RdcoAddPeer, RdcoFilterIoctl, RdcoNewKey, RdcoPrefix, RdcoSetPolicy};
use uapi::Wire;
use winsim::datapath::{self as sim, IpSend, NicConfig, Proto};

const SIZES: [usize; 3] = [64, 512, 1420];
const BATCH: usize = 32;
const NIC: u32 = 1;

fn encode<T: Wire>(value: &T) -> Vec<u8> {
    let mut out = vec![0u8; T::SIZE];
    value.write_to(&mut out).expect("encodes");
    out
}

/// Boots a machine with the filter on one NIC, configured and keyed (verified, default profile).
fn machine() -> winsim::Machine {
    let mut m = winsim::Machine::boot();
    sim::add_nic(NicConfig::ethernet(NIC)).expect("nic");
    install::install_from_inf(
        &mut m,
        &install::inf_dir().join(uapi::names::FILTER_INF),
        filter::driver_entry,
    )
    .expect("install");
    let h = winsim::device::open(uapi::names::FILTER_USER_PATH).expect("open");
    let io = |code: RdcoFilterIoctl, input: Vec<u8>| {
        let (s, _) = winsim::device::device_io_control(h, code.code(), &input, 0);
        assert_eq!(s, 0, "{code:?}");
    };
    let prefix = RdcoPrefix { addr: std::net::IpAddr::V4([198, 51, 100, 0].into()), prefix_len: 24 };
    io(RdcoFilterIoctl::SetPolicy, encode(&RdcoSetPolicy::new(&[prefix]).unwrap()));
    io(
        RdcoFilterIoctl::AddPeer,
        encode(&RdcoAddPeer {
            peer_id: 1,
            local: SocketAddr::from(([127, 0, 0, 1], 0)),
            remote: SocketAddr::from(([127, 0, 0, 1], 9)),
        }),
    );
    let dir = OvpnKeyDirection { key: [0x11; 32], key_len: 32, nonce_tail: [0x22; 8] };
    io(
        RdcoFilterIoctl::NewKey,
        encode(&RdcoNewKey {
            key: OvpnCryptoDataV2 {
                v1: OvpnCryptoData {
                    encrypt: dir,
                    decrypt: dir,
                    key_slot: OvpnKeySlot::Primary,
                    cipher_alg: OvpnCipherAlg::AesGcm,
                    key_id: 0,
                    peer_id: 1,
                },
                crypto_options: 0,
            },
        }),
    );
    m
}

/// One batch through the filter: the protocol's send, the worker DPC, WSK completions (inline) and the
/// NIC's completions.
fn one_batch(batch: &winsim::bench::FilterSendBatch) {
    assert_eq!(batch.send(), BATCH, "a batch NBL is still in flight");
    winsim::sched::run_until_idle();
    winsim::wsk::pump();
    sim::pump();
}

/// A row that runs `f` on `BATCH` packets per timed call.
fn each<'a>(
    peer: &'a RefCell<Peer>,
    out: &'a RefCell<Vec<u8>>,
    linear: &'a RefCell<Vec<u8>>,
    f: impl Fn(&mut Peer, &mut [u8], &mut [u8]) + 'a,
) -> impl FnMut(usize) -> Duration + 'a {
    move |calls: usize| {
        let (mut peer, mut out, mut linear) = (peer.borrow_mut(), out.borrow_mut(), linear.borrow_mut());
        let mut t = Duration::ZERO;
        for _ in 0..calls {
            t += region(|| {
                for _ in 0..BATCH {
                    f(&mut peer, &mut out, &mut linear);
                }
            });
        }
        t
    }
}

fn packet(n: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..n).map(|i| i as u8).collect();
    p[0] = 0x45;
    p[9] = 17;
    p
}

fn main() {
    let _m = machine();
    let profile = winsim::bench::Profile::enter();
    let dir = || KeyDirection { key: [0x11; 32], nonce_tail: [0x22; 8] };
    let config = KeyConfig {
        cipher: Cipher::Aes256Gcm,
        format: KeyFormat::Classic,
        key_id: 0,
        encrypt: dir(),
        decrypt: dir(),
    };
    let now = datapath::Instant::from_millis(0);
    let raw = DefaultAead::new(Cipher::Aes256Gcm, &[0x11; 32]).unwrap();
    let (nonce, aad) = ([7u8; 12], [1u8; 8]);
    println!(
        "filter send path, ns per packet (median of {} interleaved rounds), ratio to raw-aead",
        harness::ROUNDS
    );
    for size in SIZES {
        if harness::skip_size("filter_send", size) {
            continue;
        }
        // An inner IP packet of `size` bytes: 20 IPv4 + 8 UDP + payload.
        let send = IpSend {
            v6: false,
            proto: Proto::Udp,
            payload_len: size - 28,
            request_checksum: false,
            mss: 1472,
        };
        let batch = winsim::bench::FilterSendBatch::new(NIC, &vec![send; BATCH]);
        assert_eq!(batch.len(), BATCH);
        let divert = |budget: u32, copy_then_seal: bool| {
            let batch = &batch;
            move |calls: usize| {
                filter::test_hooks::set_hold_policy(budget, 60_000, 64 << 20, 5_000);
                filter::test_hooks::set_copy_then_seal(copy_then_seal);
                let _ = winsim::bench::sink_take();
                let mut t = Duration::ZERO;
                for _ in 0..calls {
                    t += region(|| one_batch(batch));
                }
                let (sent, _, last) = winsim::bench::sink_take();
                assert_eq!(sent, (calls * BATCH) as u64, "datagrams on the wire");
                assert!(last.len() > size, "a sealed datagram is longer than its packet");
                filter::test_hooks::set_copy_then_seal(false);
                t
            }
        };
        let p = packet(size);
        // As the protocol's MDLs split it: headers, a piece, the rest.
        let (a, rest) = p.split_at(28.min(size));
        let (b2, c2) = rest.split_at(rest.len() / 3);
        let peer = RefCell::new({
            let mut peer: Peer = Peer::new(&PeerConfig::new(1), now);
            peer.install_key(KeySlotId::Primary, &config).unwrap();
            peer
        });
        let out = RefCell::new(vec![0u8; size + 64]);
        let linear = RefCell::new(vec![0u8; size]);
        let seal_segments = |peer: &mut Peer, out: &mut [u8], _: &mut [u8]| {
            black_box(peer.seal(now, &[black_box(a), b2, c2], out).unwrap());
        };
        let copy_then_seal = |peer: &mut Peer, out: &mut [u8], linear: &mut [u8]| {
            linear[..a.len()].copy_from_slice(black_box(a));
            linear[a.len()..a.len() + b2.len()].copy_from_slice(b2);
            linear[a.len() + b2.len()..].copy_from_slice(c2);
            black_box(peer.seal(now, &[linear], out).unwrap());
        };
        let seal_linear = |peer: &mut Peer, out: &mut [u8], _: &mut [u8]| {
            black_box(peer.seal(now, &[black_box(&p)], out).unwrap());
        };
        let raw_aead = |_: &mut Peer, out: &mut [u8], _: &mut [u8]| {
            black_box(raw.seal(&nonce, &aad, &[black_box(&p)], &[], out).unwrap());
        };
        let mut rows = [
            Row::new("raw-aead", BATCH, each(&peer, &out, &linear, raw_aead)),
            Row::new("engine-seal-linear", BATCH, each(&peer, &out, &linear, seal_linear)),
            Row::new("seal-segments", BATCH, each(&peer, &out, &linear, seal_segments)),
            Row::new("copy-then-seal", BATCH, each(&peer, &out, &linear, copy_then_seal)),
            Row::new("divert-zero-copy", BATCH, divert(1 << 20, false)),
            Row::new("divert-copy-then-seal", BATCH, divert(1 << 20, true)),
            Row::new("divert-deep-copy", BATCH, divert(0, false)),
        ];
        harness::run("filter_send", size, "raw-aead", &mut rows);
        drop(rows);
        drop(batch);
    }
    drop(profile);
    filter::test_hooks::set_hold_policy(256, 50, 4 << 20, 5_000);
    let c = filter::test_hooks::send_counters();
    if std::env::var_os("RDCO_BENCH_ONLY").is_none() {
        assert!(c.copies_budget > 0, "the deep-copy runs made no copies: {c:?}");
    }
}
