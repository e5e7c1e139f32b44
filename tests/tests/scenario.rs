//! The scenario format: bad files are rejected with a message naming the problem, and `[expect]` bounds
//! really fail a run.
use ndistest::scenario;

const BASE: &str = "name = \"t\"\nfilter = \"passthrough\"\nnics = [{ if_index = 1 }]\n";

#[test]
fn unknown_actions_keys_and_nics_are_rejected() {
    let unknown_action = format!("{BASE}[[steps]]\naction = \"warp\"\n");
    assert!(scenario::parse(&unknown_action).unwrap_err().contains("warp"));
    let unknown_key = format!("{BASE}[[steps]]\naction = \"pump\"\nspeed = 3\n");
    assert!(scenario::parse(&unknown_key).unwrap_err().contains("speed"));
    let bad_nic = format!("{BASE}[[steps]]\naction = \"send\"\nnic = 7\ncount = 1\n");
    assert!(scenario::parse(&bad_nic).unwrap_err().contains("NIC 7"));
    let bad_ratio = format!("{BASE}[[steps]]\naction = \"receive\"\nnic = 1\ncount = 1\nresources = 2.0\n");
    assert!(scenario::parse(&bad_ratio).unwrap_err().contains("resources"));
    let no_nics = "name = \"t\"\nfilter = \"passthrough\"\nnics = []\nsteps = []\n";
    assert!(scenario::parse(no_nics).unwrap_err().contains("NIC"));
    let bad_filter = "name = \"t\"\nfilter = \"other\"\nnics = [{ if_index = 1 }]\nsteps = []\n";
    assert!(scenario::parse(bad_filter).unwrap_err().contains("other"));
}

#[test]
fn expectations_fail_the_run_when_not_met() {
    let text = format!("{BASE}[[steps]]\naction = \"send\"\nnic = 1\ncount = 4\n[expect]\nsent = 5\n");
    let parsed = scenario::parse(&text).expect("valid scenario");
    let mut machine = winsim::Machine::boot();
    let outcome = scenario::run(&mut machine, &parsed);
    let violations = machine.shutdown();
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(outcome.unwrap_err(), "counter sent = 4, expected at least 5");
}

#[test]
fn a_met_expectation_passes_with_counters() {
    let text = format!("{BASE}[[steps]]\naction = \"send\"\nnic = 1\ncount = 4\n[[steps]]\naction = \"receive\"\nnic = 1\ncount = 3\nresources = 1.0\n[expect]\nsent = 4\nreceived = 3\n");
    let parsed = scenario::parse(&text).expect("valid scenario");
    let mut machine = winsim::Machine::boot();
    let counters = scenario::run(&mut machine, &parsed).expect("scenario passes");
    assert!(machine.shutdown().is_empty());
    assert!(counters.contains(&("received_resources".to_string(), 3)), "{counters:?}");
}
