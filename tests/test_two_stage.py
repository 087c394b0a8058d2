"""extensions/two_stage.py: --target-speedup trains the dense baseline first, then skims from it."""

import json
import os

import pytest

import train
from data import BadInput
from extensions import two_stage
from cli.train_flags import SKIM_SETTINGS
from storage.resume import STATE
from test_resume import killed_at, outcome, setup   # (setup: a tiny model and tiny GLUE files)

DEFAULTS = train.TrainConfig(), SKIM_SETTINGS


def argv(setup, out, *extra):
    glue, model = setup   # 40 examples, batches of 8: 5 steps an epoch, 15 in all, an evaluation each epoch
    return ["--task", "sst2", "--data-dir", glue, "--model", model, "--device", "cpu", "--epochs", "3",
            "--batch-size", "8", "--out-dir", str(out), *extra]


TARGET = ("--target-speedup", "2", "--predictor-lr", "1e-2", "--mu0", "1")


def plan(setup, out, *extra):
    return two_stage.stages(train.parse_args(argv(setup, out, *extra)), *DEFAULTS, log=lambda *a: None)


def test_target_speedup_plans_the_baseline_then_skimming_from_it(setup, tmp_path):
    first, second = plan(setup, tmp_path / "run", *TARGET)
    assert (first.baseline, first.target_speedup, first.out_dir) == (True, None, str(tmp_path / "run" / "baseline"))
    assert (second.baseline, second.target_speedup, second.out_dir) == (False, 2.0, str(tmp_path / "run"))
    assert second.model == os.path.join(first.out_dir, "checkpoint")
    assert (second.skim_delay, second.skim_warmup) == (0.0, 0.3)           # the recipe's schedule
    assert (first.seed, first.lr, first.epochs) == (second.seed, second.lr, second.epochs)   # a --baseline run's
    _, given = plan(setup, tmp_path / "given", *TARGET, "--skim-delay", "0.2")
    assert (given.skim_delay, given.skim_warmup) == (0.2, 0.3)             # a flag given is kept


def test_one_stage_lambda_and_a_fine_tuned_model_run_once(setup, tmp_path):
    one, = plan(setup, tmp_path / "a", *TARGET, "--one-stage")
    assert (one.skim_delay, one.target_speedup, one.model) == (train.TrainConfig.skim_delay, 2.0, setup[1])
    lam, = plan(setup, tmp_path / "b")
    assert lam.skim_delay == train.TrainConfig.skim_delay and lam.target_speedup is None
    base = tmp_path / "base"
    train.main(argv(setup, base, "--baseline", "--max-steps", "1"))
    glue, _ = setup
    cfg = train.parse_args(argv((glue, str(base / "checkpoint")), tmp_path / "c", *TARGET))
    alone, = two_stage.stages(cfg, *DEFAULTS, log=lambda *a: None)
    assert (alone.model, alone.skim_delay, alone.skim_warmup) == (str(base / "checkpoint"), 0.0, 0.3)


def test_an_earlier_baseline_is_never_trained_over_without_asking(setup, tmp_path):
    (tmp_path / "run" / "baseline").mkdir(parents=True)
    (tmp_path / "run" / "baseline" / "results.json").write_text("{}")
    with pytest.raises(BadInput, match="holds an unfinished baseline: pass --overwrite to train it again, or another"):
        plan(setup, tmp_path / "run", *TARGET)
    assert len(plan(setup, tmp_path / "run", *TARGET, "--overwrite")) == 2
    with pytest.raises(BadInput, match="did not finish: start the run again"):   # {} is no finished run
        plan(setup, tmp_path / "run", *TARGET, "--resume")
    done = dict(step=15, epoch=3, args=dict(max_steps=None, epochs=3))
    (tmp_path / "run" / "baseline" / "results.json").write_text(json.dumps(done))   # finished: skimming may start
    with pytest.raises(BadInput, match="holds the finished baseline of an earlier run: pass --resume to skim from it, "
                                       "--overwrite to train it again"):
        plan(setup, tmp_path / "run", *TARGET)
    second, = plan(setup, tmp_path / "run", *TARGET, "--resume")
    assert second.model == str(tmp_path / "run" / "baseline" / "checkpoint") and not second.resume
    (tmp_path / "run" / "baseline" / STATE).write_text("")
    with pytest.raises(BadInput, match="holds the baseline of a killed run: pass --resume to continue it"):
        plan(setup, tmp_path / "run", *TARGET)


@pytest.mark.slow
def test_two_stages_are_the_two_commands(setup, tmp_path):
    """One command gives, bit for bit, what `--baseline` and then `--target-speedup --model BASE/checkpoint` give."""
    train.main(argv(setup, tmp_path / "one", *TARGET))
    train.main(argv(setup, tmp_path / "base", "--baseline"))
    glue, _ = setup
    train.main(argv((glue, str(tmp_path / "base" / "checkpoint")), tmp_path / "two", *TARGET))
    for a, b in [("one/baseline", "base"), ("one", "two")]:
        (ra, wa), (rb, wb) = outcome(tmp_path / a), outcome(tmp_path / b)
        ra["args"].pop("model"), rb["args"].pop("model")
        assert wa == wb and ra == rb
    res = json.load(open(tmp_path / "one" / "results.json"))
    assert res["args"]["model"] == str(tmp_path / "one" / "baseline" / "checkpoint") and res["budget"]["asked"] == 2.0
    assert json.load(open(tmp_path / "one" / "baseline" / "results.json"))["args"]["baseline"] is True


@pytest.mark.slow
@pytest.mark.parametrize("kill_at,state_in", [(8, "baseline"), (15 + 8, "")])   # in the first stage, in the second
def test_a_two_stage_run_resumes_in_either_stage(setup, tmp_path, monkeypatch, capsys, kill_at, state_in):
    """Killed in either stage and resumed with --resume: the results and weights of the run never killed
    (the first stage's too)."""
    flags = (*TARGET, "--save-every", "3")
    train.main(argv(setup, tmp_path / "whole", *flags))
    revive = killed_at(kill_at, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train.main(argv(setup, tmp_path / "killed", *flags))
    assert os.path.exists(tmp_path / "killed" / state_in / STATE)
    revive()
    capsys.readouterr()
    train.main(argv(setup, tmp_path / "killed", *flags, "--resume"))
    assert "resumed at step 6" in capsys.readouterr().out              # continued, not started again
    for sub in ("", "baseline"):
        (ra, wa), (rb, wb) = outcome(tmp_path / "killed" / sub), outcome(tmp_path / "whole" / sub)
        ra["args"].pop("model"), rb["args"].pop("model")
        assert wa == wb and ra == rb
        assert not os.path.exists(tmp_path / "killed" / sub / STATE)


@pytest.mark.parametrize("extra,says", [
    (("--one-stage",), "--one-stage says how --target-speedup trains: pass --target-speedup too"),
    (("--one-stage", "--target-speedup", "2", "--baseline"), "--baseline trains the plain BERT"),
])
def test_one_stage_refused_where_it_means_nothing(setup, tmp_path, capsys, extra, says):
    with pytest.raises(SystemExit):
        train.parse_args(argv(setup, tmp_path / "run", *extra))
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
