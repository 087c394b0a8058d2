"""What the commands (train.py, tools/*.py) share and a learner need not read: one-line errors for
bad input (errors.py), argument types and checks (args.py), files written atomically (files.py), train.py's flags (train_flags.py)."""
