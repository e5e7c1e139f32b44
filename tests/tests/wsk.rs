//! WSK over real loopback UDP sockets, driven by the raw client in `ndistest::wsk_client`: the provider's
//! behaviour, fault injection, and one negative test per WSK verifier rule. Every test is single-threaded
//! ([`wsk::pump`]) except the one for the poller thread.
#![allow(non_snake_case)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ptr::null_mut;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kernel::ffi::mdl::MDL;
use kernel::ffi::ntos::{
    IoAllocateIrp, IoCompleteRequest, IoFreeIrp, IoReuseIrp, HIGH_LEVEL, IO_NO_INCREMENT, IRP, NTSTATUS,
    PASSIVE_LEVEL, STATUS_CANCELLED, STATUS_DATA_NOT_ACCEPTED, STATUS_HOST_UNREACHABLE,
    STATUS_MORE_PROCESSING_REQUIRED, STATUS_PENDING, STATUS_SUCCESS,
};
use kernel::ffi::wsk::{
    WskDeregister, WskIoctl, WskReleaseProviderNPI, WskSetOption, IPPROTO_IP, IP_PKTINFO, WSK_BUF,
    WSK_BUF_LIST, WSK_DATAGRAM_INDICATION, WSK_FLAG_AT_DISPATCH_LEVEL, WSK_SOCKET,
};
use winsim::context::call_driver;
use winsim::wsk::{self, Config, Faults, SendCompletion};
use winsim::DriverId;

use ndistest::wsk_client::*;

// ---- positive tests ----

#[test]
fn loopback_send_receive_retain_and_release() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, a_addr) = udp_socket(&client, v4(), 0xA);
    let (b, b_addr) = udp_socket(&client, v4(), 0xB);
    RECEIVE_STATUS.store(STATUS_PENDING, Ordering::SeqCst);

    assert_eq!(send_to(id, a, b_addr, b"hello, wsk", 1), STATUS_PENDING, "sends complete asynchronously");
    assert!(completions().is_empty(), "nothing completes before the pump");
    wait("the datagram", || !received().is_empty());

    let c = completions();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0], (1, STATUS_SUCCESS, 10, 2), "bytes sent, completed at DISPATCH_LEVEL");
    let r = received();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].data, b"hello, wsk");
    assert_eq!(r[0].from, Some(a_addr));
    assert_eq!(r[0].context, 0xB);
    assert_eq!(r[0].irql, 2);
    assert_ne!(r[0].flags & WSK_FLAG_AT_DISPATCH_LEVEL, 0);
    assert_eq!(wsk::retained(), 1, "STATUS_PENDING retains the indication");

    assert_eq!(release(id, b, r[0].indication), STATUS_SUCCESS);
    assert_eq!(wsk::retained(), 0);
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn send_messages_sends_each_buffer_as_a_datagram() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    let payloads: Vec<Vec<u8>> = vec![b"one".to_vec(), vec![7u8; 1400], b"three!".to_vec()];
    let mut storage_bytes: Vec<Vec<u8>> = payloads.clone();
    let mut mdls: Vec<Box<MDL>> = storage_bytes.iter_mut().map(|p| mdl_over(p)).collect();
    let mut list: Vec<Box<WSK_BUF_LIST>> = mdls
        .iter_mut()
        .zip(&payloads)
        .map(|(m, p)| {
            Box::new(WSK_BUF_LIST {
                Next: null_mut(),
                Buffer: WSK_BUF { Mdl: &raw mut **m, Offset: 0, Length: p.len() },
            })
        })
        .collect();
    for i in (0..list.len() - 1).rev() {
        list[i].Next = &raw mut *list[i + 1];
    }
    let mut remote = storage(b_addr);
    let f = dgram(a).WskSendMessages.unwrap();
    let status = as_driver(id, || {
        let irp = new_irp(9 | FREE);
        // SAFETY: an open socket; the list, MDLs and bytes outlive the send.
        unsafe { f(a, &raw mut *list[0], 0, (&raw mut remote).cast(), 0, null_mut(), irp) }
    });
    assert_eq!(status, STATUS_PENDING);
    wait("three datagrams", || received().len() == 3);
    let got: Vec<Vec<u8>> = received().into_iter().map(|r| r.data).collect();
    assert_eq!(got, payloads);
    assert_eq!(completions(), vec![(9, STATUS_SUCCESS, 3 + 1400 + 6, 2)]);
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn ipv6_loopback() {
    let (machine, id) = boot();
    let client = register(id);
    let any6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0);
    let (a, a_addr) = udp_socket(&client, any6, 1);
    let (b, b_addr) = udp_socket(&client, any6, 2);
    assert!(a_addr.is_ipv6() && b_addr.is_ipv6());
    assert_eq!(send_to(id, a, b_addr, b"over ::1", 5), STATUS_PENDING);
    wait("the datagram", || !received().is_empty());
    let r = received();
    assert_eq!(r[0].data, b"over ::1");
    assert_eq!(r[0].from, Some(a_addr));
    assert_eq!(wsk::retained(), 0, "STATUS_SUCCESS hands the indication back");
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn received_datagrams_split_across_mdls() {
    let (machine, id) = boot();
    wsk::configure(Config { split_receive: true, ..Config::default() });
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for i in 0..5 {
        assert_eq!(send_to(id, a, b_addr, &payload, i + 1), STATUS_PENDING);
    }
    wait("five datagrams", || received().len() == 5);
    for r in received() {
        assert_eq!(r.data, payload, "reassembled through the MDL chain");
        assert_eq!(r.mdls, 3);
        assert!(r.offset > 0, "a nonzero offset into the first MDL");
    }
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
}

