//! Scenario files: a user describes a machine, the filter to load, and a sequence of traffic and events
//! in TOML (`cargo xtask ndistest --scenario FILE`; the format is in docs/testing.md, examples in
//! `tests/scenarios/`). Every scenario implicitly asserts that the verifier stays clean, nothing leaks,
//! every NBL is accounted for and every received byte is intact; `[expect]` adds counter bounds.
use std::collections::BTreeMap;

use serde::Deserialize;
use winsim::datapath::{self, NicConfig};
use winsim::ndis::{self, ModuleState};
use winsim::Machine;

use crate::install::{self, Installed};
use crate::{passthrough, Outcome};

/// A scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The NICs of the machine.
    pub nics: Vec<NicSpec>,
    /// Which filter to install over every NIC.
    pub filter: FilterChoice,
    #[serde(default)]
    pub faults: Faults,
    /// What happens, in order.
    pub steps: Vec<Step>,
    /// Bounds on the final counters (name -> minimum), on top of the implicit assertions.
    #[serde(default)]
    pub expect: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicSpec {
    pub if_index: u32,
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// Lengths of the MDLs received frames are split into (the rest goes into a last MDL).
    #[serde(default = "default_split")]
    pub rx_split: Vec<usize>,
    /// Unused bytes in front of received data.
    #[serde(default)]
    pub rx_data_offset: u32,
    /// The task offloads the NIC advertises (default: all, as a modern NIC).
    #[serde(default)]
    pub offloads: OffloadSpec,
}

/// A NIC's task offloads (`offloads = { lso_v2 = false }`); unnamed keys keep a modern NIC's values.
#[allow(clippy::struct_excessive_bools)] // the NDIS_OFFLOAD switches, one key each
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields, default)]
pub struct OffloadSpec {
    pub checksum_v4: bool,
    pub checksum_v6: bool,
    pub lso_v2: bool,
    pub lso_max: u32,
    pub lso_min_segments: u32,
    pub uso: bool,
    pub uso_max: u32,
    pub uso_min_segments: u32,
}

impl Default for OffloadSpec {
    fn default() -> Self {
        let o = datapath::Offloads::default();
        OffloadSpec {
            checksum_v4: o.checksum_v4,
            checksum_v6: o.checksum_v6,
            lso_v2: o.lso_v2,
            lso_max: o.lso_max,
            lso_min_segments: o.lso_min_segments,
            uso: o.uso,
            uso_max: o.uso_max,
            uso_min_segments: o.uso_min_segments,
        }
    }
}

impl OffloadSpec {
    fn offloads(self) -> datapath::Offloads {
        datapath::Offloads {
            checksum_v4: self.checksum_v4,
            checksum_v6: self.checksum_v6,
            lso_v2: self.lso_v2,
            lso_max: self.lso_max,
            lso_min_segments: self.lso_min_segments,
            uso: self.uso,
            uso_max: self.uso_max,
            uso_min_segments: self.uso_min_segments,
        }
    }
}

/// IP versions or transports of a `send_ip` step.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IpChoice {
    V4,
    V6,
    Both,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProtoChoice {
    Tcp,
    Udp,
    Both,
}

fn default_mtu() -> u32 {
    1500
}

fn default_split() -> Vec<usize> {
    vec![7, 13]
}

/// The filter under test.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FilterChoice {
    /// The passthrough test filter (`tests/src/passthrough.rs`).
    Passthrough,
    /// rdco's filter, installed as `inf/filter.inf` describes.
    Rdcofilter,
}

/// Faults applied after the filter is installed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Fail every Nth pool allocation (0: never).
    #[serde(default)]
    pub alloc_fail_every: u64,
}

