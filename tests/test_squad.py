"""squad.py: SQuAD 2.0 span QA: the official metric, windows and their labels, post-processing, the
download, pruned = masked span logits, and a tiny model that learns a dozen questions."""
import functools
import http.server
import json
import os
import random
import threading

import pytest
import torch

import data
from cli import errors
from tasks import squad
import train
from model import BertConfig, build
from tiny import WORDS, write_glue, write_model

CONTEXT = "the film was made by alice in 1990 and the plot is about the eiffel tower in paris ."


def squad_file(path, paragraphs):
    """paragraphs: [(context, [(id, question, [answer texts], impossible)])]; each answer's start
    is its first occurrence in the context."""
    data_ = [{"title": "t", "paragraphs": [
        {"context": c, "qas": [{"id": i, "question": q, "is_impossible": imp,
                                "answers": [{"text": a, "answer_start": c.index(a)} for a in ans]}
                               for i, q, ans, imp in qas]} for c, qas in paragraphs]}]
    with open(path, "w") as f:
        json.dump({"version": "v2.0", "data": data_}, f)
    return path


@pytest.fixture
def hand_made(tmp_path):
    """Answerable, with several gold answers, unanswerable; worked out by hand below."""
    return squad.read_squad(squad_file(str(tmp_path / "dev.json"), [(CONTEXT, [
        ("q1", "who made the film ?", ["alice"], False),
        ("q2", "what is the plot about ?", ["the eiffel tower", "eiffel tower"], False),
        ("q3", "who is bob ?", [], True),
        ("q4", "where is bob ?", [], True),
        ("q5", "when was it made ?", ["1990"], False)])]))


def test_official_v2_metric_worked_out_by_hand(hand_made):
    predictions = {"q1": "Alice", "q2": "Eiffel", "q3": "", "q4": "paris", "q5": ""}
    m = squad.squad_v2_scores(hand_made, predictions)
    # q1 exact (case); q2 "eiffel" vs "eiffel tower" (articles dropped): P 1, R 1/2, F1 2/3, best of both golds;
    # q3 no answer, none given: 1; q4 no answer, one given: 0; q5 answer missed: 0
    assert m["exact"] == pytest.approx(2 / 5) and m["f1"] == pytest.approx((1 + 2 / 3 + 1) / 5)
    assert m["HasAns_exact"] == pytest.approx(1 / 3) and m["HasAns_f1"] == pytest.approx((1 + 2 / 3) / 3)
    assert m["NoAns_exact"] == m["NoAns_f1"] == 0.5 and m["HasAns_total"] == 3 and m["NoAns_total"] == 2
    assert squad.normalize_answer("The  Eiffel-Tower!") == "eiffeltower" and squad.f1_score("", "") == 1.0


def test_official_output_omits_empty_groups(hand_made):
    """As evaluate-v2.0.py: percentages and a total; a group without questions is left out."""
    answerable = [q for q in hand_made if q.answers]
    out = squad.official_output(answerable, {"q1": "Alice", "q2": "Eiffel", "q5": ""})
    assert list(out) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total"]
    assert out["total"] == 3 and out["exact"] == pytest.approx(100 / 3)


def test_windows_labels_and_boundary(hand_made):
    tok = data.load_tokenizer(write_model("/tmp/qa-tok-model"))
    q5 = [q for q in hand_made if q.id == "q5"]
    examples, labels, feats = squad.windows(tok, q5, max_length=16, stride=4)   # 8 context tokens a window
    assert len(examples) > 2 and all(len(ids) <= 16 for ids, _ in examples)
    answered = [(s, e, spans) for (s, e), (_, spans) in zip(labels, feats) if s]
    assert answered and all(CONTEXT[spans[s][0]:spans[e][1]] == "1990" for s, e, spans in answered)
    # the windows that do not hold "1990" whole point to [CLS]; the question is in every window
    assert sum(1 for s, _ in labels if s == 0) == len(labels) - len(answered)
    assert all(ids[0] == tok.token_to_id("[CLS]") for ids, _ in examples)
    _, labels, _ = squad.windows(tok, [q for q in hand_made if q.id == "q3"], max_length=16, stride=4)
    assert set(labels) == {(0, 0)}                                            # unanswerable: [CLS] everywhere


