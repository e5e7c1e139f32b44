//! Interleaved A/B timing of the engine beside ring's raw AEAD on the same buffer, for ratios that
//! hold on a busy machine (other builds share the two cores, so criterion's benches, which run
//! one after the other for seconds each, see the load change between the two sides of a ratio).
//!
//! Each round times a batch of [`BATCH`] packets of every variant back to back (the order reversed
//! every other round), all on hot buffers; the ratio engine / raw is taken per round, and the
//! report gives medians over the rounds. Same buffer: the raw seal works on the payload bytes of
//! the very packet buffer the engine's in-place seal uses, and the raw open on the very packets
//! the engine opens (restored from a copy between the two, outside the timing).
//!
//! `cargo bench -p datapath --features ring-default --bench interleaved [-- ROUNDS] [CIPHER...]`;
//! `-- rustcrypto` instead times the `RustCrypto` backend's scatter seal against copy-then-seal.
#![allow(clippy::pedantic, missing_docs)]

#[cfg(feature = "ring")]
mod run {
    use datapath::crypto::{Aead, Cipher, RingAead};
    use datapath::keys::{KeyConfig, KeyDirection, KeyFormat, KeySlotId};
    use datapath::peer::{Peer, PeerConfig};
    use datapath::time::Instant;
    use datapath::wire;
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
    use std::hint::black_box;

    /// Packets per timed batch (64 x 1444 bytes stays in L2).
    const BATCH: usize = 64;
    const SIZES: [usize; 3] = [64, 512, 1420];
    const CIPHERS: [Cipher; 3] = [Cipher::Aes256Gcm, Cipher::Aes128Gcm, Cipher::ChaCha20Poly1305];
    /// Classic AEAD payload offset.
    const HEAD: usize = 24;
    const TX_KEY: [u8; 32] = [0x11; 32];
    const TX_TAIL: [u8; 8] = [0x22; 8];

    fn key_config(cipher: Cipher, swap: bool) -> KeyConfig {
        let a = KeyDirection { key: TX_KEY, nonce_tail: TX_TAIL };
        let b = KeyDirection { key: [0x33; 32], nonce_tail: [0x44; 8] };
        let (encrypt, decrypt) = if swap { (b, a) } else { (a, b) };
        KeyConfig { cipher, format: KeyFormat::Classic, key_id: 0, encrypt, decrypt }
    }

    fn peer(cipher: Cipher, swap: bool) -> Peer<RingAead> {
        let mut p = Peer::<RingAead>::new(&PeerConfig::new(1), Instant::ZERO);
        p.install_key(KeySlotId::Primary, &key_config(cipher, swap)).unwrap();
        p
    }

    fn ring_key(cipher: Cipher) -> LessSafeKey {
        let alg = match cipher {
            Cipher::Aes128Gcm => &ring::aead::AES_128_GCM,
            Cipher::Aes256Gcm => &ring::aead::AES_256_GCM,
            _ => &ring::aead::CHACHA20_POLY1305,
        };
        LessSafeKey::new(UnboundKey::new(alg, &TX_KEY[..cipher.key_len()]).unwrap())
    }

    fn plaintext(n: usize) -> Vec<u8> {
        // An IPv4 UDP-looking packet, as in the criterion benches.
        let mut p: Vec<u8> = (0..n).map(|i| i as u8).collect();
        p[0] = 0x45;
        p[9] = 17;
        p
    }

