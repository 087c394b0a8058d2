"""
Time a peers' run (peers/) or a Transkimmer run against the full dense model, side by side: equal FLOPs
is not equal time. Both run their fastest tested path on the same dev examples: the packed path
(fast/packed.py) for the dense 6-layer baseline, the first k layers, truncation and Transkimmer;
attention top-k has only its own gathering path (peers/attention_topk.py, padded batches), so it is
timed on that. Each batch size is timed in alternating repeats (the machine's noise falls on both);
the median time of each, and their ratio (tools/bench.py's interleaved timing).

    python tools/bench_peers.py --baseline RUN/checkpoint --run out/cola-layers3 --data-dir $D --threads 1 \\
        --json results/peers/bench/T-layers3-seed42.json   # (T: the task)

--run: a folder train.py wrote (results.json and checkpoint/), or an --eval-only folder (eval-results.json,
its --checkpoint). The table (tools/peers_table.py) shows batch 32 and batch 1 of seed 42's file.
"""

import argparse
import json
import os
import sys

if __package__ in (None, ""):   # run as `python tools/NAME.py`: the project's modules are one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

import data
from cli.args import OneLineParser, POSITIVE_INT
from storage.provenance import device_name, machine
from cli.errors import BadInput, run as run_main
from storage.files import check_outputs, write_json
from fast.packed import use_packed_path
from load_weights import load_model
from peers.attention_topk import prune_by_attention
from tasks import TASKS, read_splits
from tools.bench import interleaved, make_batches


def read_run(folder):
    """(record, checkpoint) of a train.py run or --eval-only folder."""
    for name, ckpt in (("results.json", os.path.join(folder, "checkpoint")), ("eval-results.json", None)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path) as f:
                rec = json.load(f)
            return rec, ckpt or rec["args"]["checkpoint"]
    raise BadInput(f"--run {folder}: no results.json or eval-results.json: name a folder train.py wrote")


def main(argv=None):
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, help="the full dense model: the checkpoint/ of a --baseline run")
    p.add_argument("--run", required=True, help="the run to time (its folder)")
    p.add_argument("--data-dir", help="the GLUE layout; default: the run's --data-dir")
    p.add_argument("--batch-sizes", type=lambda text: [POSITIVE_INT(v) for v in text.split(",")], default=[32, 1],
                   help="comma-separated (default: 32,1)")
    p.add_argument("--examples", type=POSITIVE_INT, default=256, help="dev examples timed at each batch size")
    p.add_argument("--repeats", type=POSITIVE_INT, default=5)
    p.add_argument("--threads", type=POSITIVE_INT)
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args(argv)
    check_outputs(p, [("--json", a.json)])
    if a.threads:
        torch.set_num_threads(a.threads)
    rec, ckpt = read_run(a.run)
    task, args, peer = rec["task"], rec["args"], rec.get("peer") or {}
    texts = next(iter(read_splits(task, a.data_dir or args["data_dir"], with_train=False)[0].values()))[0][:a.examples]
    full = use_packed_path(load_model(a.baseline).eval())
    model = load_model(ckpt).eval()
    model = prune_by_attention(model, peer["ratio"]) if peer.get("method") == "attention-topk" else use_packed_path(model)
    tok = data.load_tokenizer(a.baseline)
    inputs = [data.encode(tok, texts, TASKS[task]["max_length"]), data.encode(tok, texts, args["max_length"])]
    rows, cpu = [], torch.device("cpu")
    for bs in a.batch_sizes:   # (the same examples in both: batch i of one is batch i of the other, cut shorter)
        pairs = list(zip(*(make_batches(examples, bs, a.examples, cpu) for examples in inputs)))
        run = lambda m, i: lambda b: m(b[i]["input_ids"], b[i]["attention_mask"], b[i]["token_type_ids"])
        with torch.no_grad():
            dense, ours = interleaved([run(full, 0), run(model, 1)], pairs, cpu, a.repeats, warmup=1)
        rows.append(dict(batch=bs, packed_measured=dense / ours, dense_s=dense, run_s=ours))
        print(f"batch {bs}: {dense / ours:.2f}x the full dense model's speed ({dense:.2f} s / {ours:.2f} s)")
    out = dict(task=task, checkpoint=ckpt, baseline=a.baseline, run=a.run, device_name=device_name(torch.device("cpu")),
               threads=torch.get_num_threads(), rows=rows, machine=machine("cpu"))
    if a.json:
        write_json(a.json, out)
    return out


if __name__ == "__main__":
    run_main(main)
