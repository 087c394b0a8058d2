"""data.py: TSV layouts of every task, tokenisation, batching, downloads (against a local server)."""

import functools
import http.server
import os
import threading
import zipfile

import pytest
import torch

import data
from tasks import glue as glue_files
from cli import errors
from tasks import download
from tiny import write_glue, write_model

SHARED_GLUE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "glue")


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    return write_glue(str(tmp_path_factory.mktemp("glue")))


@pytest.mark.parametrize("task", sorted(glue_files.GLUE))
def test_every_task_layout_reads(glue, task):
    for split in ("train",) + glue_files.GLUE[task].dev:
        texts, labels = glue_files.read_task(task, split, glue)
        assert len(texts) == len(labels) > 0
        pair = glue_files.GLUE[task].text_b is not None
        assert all(isinstance(t, tuple) == pair for t in texts)
        if glue_files.GLUE[task].labels is None:
            assert all(isinstance(y, float) for y in labels)
        else:
            assert set(labels) <= set(range(len(glue_files.GLUE[task].labels)))


@pytest.mark.skipif(not os.path.isdir(SHARED_GLUE), reason="../shared/data/glue not present")
@pytest.mark.parametrize("task,n", [("sst2", 872), ("cola", 1043), ("mrpc", 408), ("rte", 277), ("stsb", 1500),
                                    ("wnli", 71), ("qnli", 5463)])
def test_real_glue_dev_files(task, n):
    texts, labels = glue_files.read_task(task, "dev", SHARED_GLUE)
    assert len(texts) == n


def test_malformed_row_names_file_and_line(tmp_path):
    os.makedirs(tmp_path / "RTE")
    (tmp_path / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n")
    with pytest.raises(ValueError, match=r"RTE/dev.tsv, line 3: expected 4 tab-separated fields, found 3"):
        glue_files.read_task("rte", "dev", str(tmp_path))
    (tmp_path / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ValueError, match="line 2: label 'maybe'"):
        glue_files.read_task("rte", "dev", str(tmp_path))


def test_missing_file_and_unknown_task(tmp_path):
    with pytest.raises(FileNotFoundError, match="SST-2/dev.tsv not found"):
        glue_files.read_task("sst2", "dev", str(tmp_path))
    with pytest.raises(ValueError, match="unknown task 'sst'"):
        glue_files.read_task("sst", "dev", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="--data-dir must hold"):
        download.glue_dir("sst2", str(tmp_path))


@pytest.mark.parametrize("tokenizer_json", [True, False])
def test_tokenizer_pairs_types_truncation(tmp_path, tokenizer_json):
    folder = write_model(str(tmp_path / "m"), tokenizer_json=tokenizer_json)
    tok = data.load_tokenizer(folder)
    (ids, types), = data.encode(tok, [("The Film was GOOD .", "bad plot")], 64)
    vocab = tok.get_vocab()
    assert ids[0] == vocab["[CLS]"] and ids.count(vocab["[SEP]"]) == 2 and vocab["good"] in ids  # lower-cased
    assert types == [0] * 7 + [1] * 3   # [CLS] the film was good . [SEP] | bad plot [SEP]
    (ids, types), = data.encode(tok, [("a " * 50, "the " * 10)], 16)
    assert len(ids) == 16 and sum(types) > 0                  # longest first: both sides survive


def test_batches_padded_to_longest_and_deterministic():
    ex = [([2] + [5] * n + [3], [0] * (n + 2)) for n in range(10)]
    labels = list(range(10))
    b = list(data.batches(ex, labels, 4))
    assert [x["input_ids"].shape for x in b] == [(4, 5), (4, 9), (2, 11)]
    assert torch.equal(b[0]["attention_mask"].sum(1), torch.tensor([2, 3, 4, 5]))
    a1 = [x["labels"].tolist() for x in data.batches(ex, labels, 4, shuffle=True, seed=1, epoch=0)]
    a2 = [x["labels"].tolist() for x in data.batches(ex, labels, 4, shuffle=True, seed=1, epoch=0)]
    a3 = [x["labels"].tolist() for x in data.batches(ex, labels, 4, shuffle=True, seed=1, epoch=1)]
    assert a1 == a2 != a3
    shards = [sum((x["labels"].tolist() for x in data.batches(ex, labels, 4, True, 1, 0, r, 2)), []) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == labels and not set(shards[0]) & set(shards[1])


# Downloads, against a local HTTP server ------------------------------------------------------------


class Handler(http.server.SimpleHTTPRequestHandler):
    truncate = set()   # paths served with a Content-Length larger than the body
    plain = {}         # path -> a body served with 200 (an error page in plain text or JSON)

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path in self.truncate:
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            return
        if self.path in self.plain:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.plain[self.path])))
            self.end_headers()
            self.wfile.write(self.plain[self.path])
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    write_model(str(root / "tiny-bert" / "resolve" / "main"))
    glue = write_glue(str(tmp_path / "src"))
    os.makedirs(root / "glue" / "data")
    for folder, name in [("SST-2", "SST-2.zip"), ("CoLA", "CoLA.zip")]:
        with zipfile.ZipFile(root / "glue" / "data" / name, "w") as z:
            for f in os.listdir(os.path.join(glue, folder)):
                z.write(os.path.join(glue, folder, f), f"{folder}/{f}")
    os.makedirs(root / "senteval" / "senteval_data")
    rows = open(os.path.join(glue, "MRPC", "train.tsv"), encoding="utf-8").read().splitlines()
    (root / "senteval" / "senteval_data" / "msr_paraphrase_train.txt").write_text(
        "\n".join([rows[0]] + [r.replace("\t1\t2\t", f"\t{i}\t{i + 1000}\t", 1) for i, r in enumerate(rows[1:])]) + "\n",
        encoding="utf-8")
    (root / "glue" / "data" / "mrpc_dev_ids.tsv").write_text("0\t1000\n3\t1003\n")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_model_and_glue(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "HUB_URL", server)
    monkeypatch.setattr(download, "GLUE_URL", server)
    cache = str(tmp_path / "cache")
    folder = download.model_dir("tiny-bert", cache)
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert download.model_dir("tiny-bert", cache) == folder          # cached: no second download
    root = download.glue_dir("sst2", None, cache)
    assert len(glue_files.read_task("sst2", "dev", root)[0]) == 12
    root = download.glue_dir("mrpc", None, cache)
    assert len(glue_files.read_task("mrpc", "dev", root)[0]) == 2 and len(glue_files.read_task("mrpc", "train", root)[0]) == 38
    assert not [f for f in os.listdir(os.path.join(cache, "glue")) if f.startswith(".")]   # no leftovers
    fresh = str(tmp_path / "fresh")                              # MRPC as the very first download
    assert len(glue_files.read_task("mrpc", "dev", download.glue_dir("mrpc", None, fresh))[0]) == 2
    assert os.listdir(os.path.join(fresh, "glue")) == ["MRPC"]


