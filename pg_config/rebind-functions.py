#!/usr/bin/env python3
"""rebind-functions.py GENERATED.sql [--skip name,name]: the part of an upgrade
script that moves every C function of the extension to the new version's
library (`nostr_pg-<version>.so`, which pgrx names for the version).

GENERATED.sql is the install script pgrx generates for the new version
(`cd nostr_pg && cargo pgrx schema pg15 --out FILE`). Each `CREATE FUNCTION`
in it that is implemented in C is printed again as `CREATE OR REPLACE
FUNCTION nostr.<name>(...)`, which keeps the function (and everything that
depends on it) and only changes its body: the library and symbol. Functions
whose signature changed, or that are new, must instead be dropped and created
by hand in the upgrade script; name them with --skip.
"""
import re
import sys


def functions(text):
    """(name, statement) for every C function in a pgrx-generated script."""
    pattern = re.compile(r'CREATE\s+FUNCTION\s+"?(\w+)"?\s*\((.*?)\)\s*(RETURNS.*?;)', re.S)
    for m in pattern.finditer(text):
        name, args, rest = m.group(1), m.group(2), m.group(3)
        if "LANGUAGE c" not in rest:
            continue
        args = re.sub(r"/\*.*?\*/", "", args)
        args = [a.strip() for a in args.split(",") if a.strip()]
        args = "(\n\t" + ",\n\t".join(args) + "\n)" if args else "()"
        rest = re.sub(r"/\*.*?\*/", "", rest)
        rest = "\n".join(line.strip() for line in rest.splitlines() if line.strip())
        yield name, f"CREATE OR REPLACE FUNCTION nostr.{name}{args} {rest}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    skip = set()
    if "--skip" in sys.argv:
        skip = set(sys.argv[sys.argv.index("--skip") + 1].split(","))
    text = open(sys.argv[1], encoding="utf-8").read()
    for name, stmt in sorted(functions(text)):
        if name not in skip:
            print(stmt)
            print()


if __name__ == "__main__":
    main()
