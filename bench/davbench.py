"""The load generator and the servers of the CalDAV benchmarks.

Standard-library Python only. One `Conn` (keep-alive HTTP/1.1, Basic
auth) per client thread; every server, calbridge and its peers alike, gets
the same requests from the same code. Times are wall-clock on the client
side, from sending a request to having read the whole response.
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP connection with Basic auth."""

    def __init__(self, base, user="", password="", timeout=900):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.c = None

    def request(self, method, path, body=b"", headers=None):
        h = {"Authorization": self.auth, "Content-Length": str(len(body))}
        h.update(headers or {})
        for attempt in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.c.request(method, path, body=body, headers=h)
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.close()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt:
                    raise

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def wait_http(port, path="/", timeout=120, proc=None):
    """Until something answers HTTP on the port."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing answered on port {port} within {timeout} s")


def proc_status(pid):
    """(VmRSS, VmHWM) in MB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return out.get("VmRSS"), out.get("VmHWM")


# --- request bodies -------------------------------------------------------

PROPFIND_ETAGS = (
    b'<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:">'
    b"<d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>"
)
XML = {"Content-Type": "application/xml; charset=utf-8"}
ICS = {"Content-Type": "text/calendar; charset=utf-8"}


def query_body(start, end, data):
    prop = "<c:calendar-data/>" if data else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        f'<d:prop><d:getetag/>{prop}</d:prop><c:filter><c:comp-filter name="VCALENDAR">'
        f'<c:comp-filter name="VEVENT"><c:time-range start="{start}" end="{end}"/>'
        "</c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"
    ).encode()


def multiget_body(hrefs):
    refs = "".join(f"<d:href>{h}</d:href>" for h in hrefs)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        f"<d:prop><d:getetag/><c:calendar-data/></d:prop>{refs}</c:calendar-multiget>"
    ).encode()


def sync_body(token):
    return (
        '<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:">'
        f"<d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level>"
        "<d:prop><d:getetag/></d:prop></d:sync-collection>"
    ).encode()


SYNC_TOKEN = re.compile(rb"<(?:[A-Za-z0-9]+:)?sync-token>([^<]*)</")
HREF = re.compile(rb"<(?:[A-Za-z0-9]+:)?href>([^<]*)</")
RESPONSE = re.compile(rb"<(?:[A-Za-z0-9]+:)?response[ >]")


def responses(body):
    return len(RESPONSE.findall(body))


# --- servers ----------------------------------------------------------------