@pytest.mark.slow
def test_download_command_fetches_into_the_cache(server, tmp_path, monkeypatch, capsys):
    """python tasks/download.py MODEL --task T: fetched now, printed, read from the cache by a later run;
    nothing named is one argparse line, and a library file run as a command says which command uses it."""
    import subprocess
    import sys
    monkeypatch.setattr(download, "HUB_URL", server)
    monkeypatch.setattr(download, "GLUE_URL", server)
    cache = str(tmp_path / "cache")
    download.main(["tiny-bert", "--task", "sst2", "--task", "mrpc", "--cache-dir", cache])
    printed = capsys.readouterr().out.split()
    assert printed == [download.model_dir("tiny-bert", cache), download.glue_dir("sst2", None, cache),
                       download.glue_dir("mrpc", None, cache)]
    with pytest.raises(SystemExit):
        download.main([])
    assert "name what to fetch" in capsys.readouterr().err
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for script, says in [("load_weights.py", "python train.py --model"), ("tasks/documents.py", "--task imdb"),
                         ("evaluate.py", "--eval-only")]:
        r = subprocess.run([sys.executable, script], cwd=root, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and says in r.stderr and "Traceback" not in r.stderr


def test_truncated_download_leaves_nothing(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "HUB_URL", server)
    monkeypatch.setattr(Handler, "truncate", {"/tiny-bert/resolve/main/model.safetensors"})
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="could not fetch model 'tiny-bert'.*Pass --model"):
        download.model_dir("tiny-bert", str(cache))
    assert os.listdir(cache / "models") == []            # the model folder is made whole or not at all


