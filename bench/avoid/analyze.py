#!/usr/bin/env python3
"""bench/avoid/analyze.py: the numbers and pictures of issue 5's avoidance benchmark.

    analyze.py OUTDIR [SAMPLE...] [--svg-dir DIR] [--detail] [--markdown]
    analyze.py --self-test

Reads what bench/avoid/run.sh left in OUTDIR: per sample, SAMPLE.avoid.jsonl (the series under
avoidance) and SAMPLE.base.jsonl (the --no-avoid series), aviso-trace --runs-log files of one
JSON line per run:

    {"n":1,"run":"1-1","seed":...,"baseline":true,"constraints":[{"id","b","a"}],
     "failed":false,"status":0,"ms":42.1,"contenders":0}

(contenders = effective constraints known to the model after that run). Prints a table, one
row per sample, then per sample the constraints the avoidance series used; writes SAMPLE.svg
(cumulative failures over runs, the picture of the Aviso paper's Figure 9) and, for several
samples, all.svg (small multiples), into OUTDIR or --svg-dir.

The series' seed and the commit measured come from OUTDIR/run.txt (what run.sh printed) or the
summary at the end of SAMPLE.avoid.stderr. Python 3 standard library only.
"""

import json
import math
import os
import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter, OrderedDict

TARGET_REDUCTION = 10.0  # issue 5: at least tenfold fewer failures...
TARGET_FAILURES = 30  # ... and the contender found within 30 failures
TAIL = 500  # the failure rate of the last TAIL runs of the avoidance series


def read_log(path):
    """The runs of a --runs-log, in order (a torn last line, from a killed series, is skipped)."""
    runs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"analyze.py: {path}: skipped a malformed line", file=sys.stderr)
    return runs


def cumulative(runs):
    """Cumulative failures after each run: c[i] = failures among runs[0..i]."""
    out, k = [], 0
    for r in runs:
        k += bool(r.get("failed"))
        out.append(k)
    return out


def constraint_name(c):
    return f"{c.get('b', '?')} -> {c.get('a', '?')}"


def analyze(base, avoid, tail=TAIL):
    """The numbers of one sample from its two series (lists of runs). Pure: tested by
    --self-test."""
    a = OrderedDict()
    a["base_runs"] = len(base)
    a["base_failures"] = sum(bool(r.get("failed")) for r in base)
    a["avoid_runs"] = len(avoid)
    a["avoid_failures"] = sum(bool(r.get("failed")) for r in avoid)
    a["base_rate"] = a["base_failures"] / a["base_runs"] if base else None
    a["avoid_rate"] = a["avoid_failures"] / a["avoid_runs"] if avoid else None
    # Reduction: failures over failures (the measure, same number of runs), and rate
    # over rate (the same when the series are equally long). None when avoidance had none.
    a["reduction"] = a["base_failures"] / a["avoid_failures"] if a["avoid_failures"] else None
    a["rate_ratio"] = (a["base_rate"] / a["avoid_rate"]
                       if a["avoid_rate"] and a["base_rate"] is not None else None)
    # The first contender: the first run after which the model knew an effective constraint;
    # the failures counted are those of the avoidance series up to and including that run (the
    # failures the model needed).
    a["contender_run"] = None
    a["failures_before_contender"] = None
    k = 0
    for r in avoid:
        k += bool(r.get("failed"))
        if (r.get("contenders") or 0) > 0:
            a["contender_run"] = r.get("n")
            a["failures_before_contender"] = k
            break
    # A contender can be lost again (its chi-square falls back under 3.84): how long it lasted.
    a["final_contenders"] = (avoid[-1].get("contenders") or 0) if avoid else 0
    a["runs_with_contender"] = sum((r.get("contenders") or 0) > 0 for r in avoid)
    t = avoid[-tail:] if avoid else []
    a["tail_runs"] = len(t)
    a["tail_failures"] = sum(bool(r.get("failed")) for r in t)
    a["tail_rate"] = a["tail_failures"] / len(t) if t else None
    tb = base[-tail:] if base else []
    a["base_tail_rate"] = sum(bool(r.get("failed")) for r in tb) / len(tb) if tb else None
    # Constraints served in the avoidance series: runs and failures per constraint (a run that
    # loaded several counts for each); the avoidance series' own baseline runs apart.
    used, failed = Counter(), Counter()
    names = {}
    for r in avoid:
        for c in r.get("constraints") or []:
            key = c.get("id") or constraint_name(c)
            names[key] = constraint_name(c)
            used[key] += 1
            failed[key] += bool(r.get("failed"))
    a["constraints"] = [(names[k], k, n, failed[k]) for k, n in used.most_common()]
    a["most_used"] = a["constraints"][0] if a["constraints"] else None
    b_runs = [r for r in avoid if not r.get("constraints")]
    a["avoid_baseline_runs"] = len(b_runs)
    a["avoid_baseline_failures"] = sum(bool(r.get("failed")) for r in b_runs)
    c_runs = [r for r in avoid if r.get("constraints")]
    a["constrained_runs"] = len(c_runs)
    a["constrained_failures"] = sum(bool(r.get("failed")) for r in c_runs)
    # The baseline rate over the rate of the runs that loaded constraints: what the constraints
    # did, apart from the avoidance series' own baseline runs (AVISO.md 5: 10% of the runs
    # until the baseline rate is known within 5 points, which caps "reduction" near 10x).
    a["constrained_ratio"] = (a["base_rate"] * len(c_runs) / a["constrained_failures"]
                              if a["constrained_failures"] and a["base_rate"] is not None
                              else None)
    # Durations: medians of successful runs, with and without constraints (the delays' cost).
    a["ms_base_ok"] = median([r["ms"] for r in base if not r.get("failed") and "ms" in r])
    a["ms_avoid_ok_constrained"] = median(
        [r["ms"] for r in c_runs if not r.get("failed") and "ms" in r])
    a["ms_avoid_ok_unconstrained"] = median(
        [r["ms"] for r in b_runs if not r.get("failed") and "ms" in r])
    a["met"] = (a["reduction"] is None and a["base_failures"] > 0
                or a["reduction"] is not None and a["reduction"] >= TARGET_REDUCTION) and (
                    a["failures_before_contender"] is not None
                    and a["failures_before_contender"] <= TARGET_FAILURES)
    return a


