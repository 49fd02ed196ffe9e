#!/usr/bin/env python3
"""rebind-functions.py NEW.sql OLD.sql: the part of an upgrade script that
moves the extension's C functions to the new version's library
(`nostr_pg-<version>.so`, which pgrx names for the version).

NEW.sql is the install script pgrx generates for the new version
(`cd nostr_pg && cargo pgrx schema pg15 --out FILE`), OLD.sql the old
version's (nostr_pg/sql/nostr_pg--<old>.sql). A C function of NEW.sql that
OLD.sql has with the same argument types is printed as `CREATE OR REPLACE
FUNCTION`, which keeps the function (and what depends on it) and changes its
library and symbol; one that is new, or whose arguments changed, as `CREATE
FUNCTION` (drop the old signature by hand first: a DROP is a decision).
C functions of OLD.sql that NEW.sql lacks are listed in a comment at the end.
"""
import re
import sys

FUNCTION = re.compile(r'CREATE\s+FUNCTION\s+"?(\w+)"?\s*\((.*?)\)\s*(RETURNS.*?;)', re.S)


def functions(text):
    """{(name, argument types): (arguments, rest)} for the C functions."""
    out = {}
    for m in FUNCTION.finditer(text):
        name, args, rest = m.group(1), m.group(2), m.group(3)
        if "LANGUAGE c" not in rest:
            continue
        args = [a.strip() for a in re.sub(r"/\*.*?\*/", "", args).split(",") if a.strip()]
        # "name" TYPE [DEFAULT ...]: the type alone identifies the signature.
        types = tuple(re.sub(r"\s+DEFAULT\s+.*$", "", a).split(None, 1)[-1].lower() for a in args)
        rest = "\n".join(line.strip() for line in re.sub(r"/\*.*?\*/", "", rest).splitlines() if line.strip())
        out[(name, types)] = (args, rest)
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    new = functions(open(sys.argv[1], encoding="utf-8").read())
    old = functions(open(sys.argv[2], encoding="utf-8").read())
    for key in sorted(new):
        name, _ = key
        args, rest = new[key]
        verb = "CREATE OR REPLACE FUNCTION" if key in old else "CREATE FUNCTION"
        args = "(\n\t" + ",\n\t".join(args) + "\n)" if args else "()"
        print(f"{verb} nostr.{name}{args} {rest}\n")
    gone = sorted(k for k in old if k not in new)
    if gone:
        print("-- In the old version only (dropped by hand above):")
        for name, types in gone:
            print(f"--   nostr.{name}({', '.join(types)})")


if __name__ == "__main__":
    main()
