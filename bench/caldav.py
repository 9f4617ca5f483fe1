#!/usr/bin/env python3
"""CalDAV speed benchmark: load N events into one collection through PUT
(with C concurrent clients) and time the operations calendar clients repeat
all day: PROPFIND Depth 1 (etags), calendar-query for one month, multiget of
100, sync-collection (initial and after one change) and a single PUT.

Standard library only, so it runs anywhere and against any CalDAV server:

  # calbridge: starts a release build on a free port with a fresh store
  python3 bench/caldav.py --calbridge target/release/calbridge [--restart]

  # any other server (Radicale, Xandikos, ...): a calendar collection URL
  python3 bench/caldav.py --url http://127.0.0.1:5232/user/cal/ --user u --password p

Prints one line per measurement (median and p90 over the repetitions) and,
with --json FILE, writes them as JSON. Times are wall-clock on the client
side, from sending the request to having read the whole response.
"""

import argparse
import base64
import http.client
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP connection with Basic auth."""

    def __init__(self, base, user, password):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
        self.https = u.scheme == "https"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.auth = f"Basic {token}"
        self.c = None

    def request(self, method, path, body=b"", headers=None):
        h = {"Authorization": self.auth, "Content-Length": str(len(body))}
        h.update(headers or {})
        for attempt in range(2):
            if self.c is None:
                cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
                self.c = cls(self.host, self.port, timeout=120)
            try:
                self.c.request(method, path, body=body, headers=h)
                r = self.c.getresponse()
                data = r.read()
                return r.status, dict(r.getheaders()), data
            except (http.client.HTTPException, ConnectionError):
                self.c.close()
                self.c = None
                if attempt:
                    raise


def event_ics(uid, start, minutes, summary, rrule=None, all_day=False):
    stamp = "20260101T000000Z"
    if all_day:
        d0 = time.strftime("%Y%m%d", time.gmtime(start))
        d1 = time.strftime("%Y%m%d", time.gmtime(start + 86400))
        when = f"DTSTART;VALUE=DATE:{d0}\r\nDTEND;VALUE=DATE:{d1}\r\n"
    else:
        s = time.strftime("%Y%m%dT%H%M%S", time.gmtime(start + 3600))
        e = time.strftime("%Y%m%dT%H%M%S", time.gmtime(start + 3600 + minutes * 60))
        when = f"DTSTART;TZID=Europe/Berlin:{s}\r\nDTEND;TZID=Europe/Berlin:{e}\r\n"
    rule = f"RRULE:{rrule}\r\n" if rrule else ""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge bench//EN\r\n"
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
        "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
        "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:{stamp}\r\n{when}{rule}"
        f"SUMMARY:{summary}\r\nDESCRIPTION:Benchmark appointment {uid}\r\n"
        "LOCATION:Room 4\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


YEAR_START = 1767225600  # 2026-01-01T00:00:00Z


def make_events(n, seed=7):
    """n events over 2026: mostly 30-90 min appointments in office hours,
    5% all-day, 5% weekly series."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        day = rnd.randrange(365)
        start = YEAR_START + day * 86400 + rnd.randrange(8, 18) * 3600 + rnd.choice([0, 1800])
        uid = f"bench-{i:05d}-{uuid.UUID(int=rnd.getrandbits(128))}"
        kind = rnd.random()
        if kind < 0.05:
            body = event_ics(uid, YEAR_START + day * 86400, 0, f"Holiday {i}", all_day=True)
        elif kind < 0.10:
            body = event_ics(uid, start, 60, f"Weekly {i}", rrule="FREQ=WEEKLY;COUNT=20")
        else:
            body = event_ics(uid, start, rnd.choice([30, 45, 60, 90]), f"Appointment {i}")
        out.append((f"{uid}.ics", body))
    return out


def timed(fn, reps):
    times = []
    out = None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, out


def summary(times):
    times = sorted(times)
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    return statistics.median(times), p90


PROPFIND_ETAGS = b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>'


def query_body(start, end, data):
    prop = "<c:calendar-data/>" if data else ""
    return (
        '<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        f"<d:prop><d:getetag/>{prop}</d:prop><c:filter><c:comp-filter name=\"VCALENDAR\">"
        f'<c:comp-filter name="VEVENT"><c:time-range start="{start}" end="{end}"/>'
        "</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"
    ).encode()