/// Sends `count` numbered datagrams from a to b and pumps until everything settled; returns the stats.
fn run_faulty(faults: Faults, count: u32) -> (wsk::Stats, Vec<u32>) {
    let (machine, id) = boot();
    wsk::set_faults(faults);
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    for i in 0..count {
        assert_eq!(send_to(id, a, b_addr, &i.to_le_bytes(), i as usize + 1), STATUS_PENDING);
        if i % 16 == 15 {
            wsk::pump();
        }
    }
    wait("all completions", || completions().len() == count as usize);
    let expected = wsk::stats().transmitted;
    wait("every transmitted datagram", || received().len() as u64 == expected);
    let order: Vec<u32> =
        received().iter().map(|r| u32::from_le_bytes(r.data[..4].try_into().unwrap())).collect();
    let stats = wsk::stats();
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
    (stats, order)
}

#[test]
fn loss_and_duplication_are_counted_and_repeatable() {
    let faults = Faults { loss: 0.2, duplicate: 0.1, seed: 42, ..Faults::NONE };
    let (stats, order) = run_faulty(faults, 200);
    assert_eq!(stats.submitted, 200);
    assert!(stats.lost > 10 && stats.lost < 80, "{stats:?}");
    assert!(stats.duplicated > 3 && stats.duplicated < 50, "{stats:?}");
    assert_eq!(stats.transmitted, 200 - stats.lost + stats.duplicated);
    assert_eq!(order.len() as u64, stats.transmitted);
    let (again, order_again) = run_faulty(faults, 200);
    assert_eq!((stats.lost, stats.duplicated), (again.lost, again.duplicated), "same seed, same faults");
    assert_eq!(order, order_again);
}

#[test]
fn reorder_swaps_neighbours() {
    let (stats, order) = run_faulty(Faults { reorder: 1.0, ..Faults::NONE }, 4);
    assert_eq!(order, vec![1, 0, 3, 2]);
    assert_eq!(stats.reordered, 2);
}

