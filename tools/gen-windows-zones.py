#!/usr/bin/env python3
"""Generate src/ics/windows_zones.rs from CLDR's windowsZones data.

Usage: tools/gen-windows-zones.py [path/to/windowsZones.json]

Without an argument the CLDR JSON is fetched with `npm pack cldr-core` (the
official CLDR JSON distribution) into a temporary directory. The table maps
every Windows zone name to its IANA zone for territory 001 (the "golden"
zone), and every IANA zone CLDR lists under any territory back to its Windows
name, so both directions are covered.
"""
import json
import os
import subprocess
import sys
import tarfile
import tempfile

OUT = os.path.join(os.path.dirname(__file__), "..", "src", "ics", "windows_zones.rs")


def load(path):
    if path:
        with open(path) as f:
            return json.load(f), "(local file)"
    tmp = tempfile.mkdtemp()
    name = subprocess.check_output(["npm", "pack", "cldr-core", "--silent"], cwd=tmp, text=True).strip().splitlines()[-1]
    with tarfile.open(os.path.join(tmp, name)) as t:
        member = t.extractfile("package/supplemental/windowsZones.json")
        return json.load(member), name


def main():
    data, source = load(sys.argv[1] if len(sys.argv) > 1 else None)
    zones = data["supplemental"]["windowsZones"]["mapTimezones"]
    version = data["supplemental"].get("version", {}).get("_cldrVersion", "?")
    golden = {}
    back = {}
    for entry in zones:
        z = entry["mapZone"]
        win, territory, ianas = z["_other"], z["_territory"], z["_type"].split()
        if territory == "001":
            golden[win] = ianas[0]
        for iana in ianas:
            # The golden zone of a Windows name wins over other territories.
            if territory == "001" or iana not in back:
                back[iana] = win
    for win, iana in golden.items():
        back[iana] = win
    lines = [
        "//! Windows time-zone names <-> IANA zones, generated from CLDR",
        f"//! windowsZones (CLDR {version}, {source}) by tools/gen-windows-zones.py.",
        "//! Do not edit by hand: rerun the generator.",
        "",
        "/// Windows zone name -> IANA zone (territory 001), sorted by Windows name.",
        "pub static WINDOWS_TO_IANA: &[(&str, &str)] = &[",
    ]
    for win in sorted(golden):
        lines.append(f'    ("{win}", "{golden[win]}"),')
    lines += ["];", "", "/// IANA zone -> Windows zone name, sorted by IANA name.", "pub static IANA_TO_WINDOWS: &[(&str, &str)] = &["]
    for iana in sorted(back):
        lines.append(f'    ("{iana}", "{back[iana]}"),')
    lines += ["];", ""]
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {OUT}: {len(golden)} Windows names, {len(back)} IANA names")


if __name__ == "__main__":
    main()
