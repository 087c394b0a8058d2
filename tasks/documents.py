"""
Long documents (paper Table 4): IMDB, Yelp (5-class reviews) and 20 Newsgroups, up to 512 tokens,
where skimming saves the most. Each is read as its canonical public archive unpacks:

    imdb     aclImdb/{train,test}/{neg,pos}/<id>_<stars>.txt                Maas et al. (2011)
    yelp     yelp_review_full_csv/{train,test}.csv, rows "stars","text"     Zhang et al. (2015)
    20news   20news-bydate-{train,test}/<newsgroup>/<id>                     Lang (1995), by date

`--data-dir` may hold these folders as unpacked; without it the archive is downloaded once into
the cache (tasks/download.py: atomic, size- and content-checked). The evaluation split is the test split,
as in the paper (none of the three has a dev split).

    documents_dir(task, data_dir, cache)   -> the folder that holds the task, downloaded if need be
    read_documents(task, split, root)      -> texts, labels (indices into the classes) and classes
"""

if __name__ == "__main__":   # a part of train.py, not a command: say which command uses it
    raise SystemExit('tasks/documents.py reads the long-document tasks for train.py: run python train.py --task imdb (or yelp, 20news)')


import csv
import os
import urllib.error
from dataclasses import dataclass

from tasks import download
from cli.errors import BadInput, FetchFailed, InputError, MissingInput


@dataclass(frozen=True)
class Corpus:
    url: str            # the canonical archive
    folders: tuple      # its top-level folders
    classes: tuple      # label strings in class order; () = the train split's folder names, sorted


DOCUMENTS = {
    "imdb": Corpus("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz", ("aclImdb",), ("neg", "pos")),
    "yelp": Corpus("https://s3.amazonaws.com/fast-ai-nlp/yelp_review_full_csv.tgz", ("yelp_review_full_csv",),
                   ("1", "2", "3", "4", "5")),
    "20news": Corpus("http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz",
                     ("20news-bydate-train", "20news-bydate-test"), ()),
}
DOCUMENTS_URL = os.environ.get("DOCUMENTS_URL")
SPLITS = {"imdb": "aclImdb/{split}", "yelp": "yelp_review_full_csv/{split}.csv", "20news": "20news-bydate-{split}"}


def documents_dir(task, data_dir=None, cache_dir=download.DEFAULT_CACHE):
    """data_dir when given (it must hold the unpacked archive), else cache_dir/documents, where the
    archive is downloaded and unpacked once."""
    c = DOCUMENTS[task]
    where = ", ".join(SPLITS[task].format(split=s) for s in ("train", "test"))
    if data_dir is not None:
        missing = [f for f in c.folders if not os.path.isdir(os.path.join(data_dir, f))]
        if missing:
            raise MissingInput(f"{os.path.join(data_dir, missing[0])} not found: --data-dir must hold {task} as its "
                               f"archive unpacks ({where}), or leave --data-dir out to download it")
        return data_dir
    root = os.path.join(cache_dir, "documents")
    if all(os.path.isdir(os.path.join(root, f)) for f in c.folders):
        return root
    download.check_cache(root, task, "--data-dir with the unpacked archive")
    os.makedirs(root, exist_ok=True)
    name = os.path.basename(c.url)
    archive = os.path.join(root, "." + name)
    try:
        download.download(_url(c.url), archive)
        download.unpack(archive, root, c.folders)
    except (urllib.error.URLError, OSError) as e:
        raise FetchFailed(f"could not download {task} from {_url(c.url)} ({e}). Offline? Pass --data-dir with a "
                          f"folder holding the unpacked archive ({where})") from None
    finally:
        if os.path.exists(archive):
            os.remove(archive)
    return root


def _url(url):
    """The archive's URL; DOCUMENTS_URL (a mirror, or the tests' local server) replaces its host,
    as HF_ENDPOINT and GLUE_URL do for the hub and GLUE."""
    return url if not DOCUMENTS_URL else f"{DOCUMENTS_URL}/{os.path.basename(url)}"


def document_classes(task, root):
    """The label strings in class order (20 Newsgroups: its train split's newsgroups, sorted)."""
    c = DOCUMENTS[task]
    if c.classes:
        return list(c.classes)
    folder = os.path.join(root, SPLITS[task].format(split="train"))
    return sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))


def read_documents(task, split, root):
    """Texts and labels of a split ("train" or "test"), and the classes. A malformed row or a
    missing folder is an error naming the file."""
    classes = document_classes(task, root)
    path = os.path.join(root, SPLITS[task].format(split=split))
    if not os.path.exists(path):
        raise MissingInput(f"{path} not found: the {task} folder is incomplete; unpack its archive again "
                           "(or delete it from the cache to download it again)")
    try:
        texts, labels = _read_split(task, path, classes)
    except InputError:
        raise
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}): unpack the archive again") from None
    except OSError as e:   # a folder where a document should be, a file that cannot be read
        raise BadInput(f"{e.filename or path}: cannot be read as a document ({e.strerror}): unpack the archive "
                       "again, or remove what is not one of its documents") from None
    if not texts:
        raise BadInput(f"{path} holds no documents")
    return texts, labels, classes


def _read_split(task, path, classes):
    """The texts and label indices of one split, as its archive lays them out."""
    texts, labels = [], []
    if task == "yelp":
        csv.field_size_limit(1 << 30)
        with open(path, encoding="utf-8", newline="") as f:
            for line, row in enumerate(csv.reader(f), start=1):
                if len(row) != 2 or row[0] not in classes:
                    raise BadInput(f"{path}, line {line}: expected \"stars\",\"text\" with stars 1-5, found {row[:2]!r}")
                labels.append(classes.index(row[0]))
                texts.append(row[1].replace("\\n", " ").replace('\\"', '"'))
    else:
        if not DOCUMENTS[task].classes:   # (20 Newsgroups: its classes are the train split's folders)
            extra = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and d not in classes)
            if extra:
                raise BadInput(f"{path} has newsgroups the train split has not ({', '.join(extra)}): its documents "
                               "could not be scored; unpack the archive again, or remove them from both splits")
        for label, name in enumerate(classes):
            folder = os.path.join(path, name)
            if not os.path.isdir(folder):
                raise MissingInput(f"{folder} not found: the {task} folder is incomplete; unpack its archive again")
            for doc in sorted(os.listdir(folder)):
                # IMDB is UTF-8 with HTML line breaks; the newsgroup posts are Latin-1 e-mail
                with open(os.path.join(folder, doc), encoding="utf-8" if task == "imdb" else "latin-1",
                          errors="replace") as f:
                    texts.append(f.read().replace("<br />", " ").strip())
                labels.append(label)
    return texts, labels
