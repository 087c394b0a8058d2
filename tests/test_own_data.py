"""Your own data: --train-file / --dev-file in CSV, TSV or JSON Lines (tasks/own_data.py, train.py)."""
import csv
import json
import os

import pytest

import data
from tasks import glue as glue_files
from cli import errors
from tasks import own_data
import train
from tiny import write_glue, write_model

ROWS = [("a good film", "the plot", "pos"), ("a bad film", "the cast", "neg"), ("fine", "ok", "pos")]


def write(path, rows, columns=("sentence", "sentence2", "label")):
    """rows as CSV, TSV (a header row) or JSON Lines, by the file's extension."""
    if path.endswith(".jsonl"):
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(dict(zip(columns, r))) + "\n" for r in rows)
    else:
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t" if path.endswith(".tsv") else ",")
            w.writerow(columns)
            w.writerows(rows)
    return path


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl"])
def test_every_format_reads_the_same(tmp_path, ext):
    texts, labels, classes = own_data.read_file(write(str(tmp_path / f"d{ext}"), ROWS))
    assert texts == [("a good film", "the plot"), ("a bad film", "the cast"), ("fine", "ok")]
    assert classes == ["neg", "pos"] and labels == [1, 0, 1]


def test_columns_defaults_and_flags(tmp_path):
    path = write(str(tmp_path / "d.csv"), [("x", "hello", "1"), ("y", "there", "0")], ("id", "text", "stars"))
    texts, labels, classes = own_data.read_file(path, label="stars")        # text: the default; no pair
    assert texts == ["hello", "there"] and classes == ["0", "1"] and labels == [1, 0]
    texts, _, _ = own_data.read_file(path, text="id", pair="text", label="stars")
    assert texts == [("x", "hello"), ("y", "there")]
    with pytest.raises(errors.BadInput, match="has no sentence, sentence1 or text column: name the text's with --text-column "
                                            r"\(its columns: id, label\)"):
        own_data.read_file(write(str(tmp_path / "e.csv"), [("x", "1")], ("id", "label")))
    with pytest.raises(errors.BadInput, match=r"d.csv has no column 'label' \(--label-column; its columns: id, text, stars\)"):
        own_data.read_file(path)                                             # a column named by no header
    with pytest.raises(errors.BadInput, match=r"f.csv, line 3: no value in column 'stars' \(--label-column"):
        own_data.read_file(write(str(tmp_path / "f.csv"), [("x", "hello", "1"), ("y", "there", "")], ("id", "text", "stars")),
                       label="stars")                                    # a row without its value


def test_labels_classes_or_regression(tmp_path):
    stars = [("t", str(s)) for s in (10, 2, 1, 2)]
    _, labels, classes = own_data.read_file(write(str(tmp_path / "s.csv"), stars, ("text", "label")))
    assert classes == ["1", "2", "10"] and labels == [2, 1, 0, 1]          # whole numbers: classes, in order
    scores = [("t", "0.5"), ("t", "4"), ("t", "2.25")]
    _, labels, classes = own_data.read_file(write(str(tmp_path / "r.jsonl"), scores, ("text", "label")))
    assert classes is None and labels == [0.5, 4.0, 2.25]                  # a fraction: regression
    dev = write(str(tmp_path / "dev.csv"), [("t", "2"), ("t", "3")], ("text", "label"))
    with pytest.raises(errors.BadInput, match=r"dev.csv, line 3: label '3' is not one of the training labels"):
        own_data.read_file(dev, classes=["1", "2", "10"])
    with pytest.raises(errors.BadInput, match=r"line 2: label 'x' is not a finite number \(the task is regression\)"):
        own_data.read_file(write(str(tmp_path / "x.csv"), [("t", "x")], ("text", "label")), classes=None)


