"""A tiny generated GLUE layout (all nine tasks) and a tiny random checkpoint folder, for
end-to-end tests of data.py and train.py without real data or real weights."""

import json
import os
import random

import torch
from safetensors.torch import save_file

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
    return root


def write_model(folder, tokenizer_json=True, seed=0):
    """A tiny random BERT checkpoint in the Hugging Face layout."""
    from model import BertConfig, build
    os.makedirs(folder, exist_ok=True)
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=300)
    torch.manual_seed(seed)
    model = build(cfg)
    from test_load_weights import hf_key
    save_file({hf_key(k): v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": "bert", **{k: v for k, v in cfg.to_dict().items() if not k.startswith("skim")}}, f)
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    if tokenizer_json:
        from tokenizers.implementations import BertWordPieceTokenizer
        BertWordPieceTokenizer(os.path.join(folder, "vocab.txt"), lowercase=True).save(
            os.path.join(folder, "tokenizer.json"))
        os.remove(os.path.join(folder, "vocab.txt"))
    return folder
