"""
Pretrained BERT from safetensors, and saving / reloading fine-tuned models.

A checkpoint folder in the Hugging Face layout holds `config.json` and `model.safetensors`.
Every checkpoint key goes through its rename table (BERT_RENAMES, or its family's in families/) to our names; then every
parameter of the model must be found with the right shape, and every checkpoint tensor must be
used, or we stop with an error naming the key. Tolerated on purpose:
  - `bert.` prefixes and LayerNorm `gamma`/`beta` (pre-training checkpoints, old TF conversions);
  - `cls.*` pre-training heads and the `embeddings.position_ids` buffer: ignored;
  - a missing pooler: a warning, the pooler keeps its fresh initialisation (some checkpoints,
    such as sentence-transformers' MiniLM, have none);
  - fp16 / bf16 tensors: upcast to float32.
A fine-tuned model is saved as `model.safetensors` + `config.json` (our BertConfig, the skim
settings included): `checkpoint_state` gives both; storage/files.py writes them without ever leaving
half-written files.

References:
  - nanoGPT `GPT.from_pretrained` and llm.c `train_gpt2.py`: one explicit table, assert every key.
"""

import json
import os
import re
import warnings

import torch
from safetensors import SafetensorError, safe_open

import families
from data import BadInput, MissingInput
from model import BertConfig, build, encoder

