//! The outer transport: one WSK UDP socket per device, opened and closed as the control API's
//! [`Effects`] say ([`apply`], which the control glue calls after every IOCTL).
//!
//! Locking: the socket sits in a spin lock that the Tx advance and the keepalive DPC hold while they
//! send (DISPATCH_LEVEL; `WskSendMessages` does not block). Completions and the receive event never take
//! it, so a provider that completes a send inline cannot deadlock. Closing takes the socket out under
//! the lock and closes it at PASSIVE_LEVEL outside it. A socket whose datagrams are still lent to the OS
//! cannot close (`STATUS_DEVICE_BUSY`): it parks in `closing` and the close is retried at the next
//! [`apply`] and at device cleanup (by then every Rx buffer came back).
//!
//! A TCP peer (`NEW_PEER` with `OVPN_PROTO_TCP`) gets a connection socket instead
//! ([`crate::tcp::TcpSock`], `crate::tcp` has the stream's framing and Rx path): [`apply`] connects it
//! at PASSIVE_LEVEL inside the IOCTL and the request completes with the connect's status (ovpn-dco-win
//! pends `NEW_PEER` and completes it from `OvpnSocketTcpConnectComplete` with the connect IRP's status,
//! `socket.cpp`; rdco waits for the same completion instead of pending). A failed connect
//! (`STATUS_CONNECTION_REFUSED` when nothing listens) fails the request and the glue rolls the
//! tunnel back to its state before `NEW_PEER` (`Tunnel::rollback`). The TCP socket lives beside the UDP one under its own lock with the same rules.
use core::net::{IpAddr, SocketAddr as NetAddr};

use kernel::ffi::ntos::{NTSTATUS, STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER};
use kernel::sync::SpinLock;
use kernel::wsk::{
    DatagramChain, Receiver, RetainDecision, SendBuffer, SendCompletion, SendError, SocketAddr, SocketConfig,
    UdpSocket, WskClient,
};
use uapi::ovpn::OvpnProto;

use crate::control::{Effects, TransportRequest};
use crate::device::DeviceContext;
use crate::txq::SendCtx;

/// Send IRPs preallocated per socket (sends in flight at once: batches and pings).
pub(crate) const SEND_IRPS: usize = 64;
/// Datagrams per `WskSendMessages`.
pub(crate) const SEND_BATCH: usize = 32;

/// The receive half: hands each indication chain to the Rx path of its device.
pub(crate) struct RxSink {
    ctx: &'static DeviceContext,
}

impl Receiver for RxSink {
    fn on_datagrams(&self, chain: DatagramChain<'_>) -> RetainDecision {
        crate::rxq::on_datagrams(self.ctx, chain)
    }
}

/// The send-completion half: hands each completion to the Tx path of its device.
pub(crate) struct TxDone {
    ctx: &'static DeviceContext,
}

impl SendCompletion for TxDone {
    type Context = SendCtx;
    fn on_send_complete(&self, status: NTSTATUS, bytes: usize, context: SendCtx) {
        crate::txq::on_send_complete(self.ctx, status, bytes, context);
    }
}

/// The device's socket type.
pub(crate) type Socket = UdpSocket<RxSink, TxDone>;

/// The device's transport state.
pub(crate) struct Transport {
    client: SpinLock<Option<WskClient>>,
    socket: SpinLock<Option<Socket>>,
    closing: SpinLock<Option<Socket>>,
    /// A socket that could not close was leaked: its callbacks still reach the device context.
    leaked: core::sync::atomic::AtomicBool,
    /// The TCP socket (client mode with a TCP peer).
    tcp_socket: SpinLock<Option<crate::tcp::TcpSock>>,
    /// The TCP stream's state and Rx pool.
    pub(crate) tcp: crate::tcp::TcpState,
}

impl Transport {
    pub(crate) const fn new() -> Transport {
        Transport {
            client: SpinLock::new(None),
            socket: SpinLock::new(None),
            closing: SpinLock::new(None),
            leaked: core::sync::atomic::AtomicBool::new(false),
            tcp_socket: SpinLock::new(None),
            tcp: crate::tcp::TcpState::new(),
        }
    }

