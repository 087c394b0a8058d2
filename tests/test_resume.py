"""--save-every / --resume: a run killed mid-way and resumed ends as the run never killed, bit for bit on the CPU."""

import json
import os

import pytest

import train
from storage import provenance
from storage.resume import STATE
from tiny import write_glue, write_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    return write_glue(str(root / "glue")), write_model(str(root / "model"))


def argv(setup, out, *extra):
    glue, model = setup   # 40 examples, batches of 8: 5 steps an epoch, 15 in all, an evaluation each epoch
    return ["--task", "sst2", "--data-dir", glue, "--model", model, "--device", "cpu", "--epochs", "3",
            "--batch-size", "8", "--out-dir", str(out), "--save-every", "3", "--target-speedup", "2",
            "--predictor-lr", "1e-2", "--mu0", "1", "--one-stage", *extra]   # (two stages: tests/test_two_stage.py)


def outcome(out):
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    for r in [res] + res["history"]:   # wall times and the command line differ from run to run
        for k in ("train_seconds", "eval_seconds", "examples_per_second"):
            r.pop(k)
    res["args"].pop("resume"), res["args"].pop("out_dir")
    res.pop("machine")
    with open(os.path.join(out, "checkpoint", "model.safetensors"), "rb") as f:
        return res, f.read()


