//! The simulated Windows kernel (host builds only).
//!
//! It exports, with `#[no_mangle]`, the same kernel functions the drivers import, so the drivers' own code
//! runs unchanged on Linux; it builds Windows-x64-layout structures (from `crates/kernel`) and calls the
//! drivers' registered callbacks; and its [`verifier`] records every violation of the rules Driver
//! Verifier and the NDIS verifier enforce.
//!
//! One machine runs at a time in a process: [`Machine::boot`] takes a process-wide lock, so `cargo test`'s
//! threads queue for it and `cargo nextest`'s processes each get their own.
//!
//! | module | kernel boundary |
//! |---|---|
//! | [`pool`] | `ExAllocatePool2` / `ExFreePoolWithTag`, leak checks, allocation-failure injection |
//! | [`irql`] | IRQL and spin locks |
//! | [`debug`] | `DbgPrintEx`, `KeBugCheckEx` |
//! | [`clock`] | `KeQueryInterruptTimePrecise`, `KeQueryPerformanceCounter`; virtual or real time, the seeded RNG |
//! | [`sched`] | DPCs, timers, work items, events and waits, `KeSaveExtendedProcessorState` |
//! | [`ndis`] | the NDIS filter API |
//! | [`wdf`] | the KMDF version binding and function table |
//! | [`netcx`] | NetAdapterCx: class binding, devices, adapters, packet queues and rings, its verifier, a simulated IP stack |
//! | [`wsk`] | WSK over loopback UDP: `IoAllocateIrp`/`IofCompleteRequest`, registration, datagram sockets, receive events, send faults |
#![allow(non_snake_case, clippy::missing_safety_doc)]

#[cfg(feature = "bench-profile")]
pub mod bench;
/// Without the `bench-profile` feature the bench profile does not exist: always off.
#[cfg(not(feature = "bench-profile"))]
mod bench {
    #[inline(always)]
    pub(crate) const fn active() -> bool {
        false
    }
    pub(crate) fn sink(_data: Vec<u8>) {}
    pub(crate) fn sink_batch(_count: u64, _bytes: u64, _last: Vec<u8>) {}
}
pub mod clock;
pub mod context;
pub mod datapath;
pub mod debug;
pub mod device;
pub mod irql;
pub mod mdl;
pub mod nbl;
pub mod ndis;
pub mod netcx;
pub mod offload;
pub mod oid;
pub mod pnp;
pub mod pool;
pub mod sched;
pub mod verifier;
pub mod wdf;
pub mod wdfio;
pub mod wsk;

use std::sync::{Mutex, MutexGuard};

use kernel::ffi::ntos::{
    DRIVER_EXTENSION, DRIVER_OBJECT, NTSTATUS, NT_SUCCESS, PASSIVE_LEVEL, UNICODE_STRING,
};

pub use context::DriverId;
use verifier::Violation;

/// Locks a simulation mutex; a panic in an earlier test (a simulated bug check) does not poison the
/// machine for the next one.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A driver's entry point: `DriverEntry(DriverObject, RegistryPath)`.
pub type DriverEntry = unsafe extern "system" fn(*mut DRIVER_OBJECT, *mut UNICODE_STRING) -> NTSTATUS;

/// A counted UTF-16 string whose buffer lives as long as the string.
struct OwnedUnicode {
    string: Box<UNICODE_STRING>,
    _buffer: Vec<u16>,
}

impl OwnedUnicode {
    fn new(text: &str) -> Self {
        let mut buffer: Vec<u16> = text.encode_utf16().collect();
        let bytes = u16::try_from(buffer.len() * 2).expect("simulated strings are short");
        let string =
            Box::new(UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: buffer.as_mut_ptr() });
        OwnedUnicode { string, _buffer: buffer }
    }
}

