"""Tiny generated test material: a GLUE layout (all nine tasks, and the long documents) and random BERT checkpoints in the
Hugging Face layout, for end-to-end tests without real data or real weights."""

import json
import os
import random
import re

import torch
from safetensors.torch import save_file
from tokenizers.implementations import BertWordPieceTokenizer

from model import BertConfig, build, encoder

WORDS = "the a film movie good bad great awful plot acting is was not very funny boring and but it".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + [".", ",", "?", "!"]

HEADERS = {  # (header line or None, row maker(s1, s2, label))
    "CoLA": (None, lambda a, b, y: ["gj04", y, "", a]),
    "SST-2": ("sentence\tlabel", lambda a, b, y: [a, y]),
    "MRPC": ("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String", lambda a, b, y: [y, "1", "2", a, b]),
    "QQP": ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", lambda a, b, y: ["0", "1", "2", a, b, y]),
    "STS-B": ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
              lambda a, b, y: ["0", "g", "f", "y", "0", "s", "s", a, b, y]),
    "MNLI": ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
             "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label",
             lambda a, b, y: ["0", "1", "2", "g", "p", "p", "p", "p", a, b, y, y]),
    "QNLI": ("index\tquestion\tsentence\tlabel", lambda a, b, y: ["0", a, b, y]),
    "RTE": ("index\tsentence1\tsentence2\tlabel", lambda a, b, y: ["0", a, b, y]),
    "WNLI": ("index\tsentence1\tsentence2\tlabel", lambda a, b, y: ["0", a, b, y]),
}
LABELS = {"MNLI": ["contradiction", "entailment", "neutral"], "QNLI": ["entailment", "not_entailment"],
          "RTE": ["entailment", "not_entailment"], "STS-B": None}


# Our names -> Hugging Face names. Written out independently of load_weights.RENAMES on purpose:
# the tests check that table against this one, so it must not be derived from it.
INVERSE = [(r"^embed\.word\.", "embeddings.word_embeddings."), (r"^embed\.position\.", "embeddings.position_embeddings."),
           (r"^embed\.token_type\.", "embeddings.token_type_embeddings."), (r"^embed\.ln\.", "embeddings.LayerNorm."),
           (r"^layers\.(\d+)\.attn\.q\.", r"encoder.layer.\1.attention.self.query."),
           (r"^layers\.(\d+)\.attn\.k\.", r"encoder.layer.\1.attention.self.key."),
           (r"^layers\.(\d+)\.attn\.v\.", r"encoder.layer.\1.attention.self.value."),
           (r"^layers\.(\d+)\.attn\.o\.", r"encoder.layer.\1.attention.output.dense."),
           (r"^layers\.(\d+)\.ln1\.", r"encoder.layer.\1.attention.output.LayerNorm."),
           (r"^layers\.(\d+)\.ff1\.", r"encoder.layer.\1.intermediate.dense."),
           (r"^layers\.(\d+)\.ff2\.", r"encoder.layer.\1.output.dense."),
           (r"^layers\.(\d+)\.ln2\.", r"encoder.layer.\1.output.LayerNorm."), (r"^pooler\.", "pooler.dense.")]


def hf_key(ours):
    for p, r in INVERSE:
        ours = re.sub(p, r, ours)
    return ours


def write_hf_checkpoint(folder, model, transform=lambda d: d):
    """Write `model` (an encoder) as a Hugging Face style checkpoint folder."""
    os.makedirs(folder, exist_ok=True)
    tensors = {hf_key(k): v.clone() for k, v in model.state_dict().items()}
    tensors["embeddings.position_ids"] = torch.arange(model.config.max_position_embeddings)[None]
    save_file(transform(tensors), os.path.join(folder, "model.safetensors"))
    cfg = {k: v for k, v in model.config.to_dict().items() if not k.startswith("skim") and k != "num_labels"}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": "bert", **cfg}, f)
    return folder


def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))) + " ."


def write_glue(root, n_train=40, n_dev=12, seed=0):
    rng = random.Random(seed)
    for folder, (header, row) in HEADERS.items():
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        labels = LABELS.get(folder, ["0", "1"])
        splits = {"train": n_train, "dev": n_dev}
        if folder == "MNLI":
            splits = {"train": n_train, "dev_matched": n_dev, "dev_mismatched": n_dev}
        for split, n in splits.items():
            with open(os.path.join(root, folder, f"{split}.tsv"), "w", encoding="utf-8") as f:
                if header:
                    f.write(header + "\n")
                for _ in range(n):
                    y = f"{rng.uniform(0, 5):.3f}" if labels is None else rng.choice(labels)
                    f.write("\t".join(row(sentence(rng), sentence(rng), y)) + "\n")
    write_documents(root, seed=seed)   # the long-document tasks and SQuAD beside GLUE's, as --data-dir may hold them
    write_squad(root, seed=seed)
    return root