# checkpoint key -> our key, applied in order, each at most once. Other families with other names
# have their own rules in families/, followed by the embeddings' (RoBERTa uses BERT's table).
EMBEDDING_RENAMES = [   # every family names its embeddings as BERT does
    (r"^embeddings\.word_embeddings\.", "embed.word."),
    (r"^embeddings\.position_embeddings\.", "embed.position."),
    (r"^embeddings\.token_type_embeddings\.", "embed.token_type."),
    (r"^embeddings\.LayerNorm\.", "embed.ln."),
]
BERT_RENAMES = [
    (r"^(bert|roberta)\.", ""),
    (r"\.gamma$", ".weight"),
    (r"\.beta$", ".bias"),
    *EMBEDDING_RENAMES,
    (r"^encoder\.layer\.(\d+)\.attention\.self\.query\.", r"layers.\1.attn.q."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.key\.", r"layers.\1.attn.k."),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.value\.", r"layers.\1.attn.v."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attn.o."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.ln1."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.ff1."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.ff2."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.ln2."),
    (r"^pooler\.dense\.", "pooler."),
]
RENAMES = {family: [*rules, *EMBEDDING_RENAMES] for family, rules in families.RENAMES.items()}   # the others: BERT's
# pre-training heads (BERT's cls., RoBERTa's lm_head., DistilBERT's vocab_*, ALBERT's predictions.) and buffers
IGNORED = re.compile(r"^((bert|roberta|distilbert|albert)\.)?(cls\.|lm_head\.|predictions\.|sop_classifier\.|"
                     r"vocab_(transform|layer_norm|projector)\.|"
                     r"embeddings\.(position_ids|token_type_ids)$)")
HEADS = ("classifier.", "pre_classifier.", "qa_outputs.")   # a task's head: another task's is left out


def rename(key, family="bert"):
    """A checkpoint key in our names: encoder keys bare, head keys (classifier.*) as they are."""
    for pattern, repl in RENAMES.get(family, BERT_RENAMES):
        key = re.sub(pattern, repl, key)
    return key


def checkpoint_name(key, family="bert"):
    """One of our keys in the checkpoint's (Hugging Face) names, for error messages: the prefix
    rules of the rename table read backwards ("layers.3.attn.q.weight" -> "encoder.layer.3.attention.self.query.weight")."""
    for pattern, repl in RENAMES.get(family, BERT_RENAMES):
        if not (pattern.startswith("^") and repl):
            continue   # the bert. prefix and the gamma/beta suffixes: not a name of its own
        m = re.match("^" + re.escape(repl).replace(re.escape("\\1"), r"(\d+)"), key)
        if m:
            return pattern[1:].replace("\\.", ".").replace(r"(\d+)", m.group(1) if m.groups() else "") + key[m.end():]
    return key


def checkpoint_files(folder):
    """(config.json, model.safetensors) of a checkpoint folder; a missing one is an error naming it."""
    folder = os.fspath(folder)
    if os.path.isfile(folder):
        raise MissingInput(f"checkpoint {folder!r} is a file: pass the folder that holds config.json and "
                           "model.safetensors")
    if not os.path.isdir(folder):
        raise MissingInput(f"checkpoint folder {folder!r} does not exist: pass a folder holding "
                                "config.json and model.safetensors (or a hub name, see train.py --model)")
    paths = (os.path.join(folder, "config.json"), os.path.join(folder, "model.safetensors"))
    for p in paths:
        if not os.path.isfile(p):
            raise MissingInput(f"{p} is missing: a checkpoint folder needs config.json and model.safetensors "
                                    "(PyTorch .bin checkpoints are not read: convert them to safetensors)")
    return paths


def read_config(path):
    """config.json as a BertConfig; a broken file is an error naming it."""
    try:
        return BertConfig.from_json(path)
    except (ValueError, UnicodeDecodeError) as e:   # json.JSONDecodeError is a ValueError
        raise BadInput(f"{path}: {e}") from None


def saved_by_train(folder):
    """Whether a checkpoint folder was written by train.py (our own tensor names; a Hugging Face
    config.json has no "skim" key). Its config.json must be readable (read_config first)."""
    with open(os.path.join(folder, "config.json")) as f:
        return "skim" in json.load(f)


def load_pretrained(path, skim=False, num_labels=None, **overrides):
    """A model with the weights of the checkpoint folder `path`.

    num_labels=None: the encoder alone (BertModel), unless head="span" (BertForQuestionAnswering,
    among the overrides). Otherwise a BertForSequenceClassification;
    its head is taken from the checkpoint when present, else freshly initialised. With skim=True
    the predictors are freshly initialised (Eqs. 8-9) unless the checkpoint has them.
    overrides: other BertConfig fields (skim_tau, skim_coefficient, dropout, ...).
    """
    config_path, weights_path = checkpoint_files(path)
    cfg = read_config(config_path)
    cfg.skim, cfg.num_labels = skim, num_labels or 0
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise TypeError(f"unknown BertConfig field {k!r}")
        setattr(cfg, k, v)
    model = build(cfg)
    _load_into(model, weights_path, may_be_new=("predictors.", "classifier.", "pre_classifier.", "qa_outputs.", "pooler."))
    return model


def load_model(path):
    """Reload a model saved by storage/files.py (`checkpoint_state`): its config as saved, every tensor required."""
    config_path, weights_path = checkpoint_files(path)
    model = build(read_config(config_path))
    _load_into(model, weights_path, may_be_new=())
    return model


def _load_into(model, weights_path, may_be_new):
    """Copy the checkpoint into model through its rename table; may_be_new: our key prefixes that may be
    absent from the checkpoint (they keep their initialisation)."""
    head = model is not encoder(model)
    ours = {k.removeprefix("bert.") if head else k: v for k, v in model.state_dict().items()}
    found, other_head = set(), []
    try:
        f = safe_open(weights_path, framework="pt")
    except SafetensorError as e:
        raise BadInput(f"{weights_path} is not a readable safetensors file ({e}): truncated or another format?") from None
    with f:
        for ckpt_key in f.keys():
            if IGNORED.match(ckpt_key):
                continue
            key = rename(ckpt_key, model.config.model_type)
            if key.startswith(HEADS) and key not in ours:
                other_head.append(ckpt_key)
                continue
            if key not in ours:
                raise BadInput(f"unexpected tensor {ckpt_key!r} in {weights_path} (renamed {key!r}): "
                               "not a BERT parameter this model has; is the config.json of the same model?")
            t = f.get_tensor(ckpt_key)
            if not t.is_floating_point():
                raise BadInput(f"tensor {ckpt_key!r} in {weights_path} is {t.dtype}, not floating point: "
                               "a BERT checkpoint holds float weights")
            if tuple(t.shape) != tuple(ours[key].shape):
                if key.startswith(HEADS) and key.startswith(tuple(may_be_new)):   # a head of another size: a fresh one
                    other_head.append(ckpt_key)
                    continue
                raise BadInput(f"tensor {ckpt_key!r} in {weights_path} has shape {tuple(t.shape)}, "
                               f"the model expects {tuple(ours[key].shape)} from config.json")
            with torch.no_grad():
                ours[key].copy_(t.float())
            found.add(key)
    if other_head:
        warnings.warn(f"{weights_path} has another head ({', '.join(sorted(other_head))}); loading the encoder alone "
                      "and a fresh head")
    missing = [k for k in ours if k not in found]
    if "pooler." in may_be_new and any(k.startswith("pooler.") for k in missing):
        warnings.warn(f"{weights_path} has no pooler; it keeps its random initialisation")
    for k in missing:
        if not k.startswith(tuple(may_be_new)):
            raise BadInput(f"tensor {checkpoint_name(k, model.config.model_type)!r} (ours: {k!r}) is missing from {weights_path}: the checkpoint is incomplete "
                           "or for another architecture")


def checkpoint_state(model):
    """What a checkpoint holds of `model`: its tensors under the family's own names (BERT's: Hugging
    Face's, so other tools load the encoder and head; the predictors are extra keys) and config.json's
    text (our BertConfig, the skim settings included). storage/files.py writes them, atomically."""
    family, head = model.config.model_type, model is not encoder(model)
    name = lambda k: k if head and not k.startswith("bert.") else (f"{family}." * head) + checkpoint_name(k.removeprefix("bert."), family)
    tensors = {name(k): v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    return tensors, json.dumps(model.config.to_dict(), indent=2)


if __name__ == "__main__":   # a part of train.py, not a command: say which command uses it
    raise SystemExit("load_weights.py loads checkpoints for train.py: run python train.py --model DIR (or a hub name)")
