"""
docs/peers.md's table and chart: Transkimmer against what a user could do instead at the same FLOPs
(peers/), per task and speed, from result files (never typed by hand):

    results/peers/<task>-<setting>-seed<N>.json       train.py's results.json (eval-results.json for
                                                       the peers evaluated without retraining)
    results/target-speedup/<task>-target<S>...json    Transkimmer's --target-speedup runs
    results/glue/<task>-<baseline|transkimmer>-...    the 6-layer baseline and the default recipe (lambda)
    <folder>/bench/<same name>.json                   tools/bench.py --json of that run's checkpoint, if benched

    python tools/report.py --peers results/peers --readme docs/peers.md --peers-svg assets/peers.svg
"""

import glob
import html
import os
import statistics

from tools.tables import _in_glue_order, _mean_std, command_of, from_checkpoint, glue_runs, rate, read_run

MARK = "<!-- written by tools/report.py -->"
HOSTS = "baseline, retrained here (what top-k prunes)"
# The methods, in the table's order within a speed, and the colour of each one's line in the chart.
METHODS = [("Transkimmer, --target-speedup", "#d62728"), ("Transkimmer, --target-speedup + teacher", "#ff7f0e"),
           ("Transkimmer, --target-speedup --one-stage", "#bcbd22"),
           ("Transkimmer, --target-speedup --one-stage + teacher", "#7f7f00"), ("Transkimmer, defaults (lambda)", "#e377c2"),
           ("first k layers", "#1f77b4"),
           ("first k layers + teacher", "#17becf"), ("truncation", "#2ca02c"),
           ("attention top-k, no retraining", "#9467bd"), ("attention top-k, fine-tuned", "#8c564b")]


def method_of(r):
    """(method, the speed it was asked for) of one result file."""
    a, peer = r["args"], r.get("peer") or {}
    teacher = " + teacher" if a.get("teacher") else ""
    if a.get("target_speedup"):   # (two stages, the default: from a checkpoint, the baseline the first wrote)
        one = "" if from_checkpoint(a) else " --one-stage"
        return "Transkimmer, --target-speedup" + one + teacher + recipe(a), a["target_speedup"]
    if peer.get("method") == "layers":
        return "first k layers" + teacher + recipe(a), round(r["authors_speedup"], 2)
    if peer.get("method") == "truncate":
        return "truncation" + recipe(a), peer["asked"]
    if peer.get("method") == "attention-topk":
        return "attention top-k, " + ("no retraining" if a.get("eval_only") else "fine-tuned" + recipe(a)), peer["asked"]
    return ("baseline" if a["baseline"] else "Transkimmer, defaults (lambda)"), None


def recipe(a):
    """How a run departs from its method's default recipe ("": it does not): its learning rate, where it
    started (the fine-tuned baseline, which --target-speedup's second stage always does), lambda's schedule
    (--target-speedup's from a checkpoint: delay 0, ramp 0.3; else a third each), distilled layers, a hard
    last stage."""
    two_stage = a.get("target_speedup") and from_checkpoint(a)
    parts = [f"lr {rate(a['lr'])}"] if a.get("lr") != 5e-5 else []
    parts += ["from the baseline"] if from_checkpoint(a) and not two_stage else []
    delay, ramp = (0.0, 0.3) if two_stage else (1 / 3, 1 / 3)
    if not a["baseline"] and (abs(a.get("skim_delay", 1 / 3) - delay) > 1e-6 or abs(a.get("skim_warmup", 1 / 3) - ramp) > 1e-6):
        parts.append(f"delay {a['skim_delay']:.2g}, ramp {a['skim_warmup']:.2g}")
    if a.get("distill_layers"):
        parts.append("layers distilled")
    if a.get("hard_stage"):
        parts.append(f"hard last {a['hard_stage']:g}")
    return f" ({', '.join(parts)})" if parts else ""


def base_of(method):
    """The method a variant varies ("first k layers (lr 1e-04)": "first k layers")."""
    return method if method in dict(METHODS) else method.split(" (")[0]


def rank(method):
    """A method's place in the table's order within a speed: METHODS', each variant after its method."""
    order = [m for m, _ in METHODS]
    if method in ("baseline", HOSTS):
        return -2 if method == "baseline" else -1
    return order.index(base_of(method)) + (0.5 if method not in order else 0) if base_of(method) in order else 99


