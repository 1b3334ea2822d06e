#!/usr/bin/env python3
"""Checks that src/ modules are layered as lib.rs's doc comment says (`make test-layers`).

    python3 tests/module_layers.py [SRC]        check (default: src next to this script)
    python3 tests/module_layers.py --edges      print every module's uses, by layer
    python3 tests/module_layers.py --self-test  prove the check fails when it must

The "Layers" table in lib.rs's doc comment lists one module per row, top to bottom.  A
module may use only modules in rows below its own: every `crate::name` it mentions (in
code, comments and `use crate::{a, b}` groups alike) must name a lower module.  So no
cycle can form, and a new dependency has to fit the table or change it on purpose.
`#[cfg(test)] mod ...` blocks are left out: unit tests may reach up to set things up.
Every module lib.rs declares must have a row, and every row must be a module.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(msg):
    print(f"FAIL module_layers: {msg}", file=sys.stderr)
    sys.exit(1)


def layer_table(lib_rs):
    """The module names of lib.rs's "## Layers" text block, top to bottom."""
    doc = [line[3:] for line in lib_rs.splitlines() if line.startswith("//!")]
    try:
        start = next(i for i, l in enumerate(doc) if l.strip().startswith("## Layers"))
        fence = next(i for i in range(start, len(doc)) if doc[i].strip().startswith("```"))
        end = next(i for i in range(fence + 1, len(doc)) if doc[i].strip().startswith("```"))
    except StopIteration:
        fail("lib.rs has no '## Layers' section with a ``` block")
    rows = []
    for line in doc[fence + 1:end]:
        m = re.match(r"\s*([a-z_][a-z0-9_]*)(\.rs|/)(\s|$)", line)
        if m:
            rows.append(m.group(1))
    if len(set(rows)) != len(rows):
        fail(f"a module has two rows in lib.rs's layer table: {rows}")
    return rows


def blank_literals(src):
    """`src` with comments' and literals' braces made harmless (same length, same lines),
    so that brace matching sees only code.  Comments keep their text otherwise."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                if out[k] in "{}":
                    out[k] = " "
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if out[k] in "{}":
                    out[k] = " "
            i = j
        elif c == '"' or (c in "rb" and re.match(r'(br|r)#*"|b"', src[i:]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_"))):
            m = re.match(r'(br|r)(#*)"', src[i:])
            if m:  # a raw string: it ends at a quote followed by as many #
                end_tok = '"' + m.group(2)
                j = src.find(end_tok, i + len(m.group(0)))
                j = n if j < 0 else j + len(end_tok)
            else:  # a string or byte string, with escapes
                j = i + (2 if c == "b" else 1)
                while j < n and src[j] != '"':
                    j += 2 if src[j] == "\\" else 1
                j += 1
            for k in range(i, min(j, n)):
                if out[k] in "{}":
                    out[k] = " "
            i = j
        elif c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", src[i:])
            if m:
                for k in range(i, i + len(m.group(0))):
                    if out[k] in "{}":
                        out[k] = " "
                i += len(m.group(0))
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(out)


def without_test_modules(src):
    """`src` with every `#[cfg(test)] mod name { ... }` block blanked (lines kept)."""
    code = blank_literals(src)
    out = list(src)
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code):
        depth, j = 0, m.end() - 1
        while j < len(code):
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        for k in range(m.start(), min(j + 1, len(out))):
            if out[k] != "\n":
                out[k] = " "
    return "".join(out)


def group_names(text, start):
    """The first path segment of each item of the `{...}` group starting at text[start]."""
    depth, item, names = 0, "", []
    for c in text[start:]:
        if c == "{":
            depth += 1
            if depth == 1:
                continue
        elif c == "}":
            depth -= 1
            if depth == 0:
                names.append(item)
                break
        if depth == 1 and c == ",":
            names.append(item)
            item = ""
        elif depth >= 1:
            item += c
    out = []
    for it in names:
        m = re.match(r"\s*([a-z_][a-z0-9_]*)", it)
        if m and m.group(1) != "self":
            out.append(m.group(1))
    return out


def uses(src):
    """(module name, line number) for every `crate::name` and `crate::{a, b}` in `src`."""
    found = []
    for m in re.finditer(r"\bcrate::(\{|[a-z_][a-z0-9_]*)", src):
        line = src.count("\n", 0, m.start()) + 1
        if m.group(1) == "{":
            found += [(name, line) for name in group_names(src, m.start(1))]
        else:
            found.append((m.group(1), line))
    return found


def modules(src_dir):
    """{module: [(path, text without test modules)]}: a file under src/, or a folder's tree."""
    mods = {}
    for d, _, files in os.walk(src_dir):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            top = os.path.relpath(path, src_dir).split(os.sep)[0]
            name = top[:-3] if top.endswith(".rs") else top
            if name in ("lib", "main"):
                continue
            with open(path, encoding="utf-8") as fh:
                mods.setdefault(name, []).append((path, without_test_modules(fh.read())))
    return mods


