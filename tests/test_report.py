"""report.py builds its page from real (tiny) train.py output folders."""

import json
import os
import re

import pytest

from tools import report
from tools import tables
import train
from tiny import write_glue, write_model


@pytest.fixture(scope="module")
def outs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    glue, model = write_glue(str(root / "glue")), write_model(str(root / "model"))
    folders = []
    for name, extra in [("l0.3", []), ("l2", ["--skim-coefficient", "2", "--mu0", "0.5"]), ("base", ["--baseline"])]:
        out = str(root / name)
        train.main(["--task", "sst2", "--data-dir", glue, "--model", model, "--device", "cpu", "--max-steps", "2",
                    "--batch-size", "8", "--out-dir", out, *extra])
        folders.append(out)
    return folders


def test_report_content(outs, tmp_path):
    page, svg = str(tmp_path / "r.html"), str(tmp_path / "k.svg")
    report.main([*outs, "--out", page, "--svg", svg])
    text = open(page).read()
    runs = [json.load(open(os.path.join(f, "results.json"))) for f in outs]
    L = len(runs[0]["kept_fraction_per_layer"])
    fig4 = text.split("<h2>")[1]
    assert fig4.count('class="run"') == 3 and fig4.count('class="point"') == 3 * L   # one point per layer
    assert open(svg).read().count('class="point"') == 2 * L                          # the skimming runs alone
    for kept in runs[1]["kept_fraction_per_layer"]:
        assert f"{kept:.3f}" in text                                                  # the numbers behind it
    # Table 5: every example token appears once, legend has one entry per layer + "kept through all"
    section = text.split("Which tokens were skimmed where")[1].split("<h2>")[0]
    legend, examples = section.split('<p class="example">', 1)
    assert legend.count('class="tok"') == L + 1 and "kept through all layers" in legend
    assert len(re.findall(r"skimmed before layer \d", legend)) == L
    shown = re.findall(r'<span class="tok" title="layer (\d+)"[^>]*>([^<]*)</span>', examples)
    expected = [(str(s), t) for ex in runs[0]["examples"] for t, s in zip(ex["tokens"], ex["skim_layer"])]
    assert len(runs[0]["examples"]) == 8 and shown == expected
    # Fig. 3: two lambdas and the baseline of one task
    fig3 = text.split("accuracy against speedup")[1]
    assert fig3.count('class="point"') == 2 and fig3.count('class="baseline"') == 1
    assert "<script" not in text and "http" not in text.replace("http://www.w3.org/2000/svg", "")


def test_report_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json not found"):
        report.main([str(tmp_path)])