#[test]
fn send_error_stall_and_backpressure() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);

    wsk::set_faults(Faults { send_error: Some(STATUS_HOST_UNREACHABLE), ..Faults::NONE });
    assert_eq!(send_to(id, a, b_addr, b"x", 1), STATUS_PENDING);
    wsk::pump();
    assert_eq!(completions(), vec![(1, STATUS_HOST_UNREACHABLE, 0, 2)]);

    wsk::set_faults(Faults { stall_ms: 60, ..Faults::NONE });
    assert_eq!(send_to(id, a, b_addr, b"y", 2), STATUS_PENDING);
    wsk::pump();
    assert_eq!(completions().len(), 1, "stalled");
    winsim::sched::advance(Duration::from_millis(30));
    wsk::pump();
    assert_eq!(completions().len(), 1, "still stalled after 30 ms");
    winsim::sched::advance(Duration::from_millis(40));
    wsk::pump();
    assert_eq!(completions().len(), 2);

    wsk::set_faults(Faults { backpressure: Some(1), ..Faults::NONE });
    for tag in 3..6 {
        assert_eq!(send_to(id, a, b_addr, b"z", tag), STATUS_PENDING);
    }
    for expected in 3..6 {
        wsk::pump();
        assert_eq!(completions().len(), expected, "one completion per pump");
        assert_eq!(wsk::pending_sends(), 5 - expected);
    }
    wait("received", || received().len() == 4);
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn inline_send_completion() {
    let (machine, id) = boot();
    wsk::configure(Config { send_completion: SendCompletion::Inline, ..Config::default() });
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    assert_eq!(send_to(id, a, b_addr, b"now", 1), STATUS_SUCCESS);
    assert_eq!(completions(), vec![(1, STATUS_SUCCESS, 3, PASSIVE_LEVEL)], "completed inside the call");
    wait("received", || received().len() == 1);
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn poller_thread_delivers_without_pumping() {
    let (machine, id) = boot();
    wsk::configure(Config { threaded: true, ..Config::default() });
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    assert_eq!(send_to(id, a, b_addr, b"threaded", 1), STATUS_PENDING);
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while (received().is_empty() || completions().is_empty()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(received().len(), 1);
    assert_eq!(completions().len(), 1);
    close(id, a);
    close(id, b);
    wsk::configure(Config::default());
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
}

// ---- negative tests: one per rule ----

#[test]
fn release_twice_is_release_unknown() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    RECEIVE_STATUS.store(STATUS_PENDING, Ordering::SeqCst);
    send_to(id, a, b_addr, b"twice", 1);
    wait("the datagram", || received().len() == 1);
    let ind = received()[0].indication;
    assert_eq!(release(id, b, ind), STATUS_SUCCESS);
    assert_ne!(release(id, b, ind), STATUS_SUCCESS);
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), vec!["wsk.release_unknown"]);
}

#[test]
fn release_of_a_consumed_indication_is_release_unknown() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    send_to(id, a, b_addr, b"consumed", 1);
    wait("the datagram", || received().len() == 1);
    assert_ne!(release(id, b, received()[0].indication), STATUS_SUCCESS);
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), vec!["wsk.release_unknown"]);
}

#[test]
fn completing_a_completed_irp_is_irp_completed_twice() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let close_fn = dgram(a).Basic.WskCloseSocket.unwrap();
    as_driver(id, || {
        let irp = new_irp(0);
        // SAFETY: an open socket and our IRP.
        assert_eq!(unsafe { close_fn(a, irp) }, STATUS_SUCCESS);
        // SAFETY: the simulation validates the IRP: it is completed already.
        unsafe { IoCompleteRequest(irp, IO_NO_INCREMENT) };
        // SAFETY: ours.
        unsafe { IoFreeIrp(irp) };
    });
    deregister(client);
    assert_eq!(names(machine), vec!["wsk.irp_completed_twice"]);
}

