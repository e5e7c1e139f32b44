//! Winsock Kernel TCP client sockets: [`TcpSocket`], a connection-oriented socket
//! (`WSK_FLAG_CONNECTION_SOCKET`) that binds, connects to one peer, sends `WSK_BUF`s over a bounded pool
//! of preallocated IRPs (the caller's context comes back on completion, as for [`super::UdpSocket`]),
//! and receives the byte stream through `WskReceiveEvent`, with `WskDisconnectEvent` for the peer's
//! close or reset.
//!
//! Facts (WDK docs `nc-wsk-pfn_wsk_receive_event`, `nc-wsk-pfn_wsk_disconnect_event`,
//! `nc-wsk-pfn_wsk_connect`, `nc-wsk-pfn_wsk_send`, `nc-wsk-pfn_wsk_close_socket`; ovpn-dco-win
//! `socket.cpp`, own code):
//! * The client dispatch is `{ WskReceiveEvent, WskDisconnectEvent, WskSendBacklogEvent }`; events are
//!   enabled after the connect completed (`SO_WSK_EVENT_CALLBACK` with `WSK_EVENT_RECEIVE |
//!   WSK_EVENT_DISCONNECT`), as ovpn-dco-win's `OvpnSocketTcpConnectComplete` does.
//! * The receive event runs at IRQL <= DISPATCH_LEVEL with a chain of `WSK_DATA_INDICATION`s; returning
//!   `STATUS_SUCCESS` without touching `*BytesAccepted` accepts every byte, and the provider takes the
//!   buffers back when the callback returns. This wrapper always consumes (it copies what it keeps, as
//!   ovpn-dco-win does), so no data indication is ever retained and `WskRelease` is never needed.
//! * `WskSend` completes only when every byte was sent (no buffering in WSK).
//! * `WskCloseSocket` on a connection socket is an abortive disconnect unless both directions were
//!   already disconnected; [`TcpSocket::disconnect`] is the graceful `WskDisconnect`.
//!
//! # IRQL summary
//! | item | IRQL |
//! |---|---|
//! | [`TcpSocket::connect`], [`TcpSocket::disconnect`], [`TcpSocket::close`], drop | PASSIVE_LEVEL |
//! | [`TcpSocket::send`] | <= DISPATCH_LEVEL |
//! | [`StreamReceiver::on_data`], [`StreamReceiver::on_disconnect`] | <= DISPATCH_LEVEL |
//! | [`SendCompletion::on_send_complete`] | <= DISPATCH_LEVEL |
#![allow(clippy::doc_markdown)]
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use super::{
    current_irql, irp_result, segments_of, wait_until, BufferParts, PoolArray, Segments, SendBuffer,
    SendCompletion, SendError, SocketAddr, WskClient, FREE_WORDS, MAX_SEND_IRPS, POOL_TAG,
};
use crate::ffi::ntos::{
    Executive, IoAllocateIrp, IoFreeIrp, IoReuseIrp, IoSetCompletionRoutine, KeClearEvent, KeInitializeEvent,
    KeSetEvent, KeWaitForSingleObject, KernelMode, NotificationEvent, DEVICE_OBJECT, FALSE, IRP, KEVENT,
    NTSTATUS, NT_SUCCESS, PASSIVE_LEVEL, STATUS_DEVICE_BUSY, STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER, STATUS_MORE_PROCESSING_REQUIRED,
    STATUS_NOT_SUPPORTED, STATUS_PENDING, STATUS_SUCCESS, STATUS_UNSUCCESSFUL,
};
use crate::ffi::wsk::{
    WskSetOption, IPPROTO_TCP, NPI_WSK_INTERFACE_ID, SOCK_STREAM, SOL_SOCKET, SO_WSK_EVENT_CALLBACK, WSK_BUF,
    WSK_CLIENT_CONNECTION_DISPATCH, WSK_DATA_INDICATION, WSK_EVENT_CALLBACK_CONTROL, WSK_EVENT_DISABLE,
    WSK_EVENT_DISCONNECT, WSK_EVENT_RECEIVE, WSK_FLAG_ABORTIVE, WSK_FLAG_CONNECTION_SOCKET,
    WSK_PROVIDER_CONNECTION_DISPATCH, WSK_SOCKET,
};
use crate::pool::PoolBox;

