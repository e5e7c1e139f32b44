//! `rdco dco ...` (the real binary) against a simulated machine with the real miniport loaded.
//!
//! PnP adds the miniport's device (`EvtDriverDeviceAdd` creates the control device `\\.\ovpn-dco`), and
//! `rdco dco` drives whole client and server sessions through the control socket, the simulated I/O
//! manager and the simulated KMDF queues into `miniport::control::Tunnel`; `rdco dco version` asks the
//! separate version device `\\.\ovpn-dco-ver`. A client session against a loopback UDP socket of the
//! test checks that the miniport really opens its socket and sends keepalive pings through it.
#![allow(clippy::pedantic)]

use std::path::PathBuf;
use std::process::Command;

/// The `rdco` binary of this target directory, rebuilt if needed (see `control_cli.rs`).
fn rdco_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>").to_path_buf();
    let bin = dir.join(format!("rdco{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "rdco"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    assert!(cmd.status().expect("cargo build -p rdco").success(), "cargo build -p rdco failed");
    bin
}

#[test]
fn rdco_dco_runs_sessions_through_the_miniport_control_device() {
    let bin = rdco_binary();
    let tmp = std::env::temp_dir().join(format!("rdco-dco-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let socket = tmp.join("machine.sock");
    let key = format!("{}/vectors/data64.key", env!("CARGO_MANIFEST_DIR"));

    let mut machine = winsim::Machine::boot();
    let id = machine.load_driver(uapi::names::MINIPORT_SERVICE_NAME, miniport::driver_entry).expect("loads");
    let dev = winsim::netcx::device_arrives(id).expect("EvtDriverDeviceAdd");
    let server = winsim::device::serve(&socket).expect("serve");
    let s = socket.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut full = vec!["dco", "--sim-socket", s];
        full.extend_from_slice(args);
        Command::new(&bin).args(&full).env_remove("RDCO_SIM_SOCKET").output().expect("run rdco")
    };
    // The version device (`\\.\ovpn-dco-ver`, a separate non-exclusive control device).
    let out = run(&["version"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "version: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2.7.0"), "{stdout}");

    // A whole client session through the miniport's control device, twice: closing the handle deleted
    // the peer, so the second NEW_PEER succeeds.
    let client =
        ["client", "--remote", "192.0.2.1:1194", "--key", &key, "--direction", "0", "--hold-ms", "0"];
    for _ in 0..2 {
        let out = run(&client);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "client: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.starts_with("tunnel up\n"), "{stdout}");
        assert!(stdout.contains("lost_in_control_packets 0"), "{stdout}");
    }
    // The device is exclusive: while a client holds it, a second one cannot open it.
    let holder = {
        let mut full = vec!["dco", "--sim-socket", s];
        let mut held = client.to_vec();
        let last = held.len() - 1;
        held[last] = "3000";
        full.extend_from_slice(&held);
        Command::new(&bin)
            .args(&full)
            .env_remove("RDCO_SIM_SOCKET")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn rdco")
    };
    // Let the holder open the device first (it holds it for 3 s).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut denied = false;
    for _ in 0..100 {
        let out = run(&client);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if stderr.contains("0xc0000022") || stderr.contains("STATUS_ACCESS_DENIED") {
            denied = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let held = holder.wait_with_output().expect("rdco holder");
    assert!(held.status.success(), "holder: {}", String::from_utf8_lossy(&held.stderr));
    assert!(denied, "a second open of the exclusive device was not denied");

    // A server session: listen, a peer with a key, statistics per peer.
    let out = run(&[
        "server",
        "--listen",
        "0.0.0.0:1194",
        "--peer",
        "1=198.51.100.1:4000",
        "--key",
        &key,
        "--direction",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "server: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("listening on 0.0.0.0:1194\ntunnel up\n"), "{stdout}");
    assert!(stdout.contains("peer 1 link_rx 0 link_tx 0"), "{stdout}");
    // Bad input is refused before the device is touched.
    let out =
        run(&["client", "--remote", "192.0.2.1:1194", "--key", &key, "--direction", "0", "--cipher", "des"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown cipher 'des'"));

    // Traffic: a client session whose peer is a loopback UDP socket of this test. START_VPN opens the
    // miniport's real (simulated WSK, host loopback) socket; as machine time passes the device's one
    // keepalive timer seals a ping with the session's key and sends it to the peer.
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer socket");
    peer.set_read_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
    let remote = peer.local_addr().unwrap().to_string();
    let holder = Command::new(&bin)
        .args([
            "dco",
            "--sim-socket",
            s,
            "client",
            "--remote",
            &remote,
            "--peer-id",
            "7",
            "--key",
            &key,
            "--direction",
            "0",
            "--keepalive",
            "1,30",
            "--hold-ms",
            "6000",
        ])
        .env_remove("RDCO_SIM_SOCKET")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rdco");
    let mut ping = None;
    let mut buf = [0u8; 2048];
    for _ in 0..60 {
        {
            let _io = winsim::device::machine_lock();
            winsim::sched::advance(std::time::Duration::from_secs(1));
            // WSK sends go on the wire (and complete) when the machine pumps its sockets.
            winsim::wsk::pump();
        }
        if let Ok((n, from)) = peer.recv_from(&mut buf) {
            ping = Some((buf[..n].to_vec(), from));
            break;
        }
    }
    // And back: a control-channel packet (P_CONTROL_V1, opcode 4, key id 0) from the peer to the socket
    // the ping came from reaches the Rx path, which queues it for the control device's reads.
    if let Some((_, from)) = &ping {
        let control: Vec<u8> = std::iter::once(0x20u8).chain((1..=40u8).map(|b| b ^ 0x5a)).collect();
        peer.send_to(&control, from).expect("send control packet");
        let mut seen = 0;
        for _ in 0..200 {
            let _io = winsim::device::machine_lock();
            winsim::wsk::pump();
            let counters =
                winsim::context::call_driver(id, 0, "test: counters", || miniport::test_hooks::counters(dev));
            seen = counters.map_or(0, |c| c.rx_control);
            if seen > 0 {
                break;
            }
            drop(_io);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(seen, 1, "the control packet did not reach the miniport's control queue");
    }
    let held = holder.wait_with_output().expect("rdco holder");
    assert!(held.status.success(), "traffic client: {}", String::from_utf8_lossy(&held.stderr));
    let (ping, from) = ping.expect("no keepalive ping reached the loopback peer");
    assert!(from.ip().is_loopback(), "{from}");
    // P_DATA_V2 (opcode 9) with key id 0, then the 24-bit peer id 7; then the packet id, the AEAD tag
    // and the sealed 16-byte keepalive pattern.
    assert_eq!(&ping[..4], &[0x48, 0, 0, 7], "{ping:02x?}");
    assert_eq!(ping.len(), 4 + 4 + 16 + 16, "{ping:02x?}");
    let stdout = String::from_utf8_lossy(&held.stdout);
    assert!(stdout.contains("tunnel up"), "{stdout}");

    // TCP (`--proto tcp`): nothing listening fails NEW_PEER with the connect's status; a loopback
    // listener of this test gets the miniport's connection, and the keepalive ping arrives on the stream
    // behind its 2-byte length prefix.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let closed_addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let out = run(&["client", "--proto", "tcp", "--remote", &closed_addr, "--key", &key, "--direction", "0"]);
    assert!(!out.status.success(), "a refused TCP connect must fail the session");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("STATUS_CONNECTION_REFUSED"), "{stderr}");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let tcp_remote = listener.local_addr().unwrap().to_string();
    let tcp_holder = Command::new(&bin)
        .args([
            "dco",
            "--sim-socket",
            s,
            "client",
            "--proto",
            "tcp",
            "--remote",
            &tcp_remote,
            "--peer-id",
            "7",
            "--key",
            &key,
            "--direction",
            "0",
            "--keepalive",
            "1,30",
            "--hold-ms",
            "4000",
        ])
        .env_remove("RDCO_SIM_SOCKET")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rdco");
    let (mut stream, _) = listener.accept().expect("the miniport connects");
    stream.set_read_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
    let mut framed = Vec::new();
    for _ in 0..60 {
        {
            let _io = winsim::device::machine_lock();
            winsim::sched::advance(std::time::Duration::from_secs(1));
            winsim::wsk::pump();
        }
        let mut buf = [0u8; 256];
        if let Ok(n) = std::io::Read::read(&mut stream, &mut buf) {
            framed.extend_from_slice(&buf[..n]);
        }
        if framed.len() >= 42 {
            break;
        }
    }
    assert!(framed.len() >= 42, "no framed ping on the stream: {framed:02x?}");
    assert_eq!(&framed[..6], &[0, 40, 0x48, 0, 0, 7], "{framed:02x?}");
    let held = tcp_holder.wait_with_output().expect("rdco tcp holder");
    assert!(held.status.success(), "tcp client: {}", String::from_utf8_lossy(&held.stderr));

    drop(server);
    let _io = winsim::device::machine_lock();
    winsim::netcx::device_remove(dev);
    machine.unload_driver(id).unwrap();
    let violations = machine.shutdown();
    assert!(violations.is_empty(), "verifier: {violations:?}");
    let _ = std::fs::remove_dir_all(&tmp);
}
