#!/usr/bin/env python3
"""calbridge side by side with Radicale and Xandikos: the same calendar
loaded into each, the same operations from the same load generator, in one
run on one machine. Normally started through `bench/run`.

  python3 bench/compare.py --calbridge target/release/calbridge --venv bench/.venv --events 5000
"""

import argparse
import datetime as dt
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import calgen  # noqa: E402
import davbench as db  # noqa: E402
import report  # noqa: E402


def z(d):
    return d.strftime("%Y%m%dT000000Z")


def verify_count(server, n):
    s, _, d = server.conn().request("PROPFIND", server.path, db.PROPFIND_ETAGS, dict(db.XML, Depth="1"))
    if s != 207:
        raise SystemExit(f"{server.name}: PROPFIND {s}")
    members = db.responses(d) - 1
    if members != n:
        raise SystemExit(f"{server.name}: holds {members} resources after the load, expected {n}")


def load(server, cal, how, clients):
    t0 = time.perf_counter()
    if how == "native":
        server.native_load(cal)
        verify_count(server, len(cal))  # also what builds a peer's caches
        elapsed = time.perf_counter() - t0
        return {"how": "native", "seconds": round(elapsed, 1)}
    done, elapsed, lat = db.parallel_put(server, cal, clients)
    verify_count(server, len(cal))
    return {"how": "caldav", "seconds": round(elapsed, 1), "per_second": round(done / elapsed, 2)}


