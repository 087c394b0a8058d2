"""Bad input and faults: each harmful case found by trying train.py as a new user would.
A user's mistake ends in one line naming the flag or file, before any work; nothing the user has is
overwritten or poisoned; a NaN stops the run."""

import json
import os
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

import train
from storage.files import finite, recover
from tasks import glue as glue_files
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
    ("--predictor-lr", "0", "must be > 0"), ("--predictor-width", "0", "must be"), ("--lr", "-1e-5", "must be > 0"),
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
    (["--baseline", "--predictor-width", "64"], "--predictor-width sets skimming, but --baseline trains the plain BERT"),
    (["--baseline", "--tau", "0.5", "--skim-delay", "0"], "--tau --skim-delay set skimming, but --baseline"),
    (["--baseline", "--skim-after-loss-drop", "0.05"], "--skim-after-loss-drop sets skimming, but --baseline"),
    (["--skim-after-loss-drop", "1"], "--skim-after-loss-drop: must be < 1"),
    (["--skim-delay", "0.9", "--skim-warmup", "0.5"], "--skim-delay 0.9 + --skim-warmup 0.5 > 1: lambda would still be ramping"),
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


@pytest.mark.slow
def test_out_dir_that_is_a_file_or_holds_a_run(setup, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("mine")
    with pytest.raises(SystemExit):
        train.main(args_for(setup, f))
    assert "is a file" in capsys.readouterr().err and f.read_text() == "mine"
    with pytest.raises(SystemExit):                                  # a folder inside a file cannot be made
        train.main(args_for(setup, f / "run"))
    assert f"{f} is a file, not a folder" in capsys.readouterr().err and f.read_text() == "mine"
    out = tmp_path / "run"
    train.main(args_for(setup, out))
    before = (out / "results.json").read_text()
    with pytest.raises(SystemExit):                                  # a second run would overwrite the first
        train.main(args_for(setup, out, "--lr", "1e-4"))
    assert "already holds results.json" in capsys.readouterr().err
    assert (out / "results.json").read_text() == before
    train.main(args_for(setup, out, "--lr", "1e-4", "--overwrite"))  # when asked, it does
    assert json.loads((out / "results.json").read_text())["args"]["lr"] == 1e-4


@pytest.mark.slow
def test_a_checkpoint_as_the_start_of_another_run(setup, tmp_path, monkeypatch):
    """--model may be a train.py checkpoint (two-stage training: Transkimmer from the fine-tuned baseline);
    one of another task, or a Transkimmer checkpoint under --baseline, is one line before any work."""
    glue, _ = setup
    base, skim = tmp_path / "base", tmp_path / "skim"
    train.main(args_for(setup, base, "--baseline"))
    train.main(args_for(setup, skim))
    train.main(args_for((glue, str(base / "checkpoint")), tmp_path / "two-stage"))       # the baseline, then skimming
    read = []
    monkeypatch.setattr(train, "read_splits", lambda *a, **k: read.append(1))          # no work before the refusal
    for start, extra, says in [(base, ["--task", "cola"], "was fine-tuned on sst2, not cola: its classifier answers another task"),
                               (skim, ["--baseline"], "is a Transkimmer checkpoint and --baseline fine-tunes a plain BERT")]:
        with pytest.raises(SystemExit, match=says):
            train.main(args_for((glue, str(start / "checkpoint")), tmp_path / "out", *extra))
    assert not read


def test_read_only_out_dir_refused_before_training(setup, tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    real = os.access   # chmod does not stop root: make the folder read-only for os.access too
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).startswith(str(ro)) else real(p, mode))
    with pytest.raises(SystemExit):
        train.main(args_for(setup, ro / "out"))
    assert "is not writable" in capsys.readouterr().err


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert finite({"a": [float("nan"), 1.0], "b": float("inf")}) == {"a": [None, 1.0], "b": None}


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
        glue_files.read_task("stsb", "train", glue)


