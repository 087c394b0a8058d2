"""
Truncation: shorter inputs, the other thing a user can do without any method.

Every layer's cost grows with the tokens it processes (linearly, and quadratically in attention), so
cutting every input to its first L tokens saves FLOPs on the long inputs alone: the short ones lose
nothing and save nothing. `train.py --baseline --truncate-speedup S` fine-tunes and evaluates the
plain model at the --max-length whose dev FLOPs (flops.py, no padding) come closest to 1/S of the
full-length model's; the FLOPs of a length L are those of min(n, L) tokens on each example of real
length n (BERT's "longest first" truncation of a pair keeps L tokens in all).
"""

import flops


def truncated_flops(lengths, max_length, cfg):
    """The dense model's FLOPs on these examples cut to max_length tokens."""
    return sum(flops.bert_flops(min(n, max_length), cfg) for n in lengths)


def length_for_speedup(lengths, speedup, cfg, shortest=8):
    """The max length (at least `shortest`, the flag's floor) whose FLOPs on `lengths` come closest to
    1/speedup of the full-length FLOPs; a speed out of its reach (by a tenth) is refused in one line."""
    full = truncated_flops(lengths, max(lengths), cfg)
    most = full / truncated_flops(lengths, shortest, cfg)
    if most < 0.9 * speedup:
        raise SystemExit(f"error: --truncate-speedup {speedup:g}: inputs of {shortest} tokens save at most {most:.2f}x "
                         "on this dev set: ask for less")
    gap = lambda L: abs(full / truncated_flops(lengths, L, cfg) - speedup)
    return min(range(shortest, max(lengths) + 1), key=gap)
