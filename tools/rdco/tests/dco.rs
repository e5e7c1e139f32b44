//! `rdco dco ...`: the requests it builds (`--dry-run`, parsed back with `uapi::ovpn`) and its one-line
//! errors. Sending them to the simulated miniport waits for the miniport's control device (see the note in
//! `tools/rdco/src/dco.rs`); the open failing cleanly is checked here.
#![allow(clippy::pedantic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use datapath::keyfile::KeyFile;
use uapi::ovpn::*;

fn key_file() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/data64.key")
        .to_string_lossy()
        .into_owned()
}

fn rdco(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rdco"))
        .arg("dco")
        .args(args)
        .env_remove("RDCO_SIM_SOCKET")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The dry run's requests: (IOCTL name, input bytes).
fn dry(args: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut full = vec!["--dry-run"];
    full.extend_from_slice(args);
    let out = rdco(&full);
    assert!(out.status.success(), "rdco dco {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, hex) = l.split_once(' ').unwrap_or((l, ""));
            let bytes =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            (name.to_string(), bytes)
        })
        .collect()
}

#[track_caller]
fn fails(args: &[&str], needle: &str) {
    let out = rdco(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rdco dco {args:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "not a one-line error: {stderr}");
    assert!(stderr.contains(needle), "rdco dco {args:?}: expected '{needle}' in: {stderr}");
}

#[test]
fn client_requests_are_what_ovpn_dco_cli_sends() {
    let key = key_file();
    let reqs = dry(&[
        "client",
        "--remote",
        "192.0.2.1:1194",
        "--proto",
        "tcp",
        "--peer-id",
        "7",
        "--key",
        &key,
        "--direction",
        "1",
        "--cipher",
        "chacha20-poly1305",
        "--key-id",
        "2",
        "--keepalive",
        "10,60",
        "--mss",
        "1360",
    ]);
    let names: Vec<&str> = reqs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        ["OVPN_IOCTL_NEW_PEER", "OVPN_IOCTL_NEW_KEY", "OVPN_IOCTL_SET_PEER", "OVPN_IOCTL_START_VPN"]
    );
    let p = OvpnNewPeer::parse(&reqs[0].1).unwrap();
    assert_eq!(p.remote, "192.0.2.1:1194".parse().unwrap());
    assert_eq!(p.local, "0.0.0.0:0".parse().unwrap());
    assert_eq!(p.proto, OvpnProto::Tcp);
    assert_eq!(reqs[1].1.len(), OvpnCryptoData::SIZE);
    let k = OvpnCryptoData::parse(&reqs[1].1).unwrap();
    let file = KeyFile::parse(&std::fs::read(key_file()).unwrap()).unwrap();
    // Direction 1 encrypts with key B and decrypts with key A.
    assert_eq!(k.encrypt.key, file.key_b);
    assert_eq!(k.decrypt.key, file.key_a);
    assert_eq!(k.encrypt.nonce_tail, file.nonce_tail);
    assert_eq!(
        (k.encrypt.key_len, k.cipher_alg, k.key_id, k.peer_id),
        (32, OvpnCipherAlg::ChaCha20Poly1305, 2, 7)
    );
    assert_eq!(k.key_slot, OvpnKeySlot::Primary);
    let s = OvpnSetPeer::parse(&reqs[2].1).unwrap();
    assert_eq!((s.keepalive_interval, s.keepalive_timeout, s.mss), (10, 60, 1360));
    assert!(reqs[3].1.is_empty());

    // Without keepalive or MSS no SET_PEER; AES-128 uses 16 bytes of each key.
    let reqs = dry(&[
        "client",
        "--remote",
        "[2001:db8::1]:1194",
        "--key",
        &key,
        "--direction",
        "0",
        "--cipher",
        "aes-128-gcm",
    ]);
    let names: Vec<&str> = reqs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["OVPN_IOCTL_NEW_PEER", "OVPN_IOCTL_NEW_KEY", "OVPN_IOCTL_START_VPN"]);
    assert_eq!(OvpnNewPeer::parse(&reqs[0].1).unwrap().local, "[::]:0".parse().unwrap());
    let k = OvpnCryptoData::parse(&reqs[1].1).unwrap();
    assert_eq!((k.encrypt.key_len, k.encrypt.key, k.cipher_alg), (16, file.key_a, OvpnCipherAlg::AesGcm));
}

