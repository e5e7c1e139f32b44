//! The drivers' WSK TCP wrapper (`kernel::wsk::TcpSocket`) against the simulated provider: a tiny test
//! driver connects to a real `std::net::TcpListener` on loopback, sends (completions with their
//! contexts), receives the stream through the receive event (split into many indications and MDLs),
//! sees the peer's close and reset through the disconnect event, is refused by a closed port, and
//! closes; every test ends with a clean verifier and no leaks at unload.
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use kernel::ffi::mdl::MDL;
use kernel::ffi::ntos::{
    NTSTATUS, STATUS_CONNECTION_REFUSED, STATUS_DEVICE_BUSY, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS,
};
use kernel::wsk::{SendBuffer, SendCompletion, SocketAddr, StreamData, StreamReceiver, TcpSocket, WskClient};
use ndistest::wsk_client::{as_driver, boot, mdl_over, names};
use winsim::wsk::{self as sim, Config};
use winsim::DriverId;

#[derive(Default)]
struct Rx {
    bytes: Mutex<Vec<u8>>,
    /// (indications, segments) per receive event.
    shapes: Mutex<Vec<(usize, usize)>>,
    disconnects: Mutex<Vec<bool>>,
    /// Refuse the stream (return false) once this many bytes arrived.
    refuse_after: Mutex<Option<usize>>,
}

