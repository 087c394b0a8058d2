"""
Many training runs on one GPU at once, in one call of the device tool (the table at fixed
speed: a MiniLM run takes 1-5 minutes alone on an H100, where the CPUs here take 15-40).

    # here: the pretrained model in fp16 (it loads as fp32) and the tasks' GLUE files, one ignored folder
    python tools/gpu_train.py prepare --model $M --data-dir ../shared/data/glue --tasks cola mrpc stsb --out gpu-train-carry
    python tools/gpu_train.py run --carry gpu-train-carry --out /tmp/gpu-train --cpu   # each kind of run, 2 steps, on the CPU
    # there (the device tool: carry ["gpu-train-carry"], timeout 560 s):
    python3 tools/gpu_train.py run --carry gpu-train-carry --out $OUT --deadline 520

The plan, per task: the teacher (a --baseline run, seed 42), and --target-speedup 2 and 3 --one-stage
(the recipe of docs/target-speedup.md's table), each without and with the teacher, seeds 42, 43 and 44;
all train.py's defaults otherwise. Up to
--parallel runs share the GPU; a run with the teacher starts once its teacher has finished. Each
finished run's results.json is written to --out as <task>-target<S>[-teacher]-seed<N>.json (the
teachers as <task>-baseline-seed42.json), its log to --out/logs/, and plan.json lists every run
with its command, exit code and wall time. At --deadline seconds the runs still going are stopped
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
    """(name, train.py arguments, the name of the run it waits for or None), teachers first."""
    runs = [(f"{t}-baseline-seed42", ["--task", t, "--baseline", "--seed", "42"], None) for t in tasks]
    for t in tasks:
        for s in targets:
            for seed in seeds:
                args = ["--task", t, "--target-speedup", str(s), "--one-stage", "--seed", str(seed)]
                runs.append((f"{t}-target{s}-seed{seed}", args, None))
                runs.append((f"{t}-target{s}-teacher-seed{seed}", args + ["--teacher", f"{t}-baseline-seed42"],
                             f"{t}-baseline-seed42"))
    return runs


def command(args, carry, work, name, cpu):
    """train.py's command line for a planned run (a --teacher names its run: its checkpoint there)."""
    if "--teacher" in args:
        i = args.index("--teacher") + 1
        args = args[:i] + [os.path.join(work, args[i], "checkpoint")] + args[i + 1:]
    device = ["--device", "cpu", "--max-steps", "2", "--batch-size", "8"] if cpu else ["--device", "cuda"]
    return [sys.executable, "train.py", *args, "--data-dir", os.path.join(carry, "glue"), "--model",
            os.path.join(carry, "model"), "--threads", "1", *device, "--out-dir", os.path.join(work, name)]


def run(carry, out, parallel, deadline, cpu):
    """Runs the plan, `parallel` at a time, until `deadline` seconds; each finished run lands in `out`."""
    tasks = json.load(open(os.path.join(carry, "carry.json")))["tasks"]
    work, t0 = os.path.join(out, "runs"), time.time()
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    waiting, going, done = plan(tasks, *([(2,), (42,)] if cpu else [])), {}, {}
    while (waiting or going) and time.time() - t0 < deadline:
        for name in [n for n, (proc, _, _) in going.items() if proc.poll() is not None]:
            proc, started, cmd = going.pop(name)
            done[name] = dict(command=" ".join(cmd), exit=proc.returncode, seconds=round(time.time() - started))
            if proc.returncode == 0:
                shutil.copyfile(os.path.join(work, name, "results.json"), os.path.join(out, f"{name}.json"))
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
    b.add_argument("--cpu", action="store_true", help="the check before the GPU: a teacher, a target run and one with the "
                   "teacher per task, 2 training steps each, on the CPU")
    args = p.parse_args(argv)
    if args.what == "prepare":
        return prepare(args.model, args.data_dir, args.tasks, args.out)
    if not os.path.isfile(os.path.join(args.carry, "carry.json")):
        p.error(f"--carry {args.carry} is not a folder `prepare` wrote: run prepare first")
    if not args.cpu:
        import torch
        if not torch.cuda.is_available():
            p.error("no CUDA GPU here: pass --cpu for the CPU check")
    return run(args.carry, args.out, args.parallel, args.deadline, args.cpu)


if __name__ == "__main__":
    run_main(main)
