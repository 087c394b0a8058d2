"""
Attention top-k: before each layer, keep the tokens that received the most attention in the layer
before it, a fixed share of each input's length, with no predictor to learn.

PoWER-BERT (Goyal et al., ICML 2020) ranks each token by its significance, the attention it receives
summed over heads and query rows, and keeps the top l_j tokens after layer j; LTP (Kim et al., KDD 2022)
learns a threshold on the same score (averaged over heads and rows) instead of a count. Here:
  - the score of token t entering layer i is the attention it received in layer i-1, averaged over
    the heads and over the real query rows (the mean over rows, as both papers; not the [CLS] row);
  - layer 0 sees every token (there is no attention before it); entering layer i >= 1 each sequence
    keeps ceil(r^i n) of its n real tokens (at least 1), a geometric schedule with one ratio r, found
    by bisection so that the dev set's FLOPs (flops.py: no padding, nothing counted for the ranking,
    which reads the attention the layer computed anyway) are 1/S of the dense model's;
  - [CLS] is always kept, and a dropped token leaves with its state as it entered the layer that
    dropped it (Eq. 3, as in transkimmer.pruned_encode, whose gather and write-out it calls).
The kept tokens are really gathered, in training as at inference: `train.py --topk-speedup S`
prunes a fine-tuned baseline's checkpoint without retraining (with --eval-only), or fine-tunes with
the pruning on (with --baseline).
PoWER-BERT learns its counts per layer on the training set (a soft extraction) and retrains; the
geometric schedule is our stand-in for that search, one number for the whole model.
"""

import math
import types

import torch
import torch.nn.functional as F

import flops
import transkimmer
from model import encoder


def keep_ratios(r, L):
    """The fraction of each sequence's real tokens kept entering layers 0..L-1: 1, r, r^2, ..."""
    return [r ** i for i in range(L)]


def keep_counts(n, ratios):
    """Tokens of a sequence of real length n kept entering each layer: ceil(ratio n), at least 1 ([CLS])."""
    return [max(1, math.ceil(f * n - 1e-9)) for f in ratios]


def ratio_for_speedup(lengths, speedup, cfg, steps=50):
    """The r whose schedule puts the FLOPs on `lengths` at 1/speedup of the dense model's; r = 0 keeps
    [CLS] alone from layer 1 on, the most this peer can save: a speed out of its reach (by a tenth) is refused."""
    dense = sum(flops.bert_flops(n, cfg) for n in lengths)
    cost = lambda r: sum(flops.transkimmer_flops(n, keep_counts(n, keep_ratios(r, cfg.num_hidden_layers)), cfg)
                         for n in lengths)
    if dense / cost(0.0) < 0.9 * speedup:
        raise SystemExit(f"error: --topk-speedup {speedup:g}: with every token in layer 0 and [CLS] alone after it, "
                         f"this peer saves at most {dense / cost(0.0):.2f}x on this dev set: ask for less")
    lo, hi = 0.0, 1.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if dense / cost(mid) > speedup else (lo, mid)
    return hi


def attend(block, x, valid):
    """One BERT layer (block) on x (B, T, H) whose real tokens are `valid` (B, T), with the attention
    written out: the layer's output and the attention each token received (B, T), the mean over
    heads and real query rows."""
    a, (B, T, H) = block.attn, x.shape
    q, k, v = (lin(x).view(B, T, a.nh, H // a.nh).transpose(1, 2) for lin in (a.q, a.k, a.v))
    s = (q @ k.transpose(-2, -1)) / (q.shape[-1] ** 0.5)
    p = s.masked_fill(~valid[:, None, None, :], float("-inf")).softmax(-1)          # (B, nh, T, T)
    received = (p * valid[:, None, :, None]).sum((1, 2)) / (a.nh * valid.sum(1, keepdim=True))
    y = F.dropout(p, a.dropout, block.training) @ v
    return block.finish(x, a.o(y.transpose(1, 2).reshape(B, T, H))), received.detach()


def top_tokens(received, tokens, counts):
    """The keep mask (B, T') of the `counts` (B,) tokens of each row that received the most attention;
    [CLS] first, and slots holding no token never."""
    score = received.masked_fill(~tokens.valid, -1.0).masked_fill(tokens.pos == 0, 2.0)   # (scores lie in [0, 1])
    rank = score.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
    return (rank < counts[:, None]) & tokens.valid


def topk_encode(enc, ratios, h, attention_mask, prune=None):
    """The encoder's layers with attention top-k pruning (replaces BertModel.run_layers): the kept tokens
    gathered before each layer (transkimmer.compact), the dropped ones written out (transkimmer.write_out_)."""
    B, T, H = h.shape
    L = len(enc.stack)
    out = torch.cat([h, h.new_zeros(B, 1, H)], dim=1)          # (B, T+1, H); row T: the spare slot
    entered = torch.zeros(B, T + 1, dtype=torch.long, device=h.device)
    counts = torch.tensor([keep_counts(n, ratios) for n in attention_mask.sum(1).tolist()], device=h.device)  # (B, L)
    tokens = transkimmer.compact(h, torch.arange(T, device=h.device).expand(B, T), attention_mask.bool())
    for i, layer in enumerate(enc.stack):
        if i > 0:
            keep = top_tokens(received, tokens, counts[:, i])
            transkimmer.write_out_(out, entered, tokens.x, tokens.pos, tokens.valid, i)
            tokens = transkimmer.compact(tokens.x, tokens.pos, keep)
        x, received = attend(layer, tokens.x, tokens.valid)
        tokens = tokens._replace(x=x)
    transkimmer.write_out_(out, entered, tokens.x, tokens.pos, tokens.valid, L)
    return transkimmer.skim_output(out[:, :T], entered[:, :T], attention_mask, L)


def prune_by_attention(model, r):
    """Install the pruning on a plain (dense) model, in place: every forward, training and
    inference, runs topk_encode with the schedule of ratio r. Returns the model."""
    enc = encoder(model)
    if enc.predictors is not None:
        raise SystemExit("error: --topk-speedup prunes a plain BERT by its attention: pass --baseline "
                         "(or a --baseline checkpoint with --eval-only)")
    ratios = keep_ratios(r, len(enc.stack))
    enc.run_layers = types.MethodType(lambda self, h, mask, prune=None: topk_encode(self, ratios, h, mask), enc)
    return model
