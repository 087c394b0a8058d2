"""
Many training runs on one GPU at once, in one call of the device tool (the table at fixed
speed: a MiniLM run takes 1-5 minutes alone on an H100, where the CPUs here take 15-40).

    # here: the pretrained model in fp16 (it loads as fp32) and the tasks' GLUE files, one ignored folder
    python tools/gpu_train.py prepare --model $M --data-dir ../shared/data/glue --tasks cola mrpc stsb --out gpu-train-carry
    python tools/gpu_train.py run --carry gpu-train-carry --out /tmp/gpu-train --cpu   # each kind of run, 2 steps, on the CPU
    # there (the device tool: carry ["gpu-train-carry"], timeout 560 s):
    python3 tools/gpu_train.py run --carry gpu-train-carry --out $OUT --deadline 520
    python3 tools/gpu_train.py run --carry gpu-train-carry --out $OUT --deadline 520 --plan peers   # docs/peers.md's

The plan (--plan target, the default), per task: the teacher (a --baseline run, seed 42), and
--target-speedup 2 and 3 --one-stage (the recipe of docs/target-speedup.md's table), each without and
with the teacher, seeds 42, 43 and 44; all train.py's defaults otherwise. --plan peers: docs/peers.md's
runs, 2x first (seeds 42, 43, 44), then 1.5x and 3x: per seed `--target-speedup 2` (two stages: its
baseline comes back as <task>-baseline-seed<N>.json), attention top-k on that baseline without
retraining, the first k layers (with the seed-42 baseline as teacher too at 2x), truncation, top-k
fine-tuned, and at 1.5x and 3x the second stage alone from the seed's baseline. Up to
--parallel runs share the GPU; a run that needs another's checkpoint starts once that one has
finished. Each finished run's results.json (an --eval-only run's eval-results.json) is written to --out
as <name>.json (the plan's names: <task>-target<S>[-teacher]-seed<N>, the teachers
<task>-baseline-seed42), its log to --out/logs/, and plan.json lists every run with its command, exit
code and wall time. At --deadline seconds the runs still going are stopped
and those not started are skipped (both listed): a stopped run writes nothing to --out.
The runs start from the fp16 copy of the pretrained weights, which rounds them: say so beside them.
"""

import json
import os
import shutil
import subprocess
import sys
import time

if __package__ in (None, ""):   # run as `python tools/NAME.py`: the project's modules are one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cli.errors import BadInput, run as run_main
from tasks import glue
from tools.gpu_bench import carried_mib, fp16_copy, two_steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prepare(model, data_dir, tasks, out):
    """The carry folder: model/ (fp16 weights, config, tokenizer) and glue/ with each task's splits."""
    if os.path.exists(out):
        raise BadInput(f"--out {out} already exists: pass a new folder (it is made whole, then filled)")
    for t in tasks:
        for split in ("train", "dev"):
            if not os.path.isfile(os.path.join(data_dir, glue.layout(t).folder, f"{split}.tsv")):
                raise BadInput(f"--data-dir {data_dir} has no {glue.layout(t).folder}/{split}.tsv: pass the GLUE "
                               f"folder that holds {t}")
    fp16_copy(model, os.path.join(out, "model"))
    for t in tasks:
        folder = glue.layout(t).folder
        shutil.copytree(os.path.join(data_dir, folder), os.path.join(out, "glue", folder),
                        ignore=lambda d, names: [n for n in names if n not in ("train.tsv", "dev.tsv")])
    with open(os.path.join(out, "carry.json"), "w") as f:
        json.dump(dict(tasks=tasks, model=os.path.abspath(model)), f)
    print(f"wrote {out}: {carried_mib(out):.1f} MiB")


