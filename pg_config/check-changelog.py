#!/usr/bin/env python3
"""check-changelog.py [REPO]: CHANGELOG.md must describe the extension version being built.

The version `CREATE EXTENSION nostr_pg` installs is `default_version` in
nostr_pg/nostr_pg.control; `@CARGO_VERSION@` there stands for the crate's
Cargo version. CHANGELOG.md needs a `## VERSION` heading for it, newest
version first, and every released version's section an `Upgrade:` line (whether
`ALTER EXTENSION nostr_pg UPDATE` needs a script); a script it names
(`nostr_pg--A--B.sql`) must exist in nostr_pg/sql/. Prints nothing and exits 0
when all is well.
"""
import json
import os
import re
import subprocess
import sys

VERSION_HEADING = re.compile(r"^## \[?(\d+\.\d+\.\d+)\]?", re.M)
SECTION = re.compile(r"^## .*?(?=^## |\Z)", re.M | re.S)


def as_tuple(version):
    return tuple(int(x) for x in version.split("."))


def extension_version(repo):
    with open(os.path.join(repo, "nostr_pg", "nostr_pg.control"), encoding="utf-8") as fh:
        m = re.search(r"^default_version\s*=\s*'([^']*)'", fh.read(), re.M)
    if not m:
        sys.exit("nostr_pg/nostr_pg.control: no default_version")
    if m.group(1) != "@CARGO_VERSION@":
        return m.group(1)
    meta = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=repo, capture_output=True, text=True, check=True,
    )
    for package in json.loads(meta.stdout)["packages"]:
        if package["name"] == "nostr_pg":
            return package["version"]
    sys.exit("cargo metadata: no package nostr_pg")


def problems(repo):
    version = extension_version(repo)
    path = os.path.join(repo, "CHANGELOG.md")
    if not os.path.exists(path):
        return [f"CHANGELOG.md is missing (the extension is at {version})"]
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    out = []
    versions = VERSION_HEADING.findall(text)
    if version not in versions:
        out.append(f"CHANGELOG.md: no '## {version}' heading for the extension version {version}")
    if versions != sorted(versions, key=as_tuple, reverse=True):
        out.append(f"CHANGELOG.md: versions not newest first: {', '.join(versions)}")
    elif versions and as_tuple(versions[0]) > as_tuple(version):
        out.append(f"CHANGELOG.md: {versions[0]} is newer than the extension version {version}")
    for section in SECTION.findall(text):
        heading = section.splitlines()[0]
        if heading.startswith("## Unreleased"):
            continue  # its upgrade line and script come with the release
        if not re.search(r"^Upgrade:", section, re.M):
            out.append(f"CHANGELOG.md: '{heading}' has no 'Upgrade:' line")
        for script in re.findall(r"nostr_pg--[\w.]+--[\w.]+\.sql", section):
            if not os.path.exists(os.path.join(repo, "nostr_pg", "sql", script)):
                out.append(f"CHANGELOG.md: '{heading}' names {script}, which is not in nostr_pg/sql/")
    return out


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    found = problems(repo)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
