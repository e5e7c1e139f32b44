//! The miniport's data path per packet at 64/512/1420-byte packets, beside raw AEAD and the copy
//! baselines the zero-copy paths replace; all rows of a direction and size interleaved in one run (see
//! `harness`), ratios to `raw-aead` from the same run. Batches of 16 packets.
//!
//! * `tx/miniport`: 16 IPv4 packets posted on the Tx ring (`winsim::bench::TxBatch`: the stack's buffers
//!   and MDLs built once and posted again each time, as the TCP/IP stack recycles its own), sealed from
//!   their fragments by the miniport's `EvtPacketQueueAdvance`, sent with `WskSendMessages`, completed
//!   and retired from the ring.
//! * `tx/miniport-gather-copy`: the same whole path with the miniport's gather-copy baseline on
//!   (`miniport::test_hooks::set_tx_gather_copy`): each packet's fragments are copied into a scratch
//!   buffer and the copy is sealed — the design the zero-copy Tx path replaces, as a whole path.
//! * `rx/miniport`: 16 datagrams sealed beforehand by the peer and built into the provider's
//!   indications (untimed: `winsim::bench::RxBatch`) indicated to the miniport's
//!   `WskReceiveFromEvent`, opened in place, attached to the Rx ring, received by the stack and returned
//!   (`EvtAdapterReturnRxBuffer`, `WskRelease`).
//!
//!   Both run in winsim's bench profile (`winsim::bench`): sends complete inline into an in-memory sink
//!   and datagrams are indicated from memory (no system calls); the NetAdapterCx ring verifier (ring
//!   snapshots around every advance, Rx poisoning) is off and the stack counts packets instead of
//!   copying them out. IRQL and lock checks and IRP/indication bookkeeping stay on.
//! * `raw-aead`: the engine backend's AEAD seal / open in place of the same packets, nothing else.
//! * `tx/engine-segments` seals a packet's three fragments straight into the output buffer (the
//!   miniport's way); `tx/gather-copy` is the baseline: gather the three fragments into one buffer, then
//!   seal it.
//! * `rx/engine-in-place` opens in place (the miniport's way); `rx/copy-into-pool` is the baseline: open
//!   in place, then copy the plaintext into a pooled buffer to lend.
//!
//! Run: `cargo bench -p ndistest --features bench --bench miniport`. Instruction split by crate:
//! `tests/benches/callgrind_split.py`. See docs/performance.md.
#![allow(clippy::pedantic, missing_docs)]

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use datapath::crypto::{Aead, Cipher, RustCryptoAead};
use datapath::keys::{KeyConfig, KeyDirection, KeyFormat, KeySlotId};
use datapath::peer::{Peer, PeerConfig};
use datapath::wire;
use harness::{region, Row};
use ndistest::netcx_client::ipv4_packet;
use ndistest::suites::miniport::{bring_up, tear_down};
use winsim::{bench, netcx, Machine};

mod harness;

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

