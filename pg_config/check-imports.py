#!/usr/bin/env python3
"""check-imports.py [REPO]: fails when modules of a Rust crate import each other in a circle.

Modules should import downward only: a circle means two files are one concern,
or a type they share lives in the wrong file. For every crate in REPO (a
directory with Cargo.toml and src/, and each multi-file binary in src/bin/),
this reads the non-test code of each top-level module (`src/x.rs`, `src/x/`),
notes which sibling modules it names (`use crate::x...`, `crate::x::...` paths,
`super::` paths that climb to the crate root), and reports every group of
modules that reach each other.

Circles listed in pg_config/import-circles.allow are tolerated while they are
being removed; an entry that no longer matches a circle is an error too, so
the list only shrinks. Prints nothing and exits 0 when all is well.
"""
import os
import re
import sys

SKIP_DIRS = {"target", ".git", "node_modules"}
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
RAW_STRING = re.compile(r'b?r(#*)"')
CHAR = re.compile(r"b?'(\\.[^']*|[^\\'])'")


def code_only(text):
    """The text with comments, string and char literals blanked out (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif m := RAW_STRING.match(text, i):
            end = text.find('"' + m.group(1), m.end())
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"' or text.startswith('b"', i):
            i += 1 if c == '"' else 2
            start = i
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", start, i))
            i += 1
        elif m := CHAR.match(text, i):
            out.append("' '")  # a char literal; a lifetime ('a) has no closing quote
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def item_end(code, i):
    """Index just past the item starting at i: up to its `;`, or its `{...}` block."""
    depth = 0
    while i < len(code):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        elif code[i] == ";" and depth == 0:
            return i + 1
        i += 1
    return i


def without_test_code(code):
    """Drops every item gated by #[cfg(test)] (test modules, test-only imports)."""
    attr = re.compile(r"#\[cfg\(test\)\]")
    while m := attr.search(code):
        code = code[: m.start()] + code[item_end(code, m.end()) :]
    return code


def test_only_files(text, here):
    """Files a module pulls in with #[cfg(test)] ... #[path = "f.rs"] mod x;."""
    files = set()
    for m in re.finditer(r"(?:#\[[^\]]*\]\s*)+mod\s+" + IDENT + r"\s*;", text):
        attrs = m.group(0)
        path = re.search(r'#\[path\s*=\s*"([^"]+)"\]', attrs)
        if path and "#[cfg(test)]" in attrs:
            files.add(os.path.normpath(os.path.join(here, path.group(1))))
    return files


def use_tree_heads(code, i):
    """Names at the head of each branch of a use tree starting at code[i] (after `crate::`)."""
    code_i = code[i:].lstrip()
    if not code_i.startswith("{"):
        m = re.match(IDENT, code_i)
        return [m.group(0)] if m else []
    heads, depth, branch_start = [], 0, True
    for k, c in enumerate(code_i):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                break
        elif c == ",":
            branch_start = depth == 1
            continue
        if depth == 1 and branch_start and (m := re.match(IDENT, code_i[k:])):
            heads.append(m.group(0))
            branch_start = False
        elif depth == 1 and c == "{":
            branch_start = True
    return heads


def named_modules(code, depth):
    """Top-level module names this file's code refers to; `depth` is how far the
    file sits below its top-level module (src/x.rs: 0, src/x/y.rs: 1)."""
    names = set()
    for m in re.finditer(r"(?<![\w$])crate\s*::\s*", code):
        names.update(use_tree_heads(code, m.end()))
    # super:: climbs one module per step; depth+1 steps reach the crate root.
    for m in re.finditer(r"(?<![\w$:])((?:super\s*::\s*)+)", code):
        if m.group(1).count("super") == depth + 1:
            names.update(use_tree_heads(code, m.end()))
    return names


def modules_of(src, skip_bin):
    """{top-level module: [(file, depth below it)]} for the crate rooted at src."""
    mods = {}
    for dirpath, dirs, files in os.walk(src):
        if skip_bin and dirpath == src:
            dirs[:] = [d for d in dirs if d != "bin"]
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src).split(os.sep)
            if len(rel) == 1 and f in ("lib.rs", "main.rs"):
                continue
            top = rel[0][:-3] if rel[0].endswith(".rs") else rel[0]
            depth = len(rel) - 1 - (1 if rel[-1] == "mod.rs" else 0)
            mods.setdefault(top, []).append((os.path.join(dirpath, f), depth))
    return mods


def import_graph(src, skip_bin):
    mods = modules_of(src, skip_bin)
    sources, tests = {}, set()
    for files in mods.values():
        for path, _ in files:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            sources[path] = code_only(text)
            tests |= test_only_files(text, os.path.dirname(path))
    graph = {m: set() for m in mods}
    for m, files in mods.items():
        for path, depth in files:
            if os.path.normpath(path) in tests:
                continue
            names = named_modules(without_test_code(sources[path]), depth)
            graph[m] |= {n for n in names if n in mods and n != m}
    return graph


def circles(graph):
    """Groups of two or more modules that all reach each other (strongly connected)."""
    reach = {m: set() for m in graph}
    for start in graph:
        todo = list(graph[start])
        while todo:
            m = todo.pop()
            if m not in reach[start]:
                reach[start].add(m)
                todo.extend(graph[m])
    groups = set()
    for m in graph:
        group = frozenset({m} | {o for o in reach[m] if m in reach[o]})
        if len(group) > 1:
            groups.add(group)
    return sorted(sorted(g) for g in groups)


def crates(repo):
    """(name as printed, src dir, whether src/bin is its own crates) for every crate."""
    for dirpath, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        src = os.path.join(dirpath, "src")
        if "Cargo.toml" in files and os.path.isdir(src):
            yield os.path.relpath(src, repo), src, True
            bins = os.path.join(src, "bin")
            if os.path.isdir(bins):
                for b in sorted(os.listdir(bins)):
                    if os.path.isdir(os.path.join(bins, b)):
                        yield os.path.relpath(os.path.join(bins, b), repo), os.path.join(bins, b), False


def allowed(path):
    """{(crate, frozenset of modules)} from the allow-list (`crate: a, b, c` lines)."""
    out = set()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.split("#", 1)[0].strip()
                if line:
                    crate, _, mods = line.partition(":")
                    out.add((crate.strip(), frozenset(x.strip() for x in mods.split(","))))
    return out


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    allow_file = os.path.join(repo, "pg_config", "import-circles.allow")
    allow = allowed(allow_file)
    seen, failed = set(), False
    for name, src, skip_bin in crates(repo):
        graph = import_graph(src, skip_bin)
        for group in circles(graph):
            if (name, frozenset(group)) in allow:
                seen.add((name, frozenset(group)))
                continue
            ties = "; ".join(f"{a} -> {b}" for a in group for b in sorted(graph[a]) if b in group)
            print(f"{name}: modules in a circle: {', '.join(group)} ({ties})")
            failed = True
    for crate, group in sorted(allow - seen):
        print(f"{os.path.relpath(allow_file, repo)}: '{crate}: {', '.join(sorted(group))}' is no longer a circle: remove it")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
