"""
What a training run prints: a line every --log-every steps (log_step) and one per evaluation (log_eval).
"""

import time

import transkimmer


def log_step(log, step, total, out, loss, b, lr, examples, t0, budget):
    kept = 1.0 if out.keep_masks is None else transkimmer.kept_fraction(
        transkimmer.kept_per_layer(out.keep_masks), b["attention_mask"].sum(1)).mean().item()
    skim, elapsed = 0.0 if out.skim_loss is None else out.skim_loss.item(), time.perf_counter() - t0
    log(f"step {step}/{total} | loss {loss.item():.4f} | task {out.task_loss.item():.4f} | skim loss {skim:.4f} | "
        f"kept {kept:.3f} | lr {lr:.2e} | {examples / elapsed:.1f} ex/s | ETA {(total - step) * elapsed / step / 60:.1f} min" + (budget.status() if budget else ""))


def log_eval(log, epoch, result):
    log(f"eval epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
        + f" | FLOPs speedup {result['flops_speedup_no_padding']:.2f}x (no padding), "
        f"{result['flops_speedup_sequence']:.2f}x (sequence) | kept per layer "
        + " ".join(f"{k:.2f}" for k in result["kept_fraction_per_layer"]) + f" | {result['eval_seconds']:.1f} s"
        + (f" | {result['flops_speedup_full']:.2f}x the full model's FLOPs ({result['peer']['method']})" if result.get("peer") else ""))
