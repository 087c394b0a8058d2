"""
Is pruned inference really faster? Dense BERT against Transkimmer with real pruning, side by side.

    # with a fine-tuned Transkimmer (train.py's out/<task>/checkpoint)
    python tools/bench.py --checkpoint out/sst2/checkpoint --data-dir ../shared/data/glue
    # without training: predictors set to skim half the tokens before layer 0
    python tools/bench.py --model /path/to/bert --skim-fraction 0.5 --skim-layer 0 --data-dir ../shared/data/glue

On real sentences (the dev set of the checkpoint's task, else SST-2's), in their file order, batches
padded to their longest sentence, it times the dense model and the pruned one on the same batches,
interleaved (dense, pruned, dense, pruned, ...) after warm-up, and prints medians:
    FLOPs speedup   dense FLOPs / pruned FLOPs, both as executed (flops.py): the dense model on
                    the padded batches, the pruned one on the tokens each layer really processes
                    (T' = the batch's largest kept count), its predictors included
    measured        dense seconds / pruned seconds
    realised        measured / FLOPs speedup: how much of the saved arithmetic became time
    tokens/s        real tokens per second, dense and pruned
With --split, batch 1 is also taken apart (encoders only): the layers alone on the tokens the
predictors keep, their decisions replayed (the most any implementation of those decisions could
gain), the same with the predictors computed, and the real pruned encoder, against the dense layers.
When Hugging Face transformers is installed it also times our dense BERT against its BertModel on
the same weights and batches, and the training step (forward, backward, AdamW) of ours with skim
attention, our plain BERT and the reference.
A classifier is also timed through fast/: the classification path (fast/classify.py) and packed
tokens (fast/packed.py), the latter for the dense model too (its fastest path here): "packed" is the
pruned packed model against the dense packed one, the fair ratio when both lose their padding.
With --cuda-graphs (CUDA, inference only) both encoders are also timed as CUDA graphs (fast/cuda_graphs.py)
in the same passes: the pruned model's speedup when both are graphed, and the graphs' own gain on
the dense model. Both models then keep their Linear weights in bf16 in all four timings
(cuda_graphs.bf16_linears: what autocast computes, cast once). With --bf16 both models are cast to
bf16 whole and run without autocast: bf16 end to end, the residual stream, LayerNorms and the
pruned model's bookkeeping included (autocast keeps LayerNorm, hence the residual stream, in fp32).
"""

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time

if __package__ in (None, ""):   # run as `python tools/NAME.py`: the project's modules are one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

import data
from cli import errors
from tasks import download
import flops
from fast.classify import use_classify_path
from fast.packed import use_packed_path
from fast import cuda_graphs
import transkimmer
from storage.files import atomic_write_text, check_outputs, recover, write_json
from load_weights import load_model, load_pretrained, read_config, saved_by_train
from model import autocast, build, encoder, is_predictor
from tasks import CUSTOM, OWN_DATA, QA, TASKS, classes_of, read_splits
from cli.args import POSITIVE_INT, check_device, number
from storage.provenance import device_name, machine