/// One step. `repeat` runs it several times.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// The protocol sends `count` frames on `nic`, sizes cycling through `sizes`.
    Send {
        nic: u32,
        count: u64,
        #[serde(default = "default_sizes")]
        sizes: Vec<usize>,
        #[serde(default = "one")]
        repeat: u32,
    },
    /// The NIC receives `count` frames; a `resources` fraction of the batches carry
    /// NDIS_RECEIVE_FLAGS_RESOURCES.
    Receive {
        nic: u32,
        count: u64,
        #[serde(default = "default_sizes")]
        sizes: Vec<usize>,
        #[serde(default)]
        resources: f64,
        #[serde(default = "one")]
        repeat: u32,
    },
    /// The protocol sends real IP packets (`count` per size, IP version and transport): payloads above the
    /// MSS go as LSOv2/USO super-packets when the NIC advertised them, else the stack segments them.
    SendIp {
        nic: u32,
        count: u64,
        #[serde(default = "default_ip_sizes")]
        sizes: Vec<usize>,
        #[serde(default = "default_ip")]
        ip: IpChoice,
        #[serde(default = "default_proto")]
        proto: ProtoChoice,
        /// Maximum segment size (default: the NIC's MTU minus 60).
        #[serde(default)]
        mss: Option<u16>,
        /// Ask the NIC for checksum offload (when it advertises it).
        #[serde(default = "yes")]
        checksum: bool,
        #[serde(default = "one")]
        repeat: u32,
    },
    /// NICs complete their sends and the protocol returns its receives.
    Pump {},
    /// NDIS pauses every module (waiting for pended pauses).
    Pause {},
    /// NDIS restarts every module.
    Restart {},
    /// NDIS detaches every (paused) module.
    Detach {},
    /// NDIS attaches and restarts the filter on every NIC again.
    Attach {},
    /// The NIC indicates a link-state change (disconnect, then connect, are two steps).
    MediaDisconnect {
        nic: u32,
    },
    MediaConnect {
        nic: u32,
    },
    /// The NIC resets: RESET_START (aborting the sends it holds), then RESET_END.
    Reset {
        nic: u32,
    },
    /// Machine time passes (timers fire; NBLs a filter holds past 30 s are reported).
    Wait {
        seconds: u64,
    },
    /// The NIC goes to D3 (the stack pauses for low power; NetEventSetPower travels up).
    PowerD3 {
        nic: u32,
    },
    /// The NIC returns to D0 (NetEventSetPower travels up; the stack restarts).
    PowerD0 {
        nic: u32,
    },
    /// The NIC disappears (the device event travels down, held sends fail, the modules detach).
    SurpriseRemoval {
        nic: u32,
    },
}

fn default_sizes() -> Vec<usize> {
    vec![64, 512, 1400]
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn default_ip_sizes() -> Vec<usize> {
    vec![1, 1400, 65_536]
}

fn default_ip() -> IpChoice {
    IpChoice::Both
}

fn default_proto() -> ProtoChoice {
    ProtoChoice::Both
}

/// Parses a scenario; the error names the problem (TOML syntax, unknown key or action, bad value).
pub fn parse(text: &str) -> Result<Scenario, String> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| e.to_string().replace('\n', " "))?;
    if scenario.nics.is_empty() {
        return Err("a scenario needs at least one NIC in `nics`".into());
    }
    for step in &scenario.steps {
        let nic = match step {
            Step::Send { nic, sizes, .. } | Step::Receive { nic, sizes, .. } => {
                if sizes.is_empty() || sizes.iter().any(|&s| s + datapath::ETH_HEADER + 10 > 1514) {
                    return Err(format!("step {step:?}: sizes must be 1..=1490 bytes of payload"));
                }
                Some(*nic)
            }
            Step::SendIp { nic, sizes, mss, .. } => {
                if sizes.is_empty() || sizes.iter().any(|&s| s == 0 || s > 65_536) {
                    return Err(format!("step {step:?}: sizes must be 1..=65536 bytes of payload"));
                }
                let mtu = scenario.nics.iter().find(|n| n.if_index == *nic).map_or(1500, |n| n.mtu);
                if mss.is_some_and(|m| m == 0 || u32::from(m) + 60 > mtu) {
                    return Err(format!(
                        "step {step:?}: mss must be 1..=MTU-60 ({})",
                        mtu.saturating_sub(60)
                    ));
                }
                Some(*nic)
            }
            Step::MediaDisconnect { nic }
            | Step::MediaConnect { nic }
            | Step::Reset { nic }
            | Step::PowerD3 { nic }
            | Step::PowerD0 { nic }
            | Step::SurpriseRemoval { nic } => Some(*nic),
            _ => None,
        };
        if let Some(nic) = nic {
            if !scenario.nics.iter().any(|n| n.if_index == nic) {
                return Err(format!("step {step:?} names NIC {nic}, which `nics` does not define"));
            }
        }
        if let Step::Receive { resources, .. } = step {
            if !(0.0..=1.0).contains(resources) {
                return Err(format!("resources must be between 0 and 1, not {resources}"));
            }
        }
    }
    Ok(scenario)
}

