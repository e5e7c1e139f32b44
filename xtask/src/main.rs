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
    // The benches need the bench profile (tests/Cargo.toml `bench` feature); lint them with it.
    run(cargo().args([
        "clippy",
        "-p",
        "ndistest",
        "--benches",
        "--features",
        "bench",
        "--locked",
        "--",
        "-D",
        "clippy::all",
    ]))?;
    step("host tests");
    let headers = toolchain::ensure_layout_headers(&root.join("target").join("layout-headers"))?;
    let mut tally = run_counting(
        cargo()
            .args(["test", "--workspace", "--locked"])
            .env("RDCO_REQUIRE_WINE_HEADERS", "1")
            .env("RDCO_WINE_INCLUDE", &headers.wine)
            .env("RDCO_MINGW_INCLUDE", &headers.mingw)
            .env("RDCO_CLANG", "clang-16"),
    )?;
    step("ndistest (all suites)");
    let suites = run_counting(&mut ndistest_command(&[]))?;
    tally.0 += suites.0;
    tally.1 += suites.1;
    if no_cross {
        println!("\n(cross build skipped: --no-cross)");
        println!("xtask: {} passed, {} failed", tally.0, tally.1);
        return Ok(());
    }
    step("cross build: filter.sys and miniport.sys for x64 and ARM64, image checks");
    let images = cross::package(&root)?;
    step("image check self-test: a forbidden import must fail the check");
    cross::forbidden_import_selftest(&root)?;
    // Each checked image and the self-test count as one passed check.
    tally.0 += images.len() + 1;
    println!("\nxtask test: all steps passed ({} images checked)", images.len());
    println!("xtask: {} passed, {} failed", tally.0, tally.1);
    Ok(())
}

fn ndistest_command(args: &[String]) -> Command {
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "--locked", "--package", "ndistest", "--bin", "ndistest", "--"]).args(args);
    cmd
}

fn ndistest(args: &[String]) -> Result<()> {
    run(&mut ndistest_command(args))
}

/// Runs a test command, echoing its output, and adds up the counts of its summary lines (cargo test's
/// `test result: ok. N passed; M failed; ...` and ndistest's `ndistest: N passed, M failed`).
fn run_counting(cmd: &mut Command) -> Result<(usize, usize)> {
    use std::io::{BufRead, BufReader};
    let mut child =
        cmd.stdout(std::process::Stdio::piped()).spawn().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let mut tally = (0, 0);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
            println!("{line}");
            if let Some((passed, failed)) = summary_counts(&line) {
                tally.0 += passed;
                tally.1 += failed;
            }
        }
    }
    let status = child.wait().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() {
        Ok(tally)
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// The passed and failed counts of a summary line, if it is one.
fn summary_counts(line: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix("test result: ").or_else(|| line.strip_prefix("ndistest: "))?;
    let number_before = |word: &str| -> Option<usize> {
        let at = rest.find(word)?;
        rest[..at].trim_end().rsplit([' ', '.']).next()?.parse().ok()
    };
    Some((number_before(" passed")?, number_before(" failed")?))
}

#[cfg(test)]
mod tests {
    use super::summary_counts;

    #[test]
    fn reads_both_summary_forms() {
        assert_eq!(summary_counts("test result: ok. 12 passed; 3 failed; 0 ignored"), Some((12, 3)));
        assert_eq!(summary_counts("ndistest: 12 passed, 0 failed"), Some((12, 0)));
        assert_eq!(summary_counts("running 3 tests"), None);
    }
}
