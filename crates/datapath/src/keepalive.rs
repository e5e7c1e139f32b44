//! Keepalive ping and timeout, driven by the caller's clock.
//!
//! After `interval` without traffic out, [`Keepalive::poll`] asks for a ping (the 16-byte
//! [`crate::wire::KEEPALIVE_PING`] sealed as a data packet); after `timeout` without traffic in,
//! it reports a timeout. A zero interval or timeout turns that half off.

use crate::time::Instant;
use core::time::Duration;

/// What the keepalive timers want now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepaliveAction {
    /// Nothing due.
    Idle,
    /// Send a keepalive ping now.
    SendPing,
    /// Nothing was received for the timeout: the peer is gone.
    Timeout,
}

/// Keepalive state of one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    interval: Duration,
    timeout: Duration,
    last_tx: Instant,
    last_rx: Instant,
    timed_out: bool,
}

impl Keepalive {
    /// New timers, both counting from `now`.
    pub fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        Keepalive { interval, timeout, last_tx: now, last_rx: now, timed_out: false }
    }

    /// Changes the interval and timeout (`OVPN_IOCTL_SET_PEER`), restarting both from `now`.
    pub fn configure(&mut self, interval: Duration, timeout: Duration, now: Instant) {
        *self = Keepalive::new(interval, timeout, now);
    }

    /// Something was sent at `now`.
    #[inline]
    pub fn on_sent(&mut self, now: Instant) {
        if now > self.last_tx {
            self.last_tx = now;
        }
    }

    /// An authenticated packet was received at `now`.
    #[inline]
    pub fn on_received(&mut self, now: Instant) {
        if now > self.last_rx {
            self.last_rx = now;
        }
        self.timed_out = false;
    }

    /// What is due at `now`. A timeout is reported once, until something is received again.
    pub fn poll(&mut self, now: Instant) -> KeepaliveAction {
        if !self.timeout.is_zero() && !self.timed_out && now.saturating_since(self.last_rx) >= self.timeout {
            self.timed_out = true;
            return KeepaliveAction::Timeout;
        }
        if !self.interval.is_zero() && now.saturating_since(self.last_tx) >= self.interval {
            return KeepaliveAction::SendPing;
        }
        KeepaliveAction::Idle
    }

    /// The next instant at which [`Self::poll`] may have something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let ping = (!self.interval.is_zero()).then(|| self.last_tx.saturating_add(self.interval));
        let dead =
            (!self.timeout.is_zero() && !self.timed_out).then(|| self.last_rx.saturating_add(self.timeout));
        match (ping, dead) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn ping_and_timeout() {
        let mut k = Keepalive::new(Duration::from_secs(10), Duration::from_mins(1), t(0));
        assert_eq!(k.next_deadline(), Some(t(10_000)));
        assert_eq!(k.poll(t(9_999)), KeepaliveAction::Idle);
        assert_eq!(k.poll(t(10_000)), KeepaliveAction::SendPing);
        k.on_sent(t(10_000));
        assert_eq!(k.poll(t(15_000)), KeepaliveAction::Idle);
        k.on_received(t(30_000));
        assert_eq!(k.next_deadline(), Some(t(20_000)));
        k.on_sent(t(85_000));
        assert_eq!(k.poll(t(89_999)), KeepaliveAction::Idle);
        assert_eq!(k.poll(t(90_000)), KeepaliveAction::Timeout);
        assert_eq!(k.poll(t(90_001)), KeepaliveAction::Idle);
        k.on_received(t(91_000));
        assert_eq!(k.poll(t(151_000)), KeepaliveAction::Timeout);
    }

    #[test]
    fn disabled() {
        let mut k = Keepalive::new(Duration::ZERO, Duration::ZERO, t(0));
        assert_eq!(k.poll(t(u64::MAX)), KeepaliveAction::Idle);
        assert_eq!(k.next_deadline(), None);
    }
}
