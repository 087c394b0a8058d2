"""fast/: each fast inference path computes what the plain reference computes (the same decisions,
keep masks and skim loss; logits within float tolerance), on batches of one and many sequences,
with padding, for every family, and where skimming leaves [CLS] alone."""

import copy

import pytest
import torch

from fast.classify import always_keeps, use_classify_path
from fast.packed import use_packed_path
import transkimmer
from model import build
from tiny import make_batch, skimming_model, tiny_config

LENGTHS = [[13], [16, 11, 7, 3, 1, 12], [9, 9], [1], [40]]


PATHS = [use_classify_path, use_packed_path]


def same(model, ids, mask, path=use_classify_path):
    """The reference's output and the fast path's, on a copy of the same model."""
    fast = path(copy.deepcopy(model))
    with torch.no_grad():
        a, b = model(ids, mask), fast(ids, mask)
    assert all(torch.equal(x, y) for x, y in zip(a.keep_masks, b.keep_masks))
    assert torch.equal(a.skim_loss, b.skim_loss)
    diff = (a.logits - b.logits).abs().max().item()
    assert diff < 1e-5, diff
    return a


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classify_path_equals_pruned_encode(lengths, seed, path):
    model = skimming_model(seed=seed, num_labels=3, max_position_embeddings=64).eval()
    out = same(model, *make_batch(lengths, seed=seed), path)
    kept = torch.stack(out.keep_masks).sum(0)
    assert ((kept > 0) & (kept < len(out.keep_masks))).any() or max(lengths) == 1   # it skims


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("lengths", [[16, 11, 5], [14]])
@pytest.mark.parametrize("family", ["roberta", "distilbert", "albert"])
def test_classify_path_other_families(family, lengths, path):
    model = skimming_model(seed=1, num_labels=2, model_type=family).eval()
    same(model, *make_batch(lengths, seed=3), path)


@pytest.mark.parametrize("lengths", [[16, 11, 5, 1], [14], [7, 7]])
@pytest.mark.parametrize("family", ["bert", "albert"])
def test_packed_path_of_the_plain_model(lengths, family):
    """The dense model on the same packed path (the fair comparison): its logits, within tolerance."""
    model = build(tiny_config(skim=False, num_labels=2, model_type=family)).eval()
    ids, mask = make_batch(lengths, seed=2)
    with torch.no_grad():
        a, b = model(ids, mask).logits, use_packed_path(copy.deepcopy(model))(ids, mask).logits
    assert (a - b).abs().max().item() < 1e-5


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("lengths", [[16, 11, 5], [14]])
def test_classify_path_with_the_authors_predictor_layernorm(lengths, path):
    """The authors' variant normalises the predictor's input: batch 1 cannot share its first product."""
    model = skimming_model(seed=1, num_labels=2, skim_input_layernorm=True).eval()
    same(model, *make_batch(lengths, seed=3), path)


@pytest.mark.parametrize("path", PATHS)
def test_cls_alone_needs_no_queries_or_keys(path):
    """Predictors that skim everything but [CLS] from layer 1 on: the later layers see one token."""
    model = skimming_model(seed=0, num_labels=2).eval()
    for pred in model.bert.predictors[1:]:
        torch.nn.init.zeros_(pred.fc2.weight)
        pred.fc2.bias.data = torch.tensor([1.0, -1.0])   # skim wins everywhere
    out = same(model, *make_batch([12], seed=4), path)
    same(model, *make_batch([12, 6, 9], seed=4), path)
    assert [int(m.sum()) for m in out.keep_masks] == [int(out.keep_masks[0].sum()), 1, 1]


def test_fast_compact_is_the_references_with_its_shortcuts():
    """fast.classify.compact gives transkimmer.compact's kept tokens, and says when no row is short
    (full: attention needs no mask); where a row keeps all T tokens nothing moves (valid is keep itself),
    and one sequence is indexed."""
    from fast.classify import compact
    x = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    pos = torch.arange(5).expand(2, 5)
    keep = torch.tensor([[1, 0, 1, 0, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    (y, p, valid), full = compact(x, pos, keep)
    assert all(torch.equal(a, b) for a, b in zip((y, p, valid), transkimmer.compact(x, pos, keep))) and not full
    assert compact(x, pos, keep[[0, 0]])[1]                                  # no short row: full
    keep[1] = True                                                           # a row keeps all T: nothing moves
    (y, p, valid), full = compact(x, pos, keep)
    assert y is x and p is pos and torch.equal(valid, keep) and not full
    (y, p, valid), full = compact(x[:1], pos[:1], keep[:1])                  # one sequence: indexed
    assert p.tolist() == [[0, 2, 4]] and y[0, :, 0].tolist() == [0.0, 2.0, 4.0] and valid.all() and full


def test_always_keeps_is_a_proof():
    """A fresh predictor (Eqs. 8-9: the keep bias 2 mu0 ahead) provably keeps everything, and does
    on any input, however large; one whose biases are level does not qualify."""
    torch.manual_seed(0)
    model = build(tiny_config(skim=True, num_labels=2))
    pred = model.bert.predictors[0]
    assert always_keeps(pred)
    with torch.no_grad():
        x = torch.randn(64, 50, 32) * torch.logspace(-3, 4, 50)[None, :, None]
        logits = pred(x)
    assert (logits[..., 1] > logits[..., 0]).all()
    pred.fc2.bias.data = torch.tensor([0.0, 0.0])
    assert not always_keeps(pred)


@pytest.mark.parametrize("path", PATHS)
def test_skipped_predictors_change_nothing(path):
    """A model whose first predictors always keep: the path skips them, with the same output."""
    model = skimming_model(seed=2, num_labels=2).eval()
    for pred in model.bert.predictors[:2]:
        pred.fc2.bias.data = torch.tensor([-5.0, 5.0])
        pred.fc2.weight.data.mul_(0.01)
    assert [always_keeps(p) for p in model.bert.predictors] == [True, True, False]
    same(model, *make_batch([16, 11, 7, 3], seed=5), path)


def test_training_and_other_heads_are_untouched():
    model = skimming_model(seed=0, num_labels=2)
    use_classify_path(model).train()
    ids, mask = make_batch([9, 5])
    assert model(ids, mask, labels=torch.tensor([0, 1])).task_loss.requires_grad   # the masked path
    for path in PATHS:
        with pytest.raises(ValueError, match="classifier head"):
            path(build(tiny_config(skim=True, head="span")))


def test_gelu_min_bounds_both_forms():
    """always_keeps rests on GELU(u) >= -GELU_MIN, for the erf GELU and the tanh one (ALBERT)."""
    from fast.classify import GELU_MIN
    u = torch.linspace(-6, 6, 1_200_001, dtype=torch.float64)
    assert min(torch.nn.functional.gelu(u, approximate=a).min().item() for a in ("none", "tanh")) > -GELU_MIN