def test_checkpoint_folder_is_swapped_as_a_whole(setup, tmp_path, monkeypatch):
    """A crash while saving leaves the previous checkpoint whole and no temporary folders; a new save
    leaves no stale tokenizer file from the old one."""
    import storage.files
    glue, model = setup
    out = tmp_path / "out"
    train.main(args_for(setup, out))
    ckpt = out / "checkpoint"
    (ckpt / "stale.txt").write_text("from an old run")
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}

    def dies_after_the_weights(model, path):
        real_save(model, path)
        raise KeyboardInterrupt          # killed between the weights and the rest
    real_save = storage.files.save_model
    monkeypatch.setattr(storage.files, "save_model", dies_after_the_weights)
    with pytest.raises(KeyboardInterrupt):
        storage.files.save_checkpoint(train.load_model(str(ckpt)), model, str(ckpt))
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before
    from storage.files import CLAIM   # (the run's claim on its folder: given up when its process ends, or its command returns)
    assert sorted(os.listdir(out)) == [CLAIM, "checkpoint", "log.jsonl", "results.json"]   # no .tmp or .old leftovers
    monkeypatch.setattr(storage.files, "save_model", real_save)
    vocab_only = tmp_path / "vocab_model"
    vocab_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        (vocab_only / name).write_bytes(open(os.path.join(model, name), "rb").read())
    from tiny import VOCAB
    (vocab_only / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (vocab_only / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    storage.files.save_checkpoint(train.load_model(str(ckpt)), str(vocab_only), str(ckpt))
    assert sorted(os.listdir(ckpt)) == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    # killed (SIGKILL, no cleanup) between the two renames of the swap: the next save recovers, and so
    # does the next command that names the folder, before any work (here --eval-only --checkpoint)
    kept = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    for recovered_by in (lambda: recover(str(ckpt)), lambda: train.parse_args(
            ["--task", "sst2", "--eval-only", "--checkpoint", str(ckpt), "--device", "cpu", "--out-dir", str(tmp_path / "e")])):
        os.makedirs(out / ".old-checkpoint-x")
        os.replace(ckpt, out / ".old-checkpoint-x" / "previous")
        os.makedirs(out / ".tmp-checkpoint-y")
        (out / ".tmp-checkpoint-y" / "model.safetensors").write_bytes(b"half")
        recovered_by()
        assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == kept
        assert sorted(os.listdir(out)) == [CLAIM, "checkpoint", "log.jsonl", "results.json"]


# The unclear cases: run the command as a user would; a non-zero exit, a last line naming the file or
# flag, and no traceback.

def _copy_model(model, dst):
    os.makedirs(dst)
    for name in os.listdir(model):
        open(os.path.join(dst, name), "wb").write(open(os.path.join(model, name), "rb").read())
    return dst


def _tsv(glue, rel, edit):
    path = os.path.join(glue, rel)
    text = open(path, "rb").read()
    open(path, "wb").write(edit(text))


def _json(path, edit):
    cfg = json.load(open(path))
    json.dump(edit(cfg), open(path, "w"))


CASES = {
    "latin-1 tsv": (lambda g, m: _tsv(g, "SST-2/train.tsv", lambda b: b + "caf\xe9 cr\xe8me\t1\n".encode("latin-1")),
                    [], "SST-2/train.tsv: not UTF-8 text"),
    "binary tsv": (lambda g, m: _tsv(g, "SST-2/dev.tsv", lambda b: b"\xff\xfe\x00\x01" * 50), [], "SST-2/dev.tsv: not UTF-8"),
    "no header": (lambda g, m: _tsv(g, "SST-2/train.tsv", lambda b: b.split(b"\n", 1)[1]), [],
                  "SST-2/train.tsv, line 1 is an example"),
    "model is a file": (lambda g, m: None, ["--model", "@m/model.safetensors"], "is a file: pass the folder"),
    "model path typo": (lambda g, m: None, ["--model", "@m-typo/"], "does not exist"),
    "model folder without config": (lambda g, m: os.remove(os.path.join(m, "config.json")), [], "config.json is missing"),
    "model folder without weights": (lambda g, m: os.remove(os.path.join(m, "model.safetensors")), [],
                                     "model.safetensors is missing"),
    "truncated weights": (lambda g, m: open(os.path.join(m, "model.safetensors"), "r+b").truncate(100), [],
                          "model.safetensors is not a readable safetensors file"),
    "not json config": (lambda g, m: open(os.path.join(m, "config.json"), "w").write("{oops"), [], "config.json: "),
    "config is a list": (lambda g, m: open(os.path.join(m, "config.json"), "w").write("[1, 2]"), [],
                         "config.json: config.json must hold a JSON object"),
    "zero heads": (lambda g, m: _json(os.path.join(m, "config.json"), lambda c: {**c, "num_attention_heads": 0}), [],
                   "num_attention_heads must be a whole number >= 1"),
    "string size": (lambda g, m: _json(os.path.join(m, "config.json"), lambda c: {**c, "hidden_size": "32"}), [],
                    "hidden_size must be a whole number >= 1"),
    "corrupt tokenizer": (lambda g, m: open(os.path.join(m, "tokenizer.json"), "w").write("{}"), [],
                          "tokenizer.json is not a valid tokenizer file"),
    "no post-processor": (lambda g, m: _json(os.path.join(m, "tokenizer.json"), lambda c: {**c, "post_processor": None}),
                          [], "does not start inputs with [CLS]"),
    "small vocab": (lambda g, m: (_json(os.path.join(m, "config.json"), lambda c: {**c, "vocab_size": 10}),
                                  save_file({k: (v[:10] if "word_embeddings" in k else v) for k, v in
                                             load_file(os.path.join(m, "model.safetensors")).items()},
                                            os.path.join(m, "model.safetensors"))), [], "config.json has vocab_size 10"),
    "int64 weights": (lambda g, m: save_file({k: (v.long() if "word_embeddings" in k else v) for k, v in
                                              load_file(os.path.join(m, "model.safetensors")).items()},
                                             os.path.join(m, "model.safetensors")), [], "not floating point"),
    "encoder as checkpoint": (lambda g, m: None, ["--eval-only", "--checkpoint", "@m"], "has 0 output(s)"),
    "string eps": (lambda g, m: _json(os.path.join(m, "config.json"), lambda c: {**c, "layer_norm_eps": "1e-12"}), [],
                   "layer_norm_eps must be a number, got '1e-12'"),
    "distill layers, eval only": (lambda g, m: None, ["--eval-only", "--checkpoint", "@m", "--distill-layers"],
                                  "--distill-layers sets how to train"),
    "long field": (lambda g, m: _tsv(g, "SST-2/train.tsv", lambda b: b + ("good " * 40000).encode() + b"\t1\n"), [], None),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_unclear_cases_end_in_one_clear_line(setup, tmp_path, case):
    import shutil
    import subprocess
    import sys
    glue, model = setup
    g, m = str(tmp_path / "glue"), _copy_model(model, str(tmp_path / "m"))
    shutil.copytree(glue, g)
    prepare, extra, says = CASES[case]
    prepare(g, m)
    extra = [e.replace("@m", m) for e in extra]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, os.path.join(root, "train.py"), "--task", "sst2", "--data-dir", g, "--device", "cpu",
           "--out-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")]
    if "--eval-only" not in extra:                      # (--eval-only refuses flags that only training reads)
        cmd += ["--max-steps", "1", "--batch-size", "8"]
    if "--model" not in extra and "--checkpoint" not in extra:
        extra = ["--model", m] + extra
    r = subprocess.run(cmd + extra, capture_output=True, text=True, timeout=120)
    if says is None:   # accepted: nothing wrong with it
        assert r.returncode == 0, r.stderr[-1500:]
        return
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert last.startswith("error: ") or ": error: " in last, last
    assert says in last, last


@pytest.mark.slow
def test_evaluate_py_run_as_a_command_names_the_one_that_evaluates():
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "evaluate.py"), "--checkpoint", "x"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "python train.py --eval-only --checkpoint" in r.stderr


