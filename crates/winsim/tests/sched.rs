//! Scheduling, time and extended state: DPC and timer ordering on the virtual clock, periodic timers,
//! waits with timeouts, work items, the seeded generator, one negative test per scheduling rule (a
//! deliberately buggy test driver), and a real-time smoke test. Kernel functions are called through the
//! drivers' own `kernel::ffi::ntos` declarations.
#![allow(non_snake_case)]

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use kernel::ffi::ntos::{
    DelayedWorkQueue, Executive, IoAllocateWorkItem, IoFreeWorkItem, IoInitializeWorkItem, IoQueueWorkItem,
    IoSizeofWorkItem, IoUninitializeWorkItem, KeCancelTimer, KeClearEvent, KeDelayExecutionThread,
    KeFlushQueuedDpcs, KeInitializeDpc, KeInitializeEvent, KeInitializeTimerEx, KeInsertQueueDpc,
    KeQueryInterruptTimePrecise, KeQueryPerformanceCounter, KeReadStateEvent, KeRemoveQueueDpc, KeResetEvent,
    KeRestoreExtendedProcessorState, KeSaveExtendedProcessorState, KeSetEvent, KeSetTimerEx,
    KeWaitForSingleObject, KernelMode, NotificationEvent, NotificationTimer, RtlInitUnicodeString,
    SynchronizationEvent, DEVICE_OBJECT, DISPATCH_LEVEL, DRIVER_OBJECT, FALSE, HIGH_LEVEL, IO_WORKITEM, KDPC,
    KEVENT, KIRQL, KTIMER, LARGE_INTEGER, NTSTATUS, PASSIVE_LEVEL, STATUS_SUCCESS, STATUS_TIMEOUT, TRUE,
    UNICODE_STRING, XSTATE_MASK_AVX, XSTATE_MASK_LEGACY, XSTATE_SAVE,
};
use winsim::clock::{self, Mode, BOOT_SYSTEM_TIME};
use winsim::context::{call_driver, current_driver, irql};
use winsim::{sched, DriverId, Machine, MachineConfig};

const MS: i64 = 10_000;

// ---- what ran ----

#[derive(Clone, Debug)]
struct Run {
    tag: usize,
    irql: KIRQL,
    at: u64,
    driver: Option<DriverId>,
    thread: ThreadId,
    argument: usize,
}

static LOG: Mutex<Vec<Run>> = Mutex::new(Vec::new());

fn record(tag: usize, argument: usize) {
    let run = Run {
        tag,
        irql: irql(),
        at: clock::now(),
        driver: current_driver(),
        thread: std::thread::current().id(),
        argument,
    };
    LOG.lock().unwrap().push(run);
}

fn take_log() -> Vec<Run> {
    std::mem::take(&mut *LOG.lock().unwrap())
}

fn tags(log: &[Run]) -> Vec<usize> {
    log.iter().map(|r| r.tag).collect()
}

unsafe extern "system" fn tag_dpc(
    _: *mut KDPC,
    context: *mut c_void,
    argument1: *mut c_void,
    _: *mut c_void,
) {
    record(context as usize, argument1 as usize);
}

/// Records tag 0xE and signals the event passed as the context.
unsafe extern "system" fn set_event_dpc(_: *mut KDPC, context: *mut c_void, _: *mut c_void, _: *mut c_void) {
    record(0xE, 0);
    // SAFETY: the context is an initialised KEVENT the test keeps alive.
    unsafe { KeSetEvent(context.cast(), 0, FALSE) };
}

unsafe extern "system" fn tag_work(_: *mut DEVICE_OBJECT, context: *mut c_void) {
    record(context as usize, 0);
}

// ---- the test driver ----

unsafe extern "system" fn unload(_: *mut DRIVER_OBJECT) {}

unsafe extern "system" fn entry(driver: *mut DRIVER_OBJECT, _: *mut UNICODE_STRING) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid driver object.
    unsafe { (*driver).DriverUnload = Some(unload) };
    STATUS_SUCCESS
}