def run_ops(server, cal, extra, args, log, skip=()):
    """Every operation against one loaded server (but those in `skip`)."""
    conn = server.conn()
    path = server.path
    out = {}
    reps, budget = args.reps, args.budget

    def ok(status, want, what):
        if status not in want:
            raise SystemExit(f"{server.name}: {what}: HTTP {status}")

    def note(key, times, **extra_fields):
        out[key] = dict(db.stats(times), **extra_fields)
        rss = server.memory()[0] or 0
        log(
            f"  {server.name:<10} {key:<14} median {out[key]['median_ms']:10.2f} ms  (n={len(times)}, RSS {rss:.0f} MB)"
            f" {extra_fields or ''}"
        )

    # GET of one event
    name = cal[len(cal) // 2][0]

    def get():
        s, _, d = conn.request("GET", path + name)
        ok(s, (200,), "GET")
        return d

    note("get", db.measure(get, reps, budget))

    # PROPFIND depth 1, etags

    def propfind():
        s, _, d = conn.request("PROPFIND", path, db.PROPFIND_ETAGS, dict(db.XML, Depth="1"))
        ok(s, (207,), "PROPFIND")
        return d

    t = db.measure(propfind, reps, budget)
    note("propfind", t, members=db.responses(t.last) - 1, kib=len(t.last) // 1024)

    # calendar-query, one month
    lo = args.anchor + dt.timedelta(days=60)
    hi = args.anchor + dt.timedelta(days=90)
    for key, data in (("query", False), ("query_data", True)):
        body = db.query_body(z(lo), z(hi), data)

        def query():
            s, _, d = conn.request("REPORT", path, body, dict(db.XML, Depth="1"))
            ok(s, (207,), "calendar-query")
            return d

        t = db.measure(query, reps, budget)
        note(key, t, matches=db.responses(t.last))

    # calendar-multiget of 100
    pick = [path + n for n, _ in random.Random(3).sample(cal, min(100, len(cal)))]
    mg = db.multiget_body(pick)

    def multiget():
        s, _, d = conn.request("REPORT", path, mg, dict(db.XML, Depth="1"))
        ok(s, (207,), "multiget")
        return d

    t = db.measure(multiget, reps, budget)
    note("multiget", t, got=db.responses(t.last), kib=len(t.last) // 1024)

    # initial sync-collection
    tok = {}

    def initial():
        s, _, d = conn.request("REPORT", path, db.sync_body(""), dict(db.XML, Depth="0"))
        ok(s, (207,), "sync-collection")
        return d

    t = db.measure(initial, reps, budget)
    tok["t"] = db.SYNC_TOKEN.search(t.last).group(1).decode()
    note("sync_initial", t, members=db.responses(t.last))

    # one change, then sync-collection with the previous token
    put_times, sync_times = [], []
    t_end = time.time() + budget
    k = 0
    while k < reps and (k < 3 or time.time() < t_end):
        n, body = cal[k]
        t0 = time.perf_counter()
        s, _, d = conn.request("PUT", path + n, calgen.changed(body, k), db.ICS)
        put_times.append((time.perf_counter() - t0) * 1000)
        ok(s, (200, 201, 204), "PUT (update)")
        t0 = time.perf_counter()
        s, _, d = conn.request("REPORT", path, db.sync_body(tok["t"]), dict(db.XML, Depth="0"))
        sync_times.append((time.perf_counter() - t0) * 1000)
        ok(s, (207,), "sync-collection after a change")
        if db.responses(d) != 1:
            raise SystemExit(f"{server.name}: sync-collection after one change reported {db.responses(d)} changes")
        tok["t"] = db.SYNC_TOKEN.search(d).group(1).decode()
        k += 1
    note("sync_change", sync_times)
    note("put_update", put_times)

    if "ics" not in skip:
        whole_calendar(server, conn, cal, args, note, ok)
    put_burst(server, extra, args, log, out)
    conn.close()
    rss, hwm = server.memory()
    out["rss"] = {"now_mb": round(rss, 1), "peak_mb": round(hwm, 1)}
    log(f"  {server.name:<10} memory         RSS {rss:.1f} MB, peak {hwm:.1f} MB")
    return out


def whole_calendar(server, conn, cal, args, note, ok):
    """The whole calendar as one iCalendar stream: unchanged, revalidated,
    and after a change."""
    reps, budget, path = args.reps, args.budget, server.path
    ics_path, ics_headers = server.ics_request()
    seen = {}

    def ics():
        s, h, d = conn.request("GET", ics_path, headers=ics_headers)
        ok(s, (200,), "whole-calendar GET")
        seen["etag"] = h.get("etag")
        return d

    t = db.measure(ics, reps, budget)
    if not t.last.startswith(b"BEGIN:VCALENDAR"):
        raise SystemExit(f"{server.name}: the whole-calendar GET is not iCalendar: {t.last[:80]!r}")
    note("ics", t, kib=len(t.last) // 1024, vevents=t.last.count(b"BEGIN:VEVENT"))

    # revalidation with the ETag it gave
    status = {}

    def revalidate():
        h = dict(ics_headers)
        if seen["etag"]:
            h["If-None-Match"] = seen["etag"]
        s, _, d = conn.request("GET", ics_path, headers=h)
        ok(s, (200, 304), "whole-calendar revalidation")
        status["s"] = s

    note("ics_304", db.measure(revalidate, reps, budget), status=status["s"], etag=bool(seen["etag"]))

    # the whole calendar after one change (a feed render for calbridge)
    times = []
    t_end = time.time() + budget
    j = 0
    while j < reps and (j < 3 or time.time() < t_end):
        n, body = cal[reps + j]
        s, _, _ = conn.request("PUT", path + n, calgen.changed(body, 1000 + j), db.ICS)
        ok(s, (200, 201, 204), "PUT (update)")
        t0 = time.perf_counter()
        ics()
        times.append((time.perf_counter() - t0) * 1000)
        j += 1
    note("ics_changed", times)


def put_burst(server, extra, args, log, out):
    """PUT of new events, 8 concurrent clients."""
    count = args.put_count if server.name == "calbridge" else args.peer_put_count
    done, elapsed, lat = db.parallel_put(server, extra[:count], args.clients, budget=args.put_budget)
    out["put"] = dict(db.stats(lat), per_second=round(done / elapsed, 2), count=done, seconds=round(elapsed, 2))
    log(f"  {server.name:<10} {'put':<14} {done / elapsed:10.2f} PUT/s ({done} in {elapsed:.1f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calbridge", required=True, help="calbridge release binary")
    ap.add_argument("--venv", default=os.path.join(db.HERE, ".venv"), help="venv with Radicale and Xandikos")
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--peers", default="radicale,xandikos", help="comma-separated; empty for calbridge alone")
    ap.add_argument(
        "--peer-load",
        choices=("auto", "caldav", "native"),
        default="auto",
        help="how the peers are loaded: through CalDAV PUT, or their storage format (auto: PUT up to 10,000 events)",
    )
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--reps", type=int, default=30, help="samples per operation")
    ap.add_argument("--budget", type=float, default=60, help="seconds per operation and server (at least 3 samples)")
    ap.add_argument("--put-count", type=int, default=2000, help="new events PUT into calbridge")
    ap.add_argument("--peer-put-count", type=int, default=24, help="new events PUT into each peer")
    ap.add_argument("--put-budget", type=float, default=120)
    ap.add_argument("--anchor", type=dt.date.fromisoformat, default=calgen.default_anchor())
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for calbridge's environment")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the servers' storage under bench/work")
    args = ap.parse_args()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    n = args.events
    log(f"generating {n} events (anchor {args.anchor}) ...")
    cal = calgen.calendar(n, args.anchor)
    extra = calgen.extra(max(args.put_count, args.peer_put_count), args.anchor)
    cal_bytes = sum(len(b) for _, b in cal)
    vevents = sum(b.count(b"BEGIN:VEVENT") for _, b in cal)

    servers, dirs = [], []
    results = {
        "kind": "compare",
        "events": n,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "anchor": str(args.anchor),
        "calendar": {"resources": n, "vevents": vevents, "mb": round(cal_bytes / 1e6, 1)},
        "clients": args.clients,
        "servers": {},
    }
    try:
        d = db.make_workdir("calbridge")
        dirs.append(d)
        cb = db.Calbridge(d, args.calbridge, env=dict(kv.split("=", 1) for kv in args.env))
        servers.append(cb)
        peers = []
        for p in filter(None, args.peers.split(",")):
            d = db.make_workdir(p)
            dirs.append(d)
            cls = {"radicale": db.Radicale, "xandikos": db.Xandikos}[p.strip().lower()]
            peers.append(cls(d, args.venv))
        servers += peers

        log(f"loading calbridge through CalDAV PUT ({args.clients} clients) ...")
        loads = {"calbridge": load(cb, cal, "caldav", args.clients)}
        log(f"  calbridge: {loads['calbridge']}")
        how = args.peer_load
        if how == "auto":
            how = "caldav" if n <= 10_000 else "native"
        log(f"loading the peers ({how}) in parallel ...")

        def load_peer(p):
            loads[p.name] = load(p, cal, how, args.clients)
            log(f"  {p.name}: {loads[p.name]}")

        threads = [threading.Thread(target=load_peer, args=(p,)) for p in peers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in peers:
            if p.name not in loads:
                raise SystemExit(f"loading {p.name} failed")

        for s in servers:
            log(f"measuring {s.name} {s.version} ...")
            ops = run_ops(s, cal, extra, args, log)
            results["servers"][s.name] = {"version": s.version, "load": loads[s.name], "ops": ops}
            if s is not cb:
                s.stop()  # idle peers out of the way of the next one
    finally:
        for s in servers:
            s.stop()
        if not args.keep:
            for d in dirs:
                db.remove(d)

    print(report.compare_table(results))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
