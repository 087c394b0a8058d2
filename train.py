"""
Fine-tune and evaluate Transkimmer (or the plain BERT baseline) on a GLUE task, a long-document
task (imdb, yelp, 20news), SQuAD 2.0 (squad_v2) or your own files; the tasks are in tasks.py.

    # Transkimmer on bert-base-uncased, on a GPU, online (fetches the model and SST-2 once)
    python train.py --task sst2
    # offline, from local folders
    python train.py --task sst2 --data-dir ../shared/data/glue --model /path/to/checkpoint
    # the plain BERT row to compare against
    python train.py --task sst2 --baseline --data-dir ../shared/data/glue --model /path/to/checkpoint
    # a tiny CPU run, a minute
    python train.py --task sst2 --data-dir ../shared/data/glue --model /path/to/checkpoint \\
        --max-steps 50 --device cpu --out-dir out/tiny
    # your own data: CSV, TSV (a header row) or JSON Lines; columns sentence/text, sentence2, label
    python train.py --train-file train.csv --dev-file dev.csv --model /path/to/checkpoint
    # long documents and span QA (paper Table 4): downloaded once, or --data-dir
    python train.py --task imdb
    python train.py --task squad_v2
    # evaluate a saved model
    python train.py --task sst2 --eval-only --checkpoint out/sst2/checkpoint --data-dir ../shared/data/glue
    # several GPUs, one process each
    torchrun --nproc_per_node 4 train.py --task mnli

Writes to --out-dir: checkpoint/ (the model at the last evaluation: model.safetensors,
config.json, and the tokenizer files it used) and results.json (metrics, per-layer kept fraction,
FLOPs speedups, evaluation wall time, every argument); --eval-only writes eval-results.json.
Evaluation really prunes tokens. The defaults are a measured recipe that skims (recipe.py and the
README); the paper's exact settings: --tau 0.1 --lr 2e-5 --predictor-lr 2e-5 --predictor-lr-decay
--skim-delay 0 --skim-warmup 0.
"""

import argparse
import gc
import json
import math
import os
import time

import torch
import torch.distributed as dist

import data
from cli import errors
from tasks import download
import transkimmer
from evaluate import autocast, evaluate_dev
from model import BertConfig
from tasks import CUSTOM, OWN_DATA, TASKS, classes_of, encode_split, head_for, metric_names, read_splits
from recipe import SkimStart, default_predictor_lr, optimizer_for, skim_coefficient_at
from cli.files import atomic_write_text, unwritable
from load_weights import checkpoint_files, load_model, load_pretrained, read_config, save_checkpoint, saved_by_train

def number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: a finite int or float in a range; a bad value is argparse's one-line error."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and (v <= low if low_open else v < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low:g}, got {text}")
        if high is not None and (v >= high if high_open else v > high):
            raise argparse.ArgumentTypeError(f"must be {'<' if high_open else '<='} {high:g}, got {text}")
        return v
    return parse


