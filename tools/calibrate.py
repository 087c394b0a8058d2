"""
Calibrate a trained Transkimmer after the fact: shift its predictors' skim logits so that inference's
decisions reach a FLOPs speedup on its training set (extensions/budget.py, calibrate), evaluate it,
and write the record train.py writes at the end of a --target-speedup run.

    # a --target-speedup run trained before train.py calibrated, to the speed it was asked for
    python tools/calibrate.py --run out/mrpc-target2 --out-dir out/mrpc-target2-calibrated
    # any Transkimmer run (lambda or target) to another speed, without training again
    python tools/calibrate.py --run out/mrpc-target2 --target-speedup 2.5 --out-dir out/mrpc-at-2.5x

--run is a folder train.py wrote (results.json and checkpoint/); it is only read. The data comes from
where the run read it, or --data-dir. --out-dir (new) gets checkpoint/ (the shifted model) and
results.json: the run's record with the calibrated evaluation on top and appended to its history, the
calibration under "budget" (with the speed asked), and this command under "calibrated_by".
"""

import argparse
import json
import os
import sys
from dataclasses import fields, replace

if __package__ in (None, ""):   # run as `python tools/NAME.py`: the project's modules are one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

import train
from cli.args import check_device, number
from storage.provenance import machine
from cli.errors import BadInput, run as run_main
from storage.files import claim, unwritable, write_json
from cli.progress import log_eval
from extensions.budget import Budget
from storage.files import save_checkpoint
from load_weights import load_model
from tasks import classes_of, evaluate_dev, metric_names, read_splits


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a folder train.py wrote: results.json and checkpoint/")
    p.add_argument("--out-dir", required=True, help="a new folder for the calibrated checkpoint/ and results.json")
    p.add_argument("--target-speedup", type=number(float, 1, 50, low_open=True),
                   help="the FLOPs speedup (no padding) to reach, as train.py takes it; default: the run's own")
    p.add_argument("--data-dir", help="the GLUE layout the run read; default: the run's --data-dir")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=number(int, 1, 1024), help="CPU threads (default: torch's choice)")
    a = p.parse_args(argv)
    check_device(p, a.device)
    if os.path.exists(a.out_dir):
        p.error(f"--out-dir {a.out_dir} exists: name a new folder (nothing there is overwritten)")
    if unwritable(a.out_dir):
        p.error(f"--out-dir {a.out_dir}: {unwritable(a.out_dir)}; pass a folder you can write to")
    return a


def read_run(folder, speedup):
    """The run's record and the speed to reach; refused in one line when there is nothing to calibrate."""
    path, checkpoint = os.path.join(folder, "results.json"), os.path.join(folder, "checkpoint")
    if not (os.path.isfile(path) and os.path.isdir(checkpoint)):
        raise BadInput(f"--run {folder}: no results.json and checkpoint/ in it: name a folder train.py wrote")
    try:
        with open(path) as f:
            run = json.load(f)
        run["args"]["baseline"], run["history"], run["step"]
    except (ValueError, KeyError, TypeError) as e:   # cut short, or not train.py's record
        raise BadInput(f"--run {folder}: {path} is not a whole results.json of train.py ({type(e).__name__}: {e}): "
                       "name the folder of a finished run") from None
    if run["args"]["baseline"]:
        raise BadInput(f"--run {folder} is a --baseline run: it has no predictors to calibrate")
    speedup = speedup or run["args"].get("target_speedup")
    if not speedup:
        raise BadInput(f"--run {folder} was trained with lambda, not to a speed: pass --target-speedup S")
    return run, checkpoint, speedup


def main(argv=None):
    a = parse(argv)
    run, checkpoint, speedup = read_run(a.run, a.target_speedup)
    claim(a.out_dir)   # (two calibrations into one new folder at once: the second is refused)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    unset = {f.name: None for f in fields(train.TrainConfig)}   # (settings a record predates: None)
    cfg = replace(train.TrainConfig(**{**unset, **run["args"]}), data_dir=a.data_dir or run["args"]["data_dir"], device=a.device)
    model = load_model(checkpoint).to(device)
    splits = read_splits(cfg.task, cfg.data_dir, cfg.cache_dir, True, (cfg.train_file, cfg.dev_file),
                         (cfg.text_column, cfg.text_pair_column, cfg.label_column), classes_of(model.config), cfg.task_type)
    tokenizer, (dev, train_examples, classes) = train.encode_splits(cfg, checkpoint, model, splits)
    budget = Budget(speedup, model.config, eval_lengths=[len(ids) for ids, _ in next(iter(dev.values())).examples])
    budget.calibrate(model, train_examples.examples, device, print)
    result = evaluate_dev(model, dev, metric_names(cfg.task, classes), device, cfg.max_length, cfg.eval_batch_size, tokenizer)
    result.pop("predictions")
    result.update(classes=classes, epoch=run["epoch"], step=run["step"], train_seconds=run["train_seconds"],
                  budget=dict(run.get("budget", {}), asked=speedup, calibration=budget.calibration))
    record = dict(run, **result, history=run["history"] + [result], calibrated_by=machine(a.device))
    log_eval(print, run["epoch"], result)
    save_checkpoint(model, checkpoint, os.path.join(a.out_dir, "checkpoint"), record)
    write_json(os.path.join(a.out_dir, "results.json"), record)
    return record


if __name__ == "__main__":
    run_main(main)
