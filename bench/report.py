#!/usr/bin/env python3
"""Turn the raw data scripts/bench.sh collected into the report: medians, ratios to glibc
and to the best peer, peak RSS, instruction counts, memory return, the targets of issue 4
(met or not, with the figure), a Markdown file and a gnuplot chart.  Standard library only.

    report.py --out bench/results --allocators glibc,jemalloc,tcmalloc,mimalloc-v3,mimalloc-v2,snmalloc,arenalloc

Reads OUT/results.csv, OUT/meta.txt and, when present, OUT/instructions.csv and
OUT/memory_return.txt; writes OUT/results.md, OUT/medians.csv, OUT/bench.svg, OUT/bench.png
(and OUT/chart.dat, OUT/chart.gp, the chart's data and script).
"""
import argparse
import csv
import math
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict

WORKLOAD_TITLE = {
    "small": "small churn: 8–512 B, 50k live, 1 thread",
    "medium": "medium churn: 512 B–64 KiB, 5k live",
    "large": "medium + 0.5% large (≤ 8 MiB), 5k live",
    "larson-1t": "larson server, 1 thread",
    "larson-2t": "larson server, 2 threads (cross-thread frees)",
    "prodcons": "producer/consumer, 2 threads",
    "realloc": "realloc growth: vectors, strings",
    "bigbuf": "big buffers: 20 live, 5–25 MiB, zero-filled",
    "py-dicts": "Python: dicts",
    "py-lists": "Python: lists",
    "py-strings": "Python: strings",
    "py-json": "Python: json round trip",
    "py-objtree": "Python: object trees",
    "sqlite": "sqlite3: 100k rows, in memory",
}
SHORT = {  # chart labels
    "small": "small", "medium": "medium", "large": "med+large", "larson-1t": "larson 1t",
    "larson-2t": "larson 2t", "prodcons": "prod/cons", "realloc": "realloc",
    "bigbuf": "big bufs",
    "py-dicts": "py dicts", "py-lists": "py lists", "py-strings": "py strings",
    "py-json": "py json", "py-objtree": "py objtree", "sqlite": "sqlite3",
}


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def fmt_metric(v, unit):
    if v is None:
        return "—"
    if unit == "s":
        return f"{v:.3f} s"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            x = v / div
            return f"{x:.0f} {suf}" if x >= 100 else f"{x:.1f} {suf}" if x >= 10 else f"{x:.2f} {suf}"
    return f"{v:.0f}"


def fmt_ratio(r, bold=False):
    if r is None:
        return "—"
    s = f"{r:.2f}×"
    return f"**{s}**" if bold else s