def median(v):
    if not v:
        return None
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


# ---------------------------------------------------------------------------------------------
# Text output

def pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def factor(x, base_failures=0):
    if x is None:
        return "inf" if base_failures else "-"
    return f"{x:.1f}x"


def table(rows, markdown=False):
    """rows: (sample, analysis). Returns the table as text, fixed-width columns (or a Markdown
    table)."""
    head = ["sample", "baseline", "rate", "avoidance", "rate", "reduction", "rate-ratio",
            "fail<contender", "at-run", f"last{TAIL}", "constrained", "c-ratio", "target",
            "most-used constraint"]
    lines = []
    for s, a in rows:
        mu = a["most_used"]
        lines.append([
            s,
            f"{a['base_failures']}/{a['base_runs']}", pct(a["base_rate"]),
            f"{a['avoid_failures']}/{a['avoid_runs']}", pct(a["avoid_rate"]),
            factor(a["reduction"], a["base_failures"]),
            factor(a["rate_ratio"], a["base_failures"]),
            "-" if a["failures_before_contender"] is None else str(a["failures_before_contender"]),
            "never" if a["contender_run"] is None else str(a["contender_run"]),
            pct(a["tail_rate"]),
            pct(ratio(a["constrained_failures"], a["constrained_runs"])),
            factor(a["constrained_ratio"], a["base_failures"]),
            "met" if a["met"] else "not met",
            "-" if not mu else f"{mu[0]} ({mu[2]} runs, {pct(mu[3] / mu[2])} failed)",
        ])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        out += ["| " + " | ".join(x[:1] and [f"`{x[0]}`"] + x[1:]) + " |" for x in lines]
        return "\n".join(out)
    w = [max(len(x[i]) for x in lines + [head]) for i in range(len(head))]
    out = ["  ".join(h.ljust(w[i]) for i, h in enumerate(head)).rstrip()]
    for x in lines:
        out.append("  ".join(v.ljust(w[i]) for i, v in enumerate(x)).rstrip())
    return "\n".join(out)


def detail(s, a, top=5):
    out = [f"{s}: avoidance series: {a['constrained_runs']} runs with constraints, "
           f"{a['constrained_failures']} failed ({pct(ratio(a['constrained_failures'], a['constrained_runs']))}); "
           f"{a['avoid_baseline_runs']} baseline runs, {a['avoid_baseline_failures']} failed "
           f"({pct(ratio(a['avoid_baseline_failures'], a['avoid_baseline_runs']))}); "
           f"{len(a['constraints'])} constraints tried; a contender known after "
           f"{a['runs_with_contender']} runs, {a['final_contenders']} at the end"]
    for name, cid, n, f in a["constraints"][:top]:
        out.append(f"    id {cid:>5}  {n:4} runs  {f:4} failed ({pct(f / n):>6})  {name}")
    out.append(f"    median ms of successful runs: base series {fmt_ms(a['ms_base_ok'])}, "
               f"avoidance series with constraints {fmt_ms(a['ms_avoid_ok_constrained'])}, "
               f"without {fmt_ms(a['ms_avoid_ok_unconstrained'])}")
    return "\n".join(out)


