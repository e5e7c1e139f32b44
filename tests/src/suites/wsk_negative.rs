//! The verifier suite's WSK negative tests: the raw client of `crate::wsk_client` misusing the provider
//! exactly one way each.
use std::ptr::null_mut;
use std::sync::atomic::Ordering;

use kernel::ffi::ntos::{
    IoCompleteRequest, IoFreeIrp, HIGH_LEVEL, IO_NO_INCREMENT, STATUS_PENDING, STATUS_SUCCESS,
};
use kernel::ffi::wsk::{WSK_BUF, WSK_DATAGRAM_INDICATION};
use winsim::context::call_driver;
use winsim::Machine;

use crate::wsk_client::{
    as_driver, close, deregister, dgram, load, mdl_over, new_irp, received, register, release, send_to,
    storage, udp_socket, v4, wait, FREE, RECEIVE_STATUS,
};
use crate::Outcome;

/// Releases a retained indication twice: `wsk.release_unknown`.
pub fn release_twice(machine: &mut Machine) -> Outcome {
    let id = load(machine);
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    RECEIVE_STATUS.store(STATUS_PENDING, Ordering::SeqCst);
    send_to(id, a, b_addr, b"twice", 1);
    wait("the datagram", || received().len() == 1);
    let indication = received()[0].indication;
    release(id, b, indication);
    release(id, b, indication);
    close(id, a);
    close(id, b);
    deregister(client);
    machine.unload_driver(id).map(|()| Vec::new())
}

/// Completes an IRP the provider already completed: `wsk.irp_completed_twice`.
pub fn complete_twice(machine: &mut Machine) -> Outcome {
    let id = load(machine);
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let close_fn = dgram(a).Basic.WskCloseSocket.ok_or("no WskCloseSocket")?;
    as_driver(id, || {
        let irp = new_irp(0);
        // SAFETY: an open socket and our IRP; control operations complete inline.
        let _ = unsafe { close_fn(a, irp) };
        // SAFETY: deliberately completes the completed IRP again; the simulation refuses it.
        unsafe { IoCompleteRequest(irp, IO_NO_INCREMENT) };
        // SAFETY: ours.
        unsafe { IoFreeIrp(irp) };
    });
    deregister(client);
    machine.unload_driver(id).map(|()| Vec::new())
}

/// Passes a completed IRP to the provider again without `IoReuseIrp`: `wsk.irp_misuse`.
pub fn reuse_without_reset(machine: &mut Machine) -> Outcome {
    let id = load(machine);
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let get = dgram(a).WskGetLocalAddress.ok_or("no WskGetLocalAddress")?;
    let mut out = storage(v4());
    as_driver(id, || {
        let irp = new_irp(0);
        // SAFETY: a bound socket, a 128-byte buffer, our IRP (completes inline).
        let _ = unsafe { get(a, (&raw mut out).cast(), irp) };
        // SAFETY: deliberately the same, completed IRP again; the simulation refuses it.
        let _ = unsafe { get(a, (&raw mut out).cast(), irp) };
        // SAFETY: ours.
        unsafe { IoFreeIrp(irp) };
    });
    close(id, a);
    deregister(client);
    machine.unload_driver(id).map(|()| Vec::new())
}

/// Unloads with a socket open: `wsk.socket_leak_at_unload`.
pub fn unload_with_socket(machine: &mut Machine) -> Outcome {
    let id = load(machine);
    let client = register(id);
    let (_a, _) = udp_socket(&client, v4(), 1);
    machine.unload_driver(id).map(|()| Vec::new())
}

/// Sends at HIGH_LEVEL: `wsk.dispatch_irql`.
pub fn send_at_high_level(machine: &mut Machine) -> Outcome {
    let id = load(machine);
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    let send = dgram(a).WskSendTo.ok_or("no WskSendTo")?;
    let mut data = *b"high";
    let mut mdl = mdl_over(&mut data);
    let mut buf = WSK_BUF { Mdl: &raw mut *mdl, Offset: 0, Length: 4 };
    let mut remote = storage(b_addr);
    let irp = as_driver(id, || new_irp(1 | FREE));
    call_driver(id, HIGH_LEVEL, "send at HIGH_LEVEL", || {
        // SAFETY: valid arguments, deliberately at the wrong IRQL.
        unsafe { send(a, &raw mut buf, 0, (&raw mut remote).cast(), 0, null_mut(), irp) }
    });
    wait("the datagram", || received().len() == 1);
    close(id, a);
    close(id, b);
    deregister(client);
    machine.unload_driver(id).map(|()| Vec::new())
}

/// Closes a socket while holding one of its indications: `wsk.close_with_retained`.
pub fn close_with_retained(machine: &mut Machine) -> Outcome {
    let id = load(machine);
    let client = register(id);
    let (a, _) = udp_socket(&client, v4(), 1);
    let (b, b_addr) = udp_socket(&client, v4(), 2);
    RECEIVE_STATUS.store(STATUS_PENDING, Ordering::SeqCst);
    send_to(id, a, b_addr, b"kept", 1);
    wait("the datagram", || received().len() == 1);
    let release_fn = dgram(b).WskRelease.ok_or("no WskRelease")?;
    close(id, b);
    let indication = received()[0].indication as *mut WSK_DATAGRAM_INDICATION;
    // SAFETY: released late through the table kept from before; the simulation only compares addresses.
    let status = as_driver(id, || unsafe { release_fn(b, indication) });
    if status != STATUS_SUCCESS {
        return Err(format!("late release returned {status:#x}"));
    }
    close(id, a);
    deregister(client);
    machine.unload_driver(id).map(|()| Vec::new())
}
