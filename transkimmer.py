"""
Transkimmer: a BERT that learns, layer by layer, which tokens it may stop processing.

This file is the whole method. `model.py` is a plain BERT; when its config says `skim=True` it
builds one `SkimPredictor` per layer and runs its layers through `masked_encode` (training) or
`pruned_encode` (inference) below.

    before every layer i (layer 0 included), a small MLP looks at each token's state H^i and
    decides keep (1) or skim (0)                                            Eqs. 2, 5
    a skimmed token is never processed again; its state as it entered layer i is copied to the
    encoder output at its own position                                      Eqs. 1, 3
    training: nothing is removed, skimmed tokens are hidden as attention keys   Eq. 4
    inference: the kept tokens are really gathered into a smaller batch       Eq. 1
    loss = task loss + lambda * (fraction of tokens kept, averaged over layers)  Eqs. 6, 7
    lambda is 0 for the first third of training, then ramps up (our recipe)  skim_coefficient_at
    the predictors start out keeping everything                             Eqs. 8-9

Mask convention everywhere: 1 = keep, 0 = skim. Padding is skimmed before layer 0 and [CLS]
(position 0, read by the classifier) is always kept.

References:
  - Guan et al., "Transkimmer: Transformer Learns to Layer-wise Skim", ACL 2022.
  - The authors' code, github.com/ChandlerGuan/Transkimmer (we depart from it where it differs
    from the paper; each departure is marked "Departure" below).
  - Jang et al., "Categorical Reparameterization with Gumbel-Softmax", ICLR 2017.
"""

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- Eq. 2: the skim predictor -------------------------------------------------------------------


class SkimPredictor(nn.Module):
    """Eq. 2: M^i = Activation(MLP(H^i)), MLP = Linear(H->H) -> LayerNorm -> GELU -> Linear(H->2).

    Returns logits (B, T, 2); index 1 is "keep", index 0 is "skim". The activation (Eq. 5 in
    training, an argmax at inference) is applied by `decide`.
    Departure: the authors' code also puts a LayerNorm *before* the first Linear; the paper does
    not. We follow the paper; `input_layernorm=True` gives the authors' variant.
    `predictor_width`: the MLP's hidden width, H in the paper (None); smaller is an option, not the default.
    """

    def __init__(self, hidden_size, layer_norm_eps=1e-12, input_layernorm=False, predictor_width=None):
        super().__init__()
        width = predictor_width or hidden_size
        self.ln_in = nn.LayerNorm(hidden_size, eps=layer_norm_eps) if input_layernorm else nn.Identity()
        self.fc1 = nn.Linear(hidden_size, width)
        self.ln = nn.LayerNorm(width, eps=layer_norm_eps)
        self.fc2 = nn.Linear(width, 2)

    def forward(self, h):  # h (B, T, H)
        return self.fc2(F.gelu(self.ln(self.fc1(self.ln_in(h)))))  # (B, T, 2)


def init_predictor(pred, sigma=0.02, mu0=5.0):
    """Eqs. 8-9, unbalanced initialisation.

    Eq. 8: every weight ~ N(0, sigma).  Eq. 9: the last Linear's bias beta_i ~ N((-1)^(i+1) mu0, sigma),
    i.e. beta_keep ~ N(+mu0, sigma) and beta_skim ~ N(-mu0, sigma): with mu0 = 5 the keep logit
    leads by about 10, so a fresh predictor keeps (almost) every token and fine-tuning starts from
    the pretrained model's behaviour. Other biases are 0 and LayerNorms are the identity (1, 0),
    as in BERT.
    """
    for m in pred.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, sigma)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        pred.fc2.bias.normal_(0.0, sigma)
        pred.fc2.bias[1] += mu0   # keep
        pred.fc2.bias[0] -= mu0   # skim


# ---- Eq. 5: Gumbel-softmax with the straight-through estimator -----------------------------------


def gumbel_softmax(logits, tau, hard=True):
    """Eq. 5: y = softmax((log pi + g) / tau), g ~ Gumbel(0, 1) i.i.d.; the logits play log pi.

    With hard=True the forward value is the one-hot argmax(y) and the gradient is that of the
    soft y (straight-through: hard - y.detach() + y). Written by hand; tested against torch's.
    """
    u = torch.rand_like(logits, dtype=torch.float32).clamp_(1e-10, 1.0 - 1e-7)
    g = -torch.log(-torch.log(u))                                   # Gumbel(0, 1)
    y = torch.softmax((logits.float() + g) / tau, dim=-1)           # soft sample
    if not hard:
        return y
    one_hot = F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return one_hot - y.detach() + y                                 # value: one_hot, gradient: y


