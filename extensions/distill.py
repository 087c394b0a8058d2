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
"""

import torch
import torch.nn.functional as F

from load_weights import load_model


def distillation_loss(student, teacher, regression):
    """D above, averaged over the batch: student and teacher logits (B, C), (B, 1) or span (B, T, 2)."""
    if regression:
        return F.mse_loss(student.float(), teacher.float())
    dim = 1 if student.ndim == 3 else -1
    log_s, log_t = F.log_softmax(student.float(), dim), F.log_softmax(teacher.float(), dim)
    return (log_t.exp() * (log_t - log_s)).sum(dim).mean()


class Teacher:
    """The dense model, read from a checkpoint of train.py; `loss(logits, batch)` is D for a batch."""

    def __init__(self, checkpoint, device):
        self.model = load_model(checkpoint).to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def logits(self, b):
        return self.model(b["input_ids"], b["attention_mask"], b["token_type_ids"]).logits

    def loss(self, student_logits, b):
        regression = self.model.config.num_labels == 1 and student_logits.ndim == 2
        return distillation_loss(student_logits, self.logits(b), regression)
