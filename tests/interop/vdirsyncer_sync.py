#!/usr/bin/env python3
"""Two-way sync between calbridge and a local directory with vdirsyncer, a
real CalDAV client (discovery, PROPFIND/REPORT listing, PUT with
If-None-Match / If-Match, DELETE with If-Match).

  vdirsyncer_sync.py BASE_URL VDIRSYNCER_BINARY  (admin token in CALBRIDGE_ADMIN_TOKEN)

Checks, in order: discovery finds the appointments calendar; events written
locally (timed, all-day, a series with an override) arrive; an appointment
made through the admin API arrives locally; local and server-side edits
travel both ways; deletions travel both ways; a sync with nothing changed
copies nothing; a conflict resolves as configured ("b wins": calbridge).
"""

import json
import os
import subprocess
import sys
import tempfile
import urllib.request

from caldav_client import check, provision


def event(uid, summary, start, end, extra=""):
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge interop//vdirsyncer//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261101T000000Z\r\n{start}\r\n{end}\r\n"
        f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


SERIES = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge interop//vdirsyncer//EN\r\n"
    "BEGIN:VEVENT\r\nUID:vds-series@interop.example\r\nDTSTAMP:20261101T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20270104T090000\r\nDTEND;TZID=Europe/Berlin:20270104T100000\r\n"
    "RRULE:FREQ=WEEKLY;COUNT=6\r\nSUMMARY:Weekly review\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:vds-series@interop.example\r\nDTSTAMP:20261101T000000Z\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20270111T090000\r\n"
    "DTSTART;TZID=Europe/Berlin:20270112T140000\r\nDTEND;TZID=Europe/Berlin:20270112T150000\r\n"
    "SUMMARY:Weekly review (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


