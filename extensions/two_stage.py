"""
--target-speedup's recipe: two stages in one command. First the dense baseline, fine-tuned as
`train.py --baseline` would (same epochs, lr, seed), into <out-dir>/baseline; then Transkimmer trained
to the speed asked, starting from that checkpoint, the budget ramping up from the first step
(--skim-delay 0 --skim-warmup 0.3: the model already knows the task, nothing has to wait for it).

Why (docs/peers.md, "A better recipe"): at 2x, starting from the fine-tuned baseline scored above
starting from the pretrained checkpoint on CoLA, MRPC and STS-B, seed for seed. It costs the
baseline's run, a model a user wants beside the fast one anyway (the table's reference). Given a
fine-tuned checkpoint of the task as --model (a --baseline run's checkpoint/), the second stage runs
alone; --one-stage trains from the pretrained --model in one run (the recipe before).

--resume: a run killed in the first stage continues it (with --save-every, its state is in
<out-dir>/baseline) and then trains the second; killed after it, the second stage starts (or
continues from <out-dir>'s state), the finished baseline kept.
"""

import json
import os
from dataclasses import replace

from data import BadInput
from load_weights import saved_by_train
from storage.resume import STATE

BASELINE = "baseline"   # the first stage's folder, inside --out-dir
SCHEDULE = dict(skim_delay=0.0, skim_warmup=0.3)   # the second stage's, for the flags left at their defaults


def fine_tuned(model):
    """Whether --model is a checkpoint train.py wrote (of this task: train_flags.check_start)."""
    return os.path.isfile(os.path.join(model, "config.json")) and saved_by_train(model)


def recipe_applies(cfg):
    """Whether the run trains to a speed with this recipe (--target-speedup, not --one-stage)."""
    return bool(cfg.target_speedup) and not (cfg.baseline or cfg.eval_only or cfg.one_stage)


def two_stages(cfg):
    """Whether the run is both stages: the recipe, from a pretrained model (not a fine-tuned checkpoint)."""
    return recipe_applies(cfg) and not fine_tuned(cfg.model)


def finished(folder):
    """Whether folder holds a run that ended: its results.json is of the last step, no state is left."""
    try:
        with open(os.path.join(folder, "results.json")) as f:
            res = json.load(f)
        a = res["args"]
        return not os.path.exists(os.path.join(folder, STATE)) and (
            res["step"] == a["max_steps"] if a["max_steps"] else res["epoch"] == a["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def stages(cfg, defaults, skim_settings, log=print):
    """The runs this command makes, in order (each a TrainConfig): cfg itself, or the recipe's second stage
    alone (--model a fine-tuned checkpoint), or both. `defaults`: TrainConfig(), to tell a flag left at its
    default, which the recipe's schedule replaces, from one given; the first stage, a --baseline run, has
    the `skim_settings` (names) at their defaults and lambda at the task's."""
    if not recipe_applies(cfg):
        return [cfg]
    schedule = {k: v for k, v in SCHEDULE.items() if getattr(cfg, k) == getattr(defaults, k)}
    if not two_stages(cfg):
        return [replace(cfg, **schedule)]
    unused = {k: getattr(defaults, k) for k in skim_settings if k != "skim_coefficient"}
    first = replace(cfg, baseline=True, teacher=None, distill_layers=False, predictions=False,
                    out_dir=os.path.join(cfg.out_dir, BASELINE), **unused)
    second = replace(cfg, model=os.path.join(first.out_dir, "checkpoint"), resume=False, **schedule)
    log(f"two stages (--target-speedup's recipe, extensions/two_stage.py): the dense baseline into {first.out_dir}, "
        f"then skimming from it to {cfg.target_speedup:g}x (--one-stage: from --model in one run)")
    if not cfg.resume:
        if any(os.path.exists(os.path.join(first.out_dir, f)) for f in ("results.json", STATE)) and not cfg.overwrite:
            what = "the finished baseline of an earlier run: pass --resume to skim from it," if finished(first.out_dir) \
                else "the baseline of a killed run: pass --resume to continue it," if \
                os.path.exists(os.path.join(first.out_dir, STATE)) else "an unfinished baseline: pass"
            raise BadInput(f"--out-dir {cfg.out_dir}: {first.out_dir} holds {what} --overwrite to train it again, "
                           "or another --out-dir")
        return [first, second]
    if os.path.isfile(os.path.join(cfg.out_dir, STATE)):   # killed in the second stage
        return [replace(second, resume=True)]
    if os.path.isfile(os.path.join(first.out_dir, STATE)):   # killed in the first
        return [first, second]
    if finished(first.out_dir):
        return [second]
    raise BadInput(f"--resume: neither {cfg.out_dir} nor {first.out_dir} holds {STATE} and the baseline in "
                   f"{first.out_dir} did not finish: start the run again without --resume (and with --overwrite)")
