"""
What a training run prints: what it will do (log_start), a line every --log-every steps (log_step) and
one per evaluation (log_eval).
Each step's line is also a line of <out-dir>/log.jsonl (the loss curve, drawn by tools/report.py): a
resumed run continues it from the step it resumes at, a fresh one starts it anew.
"""

import json
import os
import time

import transkimmer
from storage.files import LOG


def log_start(proc, cfg, model, train, dev_sets, classes):
    skim = f"lambda={cfg.skim_coefficient}" if not cfg.target_speedup else f"to {cfg.target_speedup:g}x FLOPs"
    proc.log(f"{cfg.task}: {len(train.examples)} train / {len(next(iter(dev_sets.values())).examples)} dev examples, "
             f"{'baseline BERT' if cfg.baseline else f'Transkimmer {skim} tau={cfg.tau}'}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
             f"parameters, device {proc.device}, {proc.world} process(es); " + (f"classes {', '.join(classes)}" if classes else
             "regression" if model.config.num_labels == 1 else "span QA"))


def log_step(log, step, total, out, loss, b, lr, examples, t0, status, out_dir=None):
    kept = 1.0 if out.keep_masks is None else transkimmer.kept_fraction(
        transkimmer.kept_per_layer(out.keep_masks), b["attention_mask"].sum(1)).mean().item()
    skim, elapsed = 0.0 if out.skim_loss is None else out.skim_loss.item(), time.perf_counter() - t0
    if out_dir:   # (the folder exists: the run claimed it, storage/files.py)
        with open(os.path.join(out_dir, LOG), "a") as f:
            f.write(json.dumps(dict(step=step, loss=loss.item(), task_loss=out.task_loss.item(), skim_loss=skim, kept=kept,
                                    lr=lr, examples_per_s=examples / elapsed)) + "\n")
    log(f"step {step}/{total} | loss {loss.item():.4f} | task {out.task_loss.item():.4f} | skim loss {skim:.4f} | "
        f"kept {kept:.3f} | lr {lr:.2e} | {examples / elapsed:.1f} ex/s | ETA {(total - step) * elapsed / step / 60:.1f} min" + status)


def log_eval(log, epoch, result):
    log(f"eval epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
        + f" | FLOPs speedup {result['flops_speedup_no_padding']:.2f}x (no padding), "
        f"{result['flops_speedup_sequence']:.2f}x (sequence) | kept per layer "
        + " ".join(f"{k:.2f}" for k in result["kept_fraction_per_layer"]) + f" | {result['eval_seconds']:.1f} s"
        + (f" | {result['flops_speedup_full']:.2f}x the full model's FLOPs ({result['peer']['method']})" if result.get("peer") else ""))