fn boot_in(mode: Mode, seed: u64) -> (Machine, DriverId) {
    let mut machine = Machine::boot_with(MachineConfig { mode, seed });
    take_log();
    let id = machine.load_driver("schedtest", entry).expect("test driver loads");
    (machine, id)
}

fn boot() -> (Machine, DriverId) {
    boot_in(Mode::Deterministic, 0)
}

fn names(machine: Machine) -> Vec<&'static str> {
    machine.shutdown().iter().map(|v| v.rule.name()).collect()
}

fn as_driver<R>(id: DriverId, f: impl FnOnce() -> R) -> R {
    call_driver(id, PASSIVE_LEVEL, "test", f)
}

/// A zero-filled kernel object that lives for the rest of the process (as a driver's non-paged
/// memory would for the test).
fn object<T>() -> *mut T {
    // SAFETY: KDPC/KTIMER/KEVENT/XSTATE_SAVE are plain bytes; all-zero is their uninitialised state.
    let value: T = unsafe { std::mem::zeroed() };
    Box::into_raw(Box::new(value))
}

// ---- thin wrappers over the imports, as a driver would call them ----

fn init_dpc(dpc: *mut KDPC, tag: usize) {
    // SAFETY: `dpc` is a live KDPC that is not queued.
    unsafe { KeInitializeDpc(dpc, Some(tag_dpc), tag as *mut c_void) };
}

fn insert(dpc: *mut KDPC, argument: usize) -> u8 {
    // SAFETY: `dpc` is an initialised KDPC that outlives the test.
    unsafe { KeInsertQueueDpc(dpc, argument as *mut c_void, null_mut()) }
}

fn timer() -> *mut KTIMER {
    let t = object::<KTIMER>();
    // SAFETY: a live KTIMER.
    unsafe { KeInitializeTimerEx(t, NotificationTimer) };
    t
}

fn set_timer(t: *mut KTIMER, due: LARGE_INTEGER, period_ms: i32, dpc: *mut KDPC) -> u8 {
    // SAFETY: an initialised KTIMER and a null or initialised KDPC, both alive for the test.
    unsafe { KeSetTimerEx(t, due, period_ms, dpc) }
}

fn cancel(t: *mut KTIMER) -> u8 {
    // SAFETY: an initialised KTIMER.
    unsafe { KeCancelTimer(t) }
}

fn event(kind: i32, signalled: bool) -> *mut KEVENT {
    let e = object::<KEVENT>();
    // SAFETY: a live KEVENT nobody waits on.
    unsafe { KeInitializeEvent(e, kind, u8::from(signalled)) };
    e
}

fn wait(object: *mut c_void, timeout: Option<LARGE_INTEGER>) -> NTSTATUS {
    let mut value = timeout.unwrap_or(0);
    let timeout_ptr: *mut LARGE_INTEGER = if timeout.is_some() { &raw mut value } else { null_mut() };
    // SAFETY: an initialised dispatcher object; the timeout is null or a live LARGE_INTEGER.
    unsafe { KeWaitForSingleObject(object, Executive, KernelMode, FALSE, timeout_ptr) }
}

fn dpc_with(tag: usize) -> *mut KDPC {
    let d = object::<KDPC>();
    init_dpc(d, tag);
    d
}

// ---- deterministic ordering ----

#[test]
fn dpcs_run_in_queue_order_at_dispatch_as_the_driver_that_queued_them() {
    let (machine, id) = boot();
    let dpcs: Vec<*mut KDPC> = (0..3).map(dpc_with).collect();
    as_driver(id, || {
        assert_eq!(insert(dpcs[2], 7), TRUE);
        assert_eq!(insert(dpcs[0], 8), TRUE);
        assert_eq!(insert(dpcs[1], 9), TRUE);
        assert_eq!(insert(dpcs[2], 10), FALSE, "already queued: KeInsertQueueDpc returns FALSE");
        // SAFETY: an initialised KDPC.
        assert_eq!(unsafe { KeRemoveQueueDpc(dpcs[1]) }, TRUE);
        // SAFETY: as above.
        assert_eq!(unsafe { KeRemoveQueueDpc(dpcs[1]) }, FALSE);
    });
    assert!(take_log().is_empty(), "nothing runs until the machine is pumped");
    assert_eq!(sched::pending().dpcs, 2);
    sched::run_until_idle();
    let log = take_log();
    assert_eq!(tags(&log), [2, 0]);
    assert_eq!(log[0].argument, 7, "the first insert's system argument is kept");
    assert!(log.iter().all(|r| r.irql == DISPATCH_LEVEL && r.driver == Some(id)));
    assert!(names(machine).is_empty());
}

