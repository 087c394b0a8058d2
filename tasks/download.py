"""
Fetching what train.py and tools/bench.py need when they are online: a GLUE task (from the archives the
GLUE download script uses) and a checkpoint from the Hugging Face hub, each once into a cache.
Offline, a local folder is used as it is; a missing one is one clear line.

    glue_dir(task, data_dir, cache)        -> a folder holding the task, downloaded if need be
    model_dir(name_or_path, cache)         -> a checkpoint folder, downloaded from the hub if need be

As a command, it fetches now what a later run (offline, say) will read from the cache:

    python tasks/download.py bert-base-uncased --task sst2 --task mrpc

Downloads use the standard library only, go to a temporary file that is renamed into place once
its size and content are checked, and never leave a half-written file behind or poison the cache.

References:
  - The GLUE download script (download_glue_data.py, W4ngatang's gist): file layouts and archives.
"""

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile

if __package__ in (None, ""):   # run as `python tasks/download.py`: the project's modules are one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cli.errors import FetchFailed, MissingInput
from data import TOKENIZER_FILES
from tasks.glue import layout
from storage.files import atomic_folder, atomic_write, unwritable

HUB_URL = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
GLUE_URL = os.environ.get("GLUE_URL", "https://dl.fbaipublicfiles.com")
ARCHIVES = {"cola": "glue/data/CoLA.zip", "sst2": "glue/data/SST-2.zip", "qqp": "glue/data/QQP-clean.zip",
            "stsb": "glue/data/STS-B.zip", "mnli": "glue/data/MNLI.zip", "qnli": "glue/data/QNLIv2.zip",
            "rte": "glue/data/RTE.zip", "wnli": "glue/data/WNLI.zip"}
MRPC_FILES = {"train": "senteval/senteval_data/msr_paraphrase_train.txt", "dev_ids": "glue/data/mrpc_dev_ids.tsv"}
MODEL_FILES = ("config.json", "model.safetensors")
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "transkimmer")