impl StreamReceiver for Rx {
    fn on_data(&self, data: StreamData<'_>) -> bool {
        let segments: Vec<&[u8]> = data.segments().collect();
        let bytes = segments.concat();
        assert_eq!(bytes.len(), data.len());
        self.shapes.lock().unwrap().push((data.indications(), segments.len()));
        let mut all = self.bytes.lock().unwrap();
        all.extend_from_slice(&bytes);
        !self.refuse_after.lock().unwrap().is_some_and(|n| all.len() >= n)
    }
    fn on_disconnect(&self, abortive: bool) {
        self.disconnects.lock().unwrap().push(abortive);
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

type Socket = TcpSocket<Rx, Tx>;

fn client(id: DriverId) -> WskClient {
    as_driver(id, WskClient::new).expect("WskRegister + capture")
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, SocketAddr::localhost_v4(port))
}

fn connect(id: DriverId, c: &WskClient, remote: SocketAddr, irps: usize) -> Result<Socket, NTSTATUS> {
    as_driver(id, || {
        TcpSocket::connect(c, &SocketAddr::v4([0; 4], 0), &remote, irps, Rx::default(), Tx::default())
    })
}

fn accept(l: &TcpListener) -> TcpStream {
    let (s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

fn wait(what: &str, cond: impl FnMut() -> bool) {
    assert!(sim::pump_until(Duration::from_secs(2), cond), "timed out waiting for {what}");
}

fn received(s: &Socket) -> Vec<u8> {
    s.receiver().bytes.lock().unwrap().clone()
}

fn done(s: &Socket) -> Vec<(NTSTATUS, usize, u32)> {
    s.completion().done.lock().unwrap().clone()
}

/// Bytes and the MDL over them, kept until completion (boxed: the MDL must not move).
struct Buf {
    _bytes: Vec<u8>,
    _mdl: Box<MDL>,
}

fn buf(payload: &[u8]) -> (Buf, SendBuffer) {
    let mut bytes = payload.to_vec();
    let mut mdl = mdl_over(&mut bytes);
    let p: *mut MDL = &raw mut *mdl;
    // SAFETY: the MDL and bytes live in the returned Buf until the test saw the completion.
    let sb = unsafe { SendBuffer::new(p, 0, payload.len()) }.expect("valid buffer");
    (Buf { _bytes: bytes, _mdl: mdl }, sb)
}

fn close(id: DriverId, s: Socket) {
    as_driver(id, || s.close()).map_err(|(_, status)| status).expect("close");
}

#[test]
fn connect_send_receive_and_graceful_close_both_ways() {
    let (machine, id) = boot();
    let c = client(id);
    let (l, remote) = listener();
    let s = connect(id, &c, remote, 4).expect("connected");
    let mut peer = accept(&l);
    assert_eq!(s.remote_addr(), remote);
    assert_eq!(peer.peer_addr().unwrap().port(), s.local_addr().port(), "the local port is the real one");

    // Driver -> peer: two sends, in order, each completing once with its context.
    let (b1, sb1) = buf(b"hello ");
    let (b2, sb2) = buf(&[7u8; 3000]);
    as_driver(id, || s.send(sb1, 1)).expect("send 1");
    as_driver(id, || s.send(sb2, 2)).expect("send 2");
    wait("two completions", || done(&s).len() == 2);
    assert_eq!(done(&s), vec![(STATUS_SUCCESS, 6, 1), (STATUS_SUCCESS, 3000, 2)]);
    let mut got = vec![0u8; 3006];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got[..6], b"hello ");
    assert!(got[6..].iter().all(|&x| x == 7));
    assert_eq!(s.sends_in_flight(), 0);
    drop((b1, b2));

    // Peer -> driver.
    let message: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    peer.write_all(&message).unwrap();
    wait("5000 bytes", || received(&s).len() == 5000);
    assert_eq!(received(&s), message);

    // Graceful disconnect from the driver: the peer reads end of stream.
    as_driver(id, || s.disconnect()).expect("disconnect");
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // Then the peer closes: one non-abortive disconnect event, and sends are refused.
    peer.shutdown(Shutdown::Both).unwrap();
    drop(peer);
    wait("disconnect event", || s.is_disconnected());
    assert_eq!(*s.receiver().disconnects.lock().unwrap(), vec![false]);
    let (b3, sb3) = buf(b"late");
    let refused = as_driver(id, || s.send(sb3, 3)).unwrap_err();
    assert_eq!((refused.status, refused.context), (STATUS_INVALID_DEVICE_STATE, 3));
    drop(b3);

    close(id, s);
    as_driver(id, || drop(c));
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn split_indications_deliver_every_byte_in_order() {
    let (machine, id) = boot();
    sim::configure(Config { split_receive: true, ..Config::default() });
    let c = client(id);
    let (l, remote) = listener();
    let s = connect(id, &c, remote, 1).expect("connected");
    let mut peer = accept(&l);
    let message: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 256) as u8).collect();
    for chunk in message.chunks(997) {
        peer.write_all(chunk).unwrap();
        sim::pump();
    }
    wait("every byte", || received(&s).len() == message.len());
    assert_eq!(received(&s), message);
    let shapes = s.receiver().shapes.lock().unwrap().clone();
    assert!(shapes.iter().any(|&(ind, _)| ind > 1), "several indications per event: {shapes:?}");
    assert!(shapes.iter().any(|&(ind, segs)| segs > ind), "several MDLs per indication: {shapes:?}");
    drop(peer);
    close(id, s);
    as_driver(id, || drop(c));
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn connect_to_a_closed_port_is_refused_and_leaves_nothing_open() {
    let (machine, id) = boot();
    let c = client(id);
    let (l, remote) = listener();
    drop(l);
    let err = connect(id, &c, remote, 2).unwrap_err();
    assert_eq!(err, STATUS_CONNECTION_REFUSED);
    // Bad arguments are refused before anything is created.
    assert_eq!(connect(id, &c, remote, 0).unwrap_err(), STATUS_INVALID_PARAMETER);
    let v6 = SocketAddr::localhost_v6(remote.port());
    let mismatched = as_driver(id, || {
        TcpSocket::connect(&c, &SocketAddr::v4([0; 4], 0), &v6, 1, Rx::default(), Tx::default())
    });
    assert_eq!(mismatched.unwrap_err(), STATUS_INVALID_PARAMETER);
    as_driver(id, || drop(c));
    assert_eq!(names(machine), Vec::<&str>::new(), "no socket, IRP or pool block leaked");
}

#[test]
fn peer_reset_is_an_abortive_disconnect_and_irp_pool_is_bounded() {
    let (machine, id) = boot();
    let c = client(id);
    let (l, remote) = listener();
    let s = connect(id, &c, remote, 1).expect("connected");
    let peer = accept(&l);
    assert_eq!(s.send_capacity(), 1);
    // One IRP: the second send is refused until the first completes.
    let (b1, sb1) = buf(b"one");
    let (b2, sb2) = buf(b"two");
    as_driver(id, || s.send(sb1, 1)).expect("first");
    let busy = as_driver(id, || s.send(sb2, 2)).unwrap_err();
    assert_eq!((busy.status, busy.context), (STATUS_DEVICE_BUSY, 2));
    wait("completion", || done(&s).len() == 1);
    as_driver(id, || s.send(sb2, 2)).expect("after the completion");
    wait("second completion", || done(&s).len() == 2);
    drop((b1, b2));
    // The driver's "one" and "two" are unread: closing the peer now makes the host's stack reset the
    // connection (RST) instead of ending the stream.
    drop(peer);
    wait("disconnect event", || s.is_disconnected());
    assert_eq!(*s.receiver().disconnects.lock().unwrap(), vec![true], "one abortive disconnect");
    close(id, s);
    as_driver(id, || drop(c));
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn a_refused_stream_is_reset_and_sends_are_refused() {
    let (machine, id) = boot();
    let c = client(id);
    let (l, remote) = listener();
    let s = connect(id, &c, remote, 2).expect("connected");
    let mut peer = accept(&l);
    *s.receiver().refuse_after.lock().unwrap() = Some(10);
    peer.write_all(&[1u8; 10]).unwrap();
    wait("the refusal", || s.is_disconnected());
    // The reset reaches the peer: its read ends (EOF or reset), and later bytes are never indicated.
    let mut scratch = [0u8; 16];
    let ended = matches!(peer.read(&mut scratch), Ok(0) | Err(_));
    assert!(ended, "the peer's stream is still open");
    let _ = peer.write_all(&[2u8; 10]);
    sim::pump_until(Duration::from_millis(100), || false);
    assert_eq!(received(&s), vec![1u8; 10]);
    assert!(
        s.receiver().disconnects.lock().unwrap().is_empty(),
        "the receiver's own reset is not reported back"
    );
    let (b, sb) = buf(b"late");
    let refused = as_driver(id, || s.send(sb, 9)).unwrap_err();
    assert_eq!(refused.status, STATUS_INVALID_DEVICE_STATE);
    drop(b);
    close(id, s);
    as_driver(id, || drop(c));
    assert_eq!(names(machine), Vec::<&str>::new(), "the abort IRP completed and was freed");
}
