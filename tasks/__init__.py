"""
The tasks train.py knows, and how each one's data is read and encoded:

    GLUE (glue.py)                   --task cola, sst2, ...: TSV files in the GLUE layout
    long documents (documents.py)    --task imdb, yelp, 20news: their archives' layouts
    SQuAD 2.0 span QA (squad.py)     --task squad_v2: question + context windows
    your own data (own_data.py)      --train-file, --dev-file: CSV, TSV or JSON Lines
    downloads (download.py)          a task's data or a checkpoint, fetched once into a cache
    GLUE's metrics (metrics.py)

    read_splits(task, data_dir, ...)          -> dev sets, training set, label strings
    encode_split(task, tokenizer, x, y, len)  -> model inputs and labels, and how to score predictions
    evaluate_dev(model, dev_sets, ...)        -> evaluate.py's predictions and costs, scored by the task
"""

import collections
import json
import statistics

import data
import evaluate
from storage.files import atomic_write_text, write_json
from tasks import documents, download, glue, metrics, own_data, squad

# Paper Table 2: max length and lambda (skim_coefficient; the paper's "harmony coefficient"). Metrics
# as GLUE reports them, the first being the table's main one; epochs from the authors' scripts, but RTE's.
# Departure: RTE trains 10 epochs, not 3 (baseline and Transkimmer alike). The recipe (train.py) lets
# the backbone learn the task in the first third of the run before lambda rises; in one epoch MiniLM
# has not begun to learn RTE's 2,490 examples (task loss ~ln 2), and lambda 0.8 then skims ~95 % of the
# tokens from layer 1 (-2.5 points, 5 seeds). 10 epochs, as RoBERTa fine-tunes RTE, and small GLUE
# sets want longer runs (Mosbach et al., ICLR 2021): the baseline scores the same (docs/results.md, "RTE: 3 or 10 epochs").
TASKS = {
    "cola": dict(max_length=64, skim_coefficient=0.3, metrics=("matthews",), epochs=3),
    "rte": dict(max_length=256, skim_coefficient=0.8, metrics=("accuracy",), epochs=10),
    "qqp": dict(max_length=128, skim_coefficient=0.2, metrics=("f1", "accuracy"), epochs=3),
    "mrpc": dict(max_length=128, skim_coefficient=0.5, metrics=("f1", "accuracy"), epochs=5),
    "sst2": dict(max_length=64, skim_coefficient=0.3, metrics=("accuracy",), epochs=3),
    "mnli": dict(max_length=128, skim_coefficient=0.2, metrics=("accuracy",), epochs=3),
    "wnli": dict(max_length=128, skim_coefficient=0.5, metrics=("accuracy",), epochs=5),
    "qnli": dict(max_length=128, skim_coefficient=0.1, metrics=("accuracy",), epochs=3),
    "stsb": dict(max_length=64, skim_coefficient=0.3, metrics=("pearson", "spearman"), epochs=3),
    # long documents (tasks/documents.py; Table 2's settings, Table 4's results); epochs: ours, the paper gives none
    "imdb": dict(max_length=512, skim_coefficient=0.5, metrics=("accuracy",), epochs=3),
    "yelp": dict(max_length=512, skim_coefficient=0.5, metrics=("accuracy",), epochs=3),
    "20news": dict(max_length=512, skim_coefficient=0.5, metrics=("accuracy",), epochs=3),
    # span QA (squad.py; Table 2's settings, Table 4's result); 2 epochs as BERT's SQuAD fine-tuning
    "squad_v2": dict(max_length=384, skim_coefficient=0.8, metrics=("f1", "exact"), epochs=2),
}
QA = "squad_v2"


# Your own data (--train-file, --dev-file): the GLUE defaults at their middle; lambda is the median of
# Table 2's, so no task is favoured. Metrics: accuracy, or Pearson and Spearman for regression.
CUSTOM = "custom"
OWN_DATA = dict(max_length=128, skim_coefficient=statistics.median(TASKS[t]["skim_coefficient"] for t in glue.GLUE),
                epochs=3)


def classes_of(cfg):
    """The label strings of a fine-tuned model's outputs (None: regression), from its id2label."""
    if cfg.num_labels == 1:
        return None
    return [(cfg.id2label or {}).get(str(i), str(i)) for i in range(cfg.num_labels)]


Splits = collections.namedtuple("Splits", "dev train classes")   # dev sets {split: ...}, the training set, label strings


def read_splits(task, data_dir=None, cache_dir=download.DEFAULT_CACHE, with_train=True, own_files=(None, None),
                columns=(None, None, None), classes="infer", task_type=None):
    """The data, as Splits: dev sets {split: (texts, labels)} (MNLI has two; long documents: their test split;
    SQuAD: questions, labels None), the training set likewise (None unless with_train), and the
    label strings (None: regression or QA). A task comes from data_dir or is downloaded into the
    cache; your own data (task CUSTOM) from own_files, (train file, dev file), whose columns are
    (text, pair, label) (own_data.read_file); classes: a checkpoint's label strings, or "infer" from the
    training file's values (task_type "classification" or "regression" overrides)."""
    if task == QA:   # questions; their windows and labels come from encode_split
        root = squad.squad_dir(data_dir, cache_dir)
        dev = squad.read_squad(f"{root}/{squad.FILES['dev']}")
        train = (squad.read_squad(f"{root}/{squad.FILES['train']}"), None) if with_train else None
        return Splits({"dev": (dev, None)}, train, None)
    if task in documents.DOCUMENTS:   # long documents: evaluated on the test split, as in the paper
        root = documents.documents_dir(task, data_dir, cache_dir)
        *test, classes = documents.read_documents(task, "test", root)
        train = documents.read_documents(task, "train", root)[:2] if with_train else None
        return Splits({"test": tuple(test)}, train, classes)
    if task != CUSTOM:
        lay = glue.layout(task)
        root = download.glue_dir(task, data_dir, cache_dir)
        dev_sets = {split: glue.read_task(task, split, root) for split in lay.dev}
        train = glue.read_task(task, "train", root) if with_train else None
        return Splits(dev_sets, train, None if lay.labels is None else list(lay.labels))
    (train_file, dev_file), train = own_files, None
    columns = (columns[0], columns[1], columns[2] or "label")
    if with_train:
        *train, classes = own_data.read_file(train_file, *columns, task_type=task_type)
    *dev, classes = own_data.read_file(dev_file, *columns, classes=classes)
    return Splits({"dev": tuple(dev)}, train, classes)


