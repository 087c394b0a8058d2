"""bench.py runs end to end on a tiny model, and sets the predictors to the skim it is asked for."""

import json
import os

import pytest
import torch

from tools import bench
import data
from tasks import glue as glue_files
from cli import errors
from tasks import download
import train
from tiny import write_glue, write_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    return write_glue(str(root / "glue"), n_dev=40), write_model(str(root / "model"))


@pytest.mark.slow
def test_bench_skim_fraction(setup):
    glue, model = setup
    rows = bench.main(["--model", model, "--data-dir", glue, "--batch-sizes", "1,8", "--num-examples", "40",
                       "--repeats", "1", "--warmup", "0", "--no-reference", "--device", "cpu",
                       "--skim-fraction", "0.5", "--skim-layer", "1"])      # with the training-step timing
    assert [r["batch"] for r in rows] == [1, 8]
    r = rows[1]
    # half the non-[CLS] tokens skimmed before layer 1 of 2: kept = (1 + (1 + 0.5 (n - 1)) / n) / 2 per sentence
    assert 0.6 < r["kept"] < 0.9, r
    assert r["flops"] > 1.0 and r["measured"] > 0 and r["realised"] == pytest.approx(r["measured"] / r["flops"])


@pytest.mark.slow
def test_bench_checkpoint(setup, tmp_path, capsys):
    glue, model = setup
    out = str(tmp_path / "run")
    train.main(["--task", "sst2", "--data-dir", glue, "--model", model, "--device", "cpu", "--max-steps", "1",
                "--batch-size", "8", "--out-dir", out])
    rows = bench.main(["--checkpoint", os.path.join(out, "checkpoint"), "--data-dir", glue, "--batch-sizes", "4",
                       "--num-examples", "16", "--repeats", "1", "--warmup", "0", "--no-train", "--device", "cpu"])
    assert rows[0]["kept"] == pytest.approx(1.0)           # a fresh Transkimmer keeps everything (Eqs. 8-9)
    printed = capsys.readouterr().out
    assert "no reference comparison on a train.py checkpoint" in printed or "transformers not installed" in printed
    js = tmp_path / "b.json"
    bench.main(["--checkpoint", os.path.join(out, "checkpoint"), "--data-dir", glue, "--batch-sizes", "4",
                "--num-examples", "16", "--repeats", "1", "--warmup", "0", "--no-train", "--no-reference",
                "--device", "cpu", "--json", str(js)])
    saved = json.load(open(js))
    assert [r["batch"] for r in saved["rows"]] == [4] and saved["task"] == "sst2" and saved["max_length"] == 64
    # a save killed between its two renames (storage.files.atomic_folder): the previous checkpoint is put back
    os.makedirs(os.path.join(out, ".old-checkpoint-x"))
    os.replace(os.path.join(out, "checkpoint"), os.path.join(out, ".old-checkpoint-x", "previous"))
    assert bench.main(["--checkpoint", os.path.join(out, "checkpoint"), "--data-dir", glue, "--batch-sizes", "4",
                       "--num-examples", "16", "--repeats", "1", "--warmup", "0", "--no-train", "--no-reference",
                       "--device", "cpu"])[0]["kept"] == pytest.approx(1.0)
    base = str(tmp_path / "base")
    train.main(["--task", "sst2", "--data-dir", glue, "--model", model, "--device", "cpu", "--max-steps", "1",
                "--batch-size", "8", "--out-dir", base, "--baseline"])
    with pytest.raises(errors.BadInput, match="is a plain BERT"):
        bench.main(["--checkpoint", os.path.join(base, "checkpoint"), "--data-dir", glue])