#[test]
fn timers_fire_in_due_time_order_on_the_virtual_clock() {
    let (machine, id) = boot();
    let (a, b, c) = (timer(), timer(), timer());
    let (da, db, dc) = (dpc_with(1), dpc_with(2), dpc_with(3));
    as_driver(id, || {
        assert_eq!(set_timer(a, -10 * MS, 0, da), FALSE);
        assert_eq!(set_timer(a, -30 * MS, 0, da), TRUE, "resetting a set timer returns TRUE");
        assert_eq!(set_timer(b, -10 * MS, 0, db), FALSE);
        let absolute = i64::try_from(BOOT_SYSTEM_TIME).unwrap() + 20 * MS;
        assert_eq!(set_timer(c, absolute, 0, dc), FALSE);
    });
    sched::advance(Duration::from_millis(5));
    assert!(take_log().is_empty());
    assert_eq!(sched::pending().timers, 3);
    sched::advance(Duration::from_millis(100));
    let log = take_log();
    assert_eq!(tags(&log), [2, 3, 1]);
    assert_eq!(log.iter().map(|r| r.at).collect::<Vec<_>>(), [100_000, 200_000, 300_000]);
    assert!(log.iter().all(|r| r.irql == DISPATCH_LEVEL && r.driver == Some(id)));
    assert_eq!(clock::now(), 1_050_000);
    as_driver(id, || assert_eq!(cancel(a), FALSE, "an expired one-shot timer is no longer set"));
    assert!(names(machine).is_empty());
}

#[test]
fn a_periodic_timer_fires_every_period_until_cancelled() {
    let (machine, id) = boot();
    let t = timer();
    let d = dpc_with(4);
    as_driver(id, || set_timer(t, -10 * MS, 5, d));
    sched::advance(Duration::from_millis(30));
    let at: Vec<u64> = take_log().iter().map(|r| r.at).collect();
    assert_eq!(at, [100_000, 150_000, 200_000, 250_000, 300_000]);
    as_driver(id, || assert_eq!(cancel(t), TRUE, "a periodic timer stays set"));
    sched::advance(Duration::from_millis(20));
    assert!(take_log().is_empty());
    assert!(names(machine).is_empty());
}

#[test]
fn waits_time_out_in_virtual_time_and_are_satisfied_by_timer_dpcs() {
    let (machine, id) = boot();
    let e = event(NotificationEvent, false);
    as_driver(id, || {
        assert_eq!(wait(e.cast(), Some(-50 * MS)), STATUS_TIMEOUT);
        assert_eq!(clock::now(), 500_000, "the timeout passed in virtual time");
        let t = timer();
        let d = object::<KDPC>();
        // SAFETY: a live KDPC; its context is the live event.
        unsafe { KeInitializeDpc(d, Some(set_event_dpc), e.cast()) };
        set_timer(t, -20 * MS, 0, d);
        assert_eq!(wait(e.cast(), Some(-1000 * MS)), STATUS_SUCCESS);
        assert_eq!(clock::now(), 700_000, "the wait ended when the timer's DPC set the event");
        // SAFETY: an initialised KEVENT.
        assert_eq!(unsafe { KeReadStateEvent(e) }, 1, "a notification event stays signalled");
        assert_eq!(wait(e.cast(), Some(0)), STATUS_SUCCESS);
        // SAFETY: as above.
        assert_eq!(unsafe { KeResetEvent(e) }, 1);
        assert_eq!(wait(e.cast(), Some(0)), STATUS_TIMEOUT, "a zero timeout only tests");
        assert_eq!(clock::now(), 700_000);

        let s = event(SynchronizationEvent, true);
        assert_eq!(wait(s.cast(), Some(0)), STATUS_SUCCESS);
        assert_eq!(wait(s.cast(), Some(0)), STATUS_TIMEOUT, "a synchronization event resets on a wait");
        // SAFETY: an initialised KEVENT.
        assert_eq!(unsafe { KeSetEvent(s, 0, FALSE) }, 0);
        // SAFETY: as above.
        unsafe { KeClearEvent(s) };
        assert_eq!(wait(s.cast(), Some(0)), STATUS_TIMEOUT);

        let t = timer();
        set_timer(t, -10 * MS, 0, null_mut());
        assert_eq!(wait(t.cast(), None), STATUS_SUCCESS, "a timer is a dispatcher object");
        assert_eq!(clock::now(), 800_000);
    });
    assert_eq!(tags(&take_log()), [0xE]);
    assert!(names(machine).is_empty());
}

