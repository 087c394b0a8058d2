"""Bad input and faults (issue 9): each harmful case found by trying train.py as a new user would.
A user's mistake ends in one line naming the flag or file, before any work; nothing the user has is
overwritten or poisoned; a NaN stops the run."""

import json
import os
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

import train
from tiny import write_glue, write_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    return write_glue(str(root / "glue")), write_model(str(root / "model"))


def args_for(setup, out, *extra):
    glue, model = setup
    return ["--task", "sst2", "--data-dir", glue, "--model", model, "--device", "cpu", "--max-steps", "2",
            "--batch-size", "8", "--out-dir", str(out), *extra]


@pytest.mark.parametrize("flag,value,says", [
    ("--batch-size", "0", "must be >= 1"), ("--batch-size", "-4", "must be >= 1"),
    ("--eval-batch-size", "0", "must be >= 1"), ("--eval-every-epoch", "0", "must be >= 1"),
    ("--epochs", "0", "must be >= 1"), ("--epochs", "-1", "must be >= 1"),
    ("--max-steps", "0", "must be >= 1"), ("--max-steps", "-3", "must be >= 1"),
    ("--max-length", "1", "must be >= 8"), ("--max-length", "0", "must be >= 8"),
    ("--predictor-lr", "0", "must be > 0"), ("--lr", "-1e-5", "must be > 0"),
    ("--clip", "-1", "must be > 0"), ("--tau", "0", "must be > 0"), ("--tau", "-1", "must be > 0"),
    ("--tau", "nan", "not a finite number"), ("--lr", "inf", "not a finite number"),
    ("--warmup", "1.5", "must be < 1"), ("--skim-warmup", "2", "must be <= 1"),
    ("--log-every", "0", "must be >= 1"), ("--threads", "-1", "must be >= 1"), ("--seed", "-1", "must be >= 0"),
    ("--batch-size", "x", "is not a whole number"), ("--skim-coefficient", "-0.3", "must be >= 0"),
])
def test_every_number_is_range_checked_before_any_work(setup, tmp_path, capsys, flag, value, says):
    with pytest.raises(SystemExit) as e:
        train.main(args_for(setup, tmp_path / "out", f"{flag}={value}"))
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {flag}: " in last and says in last and "Traceback" not in last
    assert not os.path.exists(tmp_path / "out")                     # nothing was started


@pytest.mark.parametrize("extra,says", [
    (["--checkpoint", "somewhere"], "--checkpoint is read with --eval-only alone"),
    (["--device", "foo"], "--device 'foo' is not a device"),
    (["--device", "cuda"], "no CUDA GPU"),
])
def test_other_argument_mistakes(setup, tmp_path, capsys, extra, says):
    if extra[-1] == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit):
        train.main(args_for(setup, tmp_path / "out", *extra))
    assert says in capsys.readouterr().err.strip().splitlines()[-1]


def test_world_size_without_torchrun(setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(SystemExit):
        train.main(args_for(setup, tmp_path / "out"))
    assert "launch several processes with torchrun" in capsys.readouterr().err


def test_out_dir_that_is_a_file_or_holds_a_run(setup, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("mine")
    with pytest.raises(SystemExit):
        train.main(args_for(setup, f))
    assert "is a file" in capsys.readouterr().err and f.read_text() == "mine"
    out = tmp_path / "run"
    train.main(args_for(setup, out))
    before = (out / "results.json").read_text()
    with pytest.raises(SystemExit):                                  # a second run would overwrite the first
        train.main(args_for(setup, out, "--lr", "1e-4"))
    assert "already holds results.json" in capsys.readouterr().err
    assert (out / "results.json").read_text() == before
    train.main(args_for(setup, out, "--lr", "1e-4", "--overwrite"))  # when asked, it does
    assert json.loads((out / "results.json").read_text())["args"]["lr"] == 1e-4


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_out_dir_refused_before_training(setup, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    with pytest.raises(SystemExit):
        train.main(args_for(setup, ro / "out"))
    assert "is not writable" in capsys.readouterr().err


def test_nan_weight_stops_the_run_and_saves_nothing(setup, tmp_path, capsys):
    glue, model = setup
    broken = tmp_path / "nanmodel"
    broken.mkdir()
    for name in os.listdir(model):
        (broken / name).write_bytes(open(os.path.join(model, name), "rb").read())
    weights = load_file(str(broken / "model.safetensors"))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[key][5, 0] = float("nan")
    weights[key][:, 0] = float("nan")
    save_file(weights, str(broken / "model.safetensors"))
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match=r"error: step 1: the loss is nan"):
        train.main(["--task", "sst2", "--data-dir", glue, "--model", str(broken), "--device", "cpu",
                    "--max-steps", "2", "--batch-size", "8", "--out-dir", str(out)])
    assert not (out / "results.json").exists() and not (out / "checkpoint").exists()


def test_results_are_strict_json_and_readable_like_any_file(setup, tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        train.main(args_for(setup, out))
    finally:
        os.umask(old)
    text = (out / "results.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in results.json"))
    for path in (out / "results.json", out / "checkpoint" / "model.safetensors", out / "checkpoint" / "config.json"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path
    assert train.finite({"a": [float("nan"), 1.0], "b": float("inf")}) == {"a": [None, 1.0], "b": None}


def test_non_finite_regression_label_names_file_and_line(tmp_path):
    import data
    glue = write_glue(str(tmp_path / "glue"))
    path = os.path.join(glue, "STS-B", "train.tsv")
    lines = open(path).read().splitlines()
    fields = lines[3].split("\t")
    fields[-1] = "nan"
    lines[3] = "\t".join(fields)
    open(path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"STS-B/train.tsv, line 4: label 'nan' is not a finite number"):
        data.read_task("stsb", "train", glue)


def test_checkpoint_folder_is_swapped_as_a_whole(setup, tmp_path, monkeypatch):
    """A crash while saving leaves the previous checkpoint whole and no temporary folders; a new save
    leaves no stale tokenizer file from the old one."""
    import load_weights
    glue, model = setup
    out = tmp_path / "out"
    train.main(args_for(setup, out))
    ckpt = out / "checkpoint"
    (ckpt / "stale.txt").write_text("from an old run")
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}

    def dies_after_the_weights(model, path):
        real_save(model, path)
        raise KeyboardInterrupt          # killed between the weights and the rest
    real_save = load_weights.save_model
    monkeypatch.setattr(load_weights, "save_model", dies_after_the_weights)
    with pytest.raises(KeyboardInterrupt):
        load_weights.save_checkpoint(train.load_model(str(ckpt)), model, str(ckpt))
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before
    assert sorted(os.listdir(out)) == ["checkpoint", "results.json"]          # no .tmp or .old leftovers
    monkeypatch.setattr(load_weights, "save_model", real_save)
    vocab_only = tmp_path / "vocab_model"
    vocab_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        (vocab_only / name).write_bytes(open(os.path.join(model, name), "rb").read())
    from tiny import VOCAB
    (vocab_only / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (vocab_only / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    load_weights.save_checkpoint(train.load_model(str(ckpt)), str(vocab_only), str(ckpt))
    assert sorted(os.listdir(ckpt)) == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
