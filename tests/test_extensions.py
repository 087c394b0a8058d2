"""extensions/: --target-speedup (a FLOPs budget and its Lagrange multipliers) and --teacher (distillation)."""

import json
import os
from dataclasses import replace

import pytest
import torch

import flops
import train
from cli import train_flags
from extensions.budget import Budget, calibrate, decided_speedup, relative_flops, shift_skim_logits, target_at
from extensions.hooks import Recorder
from extensions.schedule import Schedule
from extensions.distill import distillation_loss, layer_loss
from model import BertConfig, build
from tiny import make_batch, skimming_model, write_glue, write_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ext")
    return write_glue(str(root / "glue")), write_model(str(root / "model"))


def run(setup, out, task, *extra, steps=3):
    glue, model = setup
    train.main(["--task", task, "--data-dir", glue, "--model", model, "--device", "cpu", "--max-steps", str(steps),
                "--batch-size", "8", "--log-every", "1", "--out-dir", str(out), *extra])
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def cumulative_masks(B, T, L, lengths, g):
    m = (torch.arange(T)[None] < lengths[:, None]).float()
    masks = []
    for _ in range(L):
        m = m * (torch.rand(B, T, generator=g) < 0.7).float()
        m[:, 0] = 1
        masks.append(m.clone())
    return masks


def test_relative_flops_is_flops_count():
    """c is flops.py's count, predictors included: 1 / c is the no-padding speedup evaluation reports."""
    cfg = BertConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=4, skim=True)
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([12, 5, 9])
    masks = cumulative_masks(3, 12, 4, lengths, g)
    attention_mask = (torch.arange(12)[None] < lengths[:, None]).long()
    kept = torch.stack([m.sum(1) for m in masks], 1)
    no_padding, _ = flops.speedups(lengths.tolist(), kept.tolist(), cfg, 12)
    assert 1 / relative_flops(masks, attention_mask, cfg).item() == pytest.approx(no_padding, rel=1e-6)
    full = [attention_mask.float()] * 4   # nothing skimmed: the predictors' cost makes it > 1
    assert relative_flops(full, attention_mask, cfg).item() > 1


def test_relative_flops_carries_the_masks_gradient():
    cfg = BertConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2, skim=True)
    masks = [torch.ones(2, 6, requires_grad=True) for _ in range(2)]
    relative_flops(masks, torch.ones(2, 6), cfg).backward()
    assert all((m.grad > 0).all() for m in masks)   # every kept token costs


def test_target_follows_lambdas_schedule():
    """t: 1 while lambda would be 0, then a linear ramp to 1/S, then held."""
    schedule = Schedule(90, 1 / 3, 1 / 3)
    t = [target_at(schedule.at(s), 2.0) for s in (0, 29, 30, 45, 60, 89)]
    assert t == pytest.approx([1, 1, 1, 0.75, 0.5, 0.5])
    assert target_at(Schedule(90, 0, 0).at(0), 4.0) == 0.25   # the paper's schedule: the budget from the first step


def test_multipliers_ascend_on_the_gap():
    cfg = BertConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2, skim=True)
    b = Budget(2.0, cfg, rate=0.5)
    masks, am = [torch.ones(1, 4)] * 2, torch.ones(1, 4)
    c = relative_flops(masks, am, cfg).item()
    b.at(0.0)                                               # before the ramp: nothing asked, nothing moves
    assert b.penalty(masks, am).item() == 0 and (b.ascend(), b.l1, b.l2) == (None, 0.0, 0.0)
    b.at(1.0)                                               # the budget: t = 0.5, the model too slow
    b.penalty(masks, am)
    b.ascend()
    assert (b.l1, b.l2) == pytest.approx((0.5 * (c - 0.5), 0.5 * (c - 0.5) ** 2))
    assert b.penalty(masks, am).item() == pytest.approx(b.l1 * (c - 0.5) + b.l2 * (c - 0.5) ** 2)
    b.l1, fast = 1.0, [torch.zeros(1, 4)] * 2               # too fast: l1 falls (keeping tokens pays)
    b.penalty(fast, am)
    b.ascend()
    assert b.l1 < 1.0
    b2 = Budget(2.0, cfg)
    b2.load_state_dict(b.state_dict())
    assert (b2.l1, b2.l2) == (b.l1, b.l2)


