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

/// The drivers' feature that makes ring the engine's AEAD backend (engine feature `ring-default`); see
/// docs/performance.md, "Backend decision".
pub const DRIVER_FEATURES: &str = "crypto-ring";

/// What ring's C and assembly need to become part of a kernel image, made per target by
/// [`prepare_ring`] under `target/cross/ring-kernel/<arch>/`.
pub struct RingKernel {
    /// Folder of the generated libraries (linker `/LIBPATH`).
    dir: PathBuf,
    /// Freestanding headers for clang (`crates/datapath/kernel-shim/include`).
    include: PathBuf,
    /// Library linked before everything else (aarch64: `IsProcessorFeaturePresent` → ntoskrnl).
    first_library: Option<PathBuf>,
}

/// The `ntoskrnl.exe` exports ring's objects need: `RtlVirtualUnwind` (the SEH handlers of ring's x64
/// assembly) and `ExIsProcessorFeaturePresent` (the aarch64 shim in `kernel-shim/ring_kernel_shim.c`).
const RING_NTOSKRNL_DEF: &str =
    "LIBRARY ntoskrnl.exe\nEXPORTS\n    RtlVirtualUnwind\n    ExIsProcessorFeaturePresent\n";
/// The import library made from [`RING_NTOSKRNL_DEF`].
const RING_NTOSKRNL_LIB: &str = "ntoskrnl-ring.lib";
/// User-mode libraries named by getrandom 0.2's `#[link]` attributes (ring depends on it for
/// `ring::rand`, which the engine never calls). They are made as empty archives: the linker can open
/// them, and any reference to `BCryptGenRandom`/`RtlGenRandom` would be an undefined-symbol error
/// instead of a user-mode import.
const EMPTY_USER_LIBS: [&str; 2] = ["bcrypt.lib", "advapi32.lib"];

/// Generates the link inputs of [`RingKernel`] for `target` (idempotent, cheap).
fn prepare_ring(root: &Path, target: Target, target_dir: &Path) -> Result<RingKernel> {
    let shim = root.join("crates").join("datapath").join("kernel-shim");
    let dir = target_dir.join("ring-kernel").join(target.arch.folder());
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let write = |name: &str, data: &[u8]| {
        let path = dir.join(name);
        fs::write(&path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    for lib in EMPTY_USER_LIBS {
        write(lib, b"!<arch>\n")?;
    }
    write("ntoskrnl-ring.def", RING_NTOSKRNL_DEF.as_bytes())?;
    let machine = match target.arch {
        Arch::X64 => "i386:x86-64",
        Arch::Arm64 => "arm64",
    };
    crate::run(
        Command::new(toolchain::LLVM_DLLTOOL)
            .args(["-m", machine, "-d"])
            .arg(dir.join("ntoskrnl-ring.def"))
            .arg("-l")
            .arg(dir.join(RING_NTOSKRNL_LIB)),
    )?;
    let first_library = match target.arch {
        Arch::X64 => None,
        Arch::Arm64 => {
            // Compiled, then archived: as an archive member it is linked only when ring's CPU
            // detection is (no stray ntoskrnl import otherwise), and as the first archive on the
            // command line its lazy definitions win over windows-sys's import library.
            let obj = dir.join("ring_kernel_shim.obj");
            crate::run(
                Command::new(toolchain::CLANG)
                    .arg(format!("--target={}", target.triple))
                    .args(["-O2", "-fno-stack-protector", "-c"])
                    .arg(shim.join("ring_kernel_shim.c"))
                    .arg("-o")
                    .arg(&obj),
            )?;
            let lib = dir.join("ring_kernel_shim.lib");
            crate::run(
                Command::new(toolchain::LLVM_LIB)
                    .arg("/nologo")
                    .arg(format!("/out:{}", lib.display()))
                    .arg(&obj),
            )?;
            Some(lib)
        }
    };
    Ok(RingKernel { dir, include: shim.join("include"), first_library })
}

/// Builds one crate (in `dir`, a package of that workspace) as a kernel image; returns the image path.
/// With `ring`, the crate is built with [`DRIVER_FEATURES`] and ring's C is compiled by clang-16 for the
/// kernel (no stack protector, freestanding headers) and linked against the generated stubs.
fn build_image(
    dir: &Path,
    package: &str,
    target: Target,
    target_dir: &Path,
    ring: Option<&RingKernel>,
) -> Result<PathBuf> {
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
        .arg(format!("target.{}.linker=\"{}\"", target.triple, toolchain::LINKER));
    if let Some(ring) = ring {
        // cc-rs reads CC_/AR_/CFLAGS_<triple with underscores>. clang-16 in its GNU-style driver with
        // the msvc target (cc-rs adds --target): clang-cl mistakes the /work/... paths of the
        // compiler-detection probe for options, and ring then falls back to a `clang` that Debian
        // does not ship. ring's x64 assembly comes pre-assembled (nasm objects in the crate).
        let triple = target.triple.replace('-', "_");
        cmd.arg("--features")
            .arg(DRIVER_FEATURES)
            .env(format!("CC_{triple}"), toolchain::CLANG)
            .env(format!("AR_{triple}"), toolchain::LLVM_LIB)
            .env(
                format!("CFLAGS_{triple}"),
                format!("-fno-stack-protector -isystem {}", ring.include.display()),
            );
    }
    cmd.arg("--");
    for arg in LINK_ARGS {
        cmd.arg("-C").arg(format!("link-arg={arg}"));
    }
    if let Some(ring) = ring {
        cmd.arg("-C").arg(format!("link-arg=/LIBPATH:{}", ring.dir.display()));
        cmd.arg("-C").arg(format!("link-arg={RING_NTOSKRNL_LIB}"));
        if let Some(lib) = &ring.first_library {
            // Before the rlibs and windows-sys's import library, so its definitions win.
            cmd.arg("-Z").arg(format!("pre-link-arg={}", lib.display()));
        }
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
        let ring = prepare_ring(root, target, &target_dir)?;
        for (package, image_name, inf) in DRIVERS {
            println!("building {image_name} for {} (features: {DRIVER_FEATURES})", target.triple);
            let built = build_image(root, package, target, &target_dir, Some(&ring))?;
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
    let built = build_image(&fixture, "forbidden-import", target, &target_dir, None)?;
    match image::check_file(&built, target.arch) {
        Ok(_) => Err("the image check accepted an image that imports kernel32.dll!Sleep".into()),
        Err(message) if message.contains("kernel32.dll!Sleep") => {
            println!("rejected as expected: {message}");
            Ok(())
        }
        Err(message) => Err(format!("the image check failed for the wrong reason: {message}")),
    }
}
