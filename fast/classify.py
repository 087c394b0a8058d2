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
    and nothing is gathered after it.
The decisions are pruned_encode's, so the keep masks and the skim loss are equal, and the logits
equal within float tolerance (a matrix product on one row may add in another order).

    use_classify_path(model)      # model: a Transkimmer BertForSequenceClassification, in eval mode
    use_classify_path(model, False)   # back to transkimmer.pruned_encode
"""

import torch
import torch.nn.functional as F

from transkimmer import compact, decide, exit_output


GELU_MIN = 0.1701   # GELU(u) >= -0.16998 (erf form), >= -0.17005 (tanh form) for every u


def always_keeps(pred, margin=1e-3):
    """True when the predictor keeps every token for any input, so that running it changes nothing.
    It keeps iff d . g + (b_keep - b_skim) > 0, with d = w_keep - w_skim and g = GELU(u), u = gamma n
    + beta the LayerNorm's output: n is normalised, |n| <= sqrt(W) (W its width). GELU(u) lies in
    [-GELU_MIN, max(u, 0)], so d_j g_j >= -GELU_MIN d_j where d_j >= 0, and >= -|d_j| (|gamma_j n_j|
    + |beta_j|) where d_j < 0; summed (Cauchy-Schwarz on the n terms), a lower bound of d . g over
    every input. If the bias gap beats it (with a margin for rounding), the predictor always keeps."""
    d = (pred.fc2.weight[1] - pred.fc2.weight[0]).detach().double()
    gamma, beta = pred.ln.weight.detach().double(), pred.ln.bias.detach().double()
    neg = d < 0
    bound = GELU_MIN * d[~neg].sum() + (d * gamma)[neg].norm() * d.numel() ** 0.5 + (d * beta)[neg].abs().sum()
    gap = float(pred.fc2.bias[1].detach() - pred.fc2.bias[0].detach())
    return gap - float(bound) > margin * (1 + abs(gap))


def attend_one_key(layer, x):
    """A layer entered by one token a row ([CLS]): softmax over one key is 1, so attention returns
    that key's value and queries and keys are not needed. x (B, 1, H)."""
    x = layer.ln1(x + layer.attn.o(layer.attn.v(x)))
    return layer.ln2(x + layer.ff2(F.gelu(layer.ff1(x), approximate=layer.gelu)))


def cls_only(layer, x, valid):
    """The layer's output for each row's first token ([CLS]) alone: keys and values from all of
    x (B, T', H), the query, attention output and feed-forward from x[:, :1]. valid (B, T') or None."""
    B, T, H = x.shape
    a, nh = layer.attn, layer.attn.nh
    q = a.q(x[:, :1]).view(B, 1, nh, H // nh).transpose(1, 2)                      # (B, nh, 1, hd)
    k, v = (lin(x).view(B, T, nh, H // nh).transpose(1, 2) for lin in (a.k, a.v))   # (B, nh, T', hd)
    mask = None if valid is None else valid[:, None, None, :]
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    h = layer.ln1(x[:, :1] + a.o(y.transpose(1, 2).reshape(B, 1, H)))
    return layer.ln2(h + layer.ff2(F.gelu(layer.ff1(h), approximate=layer.gelu)))   # (B, 1, H)


def run_layer(layer, x, valid, last):
    if x.shape[1] == 1:                    # (every row holds [CLS] alone)
        return attend_one_key(layer, x)
    return cls_only(layer, x, valid) if last else layer(x, valid)


def classify_encode(h, attention_mask, layers, predictors, skipped):
    """pruned_encode for a classifier: the same decisions and keep masks; the output is the last
    layer's [CLS] state alone, (B, 1, H). skipped[i]: predictor i always keeps (always_keeps)."""
    B, T, _ = h.shape
    L = len(layers)
    entered = torch.zeros(B, T + 1, dtype=torch.long, device=h.device)   # (B, T+1): layers entered; T: spare slot
    pos = torch.arange(T, device=h.device).expand(B, T)
    now = compact(h, pos, attention_mask.bool())                          # padding is skimmed before layer 0
    for i, (layer, pred) in enumerate(zip(layers, predictors)):
        if not skipped[i]:
            keep = decide(pred(now.x), training=False)
            keep[:, 0] = True              # [CLS]: each row's first token (compact keeps the order)
            now = compact(now.x, now.pos, keep if now.full else keep & now.valid)
        valid = None if now.full else now.valid
        entered.scatter_(1, now.pos if valid is None else torch.where(valid, now.pos, T), i + 1)
        now = now._replace(x=run_layer(layer, now.x, valid, last=i == L - 1))
    return exit_output(now.x[:, :1], entered[:, :T], attention_mask, L)


def use_classify_path(model, on=True):
    """Run the inference of a Transkimmer BertForSequenceClassification through classify_encode
    (on=True) or transkimmer.pruned_encode again (False); training is untouched. Returns the model."""
    enc = model.bert
    enc.__dict__.pop("encode", None)
    if on:
        if enc.predictors is None or model.config.head != "classifier":
            raise ValueError("the classification path is for a Transkimmer model with a classifier head")
        skipped = [always_keeps(p) for p in enc.predictors]
        eager = enc.encode
        enc.encode = lambda h, mask, prune=None: eager(h, mask, prune) if enc.training or prune is False \
            else classify_encode(h, mask, enc.depth, enc.predictors, skipped)
    return model
