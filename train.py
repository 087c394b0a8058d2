"""
Fine-tune and evaluate Transkimmer (or the plain BERT baseline) on a GLUE task, a long-document
task (imdb, yelp, 20news), SQuAD 2.0 (squad_v2) or your own files; the tasks are in tasks/.

    python train.py --task sst2   # Transkimmer on bert-base-uncased, on a GPU, online (fetches the model and SST-2 once)
    python train.py --task sst2 --data-dir ../shared/data/glue --model /path/to/checkpoint   # offline, local folders
    python train.py --task sst2 --baseline --data-dir ../shared/data/glue --model /path/to/checkpoint   # plain BERT
    python train.py --task sst2 --target-speedup 2 --teacher out/sst2-baseline/checkpoint   # to a speed (extensions/)
    python train.py --train-file train.csv --dev-file dev.csv --model DIR   # your own CSV, TSV or JSON Lines files
    python train.py --task imdb   # long documents (imdb, yelp, 20news), SQuAD 2.0 (squad_v2): paper Table 4
    python train.py --task sst2 --eval-only --checkpoint out/sst2/checkpoint --data-dir ../shared/data/glue

Writes to --out-dir: checkpoint/ (the model at the last evaluation: model.safetensors,
config.json, and the tokenizer files it used) and results.json (metrics, per-layer kept fraction,
FLOPs speedups, evaluation wall time, every argument); --eval-only writes eval-results.json (by
default beside the results.json of the run whose checkpoint it evaluates).
Evaluation really prunes tokens. The defaults are a measured recipe that skims (docs/recipe.md);
the paper's exact settings: --tau 0.1 --lr 2e-5 --predictor-lr 2e-5 --predictor-lr-decay
--skim-delay 0 --skim-warmup 0. Every flag: cli/train_flags.py (python train.py --help).

One training step, top to bottom: train_step -> model.py (BertForSequenceClassification ->
BertModel.run_layers) -> transkimmer.py (masked_encode: Eqs. 2, 5, 4, 3, 6) -> back here for Eq. 7.
"""

