//! The Debian cross toolchain: `rustc-web`/`cargo-web` with `rust-web-src` (for `-Zbuild-std`) and
//! `lld-link-16`. Installed with apt-get when missing and we are root; otherwise we stop with the exact
//! command to run.
use std::path::Path;
use std::process::Command;

use crate::{run, Result};

/// Debian packages the cross build needs.
pub const PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src", "lld-16"];
/// Debian's rustc and cargo (rustup's are first on PATH, so we always name these explicitly).
pub const RUSTC: &str = "/usr/bin/rustc";
pub const CARGO: &str = "/usr/bin/cargo";
pub const LINKER: &str = "lld-link-16";
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

/// Makes sure the cross toolchain is present, installing it if we can.
pub fn ensure() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        let list = missing.join(" ");
        if !is_root() {
            return Err(format!(
                "the cross build needs Debian packages that are missing; run: \
                 sudo apt-get update && sudo apt-get install -y {list}"
            ));
        }
        println!("installing Debian packages: {list}");
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing))?;
    }
    for (path, package) in [(RUSTC, "rustc-web"), (CARGO, "cargo-web"), (STD_SOURCES, "rust-web-src")] {
        if !Path::new(path).exists() {
            return Err(format!("{path} is missing although {package} is installed"));
        }
    }
    Ok(())
}
