"""peers/: each peer's FLOPs tied to flops.py (and so to torch's flop counter), the pruning by attention
held against a dense computation, the full model's scale in results.json, and each peer from train.py."""

import json
import math
import os

import pytest
import torch

import flops
import peers
import train
from model import build, encoder
from peers import attention_topk, depth, truncate
from test_flops import measured
from test_bad_input import args_for, setup   # noqa: F401 (setup: the tiny GLUE folder and model, a fixture)
from tiny import make_batch, tiny_config


def model_of(seed=0, **kw):
    torch.manual_seed(seed)
    return build(tiny_config(num_labels=2, max_position_embeddings=128, **kw)).eval()


def test_depth_first_layers_is_the_full_model_cut_and_costs_what_flops_counts():
    model, cut = model_of(), depth.first_layers(model_of(), 2)
    ids, mask = make_batch([37])
    enc = encoder(model)
    with torch.no_grad():
        h = enc.embed(ids, torch.zeros_like(ids))
        for layer in enc.stack[:2]:
            h = layer(h, mask)
        got, out = measured(cut, ids, mask)
    assert torch.allclose(encoder(cut)(ids, mask).last_hidden_state, h, atol=1e-6)
    assert cut.config.num_hidden_layers == 2 and len(encoder(cut).layers) == 2
    assert abs(flops.bert_flops(37, cut.config) / got - 1) < 0.01


def test_depth_refuses_more_layers_than_the_model_has():
    with pytest.raises(SystemExit, match="--layers 4: the model has 3 layers"):
        depth.first_layers(model_of(), 4)


def test_truncate_length_for_speedup_is_the_closest_and_costs_what_flops_counts():
    cfg, lengths = tiny_config(), [5, 9, 17, 30, 44, 61]
    full = truncate.truncated_flops(lengths, 64, cfg)
    L = truncate.length_for_speedup(lengths, 2.0, cfg, shortest=4)
    gaps = {n: abs(full / truncate.truncated_flops(lengths, n, cfg) - 2.0) for n in range(4, 62)}
    assert gaps[L] == min(gaps.values()) and abs(full / truncate.truncated_flops(lengths, L, cfg) - 2) < 0.1
    model = model_of()
    total = sum(measured(model, *make_batch([min(n, L)]))[0] for n in lengths)
    assert abs(truncate.truncated_flops(lengths, L, cfg) / total - 1) < 0.01


@pytest.mark.parametrize("n,r", [(40, 0.7), (23, 0.5), (64, 0.3)])
def test_topk_keeps_its_counts_and_costs_what_flops_counts(n, r):
    model = attention_topk.prune_by_attention(model_of(), r)
    got, out = measured(model, *make_batch([n]))
    kept = [int(m.sum()) for m in out.keep_masks]
    counts = attention_topk.keep_counts(n, attention_topk.keep_ratios(r, 3))
    assert kept == counts and counts[-1] < n
    assert abs(flops.transkimmer_flops(n, counts, model.config) / got - 1) < 0.01


def test_topk_keeps_the_tokens_that_received_the_most_attention():
    model, ids, mask = model_of(), *make_batch([30])
    enc = encoder(model)
    with torch.no_grad():
        h = enc.embed(ids, torch.zeros_like(ids))
        x, received = attention_topk.attend(enc.stack[0], h, mask.bool())
        assert torch.allclose(x, enc.stack[0](h, mask), atol=1e-5)   # the same layer, attention written out
        p = torch.softmax(enc.stack[0].attn.q(h).view(1, 30, 4, 8).transpose(1, 2) @ enc.stack[0].attn.k(h).view(
            1, 30, 4, 8).transpose(1, 2).transpose(-2, -1) / 8 ** 0.5, -1)
        assert torch.allclose(received, p.mean((1, 2)), atol=1e-6)   # the mean over heads and rows
        attention_topk.prune_by_attention(model, 0.5)
        keep = model(ids, mask).keep_masks[1][0].bool()
    top = set(received[0, 1:].topk(14).indices.add(1).tolist()) | {0}   # [CLS] and the 14 most attended
    assert set(keep.nonzero().squeeze(1).tolist()) == top


def test_topk_ratio_one_is_the_dense_model_and_a_batch_is_its_rows_one_by_one():
    dense, ids, mask = model_of(), *make_batch([30, 7, 19, 30], T=32)
    with torch.no_grad():
        want = dense(ids, mask).logits
        assert torch.allclose(attention_topk.prune_by_attention(model_of(), 1.0)(ids, mask).logits, want, atol=1e-5)
        pruned = attention_topk.prune_by_attention(model_of(), 0.6)
        out = pruned(ids, mask)
        for b, n in enumerate([30, 7, 19, 30]):
            alone = pruned(ids[b:b + 1, :n], mask[b:b + 1, :n])
            assert torch.allclose(out.logits[b], alone.logits[0], atol=1e-5)
            assert [int(m[b].sum()) for m in out.keep_masks] == [int(m.sum()) for m in alone.keep_masks]


