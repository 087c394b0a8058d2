"""
GLUE data (TSV readers for the nine tasks), tokenisation
with `tokenizers`, padded batches.
(tasks/download.py downloads the data and checkpoints when they are not on disk; your own
CSV, TSV and JSON Lines files are read by tasks/own_data.py.)

    read_task(task, split, data_dir)       -> texts and labels, from <data_dir>/<TASK>/<split>.tsv
    load_tokenizer(model_dir)              -> a `tokenizers.Tokenizer` (tokenizer.json, else vocab.txt)
    encode(tokenizer, texts, max_length)   -> token ids and token types, [CLS] a [SEP] (b [SEP])
    batches(examples, batch_size, ...)     -> dicts of tensors, padded to the longest in the batch

References:
  - The GLUE download script (download_glue_data.py, W4ngatang's gist): file layouts and archives.
"""

import csv
import json
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

from cli.errors import BadInput, MissingInput



@dataclass(frozen=True)
class Layout:
    folder: str                 # folder name in the GLUE layout
    text_a: int                 # column of the first sentence
    text_b: int | None          # column of the second sentence, None for single-sentence tasks
    label: int                  # column of the label (-1: the last one)
    labels: tuple | None        # label strings in class order; None: regression (a float)
    header: bool = True
    dev: tuple = ("dev",)       # dev split file names


# Columns as the GLUE download script writes them (shared/data/glue/README.md).
GLUE = {
    "cola": Layout("CoLA", 3, None, 1, ("0", "1"), header=False),
    "sst2": Layout("SST-2", 0, None, 1, ("0", "1")),
    "mrpc": Layout("MRPC", 3, 4, 0, ("0", "1")),
    "qqp": Layout("QQP", 3, 4, 5, ("0", "1")),
    "stsb": Layout("STS-B", 7, 8, 9, None),
    "mnli": Layout("MNLI", 8, 9, -1, ("contradiction", "entailment", "neutral"),
                   dev=("dev_matched", "dev_mismatched")),
    "qnli": Layout("QNLI", 1, 2, 3, ("entailment", "not_entailment")),
    "rte": Layout("RTE", 1, 2, 3, ("entailment", "not_entailment")),
    "wnli": Layout("WNLI", 1, 2, 3, ("0", "1")),
}


def layout(task):
    if task not in GLUE:
        raise ValueError(f"unknown task {task!r}: choose one of {', '.join(GLUE)}")
    return GLUE[task]


# ----------------------------------------------------------------------------------------------
# Reading TSV files


def read_task(task, split, data_dir):
    """Texts and labels of <data_dir>/<TASK>/<split>.tsv. A malformed row is an error naming the
    file and the line. Returns (texts, labels): texts a list of str or (str, str), labels a list
    of int (classification) or float (regression)."""
    lay = layout(task)
    path = os.path.join(data_dir, lay.folder, f"{split}.tsv")
    if not os.path.isfile(path):
        raise MissingInput(f"{path} not found: --data-dir must hold the GLUE layout "
                           f"(<data-dir>/{lay.folder}/{split}.tsv), or leave it out to download")
    csv.field_size_limit(1 << 30)   # a very long field is text like any other; tokenisation truncates it
    try:
        texts, labels = _parse_tsv(path, lay)
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}): save it as UTF-8") from None
    except csv.Error as e:
        raise BadInput(f"{path}: {e}") from None
    if not texts:
        raise BadInput(f"{path} holds no examples")
    return texts, labels


def _parse_tsv(path, lay):
    texts, labels = [], []
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        width = None
        for line, row in enumerate(rows, start=1):
            if line == 1 and lay.header:
                width = len(row)
                label = row[lay.label] if len(row) > max(lay.label, 0) else ""
                if label in (lay.labels or ()) or (lay.labels is None and as_number(label) is not None):
                    raise BadInput(f"{path}, line 1 is an example ({label!r} is a label), not the header row "
                                   "the GLUE layout has: restore the header line (re-download the file)")
                continue
            where = f"{path}, line {line}"
            if width is None:
                width = len(row)
            if len(row) != width or len(row) <= max(lay.text_a, lay.text_b or 0, lay.label):
                raise BadInput(f"{where}: expected {width} tab-separated fields, found {len(row)} "
                               "(a tab or newline inside a field? re-download the file)")
            raw = row[lay.label]
            if lay.labels is None:
                try:
                    value = float(raw)
                except ValueError:
                    raise BadInput(f"{where}: label {raw!r} is not a number") from None
                if not math.isfinite(value):
                    raise BadInput(f"{where}: label {raw!r} is not a finite number")
                labels.append(value)
            elif raw in lay.labels:
                labels.append(lay.labels.index(raw))
            else:
                raise BadInput(f"{where}: label {raw!r} is not one of {lay.labels}")
            texts.append(row[lay.text_a] if lay.text_b is None else (row[lay.text_a], row[lay.text_b]))
    return texts, labels


