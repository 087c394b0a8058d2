"""
The tables of the README and docs/, generated from the small result files in results/ (never typed by hand):
the GLUE table and where batch-1 time goes (results/glue, results/glue/bench), the recipe ablation
and the baseline's learning-rate grid, the speed table (results/bench), and a mean-per-setting table
for sweeps (results/sweeps/mrpc-lambda ...). `python tools/report.py --glue ... --readme README.md` writes them
between the README's <!-- marker --> lines.
"""

import glob
import json
import os
import re
import statistics

from storage.files import atomic_write_text

# The GLUE table, from results/glue/<task>-<baseline|transkimmer>-seed<N>.json (train.py's
# results.json) and results/glue/bench/<task>-transkimmer-seed<N>.json (tools/bench.py --json).

# Paper Table 3 (dev, main metric x100): (baseline, Transkimmer, FLOPs speedup with no padding).
# BERT-base against BERT-base; DistilBERT + Transkimmer against DistilBERT itself (the table's
# speedups are against BERT-base, DistilBERT alone being 1.98x: we divide by 1.98).
PAPER_BERT = dict(cola=(57.8, 58.9, 1.75), rte=(65.7, 68.9, 2.85), mrpc=(88.9, 88.5, 3.13),
                  sst2=(93.0, 92.3, 1.58), wnli=(56.3, 56.3, 5.56), stsb=(88.6, 87.4, 3.45))
PAPER_DISTILBERT = dict(cola=(55.7, 55.1, 3.52 / 1.98), rte=(58.8, 59.2, 4.12 / 1.98), mrpc=(88.3, 87.8, 9.92 / 1.98),
                        sst2=(90.6, 89.5, 5.01 / 1.98), wnli=(53.5, 56.3, 10.41 / 1.98), stsb=(87.0, 86.5, 3.47 / 1.98))
GLUE_ORDER = ("cola", "rte", "mrpc", "sst2", "wnli", "stsb")
RESULT_NAME = re.compile(r"(?P<task>[a-z0-9]+)-(?P<kind>baseline|transkimmer)-seed(?P<seed>\d+)\.json$")
# What the tables and the report page read from train.py's results files and tools/bench.py --json's.
RUN_KEYS = ("task", "metric_names", "metrics", "kept_fraction_per_layer", "flops_speedup_no_padding", "args")
BENCH_KEYS = ("task", "checkpoint", "device_name", "threads", "rows")
BENCH_COLUMN = ("measured speedup batch 32, of FLOPs (lowest checkpoint) / batch 1 (lowest checkpoint) "
                "(checkpoints benched on which CPU)")


def read_result(path, keys=RUN_KEYS):
    """One result file, train.py's results.json (or tools/bench.py --json's, keys=BENCH_KEYS), with what the
    tables and the report read checked first: a file that is not one raises ValueError naming it."""
    writer = "tools/bench.py --json" if keys is BENCH_KEYS else "train.py"
    try:
        with open(path) as f:
            res = json.load(f)
        missing = [k for k in keys if k not in res]
    except (ValueError, TypeError) as e:   # empty, truncated, or not an object
        missing = [f"({type(e).__name__}: {e})"]
    if missing:
        raise ValueError(f"{path} is not a results file of {writer} (no {', '.join(missing)}): "
                         "pass the files of finished runs")
    if keys is RUN_KEYS and (None in (res["metrics"], res["kept_fraction_per_layer"], res["flops_speedup_no_padding"])
                             or None in res["metrics"].values()):
        raise ValueError(f"{path}: the run has missing or non-finite numbers (a NaN run?): "
                         "pass the files of finished runs")
    return res


def _mean_std(xs):
    if not xs:
        return "", None
    m = statistics.mean(xs)
    return (f"{m:.1f}" if len(xs) == 1 else f"{m:.1f} ± {statistics.stdev(xs):.1f}"), m


def _speedup_mean(runs):
    """The runs' mean no-padding FLOPs speedup, "1.52x ± 0.01" (the spread over two runs or more)."""
    sp = [r["flops_speedup_no_padding"] for r in runs]
    return f"{statistics.mean(sp):.2f}x" + (f" ± {statistics.stdev(sp):.2f}" if len(sp) > 1 else "")