def test_glue_table_from_result_files(outs, tmp_path, capsys):
    """The README's GLUE table: mean and std over seeds, difference, speedups and bench rows, all
    from the files; written into the README's marked block and nowhere else."""
    import shutil
    folder = tmp_path / "glue"
    (folder / "bench").mkdir(parents=True)
    for src, name in [(outs[0], "sst2-transkimmer-seed1"), (outs[1], "sst2-transkimmer-seed2"),
                      (outs[2], "sst2-baseline-seed1"), (outs[2], "sst2-baseline-seed2")]:
        shutil.copy(os.path.join(src, "results.json"), folder / f"{name}.json")
    moved = json.load(open(folder / "sst2-baseline-seed2.json"))
    moved["args"]["device"] = "cuda:0"                                  # one run trained on a GPU
    json.dump(moved, open(folder / "sst2-baseline-seed2.json", "w"))
    split = dict(dense=1.0, kept_tokens_only=1.3, with_predictors=1.1, pruned=1.0)
    rows = [dict(batch=32, kept=0.5, flops=2.0, measured=1.8, realised=0.9),
            dict(batch=1, kept=0.5, flops=2.0, measured=1.1, realised=0.55, split=split)]
    about = dict(task="sst2", checkpoint="runs/x/checkpoint", device_name="cpu", threads=1)   # as bench.py --json writes
    json.dump(dict(about, rows=rows), open(folder / "bench" / "sst2-transkimmer-seed1.json", "w"))
    rows[1]["split"] = dict(split, pruned=0.9)
    json.dump(dict(about, rows=[dict(r, measured=r["measured"] + 0.2, realised=r["realised"] + 0.04) for r in rows]),
              open(folder / "bench" / "sst2-transkimmer-seed2.json", "w"))
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- glue-table -->\nold table\n<!-- /glue-table -->\nmiddle\n"
                      "<!-- batch1-table -->\n<!-- /batch1-table -->\nafter\n")
    report.main(["--glue", str(folder), "--batch1", str(folder), "--readme", str(readme)])
    runs = [json.load(open(os.path.join(f, "results.json"))) for f in outs]
    tk = [100 * r["metrics"]["accuracy"] for r in runs[:2]]
    printed = capsys.readouterr().out.splitlines()
    row, batch1 = [l for l in printed if l.startswith("| sst2")]
    assert batch1 == "| sst2 | 2.00x | 1.30x | 1.10x | 0.95x | 1.20x |"   # where batch-1 time goes: means of 2 seeds
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == "accuracy" and cells[5] == "2 / 2" and cells[6] == "2 steps"   # the runs' --max-steps
    assert cells[3].startswith(f"{sum(tk) / 2:.1f} ± ")
    assert cells[7] == "cpu 3, cuda 1"                                  # each run's --device, counted
    assert cells[8] == f"{sum(r['flops_speedup_no_padding'] for r in runs[:2]) / 2:.2f}x / " \
                       f"{sum(r['flops_speedup_sequence'] for r in runs[:2]) / 2:.2f}x"
    assert cells[10] == "1.90x, 0.92 of FLOPs (lowest 0.90) / 1.20x (lowest 1.10x) (2 on cpu)"   # means, lowest checkpoint, bench device
    assert cells[11] == "93.0 → 92.3, 1.58x"                          # paper Table 3, BERT-base
    text = readme.read_text()
    assert text.startswith("before\n<!-- glue-table -->\n| task |") and "<!-- /glue-table -->\nmiddle\n" in text
    assert "old table" not in text and row in text and text.endswith(batch1 + "\n<!-- /batch1-table -->\nafter\n")


def test_glue_average_rows(outs, tmp_path, capsys):
    """The average no-padding speedup over every task, and over the tasks at most a point below their
    baseline, WNLI aside (a task skimmed to [CLS] while it learns little must not carry the average
    alone; a task above its baseline keeps its score)."""
    folder = tmp_path / "glue"
    folder.mkdir()
    for task, base, tk, speedup in [("cola", 0.30, 0.295, 1.5), ("rte", 0.56, 0.53, 4.5), ("mrpc", 0.86, 0.875, 2.0),
                                    ("wnli", 0.33, 0.56, 8.0)]:
        for kind, score in [("baseline", base), ("transkimmer", tk)]:
            r = json.load(open(os.path.join(outs[2 if kind == "baseline" else 0], "results.json")))
            r.update(task=task, metric_names=["m"], metrics={"m": score},
                     flops_speedup_no_padding=1.0 if kind == "baseline" else speedup)
            json.dump(r, open(folder / f"{task}-{kind}-seed1.json", "w"))
    report.main(["--glue", str(folder)])
    rows = [l for l in capsys.readouterr().out.splitlines() if l.startswith("| average")]
    assert rows == ["| average | | | | | | | | 4.00x (4 tasks) | | | 3.32x | 3.53x |",
                    "| average, at most a point down, WNLI aside (cola, mrpc) | | | | | | | | 1.75x (2 tasks) | | | 2.44x | 3.39x |"]


def test_ablation_table_from_result_files(outs, tmp_path, capsys):
    import shutil
    folder = tmp_path / "ablation"
    folder.mkdir()
    shutil.copy(os.path.join(outs[0], "results.json"), folder / "sst2-2-recipe.json")
    shutil.copy(os.path.join(outs[2], "results.json"), folder / "sst2-2-the-baseline.json")   # (after "recipe" by name)
    report.main(["--ablation", str(folder)])
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("| sst2")]
    rows = {l.split("|")[1].strip(): [c.strip() for c in l.split("|")[1:-1]] for l in lines}
    assert list(rows) == ["sst2-2-the-baseline", "sst2-2-recipe"]   # the baseline first, then by learning rate
    run = json.load(open(os.path.join(outs[0], "results.json")))
    assert rows["sst2-2-recipe"][1:6] == ["Transkimmer", "1", "5e-05", f"{tables.rate(run['args']['predictor_lr'])}, constant", "0.33 + 0.33"]
    assert [tables.rate(x) for x in (1e-4, 2e-5, 2.5e-5, 0.0002)] == ["1e-04", "2e-05", "2.5e-05", "2e-04"]
    run_at = lambda t, device: dict(train_seconds=t, args=dict(device=device))
    assert [tables.train_time(run_at(t, d)) for t, d in ((2159.5, "cpu"), (25.4, "cuda:1"))] == ["36 min, cpu", "25 s, cuda"]
    assert rows["sst2-2-recipe"][6] == f"accuracy {100 * run['metrics']['accuracy']:.1f}"
    assert rows["sst2-2-the-baseline"][1:3] == ["plain BERT", ""]


