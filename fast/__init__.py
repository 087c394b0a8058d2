"""
Fast inference paths, each beside the plain reference it speeds up (transkimmer.pruned_encode) and
tested equal to it (tests/test_fast.py): the same decisions, the same outputs within float
tolerance. A learner reads transkimmer.py; these are for users who want the time.

    classify.py   sequence classification: no work the head does not read
"""
