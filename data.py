"""
From texts to the model's inputs: tokenisation with `tokenizers`, and padded batches. (Reading a
task's files is in tasks/: GLUE's TSV files in tasks/glue.py, your own CSV, TSV and JSON Lines in
tasks/own_data.py; tasks/download.py fetches data and checkpoints when they are not on disk.)

    load_tokenizer(model_dir)              -> a `tokenizers.Tokenizer` (tokenizer.json, else vocab.txt)
    encode(tokenizer, texts, max_length)   -> token ids and token types, [CLS] a [SEP] (b [SEP])
    batches(examples, batch_size, ...)     -> dicts of tensors, padded to the longest in the batch
"""

import json
import math
import os

import numpy as np
import torch
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer


class InputError(Exception):
    """Something the user gave is wrong or missing (a file, a folder, a value): one line that names it
    and the fix. Commands print it as `error: ...` (cli/errors.py); any other exception is a bug."""
class MissingInput(InputError, FileNotFoundError): pass
class BadInput(InputError, ValueError): pass


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
