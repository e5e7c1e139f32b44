//! The machine's time and randomness.
//!
//! * Interrupt time: 100-ns units since boot, as `KeQueryInterruptTime` counts. In
//!   [`Mode::Deterministic`] it is a virtual clock that moves only when the machine advances it
//!   ([`crate::sched::advance`], a wait that times out, `KeDelayExecutionThread`); in
//!   [`Mode::RealTime`] it is read from [`std::time::Instant`].
//! * System time (for absolute due times): a fixed boot date plus the interrupt time, so absolute
//!   timers are as reproducible as relative ones.
//! * A seeded `ChaCha8` generator ([`rng`]) for fault injection and anything else the simulation
//!   randomises: the same seed gives the same run.
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kernel::ffi::ntos::LARGE_INTEGER;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// How the machine schedules and keeps time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Virtual clock, seeded randomness, DPCs/work items/timers run on the test's thread only when
    /// the machine is pumped: every run with the same seed is the same run.
    #[default]
    Deterministic,
    /// Real time: a worker pool runs DPCs and work items, a timer thread fires timers, waits block.
    RealTime,
}

/// `KeQueryPerformanceCounter`'s frequency: 10 MHz, so one tick is one interrupt-time unit.
pub const PERFORMANCE_FREQUENCY: i64 = 10_000_000;

/// The simulated machine's boot date as a system time (100-ns units since 1601-01-01): 2026-01-01
/// 00:00:00 UTC (the Unix epoch is 116 444 736 000 000 000 in these units).
pub const BOOT_SYSTEM_TIME: u64 = 116_444_736_000_000_000 + 1_767_225_600 * 10_000_000;

static MODE: AtomicU8 = AtomicU8::new(0);
static VIRTUAL: AtomicU64 = AtomicU64::new(0);
static SEED: AtomicU64 = AtomicU64::new(0);
static START: LazyLock<Mutex<Instant>> = LazyLock::new(|| Mutex::new(Instant::now()));
static RNG: LazyLock<Mutex<ChaCha8Rng>> = LazyLock::new(|| Mutex::new(ChaCha8Rng::seed_from_u64(0)));

/// Restarts time at zero in `mode` and reseeds the generator (called by `Machine::boot_with`).
pub(crate) fn reset(mode: Mode, seed: u64) {
    MODE.store(u8::from(mode == Mode::RealTime), Ordering::SeqCst);
    VIRTUAL.store(0, Ordering::SeqCst);
    *crate::lock(&START) = Instant::now();
    SEED.store(seed, Ordering::SeqCst);
    *crate::lock(&RNG) = ChaCha8Rng::seed_from_u64(seed);
}

/// The mode the machine was booted in.
pub fn mode() -> Mode {
    if MODE.load(Ordering::SeqCst) == 0 {
        Mode::Deterministic
    } else {
        Mode::RealTime
    }
}

/// Whether the machine runs on the virtual clock.
pub fn is_deterministic() -> bool {
    mode() == Mode::Deterministic
}

/// Interrupt time now, in 100-ns units since boot.
pub fn now() -> u64 {
    match mode() {
        Mode::Deterministic => VIRTUAL.load(Ordering::SeqCst),
        Mode::RealTime => {
            let elapsed = crate::lock(&START).elapsed();
            u64::try_from(elapsed.as_nanos() / 100).unwrap_or(u64::MAX)
        }
    }
}

/// System time now (100-ns units since 1601): the boot date plus the interrupt time.
pub fn system_time() -> u64 {
    BOOT_SYSTEM_TIME.saturating_add(now())
}

/// Moves the virtual clock forward to `to` (never backward). No effect in real-time mode.
pub(crate) fn advance_to(to: u64) {
    if is_deterministic() {
        VIRTUAL.fetch_max(to, Ordering::SeqCst);
    }
}

/// A duration in interrupt-time units (saturating).
pub fn ticks(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos() / 100).unwrap_or(u64::MAX)
}

/// Interrupt-time units as a duration.
pub fn duration(ticks: u64) -> Duration {
    Duration::from_nanos(ticks.saturating_mul(100))
}

/// The interrupt time a kernel due time designates: negative = relative to now, positive = absolute
/// system time (`KeSetTimerEx` / `KeWaitForSingleObject` docs: "If the value of the `DueTime` parameter is
/// negative, the expiration time is relative to the current system time. Otherwise, the expiration
/// time is absolute", in 100-ns units). An absolute time in the past is due now.
pub fn due_from_kernel(due: LARGE_INTEGER) -> u64 {
    let now = now();
    if due < 0 {
        now.saturating_add(due.unsigned_abs())
    } else {
        let absolute = due.unsigned_abs();
        absolute.saturating_sub(BOOT_SYSTEM_TIME).max(now)
    }
}

/// The seed the machine was booted with.
pub fn seed() -> u64 {
    SEED.load(Ordering::SeqCst)
}

/// The machine's seeded generator (`ChaCha8`, whose output stream is fixed for a seed). Hold the guard
/// only briefly and never across a call into a driver.
pub fn rng() -> MutexGuard<'static, ChaCha8Rng> {
    crate::lock(&RNG)
}

/// A uniformly distributed `u64` from the machine's generator.
pub fn random_u64() -> u64 {
    use rand_core::RngCore;
    rng().next_u64()
}

/// True with probability `numerator / denominator` (false when `denominator` is 0), from the machine's
/// generator: for fault injection ("fail one send in 100").
pub fn chance(numerator: u64, denominator: u64) -> bool {
    denominator != 0 && random_u64() % denominator < numerator
}

/// `KeQueryPerformanceCounter`. Any IRQL. The counter runs at [`PERFORMANCE_FREQUENCY`] (10 MHz) and
/// equals the interrupt time; `frequency` may be null (`KeQueryPerformanceCounter` docs: the optional
/// out-parameter receives the counts per second).
///
/// # Safety
/// `frequency` must be null or valid for writes.
#[no_mangle]
pub unsafe extern "system" fn KeQueryPerformanceCounter(frequency: *mut LARGE_INTEGER) -> LARGE_INTEGER {
    if !frequency.is_null() {
        // SAFETY: the caller passes null or a pointer valid for writes.
        unsafe { frequency.write(PERFORMANCE_FREQUENCY) };
    }
    i64::try_from(now()).unwrap_or(i64::MAX)
}

/// `KeQueryInterruptTimePrecise`. IRQL <= `HIGH_LEVEL`. Returns the interrupt time (100-ns units) and
/// writes the performance-counter value it was derived from (the same number at 10 MHz).
///
/// # Safety
/// `qpc_time_stamp` must be null or valid for writes.
#[no_mangle]
pub unsafe extern "system" fn KeQueryInterruptTimePrecise(qpc_time_stamp: *mut u64) -> u64 {
    let now = now();
    if !qpc_time_stamp.is_null() {
        // SAFETY: the caller passes null or a pointer valid for writes.
        unsafe { qpc_time_stamp.write(now) };
    }
    now
}
