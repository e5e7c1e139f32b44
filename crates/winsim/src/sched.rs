//! Scheduling: DPCs, timers, work items, dispatcher-object waits, thread delays and extended processor
//! state, in both machine modes (see [`crate::clock::Mode`]).
//!
//! * Deterministic: nothing runs behind the test's back. Queued DPCs (at `DISPATCH_LEVEL`) and work items
//!   (at `PASSIVE_LEVEL`) run on the calling thread when the machine is pumped: [`run_until_idle`],
//!   [`advance`] (which also moves the virtual clock, firing due timers in due-time order), or a driver's
//!   own `KeWaitForSingleObject`/`KeDelayExecutionThread`, which pump until the wait is satisfied and
//!   jump the virtual clock to the next timer (or to the timeout).
//! * Real time: two worker threads run DPCs (at `DISPATCH_LEVEL` on that thread) and work items, a timer
//!   thread fires timers on the wall clock, and waits block on a condition variable.
//!
//! The kernel keeps its bookkeeping in the objects the driver owns: `KeInitializeDpc` writes
//! `DeferredRoutine`/`DeferredContext` into the `KDPC`, `KeInsertQueueDpc` the system arguments and a
//! non-null `DpcData` while queued; `KeInitializeEvent`/`KeInitializeTimerEx` write the
//! `DISPATCHER_HEADER` (`Type`, `Size`, `SignalState`, a self-linked wait list), and `KeSetTimerEx` the
//! timer's `DueTime`, `Dpc` and `Period` (x64 offsets as in Wine's `ddk/wdm.h`, whose sizes
//! `crates/kernel` asserts). The signal state lives only in the object (read and written atomically);
//! queues and timer ordering live in side tables keyed by the object's address.
//!
//! Every DPC, timer DPC and work item runs through [`crate::context::call_driver`], attributed to the
//! driver that queued it (the current driver at `KeInsertQueueDpc`/`KeSetTimerEx`/`IoQueueWorkItem`).
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kernel::ffi::ntos::{
    APC_LEVEL, BOOLEAN, DEVICE_OBJECT, DISPATCH_LEVEL, EVENT_TYPE, FALSE, IO_WORKITEM, KDPC, KEVENT, KIRQL,
    KPRIORITY, KPROCESSOR_MODE, KTIMER, LARGE_INTEGER, NTSTATUS, PASSIVE_LEVEL, PIO_WORKITEM_ROUTINE,
    PKDEFERRED_ROUTINE, POOL_FLAG_NON_PAGED, STATUS_SUCCESS, STATUS_TIMEOUT, STATUS_UNSUCCESSFUL, TIMER_TYPE,
    TRUE, UNICODE_STRING, WORK_QUEUE_TYPE, XSTATE_SAVE,
};

use crate::clock::{self, Mode};
use crate::context::{self, call_driver, current_driver, require_irql_at_most, DriverId};
use crate::verifier::{violation, Rule};

// ---- object layouts (x64; Wine 8.0 `ddk/wdm.h`) ----

/// `KDPC.Type` (`UCHAR`): `DpcObject` (0x13) in the `KOBJECTS` enumeration.
const DPC_TYPE: usize = 0;
const DPC_OBJECT: u8 = 0x13;
/// `KDPC.Importance`: `MediumImportance` (1), what `KeInitializeDpc` sets.
const DPC_IMPORTANCE: usize = 1;
const MEDIUM_IMPORTANCE: u8 = 1;
const DPC_ROUTINE: usize = 24;
const DPC_CONTEXT: usize = 32;
const DPC_ARGUMENT1: usize = 40;
const DPC_ARGUMENT2: usize = 48;
/// `KDPC.DpcData`: non-null while the DPC is queued.
const DPC_DATA: usize = 56;

/// `DISPATCHER_HEADER.Type` (`UCHAR`), `.Size` (`UCHAR`, in `ULONG`s), `.SignalState` (`LONG`),
/// `.WaitListHead` (`LIST_ENTRY`).
const HEADER_TYPE: usize = 0;
const HEADER_SIZE: usize = 2;
const HEADER_SIGNAL_STATE: usize = 4;
const HEADER_WAIT_LIST: usize = 8;
/// `KOBJECTS`: `EventSynchronizationObject`, `TimerNotificationObject`, `TimerSynchronizationObject`.
const EVENT_SYNCHRONIZATION_OBJECT: u8 = 1;
const TIMER_NOTIFICATION_OBJECT: u8 = 8;
const TIMER_SYNCHRONIZATION_OBJECT: u8 = 9;
/// `KTIMER.DueTime` (`ULARGE_INTEGER`), `.Dpc`, `.Period` (`LONG`, ms).
const TIMER_DUE_TIME: usize = 24;
const TIMER_DPC: usize = 48;
const TIMER_PERIOD: usize = 56;

/// `IoSizeofWorkItem()` in the simulation (the real size is private to the kernel and varies by build).
pub const WORK_ITEM_SIZE: usize = 0x58;
/// The pool tag of `IoAllocateWorkItem` blocks (so a leaked work item shows as `IoWk` in the pool
/// report).
pub const WORK_ITEM_TAG: u32 = u32::from_le_bytes(*b"IoWk");

/// An infinite wait in deterministic mode pumps at most this much virtual time before giving up.
const INFINITE_WAIT_VIRTUAL_CAP: u64 = 5 * 60 * 10_000_000;

static DPC_DATA_MARKER: u8 = 0;

/// A pointer `offset` bytes into `object`, as a `*mut T` (no access).
fn field<T>(object: *mut c_void, offset: usize) -> *mut T {
    object.cast::<u8>().wrapping_add(offset).cast()
}

fn addr<T>(p: *mut T) -> usize {
    p as usize
}

fn ptr<T>(address: usize) -> *mut T {
    address as *mut T
}

/// Writes `value` at `offset` in a kernel object the caller passed.
///
/// # Safety
/// `object` must be valid for writes of `offset + size_of::<T>()` bytes, suitably aligned for `T`.
unsafe fn write_field<T>(object: *mut c_void, offset: usize, value: T) {
    // SAFETY: forwarded contract.
    unsafe { field::<T>(object, offset).write(value) };
}

/// Reads the value at `offset` in a kernel object.
///
/// # Safety
/// As for [`write_field`], for reads; the bytes must be a valid `T`.
unsafe fn read_field<T>(object: *mut c_void, offset: usize) -> T {
    // SAFETY: forwarded contract.
    unsafe { field::<T>(object, offset).read() }
}

