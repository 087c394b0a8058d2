"""
--skim-after-loss-drop D: lambda's ramp waits for the task to be learned (an option, not the default).
"""

import collections
import math

import torch.distributed as dist


class SkimStart:
    """--skim-after-loss-drop D (an option): lambda's ramp starts at `delay` of the steps, or later, once
    the mean task loss of the last W steps (a twelfth of the run) is a fraction D below the first W's.
    Not the default: RTE still loses ~90 % of its tokens, WNLI no longer skims (docs/recipe.md)."""

    def __init__(self, total, delay, drop):
        self.delay, self.drop = delay * total, drop
        self.window = math.ceil(total / 12)
        self.first, self.last = [], collections.deque(maxlen=self.window)
        self.start = math.inf if self.drop else self.delay   # the step lambda's ramp starts at, once known

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
        if step + 1 >= self.delay and mean(self.last) <= (1 - self.drop) * mean(self.first):
            self.start = self.delay if step < self.delay else step + 1   # learned by the delay: its schedule exactly

    def watch(self, step, task_loss, world, log):
        """Feed the step's task loss (a tensor, averaged over processes) to update; say when lambda starts."""
        task_loss = task_loss.detach().float()
        if world > 1:
            dist.all_reduce(task_loss)
        self.update(step, task_loss.item() / world)
        if not self.waiting:
            log(f"step {math.ceil(self.start)}: the task loss has fallen {self.drop:g} below its start; "
                "lambda starts its ramp")
