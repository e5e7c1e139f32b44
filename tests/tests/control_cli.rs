//! `rdco filter ...` (the real binary) against a simulated machine serving its control socket: the test
//! boots winsim, loads the real filter, serves `device::serve` on a temporary path and runs the CLI.
#![allow(clippy::pedantic)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `rdco` binary of this target directory, built if it is not there yet (it belongs to another
/// package, so `CARGO_BIN_EXE_rdco` is not available here).
fn rdco_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>").to_path_buf();
    let bin = dir.join(format!("rdco{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile_release = dir.file_name().is_some_and(|n| n == "release");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "rdco"]);
    if profile_release {
        cmd.arg("--release");
    }
    // Always rebuild (cheap when fresh) so a stale binary is never tested.
    let status = cmd.status().expect("cargo build -p rdco");
    assert!(status.success(), "cargo build -p rdco failed");
    assert!(bin.exists(), "{} not found after building", bin.display());
    bin
}

struct Cli {
    bin: PathBuf,
    socket: PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        let mut full = vec!["filter", "--sim-socket", self.socket.to_str().unwrap()];
        full.extend_from_slice(args);
        Command::new(&self.bin).args(&full).env_remove("RDCO_SIM_SOCKET").output().expect("run rdco")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "rdco {args:?} failed: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str], needle: &str) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "rdco {args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "not a one-line error: {stderr}");
        assert!(stderr.contains(needle), "rdco {args:?}: expected '{needle}' in: {stderr}");
    }
}