@pytest.mark.slow
def test_report_shows_every_dev_example_of_a_predictions_run(tmp_path, capsys):
    """--predictions writes each dev example with its tokens' layers: the report shows all 12 of the tiny
    dev set (results.json keeps 8), or as many as --examples asks; target-speedup runs are named by it."""
    glue, model = write_glue(str(tmp_path / "glue")), write_model(str(tmp_path / "model"))
    out = str(tmp_path / "run")
    train.main(["--task", "sst2", "--data-dir", glue, "--model", model, "--device", "cpu", "--max-steps", "2",
                "--batch-size", "8", "--out-dir", out, "--predictions", "--target-speedup", "2"])
    shown = lambda page: open(page).read().count('<p class="example">')
    report.main([out, "--out", str(tmp_path / "all.html")])
    report.main([out, "--out", str(tmp_path / "3.html"), "--examples", "3"])
    assert (shown(tmp_path / "all.html"), shown(tmp_path / "3.html")) == (12, 3)
    assert "Transkimmer, target 2x" in open(tmp_path / "all.html").read()
    with pytest.raises(SystemExit):
        report.main([out, "--out", str(tmp_path / "0.html"), "--examples", "0"])
    assert "--examples 0" in capsys.readouterr().err


@pytest.mark.slow
def test_target_table_from_result_files(tmp_path, capsys):
    """--target: per task the baseline and defaults of the glue/ folder beside it, then each target setting
    (seeds averaged, the speedup reached beside the one asked), the paper's row, and each setting's command
    read from its result file's record."""
    import shutil
    glue, model = write_glue(str(tmp_path / "data")), write_model(str(tmp_path / "model"))
    (tmp_path / "results" / "glue").mkdir(parents=True)
    (tmp_path / "results" / "target-speedup").mkdir()
    for name, extra in [("glue/sst2-baseline-seed1", ["--baseline"]), ("glue/sst2-transkimmer-seed1", []),
                        ("target-speedup/sst2-target2-seed1", ["--target-speedup", "2"]),
                        ("target-speedup/sst2-target2-seed2", ["--target-speedup", "2", "--seed", "2"]),
                        ("target-speedup/sst2-target2-teacher-seed1", ["--target-speedup", "2", "--teacher",
                                                                       str(tmp_path / "runs/glue/sst2-baseline-seed1/checkpoint")])]:
        out = str(tmp_path / "runs" / name)
        train.main(["--task", "sst2", "--data-dir", glue, "--model", model, "--device", "cpu", "--max-steps", "2",
                    "--batch-size", "8", "--out-dir", out, *extra])
        shutil.copy(os.path.join(out, "results.json"), tmp_path / "results" / f"{name}.json")
    teacher = tmp_path / "results" / "target-speedup" / "sst2-target2-teacher-seed1.json"   # as tools/calibrate.py leaves it
    teacher.write_text(json.dumps(dict(json.loads(teacher.read_text()), calibrated_by=dict(command="python tools/calibrate.py --run R"))))
    capsys.readouterr()
    report.main(["--target", str(tmp_path / "results" / "target-speedup")])
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("| sst2 |")]
    assert [r.split(" | ")[1] for r in rows] == ["baseline (results/glue)", "defaults, lambda (results/glue)",
                                                 "target 2x", "target 2x + teacher", "paper: DistilBERT + Transkimmer vs DistilBERT"]
    assert "2 (42, 2)" in rows[2] and "(2x)" in rows[2] and re.search(r"\| [+-]\d+\.\d \|", rows[2])
    before = [r.split("|")[8].strip() for r in rows]   # before calibration: the target runs' evaluation before the shift
    assert before[0] == before[1] == "" and re.fullmatch(r"\d+\.\d, \d\.\d\dx ± \d\.\d\d", before[2])
    assert "- sst2, target 2x, seeds 42, 2: `python " in text   # (under pytest the command is pytest's)
    assert re.search(r"- sst2, target 2x \+ teacher, seeds 42: `python .*`, then `python tools/calibrate.py --run R`", text)