def killed_at(n, monkeypatch, name="train_step"):
    """train.<name> (train_step, or evaluate_dev) raises KeyboardInterrupt (a kill) at its (n+1)-th call."""
    once, calls = getattr(train, name), []

    def killed(*a, **k):
        if len(calls) == n:
            raise KeyboardInterrupt
        calls.append(1)
        return once(*a, **k)
    monkeypatch.setattr(train, name, killed)
    return lambda: monkeypatch.setattr(train, name, once)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(setup, tmp_path, monkeypatch):
    """Killed in epoch 2 after the save at step 6 (with dropout, Gumbel noise, the budget's multipliers
    and an evaluation behind it), resumed: the same weights, the same results.json."""
    train.main(argv(setup, tmp_path / "whole"))
    assert not os.path.exists(tmp_path / "whole" / STATE)      # a finished run leaves nothing to resume
    revive = killed_at(8, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.main(argv(setup, tmp_path / "killed"))
    assert os.path.exists(tmp_path / "killed" / STATE)
    revive()
    train.main(argv(setup, tmp_path / "killed", "--resume"))
    assert outcome(tmp_path / "killed") == outcome(tmp_path / "whole")
    assert not os.path.exists(tmp_path / "killed" / STATE)


@pytest.mark.slow
def test_resume_refuses_what_it_cannot_continue(setup, tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit):                               # nothing saved there
        train.parse_args(argv(setup, tmp_path / "empty", "--resume"))
    assert "holds no training-state.pt" in capsys.readouterr().err
    revive = killed_at(4, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.main(argv(setup, tmp_path / "run"))
    revive()
    with pytest.raises(Exception, match=r"--resume: .* was saved by a run with --lr 5e-05 \(now 0.0001\)"):
        train.main(argv(setup, tmp_path / "run", "--resume", "--lr", "1e-4"))
    killed_at(1, monkeypatch)                                     # a fresh run over it, killed before its first
    with pytest.raises(KeyboardInterrupt):                        # save: the old run's state is gone, not resumable
        train.main(argv(setup, tmp_path / "run", "--overwrite"))
    assert not os.path.exists(tmp_path / "run" / STATE)


@pytest.mark.slow
def test_a_checkpoint_carries_the_evaluation_of_its_weights(setup, tmp_path, monkeypatch):
    """Killed between the checkpoint's swap and results.json: the new checkpoint holds its own results.json,
    the evaluation of its weights (the old results.json beside it says the step it was written at)."""
    out = tmp_path / "run"
    writes = []
    real = provenance.write_json

    def killed_at_the_second_results(path, obj):
        writes.append(path)
        if len(writes) == 2:
            raise KeyboardInterrupt
        real(path, obj)
    monkeypatch.setattr(provenance, "write_json", killed_at_the_second_results)
    with pytest.raises(KeyboardInterrupt):
        train.main(argv(setup, out))
    inside = json.load(open(out / "checkpoint" / "results.json"))
    outside = json.load(open(out / "results.json"))
    assert (inside["epoch"], outside["epoch"]) == (2, 1)
    assert not [f for f in os.listdir(tmp_path) if f.startswith((".tmp-", ".old-"))]


@pytest.mark.parametrize("extra,evaluations", [
    (("--save-every", "5"), 2),                        # killed in the final evaluation, after the save at the last step
    (("--save-every", "5"), 0),                        # killed in epoch 1's evaluation, after the save at its end
    (("--save-every", "5", "--epochs", "1"), 0),       # one epoch: the last step is the epoch's end
    (("--save-every", "3", "--max-steps", "6"), 1),   # a run shorter than its epochs, killed in its final evaluation
])
@pytest.mark.slow
def test_killed_in_an_evaluation_resumes_to_the_same_result(setup, tmp_path, monkeypatch, extra, evaluations):
    """Whatever the moment of the kill, the resumed run trains no extra step and ends with the results.json
    and the checkpoint of the run never killed."""
    train.main(argv(setup, tmp_path / "whole", *extra))
    revive = killed_at(evaluations, monkeypatch, "evaluate_dev")
    with pytest.raises(KeyboardInterrupt):
        train.main(argv(setup, tmp_path / "killed", *extra))
    revive()
    train.main(argv(setup, tmp_path / "killed", "--resume", *extra))
    assert outcome(tmp_path / "killed") == outcome(tmp_path / "whole")
    assert not os.path.exists(tmp_path / "killed" / STATE)


@pytest.mark.slow
def test_a_finished_run_killed_before_removing_its_state_is_left_as_it_is(setup, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    monkeypatch.setattr(train.resume, "clear", lambda out_dir, fresh=False: None)   # killed before removing the state
    train.main(argv(setup, out))
    monkeypatch.undo()
    before = open(out / "results.json").read(), open(out / "checkpoint" / "model.safetensors", "rb").read()
    train.main(argv(setup, out, "--resume"))
    assert "the run had finished" in capsys.readouterr().out
    assert (open(out / "results.json").read(), open(out / "checkpoint" / "model.safetensors", "rb").read()) == before
    assert not os.path.exists(out / STATE)


@pytest.mark.slow
def test_a_damaged_or_foreign_state_is_refused_and_a_killed_runs_state_is_kept(setup, tmp_path, monkeypatch, capsys):
    from storage.resume import MAGIC
    out = tmp_path / "run"
    revive = killed_at(4, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.main(argv(setup, out))
    revive()
    with pytest.raises(SystemExit):   # a fresh run into the killed run's folder: its state is not removed
        train.parse_args(argv(setup, out))
    assert "holds training-state.pt, the state of a killed run: pass --resume" in capsys.readouterr().err
    assert os.path.exists(out / STATE)
    good = open(out / STATE, "rb").read()
    middle = len(good) // 2
    for bad, says in [(good[:middle] + b"\xff" * 65536 + good[middle + 65536:], "is damaged"),
                      (good[:middle], "is damaged"), (b"hello", "not a training state of this version"),
                      (good[len(MAGIC) + 32:], "not a training state of this version")]:
        open(out / STATE, "wb").write(bad)
        with pytest.raises(Exception, match=says):
            train.main(argv(setup, out, "--resume"))
    assert not os.path.exists(out / "results.json")   # nothing written from a broken state


@pytest.mark.slow
def test_a_run_folder_moved_whole_resumes_where_it_is(setup, tmp_path, monkeypatch):
    import shutil
    train.main(argv(setup, tmp_path / "whole"))
    revive = killed_at(8, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.main(argv(setup, tmp_path / "killed"))
    revive()
    from storage.files import release_claims
    release_claims()   # (the killed run's process is gone: so is its claim)
    shutil.move(tmp_path / "killed", tmp_path / "moved")
    train.main(argv(setup, tmp_path / "moved", "--resume"))
    assert outcome(tmp_path / "moved") == outcome(tmp_path / "whole")


@pytest.mark.slow
def test_the_loss_curve_is_kept_and_a_resumed_run_continues_it(setup, tmp_path, monkeypatch):
    """<out-dir>/log.jsonl: a line a logged step (loss, task and skim loss, kept fraction, lr); a resumed
    run's curve is the never-killed run's, and tools/report.py draws it."""
    from storage.files import read_log
    from tools import report
    curve = lambda out: [{k: v for k, v in e.items() if k != "examples_per_s"} for e in read_log(out)]
    train.main(argv(setup, tmp_path / "whole", "--log-every", "1"))
    whole = curve(tmp_path / "whole")
    assert [e["step"] for e in whole] == list(range(1, 16)) and {"loss", "task_loss", "skim_loss", "kept", "lr"} <= set(whole[0])
    revive = killed_at(8, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.main(argv(setup, tmp_path / "killed", "--log-every", "1"))
    revive()
    assert [e["step"] for e in read_log(tmp_path / "killed")] == list(range(1, 9))   # steps 7, 8 come again
    train.main(argv(setup, tmp_path / "killed", "--resume", "--log-every", "1"))
    assert curve(tmp_path / "killed") == whole
    train.main(argv(setup, tmp_path / "killed", "--overwrite", "--max-steps", "2"))   # a fresh run: a fresh curve
    assert [e["step"] for e in read_log(tmp_path / "killed")] == [2]
    report.main([str(tmp_path / "whole"), "--out", str(tmp_path / "r.html")])
    page = open(tmp_path / "r.html").read()
    assert "<h2>Training: whole" in page and page.count('class="curve"') == 2


@pytest.mark.slow
def test_a_curve_line_cut_by_a_kill_neither_stops_the_resume_nor_the_report(setup, tmp_path, monkeypatch):
    """A kill in the middle of log.jsonl's append leaves half a line: --resume drops it (its step comes again),
    and tools/report.py reads the curve around it (both stopped on it with a traceback)."""
    from storage.files import read_log
    out = tmp_path / "killed"
    revive = killed_at(8, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.main(argv(setup, out, "--log-every", "1"))
    revive()
    with open(out / "log.jsonl", "a") as f:
        f.write('{"step": 9, "lo')
    assert [e["step"] for e in read_log(out)] == list(range(1, 9))
    train.main(argv(setup, out, "--resume", "--log-every", "1"))
    assert [e["step"] for e in read_log(out)] == list(range(1, 16))