#[test]
fn rdco_filter_over_the_control_socket() {
    let bin = rdco_binary();
    let tmp = std::env::temp_dir().join(format!("rdco-control-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let socket = tmp.join("machine.sock");
    let key = tmp.join("data64.key");
    // base64 of 72 bytes: key A = 0x11.., key B = 0x22.., nonce tail 0x33..
    let mut raw = vec![0x11u8; 32];
    raw.extend([0x22u8; 32]);
    raw.extend([0x33u8; 8]);
    std::fs::write(&key, base64(&raw)).unwrap();

    let mut machine = winsim::Machine::boot();
    winsim::datapath::add_nic(winsim::datapath::NicConfig::ethernet(7)).expect("NIC 7");
    let id =
        machine.load_driver(uapi::names::FILTER_SERVICE_NAME, filter::driver_entry).expect("filter loads");
    // Bind the filter to the NIC, as NDIS does (one module).
    let registration =
        winsim::ndis::registered_filters().into_iter().find(|f| f.owner == id).expect("registered");
    let nic = winsim::datapath::nic_info(7).expect("NIC 7");
    let bound = winsim::ndis::attach_module(registration.handle, &nic).expect("attach");
    assert_eq!(winsim::ndis::restart_module(bound), 0);
    let server = winsim::device::serve(&socket).expect("serve");
    let cli = Cli { bin, socket: socket.clone() };
    let k = key.to_str().unwrap();

    cli.ok(&["policy", "add", "10.8.0.0/24", "fd00::/64"]);
    cli.ok(&["peer", "add", "--peer-id", "1", "--remote", "192.0.2.1:1194"]);
    cli.fails(
        &["peer", "add", "--peer-id", "1", "--remote", "192.0.2.1:1194"],
        "STATUS_OBJECT_NAME_COLLISION",
    );
    cli.ok(&[
        "key",
        "new",
        "--peer-id",
        "1",
        "--key",
        k,
        "--direction",
        "0",
        "--cipher",
        "aes-256-gcm",
        "--key-id",
        "1",
    ]);
    cli.fails(&["key", "swap", "--peer-id", "1"], "STATUS_INVALID_DEVICE_STATE");
    cli.ok(&[
        "key",
        "new",
        "--peer-id",
        "1",
        "--key",
        k,
        "--direction",
        "1",
        "--cipher",
        "chacha20-poly1305",
        "--key-id",
        "2",
        "--slot",
        "secondary",
    ]);
    cli.ok(&["key", "swap", "--peer-id", "1"]);
    cli.fails(
        &["key", "new", "--peer-id", "9", "--key", k, "--direction", "0", "--cipher", "aes-128-gcm"],
        "STATUS_NOT_FOUND",
    );
    cli.fails(
        &["key", "new", "--peer-id", "1", "--key", k, "--direction", "0", "--cipher", "rot13"],
        "unknown cipher",
    );
    cli.ok(&["keepalive", "set", "--peer-id", "1", "--interval", "10", "--timeout", "60", "--mss", "1360"]);
    cli.fails(
        &["keepalive", "set", "--peer-id", "1", "--interval", "60", "--timeout", "10"],
        "STATUS_INVALID_PARAMETER",
    );
    let stats = cli.ok(&["stats", "--peer-id", "1"]);
    assert!(stats.starts_with("peer 1\n") && stats.contains("tx_packets 0\n"), "{stats}");
    let module = cli.ok(&["stats"]);
    assert!(module.starts_with("peer module\n") && module.lines().count() == 34, "{module}");
    // The hold policy: the defaults, a partial change (the other fields kept), range errors caught
    // before the device is touched, and nothing changed by a rejected set.
    let defaults = "budget_nbls 256\nbudget_ms 50\nceiling_bytes 4194304\ncopy_max_age_ms 5000\n";
    assert_eq!(cli.ok(&["hold", "show"]), defaults);
    cli.ok(&["hold", "set", "--budget-nbls", "32", "--ceiling-bytes", "1048576"]);
    let changed = "budget_nbls 32\nbudget_ms 50\nceiling_bytes 1048576\ncopy_max_age_ms 5000\n";
    assert_eq!(cli.ok(&["hold", "show"]), changed);
    cli.fails(&["hold", "set", "--budget-ms", "0"], "--budget-ms must be 1..=60000, not 0");
    cli.fails(&["hold", "set", "--budget-nbls", "2000000"], "--budget-nbls must be 1..=1048576");
    cli.fails(&["hold", "set", "--ceiling-bytes", "100"], "--ceiling-bytes must be 2048..=1073741824");
    cli.fails(&["hold", "set", "--copy-max-age-ms", "600001"], "--copy-max-age-ms must be 100..=600000");
    cli.fails(&["hold", "set"], "at least one of");
    assert_eq!(cli.ok(&["hold", "show"]), changed);
    cli.ok(&["hold", "set", "--budget-nbls", "256", "--ceiling-bytes", "4194304", "--budget-ms", "50"]);
    assert_eq!(cli.ok(&["hold", "show"]), defaults);
    cli.fails(&["policy", "list"], "no policy query");
    // Per-peer routes: nested prefixes of different peers are fine (longest wins), one prefix has one
    // owner, and every bad request changes nothing.
    cli.ok(&["peer", "add", "--peer-id", "2", "--remote", "192.0.2.2:1194"]);
    cli.ok(&["peer", "routes", "--peer-id", "1", "10.1.0.0/16", "fd00:1::/64"]);
    cli.ok(&["peer", "routes", "--peer-id", "2", "10.1.2.0/24", "10.2.0.0/16"]);
    cli.fails(&["peer", "routes", "--peer-id", "2", "10.1.0.0/16"], "STATUS_OBJECT_NAME_COLLISION");
    cli.fails(&["peer", "routes", "--peer-id", "9", "10.9.0.0/16"], "STATUS_NOT_FOUND");
    cli.fails(&["peer", "routes", "--peer-id", "1", "10.0.0.0/33"], "bad prefix");
    cli.fails(
        &["peer", "routes", "--peer-id", "1", "10.3.0.0/16", "10.3.0.0/16"],
        "STATUS_INVALID_PARAMETER",
    );
    let many: Vec<String> = (0..17).map(|i| format!("10.4.{i}.0/24")).collect();
    let mut args = vec!["peer", "routes", "--peer-id", "1"];
    args.extend(many.iter().map(String::as_str));
    cli.fails(&args, "at most 16 prefixes per peer");
    cli.ok(&["peer", "routes", "--peer-id", "2"]);
    cli.ok(&["peer", "routes", "--peer-id", "1", "10.1.2.0/24"]);
    cli.ok(&["peer", "del", "--peer-id", "2"]);
    // Modules: the one NIC, its counters by IfIndex, and a selector nobody has.
    let modules = cli.ok(&["modules"]);
    assert!(modules.starts_with("module 7 state running luid 0x6000"), "{modules}");
    assert!(
        modules.trim_end().ends_with("name \\DEVICE\\{5EC00007-0000-4000-8000-52444F4E4943}"),
        "{modules}"
    );
    assert_eq!(modules.lines().count(), 1, "{modules}");
    let by_module = cli.ok(&["stats", "--module", "7"]);
    assert!(
        by_module.starts_with("module 7\npeer module\n") && by_module.lines().count() == 35,
        "{by_module}"
    );
    cli.fails(&["stats", "--module", "8"], "STATUS_NOT_FOUND");
    let out = cli.run(&["stats", "--module", "0"]);
    assert!(!out.status.success(), "--module 0 must be refused");
    let out = cli.run(&["stats", "--module", "7", "--peer-id", "1"]);
    assert!(!out.status.success(), "--module with --peer-id must be refused");
    cli.fails(&["policy", "add", "10.0.0.0/33"], "bad prefix");
    // No event arrives (no data path yet): the read pends, the CLI gives up and its handle's cleanup
    // cancels the pended read in the driver.
    cli.fails(&["events", "--timeout-ms", "200"], "no event within 200 ms");
    cli.ok(&["peer", "del", "--peer-id", "1"]);
    cli.fails(&["peer", "del", "--peer-id", "1"], "STATUS_NOT_FOUND");
    cli.fails(&["stats", "--peer-id", "1"], "STATUS_NOT_FOUND");

    drop(server);
    assert_eq!(winsim::device::pending_irps(), 0, "a pended read survived its client");
    winsim::ndis::pause_module(bound, 0);
    winsim::pnp::settle_pause(bound);
    winsim::ndis::detach_module(bound);
    let _io = winsim::device::machine_lock();
    machine.unload_driver(id).unwrap();
    let violations = machine.shutdown();
    assert!(violations.is_empty(), "verifier: {violations:?}");
    let _ = std::fs::remove_dir_all(&tmp);

    // Without a socket: a one-line error.
    let out =
        Command::new(&cli.bin).args(["filter", "stats"]).env_remove("RDCO_SIM_SOCKET").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sim-socket"));
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}