def test_report_needs_no_torch():
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", "import sys; from tools import report; print('torch' in sys.modules)"],
                       cwd=root, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize("content", ["", "{", "{}", "[1]", '{"args": {"baseline": true}}'])
def test_report_broken_results_name_the_file(tmp_path, content, capsys):
    import subprocess
    import sys
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(content)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "tools", "report.py"), str(tmp_path / "run"), "--out",
                        str(tmp_path / "r.html")], capture_output=True, text=True, timeout=60)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and "Traceback" not in r.stderr and "run/results.json is not a results file" in last
    assert not (tmp_path / "r.html").exists()


def test_report_refuses_a_nan_run(tmp_path):
    run = dict(task="sst2", metric_names=["accuracy"], metrics={"accuracy": None}, kept_fraction_per_layer=[1.0],
               flops_speedup_no_padding=16.6, args=dict(baseline=False, skim_coefficient=0.3))
    (tmp_path / "results.json").write_text(json.dumps(run))
    with pytest.raises(ValueError, match="missing or non-finite numbers"):
        report.load(str(tmp_path))


def test_fig3_svg_from_result_files(outs, tmp_path):
    """Fig. 3 alone, from results files copied out of the run folders (as results/sweeps/mrpc-lambda/ holds)."""
    import shutil
    files = []
    for f in outs:
        files.append(str(tmp_path / (os.path.basename(f) + ".json")))
        shutil.copy(os.path.join(f, "results.json"), files[-1])
    svg = str(tmp_path / "fig3.svg")
    report.main([*files, "--out", str(tmp_path / "r.html"), "--fig3-svg", svg])
    text = open(svg).read()
    assert text.count('class="point"') == 2 and text.count('class="baseline"') == 1
    assert "lambda 2" in text and "plain BERT" in text


@pytest.mark.parametrize("flag", ["--out", "--svg", "--fig3-svg"])
def test_report_output_that_is_a_folder_is_refused_first(outs, tmp_path, capsys, flag):
    skim, _, base = outs
    (tmp_path / "here").mkdir()
    args = [base, skim, "--out", str(tmp_path / "r.html"), flag, str(tmp_path / "here")]
    with pytest.raises(SystemExit):
        report.main(args)
    assert f"{flag} {tmp_path / 'here'} is a folder: pass a file name" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("flag", ["--out", "--svg", "--fig3-svg"])
def test_report_replaces_its_own_pages_and_charts_only(outs, tmp_path, capsys, flag):
    """A page or chart report.py wrote is redrawn; any other file at an output path (a results file
    given by mistake) is kept, and nothing is written."""
    skim, _, base = outs
    mine = tmp_path / "results.json"
    mine.write_text('{"task": "sst2"}')
    outputs = {"--out": str(tmp_path / "r.html"), "--svg": str(tmp_path / "s.svg"), "--fig3-svg": str(tmp_path / "f.svg")}
    args = [base, skim] + [x for f, path in outputs.items() for x in (f, path)]
    report.main(args)
    report.main(args)                                               # its own files: replaced, no question
    bad = [base, skim] + [x for f, path in outputs.items() for x in (f, str(mine) if f == flag else path + ".2")]
    with pytest.raises(SystemExit):
        report.main(bad)
    assert f"{flag} {mine} already exists and is not a page or chart tools/report.py wrote" in capsys.readouterr().err
    assert mine.read_text() == '{"task": "sst2"}' and not any(os.path.exists(p + ".2") for p in outputs.values())


