"""predict/: a trained checkpoint used in three lines (the packed path, the reference's decisions) and
over a file of texts."""

import json
import os

import pytest
import torch

import data
import train
from load_weights import load_model
from predict import Classifier
from predict.__main__ import main as predict_main
from test_bad_input import args_for, setup   # noqa: F401 (setup: the tiny GLUE folder and model, a fixture)

TEXTS = ["a good film", "the plot is dull and the cast is bad", "fine", "a b c d e f g h i j k l m n o p"]


def trained(setup, tmp_path, task, *extra):
    out = tmp_path / f"{task}{''.join(extra)}"
    skim = ["--target-speedup", "2", "--mu0", "1", "--skim-delay", "0", "--skim-warmup", "0"]   # (calibrated: it skims)
    train.main(["--task", task] + args_for(setup, out, *extra)[2:] + skim * ("--baseline" not in extra))
    return str(out / "checkpoint")


def reference(checkpoint, texts, max_length=64):
    """The reference path (transkimmer.pruned_encode, padded batches): logits and kept fractions."""
    model = load_model(checkpoint).eval()
    ids = data.encode(data.load_tokenizer(checkpoint), texts, max_length)
    b = next(data.batches(ids, [0] * len(ids), len(ids)))
    with torch.no_grad():
        out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
    n = b["attention_mask"].sum(1)
    kept = None if out.keep_masks is None else torch.stack([m.sum(1) for m in out.keep_masks], 1).sum(1) / (len(out.keep_masks) * n)
    return out.logits, kept


def test_classifier_gives_the_references_predictions(setup, tmp_path):
    ckpt = trained(setup, tmp_path, "sst2")
    clf = Classifier.load(ckpt)
    preds = clf(TEXTS)
    logits, kept = reference(ckpt, TEXTS)
    assert [p.label for p in preds] == [clf.classes[i] for i in logits.argmax(-1).tolist()]
    assert torch.allclose(torch.tensor([p.scores for p in preds]), torch.softmax(logits, -1), atol=1e-5)
    assert [p.kept for p in preds] == pytest.approx(kept.tolist()) and min(kept.tolist()) < 1   # it skims
    assert clf([]) == [] and len(Classifier.load(ckpt, batch_size=3)(TEXTS * 2)) == 8


def test_classifier_for_regression_pairs_and_the_dense_model(setup, tmp_path):
    ckpt = trained(setup, tmp_path, "stsb", "--baseline")
    pairs = [("a good film", "a fine film"), ("dull", "a b c")]
    preds = Classifier.load(ckpt)(pairs)
    logits, kept = reference(ckpt, pairs)
    assert [p.label for p in preds] == pytest.approx(logits.squeeze(-1).tolist(), abs=1e-5)
    assert kept is None and [p.kept for p in preds] == [1.0, 1.0]


def test_predict_command_over_files(setup, tmp_path, capsys):
    ckpt = trained(setup, tmp_path, "sst2")
    (tmp_path / "t.txt").write_text("\n".join(TEXTS) + "\n\n")
    (tmp_path / "t.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t1\n" for t in TEXTS))
    out = tmp_path / "p.jsonl"
    rows = predict_main(["--checkpoint", ckpt, "--input", str(tmp_path / "t.txt"), "--out", str(out), "--device", "cpu"])
    got = [json.loads(line) for line in open(out)]
    assert len(rows) == 4 and [r["text"] for r in got] == TEXTS and {"label", "scores", "kept", "index"} <= set(got[0])
    with pytest.raises(SystemExit):   # an existing file is the user's
        predict_main(["--checkpoint", ckpt, "--input", str(tmp_path / "t.txt"), "--out", str(out)])
    assert "already exists: pass another file, or --overwrite" in capsys.readouterr().err
    predict_main(["--checkpoint", ckpt, "--input", str(tmp_path / "t.tsv"), "--out", str(out), "--overwrite"])
    assert [json.loads(line)["label"] for line in open(out)] == [r["label"] for r in got]


@pytest.mark.slow
def test_predict_command_refuses_what_it_cannot_read_in_one_line(setup, tmp_path):
    import subprocess
    import sys
    from model import build
    from storage.files import save_model
    from tiny import tiny_config
    save_model(build(tiny_config(head="span")), str(tmp_path / "qa"))
    (tmp_path / "t.txt").write_text("a text\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for ckpt, inp, says in [(tmp_path / "qa", tmp_path / "t.txt", "span QA (squad_v2) is evaluated with train.py --eval-only"),
                            (tmp_path / "none", tmp_path / "t.txt", "does not exist"),
                            (tmp_path / "qa", tmp_path / "missing.csv", "missing.csv not found")]:
        r = subprocess.run([sys.executable, "-m", "predict", "--checkpoint", str(ckpt), "--input", str(inp), "--out",
                            str(tmp_path / "p.jsonl")], cwd=root, capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and "Traceback" not in r.stderr and says in r.stderr.strip().splitlines()[-1], r.stderr
