import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from model import BertConfig, build, encoder  # noqa: E402


def tiny_config(**kw):
    """A tiny random BERT: 3 layers, hidden 32, 4 heads, for fast CPU tests."""
    base = dict(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)
    base.update(kw)
    return BertConfig(**base)


def make_batch(lengths, T=None, vocab=100, seed=0):
    """input_ids (B, T) starting with [CLS]=1, random tokens, then padding 0; attention_mask."""
    g = torch.Generator().manual_seed(seed)
    T = T or max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(2, vocab, (n,), generator=g)
        ids[b, 0] = 1
        mask[b, :n] = 1
    return ids, mask


def skimming_model(seed=0, **kw):
    """A tiny Transkimmer whose predictors skim a good share of tokens, differently per layer:
    random last-layer weights with large scale and zero bias instead of the +-mu0 bias."""
    torch.manual_seed(seed)
    model = build(tiny_config(skim=True, **kw))
    enc = encoder(model)
    for pred in enc.predictors:
        torch.nn.init.normal_(pred.fc2.weight, 0.0, 1.0)
        torch.nn.init.normal_(pred.fc2.bias, 1.0, 0.1)  # lean towards keep, so later layers see work
    return model


@pytest.fixture
def tiny():
    return tiny_config
