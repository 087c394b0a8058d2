"""
Argument types and checks shared by train.py's and tools/bench.py's command lines: a bad value is
argparse's one-line error, given before any work is done.
"""

import argparse
import math

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
