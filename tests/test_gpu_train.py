"""tools/gpu_train.py: the many-runs-on-one-GPU script, checked on the CPU (its --cpu mode) before any GPU
minute is spent on it."""

import json
import os
import time

import pytest
from safetensors.torch import load_file

from cli.errors import BadInput
from tiny import write_glue, write_model
from tools import gpu_train


@pytest.mark.slow
def test_prepare_and_run_on_the_cpu(tmp_path, capsys):
    glue, model = write_glue(str(tmp_path / "glue")), write_model(str(tmp_path / "model"))
    carry, out = str(tmp_path / "carry"), str(tmp_path / "out")
    gpu_train.main(["prepare", "--model", model, "--data-dir", glue, "--tasks", "sst2", "--out", carry])
    weights = load_file(os.path.join(carry, "model", "model.safetensors"))
    assert {str(w.dtype) for w in weights.values()} == {"torch.float16"}
    assert sorted(os.listdir(os.path.join(carry, "glue", "SST-2"))) == ["dev.tsv", "train.tsv"]
    with pytest.raises(BadInput, match=f"--out {carry} already exists"):   # made whole, never over a folder
        gpu_train.main(["prepare", "--model", model, "--data-dir", glue, "--out", carry])
    with pytest.raises(BadInput, match="has no MRPC/train.tsv"):
        gpu_train.main(["prepare", "--model", model, "--data-dir", str(tmp_path), "--tasks", "mrpc", "--out", carry + "2"])
    assert not os.path.exists(carry + "2")
    gpu_train.main(["run", "--carry", carry, "--out", out, "--cpu"])
    plan = json.load(open(os.path.join(out, "plan.json")))
    names = ["sst2-baseline-seed42", "sst2-target2-seed42", "sst2-target2-teacher-seed42"]
    assert sorted(plan) == names and all(plan[n]["exit"] == 0 for n in names)
    student = json.load(open(os.path.join(out, "sst2-target2-teacher-seed42.json")))
    assert student["args"]["target_speedup"] == 2.0 and student["args"]["teacher"].endswith("sst2-baseline-seed42/checkpoint")
    assert json.load(open(os.path.join(out, "sst2-baseline-seed42.json")))["args"]["baseline"]
    assert not os.path.exists(os.path.join(out, "runs"))               # checkpoints are not brought back


@pytest.mark.slow
def test_a_deadline_stops_and_lists(tmp_path):
    glue, model = write_glue(str(tmp_path / "glue")), write_model(str(tmp_path / "model"))
    carry, out = str(tmp_path / "carry"), str(tmp_path / "out")
    gpu_train.main(["prepare", "--model", model, "--data-dir", glue, "--tasks", "sst2", "--out", carry])
    gpu_train.main(["run", "--carry", carry, "--out", out, "--cpu", "--deadline", "0.5", "--parallel", "1"])
    plan = json.load(open(os.path.join(out, "plan.json")))
    assert plan["sst2-baseline-seed42"]["exit"] == "stopped at the deadline"
    assert plan["sst2-target2-seed42"]["exit"] == "not started"
    assert [f for f in os.listdir(out) if f.endswith(".json")] == ["plan.json"]   # a stopped run writes nothing
    time.sleep(10)                                                     # ... then or later: it was killed
    assert not os.path.exists(os.path.join(out, "runs"))


@pytest.mark.slow
def test_the_peers_plan_on_the_cpu(tmp_path):
    """--plan peers: Transkimmer's two stages (its baseline brought back too), top-k on that baseline
    without retraining, the first layers with and without its teacher, truncation, top-k fine-tuned."""
    glue, model = write_glue(str(tmp_path / "glue")), write_model(str(tmp_path / "model"))
    carry, out = str(tmp_path / "carry"), str(tmp_path / "out")
    gpu_train.main(["prepare", "--model", model, "--data-dir", glue, "--tasks", "sst2", "--out", carry])
    gpu_train.main(["run", "--carry", carry, "--out", out, "--cpu", "--plan", "peers"])
    plan = json.load(open(os.path.join(out, "plan.json")))
    assert sorted(plan) == sorted(["sst2-target2-seed42", "sst2-layers1-teacher-seed42", "sst2-layers1-seed42",
                                   "sst2-truncate2-seed42", "sst2-topk2-seed42", "sst2-topk2-noretrain-seed42"])
    assert all(p["exit"] == 0 for p in plan.values()), plan
    read = lambda name: json.load(open(os.path.join(out, f"{name}.json")))
    assert read("sst2-baseline-seed42")["args"]["baseline"] and read("sst2-target2-seed42")["args"]["target_speedup"] == 2
    assert read("sst2-topk2-noretrain-seed42")["peer"]["method"] == "attention-topk"
    assert read("sst2-layers1-teacher-seed42")["args"]["teacher"].endswith("sst2-target2-seed42/baseline/checkpoint")
