"""
Static depth: the pretrained checkpoint's first k layers, fine-tuned as the baseline is.

The obvious way to buy speed without any method: a BERT of k of its L layers costs k/L of the
FLOPs on every token (the pooler aside), and every one of those FLOPs is a dense matrix product,
so the saving is all time. DistilBERT (Sanh et al., 2019) starts its student this way (every other
layer of BERT, then distils); Sajjad et al. ("On the effect of dropping layers of pre-trained
transformer models", Computer Speech & Language 2023) find that keeping the bottom layers and
fine-tuning is a strong baseline. We keep the bottom k: `train.py --layers k` (k = 4, 3, 2 of
MiniLM's 6 for 1.5x, 2x, 3x), with or without `--teacher` (the 6-layer baseline's checkpoint).
"""

import torch.nn as nn

from model import encoder


def first_layers(model, k):
    """The model with only its first k layers (in place; returns it). The saved checkpoint then holds
    k layers and says num_hidden_layers = k, so it reloads as the smaller model."""
    enc, L = encoder(model), model.config.num_hidden_layers
    if not 1 <= k <= L:
        raise SystemExit(f"error: --layers {k}: the model has {L} layers; pass 1 to {L}")
    if enc.config.shared_layer or enc.predictors is not None:
        raise SystemExit("error: --layers keeps a plain BERT's first layers: pass --baseline, "
                         "and a model whose layers are not shared (not ALBERT)")
    enc.layers = nn.ModuleList(enc.layers[:k])
    enc.stack = list(enc.layers)
    model.config.num_hidden_layers = k
    return model
