"""
What did it learn? One self-contained HTML page from train.py output folders.

    python tools/report.py out/sst2 out/cola ...             # writes out/report.html
    python tools/report.py out/sst2-l0.3 out/sst2-l0.8 out/sst2-baseline --out sst2.html
    python tools/report.py out/sst2 --svg kept.svg           # also the layer-wise chart alone
    python tools/report.py results/sweeps/mrpc-lambda/*.json --fig3-svg fig3.svg   # results files; Fig. 3 alone
    python tools/report.py --glue results/glue --readme README.md     # the README's GLUE table
    python tools/report.py --sweep results/sweeps/mrpc-lambda --readme docs/results.md   # mean per setting
    (each page of docs/ says the command that writes its tables)

The page holds, each with the table of numbers behind it (no network, no JavaScript):
  - the fraction of tokens kept entering each layer, one curve per folder (paper Fig. 4);
  - the dev examples with every token coloured by the layer before which it was skimmed, black when
    kept through all layers (paper Table 5): every example (or --examples N) of a run trained or
    evaluated with --predictions (its predictions.jsonl), else the 8 results.json records;
  - when several folders share a task (say, several skim coefficients (lambda) and the baseline): the
    metric against FLOPs speedup, one point per setting (seeds averaged, with their spread), the
    plain-BERT baseline marked (Fig. 3).
"""

import argparse
import glob
import html
import json
import os
import sys
import statistics

if __package__ in (None, ""):   # run as `python tools/NAME.py`: the project's modules are one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from storage.files import atomic_write_text, check_outputs, read_log
from tools.peers_table import peers_chart, peers_table
from tools.tables import (ablation_table, batch1_table, glue_table, read_result, replace_between, speed_table,
                          sweep_table, target_label, target_table)

MARK = "<!-- written by tools/report.py -->"   # what makes a page or chart ours: redrawn without asking
COLORS = ["#d62728", "#ff7f0e", "#bcbd22", "#2ca02c", "#17becf", "#1f77b4", "#9467bd", "#e377c2",
          "#8c564b", "#7f7f7f", "#aec7e8", "#ffbb78"]   # one per layer; black = kept through all


def load(folder, examples=None):
    """One run: an output folder of train.py, or a results file copied out of one (results/...json);
    its dev examples from predictions.jsonl where --predictions wrote one (the first `examples`; None: all)."""
    path = folder if folder.endswith(".json") else os.path.join(folder, "results.json")
    eval_only = os.path.join(folder, "eval-results.json")   # a folder of train.py --eval-only
    if not os.path.isfile(path) and os.path.isfile(eval_only):
        path = eval_only
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: pass output folders written by train.py, or their results files")
    res = read_result(path)   # a broken or NaN run stops here, its file named
    try:
        a = res["args"]
        target = a.get("target_speedup")   # (--target-speedup: the speed asked for names the setting)
        res["label"] = "plain BERT" if a["baseline"] else target_label(a) if target else f"lambda {a['skim_coefficient']:g}"
        res["name"] = f"{os.path.basename(os.path.normpath(folder)).removesuffix('.json')} (" + \
            ("plain BERT)" if a["baseline"] else f"Transkimmer, {res['label']})")
    except (KeyError, TypeError) as e:   # args not train.py's
        raise ValueError(f"{path} is not a results file of train.py (args: {type(e).__name__}: {e}): "
                         f"pass the folder of a finished run") from None
    res["folder"] = folder
    res["log"] = [] if folder.endswith(".json") else read_log(folder)   # (cli/progress.py: the loss curve)
    rows = os.path.join(os.path.dirname(path), ("eval-" if path.endswith("eval-results.json") else "") + "predictions.jsonl")
    if not folder.endswith(".json") and os.path.isfile(rows):
        with open(rows) as f:
            res["examples"] = [r for r in map(json.loads, f) if "tokens" in r][:examples]
    return res


