#!/usr/bin/env python3
"""Interop check: every feed a running `calbridge demo` serves must be read
by Python's `icalendar` package (a widely used third-party RFC 5545 reader)
and obey the rules subscribers depend on.

Usage: check_feeds.py STATE_FILE   (written by `calbridge demo --state-file`)
Exits non-zero, naming the feed and the rule, on the first failure.
"""
import json
import sys
import urllib.request

import icalendar


def fail(feed, msg):
    print(f"FAIL {feed}: {msg}")
    sys.exit(1)


def check(name, url):
    with urllib.request.urlopen(url, timeout=30) as r:
        if r.status != 200:
            fail(name, f"status {r.status}")
        ctype = r.headers.get("Content-Type", "")
        if not ctype.startswith("text/calendar"):
            fail(name, f"Content-Type {ctype!r}")
        etag = r.headers.get("ETag")
        body = r.read()
    text = body.decode("utf-8")
    lines = text.split("\r\n")
    if lines[-1] != "":
        fail(name, "does not end with CRLF")
    for i, line in enumerate(lines[:-1], 1):
        if "\n" in line or "\r" in line:
            fail(name, f"line {i} has a bare line break")
        if len(line.encode("utf-8")) > 75:
            fail(name, f"line {i} is {len(line.encode('utf-8'))} octets long")
    cal = icalendar.Calendar.from_ical(body)
    for key in ("VERSION", "PRODID", "X-WR-CALNAME", "REFRESH-INTERVAL", "X-PUBLISHED-TTL"):
        if key not in cal:
            fail(name, f"no {key}")
    zones = {str(z["TZID"]) for z in cal.walk("VTIMEZONE")}
    events = cal.walk("VEVENT")
    if not events:
        fail(name, "no events")
    for ev in events:
        for key in ("UID", "DTSTAMP", "DTSTART"):
            if key not in ev:
                fail(name, f"a VEVENT has no {key}: {ev.get('UID')}")
        ev.decoded("DTSTART")
        for key in ("DTSTART", "DTEND", "RECURRENCE-ID"):
            if key in ev and "TZID" in ev[key].params:
                tzid = ev[key].params["TZID"]
                if tzid not in zones:
                    fail(name, f"TZID {tzid} used without a VTIMEZONE")
    # A revalidation with the ETag must be a 304.
    req = urllib.request.Request(url, headers={"If-None-Match": etag})
    try:
        urllib.request.urlopen(req, timeout=30)
        fail(name, "If-None-Match did not give 304")
    except urllib.error.HTTPError as e:
        if e.code != 304:
            fail(name, f"If-None-Match gave {e.code}")
    print(f"ok   {name}: {len(events)} VEVENTs, {len(zones)} VTIMEZONEs, {len(body)} bytes")


def main():
    state = json.load(open(sys.argv[1]))
    feeds = state["feeds"]
    if not feeds:
        fail("demo", "no feeds")
    for f in feeds:
        check(f["name"], f["url"])
    print(f"all {len(feeds)} feeds read by icalendar {icalendar.__version__}")


if __name__ == "__main__":
    main()
