//! Criterion benches of the miniport's data path in the simulated kernel, beside raw AEAD in the same
//! run, and the copy baselines the zero-copy paths replace. See docs/performance.md ("Miniport").
//!
//! * `tx/miniport`: 16 IPv4 packets of `size` bytes posted on the Tx ring (`winsim::netcx::stack_send`),
//!   sealed from their fragments by the miniport, sent with `WskSendMessages` over real loopback UDP,
//!   completed and retired, until the peer socket read all 16 datagrams.
//! * `rx/miniport`: 16 datagrams sealed beforehand (untimed) sent to the miniport's socket, indicated by
//!   WSK, opened in place, attached to the Rx ring, received by the stack and returned.
//! * `tx/raw-aead`, `rx/raw-aead`: the engine backend's AEAD seal / open in place of the same 16
//!   packets, nothing else.
//! * `tx/gather-copy`: the baseline Tx: gather the packet's three fragments into one buffer, then seal
//!   it (what the miniport avoids by sealing from the fragments). `tx/engine-segments` seals the same
//!   fragments straight into the output buffer (the miniport's way).
//! * `rx/copy-into-pool`: the baseline Rx: open in place, then copy the plaintext into a pooled buffer
//!   to lend (what lending the WSK buffer avoids). `rx/engine-in-place` opens only.
//!
//! The simulated rows include the simulation's own costs (loopback UDP syscalls, the simulated
//! kernel's bookkeeping and verifier), so they are an upper bound of the driver's cost.
#![allow(clippy::pedantic, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use datapath::crypto::{Aead, Cipher, RustCryptoAead};
use datapath::keys::{KeyConfig, KeyDirection, KeyFormat, KeySlotId};
use datapath::peer::{Peer, PeerConfig};
use datapath::wire;
use ndistest::netcx_client::ipv4_packet;
use ndistest::suites::miniport::{bring_up, peer_collect, stack_collect, tear_down};
use winsim::{netcx, wsk, Machine};

const SIZES: [usize; 3] = [64, 512, 1420];
const BATCH: usize = 16;

fn key_config(swap: bool) -> KeyConfig {
    let a = KeyDirection { key: [0x11; 32], nonce_tail: [0x22; 8] };
    let b = KeyDirection { key: [0x33; 32], nonce_tail: [0x44; 8] };
    let (encrypt, decrypt) = if swap { (b, a) } else { (a, b) };
    KeyConfig { cipher: Cipher::Aes256Gcm, format: KeyFormat::Classic, key_id: 0, encrypt, decrypt }
}

fn engine_peer(swap: bool) -> Peer<datapath::DefaultAead> {
    let mut p = Peer::new(&PeerConfig::new(1), datapath::Instant::ZERO);
    p.install_key(KeySlotId::Primary, &key_config(swap)).unwrap();
    p
}

fn thirds(p: &[u8]) -> [&[u8]; 3] {
    let a = p.len() / 3;
    [&p[..a], &p[a..2 * a], &p[2 * a..]]
}