def test_topk_ratio_for_speedup_meets_it():
    cfg, lengths = tiny_config(), [12, 25, 33, 50, 64]
    for s in (1.5, 2.0, 2.5):
        r = attention_topk.ratio_for_speedup(lengths, s, cfg)
        counts = [attention_topk.keep_counts(n, attention_topk.keep_ratios(r, 3)) for n in lengths]
        assert flops.speedups(lengths, counts, cfg, 64)[0] == pytest.approx(s, rel=0.03)


def test_record_puts_every_run_on_the_full_models_scale():
    cfg, lengths = tiny_config(), [10, 20, 40]
    ref = lambda model_cfg, L: peers.Reference(cfg, lengths, model_cfg, L)
    dense = dict(flops_speedup_no_padding=1.0, kept_fraction_per_layer=[1.0] * 3)
    assert peers.record(dense, ref(cfg, 64), None)["flops_speedup_full"] == pytest.approx(1.0)
    cut = tiny_config(num_hidden_layers=1)
    rec = peers.record(dict(dense, kept_fraction_per_layer=[1.0]), ref(cut, 64), None)
    assert rec["flops_speedup_full"] == pytest.approx(sum(flops.bert_flops(n, cfg) for n in lengths) /
                                                      sum(flops.bert_flops(n, cut) for n in lengths))
    assert rec["authors_speedup"] == pytest.approx(3.0)
    rec = peers.record(dense, ref(cfg, 15), None)
    assert rec["flops_speedup_full"] == pytest.approx(truncate.truncated_flops(lengths, 64, cfg) /
                                                      truncate.truncated_flops(lengths, 15, cfg))
    assert rec["authors_speedup"] == pytest.approx(70 / 40)   # 10 + 15 + 15 of 10 + 20 + 40 tokens
    skim = dict(flops_speedup_no_padding=1.7, kept_fraction_per_layer=[1.0, 0.5, 0.3])   # Transkimmer: its own count
    rec = peers.record(skim, ref(cfg, 64), None)
    assert rec["flops_speedup_full"] == pytest.approx(1.7) and rec["authors_speedup"] == pytest.approx(3 / 1.8)


def run(setup, out, *extra):
    train.main(args_for(setup, out, *extra))
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def test_each_peer_from_train_flags(setup, tmp_path):
    glue, _ = setup
    res = run(setup, tmp_path / "layers", "--baseline", "--layers", "1")
    assert res["peer"] == dict(method="layers", layers=1, of=2) and len(res["kept_fraction_per_layer"]) == 1
    assert 1.9 < res["flops_speedup_full"] < 2.0 and res["authors_speedup"] == pytest.approx(2.0)
    again = train.main(["--task", "sst2", "--eval-only", "--checkpoint", str(tmp_path / "layers" / "checkpoint"),
                        "--data-dir", glue, "--device", "cpu", "--out-dir", str(tmp_path / "layers-ev")])
    assert again["flops_speedup_full"] == pytest.approx(res["flops_speedup_full"])   # against the model it was cut from
    res = run(setup, tmp_path / "truncate", "--baseline", "--truncate-speedup", "1.5")
    assert res["peer"]["method"] == "truncate" and res["args"]["max_length"] == res["peer"]["max_length"] < 64
    assert res["flops_speedup_full"] == pytest.approx(1.5, rel=0.2)
    base = run(setup, tmp_path / "base", "--baseline")
    assert base["peer"] is None and base["flops_speedup_full"] == pytest.approx(1.0)
    res = run(setup, tmp_path / "topk", "--baseline", "--topk-speedup", "1.5")
    assert res["peer"]["method"] == "attention-topk" and res["flops_speedup_full"] == pytest.approx(1.5, rel=0.05)
    ev = train.main(["--task", "sst2", "--eval-only", "--checkpoint", str(tmp_path / "base" / "checkpoint"),
                     "--topk-speedup", "1.5", "--data-dir", glue, "--device", "cpu", "--out-dir", str(tmp_path / "ev")])
    assert ev["flops_speedup_full"] == pytest.approx(1.5, rel=0.05) and ev["kept_fraction_per_layer"][1] < 1


@pytest.mark.parametrize("flags,says", [
    (["--layers", "2"], "--layers is a peer of Transkimmer that needs no skimming: pass --baseline too"),
    (["--baseline", "--layers", "2", "--topk-speedup", "2"], "--layers and --topk-speedup are two peers"),
    (["--baseline", "--truncate-speedup", "2", "--max-length", "32"], "--truncate-speedup chooses --max-length"),
    (["--eval-only", "--checkpoint", "x", "--layers", "2"], "--layers sets how to train"),
])
def test_peer_flags_that_contradict_are_one_line(flags, says, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "sst2", "--device", "cpu", *flags])
    assert says in capsys.readouterr().err


