"""report.py builds its page from real (tiny) train.py output folders."""

import json
import os
import re

import pytest

import report
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