def plan(tasks, targets=(2, 3), seeds=(42, 43, 44)):
    """(name, train.py arguments, the name of the run it waits for or None), teachers first; "@NAME/..." in
    the arguments: a folder of the run NAME."""
    runs = [(f"{t}-baseline-seed42", ["--task", t, "--baseline", "--seed", "42"], None) for t in tasks]
    for t in tasks:
        for s in targets:
            for seed in seeds:
                args = ["--task", t, "--target-speedup", str(s), "--one-stage", "--seed", str(seed)]
                runs.append((f"{t}-target{s}-seed{seed}", args, None))
                runs.append((f"{t}-target{s}-teacher-seed{seed}", args + ["--teacher", f"@{t}-baseline-seed42/checkpoint"],
                             f"{t}-baseline-seed42"))
    return runs


def peers_plan(tasks, layers, speeds=(2, 1.5, 3), seeds=(42, 43, 44)):
    """docs/peers.md's runs, as plan's: per speed, seed and task, Transkimmer's default and every peer
    (the first round(layers / S) of the model's `layers`; at 2x also distilled from seed 42's baseline)."""
    runs = []
    for s in speeds:
        for seed in seeds if s == 2 else seeds[:1]:
            for t in tasks:
                base, args, k = f"{t}-target2-seed{seed}", ["--task", t, "--seed", str(seed)], str(max(1, round(layers / s)))
                if s == 2:   # two stages: the seed's baseline, then skimming from it
                    runs.append((base, args + ["--target-speedup", "2"], None))
                    runs += [(f"{t}-topk{r:g}-noretrain-seed{seed}", ["--task", t, "--eval-only", "--checkpoint",
                              f"@{base}/baseline/checkpoint", "--topk-speedup", f"{r:g}"], base) for r in speeds]
                    runs.append((f"{t}-layers{k}-teacher-seed{seed}", args + ["--baseline", "--layers", k, "--teacher",
                                 f"@{t}-target2-seed42/baseline/checkpoint"], f"{t}-target2-seed42"))
                else:        # the second stage alone, from the seed's baseline
                    runs.append((f"{t}-target{s:g}-seed{seed}", args + ["--target-speedup", f"{s:g}", "--model",
                                 f"@{base}/baseline/checkpoint"], base))
                runs += [(f"{t}-layers{k}-seed{seed}", args + ["--baseline", "--layers", k], None),
                         (f"{t}-truncate{s:g}-seed{seed}", args + ["--baseline", "--truncate-speedup", f"{s:g}"], None),
                         (f"{t}-topk{s:g}-seed{seed}", args + ["--baseline", "--topk-speedup", f"{s:g}"], None)]
    return runs


def command(args, carry, work, name, cpu):
    """train.py's command line for a planned run ("@NAME/...": that folder of the run NAME; --model: the
    carried pretrained model unless the run names one; --eval-only runs train nothing)."""
    args = [os.path.join(work, a[1:]) if a.startswith("@") else a for a in args]
    evaluating = "--eval-only" in args
    model = [] if evaluating or "--model" in args else ["--model", os.path.join(carry, "model")]
    device = ["--device", "cpu"] + ([] if evaluating else ["--max-steps", "2", "--batch-size", "8"]) if cpu else \
        ["--device", "cuda"]
    return [sys.executable, "train.py", *args, "--data-dir", os.path.join(carry, "glue"), *model, "--threads", "1",
            *device, "--out-dir", os.path.join(work, name)]


def bring_back(work, name, out):
    """A finished run's record into out as <name>.json (a two-stage run's baseline too, as
    <task>-baseline-seed<N>.json)."""
    for f in ("results.json", "eval-results.json"):
        if os.path.isfile(os.path.join(work, name, f)):
            shutil.copyfile(os.path.join(work, name, f), os.path.join(out, f"{name}.json"))
    if os.path.isfile(os.path.join(work, name, "baseline", "results.json")):
        task, seed = name.split("-")[0], name.split("-")[-1]
        shutil.copyfile(os.path.join(work, name, "baseline", "results.json"), os.path.join(out, f"{task}-baseline-{seed}.json"))


