"""
Fast inference paths, each beside the plain reference it speeds up (transkimmer.pruned_encode) and
tested equal to it (tests/test_fast.py): the same decisions, the same outputs within float
tolerance. A learner reads transkimmer.py; these are for users who want the time.

    classify.py      sequence classification: no work the head does not read
    packed.py        the same on packed tokens (no padding in any Linear), for the dense model too
    cuda_graphs.py   pruned_encode cut into CUDA graphs, one per layer and bucket of kept tokens

Each takes over the inference of one model through replace_inference (below). They call the
reference's primitives (transkimmer.decide, keep_cls, kept_first, gather_kept, write_out_,
skim_output; model.Block.finish) and add only the work they skip: one sequence indexed, no copy where
nothing is skimmed, no mask where no row is short, no write-out a classifier does not read.
"""


def replace_inference(enc, inference):
    """Run the inference of the BertModel `enc` through inference(h, attention_mask) -> SkimOutput,
    or eagerly again (None): replaces enc.run_layers on this one instance (model.BertModel.run_layers is the
    step made to be replaced); training, and prune=False, still run the eager masked path."""
    enc.__dict__.pop("run_layers", None)
    if inference is not None:
        eager = enc.run_layers
        enc.run_layers = lambda h, mask, prune=None: eager(h, mask, prune) if enc.training or prune is False \
            else inference(h, mask)