def colour(method):
    """The chart's colour of a method; a variant takes its method's (and a dashed line)."""
    return "black" if method in ("baseline", HOSTS) else dict(METHODS).get(base_of(method), "#7f7f7f")


def full_speedup(r):
    """FLOPs of the full model over the run's (peers/__init__.py); runs before that record: their own
    no-padding speedup (full depth, full length)."""
    return r.get("flops_speedup_full", r["flops_speedup_no_padding"])


def authors_speedup(r):
    """The paper's count: 1 / the mean fraction of tokens kept over the full model's layers."""
    return r.get("authors_speedup", 1 / statistics.mean(r["kept_fraction_per_layer"]))


def collect(peers_folder, target_folder, glue_folder):
    """{task: {(method, asked): [runs]}}, the baseline and the defaults under (name, None)."""
    out = {}
    paths = sorted(glob.glob(os.path.join(peers_folder, "*.json")) + glob.glob(os.path.join(target_folder, "*.json")))
    for path in paths:
        r = read_run(path)
        method, asked = method_of(r)
        if method == "baseline":   # (the baseline row is results/glue's; the peers folder's are top-k's hosts)
            method = HOSTS
        out.setdefault(r["task"], {}).setdefault((method, asked), []).append(r)
    for (task, kind), runs in glue_runs(glue_folder).items():
        if task in out:
            out[task][("baseline" if kind == "baseline" else "Transkimmer, defaults (lambda)", None)] = runs
    return out


def given(r):
    """What a row's runs were given: learning rate, epochs, and where they started."""
    a = r["args"]
    if a.get("eval_only"):
        return "evaluation only, on the fine-tuned baseline"
    start = "the fine-tuned baseline" if from_checkpoint(a) else "MiniLM-L6"
    length = f"{a['max_steps']} steps" if a.get("max_steps") else f"{a['epochs']} epochs"
    return f"lr {rate(a['lr'])}, {length}, from {start}" + (", teacher" if a.get("teacher") else "")


def time_cell(runs):
    """Seed 42's checkpoint timed on the packed path (tools/bench.py --json in the folder's bench/):
    batch 32 / batch 1, "" when not benched."""
    b = [r["bench"] for r in runs if "bench" in r and r["args"].get("seed") == 42]
    if not b or not all(bs in b[0] for bs in (32, 1)) or "packed_measured" not in b[0][32]:
        return ""
    return f"{b[0][32]['packed_measured']:.2f}x / {b[0][1]['packed_measured']:.2f}x"


def peers_table(peers_folder, target_folder, glue_folder):
    """The markdown table, then each row's command."""
    runs = collect(peers_folder, target_folder, glue_folder)
    head = ("| task | speed asked | method | given | runs (seeds) | metric | difference to the baseline "
            "| FLOPs speedup (ours) | authors' count | time, seed 42, batch 32 / 1 | best at this speed |")
    lines, commands = [head, "|" + "---|" * (head.count("|") - 1)], []
    for task in _in_glue_order({(t, None) for t in runs}):
        rows = runs[task]
        metric = next(iter(rows.values()))[0]["metric_names"][0]
        score = lambda rs: [100 * r["metrics"][metric] for r in rs]
        base = statistics.mean(score(rows[("baseline", None)])) if ("baseline", None) in rows else None
        speeds = sorted({s for _, s in rows if s is not None})
        for asked in [None] + speeds:
            here = sorted(((m, rs) for (m, s), rs in rows.items() if s == asked),
                          key=lambda mr: (rank(mr[0]), mr[0]))
            means = {m: statistics.mean(score(rs)) for m, rs in here}
            best = max(means, key=means.get) if asked is not None else None
            for method, rs in here:
                txt, mean = _mean_std(score(rs))
                seeds = ", ".join(str(r["args"]["seed"]) for r in rs)
                diff = f"{mean - base:+.1f}" if base is not None and method != "baseline" else ""
                sp = lambda f: f"{statistics.mean(f(r) for r in rs):.2f}x" + (
                    f" ± {statistics.stdev(f(r) for r in rs):.2f}" if len(rs) > 1 else "")
                lines.append(f"| {task} | {f'{asked:g}x' if asked else ''} | {method} | {given(rs[0])} | {len(rs)} ({seeds}) "
                             f"| {metric} {txt} | {diff} | {sp(full_speedup)} | {sp(authors_speedup)} | {time_cell(rs)} "
                             f"| {'**best**' if method == best else ''} |")
                if asked is not None:
                    commands.append(f"- {task}, {asked:g}x, {method}, seeds {seeds}: `{command_of(rs[0])}`")
    return "\n".join(lines) + "\n\nCommands, from each row's first result file (`$M` the model, `$D` the data; the " \
        "seeds change `--seed` and the folder names):\n\n" + "\n".join(commands) + "\n"


