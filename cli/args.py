"""
Argument types and checks shared by train.py's and tools/bench.py's command lines: a bad value is
argparse's one-line error, given before any work is done.
"""

import argparse
import math
import os
import subprocess
import sys

import torch


class OneLineParser(argparse.ArgumentParser):
    """argparse, whose errors are one line naming the flag and the fix: the usage of a command with
    fifty flags, printed first, would bury it (--help prints it)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: a finite int or float in a range; a bad value is argparse's one-line error."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        show = lambda bound: f"{bound}" if isinstance(bound, int) else f"{bound:g}"
        if low is not None and (v <= low if low_open else v < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {show(low)}, got {text}")
        if high is not None and (v >= high if high_open else v > high):
            raise argparse.ArgumentTypeError(f"must be {'<' if high_open else '<='} {show(high)}, got {text}")
        return v
    return parse


POSITIVE_INT, POSITIVE = number(int, 1), number(float, 0, low_open=True)


def check_device(p, text):
    """--device names cpu, or cuda on a machine that has it."""
    try:
        device = torch.device(text)
    except RuntimeError:
        p.error(f"--device {text!r} is not a device: use cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {text}: this machine has no CUDA GPU (torch {torch.__version__}); use --device cpu")
    if device.type not in ("cpu", "cuda"):
        p.error(f"--device {text}: only cpu and cuda are supported")


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