def run(carry, out, parallel, deadline, cpu, which="target"):
    """Runs the plan (`which`: target or peers), `parallel` at a time, until `deadline` seconds; each
    finished run lands in `out`."""
    tasks = json.load(open(os.path.join(carry, "carry.json")))["tasks"]
    work, t0 = os.path.join(out, "runs"), time.time()
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    if which == "target":
        waiting = plan(tasks, *([(2,), (42,)] if cpu else []))
    else:
        with open(os.path.join(carry, "model", "config.json")) as f:
            layers = json.load(f)["num_hidden_layers"]
        waiting = peers_plan(tasks, layers, *([(2,), (42,)] if cpu else []))
    going, done = {}, {}
    while (waiting or going) and time.time() - t0 < deadline:
        for name in [n for n, (proc, _, _) in going.items() if proc.poll() is not None]:
            proc, started, cmd = going.pop(name)
            done[name] = dict(command=" ".join(cmd), exit=proc.returncode, seconds=round(time.time() - started))
            if proc.returncode == 0:
                bring_back(work, name, out)
            print(f"{time.time() - t0:5.0f} s  {name}: exit {proc.returncode}", flush=True)
        for name, args, after in list(waiting):
            if after is not None and done.get(after, {}).get("exit") != 0:
                if after in done:   # its teacher failed: it cannot run
                    waiting.remove((name, args, after))
                    done[name] = dict(command="", exit=f"not started: {after} failed")
                continue
            if len(going) >= parallel:
                break
            waiting.remove((name, args, after))
            cmd = command(args, carry, work, name, cpu)
            with open(os.path.join(out, "logs", f"{name}.log"), "w") as log:
                going[name] = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), time.time(), cmd)
        time.sleep(0.2 if cpu else 2)
    for name, (proc, started, cmd) in going.items():
        proc.kill()
        done[name] = dict(command=" ".join(cmd), exit="stopped at the deadline", seconds=round(time.time() - started))
    done.update({name: dict(command=" ".join(command(a, carry, work, name, cpu)), exit="not started") for name, a, _ in waiting})
    with open(os.path.join(out, "plan.json"), "w") as f:
        json.dump(done, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)   # (checkpoints: not brought back)
    finished = sum(d["exit"] == 0 for d in done.values())
    print(f"{finished} of {len(done)} runs finished in {time.time() - t0:.0f} s; {out}/plan.json")


def main(argv=None):
    p, a, b = two_steps(__doc__, "there: the plan's runs")
    a.add_argument("--model", required=True, help="the pretrained model folder (model.safetensors, config.json, tokenizer)")
    a.add_argument("--data-dir", required=True, help="the GLUE folder")
    a.add_argument("--tasks", nargs="+", default=["cola", "mrpc", "stsb"], choices=sorted(glue.GLUE))
    a.add_argument("--out", default="gpu-train-carry", help="the folder to write (a new one)")
    b.add_argument("--carry", default="gpu-train-carry", help="the folder `prepare` wrote")
    b.add_argument("--out", required=True, help="where the result files, logs and plan.json go")
    b.add_argument("--parallel", type=int, default=14, help="runs at once on the GPU (default 14)")
    b.add_argument("--deadline", type=float, default=520, help="seconds: stop what still runs, skip the rest")
    b.add_argument("--plan", choices=["target", "peers"], default="target", help="docs/target-speedup.md's runs "
                   "(default) or docs/peers.md's")
    b.add_argument("--cpu", action="store_true", help="the check before the GPU: each kind of run of the plan at 2x, "
                   "seed 42, per task, 2 training steps each, on the CPU")
    args = p.parse_args(argv)
    if args.what == "prepare":
        return prepare(args.model, args.data_dir, args.tasks, args.out)
    if not os.path.isfile(os.path.join(args.carry, "carry.json")):
        p.error(f"--carry {args.carry} is not a folder `prepare` wrote: run prepare first")
    if not args.cpu:
        import torch
        if not torch.cuda.is_available():
            p.error("no CUDA GPU here: pass --cpu for the CPU check")
    return run(args.carry, args.out, args.parallel, args.deadline, args.cpu, args.plan)


if __name__ == "__main__":
    run_main(main)
