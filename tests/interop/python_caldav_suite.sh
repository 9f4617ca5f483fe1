#!/usr/bin/env bash
# python-caldav's own functional test suite (tests/test_caldav.py and its
# async twin tests/test_async_integration.py, shipped in the caldav sdist,
# not the wheel) against a running `calbridge serve`.
#
#   python_caldav_suite.sh BASE_URL        (admin token in CALBRIDGE_ADMIN_TOKEN)
#
# Fetches the pinned sdist once into a cache outside the clone (checked
# against its SHA-256), installs the suite's dependencies into a virtualenv
# of their own, provisions a fresh staff member with an app password through
# the admin API, points the suite at /dav/ with the feature profile in
# python_caldav_features.yaml, and fails on any failed test, on an error,
# and on a run in which calbridge's tests did not actually run.
#
# Environment: CALBRIDGE_CI_CACHE (default ../calbridge-ci-cache beside the
# clone), CALBRIDGE_CI_PYCALDAV_VENV (default ../calbridge-ci-pycaldav-venv).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BASE=${1:?usage: python_caldav_suite.sh BASE_URL}
BASE=${BASE%/}
: "${CALBRIDGE_ADMIN_TOKEN:?CALBRIDGE_ADMIN_TOKEN must be set}"

VERSION=3.6.0
SHA256=f74deecf1b7f1a56ffc20a739f28d2c02e7ddbc40bb59bf9f65a3af58e8aef1d
CACHE=${CALBRIDGE_CI_CACHE:-$ROOT/../calbridge-ci-cache}
VENV=${CALBRIDGE_CI_PYCALDAV_VENV:-$ROOT/../calbridge-ci-pycaldav-venv}
PY=$VENV/bin/python

if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
"$PY" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements-pycaldav-suite.txt"

SDIST=$CACHE/caldav-$VERSION.tar.gz
sdist_ok() { [ -f "$SDIST" ] && echo "$SHA256  $SDIST" | sha256sum --check --status; }
if ! sdist_ok; then
  mkdir -p "$CACHE"
  rm -f "$SDIST"
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary :all: --dest "$CACHE" "caldav==$VERSION"
  sdist_ok || { echo "caldav-$VERSION.tar.gz does not match its pinned SHA-256"; exit 1; }
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
tar xzf "$SDIST" -C "$WORK"
SUITE=$WORK/caldav-$VERSION

# A fresh staff member, and the suite's server list: only calbridge (the
# embedded Radicale/Xandikos and the Docker servers are switched off).
(cd "$HERE" && "$PY" - "$BASE" "$HERE/python_caldav_features.yaml" "$SUITE/tests/caldav_test_servers.yaml") <<'PY'
import os
import sys

import yaml

from caldav_client import provision

base, features_file, out = sys.argv[1:4]
_, user, password = provision(base, os.environ["CALBRIDGE_ADMIN_TOKEN"], "Pycaldav")
with open(features_file) as f:
    features = yaml.safe_load(f)
servers = {
    "test-servers": {
        "radicale": {"type": "embedded", "enabled": False},
        "xandikos": {"type": "embedded", "enabled": False},
        "calbridge": {
            "type": "external",
            "enabled": True,
            "url": f"{base}/dav/",
            "username": user,
            "password": password,
            "features": features,
        },
    }
}
with open(out, "w") as f:
    yaml.safe_dump(servers, f, sort_keys=False)
os.chmod(out, 0o600)
PY

# -W: the suite runs with warnings as errors, and its testPrincipals still
# calls the principals() that caldav 3.6.0 itself deprecates; it fails on
# every server whose principal search works. Only that warning is let
# through. TMPDIR keeps the suite's per-server lock files to this run.
set +e
(cd "$SUITE" && TMPDIR=$WORK PYTHON_CALDAV_TEST_DOCKER=0 PYTHON_CALDAV_TEST_EMBEDDED=0 \
  "$PY" -m pytest tests/test_caldav.py tests/test_async_integration.py \
    -q -p no:cacheprovider -o asyncio_default_fixture_loop_scope=function \
    -W "ignore:principals() is deprecated:DeprecationWarning" \
    -rfEs --junitxml="$WORK/junit.xml")
status=$?
set -e

# pytest's exit status covers failures and errors; the report also makes
# sure calbridge's own test classes ran and that the profile was checked
# (a typo in the server list would otherwise leave a green, empty run).
"$PY" - "$WORK/junit.xml" "$status" <<'PY'
import sys
import xml.etree.ElementTree as ET

junit, status = sys.argv[1], int(sys.argv[2])
ours = {"passed": 0, "failed": 0, "skipped": 0}
checked = False
for case in ET.parse(junit).iter("testcase"):
    if "calbridge" not in case.get("classname", "").lower():
        continue
    if case.find("failure") is not None or case.find("error") is not None:
        ours["failed"] += 1
    elif case.find("skipped") is not None:
        ours["skipped"] += 1
    else:
        ours["passed"] += 1
        checked = checked or case.get("name") == "testCheckCompatibility"
print(f"python-caldav suite, calbridge's tests: {ours['passed']} passed, "
      f"{ours['failed']} failed, {ours['skipped']} skipped")
if status != 0:
    sys.exit(f"FAIL: pytest exited with {status}")
if ours["passed"] < 100:
    sys.exit("FAIL: calbridge's tests did not run (check the server list)")
if not checked:
    sys.exit("FAIL: testCheckCompatibility did not run, so the feature profile went unchecked")
PY
