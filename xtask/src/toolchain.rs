//! The Debian cross toolchain: `rustc-web`/`cargo-web` with `rust-web-src` (for `-Zbuild-std`),
//! `lld-link-16`, and `clang-16` + `llvm-16` (`llvm-lib`, `llvm-dlltool`) for ring's C in the kernel
//! images. Installed with apt-get when missing and we are root; otherwise we stop with the exact
//! command to run.
use std::path::Path;
use std::process::Command;

use crate::{run, Result};

/// Debian packages the cross build needs.
pub const PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src", "lld-16", "clang-16", "llvm-16"];
/// Debian's rustc and cargo (rustup's are first on PATH, so we always name these explicitly).
pub const RUSTC: &str = "/usr/bin/rustc";
pub const CARGO: &str = "/usr/bin/cargo";
pub const LINKER: &str = "lld-link-16";
/// C compiler of ring's sources for the Windows targets (GNU-style driver, msvc target).
pub const CLANG: &str = "/usr/bin/clang-16";
/// Archiver cc-rs uses for msvc targets (lib.exe-compatible).
pub const LLVM_LIB: &str = "/usr/lib/llvm-16/bin/llvm-lib";
/// Makes the small ntoskrnl.exe import library ring's objects need.
pub const LLVM_DLLTOOL: &str = "/usr/lib/llvm-16/bin/llvm-dlltool";
const STD_SOURCES: &str = "/usr/lib/rustlib/src/rust/library/core";

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Installs the Debian packages in `packages` that are missing (as root), or stops with the command to run.
fn ensure_packages(packages: &[&str], purpose: &str) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        return Err(format!(
            "{purpose} needs Debian packages that are missing; run: sudo apt-get update && sudo apt-get install -y {list}"
        ));
    }
    println!("installing Debian packages for {purpose}: {list}");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))
}

/// Makes sure the cross toolchain is present, installing it if we can.
pub fn ensure() -> Result<()> {
    ensure_packages(PACKAGES, "the cross build")?;
    for (path, package) in [
        (RUSTC, "rustc-web"),
        (CARGO, "cargo-web"),
        (STD_SOURCES, "rust-web-src"),
        (CLANG, "clang-16"),
        (LLVM_LIB, "llvm-16"),
        (LLVM_DLLTOOL, "llvm-16"),
    ] {
        if !Path::new(path).exists() {
            return Err(format!("{path} is missing although {package} is installed"));
        }
    }
    Ok(())
}

/// The independent layout check (`crates/kernel/tests/wine_layout.rs`) compiles C static asserts against
/// Wine's headers with gcc and against mingw-w64's with clang. The two header packages are only
/// downloaded and unpacked (not installed: libwine-dev would pull in all of Wine).
pub struct LayoutHeaders {
    pub wine: std::path::PathBuf,
    pub mingw: std::path::PathBuf,
}

const HEADER_PACKAGES: &[(&str, &str, &str)] = &[
    ("libwine-dev", "winehdr", "usr/include/wine/wine/windows"),
    ("mingw-w64-common", "mingwhdr", "usr/share/mingw-w64/include"),
];

/// Downloads and unpacks the header packages under `dir` unless already there; installs clang-16.
pub fn ensure_layout_headers(dir: &Path) -> Result<LayoutHeaders> {
    ensure_packages(&["clang-16", "gcc"], "the layout check")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for (package, folder, include) in HEADER_PACKAGES {
        let include_dir = dir.join(folder).join(include);
        if !include_dir.exists() {
            let download =
                || Command::new("apt-get").current_dir(dir).args(["download", "-qq", package]).status();
            if !download().is_ok_and(|s| s.success()) {
                if !is_root() {
                    return Err(format!("cannot download {package}; run: sudo apt-get update, then retry"));
                }
                run(Command::new("apt-get").args(["update", "-qq"]))?;
                run(Command::new("apt-get").current_dir(dir).args(["download", "-qq", package]))?;
            }
            let deb = std::fs::read_dir(dir)
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                .filter_map(std::result::Result::ok)
                .map(|e| e.path())
                .find(|p| {
                    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
                })
                .ok_or_else(|| format!("apt-get download {package} left no .deb in {}", dir.display()))?;
            run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.join(folder)))?;
        }
        if !include_dir.exists() {
            return Err(format!("{package} has no {include}"));
        }
        found.push(include_dir);
    }
    let mingw = found.pop().unwrap_or_default();
    let wine = found.pop().unwrap_or_default();
    Ok(LayoutHeaders { wine, mingw })
}