@pytest.mark.parametrize("name,content,says", [
    ("d.csv", "text,label\nfine,1,extra\n", "d.csv, line 2: expected 2 fields as the header has, found 3"),
    ("d.csv", "text,label\nfine\n", "d.csv, line 2: expected 2 fields as the header has, found 1"),
    ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b",\n', "d.jsonl, line 2: not JSON"),
    ("d.jsonl", '["a", 1]\n', "d.jsonl, line 1: a JSON object is expected, found list"),
    ("d.txt", "text,label\n", "d.txt: unknown format .txt: name it .csv, .tsv or .jsonl"),
    ("d.csv", "text,label\n", "d.csv holds no examples"),
    ("d.csv", b"text,label\ncaf\xe9,1\n", "d.csv: not UTF-8 text"),
])
def test_bad_files_name_file_and_line(tmp_path, name, content, says):
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(errors.InputError) as e:
        own_data.read_file(str(path))
    assert says in str(e.value)
    with pytest.raises(errors.MissingInput, match="not found"):
        own_data.read_file(str(tmp_path / "missing.csv"))
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(errors.BadInput, match="folder.csv is a folder: pass the path of a .csv"):
        own_data.read_file(str(tmp_path / "folder.csv"))


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The tiny SST-2 as your own files: train as CSV with string labels, dev as JSON Lines."""
    root = tmp_path_factory.mktemp("own")
    glue, model = write_glue(str(root / "glue")), write_model(str(root / "model"))
    files = {}
    for split, ext in (("train", ".csv"), ("dev", ".jsonl")):
        texts, labels = glue_files.read_task("sst2", split, glue)
        files[split] = write(str(root / f"{split}{ext}"), [(t, "positive" if y else "negative") for t, y in zip(texts, labels)],
                             ("review", "label"))
    return glue, model, files, root


def test_train_and_evaluate_own_files(own, capsys):
    glue, model, files, root = own
    out = str(root / "run")
    res = train.main(["--train-file", files["train"], "--dev-file", files["dev"], "--text-column", "review",
                      "--model", model, "--device", "cpu", "--max-steps", "3", "--batch-size", "8", "--out-dir", out])
    glue_run = train.main(["--task", "sst2", "--data-dir", glue, "--model", model, "--device", "cpu",
                           "--max-steps", "3", "--batch-size", "8", "--out-dir", str(root / "glue-run")])
    saved = json.load(open(os.path.join(out, "results.json")))
    glue_saved = json.load(open(os.path.join(root, "glue-run", "results.json")))
    assert set(saved) == set(glue_saved) and set(res) == set(glue_run)        # the same fields as a GLUE run
    assert saved["task"] == "custom" and saved["metric_names"] == ["accuracy"] and saved["num_examples"] == 12
    assert saved["args"]["max_length"] == 128 and saved["args"]["skim_coefficient"] == 0.3   # Table 2's median
    config = json.load(open(os.path.join(out, "checkpoint", "config.json")))
    assert config["id2label"] == {"0": "negative", "1": "positive"} and config["finetuning_task"] == "custom"
    again = train.main(["--eval-only", "--checkpoint", os.path.join(out, "checkpoint"), "--dev-file", files["dev"],
                        "--text-column", "review", "--device", "cpu", "--out-dir", out])
    assert again["metrics"] == saved["metrics"] and os.path.isfile(os.path.join(out, "eval-results.json"))


def test_own_regression_file(own, tmp_path):
    _, model, _, _ = own
    rows = [(f"a film {'very ' * (i % 4)}good", f"{i % 5 + 0.5}") for i in range(16)]
    train_file, dev_file = write(str(tmp_path / "t.tsv"), rows, ("text", "score")), \
        write(str(tmp_path / "d.tsv"), rows[:6], ("text", "score"))
    res = train.main(["--train-file", train_file, "--dev-file", dev_file, "--label-column", "score", "--model", model,
                      "--device", "cpu", "--max-steps", "2", "--batch-size", "8", "--out-dir", str(tmp_path / "run")])
    assert list(res["metrics"]) == ["pearson", "spearman"]


@pytest.mark.parametrize("extra,says", [
    (["--task", "sst2", "--train-file", "t.csv", "--dev-file", "d.csv"], "pass a GLUE task or your own files, not both"),
    (["--train-file", "t.csv"], "pass --task (a GLUE task), or --train-file and --dev-file"),
    (["--dev-file", "d.csv"], "pass --task (a GLUE task), or --train-file and --dev-file"),
    (["--task", "sst2", "--label-column", "y"], "name the columns of --train-file/--dev-file; --task sst2 has its own"),
    (["--train-file", "t.csv", "--dev-file", "d.csv", "--data-dir", "g"], "--data-dir holds GLUE tasks"),
])
def test_own_data_argument_mistakes(tmp_path, capsys, extra, says):
    with pytest.raises(SystemExit):
        train.main([*extra, "--out-dir", str(tmp_path / "o")])
    assert says in capsys.readouterr().err


def test_label_kind_is_decided_on_values(tmp_path):
    """Numbers are compared as numbers: "1" and "1.0" are one class; a fraction makes regression;
    a typo among numbers, a single class, a list for a text: one line naming the file and line."""
    labels = lambda ys: [(f"text {i}", y) for i, y in enumerate(ys)]
    _, y, classes = own_data.read_file(write(str(tmp_path / "a.csv"), labels(["1", "1.0", "0", "01"]), ("text", "label")))
    assert classes == ["0", "1"] and y == [1, 1, 0, 1]
    _, y, classes = own_data.read_file(write(str(tmp_path / "b.csv"), labels(["0", "0.000", "2.5"]), ("text", "label")))
    assert classes is None and y == [0.0, 0.0, 2.5]                                       # STS-B's own 0 and 0.000
    with pytest.raises(errors.InputError, match=r"b2.csv, line 3: label 'n/a' is not a number, while other labels are"):
        own_data.read_file(write(str(tmp_path / "b2.csv"), labels(["0.5", "n/a", "2.5"]), ("text", "label")))
    with pytest.raises(errors.InputError, match=r"c.csv: every label is 'pos'; a classifier needs at least two classes"):
        own_data.read_file(write(str(tmp_path / "c.csv"), labels(["pos", "pos"]), ("text", "label")))
    _, y, classes = own_data.read_file(str(tmp_path / "a.csv"), task_type="regression")   # the override
    assert classes is None and y == [1.0, 1.0, 0.0, 1.0]
    _, y, classes = own_data.read_file(str(tmp_path / "b2.csv"), task_type="classification")
    assert classes == ["0.5", "2.5", "n/a"]
    with pytest.raises(errors.InputError, match=r"d.jsonl, line 1: column 'text' holds a JSON list"):
        own_data.read_file(write(str(tmp_path / "d.jsonl"), [(["a", "good"], "1"), ("b", "0")], ("text", "label")))
    with pytest.raises(errors.InputError, match=r"e.csv, line 1: the header names 'sentence' twice"):
        own_data.read_file(write(str(tmp_path / "e.csv"), [("a", "b", "1")], ("sentence", "sentence", "label")))


def test_run_says_its_classes_and_task_type_needs_a_train_file(own, tmp_path, capsys):
    _, model, _, _ = own
    train_file = write(str(tmp_path / "t.csv"), [(f"text {i}", ["1", "1.0", "0"][i % 3]) for i in range(12)],
                       ("text", "label"))
    res = train.main(["--train-file", train_file, "--dev-file", train_file, "--model", model, "--device", "cpu",
                      "--max-steps", "2", "--out-dir", str(tmp_path / "out")])
    assert res["classes"] == ["0", "1"] and "classes 0, 1" in capsys.readouterr().out
    assert json.load(open(tmp_path / "out" / "results.json"))["classes"] == ["0", "1"]
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "sst2", "--task-type", "regression"])
    assert "--task-type says what the labels of --train-file are; --task sst2 has its own" in capsys.readouterr().err


def test_sentence1_and_sentence2_are_text_columns(tmp_path):
    """As GLUE's files and run_glue name them."""
    texts, _, _ = own_data.read_file(write(str(tmp_path / "p.csv"), [("a", "b", "0"), ("c", "d", "1")],
                                           ("sentence1", "sentence2", "label")))
    assert texts == [("a", "b"), ("c", "d")]


