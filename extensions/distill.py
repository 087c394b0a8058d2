"""
--teacher CHECKPOINT: distillation from the fine-tuned dense model.

The skimming student learns from the labels and, beside them, from the outputs of the plain BERT
fine-tuned on the same task (a --baseline run): where the student's outputs drift from the dense
model's as it skims, this term pulls them back. Token-pruning work recovers much of its loss this way
(ToP, Li et al., KDD 2023, distils the dense model's attention rankings; CoFi, Xia et al., ACL 2022,
its logits and layers). The form kept here is the simplest, the outputs (Hinton et al., 2015, at
temperature 1): the student's task loss becomes

    Loss_task + D(student, teacher),   D = KL(teacher || student) over the classes (span QA: over the
                                           window's tokens, start and end), or the squared error
                                           between the two scores (regression)

The teacher runs dense, in eval mode, without gradients, on the same batch.

--distill-layers adds CoFi's layer loss at equal depths (the student is the teacher's shape): the
squared error between the student's and the teacher's output of each layer, over the tokens that
layer computes in the student (a token skimmed before layer i has no state of layer i to match).
"""

import torch
import torch.nn.functional as F

from extensions import LossTerm
from extensions.hooks import Recorder
from load_weights import load_model
from model import encoder


def distillation_loss(student, teacher, regression):
    """D above, averaged over the batch: student and teacher logits (B, C), (B, 1) or span (B, T, 2)."""
    if regression:
        return F.mse_loss(student.float(), teacher.float())
    dim = 1 if student.ndim == 3 else -1
    log_s, log_t = F.log_softmax(student.float(), dim), F.log_softmax(teacher.float(), dim)
    return (log_t.exp() * (log_t - log_s)).sum(dim).mean()


def layer_loss(student_states, teacher_states, masks):
    """The layer loss: over layers i, the mean of the squared error (per hidden unit) between the two
    models' outputs of layer i (B, T, H), averaged over the tokens kept entering layer i (masks (B, T))."""
    total = 0.0
    for s, t, m in zip(student_states, teacher_states, masks):
        err = (s.float() - t.float()).pow(2).mean(-1)                      # (B, T)
        total = total + (err * m).sum() / m.sum().clamp(min=1)
    return total / len(masks)


class Teacher(LossTerm):
    """The dense model, read from a checkpoint of train.py; `loss(out, batch)` is D for a batch and the
    student's output; with `student` given (--distill-layers) the layer loss too. A loss term
    (extensions/__init__.py), added to the task loss."""

    def __init__(self, checkpoint, device, student=None):
        self.model = load_model(checkpoint).to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.states = None if student is None else \
            (Recorder(encoder(student).layers), Recorder(encoder(self.model).layers, training_only=False))

    @torch.no_grad()
    def logits(self, b):
        return self.model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits

    def loss(self, out, b):
        regression = self.model.config.num_labels == 1 and out.logits.ndim == 2
        d = distillation_loss(out.logits, self.logits(b), regression)
        if self.states is None:
            return d
        L = self.model.config.num_hidden_layers
        student, teacher = (r.take()[-L:] for r in self.states)
        return d + layer_loss(student, teacher, out.keep_masks or [b["attention_mask"]] * L)