/// The `SignalState` word of a dispatcher object, accessed atomically (the real-time mode's threads
/// share it).
///
/// # Safety
/// `object` must point to a live, initialised dispatcher object (`KEVENT` or `KTIMER`).
unsafe fn signal_state<'a>(object: *mut c_void) -> &'a AtomicI32 {
    // SAFETY: SignalState is a 4-aligned LONG inside the object; every access goes through atomics.
    unsafe { AtomicI32::from_ptr(field::<i32>(object, HEADER_SIGNAL_STATE)) }
}

/// Initialises a `DISPATCHER_HEADER`: type, size, signal state, empty (self-linked) wait list.
///
/// # Safety
/// `object` must be valid for writes of `size` bytes (at least 24), 8-aligned.
unsafe fn init_header(object: *mut c_void, kind: u8, size: usize, state: i32) {
    // SAFETY: the header lies inside the object (caller's contract).
    unsafe { write_field::<u8>(object, HEADER_TYPE, kind) };
    // SAFETY: as above; Size counts ULONGs and fits a byte for these objects.
    unsafe { write_field::<u8>(object, HEADER_SIZE, u8::try_from(size / 4).unwrap_or(u8::MAX)) };
    // SAFETY: as above.
    unsafe { write_field::<i32>(object, HEADER_SIGNAL_STATE, state) };
    let list: *mut c_void = field(object, HEADER_WAIT_LIST);
    // SAFETY: as above: Flink and Blink of the wait list point to the list head itself (empty list).
    unsafe { write_field::<*mut c_void>(list, 0, list) };
    // SAFETY: as above.
    unsafe { write_field::<*mut c_void>(list, 8, list) };
}

// ---- scheduler state ----

#[derive(Clone, Copy, Debug)]
struct QueuedDpc {
    dpc: usize,
    owner: Option<DriverId>,
}

#[derive(Clone, Copy, Debug)]
struct QueuedWork {
    item: usize,
    routine: PIO_WORKITEM_ROUTINE,
    context: usize,
    device: usize,
    owner: Option<DriverId>,
}

#[derive(Clone, Copy, Debug)]
struct Timer {
    due: u64,
    /// 100-ns units; 0 = one-shot.
    period: u64,
    dpc: usize,
    owner: Option<DriverId>,
    /// Order of setting, to break due-time ties deterministically.
    seq: u64,
}

#[derive(Clone, Copy, Debug)]
struct WorkItem {
    /// Allocated by `IoAllocateWorkItem` (pool) rather than initialised by `IoInitializeWorkItem`.
    allocated: bool,
    device: usize,
    queued: bool,
    owner: Option<DriverId>,
}

#[derive(Debug, Default)]
struct Sched {
    dpcs: VecDeque<QueuedDpc>,
    work: VecDeque<QueuedWork>,
    timers: HashMap<usize, Timer>,
    items: HashMap<usize, WorkItem>,
    seq: u64,
    running_dpcs: usize,
    running_work: usize,
    stop: bool,
}

static SCHED: LazyLock<Mutex<Sched>> = LazyLock::new(|| Mutex::new(Sched::default()));
/// Signalled on every change of the queues (real-time workers, timer thread, flushes).
static QUEUE_CHANGED: Condvar = Condvar::new();
/// Bumped (and [`SIGNALLED`] notified) whenever a dispatcher object becomes signalled.
static SIGNALS: Mutex<u64> = Mutex::new(0);
static SIGNALLED: Condvar = Condvar::new();
static THREADS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());
/// Real time an unsatisfiable infinite wait in deterministic mode waits for other threads (simulated
/// sockets) before it is reported, in milliseconds.
static DEADLOCK_GRACE_MS: AtomicU64 = AtomicU64::new(500);

fn sched() -> MutexGuard<'static, Sched> {
    crate::lock(&SCHED)
}

fn wait_on<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>, timeout: Duration) -> MutexGuard<'a, T> {
    cv.wait_timeout(guard, timeout).unwrap_or_else(PoisonError::into_inner).0
}

fn notify_signalled() {
    let mut generation = crate::lock(&SIGNALS);
    *generation = generation.wrapping_add(1);
    SIGNALLED.notify_all();
}

/// Returns the scheduler to an empty state for a fresh boot: stops a previous machine's real-time
/// threads, forgets every queue, timer and work item, clears this thread's extended-state saves, and
/// starts the real-time threads if the machine was booted in [`Mode::RealTime`].
pub(crate) fn reset() {
    stop_threads();
    *sched() = Sched::default();
    XSTATE.with(|x| x.borrow_mut().clear());
    DEADLOCK_GRACE_MS.store(500, Ordering::SeqCst);
    if clock::mode() == Mode::RealTime {
        start_threads();
    }
}

/// How much real time an infinite wait that nothing in the deterministic machine can satisfy waits
/// for other threads (for example simulated sockets) before [`Rule::SchedWaitDeadlock`] is reported.
pub fn set_deadlock_grace(grace: Duration) {
    DEADLOCK_GRACE_MS.store(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX), Ordering::SeqCst);
}

/// What is pending in the scheduler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub dpcs: usize,
    pub work_items: usize,
    pub timers: usize,
}

/// Counts of queued DPCs, queued work items and set timers.
pub fn pending() -> Pending {
    let s = sched();
    Pending { dpcs: s.dpcs.len(), work_items: s.work.len(), timers: s.timers.len() }
}

/// The interrupt time at which the next timer is due, if any is set.
pub fn next_timer_due() -> Option<u64> {
    sched().timers.values().map(|t| t.due).min()
}

/// Runs a callback as `owner` (or as the system) at `irql`, and checks that the callback left its
/// extended-processor-state saves balanced.
fn run_callback(owner: Option<DriverId>, irql: KIRQL, what: &str, f: impl FnOnce()) {
    let depth = xstate_depth();
    match owner {
        Some(driver) => call_driver(driver, irql, what, f),
        None => crate::irql::at_irql(irql, || context::as_system(f)),
    }
    check_xstate_balanced(depth, what);
}