class World:
    def __init__(self, base, binary, token):
        self.base, self.binary, self.token = base, binary, token
        self.staff, self.user, self.password = provision(base, token, "Vera")
        self.dir = tempfile.mkdtemp(prefix="calbridge-vdirsyncer-")
        self.local = os.path.join(self.dir, "local")
        os.makedirs(self.local)
        self.config = os.path.join(self.dir, "config")
        with open(self.config, "w") as f:
            f.write(
                f"""[general]
status_path = "{self.dir}/status/"

[pair cal]
a = "local"
b = "calbridge"
collections = ["from b"]
conflict_resolution = "b wins"

[storage local]
type = "filesystem"
path = "{self.local}/"
fileext = ".ics"

[storage calbridge]
type = "caldav"
url = "{base}/"
username = "{self.user}"
password = "{self.password}"
"""
            )

    def run(self, *args, stdin=None):
        r = subprocess.run(
            [self.binary, "-c", self.config, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = r.stdout + r.stderr
        if r.returncode != 0:
            print(out)
            raise SystemExit(f"FAIL: vdirsyncer {' '.join(args)} exited with {r.returncode}")
        for line in out.splitlines():
            if line.startswith("error") or "Traceback" in line:
                print(out)
                raise SystemExit(f"FAIL: vdirsyncer {' '.join(args)} reported an error")
        return out

    def sync(self):
        return self.run("sync")

    def api(self, method, path, body=None):
        req = urllib.request.Request(
            f"{self.base}/api/v1{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as r:
            data = r.read()
            return json.loads(data) if data else None

    def server_summaries(self):
        items = self.api("GET", f"/staff/{self.staff}/appointments?limit=1000")
        items = items if isinstance(items, list) else items.get("items", [])
        return sorted(a["summary"] for a in items)

    def appointment(self, summary):
        items = self.api("GET", f"/staff/{self.staff}/appointments?limit=1000")
        items = items if isinstance(items, list) else items.get("items", [])
        return next(a for a in items if a["summary"] == summary)

    def collection(self):
        return os.path.join(self.local, "appointments")

    def local_files(self):
        out = {}
        for name in sorted(os.listdir(self.collection())):
            with open(os.path.join(self.collection(), name), encoding="utf-8") as f:
                out[name] = f.read()
        return out

    def local_summaries(self):
        found = []
        for body in self.local_files().values():
            for line in body.splitlines():
                if line.startswith("SUMMARY:"):
                    found.append(line[len("SUMMARY:"):])
        return sorted(found)

    def write_local(self, name, body):
        with open(os.path.join(self.collection(), name), "w", encoding="utf-8", newline="") as f:
            f.write(body)


def main():
    base = sys.argv[1].rstrip("/")
    w = World(base, sys.argv[2], os.environ["CALBRIDGE_ADMIN_TOKEN"])

    out = w.run("discover", stdin="y\n" * 5)
    check('"appointments"' in out, "discovery finds the appointments calendar")
    w.sync()
    check(os.path.isdir(w.collection()), "the local copy of the calendar exists")

    # Local → calbridge.
    w.write_local("timed.ics", event(
        "vds-timed@interop.example", "Checkup",
        "DTSTART;TZID=Europe/Berlin:20270105T100000", "DTEND;TZID=Europe/Berlin:20270105T110000"))
    w.write_local("allday.ics", event(
        "vds-allday@interop.example", "Team day",
        "DTSTART;VALUE=DATE:20270106", "DTEND;VALUE=DATE:20270107"))
    w.write_local("series.ics", SERIES)
    out = w.sync()
    check(out.count("uploading") == 3, "three local events uploaded")
    check(
        w.server_summaries() == ["Checkup", "Team day", "Weekly review"],
        f"calbridge holds them as appointments: {w.server_summaries()}",
    )
    allday = w.appointment("Team day")
    check(allday.get("all_day") is True and str(allday.get("start", "")).startswith("2027-01-06"),
          f"the all-day event stayed on its date: {allday.get('start')}")

    # calbridge → local.
    w.api("POST", f"/staff/{w.staff}/appointments", {
        "summary": "Booked online", "start": "2027-01-07T09:00:00+01:00",
        "end": "2027-01-07T09:30:00+01:00", "timezone": "Europe/Berlin"})
    w.sync()
    check("Booked online" in w.local_summaries(), "an appointment from the admin API arrives locally")
    series = [b for b in w.local_files().values() if "vds-series@" in b]
    check(len(series) == 1 and series[0].count("BEGIN:VEVENT") == 2,
          "the series and its override come back as one resource")

    # Nothing changed: nothing copied.
    out = w.sync()
    check("Copying" not in out and "Deleting" not in out, "a sync with nothing changed copies nothing")

    # Edits both ways.
    body = w.local_files()["timed.ics"].replace("SUMMARY:Checkup", "SUMMARY:Checkup (edited locally)")
    w.write_local("timed.ics", body)
    booked = w.appointment("Booked online")
    w.api("PATCH", f"/appointments/{booked['id']}", {"summary": "Booked online (moved by the platform)"})
    w.sync()
    check("Checkup (edited locally)" in w.server_summaries(), "a local edit reaches calbridge")
    check("Booked online (moved by the platform)" in w.local_summaries(), "a server-side edit reaches the client")

    # Conflict: both sides change the same event; calbridge's version wins.
    body = w.local_files()["allday.ics"].replace("SUMMARY:Team day", "SUMMARY:Team day (local)")
    w.write_local("allday.ics", body)
    w.api("PATCH", f"/appointments/{w.appointment('Team day')['id']}", {"summary": "Team day (server)"})
    w.sync()
    check("Team day (server)" in w.local_summaries() and "Team day (local)" not in w.local_summaries(),
          "a conflict resolves to calbridge's version as configured")
    check("Team day (server)" in w.server_summaries(), "calbridge kept its version")

    # Deletions both ways.
    os.remove(os.path.join(w.collection(), "series.ics"))
    w.api("DELETE", f"/appointments/{w.appointment('Booked online (moved by the platform)')['id']}")
    w.sync()
    check("Weekly review" not in w.server_summaries(), "a local deletion reaches calbridge")
    check(not any(s.startswith("Booked online") for s in w.local_summaries()),
          "a server-side deletion reaches the client")
    check(
        w.server_summaries() == w.local_summaries() == ["Checkup (edited locally)", "Team day (server)"],
        f"both sides agree: {w.local_summaries()}",
    )
    print("vdirsyncer interop: all checks passed")


if __name__ == "__main__":
    main()
