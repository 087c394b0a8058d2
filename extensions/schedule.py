"""
What is asked of skimming at each step: one object for the run (train.fit), saved by --resume.

The ramp goes from 0 to 1: 0 for the first --skim-delay of the steps, then linear over the next
--skim-warmup of them (transkimmer.skim_coefficient_at, the recipe's Departure from the paper). Eq. 7's
lambda is --skim-coefficient times the ramp; a FLOPs budget (budget.py) asks for 1 - ramp (1 - 1/S)
of the dense FLOPs. --skim-after-loss-drop D (an option) moves the ramp's start later, until the
task has been learned.
"""

import collections
import math

import torch.distributed as dist

import transkimmer


class Schedule:
    """The ramp at step t (`at`), starting at `delay` of the `total` steps, or with `drop` (an option)
    later, once the mean task loss of the last W steps (a twelfth of the run) is a fraction `drop` below
    the first W's. Not the default: RTE still loses ~90 % of its tokens, WNLI no longer skims (docs/recipe.md)."""

    def __init__(self, total, delay, warmup, drop=0.0):
        self.total, self.delay, self.warmup, self.drop = total, delay, warmup, drop
        self.window = math.ceil(total / 12)
        self.first, self.last = [], collections.deque(maxlen=self.window)
        self.start = math.inf if drop else delay * total   # the step the ramp starts at, once known
        self.ramp = 0.0

    def at(self, step):
        """The ramp at this step (0 -> 1), kept as .ramp for the loss terms that read it."""
        self.ramp = transkimmer.skim_coefficient_at(step, self.total, 1.0, self.delay, self.warmup, self.start)
        return self.ramp

    @property
    def waiting(self):
        return self.start == math.inf

    def update(self, step, task_loss):
        """Record the task loss (a float) of step `step` (0-based); sets .start when the ramp starts."""
        if not self.waiting:
            return
        if len(self.first) < self.window:
            self.first.append(task_loss)
        self.last.append(task_loss)
        mean = lambda losses: sum(losses) / len(losses)
        delay = self.delay * self.total
        if step + 1 >= delay and mean(self.last) <= (1 - self.drop) * mean(self.first):
            self.start = delay if step < delay else step + 1   # learned by the delay: its schedule exactly

    def watch(self, step, task_loss, world, log):
        """While the start waits on the loss: feed the step's task loss (a tensor, averaged over
        processes; one host sync a step) to update, and say when the ramp starts."""
        if not self.waiting:
            return
        task_loss = task_loss.detach().float()
        if world > 1:
            dist.all_reduce(task_loss)
        self.update(step, task_loss.item() / world)
        if not self.waiting:
            log(f"step {math.ceil(self.start)}: the task loss has fallen {self.drop:g} below its start; "
                "lambda starts its ramp")

    def record(self):
        """results.json's skim_start_step (--skim-after-loss-drop; None: not yet)."""
        return dict(skim_start_step=None if self.waiting else math.ceil(self.start)) if self.drop else {}

    def state_dict(self):
        return dict(first=list(self.first), last=list(self.last), start=self.start)

    def load_state_dict(self, state):
        self.first, self.start = list(state["first"]), state["start"]
        self.last.clear()
        self.last.extend(state["last"])
