//! Simulated WSK connection-oriented (TCP client) sockets over real loopback `std::net::TcpStream`s.
//!
//! What is modelled (WDK docs `nc-wsk-pfn_wsk_connect`, `nc-wsk-pfn_wsk_send`,
//! `nc-wsk-pfn_wsk_receive_event`, `nc-wsk-pfn_wsk_disconnect_event`, `nc-wsk-pfn_wsk_disconnect`,
//! `nc-wsk-pfn_wsk_close_socket`):
//! * `WskSocket(SOCK_STREAM, IPPROTO_TCP, WSK_FLAG_CONNECTION_SOCKET)` with a
//!   `WSK_CLIENT_CONNECTION_DISPATCH`; `WSK_SOCKET.Dispatch` is a `WSK_PROVIDER_CONNECTION_DISPATCH`.
//! * `WskBind` must precede `WskConnect` (the docs: "a WSK application must bind a connection-oriented
//!   socket before it calls WskConnect"); the local address must be the wildcard or a simulated host
//!   address, which loopback serves, and the port is the one the host's stack picks at connect.
//! * `WskConnect` connects a real `TcpStream` to the (loopback-mapped) remote and completes inline:
//!   `STATUS_CONNECTION_REFUSED` when nothing listens there.
//! * `WskSend` queues like the datagram sends (completed by [`super::pump`] at `DISPATCH_LEVEL`, or
//!   inline): every byte is written before the IRP completes, as WSK does no send buffering.
//! * With `WSK_EVENT_RECEIVE` enabled, what the peer wrote is indicated through `WskReceiveEvent` at
//!   `DISPATCH_LEVEL` as a chain of `WSK_DATA_INDICATION`s; with [`super::Config::split_receive`] the
//!   bytes are cut at random points into several indications, each over up to three MDLs, so a client's
//!   stream reassembly meets every split. The event must return `STATUS_SUCCESS` and accept every byte:
//!   retaining (`STATUS_PENDING`), refusing and partial acceptance are not simulated
//!   (`sim.not_simulated`); `WskRelease` of a data indication is therefore always `wsk.release_unknown`.
//! * End of stream from the peer calls `WskDisconnectEvent(0)`, a reset `WskDisconnectEvent(WSK_FLAG_ABORTIVE)`,
//!   once, at `DISPATCH_LEVEL`; sends after that fail with `STATUS_CONNECTION_DISCONNECTED`.
//! * `WskDisconnect` shuts the sending side; with `WSK_FLAG_ABORTIVE` both sides (the host's stack then
//!   ends the stream with a FIN, not an RST: `std` cannot set `SO_LINGER` 0). `WskCloseSocket` does the
//!   same and forgets the socket.
//!
//! The IRQL, IRP and socket-lifetime rules are the datagram sockets' (`wsk.dispatch_irql`,
//! `wsk.irp_misuse`, `wsk.irp_completed_twice`, `wsk.socket_leak_at_unload`).
use super::*;
use kernel::ffi::ntos::{
    STATUS_CONNECTION_DISCONNECTED, STATUS_CONNECTION_REFUSED, STATUS_CONNECTION_RESET,
    STATUS_HOST_UNREACHABLE,
};
use kernel::ffi::wsk::{
    WSK_CLIENT_CONNECTION_DISPATCH, WSK_DATA_INDICATION, WSK_EVENT_DISCONNECT, WSK_EVENT_RECEIVE,
    WSK_FLAG_ABORTIVE, WSK_PROVIDER_CONNECTION_DISPATCH,
};

/// The connection socket dispatch table (`WSK_SOCKET.Dispatch`).
static CONNECTION_DISPATCH: WSK_PROVIDER_CONNECTION_DISPATCH = WSK_PROVIDER_CONNECTION_DISPATCH {
    Basic: WSK_PROVIDER_BASIC_DISPATCH {
        WskControlSocket: Some(sim_control_socket),
        WskCloseSocket: Some(sim_close_socket),
    },
    WskBind: Some(sim_tcp_bind),
    WskConnect: Some(sim_connect),
    WskGetLocalAddress: Some(sim_get_local_address),
    WskGetRemoteAddress: Some(sim_get_remote_address),
    WskSend: Some(sim_send),
    WskReceive: Some(sim_receive),
    WskDisconnect: Some(sim_disconnect),
    WskRelease: Some(sim_release_data),
};

