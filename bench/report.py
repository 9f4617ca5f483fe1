#!/usr/bin/env python3
"""Tables from the benchmark results (bench/results/*.json), and
bench/RESULTS.md from all of them:

  python3 bench/report.py            # rewrite bench/RESULTS.md
"""

import glob
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

# (key, label, kind): "time" medians in ms (lower is better), "rate" per
# second (higher is better), "mem" MB (lower is better).
OPS = [
    ("put", "PUT new event, 8 clients (durable)", "rate"),
    ("put_update", "PUT one update (1 client)", "time"),
    ("get", "GET one event", "time"),
    ("propfind", "PROPFIND depth 1 (etags)", "time"),
    ("query", "calendar-query, one month (etags)", "time"),
    ("query_data", "calendar-query, one month (+data)", "time"),
    ("multiget", "calendar-multiget of 100", "time"),
    ("sync_initial", "sync-collection, initial", "time"),
    ("sync_change", "sync-collection after one change", "time"),
    ("ics", "whole calendar as ICS", "time"),
    ("ics_changed", "whole calendar as ICS after a change", "time"),
    ("ics_304", "ICS revalidation (If-None-Match)", "time"),
    ("rss", "peak RSS (VmHWM)", "mem"),
]


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def fmt_ms(ms):
    if ms is None:
        return "–"
    if ms >= 10_000:
        return f"{ms / 1000:.1f} s"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def cell(op, kind):
    if op is None:
        return "–", None
    if kind == "rate":
        v = op["per_second"]
        return (f"{v:,.0f}/s" if v >= 10 else f"{v:.2f}/s"), v
    if kind == "mem":
        return f"{op['peak_mb']:.0f} MB", op["peak_mb"]
    text = fmt_ms(op["median_ms"])
    if op.get("status") == 200:
        text += " (200, no 304)"
    return text, op["median_ms"]


def ratio(cb, peer, kind):
    if cb is None or peer is None or cb == 0 or peer == 0:
        return "–"
    r = cb / peer if kind == "rate" else peer / cb
    if r >= 100:
        return f"{r:,.0f}×"
    if r >= 10:
        return f"{r:.0f}×"
    return f"{r:.1f}×"


def compare_table(res):
    names = list(res["servers"])
    peers = [n for n in names if n != "calbridge"]
    head = ["operation"] + [f"{n} {res['servers'][n]['version']}" for n in names]
    head += [f"vs {p}" for p in peers]
    rows = [head, ["---"] * len(head)]
    for key, label, kind in OPS:
        vals = {n: cell(res["servers"][n]["ops"].get(key), kind) for n in names}
        row = [label] + [vals[n][0] for n in names]
        row += [ratio(vals["calbridge"][1], vals[p][1], kind) for p in peers]
        rows.append(row)
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    m = res["machine"]
    cal = res["calendar"]
    loads = ", ".join(
        f"{n} {_load(res['servers'][n]['load'])}" for n in names
    )
    return (
        f"{res['events']:,} events in one calendar ({cal['vevents']:,} VEVENTs with overrides, {cal['mb']} MB), "
        f"{m['cores']} cores ({m['cpu']}), {res['date']}. Medians; 'vs' = how many times faster "
        f"(or smaller) calbridge is.\n\n" + "\n".join(lines) + f"\n\nLoaded: {loads}.\n"
    )


def _load(load):
    if load["how"] == "native":
        return f"from its storage format in {load['seconds']:.0f} s"
    return f"through CalDAV PUT in {load['seconds']:.0f} s ({load['per_second']:,.1f}/s)"


def load_all():
    out = {}
    for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
        with open(path) as f:
            out[os.path.basename(path)[:-5]] = json.load(f)
    return out


def sweep_table(res):
    sizes = res["sizes"]
    head = ["operation"] + [s["label"] for s in sizes]
    rows = [head, ["---"] * len(head)]
    for key, label, kind in OPS:
        if key in ("rss",):
            continue
        if not any(key in s["ops"] for s in sizes):
            continue
        rows.append([label] + [cell(s["ops"].get(key), kind)[0] for s in sizes])
    if any("home_propfind" in s["ops"] for s in sizes):
        rows.append(
            ["PROPFIND depth 1 of the home (every calendar)"]
            + [cell(s["ops"].get("home_propfind"), "time")[0] for s in sizes]
        )
    rows.append(["peak RSS (VmHWM)"] + [f"{s['rss']['peak_mb']:.0f} MB" for s in sizes])
    rows.append(["load through PUT"] + [f"{s['load']['per_second']:,.0f}/s" for s in sizes])
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def main():
    results = load_all()
    parts = [open(os.path.join(HERE, "RESULTS.head.md")).read()]
    for key in sorted(k for k in results if k.startswith("compare-")):
        r = results[key]
        parts.append(f"\n## {r['events']:,} events: calbridge, Radicale and Xandikos\n\n" + compare_table(r))
    if "sweep" in results:
        r = results["sweep"]
        parts.append(f"\n## How calbridge's cost grows with size ({r['date']})\n\n" + sweep_table(r))
    for name in ("sync", "micro"):
        if name in results:
            parts.append(results[name].get("markdown", ""))
    text = "\n".join(parts)
    with open(os.path.join(HERE, "RESULTS.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