#[test]
fn irp_misuse() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    let send = dgram(a).WskSendTo.unwrap();
    let mut data = *b"data";
    let mut mdl = mdl_over(&mut data);
    let mut buf = WSK_BUF { Mdl: &raw mut *mdl, Offset: 0, Length: 4 };
    let mut remote = storage(b_addr);
    as_driver(id, || {
        let irp = new_irp(1);
        // SAFETY: valid arguments.
        let first = unsafe { send(a, &raw mut buf, 0, (&raw mut remote).cast(), 0, null_mut(), irp) };
        assert_eq!(first, STATUS_PENDING);
        // The same IRP again while the first send holds it, and a free while it is in flight.
        // SAFETY: as above; the simulation refuses the in-flight IRP.
        let second = unsafe { send(a, &raw mut buf, 0, (&raw mut remote).cast(), 0, null_mut(), irp) };
        assert_ne!(second, STATUS_PENDING);
        // SAFETY: refused by the simulation (the provider holds it).
        unsafe { IoFreeIrp(irp) };
    });
    wsk::pump();
    assert_eq!(completions().len(), 1, "the first send still completes once");
    // A completion routine that does not stop completion of an IoAllocateIrp IRP.
    COMPLETION_RESULT.store(STATUS_SUCCESS, Ordering::SeqCst);
    let irp = as_driver(id, || new_irp(2));
    // SAFETY: valid arguments.
    as_driver(id, || unsafe { send(a, &raw mut buf, 0, (&raw mut remote).cast(), 0, null_mut(), irp) });
    wsk::pump();
    COMPLETION_RESULT.store(STATUS_MORE_PROCESSING_REQUIRED, Ordering::SeqCst);
    // SAFETY: ours again.
    as_driver(id, || unsafe { IoFreeIrp(irp) });
    // The first IRP is still allocated: free it now.
    wait("received", || received().len() == 2);
    close(id, a);
    close(id, b);
    deregister(client);
    let found = names(machine);
    assert_eq!(found.iter().filter(|n| **n == "wsk.irp_misuse").count(), 3, "{found:?}");
    // The first IRP was never freed by the client (its IoFreeIrp was refused): a pool leak.
    assert!(found.contains(&"pool.leak_at_unload"), "{found:?}");
    assert_eq!(found.len(), 4, "{found:?}");
}

#[test]
fn unloading_with_an_open_socket_is_socket_leak() {
    let (mut machine, id) = boot();
    let client = register(id);
    let (_a, _) = udp_socket(&client, v4(), 1);
    machine.unload_driver(id).unwrap();
    let found = names(machine);
    assert_eq!(found, vec!["wsk.socket_leak_at_unload"], "{found:?}");
}

#[test]
fn send_above_dispatch_level_is_dispatch_irql() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    let send = dgram(a).WskSendTo.unwrap();
    let mut data = *b"high";
    let mut mdl = mdl_over(&mut data);
    let mut buf = WSK_BUF { Mdl: &raw mut *mdl, Offset: 0, Length: 4 };
    let mut remote = storage(b_addr);
    let irp = as_driver(id, || new_irp(1 | FREE));
    call_driver(id, HIGH_LEVEL, "test at HIGH_LEVEL", || {
        // SAFETY: valid arguments (at the wrong IRQL).
        unsafe { send(a, &raw mut buf, 0, (&raw mut remote).cast(), 0, null_mut(), irp) }
    });
    wait("completion", || completions().len() == 1);
    wait("received", || received().len() == 1);
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), vec!["wsk.dispatch_irql"]);
}

#[test]
fn closing_with_retained_indications_is_close_with_retained() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    RECEIVE_STATUS.store(STATUS_PENDING, Ordering::SeqCst);
    send_to(id, a, b_addr, b"kept", 1);
    wait("the datagram", || received().len() == 1);
    let release_fn = dgram(b).WskRelease.unwrap();
    close(id, b);
    // Released late (after the close, through the table kept from before): accepted, so the only
    // finding is the close.
    let indication = received()[0].indication as *mut WSK_DATAGRAM_INDICATION;
    // SAFETY: the socket object is gone; the simulation only compares its address.
    let status = as_driver(id, || unsafe { release_fn(b, indication) });
    assert_eq!(status, STATUS_SUCCESS);
    close(id, a);
    deregister(client);
    assert_eq!(names(machine), vec!["wsk.close_with_retained"]);
}

