"""
Evaluation with real pruning, in two steps: `predict` runs the model over a dev set (eval mode:
deterministic decisions, tokens really removed) and times it; `summarise` says what that cost: the
fraction of real tokens kept entering each layer and the FLOPs speedups (flops.py). Scoring the
predictions is the task's (tasks.evaluate_dev, which train.py calls after every epoch and for --eval-only).
"""

import time

import torch

import data
import flops
import transkimmer
from model import autocast


@torch.no_grad()
def predict(model, examples, labels, device, batch_size=32, spans=False, record=0):
    """The model over `examples`, timed: each one's prediction (its class or value; spans: its real
    tokens' (n, 2) logits), real length and tokens kept entering each layer; for the first `record`
    (None: all) its token ids and the layers each token entered (L: kept through all), for tools/report.py."""
    cfg = model.eval().config
    preds, lengths, kept, entered = [], [], [], []
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)   # (the wall time is the GPU's too)
    sync()
    t0 = time.perf_counter()
    for b in data.batches(examples, labels, batch_size):
        b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
        with autocast(device):
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        logits = out.logits.float()
        if not torch.isfinite(logits).all():
            raise SystemExit("error: the model's outputs are NaN or inf on the dev set: its weights are broken")
        n = b["attention_mask"].sum(1)
        if spans:   # span QA: each window's per-token logits, without its padding
            preds.extend(l[:k].cpu() for l, k in zip(logits, n.tolist()))
        else:
            preds.append(logits.squeeze(-1) if cfg.num_labels == 1 else logits.argmax(-1))
        lengths.append(n)
        if out.keep_masks is not None:
            kept.append(transkimmer.kept_per_layer(out.keep_masks))            # (B, L)
            if record is None or len(entered) < record:
                layers = torch.stack(out.keep_masks).sum(0).long().cpu()         # (B, T): layers entered
                entered.extend((ids[:k].tolist(), s[:k].tolist()) for ids, k, s in zip(b["input_ids"].cpu(), n.tolist(), layers))
    preds = preds if spans else torch.cat(preds).cpu().numpy()
    sync()
    return dict(predictions=preds, lengths=torch.cat(lengths).cpu().long(), kept=torch.cat(kept).cpu().long() if kept else None,
                entered=entered, seconds=time.perf_counter() - t0)


def summarise(run, config, max_length):
    """What a `predict` run cost: the fraction of real tokens kept entering each layer, the FLOPs
    speedups (without padding, and against padding to max_length) and the wall time."""
    lengths, kept, n = run["lengths"], run["kept"], len(run["lengths"])
    no_pad, seq = flops.speedups(lengths.tolist(), None if kept is None else kept.tolist(), config, max_length)
    per_layer = [1.0] * config.num_hidden_layers if kept is None else transkimmer.kept_fraction(kept, lengths).tolist()
    return dict(kept_fraction_per_layer=per_layer, flops_speedup_no_padding=no_pad, flops_speedup_sequence=seq,
                eval_seconds=run["seconds"], num_examples=n, examples_per_second=n / run["seconds"])


if __name__ == "__main__":   # the name sounds like a command: say which one evaluates
    raise SystemExit("evaluate.py is the evaluation used by train.py, not a command: evaluate a checkpoint with "
                     "python train.py --eval-only --checkpoint DIR --task T --data-dir D")
