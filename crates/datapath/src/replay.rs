//! The receive replay window.
//!
//! [`ReplayWindow::check`] is called before the AEAD and does not change the window;
//! [`ReplayWindow::commit`] is called only after the packet authenticated, so a forged packet
//! never moves the window.
//!
//! Besides the sequence window (at least [`DEFAULT_WINDOW`] packets, up to [`MAX_WINDOW`]), a
//! time backtrack limit (`OpenVPN`'s `replay-window n t`) refuses a packet that arrives out of order
//! after its place in the window was opened more than `time_backtrack` ago. Opening times are kept
//! per 64-id word of the bitmap, so the limit is applied at that granularity.

use crate::time::Instant;
use core::fmt;
use core::time::Duration;

/// Default window, in packets.
pub const DEFAULT_WINDOW: u32 = 2048;
/// Largest configurable window, in packets.
pub const MAX_WINDOW: u32 = 4096;
/// Default time backtrack limit (`OpenVPN`'s default is 15 s).
pub const DEFAULT_TIME_BACKTRACK: Duration = Duration::from_secs(15);

const WORD_BITS: u64 = 64;
/// The bitmap holds twice the largest window, so that opening a word (which clears the slot of
/// the ids one lap of the bitmap earlier) never clears an id that is still inside the window.
const CAPACITY: u64 = 2 * MAX_WINDOW as u64;
const WORDS: usize = (CAPACITY / WORD_BITS) as usize;

/// Replay-protection settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayConfig {
    /// Window size in packets, `1..=MAX_WINDOW`.
    pub window: u32,
    /// Out-of-order packets whose window slot opened longer ago than this are refused; zero
    /// turns the time limit off.
    pub time_backtrack: Duration,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig { window: DEFAULT_WINDOW, time_backtrack: DEFAULT_TIME_BACKTRACK }
    }
}

/// Why a packet id was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Packet id 0 is never sent.
    ZeroId,
    /// Seen before.
    Duplicate,
    /// Behind the window.
    TooOld,
    /// In the window, but its slot opened longer ago than the time backtrack limit.
    TimeBacktrack,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplayError::ZeroId => "packet id 0",
            ReplayError::Duplicate => "replayed packet",
            ReplayError::TooOld => "packet id behind the replay window",
            ReplayError::TimeBacktrack => "packet arrived too late (time backtrack)",
        })
    }
}

