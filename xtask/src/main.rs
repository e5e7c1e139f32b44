//! `cargo xtask`: build orchestration for rdco.
//!
//! * `test`     — everything CI proves: format, clippy, host tests, ndistest, the cross build of both
//!   drivers for x64 and ARM64 with their image checks, and the forbidden-import self-test.
//! * `package`  — the cross build alone: `target/package/{x64,arm64}/` with each `.sys` beside its INF.
//! * `check-image` — the PE checks on one image.
//! * `ndistest` — the HLK-style runner over the simulated kernel (arguments pass through).
mod cross;
mod image;
mod toolchain;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "rdco build orchestration")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Format check, clippy, host tests, ndistest, cross build + image checks.
    Test {
        /// Skip the cross build (quick local iteration only; CI never passes this).
        #[arg(long)]
        no_cross: bool,
    },
    /// Build filter.sys and miniport.sys for x64 and ARM64 into target/package/.
    Package,
    /// Check one PE image: machine, native subsystem, DriverEntry, NX, W^X, import allowlist.
    CheckImage {
        path: PathBuf,
        /// x64 or arm64
        #[arg(long)]
        arch: String,
    },
    /// Run the HLK-style ndistest suites in the simulated kernel (arguments pass through).
    Ndistest {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Any failure of a step: a one-line message, exit code 1.
pub type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Test { no_cross } => test(no_cross),
        Cmd::Package => cross::package(&workspace_root()).map(|_| ()),
        Cmd::CheckImage { path, arch } => image::Arch::parse(&arch).and_then(|arch| {
            let report = image::check_file(&path, arch)?;
            println!("{report}");
            Ok(())
        }),
        Cmd::Ndistest { args } => ndistest(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent directory").to_path_buf()
}

/// Runs a command to completion; fails with the command line if it does not exit 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// The host cargo (the one that runs xtask: rustup's on a developer machine).
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn step(name: &str) {
    println!("\n==> {name}");
}

fn test(no_cross: bool) -> Result<()> {
    let root = workspace_root();
    step("rustfmt --check");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    step("clippy (host, all targets)");
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "clippy::all"]))?;
    step("host tests");
    run(cargo().args(["test", "--workspace", "--locked"]))?;
    step("ndistest (all suites)");
    ndistest(&[])?;
    if no_cross {
        println!("\n(cross build skipped: --no-cross)");
        return Ok(());
    }
    step("cross build: filter.sys and miniport.sys for x64 and ARM64, image checks");
    let images = cross::package(&root)?;
    step("image check self-test: a forbidden import must fail the check");
    cross::forbidden_import_selftest(&root)?;
    println!("\nxtask test: all steps passed ({} images checked)", images.len());
    Ok(())
}

fn ndistest(args: &[String]) -> Result<()> {
    run(cargo()
        .args(["run", "--quiet", "--locked", "--package", "ndistest", "--bin", "ndistest", "--"])
        .args(args))
}
