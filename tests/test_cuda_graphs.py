"""graphs.py: the encoder cut into fixed-shape steps (CUDA graphs on a GPU) computes what
transkimmer.pruned_encode and the dense layers compute. On CPU the steps run eagerly; the CUDA
test records and replays them as graphs and is skipped without a GPU."""

import pytest
import torch

from fast.cuda_graphs import Graphed, bf16_linears, round_up, use_graphs
from model import build
from tiny import make_batch, skimming_model, tiny_config

LENGTHS = [[13], [16, 11, 7, 3, 1, 12], [9, 9]]


def test_round_up():
    assert [round_up(n, 8, 20) for n in (1, 8, 9, 16, 17, 20)] == [8, 8, 16, 16, 20, 20]
    assert [round_up(n, 1, 20) for n in (1, 7, 20)] == [1, 7, 20]


def _same(model, runner_model, ids, mask):
    with torch.no_grad():
        eager = model(ids, mask)
        graphed = runner_model(ids, mask)
    if eager.keep_masks is not None:
        for a, b in zip(eager.keep_masks, graphed.keep_masks):
            assert torch.equal(a, b)
        assert torch.equal(eager.skim_loss, graphed.skim_loss)
    diff = (eager.logits - graphed.logits).abs().max().item()
    assert diff < 1e-5, diff


@pytest.mark.parametrize("bucket", [1, 4, 16])
@pytest.mark.parametrize("lengths", LENGTHS)
def test_steps_equal_pruned_encode(bucket, lengths):
    model = skimming_model(seed=1, num_labels=3).eval()
    ids, mask = make_batch(lengths, seed=2)
    with torch.no_grad():
        eager = model.bert(ids, mask)
        use_graphs(model.bert, Graphed(model.bert, bucket=bucket, graphs=False))
        steps = model.bert(ids, mask)
    assert sum(int(m.sum()) for m in steps.keep_masks) < len(steps.keep_masks) * int(mask.sum())   # it skims
    for a, b in zip(eager.keep_masks, steps.keep_masks):
        assert torch.equal(a, b)
    diff = (eager.last_hidden_state - steps.last_hidden_state).abs().max().item()
    assert diff < 1e-5, diff   # skimmed tokens included: each leaves with the state it entered with (Eq. 3)
    use_graphs(model.bert, None)


@pytest.mark.parametrize("family", ["albert", "distilbert"])
def test_steps_equal_pruned_encode_other_families(family):
    """ALBERT runs one shared layer at every depth, DistilBERT has no pooler: the steps take the
    encoder's depth and predictors as pruned_encode does."""
    model = skimming_model(seed=1, num_labels=3, model_type=family).eval()
    ids, mask = make_batch([16, 11, 7, 3], seed=2)
    steps = skimming_model(seed=1, num_labels=3, model_type=family).eval()
    use_graphs(steps.bert, Graphed(steps.bert, bucket=4, graphs=False))
    _same(model, steps, ids, mask)


def test_steps_reuse_buffers_across_batches():
    """The static tensors are reused: a later batch padded to the same width (16 here) must not see
    an earlier one, nor its longer rows."""
    model = skimming_model(seed=1, num_labels=3).eval()
    steps = skimming_model(seed=1, num_labels=3).eval()
    use_graphs(steps.bert, Graphed(steps.bert, bucket=8, graphs=False))
    for seed, lengths in ((2, [16, 11, 7, 3]), (3, [13, 9, 5, 2]), (4, [16, 4, 4, 4]), (5, [10, 10, 9, 1])):
        ids, mask = make_batch(lengths, seed=seed)
        _same(model, steps, ids, mask)


def test_dense_steps_equal_dense_layers():
    model = build(tiny_config(num_labels=2)).eval()
    ids, mask = make_batch([16, 11, 7, 3], seed=2)
    with torch.no_grad():
        eager = model(ids, mask).logits
        use_graphs(model.bert, Graphed(model.bert, graphs=False))
        steps = model(ids, mask).logits
    assert (eager - steps).abs().max() < 1e-5


def test_bf16_linears_compute_what_autocast_computes():
    model = skimming_model(seed=1, num_labels=3).eval()
    stored = bf16_linears(skimming_model(seed=1, num_labels=3).eval())
    assert stored.bert.layers[0].attn.q.weight.dtype == torch.bfloat16
    assert stored.bert.layers[0].ln1.weight.dtype == torch.float32       # LayerNorms stay in fp32, as autocast runs them
    ids, mask = make_batch([16, 11, 7, 3], seed=2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = model(ids, mask), stored(ids, mask)
    assert all(torch.equal(x, y) for x, y in zip(a.keep_masks, b.keep_masks))
    assert torch.equal(a.logits, b.logits)


@pytest.mark.parametrize("skim", [True, False])
def test_training_ignores_the_runner(skim):
    model = skimming_model(seed=1, num_labels=3) if skim else build(tiny_config(num_labels=3))
    use_graphs(model.bert, Graphed(model.bert, graphs=False))
    model.train()
    ids, mask = make_batch([16, 11], seed=2)
    out = model(ids, mask, labels=torch.tensor([0, 1]))
    out.task_loss.backward()   # the training path, with gradients: the runner (no_grad) was not used
    assert model.bert.layers[0].ff1.weight.grad is not None
    if skim:
        assert model.bert.predictors[0].fc1.weight.grad is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("lengths", LENGTHS)
def test_cuda_graphs_equal_eager_under_autocast(lengths):
    model = skimming_model(seed=1, num_labels=3).cuda().eval()
    graphed = skimming_model(seed=1, num_labels=3).cuda().eval()
    runner = Graphed(graphed.bert, bucket=4)
    use_graphs(graphed.bert, runner)
    for seed in (2, 3):   # the second batch replays the graphs the first recorded (same shapes)
        ids, mask = (t.cuda() for t in make_batch(lengths, seed=seed))
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            eager, replayed = model(ids, mask), graphed(ids, mask)
        for a, b in zip(eager.keep_masks, replayed.keep_masks):
            assert torch.equal(a, b)
        assert (eager.logits.float() - replayed.logits.float()).abs().max() < 2e-2
    assert runner.steps   # graphs were recorded
