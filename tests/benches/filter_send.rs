//! The filter's send path inside the simulated kernel, per packet, at 64/512/1420-byte inner packets:
//!
//! * `filter_send/divert-zero-copy`: the protocol sends a chain of 32 IPv4/UDP packets to a policy
//!   prefix; the real filter classifies, queues the originals, its worker DPC seals each straight from
//!   the MDL chain and sends through WSK (`WskSendMessages`), and completes the originals. Includes the
//!   simulation's own cost (building the protocol's NBLs, tracking them, the simulated WSK provider);
//!   datagrams are dropped at the provider (`loss = 1.0`) so no syscall is measured.
//! * `filter_send/divert-deep-copy`: the same with the hold budget at 0, so every diverted NBL is
//!   deep-copied (NBL + NB + MDL + payload) and completed before it is sealed: the forced slow path.
//! * `engine/seal-segments` (what the worker does per packet: seal from a 3-segment scatter list, an IP
//!   packet split over MDLs), `engine/copy-then-seal` (the double-copy baseline the zero-copy path
//!   replaces: gather into a linear buffer, then seal), `engine/engine-seal-linear` (the engine on one
//!   contiguous buffer) and `engine/raw-aead` (the backend's AEAD alone, no OpenVPN framing).
//!
//! Run: `cargo bench -p ndistest --bench filter_send`. See docs/performance.md.
#![allow(clippy::pedantic, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use datapath::{Aead, Cipher, DefaultAead, KeyConfig, KeyDirection, KeyFormat, KeySlotId, Peer, PeerConfig};
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

/// Boots a machine with the filter on one NIC, configured and keyed; WSK drops every datagram.
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
    winsim::wsk::set_faults(winsim::wsk::Faults { loss: 1.0, ..winsim::wsk::Faults::NONE });
    m
}

/// One batch through the filter: send, run the worker DPC, complete the WSK sends and the NIC's.
fn one_batch(sends: &[IpSend]) {
    sim::protocol_send_ip(NIC, sends);
    winsim::sched::run_until_idle();
    winsim::wsk::pump();
    sim::pump();
}

fn filter_path(c: &mut Criterion) {
    let _m = machine();
    let mut g = c.benchmark_group("filter_send");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    for size in SIZES {
        // An inner IP packet of `size` bytes: 20 IPv4 + 8 UDP + payload.
        let send = IpSend {
            v6: false,
            proto: Proto::Udp,
            payload_len: size - 28,
            request_checksum: false,
            mss: 1472,
        };
        let sends = vec![send; BATCH];
        g.throughput(Throughput::Elements(BATCH as u64));
        filter::test_hooks::set_hold_policy(1 << 20, 60_000, 64 << 20, 5_000);
        g.bench_with_input(BenchmarkId::new("divert-zero-copy", size), &size, |b, _| {
            b.iter(|| one_batch(&sends))
        });
        filter::test_hooks::set_hold_policy(0, 60_000, 64 << 20, 5_000);
        g.bench_with_input(BenchmarkId::new("divert-deep-copy", size), &size, |b, _| {
            b.iter(|| one_batch(&sends))
        });
        filter::test_hooks::set_hold_policy(256, 50, 4 << 20, 5_000);
    }
    g.finish();
    let c = filter::test_hooks::send_counters();
    assert!(c.copies_budget > 0, "the deep-copy runs made no copies: {c:?}");
}

fn packet(n: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..n).map(|i| i as u8).collect();
    p[0] = 0x45;
    p[9] = 17;
    p
}

fn engine(c: &mut Criterion) {
    let dir = || KeyDirection { key: [0x11; 32], nonce_tail: [0x22; 8] };
    let config = KeyConfig {
        cipher: Cipher::Aes256Gcm,
        format: KeyFormat::Classic,
        key_id: 0,
        encrypt: dir(),
        decrypt: dir(),
    };
    let mut peer: Peer = Peer::new(&PeerConfig::new(1), datapath::Instant::from_millis(0));
    peer.install_key(KeySlotId::Primary, &config).unwrap();
    let now = datapath::Instant::from_millis(0);
    let mut g = c.benchmark_group("engine");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    for size in SIZES {
        let p = packet(size);
        // As the protocol's MDLs split it: headers, a piece, the rest.
        let (a, rest) = p.split_at(28.min(size));
        let (b2, c2) = rest.split_at(rest.len() / 3);
        let mut out = vec![0u8; size + 64];
        let mut linear = vec![0u8; size];
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("seal-segments", size), &size, |b, _| {
            b.iter(|| black_box(peer.seal(now, &[black_box(a), b2, c2], &mut out).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("copy-then-seal", size), &size, |b, _| {
            b.iter(|| {
                linear[..a.len()].copy_from_slice(black_box(a));
                linear[a.len()..a.len() + b2.len()].copy_from_slice(b2);
                linear[a.len() + b2.len()..].copy_from_slice(c2);
                black_box(peer.seal(now, &[&linear], &mut out).unwrap())
            })
        });
        g.bench_with_input(BenchmarkId::new("engine-seal-linear", size), &size, |b, _| {
            b.iter(|| black_box(peer.seal(now, &[black_box(&p)], &mut out).unwrap()))
        });
        // The raw AEAD of the engine's backend on one contiguous input (no OpenVPN framing).
        let raw = DefaultAead::new(Cipher::Aes256Gcm, &[0x11; 32]).unwrap();
        let (nonce, aad) = ([7u8; 12], [1u8; 8]);
        g.bench_with_input(BenchmarkId::new("raw-aead", size), &size, |b, _| {
            b.iter(|| black_box(raw.seal(&nonce, &aad, &[black_box(&p)], &[], &mut out).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, engine, filter_path);
criterion_main!(benches);
