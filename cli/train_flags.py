"""
train.py's command line: every flag with its help, grouped (the defaults are train.TrainConfig's),
and every check that can be made before any work (a bad combination is argparse's one-line error). `parse(argv)` returns
the values train.TrainConfig is built from, once.
"""

import argparse
import json
import math
import os
import shutil
import sys

from safetensors import SafetensorError, safe_open

from cli.args import POSITIVE, POSITIVE_INT, OneLineParser, check_device, number
from storage.files import recover, unwritable
from storage.resume import STATE
from data import load_tokenizer
from extensions.two_stage import two_stages
from load_weights import checkpoint_files, read_config, saved_by_train
from tasks import CUSTOM, OWN_DATA, TASKS, classes_of, head_for
from tasks.glue import as_number

TRAINING = ("model", "baseline", "lr", "batch_size", "epochs", "max_steps", "warmup", "weight_decay", "clip", "seed",
            "log_every", "eval_every_epoch", "task_type", "teacher", "distill_layers",
            "save_every", "resume", "layers", "truncate_speedup")   # with the skim settings: nothing --eval-only reads
SKIM_SETTINGS = ("skim_coefficient", "tau", "mu0", "predictor_width", "predictor_lr", "predictor_lr_decay",
                 "skim_delay", "skim_warmup", "skim_after_loss_drop", "target_speedup", "budget_rate", "hard_stage",
                 "one_stage")   # the "skimming" flags: a --baseline run has no use for them


def add_data_flags(p):
    g = p.add_argument_group("task and data")
    g.add_argument("--task", choices=sorted(TASKS), help="GLUE task or long documents (imdb, yelp, 20news); or your "
                   "own data: --train-file, --dev-file")
    g.add_argument("--data-dir", help="folder in the GLUE layout (<dir>/SST-2/train.tsv, ...), or holding the "
                   "unpacked archive of a long-document task; default: download the task once into --cache-dir")
    g.add_argument("--max-length", type=number(int, 8), help="truncate to this many tokens (default: paper Table 2)")
    g.add_argument("--cache-dir", help="where downloads are kept")
    g.add_argument("--train-file", help="your own training data: .csv, .tsv (a header row names the columns) or "
                   ".jsonl (one JSON object per line); string labels are classes, fractional numbers regression")
    g.add_argument("--dev-file", help="your own evaluation data, in the same form")
    g.add_argument("--text-column", help="with --train-file: the text's column (default: sentence, sentence1 or text)")
    g.add_argument("--text-pair-column", help="the second text's column (default: sentence2 or text_pair if present)")
    g.add_argument("--label-column", help="the label's column (default: label)")
    g.add_argument("--task-type", choices=("classification", "regression"), help="with --train-file: what the labels "
                   "are (default: from their values: whole numbers or strings are classes, any fraction regression)")
    g = p.add_argument_group("model")
    g.add_argument("--model",
                   help="checkpoint folder (config.json, model.safetensors, tokenizer.json) or a hub name")
    g.add_argument("--baseline", action="store_true", help="fine-tune the plain BERT, no skimming")
    g.add_argument("--teacher", help="distil from this checkpoint of a --baseline run of the same task (its "
                   "out/checkpoint): extensions/distill.py")
    g.add_argument("--distill-layers", action="store_true", help="with --teacher: distil the hidden states of "
                   "each layer too (the teacher must have the student's shape)")
    g.add_argument("--checkpoint", help="with --eval-only: a folder written by this script (out/checkpoint)")
    g = p.add_argument_group("peers: what to do instead of skimming, at equal FLOPs (peers/; with --baseline)")
    g.add_argument("--layers", type=number(int, 1), help="keep the model's first k layers (static depth)")
    g.add_argument("--truncate-speedup", type=number(float, 1, 50, low_open=True), help="truncate the inputs to "
                   "the --max-length whose dev FLOPs are 1/S of the full length's (peers/truncate.py)")
    g.add_argument("--topk-speedup", type=number(float, 1, 50, low_open=True), help="before each layer keep the "
                   "tokens that received the most attention, a share of each input set for this dev FLOPs speedup "
                   "(PoWER-BERT style, peers/attention_topk.py); with --eval-only, on a --baseline checkpoint")