BATCH_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="a Transkimmer folder written by train.py (its decisions are used)")
    p.add_argument("--model", help="a pretrained BERT folder (or hub name); predictors set by --skim-*")
    p.add_argument("--skim-fraction", type=number(float, 0, 1, high_open=True), default=0.5, help="share of real tokens to skim (no checkpoint)")
    p.add_argument("--skim-layer", type=number(int, 0), default=0, help="skim them before this layer (no checkpoint)")
    p.add_argument("--task", choices=sorted(set(TASKS) - {QA}), help="GLUE (or long-document) task whose dev (test) texts "
                   "are used (default: the checkpoint's own, else sst2)")
    p.add_argument("--dev-file", help="your own evaluation file (CSV, TSV or JSON Lines, as train.py --dev-file) "
                   "whose texts are timed instead of a task's")
    p.add_argument("--text-column", help="with --dev-file: the text's column (as train.py)")
    p.add_argument("--text-pair-column", help="with --dev-file: the second text's column (as train.py)")
    p.add_argument("--data-dir", help="folder in the GLUE layout (<dir>/SST-2/dev.tsv, ...); default: download "
                   "the task once into --cache-dir, as train.py does")
    p.add_argument("--cache-dir", default=download.DEFAULT_CACHE, help="where downloads are kept")
    p.add_argument("--num-examples", type=POSITIVE_INT, default=512, help="dev examples per timed pass (batch 1: / 8)")
    p.add_argument("--max-length", type=number(int, 8), help="truncate sentences to this many tokens (default: the task's, Table 2)")
    p.add_argument("--batch-sizes", type=lambda text: [POSITIVE_INT(v) for v in text.split(",")], default=None, help="comma-separated (default: 1,32 on CPU, 1,32,128 on CUDA)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--repeats", type=POSITIVE_INT, default=7, help="timed passes per model; the median is reported")
    p.add_argument("--warmup", type=number(int, 0), default=2, help="untimed passes first")
    p.add_argument("--threads", type=POSITIVE_INT, help="CPU threads for torch")
    p.add_argument("--no-reference", action="store_true", help="skip the Hugging Face comparison")
    p.add_argument("--no-train", action="store_true", help="skip the training-step throughput")
    p.add_argument("--split", action="store_true", help="at batch 1, also time the layers alone on the kept tokens, "
                   "with and without the predictors: where the pruned path's time goes")
    p.add_argument("--cuda-graphs", action="store_true", help="also time both encoders replayed as CUDA graphs (fast/cuda_graphs.py)")
    p.add_argument("--graph-bucket", type=POSITIVE_INT, default=16, help="with --cuda-graphs: kept widths are rounded up to a multiple of this")
    p.add_argument("--bf16", action="store_true", help="cast both models to bf16 and time them without autocast "
                   "(inference only: add --no-reference --no-train)")
    p.add_argument("--profile", help="also write torch.profiler's top lines for one pass of each timed model, per batch size, to this file")
    p.add_argument("--json", help="also write the dense-vs-pruned rows to this JSON file (tools/report.py reads it)")
    p.add_argument("--overwrite", action="store_true", help="replace the --json and --profile files if they exist")
    return check_args(p, p.parse_args(argv))


def check_args(p, args):
    """Flags that contradict each other, and the texts to time: the checkpoint's task, --task or
    --dev-file; the task's max length unless --max-length."""
    if bool(args.checkpoint) == bool(args.model):
        p.error("pass exactly one of --checkpoint (fine-tuned Transkimmer) or --model (pretrained BERT)")
    if args.split and args.batch_sizes and 1 not in args.batch_sizes:
        p.error("--split times batch 1: include 1 in --batch-sizes")
    if args.cuda_graphs and args.device != "cuda":
        p.error("--cuda-graphs needs --device cuda (CUDA graphs exist only on NVIDIA GPUs)")
    for flag, on in (("--cuda-graphs", args.cuda_graphs), ("--bf16", args.bf16)):
        if on and not (args.no_reference and args.no_train):
            p.error(f"{flag} times inference with bf16 weights: add --no-reference --no-train")
    check_device(p, args.device)
    check_outputs(p, [("--json", args.json), ("--profile", args.profile)], args.overwrite)
    if args.dev_file and (args.task or args.data_dir):
        p.error("--dev-file times your own file's texts; --task and --data-dir name a task's: pass one or the other")
    if (args.text_column or args.text_pair_column) and not args.dev_file:
        p.error("--text-column and --text-pair-column name the columns of --dev-file")
    if args.dev_file:
        args.task, args.max_length = CUSTOM, args.max_length or OWN_DATA["max_length"]
        return args
    trained = args.checkpoint and os.path.isfile(os.path.join(args.checkpoint, "config.json")) and \
        read_config(os.path.join(args.checkpoint, "config.json")).finetuning_task
    timed = trained if trained in TASKS and trained != QA else None   # a task whose texts tools/bench.py reads
    if args.task and timed and args.task != timed:                    # another task's texts: other decisions
        p.error(f"--task {args.task}: {args.checkpoint} was fine-tuned on {timed}: pass --task {timed}, or leave it out")
    if trained and not (args.task or timed):
        p.error(f"--checkpoint {args.checkpoint} was fine-tuned on {trained}, whose texts tools/bench.py does not read: "
                "pass --task, or --dev-file for your own data")
    args.task = args.task or timed or "sst2"
    args.max_length = args.max_length or TASKS[args.task]["max_length"]
    return args


