"""Loading checkpoints through the rename table: every key accounted for, every error named."""

import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from tiny import make_batch, skimming_model, tiny_config
from storage.files import save_model
from load_weights import load_model, load_pretrained, rename
from model import build
from tiny import write_hf_checkpoint

HF_NAMES = {  # our name -> Hugging Face name, for one layer
    "embed.word.weight": "embeddings.word_embeddings.weight",
    "embed.ln.weight": "embeddings.LayerNorm.weight",
    "layers.0.attn.q.weight": "encoder.layer.0.attention.self.query.weight",
    "layers.0.attn.o.bias": "encoder.layer.0.attention.output.dense.bias",
    "layers.0.ln1.weight": "encoder.layer.0.attention.output.LayerNorm.weight",
    "layers.0.ff1.weight": "encoder.layer.0.intermediate.dense.weight",
    "layers.0.ff2.bias": "encoder.layer.0.output.dense.bias",
    "layers.0.ln2.bias": "encoder.layer.0.output.LayerNorm.bias",
    "pooler.weight": "pooler.dense.weight",
}
@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    return build(tiny_config()), str(tmp_path / "ckpt")


def _same_outputs(a, b):
    ids, mask = make_batch([9, 4])
    a.eval(), b.eval()
    with torch.no_grad():
        return torch.equal(a(ids, mask).last_hidden_state, b(ids, mask).last_hidden_state)


def test_rename_table():
    for ours, hf in HF_NAMES.items():
        assert rename(hf) == ours and rename("bert." + hf) == ours
    assert rename("bert.encoder.layer.3.output.LayerNorm.gamma") == "layers.3.ln2.weight"
    assert rename("embeddings.LayerNorm.beta") == "embed.ln.bias"


def test_load_hf_layout(ckpt):
    model, path = ckpt
    loaded = load_pretrained(write_hf_checkpoint(path, model))
    assert _same_outputs(model, loaded)


def test_load_pretraining_checkpoint_gamma_beta_prefix_cls_fp16(ckpt):
    model, path = ckpt

    def pretraining(d):
        out = {"bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v.half()
               if v.is_floating_point() else v for k, v in d.items()}
        out["cls.predictions.bias"] = torch.zeros(100)
        return out
    loaded = load_pretrained(write_hf_checkpoint(path, model, pretraining))
    assert loaded.embed.word.weight.dtype == torch.float32
    assert torch.equal(loaded.layers[0].ln1.weight, model.layers[0].ln1.weight.half().float())


def test_missing_tensor_is_named(ckpt):
    model, path = ckpt
    write_hf_checkpoint(path, model, lambda d: {k: v for k, v in d.items() if "layer.1.output.dense.weight" not in k})
    with pytest.raises(ValueError, match=r"tensor 'encoder.layer.1.output.dense.weight' \(ours: 'layers.1.ff2.weight'\) is missing"):
        load_pretrained(path)   # named as the user will find it in the file


def test_misshapen_tensor_is_named(ckpt):
    model, path = ckpt
    write_hf_checkpoint(path, model, lambda d: {**d, "encoder.layer.0.attention.self.key.bias": torch.zeros(31)})
    with pytest.raises(ValueError, match=r"attention\.self\.key\.bias.*\(31,\)"):
        load_pretrained(path)