fn tx(c: &mut Criterion) {
    let mut m = Machine::boot();
    let mut rig = bring_up(&mut m, None).expect("miniport up");
    let mut g = c.benchmark_group("tx");
    for size in SIZES {
        g.throughput(Throughput::Elements(BATCH as u64));
        let packets: Vec<Vec<u8>> = (0..BATCH as u16).map(|k| ipv4_packet(k, size)).collect();
        g.bench_with_input(BenchmarkId::new("miniport", size), &size, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(netcx::stack_send(rig.adapter, &packets), BATCH);
                    let mut n = 0;
                    let mut buf = [0u8; 2048];
                    wsk::pump_until(Duration::from_secs(5), || {
                        while rig.peer.socket.recv(&mut buf).is_ok() {
                            n += 1;
                        }
                        n >= BATCH
                    });
                    netcx::pump(rig.adapter);
                }
                start.elapsed()
            })
        });
        let key = [0x11u8; 32];
        let raw = RustCryptoAead::new(Cipher::Aes256Gcm, &key).unwrap();
        let mut out = vec![0u8; size + wire::MAX_OVERHEAD];
        let (nonce, aad) = ([7u8; 12], [1u8; 8]);
        g.bench_with_input(BenchmarkId::new("raw-aead", size), &size, |b, _| {
            b.iter(|| {
                for p in &packets {
                    black_box(raw.seal(&nonce, &aad, &[black_box(p)], &[], &mut out).unwrap());
                }
            })
        });
        let mut peer = engine_peer(false);
        g.bench_with_input(BenchmarkId::new("engine-segments", size), &size, |b, _| {
            b.iter(|| {
                for p in &packets {
                    black_box(peer.seal(datapath::Instant::ZERO, &thirds(p), &mut out).unwrap());
                }
            })
        });
        let mut gather = vec![0u8; 2048];
        g.bench_with_input(BenchmarkId::new("gather-copy", size), &size, |b, _| {
            b.iter(|| {
                for p in &packets {
                    let mut at = 0;
                    for f in thirds(p) {
                        gather[at..at + f.len()].copy_from_slice(f);
                        at += f.len();
                    }
                    black_box(peer.seal(datapath::Instant::ZERO, &[&gather[..at]], &mut out).unwrap());
                }
            })
        });
    }
    g.finish();
    let _ = peer_collect(&mut rig, 0);
    tear_down(&mut m, rig).expect("tear down");
    let _ = m.shutdown();
}

fn rx(c: &mut Criterion) {
    let mut m = Machine::boot();
    let mut rig = bring_up(&mut m, None).expect("miniport up");
    let mut g = c.benchmark_group("rx");
    for size in SIZES {
        g.throughput(Throughput::Elements(BATCH as u64));
        let packets: Vec<Vec<u8>> = (0..BATCH as u16).map(|k| ipv4_packet(k, size)).collect();
        g.bench_with_input(BenchmarkId::new("miniport", size), &size, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let sealed: Vec<Vec<u8>> = packets.iter().map(|p| rig.peer.seal(p).unwrap()).collect();
                    let start = Instant::now();
                    for d in &sealed {
                        rig.peer.send_to(rig.port, d).unwrap();
                    }
                    let got = stack_collect(&rig, BATCH).unwrap();
                    total += start.elapsed();
                    assert_eq!(got.len(), BATCH);
                }
                total
            })
        });
        let key = [0x11u8; 32];
        let raw = RustCryptoAead::new(Cipher::Aes256Gcm, &key).unwrap();
        let (nonce, aad) = ([7u8; 12], [1u8; 8]);
        let mut tagged: Vec<(Vec<u8>, [u8; 16])> = Vec::new();
        for p in &packets {
            let mut out = vec![0u8; p.len()];
            let tag = raw.seal(&nonce, &aad, &[p], &[], &mut out).unwrap();
            tagged.push((out, tag));
        }
        g.bench_with_input(BenchmarkId::new("raw-aead", size), &size, |b, _| {
            b.iter_batched_ref(
                || tagged.clone(),
                |bufs| {
                    for (buf, tag) in bufs.iter_mut() {
                        raw.open_in_place(&nonce, &aad, buf, tag).unwrap();
                    }
                },
                BatchSize::SmallInput,
            )
        });
        let mut sender = engine_peer(false);
        let mut receiver = engine_peer(true);
        let mut pool = vec![0u8; 2048];
        for (name, copy) in [("engine-in-place", false), ("copy-into-pool", true)] {
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter_batched_ref(
                    || {
                        packets
                            .iter()
                            .map(|p| {
                                let mut out = vec![0u8; p.len() + wire::MAX_OVERHEAD];
                                let s = sender.seal(datapath::Instant::ZERO, &[p], &mut out).unwrap();
                                out.truncate(s.len);
                                out
                            })
                            .collect::<Vec<_>>()
                    },
                    |bufs| {
                        for d in bufs.iter_mut() {
                            let r = receiver.open(datapath::Instant::ZERO, None, d).unwrap();
                            if let datapath::peer::Received::Data(o) = r {
                                if copy {
                                    let n = o.payload.len();
                                    pool[..n].copy_from_slice(&d[o.payload]);
                                    black_box(&pool);
                                }
                            }
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
    tear_down(&mut m, rig).expect("tear down");
    let _ = m.shutdown();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = tx, rx
}
criterion_main!(benches);
