//! The bench profile: the simulated kernel reduced to what a real kernel does cheaply, so that a
//! benchmark's timed loop measures the drivers' own entry points and callbacks rather than the
//! simulation's checks. Compiled only with the `bench-profile` feature (which only `ndistest`'s `bench`
//! feature turns on, and only the `[[bench]]` targets require); tests and drivers never see it.
//!
//! While a [`Profile`] is alive:
//! * WSK sends put their datagrams into an in-memory sink ([`sink_take`]) instead of a loopback UDP
//!   socket (no system call); sends complete inline (`wsk::SendCompletion::Inline`). A
//!   `WskSendMessages` with no fault to apply is validated and measured where its buffers sit (every
//!   MDL chain walked, every length checked) and only its last datagram is copied, as a NIC's DMA reads
//!   the client's pages without a CPU copy; nothing is allocated per datagram. Sockets are not read
//!   for received datagrams (the bench wire is memory both ways: [`inject`]).
//! * [`inject`] indicates datagrams from memory to a socket's `WskReceiveFromEvent` (no system call), as
//!   the provider's receive path does after the NIC and the UDP layer are done; [`RxBatch`] builds the
//!   indications first (untimed: the NIC's DMA and the UDP layer) and indicates them later, and
//!   released indications are freed outside the timed path.
//! * NetAdapterCx's ring verifier is off: no snapshot of both rings around every advance, no poisoning of
//!   the Rx fields the client must write, no per-element checks; the stack above the adapter counts
//!   received packets instead of copying them out.
//! * the NDIS protocol can resend NBLs it built once ([`FilterSendBatch`]) instead of building, tracking
//!   and freeing new ones per send, as the TCP/IP stack recycles its NBLs; likewise the IP stack above a
//!   NetAdapterCx adapter can post Tx packets whose buffers and MDLs it built once ([`TxBatch`]).
//!
//! Everything else (IRQL and spin-lock checks, NBL ownership tracking, IRP bookkeeping, pool accounting)
//! stays on. The default (verifying) profile is what every test runs.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Datagrams the sink took while the profile was active: (count, bytes, the last one).
struct Sink {
    count: u64,
    bytes: u64,
    last: Vec<u8>,
}

static SINK: Mutex<Sink> = Mutex::new(Sink { count: 0, bytes: 0, last: Vec::new() });

/// Whether the bench profile is on.
#[inline]
pub(crate) fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// The bench profile, on while this value lives. Enter it after the machine booted and the drivers are
/// set up (setup runs verified).
#[must_use = "the profile ends when this value is dropped"]
#[derive(Debug)]
pub struct Profile {
    wsk: crate::wsk::Config,
}

impl Profile {
    /// Turns the bench profile on.
    pub fn enter() -> Profile {
        let wsk = crate::wsk::config();
        crate::wsk::configure(crate::wsk::Config {
            send_completion: crate::wsk::SendCompletion::Inline,
            threaded: false,
            ..wsk
        });
        *crate::lock(&SINK) = Sink { count: 0, bytes: 0, last: Vec::new() };
        ACTIVE.store(true, Ordering::SeqCst);
        Profile { wsk }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
        crate::wsk::free_released();
        crate::wsk::configure(self.wsk);
    }
}

/// Takes one datagram a WSK send put on the "wire" (called under the WSK state lock).
pub(crate) fn sink(data: Vec<u8>) {
    let mut s = crate::lock(&SINK);
    s.count += 1;
    s.bytes += data.len() as u64;
    // The previous datagram's buffer goes back to the send path for reuse (no allocation per datagram).
    crate::wsk::recycle(std::mem::replace(&mut s.last, data));
}

/// Takes `count` datagrams of `bytes` in all from one `WskSendMessages`, of which only the last was
/// copied (`last`); called under the WSK state lock.
pub(crate) fn sink_batch(count: u64, bytes: u64, last: Vec<u8>) {
    let mut s = crate::lock(&SINK);
    s.count += count;
    s.bytes += bytes;
    crate::wsk::recycle(std::mem::replace(&mut s.last, last));
}