/// Reads a `UNICODE_STRING` the driver passed in.
///
/// # Safety
/// `s` must be null or point to a valid `UNICODE_STRING` whose buffer holds `Length` bytes.
pub unsafe fn read_unicode(s: *const UNICODE_STRING) -> Option<String> {
    // SAFETY: the caller guarantees `s` is null or valid.
    let s = unsafe { s.as_ref() }?;
    if s.Buffer.is_null() {
        return Some(String::new());
    }
    // SAFETY: the caller guarantees the buffer holds `Length` bytes.
    let units = unsafe { std::slice::from_raw_parts(s.Buffer, usize::from(s.Length) / 2) };
    Some(String::from_utf16_lossy(units))
}

struct LoadedDriver {
    id: DriverId,
    service: String,
    object: Box<DRIVER_OBJECT>,
    _extension: Box<DRIVER_EXTENSION>,
    _name: OwnedUnicode,
    registry: OwnedUnicode,
}

/// How a machine runs: [`clock::Mode::Deterministic`] (the default: virtual clock, DPCs and work items
/// run when the machine is pumped) or [`clock::Mode::RealTime`] (worker and timer threads), and the seed
/// of [`clock::rng`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineConfig {
    pub mode: clock::Mode,
    pub seed: u64,
}

static MACHINE: Mutex<()> = Mutex::new(());

/// Clears every subsystem's state: a fresh machine.
fn reset_subsystems() {
    verifier::take();
    context::reset();
    pool::set_fault_plan(pool::FaultPlan::Never);
    datapath::reset();
    ndis::reset();
    pnp::reset();
    oid::reset();
    nbl::reset();
    mdl::reset();
    wsk::reset();
    wdf::reset();
    wdfio::reset();
    netcx::reset();
    device::reset();
}

/// The simulated machine. Dropping it unloads every driver still loaded.
pub struct Machine {
    drivers: Vec<LoadedDriver>,
    next_id: u32,
    _exclusive: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.drivers.iter().map(|d| d.service.as_str()).collect();
        f.debug_struct("Machine").field("drivers", &names).finish()
    }
}

impl Machine {
    /// Boots a fresh machine: waits for any other machine in this process to shut down, then clears every
    /// subsystem's state.
    pub fn boot() -> Machine {
        Machine::boot_with(MachineConfig::default())
    }

    /// Boots a fresh machine as [`Machine::boot`] does, in `config.mode` with the generator seeded from
    /// `config.seed`.
    pub fn boot_with(config: MachineConfig) -> Machine {
        let exclusive = lock(&MACHINE);
        clock::reset(config.mode, config.seed);
        sched::reset();
        reset_subsystems();
        Machine { drivers: Vec::new(), next_id: 1, _exclusive: exclusive }
    }

    /// Shuts this machine down (unloading every driver, as [`Machine::shutdown`] does) and boots a fresh
    /// one in its place without giving up the process-wide lock; returns the violations of the old one.
    pub fn reboot(&mut self) -> Vec<Violation> {
        self.unload_all();
        let violations = verifier::take();
        clock::reset(clock::mode(), clock::seed());
        sched::reset();
        reset_subsystems();
        self.next_id = 1;
        violations
    }

