"""
FLOPs of BERT and Transkimmer, counted per layer on the tokens each layer actually processes.

One multiply-add is 2 FLOPs and only matrix products are counted (as torch.utils.flop_counter
does; LayerNorm, GELU and softmax are a few percent at most). Per BERT layer on n tokens:
    Q, K, V, O projections 8 n H^2;  scores and weighted sum 4 n^2 H;  feed-forward 4 n H I.
A skim predictor on n tokens: Linear(H->H) 2 n H^2 + Linear(H->2) 4 n H (predictor width W instead of H: 2 n H W + 4 n W). The pooler: 2 H^2 (none in
DistilBERT). ALBERT's embedding projection: 2 n E H (its shared layer costs what a layer costs, at every depth).

Speedup (paper Sec. 5.1, "Padding") = FLOPs of the plain model / FLOPs of Transkimmer, summed
over the same examples, in two settings:
    no padding: the plain model runs each sequence at its real length;
    sequence:   the plain model runs every sequence padded to the task's max length, while
                Transkimmer drops the padding before layer 0.
Training, evaluation and tools/bench.py all use these functions.
"""


def layer_flops(n, cfg):
    H, I = cfg.hidden_size, cfg.intermediate_size
    return 8 * n * H * H + 4 * n * n * H + 4 * n * H * I


def predictor_flops(n, cfg):
    H, W = cfg.hidden_size, cfg.predictor_width   # W: the MLP's hidden width (H, as in Eq. 2, unless set smaller)
    return 2 * n * H * W + 4 * n * W


def pooler_flops(cfg):
    """tanh(Linear(h[CLS])): 2 H^2; DistilBERT has no pooler."""
    return 2 * cfg.hidden_size ** 2 if cfg.pooler else 0


def embed_flops(n, cfg):
    """ALBERT's projection of the embeddings (width E) to H: 2 n E H; none elsewhere."""
    return 2 * n * cfg.embedding_size * cfg.hidden_size if cfg.embedding_size else 0


def bert_flops(n, cfg):
    """The plain encoder (with pooler) on one sequence of n tokens."""
    return embed_flops(n, cfg) + cfg.num_hidden_layers * layer_flops(n, cfg) + pooler_flops(cfg)


def transkimmer_flops(length, kept, cfg):
    """Transkimmer on one sequence of real length `length`; kept[i] = tokens kept entering layer
    i. Predictor i sees the tokens that entered layer i-1 (predictor 0: the real tokens). A model
    without predictors (cfg.skim False) that prunes otherwise (peers/) pays for its layers alone."""
    flops, alive = embed_flops(length, cfg) + pooler_flops(cfg), length
    for n in kept:
        flops += (predictor_flops(alive, cfg) if cfg.skim else 0) + layer_flops(n, cfg)
        alive = n
    return flops


def speedups(lengths, kept, cfg, max_length):
    """FLOPs speedups over a set of examples: lengths (N,) real lengths, kept (N, L) tokens kept
    entering each layer, or None for the plain model (1.0 by definition). Returns
    (no_padding, sequence)."""
    if kept is None:
        return 1.0, 1.0
    skim = sum(transkimmer_flops(n, k, cfg) for n, k in zip(lengths, kept))
    plain = sum(bert_flops(n, cfg) for n in lengths)
    padded = len(lengths) * bert_flops(max_length, cfg)
    return plain / skim, padded / skim
