"""DistilBERT: its config.json names BERT's sizes otherwise; no token types, no pooler; its head is
pre_classifier -> ReLU -> dropout -> classifier on h[CLS]."""

KEYS = {"dim": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
        "hidden_dim": "intermediate_size", "activation": "hidden_act", "dropout": "hidden_dropout_prob",
        "attention_dropout": "attention_probs_dropout_prob", "seq_classif_dropout": "classifier_dropout"}

# checkpoint key -> our key, applied in order, each at most once; load_weights adds the embeddings'
# rules, which every family shares with BERT
RENAMES = [
    (r"^(distilbert|bert)\.", ""),   # bert.: the checkpoints this code saves
    (r"^transformer\.layer\.(\d+)\.attention\.q_lin\.", r"layers.\1.attn.q."),
    (r"^transformer\.layer\.(\d+)\.attention\.k_lin\.", r"layers.\1.attn.k."),
    (r"^transformer\.layer\.(\d+)\.attention\.v_lin\.", r"layers.\1.attn.v."),
    (r"^transformer\.layer\.(\d+)\.attention\.out_lin\.", r"layers.\1.attn.o."),
    (r"^transformer\.layer\.(\d+)\.sa_layer_norm\.", r"layers.\1.ln1."),
    (r"^transformer\.layer\.(\d+)\.ffn\.lin1\.", r"layers.\1.ff1."),
    (r"^transformer\.layer\.(\d+)\.ffn\.lin2\.", r"layers.\1.ff2."),
    (r"^transformer\.layer\.(\d+)\.output_layer_norm\.", r"layers.\1.ln2."),
]


def adapt(d):
    if d.get("sinusoidal_pos_embds"):
        raise ValueError("DistilBERT with sinusoidal_pos_embds is not supported: only learned positions")
    return {"pooler": False, "pre_classifier": True, **{KEYS.get(k, k): v for k, v in d.items()}, "type_vocab_size": 0}
