"""
BERT, written by hand, with the small hook Transkimmer needs.

    embeddings (word + position + token type, LayerNorm, dropout)
    L x post-LayerNorm blocks: x = LN(x + Attn(x)); x = LN(x + FFN(x)), FFN with erf GELU
    pooler: tanh(Linear(h[CLS]))
    heads: classification (cross-entropy), regression (one output, MSE; STS-B) or span QA
Other families (RoBERTa, DistilBERT, ALBERT) are a few config fields here, set by their adapters
in families/; training and evaluation run through train.py, which adds Eq. 7's skim loss.

The hook: each block takes `keep` (B, T), the keys it may attend to (1 = keep, 0 = skimmed or
padding). With `config.skim` the encoder builds one skim predictor per layer and runs its layers
through `transkimmer.masked_encode` (training) or `transkimmer.pruned_encode` (inference).

References:
  - Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers", NAACL 2019.
  - Hugging Face transformers `BertModel`, the reference our outputs are tested against
    (tests/test_parity.py).
"""

import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

import families
import transkimmer


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"               # BERT's exact erf GELU; "gelu_new" (ALBERT) is the tanh approximation
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02         # sigma of Eq. 8, for BERT's weights and the predictors'
    pad_token_id: int = 0
    classifier_dropout: float = None        # dropout before the classifier (None: hidden_dropout_prob)
    # What other families do otherwise (families/ sets these from their config.json; BERT: the defaults)
    model_type: str = "bert"                # the checkpoint's family: which rename table loads it
    type_vocab_size: int = 2                # 0: no token types (DistilBERT)
    positions_after_padding: bool = False   # position ids count real tokens from pad_token_id + 1 (RoBERTa)
    embedding_size: int = None              # embeddings of this width, projected to hidden_size (ALBERT)
    shared_layer: bool = False              # one layer run at every depth (ALBERT)
    pooler: bool = True                     # tanh(Linear(h[CLS])); DistilBERT has none
    pre_classifier: bool = False            # the head: Linear -> ReLU before the classifier (DistilBERT)
    num_labels: int = 0                     # 0: encoder only; 1: regression; >= 2: classification
    finetuning_task: str = None             # the task a fine-tuned checkpoint was trained for (HF's name)
    id2label: dict = None                   # {"0": label string, ...} of a classifier's outputs (HF's name)
    head: str = "classifier"                # "classifier" (num_labels outputs) or "span" (QA start/end)
    # Transkimmer (transkimmer.py); ignored when skim is False
    skim: bool = False
    # Gumbel temperature, Eq. 5. Departure: the paper says 0.1, the authors' code runs 1. tau never
    # changes the forward decision, only the straight-through gradient y(1-y)/tau; at 0.1 the keep
    # logit's lead of 2 mu0 = 10 saturates it (gradient ~e^-100) and the predictors never move.
    skim_tau: float = 1.0
    skim_mu0: float = 5.0                   # mean of the unbalanced last-layer bias, Eq. 9
    skim_coefficient: float = 0.3           # lambda, the harmony coefficient of Eq. 7 (Table 2)
    skim_input_layernorm: bool = False      # the authors' extra LayerNorm before the predictor MLP
    skim_predictor_width: int = None        # the predictor MLP's hidden width; None = hidden_size (Eq. 2)

    @property
    def predictor_width(self):
        """The skim predictors' hidden width: skim_predictor_width, else hidden_size (Eq. 2)."""
        return self.skim_predictor_width or self.hidden_size

    @classmethod
    def from_dict(cls, d):
        """From a config.json of any supported family: its adapter (families/) gives these fields'
        names, and what this BERT cannot compute is refused; unknown keys are ignored."""
        d = families.adapt(d)
        cfg = cls(**{k: v for k, v in d.items() if k in {f.name for f in fields(cls)}})
        families.check(cfg)
        return cfg

    @property
    def max_tokens(self):
        """The longest sequence the position table holds (RoBERTa's first 1 + padding_idx are unused)."""
        return self.max_position_embeddings - (self.pad_token_id + 1 if self.positions_after_padding else 0)

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def to_dict(self):
        return asdict(self)


class Embeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.pad, self.positions_after_padding = cfg.pad_token_id, cfg.positions_after_padding
        E = cfg.embedding_size or cfg.hidden_size
        self.word = nn.Embedding(cfg.vocab_size, E, padding_idx=cfg.pad_token_id)
        self.position = nn.Embedding(cfg.max_position_embeddings, E)
        self.token_type = nn.Embedding(cfg.type_vocab_size, E) if cfg.type_vocab_size else None
        self.ln = nn.LayerNorm(E, eps=cfg.layer_norm_eps)
        self.project = nn.Linear(E, cfg.hidden_size) if cfg.embedding_size else None   # E -> H
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):  # (B, T) each
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device)
        if self.positions_after_padding:   # real tokens count from padding_idx + 1; padding sits at padding_idx
            real = input_ids.ne(self.pad).long()
            pos = torch.cumsum(real, 1) * real + self.pad
        x = self.word(input_ids) + self.position(pos)
        if self.token_type is not None:
            x = x + self.token_type(token_type_ids)
        x = self.drop(self.ln(x))
        return x if self.project is None else self.project(x)  # (B, T, H)


class SelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.nh = cfg.num_attention_heads
        self.q = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.k = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.v = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.o = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout = cfg.attention_probs_dropout_prob

    def forward(self, x, keep, skim=False):
        """x (B, T, H); keep (B, T), 1 = this key may be attended, 0 = not; None = all.
        skim=True: keep is Transkimmer's mask and attention is Eq. 4 (transkimmer.skim_attention),
        written out so that the gradient reaches the mask; otherwise fused SDPA."""
        B, T, H = x.shape
        q, k, v = (lin(x).view(B, T, self.nh, H // self.nh).transpose(1, 2) for lin in (self.q, self.k, self.v))
        p = self.dropout if self.training else 0.0
        if skim:
            y = transkimmer.skim_attention(q, k, v, keep, p)
        else:
            mask = None if keep is None else keep.bool()[:, None, None, :]  # (B, 1, 1, T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.o(y.transpose(1, 2).reshape(B, T, H))  # (B, T, H)


class Block(nn.Module):
    """One post-LayerNorm BERT layer."""

    def __init__(self, cfg):
        super().__init__()
        self.attn = SelfAttention(cfg)
        self.ln1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ff1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.ff2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.ln2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)
        self.gelu_approximate = families.GELUS[cfg.hidden_act]

    def forward(self, x, keep, skim=False):  # x (B, T, H), keep (B, T) or None
        return self.finish(x, self.attn(x, keep, skim))

    def finish(self, x, a):
        """The layer after its attention a (B, T, H): residual and LayerNorm, feed-forward, residual and LayerNorm."""
        x = self.ln1(x + self.drop(a))
        return self.ln2(x + self.drop(self.ff2(F.gelu(self.ff1(x), approximate=self.gelu_approximate))))  # erf GELU, or tanh


def autocast(device):
    """How the model runs on a device: bf16 autocast on CUDA; full precision on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor   # (B, T, H)
    pooler_output: torch.Tensor       # (B, H), tanh(Linear(h[CLS])); None for DistilBERT
    keep_masks: list = None           # with skim: L tensors (B, T), 1 = kept entering layer i
    skim_loss: torch.Tensor = None    # with skim: Eq. 6, a scalar


class BertModel(nn.Module):
    """The encoder. `enc.train()`: sampled skim decisions on the masked path; `enc.eval()`:
    deterministic decisions and real pruning; `prune=False` forces the masked path in eval."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.embed = Embeddings(cfg)
        # stack: the layer run at each depth, in order (shared_layer: one, at every depth); predictors: one per depth
        self.layers = nn.ModuleList(Block(cfg) for _ in range(1 if cfg.shared_layer else cfg.num_hidden_layers))
        self.stack = [self.layers[0]] * cfg.num_hidden_layers if cfg.shared_layer else list(self.layers)
        self.pooler = nn.Linear(cfg.hidden_size, cfg.hidden_size) if cfg.pooler else None
        self.predictors, self.sample_decisions = None, True   # (extensions/hard_stage.py: False, inference's in training)
        if cfg.skim:
            self.predictors = nn.ModuleList(
                transkimmer.SkimPredictor(cfg.hidden_size, cfg.layer_norm_eps, cfg.skim_input_layernorm,
                                          cfg.predictor_width)
                for _ in range(cfg.num_hidden_layers))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, prune=None):
        B, T = input_ids.shape
        if T > self.config.max_tokens:
            raise ValueError(f"sequence length {T} exceeds the {self.config.max_tokens} positions the model has "
                             "(max_position_embeddings): truncate the inputs (data.py --max-length)")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        h = self.embed(input_ids, token_type_ids)  # (B, T, H)
        out = self.run_layers(h, attention_mask, prune)
        h = out.last_hidden_state
        return EncoderOutput(h, self.pool(h), out.keep_masks, out.skim_loss)

    def run_layers(self, h, attention_mask, prune=None):
        """The layers on the embeddings h (B, T, H): plain BERT, or Transkimmer's encoders (Eq. 1),
        the masked one in training and the really pruned one at inference. Returns a SkimOutput
        (keep masks and skim loss None for plain BERT). fast/cuda_graphs.py replaces this step."""
        if self.predictors is None:
            for layer in self.stack:
                h = layer(h, attention_mask)
            return transkimmer.SkimOutput(h, None, None)
        prune = (not self.training) if prune is None else prune
        if prune and self.training:
            raise ValueError("real pruning is for inference: call model.eval() first")
        if prune:   # inference: tokens really removed
            return transkimmer.pruned_encode(h, attention_mask, self.stack, self.predictors)
        return transkimmer.masked_encode(h, attention_mask, self.stack, self.predictors,   # Eq. 4 attention
                                         self.config.skim_tau, self.training and self.sample_decisions)

    def pool(self, h):
        """tanh(Linear(h[CLS])); None without a pooler (DistilBERT)."""
        return None if self.pooler is None else torch.tanh(self.pooler(h[:, 0]))


