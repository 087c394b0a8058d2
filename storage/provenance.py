"""
Where and how a result was made: the command, the processes, the project's git commit, the device,
the CPU kernels torch chose and its version, recorded in every results.json and bench file; and
train.py's results.json itself (write_results).
"""

import os
import subprocess
import sys
from dataclasses import asdict

import torch

from storage.files import write_json
from tasks import write_predictions


def device_name(device):
    """What the numbers were measured on: the GPU's name, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "cpu"


def machine(device, command=None):
    """Where and how a result was made, for results.json and bench files: the command (under torchrun,
    as torchrun with its process count: rerun as python alone, it would train with another effective
    batch), the number of processes, the project's git commit, the device's name, the CPU kernels torch
    chose (AVX2 and AVX-512 add in other orders: CPU runs differ between them), torch's version."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    nodes = world // int(os.environ.get("LOCAL_WORLD_SIZE", world))
    launcher = ["python"] if world == 1 else ["torchrun", f"--nproc_per_node {world // nodes}"] + (
        [f"--nnodes {nodes}"] if nodes > 1 else [])
    return dict(command=command or " ".join(launcher + sys.argv), processes=world, commit=commit(),
                device_name=device_name(torch.device(device)),
                cpu_capability=torch.backends.cpu.get_cpu_capability(), torch=torch.__version__)


def commit():
    """The project's git commit, "-dirty" added when tracked files have changes; None outside a checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True, timeout=20)
    try:
        head, changed = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


def write_results(cfg, result, history, save=None):
    """results.json (atomically): the last evaluation, the history of all, and every setting; --eval-only
    writes eval-results.json and never touches a training record. --predictions: the predictions too.
    save(results): the checkpoint first, holding its own copy (a kill between the two leaves a checkpoint
    whose results.json is the evaluation of its weights)."""
    prefix, predictions = "eval-" if cfg.eval_only else "", result.pop("predictions")
    out = dict(task=cfg.task, metric_names=list(result["metrics"]), **result, history=history, args=asdict(cfg),
               machine=machine(cfg.device))
    if save:
        save(out)
    write_json(os.path.join(cfg.out_dir, f"{prefix}results.json"), out)
    for name in ("predictions.json", "predictions.jsonl"):   # (--overwrite: an earlier run's are not this one's)
        if cfg.predictions and name.endswith("l") != isinstance(predictions, dict):
            write_predictions(os.path.join(cfg.out_dir, prefix + name), predictions, result["classes"])
        elif cfg.overwrite and os.path.isfile(os.path.join(cfg.out_dir, prefix + name)):
            os.remove(os.path.join(cfg.out_dir, prefix + name))