def line_chart(runs, width=680, height=300):
    """Fig. 4: kept fraction entering each layer, one polyline (and one circle per layer) per run."""
    L = max(len(r["kept_fraction_per_layer"]) for r in runs)
    left, right, top, bottom = 50, 270, 20, 40   # the legend sits on the right
    x = lambda i: left + (width - left - right) * (i / max(L - 1, 1))
    y = lambda v: top + (height - top - bottom) * (1 - v)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">{MARK}',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for i in range(L):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">{i}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">layer</text>'
                 f'<text x="12" y="{(top + height - bottom) / 2}" transform="rotate(-90 12 {(top + height - bottom) / 2})" '
                 f'text-anchor="middle">fraction of tokens kept</text>')
    for k, r in enumerate(runs):
        c = COLORS[(5 + k) % len(COLORS)]
        pts = [(x(i), y(v)) for i, v in enumerate(r["kept_fraction_per_layer"])]
        parts.append(f'<polyline class="run" fill="none" stroke="{c}" stroke-width="2" points="'
                     + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        parts += [f'<circle class="point" cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{c}"/>' for a, b in pts]
        parts.append(f'<line x1="{width - right + 10}" x2="{width - right + 25}" y1="{top + 14 * k + 4}" '
                     f'y2="{top + 14 * k + 4}" stroke="{c}" stroke-width="2"/><text x="{width - right + 29}" '
                     f'y="{top + 14 * k + 8}">{html.escape(r["name"])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def series_of(label):
    """Fig. 3's series of a setting: the way it asked for speed."""
    return "target" if label.startswith("target") else "lambda"


def series_lines(points, x, y):
    """One line per series through its points (not the baseline's), in speedup order."""
    lines = []
    for name, colour in (("lambda", "#1f77b4"), ("target", "#d62728")):
        curve = sorted((p[3], p[4]) for p in points if not p[1] and series_of(p[0]) == name)
        if curve:
            lines.append(f'<polyline fill="none" stroke="{colour}" stroke-opacity="0.4" points="'
                         + " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in curve) + '"/>')
    return lines


def scatter_chart(runs, width=680, height=300):
    """Fig. 3: main metric against FLOPs speedup (no padding), one point per setting (runs with the
    same label, e.g. the seeds of one lambda, are averaged, with bars of one standard deviation each
    way); the baseline is a square. Each way to the speed is a series with its line: lambda (circles) and
    --target-speedup (diamonds)."""
    metric = runs[0]["metric_names"][0]
    groups = {}
    for r in runs:
        groups.setdefault(r["label"], []).append((r["flops_speedup_no_padding"], r["metrics"][metric]))
    points = []   # (label, baseline?, n, mean x, mean y, std x, std y)
    for label, xy in groups.items():
        xs, ys = zip(*xy)
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
        points.append((label, label == "plain BERT", len(xy), statistics.mean(xs), statistics.mean(ys), sd(xs), sd(ys)))
    x0 = min([p[3] - p[5] for p in points] + [1.0]) * 0.95
    x1 = max(p[3] + p[5] for p in points) * 1.05
    y0, y1 = min(p[4] - p[6] for p in points) - 0.01, max(p[4] + p[6] for p in points) + 0.01
    left, right, top, bottom = 60, 20, 20, 40
    x = lambda v: left + (width - left - right) * (v - x0) / (x1 - x0)
    y = lambda v: top + (height - top - bottom) * (1 - (v - y0) / (y1 - y0))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11">{MARK}<rect width="{width}" height="{height}" fill="white"/>',
             f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}" stroke="#999"/>',
             f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" stroke="#999"/>',
             f'<text x="{(left + width) / 2}" y="{height - 6}" text-anchor="middle">FLOPs speedup (no padding)</text>',
             f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle">{metric}</text>',
             f'<text x="{left}" y="{height - bottom + 16}" text-anchor="middle">{x0:.2f}x</text>',
             f'<text x="{width - right}" y="{height - bottom + 16}" text-anchor="middle">{x1:.2f}x</text>',
             f'<text x="{left - 4}" y="{y(y0) + 4:.1f}" text-anchor="end">{y0:.3f}</text>',
             f'<text x="{left - 4}" y="{y(y1) + 4:.1f}" text-anchor="end">{y1:.3f}</text>']
    parts += series_lines(points, x, y)
    for label, base, n, a, b, sa, sb in points:
        if n > 1:   # one standard deviation over the seeds, each way
            parts.append(f'<path class="spread" stroke="#999" d="M{x(a - sa):.1f},{y(b):.1f}H{x(a + sa):.1f}'
                         f'M{x(a):.1f},{y(b - sb):.1f}V{y(b + sb):.1f}"/>')
        if base:
            parts.append(f'<rect class="baseline" x="{x(a) - 4:.1f}" y="{y(b) - 4:.1f}" width="8" height="8" fill="black"/>')
        elif series_of(label) == "target":
            parts.append(f'<path class="point target" d="M{x(a):.1f},{y(b) - 5:.1f}l5,5l-5,5l-5,-5z" fill="#d62728"/>')
        else:
            parts.append(f'<circle class="point" cx="{x(a):.1f}" cy="{y(b):.1f}" r="4" fill="#1f77b4"/>')
        right_half = x(a) > width / 2   # label on the side with room, so it is never clipped
        text = label + (f" ({n} runs)" if n > 1 else "")
        parts.append(f'<text x="{x(a) + (-7 if right_half else 7):.1f}" y="{y(b) - 6:.1f}" '
                     f'text-anchor="{"end" if right_half else "start"}">{html.escape(text)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def curve_chart(log, key, label, width=330, height=220):
    """One quantity of a run's log.jsonl (cli/progress.py) against the step: loss, or the kept fraction."""
    if not log:
        return ""
    steps, values = [e["step"] for e in log], [e[key] for e in log]
    x0, x1 = min(steps), max(max(steps), min(steps) + 1)
    y0, y1 = min(0.0, min(values)), max(max(values), 1e-9) * 1.05
    left, right, top, bottom = 50, 10, 20, 35
    x = lambda v: left + (width - left - right) * (v - x0) / (x1 - x0)
    y = lambda v: top + (height - top - bottom) * (1 - (v - y0) / (y1 - y0))
    return "\n".join([f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
                      f'font-size="11">{MARK}<rect width="{width}" height="{height}" fill="white"/>',
                      f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}" stroke="#999"/>',
                      f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" stroke="#999"/>',
                      f'<text x="{(left + width) / 2}" y="{height - 6}" text-anchor="middle">step ({x0} to {x1})</text>',
                      f'<text x="{left - 4}" y="{y(y1) + 4:.1f}" text-anchor="end">{y1:.2f}</text>',
                      f'<text x="{left - 4}" y="{y(y0) + 4:.1f}" text-anchor="end">{y0:.2f}</text>',
                      f'<text x="{left + 6}" y="{top - 6}">{html.escape(label)}</text>',
                      f'<polyline class="curve" fill="none" stroke="#1f77b4" points="'
                      + " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(steps, values)) + '"/>', "</svg>"])


def table(header, rows):
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join(out) + "</table>"


def tokens_html(run):
    """Table 5: each token coloured by its skim layer, with a legend."""
    L = len(run["kept_fraction_per_layer"])
    legend = " ".join(f'<span class="tok" style="color:{COLORS[i % len(COLORS)]}">skimmed before layer {i}</span>'
                      for i in range(L)) + ' <span class="tok" style="color:black">kept through all layers</span>'
    lines = [f'<p class="legend">{legend}</p>']
    for ex in run.get("examples", []):
        spans = [f'<span class="tok" title="layer {s}" style="color:{"black" if s >= L else COLORS[s % len(COLORS)]}">'
                 f'{html.escape(t)}</span>' for t, s in zip(ex["tokens"], ex["skim_layer"])]
        pred = ex["prediction"] if isinstance(ex["prediction"], (list, str)) else f'{ex["prediction"]:.3g}'   # QA: span
        lines.append(f'<p class="example">{" ".join(spans)} <small>(label {ex["label"]}, predicted {pred})</small></p>')
    return "\n".join(lines)


def render(runs):
    body = ["<h1>Transkimmer: what the predictors learned</h1>",
            "<h2>Tokens kept entering each layer (paper Fig. 4)</h2>", line_chart(runs)]
    L = max(len(r["kept_fraction_per_layer"]) for r in runs)
    body.append(table(["run"] + [f"layer {i}" for i in range(L)],
                      [[r["name"]] + [f"{v:.3f}" for v in r["kept_fraction_per_layer"]] for r in runs]))
    body.append(table(["run", "folder", "metrics", "FLOPs speedup (no padding)", "FLOPs speedup (sequence)", "dev examples"],
                      [[r["name"], r["folder"], ", ".join(f"{k} {v:.4f}" for k, v in r["metrics"].items()),
                        f"{r['flops_speedup_no_padding']:.2f}x", f"{r['flops_speedup_sequence']:.2f}x",
                        r["num_examples"]] for r in runs]))
    for r in runs:
        if r.get("log"):   # the training curve (log.jsonl)
            body += [f"<h2>Training: {html.escape(r['name'])}</h2>", curve_chart(r["log"], "loss", "loss"),
                     curve_chart(r["log"], "kept", "kept fraction (training batches)")]
    for r in runs:
        if r.get("examples"):
            body += [f"<h2>Which tokens were skimmed where: {html.escape(r['name'])} (paper Table 5)</h2>", tokens_html(r)]
    by_task = {}
    for r in runs:
        by_task.setdefault(r["task"], []).append(r)
    for task, rs in by_task.items():
        if len(rs) > 1:   # e.g. several skim coefficients (lambda), and the baseline
            body += [f"<h2>{task}: accuracy against speedup (paper Fig. 3)</h2>", scatter_chart(rs),
                     table(["run", rs[0]["metric_names"][0], "FLOPs speedup (no padding)"],
                           [[r["name"], f"{r['metrics'][rs[0]['metric_names'][0]]:.4f}",
                             f"{r['flops_speedup_no_padding']:.2f}x"] for r in rs])]
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.5}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%}"
             ".tok{font-family:monospace;font-weight:bold}.example{border-left:3px solid #eee;padding-left:8px}")
    return (f"<!DOCTYPE html>\n{MARK}\n<html><head><meta charset=\"utf-8\"><title>Transkimmer report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def written_by_report(path, start):
    """Whether the file at path is a page (start "<!DOCTYPE html>") or chart ("<svg") this script wrote,
    MARK within its first lines: only those are replaced; anything else there (the user's own page,
    a results file given by mistake) is the user's, replaced only with --overwrite."""
    with open(path, "rb") as f:
        head = f.read(600)
    return head.startswith(start.encode()) and MARK.encode() in head


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="*", help="output folders of train.py (each with results.json)")
    p.add_argument("--glue", help="print the GLUE table from this folder of result files (results/glue)")
    p.add_argument("--batch1", help="print the where-batch-1-time-goes table from this folder's bench/ (results/glue)")
    p.add_argument("--ablation", help="print the recipe ablation table from this folder (results/recipe/ablation)")
    p.add_argument("--lr-grid", help="print the baseline learning-rate grid from this folder (results/recipe/baseline-lr)")
    p.add_argument("--bench", help="print the speed table from this folder of tools/bench.py --json files (results/bench)")
    p.add_argument("--target", help="print the table at fixed speed from this folder of --target-speedup result "
                   "files (results/target-speedup; the baselines from the glue/ folder beside it)")
    p.add_argument("--peers", help="print the peers table from this folder (results/peers; with ../target-speedup, ../glue)")
    p.add_argument("--peers-svg", help="with --peers: also write its chart, metric against FLOPs speedup, to this SVG file")
    p.add_argument("--sweep", nargs="+", default=[], help="print a table of each setting's mean over its seeds "
                   "from these folders of result files (results/sweeps/mrpc-lambda ...)")
    p.add_argument("--readme", help="with the table flags: write each table into this Markdown file's "
                   "<!-- glue-table --> / <!-- batch1-table --> / <!-- ablation-table --> / "
                   "<!-- lr-grid-table --> / <!-- speed-table --> / <!-- target-table --> / <!-- sweep-table FOLDER-NAME --> block")
    p.add_argument("--out", default=os.path.join("out", "report.html"), help="the HTML page to write (git ignores out/)")
    p.add_argument("--examples", type=int, help="show this many dev examples of each run (default: every "
                   "one its predictions.jsonl holds, from train.py --predictions; else the 8 of results.json)")
    p.add_argument("--svg", help="also write the layer-wise chart alone to this SVG file")
    p.add_argument("--fig3-svg", help="also write the metric-against-speedup chart alone to this SVG file "
                   "(the runs given must share one task)")
    p.add_argument("--overwrite", action="store_true", help="replace an --out/--svg/--fig3-svg file this script did not write")
    args = p.parse_args(argv)
    if args.examples is not None and args.examples < 1:
        p.error(f"--examples {args.examples}: pass how many dev examples to show, at least 1")
    if args.peers_svg and not args.peers:   # (the chart of the peers table)
        p.error("--peers-svg draws the peers table's chart: pass --peers results/peers too")
    check_outputs(p, [("--out", args.out), ("--svg", args.svg), ("--fig3-svg", args.fig3_svg), ("--peers-svg", args.peers_svg),
                       ("--readme", args.readme)])
    for flag, path, start in [("--out", args.out, "<!DOCTYPE html>"), ("--svg", args.svg, "<svg"), ("--fig3-svg", args.fig3_svg, "<svg"),
                              ("--peers-svg", args.peers_svg, "<svg")]:
        if path and os.path.isfile(path) and not args.overwrite and not written_by_report(path, start):   # (ours: redrawn)
            p.error(f"{flag} {path} already exists and is not a page or chart tools/report.py wrote: pass another file "
                    "name, or --overwrite to replace it")
    if args.readme and not os.path.isfile(args.readme):
        p.error(f"--readme {args.readme}: no such file; pass the README whose marked blocks take the tables")
    for flag, folder in ([("--glue", args.glue), ("--batch1", args.batch1), ("--ablation", args.ablation),
                          ("--lr-grid", args.lr_grid), ("--bench", args.bench), ("--target", args.target),
                          ("--peers", args.peers)]
                         + [("--sweep", f) for f in args.sweep]):
        if folder and not glob.glob(os.path.join(folder, "*.json")):   # an empty table would replace the README's
            p.error(f"{flag} {folder}: " + ("no .json result files in it" if os.path.isdir(folder) else "no such folder")
                    + "; pass the folder that holds the runs' result files (results/glue, ...)")
    if not args.folders and not (args.glue or args.batch1 or args.ablation or args.lr_grid or args.bench or args.sweep
                                 or args.target or args.peers):
        p.error("pass train.py output folders, or --glue results/glue, --ablation results/recipe/ablation, --bench results/bench, "
                "--sweep results/sweeps/mrpc-lambda")
    return p, args