class Server:
    """A CalDAV server on loopback with fresh storage and one calendar."""

    name = "?"
    version = "?"
    user = "bench"
    password = "bench"

    def __init__(self, workdir):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.proc = None
        self.log = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def conn(self):
        return Conn(self.base, self.user, self.password)

    def spawn(self, argv, env=None, ready_path="/"):
        self.log = open(os.path.join(self.workdir, "server.log"), "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(self.port, ready_path, proc=self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def memory(self):
        return proc_status(self.proc.pid)

    # How to ask for the whole calendar as one iCalendar stream.
    def ics_request(self):
        return self.path, {}

    def native_load(self, events):
        raise NotImplementedError


class Calbridge(Server):
    name = "calbridge"
    ADMIN = "bench-admin-token-0123456789abcdef"

    def __init__(self, workdir, binary, env=None):
        super().__init__(workdir)
        self.binary = binary
        out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()
        self.version = out[-1] if out else "?"
        self.env = dict(os.environ)
        self.env.update(
            CALBRIDGE_ADMIN_TOKEN=self.ADMIN,
            CALBRIDGE_SECRET_KEY="bench-secret-key-0123456789abcdef",
            CALBRIDGE_LOG=os.environ.get("CALBRIDGE_LOG", "warn"),
            CALBRIDGE_PUBLIC_URL=self.base,
        )
        self.env.update(env or {})
        self.start()
        company = self.api("POST", "/companies", {"name": "Bench", "timezone": "Europe/Berlin"})
        staff = self.api("POST", f"/companies/{company['id']}/staff", {"name": "Bench", "email": "bench@example.com"})
        self.staff = staff["id"]
        pw = self.api("POST", f"/staff/{staff['id']}/app-passwords", {"label": "bench"})
        self.user, self.password = pw["username"], pw["password"]
        self.home = f"/dav/calendars/{staff['id']}/"
        self.path = self.home + "appointments/"
        feed = self.api("POST", "/feeds", {"scope": "staff", "id": staff["id"]})
        self.feed_path = urllib.parse.urlsplit(feed["url"]).path

    def start(self):
        self.spawn(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data", os.path.join(self.workdir, "store")],
            env=self.env,
            ready_path="/healthz",
        )

    def restart(self):
        self.stop()
        self.start()

    def api(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"Authorization": "Bearer " + self.ADMIN}
        if body is not None:
            headers["Content-Type"] = "application/json"
        c.request(method, "/api/v1" + path, body=data, headers=headers)
        r = c.getresponse()
        raw = r.read()
        c.close()
        if r.status >= 300:
            raise SystemExit(f"{method} /api/v1{path}: {r.status} {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def ics_request(self):
        return self.feed_path, {}


class Radicale(Server):
    name = "Radicale"

    def __init__(self, workdir, venv):
        super().__init__(workdir)
        self.python = os.path.join(venv, "bin", "python")
        self.version = pip_version(venv, "Radicale")
        self.folder = os.path.join(workdir, "collections")
        self.path = f"/{self.user}/calendar/"
        self.config = os.path.join(workdir, "radicale.conf")
        with open(self.config, "w") as f:
            f.write(
                "[server]\n"
                f"hosts = 127.0.0.1:{self.port}\n"
                "max_connections = 32\ntimeout = 3600\n"
                "[auth]\ntype = none\n"
                "[rights]\ntype = owner_only\n"
                f"[storage]\nfilesystem_folder = {self.folder}\n"
                "[web]\ntype = none\n"
                "[logging]\nlevel = warning\n"
            )
        self.start()
        s, _, d = self.conn().request("MKCALENDAR", self.path)
        if s != 201:
            raise SystemExit(f"Radicale MKCALENDAR: {s} {d[:200]!r}")

    def start(self):
        self.spawn([self.python, "-m", "radicale", "--config", self.config], ready_path="/.well-known/caldav")

    def native_load(self, events):
        """Radicale's own storage format: one .ics file per item in the
        collection's folder (its cache is built on first access)."""
        self.stop()
        folder = os.path.join(self.folder, "collection-root", self.user, "calendar")
        for name, body in events:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(body)
        self.start()


class Xandikos(Server):
    name = "Xandikos"

    def __init__(self, workdir, venv):
        super().__init__(workdir)
        self.exe = os.path.join(venv, "bin", "xandikos")
        self.version = pip_version(venv, "xandikos")
        self.root = os.path.join(workdir, "root")
        self.path = "/user/calendars/calendar/"
        self.start()

    def start(self):
        self.spawn(
            [self.exe, "serve", "-d", self.root, "--defaults", "-l", "127.0.0.1", "-p", str(self.port)],
            env=dict(os.environ, XDG_DATA_HOME=os.path.join(self.workdir, "state")),
        )

    def ics_request(self):
        return self.path, {"Accept": "text/calendar"}

    def native_load(self, events):
        """Xandikos's own storage: the collection is a git repository; the
        items are written into its work tree and committed at once."""
        self.stop()
        repo = os.path.join(self.root, "user", "calendars", "calendar")
        for name, body in events:
            with open(os.path.join(repo, name), "wb") as f:
                f.write(body)
        git = ["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", f"load {len(events)} items"], check=True)
        self.start()


def pip_version(venv, dist):
    py = os.path.join(venv, "bin", "python")
    out = subprocess.run(
        [py, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"], capture_output=True, text=True
    )
    return out.stdout.strip() or "?"


# --- timing -----------------------------------------------------------------


class Timing(list):
    """Samples in ms, plus the untimed first call's time and result."""

    first_ms = None
    last = None


def measure(fn, reps, budget):
    """fn() timed `reps` times (ms), stopping early once `budget` seconds
    have passed (but never below 3 samples). One call first, not counted
    (its time is kept as `first_ms`: a cold cache or index). Only fn() is
    timed: whatever checks its result does so after, from `last`."""
    times = Timing()
    t0 = time.perf_counter()
    times.last = fn()
    times.first_ms = (time.perf_counter() - t0) * 1000
    t_end = time.time() + budget
    while len(times) < reps and (len(times) < 3 or time.time() < t_end):
        t0 = time.perf_counter()
        times.last = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def stats(times):
    s = sorted(times)
    out = {
        "median_ms": round(statistics.median(s), 3),
        "p90_ms": round(s[min(len(s) - 1, int(len(s) * 0.9))], 3),
        "n": len(s),
    }
    if getattr(times, "first_ms", None) is not None:
        out["first_ms"] = round(times.first_ms, 3)
    return out


def parallel_put(server, items, clients, budget=None, create=True):
    """PUT `items` (name, body) with `clients` concurrent connections; a
    name is relative to the server's calendar unless it starts with '/'.
    Stops taking new items after `budget` seconds. Returns (done, seconds,
    latencies ms)."""
    queue = list(reversed(items))
    lock = threading.Lock()
    errors, latencies = [], []
    t_end = time.time() + budget if budget else None
    path = server.path

    def worker():
        conn = server.conn()
        mine = []
        while True:
            with lock:
                if not queue or (t_end and time.time() > t_end):
                    break
                name, body = queue.pop()
            headers = dict(ICS)
            if create:
                headers["If-None-Match"] = "*"
            t0 = time.perf_counter()
            target = name if name.startswith("/") else path + name
            status, _, data = conn.request("PUT", target, body, headers)
            mine.append((time.perf_counter() - t0) * 1000)
            if status not in (201, 204):
                errors.append((name, status, data[:300]))
        conn.close()
        with lock:
            latencies.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{server.name}: {len(errors)} PUTs failed, e.g. {errors[0]}")
    return len(latencies), elapsed, latencies


def make_workdir(tag):
    base = os.path.join(HERE, "work")
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"{tag}-", dir=base)


def remove(path):
    shutil.rmtree(path, ignore_errors=True)