def decide(logits, training, tau=1.0):
    """The skim decision of one predictor, (B, T, 2) -> (B, T), 1 = keep, 0 = skim.

    Training samples it with Eq. 5: a float 0/1 that carries the soft sample's gradient.
    Inference is deterministic, a bool: keep iff logit_keep > logit_skim (tau plays no part).
    Departure: the authors' code keeps sampling Gumbel noise at inference, which makes
    predictions random; we do not.
    """
    if training:
        return gumbel_softmax(logits, tau, hard=True)[..., 1]
    return logits[..., 1] > logits[..., 0]


def keep_cls(decision, pos):
    """[CLS] (original position 0) is always kept: the classifier reads it. decision (B, T) is a
    float or bool keep mask, pos (B, T) or (T,) the original positions of its tokens."""
    return decision.masked_fill(pos == 0, 1)


# ---- Eq. 4: skim attention (training) ------------------------------------------------------------


def skim_attention(q, k, v, keep, dropout_p=0.0):
    """Eq. 4: p_qk = m_k exp(s_qk) / sum_j m_j exp(s_qj), s = q k^T / sqrt(d).

    q, k, v (B, nh, T, hd); keep (B, T) with 1 = this key may be attended, 0 = skimmed. A skimmed
    token becomes unreachable as a key and every row is renormalised over the kept keys, so a kept
    token computes exactly what it would if the skimmed ones were gone (what inference does). The
    gradient reaches the predictor through m_k. Stable: the row max is taken over kept keys.
    Departure: the authors' first version multiplied the probabilities by the mask *after* the
    softmax (rows no longer summed to 1); they later moved to this renormalised form.
    """
    s = (q @ k.transpose(-2, -1)) / (q.shape[-1] ** 0.5)                    # (B, nh, T, T)
    m = keep[:, None, None, :].to(s.dtype)                                   # (B, 1, 1, T)
    s_max = s.masked_fill(m == 0, float("-inf")).amax(-1, keepdim=True).detach()
    # After the shift kept keys are <= 0; the clamp only touches skimmed keys that score far above
    # every kept one, so that exp stays finite (inf * 0 would be nan) and so does m_k's gradient.
    e = torch.exp((s - s_max).clamp(max=30.0)) * m
    p = e / e.sum(-1, keepdim=True)
    p = F.dropout(p, dropout_p, training=dropout_p > 0)
    return p @ v                                                             # (B, nh, T, hd)


# ---- Eq. 3: skimmed tokens are forwarded to the output -------------------------------------------


def forward_skimmed(states, masks):
    """Eq. 3: out = sum_i H^i * (m_{i-1} - m_i) + H^L * m_{L-1}, with m_{-1} = 1.

    states: [H^0, ..., H^L], L+1 tensors (B, T, H), H^i the input of layer i; masks: [m_0, ...,
    m_{L-1}] cumulative keep masks (B, T). A token skimmed before layer i leaves with the state it
    had entering layer i; a token kept through all layers leaves with the last layer's output.
    Padding (m_0 = 0) leaves with its embedding output. The output is always (B, T, H).
    """
    out = states[-1] * masks[-1][..., None]
    prev = torch.ones_like(masks[0])
    for h, m in zip(states[:-1], masks):
        out = out + h * (prev - m)[..., None]
        prev = m
    return out


# ---- Eqs. 6-7: skim loss and total loss ----------------------------------------------------------


def skim_loss(masks, attention_mask):
    """Eq. 6: Loss_skim = (1/L) sum_i sum_t m_i[t] / len, the fraction of tokens kept per layer.

    Decision: len is each sequence's *real* length (from attention_mask), then we average over
    the batch, so padding neither helps nor hurts. (The authors divide by the padded length.)
    The masks carry the straight-through gradient, so this is differentiable.
    """
    lengths = attention_mask.sum(1).to(masks[0].dtype)                       # (B,)
    return (kept_per_layer(masks).T.contiguous() / lengths).mean()           # (L, B) -> scalar