/// Receives a connection's byte stream.
pub trait StreamReceiver: Send + Sync {
    /// Called at IRQL <= DISPATCH_LEVEL with the next bytes of the stream, in order. Every byte is
    /// consumed: what the receiver keeps it copies before returning. Returns false when the stream is
    /// unusable (out of sync): the socket then resets the connection (an abortive `WskDisconnect`),
    /// sends are refused and no more data is indicated. Must not block or panic.
    fn on_data(&self, data: StreamData<'_>) -> bool;
    /// Called once, at IRQL <= DISPATCH_LEVEL, when the peer closed (`abortive == false`) or reset
    /// (`abortive == true`) the connection. Must not block or panic.
    fn on_disconnect(&self, abortive: bool);
}

/// The bytes of one `WskReceiveEvent` (a chain of data indications). Valid during
/// [`StreamReceiver::on_data`] only.
#[derive(Debug)]
pub struct StreamData<'a> {
    head: *mut WSK_DATA_INDICATION,
    len: usize,
    flags: u32,
    _borrow: PhantomData<&'a [u8]>,
}

impl<'a> StreamData<'a> {
    /// Bytes indicated (the provider's `BytesIndicated`).
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether nothing was indicated.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The callback's flags (`WSK_FLAG_AT_DISPATCH_LEVEL`).
    pub fn flags(&self) -> u32 {
        self.flags
    }
    /// Number of data indications in the chain.
    pub fn indications(&self) -> usize {
        let mut n = 0;
        let mut p = self.head;
        while !p.is_null() {
            n += 1;
            // SAFETY: a valid element of the provider's chain during the callback.
            p = unsafe { (*p).Next };
        }
        n
    }
    /// The bytes as segments, one per MDL of each indication, in stream order.
    pub fn segments(&self) -> StreamSegments<'a> {
        StreamSegments { next: self.head, current: None }
    }
}

/// Iterator over the segments of a [`StreamData`].
#[derive(Debug)]
pub struct StreamSegments<'a> {
    next: *mut WSK_DATA_INDICATION,
    current: Option<Segments<'a>>,
}

impl<'a> Iterator for StreamSegments<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(segment) = self.current.as_mut().and_then(Iterator::next) {
                return Some(segment);
            }
            if self.next.is_null() {
                return None;
            }
            // SAFETY: a valid element of the provider's chain during the callback.
            let buffer = unsafe { (*self.next).Buffer };
            // SAFETY: as above.
            self.next = unsafe { (*self.next).Next };
            self.current = Some(segments_of(BufferParts {
                mdl: buffer.Mdl,
                offset: buffer.Offset,
                length: buffer.Length,
            }));
        }
    }
}

/// One preallocated send.
struct TcpSlot<T> {
    irp: *mut IRP,
    index: usize,
    owner: *const c_void,
    context: UnsafeCell<MaybeUninit<T>>,
    buf: UnsafeCell<WSK_BUF>,
}

struct TcpInner<R: StreamReceiver, C: SendCompletion> {
    socket: AtomicPtr<WSK_SOCKET>,
    dispatch: AtomicPtr<WSK_PROVIDER_CONNECTION_DISPATCH>,
    receiver: R,
    completion: C,
    client_dispatch: WSK_CLIENT_CONNECTION_DISPATCH,
    free: [AtomicU64; FREE_WORDS],
    in_flight: AtomicUsize,
    delivering: AtomicUsize,
    closing: AtomicBool,
    disconnected: AtomicBool,
    /// The receiver asked for a reset: the abortive disconnect was issued (once).
    aborted: AtomicBool,
    slots: PoolArray<TcpSlot<C::Context>>,
    control_irp: *mut IRP,
    /// The IRP of the one abortive disconnect (counted in `in_flight` while WSK holds it).
    abort_irp: *mut IRP,
    control_event: UnsafeCell<MaybeUninit<KEVENT>>,
}