/// `WskControlSocket(WskSetOption | WskIoctl, ...)` with an IRP.
fn control(
    id: DriverId,
    socket: *mut WSK_SOCKET,
    request: i32,
    code: u32,
    level: u32,
    input: &mut [u8],
) -> NTSTATUS {
    let f = dgram(socket).Basic.WskControlSocket.unwrap();
    let (status, _) = sync_op(id, |irp| {
        // SAFETY: an open socket; the input is valid for the call.
        unsafe {
            f(
                socket,
                request,
                code,
                level,
                input.len(),
                input.as_mut_ptr().cast(),
                0,
                null_mut(),
                null_mut(),
                irp,
            )
        }
    });
    status
}

#[test]
fn remote_address_and_pktinfo() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, a_addr) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    let remote = storage(b_addr);
    // SAFETY: SOCKADDR_STORAGE is plain data; its first 16 bytes are the SOCKADDR_IN.
    let mut remote_bytes =
        unsafe { std::slice::from_raw_parts((&raw const remote).cast::<u8>(), 16) }.to_vec();
    assert_eq!(
        control(id, a, WskIoctl, wsk::SIO_WSK_SET_REMOTE_ADDRESS, 0, &mut remote_bytes),
        STATUS_SUCCESS
    );
    assert_eq!(control(id, b, WskSetOption, IP_PKTINFO, IPPROTO_IP, &mut 1u32.to_le_bytes()), STATUS_SUCCESS);
    // A send without a destination goes to the socket's remote address.
    let mut data = *b"to the default remote";
    let mut mdl = mdl_over(&mut data);
    let mut buf = WSK_BUF { Mdl: &raw mut *mdl, Offset: 0, Length: data.len() };
    let send = dgram(a).WskSendTo.unwrap();
    as_driver(id, || {
        let irp = new_irp(1 | FREE);
        // SAFETY: valid arguments; no destination.
        unsafe { send(a, &raw mut buf, 0, null_mut(), 0, null_mut(), irp) }
    });
    wait("the datagram", || received().len() == 1);
    let r = &received()[0];
    assert_eq!(r.data, b"to the default remote");
    assert_eq!(r.from, Some(a_addr));
    assert_eq!(r.pktinfo, Some(Ipv4Addr::LOCALHOST));
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
}

/// Sends `data` from `a` to `to` on `irp` (which the caller owns).
fn send_on(id: DriverId, a: *mut WSK_SOCKET, to: SocketAddr, buf: &mut WSK_BUF, irp: *mut IRP) -> NTSTATUS {
    let mut remote = storage(to);
    let send = dgram(a).WskSendTo.unwrap();
    // SAFETY: valid arguments; the caller keeps the buffer alive until completion.
    as_driver(id, || unsafe { send(a, buf, 0, (&raw mut remote).cast(), 0, null_mut(), irp) })
}

