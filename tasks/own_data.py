"""
Your own data (train.py --train-file, --dev-file): a CSV or TSV file whose header row names the
columns, or a JSON Lines file (one object per line).

    read_file(path, text, pair, label, classes) -> texts, labels, label strings
"""

import csv
import json
import math
import os

from cli.errors import BadInput, MissingInput
from tasks.glue import as_number


TEXT_COLUMNS, PAIR_COLUMNS = ("sentence", "text"), ("sentence2", "text_pair")   # defaults, first present
FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".json": None}   # a .json file is JSON Lines too


def read_file(path, text=None, pair=None, label="label", classes="infer"):
    """Texts and labels of a CSV or TSV file (a header row names the columns) or a JSON Lines file
    (one object per line). text and pair name the columns (default: the first of TEXT_COLUMNS, and
    of PAIR_COLUMNS if present). classes: "infer" (a training file: string labels become classes,
    sorted; if every label is a number and some are not whole, it is regression), a list of label
    strings (the dev file, or a checkpoint's id2label), or None (regression). Returns (texts,
    labels, classes), labels as read_task gives them. A bad row is an error naming file and line."""
    rows = list(_read_rows(path))
    if not rows:
        raise BadInput(f"{path} holds no examples")
    keys = list(rows[0][1])
    text = text or next((c for c in TEXT_COLUMNS if c in keys), None)
    pair = pair or next((c for c in PAIR_COLUMNS if c in keys), None)
    if text is None:
        raise BadInput(f"{path} has no {' or '.join(TEXT_COLUMNS)} column: name the text's with --text-column "
                       f"(its columns: {', '.join(map(str, keys))})")
    columns = (("--text-column", text), ("--text-pair-column", pair), ("--label-column", label))
    for flag, column in columns:
        if column is not None and column not in keys:
            raise BadInput(f"{path} has no column {column!r} ({flag}; its columns: {', '.join(map(str, keys))})")
    texts, raw = [], []
    for line, row in rows:
        for flag, column in columns:
            if column is not None and (row.get(column) is None or row.get(column) == ""):
                raise BadInput(f"{path}, line {line}: no value in column {column!r} ({flag}; the columns: "
                               f"{', '.join(map(str, row))})")
        texts.append(str(row[text]) if pair is None else (str(row[text]), str(row[pair])))
        raw.append(str(row[label]).strip())
    numbers = [n if n is not None and math.isfinite(n) else None for n in map(as_number, raw)]
    if classes == "infer":
        whole = all(n is not None and n == int(n) for n in numbers)   # 0/1, 1-5 stars: classes
        if all(n is not None for n in numbers) and not whole:
            classes = None   # regression
        else:
            classes = sorted(set(raw), key=(lambda v: (float(v), v)) if whole else None)
    labels = []
    for (line, _), v, n in zip(rows, raw, numbers):
        if classes is None and n is None:
            raise BadInput(f"{path}, line {line}: label {v!r} is not a finite number (the task is regression)")
        if classes is not None and v not in classes:
            raise BadInput(f"{path}, line {line}: label {v!r} is not one of the training labels {classes}")
        labels.append(n if classes is None else classes.index(v))
    return texts, labels, classes


def _read_rows(path):
    """(line number, dict) for each row; an unreadable file or row is one clear error."""
    fmt = os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        raise BadInput(f"{path} is a folder: pass the path of a .csv, .tsv or .jsonl file")
    if fmt not in FORMATS:
        raise BadInput(f"{path}: unknown format {fmt or '(no extension)'}: name it .csv, .tsv or .jsonl (JSON Lines)")
    if not os.path.isfile(path):
        raise MissingInput(f"{path} not found: pass the path of a .csv, .tsv or .jsonl file")
    csv.field_size_limit(1 << 30)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            if FORMATS[fmt] is not None:
                reader = csv.DictReader(f, delimiter=FORMATS[fmt])
                for row in reader:
                    if None in row or None in row.values():
                        raise BadInput(f"{path}, line {reader.line_num}: expected {len(reader.fieldnames)} "
                                       f"fields as the header has, found {len(row) - 1 + len(row.get(None, []))}")
                    yield reader.line_num, row
                return
            for line, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as e:
                    raise BadInput(f"{path}, line {line}: not JSON ({e.msg}); a JSON Lines file has one object per line") from None
                if not isinstance(row, dict):
                    raise BadInput(f"{path}, line {line}: a JSON object is expected, found {type(row).__name__}")
                yield line, row
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}): save it as UTF-8") from None
    except csv.Error as e:
        raise BadInput(f"{path}: {e}") from None