def _kept_means(runs):
    """The runs' mean fraction of tokens kept entering each layer, as "1.00 0.87 ..."."""
    return " ".join(f"{statistics.mean(k):.2f}" for k in zip(*[r["kept_fraction_per_layer"] for r in runs]))


def _in_glue_order(runs):
    """The tasks of glue_runs' keys, in the paper's order (others after)."""
    return sorted({t for t, _ in runs}, key=lambda t: GLUE_ORDER.index(t) if t in GLUE_ORDER else 99)


def glue_runs(folder):
    """{(task, kind): [results, ...]} from the result files, with each one's bench rows attached."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        m = RESULT_NAME.search(os.path.basename(path))
        if not m:
            continue
        runs.setdefault((m["task"], m["kind"]), []).append(read_run(path))
    return runs


def read_run(path):
    """A result file with, where the folder's bench/ holds a tools/bench.py --json file of the same name
    (its checkpoint benched), that file's rows by batch size ("bench") and CPU ("bench_device")."""
    res = read_result(path)
    bench = os.path.join(os.path.dirname(path), "bench", os.path.basename(path))
    if os.path.isfile(bench):
        b = read_result(bench, BENCH_KEYS)
        res["bench"] = {row["batch"]: row for row in b["rows"]}
        res["bench_device"] = b["device_name"]
    return res