def set_skim(model, batches, fraction, layer):
    """Make the predictors skim `fraction` of the real non-[CLS] tokens before `layer` and keep
    every other token: keep logit = w . a + b with a random w, b at the fraction-quantile of
    w . a over these batches (a: the predictor's hidden activation), skim logit 0."""
    preds = encoder(model).predictors
    for i, pred in enumerate(preds):
        torch.nn.init.zeros_(pred.fc2.weight)
        with torch.no_grad():
            pred.fc2.bias.copy_(torch.tensor([0.0, 10.0]))   # keep everything
    target = preds[layer]
    w = torch.randn(target.fc2.weight.shape[1], generator=torch.Generator().manual_seed(0)).to(target.fc2.weight.device)
    acts = []
    hook = target.fc2.register_forward_hook(lambda m, inp, out: acts.append(inp[0]))
    scores = []
    with torch.no_grad():
        for b in batches:
            acts.clear()
            model(**b, prune=False)
            real = b["attention_mask"].bool().clone()
            real[:, 0] = False
            scores.append((acts[0] @ w)[real])
    hook.remove()
    threshold = torch.quantile(torch.cat(scores).float(), fraction)
    with torch.no_grad():
        target.fc2.weight[1].copy_(w)
        target.fc2.bias.copy_(torch.tensor([0.0, -float(threshold)]))


BF16 = False   # --bf16: the models are bf16 whole, and run without autocast


def precision(device):
    """How the timed passes run: model.autocast (bf16 autocast on CUDA), or nothing under --bf16."""
    return contextlib.nullcontext() if BF16 else autocast(device)


