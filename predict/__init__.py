"""
Use what you trained: a classifier (or regressor) from a checkpoint train.py wrote, in three lines,
on the fastest tested path (fast/packed.py: the real tokens alone, the same decisions as the
reference, the logits equal within float tolerance: tests/test_fast.py).

    from predict import Classifier
    clf = Classifier.load("out/sst2/checkpoint")
    clf(["a gripping film", "dull"])    # a Prediction(label, scores, kept) per text, in order
    clf([("a man is playing", "a man plays")])   # pair tasks: (text, pair) tuples

and over a file, one text per line (.txt), or CSV, TSV or JSON Lines with the training columns
(`python -m predict --help`):

    python -m predict --checkpoint out/sst2/checkpoint --input texts.txt --out predictions.jsonl
"""

import json
import os
from dataclasses import dataclass

import torch

import data
import transkimmer
from cli.errors import BadInput
from fast.packed import use_packed_path
from load_weights import load_model
from model import autocast
from tasks import OWN_DATA, TASKS, classes_of


def check_head(model):
    """The model, if a classifier or regressor; span QA is refused in one line."""
    if model.config.head != "classifier" or not model.config.num_labels:
        raise BadInput("Classifier takes a classification or regression checkpoint; span QA (squad_v2) "
                       "is evaluated with train.py --eval-only")
    return model


@dataclass
class Prediction:
    label: object     # the class name (as training named it), or the value for regression
    scores: list      # the classes' probabilities (softmax), or [the value]
    kept: float       # the fraction of the input's tokens kept entering each layer, averaged over the layers


class Classifier:
    """A fine-tuned sequence classifier (or regressor) in eval mode on `device`: call it on texts."""

    def __init__(self, model, tokenizer, max_length, device="cpu", batch_size=32):
        check_head(model)
        self.model, self.tokenizer, self.max_length = use_packed_path(model.to(device).eval()), tokenizer, max_length
        self.device, self.batch_size, self.classes = torch.device(device), batch_size, classes_of(model.config)

    @classmethod
    def load(cls, checkpoint, device=None, batch_size=32, max_length=None):
        """A checkpoint/ folder of train.py; max_length: the one it was trained with (its results.json),
        else its task's (paper Table 2)."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = check_head(load_model(checkpoint))
        if max_length is None:
            max_length = TASKS.get(model.config.finetuning_task, OWN_DATA)["max_length"]
            record = os.path.join(checkpoint, "results.json")
            if os.path.isfile(record):
                with open(record) as f:
                    max_length = json.load(f).get("args", {}).get("max_length") or max_length
        return cls(model, data.load_tokenizer(checkpoint), max_length, device, batch_size)

    @torch.no_grad()
    def __call__(self, texts):
        """Predictions for texts (strings, or (text, pair) tuples), in their order, batch_size at a time."""
        texts = list(texts)
        if not texts:
            return []
        examples, out = data.encode(self.tokenizer, texts, self.max_length), []
        for b in data.batches(examples, [0] * len(examples), self.batch_size):
            mask = b["attention_mask"].to(self.device)
            with autocast(self.device):
                o = self.model(b["input_ids"].to(self.device), mask, b["token_type_ids"].to(self.device))
            logits = o.logits.float()
            scores = logits if self.classes is None else torch.softmax(logits, -1)
            kept = torch.ones(len(mask)) if o.keep_masks is None else (
                transkimmer.kept_per_layer(o.keep_masks).sum(1) / (len(o.keep_masks) * mask.sum(1))).float().cpu()
            for s, k in zip(scores.cpu().tolist(), kept.tolist()):
                label = s[0] if self.classes is None else self.classes[max(range(len(s)), key=s.__getitem__)]
                out.append(Prediction(label, s, k))
        return out