impl<R: StreamReceiver, C: SendCompletion> TcpInner<R, C> {
    fn dispatch(&self) -> Option<&WSK_PROVIDER_CONNECTION_DISPATCH> {
        let d = self.dispatch.load(Ordering::Acquire);
        // SAFETY: null, or the provider's static connection dispatch table of an open socket.
        unsafe { d.as_ref() }
    }

    fn acquire_slot(&self) -> Option<&TcpSlot<C::Context>> {
        super::take_slot(&self.free, self.slots.as_slice(), &self.in_flight)
    }

    fn free_slot(&self, index: usize) {
        crate::sync::bitmap_put(&self.free, index);
    }

    fn event(&self) -> *mut KEVENT {
        self.control_event.get().cast()
    }

    /// Runs one control operation on the control IRP and waits for it. PASSIVE_LEVEL.
    fn sync_op(&self, op: impl FnOnce(*mut IRP) -> NTSTATUS) -> (NTSTATUS, usize) {
        let irp = self.control_irp;
        // SAFETY: our IRP, not in flight (control operations are sequential and waited for).
        unsafe { IoReuseIrp(irp, STATUS_UNSUCCESSFUL) };
        // SAFETY: the event lives in the socket's pool block.
        unsafe { KeClearEvent(self.event()) };
        // SAFETY: our IRP with one stack location, none current after IoReuseIrp.
        unsafe {
            IoSetCompletionRoutine(irp, Some(tcp_control_complete), self.event().cast(), true, true, true)
        };
        let status = op(irp);
        if status == STATUS_PENDING {
            // SAFETY: PASSIVE_LEVEL (caller's contract); the completion routine sets the event.
            let _ = unsafe {
                KeWaitForSingleObject(self.event().cast(), Executive, KernelMode, FALSE, null_mut())
            };
        }
        // SAFETY: completed (WSK completes the IRP before returning a final status).
        unsafe { irp_result(irp) }
    }

    /// Resets the connection once (abortive `WskDisconnect` on the preallocated abort IRP). IRQL <=
    /// DISPATCH_LEVEL.
    fn abort(&self) {
        self.disconnected.store(true, Ordering::Release);
        if self.aborted.swap(true, Ordering::AcqRel) || self.abort_irp.is_null() {
            return;
        }
        let Some(disconnect) = self.dispatch().and_then(|d| d.WskDisconnect) else { return };
        let socket = self.socket.load(Ordering::Acquire);
        let context: *mut c_void = core::ptr::from_ref(&self.in_flight).cast_mut().cast();
        // SAFETY: our IRP, fresh from IoAllocateIrp and used only here, once; one stack location.
        unsafe {
            IoSetCompletionRoutine(self.abort_irp, Some(tcp_abort_complete), context, true, true, true)
        };
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        // SAFETY: IRQL <= DISPATCH_LEVEL; an open socket (the close waits for `in_flight`); no buffer.
        let _ = unsafe { disconnect(socket, null_mut(), WSK_FLAG_ABORTIVE, self.abort_irp) };
    }

    /// `SO_WSK_EVENT_CALLBACK` with `mask`. PASSIVE_LEVEL.
    fn set_events(&self, mask: u32) -> NTSTATUS {
        let socket = self.socket.load(Ordering::Acquire);
        let Some(control) = self.dispatch().and_then(|d| d.Basic.WskControlSocket) else {
            return STATUS_NOT_SUPPORTED;
        };
        let mut request = WSK_EVENT_CALLBACK_CONTROL { NpiId: &NPI_WSK_INTERFACE_ID, EventMask: mask };
        let (status, _) = self.sync_op(|irp| {
            // SAFETY: an open socket; the request lives on this frame, which waits for completion.
            unsafe {
                control(
                    socket,
                    WskSetOption,
                    SO_WSK_EVENT_CALLBACK,
                    SOL_SOCKET,
                    core::mem::size_of::<WSK_EVENT_CALLBACK_CONTROL>(),
                    (&raw mut request).cast(),
                    0,
                    null_mut(),
                    null_mut(),
                    irp,
                )
            }
        });
        status
    }
}