@pytest.mark.slow
def test_a_checkpoint_folder_is_replaced_only_when_ours_and_asked(setup, tmp_path, capsys):
    """<out-dir>/checkpoint from a killed run (no results.json) is kept without --overwrite; a folder
    train.py did not write is never replaced; nor is the folder --model reads."""
    import shutil
    out = tmp_path / "out"
    train.main(args_for(setup, out))
    (out / "results.json").unlink()                                       # as a run killed before its record
    before = (out / "checkpoint" / "model.safetensors").read_bytes()
    cases = [(args_for(setup, out), "holds " + str(out / "checkpoint") + " from an earlier run"),
             (args_for((setup[0], str(out / "checkpoint")), out, "--overwrite"), "the folder --model"),
             ]
    foreign = tmp_path / "foreign"
    shutil.copytree(setup[1], foreign / "checkpoint")                     # a Hugging Face folder, not ours
    cases.append((args_for(setup, foreign, "--overwrite"), "which train.py did not write"))
    for argv, says in cases:
        with pytest.raises(SystemExit):
            train.main(argv)
        assert says in capsys.readouterr().err.strip().splitlines()[-1]
    assert (out / "checkpoint" / "model.safetensors").read_bytes() == before
    assert sorted(os.listdir(foreign / "checkpoint")) == sorted(os.listdir(setup[1]))
    train.main(args_for(setup, out, "--overwrite"))                       # ours, and asked: replaced


