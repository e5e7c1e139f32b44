//! The drivers' WSK wrapper (`kernel::wsk`) against the simulated provider: a tiny test driver creates
//! `UdpSocket`s on loopback through `WskClient`, sends (`send_to`, batched `send_messages`), receives,
//! retains and releases, exhausts its IRP pool, and closes; every test ends with a clean verifier and no
//! leaks at unload.
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use kernel::ffi::mdl::MDL;
use kernel::ffi::ntos::{
    NTSTATUS, STATUS_CANCELLED, STATUS_DEVICE_BUSY, STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use kernel::wsk::{
    Datagram, DatagramChain, Receiver, ReleaseBatch, RetainDecision, SendBuffer, SendCompletion, SocketAddr,
    SocketConfig, UdpSocket, WskClient,
};
use ndistest::wsk_client::{as_driver, boot, mdl_over, names};
use winsim::wsk::{self as sim, Config, Faults};
use winsim::DriverId;

const CONSUME: u8 = 0;
const RETAIN: u8 = 1;
const REJECT: u8 = 2;
/// Retain, then drop the datagrams inside the callback (their release is deferred).
const RETAIN_AND_DROP: u8 = 3;

/// A received datagram: bytes, sender, number of segments.
type Seen = (Vec<u8>, Option<SocketAddr>, usize);

#[derive(Default)]
struct Rx {
    mode: AtomicU8,
    seen: Mutex<Vec<Seen>>,
    kept: Mutex<Vec<Datagram>>,
}

impl Receiver for Rx {
    fn on_datagrams(&self, mut chain: DatagramChain<'_>) -> RetainDecision {
        for d in chain.iter() {
            let segments: Vec<&[u8]> = d.segments().collect();
            let bytes = segments.concat();
            assert_eq!(bytes.len(), d.len());
            self.seen.lock().unwrap().push((bytes, d.remote(), segments.len()));
        }
        match self.mode.load(Ordering::SeqCst) {
            RETAIN => {
                let (decision, datagrams) = chain.retain();
                self.kept.lock().unwrap().extend(datagrams);
                decision
            }
            RETAIN_AND_DROP => {
                let (decision, datagrams) = chain.retain();
                drop(datagrams);
                decision
            }
            REJECT => RetainDecision::NOT_ACCEPTED,
            _ => RetainDecision::CONSUMED,
        }
    }
}

#[derive(Default)]
struct Tx {
    done: Mutex<Vec<(NTSTATUS, usize, u32)>>,
}

impl SendCompletion for Tx {
    type Context = u32;
    fn on_send_complete(&self, status: NTSTATUS, bytes: usize, context: u32) {
        self.done.lock().unwrap().push((status, bytes, context));
    }
}

type Socket = UdpSocket<Rx, Tx>;

fn client(id: DriverId) -> WskClient {
    as_driver(id, WskClient::new).expect("WskRegister + capture")
}

fn socket(id: DriverId, client: &WskClient, local: SocketAddr, config: SocketConfig) -> Socket {
    as_driver(id, || UdpSocket::bind(client, &local, config, Rx::default(), Tx::default())).expect("socket")
}

fn v4() -> SocketAddr {
    SocketAddr::localhost_v4(0)
}

fn seen(s: &Socket) -> Vec<Seen> {
    s.receiver().seen.lock().unwrap().clone()
}

fn done(s: &Socket) -> Vec<(NTSTATUS, usize, u32)> {
    s.completion().done.lock().unwrap().clone()
}

fn wait(what: &str, cond: impl FnMut() -> bool) {
    assert!(sim::pump_until(Duration::from_secs(1), cond), "timed out waiting for {what}");
}

/// Payload bytes and the MDLs over them, kept alive until the sends complete.
struct Buffers {
    /// Kept alive, never read.
    #[allow(dead_code)]
    bytes: Vec<Vec<u8>>,
    /// Boxed: the MDLs' addresses must not move while the provider may read them.
    #[allow(clippy::vec_box)]
    mdls: Vec<Box<MDL>>,
}

/// `payload` behind a 3-byte header it skips (offset 3), split over two MDLs when `split`.
fn buffer(payload: &[u8], split: bool, keep: &mut Buffers) -> SendBuffer {
    let mut head = vec![0xEE; 3];
    let cut = if split { payload.len() / 2 } else { payload.len() };
    head.extend_from_slice(&payload[..cut]);
    let mut tail = payload[cut..].to_vec();
    let mut first = mdl_over(&mut head);
    if split {
        let mut second = mdl_over(&mut tail);
        first.Next = &raw mut *second;
        keep.mdls.push(second);
    }
    let p: *mut MDL = &raw mut *first;
    keep.mdls.push(first);
    keep.bytes.push(head);
    keep.bytes.push(tail);
    // SAFETY: the MDLs and bytes live in `keep` until the test has seen every completion.
    unsafe { SendBuffer::new(p, 3, payload.len()) }.expect("valid buffer")
}

fn buffers() -> Buffers {
    Buffers { bytes: Vec::new(), mdls: Vec::new() }
}

fn close(id: DriverId, s: Socket) {
    as_driver(id, || s.close()).map_err(|(_, status)| status).expect("close");
}

#[test]
fn send_messages_batch_then_retain_and_release() {
    let (machine, id) = boot();
    let c = client(id);
    let a = socket(id, &c, v4(), SocketConfig::default());
    let b = socket(id, &c, v4(), SocketConfig::default());
    assert!(a.supports_send_messages());
    assert_ne!(b.local_addr().port(), 0, "the provider picked a port");
    b.receiver().mode.store(RETAIN, Ordering::SeqCst);

    let payloads: Vec<Vec<u8>> =
        vec![b"one".to_vec(), (0..=255u8).cycle().take(1400).collect(), b"three!".to_vec()];
    let mut keep = buffers();
    let bufs: Vec<SendBuffer> =
        payloads.iter().enumerate().map(|(i, p)| buffer(p, i == 1, &mut keep)).collect();
    as_driver(id, || a.send_messages(&b.local_addr(), &bufs, 7)).expect("batch accepted");
    wait("three datagrams", || seen(&b).len() == 3 && done(&a).len() == 1);

    assert_eq!(
        done(&a),
        vec![(STATUS_SUCCESS, 3 + 1400 + 6, 7)],
        "one completion for the batch, with its context"
    );
    let got: Vec<Vec<u8>> = seen(&b).into_iter().map(|s| s.0).collect();
    assert_eq!(got, payloads);
    assert!(seen(&b).iter().all(|s| s.1 == Some(a.local_addr())));
    assert_eq!(b.retained(), 3);
    assert_eq!(sim::retained(), 3);

    let mut kept: Vec<Datagram> = std::mem::take(&mut *b.receiver().kept.lock().unwrap());
    assert_eq!(kept.len(), 3);
    // Retained datagrams: bytes, parts and in-place modification.
    for (d, p) in kept.iter_mut().zip(&payloads) {
        assert_eq!(d.segments().collect::<Vec<_>>().concat(), *p);
        assert_eq!(d.buffer().length, p.len());
        assert!(!d.buffer().mdl.is_null());
        assert_eq!(d.remote(), Some(a.local_addr()));
        for seg in d.segments_mut() {
            for x in seg.iter_mut() {
                *x ^= 0xFF;
            }
        }
        let flipped: Vec<u8> = p.iter().map(|x| x ^ 0xFF).collect();
        assert_eq!(d.segments().collect::<Vec<_>>().concat(), flipped);
    }
    // One alone, two in one batched WskRelease.
    let first = kept.remove(0);
    as_driver(id, || first.release());
    assert_eq!(sim::retained(), 2);
    let released_before = sim::stats().released;
    as_driver(id, || {
        let mut batch = ReleaseBatch::new();
        kept.drain(..).for_each(|d| batch.push(d));
        batch.release();
    });
    assert_eq!(sim::stats().released, released_before + 2);
    assert_eq!(b.retained(), 0);
    assert_eq!(sim::retained(), 0);

    close(id, a);
    close(id, b);
    as_driver(id, || drop(c));
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn send_to_completes_once_per_send_with_its_context() {
    let (machine, id) = boot();
    let c = client(id);
    let a = socket(id, &c, v4(), SocketConfig::default());
    let b = socket(id, &c, v4(), SocketConfig::default());
    let mut keep = buffers();
    for ctx in 1..=5u32 {
        let payload = vec![u8::try_from(ctx).unwrap(); ctx as usize * 10];
        let buf = buffer(&payload, ctx % 2 == 0, &mut keep);
        as_driver(id, || a.send_to(&b.local_addr(), buf, ctx)).expect("accepted");
    }
    assert_eq!(a.sends_in_flight(), 5);
    wait("five datagrams and completions", || seen(&b).len() == 5 && done(&a).len() == 5);
    sim::pump();
    let mut d = done(&a);
    d.sort_by_key(|x| x.2);
    assert_eq!(d, (1..=5u32).map(|c| (STATUS_SUCCESS, c as usize * 10, c)).collect::<Vec<_>>());
    assert_eq!(a.sends_in_flight(), 0);
    assert_eq!(sim::retained(), 0, "consumed datagrams go back to the provider");
    close(id, a);
    close(id, b);
    as_driver(id, || drop(c));
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn irp_pool_exhaustion_is_device_busy_then_recovers() {
    let (machine, id) = boot();
    let c = client(id);
    let a = socket(id, &c, v4(), SocketConfig { send_irps: 2, batch: 4 });
    let b = socket(id, &c, v4(), SocketConfig::default());
    assert_eq!(a.send_capacity(), 2);
    let mut keep = buffers();
    let to = b.local_addr();
    for ctx in 1..=2 {
        let buf = buffer(b"x", false, &mut keep);
        as_driver(id, || a.send_to(&to, buf, ctx)).expect("accepted");
    }
    let buf = buffer(b"y", false, &mut keep);
    let err = as_driver(id, || a.send_to(&to, buf, 3)).expect_err("pool empty");
    assert_eq!((err.status, err.context), (STATUS_DEVICE_BUSY, 3), "the context comes back");
    let err = as_driver(id, || a.send_messages(&to, &[buf], 4)).expect_err("pool empty");
    assert_eq!(err.status, STATUS_DEVICE_BUSY);
    let too_many = [buf; 5];
    let err = as_driver(id, || a.send_messages(&to, &too_many, 5)).expect_err("batch too large");
    assert_eq!(err.status, STATUS_INVALID_PARAMETER);

    wait("the two completions", || done(&a).len() == 2);
    assert_eq!(a.sends_in_flight(), 0);
    as_driver(id, || a.send_to(&to, buf, 6)).expect("recovered");
    as_driver(id, || a.send_messages(&to, &[buf, buf], 7)).expect("recovered");
    wait("the rest", || done(&a).len() == 4 && seen(&b).len() == 5);
    let contexts: Vec<u32> = done(&a).iter().map(|d| d.2).collect();
    assert_eq!(contexts, vec![1, 2, 6, 7]);
    close(id, a);
    close(id, b);
    as_driver(id, || drop(c));
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn ipv6_loopback() {
    let (machine, id) = boot();
    let c = client(id);
    let a = socket(id, &c, SocketAddr::localhost_v6(0), SocketConfig::default());
    let b = socket(id, &c, SocketAddr::localhost_v6(0), SocketConfig::default());
    assert!(!a.local_addr().is_ipv4());
    let mut keep = buffers();
    let buf = buffer(b"over ::1", true, &mut keep);
    let err = as_driver(id, || a.send_to(&v4(), buf, 0)).expect_err("family mismatch");
    assert_eq!(err.status, STATUS_INVALID_PARAMETER);
    as_driver(id, || a.send_to(&b.local_addr(), buf, 1)).expect("accepted");
    wait("the datagram", || seen(&b).len() == 1 && done(&a).len() == 1);
    assert_eq!(seen(&b)[0].0, b"over ::1");
    assert_eq!(seen(&b)[0].1, Some(a.local_addr()));
    assert_eq!(done(&a), vec![(STATUS_SUCCESS, 8, 1)]);
    close(id, a);
    close(id, b);
    as_driver(id, || drop(c));
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn close_is_refused_while_datagrams_are_retained() {
    let (machine, id) = boot();
    let c = client(id);
    let a = socket(id, &c, v4(), SocketConfig::default());
    let b = socket(id, &c, v4(), SocketConfig::default());
    b.receiver().mode.store(RETAIN, Ordering::SeqCst);
    let mut keep = buffers();
    let buf = buffer(b"kept", false, &mut keep);
    as_driver(id, || a.send_to(&b.local_addr(), buf, 1)).expect("accepted");
    wait("the datagram", || seen(&b).len() == 1);
    let (b, status) = as_driver(id, || b.close()).expect_err("a datagram is retained");
    assert_eq!(status, STATUS_DEVICE_BUSY);
    // The socket still receives after the refused close.
    as_driver(id, || a.send_to(&b.local_addr(), buf, 2)).expect("accepted");
    wait("the second datagram", || seen(&b).len() == 2);
    let kept: Vec<Datagram> = std::mem::take(&mut *b.receiver().kept.lock().unwrap());
    as_driver(id, || drop(kept));
    assert_eq!(b.retained(), 0);
    close(id, b);
    close(id, a);
    as_driver(id, || drop(c));
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new(), "no wsk.close_with_retained");
}

#[test]
fn close_cancels_pending_sends_and_no_callback_runs_after() {
    let (machine, id) = boot();
    let c = client(id);
    let a = socket(id, &c, v4(), SocketConfig::default());
    let b = socket(id, &c, v4(), SocketConfig::default());
    let to = b.local_addr();
    let mut keep = buffers();
    sim::set_faults(Faults { stall_ms: 10_000, ..Faults::NONE });
    let buf = buffer(b"never", false, &mut keep);
    as_driver(id, || a.send_to(&to, buf, 9)).expect("accepted");
    sim::pump();
    assert!(done(&a).is_empty(), "stalled");
    let before = sim::stats().send_completions;
    close(id, a);
    sim::set_faults(Faults::NONE);
    sim::pump();
    assert_eq!(sim::stats().send_completions, before, "cancelled, not completed by the pump");
    assert_eq!(sim::pending_sends(), 0, "the close cancelled the send");
    close(id, b);
    as_driver(id, || drop(c));
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn cancelled_completion_reaches_the_callback_before_close_returns() {
    // A completion handler that outlives the socket: records into a static.
    static RECORD: Mutex<Vec<(NTSTATUS, u32)>> = Mutex::new(Vec::new());
    struct Shared;
    impl SendCompletion for Shared {
        type Context = u32;
        fn on_send_complete(&self, status: NTSTATUS, _bytes: usize, context: u32) {
            RECORD.lock().unwrap().push((status, context));
        }
    }
    let (machine, id) = boot();
    let c = client(id);
    let b = socket(id, &c, v4(), SocketConfig::default());
    RECORD.lock().unwrap().clear();
    let a =
        as_driver(id, || UdpSocket::bind(&c, &v4(), SocketConfig::default(), Rx::default(), Shared)).unwrap();
    let mut keep = buffers();
    sim::set_faults(Faults { stall_ms: 10_000, ..Faults::NONE });
    let buf = buffer(b"late", false, &mut keep);
    as_driver(id, || a.send_to(&b.local_addr(), buf, 11)).expect("accepted");
    as_driver(id, || drop(a));
    assert_eq!(*RECORD.lock().unwrap(), vec![(STATUS_CANCELLED, 11)]);
    sim::set_faults(Faults::NONE);
    sim::pump();
    assert_eq!(RECORD.lock().unwrap().len(), 1, "exactly once");
    close(id, b);
    as_driver(id, || drop(c));
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn split_receives_and_releases_deferred_from_the_callback() {
    let (machine, id) = boot();
    sim::configure(Config { split_receive: true, ..Config::default() });
    let c = client(id);
    let a = socket(id, &c, v4(), SocketConfig::default());
    let b = socket(id, &c, v4(), SocketConfig::default());
    b.receiver().mode.store(RETAIN_AND_DROP, Ordering::SeqCst);
    let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let mut keep = buffers();
    let buf = buffer(&payload, false, &mut keep);
    as_driver(id, || a.send_to(&b.local_addr(), buf, 1)).expect("accepted");
    wait("the datagram", || seen(&b).len() == 1);
    let s = &seen(&b)[0];
    assert_eq!(s.0, payload, "reassembled through the MDL chain with the offset honoured");
    assert_eq!(s.2, 3, "one segment per MDL");
    assert_eq!(b.retained(), 1, "dropped inside the callback: deferred");
    assert_eq!(sim::retained(), 1);
    as_driver(id, || b.flush_releases());
    assert_eq!(b.retained(), 0);
    assert_eq!(sim::retained(), 0);
    // Rejected datagrams are counted by the provider.
    b.receiver().mode.store(REJECT, Ordering::SeqCst);
    as_driver(id, || a.send_to(&b.local_addr(), buf, 2)).expect("accepted");
    wait("the rejected datagram", || seen(&b).len() == 2);
    assert_eq!(sim::stats().not_accepted, 1);
    b.receiver().mode.store(CONSUME, Ordering::SeqCst);
    close(id, a);
    close(id, b);
    as_driver(id, || drop(c));
    sim::configure(Config::default());
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn inline_completion_runs_inside_send_to() {
    let (machine, id) = boot();
    sim::configure(Config { send_completion: sim::SendCompletion::Inline, ..Config::default() });
    let c = client(id);
    let a = socket(id, &c, v4(), SocketConfig { send_irps: 1, batch: 1 });
    let b = socket(id, &c, v4(), SocketConfig::default());
    let mut keep = buffers();
    let buf = buffer(b"now", false, &mut keep);
    for ctx in 1..=3 {
        // One IRP: each send completes inline and returns it to the pool before the next.
        as_driver(id, || a.send_to(&b.local_addr(), buf, ctx)).expect("accepted");
        assert_eq!(done(&a).len(), ctx as usize);
    }
    wait("received", || seen(&b).len() == 3);
    close(id, a);
    close(id, b);
    as_driver(id, || drop(c));
    sim::configure(Config::default());
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn failed_bind_cleans_up() {
    let (machine, id) = boot();
    let c = client(id);
    let a = socket(id, &c, v4(), SocketConfig::default());
    let taken = a.local_addr();
    let err =
        as_driver(id, || UdpSocket::bind(&c, &taken, SocketConfig::default(), Rx::default(), Tx::default()))
            .expect_err("address in use");
    assert_eq!(err, sim::STATUS_ADDRESS_ALREADY_ASSOCIATED);
    let err = as_driver(id, || {
        UdpSocket::bind(&c, &v4(), SocketConfig { send_irps: 0, batch: 1 }, Rx::default(), Tx::default())
    })
    .expect_err("no IRPs");
    assert_eq!(err, STATUS_INVALID_PARAMETER);
    close(id, a);
    as_driver(id, || drop(c));
    assert_eq!(names(machine), Vec::<&str>::new(), "the half-made socket was closed and its IRPs freed");
}

#[test]
fn datagram_round_trips_through_a_raw_return_context() {
    let (machine, id) = boot();
    let c = client(id);
    let a = socket(id, &c, v4(), SocketConfig::default());
    let b = socket(id, &c, v4(), SocketConfig::default());
    b.receiver().mode.store(RETAIN, Ordering::SeqCst);
    let mut keep = buffers();
    let buf = buffer(b"return me", true, &mut keep);
    as_driver(id, || a.send_to(&b.local_addr(), buf, 1)).expect("accepted");
    wait("the datagram", || seen(&b).len() == 1);
    let d = b.receiver().kept.lock().unwrap().pop().expect("retained");
    let raw = d.into_raw();
    assert_eq!(b.retained(), 1, "still retained while lent out");
    // SAFETY: `raw` came from into_raw of a datagram of `b`, taken back once.
    let d = unsafe { Datagram::from_raw(raw, &b) };
    assert_eq!(d.segments().collect::<Vec<_>>().concat(), b"return me");
    as_driver(id, || d.release());
    assert_eq!((b.retained(), sim::retained()), (0, 0));
    close(id, a);
    close(id, b);
    as_driver(id, || drop(c));
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn poller_thread_delivers_and_completes() {
    let (machine, id) = boot();
    sim::configure(Config { threaded: true, ..Config::default() });
    let c = client(id);
    let a = socket(id, &c, v4(), SocketConfig { send_irps: 4, batch: 8 });
    let b = socket(id, &c, v4(), SocketConfig::default());
    b.receiver().mode.store(RETAIN, Ordering::SeqCst);
    let mut keep = buffers();
    let payloads: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    let bufs: Vec<SendBuffer> = payloads.iter().map(|p| buffer(p, true, &mut keep)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    for (sent, chunk) in (0u32..).zip(bufs.chunks(4)) {
        // Retry on backpressure: the poller thread completes sends concurrently.
        loop {
            match as_driver(id, || a.send_messages(&b.local_addr(), chunk, sent)) {
                Ok(()) => break,
                Err(e) => {
                    assert_eq!(e.status, STATUS_DEVICE_BUSY);
                    assert!(std::time::Instant::now() < deadline, "the pool never refilled");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    while (seen(&b).len() < 16 || done(&a).len() < 4 || sim::retained() < 16)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(seen(&b).len(), 16);
    let mut contexts: Vec<u32> = done(&a).iter().map(|d| d.2).collect();
    contexts.sort_unstable();
    assert_eq!(contexts, vec![0, 1, 2, 3]);
    assert!(done(&a).iter().all(|d| d.0 == STATUS_SUCCESS));
    let kept: Vec<Datagram> = std::mem::take(&mut *b.receiver().kept.lock().unwrap());
    assert_eq!(kept.len(), 16);
    as_driver(id, || {
        let mut batch = ReleaseBatch::new();
        for d in kept {
            batch.push(d);
        }
    });
    as_driver(id, || b.flush_releases());
    assert_eq!(b.retained(), 0);
    close(id, a);
    close(id, b);
    sim::configure(Config::default());
    as_driver(id, || drop(c));
    drop(keep);
    assert_eq!(names(machine), Vec::<&str>::new());
}