/// Completion routine of the control IRP: signals the waiter. IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn tcp_control_complete(
    _device: *mut DEVICE_OBJECT,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the context is the socket's KEVENT, initialised and alive while the operation runs.
    let _ = unsafe { KeSetEvent(context.cast(), 0, FALSE) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Completion routine of the abort IRP: the socket's close may go on. IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn tcp_abort_complete(
    _device: *mut DEVICE_OBJECT,
    _irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the context is the socket's in-flight counter; the socket waits for it to reach zero
    // before it frees anything.
    let in_flight = unsafe { &*context.cast::<AtomicUsize>().cast_const() };
    in_flight.fetch_sub(1, Ordering::AcqRel);
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Completion routine of a send IRP. IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn tcp_send_complete<R: StreamReceiver, C: SendCompletion>(
    _device: *mut DEVICE_OBJECT,
    irp: *mut IRP,
    context: *mut c_void,
) -> NTSTATUS {
    // SAFETY: the context is this IRP's slot, inside a socket that waits for every completion routine.
    let slot = unsafe { &*context.cast::<TcpSlot<C::Context>>().cast_const() };
    // SAFETY: the slot's owner is the socket's TcpInner<R, C>.
    let inner = unsafe { &*slot.owner.cast::<TcpInner<R, C>>() };
    // SAFETY: our IRP, inside its completion routine.
    let (status, bytes) = unsafe { irp_result(irp) };
    // SAFETY: the slot is this send's until freed below.
    let cell = unsafe { &*slot.context.get() };
    // SAFETY: filled by the send that passed this IRP; read once, here.
    let user = unsafe { cell.assume_init_read() };
    // SAFETY: our IRP, completed; reinitialised for the next send.
    unsafe { IoReuseIrp(irp, STATUS_UNSUCCESSFUL) };
    inner.free_slot(slot.index);
    inner.completion.on_send_complete(status, bytes, user);
    inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    STATUS_MORE_PROCESSING_REQUIRED
}

/// `WskReceiveEvent`. IRQL <= DISPATCH_LEVEL. Consumes everything (`*bytes_accepted` untouched).
unsafe extern "system" fn receive_event<R: StreamReceiver, C: SendCompletion>(
    socket_context: *mut c_void,
    flags: u32,
    indication: *mut WSK_DATA_INDICATION,
    bytes_indicated: usize,
    _bytes_accepted: *mut usize,
) -> NTSTATUS {
    // SAFETY: the socket context is the socket's TcpInner<R, C>, alive until the socket is closed.
    let inner = unsafe { &*socket_context.cast_const().cast::<TcpInner<R, C>>() };
    if indication.is_null() {
        // The socket is no longer functional: report it like a reset, once.
        if !inner.closing.load(Ordering::Acquire) && !inner.disconnected.swap(true, Ordering::AcqRel) {
            inner.receiver.on_disconnect(true);
        }
        return STATUS_SUCCESS;
    }
    if inner.closing.load(Ordering::Acquire) || inner.aborted.load(Ordering::Acquire) {
        return STATUS_SUCCESS;
    }
    inner.delivering.fetch_add(1, Ordering::AcqRel);
    let data = StreamData { head: indication, len: bytes_indicated, flags, _borrow: PhantomData };
    if !inner.receiver.on_data(data) {
        inner.abort();
    }
    inner.delivering.fetch_sub(1, Ordering::AcqRel);
    STATUS_SUCCESS
}

/// `WskDisconnectEvent`. IRQL <= DISPATCH_LEVEL.
unsafe extern "system" fn disconnect_event<R: StreamReceiver, C: SendCompletion>(
    socket_context: *mut c_void,
    flags: u32,
) -> NTSTATUS {
    // SAFETY: as in receive_event.
    let inner = unsafe { &*socket_context.cast_const().cast::<TcpInner<R, C>>() };
    if !inner.closing.load(Ordering::Acquire) && !inner.disconnected.swap(true, Ordering::AcqRel) {
        inner.delivering.fetch_add(1, Ordering::AcqRel);
        inner.receiver.on_disconnect(flags & WSK_FLAG_ABORTIVE != 0);
        inner.delivering.fetch_sub(1, Ordering::AcqRel);
    }
    STATUS_SUCCESS
}

/// A connected TCP client socket. Bytes arrive through `R`'s [`StreamReceiver::on_data`]; sends
/// complete through `C`'s [`SendCompletion::on_send_complete`] over a fixed pool of IRPs preallocated
/// at connect (no allocation per send; an empty pool refuses with `STATUS_DEVICE_BUSY`). Drop closes
/// the socket (PASSIVE_LEVEL; abortive unless [`TcpSocket::disconnect`] ran).
pub struct TcpSocket<R: StreamReceiver, C: SendCompletion> {
    inner: ManuallyDrop<PoolBox<TcpInner<R, C>>>,
    local: SocketAddr,
    remote: SocketAddr,
}

// SAFETY: the shared state is atomics, the receiver and completion (Send + Sync), and slots whose
// exclusive use the free bitmap hands out.
unsafe impl<R: StreamReceiver, C: SendCompletion> Send for TcpSocket<R, C> {}
// SAFETY: as above; every `&self` method is safe to call concurrently.
unsafe impl<R: StreamReceiver, C: SendCompletion> Sync for TcpSocket<R, C> {}

impl<R: StreamReceiver, C: SendCompletion> TcpSocket<R, C> {
    /// Creates a connection socket, binds it to `local` (port 0: any), connects to `remote` (waiting
    /// for the connect's completion) and enables the receive and disconnect events. PASSIVE_LEVEL.
    /// `send_irps` (1..=[`MAX_SEND_IRPS`]) IRPs are preallocated. Errors: the connect's status
    /// (`STATUS_CONNECTION_REFUSED` when nothing listens), `STATUS_INVALID_PARAMETER` for mismatched
    /// families or a bad `send_irps`, `STATUS_INVALID_DEVICE_STATE` above PASSIVE_LEVEL; nothing stays
    /// open on failure.
    pub fn connect(
        client: &WskClient,
        local: &SocketAddr,
        remote: &SocketAddr,
        send_irps: usize,
        receiver: R,
        completion: C,
    ) -> Result<Self, NTSTATUS> {
        if current_irql() != PASSIVE_LEVEL {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        if send_irps == 0 || send_irps > MAX_SEND_IRPS || local.is_ipv4() != remote.is_ipv4() {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let slots = PoolArray::new(send_irps, |index| TcpSlot {
            irp: null_mut(),
            index,
            owner: core::ptr::null(),
            context: UnsafeCell::new(MaybeUninit::uninit()),
            buf: UnsafeCell::new(WSK_BUF { Mdl: null_mut(), Offset: 0, Length: 0 }),
        })?;
        let free = core::array::from_fn(|w| {
            let bits = send_irps.saturating_sub(w * 64).min(64);
            AtomicU64::new(if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 })
        });
        let inner = PoolBox::new(
            TcpInner {
                socket: AtomicPtr::new(null_mut()),
                dispatch: AtomicPtr::new(null_mut()),
                receiver,
                completion,
                client_dispatch: WSK_CLIENT_CONNECTION_DISPATCH {
                    WskReceiveEvent: Some(receive_event::<R, C>),
                    WskDisconnectEvent: Some(disconnect_event::<R, C>),
                    WskSendBacklogEvent: None,
                },
                free,
                in_flight: AtomicUsize::new(0),
                delivering: AtomicUsize::new(0),
                closing: AtomicBool::new(false),
                disconnected: AtomicBool::new(false),
                aborted: AtomicBool::new(false),
                slots,
                control_irp: null_mut(),
                abort_irp: null_mut(),
                control_event: UnsafeCell::new(MaybeUninit::zeroed()),
            },
            POOL_TAG,
        )?;
        let mut socket = TcpSocket { inner: ManuallyDrop::new(inner), local: *local, remote: *remote };
        socket.allocate_irps()?;
        socket.open(client)?;
        Ok(socket)
    }

    fn allocate_irps(&mut self) -> Result<(), NTSTATUS> {
        let owner: *const c_void = (&raw const **self.inner).cast();
        let inner: &mut TcpInner<R, C> = &mut self.inner;
        // SAFETY: the event lives in the pool block, which does not move; not waited on yet.
        unsafe { KeInitializeEvent(inner.event(), NotificationEvent, FALSE) };
        // SAFETY: PASSIVE_LEVEL; one stack location is all a WSK client needs.
        inner.control_irp = unsafe { IoAllocateIrp(1, FALSE) };
        if inner.control_irp.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: as above.
        inner.abort_irp = unsafe { IoAllocateIrp(1, FALSE) };
        if inner.abort_irp.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        for slot in inner.slots.as_mut_slice() {
            slot.owner = owner;
            // SAFETY: as above.
            slot.irp = unsafe { IoAllocateIrp(1, FALSE) };
            if slot.irp.is_null() {
                return Err(STATUS_INSUFFICIENT_RESOURCES);
            }
        }
        Ok(())
    }

    /// `WskSocket`, `WskBind`, `WskConnect`, `WskGetLocalAddress`, events on. PASSIVE_LEVEL.
    fn open(&mut self, client: &WskClient) -> Result<(), NTSTATUS> {
        let provider = client.provider();
        // SAFETY: the captured provider's dispatch table is static.
        let create = unsafe { (*provider.Dispatch).WskSocket }.ok_or(STATUS_NOT_SUPPORTED)?;
        let inner: &TcpInner<R, C> = &self.inner;
        let context: *mut c_void = (&raw const *inner).cast_mut().cast();
        let dispatch: *const c_void = (&raw const inner.client_dispatch).cast();
        let family = self.local.family();
        let (status, information) = inner.sync_op(|irp| {
            // SAFETY: PASSIVE_LEVEL; the context and client dispatch live in the pool block until the
            // socket is closed; the IRP is ours.
            unsafe {
                create(
                    provider.Client,
                    family,
                    SOCK_STREAM,
                    IPPROTO_TCP,
                    WSK_FLAG_CONNECTION_SOCKET,
                    context,
                    dispatch,
                    null_mut(),
                    null_mut(),
                    null_mut(),
                    irp,
                )
            }
        });
        if !NT_SUCCESS(status) {
            return Err(status);
        }
        let socket = information as *mut WSK_SOCKET;
        if socket.is_null() {
            return Err(STATUS_UNSUCCESSFUL);
        }
        // SAFETY: a socket the provider just created; its Dispatch is the connection table (static).
        let table = unsafe { (*socket).Dispatch }.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>().cast_mut();
        inner.socket.store(socket, Ordering::Release);
        inner.dispatch.store(table, Ordering::Release);
        let d = inner.dispatch().ok_or(STATUS_UNSUCCESSFUL)?;

        let bind = d.WskBind.ok_or(STATUS_NOT_SUPPORTED)?;
        let mut address = self.local.to_raw();
        // SAFETY: an open socket; the address lives on this frame, which waits for completion.
        let (status, _) = inner.sync_op(|irp| unsafe { bind(socket, (&raw mut address).cast(), 0, irp) });
        if !NT_SUCCESS(status) {
            return Err(status);
        }
        let connect = d.WskConnect.ok_or(STATUS_NOT_SUPPORTED)?;
        let mut remote = self.remote.to_raw();
        // SAFETY: a bound socket; the address lives on this frame, which waits for completion.
        let (status, _) = inner.sync_op(|irp| unsafe { connect(socket, (&raw mut remote).cast(), 0, irp) });
        if !NT_SUCCESS(status) {
            return Err(status);
        }
        if let Some(get) = d.WskGetLocalAddress {
            let mut bound = self.local.to_raw();
            // SAFETY: a connected socket; a SOCKADDR_INET has room for either family.
            let (status, _) = inner.sync_op(|irp| unsafe { get(socket, (&raw mut bound).cast(), irp) });
            if NT_SUCCESS(status) {
                // SAFETY: the provider wrote a socket address of the socket's family.
                if let Some(addr) = unsafe { SocketAddr::from_raw((&raw const bound).cast()) } {
                    self.local = addr;
                }
            }
        }
        let status = inner.set_events(WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT);
        if NT_SUCCESS(status) {
            Ok(())
        } else {
            Err(status)
        }
    }

    /// The local address (the port the provider chose).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// Send IRPs in the pool.
    pub fn send_capacity(&self) -> usize {
        self.inner.slots.as_slice().len()
    }

    /// Sends whose completion routine has not finished yet.
    pub fn sends_in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Whether the connection is over: the peer closed or reset it (the disconnect event ran), or the
    /// receiver asked for a reset.
    pub fn is_disconnected(&self) -> bool {
        self.inner.disconnected.load(Ordering::Acquire)
    }

    /// The receiver.
    pub fn receiver(&self) -> &R {
        &self.inner.receiver
    }

    /// The completion handler.
    pub fn completion(&self) -> &C {
        &self.inner.completion
    }

    /// Sends `buffer` on the stream (`WskSend`). IRQL <= DISPATCH_LEVEL. `Ok`: the completion callback
    /// runs exactly once with `context` (perhaps before this returns); the buffer stays the caller's
    /// until then. `Err` hands the context back: `STATUS_DEVICE_BUSY` when every IRP is in flight,
    /// `STATUS_INVALID_DEVICE_STATE` when closing or disconnected, `STATUS_INVALID_PARAMETER` for an
    /// empty buffer.
    pub fn send(&self, buffer: SendBuffer, context: C::Context) -> Result<(), SendError<C::Context>> {
        let inner: &TcpInner<R, C> = &self.inner;
        let Some(send) = inner.dispatch().and_then(|d| d.WskSend) else {
            return Err(SendError { status: STATUS_INVALID_DEVICE_STATE, context });
        };
        if buffer.is_empty() {
            return Err(SendError { status: STATUS_INVALID_PARAMETER, context });
        }
        if inner.closing.load(Ordering::Acquire) || inner.disconnected.load(Ordering::Acquire) {
            return Err(SendError { status: STATUS_INVALID_DEVICE_STATE, context });
        }
        let Some(slot) = inner.acquire_slot() else {
            return Err(SendError { status: STATUS_DEVICE_BUSY, context });
        };
        // SAFETY: the free bitmap gave this slot to us alone; its context is empty.
        unsafe { (*slot.context.get()).write(context) };
        // SAFETY: as above.
        unsafe { *slot.buf.get() = buffer.wsk_buf() };
        // SAFETY: our IRP, reused (or fresh) with one stack location, none current.
        unsafe {
            IoSetCompletionRoutine(
                slot.irp,
                Some(tcp_send_complete::<R, C>),
                core::ptr::from_ref(slot).cast_mut().cast(),
                true,
                true,
                true,
            );
        };
        let socket = inner.socket.load(Ordering::Acquire);
        // SAFETY: IRQL <= DISPATCH_LEVEL; an open socket; the WSK_BUF and IRP live in the slot until
        // completion and the caller keeps the MDLs (SendBuffer::new's contract). The provider completes
        // the IRP whatever it returns.
        let _ = unsafe { send(socket, slot.buf.get(), 0, slot.irp) };
        Ok(())
    }

    /// Graceful disconnect (`WskDisconnect`, no final buffer): the peer reads end of stream; receiving
    /// continues until it closes too. PASSIVE_LEVEL.
    pub fn disconnect(&self) -> Result<(), NTSTATUS> {
        if current_irql() != PASSIVE_LEVEL {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        let inner: &TcpInner<R, C> = &self.inner;
        let socket = inner.socket.load(Ordering::Acquire);
        let disconnect = inner.dispatch().and_then(|d| d.WskDisconnect).ok_or(STATUS_INVALID_DEVICE_STATE)?;
        // SAFETY: an open socket; no buffer; the IRP is ours.
        let (status, _) = inner.sync_op(|irp| unsafe { disconnect(socket, null_mut(), 0, irp) });
        if NT_SUCCESS(status) {
            Ok(())
        } else {
            Err(status)
        }
    }

    /// Closes the socket. PASSIVE_LEVEL. After `Ok` no callback of the socket runs.
    pub fn close(mut self) -> Result<(), (Self, NTSTATUS)> {
        match self.shutdown() {
            Ok(()) => Ok(()),
            Err(status) => Err((self, status)),
        }
    }

    fn shutdown(&mut self) -> Result<(), NTSTATUS> {
        if current_irql() != PASSIVE_LEVEL {
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        let socket = self.inner.socket.load(Ordering::Acquire);
        if !socket.is_null() {
            let _ = self.inner.set_events(WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT | WSK_EVENT_DISABLE);
            self.inner.closing.store(true, Ordering::Release);
            wait_until(|| self.inner.delivering.load(Ordering::Acquire) == 0);
            let inner: &TcpInner<R, C> = &self.inner;
            if let Some(close) = inner.dispatch().and_then(|d| d.Basic.WskCloseSocket) {
                // SAFETY: an open socket (nothing is ever retained); the IRP is ours.
                let _ = inner.sync_op(|irp| unsafe { close(socket, irp) });
            }
            inner.socket.store(null_mut(), Ordering::Release);
            inner.dispatch.store(null_mut(), Ordering::Release);
        }
        wait_until(|| self.inner.in_flight.load(Ordering::Acquire) == 0);
        let inner: &mut TcpInner<R, C> = &mut self.inner;
        for slot in inner.slots.as_mut_slice() {
            if !slot.irp.is_null() {
                // SAFETY: our IRP, not in flight.
                unsafe { IoFreeIrp(slot.irp) };
                slot.irp = null_mut();
            }
        }
        for irp in [&mut inner.control_irp, &mut inner.abort_irp] {
            if !irp.is_null() {
                // SAFETY: our IRP, not in flight (`in_flight` is zero).
                unsafe { IoFreeIrp(*irp) };
                *irp = null_mut();
            }
        }
        Ok(())
    }
}

impl<R: StreamReceiver, C: SendCompletion> Drop for TcpSocket<R, C> {
    /// PASSIVE_LEVEL. Closes the socket; above PASSIVE_LEVEL (a caller bug) it is leaked instead, so
    /// callbacks stay valid, and the verifier reports the open socket at unload.
    fn drop(&mut self) {
        if self.shutdown().is_ok() {
            // SAFETY: dropped once, here; the socket is closed and no IRP is in flight.
            unsafe { ManuallyDrop::drop(&mut self.inner) };
        }
    }
}

impl<R: StreamReceiver, C: SendCompletion> core::fmt::Debug for TcpSocket<R, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpSocket")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("in_flight", &self.sends_in_flight())
            .field("disconnected", &self.is_disconnected())
            .finish_non_exhaustive()
    }
}

const _: () = assert!(STATUS_SUCCESS == 0);