/// Queues `dpc` unless it is queued already (returns whether it was queued now).
fn insert_dpc(
    s: &mut Sched,
    dpc: *mut KDPC,
    argument1: *mut c_void,
    argument2: *mut c_void,
    owner: Option<DriverId>,
) -> bool {
    if s.dpcs.iter().any(|q| q.dpc == addr(dpc)) {
        return false;
    }
    let object = dpc.cast::<c_void>();
    // SAFETY: the caller passes an initialised KDPC (64 bytes, 8-aligned).
    unsafe { write_field(object, DPC_ARGUMENT1, argument1) };
    // SAFETY: as above.
    unsafe { write_field(object, DPC_ARGUMENT2, argument2) };
    // SAFETY: as above.
    unsafe { write_field(object, DPC_DATA, (&raw const DPC_DATA_MARKER).cast_mut()) };
    s.dpcs.push_back(QueuedDpc { dpc: addr(dpc), owner });
    QUEUE_CHANGED.notify_all();
    true
}

/// Takes the next DPC off the queue (clearing its `DpcData`, as the kernel dequeues a DPC before it
/// runs it).
fn pop_dpc(s: &mut Sched) -> Option<QueuedDpc> {
    let q = s.dpcs.pop_front()?;
    // SAFETY: the DPC was queued by KeInsertQueueDpc/KeSetTimerEx with a valid KDPC that its driver
    // keeps alive while queued.
    unsafe { write_field(ptr::<c_void>(q.dpc), DPC_DATA, std::ptr::null_mut::<c_void>()) };
    Some(q)
}

fn pop_work(s: &mut Sched) -> Option<QueuedWork> {
    let w = s.work.pop_front()?;
    if let Some(item) = s.items.get_mut(&w.item) {
        item.queued = false;
    }
    Some(w)
}

fn run_dpc(q: QueuedDpc) {
    let object = ptr::<c_void>(q.dpc);
    // SAFETY: the KDPC was initialised by KeInitializeDpc (null or a valid routine at this offset) and
    // stays alive while queued.
    let routine: PKDEFERRED_ROUTINE = unsafe { read_field(object, DPC_ROUTINE) };
    // SAFETY: as above.
    let deferred_context: *mut c_void = unsafe { read_field(object, DPC_CONTEXT) };
    // SAFETY: as above.
    let argument1: *mut c_void = unsafe { read_field(object, DPC_ARGUMENT1) };
    // SAFETY: as above.
    let argument2: *mut c_void = unsafe { read_field(object, DPC_ARGUMENT2) };
    if let Some(routine) = routine {
        run_callback(q.owner, DISPATCH_LEVEL, "DPC routine", || {
            // SAFETY: the driver registered this routine for this DPC with KeInitializeDpc.
            unsafe { routine(object.cast(), deferred_context, argument1, argument2) }
        });
    }
}

fn run_work(w: QueuedWork) {
    if let Some(routine) = w.routine {
        run_callback(w.owner, PASSIVE_LEVEL, "work item routine", || {
            // SAFETY: the driver queued this routine with IoQueueWorkItem.
            unsafe { routine(ptr::<DEVICE_OBJECT>(w.device), ptr::<c_void>(w.context)) }
        });
    }
}

/// Fires the earliest timer due at `now` (due-time order, then the order they were set): signals it,
/// re-arms it if periodic, and queues its DPC with the due time as the system arguments (low and high
/// 32 bits, as the kernel passes the expiration time). Returns whether a timer fired.
fn fire_one_due(now: u64) -> bool {
    let mut s = sched();
    let Some((&timer, &t)) =
        s.timers.iter().filter(|(_, t)| t.due <= now).min_by_key(|(_, t)| (t.due, t.seq))
    else {
        return false;
    };
    let object = ptr::<c_void>(timer);
    if t.period > 0 {
        s.seq += 1;
        let seq = s.seq;
        let next = Timer { due: t.due.saturating_add(t.period), seq, ..t };
        s.timers.insert(timer, next);
        // SAFETY: a set timer is a live KTIMER its driver keeps until it cancels it.
        unsafe { write_field(object, TIMER_DUE_TIME, next.due) };
    } else {
        s.timers.remove(&timer);
    }
    // SAFETY: as above.
    unsafe { signal_state(object) }.store(1, Ordering::SeqCst);
    if t.dpc != 0 {
        let low = ptr::<c_void>(usize::try_from(t.due & 0xffff_ffff).unwrap_or(0));
        let high = ptr::<c_void>(usize::try_from(t.due >> 32).unwrap_or(0));
        insert_dpc(&mut s, ptr(t.dpc), low, high, t.owner);
    }
    drop(s);
    notify_signalled();
    true
}

/// One deterministic scheduling step: the next DPC, else every timer due now, else the next work
/// item. Returns whether anything ran.
fn step() -> bool {
    let dpc = pop_dpc(&mut sched());
    if let Some(q) = dpc {
        run_dpc(q);
        return true;
    }
    if fire_one_due(clock::now()) {
        return true;
    }
    let work = pop_work(&mut sched());
    if let Some(w) = work {
        run_work(w);
        return true;
    }
    false
}

/// Pumps the deterministic machine until `done` (checked before every step), moving the virtual clock
/// to each next timer while it is due by `deadline`; when nothing is left to run before the deadline,
/// the clock moves to the deadline. Returns `done()` at the end.
fn pump_until(deadline: Option<u64>, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if step() {
            continue;
        }
        match next_timer_due() {
            Some(due) if deadline.is_none_or(|d| due <= d) => clock::advance_to(due),
            _ => {
                if let Some(d) = deadline {
                    clock::advance_to(d);
                }
                return done();
            }
        }
    }
}

/// Runs queued DPCs, due timers and work items until none is left (deterministic mode). In real-time
/// mode, waits (at most 5 s) until the queues are empty and nothing is running. Call from the test
/// (`PASSIVE_LEVEL`, no driver code on the stack).
pub fn run_until_idle() {
    if clock::is_deterministic() {
        while step() {}
    } else {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut s = sched();
        while (!s.dpcs.is_empty() || !s.work.is_empty() || s.running_dpcs > 0 || s.running_work > 0)
            && Instant::now() < deadline
        {
            s = wait_on(&QUEUE_CHANGED, s, Duration::from_millis(10));
        }
    }
}

/// Moves time forward by `by`: in deterministic mode the virtual clock steps to each timer due in the
/// interval in due-time order, firing it and running everything it queues, then to the end of the
/// interval; in real-time mode the calling thread sleeps.
pub fn advance(by: Duration) {
    if clock::is_deterministic() {
        let target = clock::now().saturating_add(clock::ticks(by));
        pump_until(Some(target), || false);
        while step() {}
    } else {
        std::thread::sleep(by);
    }
}