/// Creates the socket object and its record; returns its address.
///
/// # Safety
/// `dispatch` is null or a valid `WSK_CLIENT_CONNECTION_DISPATCH`.
pub(super) unsafe fn create(
    client: usize,
    family: ADDRESS_FAMILY,
    context: *mut c_void,
    dispatch: *const c_void,
) -> usize {
    // SAFETY: the caller's contract.
    let d = unsafe { dispatch.cast::<WSK_CLIENT_CONNECTION_DISPATCH>().as_ref() };
    let receive_event = d.and_then(|d| d.WskReceiveEvent).map(|f| f as usize);
    let disconnect_event = d.and_then(|d| d.WskDisconnectEvent).map(|f| f as usize);
    let object = Box::into_raw(Box::new(WSK_SOCKET { Dispatch: (&raw const CONNECTION_DISPATCH).cast() }));
    state().sockets.insert(
        object as usize,
        Socket {
            owner: current_driver(),
            registration: client,
            family,
            context: context as usize,
            receive_from: None,
            events: false,
            udp: None,
            remote: None,
            pktinfo: false,
            connection: Some(Connection {
                bound: None,
                stream: None,
                receive_event,
                disconnect_event,
                finished: false,
            }),
        },
    );
    object as usize
}

/// `SO_WSK_EVENT_CALLBACK` on a connection socket: `WSK_EVENT_RECEIVE` and `WSK_EVENT_DISCONNECT`
/// (with or without `WSK_EVENT_DISABLE`).
pub(super) fn set_events(c: &Connection, events: &mut bool, mask: u32) -> NTSTATUS {
    let known = WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT | WSK_EVENT_DISABLE;
    if mask & !known != 0 || mask & (WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT) == 0 {
        STATUS_INVALID_PARAMETER
    } else if mask & WSK_EVENT_DISABLE != 0 {
        *events = false;
        STATUS_SUCCESS
    } else if c.receive_event.is_none() {
        STATUS_INVALID_PARAMETER
    } else {
        *events = true;
        STATUS_SUCCESS
    }
}

/// Writes a send's bytes on the stream (every byte, or an error). Runs under the state lock.
pub(super) fn write_stream(stream: &TcpStream, buffers: Vec<(Vec<u8>, SocketAddr)>) -> (NTSTATUS, usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent = 0;
    for (data, _) in buffers {
        let mut at = 0;
        while at < data.len() {
            match (&*stream).write(&data[at..]) {
                Ok(0) => return (STATUS_CONNECTION_RESET, sent),
                Ok(n) => {
                    at += n;
                    sent += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return (STATUS_CONNECTION_RESET, sent),
            }
        }
    }
    (STATUS_SUCCESS, sent)
}

fn connection_of(
    st: &mut State,
    key: usize,
) -> Option<(&mut Connection, &mut Option<SocketAddr>, ADDRESS_FAMILY)> {
    let s = st.sockets.get_mut(&key)?;
    let family = s.family;
    Some((s.connection.as_mut()?, &mut s.remote, family))
}

unsafe extern "system" fn sim_tcp_bind(
    socket: *mut WSK_SOCKET,
    local_address: *mut SOCKADDR,
    _flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskBind";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    if !known_socket(socket, ROUTINE) {
        // SAFETY: validated inside.
        return unsafe { finish_inline(irp, ROUTINE, STATUS_INVALID_PARAMETER, 0) };
    }
    // SAFETY: the client passes a socket address of its family's size.
    let requested = unsafe { read_sockaddr(local_address) };
    let status = {
        let mut st = state();
        match (connection_of(&mut st, socket as usize), requested) {
            (None, _) => STATUS_INVALID_PARAMETER,
            (Some((c, _, _)), _) if c.bound.is_some() => STATUS_INVALID_DEVICE_STATE,
            (Some(_), None) => STATUS_INVALID_ADDRESS,
            (Some((_, _, family)), Some(addr)) if (family == AF_INET) != addr.is_ipv4() => {
                STATUS_INVALID_ADDRESS
            }
            (Some((c, _, _)), Some(addr)) => {
                if loopback_for(addr).ip().is_loopback() {
                    c.bound = Some(addr);
                    STATUS_SUCCESS
                } else {
                    drop(st);
                    violation(Rule::NotSimulated, format!("WskBind to {addr}: only loopback is simulated"));
                    STATUS_INVALID_ADDRESS
                }
            }
        }
    };
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, ROUTINE, status, 0) }
}