def add_skim_flags(p):
    g = p.add_argument_group("skimming")
    g.add_argument("--skim-coefficient", type=number(float, 0), help="lambda of Eq. 7, the paper's harmony coefficient (default: Table 2)")
    g.add_argument("--tau", type=POSITIVE, help="Gumbel-softmax temperature, Eq. 5 "
                   "(paper: 0.1, which cannot start training; see model.py)")
    g.add_argument("--target-speedup", type=number(float, 1, 50, low_open=True), help="instead of lambda, train to "
                   "this FLOPs speedup (no padding, predictors counted), e.g. 2; calibrated on the training set at the end: "
                   "extensions/budget.py. From a pretrained --model, in two stages: the dense baseline first, into "
                   "<out-dir>/baseline, then skimming from it (extensions/two_stage.py)")
    g.add_argument("--one-stage", action="store_true", help="with --target-speedup from a pretrained --model: "
                   "train in one run from it, not the two-stage recipe (the dense baseline first: extensions/two_stage.py)")
    g.add_argument("--budget-rate", type=POSITIVE, help="with --target-speedup: how fast the "
                   "Lagrange multiplier follows the gap between the FLOPs and the budget (per step)")
    g.add_argument("--mu0", type=number(float), help="unbalanced bias mean of the predictors, Eq. 9")
    g.add_argument("--predictor-width", type=number(int, 1, 1 << 16), help="hidden width of the predictor MLP (default: the "
                   "model's hidden size, as Eq. 2; smaller is cheaper at batch 1)")
    g.add_argument("--predictor-lr", type=POSITIVE, help="learning rate of the skim predictors (default: "
                   "0.08 x 384 / (the run's steps x the predictor's width): 2e-4 for 400 steps at width 384; "
                   "paper: one lr for all, pass --lr's value)")
    g.add_argument("--predictor-lr-decay", action="store_true", help="decay the predictors' lr with the "
                   "backbone's (paper) instead of holding it constant")
    g.add_argument("--skim-delay", type=number(float, 0, 1, high_open=True),
                   help="fraction of the steps trained with lambda 0 first, as the baseline is (paper: 0)")
    g.add_argument("--skim-after-loss-drop", type=number(float, 0, 1, high_open=True), help="start "
                   "lambda's ramp no earlier than --skim-delay and only once the task loss has fallen this fraction "
                   "below its level over the first twelfth of the steps (option, e.g. 0.05; default 0: at --skim-delay)")
    g.add_argument("--skim-warmup", type=number(float, 0, 1), help="fraction of the steps over which "
                   "lambda then ramps linearly from 0 to its value (paper: 0)")
    g.add_argument("--hard-stage", type=number(float, 0, 1, high_open=True), help="train the last fraction of the "
                   "steps on inference's decisions, the predictors frozen (an option: extensions/hard_stage.py)")


