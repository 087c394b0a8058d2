"""
--save-every N and --resume: a killed run continues where it stopped, to the same result.

Every N optimiser steps training writes <out-dir>/training-state.pt, atomically: the weights, the
optimiser's and the lr schedule's states, the step, the skim schedule's (lambda's start with
--skim-after-loss-drop), the loss terms' (the budget's multipliers), the random number generators, the evaluations so far and the run's
settings. --resume reads it back (the settings must be the same) and skips the batches already
trained on: the data's order is a function of (seed, epoch) alone (data.batches). So on the same
machine the resumed run ends with the weights and results.json of a run never killed, bit for bit
on the CPU (tests/test_resume.py), whenever the kill came: a resumed run starts in the epoch of the
last step trained (at an epoch's end, that epoch again, all its batches skipped, so that its
evaluation, which the state saved before it cannot hold, is made), and never trains past the last
step. A finished run removes the file: it has nothing left to resume.
Under torchrun the first process saves its own generators for all: a resumed run continues, but the
other processes' dropout and Gumbel noise differ from the run never killed.
"""

import glob
import hashlib
import io
import json
import os
from dataclasses import asdict

import torch

from cli.errors import BadInput
from storage.files import atomic_write, restart_log

STATE = "training-state.pt"
MAY_DIFFER = ("resume", "overwrite", "save_every", "log_every", "out_dir")   # what a resumed run may change (the
# folder moved as a whole: its state continues the run wherever it is)
MAGIC = b"transkimmer training state v2\n"   # then the SHA-256 of the rest, then torch.save's bytes
KEYS = ("args", "step", "model", "opt", "sched", "schedule", "terms", "history", "rng", "cuda_rng")


def state_path(out_dir):
    return os.path.join(out_dir, STATE)


def save(out_dir, args, step, model, opt, sched, schedule, terms, history):
    """The training state after `step` optimiser steps, written atomically (a kill leaves the last one):
    the skim schedule's and each loss term's (extensions/) with the model's and the optimiser's."""
    state = dict(args=args, step=step, model=model.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(),
                 schedule=schedule.state_dict(), terms=[t.state_dict() for t in terms], history=history, rng=torch.get_rng_state(),
                 cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(MAGIC + hashlib.sha256(data).digest() + data)
    atomic_write(state_path(out_dir), write)


def read(path):
    """The state in a file save wrote, checked: a damaged, foreign or older file is refused in one line."""
    again = "start the run again with --overwrite (its training state cannot continue it)"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BadInput(f"--resume: {path} cannot be read ({e.strerror}): {again}") from None
    if not raw.startswith(MAGIC):
        raise BadInput(f"--resume: {path} is not a training state of this version of train.py (another file, or an "
                       f"older format): {again}")
    digest, data = raw[len(MAGIC):len(MAGIC) + 32], raw[len(MAGIC) + 32:]
    if hashlib.sha256(data).digest() != digest:
        raise BadInput(f"--resume: {path} is damaged (its checksum does not match: cut short or overwritten): {again}")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or any(k not in state for k in KEYS):
        raise BadInput(f"--resume: {path} does not hold a training state: {again}")
    return state


def load(out_dir, args, model, opt, sched, schedule, terms, log=print):
    """Put a saved training state back; returns (step, history). Refused, in one line, when the
    state was saved by a run with other settings: it would not continue that run."""
    path = state_path(out_dir)
    state = read(path)
    changed = [k for k in args if k not in MAY_DIFFER and state["args"].get(k) != args[k]]
    if changed:
        was = ", ".join(f"--{k.replace('_', '-')} {state['args'].get(k)} (now {args[k]})" for k in changed)
        raise BadInput(f"--resume: {path} was saved by a run with {was}: resume with that run's settings")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:   # (the settings matched, so the weights were changed by hand)
        raise BadInput(f"--resume: {path} holds weights of another shape than the model: start the run again "
                       "with --overwrite") from None
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    schedule.load_state_dict(state["schedule"])
    for term, term_state in zip(terms, state["terms"]):
        term.load_state_dict(term_state)
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    restart_log(out_dir, state["step"])
    log(f"resumed at step {state['step']}")
    return state["step"], state["history"]


def start(cfg, model, opt, sched, schedule, terms, total, proc):
    """train.fit's start: continue the killed run in cfg.out_dir (--resume) or start afresh.
    Returns (the step to start at, the evaluations so far); step None: the run had finished."""
    proc.log(f"{total} steps of {cfg.batch_size} examples" + (f" x {proc.world} processes" if proc.world > 1 else ""))
    if not cfg.resume:
        if proc.rank == 0:
            clear(cfg.out_dir, fresh=True)   # (--overwrite: an earlier run's state and curve are not this one's)
        return 0, []
    step, history = load(cfg.out_dir, asdict(cfg), model, opt, sched, schedule, terms, proc.log)   # (log.jsonl too)
    if finished(cfg.out_dir, step, total, cfg.target_speedup and not cfg.baseline, proc.log):
        clear(cfg.out_dir)
        return None, history
    return step, history


def finished(out_dir, step, total, calibrating, log=print):
    """Whether the run in out_dir, resumed at `step`, had ended (killed only after its last evaluation):
    its results.json is of the last step (and, with --target-speedup, calibrated)."""
    if step < total:
        return False
    try:
        with open(os.path.join(out_dir, "results.json")) as f:
            res = json.load(f)
    except (OSError, ValueError):
        return False
    done = res.get("step") == total and (not calibrating or bool((res.get("budget") or {}).get("calibration")))
    if done:
        log("the run had finished (its results.json is of the last step): nothing to resume")
    return done


def clear(out_dir, fresh=False):
    """Remove the training state, and what a save killed half-way left beside it: the run finished, or a
    new run (--overwrite, fresh) replaces the one that saved it, and its loss curve (cli/progress.py)."""
    for path in [state_path(out_dir)] + glob.glob(os.path.join(out_dir, f".tmp-{STATE}*")):
        if os.path.exists(path):
            os.remove(path)
    if fresh:
        restart_log(out_dir)
