"""
What a user could do instead of learning to skim, at the same FLOPs (docs/peers.md holds the table):

    depth.py            the checkpoint's first k layers            train.py --baseline --layers k
    truncate.py         shorter inputs                             train.py --baseline --truncate-speedup S
    attention_topk.py   keep the tokens that receive the most      train.py --baseline --topk-speedup S
                        attention (PoWER-BERT)                     (--eval-only: on a baseline, no retraining)

Each is evaluated by evaluate.py and counted by flops.py like Transkimmer. To put every run on one
scale, results.json also records `flops_speedup_full`: the FLOPs of the full model (every layer of
the model it started from, dense, on the dev inputs at the task's own --max-length) over the run's
own FLOPs on the same examples, and `authors_speedup`, the paper's count: the tokens the full model
processes over all its layers, over the tokens this run processes (1 / the mean kept fraction).
"""

import copy
import json
import os
from dataclasses import dataclass, replace

import data
import flops
from peers.attention_topk import prune_by_attention, ratio_for_speedup
from peers.depth import first_layers
from peers.truncate import length_for_speedup
from tasks import QA


@dataclass
class Reference:
    """The full model a run is measured against: its config, and the dev inputs' real lengths at the
    task's own max length; the run's config (the model may change under it) and max length."""
    cfg: object
    lengths: list
    model_cfg: object
    max_length: int


def setup(cfg, model, tok_dir, dev_sets):
    """The full model's scale for this run (a Reference; None for span QA, whose windows are not
    inputs), and the peer the run asks for (cfg: train.TrainConfig) applied to the model. Returns (cfg,
    model, reference, peer): cfg with the max length truncation chose, peer what results.json records."""
    if cfg.task == QA:
        return cfg, model, None, None
    texts = next(iter(dev_sets.values()))[0]
    lengths = [len(ids) for ids, _ in data.encode(data.load_tokenizer(tok_dir), texts, cfg.max_length)]
    full, peer = copy.deepcopy(model.config), None
    if cfg.eval_only:   # a checkpoint of the first k layers: measured against the model it was cut from
        peer = trained_peer(cfg.checkpoint)
        full.num_hidden_layers = (peer or {}).get("of", full.num_hidden_layers)
    if cfg.layers:
        peer = dict(method="layers", layers=cfg.layers, of=full.num_hidden_layers)
        model = first_layers(model, cfg.layers)
    elif cfg.truncate_speedup:
        L = length_for_speedup(lengths, cfg.truncate_speedup, full, shortest=4)
        cfg, peer = replace(cfg, max_length=L), dict(method="truncate", asked=cfg.truncate_speedup, max_length=L)
    elif cfg.topk_speedup:
        r = ratio_for_speedup(lengths, cfg.topk_speedup, full)
        model, peer = prune_by_attention(model, r), dict(method="attention-topk", asked=cfg.topk_speedup, ratio=r)
    return cfg, model, Reference(full, lengths, model.config, cfg.max_length), peer


def trained_peer(checkpoint):
    """The peer a checkpoint was trained as (the record train.py saves inside it), if the first k layers."""
    try:
        with open(os.path.join(checkpoint, "results.json")) as f:
            peer = json.load(f).get("peer")
    except (OSError, ValueError):
        return None
    return peer if isinstance(peer, dict) and peer.get("method") == "layers" else None


def record(result, ref, peer):
    """An evaluation's result with the full model's scale added (flops_speedup_full, authors_speedup)."""
    if ref is None:
        return result
    lengths = [min(n, ref.max_length) for n in ref.lengths]   # (what truncation leaves of each input)
    run = sum(flops.bert_flops(n, ref.model_cfg) for n in lengths) / result["flops_speedup_no_padding"]
    tokens = sum(result["kept_fraction_per_layer"]) * sum(lengths)
    return dict(result, peer=peer, flops_speedup_full=sum(flops.bert_flops(n, ref.cfg) for n in ref.lengths) / run,
                authors_speedup=ref.cfg.num_hidden_layers * sum(ref.lengths) / tokens)