def test_offline_gives_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "HUB_URL", "http://127.0.0.1:9")      # nothing listens on the discard port
    monkeypatch.setattr(download, "GLUE_URL", "http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="Offline\\? Pass --model with a local folder"):
        download.model_dir("bert-base-uncased", str(tmp_path))
    with pytest.raises(RuntimeError, match="Offline\\? Pass --data-dir"):
        download.glue_dir("sst2", None, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        download.model_dir("./no/such/folder", str(tmp_path))


def test_read_only_cache_is_named_not_blamed_on_the_network(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access   # chmod 0555 does not stop root, so the folder is made read-only for os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).startswith(str(ro)) else real(p, mode))
    monkeypatch.setattr(download, "HUB_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(download, "GLUE_URL", "http://127.0.0.1:9")
    for get in (lambda: download.model_dir("bert-base-uncased", str(ro / "cache")),
                lambda: download.glue_dir("sst2", None, str(ro / "cache"))):
        with pytest.raises(errors.MissingInput, match=f"--cache-dir: {ro} is not writable"):
            get()
    assert os.listdir(ro) == []


class Portal(Handler):
    def do_GET(self):   # a captive portal: every URL answers 200 with an HTML page
        body = b"<!DOCTYPE html><html><body>Please log in to the Wi-Fi</body></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_captive_portal_never_poisons_the_cache(tmp_path, monkeypatch):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Portal, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setattr(download, "HUB_URL", url)
    monkeypatch.setattr(download, "GLUE_URL", url)
    cache = tmp_path / "cache"
    try:
        with pytest.raises(errors.FetchFailed, match="did not send a valid config.json.*nothing was cached"):
            download.model_dir("bert-base-uncased", str(cache))
        with pytest.raises(errors.FetchFailed, match="did not send a valid .SST-2.zip"):
            download.glue_dir("sst2", None, str(cache))
        for name in ("model.safetensors", "tokenizer.json", "vocab.txt", "x.tsv"):
            with pytest.raises(OSError, match=f"valid {name}"):
                download.download(f"{url}/{name}", str(tmp_path / "one" / name))
    finally:
        httpd.shutdown()
        httpd.server_close()
    files = [f for _, _, fs in os.walk(cache) for f in fs] + os.listdir(tmp_path / "one")
    assert files == []


def test_model_path_mistakes_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    with pytest.raises(errors.MissingInput, match="is a file: pass the folder"):
        download.model_dir("weights.safetensors", str(tmp_path / "cache"))
    with pytest.raises(errors.MissingInput, match="model folder 'models/minilm' does not exist"):
        download.model_dir("models/minilm", str(tmp_path / "cache"))   # a typo, not a hub name


def test_error_bodies_with_status_200_are_never_cached(server, tmp_path, monkeypatch):
    """A hub with no tokenizer.json and a plain-text page for vocab.txt, a GLUE mirror answering plain
    text, a SQuAD mirror answering a JSON error: each fails naming the file, caches nothing, and a
    later run against a working server succeeds."""
    from tasks import squad
    for name in ("HUB_URL", "GLUE_URL"):
        monkeypatch.setattr(download, name, server)
    monkeypatch.setattr(squad, "SQUAD_URL", server + "/squad")
    cache = tmp_path / "cache"
    os.remove(tmp_path / "www" / "tiny-bert" / "resolve" / "main" / "tokenizer.json")   # 404: vocab.txt is tried
    page = b"Service temporarily unavailable. Please try again later.\n"
    monkeypatch.setattr(Handler, "plain", {"/tiny-bert/resolve/main/vocab.txt": page,
                                           "/senteval/senteval_data/msr_paraphrase_train.txt": page,
                                           "/squad/train-v2.0.json": b'{"error": "rate limited"}',
                                           "/squad/dev-v2.0.json": b'{"error": "rate limited"}'})
    with pytest.raises(errors.FetchFailed, match="did not send a valid vocab.txt"):
        download.model_dir("tiny-bert", str(cache))
    with pytest.raises(errors.FetchFailed, match="did not send a valid msr_train.txt"):
        download.glue_dir("mrpc", None, str(cache))
    with pytest.raises(errors.FetchFailed, match="did not send a valid train-v2.0.json"):
        squad.squad_dir(None, str(cache))
    assert [f for _, _, fs in os.walk(cache) for f in fs] == []
    monkeypatch.setattr(Handler, "plain", {})
    write_model(str(tmp_path / "www" / "tiny-bert" / "resolve" / "main"))                  # the server mended
    assert os.path.isfile(os.path.join(download.model_dir("tiny-bert", str(cache)), "tokenizer.json"))
    assert len(glue_files.read_task("mrpc", "dev", download.glue_dir("mrpc", None, str(cache)))[0]) == 2