def read_meta(path):
    meta, allocs = {}, {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            k, _, v = line.rstrip("\n").partition("=")
            if k.startswith("alloc."):
                allocs[k[6:]] = v.split("|")
            else:
                meta[k] = v
    return meta, allocs


def parse_memret(path):
    """{allocator: {scenario: (grown MB, percent back, PASS/FAIL, per-category lines)}}"""
    res = defaultdict(dict)
    if not os.path.exists(path):
        return res
    alloc = scen = None
    cats = []
    for line in open(path, encoding="utf-8"):
        m = re.match(r"== (\S+)", line)
        if m:
            alloc = m.group(1)
            continue
        m = re.match(r"--- scenario (\w+)", line)
        if m:
            scen, cats = m.group(1), []
            continue
        m = re.match(r"\s+(small|medium|large|xdead|xlive|xmain)\s+([-\d.]+)\s+([-\d.]+)", line)
        if m and scen:
            cats.append((m.group(1), float(m.group(2)), float(m.group(3))))
            continue
        m = re.match(r"memory_return: (PASS|FAIL): ([-\d.]+)% of the ([-\d.]+) MB growth", line)
        if m and alloc and scen:
            res[alloc][scen] = (float(m.group(3)), float(m.group(2)), m.group(1), cats)
    return res


class View:
    """Medians of one measure ("wall": the programs' own metric; "cpu": the same work per CPU
    second, or CPU seconds) and the ratios built on them."""

    def __init__(self, samples, info, peers):
        self.samples, self.info, self.peers = samples, info, peers
        self.med = {k: statistics.median(v) for k, v in samples.items() if v}

    def speed(self, w, a):
        """Higher is better, whatever the unit: ops/s as is, seconds inverted."""
        v = self.med.get((w, a))
        if v is None or v <= 0:
            return None
        return v if self.info[w][2] else 1.0 / v

    def ratio(self, w, a, b):  # how many times faster a is than b
        if a is None or b is None:
            return None
        sa, sb = self.speed(w, a), self.speed(w, b)
        return sa / sb if sa and sb else None

    def best_peer(self, w):
        c = [(self.speed(w, p), p) for p in self.peers if self.speed(w, p)]
        return max(c)[1] if c else None

    def spread(self, w, a):
        xs = self.samples.get((w, a))
        return 100 * (max(xs) - min(xs)) / statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--allocators", default="glibc,jemalloc,tcmalloc,mimalloc-v3,mimalloc-v2,snmalloc,arenalloc")
    ap.add_argument("--no-chart", action="store_true")
    args = ap.parse_args()
    out = args.out
    meta, alloc_meta = read_meta(os.path.join(out, "meta.txt"))
    allocs = [a for a in args.allocators.split(",") if a]
    subject = meta.get("subject", "arenalloc")
    peers = [p for p in meta.get("peers", "jemalloc,tcmalloc,mimalloc-v3,mimalloc-v2,snmalloc").split(",")
             if p in allocs]
    mimallocs = [a for a in allocs if a.startswith("mimalloc")]  # mimalloc-v3, mimalloc-v2, ...
    base = "glibc" if "glibc" in allocs else None

    # ---- raw data -> medians
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"), encoding="utf-8")))
    order, info = [], {}
    s_wall, s_cpu = defaultdict(list), defaultdict(list)  # (workload, alloc) -> values
    rss = defaultdict(list)
    loads = []
    failed = defaultdict(int)
    for r in rows:
        w = r["workload"]
        if w not in info:
            order.append(w)
            info[w] = (r["group"], r["unit"], r["higher_is_better"] == "1")
        if r.get("loadavg"):
            loads.append(float(r["loadavg"]))
        if r["status"] == "ok" and r["metric"]:
            s_wall[w, r["allocator"]].append(float(r["metric"]))
            if r.get("cpu_metric"):
                s_cpu[w, r["allocator"]].append(float(r["cpu_metric"]))
            if r["peak_rss_kb"]:
                rss[w, r["allocator"]].append(float(r["peak_rss_kb"]) / 1024)
        else:
            failed[w, r["allocator"]] += 1
    cols = list(allocs)
    if any(info[w][0] == "python" for w in order):
        cols.append("pymalloc")
    wall, cpu = View(s_wall, info, peers), View(s_cpu, info, peers)
    med_rss = {k: statistics.median(v) for k, v in rss.items()}
    rounds = max((int(r["round"]) for r in rows), default=0)

    def best_peer_rss(w):
        c = [(med_rss[w, p], p) for p in peers if (w, p) in med_rss]
        return min(c)[1] if c else None

    with open(os.path.join(out, "medians.csv"), "w", newline="", encoding="utf-8") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "unit", "allocator", "runs", "median", "speed_vs_glibc",
                     "speed_vs_best_peer", "best_peer", "cpu_median", "cpu_speed_vs_glibc",
                     "cpu_speed_vs_best_peer", "cpu_best_peer", "peak_rss_mb", "spread_pct",
                     "cpu_spread_pct"])

        def num(x, f="{:.4f}"):
            return f.format(x) if x is not None else ""

        for w in order:
            for a in cols:
                if (w, a) not in wall.med:
                    continue
                bw, bc = wall.best_peer(w), cpu.best_peer(w)
                wr.writerow([w, info[w][1], a, len(s_wall[w, a]), num(wall.med[w, a], "{:.6g}"),
                             num(wall.ratio(w, a, base)), num(wall.ratio(w, a, bw)), bw or "",
                             num(cpu.med.get((w, a)), "{:.6g}"), num(cpu.ratio(w, a, base)),
                             num(cpu.ratio(w, a, bc)), bc or "",
                             num(med_rss.get((w, a)), "{:.1f}"), num(wall.spread(w, a), "{:.1f}"),
                             num(cpu.spread(w, a), "{:.1f}")])

    # ---- instructions, memory return
    instr = {}
    ipath = os.path.join(out, "instructions.csv")
    if os.path.exists(ipath):
        for r in csv.DictReader(open(ipath, encoding="utf-8")):
            instr[r["allocator"], int(r["size"])] = float(r["instructions"])
    memret = parse_memret(os.path.join(out, "memory_return.txt"))

    # ---- Markdown
    L = []
    add = L.append
    add("# arenalloc benchmark results")
    add("")
    add(f"{meta.get('date', '?')} · {meta.get('cpu', '?')}, {meta.get('nproc', '?')} CPUs "
        f"(nproc), {meta.get('mem', '?')} · {meta.get('kernel', '?')} · {meta.get('os', '?')} · "
        f"gcc {meta.get('gcc', '?')} · Python {meta.get('python', '?').split()[0]} · "
        f"sqlite {meta.get('sqlite', '?')}")
    add("")
    quick = meta.get("quick") == "1"
    secs = int(meta.get("seconds", 0))
    load_txt = (f"; 1-minute load average during the runs: median {statistics.median(loads):.1f}, "
                f"max {max(loads):.1f} on {meta.get('nproc', '?')} CPUs" if loads else "")
    add(f"`{meta.get('command', 'scripts/bench.sh')}`: {rounds} round{'s' if rounds != 1 else ''}, "
        f"every workload under every allocator interleaved (A B C D E, A B C D E, …), medians; "
        f"{secs // 60} min {secs % 60} s in all{load_txt}."
        + (" **Quick mode: smaller workloads, rough figures.**" if quick else ""))
    add("")
    add("| allocator | library | version | sha256 |")
    add("|---|---|---|---|")
    for a in allocs:
        lib, ver, sha = (alloc_meta.get(a, ["?", "?", ""]) + ["", "", ""])[:3]
        add(f"| {a} | `{lib}` | {ver} | {sha} |")
    if "pymalloc" in cols:
        add(f"| pymalloc | CPython's own, no preload, `PYTHONMALLOC` unset | Python "
            f"{meta.get('python', '?').split()[0]} | |")
    add("")
    add("Python workloads run with `PYTHONMALLOC=malloc` under each allocator (glibc: no "
        "preload); the pymalloc column is CPython's default allocator with no preload.")
    add("")

    def speed_table(view, what):
        add("| workload | " + " | ".join(cols) + f" | {subject} ÷ best peer |")
        add("|---|" + "---:|" * (len(cols) + 1))
        for w in order:
            unit = info[w][1] if what == "wall" else ("ops/CPU-s" if info[w][2] else "CPU s")
            cells = []
            for a in cols:
                v = view.med.get((w, a))
                if v is None:
                    cells.append("FAIL" if failed.get((w, a)) else "—")
                    continue
                rg = view.ratio(w, a, base)
                cells.append(f"{fmt_metric(v, 's' if not info[w][2] else unit)} ({rg:.2f}×)" if rg
                             else fmt_metric(v, 's' if not info[w][2] else unit))
            bp = view.best_peer(w)
            rb = view.ratio(w, subject, bp)
            last = f"{fmt_ratio(rb, True)} vs {bp}" if rb else "—"
            add(f"| {WORKLOAD_TITLE.get(w, w)} ({unit}) | " + " | ".join(cells) + f" | {last} |")
        add("")

    add("## Throughput and time (median, wall clock)")
    add("")
    add(f"Each cell: the median, then the speed relative to glibc in parentheses (> 1× is "
        f"faster than glibc, for ops/s and for seconds alike). The last column is {subject}'s "
        f"speed relative to the best of {', '.join(peers)} on that workload.")
    add("")
    speed_table(wall, "wall")
    if cpu.med:
        add("## The same per CPU second")
        add("")
        add("The same runs, the work divided by the CPU time (user + system, all threads) the "
            "program spent on it instead of the wall-clock time: far less sensitive to other "
            "jobs on the machine (a descheduled process uses no CPU time). It counts system "
            "time (page faults, `madvise`, `munmap`) but not waiting; for producer/consumer it "
            "includes the spinning of a thread waiting for the other, and a 2-thread run's CPU "
            "time is both threads' (so it shows efficiency, not scaling).")
        add("")
        speed_table(cpu, "cpu")

    add("## Peak RSS (median, MB)")
    add("")
    add("Peak resident set size of the process (`/usr/bin/time -f %M`); in parentheses "
        "relative to glibc (< 1× is less memory). Python figures include the interpreter.")
    add("")
    add("| workload | " + " | ".join(cols) + f" | {subject} ÷ lowest peer |")
    add("|---|" + "---:|" * (len(cols) + 1))
    rss_workloads = [w for w in order if all((w, a) in med_rss for a in allocs)]
    for w in order:
        cells = []
        for a in cols:
            v = med_rss.get((w, a))
            if v is None:
                cells.append("—")
                continue
            g = med_rss.get((w, base)) if base else None
            cells.append(f"{v:.1f} ({v / g:.2f}×)" if g else f"{v:.1f}")
        bp = best_peer_rss(w)
        last = (f"{med_rss[w, subject] / med_rss[w, bp]:.2f}× vs {bp}"
                if bp and (w, subject) in med_rss else "—")
        add(f"| {WORKLOAD_TITLE.get(w, w)} | " + " | ".join(cells) + f" | {last} |")
    gm_rss = {a: geomean([med_rss[w, a] for w in rss_workloads]) for a in allocs}
    if rss_workloads:
        cells = []
        for a in cols:
            g = gm_rss.get(a)
            cells.append(f"**{g:.1f}** ({g / gm_rss[base]:.2f}×)" if g and base and gm_rss.get(base)
                         else (f"**{g:.1f}**" if g else "—"))
        add(f"| **geometric mean** ({len(rss_workloads)} workloads) | " + " | ".join(cells) + " | |")
    add("")

    if instr:
        add("## Instructions per malloc+free pair (callgrind)")
        add("")
        add("`scripts/instructions-per-pair.sh`: a `malloc(n)`/`free` loop (`bench/pair.c`) "
            "run under callgrind at two lengths; the difference over the extra iterations "
            "(start-up cancels out). Deterministic: the same on a busy machine.")
        add("")
        sizes = sorted({s for _, s in instr})
        ia = [a for a in allocs if any((a, s) in instr for s in sizes)]
        add("| size | " + " | ".join(ia) + " |")
        add("|---|" + "---:|" * len(ia))
        for s in sizes:
            add(f"| {s} B | " + " | ".join(f"{instr[a, s]:.1f}" if (a, s) in instr else "—" for a in ia) + " |")
        add("")

    if memret:
        add("## Memory return (`tests/memory_return.c`)")
        add("")
        add("About 400 MB allocated (small, medium, large; from main and from other threads, some "
            "freed cross-thread), every page touched, then freed; the share of the RSS growth that "
            "went back to the OS. *full*: everything freed. *sparse*: one small block in 4096 "
            "kept, so arenas stay alive and only empty pools can go back. Pass mark 90%.")
        add("")
        add("| allocator | full: back | sparse: back | not returned in *full* (category: MB kept) |")
        add("|---|---:|---:|---|")
        for a in allocs:
            if a not in memret:
                continue
            f = memret[a].get("full")
            sp = memret[a].get("sparse")

            def cell(x):
                return f"{x[1]:.1f}% ({'pass' if x[2] == 'PASS' else 'FAIL'})" if x else "—"

            kept = ""
            if f:
                kept = ", ".join(f"{c}: {g - b:.0f}" for c, g, b in f[3] if g - b > 2) or "—"
            add(f"| {a} | {cell(f)} | {cell(sp)} | {kept} |")
        add("")
        add("Per category, *kept* = RSS grown while allocating it minus the RSS drop when it was "
            "freed; a negative or > 100% share means the memory went back at a later (or earlier) "
            "step. The full per-category output is in `bench/results/memory_return.txt`.")
        add("")

    # ---- targets
    add(f"## Targets (issue 4), for {subject}")
    add("")
    add("Verdicts on the wall-clock medians, as the issue states the targets; the CPU-time "
        "figure beside each is the same comparison per CPU second, for a busy machine.")
    add("")
    add("| target | figure | met? | per CPU second | met? |")
    add("|---|---|---|---|---|")

    def verdict(ok):
        return "n/a" if ok is None else ("**met**" if ok else "**not met**")

    def target(text, figure, ok, cfig="", cok=None):
        add(f"| {text} | {figure} | {verdict(ok)} | {cfig or '—'} | {verdict(cok) if cfig else ''} |")

    def vs_best(view, w, goal):
        bp = view.best_peer(w)
        rb = view.ratio(w, subject, bp)
        return (f"{fmt_ratio(rb)} ({bp})" if rb else "", rb >= goal if rb else None)

    def vs_base(view, w, goal):
        rg = view.ratio(w, subject, base)
        return (fmt_ratio(rg) if rg else "", rg >= goal if rg else None)

    if "small" in info:
        target(f"small churn, 1 thread: ≥ 1.10× the best of {', '.join(peers)}",
               *vs_best(wall, "small", 1.10), *vs_best(cpu, "small", 1.10))
        target("small churn, 1 thread: ≥ 2× glibc", *vs_base(wall, "small", 2.0), *vs_base(cpu, "small", 2.0))
    for s in sorted({s for _, s in instr}):
        for mi in mimallocs:
            if (subject, s) in instr and (mi, s) in instr:
                a, m = instr[subject, s], instr[mi, s]
                target(f"instructions per malloc({s})+free: ≤ {mi}'s",
                       f"{a:.1f} vs {m:.1f} ({a / m:.2f}×)", a <= m)
    for w, text in (("larson-2t", "larson-style, 2 threads: ≥ 1.0× the best peer"),
                    ("prodcons", "producer/consumer: ≥ 1.0× the best peer")):
        if w in info:
            target(text, *vs_best(wall, w, 1.0), *vs_best(cpu, w, 1.0))
    if "larson-1t" in info and "larson-2t" in info:
        def scaling(a):
            one, two = wall.med.get(("larson-1t", a)), wall.med.get(("larson-2t", a))
            return two / one if one and two else None
        sc = scaling(subject)
        others = ", ".join(f"{a} {scaling(a):.2f}×" for a in allocs if a != subject and scaling(a))
        target("larson: 2 threads ≥ 1.8× the throughput of 1 (wall clock only)",
               f"{fmt_ratio(sc)} (others: {others})" if sc else "—", sc >= 1.8 if sc else None)
    pyw = [w for w in order if info[w][0] == "python"]

    def py_vs_pymalloc(view):
        r = {w: view.ratio(w, "pymalloc", subject) for w in pyw}  # subject time / pymalloc time
        r = {w: v for w, v in r.items() if v}
        if not r:
            return "", None
        g = geomean(r.values())
        n_ok = sum(v <= 0.95 for v in r.values())
        worst = max(r, key=r.get)
        return (f"geometric mean {g:.2f}×; {n_ok} of {len(r)} programs ≤ 0.95×; worst {worst} "
                f"{r[worst]:.2f}×", g <= 0.95 and n_ok == len(r))

    def py_vs_peer(view):
        r = {}
        for w in pyw:
            bp = view.best_peer(w)
            x = view.ratio(w, bp, subject)  # subject time / best peer time
            if x:
                r[w] = (x, bp)
        if not r:
            return "", None
        g = geomean(v[0] for v in r.values())
        n_ok = sum(v[0] <= 1.0 for v in r.values())
        worst = max(r, key=lambda w: r[w][0])
        return (f"geometric mean {g:.2f}×; {n_ok} of {len(r)} programs ≤ 1.00×; worst {worst} "
                f"{r[worst][0]:.2f}× vs {r[worst][1]}", g <= 1.0 and n_ok == len(r))

    if pyw:
        target("Python (`PYTHONMALLOC=malloc`): time ≤ 0.95× pymalloc's (time ratio)",
               *py_vs_pymalloc(wall), *py_vs_pymalloc(cpu))
        target("Python: time no more than the best peer's (time ratio)", *py_vs_peer(wall), *py_vs_peer(cpu))
    if rss_workloads and gm_rss.get(subject):
        for other in mimallocs + ["glibc"]:
            if gm_rss.get(other):
                r = gm_rss[subject] / gm_rss[other]
                target(f"peak RSS, geometric mean over {len(rss_workloads)} workloads: ≤ {other}'s",
                       f"{gm_rss[subject]:.1f} MB vs {gm_rss[other]:.1f} MB ({r:.2f}×)", r <= 1.0)
    if subject in memret and "full" in memret[subject]:
        f = memret[subject]["full"]
        target("memory return: ≥ 90% of the RSS growth back after freeing everything",
               f"{f[1]:.1f}% of {f[0]:.0f} MB", f[2] == "PASS")
        sp = memret[subject].get("sparse")
        if sp:
            target("… with arenas kept alive by 1 small block in 4096 (empty pools madvised)",
                   f"{sp[1]:.1f}% of {sp[0]:.0f} MB", sp[2] == "PASS")
    add("")
    add("Ratios are of medians; the speed of a workload timed in seconds is 1/time; Python "
        "targets compare times (< 1× is faster). \"Best peer\" is the fastest (or, for RSS, the "
        f"smallest) of {', '.join(peers)} on that workload.")
    add("")

    # ---- noise
    add("## Spread")
    add("")
    add("(max − min) / median over the rounds, in percent, wall clock / per CPU second: how "
        "much to trust a difference.")
    add("")
    add("| workload | " + " | ".join(cols) + " |")
    add("|---|" + "---:|" * len(cols))
    for w in order:
        cells = []
        for a in cols:
            sw, sc = wall.spread(w, a), cpu.spread(w, a)
            n = len(s_wall.get((w, a), []))
            c = "—" if sw is None else f"{sw:.0f}%" + (f" / {sc:.0f}%" if sc is not None else "")
            cells.append(c + (f" ({n} runs)" if sw is not None and n != rounds else ""))
        add(f"| {w} | " + " | ".join(cells) + " |")
    add("")
    add("![chart](bench.svg)")
    add("")
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(L))

    if not args.no_chart and order and base:
        chart(out, order, cols, info, wall, cpu, med_rss, base, meta, rounds)