    /// Whether a socket is still open, parked or leaked: its callbacks may still reach the device
    /// context, which must then outlive the device (device cleanup leaks it rather than free it).
    pub(crate) fn holds_context(&self) -> bool {
        self.socket.lock().is_some()
            || self.tcp_socket.lock().is_some()
            || self.closing.lock().is_some()
            || self.leaked.load(core::sync::atomic::Ordering::Acquire)
    }

    /// Runs `f` with the open socket, if any, under the socket lock (DISPATCH_LEVEL).
    pub(crate) fn with_socket<R>(&self, f: impl FnOnce(&Socket) -> R) -> Option<R> {
        let guard = self.socket.lock();
        guard.as_ref().map(f)
    }

    /// Whether a send IRP is free now (or no socket is open: then nothing waits for one). A ping may
    /// still take the last one first; the send then fails with `STATUS_DEVICE_BUSY` and is dropped.
    pub(crate) fn has_send_slot(&self) -> bool {
        if let Some(s) = self.tcp_socket.lock().as_ref() {
            return s.sends_in_flight() < s.send_capacity();
        }
        self.socket.lock().as_ref().is_none_or(|s| s.sends_in_flight() < s.send_capacity())
    }

    /// Whether a socket is open.
    pub(crate) fn is_open(&self) -> bool {
        self.socket.lock().is_some() || self.tcp_socket.lock().is_some()
    }

    /// Bytes a sender leaves in front of its packet for the stream's length prefix: 2 with a TCP
    /// socket, else 0 (see [`crate::tcp::frame`]).
    pub(crate) fn headroom(&self) -> usize {
        if self.tcp_socket.lock().is_some() {
            crate::tcp::FRAME_HEADROOM
        } else {
            0
        }
    }

    /// The bound local address of the open socket (read by the tests' hook).
    #[cfg_attr(target_os = "windows", allow(dead_code))]
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        if let Some(s) = self.tcp_socket.lock().as_ref() {
            return Some(s.local_addr());
        }
        self.with_socket(UdpSocket::local_addr)
    }

    /// Sends `buffers` to `to` as one batch. IRQL <= DISPATCH_LEVEL.
    pub(crate) fn send(
        &self,
        to: &SocketAddr,
        buffers: &[SendBuffer],
        context: SendCtx,
    ) -> Result<(), SendError<SendCtx>> {
        if let Some(s) = self.tcp_socket.lock().as_ref() {
            // One framed packet per WskSend (the caller wrote the prefix into its headroom).
            return match buffers {
                [one] => s.send(*one, context),
                _ => Err(SendError { status: STATUS_INVALID_PARAMETER, context }),
            };
        }
        let guard = self.socket.lock();
        match guard.as_ref() {
            Some(s) if buffers.len() == 1 && !s.supports_send_messages() => {
                s.send_to(to, buffers[0], context)
            }
            Some(s) => s.send_messages(to, buffers, context),
            None => Err(SendError { status: STATUS_INVALID_DEVICE_STATE, context }),
        }
    }
}

/// Converts the control API's address into WSK's.
pub(crate) fn wsk_addr(a: &NetAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(ip) => SocketAddr::v4(ip.octets(), a.port()),
        IpAddr::V6(ip) => SocketAddr::v6(ip.octets(), a.port()),
    }
}

/// Applies the transport and link effects of a control request. PASSIVE_LEVEL. Returns the bound local
/// address when a socket was opened (the glue writes the port of `Listen` into the reply).
/// The WSK statuses of registration, bind and (TCP) connect; a failed TCP connect also undoes the
/// `NEW_PEER` in the tunnel.
pub(crate) fn apply(ctx: &'static DeviceContext, effects: &Effects) -> Result<Option<SocketAddr>, NTSTATUS> {
    retry_close(ctx);
    if effects.close_transport {
        close(ctx);
    }
    let mut bound = None;
    if let Some(request) = effects.open_transport {
        let local = match request {
            TransportRequest::Connect { proto: OvpnProto::Tcp, local, remote } => {
                close(ctx);
                let connected = open_tcp(ctx, &wsk_addr(&local), &wsk_addr(&remote));
                let addr = match connected {
                    Ok(addr) => addr,
                    Err(status) => {
                        // Nothing was connected: the glue rolls the tunnel back to where it was before
                        // NEW_PEER (`Tunnel::rollback`, as for a failed UDP bind).
                        retry_close(ctx);
                        return Err(status);
                    }
                };
                if let Some(up) = effects.link {
                    ctx.set_link(up);
                }
                return Ok(Some(addr));
            }
            TransportRequest::Connect { local, .. } => wsk_addr(&local),
            TransportRequest::Listen { address, .. } => wsk_addr(&address),
        };
        close(ctx);
        bound = Some(open(ctx, &local)?);
    }
    if let Some(up) = effects.link {
        ctx.set_link(up);
    }
    Ok(bound)
}