POSITIVE_INT, POSITIVE = number(int, 1), number(float, 0, low_open=True)
SKIM_SETTINGS = ("skim_coefficient", "tau", "mu0", "predictor_width", "predictor_lr", "predictor_lr_decay",
                 "skim_delay", "skim_warmup", "skim_after_loss_drop")   # the "skimming" flags: a --baseline run has no use for them


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("task and data")
    g.add_argument("--task", choices=sorted(TASKS), help="GLUE task or long documents (imdb, yelp, 20news); or your "
                   "own data: --train-file, --dev-file")
    g.add_argument("--data-dir", help="folder in the GLUE layout (<dir>/SST-2/train.tsv, ...), or holding the "
                   "unpacked archive of a long-document task; default: download the task once into --cache-dir")
    g.add_argument("--max-length", type=number(int, 8), help="truncate to this many tokens (default: paper Table 2)")
    g.add_argument("--cache-dir", default=download.DEFAULT_CACHE, help="where downloads are kept")
    g.add_argument("--train-file", help="your own training data: .csv, .tsv (a header row names the columns) or "
                   ".jsonl (one JSON object per line); string labels are classes, fractional numbers regression")
    g.add_argument("--dev-file", help="your own evaluation data, in the same form")
    g.add_argument("--text-column", help="with --train-file: the text's column (default: sentence, else text)")
    g.add_argument("--text-pair-column", help="the second text's column (default: sentence2 or text_pair if present)")
    g.add_argument("--label-column", help="the label's column (default: label)")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="bert-base-uncased",
                   help="checkpoint folder (config.json, model.safetensors, tokenizer.json) or a hub name")
    g.add_argument("--baseline", action="store_true", help="fine-tune the plain BERT, no skimming")
    g.add_argument("--checkpoint", help="with --eval-only: a folder written by this script (out/checkpoint)")
    g = p.add_argument_group("skimming")
    g.add_argument("--skim-coefficient", type=number(float, 0), help="lambda of Eq. 7, the paper's harmony coefficient (default: Table 2)")
    g.add_argument("--tau", type=POSITIVE, default=BertConfig.skim_tau, help="Gumbel-softmax temperature, Eq. 5 "
                   "(paper: 0.1, which cannot start training; see model.py)")
    g.add_argument("--mu0", type=number(float), default=BertConfig.skim_mu0, help="unbalanced bias mean of the predictors, Eq. 9")
    g.add_argument("--predictor-width", type=POSITIVE_INT, help="hidden width of the predictor MLP (default: the "
                   "model's hidden size, as Eq. 2; smaller is cheaper at batch 1)")
    g.add_argument("--predictor-lr", type=POSITIVE, help="learning rate of the skim predictors (default: "
                   "0.08 x 384 / (the run's steps x the predictor's width): 2e-4 for 400 steps at width 384; "
                   "paper: one lr for all, pass --lr's value)")
    g.add_argument("--predictor-lr-decay", action="store_true", help="decay the predictors' lr with the "
                   "backbone's (paper) instead of holding it constant")
    g.add_argument("--skim-delay", type=number(float, 0, 1, high_open=True), default=1 / 3,
                   help="fraction of the steps trained with lambda 0 first, as the baseline is (paper: 0)")
    g.add_argument("--skim-after-loss-drop", type=number(float, 0, 1, high_open=True), default=0.0, help="start "
                   "lambda's ramp no earlier than --skim-delay and only once the task loss has fallen this fraction "
                   "below its level over the first twelfth of the steps (option, e.g. 0.05; default 0: at --skim-delay)")
    g.add_argument("--skim-warmup", type=number(float, 0, 1), default=1 / 3, help="fraction of the steps over which "
                   "lambda then ramps linearly from 0 to its value (paper: 0)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=POSITIVE, default=5e-5, help="AdamW learning rate of the BERT weights and the head, "
                   "linear decay to 0 (paper: 2e-5)")
    g.add_argument("--batch-size", type=POSITIVE_INT, default=32, help="training batch size (per process)")
    g.add_argument("--epochs", type=POSITIVE_INT, help="epochs (default: 3; 5 for MRPC and WNLI, 10 for RTE)")
    g.add_argument("--max-steps", type=POSITIVE_INT, help="stop after this many optimiser steps (overrides --epochs)")
    g.add_argument("--warmup", type=number(float, 0, 1, high_open=True), default=0.0, help="fraction of steps with linear warm-up")
    g.add_argument("--weight-decay", type=number(float, 0), default=0.01, help="AdamW weight decay (not on biases, LayerNorms)")
    g.add_argument("--clip", type=POSITIVE, default=1.0, help="gradient norm clipping")
    g.add_argument("--seed", type=number(int, 0), default=42, help="seed for initialisation, shuffling and sampling")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda, cpu, cuda:1, ...")
    g.add_argument("--threads", type=POSITIVE_INT, help="CPU threads for torch (default: torch's choice)")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--eval-only", action="store_true", help="evaluate --checkpoint on the dev set, no training")
    g.add_argument("--eval-batch-size", type=POSITIVE_INT, default=32, help="evaluation batch size")
    g.add_argument("--eval-every-epoch", type=POSITIVE_INT, default=1, help="evaluate at the end of every N-th epoch")
    g.add_argument("--log-every", type=POSITIVE_INT, default=50, help="log a line every N steps")
    g.add_argument("--out-dir", default=None, help="output folder (default: out/<task>[-baseline]); training "
                   "writes results.json and checkpoint/, --eval-only writes eval-results.json")
    g.add_argument("--overwrite", action="store_true", help="replace the results (and checkpoint) already in --out-dir")
    args = p.parse_args(argv)
    if args.eval_only and not args.checkpoint:
        p.error("--eval-only needs --checkpoint DIR")
    if args.checkpoint and not args.eval_only:
        p.error("--checkpoint is read with --eval-only alone; training starts from --model "
                "(to fine-tune a saved model further, pass its folder as --model)")
    if args.task and (args.train_file or args.dev_file):
        p.error(f"--task {args.task} with --train-file/--dev-file: pass a GLUE task or your own files, not both")
    if not args.task and not (args.dev_file and (args.train_file or args.eval_only)):
        p.error("pass --task (a GLUE task), or --train-file and --dev-file (your own data; --dev-file alone "
                "with --eval-only)")
    if args.task and (args.text_column or args.text_pair_column or args.label_column):
        p.error("--text-column, --text-pair-column and --label-column name the columns of --train-file/--dev-file; "
                f"--task {args.task} has its own")
    skim_set = [f"--{d.replace('_', '-')}" for d in SKIM_SETTINGS if getattr(args, d) != p.get_default(d)]
    if args.baseline and skim_set:
        p.error(f"{' '.join(skim_set)} set{'s' if len(skim_set) == 1 else ''} skimming, but --baseline trains the "
                "plain BERT, which has none: drop one or the other")
    if args.skim_delay + args.skim_warmup > 1 + 1e-9:   # (1e-9: sums such as 0.6 + 0.4 in floating point)
        p.error(f"--skim-delay {args.skim_delay:g} + --skim-warmup {args.skim_warmup:g} > 1: lambda would still be "
                "ramping when training ends; make them sum to at most 1")
    if args.dev_file and args.data_dir:
        p.error("--data-dir holds GLUE tasks; your own data is read from --train-file and --dev-file alone")
    if args.dev_file:
        args.task = CUSTOM
    t = TASKS.get(args.task, OWN_DATA)
    args.max_length = args.max_length if args.max_length is not None else t["max_length"]
    args.skim_coefficient = t["skim_coefficient"] if args.skim_coefficient is None else args.skim_coefficient
    args.epochs = args.epochs if args.epochs is not None else t["epochs"]
    name = args.task if args.task != CUSTOM else os.path.splitext(os.path.basename(args.train_file or args.dev_file))[0]
    args.out_dir = args.out_dir or os.path.join("out", name + ("-baseline" if args.baseline else ""))
    check_environment(p, args)
    return args


