"""Training options beyond the paper, each one flag of train.py: budget.py (--target-speedup, train to
a FLOPs budget instead of a fixed lambda) and distill.py (--teacher, distillation from the dense model)."""
