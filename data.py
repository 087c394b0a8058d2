"""
GLUE data: TSV readers for the nine tasks, tokenisation with `tokenizers`, padded batches, and
fetching data and checkpoints (online) or finding them on disk (offline).

    read_task(task, split, data_dir)       -> texts and labels, from <data_dir>/<TASK>/<split>.tsv
    load_tokenizer(model_dir)              -> a `tokenizers.Tokenizer` (tokenizer.json, else vocab.txt)
    encode(tokenizer, texts, max_length)   -> token ids and token types, [CLS] a [SEP] (b [SEP])
    batches(examples, batch_size, ...)     -> dicts of tensors, padded to the longest in the batch
    glue_dir(task, data_dir, cache)        -> a folder holding the task, downloaded if need be
    model_dir(name_or_path, cache)         -> a checkpoint folder, downloaded from the hub if need be

Downloads use the standard library only, go to a temporary file that is renamed into place once
its size is checked, and never leave a half-written file behind.

References:
  - The GLUE download script (download_glue_data.py, W4ngatang's gist): file layouts and archives.
"""

import csv
import json
import math
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

from files import atomic_write, unwritable


class InputError(Exception):
    """Something the user gave is wrong or missing (a file, a folder, a value). The scripts print
    its message as one line naming the file or flag and the fix, and exit; any other exception is
    a bug and keeps its traceback. The subclasses are also the built-in error they describe."""


class MissingInput(InputError, FileNotFoundError):
    pass


class BadInput(InputError, ValueError):
    pass


class FetchFailed(InputError, RuntimeError):
    pass


def cli(main):
    """Run a script's main(): an InputError ends in `error: ...` on one line, no traceback."""
    try:
        return main()
    except InputError as e:
        raise SystemExit(f"error: {e}") from None


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
    if not texts:
        raise BadInput(f"{path} holds no examples")
    return texts, labels


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _parse_tsv(path, lay):
    texts, labels = [], []
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        width = None
        for line, row in enumerate(rows, start=1):
            if line == 1 and lay.header:
                width = len(row)
                label = row[lay.label] if len(row) > max(lay.label, 0) else ""
                if label in (lay.labels or ()) or (lay.labels is None and _is_number(label)):
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


# ----------------------------------------------------------------------------------------------
# Tokenising


def load_tokenizer(model_dir):
    """The checkpoint's tokenizer.json; else WordPiece from its vocab.txt, lower-casing as its
    tokenizer_config.json says (do_lower_case, default True: uncased BERT)."""
    tj, vocab = os.path.join(model_dir, "tokenizer.json"), os.path.join(model_dir, "vocab.txt")
    if os.path.isfile(tj):
        try:
            tok = Tokenizer.from_file(tj)
        except Exception as e:   # the tokenizers library raises a bare Exception for a bad file
            raise BadInput(f"{tj} is not a valid tokenizer file ({e}): restore it from the model's folder") from None
    elif os.path.isfile(vocab):
        lower = True
        cfg = os.path.join(model_dir, "tokenizer_config.json")
        if os.path.isfile(cfg):
            with open(cfg) as f:
                lower = json.load(f).get("do_lower_case", True)
        tok = BertWordPieceTokenizer(vocab, lowercase=lower)._tokenizer
    else:
        raise MissingInput(f"{model_dir} has neither tokenizer.json nor vocab.txt: "
                                "the checkpoint folder needs one of them")
    tok.no_padding()
    return tok


def encode(tokenizer, texts, max_length):
    """[CLS] a [SEP] (b [SEP]) ids and token types, truncated to max_length (longest first)."""
    tokenizer.enable_truncation(max_length, strategy="longest_first")
    encs = tokenizer.encode_batch(texts)
    return [(e.ids, e.type_ids) for e in encs]


