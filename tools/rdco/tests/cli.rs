//! `rdco packet seal|open` against the Python-made vectors (`tests/vectors/`).
#![allow(clippy::pedantic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn rdco(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdco"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

struct Case {
    cipher: String,
    epoch: bool,
    direction: u8,
    key_id: String,
    peer_id: String,
    packets: Vec<(u64, String, String)>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(vectors().join("vectors.txt")).unwrap();
    let mut out = Vec::new();
    let mut cur: Option<Case> = None;
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first().copied() {
            Some("case") => {
                let kv =
                    |k: &str| w.iter().find_map(|x| x.strip_prefix(&format!("{k}="))).unwrap().to_string();
                cur = Some(Case {
                    cipher: kv("cipher"),
                    epoch: kv("format") == "epoch",
                    direction: kv("direction").parse().unwrap(),
                    key_id: kv("key_id"),
                    peer_id: kv("peer_id"),
                    packets: Vec::new(),
                });
            }
            Some("packet") => {
                cur.as_mut().unwrap().packets.push((w[1].parse().unwrap(), w[2].into(), w[3].into()))
            }
            Some("end") => out.push(cur.take().unwrap()),
            _ => {}
        }
    }
    out
}

fn key_args(c: &Case, direction: u8) -> Vec<String> {
    let mut a = vec![
        "--key".into(),
        vectors().join("data64.key").to_string_lossy().into_owned(),
        "--direction".into(),
        direction.to_string(),
        "--cipher".into(),
        c.cipher.clone(),
        "--key-id".into(),
        c.key_id.clone(),
        "--peer-id".into(),
        c.peer_id.clone(),
    ];
    if c.epoch {
        a.push("--epoch".into());
    }
    a
}

#[test]
fn seal_matches_python_packets() {
    for c in cases() {
        let sealable: Vec<_> = c.packets.iter().filter(|p| !c.epoch || p.0 >> 48 == 1).collect();
        let input: String = sealable.iter().map(|p| format!("{}\n", p.1)).collect();
        let mut args = vec!["packet".to_string(), "seal".into()];
        args.extend(key_args(&c, c.direction));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rdco(&args, &input);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
        let want: Vec<String> = sealable.iter().map(|p| p.2.clone()).collect();
        assert_eq!(got, want, "{} epoch={}", c.cipher, c.epoch);
    }
}

#[test]
fn open_python_packets_and_catch_replays() {
    for c in cases() {
        let n = c.packets.len();
        // All but the last; a corrupted copy of the last (must not burn its id); the last; a
        // replay of the first.
        let mut input: String = c.packets[..n - 1].iter().map(|p| format!("{}\n", p.2)).collect();
        let mut bad = c.packets[n - 1].2.clone();
        let tail = if bad.ends_with('0') { '1' } else { '0' };
        bad.pop();
        bad.push(tail);
        input.push_str(&format!("{bad}\n{}\n{}\n", c.packets[n - 1].2, c.packets[0].2));
        let mut args = vec!["packet".to_string(), "open".into()];
        args.extend(key_args(&c, 1 - c.direction));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rdco(&args, &input);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
        assert_eq!(lines.len(), n + 2);
        let expect = |p: &(u64, String, String)| {
            let plain = if p.1 == "-" { "" } else { p.1.as_str() };
            format!("ok {} {}", p.0, plain).trim_end().to_string()
        };
        for (line, p) in lines.iter().zip(&c.packets[..n - 1]) {
            assert_eq!(line.trim_end(), expect(p), "{}", c.cipher);
        }
        if c.cipher == "none" {
            // No authentication: the changed packet opens, and the genuine one is then a replay.
            assert!(lines[n - 1].starts_with(&format!("ok {} ", c.packets[n - 1].0)));
            assert_eq!(lines[n], "drop replay");
        } else {
            assert_eq!(lines[n - 1], "drop auth-failed", "{}", c.cipher);
            assert_eq!(lines[n].trim_end(), expect(&c.packets[n - 1]), "{}", c.cipher);
        }
        // Epoch cases have moved on to epoch 3 by then: epoch 1 is no longer known at all.
        assert_eq!(lines[n + 1], if c.epoch { "drop unknown-epoch" } else { "drop replay" });
    }
}

#[test]
fn seal_then_open_roundtrip_with_packet_id() {
    let c = cases().into_iter().find(|c| c.cipher == "aes-256-gcm" && !c.epoch).unwrap();
    let c = &c;
    let mut args = vec!["packet".to_string(), "seal".into(), "--packet-id".into(), "1000".into()];
    args.extend(key_args(c, 0));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = rdco(&args, "00\n\nabcdef\n");
    assert!(out.status.success());
    let sealed = String::from_utf8(out.stdout).unwrap();
    let mut args = vec!["packet".to_string(), "open".into()];
    args.extend(key_args(c, 1));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = rdco(&args, &sealed);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "ok 1000 00\nok 1001 \nok 1002 abcdef\n");
}

fn one_line_failure(args: &[&str], stdin: &str, needle: &str) {
    let out = rdco(args, stdin);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle}");
}

#[test]
fn bad_input_fails_with_one_line() {
    let key = vectors().join("data64.key").to_string_lossy().into_owned();
    let base = |cipher: &'static str, key: &str| -> Vec<String> {
        ["packet", "seal", "--key", key, "--direction", "0", "--cipher", cipher]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let run = |v: Vec<String>, stdin: &str, needle: &str| {
        let a: Vec<&str> = v.iter().map(String::as_str).collect();
        one_line_failure(&a, stdin, needle);
    };
    run(base("aes-256-gcm", &key), "0g\n", "bad hex");
    run(base("aes-256-gcm", &key), "abc\n", "bad hex");
    run(base("aes-257-gcm", &key), "", "unknown cipher");
    let dir = std::env::temp_dir().join(format!("rdco-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let short = dir.join("short.key");
    std::fs::write(&short, "AAAAAAAA\n").unwrap();
    run(base("aes-256-gcm", &short.to_string_lossy()), "", "decodes to 6 bytes");
    let garbage = dir.join("garbage.key");
    std::fs::write(&garbage, "not base64 at all!\n").unwrap();
    run(base("aes-256-gcm", &garbage.to_string_lossy()), "", "base64");
    run(base("aes-256-gcm", "/nonexistent/key"), "", "key file");
    let mut v = base("aes-256-gcm", &key);
    v[5] = "2".into();
    run(v, "", "direction");
    let mut v = base("aes-256-gcm", &key);
    v.extend(["--key-id".into(), "9".into()]);
    run(v, "", "key-id");
    let mut open = base("aes-256-gcm", &key);
    open[1] = "open".into();
    run(open, "49zz\n", "bad hex");
    run(vec!["packet".into(), "seal".into()], "", "required");
    std::fs::remove_dir_all(&dir).ok();
}