    /// ns per packet of `f` run `BATCH` times.
    fn timed(mut f: impl FnMut(usize)) -> f64 {
        let t = std::time::Instant::now();
        for i in 0..BATCH {
            f(i);
        }
        t.elapsed().as_nanos() as f64 / BATCH as f64
    }

    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }

    fn quartiles(v: &mut [f64]) -> (f64, f64) {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[v.len() / 4], v[v.len() * 3 / 4])
    }

    /// Per-variant ns and per-round ratios against variant 0.
    struct Rounds {
        names: Vec<&'static str>,
        ns: Vec<Vec<f64>>,
    }

    impl Rounds {
        fn new(names: &[&'static str]) -> Self {
            Rounds { names: names.to_vec(), ns: vec![Vec::new(); names.len()] }
        }

        fn report(&mut self, op: &str, cipher: Cipher, size: usize) {
            let base = self.ns[0].clone();
            let mut line = format!("{op} {} {size} B:", cipher.name());
            for (i, name) in self.names.clone().iter().enumerate() {
                let mut ratios: Vec<f64> = self.ns[i].iter().zip(&base).map(|(a, b)| a / b).collect();
                let ns = median(&mut self.ns[i].clone());
                if i == 0 {
                    line += &format!(" {name} {ns:.1} ns;");
                } else {
                    let r = median(&mut ratios);
                    let (q1, q3) = quartiles(&mut ratios);
                    line += &format!(" {name} {ns:.1} ns = {r:.3}x (IQR {q1:.3}-{q3:.3});");
                }
            }
            println!("{line}");
        }
    }

    fn seal(cipher: Cipher, size: usize, rounds: usize) {
        let plain = plaintext(size);
        let raw = ring_key(cipher);
        let gather = RingAead::new(cipher, &TX_KEY[..cipher.key_len()]).unwrap();
        let mut inplace = peer(cipher, false);
        let mut scatter = peer(cipher, false);
        assert_eq!(inplace.headroom(), Some(HEAD));
        let mut pkt = vec![0u8; size + wire::MAX_OVERHEAD];
        pkt[HEAD..HEAD + size].copy_from_slice(&plain);
        let mut out = vec![0u8; size + wire::MAX_OVERHEAD];
        let nonce = [7u8; 12];
        let aad = [1u8; 8];
        let mut r = Rounds::new(&[
            "ring raw in place (same buffer)",
            "engine in place",
            "ring gather+in place",
            "engine scatter",
        ]);
        let mut ns = [0f64; 4];
        for round in 0..rounds {
            for k in 0..4 {
                let v = if round % 2 == 0 { k } else { 3 - k };
                ns[v] = match v {
                    0 => timed(|_| {
                        let _ = black_box(
                            raw.seal_in_place_separate_tag(
                                Nonce::assume_unique_for_key(nonce),
                                Aad::from(&aad),
                                &mut pkt[HEAD..HEAD + size],
                            )
                            .unwrap(),
                        );
                    }),
                    1 => timed(|_| {
                        black_box(inplace.seal_in_place(Instant::ZERO, black_box(&mut pkt), size).unwrap());
                    }),
                    2 => timed(|_| {
                        black_box(gather.seal(&nonce, &aad, &[black_box(&plain)], &[], &mut out).unwrap());
                    }),
                    _ => timed(|_| {
                        black_box(scatter.seal(Instant::ZERO, &[black_box(&plain)], &mut out).unwrap());
                    }),
                };
            }
            for (v, x) in ns.iter().enumerate() {
                r.ns[v].push(*x);
            }
        }
        r.report("seal", cipher, size);
    }

    fn open(cipher: Cipher, size: usize, rounds: usize) {
        let plain = plaintext(size);
        let raw = RingAead::new(cipher, &TX_KEY[..cipher.key_len()]).unwrap();
        let mut tx = peer(cipher, false);
        let mut rx = peer(cipher, true);
        let len = size + HEAD;
        let mut pool = vec![0u8; BATCH * len];
        let mut copy = vec![0u8; BATCH * len];
        let mut nonces = [[0u8; 12]; BATCH];
        let mut r = Rounds::new(&["ring raw open (same packets)", "engine open"]);
        let mut ns = [0f64; 2];
        for round in 0..rounds {
            // Fresh packets (the replay window refuses repeats), outside the timing.
            for (i, p) in pool.chunks_exact_mut(len).enumerate() {
                assert_eq!(tx.seal(Instant::ZERO, &[&plain], p).unwrap().len, len);
                nonces[i][..4].copy_from_slice(&p[4..8]);
                nonces[i][4..].copy_from_slice(&TX_TAIL);
            }
            copy.copy_from_slice(&pool);
            for k in 0..2 {
                let v = if round % 2 == 0 { k } else { 1 - k };
                if k == 1 {
                    pool.copy_from_slice(&copy);
                }
                ns[v] = if v == 0 {
                    timed(|i| {
                        let p = &mut pool[i * len..(i + 1) * len];
                        let (head, body) = p.split_at_mut(HEAD);
                        let tag: &[u8; 16] = head[8..HEAD].try_into().unwrap();
                        black_box(raw.open_in_place(&nonces[i], &head[..8], body, tag)).unwrap();
                    })
                } else {
                    timed(|i| {
                        black_box(rx.open(Instant::ZERO, None, &mut pool[i * len..(i + 1) * len]).unwrap());
                    })
                };
            }
            for (v, x) in ns.iter().enumerate() {
                r.ns[v].push(*x);
            }
        }
        r.report("open", cipher, size);
    }

    /// The `RustCrypto` backend (the host default, and the drivers' host benches): the engine's seal
    /// from 3 segments split as `tests/benches/filter_send.rs` splits a packet over MDLs (28 bytes
    /// of headers, a third of the rest, the rest) against gathering the 3 segments into one buffer
    /// first and sealing that, the engine on one contiguous segment, and the backend's raw seal.
    fn rustcrypto_scatter(size: usize, rounds: usize) {
        use datapath::RustCryptoAead;
        let cipher = Cipher::Aes256Gcm;
        let plain = plaintext(size);
        let (a, rest) = plain.split_at(28.min(size));
        let (b, c) = rest.split_at(rest.len() / 3);
        let mut p = Peer::<RustCryptoAead>::new(&PeerConfig::new(1), Instant::ZERO);
        p.install_key(KeySlotId::Primary, &key_config(cipher, false)).unwrap();
        let raw = RustCryptoAead::new(cipher, &TX_KEY).unwrap();
        let mut out = vec![0u8; size + wire::MAX_OVERHEAD];
        let mut linear = vec![0u8; size];
        let (nonce, aad) = ([7u8; 12], [1u8; 8]);
        let mut r = Rounds::new(&[
            "engine copy-then-seal",
            "engine 3 segments",
            "engine 1 segment",
            "RustCrypto raw seal",
            "aes-gcm crate in place",
        ]);
        // The `aes-gcm` crate (the same `aes`/`ghash` primitives, its own CTR pass) as a fixed
        // yardstick for the backend's own speed, in the same rounds.
        let crate_key = {
            use aes_gcm::aead::KeyInit;
            aes_gcm::Aes256Gcm::new_from_slice(&TX_KEY).unwrap()
        };
        let mut crate_buf = plain.clone();
        let mut ns = [0f64; 5];
        for round in 0..rounds {
            for k in 0..5 {
                let v = if round % 2 == 0 { k } else { 4 - k };
                ns[v] = match v {
                    0 => timed(|_| {
                        let (x, y, z) = (black_box(a), black_box(b), black_box(c));
                        linear[..x.len()].copy_from_slice(x);
                        linear[x.len()..x.len() + y.len()].copy_from_slice(y);
                        linear[x.len() + y.len()..].copy_from_slice(z);
                        black_box(p.seal(Instant::ZERO, &[&linear], &mut out).unwrap());
                    }),
                    1 => timed(|_| {
                        black_box(p.seal(Instant::ZERO, &[black_box(a), b, c], &mut out).unwrap());
                    }),
                    2 => timed(|_| {
                        black_box(p.seal(Instant::ZERO, &[black_box(&plain)], &mut out).unwrap());
                    }),
                    3 => timed(|_| {
                        black_box(raw.seal(&nonce, &aad, &[black_box(&plain)], &[], &mut out).unwrap());
                    }),
                    _ => timed(|_| {
                        use aes_gcm::aead::AeadInPlace;
                        black_box(
                            crate_key
                                .encrypt_in_place_detached((&nonce).into(), &aad, &mut crate_buf)
                                .unwrap(),
                        );
                    }),
                };
            }
            for (v, x) in ns.iter().enumerate() {
                r.ns[v].push(*x);
            }
        }
        r.report("seal-rustcrypto", cipher, size);
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let rounds = args.iter().find_map(|a| a.parse::<usize>().ok()).unwrap_or(3000);
        // Cipher names given: only those.
        let only: Vec<Cipher> = args.iter().filter_map(|a| Cipher::from_name(a)).collect();
        println!("interleaved: {rounds} rounds of {BATCH} packets per variant; medians; ratio = variant / first, per round");
        if args.iter().any(|a| a == "rustcrypto") {
            for size in SIZES {
                rustcrypto_scatter(size, rounds);
            }
            return;
        }
        for cipher in CIPHERS.into_iter().filter(|c| only.is_empty() || only.contains(c)) {
            for size in SIZES {
                seal(cipher, size, rounds);
                open(cipher, size, rounds);
            }
        }
    }
}

fn main() {
    #[cfg(feature = "ring")]
    run::main();
    #[cfg(not(feature = "ring"))]
    println!("interleaved: needs feature `ring`");
}