def test_peers_table_and_chart_from_result_files(setup, tmp_path):
    """tools/report.py --peers: each run's method and speed read from its file, the baseline row from
    glue/, the best at each speed marked, each row's command, and the chart's panel and lines."""
    import shutil
    from tools import report
    root = tmp_path / "results"
    for sub in ("peers", "target-speedup", "glue"):
        (root / sub).mkdir(parents=True)
    for name, extra in [("layers1", ["--layers", "1"]), ("truncate1.5", ["--truncate-speedup", "1.5"]),
                        ("topk1.5", ["--topk-speedup", "1.5"]), ("topk2", ["--topk-speedup", "2"])]:
        run(setup, tmp_path / name, "--baseline", *extra)
        shutil.copyfile(tmp_path / name / "results.json", root / "peers" / f"sst2-{name}-seed42.json")
    run(setup, tmp_path / "base", "--baseline")
    shutil.copyfile(tmp_path / "base" / "results.json", root / "glue" / "sst2-baseline-seed42.json")
    doc, svg = tmp_path / "peers.md", tmp_path / "peers.svg"
    doc.write_text("# peers\n<!-- peers-table -->\n<!-- /peers-table -->\nafter\n")
    report.main(["--peers", str(root / "peers"), "--readme", str(doc), "--peers-svg", str(svg)])
    rows = [line.split(" | ") for line in doc.read_text().splitlines() if line.startswith("| sst2")]
    assert [(r[1], r[2]) for r in rows] == [("", "baseline"), ("1.5x", "truncation"), ("1.5x", "attention top-k, fine-tuned"),
                                           ("2x", "first k layers"), ("2x", "attention top-k, fine-tuned")]
    assert rows[3][7].startswith("1.9") and rows[3][8] == "2.00x"          # FLOPs (the pooler's too) and the authors' count
    assert sum(r[-1] == "**best** |" for r in rows) == 2                    # one a speed
    assert doc.read_text().count("\n- sst2, ") == 4 and doc.read_text().endswith("after\n")   # each row's command
    assert svg.read_text().count("<polyline") == 1 and ">sst2<" in svg.read_text()   # top-k: the one method at two speeds


@pytest.mark.slow
def test_bench_peers_times_each_run_against_the_full_dense_model(setup, tmp_path):
    """tools/bench_peers.py: the first k layers, truncation and attention top-k (without retraining: an
    --eval-only folder) each timed beside the dense baseline; its file feeds the table's time column."""
    from tools import bench_peers
    glue, _ = setup
    run(setup, tmp_path / "base", "--baseline")
    run(setup, tmp_path / "layers", "--baseline", "--layers", "1")
    train.main(["--task", "sst2", "--eval-only", "--checkpoint", str(tmp_path / "base" / "checkpoint"), "--topk-speedup",
                "2", "--data-dir", glue, "--device", "cpu", "--out-dir", str(tmp_path / "topk")])
    for name in ("layers", "topk"):
        out = bench_peers.main(["--baseline", str(tmp_path / "base" / "checkpoint"), "--run", str(tmp_path / name),
                                "--examples", "8", "--repeats", "1", "--json", str(tmp_path / f"{name}.json")])
        assert [r["batch"] for r in out["rows"]] == [32, 1] and all(r["packed_measured"] > 0 for r in out["rows"])
        assert json.load(open(tmp_path / f"{name}.json"))["rows"] == out["rows"]


def test_a_speed_out_of_a_peers_reach_is_refused_in_one_line():
    """Truncation cannot go under 4 tokens, top-k keeps every token in layer 0: asked for more than they can
    give, they say so (they returned the nearest setting, a slower model, without a word)."""
    cfg, lengths = tiny_config(), [6, 8, 10]
    with pytest.raises(SystemExit, match=r"--truncate-speedup 4: inputs of 4 tokens save at most 2\.\d\dx"):
        truncate.length_for_speedup(lengths, 4.0, cfg, shortest=4)
    with pytest.raises(SystemExit, match=r"--topk-speedup 5: .* saves at most 2\.\d\dx"):
        attention_topk.ratio_for_speedup(lengths, 5.0, cfg)


def test_the_table_names_how_a_recipe_departs():
    from tools.peers_table import recipe
    default = dict(lr=5e-5, model="/m/MiniLM", baseline=False, skim_delay=1 / 3, skim_warmup=1 / 3)
    assert recipe(default) == ""
    assert recipe(dict(default, hard_stage=0.2)) == " (hard last 0.2)"
    assert recipe(dict(default, model="out/b/checkpoint", skim_delay=0.0, skim_warmup=0.3)) == \
        " (from the baseline, delay 0, ramp 0.3)"                   # lambda from the baseline
    second = dict(default, model="out/b/checkpoint", skim_delay=0.0, skim_warmup=0.3, target_speedup=2.0)
    assert recipe(second) == "" and recipe(dict(second, skim_delay=0.1)) == " (delay 0.1, ramp 0.3)"   # two stages
    assert recipe(dict(default, target_speedup=2.0)) == ""        # --one-stage: the method names it
    from tools.tables import command_of   # the fine-tuned baseline it starts from is named, not hidden behind $M
    run = dict(args=dict(model="out/b/checkpoint", data_dir="/g/glue"),
               machine=dict(command="python train.py --model out/b/checkpoint --data-dir /g/glue"))
    assert command_of(run) == "python train.py --model out/b/checkpoint --data-dir $D"