def download(url, dest, timeout=60, check=None):
    """Fetch url to dest atomically (files.atomic_write): its size checked against the server's
    Content-Length and its content against its name (check_download; check(path), when given, raises
    a ValueError for content that is not what the file must hold) before it is renamed into place.
    Nothing is left at dest (or beside it) on failure."""
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)

    def fetch(tmp):
        with open(tmp, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
            expected = r.headers.get("Content-Length")
            shutil.copyfileobj(r, f, length=1 << 20)
        got = os.path.getsize(tmp)
        if expected is not None and got != int(expected):
            raise OSError(f"download of {url} is incomplete: {got} of {expected} bytes")
        check_download(tmp, dest, url, check)
    atomic_write(dest, fetch)
    return dest


def check_download(path, dest, url, check=None):
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
        elif name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(path) as t:
                t.getmembers()
        else:   # text files (vocab.txt, the MRPC files): no HTML page
            with open(path, "rb") as f:
                if f.read(512).lstrip().lower().startswith((b"<!doctype html", b"<html")):
                    raise ValueError("an HTML page")
        if check is not None:
            check(path)
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise OSError(f"{url} did not send a valid {name} ({str(e).splitlines()[0] if str(e) else type(e).__name__}): a captive portal or an error page? "
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
    check_cache(dest, f"model {name_or_path!r}", "--model with a local folder")

    def fill(tmp):   # every file into a new folder, swapped in whole: a failure caches nothing
        for f in MODEL_FILES:
            download(f"{base}/{f}", os.path.join(tmp, f))
        for f in TOKENIZER_FILES:
            try:
                download(f"{base}/{f}", os.path.join(tmp, f), check=TOKENIZER_CHECKS.get(f))
                return
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    raise
        raise MissingInput(f"{base} has neither tokenizer.json nor vocab.txt")
    try:
        atomic_folder(dest, fill)
    except (urllib.error.URLError, OSError) as e:
        raise FetchFailed(f"could not fetch model {name_or_path!r} from {HUB_URL} ({e}). Offline? "
                           "Pass --model with a local folder holding config.json, model.safetensors "
                           "and tokenizer.json (or vocab.txt)") from None
    return dest


def wordpiece_vocab(path):
    """A BERT vocab.txt: one token a line, [CLS] and [SEP] among them."""
    with open(path, encoding="utf-8") as f:
        tokens = set(f.read().splitlines())
    if not {"[CLS]", "[SEP]"} <= tokens:
        raise ValueError("no [CLS] and [SEP] lines: not a WordPiece vocabulary")


TOKENIZER_CHECKS = {"vocab.txt": wordpiece_vocab}


def check_cache(folder, what, local):
    """A download needs a writable cache; without one it must not be blamed on the network."""
    if unwritable(folder):
        raise MissingInput(f"--cache-dir: {unwritable(folder)}, so {what} cannot be "
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
    check_cache(root, f"GLUE {task}", "--data-dir with a folder in the GLUE layout")
    try:
        if task == "mrpc":
            _fetch_mrpc(os.path.join(root, lay.folder))
        else:
            archive = download(f"{GLUE_URL}/{ARCHIVES[task]}", os.path.join(root, f".{lay.folder}.zip"))
            unpack(archive, root, [lay.folder])
            os.remove(archive)
    except (urllib.error.URLError, OSError) as e:
        raise FetchFailed(f"could not download GLUE {task} from {GLUE_URL} ({e}). Offline? Pass --data-dir "
                           f"with a folder in the GLUE layout (<data-dir>/{lay.folder}/train.tsv, dev.tsv)") from None
    return root


def unpack(archive, root, folders):
    """Unpack a zip or tar archive into a temporary folder in root, then move its top-level folders
    into root, one rename each, replacing what was there. folders: the names they must have; an
    archive of one folder when one is expected gets that name (GLUE's QQP-clean.zip holds QQP)."""
    tmp = tempfile.mkdtemp(dir=root, prefix=".unpack-")
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")   # no absolute paths, links out or devices
        found = sorted(d for d in os.listdir(tmp) if os.path.isdir(os.path.join(tmp, d)))
        moves = {found[0]: folders[0]} if len(found) == len(folders) == 1 else {d: d for d in folders}
        if not set(moves) <= set(found):
            raise OSError(f"unexpected archive layout {found}, expected {list(folders)}")
        for src, dst in moves.items():
            if os.path.isdir(os.path.join(root, dst)):
                shutil.rmtree(os.path.join(root, dst))
            os.replace(os.path.join(tmp, src), os.path.join(root, dst))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def msr_train(path):
    """SentEval's MSR paraphrase file: the Quality header, then rows of five tab-separated fields."""
    with open(path, encoding="utf-8-sig") as f:
        header, *rows = f.read().splitlines()
    if not header.startswith("Quality\t") or not rows or any(len(r.split("\t")) != 5 for r in rows):
        raise ValueError("not the MSR paraphrase file (a Quality header, then five tab-separated fields a row)")


def mrpc_dev_ids(path):
    """GLUE's MRPC dev ids: lines of two tab-separated numbers."""
    with open(path, encoding="utf-8") as f:
        lines = [line.split("\t") for line in f.read().splitlines() if line.strip()]
    if not lines or any(len(ids) != 2 or not all(i.strip().isdigit() for i in ids) for ids in lines):
        raise ValueError("not GLUE's MRPC dev ids (two tab-separated numbers a line)")


def _fetch_mrpc(folder):
    """MRPC as the GLUE script builds it: SentEval's MSR train file split by GLUE's dev ids."""
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(folder), prefix=".mrpc-")   # same filesystem: the rename is atomic
    try:
        train_txt = download(f"{GLUE_URL}/{MRPC_FILES['train']}", os.path.join(tmp, "msr_train.txt"), check=msr_train)
        ids_tsv = download(f"{GLUE_URL}/{MRPC_FILES['dev_ids']}", os.path.join(tmp, "dev_ids.tsv"), check=mrpc_dev_ids)
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


def main(argv=None):
    """Fetch checkpoints (hub names) and GLUE tasks into the cache; print each folder."""
    p = argparse.ArgumentParser(description="Fetch checkpoints and GLUE tasks into the cache train.py reads.")
    p.add_argument("models", nargs="*", help="checkpoints on the hub, e.g. bert-base-uncased")
    p.add_argument("--task", action="append", default=[], choices=sorted([*ARCHIVES, "mrpc"]), help="a GLUE task (repeatable)")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE, help="where downloads are kept")
    args = p.parse_args(argv)
    if not args.models and not args.task:
        p.error("name what to fetch: a checkpoint (bert-base-uncased) and/or --task sst2")
    for name in args.models:
        print(model_dir(name, args.cache_dir))
    for task in args.task:
        print(glue_dir(task, None, args.cache_dir))


if __name__ == "__main__":
    from cli import errors
    errors.run(main)
