"""
The default training recipe: what makes the predictors learn to skim within an ordinary
fine-tuning run, each piece with the reason it was measured to need (the README's ablation table
gives what removing it costs). train.py uses them at every step.

    skim_coefficient_at(step, total, args, start)   lambda of Eq. 7 at this step (delay, then a ramp)
    SkimStart(total, args)                          when the ramp starts, with --skim-after-loss-drop
    optimizer_for(model, args, total)               AdamW with the backbone's and the predictors' lr schedules
"""

import collections
import math

import torch

from model import is_predictor

PREDICTOR_REACH = 0.08 * 384   # the default predictor lr x the run's steps x the predictor's width (see below)


def default_predictor_lr(steps, width):
    """The predictors' default lr: PREDICTOR_REACH / (steps x width), i.e. 0.08 / steps at width 384
    (MiniLM's hidden size, where it was measured: 2e-4 for 400 steps) and half that at bert-base's 768."""
    return PREDICTOR_REACH / (steps * width)


# The default recipe (its values are train.py's flag defaults). Departure from the paper (tau 0.1,
# one lr of 2e-5, lambda fixed), which never skims: see docs in model.py on tau, and the README's ablation table for what each piece gives.
#   tau = 1              the straight-through gradient is alive within a few logits of the boundary
#   predictor lr         the predictors are new modules that must cross a logit gap of 2 mu0 = 10
#                        within the run. Adam moves each weight by about lr per step whatever the
#                        gradient's size, and the logit sums the moves of the last Linear's K inputs
#                        (K = the predictor's width, H in Eq. 2), so how far it can go is lr x steps
#                        x K: we fix that product (2e-4 x 400 steps at K = 384, measured on SST-2
#                        with MiniLM), so short and long runs, and wider or narrower predictors, get
#                        the same reach. (Measured on CoLA: at K = 64 the unscaled lr never skims, the
#                        scaled one does.) Held constant (see optimizer_for). Tied to the backbone's lr
#                        (5e-5, or 2e-4 decayed with it) they barely move in 400 steps.
#   lambda delay, ramp   lambda is 0 for the first third of the steps (the run fine-tunes as the
#                        baseline does, as LTP and ToP start from a fine-tuned model), then ramps
#                        linearly over the next third. Skimming must not start before the task
#                        is learned: the task gradient through Eq. 4 is what holds useful tokens,
#                        and before it exists the skim loss skims everything (CoLA: all but [CLS]
#                        from layer 1 on, Matthews 0, with a ramp from step 0).
#   lr 5e-5              the top of BERT's own fine-tuning grid; 2e-5 is too slow for short runs
# All are fractions of the run or properties of the predictor, not of the backbone's size.


def skim_coefficient_at(step, total, args, start=None):
    """lambda of Eq. 7 at this step: 0 for the first --skim-delay of the steps (or until `start`, the
    step SkimStart chose; math.inf while it waits), then a linear ramp over the next --skim-warmup
    of the steps, then the task's value (Table 2)."""
    start = args.skim_delay * total if start is None else start
    ramp = args.skim_warmup * total
    if step < start:
        return 0.0
    return args.skim_coefficient * (min(1.0, (step - start) / ramp) if ramp > 0 else 1.0)


class SkimStart:
    """--skim-after-loss-drop D (an option, not the default): lambda's ramp starts at --skim-delay
    of the steps only if the task has been learned by then, else at the first step after it at
    which it has: when the mean task loss of the last W steps has fallen a fraction D below its
    mean over the first W steps (W, a twelfth of the steps). A relative drop, so the same D serves
    a cross-entropy and a squared error, any backbone. Why: the delay's reason ("skimming must not
    start before the task is learned", above) as a measurement, not a fraction of the run; on RTE,
    which MiniLM hardly learns in 3 epochs, the task loss stays near ln 2 for most of the first two
    thirds and lambda 0.8 then skims 94 % of the tokens from layer 1. Measured (README, "CoLA and
    RTE"): it starts RTE's ramp later, but RTE still loses ~90 % of its tokens, and WNLI, whose loss
    never falls, no longer skims; so it is not the default."""

    def __init__(self, total, args):
        self.delay, self.drop = args.skim_delay * total, args.skim_after_loss_drop
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


def optimizer_for(model, args, total):
    """AdamW (no weight decay on biases and LayerNorms) and its schedule: the backbone's lr warms up
    over --warmup and decays linearly to 0; the predictors have their own lr, held constant
    (Departure: they start learning only when lambda rises, a third of the way in, and a decay
    timed for the backbone would leave them little; --predictor-lr-decay gives the paper's)."""
    groups = {}
    for name, p in model.named_parameters():
        groups.setdefault((is_predictor(name), p.ndim >= 2), []).append(p)
    groups = sorted(groups.items())
    opt = torch.optim.AdamW([dict(params=ps, lr=args.predictor_lr if pred else args.lr,
                                  weight_decay=args.weight_decay if decay else 0.0)
                             for (pred, decay), ps in groups], lr=args.lr)
    warm = int(args.warmup * total)
    backbone = lambda s: (s + 1) / max(warm, 1) if s < warm else max(0.0, (total - s) / max(total - warm, 1))
    constant = lambda s: 1.0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, [constant if pred and not args.predictor_lr_decay else backbone for (pred, _), _ in groups])
    return opt, sched