@pytest.mark.parametrize("extra,says", [
    (["--lr", "-5e-5"], "argument --lr: must be > 0, got -5e-5"),          # not "expected one argument"
    (["--seed", "99999999999"], "argument --seed: must be <= 4294967295"),
    (["--threads", "100000"], "argument --threads: must be <= 1024"),
    (["--predictor-width", "10000000"], "argument --predictor-width: must be <= 65536"),
])
def test_negative_and_huge_numbers_are_named(setup, tmp_path, capsys, extra, says):
    with pytest.raises(SystemExit):
        train.main(args_for(setup, tmp_path / "out", *extra))
    assert says in capsys.readouterr().err.strip().splitlines()[-1]


def test_world_size_that_is_not_a_number(setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "abc")
    with pytest.raises(SystemExit):
        train.main(args_for(setup, tmp_path / "out"))
    assert "WORLD_SIZE='abc' is not a number of processes" in capsys.readouterr().err


def test_a_blank_last_line_in_a_tsv_is_no_example(tmp_path):
    glue = write_glue(str(tmp_path / "glue"))
    path = os.path.join(glue, "SST-2", "dev.tsv")
    n = len(glue_files.read_task("sst2", "dev", glue)[0])
    with open(path, "a") as f:
        f.write("\n\n")
    assert len(glue_files.read_task("sst2", "dev", glue)[0]) == n


@pytest.mark.parametrize("change,says", [({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be a probability"),
                                         ({"num_labels": "2"}, "num_labels must be a whole number >= 0")])
def test_config_values_of_the_wrong_type_or_range(change, says):
    from model import BertConfig
    base = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    with pytest.raises(ValueError, match=says):
        BertConfig.from_dict({**base, **change})


def test_ctrl_c_is_one_line():
    from cli import errors

    def interrupted():
        raise KeyboardInterrupt
    with pytest.raises(SystemExit, match="interrupted: the checkpoint and results already written"):
        errors.run(interrupted)


@pytest.mark.parametrize("extra,says", [
    (["--eval-only", "--checkpoint", "c", "--lr", "1e-4"], "--lr sets how to train, and --eval-only evaluates --checkpoint"),
    (["--eval-only", "--checkpoint", "c", "--tau", "0.5", "--epochs", "2"], "--epochs --tau set how to train"),
])
def test_eval_only_refuses_training_flags(setup, tmp_path, capsys, extra, says):
    glue, _ = setup
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "sst2", "--data-dir", glue, "--device", "cpu", "--out-dir", str(tmp_path / "o"), *extra])
    assert says in capsys.readouterr().err


def test_squad_window_too_short(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "squad_v2", "--max-length", "16", "--device", "cpu"])
    assert "--max-length 16: a SQuAD window holds [CLS] question [SEP] context [SEP]; pass at least 32" in capsys.readouterr().err