/// Datagrams and bytes sent since the profile was entered or the last call, and the last datagram.
pub fn sink_take() -> (u64, u64, Vec<u8>) {
    let mut s = crate::lock(&SINK);
    let out = (s.count, s.bytes, std::mem::take(&mut s.last));
    s.count = 0;
    s.bytes = 0;
    out
}

/// Indicates `datagrams` from `from` to the socket bound to local UDP port `port`, chained as the
/// provider chains them, without a system call. Returns how many were indicated (0 when no socket with
/// receive events is bound there).
pub fn inject(port: u16, from: SocketAddr, datagrams: &[&[u8]]) -> usize {
    crate::wsk::inject(port, from, datagrams)
}

/// Protocol sends built once and resent: the NBLs of `sends` (one per packet, as
/// [`crate::datapath::protocol_send_ip`] builds them) come back to the protocol on completion and are
/// kept for the next [`FilterSendBatch::send`] instead of being freed.
#[derive(Debug)]
pub struct FilterSendBatch {
    nic: u32,
    nbls: Vec<usize>,
}

impl FilterSendBatch {
    /// Builds the NBLs for `sends` on `nic`.
    pub fn new(nic: u32, sends: &[crate::datapath::IpSend]) -> FilterSendBatch {
        FilterSendBatch { nic, nbls: crate::datapath::bench_build(nic, sends) }
    }

    /// Sends the batch down the stack from the protocol (the filter's `FilterSendNetBufferLists`).
    /// Returns how many NBLs were sent (0 when some are still in flight).
    pub fn send(&self) -> usize {
        crate::datapath::bench_send(self.nic, &self.nbls)
    }

    /// How many NBLs the batch has.
    pub fn len(&self) -> usize {
        self.nbls.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.nbls.is_empty()
    }
}

impl Drop for FilterSendBatch {
    fn drop(&mut self) {
        crate::datapath::bench_free(&self.nbls);
    }
}

/// Packets the simulated IP stack above a NetAdapterCx adapter posts on its Tx ring again and again:
/// buffers and MDLs built once ([`crate::netcx::stack_send_fragments`] builds new ones per send), as the
/// TCP/IP stack recycles its NBLs. Drop it only when none of its packets is on a ring.
pub struct TxBatch {
    adapter: usize,
    packets: Vec<crate::netcx::Prebuilt>,
}

impl TxBatch {
    /// Builds `packets` (each a list of fragments) for `adapter`.
    pub fn new(adapter: usize, packets: &[Vec<Vec<u8>>]) -> TxBatch {
        TxBatch { adapter, packets: crate::netcx::build_prebuilt(packets) }
    }

    /// Posts every packet on the Tx ring and runs the queue (as `stack_send_fragments`); returns how
    /// many were posted.
    pub fn send(&self) -> usize {
        crate::netcx::post_prebuilt(self.adapter, &self.packets)
    }
}

impl std::fmt::Debug for TxBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxBatch")
            .field("adapter", &self.adapter)
            .field("packets", &self.packets.len())
            .finish()
    }
}

impl Drop for TxBatch {
    fn drop(&mut self) {
        crate::netcx::free_prebuilt(std::mem::take(&mut self.packets));
    }
}

/// Datagrams built into the provider's indication chains for the socket bound to a local UDP port
/// (the NIC's and the UDP layer's work, done untimed when the batch is built), indicated to its
/// `WskReceiveFromEvent` by [`RxBatch::indicate`]. Building a batch also frees the indications released
/// since the last one (the bench profile keeps heap frees out of the timed path).
#[derive(Default)]
pub struct RxBatch(Option<crate::wsk::Prepared>);

impl RxBatch {
    /// Builds `datagrams` from `from` for the socket bound to `port` (empty if none is).
    pub fn new(port: u16, from: SocketAddr, datagrams: &[&[u8]]) -> RxBatch {
        crate::wsk::free_released();
        RxBatch(crate::wsk::prepare_inject(port, from, datagrams))
    }

    /// Indicates the batch; returns how many datagrams were indicated.
    pub fn indicate(&mut self) -> usize {
        self.0.take().map_or(0, crate::wsk::deliver_prepared)
    }
}

impl std::fmt::Debug for RxBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxBatch").finish_non_exhaustive()
    }
}