#[test]
fn work_items_run_at_passive_level_as_the_driver_that_queued_them() {
    let (machine, id) = boot();
    let size = usize::try_from(IoSizeofWorkItem_()).unwrap();
    let caller_allocated: *mut IO_WORKITEM =
        Box::leak(vec![0u64; size.div_ceil(8)].into_boxed_slice()).as_mut_ptr().cast();
    let item = as_driver(id, IoAllocateWorkItem_);
    assert!(!item.is_null());
    call_driver(id, DISPATCH_LEVEL, "test at DISPATCH_LEVEL", || {
        // SAFETY: a work item the driver allocated; the routine is a valid work item routine.
        unsafe { IoQueueWorkItem(item, Some(tag_work), DelayedWorkQueue, 5 as *mut c_void) };
        // SAFETY: caller-allocated memory of IoSizeofWorkItem() bytes that lives for the test.
        unsafe { IoInitializeWorkItem(null_mut(), caller_allocated) };
        // SAFETY: as above.
        unsafe { IoQueueWorkItem(caller_allocated, Some(tag_work), DelayedWorkQueue, 6 as *mut c_void) };
    });
    assert_eq!(sched::pending().work_items, 2);
    sched::run_until_idle();
    let log = take_log();
    assert_eq!(tags(&log), [5, 6]);
    assert!(log.iter().all(|r| r.irql == PASSIVE_LEVEL && r.driver == Some(id)));
    as_driver(id, || {
        // SAFETY: the work item is allocated and no longer queued.
        unsafe { IoFreeWorkItem(item) };
        // SAFETY: initialised and no longer queued.
        unsafe { IoUninitializeWorkItem(caller_allocated) };
    });
    assert!(names(machine).is_empty());
}

#[allow(non_snake_case)]
fn IoSizeofWorkItem_() -> u32 {
    // SAFETY: no preconditions.
    unsafe { IoSizeofWorkItem() }
}

#[allow(non_snake_case)]
fn IoAllocateWorkItem_() -> *mut IO_WORKITEM {
    // SAFETY: a null device object is accepted by the simulation (no device is needed here).
    unsafe { IoAllocateWorkItem(null_mut()) }
}

#[test]
fn delay_execution_moves_virtual_time_and_the_counters_follow() {
    let (machine, id) = boot();
    let t = timer();
    let d = dpc_with(9);
    as_driver(id, || {
        set_timer(t, -5 * MS, 0, d);
        let mut interval: LARGE_INTEGER = -10 * MS;
        // SAFETY: a live LARGE_INTEGER.
        assert_eq!(unsafe { KeDelayExecutionThread(KernelMode, FALSE, &raw mut interval) }, STATUS_SUCCESS);
    });
    let log = take_log();
    assert_eq!(tags(&log), [9]);
    assert_eq!(log[0].at, 50_000);
    assert_eq!(log[0].argument, 50_000, "a timer DPC gets the expiration time's low part");
    let mut frequency: LARGE_INTEGER = 0;
    // SAFETY: a live out-parameter.
    let counter = unsafe { KeQueryPerformanceCounter(&raw mut frequency) };
    assert_eq!((counter, frequency), (100_000, 10_000_000));
    let mut qpc = 0u64;
    // SAFETY: a live out-parameter.
    assert_eq!(unsafe { KeQueryInterruptTimePrecise(&raw mut qpc) }, 100_000);
    assert_eq!(qpc, 100_000);
    assert!(names(machine).is_empty());
}

