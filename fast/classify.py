"""
Pruned inference for sequence classification, doing no work the classifier does not read.

The classifier reads one vector, the last layer's state of [CLS]. transkimmer.pruned_encode also
computes what a span head or a reader of the encoder output needs; here:
  - no write-out (Eq. 3): a skimmed token's state is never copied to the output; only the number
    of layers each token entered is recorded, for the keep masks (one small scatter a layer);
  - the last layer computes queries, attention output and feed-forward for [CLS] alone (the other
    tokens are still its keys and values);
  - a layer entered by [CLS] alone needs neither queries nor keys: attention over one key is that
    key's value, so the layer is o(v(x)), then the residuals, LayerNorms and feed-forward;
  - a predictor that provably keeps every token, whatever its input (always_keeps), is not run,
    and nothing is gathered after it;
  - one sequence (batch 1): the predictor's first Linear and the layer's query, key and value
    projections read the tokens in one matrix product (the skimmed rows are dropped after it): at
    batch 1 a product costs about what reading its weights costs, so four become one.
The decisions are pruned_encode's, so the keep masks and the skim loss are equal, and the logits
equal within float tolerance (a matrix product on one row may add in another order).

    use_classify_path(model)      # model: a Transkimmer BertForSequenceClassification, in eval mode
    use_classify_path(model, False)   # back to transkimmer.pruned_encode
"""

import torch
import torch.nn.functional as F

from fast import replace_inference
from transkimmer import Kept, decide, gather_kept, keep_cls, skim_output


GELU_MIN = 0.1701   # GELU(u) >= -0.16998 (erf form), >= -0.17005 (tanh form) for every u


def always_keeps(pred, margin=2e-2):
    """True when the predictor keeps every token for any input, so that running it changes nothing.
    It keeps iff d . g + (b_keep - b_skim) > 0, with d = w_keep - w_skim and g = GELU(u), u = gamma n
    + beta the LayerNorm's output: n is normalised, |n| <= sqrt(W) (W its width). GELU(u) lies in
    [-GELU_MIN, max(u, 0)], so d_j g_j >= -GELU_MIN d_j where d_j >= 0, and >= -|d_j| (|gamma_j n_j|
    + |beta_j|) where d_j < 0; summed (Cauchy-Schwarz on the n terms), a lower bound of d . g over
    every input. If the bias gap beats it by a margin (2 % of it: rounding, bf16 under autocast
    included), the predictor always keeps."""
    d = (pred.fc2.weight[1] - pred.fc2.weight[0]).detach().double()
    gamma, beta = pred.ln.weight.detach().double(), pred.ln.bias.detach().double()
    neg = d < 0
    bound = GELU_MIN * d[~neg].sum() + (d * gamma)[neg].norm() * d.numel() ** 0.5 + (d * beta)[neg].abs().sum()
    gap = float(pred.fc2.bias[1].detach() - pred.fc2.bias[0].detach())
    return gap - float(bound) > margin * (1 + abs(gap))


def compact(x, pos, keep):
    """transkimmer.compact, skipping the work it can: one sequence is indexed (nonzero), a batch in which
    some row keeps all T tokens moves nothing (valid is keep itself). Returns (Kept, full): full when no
    row is short, so that attention needs no mask at all."""
    if keep.shape[0] == 1:   # one sequence: an index is enough (nonzero syncs with the host once)
        idx = keep[0].nonzero().squeeze(1)                                   # (T',)
        if idx.shape[0] < keep.shape[1]:                                     # (nothing skimmed: no copy)
            x, pos = x.index_select(1, idx), pos.index_select(1, idx)
        return Kept(x, pos, keep.new_ones(1, idx.shape[0])), True
    n = keep.sum(1)                                                          # (B,)
    t_new, t_min = (int(v) for v in torch.stack([n.max(), n.min()]).tolist())   # (the layer's one sync: both at once)
    kept = Kept(x, pos, keep) if t_new == keep.shape[1] else gather_kept(x, pos, keep, n, t_new)
    return kept, t_min == t_new


def attend_one_key(layer, x):
    """A layer entered by one token a row ([CLS]): softmax over one key is 1, so attention returns
    that key's value and queries and keys are not needed. x (B, 1, H)."""
    return layer.finish(x, layer.attn.o(layer.attn.v(x)))


def attend(layer, x, q, k, v, valid, last):
    """A layer from its queries, keys and values (B, T', H) each; valid (B, T') masks the keys (None:
    all); last: for each row's first token ([CLS]) alone, the others still its keys and values."""
    B, T, H = x.shape
    nh = layer.attn.nh
    heads = lambda t: t.reshape(B, t.shape[1], nh, H // nh).transpose(1, 2)       # (B, nh, T', hd)
    x, q = (x[:, :1], q[:, :1]) if last else (x, q)
    mask = None if valid is None else valid[:, None, None, :]
    y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask)
    return layer.finish(x, layer.attn.o(y.transpose(1, 2).reshape(B, q.shape[1], H)))


