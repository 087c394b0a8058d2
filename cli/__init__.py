"""What the commands (train.py, tools/*.py) share and a learner need not read: one-line errors for
bad input (errors.py), argument types and checks (args.py), the lines a training run prints
(progress.py), train.py's flags (train_flags.py). What a run writes is in storage/."""