def as_number(text):
    """The float a label reads as, or None (not a number); nan and inf read as numbers."""
    try:
        return float(text)
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------
# Tokenising


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")   # what load_tokenizer reads: the first that exists


def load_tokenizer(model_dir):
    """The checkpoint's tokenizer.json; else WordPiece from its vocab.txt, lower-casing as its
    tokenizer_config.json says (do_lower_case, default True: uncased BERT)."""
    tj, vocab = os.path.join(model_dir, "tokenizer.json"), os.path.join(model_dir, "vocab.txt")
    if os.path.isfile(tj):
        try:
            tok = Tokenizer.from_file(tj)
        except Exception as e:   # the tokenizers library raises a bare Exception for a bad file
            raise BadInput(f"{tj} is not a valid tokenizer file ({e}): restore it from the model's folder") from None
    elif os.path.isfile(vocab):
        lower = True
        cfg = os.path.join(model_dir, "tokenizer_config.json")
        if os.path.isfile(cfg):
            with open(cfg) as f:
                lower = json.load(f).get("do_lower_case", True)
        tok = BertWordPieceTokenizer(vocab, lowercase=lower)._tokenizer
    else:
        raise MissingInput(f"{model_dir} has neither tokenizer.json nor vocab.txt: "
                                "the checkpoint folder needs one of them")
    tok.no_padding()
    return tok


def encode(tokenizer, texts, max_length):
    """[CLS] a [SEP] (b [SEP]) ids and token types, truncated to max_length (longest first)."""
    tokenizer.enable_truncation(max_length, strategy="longest_first")
    encs = tokenizer.encode_batch(texts)
    return [(e.ids, e.type_ids) for e in encs]


def num_batches(n, batch_size, world=1):
    """How many batches `batches` yields per epoch on each of `world` processes."""
    return math.ceil((n - n % world) // world / batch_size)


def check_encoded(examples, tokenizer, vocab_size, model_dir):
    """Every example must start with [CLS] (the classifier reads position 0) and use ids the model
    has: a tokenizer without its post-processor, or one from another model, fails loudly here."""
    cls = next((i for i in map(tokenizer.token_to_id, ("[CLS]", "<s>")) if i is not None), None)
    if cls is None or any(not ids or ids[0] != cls for ids, _ in examples):   # RoBERTa's [CLS] is <s>
        raise BadInput(f"{model_dir}: its tokenizer does not start inputs with [CLS] (no post_processor in "
                       "tokenizer.json?): use the tokenizer that came with the model")
    top = max(max(ids) for ids, _ in examples)
    if top >= vocab_size:
        raise BadInput(f"{model_dir}: the tokenizer makes id {top}, but config.json has vocab_size {vocab_size}: "
                       "the tokenizer and the weights are from different models")


def batches(examples, labels, batch_size, shuffle=False, seed=0, epoch=0, rank=0, world=1):
    """Yield dicts of tensors: input_ids, attention_mask, token_type_ids (B, T) padded to the
    longest sequence of the batch (pad id 0), and labels (B,). Shuffling is deterministic in
    (seed, epoch); with world > 1 each rank takes every world-th example."""
    order = np.arange(len(examples))
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(len(examples))
    # every rank must take the same number of steps (DDP all-reduces each one): drop the remainder
    order = order[:len(order) - len(order) % world][rank::world]
    regression = isinstance(labels[0], float)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        T = max(len(examples[i][0]) for i in idx)
        ids = torch.zeros(len(idx), T, dtype=torch.long)
        types = torch.zeros(len(idx), T, dtype=torch.long)
        mask = torch.zeros(len(idx), T, dtype=torch.long)
        for row, i in enumerate(idx):
            n = len(examples[i][0])
            ids[row, :n] = torch.tensor(examples[i][0])
            types[row, :n] = torch.tensor(examples[i][1])
            mask[row, :n] = 1
        y = torch.tensor([labels[i] for i in idx], dtype=torch.float32 if regression else torch.long)
        yield {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": y}
