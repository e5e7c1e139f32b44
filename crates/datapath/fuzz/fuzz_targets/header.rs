//! Header parsing: the P_DATA_V2 wrapper, classification, inner-destination and MSS parsing.
#![no_main]

use datapath::mss;
use datapath::peer::InnerDest;
use datapath::wire::{self, DataHeader, PacketKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match wire::classify(data) {
        Ok(PacketKind::Data { key_id, peer_id }) => {
            let h = DataHeader::new_checked(data).unwrap();
            assert_eq!((h.key_id(), h.peer_id()), (key_id, peer_id));
            assert_eq!(wire::header_word(key_id, peer_id), data[..4]);
        }
        Ok(PacketKind::Control { opcode }) => assert_ne!(opcode, wire::P_DATA_V2),
        Err(_) => assert!(data.len() < 4),
    }
    let h = DataHeader::new_unchecked(data);
    let _ = (h.opcode(), h.key_id(), h.peer_id(), h.check());

    // Inner packet parsing, split at every position given by the first byte.
    let cut = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let segs = [&data[..cut], &data[cut..]];
    let _ = InnerDest::from_segments(&segs);
    let patches = mss::patches(&segs, 1300);
    let mut copy = data.to_vec();
    let changed = mss::clamp_in_place(&mut copy, 1300);
    // The seal-time patches describe exactly the in-place edit.
    let mut patched = data.to_vec();
    for p in &patches {
        patched[p.offset] ^= p.xor[0];
        patched[p.offset + 1] ^= p.xor[1];
    }
    assert_eq!(patched, copy);
    assert_eq!(changed, !patches.is_empty());
});
