//! `rdco dco ...` (the real binary) against a simulated machine with the real miniport loaded.
//!
//! The miniport does not create its adapter or control device yet (`EvtDriverDeviceAdd` declines; the
//! NetAdapterCx binding is being built), so today the CLI must fail cleanly, with one line naming the
//! device and `STATUS_OBJECT_NAME_NOT_FOUND`. When the miniport exposes `\\.\ovpn-dco`, this test is the
//! place to drive a whole client and server session through the control socket instead.
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
fn rdco_dco_reaches_the_simulated_machine_and_finds_no_device_yet() {
    let bin = rdco_binary();
    let tmp = std::env::temp_dir().join(format!("rdco-dco-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let socket = tmp.join("machine.sock");
    let key = format!("{}/vectors/data64.key", env!("CARGO_MANIFEST_DIR"));

    let mut machine = winsim::Machine::boot();
    let id = machine.load_driver(uapi::names::MINIPORT_SERVICE_NAME, miniport::driver_entry).expect("loads");
    let server = winsim::device::serve(&socket).expect("serve");
    let s = socket.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut full = vec!["dco", "--sim-socket", s];
        full.extend_from_slice(args);
        Command::new(&bin).args(&full).env_remove("RDCO_SIM_SOCKET").output().expect("run rdco")
    };
    for (args, device) in [
        (vec!["version"], "\\\\.\\ovpn-dco-ver"),
        (
            vec!["client", "--remote", "192.0.2.1:1194", "--key", &key, "--direction", "0", "--hold-ms", "0"],
            "\\\\.\\ovpn-dco",
        ),
        (
            vec![
                "server",
                "--listen",
                "0.0.0.0:1194",
                "--peer",
                "1=198.51.100.1:4000",
                "--key",
                &key,
                "--direction",
                "1",
            ],
            "\\\\.\\ovpn-dco",
        ),
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("cannot open {device}: STATUS_OBJECT_NAME_NOT_FOUND")),
            "{args:?}: {stderr}"
        );
    }
    // Bad input is refused before the device is touched.
    let out =
        run(&["client", "--remote", "192.0.2.1:1194", "--key", &key, "--direction", "0", "--cipher", "des"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown cipher 'des'"));

    drop(server);
    let _io = winsim::device::machine_lock();
    machine.unload_driver(id).unwrap();
    let violations = machine.shutdown();
    assert!(violations.is_empty(), "verifier: {violations:?}");
    let _ = std::fs::remove_dir_all(&tmp);
}
