//! Proves the per-packet paths never touch the heap: 100k packets through seal (scatter and in
//! place, alternately) and open under a counting global allocator.
#![allow(clippy::pedantic)]

use datapath::crypto::Cipher;
use datapath::keys::{KeyConfig, KeyDirection, KeyFormat, KeySlotId};
use datapath::peer::{IpPrefix, Peer, PeerConfig, PeerTable, Received};
use datapath::time::Instant;
use datapath::wire;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn key(cipher: Cipher, format: KeyFormat, swap: bool) -> KeyConfig {
    let a = KeyDirection { key: [1; 32], nonce_tail: [2; 8] };
    let b = KeyDirection { key: [3; 32], nonce_tail: [4; 8] };
    let (encrypt, decrypt) = if swap { (b, a) } else { (a, b) };
    KeyConfig { cipher, format, key_id: 0, encrypt, decrypt }
}

#[test]
fn no_heap_allocation_per_packet() {
    const PACKETS: usize = 100_000;
    // Configuration: allowed to allocate.
    let combos: Vec<(Cipher, KeyFormat)> = Cipher::ALL
        .iter()
        .flat_map(|c| [(*c, KeyFormat::Classic), (*c, KeyFormat::Epoch)])
        .filter(|(c, f)| !(*c == Cipher::None && *f == KeyFormat::Epoch))
        .collect();
    let mut pairs: Vec<(PeerTable, Peer)> = combos
        .iter()
        .map(|&(c, f)| {
            let mut cfg = PeerConfig::new(1);
            cfg.mss = 1300;
            let mut table = PeerTable::new();
            table.add_peer(&cfg, Instant::ZERO).unwrap();
            let p = table.peer_mut(1).unwrap();
            p.install_key(KeySlotId::Primary, &key(c, f, false)).unwrap();
            // Epoch keys roll over every ~1000 packets, so rollover is inside the measurement.
            p.keys_mut().primary_mut().unwrap().set_tx_usage_limit(2000);
            table.add_route(IpPrefix::V4([10, 0, 0, 0], 8), 1).unwrap();
            let mut rx = Peer::new(&cfg, Instant::ZERO);
            rx.install_key(KeySlotId::Primary, &key(c, f, true)).unwrap();
            (table, rx)
        })
        .collect();
    let mut packet = vec![0u8; 1400];
    packet[0] = 0x45;
    packet[16..20].copy_from_slice(&[10, 1, 2, 3]);
    let mut out = vec![0u8; 1400 + wire::MAX_OVERHEAD];
    let mut opened = 0usize;

    COUNTING.with(|c| c.set(true));
    for i in 0..PACKETS {
        let (table, rx) = &mut pairs[i % combos.len()];
        let now = Instant::from_millis(i as u64);
        let len = 20 + (i % 1380);
        let segs: [&[u8]; 3] = [&packet[..10], &packet[10..len / 2 + 10], &packet[len / 2 + 10..len]];
        if i % 2 == 0 {
            let s = table.seal(now, &segs, &mut out).unwrap();
            if let Ok(Received::Data(_)) = rx.open(now, None, &mut out[..s.len]) {
                opened += 1;
            }
        } else {
            // In place: the plaintext already at the payload offset of the send buffer.
            let p = table.peer_mut(1).unwrap();
            let head = p.headroom().unwrap();
            out[head..head + len].copy_from_slice(&packet[..len]);
            let s = p.seal_in_place(now, &mut out, len).unwrap();
            assert!(!s.gathered);
            if let Ok(Received::Data(_)) = rx.open(now, None, &mut out[..s.len]) {
                opened += 1;
            }
        }
        if i % 1000 == 0 {
            let s = table.peer_mut(1).unwrap().seal_keepalive(now, &mut out).unwrap();
            assert!(matches!(rx.open(now, None, &mut out[..s.len]), Ok(Received::Keepalive(_))));
        }
    }
    COUNTING.with(|c| c.set(false));

    assert_eq!(opened, PACKETS);
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0, "heap allocations on the packet path");
    let epoch_rx = pairs[2].1.keys().primary().unwrap().rx_epoch().unwrap();
    assert!(epoch_rx > 5, "epoch rollover was exercised (epoch {epoch_rx})");
}