#[test]
fn one_irp_reused_for_many_sends() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    let mut data = *b"again";
    let mut mdl = mdl_over(&mut data);
    let mut buf = WSK_BUF { Mdl: &raw mut *mdl, Offset: 0, Length: 5 };
    let irp = as_driver(id, || new_irp(1));
    for round in 1..=3 {
        assert_eq!(send_on(id, a, b_addr, &mut buf, irp), STATUS_PENDING);
        wait("completion", || completions().len() == round);
        as_driver(id, || {
            // SAFETY: completed; ours again.
            unsafe { IoReuseIrp(irp, STATUS_SUCCESS) };
            set_routine(irp, 1);
        });
    }
    // SAFETY: ours.
    as_driver(id, || unsafe { IoFreeIrp(irp) });
    wait("received", || received().len() == 3);
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn passing_a_completed_irp_without_reuse_is_irp_misuse() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    let mut data = *b"stale";
    let mut mdl = mdl_over(&mut data);
    let mut buf = WSK_BUF { Mdl: &raw mut *mdl, Offset: 0, Length: 5 };
    let irp = as_driver(id, || new_irp(1));
    assert_eq!(send_on(id, a, b_addr, &mut buf, irp), STATUS_PENDING);
    wait("completion", || completions().len() == 1);
    assert_ne!(send_on(id, a, b_addr, &mut buf, irp), STATUS_PENDING, "refused");
    // SAFETY: ours.
    as_driver(id, || unsafe { IoFreeIrp(irp) });
    close(id, a);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), vec!["wsk.irp_misuse"]);
}

#[test]
fn an_irp_without_completion_routine_is_irp_misuse() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    let mut data = *b"bare";
    let mut mdl = mdl_over(&mut data);
    let mut buf = WSK_BUF { Mdl: &raw mut *mdl, Offset: 0, Length: 4 };
    // SAFETY: plain allocation.
    let irp = as_driver(id, || unsafe { IoAllocateIrp(1, 0) });
    assert_eq!(send_on(id, a, b_addr, &mut buf, irp), STATUS_PENDING);
    wsk::pump();
    // SAFETY: completed (nothing stopped its completion; the simulation keeps it for the client).
    as_driver(id, || unsafe { IoFreeIrp(irp) });
    close(id, a);
    close(id, b);
    deregister(client);
    // Once when it is passed (no routine), once when it completes (nothing returns
    // STATUS_MORE_PROCESSING_REQUIRED).
    assert_eq!(names(machine), vec!["wsk.irp_misuse", "wsk.irp_misuse"]);
}

#[test]
fn deregistering_with_an_open_socket_is_socket_leak() {
    let (machine, id) = boot();
    let mut client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    as_driver(id, || {
        // SAFETY: captured in register().
        unsafe { WskReleaseProviderNPI(&raw mut *client.registration) };
        // SAFETY: registered; a socket is still open.
        unsafe { WskDeregister(&raw mut *client.registration) };
    });
    close(id, a);
    assert_eq!(names(machine), vec!["wsk.socket_leak_at_unload"]);
}

#[test]
fn close_cancels_pending_sends_and_not_accepted_is_counted() {
    let (machine, id) = boot();
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    RECEIVE_STATUS.store(STATUS_DATA_NOT_ACCEPTED, Ordering::SeqCst);
    assert_eq!(send_to(id, a, b_addr, b"refused", 1), STATUS_PENDING);
    wait("the datagram", || received().len() == 1);
    assert_eq!(wsk::stats().not_accepted, 1);
    assert_eq!(wsk::retained(), 0);
    // A send still pending when its socket closes completes with STATUS_CANCELLED first.
    wsk::set_faults(Faults { stall_ms: 1_000, ..Faults::NONE });
    assert_eq!(send_to(id, a, b_addr, b"never", 2), STATUS_PENDING);
    close(id, a);
    assert_eq!(completions().last().map(|c| (c.0, c.1)), Some((2, STATUS_CANCELLED)));
    assert_eq!(wsk::pending_sends(), 0);
    close(id, b);
    deregister(client);
    assert_eq!(names(machine), Vec::<&str>::new());
}

#[test]
fn irp_allocation_failure_is_injectable() {
    let (machine, id) = boot();
    winsim::pool::set_fault_plan(winsim::pool::FaultPlan::Nth(1));
    // SAFETY: plain allocation (failed on purpose).
    let irp = as_driver(id, || unsafe { IoAllocateIrp(1, 0) });
    assert!(irp.is_null());
    assert_eq!(names(machine), Vec::<&str>::new());
}