def test_cuda_graphs_time_inference_only(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--model", "m", "--cuda-graphs", "--device", "cuda", "--no-train"])
    assert "--cuda-graphs times inference with bf16 weights: add --no-reference --no-train" in capsys.readouterr().err


def test_bench_needs_one_model():
    with pytest.raises(SystemExit):
        bench.parse_args([])


@pytest.mark.parametrize("extra,says", [
    (["--skim-fraction", "1.5"], "argument --skim-fraction: must be < 1"),
    (["--skim-layer", "9"], "--skim-layer 9: the model has 2 layers, pass 0 to 1"),
    (["--batch-sizes", "0"], "argument --batch-sizes: must be >= 1"),
    (["--batch-sizes", "1,x"], "argument --batch-sizes: 'x' is not a whole number"),
    (["--repeats", "0"], "argument --repeats: must be >= 1"),
    (["--num-examples", "0"], "argument --num-examples: must be >= 1"),
    (["--split", "--batch-sizes", "4"], "--split times batch 1: include 1 in --batch-sizes"),
    (["--cuda-graphs", "--device", "cpu"], "--cuda-graphs needs --device cuda"),
    (["--device", "gpu"], "--device 'gpu' is not a device: use cpu, cuda or cuda:N"),
    pytest.param(["--device", "cuda"], "--device cuda: this machine has no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
    (["--json", "."], "--json . is a folder: pass a file name"),        # refused before the work, not at its end
    (["--profile", "."], "--profile . is a folder: pass a file name"),
])
@pytest.mark.slow
def test_bad_arguments_one_line(tmp_path, extra, says):
    import subprocess
    import sys
    from tiny import write_model
    model = write_model(str(tmp_path / "m"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "tools", "bench.py"), "--model", model, "--no-reference",
                        "--no-train", *extra], capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert says in r.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_bench_json_feeds_the_speed_table(setup, tmp_path):
    """bench.py --json records what the README's speed table shows; report.py --bench renders it."""
    from tools import tables
    glue, model = setup
    folder = tmp_path / "bench"
    path = str(folder / "half.json")                  # (the folder is made)
    rows = bench.main(["--model", model, "--data-dir", glue, "--batch-sizes", "2", "--num-examples", "8",
                       "--repeats", "1", "--warmup", "0", "--no-reference", "--no-train", "--device", "cpu",
                       "--skim-fraction", "0.5", "--json", path])
    saved = json.load(open(path))
    assert saved["rows"] == rows and saved["skim_fraction"] == 0.5 and saved["device_name"]
    assert saved["command"].startswith("python tools/bench.py ") and saved["cpu_capability"] and "commit" in saved
    r = rows[0]
    assert r["pruned_tokens_per_s"] / r["dense_tokens_per_s"] == pytest.approx(r["measured"])
    table = tables.speed_table(str(folder)).splitlines()
    assert len(table) == 7 and table[2].startswith("| half | 50% of tokens before layer 0")
    assert table[4].startswith("half, batch 2, the classification path (fast/classify.py) timed beside: ")
    assert table[6].startswith("half, batch 2, packed tokens (fast/packed.py): the pruned model ")
    assert f"| {r['measured']:.2f}x |" in table[2] and table[2].endswith("| - |")   # no CUDA graphs timed
    saved["rows"][0].update(graphed_measured=1.234, graph_bucket=16)                 # as --cuda-graphs records
    json.dump(saved, open(path, "w"))
    assert tables.speed_table(str(folder)).splitlines()[2].endswith("| 1.23x (bucket 16) |")


def test_bench_bf16_end_to_end(setup, capsys):
    """--bf16: both models cast whole, timed without autocast (inference only)."""
    glue, model = setup
    rows = bench.main(["--model", model, "--data-dir", glue, "--batch-sizes", "4", "--num-examples", "8", "--repeats", "1",
                       "--warmup", "0", "--no-reference", "--no-train", "--device", "cpu", "--bf16"])
    assert rows[0]["measured"] > 0 and rows[0]["packed_measured"] > 0
    with pytest.raises(SystemExit):
        bench.main(["--model", model, "--data-dir", glue, "--device", "cpu", "--bf16"])
    assert "--bf16 times inference" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_profile_writes_top_lines(setup, tmp_path):
    glue, model = setup
    path = tmp_path / "profile.txt"
    bench.main(["--model", model, "--data-dir", glue, "--batch-sizes", "1,2", "--num-examples", "8", "--repeats", "1",
                "--warmup", "0", "--no-reference", "--no-train", "--device", "cpu", "--profile", str(path)])
    text = path.read_text()
    assert text.startswith("python tools/bench.py --model")
    sections = [line for line in text.splitlines() if line.startswith("== ")]
    assert sections == [f"== batch {b}: {name}" for b in ("1, 1 batches", "2, 4 batches")
                        for name in ("dense", "pruned", "pruned, classification path", "dense, packed", "pruned, packed")]
    assert text.count("aten::addmm") >= 4 and "Self CPU time total" in text


def test_bench_without_data_dir_fetches_as_train_does(tmp_path, monkeypatch):
    """No --data-dir: the task comes from --cache-dir (downloaded once), as in train.py; offline
    that is one clear line, wherever the command is run from."""
    from tiny import write_model
    monkeypatch.setattr(download, "GLUE_URL", "http://127.0.0.1:9")   # nothing listens on the discard port
    with pytest.raises(errors.FetchFailed, match="Offline\\? Pass --data-dir"):
        bench.main(["--model", write_model(str(tmp_path / "m")), "--cache-dir", str(tmp_path / "cache"),
                    "--no-reference", "--no-train"])


@pytest.mark.slow
def test_bench_on_long_documents(setup):
    """--task 20news: the texts of a long-document task's test split (documents.py)."""
    glue, model = setup
    rows = bench.main(["--model", model, "--task", "20news", "--data-dir", glue, "--batch-sizes", "4", "--num-examples", "8",
                       "--max-length", "128", "--repeats", "1", "--warmup", "0", "--no-reference", "--no-train",
                       "--device", "cpu"])
    assert rows[0]["batch"] == 4 and rows[0]["flops"] > 1.0


@pytest.mark.slow
def test_split_replays_what_pruning_computes(setup):
    """--split's "layers alone on the kept tokens" must compute what the pruned encoder computes for
    the tokens it keeps to the end (else its timing would not bound the pruned path's)."""
    import torch
    import transkimmer
    from load_weights import load_pretrained
    from model import encoder
    glue, model_dir = setup
    skim = load_pretrained(model_dir, skim=True, num_labels=2).eval()
    texts = glue_files.read_task("sst2", "dev", glue)[0]
    batches = bench.make_batches(data.encode(data.load_tokenizer(model_dir), texts, 64), 1, 12, torch.device("cpu"))
    bench.set_skim(skim, batches, 0.5, 1)
    enc, cut_somewhere = encoder(skim), 0
    with torch.no_grad():
        for b in batches:
            h = enc.embed(b["input_ids"], b["token_type_ids"])
            cuts = bench.replay_cuts(enc, b)
            out = transkimmer.pruned_encode(h, b["attention_mask"], enc.stack, enc.predictors)
            to_the_end = out.keep_masks[-1][0].bool()
            cut_somewhere += any(c is not None for c in cuts)
            x = bench.layers_on_kept(h, cuts, enc.stack)
            assert x.shape[1] == int(to_the_end.sum())
            torch.testing.assert_close(x[0], out.last_hidden_state[0, to_the_end], rtol=1e-5, atol=1e-5)
    assert cut_somewhere > 3


def test_split_rows(setup, tmp_path):
    glue, model = setup
    rows = bench.main(["--model", model, "--data-dir", glue, "--batch-sizes", "1,4", "--num-examples", "16",
                       "--repeats", "1", "--warmup", "0", "--no-reference", "--no-train", "--device", "cpu",
                       "--split", "--json", str(tmp_path / "b.json")])
    split = rows[0]["split"]
    assert set(split) == {"dense", "kept_tokens_only", "with_predictors", "pruned", "classify"} and split["dense"] == 1.0
    assert rows[0]["classify_measured"] > 0 and rows[1]["classify_realised"] > 0   # fast/classify.py, timed beside
    assert rows[1]["packed_measured"] > 0 and rows[1]["dense_packed_speedup"] > 0   # fast/packed.py, both models
    assert all(v > 0 for v in split.values()) and "split" not in rows[1]
    assert json.load(open(tmp_path / "b.json"))["rows"][0]["split"] == split


@pytest.mark.slow
def test_bench_keeps_the_files_it_would_overwrite(setup, tmp_path, capsys):
    """--json and --profile are measurements: a file already there is refused before any work,
    untouched, unless --overwrite says to replace it."""
    glue, model = setup
    js, prof = tmp_path / "b.json", tmp_path / "p.txt"
    js.write_text("earlier"), prof.write_text("earlier")
    run = ["--model", model, "--data-dir", glue, "--batch-sizes", "2", "--num-examples", "4", "--repeats", "1",
           "--warmup", "0", "--no-reference", "--no-train", "--device", "cpu"]
    for flag, path in [("--json", js), ("--profile", prof)]:
        with pytest.raises(SystemExit):
            bench.main(run + [flag, str(path)])
        assert f"{flag} {path} already exists: pass another file, or --overwrite to replace it" in capsys.readouterr().err
        assert path.read_text() == "earlier"
    bench.main(run + ["--json", str(js), "--profile", str(prof), "--overwrite"])
    assert json.load(open(js))["rows"][0]["batch"] == 2 and prof.read_text().startswith("python tools/bench.py")


def test_bench_times_a_checkpoint_on_its_own_task(setup, tmp_path, capsys):
    """Without --task a checkpoint is timed on its own task's sentences (not SST-2's); another --task,
    whose sentences would get other decisions, is one line before any work."""
    glue, model = setup
    out = str(tmp_path / "mrpc")
    train.main(["--task", "mrpc", "--data-dir", glue, "--model", model, "--device", "cpu", "--max-steps", "1",
                "--batch-size", "8", "--out-dir", out])
    ckpt = os.path.join(out, "checkpoint")
    with pytest.raises(SystemExit):
        bench.parse_args(["--checkpoint", ckpt, "--task", "sst2"])
    assert f"--task sst2: {ckpt} was fine-tuned on mrpc: pass --task mrpc, or leave it out" in capsys.readouterr().err
    js = tmp_path / "b.json"
    bench.main(["--checkpoint", ckpt, "--data-dir", glue, "--batch-sizes", "4", "--num-examples", "8", "--repeats", "1",
                "--warmup", "0", "--no-train", "--no-reference", "--device", "cpu", "--json", str(js)])
    saved = json.load(open(js))
    assert saved["task"] == "mrpc" and saved["max_length"] == 128
    assert "mrpc dev sentences" in capsys.readouterr().out


@pytest.mark.parametrize("extra,says", [(["--num-examples", "4"], None),
                                        (["--max-length", "2000"], "--max-length 2000 exceeds the 512 positions")])
def test_few_examples_or_too_long_a_window(setup, extra, says, capsys):
    glue, model = setup
    argv = ["--model", model, "--data-dir", glue, "--batch-sizes", "1,32", "--repeats", "1", "--warmup", "0",
            "--no-reference", "--no-train", "--device", "cpu", *extra]
    if says is None:
        assert [r["batch"] for r in bench.main(argv)] == [1, 32]     # batch 1 takes one sentence, not none
    else:
        with pytest.raises(errors.BadInput, match=says):
            bench.main(argv)