unsafe extern "system" fn sim_connect(
    socket: *mut WSK_SOCKET,
    remote_address: *mut SOCKADDR,
    _flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskConnect";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    if !known_socket(socket, ROUTINE) {
        // SAFETY: validated inside.
        return unsafe { finish_inline(irp, ROUTINE, STATUS_INVALID_PARAMETER, 0) };
    }
    let key = socket as usize;
    // SAFETY: the client passes a socket address of its family's size.
    let remote = unsafe { read_sockaddr(remote_address) };
    let target = {
        let mut st = state();
        match (connection_of(&mut st, key), remote) {
            (None, _) => Err(STATUS_INVALID_PARAMETER),
            (Some((c, _, _)), _) if c.bound.is_none() || c.stream.is_some() => {
                Err(STATUS_INVALID_DEVICE_STATE)
            }
            (Some(_), None) => Err(STATUS_INVALID_ADDRESS),
            (Some((_, _, family)), Some(addr)) if (family == AF_INET) != addr.is_ipv4() => {
                Err(STATUS_INVALID_ADDRESS)
            }
            (Some(_), Some(addr)) => Ok(addr),
        }
    };
    let status = match target {
        Err(status) => status,
        Ok(addr) if !loopback_for(addr).ip().is_loopback() => {
            violation(Rule::NotSimulated, format!("WskConnect to {addr}: only loopback is simulated"));
            STATUS_HOST_UNREACHABLE
        }
        Ok(addr) => match TcpStream::connect_timeout(&loopback_for(addr), Duration::from_secs(2)) {
            Ok(stream) if stream.set_nonblocking(true).is_ok() => {
                let _ = stream.set_nodelay(true);
                let mut st = state();
                match connection_of(&mut st, key) {
                    Some((c, remote, _)) => {
                        c.stream = Some(Arc::new(stream));
                        *remote = Some(addr);
                        STATUS_SUCCESS
                    }
                    None => STATUS_INVALID_DEVICE_STATE,
                }
            }
            Ok(_) => STATUS_INVALID_DEVICE_STATE,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => STATUS_CONNECTION_REFUSED,
            Err(_) => STATUS_HOST_UNREACHABLE,
        },
    };
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, ROUTINE, status, 0) }
}

unsafe extern "system" fn sim_get_remote_address(
    socket: *mut WSK_SOCKET,
    remote_address: *mut SOCKADDR,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskGetRemoteAddress";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    if !known_socket(socket, ROUTINE) {
        // SAFETY: validated inside.
        return unsafe { finish_inline(irp, ROUTINE, STATUS_INVALID_PARAMETER, 0) };
    }
    let remote = state().sockets.get(&(socket as usize)).and_then(|s| s.remote);
    let status = match remote {
        Some(addr) if !remote_address.is_null() => {
            // SAFETY: the client passes a buffer of its socket's address size.
            unsafe { write_sockaddr(addr, remote_address) };
            STATUS_SUCCESS
        }
        Some(_) => STATUS_INVALID_PARAMETER,
        None => STATUS_INVALID_DEVICE_STATE,
    };
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, ROUTINE, status, 0) }
}

