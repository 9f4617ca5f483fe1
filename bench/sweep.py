#!/usr/bin/env python3
"""How calbridge's cost grows with size: the operations of compare.py
against calbridge alone with 1,000, 10,000 and 100,000 events in one
calendar, and against one calendar of 50 events in a store of 10,000
such calendars (500,000 events). Each size gets a fresh server, loaded
through CalDAV PUT (8 clients).

  python3 bench/sweep.py --calbridge target/release/calbridge [--sizes 1000,10000,100000] [--calendars 10000]
"""

import argparse
import datetime as dt
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import calgen  # noqa: E402
import compare  # noqa: E402
import davbench as db  # noqa: E402
import report  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def one_calendar(args, n):
    cal = calgen.calendar(n, args.anchor)
    extra = calgen.extra(args.put_count, args.anchor)
    d = db.make_workdir(f"sweep-{n}")
    cb = db.Calbridge(d, args.calbridge)
    try:
        done, secs, _ = db.parallel_put(cb, cal, args.clients)
        log(f"{n:,} events loaded in {secs:.1f} s ({done / secs:,.0f}/s)")
        compare.verify_count(cb, n)
        ops = compare.run_ops(cb, cal, extra, args, log)
        rss = ops.pop("rss")
        return {
            "label": f"{n:,} events",
            "events": n,
            "load": {"seconds": round(secs, 1), "per_second": round(done / secs, 1)},
            "ops": ops,
            "rss": rss,
        }
    finally:
        cb.stop()
        db.remove(d)


def many_calendars(args, calendars, per):
    """`calendars` calendars of `per` events in one store; the operations
    run against one of them (the whole-calendar ICS is skipped: the staff
    member's feed would hold all of them)."""
    d = db.make_workdir("sweep-many")
    cb = db.Calbridge(d, args.calbridge)
    try:
        conn = cb.conn()
        t0 = time.perf_counter()
        paths = []
        for i in range(calendars):
            p = f"{cb.home}c{i:05d}/"
            s, _, body = conn.request("MKCALENDAR", p)
            if s != 201:
                raise SystemExit(f"MKCALENDAR {p}: {s} {body[:200]!r}")
            paths.append(p)
        log(f"{calendars:,} calendars made in {time.perf_counter() - t0:.1f} s")
        # Every calendar gets its own events (distinct UIDs), generated in
        # chunks to keep the client's memory flat.
        total, secs = 0, 0.0
        chunk = 500
        for first in range(0, calendars, chunk):
            items = []
            for i in range(first, min(calendars, first + chunk)):
                for name, body in calgen.calendar(per, args.anchor, seed=10_000 + i):
                    items.append((paths[i] + name, body))
            done, s, _ = db.parallel_put(cb, items, args.clients)
            total += done
            secs += s
            log(f"  {total:,} events in {secs:.0f} s")
        target = calendars // 2
        cb.path = paths[target]
        cal = calgen.calendar(per, args.anchor, seed=10_000 + target)
        compare.verify_count(cb, per)
        extra = calgen.extra(args.put_count, args.anchor)
        saved_reps = args.reps
        args.reps = min(args.reps, per // 3)  # the change loops use distinct events
        ops = compare.run_ops(cb, cal, extra, args, log, skip=("ics",))
        args.reps = saved_reps

        # The home: PROPFIND depth 1 over all the calendars.
        def home():
            s, _, body = conn.request("PROPFIND", cb.home, db.PROPFIND_ETAGS, dict(db.XML, Depth="1"))
            if s != 207:
                raise SystemExit(f"PROPFIND home: {s}")

        ops["home_propfind"] = db.stats(db.measure(home, 10, args.budget))
        log(f"  home PROPFIND depth 1: {ops['home_propfind']}")
        rss = ops.pop("rss")
        return {
            "label": f"{calendars:,} calendars × {per}",
            "events": calendars * per,
            "load": {"seconds": round(secs, 1), "per_second": round(total / secs, 1)},
            "ops": ops,
            "rss": rss,
        }
    finally:
        cb.stop()
        db.remove(d)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calbridge", required=True)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--calendars", type=int, default=10_000, help="0 to leave out the many-calendars store")
    ap.add_argument("--per-calendar", type=int, default=50)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--budget", type=float, default=30)
    ap.add_argument("--put-count", type=int, default=2000)
    ap.add_argument("--put-budget", type=float, default=60)
    ap.add_argument("--anchor", type=dt.date.fromisoformat, default=calgen.default_anchor())
    ap.add_argument("--json")
    args = ap.parse_args()
    args.peer_put_count = args.put_count

    sizes = []
    for n in (int(x) for x in args.sizes.split(",") if x):
        log(f"== {n:,} events in one calendar")
        sizes.append(one_calendar(args, n))
    if args.calendars:
        log(f"== {args.calendars:,} calendars of {args.per_calendar} events")
        sizes.append(many_calendars(args, args.calendars, args.per_calendar))
    res = {
        "kind": "sweep",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "sizes": sizes,
    }
    print(report.sweep_table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
