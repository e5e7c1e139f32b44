//! `ndistest`: runs the HLK-style suites (see `docs/testing.md`). Usually started as `cargo xtask ndistest`.
//!
//! Each test runs in its own child process (`ndistest --child SUITE::NAME`), which boots one simulated
//! machine: a simulated bug check ends that process, as it ends a real machine, and the parent records
//! it as the test's result.
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::Parser;
use ndistest::report::{self, Status, TestResult};
use ndistest::Test;

#[derive(Parser)]
#[command(name = "ndistest", about = "HLK-style driver tests in the simulated Windows kernel")]
struct Args {
    /// List the tests and exit.
    #[arg(long)]
    list: bool,
    /// Print the verifier rules as a Markdown table (name, what it models, its negative test) and exit.
    #[arg(long)]
    rules: bool,
    /// Run only this suite.
    #[arg(long)]
    suite: Option<String>,
    /// Where to write junit.xml, report.md and results.json.
    #[arg(long, default_value = "target/ndistest")]
    out: PathBuf,
    /// Run a scenario file (TOML; see docs/testing.md) instead of the suites.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Internal: run one test (SUITE::NAME, or scenario:PATH) in this process and print its result as JSON.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Internal: run one simulated host of the two-host suites (KIND:ROLE:LOCAL_PORT:RELAY_PORT).
    #[arg(long, hide = true)]
    host: Option<String>,
}

const RESULT_PREFIX: &str = "NDISTEST-RESULT ";

fn scenario_test(path: &std::path::Path) -> Result<(Test, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let parsed = ndistest::scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let name: &'static str = Box::leak(parsed.name.clone().into_boxed_str());
    Ok((
        Test {
            suite: "scenario",
            name,
            expect: None,
            run: |_| Err("scenario tests run through run_scenario".into()),
        },
        text,
    ))
}

fn run_scenario_child(path: &std::path::Path) -> ExitCode {
    let (test, text) = match scenario_test(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ndistest: {e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut machine = winsim::Machine::boot();
    let outcome = ndistest::scenario::parse(&text).and_then(|s| ndistest::scenario::run(&mut machine, &s));
    let violations = machine.shutdown();
    let result = ndistest::result(&test, outcome, &violations, started.elapsed().as_millis());
    match serde_json::to_string(&result) {
        Ok(json) => {
            println!("{RESULT_PREFIX}{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ndistest: cannot encode the result: {e}");
            ExitCode::FAILURE
        }
    }
}

fn find(tests: &[Test], id: &str) -> Option<Test> {
    tests.iter().find(|t| format!("{}::{}", t.suite, t.name) == id).copied()
}

fn run_child(test: &Test) -> ExitCode {
    let result = ndistest::run_in_process(test);
    match serde_json::to_string(&result) {
        Ok(json) => {
            println!("{RESULT_PREFIX}{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ndistest: cannot encode the result: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `test` in a child process and reads its result; a stopped machine becomes the verifier record.
fn run_isolated(test: &Test) -> TestResult {
    run_isolated_id(test, &format!("{}::{}", test.suite, test.name))
}

fn run_isolated_id(test: &Test, id: &str) -> TestResult {
    let started = Instant::now();
    let output = std::env::current_exe().and_then(|exe| Command::new(exe).arg("--child").arg(id).output());
    let elapsed = || started.elapsed().as_millis();
    let output = match output {
        Ok(output) => output,
        Err(e) => {
            return ndistest::result(test, Err(format!("cannot start the test process: {e}")), &[], elapsed())
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if let Some(json) = stdout.lines().find_map(|l| l.strip_prefix(RESULT_PREFIX)) {
        if let Ok(result) = serde_json::from_str::<TestResult>(json) {
            return result;
        }
    }
    if output.status.code() == Some(winsim::debug::MACHINE_STOPPED_EXIT) {
        let violations = ndistest::parse_stop(&stderr);
        return ndistest::result(test, Ok(Vec::new()), &violations, elapsed());
    }
    let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
    ndistest::result(test, Err(format!("test process ended with {}: {tail}", output.status)), &[], elapsed())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(spec) = &args.host {
        return ndistest::suites::two_hosts::host_main(spec);
    }
    let tests = ndistest::suites::all();
    if let Some(id) = &args.child {
        if let Some(path) = id.strip_prefix("scenario:") {
            return run_scenario_child(std::path::Path::new(path));
        }
        return match find(&tests, id) {
            Some(test) => run_child(&test),
            None => {
                eprintln!("ndistest: no test named {id:?}");
                ExitCode::from(2)
            }
        };
    }
    if args.rules {
        println!("| rule | models | negative test |\n|---|---|---|");
        for rule in winsim::verifier::Rule::ALL {
            let test = tests
                .iter()
                .find(|t| t.suite == "verifier" && t.expect == Some(*rule))
                .map_or_else(|| "—".to_string(), |t| format!("`verifier::{}`", t.name));
            println!("| `{}` | {} | {test} |", rule.name(), rule.description().replace('|', "/"));
        }
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &args.scenario {
        let test = match scenario_test(path) {
            Ok((test, _)) => test,
            Err(e) => {
                eprintln!("ndistest: {e}");
                return ExitCode::from(2);
            }
        };
        let id = format!("scenario:{}", path.display());
        let result = run_isolated_id(&test, &id);
        return finish(vec![result], &args.out);
    }
    if let Some(suite) = &args.suite {
        if !ndistest::suites::names().contains(&suite.as_str()) {
            eprintln!(
                "ndistest: no suite named {suite:?} (suites: {})",
                ndistest::suites::names().join(", ")
            );
            return ExitCode::from(2);
        }
    }
    let selected: Vec<&Test> =
        tests.iter().filter(|t| args.suite.as_deref().is_none_or(|s| s == t.suite)).collect();
    if args.list {
        for t in &selected {
            let expect = t.expect.map_or(String::new(), |r| format!("  (expects verifier rule {r})"));
            println!("{}::{}{expect}", t.suite, t.name);
        }
        return ExitCode::SUCCESS;
    }
    let results: Vec<TestResult> = selected.into_iter().map(run_isolated).collect();
    finish(results, &args.out)
}

/// Prints the table, writes the reports, and closes with the summary line.
fn finish(results: Vec<TestResult>, out: &std::path::Path) -> ExitCode {
    println!("{:<10} {:<44} {:<6} detail", "suite", "test", "status");
    for result in &results {
        let (status, detail) = match result.status {
            Status::Pass => ("pass", result.violations.first().cloned().unwrap_or_default()),
            Status::Fail => ("FAIL", result.message.clone()),
        };
        println!("{:<10} {:<44} {:<6} {detail}", result.suite, result.name, status);
    }
    if let Err(e) = report::write_all(out, &results) {
        eprintln!("ndistest: cannot write reports to {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let passed = results.iter().filter(|r| r.status == Status::Pass).count();
    let failed = results.len() - passed;
    println!("\nreports: {}/{{junit.xml,report.md,results.json}}", out.display());
    println!("ndistest: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
