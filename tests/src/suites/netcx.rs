//! The `netcx` suite: the test NetAdapterCx client (`crate::netcx_client`) over the simulated
//! NetAdapterCx: device arrival and removal, loopback traffic through the Tx and Rx rings with
//! driver-managed Rx buffers, multi-fragment packets, returns counted exactly once, adapter stop with
//! buffers outstanding, and cancel with packets in flight. The verifier watches every advance.
use std::sync::atomic::Ordering;

use winsim::netcx;
use winsim::Machine;

use crate::netcx_client::{self, ipv4_packet, ipv6_packet, Bug};
use crate::{Outcome, Test};

/// Loads the client committing `bug`, lets PnP add its device; returns the driver, device, adapter.
pub fn bring_up(machine: &mut Machine, bug: Bug) -> Result<(winsim::DriverId, usize, usize), String> {
    netcx_client::BUG.store(bug as u32, Ordering::Relaxed);
    let driver = machine
        .load_driver(netcx_client::SERVICE, netcx_client::driver_entry)
        .map_err(|s| format!("DriverEntry: {s:#x}"))?;
    let device = netcx::device_arrives(driver).map_err(|s| format!("EvtDriverDeviceAdd: {s:#x}"))?;
    let adapter = *netcx::adapters(device).first().ok_or("no adapter created")?;
    Ok((driver, device, adapter))
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn counters(adapter: usize) -> Result<netcx::Counters, String> {
    netcx::counters(adapter).ok_or_else(|| "adapter vanished".to_string())
}

fn report(c: &netcx::Counters) -> Vec<(String, u64)> {
    vec![
        ("tx_posted".into(), c.tx_posted),
        ("tx_completed".into(), c.tx_completed),
        ("rx_indicated".into(), c.rx_indicated),
        ("rx_fragments".into(), c.rx_fragments),
        ("returns".into(), c.returns),
        ("advances".into(), c.advances),
        ("dispatch_advances".into(), c.dispatch_advances),
    ]
}

fn bind_and_remove(m: &mut Machine) -> Outcome {
    let (driver, device, adapter) = bring_up(m, Bug::None)?;
    let info = netcx::adapter_info(adapter).ok_or("no adapter info")?;
    ensure(
        info.started && info.mtu == 1500 && info.link_connected == Some(true) && info.rx_driver_managed,
        || format!("adapter state {info:?}"),
    )?;
    ensure(info.max_tx_link_speed == 1_000_000_000, || format!("link speed {}", info.max_tx_link_speed))?;
    ensure(netcx_client::events() == ["PrepareHardware", "D0Entry"], || {
        format!("start sequence {:?}", netcx_client::events())
    })?;
    let (links, interfaces) = netcx::device_names(device);
    ensure(links == [netcx_client::SYMBOLIC_LINK] && interfaces == [netcx_client::INTERFACE_CLASS], || {
        format!("names {links:?} {interfaces:?}")
    })?;
    netcx::device_remove(device);
    let events = netcx_client::events();
    ensure(
        events == ["PrepareHardware", "D0Entry", "TxCancel", "RxCancel", "D0Exit", "ReleaseHardware"],
        || format!("PnP/power sequence {events:?}"),
    )?;
    ensure(netcx::adapters(device).is_empty(), || "adapter survived device removal".into())?;
    m.unload_driver(driver)?;
    Ok(Vec::new())
}

/// Sends `packets` (each as its fragments) in batches the rings accept, and checks that exactly those
/// packets come back, in order, with one return per Rx fragment.
fn echo(adapter: usize, packets: &[Vec<Vec<u8>>]) -> Result<(), String> {
    let mut sent = 0;
    while sent < packets.len() {
        let n = netcx::stack_send_fragments(adapter, &packets[sent..]);
        ensure(n > 0, || format!("Tx ring accepted nothing after {sent} packets"))?;
        sent += n;
    }
    netcx::pump(adapter);
    let got = netcx::stack_received();
    let want: Vec<Vec<u8>> = packets.iter().map(|f| f.concat()).collect();
    ensure(got == want, || {
        format!(
            "received {} packets, sent {}; first difference at {:?}",
            got.len(),
            want.len(),
            got.iter().zip(&want).position(|(a, b)| a != b)
        )
    })?;
    Ok(())
}

fn loopback_echo(m: &mut Machine) -> Outcome {
    let (driver, device, adapter) = bring_up(m, Bug::None)?;
    let packets: Vec<Vec<Vec<u8>>> = (0..100u16)
        .map(|i| {
            vec![if i % 3 == 0 {
                ipv6_packet(i, 60 + usize::from(i))
            } else {
                ipv4_packet(i, 40 + usize::from(i) * 7)
            }]
        })
        .collect();
    echo(adapter, &packets)?;
    let c = counters(adapter)?;
    let (lent, returns, bad) = netcx_client::stats();
    ensure(c.tx_posted == 100 && c.tx_completed == 100 && c.rx_indicated == 100, || format!("{c:?}"))?;
    ensure(c.returns == c.rx_fragments && returns == c.returns && lent == 0 && bad == 0, || {
        format!(
            "returns {} for {} fragments; client saw {returns} returns, {lent} lent, {bad} unknown",
            c.returns, c.rx_fragments
        )
    })?;
    ensure(c.rx_fragments > c.rx_indicated, || "no multi-fragment Rx packet".into())?;
    ensure(c.dispatch_advances > 0 && c.dispatch_advances < c.advances, || {
        format!("advances {} at DISPATCH {}", c.advances, c.dispatch_advances)
    })?;
    netcx::device_remove(device);
    m.unload_driver(driver)?;
    Ok(report(&c))
}

fn multi_fragment(m: &mut Machine) -> Outcome {
    let (driver, device, adapter) = bring_up(m, Bug::None)?;
    let packets: Vec<Vec<Vec<u8>>> = (0..20u16)
        .map(|i| {
            let p = ipv4_packet(i, 300 + usize::from(i));
            vec![p[..20].to_vec(), p[20..150].to_vec(), p[150..].to_vec()]
        })
        .collect();
    echo(adapter, &packets)?;
    let c = counters(adapter)?;
    ensure(c.rx_fragments == 40 && c.returns == 40, || format!("{c:?}"))?;
    netcx::device_remove(device);
    m.unload_driver(driver)?;
    Ok(report(&c))
}

fn stop_with_returns_outstanding(m: &mut Machine) -> Outcome {
    let (driver, device, adapter) = bring_up(m, Bug::None)?;
    netcx::stack_hold_returns(true);
    let packets: Vec<Vec<Vec<u8>>> =
        (0..10u16).map(|i| vec![ipv4_packet(i, 64 + usize::from(i) * 20)]).collect();
    echo(adapter, &packets)?;
    let held = counters(adapter)?;
    let (lent, _, _) = netcx_client::stats();
    ensure(held.returns == 0 && lent as u64 == held.rx_fragments && lent > 0, || {
        format!("before stop: {held:?}, lent {lent}")
    })?;
    netcx::adapter_stop(adapter);
    let c = counters(adapter)?;
    let (lent, returns, bad) = netcx_client::stats();
    ensure(c.returns == c.rx_fragments && lent == 0 && bad == 0 && returns == c.returns, || {
        format!("after stop: {c:?}, lent {lent}, unknown {bad}")
    })?;
    netcx::device_remove(device);
    m.unload_driver(driver)?;
    Ok(report(&c))
}

fn cancel_in_flight(m: &mut Machine) -> Outcome {
    netcx_client::SLOW_TX.store(true, Ordering::Relaxed);
    let (driver, device, adapter) = bring_up(m, Bug::None)?;
    let packets: Vec<Vec<u8>> = (0..20u16).map(|i| ipv4_packet(i, 80)).collect();
    let posted = netcx::stack_send(adapter, &packets);
    let before = counters(adapter)?;
    ensure(posted == 20 && before.tx_posted == 20 && before.tx_completed == 0, || {
        format!("in flight: posted {posted}, {before:?}")
    })?;
    // The OS stops the data path with all 20 in flight: cancel, drain, stop.
    netcx::adapter_stop(adapter);
    let after = counters(adapter)?;
    ensure(after.tx_completed == 20 && after.rx_indicated == 0, || format!("after cancel: {after:?}"))?;
    let info = netcx::adapter_info(adapter).ok_or("no adapter")?;
    ensure(!info.started, || "adapter still started after stop".into())?;
    let (lent, _, bad) = netcx_client::stats();
    ensure(lent == 0 && bad == 0, || format!("lent {lent}, unknown {bad}"))?;
    netcx::device_remove(device);
    m.unload_driver(driver)?;
    Ok(report(&after))
}

fn system_managed_rx(m: &mut Machine) -> Outcome {
    netcx_client::SYSTEM_RX.store(true, Ordering::Relaxed);
    let (driver, device, adapter) = bring_up(m, Bug::None)?;
    let info = netcx::adapter_info(adapter).ok_or("no adapter info")?;
    ensure(!info.rx_driver_managed, || "Rx still driver-managed".into())?;
    let packets: Vec<Vec<Vec<u8>>> =
        (0..40u16).map(|i| vec![ipv4_packet(i, 40 + usize::from(i) * 30)]).collect();
    echo(adapter, &packets)?;
    let c = counters(adapter)?;
    let (lent, returns, _) = netcx_client::stats();
    ensure(c.rx_indicated == 40 && c.returns == 0 && returns == 0 && lent == 0, || {
        format!("{c:?}: no return callbacks under system allocation")
    })?;
    netcx::device_remove(device);
    m.unload_driver(driver)?;
    Ok(report(&c))
}

fn second_device_name_collision(m: &mut Machine) -> Outcome {
    let (driver, device, adapter) = bring_up(m, Bug::None)?;
    // A second device of the same driver wants the same symbolic link: its EvtDriverDeviceAdd fails with
    // the collision, and the framework removes the half-built device (nothing leaks, nothing fires).
    let second = netcx::device_arrives(driver);
    ensure(second == Err(kernel::ffi::ntos::STATUS_OBJECT_NAME_COLLISION), || {
        format!("second device: {second:x?}")
    })?;
    echo(adapter, &[vec![ipv4_packet(1, 64)]])?;
    netcx::device_remove(device);
    m.unload_driver(driver)?;
    Ok(Vec::new())
}

fn notification_rearms(m: &mut Machine) -> Outcome {
    let (driver, device, adapter) = bring_up(m, Bug::None)?;
    // Idle: the framework enabled notification; traffic posted later must still flow (the client
    // notifies the Rx queue from its Tx advance).
    for round in 0..5u16 {
        echo(adapter, &[vec![ipv4_packet(round, 100)]])?;
    }
    let c = counters(adapter)?;
    ensure(c.rx_indicated == 5, || format!("{c:?}"))?;
    netcx::device_remove(device);
    m.unload_driver(driver)?;
    Ok(report(&c))
}

pub fn tests() -> Vec<Test> {
    [
        ("netcx.bind_and_remove", bind_and_remove as fn(&mut Machine) -> Outcome),
        ("netcx.loopback_echo", loopback_echo),
        ("netcx.multi_fragment", multi_fragment),
        ("netcx.stop_with_returns_outstanding", stop_with_returns_outstanding),
        ("netcx.cancel_in_flight", cancel_in_flight),
        ("netcx.notification_rearms", notification_rearms),
        ("netcx.system_managed_rx", system_managed_rx),
        ("netcx.second_device_name_collision", second_device_name_collision),
    ]
    .into_iter()
    .map(|(name, run)| Test { suite: "netcx", name, expect: None, run })
    .collect()
}

/// For the verifier's negative tests: brings the client up committing `bug`, runs traffic (a
/// multi-fragment Rx packet included), removes the device and unloads. The scenario's own result does
/// not matter: the test passes when exactly the bug's rule fires.
pub fn with_bug(m: &mut Machine, bug: Bug) -> Outcome {
    let up = bring_up(m, bug);
    if let Ok((driver, device, adapter)) = up {
        let packets: Vec<Vec<u8>> = (0..6u16).map(|i| ipv4_packet(i, 60 + usize::from(i) * 40)).collect();
        netcx::stack_send(adapter, &packets);
        netcx::pump(adapter);
        let _ = netcx::stack_received();
        netcx::device_remove(device);
        m.unload_driver(driver)?;
    } else if let Some((id, _)) = m.loaded().into_iter().find(|(_, s)| s == netcx_client::SERVICE) {
        m.unload_driver(id)?;
    }
    Ok(Vec::new())
}