def check(src_dir, show_edges=False):
    with open(os.path.join(src_dir, "lib.rs"), encoding="utf-8") as fh:
        lib = fh.read()
    rows = layer_table(lib)
    rank = {name: i for i, name in enumerate(rows)}
    declared = set(re.findall(r"^\s*(?:pub\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", lib, flags=re.M))
    mods = modules(src_dir)
    problems = []
    for name in sorted(declared - set(rows)):
        problems.append(f"module {name} is declared in lib.rs but has no row in its layer table")
    for name in rows:
        if name not in declared:
            problems.append(f"the layer table's row {name} is no module lib.rs declares")
    for name in sorted(set(mods) - declared):
        problems.append(f"{name} is under src/ but lib.rs does not declare it")
    for name in rows:
        targets = set()
        for path, text in mods.get(name, []):
            for target, line in uses(text):
                if target == name or target not in rank:
                    continue
                targets.add(target)
                if rank[target] <= rank[name]:
                    where = "above" if rank[target] < rank[name] else "level with"
                    problems.append(f"{os.path.relpath(path, src_dir)}:{line}: {name} uses crate::{target}, "
                                    f"which is {where} it in lib.rs's layer table")
        if show_edges:
            print(f"{name:12} -> {', '.join(sorted(targets, key=rank.get))}")
    if problems:
        print("FAIL module_layers: modules must use only modules below them in lib.rs's layer table:",
              file=sys.stderr)
        for p in problems:
            print(f"    {p}", file=sys.stderr)
        return False
    if not show_edges:
        print(f"PASS module_layers: {len(rows)} modules, each uses only modules below it (lib.rs's layer table)")
    return True


def self_test():
    """The check must fail on an upward use (also after a test module, also in a `use`
    group), on a module without a row, and pass when the upward use is inside a test module."""
    src = os.path.join(HERE, "..", "src")
    with open(os.path.join(src, "lib.rs"), encoding="utf-8") as fh:
        rows = layer_table(fh.read())
    top, bottom = rows[1], rows[-1]  # rows[0] is a folder (ffi/); any two modules do
    cases = [
        (f"upward use in {bottom}", bottom, f"\npub fn layering_probe() {{ let _ = crate::{top}::probe; }}\n", False),
        (f"upward use group in {bottom}", bottom, f"\n#[allow(unused_imports)]\nuse crate::{{{top}}};\n", False),
        (f"upward use after a test module in {bottom}", bottom,
         f"\n#[cfg(test)]\nmod layering_probe_tests {{\n    fn f() {{ let _ = '{{'; }}\n}}\nuse crate::{top};\n", False),
        (f"upward use inside a test module of {bottom}", bottom,
         f"\n#[cfg(test)]\nmod layering_probe_tests {{\n    use crate::{top};\n    const S: &str = \"}}\";\n}}\n", True),
        ("a module without a row", None, None, False),
    ]
    ok = True
    for what, module, text, should_pass in cases:
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "src")
            shutil.copytree(src, copy)
            if module is None:
                with open(os.path.join(copy, "lib.rs"), "a", encoding="utf-8") as fh:
                    fh.write("\npub mod layering_probe;\n")
                with open(os.path.join(copy, "layering_probe.rs"), "w", encoding="utf-8") as fh:
                    fh.write("")
            else:
                with open(os.path.join(copy, module + ".rs"), "a", encoding="utf-8") as fh:
                    fh.write(text)
            r = subprocess.run([sys.executable, os.path.abspath(__file__), copy], capture_output=True, text=True)
            passed = r.returncode == 0
            if passed != should_pass:
                ok = False
                print(f"FAIL module_layers self-test: {what}: the check {'passed' if passed else 'failed'}"
                      f" (exit {r.returncode}){r.stderr and ': ' + r.stderr.strip()}", file=sys.stderr)
            else:
                print(f"ok   module_layers self-test: {what}: {'passes' if passed else 'fails'}, as it must")
    return ok


if __name__ == "__main__":
    args = sys.argv[1:]
    if args == ["--self-test"]:
        sys.exit(0 if self_test() else 1)
    if args == ["--edges"]:
        sys.exit(0 if check(os.path.join(HERE, "..", "src"), show_edges=True) else 1)
    sys.exit(0 if check(args[0] if args else os.path.join(HERE, "..", "src")) else 1)