def main(argv=None):
    p, args = parse_args(argv)
    tables = [(marker, make(folder)) for marker, make, folder in
              [("glue-table", glue_table, args.glue), ("batch1-table", batch1_table, args.batch1),
               ("ablation-table", ablation_table, args.ablation), ("lr-grid-table", ablation_table, args.lr_grid),
               ("speed-table", speed_table, args.bench),
               ("target-table", lambda f: target_table(f, os.path.join(os.path.dirname(os.path.normpath(f)), "glue")),
                args.target)] if folder]
    tables += [(f"sweep-table {os.path.basename(os.path.normpath(folder))}", sweep_table(folder)) for folder in args.sweep]
    if args.peers:
        sibling = lambda name: os.path.join(os.path.dirname(os.path.normpath(args.peers)), name)
        tables.append(("peers-table", peers_table(args.peers, sibling("target-speedup"), sibling("glue"))))
        if args.peers_svg:
            atomic_write_text(args.peers_svg, peers_chart(args.peers, sibling("target-speedup"), sibling("glue")))
    if args.readme and tables:
        replace_between(args.readme, tables)
    for _, text in tables:
        print(text)
    if tables:
        return
    runs = [load(f, args.examples) for f in args.folders]
    if args.fig3_svg and len({r["task"] for r in runs}) != 1:
        p.error(f"--fig3-svg: the runs given are of several tasks ({', '.join(sorted({r['task'] for r in runs}))}); "
                "pass the runs of one task")
    atomic_write_text(args.out, render(runs))
    if args.svg:
        atomic_write_text(args.svg, line_chart([r for r in runs if not r["args"]["baseline"]] or runs))
    if args.fig3_svg:
        atomic_write_text(args.fig3_svg, scatter_chart(runs))
    print(f"wrote {args.out}" + "".join(f" and {f}" for f in (args.svg, args.fig3_svg) if f))


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as e:   # a missing or broken results file
        raise SystemExit(f"error: {e}") from None
