"""
Real pruning on a GPU without the launch overhead: the encoder cut into fixed-shape steps, one per
layer, each recorded once as a CUDA graph and then replayed with a single launch.

Why. `transkimmer.pruned_encode` launches about three times the kernels of the dense encoder
(predictor, decision, sort, gathers, scatters) and waits once per layer for the host to learn how
many tokens remain. On an H100 the host, not the arithmetic, then sets the time: pruned inference
ran at 0.33-0.66x of dense although the GPU's own work shrank (docs/speed.md). A CUDA graph is
replayed with one launch, however many kernels it holds.

What it computes: exactly what `pruned_encode` computes, the same decisions and the same layers on
the same kept tokens, and the same SkimOutput (tests/test_cuda_graphs.py). Only the shapes differ, so
that a few graphs serve every batch:
  - the batch's length T and each layer's kept width T' (the batch's largest kept count) are
    rounded up to a multiple of `bucket`; the extra slots are padding, masked out of attention like
    a short row's, never written out;
  - attention is always masked (pruned_encode drops the mask when no row is short).
Each layer still needs its one host read (how many tokens remain picks the next graph).

    enc = encoder(model); use_graphs(enc, Graphed(enc, bucket=16))   # then model(**batch) as usual
    use_graphs(enc, None)                                            # back to the eager encoder

Make it after the model has its device and dtype (a graph reads its weights where they were), and
keep it for one model: each new batch shape is recorded once and kept, with its static tensors.

The dense model (skim=False) is graphed too, one graph per batch shape, so that tools/bench.py
(`--cuda-graphs`) compares like with like. `graphs=False` runs the very same steps eagerly: that
is how the CPU tests check the steps, and how a machine without CUDA runs this file.
"""

import torch

from fast import replace_inference
from transkimmer import SkimOutput, decide, gather_rows, keep_cls, kept_first, skim_output, write_out_


def use_graphs(enc, runner):
    """Run the inference of the BertModel `enc` through `runner` (a Graphed), or eagerly again
    (None); training still runs the eager masked path (fast.replace_inference)."""
    replace_inference(enc, runner)


def bf16_linears(model):
    """Store every Linear's weight and bias in bf16, once, for inference under bf16 autocast: the
    same numbers autocast computes (it casts them to bf16 at every call), without the casts, which
    a CUDA graph would otherwise redo at every replay. Returns the model."""
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.to(torch.bfloat16)
    return model


