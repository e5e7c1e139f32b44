//! The verifier suite: one negative test per rule. Each loads a deliberately broken driver (see
//! `crate::broken`) and passes only if exactly the rule it breaks fires.
use winsim::verifier::Rule;
use winsim::{DriverEntry, Machine};

use crate::{broken, Outcome, Test};

/// Loads `entry` as service `brokendrv` and unloads it again (if its entry point succeeded).
fn load_and_unload(machine: &mut Machine, entry: DriverEntry) -> Outcome {
    match machine.load_driver("brokendrv", entry) {
        Ok(id) => machine.unload_driver(id).map(|()| Vec::new()),
        Err(status) => Err(format!("DriverEntry failed with {status:#x}")),
    }
}

macro_rules! negative {
    ($($name:literal, $rule:expr, $entry:path;)*) => {
        vec![$(Test {
            suite: "verifier",
            name: $name,
            expect: Some($rule),
            run: |m| load_and_unload(m, $entry),
        }),*]
    };
}

pub fn tests() -> Vec<Test> {
    negative! {
        "pool.leak_at_unload", Rule::PoolLeakAtUnload, broken::leaks_pool;
        "pool.tag_required", Rule::PoolTagRequired, broken::untagged_pool;
        "pool.free_unknown", Rule::PoolFreeUnknown, broken::double_free;
        "pool.free_wrong_tag", Rule::PoolFreeWrongTag, broken::wrong_tag_free;
        "spinlock.release_not_held", Rule::SpinLockNotHeld, broken::release_unheld_lock;
        "spinlock.recursive", Rule::SpinLockRecursive, broken::recursive_lock;
        "spinlock.at_dpc_level_irql", Rule::SpinLockDpcLevel, broken::dpc_level_lock_at_passive;
        "spinlock.held_on_return", Rule::SpinLockHeldOnReturn, broken::returns_holding_lock;
        "irql.not_restored", Rule::IrqlNotRestored, broken::returns_at_dispatch;
        "kernel.bugcheck", Rule::BugCheck, broken::bugchecks;
    }
}