struct Run {
    installed: Option<Installed>,
    seq: u64,
    batches: u64,
    indicated: u64,
    resources: u64,
    sent: u64,
}

fn install_filter(machine: &mut Machine, scenario: &Scenario) -> Result<Installed, String> {
    match scenario.filter {
        FilterChoice::Passthrough => {
            install::install(machine, passthrough::SERVICE, passthrough::driver_entry)
        }
        FilterChoice::Rdcofilter => install::install_from_inf(
            machine,
            &install::inf_dir().join(uapi::names::FILTER_INF),
            filter::driver_entry,
        ),
    }
}

/// Every NIC indicates its offload configuration (as a miniport does when the stack comes up).
fn announce_offloads() {
    for nic in datapath::nics() {
        datapath::nic_announce_offloads(nic);
    }
}

fn modules(run: &Run) -> Vec<usize> {
    run.installed.as_ref().map(|i| i.modules.clone()).unwrap_or_default()
}

/// Runs a scenario on `machine`; returns the counters, or the first assertion that failed.
pub fn run(machine: &mut Machine, scenario: &Scenario) -> Outcome {
    for nic in &scenario.nics {
        datapath::add_nic(NicConfig {
            if_index: nic.if_index,
            mac: [0x02, 0x52, 0x44, 0x43, 0x4f, u8::try_from(nic.if_index & 0xff).unwrap_or(0)],
            mtu: nic.mtu,
            rx_split: nic.rx_split.clone(),
            rx_data_offset: nic.rx_data_offset,
            offloads: nic.offloads.offloads(),
        })
        .map_err(|s| format!("add_nic: {s:#x}"))?;
    }
    let mut run = Run {
        installed: Some(install_filter(machine, scenario)?),
        seq: 0,
        batches: 0,
        indicated: 0,
        resources: 0,
        sent: 0,
    };
    announce_offloads();
    if scenario.faults.alloc_fail_every > 0 {
        winsim::pool::set_fault_plan(winsim::pool::FaultPlan::EveryNth(scenario.faults.alloc_fail_every));
    }
    for step in &scenario.steps {
        apply(&mut run, step)?;
    }
    // Wind down: drain, pause, detach, unload.
    winsim::pool::set_fault_plan(winsim::pool::FaultPlan::Never);
    datapath::pump();
    if let Some(installed) = run.installed.take() {
        for &m in &installed.modules {
            if ndis::module_state(m) == Some(ModuleState::Running) {
                ndis::pause_module(m, 0);
                datapath::pump();
            }
            ndis::detach_module(m);
        }
        machine.unload_driver(installed.driver)?;
    }
    let mut counters = BTreeMap::new();
    for nic in &scenario.nics {
        let in_flight = datapath::in_flight(nic.if_index);
        if let Some(first) = in_flight.first() {
            return Err(format!(
                "NIC {}: {} NBL(s) unaccounted for, e.g. {first}",
                nic.if_index,
                in_flight.len()
            ));
        }
        let ledger = datapath::ledger(nic.if_index);
        if ledger.owed() != 0 {
            return Err(format!("NIC {}: {} send(s) never completed", nic.if_index, ledger.owed()));
        }
        if ledger.received_corrupt != 0 {
            return Err(format!(
                "NIC {}: {} received frame(s) corrupted",
                nic.if_index, ledger.received_corrupt
            ));
        }
        *counters.entry("sent".to_string()).or_default() += ledger.sent;
        *counters.entry("completed".to_string()).or_default() += ledger.completed;
        *counters.entry("completed_failed".to_string()).or_default() += ledger.failed.values().sum::<u64>();
        *counters.entry("received".to_string()).or_default() += ledger.received_ok;
        *counters.entry("on_wire".to_string()).or_default() += ledger.on_wire;
        let wire = datapath::check_ip_wire(nic.if_index).map_err(|e| format!("NIC {}: {e}", nic.if_index))?;
        let failed = ledger.failed.values().sum::<u64>();
        if wire.sends_missing > failed {
            return Err(format!(
                "NIC {}: {} IP send(s) never reached the wire but only {failed} completed with a failure",
                nic.if_index, wire.sends_missing
            ));
        }
        *counters.entry("ip_sends".to_string()).or_default() += ledger.ip_sends;
        *counters.entry("ip_sends_intact".to_string()).or_default() += wire.sends_intact;
        *counters.entry("super_packets".to_string()).or_default() += ledger.super_packets;
        *counters.entry("segments".to_string()).or_default() += ledger.segments;
        *counters.entry("lso_completed".to_string()).or_default() += ledger.lso_completed;
    }
    if counters.get("received").copied().unwrap_or(0) != run.indicated {
        return Err(format!(
            "{} frames indicated, {} reached the protocol intact",
            run.indicated, counters["received"]
        ));
    }
    counters.insert("received_resources".into(), run.resources);
    counters.insert("sent_by_steps".into(), run.sent);
    for (name, minimum) in &scenario.expect {
        let value =
            counters.get(name).copied().ok_or_else(|| format!("[expect] names unknown counter {name:?}"))?;
        if value < *minimum {
            return Err(format!("counter {name} = {value}, expected at least {minimum}"));
        }
    }
    Ok(counters.into_iter().collect())
}

