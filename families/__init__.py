"""
Checkpoint families other than BERT. model.py is one BERT and names no family: a family is a config
adapter (its config.json's names and differences -> BertConfig's fields) and, where its tensors are
named otherwise, a rename table that load_weights.py applies.

    family       what differs from BERT                                  adapter and table
    bert         -                                                       (load_weights.BERT_RENAMES)
    roberta      positions counted after the padding id                  roberta.py (BERT's names)
    distilbert   no token types, no pooler, a pre-classifier in the head  distilbert.py
    albert       factorised embeddings, one layer shared by every depth   albert.py

References: Hugging Face transformers' RoBERTa, DistilBERT and ALBERT models (tests/test_families.py
compares with their outputs on tiny checkpoints).
"""

from dataclasses import fields

from families import albert, distilbert, roberta

ADAPTERS = {"bert": lambda d: d, "roberta": roberta.adapt, "distilbert": distilbert.adapt, "albert": albert.adapt}
RENAMES = {"distilbert": distilbert.RENAMES, "albert": albert.RENAMES}   # the others: BERT's
GELUS = {"gelu": "none", "gelu_python": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}   # -> F.gelu's approximate
SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
         "max_position_embeddings")


def adapt(d):
    """A config.json (a dict) of any supported family in BertConfig's names; a family or a variant
    this BERT does not compute is refused by name (a ValueError), never loaded to compute otherwise."""
    if not isinstance(d, dict):
        raise ValueError(f"config.json must hold a JSON object, not a {type(d).__name__}")
    family = d.get("model_type", "bert")
    if family not in ADAPTERS:   # a family's keys may look like BERT's while it computes otherwise: refuse
        raise ValueError(f"model_type {family!r} is not supported: this code loads {', '.join(ADAPTERS)} checkpoints")
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"position_embedding_type {d['position_embedding_type']!r} is not supported: only 'absolute'")
    return ADAPTERS[family](d)


def check(cfg):
    """The fields of a BertConfig read from a file: sizes, widths and names it can be built with, and
    every number a number (one written as a string, "1e-12", would fail deep inside torch)."""
    for f in SIZES + ("type_vocab_size",):
        v = getattr(cfg, f)
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if f == "type_vocab_size" else 1):
            raise ValueError(f"config.json: {f} must be a whole number >= 1, got {v!r}")
    w = cfg.skim_predictor_width
    if w is not None and (not isinstance(w, int) or isinstance(w, bool) or w < 1):
        raise ValueError(f"config.json: skim_predictor_width must be a whole number >= 1 or null, got {w!r}")
    if cfg.head not in ("classifier", "span"):
        raise ValueError(f"config.json: head must be 'classifier' or 'span', got {cfg.head!r}")
    if cfg.id2label is not None and not isinstance(cfg.id2label, dict):
        raise ValueError(f"config.json: id2label must be an object {{\"0\": label, ...}}, got {cfg.id2label!r}")
    if cfg.hidden_act not in GELUS:
        raise ValueError(f"hidden_act={cfg.hidden_act!r} is not supported: only {', '.join(GELUS)}")
    for f in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
        v = getattr(cfg, f)
        if not (v is None and f == "classifier_dropout") and not (isinstance(v, (int, float)) and 0 <= v < 1):
            raise ValueError(f"config.json: {f} must be a probability in [0, 1), got {v!r}")
    if not isinstance(cfg.num_labels, int) or isinstance(cfg.num_labels, bool) or cfg.num_labels < 0:
        raise ValueError(f"config.json: num_labels must be a whole number >= 0, got {cfg.num_labels!r}")
    if cfg.hidden_size % cfg.num_attention_heads:
        raise ValueError(f"hidden_size {cfg.hidden_size} is not a multiple of num_attention_heads {cfg.num_attention_heads}")
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if f.type in (int, float) and v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ValueError(f"config.json: {f.name} must be a number, got {v!r}")