def add_training_flags(p):
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=POSITIVE, help="AdamW learning rate of the BERT weights and the head, "
                   "linear decay to 0 (paper: 2e-5)")
    g.add_argument("--batch-size", type=POSITIVE_INT, help="training batch size (per process)")
    g.add_argument("--epochs", type=POSITIVE_INT, help="epochs (default: 3; 5 for MRPC and WNLI, 10 for RTE)")
    g.add_argument("--max-steps", type=POSITIVE_INT, help="stop after this many optimiser steps (overrides --epochs)")
    g.add_argument("--warmup", type=number(float, 0, 1, high_open=True), help="fraction of steps with linear warm-up")
    g.add_argument("--weight-decay", type=number(float, 0), help="AdamW weight decay (not on biases, LayerNorms)")
    g.add_argument("--clip", type=POSITIVE, help="gradient norm clipping")
    g.add_argument("--seed", type=number(int, 0, 2**32 - 1), help="seed for initialisation, shuffling and sampling")
    g.add_argument("--device", help="cuda, cpu, cuda:1, ... (default: cuda if there is one)")
    g.add_argument("--threads", type=number(int, 1, 1024), help="CPU threads for torch (default: torch's choice)")
    g = p.add_argument_group("evaluation and output")
    g.add_argument("--eval-only", action="store_true", help="evaluate --checkpoint on the dev set, no training")
    g.add_argument("--eval-batch-size", type=POSITIVE_INT, help="evaluation batch size")
    g.add_argument("--reference-path", action="store_true", help="evaluate on the reference inference "
                   "(transkimmer.pruned_encode, padded batches), not the packed path (fast/packed.py): the same "
                   "decisions, the logits within float tolerance, slower")
    g.add_argument("--eval-every-epoch", type=POSITIVE_INT, help="evaluate at the end of every N-th epoch")
    g.add_argument("--log-every", type=POSITIVE_INT, help="log a line every N steps")
    g.add_argument("--out-dir", help="output folder (default: out/<task>[-baseline]); training "
                   "writes results.json and checkpoint/, --eval-only writes eval-results.json")
    g.add_argument("--overwrite", action="store_true", help="replace the results (and checkpoint) already in --out-dir")
    g.add_argument("--save-every", type=POSITIVE_INT, help="write the training state (weights, optimiser, "
                   "schedule, random generators, step) to <out-dir>/training-state.pt every N steps, for --resume")
    g.add_argument("--resume", action="store_true", help="continue the killed run in --out-dir from its "
                   "training-state.pt (same settings); it ends as the run would have, bit for bit on the CPU")
    g.add_argument("--predictions", action="store_true", help="also write the last evaluation's dev predictions, one "
                   "per example: predictions.jsonl (SQuAD 2.0: predictions.json, {question id: answer}, as the "
                   "official script reads); --eval-only: eval-predictions.*")


def check_combinations(p, args):
    """Flags that contradict each other, or name nothing to do."""
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
    if args.task_type and not args.train_file:
        p.error("--task-type says what the labels of --train-file are; "
                + (f"--task {args.task} has its own" if args.task else "a checkpoint (--eval-only) has its own"))
    if args.task and (args.text_column or args.text_pair_column or args.label_column):
        p.error("--text-column, --text-pair-column and --label-column name the columns of --train-file/--dev-file; "
                f"--task {args.task} has its own")
    skim_set = [f"--{d.replace('_', '-')}" for d in SKIM_SETTINGS if getattr(args, d) != p.get_default(d)]
    if args.baseline and skim_set:
        p.error(f"{' '.join(skim_set)} set{'s' if len(skim_set) == 1 else ''} skimming, but --baseline trains the "
                "plain BERT, which has none: drop one or the other")
    if args.target_speedup and args.skim_coefficient is not None:
        p.error("--target-speedup replaces lambda (--skim-coefficient): pass one of them")
    if args.distill_layers and not args.teacher and not args.eval_only:
        p.error("--distill-layers distils a teacher's layers: pass --teacher too")
    if args.hard_stage and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        p.error("--hard-stage freezes the predictors during the run, which DDP's reducer does not allow: train in "
                "one process")
    if args.one_stage and not args.target_speedup:
        p.error("--one-stage says how --target-speedup trains: pass --target-speedup too")
    if args.budget_rate != p.get_default("budget_rate") and not args.target_speedup:
        p.error("--budget-rate sets how --target-speedup meets its budget: pass --target-speedup too")
    if args.skim_delay + args.skim_warmup > 1 + 1e-9:   # (1e-9: sums such as 0.6 + 0.4 in floating point)
        p.error(f"--skim-delay {args.skim_delay:g} + --skim-warmup {args.skim_warmup:g} > 1: lambda would still be "
                "ramping when training ends; make them sum to at most 1")
    unread = [f"--{d.replace('_', '-')}" for d in TRAINING + SKIM_SETTINGS if getattr(args, d) != p.get_default(d)]
    if args.eval_only and unread:
        p.error(f"{' '.join(unread)} set{'s' if len(unread) == 1 else ''} how to train, and --eval-only evaluates "
                "--checkpoint as it is: drop them")
    if args.dev_file and args.data_dir:
        p.error("--data-dir holds GLUE tasks; your own data is read from --train-file and --dev-file alone")
    check_peers(p, args)


