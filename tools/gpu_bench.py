"""
The GPU bench table in one call, for a GPU lent now and then for about 15 minutes:
GPU minutes go to measuring, not to debugging, so every step runs here on the CPU first.

    # here: what the GPU machine needs, in one ignored folder (~50 MB): a trained checkpoint in fp16,
    # the SST-2 and RTE dev files (the BERT-base shape is made there, from the checkpoint's tokenizer)
    python tools/gpu_bench.py prepare --checkpoint runs/glue/sst2-transkimmer-seed42/checkpoint \\
        --data-dir ../shared/data/glue --task sst2 --out gpu-carry
    python tools/gpu_bench.py run --carry gpu-carry --out /tmp/gpu-out --cpu     # the same steps, tiny, on the CPU
    # there (the device tool: carry ["gpu-carry"], timeout 480 s):
    python3 tools/gpu_bench.py run --carry gpu-carry --out $OUT

`run` writes to --out: tests.log (the CUDA tests and the equality tests of the fast paths) and one
tools/bench.py --json file per row group of the speed table (docs/speed.md): the BERT-base shape
with half of the tokens skimmed before layer 0 on SST-2 and RTE dev, and the trained checkpoint,
each at batch 1, 32, 128 and 512, eager and as CUDA graphs (every eager row also through fast/: the
classification path, and packed tokens for both models); the BERT-base shape on SST-2 again with both
models bf16 end to end (bench --bf16); and the trained checkpoint's training
step against the plain model's and Hugging Face's (batch 32). Copy them into results/bench/ and
regenerate the table (`python tools/report.py --bench results/bench --readme docs/speed.md`).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):   # run as `python tools/NAME.py`: the project's modules are one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
from safetensors.torch import load_file, save_file

from cli.errors import BadInput, run as run_main
from data import TOKENIZER_FILES
from storage.files import save_model
from load_weights import checkpoint_files, read_config
from model import BertConfig, build
from tasks import glue
from tools import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = ["tests/test_cuda_graphs.py", "tests/test_fast.py", "tests/test_transkimmer.py"]
BERT_BASE = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)


def prepare(checkpoint, data_dir, task, out):
    """The carry folder: the checkpoint with its weights in fp16 (it loads as fp32), its tokenizer,
    and the dev files of SST-2, RTE and its own task in the GLUE layout."""
    if not read_config(checkpoint_files(checkpoint)[0]).skim:
        raise BadInput(f"--checkpoint {checkpoint} is a plain BERT: pass a Transkimmer checkpoint of train.py")
    if os.path.exists(out):
        raise BadInput(f"--out {out} already exists: pass a new folder (it is made whole, then filled)")
    fp16_copy(checkpoint, os.path.join(out, "checkpoint"))
    for t in sorted({"sst2", "rte", task}):
        folder = glue.layout(t).folder
        os.makedirs(os.path.join(out, "glue", folder))
        for split in glue.layout(t).dev:
            shutil.copyfile(os.path.join(data_dir, folder, f"{split}.tsv"), os.path.join(out, "glue", folder, f"{split}.tsv"))
    json.dump(dict(task=task, source=os.path.abspath(checkpoint)), open(os.path.join(out, "carry.json"), "w"))
    print(f"wrote {out}: {carried_mib(out):.1f} MiB")


def fp16_copy(folder, out):
    """A model folder (checkpoint or pretrained) with its weights in fp16, half the bytes to carry (it
    loads as fp32), its config and its tokenizer."""
    os.makedirs(out)
    save_file({k: v.half() for k, v in load_file(checkpoint_files(folder)[1]).items()}, os.path.join(out, "model.safetensors"))
    for f in ("config.json", "tokenizer_config.json") + TOKENIZER_FILES:
        if os.path.isfile(os.path.join(folder, f)):
            shutil.copyfile(os.path.join(folder, f), os.path.join(out, f))


def carried_mib(out):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs) / 2**20


def bert_base_shape(checkpoint, folder, small):
    """A randomly initialised BERT-base shape (the timing does not depend on the weights' values)
    with the checkpoint's tokenizer; small: 2 layers of it, for the CPU check."""
    with open(os.path.join(checkpoint, "config.json")) as f:
        cfg = {k: v for k, v in json.load(f).items() if k in ("vocab_size", "max_position_embeddings", "type_vocab_size",
                                                                "pad_token_id", "layer_norm_eps", "hidden_act")}
    torch.manual_seed(0)
    save_model(build(BertConfig(**{**cfg, **BERT_BASE, **({"num_hidden_layers": 2} if small else {})})), folder)
    for f in ("tokenizer_config.json",) + TOKENIZER_FILES:
        if os.path.isfile(os.path.join(checkpoint, f)):
            shutil.copyfile(os.path.join(checkpoint, f), os.path.join(folder, f))
    return folder


def bench_runs(carry, out, task, bb, cpu):
    """(file name, tools/bench.py arguments) of every row group of the table."""
    data = ["--data-dir", os.path.join(carry, "glue")]
    if cpu:
        common, sizes, train_size = ["--device", "cpu", "--num-examples", "16", "--repeats", "1", "--warmup", "0"], "1,4", "4"
    else:
        common, sizes, train_size = ["--device", "cuda", "--repeats", "5", "--cuda-graphs"], "1,32,128,512", "32"
    ckpt = ["--checkpoint", os.path.join(carry, "checkpoint"), "--task", task] + data
    skim = ["--model", bb, "--skim-fraction", "0.5", "--skim-layer", "0"] + data
    inference = common + ["--batch-sizes", sizes, "--no-reference", "--no-train"]
    training = [a for a in common if a != "--cuda-graphs"] + ["--batch-sizes", train_size]   # + reference and training step
    bf16 = [a for a in inference if a != "--cuda-graphs"] + ["--bf16"]   # bf16 end to end, eager
    return [(f"bertbase-random-{t}-half-before-layer0", skim + ["--task", t] + inference) for t in ("sst2", "rte")] + \
        [(f"trained-{task}", ckpt + inference), ("bertbase-random-sst2-half-before-layer0-bf16", skim + ["--task", "sst2"] + bf16),
         (f"trained-{task}-training-step", ckpt + training)]


def run(carry, out, cpu):
    """The tests, then every bench, each file written to `out` as it lands; a failing step is said
    and the others still run."""
    os.makedirs(out, exist_ok=True)
    task = json.load(open(os.path.join(carry, "carry.json")))["task"]
    t0 = time.time()
    with open(os.path.join(out, "tests.log"), "w") as log:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], cwd=ROOT,
                           stdout=log, stderr=subprocess.STDOUT, timeout=240)
    print(f"tests: exit {r.returncode} ({time.time() - t0:.0f} s), {out}/tests.log")
    bb = bert_base_shape(os.path.join(carry, "checkpoint"), tempfile.mkdtemp(prefix="bertbase-random-"), cpu)
    for name, args in bench_runs(carry, out, task, bb, cpu):
        path = os.path.join(out, f"{'cpu' if cpu else 'gpu'}-{name}.json")
        print(f"\n== {name} ({time.time() - t0:.0f} s)", flush=True)
        try:
            bench.main(args + ["--json", path, "--overwrite"])
        except Exception as e:   # (one row group failing must not cost the others' GPU minutes)
            print(f"failed: {type(e).__name__}: {e}")
    shutil.rmtree(bb, ignore_errors=True)
    print(f"\ndone in {time.time() - t0:.0f} s")


