//! Instruction-count driver for callgrind: runs N packets through one `#[inline(never)]` wrapper per
//! variant, so `valgrind --tool=callgrind --toggle-collect=<wrapper>` counts exactly one variant.
//!
//! `cargo build --release -p datapath --features ring-default --example seal_count`, then
//! `valgrind --tool=callgrind --toggle-collect='seal_count::w_*' target/release/examples/seal_count`
//! and divide each wrapper's inclusive count by the packet count printed. See docs/performance.md.
#![allow(clippy::pedantic, missing_docs)]

#[cfg(feature = "ring")]
mod run {
    use datapath::crypto::{Aead, Cipher, RingAead};
    use datapath::keys::{KeyConfig, KeyDirection, KeyFormat, KeySlotId};
    use datapath::peer::{Peer, PeerConfig};
    use datapath::time::Instant;
    use datapath::{wire, RustCryptoAead};
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
    use std::hint::black_box;

    pub const N: usize = 20_000;

    fn key_config(cipher: Cipher) -> KeyConfig {
        let d = KeyDirection { key: [0x11; 32], nonce_tail: [0x22; 8] };
        KeyConfig { cipher, format: KeyFormat::Classic, key_id: 0, encrypt: d.clone(), decrypt: d }
    }

    fn peer<A: Aead>() -> Peer<A> {
        let mut p = Peer::<A>::new(&PeerConfig::new(1), Instant::ZERO);
        p.install_key(KeySlotId::Primary, &key_config(Cipher::Aes256Gcm)).unwrap();
        p
    }

    #[inline(never)]
    fn w_ring_raw(k: &LessSafeKey, buf: &mut [u8]) {
        let _ = black_box(
            k.seal_in_place_separate_tag(Nonce::assume_unique_for_key([7; 12]), Aad::from(&[1u8; 8]), buf)
                .unwrap(),
        );
    }
    #[inline(never)]
    fn w_engine_inplace(p: &mut Peer<RingAead>, pkt: &mut [u8], n: usize) {
        black_box(p.seal_in_place(Instant::ZERO, pkt, n).unwrap());
    }
    #[inline(never)]
    fn w_engine_scatter(p: &mut Peer<RingAead>, plain: &[u8], out: &mut [u8]) {
        black_box(p.seal(Instant::ZERO, &[plain], out).unwrap());
    }
    #[inline(never)]
    fn w_rc_segments(p: &mut Peer<RustCryptoAead>, segs: &[&[u8]; 3], out: &mut [u8]) {
        black_box(p.seal(Instant::ZERO, segs, out).unwrap());
    }
    #[inline(never)]
    fn w_rc_copy_then_seal(p: &mut Peer<RustCryptoAead>, segs: &[&[u8]; 3], lin: &mut [u8], out: &mut [u8]) {
        let (a, b, c) = (segs[0], segs[1], segs[2]);
        lin[..a.len()].copy_from_slice(a);
        lin[a.len()..a.len() + b.len()].copy_from_slice(b);
        lin[a.len() + b.len()..].copy_from_slice(c);
        black_box(p.seal(Instant::ZERO, &[lin], out).unwrap());
    }
    #[inline(never)]
    fn w_rc_raw(k: &RustCryptoAead, plain: &[u8], out: &mut [u8]) {
        black_box(k.seal(&[7; 12], &[1; 8], &[plain], &[], out).unwrap());
    }

    #[inline(never)]
    fn w_ring_open_raw(k: &RingAead, nonce: &[u8; 12], pkt: &mut [u8]) {
        let (head, body) = pkt.split_at_mut(24);
        let tag: &[u8; 16] = head[8..24].try_into().unwrap();
        black_box(k.open_in_place(nonce, &head[..8], body, tag)).unwrap();
    }
    #[inline(never)]
    fn w_engine_open(p: &mut Peer<RingAead>, pkt: &mut [u8]) {
        black_box(p.open(Instant::ZERO, None, pkt).unwrap());
    }

    /// Opens `N` packets sealed by a peer, raw (ring) and through the engine.
    fn open(size: usize, plain: &[u8]) {
        let mut tx = peer::<RingAead>();
        let mut rx = peer::<RingAead>();
        let raw = RingAead::new(Cipher::Aes256Gcm, &[0x11; 32]).unwrap();
        let len = size + 24;
        let mut pool = vec![0u8; N * len];
        let mut nonces = vec![[0u8; 12]; N];
        for (i, p) in pool.chunks_exact_mut(len).enumerate() {
            tx.seal(Instant::ZERO, &[plain], p).unwrap();
            nonces[i][..4].copy_from_slice(&p[4..8]);
            nonces[i][4..].copy_from_slice(&[0x22; 8]);
        }
        let mut copy = pool.clone();
        for (i, p) in copy.chunks_exact_mut(len).enumerate() {
            w_ring_open_raw(&raw, &nonces[i], p);
        }
        for p in pool.chunks_exact_mut(len) {
            w_engine_open(&mut rx, p);
        }
    }

    pub fn main() {
        let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect::<Vec<_>>();
        let sizes = if sizes.is_empty() { vec![64, 1420] } else { sizes };
        for size in sizes {
            let mut plain: Vec<u8> = (0..size).map(|i| i as u8).collect();
            plain[0] = 0x45;
            plain[9] = 17;
            let k = LessSafeKey::new(UnboundKey::new(&ring::aead::AES_256_GCM, &[0x11; 32]).unwrap());
            let mut pkt = vec![0u8; size + wire::MAX_OVERHEAD];
            pkt[24..24 + size].copy_from_slice(&plain);
            let mut out = vec![0u8; size + wire::MAX_OVERHEAD];
            let mut pi = peer::<RingAead>();
            let mut ps = peer::<RingAead>();
            let mut pr = peer::<RustCryptoAead>();
            let rk = RustCryptoAead::new(Cipher::Aes256Gcm, &[0x11; 32]).unwrap();
            let (a, rest) = plain.split_at(28.min(size));
            let (b, c) = rest.split_at(rest.len() / 3);
            let segs: [&[u8]; 3] = [a, b, c];
            let mut lin = vec![0u8; size];
            for _ in 0..N {
                w_ring_raw(&k, &mut pkt[24..24 + size]);
                w_engine_inplace(&mut pi, &mut pkt, size);
                w_engine_scatter(&mut ps, &plain, &mut out);
                w_rc_segments(&mut pr, &segs, &mut out);
                w_rc_copy_then_seal(&mut pr, &segs, &mut lin, &mut out);
                w_rc_raw(&rk, &plain, &mut out);
            }
            open(size, &plain);
            println!("size {size}: {N} packets per wrapper");
        }
    }
}

fn main() {
    #[cfg(feature = "ring")]
    run::main();
}
