"""
--save-every N and --resume: a killed run continues where it stopped, to the same result.

Every N optimiser steps training writes <out-dir>/training-state.pt, atomically: the weights, the
optimiser's and the schedule's states, the step, lambda's start (--skim-after-loss-drop), the budget's
multipliers (--target-speedup), the random number generators, the evaluations so far and the run's
settings. --resume reads it back (the settings must be the same) and skips the batches already
trained on: the data's order is a function of (seed, epoch) alone (data.batches). So on the same
machine the resumed run ends with the weights and results.json of a run never killed, bit for bit
on the CPU (tests/test_resume.py). A finished run removes the file: it has nothing left to resume.
Under torchrun the first process saves its own generators for all: a resumed run continues, but the
other processes' dropout and Gumbel noise differ from the run never killed.
"""

import os

import torch

from cli.errors import BadInput
from cli.files import atomic_write

STATE = "training-state.pt"
MAY_DIFFER = ("resume", "overwrite", "save_every", "log_every")   # what a resumed run may change


def state_path(out_dir):
    return os.path.join(out_dir, STATE)


def save(out_dir, args, step, model, opt, sched, skim_start, budget, history):
    """The training state after `step` optimiser steps, written atomically (a kill leaves the last one)."""
    state = dict(args=args, step=step, model=model.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(),
                 skim_start=dict(first=list(skim_start.first), last=list(skim_start.last), start=skim_start.start),
                 budget=budget.state_dict() if budget else None, history=history, rng=torch.get_rng_state(),
                 cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])
    atomic_write(state_path(out_dir), lambda tmp: torch.save(state, tmp))


def load(out_dir, args, model, opt, sched, skim_start, budget, log=print):
    """Put a saved training state back; returns (step, history). Refused, in one line, when the
    state was saved by a run with other settings: it would not continue that run."""
    path = state_path(out_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as e:
        raise BadInput(f"--resume: {path} cannot be read ({e}): start the run again without --resume") from None
    changed = [k for k in args if k not in MAY_DIFFER and state["args"].get(k) != args[k]]
    if changed:
        was = ", ".join(f"--{k.replace('_', '-')} {state['args'].get(k)} (now {args[k]})" for k in changed)
        raise BadInput(f"--resume: {path} was saved by a run with {was}: resume with that run's settings")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    skim_start.first, skim_start.start = state["skim_start"]["first"], state["skim_start"]["start"]
    skim_start.last.extend(state["skim_start"]["last"])
    if budget:
        budget.load_state_dict(state["budget"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    log(f"resumed at step {state['step']}")
    return state["step"], state["history"]


def clear(out_dir):
    """Remove the training state: the run finished, or a new run (--overwrite) replaces the one that saved it."""
    if os.path.exists(state_path(out_dir)):
        os.remove(state_path(out_dir))
