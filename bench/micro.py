#!/usr/bin/env python3
"""Collect the criterion results (`cargo bench`) into bench/results/micro.json
with a markdown table for RESULTS.md.

  python3 bench/micro.py --criterion target/criterion --json bench/results/micro.json
"""

import argparse
import datetime as dt
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--criterion", required=True, help="criterion's output directory")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    for path in sorted(glob.glob(os.path.join(args.criterion, "*", "new", "benchmark.json"))):
        with open(path) as f:
            meta = json.load(f)
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            est = json.load(f)
        rows.append(
            {
                "name": meta.get("title") or meta.get("full_id"),
                "median_ns": est["median"]["point_estimate"],
                "low_ns": est["median"]["confidence_interval"]["lower_bound"],
                "high_ns": est["median"]["confidence_interval"]["upper_bound"],
            }
        )
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"\n## Micro-benchmarks (`cargo bench`, {date})\n",
        "criterion medians with their 95% confidence interval; `benches/ics.rs` and `benches/server.rs`.\n",
        "| benchmark | median | interval |",
        "| --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {fmt_ns(r['median_ns'])} | {fmt_ns(r['low_ns'])} – {fmt_ns(r['high_ns'])} |")
    res = {"kind": "micro", "date": date, "machine": report.machine(), "benches": rows}
    res["markdown"] = "\n".join(lines) + "\n"
    print(res["markdown"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