import gc
import itertools
import math
import os
import time
from collections import namedtuple
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import data
import peers
import transkimmer
from cli import errors, train_flags
from cli.progress import log_eval, log_start, log_step
from extensions import two_stage
from extensions.budget import Budget
from extensions.distill import Teacher
from extensions.hard_stage import HardStage
from extensions.schedule import Schedule
from fast.packed import packed_inference
from load_weights import load_model, load_pretrained
from model import BertConfig, autocast, is_predictor
from storage import resume
from storage.files import claim, save_checkpoint
from storage.provenance import write_results
from tasks import classes_of, download, encode_split, evaluate_dev, head_for, metric_names, read_splits


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run, with its default, built once from the command line (parse_args; the
    flags' help: cli/train_flags.py); results.json records it as "args". None: the task's default
    (paper Table 2: max_length, skim_coefficient, epochs), or as the comment says."""
    task: str = None              # a key of tasks.TASKS, or "custom" (your own files)
    data_dir: str = None          # GLUE layout; None: download into cache_dir
    max_length: int = None        # tokens per example (truncation)
    cache_dir: str = download.DEFAULT_CACHE
    train_file: str = None        # your own data (CSV, TSV, JSON Lines); text/pair/label columns:
    dev_file: str = None
    text_column: str = None
    text_pair_column: str = None
    label_column: str = None
    task_type: str = None         # your own data: "classification" or "regression" (None: from the labels)
    model: str = 'bert-base-uncased'   # pretrained checkpoint folder or hub name
    baseline: bool = False        # the plain BERT, no skimming
    checkpoint: str = None        # with eval_only: a folder this script wrote
    skim_coefficient: float = None   # lambda, Eq. 7 (the paper's harmony coefficient)
    tau: float = BertConfig.skim_tau   # Gumbel-softmax temperature, Eq. 5
    mu0: float = BertConfig.skim_mu0   # the predictors' unbalanced bias, Eq. 9
    predictor_width: int = None   # the predictor MLP's hidden width (None: hidden size, Eq. 2)
    predictor_lr: float = None    # None: default_predictor_lr(steps, width)
    predictor_lr_decay: bool = False   # decay it with the backbone's (paper) instead of holding it
    skim_delay: float = 1 / 3     # fraction of the steps with lambda 0 ...
    skim_after_loss_drop: float = 0.0   # ... (option: and until the task loss fell this fraction) ...
    skim_warmup: float = 1 / 3    # ... then this fraction of the steps ramping lambda up
    target_speedup: float = None  # instead of lambda: train to this FLOPs speedup (extensions/budget.py) ...
    budget_rate: float = Budget.rate   # ... its multipliers' ascent rate ...
    one_stage: bool = False       # ... from --model in one run, not after the dense baseline (extensions/two_stage.py)
    teacher: str = None           # distil from this dense checkpoint of the task (extensions/distill.py) ...
    distill_layers: bool = False  # ... its layers' hidden states too
    hard_stage: float = 0.0       # the last fraction of the steps on inference's decisions (extensions/hard_stage.py)
    lr: float = 5e-05             # AdamW, BERT weights and head, linear decay
    batch_size: int = 32
    epochs: int = None
    max_steps: int = None         # overrides epochs
    warmup: float = 0.0
    weight_decay: float = 0.01
    clip: float = 1.0
    seed: int = 42
    device: str = None
    threads: int = None
    eval_only: bool = False
    eval_batch_size: int = 32
    reference_path: bool = False  # evaluate on transkimmer.pruned_encode, not the packed path (fast/packed.py)
    eval_every_epoch: int = 1
    log_every: int = 50
    out_dir: str = None
    overwrite: bool = False
    predictions: bool = False     # also write the dev predictions (tasks.write_predictions)
    save_every: int = None        # write the training state every N steps (storage/resume.py) ...
    resume: bool = False          # ... and continue a killed run from it
    layers: int = None            # peers/ (what a user could do instead, at equal FLOPs): the first k layers ...
    truncate_speedup: float = None   # ... the --max-length that saves this much ...
    topk_speedup: float = None    # ... keep the tokens that receive the most attention, to this speedup


def parse_args(argv=None):
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    return TrainConfig(**train_flags.parse(argv, __doc__, "cuda" if torch.cuda.is_available() else "cpu", defaults))


Process = namedtuple("Process", "rank world device log")   # this one of the run's (torchrun: one per GPU); rank 0 logs
Training = namedtuple("Training", "examples labels eval_lengths")   # and the dev set's lengths (a budget calibrates to them)


def setup(cfg):
    """torchrun's processes (one per GPU), threads."""
    rank, world, device = 0, 1, torch.device(cfg.device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return Process(rank, world, device, print if rank == 0 else (lambda *a, **k: None))


# ---- Loading: the model, its tokenizer, the data

def load(cfg, device):
    """The model (pretrained with a fresh head and fresh predictors, or --checkpoint for --eval-only),
    the config (with a checkpoint's skim settings), the tokenizer's folder, the data (tasks.Splits)."""
    if cfg.eval_only:   # the saved model; the config records the skim settings it was trained with
        model, tok_dir = load_model(cfg.checkpoint), cfg.checkpoint
        c, classes = model.config, classes_of(model.config)
        train_flags.check_checkpoint_task(cfg.task, cfg.checkpoint, c)
        cfg = replace(cfg, baseline=not c.skim, skim_coefficient=c.skim_coefficient, tau=c.skim_tau, mu0=c.skim_mu0,
                      predictor_width=c.skim_predictor_width)
    else:
        tok_dir, classes = download.model_dir(cfg.model, cfg.cache_dir), "infer"
        train_flags.check_start(cfg.task, cfg.model, cfg.baseline, tok_dir)
    splits = read_splits(cfg.task, cfg.data_dir, cfg.cache_dir, not cfg.eval_only, (cfg.train_file, cfg.dev_file),
                         (cfg.text_column, cfg.text_pair_column, cfg.label_column), classes, cfg.task_type)
    classes = splits.classes
    if cfg.eval_only:
        train_flags.check_head(cfg.task, cfg.checkpoint, model.config, classes)
    else:
        model = load_pretrained(tok_dir, skim=not cfg.baseline, finetuning_task=cfg.task, skim_coefficient=
                                cfg.skim_coefficient, skim_tau=cfg.tau, skim_mu0=cfg.mu0,
                                skim_predictor_width=cfg.predictor_width, **head_for(cfg.task, classes))
    train_flags.check_max_length(cfg.max_length, model.config.max_tokens)
    if cfg.teacher:
        train_flags.check_teacher(cfg.task, cfg.teacher, model.config, classes, cfg.distill_layers, tok_dir)
    return model.to(device), cfg, tok_dir, splits


def encode_splits(cfg, tok_dir, model, splits):
    """The tokenizer, and the splits as model inputs: each dev set and the training set a tasks.Split."""
    tokenizer = data.load_tokenizer(tok_dir)
    dev = {split: encode_split(cfg.task, tokenizer, texts, labels, cfg.max_length)
           for split, (texts, labels) in splits.dev.items()}
    train = None if splits.train is None else encode_split(cfg.task, tokenizer, *splits.train, cfg.max_length)
    for examples, _, _ in list(dev.values()) + ([train] if train else []):
        data.check_encoded(examples, tokenizer, model.config.vocab_size, tok_dir)
    return tokenizer, splits._replace(dev=dev, train=train)


# ---- The recipe: the optimiser and when lambda rises (Departures from the paper; docs/recipe.md)

def default_predictor_lr(steps, width):
    """The predictors are new modules that must cross a logit gap of 2 mu0 = 10 within the run. Adam
    moves each weight by about lr a step, and the keep logit sums the moves of the last Linear's
    `width` inputs, so how far it can go is lr x steps x width: we hold that product (2e-4 x 400 steps
    at width 384, measured on SST-2 with MiniLM), so short and long runs get the same reach."""
    return 0.08 * 384 / (steps * width)


def optimizer_for(model, total, lr, predictor_lr, weight_decay, warmup, predictor_lr_decay):
    """AdamW (no weight decay on biases and LayerNorms) and its schedule: the backbone's lr warms up
    over `warmup` and decays linearly to 0; the predictors have their own lr, held constant
    (Departure: they start learning only when lambda rises, a third of the way in, and a decay
    timed for the backbone would leave them little; predictor_lr_decay gives the paper's)."""
    groups = {}
    for name, p in model.named_parameters():
        groups.setdefault((is_predictor(name), p.ndim >= 2), []).append(p)
    groups = sorted(groups.items())
    opt = torch.optim.AdamW([dict(params=ps, lr=predictor_lr if pred else lr, weight_decay=weight_decay if decay else 0.0)
                             for (pred, decay), ps in groups], lr=lr)
    warm = int(warmup * total)
    backbone = lambda s: (s + 1) / max(warm, 1) if s < warm else max(0.0, (total - s) / max(total - warm, 1))
    constant = lambda s: 1.0
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, [constant if pred and not predictor_lr_decay else backbone for (pred, _), _ in groups])
    return opt, sched


# ---- Training

def train_step(model, b, opt, sched, skim_coefficient, terms, clip, step):
    """One optimiser step on batch b; returns the model's output and the loss: the task loss, each
    extension's term added (extensions/: a teacher's distillation, a FLOPs budget's penalty), then Eq. 7
    with lambda = skim_coefficient (None: no skim loss, for the baseline or with a budget in its place)."""
    with autocast(b["input_ids"].device):
        out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], labels=b["labels"])
        task_loss = out.task_loss
        for term in terms:
            task_loss = task_loss + term.loss(out, b)
    opt.zero_grad(set_to_none=True)
    loss = task_loss if skim_coefficient is None else transkimmer.total_loss(task_loss, out.skim_loss, skim_coefficient)  # Eq. 7
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    # A NaN or inf stops the run before it reaches the weights (one host sync per step): the last
    # checkpoint and results.json stay as the last evaluation left them.
    if not torch.isfinite(loss + grad_norm):
        raise SystemExit(f"error: step {step + 1}: the loss is {loss.item()} and the gradient norm "
                         f"{grad_norm.item()}; stopped, nothing of this step was saved (lower --lr or --skim-coefficient, "
                         "check the data's labels and the weights of the checkpoint and of any --teacher)")
    opt.step()
    sched.step()
    for term in terms:
        term.after_step()
    return out, loss


