"""
Your own data (train.py --train-file, --dev-file): a CSV or TSV file whose header row names the
columns, or a JSON Lines file (one object per line).

    read_file(path, text, pair, label, classes) -> texts, labels, label strings
"""

import csv
import decimal
import json
import math
import os

from cli.errors import BadInput, MissingInput
from tasks.glue import as_number


TEXT_COLUMNS, PAIR_COLUMNS = ("sentence", "sentence1", "text"), ("sentence2", "text_pair")   # defaults, first present
FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".json": None}   # a .json file is JSON Lines too


def read_file(path, text=None, pair=None, label="label", classes="infer", task_type=None):
    """Texts and labels of a CSV or TSV file (a header row names the columns) or a JSON Lines file
    (one object per line). text and pair name the columns (default: the first of TEXT_COLUMNS, and
    of PAIR_COLUMNS if present). classes: "infer" (a training file: label_kind decides), a list of
    label strings (the dev file, or a checkpoint's id2label), or None (regression); task_type
    ("classification" or "regression") overrides the inference. Returns (texts, labels, classes),
    labels as glue.read_task gives them. A bad row is an error naming file and line."""
    rows = list(read_rows(path))
    if not rows:
        raise BadInput(f"{path} holds no examples")
    text, pair = text_columns(path, list(rows[0][1]), text, pair, label)
    texts, raw = [], []
    for line, row in rows:
        for flag, column in (("--text-column", text), ("--text-pair-column", pair), ("--label-column", label)):
            if column is not None and (row.get(column) is None or row.get(column) == ""):
                raise BadInput(f"{path}, line {line}: no value in column {column!r} ({flag}; the columns: "
                               f"{', '.join(map(str, row))})")
            if column is not None and isinstance(row[column], (list, dict)):
                raise BadInput(f"{path}, line {line}: column {column!r} holds a JSON {type(row[column]).__name__}, "
                               "not a string or a number: join it into one text first")
        texts.append(str(row[text]) if pair is None else (str(row[text]), str(row[pair])))
        raw.append(str(row[label]).strip())
    if classes == "infer":
        classes = label_kind(path, [line for line, _ in rows], raw, task_type)
    labels = []
    for (line, _), v in zip(rows, raw):
        n = as_number(v)
        if classes is None and (n is None or not math.isfinite(n)):
            raise BadInput(f"{path}, line {line}: label {v!r} is not a finite number (the task is regression)")
        c = v if classes is None or v in classes else class_name(v)
        if classes is not None and c not in classes:
            raise BadInput(f"{path}, line {line}: label {v!r} is not one of the training labels {classes}")
        labels.append(n if classes is None else classes.index(c))
    return texts, labels, classes


def text_columns(path, keys, text, pair, label):
    """The text and pair columns, the defaults filled in; a column the file lacks is named."""
    text = text or next((c for c in TEXT_COLUMNS if c in keys), None)
    pair = pair or next((c for c in PAIR_COLUMNS if c in keys), None)
    if text is None:
        raise BadInput(f"{path} has no {', '.join(TEXT_COLUMNS[:-1])} or {TEXT_COLUMNS[-1]} column: name the text's with --text-column "
                       f"(its columns: {', '.join(map(str, keys))})")
    for flag, column in (("--text-column", text), ("--text-pair-column", pair), ("--label-column", label)):
        if column is not None and column not in keys:
            raise BadInput(f"{path} has no column {column!r} ({flag}; its columns: {', '.join(map(str, keys))})")
    return text, pair


def class_name(v):
    """A label's class: a number by its exact value ("1", "1.0" and "01" are one class, "1"; "0.5" and
    "0.50" one, "0.5"; ids of 20 digits stay apart), any other string as it is."""
    try:
        d = decimal.Decimal(v.strip())
    except decimal.InvalidOperation:
        return v
    if not d.is_finite():
        return v
    return str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")


def label_kind(path, lines, raw, task_type=None):
    """The classes of a training file's labels (sorted, numbers by value), or None for regression,
    decided on the values: all numbers and some fractional is regression; all whole numbers, or all
    strings, are classes; a non-number among numbers is an error naming its line, as is a single
    class. task_type "classification" or "regression" overrides the inference."""
    numbers = [as_number(v) for v in raw]
    numeric = [n is not None and math.isfinite(n) for n in numbers]
    if task_type == "regression" or (task_type is None and all(numeric) and any(n != int(n) for n in numbers)):
        return None
    if task_type is None and any(numeric) and not all(numeric):
        line, v = next((line, v) for line, v, ok in zip(lines, raw, numeric) if not ok)
        raise BadInput(f"{path}, line {line}: label {v!r} is not a number, while other labels are: fix it, or pass "
                       "--task-type classification to treat every label as a class name")
    names = sorted({class_name(v) for v in raw}, key=lambda c: (0, decimal.Decimal(c), c) if as_number(c) is not None
                   and math.isfinite(as_number(c)) else (1, 0, c))
    if len(names) < 2:
        raise BadInput(f"{path}: every label is {names[0]!r}; a classifier needs at least two classes "
                       "(a numeric target: --task-type regression)")
    return names


def read_rows(path):
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
                # TSV has no quoting (GLUE's reader neither): a '"' in a text is a character of the text
                quoting = csv.QUOTE_NONE if fmt == ".tsv" else csv.QUOTE_MINIMAL
                reader = csv.DictReader(f, delimiter=FORMATS[fmt], quoting=quoting)
                twice = sorted({c for c in reader.fieldnames or [] if reader.fieldnames.count(c) > 1})
                if twice:
                    raise BadInput(f"{path}, line 1: the header names {', '.join(map(repr, twice))} twice; "
                                   "name each column once")
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