def multiget_body(hrefs):
    refs = "".join(f"<d:href>{h}</d:href>" for h in hrefs)
    return (
        '<?xml version="1.0"?><c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        f"<d:prop><d:getetag/><c:calendar-data/></d:prop>{refs}</c:calendar-multiget>"
    ).encode()


def sync_body(token):
    return (
        '<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:">'
        f"<d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level>"
        "<d:prop><d:getetag/></d:prop></d:sync-collection>"
    ).encode()


TOKEN = re.compile(rb"<[A-Za-z]*:?sync-token>([^<]*)</")
HREFS = re.compile(rb"<[A-Za-z]*:?href>([^<]*)</")


class Calbridge:
    """A release calbridge on a free port with a fresh store, provisioned
    with one staff member and an app password."""

    TOKEN = "bench-admin-token-0123456789"

    def __init__(self, binary, keep):
        self.binary, self.keep = binary, keep
        self.port = free_port()
        self.data = tempfile.mkdtemp(prefix="calbridge-bench-")
        self.env = dict(os.environ)
        self.env.update(
            CALBRIDGE_ADMIN_TOKEN=self.TOKEN,
            CALBRIDGE_SECRET_KEY="bench-secret-key-0123456789",
            CALBRIDGE_LOG=os.environ.get("CALBRIDGE_LOG", "warn"),
        )
        self.proc = None
        self.start()
        company = self.api("/companies", {"name": "Bench", "timezone": "Europe/Berlin"})
        staff = self.api(f"/companies/{company['id']}/staff", {"name": "Bench", "email": "bench@example.com"})
        pw = self.api(f"/staff/{staff['id']}/app-passwords", {"label": "bench"})
        self.url = f"http://127.0.0.1:{self.port}/dav/calendars/{staff['id']}/appointments/"
        self.user, self.password = pw["username"], pw["password"]

    def start(self):
        log = open(os.path.join(self.data, "server.log"), "a")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data", os.path.join(self.data, "store")],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("calbridge did not start; see " + log.name)

    def api(self, path, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port)
        c.request(
            "POST",
            "/api/v1" + path,
            body=json.dumps(body),
            headers={"Authorization": "Bearer " + self.TOKEN, "Content-Type": "application/json"},
        )
        r = c.getresponse()
        out = json.loads(r.read())
        if r.status != 201:
            raise SystemExit(f"POST {path}: {r.status} {out}")
        return out

    @property
    def pid(self):
        return self.proc.pid

    def restart(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.start()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if not self.keep:
            shutil.rmtree(self.data, ignore_errors=True)


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calbridge", help="a calbridge binary to start (release build)")
    ap.add_argument("--url", help="a calendar collection URL on a running server")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep calbridge's store directory")
    ap.add_argument(
        "--restart", action="store_true", help="restart calbridge between the load and the reads (RSS of a settled server)"
    )
    args = ap.parse_args()

    server = None
    if args.calbridge:
        server = Calbridge(args.calbridge, args.keep)
        url, user, password = server.url, server.user, server.password
    elif args.url:
        url, user, password = args.url, args.user, args.password
    else:
        ap.error("give --calbridge BINARY or --url URL")
    path = urllib.parse.urlsplit(url).path
    if not path.endswith("/"):
        path += "/"
    results = {"events": args.events, "clients": args.clients}

    def report(name, times, extra=""):
        med, p90 = summary(times)
        results[name] = {"median_ms": round(med, 3), "p90_ms": round(p90, 3)}
        print(f"{name:<34} median {med:9.3f} ms   p90 {p90:9.3f} ms  {extra}", flush=True)

    try:
        events = make_events(args.events)
        # --- load through PUT, C clients, each acknowledgement durable ---
        queue = list(range(len(events)))
        lock = threading.Lock()
        errors = []
        latencies = []

        def worker():
            conn = Conn(url, user, password)
            mine = []
            while True:
                with lock:
                    if not queue:
                        break
                    i = queue.pop()
                name, body = events[i]
                t0 = time.perf_counter()
                status, _, data = conn.request(
                    "PUT", path + name, body, {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"}
                )
                mine.append((time.perf_counter() - t0) * 1000)
                if status not in (201, 204):
                    errors.append((status, data[:200]))
            with lock:
                latencies.extend(mine)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        if errors:
            raise SystemExit(f"{len(errors)} PUTs failed, e.g. {errors[0]}")
        rate = len(events) / elapsed
        results["put_load"] = {"per_second": round(rate, 1), "seconds": round(elapsed, 2)}
        print(f"{'PUT load (' + str(args.clients) + ' clients)':<34} {rate:9.1f} PUT/s  ({len(events)} in {elapsed:.2f} s)")
        report("PUT latency during load", latencies)
        if server:
            mb = rss_mb(server.pid)
            results["rss_mb_after_load"] = round(mb, 1)
            print(f"{'server RSS after the load':<34} {mb:9.1f} MB")
            if args.restart:
                # Reads measured on a fresh process: what a server that has
                # not just absorbed a write burst holds.
                server.restart()

        conn = Conn(url, user, password)

        def ok(status, expected, what):
            if status != expected:
                raise SystemExit(f"{what}: HTTP {status}")

        # --- PROPFIND Depth 1 with etags ---
        def propfind():
            s, _, d = conn.request("PROPFIND", path, PROPFIND_ETAGS, {"Depth": "1", "Content-Type": "application/xml"})
            ok(s, 207, "PROPFIND")
            return d

        times, body = timed(propfind, args.reps)
        members = [h.decode() for h in HREFS.findall(body) if h.decode().rstrip("/") != path.rstrip("/")]
        report("PROPFIND depth 1 (getetag)", times, f"{len(members)} members, {len(body) // 1024} KiB")

        # --- calendar-query, one month ---
        for data, label in ((False, "calendar-query 1 month (etag)"), (True, "calendar-query 1 month (+data)")):
            q = query_body("20260601T000000Z", "20260701T000000Z", data)

            def query():
                s, _, d = conn.request("REPORT", path, q, {"Depth": "1", "Content-Type": "application/xml"})
                ok(s, 207, "calendar-query")
                return d

            times, body = timed(query, args.reps)
            report(label, times, f"{body.count(b'<D:response>') or body.count(b':response>') // 2} matches")

        # --- multiget of 100 ---
        rnd = random.Random(3)
        pick = [path + name for name, _ in rnd.sample(events, min(100, len(events)))]
        mg = multiget_body(pick)

        def multiget():
            s, _, d = conn.request("REPORT", path, mg, {"Depth": "1", "Content-Type": "application/xml"})
            ok(s, 207, "multiget")
            return d

        times, body = timed(multiget, args.reps)
        report("multiget of 100 (+data)", times, f"{len(body) // 1024} KiB")

        # --- initial sync-collection ---
        def initial_sync():
            s, _, d = conn.request("REPORT", path, sync_body(""), {"Depth": "0", "Content-Type": "application/xml"})
            ok(s, 207, "sync-collection")
            return d

        times, body = timed(initial_sync, max(5, args.reps // 3))
        report("sync-collection initial", times)
        token = TOKEN.search(body).group(1).decode()

        # --- one change, then sync-collection with the token ---
        sync_times, put_times = [], []
        for i in range(args.reps):
            name, base_body = events[i]
            changed = base_body.replace(b"SUMMARY:", f"SUMMARY:changed {i} ".encode(), 1)
            t0 = time.perf_counter()
            s, _, _ = conn.request("PUT", path + name, changed, {"Content-Type": "text/calendar; charset=utf-8"})
            put_times.append((time.perf_counter() - t0) * 1000)
            ok(s, 204, "PUT (update)")
            t0 = time.perf_counter()
            s, _, d = conn.request("REPORT", path, sync_body(token), {"Depth": "0", "Content-Type": "application/xml"})
            sync_times.append((time.perf_counter() - t0) * 1000)
            ok(s, 207, "sync-collection")
            if d.count(b".ics<") != 1:
                raise SystemExit("sync-collection after one change did not report exactly one change")
            token = TOKEN.search(d).group(1).decode()
        report("sync-collection after 1 change", sync_times)
        report("single PUT (update) at size", put_times)

        if server:
            mb = rss_mb(server.pid)
            results["rss_mb_end"] = round(mb, 1)
            print(f"{'server RSS at the end':<34} {mb:9.1f} MB")
    finally:
        if server:
            server.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