def run_pass(fn, batches, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    with precision(device):   # bf16 autocast on CUDA, as train.py evaluates; full precision on CPU; or --bf16
        for b in batches:
            fn(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def interleaved(fns, batches, device, repeats, warmup):
    """Median seconds of each fn over the batches, the fns taking turns in every repeat."""
    times = [[] for _ in fns]
    for r in range(warmup + repeats):
        for i, fn in enumerate(fns):
            t = run_pass(fn, batches, device)
            if r >= warmup:
                times[i].append(t)
    return [statistics.median(t) for t in times]


def make_batches(examples, bs, n, device):
    examples = examples[:n]
    labels = [0] * len(examples)
    return [{k: v.to(device) for k, v in b.items() if k in BATCH_KEYS}
            for b in data.batches(examples, labels, bs)]


def profile(fns, names, batches, device, bs, layers):
    """torch.profiler over one pass of each fn (after one untimed pass): its top 25 lines by self time,
    and the operator calls (aten::*) and host syncs (nonzero, item, tolist: a value the host waits for)
    per batch and layer."""
    from torch.profiler import ProfilerActivity, profile as record
    cuda = device.type == "cuda"
    text = ""
    for name, fn in zip(names, fns):
        run_pass(fn, batches, device)
        tolist, calls = torch.Tensor.tolist, [0]
        torch.Tensor.tolist = lambda t: (calls.append(1), tolist(t))[1]   # (a Python call: no profiler event)
        try:
            with record(activities=[ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda) as p:
                run_pass(fn, batches, device)
        finally:
            torch.Tensor.tolist = tolist
        events = p.key_averages()
        table = events.table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=25)
        per_layer = lambda keys: sum(e.count for e in events if keys(e.key)) / len(batches) / layers
        text += (f"== batch {bs}, {len(batches)} batches: {name}\n{table}\noperator calls per batch and layer: "
                 f"{per_layer(lambda k: k.startswith('aten::')):.1f}; host syncs per batch and layer: "
                 f"{per_layer(lambda k: k in ('aten::nonzero', 'aten::item')) + (len(calls) - 1) / len(batches) / layers:.2f}\n\n")
    return text


def with_runner(model, runner):
    """model(**batch) with its encoder run by `runner` (cuda_graphs.Graphed), or eagerly (None)."""
    def fn(b):
        cuda_graphs.use_graphs(encoder(model), runner)
        return model(**b)
    return fn


def pruned_pass(model, batches, cfg):
    """One pruned pass over the batches: (fraction of real tokens kept entering a layer, averaged
    over layers; dense FLOPs / pruned FLOPs, both as executed, see the module docstring; the same with
    no padding in either, as packed tokens execute them: flops.speedups' no-padding ratio)."""
    dense = pruned = kept = tokens = 0
    lengths, kept_rows = [], []
    with torch.no_grad(), precision(next(model.parameters()).device):   # the decisions the timed passes make
        for b in batches:
            B, T = b["input_ids"].shape
            out = model(**b)
            widest = [int(m.sum(1).max()) for m in out.keep_masks]       # T' entering each layer
            dense += B * flops.bert_flops(T, cfg)
            pruned += B * flops.transkimmer_flops(int(b["attention_mask"].sum(1).max()), widest, cfg)
            kept += float(transkimmer.kept_per_layer(out.keep_masks).sum())
            tokens += int(b["attention_mask"].sum())
            lengths += b["attention_mask"].sum(1).tolist()
            kept_rows += transkimmer.kept_per_layer(out.keep_masks).long().tolist()
    return kept / (tokens * cfg.num_hidden_layers), dense / pruned, flops.speedups(lengths, kept_rows, cfg, 0)[0]


def replay_cuts(enc, b):
    """For one sequence (batch 1): the indices, per layer, of the tokens the pruned path keeps among
    those entering the layer before (None: it keeps them all)."""
    pos, cuts = b["attention_mask"][0].nonzero().squeeze(1), []
    for m in enc(**b).keep_masks:
        kept = m[0][pos].nonzero().squeeze(1)
        cuts.append(kept if len(kept) < len(pos) else None)
        pos = pos[kept]
    return cuts


def layers_on_kept(h, cuts, layers, predictors=None):
    """The layers alone on the tokens the predictors keep, their decisions replayed from `cuts`:
    no decision, no bookkeeping. With `predictors`, they are computed too (and their output unused)."""
    x = h
    for i, (layer, cut) in enumerate(zip(layers, cuts)):
        if predictors is not None:
            predictors[i](x)
        x = layer(x if cut is None else x[:, cut], None)
    return x   # (1, kept to the end, H)


def cost_split(skim, dense, batches, device, repeats, warmup, classify=None):
    """Batch 1, encoders only (no embeddings, no head): where the pruned path's time goes. Times,
    side by side, the dense layers; the layers alone on the tokens the predictors keep (the most
    any implementation of these decisions could get); the same with the predictors computed; and
    the real pruned encoder (and the classification path's, fast/classify.py). Returns dense seconds
    / each one's seconds."""
    enc, dense_layers = encoder(skim), encoder(dense).stack
    layers, predictors = enc.stack, enc.predictors
    with precision(device):
        states = [enc.embed(b["input_ids"], b["token_type_ids"]) for b in batches]
        cuts = [replay_cuts(enc, b) for b in batches]
    full = [None] * len(dense_layers)
    fns = [lambda i: layers_on_kept(states[i], full, dense_layers),
           lambda i: layers_on_kept(states[i], cuts[i], layers),
           lambda i: layers_on_kept(states[i], cuts[i], layers, predictors),
           lambda i: transkimmer.pruned_encode(states[i], batches[i]["attention_mask"], layers, predictors)]
    if classify is not None:
        fns.append(lambda i: encoder(classify).run_layers(states[i], batches[i]["attention_mask"]))
    times = interleaved(fns, range(len(batches)), device, repeats, warmup)
    names = ["dense", "kept_tokens_only", "with_predictors", "pruned", "classify"]
    return dict(zip(names, [times[0] / t for t in times]))


def load_models(args, device):
    """The Transkimmer model (a checkpoint, or --model with skimming set by hand later) and the same
    weights without predictors, both in eval mode on the device; and the tokenizer's folder."""
    if args.checkpoint:
        recover(args.checkpoint)   # (a save killed between its two renames: the previous checkpoint put back)
        skim, tok_dir = load_model(args.checkpoint), args.checkpoint
        if not skim.config.skim:
            raise errors.BadInput(f"--checkpoint {args.checkpoint} is a plain BERT (train.py --baseline): there is "
                                  "nothing to prune; pass a Transkimmer checkpoint, or --model to set skimming by hand")
    else:
        tok_dir = download.model_dir(args.model, args.cache_dir)
        skim = load_pretrained(tok_dir, skim=True, num_labels=2)
    cfg = skim.config
    if args.model and args.skim_layer >= cfg.num_hidden_layers:
        raise errors.BadInput(f"--skim-layer {args.skim_layer}: the model has {cfg.num_hidden_layers} layers, "
                              f"pass 0 to {cfg.num_hidden_layers - 1}")
    if args.max_length > cfg.max_tokens:
        raise errors.BadInput(f"--max-length {args.max_length} exceeds the {cfg.max_tokens} positions the model has "
                              "(max_position_embeddings): pass a smaller --max-length")
    dense = build(type(cfg)(**{**cfg.to_dict(), "skim": False}))
    dense.load_state_dict({k: v for k, v in skim.state_dict().items() if not is_predictor(k)})
    return skim.to(device).eval(), dense.to(device).eval(), tok_dir


def bench_batch_size(args, skim, dense, fast_models, examples, bs, device, profiles):
    """Dense and pruned (the reference pruned_encode; for a classifier, fast_models: the classification
    path, the dense and the pruned packed paths of fast/; with --cuda-graphs both graphed) timed side
    by side at one batch size: the row of the speed table, printed and returned."""
    batches = make_batches(examples, bs, max(1, args.num_examples // (8 if bs == 1 else 1)), device)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    kept, fl, fl_packed = pruned_pass(skim, batches, skim.config)
    fast = [(lambda b, m=m: m(**b)) for m in fast_models or []]
    fns = [with_runner(dense, None), with_runner(skim, None)] + fast
    if args.cuda_graphs:
        fns += [with_runner(dense, cuda_graphs.Graphed(encoder(dense), args.graph_bucket)),
                with_runner(skim, cuda_graphs.Graphed(encoder(skim), args.graph_bucket))]
    times = interleaved(fns, batches, device, args.repeats, args.warmup)
    (t_dense, t_pruned), t_fast, t_graphed = times[:2], times[2:2 + len(fast)], times[2 + len(fast):]
    if args.profile:
        names = ["dense", "pruned"] + ["pruned, classification path", "dense, packed", "pruned, packed"][:len(fast)] \
            + ["dense, CUDA graphs", "pruned, CUDA graphs"]
        profiles.append(profile(fns, names, batches, device, bs, skim.config.num_hidden_layers))
    r = dict(batch=bs, kept=kept, flops=fl, measured=t_dense / t_pruned, realised=t_dense / t_pruned / fl,
             dense_tokens_per_s=tokens / t_dense, pruned_tokens_per_s=tokens / t_pruned)
    print(f"{bs:>5} | {kept:>5.2f} | {fl:>12.2f}x | {r['measured']:>7.2f}x | {r['realised']:>8.2f} | "
          f"{r['dense_tokens_per_s']:>11.0f} | {r['pruned_tokens_per_s']:>12.0f}")
    if t_fast:
        r.update(classify_measured=t_dense / t_fast[0], classify_realised=t_dense / t_fast[0] / fl)
        print(f"      classification path (fast/classify.py): {r['classify_measured']:.2f}x, "
              f"{r['classify_realised']:.2f} of FLOPs")
        r.update(dense_packed_speedup=t_dense / t_fast[1], packed_measured=t_fast[1] / t_fast[2],
                 packed_flops=fl_packed, packed_realised=t_fast[1] / t_fast[2] / fl_packed)
        print(f"      packed tokens (fast/packed.py): pruned {r['packed_measured']:.2f}x the packed dense "
              f"({r['packed_realised']:.2f} of its FLOPs saving, {fl_packed:.2f}x with no padding), "
              f"which is {r['dense_packed_speedup']:.2f}x the padded dense")
    if t_graphed:
        r.update(graphed_measured=t_graphed[0] / t_graphed[1], dense_graphed_speedup=t_dense / t_graphed[0],
                 graph_bucket=args.graph_bucket)
        print(f"      CUDA graphs: pruned {r['graphed_measured']:.2f}x the graphed dense "
              f"({tokens / t_graphed[1]:.0f} tok/s); graphs make the dense model {r['dense_graphed_speedup']:.2f}x")
    if args.split and bs == 1:
        r["split"] = cost_split(skim, dense, batches, device, args.repeats, args.warmup, (fast_models or [None])[0])
        print("      batch 1, encoder only, speedup against the dense layers: layers alone on the kept tokens "
              "{kept_tokens_only:.2f}x, with the predictors {with_predictors:.2f}x, pruned {pruned:.2f}x".format(**r["split"])
              + (f", classification path {r['split']['classify']:.2f}x" if "classify" in r["split"] else ""))
    cuda_graphs.use_graphs(encoder(dense), None), cuda_graphs.use_graphs(encoder(skim), None)   # (eager from here)
    return r


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    skim, dense, tok_dir = load_models(args, device)
    cfg, fast = skim.config, None
    dev_sets, _, _ = read_splits(args.task, args.data_dir, args.cache_dir, with_train=False, own_files=(None, args.dev_file),
                                 columns=(args.text_column, args.text_pair_column, None),
                                 classes=classes_of(cfg) if args.checkpoint else "infer")   # as train.py reads it
    examples = data.encode(data.load_tokenizer(tok_dir), next(iter(dev_sets.values()))[0], args.max_length)
    sizes = args.batch_sizes or ([1, 32, 128] if device.type == "cuda" else [1, 32])
    if not args.checkpoint:
        set_skim(skim, make_batches(examples, 32, args.num_examples, device), args.skim_fraction, args.skim_layer)
    global BF16
    BF16 = args.bf16
    if args.bf16:   # (after set_skim, which sets the predictors in full precision)
        skim, dense = skim.to(torch.bfloat16), dense.to(torch.bfloat16)
    if args.cuda_graphs:   # both models, all four timings: the same numbers under autocast, no per-call casts
        cuda_graphs.bf16_linears(skim), cuda_graphs.bf16_linears(dense)
    if cfg.head == "classifier":   # the same weights through fast/: classify.py, and packed.py for both models
        fast = [use_classify_path(copy.deepcopy(skim)), use_packed_path(copy.deepcopy(dense)),
                use_packed_path(copy.deepcopy(skim))]
    print(f"device {device} ({torch.get_num_threads()} threads), {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
          f"{args.task} dev sentences, " + (f"checkpoint {args.checkpoint}" if args.checkpoint else
                                             f"{args.skim_fraction:.0%} skimmed before layer {args.skim_layer}"))
    print(f"{'batch':>5} | {'kept':>5} | {'FLOPs speedup':>13} | {'measured':>8} | {'realised':>8} | "
          f"{'dense tok/s':>11} | {'pruned tok/s':>12}")
    profiles = []
    with torch.no_grad():
        rows = [bench_batch_size(args, skim, dense, fast, examples, bs, device, profiles) for bs in sizes]
    result = dict(checkpoint=args.checkpoint, model=args.model, task=args.task, max_length=args.max_length,
                  skim_fraction=None if args.checkpoint else args.skim_fraction,
                  skim_layer=None if args.checkpoint else args.skim_layer, device=str(device),
                  threads=torch.get_num_threads(), repeats=args.repeats, rows=rows,
                  **machine(device, f"python tools/bench.py {' '.join(argv or sys.argv[1:])}"))
    if not args.no_reference:
        result["reference"] = reference(args, tok_dir, dense, examples, sizes, device)
    if not args.no_train:
        result["training"] = training_throughput(args, tok_dir, skim, dense, examples, device)
    if args.profile:
        atomic_write_text(args.profile, f"python tools/bench.py {' '.join(argv or sys.argv[1:])}\n{device_name(device)}, "
                          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n\n" + "\n".join(profiles))
    if args.json:
        write_json(args.json, result)
    return rows


def hf_model(tok_dir, device):
    """Hugging Face's BertModel on the same checkpoint, or None when transformers is absent or
    the folder is not in its layout."""
    try:
        from transformers import BertModel
    except ImportError:
        print("(transformers not installed: no reference comparison)")
        return None
    if saved_by_train(tok_dir):   # our own tensor names: the reference would load it with random weights, and only warn
        print("(no reference comparison on a train.py checkpoint: pass --model, a Hugging Face folder)")
        return None
    return BertModel.from_pretrained(tok_dir).float().to(device)   # float: a half-precision file loads as such


def reference(args, tok_dir, dense, examples, sizes, device):
    """Our dense BERT against Hugging Face's on the same weights: [{batch, ours_s, reference_s}]
    (None without transformers)."""
    ref = hf_model(tok_dir, device)
    if ref is None:
        return None
    ref.eval()
    rows = []
    enc = encoder(dense)
    print(f"\nours (dense) vs Hugging Face BertModel ({ref.config._attn_implementation} attention), same weights, inference")
    print(f"{'batch':>5} | {'ours s':>8} | {'reference s':>11} | {'ratio ref/ours':>14}")
    with torch.no_grad():
        for bs in sizes:
            batches = make_batches(examples, bs, max(1, args.num_examples // (8 if bs == 1 else 1)), device)
            t_ours, t_ref = interleaved([lambda b: enc(**b),
                                         lambda b: ref(**b)], batches, device, args.repeats, args.warmup)
            print(f"{bs:>5} | {t_ours:>8.3f} | {t_ref:>11.3f} | {t_ref / t_ours:>13.2f}x")
            rows.append(dict(batch=bs, ours_s=t_ours, reference_s=t_ref, attention=ref.config._attn_implementation))
    return rows


def training_loss(out):
    """What a training step minimises: Eq. 7 for ours (lambda 0.3), the reference model's own loss."""
    if not hasattr(out, "task_loss"):
        return out.loss
    return out.task_loss if out.skim_loss is None else transkimmer.total_loss(out.task_loss, out.skim_loss, 0.3)


def training_throughput(args, tok_dir, skim, dense, examples, device, bs=32, steps=4):
    """Examples per second of a training step (forward, backward, AdamW) at batch 32: {model: examples/s}."""
    batches = make_batches(examples, bs, bs * steps, device)
    labels = torch.zeros(bs, dtype=torch.long, device=device)
    models = {"ours, Transkimmer (skim attention)": skim, "ours, plain BERT": dense}
    ref = None if args.no_reference else hf_model(tok_dir, device)
    if ref is not None:
        from transformers import BertForSequenceClassification
        ref = BertForSequenceClassification.from_pretrained(tok_dir, num_labels=2).float().to(device)
        models["Hugging Face BertForSequenceClassification"] = ref
    fns = []
    for name, m in models.items():
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-6)

        def step(b, m=m, opt=opt):
            out = m(**b, labels=labels[:b["input_ids"].shape[0]])
            opt.zero_grad(set_to_none=True)
            training_loss(out).backward()
            opt.step()
        fns.append(step)
    times = interleaved(fns, batches, device, max(3, args.repeats // 2), 1)
    n = sum(b["input_ids"].shape[0] for b in batches)
    print(f"\ntraining step throughput, batch {bs}")
    for (name, _), t in zip(models.items(), times):
        print(f"  {name:<45} {n / t:>8.1f} examples/s   ({times[1] / t:.2f}x ours plain)")
    for m in models.values():
        m.eval()
    return {name: n / t for name, t in zip(models, times)}


if __name__ == "__main__":
    errors.run(main)