unsafe extern "system" fn sim_send(
    socket: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    _flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskSend";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    let known = known_socket(socket, ROUTINE);
    // SAFETY: validated inside.
    if !unsafe { accept_irp(irp, ROUTINE) } {
        return STATUS_INVALID_PARAMETER;
    }
    let key = socket as usize;
    let prepared = {
        let mut st = state();
        match connection_of(&mut st, key) {
            _ if !known => Err(STATUS_INVALID_PARAMETER),
            None => Err(STATUS_INVALID_PARAMETER),
            Some((c, _, _)) if c.stream.is_none() => Err(STATUS_INVALID_DEVICE_STATE),
            Some((c, _, _)) if c.finished => Err(STATUS_CONNECTION_DISCONNECTED),
            Some((_, remote, _)) => Ok(remote.unwrap_or(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0))),
        }
    }
    .and_then(|to| {
        // SAFETY: the client's WSK_BUF stays valid until completion.
        let data = unsafe { read_wsk_buf(buffer) }.ok_or(STATUS_INVALID_PARAMETER)?;
        Ok(vec![(data, to)])
    });
    match prepared {
        // SAFETY: accepted above.
        Ok(bytes) => unsafe { submit_send(key, irp, bytes) },
        Err(status) => {
            // SAFETY: accepted above.
            unsafe { complete(irp, status, 0, irql()) };
            status
        }
    }
}

unsafe extern "system" fn sim_receive(
    _socket: *mut WSK_SOCKET,
    _buffer: *mut WSK_BUF,
    _flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    violation(Rule::NotSimulated, "WskReceive on a connection socket (use the receive event)");
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, "WskReceive", STATUS_NOT_SUPPORTED, 0) }
}

unsafe extern "system" fn sim_disconnect(
    socket: *mut WSK_SOCKET,
    buffer: *mut WSK_BUF,
    flags: u32,
    irp: *mut IRP,
) -> NTSTATUS {
    const ROUTINE: &str = "WskDisconnect";
    check_irql(ROUTINE, DISPATCH_LEVEL);
    if !known_socket(socket, ROUTINE) {
        // SAFETY: validated inside.
        return unsafe { finish_inline(irp, ROUTINE, STATUS_INVALID_PARAMETER, 0) };
    }
    if !buffer.is_null() {
        violation(Rule::NotSimulated, "WskDisconnect with a final buffer");
        // SAFETY: validated inside.
        return unsafe { finish_inline(irp, ROUTINE, STATUS_NOT_SUPPORTED, 0) };
    }
    let stream = state().sockets.get(&(socket as usize)).and_then(|s| s.connection.as_ref()?.stream.clone());
    let status = match stream {
        Some(stream) => {
            let how = if flags & WSK_FLAG_ABORTIVE != 0 { Shutdown::Both } else { Shutdown::Write };
            let _ = stream.shutdown(how);
            STATUS_SUCCESS
        }
        None => STATUS_INVALID_DEVICE_STATE,
    };
    // SAFETY: validated inside.
    unsafe { finish_inline(irp, ROUTINE, status, 0) }
}

unsafe extern "system" fn sim_release_data(
    socket: *mut WSK_SOCKET,
    indication: *mut WSK_DATA_INDICATION,
) -> NTSTATUS {
    check_irql("WskRelease", DISPATCH_LEVEL);
    violation(
        Rule::WskReleaseUnknown,
        format!("WskRelease({socket:p}, {indication:p}): not a retained data indication (the simulated receive event never retains)"),
    );
    STATUS_INVALID_PARAMETER
}

type ReceiveEvent =
    unsafe extern "system" fn(*mut c_void, u32, *mut WSK_DATA_INDICATION, usize, *mut usize) -> NTSTATUS;
type DisconnectEvent = unsafe extern "system" fn(*mut c_void, u32) -> NTSTATUS;

