"""documents.py: IMDB, Yelp and 20 Newsgroups, read as their archives unpack, and downloaded (from
tiny archives in the real formats, served by a local server) atomically and validated."""
import functools
import http.server
import os
import tarfile
import threading

import pytest

import data
from cli import errors
from tasks import documents
from tiny import NEWSGROUPS, write_documents

ARCHIVES = {"imdb": "aclImdb_v1.tar.gz", "yelp": "yelp_review_full_csv.tgz", "20news": "20news-bydate.tar.gz"}


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    return write_documents(str(tmp_path_factory.mktemp("docs")))


@pytest.mark.parametrize("task,classes,n", [("imdb", ["neg", "pos"], 8), ("yelp", ["1", "2", "3", "4", "5"], 8),
                                            ("20news", NEWSGROUPS, 9)])
def test_every_corpus_reads_as_it_unpacks(unpacked, task, classes, n):
    for split in ("train", "test"):
        texts, labels, got = documents.read_documents(task, split, unpacked)
        assert got == classes and len(texts) == len(labels) == n
        assert set(labels) <= set(range(len(classes))) and all(isinstance(t, str) and t for t in texts)
        assert not any("<br />" in t or "\\n" in t for t in texts)      # HTML breaks, Yelp's escaped newlines
    if task == "20news":
        assert "café" in texts[0] and texts[0].startswith("From: ")        # Latin-1 e-mail, headers kept
    if task == "yelp":
        assert texts[0].endswith('"quoted" end')


def test_missing_or_broken_corpus_is_named(unpacked, tmp_path):
    with pytest.raises(errors.MissingInput, match="aclImdb not found: --data-dir must hold imdb as its archive unpacks"):
        documents.documents_dir("imdb", str(tmp_path))
    assert documents.documents_dir("imdb", unpacked) == unpacked
    bad = tmp_path / "yelp_review_full_csv"
    bad.mkdir()
    (bad / "test.csv").write_text('"3","fine"\n"9","stars out of range"\n')
    with pytest.raises(errors.BadInput, match=r"test.csv, line 2: expected \"stars\",\"text\" with stars 1-5"):
        documents.read_documents("yelp", "test", str(tmp_path))


def test_a_test_newsgroup_the_train_split_lacks_is_named(tmp_path):
    """20 Newsgroups' classes are its train folders: a test newsgroup missing from train would go
    unscored; it is named instead."""
    import shutil
    root = write_documents(str(tmp_path / "docs"))
    shutil.rmtree(os.path.join(root, "20news-bydate-train", NEWSGROUPS[1]))
    with pytest.raises(errors.BadInput, match=f"has newsgroups the train split has not \\({NEWSGROUPS[1]}\\)"):
        documents.read_documents("20news", "test", root)


class Handler(http.server.SimpleHTTPRequestHandler):
    broken = {}   # path -> "truncated" (a Content-Length the body never reaches) or "portal" (HTML, 200)

    def log_message(self, *a):
        pass

    def do_GET(self):
        how = self.broken.get(self.path)
        if how is None:
            return super().do_GET()
        body = b"<!DOCTYPE html><html>log in to the Wi-Fi</html>" if how == "portal" else b"\x1f\x8b" + b"x" * 30
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + (1000 if how == "truncated" else 0)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server(unpacked, tmp_path, monkeypatch):
    www = tmp_path / "www"
    www.mkdir()
    for task, name in ARCHIVES.items():
        with tarfile.open(www / name, "w:gz") as t:
            for folder in documents.DOCUMENTS[task].folders:
                t.add(os.path.join(unpacked, folder), folder)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setattr(documents, "DOCUMENTS_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield
    Handler.broken = {}
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("task", sorted(ARCHIVES))
def test_download_once_then_read(server, unpacked, tmp_path, monkeypatch, task):
    cache = str(tmp_path / "cache")
    root = documents.documents_dir(task, None, cache)
    assert root == os.path.join(cache, "documents")
    assert documents.read_documents(task, "test", root) == documents.read_documents(task, "test", unpacked)
    assert sorted(os.listdir(root)) == sorted(documents.DOCUMENTS[task].folders)   # no archive, no temporary left
    monkeypatch.setattr(documents, "DOCUMENTS_URL", "http://127.0.0.1:9")       # offline now: the cache is used
    assert documents.documents_dir(task, None, cache) == root


@pytest.mark.parametrize("how,says", [("truncated", "is incomplete"), ("portal", "did not send a valid")])
def test_bad_download_leaves_nothing(server, tmp_path, how, says):
    Handler.broken = {"/" + ARCHIVES["imdb"]: how}
    cache = tmp_path / "cache"
    with pytest.raises(errors.FetchFailed, match=f"could not download imdb .*{says}.*Offline\\? Pass --data-dir"):
        documents.documents_dir("imdb", None, str(cache))
    assert [f for _, _, fs in os.walk(cache) for f in fs] == []


def test_offline_names_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "DOCUMENTS_URL", "http://127.0.0.1:9")   # nothing listens on the discard port
    with pytest.raises(errors.FetchFailed, match="Offline\\? Pass --data-dir with a folder holding the unpacked archive "
                                              r"\(20news-bydate-train, 20news-bydate-test\)"):
        documents.documents_dir("20news", None, str(tmp_path / "cache"))


@pytest.mark.parametrize("how,says", [("folder", "cannot be read as a document"), ("latin1", "not UTF-8 text")])
def test_a_broken_corpus_file_is_one_line(tmp_path, how, says):
    """A folder inside train/neg, a Yelp CSV that is not UTF-8: one line naming it, not a traceback."""
    root = write_documents(str(tmp_path / "docs"))
    if how == "folder":
        os.makedirs(os.path.join(root, "aclImdb", "train", "neg", "stray-folder"))
        task = "imdb"
    else:
        with open(os.path.join(root, "yelp_review_full_csv", "train.csv"), "ab") as f:
            f.write('"3","caf\xe9"\n'.encode("latin-1"))
        task = "yelp"
    with pytest.raises(errors.BadInput, match=says):
        documents.read_documents(task, "train", root)
