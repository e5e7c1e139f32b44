//! ndistest: the HLK-style runner for rdco's drivers over the simulated kernel (`crates/winsim`).
//!
//! A test boots a fresh simulated machine, installs drivers through their real entry points, drives
//! them, and passes only if its own assertions hold, the verifier recorded nothing it did not expect, and
//! nothing leaked. `cargo xtask ndistest` runs every suite; see `docs/testing.md`.
pub mod broken;
pub mod inf;
pub mod install;
pub mod kmdf_client;
pub mod netcx_client;
pub mod passthrough;
pub mod report;
pub mod scenario;
pub mod suites;
pub mod wsk_client;

use std::time::Instant;

use report::{Status, TestResult};
use winsim::verifier::{Rule, Violation};

/// What a test body returns: `Err` with a one-line reason on failure.
pub type Outcome = Result<Vec<(String, u64)>, String>;

/// A named test in a suite.
#[derive(Clone, Copy, Debug)]
pub struct Test {
    pub suite: &'static str,
    pub name: &'static str,
    /// The verifier rule this test must trip (negative tests); `None` for tests that must stay clean.
    pub expect: Option<Rule>,
    pub run: fn(&mut winsim::Machine) -> Outcome,
}

/// Judges a finished test: its own outcome, then the verifier's record against what it expects. Returns
/// the failure message, empty on a pass.
pub fn judge(test: &Test, outcome: &Outcome, violations: &[Violation]) -> String {
    match (outcome, test.expect) {
        (Err(reason), _) => reason.clone(),
        (Ok(_), None) => violations.first().map_or_else(String::new, |first| format!("verifier: {first}")),
        (Ok(_), Some(rule)) => {
            let rules: Vec<Rule> = violations.iter().map(|v| v.rule).collect();
            if !rules.contains(&rule) {
                format!("expected verifier rule {rule} to fire; recorded: {rules:?}")
            } else if let Some(extra) = violations.iter().find(|v| v.rule != rule) {
                format!("expected only {rule}; also recorded {extra}")
            } else {
                String::new()
            }
        }
    }
}

/// Builds the result record of a judged test.
pub fn result(test: &Test, outcome: Outcome, violations: &[Violation], millis: u128) -> TestResult {
    let message = judge(test, &outcome, violations);
    let (leaks, other): (Vec<&Violation>, Vec<&Violation>) =
        violations.iter().partition(|v| v.rule == Rule::PoolLeakAtUnload);
    TestResult {
        name: test.name.to_string(),
        suite: test.suite.to_string(),
        status: if message.is_empty() { Status::Pass } else { Status::Fail },
        message,
        violations: other.iter().map(ToString::to_string).collect(),
        leaks: leaks.iter().map(ToString::to_string).collect(),
        counters: outcome.unwrap_or_default(),
        millis,
    }
}

/// Runs one test on a fresh machine in this process and judges it. A simulated bug check ends the
/// process (see `winsim::debug::stop_machine`), so the runner calls this in a child process per test.
pub fn run_in_process(test: &Test) -> TestResult {
    let started = Instant::now();
    let mut machine = winsim::Machine::boot();
    let outcome = (test.run)(&mut machine);
    let violations: Vec<Violation> = machine.shutdown();
    result(test, outcome, &violations, started.elapsed().as_millis())
}

/// Reads the `WINSIM-STOP rule: detail` lines a stopped machine printed.
pub fn parse_stop(stderr: &str) -> Vec<Violation> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("WINSIM-STOP "))
        .map(|rest| {
            let (name, detail) = rest.split_once(": ").unwrap_or((rest, ""));
            let rule = Rule::from_name(name).unwrap_or(Rule::NotSimulated);
            Violation { rule, detail: detail.to_string() }
        })
        .collect()
}