fn frames(mac: [u8; 6], seq: &mut u64, count: u64, sizes: &[usize], inbound: bool) -> Vec<Vec<u8>> {
    let peer = [0x02, 0, 0, 0, 0, 0x99];
    (0..count)
        .map(|i| {
            *seq += 1;
            let len = sizes[usize::try_from(i).unwrap_or(0) % sizes.len()];
            if inbound {
                datapath::test_frame(mac, peer, *seq, len)
            } else {
                datapath::test_frame(peer, mac, *seq, len)
            }
        })
        .collect()
}

fn apply(run: &mut Run, step: &Step) -> Result<(), String> {
    match step {
        Step::Send { nic, count, sizes, repeat } => {
            let mac = datapath::nic_info(*nic).ok_or("no such NIC")?.mac;
            for _ in 0..*repeat {
                let out = frames(mac, &mut run.seq, *count, sizes, false);
                run.sent += datapath::protocol_send(*nic, &out) as u64;
            }
        }
        Step::Receive { nic, count, sizes, resources, repeat } => {
            let mac = datapath::nic_info(*nic).ok_or("no such NIC")?.mac;
            for _ in 0..*repeat {
                run.batches += 1;
                // Deterministic spread: batch k carries RESOURCES when floor(k*r) moves.
                #[allow(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss
                )]
                let with_resources = ((run.batches as f64) * resources).floor() as u64
                    != (((run.batches - 1) as f64) * resources).floor() as u64;
                let n = datapath::nic_indicate(
                    *nic,
                    &frames(mac, &mut run.seq, *count, sizes, true),
                    with_resources,
                ) as u64;
                run.indicated += n;
                if with_resources {
                    run.resources += n;
                }
            }
        }
        Step::SendIp { nic, count, sizes, ip, proto, mss, checksum, repeat } => {
            let mtu = datapath::nic_info(*nic).ok_or("no such NIC")?.mtu;
            let mss = mss.unwrap_or_else(|| u16::try_from(mtu.saturating_sub(60)).unwrap_or(1440));
            let versions: &[bool] = match ip {
                IpChoice::V4 => &[false],
                IpChoice::V6 => &[true],
                IpChoice::Both => &[false, true],
            };
            let protos: &[datapath::Proto] = match proto {
                ProtoChoice::Tcp => &[datapath::Proto::Tcp],
                ProtoChoice::Udp => &[datapath::Proto::Udp],
                ProtoChoice::Both => &[datapath::Proto::Tcp, datapath::Proto::Udp],
            };
            let mut batch = Vec::new();
            for &size in sizes {
                for &v6 in versions {
                    for &p in protos {
                        for _ in 0..*count {
                            batch.push(datapath::IpSend {
                                v6,
                                proto: p,
                                payload_len: size,
                                request_checksum: *checksum,
                                mss,
                            });
                        }
                    }
                }
            }
            for _ in 0..*repeat {
                run.sent += datapath::protocol_send_ip(*nic, &batch) as u64;
            }
        }
        Step::Pump {} => {
            datapath::pump();
        }
        Step::Pause {} => {
            for m in modules(run) {
                if ndis::module_state(m) == Some(ModuleState::Running) {
                    ndis::pause_module(m, 0);
                    winsim::pnp::settle_pause(m);
                }
                if ndis::module_state(m) != Some(ModuleState::Paused) {
                    return Err(format!(
                        "a module is {:?} after its pause and a pump",
                        ndis::module_state(m)
                    ));
                }
            }
        }
        Step::Restart {} => {
            for m in modules(run) {
                if ndis::module_state(m) == Some(ModuleState::Paused) {
                    let status = ndis::restart_module(m);
                    if status != 0 {
                        return Err(format!("FilterRestart returned {status:#x}"));
                    }
                }
            }
            announce_offloads();
        }
        Step::Detach {} => {
            for m in modules(run) {
                if ndis::module_state(m) != Some(ModuleState::Paused) {
                    return Err("detach needs the modules paused: add a `pause` step first".into());
                }
                ndis::detach_module(m);
            }
            if let Some(installed) = run.installed.as_mut() {
                installed.modules.clear();
            }
        }
        Step::Attach {} => {
            let Some(installed) = run.installed.as_mut() else { return Err("no filter installed".into()) };
            if !installed.modules.is_empty() {
                return Err("attach needs the modules detached: add `pause` and `detach` steps first".into());
            }
            let registration = ndis::registered_filters()
                .into_iter()
                .find(|f| f.owner == installed.driver)
                .ok_or("the filter is not registered")?;
            for nic in datapath::nics() {
                let info = datapath::nic_info(nic).ok_or("no such NIC")?;
                let m = ndis::attach_module(registration.handle, &info)
                    .map_err(|s| format!("FilterAttach: {s:#x}"))?;
                ndis::restart_module(m);
                installed.modules.push(m);
            }
            announce_offloads();
        }
        Step::MediaDisconnect { nic } | Step::MediaConnect { nic } => {
            let mut state = [0u8; 4];
            datapath::nic_indicate_status(*nic, kernel::ffi::ndis::NDIS_STATUS_LINK_STATE, &mut state);
        }
        Step::Wait { seconds } => {
            datapath::wait(std::time::Duration::from_secs(*seconds));
        }
        Step::PowerD3 { nic } => {
            winsim::pnp::power_down(*nic);
        }
        Step::PowerD0 { nic } => {
            winsim::pnp::power_up(*nic);
        }
        Step::SurpriseRemoval { nic } => {
            winsim::pnp::surprise_remove(*nic);
            if let Some(installed) = run.installed.as_mut() {
                installed.modules.retain(|&m| ndis::module_state(m).is_some());
            }
        }
        Step::Reset { nic } => {
            datapath::nic_indicate_status(*nic, datapath::NDIS_STATUS_RESET_START, &mut []);
            datapath::nic_indicate_status(*nic, datapath::NDIS_STATUS_RESET_END, &mut []);
        }
    }
    Ok(())
}