def test_an_answer_not_at_its_answer_start_is_named(tmp_path):
    """windows() can only place an answer found at its answer_start; one that is not would silently
    teach "no answer": read_squad says so, with the count and the first question's id."""
    path = squad_file(str(tmp_path / "train.json"), [(CONTEXT, [("q1", "who made the film ?", ["alice"], False),
                                                                ("q2", "when was it made ?", ["1990"], False)])])
    with open(path) as f:
        d = json.load(f)
    d["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] += 3
    with open(path, "w") as f:
        json.dump(d, f)
    with pytest.warns(UserWarning, match=r"1 of 2 answers are not at their answer_start .*question 'q2'"):
        squad.read_squad(path)


def test_predict_best_span_or_null(hand_made):
    tok = data.load_tokenizer(write_model("/tmp/qa-tok-model"))
    q1 = [q for q in hand_made if q.id == "q1"]
    examples, labels, feats = squad.windows(tok, q1, max_length=64)
    (s, e), = labels
    logits = torch.zeros(len(examples[0][0]), 2)
    logits[s, 0] = logits[e, 1] = 5.0
    assert squad.predict(q1, feats, [logits]) == {"q1": "alice"}
    logits[0] = 6.0                                                           # [CLS] scores higher: no answer
    assert squad.predict(q1, feats, [logits]) == {"q1": ""}
    assert squad.predict(q1, feats, [logits], null_threshold=10.0) == {"q1": "alice"}
    logits = torch.zeros(len(examples[0][0]), 2)
    logits[s, 0], logits[len(examples[0][0]) - 2, 1] = 5.0, 9.0               # too long a span is never taken
    assert squad.predict(q1, feats, [logits], max_answer_length=3)["q1"] != CONTEXT[feats[0][1][s][0]:]


def test_pruned_equals_masked_span_logits():
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                     skim=True, head="span", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = build(cfg).eval()
    for pred in model.bert.predictors:   # predictors that skim about half of the tokens
        torch.nn.init.normal_(pred.fc2.weight, 0.0, 1.0)
        torch.nn.init.zeros_(pred.fc2.bias)
    ids = torch.randint(5, 40, (3, 20))
    mask = torch.ones_like(ids)
    mask[1, 13:], mask[2, 6:] = 0, 0
    with torch.no_grad():
        masked, pruned = model(ids, mask, prune=False), model(ids, mask)
    kept = torch.stack(pruned.keep_masks).sum(0)
    assert ((kept > 0) & (kept < 3)).any()                                    # some tokens really are skimmed
    real = mask.bool()
    assert (masked.logits - pruned.logits)[real].abs().max() < 1e-5


def test_squad_download_validated(tmp_path, monkeypatch):
    www = tmp_path / "www"
    www.mkdir()
    squad_file(str(www / "train-v2.0.json"), [(CONTEXT, [("q1", "who ?", ["alice"], False)])])
    (www / "dev-v2.0.json").write_text("<!DOCTYPE html><html>log in</html>")   # a captive portal's page
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}), directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setattr(squad, "SQUAD_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        with pytest.raises(errors.FetchFailed, match="did not send a valid dev-v2.0.json.*Offline\\? Pass --data-dir"):
            squad.squad_dir(None, str(tmp_path / "cache"))
        assert os.listdir(tmp_path / "cache" / "squad") == ["train-v2.0.json"]   # the good file only
        squad_file(str(www / "dev-v2.0.json"), [(CONTEXT, [("q2", "when ?", ["1990"], False)])])
        root = squad.squad_dir(None, str(tmp_path / "cache"))
        assert [q.id for q in squad.read_squad(os.path.join(root, "dev-v2.0.json"))] == ["q2"]
    finally:
        httpd.shutdown()
        httpd.server_close()
    half = tmp_path / "half"
    half.mkdir()
    squad_file(str(half / "train-v2.0.json"), [(CONTEXT, [("q1", "who ?", ["alice"], False)])])
    with pytest.raises(errors.MissingInput, match="half/dev-v2.0.json not found: --data-dir must hold"):
        squad.squad_dir(str(half))
    (tmp_path / "bad.json").write_text('{"data": [{"paragraphs": [{"qas": [{"id": "x", "question": "q", "answers": []}]}]}]}')   # no context
    with pytest.raises(errors.BadInput, match="bad.json is not a SQuAD file"):
        squad.read_squad(str(tmp_path / "bad.json"))


def dozen(seed=0):
    """Twelve questions on short contexts of the tiny vocabulary, three of them unanswerable."""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(12):
        words = rng.sample(WORDS, 10)
        context = " ".join(words) + " ."
        answer = " ".join(words[rng.randint(0, 6):][:rng.randint(1, 3)])
        question = " ".join(rng.sample(WORDS, 3)) + " ?"
        paragraphs.append((context, [(f"q{i}", question, [] if i % 4 == 3 else [answer], i % 4 == 3)]))
    return paragraphs


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--baseline"]])
def test_tiny_model_learns_a_dozen_questions(tmp_path, mode):
    """Trained through train.py (skimming on, or the plain BERT), evaluated with real pruning, it
    answers the questions it was trained on."""
    folder = tmp_path / "squad"
    folder.mkdir()
    for name in ("train-v2.0.json", "dev-v2.0.json"):
        squad_file(str(folder / name), dozen())
    torch.manual_seed(0)
    res = train.main(["--task", "squad_v2", "--data-dir", str(folder), "--model", write_model(str(tmp_path / "m")),
                      "--device", "cpu", "--max-steps", "300", "--batch-size", "12", "--lr", "3e-3", "--max-length", "64",
                      "--eval-every-epoch", "300", "--log-every", "100", "--out-dir", str(tmp_path / "out"),
                      *(mode or ["--skim-coefficient", "1", "--predictor-lr", "1e-2"])])
    assert res["metrics"]["exact"] == 1.0 and res["metrics"]["NoAns_total"] == 3, res["metrics"]
    saved = json.load(open(tmp_path / "out" / "results.json"))
    assert saved["metric_names"][:2] == ["f1", "exact"] and saved["task"] == "squad_v2"
    if not mode:   # tokens really were skimmed, yet every answer is found: Eq. 3 carries their states out
        assert min(saved["kept_fraction_per_layer"]) < 0.9
    again = train.main(["--task", "squad_v2", "--eval-only", "--checkpoint", str(tmp_path / "out" / "checkpoint"),
                        "--data-dir", str(folder), "--max-length", "64", "--device", "cpu", "--out-dir", str(tmp_path / "out"),
                        "--predictions"])
    assert again["metrics"] == saved["metrics"]
    answers = json.load(open(tmp_path / "out" / "eval-predictions.json"))   # {question id: answer}, the official form
    golds = {qid: (gold[0] if gold else "") for _, qs in dozen() for qid, _, gold, _ in qs}
    assert {k: squad.normalize_answer(v) for k, v in answers.items()} == \
        {k: squad.normalize_answer(v) for k, v in golds.items()}
    # the predictions file scored as the official evaluate-v2.0.py scores it (its command line, its output:
    # percentages, a total, the groups that have questions) gives the numbers train.py printed
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "tasks/squad.py", str(folder / "dev-v2.0.json"),
                        str(tmp_path / "out" / "eval-predictions.json")], cwd=root, capture_output=True, text=True, timeout=60)
    official = json.loads(r.stdout)
    assert list(official) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                              "NoAns_exact", "NoAns_f1", "NoAns_total"]
    assert official == pytest.approx({k: v * (1 if k.endswith("total") else 100) for k, v in again["metrics"].items()}
                                     | {"total": len(golds)})
    with pytest.raises(SystemExit, match="was fine-tuned on squad_v2, not sst2: pass --task squad_v2"):
        train.main(["--task", "sst2", "--eval-only", "--checkpoint", str(tmp_path / "out" / "checkpoint"),
                    "--data-dir", write_glue(str(tmp_path / "glue")), "--device", "cpu", "--out-dir", str(tmp_path / "o2")])


