//! Criterion benches: engine seal/open beside the raw AEAD on the same buffer, per cipher and
//! size, and peer lookup in a 10k-route table. See docs/performance.md.
//!
//! `cargo bench -p datapath --features ring` adds ring's raw AEAD and the ring backend.
#![allow(clippy::pedantic, missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use datapath::crypto::{Aead, Cipher, RustCryptoAead};
use datapath::keys::{KeyConfig, KeyDirection, KeyFormat, KeySlotId};
use datapath::peer::{IpPrefix, Peer, PeerConfig, PeerTable};
use datapath::time::Instant;
use datapath::wire;
use std::time::Duration;

const SIZES: [usize; 3] = [64, 512, 1420];
const CIPHERS: [Cipher; 3] = [Cipher::Aes128Gcm, Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305];

fn key_config(cipher: Cipher, swap: bool) -> KeyConfig {
    let a = KeyDirection { key: [0x11; 32], nonce_tail: [0x22; 8] };
    let b = KeyDirection { key: [0x33; 32], nonce_tail: [0x44; 8] };
    let (encrypt, decrypt) = if swap { (b, a) } else { (a, b) };
    KeyConfig { cipher, format: KeyFormat::Classic, key_id: 0, encrypt, decrypt }
}

fn peer<A: Aead>(cipher: Cipher, swap: bool) -> Peer<A> {
    let mut p = Peer::<A>::new(&PeerConfig::new(1), Instant::ZERO);
    p.install_key(KeySlotId::Primary, &key_config(cipher, swap)).unwrap();
    p
}

fn plaintext(n: usize) -> Vec<u8> {
    // An IPv4 UDP-looking packet, so the MSS probe takes its usual early exit.
    let mut p: Vec<u8> = (0..n).map(|i| i as u8).collect();
    p[0] = 0x45;
    p[9] = 17;
    p
}

fn raw_key(cipher: Cipher) -> Vec<u8> {
    vec![0x11; cipher.key_len()]
}

