"""Other BERT families (config.json's model_type): each equals its Hugging Face reference on a
padded batch, prunes as it masks, and its tokenizer makes the right special tokens. The fixtures
(a small random checkpoint per family, its tokenizer.json and the reference's outputs) were
written once by tests/make_family_fixtures.py, which needs transformers; these tests do not."""

import contextlib
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

import data
import train
from load_weights import load_pretrained
from tiny import write_glue

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


FAMILIES = ["roberta", "distilbert", "albert"]


@pytest.mark.parametrize("family", FAMILIES)
def test_parity_with_reference(family):
    folder = os.path.join(FIXTURES, f"{family}_tiny")
    ref = load_file(os.path.join(folder, "reference.safetensors"))
    # The DistilBERT fixture was saved with its classification head: one warning names it.
    head = pytest.warns(UserWarning, match="another head") if family == "distilbert" else contextlib.nullcontext()
    with head:
        model = load_pretrained(folder).eval()
    with torch.no_grad():
        out = model(ref["input_ids"], ref["attention_mask"], ref.get("token_type_ids")).last_hidden_state
    real = ref["attention_mask"].bool()
    assert (~real).any() and real.sum(1).unique().numel() > 1                 # a padded batch, mixed lengths
    assert (out - ref["last_hidden_state"]).abs()[real].max() < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_pruned_equals_masked(family):
    folder = os.path.join(FIXTURES, f"{family}_tiny")
    ref = load_file(os.path.join(folder, "reference.safetensors"))
    torch.manual_seed(0)
    model = load_pretrained(folder, skim=True, num_labels=2).eval()
    for pred in model.bert.predictors:   # predictors that skim some tokens
        torch.nn.init.normal_(pred.fc2.weight, 0.0, 2.0)
        torch.nn.init.zeros_(pred.fc2.bias)
    with torch.no_grad():
        masked, pruned = model(ref["input_ids"], ref["attention_mask"], prune=False), model(ref["input_ids"], ref["attention_mask"])
    kept = torch.stack(pruned.keep_masks).sum(0)[ref["attention_mask"].bool()]
    assert ((kept > 0) & (kept < len(pruned.keep_masks))).any()
    assert all(torch.equal(a, b) for a, b in zip(masked.keep_masks, pruned.keep_masks))
    assert (masked.logits - pruned.logits).abs().max() < 1e-5


def test_distilbert_head_equals_reference():
    """DistilBERT's head (pre_classifier -> ReLU -> dropout -> classifier on h[CLS], no pooler),
    loaded from the checkpoint, gives DistilBertForSequenceClassification's logits."""
    folder = os.path.join(FIXTURES, "distilbert_tiny")
    ref = load_file(os.path.join(folder, "reference.safetensors"))
    model = load_pretrained(folder, num_labels=2).eval()
    assert model.bert.pooler is None and model.bert.embed.token_type is None
    with torch.no_grad():
        logits = model(ref["input_ids"], ref["attention_mask"]).logits
    assert (logits - ref["logits"]).abs().max() < 1e-5


def test_albert_shares_one_layer_not_its_predictors():
    model = load_pretrained(os.path.join(FIXTURES, "albert_tiny"), skim=True)
    enc = model
    assert len(enc.layers) == 1 and len(enc.stack) == 3 and all(l is enc.layers[0] for l in enc.stack)
    assert len(enc.predictors) == 3 and len({id(p) for p in enc.predictors}) == 3


def test_albert_tokenizer_pair():
    tok = data.load_tokenizer(os.path.join(FIXTURES, "albert_tiny"))
    (ids, types), = data.encode(tok, [("a good film", "the plot")], 32)
    tokens = [tok.id_to_token(i) for i in ids]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens.count("[SEP]") == 2
    assert types == [0] * (tokens.index("[SEP]") + 1) + [1] * (len(tokens) - tokens.index("[SEP]") - 1)


def test_roberta_tokenizer_pair():
    tok = data.load_tokenizer(os.path.join(FIXTURES, "roberta_tiny"))
    (ids, types), = data.encode(tok, [("a good film", "the plot")], 32)
    tokens = [tok.id_to_token(i) for i in ids]
    assert tokens[0] == "<s>" and tokens[-1] == "</s>" and ["</s>", "</s>"] == tokens[tokens.index("</s>"):][:2]
    assert set(types) == {0}                                                  # RoBERTa has one token type


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_trains_and_evaluates_through_train_py(tmp_path, family):
    model = shutil.copytree(os.path.join(FIXTURES, f"{family}_tiny"), tmp_path / family)
    res = train.main(["--task", "mrpc", "--data-dir", write_glue(str(tmp_path / "glue")), "--model", str(model),
                      "--device", "cpu", "--max-steps", "2", "--batch-size", "8", "--max-length", "64",
                      "--out-dir", str(tmp_path / "out")])
    assert res["flops_speedup_no_padding"] > 0
    again = train.main(["--task", "mrpc", "--eval-only", "--checkpoint", str(tmp_path / "out" / "checkpoint"),
                        "--data-dir", str(tmp_path / "glue"), "--max-length", "64", "--device", "cpu",
                        "--out-dir", str(tmp_path / "out")])   # the saved checkpoint reloads as its family
    assert again["metrics"] == res["metrics"]
    with pytest.raises(SystemExit, match="--max-length 128 exceeds the 64 positions the model has"):
        train.main(["--task", "mrpc", "--data-dir", str(tmp_path / "glue"), "--model", str(model), "--device", "cpu",
                    "--out-dir", str(tmp_path / "out2")])
