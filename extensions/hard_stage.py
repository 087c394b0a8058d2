"""
--hard-stage F: the last F of the steps train the layers on inference's own decisions (a recipe
hypothesis, measured in docs/peers.md): from then on the predictors are frozen and decide as they will
at inference (deterministic: keep iff the keep logit beats the skim logit, Eq. 5's noise off), so the
backbone learns on the very masks it will be evaluated with. The masked path (Eq. 4) still computes
the layers; the skim loss and a budget's penalty then move nothing (no gradient reaches a predictor).
"""

import math

from extensions import LossTerm
from model import encoder


class HardStage(LossTerm):
    """A loss term that adds nothing: it counts the steps (after_step) and, from step ceil((1 - fraction)
    total) on, freezes the predictors and turns the encoder's sampled decisions off."""

    def __init__(self, model, total, fraction):
        self.encoder, self.start, self.step = encoder(model), math.ceil((1 - fraction) * total), 0
        self.apply()

    def apply(self):
        hard = self.step >= self.start
        self.encoder.sample_decisions = not hard
        for p in self.encoder.predictors.parameters():
            p.requires_grad_(not hard)   # (AdamW skips a parameter with no gradient: frozen as it is)

    def loss(self, out, batch):
        return 0.0   # (it adds nothing: it only switches the decisions)

    def after_step(self):
        self.step += 1
        self.apply()

    def state_dict(self):
        return dict(step=self.step)

    def load_state_dict(self, state):
        self.step = state["step"]
        self.apply()

    def record(self):
        return dict(hard_stage_start=self.start)