#[test]
fn the_seeded_generator_repeats_for_a_seed() {
    let draw = |seed| {
        let machine = Machine::boot_with(MachineConfig { mode: Mode::Deterministic, seed });
        let values: Vec<u64> = (0..4).map(|_| clock::random_u64()).collect();
        assert_eq!(clock::seed(), seed);
        assert!(!clock::chance(0, 10) && clock::chance(10, 10));
        drop(machine);
        values
    };
    assert_eq!(draw(42), draw(42));
    assert_ne!(draw(42), draw(43));
}

#[test]
fn rtl_init_unicode_string_counts_bytes_without_the_terminator() {
    let text: Vec<u16> = "rdco\0".encode_utf16().collect();
    let mut s = UNICODE_STRING { Length: 9, MaximumLength: 9, Buffer: null_mut() };
    // SAFETY: a live destination and a NUL-terminated source.
    unsafe { RtlInitUnicodeString(&raw mut s, text.as_ptr()) };
    assert_eq!((s.Length, s.MaximumLength, s.Buffer.cast_const()), (8, 10, text.as_ptr()));
    // SAFETY: a null source is allowed.
    unsafe { RtlInitUnicodeString(&raw mut s, std::ptr::null()) };
    assert_eq!((s.Length, s.MaximumLength, s.Buffer), (0, 0, null_mut()));
}

// ---- negative tests: one buggy driver per rule ----

static BUGGY_OBJECT: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static WAIT_STATUS: AtomicI32 = AtomicI32::new(0);

unsafe extern "system" fn queues_a_dpc_and_never_removes_it(
    driver: *mut DRIVER_OBJECT,
    _: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid driver object.
    unsafe { (*driver).DriverUnload = Some(unload) };
    let d = dpc_with(0xBAD);
    insert(d, 0);
    STATUS_SUCCESS
}

#[test]
fn unloading_with_a_dpc_queued_is_reported() {
    let mut machine = Machine::boot();
    take_log();
    let id = machine.load_driver("buggy", queues_a_dpc_and_never_removes_it).unwrap();
    machine.unload_driver(id).unwrap();
    sched::run_until_idle();
    assert!(take_log().is_empty(), "the unloaded driver's DPC never runs");
    assert_eq!(names(machine), ["sched.dpc_pending_at_unload"]);
}

unsafe extern "system" fn sets_a_timer_and_never_cancels_it(
    driver: *mut DRIVER_OBJECT,
    _: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid driver object.
    unsafe { (*driver).DriverUnload = Some(unload) };
    set_timer(timer(), -10 * MS, 100, dpc_with(0xBAD));
    STATUS_SUCCESS
}

#[test]
fn unloading_with_a_timer_set_is_reported() {
    let mut machine = Machine::boot();
    take_log();
    let id = machine.load_driver("buggy", sets_a_timer_and_never_cancels_it).unwrap();
    machine.unload_driver(id).unwrap();
    sched::advance(Duration::from_millis(50));
    assert!(take_log().is_empty(), "the unloaded driver's timer never fires");
    assert_eq!(names(machine), ["sched.dpc_pending_at_unload"]);
}

unsafe extern "system" fn frees_a_queued_work_item(
    driver: *mut DRIVER_OBJECT,
    _: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid driver object.
    unsafe { (*driver).DriverUnload = Some(unload) };
    let item = IoAllocateWorkItem_();
    // SAFETY: a work item this driver allocated.
    unsafe { IoQueueWorkItem(item, Some(tag_work), DelayedWorkQueue, 0xBAD as *mut c_void) };
    // SAFETY: the bug under test: the item is still queued.
    unsafe { IoFreeWorkItem(item) };
    STATUS_SUCCESS
}