// ---- real-time threads ----

fn start_threads() {
    let mut threads = crate::lock(&THREADS);
    for i in 0..2 {
        let handle = std::thread::Builder::new()
            .name(format!("winsim-worker-{i}"))
            .spawn(worker)
            .expect("spawn a simulated worker thread");
        threads.push(handle);
    }
    let handle = std::thread::Builder::new()
        .name("winsim-timer".into())
        .spawn(timer_thread)
        .expect("spawn the simulated timer thread");
    threads.push(handle);
}

fn stop_threads() {
    let handles: Vec<JoinHandle<()>> = std::mem::take(&mut *crate::lock(&THREADS));
    if handles.is_empty() {
        return;
    }
    sched().stop = true;
    QUEUE_CHANGED.notify_all();
    for handle in handles {
        let _ = handle.join();
    }
    sched().stop = false;
}

enum Job {
    Dpc(QueuedDpc),
    Work(QueuedWork),
}

fn worker() {
    loop {
        let job = {
            let mut s = sched();
            loop {
                if s.stop {
                    return;
                }
                if let Some(q) = pop_dpc(&mut s) {
                    s.running_dpcs += 1;
                    break Job::Dpc(q);
                }
                if let Some(w) = pop_work(&mut s) {
                    s.running_work += 1;
                    break Job::Work(w);
                }
                s = wait_on(&QUEUE_CHANGED, s, Duration::from_millis(100));
            }
        };
        match job {
            Job::Dpc(q) => {
                run_dpc(q);
                sched().running_dpcs -= 1;
            }
            Job::Work(w) => {
                run_work(w);
                sched().running_work -= 1;
            }
        }
        QUEUE_CHANGED.notify_all();
    }
}

fn timer_thread() {
    loop {
        let s = sched();
        if s.stop {
            return;
        }
        let now = clock::now();
        match s.timers.values().map(|t| t.due).min() {
            Some(due) if due <= now => {
                drop(s);
                fire_one_due(now);
            }
            Some(due) => {
                let wait = clock::duration(due - now).min(Duration::from_millis(100));
                drop(wait_on(&QUEUE_CHANGED, s, wait));
            }
            None => drop(wait_on(&QUEUE_CHANGED, s, Duration::from_millis(100))),
        }
    }
}

// ---- unload ----

/// Called when `driver` has unloaded: a DPC it queued, a timer it set or a work item it queued that is
/// still pending would run code that is gone (bug check 0xCE
/// `DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS`). They are removed so they never run, and
/// the driver's work-item records are forgotten (its pool is checked by `pool::check_unload`).
pub(crate) fn check_unload(driver: DriverId, name: &str) {
    let (dpcs, timers, work) = {
        let mut s = sched();
        let dpcs = s.dpcs.iter().filter(|q| q.owner == Some(driver)).count();
        s.dpcs.retain(|q| q.owner != Some(driver));
        let timers = s.timers.values().filter(|t| t.owner == Some(driver)).count();
        s.timers.retain(|_, t| t.owner != Some(driver));
        let work = s.work.iter().filter(|w| w.owner == Some(driver)).count();
        s.work.retain(|w| w.owner != Some(driver));
        s.items.retain(|_, i| i.owner != Some(driver));
        (dpcs, timers, work)
    };
    if dpcs + timers + work > 0 {
        violation(
            Rule::SchedPendingAtUnload,
            format!(
                "{name} unloaded with {dpcs} DPC(s) queued, {timers} timer(s) set and {work} work item(s) \
                 queued (bug check 0xCE DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS)"
            ),
        );
    }
}

// ---- events and waits ----

/// Whether the dispatcher object is signalled; consumes the signal of a synchronization object (an
/// auto-reset event or a synchronization timer), as a satisfied wait does.
///
/// # Safety
/// `object` must point to a live, initialised `KEVENT` or `KTIMER`.
unsafe fn try_acquire(object: *mut c_void) -> bool {
    // SAFETY: the header's Type byte is inside the object (caller's contract).
    let kind: u8 = unsafe { read_field(object, HEADER_TYPE) };
    // SAFETY: caller's contract.
    let state = unsafe { signal_state(object) };
    if kind == EVENT_SYNCHRONIZATION_OBJECT || kind == TIMER_SYNCHRONIZATION_OBJECT {
        state.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| (s > 0).then_some(0)).is_ok()
    } else {
        state.load(Ordering::SeqCst) > 0
    }
}

/// Waits until `done()` or the interrupt time `deadline` (None = forever), by the machine's mode.
fn wait_until(deadline: Option<u64>, mut done: impl FnMut() -> bool, what: &str) -> NTSTATUS {
    if clock::is_deterministic() {
        let cap = deadline.unwrap_or_else(|| clock::now().saturating_add(INFINITE_WAIT_VIRTUAL_CAP));
        if pump_until(Some(cap), &mut done) {
            return STATUS_SUCCESS;
        }
        if deadline.is_some() {
            return STATUS_TIMEOUT;
        }
        // Nothing in the machine can satisfy the wait: give other threads a bounded chance.
        let grace = Duration::from_millis(DEADLOCK_GRACE_MS.load(Ordering::SeqCst));
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if done() {
                return STATUS_SUCCESS;
            }
            if step() {
                continue;
            }
            drop(wait_on(&SIGNALLED, crate::lock(&SIGNALS), Duration::from_millis(5)));
        }
        if done() {
            return STATUS_SUCCESS;
        }
        violation(
            Rule::SchedWaitDeadlock,
            format!("{what}: an infinite wait that nothing queued, set or running can satisfy"),
        );
        return STATUS_TIMEOUT;
    }
    loop {
        let generation = crate::lock(&SIGNALS);
        if done() {
            return STATUS_SUCCESS;
        }
        let now = clock::now();
        let slice = match deadline {
            Some(d) if now >= d => return STATUS_TIMEOUT,
            Some(d) => clock::duration(d - now).min(Duration::from_millis(50)),
            None => Duration::from_millis(50),
        };
        drop(wait_on(&SIGNALLED, generation, slice));
    }
}

