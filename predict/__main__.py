"""
Predictions for a file of texts with a checkpoint of train.py, one JSON line each:
{"index", "text" (and "pair"), "label", "scores", "kept"}.

    python -m predict --checkpoint out/sst2/checkpoint --input texts.txt --out predictions.jsonl
    python -m predict --checkpoint out/mrpc/checkpoint --input dev.tsv --text-column sentence1 --out p.jsonl

--input: .txt (one text per line), or .csv, .tsv (a header row) or .jsonl, read as train.py reads
your own files (the same default columns; a label column, if any, is not needed and not read).
"""

import argparse
import json
import os
import sys

if __package__ in (None, ""):   # run as `python predict/__main__.py`: the project's modules are one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cli.args import OneLineParser, POSITIVE_INT, check_device
from cli.errors import BadInput, MissingInput, run
from storage.files import atomic_write_text, output_problem
from predict import Classifier
from tasks import own_data


def read_texts(path, text_column=None, pair_column=None):
    """The texts of --input: lines of a .txt, or the text (and pair) columns of a CSV, TSV or JSON Lines file."""
    if path.endswith(".txt"):
        if not os.path.isfile(path):
            raise MissingInput(f"--input {path} not found: pass a .txt, .csv, .tsv or .jsonl file")
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    rows = list(own_data.read_rows(path))
    if not rows:
        raise BadInput(f"--input {path} holds no texts")
    text, pair = own_data.text_columns(path, list(rows[0][1]), text_column, pair_column, None)
    return [str(r[text]) if pair is None else (str(r[text]), str(r[pair])) for _, r in rows]


def main(argv=None):
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint/ folder train.py wrote")
    p.add_argument("--input", required=True, help="the texts: .txt (a line each), .csv, .tsv or .jsonl")
    p.add_argument("--out", required=True, help="the JSON Lines file to write")
    p.add_argument("--text-column", help="the text's column (default: sentence, sentence1 or text)")
    p.add_argument("--text-pair-column", help="the second text's column (default: sentence2 or text_pair if present)")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=32)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if there is one)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    a = p.parse_args(argv)
    if a.device:
        check_device(p, a.device)
    problem = output_problem("--out", a.out, a.overwrite)
    if problem:
        p.error(problem)
    texts = read_texts(a.input, a.text_column, a.text_pair_column)
    clf = Classifier.load(a.checkpoint, a.device, a.batch_size)
    rows = []
    for i, (t, pr) in enumerate(zip(texts, clf(texts))):
        text = dict(text=t) if isinstance(t, str) else dict(text=t[0], pair=t[1])
        rows.append(json.dumps(dict(index=i, **text, label=pr.label, scores=pr.scores, kept=pr.kept)) + "\n")
    atomic_write_text(a.out, "".join(rows))
    print(f"wrote {len(rows)} predictions to {a.out}")
    return rows


if __name__ == "__main__":
    run(main)