def chart(out, order, cols, info, wall, cpu, med_rss, base, meta, rounds):
    dat = os.path.join(out, "chart.dat")
    with open(dat, "w", encoding="utf-8") as f:
        f.write("# workload " + " ".join(f"speed_{a}" for a in cols) + " "
                + " ".join(f"rss_{a}" for a in cols) + " "
                + " ".join(f"cpu_speed_{a}" for a in cols) + "\n")
        for w in order:
            sp = [wall.ratio(w, a, base) for a in cols]
            cp = [cpu.ratio(w, a, base) for a in cols]
            rs = [med_rss[w, a] / med_rss[w, base] if (w, a) in med_rss and (w, base) in med_rss
                  else None for a in cols]
            f.write(f'"{SHORT.get(w, w)}" ' + " ".join(f"{x:.4f}" if x else "?" for x in sp + rs + cp) + "\n")
    n = len(cols)

    def yrange(vals):  # log-scale range with room below the smallest bar (bars rise from the bottom)
        vals = [v for v in vals if v]
        if not vals:
            return "*:*"
        lo, hi = min(min(vals), 1.0), max(max(vals), 1.0)
        return f"{2 ** (math.floor(math.log2(lo)) - 0.5):.4g}:{2 ** (math.ceil(math.log2(hi)) + 0.25):.4g}"

    r_wall = yrange([wall.ratio(w, a, base) for w in order for a in cols])
    r_cpu = yrange([cpu.ratio(w, a, base) for w in order for a in cols])
    r_rss = yrange([med_rss[w, a] / med_rss[w, base] for w in order for a in cols
                    if (w, a) in med_rss and (w, base) in med_rss])
    colors = {"glibc": "#9e9e9e", "jemalloc": "#1f77b4", "tcmalloc": "#2ca02c",
              "mimalloc-v3": "#ff7f0e", "mimalloc-v2": "#ffbb78", "snmalloc": "#9467bd",
              "mimalloc": "#e6a96b", "pymalloc": "#8c564b", "arenalloc": "#d62728"}
    extra = iter(["#17becf", "#bcbd22", "#e377c2", "#7f7f7f", "#aec7e8"])
    col = {a: colors.get(a) or next(extra, "#000000") for a in cols}
    title = (f"{meta.get('cpu', '')}, {meta.get('nproc', '?')} CPUs, {meta.get('date', '')}, "
             f"median of {rounds} interleaved rounds")

    def panel(ylabel, first_col, ptitle, yr):
        plots = []
        for i, a in enumerate(cols):
            c = first_col + i
            plots.append(f"'{dat}' using {c}:xtic(1) title '{a}' lc rgb '{col[a]}'")
        return (f"set title '{ptitle}'\nset ylabel '{ylabel}'\nset yrange [{yr}]\n"
                "plot " + ", \\\n     ".join(plots) + ", 1 notitle dt 2 lc rgb '#000000'\n")

    gp = f"""set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set logscale y 2
set grid ytics
set key outside right top vertical
set xtics rotate by -35 font ',10'
set multiplot layout {3 if cpu.med else 2},1 title '{title}' font ',11'
{panel('× glibc (log scale)', 2, 'speed relative to glibc, wall clock (higher is better)', r_wall)}
{panel('× glibc (log scale)', 2 + 2 * n, 'speed relative to glibc, per CPU second (higher is better)', r_cpu) if cpu.med else ''}
{panel('× glibc (log scale)', 2 + n, 'peak RSS relative to glibc (lower is better)', r_rss)}
unset multiplot
"""
    gpath = os.path.join(out, "chart.gp")
    with open(gpath, "w", encoding="utf-8") as f:
        f.write(gp)
    height = 1250 if cpu.med else 850
    for term, name in ((f"svg size 1100,{height} dynamic font 'sans,11' background rgb 'white'", "bench.svg"),
                       (f"pngcairo size 1100,{height} font 'sans,10'", "bench.png")):
        r = subprocess.run(["gnuplot", "-e", f"set terminal {term}; set output '{os.path.join(out, name)}'", gpath],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"report.py: gnuplot failed for {name}:\n{r.stderr}")


if __name__ == "__main__":
    main()
