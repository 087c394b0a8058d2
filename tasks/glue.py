"""
GLUE's files: the nine tasks' TSV layouts (columns, label strings, dev splits) and their reader.

    read_task(task, split, data_dir)       -> texts and labels, from <data_dir>/<TASK>/<split>.tsv

References:
  - The GLUE download script (download_glue_data.py, W4ngatang's gist): file layouts and archives.
"""

import csv
import math
import os
from dataclasses import dataclass

from cli.errors import BadInput, MissingInput


@dataclass(frozen=True)
class Layout:
    folder: str                 # folder name in the GLUE layout
    text_a: int                 # column of the first sentence
    text_b: int | None          # column of the second sentence, None for single-sentence tasks
    label: int                  # column of the label (-1: the last one)
    labels: tuple | None        # label strings in class order; None: regression (a float)
    header: bool = True
    dev: tuple = ("dev",)       # dev split file names


# Columns as the GLUE download script writes them (shared/data/glue/README.md).
GLUE = {
    "cola": Layout("CoLA", 3, None, 1, ("0", "1"), header=False),
    "sst2": Layout("SST-2", 0, None, 1, ("0", "1")),
    "mrpc": Layout("MRPC", 3, 4, 0, ("0", "1")),
    "qqp": Layout("QQP", 3, 4, 5, ("0", "1")),
    "stsb": Layout("STS-B", 7, 8, 9, None),
    "mnli": Layout("MNLI", 8, 9, -1, ("contradiction", "entailment", "neutral"),
                   dev=("dev_matched", "dev_mismatched")),
    "qnli": Layout("QNLI", 1, 2, 3, ("entailment", "not_entailment")),
    "rte": Layout("RTE", 1, 2, 3, ("entailment", "not_entailment")),
    "wnli": Layout("WNLI", 1, 2, 3, ("0", "1")),
}


def layout(task):
    if task not in GLUE:
        raise ValueError(f"unknown task {task!r}: choose one of {', '.join(GLUE)}")
    return GLUE[task]


# ----------------------------------------------------------------------------------------------
# Reading TSV files


def read_task(task, split, data_dir):
    """Texts and labels of <data_dir>/<TASK>/<split>.tsv. A malformed row is an error naming the
    file and the line. Returns (texts, labels): texts a list of str or (str, str), labels a list
    of int (classification) or float (regression)."""
    lay = layout(task)
    path = os.path.join(data_dir, lay.folder, f"{split}.tsv")
    if not os.path.isfile(path):
        raise MissingInput(f"{path} not found: --data-dir must hold the GLUE layout "
                           f"(<data-dir>/{lay.folder}/{split}.tsv), or leave it out to download")
    csv.field_size_limit(1 << 30)   # a very long field is text like any other; tokenisation truncates it
    try:
        texts, labels = _parse_tsv(path, lay)
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}): save it as UTF-8") from None
    except csv.Error as e:
        raise BadInput(f"{path}: {e}") from None
    except OSError as e:   # (unreadable: permissions, a folder of that name)
        raise BadInput(f"{path} cannot be read ({e.strerror}): make it readable, or pass another --data-dir") from None
    if not texts:
        raise BadInput(f"{path} holds no examples")
    return texts, labels


def _parse_tsv(path, lay):
    texts, labels = [], []
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        width = None
        for line, row in enumerate(rows, start=1):
            if not any(field.strip() for field in row):   # a blank line (a trailing one, say) holds no example
                continue
            if line == 1 and lay.header:
                width = len(row)
                label = row[lay.label] if len(row) > max(lay.label, 0) else ""
                if label in (lay.labels or ()) or (lay.labels is None and as_number(label) is not None):
                    raise BadInput(f"{path}, line 1 is an example ({label!r} is a label), not the header row "
                                   "the GLUE layout has: restore the header line (re-download the file)")
                continue
            where = f"{path}, line {line}"
            if width is None:
                width = len(row)
            if len(row) != width or len(row) <= max(lay.text_a, lay.text_b or 0, lay.label):
                raise BadInput(f"{where}: expected {width} tab-separated fields, found {len(row)} "
                               "(a tab or newline inside a field? re-download the file)")
            raw = row[lay.label]
            if lay.labels is None:
                try:
                    value = float(raw)
                except ValueError:
                    raise BadInput(f"{where}: label {raw!r} is not a number") from None
                if not math.isfinite(value):
                    raise BadInput(f"{where}: label {raw!r} is not a finite number")
                labels.append(value)
            elif raw in lay.labels:
                labels.append(lay.labels.index(raw))
            else:
                raise BadInput(f"{where}: label {raw!r} is not one of {lay.labels}")
            texts.append(row[lay.text_a] if lay.text_b is None else (row[lay.text_a], row[lay.text_b]))
    return texts, labels


def as_number(text):
    """The float a label reads as, or None (not a number); nan and inf read as numbers."""
    try:
        return float(text)
    except ValueError:
        return None