/// `KeInitializeEvent`. Any IRQL. Writes the event's `DISPATCHER_HEADER`: `Type` = the event type
/// (`NotificationEvent` 0, `SynchronizationEvent` 1), `Size` = 6 `ULONG`s, `SignalState` = `state`,
/// an empty wait list.
///
/// # Safety
/// `event` must point to a `KEVENT` valid for writes that is not being waited on.
#[no_mangle]
pub unsafe extern "system" fn KeInitializeEvent(event: *mut KEVENT, event_type: EVENT_TYPE, state: BOOLEAN) {
    let kind = u8::try_from(event_type).unwrap_or(0);
    // SAFETY: the caller passes a KEVENT (24 bytes, 8-aligned) valid for writes.
    unsafe { init_header(event.cast(), kind, std::mem::size_of::<KEVENT>(), i32::from(state != 0)) };
}

/// `KeSetEvent`. IRQL <= `DISPATCH_LEVEL`. Signals the event and returns its previous state
/// (`KeSetEvent` docs); waiters are woken (a synchronization event is reset by the one wait it
/// satisfies).
///
/// # Safety
/// `event` must point to an initialised `KEVENT`.
#[no_mangle]
pub unsafe extern "system" fn KeSetEvent(event: *mut KEVENT, _increment: KPRIORITY, _wait: BOOLEAN) -> i32 {
    require_irql_at_most(DISPATCH_LEVEL, "KeSetEvent");
    // SAFETY: the caller passes an initialised KEVENT.
    let previous = unsafe { signal_state(event.cast()) }.swap(1, Ordering::SeqCst);
    notify_signalled();
    previous
}

/// `KeClearEvent`. IRQL <= `DISPATCH_LEVEL`. Sets the event not-signalled.
///
/// # Safety
/// `event` must point to an initialised `KEVENT`.
#[no_mangle]
pub unsafe extern "system" fn KeClearEvent(event: *mut KEVENT) {
    require_irql_at_most(DISPATCH_LEVEL, "KeClearEvent");
    // SAFETY: the caller passes an initialised KEVENT.
    unsafe { signal_state(event.cast()) }.store(0, Ordering::SeqCst);
}

/// `KeResetEvent`. IRQL <= `DISPATCH_LEVEL`. Sets the event not-signalled and returns its previous
/// state.
///
/// # Safety
/// `event` must point to an initialised `KEVENT`.
#[no_mangle]
pub unsafe extern "system" fn KeResetEvent(event: *mut KEVENT) -> i32 {
    require_irql_at_most(DISPATCH_LEVEL, "KeResetEvent");
    // SAFETY: the caller passes an initialised KEVENT.
    unsafe { signal_state(event.cast()) }.swap(0, Ordering::SeqCst)
}

/// `KeReadStateEvent`. IRQL <= `DISPATCH_LEVEL`. The event's current state (nonzero = signalled).
///
/// # Safety
/// `event` must point to an initialised `KEVENT`.
#[no_mangle]
pub unsafe extern "system" fn KeReadStateEvent(event: *mut KEVENT) -> i32 {
    require_irql_at_most(DISPATCH_LEVEL, "KeReadStateEvent");
    // SAFETY: the caller passes an initialised KEVENT.
    unsafe { signal_state(event.cast()) }.load(Ordering::SeqCst)
}

/// Checks a wait's IRQL: <= `APC_LEVEL` to wait, `DISPATCH_LEVEL` only with a zero timeout
/// (`KeWaitForSingleObject` docs; Static Driver Verifier rule `IrqlKeWaitForMultipleObjects`). Returns
/// whether the caller may block.
fn may_block(routine: &str, zero_timeout: bool) -> bool {
    let irql = context::irql();
    if irql > DISPATCH_LEVEL {
        require_irql_at_most(DISPATCH_LEVEL, routine);
        return false;
    }
    if irql > APC_LEVEL {
        if !zero_timeout {
            violation(
                Rule::SchedWaitAtDispatch,
                format!("{routine} at IRQL {irql} with a nonzero or infinite timeout"),
            );
        }
        return false;
    }
    true
}

/// `KeWaitForSingleObject` on a `KEVENT` or `KTIMER`. IRQL <= `APC_LEVEL`, or `DISPATCH_LEVEL` with a zero
/// timeout. `timeout`: null = forever, 0 = test only, negative = relative, positive = absolute system
/// time, in 100-ns units. Returns `STATUS_SUCCESS` when the object is (or becomes) signalled, else
/// `STATUS_TIMEOUT`. In deterministic mode the wait pumps the machine and moves the virtual clock
/// (to the next timer, or to the timeout).
///
/// # Safety
/// `object` must point to an initialised `KEVENT` or `KTIMER`; `timeout` must be null or readable.
#[no_mangle]
pub unsafe extern "system" fn KeWaitForSingleObject(
    object: *mut c_void,
    _wait_reason: i32,
    _wait_mode: KPROCESSOR_MODE,
    _alertable: BOOLEAN,
    timeout: *mut LARGE_INTEGER,
) -> NTSTATUS {
    // SAFETY: the caller passes null or a readable LARGE_INTEGER.
    let timeout = unsafe { timeout.as_ref() }.copied();
    let may_block = may_block("KeWaitForSingleObject", timeout == Some(0));
    // SAFETY: the caller passes an initialised dispatcher object that outlives the wait.
    if unsafe { try_acquire(object) } {
        return STATUS_SUCCESS;
    }
    if !may_block || timeout == Some(0) {
        return STATUS_TIMEOUT;
    }
    let deadline = timeout.map(clock::due_from_kernel);
    wait_until(
        deadline,
        || {
            // SAFETY: as above.
            unsafe { try_acquire(object) }
        },
        "KeWaitForSingleObject",
    )
}

/// `KeDelayExecutionThread`. IRQL <= `APC_LEVEL`. `interval` in 100-ns units, negative = relative,
/// positive = absolute. Deterministic mode: the virtual clock moves to the end of the interval, firing
/// timers and running what is queued on the way; real time: the thread sleeps.
///
/// # Safety
/// `interval` must be readable.
#[no_mangle]
pub unsafe extern "system" fn KeDelayExecutionThread(
    _mode: KPROCESSOR_MODE,
    _alertable: BOOLEAN,
    interval: *mut LARGE_INTEGER,
) -> NTSTATUS {
    // SAFETY: the caller passes a readable LARGE_INTEGER.
    let interval = unsafe { interval.as_ref() }.copied().unwrap_or(0);
    if !may_block("KeDelayExecutionThread", false) {
        return STATUS_SUCCESS;
    }
    let due = clock::due_from_kernel(interval);
    if clock::is_deterministic() {
        pump_until(Some(due), || false);
    } else {
        std::thread::sleep(clock::duration(due.saturating_sub(clock::now())));
    }
    STATUS_SUCCESS
}

