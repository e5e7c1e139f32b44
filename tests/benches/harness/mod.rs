//! The benches' own harness: interleaved rounds, one table per run, and a callgrind mode.
//!
//! The machine is 2 cores shared with builds, so absolute times drift while a bench runs. Every round
//! runs each row of a size once, in turn (interleaved), for about [`ROUND`]; a row's figure is the
//! median of its rounds, and the ratios printed are taken within the same run.
//!
//! Only the closure passed to [`region`] is timed (setup such as sealing the datagrams a receive bench
//! indicates stays outside). Under callgrind run with `--collect-atstart=no
//! --toggle-collect=*harness*region*` and `RDCO_BENCH_ONLY=<row>/<size>` (optionally
//! `RDCO_BENCH_CALLS=<n>`, default 200): only that row runs, `n` times, and only [`region`] is counted;
//! `tests/benches/callgrind_split.py` does this and splits the instructions by crate.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Wall time a row gets per round.
pub const ROUND: Duration = Duration::from_millis(40);
/// Rounds per size.
pub const ROUNDS: usize = 15;

/// Runs `f` once and returns how long it took. Never inlined: its symbol is the callgrind toggle.
#[inline(never)]
pub fn region<F: FnMut()>(mut f: F) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// One bench row: `run(calls)` performs `calls` timed calls through [`region`] (doing any untimed
/// preparation itself) and returns the summed region time; each call handles `packets` packets.
pub struct Row<'a> {
    pub name: &'static str,
    pub packets: usize,
    pub run: Box<dyn FnMut(usize) -> Duration + 'a>,
}

impl<'a> Row<'a> {
    pub fn new(name: &'static str, packets: usize, run: impl FnMut(usize) -> Duration + 'a) -> Row<'a> {
        Row { name, packets, run: Box::new(run) }
    }
}

/// Which row/size the callgrind mode runs, if any.
fn only() -> Option<(String, usize)> {
    let v = std::env::var("RDCO_BENCH_ONLY").ok()?;
    let (row, size) = v.rsplit_once('/')?;
    Some((row.to_string(), size.parse().ok()?))
}

/// Whether the run is filtered to one row (callgrind mode) and that row is not in `group`/`size`.
pub fn skip_size(group: &str, size: usize) -> bool {
    only().is_some_and(|(row, s)| s != size || !row.starts_with(&format!("{group}/")))
}

/// Runs the rows of one size interleaved and prints one line per row: the median ns per packet over
/// the rounds, its spread (min..max) and the ratio to the row named `reference`.
pub fn run(group: &str, size: usize, reference: &str, rows: &mut [Row<'_>]) {
    if let Some((only_row, only_size)) = only() {
        let calls: usize = std::env::var("RDCO_BENCH_CALLS").ok().and_then(|c| c.parse().ok()).unwrap_or(200);
        for r in rows.iter_mut() {
            if only_size == size && only_row == format!("{group}/{}", r.name) {
                (r.run)(calls);
                println!("callgrind {group}/{}/{size}: {} packets", r.name, calls * r.packets);
            }
        }
        return;
    }
    // Warm up and calibrate: calls per round so that a round takes about ROUND.
    let mut calls = Vec::new();
    for r in rows.iter_mut() {
        let mut n = 1;
        loop {
            let t = (r.run)(n);
            if t >= ROUND / 4 || n >= 1 << 20 {
                let per = t.as_secs_f64() / n as f64;
                calls.push(((ROUND.as_secs_f64() / per) as usize).max(1));
                break;
            }
            n *= 2;
        }
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    for _ in 0..ROUNDS {
        for (i, r) in rows.iter_mut().enumerate() {
            let t = (r.run)(calls[i]);
            samples[i].push(t.as_nanos() as f64 / (calls[i] * r.packets) as f64);
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect();
    let reference = rows.iter().position(|r| r.name == reference).map(|i| medians[i]);
    for (i, r) in rows.iter().enumerate() {
        let s = &samples[i];
        let ratio = reference.map_or(String::new(), |x| format!("{:.2}x", medians[i] / x));
        println!(
            "{group}/{:<22} {size:>5} B  {:>9.1} ns/packet  (min {:.1}, max {:.1})  {ratio}",
            r.name,
            medians[i],
            s[0],
            s[s.len() - 1]
        );
    }
}