@pytest.mark.slow
def test_bench_times_an_own_data_checkpoint(own, tmp_path):
    """tools/bench.py --dev-file: a checkpoint trained on your own files, timed on their texts."""
    from tools import bench
    glue, model, files, _ = own
    train.main(["--train-file", files["train"], "--dev-file", files["dev"], "--text-column", "review", "--model", model,
                "--device", "cpu", "--max-steps", "2", "--out-dir", str(tmp_path / "o")])
    ckpt = str(tmp_path / "o" / "checkpoint")
    rows = bench.main(["--checkpoint", ckpt, "--dev-file", files["dev"], "--text-column", "review", "--batch-sizes", "1,4",
                       "--num-examples", "8", "--repeats", "1", "--warmup", "0", "--no-reference", "--no-train",
                       "--device", "cpu"])
    assert [r["batch"] for r in rows] == [1, 4] and all(r["measured"] > 0 for r in rows)
    with pytest.raises(SystemExit):
        bench.parse_args(["--checkpoint", ckpt])                       # custom: its texts need --dev-file


def test_class_labels_are_numbers_by_their_exact_value(tmp_path):
    """--task-type classification: "0.5" and "0.50" are one class; integer ids of 20 digits that differ in
    their last digit are two (as floats they were one, merging the classes silently)."""
    labels = lambda ys: [(f"text {i}", y) for i, y in enumerate(ys)]
    _, y, classes = own_data.read_file(write(str(tmp_path / "a.csv"), labels(["0.5", "0.50", "1.5"]), ("text", "label")),
                                       task_type="classification")
    assert classes == ["0.5", "1.5"] and y == [0, 0, 1]
    ids = ["12345678901234567890", "12345678901234567891", "12345678901234567890"]
    _, y, classes = own_data.read_file(write(str(tmp_path / "b.csv"), labels(ids), ("text", "label")))
    assert classes == ids[:2] and y == [0, 1, 0]


def test_tsv_quotes_are_text(tmp_path):
    """A TSV file has no quoting, as GLUE's: a balanced quote stays in the text (csv's default removed it,
    '"Hi" she said .' read as 'Hi she said .'), an unbalanced one is a character, not an unclosed field."""
    path = tmp_path / "d.tsv"
    path.write_text('sentence\tlabel\n"Hi" she said .\tpos\nan "odd one\tneg\nplain\tpos\n')
    texts, labels, classes = own_data.read_file(str(path))
    assert texts == ['"Hi" she said .', 'an "odd one', "plain"] and labels == [1, 0, 1]
