#!/usr/bin/env python3
"""Instructions per packet of one bench row, split by crate (callgrind).

    tests/benches/callgrind_split.py filter_send filter_send/divert-zero-copy 1420 [calls]
    tests/benches/callgrind_split.py miniport tx/miniport 1420

Builds nothing: run `cargo bench -p ndistest --features bench --no-run` first (CARGO_TARGET_DIR is
honoured). Runs the bench binary under `valgrind --tool=callgrind` with collection only inside the
harness's `region` (the timed part of the row; see tests/benches/harness/mod.rs) and only that row
(RDCO_BENCH_ONLY), then groups `callgrind_annotate`'s exclusive per-function counts by the crate the
function belongs to. The C runtime and Rust std/core/alloc (malloc, free, memcpy, memset, Vec growth,
BTreeMap code instantiated in std) are attributed to the crate of their nearest non-runtime caller, in
proportion to the calls' inclusive cost (callgrind_annotate --tree=caller); what cannot be attributed
stays in "runtime (unattributed)".
"""
import glob
import os
import re
import subprocess
import sys
from collections import defaultdict

CRYPTO = {"aes", "aes_gcm", "ghash", "polyval", "ctr", "cipher", "universal_hash", "aead", "chacha20",
          "poly1305", "chacha20poly1305", "ring", "subtle", "zeroize", "inout", "cpufeatures"}
EXPORTS = r"^(Ke|Kf|Ex|Ndis|Wsk|Io|Iof|Mm|Rtl|Dbg|Wdf|Net|Ob|Ps|Zw|BCrypt|Hal)[A-Z][A-Za-z0-9]*$"
RUNTIME = {"core", "alloc", "std", "hashbrown", "compiler_builtins", "__rustc"}


def crate_of(func, bench):
    f = func.strip()
    if f.startswith("0x") or f == "":
        return "runtime"
    if re.match(EXPORTS, f):
        return "winsim (simulated kernel)"  # the C-ABI functions winsim exports to the drivers
    m = re.match(r"^[<&(\s]*(?:mut |dyn |unsafe |extern \"\w+\" )*([A-Za-z_][A-Za-z0-9_]*)::", f)
    if not m:
        return "runtime"  # libc symbols: malloc, _int_free, __memcpy_avx_unaligned_erms, ...
    c = m.group(1)
    if c == bench and ("::main" in f or "::harness" in f or f.startswith(f"{bench}::each")):
        return "bench harness"
    if c in CRYPTO:
        return "crypto backend (engine)"
    if c == "datapath":
        return "datapath (engine)"
    if c in RUNTIME:
        return "runtime"
    if c == "kernel":
        return "kernel (driver-side wrappers)"
    if c in ("filter", "miniport"):
        return f"{c} (driver)"
    if c == "winsim":
        return "winsim (simulated kernel)"
    if c == "ndistest":
        return "ndistest (test stand-ins)"
    return c


def main():
    bench, row, size = sys.argv[1], sys.argv[2], sys.argv[3]
    calls = sys.argv[4] if len(sys.argv) > 4 else "200"
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    bins = [p for p in glob.glob(f"{target}/release/deps/{bench}-*") if os.access(p, os.X_OK) and "." not in os.path.basename(p)]
    binary = max(bins, key=os.path.getmtime)
    out = f"/tmp/callgrind.{bench}.{row.replace('/', '_')}.{size}.out"
    env = dict(os.environ, RDCO_BENCH_ONLY=f"{row}/{size}", RDCO_BENCH_CALLS=calls)
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=*harness::region*",
         f"--callgrind-out-file={out}", binary],
        env=env, capture_output=True, text=True, check=True)
    m = re.search(r"callgrind \S+: (\d+) packets", run.stdout)
    if not m:
        sys.exit(f"the row did not run:\n{run.stdout}\n{run.stderr[-2000:]}")
    packets = int(m.group(1))
    tree = subprocess.run(["callgrind_annotate", "--auto=no", "--inclusive=no", "--tree=caller", "--threshold=100", out],
                          capture_output=True, text=True, check=True).stdout
    line = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(<|\*)?\s*(.*)$")
    selfcost, callers, current_callers = {}, defaultdict(list), []
    for text in tree.splitlines():
        mm = line.match(text)
        if not mm:
            current_callers = [] if not text.strip() else current_callers
            continue
        cost, mark, rest = int(mm.group(1).replace(",", "")), mm.group(2), mm.group(3)
        rest = re.sub(r"\s+\[[^\]]*\]$", "", rest)
        rest = re.sub(r"\s+\([\d,]+x\)$", "", rest)
        rest = re.sub(r"\s+\[[^\]]*\]$", "", rest)
        file, sep, func = rest.partition(":")
        func = func if sep and ("/" in file or file == "???") else rest
        if mark == "<":
            current_callers.append((func, cost))
        elif mark == "*":
            selfcost[func] = selfcost.get(func, 0) + cost
            callers[func].extend(current_callers)
            current_callers = []
    groups = defaultdict(float)
    total = sum(selfcost.values())

    def attribute(func, amount, depth):
        c = crate_of(func, bench)
        if c != "runtime":
            groups[c] += amount
            return
        cs = [(f, w) for f, w in callers.get(func, []) if f != func]
        weight = sum(w for _, w in cs)
        if depth > 30 or weight == 0:
            groups["runtime (unattributed)"] += amount
            return
        for f, w in cs:
            attribute(f, amount * w / weight, depth + 1)

    for func, cost in selfcost.items():
        attribute(func, cost, 0)
    print(f"{bench} {row} {size} B: {packets} packets, {total / packets:,.0f} instructions per packet")
    for c, v in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {c:<34} {v / packets:>10,.0f}  {100 * v / total:5.1f} %")
    top = sorted(selfcost.items(), key=lambda kv: -kv[1])[:int(os.environ.get("TOP", "0"))]
    for func, cost in top:
        print(f"    {cost / packets:>9,.0f}  [{crate_of(func, bench)}] {func[:150]}")


if __name__ == "__main__":
    main()