def results_path(args):
    """Training writes results.json; evaluation alone never touches a training record."""
    return os.path.join(args.out_dir, "eval-results.json" if args.eval_only else "results.json")


def check_device(p, text):
    """--device names cpu, or cuda on a machine that has it (train.py and bench.py)."""
    try:
        device = torch.device(text)
    except RuntimeError:
        p.error(f"--device {text!r} is not a device: use cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {text}: this machine has no CUDA GPU (torch {torch.__version__}); use --device cpu")
    if device.type not in ("cpu", "cuda"):
        p.error(f"--device {text}: only cpu and cuda are supported")


def check_environment(p, args):
    """What can be checked before any work: the device, torchrun's variables, the output folder."""
    check_device(p, args.device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not all(v in os.environ for v in ("RANK", "MASTER_ADDR")):
        p.error("WORLD_SIZE is set but RANK or MASTER_ADDR is not: launch several processes with torchrun, "
                "or unset WORLD_SIZE")
    out = args.out_dir
    if os.path.exists(out) and not os.path.isdir(out):
        p.error(f"--out-dir {out} is a file: pass a folder")
    if os.path.exists(results_path(args)) and not args.overwrite:
        p.error(f"--out-dir {out} already holds {os.path.basename(results_path(args))}: pass another --out-dir, "
                "or --overwrite to replace it")
    if unwritable(out):
        p.error(f"--out-dir {out}: {unwritable(out)}; pass a folder you can write to")


def setup(args):
    """torchrun's processes (one per GPU), threads, seed. Returns (rank, world, device)."""
    rank, world = 0, 1
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if args.device.startswith("cuda"):
            args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return rank, world, torch.device(args.device)


def load_checkpoint(args):
    """--eval-only: the saved model, refused when it was trained for another task; its skim settings
    go into args so that results.json reports what the checkpoint was trained with."""
    model = load_model(args.checkpoint)
    c = model.config
    if args.task != CUSTOM and c.finetuning_task and c.finetuning_task != args.task:
        raise SystemExit(f"error: {args.checkpoint} was fine-tuned on {c.finetuning_task}, not {args.task}: "
                         f"pass --task {c.finetuning_task}")
    args.baseline, args.skim_coefficient, args.tau, args.mu0 = not c.skim, c.skim_coefficient, c.skim_tau, c.skim_mu0
    args.predictor_width = c.skim_predictor_width
    return model


def check_start(args, tok_dir):
    """--model may be a checkpoint of train.py: two-stage training starts Transkimmer from the fine-tuned
    baseline. Refused before any work when it cannot be what the user means."""
    c = read_config(checkpoint_files(tok_dir)[0])   # (a missing or broken file is named here)
    if saved_by_train(tok_dir) and c.finetuning_task and c.finetuning_task != args.task and args.task != CUSTOM:
        raise SystemExit(f"error: --model {args.model} was fine-tuned on {c.finetuning_task}, not {args.task}: "
                         f"its classifier answers another task; pass the pretrained model, or a checkpoint of {args.task}")
    if c.skim and args.baseline:
        raise SystemExit(f"error: --model {args.model} is a Transkimmer checkpoint and --baseline fine-tunes a plain "
                         "BERT: pass the pretrained model or a --baseline checkpoint, or leave out --baseline")


def load(args, device):
    """The model (pretrained with a fresh head and fresh predictors, or --checkpoint for --eval-only),
    its tokenizer and that tokenizer's folder, the dev sets, the training set and the label strings."""
    if args.eval_only:
        model, tok_dir = load_checkpoint(args), args.checkpoint
        dev_sets, train, classes = read_splits(args, classes_of(model.config))
        c, need = model.config, head_for(args.task, classes)
        if (c.head, c.num_labels) != (need["head"], need["num_labels"]):
            has = lambda head, n: "a span head" if head == "span" else f"{n} output(s)"
            raise SystemExit(f"error: {args.checkpoint} has {has(c.head, c.num_labels)}, task {args.task} needs "
                             f"{has(need['head'], need['num_labels'])}: evaluate it on the task it was trained for")
    else:
        tok_dir = download.model_dir(args.model, args.cache_dir)
        check_start(args, tok_dir)
        dev_sets, train, classes = read_splits(args)
        model = load_pretrained(tok_dir, skim=not args.baseline, finetuning_task=args.task, skim_coefficient=
                                args.skim_coefficient, skim_tau=args.tau, skim_mu0=args.mu0,
                                skim_predictor_width=args.predictor_width,
                                **head_for(args.task, classes))
    if args.max_length > model.config.max_tokens:
        raise SystemExit(f"error: --max-length {args.max_length} exceeds the {model.config.max_tokens} positions "
                         "the model has (max_position_embeddings): pass a smaller --max-length")
    return model.to(device), tok_dir, data.load_tokenizer(tok_dir), dev_sets, train, classes


def train_step(model, b, opt, sched, step, total, args, start=None):
    """One optimiser step on batch b; returns the model's output and the loss (Eq. 7). start: the
    step lambda's ramp starts at (SkimStart.start)."""
    with autocast(b["input_ids"].device):
        out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], labels=b["labels"])
    opt.zero_grad(set_to_none=True)
    loss = out.task_loss if out.skim_loss is None else \
        transkimmer.total_loss(out.task_loss, out.skim_loss, skim_coefficient_at(step, total, args, start))   # Eq. 7
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
    # A NaN or inf stops the run before it reaches the weights (one host sync per step): the last
    # checkpoint and results.json stay as the last evaluation left them.
    if not torch.isfinite(loss + grad_norm):
        raise SystemExit(f"error: step {step + 1}: the loss is {loss.item()} and the gradient norm "
                         f"{grad_norm.item()}; stopped, nothing of this step was saved (lower --lr, "
                         "check the data's labels and the checkpoint's weights)")
    opt.step()
    sched.step()
    return out, loss


