//! The suites. Each test names its suite; `--suite NAME` runs one.
mod control;
mod faults;
mod filter_receive;
mod filter_send;
pub mod filter_two_hosts;
mod load;
pub mod miniport;
mod miniport_control;
mod miniport_server;
mod miniport_tcp;
pub(crate) mod netcx;
mod scenarios;
mod traffic;
pub mod two_hosts;
mod two_hosts_miniport;
mod verifier;
mod wsk_negative;

use crate::Test;

/// Every test, in run order.
pub fn all() -> Vec<Test> {
    let mut tests = Vec::new();
    tests.extend(load::tests());
    tests.extend(control::tests());
    tests.extend(traffic::tests());
    tests.extend(scenarios::tests());
    tests.extend(faults::tests());
    tests.extend(filter_receive::tests());
    tests.extend(netcx::tests());
    tests.extend(miniport_control::tests());
    tests.extend(filter_send::tests());
    tests.extend(miniport::tests());
    tests.extend(miniport_server::tests());
    tests.extend(miniport_tcp::tests());
    tests.extend(filter_two_hosts::tests());
    tests.extend(two_hosts_miniport::tests());
    tests.extend(verifier::tests());
    tests
}

/// The suite names, in run order.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = all().iter().map(|t| t.suite).collect();
    names.dedup();
    names
}