def ratio(a, b):
    return a / b if b else None


def fmt_ms(x):
    return "-" if x is None else f"{x:.1f}"


# ---------------------------------------------------------------------------------------------
# SVG, by hand (no matplotlib here)

BASE_COLOR = "#d62728"
AVOID_COLOR = "#1f77b4"


def nice_step(span, ticks=5):
    """A 1, 2 or 5 times a power of ten step giving about @ticks ticks over @span."""
    if span <= 0:
        return 1
    raw = span / ticks
    p = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * p >= raw:
            return max(1, int(m * p)) if m * p >= 1 else m * p
    return 10 * p


def esc(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def polyline(cum, sx, sy, color, width):
    # One point per change of the count (and the ends): a step curve, compact.
    pts = [(0, 0)]
    prev = 0
    for i, c in enumerate(cum, start=1):
        if c != prev:
            pts.append((i - 1, prev))
            pts.append((i, c))
            prev = c
    pts.append((len(cum), prev))
    d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
    return (f'<polyline fill="none" stroke="{color}" stroke-width="{width}" '
            f'stroke-linejoin="round" points="{d}"/>')


def panel(x0, y0, w, h, s, a, cb, ca, title, small=False):
    """The elements of one plot in the box (x0, y0, w, h): axes with ticks and labels, the two
    cumulative-failure curves, the contender marker, the legend and the title."""
    fs = 10 if small else 12
    ml, mr, mt, mb = (46, 12, 34, 34) if small else (60, 20, 44, 46)
    px0, py0 = x0 + ml, y0 + mt
    pw, ph = w - ml - mr, h - mt - mb
    nmax = max(len(cb), len(ca), 1)
    fmax = max(cb[-1] if cb else 0, ca[-1] if ca else 0, 1)
    xstep = nice_step(nmax)
    ystep = nice_step(fmax, 4 if small else 5)
    xtop = math.ceil(nmax / xstep) * xstep
    ytop = math.ceil(fmax / ystep) * ystep

    def sx(v):
        return px0 + pw * v / xtop

    def sy(v):
        return py0 + ph - ph * v / ytop

    e = [f'<g font-family="sans-serif" font-size="{fs}">']
    e.append(f'<text x="{x0 + w / 2:.1f}" y="{y0 + fs + 6}" text-anchor="middle" '
             f'font-size="{fs + 2}" font-weight="bold">{esc(title)}</text>')
    # Grid and ticks.
    v = 0
    while v <= ytop + 1e-9:
        y = sy(v)
        e.append(f'<line x1="{px0}" y1="{y:.1f}" x2="{px0 + pw}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        e.append(f'<line x1="{px0 - 4}" y1="{y:.1f}" x2="{px0}" y2="{y:.1f}" stroke="black"/>')
        e.append(f'<text x="{px0 - 6}" y="{y + fs / 3:.1f}" text-anchor="end">{v:g}</text>')
        v += ystep
    v = 0
    while v <= xtop + 1e-9:
        x = sx(v)
        e.append(f'<line x1="{x:.1f}" y1="{py0 + ph}" x2="{x:.1f}" y2="{py0 + ph + 4}" '
                 f'stroke="black"/>')
        e.append(f'<text x="{x:.1f}" y="{py0 + ph + 6 + fs}" text-anchor="middle">{v:g}</text>')
        v += xstep
    e.append(f'<rect x="{px0}" y="{py0}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    e.append(f'<text x="{px0 + pw / 2:.1f}" y="{y0 + h - 8}" text-anchor="middle">run</text>')
    e.append(f'<text transform="translate({x0 + fs + 2},{py0 + ph / 2:.1f}) rotate(-90)" '
             f'text-anchor="middle">cumulative failures</text>')
    # The contender marker.
    if a["contender_run"] is not None:
        x = sx(a["contender_run"])
        e.append(f'<line x1="{x:.1f}" y1="{py0}" x2="{x:.1f}" y2="{py0 + ph}" stroke="#2ca02c" '
                 f'stroke-width="1.5" stroke-dasharray="5,3"/>')
        label = (f"contender: run {a['contender_run']}, "
                 f"{a['failures_before_contender']} failures")
        anchor, lx = ("start", x + 4) if x < px0 + pw * 0.6 else ("end", x - 4)
        e.append(f'<text x="{lx:.1f}" y="{py0 + ph - 8}" text-anchor="{anchor}" '
                 f'fill="#2ca02c">{esc(label)}</text>')
    e.append(polyline(cb, sx, sy, BASE_COLOR, 2))
    e.append(polyline(ca, sx, sy, AVOID_COLOR, 2))
    # Legend, top left (the curves start at the bottom left).
    lx, ly = px0 + 10, py0 + 10
    items = [(BASE_COLOR, f"baseline (--no-avoid): {a['base_failures']}/{a['base_runs']} "
                          f"failed ({pct(a['base_rate'])})"),
             (AVOID_COLOR, f"avoidance: {a['avoid_failures']}/{a['avoid_runs']} "
                           f"failed ({pct(a['avoid_rate'])})")]
    lw = 16 + max(len(t) for _, t in items) * fs * 0.55
    e.append(f'<rect x="{lx}" y="{ly}" width="{lw:.0f}" height="{len(items) * (fs + 6) + 6}" '
             f'fill="white" fill-opacity="0.85" stroke="#999"/>')
    for i, (color, text) in enumerate(items):
        yy = ly + 6 + i * (fs + 6) + fs / 2
        e.append(f'<line x1="{lx + 4}" y1="{yy:.1f}" x2="{lx + 16}" y2="{yy:.1f}" '
                 f'stroke="{color}" stroke-width="3"/>')
        e.append(f'<text x="{lx + 20}" y="{yy + fs / 3:.1f}">{esc(text)}</text>')
    e.append("</g>")
    return e


def svg_doc(w, h, elements):
    return "\n".join([f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
                      f'viewBox="0 0 {w} {h}">',
                      f'<rect width="{w}" height="{h}" fill="white"/>'] + elements + ["</svg>"]) + "\n"


def svg_one(s, a, cb, ca, seed, commit):
    title = f"{s}: cumulative failures, seed {seed}" + (f", commit {commit}" if commit else "")
    return svg_doc(720, 440, panel(0, 0, 720, 440, s, a, cb, ca, title))


def svg_all(items, seed, commit, cols=3):
    w, h = 400, 260
    rows = math.ceil(len(items) / cols)
    head = 30
    e = [f'<text x="{cols * w / 2}" y="20" text-anchor="middle" font-family="sans-serif" '
         f'font-size="15" font-weight="bold">Cumulative failures over runs, baseline (red) vs '
         f'avoidance (blue); seed {esc(seed)}{", commit " + esc(commit) if commit else ""}</text>']
    for i, (s, a, cb, ca) in enumerate(items):
        e += panel((i % cols) * w, head + (i // cols) * h, w, h, s, a, cb, ca, s, small=True)
    return svg_doc(cols * w, head + rows * h, e)


# ---------------------------------------------------------------------------------------------

def series_meta(outdir, samples):
    """(seed, commit) of the measurement: run.txt, else a series' summary."""
    seed = commit = None
    p = os.path.join(outdir, "run.txt")
    if os.path.exists(p):
        with open(p, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"# seed (\d+)", line)
                if m:
                    seed = m.group(1)
                m = re.match(r"# commit ([0-9a-f?]+)", line)
                if m:
                    commit = m.group(1)
    for s in samples:
        if seed:
            break
        p = os.path.join(outdir, f"{s}.avoid.stderr")
        if os.path.exists(p):
            with open(p, encoding="utf-8", errors="replace") as f:
                m = re.search(r"runs, \d+ failed \(seed (\d+)\)", f.read())
                seed = m.group(1) if m else None
    return seed or "?", commit


def main(argv):
    args, samples, svg_dir, show_detail, markdown = [], [], None, False, False
    it = iter(argv)
    for x in it:
        if x == "--self-test":
            return self_test()
        if x == "--svg-dir":
            svg_dir = next(it, None)
        elif x == "--detail":
            show_detail = True
        elif x == "--markdown":
            markdown = True
        elif x in ("-h", "--help"):
            print(__doc__)
            return 0
        elif x.startswith("-"):
            print(f"analyze.py: unknown option {x}", file=sys.stderr)
            return 2
        else:
            args.append(x)
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    outdir, samples = args[0], args[1:]
    if not samples:
        samples = sorted(f[:-len(".avoid.jsonl")] for f in os.listdir(outdir)
                         if f.endswith(".avoid.jsonl")
                         and os.path.exists(os.path.join(outdir, f.replace(".avoid.", ".base."))))
    # run.txt's order (the order they were run), when it has them.
    order = []
    p = os.path.join(outdir, "run.txt")
    if os.path.exists(p):
        with open(p, encoding="utf-8", errors="replace") as f:
            order = [m.group(1) for m in re.finditer(r"^## (\S+)", f.read(), re.M)]
    samples.sort(key=lambda s: order.index(s) if s in order else len(order))
    if not samples:
        print(f"analyze.py: no SAMPLE.avoid.jsonl with SAMPLE.base.jsonl in {outdir}",
              file=sys.stderr)
        return 1
    svg_dir = svg_dir or outdir
    os.makedirs(svg_dir, exist_ok=True)
    seed, commit = series_meta(outdir, samples)
    rows, items = [], []
    for s in samples:
        base = read_log(os.path.join(outdir, f"{s}.base.jsonl"))
        avoid = read_log(os.path.join(outdir, f"{s}.avoid.jsonl"))
        a = analyze(base, avoid)
        cb, ca = cumulative(base), cumulative(avoid)
        rows.append((s, a))
        items.append((s, a, cb, ca))
        with open(os.path.join(svg_dir, f"{s}.svg"), "w", encoding="utf-8") as f:
            f.write(svg_one(s, a, cb, ca, seed, commit))
    if len(items) > 1:
        with open(os.path.join(svg_dir, "all.svg"), "w", encoding="utf-8") as f:
            f.write(svg_all(items, seed, commit))
    print(f"# avoidance benchmark: {outdir}; seed {seed}" + (f"; commit {commit}" if commit else ""))
    print(f"# reduction = baseline failures / avoidance failures; fail<contender = failures of "
          f"the avoidance series up to the first run after which a contender (effective "
          f"constraint) was known; target: reduction >= {TARGET_REDUCTION:g}x and "
          f"fail<contender <= {TARGET_FAILURES}")
    print(table(rows, markdown))
    print()
    for s, a in rows:
        print(detail(s, a, top=10 if show_detail else 5))
    print(f"\n# SVGs in {svg_dir}: " + " ".join(f"{s}.svg" for s in samples)
          + (" all.svg" if len(items) > 1 else ""))
    return 0


# ---------------------------------------------------------------------------------------------
# --self-test: synthetic logs with known answers

def synth(n, fails, contender_from=None, constraint=None, baseline_runs=()):
    """n runs; run i (1-based) fails when fails(i); contenders = 1 from run contender_from on;
    runs outside baseline_runs load @constraint (a dict) when given."""
    out = []
    for i in range(1, n + 1):
        cs = [] if constraint is None or i in baseline_runs else [constraint]
        out.append({"n": i, "run": f"1-{i}", "seed": i, "baseline": not cs, "constraints": cs,
                    "failed": bool(fails(i)), "status": 139 if fails(i) else 0,
                    "ms": 50.0 + (i % 3), "contenders":
                        1 if contender_from is not None and i >= contender_from else 0})
    return out


def self_test():
    c1 = {"id": "7", "b": "x.c:62 closer", "a": "x.c:44 logger"}
    c2 = {"id": "9", "b": "x.c:36 logger", "a": "x.c:61 closer"}
    # Baseline: every 4th run fails: 250/1000.
    base = synth(1000, lambda i: i % 4 == 0)
    # Avoidance: every 4th run fails up to run 100 (25 failures), the contender is known from
    # run 120 on, then one failure every 100 runs (runs 200, 300, ..., 1000: 9 more).
    def fails(i):
        return i % 4 == 0 if i <= 100 else i % 100 == 0
    avoid = synth(1000, fails, contender_from=120, constraint=c1,
                  baseline_runs=set(range(1, 51)))
    # A second constraint on runs 51-60 (none of which fail except 52, 56, 60).
    for r in avoid[50:60]:
        r["constraints"] = [c2]
    a = analyze(base, avoid)
    assert (a["base_failures"], a["base_runs"]) == (250, 1000), a
    assert (a["avoid_failures"], a["avoid_runs"]) == (34, 1000), a
    assert abs(a["base_rate"] - 0.25) < 1e-12 and abs(a["avoid_rate"] - 0.034) < 1e-12
    assert abs(a["reduction"] - 250 / 34) < 1e-12 and abs(a["rate_ratio"] - 250 / 34) < 1e-12
    assert a["contender_run"] == 120 and a["failures_before_contender"] == 25, a
    # Last 500 runs: 600, 700, 800, 900, 1000.
    assert a["tail_runs"] == 500 and a["tail_failures"] == 5, a
    assert a["most_used"] == ("x.c:62 closer -> x.c:44 logger", "7", 940, 10 + 9), a
    assert a["constraints"][1] == ("x.c:36 logger -> x.c:61 closer", "9", 10, 3), a
    assert (a["avoid_baseline_runs"], a["avoid_baseline_failures"]) == (50, 12), a
    assert (a["constrained_runs"], a["constrained_failures"]) == (950, 22), a
    assert abs(a["constrained_ratio"] - 0.25 / (22 / 950)) < 1e-12, a
    assert a["runs_with_contender"] == 881 and a["final_contenders"] == 1, a
    assert not a["met"]  # 7.4x < 10x
    # Tenfold: drop the failures after run 100 but one; the contender within 30 failures.
    avoid2 = synth(1000, lambda i: i % 4 == 0 and i <= 80 or i == 500, contender_from=81)
    a2 = analyze(base, avoid2)
    assert a2["avoid_failures"] == 21 and a2["failures_before_contender"] == 20, a2
    assert a2["reduction"] == 250 / 21 and a2["met"], a2
    # No avoidance failure at all: reduction infinite, met; no contender ever: not met.
    a3 = analyze(base, synth(1000, lambda i: False, contender_from=1))
    assert a3["reduction"] is None and a3["failures_before_contender"] == 0 and a3["met"]
    a4 = analyze(base, synth(1000, lambda i: i % 4 == 0))
    assert a4["contender_run"] is None and not a4["met"] and a4["reduction"] == 1.0
    # Truncated series: the rate ratio differs from the failure ratio.
    a5 = analyze(base, avoid[:500])
    assert a5["avoid_runs"] == 500 and abs(a5["rate_ratio"] - 0.25 / (29 / 500)) < 1e-12, a5
    # Cumulative counts and the step curve.
    assert cumulative(synth(8, lambda i: i in (2, 3, 7))) == [0, 1, 2, 2, 2, 2, 3, 3]
    assert nice_step(1000) == 200 and nice_step(34) == 10 and nice_step(250) == 50
    # The SVGs parse as XML and hold two curves and the marker.
    cb, ca = cumulative(base), cumulative(avoid)
    doc = ET.fromstring(svg_one("synthetic", a, cb, ca, "42", "abc1234"))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(doc.findall(f".//{ns}polyline")) == 2
    texts = [t.text for t in doc.iter(f"{ns}text")]
    assert "synthetic: cumulative failures, seed 42, commit abc1234" in texts, texts
    assert "contender: run 120, 25 failures" in texts, texts
    assert "1000" in texts and "250" in texts, texts
    doc = ET.fromstring(svg_all([("s1", a, cb, ca), ("s2", a2, cb, cumulative(avoid2))], "42", None))
    assert len(doc.findall(f".//{ns}polyline")) == 4
    # The whole path, files to table.
    with tempfile.TemporaryDirectory() as d:
        for name, runs in (("s.base.jsonl", base), ("s.avoid.jsonl", avoid)):
            with open(os.path.join(d, name), "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in runs)
            with open(os.path.join(d, name), "a") as f:
                f.write('{"n": 10')  # a torn last line is skipped
        with open(os.path.join(d, "run.txt"), "w") as f:
            f.write("# commit abc1234; build x\n# seed 42; 1000 runs per series\n## s (x)\n")
        import io
        import contextlib
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            assert main([d]) == 0
        out = buf.getvalue()
        assert "seed 42; commit abc1234" in out, out
        row = [l for l in out.splitlines() if l.startswith("s ")][0].split()
        assert row[1:14] == ["250/1000", "25.0%", "34/1000", "3.4%", "7.4x", "7.4x", "25",
                             "120", "1.0%", "2.3%", "10.8x", "not", "met"], row
        assert os.path.exists(os.path.join(d, "s.svg"))
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            assert main([d, "--markdown"]) == 0
        assert "| `s` | 250/1000 | 25.0% | 34/1000 |" in buf.getvalue(), buf.getvalue()
    print("analyze.py --self-test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