def test_scoring_command_says_what_is_missing_and_refuses_what_matches_nothing(tmp_path, capsys):
    """tasks/squad.py DATA PRED: each question without a prediction is named (as the official script
    does) and counted; predictions that match no question, or answers that are not strings, are refused
    in one line (they gave exact 50 with exit 0, or a traceback)."""
    data = squad_file(str(tmp_path / "dev.json"), [(CONTEXT, [
        ("q1", "who made the film ?", ["alice"], False), ("q2", "who is bob ?", [], True),
        ("q3", "where is bob ?", [], True), ("q4", "when was it made ?", ["1990"], False)])])
    pred = tmp_path / "pred.json"
    for answers, says in [({"x1": "alice", "x2": ""}, "none of its 2 ids is a question of"),
                          ({}, "none of its 0 ids is a question of"),
                          ({"q1": None}, "the answer of 'q1' is null, not a string"),
                          ({"q1": 3}, "the answer of 'q1' is 3, not a string"),
                          ({"q1": ["alice"]}, "not a string"), ({"q1": float("nan")}, "is NaN, not a string")]:
        pred.write_text(json.dumps(answers))
        with pytest.raises(SystemExit):
            squad.main([data, str(pred)])
        assert says in capsys.readouterr().err.strip().splitlines()[-1]
    pred.write_text(json.dumps({"q1": "alice", "q2": ""}))
    squad.main([data, str(pred)])
    out, err = capsys.readouterr()
    assert out.splitlines()[:2] == ["Missing prediction for q3", "Missing prediction for q4"]
    assert "2 of 4 questions have no prediction" in err


def test_official_output_prints_the_official_scripts_digits(tmp_path):
    """evaluate-v2.0.py computes 100.0 * sum / n: one exact of 12 is 8.333333333333334 there, where
    100 * (sum / n) printed 8.333333333333332."""
    qas = [(f"q{i}", "who made the film ?", ["alice"], False) for i in range(12)]
    questions = squad.read_squad(squad_file(str(tmp_path / "dev.json"), [(CONTEXT, qas)]))
    out = squad.official_output(questions, {"q0": "alice"})
    assert repr(out["exact"]) == "8.333333333333334" and repr(out["HasAns_exact"]) == "8.333333333333334"
    assert json.dumps(out["exact"]) == "8.333333333333334"