def num_batches(n, batch_size, world=1):
    """How many batches `batches` yields per epoch on each of `world` processes."""
    return math.ceil((n - n % world) // world / batch_size)


def check_encoded(examples, tokenizer, vocab_size, model_dir):
    """Every example must start with [CLS] (the classifier reads position 0) and use ids the model
    has: a tokenizer without its post-processor, or one from another model, fails loudly here."""
    cls = tokenizer.token_to_id("[CLS]")
    if cls is None or any(not ids or ids[0] != cls for ids, _ in examples):
        raise BadInput(f"{model_dir}: its tokenizer does not start inputs with [CLS] (no post_processor in "
                       "tokenizer.json?): use the tokenizer that came with the model")
    top = max(max(ids) for ids, _ in examples)
    if top >= vocab_size:
        raise BadInput(f"{model_dir}: the tokenizer makes id {top}, but config.json has vocab_size {vocab_size}: "
                       "the tokenizer and the weights are from different models")


def batches(examples, labels, batch_size, shuffle=False, seed=0, epoch=0, rank=0, world=1):
    """Yield dicts of tensors: input_ids, attention_mask, token_type_ids (B, T) padded to the
    longest sequence of the batch (pad id 0), and labels (B,). Shuffling is deterministic in
    (seed, epoch); with world > 1 each rank takes every world-th example."""
    order = np.arange(len(examples))
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(len(examples))
    # every rank must take the same number of steps (DDP all-reduces each one): drop the remainder
    order = order[:len(order) - len(order) % world][rank::world]
    regression = isinstance(labels[0], float)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        T = max(len(examples[i][0]) for i in idx)
        ids = torch.zeros(len(idx), T, dtype=torch.long)
        types = torch.zeros(len(idx), T, dtype=torch.long)
        mask = torch.zeros(len(idx), T, dtype=torch.long)
        for row, i in enumerate(idx):
            n = len(examples[i][0])
            ids[row, :n] = torch.tensor(examples[i][0])
            types[row, :n] = torch.tensor(examples[i][1])
            mask[row, :n] = 1
        y = torch.tensor([labels[i] for i in idx], dtype=torch.float32 if regression else torch.long)
        yield {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": y}


# ----------------------------------------------------------------------------------------------
# Fetching data and checkpoints

HUB_URL = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
GLUE_URL = os.environ.get("GLUE_URL", "https://dl.fbaipublicfiles.com")
ARCHIVES = {"cola": "glue/data/CoLA.zip", "sst2": "glue/data/SST-2.zip", "qqp": "glue/data/QQP-clean.zip",
            "stsb": "glue/data/STS-B.zip", "mnli": "glue/data/MNLI.zip", "qnli": "glue/data/QNLIv2.zip",
            "rte": "glue/data/RTE.zip", "wnli": "glue/data/WNLI.zip"}
MRPC_FILES = {"train": "senteval/senteval_data/msr_paraphrase_train.txt", "dev_ids": "glue/data/mrpc_dev_ids.tsv"}
MODEL_FILES = ("config.json", "model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")   # the first that exists is enough
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "transkimmer")


def download(url, dest, timeout=60):
    """Fetch url to dest atomically (files.atomic_write): its size checked against the server's
    Content-Length and its content against its name (check_download) before it is renamed into
    place. Nothing is left at dest (or beside it) on failure."""
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)

    def fetch(tmp):
        with open(tmp, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
            expected = r.headers.get("Content-Length")
            shutil.copyfileobj(r, f, length=1 << 20)
        got = os.path.getsize(tmp)
        if expected is not None and got != int(expected):
            raise OSError(f"download of {url} is incomplete: {got} of {expected} bytes")
        check_download(tmp, dest, url)
    atomic_write(dest, fetch)
    return dest


def check_download(path, dest, url):
    """Nothing enters the cache unless it is what its name says: a captive portal or an error page
    answering 200 with HTML would otherwise poison every later run, online too."""
    name = os.path.basename(dest)
    try:
        if name.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                json.load(f)
        elif name.endswith(".safetensors"):
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                if not 2 <= n <= os.path.getsize(path) - 8:
                    raise ValueError("no safetensors header")
                json.loads(f.read(n))
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                z.namelist()
        else:   # text files (vocab.txt, the MRPC files): no HTML page
            with open(path, "rb") as f:
                if f.read(512).lstrip().lower().startswith((b"<!doctype html", b"<html")):
                    raise ValueError("an HTML page")
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile) as e:
        raise OSError(f"{url} did not send a valid {name} ({e}): a captive portal or an error page? "
                      "nothing was cached") from None


def model_dir(name_or_path, cache_dir=DEFAULT_CACHE):
    """A local checkpoint folder as it is; otherwise a hub name (e.g. bert-base-uncased) fetched
    once into cache_dir/models/<name>."""
    if os.path.isdir(name_or_path):
        return name_or_path
    if os.path.exists(name_or_path):
        raise MissingInput(f"--model {name_or_path} is a file: pass the folder that holds config.json, "
                           "model.safetensors and tokenizer.json")
    first = name_or_path.split("/")[0]
    if name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1 or \
            ("/" in name_or_path and os.path.isdir(first)):   # a path (with a typo), not a hub name
        raise MissingInput(f"model folder {name_or_path!r} does not exist: pass a folder holding "
                                "config.json, model.safetensors and tokenizer.json, or a hub name")
    dest = os.path.join(cache_dir, "models", name_or_path.replace("/", "--"))
    if all(os.path.isfile(os.path.join(dest, f)) for f in MODEL_FILES) and \
            any(os.path.isfile(os.path.join(dest, f)) for f in TOKENIZER_FILES):
        return dest
    base = f"{HUB_URL}/{name_or_path}/resolve/main"
    _check_cache(dest, f"model {name_or_path!r}", "--model with a local folder")
    try:
        for f in MODEL_FILES:
            download(f"{base}/{f}", os.path.join(dest, f))
        for f in TOKENIZER_FILES:
            try:
                download(f"{base}/{f}", os.path.join(dest, f))
                break
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    raise
        else:
            raise MissingInput(f"{base} has neither tokenizer.json nor vocab.txt")
    except (urllib.error.URLError, OSError) as e:
        raise FetchFailed(f"could not fetch model {name_or_path!r} from {HUB_URL} ({e}). Offline? "
                           "Pass --model with a local folder holding config.json, model.safetensors "
                           "and tokenizer.json (or vocab.txt)") from None
    return dest