@dataclass
class HeadOutput:   # what a head returns: classification, regression and span QA alike
    logits: torch.Tensor              # (B, num_labels); span QA: (B, T, 2)
    task_loss: torch.Tensor = None    # when labels are given (Eq. 7 adds the skim loss: train.py)
    skim_loss: torch.Tensor = None    # Eq. 6, with skimming
    keep_masks: list = None           # with skimming: L tensors (B, T), 1 = kept entering layer i


class BertForSequenceClassification(nn.Module):
    """Classification (num_labels >= 2, cross-entropy) or regression (num_labels == 1, MSE)."""

    def __init__(self, cfg):
        super().__init__()
        assert cfg.num_labels >= 1, "num_labels must be >= 1 for a head"
        self.config = cfg
        self.bert = BertModel(cfg)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob if cfg.classifier_dropout is None else cfg.classifier_dropout)
        self.pre_classifier = nn.Linear(cfg.hidden_size, cfg.hidden_size) if cfg.pre_classifier else None
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, prune=None):
        enc = self.bert(input_ids, attention_mask, token_type_ids, prune=prune)
        x = enc.pooler_output if self.pre_classifier is None else F.relu(self.pre_classifier(enc.last_hidden_state[:, 0]))
        logits = self.classifier(self.drop(x))  # (B, num_labels)
        task_loss = None
        if labels is not None:
            task_loss = F.mse_loss(logits.squeeze(-1).float(), labels.float()) if self.config.num_labels == 1 \
                else F.cross_entropy(logits.float(), labels)
        return HeadOutput(logits, task_loss, enc.skim_loss, enc.keep_masks)


class BertForQuestionAnswering(nn.Module):
    """Span QA (SQuAD, tasks/squad.py): a start and an end logit for every token, from the encoder's last
    hidden state. With skimming that is Eq. 3's output: a token skimmed before layer i carries its
    state from layer i to the output, so every context token, skimmed or not, can still be scored
    as an answer boundary. logits (B, T, 2); labels (B, 2): start and end positions, both 0
    ([CLS]) when the window holds no answer."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.bert = BertModel(cfg)
        self.qa_outputs = nn.Linear(cfg.hidden_size, 2)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, prune=None):
        enc = self.bert(input_ids, attention_mask, token_type_ids, prune=prune)
        logits = self.qa_outputs(enc.last_hidden_state)  # (B, T, 2)
        task_loss = None
        if labels is not None:   # mean of the start and end cross-entropies over the window's tokens
            task_loss = (F.cross_entropy(logits[..., 0].float(), labels[:, 0]) +
                         F.cross_entropy(logits[..., 1].float(), labels[:, 1])) / 2
        return HeadOutput(logits, task_loss, enc.skim_loss, enc.keep_masks)


def encoder(model):
    """The encoder (BertModel) of a model with a head, or the model itself: the one way to reach it (a
    head holds it as `.bert`, the name its checkpoint keys carry: Hugging Face's "bert.")."""
    return model.bert if isinstance(model, (BertForSequenceClassification, BertForQuestionAnswering)) else model


def is_predictor(name):
    """True for a parameter (or state-dict key) of a skim predictor."""
    return ".predictors." in f".{name}"


def build(cfg):
    """The model a config asks for (encoder alone when num_labels == 0), initialised."""
    model = BertForQuestionAnswering(cfg) if cfg.head == "span" else \
        BertForSequenceClassification(cfg) if cfg.num_labels else BertModel(cfg)
    init_weights(model, cfg)
    return model


def init_weights(model, cfg):
    """All initialisation, in one place.

    BERT's own parameters (used when training from scratch, and for the classifier head on top of
    a pretrained encoder): every Linear and Embedding weight ~ N(0, initializer_range), biases 0,
    LayerNorm (1, 0), the padding embedding row 0.
    Skim predictors: Eqs. 8-9, the unbalanced initialisation (transkimmer.init_predictor): weights
    ~ N(0, sigma), last bias ~ N(+mu0, sigma) for keep and N(-mu0, sigma) for skim.
    """
    std = cfg.initializer_range
    for name, m in model.named_modules():
        if is_predictor(name + "."):
            continue
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
            elif m.padding_idx is not None:
                nn.init.zeros_(m.weight[m.padding_idx])
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for pred in encoder(model).predictors or []:
        transkimmer.init_predictor(pred, sigma=std, mu0=cfg.skim_mu0)


def num_params(module):
    return sum(p.numel() for p in module.parameters())
