//! The example scenarios under `tests/scenarios/`, run as a suite so the format stays working.
use crate::{scenario, Test};

macro_rules! scenario_tests {
    ($($name:literal => $file:literal;)*) => {
        vec![$(Test {
            suite: "scenarios",
            name: $name,
            expect: None,
            run: |m| {
                let s = scenario::parse(include_str!(concat!("../../scenarios/", $file)))?;
                scenario::run(m, &s)
            },
        }),*]
    };
}

pub fn tests() -> Vec<Test> {
    scenario_tests! {
        "pause_under_traffic" => "pause_under_traffic.toml";
        "link_reset_reattach" => "link_reset_reattach.toml";
        "rdcofilter_bypass" => "rdcofilter_bypass.toml";
        "ip_offloads" => "ip_offloads.toml";
        "power_and_removal" => "power_and_removal.toml";
    }
}