def loss_terms(cfg, model, schedule, train, device):
    """The extensions' loss terms the settings ask for: a teacher, a budget in lambda's place, a hard last stage."""
    terms = [Teacher(cfg.teacher, device, model if cfg.distill_layers else None)] if cfg.teacher else []
    if cfg.target_speedup and not cfg.baseline:
        terms.append(Budget(cfg.target_speedup, model.config, schedule, cfg.budget_rate, train.eval_lengths))
    return terms + ([HardStage(model, schedule.total, cfg.hard_stage)] if cfg.hard_stage else [])


def main(argv=None):
    cfg = parse_args(argv)
    proc = setup(cfg)
    stages = two_stage.stages(cfg, TrainConfig(), train_flags.SKIM_SETTINGS, proc.log)   # (two for --target-speedup)
    for stage in stages[::-1] if proc.rank == 0 else []:
        claim(stage.out_dir)   # two runs into one folder at once: the second is refused (storage/files.py)
    for stage in stages:
        result = run(stage, proc)
    if proc.world > 1:
        dist.destroy_process_group()
    return result


def run(cfg, proc):
    """One run: fine-tune (or --eval-only: evaluate) as cfg says; returns the last evaluation."""
    torch.manual_seed(cfg.seed)
    model, cfg, tok_dir, splits = load(cfg, proc.device)
    cfg, model, ref, peer = peers.setup(cfg, model, tok_dir, splits.dev)   # (the full model's scale; a peer, if asked)
    tokenizer, (dev_sets, train, classes) = encode_splits(cfg, tok_dir, model, splits)
    def evaluate():   # on the packed path (fast/packed.py: the reference's decisions, faster), unless --reference-path
        with packed_inference(model, not cfg.reference_path):
            return peers.record(dict(evaluate_dev(model, dev_sets, metric_names(cfg.task, classes), proc.device, cfg.max_length,
                                     cfg.eval_batch_size, tokenizer, None if cfg.predictions else 8), classes=classes), ref, peer)
    if cfg.eval_only:
        result = evaluate()
        write_results(cfg, result, [])
        log_eval(proc.log, "(--eval-only)", result)
        proc.log(f"wrote {os.path.join(cfg.out_dir, 'eval-results.json')}")
        return result
    log_start(proc, cfg, model, train, dev_sets, classes)
    train = Training(train.examples, train.labels, [len(ids) for ids, _ in next(iter(dev_sets.values())).examples])
    save = lambda out: save_checkpoint(model, tok_dir, os.path.join(cfg.out_dir, "checkpoint"), out)
    return fit(cfg, model, train, lambda cfg, history, **record: evaluate_and_save(cfg, evaluate, save, history, proc.log, **record),
               proc)


