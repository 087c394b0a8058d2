"""
Packed tokens: a classifier's inference on the batch's real tokens alone, dense or skimming.

A padded batch runs every Linear, LayerNorm and GELU on B x T rows, T its longest sequence (the
classification path, fast/classify.py, on B x T', T' the most tokens a row still keeps). Packed,
they run on the N tokens the batch really holds, and skimming is one gather of the kept rows:
  - x (N, H) holds the tokens sequence after sequence, each sequence's in its order; seq and pos
    (N,) say whose token each row is and where it stood;
  - attention alone needs the sequences apart: a layer's q, k, v (one product) are scattered into
    (B, t_max, 3H), t_max the longest sequence now, attended under a key mask
    (scaled_dot_product_attention) and gathered back to the N rows;
  - after a predictor the kept rows are gathered in one index_select (a stable sort puts them first,
    so each sequence's tokens stay together and in order);
  - one host sync a layer after a predictor that skims: the kept count and the longest sequence, together.
The plain model runs the same path (predictors None), so that dense and pruned compare fairly. As in
fast/classify.py: no write-out (Eq. 3) of the skimmed tokens, the last layer for [CLS] alone, and
predictors that always keep (always_keeps) skipped; the decisions are transkimmer.pruned_encode's, so
the keep masks are equal and the logits equal within float tolerance (tests/test_fast.py).

    use_packed_path(model)         # a BertForSequenceClassification, Transkimmer or plain, in eval mode
    use_packed_path(model, False)  # back to its own inference
    with packed_inference(model):  # the packed path inside the block, its weights read at its start
"""

from contextlib import contextmanager

import torch
import torch.nn.functional as F

from fast import replace_inference
from fast.classify import always_keeps, batch_of_one, fused_weights, stacked
from transkimmer import SkimOutput, decide, keep_cls, kept_first, skim_output


def pack(h, attention_mask):
    """The real tokens of h (B, T, H) as x (N, H), with their sequence and position (N,) each."""
    B, T, H = h.shape
    idx = attention_mask.reshape(-1).nonzero().squeeze(1)
    return h.reshape(B * T, H).index_select(0, idx), idx // T, idx % T


def packed_layer(layer, x, qkv_weight, seq, rank, starts, lengths, t_max, last):
    """One BERT layer on packed tokens x (N, H): rank (N,) each token's place in its sequence now,
    starts (B,) each sequence's first row ([CLS]), lengths (B,) its tokens. last: the output of the
    [CLS] rows alone, (B, H)."""
    B, H, nh = lengths.shape[0], x.shape[1], layer.attn.nh
    slot = seq * t_max + rank                                                  # (N,) rows of the (B, t_max) grid
    qkv = F.linear(x, *qkv_weight)                                             # (N, 3H)
    grid = qkv.new_zeros(B * t_max, 3 * H).index_copy_(0, slot, qkv)
    q, k, v = grid.view(B, t_max, 3, nh, H // nh).permute(2, 0, 3, 1, 4).unbind(0)   # (B, nh, t_max, hd) each
    if last:
        q, x = q[:, :, :1], x.index_select(0, starts)
    mask = (torch.arange(t_max, device=x.device) < lengths[:, None])[:, None, None, :]   # (B, 1, 1, t_max)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)               # (B, nh, t_q, hd)
    y = y.transpose(1, 2).reshape(-1, H)
    return layer.finish(x, layer.attn.o(y if last else y.index_select(0, slot)))


def skim(pred, x, seq, pos, lengths):
    """A predictor's decisions on packed tokens ([CLS] kept): the kept rows, in order, and the new
    lengths; (n, t_max) come back to the host together, the layer's one sync."""
    keep = keep_cls(decide(pred(x), training=False), pos)                     # (N,) bool
    lengths = torch.zeros_like(lengths).index_add_(0, seq, keep.to(lengths.dtype))
    n, t_max = (int(v) for v in torch.stack([keep.sum(), lengths.max()]).tolist())
    if n < x.shape[0]:
        idx = kept_first(keep)[:n]
        x, seq, pos = x.index_select(0, idx), seq.index_select(0, idx), pos.index_select(0, idx)
    return x, seq, pos, lengths, t_max


def packed_encode(h, attention_mask, layers, predictors, skipped, qkv_weights, fused=None):
    """The classifier's encoder on packed tokens: the last layer's [CLS] state (B, 1, H) and, with
    predictors (None: the plain model), pruned_encode's keep masks and skim loss. One sequence with
    `fused` weights goes through fast/classify.py's one_sequence (batch_of_one: a batch of one has no
    padding to drop, and there its predictor's first product and q, k, v share one)."""
    B, T, H = h.shape
    L = len(layers)
    one = batch_of_one(h, attention_mask, layers, predictors, skipped, fused)
    if one is not None:
        return one
    x, seq, pos = pack(h, attention_mask)
    lengths, t_max = attention_mask.sum(1), T                                  # (a batch is padded to its longest)
    entered = torch.zeros(B * T, dtype=torch.long, device=h.device)
    rank = None
    for i, layer in enumerate(layers):
        if predictors is not None and not skipped[i]:
            x, seq, pos, lengths, t_max = skim(predictors[i], x, seq, pos, lengths)
            rank = None
        if predictors is not None:
            entered.index_fill_(0, seq * T + pos, i + 1)
        starts = torch.cumsum(lengths, 0) - lengths
        if rank is None:                                                       # (the layers between skims: the same)
            rank = torch.arange(x.shape[0], device=h.device) - starts.index_select(0, seq)
        x = packed_layer(layer, x, qkv_weights[i], seq, rank, starts, lengths, t_max, last=i == L - 1)
    if predictors is None:
        return SkimOutput(x[:, None], None, None)
    return skim_output(x[:, None], entered.view(B, T), attention_mask, L)


@contextmanager
def packed_inference(model, on=True):
    """Inside the block, the model's inference through the packed path (where it applies: a classifier
    head, an encoder whose inference nothing else has replaced, a peer's say), with its weights as they
    are at the start; its own inference after (train.py evaluates so between training epochs)."""
    enc = model.bert if hasattr(model, "bert") else None
    on = on and enc is not None and model.config.head == "classifier" and "run_layers" not in enc.__dict__
    if on:
        use_packed_path(model)
    try:
        yield model
    finally:
        if on:
            use_packed_path(model, False)


def use_packed_path(model, on=True):
    """Run the inference of a BertForSequenceClassification (Transkimmer or plain) through
    packed_encode (on=True), or its own again (False); training is untouched. Reads the predictors
    and copies q, k, v's weights once: call it on the trained model. Returns the model."""
    enc = model.bert
    if not on:
        replace_inference(enc, None)
        return model
    if model.config.head != "classifier":
        raise ValueError("the packed path is for a model with a classifier head")
    skipped = [always_keeps(p) for p in enc.predictors] if enc.predictors is not None else None
    fused = fused_weights(enc.stack, enc.predictors, skipped) if enc.predictors is not None else None
    qkv = [stacked([l.attn.q, l.attn.k, l.attn.v]) for l in enc.stack]
    replace_inference(enc, lambda h, mask: packed_encode(h, mask, enc.stack, enc.predictors, skipped, qkv, fused))
    return model