def kept_per_layer(masks):
    """Tokens kept entering each layer, per sequence: (B, L) counts from the L keep masks (B, T).
    The "kept fraction" everywhere is kept_fraction of these: token-weighted, padding never counted."""
    return torch.stack([m.sum(1) for m in masks], 1)


def kept_fraction(kept, lengths):
    """The fraction of real tokens kept entering each layer (L,), from kept_per_layer's (N, L) counts
    and the N sequences' real lengths (N,)."""
    return kept.sum(0) / lengths.sum()


def total_loss(task_loss, skim, skim_coefficient):
    """Eq. 7: Loss = Loss_task + lambda * Loss_skim; lambda (`skim_coefficient` everywhere in this
    code) is what the paper calls the harmony coefficient (Table 2). The one place Eq. 7 is
    computed: the heads return the task loss, and train.py adds the skim loss here."""
    return task_loss + skim_coefficient * skim


def skim_coefficient_at(step, total, skim_coefficient, delay, warmup, start=None):
    """lambda of Eq. 7 at this step of `total`: 0 for the first `delay` of the steps (or until
    `start`, a step chosen otherwise; math.inf: not yet), then a linear ramp over the next `warmup`
    of the steps, then `skim_coefficient`.
    Departure: the paper holds lambda fixed from step 0 (delay = warmup = 0). The task's gradient
    through Eq. 4 is what holds useful tokens; before it exists the skim loss skims all but [CLS]
    (CoLA, ramp from step 0: Matthews 0). docs/recipe.md measures each piece of the recipe."""
    start = delay * total if start is None else start
    ramp = warmup * total
    if step < start:
        return 0.0
    return skim_coefficient * (min(1.0, (step - start) / ramp) if ramp > 0 else 1.0)


# ---- Eq. 1: the skimming encoder, masked (training) and really pruned (inference) ----------------


@dataclass
class SkimOutput:
    last_hidden_state: torch.Tensor  # (B, T, H), Eq. 3
    keep_masks: list                 # L tensors (B, T): 1 = kept entering layer i
    skim_loss: torch.Tensor          # scalar, Eq. 6


def masked_encode(h, attention_mask, layers, predictors, tau, training):
    """Eq. 1 in training: every token stays in the tensor; the skimmed ones are hidden.

    H^{i+1} = Transformer^i(H^i) with skim attention (Eq. 4) under the cumulative keep mask m_i: each
    kept token computes what it would if the skimmed ones were gone, and the predictors get the task
    loss's gradient through m_k. h (B, T, H) is the embedding output; attention_mask (B, T) has
    1 = real token; layers[i](x, keep, skim=True) is a BERT layer whose attention is Eq. 4.
    training=True samples the decisions (Eq. 5); False takes the deterministic ones: then this is
    the reference that `pruned_encode` must equal.
    """
    pos = torch.arange(h.shape[1], device=h.device)
    m = attention_mask.to(h.dtype)                     # padding is skimmed before layer 0
    states, masks = [h], []
    for layer, pred in zip(layers, predictors):
        decision = keep_cls(decide(pred(h), training, tau).to(h.dtype), pos)
        m = m * decision                               # cumulative: a skimmed token never returns
        h = layer(h, m, skim=True)                     # Eq. 4 runs here
        states.append(h)
        masks.append(m)
    return SkimOutput(forward_skimmed(states, masks), masks, skim_loss(masks, attention_mask))


def _flat_rows(idx, T):
    """Row idx[b, j] of sequence b as a row of the flattened (B*T, H) batch: (B*T',) indices."""
    return (idx + T * torch.arange(idx.shape[0], device=idx.device)[:, None]).flatten()


def gather_rows(x, idx):
    """x[b, idx[b, j]] for x (B, T, H) and idx (B, T'): (B, T', H). One index_select on the B*T rows
    (x.gather reads an index per element: ~10x slower on CPU)."""
    B, T, H = x.shape
    return x.reshape(B * T, H).index_select(0, _flat_rows(idx, T)).view(B, idx.shape[1], H)


def scatter_rows_(out, idx, x):
    """out[b, idx[b, j]] = x[b, j] in place, for out (B, T, H), idx (B, T'), x (B, T', H); the
    inverse of gather_rows. Rows written twice (only the spare slot in this file) get either value."""
    B, T, H = out.shape
    out.view(B * T, H).index_copy_(0, _flat_rows(idx, T), x.reshape(-1, H).to(out.dtype))