#[test]
fn server_requests_cover_mode_listen_peers_keys_and_iroutes() {
    let key = key_file();
    let reqs = dry(&[
        "server",
        "--listen",
        "0.0.0.0:1194",
        "--peer",
        "1=198.51.100.7:40000,10.8.0.2,fd00::2",
        "--peer",
        "2=[2001:db8::9]:40001",
        "--iroute",
        "192.168.10.0/24=1",
        "--iroute",
        "fd10::/64=2",
        "--key",
        &key,
        "--direction",
        "0",
        "--keepalive",
        "5,30",
    ]);
    let names: Vec<&str> = reqs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "OVPN_IOCTL_SET_MODE",
            "OVPN_IOCTL_MP_START_VPN",
            "OVPN_IOCTL_MP_NEW_PEER",
            "OVPN_IOCTL_NEW_KEY",
            "OVPN_IOCTL_MP_SET_PEER",
            "OVPN_IOCTL_MP_NEW_PEER",
            "OVPN_IOCTL_NEW_KEY",
            "OVPN_IOCTL_MP_SET_PEER",
            "OVPN_IOCTL_MP_ADD_IROUTE",
            "OVPN_IOCTL_MP_ADD_IROUTE",
        ]
    );
    assert_eq!(OvpnSetMode::parse(&reqs[0].1).unwrap().mode, OvpnMode::Mp);
    assert_eq!(OvpnMpStartVpn::parse(&reqs[1].1).unwrap().listen_address, "0.0.0.0:1194".parse().unwrap());
    let p1 = OvpnMpNewPeer::parse(&reqs[2].1).unwrap();
    assert_eq!(
        (p1.peer_id, p1.remote, p1.vpn_addr4, p1.vpn_addr6),
        (1, "198.51.100.7:40000".parse().unwrap(), "10.8.0.2".parse().unwrap(), "fd00::2".parse().unwrap())
    );
    assert_eq!(OvpnCryptoData::parse(&reqs[3].1).unwrap().peer_id, 1);
    let sp = OvpnMpSetPeer::parse(&reqs[4].1).unwrap();
    assert_eq!((sp.peer_id, sp.keepalive_interval, sp.keepalive_timeout, sp.mss), (1, 5, 30, -1));
    let p2 = OvpnMpNewPeer::parse(&reqs[5].1).unwrap();
    assert_eq!((p2.peer_id, p2.local), (2, "[::]:0".parse().unwrap()));
    assert!(p2.vpn_addr4.is_unspecified());
    let r1 = OvpnMpIroute::parse(&reqs[8].1).unwrap();
    assert_eq!((r1.addr, r1.netbits, r1.peer_id), ("192.168.10.0".parse().unwrap(), 24, 1));
    let r2 = OvpnMpIroute::parse(&reqs[9].1).unwrap();
    assert_eq!((r2.addr, r2.netbits, r2.peer_id), ("fd10::".parse().unwrap(), 64, 2));
    assert_eq!(dry(&["version"])[0].0, "OVPN_IOCTL_GET_VERSION");
}

#[test]
fn bad_input_fails_with_one_line() {
    let key = key_file();
    let k = key.as_str();
    let client = |extra: &[&'static str]| {
        let mut v: Vec<String> = ["client", "--remote", "192.0.2.1:1194", "--key", k, "--direction", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |v: Vec<String>, needle: &str| {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        fails(&refs, needle);
    };
    run(client(&["--proto", "sctp"]), "--proto must be udp or tcp");
    run(client(&["--cipher", "rot13"]), "unknown cipher 'rot13'");
    run(client(&["--key-id", "9"]), "--key-id must be 0..=7");
    run(client(&["--peer-id", "16777216"]), "peer id must be at most 0xFFFFFF");
    run(client(&["--keepalive", "10"]), "bad --keepalive '10'");
    run(client(&["--keepalive=-1,5"]), "bad --keepalive");
    run(client(&["--local", "[::]:0"]), "same address family");
    run(client(&["--mss", "70000"]), "70000");
    fails(&["client", "--remote", "192.0.2.1:0", "--key", k, "--direction", "0"], "not a usable address");
    fails(
        &["client", "--remote", "192.0.2.1:1194", "--key", k, "--direction", "2"],
        "--direction must be 0 or 1",
    );
    fails(
        &["client", "--remote", "192.0.2.1:1194", "--key", "/nonexistent/data64.key", "--direction", "0"],
        "key file /nonexistent/data64.key",
    );
    fails(&["client", "--remote", "nowhere", "--key", k, "--direction", "0"], "invalid value 'nowhere'");
    let server = |peer: &str, iroute: Option<&str>, needle: &str| {
        let mut v =
            vec!["server", "--listen", "0.0.0.0:1194", "--peer", peer, "--key", k, "--direction", "0"];
        if let Some(r) = iroute {
            v.extend(["--iroute", r]);
        }
        fails(&v, needle);
    };
    server("1", None, "bad --peer '1': no '='");
    server("x=198.51.100.1:1", None, "bad peer id");
    server("1=198.51.100.1", None, "bad remote address");
    server("1=198.51.100.1:1,10.8.0.300", None, "bad tunnel address");
    server("16777216=198.51.100.1:1", None, "peer id must be at most 0xFFFFFF");
    server("1=198.51.100.1:1", Some("10.0.0.0/33=1"), "length too long");
    server("1=198.51.100.1:1", Some("10.0.0.0=1"), "no '/'");
    server("1=198.51.100.1:1", Some("10.0.0.0/8=2"), "names peer 2 which no --peer defines");
    fails(&["server", "--listen", "0.0.0.0:1194", "--key", k, "--direction", "0"], "--peer");
}

#[test]
fn without_a_device_the_open_fails_cleanly() {
    let key = key_file();
    let args = ["client", "--remote", "192.0.2.1:1194", "--key", key.as_str(), "--direction", "0"];
    if cfg!(unix) {
        fails(&args, "no control device here");
        let mut with_socket = vec!["--sim-socket", "/nonexistent/rdco.sock"];
        with_socket.extend_from_slice(&args);
        fails(&with_socket, "cannot connect to the control socket");
        fails(&["--sim-socket", "/nonexistent/rdco.sock", "version"], "cannot connect to the control socket");
    }
}
