"""
What an extension reads of the model's forward without changing the learner's code: the outputs of
some of its modules, recorded by forward hooks, in the order the modules ran.
"""


class Recorder:
    """Records the outputs of `modules` (each call, in call order): in training forwards only when
    `training_only` (an evaluation's forward is not the training batch's). `take()` hands them over
    and starts afresh; the outputs keep their gradient."""

    def __init__(self, modules, training_only=True):
        self.training_only, self.outputs = training_only, []
        for module in modules:
            module.register_forward_hook(self._record)

    def _record(self, module, inputs, output):
        if module.training or not self.training_only:
            self.outputs.append(output)

    def take(self):
        outputs, self.outputs = self.outputs, []
        return outputs
