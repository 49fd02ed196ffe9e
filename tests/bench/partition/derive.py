#!/usr/bin/env python3
"""Splits a gen_events JSONL file into the study's base and fresh sets and
writes each as PostgreSQL COPY text rows with the columns nostr_pg derives
from an event (nostr_pg/src/trigger.rs fill_derived_columns; index keys as
nostr_pg_core::Event::index_keys and tags::key). Deriving them here instead
of in SQL is what makes a 10M-event load take minutes instead of an hour.

derive.py FILE OUTDIR PARTS PART OLDER K
  Line n (from 1) is fresh when n > OLDER or n % K == 0, base otherwise;
  this process handles the lines with n % PARTS == PART and writes
  OUTDIR/base-PART.tsv and OUTDIR/fresh-PART.tsv. Columns: seq (= n), id,
  pubkey, created_at, kind, tags, d_key, expires_at, event (the line).
"""
import hashlib
import json
import re
import sys

INT = re.compile(r"^[+-]?[0-9]+$")
ESC = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def key(letter, value):
    if len(value.encode()) <= 256 and "\0" not in value:
        return letter + ":" + value
    return letter + "#" + hashlib.sha256(value.encode()).hexdigest()


def array(items):
    return "{" + ",".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items) + "}"


def row(n, line):
    e = json.loads(line)
    kind = e["kind"]
    tags = e["tags"]
    keys = sorted({key(t[0], t[1]) for t in tags
                   if len(t) >= 2 and len(t[0]) == 1 and t[0].isascii() and t[0].isalpha()})
    if kind in (0, 3) or 10000 <= kind <= 19999:
        d_key = ""
    elif 30000 <= kind <= 39999:
        d_key = key("d", next((t[1] for t in tags if len(t) >= 2 and t[0] == "d"), ""))
    else:
        d_key = None
    exp = next((t[1] for t in tags if len(t) >= 2 and t[0] == "expiration"), None)
    expires = exp if exp is not None and INT.match(exp) and abs(int(exp)) < 2**63 else None
    cols = [str(n), "\\x" + e["id"], "\\x" + e["pubkey"], str(e["created_at"]), str(kind), array(keys),
            d_key, expires, line]
    return "\t".join("\\N" if c is None else c.translate(ESC) for c in cols) + "\n"


def main():
    path, outdir, parts, part, older, k = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
    with open(path, encoding="utf-8") as src, \
            open(f"{outdir}/base-{part}.tsv", "w", encoding="utf-8") as base, \
            open(f"{outdir}/fresh-{part}.tsv", "w", encoding="utf-8") as fresh:
        for n, line in enumerate(src, 1):
            if n % parts != part:
                continue
            out = fresh if n > older or n % k == 0 else base
            out.write(row(n, line.rstrip("\n")))


if __name__ == "__main__":
    main()
