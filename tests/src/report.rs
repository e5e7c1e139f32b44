//! Result files: `target/ndistest/junit.xml`, `report.md` and `results.json`.
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// How one test ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
}

/// One test's result, as written to results.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestResult {
    pub name: String,
    pub suite: String,
    pub status: Status,
    /// Why it failed (empty on a pass).
    pub message: String,
    /// Verifier violations recorded (`rule: detail`); for negative tests, the expected ones.
    pub violations: Vec<String>,
    /// Pool blocks or NBLs still outstanding at the end.
    pub leaks: Vec<String>,
    /// The copy/clone/hold counters of shared/design.md, where the test reads them.
    pub counters: Vec<(String, u64)>,
    pub millis: u128,
}

fn xml_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c if c.is_control() && c != '\n' && c != '\t' => format!("&#{};", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML, one testsuite per suite.
pub fn junit(results: &[TestResult]) -> String {
    let mut suites: Vec<&str> = results.iter().map(|r| r.suite.as_str()).collect();
    suites.dedup();
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ndistest\">\n");
    for suite in suites {
        let members: Vec<&TestResult> = results.iter().filter(|r| r.suite == suite).collect();
        let failures = members.iter().filter(|r| r.status == Status::Fail).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">",
            xml_escape(suite),
            members.len()
        );
        for r in members {
            let time = r.millis as f64 / 1000.0;
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{time:.3}\"",
                xml_escape(suite),
                xml_escape(&r.name)
            );
            if r.status == Status::Fail {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\"/>\n    </testcase>",
                    xml_escape(&r.message)
                );
            } else {
                out.push_str("/>\n");
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// A Markdown report: summary line and one table row per test.
pub fn markdown(results: &[TestResult]) -> String {
    let passed = results.iter().filter(|r| r.status == Status::Pass).count();
    let mut out = format!("# ndistest report\n\n{passed} passed, {} failed\n\n", results.len() - passed);
    out.push_str(
        "| suite | test | status | violations | leaks | counters | ms |\n|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let counters: Vec<String> = r.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.suite,
            r.name,
            if r.status == Status::Pass {
                "pass".to_string()
            } else {
                format!("FAIL: {}", r.message.replace('|', "/"))
            },
            r.violations.join("; ").replace('|', "/"),
            r.leaks.join("; ").replace('|', "/"),
            counters.join(" "),
            r.millis
        );
    }
    out
}

/// Writes the three result files into `dir`.
pub fn write_all(dir: &Path, results: &[TestResult]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("junit.xml"), junit(results))?;
    std::fs::write(dir.join("report.md"), markdown(results))?;
    let json = serde_json::to_string_pretty(results).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("results.json"), json)
}
