#!/usr/bin/env python3
"""Sync figures through the real binaries: `calbridge fake-upstream` (the
built-in Google Calendar v3 + Microsoft Graph emulator) seeded through its
/_emulator control API and the providers' own APIs, and `calbridge serve`
pointed at it with the settings the emulator prints.

For each provider: a staff member connects through the real OAuth flow
(authorization URL, the emulator's consent, calbridge's callback), selects
the default calendar, and then

- initial sync: Google, 10,000 events (9,000 one-offs, 500 weekly series
  with an exception each), 250 per page; Graph, 10,000 instances (5,000
  one-offs, 500 series of 10 occurrences) at odata.maxpagesize=100;
- incremental sync after one change upstream;
- change-to-feed latency: from the upstream change to the change being in
  the staff member's feed, with `POST /api/v1/accounts/{id}/sync`.

Wall times are client-side; 'server' times are the `sync done ms=` that
calbridge logs for the run. RSS is calbridge's (VmHWM: peak, VmRSS: now).

  python3 bench/sync.py --calbridge target/release/calbridge
"""

import argparse
import datetime as dt
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import davbench as db  # noqa: E402
import report  # noqa: E402

UTC = dt.timezone.utc


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def call(base, method, path, body=None, headers=None, raw=False):
    u = urllib.parse.urlsplit(base if path.startswith("/") else path)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    target = path if path.startswith("/") else (u.path + ("?" + u.query if u.query else ""))
    data = json.dumps(body).encode() if body is not None else b""
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    c.request(method, target, body=data, headers=h)
    r = c.getresponse()
    out = r.read()
    c.close()
    if raw:
        return r.status, dict(r.getheaders()), out
    if r.status >= 300:
        raise SystemExit(f"{method} {base}{path}: {r.status} {out[:300]!r}")
    return json.loads(out) if out else None


class Emulator:
    def __init__(self, binary, workdir):
        self.port = db.free_port()
        self.log = open(os.path.join(workdir, "emulator.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "fake-upstream", "--listen", f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            start_new_session=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.settings = {}
        # The settings are printed as `    CALBRIDGE_…=value` lines.
        while True:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise SystemExit("fake-upstream exited")
            m = re.match(r"\s+(CALBRIDGE_[A-Z_]+)=(\S+)", line)
            if m:
                self.settings[m.group(1)] = m.group(2)
            if "controls:" in line:
                break
        db.wait_http(self.port, "/_emulator/health")

    def ctl(self, method, path, body=None):
        return call(self.base, method, "/_emulator" + path, body)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def iso_day(d):
    return d.strftime("%Y-%m-%d")


def google_events(start_day, singles=9_000, series=500):
    """9,000 one-offs and 500 weekly series (their exceptions come later)."""
    out = []
    zones = ["Europe/Berlin", "America/New_York", "America/Chicago", "Asia/Tokyo", "UTC"]
    for i in range(singles):
        day = start_day + dt.timedelta(days=i % 330)
        h = 8 + i % 10
        tz = zones[i % len(zones)]
        out.append(
            {
                "summary": f"Appointment {i}",
                "description": "Agenda: follow-up on the open items. " * (i % 4),
                "location": "Room 4" if i % 2 else "",
                "start": {"dateTime": f"{iso_day(day)}T{h:02d}:00:00", "timeZone": tz},
                "end": {"dateTime": f"{iso_day(day)}T{h:02d}:45:00", "timeZone": tz},
            }
        )
    for j in range(series):
        day = start_day + dt.timedelta(days=j % 200)
        out.append(
            {
                "summary": f"Weekly {j}",
                "start": {"dateTime": f"{iso_day(day)}T07:00:00Z", "timeZone": "UTC"},
                "end": {"dateTime": f"{iso_day(day)}T07:30:00Z", "timeZone": "UTC"},
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=20"],
            }
        )
    return out


WINDOWS = ["W. Europe Standard Time", "Eastern Standard Time", "Pacific Standard Time", "Tokyo Standard Time", "UTC"]


def graph_events(start_day, singles=5_000, series=500):
    """5,000 one-offs and 500 series of 10 weekly occurrences."""
    out = []
    for i in range(singles):
        day = start_day + dt.timedelta(days=i % 330)
        h = 8 + i % 10
        tz = WINDOWS[i % len(WINDOWS)]
        out.append(
            {
                "subject": f"Appointment {i}",
                "body": {"contentType": "html", "content": f"<p>Agenda item {i}</p>"},
                "location": {"displayName": "Room 4"},
                "start": {"dateTime": f"{iso_day(day)}T{h:02d}:00:00", "timeZone": tz},
                "end": {"dateTime": f"{iso_day(day)}T{h:02d}:45:00", "timeZone": tz},
            }
        )
    days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    for j in range(series):
        day = start_day + dt.timedelta(days=j % 200)
        tz = WINDOWS[j % len(WINDOWS)]
        out.append(
            {
                "subject": f"Weekly {j}",
                "start": {"dateTime": f"{iso_day(day)}T07:00:00", "timeZone": tz},
                "end": {"dateTime": f"{iso_day(day)}T07:30:00", "timeZone": tz},
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [days[day.weekday()]]},
                    "range": {"type": "numbered", "startDate": iso_day(day), "numberOfOccurrences": 10},
                },
            }
        )
    return out


