"""A deterministic, realistic calendar for the benchmarks.

`calendar(n, anchor)` gives n CalDAV resources (href name, iCalendar bytes):
what Apple Calendar, Thunderbird and Google/Outlook exports put in a busy
staff calendar. The same seed and anchor give the same bytes.

- 85% timed one-off events (a few multi-day), 5% all-day (some multi-day,
  a few yearly birthdays), 10% recurring series (daily, weekly, every two
  weeks, Monday/Wednesday/Friday, monthly), most with one to three
  RECURRENCE-ID overrides and some with an EXDATE, all in one resource;
- eight time zones (Europe/Berlin, America/New_York, Europe/London,
  America/Los_Angeles, Asia/Tokyo, Australia/Sydney, Asia/Kolkata, UTC),
  each resource carrying the VTIMEZONE it uses, as clients write them;
- realistic sizes: descriptions from none to a few KB (video-call
  invitations), 0-8 attendees, alarms, categories, UTF-8 text, lines folded
  at 75 octets. Median about 1.5 KB, mean about 2 KB per resource.

Every event lies between `anchor - 14 days` and `anchor + 365 days`, so a
feed whose window starts 30 days back publishes all of them. `anchor` is a
date; `default_anchor()` is today's date in UTC.
"""

import datetime as dt
import random
import uuid

UTC = dt.timezone.utc