def sample_examples(n=64, seed=0):
    """n examples as tasks.encode_split gives them, (input_ids, token_type_ids), of 6 to 30 tokens."""
    lengths = torch.randint(6, 31, (n,), generator=torch.Generator().manual_seed(seed)).tolist()
    ids, _ = make_batch(lengths, seed=seed)
    return [(row[:k].tolist(), [0] * k) for row, k in zip(ids, lengths)]


@pytest.mark.slow
def test_shift_skim_logits_moves_the_skim_bias_alone_and_skims_more():
    model, examples = skimming_model(num_labels=2), sample_examples()
    before = [p.fc2.bias.clone() for p in model.bert.predictors]
    shift_skim_logits(model, 0.5)
    for p, b in zip(model.bert.predictors, before):
        assert torch.allclose(p.fc2.bias, b + torch.tensor([0.5, 0.0]))
    shift_skim_logits(model, -0.5)
    speedups = []
    for delta in (-16.0, 8.0, 4.0, 2.0, 2.0, 4.0):   # -16, -8, -4, -2, 0, +4 in all
        shift_skim_logits(model, delta)
        speedups.append(decided_speedup(model, examples, torch.device("cpu")))
    assert speedups == sorted(speedups) and speedups[0] < 1.0 < 5.0 < speedups[-1]   # (all kept: the predictors cost)


def test_decided_speedup_is_what_evaluation_reports():
    from evaluate import predict, summarise
    model, examples = skimming_model(num_labels=2), sample_examples()
    result = summarise(predict(model, examples, [0] * len(examples), torch.device("cpu"), batch_size=16), model.config, 32)
    assert decided_speedup(model, examples, torch.device("cpu")) == pytest.approx(result["flops_speedup_no_padding"])


@pytest.mark.parametrize("asked", [1.5, 2.5])
def test_calibrate_meets_the_asked_speedup_on_its_sample(asked):
    model, examples = skimming_model(num_labels=2), sample_examples()
    did = calibrate(model, examples, asked, torch.device("cpu"))
    reached = decided_speedup(model, examples, torch.device("cpu"))
    assert reached == did["sample_speedup"] == pytest.approx(asked, rel=0.05)
    assert did["sample"] == len(examples) and did["sample_speedup_before"] != pytest.approx(asked, rel=0.05)
    shift_skim_logits(model, -did["shift"])   # the shift is all it changed
    assert decided_speedup(model, examples, torch.device("cpu")) == did["sample_speedup_before"]


def test_calibration_sample_is_shaped_like_the_evaluated_lengths():
    """shaped_like: training examples whose lengths follow the evaluated set's (short training phrases,
    long dev sentences: SST-2), each used once; Budget calibrates on it when given those lengths."""
    from extensions.budget import shaped_like
    examples = [([1] * n, [0] * n) for n in [4] * 300 + [20] * 30 + [30] * 30]   # mostly short
    picked = shaped_like(examples, [20, 30], 50)
    assert sorted({len(ids) for ids, _ in picked}) == [20, 30] and len(picked) == 50
    assert len({id(e) for e in picked}) == 50                                     # each example once
    assert [len(ids) for ids, _ in shaped_like(examples, [29], 40)] == [30] * 30 + [20] * 10   # then the next nearest
    assert {len(ids) for ids, _ in shaped_like(examples, [22], 20)} == {20}             # the nearest, shorter or longer
    model, sample = skimming_model(num_labels=2), sample_examples()
    lines, budget = [], Budget(2.0, model.config, eval_lengths=[30] * 10)
    budget.calibrate(model, sample, torch.device("cpu"), lines.append, size=16)
    assert budget.calibration["shaped_like"] == "evaluation lengths" and budget.calibration["sample"] == 16