def glue_table(folder):
    """The markdown table of every task with results, means (± std over seeds, n = seeds)."""
    runs = glue_runs(folder)
    head = ("| task | metric | baseline | Transkimmer | difference | seeds | epochs | trained on (runs) "
            f"| FLOPs speedup no padding / sequence | tokens kept entering each layer | {BENCH_COLUMN} "
            "| paper BERT-base (baseline → Transkimmer, speedup) | paper DistilBERT + Transkimmer (vs DistilBERT) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    speed, close = {}, []   # each task's mean no-padding speedup; the tasks at most a point below their baseline
    for task in _in_glue_order(runs):
        base, tk = runs.get((task, "baseline"), []), runs.get((task, "transkimmer"), [])
        metric = (base or tk)[0]["metric_names"][0]
        score = lambda rs: [100 * r["metrics"][metric] for r in rs]
        b_txt, b = _mean_std(score(base))
        t_txt, t = _mean_std(score(tk))
        diff = f"{t - b:+.1f}" if b is not None and t is not None else ""
        no_pad = [r["flops_speedup_no_padding"] for r in tk]
        seq = [r["flops_speedup_sequence"] for r in tk]
        kept = _kept_means(tk)
        measured = bench_cell(tk)
        devices = [device_kind(r) for r in base + tk]
        trained_on = ", ".join(f"{d} {devices.count(d)}" for d in sorted(set(devices)))
        if no_pad:
            speed[task] = statistics.mean(no_pad)
            if b is not None and t - b >= -1.0 and task != "wnli":
                close.append(task)
        paper = lambda d: f"{d[task][0]:.1f} → {d[task][1]:.1f}, {d[task][2]:.2f}x" if task in d else ""
        epochs = ", ".join(sorted({str(r["args"]["max_steps"]) + " steps" if r["args"].get("max_steps") else
                                   str(r["args"]["epochs"]) for r in base + tk}))
        lines.append(f"| {task} | {metric} | {b_txt} | {t_txt} | {diff} | {len(base)} / {len(tk)} | {epochs} | {trained_on} | "
                     + (f"{statistics.mean(no_pad):.2f}x / {statistics.mean(seq):.2f}x" if no_pad else "")
                     + f" | {kept} | {measured} | {paper(PAPER_BERT)} | {paper(PAPER_DISTILBERT)} |")
    # The average over every task, and (where some task is not) over those at most a point below their
    # baseline, WNLI aside: a task skimmed to [CLS] while it learns little lifts the first. WNLI's dev set
    # is adversarial (neither row learns it; BERT's own GLUE average leaves it out), so a model that
    # predicts the majority class there at any skim "keeps its score".
    for name, tasks in [("average", list(speed)), (f"average, at most a point down, WNLI aside ({', '.join(close)})", close)]:
        if tasks and (name == "average" or len(tasks) < len(speed)):
            lines.append(f"| {name} | | | | | | | | {statistics.mean(speed[t] for t in tasks):.2f}x ({len(tasks)} tasks) "
                         f"| | | {_paper_mean(PAPER_BERT, tasks)} | {_paper_mean(PAPER_DISTILBERT, tasks)} |")
    return "\n".join(lines) + "\n"


def _paper_mean(paper, tasks):
    """The paper's mean speedup (Table 3) over those of `tasks` it reports."""
    known = [paper[t][2] for t in tasks if t in paper]
    return f"{statistics.mean(known):.2f}x" if known else ""


def batch1_table(folder):
    """Where batch-1 time goes (tools/bench.py --split on each task's Transkimmer checkpoints, means over
    seeds): speedups against the dense layers of the layers alone on the kept tokens, with the
    predictors, and of the real pruned encoder; then the whole model's, as in the GLUE table; and,
    where benched, the same two for the classification path (fast/classify.py)."""
    runs = glue_runs(folder)
    per_task = [(task, [r["bench"][1] for r in runs.get((task, "transkimmer"), []) if 1 in r.get("bench", {})
                        and "split" in r["bench"][1]]) for task in _in_glue_order(runs)]
    fast = any("classify" in r["split"] for _, rows in per_task for r in rows)
    lines = ["| task | FLOPs speedup, batch 1 | layers alone on the kept tokens | + predictors | pruned encoder "
             "| whole model (measured) |" + (" classification path: encoder | whole model |" if fast else ""),
             "|---|---|---|---|---|---|" + ("---|---|" if fast else "")]
    for task, rows in per_task:
        if rows:
            mean = lambda f: f"{statistics.mean(f(r) for r in rows):.2f}x"
            line = (f"| {task} | {mean(lambda r: r['flops'])} | {mean(lambda r: r['split']['kept_tokens_only'])} "
                    f"| {mean(lambda r: r['split']['with_predictors'])} | {mean(lambda r: r['split']['pruned'])} "
                    f"| {mean(lambda r: r['measured'])} |")
            if fast:
                both = [r for r in rows if "classify" in r["split"]]
                line += (f" {statistics.mean(r['split']['classify'] for r in both):.2f}x | "
                         f"{statistics.mean(r['classify_measured'] for r in both):.2f}x ({len(both)}) |" if both else " | |")
            lines.append(line)
    return "\n".join(lines) + "\n"


def rate(lr):
    """A learning rate as people write them: 1e-04, 2e-05, 2.5e-05."""
    return f"{lr:.1e}".replace(".0e", "e")


def device_kind(r):
    """The kind of device a run trained on: "cpu", "cuda" (for "cuda:1" too)."""
    return r["args"]["device"].split(":")[0]


def train_time(r):
    """How long a run trained, and on what: "36 min, cpu", "25 s, cuda"."""
    t = r["train_seconds"]
    return (f"{t / 60:.0f} min" if t >= 120 else f"{t:.0f} s") + f", {device_kind(r)}"


def ablation_table(folder):
    """The README's recipe ablation table (and the baseline's lr grid): one row per result file
    (train.py's results.json, named <task>-<steps>-<what>.json), with the settings that make the recipe."""
    head = ("| run | model | tau | lr | predictor lr | lambda delay + ramp | metric | FLOPs speedup no padding / sequence "
            "| tokens kept entering each layer | train time, device |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    runs = [(path, read_result(path)) for path in glob.glob(os.path.join(folder, "*.json"))]
    # per task: the baseline first, then by learning rate, then by name
    for path, r in sorted(runs, key=lambda pr: (pr[1]["task"], not pr[1]["args"]["baseline"], pr[1]["args"]["lr"], pr[0])):
        a, metric = r["args"], r["metric_names"][0]
        if a["baseline"]:
            model, tau, plr, warm = "plain BERT", "", "", ""
        else:
            held = "constant" if a.get("predictor_lr_decay") is False else "decayed"   # older runs: decayed
            model, tau, plr = "Transkimmer", f"{a['tau']:g}", f"{rate(a['predictor_lr'])}, {held}"
            warm = f"{a.get('skim_delay', 0.0):.2g} + {a.get('skim_warmup', 0.0):.2g}"
        kept = " ".join(f"{k:.2f}" for k in r["kept_fraction_per_layer"])
        lines.append(f"| {os.path.basename(path)[:-5]} | {model} | {tau} | {rate(a['lr'])} | {plr} | {warm} "
                     f"| {metric} {100 * r['metrics'][metric]:.1f} | {r['flops_speedup_no_padding']:.2f}x / "
                     f"{r['flops_speedup_sequence']:.2f}x | {kept} | {train_time(r)} |")
    return "\n".join(lines) + "\n"


def speed_table(folder):
    """The README's speed table: one row per batch size of each tools/bench.py --json file in the folder,
    then what else each bench measured (our BERT against Hugging Face's, training throughput)."""
    head = ("| run | skimmed | task | device, threads | batch | kept | FLOPs speedup (as executed) | measured speedup "
            "| realised (measured / FLOPs) | dense tokens/s | pruned tokens/s | CUDA graphs: pruned / dense, both graphed |")
    lines, extra = [head, "|" + "---|" * (head.count("|") - 1)], []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        b = read_result(path, BENCH_KEYS)
        name = os.path.basename(path)[:-5]
        what = (f"trained: {b['checkpoint']}" if b["checkpoint"] else
                f"{b['skim_fraction']:.0%} of tokens before layer {b['skim_layer']}, no training")
        for r in b["rows"]:
            lines.append(f"| {name} | {what} | {b['task']} | {b['device_name']}, "
                         f"{b['threads']} | {r['batch']} | {r['kept']:.2f} | {r['flops']:.2f}x | {r['measured']:.2f}x "
                         f"| {r['realised']:.2f} | {r['dense_tokens_per_s']:.0f} | {r['pruned_tokens_per_s']:.0f} | "
                         + (f"{r['graphed_measured']:.2f}x (bucket {r['graph_bucket']}) |" if "graphed_measured" in r else "- |"))
            if "classify_measured" in r:
                extra.append(f"\n{name}, batch {r['batch']}, the classification path (fast/classify.py) timed beside: "
                             f"{r['classify_measured']:.2f}x, {r['classify_realised']:.2f} of FLOPs.")
            if "packed_measured" in r:
                extra.append(f"\n{name}, batch {r['batch']}, packed tokens (fast/packed.py): the pruned model "
                             f"{r['packed_measured']:.2f}x the packed dense one ({r['packed_realised']:.2f} of its "
                             f"no-padding FLOPs speedup, {r.get('packed_flops', float('nan')):.2f}x), "
                             f"the packed dense {r['dense_packed_speedup']:.2f}x the padded dense.")
        if b.get("reference"):
            extra.append(f"\n{name}, our dense BERT against Hugging Face `BertModel` ({b['reference'][0]['attention']} "
                         "attention), same weights, reference seconds / ours: " + ", ".join(
                             f"batch {r['batch']} {r['reference_s'] / r['ours_s']:.2f}x" for r in b["reference"]) + ".")
        if b.get("training"):
            extra.append(f"\n{name}, training step (forward, backward, AdamW) at batch 32, examples/s: " + ", ".join(
                f"{k} {v:.1f}" for k, v in b["training"].items()) + ".")
    return "\n".join(lines + extra) + "\n"


def sweep_table(folder):
    """One row per setting of a sweep folder (result files named <name>-seed<N>.json): the runs of
    one setting (its seeds) averaged, mean ± std, with the device(s) they trained on."""
    groups = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        name = re.sub(r"-seed\d+$", "", os.path.basename(path)[:-5])
        groups.setdefault(name, []).append(read_run(path))
    benched = any("bench" in r for runs in groups.values() for r in runs)   # (a column only where the folder has bench/)
    head = ("| setting | lambda | runs (seeds) | trained on | metric | FLOPs speedup no padding "
            "| tokens kept entering each layer |" + f" {BENCH_COLUMN} |" * benched)
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, runs in groups.items():
        metric, a = runs[0]["metric_names"][0], runs[0]["args"]
        score, _ = _mean_std([100 * r["metrics"][metric] for r in runs])
        flops = _speedup_mean(runs)
        kept = _kept_means(runs)
        seeds = ", ".join(str(r["args"]["seed"]) for r in runs)
        devices = ", ".join(sorted({device_kind(r) for r in runs}))
        setting = "" if a["baseline"] else format(a["skim_coefficient"], "g") if not a.get("target_speedup") else \
            f"none: target {a['target_speedup']:g}x, rate {a.get('budget_rate', 0.5):g}"   # (files before --budget-rate: 0.5)
        lines.append(f"| {name} | {setting} | {len(runs)} ({seeds}) "
                     f"| {devices} | {metric} {score} | {flops} | {kept} |" + f" {bench_cell(runs)} |" * benched)
    return "\n".join(lines) + "\n"


TARGET_NAME = re.compile(r"(?P<task>[a-z0-9]+)-target(?P<target>[0-9.]+)(-[a-z-]+)?-seed(?P<seed>\d+)\.json$")


def target_label(args):
    """A --target-speedup run's setting, as the target table and Fig. 3 name it: the speed asked and how
    it was distilled ("target 2x", "target 2x + teacher", "target 2x + teacher, layers")."""
    return (f"target {args['target_speedup']:g}x" + (" + teacher" if args.get("teacher") else "")
            + (", layers" if args.get("distill_layers") else ""))


def target_table(folder, glue_folder):
    """The table at fixed speed (docs/target-speedup.md): per task, the baseline and the defaults (lambda) of glue_folder
    (results/glue), then each --target-speedup setting of `folder` (files <task>-target<S>[-teacher...]-seed<N>.json),
    means ± std over seeds, the speedup reached against the one asked, and the paper's DistilBERT row.
    Below it, the command of each setting, read from its first run's record (seeds: the others')."""
    settings = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        m = TARGET_NAME.search(os.path.basename(path))
        if m:
            run = read_run(path)
            settings.setdefault((m["task"], float(m["target"]), target_label(run["args"])), []).append(run)
    glue = glue_runs(glue_folder)
    head = ("| task | setting | runs (seeds) | trained on | metric | difference to the baseline "
            "| FLOPs speedup no padding (asked) | before calibration: metric, speedup | tokens kept entering each layer |")
    lines, commands = [head, "|" + "---|" * (head.count("|") - 1)], []
    for task in _in_glue_order({(t, None) for t, _, _ in settings}):
        base = glue.get((task, "baseline"), [])
        metric = (base or next(v for k, v in settings.items() if k[0] == task))[0]["metric_names"][0]
        score = lambda rs: [100 * r["metrics"][metric] for r in rs]
        b = statistics.mean(score(base)) if base else None
        rows = [("baseline (results/glue)", base, None), ("defaults, lambda (results/glue)", glue.get((task, "transkimmer"), []), None)]
        rows += [(label, runs, t) for (tk, t, label), runs in sorted(settings.items()) if tk == task]
        for name, runs, asked in rows:
            if not runs:
                continue
            txt, mean = _mean_std(score(runs))
            reached = _speedup_mean(runs)
            seeds = ", ".join(str(r["args"]["seed"]) for r in runs)
            devices = ", ".join(sorted({device_kind(r) for r in runs}))
            diff = f"{mean - b:+.1f}" if b is not None and name != rows[0][0] else ""
            lines.append(f"| {task} | {name} | {len(runs)} ({seeds}) | {devices} | {metric} {txt} | {diff} | {reached}"
                         + (f" ({asked:g}x)" if asked else "") + f" | {_before_calibration(runs, metric)} | {_kept_means(runs)} |")
            if asked:   # (a run trained before train.py calibrated: tools/calibrate.py's command after it)
                after = runs[0].get("calibrated_by")
                commands.append(f"- {task}, {name}, seeds {seeds}: `{command_of(runs[0])}`"
                                + (f", then `{command_of(dict(runs[0], machine=after))}`" if after else ""))
        if task in PAPER_DISTILBERT:
            p = PAPER_DISTILBERT[task]
            lines.append(f"| {task} | paper: DistilBERT + Transkimmer vs DistilBERT | | | {p[1]:.1f} | {p[1] - p[0]:+.1f} "
                         f"| {p[2]:.2f}x | | |")
    return "\n".join(lines) + "\n\nCommands, from each setting's first result file (`$M` the model, `$D` the data):\n\n" \
        + "\n".join(commands) + "\n"


def _before_calibration(runs, metric):
    """The runs' evaluation before the skim logits were shifted to the speed asked (extensions/budget.py,
    calibrate; the history's evaluation before the last), mean metric and speedup; "" for runs without."""
    before = [r["history"][-2] for r in runs if (r.get("budget") or {}).get("calibration")]
    if not before:
        return ""
    return f"{statistics.mean(100 * b['metrics'][metric] for b in before):.1f}, {_speedup_mean(before)}"


def from_checkpoint(args):
    """Whether a run started from a train.py checkpoint (the fine-tuned baseline), not the pretrained model."""
    return os.path.basename(os.path.normpath(args.get("model") or "")) == "checkpoint"


def command_of(run):
    """The command a result file records (machine.command), with its model and data folders as $M and $D
    (a model that is a train.py checkpoint, a fine-tuned baseline, keeps its path: $M is the pretrained one),
    as it is run today."""
    cmd, a = run.get("machine", {}).get("command"), run["args"]
    if not cmd:
        return "(not recorded; the file's args hold every setting)"
    model = None if from_checkpoint(a) else a.get("model")
    for value, name in [(model, "$M"), (a.get("data_dir"), "$D")]:
        if value:
            cmd = cmd.replace(value, name)
    if a.get("target_speedup") and model and "one_stage" not in a and " --eval-only" not in cmd:
        cmd = cmd.replace(" --target-speedup ", " --one-stage --target-speedup ", 1)   # (made before the two-stage
    return cmd   # recipe was --target-speedup's default: the same run today)


def bench_cell(runs):
    """The runs' benched checkpoints (read_run's "bench"), for BENCH_COLUMN: the mean measured speedup
    at batch 32 and the mean (and lowest) fraction of the FLOPs saving it realises, the mean (and
    lowest) at batch 1, and how many, benched on which CPU. The targets hold per checkpoint, hence
    the lowest. "" when no run has both batch sizes benched."""
    benched = [r["bench"] for r in runs if "bench" in r]
    if not benched or not all(bs in bn for bn in benched for bs in (32, 1)):
        return ""
    b32, b1 = [bn[32] for bn in benched], [bn[1] for bn in benched]
    devices = ", ".join(sorted({r["bench_device"] for r in runs if "bench" in r}))
    return (f"{statistics.mean(r['measured'] for r in b32):.2f}x, {statistics.mean(r['realised'] for r in b32):.2f} "
            f"of FLOPs (lowest {min(r['realised'] for r in b32):.2f}) / {statistics.mean(r['measured'] for r in b1):.2f}x "
            f"(lowest {min(r['measured'] for r in b1):.2f}x) ({len(benched)} on {devices})")


def replace_between(path, blocks):
    """Replace what stands between <!-- marker --> and <!-- /marker --> in a file, for each
    (marker, text) of blocks: every marker is checked first, then the file is written once,
    atomically (a missing block leaves the file as it was)."""
    with open(path) as f:
        doc = f.read()
    missing = [m for m, _ in blocks if f"<!-- {m} -->" not in doc or f"<!-- /{m} -->" not in doc]
    if missing:
        raise SystemExit(f"error: {path} has no " + ", ".join(f"<!-- {m} --> ... <!-- /{m} -->" for m in missing)
                         + " block to fill: add the markers where the table goes")
    for marker, text in blocks:
        start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
        before, rest = doc.split(start, 1)
        doc = before + start + "\n" + text + rest[rest.index(end):]
    atomic_write_text(path, doc)