// ---- DPCs ----

/// `KeInitializeDpc`. Any IRQL. Writes `Type` = `DpcObject`, `Importance` = `MediumImportance`,
/// `DeferredRoutine`, `DeferredContext`, and clears the rest (`KeInitializeDpc` docs).
///
/// # Safety
/// `dpc` must point to a `KDPC` valid for writes that is not queued.
#[no_mangle]
pub unsafe extern "system" fn KeInitializeDpc(
    dpc: *mut KDPC,
    routine: PKDEFERRED_ROUTINE,
    context: *mut c_void,
) {
    // SAFETY: the caller passes a KDPC (64 bytes) valid for writes; zero is the cleared state.
    unsafe { dpc.cast::<u8>().write_bytes(0, std::mem::size_of::<KDPC>()) };
    let object = dpc.cast::<c_void>();
    // SAFETY: as above.
    unsafe { write_field::<u8>(object, DPC_TYPE, DPC_OBJECT) };
    // SAFETY: as above.
    unsafe { write_field::<u8>(object, DPC_IMPORTANCE, MEDIUM_IMPORTANCE) };
    // SAFETY: as above.
    unsafe { write_field(object, DPC_ROUTINE, routine) };
    // SAFETY: as above.
    unsafe { write_field(object, DPC_CONTEXT, context) };
}

/// `KeInsertQueueDpc`. Any IRQL. Queues the DPC with its system arguments and returns TRUE; if it is
/// already queued nothing happens and it returns FALSE (`KeInsertQueueDpc` docs). The DPC runs as the
/// driver that queued it.
///
/// # Safety
/// `dpc` must point to a `KDPC` initialised by `KeInitializeDpc` that stays alive while queued.
#[no_mangle]
pub unsafe extern "system" fn KeInsertQueueDpc(
    dpc: *mut KDPC,
    argument1: *mut c_void,
    argument2: *mut c_void,
) -> BOOLEAN {
    let owner = current_driver();
    let queued = insert_dpc(&mut sched(), dpc, argument1, argument2, owner);
    if queued {
        TRUE
    } else {
        FALSE
    }
}

/// `KeRemoveQueueDpc`. Any IRQL. Removes a queued DPC (it will not run) and returns TRUE; FALSE if it
/// was not queued (`KeRemoveQueueDpc` docs).
///
/// # Safety
/// `dpc` must point to an initialised `KDPC`.
#[no_mangle]
pub unsafe extern "system" fn KeRemoveQueueDpc(dpc: *mut KDPC) -> BOOLEAN {
    let mut s = sched();
    let Some(index) = s.dpcs.iter().position(|q| q.dpc == addr(dpc)) else {
        return FALSE;
    };
    s.dpcs.remove(index);
    // SAFETY: the caller passes an initialised KDPC.
    unsafe { write_field(dpc.cast::<c_void>(), DPC_DATA, std::ptr::null_mut::<c_void>()) };
    TRUE
}

/// `KeFlushQueuedDpcs`. `PASSIVE_LEVEL`. Returns once every DPC queued at the time of the call has run
/// (deterministic: runs the DPC queue to empty on this thread; real time: waits for the workers).
#[no_mangle]
pub extern "system" fn KeFlushQueuedDpcs() {
    if !require_irql_at_most(PASSIVE_LEVEL, "KeFlushQueuedDpcs") {
        return;
    }
    if clock::is_deterministic() {
        loop {
            let next = pop_dpc(&mut sched());
            match next {
                Some(q) => run_dpc(q),
                None => break,
            }
        }
    } else {
        let mut s = sched();
        while !s.dpcs.is_empty() || s.running_dpcs > 0 {
            s = wait_on(&QUEUE_CHANGED, s, Duration::from_millis(10));
        }
    }
}

// ---- timers ----

/// `KeInitializeTimerEx`. IRQL <= `DISPATCH_LEVEL`. Writes the header (`Type` =
/// `TimerNotificationObject` or `TimerSynchronizationObject`, not signalled) and clears `DueTime`,
/// `Dpc` and `Period`. Reinitialising a set timer forgets it.
///
/// # Safety
/// `timer` must point to a `KTIMER` valid for writes.
#[no_mangle]
pub unsafe extern "system" fn KeInitializeTimerEx(timer: *mut KTIMER, timer_type: TIMER_TYPE) {
    require_irql_at_most(DISPATCH_LEVEL, "KeInitializeTimerEx");
    sched().timers.remove(&addr(timer));
    let kind = if timer_type == 1 { TIMER_SYNCHRONIZATION_OBJECT } else { TIMER_NOTIFICATION_OBJECT };
    let object = timer.cast::<c_void>();
    // SAFETY: the caller passes a KTIMER (64 bytes, 8-aligned) valid for writes.
    unsafe { timer.cast::<u8>().write_bytes(0, std::mem::size_of::<KTIMER>()) };
    // SAFETY: as above.
    unsafe { init_header(object, kind, std::mem::size_of::<KTIMER>(), 0) };
}