class Calbridge:
    ADMIN = "bench-admin-token-0123456789abcdef"

    def __init__(self, binary, workdir, settings):
        self.port = db.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(settings)
        env.update(
            CALBRIDGE_ADMIN_TOKEN=self.ADMIN,
            CALBRIDGE_SECRET_KEY="bench-secret-key-0123456789abcdef",
            CALBRIDGE_PUBLIC_URL=self.base,
            CALBRIDGE_SYNC_INTERVAL="12h",
            CALBRIDGE_LOG="warn,calbridge::sync=info",
        )
        self.logpath = os.path.join(workdir, "server.log")
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data", os.path.join(workdir, "store")],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        db.wait_http(self.port, "/healthz", proc=self.proc)
        self.perf = None
        if os.environ.get("BENCH_PERF"):  # profile the server (perf record)
            self.perf = subprocess.Popen(
                ["perf", "record", "-e", "cpu-clock", "--call-graph", "dwarf,16384", "-F", "200"]
                + ["-o", os.environ["BENCH_PERF"], "-p", str(self.proc.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def api(self, method, path, body=None):
        return call(self.base, method, "/api/v1" + path, body, {"Authorization": "Bearer " + self.ADMIN})

    def syncs_done(self):
        """The `ms` of every `sync done` line logged so far for runs that
        synced a calendar (connecting runs one with none selected yet)."""
        with open(self.logpath, "rb") as f:
            text = f.read().decode(errors="replace")
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        runs = re.findall(r"sync done.*?ms=(\d+).*?calendars=(\d+)", text)
        return [int(ms) for ms, cals in runs if int(cals) > 0]

    def wait_sync(self, before, timeout=600):
        """Until a sync run beyond the first `before` has finished; its ms."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            done = self.syncs_done()
            if len(done) > before:
                return done[before]
            time.sleep(0.002)
        raise SystemExit("no sync finished; see " + self.logpath)

    def stop(self):
        if self.perf:
            self.perf.send_signal(2)
            self.perf.wait()
        self.proc.terminate()
        self.proc.wait(timeout=60)


def connect(cb, staff, provider):
    a = cb.api("POST", f"/staff/{staff}/accounts", {"provider": provider})
    s, h, _ = call(cb.base, "GET", a["authorization_url"], raw=True)
    loc = {k.lower(): v for k, v in h.items()}.get("location")
    if s not in (302, 303) or not loc:
        raise SystemExit(f"{provider}: the emulator did not redirect ({s})")
    s, _, body = call(cb.base, "GET", loc, raw=True)
    if s >= 400:
        raise SystemExit(f"{provider}: callback {s} {body[:200]!r}")
    return a["id"]


def select_default(cb, account):
    cals = cb.api("GET", f"/accounts/{account}/calendars")
    c = next(c for c in cals if c.get("default"))
    rid = urllib.parse.quote(c["id"], safe="")
    cb.api("PUT", f"/accounts/{account}/calendars/{rid}", {"selected": True, "direction": "read_only"})


def feed_get(url):
    s, h, body = call(url, "GET", url, raw=True)
    if s != 200:
        raise SystemExit(f"feed: {s}")
    return body


def run_provider(args, emu, cb, provider, company, n_changes):
    email = f"bench-{provider}@example.com"
    emu.ctl("POST", "/users", {"provider": provider, "email": email})
    start_day = dt.datetime.now(UTC).date() - dt.timedelta(days=7)
    t0 = time.perf_counter()
    cal = "primary" if provider == "google" else "default"
    singles = round((9_000 if provider == "google" else 5_000) * args.scale)
    n_series = round(500 * args.scale)
    make = google_events if provider == "google" else graph_events
    events = make(start_day, singles, n_series)
    ids = []
    for ev in events:
        ids.append(emu.ctl("POST", f"/users/{provider}/{email}/calendars/{cal}/events", ev)["id"])
    token = emu.ctl("POST", f"/users/{provider}/{email}/tokens")["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    if provider == "google":
        api = emu.settings["CALBRIDGE_GOOGLE_API_BASE"].rstrip("/")
        # One exception per series: its third occurrence moved by an hour.
        for j, sid in enumerate(ids[singles:]):
            day = start_day + dt.timedelta(days=j % 200 + 14)
            inst = f"{sid}_{day.strftime('%Y%m%d')}T070000Z"
            call(
                api,
                "PATCH",
                f"{api}/calendars/primary/events/{inst}",
                {
                    "summary": f"Weekly {j} (moved)",
                    "start": {"dateTime": f"{iso_day(day)}T08:00:00Z", "timeZone": "UTC"},
                    "end": {"dateTime": f"{iso_day(day)}T08:30:00Z", "timeZone": "UTC"},
                },
                auth,
            )
        resources = len(ids)
    else:
        api = emu.settings["CALBRIDGE_MICROSOFT_API_BASE"].rstrip("/")
        resources = len(ids)
    log(f"{provider}: {len(events):,} events seeded (and Google's exceptions) in {time.perf_counter() - t0:.1f} s")

    s = cb.api("POST", f"/companies/{company}/staff", {"name": provider, "email": email})
    feed = cb.api("POST", "/feeds", {"scope": "staff", "id": s["id"], "include": ["external"]})
    account = connect(cb, s["id"], provider)
    # Connecting runs the account once (nothing selected yet): let it end.
    time.sleep(0.5)
    while cb.api("GET", f"/accounts/{account}/status")["status"] == "syncing":
        time.sleep(0.02)
    before = len(cb.syncs_done())
    t0 = time.perf_counter()
    select_default(cb, account)
    cb.api("POST", f"/accounts/{account}/sync")
    server_ms = cb.wait_sync(before)
    wall = (time.perf_counter() - t0) * 1000
    rss, hwm = db.proc_status(cb.proc.pid)
    # A run the selection itself asked for may follow: let it finish.
    time.sleep(1.0)
    while (status := cb.api("GET", f"/accounts/{account}/status"))["status"] == "syncing":
        time.sleep(0.05)
    body = feed_get(feed["url"])
    vevents = body.count(b"BEGIN:VEVENT")
    log(
        f"{provider}: initial sync {wall:.0f} ms wall ({server_ms} ms in the server), "
        f"{vevents:,} VEVENTs in the feed ({body.count(b'RECURRENCE-ID')} overrides), RSS {rss:.0f} MB (peak {hwm:.0f}), status {status['status']}"
    )
    if status["status"] != "ok":
        raise SystemExit(f"{provider}: status {status}")
    result = {
        "events_upstream": len(events),
        "resources": resources,
        "feed_vevents": vevents,
        "initial": {"wall_ms": round(wall), "server_ms": server_ms, "rss_mb": round(rss, 1), "peak_mb": round(hwm, 1)},
        "skipped": len(status.get("skipped") or []),
    }

    result["overrides"] = body.count(b"RECURRENCE-ID")
    # Incremental syncs after one change, and the change-to-feed latency.
    inc_wall, inc_server, latency = [], [], []
    for k in range(n_changes):
        i = (17 + k * 101) % singles
        title = f"Changed {k} at {time.time():.0f}"
        before = len(cb.syncs_done())
        t0 = time.perf_counter()
        if provider == "google":
            call(api, "PATCH", f"{api}/calendars/primary/events/{ids[i]}", {"summary": title}, auth)
        else:
            call(api, "PATCH", f"{api}/me/events/{ids[i]}", {"subject": title}, auth)
        t_change = time.perf_counter()
        cb.api("POST", f"/accounts/{account}/sync")
        server_ms = cb.wait_sync(before)
        t_synced = time.perf_counter()
        while title.encode() not in feed_get(feed["url"]):
            if time.perf_counter() - t0 > 60:
                raise SystemExit(f"{provider}: the change never reached the feed")
            time.sleep(0.001)
        t_feed = time.perf_counter()
        inc_wall.append((t_synced - t_change) * 1000)
        inc_server.append(server_ms)
        latency.append((t_feed - t0) * 1000)
    rss, hwm = db.proc_status(cb.proc.pid)
    result["incremental"] = {
        "wall_ms": round(statistics.median(inc_wall), 1),
        "server_ms": statistics.median(inc_server),
        "n": n_changes,
    }
    result["change_to_feed_ms"] = round(statistics.median(latency), 1)
    result["rss_end_mb"] = round(rss, 1)
    result["peak_mb"] = round(hwm, 1)
    log(
        f"{provider}: incremental sync {result['incremental']['wall_ms']} ms wall "
        f"({result['incremental']['server_ms']} ms server), change to feed {result['change_to_feed_ms']} ms"
    )
    return result


def markdown(res):
    g, m = res["providers"].get("google"), res["providers"].get("microsoft")
    rows = [
        ("initial sync, wall (client)", lambda p: f"{p['initial']['wall_ms']:,} ms"),
        ("initial sync, in the server (`sync done ms=`)", lambda p: f"{p['initial']['server_ms']:,} ms"),
        ("events in the feed afterwards (VEVENTs)", lambda p: f"{p['feed_vevents']:,}"),
        ("RSS after the initial sync (peak)", lambda p: f"{p['initial']['rss_mb']:.0f} MB ({p['initial']['peak_mb']:.0f} MB)"),
        ("incremental sync after one change, wall", lambda p: f"{p['incremental']['wall_ms']} ms"),
        ("incremental sync, in the server", lambda p: f"{p['incremental']['server_ms']} ms"),
        ("upstream change → in the feed (POST …/sync)", lambda p: f"{p['change_to_feed_ms']} ms"),
    ]
    lines = [
        f"\n## Sync from the emulator ({res['date']})\n",
        "`calbridge fake-upstream` and `calbridge serve` as separate processes on loopback, "
        "connected through the real OAuth flow. Google: 10,000 events (9,000 one-offs, 500 "
        "weekly series with one exception each), 250 per page. Graph: 10,000 instances "
        "(5,000 one-offs, 500 series × 10), `odata.maxpagesize=100`. Incremental and "
        f"change-to-feed: medians of {g['incremental']['n'] if g else m['incremental']['n']} changes.\n",
        "| | Google | Microsoft Graph |",
        "| --- | --- | --- |",
    ]
    for label, f in rows:
        lines.append(f"| {label} | {f(g) if g else '–'} | {f(m) if m else '–'} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calbridge", required=True)
    ap.add_argument("--providers", default="google,microsoft")
    ap.add_argument("--changes", type=int, default=10)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the 10,000 events (quick checks)")
    ap.add_argument("--json")
    args = ap.parse_args()
    workdir = db.make_workdir("sync")
    emu = cb = None
    res = {
        "kind": "sync",
        "date": dt.datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "providers": {},
    }
    try:
        # A fresh emulator and server per provider, so each RSS is its own.
        for p in args.providers.split(","):
            d = os.path.join(workdir, p)
            os.makedirs(d)
            emu = Emulator(args.calbridge, d)
            cb = Calbridge(args.calbridge, d, emu.settings)
            company = cb.api("POST", "/companies", {"name": "Bench", "timezone": "Europe/Berlin"})["id"]
            res["providers"][p] = run_provider(args, emu, cb, p, company, args.changes)
            cb.stop()
            emu.stop()
            cb = emu = None
    finally:
        if cb:
            cb.stop()
        if emu:
            emu.stop()
        if not os.environ.get("KEEP"):
            db.remove(workdir)
    res["markdown"] = markdown(res)
    print(res["markdown"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
