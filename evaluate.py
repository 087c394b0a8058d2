"""
Evaluation with real pruning: dev-set metrics (as GLUE computes them), the fraction of real tokens
kept entering each layer, the FLOPs speedups (flops.py) and the wall time. train.py calls it after
every epoch and for --eval-only.
"""

import time

import torch

import data
import flops
from tasks import metrics
import transkimmer
from model import autocast


@torch.no_grad()
def evaluate(model, examples, labels, metric_names, device, max_length, batch_size=32, tokenizer=None, record=8,
             score=None):
    """Dev-set metrics, the fraction of real tokens kept entering each layer, FLOPs speedups, wall time
    and the predictions (classes or values; span QA: {question id: answer}). Eval mode: deterministic
    decisions, tokens really removed. max_length: what sequence padding counts. With a tokenizer the
    first `record` examples (None: all, carried by the predictions too) come with the layers each token
    entered (L: kept through all) for tools/report.py. score: None (metrics.compute_metrics), or for
    span QA a tasks.SpanScore: the examples' (T, 2) logits to their answers, those to metrics."""
    cfg = model.eval().config
    preds, lengths, kept, recorded = [], [], [], []
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
        if score is not None:   # span QA: each window's per-token logits, without its padding
            preds.extend(l[:k].cpu() for l, k in zip(logits, n.tolist()))
        else:
            preds.append(logits.squeeze(-1) if cfg.num_labels == 1 else logits.argmax(-1))
        lengths.append(n)
        if out.keep_masks is not None:
            kept.append(transkimmer.kept_per_layer(out.keep_masks))            # (B, L)
            if tokenizer is not None and (record is None or len(recorded) < record):
                entered = torch.stack(out.keep_masks).sum(0).long().cpu()         # (B, T): layers entered
                for ids, n, s in zip(b["input_ids"].cpu(), b["attention_mask"].sum(1).tolist(), entered):
                    recorded.append(dict(tokens=[tokenizer.id_to_token(i) for i in ids[:n].tolist()],
                                         skim_layer=s[:n].tolist()))
    if score is None:
        preds = torch.cat(preds).cpu().numpy()
    sync()
    seconds = time.perf_counter() - t0
    lengths = torch.cat(lengths).cpu().long()
    kept = torch.cat(kept).cpu().long() if kept else None
    no_pad, seq = flops.speedups(lengths.tolist(), None if kept is None else kept.tolist(), cfg, max_length)
    per_layer = [1.0] * cfg.num_hidden_layers if kept is None else transkimmer.kept_fraction(kept, lengths).tolist()
    predictions = preds.tolist() if score is None else score.answers(preds)   # (train.py --predictions)
    scores = score.scores(predictions) if score is not None else metrics.compute_metrics(metric_names, preds, labels)
    for i, ex in enumerate(recorded):   # span QA: the answer's token positions, gold and predicted
        ex.update(label=labels[i], prediction=preds[i].item() if score is None else preds[i].argmax(0).tolist())
    if record is None and score is None and recorded:   # one row per example, its tokens' skim layers beside it
        predictions = [dict(ex, prediction=p) for ex, p in zip(recorded, predictions)]
    return dict(metrics=scores, predictions=predictions, kept_fraction_per_layer=per_layer, flops_speedup_no_padding=no_pad,
                flops_speedup_sequence=seq, eval_seconds=seconds, num_examples=len(labels), examples_per_second=len(labels) / seconds,
                examples=recorded[:8])


def evaluate_dev(model, dev_sets, metric_names, device, max_length, batch_size, tokenizer, record=8):
    """evaluate() on the first dev split; the metrics of the others (MNLI mismatched) added.
    dev_sets: {split: (examples, labels, score)}, as tasks.encode_split gives them."""
    (_, (examples, labels, score)), *others = dev_sets.items()
    result = evaluate(model, examples, labels, metric_names, device, max_length, batch_size, tokenizer, record, score)
    for split, (examples, labels, score) in others:
        result[f"metrics_{split}"] = evaluate(model, examples, labels, metric_names, device, max_length,
                                              batch_size, score=score)["metrics"]
    return result


if __name__ == "__main__":   # the name sounds like a command: say which one evaluates
    raise SystemExit("evaluate.py is the evaluation used by train.py, not a command: evaluate a checkpoint with "
                     "python train.py --eval-only --checkpoint DIR --task T --data-dir D")