def round_up(n, bucket, limit):
    """The width a step computes on: n rounded up to a multiple of bucket, at most limit."""
    return min(-(-n // bucket) * bucket, limit)


class Graphed:
    """Inference for a BertModel `enc` (eval mode, no gradients): the pruned encoder when
    enc.predictors exists, else the dense one. Call it as enc calls its run_layers step: (h, attention_mask)
    -> SkimOutput (pruned: keep masks as pruned_encode gives them; dense: the last hidden state alone)."""

    def __init__(self, enc, bucket=16, graphs=True):
        self.layers, self.predictors, self.bucket, self.graphs = enc.stack, enc.predictors, bucket, graphs
        # static tensors by (B, padded length, parity, width): layer i reads parity i % 2 and writes
        # the other, so a step never overwrites what it reads; graphs by step and shapes
        self.buffers, self.steps = {}, {}
        self.pool = None                          # one memory pool for every graph: they run one at a time

    # -- the steps: each reads and writes only static tensors (self.buffers), so it can be replayed

    def state(self, B, W, parity, width, like):
        """The static tensors of a layer's input at this width, for batches of B padded to W: x (B, width,
        H) states, pos (B, width) original positions, valid (B, width) a real token, and the decision
        on them: keep, order (kept first), n (B,) kept counts, widest (1,) the largest."""
        key = (B, W, parity, width)
        if key not in self.buffers:
            long = dict(dtype=torch.long, device=like.device)
            self.buffers[key] = dict(x=like.new_zeros(B, width, like.shape[-1]), pos=torch.zeros(B, width, **long),
                                     valid=torch.zeros(B, width, dtype=torch.bool, device=like.device),
                                     keep=torch.zeros(B, width, dtype=torch.bool, device=like.device),
                                     order=torch.zeros(B, width, **long), n=torch.zeros(B, **long),
                                     widest=torch.zeros(1, **long))
        return self.buffers[key]

    def decide(self, i, s):
        """Before layer i: pruned_encode's decision and the order that puts the kept tokens first."""
        keep = keep_cls(decide(self.predictors[i](s["x"]), training=False), s["pos"]) & s["valid"]
        s["keep"].copy_(keep)
        s["n"].copy_(keep.sum(1))
        s["order"].copy_(kept_first(keep))
        s["widest"].copy_(s["n"].max().view(1))

    def layer(self, i, s, t, out, entered):
        """Layer i from state s to state t (t's width: the bucketed kept count): the tokens skimmed
        here leave (Eq. 3), the kept ones are gathered (Eq. 1) and go through the layer."""
        write_out_(out, entered, s["x"], s["pos"], s["valid"], i)   # every token: the kept ones are written again later
        idx = s["order"][:, :t["x"].shape[1]]
        t["pos"].copy_(s["pos"].gather(1, idx))
        t["valid"].copy_(torch.arange(idx.shape[1], device=idx.device) < s["n"][:, None])
        t["x"].copy_(self.layers[i](gather_rows(s["x"], idx), t["valid"]))

    def finish(self, s, out, entered):
        """After the last layer: the tokens kept to the end leave with H^L."""
        write_out_(out, entered, s["x"], s["pos"], s["valid"], len(self.layers))

    def run(self, key, fn):
        """fn() eagerly, or its CUDA graph: recorded the first time this key comes, replayed after.
        fn must be idempotent (it reads one set of static tensors and writes another)."""
        if not self.graphs:
            return fn()
        if key not in self.steps:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):                 # warm up outside the graph, as CUDA graphs require
                fn()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):
                fn()
            self.pool = graph.pool()
            self.steps[key] = graph
        self.steps[key].replay()

    # -- the encoders

    @torch.no_grad()
    def __call__(self, h, attention_mask):
        device = h.device.type
        amp = torch.is_autocast_enabled(device)
        # autocast's cache of cast weights must stay off: a graph would keep reading a freed cache
        with torch.autocast(device, dtype=torch.get_autocast_dtype(device), enabled=amp, cache_enabled=False):
            return self.dense(h, attention_mask) if self.predictors is None else self.pruned(h, attention_mask)

    def start(self, h, attention_mask):
        """The first state: the batch padded to a multiple of bucket (a few graphs serve all lengths)."""
        B, T, _ = h.shape
        width = round_up(T, self.bucket, T + self.bucket)
        s = self.state(B, width, 0, width, h)
        s["x"].zero_()
        s["x"][:, :T].copy_(h)
        s["pos"].copy_(torch.arange(width, device=h.device).expand(B, width))
        s["valid"].zero_()
        s["valid"][:, :T].copy_(attention_mask.bool())   # padding is skimmed before layer 0
        return s, width

    def dense(self, h, attention_mask):
        s, width = self.start(h, attention_mask)
        B, T, _ = h.shape
        t = self.state(B, width, 1, width, h)

        def step():
            x = s["x"]
            for layer in self.layers:
                x = layer(x, s["valid"])
            t["x"].copy_(x)
        self.run(("dense", B, width), step)
        return SkimOutput(t["x"][:, :T].clone(), None, None)

    def pruned(self, h, attention_mask):
        s, width = self.start(h, attention_mask)
        B, T, H = h.shape
        W, L = width, len(self.layers)
        if ("io", B, W) not in self.buffers:       # (B, W + 1): the last slot takes the writes of tokens not leaving
            self.buffers["io", B, W] = h.new_zeros(B, W + 1, H), torch.zeros(B, W + 1, dtype=torch.long, device=h.device)
        out, entered = self.buffers["io", B, W]
        out[:, :T].copy_(h)                        # padding leaves with H^0
        entered.zero_()
        self.run(("decide", B, W), lambda: self.decide(0, s))
        for i in range(L):
            new = round_up(int(s["widest"]), self.bucket, width)      # the layer's one host read
            t = self.state(B, W, (i + 1) % 2, new, h)

            def step(i=i, s=s, t=t):
                self.layer(i, s, t, out, entered)
                if i + 1 < L:
                    self.decide(i + 1, t)
                else:
                    self.finish(t, out, entered)
            self.run(("layer", i, B, W, width, new), step)
            s, width = t, new
        return skim_output(out[:, :T].clone(), entered[:, :T], attention_mask, L)
