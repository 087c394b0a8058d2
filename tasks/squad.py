"""
SQuAD 2.0 span QA (paper Table 4): where Eq. 3 earns its place. A token-level head reads every
token's final state, and a token skimmed before layer i brings its layer-i state to the output,
so the span head still scores it (model.BertForQuestionAnswering).

    read_squad(path)                         -> questions: id, question, context, gold answers
    windows(tokenizer, questions, ...)       -> question + context windows (max length 384, stride
                                                128, by `tokenizers`' own truncation and offsets),
                                                with start and end labels ([CLS] = no answer here)
    predict(questions, feats, logits, ...)   -> an answer per question: n-best spans of at most
                                                30 tokens, or "" when the null answer scores higher
    squad_v2_scores(questions, answers)      -> the official v2.0 EM and F1, HasAns and NoAns
    official_output(questions, answers)      -> the same as the official script prints them

As a command, the official script's: python tasks/squad.py dev-v2.0.json predictions.json
(train.py --task squad_v2 --predictions writes predictions.json, {question id: answer}).
    squad_dir(data_dir, cache)               -> the folder holding train-v2.0.json and dev-v2.0.json

References:
  - Rajpurkar et al., "Know What You Don't Know: Unanswerable Questions for SQuAD", ACL 2018, and
    its official evaluation script (evaluate-v2.0.py): answer normalisation, EM, F1.
  - Devlin et al. (BERT), Sec. 4.3: the null answer scored at [CLS], windows with a doc stride.
"""

import argparse
import collections
import json
import os
import re
import string
import sys
import urllib.error
import warnings
from dataclasses import dataclass

if __package__ in (None, ""):   # run as `python tasks/squad.py`: the project's modules are one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tasks import download
from cli.errors import BadInput, FetchFailed, MissingInput

SQUAD_URL = os.environ.get("SQUAD_URL", "https://rajpurkar.github.io/SQuAD-explorer/dataset")
FILES = {"train": "train-v2.0.json", "dev": "dev-v2.0.json"}
MAX_QUESTION_TOKENS = 64   # as BERT's run_squad.py (max_query_length): a longer question is cut


@dataclass
class Question:
    id: str
    question: str
    context: str
    answers: list       # gold answer texts; [] when unanswerable
    start: int = -1     # character offset of the first answer in the context (training label), -1: none


def read_squad(path):
    """The questions of a SQuAD (v1.1 or v2.0) JSON file, in file order."""
    if not os.path.isfile(path):
        raise MissingInput(f"{path} not found: pass --data-dir holding train-v2.0.json and dev-v2.0.json, "
                           "or leave it out to download them")
    try:
        with open(path, encoding="utf-8") as f:
            articles = json.load(f)["data"]
        out = []
        for article in articles:
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    answers = [] if qa.get("is_impossible") else qa["answers"]
                    out.append(Question(qa["id"], qa["question"], para["context"], [a["text"] for a in answers],
                                        answers[0]["answer_start"] if answers else -1))
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise BadInput(f"{path} is not a SQuAD file ({type(e).__name__}: {e}): "
                       "expected {\"data\": [{\"paragraphs\": [{\"context\", \"qas\": [...]}]}]}") from None
    if not out:
        raise BadInput(f"{path} holds no questions")
    off = [q for q in out if q.start >= 0 and q.context[q.start:q.start + len(q.answers[0])] != q.answers[0]]
    if off:   # (SQuAD's own files have none; windows() could not place these, they would teach "no answer")
        warnings.warn(f"{path}: {len(off)} of {len(out)} answers are not at their answer_start in the context "
                      f"(first: question {off[0].id!r}); training reads them as unanswerable")
    return out