def test_fig3_averages_the_seeds_of_a_setting(outs, tmp_path):
    """Fig. 3 with several seeds per lambda: one point per lambda, at the seeds' mean, with a bar of
    one standard deviation each way; a setting with one seed has no bar."""
    base = json.load(open(os.path.join(outs[1], "results.json")))
    runs = []
    for i, (f1, sp) in enumerate([(0.80, 1.5), (0.84, 1.7), (0.82, 1.6)]):   # three seeds of one lambda
        r = json.loads(json.dumps(base))
        r["metric_names"], r["metrics"], r["flops_speedup_no_padding"] = ["f1"], {"f1": f1}, sp
        runs.append(dict(r, label="lambda 0.3"))
    r = json.loads(json.dumps(runs[0]))
    r["metrics"], r["flops_speedup_no_padding"] = {"f1": 0.86}, 1.0
    runs.append(dict(r, label="plain BERT"))
    svg = report.scatter_chart(runs)
    assert svg.count('class="point"') == 1 and svg.count('class="baseline"') == 1
    assert svg.count('class="spread"') == 1 and "lambda 0.3 (3 runs)" in svg
    # the point sits at the mean (1.6x, 0.82), the bar spans one std (0.1x, 0.02) each way
    cx, cy = (float(v) for v in re.search(r'class="point" cx="([\d.]+)" cy="([\d.]+)"', svg).groups())
    d = [float(v) for v in re.findall(r"[\d.]+", re.search(r'class="spread" stroke="#999" d="([^"]+)"', svg)[1])]
    x_lo, y_mid, x_hi, x_mid, y_lo, y_hi = d
    assert x_mid == pytest.approx(cx, abs=0.1) and y_mid == pytest.approx(cy, abs=0.1)
    assert (x_hi - cx) == pytest.approx(cx - x_lo, abs=0.2) and (cy - y_hi) == pytest.approx(y_lo - cy, abs=0.2)
    x = lambda v: 60 + 600 * (v - 0.95) / (1.7 * 1.05 - 0.95)   # the axis: 0.95 x the baseline's 1.0x to 1.05 x (1.6 + 0.1)
    assert cx == pytest.approx(x(1.6), abs=0.1) and x_hi == pytest.approx(x(1.7), abs=0.1)


def test_sweep_table_averages_each_setting(outs, tmp_path, capsys):
    """--sweep: one row per setting (files <name>-seed<N>.json), mean ± std over its seeds, written
    into the README block named after the folder."""
    folder = tmp_path / "mrpc-lambda"
    folder.mkdir()
    for src, name in [(outs[0], "x-lambda0.3-seed1"), (outs[1], "x-lambda0.3-seed2"), (outs[2], "x-baseline-seed1")]:
        run = json.load(open(os.path.join(src, "results.json")))
        run["args"]["seed"] = int(name[-1])                               # the seed each run was given
        json.dump(run, open(folder / f"{name}.json", "w"))
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- sweep-table mrpc-lambda -->\nold\n<!-- /sweep-table mrpc-lambda -->\nb\n")
    report.main(["--sweep", str(folder), "--readme", str(readme)])
    rows = {l.split("|")[1].strip(): [c.strip() for c in l.split("|")[1:-1]]
            for l in capsys.readouterr().out.splitlines() if l.startswith("| x-")}
    runs = [json.load(open(os.path.join(f, "results.json"))) for f in outs]
    acc = [100 * r["metrics"]["accuracy"] for r in runs[:2]]
    sp = [r["flops_speedup_no_padding"] for r in runs[:2]]
    assert rows["x-lambda0.3"][2:4] == ["2 (1, 2)", "cpu"]
    assert rows["x-lambda0.3"][4].startswith(f"accuracy {sum(acc) / 2:.1f} ± ")
    assert rows["x-lambda0.3"][5].startswith(f"{sum(sp) / 2:.2f}x ± ")
    assert rows["x-baseline"][1:3] == ["", "1 (1)"] and rows["x-baseline"][5] == f"{runs[2]['flops_speedup_no_padding']:.2f}x"
    text = readme.read_text()
    assert "old" not in text and text.startswith("a\n<!-- sweep-table mrpc-lambda -->\n| setting |") and text.endswith("-->\nb\n")