def test_unexpected_tensor_is_named(ckpt):
    model, path = ckpt
    write_hf_checkpoint(path, model, lambda d: {**d, "encoder.layer.7.output.dense.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="encoder.layer.7.output.dense.weight"):
        load_pretrained(path)


def test_missing_pooler_warns_once(ckpt):
    model, path = ckpt
    write_hf_checkpoint(path, model, lambda d: {k: v for k, v in d.items() if not k.startswith("pooler")})
    with pytest.warns(UserWarning, match="no pooler") as caught:
        load_pretrained(path)
    assert len(caught) == 1   # one line for the pooler, not one per tensor


def test_another_head_warns_once_naming_its_tensors(ckpt):
    """An encoder loaded from a classification checkpoint: its head is left out, in one warning."""
    model, path = ckpt
    head = {"classifier.weight": torch.zeros(3, model.config.hidden_size), "classifier.bias": torch.zeros(3)}
    write_hf_checkpoint(path, model, lambda d: {**d, **head})
    with pytest.warns(UserWarning, match=r"another head \(classifier\.bias, classifier\.weight\)") as caught:
        enc = load_pretrained(path)
    assert len(caught) == 1
    assert _same_outputs(enc, model)


def test_missing_folder_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pretrained(str(tmp_path / "nope"))
    (tmp_path / "model.safetensors.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="is a file: pass the folder"):
        load_pretrained(str(tmp_path / "model.safetensors.txt"))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        load_pretrained(str(tmp_path))


def test_skim_and_head_start_fresh(ckpt):
    model, path = ckpt
    clf = load_pretrained(write_hf_checkpoint(path, model), skim=True, num_labels=3)
    assert len(clf.bert.predictors) == 3 and clf.classifier.out_features == 3
    assert torch.equal(clf.bert.layers[2].ff1.weight, model.layers[2].ff1.weight)


def test_save_and_reload_finetuned(tmp_path):
    model = skimming_model(num_labels=2, skim_tau=0.5)
    save_model(model, str(tmp_path / "ft"))
    assert sorted(os.listdir(tmp_path / "ft")) == ["config.json", "model.safetensors"]   # no temp files
    again = load_model(str(tmp_path / "ft"))
    assert again.config == model.config
    ids, mask = make_batch([9, 4])
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(model(ids, mask).logits, again(ids, mask).logits)


def test_reload_requires_every_tensor(tmp_path):
    model = skimming_model(num_labels=2)
    save_model(model, str(tmp_path / "ft"))
    f = str(tmp_path / "ft" / "model.safetensors")
    save_file({k: v for k, v in load_file(f).items() if "predictors.2" not in k}, f)
    with pytest.raises(ValueError, match="predictors.2"):
        load_model(str(tmp_path / "ft"))


def test_save_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint intact and no temporary file."""
    model = skimming_model(num_labels=2)
    path = str(tmp_path / "ft")
    save_model(model, path)
    before = open(os.path.join(path, "model.safetensors"), "rb").read()

    def crash(tensors, filename):
        open(filename, "wb").write(b"partial")
        raise RuntimeError("disk full")
    monkeypatch.setattr("safetensors.torch.save_file", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(model, path)
    assert open(os.path.join(path, "model.safetensors"), "rb").read() == before
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]


def test_sequence_too_long_is_an_error():
    model = build(tiny_config())
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.ones(1, 65, dtype=torch.long))


@pytest.mark.parametrize("change,says", [
    ({"model_type": "electra"}, "model_type 'electra' is not supported"),
    ({"model_type": "deberta-v2"}, "model_type 'deberta-v2' is not supported"),
    ({"model_type": "albert", "num_hidden_groups": 2}, "num_hidden_groups or inner_group_num > 1 is not supported"),
    ({"model_type": "distilbert", "sinusoidal_pos_embds": True}, "sinusoidal_pos_embds is not supported"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key' is not supported"),
    ({"num_attention_heads": 0}, "num_attention_heads must be a whole number >= 1"),
    ({"hidden_size": "384"}, "hidden_size must be a whole number >= 1"),
])
def test_config_of_another_family_or_broken_is_refused_by_name(change, says):
    from model import BertConfig
    base = dict(model_type="bert", vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64)
    with pytest.raises(ValueError, match=says):
        BertConfig.from_dict({**base, **change})
    with pytest.raises(ValueError, match="must hold a JSON object"):
        BertConfig.from_dict([base])


def test_a_head_of_another_size_is_replaced_by_a_fresh_one(ckpt):
    """Fine-tuning from a checkpoint whose classifier has 3 outputs on a task with 2: the encoder
    loads, the head starts fresh, one warning names the tensors (no num_labels flag is needed)."""
    model, path = ckpt
    head = {"classifier.weight": torch.ones(3, model.config.hidden_size), "classifier.bias": torch.ones(3)}
    write_hf_checkpoint(path, model, lambda d: {**d, **head})
    with pytest.warns(UserWarning, match=r"another head \(classifier\.bias, classifier\.weight\)"):
        clf = load_pretrained(path, num_labels=2)
    assert clf.classifier.weight.shape == (2, model.config.hidden_size) and not (clf.classifier.weight == 1).all()
    assert _same_outputs(clf.bert, model)                              # the encoder: the checkpoint's


def test_saved_checkpoints_use_bert_names_and_older_ones_still_load(tmp_path):
    """A saved checkpoint holds Hugging Face's names (bert.encoder.layer.0..., classifier.*; the predictors
    extra keys under bert.), and a checkpoint of the older layout, our own names, still loads."""
    model = skimming_model(num_labels=2)
    save_model(model, str(tmp_path / "new"))
    keys = set(load_file(str(tmp_path / "new" / "model.safetensors")))
    assert {"bert." + v for v in HF_NAMES.values()} <= keys and {"classifier.weight", "bert.predictors.0.fc1.weight"} <= keys
    os.makedirs(tmp_path / "old")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "old" / "model.safetensors"))
    with open(tmp_path / "old" / "config.json", "w") as f, open(tmp_path / "new" / "config.json") as g:
        f.write(g.read())
    ids, mask = make_batch([9, 4])
    model.eval()
    with torch.no_grad():
        for folder in ("new", "old"):
            assert torch.equal(load_model(str(tmp_path / folder)).eval()(ids, mask).logits, model(ids, mask).logits)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "albert"])
def test_every_family_saves_and_reloads_under_its_names(tmp_path, family):
    torch.manual_seed(0)
    model = build(tiny_config(model_type=family, num_labels=3)).eval()
    save_model(model, str(tmp_path / "m"))
    assert all(k.startswith((f"{family}.", "classifier.", "pre_classifier.")) for k in load_file(str(tmp_path / "m" / "model.safetensors")))
    ids, mask = make_batch([9, 4])
    with torch.no_grad():
        assert torch.equal(load_model(str(tmp_path / "m")).eval()(ids, mask).logits, model(ids, mask).logits)


@pytest.mark.slow
def test_transformers_loads_a_saved_checkpoint_with_nothing_missing(tmp_path):
    """The saved encoder and head load in Hugging Face transformers (skipped where it is not installed) with
    no weight missing, and give the same logits within 1e-5; a Transkimmer checkpoint loads too, its
    predictors the only unused keys: such a load runs the dense model."""
    transformers = pytest.importorskip("transformers")
    ids, mask = make_batch([9, 4])
    for skim in (False, True):
        torch.manual_seed(0)
        model = (skimming_model(num_labels=2) if skim else build(tiny_config(num_labels=2))).eval()
        save_model(model, str(tmp_path / str(skim)))
        hf, info = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / str(skim)),
                                                                                 output_loading_info=True)
        assert not info["missing_keys"] and all(".predictors." in k for k in info["unexpected_keys"])
        assert bool(info["unexpected_keys"]) == skim
        dense = build(tiny_config(num_labels=2)).eval()   # the same weights, no predictors
        dense.load_state_dict({k: v for k, v in model.state_dict().items() if ".predictors." not in k})
        with torch.no_grad():
            assert torch.allclose(hf.eval()(input_ids=ids, attention_mask=mask).logits, dense(ids, mask).logits, atol=1e-5)