fn open(ctx: &'static DeviceContext, local: &SocketAddr) -> Result<SocketAddr, NTSTATUS> {
    let client = ctx.transport.client.lock().take();
    let client = match client {
        Some(c) => c,
        None => WskClient::new()?,
    };
    let config = SocketConfig { send_irps: SEND_IRPS, batch: SEND_BATCH };
    let result = Socket::bind(&client, local, config, RxSink { ctx }, TxDone { ctx });
    *ctx.transport.client.lock() = Some(client);
    let socket = result?;
    let addr = socket.local_addr();
    *ctx.transport.socket.lock() = Some(socket);
    Ok(addr)
}

/// Connects the TCP socket. PASSIVE_LEVEL, no socket open.
fn open_tcp(
    ctx: &'static DeviceContext,
    local: &SocketAddr,
    remote: &SocketAddr,
) -> Result<SocketAddr, NTSTATUS> {
    ctx.transport.tcp.prepare(remote)?;
    let client = ctx.transport.client.lock().take();
    let client = match client {
        Some(c) => c,
        None => WskClient::new()?,
    };
    let rx = crate::tcp::StreamRx { ctx };
    let result = crate::tcp::TcpSock::connect(&client, local, remote, SEND_IRPS, rx, TxDone { ctx });
    *ctx.transport.client.lock() = Some(client);
    let socket = result?;
    let addr = socket.local_addr();
    *ctx.transport.tcp_socket.lock() = Some(socket);
    Ok(addr)
}

/// Closes the socket (PASSIVE_LEVEL): queued datagrams are released first; a socket with datagrams still
/// lent to the OS parks until they come back. With no socket left the WSK registration goes too.
pub(crate) fn close(ctx: &'static DeviceContext) {
    let socket = ctx.transport.socket.lock().take();
    let tcp = ctx.transport.tcp_socket.lock().take();
    if let Some(t) = tcp {
        // Nothing is ever retained from a TCP socket: the close only fails above PASSIVE_LEVEL (never
        // here), and then the socket is leaked with its context rather than freed under a callback.
        if let Err((t, _)) = t.close() {
            ctx.transport.leaked.store(true, core::sync::atomic::Ordering::Release);
            core::mem::forget(t);
        }
    }
    ctx.rx.drop_queued(ctx);
    ctx.rx.flush_releases(ctx);
    if let Some(s) = socket {
        if let Err((s, _busy)) = s.close() {
            let old = ctx.transport.closing.lock().replace(s);
            if let Some(old) = old {
                // Two parked sockets: keep trying the older one; never invalidate lent datagrams.
                park_again(ctx, old);
            }
        }
    }
    retry_close(ctx);
}

fn park_again(ctx: &'static DeviceContext, s: Socket) {
    if let Err((s, _)) = s.close() {
        // Still busy: leak rather than invalidate what the OS holds (the wrapper's documented choice).
        ctx.transport.leaked.store(true, core::sync::atomic::Ordering::Release);
        core::mem::forget(s);
    }
}

/// Retries closing a parked socket; drops the WSK registration when no socket is left. PASSIVE_LEVEL.
fn retry_close(ctx: &'static DeviceContext) {
    let parked = ctx.transport.closing.lock().take();
    if let Some(s) = parked {
        if let Err((s, _)) = s.close() {
            *ctx.transport.closing.lock() = Some(s);
            return;
        }
    }
    if ctx.transport.socket.lock().is_none()
        && ctx.transport.tcp_socket.lock().is_none()
        && ctx.transport.closing.lock().is_none()
    {
        ctx.transport.tcp.release();
        let client = ctx.transport.client.lock().take();
        drop(client);
    }
}
