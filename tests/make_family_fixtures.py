"""Regenerate tests/fixtures/<family>_tiny/: a small random checkpoint of another BERT family, saved
by Hugging Face transformers (the reference), its tokenizer.json, and the reference's outputs on a
padded batch (reference.safetensors). Only this script needs transformers; tests/test_families.py
reads the files.

    pip install transformers
    python tests/make_family_fixtures.py

The ALBERT tokenizer's Unigram trainer breaks ties between equal scores in no fixed order, so its
files differ from run to run; each run writes a tokenizer and a reference that belong together.
"""

import os

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors, decoders, trainers

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
TEXT = ["the film was good and the plot was great", "a bad movie, but funny acting!", "is it boring? not very.",
        "the acting was awful and it was boring", "good great funny film"]


def roberta_tokenizer(folder):
    """A byte-level BPE tokenizer.json in RoBERTa's form: <s> a </s></s> b </s>, type ids all 0."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXT * 5, trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    tok.save(os.path.join(folder, "tokenizer.json"))
    return tok


def roberta():
    from transformers import RobertaConfig, RobertaModel
    folder = os.path.join(HERE, "roberta_tiny")
    os.makedirs(folder, exist_ok=True)
    tok = roberta_tokenizer(folder)
    cfg = RobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1,
                        bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)
    torch.manual_seed(0)
    model = RobertaModel(cfg).eval()
    model.save_pretrained(folder, safe_serialization=True)
    ids, mask, _ = reference_batch(tok, cfg.pad_token_id)
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    save_file({"input_ids": ids, "attention_mask": mask, "last_hidden_state": hidden.contiguous()},
              os.path.join(folder, "reference.safetensors"))
    print(f"wrote {folder}: batch {tuple(ids.shape)}")


def reference_batch(tok, pad):
    """The padded batch the references are recorded on: a sentence, a pair, a short one."""
    encs = tok.encode_batch([TEXT[0], (TEXT[1], TEXT[2]), TEXT[3][:12]])
    T = max(len(e.ids) for e in encs)
    ids = torch.full((len(encs), T), pad)
    mask = torch.zeros(len(encs), T, dtype=torch.long)
    types = torch.zeros(len(encs), T, dtype=torch.long)
    for i, e in enumerate(encs):
        ids[i, :len(e.ids)], mask[i, :len(e.ids)], types[i, :len(e.ids)] = torch.tensor(e.ids), 1, torch.tensor(e.type_ids)
    return ids, mask, types


def distilbert():
    """A DistilBertForSequenceClassification (its head is in the checkpoint) with BERT's WordPiece."""
    from tokenizers.implementations import BertWordPieceTokenizer
    from transformers import DistilBertConfig, DistilBertForSequenceClassification
    folder = os.path.join(HERE, "distilbert_tiny")
    os.makedirs(folder, exist_ok=True)
    words = sorted({w for s in TEXT for w in s.replace(",", " ,").replace("!", " !").replace("?", " ?").replace(".", " .").split()})
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    BertWordPieceTokenizer(os.path.join(folder, "vocab.txt"), lowercase=True).save(os.path.join(folder, "tokenizer.json"))
    os.remove(os.path.join(folder, "vocab.txt"))
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    cfg = DistilBertConfig(vocab_size=tok.get_vocab_size(), dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                           max_position_embeddings=64, num_labels=2)
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(cfg).eval()
    model.save_pretrained(folder, safe_serialization=True)
    ids, mask, _ = reference_batch(tok, 0)
    with torch.no_grad():
        hidden = model.distilbert(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = model(input_ids=ids, attention_mask=mask).logits
    save_file({"input_ids": ids, "attention_mask": mask, "last_hidden_state": hidden.contiguous(), "logits": logits},
              os.path.join(folder, "reference.safetensors"))
    print(f"wrote {folder}: batch {tuple(ids.shape)}")


def albert_tokenizer(folder):
    """A SentencePiece-style (Unigram, Metaspace) tokenizer.json in ALBERT's form:
    [CLS] a [SEP] b [SEP], token types 0 then 1."""
    from tokenizers import normalizers
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(TEXT * 5, trainers.UnigramTrainer(vocab_size=120, special_tokens=["<pad>", "<unk>", "[CLS]", "[SEP]"],
                                                              unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.save(os.path.join(folder, "tokenizer.json"))
    return tok


def albert():
    from transformers import AlbertConfig, AlbertModel
    folder = os.path.join(HERE, "albert_tiny")
    os.makedirs(folder, exist_ok=True)
    tok = albert_tokenizer(folder)
    cfg = AlbertConfig(vocab_size=tok.get_vocab_size(), embedding_size=16, hidden_size=32, num_hidden_layers=3,
                       num_attention_heads=4, intermediate_size=64, max_position_embeddings=64, pad_token_id=0,
                       hidden_act="gelu_new", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                       initializer_range=0.3)   # weights large enough that the tanh GELU differs from erf's
    torch.manual_seed(0)
    model = AlbertModel(cfg).eval()
    model.save_pretrained(folder, safe_serialization=True)
    ids, mask, types = reference_batch(tok, 0)
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    save_file({"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "last_hidden_state": hidden.contiguous()},
              os.path.join(folder, "reference.safetensors"))
    print(f"wrote {folder}: batch {tuple(ids.shape)}")


if __name__ == "__main__":
    roberta()
    distilbert()
    albert()
