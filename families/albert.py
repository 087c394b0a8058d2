"""ALBERT: embeddings of width embedding_size, projected to hidden_size; one layer, run at every
depth (the skim predictors stay one per depth); the tanh GELU (gelu_new)."""

LAYER = r"^encoder\.albert_layer_groups\.0\.albert_layers\.0\."   # the one shared layer

# checkpoint key -> our key, applied in order, each at most once; load_weights adds the embeddings'
# rules, which every family shares with BERT
RENAMES = [
    (r"^(albert|bert)\.", ""),   # bert.: the checkpoints this code saves
    (r"^encoder\.embedding_hidden_mapping_in\.", "embed.project."),
    (LAYER + r"attention\.query\.", "layers.0.attn.q."),
    (LAYER + r"attention\.key\.", "layers.0.attn.k."),
    (LAYER + r"attention\.value\.", "layers.0.attn.v."),
    (LAYER + r"attention\.dense\.", "layers.0.attn.o."),
    (LAYER + r"attention\.LayerNorm\.", "layers.0.ln1."),
    (LAYER + r"ffn\.", "layers.0.ff1."),
    (LAYER + r"ffn_output\.", "layers.0.ff2."),
    (LAYER + r"full_layer_layer_norm\.", "layers.0.ln2."),
]


def adapt(d):
    if (d.get("num_hidden_groups", 1), d.get("inner_group_num", 1)) != (1, 1):
        raise ValueError("ALBERT with num_hidden_groups or inner_group_num > 1 is not supported: only one shared layer")
    return {"shared_layer": True, **d}