def test_sweep_table_shows_the_benched_checkpoints(outs, tmp_path, capsys):
    """A sweep folder with bench/ (bench.py --json files named as the result files) gets the GLUE
    table's measured-speedup column: per setting, means and the lowest checkpoint; a setting with no
    bench file gets an empty cell, and a folder without bench/ no column at all."""
    folder = tmp_path / "cola-batch1"
    (folder / "bench").mkdir(parents=True)
    for src, name in [(outs[0], "x-lambda0.3-seed1"), (outs[0], "x-lambda0.3-seed2"), (outs[2], "x-baseline-seed1")]:
        run = json.load(open(os.path.join(src, "results.json")))
        run["args"]["seed"] = int(name[-1])
        json.dump(run, open(folder / f"{name}.json", "w"))
    about = dict(task="sst2", checkpoint="runs/x/checkpoint", device_name="Some CPU", threads=1)
    for seed, (b32, b1) in [(1, (1.5, 0.9)), (2, (1.7, 1.1))]:
        rows = [dict(batch=32, kept=0.5, flops=2.0, measured=b32, realised=b32 / 2.0),
                dict(batch=1, kept=0.5, flops=2.0, measured=b1, realised=b1 / 2.0)]
        json.dump(dict(about, rows=rows), open(folder / "bench" / f"x-lambda0.3-seed{seed}.json", "w"))
    report.main(["--sweep", str(folder)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"| {tables.BENCH_COLUMN} |")
    rows = {l.split("|")[1].strip(): [c.strip() for c in l.split("|")[1:-1]] for l in lines if l.startswith("| x-")}
    assert rows["x-lambda0.3"][7] == "1.60x, 0.80 of FLOPs (lowest 0.75) / 1.00x (lowest 0.90x) (2 on Some CPU)"
    assert rows["x-baseline"][7] == ""
    (folder / "bench" / "x-lambda0.3-seed1.json").unlink(), (folder / "bench" / "x-lambda0.3-seed2.json").unlink()
    report.main(["--sweep", str(folder)])
    assert tables.BENCH_COLUMN not in capsys.readouterr().out


def test_readme_that_is_missing_or_lacks_a_block_is_left_alone(outs, tmp_path, capsys):
    """--readme names a file that must exist, and every table's block must be in it before any is
    written: a README without one of them is not half-updated."""
    import shutil
    folder = tmp_path / "glue"
    folder.mkdir()
    shutil.copy(os.path.join(outs[0], "results.json"), folder / "sst2-transkimmer-seed1.json")
    with pytest.raises(SystemExit):
        report.main(["--glue", str(folder), "--readme", str(tmp_path / "nope.md")])
    assert f"--readme {tmp_path / 'nope.md'}: no such file" in capsys.readouterr().err
    readme = tmp_path / "README.md"
    before = "a\n<!-- glue-table -->\nold\n<!-- /glue-table -->\nb\n"   # no batch1-table block
    readme.write_text(before)
    with pytest.raises(SystemExit, match="no <!-- batch1-table --> ... <!-- /batch1-table --> block"):
        report.main(["--glue", str(folder), "--batch1", str(folder), "--readme", str(readme)])
    assert readme.read_text() == before


@pytest.mark.parametrize("flag", ["--glue", "--ablation", "--lr-grid", "--bench", "--sweep"])
@pytest.mark.parametrize("folder", ["missing", "empty", "broken"])
def test_table_folders_that_hold_no_results_leave_the_readme_alone(outs, tmp_path, flag, folder):
    """A mistyped, empty or foreign folder is one line naming the flag (or the file), before the
    README is touched: an empty table would otherwise silently replace the real one."""
    import subprocess
    import sys
    path = tmp_path / "results"
    if folder != "missing":
        path.mkdir()
    if folder == "broken":    # a JSON file that is not a result: named as the culprit
        (path / ("sst2-transkimmer-seed1.json" if flag == "--glue" else "x.json")).write_text('{"rows": 1}')
    readme = tmp_path / "README.md"
    blocks = ["glue-table", "batch1-table", "ablation-table", "lr-grid-table", "speed-table", "sweep-table results"]
    before = "".join(f"<!-- {b} -->\nkept\n<!-- /{b} -->\n" for b in blocks)
    readme.write_text(before)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, os.path.join(root, "tools", "report.py"), flag, str(path), "--readme", str(readme)],
                       capture_output=True, text=True, timeout=60)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-1500:]
    says = {"missing": f"{flag} {path}: no such folder", "empty": f"{flag} {path}: no .json result files in it",
            "broken": "x.json is not a results file of" if flag != "--glue" else "seed1.json is not a results file of"}
    assert says[folder] in last, last
    assert readme.read_text() == before


