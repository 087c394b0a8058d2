"""flops.py against torch.utils.flop_counter.FlopCounterMode, plain and pruned."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import flops
from tiny import make_batch, skimming_model, tiny_config
from model import BertConfig, build, encoder


def measured(model, ids, mask):
    # FlopCounterMode has no formula for the CPU flash-attention kernel: the math backend
    # decomposes attention into matrix products it counts.
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        out = model(ids, mask)
    return counter.get_total_flops(), out


@pytest.mark.parametrize("n,family", [(8, "bert"), (37, "bert"), (128, "bert"), (37, "distilbert"), (37, "roberta"),
                                      (37, "albert")])
def test_flops_plain_model_matches_flop_counter(n, family):
    cfg = BertConfig.from_dict(dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                                    vocab_size=100, model_type=family, max_position_embeddings=256,
                                    **({"embedding_size": 32} if family == "albert" else {})))
    model = build(cfg).eval()
    ids, mask = make_batch([n])
    got, _ = measured(model, ids, mask)
    assert abs(flops.bert_flops(n, cfg) / got - 1) < 0.01, (flops.bert_flops(n, cfg), got)


@pytest.mark.parametrize("seed,width", [(0, None), (1, None), (2, None), (0, 16), (1, 16)])
def test_flops_pruned_model_matches_flop_counter(seed, width):
    """Batch size 1: the pruned model runs each layer on exactly the kept tokens (with the paper's
    H x H predictors, and with narrower ones)."""
    model = skimming_model(seed=seed, hidden_size=64, intermediate_size=256, skim_predictor_width=width).eval()
    assert encoder(model).predictors[0].fc1.out_features == (width or 64)
    ids, mask = make_batch([40], seed=seed)
    got, out = measured(model, ids, mask)
    kept = [int(m.sum()) for m in out.keep_masks]
    assert kept[-1] < 40                                          # it really skims
    count = flops.transkimmer_flops(40, kept, model.config)
    assert abs(count / got - 1) < 0.01, (count, got)


def test_flops_speedups():
    cfg = tiny_config(skim=True)
    lengths = [10, 20]
    assert flops.speedups(lengths, None, cfg, 64) == (1.0, 1.0)
    no_pad, seq = flops.speedups(lengths, [[5, 5, 5], [10, 10, 10]], cfg, 64)
    plain = flops.bert_flops(10, cfg) + flops.bert_flops(20, cfg)
    skim = flops.transkimmer_flops(10, [5, 5, 5], cfg) + flops.transkimmer_flops(20, [10, 10, 10], cfg)
    assert no_pad == pytest.approx(plain / skim) and seq == pytest.approx(2 * flops.bert_flops(64, cfg) / skim)
    # nothing skimmed: the predictors' cost makes it slower than the plain model
    assert flops.speedups(lengths, [[10] * 3, [20] * 3], cfg, 20)[0] < 1.0
    # a model without predictors that prunes otherwise (peers/attention_topk.py) pays for its layers alone
    assert flops.speedups(lengths, [[10] * 3, [20] * 3], tiny_config(), 20)[0] == pytest.approx(1.0)
