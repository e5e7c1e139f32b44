//! Open arbitrary datagrams through classic and epoch keys of every cipher, and through a peer
//! table: nothing may panic, and nothing forged may authenticate.
#![no_main]

use datapath::crypto::Cipher;
use datapath::keys::{KeyConfig, KeyDirection, KeyFormat, KeySlotId};
use datapath::peer::{Peer, PeerConfig, PeerTable, Received};
use datapath::time::Instant;
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;

struct State {
    peers: Vec<Peer>,
    table: PeerTable,
}

fn key(cipher: Cipher, format: KeyFormat) -> KeyConfig {
    KeyConfig {
        cipher,
        format,
        key_id: 0,
        encrypt: KeyDirection { key: [1; 32], nonce_tail: [2; 8] },
        decrypt: KeyDirection { key: [3; 32], nonce_tail: [4; 8] },
    }
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut guard = STATE.lock().unwrap();
    let st = guard.get_or_insert_with(|| {
        let mut peers = Vec::new();
        for cipher in Cipher::ALL {
            for format in [KeyFormat::Classic, KeyFormat::Epoch] {
                if format == KeyFormat::Epoch && !cipher.is_aead() {
                    continue;
                }
                let mut p = Peer::new(&PeerConfig::new(1), Instant::ZERO);
                p.install_key(KeySlotId::Primary, &key(cipher, format)).unwrap();
                p.set_mss(1300);
                peers.push(p);
            }
        }
        let mut table = PeerTable::new();
        for id in 0..4 {
            table.add_peer(&PeerConfig::new(id), Instant::ZERO).unwrap();
            table
                .peer_mut(id)
                .unwrap()
                .install_key(KeySlotId::Primary, &key(Cipher::Aes128Gcm, KeyFormat::Epoch))
                .unwrap();
        }
        State { peers, table }
    });
    let now = Instant::from_millis(u64::from(data.first().copied().unwrap_or(0)) * 1000);
    for (i, p) in st.peers.iter_mut().enumerate() {
        let mut buf = data.to_vec();
        let r = p.open(now, None, &mut buf);
        // Only the unauthenticated cipher can accept fuzz input as data.
        if let Ok(Received::Data(o) | Received::Keepalive(o)) = &r {
            assert!(i == 0, "forged packet authenticated: {o:?}");
            assert!(o.payload.end <= buf.len());
        }
    }
    let mut buf = data.to_vec();
    if let Ok(Received::Data(_) | Received::Keepalive(_)) = st.table.open(now, None, &mut buf) {
        panic!("forged packet authenticated in the table");
    }
});