def windows(tokenizer, questions, max_length=384, stride=None):
    """Each question with its context, cut into windows of max_length tokens that overlap by
    `stride` tokens ([CLS] question [SEP] context piece [SEP]; stride: max_length // 3, 128 at 384
    as BERT's doc stride). Returns (examples, labels, feats): examples [(ids, type_ids)] and labels
    [(start, end)] for data.batches, and per window its question's index and each token's
    character span in the context (None outside the context)."""
    tokenizer.no_truncation()
    asked, most = [], min(MAX_QUESTION_TOKENS, max_length // 2)
    for q in questions:   # the question alone first, cut to leave the context at least half the window
        offsets = tokenizer.encode(q.question, add_special_tokens=False).offsets
        asked.append(q.question if len(offsets) <= most else q.question[:offsets[most][0]])
    tokenizer.enable_truncation(max_length, stride=max_length // 3 if stride is None else stride, strategy="only_second")
    encs = tokenizer.encode_batch([(a, q.context) for a, q in zip(asked, questions)])
    examples, labels, feats = [], [], []
    for qi, (q, enc) in enumerate(zip(questions, encs)):
        for w in [enc] + enc.overflowing:
            spans = [o if s == 1 else None for o, s in zip(w.offsets, w.sequence_ids)]
            start = end = 0                                   # [CLS]: no answer in this window
            context = [i for i, sp in enumerate(spans) if sp is not None]
            if q.start >= 0 and context:
                a, b = q.start, q.start + len(q.answers[0])  # the answer's characters [a, b)
                inside = [i for i in context if spans[i][0] < b and spans[i][1] > a]
                if inside and spans[context[0]][0] <= a and spans[context[-1]][1] >= b:   # wholly in this window
                    start, end = inside[0], inside[-1]
            examples.append((w.ids, w.type_ids))
            labels.append((start, end))
            feats.append((qi, spans))
    return examples, labels, feats


def predict(questions, feats, logits, n_best=20, max_answer_length=30, null_threshold=0.0):
    """An answer text per question id from the windows' (T, 2) start/end logits: over all its
    windows, the best span (start <= end, at most max_answer_length tokens, inside the context)
    among the n_best starts and ends, against the null answer (start and end at [CLS], its lowest
    score over the windows, as BERT does); "" when null - best > null_threshold."""
    best = {}   # question index -> (score, text); null -> lowest null score
    null = {}
    for (qi, spans), lg in zip(feats, logits):
        s, e = lg[:, 0].tolist(), lg[:, 1].tolist()
        null[qi] = min(null.get(qi, float("inf")), s[0] + e[0])
        top = lambda x: sorted(range(len(x)), key=x.__getitem__, reverse=True)[:n_best]
        for i in top(s):
            for j in top(e):
                if spans[i] is None or j >= len(spans) or spans[j] is None or j < i or j - i + 1 > max_answer_length:
                    continue
                if qi not in best or s[i] + e[j] > best[qi][0]:
                    best[qi] = (s[i] + e[j], questions[qi].context[spans[i][0]:spans[j][1]])
    answers = {}
    for qi, q in enumerate(questions):
        score, text = best.get(qi, (float("-inf"), ""))
        answers[q.id] = "" if null.get(qi, float("inf")) - score > null_threshold else text
    return answers


def normalize_answer(s):
    """The official normalisation: lower case, no punctuation, no articles, single spaces."""
    s = "".join(c for c in s.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def f1_score(prediction, gold):
    """Token-overlap F1 of the normalised answers; an empty one scores 1 only against an empty one."""
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((collections.Counter(p) & collections.Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def per_question(questions, answers):
    """Each question's exact match and f1 (the max over its gold answers; an unanswerable question's
    gold is ""), and whether it has an answer."""
    em, f1, has = [], [], []
    for q in questions:
        golds = [a for a in q.answers if normalize_answer(a)] or [""]
        pred = answers.get(q.id, "")
        em.append(max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds))
        f1.append(max(f1_score(pred, g) for g in golds))
        has.append(bool(q.answers))
    return em, f1, has


def squad_v2_scores(questions, answers):
    """The official v2.0 metrics as fractions: exact and f1 over all questions, and over HasAns and
    NoAns alone."""
    em, f1, has = per_question(questions, answers)
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0
    out = dict(f1=mean(f1), exact=mean(em))
    for name, keep in (("HasAns", True), ("NoAns", False)):
        out.update({f"{name}_f1": mean([x for x, h in zip(f1, has) if h == keep]),
                    f"{name}_exact": mean([x for x, h in zip(em, has) if h == keep]),
                    f"{name}_total": sum(h == keep for h in has)})
    return out


def official_output(questions, answers):
    """What the official evaluate-v2.0.py prints for these answers: percentages, the number of
    questions, then the HasAns and NoAns groups, each only where it has questions; each number computed
    as the script does (100.0 * sum / n), so that it prints the same digits."""
    em, f1, has = per_question(questions, answers)
    percent = lambda xs: 100.0 * sum(xs) / len(xs)
    out = dict(exact=percent(em), f1=percent(f1), total=len(questions))
    for name, keep in (("HasAns", True), ("NoAns", False)):
        group = [i for i, h in enumerate(has) if h == keep]
        if group:
            out.update({f"{name}_exact": percent([em[i] for i in group]), f"{name}_f1": percent([f1[i] for i in group]),
                        f"{name}_total": len(group)})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="Score SQuAD 2.0 predictions as the official evaluate-v2.0.py does.")
    p.add_argument("data_file", help="dev-v2.0.json")
    p.add_argument("pred_file", help="{question id: answer} JSON (train.py --predictions writes predictions.json)")
    args = p.parse_args(argv)
    for path in (args.data_file, args.pred_file):
        if not os.path.isfile(path):
            p.error(f"{path}: no such file")
    try:
        with open(args.pred_file, encoding="utf-8") as f:
            answers = json.load(f)
    except ValueError as e:
        p.error(f"{args.pred_file} is not JSON ({e}): pass the {{question id: answer}} file")
    if not isinstance(answers, dict):
        p.error(f"{args.pred_file} is not a {{question id: answer}} object")
    bad = next((k for k, v in answers.items() if not isinstance(v, str)), None)
    if bad is not None:
        p.error(f"{args.pred_file}: the answer of {bad!r} is {json.dumps(answers[bad])}, not a string "
                "(an unanswerable question's answer is \"\")")
    questions = read_squad(args.data_file)
    missing = [q.id for q in questions if q.id not in answers]
    if len(missing) == len(questions):
        p.error(f"{args.pred_file}: none of its {len(answers)} ids is a question of {args.data_file}: "
                "pass the predictions for this data file")
    for qid in missing:   # (as the official script prints them)
        print(f"Missing prediction for {qid}")
    if missing:
        print(f"warning: {len(missing)} of {len(questions)} questions have no prediction in {args.pred_file}; "
              "they are scored as answered with no answer", file=sys.stderr)
    print(json.dumps(official_output(questions, answers), indent=2))


def squad_json(path):
    """A SQuAD file: {"data": [{"paragraphs": [...]}, ...]} (an error body in JSON is not)."""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if not (isinstance(d, dict) and isinstance(d.get("data"), list) and d["data"]
            and all(isinstance(a, dict) and "paragraphs" in a for a in d["data"])):
        raise ValueError("JSON without SQuAD's data / paragraphs")


def squad_dir(data_dir=None, cache_dir=download.DEFAULT_CACHE):
    """data_dir when given (it must hold both files), else cache_dir/squad, where they are
    downloaded once (validated as JSON before they enter the cache)."""
    if data_dir is not None:
        for f in FILES.values():
            if not os.path.isfile(os.path.join(data_dir, f)):
                raise MissingInput(f"{os.path.join(data_dir, f)} not found: --data-dir must hold "
                                   f"{' and '.join(FILES.values())}, or leave it out to download them")
        return data_dir
    root = os.path.join(cache_dir, "squad")
    missing = [f for f in FILES.values() if not os.path.isfile(os.path.join(root, f))]
    if missing:
        download.check_cache(root, "SQuAD 2.0", "--data-dir with train-v2.0.json and dev-v2.0.json")
    try:
        for f in missing:
            download.download(f"{SQUAD_URL}/{f}", os.path.join(root, f), check=squad_json)
    except (urllib.error.URLError, OSError) as e:
        raise FetchFailed(f"could not download SQuAD 2.0 from {SQUAD_URL} ({e}). Offline? Pass --data-dir with a "
                          "folder holding train-v2.0.json and dev-v2.0.json") from None
    return root


if __name__ == "__main__":
    from cli import errors
    errors.run(main)
