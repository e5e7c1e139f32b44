//! Debug output and bug checks.
use std::ffi::{c_char, CStr};

use crate::verifier::{violation, Rule};

/// `DbgPrintEx`. The simulation prints the format string (arguments are not expanded: the C variadic
/// arguments are not readable from stable Rust) when `WINSIM_VERBOSE` is set.
///
/// # Safety
/// `format` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn DbgPrintEx(component_id: u32, level: u32, format: *const c_char) -> u32 {
    if std::env::var_os("WINSIM_VERBOSE").is_some() && !format.is_null() {
        // SAFETY: the caller passes a NUL-terminated string.
        let text = unsafe { CStr::from_ptr(format) }.to_string_lossy();
        eprint!("[dbg {component_id}/{level}] {text}");
    }
    0
}

/// Exit status of a process whose simulated machine stopped (a bug check, or a call the simulation does
/// not implement). ndistest runs each test in its own process and reads this.
pub const MACHINE_STOPPED_EXIT: i32 = 0x7c;

/// The machine stops, as on a bug check: the violation is recorded and printed (`WINSIM-STOP rule:
/// detail` on stderr, which ndistest parses), and the process exits. A panic cannot be used: it would
/// have to unwind through the driver's `extern "system"` frames, which Rust aborts on.
pub fn stop_machine(rule: Rule, detail: &str) -> ! {
    violation(rule, detail);
    for v in crate::verifier::take() {
        eprintln!("WINSIM-STOP {}: {}", v.rule, v.detail);
    }
    std::process::exit(MACHINE_STOPPED_EXIT)
}

/// `KeBugCheckEx`: the machine stops (see [`stop_machine`]).
#[no_mangle]
pub extern "system" fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> ! {
    stop_machine(Rule::BugCheck, &format!("KeBugCheckEx({code:#010x}, {p1:#x}, {p2:#x}, {p3:#x}, {p4:#x})"))
}