Split = collections.namedtuple("Split", "examples labels score")


def encode_split(task, tokenizer, texts, labels, max_length):
    """Model inputs [(ids, type_ids)] and labels for data.batches, and `score`: None to score
    predictions with metrics.compute_metrics (classification, regression), or, for span QA, a
    SpanScore: each window's (T, 2) logits to the answers, and those to the SQuAD v2.0 metrics."""
    if task != QA:
        return Split(data.encode(tokenizer, texts, max_length), labels, None)
    examples, spans, feats = squad.windows(tokenizer, texts, max_length)
    return Split(examples, spans, SpanScore(texts, feats))


class SpanScore:
    """Span QA: the windows' (T, 2) logits -> SQuAD's {question id: answer text} (answers), and the
    official v2.0 metrics of those answers (scores)."""

    def __init__(self, questions, feats):
        self.questions, self.feats = questions, feats

    def answers(self, logits):
        return squad.predict(self.questions, self.feats, logits)

    def scores(self, answers):
        return squad.squad_v2_scores(self.questions, answers)


def evaluate_dev(model, dev_sets, metric_names, device, max_length, batch_size, tokenizer=None, record=8):
    """The first dev split predicted (evaluate.predict), scored by the task's metric and its cost
    summarised (evaluate.summarise); the metrics of the others (MNLI mismatched) added. dev_sets: {split:
    (examples, labels, score)}, as encode_split gives them. With a tokenizer the first `record` examples
    (None: all, carried by the predictions too) come with the layers each token entered, for tools/report.py."""
    (_, (examples, labels, score)), *others = dev_sets.items()
    run = evaluate.predict(model, examples, labels, device, batch_size, score is not None, record if tokenizer else 0)
    result = dict(score_run(run["predictions"], labels, score, metric_names, run["entered"], tokenizer, record),
                  **evaluate.summarise(run, model.config, max_length))
    for split, (examples, labels, score) in others:
        run = evaluate.predict(model, examples, labels, device, batch_size, score is not None)
        result[f"metrics_{split}"] = score_run(run["predictions"], labels, score, metric_names)["metrics"]
    return result


def score_run(preds, labels, score, metric_names, entered=(), tokenizer=None, record=8):
    """The metrics of predictions (span QA: of the answers the windows' logits give), the predictions
    as written (--predictions) and the first 8 examples' tokens with the layers each entered."""
    predictions = preds.tolist() if score is None else score.answers(preds)
    scores = metrics.compute_metrics(metric_names, preds, labels) if score is None else score.scores(predictions)
    examples = [dict(tokens=[tokenizer.id_to_token(t) for t in ids], skim_layer=layers, label=labels[i],   # span QA: the
                     prediction=preds[i].item() if score is None else preds[i].argmax(0).tolist())   # answer's positions
                for i, (ids, layers) in enumerate(entered)]
    if record is None and score is None and examples:   # one row per example, its tokens' skim layers beside it
        predictions = [dict(ex, prediction=p) for ex, p in zip(examples, predictions)]
    return dict(metrics=scores, predictions=predictions, examples=examples[:8])


def write_predictions(path, predictions, classes):
    """The dev predictions, one per example, atomically: span QA's {question id: answer} as one JSON
    object (what the official SQuAD v2.0 script reads); else JSON Lines {"index", "prediction", "label",
    "tokens", "skim_layer"}: prediction and label a class name or a value (regression), and each
    token with the number of layers it entered (evaluate.py; tools/report.py shows them)."""
    if isinstance(predictions, dict):
        return write_json(path, predictions)
    name = (lambda p: classes[int(p)]) if classes else float
    rows = [dict(p, prediction=name(p["prediction"]), label=name(p["label"])) if isinstance(p, dict)
            else dict(prediction=name(p)) for p in predictions]
    atomic_write_text(path, "".join(json.dumps(dict(index=i, **r)) + "\n" for i, r in enumerate(rows)))


def head_for(task, classes):
    """The BertConfig fields of the head a task needs: a span head (QA), or one output per class
    named by id2label (one output, no names: regression)."""
    if task == QA:
        return dict(head="span", num_labels=0)
    return dict(head="classifier", num_labels=1 if classes is None else len(classes),
                id2label=None if classes is None else {str(i): c for i, c in enumerate(classes)})


def metric_names(task, classes):
    """The metrics a task reports, the first being its table's main one."""
    if task in TASKS:
        return TASKS[task]["metrics"]
    return ("accuracy",) if classes is not None else ("pearson", "spearman")