fn main() {
    let mut m = Machine::boot();
    let rig = RefCell::new(bring_up(&mut m, None).expect("miniport up"));
    let profile = bench::Profile::enter();
    let from = rig.borrow().peer.socket.local_addr().expect("peer address");
    let port = rig.borrow().port;
    let adapter = rig.borrow().adapter;
    println!(
        "miniport data path, ns per packet (median of {} interleaved rounds), ratio to raw-aead",
        harness::ROUNDS
    );
    let key = [0x11u8; 32];
    let raw = RustCryptoAead::new(Cipher::Aes256Gcm, &key).unwrap();
    let (nonce, aad) = ([7u8; 12], [1u8; 8]);
    for size in SIZES {
        if harness::skip_size("tx", size) {
            continue;
        }
        let packets: Vec<Vec<u8>> = (0..BATCH as u16).map(|k| ipv4_packet(k, size)).collect();
        let out = RefCell::new(vec![0u8; size + wire::MAX_OVERHEAD]);
        let peer = RefCell::new(engine_peer(false));
        let gather = RefCell::new(vec![0u8; 2048]);
        let batch =
            bench::TxBatch::new(adapter, &packets.iter().map(|p| vec![p.clone()]).collect::<Vec<_>>());
        let miniport = |gather_copy: bool| {
            let batch = &batch;
            move |calls: usize| {
                miniport::test_hooks::set_tx_gather_copy(gather_copy);
                let _ = bench::sink_take();
                let before = netcx::counters(adapter).expect("adapter").tx_completed;
                let mut t = Duration::ZERO;
                for _ in 0..calls {
                    t += region(|| {
                        assert_eq!(batch.send(), BATCH);
                        netcx::pump(adapter);
                    });
                }
                let (sent, _, last) = bench::sink_take();
                assert_eq!(sent, (calls * BATCH) as u64, "datagrams on the wire");
                assert!(last.len() > size, "a sealed datagram is longer than its packet");
                let done = netcx::counters(adapter).expect("adapter").tx_completed - before;
                assert_eq!(done, (calls * BATCH) as u64, "Tx packets retired");
                miniport::test_hooks::set_tx_gather_copy(false);
                t
            }
        };
        let raw_aead = |calls: usize| {
            let mut out = out.borrow_mut();
            let mut t = Duration::ZERO;
            for _ in 0..calls {
                t += region(|| {
                    for p in &packets {
                        black_box(raw.seal(&nonce, &aad, &[black_box(p)], &[], &mut out).unwrap());
                    }
                });
            }
            t
        };
        let segments = |calls: usize| {
            let (mut out, mut peer) = (out.borrow_mut(), peer.borrow_mut());
            let mut t = Duration::ZERO;
            for _ in 0..calls {
                t += region(|| {
                    for p in &packets {
                        black_box(peer.seal(datapath::Instant::ZERO, &thirds(p), &mut out).unwrap());
                    }
                });
            }
            t
        };
        let gather_copy = |calls: usize| {
            let (mut out, mut peer, mut gather) = (out.borrow_mut(), peer.borrow_mut(), gather.borrow_mut());
            let mut t = Duration::ZERO;
            for _ in 0..calls {
                t += region(|| {
                    for p in &packets {
                        let mut at = 0;
                        for f in thirds(p) {
                            gather[at..at + f.len()].copy_from_slice(f);
                            at += f.len();
                        }
                        black_box(peer.seal(datapath::Instant::ZERO, &[&gather[..at]], &mut out).unwrap());
                    }
                });
            }
            t
        };
        let mut rows = [
            Row::new("raw-aead", BATCH, raw_aead),
            Row::new("engine-segments", BATCH, segments),
            Row::new("gather-copy", BATCH, gather_copy),
            Row::new("miniport", BATCH, miniport(false)),
            Row::new("miniport-gather-copy", BATCH, miniport(true)),
        ];
        harness::run("tx", size, "raw-aead", &mut rows);
    }
    for size in SIZES {
        if harness::skip_size("rx", size) {
            continue;
        }
        let packets: Vec<Vec<u8>> = (0..BATCH as u16).map(|k| ipv4_packet(k, size)).collect();
        let miniport = |calls: usize| {
            let mut rig = rig.borrow_mut();
            let before = netcx::counters(adapter).expect("adapter").rx_indicated;
            let mut t = Duration::ZERO;
            for _ in 0..calls {
                // Untimed: the peer seals the batch (fresh packet ids, past the replay window).
                let sealed: Vec<Vec<u8>> = packets.iter().map(|p| rig.peer.seal(p).unwrap()).collect();
                let refs: Vec<&[u8]> = sealed.iter().map(Vec::as_slice).collect();
                // Untimed too: the NIC and the UDP layer put them in indication buffers.
                let mut batch = bench::RxBatch::new(port, from, &refs);
                t += region(|| {
                    assert_eq!(batch.indicate(), BATCH);
                    netcx::pump(adapter);
                });
            }
            let got = netcx::counters(adapter).expect("adapter").rx_indicated - before;
            assert_eq!(got, (calls * BATCH) as u64, "packets the stack received");
            t
        };
        let tagged: Vec<(Vec<u8>, [u8; 16])> = packets
            .iter()
            .map(|p| {
                let mut out = vec![0u8; p.len()];
                let tag = raw.seal(&nonce, &aad, &[p], &[], &mut out).unwrap();
                (out, tag)
            })
            .collect();
        let raw_aead = |calls: usize| {
            let mut t = Duration::ZERO;
            for _ in 0..calls {
                let mut bufs = tagged.clone();
                t += region(|| {
                    for (buf, tag) in bufs.iter_mut() {
                        raw.open_in_place(&nonce, &aad, buf, tag).unwrap();
                    }
                });
                black_box(&bufs);
            }
            t
        };
        let sender = RefCell::new(engine_peer(false));
        let receiver = RefCell::new(engine_peer(true));
        let pool = RefCell::new(vec![0u8; 2048]);
        let open = |copy: bool| {
            let (sender, receiver, pool, packets) = (&sender, &receiver, &pool, &packets);
            move |calls: usize| {
                let (mut sender, mut receiver, mut pool) =
                    (sender.borrow_mut(), receiver.borrow_mut(), pool.borrow_mut());
                let mut t = Duration::ZERO;
                for _ in 0..calls {
                    let mut bufs: Vec<Vec<u8>> = packets
                        .iter()
                        .map(|p| {
                            let mut out = vec![0u8; p.len() + wire::MAX_OVERHEAD];
                            let s = sender.seal(datapath::Instant::ZERO, &[p], &mut out).unwrap();
                            out.truncate(s.len);
                            out
                        })
                        .collect();
                    t += region(|| {
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
                    });
                }
                t
            }
        };
        let mut rows = [
            Row::new("raw-aead", BATCH, raw_aead),
            Row::new("engine-in-place", BATCH, open(false)),
            Row::new("copy-into-pool", BATCH, open(true)),
            Row::new("miniport", BATCH, miniport),
        ];
        harness::run("rx", size, "raw-aead", &mut rows);
    }
    drop(profile);
    let rig = rig.into_inner();
    tear_down(&mut m, rig).expect("tear down");
    let _ = m.shutdown();
}