def peers_chart(peers_folder, target_folder, glue_folder, panel=300, height=260):
    """Metric against FLOPs speedup (ours, against the full model), one panel per task, one line per
    method through its speeds (means over seeds), the baseline a black square at 1x."""
    runs = collect(peers_folder, target_folder, glue_folder)
    tasks = _in_glue_order({(t, None) for t in runs})
    width = panel * len(tasks) + 420
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11">{MARK}<rect width="{width}" height="{height}" fill="white"/>']
    for i, task in enumerate(tasks):
        rows = runs[task]
        metric = next(iter(rows.values()))[0]["metric_names"][0]
        pts = {m: sorted((statistics.mean(full_speedup(r) for r in rs), statistics.mean(100 * r["metrics"][metric] for r in rs))
                         for (mm, _), rs in rows.items() if mm == m) for m in sorted({m for m, _ in rows})}
        xs = [x for p in pts.values() for x, _ in p] + [1.0]
        ys = [y for p in pts.values() for _, y in p]
        x0, x1, y0, y1 = 0.9, max(xs) * 1.08, min(ys) - 2, max(ys) + 2
        left, top, bottom = 45 + i * panel, 25, 35
        x = lambda v: left + (panel - 60) * (v - x0) / (x1 - x0)
        y = lambda v: top + (height - top - bottom) * (1 - (v - y0) / (y1 - y0))
        parts += [f'<text x="{left + (panel - 60) / 2}" y="15" text-anchor="middle" font-weight="bold">{task}</text>',
                  f'<line x1="{left}" x2="{left + panel - 60}" y1="{height - bottom}" y2="{height - bottom}" stroke="#999"/>',
                  f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" stroke="#999"/>',
                  f'<text x="{left + (panel - 60) / 2}" y="{height - 8}" text-anchor="middle">FLOPs speedup</text>',
                  f'<text x="{left - 4}" y="{y(y0) + 4:.1f}" text-anchor="end">{y0:.0f}</text>',
                  f'<text x="{left - 4}" y="{y(y1) + 4:.1f}" text-anchor="end">{y1:.0f}</text>',
                  f'<text x="{left - 30}" y="{top - 8}">{metric}</text>']
        for v in range(1, int(x1) + 1):
            parts.append(f'<text x="{x(v):.1f}" y="{height - bottom + 13}" text-anchor="middle">{v}x</text>')
        for method, p in pts.items():
            if method in ("baseline", HOSTS):
                continue
            if len(p) > 1:
                dash = "" if method == base_of(method) else ' stroke-dasharray="4 3"'
                parts.append(f'<polyline fill="none" stroke="{colour(method)}"{dash} points="'
                             + " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in p) + '"/>')
            fill = colour(method) if method == base_of(method) else "white"   # (a variant: a hollow point)
            parts += [f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="3.5" fill="{fill}" stroke="{colour(method)}"/>' for a, b in p]
        for a, b in pts.get("baseline", []):
            parts.append(f'<rect x="{x(a) - 4:.1f}" y="{y(b) - 4:.1f}" width="8" height="8" fill="black"/>')
    drawn = sorted({m for rows in runs.values() for m, _ in rows if m not in ("baseline", HOSTS)}, key=lambda m: (rank(m), m))
    for j, method in enumerate(["baseline"] + drawn):
        fill = colour(method) if method == base_of(method) else "white"
        parts.append(f'<rect x="{width - 410}" y="{22 + 16 * j}" width="10" height="10" fill="{fill}" stroke="{colour(method)}"/>'
                     f'<text x="{width - 395}" y="{31 + 16 * j}">{html.escape(method)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