def test_sigterm_during_a_save_leaves_no_temporary_folder(tmp_path):
    """A scheduler's SIGTERM while a checkpoint folder is being written: the temporary folder is
    removed, the previous folder stays, one line says so."""
    import subprocess
    import sys
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "old.txt").write_text("previous")
    code = ("import os, signal, sys, time; sys.path.insert(0, sys.argv[1]); from cli import errors; from storage import files\n"
            "def fill(tmp):\n    open(os.path.join(tmp, 'new.txt'), 'w').write('x')\n"
            "    os.kill(os.getpid(), signal.SIGTERM); time.sleep(10)\n"
            "errors.run(lambda: files.atomic_folder(sys.argv[2], fill))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code, root, str(tmp_path / "ckpt")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and r.stderr.strip().startswith("interrupted:"), r.stderr
    assert sorted(os.listdir(tmp_path)) == ["ckpt"] and os.listdir(tmp_path / "ckpt") == ["old.txt"]


def test_ctrl_c_before_the_first_evaluation_leaves_no_folder(setup, tmp_path, monkeypatch):
    """The out-dir is made by the first thing written into it: interrupted before, nothing is left."""
    from cli import errors

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(train, "train_step", interrupted)
    with pytest.raises(SystemExit, match="interrupted"):
        errors.run(lambda: train.main(args_for(setup, tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_a_full_disk_is_found_before_training(setup, tmp_path, capsys, monkeypatch):
    import collections
    import shutil
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 20, 9 << 20, 1 << 20))   # 1 MB free
    with pytest.raises(SystemExit):
        train.main(args_for(setup, tmp_path / "out"))
    assert "MB free, its checkpoints need about" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_runs_into_one_out_dir_at_once(setup, tmp_path, capsys):
    """A run claims its --out-dir (a file inside it); a second run into it while the first lives is
    refused before any work, by any path (a symlink); a claim left by a process that is gone is taken
    over; a file beside the folder that shares its name is the user's and never touched."""
    import subprocess
    import sys
    from cli import errors
    from storage.files import CLAIM, CLAIM_TEXT
    out, lock, link = tmp_path / "poetry", tmp_path / "poetry" / CLAIM, tmp_path / "link"
    (tmp_path / "poetry.lock").write_text("the user's own file")
    out.mkdir()
    link.symlink_to(out)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{CLAIM_TEXT}{other.pid}")
        for folder in (out, link):
            with pytest.raises(SystemExit, match=f"is being written by another run \\(process {other.pid}"):
                errors.run(lambda: train.main(args_for(setup, folder)))
        assert sorted(os.listdir(out)) == [CLAIM]
    finally:
        other.kill()
        other.wait()
    lock.write_text("12345")                                              # not a claim this project wrote
    with pytest.raises(SystemExit, match="is not a claim a run of this project wrote: remove it"):
        errors.run(lambda: train.main(args_for(setup, out)))
    lock.write_text(f"{CLAIM_TEXT}{other.pid}")
    train.main(args_for(setup, out))                                      # the claim is stale now: taken over
    assert (out / "results.json").exists() and lock.read_text() == f"{CLAIM_TEXT}{os.getpid()}\n"
    assert (tmp_path / "poetry.lock").read_text() == "the user's own file"


def test_claims_and_advice_in_one_line(tmp_path):
    """A folder where the claim file goes is no claim of ours; an own-data checkpoint evaluated on a GLUE
    task is told to pass its --dev-file (there is no --task custom)."""
    from cli.errors import BadInput
    from storage.files import CLAIM, claim
    from cli.train_flags import check_checkpoint_task
    from model import BertConfig
    (tmp_path / "out" / CLAIM).mkdir(parents=True)
    with pytest.raises(BadInput, match="is not a claim a run of this project wrote: remove it"):
        claim(str(tmp_path / "out"))
    with pytest.raises(SystemExit, match="fine-tuned on custom, not sst2: pass --dev-file"):
        check_checkpoint_task("sst2", "ck", BertConfig(finetuning_task="custom"))
