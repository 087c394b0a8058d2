"""RoBERTa: BERT's layers and tensor names (under `roberta.`); its position ids count the real tokens
from padding_idx + 1 (padding sits at padding_idx), so its first 1 + padding_idx positions are unused."""


def adapt(d):
    return {"positions_after_padding": True, **d}
