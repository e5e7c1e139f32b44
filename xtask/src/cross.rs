//! The cross build: the same driver crates that run in the simulated kernel, built as native-subsystem PE
//! images for Windows x64 and ARM64 (see docs/building.md).
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::image::{self, Arch};
use crate::{toolchain, Result};

/// A Windows target: the Rust triple and the package folder name.
#[derive(Clone, Copy)]
pub struct Target {
    pub triple: &'static str,
    pub arch: Arch,
}

pub const TARGETS: [Target; 2] = [
    Target { triple: "x86_64-pc-windows-msvc", arch: Arch::X64 },
    Target { triple: "aarch64-pc-windows-msvc", arch: Arch::Arm64 },
];

/// The drivers: crate name, image name, INF name.
pub const DRIVERS: [(&str, &str, &str); 2] =
    [("filter", "filter.sys", "filter.inf"), ("miniport", "miniport.sys", "miniport.inf")];

/// Linker arguments of a kernel image. `/DRIVER` marks a driver image, the native subsystem makes it a
/// kernel-mode image, `/NODEFAULTLIB` keeps every CRT out (everything comes from `compiler_builtins` or
/// the kernel), `/RELEASE` sets the PE checksum, `/INTEGRITYCHECK:NO` is the default made explicit.
const LINK_ARGS: &[&str] =
    &["/DRIVER", "/SUBSYSTEM:NATIVE", "/ENTRY:DriverEntry", "/NODEFAULTLIB", "/RELEASE", "/OPT:REF,ICF"];

/// Builds one crate (in `dir`, a package of that workspace) as a kernel image; returns the image path.
fn build_image(dir: &Path, package: &str, target: Target, target_dir: &Path) -> Result<PathBuf> {
    let mut cmd = Command::new(toolchain::CARGO);
    cmd.current_dir(dir);
    // The outer (rustup) cargo and rustup itself leave variables that would redirect Debian's cargo.
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WRAPPER", "RUSTUP_TOOLCHAIN", "CARGO_BUILD_TARGET"]
    {
        cmd.env_remove(var);
    }
    cmd.env("RUSTC", toolchain::RUSTC)
        .env("RUSTDOC", "/usr/bin/rustdoc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir)
        .args([
            "rustc",
            "--quiet",
            "--package",
            package,
            "--lib",
            "--crate-type",
            "cdylib",
            "--profile",
            "driver",
        ])
        .args(["--target", target.triple])
        .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem"])
        .arg("--config")
        .arg(format!("target.{}.linker=\"{}\"", target.triple, toolchain::LINKER))
        .arg("--");
    for arg in LINK_ARGS {
        cmd.arg("-C").arg(format!("link-arg={arg}"));
    }
    crate::run(&mut cmd)?;
    let image =
        target_dir.join(target.triple).join("driver").join(format!("{}.dll", package.replace('-', "_")));
    if image.exists() {
        Ok(image)
    } else {
        Err(format!("the build of {package} for {} left no image at {}", target.triple, image.display()))
    }
}

/// Builds, checks and packages both drivers for both targets. Returns the packaged image paths.
pub fn package(root: &Path) -> Result<Vec<PathBuf>> {
    toolchain::ensure()?;
    let target_dir = root.join("target").join("cross");
    let mut images = Vec::new();
    for target in TARGETS {
        let out = root.join("target").join("package").join(target.arch.folder());
        fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        for (package, image_name, inf) in DRIVERS {
            println!("building {image_name} for {}", target.triple);
            let built = build_image(root, package, target, &target_dir)?;
            let report = image::check_file(&built, target.arch)?;
            println!("{report}");
            let dest = out.join(image_name);
            copy(&built, &dest)?;
            copy(&root.join("inf").join(inf), &out.join(inf))?;
            images.push(dest);
        }
    }
    println!("packaged {} images under {}", images.len(), root.join("target/package").display());
    Ok(images)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

/// Builds `xtask/fixtures/forbidden-import` (a driver that imports `kernel32.dll!Sleep`) and requires the
/// image check to reject it, naming the symbol.
pub fn forbidden_import_selftest(root: &Path) -> Result<()> {
    let fixture = root.join("xtask").join("fixtures").join("forbidden-import");
    let target_dir = root.join("target").join("cross-fixture");
    let target = TARGETS[0];
    let built = build_image(&fixture, "forbidden-import", target, &target_dir)?;
    match image::check_file(&built, target.arch) {
        Ok(_) => Err("the image check accepted an image that imports kernel32.dll!Sleep".into()),
        Err(message) if message.contains("kernel32.dll!Sleep") => {
            println!("rejected as expected: {message}");
            Ok(())
        }
        Err(message) => Err(format!("the image check failed for the wrong reason: {message}")),
    }
}