/// Reads every connected socket with events on and indicates the bytes; reports end of stream and
/// resets through the disconnect event. Returns the number of indications plus disconnects.
pub(super) fn pump_streams() -> usize {
    type Target = (usize, Arc<TcpStream>, DriverId, usize, usize, Option<usize>);
    let targets: Vec<Target> = state()
        .sockets
        .iter()
        .filter(|(_, s)| s.events)
        .filter_map(|(&k, s)| {
            let c = s.connection.as_ref().filter(|c| !c.finished)?;
            Some((k, c.stream.clone()?, s.owner?, s.context, c.receive_event?, c.disconnect_event))
        })
        .collect();
    if targets.is_empty() {
        // Every `wsk::pump` (each bench round, each test poll) comes here: no 64 KiB buffer unless a
        // connection can be read.
        return 0;
    }
    let mut total = 0;
    let mut buffer = vec![0u8; 65_536];
    for (socket, stream, owner, context, receive, disconnect) in targets {
        for _round in 0..4 {
            match (&*stream).read(&mut buffer) {
                Ok(0) => {
                    total += finish(socket, owner, context, disconnect, 0);
                    break;
                }
                Ok(n) => {
                    total += 1;
                    indicate(socket, owner, context, receive, &buffer[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    total += finish(socket, owner, context, disconnect, WSK_FLAG_ABORTIVE);
                    break;
                }
            }
        }
    }
    total
}

/// Marks the connection finished and calls the disconnect event once (unless the socket closed or its
/// events were disabled meanwhile).
fn finish(socket: usize, owner: DriverId, context: usize, disconnect: Option<usize>, flags: u32) -> usize {
    {
        let mut st = state();
        match st.sockets.get_mut(&socket) {
            Some(s) if s.events => match s.connection.as_mut() {
                Some(c) if !c.finished => c.finished = true,
                _ => return 0,
            },
            _ => return 0,
        }
    }
    let Some(disconnect) = disconnect else { return 1 };
    *crate::lock(&DELIVERING) = Some((std::thread::current().id(), socket));
    // SAFETY: stored from the client's WSK_CLIENT_CONNECTION_DISPATCH.WskDisconnectEvent.
    let callback = unsafe { std::mem::transmute::<usize, DisconnectEvent>(disconnect) };
    let _ = call_driver(owner, DISPATCH_LEVEL, "WskDisconnectEvent", || {
        // SAFETY: the client registered this callback for this socket.
        unsafe { callback(context as *mut c_void, flags) }
    });
    *crate::lock(&DELIVERING) = None;
    1
}

/// Indicates `data` as a chain of data indications (cut at random points with `split_receive`).
fn indicate(socket: usize, owner: DriverId, context: usize, receive: usize, data: &[u8]) {
    let mut blocks: Vec<*mut Indication> = Vec::new();
    {
        let mut st = state();
        let split = st.config.split_receive;
        let from = st
            .sockets
            .get(&socket)
            .and_then(|s| s.remote)
            .unwrap_or(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0));
        let mut at = 0;
        while at < data.len() {
            let take = if split { st.rng.range(1, data.len() - at + 1) } else { data.len() - at };
            let rng = if split { Some(&mut st.rng) } else { None };
            blocks.push(build_indication(&data[at..at + take], from, None, rng));
            at += take;
        }
    }
    for pair in blocks.windows(2) {
        // SAFETY: both blocks were just built and are owned by the simulation.
        unsafe { (*pair[0]).indication.Next = pair[1].cast() };
    }
    {
        let mut delivering = crate::lock(&DELIVERING);
        if !state().sockets.get(&socket).is_some_and(|s| s.events) {
            drop(delivering);
            blocks.into_iter().for_each(free_indication);
            return;
        }
        *delivering = Some((std::thread::current().id(), socket));
    }
    // SAFETY: stored from the client's WSK_CLIENT_CONNECTION_DISPATCH.WskReceiveEvent.
    let callback = unsafe { std::mem::transmute::<usize, ReceiveEvent>(receive) };
    // The Indication block starts with a WSK_DATAGRAM_INDICATION, whose first two members (Next,
    // Buffer) are laid out exactly as WSK_DATA_INDICATION's.
    let head = blocks[0].cast::<WSK_DATA_INDICATION>();
    let mut accepted = data.len();
    let status = call_driver(owner, DISPATCH_LEVEL, "WskReceiveEvent", || {
        // SAFETY: the client registered this callback for this socket; the chain is valid until it
        // returns.
        unsafe {
            callback(context as *mut c_void, WSK_FLAG_AT_DISPATCH_LEVEL, head, data.len(), &raw mut accepted)
        }
    });
    *crate::lock(&DELIVERING) = None;
    {
        let mut st = state();
        st.stats.indications += 1;
        st.stats.indicated += blocks.len() as u64;
    }
    if status != STATUS_SUCCESS || accepted != data.len() {
        violation(
            Rule::NotSimulated,
            format!(
                "WskReceiveEvent returned {status:#x} accepting {accepted} of {} bytes; only STATUS_SUCCESS accepting everything is simulated",
                data.len()
            ),
        );
    }
    blocks.into_iter().for_each(free_indication);
}
