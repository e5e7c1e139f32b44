//! Every verifier rule has a negative test in `--suite verifier` and a line in docs/testing.md.
use winsim::verifier::Rule;

#[test]
fn every_rule_has_a_negative_test() {
    let tests = ndistest::suites::all();
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .filter(|&&rule| rule != Rule::NotSimulated)
        .filter(|&&rule| !tests.iter().any(|t| t.suite == "verifier" && t.expect == Some(rule)))
        .map(|r| r.name())
        .collect();
    assert!(missing.is_empty(), "rules without a negative test in --suite verifier: {missing:?}");
}

#[test]
fn every_rule_is_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/testing.md"))
        .expect("docs/testing.md");
    let missing: Vec<&str> =
        Rule::ALL.iter().map(|r| r.name()).filter(|name| !doc.contains(&format!("`{name}`"))).collect();
    assert!(missing.is_empty(), "rules missing from docs/testing.md: {missing:?}");
}