def _check_cache(folder, what, local):
    """A download needs a writable cache; without one it must not be blamed on the network."""
    if unwritable(folder):
        raise MissingInput(f"--cache-dir: {unwritable(folder)} is not writable, so {what} cannot be "
                           f"downloaded into it: pass --cache-dir with a folder you can write to, or {local}")


def glue_dir(task, data_dir=None, cache_dir=DEFAULT_CACHE):
    """The folder in the GLUE layout that holds `task`: data_dir when given (it must hold the
    task), else cache_dir/glue, where the task is downloaded once as the GLUE script does."""
    lay = layout(task)
    if data_dir is not None:
        if not os.path.isdir(os.path.join(data_dir, lay.folder)):
            raise MissingInput(f"{os.path.join(data_dir, lay.folder)} not found: --data-dir must hold "
                                    f"the GLUE layout (<data-dir>/{lay.folder}/train.tsv and dev.tsv)")
        return data_dir
    root = os.path.join(cache_dir, "glue")
    if os.path.isfile(os.path.join(root, lay.folder, f"{lay.dev[0]}.tsv")):
        return root
    _check_cache(root, f"GLUE {task}", "--data-dir with a folder in the GLUE layout")
    try:
        if task == "mrpc":
            _fetch_mrpc(os.path.join(root, lay.folder))
        else:
            archive = download(f"{GLUE_URL}/{ARCHIVES[task]}", os.path.join(root, f".{lay.folder}.zip"))
            _extract(archive, root, lay)
            os.remove(archive)
    except (urllib.error.URLError, OSError) as e:
        raise FetchFailed(f"could not download GLUE {task} from {GLUE_URL} ({e}). Offline? Pass --data-dir "
                           f"with a folder in the GLUE layout (<data-dir>/{lay.folder}/train.tsv, dev.tsv)") from None
    return root


def _extract(archive, root, lay):
    """Unpack into a temporary folder, then move the task folder into place in one rename."""
    tmp = tempfile.mkdtemp(dir=root, prefix=".unzip-")
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        found = [d for d in os.listdir(tmp) if os.path.isdir(os.path.join(tmp, d))]
        if len(found) != 1:
            raise OSError(f"unexpected archive layout {found} for {lay.folder}")
        if os.path.isdir(os.path.join(root, lay.folder)):
            shutil.rmtree(os.path.join(root, lay.folder))
        os.replace(os.path.join(tmp, found[0]), os.path.join(root, lay.folder))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fetch_mrpc(folder):
    """MRPC as the GLUE script builds it: SentEval's MSR train file split by GLUE's dev ids."""
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(folder), prefix=".mrpc-")   # same filesystem: the rename is atomic
    try:
        train_txt = download(f"{GLUE_URL}/{MRPC_FILES['train']}", os.path.join(tmp, "msr_train.txt"))
        ids_tsv = download(f"{GLUE_URL}/{MRPC_FILES['dev_ids']}", os.path.join(tmp, "dev_ids.tsv"))
        with open(ids_tsv, encoding="utf-8") as f:
            dev_ids = {tuple(line.strip().split("\t")) for line in f if line.strip()}
        out = os.path.join(tmp, "MRPC")
        os.makedirs(out)
        with open(train_txt, encoding="utf-8", newline="") as f:
            header, *rows = f.read().splitlines()
        with open(os.path.join(out, "train.tsv"), "w", encoding="utf-8", newline="") as tr, \
                open(os.path.join(out, "dev.tsv"), "w", encoding="utf-8", newline="") as dv:
            tr.write(header + "\n")
            dv.write(header + "\n")
            for row in rows:
                label, id1, id2, s1, s2 = row.split("\t")
                (dv if (id1, id2) in dev_ids else tr).write(f"{label}\t{id1}\t{id2}\t{s1}\t{s2}\n")
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(out, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