def run_layer(layer, x, valid, last):
    if x.shape[1] == 1:                    # (every row holds [CLS] alone)
        return attend_one_key(layer, x)
    if not last:
        return layer(x, valid)
    a = layer.attn                         # the last layer: queries for [CLS] alone
    return attend(layer, x, a.q(x[:, :1]), a.k(x), a.v(x), valid, last=True)


def one_sequence(h, layers, predictors, skipped, fused):
    """classify_encode for batch 1 (no padding): each layer's predictor fc1 and q, k, v in one product
    (fused[i]: their weights and biases, concatenated). Returns the last [CLS] state (1, 1, H) and
    the number of layers each token entered (1, T)."""
    T, H = h.shape[1], h.shape[2]
    x, pos = h, torch.arange(T, device=h.device)
    entered = torch.zeros(1, T, dtype=torch.long, device=h.device)
    for i, (layer, pred) in enumerate(zip(layers, predictors)):
        y = F.linear(x, *fused[i])                                  # (1, n, [W] + 3H)
        if not skipped[i]:
            W = pred.fc1.out_features
            keep = keep_cls(decide(pred.fc2(F.gelu(pred.ln(y[0, :, :W]))), training=False), pos)   # (n,)
            idx = keep.nonzero().squeeze(1)
            if idx.shape[0] < x.shape[1]:
                x, pos, y = x[:, idx], pos[idx], y[:, idx]
            y = y[..., W:]
        entered[0, pos] = i + 1
        x = attend(layer, x, *y.split(H, -1), None, last=i == len(layers) - 1)
    return x, entered


def fused_weights(layers, predictors, skipped):
    """Per layer: the predictor's fc1 (unless skipped) and the layer's q, k, v, as one Linear's weight
    and bias; None when a predictor normalises its input first (the authors' variant)."""
    if any(not isinstance(p.ln_in, torch.nn.Identity) for p in predictors):
        return None
    return [stacked(([] if skipped[i] else [predictors[i].fc1]) + [layers[i].attn.q, layers[i].attn.k, layers[i].attn.v])
            for i in range(len(layers))]


def stacked(linears):
    """Linears reading the same input as one: their weights and biases concatenated (detached copies)."""
    return torch.cat([m.weight for m in linears]).detach(), torch.cat([m.bias for m in linears]).detach()


def batch_of_one(h, attention_mask, layers, predictors, skipped, fused):
    """one_sequence's output where it applies (one sequence, no padding, fused weights), else None."""
    if h.shape[0] == 1 and fused is not None and bool(attention_mask.all()):
        x, entered = one_sequence(h, layers, predictors, skipped, fused)
        return skim_output(x, entered, attention_mask, len(layers))
    return None


def classify_encode(h, attention_mask, layers, predictors, skipped, fused=None):
    """pruned_encode for a classifier: the same decisions and keep masks; the output is the last
    layer's [CLS] state alone, (B, 1, H). skipped[i]: predictor i always keeps (always_keeps)."""
    B, T, _ = h.shape
    L = len(layers)
    one = batch_of_one(h, attention_mask, layers, predictors, skipped, fused)
    if one is not None:
        return one
    entered = torch.zeros(B, T + 1, dtype=torch.long, device=h.device)   # (B, T+1): layers entered; T: spare slot
    pos = torch.arange(T, device=h.device).expand(B, T)
    tokens, full = compact(h, pos, attention_mask.bool())                # padding is skimmed before layer 0
    for i, (layer, pred) in enumerate(zip(layers, predictors)):
        if not skipped[i]:
            keep = keep_cls(decide(pred(tokens.x), training=False), tokens.pos)
            tokens, full = compact(tokens.x, tokens.pos, keep if full else keep & tokens.valid)
        valid = None if full else tokens.valid
        entered.scatter_(1, tokens.pos if valid is None else torch.where(valid, tokens.pos, T), i + 1)
        tokens = tokens._replace(x=run_layer(layer, tokens.x, valid, last=i == L - 1))
    return skim_output(tokens.x[:, :1], entered[:, :T], attention_mask, L)


def use_classify_path(model, on=True):
    """Run the inference of a Transkimmer BertForSequenceClassification through classify_encode
    (on=True) or transkimmer.pruned_encode again (False); training is untouched. Call it on the
    trained model: it reads the predictors (always_keeps) and copies weights (fused_weights) once,
    and does not follow later changes to them. Returns the model."""
    enc = model.bert
    if not on:
        replace_inference(enc, None)
        return model
    if enc.predictors is None or model.config.head != "classifier":
        raise ValueError("the classification path is for a Transkimmer model with a classifier head")
    skipped = [always_keeps(p) for p in enc.predictors]
    fused = fused_weights(enc.stack, enc.predictors, skipped)
    replace_inference(enc, lambda h, mask: classify_encode(h, mask, enc.stack, enc.predictors, skipped, fused))
    return model