fn seal(c: &mut Criterion) {
    for cipher in CIPHERS {
        let mut g = c.benchmark_group(format!("seal/{}", cipher.name()));
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let plain = plaintext(size);
            let mut out = vec![0u8; size + wire::MAX_OVERHEAD];
            let nonce = [7u8; 12];
            let aad = [1u8; 8];

            // Raw AEAD of the engine's backend: one contiguous input, out of place.
            let backend = RustCryptoAead::new(cipher, &raw_key(cipher)).unwrap();
            g.bench_with_input(BenchmarkId::new("raw-rustcrypto", size), &size, |b, _| {
                b.iter(|| black_box(backend.seal(&nonce, &aad, &[black_box(&plain)], &[], &mut out).unwrap()))
            });

            // The RustCrypto AEAD crates' own in-place API on the same buffer.
            {
                use aes_gcm::aead::{AeadInPlace, KeyInit};
                let mut buf = plain.clone();
                match cipher {
                    Cipher::Aes128Gcm => {
                        let k = aes_gcm::Aes128Gcm::new_from_slice(&raw_key(cipher)).unwrap();
                        g.bench_with_input(
                            BenchmarkId::new("raw-aes-gcm-crate-inplace", size),
                            &size,
                            |b, _| {
                                b.iter(|| {
                                    black_box(
                                        k.encrypt_in_place_detached((&nonce).into(), &aad, &mut buf).unwrap(),
                                    )
                                })
                            },
                        );
                    }
                    Cipher::Aes256Gcm => {
                        let k = aes_gcm::Aes256Gcm::new_from_slice(&raw_key(cipher)).unwrap();
                        g.bench_with_input(
                            BenchmarkId::new("raw-aes-gcm-crate-inplace", size),
                            &size,
                            |b, _| {
                                b.iter(|| {
                                    black_box(
                                        k.encrypt_in_place_detached((&nonce).into(), &aad, &mut buf).unwrap(),
                                    )
                                })
                            },
                        );
                    }
                    _ => {
                        let k = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&raw_key(cipher)).unwrap();
                        g.bench_with_input(
                            BenchmarkId::new("raw-chacha20poly1305-crate-inplace", size),
                            &size,
                            |b, _| {
                                b.iter(|| {
                                    black_box(
                                        k.encrypt_in_place_detached((&nonce).into(), &aad, &mut buf).unwrap(),
                                    )
                                })
                            },
                        );
                    }
                }
            }

            // The engine: header, packet id, nonce, MSS probe, seal, counters.
            let mut p = peer::<RustCryptoAead>(cipher, false);
            g.bench_with_input(BenchmarkId::new("engine", size), &size, |b, _| {
                b.iter(|| black_box(p.seal(Instant::ZERO, &[black_box(&plain)], &mut out).unwrap()))
            });
            if size == 1420 {
                // Scatter input: three segments, as from an MDL chain.
                let segs: [&[u8]; 3] = [&plain[..14], &plain[14..700], &plain[700..]];
                g.bench_with_input(BenchmarkId::new("engine-3-segments", size), &size, |b, _| {
                    b.iter(|| black_box(p.seal(Instant::ZERO, black_box(&segs), &mut out).unwrap()))
                });
            }

            #[cfg(feature = "ring")]
            {
                use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
                let alg = match cipher {
                    Cipher::Aes128Gcm => &ring::aead::AES_128_GCM,
                    Cipher::Aes256Gcm => &ring::aead::AES_256_GCM,
                    _ => &ring::aead::CHACHA20_POLY1305,
                };
                let k = LessSafeKey::new(UnboundKey::new(alg, &raw_key(cipher)).unwrap());
                let mut buf = plain.clone();
                g.bench_with_input(BenchmarkId::new("raw-ring-inplace", size), &size, |b, _| {
                    b.iter(|| {
                        black_box(
                            k.seal_in_place_separate_tag(
                                Nonce::assume_unique_for_key(nonce),
                                Aad::from(&aad),
                                &mut buf,
                            )
                            .unwrap(),
                        )
                    })
                });
                let rb = datapath::crypto::RingAead::new(cipher, &raw_key(cipher)).unwrap();
                g.bench_with_input(BenchmarkId::new("ring-gather-then-inplace", size), &size, |b, _| {
                    b.iter(|| black_box(rb.seal(&nonce, &aad, &[black_box(&plain)], &[], &mut out).unwrap()))
                });
                let mut pr = peer::<datapath::crypto::RingAead>(cipher, false);
                g.bench_with_input(BenchmarkId::new("engine-ring", size), &size, |b, _| {
                    b.iter(|| black_box(pr.seal(Instant::ZERO, &[black_box(&plain)], &mut out).unwrap()))
                });
                // In place: the plaintext already sits in the packet buffer at the payload offset
                // (24, classic AES-GCM), so no gather copy; ring raw in place on the same bytes of
                // the same buffer, then the engine's `seal_in_place` on it.
                let mut pkt = vec![0u8; size + wire::MAX_OVERHEAD];
                pkt[24..24 + size].copy_from_slice(&plain);
                g.bench_with_input(BenchmarkId::new("raw-ring-inplace-same-buffer", size), &size, |b, _| {
                    b.iter(|| {
                        black_box(
                            k.seal_in_place_separate_tag(
                                Nonce::assume_unique_for_key(nonce),
                                Aad::from(&aad),
                                &mut pkt[24..24 + size],
                            )
                            .unwrap(),
                        )
                    })
                });
                let mut pi = peer::<datapath::crypto::RingAead>(cipher, false);
                assert_eq!(pi.headroom(), Some(24));
                g.bench_with_input(BenchmarkId::new("engine-ring-inplace", size), &size, |b, _| {
                    b.iter(|| black_box(pi.seal_in_place(Instant::ZERO, black_box(&mut pkt), size).unwrap()))
                });
                if size == 1420 {
                    // The same with the output placed so that the payload (after the 24-byte
                    // classic header) starts on a 64-byte boundary, as a driver can lay out its
                    // send buffer; the raw calls above work on buffers at offset 0.
                    let mut big = vec![0u8; size + wire::MAX_OVERHEAD + 128];
                    let skew = (64 - (big.as_ptr() as usize + 24) % 64) % 64;
                    let aligned = &mut big[skew..skew + size + wire::MAX_OVERHEAD];
                    g.bench_with_input(
                        BenchmarkId::new("engine-ring-payload-aligned", size),
                        &size,
                        |b, _| {
                            b.iter(|| {
                                black_box(pr.seal(Instant::ZERO, &[black_box(&plain)], aligned).unwrap())
                            })
                        },
                    );
                    let segs: [&[u8]; 3] = [&plain[..14], &plain[14..700], &plain[700..]];
                    g.bench_with_input(BenchmarkId::new("engine-ring-3-segments", size), &size, |b, _| {
                        b.iter(|| black_box(pr.seal(Instant::ZERO, black_box(&segs), &mut out).unwrap()))
                    });
                }
            }
        }
        g.finish();
    }
}