def fit(cfg, model, train, evaluate, proc):
    """The training loop: the run's steps, and every --eval-every-epoch epochs and at the end
    evaluate(cfg, history, **record) (main's: evaluated, logged, the checkpoint and results.json replaced)."""
    (rank, world, device, log), t0, result = proc, time.perf_counter(), None
    steps_per_epoch = data.num_batches(len(train.examples), cfg.batch_size, world)
    total = cfg.max_steps or steps_per_epoch * cfg.epochs
    cfg = replace(cfg, predictor_lr=cfg.predictor_lr or default_predictor_lr(total, model.config.predictor_width))
    opt, sched = optimizer_for(model, total, cfg.lr, cfg.predictor_lr, cfg.weight_decay, cfg.warmup, cfg.predictor_lr_decay)
    schedule = Schedule(total, cfg.skim_delay, cfg.skim_warmup, cfg.skim_after_loss_drop)   # what is asked of skimming
    terms = loss_terms(cfg, model, schedule, train, device)
    step, history = resume.start(cfg, model, opt, sched, schedule, terms, total, proc)   # (or continue a killed run)
    if step is None:
        return None
    train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    for epoch in range(max(step - 1, 0) // steps_per_epoch, math.ceil(total / steps_per_epoch)):
        train_model.train()
        batches = data.batches(train.examples, train.labels, cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch,
                               rank=rank, world=world)
        for b in itertools.islice(batches, step - epoch * steps_per_epoch, total - epoch * steps_per_epoch):
            b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
            ramp = schedule.at(step)   # 0 -> 1
            skim_coefficient = None if cfg.baseline or cfg.target_speedup else cfg.skim_coefficient * ramp   # lambda now
            out, loss = train_step(train_model, b, opt, sched, skim_coefficient, terms, cfg.clip, step)
            schedule.watch(step, out.task_loss, world, log)   # (--skim-after-loss-drop)
            step += 1
            if rank == 0 and (step % cfg.log_every == 0 or step == total):
                log_step(log, step, total, out, loss, b, sched.get_last_lr()[0], step * cfg.batch_size * world, t0,
                         "".join(t.status() for t in terms), cfg.out_dir)
            if rank == 0 and cfg.save_every and step % cfg.save_every == 0:
                resume.save(cfg.out_dir, asdict(cfg), step, model, opt, sched, schedule, terms, history)
        evaluating = (epoch + 1) % cfg.eval_every_epoch == 0 or step >= total
        if rank == 0 and evaluating:
            record = lambda: dict(epoch=epoch + 1, step=step, train_seconds=time.perf_counter() - t0, **schedule.record(),
                                  **{k: v for t in terms for k, v in t.record().items()})
            result = evaluate(cfg, history, **record())
            if step >= total and any([t.finish(model, train.examples, device, log) for t in terms]):   # (a budget calibrates)
                result = evaluate(cfg, history, **record())
        if world > 1 and evaluating:
            dist.barrier()
        if step >= total:
            break
    if world > 1:   # DDP's reducer holds the process group: free it first, so that no rank tears down
        del train_model   # gloo's connections while the other still has them open (a peer's
        gc.collect()      # "connection closed" in gloo's threads aborts the process)
        dist.barrier()
    if rank == 0:
        resume.clear(cfg.out_dir)   # (finished: nothing left to resume)
    return result


def evaluate_and_save(cfg, evaluate, save, history, log, **record):
    """An evaluation during training: recorded (epoch, step, ...), logged, added to the history, the
    checkpoint (save) and results.json replaced. The run reports its last evaluation, baseline and
    Transkimmer alike (as the authors' scripts do): picking the epoch with the best dev metric would favour
    the epoch that skims least and flatter the metric on small dev sets; the history keeps every epoch."""
    result = dict(evaluate(), **record)
    if "budget" in record:   # the speedup reached against the one asked for
        log(f"FLOPs speedup {result['flops_speedup_no_padding']:.2f}x, asked {cfg.target_speedup:g}x")
    history.append(result)
    log_eval(log, record["epoch"], result)
    write_results(cfg, result, history, save)
    return result


if __name__ == "__main__":
    errors.run(main)