    /// Loads a driver as the I/O manager does: a fresh `DRIVER_OBJECT` named `\Driver\<service>`, the
    /// registry path `\Registry\Machine\System\CurrentControlSet\Services\<service>`, and a call of its
    /// entry point at PASSIVE_LEVEL. A failing entry point leaves no driver loaded (and the I/O manager
    /// does not call its unload routine), so anything it allocated is a leak.
    pub fn load_driver(&mut self, service: &str, entry: DriverEntry) -> Result<DriverId, NTSTATUS> {
        let id = DriverId(self.next_id);
        self.next_id += 1;
        let name = OwnedUnicode::new(&format!("\\Driver\\{service}"));
        let registry = OwnedUnicode::new(&format!(
            "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\{service}"
        ));
        // SAFETY: DRIVER_OBJECT and DRIVER_EXTENSION are plain C structures for which all-zero is the
        // state the I/O manager starts from (no handlers, null pointers).
        let mut object: Box<DRIVER_OBJECT> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: as above.
        let mut extension: Box<DRIVER_EXTENSION> = Box::new(unsafe { std::mem::zeroed() });
        extension.DriverObject = &raw mut *object;
        extension.ServiceKeyName = *OwnedUnicode::new(service).string;
        object.Type = 4; // IO_TYPE_DRIVER
        object.Size = i16::try_from(std::mem::size_of::<DRIVER_OBJECT>()).unwrap_or(i16::MAX);
        object.DriverName = *name.string;
        object.DriverExtension = &raw mut *extension;
        let mut driver = LoadedDriver {
            id,
            service: service.to_string(),
            object,
            _extension: extension,
            _name: name,
            registry,
        };
        let object_ptr: *mut DRIVER_OBJECT = &raw mut *driver.object;
        let registry_ptr: *mut UNICODE_STRING = &raw mut *driver.registry.string;
        // SAFETY: both pointers are valid for the call and outlive the driver.
        let status = context::call_driver(id, PASSIVE_LEVEL, "DriverEntry", || unsafe {
            entry(object_ptr, registry_ptr)
        });
        if NT_SUCCESS(status) {
            self.drivers.push(driver);
            Ok(id)
        } else {
            ndis::driver_unloaded(id, service);
            netcx::check_unload(id);
            wdfio::check_unload(id);
            wdfio::check_unload(id);
            wdf::driver_unloaded(id);
            nbl::check_unload(id, service);
            oid::check_unload(id, service);
            wsk::check_unload(id, service);
            sched::check_unload(id, service);
            device::check_unload(id, service);
            pool::check_unload(id, service);
            Err(status)
        }
    }

    /// Unloads a driver: calls its `DriverUnload` at PASSIVE_LEVEL, then checks that it deregistered from
    /// NDIS and freed all of its pool.
    pub fn unload_driver(&mut self, id: DriverId) -> Result<(), String> {
        let index = self
            .drivers
            .iter()
            .position(|d| d.id == id)
            .ok_or_else(|| format!("driver {id:?} is not loaded"))?;
        let mut driver = self.drivers.remove(index);
        let object_ptr: *mut DRIVER_OBJECT = &raw mut *driver.object;
        match driver.object.DriverUnload {
            // SAFETY: the driver object is the one the driver initialised and is still alive.
            Some(unload) => context::call_driver(id, PASSIVE_LEVEL, "DriverUnload", || {
                // SAFETY: the driver object is the one the driver initialised and is still alive.
                unsafe { unload(object_ptr) }
            }),
            None => {
                return Err(format!("{} has no DriverUnload routine and cannot be unloaded", driver.service))
            }
        }
        ndis::driver_unloaded(id, &driver.service);
        netcx::check_unload(id);
        wdf::driver_unloaded(id);
        nbl::check_unload(id, &driver.service);
        oid::check_unload(id, &driver.service);
        wsk::check_unload(id, &driver.service);
        sched::check_unload(id, &driver.service);
        device::check_unload(id, &driver.service);
        pool::check_unload(id, &driver.service);
        Ok(())
    }

    /// The services of the drivers loaded now.
    pub fn loaded(&self) -> Vec<(DriverId, String)> {
        self.drivers.iter().map(|d| (d.id, d.service.clone())).collect()
    }

    /// Unloads every driver still loaded (last loaded first) and returns every violation recorded since
    /// boot.
    pub fn shutdown(mut self) -> Vec<Violation> {
        self.unload_all();
        verifier::take()
    }

    fn unload_all(&mut self) {
        while let Some(last) = self.drivers.last() {
            let id = last.id;
            if let Err(message) = self.unload_driver(id) {
                verifier::violation(verifier::Rule::NotSimulated, message);
                self.drivers.retain(|d| d.id != id);
            }
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.unload_all();
    }
}