fn open(c: &mut Criterion) {
    for cipher in CIPHERS {
        let mut g = c.benchmark_group(format!("open/{}", cipher.name()));
        for size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let plain = plaintext(size);
            let nonce = [7u8; 12];
            let aad = [1u8; 8];

            let backend = RustCryptoAead::new(cipher, &raw_key(cipher)).unwrap();
            let mut ct = vec![0u8; size];
            let tag = backend.seal(&nonce, &aad, &[&plain], &[], &mut ct).unwrap();
            g.bench_with_input(BenchmarkId::new("raw-rustcrypto", size), &size, |b, _| {
                b.iter_batched_ref(
                    || ct.clone(),
                    |buf| backend.open_in_place(&nonce, &aad, buf, &tag).unwrap(),
                    BatchSize::SmallInput,
                )
            });

            // The engine opens fresh packets (the replay window refuses repeats). Its result is
            // consumed in place (`black_box`), like the raw call's: returned from the routine, the
            // ~80-byte `Received` would be stored by criterion into a fresh output vector inside
            // the timed loop (page faults, cache misses), a cost the raw call's `()` does not have
            // and a driver does not pay.
            let mut tx = peer::<RustCryptoAead>(cipher, false);
            let mut rx = peer::<RustCryptoAead>(cipher, true);
            let mut out = vec![0u8; size + wire::MAX_OVERHEAD];
            g.bench_with_input(BenchmarkId::new("engine", size), &size, |b, _| {
                b.iter_batched_ref(
                    || {
                        let s = tx.seal(Instant::ZERO, &[&plain], &mut out).unwrap();
                        out[..s.len].to_vec()
                    },
                    |pkt| {
                        black_box(rx.open(Instant::ZERO, None, pkt).unwrap());
                    },
                    BatchSize::SmallInput,
                )
            });

            #[cfg(feature = "ring")]
            {
                use datapath::crypto::RingAead;
                let rb = RingAead::new(cipher, &raw_key(cipher)).unwrap();
                g.bench_with_input(BenchmarkId::new("raw-ring-inplace", size), &size, |b, _| {
                    b.iter_batched_ref(
                        || ct.clone(),
                        |buf| rb.open_in_place(&nonce, &aad, buf, &tag).unwrap(),
                        BatchSize::SmallInput,
                    )
                });
                let mut tx = peer::<RingAead>(cipher, false);
                let mut rx = peer::<RingAead>(cipher, true);
                g.bench_with_input(BenchmarkId::new("engine-ring", size), &size, |b, _| {
                    b.iter_batched_ref(
                        || {
                            let s = tx.seal(Instant::ZERO, &[&plain], &mut out).unwrap();
                            out[..s.len].to_vec()
                        },
                        |pkt| {
                            black_box(rx.open(Instant::ZERO, None, pkt).unwrap());
                        },
                        BatchSize::SmallInput,
                    )
                });
            }
        }
        g.finish();
    }
}

fn lookup(c: &mut Criterion) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut table: PeerTable = PeerTable::new();
    for id in 0..1000u32 {
        table.add_peer(&PeerConfig::new(id), Instant::ZERO).unwrap();
    }
    // 10k routes: 5k IPv4 (/8../32, nested) and 5k IPv6 (/32../128).
    let mut routes = Vec::new();
    for i in 0..5000u32 {
        let a = (rnd() as u32) | 0x0A00_0000 & 0xFF00_0000;
        let a = (a & 0x00FF_FFFF) | 0x0A00_0000;
        routes.push((IpPrefix::V4(a.to_be_bytes(), 8 + (rnd() % 25) as u8), i % 1000));
        let a6 = (u128::from(rnd()) << 64 | u128::from(rnd())) & !(0xFFFFu128 << 112) | (0xFD00u128 << 112);
        routes.push((IpPrefix::V6(a6.to_be_bytes(), 32 + (rnd() % 97) as u8), i % 1000));
    }
    table.add_routes(routes).unwrap();
    let q4: Vec<[u8; 4]> =
        (0..4096).map(|_| ((rnd() as u32 & 0x00FF_FFFF) | 0x0A00_0000).to_be_bytes()).collect();
    let q6: Vec<[u8; 16]> = (0..4096)
        .map(|_| {
            ((u128::from(rnd()) << 64 | u128::from(rnd())) & !(0xFFFFu128 << 112) | (0xFD00u128 << 112))
                .to_be_bytes()
        })
        .collect();
    let mut g = c.benchmark_group("lookup-10k-routes");
    let mut i = 0usize;
    g.bench_function("v4", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(table.lookup_v4(black_box(q4[i])))
        })
    });
    g.bench_function("v6", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(table.lookup_v6(black_box(q6[i])))
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(1000))
        .measurement_time(Duration::from_millis(2000))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = seal, open, lookup }
criterion_main!(benches);
