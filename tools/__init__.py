"""Off the learner's path: benchmarks (bench.py; CUDA graphs are in fast/), the results report and the tables the docs show (report.py, tables.py). Run them as `python tools/bench.py ...`."""