#[test]
fn freeing_a_queued_work_item_is_reported() {
    let mut machine = Machine::boot();
    take_log();
    let id = machine.load_driver("buggy", frees_a_queued_work_item).unwrap();
    sched::run_until_idle();
    assert!(take_log().is_empty(), "the freed work item's routine never runs");
    machine.unload_driver(id).unwrap();
    assert_eq!(names(machine), ["sched.workitem_freed_while_queued"]);
}

unsafe extern "system" fn waiting_dpc(_: *mut KDPC, context: *mut c_void, _: *mut c_void, _: *mut c_void) {
    assert_eq!(wait(context, Some(0)), STATUS_TIMEOUT, "a zero-timeout test is allowed at DISPATCH_LEVEL");
    WAIT_STATUS.store(wait(context, Some(-MS)), Ordering::SeqCst);
}

unsafe extern "system" fn waits_in_a_dpc(driver: *mut DRIVER_OBJECT, _: *mut UNICODE_STRING) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid driver object.
    unsafe { (*driver).DriverUnload = Some(unload) };
    let e = event(NotificationEvent, false);
    let d = object::<KDPC>();
    // SAFETY: a live KDPC; the context is a live event.
    unsafe { KeInitializeDpc(d, Some(waiting_dpc), e.cast()) };
    insert(d, 0);
    STATUS_SUCCESS
}

#[test]
fn waiting_at_dispatch_level_is_reported() {
    let mut machine = Machine::boot();
    let id = machine.load_driver("buggy", waits_in_a_dpc).unwrap();
    sched::run_until_idle();
    assert_eq!(WAIT_STATUS.load(Ordering::SeqCst), STATUS_TIMEOUT);
    assert_eq!(clock::now(), 0, "a wait at DISPATCH_LEVEL does not block");
    machine.unload_driver(id).unwrap();
    assert_eq!(names(machine), ["sched.wait_at_dispatch"]);
}

unsafe extern "system" fn restores_without_saving(
    driver: *mut DRIVER_OBJECT,
    _: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid driver object.
    unsafe { (*driver).DriverUnload = Some(unload) };
    let save = object::<XSTATE_SAVE>();
    // SAFETY: the bug under test: no matching save.
    unsafe { KeRestoreExtendedProcessorState(save) };
    STATUS_SUCCESS
}

#[test]
fn restoring_extended_state_without_a_save_is_reported() {
    let mut machine = Machine::boot();
    machine.load_driver("buggy", restores_without_saving).unwrap();
    assert_eq!(names(machine), ["xstate.unbalanced"]);
}

unsafe extern "system" fn saving_dpc(_: *mut KDPC, context: *mut c_void, _: *mut c_void, _: *mut c_void) {
    // SAFETY: the context is a live XSTATE_SAVE; the bug under test: it is never restored.
    unsafe { KeSaveExtendedProcessorState(XSTATE_MASK_AVX, context.cast()) };
}

unsafe extern "system" fn saves_in_a_dpc_without_restoring(
    driver: *mut DRIVER_OBJECT,
    _: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the I/O manager passes a valid driver object.
    unsafe { (*driver).DriverUnload = Some(unload) };
    let d = object::<KDPC>();
    BUGGY_OBJECT.store(object::<XSTATE_SAVE>().cast(), Ordering::SeqCst);
    // SAFETY: a live KDPC; the context is a live XSTATE_SAVE.
    unsafe { KeInitializeDpc(d, Some(saving_dpc), BUGGY_OBJECT.load(Ordering::SeqCst)) };
    insert(d, 0);
    STATUS_SUCCESS
}

#[test]
fn a_dpc_returning_with_extended_state_saved_is_reported() {
    let mut machine = Machine::boot();
    machine.load_driver("buggy", saves_in_a_dpc_without_restoring).unwrap();
    sched::run_until_idle();
    assert!(!sched::xstate_saved(), "the leftover save is forgotten");
    assert_eq!(names(machine), ["xstate.unbalanced"]);
}

