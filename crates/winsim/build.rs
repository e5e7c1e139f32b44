//! Generates one stub per KMDF function-table slot, so a driver calling a DDI the simulation does not
//! implement fails loudly with that slot's index (and name where `wdf::DDI_NAMES` knows it).
use std::fmt::Write as _;

/// `WdfFunctionTableNumEntries` for KMDF 1.31/1.33.
const KMDF_SLOTS: usize = 458;

fn main() {
    let mut code = String::new();
    for i in 0..KMDF_SLOTS {
        let _ = writeln!(
            code,
            "unsafe extern \"system\" fn kmdf_slot_{i}() {{ crate::wdf::not_simulated({i}) }}"
        );
    }
    let _ = writeln!(code, "/// One stub per KMDF table slot.\npub(crate) static KMDF_STUBS: [unsafe extern \"system\" fn(); {KMDF_SLOTS}] = [");
    for i in 0..KMDF_SLOTS {
        let _ = writeln!(code, "    kmdf_slot_{i},");
    }
    code.push_str("];\n");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("kmdf_stubs.rs"), code).expect("OUT_DIR is writable");
    netcx_stubs(&out);
    println!("cargo::rerun-if-changed=build.rs");
}

/// `NetFunctionTableNumEntries` for NetAdapterCx 2.2.
const NETCX_SLOTS: usize = 124;

/// One stub per NetAdapterCx table slot (`crate::netcx::not_simulated` names the DDI).
fn netcx_stubs(out: &std::path::Path) {
    let mut code = String::new();
    for i in 0..NETCX_SLOTS {
        let _ = writeln!(
            code,
            "unsafe extern \"system\" fn netcx_slot_{i}() {{ crate::netcx::not_simulated({i}) }}"
        );
    }
    let _ = writeln!(code, "/// One stub per NetAdapterCx table slot.\npub(crate) static NETCX_STUBS: [unsafe extern \"system\" fn(); {NETCX_SLOTS}] = [");
    for i in 0..NETCX_SLOTS {
        let _ = writeln!(code, "    netcx_slot_{i},");
    }
    code.push_str("];\n");
    std::fs::write(out.join("netcx_stubs.rs"), code).expect("OUT_DIR is writable");
}