/// `KeSetTimerEx`. IRQL <= `DISPATCH_LEVEL`. `due_time` in 100-ns units, negative = relative,
/// positive = absolute system time; `period` in milliseconds (0 = one-shot); `dpc` optional. Sets the
/// timer not-signalled and (re)inserts it, implicitly cancelling a pending setting; returns TRUE if the
/// timer was already set (`KeSetTimerEx` docs). The timer's DPC runs as the driver that set it.
///
/// # Safety
/// `timer` must point to an initialised `KTIMER` and `dpc` be null or an initialised `KDPC`, both
/// alive until the timer fires or is cancelled.
#[no_mangle]
pub unsafe extern "system" fn KeSetTimerEx(
    timer: *mut KTIMER,
    due_time: LARGE_INTEGER,
    period: i32,
    dpc: *mut KDPC,
) -> BOOLEAN {
    require_irql_at_most(DISPATCH_LEVEL, "KeSetTimerEx");
    let due = clock::due_from_kernel(due_time);
    let period_ms = u64::try_from(period).unwrap_or(0);
    let object = timer.cast::<c_void>();
    // SAFETY: the caller passes an initialised KTIMER.
    unsafe { signal_state(object) }.store(0, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { write_field(object, TIMER_DUE_TIME, due) };
    // SAFETY: as above.
    unsafe { write_field(object, TIMER_DPC, dpc) };
    // SAFETY: as above.
    unsafe { write_field(object, TIMER_PERIOD, period.max(0)) };
    let mut s = sched();
    s.seq += 1;
    let t = Timer { due, period: period_ms * 10_000, dpc: addr(dpc), owner: current_driver(), seq: s.seq };
    let was_set = s.timers.insert(addr(timer), t).is_some();
    QUEUE_CHANGED.notify_all();
    if was_set {
        TRUE
    } else {
        FALSE
    }
}

/// `KeCancelTimer`. IRQL <= `DISPATCH_LEVEL`. Removes a set timer (with its pending DPC call) and
/// returns TRUE; FALSE if it was not set — a one-shot timer that already expired, even if its DPC is
/// still queued (`KeCancelTimer` docs). A periodic timer stays set until cancelled.
///
/// # Safety
/// `timer` must point to an initialised `KTIMER`.
#[no_mangle]
pub unsafe extern "system" fn KeCancelTimer(timer: *mut KTIMER) -> BOOLEAN {
    require_irql_at_most(DISPATCH_LEVEL, "KeCancelTimer");
    if sched().timers.remove(&addr(timer)).is_some() {
        TRUE
    } else {
        FALSE
    }
}

// ---- work items ----

fn work_item_misuse(detail: String) {
    violation(Rule::SchedWorkItemFreedWhileQueued, detail);
}

/// Forgets a work item being freed or uninitialised; if it is still queued that is a violation and
/// the queued call is dropped (it would run on freed memory). Returns the record, if it existed.
fn retire_work_item(item: usize, routine: &str) -> Option<WorkItem> {
    let mut s = sched();
    let record = s.items.remove(&item)?;
    if record.queued {
        s.work.retain(|w| w.item != item);
        drop(s);
        work_item_misuse(format!("{routine}({:p}) while the work item is queued", ptr::<c_void>(item)));
    }
    Some(record)
}

/// `IoAllocateWorkItem`. IRQL <= `DISPATCH_LEVEL`. A work item from non-paged pool (tag `IoWk`, owned by
/// the calling driver, so a work item never freed is a pool leak at unload); null on failure
/// (including injected pool failures).
#[no_mangle]
pub extern "system" fn IoAllocateWorkItem(device: *mut DEVICE_OBJECT) -> *mut IO_WORKITEM {
    if !require_irql_at_most(DISPATCH_LEVEL, "IoAllocateWorkItem") {
        return std::ptr::null_mut();
    }
    let block = crate::pool::ExAllocatePool2(POOL_FLAG_NON_PAGED, WORK_ITEM_SIZE, WORK_ITEM_TAG);
    if !block.is_null() {
        let record =
            WorkItem { allocated: true, device: addr(device), queued: false, owner: current_driver() };
        sched().items.insert(addr(block), record);
    }
    block.cast()
}

/// `IoFreeWorkItem`. IRQL <= `DISPATCH_LEVEL`. Only for a work item from `IoAllocateWorkItem` that is not
/// queued (`IoFreeWorkItem` docs: the system dequeues the item before calling its routine, so the
/// routine may free it).
///
/// # Safety
/// `item` must be a pointer the caller owns; the simulation validates it.
#[no_mangle]
pub unsafe extern "system" fn IoFreeWorkItem(item: *mut IO_WORKITEM) {
    if !require_irql_at_most(DISPATCH_LEVEL, "IoFreeWorkItem") {
        return;
    }
    match retire_work_item(addr(item), "IoFreeWorkItem") {
        None => {
            work_item_misuse(format!("IoFreeWorkItem({item:p}): not a work item from IoAllocateWorkItem"));
        }
        Some(record) if !record.allocated => {
            work_item_misuse(format!("IoFreeWorkItem({item:p}) on a work item from IoInitializeWorkItem"));
        }
        Some(_) => {
            // SAFETY: the block came from ExAllocatePool2 with this tag in IoAllocateWorkItem.
            unsafe { crate::pool::ExFreePoolWithTag(item.cast(), WORK_ITEM_TAG) };
        }
    }
}

/// `IoSizeofWorkItem`. Any IRQL. The size a caller allocates for `IoInitializeWorkItem`.
#[no_mangle]
pub extern "system" fn IoSizeofWorkItem() -> u32 {
    u32::try_from(WORK_ITEM_SIZE).unwrap_or(u32::MAX)
}

/// `IoInitializeWorkItem`. Any IRQL. Registers caller-allocated memory of `IoSizeofWorkItem()` bytes
/// as a work item for `io_object` (a device or driver object).
///
/// # Safety
/// `item` must point to `IoSizeofWorkItem()` writable bytes that outlive the work item.
#[no_mangle]
pub unsafe extern "system" fn IoInitializeWorkItem(io_object: *mut c_void, item: *mut IO_WORKITEM) {
    let record =
        WorkItem { allocated: false, device: addr(io_object), queued: false, owner: current_driver() };
    sched().items.insert(addr(item), record);
}

/// `IoUninitializeWorkItem`. Any IRQL. Only for an item that is not queued (`IoUninitializeWorkItem`
/// docs).
///
/// # Safety
/// `item` must be a pointer the caller owns; the simulation validates it.
#[no_mangle]
pub unsafe extern "system" fn IoUninitializeWorkItem(item: *mut IO_WORKITEM) {
    match retire_work_item(addr(item), "IoUninitializeWorkItem") {
        None => work_item_misuse(format!("IoUninitializeWorkItem({item:p}): not an initialised work item")),
        Some(record) if record.allocated => {
            work_item_misuse(format!(
                "IoUninitializeWorkItem({item:p}) on a work item from IoAllocateWorkItem"
            ));
        }
        Some(_) => {}
    }
}

/// `IoQueueWorkItem`. IRQL <= `DISPATCH_LEVEL`. Queues the routine to run at `PASSIVE_LEVEL` in a system
/// worker thread with the item's device object and `context`, as the calling driver. The item must not
/// be queued again before its routine has started.
///
/// # Safety
/// `item` must be a work item the caller owns; the simulation validates it.
#[no_mangle]
pub unsafe extern "system" fn IoQueueWorkItem(
    item: *mut IO_WORKITEM,
    routine: PIO_WORKITEM_ROUTINE,
    _queue_type: WORK_QUEUE_TYPE,
    context: *mut c_void,
) {
    if !require_irql_at_most(DISPATCH_LEVEL, "IoQueueWorkItem") {
        return;
    }
    let mut s = sched();
    let Some(record) = s.items.get_mut(&addr(item)) else {
        drop(s);
        work_item_misuse(format!("IoQueueWorkItem({item:p}): not an allocated or initialised work item"));
        return;
    };
    if record.queued {
        drop(s);
        work_item_misuse(format!("IoQueueWorkItem({item:p}) while the work item is already queued"));
        return;
    }
    record.queued = true;
    let device = record.device;
    s.work.push_back(QueuedWork {
        item: addr(item),
        routine,
        context: addr(context),
        device,
        owner: current_driver(),
    });
    QUEUE_CHANGED.notify_all();
}

// ---- extended processor state ----

#[derive(Clone, Copy, Debug)]
struct Save {
    area: usize,
    irql: KIRQL,
    mask: u64,
}

thread_local! {
    /// This thread's outstanding `KeSaveExtendedProcessorState` calls, innermost last.
    static XSTATE: RefCell<Vec<Save>> = const { RefCell::new(Vec::new()) };
}

/// How many extended-state saves are outstanding on this thread.
pub fn xstate_depth() -> usize {
    XSTATE.with(|x| x.borrow().len())
}

/// Whether this thread is inside a `KeSaveExtendedProcessorState`/`KeRestoreExtendedProcessorState`
/// pair (SIMD code in the kernel must be).
pub fn xstate_saved() -> bool {
    xstate_depth() > 0
}

/// The union of the state components saved on this thread (`XSTATE_MASK_*`).
pub fn xstate_saved_mask() -> u64 {
    XSTATE.with(|x| x.borrow().iter().fold(0, |m, s| m | s.mask))
}

/// Checks, when a callback returns, that it restored every extended state it saved (the callback
/// entered with `depth` saves outstanding). Records [`Rule::XStateUnbalanced`] and forgets the
/// leftover saves otherwise.
pub fn check_xstate_balanced(depth: usize, what: &str) {
    let now = xstate_depth();
    if now != depth {
        violation(
            Rule::XStateUnbalanced,
            format!("{what} returned with {now} extended-state save(s) outstanding, entered with {depth}"),
        );
        XSTATE.with(|x| x.borrow_mut().truncate(depth));
    }
}

/// `KeSaveExtendedProcessorState`. IRQL <= `DISPATCH_LEVEL`. Records the save on this thread (saves
/// nest; a nested save must not be at a lower IRQL than the one around it: `KeRestoreExtendedProcessorState`
/// remarks). Returns `STATUS_SUCCESS`, or `STATUS_UNSUCCESSFUL` above `DISPATCH_LEVEL` (recorded).
///
/// # Safety
/// `save` must point to an `XSTATE_SAVE` that stays in place until the matching restore.
#[no_mangle]
pub unsafe extern "system" fn KeSaveExtendedProcessorState(mask: u64, save: *mut XSTATE_SAVE) -> NTSTATUS {
    if !require_irql_at_most(DISPATCH_LEVEL, "KeSaveExtendedProcessorState") {
        return STATUS_UNSUCCESSFUL;
    }
    let irql = context::irql();
    let outer = XSTATE.with(|x| x.borrow().last().copied());
    if let Some(outer) = outer.filter(|o| irql < o.irql) {
        violation(
            Rule::XStateUnbalanced,
            format!(
                "nested KeSaveExtendedProcessorState at IRQL {irql}, below the enclosing save's {}",
                outer.irql
            ),
        );
    }
    XSTATE.with(|x| x.borrow_mut().push(Save { area: addr(save), irql, mask }));
    STATUS_SUCCESS
}

/// `KeRestoreExtendedProcessorState`. IRQL <= `DISPATCH_LEVEL`. Must restore this thread's most recent
/// save, at the IRQL of that save (`KeRestoreExtendedProcessorState` remarks: same thread, same IRQL,
/// properly nested).
///
/// # Safety
/// `save` must be the area passed to the matching save.
#[no_mangle]
pub unsafe extern "system" fn KeRestoreExtendedProcessorState(save: *mut XSTATE_SAVE) {
    let irql = context::irql();
    let area = addr(save);
    let top = XSTATE.with(|x| x.borrow().last().copied());
    match top {
        None => violation(
            Rule::XStateUnbalanced,
            format!("KeRestoreExtendedProcessorState({save:p}) without a matching save on this thread"),
        ),
        Some(top) if top.area != area => {
            violation(
                Rule::XStateUnbalanced,
                format!(
                    "KeRestoreExtendedProcessorState({save:p}) is not the innermost save ({:p})",
                    ptr::<c_void>(top.area)
                ),
            );
            XSTATE.with(|x| {
                let mut x = x.borrow_mut();
                if let Some(i) = x.iter().rposition(|s| s.area == area) {
                    x.truncate(i);
                }
            });
        }
        Some(top) => {
            if top.irql != irql {
                violation(
                    Rule::XStateUnbalanced,
                    format!("KeRestoreExtendedProcessorState at IRQL {irql}, saved at IRQL {}", top.irql),
                );
            }
            XSTATE.with(|x| x.borrow_mut().pop());
        }
    }
}

// ---- strings ----

/// `RtlInitUnicodeString`. IRQL <= `DISPATCH_LEVEL` (resident source). Points `destination` at the
/// NUL-terminated `source` (not copied): `Length` = its size in bytes without the terminator,
/// `MaximumLength` = with it; a null source gives an empty string with a null buffer
/// (`RtlInitUnicodeString` docs). Lengths are capped to fit the 16-bit fields.
///
/// # Safety
/// `destination` must be valid for writes; `source` null or a NUL-terminated UTF-16 string.
#[no_mangle]
pub unsafe extern "system" fn RtlInitUnicodeString(destination: *mut UNICODE_STRING, source: *const u16) {
    require_irql_at_most(DISPATCH_LEVEL, "RtlInitUnicodeString");
    let mut units = 0usize;
    if !source.is_null() {
        // SAFETY: the caller passes a NUL-terminated string: every unit up to the terminator is readable.
        while unsafe { source.wrapping_add(units).read() } != 0 {
            units += 1;
        }
    }
    let length = u16::try_from(units * 2).unwrap_or(0xfffc).min(0xfffc);
    let maximum = if source.is_null() { 0 } else { length + 2 };
    let string = UNICODE_STRING { Length: length, MaximumLength: maximum, Buffer: source.cast_mut() };
    // SAFETY: the caller passes a destination valid for writes.
    unsafe { destination.write(string) };
}