# VTIMEZONE blocks, as clients send them (current rules only).
VTIMEZONES = {
    "Europe/Berlin": (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
        "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
        "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
    ),
    "Europe/London": (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/London\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\nTZNAME:BST\r\n"
        "DTSTART:19700329T010000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\nTZNAME:GMT\r\n"
        "DTSTART:19701025T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
    ),
    "America/New_York": (
        "BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nTZNAME:EDT\r\n"
        "DTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\n"
        "DTSTART:19701101T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
    ),
    "America/Los_Angeles": (
        "BEGIN:VTIMEZONE\r\nTZID:America/Los_Angeles\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0800\r\nTZOFFSETTO:-0700\r\nTZNAME:PDT\r\n"
        "DTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:-0700\r\nTZOFFSETTO:-0800\r\nTZNAME:PST\r\n"
        "DTSTART:19701101T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\n"
    ),
    "Asia/Tokyo": (
        "BEGIN:VTIMEZONE\r\nTZID:Asia/Tokyo\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0900\r\nTZOFFSETTO:+0900\r\nTZNAME:JST\r\n"
        "DTSTART:19700101T000000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    ),
    "Australia/Sydney": (
        "BEGIN:VTIMEZONE\r\nTZID:Australia/Sydney\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+1100\r\nTZOFFSETTO:+1000\r\nTZNAME:AEST\r\n"
        "DTSTART:19700405T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+1000\r\nTZOFFSETTO:+1100\r\nTZNAME:AEDT\r\n"
        "DTSTART:19701004T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU\r\nEND:DAYLIGHT\r\n"
        "END:VTIMEZONE\r\n"
    ),
    "Asia/Kolkata": (
        "BEGIN:VTIMEZONE\r\nTZID:Asia/Kolkata\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\nTZNAME:IST\r\n"
        "DTSTART:19700101T000000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    ),
}

# (zone, weight); None is UTC written with a Z suffix.
ZONES = [
    ("Europe/Berlin", 35),
    ("America/New_York", 20),
    ("Europe/London", 10),
    ("America/Los_Angeles", 10),
    ("Asia/Tokyo", 7),
    (None, 8),
    ("Australia/Sydney", 5),
    ("Asia/Kolkata", 5),
]

TOPICS = [
    "Massage",
    "Consultation",
    "Haircut",
    "Physiotherapy",
    "Team meeting",
    "1:1",
    "Planning",
    "Beratungsgespräch",
    "Réunion d'équipe",
    "Yoga class",
    "Dental check-up",
    "Onboarding",
    "Customer call",
    "Sprint review",
    "打ち合わせ",
    "Training",
]
NAMES = [
    ("Anna Müller", "anna.mueller@acme.example"),
    ("Bob Smith", "bob@example.com"),
    ("Chloé Dubois", "chloe.dubois@example.fr"),
    ("Daniel Kim", "dkim@example.org"),
    ("Eva Nowak", "eva.nowak@example.pl"),
    ("Farah Khan", "farah@example.in"),
    ("George Brown", "g.brown@example.co.uk"),
    ("Hana Sato", "hana.sato@example.jp"),
    ("Ivan Petrov", "ivan@example.net"),
    ("Julia Rossi", "julia.rossi@example.it"),
]
ROOMS = ["Room 4", "Studio B, 2nd floor", "Praxis Mitte, Torstraße 12, 10119 Berlin", "Online", "Zoom", "Salle 3"]
WORDS = (
    "please bring the documents we discussed last time and arrive ten minutes early "
    "the agenda covers follow up items open questions budget timeline next steps "
    "parking is available behind the building ring the bell at the side entrance "
    "bitte Unterlagen mitbringen merci de confirmer votre présence"
).split()
CALL_INVITE = (
    "Join the video call: https://meet.example.com/abc-defg-hij\n"
    "Meeting ID: 812 3456 7890\nPasscode: 441266\n\n"
    "Dial in by phone:\n+1 646 558 8656 US (New York)\n+49 69 3807 9883 Germany\n"
    "+44 203 481 5237 United Kingdom\n+61 2 8015 6011 Australia\n\n"
    "Find your local number: https://meet.example.com/u/abcdefgh\n\n"
    "Join by SIP: 81234567890@sip.meet.example.com\n\n"
    "This invitation was sent on behalf of the organiser. Please do not forward "
    "it without permission; the meeting may be recorded for quality and training "
    "purposes. If you cannot attend, reply to the organiser so the slot can be "
    "offered to somebody else.\n"
)


def default_anchor():
    return dt.datetime.now(UTC).date()


def escape(text):
    return (
        text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    )


def fold(line):
    """One content line, folded at 75 octets without splitting a UTF-8
    character, CRLF-terminated."""
    raw = line.encode()
    if len(raw) <= 75:
        return line + "\r\n"
    out, chunk, size, limit = [], [], 0, 75
    for ch in line:
        n = len(ch.encode())
        if size + n > limit:
            out.append("".join(chunk))
            chunk, size, limit = [], 0, 74
        chunk.append(ch)
        size += n
    out.append("".join(chunk))
    return "\r\n ".join(out) + "\r\n"


def fmt_local(t):
    return t.strftime("%Y%m%dT%H%M%S")


def fmt_date(d):
    return d.strftime("%Y%m%d")


def when(prop, t, zone):
    if zone is None:
        return f"{prop}:{fmt_local(t)}Z"
    return f"{prop};TZID={zone}:{fmt_local(t)}"


class Gen:
    def __init__(self, seed, anchor):
        self.rnd = random.Random(seed)
        self.anchor = anchor

    def pick_zone(self):
        zones, weights = zip(*ZONES)
        return self.rnd.choices(zones, weights)[0]

    def description(self):
        r = self.rnd.random()
        if r < 0.40:
            return None
        if r < 0.80:
            n = self.rnd.randint(8, 50)
        elif r < 0.95:
            n = self.rnd.randint(50, 250)
        else:
            return " ".join(self.rnd.choices(WORDS, k=self.rnd.randint(10, 40))) + "\n\n" + CALL_INVITE
        return " ".join(self.rnd.choices(WORDS, k=n)).capitalize() + "."

    def common(self, i, summary):
        """Properties beyond the times, in the order clients tend to write them."""
        rnd = self.rnd
        lines = [f"SUMMARY:{escape(summary)}"]
        desc = self.description()
        if desc:
            lines.append(f"DESCRIPTION:{escape(desc)}")
        if rnd.random() < 0.5:
            lines.append(f"LOCATION:{escape(rnd.choice(ROOMS))}")
        if rnd.random() < 0.5:
            people = rnd.sample(NAMES, rnd.randint(1, 8))
            org_cn, org_mail = people[0]
            lines.append(f'ORGANIZER;CN="{org_cn}":mailto:{org_mail}')
            for cn, mail in people:
                stat = rnd.choice(["ACCEPTED", "NEEDS-ACTION", "TENTATIVE", "DECLINED"])
                lines.append(
                    f'ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT={stat};RSVP=TRUE;CN="{cn}":mailto:{mail}'
                )
        if rnd.random() < 0.2:
            lines.append("CATEGORIES:" + ",".join(rnd.sample(["Work", "Clients", "Internal", "Travel", "Health"], 2)))
        if rnd.random() < 0.1:
            lines.append(f"URL:https://booking.example.com/appointments/{i}")
        if rnd.random() < 0.1:
            lines.append("CLASS:PRIVATE")
        if rnd.random() < 0.15:
            lines.append("TRANSP:TRANSPARENT")
        lines.append(f"SEQUENCE:{rnd.choice([0, 0, 0, 1, 2])}")
        return lines

    def alarm(self):
        if self.rnd.random() < 0.6:
            mins = self.rnd.choice([5, 10, 15, 30, 60])
            return [
                "BEGIN:VALARM",
                "ACTION:DISPLAY",
                "DESCRIPTION:Reminder",
                f"TRIGGER:-PT{mins}M",
                f"X-WR-ALARMUID:{uuid.UUID(int=self.rnd.getrandbits(128))}",
                "END:VALARM",
            ]
        return []

    def stamp_lines(self, uid):
        created = dt.datetime(2025, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=self.rnd.randrange(500_000))
        return [
            f"UID:{uid}",
            "DTSTAMP:20260101T000000Z",
            f"CREATED:{created.strftime('%Y%m%dT%H%M%SZ')}",
            f"LAST-MODIFIED:{created.strftime('%Y%m%dT%H%M%SZ')}",
        ]

    def day(self, lo=-14, hi=365):
        return self.anchor + dt.timedelta(days=self.rnd.randrange(lo, hi))

    def timed_start(self, day):
        hour = self.rnd.randrange(7, 19)
        minute = self.rnd.choice([0, 0, 15, 30, 30, 45])
        return dt.datetime.combine(day, dt.time(hour, minute))

    def one_off(self, i, uid):
        rnd = self.rnd
        zone = self.pick_zone()
        start = self.timed_start(self.day())
        if rnd.random() < 0.03:
            end = start + dt.timedelta(days=rnd.randint(1, 4), hours=rnd.randint(0, 5))
        else:
            end = start + dt.timedelta(minutes=rnd.choice([15, 30, 45, 60, 60, 90, 120]))
        ev = ["BEGIN:VEVENT", *self.stamp_lines(uid), when("DTSTART", start, zone), when("DTEND", end, zone)]
        ev += self.common(i, f"{rnd.choice(TOPICS)} {i}")
        ev += self.alarm() + ["END:VEVENT"]
        return [zone], ev

    def all_day(self, i, uid):
        rnd = self.rnd
        day = self.day()
        ev = ["BEGIN:VEVENT", *self.stamp_lines(uid)]
        if rnd.random() < 0.2:
            ev += [f"DTSTART;VALUE=DATE:{fmt_date(day)}", f"DTEND;VALUE=DATE:{fmt_date(day + dt.timedelta(days=1))}"]
            ev += ["RRULE:FREQ=YEARLY", f"SUMMARY:Birthday {rnd.choice(NAMES)[0]}", "TRANSP:TRANSPARENT"]
        else:
            days = 1 if rnd.random() < 0.7 else rnd.randint(2, 10)
            ev += [f"DTSTART;VALUE=DATE:{fmt_date(day)}", f"DTEND;VALUE=DATE:{fmt_date(day + dt.timedelta(days=days))}"]
            ev += self.common(i, rnd.choice(["Holiday", "Conference", "Off-site", "Urlaub", "Training days"]) + f" {i}")
        ev += ["END:VEVENT"]
        return [], ev

    def series(self, i, uid):
        """A recurring series with its overrides, one resource."""
        rnd = self.rnd
        zone = self.pick_zone()
        first_day = self.day(-14, 200)
        kind = rnd.choice(["daily", "weekly", "weekly", "biweekly", "mwf", "monthly"])
        if kind == "mwf":
            first_day -= dt.timedelta(days=first_day.weekday())  # a Monday
        if kind == "monthly" and first_day.day > 28:
            first_day = first_day.replace(day=28)
        start = self.timed_start(first_day)
        minutes = rnd.choice([30, 45, 60, 60, 90])
        count = rnd.choice([None, None, 10, 20, 52])
        rule = {
            "daily": "FREQ=DAILY",
            "weekly": "FREQ=WEEKLY",
            "biweekly": "FREQ=WEEKLY;INTERVAL=2",
            "mwf": "FREQ=WEEKLY;BYDAY=MO,WE,FR",
            "monthly": f"FREQ=MONTHLY;BYMONTHDAY={first_day.day}",
        }[kind]
        if kind == "daily" and count is None:
            count = 30
        if count:
            rule += f";COUNT={count}"
        # The first 10 occurrences (local times), to pick overrides from.
        occ, t = [], start
        while len(occ) < 10:
            if kind == "daily":
                occ.append(t)
                t += dt.timedelta(days=1)
            elif kind == "weekly":
                occ.append(t)
                t += dt.timedelta(weeks=1)
            elif kind == "biweekly":
                occ.append(t)
                t += dt.timedelta(weeks=2)
            elif kind == "mwf":
                if t.weekday() in (0, 2, 4):
                    occ.append(t)
                t += dt.timedelta(days=1)
            else:
                occ.append(t)
                m = t.month % 12 + 1
                t = t.replace(year=t.year + (t.month == 12), month=m)
        summary = f"{rnd.choice(['Weekly', 'Regular', 'Standing', 'Recurring'])} {rnd.choice(TOPICS)} {i}"
        master = [
            "BEGIN:VEVENT",
            *self.stamp_lines(uid),
            when("DTSTART", start, zone),
            when("DTEND", start + dt.timedelta(minutes=minutes), zone),
            f"RRULE:{rule}",
        ]
        picks = rnd.sample(range(1, 10), 4)
        if rnd.random() < 0.5:
            master.append(when("EXDATE", occ[picks[3]], zone))
        master += self.common(i, summary) + self.alarm() + ["END:VEVENT"]
        overrides = []
        n_over = rnd.choice([0, 1, 1, 2, 3])
        for k in picks[:n_over]:
            moved = occ[k] + dt.timedelta(hours=rnd.choice([-2, -1, 1, 2, 24]))
            overrides += [
                "BEGIN:VEVENT",
                f"UID:{uid}",
                "DTSTAMP:20260101T000000Z",
                when("RECURRENCE-ID", occ[k], zone),
                when("DTSTART", moved, zone),
                when("DTEND", moved + dt.timedelta(minutes=minutes), zone),
                f"SUMMARY:{escape(summary)} (moved)",
                "SEQUENCE:1",
                "END:VEVENT",
            ]
        return [zone], master + overrides

    def resource(self, i):
        uid = f"{uuid.UUID(int=self.rnd.getrandbits(128))}"
        r = self.rnd.random()
        if r < 0.10:
            zones, body = self.series(i, uid)
        elif r < 0.15:
            zones, body = self.all_day(i, uid)
        else:
            zones, body = self.one_off(i, uid)
        head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge bench//calgen 1//EN\r\nCALSCALE:GREGORIAN\r\n"
        tz = "".join(VTIMEZONES[z] for z in zones if z)
        text = head + tz + "".join(fold(line) for line in body) + "END:VCALENDAR\r\n"
        return f"{uid}.ics", text.encode()


def calendar(n, anchor, seed=2026):
    """n resources: [(name, bytes)], the same for the same (n, anchor, seed);
    the first k of calendar(n) are calendar(k)."""
    g = Gen(seed, anchor)
    return [g.resource(i) for i in range(n)]


def extra(n, anchor, seed=4242):
    """n further resources with their own UIDs (for timed PUTs)."""
    g = Gen(seed, anchor)
    return [g.resource(100_000_000 + i) for i in range(n)]


def changed(body, k):
    """The same resource with its (first) SUMMARY changed: an edit."""
    return body.replace(b"SUMMARY:", f"SUMMARY:edit {k} ".encode(), 1)


if __name__ == "__main__":
    import statistics
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    cal = calendar(n, default_anchor())
    sizes = [len(b) for _, b in cal]
    print(
        f"{n} resources, {sum(sizes) / 1e6:.1f} MB, median {statistics.median(sizes):.0f} B, "
        f"mean {statistics.mean(sizes):.0f} B, max {max(sizes)} B, "
        f"recurring {sum(b.count(b'RRULE:FREQ') - b.count(b'RRULE:FREQ=YEARLY;BYMONTH') for _, b in cal)}"
    )
