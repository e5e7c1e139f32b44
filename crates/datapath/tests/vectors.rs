//! The independent-implementation vectors (`tests/vectors/`, made by `gen.py` with Python
//! `cryptography`) open and seal byte-identically.
#![allow(clippy::pedantic)]

use datapath::crypto::{Cipher, RustCryptoAead};
use datapath::keyfile::KeyFile;
use datapath::keys::{EpochKey, KeyFormat, KeySlot};
use datapath::replay::ReplayConfig;
use datapath::time::Instant;
use std::path::PathBuf;

#[derive(Debug)]
struct Case {
    name: String,
    cipher: Cipher,
    format: KeyFormat,
    direction: u8,
    key_id: u8,
    peer_id: u32,
    epoch_keys: Vec<(u16, Vec<u8>, Vec<u8>)>,
    packets: Vec<(u64, Vec<u8>, Vec<u8>)>,
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    hex::decode(s).unwrap()
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn load() -> (KeyFile, Vec<Case>) {
    let dir = vectors_dir();
    let kf = KeyFile::parse(&std::fs::read(dir.join("data64.key")).unwrap()).unwrap();
    let text = std::fs::read_to_string(dir.join("vectors.txt")).unwrap();
    let mut cases = Vec::new();
    let mut cur: Option<Case> = None;
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("case") => {
                let name = w.next().unwrap().to_string();
                let kv: std::collections::HashMap<&str, &str> =
                    w.map(|x| x.split_once('=').unwrap()).collect();
                cur = Some(Case {
                    name,
                    cipher: Cipher::from_name(kv["cipher"]).unwrap(),
                    format: if kv["format"] == "epoch" { KeyFormat::Epoch } else { KeyFormat::Classic },
                    direction: kv["direction"].parse().unwrap(),
                    key_id: kv["key_id"].parse().unwrap(),
                    peer_id: kv["peer_id"].parse().unwrap(),
                    epoch_keys: Vec::new(),
                    packets: Vec::new(),
                });
            }
            Some("epochkey") => {
                let c = cur.as_mut().unwrap();
                c.epoch_keys.push((
                    w.next().unwrap().parse().unwrap(),
                    unhex(w.next().unwrap()),
                    unhex(w.next().unwrap()),
                ));
            }
            Some("packet") => {
                let c = cur.as_mut().unwrap();
                c.packets.push((
                    w.next().unwrap().parse().unwrap(),
                    unhex(w.next().unwrap()),
                    unhex(w.next().unwrap()),
                ));
            }
            Some("end") => cases.push(cur.take().unwrap()),
            _ => {}
        }
    }
    (kf, cases)
}

#[test]
fn vectors_cover_every_cipher_and_format() {
    let (_, cases) = load();
    for cipher in Cipher::ALL {
        assert!(
            cases.iter().any(|c| c.cipher == cipher && c.format == KeyFormat::Classic),
            "{cipher} classic"
        );
        if cipher.is_aead() {
            assert!(
                cases.iter().any(|c| c.cipher == cipher && c.format == KeyFormat::Epoch),
                "{cipher} epoch"
            );
        }
    }
}

#[test]
fn vectors_open_and_seal_byte_identically() {
    let (kf, cases) = load();
    let mut opened = 0;
    let mut sealed = 0;
    for c in &cases {
        let sender_cfg = kf.key_config(c.cipher, c.format, c.key_id, c.direction).unwrap();
        let receiver_cfg = kf.key_config(c.cipher, c.format, c.key_id, 1 - c.direction).unwrap();
        let mut tx = KeySlot::<RustCryptoAead>::new(&sender_cfg, ReplayConfig::default()).unwrap();
        let mut rx = KeySlot::<RustCryptoAead>::new(&receiver_cfg, ReplayConfig::default()).unwrap();
        // Epoch key derivation matches.
        if c.format == KeyFormat::Epoch {
            let mut e = EpochKey::first(&sender_cfg.encrypt.key);
            for (epoch, key, iv) in &c.epoch_keys {
                assert_eq!(e.epoch(), *epoch);
                let mut k = [0u8; 32];
                let got_iv = e.data_key_bytes(c.cipher, &mut k);
                assert_eq!((&k[..key.len()], &got_iv[..]), (&key[..], &iv[..]), "{} epoch {epoch}", c.name);
                e.iterate();
            }
        }
        for (id, plain, packet) in &c.packets {
            // Open the Python-made packet.
            let mut buf = packet.clone();
            let info =
                rx.open(Instant::ZERO, &mut buf).unwrap_or_else(|e| panic!("{} id {id:#x}: {e}", c.name));
            assert_eq!(info.packet_id, *id, "{}", c.name);
            assert_eq!(&buf[info.payload], &plain[..], "{} id {id:#x}", c.name);
            opened += 1;
            // Replays of it are refused.
            assert!(rx.open(Instant::ZERO, &mut packet.clone()).is_err(), "{} replay", c.name);
            // Seal the same plaintext; consecutive ids from 1 in the first epoch match exactly.
            if c.format == KeyFormat::Classic || id >> 48 == 1 {
                let mut out = vec![0u8; plain.len() + 28];
                let half = plain.len() / 2;
                let s = tx.seal(c.peer_id, &[&plain[..half], &plain[half..]], &[], &mut out).unwrap();
                assert_eq!(s.packet_id, *id, "{}", c.name);
                assert_eq!(hex::encode(&out[..s.len]), hex::encode(packet), "{} id {id:#x}", c.name);
                sealed += 1;
            }
        }
    }
    assert_eq!(opened, 186 + 8);
    assert!(sealed >= 150, "sealed {sealed}");
}