def kept_first(keep):
    """keep (..., T) bool -> (..., T) indices that put each row's kept tokens first, in their original
    order (a stable sort of "skimmed")."""
    return torch.sort((~keep).to(torch.uint8), dim=-1, stable=True).indices


def write_out_(out, entered, x, pos, valid, i):
    """Eq. 3 at inference, in place: the tokens of x (B, T', H) leave having entered i layers. Row j
    of sequence b is written to out[b, pos[b, j]], its original position, and entered records i there;
    slots where valid (B, T') is False hold no token and go to out's last row, the spare slot. A token
    that goes on to the next layer is written again, over this, when it leaves."""
    target = torch.where(valid, pos, out.shape[1] - 1)
    scatter_rows_(out, target, x)
    entered.scatter_(1, target, i)


class Kept(NamedTuple):
    """The kept tokens of a batch, moved to the front of each row."""
    x: torch.Tensor        # (B, T', H) their states
    pos: torch.Tensor      # (B, T') their original positions
    valid: torch.Tensor    # (B, T') True where a row holds a real kept token (rows are padded to T')


def compact(x, pos, keep):
    """The Gather of Eq. 1, for a whole batch at once: move each row's kept tokens to the front, in
    their original order. x (B, T, H) states, pos (B, T) their original positions, keep (B, T) bool.
    Returns a Kept of (B, T') tensors, T' the largest kept count of the batch."""
    n = keep.sum(1)                                                          # (B,)
    t_new = int(n.max())   # the one host-device synchronisation of a layer: the next size depends on the decisions
    return gather_kept(x, pos, keep, n, t_new)


def gather_kept(x, pos, keep, n, t_new):
    """compact's gather, its sizes known: n (B,) the kept count of each row, t_new their largest."""
    order = kept_first(keep)[:, :t_new]
    valid = torch.arange(t_new, device=x.device) < n[:, None]                # (B, T')
    return Kept(gather_rows(x, order), pos.gather(1, order), valid)


def pruned_encode(h, attention_mask, layers, predictors):
    """Eq. 1 at inference: before each layer the kept tokens are really gathered into a smaller
    batch, so a layer only computes on the T' tokens some row still keeps.

    h (B, T, H) embedding output, attention_mask (B, T) 1 = real token. Decisions are the
    deterministic ones. Each token leaves (Eq. 3) with its state as it entered the layer that
    skimmed it: it is scattered into `out` at its original position, and `entered` records that
    layer. Returns the same SkimOutput as `masked_encode`, whose keep masks come from `entered`.
    (fast/ computes the same with the work this reference does not skip skipped: tests/test_fast.py.)
    """
    B, T, H = h.shape
    L = len(layers)
    out = torch.cat([h, h.new_zeros(B, 1, H)], dim=1)      # (B, T+1, H): padding leaves with H^0; row T: spare slot
    entered = torch.zeros(B, T + 1, dtype=torch.long, device=h.device)   # (B, T+1): layers entered
    tokens = compact(h, torch.arange(T, device=h.device).expand(B, T), attention_mask.bool())   # padding skimmed
    for i, (layer, pred) in enumerate(zip(layers, predictors)):
        keep = keep_cls(decide(pred(tokens.x), training=False), tokens.pos) & tokens.valid   # (B, T') bool
        # The tokens skimmed here leave (Eq. 3). Every token is written out, the kept ones too: they are
        # written again, over this, when they leave later (simpler than picking out the skimmed ones).
        write_out_(out, entered, tokens.x, tokens.pos, tokens.valid, i)
        tokens = compact(tokens.x, tokens.pos, keep)
        tokens = tokens._replace(x=layer(tokens.x, tokens.valid))   # plain attention on the kept tokens
    write_out_(out, entered, tokens.x, tokens.pos, tokens.valid, L)   # the rest leave with H^L
    return skim_output(out[:, :T], entered[:, :T], attention_mask, L)


def skim_output(out, entered, attention_mask, L):
    """The SkimOutput of a pruned encoder from its output (B, T, H) and the number of layers each
    token entered (B, T): the keep masks are m_i = [entered > i]."""
    kept = entered[..., None] > torch.arange(L, device=entered.device)   # (B, T, L): kept entering layer i
    masks = list(kept.to(out.dtype).unbind(-1))
    return SkimOutput(out, masks, skim_loss(masks, attention_mask))