def check_peers(p, args):
    """The peers (peers/): one at a time, on the plain BERT, and not for span QA."""
    chosen = [f"--{d.replace('_', '-')}" for d in ("layers", "truncate_speedup", "topk_speedup") if getattr(args, d)]
    if len(chosen) > 1:
        p.error(f"{' and '.join(chosen)} are two peers: pass one of them")
    if chosen and not (args.baseline or args.eval_only):
        p.error(f"{chosen[0]} is a peer of Transkimmer that needs no skimming: pass --baseline too")
    if chosen and args.task == "squad_v2":
        p.error(f"{chosen[0]}: the peers are for classification and regression, not span QA (--task squad_v2)")
    if args.truncate_speedup and args.max_length is not None:
        p.error("--truncate-speedup chooses --max-length itself: pass one of them")


def check_environment(p, args, results_file):
    """What can be checked before any work: the device, torchrun's variables, the output folder."""
    check_device(p, args.device)
    if not os.environ.get("WORLD_SIZE", "1").isdigit():
        p.error(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number of processes: launch with torchrun, "
                "or unset WORLD_SIZE")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not all(v in os.environ for v in ("RANK", "MASTER_ADDR")):
        p.error("WORLD_SIZE is set but RANK or MASTER_ADDR is not: launch several processes with torchrun, "
                "or unset WORLD_SIZE")
    out = args.out_dir
    for folder in (os.path.join(out, "checkpoint"), args.checkpoint, args.model, args.teacher):
        if folder and not os.path.isdir(folder):
            recover(folder)   # a save killed between its two renames: its previous checkpoint put back
    if os.path.exists(out) and not os.path.isdir(out):
        p.error(f"--out-dir {out} is a file: pass a folder")
    both = two_stages(args)   # (--target-speedup from a pretrained model: extensions/two_stage.py checks its folders)
    if args.resume and not os.path.isfile(os.path.join(out, STATE)) and not both:
        p.error(f"--resume: {out} holds no {STATE} (the run was started without --save-every, or it finished): "
                "start it again without --resume")
    for name in ("predictions.jsonl", "predictions.json"):   # (a user's file of that name is never written over)
        path = os.path.join(out, ("eval-" if args.eval_only else "") + name)
        if args.predictions and os.path.isdir(path):   # (without --predictions nothing goes there)
            p.error(f"--out-dir {out}: {path} is a folder, where the predictions would go: pass another --out-dir")
        if args.predictions and os.path.exists(path) and not (args.overwrite or args.resume):
            p.error(f"--out-dir {out} already holds {path}: pass another --out-dir, or --overwrite to replace it")
    if os.path.isfile(os.path.join(out, STATE)) and not (args.overwrite or args.resume or args.eval_only):
        p.error(f"--out-dir {out} holds {STATE}, the state of a killed run: pass --resume to continue it, "
                "--overwrite to start again over it, or another --out-dir")
    if os.path.exists(os.path.join(out, results_file)) and not (args.overwrite or args.resume or
                                                                   (args.eval_only and evaluated(out, args.checkpoint))):
        p.error(f"--out-dir {out} already holds {results_file}: pass another --out-dir, "
                "or --overwrite to replace it")
    if unwritable(out):
        p.error(f"--out-dir {out}: {unwritable(out)}; pass a folder you can write to")
    if args.teacher and not os.path.isdir(args.teacher):
        p.error(f"--teacher {args.teacher} is not a folder: pass the checkpoint/ folder of a --baseline run")
    if not args.eval_only:
        check_checkpoint_folder(p, args.model, os.path.join(out, "checkpoint"), args.overwrite or args.resume)
        check_free_space(p, args.model, out, args.save_every, kept=int(both))


