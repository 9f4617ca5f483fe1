#!/usr/bin/env python3
"""Run caldav-server-tester (PyPI) against a running `calbridge serve` and
fail if any feature is graded `broken` or `ungraceful`.

  caldav_tester.py BASE_URL [REPORT.json]   (admin token in CALBRIDGE_ADMIN_TOKEN)

A fresh staff member is provisioned through the admin API (see
caldav_client.provision). The tester's JSON report is parsed (collapsed
keys stand for all their children); every key that is not `full` is
printed with its behaviour, so the CI log says what calbridge does not do.
"""

import json
import os
import subprocess
import sys

from caldav_client import provision

BAD = {"broken", "ungraceful"}


def main():
    base = sys.argv[1].rstrip("/")
    out = sys.argv[2] if len(sys.argv) > 2 else None
    _, user, password = provision(base, os.environ["CALBRIDGE_ADMIN_TOKEN"], "Tess")
    tester = os.path.join(os.path.dirname(sys.executable), "caldav-server-tester")
    run = subprocess.run(
        [
            tester,
            "--caldav-url",
            f"{base}/dav/",
            "--caldav-username",
            user,
            "--caldav-password",
            password,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-5000:])
        raise SystemExit(f"caldav-server-tester exited with {run.returncode}")
    report = json.loads(run.stdout)
    if out:
        with open(out, "w") as f:
            f.write(run.stdout)
    features = report["features"]
    grades = {}
    for key, value in sorted(features.items()):
        support = value.get("support", "full") if isinstance(value, dict) else str(value)
        grades.setdefault(support, []).append(key)
        if support != "full":
            detail = value.get("behaviour") or value.get("description") or ""
            print(f"  {support:<11} {key}  {detail}")
    summary = ", ".join(f"{k}: {len(v)}" for k, v in sorted(grades.items()))
    print(f"caldav-server-tester {report.get('caldav_version', '?')}: {len(features)} keys ({summary})")
    bad = [k for s in BAD for k in grades.get(s, [])]
    if bad:
        raise SystemExit(f"FAIL: graded broken or ungraceful: {', '.join(sorted(bad))}")
    print("caldav-server-tester: nothing broken or ungraceful")


if __name__ == "__main__":
    main()
