#!/usr/bin/env python3
"""Interop check: the python `caldav` library (3.x) against a running
`calbridge serve`.

  caldav_client.py BASE_URL        (admin token in CALBRIDGE_ADMIN_TOKEN)

Creates a company, a staff member and an app password through the admin
API, then, as that staff member: discovery from /.well-known/caldav, list
calendars, save a timed, an all-day and a recurring event with an
override, server-side time-range search (plain and expanded), update with
If-Match (a stale ETag is refused), delete, and sync by sync token with
disable_fallback=True (changes, deletions, and an unknown token refused
with DAV:valid-sync-token). Exits non-zero on the first failure.

`provision()` is also used by caldav_tester.py.
"""

import datetime
import json
import os
import sys
import urllib.request
import uuid

import caldav
from caldav.lib import error

UTC = datetime.timezone.utc


def api(base, token, path, body):
    req = urllib.request.Request(
        f"{base}/api/v1{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 201, (path, r.status)
        return json.loads(r.read())


def provision(base, token, name):
    """A new company with one staff member; returns (staff id, user, password)."""
    company = api(base, token, "/companies", {"name": f"Interop {name}", "timezone": "Europe/Berlin"})
    email = f"{name.lower()}.{uuid.uuid4().hex[:8]}@interop.example"
    staff = api(
        base,
        token,
        f"/companies/{company['id']}/staff",
        {"name": name, "email": email, "timezone": "Europe/Berlin"},
    )
    pw = api(base, token, f"/staff/{staff['id']}/app-passwords", {"label": "interop"})
    return staff["id"], pw["username"], pw["password"]


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok   {what}")


RECURRING = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//calbridge interop//EN
BEGIN:VEVENT
UID:interop-weekly
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Berlin:20260105T090000
DTEND;TZID=Europe/Berlin:20260105T093000
RRULE:FREQ=WEEKLY;COUNT=8
SUMMARY:Weekly standup
END:VEVENT
BEGIN:VEVENT
UID:interop-weekly
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=Europe/Berlin:20260119T090000
DTSTART;TZID=Europe/Berlin:20260120T140000
DTEND;TZID=Europe/Berlin:20260120T143000
SUMMARY:Weekly standup (moved to Tuesday)
END:VEVENT
END:VCALENDAR
"""


def uids(objs):
    return sorted(str(o.icalendar_component["UID"]) for o in objs)


def main():
    base = sys.argv[1].rstrip("/")
    token = os.environ["CALBRIDGE_ADMIN_TOKEN"]
    staff, user, password = provision(base, token, "Ines")

    # Discovery: only the well-known URL is given.
    client = caldav.DAVClient(url=f"{base}/.well-known/caldav", username=user, password=password)
    principal = client.principal()
    check(f"/dav/principals/{staff}/" in str(principal.url), f"principal discovered: {principal.url}")
    calendars = principal.calendars()
    names = [c.get_display_name() for c in calendars]
    check("Appointments" in names, f"calendars listed: {names}")
    cal = calendars[names.index("Appointments")]
    check(cal.get_supported_components() == ["VEVENT"], "the appointments calendar holds events")

    # Save: timed, all-day, recurring with an override.
    timed = cal.save_event(
        uid="interop-timed",
        summary="Massage",
        dtstart=datetime.datetime(2026, 2, 3, 10, 0, tzinfo=UTC),
        dtend=datetime.datetime(2026, 2, 3, 11, 0, tzinfo=UTC),
    )
    allday = cal.save_event(
        uid="interop-allday",
        summary="Company holiday",
        dtstart=datetime.date(2026, 2, 6),
        dtend=datetime.date(2026, 2, 7),
    )
    weekly = cal.save_event(RECURRING)
    check(len(cal.events()) == 3, "three events saved")
    loaded = cal.event_by_uid("interop-weekly")
    vevents = [c for c in loaded.icalendar_instance.subcomponents if c.name == "VEVENT"]
    check(len(vevents) == 2, "the series and its override are one resource")
    check(
        str(cal.event_by_uid("interop-allday").icalendar_component["DTSTART"].dt) == "2026-02-06",
        "the all-day event stays on its date",
    )

    # Server-side time-range searches (no client-side filtering).
    def search(start, end, **kw):
        return cal.search(start=start, end=end, event=True, post_filter=False, **kw)

    feb_week1 = search(datetime.datetime(2026, 2, 2, tzinfo=UTC), datetime.datetime(2026, 2, 9, tzinfo=UTC))
    check(
        uids(feb_week1) == ["interop-allday", "interop-timed", "interop-weekly"],
        f"time-range search, first week of February: {uids(feb_week1)}",
    )
    moved = search(datetime.datetime(2026, 1, 19, tzinfo=UTC), datetime.datetime(2026, 1, 20, tzinfo=UTC))
    check(uids(moved) == [], "the moved occurrence is not on Monday 19 January")
    tuesday = search(datetime.datetime(2026, 1, 20, tzinfo=UTC), datetime.datetime(2026, 1, 21, tzinfo=UTC))
    check(uids(tuesday) == ["interop-weekly"], "the moved occurrence is on Tuesday 20 January")
    after = search(datetime.datetime(2026, 3, 1, tzinfo=UTC), datetime.datetime(2026, 4, 1, tzinfo=UTC))
    check(uids(after) == [], "nothing in March: the series ended in February")
    expanded = cal.search(
        start=datetime.datetime(2026, 1, 12, tzinfo=UTC),
        end=datetime.datetime(2026, 1, 27, tzinfo=UTC),
        event=True,
        expand=True,
        server_expand=True,
    )
    starts = sorted(str(e.icalendar_component["DTSTART"].dt) for e in expanded)
    check(
        starts == ["2026-01-12 08:00:00+00:00", "2026-01-20 13:00:00+00:00", "2026-01-26 08:00:00+00:00"],
        f"server-side expansion: {starts}",
    )

    # Update with the ETag; a stale ETag is refused.
    timed.load()
    etag = timed.props.get("{DAV:}getetag") or client.request(str(timed.url), "HEAD").headers["ETag"]
    data = timed.data.replace("SUMMARY:Massage", "SUMMARY:Massage (moved)")
    r = client.put(str(timed.url), data, {"Content-Type": "text/calendar; charset=utf-8", "If-Match": etag})
    check(r.status == 204, f"PUT with If-Match: {r.status}")
    new_etag = r.headers.get("ETag")
    check(new_etag and new_etag != etag, "the update returned a new ETag")
    r = client.put(
        str(timed.url),
        data.replace("(moved)", "(stale)"),
        {"Content-Type": "text/calendar; charset=utf-8", "If-Match": etag},
    )
    check(r.status == 412, f"PUT with a stale If-Match: {r.status}")
    timed.load()
    check("Massage (moved)" in timed.data, "the stale write changed nothing")
    # Sync by token, no fallback allowed.
    first = cal.objects_by_sync_token(load_objects=True, disable_fallback=True)
    check(not str(first.sync_token).startswith("fake-"), f"a real sync token: {first.sync_token}")
    check(len(first.objects) == 3, "initial sync lists all three")
    nothing = cal.objects_by_sync_token(sync_token=first.sync_token, disable_fallback=True)
    check(len(nothing.objects) == 0, "no changes since the token")
    event = cal.event_by_uid("interop-allday")
    event.icalendar_component["SUMMARY"] = "Company holiday (all day)"
    event.save()
    check("all day" in cal.event_by_uid("interop-allday").data, "save() of a loaded event")
    weekly.delete()
    try:
        cal.event_by_uid("interop-weekly")
        check(False, "deleted event is gone")
    except error.NotFoundError:
        check(True, "deleted event is gone")
    added = cal.save_event(
        uid="interop-new",
        summary="Follow-up",
        dtstart=datetime.datetime(2026, 2, 10, 9, 0, tzinfo=UTC),
        dtend=datetime.datetime(2026, 2, 10, 9, 30, tzinfo=UTC),
    )
    changes = cal.objects_by_sync_token(sync_token=first.sync_token, load_objects=True, disable_fallback=True)
    changed_urls = {str(o.url.canonical()) for o in changes.objects}
    deleted = {str(u) for u in changes.deleted_urls}
    check(str(added.url.canonical()) in changed_urls, "sync reports the new event")
    check(str(weekly.url.canonical()) in deleted, "sync reports the deletion")
    check(str(event.url.canonical()) in changed_urls, "sync reports the updated event")
    check(str(timed.url.canonical()) not in changed_urls, "sync leaves out what did not change")
    check(changes.sync_token != first.sync_token, "the sync token moved on")
    try:
        cal.objects_by_sync_token(sync_token="http://calbridge/sync/unknown/1", disable_fallback=True)
        check(False, "an unknown sync token is refused")
    except (error.AuthorizationError, error.DAVError, error.ReportError) as e:
        pre = getattr(e, "preconditions", None) or []
        check("{DAV:}valid-sync-token" in pre, f"an unknown sync token is refused with DAV:valid-sync-token ({pre})")

    # Deleting by the library, then a clean calendar.
    added.delete()
    timed.delete()
    event.delete()
    check(len(cal.events()) == 0, "all deleted")
    print("caldav interop: all checks passed")


if __name__ == "__main__":
    main()