def evaluated(out, checkpoint):
    """Whether out's eval-results.json is an --eval-only record of this checkpoint: evaluating it again
    replaces it (another file of that name is the user's, kept unless --overwrite)."""
    try:
        with open(os.path.join(out, "eval-results.json")) as f:
            a = json.load(f)["args"]
        return bool(a["eval_only"]) and os.path.realpath(a["checkpoint"]) == os.path.realpath(checkpoint)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def check_free_space(p, model, out, save_every=None, kept=0):
    """A full disk must be found before training, not at its first save: a checkpoint is written in
    fp32 beside the one it replaces, so about twice the weights' fp32 size must be free, and with
    --save-every the training state too (weights and Adam's two moments, beside the one it replaces:
    six times more), and `kept` checkpoints more (two stages: the baseline's); known when --model is a
    local folder (a hub model: by its first save)."""
    weights = os.path.join(model, "model.safetensors")
    if not os.path.isfile(weights):
        return
    try:   # the fp32 size: 4 bytes per element of every tensor (read from the header alone)
        with safe_open(weights, framework="pt") as f:
            size = sum(4 * math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        need = (2 + kept + (6 if save_every else 0)) * size + (64 << 20)
    except (OSError, SafetensorError):
        return   # (a broken file is named by the loader, before any work)
    folder = os.path.abspath(out)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    free = shutil.disk_usage(folder).free
    if free < need:
        p.error(f"--out-dir {out}: {free >> 20} MB free, its checkpoints{' and training state' if save_every else ''} "
                f"need about {need >> 20} MB: "
                "free some space or pass an --out-dir on another disk")


def check_checkpoint_folder(p, model, folder, overwrite):
    """Training replaces <out-dir>/checkpoint at every evaluation: only with --overwrite, only a folder
    an earlier run of train.py wrote, and never the folder (or a folder inside it) --model reads."""
    if os.path.isdir(model) and os.path.exists(folder):
        inside = os.path.commonpath([os.path.realpath(model), os.path.realpath(folder)]) == os.path.realpath(folder)
        if inside:
            p.error(f"--out-dir would replace {folder}, the folder --model {model} is read from: pass another --out-dir")
    if not os.path.exists(folder):
        return
    ours = os.path.isfile(os.path.join(folder, "config.json"))
    try:
        ours = ours and saved_by_train(folder)
    except (OSError, ValueError):
        ours = False
    if not ours:
        p.error(f"--out-dir holds {folder}, which train.py did not write: pass another --out-dir")
    if not overwrite:
        p.error(f"--out-dir holds {folder} from an earlier run: pass another --out-dir, or --overwrite to replace it")


def joined_negatives(p, argv):
    """`--lr -5e-5` as `--lr=-5e-5`: argparse takes a value that starts with '-' and is not a plain
    number for a flag, and answers "expected one argument"; joined, the range check names it."""
    takes_value = {o for a in p._actions if a.nargs is None and a.option_strings for o in a.option_strings}
    out = []
    for a in argv:
        if out and out[-1] in takes_value and a.startswith("-") and as_number(a) is not None:
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def parse(argv, description, default_device, defaults):
    """The command line's values as a dict, each flag not given its value in `defaults` (train.TrainConfig's),
    the task's defaults (paper Table 2) filled in where that is None."""
    p = OneLineParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for add in (add_data_flags, add_skim_flags, add_training_flags):
        add(p)
    p.set_defaults(**defaults)
    args = p.parse_args(joined_negatives(p, sys.argv[1:] if argv is None else argv))
    check_combinations(p, args)
    if args.dev_file:
        args.task = CUSTOM
    t = TASKS.get(args.task, OWN_DATA)
    args.max_length = args.max_length if args.max_length is not None else t["max_length"]
    args.skim_coefficient = t["skim_coefficient"] if args.skim_coefficient is None else args.skim_coefficient
    args.epochs = args.epochs if args.epochs is not None else t["epochs"]
    args.device = args.device or default_device
    if args.task == "squad_v2" and args.max_length < 32:   # (a window must hold part of the question and the context)
        p.error(f"--max-length {args.max_length}: a SQuAD window holds [CLS] question [SEP] context [SEP]; pass at least 32")
    name = args.task if args.task != CUSTOM else os.path.splitext(os.path.basename(args.train_file or args.dev_file))[0]
    args.out_dir = args.out_dir or (os.path.dirname(os.path.abspath(args.checkpoint)) if args.eval_only else   # (beside
                                    os.path.join("out", name + ("-baseline" if args.baseline else "")))   # the run's)
    check_environment(p, args, "eval-results.json" if args.eval_only else "results.json")
    return vars(args)


# ----------------------------------------------------------------------------------------------
# What the flags name, checked once it is read: refused before any training


def check_checkpoint_task(task, checkpoint, c):
    """--eval-only: a checkpoint fine-tuned on another task (its config c) is refused."""
    if task != CUSTOM and c.finetuning_task and c.finetuning_task != task:
        fix = "pass --dev-file (your own data) instead of --task" if c.finetuning_task == CUSTOM else \
            f"pass --task {c.finetuning_task}"
        raise SystemExit(f"error: {checkpoint} was fine-tuned on {c.finetuning_task}, not {task}: {fix}")


def check_head(task, checkpoint, c, classes, fix="evaluate it on the task it was trained for"):
    """A checkpoint evaluated on a task (or teaching it) must have the head the task needs."""
    need = head_for(task, classes)
    if (c.head, c.num_labels) != (need["head"], need["num_labels"]):
        has = lambda head, n: "a span head" if head == "span" else f"{n} output(s)"
        raise SystemExit(f"error: {checkpoint} has {has(c.head, c.num_labels)}, task {task} needs "
                         f"{has(need['head'], need['num_labels'])}: {fix}")


def check_max_length(max_length, max_tokens):
    """--max-length within the positions the model has."""
    if max_length > max_tokens:
        raise SystemExit(f"error: --max-length {max_length} exceeds the {max_tokens} positions the model has "
                         "(max_position_embeddings): pass a smaller --max-length")


def check_start(task, model, baseline, tok_dir):
    """--model may be a checkpoint of train.py: two-stage training starts Transkimmer from the fine-tuned
    baseline. Refused before any work when it cannot be what the user means."""
    c = read_config(checkpoint_files(tok_dir)[0])   # (a missing or broken file is named here)
    if saved_by_train(tok_dir) and c.finetuning_task and c.finetuning_task != task and task != CUSTOM:
        raise SystemExit(f"error: --model {model} was fine-tuned on {c.finetuning_task}, not {task}: "
                         f"its classifier answers another task; pass the pretrained model, or a checkpoint of {task}")
    if c.skim and baseline:
        raise SystemExit(f"error: --model {model} is a Transkimmer checkpoint and --baseline fine-tunes a plain "
                         "BERT: pass the pretrained model or a --baseline checkpoint, or leave out --baseline")


def check_teacher(task, teacher, student, classes, layers=False, tok_dir=None):
    """--teacher: a dense checkpoint of train.py, of this task, with its head and its classes' names,
    reading the same token ids (the vocabulary of tok_dir, the student's tokenizer); with `layers`
    (--distill-layers), of the student's depth and width."""
    c = read_config(checkpoint_files(teacher)[0])
    if not saved_by_train(teacher) or c.skim:
        raise SystemExit(f"error: --teacher {teacher} is not a checkpoint of a --baseline run of train.py: pass "
                         "the checkpoint/ folder such a run wrote")
    check_checkpoint_task(task, teacher, c)
    check_head(task, teacher, c, classes, fix="pass a teacher fine-tuned on this task")
    if (c.model_type, c.vocab_size) != (student.model_type, student.vocab_size):
        raise SystemExit(f"error: --teacher {teacher} reads other token ids ({c.model_type}, {c.vocab_size} tokens) "
                         f"than --model ({student.model_type}, {student.vocab_size}): pass a teacher fine-tuned "
                         "from the same pretrained model")
    if classes and classes_of(c) != classes:
        raise SystemExit(f"error: --teacher {teacher} names its classes {classes_of(c)}, the data {classes}: pass a "
                         "teacher fine-tuned on the same labels")
    if tok_dir and load_tokenizer(teacher).get_vocab() != load_tokenizer(tok_dir).get_vocab():
        raise SystemExit(f"error: --teacher {teacher} has another vocabulary than --model: pass a teacher fine-tuned "
                         "from the same pretrained model")
    shape = lambda cfg: (cfg.num_hidden_layers, cfg.hidden_size)
    if layers and shape(c) != shape(student):
        raise SystemExit(f"error: --distill-layers: --teacher {teacher} has {c.num_hidden_layers} layers of "
                         f"{c.hidden_size} and the student {student.num_hidden_layers} of {student.hidden_size}: pass "
                         "a teacher fine-tuned from the same pretrained model, or leave out --distill-layers")