#[test]
fn saving_extended_state_above_dispatch_level_is_reported() {
    let (machine, id) = boot();
    let save = object::<XSTATE_SAVE>();
    // SAFETY: a live save area; the bug under test: HIGH_LEVEL.
    let status = call_driver(id, HIGH_LEVEL, "test at HIGH_LEVEL", || unsafe {
        KeSaveExtendedProcessorState(XSTATE_MASK_AVX, save)
    });
    assert!(status < 0);
    assert!(!sched::xstate_saved());
    assert_eq!(names(machine), ["irql.too_high"]);
}

#[test]
fn extended_state_saves_nest() {
    let (machine, id) = boot();
    let (outer, inner) = (object::<XSTATE_SAVE>(), object::<XSTATE_SAVE>());
    as_driver(id, || {
        // SAFETY: a live save area, restored below.
        assert_eq!(unsafe { KeSaveExtendedProcessorState(XSTATE_MASK_LEGACY, outer) }, STATUS_SUCCESS);
        assert!(sched::xstate_saved());
        call_driver(id, DISPATCH_LEVEL, "nested at DISPATCH_LEVEL", || {
            // SAFETY: a live save area, restored below at the same IRQL.
            assert_eq!(unsafe { KeSaveExtendedProcessorState(XSTATE_MASK_AVX, inner) }, STATUS_SUCCESS);
            assert_eq!(sched::xstate_saved_mask(), XSTATE_MASK_LEGACY | XSTATE_MASK_AVX);
            // SAFETY: the innermost save.
            unsafe { KeRestoreExtendedProcessorState(inner) };
        });
        // SAFETY: the innermost save now.
        unsafe { KeRestoreExtendedProcessorState(outer) };
        assert!(!sched::xstate_saved());
    });
    assert!(names(machine).is_empty());
}

#[test]
fn an_infinite_wait_nothing_can_satisfy_is_reported() {
    let (machine, id) = boot();
    sched::set_deadlock_grace(Duration::from_millis(20));
    let e = event(NotificationEvent, false);
    as_driver(id, || assert_eq!(wait(e.cast(), None), STATUS_TIMEOUT));
    assert_eq!(names(machine), ["sched.wait_deadlock"]);
}

// ---- real time ----

#[test]
fn real_time_mode_runs_dpcs_timers_and_work_items_on_other_threads() {
    let started = Instant::now();
    let (machine, id) = boot_in(Mode::RealTime, 1);
    let me = std::thread::current().id();
    let e = event(SynchronizationEvent, false);
    let d = object::<KDPC>();
    let t = timer();
    let td = dpc_with(0x71);
    let item = as_driver(id, || {
        // SAFETY: a live KDPC; the context is a live event.
        unsafe { KeInitializeDpc(d, Some(set_event_dpc), e.cast()) };
        insert(d, 0);
        assert_eq!(wait(e.cast(), Some(-1000 * MS)), STATUS_SUCCESS, "the DPC ran on a worker");
        set_timer(t, -20 * MS, 0, td);
        assert_eq!(wait(t.cast(), Some(-1000 * MS)), STATUS_SUCCESS, "the timer fired on the timer thread");
        // SAFETY: no preconditions beyond PASSIVE_LEVEL.
        unsafe { KeFlushQueuedDpcs() };
        let item = IoAllocateWorkItem_();
        // SAFETY: a work item this driver allocated.
        unsafe { IoQueueWorkItem(item, Some(tag_work), DelayedWorkQueue, 0x3 as *mut c_void) };
        item
    });
    sched::run_until_idle();
    as_driver(id, || {
        // SAFETY: allocated, and its routine has run.
        unsafe { IoFreeWorkItem(item) };
    });
    let log = take_log();
    assert_eq!(tags(&log), [0xE, 0x71, 0x3]);
    assert!(log.iter().all(|r| r.thread != me && r.driver == Some(id)));
    assert_eq!(log[0].irql, DISPATCH_LEVEL);
    assert_eq!(log[1].irql, DISPATCH_LEVEL);
    assert_eq!(log[2].irql, PASSIVE_LEVEL);
    assert!(log[1].at >= 200_000, "the timer fired no earlier than its due time");
    assert!(names(machine).is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
}
