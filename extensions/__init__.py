"""Training options beyond the paper, each one flag of train.py: budget.py (--target-speedup, train to
a FLOPs budget instead of a fixed lambda), distill.py (--teacher, distillation from the dense model),
hard_stage.py (--hard-stage, the last steps on inference's decisions), schedule.py (what is asked of
skimming at each step; --skim-after-loss-drop) and two_stage.py (--target-speedup's runs: the dense
baseline first, then skimming from it).

Budget, Teacher and HardStage are loss terms: train.train_step adds each one's `loss` to the task loss, and the
loop calls the rest of this small interface, which a term that needs none of it leaves as it is here."""


class LossTerm:
    """An extension's term of the training loss, and its part in the run around the step."""

    def loss(self, out, batch):
        """The term for this batch, given the model's output (train.train_step adds it to the task loss)."""
        raise NotImplementedError

    def after_step(self):
        """After the optimiser's step (the budget's multipliers ascend here)."""

    def status(self):
        """Appended to the step's log line."""
        return ""

    def state_dict(self):
        """What --resume saves of the term (storage/resume.py), and load_state_dict puts back."""
        return {}

    def load_state_dict(self, state):
        pass

    def finish(self, model, train_examples, device, log):
        """After the last step's evaluation; True asks for another (the budget calibrates the model)."""
        return False

    def record(self):
        """What results.json records of the term with each evaluation."""
        return {}