def two_steps(doc, run_help):
    """The command line of a device script: `prepare` (here: the folder the GPU machine needs) and
    `run` (there); returns the parser and the two subparsers."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    return p, sub.add_parser("prepare", help="here: the folder the GPU machine needs"), sub.add_parser("run", help=run_help)


def main(argv=None):
    p, a, b = two_steps(__doc__, "there: the tests and the whole bench table")
    a.add_argument("--checkpoint", required=True, help="a Transkimmer checkpoint folder written by train.py")
    a.add_argument("--data-dir", required=True, help="the GLUE folder (SST-2, RTE and the checkpoint's task)")
    a.add_argument("--task", required=True, choices=sorted(glue.GLUE), help="the checkpoint's task")
    a.add_argument("--out", default="gpu-carry", help="the folder to write (a new one)")
    b.add_argument("--carry", default="gpu-carry", help="the folder `prepare` wrote")
    b.add_argument("--out", required=True, help="where the log and the JSON files go")
    b.add_argument("--cpu", action="store_true", help="the same steps, tiny, on the CPU (the check before the GPU)")
    args = p.parse_args(argv)
    if args.what == "prepare":
        return prepare(args.checkpoint, args.data_dir, args.task, args.out)
    if not args.cpu and not torch.cuda.is_available():
        p.error("no CUDA GPU here: pass --cpu for the CPU check")
    return run(args.carry, args.out, args.cpu)


if __name__ == "__main__":
    run_main(main)