def test_tables_show_the_classification_path_where_benched(tmp_path):
    """A bench file with the classification path (fast/classify.py) timed beside: the speed table says
    it under the rows, the batch-1 table gains its two columns; files without it read as before."""
    row = lambda b, **k: dict(batch=b, kept=0.5, flops=2.0, measured=1.1, realised=0.55, dense_tokens_per_s=10.0,
                              pruned_tokens_per_s=11.0, **k)
    split = dict(dense=1.0, kept_tokens_only=1.3, with_predictors=1.1, pruned=0.95)
    about = dict(task="sst2", checkpoint="runs/x/checkpoint", device_name="cpu", threads=1, skim_fraction=None,
                 skim_layer=None)
    bench = tmp_path / "bench"
    bench.mkdir()
    json.dump(dict(about, rows=[row(1, split=split), row(32)]), open(bench / "old.json", "w"))
    json.dump(dict(about, rows=[row(1, split=dict(split, classify=1.05), classify_measured=1.02, classify_realised=0.51)]),
              open(bench / "new.json", "w"))
    text = tables.speed_table(str(bench))
    assert "new, batch 1, the classification path (fast/classify.py) timed beside: 1.02x, 0.51 of FLOPs." in text
    assert "old, batch" not in text
    glue = tmp_path / "glue"
    (glue / "bench").mkdir(parents=True)
    run = json.load(open(os.path.join(os.path.dirname(__file__), "..", "results", "glue", "sst2-transkimmer-seed42.json")))
    for seed, name in [(1, "old"), (2, "new")]:
        json.dump(run, open(glue / f"sst2-transkimmer-seed{seed}.json", "w"))
        json.dump(json.load(open(bench / f"{name}.json")), open(glue / "bench" / f"sst2-transkimmer-seed{seed}.json", "w"))
    table = tables.batch1_table(str(glue))
    assert "classification path: encoder | whole model |" in table.splitlines()[0]
    assert table.splitlines()[2].endswith("| 1.05x | 1.02x (1) |")


@pytest.mark.parametrize("flag,content", [("--out", "<!DOCTYPE html>\n<html><body>my own page</body></html>\n"),
                                          ("--svg", '<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>\n')])
def test_report_keeps_the_users_own_page_or_chart(outs, tmp_path, capsys, flag, content):
    """A user's own HTML page or SVG chart at an output path starts as ours do; it is kept unless
    --overwrite says to replace it (only what carries report.py's mark is redrawn at will)."""
    mine = tmp_path / ("index.html" if flag == "--out" else "mine.svg")
    mine.write_text(content)
    args = [outs[2], outs[0], flag, str(mine)] + (["--out", str(tmp_path / "r.html")] if flag != "--out" else [])
    with pytest.raises(SystemExit):
        report.main(args)
    assert "is not a page or chart tools/report.py wrote" in capsys.readouterr().err and mine.read_text() == content
    report.main(args + ["--overwrite"])
    assert report.MARK in mine.read_text()


def test_fig3_draws_the_target_runs_as_their_own_series(outs):
    """--target-speedup runs beside a lambda sweep: diamonds on a line of their own, named by
    the speed asked and the distillation."""
    base = json.load(open(os.path.join(outs[1], "results.json")))
    runs = []
    for label, f1, sp in [("lambda 0.5", 0.85, 1.5), ("lambda 1", 0.84, 1.9), ("target 2x", 0.83, 2.0),
                          ("target 3x + teacher", 0.80, 3.0)]:
        r = json.loads(json.dumps(base))
        r["metric_names"], r["metrics"], r["flops_speedup_no_padding"] = ["f1"], {"f1": f1}, sp
        runs.append(dict(r, label=label))
    svg = report.scatter_chart(runs)
    assert svg.count('class="point"') == 2 and svg.count('class="point target"') == 2
    assert svg.count("<polyline") == 2 and "target 3x + teacher" in svg
    a = json.loads(json.dumps(base))
    a["args"].update(baseline=False, target_speedup=2.0, teacher="t/checkpoint", distill_layers=True)
    assert report.target_label(a["args"]) == "target 2x + teacher, layers"