def write_squad(root, n=12, seed=0):
    """train-v2.0.json and dev-v2.0.json in SQuAD's format; every fourth question unanswerable."""
    rng = random.Random(seed)
    for name in ("train-v2.0.json", "dev-v2.0.json"):
        paragraphs = []
        for i in range(n):
            context = " ".join(sentence(rng) for _ in range(3))
            words = context.split()
            at = rng.randrange(len(words) - 2)
            answer = " ".join(words[at:at + 2])
            start = len(" ".join(words[:at])) + (1 if at else 0)
            qas = [{"id": f"{name[:3]}{i}", "question": sentence(rng), "is_impossible": i % 4 == 3,
                    "answers": [] if i % 4 == 3 else [{"text": answer, "answer_start": start}]}]
            paragraphs.append({"context": context, "qas": qas})
        with open(os.path.join(root, name), "w") as f:
            json.dump({"version": "v2.0", "data": [{"title": "tiny", "paragraphs": paragraphs}]}, f)


NEWSGROUPS = ["comp.graphics", "rec.autos", "sci.space"]   # three of the 20


def write_documents(root, n=8, seed=0):
    """The long-document tasks as their archives unpack (documents.py): IMDB, Yelp, 20 Newsgroups."""
    rng = random.Random(seed)
    doc = lambda: " ".join(sentence(rng) for _ in range(rng.randint(1, 6)))
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            os.makedirs(os.path.join(root, "aclImdb", split, label), exist_ok=True)
            for i in range(n // 2):
                with open(os.path.join(root, "aclImdb", split, label, f"{i}_{rng.randint(1, 10)}.txt"), "w") as f:
                    f.write(doc().replace(" . ", " .<br /><br />", 1))
        os.makedirs(os.path.join(root, "yelp_review_full_csv"), exist_ok=True)
        with open(os.path.join(root, "yelp_review_full_csv", f"{split}.csv"), "w", newline="") as f:
            f.writelines(f'"{rng.randint(1, 5)}","{doc()}\\n""quoted"" end"\n' for _ in range(n))
        for group in NEWSGROUPS:
            os.makedirs(os.path.join(root, f"20news-bydate-{split}", group), exist_ok=True)
            for i in range(n // 3 + 1):
                with open(os.path.join(root, f"20news-bydate-{split}", group, str(1000 + i)), "wb") as f:
                    f.write(f"From: a@b.c\nSubject: {group}\n\n{doc()} caf\xe9\n".encode("latin-1"))
    return root


def write_model(folder, tokenizer_json=True, seed=0):
    """A tiny random BERT checkpoint in the Hugging Face layout, with its tokenizer."""
    os.makedirs(folder, exist_ok=True)
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=512)
    torch.manual_seed(seed)
    write_hf_checkpoint(folder, build(cfg))
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    if tokenizer_json:
        BertWordPieceTokenizer(os.path.join(folder, "vocab.txt"), lowercase=True).save(
            os.path.join(folder, "tokenizer.json"))
        os.remove(os.path.join(folder, "vocab.txt"))
    return folder


def tiny_config(**kw):
    """A tiny random BERT: 3 layers, hidden 32, 4 heads, for fast CPU tests; model_type=F: another
    family's, as its adapter (families/) reads its config.json (ALBERT: embeddings of width 16)."""
    base = dict(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)
    base.update(kw)
    if base.get("model_type", "bert") == "bert":
        return BertConfig(**base)
    return BertConfig.from_dict({"embedding_size": 16, **base} if base["model_type"] == "albert" else base)


def make_batch(lengths, T=None, vocab=100, seed=0):
    """input_ids (B, T) starting with [CLS]=1, random tokens, then padding 0; attention_mask."""
    g = torch.Generator().manual_seed(seed)
    T = T or max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(2, vocab, (n,), generator=g)
        ids[b, 0] = 1
        mask[b, :n] = 1
    return ids, mask


def skimming_model(seed=0, **kw):
    """A tiny Transkimmer whose predictors skim a good share of tokens, differently per layer:
    random last-layer weights with large scale and zero bias instead of the +-mu0 bias."""
    torch.manual_seed(seed)
    model = build(tiny_config(skim=True, **kw))
    enc = encoder(model)
    for pred in enc.predictors:
        torch.nn.init.normal_(pred.fc2.weight, 0.0, 1.0)
        torch.nn.init.normal_(pred.fc2.bias, 1.0, 0.1)  # lean towards keep, so later layers see work
    return model
