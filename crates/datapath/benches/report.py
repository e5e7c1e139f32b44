#!/usr/bin/env python3
"""Turns criterion's estimates (target/criterion) into the markdown table of docs/performance.md.

    CARGO_TARGET_DIR=... cargo bench -p datapath --features ring
    python3 crates/datapath/benches/report.py "$CARGO_TARGET_DIR/criterion"
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"


def est(path):
    try:
        with open(os.path.join(path, "new", "estimates.json")) as f:
            e = json.load(f)
        return (e.get("slope") or e["mean"])["point_estimate"]  # ns per iteration
    except FileNotFoundError:
        return None


def cell(ns, size):
    if ns is None:
        return "–"
    return f"{ns:,.0f} ns · {size * 8 / ns:.2f} Gbit/s"


rows = []
for op in ("seal", "open"):
    for cipher in ("aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"):
        g = os.path.join(root, f"{op}_{cipher}")
        if not os.path.isdir(g):
            continue
        for size in (64, 512, 1420):
            def get(name):
                return est(os.path.join(g, name, str(size)))
            raw = get("raw-rustcrypto")
            eng = get("engine")
            crate = get("raw-aes-gcm-crate-inplace") or get("raw-chacha20poly1305-crate-inplace")
            ring_raw = get("raw-ring-inplace")
            ring_gather = get("ring-gather-then-inplace")
            eng_ring = get("engine-ring")
            seg3 = get("engine-3-segments")
            seg3_ring = get("engine-ring-3-segments")
            rows.append((op, cipher, size, raw, eng, crate, ring_raw, ring_gather, eng_ring, seg3, seg3_ring))

print("| op | cipher | bytes | raw RustCrypto | engine (RustCrypto) | engine/raw RustCrypto | RustCrypto crate in place | ring raw in place | ring gather+in place | engine (ring) | engine (ring)/ring raw | engine (RustCrypto)/ring raw |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for op, cipher, size, raw, eng, crate, rr, rg, er, seg3, seg3r in rows:
    ratio = f"{eng / raw:.3f}" if raw and eng else "–"
    ring_ratio = f"{er / rr:.3f}" if rr and er else "–"
    rc_ring_ratio = f"{eng / rr:.2f}x" if rr and eng else "–"
    print(f"| {op} | {cipher} | {size} | {cell(raw, size)} | {cell(eng, size)} | {ratio} | {cell(crate, size)} | {cell(rr, size)} | {cell(rg, size)} | {cell(er, size)} | {ring_ratio} | {rc_ring_ratio} |")
print()
for op, cipher, size, raw, eng, crate, rr, rg, er, seg3, seg3r in rows:
    if seg3:
        print(f"- {op} {cipher} {size} B from 3 segments, engine (RustCrypto): {cell(seg3, size)} ({seg3 / raw:.3f} x raw RustCrypto)")
    if seg3r and rr:
        print(f"- {op} {cipher} {size} B from 3 segments, engine (ring): {cell(seg3r, size)} ({seg3r / rr:.3f} x ring raw)")
for name in ("v4", "v6"):
    ns = est(os.path.join(root, "lookup-10k-routes", name))
    if ns is not None:
        print(f"- peer lookup, 10k-route table, {name}: {ns:.1f} ns")
