//! Which driver the current thread is running, and at what IRQL: the simulation's model of the
//! processor state. Every call from the simulated kernel into a driver goes through [`call_driver`], which
//! checks on return what Driver Verifier checks when a callback returns: the IRQL is the one the callback
//! was entered at and no spin lock acquired inside is still held.
use std::cell::{Cell, RefCell};

use kernel::ffi::ntos::{KIRQL, PASSIVE_LEVEL};

use crate::verifier::{violation, Rule};

/// Identifies a loaded driver within one machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DriverId(pub u32);

thread_local! {
    static IRQL: Cell<KIRQL> = const { Cell::new(PASSIVE_LEVEL) };
    static DRIVER: Cell<Option<DriverId>> = const { Cell::new(None) };
    /// Spin locks held by this thread (addresses), in acquisition order.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Returns this thread to the state of a fresh boot: PASSIVE_LEVEL, no driver, no locks held (a
/// simulated bug check may have unwound out of a callback).
pub(crate) fn reset() {
    set_irql(PASSIVE_LEVEL);
    DRIVER.with(|d| d.set(None));
    HELD.with(|h| h.borrow_mut().clear());
}

/// The current thread's IRQL.
pub fn irql() -> KIRQL {
    IRQL.with(Cell::get)
}

/// Sets the current thread's IRQL (the simulation's `KfRaiseIrql`/`KeLowerIrql`).
pub fn set_irql(irql: KIRQL) {
    IRQL.with(|c| c.set(irql));
}

/// The driver whose code the current thread is running, if any.
pub fn current_driver() -> Option<DriverId> {
    DRIVER.with(Cell::get)
}

pub(crate) fn push_held(lock: usize) {
    HELD.with(|h| h.borrow_mut().push(lock));
}

/// Forgets `lock` as held by this thread; false if it was not.
pub(crate) fn pop_held(lock: usize) -> bool {
    HELD.with(|h| {
        let mut held = h.borrow_mut();
        match held.iter().rposition(|&l| l == lock) {
            Some(i) => {
                held.remove(i);
                true
            }
            None => false,
        }
    })
}

pub(crate) fn holds(lock: usize) -> bool {
    HELD.with(|h| h.borrow().contains(&lock))
}

fn held_count() -> usize {
    HELD.with(|h| h.borrow().len())
}

/// Spin locks the calling thread holds now (tests: proves a piece of driver code runs with no lock).
pub fn spin_locks_held() -> usize {
    held_count()
}

/// Calls into `driver` at `irql`, as the kernel calls a driver callback, and checks the processor state
/// the callback leaves behind. `what` names the callback in violation details.
pub fn call_driver<R>(driver: DriverId, irql: KIRQL, what: &str, f: impl FnOnce() -> R) -> R {
    let saved_irql = self::irql();
    let saved_driver = current_driver();
    let held_before = held_count();
    set_irql(irql);
    DRIVER.with(|d| d.set(Some(driver)));
    let result = f();
    let after = self::irql();
    if after != irql {
        violation(
            Rule::IrqlNotRestored,
            format!("{what} entered at IRQL {irql} and returned at IRQL {after}"),
        );
    }
    let leaked = held_count().saturating_sub(held_before);
    if leaked > 0 {
        violation(Rule::SpinLockHeldOnReturn, format!("{what} returned holding {leaked} spin lock(s)"));
        HELD.with(|h| h.borrow_mut().truncate(held_before));
    }
    DRIVER.with(|d| d.set(saved_driver));
    set_irql(saved_irql);
    result
}

/// Runs `f` as the kernel itself rather than the current driver: allocations and frees inside are the
/// simulation's own (for example a simulated NIC reclaiming its NBL while a filter's call is on the stack).
pub fn as_system<R>(f: impl FnOnce() -> R) -> R {
    let saved = current_driver();
    DRIVER.with(|d| d.set(None));
    let result = f();
    DRIVER.with(|d| d.set(saved));
    result
}

/// Fails the current operation's IRQL requirement: records [`Rule::IrqlTooHigh`] if the current IRQL is
/// above `max`. Returns whether the requirement held.
pub fn require_irql_at_most(max: KIRQL, routine: &str) -> bool {
    let now = irql();
    if now > max {
        violation(Rule::IrqlTooHigh, format!("{routine} called at IRQL {now}, allowed at most {max}"));
        false
    } else {
        true
    }
}