def test_budget_calibrate_warns_when_training_fell_far_short():
    """Budget.calibrate logs the calibration, and a warning only when the model before it was under
    far_short of the speed asked (the shift then makes up much of it)."""
    model, examples = skimming_model(num_labels=2), sample_examples()
    S = decided_speedup(model, examples, torch.device("cpu"))
    for asked, warns in [(S / Budget.far_short * 1.02, True), (S / Budget.far_short * 0.98, False)]:
        lines, budget = [], Budget(asked, model.config)
        budget.calibrate(model, examples, torch.device("cpu"), lines.append)
        shift_skim_logits(model, -budget.calibration["shift"])
        assert lines[0].startswith("calibrated: ") and budget.calibration["sample_speedup_before"] == S
        assert [line.startswith("warning: training reached only") for line in lines[1:]] == [True] * warns


def test_recorder_keeps_the_training_forwards_outputs_in_order():
    """extensions/hooks.Recorder (what --distill-layers reads): the outputs of the training forward,
    in call order; an evaluation's forward is not recorded."""
    cfg = BertConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                     vocab_size=50, skim=True, num_labels=2)
    model = build(cfg)
    rec = Recorder(model.bert.predictors)
    for i, pred in enumerate(model.bert.predictors):   # layer i's logits: (i, 0) everywhere
        torch.nn.init.zeros_(pred.fc2.weight)
        pred.fc2.bias.data = torch.tensor([float(i), 0.0])
    am = torch.ones(2, 6, dtype=torch.long)
    model.eval()
    with torch.no_grad():
        model(torch.ones_like(am), am, torch.zeros_like(am))
    assert rec.outputs == []
    model.train()
    model(torch.ones_like(am), am, torch.zeros_like(am), labels=torch.zeros(2, dtype=torch.long))
    assert [z[0, 0].tolist() for z in rec.take()] == [[0.0, 0.0], [1.0, 0.0]] and rec.outputs == []


@pytest.mark.slow
def test_target_speedup_moves_toward_the_budget(setup, tmp_path):
    """A tiny model on tiny data: asked for 3x from the first step, it skims toward it; lambda 0 does not.
    The run reports the speedup reached beside the one asked for."""
    paper = ("--skim-delay", "0", "--skim-warmup", "0", "--predictor-lr", "1e-2", "--mu0", "1")
    asked = run(setup, tmp_path / "a", "sst2", "--target-speedup", "3", *paper, steps=12)
    none = run(setup, tmp_path / "b", "sst2", "--skim-coefficient", "0", *paper, steps=12)
    assert none["flops_speedup_no_padding"] < 1.2 < 1.5 < asked["flops_speedup_no_padding"]
    assert asked["budget"]["asked"] == 3.0 and asked["budget"]["l1"] > 0
    assert asked["args"]["target_speedup"] == 3.0
    # then calibrated on the training set (40 examples) and evaluated again: the history keeps both
    calibration = asked["budget"]["calibration"]
    assert calibration["sample"] == 40 and calibration["sample_speedup"] == pytest.approx(3.0, rel=0.1)
    before, after = asked["history"][-2:]
    assert before["step"] == after["step"] == 12 and before["budget"]["calibration"] is None
    assert after["flops_speedup_no_padding"] == asked["flops_speedup_no_padding"]
    assert "calibration" not in none and "budget" not in none


def test_distillation_loss_forms():
    s, t = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    assert distillation_loss(s, t, regression=False).item() == pytest.approx(0, abs=1e-7)
    t2 = torch.tensor([[0.0, 2.0], [0.0, 1.0]])
    p, q = torch.softmax(t2, -1), torch.softmax(s, -1)
    kl = (p * (p.log() - q.log())).sum(-1).mean()
    assert distillation_loss(s, t2, regression=False).item() == pytest.approx(kl.item(), rel=1e-5)
    assert distillation_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]]), True).item() == pytest.approx(2.5)
    span_s, span_t = torch.randn(2, 5, 2), torch.randn(2, 5, 2)   # span QA: over the window's tokens
    ps, pt = torch.log_softmax(span_s, 1), torch.log_softmax(span_t, 1)
    want = (pt.exp() * (pt - ps)).sum(1).mean()
    assert distillation_loss(span_s, span_t, False).item() == pytest.approx(want.item(), rel=1e-5)