/// A sliding replay window over 64-bit packet ids.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest id committed; 0 before the first.
    highest: u64,
    /// Bit `id % CAPACITY` is set once `id` was committed.
    bits: [u64; WORDS],
    /// When each 64-id word was opened (entered by `highest`).
    opened: [u64; WORDS],
    window: u64,
    backtrack_ms: u64,
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// A fresh window. The window size is clamped to `1..=MAX_WINDOW`.
    pub fn new(config: ReplayConfig) -> Self {
        ReplayWindow {
            highest: 0,
            bits: [0; WORDS],
            opened: [0; WORDS],
            window: u64::from(config.window.clamp(1, MAX_WINDOW)),
            backtrack_ms: u64::try_from(config.time_backtrack.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The highest id committed so far (0 if none).
    #[inline]
    pub fn highest(&self) -> u64 {
        self.highest
    }

    #[inline]
    fn word(id: u64) -> usize {
        // `WORDS` is a power of two; the result is < WORDS.
        ((id / WORD_BITS) % (WORDS as u64)) as usize
    }

    #[inline]
    fn bit(id: u64) -> u64 {
        1u64 << (id % WORD_BITS)
    }

    /// Whether `id` would be accepted now. Does not change the window.
    #[inline]
    pub fn check(&self, id: u64, now: Instant) -> Result<(), ReplayError> {
        if id == 0 {
            return Err(ReplayError::ZeroId);
        }
        if id > self.highest {
            return Ok(());
        }
        let behind = self.highest - id;
        if behind >= self.window {
            return Err(ReplayError::TooOld);
        }
        let w = Self::word(id);
        if self.bits.get(w).copied().unwrap_or(u64::MAX) & Self::bit(id) != 0 {
            return Err(ReplayError::Duplicate);
        }
        if behind > 0 && self.backtrack_ms > 0 {
            let opened = self.opened.get(w).copied().unwrap_or(0);
            if now.as_millis().saturating_sub(opened) > self.backtrack_ms {
                return Err(ReplayError::TimeBacktrack);
            }
        }
        Ok(())
    }

    /// Records `id` as received. Call only after the packet authenticated, and after
    /// [`Self::check`] accepted it.
    ///
    /// The common case, the next id in order (`highest + 1`), is a single word update inline;
    /// anything else (first packet, a jump ahead, a late packet) goes out of line.
    #[inline]
    pub fn commit(&mut self, id: u64, now: Instant) {
        // `id > 1` also rules out id 0 and a window not started yet (`highest == 0`).
        if id > 1 && id - 1 == self.highest {
            let w = Self::word(id);
            if id.is_multiple_of(WORD_BITS) {
                // First id of a new word: open it (clearing the lap-old bits) with `id` set.
                if let Some(b) = self.bits.get_mut(w) {
                    *b = 1;
                }
                if let Some(t) = self.opened.get_mut(w) {
                    *t = now.as_millis();
                }
            } else if let Some(b) = self.bits.get_mut(w) {
                // Same word as `highest`: only bit `id` is above it, and it is set here.
                *b |= Self::bit(id);
            }
            self.highest = id;
            return;
        }
        self.commit_slow(id, now);
    }

    /// [`Self::commit`] for everything but the next id in order.
    #[inline(never)]
    fn commit_slow(&mut self, id: u64, now: Instant) {
        if id == 0 {
            return;
        }
        let now_ms = now.as_millis();
        if self.highest == 0 {
            // First packet: every slot below it opens now.
            self.bits = [0; WORDS];
            self.opened = [now_ms; WORDS];
            self.highest = id;
        } else if id > self.highest {
            let old_word = self.highest / WORD_BITS;
            let new_word = id / WORD_BITS;
            if new_word - old_word >= WORDS as u64 {
                self.bits = [0; WORDS];
                self.opened = [now_ms; WORDS];
            } else {
                // Clear the ids between the old highest and the new one in the old word...
                let w = Self::word(self.highest);
                let keep_old = if self.highest % WORD_BITS == 63 {
                    u64::MAX
                } else {
                    (Self::bit(self.highest) << 1) - 1
                };
                if new_word == old_word {
                    // Same word: clear bits above highest up to id (they are stale from a lap ago).
                    let upto = if id % WORD_BITS == 63 { u64::MAX } else { (Self::bit(id) << 1) - 1 };
                    if let Some(b) = self.bits.get_mut(w) {
                        *b &= keep_old | !upto;
                    }
                } else {
                    if let Some(b) = self.bits.get_mut(w) {
                        *b &= keep_old;
                    }
                    // ...and open every word after it up to the new one.
                    let mut wi = old_word + 1;
                    while wi <= new_word {
                        let idx = Self::word(wi * WORD_BITS);
                        if let Some(b) = self.bits.get_mut(idx) {
                            *b = 0;
                        }
                        if let Some(t) = self.opened.get_mut(idx) {
                            *t = now_ms;
                        }
                        wi += 1;
                    }
                }
            }
            self.highest = id;
        } else if self.highest - id >= self.window {
            return;
        }
        if let Some(b) = self.bits.get_mut(Self::word(id)) {
            *b |= Self::bit(id);
        }
    }

    /// `check` then `commit`, for callers that have already authenticated.
    #[inline]
    pub fn accept(&mut self, id: u64, now: Instant) -> Result<(), ReplayError> {
        self.check(id, now)?;
        self.commit(id, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn win(n: u32) -> ReplayWindow {
        ReplayWindow::new(ReplayConfig { window: n, time_backtrack: Duration::ZERO })
    }

    #[test]
    fn in_order_and_duplicates() {
        let mut w = win(2048);
        assert_eq!(w.check(0, t(0)), Err(ReplayError::ZeroId));
        for id in 1..=5000 {
            w.accept(id, t(0)).unwrap();
            assert_eq!(w.check(id, t(0)), Err(ReplayError::Duplicate));
        }
        assert_eq!(w.check(4999, t(0)), Err(ReplayError::Duplicate));
    }

    #[test]
    fn window_edge() {
        let mut w = win(2048);
        w.accept(3000, t(0)).unwrap();
        // highest - id == window - 1 is the oldest acceptable id.
        assert_eq!(w.check(3000 - 2047, t(0)), Ok(()));
        assert_eq!(w.check(3000 - 2048, t(0)), Err(ReplayError::TooOld));
        w.accept(3000 - 2047, t(0)).unwrap();
        assert_eq!(w.check(3000 - 2047, t(0)), Err(ReplayError::Duplicate));
        // Moving forward by one pushes that id out of the window.
        w.accept(3001, t(0)).unwrap();
        assert_eq!(w.check(3000 - 2047, t(0)), Err(ReplayError::TooOld));
        assert_eq!(w.check(3001 - 2047, t(0)), Ok(()));
    }

    #[test]
    fn far_ahead_jumps() {
        let mut w = win(MAX_WINDOW);
        for id in 1..=100 {
            w.accept(id, t(0)).unwrap();
        }
        w.accept(1_000_000, t(0)).unwrap();
        assert_eq!(w.check(100, t(0)), Err(ReplayError::TooOld));
        // Every id just behind the jump is still acceptable: the bitmap was cleared.
        for id in (1_000_000 - u64::from(MAX_WINDOW) + 1)..1_000_000 {
            assert_eq!(w.check(id, t(0)), Ok(()), "id {id}");
        }
        // A jump shorter than the bitmap but across the lap clears stale bits.
        let mut w = win(MAX_WINDOW);
        w.accept(10, t(0)).unwrap();
        w.accept(10 + u64::from(MAX_WINDOW), t(0)).unwrap();
        assert_eq!(w.check(11 + u64::from(MAX_WINDOW) - 2, t(0)), Ok(()));
        assert_eq!(w.check(10 + u64::from(MAX_WINDOW), t(0)), Err(ReplayError::Duplicate));
        // Jump within the same word.
        let mut w = win(64);
        w.accept(64 * 3 + 1, t(0)).unwrap();
        w.accept(64 * 3 + 5, t(0)).unwrap();
        assert_eq!(w.check(64 * 3 + 3, t(0)), Ok(()));
        assert_eq!(w.check(64 * 3 + 1, t(0)), Err(ReplayError::Duplicate));
        // 64 ids later the same bit positions come round again, cleared.
        w.accept(64 * 4 + 4, t(0)).unwrap();
        assert_eq!(w.check(64 * 4 + 3, t(0)), Ok(()));
        assert_eq!(w.check(64 * 4 + 2, t(0)), Ok(()));
    }

    #[test]
    fn reordering() {
        let mut w = win(2048);
        let order = [5u64, 3, 4, 1, 2, 10, 7, 9, 8, 6];
        for id in order {
            w.accept(id, t(0)).unwrap();
        }
        for id in 1..=10 {
            assert_eq!(w.check(id, t(0)), Err(ReplayError::Duplicate));
        }
        assert_eq!(w.check(11, t(0)), Ok(()));
        // Exhaustive small permutation-ish check against a model.
        let mut w = win(128);
        let mut seen = [false; 600];
        let mut x: u64 = 12345;
        let mut highest = 0u64;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = 1 + x % 599;
            let id_us = usize::try_from(id).unwrap();
            let expect = if id > highest {
                Ok(())
            } else if highest - id >= 128 {
                Err(ReplayError::TooOld)
            } else if seen[id_us] {
                Err(ReplayError::Duplicate)
            } else {
                Ok(())
            };
            assert_eq!(w.check(id, t(0)), expect, "id {id} highest {highest}");
            if expect.is_ok() {
                w.commit(id, t(0));
                seen[id_us] = true;
                highest = highest.max(id);
            }
        }
    }

    #[test]
    fn time_backtrack() {
        let mut w = ReplayWindow::new(ReplayConfig { window: 2048, time_backtrack: Duration::from_secs(15) });
        w.accept(1, t(0)).unwrap();
        w.accept(200, t(1_000)).unwrap();
        // id 150's word opened at t=1000; at t=10000 it may still arrive...
        assert_eq!(w.check(150, t(10_000)), Ok(()));
        // ...but not 16 s after its word opened.
        assert_eq!(w.check(150, t(16_001)), Err(ReplayError::TimeBacktrack));
        // New ids are never limited by time.
        assert_eq!(w.check(201, t(1_000_000)), Ok(()));
    }

    #[test]
    fn in_order_fast_path_matches_slow_path() {
        // Mostly in-order ids (the inline fast path of `commit`) with jumps and late packets,
        // against a window committed only through the general path.
        let cfg = ReplayConfig { window: 256, time_backtrack: Duration::from_secs(1) };
        let (mut fast, mut slow) = (ReplayWindow::new(cfg), ReplayWindow::new(cfg));
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = 1u64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = match x % 16 {
                0 => next + x % 300,
                1 => next.saturating_sub(x % 300).max(1),
                _ => next,
            };
            let now = t(step * 7);
            let got = fast.check(id, now);
            assert_eq!(got, slow.check(id, now), "id {id}");
            if got.is_ok() {
                fast.commit(id, now);
                slow.commit_slow(id, now);
                next = next.max(id + 1);
            }
            assert_eq!(fast.highest, slow.highest);
            assert_eq!(fast.bits, slow.bits, "step {step} id {id}");
            assert_eq!(fast.opened, slow.opened, "step {step} id {id}");
        }
    }

    #[test]
    fn check_does_not_mutate() {
        let mut w = win(2048);
        w.accept(10, t(0)).unwrap();
        assert_eq!(w.check(5000, t(0)), Ok(()));
        // Not committed: 9 is still fine, the window did not move.
        assert_eq!(w.check(9, t(0)), Ok(()));
        assert_eq!(w.highest(), 10);
    }
}