def log_step(log, step, total, out, loss, b, lr, examples, t0):
    kept = (transkimmer.kept_per_layer(out.keep_masks).sum(0) / b["attention_mask"].sum()).mean().item() \
        if out.keep_masks is not None else 1.0
    skim = out.skim_loss.item() if out.skim_loss is not None else 0.0
    elapsed = time.perf_counter() - t0
    log(f"step {step}/{total} | loss {loss.item():.4f} | task {out.task_loss.item():.4f} | skim loss {skim:.4f} | "
        f"kept {kept:.3f} | lr {lr:.2e} | {examples / elapsed:.1f} ex/s | ETA {(total - step) * elapsed / step / 60:.1f} min")


def log_eval(log, epoch, result):
    log(f"eval epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
        + f" | FLOPs speedup {result['flops_speedup_no_padding']:.2f}x (no padding), "
        f"{result['flops_speedup_sequence']:.2f}x (sequence) | kept per layer "
        + " ".join(f"{k:.2f}" for k in result["kept_fraction_per_layer"]) + f" | {result['eval_seconds']:.1f} s")


def main(argv=None):
    args = parse_args(argv)
    rank, world, device = setup(args)
    distributed, master = world > 1, rank == 0
    log = print if master else (lambda *a, **k: None)
    model, tok_dir, tokenizer, dev_sets, train, classes = load(args, device)
    for split, (texts, labels) in dev_sets.items():   # (inputs, labels, how to score them)
        dev_sets[split] = encode_split(args, tokenizer, texts, labels)
        data.check_encoded(dev_sets[split][0], tokenizer, model.config.vocab_size, tok_dir)
    evaluate = lambda: evaluate_dev(model, dev_sets, metric_names(args.task, classes), device, args.max_length,
                                    args.eval_batch_size, tokenizer)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.eval_only:
        result = evaluate()
        write_results(args, result, [])
        log(json.dumps(result, indent=2))
        return result

    train, train_labels, _ = encode_split(args, tokenizer, *train)
    data.check_encoded(train, tokenizer, model.config.vocab_size, tok_dir)
    steps_per_epoch = data.num_batches(len(train), args.batch_size, world)
    total = args.max_steps or steps_per_epoch * args.epochs
    args.predictor_lr = args.predictor_lr or default_predictor_lr(total, model.config.predictor_width)   # in results.json
    log(f"{args.task}: {len(train)} train / {len(next(iter(dev_sets.values()))[0])} dev examples, {total} steps, "
        f"{'baseline BERT' if args.baseline else f'Transkimmer lambda={args.skim_coefficient} tau={args.tau}'}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, device {device}, {world} process(es)")

    train_model = model if not distributed else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    opt, sched = optimizer_for(model, args, total)
    skim_start = SkimStart(total, args)

    history, result, step, t0 = [], None, 0, time.perf_counter()
    for epoch in range(math.ceil(total / steps_per_epoch)):
        train_model.train()
        for b in data.batches(train, train_labels, args.batch_size, shuffle=True, seed=args.seed,
                              epoch=epoch, rank=rank, world=world):
            b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
            out, loss = train_step(train_model, b, opt, sched, step, total, args, skim_start.start)
            if skim_start.waiting:   # (--skim-after-loss-drop: one host sync a step until skimming starts)
                task_loss = out.task_loss.detach().float()
                if distributed:
                    dist.all_reduce(task_loss)
                skim_start.update(step, task_loss.item() / world)
                if not skim_start.waiting:
                    log(f"step {math.ceil(skim_start.start)}: the task loss has fallen {args.skim_after_loss_drop:g} below its start; "
                        "lambda starts its ramp")
            step += 1
            if master and (step % args.log_every == 0 or step == total):
                log_step(log, step, total, out, loss, b, sched.get_last_lr()[0], step * args.batch_size * world, t0)
            if step >= total:
                break
        if master and ((epoch + 1) % args.eval_every_epoch == 0 or step >= total):
            result = evaluate()
            result.update(epoch=epoch + 1, step=step, train_seconds=time.perf_counter() - t0)
            if args.skim_after_loss_drop:
                result.update(skim_start_step=None if skim_start.waiting else math.ceil(skim_start.start))   # (None: not yet)
            history.append(result)
            log_eval(log, epoch + 1, result)
            # The run reports its last evaluation, baseline and Transkimmer alike (as the authors'
            # scripts do). Picking the epoch with the best dev metric would favour the epoch that
            # skims least and flatter the metric on small dev sets; the history keeps every epoch.
            save_checkpoint(model, tok_dir, os.path.join(args.out_dir, "checkpoint"))
            write_results(args, result, history)
        if distributed and ((epoch + 1) % args.eval_every_epoch == 0 or step >= total):
            dist.barrier()
        if step >= total:
            break
    if distributed:   # DDP's reducer holds the process group: free it first, so that no rank tears
        del train_model   # down gloo's connections while the other still has them open (a peer's
        gc.collect()      # "connection closed" in gloo's threads aborts the process)
        dist.barrier()
        dist.destroy_process_group()
    return result


def write_results(args, result, history):
    """results.json (atomically): the last evaluation, the history of all, and every argument."""
    out = dict(task=args.task, metric_names=list(result["metrics"]), **result,
               history=history, args=vars(args))
    atomic_write_text(results_path(args), json.dumps(finite(out), indent=2, allow_nan=False))


def finite(x):
    """NaN and inf become null (strict JSON); a metric that is undefined says so instead of lying."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


if __name__ == "__main__":
    errors.run(main)