def test_layer_loss():
    """Per layer, the squared error per hidden unit averaged over the tokens kept entering it; then the layers' mean."""
    s = [torch.zeros(1, 3, 2), torch.zeros(1, 3, 2)]
    t = [torch.tensor([[[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]]]), torch.tensor([[[3.0, 1.0], [0.0, 0.0], [0.0, 0.0]]])]
    masks = [torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])]
    assert layer_loss(s, t, masks).item() == pytest.approx(((1 + 4) / 2 + 5) / 2)   # the skimmed 9s do not count
    s[0].requires_grad_(True)
    layer_loss(s, t, masks).backward()
    assert s[0].grad[0, 2].abs().sum() == 0 and s[0].grad[0, 0].abs().sum() > 0


@pytest.mark.slow
def test_teacher_distils_and_is_checked(setup, tmp_path, capsys):
    """--teacher: a --baseline checkpoint of the same task teaches; the loss logged includes its term.
    Anything else is refused before training, in one line."""
    run(setup, tmp_path / "base", "sst2", "--baseline")
    teacher = str(tmp_path / "base" / "checkpoint")
    capsys.readouterr()
    res = run(setup, tmp_path / "student", "sst2", "--teacher", teacher)
    first = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("step 1/"))
    loss, task = (float(first.split(f"{k} ")[1].split()[0]) for k in ("| loss", "| task"))
    assert loss > task   # lambda is 0 at step 1: the difference is the teacher's term
    assert res["args"]["teacher"] == teacher
    res = run(setup, tmp_path / "layers", "sst2", "--teacher", teacher, "--distill-layers")
    first = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("step 1/"))
    assert float(first.split("| loss ")[1].split()[0]) > loss   # the same first step, and the layer loss
    assert res["args"]["distill_layers"]
    student = train.load_model(str(tmp_path / "layers" / "checkpoint")).config
    with pytest.raises(SystemExit, match="--distill-layers: --teacher .* has 2 layers of 32 and the student 3 of 32"):
        train_flags.check_teacher("sst2", teacher, replace(student, num_hidden_layers=3), ["0", "1"], layers=True)
    with pytest.raises(SystemExit, match=r"names its classes \['0', '1'\], the data \['neg', 'pos'\]"):
        train_flags.check_teacher("sst2", teacher, student, ["neg", "pos"])   # (own data whose labels differ)
    other = tmp_path / "other-vocab"   # the same sizes, another vocabulary: the same ids mean other tokens
    other.mkdir()
    tok = json.load(open(os.path.join(teacher, "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    a, b = sorted(vocab)[-2:]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    json.dump(tok, open(other / "tokenizer.json", "w"))
    with pytest.raises(SystemExit, match="has another vocabulary than --model"):
        train_flags.check_teacher("sst2", teacher, student, ["0", "1"], tok_dir=str(other))
    with pytest.raises(SystemExit):
        run(setup, tmp_path / "bad-layers", "sst2", "--distill-layers")
    assert "--distill-layers distils a teacher's layers: pass --teacher too" in capsys.readouterr().err
    run(setup, tmp_path / "skim", "sst2")
    for task, folder, says in [("sst2", str(tmp_path / "skim" / "checkpoint"), "not a checkpoint of a --baseline run"),
                               ("rte", teacher, "fine-tuned on sst2, not rte")]:
        with pytest.raises(SystemExit, match=says):
            run(setup, tmp_path / f"bad-{task}", task, "--teacher", folder)
        assert not os.path.exists(tmp_path / f"bad-{task}" / "checkpoint")   # refused before training
    with pytest.raises(SystemExit):
        run(setup, tmp_path / "bad-nowhere", "sst2", "--teacher", str(tmp_path / "nowhere"))
    assert "--teacher" in capsys.readouterr().err


def test_budget_flags_refused(capsys):
    for argv, says in [(["--target-speedup", "2", "--skim-coefficient", "0.3"], "replaces lambda"),
                       (["--target-speedup", "1"], "must be > 1"),
                       (["--target-speedup", "2", "--baseline"], "--target-speedup sets skimming"),
                       (["--eval-only", "--checkpoint", "x", "--teacher", "y"], "--teacher sets how to train")]:
        with pytest.raises(SystemExit):
            train.parse_args(["--task", "sst2", "--device", "cpu", *argv])
        assert says in capsys.readouterr().err


@pytest.mark.slow
def test_calibrate_tool_takes_a_run_to_another_speed_and_only_reads_it(setup, tmp_path):
    """tools/calibrate.py: a lambda run, calibrated to 2x on its training set, evaluated; the record is the
    run's with the calibrated evaluation on top and appended; the run's folder is left as it was."""
    from cli.errors import BadInput
    from tools import calibrate as tool
    paper = ("--skim-delay", "0", "--skim-warmup", "0", "--predictor-lr", "1e-2", "--mu0", "1")
    lam = run(setup, tmp_path / "lam", "sst2", *paper, steps=6)
    files = lambda d: {os.path.join(r, f): open(os.path.join(r, f), "rb").read() for r, _, fs in os.walk(d) for f in fs}
    before = files(tmp_path / "lam")
    argv = ["--run", str(tmp_path / "lam"), "--device", "cpu", "--out-dir"]
    rec = tool.main(argv + [str(tmp_path / "c"), "--target-speedup", "2"])
    assert files(tmp_path / "lam") == before
    assert rec["budget"]["asked"] == 2 and rec["budget"]["calibration"]["sample_speedup"] == pytest.approx(2, rel=0.15)
    assert rec["history"][:-1] == lam["history"] and rec["history"][-1]["metrics"] == rec["metrics"]
    assert rec["args"] == lam["args"] and "command" in rec["calibrated_by"]
    with open(tmp_path / "c" / "results.json") as f:
        assert json.load(f)["flops_speedup_no_padding"] == rec["flops_speedup_no_padding"]
    again = train.main(["--task", "sst2", "--data-dir", setup[0], "--eval-only", "--checkpoint", str(tmp_path / "c" / "checkpoint"),
                        "--device", "cpu", "--out-dir", str(tmp_path / "e")])
    assert again["flops_speedup_no_padding"] == pytest.approx(rec["flops_speedup_no_padding"])   # the shift is saved
    with pytest.raises(BadInput, match="was trained with lambda, not to a speed: pass --target-speedup S"):
        tool.main(argv + [str(tmp_path / "d")])
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("extra,says", [
    (["--target-speedup", "nan"], "'nan' is not a finite number"), (["--target-speedup", "inf"], "not a finite number"),
    (["--target-speedup", "0"], "must be > 1, got 0"), (["--target-speedup", "1"], "must be > 1"),
    (["--target-speedup", "1000"], "must be <= 50"), (["--threads", "-1"], "must be >= 1"),
    (["--device", "tpu"], "--device"), (["--out-dir-exists"], "exists: name a new folder")])
def test_calibrate_tool_refuses_bad_flags_in_one_line(tmp_path, capsys, extra, says):
    from tools import calibrate as tool
    out = tmp_path / "new"
    if extra == ["--out-dir-exists"]:
        out.mkdir()
        extra = []
    with pytest.raises(SystemExit):
        tool.main(["--run", str(tmp_path), "--out-dir", str(out), *extra])
    assert says in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.slow
def test_calibrate_tool_refuses_a_broken_record_and_a_folder_being_written(setup, tmp_path):
    import subprocess
    import sys
    from cli.errors import BadInput
    from storage.files import CLAIM, CLAIM_TEXT, claim
    from tools import calibrate as tool
    lam = tmp_path / "lam"
    run(setup, lam, "sst2", "--skim-delay", "0", "--skim-warmup", "0", steps=2)
    whole = (lam / "results.json").read_text()
    for broken in (whole[:len(whole) // 2], json.dumps({"task": "sst2"})):
        (lam / "results.json").write_text(broken)
        with pytest.raises(BadInput, match="is not a whole results.json of train.py"):
            tool.main(["--run", str(lam), "--out-dir", str(tmp_path / "c"), "--target-speedup", "2", "--device", "cpu"])
    (lam / "results.json").write_text(whole)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:   # another calibration has claimed the new folder (storage.files.claim): refused, nothing written there
        (tmp_path / "c").mkdir()
        (tmp_path / "c" / CLAIM).write_text(f"{CLAIM_TEXT}{other.pid}")
        with pytest.raises(SystemExit):
            tool.main(["--run", str(lam), "--out-dir", str(tmp_path / "c"), "--target-speedup", "2", "--device", "cpu"])
        assert os.listdir(tmp_path / "c") == [CLAIM]
        with pytest.raises(BadInput, match="is being written by another run"):   # (and the claim itself refuses)
            claim(str(tmp_path / "c"))
    finally:
        other.kill()
        other.wait()
    run(setup, tmp_path / "base", "sst2", "--baseline", steps=2)
    with pytest.raises(BadInput, match="--baseline run"):
        tool.main(["--run", str(tmp_path / "base"), "--out-dir", str(tmp_path / "d"), "--target-speedup", "2"])


def test_hard_stage_trains_the_layers_on_inference_decisions():
    """--hard-stage F: before its step the decisions are sampled and the predictors learn; from it on the
    training forward makes inference's decisions (the keep masks equal eval mode's), the predictors stay
    as they were and the layers still learn; its step count is what --resume saves."""
    from extensions.hard_stage import HardStage
    model = skimming_model(num_labels=2)
    ids, mask = make_batch([12, 9, 5, 12])
    b = dict(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids), labels=torch.tensor([0, 1, 1, 0]))
    opt, sched = train.optimizer_for(model, 4, lr=1e-3, predictor_lr=1e-2, weight_decay=0.0, warmup=0.0, predictor_lr_decay=False)
    hard = HardStage(model, total=4, fraction=0.5)                        # steps 2 and 3 are hard
    preds = lambda: [p.detach().clone() for p in model.bert.predictors.parameters()]
    layers = lambda: [p.detach().clone() for p in model.bert.layers.parameters()]
    for step in range(4):
        before_p, before_l = preds(), layers()
        model.train()
        out, _ = train.train_step(model, b, opt, sched, 0.5, [hard], 1.0, step)
        moved = lambda now, then: any(not torch.equal(a, c) for a, c in zip(now, then))
        assert moved(preds(), before_p) == (step < 2) and moved(layers(), before_l)
        if step >= 2:                                                     # inference's decisions, in training
            with torch.no_grad():
                model.eval()
                masks = model(ids, mask, prune=False).keep_masks
            assert all(torch.equal(a.detach(), m) for a, m in zip(out.keep_masks, masks))
    again = HardStage(skimming_model(num_labels=2), total=4, fraction=0.5)
    again.load_state_dict(hard.state_dict())
    assert not again.encoder.sample_decisions and not any(p.requires_grad for p in again.encoder.predictors.parameters())
    assert hard.record() == dict(hard_stage_start=2)


def test_hard_stage_flag_is_wired_and_refused_without_skimming(setup, tmp_path, capsys):
    res = run(setup, tmp_path / "h", "sst2", "--hard-stage", "0.5", steps=4)
    assert res["hard_stage_start"] == 2 and res["args"]["hard_stage"] == 0.5
    glue, model = setup
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "sst2", "--data-dir", glue, "--model", model, "--baseline", "--hard-stage", "0.5"])
    assert "--hard-stage sets skimming, but --baseline" in capsys.readouterr().err
